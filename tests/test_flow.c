/* SPDX-License-Identifier: MIT */
/*
 * test_flow.c - lazy pull (read_ahead): the producer pulls only what
 * readers ask for plus read_ahead, resumes on demand, in pull and push
 * mode; what counts as demand; the stats that show it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "stream.h"

#define KB ((uint64_t)1024)

/* Sanitizers slow every thread down; "promptly" scales with them. */
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define PROMPT_MS 500.0
#else
#define PROMPT_MS 100.0
#endif

/* With no reader the producer pulls read_ahead (rounded up to a chunk)
   and pauses; it resumes for a read past that and pauses again. */
static void test_lazy_pull_bounds_what_is_pulled(void **state)
{
    (void)state;
    count_src *s = fx_count(COUNT_FOREVER, 0);
    sb_options o = {.read_ahead = 64 * KB, .chunk_size = 16 * KB,
                    .mem_limit = 4 * KB * KB};
    sb_buffer *b = open_count(s, &o);
    assert_non_null(b);
    assert_true(wait_for_pauses(b, 1, WAIT_LONG_MS));
    sb_stats st = stats(b);
    assert_int_equal(st.demand, 0);
    assert_true(st.filled >= 64 * KB);
    assert_true(st.filled < 64 * KB + 16 * KB);
    assert_int_equal(atomic_load(&s->pulled), st.filled);

    /* A read past it: the producer resumes, the read gets its bytes. */
    unsigned char buf[1024];
    assert_int_equal(sb_pread(b, buf, sizeof buf, 200 * KB), sizeof buf);
    assert_int_equal(pat_mismatches(buf, sizeof buf, 200 * KB), 0);
    assert_true(wait_for_pauses(b, 2, WAIT_LONG_MS));
    st = stats(b);
    assert_int_equal(st.demand, 201 * KB);
    assert_true(st.filled >= 201 * KB + 64 * KB);
    assert_true(st.filled < 201 * KB + 64 * KB + 16 * KB);
    assert_int_equal(atomic_load(&s->pulled), st.filled);
    assert_int_equal(st.pauses, 2);
    assert_true(st.paused_ns > 0);

    /* Reads of filled bytes do not move the demand. */
    assert_int_equal(sb_pread(b, buf, sizeof buf, 10 * KB), sizeof buf);
    assert_int_equal(stats(b).demand, 201 * KB);
}

/*
 * The Python package's own example reads 1 KiB at 0 and 1 KiB at 20 KiB of
 * a 2.5 GiB ISO.  With read_ahead the stream pulls at most 20 KiB + 1 KiB
 * + read_ahead + chunk_size of it.
 */
static void test_seed_example_pulls_little(void **state)
{
    (void)state;
    const uint64_t iso = 2560 * KB * KB;
    static const uint64_t aheads[] = {1, 4 * KB, 256 * KB};
    for (size_t i = 0; i < 3; i++) {
        count_src *s = fx_count(iso, 0);
        sb_options o = {.read_ahead = aheads[i]};
        sb_buffer *b = open_count(s, &o);
        assert_non_null(b);
        unsigned char head[1024], tail[1024];
        assert_int_equal(sb_pread(b, head, sizeof head, 0), sizeof head);
        assert_int_equal(sb_pread(b, tail, sizeof tail, 20 * KB), sizeof tail);
        assert_int_equal(pat_mismatches(head, sizeof head, 0), 0);
        assert_int_equal(pat_mismatches(tail, sizeof tail, 20 * KB), 0);
        /* Paused for good now: nothing else asks. */
        assert_true(wait_for_paused(b, WAIT_LONG_MS));
        sb_stats st = stats(b);
        assert_int_equal(st.paused, 1);
        uint64_t bound = 20 * KB + 1 * KB + aheads[i] + 64 * KB;
        if (atomic_load(&s->pulled) > bound)
            fprintf(stderr, "read_ahead %llu: pulled %llu > %llu\n",
                    (unsigned long long)aheads[i],
                    (unsigned long long)atomic_load(&s->pulled),
                    (unsigned long long)bound);
        assert_true(atomic_load(&s->pulled) <= bound);
        assert_int_equal(st.filled, atomic_load(&s->pulled));
    }
}

/* A poll with timeout 0 did not wait, but it asked: the producer pulls for
   it, so polling gets the bytes in the end. */
