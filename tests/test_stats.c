/* SPDX-License-Identifier: MIT */
/*
 * test_stats.c - sb_get_stats: the counters and the state it reports, and
 * what they show about waiting (blocked readers are counted; a publish wakes
 * only the readers whose range is complete).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "fixture.h"

static sb_stats stats(sb_buffer *b)
{
    sb_stats st;
    memset(&st, 0xEE, sizeof st);
    if (sb_get_stats(b, &st) != 0)
        memset(&st, 0xEE, sizeof st);
    return st;
}

/* Poll until `waiting` is exactly n (wait_for_waiters takes "at least").
   1 on success. */
struct waiting_arg {
    sb_buffer *b;
    uint64_t n;
};

static int waiting_exactly(void *arg)
{
    struct waiting_arg *w = arg;
    return stats(w->b).waiting == w->n;
}

static int wait_waiting(sb_buffer *b, uint64_t n, int timeout_ms)
{
    struct waiting_arg w = {b, n};
    return poll_until(waiting_exactly, &w, timeout_ms);
}

static void test_stats_null_args(void **state)
{
    (void)state;
    sb_stats st;
    assert_fails_with(sb_get_stats(NULL, &st), EINVAL);
    unsigned char *data = fx_calloc(10);
    gen_fill(data, 10, 0);
    sb_buffer *b = fx_buffer(sb_open_mem(data, 10, NULL));
    assert_non_null(b);
    assert_fails_with(sb_get_stats(b, NULL), EINVAL);
    assert_int_equal(sb_get_stats(b, &st), 0);
}

static void test_stats_running_then_ended(void **state)
{
    (void)state;
    gate_src *g = fx_gate();
    sb_options o = {.mem_limit = 4096};
    sb_buffer *b = fx_buffer(open_gate(g, &o));
    assert_non_null(b);

    sb_stats st = stats(b);
    assert_int_equal(st.state, SB_RUNNING);
    assert_int_equal(st.error, 0);
    assert_int_equal(st.filled, 0);
    assert_int_equal(st.in_memory, 0);
    assert_int_equal(st.spilled, 0);
    assert_int_equal(st.waiting, 0);

    gate_allow(g, 3000);
    assert_true(wait_available(b, 3000, WAIT_LONG_MS));
    st = stats(b);
    assert_int_equal(st.state, SB_RUNNING);
    assert_int_equal(st.filled, 3000);
    assert_int_equal(st.in_memory, 3000);
    assert_int_equal(st.spilled, 0);
    assert_true(st.publishes >= 1 && st.publishes <= 3000);
    uint64_t pub1 = st.publishes;

    gate_allow(g, 10000);
    assert_true(wait_available(b, 10000, WAIT_LONG_MS));
    st = stats(b);
    assert_int_equal(st.filled, 10000);
    assert_int_equal(st.in_memory, 4096);
    assert_int_equal(st.spilled, 10000 - 4096);
    assert_true(st.publishes > pub1 && st.publishes <= 10000);

    gate_end(g);
    assert_int_equal(sb_wait_end(b, NULL), 0);
    st = stats(b);
    assert_int_equal(st.state, SB_ENDED);
    assert_int_equal(st.error, 0);
    assert_int_equal(st.filled, 10000);
    assert_int_equal(st.waiting, 0);
}

static void test_stats_failed_and_cancelled(void **state)
{
    (void)state;
    chunk_src *s = fx_chunk(100000, NULL, 0);
    s->fail_at = 5000;
    s->fail_err = EIO;
    sb_buffer *b = fx_buffer(open_chunk(s, NULL));
    assert_non_null(b);
    assert_fails_with(sb_wait_end(b, NULL), EIO);
    sb_stats st = stats(b);
    assert_int_equal(st.state, SB_FAILED);
    assert_int_equal(st.error, EIO);
    assert_int_equal(st.filled, 5000);

    gate_src *g = fx_gate();
    b = fx_buffer(open_gate(g, NULL));
    assert_non_null(b);
    gate_allow(g, 100);
    assert_true(wait_available(b, 100, WAIT_LONG_MS));
    sb_cancel(b);
    st = stats(b);
    assert_int_equal(st.state, SB_FAILED);
    assert_int_equal(st.error, ECANCELED);
    assert_true(st.filled >= 100);

    unsigned char *data = fx_calloc(1000);
    gen_fill(data, 1000, 0);
    sb_options o = {.max_size = 600};
    b = fx_buffer(sb_open_mem(data, 1000, &o));
    assert_non_null(b);
    st = stats(b);
    assert_int_equal(st.state, SB_FAILED);
    assert_int_equal(st.error, EFBIG);
    assert_int_equal(st.filled, 600);
}

