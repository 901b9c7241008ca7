/* SPDX-License-Identifier: MIT */
/*
 * test_timed.c - sb_pread_timed: 0 never waits, a positive timeout waits
 * about that long, -1 waits for data, and what ends a wait early.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <string.h>

#include "helpers.h"

/* A gated stream with its first `filled` bytes in. */
static sb_buffer *gated_with(gate_src *g, uint64_t filled)
{
    gate_init(g);
    sb_options o = {.mem_limit = 4096};
    sb_buffer *b = open_gate(g, &o);
    if (b == NULL)
        return NULL;
    gate_allow(g, filled);
    if (!wait_available(b, filled, WAIT_LONG_MS) ||
        !gate_wait_blocked(g, WAIT_LONG_MS))
        return NULL;
    return b;
}

static void finish_gated(sb_buffer *b, gate_src *g)
{
    gate_end(g);
    sb_close(b);
    gate_destroy(g);
}

static int all_bytes(const unsigned char *p, size_t n, unsigned char v)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != v)
            return 0;
    return 1;
}

static void test_zero_timeout_unfilled(void **state)
{
    (void)state;
    gate_src g;
    sb_buffer *b = gated_with(&g, 0);
    assert_non_null(b);
    unsigned char buf[100];
    memset(buf, 0x5A, sizeof buf);
    double t0 = now_ms();
    assert_fails_with(sb_pread_timed(b, buf, 100, 0, 0), ETIMEDOUT);
    assert_fails_with(sb_pread_timed(b, buf, 1, 1000000, 0), ETIMEDOUT);
    double dt = now_ms() - t0;
    assert_true(dt < 1000.0); /* never waits (generous for TSan) */
    assert_true(all_bytes(buf, sizeof buf, 0x5A));
    finish_gated(b, &g);
}

static void test_zero_timeout_partly_filled_copies_nothing(void **state)
{
    (void)state;
    gate_src g;
    sb_buffer *b = gated_with(&g, 5000); /* spilled past 4096 */
    assert_non_null(b);
    unsigned char buf[200];
    memset(buf, 0x5A, sizeof buf);
    /* [4900, 5100): half of it has arrived; on timeout nothing is copied. */
    assert_fails_with(sb_pread_timed(b, buf, 200, 4900, 0), ETIMEDOUT);
    assert_true(all_bytes(buf, sizeof buf, 0x5A));
    assert_fails_with(sb_pread_timed(b, buf, 200, 4950, 1), ETIMEDOUT);
    assert_true(all_bytes(buf, sizeof buf, 0x5A));
    finish_gated(b, &g);
}

static void test_zero_timeout_filled_returns_data(void **state)
{
    (void)state;
    gate_src g;
    sb_buffer *b = gated_with(&g, 6000);
    assert_non_null(b);
    unsigned char buf[6000];
    assert_int_equal(sb_pread_timed(b, buf, 6000, 0, 0), 6000);
    assert_int_equal(gen_mismatches(buf, 6000, 0), 0);
    assert_int_equal(sb_pread_timed(b, buf, 100, 4050, 0), 100);
    assert_int_equal(gen_mismatches(buf, 100, 4050), 0);
    assert_int_equal(sb_pread_timed(b, buf, 1, 5999, 0), 1);
    assert_int_equal(gen_mismatches(buf, 1, 5999), 0);
    finish_gated(b, &g);
}

static void test_positive_timeout_waits_then_etimedout(void **state)
{
    (void)state;
    gate_src g;
    sb_buffer *b = gated_with(&g, 1000);
    assert_non_null(b);
    unsigned char buf[200];
    memset(buf, 0x5A, sizeof buf);
    double t0 = now_ms();
    errno = 0;
    ssize_t r = sb_pread_timed(b, buf, 200, 900, 300);
    int err = errno;
    double dt = now_ms() - t0;
    assert_int_equal(r, -1);
    assert_int_equal(err, ETIMEDOUT);
    assert_true(dt >= 295.0); /* at least the timeout (ms rounding) */
    assert_true(dt < 10000.0);
    assert_true(all_bytes(buf, sizeof buf, 0x5A));

    t0 = now_ms();
    assert_fails_with(sb_pread_timed(b, buf, 1, 1000, 50), ETIMEDOUT);
    dt = now_ms() - t0;
    assert_true(dt >= 45.0);
    assert_true(dt < 10000.0);
    finish_gated(b, &g);
}

static void test_minus_one_waits_for_data(void **state)
{
    (void)state;
    gate_src g;
    sb_buffer *b = gated_with(&g, 100);
    assert_non_null(b);
    reader r;
    assert_int_equal(reader_start(&r, b, RD_TIMED, 50, 5000, -1), 0);
    sleep_ms(3 * SETTLE_MS);
    int early = reader_done(&r);
    gate_allow(&g, 5050);
    int ok = reader_wait(&r, WAIT_LONG_MS);
    reader_join(&r);
    assert_false(early);
    assert_true(ok);
    assert_int_equal(r.ret, 5000);
    assert_int_equal(r.bad, 0);
    finish_gated(b, &g);
}

static void test_timed_read_succeeds_before_timeout(void **state)
{
    (void)state;
    gate_src g;
    sb_buffer *b = gated_with(&g, 0);
    assert_non_null(b);
    reader r;
    assert_int_equal(reader_start(&r, b, RD_TIMED, 4000, 1000, 60000), 0);
    sleep_ms(SETTLE_MS);
    int early = reader_done(&r);
    gate_allow(&g, 5000);
    int ok = reader_wait(&r, WAIT_LONG_MS);
    reader_join(&r);
    assert_false(early);
    assert_true(ok);
    assert_int_equal(r.ret, 1000);
    assert_int_equal(r.bad, 0);
    assert_true(r.elapsed_ms < 30000.0); /* long before the timeout */
    finish_gated(b, &g);
}

