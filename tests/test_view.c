/* SPDX-License-Identifier: MIT */
/*
 * test_view.c - zero-copy: views across every boundary (memory/file, one
 * spill window to the next, the end), views that wait for their bytes,
 * many threads viewing, views pinned by a reader while others release,
 * SB_MMAP_READS against pread, a window that cannot be mapped, and
 * sb_sendfile into a socket, a pipe and a file, into every kind of out_fd
 * (O_APPEND files and tmpfs too), with a slow consumer and a peer that
 * goes away (EPIPE, and no death by SIGPIPE).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fault.h"
#include "stream.h"

#define KB ((uint64_t)1024)
#define MB (KB * KB)
#define WINDOW (8 * MB) /* the spill windows of src/spool.h */

/* A finished stream of len pattern bytes, mem_limit in memory. */
static sb_buffer *filled(uint64_t len, size_t mem_limit, uint32_t flags)
{
    count_src *s = fx_count(len, 0);
    sb_options o = {.mem_limit = mem_limit, .tmp_dir = fx_scratch(),
                    .flags = flags};
    sb_buffer *b = open_count(s, &o);
    if (b == NULL || sb_wait_end(b, NULL) != 0)
        fail_msg("could not fill a stream: %d", errno);
    return b;
}

/* ---- boundaries ---------------------------------------------------------------------- */

static void test_view_boundaries(void **state)
{
    (void)state;
    const size_t mem = 10000;
    const uint64_t len = mem + 2 * WINDOW + 12345;
    sb_buffer *b = filled(len, mem, 0);
    const void *p = NULL;

    /* Memory, up to the boundary with the file. */
    assert_int_equal(sb_view(b, 0, 20000, &p), mem);
    assert_int_equal(pat_mismatches(p, mem, 0), 0);
    assert_int_equal(sb_view(b, mem - 7, 100, &p), 7);
    assert_int_equal(pat_mismatches(p, 7, mem - 7), 0);
    /* The first window, whole, and its end. */
    assert_int_equal(sb_view(b, mem, 9 * MB, &p), WINDOW);
    assert_int_equal(pat_mismatches(p, WINDOW, mem), 0);
    assert_int_equal(sb_view(b, mem + WINDOW - 5, 10, &p), 5);
    assert_int_equal(pat_mismatches(p, 5, mem + WINDOW - 5), 0);
    assert_int_equal(sb_view(b, mem + WINDOW, 10, &p), 10);
    assert_int_equal(pat_mismatches(p, 10, mem + WINDOW), 0);
    /* The end of the stream: short, then 0 (ptr untouched). */
    assert_int_equal(sb_view(b, len - 3, 10, &p), 3);
    assert_int_equal(pat_mismatches(p, 3, len - 3), 0);
    const void *q = &q;
    assert_int_equal(sb_view(b, len, 10, &q), 0);
    assert_ptr_equal(q, &q);
    assert_int_equal(sb_view(b, len + 100, 1, &q), 0);
    assert_int_equal(sb_view(b, 5, 0, &q), 0);

    /* The whole stream, view after view. */
    uint64_t off = 0, bad = 0, views = 0;
    while (off < len) {
        ssize_t k = sb_view(b, off, 3 * MB, &p);
        assert_true(k > 0);
        bad += pat_mismatches(p, (size_t)k, off);
        off += (uint64_t)k;
        views++;
    }
    assert_int_equal(off, len);
    assert_int_equal(bad, 0);
    assert_true(views >= 4);

    /* A view never moves: the same bytes at the same address later. */
    const void *a = NULL, *c = NULL;
    assert_int_equal(sb_view(b, mem + 100, 10, &a), 10);
    assert_int_equal(sb_view(b, mem + 100, 10, &c), 10);
    assert_ptr_equal(a, c);
}

