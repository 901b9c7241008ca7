/* SPDX-License-Identifier: MIT */
/*
 * cases_live.c - case 11: many readers on a live stream.
 *
 * N reader threads (1, 4, 64) read a stream while the producer fills it
 * (they start right after sb_open), in two shapes:
 *   follow  each reads the whole stream in 64 KiB pieces, front to back;
 *   random  each makes 256 reads of 4 KiB at sorted random offsets;
 * in memory and spilling (--mem-limit).  Timed from sb_open to the last
 * reader's return.  The source is an iterator over the stream's bytes in
 * memory (64 KiB chunks handed over in place), so that ours stores each
 * byte once, as the baseline does: what is measured is the cost of the
 * readers' waits, not of a read callback's extra copy (case 4 has that).
 *
 * The baseline is the lower bound of the same work on the cores there are:
 * the producer's stores alone (memcpy, and pwrite past the limit, into the
 * same layout: P seconds), the readers' copies alone (N threads reading the
 * filled layout: R seconds of wall time, C seconds of CPU), and the bound
 * max(P, R, (P + C) / cores): neither side can finish before its own work is
 * done, and all of it shares the cores.  Everything ours costs beyond that
 * is waiting: the wake-ups of readers that got ahead of the producer.  The
 * row reports ours/baseline (throughput in stream bytes per second) and,
 * in the variant, the wake-ups per read (sb_get_stats).
 *
 * For 64 random readers a third row, "bare", is the least a sleeping
 * hand-off costs on this machine: the same stores and reads with no
 * library, one futex word per reader, no lock, and the producer waking
 * each reader whose offset it has passed (a scan of 64 words a chunk).
 * Its ratio to the same lower bound says how much of ours is the kernel's.
 *
 * And for 64 random readers, "event loop": the same 64 readers' reads
 * made by one thread through SB_NONBLOCK readers, which arm instead of
 * waiting, and poll(2) on sb_poll_fd: one wake of the loop per publish
 * that completes some range, not one per reader.  The blocking row beside
 * it is the same work on 64 threads.  A third, "busy poll", is that loop
 * polling with timeout 0 for up to 100 us before it sleeps.
 */
#include "bench.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#define LIVE_CHUNK (64 * KiB)
#define FOLLOW_READ (64 * KiB)
#define RANDOM_READS 256
#define RANDOM_READ (4 * KiB)
#define LOOP_SPIN 100e-6   /* the busy-polling loop's, as src/wait.c's spin */

enum shape { FOLLOW, RANDOM };
enum lside { OURS, BASE, BARE, LOOP };

/* A bare reader's hand-off: the producer stores word 1 and wakes it once
   filled >= need. */
struct bare_waiter {
    _Alignas(64) _Atomic uint64_t need;   /* UINT64_MAX: not waiting */
    _Atomic uint32_t word;
};

