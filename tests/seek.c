/* SPDX-License-Identifier: MIT */
/*
 * seek.c - a seekable test source for the ranged-source tests; see seek.h.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "seek.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static struct timespec ts_of_ns(double ns)
{
    struct timespec ts;
    ts.tv_sec = (time_t)(ns / 1e9);
    ts.tv_nsec = (long)(ns - (double)ts.tv_sec * 1e9);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    if (ts.tv_nsec < 0)
        ts.tv_nsec = 0;
    return ts;
}

/* Violations are counted and said once each on stderr, for the test's
   seek_check to fail on. */
static void violation(seek_src *s, const char *what, const seek_part *p)
{
    atomic_fetch_add(&s->violations, 1);
    fprintf(stderr, "seek: %s (part at %llu%s)\n", what,
            p ? (unsigned long long)p->start : 0ULL,
            p && p->is_first ? ", the first stream" : "");
}

static void note_thread(seek_part *p)
{
    pthread_t self = pthread_self();
    if (!p->have_thread) {
        p->thread = self;
        p->have_thread = 1;
        atomic_store(&p->tid, (int)syscall(SYS_gettid));
    } else if (!pthread_equal(p->thread, self)) {
        violation(p->s, "a part's callback on another thread than its open",
                  p);
    }
}

/* Sleep until deadline_ns on the source's condition variable (monotonic),
   so that the part's cancel ends the wait at once.  0, or -1 if the part
   was cancelled. */