static void test_view_bad_arguments(void **state)
{
    (void)state;
    sb_buffer *b = fx_buffer(sb_open_mem("abcdef", 6, NULL));
    assert_non_null(b);
    const void *p;
    assert_fails_with(sb_view(NULL, 0, 1, &p), EINVAL);
    assert_fails_with(sb_view(b, 0, 1, NULL), EINVAL);
    assert_fails_with(sb_view(b, UINT64_MAX, 2, &p), EINVAL);
    assert_fails_with(sb_view(b, 0, (size_t)SSIZE_MAX + 1, &p), EINVAL);
    assert_fails_with(sb_reader_view(NULL, 0, 1, &p), EINVAL);
    assert_fails_with(sb_sendfile(NULL, 1, 0, 1), EINVAL);
    assert_fails_with(sb_sendfile(b, -1, 0, 1), EINVAL);
    assert_fails_with(sb_reader_sendfile(NULL, 1, 0, 1), EINVAL);
    /* A borrowed buffer's view is the caller's own memory. */
    assert_int_equal(sb_view(b, 2, 10, &p), 4);
    assert_memory_equal(p, "cdef", 4);
}

/* ---- views that wait ---------------------------------------------------------------------- */

typedef struct view_call {
    sb_buffer *b;
    uint64_t off;
    size_t n;
    ssize_t ret;
    int err;
    size_t bad;
} view_call;

static void do_view(void *arg)
{
    view_call *v = arg;
    const void *p = NULL;
    errno = 0;
    v->ret = sb_view(v->b, v->off, v->n, &p);
    v->err = errno;
    if (v->ret > 0)
        v->bad = gen_mismatches(p, (size_t)v->ret, v->off);
}

static void test_view_waits_like_pread(void **state)
{
    (void)state;
    gate_src *g = fx_gate();
    sb_options o = {.mem_limit = 4096, .tmp_dir = fx_scratch()};
    sb_buffer *b = fx_buffer(open_gate(g, &o));
    assert_non_null(b);
    gate_allow(g, 1000);
    assert_true(gate_wait_blocked(g, WAIT_LONG_MS));
    view_call *v[2];
    bg_call *bg[2];
    static const uint64_t offs[2] = {900, 6000};
    for (int i = 0; i < 2; i++) {
        v[i] = fx_calloc(sizeof *v[i]);
        *v[i] = (view_call){.b = b, .off = offs[i], .n = 200};
        bg[i] = fx_bg(do_view, v[i]);
        assert_non_null(bg[i]);
    }
    assert_true(wait_for_waiters(b, 2, WAIT_LONG_MS));
    assert_false(bg_wait(bg[0], 0));
    /* The first range only: one view returns, the other still waits. */
    gate_allow(g, 1100);
    assert_true(bg_wait(bg[0], WAIT_LONG_MS));
    assert_true(wait_for_waiters(b, 1, WAIT_LONG_MS));
    assert_false(bg_wait(bg[1], 0));
    assert_int_equal(v[0]->ret, 200);
    assert_int_equal(v[0]->bad, 0);
    /* The end inside the second range: short; a cancel would be ECANCELED. */
    gate_allow(g, 6050);
    gate_end(g);
    assert_true(bg_wait(bg[1], WAIT_LONG_MS));
    assert_int_equal(v[1]->ret, 50);
    assert_int_equal(v[1]->bad, 0);

    gate_src *g2 = fx_gate();
    sb_buffer *b2 = fx_buffer(open_gate(g2, &o));
    assert_non_null(b2);
    view_call *c = fx_calloc(sizeof *c);
    *c = (view_call){.b = b2, .off = 0, .n = 10};
    bg_call *cb = fx_bg(do_view, c);
    assert_non_null(cb);
    assert_true(wait_for_waiters(b2, 1, WAIT_LONG_MS));
    sb_cancel(b2);
    assert_true(bg_wait(cb, WAIT_LONG_MS));
    assert_int_equal(c->ret, -1);
    assert_int_equal(c->err, ECANCELED);
}

/* ---- many threads ---------------------------------------------------------------------------- */

typedef struct viewer {
    sb_buffer *b;
    uint64_t len, seed;
    uint64_t views, bad, errs;
} viewer;

