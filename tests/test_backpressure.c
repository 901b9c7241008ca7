/* SPDX-License-Identifier: MIT */
/*
 * test_backpressure.c - max_retained: the slowest reader holds the
 * producer (and sb_write) back, filled - floor stays within max_retained
 * plus a chunk at every sample, a wait that could never end fails with
 * ENOBUFS, plain reads wait, and cancel and close end every pause.
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
#define MB (KB * KB)

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define PROMPT_MS 500.0
#else
#define PROMPT_MS 100.0
#endif

/* A held reader stops the producer max_retained past its floor (plus at
   most a chunk); releasing lets it go exactly as far again. */
static void test_slowest_reader_holds_producer(void **state)
{
    (void)state;
    const uint64_t retain = 256 * KB, chunk = 16 * KB;
    count_src *s = fx_count(COUNT_FOREVER, 0);
    sb_options o = {.flags = SB_RELEASE, .max_retained = retain,
                    .chunk_size = (size_t)chunk, .mem_limit = 128 * KB,
                    .tmp_dir = fx_scratch()};
    sb_buffer *b = open_count(s, &o);
    assert_non_null(b);
    sb_reader *slow = fx_sb_reader(b, 0);
    sb_reader *fast = fx_sb_reader(b, 0);
    assert_non_null(slow);
    assert_non_null(fast);
    assert_true(wait_for_paused(b, WAIT_LONG_MS));
    sb_stats st = stats(b);
    assert_true(st.filled >= retain && st.filled < retain + chunk);
    assert_int_equal(atomic_load(&s->pulled), st.filled);

    /* The fast reader goes ahead and releases: still held by the slow. */
    assert_int_equal(sb_reader_release(fast, 200 * KB), 0);
    assert_int_equal(sb_floor(b), 0);
    assert_int_equal(stats(b).filled, st.filled);
    /* The slow one releases: the producer moves on, just as far. */
    assert_int_equal(sb_reader_release(slow, 100 * KB), 0);
    assert_int_equal(sb_floor(b), 100 * KB);
    assert_true(wait_for_pauses(b, st.pauses + 1, WAIT_LONG_MS));
    assert_true(wait_for_paused(b, WAIT_LONG_MS));
    st = stats(b);
    assert_true(st.filled >= 100 * KB + retain);
    assert_true(st.filled < 100 * KB + retain + chunk);
    assert_true(st.paused_ns > 0);
    /* Closing the slow reader leaves the fast one as the floor. */
    fx_untrack(slow);
    sb_reader_close(slow);
    assert_int_equal(sb_floor(b), 200 * KB);
}

/* A reader that waits for bytes past its floor + max_retained would wait
   for itself: ENOBUFS at once.  Within the bound it waits and gets them. */
