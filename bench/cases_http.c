/* SPDX-License-Identifier: MIT */
/*
 * cases_http.c - the HTTP source (sb_open_url) against a real server:
 * the ranged case's F1, F2 and F3 over HTTP, each against what one
 * libcurl client does with the same server in the same run.
 *
 * Built only into build/bench/sbbench_http (with -DSBBENCH_HTTP, linked
 * with libstreambuffer_http and libcurl): the core harness stays free of
 * libcurl.  bench/http.sh starts the server (nginx, limit_rate per
 * connection, an access log of "$status $bytes_sent $body_bytes_sent
 * $http_range $request") and runs it:
 *
 *   sbbench_http --case http --url URL [--http-log FILE] [--http-file FILE]
 *
 * The limits, each measured interleaved with ours (ours, limit, ...):
 *
 *   F1 far   sb_open_url, then 4 KiB at 900/1024 of the object as the
 *            first read, open to return; vs one ranged GET of those 4 KiB
 *            on a fresh easy handle and a new connection (curl -r);
 *   F2 rand  8 threads x 32 random 64 KiB sb_preads (read_ahead 1 MiB,
 *            max_parts 8) of one buffer; vs the same 256 ranges as ranged
 *            GETs, 8 threads each sending its 32 in turn on its own reused
 *            easy handle (one keep-alive connection a thread);
 *   F3 drain sb_open_url..sb_wait_end with max_parts 4; vs one plain GET
 *            of the whole object, body discarded: one connection's drain
 *            at the server's rate.
 *
 * For information, what a miss is made of:
 *
 *   F1 again with read_ahead 64 KiB: no drain beside the far read (the
 *      first stream stops after a chunk, no part opens for the rest);
 *   F1 and F2 "wire": libcurl sending ours' requests, against the same
 *      limit: for F1 sb_open_url's GET (to its first body bytes) and then
 *      a part's, "Range: bytes=off-" on a new connection, to the 4 KiB;
 *      for F2 each read a part's request (its 64 KiB and the seam's 4 KiB:
 *      a part asks for its read alone when it continues no run) on one
 *      kept-alive connection a thread, as the source keeps them for its
 *      parts.  What the way the source asks costs, before anything the
 *      library does with the bytes.
 *
 * With --http-file, the bytes both sides of a pair will ask for are read
 * from the file before it (warm): the host pages out cold memory, the
 * page cache included, and the side measured first paid for the disk.
 *
 * With --http-log, the server's log is emptied before each measurement and
 * read after it (once the requests expected have been logged and the log
 * has stopped growing): the requests each side sent and the bytes the
 * server sent it, headers included.  With --http-file (the file the server
 * serves), every byte read is compared with the file's.
 */
#include "bench.h"

#include <streambuffer_http.h>

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define F2_THREADS 8
#define F2_READS 32
#define F2_SIZE (64 * KiB)
#define F1_SIZE 4096
/* What a part of F2 asks for: the read alone (it continues no run, so it
   has earned no read_ahead), and the 4 KiB past it that the HTTP source
   adds to every bounded part for the seam. */
#define F2_WIRE (F2_SIZE + 4 * KiB)

/* ---- the object, as the server has it ---------------------------------------------- */

static int file_fd = -1; /* --http-file, or -1: bytes not checked */

static void check_bytes(const unsigned char *buf, size_t n, uint64_t off)
{
    unsigned char want[64 * 1024];
    if (file_fd < 0)
        return;
    for (size_t k = 0; k < n; k += sizeof want) {
        size_t m = n - k < sizeof want ? n - k : sizeof want;
        pread_all(file_fd, want, m, off + k);
        if (memcmp(buf + k, want, m) != 0)
            die("http: wrong bytes at %llu", (unsigned long long)(off + k));
    }
}

/*
 * Read [off, off + n) of the object from --http-file, so that the server
 * finds it in the page cache whichever side asks first.  The host of
 * this VM pages out memory that has gone cold (DAMON), the page cache
 * included: the side measured first in a pair paid for the disk (ours,
 * always; an F2 probe after a pause ran at 5 to 8 times the limit where
 * it otherwise ran at 2.2).  Without --http-file, nothing.
 */
