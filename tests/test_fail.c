/* SPDX-License-Identifier: MIT */
/*
 * test_fail.c - failing streams: source errors, misbehaving sources,
 * max_size, spill failures (missing directory, not a directory, file size
 * limit, full file system), and blocked readers woken by a failure.
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
#include <sys/resource.h>
#include <unistd.h>

#include "fixture.h"

/*
 * The stream failed with err after exactly `good` bytes: they are all
 * readable, reads that need more get short counts or err, sb_wait_end fails
 * with err and does not write *length.
 */
static void expect_failed_after(sb_buffer *b, uint64_t good, int err)
{
    uint64_t len = 4242;
    assert_fails_with(sb_wait_end(b, &len), err);
    assert_int_equal(len, 4242);
    assert_int_equal(sb_available(b), good);
    if (good > 0) {
        assert_int_equal(check_read(b, 0, (size_t)good, (ssize_t)good), 0);
        assert_int_equal(check_read(b, good - 1, 100, 1), 0);
        assert_int_equal(check_read(b, 0, (size_t)good + 1000, (ssize_t)good),
                         0);
    }
    assert_int_equal(check_read_err(b, good, 1, err), 0);
    assert_int_equal(check_read_err(b, good + 5000, 10, err), 0);
    /* n == 0 still returns 0. */
    unsigned char c;
    assert_int_equal(sb_pread(b, &c, 0, good + 1), 0);
}

/* ---- the source fails ------------------------------------------------------------ */

static void test_source_eio_midstream(void **state)
{
    (void)state;
    chunk_src *s = fx_chunk(100000, NULL, 0);
    s->fail_at = 7000;
    s->fail_err = EIO;
    sb_options o = {.mem_limit = 4096, .chunk_size = 1000};
    sb_buffer *b = fx_buffer(open_chunk(s, &o));
    assert_non_null(b);
    expect_failed_after(b, 7000, EIO);
    assert_int_equal(check_read(b, 4000, 5000, 3000), 0); /* across boundary */
    fx_close(b);
    assert_int_equal(atomic_load(&s->closes), 1);
}

static void test_source_other_errnos(void **state)
{
    (void)state;
    static const int errs[] = {ECONNRESET, EPROTO, EACCES, ENOMEM, ETIMEDOUT};
    for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++) {
        chunk_src *s = fx_chunk(100000, NULL, 0);
        s->fail_at = 1000 + 3000 * i;
        s->fail_err = errs[i];
        sb_options o = {.mem_limit = 4096, .chunk_size = 700};
        sb_buffer *b = fx_buffer(open_chunk(s, &o));
        assert_non_null(b);
        expect_failed_after(b, s->fail_at, errs[i]);
    }
}

static void test_source_fails_at_once(void **state)
{
    (void)state;
    chunk_src *s = fx_chunk(100000, NULL, 0);
    s->fail_at = 0;
    s->fail_err = ECONNREFUSED;
    sb_buffer *b = fx_buffer(open_chunk(s, NULL));
    assert_non_null(b);
    expect_failed_after(b, 0, ECONNREFUSED);
}

static void test_iterator_negative_errno(void **state)
{
    (void)state;
    static const size_t pat[] = {0, 1000, 333, 0};
    iter_src *s = fx_iter(100000, pat, 4);
    s->fail_at = 5000;
    s->fail_err = EBADMSG;
    sb_options o = {.mem_limit = 4096};
    sb_buffer *b = fx_buffer(open_iter(s, &o));
    assert_non_null(b);
    expect_failed_after(b, 5000, EBADMSG);
    fx_close(b);
    assert_int_equal(atomic_load(&s->closes), 1);
}

/* A read source that behaves for `good` bytes, then returns more than cap. */
typedef struct greedy {
    uint64_t good;
    uint64_t pos;
    ssize_t extra; /* returned: cap + extra, or SSIZE_MAX when extra < 0 */
} greedy;

