/* SPDX-License-Identifier: MIT */
/*
 * test_read.c - reading: read and iterator sources, the watermark, short
 * counts and the end of the stream, sb_available, sb_wait_end, sb_open_mem.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"

/* A small deterministic PRNG for offsets and sizes. */
static uint64_t rng_next(uint64_t *s)
{
    *s = *s * 6364136223846793005u + 1442695040888963407u;
    return *s >> 33;
}

/* ---- read sources ------------------------------------------------------------ */

static void test_read_source_defaults(void **state)
{
    (void)state;
    chunk_src *s = fx_chunk(300000, NULL, 0);
    sb_buffer *b = fx_buffer(open_chunk(s, NULL));
    assert_non_null(b);
    assert_int_equal(check_stream(b, 300000), 0);
    fx_close(b);
    assert_int_equal(atomic_load(&s->closes), 1);
}

static void test_read_source_variable_chunks(void **state)
{
    (void)state;
    static const size_t pat[] = {1, 7, 4096, 3, 65536, 100, 9999, 2};
    chunk_src *s = fx_chunk(400000, pat, sizeof pat / sizeof pat[0]);
    sb_options o = {.mem_limit = 65536};
    sb_buffer *b = fx_buffer(open_chunk(s, &o));
    assert_non_null(b);
    assert_int_equal(check_stream(b, 400000), 0);
    /* Random ranges, in any order. */
    uint64_t seed = 42;
    for (int i = 0; i < 200; i++) {
        uint64_t off = rng_next(&seed) % 400000;
        size_t n = (size_t)(rng_next(&seed) % 20000) + 1;
        size_t want = off + n > 400000 ? (size_t)(400000 - off) : n;
        assert_int_equal(check_read(b, off, n, (ssize_t)want), 0);
    }
}

static void test_read_source_one_byte_chunks(void **state)
{
    (void)state;
    static const size_t pat[] = {1};
    chunk_src *s = fx_chunk(3000, pat, 1);
    sb_buffer *b = fx_buffer(open_chunk(s, NULL));
    assert_non_null(b);
    assert_int_equal(check_stream(b, 3000), 0);
    fx_close(b);
    /* One call per byte and the final 0: the source really was used that
       way (otherwise this test would not test one-byte chunks). */
    assert_true(atomic_load(&s->calls) >= 3001);
}

static void test_read_source_empty_stream(void **state)
{
    (void)state;
    chunk_src *s = fx_chunk(0, NULL, 0);
    sb_buffer *b = fx_buffer(open_chunk(s, NULL));
    assert_non_null(b);
    uint64_t len = 99;
    assert_int_equal(sb_wait_end(b, &len), 0);
    assert_int_equal(len, 0);
    assert_int_equal(sb_available(b), 0);
    assert_int_equal(check_read(b, 0, 10, 0), 0);
    assert_int_equal(check_read(b, 5, 10, 0), 0);
}

/* ---- iterator sources ---------------------------------------------------------- */

static void test_iter_variable_chunks_with_empty(void **state)
{
    (void)state;
    static const size_t pat[] = {0, 1, 0, 0, 13, 4096, 0, 70000, 2, 0, 333};
    iter_src *s = fx_iter(300000, pat, sizeof pat / sizeof pat[0]);
    sb_options o = {.mem_limit = 100000};
    sb_buffer *b = fx_buffer(open_iter(s, &o));
    assert_non_null(b);
    assert_int_equal(check_stream(b, 300000), 0);
    fx_close(b);
    assert_int_equal(atomic_load(&s->closes), 1);
}

static void test_iter_one_byte_chunks(void **state)
{
    (void)state;
    static const size_t pat[] = {1};
    iter_src *s = fx_iter(3000, pat, 1);
    sb_buffer *b = fx_buffer(open_iter(s, NULL));
    assert_non_null(b);
    assert_int_equal(check_stream(b, 3000), 0);
}

