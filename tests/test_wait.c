/* SPDX-License-Identifier: MIT */
/*
 * test_wait.c - concurrency: many readers blocked at different offsets while
 * the stream arrives bit by bit, readers past the end, sb_wait_end from many
 * threads, and random readers racing the producer.
 *
 * Worker threads never assert; they record what happened and the test
 * thread asserts on it.  Everything they touch comes from the fx_* helpers,
 * so a failed assertion leaves nothing running.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fixture.h"

#define NREADERS 12

static uint64_t rng_next(uint64_t *s)
{
    *s = *s * 6364136223846793005u + 1442695040888963407u;
    return *s >> 33;
}

static void test_many_readers_gradual_release(void **state)
{
    (void)state;
    const uint64_t total = 80000;
    gate_src *g = fx_gate();
    sb_options o = {.mem_limit = 16384, .chunk_size = 3000};
    sb_buffer *b = fx_buffer(open_gate(g, &o));
    assert_non_null(b);

    reader *r[NREADERS];
    for (int i = 0; i < NREADERS; i++) {
        uint64_t off = (uint64_t)i * 6000 + (uint64_t)(i * 37 % 1000);
        size_t n = 3000 + (size_t)i * 500;
        r[i] = fx_reader(b, RD_PREAD, off, n, 0);
        assert_non_null(r[i]);
    }
    for (uint64_t allowed = 4096;; allowed += 4096) {
        if (allowed > total)
            allowed = total;
        gate_allow(g, allowed);
        assert_true(wait_available(b, allowed, WAIT_LONG_MS));
        /* Nothing more is published until the next step: every reader
           whose range is not in yet must be waiting now. */
        assert_true(gate_wait_blocked(g, WAIT_LONG_MS));
        uint64_t pending = 0;
        for (int i = 0; i < NREADERS; i++)
            if (r[i]->off + r[i]->n > allowed)
                pending++;
        assert_true(wait_for_waiters(b, pending, WAIT_LONG_MS));
        int early = 0;
        for (int i = 0; i < NREADERS; i++) {
            if (r[i]->off + r[i]->n <= allowed) {
                assert_true(reader_wait(r[i], WAIT_LONG_MS));
            } else if (reader_done(r[i])) {
                fprintf(stderr, "reader %d [%llu, +%zu) returned with only "
                                "%llu bytes in\n",
                        i, (unsigned long long)r[i]->off, r[i]->n,
                        (unsigned long long)allowed);
                early++;
            }
        }
        assert_int_equal(early, 0);
        if (allowed == total)
            break;
    }
    gate_end(g);
    for (int i = 0; i < NREADERS; i++) {
        assert_int_equal(r[i]->ret, (ssize_t)r[i]->n);
        assert_int_equal(r[i]->bad, 0);
    }
    assert_int_equal(check_stream(b, total), 0);
}

static void test_blocked_reader_really_blocks(void **state)
{
    (void)state;
    gate_src *g = fx_gate();
    sb_options o = {.mem_limit = 2048};
    sb_buffer *b = fx_buffer(open_gate(g, &o));
    assert_non_null(b);
    gate_allow(g, 2000);
    assert_true(wait_available(b, 2000, WAIT_LONG_MS));

    reader *a = fx_reader(b, RD_PREAD, 1500, 1000, 0);
    reader *c = fx_reader(b, RD_PREAD, 1500, 1000, 0);
    assert_non_null(a);
    assert_non_null(c);
    assert_true(wait_for_waiters(b, 2, WAIT_LONG_MS));
    assert_false(reader_done(a));
    assert_false(reader_done(c));
    unsigned char buf[1000];
    assert_fails_with(sb_pread_timed(b, buf, 1000, 1500, 0), ETIMEDOUT);
    /* One byte short is still short: with 2499 published and the
       producer back in the source, both still wait. */
    gate_allow(g, 2499);
    assert_true(wait_available(b, 2499, WAIT_LONG_MS));
    assert_true(gate_wait_blocked(g, WAIT_LONG_MS));
    assert_true(wait_for_waiters(b, 2, WAIT_LONG_MS));
    assert_false(reader_done(a));
    assert_false(reader_done(c));
    gate_allow(g, 2500);
    assert_true(reader_wait(a, WAIT_LONG_MS));
    assert_true(reader_wait(c, WAIT_LONG_MS));
    assert_int_equal(a->ret, 1000);
    assert_int_equal(a->bad, 0);
    assert_int_equal(c->ret, 1000);
    assert_int_equal(c->bad, 0);
}

