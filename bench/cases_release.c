/* SPDX-License-Identifier: MIT */
/*
 * cases_release.c - case 10: following a long stream in bounded space.
 *
 * Four readers follow a stream, each through an sb_reader that releases
 * what it has read (SB_RELEASE, max_retained = --retain, 16 MiB by
 * default), against the plain follow of case 5 (all bytes kept until
 * sb_close) on the same source, interleaved: the price of flow control.
 * Then, in a forked child so that earlier cases do not count, the same over
 * --rss-size bytes (1 GiB by default): its peak RSS against mem-limit +
 * retain + 8 MiB, and the most spill-file space in use at once (sampled)
 * against retain + 2 chunks.
 */
#include "bench.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define READERS 4
#define CHUNK (64 * KiB)
#define READ (256 * KiB)
#define SLACK (8 * MiB)

/* A read source of len bytes: the shared stream bytes, over and over. */
struct cyc_src {
    const unsigned char *data;
    size_t size;
    uint64_t len, pos;
};

static ssize_t cyc_read(void *ctx, void *buf, size_t cap)
{
    struct cyc_src *s = ctx;
    if (s->pos >= s->len)
        return 0;
    size_t at = (size_t)(s->pos % s->size);
    size_t n = cap;
    if (n > s->size - at)
        n = s->size - at;
    if (n > s->len - s->pos)
        n = (size_t)(s->len - s->pos);
    memcpy(buf, s->data + at, n);
    s->pos += n;
    return (ssize_t)n;
}

struct run {
    sb_buffer *b;
    bool release;
    const unsigned char *data;
    size_t size;
    uint64_t len;
    sb_reader *r[READERS];
    unsigned char *dst[READERS];
};

static void follow_body(void *arg, int idx)
{
    struct run *x = arg;
    unsigned char *dst = x->dst[idx];
    uint64_t off = 0;
    for (;;) {
        ssize_t n = x->release ? sb_reader_pread(x->r[idx], dst, READ, off)
                               : sb_pread(x->b, dst, READ, off);
        if (n < 0)
            die_errno("release: read");
        if (n == 0)
            break;
        CLOBBER(dst);
        if (dst[0] != x->data[off % x->size])
            die("release: wrong bytes at %llu", (unsigned long long)off);
        off += (uint64_t)n;
        if (x->release && sb_reader_release(x->r[idx], off) != 0)
            die_errno("sb_reader_release");
    }
    if (off != x->len)
        die("release: a reader read %llu of %llu bytes",
            (unsigned long long)off, (unsigned long long)x->len);
}

/* One stream of len bytes followed by READERS threads; seconds. */
static double follow_once(struct run *x, uint64_t len)
{
    struct cyc_src src = { .data = x->data, .size = x->size, .len = len };
    sb_source s = { .read = cyc_read, .ctx = &src };
    sb_options o = { .mem_limit = opt.mem_limit, .tmp_dir = opt.tmp_dir };
    if (x->release) {
        o.flags = SB_RELEASE;
        o.max_retained = opt.retain;
    }
    x->len = len;
    double t0 = now();
    x->b = sb_open(&s, &o);
    if (x->b == NULL)
        die_errno("sb_open");
    for (int i = 0; x->release && i < READERS; i++)
        if ((x->r[i] = sb_reader_open(x->b, 0)) == NULL)
            die_errno("sb_reader_open");
    team_run(READERS, follow_body, x);
    double t1 = now();
    for (int i = 0; x->release && i < READERS; i++)
        sb_reader_close(x->r[i]);
    sb_close(x->b);
    x->b = NULL;
    return t1 - t0;
}

/* ---- the child: peak RSS and disk -------------------------------------------- */

struct peak {
    long base_kb, hwm_kb;
    uint64_t max_disk;   /* bytes allocated to spill files, sampled */
    uint64_t samples;
    int err;
};

static long status_kb(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t flen = strlen(field);
    while (f != NULL && fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, field, flen) == 0) {
            v = strtol(line + flen, NULL, 10);
            break;
        }
    if (f != NULL)
        fclose(f);
    return v;
}

