/* SPDX-License-Identifier: MIT */
/*
 * cases_stream.c - streams on the move: the producer filling the spool.
 *
 *   4 fill    a read-style source copying from a memory array into the
 *             spool, timed from sb_open to sb_wait_end.  In memory
 *             (mem_limit = size) vs memcpy of the same 64 KiB chunks into a
 *             freshly mapped region (page faults on both sides); spilling
 *             (mem_limit = --mem-limit) vs the same layout written with
 *             memcpy and pwrite to a fresh temp file.  For information,
 *             the spilling fill again with an iterator-style source.
 *   5 follow  4 readers read the whole stream sequentially while the
 *             producer is still filling it (readers start right after
 *             sb_open), timed from sb_open to the last reader's end.
 *             Baseline: write the same layout once, then read it back with
 *             4 threads at once.  In memory and spilling.
 *   9 seed    the seed's design on case 5 (when selected).
 */
#include "bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK (64 * KiB)   /* the producer's default chunk_size */
#define FOLLOW_READERS 4

enum side { OURS, BASE, SEED, NSIDES };

/* ---- case 4 --------------------------------------------------------------------- */

/* An iterator-style source over a memory array: hands out 64 KiB chunks
   in place, so nothing is copied before the library stores them. */
struct mem_iter {
    const unsigned char *data;
    size_t len, pos;
};

static int mem_iter_next(void *ctx, const void **chunk, size_t *len)
{
    struct mem_iter *it = ctx;
    if (it->pos == it->len)
        return 0;
    *chunk = it->data + it->pos;
    *len = it->len - it->pos < CHUNK ? it->len - it->pos : CHUNK;
    it->pos += *len;
    return 1;
}

/* One fill: a read source copying from data, or with iter, an iterator. */
/* The pages of a measurement: huge (the default, and the limits'), or
   small on both sides (SB_NO_HUGEPAGES; the baseline maps small pages). */
enum pages { HUGE_PAGES, SMALL_PAGES };

static double fill_ours(const unsigned char *data, size_t len, size_t mem,
                        bool iter, enum pages pages)
{
    struct mem_src ms = { .data = data, .len = len };
    struct mem_iter it = { .data = data, .len = len };
    sb_source src = iter ? (sb_source){ .next = mem_iter_next, .ctx = &it }
                         : (sb_source){ .read = mem_src_read, .ctx = &ms };
    sb_options o = { .mem_limit = mem, .tmp_dir = opt.tmp_dir,
                     .flags = pages == SMALL_PAGES ? SB_NO_HUGEPAGES : 0 };
    uint64_t total;
    sb_buffer *b;

    double t0 = now();
    b = sb_open(&src, &o);
    if (b == NULL)
        die_errno("sb_open");
    if (sb_wait_end(b, &total) != 0)
        die_errno("sb_wait_end");
    double t1 = now();
    if (total != len)
        die("fill: stream length %llu, expected %zu",
            (unsigned long long)total, len);
    sb_close(b);
    return t1 - t0;
}

static double fill_base(const unsigned char *data, size_t len, size_t mem,
                        enum pages pages)
{
    struct plain p;

    double t0 = now();
    if (pages == SMALL_PAGES)
        plain_open_small(&p, mem);
    else
        plain_open(&p, mem);
    for (size_t off = 0; off < len; off += CHUNK) {
        size_t n = len - off < CHUNK ? len - off : CHUNK;
        plain_write(&p, off, data + off, n);
    }
    double t1 = now();
    plain_close(&p);
    return t1 - t0;
}

static void fill_variant(const char *variant, size_t mem, bool iter,
                         enum pages pages, double target)
{
    const unsigned char *data = stream_bytes();
    const size_t len = opt.size;
    double v[2][MAX_REPS];
    long faults[2] = { 0, 0 };

