/* SPDX-License-Identifier: MIT */
/*
 * streambuffer.c - the CPython module: StreamBuffer, a drop-in for the
 * seed's class of that name (the Python package `buffer`), and Reader.
 *
 * The library does the work; this file only moves Python objects in and
 * out of it.  Its rules:
 *
 *   - Every wait, and every copy large enough to be worth it, runs with the
 *     GIL released, so N Python threads read one buffer in parallel and a
 *     thread blocked in read() stops nobody else.  A wait on the main
 *     thread goes in slices (sb_pread_timed) with PyErr_CheckSignals
 *     between them, so Ctrl-C interrupts it.
 *
 *   - The producer thread is the library's.  It takes the GIL only inside
 *     the source callbacks, to call the iterator (or the file's readinto
 *     or read), and keeps the chunk object and a Py_buffer on it until the
 *     next call, because the library copies the chunk after the callback
 *     has returned.  It keeps its thread state between callbacks
 *     (PyEval_SaveThread / RestoreThread): creating one per chunk would cost
 *     more than many a chunk's copy.
 *
 *   - Nothing waits for a Python call of the producer that is in progress:
 *     an iterator may block for ever (a stalled socket).  close() and the
 *     garbage collector cancel the stream, and when the producer is inside
 *     Python they leave the join and the free to a detached thread that
 *     never touches Python; the producer drops its Python state itself when
 *     its call returns.
 *
 *   - Once the interpreter is going away (our atexit hook has run, or it is
 *     finalizing) the producer never takes the GIL again: a thread that
 *     takes it then is stopped by CPython, or worse, if the interpreter is
 *     already gone, crashes.
 *
 * Everything in struct core that is a Python object, and every flag not
 * marked atomic, is touched only with the GIL held.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <streambuffer.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* How long a wait on the main thread goes without looking at signals:
   KeyboardInterrupt must arrive within 100 ms. */
#define SLICE_MS 20

/*
 * Copies up to these sizes keep the GIL: from memory, and from the spill
 * file (a pread(2) of the page cache).  Handing the GIL to a waiting thread
 * and taking it back costs a few microseconds (a futex wake-up, a context
 * switch); a smaller copy is cheaper than that, and releasing for it
 * halves what two threads read (measured with bench.py: 16 KiB copies from
 * memory and 4 KiB preads both fell to 0.5-0.6 of one thread).  At 64 KiB
 * it is even; at 256 KiB two threads read 1.8-2 times what one does.
 */
#ifndef COPY_WITH_GIL
#define COPY_WITH_GIL ((size_t)64 << 10)
#endif
#ifndef PREAD_WITH_GIL
#define PREAD_WITH_GIL ((size_t)16 << 10)
#endif

/* The seed's rollover size, and the library's default mem_limit. */
#define DEFAULT_MAX_SIZE ((Py_ssize_t)5 << 20)

static const char seed_key_error[] =
    "Expected a collection with a length of 2 or a slice object.";

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */

static int py_finalizing(void)
{
#if PY_VERSION_HEX >= 0x030D0000
    return Py_IsFinalizing();
#else
    return _Py_IsFinalizing();
#endif
}

/* The exception being raised, normalized, with its traceback; cleared. */
static PyObject *take_exception(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (value != NULL && tb != NULL)
        PyException_SetTraceback(value, tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return value;
#endif
}

/* Raise exc again, as it is: the same object for every reader. */
static void raise_again(PyObject *exc)
{
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(Py_NewRef(exc));
#else
    PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(exc)), Py_NewRef(exc),
                  PyException_GetTraceback(exc));
#endif
}

static PyObject *os_error(int err)
{
    errno = err;
    return PyErr_SetFromErrno(PyExc_OSError);
}

static PyObject *closed_error(void)
{
    PyErr_SetString(PyExc_ValueError, "I/O operation on a closed StreamBuffer");
    return NULL;
}

/* A non-negative integer that fits 63 bits: offsets and option values. */
static int to_u63(PyObject *o, const char *what, uint64_t *out)
{
    long long v = PyLong_AsLongLong(o);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (v < 0) {
        PyErr_Format(PyExc_ValueError, "%s must not be negative", what);
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

/* An option: None or 0 leave the library's default. */
static int opt_u63(PyObject *o, const char *what, uint64_t *out)
{
    *out = 0;
    return o == NULL || o == Py_None ? 0 : to_u63(o, what, out);
}

/*
 * Arguments by position or by name, as the seed's callers pass them
 * (read(START, size=KB)).  Those not given stay NULL.
 */
static int parse_args(const char *fn, PyObject *const *args, Py_ssize_t nargs,
                      PyObject *kwnames, const char *const *names,
                      Py_ssize_t nnames, Py_ssize_t required, PyObject **out)
{
    for (Py_ssize_t i = 0; i < nnames; i++)
        out[i] = NULL;
    if (nargs > nnames) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most %zd arguments (%zd given)",
                     fn, nnames, nargs);
        return -1;
    }
    for (Py_ssize_t i = 0; i < nargs; i++)
        out[i] = args[i];
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, k);
        Py_ssize_t j = 0;
        while (j < nnames && PyUnicode_CompareWithASCIIString(name, names[j]) != 0)
            j++;
        if (j == nnames) {
            PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%U'",
                         fn, name);
            return -1;
        }
        if (out[j] != NULL) {
            PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'",
                         fn, names[j]);
            return -1;
        }
        out[j] = args[nargs + k];
    }
    for (Py_ssize_t i = 0; i < required; i++)
        if (out[i] == NULL) {
            PyErr_Format(PyExc_TypeError, "%s() missing required argument '%s'",
                         fn, names[i]);
            return -1;
        }
    return 0;
}

/* ------------------------------------------------------------------ */
/* The state shared with the producer thread                           */

enum kind {
    KIND_MEM,      /* bytes: sb_open_mem, no thread */
    KIND_ITER,     /* an iterator of bytes-like chunks: the next callback */
    KIND_READINTO, /* a binary file: readinto1 or readinto into the spool */
    KIND_READ,     /* a file with read1 or read only: its bytes copied in */
};

typedef struct ReaderObject ReaderObject;

struct core {
    sb_buffer *b;
    enum kind kind;
    size_t mem_limit; /* reads past it go to the spill file */

    /* The source (with the GIL). */
    PyObject *src;   /* the iterator, or the bound read method */
    PyObject *chunk; /* the last chunk, which the library may still copy */
    Py_buffer view;  /* on chunk, when has_view */
    bool has_view;
    PyObject *mem;   /* KIND_MEM: the bytes the library reads in place */
    PyObject *exc;   /* the exception that failed the stream */
    int exc_errno;   /* what the library was told about it */

    /* The producer's thread state, from its first callback to its last;
       written by the producer with the GIL held. */
    PyThreadState *tstate;
    PyGILState_STATE gstate;
    bool in_call; /* the producer is inside a Python call */

    bool closed;    /* close() has begun: the producer drops its state */
    unsigned users; /* Python calls using b now */
    ReaderObject *readers;
    struct core *prev, *next; /* the live list, for the exit hook */

    atomic_bool stop; /* callbacks return at once, without the GIL */
};

