/* SPDX-License-Identifier: MIT */
/*
 * bench.h - the sbbench harness: options, timing, baselines, result rows.
 *
 * Every figure the harness prints is a ratio against a physical limit
 * (memcpy, pread from the page cache, pwrite, a bare condition variable)
 * measured in the same run, with the two measurements interleaved:
 * ours, base, ours, base, ...  Each row reports the median of opt.reps
 * measurements.
 *
 * The harness uses only the public streambuffer API.
 */
#ifndef SBBENCH_H
#define SBBENCH_H

#include <streambuffer.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define GiB ((size_t)1 << 30)

#define MAX_THREADS 64 /* per measurement, for the thread-scaling cases */
#define MAX_LIST 16    /* entries of --threads and --read-size lists */
#define MAX_REPS 101

#if defined(__GNUC__)
#define NORETURN __attribute__((noreturn))
#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#else
#define NORETURN
#define PRINTF_LIKE(f, a)
#endif

/* Keep the compiler from eliding a copy into p: the asm may read *p. */
#define CLOBBER(p) __asm__ __volatile__("" : : "r"(p) : "memory")

/* ---- options (main.c) ------------------------------------------------------ */

enum case_id {
    CASE_RAND_MEM,   /* 1 random small reads of in-memory bytes */
    CASE_LARGE,      /* 2 1 MiB reads */
    CASE_RAND_SPILL, /* 3 random reads of spilled bytes */
    CASE_FILL,       /* 4 fill the spool from a source */
    CASE_FOLLOW,     /* 5 4 readers following the producer */
    CASE_WAKEUP,     /* 6 wake-up latency */
    CASE_WAITERS,    /* 7 many waiters: wake-ups per satisfied wait */
    CASE_RSS,        /* 8 peak RSS of a 1 GiB stream */
    CASE_SEED,       /* 9 the seed's design, on cases 1, 3 and 5 */
    CASE_RELEASE,    /* 10 follow in bounded space: SB_RELEASE, max_retained */
    CASE_LIVE,       /* 11 1..64 readers on a live stream: wake-up costs */
    CASE_ZEROCOPY,   /* 12 views, SB_MMAP_READS, sendfile */
    CASE_SERVE,      /* 13 examples/serve: many clients of a live stream */
    CASE_RANGED,     /* 14 a paced seekable source: far, random, drain */
#ifdef SBBENCH_HTTP
    CASE_HTTP,       /* 15 sb_open_url against a real server (sbbench_http) */
#endif
    CASE_COUNT
};

struct opts {
    int threads[MAX_LIST];     /* thread counts for the scaling cases */
    int nthreads;
    size_t size;               /* stream size, cases 1-5 and 9 */
    size_t mem_limit;          /* memory limit of the spilling variants */
    size_t read_sizes[MAX_LIST]; /* random read sizes, cases 1, 3, 9 */
    int nread_sizes;           /* 0: the defaults of each case */
    size_t follow_read;        /* read size of the follow case */
    size_t rss_size;           /* stream size of the RSS case */
    size_t retain;             /* max_retained of the release case */
    size_t ranged_size;        /* stream size of the ranged case */
    int clients;               /* clients of the serve case */
    const char *serve_bin;     /* the serve example; NULL: next to sbbench */
    const char *http_url;      /* the http case's object (sbbench_http) */
    const char *http_log;      /* its server's access log; NULL: none */
    const char *http_file;     /* the file it serves; NULL: bytes unchecked */
    double seconds;            /* least duration of one measurement */
    int reps;                  /* measurements per row and side */
    const char *csv;           /* NULL: no CSV */
    const char *tmp_dir;       /* $TMPDIR or /tmp */
    bool strict;
    bool verbose;              /* print every measurement to stderr */
    bool want[CASE_COUNT];
};

extern struct opts opt;

/* ---- errors and time (util.c) ---------------------------------------------- */

NORETURN void die(const char *fmt, ...) PRINTF_LIKE(1, 2);
/* die with ": strerror(errno)" appended. */
NORETURN void die_errno(const char *fmt, ...) PRINTF_LIKE(1, 2);

double now(void); /* seconds, CLOCK_MONOTONIC */
void sleep_us(long us);

/* ---- bytes, memory and files (util.c) -------------------------------------- */

uint64_t splitmix64(uint64_t *state);
/* n pseudo-random bytes, the same for the same seed. */
void fill_random(void *buf, size_t n, uint64_t seed);
/* The shared stream contents: opt.size random bytes, made once. */
const unsigned char *stream_bytes(void);
void stream_bytes_free(void);

/*
 * A fresh anonymous private mapping (pages committed on first touch),
 * 2 MiB-aligned and advised MADV_HUGEPAGE: what the machine does best, so
 * that a limit does not pay a 4 KiB fault per page that the library
 * avoids.  map_fresh_small keeps every page small (MADV_NOHUGEPAGE), for
 * the rows that show what huge pages buy.  Both are given back by unmap.
 */
void *map_fresh(size_t n);
void *map_fresh_small(size_t n);
/* The transparent_hugepage mode: "always", "madvise" or "never". */
const char *thp_mode(void);
/* Minor page faults of the process so far (getrusage). */
long minor_faults(void);
void unmap(void *p, size_t n);
/* Touch every page of [p, p+n) for reading (warm the TLB and the cache). */
void touch_read(const void *p, size_t n);