static void warm(uint64_t off, uint64_t n)
{
    static unsigned char buf[1 << 20];
    if (file_fd < 0)
        return;
    for (uint64_t k = 0; k < n; k += sizeof buf) {
        size_t m = n - k < sizeof buf ? (size_t)(n - k) : sizeof buf;
        if (pread(file_fd, buf, m, (off_t)(off + k)) < 0)
            die_errno("%s", opt.http_file);
    }
}

/* ---- the server's log --------------------------------------------------------------- */

/* What the server logged for one measurement. */
struct tally {
    uint64_t requests;
    uint64_t bytes;    /* $bytes_sent: bodies and headers */
    uint64_t body;     /* $body_bytes_sent */
    uint64_t not2xx;   /* answers other than 2xx (a 416 for a part at the end) */
};

static void log_reset(void)
{
    if (opt.http_log != NULL && truncate(opt.http_log, 0) != 0)
        die_errno("truncate %s", opt.http_log);
}

/* The complete lines of the log: "status bytes_sent body range request". */
static struct tally log_parse(void)
{
    struct tally t = { 0 };
    FILE *f = fopen(opt.http_log, "r");
    char line[1024];
    if (f == NULL)
        die_errno("%s", opt.http_log);
    while (fgets(line, sizeof line, f) != NULL) {
        unsigned status;
        unsigned long long bytes, body;
        if (strchr(line, '\n') == NULL)
            break; /* being written */
        if (sscanf(line, "%u %llu %llu", &status, &bytes, &body) != 3)
            die("http: %s: not the bench's log format: %s", opt.http_log, line);
        t.not2xx += status / 100 != 2;
        t.requests++;
        t.bytes += bytes;
        t.body += body;
    }
    fclose(f);
    return t;
}

/*
 * The tally once at least `want` requests are logged and the log has not
 * grown for 100 ms: a connection the client closed mid-body is logged when
 * the server notices, a little after the close.  At most 5 s.
 */
static struct tally log_collect(uint64_t want)
{
    struct tally t = { 0 };
    if (opt.http_log == NULL)
        return t;
    double t0 = now(), changed = t0;
    off_t size = -1;
    for (;;) {
        struct stat st;
        if (stat(opt.http_log, &st) != 0)
            die_errno("%s", opt.http_log);
        double tn = now();
        if (st.st_size != size) {
            size = st.st_size;
            changed = tn;
        }
        t = log_parse();
        if (t.requests >= want && tn - changed >= 0.1)
            return t;
        if (tn - t0 > 5) {
            fprintf(stderr, "http: %llu requests logged after 5 s, expected %llu\n",
                    (unsigned long long)t.requests, (unsigned long long)want);
            return t;
        }
        sleep_us(10000);
    }
}

/* ---- libcurl, the limit's client ------------------------------------------------------ */

struct sink {
    unsigned char *buf; /* NULL: count and discard */
    size_t cap;
    size_t got;
    bool stop;          /* end the transfer once cap bytes are in */
};

static size_t sink_write(char *data, size_t size, size_t n, void *arg)
{
    struct sink *s = arg;
    size_t len = size * n;
    if (s->buf != NULL) {
        size_t m = len < s->cap - s->got ? len : s->cap - s->got;
        if (m < len && !s->stop)
            return 0; /* more than asked: fail the transfer */
        memcpy(s->buf + s->got, data, m);
    }
    s->got += len;
    if (s->stop && s->got >= s->cap)
        return 0; /* enough: libcurl ends the transfer (a write error) */
    return len;
}

static CURL *easy_new(void)
{
    CURL *h = curl_easy_init();
    if (h == NULL)
        die("curl_easy_init failed");
    curl_easy_setopt(h, CURLOPT_URL, opt.http_url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink_write);
    return h;
}

/* One GET of [off, off + n) (n 0: the whole object, no Range) into s. */
static void easy_get(CURL *h, struct sink *s, uint64_t off, uint64_t n)
{
    char range[64];
    long status = 0;
    if (n > 0) {
        snprintf(range, sizeof range, "%llu-%llu", (unsigned long long)off,
                 (unsigned long long)(off + n - 1));
        curl_easy_setopt(h, CURLOPT_RANGE, range);
    } else {
        curl_easy_setopt(h, CURLOPT_RANGE, NULL);
    }
    curl_easy_setopt(h, CURLOPT_WRITEDATA, s);
    s->got = 0;
    CURLcode rc = curl_easy_perform(h);
    if (rc != CURLE_OK)
        die("http: GET %s: %s", opt.http_url, curl_easy_strerror(rc));
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (status != (n > 0 ? 206 : 200) || (n > 0 && s->got != n))
        die("http: GET %s (%s): status %ld, %zu bytes", opt.http_url,
            n > 0 ? range : "all", status, s->got);
}

