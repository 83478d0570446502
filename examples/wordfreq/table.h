/* table.h — a chained hash table of word counts (the demo's second translation unit). */
#ifndef WORDFREQ_TABLE_H
#define WORDFREQ_TABLE_H
#include <stddef.h>

struct entry {
    char word[16];
    long count;
    struct entry *next;
};

struct table {
    struct entry **buckets;
    size_t capacity, size;
};

struct table *table_new(size_t capacity);
void table_add(struct table *table, const char *word);
struct entry **table_entries(const struct table *table);
void table_free(struct table *table);

/* Shared by both units: one function in reports, however many units inline it. */
static inline unsigned long hash_word(const char *word)
{
    unsigned long hash = 5381;
    while (*word)
        hash = hash * 33 + (unsigned char)*word++;
    return hash;
}
#endif