static void test_zero_timeout_poll_raises_demand(void **state)
{
    (void)state;
    count_src *s = fx_count(COUNT_FOREVER, 0);
    sb_options o = {.read_ahead = 1, .chunk_size = 4 * KB};
    sb_buffer *b = open_count(s, &o);
    assert_non_null(b);
    assert_true(wait_for_pauses(b, 1, WAIT_LONG_MS));
    unsigned char buf[100];
    assert_fails_with(sb_pread_timed(b, buf, sizeof buf, 1000 * KB, 0),
                      ETIMEDOUT);
    assert_int_equal(stats(b).demand, 1000 * KB + sizeof buf);
    assert_true(wait_available(b, 1000 * KB + sizeof buf, WAIT_LONG_MS));
    assert_int_equal(sb_pread_timed(b, buf, sizeof buf, 1000 * KB, 0),
                     sizeof buf);
    assert_int_equal(pat_mismatches(buf, sizeof buf, 1000 * KB), 0);
}

/* sb_wait_end demands everything; a reader's floor is demand too. */
static void test_wait_end_and_reader_floor_are_demand(void **state)
{
    (void)state;
    count_src *s = fx_count(3 * KB * KB, 0);
    sb_options o = {.read_ahead = 4 * KB, .mem_limit = 256 * KB};
    sb_buffer *b = open_count(s, &o);
    assert_non_null(b);
    assert_true(wait_for_pauses(b, 1, WAIT_LONG_MS));
    sb_reader *r = sb_reader_open(b, 500 * KB);
    assert_non_null(r);
    assert_true(wait_available(b, 500 * KB + 4 * KB, WAIT_LONG_MS));
    assert_int_equal(stats(b).demand, 500 * KB);
    sb_reader_close(r);

    uint64_t len = 0;
    assert_int_equal(sb_wait_end(b, &len), 0);
    assert_int_equal(len, 3 * KB * KB);
    assert_int_equal(stats(b).demand, UINT64_MAX);
    unsigned char buf[4096];
    assert_int_equal(sb_pread(b, buf, sizeof buf, len - sizeof buf),
                     sizeof buf);
    assert_int_equal(pat_mismatches(buf, sizeof buf, len - sizeof buf), 0);
}

/* The bytes do not depend on read_ahead: many readers over a lazy stream
   get what an eager one gives. */
static void test_lazy_stream_same_bytes(void **state)
{
    (void)state;
    static const uint64_t aheads[] = {1, 3000, 64 * KB};
    for (size_t i = 0; i < 3; i++) {
        count_src *s = fx_count(2 * KB * KB, 777);
        sb_options o = {.read_ahead = aheads[i], .mem_limit = 300 * KB,
                        .chunk_size = 5000, .tmp_dir = fx_scratch()};
        sb_buffer *b = open_count(s, &o);
        assert_non_null(b);
        follower *f[4];
        for (int k = 0; k < 4; k++) {
            f[k] = fx_follower(b, (uint64_t)k * 300 * KB, UINT64_MAX,
                               (size_t)(4096 + 1000 * k));
            assert_non_null(f[k]);
        }
        for (int k = 0; k < 4; k++)
            assert_int_equal(follower_start(f[k]), 0);
        for (int k = 0; k < 4; k++) {
            assert_true(follower_join(f[k], WAIT_LONG_MS));
            assert_int_equal(f[k]->err, 0);
            assert_true(f[k]->at_end);
            assert_int_equal(f[k]->bad, 0);
            assert_int_equal(f[k]->checked, 2 * KB * KB - (uint64_t)k * 300 * KB);
        }
    }
}

/* ---- push mode: sb_write blocks like a write to a full pipe ------------------------- */

static void test_write_blocks_until_demand(void **state)
{
    (void)state;
    sb_options o = {.read_ahead = 8 * KB, .chunk_size = 4 * KB};
    sb_buffer *b = fx_buffer(sb_open_writer(&o));
    assert_non_null(b);
    write_call *w = fx_calloc(sizeof *w);
    *w = (write_call){.b = b, .len = 64 * KB};
    bg_call *bg = fx_bg(do_write, w);
    assert_non_null(bg);
    /* It stores read_ahead, then blocks. */
    assert_true(wait_for_pauses(b, 1, WAIT_LONG_MS));
    assert_false(bg_wait(bg, 0));
    assert_int_equal(sb_available(b), 8 * KB);

    /* A reader asks for the last byte: the whole write goes through. */
    unsigned char c;
    assert_int_equal(sb_pread(b, &c, 1, 64 * KB - 1), 1);
    assert_true(bg_wait(bg, WAIT_LONG_MS));
    assert_int_equal(w->ret, 64 * KB);
    assert_int_equal(sb_finish(b, 0), 0);
    uint64_t len;
    assert_int_equal(sb_wait_end(b, &len), 0);
    assert_int_equal(len, 64 * KB);
    unsigned char *all = fx_calloc(64 * KB);
    assert_int_equal(sb_pread(b, all, 64 * KB, 0), 64 * KB);
    assert_int_equal(pat_mismatches(all, 64 * KB, 0), 0);
}

