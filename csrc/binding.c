/* binding.c — cprof._native, the only file that includes Python.h: timer facts, the fast run-file reader, and the
 * Python side of foreign calls into instrumented libraries (csrc/ffi_call.c). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "ffi_call.h"
#include "reader.h"
#include "timer.h"

#include <float.h>
#include <math.h>

static PyObject *timer_info(PyObject *self, PyObject *args)
{
    struct cprof_timer_info info;
    (void)self;
    (void)args;
    Py_BEGIN_ALLOW_THREADS
    cprof_timer_init(&info, 20000000, CPROF_TIMER_CHOICE_ORDERED);
    Py_END_ALLOW_THREADS
    return Py_BuildValue("{s:s,s:O,s:O,s:d}", "timer", cprof_timer_name(info.kind), "invariant_tsc",
                         info.invariant_tsc ? Py_True : Py_False, "ordered", info.ordered ? Py_True : Py_False,
                         "ticks_per_second", info.ticks_per_second);
}

static PyObject *text(const char *bytes, size_t length)
{
    return PyUnicode_DecodeUTF8(bytes, (Py_ssize_t)length, "replace");
}

static PyObject *header_dict(const struct cprof_run_header *h)
{
    PyObject *cmdline = PyList_New(0), *result;
    size_t start = 0, i, length = h->cmdline_len < CPROF_CMDLINE_MAX ? h->cmdline_len : CPROF_CMDLINE_MAX;
    if (!cmdline)
        return NULL;
    /* arguments end with NUL; a truncated last one does not */
    for (i = 0; i <= length; i++) {
        if (i < length && h->cmdline[i] != 0)
            continue;
        if (i < length || start < length) {
            PyObject *argument = text(h->cmdline + start, i - start);
            if (!argument || PyList_Append(cmdline, argument) != 0) {
                Py_XDECREF(argument);
                Py_DECREF(cmdline);
                return NULL;
            }
            Py_DECREF(argument);
        }
        start = i + 1;
    }
    result = Py_BuildValue(
        "{s:I,s:K,s:K,s:K,s:I,s:d,s:K,s:K,s:K,s:K,s:K,s:i,s:i,s:i,s:I,s:K,s:d,s:d,s:d,s:d,s:I,s:K,s:I,s:K,s:K,s:I,"
        "s:K,s:K,s:d,s:d,s:K,s:K,s:K,s:K,s:K,s:d,s:d,s:N}",
        "version",
        h->version, "features", h->features, "base_address", h->base_address, "used_bytes", h->used_bytes,
        "timer_kind", h->timer_kind, "ticks_per_second", h->ticks_per_second, "start_ticks", h->start_ticks,
        "start_mono_ns", h->start_mono_ns, "start_unix_ns", h->start_unix_ns, "end_ticks", h->end_ticks,
        "end_mono_ns", h->end_mono_ns, "pid", h->pid, "parent_pid", h->parent_pid, "exit_status", h->exit_status,
        "flags", h->flags, "fork_ticks", h->fork_ticks, "guard_inner_ticks", h->guard_inner_ticks,
        "guard_outer_ticks", h->guard_outer_ticks, "guard_inner_spread", h->guard_inner_spread,
        "guard_outer_spread", h->guard_outer_spread, "calibration_rounds", h->calibration_rounds, "lost_frames",
        h->lost_frames, "timer_ordered", h->timer_ordered, "runtime_ns", h->runtime_ns,
        "sample_period_ns", h->sample_period_ns, "sample_source", h->sample_source, "samples_outside",
        h->samples_outside, "samples_dropped", h->samples_dropped, "count_guard_ticks", h->count_guard_ticks,
        "count_guard_spread", h->count_guard_spread, "trace_min_ns", h->trace_min_ns, "trace_limit_bytes",
        h->trace_limit_bytes, "trace_bytes", h->trace_bytes, "trace_stop_ticks", h->trace_stop_ticks,
        "trace_dropped", h->trace_dropped, "count_exposed_ticks", h->count_exposed_ticks,
        "count_striped_ticks", h->count_striped_ticks, "cmdline", cmdline);
    return result;
}

/* (offset, parent, function_id, then every counter in CPROF_NODE_COUNTERS order), as cprof/runfile.py builds it */
static PyObject *node_tuple(const struct cprof_read_node *n)
{
#define COUNTER_VALUE(name) n->name,
    const uint64_t counters[] = {CPROF_NODE_COUNTERS(COUNTER_VALUE)};
#undef COUNTER_VALUE
    const size_t count = sizeof counters / sizeof counters[0];
    PyObject *item = PyTuple_New((Py_ssize_t)(3 + count));
    size_t i;
    if (!item)
        return NULL;
    PyTuple_SET_ITEM(item, 0, PyLong_FromUnsignedLongLong(n->offset));
    PyTuple_SET_ITEM(item, 1, PyLong_FromLongLong((long long)n->parent));
    PyTuple_SET_ITEM(item, 2, PyLong_FromUnsignedLong(n->function_id));
    for (i = 0; i < count; i++)
        PyTuple_SET_ITEM(item, (Py_ssize_t)(3 + i), PyLong_FromUnsignedLongLong(counters[i]));
    for (i = 0; i < 3 + count; i++) {
        if (!PyTuple_GET_ITEM(item, (Py_ssize_t)i)) {
            Py_DECREF(item); /* releases the items made so far */
            return NULL;
        }
    }
    return item;
}

