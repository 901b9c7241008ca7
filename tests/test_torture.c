/* SPDX-License-Identifier: MIT */
/*
 * test_torture.c - concurrency torture: random interleavings of many
 * readers (random offsets and lengths, past the end too), sb_cancel at
 * random times, and sb_close after joining, over random stream shapes
 * (read, iterator, pipe or memory sources; chunk sizes; memory limits
 * around the read offsets; source failures; max_size), every result
 * checked against the rules and every byte against the generator; sb_close
 * right after sb_open with the producer inside a chunk; a thousand
 * open/read/close cycles that must leave no fd, mapping, thread or file
 * behind (the library's mmap and munmap calls are counted through
 * definitions in this file, and /proc/self/maps is compared where no
 * sanitizer or valgrind maps memory of its own); and a process killed
 * mid-stream that must leave no file behind.
 *
 * The random seed is printed; SB_TORTURE_SEED=N repeats a run (thread
 * timing aside).  Under the sanitizers and valgrind fewer rounds run.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"

#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
#ifndef UNDER_TSAN
#define UNDER_TSAN 0
#endif
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

static uint64_t seed;
/* The threads of this process when no test runs (main, and a sanitizer's
   own), counted in main. */
static int quiet_threads;

/* Iterations: fewer under valgrind, ThreadSanitizer and AddressSanitizer,
   which are 2-50 times slower (so that every variant of `make test` takes
   about as long), but never fewer than min. */
static int scaled(int n, int min)
{
    int s = n;
    if (getenv("SB_VALGRIND") != NULL)
        s = n / 4;
    else if (UNDER_TSAN)
        s = n / 3;
    else if (UNDER_ASAN)
        s = n / 2;
    return s < min ? min : s;
}

/* ---- a small PRNG (splitmix64) ----------------------------------------------------- */

typedef struct rng {
    uint64_t s;
} rng;

static uint64_t rnext(rng *r)
{
    uint64_t x = (r->s += 0x9E3779B97F4A7C15u);
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9u;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBu;
    return x ^ (x >> 31);
}

static uint64_t rbelow(rng *r, uint64_t n)
{
    return n == 0 ? 0 : rnext(r) % n;
}