static void test_readers_past_the_end(void **state)
{
    (void)state;
    gate_src *g = fx_gate();
    sb_options o = {.mem_limit = 4096};
    sb_buffer *b = fx_buffer(open_gate(g, &o));
    assert_non_null(b);
    static const struct {
        uint64_t off;
        size_t n;
        ssize_t want;
    } cases[] = {
        {9000, 100, 50},     {9049, 10, 1},     {9050, 10, 0},
        {9051, 1, 0},        {20000, 10, 0},    {0, 100000, 9050},
        {UINT64_MAX - 100, 50, 0},
    };
    enum { N = sizeof cases / sizeof cases[0] };
    reader *r[N];
    for (size_t i = 0; i < N; i++) {
        r[i] = fx_reader(b, RD_PREAD, cases[i].off, cases[i].n, 0);
        assert_non_null(r[i]);
    }
    gate_allow(g, 9050);
    assert_true(wait_available(b, 9050, WAIT_LONG_MS));
    /* All 9050 bytes are published and no range is complete. */
    assert_true(gate_wait_blocked(g, WAIT_LONG_MS));
    assert_true(wait_for_waiters(b, N, WAIT_LONG_MS));
    for (size_t i = 0; i < N; i++)
        assert_false(reader_done(r[i]));
    gate_end(g);
    for (size_t i = 0; i < N; i++)
        assert_true(reader_wait(r[i], WAIT_LONG_MS));
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(r[i]->ret, cases[i].want);
        assert_int_equal(r[i]->bad, 0);
    }
}

static void test_wait_end_from_many_threads(void **state)
{
    (void)state;
    gate_src *g = fx_gate();
    sb_options o = {.mem_limit = 4096};
    sb_buffer *b = fx_buffer(open_gate(g, &o));
    assert_non_null(b);
    reader *w[8];
    for (int i = 0; i < 8; i++) {
        w[i] = fx_reader(b, i % 2 ? RD_WAIT_END_NULL : RD_WAIT_END, 0, 0, 0);
        assert_non_null(w[i]);
    }
    gate_allow(g, 10000);
    assert_true(wait_available(b, 10000, WAIT_LONG_MS));
    /* Bytes are no end: with all 10000 published, all 8 still wait. */
    assert_true(gate_wait_blocked(g, WAIT_LONG_MS));
    assert_true(wait_for_waiters(b, 8, WAIT_LONG_MS));
    for (int i = 0; i < 8; i++)
        assert_false(reader_done(w[i]));
    gate_allow(g, 12345);
    gate_end(g);
    for (int i = 0; i < 8; i++)
        assert_true(reader_wait(w[i], WAIT_LONG_MS));
    for (int i = 0; i < 8; i++) {
        assert_int_equal(w[i]->ret, 0);
        if (i % 2 == 0)
            assert_int_equal(w[i]->length, 12345);
    }
    assert_int_equal(check_stream(b, 12345), 0);
}

static void test_wait_end_from_many_threads_failure(void **state)
{
    (void)state;
    gate_src *g = fx_gate();
    sb_buffer *b = fx_buffer(open_gate(g, NULL));
    assert_non_null(b);
    reader *w[8];
    for (int i = 0; i < 8; i++) {
        w[i] = fx_reader(b, RD_WAIT_END, 0, 0, 0);
        assert_non_null(w[i]);
    }
    gate_allow(g, 3000);
    assert_true(wait_available(b, 3000, WAIT_LONG_MS));
    assert_true(gate_wait_blocked(g, WAIT_LONG_MS));
    assert_true(wait_for_waiters(b, 8, WAIT_LONG_MS));
    for (int i = 0; i < 8; i++)
        assert_false(reader_done(w[i]));
    gate_fail(g, ECONNRESET);
    for (int i = 0; i < 8; i++)
        assert_true(reader_wait(w[i], WAIT_LONG_MS));
    for (int i = 0; i < 8; i++) {
        assert_int_equal(w[i]->ret, -1);
        assert_int_equal(w[i]->err, ECONNRESET);
        assert_int_equal(w[i]->length, UINT64_MAX); /* not written */
    }
}

static void test_many_readers_same_range(void **state)
{
    (void)state;
    gate_src *g = fx_gate();
    sb_options o = {.mem_limit = 10500};
    sb_buffer *b = fx_buffer(open_gate(g, &o));
    assert_non_null(b);
    reader *r[16];
    for (int i = 0; i < 16; i++) {
        r[i] = fx_reader(b, RD_PREAD, 10000, 2000, 0);
        assert_non_null(r[i]);
    }
    gate_allow(g, 11999);
    assert_true(wait_available(b, 11999, WAIT_LONG_MS));
    /* One byte short: with 11999 published, all 16 still wait. */
    assert_true(gate_wait_blocked(g, WAIT_LONG_MS));
    assert_true(wait_for_waiters(b, 16, WAIT_LONG_MS));
    for (int i = 0; i < 16; i++)
        assert_false(reader_done(r[i]));
    gate_allow(g, 12000);
    for (int i = 0; i < 16; i++)
        assert_true(reader_wait(r[i], WAIT_LONG_MS));
    for (int i = 0; i < 16; i++) {
        assert_int_equal(r[i]->ret, 2000);
        assert_int_equal(r[i]->bad, 0);
    }
}