static void view_randomly(void *arg)
{
    viewer *v = arg;
    uint64_t x = v->seed;
    for (int i = 0; i < 3000; i++) {
        x = x * 6364136223846793005u + 1442695040888963407u;
        uint64_t off = (x >> 20) % v->len;
        size_t n = 1 + (size_t)((x >> 8) % 70000);
        const void *p;
        ssize_t k = sb_view(v->b, off, n, &p);
        if (k <= 0 || (size_t)k > n) {
            v->errs++;
            continue;
        }
        v->bad += pat_mismatches(p, (size_t)k, off);
        v->views++;
    }
}

static void test_many_threads_view_while_filling(void **state)
{
    (void)state;
    const uint64_t len = 2 * WINDOW + 3 * MB;
    count_src *s = fx_count(len, 5000);
    sb_options o = {.mem_limit = 1 * MB, .tmp_dir = fx_scratch()};
    sb_buffer *b = open_count(s, &o);
    assert_non_null(b);
    viewer *v[6];
    bg_call *bg[6];
    for (int i = 0; i < 6; i++) {
        v[i] = fx_calloc(sizeof *v[i]);
        *v[i] = (viewer){.b = b, .len = len, .seed = 99u + (uint64_t)i};
        bg[i] = fx_bg(view_randomly, v[i]);
        assert_non_null(bg[i]);
    }
    for (int i = 0; i < 6; i++) {
        assert_true(bg_wait(bg[i], 5 * WAIT_LONG_MS));
        bg_join(bg[i]);
        assert_int_equal(v[i]->errs, 0);
        assert_int_equal(v[i]->bad, 0);
        assert_int_equal(v[i]->views, 3000);
    }
}

/* ---- views and release ---------------------------------------------------------------------- */

static void test_reader_view_pins_its_bytes(void **state)
{
    (void)state;
    count_src *s = fx_count(COUNT_FOREVER, 0);
    sb_options o = {.flags = SB_RELEASE, .max_retained = 4 * WINDOW,
                    .mem_limit = 64 * KB, .tmp_dir = fx_scratch()};
    sb_buffer *b = open_count(s, &o);
    assert_non_null(b);
    const void *p;
    /* Without a reader a view could not pin anything. */
    assert_fails_with(sb_view(b, 0, 1, &p), EINVAL);
    assert_fails_with(sb_sendfile(b, STDOUT_FILENO, 0, 1), EINVAL);

    sb_reader *a = sb_reader_open(b, 0);
    sb_reader *z = sb_reader_open(b, 0);
    assert_non_null(a);
    assert_non_null(z);
    fx_track(a, NULL, fx_reader_close);
    fx_track(z, NULL, fx_reader_close);
    /* a views bytes in memory and in the first spill window. */
    const void *vm, *vf;
    assert_int_equal(sb_reader_view(a, 1000, 4000, &vm), 4000);
    assert_int_equal(sb_reader_view(a, 100 * KB, 4000, &vf), 4000);
    assert_int_equal(sb_reader_release(a, 1000), 0);
    /* z races far ahead and releases all it has read. */
    unsigned char buf[64 * 1024];
    for (uint64_t off = 0; off < 3 * WINDOW; off += sizeof buf) {
        assert_int_equal(sb_reader_pread(z, buf, sizeof buf, off),
                         (ssize_t)sizeof buf);
        assert_int_equal(sb_reader_release(z, off + sizeof buf), 0);
    }
    /* a's floor holds: nothing under its views was given back. */
    assert_int_equal(sb_floor(b), 1000);
    assert_int_equal(pat_mismatches(vm, 4000, 1000), 0);
    assert_int_equal(pat_mismatches(vf, 4000, 100 * KB), 0);
    /* Once a releases past them, they are gone (and not touched here). */
    assert_int_equal(sb_reader_release(a, 2 * WINDOW), 0);
    assert_int_equal(sb_floor(b), 2 * WINDOW);
    assert_fails_with(sb_reader_view(a, 100 * KB, 1, &p), ESPIPE);
    assert_fails_with(sb_pread(b, buf, 1, 100 * KB), ESPIPE);
    /* What is left can still be viewed and sent. */
    assert_int_equal(sb_reader_view(a, 2 * WINDOW + 10, 100, &p), 100);
    assert_int_equal(pat_mismatches(p, 100, 2 * WINDOW + 10), 0);
}

/* ---- SB_MMAP_READS ---------------------------------------------------------------------------- */

