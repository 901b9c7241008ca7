/* SPDX-License-Identifier: MIT */
/*
 * reader.c - the Reader type: a registered cursor with a floor.
 */
#include "common.h"

/* A Reader on self with floor flo (None: the buffer's floor) and the
   library's reader flags. */
PyObject *sb__py_reader_new(BufferObject *self, PyObject *flo, unsigned flags)
{
    struct core *c = sb__py_enter(self);
    if (c == NULL)
        return NULL;
    uint64_t floor = 0;
    ReaderObject *r = NULL;
    if (flo == Py_None)
        floor = sb_floor(c->b);
    else if (sb__py_u63(flo, "floor", &floor) < 0)
        goto out;
    r = PyObject_GC_New(ReaderObject, &sb__py_reader_type);
    if (r == NULL)
        goto out;
    r->buf = (BufferObject *)Py_NewRef(self);
    r->floor = floor;
    r->busy = false;
    r->nb = (flags & SB_NONBLOCK) != 0;
    r->weakrefs = NULL;
    r->prev = r->next = NULL; /* on no list until it opens */
    r->r = sb_reader_open_flags(c->b, floor, flags);
    if (r->r == NULL) {
        int err = errno;
        PyObject_GC_Track(r);
        Py_CLEAR(r);
        sb__py_os_error(err);
        goto out;
    }
    /* Borrowed: sb_poll_ready hands it back only while r->r is open, and
       the Reader closes r->r before it goes. */
    sb_reader_set_tag(r->r, r);
    SB__PY_PUSH(&c->readers, r);
    PyObject_GC_Track(r);
out:
    sb__py_leave(self, c);
    return (PyObject *)r;
}


static PyObject *Reader_release(ReaderObject *self, PyObject *arg)
{
    uint64_t floor;
    if (sb__py_u63(arg, "floor", &floor) < 0)
        return NULL;
    struct core *c = sb__py_reader_enter(self);
    if (c == NULL)
        return NULL;
    PyObject *res = NULL;
    if (floor < self->floor)
        PyErr_Format(PyExc_ValueError, "a reader's floor only rises (it is %llu)",
                     (unsigned long long)self->floor);
    else if (self->buf->release
             && sb__py_views_below(c, self, floor, "release past a view"))
        floor = self->floor;
    else if (sb_reader_release(self->r, floor) < 0)
        sb__py_os_error(errno);
    else
        res = Py_NewRef(Py_None);
    /* The floor rises even when giving back the space failed. */
    if (floor > self->floor)
        self->floor = floor;
    sb__py_reader_leave(self, c);
    return res;
}

/*
 * _arm(offset, size): on a non-blocking Reader, whether [offset, offset +
 * size) can be answered now (True: read it, it will not wait) or the
 * Reader is armed for it (False: its buffer's poll fd will say when).
 * size None or negative is to the end of the stream.  The probe is a
 * one-byte read at the range's last byte: it arms for exactly the range's
 * need and demand, as the blocking read's wait does.
 *
 * A buffer with parts holds extents, not a prefix: the probe is then the
 * read of the whole range (one byte at its end would open a part there),
 * and what it read is returned (bytes) for aread to hand over.
 */
static PyObject *arm_ranged(ReaderObject *self, uint64_t off, uint64_t n)
{
    if (n > PY_SSIZE_T_MAX)
        return PyErr_NoMemory();
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)n);
    if (out == NULL)
        return NULL;
    struct core *c = sb__py_reader_enter(self);
    if (c == NULL) {
        Py_DECREF(out);
        return NULL;
    }
    ssize_t got;
    int err;
    Py_BEGIN_ALLOW_THREADS /* it never waits, but may copy megabytes */
    got = sb_reader_pread(self->r, PyBytes_AS_STRING(out), (size_t)n, off);
    err = errno;
    Py_END_ALLOW_THREADS
    sb__py_reader_leave(self, c);
    if (got < 0) {
        Py_DECREF(out);
        /* Armed; or an error, which the blocking read raises. */
        return PyBool_FromLong(err != EAGAIN);
    }
    if ((uint64_t)got < n && _PyBytes_Resize(&out, got) < 0)
        return NULL;
    return out;
}

