/* kinds.c — the library of kinds.h: scalars, buffers, strings, structs, unions, enums, callbacks, threads, and a
 * function that crashes (tests/test_library.py calls every one from Python). */
#include "kinds.h"

#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

int add(int a, int b) { return a + b; }
int8_t neg8(int8_t v) { return (int8_t)-v; }
uint8_t inc8(uint8_t v) { return (uint8_t)(v + 1); }
int16_t neg16(int16_t v) { return (int16_t)-v; }
uint16_t inc16(uint16_t v) { return (uint16_t)(v + 1); }
uint32_t inc32(uint32_t v) { return v + 1; }
int64_t neg64(int64_t v) { return -v; }
uint64_t inc64(uint64_t v) { return v + 1; }
float half(float v) { return v / 2; }
double scale(double v, double by) { return v * by; }
long double ld_twice(long double v) { return v * 2; }

size_t count_bytes(const void *data, size_t size)
{
    const unsigned char *bytes = data;
    size_t i, total = 0;
    for (i = 0; i < size; i++)
        total += bytes[i];
    return total;
}

void fill(unsigned char *out, size_t size, unsigned char value) { memset(out, value, size); }
size_t text_length(const char *text) { return text ? strlen(text) : 0; }

void upper(char *text)
{
    for (; *text; text++)
        *text = (char)toupper((unsigned char)*text);
}

const char *greeting(void) { return "hello from kinds"; }

void divide(int a, int b, int *quotient, int *remainder)
{
    *quotient = a / b;
    *remainder = a % b;
}

int colour_value(enum colour c) { return (int)c * 10; }
size_class classify(long n) { return n < 0 ? SMALL : LARGE; }
int point_sum(struct point p) { return p.x + p.y; }

point_t point_make(int x, int y)
{
    point_t p = {x, y};
    return p;
}

void point_move(point_t *p, int dx, int dy)
{
    p->x += dx;
    p->y += dy;
}

double record_score(const record_t *r)
{
    return r->weight * (r->where.x + r->where.y) + r->counts[0] + r->counts[1] + r->counts[2] +
           (r->name ? (double)strlen(r->name) : 0) + (double)strlen(r->tag);
}

record_t record_make(const char *name, double weight)
{
    record_t r;
    memset(&r, 0, sizeof r);
    r.weight = weight;
    strncpy(r.tag, "made", sizeof r.tag - 1);
    r.where.x = 1;
    r.where.y = 2;
    r.name = name;
    r.counts[2] = 7;
    return r;
}

int32_t union_bits(number_u n) { return n.i; }

number_u union_from_float(float f)
{
    number_u n;
    n.f = f;
    return n;
}

int apply(binary_fn fn, int a, int b) { return fn(a, b); }

static int ascending(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

void sort_ints(int *values, size_t count) { qsort(values, count, sizeof *values, ascending); }
void sort_with(int *values, size_t count, int (*compare)(const void *, const void *))
{
    qsort(values, count, sizeof *values, compare);
}

double visit(const record_t *record, visit_fn fn, void *context) { return fn(record, context); }

static void *remembered;
void *remember(void *pointer)
{
    void *before = remembered;
    remembered = pointer;
    return before;
}
void *recall(void) { return remembered; }

int sum_all(int count, ...)
{
    va_list args;
    int total = 0;
    va_start(args, count);
    while (count-- > 0)
        total += va_arg(args, int);
    va_end(args);
    return total;
}

int work(int n)
{
    volatile int total = 0;
    int i;
    for (i = 0; i < n; i++)
        total += i % 7;
    return total;
}

struct share {
    unsigned per_thread;
    unsigned result;
};

static void *thread_main(void *argument)
{
    struct share *share = argument;
    unsigned i;
    for (i = 0; i < share->per_thread; i++)
        share->result += (unsigned)work(10);
    return NULL;
}

unsigned parallel_sum(unsigned threads, unsigned per_thread)
{
    pthread_t ids[16];
    struct share shares[16];
    unsigned i, total = 0;
    if (threads > 16)
        threads = 16;
    for (i = 0; i < threads; i++) {
        shares[i].per_thread = per_thread;
        shares[i].result = 0;
        pthread_create(&ids[i], NULL, thread_main, &shares[i]);
    }
    for (i = 0; i < threads; i++) {
        pthread_join(ids[i], NULL);
        total += shares[i].result;
    }
    return total;
}

int crash(int *where) { return *where; }