static rng rng_for(uint64_t a, uint64_t b)
{
    rng r = {seed ^ (a * 0x100000001B3u) ^ (b << 40)};
    rnext(&r);
    return r;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/* ==== random interleavings ========================================================== */

enum kind { K_READ, K_ITER, K_FD, K_MEM };
static const char *const kind_name[] = {"read", "next", "fd", "mem"};

#define MAXT 6
#define MAXOPS 40

typedef struct tcfg {
    int kind;
    uint64_t len; /* CHUNK_FOREVER: never ends (always cancelled) */
    size_t pat[4];
    size_t npat;
    size_t chunk_size;
    size_t mem_limit;
    uint64_t max_size;
    uint64_t fail_at;
    int fail_err;
    unsigned delay_us;
    int cancel;      /* 0 none, 1 the test thread, 2 a reader */
    unsigned cancel_after_us;
    int nthreads;
    int nops;
    /* What the stream ends as if nobody cancels it. */
    uint64_t want_len; /* UINT64_MAX: never ends */
    int want_err;
} tcfg;

enum op {
    OP_PREAD,
    OP_TIMED0,   /* sb_pread_timed, timeout 0 */
    OP_TIMED,    /* sb_pread_timed, a few ms */
    OP_AVAIL,    /* sb_available, then read [x, available) with timeout 0 */
    OP_WAIT_END,
    OP_STATS,
    OP_CANCEL,
    OP_NOPS
};

typedef struct oprec {
    int op;
    uint64_t off;
    size_t n;
    int timeout_ms;
    ssize_t ret;
    int err;
    size_t bad;
    uint64_t avail_before;
    int state_before;
    uint64_t length;      /* OP_WAIT_END; OP_AVAIL: the count */
    int cancelled_after;  /* sb_cancel had been called when it returned */
    sb_stats st;
} oprec;

typedef struct shared {
    sb_buffer *b;
    const tcfg *c;
    atomic_int cancelled;
} shared;

typedef struct worker {
    shared *sh;
    rng r;
    int cancel_at; /* op index that cancels, or -1 */
    oprec recs[MAXOPS];
    int nrec;
    unsigned char *buf;
    bg_call *call;
} worker;

#define BUFCAP 70000

/* Any source, slowed down: each callback sleeps first, so that readers
   wait (the delay is part of the stream's shape under test). */
typedef struct slow_src {
    sb_source inner;
    unsigned delay_us;
} slow_src;

static void nap_us(unsigned us)
{
    struct timespec ts = {0, (long)us * 1000L};
    nanosleep(&ts, NULL);
}

static int slow_next(void *ctx, const void **chunk, size_t *len)
{
    slow_src *s = ctx;
    nap_us(s->delay_us);
    return s->inner.next(s->inner.ctx, chunk, len);
}

static void slow_close(void *ctx)
{
    slow_src *s = ctx;
    s->inner.close(s->inner.ctx);
}

/* An offset worth reading: anywhere, near the memory boundary, near the
   end, 0, far away, or where off + n overflows. */
static uint64_t pick_off(rng *r, const tcfg *c, uint64_t avail)
{
    uint64_t end = c->want_len != UINT64_MAX ? c->want_len : avail + 20000;
    uint64_t around;
    switch (rbelow(r, 12)) {
    case 0: case 1: case 2: case 3:
        return rbelow(r, end + 2000);
    case 4: case 5:
        around = c->mem_limit;
        break;
    case 6: case 7:
        around = end;
        break;
    case 8:
        around = avail;
        break;
    case 9:
        return 0;
    case 10:
        return end + 1000000 + rbelow(r, 1000);
    default:
        return UINT64_MAX - rbelow(r, 3000);
    }
    uint64_t d = rbelow(r, 1001);
    return d <= 500 ? (around > 500 - d ? around - (500 - d) : 0)
                    : around + (d - 500);
}

static size_t pick_len(rng *r)
{
    switch (rbelow(r, 10)) {
    case 0:
        return 0;
    case 1: case 2: case 3: case 4: case 5:
        return 1 + (size_t)rbelow(r, 512);
    case 6: case 7: case 8:
        return 1 + (size_t)rbelow(r, 8192);
    default:
        return 1 + (size_t)rbelow(r, BUFCAP);
    }
}

static void worker_main(void *arg)
{
    worker *w = arg;
    shared *sh = w->sh;
    sb_buffer *b = sh->b;
    for (int i = 0; i < w->sh->c->nops; i++) {
        oprec *o = &w->recs[i];
        memset(o, 0, sizeof *o);
        w->nrec = i + 1;
        if (i == w->cancel_at) {
            o->op = OP_CANCEL;
            atomic_store(&sh->cancelled, 1);
            sb_cancel(b);
            continue;
        }
        /* Random naps vary the interleavings: they are what is under
           test, nothing waits on them. */
        if (rbelow(&w->r, 4) == 0)
            nap_us((unsigned)rbelow(&w->r, 300));
        o->op = (int)rbelow(&w->r, OP_CANCEL);
        uint64_t avail = sb_available(b);
        o->off = pick_off(&w->r, sh->c, avail);
        o->n = pick_len(&w->r);
        o->timeout_ms = 1 + (int)rbelow(&w->r, 5);
        sb_stats st;
        sb_get_stats(b, &st);
        o->avail_before = st.filled;
        o->state_before = st.state;
        errno = 0;
        switch (o->op) {
        case OP_PREAD:
            o->ret = sb_pread(b, w->buf, o->n, o->off);
            break;
        case OP_TIMED0:
            o->ret = sb_pread_timed(b, w->buf, o->n, o->off, 0);
            break;
        case OP_TIMED:
            o->ret = sb_pread_timed(b, w->buf, o->n, o->off, o->timeout_ms);
            break;
        case OP_AVAIL:
            /* [x, available) is there: reading it never waits. */
            o->length = sb_available(b);
            o->off = rbelow(&w->r, o->length + 1);
            o->n = (size_t)min_u64(o->n, o->length - o->off);
            o->ret = sb_pread_timed(b, w->buf, o->n, o->off, 0);
            break;
        case OP_WAIT_END:
            o->length = UINT64_MAX;
            o->ret = sb_wait_end(b, &o->length);
            break;
        default:
            o->ret = sb_get_stats(b, &o->st);
            break;
        }
        o->err = o->ret == -1 ? errno : 0;
        o->cancelled_after = atomic_load(&sh->cancelled);
        if (o->op != OP_WAIT_END && o->op != OP_STATS && o->ret > 0 &&
            (size_t)o->ret <= o->n)
            o->bad = gen_mismatches(w->buf, (size_t)o->ret, o->off);
    }
}

/* A random stream shape. */
static void pick_cfg(rng *r, tcfg *c)
{
    memset(c, 0, sizeof *c);
    c->kind = (int)rbelow(r, 4);
    int forever = (c->kind == K_READ || c->kind == K_ITER) && rbelow(r, 6) == 0;
    c->len = forever ? CHUNK_FOREVER : rbelow(r, 6) == 0 ? rbelow(r, 5)
                                                         : rbelow(r, 65536);
    uint64_t flen = forever ? 65536 : c->len;
    /* A slow source now and then (always when endless), so readers wait. */
    if (forever || rbelow(r, 3) == 0)
        c->delay_us = 10 + (unsigned)rbelow(r, 150);
    /* Memory limits near where the reads go: tiny, around the length,
       or anywhere. */
    switch (rbelow(r, 6)) {
    case 0:
        c->mem_limit = 1 + (size_t)rbelow(r, 16);
        break;
    case 1:
        c->mem_limit = (size_t)(flen > 2 ? flen - 1 + rbelow(r, 3) : 1);
        break;
    case 2:
        c->mem_limit = 4096;
        break;
    default:
        c->mem_limit = 1 + (size_t)rbelow(r, flen + 100);
        break;
    }
    /* At most about 4000 producer steps per stream, 100 if slow. */
    size_t min_chunk = (size_t)(flen / (c->delay_us ? 100 : 4000) + 1);
    switch (rbelow(r, 4)) {
    case 0:
        c->chunk_size = 0; /* the default, 64 KiB */
        break;
    case 1:
        c->chunk_size = min_chunk + (size_t)rbelow(r, 16);
        break;
    default:
        c->chunk_size = min_chunk + (size_t)rbelow(r, 9000);
        break;
    }
    c->npat = 1 + (size_t)rbelow(r, 4);
    for (size_t i = 0; i < c->npat; i++)
        c->pat[i] = (c->kind == K_ITER && rbelow(r, 4) == 0)
                        ? 0
                        : min_chunk + (size_t)rbelow(r, 6000);
    if (c->kind == K_ITER)
        c->pat[rbelow(r, c->npat)] = min_chunk + 1; /* one non-empty */
    if (rbelow(r, 4) == 0)
        c->max_size = 1 + rbelow(r, flen + 100);
    if ((c->kind == K_READ || c->kind == K_ITER) && rbelow(r, 4) == 0) {
        static const int errs[] = {EIO, ECONNRESET, EPROTO, ENOSPC};
        c->fail_at = rbelow(r, flen + 100);
        c->fail_err = errs[rbelow(r, 4)];
    }
    if (forever && c->chunk_size == 0)
        c->chunk_size = 8192;
    c->cancel = forever ? 1 : (int)rbelow(r, 3);
    c->cancel_after_us = (unsigned)rbelow(r, 3000);
    c->nthreads = 2 + (int)rbelow(r, MAXT - 1);
    c->nops = 5 + (int)rbelow(r, MAXOPS - 4);

    /* What the stream ends as, uncancelled. */
    uint64_t stop = c->len;
    int err = 0;
    if (c->fail_err != 0 && c->fail_at <= c->len) {
        stop = c->fail_at;
        err = c->fail_err;
    }
    if (c->kind == K_MEM && c->max_size != 0 && c->max_size < c->len) {
        stop = c->max_size;
        err = EFBIG;
    } else if (c->max_size != 0 && c->max_size < stop) {
        stop = c->max_size;
        err = EFBIG;
    }
    c->want_len = stop == CHUNK_FOREVER ? UINT64_MAX : stop;
    c->want_err = err;
}

static char why[512];

/* What the rounds exercised, to show they are not vacuous. */
static struct tally {
    unsigned long full, short_count, zero, einval, timeout, canceled,
        other_err, wait_end_ok, wait_end_err;
    unsigned long rounds_cancelled, rounds_spilled, rounds_failed,
        wakeups;
} tally;

#define FAILED_IF(cond, ...)                                                  \
    do {                                                                      \
        if (cond) {                                                           \
            snprintf(why, sizeof why, __VA_ARGS__);                           \
            return -1;                                                        \
        }                                                                     \
    } while (0)

/* The final state of a stream: length, state, error. */
typedef struct final {
    uint64_t len;
    int state;
    int err;
    int cancelled;
} final;

/* Check one result against the rules, given how the stream ended. */
static int check_rec(const tcfg *c, const final *f, const oprec *o,
                     uint64_t *last_avail)
{
    const char *name[] = {"pread", "timed0", "timed", "avail", "wait_end",
                          "stats", "cancel"};
    const char *nm = name[o->op];
    switch (o->op) {
    case OP_PREAD:
    case OP_TIMED0:
    case OP_TIMED:
    case OP_AVAIL:
        if (o->op == OP_AVAIL) {
            FAILED_IF(o->length > f->len, "available %" PRIu64 " > final "
                      "%" PRIu64, o->length, f->len);
            FAILED_IF(o->length < *last_avail, "available went back: %"
                      PRIu64 " after %" PRIu64, o->length, *last_avail);
            *last_avail = o->length;
            /* Inside what was available: all of it, at once. */
            FAILED_IF(o->ret != (ssize_t)o->n || o->bad != 0,
                      "read of available [%" PRIu64 ", +%zu) = %zd errno %d, "
                      "%zu bad", o->off, o->n, o->ret, o->err, o->bad);
            return 0;
        }
        if (o->off > UINT64_MAX - o->n) {
            FAILED_IF(o->ret != -1 || o->err != EINVAL,
                      "%s(off %" PRIu64 ", n %zu) overflows: %zd errno %d",
                      nm, o->off, o->n, o->ret, o->err);
            tally.einval++;
            return 0;
        }
        if (o->n == 0) {
            FAILED_IF(o->ret != 0, "%s n=0: %zd errno %d", nm, o->ret,
                      o->err);
            return 0;
        }
        if (o->ret >= 0) {
            FAILED_IF((size_t)o->ret > o->n, "%s returned %zd > n %zu", nm,
                      o->ret, o->n);
            FAILED_IF(o->bad != 0, "%s(off %" PRIu64 ", n %zu): %zu wrong "
                      "bytes", nm, o->off, o->n, o->bad);
            if ((size_t)o->ret == o->n)
                tally.full++;
            else if (o->ret == 0)
                tally.zero++;
            else
                tally.short_count++;
            if ((size_t)o->ret == o->n)
                FAILED_IF(o->off + o->n > f->len, "%s(off %" PRIu64 ", n %zu)"
                          " full past the final length %" PRIu64, nm, o->off,
                          o->n, f->len);
            else if (o->ret == 0)
                FAILED_IF(f->state != SB_ENDED || o->off < f->len,
                          "%s(off %" PRIu64 ", n %zu) = 0, but final length %"
                          PRIu64 " state %d", nm, o->off, o->n, f->len,
                          f->state);
            else
                FAILED_IF(o->off + (uint64_t)o->ret != f->len,
                          "%s(off %" PRIu64 ", n %zu) = %zd: a short count "
                          "not at the final length %" PRIu64, nm, o->off,
                          o->n, o->ret, f->len);
            if (o->ret > 0 && o->off + (uint64_t)o->ret > *last_avail)
                *last_avail = o->off + (uint64_t)o->ret;
            return 0;
        }
        FAILED_IF(o->ret != -1, "%s returned %zd", nm, o->ret);
        if (o->err == ETIMEDOUT) {
            FAILED_IF(o->op == OP_PREAD, "pread timed out");
            FAILED_IF(o->state_before != SB_RUNNING,
                      "%s timed out on a stream already over (state %d)",
                      nm, o->state_before);
            FAILED_IF(o->off + o->n <= o->avail_before,
                      "%s(off %" PRIu64 ", n %zu) timed out with %" PRIu64
                      " bytes there", nm, o->off, o->n, o->avail_before);
            tally.timeout++;
            return 0;
        }
        FAILED_IF(f->state != SB_FAILED || o->err != f->err,
                  "%s(off %" PRIu64 ", n %zu) failed with %d; the stream "
                  "ended in state %d error %d", nm, o->off, o->n, o->err,
                  f->state, f->err);
        FAILED_IF(o->off < f->len, "%s(off %" PRIu64 ", n %zu) failed with "
                  "%d though %" PRIu64 " bytes were there", nm, o->off, o->n,
                  o->err, f->len);
        FAILED_IF(o->err == ECANCELED && !o->cancelled_after,
                  "%s: ECANCELED before anyone cancelled", nm);
        if (o->err == ECANCELED)
            tally.canceled++;
        else
            tally.other_err++;
        return 0;
    case OP_WAIT_END:
        if (o->ret == 0)
            FAILED_IF(f->state != SB_ENDED || o->length != f->len,
                      "wait_end = 0, length %" PRIu64 "; final state %d "
                      "length %" PRIu64, o->length, f->state, f->len);
        else
            FAILED_IF(o->ret != -1 || f->state != SB_FAILED ||
                          o->err != f->err || o->length != UINT64_MAX,
                      "wait_end = %zd errno %d; final state %d error %d",
                      o->ret, o->err, f->state, f->err);
        FAILED_IF(o->err == ECANCELED && !o->cancelled_after,
                  "wait_end: ECANCELED before anyone cancelled");
        if (o->ret == 0)
            tally.wait_end_ok++;
        else
            tally.wait_end_err++;
        return 0;
    case OP_STATS: {
        const sb_stats *s = &o->st;
        size_t mem = c->kind == K_MEM ? SIZE_MAX : c->mem_limit;
        FAILED_IF(o->ret != 0, "stats failed");
        FAILED_IF(s->filled > f->len, "stats filled %" PRIu64 " > final %"
                  PRIu64, s->filled, f->len);
        FAILED_IF(s->in_memory != min_u64(s->filled, mem) ||
                      s->spilled != s->filled - s->in_memory,
                  "stats: filled %" PRIu64 " in_memory %" PRIu64
                  " spilled %" PRIu64 " (mem_limit %zu)", s->filled,
                  s->in_memory, s->spilled, c->mem_limit);
        if (s->state == SB_RUNNING)
            FAILED_IF(s->error != 0, "stats: running with error %d",
                      s->error);
        else
            FAILED_IF(s->state != f->state || s->error != f->err ||
                          s->filled != f->len,
                      "stats: state %d error %d filled %" PRIu64
                      "; final %d %d %" PRIu64, s->state, s->error,
                      s->filled, f->state, f->err, f->len);
        FAILED_IF(s->filled < *last_avail, "stats filled went back");
        *last_avail = s->filled;
        return 0;
    }
    default:
        return 0;
    }
}

/* The final state against the configuration. */
static int check_final(const tcfg *c, const final *f)
{
    int natural = f->len == c->want_len && f->err == c->want_err &&
                  f->state == (c->want_err ? SB_FAILED : SB_ENDED);
    if (!f->cancelled) {
        FAILED_IF(!natural, "ended at %" PRIu64 " state %d error %d, "
                  "expected %" PRIu64 " error %d", f->len, f->state, f->err,
                  c->want_len, c->want_err);
        return 0;
    }
    FAILED_IF(!natural && !(f->state == SB_FAILED && f->err == ECANCELED &&
                            f->len <= c->want_len),
              "cancelled: ended at %" PRIu64 " state %d error %d, expected %"
              PRIu64 " error %d or ECANCELED before", f->len, f->state,
              f->err, c->want_len, c->want_err);
    return 0;
}

/* One random round.  Returns 0, or -1 with `why` set; what it made is
   left to round_cleanup. */
static int torture_round_body(int iter, const char *dir)
{
    rng r = rng_for((uint64_t)iter, 0);
    tcfg c;
    pick_cfg(&r, &c);
    c.mem_limit = c.mem_limit ? c.mem_limit : 1;
    sb_options o = {.mem_limit = c.mem_limit, .max_size = c.max_size,
                    .tmp_dir = dir, .chunk_size = c.chunk_size};

    chunk_src *cs = NULL;
    iter_src *it = NULL;
    int p[2] = {-1, -1};
    pipe_writer *pw = NULL;
    sb_buffer *b = NULL;
    int rc = 0;
    switch (c.kind) {
    case K_READ:
        cs = fx_chunk(c.len, c.pat, c.npat);
        cs->fail_at = c.fail_at;
        cs->fail_err = c.fail_err;
        cs->delay_us = c.delay_us;
        b = fx_buffer(open_chunk(cs, &o));
        break;
    case K_ITER: {
        it = fx_iter(c.len, c.pat, c.npat);
        it->fail_at = c.fail_at;
        it->fail_err = c.fail_err;
        slow_src *slow = fx_calloc(sizeof *slow);
        slow->inner = iter_source(it);
        slow->delay_us = c.delay_us;
        sb_source src = {.next = slow_next, .close = slow_close, .ctx = slow};
        b = fx_buffer(sb_open(&src, &o));
        break;
    }
    case K_FD:
        fx_pipe(p, 0);
        /* Pauses now and then, if the pieces are big enough to keep
           the whole write short. */
        pw = fx_writer(p[1], c.len, c.pat[0],
                       c.pat[0] >= 2000 && rbelow(&r, 4) == 0 ? 3 : 0, 1);
        FAILED_IF(pw == NULL, "cannot start the pipe writer");
        b = fx_buffer(sb_open_fd(p[0], &o));
        break;
    default: {
        unsigned char *mem = fx_calloc(c.len ? (size_t)c.len : 1);
        gen_fill(mem, (size_t)c.len, 0);
        b = fx_buffer(sb_open_mem(mem, (size_t)c.len, &o));
        break;
    }
    }
    FAILED_IF(b == NULL, "open (%s) failed: %s", kind_name[c.kind],
              strerror(errno));

    shared *sh = fx_calloc(sizeof *sh);
    sh->b = b;
    sh->c = &c;
    atomic_init(&sh->cancelled, 0);
    worker *w = fx_calloc((size_t)c.nthreads * sizeof *w);
    int canceller = c.cancel == 2 ? (int)rbelow(&r, (uint64_t)c.nthreads)
                                  : -1;
    int started = 0;
    for (int t = 0; t < c.nthreads; t++) {
        w[t].sh = sh;
        w[t].r = rng_for((uint64_t)iter, (uint64_t)t + 1);
        w[t].cancel_at = t == canceller ? (int)rbelow(&r, (uint64_t)c.nops)
                                        : -1;
        w[t].buf = fx_calloc(BUFCAP);
        w[t].call = fx_bg(worker_main, &w[t]);
        if (w[t].call == NULL) {
            rc = -1;
            snprintf(why, sizeof why, "cannot start reader %d", t);
            break;
        }
        started++;
    }
    if (c.cancel == 1 || rc != 0) {
        /* Cancelling at a random moment is what is under test. */
        struct timespec ts = {0, (long)c.cancel_after_us * 1000L};
        nanosleep(&ts, NULL);
        atomic_store(&sh->cancelled, 1);
        sb_cancel(b);
    }
    int stuck = 0;
    for (int t = 0; t < started; t++)
        stuck += !bg_wait(w[t].call, WAIT_LONG_MS);
    FAILED_IF(stuck, "%d readers did not return", stuck);
    for (int t = 0; t < started; t++)
        bg_join(w[t].call);

    /* Now nobody reads: the final state. */
    final f;
    sb_wait_end(b, NULL);
    sb_stats st;
    sb_get_stats(b, &st);
    f.len = st.filled;
    f.state = st.state;
    f.err = st.error;
    f.cancelled = atomic_load(&sh->cancelled);
    tally.rounds_cancelled += f.cancelled && f.err == ECANCELED;
    tally.rounds_spilled += st.spilled > 0;
    tally.rounds_failed += f.state == SB_FAILED && f.err != ECANCELED;
    tally.wakeups += st.wakeups;
    if (rc == 0)
        rc = check_final(&c, &f);
    for (int t = 0; rc == 0 && t < started; t++) {
        uint64_t last = 0;
        for (int i = 0; rc == 0 && i < w[t].nrec; i++)
            if (check_rec(&c, &f, &w[t].recs[i], &last) != 0) {
                char tmp[sizeof why];
                memcpy(tmp, why, sizeof tmp);
                snprintf(why, sizeof why, "reader %d op %d: %.400s", t, i,
                         tmp);
                rc = -1;
            }
    }
    /* Every byte that arrived, once more, in one read. */
    if (rc == 0 && f.len > 0 && f.len != UINT64_MAX) {
        unsigned char *all = malloc((size_t)f.len);
        ssize_t got = all ? sb_pread(b, all, (size_t)f.len, 0) : -1;
        if (got != (ssize_t)f.len ||
            gen_mismatches(all, (size_t)f.len, 0) != 0) {
            snprintf(why, sizeof why, "final read of %" PRIu64 " bytes: %zd",
                     f.len, got);
            rc = -1;
        }
        free(all);
    }
    fx_close(b);
    if (c.kind == K_FD) {
        fx_close_fd(p[0]); /* a writer stuck on a full pipe gets EPIPE */
        writer_join(pw);
    }
    if ((c.kind == K_READ && atomic_load(&cs->closes) != 1) ||
        (c.kind == K_ITER && atomic_load(&it->closes) != 1)) {
        snprintf(why, sizeof why, "source closed %d times",
                 c.kind == K_READ ? atomic_load(&cs->closes)
                                  : atomic_load(&it->closes));
        rc = -1;
    }
    if (c.kind == K_READ && atomic_load(&cs->overlaps) != 0) {
        snprintf(why, sizeof why, "overlapping source callbacks");
        rc = -1;
    }
    if (rc != 0) {
        char tmp[sizeof why];
        memcpy(tmp, why, sizeof tmp);
        snprintf(why, sizeof why,
                 "round %d (%s len %" PRIu64 " mem %zu chunk %zu max %" PRIu64
                 " fail %" PRIu64 "/%d cancel %d, %d readers): %.300s",
                 iter, kind_name[c.kind], c.len, c.mem_limit, c.chunk_size,
                 c.max_size, c.fail_at, c.fail_err, c.cancel, c.nthreads,
                 tmp);
    }
    return rc;
}

/* A round, and what it made undone at once: a thousand rounds must not
   pile up their buffers until the end of the test. */
static int torture_round(int iter, const char *dir)
{
    size_t mark = fx_mark();
    int rc = torture_round_body(iter, dir);
    fx_unwind(mark);
    return rc;
}

static void test_random_interleavings(void **state)
{
    (void)state;
    fx_signal(SIGPIPE, SIG_IGN);
    char *dir = fx_scratch();
    int fds = count_fds();
    int threads = count_threads();
    int rounds = scaled(1000, 60);
    double t0 = now_ms();
    int failed = 0;
    for (int i = 0; i < rounds && !failed; i++) {
        if (torture_round(i, dir) != 0) {
            fprintf(stderr, "seed %" PRIu64 ": %s\n", seed, why);
            failed = 1;
        }
    }
    printf("random interleavings: %d rounds in %.0f ms: %lu cancelled, "
           "%lu failed, %lu spilled, %lu wake-ups; reads: %lu full, %lu "
           "short, %lu zero, %lu EINVAL, %lu timed out, %lu ECANCELED, "
           "%lu other errors; wait_end: %lu ended, %lu failed\n",
           rounds, now_ms() - t0, tally.rounds_cancelled, tally.rounds_failed,
           tally.rounds_spilled, tally.wakeups, tally.full, tally.short_count,
           tally.zero, tally.einval, tally.timeout, tally.canceled,
           tally.other_err, tally.wait_end_ok, tally.wait_end_err);
    fx_signal_restore(SIGPIPE);
    assert_false(failed);
    assert_int_equal(count_fds(), fds);
    assert_int_equal(threads_back_to(threads), threads);
    assert_int_equal(count_dir_entries(dir), 0);
}

/* ==== sb_close right after sb_open =================================================== */

/* Spin until the producer is inside a read callback; 0 if it never is. */
static int wait_in_call(chunk_src *s)
{
    double end = now_ms() + WAIT_LONG_MS;
    while (atomic_load(&s->in_call) == 0) {
        if (now_ms() > end)
            return 0;
        sched_yield();
    }
    return 1;
}

static void test_close_right_after_open_many(void **state)
{
    (void)state;
    char *dir = fx_scratch();
    int fds = count_fds();
    int threads = count_threads();
    static const size_t mems[] = {1, 100, 4096, 65536};
    static const size_t pat[] = {3000, 0, 1};
    int rounds = scaled(600, 100);
    int bad_closes = 0, after_close = 0, during = 0, missed = 0;
    for (int i = 0; i < rounds; i++) {
        size_t mark = fx_mark();
        rng r = rng_for(1000000 + (uint64_t)i, 0);
        sb_options o = {.mem_limit = mems[rbelow(&r, 4)], .tmp_dir = dir,
                        .chunk_size = 1 + (size_t)rbelow(&r, 9000)};
        switch (i % 4) {
        case 0:   /* a read source, closed at once */
        case 1: { /* ... or once the producer is inside a callback */
            chunk_src *s = fx_chunk(CHUNK_FOREVER, NULL, 0);
            s->delay_us = i % 4 == 1 ? 50 + (unsigned)rbelow(&r, 300)
                                     : (unsigned)rbelow(&r, 3) * 20;
            sb_buffer *b = fx_buffer(open_chunk(s, &o));
            assert_non_null(b);
            if (i % 4 == 1)
                missed += !wait_in_call(s);
            fx_close(b);
            bad_closes += atomic_load(&s->closes) != 1;
            after_close += atomic_load(&s->calls_after_close);
            during += atomic_load(&s->close_during_call);
            break;
        }
        case 2: { /* an iterator */
            iter_src *it = fx_iter(CHUNK_FOREVER, pat, 3);
            sb_buffer *b = fx_buffer(open_iter(it, &o));
            assert_non_null(b);
            fx_close(b);
            bad_closes += atomic_load(&it->closes) != 1;
            break;
        }
        default: { /* a pipe with data and a writer that never closes */
            int p[2];
            fx_pipe(p, 0);
            unsigned char data[8192];
            gen_fill(data, sizeof data, 0);
            size_t n = (size_t)rbelow(&r, sizeof data);
            assert_int_equal(write(p[1], data, n), (ssize_t)n);
            sb_buffer *b = fx_buffer(sb_open_fd(p[0], &o));
            assert_non_null(b);
            fx_close(b);
            break;
        }
        }
        fx_unwind(mark);
    }
    assert_int_equal(missed, 0);
    assert_int_equal(bad_closes, 0);
    assert_int_equal(after_close, 0);
    assert_int_equal(during, 0);
    assert_int_equal(count_fds(), fds);
    assert_int_equal(threads_back_to(threads), threads);
    assert_int_equal(count_dir_entries(dir), 0);
}

/* ==== a thousand cycles leave nothing behind ====================================== */

/*
 * mmap and munmap, as the library calls them, counted: these definitions
 * take the place of libc's for the objects linked into this program, the
 * library's included; hidden, so that shared libraries (libc's own calls,
 * a sanitizer runtime's) keep theirs and are not counted.  The next
 * definitions (a sanitizer's or libc's) are looked up in main, before any
 * thread runs.
 */
static void *(*next_mmap)(void *, size_t, int, int, int, off_t);
static int (*next_munmap)(void *, size_t);
static atomic_long live_maps, live_map_bytes, total_maps;

__attribute__((visibility("hidden"))) void *
mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    void *m = next_mmap(addr, len, prot, flags, fd, off);
    if (m != MAP_FAILED) {
        atomic_fetch_add(&live_maps, 1);
        atomic_fetch_add(&live_map_bytes, (long)len);
        atomic_fetch_add(&total_maps, 1);
    }
    return m;
}

