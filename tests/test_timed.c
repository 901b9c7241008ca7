/* SPDX-License-Identifier: MIT */
/*
 * test_timed.c - sb_pread_timed and sb_wait_end_timed: 0 never waits, a
 * positive timeout waits about that long, -1 waits for data, and what ends
 * a wait early.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <string.h>

#include "fixture.h"

/*
 * The timeout of readers that must be ended by the stream, not the clock.
 * Such a reader is waited for at most twice WAIT_LONG_MS from its start
 * (once until it waits, once after the event), so a library that held it
 * until its deadline fails reader_wait; and its result (bytes, 0, the
 * stream's error) is not ETIMEDOUT.  Together they say "long before the
 * timeout"; an elapsed-time bound on top could not fail.
 */
#define LONG_TIMEOUT_MS 60000
_Static_assert(2 * WAIT_LONG_MS < LONG_TIMEOUT_MS,
               "reader_wait must give up before LONG_TIMEOUT_MS runs out");

/* A gated stream with its first `filled` bytes in and the producer blocked
   for more; NULL if it did not get there.  Teardown ends and closes it. */
static sb_buffer *gated_with(gate_src **gp, uint64_t filled)
{
    gate_src *g = fx_gate();
    *gp = g;
    sb_options o = {.mem_limit = 4096};
    sb_buffer *b = fx_buffer(open_gate(g, &o));
    if (b == NULL)
        return NULL;
    gate_allow(g, filled);
    if (!wait_available(b, filled, WAIT_LONG_MS) ||
        !gate_wait_blocked(g, WAIT_LONG_MS))
        return NULL;
    return b;
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
    gate_src *g;
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
}

static void test_zero_timeout_partly_filled_copies_nothing(void **state)
{
    (void)state;
    gate_src *g;
    sb_buffer *b = gated_with(&g, 5000); /* spilled past 4096 */
    assert_non_null(b);
    unsigned char buf[200];
    memset(buf, 0x5A, sizeof buf);
    /* [4900, 5100): half of it has arrived; on timeout nothing is copied. */
    assert_fails_with(sb_pread_timed(b, buf, 200, 4900, 0), ETIMEDOUT);
    assert_true(all_bytes(buf, sizeof buf, 0x5A));
    assert_fails_with(sb_pread_timed(b, buf, 200, 4950, 1), ETIMEDOUT);
    assert_true(all_bytes(buf, sizeof buf, 0x5A));
}

static void test_zero_timeout_filled_returns_data(void **state)
{
    (void)state;
    gate_src *g;
    sb_buffer *b = gated_with(&g, 6000);
    assert_non_null(b);
    unsigned char *buf = fx_calloc(6000);
    assert_int_equal(sb_pread_timed(b, buf, 6000, 0, 0), 6000);
    assert_int_equal(gen_mismatches(buf, 6000, 0), 0);
    assert_int_equal(sb_pread_timed(b, buf, 100, 4050, 0), 100);
    assert_int_equal(gen_mismatches(buf, 100, 4050), 0);
    assert_int_equal(sb_pread_timed(b, buf, 1, 5999, 0), 1);
    assert_int_equal(gen_mismatches(buf, 1, 5999), 0);
}

/* The timeouts elapsing are what this tests. */
static void test_positive_timeout_waits_then_etimedout(void **state)
{
    (void)state;
    gate_src *g;
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
}

static void test_minus_one_waits_for_data(void **state)
{
    (void)state;
    gate_src *g;
    sb_buffer *b = gated_with(&g, 100);
    assert_non_null(b);
    reader *r = fx_reader(b, RD_TIMED, 50, 5000, -1);
    assert_non_null(r);
    assert_true(wait_for_waiters(b, 1, WAIT_LONG_MS));
    /* -1 is no finite timeout: a 300 ms one for the same bytes, started
       after r was waiting, runs out while r still waits.  That timeout
       elapsing is what this part tests. */
    unsigned char *buf = fx_calloc(5000);
    assert_fails_with(sb_pread_timed(b, buf, 5000, 50, 300),
                      ETIMEDOUT);
    assert_false(reader_done(r));
    gate_allow(g, 5050);
    assert_true(reader_wait(r, WAIT_LONG_MS));
    assert_int_equal(r->ret, 5000);
    assert_int_equal(r->bad, 0);
}

