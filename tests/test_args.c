/* SPDX-License-Identifier: MIT */
/*
 * test_args.c - argument checking: every EINVAL the header documents, and
 * that a failed open leaves nothing behind (no fd, no thread, no close
 * callback).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"

/* Exactly as many fds and threads as in a: a failed open starts no thread
   at all, so there is none to wait for. */
static void assert_same(snapshot a)
{
    snapshot b = snap();
    assert_int_equal(b.fds, a.fds);
    assert_int_equal(b.threads, a.threads);
}

/* sb_open(src, o) fails with EINVAL, leaves nothing and calls nothing. */
static void expect_open_einval(const sb_source *src, const sb_options *o)
{
    snapshot before = snap();
    assert_null_with(fx_buffer(sb_open(src, o)), EINVAL);
    assert_same(before);
}

/* ---- sb_open ---------------------------------------------------------------------- */

static void test_open_null_src(void **state)
{
    (void)state;
    expect_open_einval(NULL, NULL);
    sb_options o = {.mem_limit = 4096};
    expect_open_einval(NULL, &o);
}

static void test_open_both_read_and_next(void **state)
{
    (void)state;
    chunk_src *s = fx_chunk(100, NULL, 0);
    iter_src *it = fx_iter(100, NULL, 0);
    sb_source src = chunk_source(s);
    src.next = iter_source(it).next;
    expect_open_einval(&src, NULL);
    assert_int_equal(atomic_load(&s->calls), 0);
    assert_int_equal(atomic_load(&s->closes), 0);
    assert_int_equal(atomic_load(&it->calls), 0);
}

static void test_open_neither_read_nor_next(void **state)
{
    (void)state;
    chunk_src *s = fx_chunk(100, NULL, 0);
    sb_source src = chunk_source(s);
    src.read = NULL;
    expect_open_einval(&src, NULL);
    assert_int_equal(atomic_load(&s->closes), 0);
    sb_source empty;
    memset(&empty, 0, sizeof empty);
    expect_open_einval(&empty, NULL);
}

static void test_open_bad_options(void **state)
{
    (void)state;
    chunk_src *s = fx_chunk(100, NULL, 0);
    sb_source src = chunk_source(s);

    sb_options o = {.tmp_dir = ""};
    expect_open_einval(&src, &o);

    sb_options cs = {.chunk_size = (size_t)SSIZE_MAX + 1};
    expect_open_einval(&src, &cs);
    cs.chunk_size = SIZE_MAX;
    expect_open_einval(&src, &cs);

    sb_options ml = {.mem_limit = (size_t)SSIZE_MAX + 1};
    expect_open_einval(&src, &ml);
    ml.mem_limit = SIZE_MAX;
    expect_open_einval(&src, &ml);

    sb_options lh = {.max_size = 1000, .length_hint = 1001};
    expect_open_einval(&src, &lh);

    assert_int_equal(atomic_load(&s->calls), 0);
    assert_int_equal(atomic_load(&s->closes), 0);
}

static void test_open_valid_option_edges(void **state)
{
    (void)state;
    /* length_hint == max_size, and a hint with no max_size, are fine. */
    static const sb_options ok[] = {
        {.max_size = 1000, .length_hint = 1000},
        {.length_hint = UINT64_MAX},
        {.max_size = 1000, .length_hint = 0},
        {.tmp_dir = "/tmp"},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        chunk_src *s = fx_chunk(1000, NULL, 0);
        sb_buffer *b = fx_buffer(open_chunk(s, &ok[i]));
        assert_non_null(b);
        assert_int_equal(check_stream(b, 1000), 0);
    }
    /* NULL and all-zero options mean the defaults. */
    chunk_src *s = fx_chunk(1000, NULL, 0);
    sb_options zero;
    memset(&zero, 0, sizeof zero);
    sb_buffer *b = fx_buffer(open_chunk(s, &zero));
    assert_non_null(b);
    assert_int_equal(check_stream(b, 1000), 0);
}

/* ---- sb_open_mem ------------------------------------------------------------------ */