static int part_wait_until(seek_part *p, double deadline_ns)
{
    seek_src *s = p->s;
    pthread_mutex_lock(&s->mu);
    while (!atomic_load(&p->cancelled) && mono_ns() < deadline_ns) {
        struct timespec ts = ts_of_ns(deadline_ns);
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    pthread_mutex_unlock(&s->mu);
    return atomic_load(&p->cancelled) ? -1 : 0;
}

/* Whether the gate holds the part now.  Under mu. */
static int gate_holds(const seek_part *p)
{
    const seek_src *s = p->s;
    if (!s->gated || atomic_load(&p->cancelled))
        return 0;
    if (s->gate_first_only && !(p->is_first || p->start == 0))
        return 0;
    for (int i = 0; i < s->ngates; i++)
        if (p->pos >= s->gate_lo[i] &&
            (s->gate_hi[i] == 0 || p->pos < s->gate_hi[i]))
            return 1;
    return 0;
}

/* Block while the gate holds pos.  0, or -1 if the part was cancelled. */
static int part_gate(seek_part *p)
{
    seek_src *s = p->s;
    pthread_mutex_lock(&s->mu);
    if (gate_holds(p)) {
        s->blocked++;
        pthread_cond_broadcast(&s->cv);
        while (gate_holds(p))
            pthread_cond_wait(&s->cv, &s->mu);
        s->blocked--;
    }
    pthread_mutex_unlock(&s->mu);
    return atomic_load(&p->cancelled) ? -1 : 0;
}

/*
 * How many bytes the part's next call delivers (0: its end), or a negative
 * errno; waits at the gate and for its pace first.  cap is what the
 * library asked for.
 */
static ssize_t part_next_len(seek_part *p, size_t cap)
{
    seek_src *s = p->s;
    if (atomic_load(&p->closes) > 0)
        violation(s, "a callback after the part's close", p);
    note_thread(p);
    if (atomic_load(&p->cancelled))
        return -ECANCELED; /* any value will do after a cancel */
    int may_fail = !p->is_first || s->fail_first;
    if (may_fail && s->fail_after != 0 && p->delivered >= s->fail_after) {
        atomic_fetch_add(&s->failures, 1);
        return s->fail_err != 0 ? -s->fail_err : 0;
    }
    if (s->fail_at != 0 && p->pos >= s->fail_at)
        return s->fail_err != 0 ? -s->fail_err : 0;
    uint64_t stop = s->data_len;
    if (s->fail_at != 0 && s->fail_at < stop)
        stop = s->fail_at;
    if (!s->ignore_end && p->end < stop)
        stop = p->end;
    if (p->pos >= stop)
        return 0;
    uint64_t n = cap;
    if (s->chunks != NULL && s->nchunks > 0) {
        size_t c = s->chunks[p->chunk_idx++ % s->nchunks];
        if (c < n)
            n = c;
    }
    if (s->max_chunk != 0 && n > s->max_chunk)
        n = s->max_chunk;
    if (n > stop - p->pos)
        n = stop - p->pos;
    if (may_fail && s->fail_after != 0 && n > s->fail_after - p->delivered)
        n = s->fail_after - p->delivered;
    if (n == 0)
        return 0;
    /* A call stops at a gate, so a gated stream holds exactly the bytes
       below it. */
    pthread_mutex_lock(&s->mu);
    if (s->gated && !(s->gate_first_only && !(p->is_first || p->start == 0)))
        for (int i = 0; i < s->ngates; i++)
            if (s->gate_lo[i] > p->pos && s->gate_lo[i] - p->pos < n)
                n = s->gate_lo[i] - p->pos;
    pthread_mutex_unlock(&s->mu);
    if (part_gate(p) != 0)
        return -ECANCELED;
    /* Paced: byte k of the part goes at t0 + k / rate, the first one at
       t0 (its open plus the latency).  Absolute deadlines: no drift. */
    double deadline = p->t0_ns;
    if (s->rate != 0 && s->burst != 0) {
        /* As from a socket's buffer: a burst's bytes all come when its
           last byte's time comes, and the reads inside it return at once. */
        uint64_t upto = (p->delivered + n + s->burst - 1) / s->burst * s->burst;
        deadline += (double)upto * 1e9 / (double)s->rate;
    } else if (s->rate != 0) {
        deadline += (double)(p->delivered + n) * 1e9 / (double)s->rate;
    }
    if (part_wait_until(p, deadline) != 0)
        return -ECANCELED;
    return (ssize_t)n;
}

static void part_fill(seek_part *p, void *buf, size_t n)
{
    pat_fill(buf, n, p->pos + (uint64_t)p->version * SEEK_VERSION_SHIFT);
    p->pos += n;
    atomic_fetch_add(&p->delivered, n);
    atomic_fetch_add(&p->s->delivered, n);
}

static ssize_t part_read(void *ctx, void *buf, size_t cap)
{
    seek_part *p = ctx;
    ssize_t n = part_next_len(p, cap);
    if (n > 0)
        part_fill(p, buf, (size_t)n);
    return n;
}

static int part_next(void *ctx, const void **chunk, size_t *len)
{
    seek_part *p = ctx;
    /* An iterator has no cap: what a read would be asked for. */
    ssize_t n = part_next_len(p, 64 * 1024);
    if (n <= 0)
        return (int)n;
    if ((size_t)n > p->scratch_cap) {
        unsigned char *b = realloc(p->scratch, (size_t)n);
        if (b == NULL)
            return -ENOMEM;
        p->scratch = b;
        p->scratch_cap = (size_t)n;
    }
    part_fill(p, p->scratch, (size_t)n);
    /* Overwritten on the next call: a library that kept it would read
       other bytes. */
    *chunk = p->scratch;
    *len = (size_t)n;
    return 1;
}

static void part_cancel(void *ctx)
{
    seek_part *p = ctx;
    seek_src *s = p->s;
    if (atomic_load(&p->closes) > 0)
        violation(s, "a part's cancel after its close", p);
    if (atomic_fetch_add(&p->cancels, 1) > 0)
        violation(s, "a part cancelled twice", p);
    pthread_mutex_lock(&s->mu);
    atomic_store(&p->cancelled, 1);
    if (p->is_first)
        s->first_cancels++;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void part_close(void *ctx)
{
    seek_part *p = ctx;
    seek_src *s = p->s;
    if (getenv("SEEK_DEBUG") != NULL)
        fprintf(stderr, "seek: close part [%llu, %llu) end %llu%s\n",
                (unsigned long long)p->start,
                (unsigned long long)(p->start + atomic_load(&p->delivered)),
                (unsigned long long)p->end,
                atomic_load(&p->cancelled) ? " cancelled" : "");
    if (atomic_fetch_add(&p->closes, 1) > 0)
        violation(s, "a part closed twice", p);
    pthread_mutex_lock(&s->mu);
    if (p->is_first)
        s->first_closed++;
    else
        s->closed++;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* A new stream at off, recorded; NULL when out of memory.  Under mu. */
static seek_part *part_new(seek_src *s, uint64_t off, uint64_t end,
                           int version, int is_first)
{
    if (s->nparts == s->cap_parts) {
        size_t cap = s->cap_parts ? 2 * s->cap_parts : 64;
        seek_part **a = realloc(s->parts, cap * sizeof *a);
        if (a == NULL)
            return NULL;
        s->parts = a;
        s->cap_parts = cap;
    }
    seek_part *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->s = s;
    p->start = p->pos = off;
    p->end = end;
    p->version = version;
    p->is_first = is_first;
    p->t0_ns = mono_ns() + (double)s->latency_us * 1e3;
    s->parts[s->nparts++] = p;
    return p;
}

static int seek_open_at(void *ctx, uint64_t off, uint64_t end,
                        sb_source *part, uint64_t *length)
{
    seek_src *s = ctx;
    pthread_mutex_lock(&s->mu);
    if (s->first_closed > 0)
        violation(s, "open_at after the source's close", NULL);
    int k = s->opens++;
    if ((size_t)k == s->cap_opens) {
        size_t cap = s->cap_opens ? 2 * s->cap_opens : 256;
        uint64_t *o = realloc(s->offs, cap * sizeof *o);
        uint64_t *e = o ? realloc(s->ends, cap * sizeof *e) : NULL;
        if (o != NULL)
            s->offs = o;
        if (e == NULL) {
            s->opens--;
            pthread_mutex_unlock(&s->mu);
            return -ENOMEM;
        }
        s->ends = e;
        s->cap_opens = cap;
    }
    s->offs[k] = off;
    s->ends[k] = end;
    int rc = 0;
    int failing = k - s->open_fail_skip; /* this call's index among those
                                            that may fail */
    if (s->no_seek)
        rc = -ESPIPE;
    else if (s->open_err != 0 && failing >= 0 &&
             (s->open_fails < 0 || failing < s->open_fails))
        rc = -s->open_err;
    seek_part *p = NULL;
    if (rc == 0) {
        int version = s->change_after >= 0 && s->opens_ok >= s->change_after;
        p = part_new(s, off, end, version, 0);
        if (p == NULL)
            rc = -ENOMEM;
    }
    if (rc == 0) {
        s->opens_ok++;
        p->thread = pthread_self();
        p->have_thread = 1;
        atomic_store(&p->tid, (int)syscall(SYS_gettid));
        if (s->iter)
            part->next = part_next;
        else
            part->read = part_read;
        part->cancel = part_cancel;
        part->close = part_close;
        part->ctx = p;
        if (s->report_len)
            *length = s->len;
    }
    if (getenv("SEEK_DEBUG") != NULL)
        fprintf(stderr, "seek: open_at(%llu, %llu) = %d\n",
                (unsigned long long)off, (unsigned long long)end, rc);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* The first stream: a part at 0 made at sb_open, version 0. */
static seek_part *first_part(seek_src *s)
{
    pthread_mutex_lock(&s->mu);
    seek_part *p = s->nparts > 0 && s->parts[0]->is_first ? s->parts[0]
                                                            : NULL;
    pthread_mutex_unlock(&s->mu);
    return p;
}

/* A call of the first stream after the source's done is a broken rule. */
static void check_not_done(seek_src *s)
{
    if (atomic_load(&s->first_done) > 0)
        violation(s, "read or next of the first stream after done", NULL);
}

static ssize_t first_read(void *ctx, void *buf, size_t cap)
{
    check_not_done(ctx);
    ssize_t r = part_read(first_part(ctx), buf, cap);
    if (r <= 0)
        atomic_store(&((seek_src *)ctx)->first_ended, 1);
    return r;
}

static int first_next(void *ctx, const void **chunk, size_t *len)
{
    check_not_done(ctx);
    int r = part_next(first_part(ctx), chunk, len);
    if (r <= 0)
        atomic_store(&((seek_src *)ctx)->first_ended, 1);
    return r;
}

static void first_done(void *ctx)
{
    seek_src *s = ctx;
    if (atomic_load(&s->first_ended))
        violation(s, "done after the first stream returned 0 or an error", NULL);
    pthread_mutex_lock(&s->mu);
    if (s->first_closed > 0)
        violation(s, "done after the source's close", NULL);
    pthread_mutex_unlock(&s->mu);
    if (atomic_fetch_add(&s->first_done, 1) > 0)
        violation(s, "done called twice", NULL);
}

static void first_cancel(void *ctx)
{
    seek_part *p = first_part(ctx);
    if (p != NULL)
        part_cancel(p);
}

static void first_close(void *ctx)
{
    seek_src *s = ctx;
    seek_part *p = first_part(s);
    if (p != NULL) {
        part_close(p);
    } else {
        pthread_mutex_lock(&s->mu);
        s->first_closed++;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
    }
}

sb_source seek_source(seek_src *s)
{
    sb_source src = {.open_at = seek_open_at,
                     .cancel = first_cancel,
                     .close = first_close,
                     .ctx = s};
    if (s->first != SEEK_FIRST_NONE) {
        pthread_mutex_lock(&s->mu);
        if (s->nparts == 0) {
            seek_part *p = part_new(s, 0, UINT64_MAX, 0, 1);
            if (p == NULL)
                fail_msg("seek: out of memory");
            p->have_thread = 0; /* set by its first call */
        }
        pthread_mutex_unlock(&s->mu);
        if (s->first == SEEK_FIRST_READ)
            src.read = first_read;
        else
            src.next = first_next;
        src.done = first_done;
    }
    return src;
}

sb_buffer *open_seek(seek_src *s, const sb_options *o)
{
    sb_source src = seek_source(s);
    return fx_buffer(sb_open(&src, o));
}

void seek_gate(seek_src *s, uint64_t lo, uint64_t hi)
{
    pthread_mutex_lock(&s->mu);
    if (s->ngates == SEEK_GATES)
        fail_msg("seek: more than %d gate ranges", SEEK_GATES);
    s->gate_lo[s->ngates] = lo;
    s->gate_hi[s->ngates] = hi;
    s->ngates++;
    s->gated = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void seek_release(seek_src *s)
{
    pthread_mutex_lock(&s->mu);
    s->gated = 0;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void seek_unblock(void *p)
{
    seek_release(p);
}

static void seek_destroy(void *arg)
{
    seek_src *s = arg;
    for (size_t i = 0; i < s->nparts; i++) {
        free(s->parts[i]->scratch);
        free(s->parts[i]);
    }
    free(s->parts);
    free(s->offs);
    free(s->ends);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
}

seek_src *fx_seek(uint64_t len)
{
    seek_src *s = fx_calloc(sizeof *s);
    s->len = s->data_len = len;
    s->report_len = 1;
    s->change_after = -1;
    /* By hand, to tell one failure from another: every part ignores its
       end (as a server that ignores Range's last byte). */
    s->ignore_end = getenv("SEEK_IGNORE_END") != NULL;
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    fx_track(s, seek_unblock, seek_destroy);
    return s;
}

/* ---- events ---------------------------------------------------------------------- */

/* Wait under mu until pred(s, a, b) or timeout_ms: 1, or 0 on timeout. */
static int seek_wait(seek_src *s, int (*pred)(seek_src *, uint64_t, uint64_t),
                     uint64_t a, uint64_t b, int timeout_ms)
{
    double deadline = mono_ns() + (double)timeout_ms * 1e6;
    pthread_mutex_lock(&s->mu);
    int ok;
    while (!(ok = pred(s, a, b)) && mono_ns() < deadline) {
        struct timespec ts = ts_of_ns(deadline);
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    pthread_mutex_unlock(&s->mu);
    return ok;
}

static int have_opens(seek_src *s, uint64_t n, uint64_t unused)
{
    (void)unused;
    return (uint64_t)s->opens >= n;
}

static int have_closed(seek_src *s, uint64_t n, uint64_t unused)
{
    (void)unused;
    return (uint64_t)s->closed >= n;
}

static int have_blocked(seek_src *s, uint64_t n, uint64_t unused)
{
    (void)unused;
    return (uint64_t)s->blocked >= n;
}

static int have_open_in(seek_src *s, uint64_t lo, uint64_t hi)
{
    for (size_t i = 0; i < s->nparts; i++)
        if (!s->parts[i]->is_first && s->parts[i]->start >= lo &&
            s->parts[i]->start <= hi)
            return 1;
    return 0;
}

int seek_wait_opens(seek_src *s, int n, int timeout_ms)
{
    return seek_wait(s, have_opens, (uint64_t)n, 0, timeout_ms);
}

int seek_wait_closed(seek_src *s, int n, int timeout_ms)
{
    return seek_wait(s, have_closed, (uint64_t)n, 0, timeout_ms);
}

int seek_wait_blocked(seek_src *s, int n, int timeout_ms)
{
    return seek_wait(s, have_blocked, (uint64_t)n, 0, timeout_ms);
}

int seek_wait_open_in(seek_src *s, uint64_t lo, uint64_t hi, int timeout_ms)
{
    return seek_wait(s, have_open_in, lo, hi, timeout_ms);
}

int seek_opens(seek_src *s)
{
    pthread_mutex_lock(&s->mu);
    int n = s->opens;
    pthread_mutex_unlock(&s->mu);
    return n;
}

int seek_opens_ok(seek_src *s)
{
    pthread_mutex_lock(&s->mu);
    int n = s->opens_ok;
    pthread_mutex_unlock(&s->mu);
    return n;
}

int seek_closed(seek_src *s)
{
    pthread_mutex_lock(&s->mu);
    int n = s->closed;
    pthread_mutex_unlock(&s->mu);
    return n;
}

int seek_opens_in(seek_src *s, uint64_t lo, uint64_t hi)
{
    pthread_mutex_lock(&s->mu);
    int n = 0;
    for (int i = 0; i < s->opens; i++)
        n += s->offs[i] >= lo && s->offs[i] <= hi;
    pthread_mutex_unlock(&s->mu);
    return n;
}

int seek_open_now(seek_src *s)
{
    pthread_mutex_lock(&s->mu);
    int n = s->opens_ok - s->closed;
    pthread_mutex_unlock(&s->mu);
    return n;
}

uint64_t seek_delivered_in(seek_src *s, uint64_t lo, uint64_t hi)
{
    pthread_mutex_lock(&s->mu);
    uint64_t n = 0;
    for (size_t i = 0; i < s->nparts; i++) {
        uint64_t a = s->parts[i]->start,
                 e = a + atomic_load(&s->parts[i]->delivered);
        if (a < lo)
            a = lo;
        if (e > hi)
            e = hi;
        if (e > a)
            n += e - a;
    }
    pthread_mutex_unlock(&s->mu);
    return n;
}

uint64_t seek_lowest_open(seek_src *s)
{
    pthread_mutex_lock(&s->mu);
    uint64_t lo = UINT64_MAX;
    for (int i = 0; i < s->opens; i++)
        if (s->offs[i] < lo)
            lo = s->offs[i];
    pthread_mutex_unlock(&s->mu);
    return lo;
}

int seek_thread_id(seek_src *s, int first, uint64_t start)
{
    int tid = 0;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->nparts && tid == 0; i++) {
        seek_part *p = s->parts[i];
        if (first ? p->is_first : !p->is_first && p->start == start)
            tid = atomic_load(&p->tid);
    }
    pthread_mutex_unlock(&s->mu);
    return tid;
}

int seek_check(seek_src *s, int all_closed)
{
    int bad = atomic_load(&s->violations) != 0;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->nparts; i++) {
        const seek_part *p = s->parts[i];
        int closes = atomic_load(&p->closes), cancels = atomic_load(&p->cancels);
        if (cancels > 1 || closes > 1 || (all_closed && closes != 1)) {
            fprintf(stderr,
                    "seek: part %zu at %llu%s: %d cancels, %d closes\n", i,
                    (unsigned long long)p->start,
                    p->is_first ? " (the first stream)" : "", cancels, closes);
            bad = 1;
        }
    }
    if (all_closed && s->first != SEEK_FIRST_NONE && s->first_closed != 1) {
        fprintf(stderr, "seek: the source closed %d times\n", s->first_closed);
        bad = 1;
    }
    pthread_mutex_unlock(&s->mu);
    return bad ? -1 : 0;
}

/* ---- the run list ---------------------------------------------------------------- */

static int held(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; *p != '\0';) {
        while (*p == ' ')
            p++;
        size_t k = strcspn(p, " ");
        if (k == n && strncmp(p, name, n) == 0)
            return 1;
        p += k;
    }
    return 0;
}

int seek_run_tests(const char *group, struct CMUnitTest *tests, size_t n)
{
    /* By hand only: SB_ONLY names the tests to run (a debugging aid; the
       Makefile never sets it, and it says what it leaves out). */
    const char *only = getenv("SB_ONLY");
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (only != NULL && *only != '\0' && !held(only, tests[i].name)) {
            fprintf(stderr, "%s: not run (SB_ONLY): %s\n", group,
                    tests[i].name);
            continue;
        }
        tests[k++] = tests[i];
    }
    return _cmocka_run_group_tests(group, tests, k, NULL, NULL);
}
