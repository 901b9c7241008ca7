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

static void close_bg(void *b)
{
    sb_close(b);
}

/* ---- cancel wakes readers ---------------------------------------------------------- */

#define NPAST 8

static void test_cancel_wakes_readers_while_source_stuck(void **state)
{
    (void)state;
    gate_src *g = fx_gate();
    sb_options o = {.mem_limit = 4096};
    sb_buffer *b = fx_buffer(open_gate(g, &o));
    assert_non_null(b);
    gate_allow(g, 1000);
    assert_true(wait_available(b, 1000, WAIT_LONG_MS));
    /* The producer is now stuck inside the source's read. */
    assert_true(gate_wait_blocked(g, WAIT_LONG_MS));

    reader *past[NPAST];
    for (int i = 0; i < NPAST; i++) {
        past[i] = fx_reader(b, RD_PREAD, 1000 + (uint64_t)i * 777, 50, 0);
        assert_non_null(past[i]);
    }
    reader *timed = fx_reader(b, RD_TIMED, 5000, 10, 60000);
    reader *straddle = fx_reader(b, RD_PREAD, 900, 200, 0);
    reader *w = fx_reader(b, RD_WAIT_END, 0, 0, 0);
    reader *wn = fx_reader(b, RD_WAIT_END_NULL, 0, 0, 0);
    assert_non_null(timed);
    assert_non_null(straddle);
    assert_non_null(w);
    assert_non_null(wn);
    assert_true(wait_for_waiters(b, NPAST + 4, WAIT_LONG_MS));
    int early = reader_done(timed) + reader_done(straddle) + reader_done(w) +
                reader_done(wn);
    for (int i = 0; i < NPAST; i++)
        early += reader_done(past[i]);
    assert_int_equal(early, 0);

    /* Cancel from another thread; it must not wait for the source.  The
       timed reader's 60 s would outlast every wait here. */
    bg_call *c = fx_bg(do_cancel, b);
    assert_non_null(c);
    assert_true(bg_wait(c, WAIT_LONG_MS));
    assert_true(reader_wait(timed, WAIT_LONG_MS));
    assert_true(reader_wait(straddle, WAIT_LONG_MS));
    assert_true(reader_wait(w, WAIT_LONG_MS));
    assert_true(reader_wait(wn, WAIT_LONG_MS));
    for (int i = 0; i < NPAST; i++)
        assert_true(reader_wait(past[i], WAIT_LONG_MS));
    /* All of that happened while the source was still stuck. */
    assert_true(gate_wait_blocked(g, 0));

    for (int i = 0; i < NPAST; i++) {
        assert_int_equal(past[i]->ret, -1);
        assert_int_equal(past[i]->err, ECANCELED);
    }
    assert_int_equal(timed->ret, -1);
    assert_int_equal(timed->err, ECANCELED);
    assert_int_equal(straddle->ret, 100);
    assert_int_equal(straddle->bad, 0);
    assert_int_equal(w->ret, -1);
    assert_int_equal(w->err, ECANCELED);
    assert_int_equal(w->length, UINT64_MAX);
    assert_int_equal(wn->ret, -1);
    assert_int_equal(wn->err, ECANCELED);

    gate_end(g); /* only now let the source return */
    fx_close(b);
    assert_int_equal(atomic_load(&g->closes), 1);
}

static void test_filled_bytes_readable_after_cancel(void **state)
{
    (void)state;
    gate_src *g = fx_gate();
    sb_options o = {.mem_limit = 4096};
    sb_buffer *b = fx_buffer(open_gate(g, &o));
    assert_non_null(b);
    gate_allow(g, 10000); /* memory and spill file */
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
}

static void test_cancel_twice_and_concurrently(void **state)
{
    (void)state;
    gate_src *g = fx_gate();
    sb_buffer *b = fx_buffer(open_gate(g, NULL));
    assert_non_null(b);
    gate_allow(g, 3000);
    assert_true(wait_available(b, 3000, WAIT_LONG_MS));
    reader *r = fx_reader(b, RD_PREAD, 3000, 10, 0);
    assert_non_null(r);
    assert_true(wait_for_waiters(b, 1, WAIT_LONG_MS));
    bg_call *c[4];
    for (int i = 0; i < 4; i++) {
        c[i] = fx_bg(do_cancel, b);
        assert_non_null(c[i]);
    }
    sb_cancel(b);
    sb_cancel(b);
    assert_true(reader_wait(r, WAIT_LONG_MS));
    for (int i = 0; i < 4; i++)
        assert_true(bg_wait(c[i], WAIT_LONG_MS));
    assert_int_equal(r->ret, -1);
    assert_int_equal(r->err, ECANCELED);
    gate_end(g);
    sb_cancel(b);
    assert_fails_with(sb_wait_end(b, NULL), ECANCELED);
    assert_int_equal(check_read(b, 0, 3000, 3000), 0);
    fx_close(b);
    assert_int_equal(atomic_load(&g->closes), 1);
}