    touch_read(data, len);
    fill_ours(data, len, mem, iter, pages); /* warm-up */
    fill_base(data, len, mem, pages);
    for (int k = 0; k < opt.reps; k++) {
        long f0 = minor_faults();
        v[OURS][k] = (double)len / fill_ours(data, len, mem, iter, pages);
        long f1 = minor_faults();
        v[BASE][k] = (double)len / fill_base(data, len, mem, pages);
        faults[OURS] += f1 - f0;
        faults[BASE] += minor_faults() - f1;
    }
    if (opt.verbose) {
        print_reps("ours", v[OURS], 1.0 / (double)GiB, "GiB/s");
        print_reps("base", v[BASE], 1.0 / (double)GiB, "GiB/s");
    }
    struct row row = row_init("fill", 1, "GiB/s", HIGHER);
    snprintf(row.variant, sizeof row.variant, "%s", variant);
    row_reps(&row, v[OURS], v[BASE], opt.reps, 1.0 / (double)GiB);
    row.target = target;
    double mib = (double)len / (double)MiB * opt.reps;
    row.faults = (double)faults[OURS] / mib;
    row.base_faults = (double)faults[BASE] / mib;
    report(&row);
}

void case_fill(void)
{
    char v[64], sz[32];

    if (opt.mem_limit >= opt.size)
        die("--mem-limit must be below --size for the spilled cases");
    fill_variant("in memory", opt.size, false, HUGE_PAGES, 0.9);
    /* For information: both sides in 4 KiB pages, which is what huge
       pages buy (compare the ratios' bases). */
    fill_variant("in memory small pages", opt.size, false, SMALL_PAGES, NAN);
    fmt_size(opt.mem_limit, sz, sizeof sz);
    snprintf(v, sizeof v, "spill (mem %s)", sz);
    fill_variant(v, opt.mem_limit, false, HUGE_PAGES, 0.8);
    snprintf(v, sizeof v, "spill (mem %s) small pages", sz);
    fill_variant(v, opt.mem_limit, false, SMALL_PAGES, NAN);
    /* For information: the same with an iterator source, which spares the
       read callback's copy into the producer's scratch chunk. */
    snprintf(v, sizeof v, "spill (iterator src)");
    fill_variant(v, opt.mem_limit, true, HUGE_PAGES, NAN);
}

/* ---- case 5 --------------------------------------------------------------------- */

struct follow {
    enum side side;
    const unsigned char *data; /* the stream's bytes, to spot-check */
    size_t len;                /* the stream's length */
    size_t n;                  /* bytes per read */
    sb_buffer *b;
    struct plain *plain;
    struct seed *seed;
    enum pages pages;
    unsigned char *dst[FOLLOW_READERS];
    unsigned sink[FOLLOW_READERS];
};

/* A spot check of every read: its first byte. */
static void follow_check(const struct follow *f, const unsigned char *dst,
                         uint64_t off)
{
    if (dst[0] != f->data[off])
        die("follow: wrong bytes at %llu", (unsigned long long)off);
}

static void follow_body(void *arg, int idx)
{
    struct follow *f = arg;
    unsigned char *dst = f->dst[idx];
    const size_t n = f->n;
    uint64_t off = 0;
    unsigned sink = 0;

    switch (f->side) {
    case OURS:
        for (;;) {
            ssize_t r = sb_pread(f->b, dst, n, off);
            if (r < 0)
                die_errno("sb_pread");
            if (r == 0)
                break;
            CLOBBER(dst);
            follow_check(f, dst, off);
            sink += dst[0];
            off += (uint64_t)r;
        }
        break;
    case BASE:
        for (; off < f->len; off += n) {
            size_t m = f->len - off < n ? (size_t)(f->len - off) : n;
            plain_read(f->plain, dst, m, off);
            CLOBBER(dst);
            follow_check(f, dst, off);
            sink += dst[0];
        }
        break;
    case SEED:
        for (;;) {
            ssize_t r = seed_pread(f->seed, dst, n, off);
            if (r == 0)
                break;
            CLOBBER(dst);
            follow_check(f, dst, off);
            sink += dst[0];
            off += (uint64_t)r;
        }
        break;
    default:
        break;
    }
    if (off != f->len)
        die("follow: reader %d read %llu bytes of %zu", idx,
            (unsigned long long)off, f->len);
    f->sink[idx] = sink;
}