/* The heap record's figures by name (None when the run file has none), as cprof/runfile.py returns them. */
static PyObject *heap_dict(const struct cprof_read_result *r)
{
    PyObject *dict, *value;
    if (!r->has_heap)
        Py_RETURN_NONE;
    if (!(dict = PyDict_New()))
        return NULL;
#define PUT_HEAP_FIELD(name)                                                                                   \
    if (!(value = PyLong_FromUnsignedLongLong(r->heap.name)) || PyDict_SetItemString(dict, #name, value) != 0) {  \
        Py_XDECREF(value);                                                                                     \
        Py_DECREF(dict);                                                                                       \
        return NULL;                                                                                           \
    }                                                                                                          \
    Py_DECREF(value);
    CPROF_HEAP_FIELDS(PUT_HEAP_FIELD)
#undef PUT_HEAP_FIELD
    return dict;
}

/* (node offset or -1, ip, the site counters in CPROF_HEAP_SITE_COUNTERS order) */
static PyObject *heap_site_tuple(const struct cprof_read_heap_site *site)
{
#define COUNT_SITE_COUNTER(name) +1
    PyObject *tuple = PyTuple_New(2 CPROF_HEAP_SITE_COUNTERS(COUNT_SITE_COUNTER));
#undef COUNT_SITE_COUNTER
    Py_ssize_t at = 2;
    if (!tuple)
        return NULL;
    PyTuple_SET_ITEM(tuple, 0, PyLong_FromLongLong(site->node));
    PyTuple_SET_ITEM(tuple, 1, PyLong_FromUnsignedLongLong(site->ip));
#define SET_SITE_COUNTER(name) PyTuple_SET_ITEM(tuple, at++, PyLong_FromUnsignedLongLong(site->name));
    CPROF_HEAP_SITE_COUNTERS(SET_SITE_COUNTER)
#undef SET_SITE_COUNTER
    for (at = 0; at < PyTuple_GET_SIZE(tuple); at++)
        if (!PyTuple_GET_ITEM(tuple, at)) {
            Py_DECREF(tuple);
            return NULL;
        }
    return tuple;
}

static PyObject *to_python(const struct cprof_read_result *r)
{
    PyObject *functions = PyList_New((Py_ssize_t)r->function_count);
    PyObject *nodes = PyList_New((Py_ssize_t)r->node_count);
    PyObject *threads = PyList_New((Py_ssize_t)r->thread_count);
    PyObject *counts = NULL, *samples = NULL, *modules = NULL, *heap = NULL, *heap_sites = NULL, *traces = NULL;
    PyObject *header = header_dict(&r->header);
    size_t i, j;
    if (!functions || !nodes || !threads || !header)
        goto fail;
    for (i = 0; i < r->function_count; i++) {
        const struct cprof_read_function *f = &r->functions[i];
        PyObject *item = Py_BuildValue("(INNII)", f->id, text(f->name, f->name_len), text(f->file, f->file_len),
                                       f->line, f->flags);
        if (!item)
            goto fail;
        PyList_SET_ITEM(functions, (Py_ssize_t)i, item);
    }
    for (i = 0; i < r->node_count; i++) {
        PyObject *item = node_tuple(&r->nodes[i]);
        if (!item)
            goto fail;
        PyList_SET_ITEM(nodes, (Py_ssize_t)i, item);
    }
    for (i = 0; i < r->thread_count; i++) {
        const struct cprof_read_thread *t = &r->threads[i];
        PyObject *frames = PyList_New((Py_ssize_t)t->open_frame_count), *item;
        if (!frames)
            goto fail;
        for (j = 0; j < t->open_frame_count; j++) {
            const struct cprof_read_frame *frame = &r->frames[t->first_open_frame + j];
            PyObject *pair = Py_BuildValue("(KK)", frame->node, frame->start_ticks);
            if (!pair) {
                Py_DECREF(frames);
                goto fail;
            }
            PyList_SET_ITEM(frames, (Py_ssize_t)j, pair);
        }
        item = Py_BuildValue("(IKNKKKKKN)", t->index, t->tid, text(t->name, strnlen(t->name, 16)), t->root,
                             t->start_ticks, t->end_ticks, t->last_ticks, t->lost_frames, frames);
        if (!item)
            goto fail;
        PyList_SET_ITEM(threads, (Py_ssize_t)i, item);
    }
    if (!(counts = PyList_New((Py_ssize_t)r->count_count)))
        goto fail;
    for (i = 0; i < r->count_count; i++) {
        const struct cprof_read_count *c = &r->counts[i];
        PyObject *item = Py_BuildValue("(IIK)", c->thread_index, c->function_id, c->calls);
        if (!item)
            goto fail;
        PyList_SET_ITEM(counts, (Py_ssize_t)i, item);
    }
    if (!(samples = PyList_New((Py_ssize_t)r->sample_count)))
        goto fail;
    for (i = 0; i < r->sample_count; i++) {
        const struct cprof_read_sample *sample = &r->samples[i];
        PyObject *item = Py_BuildValue("(IKKKKK)", sample->thread_index, sample->node, sample->ip, sample->caller,
                                       sample->weight, sample->signals);
        if (!item)
            goto fail;
        PyList_SET_ITEM(samples, (Py_ssize_t)i, item);
    }
    if (!(modules = PyList_New((Py_ssize_t)r->module_count)))
        goto fail;
    for (i = 0; i < r->module_count; i++) {
        const struct cprof_read_module *module = &r->modules[i];
        PyObject *item = Py_BuildValue("(NKKKKK)", text(module->path, module->path_len), module->base, module->low,
                                       module->high, module->mtime_ns, module->size);
        if (!item)
            goto fail;
        PyList_SET_ITEM(modules, (Py_ssize_t)i, item);
    }
    if (!(heap = heap_dict(r)) || !(heap_sites = PyList_New((Py_ssize_t)r->heap_site_count)))
        goto fail;
    for (i = 0; i < r->heap_site_count; i++) {
        PyObject *item = heap_site_tuple(&r->heap_sites[i]);
        if (!item)
            goto fail;
        PyList_SET_ITEM(heap_sites, (Py_ssize_t)i, item);
    }
    /* (thread index, the events as bytes: (node offset | cut, start, end) as native u64s) — a trace holds
     * millions of events, which the model unpacks only when a view needs them */
    if (!(traces = PyList_New((Py_ssize_t)r->trace_count)))
        goto fail;
    for (i = 0; i < r->trace_count; i++) {
        const struct cprof_read_trace *trace = &r->traces[i];
        PyObject *item = Py_BuildValue("(Iy#)", trace->thread_index, (const char *)trace->events,
                                       (Py_ssize_t)(trace->count * sizeof *trace->events));
        if (!item)
            goto fail;
        PyList_SET_ITEM(traces, (Py_ssize_t)i, item);
    }
    return Py_BuildValue("{s:N,s:O,s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:N}", "header", header, "complete",
                         r->complete ? Py_True : Py_False, "functions", functions, "nodes", nodes, "threads", threads,
                         "counts", counts, "samples", samples, "modules", modules, "heap", heap,
                         "heap_sites", heap_sites, "trace", traces);
fail:
    Py_XDECREF(traces);
    Py_XDECREF(heap);
    Py_XDECREF(heap_sites);
    Py_XDECREF(samples);
    Py_XDECREF(modules);
    Py_XDECREF(functions);
    Py_XDECREF(nodes);
    Py_XDECREF(threads);
    Py_XDECREF(counts);
    Py_XDECREF(header);
    return NULL;
}

static PyObject *read_run(PyObject *self, PyObject *args)
{
    Py_buffer buffer;
    struct cprof_read_result result;
    PyObject *value;
    int status;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*", &buffer))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    status = cprof_read_run(buffer.buf, (size_t)buffer.len, &result);
    Py_END_ALLOW_THREADS
    if (status != 0) {
        PyErr_SetString(PyExc_ValueError, result.error);
        cprof_read_free(&result);
        PyBuffer_Release(&buffer);
        return NULL;
    }
    value = to_python(&result);
    cprof_read_free(&result);
    PyBuffer_Release(&buffer);
    return value;
}

/* ---- foreign calls (cprof/library/): the Python side of csrc/ffi_call.c ------------------------------------ */
/* Every conversion a Python user can get wrong is checked here, before the call: a wrong type or count raises
 * TypeError, an integer out of its C type's range OverflowError, a buffer too small for what the pointer points
 * at TypeError. */

static PyObject *pointer_class; /* cprof.library.values.Pointer (a Callback is one too) */
/* the runtime's cprof_thread_attach, found when the first session begins: called before every call into a library,
 * so that a Python thread (which the runtime's pthread_create wrapper never sees) counts in its own thread */
static void (*thread_attach)(void);
static PyObject *struct_class;  /* cprof.library.values.StructValue, the base of every struct's class */
/* an exception raised by a Python callback, re-raised when the foreign call on this thread returns */
static __thread PyObject *pending_type, *pending_error, *pending_traceback;
static __thread int calls_in_progress;

#define TYPE_CAPSULE "cprof.ffi_type"
#define ARG_CONST 1u /* the pointer is to const: a read-only buffer will do */
#define ARG_CHAR 2u  /* char *: a str goes as NUL-terminated UTF-8 */

static void type_capsule_free(PyObject *capsule)
{
    ffi_type *type = PyCapsule_GetPointer(capsule, TYPE_CAPSULE);
    PyObject *members = PyCapsule_GetContext(capsule);
    if (type && type->type == FFI_TYPE_STRUCT)
        cprof_ffi_free_aggregate(type);
    Py_XDECREF(members);
}

static ffi_type *type_of(PyObject *capsule)
{
    return PyCapsule_GetPointer(capsule, TYPE_CAPSULE);
}

static PyObject *ffi_scalar(PyObject *self, PyObject *args)
{
    const char *code;
    ffi_type *type;
    (void)self;
    if (!PyArg_ParseTuple(args, "s", &code))
        return NULL;
    if (strlen(code) != 1 || !(type = cprof_ffi_scalar(code[0]))) {
        PyErr_Format(PyExc_ValueError, "no scalar type '%s'", code);
        return NULL;
    }
    return Py_BuildValue("(Nnn)", PyCapsule_New(type, TYPE_CAPSULE, NULL), (Py_ssize_t)type->size,
                         (Py_ssize_t)type->alignment);
}

/* (members: a sequence of type capsules, is_union) -> (capsule, size, alignment, [offset of each member]) */
static PyObject *ffi_aggregate(PyObject *self, PyObject *args)
{
    PyObject *members, *sequence, *capsule, *offsets = NULL;
    int is_union;
    Py_ssize_t count, i;
    ffi_type **types = NULL, *type = NULL;
    size_t *at = NULL;
    (void)self;
    if (!PyArg_ParseTuple(args, "Op", &members, &is_union))
        return NULL;
    if (!(sequence = PySequence_Tuple(members)))
        return NULL;
    count = PyTuple_GET_SIZE(sequence);
    types = PyMem_Calloc((size_t)count + 1, sizeof *types);
    at = PyMem_Calloc((size_t)count + 1, sizeof *at);
    if (!types || !at)
        goto fail;
    for (i = 0; i < count; i++)
        if (!(types[i] = type_of(PyTuple_GET_ITEM(sequence, i))))
            goto fail;
    if (!(type = cprof_ffi_aggregate(types, (size_t)count, is_union, at))) {
        PyErr_SetString(PyExc_ValueError, "libffi cannot lay out this struct");
        goto fail;
    }
    if (!(offsets = PyList_New(count)))
        goto fail;
    for (i = 0; i < count; i++)
        PyList_SET_ITEM(offsets, i, PyLong_FromSize_t(at[i]));
    if (!(capsule = PyCapsule_New(type, TYPE_CAPSULE, type_capsule_free)))
        goto fail;
    PyCapsule_SetContext(capsule, sequence); /* the members' types live as long as this one */
    PyMem_Free(types);
    PyMem_Free(at);
    return Py_BuildValue("(NnnN)", capsule, (Py_ssize_t)type->size, (Py_ssize_t)type->alignment, offsets);
fail:
    if (type)
        cprof_ffi_free_aggregate(type);
    Py_XDECREF(offsets);
    Py_DECREF(sequence);
    PyMem_Free(types);
    PyMem_Free(at);
    return NULL;
}

/* How one parameter (or a result) converts, from the tuple cprof/library/session.py makes:
 * (code, type capsule, flags, pointee code, pointee size, expected struct class, enum names, convert, label) */
struct arg_spec {
    char code;       /* a scalar code, 'S' a struct by value, 'F' a function pointer ('P' any other pointer) */
    char pointee;    /* 'P': the scalar it points at (a one-element list passes it in and out), else 0 */
    unsigned flags;  /* ARG_CONST, ARG_CHAR */
    size_t size;     /* 'S': the struct's size; 'P': the pointee's (0 when unknown: void, an incomplete struct) */
    ffi_type *type;
    PyObject *expected; /* the struct class a buffer must be when it is a struct (None: any) */
    PyObject *names;    /* an enum's names: dict name -> value (None) */
    PyObject *convert;  /* what the fast paths refuse goes through it once (dict -> struct, callable -> callback);
                           for results and callback arguments: makes the Python value (Pointer, str, struct) */
    PyObject *label;    /* "argument 2 (destLen: uLongf *)" */
};

static int read_spec(PyObject *tuple, struct arg_spec *spec)
{
    const char *code, *pointee;
    PyObject *capsule;
    Py_ssize_t size;
    if (!PyArg_ParseTuple(tuple, "sOIsnOOOU", &code, &capsule, &spec->flags, &pointee, &size, &spec->expected,
                          &spec->names, &spec->convert, &spec->label))
        return -1;
    spec->code = code[0];
    spec->pointee = pointee[0];
    spec->size = (size_t)size;
    if (!(spec->type = type_of(capsule)))
        return -1;
    /* borrowed: the function keeps every spec tuple */
    if (spec->expected == Py_None)
        spec->expected = NULL;
    if (spec->names == Py_None)
        spec->names = NULL;
    if (spec->convert == Py_None)
        spec->convert = NULL;
    return 0;
}

static const char *type_name(PyObject *value) { return Py_TYPE(value)->tp_name; }

/* A Python int or float into a scalar slot, range-checked. */
static int put_scalar(const struct arg_spec *spec, char code, PyObject *value, void *slot)
{
    if (cprof_ffi_is_integer(code)) {
        if (PyUnicode_Check(value) && spec->names) {
            PyObject *number = PyDict_GetItemWithError(spec->names, value);
            if (!number) {
                if (!PyErr_Occurred())
                    PyErr_Format(PyExc_TypeError, "%U: '%U' is none of the enum's names", spec->label, value);
                return -1;
            }
            value = number;
        }
        if (!PyLong_Check(value)) {
            PyErr_Format(PyExc_TypeError, "%U takes an int%s, not %s", spec->label,
                         spec->names ? " or one of the enum's names" : "", type_name(value));
            return -1;
        }
        if (cprof_ffi_is_signed(code)) {
            long long number = PyLong_AsLongLong(value);
            if ((number == -1 && PyErr_Occurred()) || cprof_ffi_put_signed(slot, code, number) != 0)
                goto range;
        } else {
            unsigned long long number;
            if (_PyLong_Sign(value) < 0)
                goto range;
            number = PyLong_AsUnsignedLongLong(value);
            if ((number == (unsigned long long)-1 && PyErr_Occurred()) || cprof_ffi_put_unsigned(slot, code, number) != 0)
                goto range;
        }
        return 0;
    }
    if (cprof_ffi_is_floating(code)) {
        double number;
        if (!PyFloat_Check(value) && !PyLong_Check(value)) {
            PyErr_Format(PyExc_TypeError, "%U takes a float, not %s", spec->label, type_name(value));
            return -1;
        }
        number = PyFloat_AsDouble(value);
        if (number == -1.0 && PyErr_Occurred())
            return -1;
        if (code == 'f') {
            if (isfinite(number) && fabs(number) > FLT_MAX) {
                PyErr_Format(PyExc_OverflowError, "%U: %R is out of range for a C float", spec->label, value);
                return -1;
            }
            *(float *)slot = (float)number;
        } else if (code == 'd') {
            *(double *)slot = number;
        } else {
            *(long double *)slot = number;
        }
        return 0;
    }
    PyErr_Format(PyExc_TypeError, "%U has a type cprof cannot pass", spec->label);
    return -1;
range:
    PyErr_Clear();
    PyErr_Format(PyExc_OverflowError, "%U: %R is out of range for its C type (%zu-byte %s integer)", spec->label,
                 value, cprof_ffi_scalar_size(code), cprof_ffi_is_signed(code) ? "signed" : "unsigned");
    return -1;
}

static PyObject *scalar_value(char code, const void *slot, int widened)
{
    if (cprof_ffi_is_signed(code))
        return PyLong_FromLongLong(cprof_ffi_get_signed(slot, code, widened));
    if (cprof_ffi_is_integer(code))
        return PyLong_FromUnsignedLongLong(cprof_ffi_get_unsigned(slot, code, widened));
    if (code == 'f')
        return PyFloat_FromDouble(*(const float *)slot);
    if (code == 'd')
        return PyFloat_FromDouble(*(const double *)slot);
    if (code == 'g')
        return PyFloat_FromDouble((double)*(const long double *)slot);
    Py_RETURN_NONE;
}

/* What one argument needs for the length of a call. */
struct call_arg {
    cprof_ffi_slot slot;  /* scalars and pointers */
    cprof_ffi_slot out;   /* a one-element list's value, passed by address */
    Py_buffer view;
    int has_view;
    PyObject *list;       /* the one-element list to write `out` back into */
    PyObject *held;       /* what a conversion made (a struct from a dict, a callback): alive until the return */
    char *copy;           /* a str copied for a non-const char * */
};

static int pointer_address(PyObject *value, void **address)
{
    PyObject *number = PyObject_GetAttrString(value, "address");
    if (!number)
        return -1;
    *address = PyLong_AsVoidPtr(number);
    Py_DECREF(number);
    return *address == NULL && PyErr_Occurred() ? -1 : 0;
}

static int wrong_struct(const struct arg_spec *spec, PyObject *value)
{
    if (spec->expected && struct_class && PyObject_TypeCheck(value, (PyTypeObject *)struct_class) &&
        !PyObject_TypeCheck(value, (PyTypeObject *)spec->expected)) {
        PyErr_Format(PyExc_TypeError, "%U takes a %s, not a %s", spec->label,
                     ((PyTypeObject *)spec->expected)->tp_name, type_name(value));
        return 1;
    }
    return 0;
}

static int convert_arg(const struct arg_spec *spec, PyObject *value, struct call_arg *arg, void **avalue,
                       int may_convert);

static int converted(const struct arg_spec *spec, PyObject *value, struct call_arg *arg, void **avalue)
{
    PyObject *made = PyObject_CallOneArg(spec->convert, value);
    if (!made)
        return -1;
    Py_XSETREF(arg->held, made);
    return convert_arg(spec, made, arg, avalue, 0);
}

static int convert_pointer(const struct arg_spec *spec, PyObject *value, struct call_arg *arg, int may_convert,
                           void **avalue)
{
    void **pointer = (void **)&arg->slot;
    *avalue = pointer;
    if (value == Py_None) {
        *pointer = NULL;
        return 0;
    }
    if (pointer_class && PyObject_TypeCheck(value, (PyTypeObject *)pointer_class))
        return pointer_address(value, pointer);
    if (spec->code == 'F') {
        if (may_convert && spec->convert && PyCallable_Check(value))
            return converted(spec, value, arg, avalue);
        PyErr_Format(PyExc_TypeError, "%U takes a Python callable, a Callback or None, not %s", spec->label,
                     type_name(value));
        return -1;
    }
    if (PyUnicode_Check(value) && (spec->flags & ARG_CHAR)) {
        Py_ssize_t length;
        const char *text = PyUnicode_AsUTF8AndSize(value, &length);
        if (!text)
            return -1;
        if (spec->flags & ARG_CONST) {
            *pointer = (void *)text;
        } else { /* the library may write into it: a copy of its own, not the str's cached UTF-8 */
            if (!(arg->copy = PyMem_Malloc((size_t)length + 1)))
                return PyErr_NoMemory(), -1;
            memcpy(arg->copy, text, (size_t)length + 1);
            *pointer = arg->copy;
        }
        return 0;
    }
    if (PyList_CheckExact(value) && spec->pointee && PyList_GET_SIZE(value) == 1) {
        PyObject *item = PyList_GET_ITEM(value, 0);
        memset(&arg->out, 0, sizeof arg->out);
        if (item != Py_None && put_scalar(spec, spec->pointee, item, &arg->out) != 0)
            return -1;
        arg->list = value;
        *pointer = &arg->out;
        return 0;
    }
    if (PyObject_CheckBuffer(value)) {
        if (wrong_struct(spec, value))
            return -1;
        if (PyObject_GetBuffer(value, &arg->view, (spec->flags & ARG_CONST) ? PyBUF_SIMPLE : PyBUF_WRITABLE) != 0) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "%U points at memory the function may write: it takes a writable, "
                         "contiguous buffer (bytearray, a memoryview of one, array...), not %s", spec->label,
                         type_name(value));
            return -1;
        }
        arg->has_view = 1;
        if ((size_t)arg->view.len < spec->size) {
            PyErr_Format(PyExc_TypeError, "%U points at %zu bytes, and the buffer given holds only %zd",
                         spec->label, spec->size, arg->view.len);
            return -1;
        }
        *pointer = arg->view.buf;
        return 0;
    }
    if (may_convert && spec->convert)
        return converted(spec, value, arg, avalue);
    PyErr_Format(PyExc_TypeError, "%U takes None, a Pointer, a buffer (bytes, bytearray, memoryview...)%s%s, not %s",
                 spec->label, spec->flags & ARG_CHAR ? ", a str" : "",
                 spec->pointee ? ", or a one-element list (an out-parameter)" : "", type_name(value));
    return -1;
}