static void test_mmap_reads_same_bytes(void **state)
{
    (void)state;
    const uint64_t len = WINDOW + 3 * MB;
    sb_buffer *plain = filled(len, 100000, 0);
    sb_buffer *mapped = filled(len, 100000, SB_MMAP_READS);
    unsigned char *x = fx_calloc(300000), *y = fx_calloc(300000);
    uint64_t seed = 5;
    for (int i = 0; i < 2000; i++) {
        seed = seed * 6364136223846793005u + 1442695040888963407u;
        uint64_t off = (seed >> 21) % (len + 1000);
        size_t n = (size_t)((seed >> 7) % 300000);
        ssize_t a = sb_pread(plain, x, n, off);
        ssize_t c = sb_pread(mapped, y, n, off);
        assert_int_equal(a, c);
        if (a > 0) {
            assert_memory_equal(x, y, (size_t)a);
            assert_int_equal(pat_mismatches(y, (size_t)a, off), 0);
        }
    }
    /* With SB_RELEASE a plain read falls back to pread, a reader's maps. */
    sb_buffer *r = filled(len, 100000, SB_MMAP_READS | SB_RELEASE);
    sb_reader *rd = fx_sb_reader(r, 0);
    assert_non_null(rd);
    assert_int_equal(sb_reader_pread(rd, y, 300000, WINDOW - 1000), 300000);
    assert_int_equal(pat_mismatches(y, 300000, WINDOW - 1000), 0);
    assert_int_equal(sb_pread(r, y, 300000, WINDOW - 2000), 300000);
    assert_int_equal(pat_mismatches(y, 300000, WINDOW - 2000), 0);
}

static void disarm(void *unused)
{
    (void)unused;
    sb__fault_disarm();
}

/* A window that cannot be mapped fails that call alone. */
static void test_map_failure_fails_the_call(void **state)
{
    (void)state;
    sb_buffer *b = filled(2 * MB, 64 * 1024, SB_MMAP_READS);
    fx_track(b, NULL, disarm);
    const void *p;
    unsigned char buf[100];
    sb__fault_arm(SB__FAULT_MAP, 1, ENOMEM);
    assert_fails_with(sb_view(b, 1 * MB, 10, &p), ENOMEM);
    sb__fault_arm(SB__FAULT_MAP, 1, ENOMEM);
    assert_fails_with(sb_pread(b, buf, sizeof buf, 1 * MB), ENOMEM);
    sb__fault_disarm();
    assert_int_equal(sb_view(b, 1 * MB, 10, &p), 10);
    assert_int_equal(pat_mismatches(p, 10, 1 * MB), 0);
    assert_int_equal(sb_pread(b, buf, sizeof buf, 1 * MB), sizeof buf);
    sb_stats st;
    assert_int_equal(sb_get_stats(b, &st), 0);
    assert_int_equal(st.state, SB_ENDED);
}

/* ---- sendfile -------------------------------------------------------------------------------- */

typedef struct drain {
    int fd;
    uint64_t off;      /* stream offset of the first byte */
    uint64_t got, bad;
} drain;

/* Read fd to its end and check what came against the pattern. */
static void drain_fd(void *arg)
{
    drain *d = arg;
    unsigned char buf[65536];
    ssize_t r;
    while ((r = read(d->fd, buf, sizeof buf)) > 0) {
        d->bad += pat_mismatches(buf, (size_t)r, d->off + d->got);
        d->got += (uint64_t)r;
    }
}

typedef struct send_call {
    sb_buffer *b;
    sb_reader *r;
    int fd;
    uint64_t off;
    size_t n;
    ssize_t ret;
    int err;
} send_call;

static void do_send(void *arg)
{
    send_call *c = arg;
    errno = 0;
    c->ret = c->r ? sb_reader_sendfile(c->r, c->fd, c->off, c->n)
                  : sb_sendfile(c->b, c->fd, c->off, c->n);
    c->err = errno;
}

/* The whole stream to a socket and to a pipe, a consumer on the other end;
   part of it to a file. */