/* One measurement of one side: seconds from open to the last reader's end. */
static double follow_once(struct follow *f, const unsigned char *data,
                          size_t mem)
{
    struct mem_src ms;
    struct plain p;
    double t0, t1;

    switch (f->side) {
    case OURS: {
        ms = (struct mem_src){ .data = data, .len = f->len };
        sb_source src = { .read = mem_src_read, .ctx = &ms };
        sb_options o = { .mem_limit = mem, .tmp_dir = opt.tmp_dir,
                         .flags = f->pages == SMALL_PAGES ? SB_NO_HUGEPAGES : 0 };
        t0 = now();
        f->b = sb_open(&src, &o);
        if (f->b == NULL)
            die_errno("sb_open");
        team_run(FOLLOW_READERS, follow_body, f);
        t1 = now();
        sb_close(f->b);
        f->b = NULL;
        break;
    }
    case BASE:
        t0 = now();
        if (f->pages == SMALL_PAGES)
            plain_open_small(&p, mem);
        else
            plain_open(&p, mem);
        for (size_t off = 0; off < f->len; off += CHUNK) {
            size_t n = f->len - off < CHUNK ? f->len - off : CHUNK;
            plain_write(&p, off, data + off, n);
        }
        f->plain = &p;
        team_run(FOLLOW_READERS, follow_body, f);
        t1 = now();
        plain_close(&p);
        f->plain = NULL;
        break;
    default: {
        ms = (struct mem_src){ .data = data, .len = f->len };
        sb_source src = { .read = mem_src_read, .ctx = &ms };
        t0 = now();
        f->seed = seed_open(&src, mem, CHUNK);
        team_run(FOLLOW_READERS, follow_body, f);
        t1 = now();
        seed_close(f->seed);
        f->seed = NULL;
        break;
    }
    }
    return t1 - t0;
}

static void follow_variant(const char *variant, size_t mem, enum pages pages,
                           double target)
{
    const unsigned char *data = stream_bytes();
    bool with_seed = opt.want[CASE_SEED] && pages == HUGE_PAGES;
    int nsides = with_seed ? 3 : 2;
    struct follow f = { .data = data, .len = opt.size, .n = opt.follow_read,
                        .pages = pages };
    double v[NSIDES][MAX_REPS];
    long faults[NSIDES] = { 0 };

    for (int i = 0; i < FOLLOW_READERS; i++) {
        f.dst[i] = map_fresh(f.n);
        memset(f.dst[i], 0, f.n);
    }
    touch_read(data, f.len);
    for (int s = 0; s < nsides; s++) { /* warm-up */
        f.side = (enum side)s;
        follow_once(&f, data, mem);
    }
    for (int k = 0; k < opt.reps; k++) {
        for (int s = 0; s < nsides; s++) {
            f.side = (enum side)s;
            long f0 = minor_faults();
            v[s][k] = (double)f.len / follow_once(&f, data, mem);
            faults[s] += minor_faults() - f0;
        }
    }
    if (opt.verbose)
        for (int s = 0; s < nsides; s++)
            print_reps(s == OURS ? "ours" : s == BASE ? "base" : "seed", v[s],
                       1.0 / (double)GiB, "GiB/s");
    struct row row = row_init("follow", FOLLOW_READERS, "GiB/s", HIGHER);
    snprintf(row.variant, sizeof row.variant, "%s", variant);
    row_reps(&row, v[OURS], v[BASE], opt.reps, 1.0 / (double)GiB);
    row.seed = with_seed ? median(v[SEED], opt.reps) / (double)GiB : NAN;
    row.target = target;
    double mib = (double)f.len / (double)MiB * opt.reps;
    row.faults = (double)faults[OURS] / mib;
    row.base_faults = (double)faults[BASE] / mib;
    report(&row);
    for (int i = 0; i < FOLLOW_READERS; i++)
        unmap(f.dst[i], f.n);
}

void case_follow(void)
{
    char v[64], sz[32];

    if (opt.mem_limit >= opt.size)
        die("--mem-limit must be below --size for the spilled cases");
    if (opt.follow_read == 0)
        die("--follow-read must be positive");
    follow_variant("in memory", opt.size, HUGE_PAGES, 0.8);
    follow_variant("in memory small pages", opt.size, SMALL_PAGES, NAN);
    fmt_size(opt.mem_limit, sz, sizeof sz);
    snprintf(v, sizeof v, "spill (mem %s)", sz);
    follow_variant(v, opt.mem_limit, HUGE_PAGES, 0.85);
    snprintf(v, sizeof v, "spill (mem %s) small pages", sz);
    follow_variant(v, opt.mem_limit, SMALL_PAGES, NAN);
}
