/* SPDX-License-Identifier: MIT */
/*
 * cases_ranged.c - ranged sources (sb_source.open_at): far reads, random
 * reads and a whole drain of a paced seekable source.
 *
 * The source models a server that honours Range with a per-connection
 * rate: every stream (part) it starts delivers RATE bytes/s, its first
 * byte LATENCY after open_at; bytes go as they "arrive" (what the rate has
 * brought since the first byte, at least 4 KiB a call, paced against
 * CLOCK_MONOTONIC with absolute deadlines).  Its limits follow from that
 * model, in the same run, without running them (one part draining 1 GiB
 * takes 10 s):
 *
 *   F1 far   4 KiB at 900 MiB of a --ranged-size stream as the first read,
 *            vs one part's latency plus its bytes (4 KiB at the rate);
 *   F2 rand  8 threads x 32 random 64 KiB reads (read_ahead 1 MiB,
 *            max_parts 8), vs 256 ranged reads 8 at a time, each the
 *            latency plus 64 KiB at the rate;
 *   F3 drain sb_open..sb_wait_end with max_parts 4, vs one part draining
 *            it (length / rate).
 *
 * And the bytes each delivered (stats fetched) over the bytes it needed:
 * for F2 against the needed bytes plus one read_ahead and chunk per part
 * opened, for F3 against the length.
 */
#include "bench.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RATE (100.0 * 1000 * 1000) /* bytes/s a part: 100 MB/s */
#define LATENCY 0.002              /* s from open_at to the first byte */
#define GRAIN (4 * KiB)            /* least bytes a paced call waits for */

/* ---- the paced seekable source ---------------------------------------------------- */

struct rsrc {
    uint64_t len;
    atomic_ullong delivered;
    atomic_int opens;
};

struct rpart {
    struct rsrc *s;
    uint64_t pos, end;
    double t0;         /* when its first byte arrives */
    uint64_t got;      /* bytes it delivered */
    atomic_int cancelled;
};

