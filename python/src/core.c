/* SPDX-License-Identifier: MIT */
/*
 * core.c - a call's way in and out of a buffer or a Reader, the core's list
 * of Readers, and freeing a core: by the last call out of a closed buffer,
 * or by a detached reaper when the producer is inside Python.
 */
#include "common.h"

/* The detached thread that joins a producer still inside Python.  It
   never touches Python: the producer drops its own state on its way out. */
static void *reaper_main(void *arg)
{
    struct core *c = arg;
    sb_close(c->b);
    sb__py_http_free(c);
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

/* Readers must be closed before sb_close: close() closes them first. */
static void close_readers(struct core *c)
{
    while (c->readers != NULL) {
        ReaderObject *r = c->readers;
        SB__PY_UNLINK(&c->readers, r);
        sb_reader_close(r->r);
        r->r = NULL;
    }
}

void sb__py_reader_close(ReaderObject *self)
{
    if (self->r == NULL)
        return;
    struct core *c = self->buf->core;
    if (c != NULL)
        SB__PY_UNLINK(&c->readers, self);
    sb_reader_close(self->r);
    self->r = NULL;
}

struct core *sb__py_reader_enter(ReaderObject *self)
{
    if (self->r == NULL) {
        sb__py_reader_closed_error();
        return NULL;
    }
    struct core *c = sb__py_enter(self->buf);
    if (c == NULL)
        return NULL;
    if (self->busy) {
        sb__py_leave(self->buf, c);
        PyErr_SetString(PyExc_RuntimeError, "a Reader is for one thread at a time");
        return NULL;
    }
    self->busy = true;
    return c;
}

void sb__py_reader_leave(ReaderObject *self, struct core *c)
{
    self->busy = false;
    sb__py_leave(self->buf, c);
}

void sb__py_teardown(struct core *c)
{
    sb__py_unlink_live(c);
    close_readers(c);
    atomic_store(&c->stop, true);
    sb_cancel(c->b);
    Py_CLEAR(c->exc);
    /* c->stop is set: a fetcher that enters a part's callback from now on
       sees it (sb__py_part_enter), and one already in counts. */
    if (c->in.in_call || sb__py_on_producer(c) || atomic_load(&c->part_calls) > 0) {
        /* The producer (or a part) is in the middle of a callback (or
           this is it, run by the garbage collector from inside one): it
           holds its own references and drops the rest when it sees
           c->closed.  The library is not copying the source's chunk now,
           so that chunk can go; parts drop their own when closed. */
        sb__py_drop_chunk(c);
        Py_CLEAR(c->in.src);
        Py_CLEAR(c->open_at);
        if (start_reaper(c) == 0)
            return;
        if (sb__py_on_producer(c))
            return; /* cannot join itself: leak the buffer rather than hang */
    }
    Py_BEGIN_ALLOW_THREADS
    sb_close(c->b);
    Py_END_ALLOW_THREADS
    sb__py_http_free(c);
    sb__py_drop_chunk(c);
    Py_CLEAR(c->in.src);
    Py_CLEAR(c->open_at);
    Py_CLEAR(c->mem);
    /* A producer stopped between two callbacks left its thread state.
       While the interpreter is finalizing it clears them all itself. */
    if (c->tstate != NULL && !sb__py_finalizing()) {
        PyThreadState_Clear(c->tstate);
        PyThreadState_Delete(c->tstate);
    }
    free(c);
}

/* Start a Python call that uses the buffer.  Returns the core, or NULL
   with ValueError once the buffer is closed. */
struct core *sb__py_enter(BufferObject *self)
{
    struct core *c = self->core;
    if (c == NULL || c->closed) {
        sb__py_closed_error();
        return NULL;
    }
    c->users++;
    return c;
}

/* End it.  The last call out of a buffer that was closed meanwhile frees
   it; whatever exception is being raised stays. */
void sb__py_leave(BufferObject *self, struct core *c)
{
    if (--c->users > 0 || !c->closed)
        return;
    PyObject *exc = PyErr_Occurred() ? sb__py_take_exception() : NULL;
    if (self->core == c)
        self->core = NULL;
    sb__py_teardown(c);
    if (exc != NULL) {
        sb__py_raise_again(exc);
        Py_DECREF(exc);
    }
}

