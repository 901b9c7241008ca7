/* SPDX-License-Identifier: MIT */
/*
 * util.c - helpers shared by the cases: errors, time, bytes, temp files,
 * the memory source, the plain spool baseline, threads, statistics.
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* ---- errors and time --------------------------------------------------------- */

static NORETURN void vwarn_exit(int err, const char *fmt, va_list ap)
{
    fflush(stdout);
    fputs("sbbench: ", stderr);
    vfprintf(stderr, fmt, ap);
    if (err != 0)
        fprintf(stderr, ": %s", strerror(err));
    fputc('\n', stderr);
    exit(2);
}

void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vwarn_exit(0, fmt, ap);
}

void die_errno(const char *fmt, ...)
{
    int err = errno;
    va_list ap;
    va_start(ap, fmt);
    vwarn_exit(err, fmt, ap);
}

double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

void sleep_us(long us)
{
    struct timespec t = { us / 1000000, (us % 1000000) * 1000 };
    while (nanosleep(&t, &t) != 0 && errno == EINTR)
        ;
}

/* ---- bytes --------------------------------------------------------------------- */

uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void fill_random(void *buf, size_t n, uint64_t seed)
{
    unsigned char *p = buf;
    uint64_t st = seed;
    size_t i = 0;

    for (; i + 8 <= n; i += 8) {
        uint64_t v = splitmix64(&st);
        memcpy(p + i, &v, 8);
    }
    if (i < n) {
        uint64_t v = splitmix64(&st);
        memcpy(p + i, &v, n - i);
    }
}

static unsigned char *g_stream;
static size_t g_stream_len;

const unsigned char *stream_bytes(void)
{
    if (g_stream == NULL) {
        g_stream_len = opt.size;
        g_stream = map_fresh(g_stream_len);
        fill_random(g_stream, g_stream_len, 0x5eed);
    }
    return g_stream;
}

void stream_bytes_free(void)
{
    if (g_stream != NULL)
        unmap(g_stream, g_stream_len);
    g_stream = NULL;
}

#define HUGE_PAGE ((size_t)2 << 20)

