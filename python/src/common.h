/* SPDX-License-Identifier: MIT */
/*
 * common.h - what the files of the CPython module share: the state of a
 * buffer (struct core), the objects, and the calls between files.
 *
 * The files, from the top down; each calls only those below it:
 *   module.c  PyInit__streambuffer (streambuffer._streambuffer, the private
 *             module under the package), the types readied, the exit hook
 *   buffer.c  the StreamBuffer type: options, the source's kind, close
 *   reader.c  the Reader type
 *   view.c    memoryviews of the bytes in place, and who holds them
 *   read.c    waits (with signals), copies, and the methods both types
 *             share, through one table (SB__PY_READ_METHODS)
 *   core.c    a call's way in and out of a buffer or a Reader, and freeing
 *             a core (by a detached reaper when the producer is in Python)
 *   source.c  the state shared with the producer thread: the source
 *             callbacks, the live list, the exit flag
 *   errors.c  exceptions and argument parsing
 *
 * The library does the work; these files only move Python objects in and
 * out of it.  Their rules:
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
#ifndef SB_PY_COMMON_H
#define SB_PY_COMMON_H

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

/*
 * The module's three lists (live cores, a core's Readers, a core's views)
 * are doubly linked through the nodes' prev and next fields, headed by a
 * pointer to the first node: push on the front, unlink from anywhere (a
 * node that is on no list is left alone).
 */
#define SB__PY_PUSH(head, n)                                                  \
    do {                                                                      \
        (n)->prev = NULL;                                                     \
        (n)->next = *(head);                                                  \
        if (*(head) != NULL)                                                  \
            (*(head))->prev = (n);                                            \
        *(head) = (n);                                                        \
    } while (0)
#define SB__PY_UNLINK(head, n)                                                \
    do {                                                                      \
        if ((n)->prev != NULL)                                                \
            (n)->prev->next = (n)->next;                                      \
        else if (*(head) == (n))                                              \
            *(head) = (n)->next;                                              \
        if ((n)->next != NULL)                                                \
            (n)->next->prev = (n)->prev;                                      \
        (n)->prev = (n)->next = NULL;                                         \
    } while (0)

/* Internal names are sb__py_*; with -fvisibility=hidden none leaves the
   module, which exports PyInit__streambuffer only. */

/* ---- errors.c ---- */
int sb__py_finalizing(void);
PyObject *sb__py_take_exception(void);
void sb__py_raise_again(PyObject *exc);
PyObject *sb__py_os_error(int err);
PyObject *sb__py_closed_error(void);
PyObject *sb__py_reader_closed_error(void);
int sb__py_u63(PyObject *o, const char *what, uint64_t *out);
int sb__py_opt_u63(PyObject *o, const char *what, uint64_t *out);
int sb__py_parse_args(const char *fn, PyObject *const *args, Py_ssize_t nargs,
                      PyObject *kwnames, const char *const *names,
                      Py_ssize_t nnames, Py_ssize_t required, PyObject **out);

/* ---- the state shared with the producer thread ---- */

enum kind {
    KIND_MEM,      /* bytes: sb_open_mem, no thread */
    KIND_ITER,     /* an iterator of bytes-like chunks: the next callback */
    KIND_READINTO, /* a binary file: readinto1 or readinto into the spool */
    KIND_READ,     /* a file with read1 or read only: its bytes copied in */
};

typedef struct ReaderObject ReaderObject;
typedef struct ViewObject ViewObject;

/* One stream's Python side, with the GIL: the source's own stream
   (core.in) or a part's (parts.c). */
struct feed {
    enum kind kind;  /* KIND_ITER, KIND_READINTO or KIND_READ */
    PyObject *src;   /* the iterator, or the bound read method */
    PyObject *chunk; /* the last chunk, which the library may still copy */
    Py_buffer view;  /* on chunk, when has_view */
    bool has_view;
    bool in_call;    /* inside a Python call of the source */
};

struct core {
    sb_buffer *b;
    enum kind kind;
    size_t mem_limit; /* reads past it go to the spill file */
    bool release;     /* SB_RELEASE */
    bool mmap_reads;  /* small reads of spilled bytes copy from a view */
    bool ranged;      /* parts (open_at, from_url): extents, not a prefix */

    /* The source (with the GIL). */
    struct feed in;  /* the stream given to the constructor */
    PyObject *mem;   /* KIND_MEM: the bytes the library reads in place */
    PyObject *exc;   /* the exception that failed the stream */
    int exc_errno;   /* what the library was told about it */

