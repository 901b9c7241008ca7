/* SPDX-License-Identifier: MIT */
/*
 * buffer.c - the StreamBuffer type: options, the kind of source, close.
 */
#include "common.h"

static const char seed_key_error[] =
    "Expected a collection with a length of 2 or a slice object.";

/* close(): cancel, and free as soon as no call uses the buffer.  Refused
   (BufferError) while a view of its bytes lives. */
static int close_core(BufferObject *self)
{
    struct core *c = self->core;
    if (c == NULL || c->closed)
        return 0;
    if (sb__py_views_below(c, NULL, UINT64_MAX, "close the StreamBuffer"))
        return -1;
    c->closed = true;
    atomic_store(&c->stop, true);
    sb_cancel(c->b); /* wakes every reader in flight */
    /* A closed buffer lets its source go (a generator is finalized, a
       response freed), as a closed file lets its descriptor go; it does
       not close it: the source stays the caller's. */
    Py_SETREF(self->stream, Py_NewRef(Py_None));
    if (c->users > 0)
        return 0; /* the last of them frees it (sb__py_leave) */
    self->core = NULL;
    sb__py_teardown(c);
    return 0;
}

static PyObject *Buffer_wait_end(BufferObject *self, PyObject *unused)
{
    (void)unused;
    struct core *c = sb__py_enter(self);
    if (c == NULL)
        return NULL;
    uint64_t len;
    PyObject *res = sb__py_wait_end(c, &len) < 0 ? NULL : PyLong_FromUnsignedLongLong(len);
    sb__py_leave(self, c);
    return res;
}

static PyObject *Buffer_is_exhausted(BufferObject *self, PyObject *unused)
{
    (void)unused;
    struct core *c = sb__py_enter(self);
    if (c == NULL)
        return NULL;
    sb_stats st;
    PyObject *res = NULL;
    if (sb_get_stats(c->b, &st) < 0)
        sb__py_os_error(errno);
    else
        res = PyBool_FromLong(st.state != SB_RUNNING);
    sb__py_leave(self, c);
    return res;
}

static PyObject *Buffer_cancel(BufferObject *self, PyObject *unused)
{
    (void)unused;
    struct core *c = sb__py_enter(self);
    if (c == NULL)
        return NULL;
    sb_cancel(c->b);
    sb__py_leave(self, c);
    Py_RETURN_NONE;
}

/* An aread waits on the poll descriptor, which a close leaves quiet (its
   readers leave the ready list with it): the close wakes them itself.
   Only once streambuffer._aio is loaded, that is, once some aread ran. */
