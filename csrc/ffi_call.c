/* ffi_call.c — libffi calls on plain C buffers for cprof's in-process library sessions (see ffi_call.h). */
#define _GNU_SOURCE
#include "ffi_call.h"

#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

ffi_type *cprof_ffi_scalar(char code)
{
    switch (code) {
    case 'b': return &ffi_type_sint8;
    case 'B': return &ffi_type_uint8;
    case 'h': return &ffi_type_sint16;
    case 'H': return &ffi_type_uint16;
    case 'i': return &ffi_type_sint32;
    case 'I': return &ffi_type_uint32;
    case 'q': return &ffi_type_sint64;
    case 'Q': return &ffi_type_uint64;
    case 'f': return &ffi_type_float;
    case 'd': return &ffi_type_double;
    case 'g': return &ffi_type_longdouble;
    case 'P': return &ffi_type_pointer;
    case 'v': return &ffi_type_void;
    default: return NULL;
    }
}

size_t cprof_ffi_scalar_size(char code)
{
    ffi_type *type = cprof_ffi_scalar(code);
    return type && code != 'v' ? type->size : 0;
}

int cprof_ffi_is_signed(char code) { return code && strchr("bhiq", code) != NULL; }
int cprof_ffi_is_integer(char code) { return code && strchr("bBhHiIqQ", code) != NULL; }
int cprof_ffi_is_floating(char code) { return code && strchr("fdg", code) != NULL; }

/* Whether every scalar in a type is floating point: such a union travels in SSE registers on x86-64. */
static int all_floating(const ffi_type *type)
{
    ffi_type **element;
    if (type->type == FFI_TYPE_FLOAT || type->type == FFI_TYPE_DOUBLE)
        return 1;
    if (type->type != FFI_TYPE_STRUCT || !type->elements)
        return 0;
    for (element = type->elements; *element; element++)
        if (!all_floating(*element))
            return 0;
    return 1;
}

/* libffi knows no unions: one travels as a struct of the same size and alignment made of words of its
 * alignment, floating ones when every member is floating (so the ABI classifies it as it would the union). */
static ffi_type *union_type(ffi_type *type, ffi_type **members, size_t count, size_t *offsets)
{
    size_t size = 0, align = 1, i, words;
    int floating = 1;
    ffi_type *word;
    for (i = 0; i < count; i++) {
        if (members[i]->size > size)
            size = members[i]->size;
        if (members[i]->alignment > align)
            align = members[i]->alignment;
        floating = floating && all_floating(members[i]);
        offsets[i] = 0;
    }
    size = (size + align - 1) / align * align;
    if (floating && (align == 4 || align == 8))
        word = align == 4 ? &ffi_type_float : &ffi_type_double;
    else
        word = align >= 8 ? &ffi_type_uint64 : align == 4 ? &ffi_type_uint32 : align == 2 ? &ffi_type_uint16
                                                                                              : &ffi_type_uint8;
    words = size / word->size;
    type->elements = calloc(words + 1, sizeof *type->elements);
    if (!type->elements)
        return NULL;
    for (i = 0; i < words; i++)
        type->elements[i] = word;
    type->size = size;
    type->alignment = (unsigned short)align;
    return type;
}

ffi_type *cprof_ffi_aggregate(ffi_type **members, size_t count, int is_union, size_t *offsets)
{
    ffi_type *type = calloc(1, sizeof *type);
    size_t i;
    if (!type || count == 0) {
        free(type);
        return NULL;
    }
    type->type = FFI_TYPE_STRUCT;
    if (is_union) {
        if (!union_type(type, members, count, offsets)) {
            cprof_ffi_free_aggregate(type);
            return NULL;
        }
        return type;
    }
    type->elements = calloc(count + 1, sizeof *type->elements);
    if (!type->elements) {
        free(type);
        return NULL;
    }
    for (i = 0; i < count; i++)
        type->elements[i] = members[i];
    if (ffi_get_struct_offsets(FFI_DEFAULT_ABI, type, offsets) != FFI_OK) {
        cprof_ffi_free_aggregate(type);
        return NULL;
    }
    return type;
}

void cprof_ffi_free_aggregate(ffi_type *type)
{
    if (!type)
        return;
    free(type->elements);
    free(type);
}