__attribute__((visibility("hidden"))) int munmap(void *addr, size_t len)
{
    int rc = next_munmap(addr, len);
    if (rc == 0) {
        atomic_fetch_sub(&live_maps, 1);
        atomic_fetch_sub(&live_map_bytes, (long)len);
    }
    return rc;
}

/* Lines of /proc/self/maps (mappings), and their total size in bytes;
   -1 on error. */
static int count_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (f == NULL)
        return -1;
    int n = 0, c;
    while ((c = getc(f)) != EOF)
        if (c == '\n')
            n++;
    fclose(f);
    return n;
}

static long long mapped_bytes(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (f == NULL)
        return -1;
    long long total = 0;
    char line[4096 + 256];
    while (fgets(line, sizeof line, f) != NULL) {
        unsigned long long lo, hi;
        if (sscanf(line, "%llx-%llx", &lo, &hi) == 2 && hi >= lo)
            total += (long long)(hi - lo);
    }
    fclose(f);
    return total;
}

static int find_next_mmap(void)
{
    void *m = dlsym(RTLD_NEXT, "mmap");
    void *u = dlsym(RTLD_NEXT, "munmap");
    if (m == NULL || u == NULL)
        return -1;
    memcpy(&next_mmap, &m, sizeof m); /* object to function pointer */
    memcpy(&next_munmap, &u, sizeof u);
    return 0;
}