static int convert_arg(const struct arg_spec *spec, PyObject *value, struct call_arg *arg, void **avalue,
                       int may_convert)
{
    if (spec->code == 'P' || spec->code == 'F')
        return convert_pointer(spec, value, arg, may_convert, avalue);
    if (spec->code == 'S') {
        if (wrong_struct(spec, value))
            return -1;
        if (PyObject_CheckBuffer(value) && PyObject_GetBuffer(value, &arg->view, PyBUF_SIMPLE) == 0) {
            arg->has_view = 1;
            if ((size_t)arg->view.len != spec->size) {
                PyErr_Format(PyExc_TypeError, "%U is a struct of %zu bytes, and the buffer given holds %zd",
                             spec->label, spec->size, arg->view.len);
                return -1;
            }
            *avalue = arg->view.buf;
            return 0;
        }
        PyErr_Clear();
        if (may_convert && spec->convert)
            return converted(spec, value, arg, avalue);
        PyErr_Format(PyExc_TypeError, "%U takes a struct value or a dict of its fields, not %s", spec->label,
                     type_name(value));
        return -1;
    }
    *avalue = &arg->slot;
    return put_scalar(spec, spec->code, value, &arg->slot);
}

static void release_arg(struct call_arg *arg)
{
    if (arg->has_view)
        PyBuffer_Release(&arg->view);
    Py_XDECREF(arg->held);
    PyMem_Free(arg->copy);
}

