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

#include "helpers.h"

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
    chunk_src s;
    chunk_init(&s, 300000, NULL, 0);
    sb_buffer *b = open_chunk(&s, NULL);
    assert_non_null(b);
    assert_int_equal(check_stream(b, 300000), 0);
    sb_close(b);
    assert_int_equal(atomic_load(&s.closes), 1);
}

static void test_read_source_variable_chunks(void **state)
{
    (void)state;
    static const size_t pat[] = {1, 7, 4096, 3, 65536, 100, 9999, 2};
    chunk_src s;
    chunk_init(&s, 400000, pat, sizeof pat / sizeof pat[0]);
    sb_options o = {.mem_limit = 65536};
    sb_buffer *b = open_chunk(&s, &o);
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
    sb_close(b);
}

static void test_read_source_one_byte_chunks(void **state)
{
    (void)state;
    static const size_t pat[] = {1};
    chunk_src s;
    chunk_init(&s, 3000, pat, 1);
    sb_buffer *b = open_chunk(&s, NULL);
    assert_non_null(b);
    assert_int_equal(check_stream(b, 3000), 0);
    sb_close(b);
    /* One call per byte and the final 0: the source really was used that
       way (otherwise this test would not test one-byte chunks). */
    assert_true(atomic_load(&s.calls) >= 3001);
}

static void test_read_source_empty_stream(void **state)
{
    (void)state;
    chunk_src s;
    chunk_init(&s, 0, NULL, 0);
    sb_buffer *b = open_chunk(&s, NULL);
    assert_non_null(b);
    uint64_t len = 99;
    assert_int_equal(sb_wait_end(b, &len), 0);
    assert_int_equal(len, 0);
    assert_int_equal(sb_available(b), 0);
    assert_int_equal(check_read(b, 0, 10, 0), 0);
    assert_int_equal(check_read(b, 5, 10, 0), 0);
    sb_close(b);
}

/* ---- iterator sources ---------------------------------------------------------- */

static void test_iter_variable_chunks_with_empty(void **state)
{
    (void)state;
    static const size_t pat[] = {0, 1, 0, 0, 13, 4096, 0, 70000, 2, 0, 333};
    iter_src s;
    assert_int_equal(iter_init(&s, 300000, pat, sizeof pat / sizeof pat[0]),
                     0);
    sb_options o = {.mem_limit = 100000};
    sb_buffer *b = open_iter(&s, &o);
    assert_non_null(b);
    assert_int_equal(check_stream(b, 300000), 0);
    sb_close(b);
    assert_int_equal(atomic_load(&s.closes), 1);
    iter_destroy(&s);
}

static void test_iter_one_byte_chunks(void **state)
{
    (void)state;
    static const size_t pat[] = {1};
    iter_src s;
    assert_int_equal(iter_init(&s, 3000, pat, 1), 0);
    sb_buffer *b = open_iter(&s, NULL);
    assert_non_null(b);
    assert_int_equal(check_stream(b, 3000), 0);
    sb_close(b);
    iter_destroy(&s);
}

static void test_iter_big_chunks_cross_mem_limit(void **state)
{
    (void)state;
    /* Chunks far larger than mem_limit and not aligned to it. */
    static const size_t pat[] = {10007, 3, 25000};
    iter_src s;
    assert_int_equal(iter_init(&s, 200000, pat, 3), 0);
    sb_options o = {.mem_limit = 4096, .chunk_size = 1000};
    sb_buffer *b = open_iter(&s, &o);
    assert_non_null(b);
    assert_int_equal(check_stream(b, 200000), 0);
    sb_close(b);
    iter_destroy(&s);
}

static void test_iter_null_empty_chunks(void **state)
{
    (void)state;
    /* Empty chunks with a NULL pointer are empty chunks too, not errors. */
    static const size_t pat[] = {0, 5, 0, 0, 77};
    iter_src s;
    assert_int_equal(iter_init(&s, 1000, pat, 5), 0);
    s.null_empty = 1;
    sb_buffer *b = open_iter(&s, NULL);
    assert_non_null(b);
    assert_int_equal(check_stream(b, 1000), 0);
    sb_close(b);
    iter_destroy(&s);
}