static void test_iter_big_chunks_cross_mem_limit(void **state)
{
    (void)state;
    /* Chunks far larger than mem_limit and not aligned to it. */
    static const size_t pat[] = {10007, 3, 25000};
    iter_src *s = fx_iter(200000, pat, 3);
    sb_options o = {.mem_limit = 4096, .chunk_size = 1000};
    sb_buffer *b = fx_buffer(open_iter(s, &o));
    assert_non_null(b);
    assert_int_equal(check_stream(b, 200000), 0);
}

static void test_iter_null_empty_chunks(void **state)
{
    (void)state;
    /* Empty chunks with a NULL pointer are empty chunks too, not errors. */
    static const size_t pat[] = {0, 5, 0, 0, 77};
    iter_src *s = fx_iter(1000, pat, 5);
    s->null_empty = 1;
    sb_buffer *b = fx_buffer(open_iter(s, NULL));
    assert_non_null(b);
    assert_int_equal(check_stream(b, 1000), 0);
}

static void test_iter_only_empty_chunks(void **state)
{
    (void)state;
    /* Five empty chunks, then the end: a stream of length 0; the empty
       chunks are skipped, not taken for the end. */
    static const size_t pat[] = {0, 0, 0, 0, 0, 1};
    iter_src *s = fx_iter(0, pat, 6);
    sb_buffer *b = fx_buffer(open_iter(s, NULL));
    assert_non_null(b);
    uint64_t len = 99;
    assert_int_equal(sb_wait_end(b, &len), 0);
    assert_int_equal(len, 0);
    assert_int_equal(check_read(b, 0, 1, 0), 0);
    fx_close(b);
    assert_true(atomic_load(&s->calls) >= 6);
}

static void test_iter_empty_chunks_then_data(void **state)
{
    (void)state;
    /* Empty chunks before the first byte must not end the stream. */
    static const size_t pat[] = {0, 0, 0, 10};
    iter_src *s = fx_iter(30, pat, 4);
    sb_buffer *b = fx_buffer(open_iter(s, NULL));
    assert_non_null(b);
    assert_int_equal(check_stream(b, 30), 0);
}

/* ---- the watermark --------------------------------------------------------- */

static void test_reads_around_watermark(void **state)
{
    (void)state;
    gate_src *g = fx_gate();
    sb_options o = {.mem_limit = 1500};
    sb_buffer *b = fx_buffer(open_gate(g, &o));
    assert_non_null(b);
    gate_allow(g, 1000);
    assert_true(wait_available(b, 1000, WAIT_LONG_MS));
    assert_int_equal(sb_available(b), 1000);

    /* Below the watermark: at once, even with a zero timeout. */
    unsigned char buf[600];
    assert_int_equal(sb_pread_timed(b, buf, 500, 100, 0), 500);
    assert_int_equal(gen_mismatches(buf, 500, 100), 0);
    assert_int_equal(check_read(b, 0, 1000, 1000), 0);
    assert_int_equal(check_read(b, 999, 1, 1), 0);

    /* Straddling and above it: they wait. */
    reader *straddle = fx_reader(b, RD_PREAD, 900, 200, 0);
    reader *above = fx_reader(b, RD_PREAD, 1500, 100, 0);
    reader *at = fx_reader(b, RD_PREAD, 1000, 1, 0);
    assert_non_null(straddle);
    assert_non_null(above);
    assert_non_null(at);
    assert_true(wait_for_waiters(b, 3, WAIT_LONG_MS));
    assert_false(reader_done(straddle));
    assert_false(reader_done(above));
    assert_false(reader_done(at));
    assert_fails_with(sb_pread_timed(b, buf, 200, 900, 0), ETIMEDOUT);

    /* Fill to 1100: the straddling reader and the one at 1000 complete;
       once the producer is back in the source nothing more is published,
       and the one above still waits. */
    gate_allow(g, 1100);
    assert_true(reader_wait(straddle, WAIT_LONG_MS));
    assert_true(reader_wait(at, WAIT_LONG_MS));
    assert_true(gate_wait_blocked(g, WAIT_LONG_MS));
    assert_true(wait_for_waiters(b, 1, WAIT_LONG_MS));
    assert_false(reader_done(above));
    gate_allow(g, 2000);
    assert_true(reader_wait(above, WAIT_LONG_MS));
    assert_int_equal(straddle->ret, 200);
    assert_int_equal(straddle->bad, 0);
    assert_int_equal(at->ret, 1);
    assert_int_equal(at->bad, 0);
    assert_int_equal(above->ret, 100);
    assert_int_equal(above->bad, 0);

    gate_end(g);
    assert_int_equal(check_stream(b, 2000), 0);
}