static void test_timed_read_succeeds_before_timeout(void **state)
{
    (void)state;
    gate_src *g;
    sb_buffer *b = gated_with(&g, 0);
    assert_non_null(b);
    reader *r = fx_reader(b, RD_TIMED, 4000, 1000, LONG_TIMEOUT_MS);
    assert_non_null(r);
    assert_true(wait_for_waiters(b, 1, WAIT_LONG_MS));
    assert_false(reader_done(r));
    gate_allow(g, 5000);
    /* Long before the timeout: see LONG_TIMEOUT_MS. */
    assert_true(reader_wait(r, WAIT_LONG_MS));
    assert_int_equal(r->ret, 1000);
    assert_int_equal(r->bad, 0);
}

static void test_timed_wait_ended_by_end_of_stream(void **state)
{
    (void)state;
    gate_src *g;
    sb_buffer *b = gated_with(&g, 1000);
    assert_non_null(b);
    reader *straddle = fx_reader(b, RD_TIMED, 900, 500, LONG_TIMEOUT_MS);
    reader *past = fx_reader(b, RD_TIMED, 2000, 10, LONG_TIMEOUT_MS);
    assert_non_null(straddle);
    assert_non_null(past);
    assert_true(wait_for_waiters(b, 2, WAIT_LONG_MS));
    assert_false(reader_done(straddle));
    assert_false(reader_done(past));
    gate_end(g);
    /* Long before the timeout: see LONG_TIMEOUT_MS. */
    assert_true(reader_wait(straddle, WAIT_LONG_MS));
    assert_true(reader_wait(past, WAIT_LONG_MS));
    assert_int_equal(straddle->ret, 100);
    assert_int_equal(straddle->bad, 0);
    assert_int_equal(past->ret, 0);
    /* After the end, a zero timeout gives short counts and 0, not
       ETIMEDOUT. */
    unsigned char buf[500];
    assert_int_equal(sb_pread_timed(b, buf, 500, 900, 0), 100);
    assert_int_equal(gen_mismatches(buf, 100, 900), 0);
    assert_int_equal(sb_pread_timed(b, buf, 10, 1000, 0), 0);
}

static void test_timed_wait_ended_by_failure(void **state)
{
    (void)state;
    gate_src *g;
    sb_buffer *b = gated_with(&g, 1000);
    assert_non_null(b);
    reader *r = fx_reader(b, RD_TIMED, 1500, 10, LONG_TIMEOUT_MS);
    assert_non_null(r);
    assert_true(wait_for_waiters(b, 1, WAIT_LONG_MS));
    assert_false(reader_done(r));
    gate_fail(g, EPROTO);
    /* Long before the timeout: see LONG_TIMEOUT_MS. */
    assert_true(reader_wait(r, WAIT_LONG_MS));
    assert_int_equal(r->ret, -1);
    assert_int_equal(r->err, EPROTO);
    /* Zero timeout after the failure: the stream's error, not ETIMEDOUT. */
    unsigned char buf[10];
    assert_fails_with(sb_pread_timed(b, buf, 10, 1500, 0), EPROTO);
    assert_int_equal(sb_pread_timed(b, buf, 10, 990, 0), 10);
    assert_int_equal(gen_mismatches(buf, 10, 990), 0);
}

static void test_timed_after_cancel(void **state)
{
    (void)state;
    gate_src *g;
    sb_buffer *b = gated_with(&g, 1000);
    assert_non_null(b);
    sb_cancel(b);
    unsigned char buf[10];
    assert_fails_with(sb_pread_timed(b, buf, 10, 1000, 0), ECANCELED);
    assert_fails_with(sb_pread_timed(b, buf, 10, 1000, 10000), ECANCELED);
    assert_fails_with(sb_pread_timed(b, buf, 10, 1000, -1), ECANCELED);
    assert_int_equal(sb_pread_timed(b, buf, 10, 995, 0), 5);
    assert_int_equal(gen_mismatches(buf, 5, 995), 0);
}

static void test_timeout_below_minus_one_einval(void **state)
{
    (void)state;
    gate_src *g;
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
}

/* ---- sb_wait_end_timed ------------------------------------------------------------ */

typedef struct end_call {
    sb_buffer *b;
    int timeout_ms;
    int ret, err;
    uint64_t len;
} end_call;

static void do_wait_end(void *arg)
{
    end_call *c = arg;
    errno = 0;
    c->len = UINT64_MAX;
    c->ret = sb_wait_end_timed(c->b, &c->len, c->timeout_ms);
    c->err = errno;
}

/* While the stream runs: 0 returns at once, a positive timeout elapses
   (what this tests), and neither writes *length nor changes the stream. */