static void test_stats_open_mem(void **state)
{
    (void)state;
    unsigned char *data = fx_calloc(5000);
    gen_fill(data, 5000, 0);
    sb_options o = {.mem_limit = 1000}; /* no effect on sb_open_mem */
    sb_buffer *b = fx_buffer(sb_open_mem(data, 5000, &o));
    assert_non_null(b);
    sb_stats st = stats(b);
    assert_int_equal(st.state, SB_ENDED);
    assert_int_equal(st.error, 0);
    assert_int_equal(st.filled, 5000);
    assert_int_equal(st.in_memory + st.spilled, 5000);
    assert_int_equal(st.spilled, 0); /* there is no spill file */
    assert_int_equal(st.waiting, 0);
}

static void test_stats_count_blocked_readers(void **state)
{
    (void)state;
    gate_src *g = fx_gate();
    sb_buffer *b = fx_buffer(open_gate(g, NULL));
    assert_non_null(b);
    gate_allow(g, 1000);
    assert_true(wait_available(b, 1000, WAIT_LONG_MS));
    /* A read of arrived bytes never waits, so it is never counted. */
    reader *filled = fx_reader(b, RD_PREAD, 0, 1000, 0);
    assert_non_null(filled);
    assert_true(reader_wait(filled, WAIT_LONG_MS));
    assert_int_equal(filled->ret, 1000);
    assert_int_equal(filled->bad, 0);
    reader *r[3], *w[2];
    for (int i = 0; i < 3; i++) {
        r[i] = fx_reader(b, RD_PREAD, 1000 + (uint64_t)i * 1000, 100, 0);
        assert_non_null(r[i]);
    }
    for (int i = 0; i < 2; i++) {
        w[i] = fx_reader(b, RD_WAIT_END, 0, 0, 0);
        assert_non_null(w[i]);
    }
    assert_true(wait_waiting(b, 5, WAIT_LONG_MS));
    /* Complete two of the three ranges: exactly those two stop waiting.
       Once the producer is back in the source, nothing more is published,
       so three waiters then means r[2] was left alone. */
    gate_allow(g, 2100);
    assert_true(reader_wait(r[0], WAIT_LONG_MS));
    assert_true(reader_wait(r[1], WAIT_LONG_MS));
    assert_true(gate_wait_blocked(g, WAIT_LONG_MS));
    assert_true(wait_waiting(b, 3, WAIT_LONG_MS));
    assert_false(reader_done(r[2]));
    gate_end(g);
    assert_true(reader_wait(r[2], WAIT_LONG_MS));
    assert_true(reader_wait(w[0], WAIT_LONG_MS));
    assert_true(reader_wait(w[1], WAIT_LONG_MS));
    assert_int_equal(stats(b).waiting, 0);
    assert_int_equal(r[0]->ret, 100);
    assert_int_equal(r[0]->bad, 0);
    assert_int_equal(r[1]->ret, 100);
    assert_int_equal(r[1]->bad, 0);
    assert_int_equal(r[2]->ret, 0); /* [3000, 3100) is past the end */
    assert_int_equal(w[0]->ret, 0);
    assert_int_equal(w[0]->length, 2100);
}

/* The 50 ms timeout elapsing is what this tests. */
static void test_stats_wakeups_count_timeouts(void **state)
{
    (void)state;
    gate_src *g = fx_gate();
    sb_buffer *b = fx_buffer(open_gate(g, NULL));
    assert_non_null(b);
    uint64_t w0 = stats(b).wakeups;
    unsigned char buf[10];
    assert_fails_with(sb_pread_timed(b, buf, 10, 0, 50), ETIMEDOUT);
    sb_stats st = stats(b);
    assert_true(st.wakeups >= w0 + 1);
    assert_int_equal(st.waiting, 0); /* the timed-out reader left */
}

static void test_publish_wakes_only_completed_readers(void **state)
{
    (void)state;
    /* Readers far ahead are not woken by each publish on the way (no
       thundering herd): 4 readers, 100 publishes, only a handful of
       wake-ups. */
    gate_src *g = fx_gate();
    sb_options o = {.mem_limit = 1u << 20};
    sb_buffer *b = fx_buffer(open_gate(g, &o));
    assert_non_null(b);
    reader *r[4];
    for (int i = 0; i < 4; i++) {
        r[i] = fx_reader(b, RD_PREAD, 100000, 10, 0);
        assert_non_null(r[i]);
    }
    assert_true(wait_waiting(b, 4, WAIT_LONG_MS));
    sb_stats st0 = stats(b);
    for (uint64_t upto = 500; upto <= 50000; upto += 500) {
        gate_allow(g, upto);
        assert_true(wait_available(b, upto, WAIT_LONG_MS));
    }
    sb_stats st1 = stats(b);
    gate_allow(g, 100010);
    for (int i = 0; i < 4; i++)
        assert_true(reader_wait(r[i], WAIT_LONG_MS));
    assert_true(st1.publishes >= st0.publishes + 100);
    assert_int_equal(st1.waiting, 4);
    assert_true(st1.wakeups - st0.wakeups < 40); /* a herd gives >= 400 */
    for (int i = 0; i < 4; i++) {
        assert_int_equal(r[i]->ret, 10);
        assert_int_equal(r[i]->bad, 0);
    }
}

