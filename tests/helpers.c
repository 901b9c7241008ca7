/* SPDX-License-Identifier: MIT */
/*
 * helpers.c - shared test helpers; see helpers.h.
 */
#include "helpers.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- deterministic stream contents --------------------------------------- */

uint8_t gen_byte(uint64_t i)
{
    /* splitmix64 finalizer */
    uint64_t x = i + 0x9E3779B97F4A7C15u;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9u;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBu;
    x ^= x >> 31;
    return (uint8_t)(x & 0xff);
}

void gen_fill(void *buf, size_t n, uint64_t off)
{
    unsigned char *p = buf;
    for (size_t k = 0; k < n; k++)
        p[k] = gen_byte(off + k);
}

size_t gen_mismatches(const void *buf, size_t n, uint64_t off)
{
    const unsigned char *p = buf;
    size_t bad = 0;
    for (size_t k = 0; k < n; k++)
        if (p[k] != gen_byte(off + k))
            bad++;
    return bad;
}

/* ---- time ------------------------------------------------------------------ */

double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

static void sleep_us(unsigned us)
{
    struct timespec ts = {(time_t)(us / 1000000u),
                          (long)(us % 1000000u) * 1000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

static void abs_deadline(struct timespec *ts, int timeout_ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += timeout_ms / 1000;
    ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* ---- chunked read source --------------------------------------------------- */

void chunk_init(chunk_src *s, uint64_t len, const size_t *pattern,
                size_t npattern)
{
    memset(s, 0, sizeof *s);
    s->len = len;
    s->pattern = pattern;
    s->npattern = npattern;
    s->caller = pthread_self();
}

static ssize_t chunk_read(void *ctx, void *buf, size_t cap)
{
    chunk_src *s = ctx;
    if (atomic_fetch_add(&s->in_call, 1) != 0)
        atomic_fetch_add(&s->overlaps, 1);
    atomic_fetch_add(&s->calls, 1);
    if (atomic_load(&s->closes) > 0)
        atomic_fetch_add(&s->calls_after_close, 1);
    pthread_t me = pthread_self();
    if (pthread_equal(me, s->caller))
        atomic_fetch_add(&s->on_caller_thread, 1);
    if (!s->have_producer) {
        s->producer = me;
        s->have_producer = 1;
    } else if (!pthread_equal(me, s->producer)) {
        atomic_fetch_add(&s->thread_changes, 1);
    }
    if (cap > s->max_cap)
        s->max_cap = cap;
    if (s->delay_us)
        sleep_us(s->delay_us);

    ssize_t ret;
    uint64_t end = s->len;
    if (s->fail_err && s->fail_at < end)
        end = s->fail_at;
    if (s->pos >= end) {
        ret = (s->fail_err && s->pos >= s->fail_at) ? -(ssize_t)s->fail_err
                                                    : 0;
    } else {
        size_t want = cap;
        if (s->npattern) {
            want = s->pattern[s->idx % s->npattern];
            s->idx++;
            if (want == 0) /* a read source cannot return an empty chunk */
                want = 1;
            if (want > cap)
                want = cap;
        }
        if ((uint64_t)want > end - s->pos)
            want = (size_t)(end - s->pos);
        gen_fill(buf, want, s->pos);
        s->pos += want;
        ret = (ssize_t)want;
    }
    atomic_fetch_sub(&s->in_call, 1);
    return ret;
}

static void chunk_close(void *ctx)
{
    chunk_src *s = ctx;
    if (atomic_load(&s->in_call))
        atomic_fetch_add(&s->close_during_call, 1);
    s->close_thread = pthread_self();
    atomic_fetch_add(&s->closes, 1);
}

sb_source chunk_source(chunk_src *s)
{
    sb_source src = {.read = chunk_read, .close = chunk_close, .ctx = s};
    return src;
}

/* ---- iterator source -------------------------------------------------------- */

int iter_init(iter_src *s, uint64_t len, const size_t *pattern,
              size_t npattern)
{
    memset(s, 0, sizeof *s);
    s->len = len;
    s->pattern = pattern;
    s->npattern = npattern;
    size_t cap = npattern ? 1 : 4096;
    for (size_t i = 0; i < npattern; i++)
        if (pattern[i] > cap)
            cap = pattern[i];
    s->scratch_cap = cap;
    s->scratch = malloc(cap);
    return s->scratch ? 0 : -1;
}

void iter_destroy(iter_src *s)
{
    free(s->scratch);
    s->scratch = NULL;
}

static int iter_next(void *ctx, const void **chunk, size_t *len)
{
    iter_src *s = ctx;
    atomic_fetch_add(&s->calls, 1);
    /* Poison the previous chunk: it is only valid until this call. */
    memset(s->scratch, 0xEE, s->scratch_cap);

    /* Empty chunks come from the pattern, even at the end of the stream. */
    size_t want = s->npattern ? s->pattern[s->idx++ % s->npattern]
                              : s->scratch_cap;
    if (want == 0) {
        *chunk = s->null_empty ? NULL : (const void *)s->scratch;
        *len = 0;
        return 1;
    }
    uint64_t end = s->len;
    if (s->fail_err && s->fail_at < end)
        end = s->fail_at;
    if (s->pos >= end) {
        if (s->fail_err && s->pos >= s->fail_at) {
            if (s->null_chunk) {
                *chunk = NULL;
                *len = 16;
                return 1;
            }
            return -s->fail_err;
        }
        return 0;
    }
    if ((uint64_t)want > end - s->pos)
        want = (size_t)(end - s->pos);
    gen_fill(s->scratch, want, s->pos);
    s->pos += want;
    *chunk = s->scratch;
    *len = want;
    return 1;
}

static void iter_close(void *ctx)
{
    iter_src *s = ctx;
    atomic_fetch_add(&s->closes, 1);
}

sb_source iter_source(iter_src *s)
{
    sb_source src = {.next = iter_next, .close = iter_close, .ctx = s};
    return src;
}

/* ---- gated source ----------------------------------------------------------- */

static void turn_init(turnstile *t)
{
    memset(t, 0, sizeof *t);
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
}

static void turn_destroy(turnstile *t)
{
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
}

/* With mu held: say the producer is blocked, and wait for news. */
static void turn_block_locked(turnstile *t)
{
    t->blocked = 1;
    pthread_cond_broadcast(&t->cv);
    pthread_cond_wait(&t->cv, &t->mu);
}

/* Set *field (guarded by t->mu) and wake the producer. */
static void turn_set(turnstile *t, int *field, int value)
{
    pthread_mutex_lock(&t->mu);
    *field = value;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

static void turn_allow(turnstile *t, uint64_t upto)
{
    pthread_mutex_lock(&t->mu);
    if (upto > t->allowed)
        t->allowed = upto;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

static void turn_advance(turnstile *t, uint64_t n)
{
    pthread_mutex_lock(&t->mu);
    t->pos += n;
    pthread_mutex_unlock(&t->mu);
}

static int turn_wait_blocked(turnstile *t, int timeout_ms)
{
    struct timespec dl;
    abs_deadline(&dl, timeout_ms);
    int ok = 1;
    pthread_mutex_lock(&t->mu);
    while (!(t->blocked && t->pos >= t->allowed)) {
        if (pthread_cond_timedwait(&t->cv, &t->mu, &dl) == ETIMEDOUT) {
            ok = t->blocked && t->pos >= t->allowed;
            break;
        }
    }
    pthread_mutex_unlock(&t->mu);
    return ok;
}

void gate_init(gate_src *g)
{
    memset(g, 0, sizeof *g);
    turn_init(&g->t);
}

void gate_destroy(gate_src *g)
{
    turn_destroy(&g->t);
}

static ssize_t gate_read(void *ctx, void *buf, size_t cap)
{
    gate_src *g = ctx;
    turnstile *t = &g->t;
    ssize_t ret;
    pthread_mutex_lock(&t->mu);
    while (t->pos >= t->allowed && !g->ended && !g->err)
        turn_block_locked(t);
    t->blocked = 0;
    if (t->pos < t->allowed) {
        uint64_t left = t->allowed - t->pos;
        size_t n = (uint64_t)cap < left ? cap : (size_t)left;
        gen_fill(buf, n, t->pos);
        t->pos += n;
        ret = (ssize_t)n;
    } else if (g->err) {
        ret = -(ssize_t)g->err;
    } else {
        ret = 0;
    }
    pthread_mutex_unlock(&t->mu);
    return ret;
}

static void gate_close(void *ctx)
{
    gate_src *g = ctx;
    atomic_fetch_add(&g->closes, 1);
}

sb_source gate_source(gate_src *g)
{
    sb_source src = {.read = gate_read, .close = gate_close, .ctx = g};
    return src;
}

void gate_allow(gate_src *g, uint64_t upto)
{
    turn_allow(&g->t, upto);
}

void gate_end(gate_src *g)
{
    turn_set(&g->t, &g->ended, 1);
}

void gate_fail(gate_src *g, int err)
{
    turn_set(&g->t, &g->err, err);
}

int gate_wait_blocked(gate_src *g, int timeout_ms)
{
    return turn_wait_blocked(&g->t, timeout_ms);
}

static void *noop_thread_main(void *arg)
{
    return arg;
}

void start_runtime_threads(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, noop_thread_main, NULL) == 0)
        pthread_join(t, NULL);
    sleep_ms(10);
}

sb_buffer *open_chunk(chunk_src *s, const sb_options *o)
{
    sb_source src = chunk_source(s);
    return sb_open(&src, o);
}

sb_buffer *open_iter(iter_src *s, const sb_options *o)
{
    sb_source src = iter_source(s);
    return sb_open(&src, o);
}

sb_buffer *open_gate(gate_src *g, const sb_options *o)
{
    sb_source src = gate_source(g);
    return sb_open(&src, o);
}

int poll_until(int (*ready)(void *arg), void *arg, int timeout_ms)
{
    double end = now_ms() + timeout_ms;
    while (!ready(arg)) {
        if (now_ms() > end)
            return ready(arg);
        sleep_ms(1);
    }
    return 1;
}

struct count_arg {
    atomic_int *v;
    int n;
};

static int count_ready(void *arg)
{
    struct count_arg *c = arg;
    return atomic_load(c->v) >= c->n;
}

int wait_count(atomic_int *v, int n, int timeout_ms)
{
    struct count_arg c = {v, n};
    return poll_until(count_ready, &c, timeout_ms);
}

struct avail_arg {
    sb_buffer *b;
    uint64_t n;
};

static int avail_ready(void *arg)
{
    struct avail_arg *a = arg;
    return sb_available(a->b) >= a->n;
}

int wait_available(sb_buffer *b, uint64_t n, int timeout_ms)
{
    struct avail_arg a = {b, n};
    return poll_until(avail_ready, &a, timeout_ms);
}

/* ---- checks --------------------------------------------------------------- */

int check_read(sb_buffer *b, uint64_t off, size_t n, ssize_t want)
{
    unsigned char *buf = malloc(n ? n : 1);
    if (buf == NULL)
        return -1;
    errno = 0;
    ssize_t got = sb_pread(b, buf, n, off);
    int err = errno;
    int rc = 0;
    if (got != want) {
        fprintf(stderr, "sb_pread(off=%llu, n=%zu) = %zd (errno %d %s), "
                        "expected %zd\n",
                (unsigned long long)off, n, got, err, strerror(err), want);
        rc = -1;
    } else if (got > 0) {
        size_t bad = gen_mismatches(buf, (size_t)got, off);
        if (bad) {
            fprintf(stderr, "sb_pread(off=%llu, n=%zu): %zu wrong bytes\n",
                    (unsigned long long)off, n, bad);
            rc = -1;
        }
    }
    free(buf);
    return rc;
}

int check_read_err(sb_buffer *b, uint64_t off, size_t n, int err)
{
    unsigned char *buf = malloc(n ? n : 1);
    if (buf == NULL)
        return -1;
    errno = 0;
    ssize_t got = sb_pread(b, buf, n, off);
    int e = errno;
    free(buf);
    if (got != -1 || e != err) {
        fprintf(stderr, "sb_pread(off=%llu, n=%zu) = %zd (errno %d %s), "
                        "expected -1 with errno %d %s\n",
                (unsigned long long)off, n, got, e, strerror(e), err,
                strerror(err));
        return -1;
    }
    return 0;
}

int check_stream(sb_buffer *b, uint64_t len)
{
    uint64_t got_len = UINT64_MAX;
    errno = 0;
    if (sb_wait_end(b, &got_len) != 0 || got_len != len) {
        fprintf(stderr, "sb_wait_end: errno %d %s, length %llu, "
                        "expected 0 and %llu\n",
                errno, strerror(errno), (unsigned long long)got_len,
                (unsigned long long)len);
        return -1;
    }
    if (sb_available(b) != len) {
        fprintf(stderr, "sb_available = %llu, expected %llu\n",
                (unsigned long long)sb_available(b), (unsigned long long)len);
        return -1;
    }
    /* In one call, asking for more than there is: a short count. */
    if (check_read(b, 0, (size_t)len + 17, (ssize_t)len) != 0)
        return -1;
    /* Piecewise, in pieces that do not line up with anything. */
    const size_t piece = 4093;
    for (uint64_t off = 0; off < len; off += piece) {
        size_t want = len - off < piece ? (size_t)(len - off) : piece;
        if (check_read(b, off, piece, (ssize_t)want) != 0)
            return -1;
    }
    if (check_read(b, len, 1, 0) != 0 || check_read(b, len + 4096, 10, 0))
        return -1;
    return 0;
}

/* ---- reader threads ----------------------------------------------------------- */

#define SENTINEL 0xA5

static void *reader_main(void *arg)
{
    reader *r = arg;
    double t0 = now_ms();
    errno = 0;
    switch (r->kind) {
    case RD_PREAD:
        r->ret = sb_pread(r->b, r->buf, r->n, r->off);
        break;
    case RD_TIMED:
        r->ret = sb_pread_timed(r->b, r->buf, r->n, r->off, r->timeout_ms);
        break;
    case RD_WAIT_END:
        r->ret = sb_wait_end(r->b, &r->length);
        break;
    default:
        r->ret = sb_wait_end(r->b, NULL);
        break;
    }
    r->err = r->ret == -1 ? errno : 0;
    r->elapsed_ms = now_ms() - t0;
    if (r->kind == RD_PREAD || r->kind == RD_TIMED) {
        if (r->ret > 0 && (size_t)r->ret <= r->n)
            r->bad = gen_mismatches(r->buf, (size_t)r->ret, r->off);
        r->untouched = 1;
        for (size_t k = 0; k < r->n; k++)
            if (r->buf[k] != SENTINEL) {
                r->untouched = 0;
                break;
            }
    }
    pthread_mutex_lock(&r->mu);
    r->done = 1;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

int reader_start(reader *r, sb_buffer *b, int kind, uint64_t off, size_t n,
                 int timeout_ms)
{
    memset(r, 0, sizeof *r);
    r->b = b;
    r->kind = kind;
    r->off = off;
    r->n = n;
    r->timeout_ms = timeout_ms;
    r->length = UINT64_MAX;
    r->buf = malloc(n ? n : 1);
    if (r->buf == NULL)
        return -1;
    memset(r->buf, SENTINEL, n ? n : 1);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    if (pthread_create(&r->th, NULL, reader_main, r) != 0) {
        free(r->buf);
        r->buf = NULL;
        return -1;
    }
    r->started = 1;
    return 0;
}

int reader_done(reader *r)
{
    pthread_mutex_lock(&r->mu);
    int d = r->done;
    pthread_mutex_unlock(&r->mu);
    return d;
}

int reader_wait(reader *r, int timeout_ms)
{
    struct timespec dl;
    abs_deadline(&dl, timeout_ms);
    pthread_mutex_lock(&r->mu);
    while (!r->done)
        if (pthread_cond_timedwait(&r->cv, &r->mu, &dl) == ETIMEDOUT)
            break;
    int d = r->done;
    pthread_mutex_unlock(&r->mu);
    return d;
}

void reader_join(reader *r)
{
    if (!r->started)
        return;
    pthread_join(r->th, NULL);
    r->started = 0;
    free(r->buf);
    r->buf = NULL;
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
}

/* ---- a function on a background thread --------------------------------------- */

static void *bg_main(void *arg)
{
    bg_call *c = arg;
    c->fn(c->arg);
    pthread_mutex_lock(&c->mu);
    c->done = 1;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

int bg_start(bg_call *c, void (*fn)(void *), void *arg)
{
    memset(c, 0, sizeof *c);
    c->fn = fn;
    c->arg = arg;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    return pthread_create(&c->th, NULL, bg_main, c) == 0 ? 0 : -1;
}

int bg_wait(bg_call *c, int timeout_ms)
{
    struct timespec dl;
    abs_deadline(&dl, timeout_ms);
    pthread_mutex_lock(&c->mu);
    while (!c->done)
        if (pthread_cond_timedwait(&c->cv, &c->mu, &dl) == ETIMEDOUT)
            break;
    int d = c->done;
    pthread_mutex_unlock(&c->mu);
    return d;
}

void bg_join(bg_call *c)
{
    if (c->joined)
        return;
    c->joined = 1;
    pthread_join(c->th, NULL);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
}

/* ---- a writer thread feeding a pipe ------------------------------------------- */

static void *writer_main(void *arg)
{
    pipe_writer *w = arg;
    unsigned char *buf = malloc(w->chunk);
    int pieces = 0;
    if (buf == NULL)
        w->err = ENOMEM;
    while (buf && w->written < w->len) {
        if (atomic_load(&w->stop)) {
            w->err = ECANCELED;
            break;
        }
        size_t n = w->len - w->written < w->chunk
                       ? (size_t)(w->len - w->written)
                       : w->chunk;
        gen_fill(buf, n, w->written);
        size_t done = 0;
        while (done < n) {
            ssize_t r = write(w->fd, buf + done, n - done);
            if (r < 0) {
                if (errno == EINTR)
                    continue;
                if (errno == EAGAIN && !atomic_load(&w->stop)) {
                    struct pollfd p = {.fd = w->fd, .events = POLLOUT};
                    poll(&p, 1, 100);
                    continue;
                }
                w->err = errno == EAGAIN ? ECANCELED : errno;
                break;
            }
            done += (size_t)r;
        }
        w->written += done;
        if (w->err)
            break;
        if (w->pause_every && ++pieces % w->pause_every == 0)
            sleep_ms(w->pause_ms);
    }
    free(buf);
    close(w->fd);
    return NULL;
}

int writer_start(pipe_writer *w, int fd, uint64_t len, size_t chunk,
                 int pause_every, int pause_ms)
{
    memset(w, 0, sizeof *w);
    w->fd = fd;
    w->len = len;
    w->chunk = chunk ? chunk : 1;
    w->pause_every = pause_every;
    w->pause_ms = pause_ms;
    atomic_init(&w->stop, 0);
    if (pthread_create(&w->th, NULL, writer_main, w) != 0) {
        w->joined = 1; /* nothing to join */
        return -1;
    }
    return 0;
}

void writer_join(pipe_writer *w)
{
    if (w->joined)
        return;
    w->joined = 1;
    pthread_join(w->th, NULL);
}

/* ---- process and file system ------------------------------------------------- */

int count_dir_entries(const char *path)
{
    DIR *d = opendir(path);
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

int count_fds(void)
{
    return count_dir_entries("/proc/self/fd");
}

long long rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL)
        return -1;
    long long size = 0, resident = -1;
    if (fscanf(f, "%lld %lld", &size, &resident) != 2)
        resident = -1;
    fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    return resident < 0 ? -1 : resident * (page > 0 ? page : 4096);
}

int count_threads(void)
{
    return count_dir_entries("/proc/self/task");
}

int threads_back_to(int want)
{
    int n = count_threads();
    for (int i = 0; i < 2000 && n != want; i++) {
        sleep_ms(1);
        n = count_threads();
    }
    return n;
}

snapshot snap(void)
{
    snapshot s = {count_fds(), count_threads()};
    return s;
}

int each_fd_into_dir(pid_t pid, const char *dir,
                     void (*fn)(const char *link, void *arg), void *arg)
{
    char fd_dir[64];
    if (pid == 0)
        snprintf(fd_dir, sizeof fd_dir, "/proc/self/fd");
    else
        snprintf(fd_dir, sizeof fd_dir, "/proc/%ld/fd", (long)pid);
    char real[PATH_MAX];
    if (realpath(dir, real) == NULL)
        return -1;
    size_t rl = strlen(real);
    DIR *d = opendir(fd_dir);
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char link[PATH_MAX + 64], target[PATH_MAX];
        snprintf(link, sizeof link, "%s/%s", fd_dir, e->d_name);
        ssize_t tl = readlink(link, target, sizeof target - 1);
        if (tl <= 0)
            continue;
        target[tl] = '\0';
        if ((size_t)tl > rl + 1 && strncmp(target, real, rl) == 0 &&
            target[rl] == '/' && strchr(target + rl + 1, '/') == NULL) {
            n++;
            if (fn != NULL)
                fn(link, arg);
        }
    }
    closedir(d);
    return n;
}

int fds_into_dir(const char *dir)
{
    return each_fd_into_dir(0, dir, NULL, NULL);
}

char *scratch_new(void)
{
    char *dir = strdup("/tmp/sbtest.XXXXXX");
    if (dir == NULL)
        return NULL;
    if (mkdtemp(dir) == NULL) {
        free(dir);
        return NULL;
    }
    return dir;
}

static int rm_entry(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void scratch_free(char *dir)
{
    if (dir == NULL)
        return;
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
    free(dir);
}

/* ---- a hold on any source ------------------------------------------------------ */

void hold_init(hold_src *h, sb_source inner)
{
    memset(h, 0, sizeof *h);
    h->inner = inner;
    turn_init(&h->t);
}

void hold_destroy(hold_src *h)
{
    turn_destroy(&h->t);
}

/* Block until the callback may go on; returns the bytes it may deliver
   (UINT64_MAX once released). */
static uint64_t hold_wait_turn(hold_src *h)
{
    turnstile *t = &h->t;
    pthread_mutex_lock(&t->mu);
    while (!h->released && t->pos >= t->allowed)
        turn_block_locked(t);
    t->blocked = 0;
    uint64_t may = h->released ? UINT64_MAX : t->allowed - t->pos;
    pthread_mutex_unlock(&t->mu);
    return may;
}

static ssize_t hold_read(void *ctx, void *buf, size_t cap)
{
    hold_src *h = ctx;
    atomic_fetch_add(&h->calls, 1);
    uint64_t may = hold_wait_turn(h);
    if (may < cap)
        cap = (size_t)may;
    ssize_t r = h->inner.read(h->inner.ctx, buf, cap);
    if (r > 0)
        turn_advance(&h->t, (uint64_t)r);
    return r;
}

static int hold_next(void *ctx, const void **chunk, size_t *len)
{
    hold_src *h = ctx;
    atomic_fetch_add(&h->calls, 1);
    hold_wait_turn(h);
    int r = h->inner.next(h->inner.ctx, chunk, len);
    if (r == 1)
        turn_advance(&h->t, *len);
    return r;
}

static void hold_close(void *ctx)
{
    hold_src *h = ctx;
    atomic_fetch_add(&h->closes, 1);
    if (h->inner.close != NULL)
        h->inner.close(h->inner.ctx);
}

sb_source hold_source(hold_src *h)
{
    sb_source src = {.close = hold_close, .ctx = h};
    if (h->inner.read != NULL)
        src.read = hold_read;
    else
        src.next = hold_next;
    return src;
}

void hold_allow(hold_src *h, uint64_t upto)
{
    turn_allow(&h->t, upto);
}

void hold_release(hold_src *h)
{
    turn_set(&h->t, &h->released, 1);
}

int hold_wait_blocked(hold_src *h, int timeout_ms)
{
    return turn_wait_blocked(&h->t, timeout_ms);
}

static int waiters_ready(void *arg)
{
    struct avail_arg *a = arg;
    sb_stats st;
    return sb_get_stats(a->b, &st) == 0 && st.waiting >= a->n;
}

int wait_for_waiters(sb_buffer *b, uint64_t n, int timeout_ms)
{
    struct avail_arg a = {b, n};
    return poll_until(waiters_ready, &a, timeout_ms);
}