static void test_iter_only_empty_chunks(void **state)
{
    (void)state;
    /* Five empty chunks, then the end: a stream of length 0; the empty
       chunks are skipped, not taken for the end. */
    static const size_t pat[] = {0, 0, 0, 0, 0, 1};
    iter_src s;
    assert_int_equal(iter_init(&s, 0, pat, 6), 0);
    sb_buffer *b = open_iter(&s, NULL);
    assert_non_null(b);
    uint64_t len = 99;
    assert_int_equal(sb_wait_end(b, &len), 0);
    assert_int_equal(len, 0);
    assert_int_equal(check_read(b, 0, 1, 0), 0);
    sb_close(b);
    assert_true(atomic_load(&s.calls) >= 6);
    iter_destroy(&s);
}

static void test_iter_empty_chunks_then_data(void **state)
{
    (void)state;
    /* Empty chunks before the first byte must not end the stream. */
    static const size_t pat[] = {0, 0, 0, 10};
    iter_src s;
    assert_int_equal(iter_init(&s, 30, pat, 4), 0);
    sb_buffer *b = open_iter(&s, NULL);
    assert_non_null(b);
    assert_int_equal(check_stream(b, 30), 0);
    sb_close(b);
    iter_destroy(&s);
}

/* ---- the watermark --------------------------------------------------------- */

static void test_reads_around_watermark(void **state)
{
    (void)state;
    gate_src g;
    gate_init(&g);
    sb_options o = {.mem_limit = 1500};
    sb_buffer *b = open_gate(&g, &o);
    assert_non_null(b);
    gate_allow(&g, 1000);
    assert_true(wait_available(b, 1000, WAIT_LONG_MS));
    assert_int_equal(sb_available(b), 1000);

    /* Below the watermark: at once, even with a zero timeout. */
    unsigned char buf[600];
    assert_int_equal(sb_pread_timed(b, buf, 500, 100, 0), 500);
    assert_int_equal(gen_mismatches(buf, 500, 100), 0);
    assert_int_equal(check_read(b, 0, 1000, 1000), 0);
    assert_int_equal(check_read(b, 999, 1, 1), 0);

    /* Straddling and above it: they wait. */
    reader straddle, above, at;
    assert_int_equal(reader_start(&straddle, b, RD_PREAD, 900, 200, 0), 0);
    assert_int_equal(reader_start(&above, b, RD_PREAD, 1500, 100, 0), 0);
    assert_int_equal(reader_start(&at, b, RD_PREAD, 1000, 1, 0), 0);
    sleep_ms(SETTLE_MS);
    int straddle_early = reader_done(&straddle);
    int above_early = reader_done(&above);
    int at_early = reader_done(&at);
    errno = 0;
    ssize_t t0 = sb_pread_timed(b, buf, 200, 900, 0);
    int t0_err = errno;

    /* Fill to 1100: the straddling reader and the one at 1000 complete. */
    gate_allow(&g, 1100);
    int straddle_ok = reader_wait(&straddle, WAIT_LONG_MS);
    int at_ok = reader_wait(&at, WAIT_LONG_MS);
    sleep_ms(SETTLE_MS);
    int above_mid = reader_done(&above);
    gate_allow(&g, 2000);
    int above_ok = reader_wait(&above, WAIT_LONG_MS);
    reader_join(&straddle);
    reader_join(&above);
    reader_join(&at);

    assert_false(straddle_early);
    assert_false(above_early);
    assert_false(at_early);
    assert_int_equal(t0, -1);
    assert_int_equal(t0_err, ETIMEDOUT);
    assert_true(straddle_ok && at_ok && above_ok);
    assert_false(above_mid);
    assert_int_equal(straddle.ret, 200);
    assert_int_equal(straddle.bad, 0);
    assert_int_equal(at.ret, 1);
    assert_int_equal(at.bad, 0);
    assert_int_equal(above.ret, 100);
    assert_int_equal(above.bad, 0);

    gate_end(&g);
    assert_int_equal(check_stream(b, 2000), 0);
    sb_close(b);
    gate_destroy(&g);
}

/* ---- the end of the stream ------------------------------------------------- */

static void test_short_count_at_end(void **state)
{
    (void)state;
    chunk_src s;
    chunk_init(&s, 1000, NULL, 0);
    sb_buffer *b = open_chunk(&s, NULL);
    assert_non_null(b);
    assert_int_equal(check_read(b, 900, 500, 100), 0);
    assert_int_equal(check_read(b, 999, 2, 1), 0);
    assert_int_equal(check_read(b, 0, 1 << 20, 1000), 0);
    sb_close(b);
}