static void test_cancel_wakes_blocked_writer(void **state)
{
    (void)state;
    sb_options o = {.read_ahead = 1, .chunk_size = 1000};
    sb_buffer *b = fx_buffer(sb_open_writer(&o));
    assert_non_null(b);
    write_call *w = fx_calloc(sizeof *w);
    *w = (write_call){.b = b, .len = 10000};
    bg_call *bg = fx_bg(do_write, w);
    assert_non_null(bg);
    assert_true(wait_for_pauses(b, 1, WAIT_LONG_MS));
    assert_false(bg_wait(bg, 0));
    double t0 = now_ms();
    sb_cancel(b);
    assert_true(bg_wait(bg, WAIT_LONG_MS));
    assert_int_equal(w->ret, -1);
    assert_int_equal(w->err, ECANCELED);
    assert_true(w->returned_ms - t0 < PROMPT_MS);
    /* What it stored before it blocked stays readable. */
    assert_int_equal(sb_available(b), 1000);
    unsigned char buf[1000];
    assert_int_equal(sb_pread(b, buf, sizeof buf, 0), sizeof buf);
    assert_int_equal(pat_mismatches(buf, sizeof buf, 0), 0);
    assert_fails_with(sb_write(b, buf, 1), ECANCELED);
}

/* A paused producer: sb_cancel and sb_close end the pause at once. */
static void close_now(void *b)
{
    sb_close(b);
}

static void test_cancel_and_close_wake_paused_producer(void **state)
{
    (void)state;
    for (int closing = 0; closing <= 1; closing++) {
        count_src *s = fx_count(COUNT_FOREVER, 0);
        sb_options o = {.read_ahead = 1};
        sb_source src = count_source(s);
        sb_buffer *b = sb_open(&src, &o);
        assert_non_null(b);
        if (!closing)
            fx_buffer(b);
        assert_true(wait_for_pauses(b, 1, WAIT_LONG_MS));
        double t0 = now_ms();
        if (!closing) {
            sb_cancel(b);
            reader *r = fx_reader(b, RD_WAIT_END, 0, 0, 0);
            assert_non_null(r);
            assert_true(reader_wait(r, WAIT_LONG_MS));
            assert_int_equal(r->err, ECANCELED);
            fx_close(b);
        } else {
            bg_call *bg = fx_bg(close_now, b);
            assert_non_null(bg);
            assert_true(bg_wait(bg, WAIT_LONG_MS));
        }
        assert_true(now_ms() - t0 < PROMPT_MS);
        assert_int_equal(atomic_load(&s->closes), 1);
    }
}

/* Eager by default: nothing pauses and the demand plays no part. */
static void test_eager_without_read_ahead(void **state)
{
    (void)state;
    count_src *s = fx_count(4 * KB * KB, 0);
    sb_options o = {.mem_limit = 8 * KB * KB};
    sb_buffer *b = open_count(s, &o);
    assert_non_null(b);
    assert_true(wait_available(b, 4 * KB * KB, WAIT_LONG_MS));
    sb_stats st = stats(b);
    assert_int_equal(st.pauses, 0);
    assert_int_equal(st.paused_ns, 0);
    assert_int_equal(st.demand, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        FX_TEST(test_lazy_pull_bounds_what_is_pulled),
        FX_TEST(test_seed_example_pulls_little),
        FX_TEST(test_zero_timeout_poll_raises_demand),
        FX_TEST(test_wait_end_and_reader_floor_are_demand),
        FX_TEST(test_lazy_stream_same_bytes),
        FX_TEST(test_write_blocks_until_demand),
        FX_TEST(test_cancel_wakes_blocked_writer),
        FX_TEST(test_cancel_and_close_wake_paused_producer),
        FX_TEST(test_eager_without_read_ahead),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