/* One open/read/close cycle of kind i % 10.  Returns 0 or -1. */
static int cycle_body(int i, const char *dir, int memfd,
                      const unsigned char *data)
{
    sb_options o = {.mem_limit = 4096, .tmp_dir = dir, .chunk_size = 3000};
    static const size_t pat[] = {2500, 0, 7000};
    chunk_src *s = fx_chunk(20000, NULL, 0);
    iter_src *it = fx_iter(20000, pat, 3);
    int p[2] = {-1, -1};
    pipe_writer *w = NULL;
    sb_buffer *b = NULL;
    int rc = 0;
    switch (i % 10) {
    case 0: /* memory */
        b = fx_buffer(sb_open_mem(data, 20000, &o));
        rc = b ? check_stream(b, 20000) : -1;
        break;
    case 1: /* in memory only */
        chunk_init(s, 3000, NULL, 0);
        b = fx_buffer(open_chunk(s, &o));
        rc = b ? check_read(b, 100, 5000, 2900) : -1;
        break;
    case 2: /* a spilling read source */
        b = fx_buffer(open_chunk(s, &o));
        rc = b ? check_stream(b, 20000) : -1;
        break;
    case 3: /* a spilling iterator */
        b = fx_buffer(open_iter(it, &o));
        rc = b ? check_read(b, 4000, 10000, 10000) : -1;
        break;
    case 4: /* a file descriptor */
        if (lseek(memfd, 0, SEEK_SET) == 0)
            b = fx_buffer(sb_open_fd(memfd, &o));
        rc = b ? check_stream(b, 20000) : -1;
        break;
    case 5: /* a pipe */
        fx_pipe(p, 0);
        w = fx_writer(p[1], 20000, 5000, 0, 0);
        if (w == NULL)
            break;
        b = fx_buffer(sb_open_fd(p[0], &o));
        rc = b ? check_read(b, 19000, 2000, 1000) : -1;
        break;
    case 6: /* fails after spilling */
        s->fail_at = 9000;
        s->fail_err = EIO;
        b = fx_buffer(open_chunk(s, &o));
        rc = b ? check_read_err(b, 9000, 10, EIO) : -1;
        if (rc == 0)
            rc = check_read(b, 8000, 2000, 1000);
        break;
    case 7: /* cancelled mid-stream, spilled */
        chunk_init(s, CHUNK_FOREVER, NULL, 0);
        b = fx_buffer(open_chunk(s, &o));
        rc = b && wait_available(b, 10000, WAIT_LONG_MS) ? 0 : -1;
        sb_cancel(b);
        if (rc == 0)
            rc = check_read(b, 5000, 4000, 4000);
        break;
    case 8: /* max_size after spilling */
        o.max_size = 7777;
        b = fx_buffer(open_chunk(s, &o));
        rc = b ? check_read_err(b, 7777, 1, EFBIG) : -1;
        break;
    default: /* closed right away */
        chunk_init(s, CHUNK_FOREVER, NULL, 0);
        b = fx_buffer(open_chunk(s, &o));
        rc = b ? 0 : -1;
        break;
    }
    if (b != NULL)
        fx_close(b);
    if (w != NULL) {
        fx_close_fd(p[0]);
        writer_join(w);
    }
    int k = i % 10;
    int src_closes = k == 3 ? atomic_load(&it->closes)
                            : atomic_load(&s->closes);
    int want_closes = k == 0 || k == 4 || k == 5 ? 0 : 1;
    return b == NULL || rc != 0 || src_closes != want_closes ? -1 : 0;
}

