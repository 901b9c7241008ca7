/* SPDX-License-Identifier: MIT */
/*
 * source.c - the state shared with the library's threads: the live list and
 * the exit flag, and the source callbacks, which run on the producer (and
 * through a part's feed, on the fetchers: parts.c).
 */
#include "common.h"

/* Set by the exit hook: from then on no producer takes the GIL. */
static atomic_bool g_stop;
/* Producers between their look at g_stop and holding the GIL: the exit
   hook lets them through before the interpreter goes. */
static atomic_uint g_entering;
/* Every open core, for the exit hook. */
static struct core *g_live;

void sb__py_link_live(struct core *c)
{
    SB__PY_PUSH(&g_live, c);
}

void sb__py_unlink_live(struct core *c)
{
    SB__PY_UNLINK(&g_live, c);
}

/* The buffer whose part's callback this thread is in (a fetcher). */
static _Thread_local const struct core *t_part;

/* Whether this thread is c's producer, or one of its fetchers, inside one
   of its callbacks. */
bool sb__py_on_producer(const struct core *c)
{
    return (c->tstate != NULL && PyThreadState_Get() == c->tstate) || t_part == c;
}

/* Give the last chunk back.  The fields are cleared before anything runs
   that could call back into this module (a chunk's release or __del__). */
void sb__py_feed_drop(struct feed *f)
{
    PyObject *chunk = f->chunk;
    f->chunk = NULL;
    if (f->has_view) {
        Py_buffer v = f->view;
        f->has_view = false;
        PyBuffer_Release(&v);
    }
    Py_XDECREF(chunk);
}

void sb__py_drop_chunk(struct core *c)
{
    sb__py_feed_drop(&c->in);
}

int sb__py_feed_take(struct feed *f, PyObject *stream, bool one_chunk)
{
    static const char *const readers[] = { "readinto1", "readinto", "read1", "read" };
    if (one_chunk && PyObject_CheckBuffer(stream)) {
        /* A part's bytes all at once (a response's content). */
        PyObject *t = PyTuple_Pack(1, stream);
        if (t == NULL)
            return -1;
        f->kind = KIND_ITER;
        f->src = PyObject_GetIter(t);
        Py_DECREF(t);
        return f->src == NULL ? -1 : 0;
    }
    for (size_t i = 0; i < sizeof readers / sizeof *readers; i++) {
        PyObject *fn = PyObject_GetAttrString(stream, readers[i]);
        if (fn == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_AttributeError))
                return -1;
            PyErr_Clear();
            continue;
        }
        if (!PyCallable_Check(fn)) {
            Py_DECREF(fn);
            continue;
        }
        f->kind = i < 2 ? KIND_READINTO : KIND_READ;
        f->src = fn;
        return 0;
    }
    f->kind = KIND_ITER;
    f->src = PyObject_GetIter(stream);
    if (f->src == NULL) {
        if (PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError,
                         "stream must be bytes, an iterable of bytes-like chunks "
                         "or a binary file, not %.100s", Py_TYPE(stream)->tp_name);
        }
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* The source callbacks: on the producer thread                        */

/*
 * Take the GIL for a callback.  Returns false, without it, once the
 * stream is being stopped or the interpreter is going away: then this
 * thread must not touch Python at all.
 */
static bool producer_enter(struct core *c)
{
    if (atomic_load(&c->stop))
        return false;
    atomic_fetch_add(&g_entering, 1);
    if (atomic_load(&g_stop) || sb__py_finalizing()) {
        atomic_fetch_sub(&g_entering, 1);
        return false;
    }
    if (c->tstate == NULL) {
        c->gstate = PyGILState_Ensure();
        c->tstate = PyThreadState_Get();
    } else {
        PyEval_RestoreThread(c->tstate);
    }
    atomic_fetch_sub(&g_entering, 1);
    return true;
}

/* Let the GIL go.  After the last callback (a result <= 0: the library
   calls no more) the thread state goes too. */
static void producer_leave(struct core *c, bool last)
{
    if (last) {
        PyGILState_STATE g = c->gstate;
        c->tstate = NULL; /* before the GIL goes: others read it with it */
        PyGILState_Release(g);
    } else {
        PyEval_SaveThread();
    }
}

bool sb__py_part_enter(struct core *c, const atomic_bool *stop, PyGILState_STATE *g)
{
    /* Counted before the look at the flags: close() sets them, then reads
       the count, so one of the two sees the other. */
    atomic_fetch_add(&c->part_calls, 1);
    if (stop != NULL && (atomic_load(stop) || atomic_load(&c->stop))) {
        atomic_fetch_sub(&c->part_calls, 1);
        return false;
    }
    atomic_fetch_add(&g_entering, 1);
    if (atomic_load(&g_stop) || sb__py_finalizing()) {
        atomic_fetch_sub(&g_entering, 1);
        atomic_fetch_sub(&c->part_calls, 1);
        return false;
    }
    *g = PyGILState_Ensure();
    atomic_fetch_sub(&g_entering, 1);
    t_part = c;
    return true;
}