/* ---- the end of the stream ------------------------------------------------- */

static void test_short_count_at_end(void **state)
{
    (void)state;
    chunk_src *s = fx_chunk(1000, NULL, 0);
    sb_buffer *b = fx_buffer(open_chunk(s, NULL));
    assert_non_null(b);
    assert_int_equal(check_read(b, 900, 500, 100), 0);
    assert_int_equal(check_read(b, 999, 2, 1), 0);
    assert_int_equal(check_read(b, 0, 1 << 20, 1000), 0);
}

static void test_short_count_spilled_end(void **state)
{
    (void)state;
    /* The end lies in the spill file. */
    chunk_src *s = fx_chunk(10000, NULL, 0);
    sb_options o = {.mem_limit = 4096};
    sb_buffer *b = fx_buffer(open_chunk(s, &o));
    assert_non_null(b);
    assert_int_equal(check_read(b, 9000, 5000, 1000), 0);
    assert_int_equal(check_read(b, 4000, 10000, 6000), 0);
    assert_int_equal(check_read(b, 10000, 10, 0), 0);
}

static void test_blocked_reader_gets_short_count_at_end(void **state)
{
    (void)state;
    gate_src *g = fx_gate();
    sb_buffer *b = fx_buffer(open_gate(g, NULL));
    assert_non_null(b);
    reader *r = fx_reader(b, RD_PREAD, 900, 500, 0);
    reader *past = fx_reader(b, RD_PREAD, 1200, 10, 0);
    assert_non_null(r);
    assert_non_null(past);
    gate_allow(g, 1000);
    assert_true(wait_available(b, 1000, WAIT_LONG_MS));
    /* Everything up to 1000 is published and neither range is complete. */
    assert_true(gate_wait_blocked(g, WAIT_LONG_MS));
    assert_true(wait_for_waiters(b, 2, WAIT_LONG_MS));
    assert_false(reader_done(r));
    assert_false(reader_done(past));
    gate_end(g);
    assert_true(reader_wait(r, WAIT_LONG_MS));
    assert_true(reader_wait(past, WAIT_LONG_MS));
    assert_int_equal(r->ret, 100);
    assert_int_equal(r->bad, 0);
    assert_int_equal(past->ret, 0);
}

static void test_zero_at_or_past_end(void **state)
{
    (void)state;
    chunk_src *s = fx_chunk(5000, NULL, 0);
    sb_options o = {.mem_limit = 4096};
    sb_buffer *b = fx_buffer(open_chunk(s, &o));
    assert_non_null(b);
    assert_int_equal(sb_wait_end(b, NULL), 0);
    assert_int_equal(check_read(b, 5000, 1, 0), 0);
    assert_int_equal(check_read(b, 5000, 100000, 0), 0);
    assert_int_equal(check_read(b, 5001, 10, 0), 0);
    assert_int_equal(check_read(b, (uint64_t)1 << 40, 10, 0), 0);
    assert_int_equal(check_read(b, UINT64_MAX - 10, 5, 0), 0);
    /* The same with a zero timeout: no ETIMEDOUT once the stream ended. */
    unsigned char buf[8];
    assert_int_equal(sb_pread_timed(b, buf, 8, 5000, 0), 0);
}