static ssize_t greedy_read(void *ctx, void *buf, size_t cap)
{
    greedy *gr = ctx;
    if (gr->pos < gr->good) {
        size_t n = gr->good - gr->pos < cap ? (size_t)(gr->good - gr->pos)
                                            : cap;
        gen_fill(buf, n, gr->pos);
        gr->pos += n;
        return (ssize_t)n;
    }
    if (gr->extra < 0)
        return SSIZE_MAX;
    memset(buf, 0xEE, cap); /* only what it may write */
    return (ssize_t)cap + gr->extra;
}

static void test_read_more_than_cap_is_eio(void **state)
{
    (void)state;
    static const ssize_t extras[] = {1, 1000, -1};
    for (size_t i = 0; i < 3; i++) {
        greedy *gr = fx_calloc(sizeof *gr);
        gr->good = 100;
        gr->extra = extras[i];
        sb_source src = {.read = greedy_read, .ctx = gr};
        sb_options o = {.mem_limit = 4096, .chunk_size = 500};
        sb_buffer *b = fx_buffer(sb_open(&src, &o));
        assert_non_null(b);
        uint64_t len = 4242;
        assert_fails_with(sb_wait_end(b, &len), EIO);
        assert_int_equal(len, 4242);
        /* The good bytes stay; nothing past them can be read. */
        assert_int_equal(check_read(b, 0, 100, 100), 0);
        assert_int_equal(check_read_err(b, 100 + 500 + 1, 10, EIO), 0);
        assert_int_equal(check_read_err(b, 1000000, 10, EIO), 0);
    }
}

static void test_next_null_chunk_with_len_is_eio(void **state)
{
    (void)state;
    static const size_t pat[] = {700};
    iter_src *s = fx_iter(100000, pat, 1);
    s->fail_at = 2100;
    s->fail_err = 1; /* unused: null_chunk returns NULL with len 16 */
    s->null_chunk = 1;
    sb_buffer *b = fx_buffer(open_iter(s, NULL));
    assert_non_null(b);
    expect_failed_after(b, 2100, EIO);
}

/* ---- max_size ------------------------------------------------------------------- */

static void test_max_size_exact_ends_normally(void **state)
{
    (void)state;
    static const size_t pat[] = {3000};
    chunk_src *s = fx_chunk(10000, pat, 1);
    sb_options o = {.mem_limit = 4096, .max_size = 10000};
    sb_buffer *b = fx_buffer(open_chunk(s, &o));
    assert_non_null(b);
    assert_int_equal(check_stream(b, 10000), 0);

    iter_src *it = fx_iter(10000, pat, 1);
    b = fx_buffer(open_iter(it, &o));
    assert_non_null(b);
    assert_int_equal(check_stream(b, 10000), 0);
}

static void test_max_size_plus_one_is_efbig(void **state)
{
    (void)state;
    /* One byte too many, delivered on its own. */
    static const size_t one[] = {1};
    sb_options o = {.mem_limit = 4096, .max_size = 10000};
    sb_buffer *b = fx_buffer(open_chunk(fx_chunk(10001, one, 1), &o));
    assert_non_null(b);
    expect_failed_after(b, 10000, EFBIG);

    /* In a chunk that straddles max_size: its first part is kept. */
    static const size_t pat[] = {3000};
    b = fx_buffer(open_chunk(fx_chunk(10001, pat, 1), &o));
    assert_non_null(b);
    expect_failed_after(b, 10000, EFBIG);

    /* The same from an iterator with big chunks. */
    b = fx_buffer(open_iter(fx_iter(50000, pat, 1), &o));
    assert_non_null(b);
    expect_failed_after(b, 10000, EFBIG);

    /* max_size below mem_limit. */
    sb_options small = {.max_size = 777};
    b = fx_buffer(open_chunk(fx_chunk(CHUNK_FOREVER, NULL, 0), &small));
    assert_non_null(b);
    expect_failed_after(b, 777, EFBIG);
}

/* ---- spill failures ------------------------------------------------------------- */

static void test_spill_dir_missing_is_enoent(void **state)
{
    (void)state;
    char *dir = fx_scratch();
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/does-not-exist", dir);
    sb_options o = {.mem_limit = 4096, .tmp_dir = path};
    sb_buffer *b = fx_buffer(open_chunk(fx_chunk(100000, NULL, 0), &o));
    assert_non_null(b);
    expect_failed_after(b, 4096, ENOENT);
    assert_int_equal(check_read(b, 4000, 200, 96), 0);
    fx_close(b);
    assert_int_equal(count_dir_entries(dir), 0);
}