static void test_open_mem_args(void **state)
{
    (void)state;
    snapshot before = snap();
    assert_null_with(fx_buffer(sb_open_mem(NULL, 5, NULL)), EINVAL);
    unsigned char data[10];
    gen_fill(data, sizeof data, 0);
    sb_options bad[] = {
        {.tmp_dir = ""},
        {.chunk_size = (size_t)SSIZE_MAX + 1},
        {.mem_limit = (size_t)SSIZE_MAX + 1},
        {.max_size = 5, .length_hint = 6},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_null_with(fx_buffer(sb_open_mem(data, sizeof data, &bad[i])),
                         EINVAL);
    assert_same(before);
}

/* ---- no thread: EAGAIN ---------------------------------------------------------- */

static void *noop_thread(void *arg)
{
    return arg;
}

/* The default thread attributes as they were, while a test has changed
   them: every later pthread_create, the fixture's included, needs them. */
static pthread_attr_t saved_attr;

static void restore_default_attr(void *attr)
{
    pthread_setattr_default_np(attr);
    pthread_attr_destroy(attr);
}

static void test_open_without_thread_is_eagain(void **state)
{
    (void)state;
    /* Made before the attributes change: a pipe, the source, the data. */
    int p[2];
    fx_pipe(p, 0);
    chunk_src *s = fx_chunk(100, NULL, 0);
    unsigned char data[10];
    gen_fill(data, sizeof data, 0);
    snapshot before = snap();

    /* Make every new thread ask for a 1 TiB stack, which cannot be had. */
    pthread_attr_t huge;
    assert_int_equal(pthread_getattr_default_np(&saved_attr), 0);
    fx_track(&saved_attr, NULL, restore_default_attr);
    assert_int_equal(pthread_attr_init(&huge), 0);
    int sized = pthread_attr_setstacksize(&huge, (size_t)1 << 40);
    int set = sized == 0 ? pthread_setattr_default_np(&huge) : -1;
    pthread_attr_destroy(&huge);
    assert_int_equal(sized, 0);
    assert_int_equal(set, 0);
    pthread_t t;
    int probe = pthread_create(&t, NULL, noop_thread, NULL);
    if (probe == 0)
        pthread_join(t, NULL);
    if (probe != EAGAIN) {
        /* valgrind, for one, answers EINVAL: the refusal this test needs
           to provoke is not there to be had. */
        fprintf(stderr, "pthread_create with a 1 TiB stack gave %s, not "
                        "EAGAIN: skipping\n", strerror(probe));
        skip();
    }
    errno = 0;
    sb_buffer *b = fx_buffer(open_chunk(s, NULL));
    int err = errno;
    errno = 0;
    sb_buffer *bf = fx_buffer(sb_open_fd(p[0], NULL));
    int err_fd = errno;
    snapshot after = snap();
    /* sb_open_mem needs no thread, so it still works. */
    sb_buffer *bm = fx_buffer(sb_open_mem(data, sizeof data, NULL));
    int mem_ok = bm != NULL && check_stream(bm, sizeof data) == 0;
    fx_untrack(&saved_attr);
    restore_default_attr(&saved_attr);

    assert_null(b);
    assert_int_equal(err, EAGAIN);
    assert_null(bf);
    assert_int_equal(err_fd, EAGAIN);
    assert_int_equal(after.fds, before.fds);
    assert_int_equal(after.threads, before.threads);
    assert_int_equal(atomic_load(&s->calls), 0);
    assert_int_equal(atomic_load(&s->closes), 0);
    assert_true(mem_ok);
}

/* ---- sb_pread / sb_pread_timed ------------------------------------------------------ */

static void test_pread_null_args(void **state)
{
    (void)state;
    unsigned char data[100];
    gen_fill(data, sizeof data, 0);
    sb_buffer *b = fx_buffer(sb_open_mem(data, sizeof data, NULL));
    assert_non_null(b);
    unsigned char buf[10];
    assert_fails_with(sb_pread(NULL, buf, 10, 0), EINVAL);
    assert_fails_with(sb_pread(b, NULL, 10, 0), EINVAL);
    assert_fails_with(sb_pread(NULL, NULL, 10, 0), EINVAL);
    assert_fails_with(sb_pread_timed(NULL, buf, 10, 0, 0), EINVAL);
    assert_fails_with(sb_pread_timed(b, NULL, 10, 0, -1), EINVAL);
    /* "n == 0 returns 0 at once (after the argument checks)". */
    assert_fails_with(sb_pread(b, NULL, 0, 0), EINVAL);
    assert_fails_with(sb_pread(NULL, buf, 0, 0), EINVAL);
    /* The valid call still works. */
    assert_int_equal(sb_pread(b, buf, 10, 0), 10);
    assert_int_equal(gen_mismatches(buf, 10, 0), 0);
}

static void test_pread_n_too_big(void **state)
{
    (void)state;
    unsigned char data[100];
    gen_fill(data, sizeof data, 0);
    sb_buffer *b = fx_buffer(sb_open_mem(data, sizeof data, NULL));
    assert_non_null(b);
    unsigned char buf[16];
    memset(buf, 0x5A, sizeof buf);
    /* buf is small, but n > SSIZE_MAX must be refused before any copy. */
    assert_fails_with(sb_pread(b, buf, (size_t)SSIZE_MAX + 1, 0), EINVAL);
    assert_fails_with(sb_pread(b, buf, SIZE_MAX, 0), EINVAL);
    assert_fails_with(sb_pread_timed(b, buf, (size_t)SSIZE_MAX + 1, 0, 0),
                      EINVAL);
    for (size_t i = 0; i < sizeof buf; i++)
        assert_int_equal(buf[i], 0x5A);
}

static void test_pread_offset_overflow(void **state)
{
    (void)state;
    /* On a stream that is still open, so nothing else can answer first. */
    gate_src *g = fx_gate();
    sb_buffer *b = fx_buffer(open_gate(g, NULL));
    assert_non_null(b);
    unsigned char buf[8];
    assert_fails_with(sb_pread(b, buf, 4, UINT64_MAX - 1), EINVAL);
    assert_fails_with(sb_pread(b, buf, 1, UINT64_MAX), EINVAL);
    assert_fails_with(sb_pread(b, buf, 4, UINT64_MAX - 3), EINVAL);
    assert_fails_with(sb_pread_timed(b, buf, 8, UINT64_MAX - 2, -1), EINVAL);
    /* No overflow: off + n == UINT64_MAX; nothing is there yet. */
    assert_fails_with(sb_pread_timed(b, buf, 4, UINT64_MAX - 4, 0), ETIMEDOUT);
    gate_end(g);
    /* And after the end, the same overflowing reads still fail. */
    assert_int_equal(sb_wait_end(b, NULL), 0);
    assert_fails_with(sb_pread(b, buf, 4, UINT64_MAX - 1), EINVAL);
    assert_int_equal(sb_pread(b, buf, 0, UINT64_MAX), 0);
    assert_int_equal(sb_pread(b, buf, 4, UINT64_MAX - 4), 0);
}

/* ---- sb_wait_end / sb_available -------------------------------------------------------- */

static void test_wait_end_null(void **state)
{
    (void)state;
    uint64_t len = 4242;
    assert_fails_with(sb_wait_end(NULL, &len), EINVAL);
    assert_int_equal(len, 4242);
    assert_fails_with(sb_wait_end(NULL, NULL), EINVAL);
}

static void test_available_null(void **state)
{
    (void)state;
    errno = 0;
    assert_int_equal(sb_available(NULL), 0);
    assert_int_equal(errno, EINVAL);
}

/* ---- a failed open leaves nothing behind ----------------------------------------------- */

static void test_failed_opens_leave_nothing(void **state)
{
    (void)state;
    int p[2];
    fx_pipe(p, 0);
    chunk_src *s = fx_chunk(100, NULL, 0);
    sb_source src = chunk_source(s);
    sb_options bad = {.max_size = 1, .length_hint = 2};
    snapshot before = snap();
    for (int i = 0; i < 50; i++) {
        assert_null(fx_buffer(sb_open(NULL, NULL)));
        assert_null(fx_buffer(sb_open(&src, &bad)));
        assert_null(fx_buffer(sb_open_fd(-1, NULL)));
        assert_null(fx_buffer(sb_open_fd(p[0], &bad)));
        assert_null(fx_buffer(sb_open_fd(p[1], NULL)));
        assert_null(fx_buffer(sb_open_mem(NULL, 1, NULL)));
    }
    assert_same(before);
    assert_int_equal(atomic_load(&s->calls), 0);
    assert_int_equal(atomic_load(&s->closes), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        FX_TEST(test_open_null_src),
        FX_TEST(test_open_both_read_and_next),
        FX_TEST(test_open_neither_read_nor_next),
        FX_TEST(test_open_bad_options),
        FX_TEST(test_open_valid_option_edges),
        FX_TEST(test_open_mem_args),
        FX_TEST(test_open_without_thread_is_eagain),
        FX_TEST(test_pread_null_args),
        FX_TEST(test_pread_n_too_big),
        FX_TEST(test_pread_offset_overflow),
        FX_TEST(test_wait_end_null),
        FX_TEST(test_available_null),
        FX_TEST(test_failed_opens_leave_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