    /* Ranged: open_at(offset, end), called on the fetcher threads with
       the GIL (parts.c); the length they report (size), if any. */
    PyObject *open_at;
    uint64_t length;
    bool has_length;
    /* Fetcher threads inside a part's callback (taking the GIL or in
       Python): close() cannot wait for them, as for in.in_call. */
    atomic_uint part_calls;
    /* from_url: the request headers, which every curl handle is given
       until sb_close (http.c); NULL otherwise. */
    void *http;

    /* The producer's thread state, from its first callback to its last;
       written by the producer with the GIL held. */
    PyThreadState *tstate;
    PyGILState_STATE gstate;

    bool closed;    /* close() has begun: the producer drops its state */
    unsigned users; /* Python calls using b now */
    ReaderObject *readers;
    ViewObject *views; /* lent in place by view() (view.c) */
    struct core *prev, *next; /* the live list, for the exit hook */

    atomic_bool stop; /* callbacks return at once, without the GIL */
};


/* ---- the objects ---- */
typedef struct {
    PyObject_HEAD
    struct core *core; /* NULL before __init__ and after close */
    PyObject *stream;  /* as given: the seed's attribute */
    PyObject *size;    /* as given: None or the length hint */
    Py_ssize_t max_size;
    uint64_t limit, chunk_size, read_ahead, max_retained, seek_gap;
    unsigned max_parts, retries;
    bool release, mmap_reads;
    PyObject *weakrefs;
} BufferObject;

struct ReaderObject {
    PyObject_HEAD
    BufferObject *buf;
    sb_reader *r; /* NULL once closed */
    uint64_t floor;
    bool busy;
    bool nb; /* SB_NONBLOCK: aread's probe (see streambuffer/_aio.py) */
    ReaderObject *prev, *next; /* in the core's list */
    PyObject *weakrefs;
};


/* ---- http.c ---- */
/* sb_open_url with the headers (None, a mapping, or "Name: value"
   strings), the GIL released while it waits for the response: the buffer,
   or NULL with an exception (OSError with url as its filename). */
sb_buffer *sb__py_open_url(struct core *c, PyObject *url, PyObject *headers,
                           const sb_options *o);
/* After sb_close: what sb__py_open_url kept for curl.  No Python. */
void sb__py_http_free(struct core *c);

/* ---- parts.c ---- */
/* The sb_source.open_at of a buffer with open_at: parts on the fetcher
   threads, each taking the GIL for its calls. */
int sb__py_part_open(void *ctx, uint64_t off, uint64_t end, sb_source *part,
                     uint64_t *length);

/* ---- source.c ---- */
void sb__py_link_live(struct core *c);
void sb__py_unlink_live(struct core *c);
bool sb__py_on_producer(const struct core *c);
void sb__py_drop_chunk(struct core *c);
/* What a feed's source is: a file's readinto1/readinto/read1/read, else
   an iterator over it (a bytes-like object is one chunk when one_chunk).
   0, or -1 with TypeError. */
int sb__py_feed_take(struct feed *f, PyObject *stream, bool one_chunk);
void sb__py_feed_drop(struct feed *f);
/* The next chunk into f (1), the end (0), or a negative errno; the GIL
   held.  The library's errno for a Python exception is kept on c. */
int sb__py_feed_next(struct core *c, struct feed *f, const atomic_bool *stop);
/* Up to cap bytes: readinto fills buf, read leaves them in f->view for the
   caller to copy once the GIL is gone.  The GIL held. */
ssize_t sb__py_feed_read(struct core *c, struct feed *f, const atomic_bool *stop,
                         void *buf, size_t cap);
/* Keep the exception being raised on c as the stream's; returns the
   library's negative errno for it (ESPIPE and ESTALE kept when ranged). */
int sb__py_feed_failed(struct core *c, struct feed *f, bool ranged);
/* Take the GIL on a fetcher thread, counted in c->part_calls; false
   (without it) once stop is set, close() began or the interpreter is
   going.  stop NULL: only the interpreter matters (a part's close). */
bool sb__py_part_enter(struct core *c, const atomic_bool *stop, PyGILState_STATE *g);
void sb__py_part_leave(struct core *c, PyGILState_STATE g);
/* Whether the exit hook has run: no producer takes the GIL any more. */
bool sb__py_exiting(void);
/* The exit hook's work: stop every live stream (see module.c). */
void sb__py_stop_all(void);
int sb__py_src_next(void *ctx, const void **chunk, size_t *len);
ssize_t sb__py_src_read(void *ctx, void *buf, size_t cap);
void sb__py_src_cancel(void *ctx);