static void test_cancel_on_ended_stream_does_nothing(void **state)
{
    (void)state;
    chunk_src *s = fx_chunk(9000, NULL, 0);
    sb_options o = {.mem_limit = 4096};
    sb_buffer *b = fx_buffer(open_chunk(s, &o));
    assert_non_null(b);
    assert_int_equal(sb_wait_end(b, NULL), 0);
    sb_cancel(b);
    sb_cancel(b);
    /* Still an ended stream: reads at the end give 0, not ECANCELED. */
    assert_int_equal(check_stream(b, 9000), 0);
    assert_int_equal(check_read(b, 9000, 10, 0), 0);
    fx_close(b);
    assert_int_equal(atomic_load(&s->closes), 1);

    /* The same for sb_open_mem. */
    unsigned char *data = fx_calloc(500);
    gen_fill(data, 500, 0);
    b = fx_buffer(sb_open_mem(data, 500, NULL));
    assert_non_null(b);
    sb_cancel(b);
    assert_int_equal(check_stream(b, 500), 0);
}

static void test_cancel_on_failed_stream_keeps_error(void **state)
{
    (void)state;
    chunk_src *s = fx_chunk(100000, NULL, 0);
    s->fail_at = 6000;
    s->fail_err = EIO;
    sb_options o = {.mem_limit = 4096};
    sb_buffer *b = fx_buffer(open_chunk(s, &o));
    assert_non_null(b);
    assert_fails_with(sb_wait_end(b, NULL), EIO);
    sb_cancel(b);
    assert_fails_with(sb_wait_end(b, NULL), EIO);
    assert_int_equal(check_read_err(b, 6000, 1, EIO), 0);
    assert_int_equal(check_read(b, 0, 6000, 6000), 0);
}

static void test_null_is_ignored(void **state)
{
    (void)state;
    sb_cancel(NULL);
    sb_close(NULL);
    /* And nothing was disturbed: a normal stream still works. */
    chunk_src *s = fx_chunk(100, NULL, 0);
    sb_buffer *b = fx_buffer(open_chunk(s, NULL));
    assert_non_null(b);
    sb_cancel(NULL);
    assert_int_equal(check_stream(b, 100), 0);
}

/* The source's delay keeps the stream running while readers come and go. */
static void test_cancel_from_other_thread_mid_stream(void **state)
{
    (void)state;
    /* An endless, slowish source; readers all over; a thread cancels. */
    static const size_t pat[] = {1000, 17};
    chunk_src *s = fx_chunk(CHUNK_FOREVER, pat, 2);
    s->delay_us = 100;
    char *dir = fx_scratch();
    sb_options o = {.mem_limit = 8192, .tmp_dir = dir};
    sb_buffer *b = fx_buffer(open_chunk(s, &o));
    assert_non_null(b);
    enum { N = 8 };
    reader *r[N];
    /* The one far ahead first, so that it is surely waiting when the
       cancel comes. */
    r[N - 1] = fx_reader(b, RD_PREAD, (uint64_t)1 << 40, 3000, 0);
    assert_non_null(r[N - 1]);
    assert_true(wait_for_waiters(b, 1, WAIT_LONG_MS));
    for (int i = 0; i < N - 1; i++) {
        r[i] = fx_reader(b, RD_PREAD, (uint64_t)i * 4000, 3000, 0);
        assert_non_null(r[i]);
    }
    /* Mid-stream: past the ranges of the first readers, not the last. */
    assert_true(wait_available(b, 15000, WAIT_LONG_MS));
    uint64_t before = sb_available(b);
    bg_call *c = fx_bg(do_cancel, b);
    assert_non_null(c);
    assert_true(bg_wait(c, WAIT_LONG_MS));
    for (int i = 0; i < N; i++)
        assert_true(reader_wait(r[i], WAIT_LONG_MS));
    /* Every reader got all its bytes, some of them (a short count), or
       ECANCELED; the bytes it got are right; a range that was in before
       the cancel was read whole. */
    for (int i = 0; i < N; i++) {
        if (r[i]->off + r[i]->n <= before)
            assert_int_equal(r[i]->ret, 3000);
        if (r[i]->ret == -1) {
            assert_int_equal(r[i]->err, ECANCELED);
        } else {
            assert_true(r[i]->ret > 0 && r[i]->ret <= 3000);
            assert_int_equal(r[i]->bad, 0);
        }
    }
    assert_int_equal(r[0]->ret, 3000);
    assert_int_equal(r[N - 1]->ret, -1);
    assert_fails_with(sb_wait_end(b, NULL), ECANCELED);
    fx_close(b);
    assert_int_equal(count_dir_entries(dir), 0);
}