static void sleep_until(double t)
{
    struct timespec ts;
    ts.tv_sec = (time_t)t;
    ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

/* Cheap bytes with a known value at every offset: the source's cost must
   not be what is measured. */
static void fill_at(unsigned char *buf, size_t n, uint64_t off)
{
    for (size_t i = 0; i < n; i++)
        buf[i] = (unsigned char)((off + i) * 131u >> 3);
}

static ssize_t rpart_read(void *ctx, void *buf, size_t cap)
{
    struct rpart *p = ctx;
    uint64_t stop = p->s->len < p->end ? p->s->len : p->end;
    if (atomic_load(&p->cancelled))
        return -ECANCELED;
    if (p->pos >= stop)
        return 0;
    size_t want = cap;
    if (want > stop - p->pos)
        want = (size_t)(stop - p->pos);
    /* What has arrived by now; wait for a grain (or the rest) if less. */
    size_t least = want < GRAIN ? want : GRAIN;
    double t = now();
    double arrived = t < p->t0 ? 0 : (t - p->t0) * RATE - (double)p->got;
    if (arrived < (double)least) {
        sleep_until(p->t0 + ((double)p->got + (double)least) / RATE);
        t = now();
        arrived = (t - p->t0) * RATE - (double)p->got;
    }
    size_t n = arrived >= (double)want ? want : (size_t)arrived;
    if (n < least)
        n = least;
    if (atomic_load(&p->cancelled))
        return -ECANCELED;
    fill_at(buf, n, p->pos);
    p->pos += n;
    p->got += n;
    atomic_fetch_add(&p->s->delivered, n);
    return (ssize_t)n;
}

static void rpart_cancel(void *ctx)
{
    struct rpart *p = ctx;
    atomic_store(&p->cancelled, 1);
}

static void rpart_close(void *ctx)
{
    free(ctx);
}

static int rsrc_open_at(void *ctx, uint64_t off, uint64_t end,
                        sb_source *part, uint64_t *length)
{
    struct rsrc *s = ctx;
    struct rpart *p = calloc(1, sizeof *p);
    if (p == NULL)
        return -ENOMEM;
    atomic_fetch_add(&s->opens, 1);
    p->s = s;
    p->pos = off;
    p->end = end;
    p->t0 = now() + LATENCY;
    part->read = rpart_read;
    part->cancel = rpart_cancel;
    part->close = rpart_close;
    part->ctx = p;
    *length = s->len;
    return 0;
}

static sb_buffer *open_ranged(struct rsrc *s, uint64_t len, sb_options *o)
{
    memset(s, 0, sizeof *s);
    s->len = len;
    sb_source src = { .open_at = rsrc_open_at, .ctx = s };
    o->tmp_dir = opt.tmp_dir;
    sb_buffer *b = sb_open(&src, o);
    if (b == NULL)
        die_errno("sb_open (ranged)");
    return b;
}

static sb_stats get_stats(sb_buffer *b)
{
    sb_stats st;
    if (sb_get_stats(b, &st) != 0)
        die_errno("sb_get_stats");
    return st;
}

static void check_bytes(const unsigned char *buf, size_t n, uint64_t off)
{
    unsigned char want[4096];
    for (size_t k = 0; k < n; k += sizeof want) {
        size_t m = n - k < sizeof want ? n - k : sizeof want;
        fill_at(want, m, off + k);
        if (memcmp(buf + k, want, m) != 0)
            die("ranged: wrong bytes at %llu", (unsigned long long)(off + k));
    }
}

/* ---- F1: a far first read ------------------------------------------------------------ */

static double far_once(uint64_t len, uint64_t *fetched)
{
    struct rsrc s;
    sb_options o = { .mem_limit = 4 * MiB };
    unsigned char buf[4096];
    const uint64_t off = len / 1024 * 900; /* 900 MiB of 1 GiB */

    double t0 = now();
    sb_buffer *b = open_ranged(&s, len, &o);
    if (sb_pread(b, buf, sizeof buf, off) != (ssize_t)sizeof buf)
        die_errno("ranged far read");
    double t = now() - t0;
    *fetched = get_stats(b).fetched;
    check_bytes(buf, sizeof buf, off);
    sb_close(b);
    return t;
}

/* ---- F2: random reads ---------------------------------------------------------------- */

#define F2_THREADS 8
#define F2_READS 32
#define F2_SIZE (64 * KiB)

struct f2 {
    sb_buffer *b;
    uint64_t len;
    uint64_t seed;
    atomic_int bad;
};

static void f2_thread(void *arg, int idx)
{
    struct f2 *f = arg;
    unsigned char *buf = malloc(F2_SIZE);
    if (buf == NULL)
        die("out of memory");
    uint64_t x = f->seed * 64 + (uint64_t)idx;
    for (int i = 0; i < F2_READS; i++) {
        uint64_t off = splitmix64(&x) % (f->len - F2_SIZE);
        if (sb_pread(f->b, buf, F2_SIZE, off) != (ssize_t)F2_SIZE) {
            atomic_fetch_add(&f->bad, 1);
            continue;
        }
        check_bytes(buf, F2_SIZE, off);
    }
    free(buf);
}

static double rand_once(uint64_t len, uint64_t seed, uint64_t *fetched,
                        uint64_t *parts)
{
    struct rsrc s;
    sb_options o = { .mem_limit = 4 * MiB, .read_ahead = MiB,
                     .max_parts = 8 };
    sb_buffer *b = open_ranged(&s, len, &o);
    struct f2 f = { .b = b, .len = len, .seed = seed };
    double t = team_run(F2_THREADS, f2_thread, &f);
    if (atomic_load(&f.bad) != 0)
        die("ranged: %d random reads failed", atomic_load(&f.bad));
    sb_stats st = get_stats(b);
    *fetched = st.fetched;
    *parts = st.parts_opened;
    sb_close(b);
    return t;
}

/* ---- F3: the whole stream ------------------------------------------------------------ */

static double drain_once(uint64_t len, uint64_t *fetched)
{
    struct rsrc s;
    sb_options o = { .mem_limit = 4 * MiB, .max_parts = 4 };
    uint64_t total = 0;

    double t0 = now();
    sb_buffer *b = open_ranged(&s, len, &o);
    if (sb_wait_end(b, &total) != 0)
        die_errno("ranged drain");
    double t = now() - t0;
    if (total != len)
        die("ranged drain: %llu bytes, want %llu", (unsigned long long)total,
            (unsigned long long)len);
    *fetched = get_stats(b).fetched;
    unsigned char buf[4096];
    for (int k = 0; k < 16; k++) {
        uint64_t off = (len - sizeof buf) / 15 * (uint64_t)k;
        if (sb_pread(b, buf, sizeof buf, off) != (ssize_t)sizeof buf)
            die_errno("ranged read back");
        check_bytes(buf, sizeof buf, off);
    }
    sb_close(b);
    return t;
}

/* ---- the rows -------------------------------------------------------------------------- */

/* A row of times (s) against a limit from the model: ours is the median,
   the base the limit itself, the spread over the reps. */
static void time_row(const char *variant, const double *v, int n,
                     double limit, double target)
{
    double base[MAX_REPS];
    for (int k = 0; k < n; k++)
        base[k] = limit;
    struct row r = row_init("ranged", 0, "ms", LOWER);
    snprintf(r.variant, sizeof r.variant, "%s", variant);
    row_reps(&r, v, base, n, 1000.0);
    r.target = target;
    report(&r);
}

static void bytes_row(const char *variant, const double *fetched,
                      const double *needed, int n, double target)
{
    struct row r = row_init("ranged", 0, "MiB", LOWER);
    snprintf(r.variant, sizeof r.variant, "%s", variant);
    row_reps(&r, fetched, needed, n, 1.0 / (double)MiB);
    r.target = target;
    report(&r);
}

void case_ranged(void)
{
    const uint64_t len = opt.ranged_size;
    double t[MAX_REPS] = {0}, f[MAX_REPS] = {0}, need[MAX_REPS] = {0};
    int reps = opt.reps;
    uint64_t fetched, parts;

    /* F1: one part's latency and its 4 KiB. */
    for (int k = 0; k < reps; k++) {
        t[k] = far_once(len, &fetched);
        f[k] = (double)fetched;
        need[k] = 4096;
    }
    time_row("F1 4K at 900/1024, first read", t, reps,
             LATENCY + 4096 / RATE, 2.0);
    bytes_row("F1 fetched / 4 KiB", f, need, reps, NAN);

    /* F2: 32 rounds of 8 ranged reads. */
    for (int k = 0; k < reps; k++) {
        t[k] = rand_once(len, (uint64_t)k + 1, &fetched, &parts);
        f[k] = (double)fetched;
        need[k] = (double)F2_THREADS * F2_READS * F2_SIZE
                  + (double)parts * (double)(MiB + 64 * KiB);
    }
    time_row("F2 8x32 rand 64K, ra 1M, 8 parts", t, reps,
             F2_READS * (LATENCY + F2_SIZE / RATE), 2.0);
    bytes_row("F2 fetched / needed+ra+chunk", f, need, reps, 1.0);

    /* F3: the drain; a few reps only (each reads the whole stream). */
    int dreps = reps < 3 ? reps : 3;
    for (int k = 0; k < dreps; k++) {
        t[k] = drain_once(len, &fetched);
        f[k] = (double)fetched;
        need[k] = (double)len;
    }
    time_row("F3 drain, 4 parts, vs 1 part", t, dreps,
             (double)len / RATE, 0.35);
    bytes_row("F3 fetched / length", f, need, dreps, 1.02);
}