void sb__py_part_leave(struct core *c, PyGILState_STATE g)
{
    t_part = NULL;
    PyGILState_Release(g);
    atomic_fetch_sub(&c->part_calls, 1);
}

/* Whether the callback must stop: close() began, the exit hook ran, or
   the stream (or part) was cancelled. */
static bool stopping(const struct core *c, const atomic_bool *stop)
{
    return c->closed || atomic_load(&g_stop) || (stop != NULL && atomic_load(stop));
}

/* The errno the library is told for an exception of the source.  Those
   that mean something else to a reader (a floor, a timeout, a cancel)
   become EIO, so that readers can tell them apart; a part's open_at keeps
   ESPIPE (no seeking) and ESTALE (another version), which the library
   understands. */
static int errno_of(PyObject *exc, bool ranged)
{
    int err = EIO;
    if (PyErr_GivenExceptionMatches(exc, PyExc_OSError)) {
        PyObject *e = PyObject_GetAttrString(exc, "errno");
        if (e != NULL && PyLong_Check(e)) {
            long v = PyLong_AsLong(e);
            if (v > 0 && v < 4096)
                err = (int)v;
        }
        Py_XDECREF(e);
        PyErr_Clear();
    }
    switch (err) {
    case ESPIPE: case ESTALE:
        return ranged ? err : EIO;
    case ECANCELED: case ENOBUFS: case ETIMEDOUT: case EINVAL:
        return EIO;
    default:
        return err;
    }
}

/* The source raised: keep the exception for the readers and fail the
   stream (or the part).  Returns the negative errno for the library. */
int sb__py_feed_failed(struct core *c, struct feed *f, bool ranged)
{
    PyObject *exc = sb__py_take_exception();
    if (f != NULL)
        Py_CLEAR(f->src); /* the source is done with: free it now */
    if (exc == NULL)
        return -EIO;
    if (stopping(c, NULL)) { /* close() cleared the state: nobody will read it */
        Py_DECREF(exc);
        return -ECANCELED;
    }
    c->exc_errno = errno_of(exc, ranged);
    Py_XSETREF(c->exc, exc);
    return -c->exc_errno;
}

/* Keep item (a new reference) as the chunk the library copies next. */
static int hold_chunk(struct core *c, struct feed *f, PyObject *item)
{
    if (PyObject_GetBuffer(item, &f->view, PyBUF_SIMPLE) < 0) {
        Py_DECREF(item);
        return sb__py_feed_failed(c, f, false);
    }
    f->has_view = true;
    f->chunk = item;
    return 1;
}

int sb__py_feed_next(struct core *c, struct feed *f, const atomic_bool *stop)
{
    sb__py_feed_drop(f);
    int rc = -ECANCELED;
    if (!stopping(c, stop) && f->src != NULL) {
        PyObject *it = Py_NewRef(f->src);
        f->in_call = true;
        PyObject *item = PyIter_Next(it);
        f->in_call = false;
        Py_DECREF(it);
        if (item == NULL && PyErr_Occurred())
            rc = sb__py_feed_failed(c, f, false);
        else if (item == NULL) {
            Py_CLEAR(f->src);
            rc = 0;
        } else {
            rc = hold_chunk(c, f, item);
        }
    }
    /* Anything above may have run close() on this very thread (a __del__,
       the garbage collector): then the chunk is not handed over. */
    if (rc > 0 && stopping(c, stop)) {
        sb__py_feed_drop(f);
        rc = -ECANCELED;
    }
    return rc;
}

int sb__py_src_next(void *ctx, const void **chunk, size_t *len)
{
    struct core *c = ctx;
    if (!producer_enter(c))
        return -ECANCELED;
    int rc = sb__py_feed_next(c, &c->in, NULL);
    if (rc > 0) {
        *chunk = c->in.view.buf;
        *len = (size_t)c->in.view.len;
    }
    producer_leave(c, rc <= 0);
    return rc;
}

/* The file had nothing for now (a non-blocking file: None). */
static void nap(void)
{
    struct timespec ts = { 0, 2000000 };
    Py_BEGIN_ALLOW_THREADS
    nanosleep(&ts, NULL);
    Py_END_ALLOW_THREADS
}

/* What readinto returned: a count from 0 to cap. */
static ssize_t count_of(struct core *c, struct feed *f, PyObject *res, size_t cap)
{
    Py_ssize_t n = PyLong_AsSsize_t(res);
    Py_DECREF(res);
    if (n == -1 && PyErr_Occurred())
        return sb__py_feed_failed(c, f, false);
    if (n < 0 || (size_t)n > cap) {
        PyErr_Format(PyExc_ValueError,
                     "readinto() returned %zd for a buffer of %zu bytes", n, cap);
        return sb__py_feed_failed(c, f, false);
    }
    if (n == 0)
        Py_CLEAR(f->src);
    return n;
}

