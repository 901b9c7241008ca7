/* SPDX-License-Identifier: MIT */
/*
 * test_faults.c - fault injection.  Through the seam (src/fault.h): every
 * allocation and thread creation of sb_open, sb_open_fd and sb_open_mem in
 * turn; the bounce-buffer allocation, spill-file creation and each spill
 * write while readers are blocked; each spill read.  Through the source: a
 * failure at every chunk boundary and inside chunks, a source that returns
 * more than it was asked for, one that blocks forever.  And real disk
 * faults the seam cannot fake: a read-only file system (EROFS), a full one
 * (ENOSPC), the file size limit (EFBIG) and a missing directory (ENOENT),
 * each hit by a chunk that straddles the memory boundary or the limit.
 *
 * Every injected fault is counted; main prints "faults injected: N".
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fault.h"
#include "fixture.h"

static unsigned long faults_seam, faults_source, faults_disk;

/* The fixture's teardown, after disarming the seam: an armed fault must
   not hit what the teardown does, and must not outlive the test. */
static int disarm(void **state)
{
    sb__fault_disarm();
    return fx_teardown(state);
}

#define FAULT_TEST(f) cmocka_unit_test_setup_teardown(f, fx_setup, disarm)
#define FAULT_TEST_STATE(f, st)                                               \
    cmocka_unit_test_prestate_setup_teardown(f, fx_setup, disarm,            \
                                             (void *)(st))

/* Whether op's armed fault fired; counts it once.  Call once per run. */
static bool fired(enum sb__fault_op op)
{
    bool f = sb__fault_fired(op);
    if (f)
        faults_seam++;
    return f;
}

/* The fds and threads are back to what `before` had. */
#define assert_back_to(before)                                                \
    do {                                                                      \
        assert_int_equal(count_fds(), (before).fds);                          \
        assert_int_equal(threads_back_to((before).threads),                   \
                         (before).threads);                                   \
    } while (0)

struct size_sum {
    long long total;
    int failed;
};

static void add_size(const char *link, void *arg)
{
    struct size_sum *s = arg;
    struct stat st;
    if (stat(link, &st) != 0)
        s->failed = 1;
    else
        s->total += (long long)st.st_size;
}

/* Total size of the files in dir this process has open (the spill file,
   though unlinked); -1 on error. */