static void test_short_count_spilled_end(void **state)
{
    (void)state;
    /* The end lies in the spill file. */
    chunk_src s;
    chunk_init(&s, 10000, NULL, 0);
    sb_options o = {.mem_limit = 4096};
    sb_buffer *b = open_chunk(&s, &o);
    assert_non_null(b);
    assert_int_equal(check_read(b, 9000, 5000, 1000), 0);
    assert_int_equal(check_read(b, 4000, 10000, 6000), 0);
    assert_int_equal(check_read(b, 10000, 10, 0), 0);
    sb_close(b);
}

static void test_blocked_reader_gets_short_count_at_end(void **state)
{
    (void)state;
    gate_src g;
    gate_init(&g);
    sb_buffer *b = open_gate(&g, NULL);
    assert_non_null(b);
    reader r, past;
    assert_int_equal(reader_start(&r, b, RD_PREAD, 900, 500, 0), 0);
    assert_int_equal(reader_start(&past, b, RD_PREAD, 1200, 10, 0), 0);
    gate_allow(&g, 1000);
    assert_true(wait_available(b, 1000, WAIT_LONG_MS));
    sleep_ms(SETTLE_MS);
    int early = reader_done(&r) || reader_done(&past);
    gate_end(&g);
    int ok = reader_wait(&r, WAIT_LONG_MS) && reader_wait(&past, WAIT_LONG_MS);
    reader_join(&r);
    reader_join(&past);
    assert_false(early);
    assert_true(ok);
    assert_int_equal(r.ret, 100);
    assert_int_equal(r.bad, 0);
    assert_int_equal(past.ret, 0);
    sb_close(b);
    gate_destroy(&g);
}

static void test_zero_at_or_past_end(void **state)
{
    (void)state;
    chunk_src s;
    chunk_init(&s, 5000, NULL, 0);
    sb_options o = {.mem_limit = 4096};
    sb_buffer *b = open_chunk(&s, &o);
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
    sb_close(b);
}

static void test_n_zero_returns_zero_at_once(void **state)
{
    (void)state;
    /* Nothing has arrived and nothing will until the end of the test: a
       zero-length read must still return 0 at once, anywhere. */
    gate_src g;
    gate_init(&g);
    sb_buffer *b = open_gate(&g, NULL);
    assert_non_null(b);
    reader r0, r1, r2;
    assert_int_equal(reader_start(&r0, b, RD_PREAD, 0, 0, 0), 0);
    assert_int_equal(reader_start(&r1, b, RD_PREAD, 1000000, 0, 0), 0);
    assert_int_equal(reader_start(&r2, b, RD_TIMED, 77, 0, -1), 0);
    int ok = reader_wait(&r0, WAIT_LONG_MS) &&
             reader_wait(&r1, WAIT_LONG_MS) && reader_wait(&r2, WAIT_LONG_MS);
    if (!ok)
        gate_end(&g); /* unblock a buggy library so the threads can end */
    reader_join(&r0);
    reader_join(&r1);
    reader_join(&r2);
    assert_true(ok);
    assert_int_equal(r0.ret, 0);
    assert_int_equal(r1.ret, 0);
    assert_int_equal(r2.ret, 0);
    /* Nor does it wait for anything on an ended or cancelled stream. */
    unsigned char c;
    gate_end(&g);
    assert_int_equal(sb_wait_end(b, NULL), 0);
    assert_int_equal(sb_pread(b, &c, 0, 0), 0);
    assert_int_equal(sb_pread(b, &c, 0, 12345), 0);
    sb_close(b);
    gate_destroy(&g);
}

/* ---- sb_available and sb_wait_end ------------------------------------------ */