static void test_self_blocking_wait_is_enobufs(void **state)
{
    (void)state;
    const uint64_t retain = 64 * KB;
    count_src *s = fx_count(COUNT_FOREVER, 0);
    sb_options o = {.flags = SB_RELEASE, .max_retained = retain,
                    .chunk_size = 4096, .mem_limit = 1 * MB};
    sb_buffer *b = open_count(s, &o);
    assert_non_null(b);
    sb_reader *r = fx_sb_reader(b, 1000);
    assert_non_null(r);
    /* It may have paused at 0 + retain before the reader came: wait for
       the pause the reader's floor leads to. */
    assert_true(wait_available(b, 1000 + retain, WAIT_LONG_MS));
    assert_true(wait_for_paused(b, WAIT_LONG_MS));
    uint64_t filled = stats(b).filled;
    unsigned char buf[64];
    /* Past the bound and not there: ENOBUFS, without waiting. */
    assert_true(filled >= 1000 + retain);
    assert_fails_with(sb_reader_pread(r, buf, sizeof buf, filled), ENOBUFS);
    assert_fails_with(sb_reader_pread_timed(r, buf, 1, 1000 + retain + 1 * MB,
                                            -1),
                      ENOBUFS);
    assert_int_equal(stats(b).waiting, 0);
    /* Past the bound but there (the producer's last chunk): fine. */
    if (filled > 1000 + retain) {
        assert_int_equal(sb_reader_pread(r, buf, 1, 1000 + retain), 1);
        assert_int_equal(pat_mismatches(buf, 1, 1000 + retain), 0);
    }
    /* Within the bound: the bytes are there or will come. */
    assert_int_equal(sb_reader_pread(r, buf, sizeof buf,
                                     1000 + retain - sizeof buf),
                     sizeof buf);
    assert_int_equal(pat_mismatches(buf, sizeof buf, 1000 + retain - sizeof buf),
                     0);
    /* After a release the bound moves with the floor. */
    assert_int_equal(sb_reader_release(r, 500 * KB), 0);
    assert_int_equal(sb_reader_pread(r, buf, sizeof buf, 500 * KB + retain - 64),
                     sizeof buf);
    /* A plain read holds no floor: far ahead, it waits (no ENOBUFS). */
    reader *p = fx_reader(b, RD_PREAD, 900 * KB, 10, 0);
    assert_non_null(p);
    assert_true(wait_for_waiters(b, 1, WAIT_LONG_MS));
    assert_false(reader_done(p));
    assert_int_equal(sb_reader_release(r, 900 * KB), 0);
    assert_true(reader_wait(p, WAIT_LONG_MS));
    reader_join(p);
    assert_int_equal(p->ret, 10);
}

/* Two followers at their own pace, and a sampler: filled - floor never
   passes max_retained + chunk_size. */
typedef struct sampler {
    sb_buffer *b;
    _Atomic int stop;
    uint64_t max_kept, samples;
} sampler;

static void sample(void *arg)
{
    sampler *m = arg;
    while (!atomic_load(&m->stop)) {
        sb_stats st;
        if (sb_get_stats(m->b, &st) != 0)
            break;
        uint64_t kept = st.filled > st.floor ? st.filled - st.floor : 0;
        if (kept > m->max_kept)
            m->max_kept = kept;
        m->samples++;
    }
}

static void stop_sampler(void *m)
{
    atomic_store(&((sampler *)m)->stop, 1);
}

static void test_retained_stays_bounded(void **state)
{
    (void)state;
    const uint64_t retain = 512 * KB, chunk = 32 * KB, len = 64 * MB;
    count_src *s = fx_count(COUNT_FOREVER, 0);
    sb_options o = {.flags = SB_RELEASE, .max_retained = retain,
                    .chunk_size = (size_t)chunk, .mem_limit = 256 * KB,
                    .tmp_dir = fx_scratch()};
    sb_buffer *b = open_count(s, &o);
    assert_non_null(b);
    follower *f1 = fx_follower(b, 0, len, 4096);
    follower *f2 = fx_follower(b, 0, len, 96 * 1024);
    assert_non_null(f1);
    assert_non_null(f2);
    sampler *m = fx_calloc(sizeof *m);
    m->b = b;
    fx_track(m, stop_sampler, NULL);
    bg_call *mb = fx_bg(sample, m);
    assert_non_null(mb);
    assert_int_equal(follower_start(f1), 0);
    assert_int_equal(follower_start(f2), 0);
    assert_true(follower_join(f1, 10 * WAIT_LONG_MS));
    assert_true(follower_join(f2, 10 * WAIT_LONG_MS));
    stop_sampler(m);
    assert_true(bg_wait(mb, WAIT_LONG_MS));
    bg_join(mb);
    assert_int_equal(f1->err, 0);
    assert_int_equal(f2->err, 0);
    assert_int_equal(f1->bad + f2->bad, 0);
    assert_int_equal(f1->checked, len);
    assert_int_equal(f2->checked, len);
    assert_true(m->samples > 100);
    assert_true(m->max_kept <= retain + chunk);
    assert_true(stats(b).pauses > 0);
}