static int wake_areads(BufferObject *self)
{
    PyObject *name = PyUnicode_FromString("streambuffer._aio");
    if (name == NULL)
        return -1;
    PyObject *aio = PyImport_GetModule(name);
    Py_DECREF(name);
    if (aio == NULL)
        return PyErr_Occurred() ? -1 : 0;
    PyObject *r = PyObject_CallMethod(aio, "_closed", "O", (PyObject *)self);
    Py_DECREF(aio);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

static PyObject *Buffer_close(BufferObject *self, PyObject *unused)
{
    (void)unused;
    if (close_core(self) < 0 || wake_areads(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *Buffer_enter(BufferObject *self, PyObject *unused)
{
    (void)unused;
    if (self->core == NULL || self->core->closed)
        return sb__py_closed_error();
    return Py_NewRef(self);
}

static PyObject *Buffer_exit(BufferObject *self, PyObject *args)
{
    (void)args;
    return close_core(self) < 0 || wake_areads(self) < 0 ? NULL : Py_NewRef(Py_False);
}

static PyObject *Buffer_stats(BufferObject *self, PyObject *unused)
{
    (void)unused;
    static const char *const states[] = { "running", "ended", "failed" };
    struct core *c = sb__py_enter(self);
    if (c == NULL)
        return NULL;
    sb_stats st;
    PyObject *res = NULL, *error = NULL, *demand = NULL, *length = NULL;
    if (sb_get_stats(c->b, &st) < 0) {
        sb__py_os_error(errno);
        goto out;
    }
    /* No sentinel integers: error is None unless the stream failed, and
       demand None while nothing was asked for, infinite once a read asked
       for the whole stream (the library's UINT64_MAX; no offset passes
       2^63).  length likewise None while it is not known: the library's 0
       is a length only once the stream has ended. */
    error = st.state == SB_FAILED ? PyLong_FromLong(st.error) : Py_NewRef(Py_None);
    length = st.length == 0 && st.state != SB_ENDED
                 ? Py_NewRef(Py_None)
                 : PyLong_FromUnsignedLongLong(st.length);
    if (st.demand == 0)
        demand = Py_NewRef(Py_None);
    else if (st.demand > (uint64_t)INT64_MAX)
        demand = PyFloat_FromDouble(Py_HUGE_VAL);
    else
        demand = PyLong_FromUnsignedLongLong(st.demand);
    if (error != NULL && demand != NULL && length != NULL)
        res = Py_BuildValue(
            "{sKsKsKsKsKsKsssOsKsOsKsKsKsKsKsOsKsKsKsKsKsOsKsKsK}",
            "filled", (unsigned long long)st.filled,
            "in_memory", (unsigned long long)st.in_memory,
            "spilled", (unsigned long long)st.spilled,
            "publishes", (unsigned long long)st.publishes,
            "waiting", (unsigned long long)st.waiting,
            "wakeups", (unsigned long long)st.wakeups,
            "state", st.state >= 0 && st.state <= 2 ? states[st.state] : "?",
            "error", error,
            "floor", (unsigned long long)st.floor,
            "demand", demand,
            "released", (unsigned long long)st.released,
            "pauses", (unsigned long long)st.pauses,
            "paused_ns", (unsigned long long)st.paused_ns,
            "readers", (unsigned long long)st.readers,
            "huge_pages", (unsigned long long)st.huge_pages,
            "paused", st.paused ? Py_True : Py_False,
            "parts_opened", (unsigned long long)st.parts_opened,
            "parts_active", (unsigned long long)st.parts_active,
            "fetched", (unsigned long long)st.fetched,
            "refetched", (unsigned long long)st.refetched,
            "extents", (unsigned long long)st.extents,
            "length", length,
            "seek_gap", (unsigned long long)st.seek_gap,
            "parts_moved", (unsigned long long)st.parts_moved,
            "part_retries", (unsigned long long)st.part_retries);
out:
    Py_XDECREF(error);
    Py_XDECREF(demand);
    Py_XDECREF(length);
    sb__py_leave(self, c);
    return res;
}

static PyObject *Buffer_open(BufferObject *self, PyObject *args, PyObject *kw)
{
    if (self->core == NULL || self->core->closed)
        return sb__py_closed_error();
    return sb__py_call_py("streambuffer._io", "open_buffer", (PyObject *)self, args, kw);
}

static PyObject *Buffer_reader(BufferObject *self, PyObject *args, PyObject *kw)
{
    static char *names[] = { "floor", NULL };
    PyObject *flo = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:reader", names, &flo))
        return NULL;
    return sb__py_reader_new(self, flo, 0);
}

/* ---- asyncio's primitives (the rest is in streambuffer/_aio.py) ---- */

static PyObject *Buffer_nb_reader(BufferObject *self, PyObject *flo)
{
    return sb__py_reader_new(self, flo, SB_NONBLOCK);
}

/* A descriptor of the buffer's own: a dup of sb_poll_fd, which the caller
   closes.  The loop may still have it registered when the buffer is
   closed (and sb_close closes the original): a dup stays a valid fd of
   the same eventfd until the loop lets go of it. */
static PyObject *Buffer_poll_fd(BufferObject *self, PyObject *unused)
{
    (void)unused;
    struct core *c = sb__py_enter(self);
    if (c == NULL)
        return NULL;
    int fd = sb_poll_fd(c->b);
    int mine = fd < 0 ? -1 : fcntl(fd, F_DUPFD_CLOEXEC, 0);
    int err = errno;
    sb__py_leave(self, c);
    if (mine < 0)
        return sb__py_os_error(err);
    return PyLong_FromLong(mine);
}

/* The non-blocking Readers that became ready, at most max of them. */
static PyObject *Buffer_poll_ready(BufferObject *self, PyObject *arg)
{
    Py_ssize_t max = PyLong_AsSsize_t(arg);
    if (max == -1 && PyErr_Occurred())
        return NULL;
    if (max < 0 || max > 4096) {
        PyErr_SetString(PyExc_ValueError, "max must be in 0..4096");
        return NULL;
    }
    struct core *c = sb__py_enter(self);
    if (c == NULL)
        return NULL;
    sb_reader *ready[4096];
    size_t k = sb_poll_ready(c->b, ready, (size_t)max);
    PyObject *out = PyList_New((Py_ssize_t)k);
    for (size_t i = 0; out != NULL && i < k; i++)
        PyList_SET_ITEM(out, (Py_ssize_t)i, Py_NewRef((PyObject *)sb_reader_tag(ready[i])));
    sb__py_leave(self, c);
    return out;
}

/* buf[start:stop:step]: any slice, as on bytes.  What needs the length
   (an open end, a negative index or step) waits for the whole stream. */
static PyObject *subscript_slice(BufferObject *self, PyObject *key)
{
    Py_ssize_t start, stop, step;
    if (PySlice_Unpack(key, &start, &stop, &step) < 0)
        return NULL;
    struct core *c = sb__py_enter(self);
    if (c == NULL)
        return NULL;
    PyObject *res = NULL;
    Py_ssize_t lo, hi;
    if (start < 0 || stop < 0 || step < 0 || stop == PY_SSIZE_T_MAX) {
        uint64_t len;
        if (sb__py_wait_end(c, &len) < 0)
            goto out;
        if (len > PY_SSIZE_T_MAX) {
            PyErr_NoMemory();
            goto out;
        }
        Py_ssize_t n = PySlice_AdjustIndices((Py_ssize_t)len, &start, &stop, step);
        if (n == 0) {
            res = PyBytes_FromStringAndSize(NULL, 0);
            goto out;
        }
        lo = step > 0 ? start : start + (n - 1) * step;
        hi = step > 0 ? start + (n - 1) * step + 1 : start + 1;
    } else {
        lo = start;
        hi = stop > start ? stop : start;
    }
    res = sb__py_read_bytes((struct via){ c, NULL }, (uint64_t)lo, (uint64_t)(hi - lo));
    if (res != NULL && step != 1) {
        PyObject *stepo = PyLong_FromSsize_t(step);
        PyObject *sl = stepo != NULL ? PySlice_New(NULL, NULL, stepo) : NULL;
        PyObject *picked = sl != NULL ? PyObject_GetItem(res, sl) : NULL;
        Py_XDECREF(sl);
        Py_XDECREF(stepo);
        Py_SETREF(res, picked);
    }
out:
    sb__py_leave(self, c);
    return res;
}

/* The seed's keys: a slice, or a list or tuple [start, stop]. */
static PyObject *Buffer_subscript(BufferObject *self, PyObject *key)
{
    if (PySlice_Check(key))
        return subscript_slice(self, key);
    if ((PyList_Check(key) || PyTuple_Check(key)) && PySequence_Fast_GET_SIZE(key) == 2) {
        PyObject *sl = PySlice_New(PySequence_Fast_GET_ITEM(key, 0),
                                   PySequence_Fast_GET_ITEM(key, 1), NULL);
        if (sl == NULL)
            return NULL;
        PyObject *res = subscript_slice(self, sl);
        Py_DECREF(sl);
        return res;
    }
    PyErr_SetString(PyExc_NotImplementedError, seed_key_error);
    return NULL;
}

static PyObject *Buffer_get_stream_index(BufferObject *self, void *unused)
{
    (void)unused;
    if (self->core == NULL || self->core->closed)
        return sb__py_closed_error();
    return PyLong_FromUnsignedLongLong(sb_available(self->core->b));
}

static PyObject *Buffer_get_floor(BufferObject *self, void *unused)
{
    (void)unused;
    if (self->core == NULL || self->core->closed)
        return sb__py_closed_error();
    return PyLong_FromUnsignedLongLong(sb_floor(self->core->b));
}

static PyObject *Buffer_get_closed(BufferObject *self, void *unused)
{
    (void)unused;
    return PyBool_FromLong(self->core == NULL || self->core->closed);
}

static PyObject *Buffer_get_exception(BufferObject *self, void *unused)
{
    (void)unused;
    if (self->core == NULL || self->core->closed)
        return sb__py_closed_error();
    return Py_NewRef(self->core->exc != NULL ? self->core->exc : Py_None);
}

/* Classify the source and set up c for it.  Returns 0 or -1. */
static int take_source(struct core *c, PyObject *stream)
{
    if (PyBytes_Check(stream)) {
        c->kind = KIND_MEM;
        c->mem = Py_NewRef(stream);
        return 0;
    }
    if (PyUnicode_Check(stream)) {
        PyErr_SetString(PyExc_TypeError,
                        "stream must be bytes, an iterable of bytes-like chunks "
                        "or a binary file, not str");
        return -1;
    }
    if (PyObject_CheckBuffer(stream)) {
        /* Mutable bytes (bytearray, memoryview) are copied once: bytes that
           have arrived must never change. */
        c->kind = KIND_MEM;
        c->mem = PyBytes_FromObject(stream);
        return c->mem == NULL ? -1 : 0;
    }
    PyObject *io = PyImport_ImportModule("io");
    if (io == NULL)
        return -1;
    PyObject *text = PyObject_GetAttrString(io, "TextIOBase");
    Py_DECREF(io);
    if (text == NULL)
        return -1;
    int is_text = PyObject_IsInstance(stream, text);
    Py_DECREF(text);
    if (is_text < 0)
        return -1;
    if (is_text) {
        PyErr_SetString(PyExc_TypeError,
                        "stream is a text file: give its binary buffer (sys.stdin.buffer)");
        return -1;
    }
    return sb__py_feed_take(&c->in, stream, false);
}

static void free_unopened(struct core *c)
{
    Py_CLEAR(c->in.src);
    Py_CLEAR(c->mem);
    Py_CLEAR(c->open_at);
    free(c);
}

static PyObject *Buffer_new(PyTypeObject *type, PyObject *args, PyObject *kw);

/* The constructor's options, as given. */
struct args {
    PyObject *stream, *size, *maxo, *memo, *limito, *tmpo, *chunko, *aheado;
    PyObject *retainedo, *open_at, *partso, *gapo, *retrieso;
    int release, mmap_reads;
};

/* Open the buffer for self: over a->stream (with a->open_at, if any), or
   over url with from_url.  0, or -1 with an exception. */
static int open_buffer(BufferObject *self, struct args *a, PyObject *url, PyObject *headers)
{
    if (self->core != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "StreamBuffer is already initialized");
        return -1;
    }

    sb_options o;
    memset(&o, 0, sizeof o);
    /* max_size is the seed's name for the bytes kept in memory, mem_limit
       the library's: one option under two names, which must agree. */
    uint64_t max_size = (uint64_t)DEFAULT_MAX_SIZE, mem_limit;
    const char *mem_name = "max_size";
    PyObject *maxo = a->maxo;
    if (a->memo != NULL && a->memo != Py_None) {
        if (sb__py_u63(a->memo, "mem_limit", &mem_limit) < 0)
            return -1;
        if (maxo != NULL && maxo != Py_None) {
            if (sb__py_u63(maxo, "max_size", &max_size) < 0)
                return -1;
            if (max_size != mem_limit) {
                PyErr_SetString(PyExc_TypeError,
                                "max_size and mem_limit are one option (the bytes "
                                "kept in memory): give one of them");
                return -1;
            }
        }
        maxo = a->memo;
        mem_name = "mem_limit";
    }
    if (maxo != NULL && maxo != Py_None) {
        if (sb__py_u63(maxo, mem_name, &max_size) < 0)
            return -1;
        if (max_size == 0 || max_size > PY_SSIZE_T_MAX) {
            PyErr_Format(PyExc_ValueError,
                         "%s (the bytes kept in memory) must be positive: "
                         "the memory part is reserved when the buffer opens",
                         mem_name);
            return -1;
        }
    }
    o.mem_limit = (size_t)max_size;
    uint64_t chunk, parts, retries;
    if (sb__py_opt_u63(a->size, "size", &o.length_hint) < 0
        || sb__py_opt_u63(a->limito, "limit", &o.max_size) < 0
        || sb__py_opt_u63(a->chunko, "chunk_size", &chunk) < 0
        || sb__py_opt_u63(a->aheado, "read_ahead", &o.read_ahead) < 0
        || sb__py_opt_u63(a->retainedo, "max_retained", &o.max_retained) < 0
        || sb__py_opt_u63(a->partso, "max_parts", &parts) < 0
        || sb__py_opt_u63(a->gapo, "seek_gap", &o.seek_gap) < 0
        || sb__py_opt_u63(a->retrieso, "retries", &retries) < 0)
        return -1;
    if (chunk > PY_SSIZE_T_MAX) {
        PyErr_SetString(PyExc_ValueError, "chunk_size is too large");
        return -1;
    }
    o.chunk_size = (size_t)chunk;
    if (parts > 64) {
        PyErr_SetString(PyExc_ValueError, "max_parts must be at most 64");
        return -1;
    }
    o.max_parts = (uint32_t)parts;
    if (retries > UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "retries is too large");
        return -1;
    }
    o.retries = (uint32_t)retries;
    if (o.max_size != 0 && o.length_hint > o.max_size) {
        PyErr_SetString(PyExc_ValueError, "size is larger than limit");
        return -1;
    }
    if (o.max_retained != 0 && !a->release) {
        PyErr_SetString(PyExc_ValueError, "max_retained needs release=True");
        return -1;
    }
    PyObject *open_at = a->open_at == Py_None ? NULL : a->open_at;
    if (open_at != NULL && !PyCallable_Check(open_at)) {
        PyErr_Format(PyExc_TypeError, "open_at must be callable, not %.100s",
                     Py_TYPE(open_at)->tp_name);
        return -1;
    }
    if (a->stream == Py_None && open_at == NULL && url == NULL) {
        PyErr_SetString(PyExc_TypeError,
                        "stream must be bytes, an iterable of bytes-like chunks "
                        "or a binary file (None only with open_at)");
        return -1;
    }
    o.flags = a->release ? SB_RELEASE : 0;
    PyObject *tmp = NULL;
    if (a->tmpo != NULL && a->tmpo != Py_None) {
        if (!PyUnicode_FSConverter(a->tmpo, &tmp))
            return -1;
        if (PyBytes_GET_SIZE(tmp) == 0) {
            Py_DECREF(tmp);
            PyErr_SetString(PyExc_ValueError, "tmp_dir must not be empty");
            return -1;
        }
        o.tmp_dir = PyBytes_AS_STRING(tmp);
    }

    struct core *c = calloc(1, sizeof *c);
    if (c == NULL) {
        Py_XDECREF(tmp);
        PyErr_NoMemory();
        return -1;
    }
    atomic_init(&c->stop, false);
    atomic_init(&c->part_calls, 0);
    c->mem_limit = o.mem_limit;
    c->release = a->release != 0;
    c->mmap_reads = a->mmap_reads != 0;
    c->kind = KIND_ITER;
    if (url == NULL && a->stream != Py_None && take_source(c, a->stream) < 0) {
        Py_XDECREF(tmp);
        free_unopened(c);
        return -1;
    }
    c->ranged = url != NULL || open_at != NULL;
    if (url != NULL) {
        c->b = sb__py_open_url(c, url, headers, &o);
    } else if (c->kind == KIND_MEM && open_at == NULL) {
        c->mem_limit = SIZE_MAX;
        c->b = sb_open_mem(PyBytes_AS_STRING(c->mem), (size_t)PyBytes_GET_SIZE(c->mem), &o);
    } else {
        sb_source src;
        memset(&src, 0, sizeof src);
        if (c->kind == KIND_MEM) {
            /* bytes with open_at: the first stream reads them in place. */
            Py_SETREF(c->mem, NULL);
            if (sb__py_feed_take(&c->in, a->stream, true) < 0) {
                Py_XDECREF(tmp);
                free_unopened(c);
                return -1;
            }
            c->kind = KIND_ITER;
        }
        if (a->stream == Py_None)
            ; /* the first stream is open_at(0, ...) on a fetcher */
        else if (c->in.kind == KIND_ITER)
            src.next = sb__py_src_next;
        else
            src.read = sb__py_src_read;
        if (a->stream != Py_None)
            src.cancel = sb__py_src_cancel;
        if (open_at != NULL) {
            c->open_at = Py_NewRef(open_at);
            c->has_length = a->size != NULL && a->size != Py_None;
            c->length = o.length_hint;
            src.open_at = sb__py_part_open;
            /* size is the length: known from the start (0 ends at once
               as a part that reports it would). */
            if (c->has_length && o.length_hint != 0)
                o.flags |= SB_LENGTH_KNOWN;
        }
        src.ctx = c;
        /* The producer starts now and waits for the GIL in its first
           callback: c is complete before it can look. */
        c->b = sb_open(&src, &o);
    }
    int err = errno;
    Py_XDECREF(tmp);
    if (c->b == NULL) {
        free_unopened(c);
        if (url == NULL)
            sb__py_os_error(err);
        return -1;
    }
    sb__py_link_live(c);
    self->core = c;
    Py_XSETREF(self->stream, Py_NewRef(url != NULL ? url : a->stream));
    PyObject *size = Py_NewRef(a->size != NULL ? a->size : Py_None);
    sb_stats st;
    if (url != NULL && sb_get_stats(c->b, &st) == 0 && st.length != 0) {
        /* from_url: the object's length, once the response gave it. */
        PyObject *n = PyLong_FromUnsignedLongLong(st.length);
        if (n != NULL)
            Py_SETREF(size, n);
        else
            PyErr_Clear();
    }
    Py_XSETREF(self->size, size);
    self->max_size = (Py_ssize_t)max_size;
    self->limit = o.max_size;
    self->chunk_size = o.chunk_size;
    self->read_ahead = o.read_ahead;
    self->max_retained = o.max_retained;
    self->max_parts = o.max_parts;
    self->seek_gap = o.seek_gap;
    self->retries = o.retries;
    self->release = a->release != 0;
    self->mmap_reads = a->mmap_reads != 0;
    return 0;
}

static int Buffer_init(BufferObject *self, PyObject *args, PyObject *kw)
{
    static char *names[] = { "stream", "size", "max_size", "mem_limit", "limit",
                             "tmp_dir", "chunk_size", "read_ahead", "max_retained",
                             "release", "mmap_reads", "open_at", "max_parts",
                             "seek_gap", "retries", NULL };
    struct args a = { .size = Py_None, .release = 0, .mmap_reads = 1 };
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|OO$OOOOOOppOOOO:StreamBuffer", names,
                                     &a.stream, &a.size, &a.maxo, &a.memo, &a.limito,
                                     &a.tmpo, &a.chunko, &a.aheado, &a.retainedo,
                                     &a.release, &a.mmap_reads, &a.open_at, &a.partso,
                                     &a.gapo, &a.retrieso))
        return -1;
    return open_buffer(self, &a, NULL, NULL);
}

