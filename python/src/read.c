/* SPDX-License-Identifier: MIT */
/*
 * read.c - waits (with signals), copies, and the methods that StreamBuffer
 * and Reader share: one wrapper each, whatever self is.
 */
#include "common.h"

/* The error of a wait: the source's own exception when it failed the
   stream, else OSError with the library's errno. */
static void stream_error(struct core *c, int err)
{
    if (c->exc != NULL && err == c->exc_errno)
        sb__py_raise_again(c->exc);
    else
        sb__py_os_error(err);
}

/*
 * A thread other than the main one woken by the exit hook's cancel: only
 * daemon threads are left then, and a daemon thread blocked at exit stays
 * blocked (as in Lock.acquire), rather than raise into a dying interpreter
 * and print half a traceback.  The main thread gets the error: a __del__
 * that reads during finalization must not hang.
 */
static void park(void)
{
    for (;;)
        pause();
}

/*
 * One wait of the library: a read of [off, off + n) into dst, or with
 * len set, the wait for the end.  Returns the count read (the length for
 * the end), -1 with an exception: the stream's error when it failed or
 * was cancelled first, KeyboardInterrupt (or whatever a signal handler
 * raised), ValueError when closed meanwhile.  Runs without the GIL, on
 * the main thread in slices (sb_*_timed) with PyErr_CheckSignals between.
 */
static ssize_t wait_call(struct via v, void *dst, size_t n, uint64_t off, uint64_t *len)
{
    struct core *c = v.c;
    if (sb__py_on_producer(c)) {
        PyErr_SetString(PyExc_RuntimeError,
                        "a stream's own source cannot wait for its bytes");
        return -1;
    }
    bool main_thread = _PyOS_IsMainThread();
    int slice = main_thread ? SLICE_MS : -1;
    for (;;) {
        ssize_t got;
        int err;
        Py_BEGIN_ALLOW_THREADS
        if (len != NULL)
            got = sb_wait_end_timed(c->b, len, slice);
        else
            got = v.r != NULL ? sb_reader_pread_timed(v.r, dst, n, off, slice)
                              : sb_pread_timed(c->b, dst, n, off, slice);
        err = errno;
        if (got < 0 && err != ETIMEDOUT && !main_thread && sb__py_exiting())
            park();
        Py_END_ALLOW_THREADS
        if (got >= 0)
            return got;
        if (c->closed) {
            sb__py_closed_error();
            return -1;
        }
        if (err != ETIMEDOUT) {
            stream_error(c, err);
            return -1;
        }
        if (PyErr_CheckSignals() < 0)
            return -1;
    }
}

/*
 * Wait until byte `last` has arrived or the stream is over.  Returns 1 when
 * it has, 0 when the stream ended before it, -1 with an exception.
 *
 * A one-byte read at `last` is the wait: it raises the demand to last + 1,
 * as a read of the whole range would, and copies nothing worth counting.
 * Only where the bytes held are a prefix: a buffer with parts holds
 * extents, and waits with the read itself (wait_range).
 */
static int wait_for(struct via v, uint64_t last)
{
    unsigned char byte;
    ssize_t got = wait_call(v, &byte, 1, last, NULL);
    return got < 0 ? -1 : got > 0;
}

/*
 * A buffer with parts: the bytes of [off, off + n) may be held while
 * those before them are not, and one read of the whole range is what
 * opens one part for it.  So the wait is a read into dst (the caller's,
 * or scratch for a view).  Stores the count, short only at the end.
 */
static int wait_range(struct via v, void *dst, uint64_t off, uint64_t n, uint64_t *count)
{
    ssize_t got = wait_call(v, dst, (size_t)n, off, NULL);
    if (got < 0)
        return -1;
    *count = (uint64_t)got;
    return 0;
}

/*
 * A small read of spilled bytes, copied from the spill file's mapping
 * (sb_view) with the GIL held: no system call, which is most of what a
 * pread(2) of 4 KiB costs.  A large one goes through pread without the
 * GIL: the kernel copies from the page cache, where a first touch of the
 * mapping would take a page fault per 64 KiB (about 15 us each on a VM).
 * Views need a floor under SB_RELEASE, so plain reads there use pread.
 */
