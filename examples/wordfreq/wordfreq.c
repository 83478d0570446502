/* wordfreq.c — cprof's demo program: generates text, counts its words in a hash table, prints the top ones. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "table.h"

static unsigned long long state = 88172645463325252ull;

static unsigned next_random(void)
{
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return (unsigned)state;
}

/* Words follow a skewed distribution, so a few are very frequent, like real text. */
static void make_word(char *out)
{
    static const char *syllables[] = {"ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo"};
    unsigned r = next_random();
    int length = 1 + (int)(r % 3), i;
    out[0] = 0;
    for (i = 0; i < length; i++) {
        unsigned pick = next_random() % 64;
        strcat(out, syllables[pick < 32 ? pick % 2 : pick % 8]);
    }
}

static int by_count(const void *a, const void *b)
{
    const struct entry *x = *(const struct entry *const *)a, *y = *(const struct entry *const *)b;
    if (x->count != y->count)
        return x->count < y->count ? 1 : -1;
    return strcmp(x->word, y->word);
}

int main(int argc, char **argv)
{
    long words = argc > 1 ? atol(argv[1]) : 400000, i;
    struct table *table = table_new(1024);
    struct entry **sorted;
    char word[16];
    for (i = 0; i < words; i++) {
        make_word(word);
        table_add(table, word);
    }
    sorted = table_entries(table);
    qsort(sorted, table->size, sizeof *sorted, by_count);
    printf("%ld words, %zu distinct\n", words, table->size);
    for (i = 0; i < 5 && i < (long)table->size; i++)
        printf("%-8s %ld\n", sorted[i]->word, sorted[i]->count);
    free(sorted);
    table_free(table);
    return 0;
}