static void test_spill_dir_is_a_file_is_enotdir(void **state)
{
    (void)state;
    char *dir = fx_scratch();
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/plainfile", dir);
    int fd = open(path, O_CREAT | O_WRONLY | O_EXCL, 0600);
    assert_true(fd >= 0);
    close(fd);
    sb_options o = {.mem_limit = 4096, .tmp_dir = path};
    sb_buffer *b = fx_buffer(open_chunk(fx_chunk(100000, NULL, 0), &o));
    assert_non_null(b);
    expect_failed_after(b, 4096, ENOTDIR);
    fx_close(b);
    assert_int_equal(count_dir_entries(dir), 1); /* just plainfile */
}

static void test_spill_file_size_limit_is_efbig(void **state)
{
    (void)state;
    char *dir = fx_scratch();
    struct rlimit old;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    /* Large enough that this process's own log output is not affected. */
    rlim_t limit = 256 * 1024;
    if (old.rlim_max != RLIM_INFINITY && old.rlim_max < limit)
        limit = old.rlim_max;
    /* Restored below, or by the teardown if an assertion fails first. */
    fx_signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(fx_rlimit(RLIMIT_FSIZE, limit), 0);

    sb_options o = {.mem_limit = 4096, .tmp_dir = dir, .chunk_size = 10000};
    sb_buffer *b = fx_buffer(open_chunk(fx_chunk(4u << 20, NULL, 0), &o));
    assert_non_null(b);
    uint64_t len = 4242;
    errno = 0;
    int rc = sb_wait_end(b, &len);
    int err = errno;
    uint64_t avail = sb_available(b);
    int head = check_read(b, 0, 4096 + 100000, 4096 + 100000);
    int tail = check_read_err(b, 4096 + limit + 1, 10, EFBIG);
    fx_close(b);
    fx_rlimit_restore(RLIMIT_FSIZE);
    fx_signal_restore(SIGXFSZ);

    assert_int_equal(rc, -1);
    assert_int_equal(err, EFBIG);
    assert_int_equal(len, 4242);
    /* Everything the file could hold is there, nothing more. */
    assert_true(avail >= 4096 + 100000);
    assert_true(avail <= 4096 + limit);
    assert_int_equal(head, 0);
    assert_int_equal(tail, 0);
}

static void test_spill_file_system_full_is_enospc(void **state)
{
    (void)state;
    char *dir = fx_tmpfs(0, NULL);
    if (dir == NULL)
        skip();
    sb_options o = {.mem_limit = 4096, .tmp_dir = dir, .chunk_size = 8192};
    sb_buffer *b = fx_buffer(open_chunk(fx_chunk(4u << 20, NULL, 0), &o));
    assert_non_null(b);
    uint64_t len = 4242;
    errno = 0;
    int rc = sb_wait_end(b, &len);
    int err = errno;
    uint64_t avail = sb_available(b);
    int head = check_read(b, 0, 4096, 4096);
    int tail = check_read_err(b, 1u << 20, 10, ENOSPC);
    fx_close(b);
    int entries = count_dir_entries(dir);

    assert_int_equal(rc, -1);
    assert_int_equal(err, ENOSPC);
    assert_int_equal(len, 4242);
    assert_true(avail >= 4096);
    assert_true(avail <= 4096 + 65536);
    assert_int_equal(head, 0);
    assert_int_equal(tail, 0);
    assert_int_equal(entries, 0);
}

/* ---- a failure wakes blocked readers ----------------------------------------------- */