static void test_n_zero_returns_zero_at_once(void **state)
{
    (void)state;
    /* Nothing has arrived and nothing will until the end of the test: a
       zero-length read must still return 0 at once, anywhere.  (Should one
       block, teardown cancels the buffer to let it go.) */
    gate_src *g = fx_gate();
    sb_buffer *b = fx_buffer(open_gate(g, NULL));
    assert_non_null(b);
    reader *r0 = fx_reader(b, RD_PREAD, 0, 0, 0);
    reader *r1 = fx_reader(b, RD_PREAD, 1000000, 0, 0);
    reader *r2 = fx_reader(b, RD_TIMED, 77, 0, -1);
    assert_non_null(r0);
    assert_non_null(r1);
    assert_non_null(r2);
    assert_true(reader_wait(r0, WAIT_LONG_MS));
    assert_true(reader_wait(r1, WAIT_LONG_MS));
    assert_true(reader_wait(r2, WAIT_LONG_MS));
    assert_int_equal(r0->ret, 0);
    assert_int_equal(r1->ret, 0);
    assert_int_equal(r2->ret, 0);
    /* Nor does it wait for anything on an ended stream. */
    unsigned char c;
    gate_end(g);
    assert_int_equal(sb_wait_end(b, NULL), 0);
    assert_int_equal(sb_pread(b, &c, 0, 0), 0);
    assert_int_equal(sb_pread(b, &c, 0, 12345), 0);
    /* Nor on a cancelled one, where a read of one byte fails. */
    b = fx_buffer(open_gate(fx_gate(), NULL));
    assert_non_null(b);
    sb_cancel(b);
    assert_int_equal(sb_pread(b, &c, 0, 0), 0);
    assert_int_equal(sb_pread(b, &c, 0, 12345), 0);
    assert_fails_with(sb_pread(b, &c, 1, 0), ECANCELED);
}

/* ---- sb_available and sb_wait_end ------------------------------------------ */

static void test_available_grows_to_length(void **state)
{
    (void)state;
    gate_src *g = fx_gate();
    sb_options o = {.mem_limit = 2500};
    sb_buffer *b = fx_buffer(open_gate(g, &o));
    assert_non_null(b);
    assert_int_equal(sb_available(b), 0);
    for (uint64_t step = 1000; step <= 5000; step += 1000) {
        gate_allow(g, step);
        assert_true(wait_available(b, step, WAIT_LONG_MS));
        assert_true(gate_wait_blocked(g, WAIT_LONG_MS));
        /* Exactly what the source delivered: never more, and (as step
           grows) never back. */
        uint64_t a = sb_available(b);
        assert_int_equal(a, step);
        /* [0, available) never blocks. */
        unsigned char *buf = fx_calloc((size_t)a);
        assert_int_equal(sb_pread_timed(b, buf, (size_t)a, 0, 0), (ssize_t)a);
        assert_int_equal(gen_mismatches(buf, (size_t)a, 0), 0);
        /* And reading does not move it. */
        assert_int_equal(sb_available(b), step);
    }
    gate_end(g);
    uint64_t len = 0;
    assert_int_equal(sb_wait_end(b, &len), 0);
    assert_int_equal(len, 5000);
    assert_int_equal(sb_available(b), 5000);
}

static void test_wait_end_length_and_null(void **state)
{
    (void)state;
    chunk_src *s = fx_chunk(12345, NULL, 0);
    sb_options o = {.mem_limit = 4096};
    sb_buffer *b = fx_buffer(open_chunk(s, &o));
    assert_non_null(b);
    uint64_t len = 0;
    assert_int_equal(sb_wait_end(b, &len), 0);
    assert_int_equal(len, 12345);
    assert_int_equal(sb_wait_end(b, NULL), 0);
    len = 0;
    assert_int_equal(sb_wait_end(b, &len), 0);
    assert_int_equal(len, 12345);
    assert_int_equal(sb_available(b), 12345);
}