/*
 * What a part asks: "Range: bytes=off-" or, with n, "bytes=off-(off+n-1)"
 * (!ranged: a plain GET, sb_open_url's first request) on h, read until
 * s->cap bytes are in (at least one byte with a NULL buffer), then the
 * transfer is ended.
 */
static void easy_first(CURL *h, struct sink *s, uint64_t off, uint64_t n,
                       bool ranged)
{
    char range[64];
    long status = 0;
    if (n > 0)
        snprintf(range, sizeof range, "%llu-%llu", (unsigned long long)off,
                 (unsigned long long)(off + n - 1));
    else
        snprintf(range, sizeof range, "%llu-", (unsigned long long)off);
    curl_easy_setopt(h, CURLOPT_RANGE, ranged ? range : NULL);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, s);
    s->got = 0;
    s->stop = true;
    CURLcode rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if ((rc != CURLE_OK && rc != CURLE_WRITE_ERROR) || s->got < s->cap ||
        status != (ranged ? 206 : 200))
        die("http: GET %s (%s): %s, status %ld, %zu bytes", opt.http_url,
            ranged ? range : "all", curl_easy_strerror(rc), status, s->got);
}

/* The object's length, from a HEAD. */
static uint64_t object_length(void)
{
    CURL *h = easy_new();
    curl_off_t len = -1;
    long status = 0;
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    CURLcode rc = curl_easy_perform(h);
    if (rc != CURLE_OK)
        die("http: HEAD %s: %s", opt.http_url, curl_easy_strerror(rc));
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &len);
    curl_easy_cleanup(h);
    if (status != 200 || len < 0)
        die("http: HEAD %s: status %ld, length %lld", opt.http_url, status,
            (long long)len);
    return (uint64_t)len;
}

/* ---- our side ------------------------------------------------------------------------ */

static sb_buffer *open_url(sb_options *o)
{
    o->tmp_dir = opt.tmp_dir;
    sb_buffer *b = sb_open_url(opt.http_url, o, NULL);
    if (b == NULL)
        die_errno("sb_open_url %s", opt.http_url);
    return b;
}

static sb_stats get_stats(sb_buffer *b)
{
    sb_stats st;
    if (sb_get_stats(b, &st) != 0)
        die_errno("sb_get_stats");
    return st;
}

/* One side's measurement: its time and what the server logged. */
struct meas {
    double t;
    double t_open; /* F1 ours: of t, the time sb_open_url took */
    struct tally log;
    sb_stats st; /* ours only */
};

/* ---- F1: a far first read ------------------------------------------------------------- */

static struct meas far_ours(uint64_t off, uint64_t read_ahead)
{
    struct meas m = { 0 };
    sb_options o = { .mem_limit = 4 * MiB, .read_ahead = read_ahead };
    unsigned char buf[F1_SIZE];

    log_reset();
    double t0 = now();
    sb_buffer *b = open_url(&o);
    m.t_open = now() - t0;
    if (sb_pread(b, buf, sizeof buf, off) != (ssize_t)sizeof buf)
        die_errno("http: far read");
    m.t = now() - t0;
    m.st = get_stats(b);
    sb_close(b);
    check_bytes(buf, sizeof buf, off);
    m.log = log_collect(1 + m.st.parts_opened);
    return m;
}

static struct meas far_limit(uint64_t off)
{
    struct meas m = { 0 };
    unsigned char buf[F1_SIZE];
    struct sink s = { .buf = buf, .cap = sizeof buf };

    log_reset();
    double t0 = now();
    CURL *h = easy_new();
    easy_get(h, &s, off, sizeof buf);
    m.t = now() - t0;
    curl_easy_cleanup(h);
    check_bytes(buf, sizeof buf, off);
    m.log = log_collect(1);
    return m;
}

/* sb_open_url's requests by libcurl: the first GET to its first body
   bytes, then a part's on a new connection to the 4 KiB. */
static struct meas far_wire(uint64_t off)
{
    struct meas m = { 0 };
    unsigned char buf[F1_SIZE];
    struct sink first = { .cap = 1 }, part = { .buf = buf, .cap = sizeof buf };