static PyObject *Buffer_from_url(PyObject *cls, PyObject *args, PyObject *kw)
{
    static char *names[] = { "url", "headers", "max_size", "mem_limit", "limit",
                             "tmp_dir", "chunk_size", "read_ahead", "max_retained",
                             "release", "mmap_reads", "max_parts", "seek_gap",
                             "retries", NULL };
    struct args a = { .stream = Py_None, .size = Py_None, .mmap_reads = 1 };
    PyObject *url, *headers = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|O$OOOOOOOppOOO:from_url", names,
                                     &url, &headers, &a.maxo, &a.memo, &a.limito,
                                     &a.tmpo, &a.chunko, &a.aheado, &a.retainedo,
                                     &a.release, &a.mmap_reads, &a.partso, &a.gapo,
                                     &a.retrieso))
        return NULL;
    if (!PyUnicode_Check(url)) {
        PyErr_Format(PyExc_TypeError, "url must be a str, not %.100s", Py_TYPE(url)->tp_name);
        return NULL;
    }
    PyObject *self = Buffer_new((PyTypeObject *)cls, NULL, NULL);
    if (self == NULL)
        return NULL;
    BufferObject *bo = (BufferObject *)self;
    if (open_buffer(bo, &a, url, headers) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    return self;
}

static PyObject *Buffer_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    (void)args;
    (void)kw;
    BufferObject *self = (BufferObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->stream = Py_NewRef(Py_None);
    self->size = Py_NewRef(Py_None);
    self->max_size = DEFAULT_MAX_SIZE;
    return (PyObject *)self;
}

