/* SPDX-License-Identifier: MIT */
/*
 * cases_wait.c - readers waiting for bytes that have not arrived yet.
 *
 *   6 wakeup   one reader waits for the next 64 bytes of a slow source.  The
 *              source's read callback blocks on a semaphore until the bench
 *              releases one chunk, stamps the release time and hands the
 *              chunk over; the reader's sb_pread for exactly those bytes
 *              returns and stamps the time.  Baseline: the same three
 *              threads and semaphores with a bare mutex + condition variable
 *              hand-off from "producer" to reader.  Median and p99 over
 *              reps x 400 hand-offs per side, twice: "asleep", released
 *              once the reader sleeps in the kernel (its /proc state is S),
 *              which is the wake-up itself; "queued", released as soon as
 *              the reader is queued, which a reader near the end of the
 *              stream catches while it spins (see spin() in src/wait.c).
 *   7 waiters  64 readers blocked at different offsets of a slow stream that
 *              delivers one 4 KiB range at a time; each reader waits for 4
 *              ranges, 64 ranges apart, so every wait spans 64 deliveries.
 *              Counts sb_get_stats().wakeups per delivery.
 *
 * The bench releases a chunk only once every reader that should be waiting
 * is blocked (sb_get_stats().waiting, or the baseline's own count), so every
 * measured read takes the slow path.
 */
#include "bench.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define HANDOFFS 400     /* per round and side */
#define WAKE_CHUNK 64
#define WAITERS 64
#define WAIT_RANGES 4    /* per reader */
#define WAIT_CHUNK (4 * KiB)

/* ---- small helpers ------------------------------------------------------------- */

static void sem_wait_intr(sem_t *s)
{
    while (sem_wait(s) != 0)
        if (errno != EINTR)
            die_errno("sem_wait");
}

/* The bench's own waits for a reader: give up after 30 s rather than hang
   on a reader that is never woken. */
static void sem_wait_reader(sem_t *s)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_sec += 30;
    while (sem_timedwait(s, &t) != 0) {
        if (errno == ETIMEDOUT)
            die("timed out waiting for the reader to return");
        if (errno != EINTR)
            die_errno("sem_timedwait");
    }
}

/* One step of a polling loop: yield a few times, then sleep; give up after
   30 s (something is stuck). */
static void backoff(int *spins, double since, const char *what)
{
    if (++*spins < 64)
        sched_yield();
    else
        sleep_us(20);
    if ((*spins & 255) == 0 && now() - since > 30)
        die("timed out waiting for %s", what);
}

static sb_stats stats(sb_buffer *b)
{
    sb_stats s;
    if (sb_get_stats(b, &s) != 0)
        die_errno("sb_get_stats");
    return s;
}

/* Whether thread tid of this process sleeps (state S in its /proc stat). */
static bool thread_asleep(pid_t tid)
{
    char path[64], line[512];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        die_errno("%s", path);
    size_t n = fread(line, 1, sizeof line - 1, f);
    fclose(f);
    line[n] = '\0';
    const char *p = strrchr(line, ')'); /* after the name, which may hold ')' */
    return p != NULL && p[1] == ' ' && p[2] == 'S';
}

static void wait_asleep(_Atomic pid_t *tid)
{
    double t0 = now();
    int spins = 0;
    while (atomic_load(tid) == 0 || !thread_asleep(atomic_load(tid)))
        backoff(&spins, t0, "the reader to sleep");
}

/* Wait until exactly `want` readers are blocked in b. */
static void wait_waiting(sb_buffer *b, uint64_t want)
{
    double t0 = now();
    int spins = 0;
    while (stats(b).waiting != want)
        backoff(&spins, t0, "readers to block");
}

static pthread_t spawn(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    int rc = pthread_create(&t, NULL, fn, arg);
    if (rc != 0) {
        errno = rc;
        die_errno("pthread_create");
    }
    return t;
}

/* ---- the gated source: one chunk per release ------------------------------------ */

struct gate {
    sem_t go;                  /* posted by the bench: release one chunk */
    const unsigned char *data;
    size_t chunk;
    size_t count;              /* chunks in the stream */
    size_t idx;                /* the next chunk */
    double *t_rel;             /* release stamps, or NULL */
};