static PyObject *Reader_arm(ReaderObject *self, PyObject *const *args,
                            Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *a[2];
    if (sb__py_parse_args("_arm", args, nargs, kwnames, sb__py_read_names, 2, 1, a) < 0)
        return NULL;
    uint64_t off, n = 0;
    bool to_end;
    if (sb__py_u63(a[0], "offset", &off) < 0 || sb__py_read_size(a[1], &n, &to_end) < 0)
        return NULL;
    if (!self->nb) {
        PyErr_SetString(PyExc_ValueError, "not a non-blocking Reader");
        return NULL;
    }
    if (n == 0 && !to_end)
        Py_RETURN_TRUE;
    struct core *c = self->buf->core;
    sb_stats st;
    if (c != NULL && !c->closed && c->ranged) {
        if (!to_end)
            return arm_ranged(self, off, n);
        if (sb_get_stats(c->b, &st) == 0 && st.length != 0)
            return arm_ranged(self, off, st.length > off ? st.length - off : 0);
    }
    c = sb__py_reader_enter(self);
    if (c == NULL)
        return NULL;
    /* Past any stream there can be: answered only by the end. */
    uint64_t last = to_end ? (uint64_t)1 << 62 : off + n - 1;
    unsigned char byte;
    ssize_t got = sb_reader_pread(self->r, &byte, 1, last);
    int err = errno;
    sb__py_reader_leave(self, c);
    return PyBool_FromLong(!(got < 0 && err == EAGAIN));
}

static int reader_close_checked(ReaderObject *self)
{
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "a Reader is for one thread at a time");
        return -1;
    }
    struct core *c = self->buf->core;
    if (self->r != NULL && c != NULL && sb__py_views_below(c, self, UINT64_MAX, "close the Reader"))
        return -1;
    sb__py_reader_close(self);
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
    if (self->r == NULL)
        return sb__py_reader_closed_error();
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
    sb__py_reader_close(self);
    Py_CLEAR(self->buf);
    PyObject_GC_Del(self);
}


static PyMethodDef Reader_methods[] = {
    SB__PY_READ_METHODS,
    { "release", (PyCFunction)Reader_release, METH_O,
      "release($self, floor, /)\n--\n\n"
      "Raise the reader's floor: it will read only [floor, ...)." },
    { "close", (PyCFunction)Reader_close, METH_NOARGS,
      "close($self, /)\n--\n\nUnregister the reader." },
    { "_arm", (PyCFunction)(void (*)(void))Reader_arm, METH_FASTCALL | METH_KEYWORDS, NULL },
    { "__enter__", (PyCFunction)Reader_enter, METH_NOARGS, "__enter__($self, /)\n--\n\n" },
    { "__exit__", (PyCFunction)Reader_exit, METH_VARARGS,
      "__exit__($self, /, *exc_info)\n--\n\nclose()" },
    { NULL, NULL, 0, NULL },
};

static PyGetSetDef Reader_getset[] = {
    { "floor", (getter)Reader_get_floor, NULL, "the lowest offset it may read", NULL },
    { "closed", (getter)Reader_get_closed, NULL, "True after close()", NULL },
    { "buffer", (getter)Reader_get_buffer, NULL, "the StreamBuffer it reads", NULL },
    { NULL, NULL, NULL, NULL, NULL },
};

PyTypeObject sb__py_reader_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "streambuffer.Reader",
    .tp_basicsize = sizeof(ReaderObject),
    .tp_dealloc = (destructor)Reader_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "A reader with a floor, from StreamBuffer.reader(): one thread at a time.\n\n"
              "Reads below its floor raise OSError(ESPIPE); with release=True the\n"
              "buffer gives back the bytes below every reader's floor.",
    .tp_traverse = (traverseproc)Reader_traverse,
    .tp_weaklistoffset = offsetof(ReaderObject, weakrefs),
    .tp_methods = Reader_methods,
    .tp_getset = Reader_getset,
};