/* A Python value for a result or a callback's argument (`widened`: libffi's result slot). */
static PyObject *value_of(const struct arg_spec *spec, const void *slot, int widened)
{
    PyObject *raw;
    if (spec->code == 'S') {
        raw = PyBytes_FromStringAndSize(slot, (Py_ssize_t)spec->size);
    } else if (spec->code == 'P' || spec->code == 'F') {
        raw = PyLong_FromVoidPtr(*(void *const *)slot);
    } else {
        return scalar_value(spec->code, slot, widened);
    }
    if (!raw || !spec->convert)
        return raw;
    Py_SETREF(raw, PyObject_CallOneArg(spec->convert, raw));
    return raw;
}

/* A C signature as libffi calls it, from the specs of its result and parameters (a Function's or a Closure's). */
struct signature {
    ffi_cif cif;
    ffi_type **types;
    struct arg_spec *args;
    struct arg_spec result;
    Py_ssize_t count;
    PyObject *specs; /* the spec tuples, which the arg_specs borrow from */
};

static int signature_init(struct signature *signature, PyObject *result_spec, PyObject *arg_specs)
{
    Py_ssize_t i;
    signature->count = PyTuple_GET_SIZE(arg_specs);
    signature->types = PyMem_Calloc((size_t)signature->count + 1, sizeof *signature->types);
    signature->args = PyMem_Calloc((size_t)signature->count + 1, sizeof *signature->args);
    signature->specs = Py_BuildValue("(OO)", result_spec, arg_specs);
    if (!signature->types || !signature->args || !signature->specs) {
        PyErr_NoMemory();
        return -1;
    }
    if (read_spec(result_spec, &signature->result) != 0)
        return -1;
    for (i = 0; i < signature->count; i++) {
        if (read_spec(PyTuple_GET_ITEM(arg_specs, i), &signature->args[i]) != 0)
            return -1;
        signature->types[i] = signature->args[i].type;
    }
    if (cprof_ffi_prepare(&signature->cif, signature->result.type, signature->types, (unsigned)signature->count) != 0) {
        PyErr_SetString(PyExc_ValueError, "libffi cannot call a function of this signature");
        return -1;
    }
    return 0;
}

