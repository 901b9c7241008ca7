/* SPDX-License-Identifier: MIT */
/*
 * errors.c - exceptions and argument parsing, for every file of the module.
 */
#include "common.h"

int sb__py_finalizing(void)
{
#if PY_VERSION_HEX >= 0x030D0000
    return Py_IsFinalizing();
#else
    return _Py_IsFinalizing();
#endif
}

/* The exception being raised, normalized, with its traceback; cleared. */
PyObject *sb__py_take_exception(void)
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
void sb__py_raise_again(PyObject *exc)
{
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(Py_NewRef(exc));
#else
    PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(exc)), Py_NewRef(exc),
                  PyException_GetTraceback(exc));
#endif
}

PyObject *sb__py_os_error(int err)
{
    errno = err;
    return PyErr_SetFromErrno(PyExc_OSError);
}

PyObject *sb__py_closed_error(void)
{
    PyErr_SetString(PyExc_ValueError, "I/O operation on a closed StreamBuffer");
    return NULL;
}

PyObject *sb__py_reader_closed_error(void)
{
    PyErr_SetString(PyExc_ValueError, "I/O operation on a closed Reader");
    return NULL;
}

/* A non-negative integer that fits 63 bits: offsets and option values. */
int sb__py_u63(PyObject *o, const char *what, uint64_t *out)
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

/* An option: None or 0 sb__py_leave the library's default. */
int sb__py_opt_u63(PyObject *o, const char *what, uint64_t *out)
{
    *out = 0;
    return o == NULL || o == Py_None ? 0 : sb__py_u63(o, what, out);
}

/*
 * Arguments by position or by name, as the seed's callers pass them
 * (read(START, size=KB)).  Those not given stay NULL.
 */
int sb__py_parse_args(const char *fn, PyObject *const *args, Py_ssize_t nargs,
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