static void test_sendfile_socket_pipe_file(void **state)
{
    (void)state;
    const uint64_t len = 3 * MB + 777;
    sb_buffer *b = filled(len, 100000, 0);
    for (int kind = 0; kind < 2; kind++) {
        int p[2];
        if (kind == 0)
            assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, p), 0);
        else
            assert_int_equal(pipe(p), 0);
        fx_fd(p[0]);
        fx_fd(p[1]);
        drain *d = fx_calloc(sizeof *d);
        *d = (drain){.fd = p[0], .off = 50};
        bg_call *db = fx_bg(drain_fd, d);
        assert_non_null(db);
        /* From inside the memory part to the end: both kinds of copy. */
        assert_int_equal(sb_sendfile(b, p[1], 50, len), (ssize_t)(len - 50));
        assert_int_equal(sb_sendfile(b, p[1], len, 10), 0);
        fx_close_fd(p[1]);
        assert_true(bg_wait(db, WAIT_LONG_MS));
        assert_int_equal(d->got, len - 50);
        assert_int_equal(d->bad, 0);
    }
    char path[300];
    snprintf(path, sizeof path, "%s/out", fx_scratch());
    int f = fx_fd(open(path, O_RDWR | O_CREAT | O_TRUNC, 0600));
    assert_true(f >= 0);
    assert_int_equal(sb_sendfile(b, f, 90000, 20000), 20000);
    assert_int_equal(lseek(f, 0, SEEK_CUR), 20000);
    unsigned char buf[20000];
    assert_int_equal(pread(f, buf, sizeof buf, 0), (ssize_t)sizeof buf);
    assert_int_equal(pat_mismatches(buf, sizeof buf, 90000), 0);
}

/*
 * Every kind of out_fd that write(2) works on: a socket, a pipe, a file, a
 * file opened with O_APPEND (which sendfile(2) refuses: the library copies
 * instead), and both kinds of file on tmpfs (a memfd).  Each gets a range
 * that starts in memory and ends in the spill file, then one wholly in the
 * spill file; the bytes that arrive are exactly those, after what the fd
 * held (an O_APPEND file appends whatever its offset).
 */
enum out_kind { OUT_SOCKET, OUT_PIPE, OUT_FILE, OUT_APPEND, OUT_TMPFS,
                OUT_TMPFS_APPEND };
static const struct out_case {
    enum out_kind kind;
    const char *name;
} out_cases[] = {
    {OUT_SOCKET, "socket"},
    {OUT_PIPE, "pipe"},
    {OUT_FILE, "file"},
    {OUT_APPEND, "O_APPEND file"},
    {OUT_TMPFS, "tmpfs file"},
    {OUT_TMPFS_APPEND, "O_APPEND tmpfs file"},
};

#define OUT_MEM 100000 /* the memory part of the streams sent */
#define OUT_PREFIX 100 /* bytes a file holds before the sends */

/* An fd of kind k for writing; *rd its reading end for a socket or a pipe,
   else -1.  A file already holds OUT_PREFIX bytes, its offset at 0. */
static int out_open(enum out_kind k, int *rd)
{
    int p[2], f;
    char path[300];
    unsigned char pre[OUT_PREFIX];
    *rd = -1;
    switch (k) {
    case OUT_SOCKET:
    case OUT_PIPE:
        if (k == OUT_SOCKET ? socketpair(AF_UNIX, SOCK_STREAM, 0, p) : pipe(p))
            return -1;
        *rd = fx_fd(p[0]);
        return fx_fd(p[1]);
    case OUT_FILE:
    case OUT_APPEND:
        snprintf(path, sizeof path, "%s/out%d", fx_scratch(), (int)k);
        f = fx_fd(open(path, O_RDWR | O_CREAT | O_TRUNC, 0600));
        break;
    default:
        f = fx_fd(memfd_create("out", MFD_CLOEXEC));
        break;
    }
    memset(pre, 0xa5, sizeof pre);
    if (f < 0 || write(f, pre, sizeof pre) != (ssize_t)sizeof pre ||
        lseek(f, 0, SEEK_SET) != 0)
        return -1;
    if ((k == OUT_APPEND || k == OUT_TMPFS_APPEND) &&
        fcntl(f, F_SETFL, fcntl(f, F_GETFL) | O_APPEND) != 0)
        return -1;
    return f;
}