static void signature_clear(struct signature *signature)
{
    PyMem_Free(signature->types);
    PyMem_Free(signature->args);
    Py_XDECREF(signature->specs);
}

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    void (*address)(void);
    struct signature signature;
    PyObject *name; /* "compress(dest, destLen, source, sourceLen)", for messages */
} FunctionObject;

#define STACK_ARGS 12

static PyObject *function_vectorcall(PyObject *callable, PyObject *const *values, size_t nargsf, PyObject *kwnames)
{
    FunctionObject *self = (FunctionObject *)callable;
    Py_ssize_t count = PyVectorcall_NARGS(nargsf), i, done = 0;
    struct call_arg stack_args[STACK_ARGS], *args = stack_args;
    void *stack_values[STACK_ARGS], **avalues = stack_values;
    cprof_ffi_slot small_result;
    void *result = &small_result;
    PyObject *value = NULL;
    if (kwnames && PyTuple_GET_SIZE(kwnames)) {
        PyErr_Format(PyExc_TypeError, "%U takes no keyword arguments", self->name);
        return NULL;
    }
    if (count != self->signature.count) {
        PyErr_Format(PyExc_TypeError, "%U takes %zd argument%s, got %zd", self->name, self->signature.count,
                     self->signature.count == 1 ? "" : "s", count);
        return NULL;
    }
    if (count > STACK_ARGS) {
        args = PyMem_Calloc((size_t)count, sizeof *args);
        avalues = PyMem_Calloc((size_t)count, sizeof *avalues);
        if (!args || !avalues)
            goto done;
    } else {
        memset(args, 0, (size_t)count * sizeof *args);
    }
    if (self->signature.result.code == 'S' && self->signature.result.size > sizeof small_result &&
        !(result = PyMem_Calloc(1, self->signature.result.size + sizeof(ffi_arg))))
        goto done;
    for (; done < count; done++)
        if (convert_arg(&self->signature.args[done], values[done], &args[done], &avalues[done], 1) != 0) {
            done++;
            goto done;
        }
    calls_in_progress++;
    Py_BEGIN_ALLOW_THREADS
    if (thread_attach)
        thread_attach();
    ffi_call(&self->signature.cif, self->address, result, avalues);
    Py_END_ALLOW_THREADS
    calls_in_progress--;
    if (pending_type && calls_in_progress == 0) { /* a callback raised: the call's result is not wanted */
        PyErr_Restore(pending_type, pending_error, pending_traceback);
        pending_type = pending_error = pending_traceback = NULL;
        goto done;
    }
    for (i = 0; i < count; i++) /* out-parameters */
        if (args[i].list) {
            PyObject *out = scalar_value(self->signature.args[i].pointee, &args[i].out, 0);
            if (!out || PyList_SetItem(args[i].list, 0, out) != 0)
                goto done;
        }
    value = self->signature.result.code == 'v' ? Py_NewRef(Py_None) : value_of(&self->signature.result, result, 1);
done:
    for (i = 0; i < done; i++)
        release_arg(&args[i]);
    if (args != stack_args)
        PyMem_Free(args);
    if (avalues != stack_values)
        PyMem_Free(avalues);
    if (result != &small_result)
        PyMem_Free(result);
    return value;
}

