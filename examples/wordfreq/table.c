/* table.c — the demo's hash table: lookups, growth, and listing the entries. */
#include <stdlib.h>
#include <string.h>

#include "table.h"

struct table *table_new(size_t capacity)
{
    struct table *table = malloc(sizeof *table);
    table->buckets = calloc(capacity, sizeof *table->buckets);
    table->capacity = capacity;
    table->size = 0;
    return table;
}

static void grow(struct table *table)
{
    size_t capacity = table->capacity * 2, i;
    struct entry **buckets = calloc(capacity, sizeof *buckets);
    for (i = 0; i < table->capacity; i++) {
        struct entry *entry = table->buckets[i];
        while (entry) {
            struct entry *next = entry->next;
            size_t at = hash_word(entry->word) % capacity;
            entry->next = buckets[at];
            buckets[at] = entry;
            entry = next;
        }
    }
    free(table->buckets);
    table->buckets = buckets;
    table->capacity = capacity;
}

static struct entry *find(const struct table *table, const char *word, size_t at)
{
    struct entry *entry;
    for (entry = table->buckets[at]; entry; entry = entry->next)
        if (strcmp(entry->word, word) == 0)
            return entry;
    return NULL;
}

void table_add(struct table *table, const char *word)
{
    size_t at = hash_word(word) % table->capacity;
    struct entry *entry = find(table, word, at);
    if (entry) {
        entry->count++;
        return;
    }
    if (table->size * 2 > table->capacity) {
        grow(table);
        at = hash_word(word) % table->capacity;
    }
    entry = calloc(1, sizeof *entry);
    strncpy(entry->word, word, sizeof entry->word - 1);
    entry->count = 1;
    entry->next = table->buckets[at];
    table->buckets[at] = entry;
    table->size++;
}

struct entry **table_entries(const struct table *table)
{
    struct entry **out = malloc(table->size * sizeof *out);
    size_t i, n = 0;
    struct entry *entry;
    for (i = 0; i < table->capacity; i++)
        for (entry = table->buckets[i]; entry; entry = entry->next)
            out[n++] = entry;
    return out;
}

void table_free(struct table *table)
{
    size_t i;
    for (i = 0; i < table->capacity; i++) {
        struct entry *entry = table->buckets[i];
        while (entry) {
            struct entry *next = entry->next;
            free(entry);
            entry = next;
        }
    }
    free(table->buckets);
    free(table);
}