/* Read fd to its end into buf (at most cap bytes; more is counted). */
typedef struct collect {
    int fd;
    unsigned char *buf;
    size_t cap, got;
} collect;

static void collect_fd(void *arg)
{
    collect *c = arg;
    unsigned char spare[4096];
    ssize_t r;
    for (;;) {
        bool room = c->got < c->cap;
        r = read(c->fd, room ? c->buf + c->got : spare,
                 room ? c->cap - c->got : sizeof spare);
        if (r <= 0)
            break;
        c->got += (size_t)r;
    }
}

static void test_sendfile_every_out_fd_kind(void **state)
{
    (void)state;
    const uint64_t len = OUT_MEM + 3 * MB;
    sb_buffer *b = filled(len, OUT_MEM, 0);
    /* [a, a + n): into the spill file from memory; then only spilled. */
    const size_t n1 = 1 * MB, n2 = 300000;
    const uint64_t a1 = OUT_MEM - 5000, a2 = OUT_MEM + 2 * MB + 17;
    for (size_t i = 0; i < sizeof out_cases / sizeof out_cases[0]; i++) {
        const struct out_case *c = &out_cases[i];
        int rd;
        int w = out_open(c->kind, &rd);
        if (w < 0)
            fail_msg("%s: cannot open: %s", c->name, strerror(errno));
        collect *col = fx_calloc(sizeof *col);
        *col = (collect){.fd = rd, .buf = fx_calloc(n1 + n2), .cap = n1 + n2};
        bg_call *bg = rd >= 0 ? fx_bg(collect_fd, col) : NULL;
        if (rd >= 0)
            assert_non_null(bg);
        ssize_t s1 = sb_sendfile(b, w, a1, n1);
        int e1 = errno;
        ssize_t s2 = sb_sendfile(b, w, a2, n2);
        int e2 = errno;
        if (s1 != (ssize_t)n1 || s2 != (ssize_t)n2)
            fail_msg("%s: sent %zd (errno %d) and %zd (errno %d), not %zu and %zu",
                     c->name, s1, e1, s2, e2, n1, n2);
        bool append = c->kind == OUT_APPEND || c->kind == OUT_TMPFS_APPEND;
        if (rd >= 0) {
            fx_close_fd(w);
            assert_true(bg_wait(bg, WAIT_LONG_MS));
        } else {
            /* Where the bytes went: at the offset (0), or after the
               bytes the file held. */
            off_t at = append ? OUT_PREFIX : 0;
            assert_int_equal(lseek(w, 0, SEEK_CUR), at + (off_t)(n1 + n2));
            assert_int_equal(lseek(w, 0, SEEK_END), at + (off_t)(n1 + n2));
            col->got = (size_t)pread(w, col->buf, n1 + n2, at);
            if (append) {
                unsigned char pre[OUT_PREFIX];
                assert_int_equal(pread(w, pre, sizeof pre, 0), (ssize_t)sizeof pre);
                for (size_t j = 0; j < sizeof pre; j++)
                    if (pre[j] != 0xa5)
                        fail_msg("%s: the bytes it held were overwritten", c->name);
            }
        }
        if (col->got != n1 + n2)
            fail_msg("%s: %zu bytes arrived, not %zu", c->name, col->got, n1 + n2);
        if (pat_mismatches(col->buf, n1, a1) != 0 ||
            pat_mismatches(col->buf + n1, n2, a2) != 0)
            fail_msg("%s: the bytes that arrived are not the ranges'", c->name);
    }
}

/* A non-blocking socket nobody reads yet: the first call sends what fits,
   the next EAGAIN; read some, and it goes on where it stopped. */