    log_reset();
    double t0 = now();
    CURL *h = easy_new(), *p = easy_new();
    easy_first(h, &first, 0, 0, false);
    easy_first(p, &part, off, 0, true);
    m.t = now() - t0;
    curl_easy_cleanup(h);
    curl_easy_cleanup(p);
    check_bytes(buf, sizeof buf, off);
    m.log = log_collect(2);
    return m;
}

/* ---- F2: random reads ----------------------------------------------------------------- */

struct f2 {
    sb_buffer *b;        /* ours; NULL: a libcurl side */
    bool wire;           /* that side sends ours' requests */
    CURL *h[F2_THREADS]; /* the limit's handles, one a thread */
    uint64_t len;
    uint64_t seed;
    atomic_int bad;
};

/* Thread idx's k-th offset, the same on both sides. */
static void f2_thread(void *arg, int idx)
{
    struct f2 *f = arg;
    unsigned char *buf = malloc(F2_WIRE);
    if (buf == NULL)
        die("out of memory");
    uint64_t x = f->seed * 64 + (uint64_t)idx;
    struct sink s = { .buf = buf, .cap = f->wire ? F2_WIRE : F2_SIZE };
    if (f->b == NULL)
        f->h[idx] = easy_new();
    for (int i = 0; i < F2_READS; i++) {
        uint64_t off = splitmix64(&x) % (f->len - F2_SIZE);
        if (f->wire) {
            /* A part's request, on a kept-alive connection as the source
               keeps them for its parts. */
            easy_get(f->h[idx], &s, off, F2_WIRE);
        } else if (f->b == NULL) {
            easy_get(f->h[idx], &s, off, F2_SIZE);
        } else if (sb_pread(f->b, buf, F2_SIZE, off) != (ssize_t)F2_SIZE) {
            atomic_fetch_add(&f->bad, 1);
            continue;
        }
        check_bytes(buf, F2_SIZE, off);
    }
    free(buf);
}

/* The ranges every side of F2 asks for with seed (f2_thread's). */
static void warm_f2(uint64_t len, uint64_t seed)
{
    for (int idx = 0; idx < F2_THREADS; idx++) {
        uint64_t x = seed * 64 + (uint64_t)idx;
        for (int i = 0; i < F2_READS; i++)
            warm(splitmix64(&x) % (len - F2_SIZE), F2_WIRE);
    }
}

static struct meas rand_ours(uint64_t len, uint64_t seed)
{
    struct meas m = { 0 };
    sb_options o = { .mem_limit = 4 * MiB, .read_ahead = MiB, .max_parts = 8 };

    log_reset();
    sb_buffer *b = open_url(&o);
    struct f2 f = { .b = b, .len = len, .seed = seed };
    m.t = team_run(F2_THREADS, f2_thread, &f);
    if (atomic_load(&f.bad) != 0)
        die("http: %d random reads failed", atomic_load(&f.bad));
    m.st = get_stats(b);
    sb_close(b);
    m.log = log_collect(1 + m.st.parts_opened);
    return m;
}

/* The limit; or (wire) ours' requests by libcurl. */
static struct meas rand_limit(uint64_t len, uint64_t seed, bool wire)
{
    struct meas m = { 0 };
    struct f2 f = { .len = len, .seed = seed, .wire = wire };

    log_reset();
    m.t = team_run(F2_THREADS, f2_thread, &f);
    for (int i = 0; i < F2_THREADS; i++)
        if (f.h[i] != NULL)
            curl_easy_cleanup(f.h[i]);
    m.log = log_collect(F2_THREADS * F2_READS);
    return m;
}

/* ---- F3: the whole object --------------------------------------------------------------- */

static struct meas drain_ours(uint64_t len)
{
    struct meas m = { 0 };
    sb_options o = { .mem_limit = 4 * MiB, .max_parts = 4 };
    uint64_t total = 0;

    log_reset();
    double t0 = now();
    sb_buffer *b = open_url(&o);
    if (sb_wait_end(b, &total) != 0)
        die_errno("http: drain");
    m.t = now() - t0;
    if (total != len)
        die("http: drain: %llu bytes, want %llu", (unsigned long long)total,
            (unsigned long long)len);
    m.st = get_stats(b);
    unsigned char buf[4096];
    for (int k = 0; k < 16; k++) {
        uint64_t off = (len - sizeof buf) / 15 * (uint64_t)k;
        if (sb_pread(b, buf, sizeof buf, off) != (ssize_t)sizeof buf)
            die_errno("http: read back");
        check_bytes(buf, sizeof buf, off);
    }
    sb_close(b);
    m.log = log_collect(1 + m.st.parts_opened);
    return m;
}