static void test_wait_end_blocks_until_end(void **state)
{
    (void)state;
    gate_src *g = fx_gate();
    sb_buffer *b = fx_buffer(open_gate(g, NULL));
    assert_non_null(b);
    gate_allow(g, 777);
    reader *w = fx_reader(b, RD_WAIT_END, 0, 0, 0);
    reader *wn = fx_reader(b, RD_WAIT_END_NULL, 0, 0, 0);
    assert_non_null(w);
    assert_non_null(wn);
    assert_true(wait_available(b, 777, WAIT_LONG_MS));
    /* All 777 bytes are published: they wait for the end, not for bytes. */
    assert_true(gate_wait_blocked(g, WAIT_LONG_MS));
    assert_true(wait_for_waiters(b, 2, WAIT_LONG_MS));
    assert_false(reader_done(w));
    assert_false(reader_done(wn));
    gate_end(g);
    assert_true(reader_wait(w, WAIT_LONG_MS));
    assert_true(reader_wait(wn, WAIT_LONG_MS));
    assert_int_equal(w->ret, 0);
    assert_int_equal(w->length, 777);
    assert_int_equal(wn->ret, 0);
}

/* ---- options that shape reading ----------------------------------------------- */

static void test_length_hint_is_only_a_hint(void **state)
{
    (void)state;
    static const uint64_t hints[] = {100, 5000, 1000000};
    for (size_t i = 0; i < 3; i++) {
        chunk_src *s = fx_chunk(5000, NULL, 0);
        sb_options o = {.length_hint = hints[i], .mem_limit = 4096};
        sb_buffer *b = fx_buffer(open_chunk(s, &o));
        assert_non_null(b);
        assert_int_equal(check_stream(b, 5000), 0);
    }
}

static void test_chunk_size_caps_source_reads(void **state)
{
    (void)state;
    chunk_src *s = fx_chunk(50000, NULL, 0);
    sb_options o = {.chunk_size = 1000};
    sb_buffer *b = fx_buffer(open_chunk(s, &o));
    assert_non_null(b);
    assert_int_equal(check_stream(b, 50000), 0);
    fx_close(b);
    assert_true(s->max_cap > 0);
    assert_true(s->max_cap <= 1000);

    /* Default: 64 KiB. */
    s = fx_chunk(300000, NULL, 0);
    b = fx_buffer(open_chunk(s, NULL));
    assert_non_null(b);
    assert_int_equal(check_stream(b, 300000), 0);
    fx_close(b);
    assert_true(s->max_cap > 0);
    assert_true(s->max_cap <= 65536);
}

/* The source's delay is what makes the reads race production. */
static void test_reads_during_production(void **state)
{
    (void)state;
    /* A slow source; reads at random places while it is still coming. */
    static const size_t pat[] = {3000, 1, 4500};
    chunk_src *s = fx_chunk(400000, pat, 3);
    s->delay_us = 200;
    sb_options o = {.mem_limit = 100000, .chunk_size = 8192};
    sb_buffer *b = fx_buffer(open_chunk(s, &o));
    assert_non_null(b);
    uint64_t seed = 7;
    for (int i = 0; i < 100; i++) {
        uint64_t off = rng_next(&seed) % 420000;
        size_t n = (size_t)(rng_next(&seed) % 30000) + 1;
        size_t want = off >= 400000            ? 0
                      : off + n > 400000 ? (size_t)(400000 - off)
                                         : n;
        assert_int_equal(check_read(b, off, n, (ssize_t)want), 0);
    }
    assert_int_equal(check_stream(b, 400000), 0);
}

/* ---- the source contract ------------------------------------------------------- */

static void read_some(void *arg)
{
    sb_buffer *b = arg;
    unsigned char buf[512];
    for (uint64_t off = 0; off < 20000; off += 300)
        if (sb_pread(b, buf, sizeof buf, off) < 0)
            break;
}