/* ---- sb_close -------------------------------------------------------------------------- */

static void test_close_right_after_open(void **state)
{
    (void)state;
    char *dir = fx_scratch();
    int fds = count_fds();
    sb_options o = {.mem_limit = 4096, .tmp_dir = dir};

    /* A fast endless source, spilling. */
    chunk_src *s = fx_chunk(CHUNK_FOREVER, NULL, 0);
    double t0 = now_ms();
    sb_buffer *b = fx_buffer(open_chunk(s, &o));
    assert_non_null(b);
    fx_close(b);
    double dt = now_ms() - t0;
    assert_true(dt < 10000.0);
    assert_int_equal(atomic_load(&s->closes), 1);
    assert_int_equal(atomic_load(&s->calls_after_close), 0);
    assert_int_equal(atomic_load(&s->close_during_call), 0);

    /* A slow one, closed mid-stream. */
    s = fx_chunk(CHUNK_FOREVER, NULL, 0);
    s->delay_us = 2000;
    b = fx_buffer(open_chunk(s, &o));
    assert_non_null(b);
    fx_close(b);
    assert_int_equal(atomic_load(&s->closes), 1);
    assert_int_equal(atomic_load(&s->calls_after_close), 0);
    assert_int_equal(atomic_load(&s->close_during_call), 0);

    /* An endless iterator. */
    static const size_t pat[] = {5000, 0};
    iter_src *it = fx_iter(CHUNK_FOREVER, pat, 2);
    sb_source src = iter_source(it);
    b = fx_buffer(sb_open(&src, &o));
    assert_non_null(b);
    assert_true(wait_available(b, 10000, WAIT_LONG_MS));
    fx_close(b);
    assert_int_equal(atomic_load(&it->closes), 1);

    assert_int_equal(count_fds(), fds);
    assert_int_equal(count_dir_entries(dir), 0);
}

/*
 * Not before sb_close, once in it, on its thread, after the producer
 * stopped.  "Not before" needs no wait for the producer to stop: a close
 * from anywhere but sb_close would show whenever it came, as a second
 * close or as close_thread another thread than this one.
 */
static void test_close_calls_source_close_once(void **state)
{
    (void)state;
    /* Ended normally. */
    chunk_src *s = fx_chunk(5000, NULL, 0);
    sb_buffer *b = fx_buffer(open_chunk(s, NULL));
    assert_non_null(b);
    assert_int_equal(sb_wait_end(b, NULL), 0);
    assert_int_equal(atomic_load(&s->closes), 0);
    fx_close(b);
    assert_int_equal(atomic_load(&s->closes), 1);
    assert_true(pthread_equal(s->close_thread, pthread_self()));
    assert_int_equal(atomic_load(&s->close_during_call), 0);

    /* Failed. */
    s = fx_chunk(5000, NULL, 0);
    s->fail_at = 100;
    s->fail_err = EIO;
    b = fx_buffer(open_chunk(s, NULL));
    assert_non_null(b);
    assert_fails_with(sb_wait_end(b, NULL), EIO);
    assert_int_equal(atomic_load(&s->closes), 0);
    fx_close(b);
    assert_int_equal(atomic_load(&s->closes), 1);
    assert_true(pthread_equal(s->close_thread, pthread_self()));

    /* Cancelled, then closed. */
    s = fx_chunk(CHUNK_FOREVER, NULL, 0);
    s->delay_us = 500;
    b = fx_buffer(open_chunk(s, NULL));
    assert_non_null(b);
    sb_cancel(b);
    assert_int_equal(atomic_load(&s->closes), 0);
    fx_close(b);
    assert_int_equal(atomic_load(&s->closes), 1);
    assert_true(pthread_equal(s->close_thread, pthread_self()));
    assert_int_equal(atomic_load(&s->calls_after_close), 0);
    assert_int_equal(atomic_load(&s->close_during_call), 0);

    /* Without a close callback, nothing to call. */
    s = fx_chunk(100, NULL, 0);
    sb_source src = chunk_source(s);
    src.close = NULL;
    b = fx_buffer(sb_open(&src, NULL));
    assert_non_null(b);
    assert_int_equal(check_stream(b, 100), 0);
    fx_close(b);
    assert_int_equal(atomic_load(&s->closes), 0);
}