static void test_available_grows_to_length(void **state)
{
    (void)state;
    gate_src g;
    gate_init(&g);
    sb_options o = {.mem_limit = 2500};
    sb_buffer *b = open_gate(&g, &o);
    assert_non_null(b);
    assert_int_equal(sb_available(b), 0);
    uint64_t last = 0;
    for (uint64_t step = 1000; step <= 5000; step += 1000) {
        gate_allow(&g, step);
        assert_true(wait_available(b, step, WAIT_LONG_MS));
        assert_true(gate_wait_blocked(&g, WAIT_LONG_MS));
        uint64_t a = sb_available(b);
        /* Never more than the source delivered; never goes back. */
        assert_int_equal(a, step);
        assert_true(a >= last);
        last = a;
        /* [0, available) never blocks. */
        unsigned char *buf = malloc((size_t)a);
        assert_non_null(buf);
        assert_int_equal(sb_pread_timed(b, buf, (size_t)a, 0, 0), (ssize_t)a);
        assert_int_equal(gen_mismatches(buf, (size_t)a, 0), 0);
        free(buf);
    }
    gate_end(&g);
    uint64_t len = 0;
    assert_int_equal(sb_wait_end(b, &len), 0);
    assert_int_equal(len, 5000);
    assert_int_equal(sb_available(b), 5000);
    sb_close(b);
    gate_destroy(&g);
}

static void test_wait_end_length_and_null(void **state)
{
    (void)state;
    chunk_src s;
    chunk_init(&s, 12345, NULL, 0);
    sb_options o = {.mem_limit = 4096};
    sb_buffer *b = open_chunk(&s, &o);
    assert_non_null(b);
    uint64_t len = 0;
    assert_int_equal(sb_wait_end(b, &len), 0);
    assert_int_equal(len, 12345);
    assert_int_equal(sb_wait_end(b, NULL), 0);
    len = 0;
    assert_int_equal(sb_wait_end(b, &len), 0);
    assert_int_equal(len, 12345);
    assert_int_equal(sb_available(b), 12345);
    sb_close(b);
}

static void test_wait_end_blocks_until_end(void **state)
{
    (void)state;
    gate_src g;
    gate_init(&g);
    sb_buffer *b = open_gate(&g, NULL);
    assert_non_null(b);
    gate_allow(&g, 777);
    reader w, wn;
    assert_int_equal(reader_start(&w, b, RD_WAIT_END, 0, 0, 0), 0);
    assert_int_equal(reader_start(&wn, b, RD_WAIT_END_NULL, 0, 0, 0), 0);
    assert_true(wait_available(b, 777, WAIT_LONG_MS));
    sleep_ms(SETTLE_MS);
    int early = reader_done(&w) || reader_done(&wn);
    gate_end(&g);
    int ok = reader_wait(&w, WAIT_LONG_MS) && reader_wait(&wn, WAIT_LONG_MS);
    reader_join(&w);
    reader_join(&wn);
    assert_false(early);
    assert_true(ok);
    assert_int_equal(w.ret, 0);
    assert_int_equal(w.length, 777);
    assert_int_equal(wn.ret, 0);
    sb_close(b);
    gate_destroy(&g);
}

/* ---- options that shape reading ----------------------------------------------- */

static void test_length_hint_is_only_a_hint(void **state)
{
    (void)state;
    static const uint64_t hints[] = {100, 5000, 1000000};
    for (size_t i = 0; i < 3; i++) {
        chunk_src s;
        chunk_init(&s, 5000, NULL, 0);
        sb_options o = {.length_hint = hints[i], .mem_limit = 4096};
        sb_buffer *b = open_chunk(&s, &o);
        assert_non_null(b);
        assert_int_equal(check_stream(b, 5000), 0);
        sb_close(b);
    }
}

static void test_chunk_size_caps_source_reads(void **state)
{
    (void)state;
    chunk_src s;
    chunk_init(&s, 50000, NULL, 0);
    sb_options o = {.chunk_size = 1000};
    sb_buffer *b = open_chunk(&s, &o);
    assert_non_null(b);
    assert_int_equal(check_stream(b, 50000), 0);
    sb_close(b);
    assert_true(s.max_cap > 0);
    assert_true(s.max_cap <= 1000);

    /* Default: 64 KiB. */
    chunk_init(&s, 300000, NULL, 0);
    b = open_chunk(&s, NULL);
    assert_non_null(b);
    assert_int_equal(check_stream(b, 300000), 0);
    sb_close(b);
    assert_true(s.max_cap > 0);
    assert_true(s.max_cap <= 65536);
}