static void gate_init(struct gate *g, const unsigned char *data, size_t chunk,
                      size_t count, double *t_rel)
{
    *g = (struct gate){ .data = data, .chunk = chunk, .count = count,
                        .t_rel = t_rel };
    sem_init(&g->go, 0, 0);
}

static ssize_t gate_read(void *ctx, void *buf, size_t cap)
{
    struct gate *g = ctx;
    if (g->idx == g->count)
        return 0;
    if (cap < g->chunk)
        return -EINVAL;
    sem_wait_intr(&g->go);
    if (g->t_rel != NULL)
        g->t_rel[g->idx] = now();
    memcpy(buf, g->data + g->idx * g->chunk, g->chunk);
    g->idx++;
    return (ssize_t)g->chunk;
}

static sb_buffer *gate_open(struct gate *g, size_t mem_limit)
{
    sb_source src = { .read = gate_read, .ctx = g };
    sb_options o = { .mem_limit = mem_limit, .tmp_dir = opt.tmp_dir };
    sb_buffer *b = sb_open(&src, &o);
    if (b == NULL)
        die_errno("sb_open");
    return b;
}

/* ---- case 6: ours ------------------------------------------------------------------ */

struct wake {
    size_t count;
    double *t_rel, *t_ret;
    sem_t done;                /* posted by the reader after each read */
    sb_buffer *b;                     /* ours */
    /* The baseline's bare hand-off. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t avail;              /* chunks handed over */
    int waiting;               /* readers in cond_wait */
    sem_t go;
    const unsigned char *data;
    unsigned char *shared;
    bool asleep;               /* release once the reader sleeps */
    _Atomic pid_t tid;         /* the reader's thread id */
};

static void *wake_reader_ours(void *arg)
{
    struct wake *w = arg;
    unsigned char buf[WAKE_CHUNK];
    atomic_store(&w->tid, (pid_t)syscall(SYS_gettid));
    for (size_t i = 0; i < w->count; i++) {
        ssize_t r = sb_pread(w->b, buf, WAKE_CHUNK, (uint64_t)i * WAKE_CHUNK);
        if (r != WAKE_CHUNK)
            die_errno("wakeup: sb_pread returned %zd", r);
        w->t_ret[i] = now();
        CLOBBER(buf);
        sem_post(&w->done);
    }
    return NULL;
}

static void wake_round_ours(struct wake *w, const unsigned char *data)
{
    struct gate g;

    gate_init(&g, data, WAKE_CHUNK, w->count, w->t_rel);
    w->b = gate_open(&g, w->count * WAKE_CHUNK);
    atomic_store(&w->tid, 0);
    pthread_t reader = spawn(wake_reader_ours, w);
    for (size_t i = 0; i < w->count; i++) {
        wait_waiting(w->b, 1);
        if (w->asleep)
            wait_asleep(&w->tid);
        sem_post(&g.go);
        sem_wait_reader(&w->done);
    }
    pthread_join(reader, NULL);
    sb_close(w->b);
    w->b = NULL;
    sem_destroy(&g.go);
}

/* ---- case 6: the bare baseline ---------------------------------------------------- */

static void *wake_producer_base(void *arg)
{
    struct wake *w = arg;
    for (size_t i = 0; i < w->count; i++) {
        sem_wait_intr(&w->go);
        w->t_rel[i] = now();
        memcpy(w->shared + i * WAKE_CHUNK, w->data + i * WAKE_CHUNK, WAKE_CHUNK);
        pthread_mutex_lock(&w->mu);
        w->avail = i + 1;
        pthread_cond_signal(&w->cv);
        pthread_mutex_unlock(&w->mu);
    }
    return NULL;
}

static void *wake_reader_base(void *arg)
{
    struct wake *w = arg;
    unsigned char buf[WAKE_CHUNK];
    atomic_store(&w->tid, (pid_t)syscall(SYS_gettid));
    for (size_t i = 0; i < w->count; i++) {
        pthread_mutex_lock(&w->mu);
        if (w->avail < i + 1) {
            w->waiting++;
            while (w->avail < i + 1)
                pthread_cond_wait(&w->cv, &w->mu);
            w->waiting--;
        }
        pthread_mutex_unlock(&w->mu);
        memcpy(buf, w->shared + i * WAKE_CHUNK, WAKE_CHUNK);
        w->t_ret[i] = now();
        CLOBBER(buf);
        sem_post(&w->done);
    }
    return NULL;
}

