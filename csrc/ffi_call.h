/* ffi_call.h — calling C functions whose signatures are known only at run time (libffi), on plain C buffers: type
 * descriptions and layouts, call interfaces, calls, closures, and the libraries that hold the functions. The Python
 * conversions around them live in binding.c (the only file that includes Python.h). */
#ifndef CPROF_FFI_CALL_H
#define CPROF_FFI_CALL_H

#include <ffi.h>
#include <stddef.h>

/* Scalar type codes, as cprof/library/ names them (struct module letters, plus P pointer and v void):
 * b B h H i I q Q (signed and unsigned 8 to 64 bits), f d g (float, double, long double), P, v. */
ffi_type *cprof_ffi_scalar(char code);
/* The size a scalar code stands for (0: not a scalar code). */
size_t cprof_ffi_scalar_size(char code);

/* A struct (or union) type of `count` members, laid out as the platform's ABI does; `offsets` (count entries)
 * receives each member's offset. NULL when it cannot be made. Free with cprof_ffi_free_aggregate. */
ffi_type *cprof_ffi_aggregate(ffi_type **members, size_t count, int is_union, size_t *offsets);
void cprof_ffi_free_aggregate(ffi_type *type);

/* Prepares a call interface; 0 on success. */
int cprof_ffi_prepare(ffi_cif *cif, ffi_type *result, ffi_type **arguments, unsigned count);

/* Where the result of a call lands is at least this big and this aligned (libffi widens small integers). */
typedef union {
    long double ld;
    double d;
    ffi_arg word;
    unsigned char bytes[32];
} cprof_ffi_slot;

/* Stores an integer into a slot of type `code`: 0, or -1 when the value does not fit the type. */
int cprof_ffi_put_signed(void *slot, char code, long long value);
int cprof_ffi_put_unsigned(void *slot, char code, unsigned long long value);
/* Reads an integer scalar of type `code`; `widened`: the slot is a call's result (libffi widens it to ffi_arg). */
long long cprof_ffi_get_signed(const void *slot, char code, int widened);
unsigned long long cprof_ffi_get_unsigned(const void *slot, char code, int widened);
/* Stores a callback's integer result into libffi's result slot (widened to ffi_arg). */
void cprof_ffi_put_result(void *slot, char code, const void *value);
int cprof_ffi_is_signed(char code);
int cprof_ffi_is_integer(char code);
int cprof_ffi_is_floating(char code);

/* A C function pointer that calls `handler(result, arguments, data)`: a libffi closure over `cif`. */
typedef void (*cprof_ffi_handler)(ffi_cif *cif, void *result, void **arguments, void *data);
struct cprof_ffi_closure;
struct cprof_ffi_closure *cprof_ffi_closure_new(ffi_cif *cif, cprof_ffi_handler handler, void *data, void **code);
void cprof_ffi_closure_free(struct cprof_ffi_closure *closure);

/* dlopen (NULL with the reason in `error`) and dlsym. */
void *cprof_ffi_open(const char *path, char *error, size_t error_size);
void *cprof_ffi_symbol(void *library, const char *name);

#endif