/* Set by the exit hook: from then on no producer takes the GIL. */
static atomic_bool g_stop;
/* Producers between their look at g_stop and holding the GIL: the exit
   hook lets them through before the interpreter goes. */
static atomic_uint g_entering;
/* Every open core, for the exit hook. */
static struct core *g_live;

static void link_live(struct core *c)
{
    c->prev = NULL;
    c->next = g_live;
    if (g_live != NULL)
        g_live->prev = c;
    g_live = c;
}

static void unlink_live(struct core *c)
{
    if (c->prev != NULL)
        c->prev->next = c->next;
    else if (g_live == c)
        g_live = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

/* Whether this thread is c's producer, inside one of its callbacks. */
static bool on_producer(const struct core *c)
{
    return c->tstate != NULL && PyThreadState_Get() == c->tstate;
}

/* Give the last chunk back.  The fields are cleared before anything runs
   that could call back into this module (a chunk's release or __del__). */
static void drop_chunk(struct core *c)
{
    PyObject *chunk = c->chunk;
    c->chunk = NULL;
    if (c->has_view) {
        Py_buffer v = c->view;
        c->has_view = false;
        PyBuffer_Release(&v);
    }
    Py_XDECREF(chunk);
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
    if (atomic_load(&g_stop) || py_finalizing()) {
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

/* Whether the callback must stop: close() began, or the exit hook ran. */
static bool stopping(const struct core *c)
{
    return c->closed || atomic_load(&g_stop);
}

/* The errno the library is told for an exception of the source.  Those
   that mean something else to a reader (a floor, a timeout, a cancel)
   become EIO, so that readers can tell them apart. */
static int errno_of(PyObject *exc)
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
    case ECANCELED: case ESPIPE: case ENOBUFS: case ETIMEDOUT: case EINVAL:
        return EIO;
    default:
        return err;
    }
}

/* The source raised: keep the exception for the readers and fail the
   stream.  Returns the negative errno for the library. */
static int source_failed(struct core *c)
{
    PyObject *exc = take_exception();
    Py_CLEAR(c->src); /* the source is done with: free it now */
    if (exc == NULL)
        return -EIO;
    if (stopping(c)) { /* close() cleared the state: nobody will read it */
        Py_DECREF(exc);
        return -ECANCELED;
    }
    c->exc_errno = errno_of(exc);
    Py_XSETREF(c->exc, exc);
    return -c->exc_errno;
}

/* Keep item (a new reference) as the chunk the library copies next. */
static int hold_chunk(struct core *c, PyObject *item)
{
    if (PyObject_GetBuffer(item, &c->view, PyBUF_SIMPLE) < 0) {
        Py_DECREF(item);
        return source_failed(c);
    }
    c->has_view = true;
    c->chunk = item;
    return 1;
}

static int src_next(void *ctx, const void **chunk, size_t *len)
{
    struct core *c = ctx;
    if (!producer_enter(c))
        return -ECANCELED;
    drop_chunk(c);
    int rc = -ECANCELED;
    if (!stopping(c) && c->src != NULL) {
        PyObject *it = Py_NewRef(c->src);
        c->in_call = true;
        PyObject *item = PyIter_Next(it);
        c->in_call = false;
        Py_DECREF(it);
        if (item == NULL && PyErr_Occurred())
            rc = source_failed(c);
        else if (item == NULL) {
            Py_CLEAR(c->src);
            rc = 0;
        } else {
            rc = hold_chunk(c, item);
        }
    }
    /* Anything above may have run close() on this very thread (a __del__,
       the garbage collector): then the chunk is not handed over. */
    if (rc > 0 && stopping(c)) {
        drop_chunk(c);
        rc = -ECANCELED;
    }
    if (rc > 0) {
        *chunk = c->view.buf;
        *len = (size_t)c->view.len;
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
static ssize_t count_of(struct core *c, PyObject *res, size_t cap)
{
    Py_ssize_t n = PyLong_AsSsize_t(res);
    Py_DECREF(res);
    if (n == -1 && PyErr_Occurred())
        return source_failed(c);
    if (n < 0 || (size_t)n > cap) {
        PyErr_Format(PyExc_ValueError,
                     "readinto() returned %zd for a buffer of %zu bytes", n, cap);
        return source_failed(c);
    }
    if (n == 0)
        Py_CLEAR(c->src);
    return n;
}

/* What read returned: keep it as the chunk, to be copied without the GIL. */
static ssize_t data_of(struct core *c, PyObject *res, size_t cap)
{
    int rc = hold_chunk(c, res);
    if (rc < 0)
        return rc;
    size_t n = (size_t)c->view.len;
    if (n > cap) {
        drop_chunk(c);
        PyErr_Format(PyExc_ValueError,
                     "read(%zu) returned %zu bytes", cap, n);
        return source_failed(c);
    }
    if (n == 0) {
        drop_chunk(c);
        Py_CLEAR(c->src);
    }
    return (ssize_t)n;
}

/* Ask the file once; may nap and ask again when it has nothing yet. */
static ssize_t read_file_once(struct core *c, void *buf, size_t cap)
{
    for (;;) {
        if (stopping(c) || c->src == NULL)
            return -ECANCELED;
        PyObject *arg = c->kind == KIND_READINTO
                            ? PyMemoryView_FromMemory(buf, (Py_ssize_t)cap, PyBUF_WRITE)
                            : PyLong_FromSize_t(cap);
        if (arg == NULL)
            return source_failed(c);
        if (stopping(c)) { /* the allocation may have collected us */
            Py_DECREF(arg);
            return -ECANCELED;
        }
        PyObject *fn = Py_NewRef(c->src);
        c->in_call = true;
        PyObject *res = PyObject_CallOneArg(fn, arg);
        c->in_call = false;
        Py_DECREF(fn);
        if (c->kind == KIND_READINTO) {
            /* The view points into the spool: nobody may keep it. */
            PyObject *r = PyObject_CallMethod(arg, "release", NULL);
            if (r == NULL) {
                Py_DECREF(arg);
                Py_XDECREF(res);
                return source_failed(c);
            }
            Py_DECREF(r);
        }
        Py_DECREF(arg);
        if (res == NULL)
            return source_failed(c);
        if (res != Py_None)
            return c->kind == KIND_READINTO ? count_of(c, res, cap)
                                            : data_of(c, res, cap);
        Py_DECREF(res);
        nap();
    }
}

static ssize_t src_read(void *ctx, void *buf, size_t cap)
{
    struct core *c = ctx;
    if (!producer_enter(c))
        return -ECANCELED;
    drop_chunk(c);
    ssize_t rc = read_file_once(c, buf, cap);
    if (rc > 0 && stopping(c)) {
        drop_chunk(c);
        rc = -ECANCELED;
    }
    bool copy = rc > 0 && c->kind == KIND_READ;
    producer_leave(c, rc <= 0);
    /* The chunk stays held until the next callback, so its bytes can be
       copied without the GIL. */
    if (copy)
        memcpy(buf, c->view.buf, (size_t)rc);
    return rc;
}

/* On the thread that cancels: the next callback returns at once.  A
   Python call in progress cannot be interrupted; nothing waits for it. */
static void src_cancel(void *ctx)
{
    struct core *c = ctx;
    atomic_store(&c->stop, true);
}

/* ------------------------------------------------------------------ */
/* Closing                                                             */

/* The detached thread that joins a producer still inside Python.  It
   never touches Python: the producer drops its own state on its way out. */
static void *reaper_main(void *arg)
{
    struct core *c = arg;
    sb_close(c->b);
    free(c);
    return NULL;
}

static int start_reaper(struct core *c)
{
    pthread_attr_t attr;
    pthread_t t;
    sigset_t all, old;
    int rc = pthread_attr_init(&attr);
    if (rc != 0)
        return rc;
    rc = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (rc == 0) {
        /* Signals belong to the application's threads. */
        sigfillset(&all);
        rc = pthread_sigmask(SIG_SETMASK, &all, &old);
        if (rc == 0) {
            rc = pthread_create(&t, &attr, reaper_main, c);
            pthread_sigmask(SIG_SETMASK, &old, NULL);
        }
    }
    pthread_attr_destroy(&attr);
    return rc;
}

static void close_readers(struct core *c);

/*
 * Stop the stream and free everything.  The GIL is held and no Python call
 * is using b (users == 0); close() has set c->closed.
 */
static void teardown(struct core *c)
{
    unlink_live(c);
    close_readers(c);
    atomic_store(&c->stop, true);
    sb_cancel(c->b);
    Py_CLEAR(c->exc);
    if (c->in_call || on_producer(c)) {
        /* The producer is in the middle of a callback (or this is it, run
           by the garbage collector from inside one): it holds its own
           references and drops the rest when it sees c->closed.  The
           library is not copying a chunk now, so the chunk can go. */
        drop_chunk(c);
        Py_CLEAR(c->src);
        if (start_reaper(c) == 0)
            return;
        if (on_producer(c))
            return; /* cannot join itself: leak the buffer rather than hang */
    }
    Py_BEGIN_ALLOW_THREADS
    sb_close(c->b);
    Py_END_ALLOW_THREADS
    drop_chunk(c);
    Py_CLEAR(c->src);
    Py_CLEAR(c->mem);
    /* A producer stopped between two callbacks left its thread state.
       While the interpreter is finalizing it clears them all itself. */
    if (c->tstate != NULL && !py_finalizing()) {
        PyThreadState_Clear(c->tstate);
        PyThreadState_Delete(c->tstate);
    }
    free(c);
}

/* ------------------------------------------------------------------ */
/* The Python objects                                                  */

typedef struct {
    PyObject_HEAD
    struct core *core; /* NULL before __init__ and after close */
    PyObject *stream;  /* as given: the seed's attribute */
    PyObject *size;    /* as given: None or the length hint */
    Py_ssize_t max_size;
    uint64_t limit, chunk_size, read_ahead, max_retained;
    bool release;
    PyObject *weakrefs;
} BufferObject;

struct ReaderObject {
    PyObject_HEAD
    BufferObject *buf;
    sb_reader *r; /* NULL once closed */
    uint64_t floor;
    bool busy;
    bool nb; /* SB_NONBLOCK: aread's probe (see _streambuffer_aio.py) */
    ReaderObject *prev, *next; /* in the core's list */
    PyObject *weakrefs;
};

static PyTypeObject BufferType;
static PyTypeObject ReaderType;

/* Start a Python call that uses the buffer.  Returns the core, or NULL
   with ValueError once the buffer is closed. */
static struct core *enter(BufferObject *self)
{
    struct core *c = self->core;
    if (c == NULL || c->closed) {
        closed_error();
        return NULL;
    }
    c->users++;
    return c;
}

/* End it.  The last call out of a buffer that was closed meanwhile frees
   it; whatever exception is being raised stays. */
static void leave(BufferObject *self, struct core *c)
{
    if (--c->users > 0 || !c->closed)
        return;
    PyObject *exc = PyErr_Occurred() ? take_exception() : NULL;
    if (self->core == c)
        self->core = NULL;
    teardown(c);
    if (exc != NULL) {
        raise_again(exc);
        Py_DECREF(exc);
    }
}

/* close(): cancel, and free as soon as no call uses the buffer. */
static void close_core(BufferObject *self)
{
    struct core *c = self->core;
    if (c == NULL || c->closed)
        return;
    c->closed = true;
    atomic_store(&c->stop, true);
    sb_cancel(c->b); /* wakes every reader in flight */
    /* A closed buffer lets its source go (a generator is finalized, a
       response freed), as a closed file lets its descriptor go; it does
       not close it: the source stays the caller's. */
    Py_SETREF(self->stream, Py_NewRef(Py_None));
    if (c->users > 0)
        return; /* the last of them frees it (leave) */
    self->core = NULL;
    teardown(c);
}

/* ------------------------------------------------------------------ */
/* Reading                                                             */

/* Where a read goes: plain, or through a reader. */
struct via {
    struct core *c;
    sb_reader *r;
};

/* The error of a wait: the source's own exception when it failed the
   stream, else OSError with the library's errno. */
static void stream_error(struct core *c, int err)
{
    if (c->exc != NULL && err == c->exc_errno)
        raise_again(c->exc);
    else
        os_error(err);
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
 * Wait until byte `last` has arrived or the stream is over.  Returns 1 when
 * it has, 0 when the stream ended before it, -1 with an exception: the
 * stream's error when it failed or was cancelled first, KeyboardInterrupt
 * (or whatever a signal handler raised), ValueError when closed meanwhile.
 *
 * A one-byte read at `last` is the wait: it raises the demand to last + 1,
 * as a read of the whole range would, and copies nothing worth counting.
 */
static int wait_for(struct via v, uint64_t last)
{
    struct core *c = v.c;
    if (on_producer(c)) {
        PyErr_SetString(PyExc_RuntimeError,
                        "a stream's own source cannot wait for its bytes");
        return -1;
    }
    bool main_thread = _PyOS_IsMainThread();
    int slice = main_thread ? SLICE_MS : -1;
    unsigned char byte;
    for (;;) {
        ssize_t got;
        int err;
        Py_BEGIN_ALLOW_THREADS
        got = v.r != NULL ? sb_reader_pread_timed(v.r, &byte, 1, last, slice)
                          : sb_pread_timed(c->b, &byte, 1, last, slice);
        err = errno;
        if (got < 0 && err != ETIMEDOUT && !main_thread && atomic_load(&g_stop))
            park();
        Py_END_ALLOW_THREADS
        if (got >= 0)
            return got > 0;
        if (c->closed) {
            closed_error();
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

/* Copy [off, off + n), which has arrived (or the stream is over), into dst. */
static int copy_range(struct via v, void *dst, size_t n, uint64_t off)
{
    ssize_t got;
    int err = 0;
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
        os_error(err);
        return -1;
    }
    if ((size_t)got != n) { /* the range was there: cannot happen */
        os_error(EIO);
        return -1;
    }
    return 0;
}

/*
 * How many of [off, off + n) to copy: wait for the whole range, or for one
 * byte when `some` (readinto1).  Stores the count, which is short only at
 * the end of the stream.  Returns 0 or -1 with an exception.
 */
static int settle(struct via v, uint64_t off, uint64_t n, bool some, uint64_t *count)
{
    uint64_t avail = sb_available(v.c->b);
    uint64_t need = some ? 1 : n;
    *count = n;
    if (n == 0)
        return 0;
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

static PyObject *read_bytes(struct via v, uint64_t off, uint64_t n)
{
    uint64_t m;
    if (settle(v, off, n, false, &m) < 0)
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
    int rc = settle(v, off, (uint64_t)view.len, some, &m);
    if (rc == 0 && m > 0)
        rc = copy_range(v, view.buf, (size_t)m, off);
    PyBuffer_Release(&view);
    return rc < 0 ? NULL : PyLong_FromUnsignedLongLong(m);
}

/* Wait for the end: the stream's length, or -1 with its error. */
static int wait_end_impl(struct core *c, uint64_t *length)
{
    struct via v = { c, NULL };
    int rc = wait_for(v, UINT64_MAX - 1);
    if (rc < 0)
        return -1;
    *length = sb_available(c->b);
    return 0;
}

/* read's size: a count, or to the end of the stream when negative or None. */
static int read_size(PyObject *o, uint64_t *n, bool *to_end)
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

static PyObject *read_common(struct via v, PyObject *offo, PyObject *sizeo)
{
    uint64_t off, n = 0;
    bool to_end;
    if (to_u63(offo, "offset", &off) < 0 || read_size(sizeo, &n, &to_end) < 0)
        return NULL;
    if (to_end) {
        uint64_t len;
        if (wait_end_impl(v.c, &len) < 0)
            return NULL;
        n = len > off ? len - off : 0;
    }
    return read_bytes(v, off, n);
}

/* ------------------------------------------------------------------ */
/* StreamBuffer                                                        */

static const char *const read_names[] = { "offset", "size" };
static const char *const readinto_names[] = { "offset", "buffer" };

static PyObject *Buffer_read(BufferObject *self, PyObject *const *args,
                             Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *a[2];
    if (parse_args("read", args, nargs, kwnames, read_names, 2, 1, a) < 0)
        return NULL;
    struct core *c = enter(self);
    if (c == NULL)
        return NULL;
    PyObject *res = read_common((struct via){ c, NULL }, a[0], a[1]);
    leave(self, c);
    return res;
}

static PyObject *buffer_readinto(BufferObject *self, PyObject *const *args,
                                 Py_ssize_t nargs, PyObject *kwnames, bool some)
{
    PyObject *a[2];
    uint64_t off;
    if (parse_args(some ? "readinto1" : "readinto", args, nargs, kwnames,
                   readinto_names, 2, 2, a) < 0
        || to_u63(a[0], "offset", &off) < 0)
        return NULL;
    struct core *c = enter(self);
    if (c == NULL)
        return NULL;
    PyObject *res = readinto_impl((struct via){ c, NULL }, off, a[1], some);
    leave(self, c);
    return res;
}

static PyObject *Buffer_readinto(BufferObject *self, PyObject *const *args,
                                 Py_ssize_t nargs, PyObject *kwnames)
{
    return buffer_readinto(self, args, nargs, kwnames, false);
}

static PyObject *Buffer_readinto1(BufferObject *self, PyObject *const *args,
                                  Py_ssize_t nargs, PyObject *kwnames)
{
    return buffer_readinto(self, args, nargs, kwnames, true);
}

static PyObject *Buffer_wait_end(BufferObject *self, PyObject *unused)
{
    (void)unused;
    struct core *c = enter(self);
    if (c == NULL)
        return NULL;
    uint64_t len;
    PyObject *res = wait_end_impl(c, &len) < 0 ? NULL : PyLong_FromUnsignedLongLong(len);
    leave(self, c);
    return res;
}

static PyObject *Buffer_is_exhausted(BufferObject *self, PyObject *unused)
{
    (void)unused;
    struct core *c = enter(self);
    if (c == NULL)
        return NULL;
    sb_stats st;
    PyObject *res = NULL;
    if (sb_get_stats(c->b, &st) < 0)
        os_error(errno);
    else
        res = PyBool_FromLong(st.state != SB_RUNNING);
    leave(self, c);
    return res;
}

static PyObject *Buffer_cancel(BufferObject *self, PyObject *unused)
{
    (void)unused;
    struct core *c = enter(self);
    if (c == NULL)
        return NULL;
    sb_cancel(c->b);
    leave(self, c);
    Py_RETURN_NONE;
}

static PyObject *Buffer_close(BufferObject *self, PyObject *unused)
{
    (void)unused;
    close_core(self);
    Py_RETURN_NONE;
}

static PyObject *Buffer_enter(BufferObject *self, PyObject *unused)
{
    (void)unused;
    if (self->core == NULL || self->core->closed)
        return closed_error();
    return Py_NewRef(self);
}

static PyObject *Buffer_exit(BufferObject *self, PyObject *args)
{
    (void)args;
    close_core(self);
    Py_RETURN_FALSE;
}

static PyObject *Buffer_stats(BufferObject *self, PyObject *unused)
{
    (void)unused;
    static const char *const states[] = { "running", "ended", "failed" };
    struct core *c = enter(self);
    if (c == NULL)
        return NULL;
    sb_stats st;
    PyObject *res = NULL;
    if (sb_get_stats(c->b, &st) < 0)
        os_error(errno);
    else
        res = Py_BuildValue(
            "{sKsKsKsKsKsKsssisKsKsKsKsKsKsKsO}",
            "filled", (unsigned long long)st.filled,
            "in_memory", (unsigned long long)st.in_memory,
            "spilled", (unsigned long long)st.spilled,
            "publishes", (unsigned long long)st.publishes,
            "waiting", (unsigned long long)st.waiting,
            "wakeups", (unsigned long long)st.wakeups,
            "state", st.state >= 0 && st.state <= 2 ? states[st.state] : "?",
            "error", st.error,
            "floor", (unsigned long long)st.floor,
            "demand", (unsigned long long)st.demand,
            "released", (unsigned long long)st.released,
            "pauses", (unsigned long long)st.pauses,
            "paused_ns", (unsigned long long)st.paused_ns,
            "readers", (unsigned long long)st.readers,
            "huge_pages", (unsigned long long)st.huge_pages,
            "paused", st.paused ? Py_True : Py_False);
    leave(self, c);
    return res;
}

static PyObject *Buffer_open(BufferObject *self, PyObject *args, PyObject *kw)
{
    if (self->core == NULL || self->core->closed)
        return closed_error();
    PyObject *mod = PyImport_ImportModule("_streambuffer_io");
    if (mod == NULL)
        return NULL;
    PyObject *fn = PyObject_GetAttrString(mod, "open_buffer");
    Py_DECREF(mod);
    if (fn == NULL)
        return NULL;
    PyObject *all = PyTuple_New(PyTuple_GET_SIZE(args) + 1);
    if (all == NULL) {
        Py_DECREF(fn);
        return NULL;
    }
    PyTuple_SET_ITEM(all, 0, Py_NewRef(self));
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(args); i++)
        PyTuple_SET_ITEM(all, i + 1, Py_NewRef(PyTuple_GET_ITEM(args, i)));
    PyObject *res = PyObject_Call(fn, all, kw);
    Py_DECREF(all);
    Py_DECREF(fn);
    return res;
}

/* A Reader on self with floor flo (None: the buffer's floor) and the
   library's reader flags. */
static PyObject *new_reader(BufferObject *self, PyObject *flo, unsigned flags)
{
    struct core *c = enter(self);
    if (c == NULL)
        return NULL;
    uint64_t floor = 0;
    ReaderObject *r = NULL;
    if (flo == Py_None)
        floor = sb_floor(c->b);
    else if (to_u63(flo, "floor", &floor) < 0)
        goto out;
    r = PyObject_GC_New(ReaderObject, &ReaderType);
    if (r == NULL)
        goto out;
    r->buf = (BufferObject *)Py_NewRef(self);
    r->floor = floor;
    r->busy = false;
    r->nb = (flags & SB_NONBLOCK) != 0;
    r->weakrefs = NULL;
    r->prev = NULL;
    r->next = NULL;
    r->r = sb_reader_open_flags(c->b, floor, flags);
    if (r->r == NULL) {
        int err = errno;
        PyObject_GC_Track(r);
        Py_CLEAR(r);
        os_error(err);
        goto out;
    }
    /* Borrowed: sb_poll_ready hands it back only while r->r is open, and
       the Reader closes r->r before it goes. */
    sb_reader_set_tag(r->r, r);
    r->next = c->readers;
    if (c->readers != NULL)
        c->readers->prev = r;
    c->readers = r;
    PyObject_GC_Track(r);
out:
    leave(self, c);
    return (PyObject *)r;
}

static PyObject *Buffer_reader(BufferObject *self, PyObject *args, PyObject *kw)
{
    static char *names[] = { "floor", NULL };
    PyObject *flo = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:reader", names, &flo))
        return NULL;
    return new_reader(self, flo, 0);
}

/* ---- asyncio's primitives (the rest is in _streambuffer_aio.py) ---- */

static PyObject *Buffer_nb_reader(BufferObject *self, PyObject *flo)
{
    return new_reader(self, flo, SB_NONBLOCK);
}

/* A descriptor of the buffer's own: a dup of sb_poll_fd, which the caller
   closes.  The loop may still have it registered when the buffer is
   closed (and sb_close closes the original): a dup stays a valid fd of
   the same eventfd until the loop lets go of it. */
static PyObject *Buffer_poll_fd(BufferObject *self, PyObject *unused)
{
    (void)unused;
    struct core *c = enter(self);
    if (c == NULL)
        return NULL;
    int fd = sb_poll_fd(c->b);
    int mine = fd < 0 ? -1 : fcntl(fd, F_DUPFD_CLOEXEC, 0);
    int err = errno;
    leave(self, c);
    if (mine < 0)
        return os_error(err);
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
    struct core *c = enter(self);
    if (c == NULL)
        return NULL;
    sb_reader *ready[4096];
    size_t k = sb_poll_ready(c->b, ready, (size_t)max);
    PyObject *out = PyList_New((Py_ssize_t)k);
    for (size_t i = 0; out != NULL && i < k; i++)
        PyList_SET_ITEM(out, (Py_ssize_t)i, Py_NewRef((PyObject *)sb_reader_tag(ready[i])));
    leave(self, c);
    return out;
}

/* buf[start:stop:step]: any slice, as on bytes.  What needs the length
   (an open end, a negative index or step) waits for the whole stream. */
static PyObject *subscript_slice(BufferObject *self, PyObject *key)
{
    Py_ssize_t start, stop, step;
    if (PySlice_Unpack(key, &start, &stop, &step) < 0)
        return NULL;
    struct core *c = enter(self);
    if (c == NULL)
        return NULL;
    PyObject *res = NULL;
    Py_ssize_t lo, hi;
    if (start < 0 || stop < 0 || step < 0 || stop == PY_SSIZE_T_MAX) {
        uint64_t len;
        if (wait_end_impl(c, &len) < 0)
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
    res = read_bytes((struct via){ c, NULL }, (uint64_t)lo, (uint64_t)(hi - lo));
    if (res != NULL && step != 1) {
        PyObject *stepo = PyLong_FromSsize_t(step);
        PyObject *sl = stepo != NULL ? PySlice_New(NULL, NULL, stepo) : NULL;
        PyObject *picked = sl != NULL ? PyObject_GetItem(res, sl) : NULL;
        Py_XDECREF(sl);
        Py_XDECREF(stepo);
        Py_SETREF(res, picked);
    }
out:
    leave(self, c);
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
        return closed_error();
    return PyLong_FromUnsignedLongLong(sb_available(self->core->b));
}

static PyObject *Buffer_get_floor(BufferObject *self, void *unused)
{
    (void)unused;
    if (self->core == NULL || self->core->closed)
        return closed_error();
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
        return closed_error();
    return Py_NewRef(self->core->exc != NULL ? self->core->exc : Py_None);
}

/* Classify the source and set up c for it.  Returns 0 or -1. */
static int take_source(struct core *c, PyObject *stream)
{
    static const char *const readers[] = { "readinto1", "readinto", "read1", "read" };
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
        c->kind = i < 2 ? KIND_READINTO : KIND_READ;
        c->src = fn;
        return 0;
    }
    c->kind = KIND_ITER;
    c->src = PyObject_GetIter(stream);
    if (c->src == NULL) {
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

static void free_unopened(struct core *c)
{
    Py_CLEAR(c->src);
    Py_CLEAR(c->mem);
    free(c);
}

static int Buffer_init(BufferObject *self, PyObject *args, PyObject *kw)
{
    static char *names[] = { "stream", "size", "max_size", "limit", "tmp_dir",
                             "chunk_size", "read_ahead", "max_retained", "release",
                             NULL };
    PyObject *stream, *size = Py_None, *maxo = NULL, *limito = NULL, *tmpo = NULL;
    PyObject *chunko = NULL, *aheado = NULL, *retainedo = NULL;
    int release = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|OO$OOOOOp:StreamBuffer", names,
                                     &stream, &size, &maxo, &limito, &tmpo, &chunko,
                                     &aheado, &retainedo, &release))
        return -1;
    if (self->core != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "StreamBuffer is already initialized");
        return -1;
    }

    sb_options o;
    memset(&o, 0, sizeof o);
    uint64_t max_size = (uint64_t)DEFAULT_MAX_SIZE;
    if (maxo != NULL && maxo != Py_None) {
        if (to_u63(maxo, "max_size", &max_size) < 0)
            return -1;
        if (max_size == 0 || max_size > PY_SSIZE_T_MAX) {
            PyErr_SetString(PyExc_ValueError,
                            "max_size (the bytes kept in memory) must be positive: "
                            "the memory part is reserved when the buffer opens");
            return -1;
        }
    }
    o.mem_limit = (size_t)max_size;
    uint64_t chunk;
    if (opt_u63(size, "size", &o.length_hint) < 0 || opt_u63(limito, "limit", &o.max_size) < 0
        || opt_u63(chunko, "chunk_size", &chunk) < 0
        || opt_u63(aheado, "read_ahead", &o.read_ahead) < 0
        || opt_u63(retainedo, "max_retained", &o.max_retained) < 0)
        return -1;
    if (chunk > PY_SSIZE_T_MAX) {
        PyErr_SetString(PyExc_ValueError, "chunk_size is too large");
        return -1;
    }
    o.chunk_size = (size_t)chunk;
    if (o.max_size != 0 && o.length_hint > o.max_size) {
        PyErr_SetString(PyExc_ValueError, "size is larger than limit");
        return -1;
    }
    if (o.max_retained != 0 && !release) {
        PyErr_SetString(PyExc_ValueError, "max_retained needs release=True");
        return -1;
    }
    o.flags = release ? SB_RELEASE : 0;
    PyObject *tmp = NULL;
    if (tmpo != NULL && tmpo != Py_None) {
        if (!PyUnicode_FSConverter(tmpo, &tmp))
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
    c->mem_limit = o.mem_limit;
    if (take_source(c, stream) < 0) {
        Py_XDECREF(tmp);
        free_unopened(c);
        return -1;
    }
    if (c->kind == KIND_MEM) {
        c->mem_limit = SIZE_MAX;
        c->b = sb_open_mem(PyBytes_AS_STRING(c->mem), (size_t)PyBytes_GET_SIZE(c->mem), &o);
    } else {
        sb_source src;
        memset(&src, 0, sizeof src);
        if (c->kind == KIND_ITER)
            src.next = src_next;
        else
            src.read = src_read;
        src.cancel = src_cancel;
        src.ctx = c;
        /* The producer starts now and waits for the GIL in its first
           callback: c is complete before it can look. */
        c->b = sb_open(&src, &o);
    }
    int err = errno;
    Py_XDECREF(tmp);
    if (c->b == NULL) {
        free_unopened(c);
        os_error(err);
        return -1;
    }
    link_live(c);
    self->core = c;
    Py_XSETREF(self->stream, Py_NewRef(stream));
    Py_XSETREF(self->size, Py_NewRef(size));
    self->max_size = (Py_ssize_t)max_size;
    self->limit = o.max_size;
    self->chunk_size = o.chunk_size;
    self->read_ahead = o.read_ahead;
    self->max_retained = o.max_retained;
    self->release = release != 0;
    return 0;
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
        Py_VISIT(c->src);
        Py_VISIT(c->chunk);
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
    PyObject *exc = take_exception();
    close_core(self);
    if (exc != NULL) {
        raise_again(exc);
        Py_DECREF(exc);
    }
}

static void Buffer_dealloc(BufferObject *self)
{
    if (PyObject_CallFinalizerFromDealloc((PyObject *)self) < 0)
        return; /* resurrected */
    /* A subclass's __del__ takes the place of Buffer_finalize. */
    if (self->core != NULL) {
        PyObject *exc = PyErr_Occurred() ? take_exception() : NULL;
        close_core(self);
        if (exc != NULL) {
            raise_again(exc);
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

/* ------------------------------------------------------------------ */
/* Reader                                                              */

static void reader_unlink(struct core *c, ReaderObject *r)
{
    if (r->prev != NULL)
        r->prev->next = r->next;
    else if (c->readers == r)
        c->readers = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
}

/* Readers must be closed before sb_close: close() closes them first. */
static void close_readers(struct core *c)
{
    while (c->readers != NULL) {
        ReaderObject *r = c->readers;
        reader_unlink(c, r);
        sb_reader_close(r->r);
        r->r = NULL;
    }
}

static void reader_close(ReaderObject *self)
{
    if (self->r == NULL)
        return;
    struct core *c = self->buf->core;
    if (c != NULL)
        reader_unlink(c, self);
    sb_reader_close(self->r);
    self->r = NULL;
}

static struct core *reader_enter(ReaderObject *self)
{
    if (self->r == NULL) {
        PyErr_SetString(PyExc_ValueError, "I/O operation on a closed Reader");
        return NULL;
    }
    struct core *c = enter(self->buf);
    if (c == NULL)
        return NULL;
    if (self->busy) {
        leave(self->buf, c);
        PyErr_SetString(PyExc_RuntimeError, "a Reader is for one thread at a time");
        return NULL;
    }
    self->busy = true;
    return c;
}

static void reader_leave(ReaderObject *self, struct core *c)
{
    self->busy = false;
    leave(self->buf, c);
}

static PyObject *Reader_read(ReaderObject *self, PyObject *const *args,
                             Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *a[2];
    if (parse_args("read", args, nargs, kwnames, read_names, 2, 1, a) < 0)
        return NULL;
    struct core *c = reader_enter(self);
    if (c == NULL)
        return NULL;
    PyObject *res = read_common((struct via){ c, self->r }, a[0], a[1]);
    reader_leave(self, c);
    return res;
}

static PyObject *reader_readinto(ReaderObject *self, PyObject *const *args,
                                 Py_ssize_t nargs, PyObject *kwnames, bool some)
{
    PyObject *a[2];
    uint64_t off;
    if (parse_args(some ? "readinto1" : "readinto", args, nargs, kwnames,
                   readinto_names, 2, 2, a) < 0
        || to_u63(a[0], "offset", &off) < 0)
        return NULL;
    struct core *c = reader_enter(self);
    if (c == NULL)
        return NULL;
    PyObject *res = readinto_impl((struct via){ c, self->r }, off, a[1], some);
    reader_leave(self, c);
    return res;
}

static PyObject *Reader_readinto(ReaderObject *self, PyObject *const *args,
                                 Py_ssize_t nargs, PyObject *kwnames)
{
    return reader_readinto(self, args, nargs, kwnames, false);
}

static PyObject *Reader_readinto1(ReaderObject *self, PyObject *const *args,
                                  Py_ssize_t nargs, PyObject *kwnames)
{
    return reader_readinto(self, args, nargs, kwnames, true);
}

static PyObject *Reader_release(ReaderObject *self, PyObject *arg)
{
    uint64_t floor;
    if (to_u63(arg, "floor", &floor) < 0)
        return NULL;
    struct core *c = reader_enter(self);
    if (c == NULL)
        return NULL;
    PyObject *res = NULL;
    if (floor < self->floor)
        PyErr_Format(PyExc_ValueError, "a reader's floor only rises (it is %llu)",
                     (unsigned long long)self->floor);
    else if (sb_reader_release(self->r, floor) < 0)
        os_error(errno);
    else
        res = Py_NewRef(Py_None);
    /* The floor rises even when giving back the space failed. */
    if (floor > self->floor)
        self->floor = floor;
    reader_leave(self, c);
    return res;
}

/*
 * _arm(offset, size): on a non-blocking Reader, whether [offset, offset +
 * size) can be answered now (True: read it, it will not wait) or the
 * Reader is armed for it (False: its buffer's poll fd will say when).
 * size None or negative is to the end of the stream.  The probe is a
 * one-byte read at the range's last byte: it arms for exactly the range's
 * need and demand, as the blocking read's wait does.
 */
static PyObject *Reader_arm(ReaderObject *self, PyObject *const *args,
                            Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *a[2];
    if (parse_args("_arm", args, nargs, kwnames, read_names, 2, 1, a) < 0)
        return NULL;
    uint64_t off, n = 0;
    bool to_end;
    if (to_u63(a[0], "offset", &off) < 0 || read_size(a[1], &n, &to_end) < 0)
        return NULL;
    if (!self->nb) {
        PyErr_SetString(PyExc_ValueError, "not a non-blocking Reader");
        return NULL;
    }
    if (n == 0 && !to_end)
        Py_RETURN_TRUE;
    struct core *c = reader_enter(self);
    if (c == NULL)
        return NULL;
    /* Past any stream there can be: answered only by the end. */
    uint64_t last = to_end ? (uint64_t)1 << 62 : off + n - 1;
    unsigned char byte;
    ssize_t got = sb_reader_pread(self->r, &byte, 1, last);
    int err = errno;
    reader_leave(self, c);
    return PyBool_FromLong(!(got < 0 && err == EAGAIN));
}

static int reader_close_checked(ReaderObject *self)
{
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "a Reader is for one thread at a time");
        return -1;
    }
    reader_close(self);
    return 0;
}

static PyObject *Reader_close(ReaderObject *self, PyObject *unused)
{
    (void)unused;
    if (reader_close_checked(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *Reader_enter(ReaderObject *self, PyObject *unused)
{
    (void)unused;
    if (self->r == NULL) {
        PyErr_SetString(PyExc_ValueError, "I/O operation on a closed Reader");
        return NULL;
    }
    return Py_NewRef(self);
}

static PyObject *Reader_exit(ReaderObject *self, PyObject *args)
{
    (void)args;
    if (reader_close_checked(self) < 0)
        return NULL;
    Py_RETURN_FALSE;
}

static PyObject *Reader_get_floor(ReaderObject *self, void *unused)
{
    (void)unused;
    return PyLong_FromUnsignedLongLong(self->floor);
}

static PyObject *Reader_get_closed(ReaderObject *self, void *unused)
{
    (void)unused;
    return PyBool_FromLong(self->r == NULL);
}

static PyObject *Reader_get_buffer(ReaderObject *self, void *unused)
{
    (void)unused;
    return Py_NewRef(self->buf);
}

static int Reader_traverse(ReaderObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->buf);
    return 0;
}

static void Reader_dealloc(ReaderObject *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weakrefs != NULL)
        PyObject_ClearWeakRefs((PyObject *)self);
    reader_close(self);
    Py_CLEAR(self->buf);
    PyObject_GC_Del(self);
}

/* ------------------------------------------------------------------ */
/* Types and the module                                                */

PyDoc_STRVAR(read_doc,
"read(offset, size=-1) -> bytes\n\n"
"The bytes [offset, offset + size) of the stream, waiting until they have\n"
"arrived.  Short at the end of the stream, b'' past it; a negative size\n"
"reads to the end.  If the stream failed or was cancelled before the\n"
"bytes arrived, raises the iterator's exception or OSError.");
PyDoc_STRVAR(readinto_doc,
"readinto(offset, buffer) -> int\n\n"
"Fill buffer with the bytes at offset, waiting for all of them (fewer at\n"
"the end of the stream).  Returns the count.");
PyDoc_STRVAR(readinto1_doc,
"readinto1(offset, buffer) -> int\n\n"
"Like readinto, but waits only for the first byte and copies what has\n"
"arrived, like a read(2) on a pipe.  0 at the end of the stream.");
PyDoc_STRVAR(wait_end_doc,
"wait_end() -> int\n\nWait for the end of the stream; its length.  Raises "
"the stream's error if it failed.");
PyDoc_STRVAR(is_exhausted_doc,
"is_exhausted() -> bool\n\nTrue once no more bytes will arrive: the stream "
"ended (or failed, or was cancelled).  Never waits, consumes nothing.");
PyDoc_STRVAR(cancel_doc,
"cancel()\n\nStop the stream now: bytes that arrived stay readable, reads of "
"the others raise OSError(ECANCELED).");
PyDoc_STRVAR(close_doc,
"close()\n\nCancel the stream and free the buffer; later calls raise "
"ValueError.  Does not wait for the iterator.");
PyDoc_STRVAR(open_doc,
"open(buffering=io.DEFAULT_BUFFER_SIZE) -> io.BufferedReader\n\n"
"A seekable binary file over the stream with its own position.  With\n"
"release=True it reads forward through a Reader and releases as it goes.");
PyDoc_STRVAR(reader_doc,
"reader(floor=None) -> Reader\n\nA registered reader whose floor is floor "
"(default: the buffer's floor).");
PyDoc_STRVAR(stats_doc, "stats() -> dict\n\nA snapshot of the library's counters.");
PyDoc_STRVAR(aread_doc,
"aread(offset, size=-1) -> coroutine\n\n"
"read for asyncio: await it for the same bytes (or the same exception)\n"
"without blocking the event loop or holding a thread.  The running loop\n"
"watches the buffer's poll descriptor while an aread waits; cancelling\n"
"the awaiting task drops the wait.");

/* aread(...) is _streambuffer_aio.aread(self, ...): a coroutine. */
static PyObject *call_aio(PyObject *self, PyObject *args, PyObject *kw)
{
    PyObject *mod = PyImport_ImportModule("_streambuffer_aio");
    if (mod == NULL)
        return NULL;
    PyObject *fn = PyObject_GetAttrString(mod, "aread");
    Py_DECREF(mod);
    if (fn == NULL)
        return NULL;
    PyObject *all = PyTuple_New(PyTuple_GET_SIZE(args) + 1);
    if (all == NULL) {
        Py_DECREF(fn);
        return NULL;
    }
    PyTuple_SET_ITEM(all, 0, Py_NewRef(self));
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(args); i++)
        PyTuple_SET_ITEM(all, i + 1, Py_NewRef(PyTuple_GET_ITEM(args, i)));
    PyObject *res = PyObject_Call(fn, all, kw);
    Py_DECREF(all);
    Py_DECREF(fn);
    return res;
}

static PyObject *Buffer_aread(BufferObject *self, PyObject *args, PyObject *kw)
{
    if (self->core == NULL || self->core->closed)
        return closed_error();
    return call_aio((PyObject *)self, args, kw);
}

static PyObject *Reader_aread(ReaderObject *self, PyObject *args, PyObject *kw)
{
    if (self->r == NULL) {
        PyErr_SetString(PyExc_ValueError, "I/O operation on a closed Reader");
        return NULL;
    }
    return call_aio((PyObject *)self, args, kw);
}

static PyMethodDef Buffer_methods[] = {
    { "read", (PyCFunction)(void (*)(void))Buffer_read, METH_FASTCALL | METH_KEYWORDS, read_doc },
    { "readinto", (PyCFunction)(void (*)(void))Buffer_readinto, METH_FASTCALL | METH_KEYWORDS, readinto_doc },
    { "readinto1", (PyCFunction)(void (*)(void))Buffer_readinto1, METH_FASTCALL | METH_KEYWORDS, readinto1_doc },
    { "wait_end", (PyCFunction)Buffer_wait_end, METH_NOARGS, wait_end_doc },
    { "is_exhausted", (PyCFunction)Buffer_is_exhausted, METH_NOARGS, is_exhausted_doc },
    { "cancel", (PyCFunction)Buffer_cancel, METH_NOARGS, cancel_doc },
    { "close", (PyCFunction)Buffer_close, METH_NOARGS, close_doc },
    { "open", (PyCFunction)(void (*)(void))Buffer_open, METH_VARARGS | METH_KEYWORDS, open_doc },
    { "reader", (PyCFunction)(void (*)(void))Buffer_reader, METH_VARARGS | METH_KEYWORDS, reader_doc },
    { "stats", (PyCFunction)Buffer_stats, METH_NOARGS, stats_doc },
    { "aread", (PyCFunction)(void (*)(void))Buffer_aread, METH_VARARGS | METH_KEYWORDS, aread_doc },
    { "_nb_reader", (PyCFunction)Buffer_nb_reader, METH_O, NULL },
    { "_poll_fd", (PyCFunction)Buffer_poll_fd, METH_NOARGS, NULL },
    { "_poll_ready", (PyCFunction)Buffer_poll_ready, METH_O, NULL },
    { "__enter__", (PyCFunction)Buffer_enter, METH_NOARGS, NULL },
    { "__exit__", (PyCFunction)Buffer_exit, METH_VARARGS, NULL },
    { NULL, NULL, 0, NULL },
};

static PyMemberDef Buffer_members[] = {
    { "stream", T_OBJECT, offsetof(BufferObject, stream), READONLY, "the source, as given" },
    { "size", T_OBJECT, offsetof(BufferObject, size), READONLY, "the expected length, as given (a hint)" },
    { "max_size", T_PYSSIZET, offsetof(BufferObject, max_size), READONLY, "bytes kept in memory before the rest spills to a file" },
    { "limit", T_ULONGLONG, offsetof(BufferObject, limit), READONLY, "hard cap on the length (0: none)" },
    { "chunk_size", T_ULONGLONG, offsetof(BufferObject, chunk_size), READONLY, "most bytes asked of a file at once (0: 64 KiB)" },
    { "read_ahead", T_ULONGLONG, offsetof(BufferObject, read_ahead), READONLY, "lazy pull: bytes pulled past the furthest read (0: eager)" },
    { "max_retained", T_ULONGLONG, offsetof(BufferObject, max_retained), READONLY, "backpressure: bytes held above the floor (0: no bound)" },
    { "release", T_BOOL, offsetof(BufferObject, release), READONLY, "bytes below the readers' floor are given back" },
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

PyDoc_STRVAR(Buffer_doc,
"StreamBuffer(stream, size=None, max_size=5 MiB, *, limit=None, tmp_dir=None,\n"
"             chunk_size=None, read_ahead=None, max_retained=None,\n"
"             release=False)\n\n"
"Random access to a one-pass stream, shared by any number of threads.  A\n"
"background thread drains stream (bytes, an iterable of bytes-like chunks,\n"
"or a binary file) into memory, the first max_size bytes, and a temporary\n"
"file beyond.  size is the expected length, a hint only.");

static PyTypeObject BufferType = {
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

static PyMethodDef Reader_methods[] = {
    { "read", (PyCFunction)(void (*)(void))Reader_read, METH_FASTCALL | METH_KEYWORDS, read_doc },
    { "readinto", (PyCFunction)(void (*)(void))Reader_readinto, METH_FASTCALL | METH_KEYWORDS, readinto_doc },
    { "readinto1", (PyCFunction)(void (*)(void))Reader_readinto1, METH_FASTCALL | METH_KEYWORDS, readinto1_doc },
    { "release", (PyCFunction)Reader_release, METH_O,
      "release(floor)\n\nRaise the reader's floor: it will read only [floor, ...)." },
    { "close", (PyCFunction)Reader_close, METH_NOARGS, "close()\n\nUnregister the reader." },
    { "aread", (PyCFunction)(void (*)(void))Reader_aread, METH_VARARGS | METH_KEYWORDS, aread_doc },
    { "_arm", (PyCFunction)(void (*)(void))Reader_arm, METH_FASTCALL | METH_KEYWORDS, NULL },
    { "__enter__", (PyCFunction)Reader_enter, METH_NOARGS, NULL },
    { "__exit__", (PyCFunction)Reader_exit, METH_VARARGS, NULL },
    { NULL, NULL, 0, NULL },
};

static PyGetSetDef Reader_getset[] = {
    { "floor", (getter)Reader_get_floor, NULL, "the lowest offset it may read", NULL },
    { "closed", (getter)Reader_get_closed, NULL, "True after close()", NULL },
    { "buffer", (getter)Reader_get_buffer, NULL, "the StreamBuffer it reads", NULL },
    { NULL, NULL, NULL, NULL, NULL },
};

static PyTypeObject ReaderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "streambuffer.Reader",
    .tp_basicsize = sizeof(ReaderObject),
    .tp_dealloc = (destructor)Reader_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "A reader with a floor, from StreamBuffer.reader(): one thread at a time.",
    .tp_traverse = (traverseproc)Reader_traverse,
    .tp_weaklistoffset = offsetof(ReaderObject, weakrefs),
    .tp_methods = Reader_methods,
    .tp_getset = Reader_getset,
};

/*
 * The exit hook (atexit, which runs before the interpreter starts to
 * finalize): no producer may take the GIL from now on.  Every live stream
 * is cancelled, so that a read during finalization (a __del__) does not
 * wait for a producer that will never deliver (daemon threads that were
 * waiting park, see park()).  The producers already on their way into the
 * GIL are let through, so that none is left between its look at g_stop and
 * the GIL when the interpreter goes.
 */
static PyObject *at_exit(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
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
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    { "_at_exit", at_exit, METH_NOARGS, "Stop every producer (registered with atexit)." },
    { NULL, NULL, 0, NULL },
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT,
    .m_name = "streambuffer",
    .m_doc = "Many threads, one byte stream, random access: the C library "
             "streambuffer for Python.",
    .m_size = -1,
    .m_methods = module_methods,
};

static int register_at_exit(PyObject *m)
{
    PyObject *atexit = PyImport_ImportModule("atexit");
    if (atexit == NULL)
        return -1;
    PyObject *fn = PyObject_GetAttrString(m, "_at_exit");
    PyObject *r = fn != NULL ? PyObject_CallMethod(atexit, "register", "O", fn) : NULL;
    Py_XDECREF(fn);
    Py_DECREF(atexit);
    Py_XDECREF(r);
    return r == NULL ? -1 : 0;
}

PyMODINIT_FUNC PyInit_streambuffer(void);

PyMODINIT_FUNC PyInit_streambuffer(void)
{
    if (PyType_Ready(&BufferType) < 0 || PyType_Ready(&ReaderType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "StreamBuffer", (PyObject *)&BufferType) < 0
        || PyModule_AddObjectRef(m, "Reader", (PyObject *)&ReaderType) < 0
        || PyModule_AddStringConstant(m, "__version__", SB_VERSION) < 0
        || PyModule_AddStringConstant(m, "library_version", sb_version()) < 0
        || PyModule_AddIntConstant(m, "DEFAULT_MAX_SIZE", (long)DEFAULT_MAX_SIZE) < 0
        || register_at_exit(m) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