static bool mapped(struct via v, size_t n, uint64_t off)
{
    return v.c->mmap_reads && off + n > v.c->mem_limit && n <= PREAD_WITH_GIL
           && (v.r != NULL || !v.c->release);
}

static int copy_mapped(struct via v, unsigned char *dst, size_t n, uint64_t off)
{
    while (n > 0) {
        const void *p;
        ssize_t k = v.r != NULL ? sb_reader_view(v.r, off, n, &p)
                                : sb_view(v.c->b, off, n, &p);
        if (k <= 0) { /* the range was there: 0 cannot happen */
            sb__py_os_error(k < 0 ? errno : EIO);
            return -1;
        }
        memcpy(dst, p, (size_t)k);
        dst += k;
        off += (uint64_t)k;
        n -= (size_t)k;
    }
    return 0;
}

/* Copy [off, off + n), which has arrived (or the stream is over), into dst. */
static int copy_range(struct via v, void *dst, size_t n, uint64_t off)
{
    ssize_t got;
    int err = 0;
    if (mapped(v, n, off))
        return copy_mapped(v, dst, n, off);
    if (off + n > v.c->mem_limit ? n > PREAD_WITH_GIL : n > COPY_WITH_GIL) {
        Py_BEGIN_ALLOW_THREADS
        got = v.r != NULL ? sb_reader_pread(v.r, dst, n, off)
                          : sb_pread(v.c->b, dst, n, off);
        if (got < 0)
            err = errno;
        Py_END_ALLOW_THREADS
    } else {
        got = v.r != NULL ? sb_reader_pread(v.r, dst, n, off)
                          : sb_pread(v.c->b, dst, n, off);
        if (got < 0)
            err = errno;
    }
    if (got < 0) {
        sb__py_os_error(err);
        return -1;
    }
    if ((size_t)got != n) { /* the range was there: cannot happen */
        sb__py_os_error(EIO);
        return -1;
    }
    return 0;
}

/*
 * How many of [off, off + n) to copy: wait for the whole range, or for one
 * byte when `some` (readinto1).  Stores the count, which is short only at
 * the end of the stream.  Returns 0 or -1 with an exception.
 */
int sb__py_settle(struct via v, uint64_t off, uint64_t n, bool some, uint64_t *count)
{
    uint64_t avail = sb_available(v.c->b);
    uint64_t need = some ? 1 : n;
    *count = n;
    if (n == 0)
        return 0;
    if (off + need > avail && v.c->ranged) {
        /* Waited for by a read of the whole range, into scratch (views):
           at most the view window at a time. */
        uint64_t k = n < ((uint64_t)8 << 20) ? n : (uint64_t)8 << 20;
        void *tmp = PyMem_RawMalloc((size_t)k);
        if (tmp == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        int rc = wait_range(v, tmp, off, k, count);
        PyMem_RawFree(tmp);
        return rc;
    }
    if (off + need > avail) {
        int rc = wait_for(v, off + need - 1);
        if (rc < 0)
            return -1;
        avail = sb_available(v.c->b);
    }
    uint64_t there = off < avail ? avail - off : 0;
    if (there < *count)
        *count = there;
    return 0;
}

/* Whether [off, off + n) must be waited for by reading it (wait_range). */
static bool read_waits(struct via v, uint64_t off, uint64_t n)
{
    return v.c->ranged && n > 0 && off + n > sb_available(v.c->b);
}

PyObject *sb__py_read_bytes(struct via v, uint64_t off, uint64_t n)
{
    uint64_t m;
    if (read_waits(v, off, n)) {
        if (n > PY_SSIZE_T_MAX)
            return PyErr_NoMemory();
        PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)n);
        if (out == NULL || wait_range(v, PyBytes_AS_STRING(out), off, n, &m) < 0) {
            Py_XDECREF(out);
            return NULL;
        }
        if (m < n && _PyBytes_Resize(&out, (Py_ssize_t)m) < 0)
            return NULL;
        return out;
    }
    if (sb__py_settle(v, off, n, false, &m) < 0)
        return NULL;
    if (m > PY_SSIZE_T_MAX)
        return PyErr_NoMemory();
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)m);
    if (out == NULL || m == 0)
        return out;
    if (copy_range(v, PyBytes_AS_STRING(out), (size_t)m, off) < 0) {
        Py_DECREF(out);
        return NULL;
    }
    return out;
}