/* A cycle, and what it made undone at once: what is measured after a
   thousand of them is what the library left, not what the test kept. */
static int cycle(int i, const char *dir, int memfd, const unsigned char *data)
{
    size_t mark = fx_mark();
    int rc = cycle_body(i, dir, memfd, data);
    fx_unwind(mark);
    return rc;
}

static void test_thousand_cycles_leave_nothing(void **state)
{
    (void)state;
    fx_signal(SIGPIPE, SIG_IGN);
    char *dir = fx_scratch();
    unsigned char *data = fx_calloc(20000);
    gen_fill(data, 20000, 0);
    int memfd = fx_fd(memfd_create("sbtest", MFD_CLOEXEC));
    assert_true(memfd >= 0);
    assert_int_equal(write(memfd, data, 20000), 20000);

    /* Warm up (thread stacks, malloc arenas, stdio), then measure. */
    int bad = 0;
    for (int i = 0; i < 40; i++)
        bad += cycle(i, dir, memfd, data) != 0;
    int fds = count_fds();
    /* The warm-up's threads are joined; the kernel may still list one. */
    int threads = threads_back_to(quiet_threads);
    int maps = count_maps();
    long long mapped = mapped_bytes();
    long lib_maps = atomic_load(&live_maps);
    long lib_bytes = atomic_load(&live_map_bytes);
    long lib_total = atomic_load(&total_maps);
    int not_unmapped = 0; /* cycles after which a mapping was still there */
    for (int i = 0; i < 1000; i++) {
        bad += cycle(i, dir, memfd, data) != 0;
        not_unmapped += atomic_load(&live_maps) != lib_maps;
    }
    int fds_after = count_fds();
    int threads_after = threads_back_to(threads);
    int maps_after = count_maps();
    long long mapped_after = mapped_bytes();
    long lib_maps_after = atomic_load(&live_maps);
    long lib_bytes_after = atomic_load(&live_map_bytes);
    long lib_total_after = atomic_load(&total_maps);
    int entries = count_dir_entries(dir);
    printf("1000 cycles: fds %d -> %d, threads %d -> %d, mappings %d -> %d, "
           "mapped %lld -> %lld KiB, the library's mappings %ld (%ld bytes) "
           "-> %ld (%ld bytes), %ld made\n",
           fds, fds_after, threads, threads_after, maps, maps_after,
           mapped / 1024, mapped_after / 1024, lib_maps, lib_bytes,
           lib_maps_after, lib_bytes_after, lib_total_after - lib_total);
    fx_signal_restore(SIGPIPE);

    assert_int_equal(bad, 0);
    assert_int_equal(fds_after, fds);
    assert_int_equal(threads_after, threads);
    assert_int_equal(entries, 0);
    /* Every cycle but the sb_open_mem ones mapped a memory part. */
    assert_int_equal(lib_total_after - lib_total, 900);
    assert_int_equal(not_unmapped, 0);
    assert_int_equal(lib_maps_after, lib_maps);
    assert_int_equal(lib_bytes_after, lib_bytes);
    assert_true(maps > 0 && mapped > 0);
    if (UNDER_ASAN) {
        /* Its allocator maps more as its quarantine fills. */
        printf("AddressSanitizer's allocator grows its own mappings: "
               "/proc/self/maps not compared\n");
    } else if (getenv("SB_VALGRIND") != NULL) {
        printf("valgrind's own mappings grow in this address space: "
               "/proc/self/maps not compared\n");
    } else {
        assert_int_equal(maps_after, maps);
        assert_int_equal(mapped_after, mapped);
    }
}