static void *map_pages(size_t n, bool huge)
{
    size_t len = n ? n : 1;
    size_t extra = huge ? HUGE_PAGE : 0;
    unsigned char *p = mmap(NULL, len + extra, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        die_errno("mmap %zu bytes", n);
    if (huge) {
        /* A huge page backs only a whole aligned 2 MiB: align the start
           and give back both ends. */
        uintptr_t at = ((uintptr_t)p + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
        size_t head = (size_t)(at - (uintptr_t)p);
        if (head > 0)
            munmap(p, head);
        if (extra - head > 0)
            munmap(p + head + len, extra - head);
        p += head;
    }
    /* Advice only: a kernel without THP keeps small pages (EINVAL). */
    (void)madvise(p, len, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
    return p;
}

void *map_fresh(size_t n)
{
    return map_pages(n, true);
}

void *map_fresh_small(size_t n)
{
    return map_pages(n, false);
}

const char *thp_mode(void)
{
    static char mode[16];
    char line[128];
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    snprintf(mode, sizeof mode, "never");
    if (f == NULL)
        return mode;
    if (fgets(line, sizeof line, f) != NULL) {
        char *a = strchr(line, '['), *z = a != NULL ? strchr(a, ']') : NULL;
        if (z != NULL && (size_t)(z - a - 1) < sizeof mode)
            snprintf(mode, sizeof mode, "%.*s", (int)(z - a - 1), a + 1);
    }
    fclose(f);
    return mode;
}

long minor_faults(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        die_errno("getrusage");
    return ru.ru_minflt;
}

void unmap(void *p, size_t n)
{
    if (p != NULL)
        munmap(p, n ? n : 1);
}

void touch_read(const void *p, size_t n)
{
    const volatile unsigned char *c = p;
    unsigned char sum = 0;
    for (size_t i = 0; i < n; i += 4096)
        sum = (unsigned char)(sum + c[i]);
    CLOBBER(&sum);
}

/* ---- files --------------------------------------------------------------------- */

int tmp_file(void)
{
    int fd = open(opt.tmp_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0)
        return fd;

    char path[4096];
    snprintf(path, sizeof path, "%s/sbbench-XXXXXX", opt.tmp_dir);
    fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0)
        die_errno("temp file in %s", opt.tmp_dir);
    if (unlink(path) != 0)
        die_errno("unlink %s", path);
    return fd;
}

void pwrite_all(int fd, const void *buf, size_t n, uint64_t off)
{
    const unsigned char *p = buf;
    while (n > 0) {
        ssize_t w = pwrite(fd, p, n, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            die_errno("pwrite");
        p += w;
        off += (uint64_t)w;
        n -= (size_t)w;
    }
}

void pread_all(int fd, void *buf, size_t n, uint64_t off)
{
    unsigned char *p = buf;
    while (n > 0) {
        ssize_t r = pread(fd, p, n, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            die_errno("pread");
        if (r == 0)
            die("pread: unexpected end of file");
        p += r;
        off += (uint64_t)r;
        n -= (size_t)r;
    }
}

const char *fmt_size(size_t n, char *out, size_t cap)
{
    static const char *unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
    int u = 0;
    size_t v = n;
    while (u < 4 && v >= 1024 && v % 1024 == 0) {
        v /= 1024;
        u++;
    }
    if (v >= 1024 && u < 4) {
        double d = (double)n;
        u = 0;
        while (u < 4 && d >= 1024) {
            d /= 1024;
            u++;
        }
        snprintf(out, cap, "%.1f %s", d, unit[u]);
    } else {
        snprintf(out, cap, "%zu %s", v, unit[u]);
    }
    return out;
}

/* ---- the memory source --------------------------------------------------------- */

ssize_t mem_src_read(void *ctx, void *buf, size_t cap)
{
    struct mem_src *ms = ctx;
    size_t n = ms->len - ms->pos;
    if (n > cap)
        n = cap;
    memcpy(buf, ms->data + ms->pos, n);
    ms->pos += n;
    return (ssize_t)n;
}

sb_buffer *open_mem_stream(struct mem_src *ms, const unsigned char *data, size_t len,
                    size_t mem_limit)
{
    *ms = (struct mem_src){ .data = data, .len = len };
    sb_source src = { .read = mem_src_read, .ctx = ms };
    sb_options o = { .mem_limit = mem_limit, .tmp_dir = opt.tmp_dir };
    sb_buffer *b = sb_open(&src, &o);
    if (b == NULL)
        die_errno("sb_open");
    return b;
}

sb_buffer *open_filled(struct mem_src *ms, const unsigned char *data, size_t len,
                size_t mem_limit)
{
    sb_buffer *b = open_mem_stream(ms, data, len, mem_limit);
    uint64_t total;
    if (sb_wait_end(b, &total) != 0)
        die_errno("sb_wait_end");
    if (total != len)
        die("stream length %llu, expected %zu", (unsigned long long)total, len);
    return b;
}

/* ---- the plain spool --------------------------------------------------------------- */

void plain_open(struct plain *p, size_t mem_cap)
{
    p->mem = mem_cap > 0 ? map_fresh(mem_cap) : NULL;
    p->mem_cap = mem_cap;
    p->fd = -1;
}

void plain_open_small(struct plain *p, size_t mem_cap)
{
    p->mem = mem_cap > 0 ? map_fresh_small(mem_cap) : NULL;
    p->mem_cap = mem_cap;
    p->fd = -1;
}

void plain_write(struct plain *p, uint64_t off, const void *data, size_t n)
{
    const unsigned char *d = data;
    if (off < p->mem_cap) {
        size_t head = p->mem_cap - (size_t)off;
        if (head > n)
            head = n;
        memcpy(p->mem + off, d, head);
        d += head;
        off += head;
        n -= head;
    }
    if (n == 0)
        return;
    if (p->fd < 0)
        p->fd = tmp_file();
    pwrite_all(p->fd, d, n, off - p->mem_cap);
}

void plain_read(const struct plain *p, void *buf, size_t n, uint64_t off)
{
    unsigned char *b = buf;
    if (off < p->mem_cap) {
        size_t head = p->mem_cap - (size_t)off;
        if (head > n)
            head = n;
        memcpy(b, p->mem + off, head);
        b += head;
        off += head;
        n -= head;
    }
    if (n > 0)
        pread_all(p->fd, b, n, off - p->mem_cap);
}

void plain_close(struct plain *p)
{
    unmap(p->mem, p->mem_cap);
    if (p->fd >= 0)
        close(p->fd);
    p->mem = NULL;
    p->fd = -1;
}

/* ---- threads ------------------------------------------------------------------------ */

struct team_member {
    pthread_t tid;
    team_fn fn;
    void *arg;
    int idx;
    pthread_barrier_t *bar;
    double start, end;
};

static void *team_main(void *p)
{
    struct team_member *m = p;
    pthread_barrier_wait(m->bar);
    m->start = now();
    m->fn(m->arg, m->idx);
    m->end = now();
    return NULL;
}

double team_run(int n, team_fn fn, void *arg)
{
    struct team_member m[MAX_THREADS];
    pthread_barrier_t bar;

    if (n < 1 || n > MAX_THREADS)
        die("team of %d threads", n);
    pthread_barrier_init(&bar, NULL, (unsigned)n);
    for (int i = 0; i < n; i++) {
        m[i] = (struct team_member){ .fn = fn, .arg = arg, .idx = i, .bar = &bar };
        int rc = pthread_create(&m[i].tid, NULL, team_main, &m[i]);
        if (rc != 0) {
            errno = rc;
            die_errno("pthread_create");
        }
    }
    /* The threads stamp their own start and end: with as many threads as
       cores, this thread may not run again until well after the release,
       so its own clock would miss part of the work. */
    double t0 = 0, t1 = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(m[i].tid, NULL);
        if (i == 0 || m[i].start < t0)
            t0 = m[i].start;
        if (i == 0 || m[i].end > t1)
            t1 = m[i].end;
    }
    pthread_barrier_destroy(&bar);
    return t1 - t0;
}

/* ---- statistics ---------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double *sorted_copy(const double *v, int n)
{
    double *s = malloc((size_t)n * sizeof *s);
    if (s == NULL)
        die("out of memory");
    memcpy(s, v, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    return s;
}

double median(const double *v, int n)
{
    if (n <= 0)
        return 0;
    double *s = sorted_copy(v, n);
    double m = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    free(s);
    return m;
}

void print_reps(const char *side, const double *v, double scale,
                const char *unit)
{
    fprintf(stderr, "    %s %s:", side, unit);
    for (int k = 0; k < opt.reps; k++)
        fprintf(stderr, " %.3g", v[k] * scale);
    fprintf(stderr, "\n");
}

double quantile(const double *v, int n, double q)
{
    if (n <= 0)
        return 0;
    double *s = sorted_copy(v, n);
    int k = (int)(q * n + 0.999999) - 1; /* nearest rank: ceil(q n) - 1 */
    if (k < 0)
        k = 0;
    if (k >= n)
        k = n - 1;
    double x = s[k];
    free(s);
    return x;
}