static void test_reads_during_production(void **state)
{
    (void)state;
    /* A slow source; reads at random places while it is still coming. */
    static const size_t pat[] = {3000, 1, 4500};
    chunk_src s;
    chunk_init(&s, 400000, pat, 3);
    s.delay_us = 200;
    sb_options o = {.mem_limit = 100000, .chunk_size = 8192};
    sb_buffer *b = open_chunk(&s, &o);
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
    sb_close(b);
}

/* ---- the source contract ------------------------------------------------------- */

static void *read_some(void *arg)
{
    sb_buffer *b = arg;
    unsigned char buf[512];
    for (uint64_t off = 0; off < 20000; off += 300)
        if (sb_pread(b, buf, sizeof buf, off) < 0)
            break;
    return NULL;
}

static void test_callbacks_on_producer_thread_one_at_a_time(void **state)
{
    (void)state;
    static const size_t pat[] = {1, 100, 7};
    chunk_src s;
    chunk_init(&s, 20000, pat, 3);
    sb_options o = {.mem_limit = 4096};
    sb_buffer *b = open_chunk(&s, &o);
    assert_non_null(b);
    pthread_t th[4];
    int started = 0;
    for (int i = 0; i < 4; i++)
        started += pthread_create(&th[i], NULL, read_some, b) == 0;
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(started, 4);
    assert_int_equal(check_stream(b, 20000), 0);
    sb_close(b);
    assert_true(atomic_load(&s.calls) > 100);
    assert_int_equal(atomic_load(&s.on_caller_thread), 0);
    assert_int_equal(atomic_load(&s.thread_changes), 0);
    assert_int_equal(atomic_load(&s.overlaps), 0);
    assert_int_equal(atomic_load(&s.closes), 1);
    /* close comes from sb_close, after the producer stopped. */
    assert_true(pthread_equal(s.close_thread, pthread_self()));
    assert_int_equal(atomic_load(&s.close_during_call), 0);
}

static void test_open_copies_src_and_opts(void **state)
{
    (void)state;
    char *dir = scratch_new();
    assert_non_null(dir);
    char path[256];
    snprintf(path, sizeof path, "%s", dir);
    gate_src g;
    gate_init(&g);
    sb_source src = gate_source(&g);
    sb_options o = {.mem_limit = 4096, .tmp_dir = path, .chunk_size = 1000};
    sb_buffer *b = sb_open(&src, &o);
    assert_non_null(b);
    /* Clobber everything the caller passed. */
    memset(&src, 0, sizeof src);
    o.mem_limit = 1;
    o.max_size = 5;
    o.tmp_dir = "/nonexistent/sbtest/dir";
    o.chunk_size = 1;
    memset(path, 'x', sizeof path - 1);
    path[sizeof path - 1] = '\0';
    gate_allow(&g, 20000);
    gate_end(&g);
    assert_int_equal(check_stream(b, 20000), 0);
    assert_true(fds_into_dir(dir) >= 1); /* spilled where it was told */
    sb_close(b);
    assert_int_equal(atomic_load(&g.closes), 1);
    gate_destroy(&g);
    scratch_free(dir);
}

/* ---- sb_open_mem ------------------------------------------------------------------ */

static void test_open_mem_reads_callers_bytes(void **state)
{
    (void)state;
    size_t len = 100000;
    unsigned char *data = malloc(len);
    assert_non_null(data);
    gen_fill(data, len, 0);
    int threads = count_threads();
    sb_options o = {.mem_limit = 4096, .chunk_size = 100}; /* no effect */
    sb_buffer *b = sb_open_mem(data, len, &o);
    assert_non_null(b);
    /* Ended at once, no thread started. */
    assert_int_equal(sb_available(b), len);
    assert_int_equal(count_threads(), threads);
    unsigned char buf[64];
    assert_int_equal(sb_pread_timed(b, buf, 64, len - 64, 0), 64);
    assert_int_equal(gen_mismatches(buf, 64, len - 64), 0);
    assert_int_equal(check_stream(b, len), 0);
    sb_close(b);
    free(data);
}