static void test_callbacks_on_producer_thread_one_at_a_time(void **state)
{
    (void)state;
    static const size_t pat[] = {1, 100, 7};
    chunk_src *s = fx_chunk(20000, pat, 3);
    sb_options o = {.mem_limit = 4096};
    sb_buffer *b = fx_buffer(open_chunk(s, &o));
    assert_non_null(b);
    bg_call *th[4];
    for (int i = 0; i < 4; i++) {
        th[i] = fx_bg(read_some, b);
        assert_non_null(th[i]);
    }
    for (int i = 0; i < 4; i++)
        assert_true(bg_wait(th[i], WAIT_LONG_MS));
    assert_int_equal(check_stream(b, 20000), 0);
    fx_close(b);
    assert_true(atomic_load(&s->calls) > 100);
    assert_int_equal(atomic_load(&s->on_caller_thread), 0);
    assert_int_equal(atomic_load(&s->thread_changes), 0);
    assert_int_equal(atomic_load(&s->overlaps), 0);
    assert_int_equal(atomic_load(&s->closes), 1);
    /* close comes from sb_close, after the producer stopped. */
    assert_true(pthread_equal(s->close_thread, pthread_self()));
    assert_int_equal(atomic_load(&s->close_during_call), 0);
}

static void test_open_copies_src_and_opts(void **state)
{
    (void)state;
    char *dir = fx_scratch();
    char path[256];
    snprintf(path, sizeof path, "%s", dir);
    gate_src *g = fx_gate();
    sb_source src = gate_source(g);
    sb_options o = {.mem_limit = 4096, .tmp_dir = path, .chunk_size = 1000};
    sb_buffer *b = fx_buffer(sb_open(&src, &o));
    assert_non_null(b);
    /* Clobber everything the caller passed. */
    memset(&src, 0, sizeof src);
    o.mem_limit = 1;
    o.max_size = 5;
    o.tmp_dir = "/nonexistent/sbtest/dir";
    o.chunk_size = 1;
    memset(path, 'x', sizeof path - 1);
    path[sizeof path - 1] = '\0';
    gate_allow(g, 20000);
    gate_end(g);
    assert_int_equal(check_stream(b, 20000), 0);
    assert_true(fds_into_dir(dir) >= 1); /* spilled where it was told */
    fx_close(b);
    assert_int_equal(atomic_load(&g->closes), 1);
}

/* ---- sb_open_mem ------------------------------------------------------------------ */

static void test_open_mem_reads_callers_bytes(void **state)
{
    (void)state;
    size_t len = 100000;
    unsigned char *data = fx_calloc(len);
    gen_fill(data, len, 0);
    int threads = count_threads();
    sb_options o = {.mem_limit = 4096, .chunk_size = 100}; /* no effect */
    sb_buffer *b = fx_buffer(sb_open_mem(data, len, &o));
    assert_non_null(b);
    /* Ended at once, no thread started. */
    assert_int_equal(sb_available(b), len);
    assert_int_equal(count_threads(), threads);
    unsigned char buf[64];
    assert_int_equal(sb_pread_timed(b, buf, 64, len - 64, 0), 64);
    assert_int_equal(gen_mismatches(buf, 64, len - 64), 0);
    assert_int_equal(check_stream(b, len), 0);
}

static void test_open_mem_copies_nothing(void **state)
{
    (void)state;
    /* 32 MiB of resident data: a copy would add as much again. */
    const size_t len = 32u << 20;
    unsigned char *data = fx_calloc(len);
    gen_fill(data, len, 0);
    long long before = rss_bytes();
    sb_buffer *b = fx_buffer(sb_open_mem(data, len, NULL));
    assert_non_null(b);
    unsigned char buf[4096];
    for (uint64_t off = 0; off < len; off += len / 64) {
        assert_int_equal(sb_pread(b, buf, sizeof buf, off), (ssize_t)sizeof buf);
        assert_int_equal(gen_mismatches(buf, sizeof buf, off), 0);
    }
    long long after = rss_bytes();
    assert_int_equal(check_read(b, len - 100000, 200000, 100000), 0);
    assert_true(before > 0);
    assert_true(after - before < (long long)(8u << 20));
}