/* Bytes allocated to the files in dir this process has open. */
static uint64_t disk_in_use(const char *dir)
{
    char real[PATH_MAX];
    if (realpath(dir, real) == NULL)
        return 0;
    size_t rl = strlen(real);
    DIR *d = opendir("/proc/self/fd");
    uint64_t total = 0;
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        char link[300], target[PATH_MAX];
        snprintf(link, sizeof link, "/proc/self/fd/%s", e->d_name);
        ssize_t tl = readlink(link, target, sizeof target - 1);
        struct stat st;
        if (tl <= 0)
            continue;
        target[tl] = '\0';
        if (strncmp(target, real, rl) == 0 && target[rl] == '/'
            && stat(link, &st) == 0 && S_ISREG(st.st_mode))
            total += (uint64_t)st.st_blocks * 512;
    }
    if (d != NULL)
        closedir(d);
    return total;
}

struct sampler {
    _Atomic bool stop;
    uint64_t max_disk, samples;
};

static void *sample(void *arg)
{
    struct sampler *m = arg;
    while (!atomic_load(&m->stop)) {
        uint64_t d = disk_in_use(opt.tmp_dir);
        if (d > m->max_disk)
            m->max_disk = d;
        m->samples++;
        sleep_us(2000);
    }
    return NULL;
}

static struct peak peak_child(struct run *x)
{
    struct peak p = { .base_kb = status_kb("VmRSS:") };
    struct sampler m = { .max_disk = 0 };
    pthread_t th;
    if (pthread_create(&th, NULL, sample, &m) != 0) {
        p.err = EAGAIN;
        return p;
    }
    follow_once(x, opt.rss_size);
    atomic_store(&m.stop, true);
    pthread_join(th, NULL);
    p.hwm_kb = status_kb("VmHWM:");
    p.max_disk = m.max_disk;
    p.samples = m.samples;
    return p;
}

static void peak_rows(struct run *x)
{
    int pfd[2];
    if (pipe(pfd) != 0)
        die_errno("pipe");
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        die_errno("fork");
    if (pid == 0) {
        close(pfd[0]);
        x->release = true;
        struct peak p = peak_child(x);
        ssize_t w = write(pfd[1], &p, sizeof p);
        _exit(w == (ssize_t)sizeof p ? 0 : 1);
    }
    close(pfd[1]);
    struct peak p;
    ssize_t r = read(pfd[0], &p, sizeof p);
    close(pfd[0]);
    int status;
    if (waitpid(pid, &status, 0) != pid || r != (ssize_t)sizeof p
        || !WIFEXITED(status) || WEXITSTATUS(status) != 0 || p.err != 0)
        die("release: the child failed");

    char sz[16];
    fmt_size(opt.rss_size, sz, sizeof sz);
    struct row row = row_init("release", READERS, "MiB", LOWER);
    snprintf(row.variant, sizeof row.variant, "peak RSS of %s", sz);
    row.ours = (double)(p.hwm_kb - p.base_kb) / 1024.0;
    row.base = (double)(opt.mem_limit + opt.retain + SLACK) / (double)MiB;
    row.target = 1.0;
    report(&row);

    row = row_init("release", READERS, "MiB", LOWER);
    snprintf(row.variant, sizeof row.variant, "peak disk (sampled)");
    row.ours = (double)p.max_disk / (double)MiB;
    row.base = (double)(opt.retain + 2 * CHUNK) / (double)MiB;
    row.target = 1.0;
    report(&row);
}

void case_release(void)
{
    struct run x = { .data = stream_bytes(), .size = opt.size };
    double v[2][MAX_REPS];

    if (opt.retain < READ)
        die("--retain must be at least %zu (the readers' read size)",
            (size_t)READ);
    for (int i = 0; i < READERS; i++) {
        x.dst[i] = map_fresh(READ);
        memset(x.dst[i], 0, READ);
    }
    touch_read(x.data, x.size);
    for (int s = 0; s < 2; s++) { /* warm-up */
        x.release = s == 0;
        follow_once(&x, opt.size);
    }
    for (int k = 0; k < opt.reps; k++)
        for (int s = 0; s < 2; s++) {
            x.release = s == 0;
            v[s][k] = (double)opt.size / follow_once(&x, opt.size);
        }
    if (opt.verbose) {
        print_reps("ours", v[0], 1.0 / (double)GiB, "GiB/s");
        print_reps("base", v[1], 1.0 / (double)GiB, "GiB/s");
    }
    char rt[16];
    struct row row = row_init("release", READERS, "GiB/s", HIGHER);
    snprintf(row.variant, sizeof row.variant, "vs follow keep %s",
             fmt_size(opt.retain, rt, sizeof rt));
    row_reps(&row, v[0], v[1], opt.reps, 1.0 / (double)GiB);
    report(&row);
    peak_rows(&x);
    for (int i = 0; i < READERS; i++)
        unmap(x.dst[i], READ);
}