/* What read returned: keep it as the chunk, to be copied without the GIL. */
static ssize_t data_of(struct core *c, struct feed *f, PyObject *res, size_t cap)
{
    int rc = hold_chunk(c, f, res);
    if (rc < 0)
        return rc;
    size_t n = (size_t)f->view.len;
    if (n > cap) {
        sb__py_feed_drop(f);
        PyErr_Format(PyExc_ValueError,
                     "read(%zu) returned %zu bytes", cap, n);
        return sb__py_feed_failed(c, f, false);
    }
    if (n == 0) {
        sb__py_feed_drop(f);
        Py_CLEAR(f->src);
    }
    return (ssize_t)n;
}

/* Ask the file once; may nap and ask again when it has nothing yet. */
static ssize_t read_file_once(struct core *c, struct feed *f, const atomic_bool *stop,
                              void *buf, size_t cap)
{
    for (;;) {
        if (stopping(c, stop) || f->src == NULL)
            return -ECANCELED;
        PyObject *arg = f->kind == KIND_READINTO
                            ? PyMemoryView_FromMemory(buf, (Py_ssize_t)cap, PyBUF_WRITE)
                            : PyLong_FromSize_t(cap);
        if (arg == NULL)
            return sb__py_feed_failed(c, f, false);
        if (stopping(c, stop)) { /* the allocation may have collected us */
            Py_DECREF(arg);
            return -ECANCELED;
        }
        PyObject *fn = Py_NewRef(f->src);
        f->in_call = true;
        PyObject *res = PyObject_CallOneArg(fn, arg);
        f->in_call = false;
        Py_DECREF(fn);
        if (f->kind == KIND_READINTO) {
            /* The view points into the spool: nobody may keep it. */
            PyObject *r = PyObject_CallMethod(arg, "release", NULL);
            if (r == NULL) {
                Py_DECREF(arg);
                Py_XDECREF(res);
                return sb__py_feed_failed(c, f, false);
            }
            Py_DECREF(r);
        }
        Py_DECREF(arg);
        if (res == NULL)
            return sb__py_feed_failed(c, f, false);
        if (res != Py_None)
            return f->kind == KIND_READINTO ? count_of(c, f, res, cap)
                                            : data_of(c, f, res, cap);
        Py_DECREF(res);
        nap();
    }
}

ssize_t sb__py_feed_read(struct core *c, struct feed *f, const atomic_bool *stop,
                         void *buf, size_t cap)
{
    sb__py_feed_drop(f);
    ssize_t rc = read_file_once(c, f, stop, buf, cap);
    if (rc > 0 && stopping(c, stop)) {
        sb__py_feed_drop(f);
        rc = -ECANCELED;
    }
    return rc;
}

ssize_t sb__py_src_read(void *ctx, void *buf, size_t cap)
{
    struct core *c = ctx;
    if (!producer_enter(c))
        return -ECANCELED;
    ssize_t rc = sb__py_feed_read(c, &c->in, NULL, buf, cap);
    bool copy = rc > 0 && c->in.kind == KIND_READ;
    producer_leave(c, rc <= 0);
    /* The chunk stays held until the next callback, so its bytes can be
       copied without the GIL. */
    if (copy)
        memcpy(buf, c->in.view.buf, (size_t)rc);
    return rc;
}

/* On the thread that cancels: the next callback returns at once.  A
   Python call in progress cannot be interrupted; nothing waits for it. */
void sb__py_src_cancel(void *ctx)
{
    struct core *c = ctx;
    atomic_store(&c->stop, true);
}

bool sb__py_exiting(void)
{
    return atomic_load(&g_stop);
}

/*
 * The exit hook's work (atexit, which runs before the interpreter starts
 * to finalize): no producer may take the GIL from now on.  Every live stream
 * is cancelled, so that a read during finalization (a __del__) does not
 * wait for a producer that will never deliver (daemon threads that were
 * waiting park, see park()).  The producers already on their way into the
 * GIL are let through, so that none is left between its look at g_stop and
 * the GIL when the interpreter goes.
 */
void sb__py_stop_all(void)
{
    atomic_store(&g_stop, true);
    for (struct core *c = g_live; c != NULL; c = c->next) {
        atomic_store(&c->stop, true);
        sb_cancel(c->b);
    }
    while (atomic_load(&g_entering) > 0) {
        struct timespec ts = { 0, 100000 };
        Py_BEGIN_ALLOW_THREADS
        nanosleep(&ts, NULL);
        Py_END_ALLOW_THREADS
    }
}
