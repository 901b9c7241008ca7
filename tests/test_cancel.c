/* SPDX-License-Identifier: MIT */
/*
 * test_cancel.c - sb_cancel and sb_close: waking blocked readers (also while
 * the producer is stuck in the source), what stays readable, idempotence,
 * the source's close callback, and closing a busy or idle stream.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"

static void do_cancel(void *b)
{
    sb_cancel(b);
}

static void do_close(void *b)
{
    sb_close(b);
}

/* ---- cancel wakes readers ---------------------------------------------------------- */

#define NPAST 8

static void test_cancel_wakes_readers_while_source_stuck(void **state)
{
    (void)state;
    gate_src g;
    gate_init(&g);
    sb_options o = {.mem_limit = 4096};
    sb_buffer *b = open_gate(&g, &o);
    assert_non_null(b);
    gate_allow(&g, 1000);
    assert_true(wait_available(b, 1000, WAIT_LONG_MS));
    /* The producer is now stuck inside the source's read. */
    assert_true(gate_wait_blocked(&g, WAIT_LONG_MS));

    reader past[NPAST], timed, straddle, w, wn;
    for (int i = 0; i < NPAST; i++)
        assert_int_equal(reader_start(&past[i], b, RD_PREAD,
                                      1000 + (uint64_t)i * 777, 50, 0),
                         0);
    assert_int_equal(reader_start(&timed, b, RD_TIMED, 5000, 10, 60000), 0);
    assert_int_equal(reader_start(&straddle, b, RD_PREAD, 900, 200, 0), 0);
    assert_int_equal(reader_start(&w, b, RD_WAIT_END, 0, 0, 0), 0);
    assert_int_equal(reader_start(&wn, b, RD_WAIT_END_NULL, 0, 0, 0), 0);
    sleep_ms(SETTLE_MS);
    int early = reader_done(&timed) + reader_done(&straddle) +
                reader_done(&w) + reader_done(&wn);
    for (int i = 0; i < NPAST; i++)
        early += reader_done(&past[i]);

    /* Cancel from another thread; it must not wait for the source. */
    bg_call c;
    assert_int_equal(bg_start(&c, do_cancel, b), 0);
    int cancel_returned = bg_wait(&c, WAIT_LONG_MS);
    int late = !reader_wait(&timed, WAIT_LONG_MS) +
               !reader_wait(&straddle, WAIT_LONG_MS) +
               !reader_wait(&w, WAIT_LONG_MS) + !reader_wait(&wn, WAIT_LONG_MS);
    for (int i = 0; i < NPAST; i++)
        late += !reader_wait(&past[i], WAIT_LONG_MS);
    /* All of that happened while the source was still stuck. */
    int still_stuck = gate_wait_blocked(&g, 0);

    gate_end(&g); /* only now let the source return */
    bg_join(&c);
    for (int i = 0; i < NPAST; i++)
        reader_join(&past[i]);
    reader_join(&timed);
    reader_join(&straddle);
    reader_join(&w);
    reader_join(&wn);

    assert_int_equal(early, 0);
    assert_true(cancel_returned);
    assert_int_equal(late, 0);
    assert_true(still_stuck);
    for (int i = 0; i < NPAST; i++) {
        assert_int_equal(past[i].ret, -1);
        assert_int_equal(past[i].err, ECANCELED);
    }
    assert_int_equal(timed.ret, -1);
    assert_int_equal(timed.err, ECANCELED);
    assert_int_equal(straddle.ret, 100);
    assert_int_equal(straddle.bad, 0);
    assert_int_equal(w.ret, -1);
    assert_int_equal(w.err, ECANCELED);
    assert_int_equal(w.length, UINT64_MAX);
    assert_int_equal(wn.ret, -1);
    assert_int_equal(wn.err, ECANCELED);

    sb_close(b);
    assert_int_equal(atomic_load(&g.closes), 1);
    gate_destroy(&g);
}

