/* SPDX-License-Identifier: MIT */
/*
 * http.c - StreamBuffer.from_url: the buffer over libstreambuffer_http
 * (sb_open_url), with the caller's request headers on every curl handle.
 *
 * Built with SB_PY_HTTP where libcurl's development files were found;
 * without it, from_url raises OSError(ENOSYS) and says why.
 */
#include "common.h"

#ifdef SB_PY_HTTP
#include <streambuffer_http.h>
#include <curl/curl.h>

/* Runs on the library's threads, without the GIL: C only. */
static void setup(void *curl, void *arg)
{
    (void)curl_easy_setopt((CURL *)curl, CURLOPT_HTTPHEADER, (struct curl_slist *)arg);
}

/* One "Name: value" line; a name or value with a CR, LF or NUL would
   smuggle another header in, and is refused. */
static int add_line(struct curl_slist **list, PyObject *line)
{
    Py_ssize_t n;
    const char *s = PyUnicode_Check(line) ? PyUnicode_AsUTF8AndSize(line, &n) : NULL;
    if (s == NULL) {
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_TypeError, "a header must be a str, not %.100s",
                         Py_TYPE(line)->tp_name);
        return -1;
    }
    if ((size_t)n != strlen(s) || strpbrk(s, "\r\n") != NULL || strchr(s, ':') == NULL) {
        PyErr_Format(PyExc_ValueError, "not a header line: %R", line);
        return -1;
    }
    struct curl_slist *l = curl_slist_append(*list, s);
    if (l == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    *list = l;
    return 0;
}

/* headers: None, a mapping of names to values, or "Name: value" strings. */
static int header_list(PyObject *headers, struct curl_slist **out)
{
    *out = NULL;
    if (headers == NULL || headers == Py_None)
        return 0;
    if (PyUnicode_Check(headers) || PyBytes_Check(headers)) {
        PyErr_SetString(PyExc_TypeError,
                        "headers must be a mapping or an iterable of \"Name: value\" strings");
        return -1;
    }
    PyObject *items = PyMapping_Check(headers) && PyObject_HasAttrString(headers, "items")
                          ? PyMapping_Items(headers) : NULL;
    if (items == NULL && PyErr_Occurred())
        return -1;
    PyObject *it = PyObject_GetIter(items != NULL ? items : headers);
    Py_XDECREF(items);
    if (it == NULL)
        return -1;
    PyObject *x;
    int rc = 0;
    while (rc == 0 && (x = PyIter_Next(it)) != NULL) {
        PyObject *line = x;
        if (items != NULL) { /* (name, value) */
            PyObject *k, *v;
            if (!PyArg_ParseTuple(x, "UU", &k, &v))
                line = NULL;
            else if (PyUnicode_FindChar(k, ':', 0, PyUnicode_GET_LENGTH(k), 1) != -1) {
                PyErr_Format(PyExc_ValueError, "not a header name: %R", k);
                line = NULL;
            } else
                line = PyUnicode_FromFormat("%U: %U", k, v);
        } else {
            Py_INCREF(line);
        }
        rc = line != NULL ? add_line(out, line) : -1;
        Py_XDECREF(line);
        Py_DECREF(x);
    }
    Py_DECREF(it);
    if (rc == 0 && PyErr_Occurred())
        rc = -1;
    if (rc < 0) {
        curl_slist_free_all(*out);
        *out = NULL;
    }
    return rc;
}

sb_buffer *sb__py_open_url(struct core *c, PyObject *url, PyObject *headers,
                           const sb_options *o)
{
    const char *u = PyUnicode_Check(url) ? PyUnicode_AsUTF8(url) : NULL;
    if (u == NULL) {
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_TypeError, "url must be a str, not %.100s",
                         Py_TYPE(url)->tp_name);
        return NULL;
    }
    struct curl_slist *list;
    if (header_list(headers, &list) < 0)
        return NULL;
    sb_http_options h;
    memset(&h, 0, sizeof h);
    if (list != NULL) {
        h.setup = setup;
        h.setup_arg = list;
    }
    sb_buffer *b;
    int err;
    Py_BEGIN_ALLOW_THREADS
    b = sb_open_url(u, o, &h);
    err = errno;
    Py_END_ALLOW_THREADS
    if (b == NULL) {
        curl_slist_free_all(list);
        errno = err;
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, url);
        return NULL;
    }
    c->http = list;
    return b;
}

void sb__py_http_free(struct core *c)
{
    curl_slist_free_all(c->http);
    c->http = NULL;
}

#else /* !SB_PY_HTTP */

sb_buffer *sb__py_open_url(struct core *c, PyObject *url, PyObject *headers,
                           const sb_options *o)
{
    (void)c;
    (void)headers;
    (void)o;
    PyObject *e = Py_BuildValue("(isO)", ENOSYS,
                                "streambuffer was built without libcurl "
                                "(libcurl4-openssl-dev): no from_url", url);
    if (e != NULL) {
        PyErr_SetObject(PyExc_OSError, e);
        Py_DECREF(e);
    }
    return NULL;
}

void sb__py_http_free(struct core *c)
{
    (void)c;
}

#endif