/* ==== killed mid-stream ============================================================== */

/*
 * The child: spill an endless stream into dir, tell the parent through fd
 * once the spill file exists, and keep streaming until killed.
 */
static int has_spilled(void *b)
{
    sb_stats st;
    return sb_get_stats(b, &st) == 0 && st.spilled > 0;
}

static int spill_child(const char *dir, int fd)
{
    chunk_src s;
    chunk_init(&s, CHUNK_FOREVER, NULL, 0);
    s.delay_us = 2000; /* endless, but slow: the disk is not filled */
    sb_source src = chunk_source(&s);
    sb_options o = {.mem_limit = 4096, .tmp_dir = dir, .chunk_size = 4096};
    sb_buffer *b = sb_open(&src, &o);
    if (b == NULL)
        return 3;
    if (!poll_until(has_spilled, b, WAIT_LONG_MS))
        return 5;
    char c = 'S';
    if (write(fd, &c, 1) != 1)
        return 4;
    for (;;)
        sleep_ms(1000);
}

static char self_exe[PATH_MAX];

static void test_killed_mid_stream_leaves_nothing(void **state)
{
    (void)state;
    assert_true(self_exe[0] != '\0');
    char *dir = fx_scratch();
    for (int round = 0; round < 3; round++) {
        int p[2];
        fx_pipe(p, 0);
        char fdarg[16];
        snprintf(fdarg, sizeof fdarg, "%d", p[1]);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            /* A fresh process image: no inherited threads or locks. */
            close(p[0]);
            execl(self_exe, self_exe, "--spill-child", dir, fdarg,
                  (char *)NULL);
            _exit(127);
        }
        fx_close_fd(p[1]);
        struct pollfd pfd = {.fd = p[0], .events = POLLIN};
        int ready = poll(&pfd, 1, WAIT_LONG_MS);
        char c = 0;
        ssize_t got = ready == 1 ? read(p[0], &c, 1) : -1;
        /* It has a spill file open, and nobody can see it. */
        int child_files = each_fd_into_dir(pid, dir, NULL, NULL);
        int visible = count_dir_entries(dir);
        kill(pid, SIGKILL);
        int status = 0;
        pid_t waited = waitpid(pid, &status, 0);
        fx_close_fd(p[0]);
        int left = count_dir_entries(dir);

        assert_int_equal(ready, 1);
        assert_int_equal(got, 1);
        assert_int_equal(c, 'S');
        assert_int_equal(child_files, 1);
        assert_int_equal(visible, 0);
        assert_int_equal(waited, pid);
        assert_true(WIFSIGNALED(status));
        assert_int_equal(WTERMSIG(status), SIGKILL);
        assert_int_equal(left, 0);
    }
}