static void test_filled_bytes_readable_after_cancel(void **state)
{
    (void)state;
    gate_src g;
    gate_init(&g);
    sb_options o = {.mem_limit = 4096};
    sb_buffer *b = open_gate(&g, &o);
    assert_non_null(b);
    gate_allow(&g, 10000); /* memory and spill file */
    assert_true(wait_available(b, 10000, WAIT_LONG_MS));
    sb_cancel(b);
    assert_true(sb_available(b) >= 10000);
    assert_int_equal(check_read(b, 0, 10000, 10000), 0);
    assert_int_equal(check_read(b, 4000, 200, 200), 0);
    assert_int_equal(check_read(b, 9000, 1000, 1000), 0);
    uint64_t len = 4242;
    assert_fails_with(sb_wait_end(b, &len), ECANCELED);
    assert_int_equal(len, 4242);
    uint64_t avail = sb_available(b);
    assert_int_equal(check_read(b, avail - 50, 100, 50), 0);
    assert_int_equal(check_read_err(b, avail, 1, ECANCELED), 0);
    assert_int_equal(check_read_err(b, avail + 100000, 1, ECANCELED), 0);
    gate_end(&g);
    sb_close(b);
    gate_destroy(&g);
}

static void test_cancel_twice_and_concurrently(void **state)
{
    (void)state;
    gate_src g;
    gate_init(&g);
    sb_buffer *b = open_gate(&g, NULL);
    assert_non_null(b);
    gate_allow(&g, 3000);
    assert_true(wait_available(b, 3000, WAIT_LONG_MS));
    reader r;
    assert_int_equal(reader_start(&r, b, RD_PREAD, 3000, 10, 0), 0);
    bg_call c[4];
    int started = 0;
    for (int i = 0; i < 4; i++)
        started += bg_start(&c[i], do_cancel, b) == 0;
    sb_cancel(b);
    sb_cancel(b);
    int ok = reader_wait(&r, WAIT_LONG_MS);
    for (int i = 0; i < started; i++)
        ok = bg_wait(&c[i], WAIT_LONG_MS) && ok;
    gate_end(&g);
    for (int i = 0; i < started; i++)
        bg_join(&c[i]);
    reader_join(&r);
    assert_int_equal(started, 4);
    assert_true(ok);
    assert_int_equal(r.ret, -1);
    assert_int_equal(r.err, ECANCELED);
    sb_cancel(b);
    assert_fails_with(sb_wait_end(b, NULL), ECANCELED);
    assert_int_equal(check_read(b, 0, 3000, 3000), 0);
    sb_close(b);
    assert_int_equal(atomic_load(&g.closes), 1);
    gate_destroy(&g);
}

static void test_cancel_on_ended_stream_does_nothing(void **state)
{
    (void)state;
    chunk_src s;
    chunk_init(&s, 9000, NULL, 0);
    sb_options o = {.mem_limit = 4096};
    sb_buffer *b = open_chunk(&s, &o);
    assert_non_null(b);
    assert_int_equal(sb_wait_end(b, NULL), 0);
    sb_cancel(b);
    sb_cancel(b);
    /* Still an ended stream: reads at the end give 0, not ECANCELED. */
    assert_int_equal(check_stream(b, 9000), 0);
    assert_int_equal(check_read(b, 9000, 10, 0), 0);
    sb_close(b);
    assert_int_equal(atomic_load(&s.closes), 1);

    /* The same for sb_open_mem. */
    unsigned char data[500];
    gen_fill(data, sizeof data, 0);
    b = sb_open_mem(data, sizeof data, NULL);
    assert_non_null(b);
    sb_cancel(b);
    assert_int_equal(check_stream(b, sizeof data), 0);
    sb_close(b);
}