static PyObject *readinto_impl(struct via v, uint64_t off, PyObject *target, bool some)
{
    Py_buffer view;
    if (PyObject_GetBuffer(target, &view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) {
        if (PyErr_ExceptionMatches(PyExc_BufferError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError,
                         "buffer must be a writable, contiguous bytes-like object, not %.100s",
                         Py_TYPE(target)->tp_name);
        }
        return NULL;
    }
    uint64_t m = 0;
    int rc;
    if (read_waits(v, off, (uint64_t)view.len)) {
        /* readinto1 too waits for the whole range: with parts, what has
           arrived at off is not known without reading. */
        rc = wait_range(v, view.buf, off, (uint64_t)view.len, &m);
    } else {
        rc = sb__py_settle(v, off, (uint64_t)view.len, some, &m);
        if (rc == 0 && m > 0)
            rc = copy_range(v, view.buf, (size_t)m, off);
    }
    PyBuffer_Release(&view);
    return rc < 0 ? NULL : PyLong_FromUnsignedLongLong(m);
}

/* Wait for the end: the stream's length, or -1 with its error. */
int sb__py_wait_end(struct core *c, uint64_t *length)
{
    struct via v = { c, NULL };
    if (c->ranged) {
        /* A byte at the far end would open a part there. */
        return wait_call(v, NULL, 0, 0, length) < 0 ? -1 : 0;
    }
    int rc = wait_for(v, UINT64_MAX - 1);
    if (rc < 0)
        return -1;
    *length = sb_available(c->b);
    return 0;
}

/* read's size: a count, or to the end of the stream when negative or None. */
int sb__py_read_size(PyObject *o, uint64_t *n, bool *to_end)
{
    *to_end = false;
    if (o == NULL || o == Py_None) {
        *to_end = true;
        return 0;
    }
    long long v = PyLong_AsLongLong(o);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (v < 0)
        *to_end = true;
    else
        *n = (uint64_t)v;
    return 0;
}

int sb__py_range(struct via v, PyObject *offo, PyObject *sizeo, uint64_t *off,
                 uint64_t *n)
{
    bool to_end;
    *n = 0;
    if (sb__py_u63(offo, "offset", off) < 0 || sb__py_read_size(sizeo, n, &to_end) < 0)
        return -1;
    if (to_end) {
        uint64_t len;
        sb_stats st;
        /* A buffer with parts knows its length from the first part that
           reported it, long before the end arrives. */
        if (v.c->ranged && sb_get_stats(v.c->b, &st) == 0 && st.length != 0)
            len = st.length;
        else if (sb__py_wait_end(v.c, &len) < 0)
            return -1;
        *n = len > *off ? len - *off : 0;
    }
    return 0;
}

static PyObject *read_common(struct via v, PyObject *offo, PyObject *sizeo)
{
    uint64_t off, n;
    if (sb__py_range(v, offo, sizeo, &off, &n) < 0)
        return NULL;
    return sb__py_read_bytes(v, off, n);
}


const char sb__py_read_doc[] = PyDoc_STR(
"read($self, /, offset, size=-1)\n--\n\n"
"The bytes [offset, offset + size) of the stream, waiting until they have\n"
"arrived.  Short at the end of the stream, b'' past it; a negative size\n"
"reads to the end.  If the stream failed or was cancelled before the\n"
"bytes arrived, raises the iterator's exception or OSError.");
const char sb__py_readinto_doc[] = PyDoc_STR(
"readinto($self, /, offset, buffer)\n--\n\n"
"Fill buffer (writable bytes-like) with the bytes at offset, waiting for\n"
"all of them (fewer at the end of the stream).  Returns the count.");
const char sb__py_readinto1_doc[] = PyDoc_STR(
"readinto1($self, /, offset, buffer)\n--\n\n"
"Like readinto, but waits only for the first byte and copies what has\n"
"arrived, like a read(2) on a pipe.  0 at the end of the stream.");
const char sb__py_aread_doc[] = PyDoc_STR(
"aread($self, /, offset, size=-1)\n--\n\n"
"read for asyncio, a coroutine: await it for the same bytes (or the same\n"
"exception) without blocking the event loop or holding a thread.  The\n"
"running loop watches the buffer's poll descriptor while an aread waits;\n"
"cancelling the awaiting task drops the wait.");

/* module.fn(self, *args, **kw): the methods written in Python. */
PyObject *sb__py_call_py(const char *module, const char *fn, PyObject *self,
                         PyObject *args, PyObject *kw)
{
    PyObject *mod = PyImport_ImportModule(module);
    if (mod == NULL)
        return NULL;
    PyObject *f = PyObject_GetAttrString(mod, fn);
    Py_DECREF(mod);
    if (f == NULL)
        return NULL;
    PyObject *all = PyTuple_New(PyTuple_GET_SIZE(args) + 1);
    if (all == NULL) {
        Py_DECREF(f);
        return NULL;
    }
    PyTuple_SET_ITEM(all, 0, Py_NewRef(self));
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(args); i++)
        PyTuple_SET_ITEM(all, i + 1, Py_NewRef(PyTuple_GET_ITEM(args, i)));
    PyObject *res = PyObject_Call(f, all, kw);
    Py_DECREF(all);
    Py_DECREF(f);
    return res;
}