static void test_failure_wakes_blocked_readers(void **state)
{
    (void)state;
    gate_src *g = fx_gate();
    sb_options o = {.mem_limit = 4096};
    sb_buffer *b = fx_buffer(open_gate(g, &o));
    assert_non_null(b);
    gate_allow(g, 5000);
    assert_true(wait_available(b, 5000, WAIT_LONG_MS));

    reader *past[6];
    for (int i = 0; i < 6; i++) {
        past[i] = fx_reader(b, RD_PREAD, 5000 + (uint64_t)i * 3000, 100, 0);
        assert_non_null(past[i]);
    }
    reader *straddle = fx_reader(b, RD_PREAD, 4900, 200, 0);
    reader *inside = fx_reader(b, RD_PREAD, 100, 4000, 0);
    reader *w = fx_reader(b, RD_WAIT_END, 0, 0, 0);
    assert_non_null(straddle);
    assert_non_null(inside);
    assert_non_null(w);
    assert_true(reader_wait(inside, WAIT_LONG_MS));
    /* All but inside wait in the library for what the gate holds back. */
    assert_true(wait_for_waiters(b, 8, WAIT_LONG_MS));
    int early = reader_done(straddle) || reader_done(w);
    for (int i = 0; i < 6; i++)
        early += reader_done(past[i]);

    double t0 = now_ms();
    gate_fail(g, EIO);
    int late = !reader_wait(straddle, WAIT_LONG_MS) ||
               !reader_wait(w, WAIT_LONG_MS);
    for (int i = 0; i < 6; i++)
        late += !reader_wait(past[i], WAIT_LONG_MS);
    double dt = now_ms() - t0;
    for (int i = 0; i < 6; i++)
        reader_join(past[i]);
    reader_join(straddle);
    reader_join(inside);
    reader_join(w);

    assert_int_equal(inside->ret, 4000);
    assert_int_equal(inside->bad, 0);
    assert_int_equal(early, 0);
    assert_int_equal(late, 0);
    /* late == 0 lets each of the eight waits take up to WAIT_LONG_MS;
       this bound on all of them together says the failure woke them. */
    assert_true(dt < 10000.0);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(past[i]->ret, -1);
        assert_int_equal(past[i]->err, EIO);
    }
    assert_int_equal(straddle->ret, 100);
    assert_int_equal(straddle->bad, 0);
    assert_int_equal(w->ret, -1);
    assert_int_equal(w->err, EIO);
}

static void test_spill_failure_wakes_blocked_readers(void **state)
{
    (void)state;
    gate_src *g = fx_gate();
    sb_options o = {.mem_limit = 4096, .tmp_dir = "/nonexistent/sbtest/dir"};
    sb_buffer *b = fx_buffer(open_gate(g, &o));
    assert_non_null(b);
    gate_allow(g, 4000);
    assert_true(wait_available(b, 4000, WAIT_LONG_MS));
    reader *straddle = fx_reader(b, RD_PREAD, 4000, 200, 0);
    reader *past = fx_reader(b, RD_PREAD, 6000, 10, 0);
    assert_non_null(straddle);
    assert_non_null(past);
    assert_true(wait_for_waiters(b, 2, WAIT_LONG_MS));
    assert_false(reader_done(straddle) || reader_done(past));
    gate_allow(g, 100000);
    assert_true(reader_wait(straddle, WAIT_LONG_MS));
    assert_true(reader_wait(past, WAIT_LONG_MS));
    reader_join(straddle);
    reader_join(past);
    assert_int_equal(straddle->ret, 96);
    assert_int_equal(straddle->bad, 0);
    assert_int_equal(past->ret, -1);
    assert_int_equal(past->err, ENOENT);
    expect_failed_after(b, 4096, ENOENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        FX_TEST(test_source_eio_midstream),
        FX_TEST(test_source_other_errnos),
        FX_TEST(test_source_fails_at_once),
        FX_TEST(test_iterator_negative_errno),
        FX_TEST(test_read_more_than_cap_is_eio),
        FX_TEST(test_next_null_chunk_with_len_is_eio),
        FX_TEST(test_max_size_exact_ends_normally),
        FX_TEST(test_max_size_plus_one_is_efbig),
        FX_TEST(test_spill_dir_missing_is_enoent),
        FX_TEST(test_spill_dir_is_a_file_is_enotdir),
        FX_TEST(test_spill_file_size_limit_is_efbig),
        FX_TEST(test_spill_file_system_full_is_enospc),
        FX_TEST(test_failure_wakes_blocked_readers),
        FX_TEST(test_spill_failure_wakes_blocked_readers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
