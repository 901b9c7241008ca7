/* SPDX-License-Identifier: MIT */
/*
 * view.c - view(): a memoryview of the stream's bytes in place, and the
 * record of every view lent, which keeps them valid.
 *
 * The library's rule (sb_view in streambuffer.h) is that the bytes under a
 * view never change or move until sb_close and, with SB_RELEASE, until
 * the Reader that lent them releases past them.  Python code cannot be
 * trusted to remember a rule, so the module enforces it: each view is a
 * small object, linked into its core, that holds a reference to what lent
 * it; close() of that buffer or Reader, and a release past a view's first
 * byte, raise BufferError while the view lives, as mmap.close() does while
 * memoryviews of it exist.
 */
#include "common.h"

struct ViewObject {
    PyObject_HEAD
    PyObject *owner;  /* the StreamBuffer or Reader that lent it */
    struct core *c;   /* owner's core, which cannot close while this lives */
    ReaderObject *r;  /* the Reader that lent it, or NULL */
    const void *ptr;
    Py_ssize_t len;
    uint64_t off;
    ViewObject *prev, *next; /* in c->views */
};

static int View_getbuffer(ViewObject *self, Py_buffer *view, int flags)
{
    return PyBuffer_FillInfo(view, (PyObject *)self, (void *)self->ptr, self->len,
                             1, flags);
}

static PyBufferProcs View_as_buffer = {
    .bf_getbuffer = (getbufferproc)View_getbuffer,
};

static void View_dealloc(ViewObject *self)
{
    SB__PY_UNLINK(&self->c->views, self);
    Py_DECREF(self->owner);
    PyObject_Free(self);
}

PyTypeObject sb__py_view_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "streambuffer._View",
    .tp_basicsize = sizeof(ViewObject),
    .tp_dealloc = (destructor)View_dealloc,
    .tp_as_buffer = &View_as_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "What a memoryview from view() is a view of: bytes of a stream, in place.",
};

bool sb__py_views_below(struct core *c, ReaderObject *r, uint64_t floor,
                        const char *what)
{
    for (const ViewObject *v = c->views; v != NULL; v = v->next)
        if ((r == NULL || v->r == r) && (floor == UINT64_MAX || v->off < floor)) {
            PyErr_Format(PyExc_BufferError,
                         "cannot %s: a view of the bytes at %llu is still in use "
                         "(release it first)",
                         what, (unsigned long long)v->off);
            return true;
        }
    return false;
}

static PyObject *empty_view(void)
{
    PyObject *empty = PyBytes_FromStringAndSize(NULL, 0);
    PyObject *m = empty != NULL ? PyMemoryView_FromObject(empty) : NULL;
    Py_XDECREF(empty);
    return m;
}

/* A view of the k bytes at p, lent by self through v. */
static PyObject *lend(PyObject *self, struct via v, const void *p, size_t k,
                      uint64_t off)
{
    ViewObject *o = PyObject_New(ViewObject, &sb__py_view_type);
    if (o == NULL)
        return NULL;
    o->owner = Py_NewRef(self);
    o->c = v.c;
    o->r = v.r != NULL ? (ReaderObject *)self : NULL;
    o->ptr = p;
    o->len = (Py_ssize_t)k;
    o->off = off;
    SB__PY_PUSH(&v.c->views, o);
    PyObject *m = PyMemoryView_FromObject((PyObject *)o);
    Py_DECREF(o); /* the memoryview holds it now, or it is gone */
    return m;
}

static PyObject *view_of(PyObject *self, struct via v, PyObject *offo, PyObject *sizeo)
{
    uint64_t off, n, m;
    if (v.r == NULL && v.c->release) {
        PyErr_SetString(PyExc_ValueError,
                        "a buffer with release=True lends views through a Reader "
                        "(buffer.reader().view(...)), which keeps their bytes");
        return NULL;
    }
    if (sb__py_range(v, offo, sizeo, &off, &n) < 0
        || sb__py_settle(v, off, n, false, &m) < 0)
        return NULL;
    if (m == 0)
        return empty_view();
    const void *p = NULL;
    size_t want = m > PY_SSIZE_T_MAX ? (size_t)PY_SSIZE_T_MAX : (size_t)m;
    ssize_t k = v.r != NULL ? sb_reader_view(v.r, off, want, &p)
                            : sb_view(v.c->b, off, want, &p);
    if (k < 0)
        return sb__py_os_error(errno);
    if (k == 0)
        return empty_view();
    return lend(self, v, p, (size_t)k, off);
}

PyObject *sb__py_view(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                      PyObject *kwnames)
{
    return sb__py_offset_size_call("view", self, args, nargs, kwnames, view_of);
}

const char sb__py_view_doc[] = PyDoc_STR(
"view($self, /, offset, size=-1)\n--\n\n"
"A memoryview of the bytes at offset in place, read-only, without a copy:\n"
"waits as read does, then lends at most size bytes (a negative size: to\n"
"the end), fewer where they cross from memory to the spill file or from\n"
"one 8 MiB window of it to the next (ask again at offset + len(view));\n"
"empty past the end.\n"
"The bytes stay valid while the view lives: until then close() of what\n"
"lent it raises BufferError, and so does a Reader's release past the\n"
"view's first byte on a buffer with release=True (whose views come from\n"
"a Reader).  Let go of a view with its release() or a with block.");
