/* SPDX-License-Identifier: MIT */
/*
 * cases_read.c - reads of bytes that are already in the spool.
 *
 *   1 rand-mem    random small reads of in-memory bytes vs memcpy from a
 *                 plain array of the same bytes at the same offsets
 *   2 large       random 1 MiB reads vs memcpy
 *   3 rand-spill  random reads of spilled bytes vs pread of a page-cached
 *                 temp file holding the same bytes
 *   9 seed        the seed's design on cases 1 and 3 (when selected)
 *
 * Every thread runs a fixed number of reads over its own precomputed random
 * offsets, the same sequence for every side; all threads start on a barrier
 * and the time runs from the first thread's start to the last one's end.
 * Each read copies into the thread's own buffer, followed by a compiler
 * barrier and a load of one byte, so no copy can be elided, on every side
 * alike.
 */
#include "bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define OFFS_N ((size_t)1 << 20) /* offsets per thread, cycled */
#define OFFS_MASK (OFFS_N - 1)

enum side { OURS, BASE, SEED, NSIDES };

/* One random-read measurement setup, shared by the threads of a team. */
struct rread {
    enum side side;            /* which side the next team_run measures */
    size_t n;                  /* bytes per read */
    size_t ops[NSIDES];        /* reads per thread, per side */
    sb_buffer *b;                     /* ours */
    struct seed *seed;         /* the seed design */
    const unsigned char *mem;  /* base in memory: a plain array */
    int fd;                    /* base spilled: a temp file, or -1 */
    uint64_t fd_start;         /* stream offset of the file's byte 0 */
    uint64_t *offs[MAX_THREADS];
    unsigned char *dst[MAX_THREADS];
    unsigned sink[MAX_THREADS];
};

static void rread_body(void *arg, int idx)
{
    struct rread *r = arg;
    const uint64_t *offs = r->offs[idx];
    unsigned char *dst = r->dst[idx];
    const size_t n = r->n;
    const size_t ops = r->ops[r->side];
    unsigned sink = 0;

    switch (r->side) {
    case OURS:
        for (size_t i = 0; i < ops; i++) {
            if (sb_pread(r->b, dst, n, offs[i & OFFS_MASK]) != (ssize_t)n)
                die_errno("sb_pread");
            CLOBBER(dst);
            sink += dst[0];
        }
        break;
    case BASE:
        if (r->fd < 0) {
            for (size_t i = 0; i < ops; i++) {
                memcpy(dst, r->mem + offs[i & OFFS_MASK], n);
                CLOBBER(dst);
                sink += dst[0];
            }
        } else {
            for (size_t i = 0; i < ops; i++) {
                off_t off = (off_t)(offs[i & OFFS_MASK] - r->fd_start);
                if (pread(r->fd, dst, n, off) != (ssize_t)n)
                    die_errno("pread");
                CLOBBER(dst);
                sink += dst[0];
            }
        }
        break;
    case SEED:
        for (size_t i = 0; i < ops; i++) {
            if (seed_pread(r->seed, dst, n, offs[i & OFFS_MASK]) != (ssize_t)n)
                die("seed_pread: short read");
            CLOBBER(dst);
            sink += dst[0];
        }
        break;
    default:
        break;
    }
    r->sink[idx] = sink;
}

/* Per-thread buffers and offset tables for up to the largest thread count. */
static int max_threads(void)
{
    int m = 1;
    for (int i = 0; i < opt.nthreads; i++)
        if (opt.threads[i] > m)
            m = opt.threads[i];
    return m;
}

static void rread_setup(struct rread *r, size_t dst_len)
{
    int m = max_threads();
    for (int i = 0; i < m; i++) {
        r->offs[i] = malloc(OFFS_N * sizeof *r->offs[i]);
        if (r->offs[i] == NULL)
            die("out of memory");
        r->dst[i] = map_fresh(dst_len);
        memset(r->dst[i], 0, dst_len);
    }
}

static void rread_teardown(struct rread *r, size_t dst_len)
{
    for (int i = 0; i < MAX_THREADS; i++) {
        free(r->offs[i]);
        if (r->dst[i] != NULL)
            unmap(r->dst[i], dst_len);
        r->offs[i] = NULL;
        r->dst[i] = NULL;
    }
}