static void function_dealloc(FunctionObject *self)
{
    signature_clear(&self->signature);
    Py_XDECREF(self->name);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *function_repr(FunctionObject *self) { return PyUnicode_FromFormat("<C function %U>", self->name); }

static PyTypeObject FunctionType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "cprof._native.Function",
    .tp_basicsize = sizeof(FunctionObject),
    .tp_dealloc = (destructor)function_dealloc,
    .tp_vectorcall_offset = offsetof(FunctionObject, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_repr = (reprfunc)function_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "A C function called through libffi (cprof.library).",
};

/* (address, name, result spec, argument specs tuple) -> Function */
static PyObject *ffi_function(PyObject *self, PyObject *args)
{
    PyObject *address, *name, *result_spec, *arg_specs;
    FunctionObject *function;
    (void)self;
    if (!PyArg_ParseTuple(args, "OUOO!", &address, &name, &result_spec, &PyTuple_Type, &arg_specs))
        return NULL;
    if (!(function = PyObject_New(FunctionObject, &FunctionType)))
        return NULL;
    function->vectorcall = function_vectorcall;
    memset(&function->signature, 0, sizeof function->signature);
    function->name = Py_NewRef(name);
    function->address = (void (*)(void))PyLong_AsVoidPtr(address);
    if (PyErr_Occurred() || signature_init(&function->signature, result_spec, arg_specs) != 0) {
        Py_DECREF(function);
        return NULL;
    }
    return (PyObject *)function;
}

/* ---- callbacks: a Python callable behind a C function pointer (a libffi closure) ----------------------- */

typedef struct {
    PyObject_HEAD
    struct cprof_ffi_closure *closure;
    void *code;
    struct signature signature;
    PyObject *callable;
} ClosureObject;

static void closure_handler(ffi_cif *cif, void *result, void **arguments, void *data)
{
    ClosureObject *self = data;
    PyGILState_STATE gil = PyGILState_Ensure();
    PyObject *tuple = PyTuple_New(self->signature.count), *returned = NULL;
    cprof_ffi_slot value;
    Py_ssize_t i;
    (void)cif;
    if (self->signature.result.code != 'v') /* what a failed callback returns: zero */
        memset(result, 0, self->signature.result.code == 'S' ? self->signature.result.size
                          : cprof_ffi_scalar_size(self->signature.result.code) > sizeof(ffi_arg) ? cprof_ffi_scalar_size(self->signature.result.code)
                                                                                       : sizeof(ffi_arg));
    if (!tuple)
        goto failed;
    for (i = 0; i < self->signature.count; i++) {
        PyObject *item = value_of(&self->signature.args[i], arguments[i], 0);
        if (!item)
            goto failed;
        PyTuple_SET_ITEM(tuple, i, item);
    }
    if (!(returned = PyObject_Call(self->callable, tuple, NULL)))
        goto failed;
    if (self->signature.result.code != 'v') {
        void *where = NULL;
        memset(&value, 0, sizeof value);
        if (self->signature.result.code == 'S') {
            struct call_arg arg;
            memset(&arg, 0, sizeof arg);
            if (convert_arg(&self->signature.result, returned, &arg, &where, 1) != 0) {
                release_arg(&arg);
                goto failed;
            }
            memcpy(result, where, self->signature.result.size);
            release_arg(&arg);
        } else if (self->signature.result.code == 'P' || self->signature.result.code == 'F') {
            /* only what outlives the callback may be returned: None or a Pointer, never a temporary buffer */
            if (returned != Py_None && !(pointer_class && PyObject_TypeCheck(returned, (PyTypeObject *)pointer_class))) {
                PyErr_Format(PyExc_TypeError, "%U: a callback returns None or a Pointer, not %s", self->signature.result.label,
                             type_name(returned));
                goto failed;
            }
            if (returned != Py_None && pointer_address(returned, (void **)result) != 0)
                goto failed;
        } else {
            if (put_scalar(&self->signature.result, self->signature.result.code, returned, &value) != 0)
                goto failed;
            cprof_ffi_put_result(result, self->signature.result.code, &value);
        }
    }
    Py_XDECREF(tuple);
    Py_XDECREF(returned);
    PyGILState_Release(gil);
    return;
failed:
    Py_XDECREF(tuple);
    Py_XDECREF(returned);
    /* raised again where Python called into the library on this thread; a library thread's callback has no
     * caller to raise it in */
    if (calls_in_progress && !pending_type)
        PyErr_Fetch(&pending_type, &pending_error, &pending_traceback);
    else
        PyErr_WriteUnraisable(self->callable);
    PyErr_Clear();
    PyGILState_Release(gil);
}

static void closure_dealloc(ClosureObject *self)
{
    cprof_ffi_closure_free(self->closure);
    signature_clear(&self->signature);
    Py_XDECREF(self->callable);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *closure_address(ClosureObject *self, void *unused)
{
    (void)unused;
    return PyLong_FromVoidPtr(self->code);
}

static PyGetSetDef closure_getset[] = {
    {"address", (getter)closure_address, NULL, "The C function pointer that calls the Python callable.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject ClosureType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "cprof._native.Closure",
    .tp_basicsize = sizeof(ClosureObject),
    .tp_dealloc = (destructor)closure_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_getset = closure_getset,
    .tp_doc = "A libffi closure: a C function pointer that calls a Python callable.",
};

/* (callable, result spec, argument specs tuple) -> Closure */
static PyObject *make_closure(PyObject *self, PyObject *args)
{
    PyObject *callable, *result_spec, *arg_specs;
    ClosureObject *closure;
    (void)self;
    if (!PyArg_ParseTuple(args, "OOO!", &callable, &result_spec, &PyTuple_Type, &arg_specs))
        return NULL;
    if (!(closure = PyObject_New(ClosureObject, &ClosureType)))
        return NULL;
    closure->closure = NULL;
    memset(&closure->signature, 0, sizeof closure->signature);
    closure->callable = Py_NewRef(callable);
    if (signature_init(&closure->signature, result_spec, arg_specs) != 0) {
        Py_DECREF(closure);
        return NULL;
    }
    if (!(closure->closure = cprof_ffi_closure_new(&closure->signature.cif, closure_handler, closure, &closure->code))) {
        Py_DECREF(closure);
        return PyErr_NoMemory();
    }
    return (PyObject *)closure;
}

/* ---- libraries, memory and the runtime's sessions ------------------------------------------------------- */

/* Libraries are never closed: the runtime they carry keeps pointers into them (function sites). */
static PyObject *ffi_open(PyObject *self, PyObject *args)
{
    const char *path;
    char error[512];
    void *library;
    (void)self;
    if (!PyArg_ParseTuple(args, "s", &path))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    library = cprof_ffi_open(path, error, sizeof error);
    Py_END_ALLOW_THREADS
    if (!library) {
        PyErr_SetString(PyExc_OSError, error);
        return NULL;
    }
    return PyLong_FromVoidPtr(library);
}

static PyObject *ffi_symbol(PyObject *self, PyObject *args)
{
    PyObject *library;
    const char *name;
    void *address;
    (void)self;
    if (!PyArg_ParseTuple(args, "Os", &library, &name))
        return NULL;
    address = cprof_ffi_symbol(PyLong_AsVoidPtr(library), name);
    if (!address)
        Py_RETURN_NONE;
    return PyLong_FromVoidPtr(address);
}

/* (address, size) -> bytes: what a Pointer points at (Pointer.read: the caller vouches for the memory) */
static PyObject *ffi_read(PyObject *self, PyObject *args)
{
    PyObject *address;
    Py_ssize_t size;
    void *at;
    (void)self;
    if (!PyArg_ParseTuple(args, "On", &address, &size))
        return NULL;
    at = PyLong_AsVoidPtr(address);
    if (!at || size < 0) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "cannot read through a NULL pointer");
        return NULL;
    }
    return PyBytes_FromStringAndSize(at, size);
}

/* address -> bytes up to the NUL (a char * result) */
static PyObject *ffi_string(PyObject *self, PyObject *address)
{
    const char *at = PyLong_AsVoidPtr(address);
    (void)self;
    if (!at) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "cannot read through a NULL pointer");
        return NULL;
    }
    return PyBytes_FromString(at);
}