/* An unlinked temporary file in opt.tmp_dir, open for reading and writing. */
int tmp_file(void);
void pwrite_all(int fd, const void *buf, size_t n, uint64_t off);
void pread_all(int fd, void *buf, size_t n, uint64_t off);

/* Formatting: "64 B", "4 KiB", "256 MiB". */
const char *fmt_size(size_t n, char *out, size_t cap);

/* ---- the memory source and a filled buffer (util.c) ------------------------ */

/* A read-style source that copies from a memory array, front to back. */
struct mem_src {
    const unsigned char *data;
    size_t len;
    size_t pos;
};
ssize_t mem_src_read(void *ctx, void *buf, size_t cap);
/* sb_open a stream of len bytes of data copied by a mem_src (which must
   live until sb_close), or die. */
sb_buffer *open_mem_stream(struct mem_src *ms, const unsigned char *data, size_t len,
                    size_t mem_limit);
/* As above, then sb_wait_end: every byte is in the spool. */
sb_buffer *open_filled(struct mem_src *ms, const unsigned char *data, size_t len,
                size_t mem_limit);

/* ---- the plain spool: the baselines' storage (util.c) ---------------------- */

/*
 * The same layout as the library's spool, with nothing else: bytes
 * [0, mem_cap) in a fresh anonymous mapping, the rest in an unlinked temp
 * file at offset off - mem_cap.  No threads, no locks: what memcpy, pwrite
 * and pread can do with the same bytes.
 */
struct plain {
    unsigned char *mem;
    size_t mem_cap;
    int fd; /* -1 until the first byte past mem_cap */
};
void plain_open(struct plain *p, size_t mem_cap);
/* plain_open in small pages only. */
void plain_open_small(struct plain *p, size_t mem_cap);
void plain_write(struct plain *p, uint64_t off, const void *data, size_t n);
void plain_read(const struct plain *p, void *buf, size_t n, uint64_t off);
void plain_close(struct plain *p);

/* ---- threads (util.c) ------------------------------------------------------ */

/*
 * Run fn(arg, i) on n new threads, i = 0..n-1, all released at once from a
 * barrier.  Returns the seconds from the first thread's start after the
 * release to the last thread's end.
 */
typedef void (*team_fn)(void *arg, int idx);
double team_run(int n, team_fn fn, void *arg);

/* ---- statistics (util.c) --------------------------------------------------- */

double median(const double *v, int n);
/* With --verbose: one side's opt.reps measurements, times scale, on stderr. */
void print_reps(const char *side, const double *v, double scale,
                const char *unit);
/* The q-quantile (0..1) of v, nearest rank. */
double quantile(const double *v, int n, double q);

/* ---- result rows (main.c) -------------------------------------------------- */

enum better { HIGHER, LOWER };

struct row {
    const char *name;     /* the case */
    char variant[40];     /* what was measured */
    int threads;          /* 0: not applicable */
    double ours, base;    /* medians */
    double lo, hi;        /* spread of ours/base over the paired reps
                             (lowest, highest); NAN: not paired */
    const char *unit;     /* of ours and base */
    enum better better;   /* HIGHER: throughput; LOWER: latency, RSS, ... */
    double target;        /* on the ratio ours/base; NAN: for information */
    double seed;          /* the seed design's median; NAN: not measured */
    double faults, base_faults; /* minor page faults per MiB of stream,
                                   ours and base; NAN: not counted */
};

/* A row with no target and no seed figure. */
struct row row_init(const char *name, int threads, const char *unit,
                    enum better better);
/* Set ours and base to the medians of n interleaved reps (times scale) and
   lo/hi to the lowest and highest ratio ours[k]/base[k] of a pair. */
void row_reps(struct row *r, const double *ours, const double *base, int n,
              double scale);
/* Print a row (and write it to the CSV). */
void report(const struct row *r);

/* ---- the seed's design (seed.c) -------------------------------------------- */

/*
 * The Python `buffer` package's design in C: one global mutex held across
 * the source pull and the copy; the reading thread itself pulls chunks on
 * demand into a SpooledTemporaryFile-like spool (a growing memory buffer
 * that rolls over, all of it, into a temp file past mem_limit).
 */
struct seed;
struct seed *seed_open(const sb_source *src, size_t mem_limit,
                       size_t chunk_size);
ssize_t seed_pread(struct seed *s, void *buf, size_t n, uint64_t off);
void seed_close(struct seed *s);

/* ---- the cases ------------------------------------------------------------- */

void case_rand_mem(void);   /* cases_read.c */
void case_large(void);      /* cases_read.c */
void case_rand_spill(void); /* cases_read.c */
void case_fill(void);       /* cases_stream.c */
void case_follow(void);     /* cases_stream.c */
void case_wakeup(void);     /* cases_wait.c */
void case_waiters(void);    /* cases_wait.c */
void case_rss(void);        /* cases_rss.c */
void case_release(void);    /* cases_release.c */
void case_live(void);       /* cases_live.c */
void case_zerocopy(void);   /* cases_zerocopy.c */
void case_serve(void);      /* cases_serve.c */
void case_ranged(void);     /* cases_ranged.c */
void case_http(void);       /* cases_http.c, sbbench_http only */

#endif /* SBBENCH_H */