/* ---- push mode -------------------------------------------------------------------------- */

static void test_write_blocks_on_retained(void **state)
{
    (void)state;
    sb_options o = {.flags = SB_RELEASE, .max_retained = 64 * KB,
                    .chunk_size = 8 * KB};
    sb_buffer *b = fx_buffer(sb_open_writer(&o));
    assert_non_null(b);
    sb_reader *r = fx_sb_reader(b, 0);
    assert_non_null(r);
    write_call *w = fx_calloc(sizeof *w);
    *w = (write_call){.b = b, .len = 256 * KB};
    bg_call *bg = fx_bg(do_write, w);
    assert_non_null(bg);
    assert_true(wait_for_paused(b, WAIT_LONG_MS));
    assert_false(bg_wait(bg, 0));
    assert_int_equal(sb_available(b), 64 * KB);
    /* Read and release as a consumer would: the write goes through. */
    unsigned char *buf = fx_calloc(16 * KB);
    for (uint64_t off = 0; off < 256 * KB; off += 16 * KB) {
        assert_int_equal(sb_reader_pread(r, buf, 16 * KB, off), 16 * KB);
        assert_int_equal(pat_mismatches(buf, 16 * KB, off), 0);
        assert_int_equal(sb_reader_release(r, off + 16 * KB), 0);
    }
    assert_true(bg_wait(bg, WAIT_LONG_MS));
    assert_int_equal(w->ret, 256 * KB);
    assert_true(stats(b).released >= 240 * KB);

    /* Blocked again, then cancelled: ECANCELED, promptly. */
    *w = (write_call){.b = b, .len = 256 * KB};
    bg = fx_bg(do_write, w);
    assert_non_null(bg);
    assert_true(wait_for_paused(b, WAIT_LONG_MS));
    double t0 = now_ms();
    sb_cancel(b);
    assert_true(bg_wait(bg, WAIT_LONG_MS));
    assert_true(now_ms() - t0 < PROMPT_MS);
    assert_int_equal(w->ret, -1);
    assert_int_equal(w->err, ECANCELED);
}

/* ---- every pause ends ------------------------------------------------------------------- */

static void close_now(void *b)
{
    sb_close(b);
}

static void test_close_ends_backpressure_pause(void **state)
{
    (void)state;
    for (int with_wait_end = 0; with_wait_end <= 1; with_wait_end++) {
        count_src *s = fx_count(COUNT_FOREVER, 0);
        sb_options o = {.flags = SB_RELEASE, .max_retained = 32 * KB};
        sb_source src = count_source(s);
        sb_buffer *b = sb_open(&src, &o);
        assert_non_null(b);
        /* No reader at all: the floor stays at 0 and holds the producer,
           and sb_wait_end would wait for ever. */
        assert_true(wait_for_paused(b, WAIT_LONG_MS));
        if (with_wait_end) {
            fx_buffer(b);
            reader *w = fx_reader(b, RD_WAIT_END, 0, 0, 0);
            assert_non_null(w);
            assert_true(wait_for_waiters(b, 1, WAIT_LONG_MS));
            sb_cancel(b);
            assert_true(reader_wait(w, WAIT_LONG_MS));
            reader_join(w);
            assert_int_equal(w->err, ECANCELED);
            fx_untrack(b);
        }
        double t0 = now_ms();
        bg_call *bg = fx_bg(close_now, b);
        assert_non_null(bg);
        assert_true(bg_wait(bg, WAIT_LONG_MS));
        assert_true(now_ms() - t0 < PROMPT_MS);
        assert_int_equal(atomic_load(&s->closes), 1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        FX_TEST(test_slowest_reader_holds_producer),
        FX_TEST(test_self_blocking_wait_is_enobufs),
        FX_TEST(test_retained_stays_bounded),
        FX_TEST(test_write_blocks_on_retained),
        FX_TEST(test_close_ends_backpressure_pause),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