/* Offsets of n-byte reads, uniform in [lo, hi - n], a fixed sequence per
   thread index. */
static void rread_offsets(struct rread *r, uint64_t lo, uint64_t hi)
{
    uint64_t span = hi - lo - r->n + 1;
    for (int t = 0; t < MAX_THREADS && r->offs[t] != NULL; t++) {
        uint64_t st = UINT64_C(0xC0FFEE) * (uint64_t)(t + 1);
        for (size_t i = 0; i < OFFS_N; i++)
            r->offs[t][i] = lo + splitmix64(&st) % span;
    }
}

/* Reads per thread so that one measurement of this side lasts about
   opt.seconds.  Doubles as the side's warm-up. */
static void calibrate(struct rread *r, enum side s, int nthr)
{
    size_t ops = 64;
    double dt;

    r->side = s;
    for (;;) {
        r->ops[s] = ops;
        dt = team_run(nthr, rread_body, r);
        if (dt >= opt.seconds / 4 || ops >= ((size_t)1 << 34))
            break;
        ops *= dt < opt.seconds / 64 ? 8 : 2;
    }
    double want = (double)ops * opt.seconds / (dt > 0 ? dt : 1e-9);
    r->ops[s] = want < 1 ? 1 : (size_t)want;
}

/* The unit of a read size's rows: Mop/s under 1 KiB, else GiB/s; *scale
   converts bytes per second to it. */
static const char *tput_unit(size_t n, double *scale)
{
    bool ops = n < KiB;
    *scale = ops ? 1.0 / ((double)n * 1e6) : 1.0 / (double)GiB;
    return ops ? "Mop/s" : "GiB/s";
}

/* One row's measurements: throughput in bytes per second, per side and
   rep. */
struct tput {
    double v[NSIDES][MAX_REPS];
    bool with_seed;
};

/*
 * Measure the sides in use, interleaved (ours, base, seed, ours, ...), and
 * store the throughput of each rep in t.
 */
static void rread_measure(struct rread *r, int nthr, bool with_seed,
                          struct tput *t)
{
    static const char *const side_name[NSIDES] = { "ours", "base", "seed" };
    double (*v)[MAX_REPS] = t->v;
    int nsides = with_seed ? 3 : 2;

    t->with_seed = with_seed;

    for (int s = 0; s < nsides; s++)
        calibrate(r, (enum side)s, nthr);
    for (int k = 0; k < opt.reps; k++) {
        for (int s = 0; s < nsides; s++) {
            r->side = (enum side)s;
            double dt = team_run(nthr, rread_body, r);
            v[s][k] = (double)nthr * (double)r->ops[s] * (double)r->n / dt;
        }
    }
    if (opt.verbose) {
        double scale;
        const char *unit = tput_unit(r->n, &scale);
        for (int s = 0; s < nsides; s++)
            print_reps(side_name[s], v[s], scale, unit);
    }
}

/* Report one throughput row: Mop/s for reads under 1 KiB, else GiB/s. */
static void report_tput(const char *name, size_t n, int nthr,
                        const struct tput *t, double target)
{
    double scale;
    const char *unit = tput_unit(n, &scale);
    struct row row = row_init(name, nthr, unit, HIGHER);
    char sz[32];

    snprintf(row.variant, sizeof row.variant, "%s", fmt_size(n, sz, sizeof sz));
    row_reps(&row, t->v[OURS], t->v[BASE], opt.reps, scale);
    row.seed = t->with_seed ? median(t->v[SEED], opt.reps) * scale : NAN;
    row.target = target;
    report(&row);
}

/*
 * The baseline's plain array: a fresh mapping filled with the same bytes in
 * the producer's 64 KiB chunks, right after the spool.  Not the source
 * array itself: on a virtual machine two regions allocated at different
 * times can differ by 10-20% in random-read speed (how the host backs
 * them), so both sides get memory allocated and first touched the same way
 * at about the same time.
 */