static int base_waiting(struct wake *w)
{
    pthread_mutex_lock(&w->mu);
    int n = w->waiting;
    pthread_mutex_unlock(&w->mu);
    return n;
}

static void wake_round_base(struct wake *w, const unsigned char *data)
{
    w->data = data;
    w->avail = 0;
    w->waiting = 0;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    sem_init(&w->go, 0, 0);
    atomic_store(&w->tid, 0);
    pthread_t producer = spawn(wake_producer_base, w);
    pthread_t reader = spawn(wake_reader_base, w);
    for (size_t i = 0; i < w->count; i++) {
        double t0 = now();
        int spins = 0;
        while (base_waiting(w) != 1)
            backoff(&spins, t0, "the baseline reader to block");
        if (w->asleep)
            wait_asleep(&w->tid);
        sem_post(&w->go);
        sem_wait_reader(&w->done);
    }
    pthread_join(producer, NULL);
    pthread_join(reader, NULL);
    sem_destroy(&w->go);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
}

static void wake_rows(struct wake *w, const unsigned char *data, double *lat[2])
{
    const size_t count = HANDOFFS;
    size_t total = count * (size_t)opt.reps;
    const char *mode = w->asleep ? "asleep" : "queued";

    /* Warm-up: a short round of each. */
    w->count = count / 8;
    wake_round_ours(w, data);
    wake_round_base(w, data);

    w->count = count;
    for (int k = 0; k < opt.reps; k++) {
        for (int s = 0; s < 2; s++) {
            if (s == 0)
                wake_round_ours(w, data);
            else
                wake_round_base(w, data);
            for (size_t i = 0; i < count; i++)
                lat[s][(size_t)k * count + i] = (w->t_ret[i] - w->t_rel[i]) * 1e6;
        }
    }

    int n = (int)total;
    struct row row = row_init("wakeup", 1, "us", LOWER);
    snprintf(row.variant, sizeof row.variant, "%s median of %d", mode, n);
    row.ours = median(lat[0], n);
    row.base = median(lat[1], n);
    /* The spread: the ratio of the two medians of each interleaved round. */
    row.lo = INFINITY;
    row.hi = -INFINITY;
    for (int k = 0; k < opt.reps; k++) {
        double q = median(lat[0] + (size_t)k * count, (int)count)
                   / median(lat[1] + (size_t)k * count, (int)count);
        row.lo = q < row.lo ? q : row.lo;
        row.hi = q > row.hi ? q : row.hi;
    }
    if (w->asleep)
        row.target = 1.5;
    report(&row);

    row = row_init("wakeup", 1, "us", LOWER);
    snprintf(row.variant, sizeof row.variant, "%s p99 of %d", mode, n);
    row.ours = quantile(lat[0], n, 0.99);
    row.base = quantile(lat[1], n, 0.99);
    report(&row);
}

void case_wakeup(void)
{
    const size_t count = HANDOFFS;
    size_t total = count * (size_t)opt.reps;
    unsigned char *data = malloc(count * WAKE_CHUNK);
    double *lat[2], *t_rel = malloc(count * sizeof *t_rel),
                    *t_ret = malloc(count * sizeof *t_ret);
    struct wake w = { .t_rel = t_rel, .t_ret = t_ret };

    lat[0] = malloc(total * sizeof *lat[0]);
    lat[1] = malloc(total * sizeof *lat[1]);
    w.shared = malloc(count * WAKE_CHUNK);
    if (!data || !t_rel || !t_ret || !lat[0] || !lat[1] || !w.shared)
        die("out of memory");
    fill_random(data, count * WAKE_CHUNK, 0x3a11);
    sem_init(&w.done, 0, 0);

    w.asleep = true;
    wake_rows(&w, data, lat);
    w.asleep = false;
    wake_rows(&w, data, lat);

    sem_destroy(&w.done);
    free(w.shared);
    free(lat[0]);
    free(lat[1]);
    free(t_rel);
    free(t_ret);
    free(data);
}

/* ---- case 7 ---------------------------------------------------------------------- */

struct waiters {
    sb_buffer *b;
    atomic_size_t done;        /* reads completed, all readers */
};

struct waiter_arg {
    struct waiters *ws;
    int r;
};