int cprof_ffi_prepare(ffi_cif *cif, ffi_type *result, ffi_type **arguments, unsigned count)
{
    return ffi_prep_cif(cif, FFI_DEFAULT_ABI, count, result, arguments) == FFI_OK ? 0 : -1;
}

int cprof_ffi_put_signed(void *slot, char code, long long value)
{
    switch (code) {
    case 'b': if (value < INT8_MIN || value > INT8_MAX) return -1; *(int8_t *)slot = (int8_t)value; return 0;
    case 'h': if (value < INT16_MIN || value > INT16_MAX) return -1; *(int16_t *)slot = (int16_t)value; return 0;
    case 'i': if (value < INT32_MIN || value > INT32_MAX) return -1; *(int32_t *)slot = (int32_t)value; return 0;
    case 'q': *(int64_t *)slot = (int64_t)value; return 0;
    default: return -1;
    }
}

int cprof_ffi_put_unsigned(void *slot, char code, unsigned long long value)
{
    switch (code) {
    case 'B': if (value > UINT8_MAX) return -1; *(uint8_t *)slot = (uint8_t)value; return 0;
    case 'H': if (value > UINT16_MAX) return -1; *(uint16_t *)slot = (uint16_t)value; return 0;
    case 'I': if (value > UINT32_MAX) return -1; *(uint32_t *)slot = (uint32_t)value; return 0;
    case 'Q': *(uint64_t *)slot = (uint64_t)value; return 0;
    default: return -1;
    }
}

long long cprof_ffi_get_signed(const void *slot, char code, int widened)
{
    if (widened) /* libffi returns small integers widened to a full ffi_sarg */
        return (long long)*(const ffi_sarg *)slot;
    switch (code) {
    case 'b': return *(const int8_t *)slot;
    case 'h': return *(const int16_t *)slot;
    case 'i': return *(const int32_t *)slot;
    default: return *(const int64_t *)slot;
    }
}

unsigned long long cprof_ffi_get_unsigned(const void *slot, char code, int widened)
{
    unsigned long long value = widened ? (unsigned long long)*(const ffi_arg *)slot : *(const uint64_t *)slot;
    switch (code) {
    case 'B': return widened ? (uint8_t)value : *(const uint8_t *)slot;
    case 'H': return widened ? (uint16_t)value : *(const uint16_t *)slot;
    case 'I': return widened ? (uint32_t)value : *(const uint32_t *)slot;
    default: return value;
    }
}

void cprof_ffi_put_result(void *slot, char code, const void *value)
{
    if (cprof_ffi_is_signed(code))
        *(ffi_sarg *)slot = (ffi_sarg)cprof_ffi_get_signed(value, code, 0);
    else if (cprof_ffi_is_integer(code))
        *(ffi_arg *)slot = (ffi_arg)cprof_ffi_get_unsigned(value, code, 0);
    else
        memcpy(slot, value, cprof_ffi_scalar_size(code));
}

struct cprof_ffi_closure {
    ffi_closure *closure;
};

struct cprof_ffi_closure *cprof_ffi_closure_new(ffi_cif *cif, cprof_ffi_handler handler, void *data, void **code)
{
    struct cprof_ffi_closure *made = calloc(1, sizeof *made);
    if (!made)
        return NULL;
    made->closure = ffi_closure_alloc(sizeof(ffi_closure), code);
    if (!made->closure || ffi_prep_closure_loc(made->closure, cif, handler, data, *code) != FFI_OK) {
        cprof_ffi_closure_free(made);
        return NULL;
    }
    return made;
}

void cprof_ffi_closure_free(struct cprof_ffi_closure *closure)
{
    if (!closure)
        return;
    if (closure->closure)
        ffi_closure_free(closure->closure);
    free(closure);
}

void *cprof_ffi_open(const char *path, char *error, size_t error_size)
{
    /* local: two sessions' libraries may define the same names; the runtime they share is one object anyway */
    void *library = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!library)
        snprintf(error, error_size, "%s", dlerror());
    return library;
}

void *cprof_ffi_symbol(void *library, const char *name)
{
    return dlsym(library, name);
}
