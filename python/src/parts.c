/* SPDX-License-Identifier: MIT */
/*
 * parts.c - open_at(offset, end): a Python source that can start over at
 * an offset, as the library's ranged source (see "Ranged sources" in
 * streambuffer.h).
 *
 * The library calls open_at, and each part's read or next, on its fetcher
 * threads, several at once.  Each call takes the GIL (PyGILState_Ensure:
 * a fetcher runs many parts, one after another, and has no thread state of
 * its own between them) and is counted in c->part_calls, so that close(),
 * which cannot wait for a Python call that may block for ever, leaves the
 * join to the reaper as it does for the producer (core.c).  A part's close
 * drops its Python objects and calls the returned object's close(), if it
 * has one: the buffer asked for the part and is done with it (a
 * connection goes back to its pool).  Past the interpreter's exit hook
 * nothing takes the GIL: the part's objects are left, not freed.
 */
#include "common.h"

struct part {
    struct core *c;
    struct feed f;
    PyObject *obj;    /* what open_at returned */
    atomic_bool stop; /* its cancel: the next callback returns at once */
};

static void part_close(void *ctx)
{
    struct part *p = ctx;
    PyGILState_STATE g;
    if (sb__py_part_enter(p->c, NULL, &g)) {
        PyObject *exc = sb__py_take_exception();
        sb__py_feed_drop(&p->f);
        Py_CLEAR(p->f.src);
        PyObject *obj = p->obj;
        p->obj = NULL;
        PyObject *r = PyObject_HasAttrString(obj, "close")
                          ? PyObject_CallMethod(obj, "close", NULL) : Py_NewRef(Py_None);
        if (r == NULL)
            PyErr_WriteUnraisable(obj);
        Py_XDECREF(r);
        Py_DECREF(obj);
        if (exc != NULL) {
            sb__py_raise_again(exc);
            Py_DECREF(exc);
        }
        sb__py_part_leave(p->c, g);
    }
    free(p);
}

static void part_cancel(void *ctx)
{
    struct part *p = ctx;
    atomic_store(&p->stop, true);
}

static int part_next(void *ctx, const void **chunk, size_t *len)
{
    struct part *p = ctx;
    PyGILState_STATE g;
    if (!sb__py_part_enter(p->c, &p->stop, &g))
        return -ECANCELED;
    int rc = sb__py_feed_next(p->c, &p->f, &p->stop);
    if (rc > 0) {
        *chunk = p->f.view.buf;
        *len = (size_t)p->f.view.len;
    }
    sb__py_part_leave(p->c, g);
    return rc;
}

static ssize_t part_read(void *ctx, void *buf, size_t cap)
{
    struct part *p = ctx;
    PyGILState_STATE g;
    if (!sb__py_part_enter(p->c, &p->stop, &g))
        return -ECANCELED;
    ssize_t rc = sb__py_feed_read(p->c, &p->f, &p->stop, buf, cap);
    bool copy = rc > 0 && p->f.kind == KIND_READ;
    sb__py_part_leave(p->c, g);
    /* The chunk stays held until the next callback or the close. */
    if (copy)
        memcpy(buf, p->f.view.buf, (size_t)rc);
    return rc;
}

int sb__py_part_open(void *ctx, uint64_t off, uint64_t end, sb_source *out,
                     uint64_t *length)
{
    struct core *c = ctx;
    PyGILState_STATE g;
    if (!sb__py_part_enter(c, &c->stop, &g))
        return -ECANCELED;
    int rc = -ECANCELED;
    struct part *p = NULL;
    if (!c->closed && c->open_at != NULL) {
        PyObject *fn = Py_NewRef(c->open_at);
        PyObject *res = end == UINT64_MAX
                            ? PyObject_CallFunction(fn, "KO", (unsigned long long)off, Py_None)
                            : PyObject_CallFunction(fn, "KK", (unsigned long long)off,
                                                    (unsigned long long)end);
        Py_DECREF(fn);
        if (res == NULL) {
            rc = sb__py_feed_failed(c, NULL, true);
        } else if (res == Py_None) {
            Py_DECREF(res);
            PyErr_SetString(PyExc_TypeError,
                            "open_at() returned None: return a binary file or an "
                            "iterable of bytes-like chunks from the offset");
            rc = sb__py_feed_failed(c, NULL, true);
        } else if ((p = calloc(1, sizeof *p)) == NULL) {
            Py_DECREF(res);
            rc = -ENOMEM;
        } else {
            p->c = c;
            p->obj = res;
            atomic_init(&p->stop, false);
            rc = sb__py_feed_take(&p->f, res, true) < 0 ? sb__py_feed_failed(c, NULL, true) : 0;
        }
    }
    if (rc == 0 && c->closed)
        rc = -ECANCELED; /* the call may have run close() (a __del__) */
    if (rc != 0 && p != NULL) {
        Py_CLEAR(p->f.src);
        Py_CLEAR(p->obj);
        free(p);
        p = NULL;
    }
    if (rc == 0 && c->has_length)
        *length = c->length;
    sb__py_part_leave(c, g);
    if (rc == 0) {
        if (p->f.kind == KIND_ITER)
            out->next = part_next;
        else
            out->read = part_read;
        out->cancel = part_cancel;
        out->close = part_close;
        out->ctx = p;
    }
    return rc;
}