/* (buffer, writable) -> the address of a buffer's memory, for a struct's pointer field (the struct keeps the
 * object alive) */
static PyObject *ffi_buffer_address(PyObject *self, PyObject *args)
{
    PyObject *object, *address;
    int writable;
    Py_buffer view;
    (void)self;
    if (!PyArg_ParseTuple(args, "Op", &object, &writable))
        return NULL;
    if (PyObject_GetBuffer(object, &view, writable ? PyBUF_WRITABLE : PyBUF_SIMPLE) != 0)
        return NULL;
    address = PyLong_FromVoidPtr(view.buf);
    PyBuffer_Release(&view);
    return address;
}

/* (library, run directory or None, enable or -1) -> 0, or -1 when the runtime cannot record. A None directory
 * ends the session (cprof_session_end); enable (0 or 1) switches profiling (cprof_set_enabled). */
static PyObject *runtime_session(PyObject *self, PyObject *args)
{
    PyObject *library;
    const char *dir;
    int enable, status = -1;
    void *handle;
    (void)self;
    if (!PyArg_ParseTuple(args, "Ozi", &library, &dir, &enable))
        return NULL;
    handle = PyLong_AsVoidPtr(library);
    if (!handle)
        return NULL;
    if (enable >= 0) {
        void (*set_enabled)(int) = (void (*)(int))cprof_ffi_symbol(handle, "cprof_set_enabled");
        if (set_enabled) {
            set_enabled(enable);
            status = 0;
        }
    } else if (dir) {
        int (*begin)(const char *) = (int (*)(const char *))cprof_ffi_symbol(handle, "cprof_session_begin");
        if (!thread_attach)
            thread_attach = (void (*)(void))cprof_ffi_symbol(handle, "cprof_thread_attach");
        if (begin) {
            Py_BEGIN_ALLOW_THREADS
            status = begin(dir);
            Py_END_ALLOW_THREADS
        }
    } else {
        int (*end)(void) = (int (*)(void))cprof_ffi_symbol(handle, "cprof_session_end");
        if (end) {
            Py_BEGIN_ALLOW_THREADS
            status = end();
            Py_END_ALLOW_THREADS
        }
    }
    return PyLong_FromLong(status);
}