static void test_sendfile_slow_consumer(void **state)
{
    (void)state;
    const uint64_t len = 4 * MB;
    sb_buffer *b = filled(len, 256 * 1024, 0);
    int p[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, p), 0);
    fx_fd(p[0]);
    fx_fd(p[1]);
    assert_int_equal(fcntl(p[1], F_SETFL, O_NONBLOCK), 0);
    ssize_t first = sb_sendfile(b, p[1], 0, len);
    assert_true(first > 0 && (uint64_t)first < len);
    assert_fails_with(sb_sendfile(b, p[1], (uint64_t)first, len), EAGAIN);
    /* Drain and send alternately until it is all across. */
    unsigned char *buf = fx_calloc(len);
    uint64_t sent = (uint64_t)first, got = 0;
    while (got < len) {
        ssize_t r = read(p[0], buf + got, len - got);
        assert_true(r > 0);
        got += (uint64_t)r;
        if (sent < len) {
            ssize_t w = sb_sendfile(b, p[1], sent, (size_t)(len - sent));
            if (w > 0)
                sent += (uint64_t)w;
            else
                assert_int_equal(errno, EAGAIN);
        }
    }
    assert_int_equal(sent, len);
    assert_int_equal(pat_mismatches(buf, len, 0), 0);
}

static void test_sendfile_peer_gone_is_epipe(void **state)
{
    (void)state;
    /* The default action of SIGPIPE kills: a library that let one through
       would end this test binary. */
    fx_signal(SIGPIPE, SIG_DFL);
    sb_buffer *b = filled(2 * MB, 100000, 0);
    static const uint64_t offs[2] = {10, 500000}; /* memory part, file part */
    for (int kind = 0; kind < 2; kind++)
        for (int i = 0; i < 2; i++) {
            int p[2];
            if (kind == 0)
                assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, p), 0);
            else
                assert_int_equal(pipe(p), 0);
            fx_fd(p[1]);
            close(p[0]);
            assert_fails_with(sb_sendfile(b, p[1], offs[i], 1000), EPIPE);
            sigset_t pending;
            sigpending(&pending);
            assert_false(sigismember(&pending, SIGPIPE));
        }
}

/* Through a reader with SB_RELEASE, while the stream is still coming. */
static void test_reader_sendfile_waits_and_pins(void **state)
{
    (void)state;
    gate_src *g = fx_gate();
    sb_options o = {.flags = SB_RELEASE, .mem_limit = 4096,
                    .tmp_dir = fx_scratch()};
    sb_buffer *b = fx_buffer(open_gate(g, &o));
    assert_non_null(b);
    sb_reader *r = fx_sb_reader(b, 100);
    assert_non_null(r);
    int p[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, p), 0);
    fx_fd(p[0]);
    fx_fd(p[1]);
    send_call *c = fx_calloc(sizeof *c);
    *c = (send_call){.r = r, .fd = p[1], .off = 100, .n = 20000};
    bg_call *bg = fx_bg(do_send, c);
    assert_non_null(bg);
    assert_true(wait_for_waiters(b, 1, WAIT_LONG_MS));
    assert_false(bg_wait(bg, 0));
    gate_allow(g, 30000);
    assert_true(bg_wait(bg, WAIT_LONG_MS));
    assert_int_equal(c->ret, 20000);
    unsigned char buf[20000];
    size_t got = 0;
    while (got < sizeof buf) {
        ssize_t n = read(p[0], buf + got, sizeof buf - got);
        assert_true(n > 0);
        got += (size_t)n;
    }
    assert_int_equal(gen_mismatches(buf, sizeof buf, 100), 0);
    const void *v;
    assert_fails_with(sb_reader_sendfile(r, p[1], 99, 1), ESPIPE);
    assert_fails_with(sb_reader_view(r, 50, 1, &v), ESPIPE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        FX_TEST(test_view_boundaries),
        FX_TEST(test_view_bad_arguments),
        FX_TEST(test_view_waits_like_pread),
        FX_TEST(test_many_threads_view_while_filling),
        FX_TEST(test_reader_view_pins_its_bytes),
        FX_TEST(test_mmap_reads_same_bytes),
        FX_TEST(test_map_failure_fails_the_call),
        FX_TEST(test_sendfile_socket_pipe_file),
        FX_TEST(test_sendfile_every_out_fd_kind),
        FX_TEST(test_sendfile_slow_consumer),
        FX_TEST(test_sendfile_peer_gone_is_epipe),
        FX_TEST(test_reader_sendfile_waits_and_pins),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