static struct meas drain_limit(uint64_t len)
{
    struct meas m = { 0 };
    struct sink s = { 0 };

    log_reset();
    double t0 = now();
    CURL *h = easy_new();
    easy_get(h, &s, 0, 0);
    m.t = now() - t0;
    curl_easy_cleanup(h);
    if (s.got != len)
        die("http: GET: %zu bytes, want %llu", s.got, (unsigned long long)len);
    m.log = log_collect(1);
    return m;
}

/* ---- the rows ------------------------------------------------------------------------- */

/* Times (s), ours against the limit of the same pair. */
static void time_row(const char *variant, const struct meas *ours,
                     const struct meas *lim, int n, double target)
{
    double a[MAX_REPS], b[MAX_REPS];
    for (int k = 0; k < n; k++) {
        a[k] = ours[k].t;
        b[k] = lim[k].t;
    }
    struct row r = row_init("http", 0, "ms", LOWER);
    snprintf(r.variant, sizeof r.variant, "%s", variant);
    row_reps(&r, a, b, n, 1000.0);
    r.target = target;
    report(&r);
}

/* A count of ours against a fixed need (or the limit's count). */
static void count_row(const char *variant, const double *ours,
                      const double *base, int n, const char *unit,
                      double scale, double target)
{
    struct row r = row_init("http", 0, unit, LOWER);
    snprintf(r.variant, sizeof r.variant, "%s", variant);
    row_reps(&r, ours, base, n, scale);
    r.target = target;
    report(&r);
}

/* Medians of a side's counters, for the reader who wants to know why. */
static void stats_line(const char *tag, const char *side, const struct meas *v,
                       int n)
{
    double a[MAX_REPS] = { 0 }, b[MAX_REPS] = { 0 }, c[MAX_REPS] = { 0 },
           d[MAX_REPS] = { 0 }, e[MAX_REPS] = { 0 };
    for (int k = 0; k < n; k++) {
        a[k] = (double)v[k].st.parts_opened;
        b[k] = (double)v[k].st.parts_moved;
        c[k] = (double)v[k].st.part_retries;
        d[k] = (double)v[k].st.refetched;
        e[k] = (double)v[k].st.seek_gap;
    }
    printf("           %s %s: parts_opened %.0f, parts_moved %.0f, retries %.0f,"
           " refetched %.0f KiB, seek_gap %.2f MiB", tag, side, median(a, n),
           median(b, n), median(c, n), median(d, n) / (double)KiB,
           median(e, n) / (double)MiB);
    if (opt.http_log != NULL) {
        for (int k = 0; k < n; k++) {
            a[k] = (double)v[k].log.requests;
            b[k] = (double)v[k].log.bytes;
            c[k] = (double)v[k].log.not2xx;
        }
        printf("; server %.0f requests, %.2f MiB", median(a, n),
               median(b, n) / (double)MiB);
        if (median(c, n) > 0)
            printf(", %.0f not 2xx", median(c, n));
    }
    printf("\n");
}

/*
 * The server's bytes for ours over `need` (target: 'target', NAN none), and
 * the requests of each side; then a line of ours' stats (medians).
 */
static void server_rows(const char *tag, const char *need_name, double need,
                        const struct meas *ours, const struct meas *lim, int n,
                        double target)
{
    double a[MAX_REPS], b[MAX_REPS];
    char v[40];
    if (opt.http_log != NULL) {
        for (int k = 0; k < n; k++) {
            a[k] = (double)ours[k].log.bytes;
            b[k] = need;
        }
        snprintf(v, sizeof v, "%s server bytes / %s", tag, need_name);
        count_row(v, a, b, n, "MiB", 1.0 / (double)MiB, target);
        for (int k = 0; k < n; k++) {
            a[k] = (double)ours[k].log.requests;
            b[k] = (double)lim[k].log.requests;
        }
        snprintf(v, sizeof v, "%s requests ours / limit", tag);
        count_row(v, a, b, n, "req", 1.0, NAN);
    }
    for (int k = 0; k < n; k++) {
        a[k] = (double)ours[k].st.fetched;
        b[k] = need;
    }
    snprintf(v, sizeof v, "%s fetched / %s", tag, need_name);
    count_row(v, a, b, n, "MiB", 1.0 / (double)MiB, NAN);

    stats_line(tag, "ours", ours, n);
    for (int k = 0; k < n; k++)
        a[k] = (double)lim[k].log.bytes;
    printf("           %s limit: server %.2f MiB\n", tag, median(a, n) / (double)MiB);
    fflush(stdout);
}