static void test_wait_end_timed_times_out(void **state)
{
    (void)state;
    gate_src *g;
    sb_buffer *b = gated_with(&g, 1000);
    assert_non_null(b);
    uint64_t len = 77;
    assert_fails_with(sb_wait_end_timed(b, &len, 0), ETIMEDOUT);
    double t0 = now_ms();
    assert_fails_with(sb_wait_end_timed(b, &len, 200), ETIMEDOUT);
    double dt = now_ms() - t0;
    assert_true(dt >= 195.0);
    assert_true(dt < 10000.0);
    assert_int_equal(len, 77);
    sb_stats st;
    assert_int_equal(sb_get_stats(b, &st), 0);
    assert_int_equal(st.state, SB_RUNNING);
    assert_int_equal(st.filled, 1000);
    assert_int_equal(st.waiting, 0);
    /* It demanded everything, as sb_wait_end does (a read_ahead stream
       runs on); the stream goes on and ends as before. */
    assert_int_equal(st.demand, UINT64_MAX);
    gate_allow(g, 3000);
    gate_end(g);
    assert_int_equal(sb_wait_end_timed(b, &len, -1), 0);
    assert_int_equal(len, 3000);
}

/* A timed wait is ended by the end of the stream, its failure or cancel,
   long before its timeout (see LONG_TIMEOUT_MS), with the stream's answer. */
static void test_wait_end_timed_ended_by_the_stream(void **state)
{
    (void)state;
    for (int how = 0; how < 3; how++) {
        gate_src *g;
        sb_buffer *b = gated_with(&g, 1000);
        assert_non_null(b);
        end_call *c = fx_calloc(sizeof *c);
        *c = (end_call){.b = b, .timeout_ms = LONG_TIMEOUT_MS};
        bg_call *bg = fx_bg(do_wait_end, c);
        assert_non_null(bg);
        assert_true(wait_for_waiters(b, 1, WAIT_LONG_MS));
        if (how == 0) {
            gate_allow(g, 2500);
            gate_end(g);
        } else if (how == 1) {
            gate_fail(g, EPROTO);
        } else {
            sb_cancel(b);
        }
        assert_true(bg_wait(bg, WAIT_LONG_MS));
        static const int want_err[] = {0, EPROTO, ECANCELED};
        if (how == 0) {
            assert_int_equal(c->ret, 0);
            assert_int_equal(c->len, 2500);
        } else {
            assert_int_equal(c->ret, -1);
            assert_int_equal(c->err, want_err[how]);
            assert_int_equal(c->len, UINT64_MAX); /* not written */
        }
        /* And at once afterwards, whatever the timeout. */
        uint64_t len = UINT64_MAX;
        errno = 0;
        assert_int_equal(sb_wait_end_timed(b, &len, 0), how == 0 ? 0 : -1);
        assert_int_equal(errno, want_err[how]);
        assert_int_equal(len, how == 0 ? 2500 : UINT64_MAX);
        assert_int_equal(sb_wait_end_timed(b, NULL, 0), how == 0 ? 0 : -1);
    }
}

static void test_wait_end_timed_bad_arguments(void **state)
{
    (void)state;
    gate_src *g;
    sb_buffer *b = gated_with(&g, 10);
    assert_non_null(b);
    uint64_t len = 5;
    assert_fails_with(sb_wait_end_timed(NULL, &len, 0), EINVAL);
    assert_fails_with(sb_wait_end_timed(b, &len, -2), EINVAL);
    assert_fails_with(sb_wait_end_timed(b, &len, INT_MIN), EINVAL);
    assert_int_equal(len, 5);
    gate_end(g);
    assert_fails_with(sb_wait_end_timed(b, &len, -2), EINVAL); /* even ended */
    assert_int_equal(sb_wait_end_timed(b, &len, INT_MAX), 0);
    assert_int_equal(len, 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        FX_TEST(test_zero_timeout_unfilled),
        FX_TEST(test_zero_timeout_partly_filled_copies_nothing),
        FX_TEST(test_zero_timeout_filled_returns_data),
        FX_TEST(test_positive_timeout_waits_then_etimedout),
        FX_TEST(test_minus_one_waits_for_data),
        FX_TEST(test_timed_read_succeeds_before_timeout),
        FX_TEST(test_timed_wait_ended_by_end_of_stream),
        FX_TEST(test_timed_wait_ended_by_failure),
        FX_TEST(test_timed_after_cancel),
        FX_TEST(test_timeout_below_minus_one_einval),
        FX_TEST(test_wait_end_timed_times_out),
        FX_TEST(test_wait_end_timed_ended_by_the_stream),
        FX_TEST(test_wait_end_timed_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