/* Reader r reads ranges r, r + WAITERS, r + 2 WAITERS, ... */
static void *waiter_main(void *p)
{
    struct waiter_arg *a = p;
    unsigned char buf[WAIT_CHUNK];
    for (int j = 0; j < WAIT_RANGES; j++) {
        uint64_t k = (uint64_t)a->r + (uint64_t)j * WAITERS;
        ssize_t r = sb_pread(a->ws->b, buf, WAIT_CHUNK, k * WAIT_CHUNK);
        if (r != (ssize_t)WAIT_CHUNK)
            die_errno("waiters: sb_pread returned %zd", r);
        CLOBBER(buf);
        atomic_fetch_add(&a->ws->done, 1);
    }
    return NULL;
}

/*
 * One round: every range is one delivery, and satisfies exactly one wait.
 * delta[k] = wake-ups counted during delivery k.  Returns the total.
 */
static uint64_t waiters_round(const unsigned char *data, uint64_t *delta)
{
    const size_t count = (size_t)WAITERS * WAIT_RANGES;
    struct waiters ws;
    struct waiter_arg args[WAITERS];
    pthread_t tid[WAITERS];
    struct gate g;

    gate_init(&g, data, WAIT_CHUNK, count, NULL);
    ws.b = gate_open(&g, count * WAIT_CHUNK);
    atomic_init(&ws.done, 0);
    for (int r = 0; r < WAITERS; r++) {
        args[r] = (struct waiter_arg){ .ws = &ws, .r = r };
        tid[r] = spawn(waiter_main, &args[r]);
    }

    wait_waiting(ws.b, WAITERS);
    uint64_t w_start = stats(ws.b).wakeups, w_prev = w_start;
    for (size_t k = 0; k < count; k++) {
        sem_post(&g.go);
        double t0 = now();
        int spins = 0;
        while (atomic_load(&ws.done) < k + 1)
            backoff(&spins, t0, "the satisfied reader");
        /* Every reader with ranges left is blocked again (the one just
           satisfied has queued for its next range). */
        size_t left = count - (k + 1);
        wait_waiting(ws.b, left < WAITERS ? left : WAITERS);
        uint64_t w = stats(ws.b).wakeups;
        delta[k] = w - w_prev;
        w_prev = w;
    }
    for (int r = 0; r < WAITERS; r++)
        pthread_join(tid[r], NULL);
    sb_close(ws.b);
    sem_destroy(&g.go);
    return w_prev - w_start;
}

void case_waiters(void)
{
    const size_t count = (size_t)WAITERS * WAIT_RANGES;
    unsigned char *data = malloc(count * WAIT_CHUNK);
    uint64_t delta[(size_t)WAITERS * WAIT_RANGES];
    double mean[MAX_REPS];
    double max_bound = 0;

    if (data == NULL)
        die("out of memory");
    fill_random(data, count * WAIT_CHUNK, 0x3a12);
    for (int k = 0; k < opt.reps; k++) {
        uint64_t total = waiters_round(data, delta);
        mean[k] = (double)total / (double)count;
        /*
         * The wait for range k spans deliveries k-63 .. k (it was queued
         * when range k-64 was delivered).  Each delivery wakes its own
         * reader once; a delivery that woke anyone else may have woken
         * this reader too, once (one publish, one signal per waiter).  So
         * 1 + the deliveries in its window with extra wake-ups bounds the
         * reader's wake-ups for that range.
         */
        for (size_t i = 0; i < count; i++) {
            size_t from = i >= WAITERS - 1 ? i - (WAITERS - 1) : 0;
            double bound = 1;
            for (size_t d = from; d <= i; d++)
                bound += delta[d] > 1 ? 1 : 0;
            if (bound > max_bound)
                max_bound = bound;
        }
    }
    free(data);
    if (opt.verbose)
        print_reps("ours", mean, 1, "wakes/wait");

    struct row row = row_init("waiters", WAITERS, "wakes", LOWER);
    snprintf(row.variant, sizeof row.variant, "wakes/satisfied wait");
    row.ours = median(mean, opt.reps);
    row.base = 1.0; /* the ideal: one wake-up per wait */
    row.target = 2.0;
    report(&row);

    row = row_init("waiters", WAITERS, "wakes", LOWER);
    snprintf(row.variant, sizeof row.variant, "max per reader+range");
    row.ours = max_bound;
    row.base = 1.0;
    row.target = 2.0;
    report(&row);
}