static void test_cancel_on_failed_stream_keeps_error(void **state)
{
    (void)state;
    chunk_src s;
    chunk_init(&s, 100000, NULL, 0);
    s.fail_at = 6000;
    s.fail_err = EIO;
    sb_options o = {.mem_limit = 4096};
    sb_buffer *b = open_chunk(&s, &o);
    assert_non_null(b);
    assert_fails_with(sb_wait_end(b, NULL), EIO);
    sb_cancel(b);
    assert_fails_with(sb_wait_end(b, NULL), EIO);
    assert_int_equal(check_read_err(b, 6000, 1, EIO), 0);
    assert_int_equal(check_read(b, 0, 6000, 6000), 0);
    sb_close(b);
}

static void test_null_is_ignored(void **state)
{
    (void)state;
    sb_cancel(NULL);
    sb_close(NULL);
    /* And nothing was disturbed: a normal stream still works. */
    chunk_src s;
    chunk_init(&s, 100, NULL, 0);
    sb_buffer *b = open_chunk(&s, NULL);
    assert_non_null(b);
    sb_cancel(NULL);
    assert_int_equal(check_stream(b, 100), 0);
    sb_close(b);
}

typedef struct canceler {
    sb_buffer *b;
    int delay_ms;
} canceler;

static void cancel_later(void *arg)
{
    canceler *c = arg;
    sleep_ms(c->delay_ms);
    sb_cancel(c->b);
}

static void test_cancel_from_other_thread_mid_stream(void **state)
{
    (void)state;
    /* An endless, slowish source; readers all over; a thread cancels. */
    static const size_t pat[] = {1000, 17};
    chunk_src s;
    chunk_init(&s, CHUNK_FOREVER, pat, 2);
    s.delay_us = 100;
    char *dir = scratch_new();
    assert_non_null(dir);
    sb_options o = {.mem_limit = 8192, .tmp_dir = dir};
    sb_buffer *b = open_chunk(&s, &o);
    assert_non_null(b);
    enum { N = 8 };
    reader r[N];
    for (int i = 0; i < N; i++) {
        uint64_t off = i == N - 1 ? (uint64_t)1 << 40 : (uint64_t)i * 4000;
        assert_int_equal(reader_start(&r[i], b, RD_PREAD, off, 3000, 0), 0);
    }
    assert_true(wait_available(b, 3000, WAIT_LONG_MS));
    canceler cc = {b, 50};
    bg_call c;
    assert_int_equal(bg_start(&c, cancel_later, &cc), 0);
    int late = !bg_wait(&c, WAIT_LONG_MS);
    for (int i = 0; i < N; i++)
        late += !reader_wait(&r[i], WAIT_LONG_MS);
    bg_join(&c);
    for (int i = 0; i < N; i++)
        reader_join(&r[i]);
    assert_int_equal(late, 0);
    /* Every reader got all its bytes, some of them (a short count), or
       ECANCELED; the bytes it got are right. */
    for (int i = 0; i < N; i++) {
        if (r[i].ret == -1) {
            assert_int_equal(r[i].err, ECANCELED);
        } else {
            assert_true(r[i].ret > 0 && r[i].ret <= 3000);
            assert_int_equal(r[i].bad, 0);
        }
    }
    assert_int_equal(r[0].ret, 3000);
    assert_int_equal(r[N - 1].ret, -1);
    assert_fails_with(sb_wait_end(b, NULL), ECANCELED);
    sb_close(b);
    assert_int_equal(count_dir_entries(dir), 0);
    scratch_free(dir);
}

/* ---- sb_close -------------------------------------------------------------------------- */