static unsigned char *plain_copy(const unsigned char *data, size_t len)
{
    unsigned char *p = map_fresh(len);
    for (size_t off = 0; off < len; off += 64 * KiB)
        memcpy(p + off, data + off, len - off < 64 * KiB ? len - off : 64 * KiB);
    return p;
}

/* A seed buffer over the same bytes, pulled to the end. */
static struct seed *seed_filled(struct mem_src *ms, const unsigned char *data,
                                size_t len, size_t mem_limit)
{
    *ms = (struct mem_src){ .data = data, .len = len };
    sb_source src = { .read = mem_src_read, .ctx = ms };
    struct seed *s = seed_open(&src, mem_limit, 64 * KiB);
    unsigned char last;
    if (seed_pread(s, &last, 1, len - 1) != 1)
        die("seed: could not fill");
    return s;
}

/* Read [from, len) of b once, sequentially: warms the page cache of a
   spill file. */
static void warm_sb(sb_buffer *b, uint64_t from, size_t len)
{
    unsigned char *buf = malloc(MiB);
    if (buf == NULL)
        die("out of memory");
    for (uint64_t off = from; off < len; off += MiB) {
        size_t n = len - off < MiB ? (size_t)(len - off) : MiB;
        if (sb_pread(b, buf, n, off) != (ssize_t)n)
            die_errno("sb_pread");
    }
    free(buf);
}

static void warm_fd(int fd, size_t len)
{
    unsigned char *buf = malloc(MiB);
    if (buf == NULL)
        die("out of memory");
    for (uint64_t off = 0; off < len; off += MiB) {
        size_t n = len - off < MiB ? (size_t)(len - off) : MiB;
        pread_all(fd, buf, n, off);
    }
    free(buf);
}

/* Before timing anything: every side returns the stream's bytes at a few
   random offsets in [lo, len). */
static void check_sides(const struct rread *r, const unsigned char *data,
                        uint64_t lo, size_t len)
{
    unsigned char got[4 * KiB];
    uint64_t st = 0xC4EC;

    for (int i = 0; i < 64; i++) {
        size_t n = sizeof got < len - lo ? sizeof got : (size_t)(len - lo);
        uint64_t off = lo + splitmix64(&st) % (len - lo - n + 1);
        if (sb_pread(r->b, got, n, off) != (ssize_t)n
            || memcmp(got, data + off, n) != 0)
            die("check: sb_pread returned wrong bytes at %llu",
                (unsigned long long)off);
        if (r->seed != NULL && (seed_pread(r->seed, got, n, off) != (ssize_t)n
                                || memcmp(got, data + off, n) != 0))
            die("check: the seed returned wrong bytes");
        if (r->fd >= 0)
            pread_all(r->fd, got, n, off - r->fd_start);
        else
            memcpy(got, r->mem + off, n);
        if (memcmp(got, data + off, n) != 0)
            die("check: the baseline holds wrong bytes");
    }
}

/* The read sizes of a case: --read-size, else its defaults. */
static int read_sizes(const size_t *defaults, int ndefaults, const size_t **out)
{
    if (opt.nread_sizes > 0) {
        *out = opt.read_sizes;
        return opt.nread_sizes;
    }
    *out = defaults;
    return ndefaults;
}

/* ---- case 1 --------------------------------------------------------------------- */

void case_rand_mem(void)
{
    static const size_t defaults[] = { 64, 4 * KiB };
    const size_t *sizes;
    int nsizes = read_sizes(defaults, 2, &sizes);
    const unsigned char *data = stream_bytes();
    const size_t len = opt.size;
    bool with_seed = opt.want[CASE_SEED];
    struct mem_src ms, seed_ms;
    struct rread r = { .fd = -1 };

    /* The real spool: filled by the producer from a read-style source,
       with room for every byte in memory. */
    r.b = open_filled(&ms, data, len, len);
    unsigned char *plain = plain_copy(data, len);
    r.mem = plain;
    r.seed = with_seed ? seed_filled(&seed_ms, data, len, len) : NULL;
    check_sides(&r, data, 0, len);
    warm_sb(r.b, 0, len);

    size_t dst_len = 4 * KiB;
    for (int i = 0; i < nsizes; i++)
        if (sizes[i] > dst_len)
            dst_len = sizes[i];
    rread_setup(&r, dst_len);

    for (int i = 0; i < nsizes; i++) {
        r.n = sizes[i];
        if (r.n == 0 || r.n > len)
            die("--read-size %zu: must be 1..--size", r.n);
        rread_offsets(&r, 0, len);
        for (int t = 0; t < opt.nthreads; t++) {
            int nthr = opt.threads[t];
            struct tput tput;
            rread_measure(&r, nthr, with_seed, &tput);
            double target = NAN;
            if (r.n == 64)
                target = 0.4;
            else if (r.n == 4 * KiB && nthr <= 2)
                target = 0.9;
            report_tput("rand-mem", r.n, nthr, &tput, target);
        }
    }
    rread_teardown(&r, dst_len);
    seed_close(r.seed);
    unmap(plain, len);
    sb_close(r.b);
}