void case_http(void)
{
    if (opt.http_url == NULL) {
        fprintf(stderr, "http: no --url, skipped\n");
        return;
    }
    if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK)
        die("curl_global_init failed");
    if (opt.http_file != NULL) {
        file_fd = open(opt.http_file, O_RDONLY | O_CLOEXEC);
        if (file_fd < 0)
            die_errno("%s", opt.http_file);
    }
    const uint64_t len = object_length();
    if (len < 2 * MiB)
        die("http: %s: %llu bytes; the cases need 2 MiB at least", opt.http_url,
            (unsigned long long)len);
    char sz[32];
    printf("http: %s, %s (%llu bytes)%s%s\n", opt.http_url,
           fmt_size((size_t)len, sz, sizeof sz), (unsigned long long)len,
           opt.http_log != NULL ? ", server log " : "",
           opt.http_log != NULL ? opt.http_log : "");
    fflush(stdout);

    static struct meas ours[MAX_REPS], lim[MAX_REPS];
    const int reps = opt.reps;

    /* F1: one ranged GET of 4 KiB. */
    const uint64_t off = len / 1024 * 900;
    static struct meas lazy[MAX_REPS], wire[MAX_REPS];
    for (int k = 0; k < reps; k++) {
        warm(0, 4 * MiB); /* what the first response pushes */
        warm(off, F1_SIZE);
        ours[k] = far_ours(off, 0);
        lim[k] = far_limit(off);
        lazy[k] = far_ours(off, 64 * KiB);
        wire[k] = far_wire(off);
    }
    time_row("F1 4K at 900/1024 first read", ours, lim, reps, 3.0);
    server_rows("F1", "4 KiB", F1_SIZE, ours, lim, reps, NAN);
    double a[MAX_REPS], b[MAX_REPS];
    for (int k = 0; k < reps; k++) {
        a[k] = ours[k].t_open;
        b[k] = ours[k].t - ours[k].t_open;
    }
    printf("           F1 ours: sb_open_url %.3f ms, then the read %.3f ms (medians)\n",
           median(a, reps) * 1000, median(b, reps) * 1000);
    time_row("F1 same with read_ahead 64K", lazy, lim, reps, NAN);
    stats_line("F1", "read_ahead 64K", lazy, reps);
    time_row("F1 wire: libcurl sends ours' GETs", wire, lim, reps, NAN);

    /* F2: 8 threads x 32 ranged GETs. */
    for (int k = 0; k < reps; k++) {
        warm(0, 4 * MiB);
        warm_f2(len, (uint64_t)k + 1);
        ours[k] = rand_ours(len, (uint64_t)k + 1);
        lim[k] = rand_limit(len, (uint64_t)k + 1, false);
        wire[k] = rand_limit(len, (uint64_t)k + 1, true);
    }
    time_row("F2 8x32 rand 64K ra 1M 8 parts", ours, lim, reps, 2.0);
    server_rows("F2", "16 MiB", (double)F2_THREADS * F2_READS * F2_SIZE, ours,
                lim, reps, NAN);
    time_row("F2 wire: libcurl sends ours' GETs", wire, lim, reps, NAN);
    for (int k = 0; k < reps; k++)
        b[k] = (double)wire[k].log.bytes;
    if (opt.http_log != NULL)
        printf("           F2 wire: server %.2f MiB\n", median(b, reps) / (double)MiB);

    /* F3: one connection's drain. */
    for (int k = 0; k < reps; k++) {
        warm(0, len);
        ours[k] = drain_ours(len);
        lim[k] = drain_limit(len);
    }
    time_row("F3 drain 4 parts vs 1 GET", ours, lim, reps, 0.35);
    server_rows("F3", "length", (double)len, ours, lim, reps, 1.02);

    if (file_fd >= 0)
        close(file_fd);
    file_fd = -1;
    curl_global_cleanup();
}