struct live {
    enum shape shape;
    enum lside side;
    int readers;
    const unsigned char *data;
    size_t len;
    size_t mem;
    sb_buffer *b;
    struct plain *plain;
    uint64_t *offs;                  /* RANDOM: readers x RANDOM_READS, sorted per reader */
    _Atomic uint64_t filled;         /* BARE: the watermark */
    struct bare_waiter bare[MAX_THREADS];
    unsigned char *dst[MAX_THREADS];
    unsigned sink[MAX_THREADS];
};

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6
           + (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

/* BARE: sleep until filled >= need.  The store-load pairs (need, then
   filled; filled, then need) are seq_cst, so one side sees the other. */
static void bare_wait(struct live *x, struct bare_waiter *me, uint64_t need)
{
    if (atomic_load(&x->filled) >= need)
        return;
    atomic_store(&me->word, 0);
    atomic_store(&me->need, need);
    while (atomic_load(&x->filled) < need) {
        if (atomic_load(&me->word) == 0)
            syscall(SYS_futex, (void *)&me->word, FUTEX_WAIT_PRIVATE, 0, NULL,
                    NULL, 0);
        atomic_store(&me->word, 0);
    }
    atomic_store(&me->need, UINT64_MAX);
}

static void read_at(struct live *x, unsigned char *dst, size_t n, uint64_t off,
                    int idx)
{
    if (x->side == BARE)
        bare_wait(x, &x->bare[idx], off + n);
    if (x->side == OURS) {
        ssize_t r = sb_pread(x->b, dst, n, off);
        if (r != (ssize_t)n)
            die_errno("live: sb_pread of %zu at %llu gave %zd", n,
                      (unsigned long long)off, r);
    } else {
        plain_read(x->plain, dst, n, off);
    }
    CLOBBER(dst);
    if (dst[0] != x->data[off] || dst[n - 1] != x->data[off + n - 1])
        die("live: wrong bytes at %llu", (unsigned long long)off);
}

static void live_body(void *arg, int idx)
{
    struct live *x = arg;
    unsigned char *dst = x->dst[idx];
    unsigned sink = 0;

    if (x->shape == FOLLOW) {
        for (uint64_t off = 0; off < x->len; off += FOLLOW_READ) {
            size_t n = x->len - off < FOLLOW_READ ? (size_t)(x->len - off)
                                                  : FOLLOW_READ;
            read_at(x, dst, n, off, idx);
            sink += dst[0];
        }
    } else {
        const uint64_t *o = x->offs + (size_t)idx * RANDOM_READS;
        for (int i = 0; i < RANDOM_READS; i++) {
            read_at(x, dst, RANDOM_READ, o[i], idx);
            sink += dst[0];
        }
    }
    x->sink[idx] = sink;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

struct chunks {
    const unsigned char *data;
    size_t len, pos;
};

static int chunks_next(void *ctx, const void **chunk, size_t *len)
{
    struct chunks *c = ctx;
    if (c->pos == c->len)
        return 0;
    *chunk = c->data + c->pos;
    *len = c->len - c->pos < LIVE_CHUNK ? c->len - c->pos : LIVE_CHUNK;
    c->pos += *len;
    return 1;
}

/* Ours: open, readers at once, until the last returns.  Seconds, and the
   wake-ups the stats counted. */
static double live_ours(struct live *x, uint64_t *wakeups)
{
    struct chunks c = { .data = x->data, .len = x->len };
    sb_source src = { .next = chunks_next, .ctx = &c };
    sb_options o = { .mem_limit = x->mem, .tmp_dir = opt.tmp_dir };
    x->side = OURS;
    double t0 = now();
    x->b = sb_open(&src, &o);
    if (x->b == NULL)
        die_errno("sb_open");
    team_run(x->readers, live_body, x);
    double t1 = now();
    sb_stats st;
    if (sb_get_stats(x->b, &st) != 0)
        die_errno("sb_get_stats");
    *wakeups = st.wakeups;
    sb_close(x->b);
    x->b = NULL;
    return t1 - t0;
}

/* The lower bound: the producer's stores and the readers' copies, each
   alone, and both sharing the cores. */
static double live_base(struct live *x)
{
    struct plain p;
    double t0 = now(), c0 = cpu_seconds();
    plain_open(&p, x->mem);
    for (size_t off = 0; off < x->len; off += LIVE_CHUNK) {
        size_t n = x->len - off < LIVE_CHUNK ? x->len - off : LIVE_CHUNK;
        plain_write(&p, off, x->data + off, n);
    }
    double prod = now() - t0, prod_cpu = cpu_seconds() - c0;
    x->plain = &p;
    x->side = BASE;
    double c1 = cpu_seconds();
    double rd = team_run(x->readers, live_body, x);
    double rd_cpu = cpu_seconds() - c1;
    plain_close(&p);
    x->plain = NULL;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    double shared = (prod_cpu + rd_cpu) / (double)(ncpu > 0 ? ncpu : 1);
    double bound = prod > rd ? prod : rd;
    return shared > bound ? shared : bound;
}

/* The bare producer: the baseline's stores, a watermark, and a wake-up of
   each reader whose range the chunk completed. */
static void *bare_producer(void *arg)
{
    struct live *x = arg;
    for (size_t off = 0; off < x->len; off += LIVE_CHUNK) {
        size_t n = x->len - off < LIVE_CHUNK ? x->len - off : LIVE_CHUNK;
        plain_write(x->plain, off, x->data + off, n);
        atomic_store(&x->filled, off + n);
        for (int i = 0; i < x->readers; i++) {
            struct bare_waiter *w = &x->bare[i];
            uint64_t need = atomic_load(&w->need);
            /* Claimed, so that a reader not yet back on its CPU is woken
               once, not at every chunk until it runs. */
            if (need <= off + n
                && atomic_compare_exchange_strong(&w->need, &need, UINT64_MAX)) {
                atomic_store(&w->word, 1);
                syscall(SYS_futex, (void *)&w->word, FUTEX_WAKE_PRIVATE, 1,
                        NULL, NULL, 0);
            }
        }
    }
    return NULL;
}

/* LOOP: reader idx's next reads, until one is not answerable (it is then
   armed) or it has made them all.  Returns 1 when it is done. */
static int loop_advance(struct live *x, sb_reader *r, int idx, int *next)
{
    const uint64_t *o = x->offs + (size_t)idx * RANDOM_READS;
    unsigned char *dst = x->dst[idx];
    while (next[idx] < RANDOM_READS) {
        uint64_t off = o[next[idx]];
        ssize_t got = sb_reader_pread(r, dst, RANDOM_READ, off);
        if (got < 0 && errno == EAGAIN)
            return 0;
        if (got != (ssize_t)RANDOM_READ)
            die_errno("live: non-blocking read of %zu at %llu gave %zd",
                      (size_t)RANDOM_READ, (unsigned long long)off, got);
        CLOBBER(dst);
        if (dst[0] != x->data[off] || dst[RANDOM_READ - 1] != x->data[off + RANDOM_READ - 1])
            die("live: wrong bytes at %llu", (unsigned long long)off);
        x->sink[idx] += dst[0];
        next[idx]++;
    }
    return 1;
}

/* One event-loop thread serves every reader (RANDOM shape only).  With
   spin, it polls with timeout 0 (yielding between) for up to that many
   seconds before it sleeps in poll(2): what a busy-polling loop does, and
   it shows how much of the plain loop's time is its own wake-ups. */
static double live_loop(struct live *x, uint64_t *loop_wakes, double spin)
{
    struct chunks c = { .data = x->data, .len = x->len };
    sb_source src = { .next = chunks_next, .ctx = &c };
    sb_options o = { .mem_limit = x->mem, .tmp_dir = opt.tmp_dir };
    sb_reader *r[MAX_THREADS], *ready[MAX_THREADS];
    int next[MAX_THREADS] = { 0 };
    int done = 0;
    uint64_t wakes = 0;

    double t0 = now();
    x->b = sb_open(&src, &o);
    if (x->b == NULL)
        die_errno("sb_open");
    int fd = sb_poll_fd(x->b);
    if (fd < 0)
        die_errno("sb_poll_fd");
    for (int i = 0; i < x->readers; i++) {
        r[i] = sb_reader_open_flags(x->b, 0, SB_NONBLOCK);
        if (r[i] == NULL)
            die_errno("sb_reader_open_flags");
        sb_reader_set_tag(r[i], (void *)(uintptr_t)i);
        done += loop_advance(x, r[i], i, next);
    }
    while (done < x->readers) {
        struct pollfd pf = { .fd = fd, .events = POLLIN };
        int ready_now = 0;
        for (double ts = now(); !ready_now && now() - ts < spin;) {
            ready_now = poll(&pf, 1, 0);
            if (ready_now < 0)
                die_errno("poll");
            if (!ready_now)
                sched_yield();
        }
        if (!ready_now) {
            if (poll(&pf, 1, -1) < 0)
                die_errno("poll");
            wakes++;
        }
        size_t k;
        do {
            k = sb_poll_ready(x->b, ready, MAX_THREADS);
            for (size_t j = 0; j < k; j++) {
                int i = (int)(uintptr_t)sb_reader_tag(ready[j]);
                done += loop_advance(x, ready[j], i, next);
            }
        } while (k == MAX_THREADS);
    }
    double t1 = now();
    for (int i = 0; i < x->readers; i++)
        sb_reader_close(r[i]);
    sb_close(x->b);
    x->b = NULL;
    *loop_wakes = wakes;
    return t1 - t0;
}

static double live_bare(struct live *x)
{
    struct plain p;
    pthread_t t;
    x->plain = &p;
    x->side = BARE;
    atomic_store(&x->filled, 0);
    for (int i = 0; i < x->readers; i++) {
        atomic_store(&x->bare[i].need, UINT64_MAX);
        atomic_store(&x->bare[i].word, 0);
    }
    double t0 = now();
    plain_open(&p, x->mem);
    if (pthread_create(&t, NULL, bare_producer, x) != 0)
        die("pthread_create");
    team_run(x->readers, live_body, x);
    pthread_join(t, NULL);
    double t1 = now();
    plain_close(&p);
    x->plain = NULL;
    return t1 - t0;
}

static void live_row(enum shape shape, int readers, size_t mem)
{
    struct live x = { .shape = shape, .readers = readers, .data = stream_bytes(),
                      .len = opt.size, .mem = mem };
    double v[5][MAX_REPS];
    bool bare = shape == RANDOM && readers == 64;
    uint64_t wakes = 0, reads, loop_wakes = 0, spin_wakes = 0;

    size_t dn = shape == FOLLOW ? FOLLOW_READ : RANDOM_READ;
    for (int i = 0; i < readers; i++) {
        x.dst[i] = map_fresh(dn);
        memset(x.dst[i], 0, dn);
    }
    if (shape == RANDOM) {
        x.offs = malloc((size_t)readers * RANDOM_READS * sizeof *x.offs);
        if (x.offs == NULL)
            die("out of memory");
        uint64_t seed = 0x11fe;
        for (int i = 0; i < readers; i++) {
            uint64_t *o = x.offs + (size_t)i * RANDOM_READS;
            for (int k = 0; k < RANDOM_READS; k++)
                o[k] = splitmix64(&seed) % (x.len - RANDOM_READ);
            qsort(o, RANDOM_READS, sizeof *o, cmp_u64);
        }
        reads = (uint64_t)readers * RANDOM_READS;
    } else {
        reads = (uint64_t)readers * ((x.len + FOLLOW_READ - 1) / FOLLOW_READ);
    }
    touch_read(x.data, x.len);
    uint64_t w;
    live_ours(&x, &w); /* warm-up */
    live_base(&x);
    if (bare) {
        live_bare(&x);
        live_loop(&x, &w, 0);
    }
    for (int k = 0; k < opt.reps; k++) {
        v[OURS][k] = (double)x.len / live_ours(&x, &w);
        wakes += w;
        v[BASE][k] = (double)x.len / live_base(&x);
        if (bare) {
            v[BARE][k] = (double)x.len / live_bare(&x);
            v[LOOP][k] = (double)x.len / live_loop(&x, &w, 0);
            loop_wakes += w;
            v[LOOP + 1][k] = (double)x.len / live_loop(&x, &w, LOOP_SPIN);
            spin_wakes += w;
        }
    }
    if (opt.verbose) {
        print_reps("ours", v[OURS], 1.0 / (double)GiB, "GiB/s");
        print_reps("base", v[BASE], 1.0 / (double)GiB, "GiB/s");
    }
    char ml[16];
    struct row row = row_init("live", readers, "GiB/s", HIGHER);
    snprintf(row.variant, sizeof row.variant, "%s %s",
             shape == FOLLOW ? "follow" : "random",
             mem >= x.len ? "mem" : fmt_size(mem, ml, sizeof ml));
    row_reps(&row, v[OURS], v[BASE], opt.reps, 1.0 / (double)GiB);
    if ((shape == FOLLOW && readers == 4) || (shape == RANDOM && readers == 64))
        row.target = 0.8;
    report(&row);
    if (bare) {
        struct row br = row_init("live", readers, "GiB/s", HIGHER);
        snprintf(br.variant, sizeof br.variant, "random %s bare futex",
                 mem >= x.len ? "mem" : fmt_size(mem, ml, sizeof ml));
        row_reps(&br, v[BARE], v[BASE], opt.reps, 1.0 / (double)GiB);
        report(&br);
        struct row lr = row_init("live", 1, "GiB/s", HIGHER);
        snprintf(lr.variant, sizeof lr.variant, "random %s event loop",
                 mem >= x.len ? "mem" : fmt_size(mem, ml, sizeof ml));
        row_reps(&lr, v[LOOP], v[BASE], opt.reps, 1.0 / (double)GiB);
        lr.target = 0.8;
        report(&lr);
        struct row lw = row_init("live", 1, "wakes", LOWER);
        snprintf(lw.variant, sizeof lw.variant, "random %s loop wakes/read",
                 mem >= x.len ? "mem" : fmt_size(mem, ml, sizeof ml));
        lw.ours = (double)loop_wakes / ((double)reads * opt.reps);
        lw.base = 1.0;
        report(&lw);
        struct row sr = row_init("live", 1, "GiB/s", HIGHER);
        snprintf(sr.variant, sizeof sr.variant, "random %s loop 100us busy poll",
                 mem >= x.len ? "mem" : fmt_size(mem, ml, sizeof ml));
        row_reps(&sr, v[LOOP + 1], v[BASE], opt.reps, 1.0 / (double)GiB);
        report(&sr);
        struct row sw = row_init("live", 1, "wakes", LOWER);
        snprintf(sw.variant, sizeof sw.variant, "random %s busy poll wakes/read",
                 mem >= x.len ? "mem" : fmt_size(mem, ml, sizeof ml));
        sw.ours = (double)spin_wakes / ((double)reads * opt.reps);
        sw.base = 1.0;
        report(&sw);
    }
    /* The wake-ups per read, against the one a read that waits needs. */
    struct row wk = row_init("live", readers, "wakes", LOWER);
    snprintf(wk.variant, sizeof wk.variant, "%s %s wakes/read",
             shape == FOLLOW ? "follow" : "random",
             mem >= x.len ? "mem" : fmt_size(mem, ml, sizeof ml));
    wk.ours = (double)wakes / ((double)reads * opt.reps);
    wk.base = 1.0;
    report(&wk);
    for (int i = 0; i < readers; i++)
        unmap(x.dst[i], dn);
    free(x.offs);
}

void case_live(void)
{
    static const int ns[] = { 1, 4, 64 };
    for (int s = FOLLOW; s <= RANDOM; s++)
        for (int m = 0; m < 2; m++)
            for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
                live_row((enum shape)s, ns[i], m == 0 ? opt.size : opt.mem_limit);
}