static void test_open_mem_max_size_efbig(void **state)
{
    (void)state;
    unsigned char *data = fx_calloc(1000);
    gen_fill(data, 1000, 0);
    sb_options o = {.max_size = 600};
    sb_buffer *b = fx_buffer(sb_open_mem(data, 1000, &o));
    assert_non_null(b);
    assert_int_equal(sb_available(b), 600);
    assert_int_equal(check_read(b, 0, 600, 600), 0);
    assert_int_equal(check_read(b, 500, 200, 100), 0);
    assert_int_equal(check_read_err(b, 600, 10, EFBIG), 0);
    assert_int_equal(check_read_err(b, 900, 10, EFBIG), 0);
    uint64_t len = 77;
    assert_fails_with(sb_wait_end(b, &len), EFBIG);
    assert_int_equal(len, 77); /* not written on failure */

    /* max_size == len: ends normally. */
    o.max_size = 1000;
    b = fx_buffer(sb_open_mem(data, 1000, &o));
    assert_non_null(b);
    assert_int_equal(check_stream(b, 1000), 0);
}

static void test_open_mem_empty(void **state)
{
    (void)state;
    sb_buffer *b = fx_buffer(sb_open_mem(NULL, 0, NULL));
    assert_non_null(b);
    uint64_t len = 5;
    assert_int_equal(sb_wait_end(b, &len), 0);
    assert_int_equal(len, 0);
    assert_int_equal(sb_available(b), 0);
    assert_int_equal(check_read(b, 0, 10, 0), 0);

    char *one = fx_calloc(1);
    *one = 'x';
    b = fx_buffer(sb_open_mem(one, 0, NULL));
    assert_non_null(b);
    len = 5;
    assert_int_equal(sb_wait_end(b, &len), 0);
    assert_int_equal(len, 0);
    assert_int_equal(check_read(b, 0, 1, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        FX_TEST(test_read_source_defaults),
        FX_TEST(test_read_source_variable_chunks),
        FX_TEST(test_read_source_one_byte_chunks),
        FX_TEST(test_read_source_empty_stream),
        FX_TEST(test_iter_variable_chunks_with_empty),
        FX_TEST(test_iter_one_byte_chunks),
        FX_TEST(test_iter_big_chunks_cross_mem_limit),
        FX_TEST(test_iter_null_empty_chunks),
        FX_TEST(test_iter_only_empty_chunks),
        FX_TEST(test_iter_empty_chunks_then_data),
        FX_TEST(test_reads_around_watermark),
        FX_TEST(test_short_count_at_end),
        FX_TEST(test_short_count_spilled_end),
        FX_TEST(test_blocked_reader_gets_short_count_at_end),
        FX_TEST(test_zero_at_or_past_end),
        FX_TEST(test_n_zero_returns_zero_at_once),
        FX_TEST(test_available_grows_to_length),
        FX_TEST(test_wait_end_length_and_null),
        FX_TEST(test_wait_end_blocks_until_end),
        FX_TEST(test_length_hint_is_only_a_hint),
        FX_TEST(test_chunk_size_caps_source_reads),
        FX_TEST(test_reads_during_production),
        FX_TEST(test_callbacks_on_producer_thread_one_at_a_time),
        FX_TEST(test_open_copies_src_and_opts),
        FX_TEST(test_open_mem_reads_callers_bytes),
        FX_TEST(test_open_mem_copies_nothing),
        FX_TEST(test_open_mem_max_size_efbig),
        FX_TEST(test_open_mem_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
