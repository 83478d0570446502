/* kinds.h — a small library that exercises every kind of argument cprof's in-process sessions pass (tests). */
#ifndef KINDS_H
#define KINDS_H

#include <stddef.h>
#include <stdint.h>

typedef unsigned long word_t;

enum colour { RED, GREEN = 5, BLUE };
typedef enum { SMALL = -1, LARGE = 1 << 20 } size_class;

struct point {
    int x, y;
};
typedef struct point point_t;

typedef struct {
    double weight;
    char tag[8];
    struct point where;
    const char *name;
    int counts[3];
} record_t;

typedef union {
    int32_t i;
    float f;
    unsigned char bytes[4];
} number_u;

typedef int (*binary_fn)(int, int);
typedef double (*visit_fn)(const record_t *record, void *context);

int add(int a, int b);
int8_t neg8(int8_t v);
uint8_t inc8(uint8_t v);
int16_t neg16(int16_t v);
uint16_t inc16(uint16_t v);
uint32_t inc32(uint32_t v);
int64_t neg64(int64_t v);
uint64_t inc64(uint64_t v);
float half(float v);
double scale(double v, double by);
long double ld_twice(long double v);
size_t count_bytes(const void *data, size_t size);
void fill(unsigned char *out, size_t size, unsigned char value);
size_t text_length(const char *text);
void upper(char *text);
const char *greeting(void);
void divide(int a, int b, int *quotient, int *remainder);
int colour_value(enum colour c);
size_class classify(long n);
int point_sum(struct point p);
point_t point_make(int x, int y);
void point_move(point_t *p, int dx, int dy);
double record_score(const record_t *r);
record_t record_make(const char *name, double weight);
int32_t union_bits(number_u n);
number_u union_from_float(float f);
int apply(binary_fn fn, int a, int b);
void sort_ints(int *values, size_t count);
void sort_with(int *values, size_t count, int (*compare)(const void *, const void *));
double visit(const record_t *record, visit_fn fn, void *context);
void *remember(void *pointer);
void *recall(void);
int sum_all(int count, ...);
unsigned parallel_sum(unsigned threads, unsigned per_thread);
int crash(int *where);
int work(int n);

#endif