static void test_open_mem_copies_nothing(void **state)
{
    (void)state;
    /* 32 MiB of resident data: a copy would add as much again. */
    const size_t len = 32u << 20;
    unsigned char *data = malloc(len);
    assert_non_null(data);
    gen_fill(data, len, 0);
    long long before = rss_bytes();
    sb_buffer *b = sb_open_mem(data, len, NULL);
    assert_non_null(b);
    unsigned char buf[4096];
    for (uint64_t off = 0; off < len; off += len / 64) {
        assert_int_equal(sb_pread(b, buf, sizeof buf, off), (ssize_t)sizeof buf);
        assert_int_equal(gen_mismatches(buf, sizeof buf, off), 0);
    }
    long long after = rss_bytes();
    assert_int_equal(check_read(b, len - 100000, 200000, 100000), 0);
    sb_close(b);
    free(data);
    assert_true(before > 0);
    assert_true(after - before < (long long)(8u << 20));
}

static void test_open_mem_max_size_efbig(void **state)
{
    (void)state;
    unsigned char data[1000];
    gen_fill(data, sizeof data, 0);
    sb_options o = {.max_size = 600};
    sb_buffer *b = sb_open_mem(data, sizeof data, &o);
    assert_non_null(b);
    assert_int_equal(sb_available(b), 600);
    assert_int_equal(check_read(b, 0, 600, 600), 0);
    assert_int_equal(check_read(b, 500, 200, 100), 0);
    assert_int_equal(check_read_err(b, 600, 10, EFBIG), 0);
    assert_int_equal(check_read_err(b, 900, 10, EFBIG), 0);
    uint64_t len = 77;
    assert_fails_with(sb_wait_end(b, &len), EFBIG);
    assert_int_equal(len, 77); /* not written on failure */
    sb_close(b);

    /* max_size == len: ends normally. */
    o.max_size = sizeof data;
    b = sb_open_mem(data, sizeof data, &o);
    assert_non_null(b);
    assert_int_equal(check_stream(b, sizeof data), 0);
    sb_close(b);
}

static void test_open_mem_empty(void **state)
{
    (void)state;
    sb_buffer *b = sb_open_mem(NULL, 0, NULL);
    assert_non_null(b);
    uint64_t len = 5;
    assert_int_equal(sb_wait_end(b, &len), 0);
    assert_int_equal(len, 0);
    assert_int_equal(sb_available(b), 0);
    assert_int_equal(check_read(b, 0, 10, 0), 0);
    sb_close(b);

    char one = 'x';
    b = sb_open_mem(&one, 0, NULL);
    assert_non_null(b);
    assert_int_equal(sb_wait_end(b, &len), 0);
    assert_int_equal(len, 0);
    assert_int_equal(check_read(b, 0, 1, 0), 0);
    sb_close(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_source_defaults),
        cmocka_unit_test(test_read_source_variable_chunks),
        cmocka_unit_test(test_read_source_one_byte_chunks),
        cmocka_unit_test(test_read_source_empty_stream),
        cmocka_unit_test(test_iter_variable_chunks_with_empty),
        cmocka_unit_test(test_iter_one_byte_chunks),
        cmocka_unit_test(test_iter_big_chunks_cross_mem_limit),
        cmocka_unit_test(test_iter_null_empty_chunks),
        cmocka_unit_test(test_iter_only_empty_chunks),
        cmocka_unit_test(test_iter_empty_chunks_then_data),
        cmocka_unit_test(test_reads_around_watermark),
        cmocka_unit_test(test_short_count_at_end),
        cmocka_unit_test(test_short_count_spilled_end),
        cmocka_unit_test(test_blocked_reader_gets_short_count_at_end),
        cmocka_unit_test(test_zero_at_or_past_end),
        cmocka_unit_test(test_n_zero_returns_zero_at_once),
        cmocka_unit_test(test_available_grows_to_length),
        cmocka_unit_test(test_wait_end_length_and_null),
        cmocka_unit_test(test_wait_end_blocks_until_end),
        cmocka_unit_test(test_length_hint_is_only_a_hint),
        cmocka_unit_test(test_chunk_size_caps_source_reads),
        cmocka_unit_test(test_reads_during_production),
        cmocka_unit_test(test_callbacks_on_producer_thread_one_at_a_time),
        cmocka_unit_test(test_open_copies_src_and_opts),
        cmocka_unit_test(test_open_mem_reads_callers_bytes),
        cmocka_unit_test(test_open_mem_copies_nothing),
        cmocka_unit_test(test_open_mem_max_size_efbig),
        cmocka_unit_test(test_open_mem_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