static void test_close_right_after_open(void **state)
{
    (void)state;
    char *dir = scratch_new();
    assert_non_null(dir);
    int fds = count_fds();
    sb_options o = {.mem_limit = 4096, .tmp_dir = dir};

    /* A fast endless source, spilling. */
    chunk_src s;
    chunk_init(&s, CHUNK_FOREVER, NULL, 0);
    double t0 = now_ms();
    sb_buffer *b = open_chunk(&s, &o);
    assert_non_null(b);
    sb_close(b);
    double dt = now_ms() - t0;
    assert_true(dt < 10000.0);
    assert_int_equal(atomic_load(&s.closes), 1);
    assert_int_equal(atomic_load(&s.calls_after_close), 0);
    assert_int_equal(atomic_load(&s.close_during_call), 0);

    /* A slow one, closed mid-stream. */
    chunk_init(&s, CHUNK_FOREVER, NULL, 0);
    s.delay_us = 2000;
    b = open_chunk(&s, &o);
    assert_non_null(b);
    sb_close(b);
    assert_int_equal(atomic_load(&s.closes), 1);
    assert_int_equal(atomic_load(&s.calls_after_close), 0);
    assert_int_equal(atomic_load(&s.close_during_call), 0);

    /* An endless iterator. */
    static const size_t pat[] = {5000, 0};
    iter_src it;
    assert_int_equal(iter_init(&it, CHUNK_FOREVER, pat, 2), 0);
    sb_source src = iter_source(&it);
    b = sb_open(&src, &o);
    assert_non_null(b);
    assert_true(wait_available(b, 10000, WAIT_LONG_MS));
    sb_close(b);
    assert_int_equal(atomic_load(&it.closes), 1);
    iter_destroy(&it);

    assert_int_equal(count_fds(), fds);
    assert_int_equal(count_dir_entries(dir), 0);
    scratch_free(dir);
}

static void test_close_calls_source_close_once(void **state)
{
    (void)state;
    /* Ended normally: not before sb_close, once in it, on its thread,
       after the producer stopped. */
    chunk_src s;
    chunk_init(&s, 5000, NULL, 0);
    sb_buffer *b = open_chunk(&s, NULL);
    assert_non_null(b);
    assert_int_equal(sb_wait_end(b, NULL), 0);
    sleep_ms(SETTLE_MS);
    assert_int_equal(atomic_load(&s.closes), 0);
    sb_close(b);
    assert_int_equal(atomic_load(&s.closes), 1);
    assert_true(pthread_equal(s.close_thread, pthread_self()));
    assert_int_equal(atomic_load(&s.close_during_call), 0);

    /* Failed. */
    chunk_init(&s, 5000, NULL, 0);
    s.fail_at = 100;
    s.fail_err = EIO;
    b = open_chunk(&s, NULL);
    assert_non_null(b);
    assert_fails_with(sb_wait_end(b, NULL), EIO);
    sleep_ms(SETTLE_MS);
    assert_int_equal(atomic_load(&s.closes), 0);
    sb_close(b);
    assert_int_equal(atomic_load(&s.closes), 1);

    /* Cancelled, then closed. */
    chunk_init(&s, CHUNK_FOREVER, NULL, 0);
    s.delay_us = 500;
    b = open_chunk(&s, NULL);
    assert_non_null(b);
    sb_cancel(b);
    sleep_ms(SETTLE_MS);
    assert_int_equal(atomic_load(&s.closes), 0);
    sb_close(b);
    assert_int_equal(atomic_load(&s.closes), 1);
    assert_int_equal(atomic_load(&s.calls_after_close), 0);
    assert_int_equal(atomic_load(&s.close_during_call), 0);

    /* Without a close callback, nothing to call. */
    chunk_init(&s, 100, NULL, 0);
    sb_source src = chunk_source(&s);
    src.close = NULL;
    b = sb_open(&src, NULL);
    assert_non_null(b);
    assert_int_equal(check_stream(b, 100), 0);
    sb_close(b);
    assert_int_equal(atomic_load(&s.closes), 0);
}

static void test_close_not_called_when_open_fails(void **state)
{
    (void)state;
    chunk_src s;
    chunk_init(&s, 100, NULL, 0);
    iter_src it;
    assert_int_equal(iter_init(&it, 100, NULL, 0), 0);
    sb_source src = chunk_source(&s);
    src.next = iter_source(&it).next; /* both set */
    errno = 0;
    assert_null(sb_open(&src, NULL));
    assert_int_equal(errno, EINVAL);
    sb_options bad = {.tmp_dir = ""};
    src = chunk_source(&s);
    errno = 0;
    assert_null(sb_open(&src, &bad));
    assert_int_equal(errno, EINVAL);
    assert_int_equal(atomic_load(&s.closes), 0);
    assert_int_equal(atomic_load(&s.calls), 0);
    assert_int_equal(atomic_load(&it.calls), 0);
    iter_destroy(&it);
}