/* ---- core.c ---- */
/* Start a Python call that uses the buffer: the core, or NULL with
   ValueError once the buffer is closed.  sb__py_leave ends it; the last
   call out of a buffer closed meanwhile frees it. */
struct core *sb__py_enter(BufferObject *self);
void sb__py_leave(BufferObject *self, struct core *c);
/* The same for a Reader, which is for one thread at a time. */
struct core *sb__py_reader_enter(ReaderObject *self);
void sb__py_reader_leave(ReaderObject *self, struct core *c);
void sb__py_reader_close(ReaderObject *self);
/* Stop the stream and free everything.  The GIL is held and no Python call
   is using the buffer (users == 0); close() has set c->closed. */
void sb__py_teardown(struct core *c);

/* ---- read.c ---- */
/* Where a read goes: plain, or through a reader. */
struct via {
    struct core *c;
    sb_reader *r;
};

/* Begin and end a call of a method both types share: self is a
   StreamBuffer (v->r NULL) or a Reader.  -1 with an exception. */
int sb__py_begin(PyObject *self, struct via *v);
void sb__py_end(PyObject *self, struct via v);
int sb__py_settle(struct via v, uint64_t off, uint64_t n, bool some, uint64_t *count);
PyObject *sb__py_read_bytes(struct via v, uint64_t off, uint64_t n);
int sb__py_wait_end(struct core *c, uint64_t *length);
int sb__py_read_size(PyObject *o, uint64_t *n, bool *to_end);
/* offset and size (None or negative: to the end, which it waits for) as
   a range.  0, or -1 with an exception. */
int sb__py_range(struct via v, PyObject *offo, PyObject *sizeo, uint64_t *off,
                 uint64_t *n);
extern const char *const sb__py_read_names[2];
/* fn(offset, size=-1) on self, a StreamBuffer or a Reader: the arguments
   parsed, then impl between sb__py_begin and sb__py_end. */
PyObject *sb__py_offset_size_call(const char *fn, PyObject *self, PyObject *const *args,
                                  Py_ssize_t nargs, PyObject *kwnames,
                                  PyObject *(*impl)(PyObject *self, struct via v,
                                                    PyObject *offo, PyObject *sizeo));
PyObject *sb__py_read(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                      PyObject *kwnames);
PyObject *sb__py_readinto(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                          PyObject *kwnames);
PyObject *sb__py_readinto1(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                           PyObject *kwnames);
PyObject *sb__py_aread(PyObject *self, PyObject *args, PyObject *kw);
PyObject *sb__py_call_py(const char *module, const char *fn, PyObject *self,
                         PyObject *args, PyObject *kw);
extern const char sb__py_read_doc[], sb__py_readinto_doc[],
    sb__py_readinto1_doc[], sb__py_aread_doc[];

/* ---- view.c ---- */
extern PyTypeObject sb__py_view_type;
PyObject *sb__py_view(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                      PyObject *kwnames);
extern const char sb__py_view_doc[];
/* Whether a view lent through c (r NULL: through the buffer or any of its
   Readers) or through r alone holds bytes below floor (UINT64_MAX: any
   view at all).  When one does, BufferError is set naming what. */
bool sb__py_views_below(struct core *c, ReaderObject *r, uint64_t floor,
                        const char *what);

/* The methods of both types, in one table: a fix to one is a fix to both. */
#define SB__PY_FASTCALL(f) ((PyCFunction)(void (*)(void))(f))
#define SB__PY_READ_METHODS                                                        \
    { "read", SB__PY_FASTCALL(sb__py_read), METH_FASTCALL | METH_KEYWORDS,         \
      sb__py_read_doc },                                                            \
    { "readinto", SB__PY_FASTCALL(sb__py_readinto), METH_FASTCALL | METH_KEYWORDS, \
      sb__py_readinto_doc },                                                        \
    { "readinto1", SB__PY_FASTCALL(sb__py_readinto1),                              \
      METH_FASTCALL | METH_KEYWORDS, sb__py_readinto1_doc },                        \
    { "view", SB__PY_FASTCALL(sb__py_view), METH_FASTCALL | METH_KEYWORDS,         \
      sb__py_view_doc },                                                            \
    { "aread", SB__PY_FASTCALL(sb__py_aread), METH_VARARGS | METH_KEYWORDS,        \
      sb__py_aread_doc }

/* ---- reader.c, buffer.c ---- */
extern PyTypeObject sb__py_reader_type;
/* A Reader on self with floor flo (None: the buffer's floor) and the
   library's reader flags. */
PyObject *sb__py_reader_new(BufferObject *self, PyObject *flo, unsigned flags);
extern PyTypeObject sb__py_buffer_type;

#endif