/* ---- case 2 --------------------------------------------------------------------- */

void case_large(void)
{
    const unsigned char *data = stream_bytes();
    const size_t len = opt.size;
    const size_t n = MiB;
    struct mem_src ms;
    struct rread r = { .fd = -1, .n = n };

    if (len < 2 * n)
        die("--size must be at least 2 MiB for the large case");
    r.b = open_filled(&ms, data, len, len);
    unsigned char *plain = plain_copy(data, len);
    r.mem = plain;
    check_sides(&r, data, 0, len);
    warm_sb(r.b, 0, len);
    rread_setup(&r, n);
    rread_offsets(&r, 0, len);
    for (int t = 0; t < opt.nthreads; t++) {
        int nthr = opt.threads[t];
        struct tput tput;
        rread_measure(&r, nthr, false, &tput);
        report_tput("large", n, nthr, &tput, 0.95);
    }
    rread_teardown(&r, n);
    unmap(plain, len);
    sb_close(r.b);
}

/* ---- case 3 --------------------------------------------------------------------- */

void case_rand_spill(void)
{
    static const size_t defaults[] = { 4 * KiB };
    const size_t *sizes;
    int nsizes = read_sizes(defaults, 1, &sizes);
    const unsigned char *data = stream_bytes();
    const size_t len = opt.size;
    const size_t mem = opt.mem_limit;
    bool with_seed = opt.want[CASE_SEED];
    struct mem_src ms, seed_ms;
    struct rread r = { .mem = data };

    if (mem >= len)
        die("--mem-limit must be below --size for the spilled cases");
    /* Ours spills everything past mem; the baseline file holds the same
       bytes at the same file offsets (stream offset - mem). */
    r.b = open_filled(&ms, data, len, mem);
    r.seed = with_seed ? seed_filled(&seed_ms, data, len, mem) : NULL;
    r.fd = tmp_file();
    r.fd_start = mem;
    /* In the producer's 64 KiB chunks: the page cache's folio sizes
       follow the write sizes, and pread speed follows the folio sizes. */
    for (size_t off = mem; off < len; off += 64 * KiB) {
        size_t n = len - off < 64 * KiB ? len - off : 64 * KiB;
        pwrite_all(r.fd, data + off, n, off - mem);
    }
    check_sides(&r, data, mem, len);
    warm_sb(r.b, mem, len);
    warm_fd(r.fd, len - mem);

    size_t dst_len = 4 * KiB;
    for (int i = 0; i < nsizes; i++)
        if (sizes[i] > dst_len)
            dst_len = sizes[i];
    rread_setup(&r, dst_len);
    for (int i = 0; i < nsizes; i++) {
        r.n = sizes[i];
        if (r.n == 0 || r.n > len - mem)
            die("--read-size %zu: must be 1..(--size - --mem-limit)", r.n);
        rread_offsets(&r, mem, len);
        for (int t = 0; t < opt.nthreads; t++) {
            int nthr = opt.threads[t];
            struct tput tput;
            rread_measure(&r, nthr, with_seed, &tput);
            report_tput("rand-spill", r.n, nthr, &tput,
                        r.n == 4 * KiB ? 0.9 : NAN);
        }
    }
    rread_teardown(&r, dst_len);
    close(r.fd);
    seed_close(r.seed);
    sb_close(r.b);
}