static void test_close_waits_for_callback_in_progress(void **state)
{
    (void)state;
    gate_src g;
    gate_init(&g);
    sb_buffer *b = open_gate(&g, NULL);
    assert_non_null(b);
    gate_allow(&g, 100);
    assert_true(wait_available(b, 100, WAIT_LONG_MS));
    assert_true(gate_wait_blocked(&g, WAIT_LONG_MS));
    bg_call c;
    assert_int_equal(bg_start(&c, do_close, b), 0);
    sleep_ms(2 * SETTLE_MS);
    /* The source's read is still running: close waits, and has not called
       the source's close yet. */
    int early = bg_wait(&c, 0);
    int closes_early = atomic_load(&g.closes);
    gate_end(&g);
    int ok = bg_wait(&c, WAIT_LONG_MS);
    bg_join(&c);
    assert_false(early);
    assert_int_equal(closes_early, 0);
    assert_true(ok);
    assert_int_equal(atomic_load(&g.closes), 1);
    gate_destroy(&g);
}

static void test_close_fd_pipe_idle_writer(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    int fds = count_fds();
    sb_buffer *b = sb_open_fd(p[0], NULL);
    assert_non_null(b);
    /* Readers blocked on a pipe nobody writes: cancel wakes them. */
    reader r, w;
    assert_int_equal(reader_start(&r, b, RD_PREAD, 0, 10, 0), 0);
    assert_int_equal(reader_start(&w, b, RD_WAIT_END, 0, 0, 0), 0);
    sleep_ms(SETTLE_MS);
    int early = reader_done(&r) || reader_done(&w);
    sb_cancel(b);
    int ok = reader_wait(&r, WAIT_LONG_MS) && reader_wait(&w, WAIT_LONG_MS);
    if (!ok) {
        /* Unblock a buggy library so the test can finish. */
        close(p[1]);
        p[1] = -1;
    }
    reader_join(&r);
    reader_join(&w);
    assert_false(early);
    assert_true(ok);
    assert_int_equal(r.ret, -1);
    assert_int_equal(r.err, ECANCELED);
    assert_int_equal(w.ret, -1);
    assert_int_equal(w.err, ECANCELED);

    /* Close returns promptly although the writer never writes nor closes. */
    bg_call c;
    double t0 = now_ms();
    assert_int_equal(bg_start(&c, do_close, b), 0);
    int closed = bg_wait(&c, 10000);
    double dt = now_ms() - t0;
    if (!closed && p[1] >= 0) {
        close(p[1]);
        p[1] = -1;
    }
    bg_join(&c);
    assert_true(closed);
    assert_true(dt < 10000.0);
    /* The fd is still the caller's. */
    assert_true(fcntl(p[0], F_GETFD) != -1);
    assert_int_equal(count_fds(), fds);
    close(p[0]);
    if (p[1] >= 0)
        close(p[1]);
}

static void test_close_fd_pipe_without_cancel(void **state)
{
    (void)state;
    /* sb_close alone (no prior cancel) on an idle pipe. */
    int p[2];
    assert_int_equal(pipe(p), 0);
    sb_buffer *b = sb_open_fd(p[0], NULL);
    assert_non_null(b);
    sleep_ms(SETTLE_MS); /* let the producer block in poll */
    bg_call c;
    assert_int_equal(bg_start(&c, do_close, b), 0);
    int closed = bg_wait(&c, 10000);
    if (!closed)
        close(p[1]);
    bg_join(&c);
    assert_true(closed);
    assert_true(fcntl(p[0], F_GETFD) != -1);
    if (closed)
        close(p[1]);
    close(p[0]);
}

/* ---- a user source's cancel callback ------------------------------------------------ */