/* ---- short waits racing publishes, timeouts, cancel and close ------------------------ */

/*
 * Many readers make short waits right at the edge of what has arrived,
 * with timeouts of 0, 1 or 2 ms or none, while a source publishes small
 * chunks quickly; each round ends the stream, cancels it at a random
 * moment, or closes it right after a cancel.  Every read must return the
 * right bytes, a short count at the end, 0 past it, ETIMEDOUT (only with a
 * timeout), or ECANCELED (only once cancelled); no read may hang or
 * return early.  Run it under ThreadSanitizer: this is where the waiter
 * hand-off of src/wait.c is raced hardest.
 */
#define EDGE_READERS 6

typedef struct edge {
    sb_buffer *b;
    uint64_t len;
    uint64_t seed;
    _Atomic int *cancelled;
    /* Results. */
    uint64_t reads, timeouts, bad;
    char why[160];
} edge;

static void edge_main(void *arg)
{
    edge *e = arg;
    rng r = rng_for(e->seed, 7);
    unsigned char buf[300];
    for (;;) {
        uint64_t avail = sb_available(e->b);
        uint64_t off = avail + rbelow(&r, 200);
        if (off > 20)
            off -= rbelow(&r, 20);
        size_t n = 1 + (size_t)rbelow(&r, sizeof buf);
        static const int timeouts[] = {0, 1, 2, -1};
        int t = timeouts[rbelow(&r, 4)];
        int was_cancelled = atomic_load(e->cancelled);
        errno = 0;
        ssize_t got = sb_pread_timed(e->b, buf, n, off, t);
        int err = errno;
        e->reads++;
        if (got > 0) {
            if ((size_t)got > n || gen_mismatches(buf, (size_t)got, off) != 0
                || ((size_t)got < n && off + (uint64_t)got != e->len
                    && !atomic_load(e->cancelled)))
                goto bad;
            continue;
        }
        if (got == 0) {
            if (off < e->len)
                goto bad;
            return; /* past the end of an ended stream */
        }
        if (err == ETIMEDOUT && t >= 0) {
            e->timeouts++;
            continue;
        }
        if (err == ECANCELED && (was_cancelled || atomic_load(e->cancelled)))
            return;
    bad:
        snprintf(e->why, sizeof e->why,
                 "read %zu at %llu (timeout %d): %zd errno %d, len %llu", n,
                 (unsigned long long)off, t, got, err,
                 (unsigned long long)e->len);
        e->bad++;
        return;
    }
}