/* ---- signals do not disturb waiting readers --------------------------------------- */

static atomic_int usr1_count; /* lock-free, so async-signal-safe */

static void on_usr1(int sig)
{
    (void)sig;
    atomic_fetch_add(&usr1_count, 1);
}

/* Poll until the handler has run n times.  1 on success. */
static int wait_usr1(int n, int timeout_ms)
{
    return wait_count(&usr1_count, n, timeout_ms);
}

static struct sigaction old_usr1;

/* Teardown: after the readers are joined, so no signal meets the default
   action (which would end the process). */
static void restore_usr1(void *old)
{
    sigaction(SIGUSR1, old, NULL);
}

static void test_signals_do_not_disturb_waiting_readers(void **state)
{
    (void)state;
    enum { ROUNDS = 20 };
    /* A handler without SA_RESTART: interrupted waits must resume, not
       return EINTR or a short read. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigemptyset(&sa.sa_mask);
    atomic_store(&usr1_count, 0);
    assert_int_equal(sigaction(SIGUSR1, &sa, &old_usr1), 0);
    fx_track(&old_usr1, NULL, restore_usr1);
    gate_src *g = fx_gate();
    sb_options o = {.mem_limit = 4096};
    sb_buffer *b = fx_buffer(open_gate(g, &o));
    assert_non_null(b);
    gate_allow(g, 1000);
    assert_true(wait_available(b, 1000, WAIT_LONG_MS));
    reader *r[4];
    r[0] = fx_reader(b, RD_PREAD, 900, 5000, 0);
    r[1] = fx_reader(b, RD_TIMED, 3000, 3000, 60000);
    r[2] = fx_reader(b, RD_TIMED, 5000, 1, -1);
    r[3] = fx_reader(b, RD_WAIT_END, 0, 0, 0);
    for (int i = 0; i < 4; i++)
        assert_non_null(r[i]);
    assert_true(wait_for_waiters(b, 4, WAIT_LONG_MS));
    /* Each round's signals are all handled before the next round is sent,
       so none merges with a pending one: every one of them interrupts. */
    for (int k = 0; k < ROUNDS; k++) {
        for (int i = 0; i < 4; i++)
            assert_int_equal(pthread_kill(r[i]->th, SIGUSR1), 0);
        assert_true(wait_usr1(4 * (k + 1), WAIT_LONG_MS));
    }
    assert_int_equal(atomic_load(&usr1_count), 4 * ROUNDS);
    assert_true(wait_for_waiters(b, 4, WAIT_LONG_MS));
    for (int i = 0; i < 4; i++)
        assert_false(reader_done(r[i]));
    gate_allow(g, 8000);
    gate_end(g);
    for (int i = 0; i < 4; i++)
        assert_true(reader_wait(r[i], WAIT_LONG_MS));
    assert_int_equal(r[0]->ret, 5000);
    assert_int_equal(r[0]->bad, 0);
    assert_int_equal(r[1]->ret, 3000);
    assert_int_equal(r[1]->bad, 0);
    assert_int_equal(r[2]->ret, 1);
    assert_int_equal(r[2]->bad, 0);
    assert_int_equal(r[3]->ret, 0);
    assert_int_equal(r[3]->length, 8000);
}

/* ---- random readers racing the producer ------------------------------------------- */

typedef struct racer {
    sb_buffer *b;
    uint64_t len;
    uint64_t seed;
    int reads;
    /* results */
    int wrong_count;
    size_t bad;
} racer;

static void racer_main(void *arg)
{
    racer *r = arg;
    unsigned char *buf = malloc(16384);
    if (buf == NULL) {
        r->wrong_count = -1;
        return;
    }
    for (int i = 0; i < r->reads; i++) {
        uint64_t off = rng_next(&r->seed) % (r->len + 1000);
        size_t n = (size_t)(rng_next(&r->seed) % 16384) + 1;
        size_t want = off >= r->len         ? 0
                      : off + n > r->len ? (size_t)(r->len - off)
                                         : n;
        ssize_t got = sb_pread(r->b, buf, n, off);
        if (got != (ssize_t)want) {
            r->wrong_count++;
            continue;
        }
        r->bad += gen_mismatches(buf, want, off);
    }
    free(buf);
}

