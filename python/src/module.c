/* SPDX-License-Identifier: MIT */
/*
 * module.c - the module: its types, its constants and the exit hook.
 */
#include "common.h"

/* The exit hook, registered with atexit, which runs before the interpreter
   starts to finalize (see sb__py_stop_all). */
static PyObject *at_exit(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    sb__py_stop_all();
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    { "_at_exit", at_exit, METH_NOARGS, "Stop every producer (registered with atexit)." },
    { NULL, NULL, 0, NULL },
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT,
    .m_name = "streambuffer._streambuffer",
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

PyMODINIT_FUNC PyInit__streambuffer(void);

PyMODINIT_FUNC PyInit__streambuffer(void)
{
    if (PyType_Ready(&sb__py_buffer_type) < 0 || PyType_Ready(&sb__py_reader_type) < 0
        || PyType_Ready(&sb__py_view_type) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "StreamBuffer", (PyObject *)&sb__py_buffer_type) < 0
        || PyModule_AddObjectRef(m, "Reader", (PyObject *)&sb__py_reader_type) < 0
        || PyModule_AddStringConstant(m, "__version__", SB_VERSION) < 0
        || PyModule_AddStringConstant(m, "library_version", sb_version()) < 0
        || PyModule_AddIntConstant(m, "DEFAULT_MAX_SIZE", (long)DEFAULT_MAX_SIZE) < 0
        || register_at_exit(m) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
