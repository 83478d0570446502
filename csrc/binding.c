/* binding.c — cprof._native, the only file that includes Python.h: timer facts and the fast run-file reader. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "reader.h"
#include "timer.h"

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
        "s:K,s:K,s:d,s:d,s:K,s:K,s:K,s:K,s:K,s:N}",
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
        "trace_dropped", h->trace_dropped, "cmdline", cmdline);
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

static PyMethodDef methods[] = {
    {"timer_info", timer_info, METH_NOARGS, "The counter cprof would use here and its calibrated frequency."},
    {"read_run", read_run, METH_VARARGS, "Parse a run-file image (bytes-like) into plain Python structures."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "cprof._native", "cprof's C extension", -1, methods};

PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&module); }