/* The source's delay is what makes the readers race production. */
static void test_random_readers_race_producer(void **state)
{
    (void)state;
    static const size_t pat[] = {1000, 1, 7777, 4096, 12};
    const uint64_t len = 1u << 20;
    chunk_src *s = fx_chunk(len, pat, 5);
    s->delay_us = 20;
    char *dir = fx_scratch();
    sb_options o = {.mem_limit = 65536, .tmp_dir = dir, .chunk_size = 8192};
    sb_buffer *b = fx_buffer(open_chunk(s, &o));
    assert_non_null(b);
    racer *r = fx_calloc(8 * sizeof *r);
    bg_call *bg[8];
    for (int i = 0; i < 8; i++) {
        r[i] = (racer){.b = b, .len = len, .seed = (uint64_t)i + 1,
                       .reads = 80};
        bg[i] = fx_bg(racer_main, &r[i]);
        assert_non_null(bg[i]);
    }
    for (int i = 0; i < 8; i++)
        assert_true(bg_wait(bg[i], 3 * WAIT_LONG_MS));
    for (int i = 0; i < 8; i++) {
        assert_int_equal(r[i].wrong_count, 0);
        assert_int_equal(r[i].bad, 0);
    }
    assert_int_equal(check_stream(b, len), 0);
}

/* ---- sb_available from many threads ------------------------------------------------ */

static void sleep_us_short(void)
{
    struct timespec ts = {0, 100000}; /* 0.1 ms: leave the CPU to others */
    nanosleep(&ts, NULL);
}

typedef struct watcher {
    sb_buffer *b;
    uint64_t len;
    /* results */
    int went_back;   /* sb_available decreased */
    int blocked;     /* a read of [.., available) did not return at once */
    size_t bad;
    int timed_out;   /* never saw the full length */
} watcher;

static void watcher_main(void *arg)
{
    watcher *w = arg;
    unsigned char buf[4096];
    uint64_t last = 0;
    double deadline = now_ms() + WAIT_LONG_MS;
    for (;;) {
        uint64_t a = sb_available(w->b);
        if (a < last)
            w->went_back++;
        last = a;
        if (a > 0) {
            size_t k = a < sizeof buf ? (size_t)a : sizeof buf;
            ssize_t got = sb_pread_timed(w->b, buf, k, a - k, 0);
            if (got != (ssize_t)k)
                w->blocked++;
            else
                w->bad += gen_mismatches(buf, k, a - k);
        }
        if (a >= w->len)
            break;
        if (now_ms() > deadline) {
            w->timed_out = 1;
            break;
        }
        sleep_us_short();
    }
}

/* The source's delay is what gives the watchers a stream still growing. */
static void test_available_is_monotonic_and_readable(void **state)
{
    (void)state;
    const uint64_t len = 300000;
    static const size_t pat[] = {100, 3000, 1};
    chunk_src *s = fx_chunk(len, pat, 3);
    s->delay_us = 50;
    char *dir = fx_scratch();
    sb_options o = {.mem_limit = 40000, .tmp_dir = dir};
    sb_buffer *b = fx_buffer(open_chunk(s, &o));
    assert_non_null(b);
    watcher *w = fx_calloc(4 * sizeof *w);
    bg_call *bg[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (watcher){.b = b, .len = len};
        bg[i] = fx_bg(watcher_main, &w[i]);
        assert_non_null(bg[i]);
    }
    /* Each watcher gives up by itself after WAIT_LONG_MS. */
    for (int i = 0; i < 4; i++)
        assert_true(bg_wait(bg[i], 2 * WAIT_LONG_MS));
    for (int i = 0; i < 4; i++) {
        assert_int_equal(w[i].went_back, 0);
        assert_int_equal(w[i].blocked, 0);
        assert_int_equal(w[i].bad, 0);
        assert_int_equal(w[i].timed_out, 0);
    }
    assert_int_equal(check_stream(b, len), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        FX_TEST(test_many_readers_gradual_release),
        FX_TEST(test_blocked_reader_really_blocks),
        FX_TEST(test_readers_past_the_end),
        FX_TEST(test_wait_end_from_many_threads),
        FX_TEST(test_wait_end_from_many_threads_failure),
        FX_TEST(test_many_readers_same_range),
        FX_TEST(test_signals_do_not_disturb_waiting_readers),
        FX_TEST(test_random_readers_race_producer),
        FX_TEST(test_available_is_monotonic_and_readable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