static long long open_file_bytes_in_dir(const char *dir)
{
    struct size_sum s = {0, 0};
    if (each_fd_into_dir(0, dir, add_size, &s) < 0 || s.failed)
        return -1;
    return s.total;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/* What sb_pread(off, n) must return once the stream is over with `good`
   bytes and error err (0: ended normally). */
static ssize_t expected_read(uint64_t good, int err, uint64_t off, size_t n,
                             int *want_errno)
{
    *want_errno = 0;
    if (n == 0)
        return 0;
    if (off + n <= good)
        return (ssize_t)n;
    if (off < good)
        return (ssize_t)(good - off);
    if (err != 0) {
        *want_errno = err;
        return -1;
    }
    return 0;
}

/*
 * The stream is over with `good` bytes and error err (0: ended): every
 * byte is there and right, reads past it get short counts, 0 or err,
 * sb_wait_end agrees, and the stats say the same.
 */
static int stream_over(void *b)
{
    sb_stats st;
    return sb_get_stats(b, &st) != 0 || st.state != SB_RUNNING;
}

static void expect_final(sb_buffer *b, uint64_t good, int err, size_t mem_limit)
{
    /* Over within a bounded time: a hang is a failure, not a stuck run. */
    assert_true(poll_until(stream_over, b, WAIT_LONG_MS));
    sb_stats now = {0};
    assert_int_equal(sb_get_stats(b, &now), 0);
    assert_int_not_equal(now.state, SB_RUNNING);
    uint64_t len = 4242;
    errno = 0;
    int rc = sb_wait_end(b, &len);
    int e = errno;
    if (err == 0) {
        assert_int_equal(rc, 0);
        assert_int_equal(len, good);
    } else {
        assert_int_equal(rc, -1);
        assert_int_equal(e, err);
        assert_int_equal(len, 4242);
    }
    assert_int_equal(sb_available(b), good);
    sb_stats st;
    assert_int_equal(sb_get_stats(b, &st), 0);
    assert_int_equal(st.filled, good);
    assert_int_equal(st.state, err == 0 ? SB_ENDED : SB_FAILED);
    assert_int_equal(st.error, err);
    assert_int_equal(st.in_memory, min_u64(good, mem_limit));
    assert_int_equal(st.spilled, good - min_u64(good, mem_limit));
    assert_int_equal(st.waiting, 0);
    if (good > 0) {
        assert_int_equal(check_read(b, 0, (size_t)good, (ssize_t)good), 0);
        assert_int_equal(check_read(b, good - 1, 100, 1), 0);
    }
    if (err == 0) {
        assert_int_equal(check_read(b, good, 1, 0), 0);
        assert_int_equal(check_read(b, good + 5000, 10, 0), 0);
    } else {
        assert_int_equal(check_read_err(b, good, 1, err), 0);
        assert_int_equal(check_read_err(b, good + 5000, 10, err), 0);
    }
    unsigned char c;
    assert_int_equal(sb_pread(b, &c, 0, good + 1), 0);
}

/* ==== sb_open*: every allocation and the thread, in turn ========================== */

enum opener { OPEN_READ, OPEN_ITER, OPEN_FD, OPEN_MEM };
static const char *const opener_name[] = {"sb_open(read)", "sb_open(next)",
                                          "sb_open_fd", "sb_open_mem"};

#define OPEN_LEN 1000

/*
 * Fail the nth call of op, n = 1, 2, ...: each open that fails must fail
 * with err, leave no fd, thread or file behind, not touch the source (no
 * callback, no close) and, for sb_open_fd, leave the caller's fd open and
 * unread.  The first open the fault does not reach must work normally.
 * Returns how many opens failed.
 */
static unsigned long open_fault_loop(enum sb__fault_op op, int err, int kind)
{
    char *dir = fx_scratch();
    unsigned char data[OPEN_LEN];
    gen_fill(data, sizeof data, 0);
    int p[2] = {-1, -1};
    if (kind == OPEN_FD) {
        fx_pipe(p, 0);
        assert_int_equal(write(p[1], data, sizeof data), (ssize_t)sizeof data);
        fx_close_fd(p[1]);
    }
    /* Small chunks, so the producer does several steps. */
    sb_options o = {.mem_limit = 4096, .tmp_dir = dir, .chunk_size = 300};
    snapshot before = snap();
    unsigned long failures = 0;

    for (unsigned long n = 1;; n++) {
        /* Each round's own: a round must not see the last one's counts. */
        chunk_src *s = fx_chunk(OPEN_LEN, NULL, 0);
        iter_src *it = fx_iter(OPEN_LEN, NULL, 0);
        sb_source src = kind == OPEN_ITER ? iter_source(it) : chunk_source(s);

        sb__fault_arm(op, n, err);
        errno = 0;
        sb_buffer *b = kind == OPEN_FD    ? sb_open_fd(p[0], &o)
                : kind == OPEN_MEM ? sb_open_mem(data, sizeof data, &o)
                                   : sb_open(&src, &o);
        int e = errno;
        unsigned long calls = sb__fault_calls(op);
        fx_buffer(b);

        if (b == NULL) {
            bool f = fired(op);
            sb__fault_disarm();
            if (!f || e != err)
                fprintf(stderr, "%s, call %lu of op %d failing: errno %d "
                                "(%s), fired %d\n",
                        opener_name[kind], n, (int)op, e, strerror(e), f);
            assert_true(f);
            assert_int_equal(e, err);
            assert_int_equal(calls, n); /* it stopped at the failure */
            assert_int_equal(atomic_load(&s->calls), 0);
            assert_int_equal(atomic_load(&s->closes), 0);
            assert_int_equal(atomic_load(&it->calls), 0);
            assert_int_equal(atomic_load(&it->closes), 0);
            assert_back_to(before);
            assert_int_equal(count_dir_entries(dir), 0);
            if (kind == OPEN_FD)
                assert_true(fcntl(p[0], F_GETFD) != -1);
            failures++;
            continue;
        }

        /* The open made fewer than n calls; a stream that fits in memory
           makes no more, so it must work as if nothing was armed (and for
           sb_open_fd, the failed opens must not have read the pipe). */
        int ok = check_stream(b, OPEN_LEN);
        fx_close(b);
        bool f = fired(op);
        sb__fault_disarm();
        assert_int_equal(ok, 0);
        assert_false(f);
        assert_true(calls < n);
        assert_int_equal(failures, n - 1);
        if (kind == OPEN_READ || kind == OPEN_FD)
            assert_int_equal(atomic_load(&s->closes), kind == OPEN_READ);
        if (kind == OPEN_ITER)
            assert_int_equal(atomic_load(&it->closes), 1);
        assert_back_to(before);
        assert_int_equal(count_dir_entries(dir), 0);
        break;
    }
    if (kind == OPEN_FD)
        assert_true(fcntl(p[0], F_GETFD) != -1); /* still the caller's */
    return failures;
}

static void test_open_alloc_faults(void **state)
{
    (void)state;
    for (int kind = OPEN_READ; kind <= OPEN_MEM; kind++) {
        unsigned long failed = open_fault_loop(SB__FAULT_ALLOC, ENOMEM, kind);
        /* Every opener allocates at least the buffer itself. */
        assert_true(failed >= 1);
    }
}

static void test_open_thread_fault(void **state)
{
    (void)state;
    for (int kind = OPEN_READ; kind <= OPEN_MEM; kind++) {
        unsigned long failed = open_fault_loop(SB__FAULT_THREAD, EAGAIN, kind);
        /* One producer thread per open; none for sb_open_mem. */
        assert_int_equal(failed, kind == OPEN_MEM ? 0 : 1);
    }
}

/* ==== faults while streaming, with readers already blocked ======================== */

enum style { ST_READ, ST_ITER };

#define S_MEM 4096
#define S_CHUNK 1000

/*
 * A stream of len bytes whose producer is held before its first byte past
 * the memory part (ST_READ: a gated read source; ST_ITER: an iterator
 * with pattern pat behind a hold), so that the faults of spilling can only
 * come once readers are blocked.  A read source is held one S_CHUNK
 * earlier: its room is reserved before the read that blocks, and the room
 * for the chunk that crosses into the file is the bounce buffer, whose
 * allocation is one of the faults.
 */
typedef struct held {
    int style;
    uint64_t len;
    uint64_t held_at; /* bytes delivered before the hold */
    gate_src *g;      /* ST_READ */
    hold_src *h;      /* ST_ITER, on an iterator */
} held;

static void held_init(held *x, int style, uint64_t len, const size_t *pat,
                      size_t npat)
{
    memset(x, 0, sizeof *x);
    x->style = style;
    x->len = len;
    if (style == ST_READ) {
        x->g = fx_gate();
        x->held_at = S_MEM - 96 - S_CHUNK;
    } else {
        x->h = fx_hold(iter_source(fx_iter(len, pat, npat)));
        /* The last chunk boundary at or before S_MEM - 96. */
        uint64_t pos = 0;
        for (size_t i = 0;; i++) {
            size_t c = pat[i % npat];
            if (pos + c > S_MEM - 96 || pos + c >= len)
                break;
            pos += c;
        }
        x->held_at = pos;
    }
}

static sb_source held_source(held *x)
{
    return x->style == ST_READ ? gate_source(x->g) : hold_source(x->h);
}

static void held_hold(held *x)
{
    if (x->style == ST_READ)
        gate_allow(x->g, x->held_at);
    else
        hold_allow(x->h, x->held_at);
}

static void held_release(held *x)
{
    if (x->style == ST_READ) {
        gate_allow(x->g, x->len);
        gate_end(x->g);
    } else {
        hold_release(x->h);
    }
}

static int held_closes(held *x)
{
    return x->style == ST_READ ? atomic_load(&x->g->closes)
                               : atomic_load(&x->h->closes);
}

/*
 * The starts of the chunks the producer appends, in order, and the end:
 * ST_READ asks for chunk bytes at a time (never less because the memory
 * part is nearly full: that would lose the rest of a message), and the
 * gate cuts a chunk at held_at; ST_ITER appends the iterator's non-empty
 * chunks.  Returns the number of chunks.
 */
static size_t chunk_starts(const held *x, size_t chunk, const size_t *pat,
                           size_t npat, uint64_t *starts, size_t max)
{
    size_t k = 0;
    uint64_t pos = 0;
    for (size_t i = 0; pos < x->len; i++) {
        uint64_t c;
        if (x->style == ST_READ) {
            c = chunk;
            if (pos < x->held_at && c > x->held_at - pos)
                c = x->held_at - pos;
        } else {
            c = pat[i % npat];
            if (c == 0)
                continue;
        }
        c = min_u64(c, x->len - pos);
        assert_true(k < max);
        starts[k++] = pos;
        pos += c;
    }
    return k;
}

/* Start of the nth chunk (1-based) that has bytes past the memory part;
   -1 if there are fewer. */
static long long nth_spill_chunk(const uint64_t *starts, size_t nchunks,
                                 uint64_t len, unsigned long n)
{
    for (size_t k = 0; k < nchunks; k++) {
        uint64_t end = k + 1 < nchunks ? starts[k + 1] : len;
        if (end > S_MEM && --n == 0)
            return (long long)starts[k];
    }
    return -1;
}

/* What stays readable when storing that chunk in the file fails: the part
   of it that went to memory is published before the stream fails. */
static long long kept_before_spill_chunk(const uint64_t *starts,
                                         size_t nchunks, uint64_t len,
                                         unsigned long n)
{
    long long start = nth_spill_chunk(starts, nchunks, len, n);
    return start >= 0 && start < S_MEM ? S_MEM : start;
}

#define NREADERS 7

typedef struct outcome {
    int opened;
    int open_errno;
    unsigned long seam_calls_at_open;
    uint64_t good;
    int err;                 /* 0: the stream ended */
    int spill_fds;           /* spill files open before sb_close */
    long long spill_bytes;   /* their size */
} outcome;

/*
 * Open the held stream, block NREADERS readers on it (inside the held part,
 * across the memory boundary, far in the file, past the end, a timed one,
 * one at the end, sb_wait_end), release it, and let whatever is armed
 * happen.  Checks that every reader got what the final state dictates,
 * that the final state is consistent, and that sb_close leaves nothing
 * behind; the caller checks the final state against what it armed.
 */
static outcome run_held(held *x, const sb_options *o, enum sb__fault_op op)
{
    outcome out = {0};
    snapshot before = snap();
    /* The spill directory, if it exists, to look for spill files in. */
    const char *dir = o->tmp_dir && access(o->tmp_dir, F_OK) == 0
                          ? o->tmp_dir
                          : NULL;
    held_hold(x);
    sb_source src = held_source(x);
    errno = 0;
    sb_buffer *b = sb_open(&src, o);
    out.open_errno = errno;
    out.seam_calls_at_open = sb__fault_calls(op);
    fx_buffer(b);
    if (b == NULL) {
        assert_int_equal(held_closes(x), 0);
        assert_back_to(before);
        return out;
    }
    out.opened = 1;
    uint64_t a = x->held_at, len = x->len;
    assert_true(wait_available(b, a, WAIT_LONG_MS));

    static const int kinds[NREADERS] = {RD_PREAD, RD_PREAD, RD_PREAD,
                                        RD_PREAD, RD_TIMED, RD_PREAD,
                                        RD_WAIT_END};
    const uint64_t offs[NREADERS] = {a / 2, S_MEM - 96, 9000, len + 5000,
                                     15000, len - 50, 0};
    const size_t ns[NREADERS] = {(size_t)(a - a / 2 + 200), 200, 10, 10,
                                 100, 100, 0};
    reader *r[NREADERS];
    for (int i = 0; i < NREADERS; i++) {
        r[i] = fx_reader(b, kinds[i], offs[i], ns[i], 60000);
        assert_non_null(r[i]);
    }
    /* All of them are waiting for bytes past the hold. */
    assert_true(wait_for_waiters(b, NREADERS, WAIT_LONG_MS));
    held_release(x);
    int late = 0;
    for (int i = 0; i < NREADERS; i++)
        late += !reader_wait(r[i], WAIT_LONG_MS);
    for (int i = 0; i < NREADERS; i++)
        reader_join(r[i]);
    assert_int_equal(late, 0);

    /* The final state: sb_wait_end cannot block any more. */
    errno = 0;
    uint64_t total = 0;
    int rc = sb_wait_end(b, &total);
    out.err = rc == 0 ? 0 : errno;
    out.good = sb_available(b);
    if (rc == 0)
        assert_int_equal(total, out.good);
    assert_true(out.good >= a);

    for (int i = 0; i < NREADERS; i++) {
        if (kinds[i] == RD_WAIT_END) {
            assert_int_equal(r[i]->ret, out.err ? -1 : 0);
            assert_int_equal(r[i]->err, out.err);
            assert_int_equal(r[i]->length, out.err ? UINT64_MAX : out.good);
            continue;
        }
        int want_err;
        ssize_t want = expected_read(out.good, out.err, offs[i], ns[i],
                                     &want_err);
        if (r[i]->ret != want || r[i]->err != want_err)
            fprintf(stderr, "reader %d (off %llu, n %zu): %zd errno %d, "
                            "expected %zd errno %d (good %llu, err %d)\n",
                    i, (unsigned long long)offs[i], ns[i], r[i]->ret,
                    r[i]->err, want, want_err, (unsigned long long)out.good,
                    out.err);
        assert_int_equal(r[i]->ret, want);
        assert_int_equal(r[i]->err, want_err);
        assert_int_equal(r[i]->bad, 0);
    }
    expect_final(b, out.good, out.err, o->mem_limit);

    out.spill_fds = dir ? fds_into_dir(dir) : -1;
    out.spill_bytes = dir && out.spill_fds >= 0 ? open_file_bytes_in_dir(dir)
                                                : -1;
    fx_close(b);
    assert_int_equal(held_closes(x), 1);
    assert_back_to(before);
    if (dir)
        assert_int_equal(fds_into_dir(dir), 0);
    return out;
}

static const size_t iter_pat[] = {1500, 0, 700, 2300};
#define NITER_PAT (sizeof iter_pat / sizeof iter_pat[0])
#define S_LEN 20000

/*
 * Arm op at n = 1, 2, ... on a held stream until it no longer fires, and
 * check each run: an open that fails fails with err; a fault after the
 * open fails the stream with err exactly at the chunk it hit, blocked
 * readers included, and nothing of that chunk reaches the file.
 */
static void streaming_fault_loop(enum sb__fault_op op, const int *errs,
                                 size_t nerrs, int style)
{
    char *dir = fx_scratch();
    sb_options o = {.mem_limit = S_MEM, .tmp_dir = dir, .chunk_size = S_CHUNK};
    unsigned long open_failures = 0, stream_failures = 0;

    for (unsigned long n = 1;; n++) {
        held x;
        held_init(&x, style, S_LEN, iter_pat, NITER_PAT);
        uint64_t starts[64];
        size_t nch = chunk_starts(&x, S_CHUNK, iter_pat, NITER_PAT, starts,
                                  64);
        int err = errs[n % nerrs];
        sb__fault_arm(op, n, err);
        outcome out = run_held(&x, &o, op);
        bool f = fired(op);
        sb__fault_disarm();

        if (!out.opened) {
            assert_true(f);
            assert_int_equal(out.open_errno, err);
            assert_int_equal(stream_failures, 0);
            open_failures++;
            continue;
        }
        /* Which call after the open, and where it must have hit. */
        unsigned long k = n - out.seam_calls_at_open;
        long long want_good = -1;
        switch (op) {
        case SB__FAULT_ALLOC: /* the bounce buffer, at the first chunk that
                                 does not fit in memory, before reading it;
                                 an iterator needs none */
            if (style == ST_READ && k == 1)
                want_good = nth_spill_chunk(starts, nch, S_LEN, 1);
            break;
        case SB__FAULT_SPILL_CREATE:
            if (k == 1)
                want_good = kept_before_spill_chunk(starts, nch, S_LEN, 1);
            break;
        case SB__FAULT_SPILL_WRITE: /* one pwrite per chunk */
            want_good = kept_before_spill_chunk(starts, nch, S_LEN, k);
            break;
        default:
            fail();
        }
        if (want_good < 0) {
            /* Not reached: a normal stream, and the end of the loop. */
            assert_false(f);
            assert_int_equal(out.err, 0);
            assert_int_equal(out.good, S_LEN);
            break;
        }
        if (!f || out.err != err || out.good != (uint64_t)want_good)
            fprintf(stderr, "op %d style %d call %lu: fired %d, errno %d, "
                            "good %llu; expected errno %d at %lld\n",
                    (int)op, style, n, f, out.err,
                    (unsigned long long)out.good, err, want_good);
        assert_true(f);
        assert_int_equal(out.err, err);
        assert_int_equal(out.good, (uint64_t)want_good);
        /* Only published bytes reached the file. */
        if (op == SB__FAULT_SPILL_WRITE) {
            assert_int_equal(out.spill_fds, 1);
            assert_int_equal(out.spill_bytes,
                             (long long)(out.good > S_MEM ? out.good - S_MEM
                                                          : 0));
        } else {
            assert_int_equal(out.spill_fds, 0);
        }
        stream_failures++;
    }
    if (op == SB__FAULT_ALLOC)
        assert_true(open_failures >= 1);
    else
        assert_int_equal(open_failures, 0);
    if (op == SB__FAULT_ALLOC && style == ST_ITER)
        assert_int_equal(stream_failures, 0);
    else
        assert_true(stream_failures >= 1);
    assert_int_equal(count_dir_entries(dir), 0);
}

static const int enomem[] = {ENOMEM};
static const int create_errs[] = {ENOSPC, EACCES, EMFILE, EROFS};
static const int write_errs[] = {EIO, ENOSPC, EDQUOT, EFBIG};

static void test_bounce_buffer_alloc_fault(void **state)
{
    (void)state;
    streaming_fault_loop(SB__FAULT_ALLOC, enomem, 1, ST_READ);
    streaming_fault_loop(SB__FAULT_ALLOC, enomem, 1, ST_ITER);
}

static void test_spill_create_fault(void **state)
{
    (void)state;
    streaming_fault_loop(SB__FAULT_SPILL_CREATE, create_errs, 4, ST_READ);
    streaming_fault_loop(SB__FAULT_SPILL_CREATE, create_errs, 4, ST_ITER);
}

static void test_spill_write_fault_each_chunk(void **state)
{
    (void)state;
    streaming_fault_loop(SB__FAULT_SPILL_WRITE, write_errs, 4, ST_READ);
    streaming_fault_loop(SB__FAULT_SPILL_WRITE, write_errs, 4, ST_ITER);
}

/* ==== spill read faults: that read alone fails ===================================== */

typedef struct rd {
    uint64_t off;
    size_t n;
} rd;

/* A 30000-byte stream in dir, ended, all but its first S_MEM bytes in
   the spill file. */
static sb_buffer *spilled_30000(const char *dir)
{
    chunk_src *s = fx_chunk(30000, NULL, 0);
    sb_options o = {.mem_limit = S_MEM, .tmp_dir = dir, .chunk_size = 1000};
    sb_buffer *b = fx_buffer(open_chunk(s, &o));
    if (b != NULL && sb_wait_end(b, NULL) != 0)
        return NULL;
    return b;
}

static void test_spill_read_fault_each_read(void **state)
{
    (void)state;
    char *dir = fx_scratch();
    const uint64_t len = 30000;
    sb_buffer *b = spilled_30000(dir);
    assert_non_null(b);

    static const rd reads[] = {
        {0, 100},     {4000, 200},  {5000, 1000}, {29990, 100}, {30000, 10},
        {10000, 8000}, {4096, 1},   {100, 3996},  {4095, 2},    {12345, 0},
        {0, 30000},
    };
    const size_t nreads = sizeof reads / sizeof reads[0];
    static const int errs[] = {EIO, ENXIO, ESTALE};
    size_t touching = 0; /* reads that need the file */
    for (size_t i = 0; i < nreads; i++)
        if (reads[i].n > 0 && reads[i].off < len &&
            min_u64(reads[i].off + reads[i].n, len) > S_MEM)
            touching++;
    assert_int_equal(touching, 7);

    unsigned long n;
    for (n = 1;; n++) {
        int err = errs[n % 3];
        sb__fault_arm(SB__FAULT_SPILL_READ, n, err);
        size_t seen = 0;
        for (size_t i = 0; i < nreads; i++) {
            const rd *q = &reads[i];
            int want_err;
            ssize_t want = expected_read(len, 0, q->off, q->n, &want_err);
            int touches = want > 0 && q->off + (uint64_t)want > S_MEM;
            if (touches && ++seen == n) {
                /* This one gets the fault, alone: the stream stays
                   ended and the retry succeeds. */
                assert_int_equal(check_read_err(b, q->off, q->n, err), 0);
                sb_stats st;
                assert_int_equal(sb_get_stats(b, &st), 0);
                assert_int_equal(st.state, SB_ENDED);
                assert_int_equal(st.error, 0);
            }
            assert_int_equal(check_read(b, q->off, q->n, want), 0);
        }
        bool f = fired(SB__FAULT_SPILL_READ);
        sb__fault_disarm();
        /* Armed past the last read that needs the file: no spill read
           was left to fail. */
        if (n > touching) {
            assert_false(f);
            break;
        }
        assert_true(f);
        assert_int_equal(sb_wait_end(b, NULL), 0);
    }
    assert_int_equal(check_stream(b, len), 0);
    fx_close(b);
    assert_int_equal(count_dir_entries(dir), 0);
}

/* sb_sendfile to an O_APPEND file copies spilled bytes (sendfile(2)
   refuses that output) with pread: a failed read-back is that call's EIO,
   never a SIGBUS, and a short count when some bytes went out first. */
static void test_spill_read_fault_sendfile_copy(void **state)
{
    (void)state;
    char *dir = fx_scratch();
    const uint64_t len = 30000;
    sb_buffer *b = spilled_30000(dir);
    assert_non_null(b);
    char path[300];
    snprintf(path, sizeof path, "%s/append", dir);
    int f = fx_fd(open(path, O_WRONLY | O_CREAT | O_APPEND, 0600));
    assert_true(f >= 0);

    sb__fault_arm(SB__FAULT_SPILL_READ, 1, EIO);
    errno = 0;
    assert_int_equal(sb_sendfile(b, f, S_MEM + 100, 1000), -1);
    assert_int_equal(errno, EIO);
    assert_true(fired(SB__FAULT_SPILL_READ));
    assert_int_equal(lseek(f, 0, SEEK_END), 0);
    /* From memory into the file: the memory part, then the fault. */
    sb__fault_arm(SB__FAULT_SPILL_READ, 1, EIO);
    assert_int_equal(sb_sendfile(b, f, S_MEM - 10, 1000), 10);
    assert_true(fired(SB__FAULT_SPILL_READ));
    sb__fault_disarm();
    /* The stream is as it was: the same calls now succeed. */
    assert_int_equal(sb_sendfile(b, f, S_MEM + 100, 1000), 1000);
    assert_int_equal(lseek(f, 0, SEEK_END), 1010);
    assert_int_equal(check_read(b, 0, (size_t)len, (ssize_t)len), 0);
}

static void test_spill_read_fault_while_streaming(void **state)
{
    (void)state;
    char *dir = fx_scratch();
    gate_src *g = fx_gate();
    sb_options o = {.mem_limit = S_MEM, .tmp_dir = dir, .chunk_size = 1000};
    sb_buffer *b = fx_buffer(open_gate(g, &o));
    assert_non_null(b);
    gate_allow(g, 8000);
    assert_true(wait_available(b, 8000, WAIT_LONG_MS));
    reader *blocked = fx_reader(b, RD_PREAD, 7500, 1000, 0);
    assert_non_null(blocked);
    assert_true(wait_for_waiters(b, 1, WAIT_LONG_MS));

    /* A read of spilled bytes fails alone; the stream runs on. */
    sb__fault_arm(SB__FAULT_SPILL_READ, 1, EIO);
    assert_int_equal(check_read_err(b, 5000, 1000, EIO), 0);
    assert_true(fired(SB__FAULT_SPILL_READ));
    sb_stats st;
    assert_int_equal(sb_get_stats(b, &st), 0);
    assert_int_equal(st.state, SB_RUNNING);
    assert_int_equal(st.waiting, 1);
    assert_int_equal(check_read(b, 5000, 1000, 1000), 0);

    gate_allow(g, 50000);
    gate_end(g);
    assert_true(reader_wait(blocked, WAIT_LONG_MS));
    reader_join(blocked);
    sb__fault_disarm();
    assert_int_equal(blocked->ret, 1000);
    assert_int_equal(blocked->bad, 0);
    assert_int_equal(check_stream(b, 50000), 0);
}

/* ==== the source fails at every chunk boundary, and inside chunks ================== */

/* Records where each non-empty chunk ends. */
typedef struct rec_src {
    sb_source inner;
    uint64_t pos;
    uint64_t ends[256];
    size_t n;
} rec_src;

static ssize_t rec_read(void *ctx, void *buf, size_t cap)
{
    rec_src *r = ctx;
    ssize_t got = r->inner.read(r->inner.ctx, buf, cap);
    if (got > 0 && r->n < 256) {
        r->pos += (uint64_t)got;
        r->ends[r->n++] = r->pos;
    }
    return got;
}

static int rec_next(void *ctx, const void **chunk, size_t *len)
{
    rec_src *r = ctx;
    int got = r->inner.next(r->inner.ctx, chunk, len);
    if (got == 1 && *len > 0 && r->n < 256) {
        r->pos += *len;
        r->ends[r->n++] = r->pos;
    }
    return got;
}

static const int st_read = ST_READ, st_iter = ST_ITER;

/* Registered once per style (*state: st_read or st_iter). */
static void test_source_fails_at_each_boundary(void **state)
{
    const int style = *(const int *)*state;
    static const size_t read_pat[] = {700, 1300, 1, 2048};
    static const size_t next_pat[] = {1500, 0, 1, 700, 2300};
    /* Errnos of all kinds, and one that is not an errno at all. */
    static const int errs[] = {EIO, ECONNRESET, EPIPE, ENOSPC, EBADMSG,
                               ETIMEDOUT, 5000};
    const uint64_t len = 12000;
    sb_options o = {.mem_limit = S_MEM, .chunk_size = 1024};
    char *dir = fx_scratch();
    o.tmp_dir = dir;

    /* A first pass records the chunk boundaries. */
    chunk_src *cs = fx_chunk(len, read_pat, 4);
    iter_src *it = fx_iter(len, next_pat, 5);
    rec_src *rec = fx_calloc(sizeof *rec);
    rec->inner = style == ST_READ ? chunk_source(cs) : iter_source(it);
    sb_source src = {.ctx = rec};
    if (style == ST_READ)
        src.read = rec_read;
    else
        src.next = rec_next;
    sb_buffer *b = fx_buffer(sb_open(&src, &o));
    assert_non_null(b);
    assert_int_equal(check_stream(b, len), 0);
    fx_close(b);
    assert_true(rec->n > 10 && rec->n < 256);
    assert_int_equal(rec->ends[rec->n - 1], len);

    /* Then fail at each boundary (0 and len included) and inside each
       chunk, with blocked or racing readers. */
    uint64_t points[600];
    size_t np = 0;
    uint64_t prev = 0;
    points[np++] = 0;
    for (size_t i = 0; i < rec->n; i++) {
        if (rec->ends[i] - prev >= 2)
            points[np++] = prev + (rec->ends[i] - prev) / 2;
        points[np++] = rec->ends[i];
        prev = rec->ends[i];
    }
    snapshot before = snap();
    for (size_t i = 0; i < np; i++) {
        uint64_t at = points[i];
        int ferr = errs[i % (sizeof errs / sizeof errs[0])];
        int err = ferr == 5000 ? EIO : ferr; /* nonsense becomes EIO */
        cs = fx_chunk(len, read_pat, 4);
        cs->fail_at = at;
        cs->fail_err = ferr;
        it = fx_iter(len, next_pat, 5);
        it->fail_at = at;
        it->fail_err = ferr;
        src = style == ST_READ ? chunk_source(cs) : iter_source(it);
        b = fx_buffer(sb_open(&src, &o));
        assert_non_null(b);
        reader *across = fx_reader(b, RD_PREAD, at / 2,
                                   (size_t)(at - at / 2) + 100, 0);
        reader *after = fx_reader(b, RD_PREAD, at, 1, 0);
        reader *w = fx_reader(b, RD_WAIT_END, 0, 0, 0);
        assert_non_null(across);
        assert_non_null(after);
        assert_non_null(w);
        assert_true(reader_wait(across, WAIT_LONG_MS));
        assert_true(reader_wait(after, WAIT_LONG_MS));
        assert_true(reader_wait(w, WAIT_LONG_MS));
        reader_join(across);
        reader_join(after);
        reader_join(w);
        if (across->ret != (at ? (ssize_t)(at - at / 2) : -1) ||
            after->err != err)
            fprintf(stderr, "style %d, failing at %llu with %d: %zd, %zd "
                            "errno %d\n",
                    style, (unsigned long long)at, ferr, across->ret,
                    after->ret, after->err);
        if (at == 0) {
            assert_int_equal(across->ret, -1);
            assert_int_equal(across->err, err);
        } else {
            assert_int_equal(across->ret, (ssize_t)(at - at / 2));
            assert_int_equal(across->bad, 0);
        }
        assert_int_equal(after->ret, -1);
        assert_int_equal(after->err, err);
        assert_int_equal(w->ret, -1);
        assert_int_equal(w->err, err);
        expect_final(b, at, err, S_MEM);
        fx_close(b);
        assert_int_equal(style == ST_READ ? atomic_load(&cs->closes)
                                          : atomic_load(&it->closes),
                         1);
        faults_source++;
    }
    assert_back_to(before);
    assert_int_equal(count_dir_entries(dir), 0);
}

/* ==== a source that returns more than it was asked for ============================ */

/*
 * Behaves for `good` bytes, then writes exactly cap bytes and claims more:
 * cap + extra, or SSIZE_MAX when extra is 0.  Remembers the buffer and cap
 * of that call.
 */
typedef struct greedy {
    uint64_t good;
    uint64_t pos;
    size_t extra;
    unsigned char *bad_buf;
    size_t bad_cap;
    atomic_int calls;
} greedy;

static ssize_t greedy_read(void *ctx, void *buf, size_t cap)
{
    greedy *gr = ctx;
    atomic_fetch_add(&gr->calls, 1);
    if (gr->pos < gr->good) {
        size_t n = (size_t)min_u64(gr->good - gr->pos, cap);
        gen_fill(buf, n, gr->pos);
        gr->pos += n;
        return (ssize_t)n;
    }
    gr->bad_buf = buf;
    gr->bad_cap = cap;
    memset(buf, 0xEE, cap);
    return gr->extra == 0 ? SSIZE_MAX : (ssize_t)(cap + gr->extra);
}

static void test_source_returns_more_than_cap(void **state)
{
    (void)state;
    char *dir = fx_scratch();
    /* In the memory part with room to spare after cap (a guard region of
       fresh, zero pages), exactly at the end of the memory part, and in
       the spilled part (through the bounce buffer). */
    static const uint64_t goods[] = {100, S_MEM - 296, 6000};
    static const size_t extras[] = {1, 4096, 0};
    snapshot before = snap();
    for (size_t gi = 0; gi < 3; gi++) {
        for (size_t ei = 0; ei < 3; ei++) {
            greedy *gr = fx_calloc(sizeof *gr);
            gr->good = goods[gi];
            gr->extra = extras[ei];
            sb_source src = {.read = greedy_read, .ctx = gr};
            sb_options o = {.mem_limit = S_MEM, .tmp_dir = dir,
                            .chunk_size = 500};
            sb_buffer *b = fx_buffer(sb_open(&src, &o));
            assert_non_null(b);
            reader *past = fx_reader(b, RD_PREAD, gr->good, 1, 0);
            assert_non_null(past);
            expect_final(b, gr->good, EIO, S_MEM);
            assert_true(reader_wait(past, WAIT_LONG_MS));
            reader_join(past);
            assert_int_equal(past->ret, -1);
            assert_int_equal(past->err, EIO);
            assert_int_equal(past->untouched, 1);

            /* Asked for chunk_size, even where less room is left in
                   memory (the bounce buffer takes such a chunk). */
            size_t want_cap = 500;
            assert_int_equal(gr->bad_cap, want_cap);
            if (gr->good + want_cap < S_MEM) {
                /* The guard after cap is still untouched zero pages. */
                size_t guard = (size_t)min_u64(256, S_MEM - gr->good -
                                                        want_cap);
                size_t dirty = 0;
                for (size_t k = 0; k < guard; k++)
                    dirty += gr->bad_buf[want_cap + k] != 0;
                assert_int_equal(dirty, 0);
            }
            /* Nothing of the bad call reached the spill file. */
            if (gr->good > S_MEM) {
                assert_int_equal(fds_into_dir(dir), 1);
                assert_int_equal(open_file_bytes_in_dir(dir),
                                 (long long)(gr->good - S_MEM));
            } else {
                assert_int_equal(fds_into_dir(dir), 0);
            }
            fx_close(b);
            faults_source++;
        }
    }
    assert_back_to(before);
    assert_int_equal(count_dir_entries(dir), 0);
}

/* ==== a source that blocks forever ================================================= */

/* Registered once per style (*state: st_read or st_iter). */
static void test_source_blocks_forever(void **state)
{
    const int style = *(const int *)*state;
    char *dir = fx_scratch();
    snapshot before = snap();
    static const size_t pat[] = {1000, 0, 333};
    chunk_src *cs = fx_chunk(CHUNK_FOREVER, NULL, 0);
    iter_src *it = fx_iter(CHUNK_FOREVER, pat, 3);
    hold_src *h = fx_hold(style == ST_READ ? chunk_source(cs)
                                           : iter_source(it));
    hold_allow(h, 6000); /* past the memory part: a spill file is open */
    sb_source src = hold_source(h);
    sb_options o = {.mem_limit = S_MEM, .tmp_dir = dir};
    sb_buffer *b = fx_buffer(sb_open(&src, &o));
    assert_non_null(b);
    assert_true(hold_wait_blocked(h, WAIT_LONG_MS));
    uint64_t have = sb_available(b);
    assert_true(have >= 6000);

    reader *past = fx_reader(b, RD_PREAD, have + 10, 10, 0);
    reader *timed = fx_reader(b, RD_TIMED, have, 1, 60000);
    reader *straddle = fx_reader(b, RD_PREAD, have - 10, 20, 0);
    reader *w = fx_reader(b, RD_WAIT_END, 0, 0, 0);
    assert_non_null(past);
    assert_non_null(timed);
    assert_non_null(straddle);
    assert_non_null(w);
    assert_true(wait_for_waiters(b, 4, WAIT_LONG_MS));

    sb_cancel(b);
    assert_true(reader_wait(past, WAIT_LONG_MS));
    assert_true(reader_wait(timed, WAIT_LONG_MS));
    assert_true(reader_wait(straddle, WAIT_LONG_MS));
    assert_true(reader_wait(w, WAIT_LONG_MS));
    assert_true(hold_wait_blocked(h, 0)); /* the source still is */

    /* sb_close has to wait for the source; release it only then.  That
       sb_close does not return can only be seen over some time: this wait
       is what is under test, and a slow machine can only make it pass. */
    bg_call *c = fx_close_in_bg(b);
    assert_non_null(c);
    int closed_early = bg_wait(c, SETTLE_MS);
    int closes_early = atomic_load(&h->closes);
    hold_release(h);
    assert_false(closed_early);
    assert_int_equal(closes_early, 0); /* not while its callback runs */
    assert_true(bg_wait(c, WAIT_LONG_MS));
    bg_join(c);
    assert_int_equal(past->ret, -1);
    assert_int_equal(past->err, ECANCELED);
    assert_int_equal(timed->ret, -1);
    assert_int_equal(timed->err, ECANCELED);
    assert_int_equal(straddle->ret, 10);
    assert_int_equal(straddle->bad, 0);
    assert_int_equal(w->ret, -1);
    assert_int_equal(w->err, ECANCELED);
    assert_int_equal(atomic_load(&h->closes), 1);
    assert_int_equal(style == ST_READ ? atomic_load(&cs->closes)
                                      : atomic_load(&it->closes),
                     1);
    reader_join(past);
    reader_join(timed);
    reader_join(straddle);
    reader_join(w);
    assert_back_to(before);
    assert_int_equal(count_dir_entries(dir), 0);
    faults_source++;
}

/* ==== real disk faults ============================================================= */

/* A held stream over tmp_dir, both styles; returns the outcome.  The
   iterator's 10000-byte chunks straddle the memory boundary. */
static const size_t big_pat[] = {2500, 7500};

static outcome disk_run(int style, const char *tmp_dir, uint64_t len,
                        size_t chunk, uint64_t *starts, size_t *nch)
{
    held x;
    held_init(&x, style, len, big_pat, 2);
    *nch = chunk_starts(&x, chunk, big_pat, 2, starts, 512);
    sb_options o = {.mem_limit = S_MEM, .tmp_dir = tmp_dir,
                    .chunk_size = chunk};
    outcome out = run_held(&x, &o, SB__FAULT_ALLOC);
    assert_true(out.opened);
    return out;
}

/* The spill directory cannot hold a file: the stream fails with err at
   the first chunk that has bytes past the memory part, after publishing
   the part of it that went to memory: the first mem_limit bytes stay
   readable whatever the source's chunks (the iterator's straddle). */
static void disk_create_fails(const char *tmp_dir, int err)
{
    for (int style = ST_READ; style <= ST_ITER; style++) {
        uint64_t starts[512];
        size_t nch;
        outcome out = disk_run(style, tmp_dir, S_LEN, S_CHUNK, starts, &nch);
        long long want = kept_before_spill_chunk(starts, nch, S_LEN, 1);
        assert_true(nth_spill_chunk(starts, nch, S_LEN, 1) < S_MEM);
        assert_int_equal(out.err, err);
        assert_int_equal(out.good, (uint64_t)want);
        assert_int_equal(out.good, S_MEM);
        faults_disk++;
    }
}

static void test_spill_dir_read_only_is_erofs(void **state)
{
    (void)state;
    char *dir = fx_tmpfs(MS_RDONLY, NULL);
    if (dir == NULL)
        skip();
    disk_create_fails(dir, EROFS);
    assert_int_equal(count_dir_entries(dir), 0);
}

static void test_spill_dir_missing_straddling_chunk(void **state)
{
    (void)state;
    char *dir = fx_scratch();
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/gone", dir);
    disk_create_fails(path, ENOENT);
    assert_int_equal(count_dir_entries(dir), 0);
}

static void test_spill_disk_full_partial_chunk(void **state)
{
    (void)state;
    char *dir = fx_tmpfs(0, NULL);
    if (dir == NULL)
        skip();
    const long long cap = 64 * 1024;
    for (int style = ST_READ; style <= ST_ITER; style++) {
        uint64_t starts[512];
        size_t nch;
        outcome out = disk_run(style, dir, 200000, 3000, starts, &nch);
        /* It failed once the file had taken all the tmpfs could hold
           (whole pages), inside the chunk that did not fit; whatever part
           of that chunk pwrite(2) accepted was published too, so the file
           holds exactly the published bytes past memory. */
        assert_int_equal(out.err, ENOSPC);
        assert_true(out.good > S_MEM);
        assert_true((long long)(out.good - S_MEM) <= cap);
        assert_true((long long)(out.good - S_MEM) > cap - 4096);
        assert_int_equal(out.spill_fds, 1);
        assert_int_equal(out.spill_bytes, (long long)(out.good - S_MEM));
        faults_disk++;
    }
    assert_int_equal(count_dir_entries(dir), 0);
}

static void test_spill_file_size_limit_partial_chunk(void **state)
{
    (void)state;
    char *dir = fx_scratch();
    struct rlimit old;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    /* The limit is not a multiple of any chunk, so a chunk straddles it.
       Large enough that this process's own output is not affected. */
    const rlim_t limit = 256 * 1024 + 1234;
    if (old.rlim_max != RLIM_INFINITY && old.rlim_max < limit) {
        fprintf(stderr, "RLIMIT_FSIZE hard limit %llu too low: skipping\n",
                (unsigned long long)old.rlim_max);
        skip();
    }
    /* Restored below, or by the teardown if an assertion fails first. */
    fx_signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(fx_rlimit(RLIMIT_FSIZE, limit), 0);
    outcome outs[2];
    uint64_t starts[2][512];
    size_t nch[2];
    for (int style = ST_READ; style <= ST_ITER; style++)
        outs[style] = disk_run(style, dir, 400000, 7000, starts[style],
                               &nch[style]);
    fx_rlimit_restore(RLIMIT_FSIZE);
    fx_signal_restore(SIGXFSZ);

    for (int style = ST_READ; style <= ST_ITER; style++) {
        outcome *out = &outs[style];
        /* A chunk crosses the limit (the limit is not on a boundary). */
        int crossing = 0;
        for (size_t k = 0; k < nch[style]; k++) {
            uint64_t end = k + 1 < nch[style] ? starts[style][k + 1] : 400000;
            crossing += starts[style][k] - S_MEM < limit
                        && end - S_MEM > limit && starts[style][k] >= S_MEM;
        }
        assert_int_equal(crossing, 1);
        /* pwrite(2) wrote up to the limit and the next one failed: every
           byte in the file was published, and none past it. */
        assert_int_equal(out->err, EFBIG);
        assert_int_equal(out->good, S_MEM + (uint64_t)limit);
        assert_int_equal(out->spill_fds, 1);
        assert_int_equal(out->spill_bytes, (long long)limit);
        faults_disk++;
    }
    assert_int_equal(count_dir_entries(dir), 0);
}

int main(void)
{
    start_runtime_threads();
    const struct CMUnitTest tests[] = {
        FAULT_TEST(test_open_alloc_faults),
        FAULT_TEST(test_open_thread_fault),
        FAULT_TEST(test_bounce_buffer_alloc_fault),
        FAULT_TEST(test_spill_create_fault),
        FAULT_TEST(test_spill_write_fault_each_chunk),
        FAULT_TEST(test_spill_read_fault_each_read),
        FAULT_TEST(test_spill_read_fault_sendfile_copy),
        FAULT_TEST(test_spill_read_fault_while_streaming),
        FAULT_TEST_STATE(test_source_fails_at_each_boundary, &st_read),
        FAULT_TEST_STATE(test_source_fails_at_each_boundary, &st_iter),
        FAULT_TEST(test_source_returns_more_than_cap),
        FAULT_TEST_STATE(test_source_blocks_forever, &st_read),
        FAULT_TEST_STATE(test_source_blocks_forever, &st_iter),
        FAULT_TEST(test_spill_dir_read_only_is_erofs),
        FAULT_TEST(test_spill_dir_missing_straddling_chunk),
        FAULT_TEST(test_spill_disk_full_partial_chunk),
        FAULT_TEST(test_spill_file_size_limit_partial_chunk),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    printf("faults injected: %lu (seam %lu, source %lu, disk %lu)\n",
           faults_seam + faults_source + faults_disk, faults_seam,
           faults_source, faults_disk);
    return rc;
}