static void test_close_not_called_when_open_fails(void **state)
{
    (void)state;
    chunk_src *s = fx_chunk(100, NULL, 0);
    iter_src *it = fx_iter(100, NULL, 0);
    sb_source src = chunk_source(s);
    src.next = iter_source(it).next; /* both set */
    assert_null_with(fx_buffer(sb_open(&src, NULL)), EINVAL);
    sb_options bad = {.tmp_dir = ""};
    src = chunk_source(s);
    assert_null_with(fx_buffer(sb_open(&src, &bad)), EINVAL);
    assert_int_equal(atomic_load(&s->closes), 0);
    assert_int_equal(atomic_load(&s->calls), 0);
    assert_int_equal(atomic_load(&it->calls), 0);
}

/*
 * A gate whose cancel callback only records that it ran and leaves the
 * read stuck, as a source without cancel would.  sb_close cancels the
 * stream (which calls it) before it waits for the producer, so its having
 * run tells that sb_close got that far.
 */
typedef struct deaf_gate {
    sb_source inner;
    atomic_int cancels;
    atomic_int in_read;
    atomic_int close_in_read; /* close came while a read was running */
} deaf_gate;

static ssize_t deaf_read(void *ctx, void *buf, size_t cap)
{
    deaf_gate *d = ctx;
    atomic_fetch_add(&d->in_read, 1);
    ssize_t r = d->inner.read(d->inner.ctx, buf, cap);
    atomic_fetch_sub(&d->in_read, 1);
    return r;
}

static void deaf_cancel(void *ctx)
{
    deaf_gate *d = ctx;
    atomic_fetch_add(&d->cancels, 1);
}

static void deaf_close(void *ctx)
{
    deaf_gate *d = ctx;
    if (atomic_load(&d->in_read) != 0)
        atomic_fetch_add(&d->close_in_read, 1);
    d->inner.close(d->inner.ctx);
}

static void test_close_waits_for_callback_in_progress(void **state)
{
    (void)state;
    gate_src *g = fx_gate();
    deaf_gate *d = fx_calloc(sizeof *d);
    d->inner = gate_source(g);
    sb_source src = {.read = deaf_read, .cancel = deaf_cancel,
                     .close = deaf_close, .ctx = d};
    sb_buffer *b = fx_buffer(sb_open(&src, NULL));
    assert_non_null(b);
    gate_allow(g, 100);
    assert_true(wait_available(b, 100, WAIT_LONG_MS));
    assert_true(gate_wait_blocked(g, WAIT_LONG_MS));
    bg_call *c = fx_bg(close_bg, b);
    assert_non_null(c);
    fx_untrack(b);
    /* sb_close has cancelled.  The source's read is still running: close
       waits, and has not called the source's close yet. */
    assert_true(wait_count(&d->cancels, 1, WAIT_LONG_MS));
    assert_false(bg_wait(c, 0));
    assert_int_equal(atomic_load(&g->closes), 0);
    gate_end(g);
    assert_true(bg_wait(c, WAIT_LONG_MS));
    assert_int_equal(atomic_load(&g->closes), 1);
    assert_int_equal(atomic_load(&d->close_in_read), 0);
    assert_int_equal(atomic_load(&d->cancels), 1);
}

/* Closing it releases a producer stuck in read(2) on the pipe: teardown
   does it in pass 1, so a library with that bug fails instead of hanging. */