static void test_stats_consistent_while_producing(void **state)
{
    (void)state;
    const size_t mem = 50000;
    static const size_t pat[] = {999, 1, 3000};
    chunk_src *s = fx_chunk(400000, pat, 3);
    s->delay_us = 20;
    char *dir = fx_scratch();
    sb_options o = {.mem_limit = mem, .tmp_dir = dir};
    sb_buffer *b = fx_buffer(open_chunk(s, &o));
    assert_non_null(b);
    uint64_t last_filled = 0, last_pub = 0;
    int bad_sum = 0, bad_split = 0, went_back = 0, behind = 0, n = 0;
    double end = now_ms() + WAIT_LONG_MS;
    for (;;) {
        uint64_t a = sb_available(b);
        sb_stats st = stats(b);
        n++;
        if (st.in_memory + st.spilled != st.filled)
            bad_sum++;
        if (st.in_memory != (st.filled < mem ? st.filled : mem))
            bad_split++;
        if (st.filled < last_filled || st.publishes < last_pub)
            went_back++;
        if (st.filled < a)
            behind++;
        last_filled = st.filled;
        last_pub = st.publishes;
        if (st.state != SB_RUNNING || now_ms() > end)
            break;
    }
    uint64_t len = 0;
    assert_int_equal(sb_wait_end(b, &len), 0);
    sb_stats fin = stats(b);
    assert_true(n > 1);
    assert_int_equal(bad_sum, 0);
    assert_int_equal(bad_split, 0);
    assert_int_equal(went_back, 0);
    assert_int_equal(behind, 0);
    assert_int_equal(len, 400000);
    assert_int_equal(fin.filled, 400000);
    assert_int_equal(fin.in_memory, mem);
    assert_int_equal(fin.spilled, 400000 - mem);
    assert_int_equal(fin.state, SB_ENDED);
}

/* publishes counts the times filled grew, not calls that added nothing. */
static void test_publishes_count_only_new_bytes(void **state)
{
    (void)state;
    /* The source reaches max_size exactly, then offers more. */
    chunk_src *s = fx_chunk(6000, NULL, 0);
    sb_options o = {.chunk_size = 1000, .max_size = 5000};
    sb_buffer *b = fx_buffer(open_chunk(s, &o));
    assert_non_null(b);
    assert_fails_with(sb_wait_end(b, NULL), EFBIG);
    sb_stats st;
    assert_int_equal(sb_get_stats(b, &st), 0);
    assert_int_equal(st.filled, 5000);
    assert_int_equal(st.publishes, 5);

    /* sb_open_mem: one publish, none for an empty buffer. */
    static const unsigned char data[100];
    b = fx_buffer(sb_open_mem(data, sizeof data, NULL));
    assert_non_null(b);
    assert_int_equal(sb_get_stats(b, &st), 0);
    assert_int_equal(st.publishes, 1);
    b = fx_buffer(sb_open_mem(data, 0, NULL));
    assert_non_null(b);
    assert_int_equal(sb_get_stats(b, &st), 0);
    assert_int_equal(st.publishes, 0);
    assert_int_equal(st.state, SB_ENDED);

    /* Push mode: empty writes publish nothing. */
    b = fx_buffer(sb_open_writer(NULL));
    assert_non_null(b);
    assert_int_equal(sb_write(b, data, 0), 0);
    assert_int_equal(sb_write(b, data, 10), 10);
    assert_int_equal(sb_write(b, data, 0), 0);
    assert_int_equal(sb_get_stats(b, &st), 0);
    assert_int_equal(st.publishes, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        FX_TEST(test_stats_null_args),
        FX_TEST(test_stats_running_then_ended),
        FX_TEST(test_stats_failed_and_cancelled),
        FX_TEST(test_stats_open_mem),
        FX_TEST(test_stats_count_blocked_readers),
        FX_TEST(test_stats_wakeups_count_timeouts),
        FX_TEST(test_publish_wakes_only_completed_readers),
        FX_TEST(test_stats_consistent_while_producing),
        FX_TEST(test_publishes_count_only_new_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