/* (Pointer class, StructValue class): what the conversions recognise */
static PyObject *ffi_setup(PyObject *self, PyObject *args)
{
    PyObject *pointer, *structure;
    (void)self;
    if (!PyArg_ParseTuple(args, "O!O!", &PyType_Type, &pointer, &PyType_Type, &structure))
        return NULL;
    Py_XSETREF(pointer_class, Py_NewRef(pointer));
    Py_XSETREF(struct_class, Py_NewRef(structure));
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"timer_info", timer_info, METH_NOARGS, "The counter cprof would use here and its calibrated frequency."},
    {"read_run", read_run, METH_VARARGS, "Parse a run-file image (bytes-like) into plain Python structures."},
    {"ffi_scalar", ffi_scalar, METH_VARARGS, "A scalar type code -> (type, size, alignment)."},
    {"ffi_aggregate", ffi_aggregate, METH_VARARGS, "(member types, is_union) -> (type, size, alignment, offsets)."},
    {"ffi_function", ffi_function, METH_VARARGS, "(address, name, result spec, argument specs) -> Function."},
    {"ffi_closure", make_closure, METH_VARARGS, "(callable, result spec, argument specs) -> Closure."},
    {"ffi_open", ffi_open, METH_VARARGS, "dlopen a library: its handle."},
    {"ffi_symbol", ffi_symbol, METH_VARARGS, "(library, name) -> address, or None."},
    {"ffi_read", ffi_read, METH_VARARGS, "(address, size) -> the bytes there."},
    {"ffi_string", ffi_string, METH_O, "address -> the NUL-terminated bytes there."},
    {"ffi_buffer_address", ffi_buffer_address, METH_VARARGS, "(buffer, writable) -> its memory's address."},
    {"ffi_setup", ffi_setup, METH_VARARGS, "(Pointer class, StructValue class)."},
    {"runtime_session", runtime_session, METH_VARARGS, "(library, run dir or None, enable or -1) -> status."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "cprof._native", "cprof's C extension", -1, methods};

PyMODINIT_FUNC PyInit__native(void)
{
    PyObject *made;
    if (PyType_Ready(&FunctionType) < 0 || PyType_Ready(&ClosureType) < 0 || !(made = PyModule_Create(&module)))
        return NULL;
    if (PyModule_AddObjectRef(made, "Function", (PyObject *)&FunctionType) < 0 ||
        PyModule_AddObjectRef(made, "Closure", (PyObject *)&ClosureType) < 0) {
        Py_DECREF(made);
        return NULL;
    }
    return made;
}