static void close_write_end(void *p)
{
    int *fd = p;
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* A pipe whose write end teardown closes first; returns the read end. */
static int fx_pipe_wr(int **write_end)
{
    int p[2];
    if (pipe(p) != 0)
        fail_msg("pipe: %s", strerror(errno));
    fx_fd(p[0]);
    int *wr = fx_calloc(sizeof *wr);
    *wr = p[1];
    fx_track(wr, close_write_end, close_write_end);
    *write_end = wr;
    return p[0];
}

static void test_close_fd_pipe_idle_writer(void **state)
{
    (void)state;
    int *wr;
    int rd = fx_pipe_wr(&wr);
    int fds = count_fds();
    sb_buffer *b = fx_buffer(sb_open_fd(rd, NULL));
    assert_non_null(b);
    /* Readers blocked on a pipe nobody writes: cancel wakes them. */
    reader *r = fx_reader(b, RD_PREAD, 0, 10, 0);
    reader *w = fx_reader(b, RD_WAIT_END, 0, 0, 0);
    assert_non_null(r);
    assert_non_null(w);
    assert_true(wait_for_waiters(b, 2, WAIT_LONG_MS));
    assert_false(reader_done(r));
    assert_false(reader_done(w));
    sb_cancel(b);
    assert_true(reader_wait(r, WAIT_LONG_MS));
    assert_true(reader_wait(w, WAIT_LONG_MS));
    assert_int_equal(r->ret, -1);
    assert_int_equal(r->err, ECANCELED);
    assert_int_equal(w->ret, -1);
    assert_int_equal(w->err, ECANCELED);

    /* Close returns promptly although the writer never writes nor closes. */
    bg_call *c = fx_bg(close_bg, b);
    assert_non_null(c);
    fx_untrack(b);
    assert_true(bg_wait(c, 10000));
    /* The fd is still the caller's. */
    assert_true(fcntl(rd, F_GETFD) != -1);
    assert_true(fcntl(*wr, F_GETFD) != -1);
    assert_int_equal(count_fds(), fds);
}

static void test_close_fd_pipe_without_cancel(void **state)
{
    (void)state;
    /* sb_close alone (no prior cancel) on an idle pipe. */
    int *wr;
    int rd = fx_pipe_wr(&wr);
    sb_buffer *b = fx_buffer(sb_open_fd(rd, NULL));
    assert_non_null(b);
    /* Once the producer has taken a byte, it goes back to poll(2) for
       more, and none comes: the pipe is idle from here on. */
    unsigned char byte = gen_byte(0);
    assert_int_equal(write(*wr, &byte, 1), 1);
    assert_true(wait_available(b, 1, WAIT_LONG_MS));
    assert_int_equal(check_read(b, 0, 1, 1), 0);
    bg_call *c = fx_bg(close_bg, b);
    assert_non_null(c);
    fx_untrack(b);
    assert_true(bg_wait(c, 10000));
    assert_true(fcntl(rd, F_GETFD) != -1);
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

static int waker_blocked(void *arg)
{
    waker *w = arg;
    pthread_mutex_lock(&w->mu);
    int b = w->blocked;
    pthread_mutex_unlock(&w->mu);
    return b;
}

static int waker_wait_blocked(waker *w)
{
    return poll_until(waker_blocked, w, WAIT_LONG_MS);
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
        sb_buffer *b = fx_buffer(sb_open(&src, NULL));
        assert_non_null(b);
        /* Teardown: if close never returns, let the callback go. */
        fx_track(w, waker_unblock, NULL);
        assert_true(wait_available(b, 3000, WAIT_LONG_MS));
        assert_true(waker_wait_blocked(w));
        closer *c = fx_calloc(sizeof *c);
        c->b = b;
        bg_call *bg = fx_bg(close_and_note, c);
        assert_non_null(bg);
        fx_untrack(b);
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
    assert_non_null(bg);
    fx_untrack(b);
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
        FX_TEST(test_cancel_wakes_readers_while_source_stuck),
        FX_TEST(test_filled_bytes_readable_after_cancel),
        FX_TEST(test_cancel_twice_and_concurrently),
        FX_TEST(test_cancel_on_ended_stream_does_nothing),
        FX_TEST(test_cancel_on_failed_stream_keeps_error),
        FX_TEST(test_null_is_ignored),
        FX_TEST(test_cancel_from_other_thread_mid_stream),
        FX_TEST(test_close_right_after_open),
        FX_TEST(test_close_calls_source_close_once),
        FX_TEST(test_close_not_called_when_open_fails),
        FX_TEST(test_close_waits_for_callback_in_progress),
        FX_TEST(test_close_fd_pipe_idle_writer),
        FX_TEST(test_close_fd_pipe_without_cancel),
        FX_TEST(test_source_cancel_wakes_blocked_callback),
        FX_TEST(test_source_cancel_once_on_cancelling_thread),
        FX_TEST(test_source_cancel_not_called_after_end),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