static void test_short_waits_race_publishes(void **state)
{
    (void)state;
    int rounds = scaled(150, 30);
    static const size_t pattern[] = {1, 7, 64, 3, 300, 2};
    uint64_t total_reads = 0, total_timeouts = 0;
    for (int i = 0; i < rounds; i++) {
        size_t mark = fx_mark();
        rng r = rng_for(seed, (uint64_t)i + 1000);
        int ending = (int)rbelow(&r, 3); /* 0 end, 1 cancel, 2 cancel+close */
        uint64_t len = 20000 + rbelow(&r, 20000);
        chunk_src *s = fx_chunk(len, pattern, 6);
        s->delay_us = (unsigned)rbelow(&r, 3) * 5; /* some rounds trickle */
        sb_options o = {.mem_limit = rbelow(&r, 2) ? 4096 : 0,
                        .chunk_size = 256, .tmp_dir = fx_scratch()};
        sb_buffer *b = fx_buffer(open_chunk(s, &o));
        assert_non_null(b);
        _Atomic int *cancelled = fx_calloc(sizeof *cancelled);
        edge *e[EDGE_READERS];
        bg_call *bg[EDGE_READERS];
        for (int k = 0; k < EDGE_READERS; k++) {
            e[k] = fx_calloc(sizeof *e[k]);
            *e[k] = (edge){.b = b, .len = len, .cancelled = cancelled,
                           .seed = seed + (uint64_t)i * 31 + (uint64_t)k};
            bg[k] = fx_bg(edge_main, e[k]);
            assert_non_null(bg[k]);
        }
        if (ending != 0) {
            uint64_t at = rbelow(&r, len);
            while (sb_available(b) < at && sb_available(b) < len)
                sched_yield();
            atomic_store(cancelled, 1);
            sb_cancel(b);
        }
        int done = 1;
        for (int k = 0; k < EDGE_READERS; k++) {
            done &= bg_wait(bg[k], WAIT_LONG_MS);
            bg_join(bg[k]);
        }
        if (ending == 2)
            fx_close(b);
        for (int k = 0; k < EDGE_READERS; k++) {
            if (e[k]->bad)
                fprintf(stderr, "round %d reader %d: %s\n", i, k, e[k]->why);
            assert_int_equal(e[k]->bad, 0);
            total_reads += e[k]->reads;
            total_timeouts += e[k]->timeouts;
        }
        assert_true(done);
        fx_unwind(mark);
    }
    fprintf(stderr, "short waits: %d rounds, %llu reads, %llu timed out\n",
            rounds, (unsigned long long)total_reads,
            (unsigned long long)total_timeouts);
    assert_true(total_timeouts > 0);
}

int main(int argc, char **argv)
{
    if (find_next_mmap() != 0) {
        fprintf(stderr, "cannot find mmap and munmap: %s\n", dlerror());
        return 1;
    }
    if (argc == 4 && strcmp(argv[1], "--spill-child") == 0)
        return spill_child(argv[2], atoi(argv[3]));

    start_runtime_threads();
    quiet_threads = count_threads();
    ssize_t n = readlink("/proc/self/exe", self_exe, sizeof self_exe - 1);
    if (n > 0)
        self_exe[n] = '\0';
    const char *env = getenv("SB_TORTURE_SEED");
    seed = env != NULL ? strtoull(env, NULL, 0)
                       : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    printf("torture seed: %" PRIu64 " (SB_TORTURE_SEED=%" PRIu64
           " repeats it)\n", seed, seed);

    const struct CMUnitTest tests[] = {
        FX_TEST(test_random_interleavings),
        FX_TEST(test_short_waits_race_publishes),
        FX_TEST(test_close_right_after_open_many),
        FX_TEST(test_thousand_cycles_leave_nothing),
        FX_TEST(test_killed_mid_stream_leaves_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