/*
 * A source that delivers `len` generated bytes, then blocks in its callback
 * until its cancel callback runs.  It records where cancel ran.
 */
typedef struct waker {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t len, pos;
    int ends;           /* after len bytes: the end, not a wait */
    int blocked;        /* a callback waits for cancel now */
    int cancelled;
    int cancels;
    int cancel_in_call; /* cancel ran while a callback was blocked */
    int closes;
    int cancel_after_close;
    pthread_t cancel_thread;
    unsigned char chunk[500];
} waker;

/* Returns 1 to deliver bytes (none at the end), 0 once cancelled. */
static int waker_turn(waker *w)
{
    pthread_mutex_lock(&w->mu);
    while (w->pos >= w->len && !w->cancelled && !w->ends) {
        w->blocked = 1;
        pthread_cond_broadcast(&w->cv);
        pthread_cond_wait(&w->cv, &w->mu);
    }
    w->blocked = 0;
    int go = !w->cancelled;
    pthread_mutex_unlock(&w->mu);
    return go;
}

static ssize_t waker_read(void *ctx, void *buf, size_t cap)
{
    waker *w = ctx;
    if (!waker_turn(w))
        return -ECANCELED;
    size_t n = w->len - w->pos < cap ? (size_t)(w->len - w->pos) : cap;
    gen_fill(buf, n, w->pos);
    w->pos += n;
    return (ssize_t)n;
}

static int waker_next(void *ctx, const void **chunk, size_t *len)
{
    waker *w = ctx;
    if (!waker_turn(w))
        return -ECANCELED;
    if (w->pos >= w->len)
        return 0;
    size_t n = w->len - w->pos < sizeof w->chunk ? (size_t)(w->len - w->pos)
                                                 : sizeof w->chunk;
    gen_fill(w->chunk, n, w->pos);
    w->pos += n;
    *chunk = w->chunk;
    *len = n;
    return 1;
}