/* ---- the methods of both types ---- */

int sb__py_begin(PyObject *self, struct via *v)
{
    if (Py_IS_TYPE(self, &sb__py_reader_type)) {
        ReaderObject *r = (ReaderObject *)self;
        v->c = sb__py_reader_enter(r);
        v->r = r->r;
    } else {
        v->c = sb__py_enter((BufferObject *)self);
        v->r = NULL;
    }
    return v->c == NULL ? -1 : 0;
}

void sb__py_end(PyObject *self, struct via v)
{
    if (Py_IS_TYPE(self, &sb__py_reader_type))
        sb__py_reader_leave((ReaderObject *)self, v.c);
    else
        sb__py_leave((BufferObject *)self, v.c);
}

const char *const sb__py_read_names[2] = { "offset", "size" };
static const char *const readinto_names[] = { "offset", "buffer" };

PyObject *sb__py_offset_size_call(const char *fn, PyObject *self, PyObject *const *args,
                                  Py_ssize_t nargs, PyObject *kwnames,
                                  PyObject *(*impl)(PyObject *self, struct via v,
                                                    PyObject *offo, PyObject *sizeo))
{
    PyObject *a[2];
    struct via v;
    if (sb__py_parse_args(fn, args, nargs, kwnames, sb__py_read_names, 2, 1, a) < 0
        || sb__py_begin(self, &v) < 0)
        return NULL;
    PyObject *res = impl(self, v, a[0], a[1]);
    sb__py_end(self, v);
    return res;
}

static PyObject *read_impl(PyObject *self, struct via v, PyObject *offo, PyObject *sizeo)
{
    (void)self;
    return read_common(v, offo, sizeo);
}

PyObject *sb__py_read(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                      PyObject *kwnames)
{
    return sb__py_offset_size_call("read", self, args, nargs, kwnames, read_impl);
}

static PyObject *readinto(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                          PyObject *kwnames, bool some)
{
    PyObject *a[2];
    uint64_t off;
    struct via v;
    if (sb__py_parse_args(some ? "readinto1" : "readinto", args, nargs, kwnames,
                          readinto_names, 2, 2, a) < 0
        || sb__py_u63(a[0], "offset", &off) < 0 || sb__py_begin(self, &v) < 0)
        return NULL;
    PyObject *res = readinto_impl(v, off, a[1], some);
    sb__py_end(self, v);
    return res;
}

PyObject *sb__py_readinto(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                          PyObject *kwnames)
{
    return readinto(self, args, nargs, kwnames, false);
}

PyObject *sb__py_readinto1(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                           PyObject *kwnames)
{
    return readinto(self, args, nargs, kwnames, true);
}

/* aread(...) is streambuffer._aio.aread(self, ...): a coroutine.  It is
   refused at once on a closed buffer or Reader. */
PyObject *sb__py_aread(PyObject *self, PyObject *args, PyObject *kw)
{
    struct via v;
    if (sb__py_begin(self, &v) < 0)
        return NULL;
    sb__py_end(self, v);
    return sb__py_call_py("streambuffer._aio", "aread", self, args, kw);
}