static void test_timed_wait_ended_by_end_of_stream(void **state)
{
    (void)state;
    gate_src g;
    sb_buffer *b = gated_with(&g, 1000);
    assert_non_null(b);
    reader straddle, past;
    assert_int_equal(reader_start(&straddle, b, RD_TIMED, 900, 500, 60000),
                     0);
    assert_int_equal(reader_start(&past, b, RD_TIMED, 2000, 10, 60000), 0);
    sleep_ms(SETTLE_MS);
    int early = reader_done(&straddle) || reader_done(&past);
    gate_end(&g);
    int ok = reader_wait(&straddle, WAIT_LONG_MS) &&
             reader_wait(&past, WAIT_LONG_MS);
    reader_join(&straddle);
    reader_join(&past);
    assert_false(early);
    assert_true(ok);
    assert_int_equal(straddle.ret, 100);
    assert_int_equal(straddle.bad, 0);
    assert_int_equal(past.ret, 0);
    assert_true(straddle.elapsed_ms < 30000.0);
    /* After the end, a zero timeout gives short counts and 0, not
       ETIMEDOUT. */
    unsigned char buf[500];
    assert_int_equal(sb_pread_timed(b, buf, 500, 900, 0), 100);
    assert_int_equal(gen_mismatches(buf, 100, 900), 0);
    assert_int_equal(sb_pread_timed(b, buf, 10, 1000, 0), 0);
    finish_gated(b, &g);
}

static void test_timed_wait_ended_by_failure(void **state)
{
    (void)state;
    gate_src g;
    sb_buffer *b = gated_with(&g, 1000);
    assert_non_null(b);
    reader r;
    assert_int_equal(reader_start(&r, b, RD_TIMED, 1500, 10, 60000), 0);
    sleep_ms(SETTLE_MS);
    int early = reader_done(&r);
    gate_fail(&g, EPROTO);
    int ok = reader_wait(&r, WAIT_LONG_MS);
    reader_join(&r);
    assert_false(early);
    assert_true(ok);
    assert_int_equal(r.ret, -1);
    assert_int_equal(r.err, EPROTO);
    assert_true(r.elapsed_ms < 30000.0);
    /* Zero timeout after the failure: the stream's error, not ETIMEDOUT. */
    unsigned char buf[10];
    assert_fails_with(sb_pread_timed(b, buf, 10, 1500, 0), EPROTO);
    assert_int_equal(sb_pread_timed(b, buf, 10, 990, 0), 10);
    assert_int_equal(gen_mismatches(buf, 10, 990), 0);
    finish_gated(b, &g);
}

static void test_timed_after_cancel(void **state)
{
    (void)state;
    gate_src g;
    sb_buffer *b = gated_with(&g, 1000);
    assert_non_null(b);
    sb_cancel(b);
    unsigned char buf[10];
    assert_fails_with(sb_pread_timed(b, buf, 10, 1000, 0), ECANCELED);
    assert_fails_with(sb_pread_timed(b, buf, 10, 1000, 10000), ECANCELED);
    assert_fails_with(sb_pread_timed(b, buf, 10, 1000, -1), ECANCELED);
    assert_int_equal(sb_pread_timed(b, buf, 10, 995, 0), 5);
    assert_int_equal(gen_mismatches(buf, 5, 995), 0);
    finish_gated(b, &g);
}

static void test_timeout_below_minus_one_einval(void **state)
{
    (void)state;
    gate_src g;
    sb_buffer *b = gated_with(&g, 1000);
    assert_non_null(b);
    unsigned char buf[10];
    memset(buf, 0x5A, sizeof buf);
    /* Invalid even when the bytes are there, and even for n == 0. */
    assert_fails_with(sb_pread_timed(b, buf, 10, 0, -2), EINVAL);
    assert_fails_with(sb_pread_timed(b, buf, 10, 0, INT_MIN), EINVAL);
    assert_fails_with(sb_pread_timed(b, buf, 10, 5000, -100), EINVAL);
    assert_fails_with(sb_pread_timed(b, buf, 0, 0, -2), EINVAL);
    assert_true(all_bytes(buf, sizeof buf, 0x5A));
    /* -1 and 0 and large values are fine. */
    assert_int_equal(sb_pread_timed(b, buf, 10, 0, -1), 10);
    assert_int_equal(sb_pread_timed(b, buf, 10, 0, INT_MAX), 10);
    assert_int_equal(gen_mismatches(buf, 10, 0), 0);
    finish_gated(b, &g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zero_timeout_unfilled),
        cmocka_unit_test(test_zero_timeout_partly_filled_copies_nothing),
        cmocka_unit_test(test_zero_timeout_filled_returns_data),
        cmocka_unit_test(test_positive_timeout_waits_then_etimedout),
        cmocka_unit_test(test_minus_one_waits_for_data),
        cmocka_unit_test(test_timed_read_succeeds_before_timeout),
        cmocka_unit_test(test_timed_wait_ended_by_end_of_stream),
        cmocka_unit_test(test_timed_wait_ended_by_failure),
        cmocka_unit_test(test_timed_after_cancel),
        cmocka_unit_test(test_timeout_below_minus_one_einval),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