static void waker_cancel(void *ctx)
{
    waker *w = ctx;
    pthread_mutex_lock(&w->mu);
    w->cancels++;
    w->cancel_in_call += w->blocked;
    w->cancel_after_close += w->closes;
    w->cancel_thread = pthread_self();
    w->cancelled = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void waker_close(void *ctx)
{
    waker *w = ctx;
    pthread_mutex_lock(&w->mu);
    w->closes++;
    pthread_mutex_unlock(&w->mu);
}

static void waker_unblock(void *ctx)
{
    waker_cancel(ctx); /* teardown: let a stuck callback go */
}

static void waker_destroy(void *ctx)
{
    waker *w = ctx;
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
}

static waker *fx_waker(uint64_t len)
{
    waker *w = fx_calloc(sizeof *w);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->len = len;
    fx_track(w, NULL, waker_destroy);
    return w;
}

static sb_source waker_source(waker *w, int iterator)
{
    sb_source src = {.cancel = waker_cancel, .close = waker_close, .ctx = w};
    if (iterator)
        src.next = waker_next;
    else
        src.read = waker_read;
    return src;
}

static int waker_wait_blocked(waker *w)
{
    double end = now_ms() + WAIT_LONG_MS;
    pthread_mutex_lock(&w->mu);
    while (!w->blocked && now_ms() < end) {
        pthread_mutex_unlock(&w->mu);
        sleep_ms(1);
        pthread_mutex_lock(&w->mu);
    }
    int b = w->blocked;
    pthread_mutex_unlock(&w->mu);
    return b;
}

static void close_bg(void *b)
{
    sb_close(b);
}

typedef struct closer {
    sb_buffer *b;
    pthread_t self;
} closer;

static void close_and_note(void *p)
{
    closer *c = p;
    c->self = pthread_self();
    sb_close(c->b);
}

/* sb_close wakes a callback blocked in a source that has a cancel, at once,
   and calls cancel on its own thread, once, before close. */
static void test_source_cancel_wakes_blocked_callback(void **state)
{
    (void)state;
    for (int iterator = 0; iterator <= 1; iterator++) {
        waker *w = fx_waker(3000);
        sb_source src = waker_source(w, iterator);
        sb_buffer *b = sb_open(&src, NULL);
        assert_non_null(b);
        /* Teardown: if close never returns, let the callback go. */
        fx_track(w, waker_unblock, NULL);
        assert_true(wait_available(b, 3000, WAIT_LONG_MS));
        assert_true(waker_wait_blocked(w));
        closer *c = fx_calloc(sizeof *c);
        c->b = b;
        bg_call *bg = fx_bg(close_and_note, c);
        assert_non_null(bg);
        assert_true(bg_wait(bg, 10000));
        bg_join(bg);
        assert_int_equal(w->cancels, 1);
        assert_int_equal(w->cancel_in_call, 1);
        assert_true(pthread_equal(w->cancel_thread, c->self));
        assert_int_equal(w->closes, 1);
        assert_int_equal(w->cancel_after_close, 0);
    }
}

/* sb_cancel calls it on the cancelling thread, once however often it is
   called, and sb_close after it does not call it again. */
static void test_source_cancel_once_on_cancelling_thread(void **state)
{
    (void)state;
    waker *w = fx_waker(1000);
    sb_source src = waker_source(w, 0);
    sb_buffer *b = fx_buffer(sb_open(&src, NULL));
    assert_non_null(b);
    fx_track(w, waker_unblock, NULL);
    assert_true(waker_wait_blocked(w));
    reader *r = fx_reader(b, RD_PREAD, 1000, 10, 0);
    assert_non_null(r);
    assert_true(wait_for_waiters(b, 1, WAIT_LONG_MS));
    sb_cancel(b);
    assert_true(reader_wait(r, WAIT_LONG_MS));
    sb_cancel(b);
    bg_call *bg = fx_bg(close_bg, b);
    fx_untrack(b);
    assert_non_null(bg);
    assert_true(bg_wait(bg, 10000));
    assert_int_equal(w->cancels, 1);
    assert_true(pthread_equal(w->cancel_thread, pthread_self()));
    assert_int_equal(w->closes, 1);
    assert_int_equal(r->ret, -1);
    assert_int_equal(r->err, ECANCELED);
}

/* A stream that ended by itself has nothing to interrupt. */
static void test_source_cancel_not_called_after_end(void **state)
{
    (void)state;
    for (int iterator = 0; iterator <= 1; iterator++) {
        waker *w = fx_waker(1000);
        w->ends = 1;
        sb_source src = waker_source(w, iterator);
        sb_buffer *b = fx_buffer(sb_open(&src, NULL));
        assert_non_null(b);
        assert_int_equal(sb_wait_end(b, NULL), 0);
        sb_cancel(b);
        fx_close(b);
        assert_int_equal(w->cancels, 0);
        assert_int_equal(w->closes, 1);
    }
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cancel_wakes_readers_while_source_stuck),
        cmocka_unit_test(test_filled_bytes_readable_after_cancel),
        cmocka_unit_test(test_cancel_twice_and_concurrently),
        cmocka_unit_test(test_cancel_on_ended_stream_does_nothing),
        cmocka_unit_test(test_cancel_on_failed_stream_keeps_error),
        cmocka_unit_test(test_null_is_ignored),
        cmocka_unit_test(test_cancel_from_other_thread_mid_stream),
        cmocka_unit_test(test_close_right_after_open),
        cmocka_unit_test(test_close_calls_source_close_once),
        cmocka_unit_test(test_close_not_called_when_open_fails),
        cmocka_unit_test(test_close_waits_for_callback_in_progress),
        cmocka_unit_test(test_close_fd_pipe_idle_writer),
        cmocka_unit_test(test_close_fd_pipe_without_cancel),
        FX_TEST(test_source_cancel_wakes_blocked_callback),
        FX_TEST(test_source_cancel_once_on_cancelling_thread),
        FX_TEST(test_source_cancel_not_called_after_end),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