static int Buffer_traverse(BufferObject *self, visitproc visit, void *arg)
{
    /* A static type: a subclass's traverse visits its own type. */
    Py_VISIT(self->stream);
    Py_VISIT(self->size);
    struct core *c = self->core;
    if (c != NULL) {
        Py_VISIT(c->in.src);
        Py_VISIT(c->in.chunk);
        Py_VISIT(c->open_at);
        Py_VISIT(c->exc);
    }
    return 0;
}

static int Buffer_clear(BufferObject *self)
{
    /* The core's references go in close(), which the finalizer ran: the
       producer may still use them until then. */
    Py_CLEAR(self->stream);
    Py_CLEAR(self->size);
    return 0;
}

/* A buffer that is garbage-collected stops its producer, as close(). */
static void Buffer_finalize(BufferObject *self)
{
    if (self->core == NULL)
        return;
    PyObject *exc = sb__py_take_exception();
    if (close_core(self) < 0) /* a view in a cycle with it: it stays */
        PyErr_WriteUnraisable((PyObject *)self);
    if (exc != NULL) {
        sb__py_raise_again(exc);
        Py_DECREF(exc);
    }
}

static void Buffer_dealloc(BufferObject *self)
{
    if (PyObject_CallFinalizerFromDealloc((PyObject *)self) < 0)
        return; /* resurrected */
    /* A subclass's __del__ takes the place of Buffer_finalize. */
    if (self->core != NULL) {
        PyObject *exc = PyErr_Occurred() ? sb__py_take_exception() : NULL;
        if (close_core(self) < 0)
            PyErr_WriteUnraisable((PyObject *)self);
        if (exc != NULL) {
            sb__py_raise_again(exc);
            Py_DECREF(exc);
        }
    }
    PyObject_GC_UnTrack(self);
    if (self->weakrefs != NULL)
        PyObject_ClearWeakRefs((PyObject *)self);
    Buffer_clear(self);
    /* A subclass's dealloc drops its reference to its type. */
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Buffer_repr(BufferObject *self)
{
    const char *state = "closed";
    unsigned long long index = 0;
    if (self->core != NULL && !self->core->closed) {
        sb_stats st;
        if (sb_get_stats(self->core->b, &st) == 0) {
            state = st.state == SB_RUNNING ? "running" : st.state == SB_ENDED ? "ended" : "failed";
            index = (unsigned long long)st.filled;
        }
    }
    return PyUnicode_FromFormat("<%s size=%R stream_index=%llu %s>",
                                Py_TYPE(self)->tp_name, self->size ? self->size : Py_None,
                                index, state);
}


/* The docstrings open with a text signature ("name($self, /, ...)" and
   "--"), which inspect.signature and help() read. */
PyDoc_STRVAR(wait_end_doc,
"wait_end($self, /)\n--\n\nWait for the end of the stream; its length (an "
"int).  Raises the stream's error if it failed.");
PyDoc_STRVAR(is_exhausted_doc,
"is_exhausted($self, /)\n--\n\nTrue once no more bytes will arrive: the "
"stream ended (or failed, or was cancelled).  Never waits, consumes nothing.");
PyDoc_STRVAR(cancel_doc,
"cancel($self, /)\n--\n\nStop the stream now: bytes that arrived stay "
"readable, reads of the others raise OSError(ECANCELED).");
PyDoc_STRVAR(close_doc,
"close($self, /)\n--\n\nCancel the stream and free the buffer; later calls "
"raise ValueError.  Does not wait for the iterator.");
PyDoc_STRVAR(open_doc,
"open($self, /, buffering=-1)\n--\n\n"
"A seekable binary file over the stream with its own position: an\n"
"io.BufferedReader of buffering bytes (negative: io.DEFAULT_BUFFER_SIZE),\n"
"or the raw file for buffering=0.  With release=True it reads forward\n"
"through a Reader and releases as it goes.");
PyDoc_STRVAR(reader_doc,
"reader($self, /, floor=None)\n--\n\nA registered Reader whose floor is "
"floor (None: the buffer's floor).");
PyDoc_STRVAR(stats_doc,
"stats($self, /)\n--\n\n"
"A snapshot of the library's counters (sb_get_stats), as a dict:\n"
"filled, in_memory, spilled (bytes arrived, and where they are held),\n"
"publishes, waiting, wakeups, floor, released, pauses, paused_ns,\n"
"readers, huge_pages: ints;  state: 'running', 'ended' or 'failed';\n"
"error: the errno that failed the stream, None unless state is 'failed';\n"
"demand: the furthest byte a read asked for, None while none has, and\n"
"math.inf once one asked for the whole stream (wait_end, a read to the\n"
"end);  paused: whether the producer is paused now.");
PyDoc_STRVAR(from_url_doc,
"from_url($type, /, url, headers=None, *, max_size=None, mem_limit=None, "
"limit=None, tmp_dir=None, chunk_size=None, read_ahead=None, "
"max_retained=None, release=False, mmap_reads=True, max_parts=None, "
"seek_gap=None, retries=None)\n--\n\n"
"A StreamBuffer over an HTTP(S) URL, read with libcurl (the C library's\n"
"sb_open_url).  Returns once the response's headers say the body can\n"
"come (the GIL released while it waits); size is then the object's\n"
"length when the server gave one.  A read far ahead of the download\n"
"waits for one round trip and its own bytes: a ranged GET (with If-Range)\n"
"opens there, on one of max_parts connections; a drain uses them all.\n"
"Two versions of an object are never spliced: a changed object fails\n"
"the reads that would mix them with OSError(errno.ESTALE).\n\n"
"headers: sent with every request, a mapping of names to values or\n"
"\"Name: value\" strings (None: none).  The other options are the\n"
"constructor's.\n\n"
"Raises an OSError subclass, with url as its filename:\n"
"FileNotFoundError (404, 410), PermissionError (401, 403),\n"
"ConnectionRefusedError, TimeoutError, OSError with errno EHOSTUNREACH,\n"
"EPROTO (not HTTP), EIO (another status) or EINVAL (a bad URL).");
PyDoc_STRVAR(enter_doc, "__enter__($self, /)\n--\n\n");
PyDoc_STRVAR(exit_doc, "__exit__($self, /, *exc_info)\n--\n\nclose()");

static PyMethodDef Buffer_methods[] = {
    SB__PY_READ_METHODS,
    { "wait_end", (PyCFunction)Buffer_wait_end, METH_NOARGS, wait_end_doc },
    { "is_exhausted", (PyCFunction)Buffer_is_exhausted, METH_NOARGS, is_exhausted_doc },
    { "cancel", (PyCFunction)Buffer_cancel, METH_NOARGS, cancel_doc },
    { "close", (PyCFunction)Buffer_close, METH_NOARGS, close_doc },
    { "open", (PyCFunction)(void (*)(void))Buffer_open, METH_VARARGS | METH_KEYWORDS, open_doc },
    { "reader", (PyCFunction)(void (*)(void))Buffer_reader, METH_VARARGS | METH_KEYWORDS, reader_doc },
    { "stats", (PyCFunction)Buffer_stats, METH_NOARGS, stats_doc },
    { "from_url", (PyCFunction)(void (*)(void))Buffer_from_url,
      METH_VARARGS | METH_KEYWORDS | METH_CLASS, from_url_doc },
    { "_nb_reader", (PyCFunction)Buffer_nb_reader, METH_O, NULL },
    { "_poll_fd", (PyCFunction)Buffer_poll_fd, METH_NOARGS, NULL },
    { "_poll_ready", (PyCFunction)Buffer_poll_ready, METH_O, NULL },
    { "__enter__", (PyCFunction)Buffer_enter, METH_NOARGS, enter_doc },
    { "__exit__", (PyCFunction)Buffer_exit, METH_VARARGS, exit_doc },
    { NULL, NULL, 0, NULL },
};

static PyMemberDef Buffer_members[] = {
    { "stream", T_OBJECT, offsetof(BufferObject, stream), READONLY, "the source, as given" },
    { "size", T_OBJECT, offsetof(BufferObject, size), READONLY, "the expected length, as given (a hint)" },
    { "max_size", T_PYSSIZET, offsetof(BufferObject, max_size), READONLY, "bytes kept in memory before the rest spills to a file (the seed's name; mem_limit is the same)" },
    { "mem_limit", T_PYSSIZET, offsetof(BufferObject, max_size), READONLY, "bytes kept in memory before the rest spills to a file (max_size is the same)" },
    { "limit", T_ULONGLONG, offsetof(BufferObject, limit), READONLY, "hard cap on the stream's length, past it OSError(EFBIG) (0: none)" },
    { "chunk_size", T_ULONGLONG, offsetof(BufferObject, chunk_size), READONLY, "most bytes asked of a file at once (0: 64 KiB)" },
    { "read_ahead", T_ULONGLONG, offsetof(BufferObject, read_ahead), READONLY, "lazy pull: bytes pulled past the furthest read (0: eager)" },
    { "max_retained", T_ULONGLONG, offsetof(BufferObject, max_retained), READONLY, "backpressure: bytes held above the floor (0: no bound)" },
    { "release", T_BOOL, offsetof(BufferObject, release), READONLY, "bytes below the readers' floor are given back" },
    { "max_parts", T_UINT, offsetof(BufferObject, max_parts), READONLY, "most streams read at once with open_at or from_url (0: 4)" },
    { "seek_gap", T_ULONGLONG, offsetof(BufferObject, seek_gap), READONLY, "a read this far past every fetcher opens a part (0: measured)" },
    { "retries", T_UINT, offsetof(BufferObject, retries), READONLY, "reopens of a failed part in a row (0: 3)" },
    { "mmap_reads", T_BOOL, offsetof(BufferObject, mmap_reads), READONLY, "small reads of spilled bytes copy from a mapping of the spill file" },
    { NULL, 0, 0, 0, NULL },
};

static PyGetSetDef Buffer_getset[] = {
    { "stream_index", (getter)Buffer_get_stream_index, NULL, "bytes pulled from the stream so far", NULL },
    { "floor", (getter)Buffer_get_floor, NULL, "reads below it raise OSError(ESPIPE)", NULL },
    { "closed", (getter)Buffer_get_closed, NULL, "True after close()", NULL },
    { "exception", (getter)Buffer_get_exception, NULL, "the exception that failed the stream, or None", NULL },
    { NULL, NULL, NULL, NULL, NULL },
};

static PyMappingMethods Buffer_mapping = {
    .mp_subscript = (binaryfunc)Buffer_subscript,
};

/* The signature line is what inspect.signature(StreamBuffer) reads. */
PyDoc_STRVAR(Buffer_doc,
"StreamBuffer(stream, size=None, max_size=None, *, mem_limit=None, "
"limit=None, tmp_dir=None, chunk_size=None, read_ahead=None, "
"max_retained=None, release=False, mmap_reads=True, open_at=None, "
"max_parts=None, seek_gap=None, retries=None)\n--\n\n"
"Random access to a one-pass stream, shared by any number of threads.  A\n"
"background thread drains stream (bytes, an iterable of bytes-like chunks,\n"
"or a binary file) into memory, the first max_size bytes, and a temporary\n"
"file beyond.  StreamBuffer.from_url(url) reads an HTTP(S) URL.\n\n"
"A requests response: pass response.raw (a file), or\n"
"response.iter_content(1 << 16); never iter_content() with its default\n"
"chunk size, which yields one byte at a time (about 0.4 MB/s).\n\n"
"size: the expected length, a hint only (the stream ends where it ends);\n"
"with open_at, the stream's length, which every part reports.\n"
"max_size: the bytes kept in memory (None: DEFAULT_MAX_SIZE, 5 MiB), the\n"
"seed's name; mem_limit is the same option under the library's name\n"
"(give one, or both equal).\n"
"limit: a hard cap on the stream's length; past it the stream fails with\n"
"OSError(EFBIG) (None: no cap).\n"
"tmp_dir: where the spill file goes (None: $TMPDIR, else /tmp).\n"
"chunk_size: the most bytes asked of a file at once (None: 64 KiB).\n"
"read_ahead: lazy pull, bytes pulled past the furthest read (None: eager).\n"
"max_retained: backpressure, bytes held above the readers' floor (None:\n"
"no bound; needs release=True).\n"
"release: bytes below every Reader's floor are given back.\n"
"mmap_reads: small reads (up to 16 KiB) of spilled bytes copy from a\n"
"read-only mapping of the temporary file, without a system call, as\n"
"SB_MMAP_READS does (larger ones pread(2)).  The price: if the\n"
"disk fails while the kernel reads a page of it back, the process gets\n"
"SIGBUS rather than an OSError(EIO).  Pass mmap_reads=False where that\n"
"matters more than speed (the file is on a disk that may fail, not tmpfs).\n\n"
"open_at: a callable open_at(offset, end) that starts the stream over at\n"
"offset, for a source that can (an HTTP client with a Range header, a\n"
"file): it returns a binary file or an iterable of bytes-like chunks from\n"
"offset (a bytes object is one chunk), and end, where the buffer will stop\n"
"reading (an int, or None for the end of the stream), is a hint: the part\n"
"may go on past it.  Then a read far ahead of the stream does not wait for\n"
"the bytes before it: a part opens at its offset, on one of max_parts\n"
"threads.  It is called on those threads, several at once; an object it\n"
"returned is closed (its close(), if any) when its part is done.  It may\n"
"raise OSError(errno.ESPIPE) (cannot seek) or OSError(errno.ESTALE) (the\n"
"object changed): then no part opens again.  stream may be None: the\n"
"first stream is open_at(0, ...).\n"
"max_parts: most streams read at once, the first one included (None: 4;\n"
"1: no parts).  seek_gap: a read this far past every stream that will\n"
"reach it opens a part (None: measured, what the stream delivers while a\n"
"part opens).  retries: reopens of a failed part in a row before the\n"
"stream fails (None: 3).");


PyTypeObject sb__py_buffer_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "streambuffer.StreamBuffer",
    .tp_basicsize = sizeof(BufferObject),
    .tp_dealloc = (destructor)Buffer_dealloc,
    .tp_repr = (reprfunc)Buffer_repr,
    .tp_as_mapping = &Buffer_mapping,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = Buffer_doc,
    .tp_traverse = (traverseproc)Buffer_traverse,
    .tp_clear = (inquiry)Buffer_clear,
    .tp_weaklistoffset = offsetof(BufferObject, weakrefs),
    .tp_methods = Buffer_methods,
    .tp_members = Buffer_members,
    .tp_getset = Buffer_getset,
    .tp_init = (initproc)Buffer_init,
    .tp_new = Buffer_new,
    .tp_finalize = (destructor)Buffer_finalize,
};
