/* SPDX-License-Identifier: MIT */
/*
 * main.c - sbbench: options, the case list, the results table and CSV.
 *
 *   sbbench [--case NAME[,NAME...]] [--threads N|LIST] [--size BYTES]
 *           [--mem-limit BYTES] [--read-size LIST] [--seconds S] [--reps N]
 *           [--csv FILE] [--strict] ...        (sbbench --help for all)
 *
 * Built twice: build/bench/sbbench, and build/bench/sbbench_http (with
 * -DSBBENCH_HTTP, cases_http.c and libstreambuffer_http over libcurl),
 * whose only case by default is http (bench/http.sh runs it).
 *
 * Every row is printed as soon as it is measured: our median, the
 * baseline's median (the physical limit, measured in the same run,
 * interleaved with ours), their ratio, the spread of the ratio over the
 * paired measurements, and the target.  No verdict: on a shared machine
 * one run says little, and bench/runs.sh gives medians over several.
 */
#include "bench.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

struct opts opt;

/* ---- the cases ------------------------------------------------------------------ */

static const struct bench_case {
    enum case_id id;
    const char *name;
    void (*run)(void);
    const char *what;
} cases[CASE_COUNT] = {
    { CASE_RAND_MEM, "rand-mem", case_rand_mem,
      "random 64 B and 4 KiB reads of filled in-memory bytes, 1..N threads\n"
      "                   vs memcpy from a plain array at the same offsets" },
    { CASE_LARGE, "large", case_large,
      "random 1 MiB reads of in-memory bytes vs memcpy" },
    { CASE_RAND_SPILL, "rand-spill", case_rand_spill,
      "random 4 KiB reads of spilled bytes, 1..N threads\n"
      "                   vs pread of a page-cached temp file of the same bytes" },
    { CASE_FILL, "fill", case_fill,
      "sb_open..sb_wait_end of a stream copied from memory, in memory and\n"
      "                   spilling, vs memcpy into fresh pages (+ pwrite past the limit)" },
    { CASE_FOLLOW, "follow", case_follow,
      "4 readers follow the stream while the producer fills it\n"
      "                   vs write it once, then 4 threads read it back" },
    { CASE_WAKEUP, "wakeup", case_wakeup,
      "latency from a slow source's hand-over to the waiting reader's return\n"
      "                   vs a bare mutex + condition variable hand-off; released\n"
      "                   once the reader sleeps, and once it is queued (it spins)" },
    { CASE_WAITERS, "waiters", case_waiters,
      "64 readers blocked at different offsets: wake-ups per satisfied wait" },
    { CASE_RSS, "rss", case_rss,
      "peak RSS of a 1 GiB stream with a 4 MiB limit (--rss-size,\n"
      "                   --mem-limit), one reader following, in a child process" },
    { CASE_SEED, "seed", NULL,
      "the seed's design (one lock across pull and copy, the reader pulls)\n"
      "                   on rand-mem, rand-spill and follow: its ratio in column seed/base" },
    { CASE_RELEASE, "release", case_release,
      "4 readers follow through sb_readers that release (SB_RELEASE,\n"
      "                   max_retained --retain) vs the plain follow; then peak RSS\n"
      "                   and spill disk of a --rss-size stream, in a child process" },
    { CASE_LIVE, "live", case_live,
      "1, 4, 64 readers on a live stream (followers, 64 KiB reads; sorted\n"
      "                   random 4 KiB reads), memory and spilling, vs the lower bound\n"
      "                   of the work: max(stores, copies, both / cores); wake-ups per read" },
    { CASE_ZEROCOPY, "zerocopy", case_zerocopy,
      "random 4 KiB views vs sb_pread; SB_MMAP_READS vs pread of spilled\n"
      "                   bytes; sb_sendfile of a spilled stream to loopback TCP vs\n"
      "                   sendfile of a plain file" },
    { CASE_SERVE, "serve", case_serve,
      "build/examples/serve (-m --mem-limit) to --clients (10000) clients,\n"
      "                   each a 256 KiB range of a --size stream fed while it is served,\n"
      "                   vs a forked sendfile server of a page-cached file; and\n"
      "                   peak RSS per client of each server" },
    { CASE_RANGED, "ranged", case_ranged,
      "a paced seekable source (100 MB/s a part, 2 ms to the first byte,\n"
      "                   --ranged-size): 4 KiB at 900/1024 of it, 8x32 random 64 KiB\n"
      "                   reads, a drain over 4 parts, vs the source's model; and\n"
      "                   the bytes fetched over the bytes needed" },
#ifdef SBBENCH_HTTP
    { CASE_HTTP, "http", case_http,
      "sb_open_url of --url (bench/http.sh: nginx, 100 MB/s a connection):\n"
      "                   F1 to F3 of ranged vs one libcurl client of the same\n"
      "                   server (one ranged GET; 8 threads of ranged GETs; one\n"
      "                   plain GET), and the server's bytes and requests (--http-log)" },
#endif
};

/* ---- options ---------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
"usage: sbbench [options]\n"
"\n"
"Benchmarks streambuffer against the physical limits measured in the same run\n"
"(memcpy, pread, pwrite, a bare condition variable), interleaving the two\n"
"(ours, base, ours, base, ...) and reporting medians and their ratio.\n"
"\n"
"Cases (all by default):\n");
    for (int i = 0; i < CASE_COUNT; i++)
        fprintf(f, "  %d %-14s %s\n", i + 1, cases[i].name, cases[i].what);
    fprintf(f,
"\n"
"Options (BYTES take K, M, G suffixes, binary; LISTs are comma-separated):\n"
"  --case NAME[,NAME]    run only these cases (names or numbers); `seed` alone\n"
"                        runs rand-mem, rand-spill and follow with the seed\n"
"  --threads N|LIST      thread counts: N means 1, 2, 4, ... N (default: 1..CPUs,\n"
"                        at least 1,2, at most 16); or an exact list, e.g. 1,3,8\n"
"  --size BYTES          stream size of cases 1-5 (default 256M)\n"
"  --mem-limit BYTES     memory limit of the spilling variants and of rss\n"
"                        (default 4M)\n"
"  --read-size LIST      random read sizes of rand-mem and rand-spill\n"
"                        (default: 64,4K and 4K)\n"
"  --follow-read BYTES   read size of the follow readers (default 256K)\n"
"  --rss-size BYTES      stream size of the rss case and of release's peaks\n"
"                        (default 1G)\n"
"  --retain BYTES        max_retained of the release case (default 16M)\n"
"  --ranged-size BYTES   stream size of the ranged case (default 1G)\n"
#ifdef SBBENCH_HTTP
"  --url URL             the http case's object (sbbench_http runs only the\n"
"                        http case unless --case says otherwise)\n"
"  --http-log FILE       its server's access log, lines of \"$status $bytes_sent\n"
"                        $body_bytes_sent ...\": emptied before each measurement,\n"
"                        then read (requests and bytes of each side)\n"
"  --http-file FILE      the file the server serves: every byte read is checked\n"
#endif
"  --quick               a quick check that runs: --ranged-size 128M, --reps 3\n"
"  --clients N           clients of the serve case (default 10000; needs\n"
"                        N + 64 descriptors under RLIMIT_NOFILE's hard limit)\n"
"  --serve PATH          the serve example (default: examples/serve beside\n"
"                        the directory of sbbench's, build/examples/serve)\n"
"  --seconds S           least duration of one timed measurement of the read\n"
"                        cases (default 0.1); fill and follow time one whole\n"
"                        stream of --size per measurement\n"
"  --reps N              measurements per side and row, median reported\n"
"                        (default 9; fewer than 5 only for quick checks)\n"
"  --csv FILE            also write the rows to FILE as CSV:\n"
"                        case,variant,threads,ours,base,unit,ratio,lo,hi,target\n"
"  --tmp-dir DIR         where temp files go (default $TMPDIR, else /tmp)\n"
"  --strict              exit 1 if a median ratio misses its target\n"
"                        (default: always 0; targets are information)\n"
"  -v, --verbose         print every measurement (per rep, per side) to stderr\n"
"  -h, --help            this text\n"
"\n"
"ratio is ours/baseline, the median of the reps; spread is the lowest and\n"
"highest ratio of one interleaved pair (ours, base).  For throughput (Mop/s,\n"
"GiB/s) higher is better and the target is a minimum; for latency (us),\n"
"wake-ups and RSS (MiB) lower is better and the target is a maximum.\n"
"Targets are information, not verdicts: the exit status is 0 unless\n"
"--strict is given.  bench/runs.sh N runs sbbench N times and reports the\n"
"median ratio of each row over the runs with its range.\n");
}

static NORETURN void bad_usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "sbbench: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(sbbench --help for the options)\n");
    exit(2);
}

/* "4096", "4K", "4KiB", "256M", "1G". */
static size_t parse_size(const char *s)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || s[0] == '-')
        bad_usage("not a size: %s", s);
    int shift = 0;
    switch (*end) {
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    default: break;
    }
    if (shift != 0 && *end == 'i')
        end++;
    if (*end == 'B' || *end == 'b')
        end++;
    if (*end != '\0' || (shift != 0 && v > (~0ull >> shift)))
        bad_usage("not a size: %s", s);
    return (size_t)(v << shift);
}

/* Split a comma list; calls fn on each item. */
static void each_item(const char *list, void (*fn)(const char *item, void *arg),
                      void *arg)
{
    char *copy = strdup(list), *save = NULL;
    if (copy == NULL)
        die("out of memory");
    for (char *t = strtok_r(copy, ",", &save); t != NULL;
         t = strtok_r(NULL, ",", &save))
        fn(t, arg);
    free(copy);
}

static void add_case(const char *item, void *arg)
{
    bool *want = arg;
    for (int i = 0; i < CASE_COUNT; i++) {
        char num[8];
        snprintf(num, sizeof num, "%d", i + 1);
        if (strcmp(item, cases[i].name) == 0 || strcmp(item, num) == 0) {
            want[i] = true;
            return;
        }
    }
    bad_usage("no such case: %s", item);
}

static void add_read_size(const char *item, void *arg)
{
    (void)arg;
    if (opt.nread_sizes == MAX_LIST)
        bad_usage("too many read sizes: %s", item);
    size_t n = parse_size(item);
    if (n == 0)
        bad_usage("read size must be positive: %s", item);
    opt.read_sizes[opt.nread_sizes++] = n;
}

static void add_threads(const char *item, void *arg)
{
    (void)arg;
    char *end;
    long n = strtol(item, &end, 10);
    if (*end != '\0' || n < 1 || n > MAX_THREADS)
        bad_usage("thread count must be 1..64: %s", item);
    if (opt.nthreads == MAX_LIST)
        bad_usage("too many thread counts: %s", item);
    opt.threads[opt.nthreads++] = (int)n;
}

/* 1, 2, 4, ... up to n, and n itself. */
static void threads_up_to(int n)
{
    opt.nthreads = 0;
    for (int t = 1; t < n && opt.nthreads < MAX_LIST - 1; t *= 2)
        opt.threads[opt.nthreads++] = t;
    opt.threads[opt.nthreads++] = n;
}

static void parse_options(int argc, char **argv)
{
    enum { O_CASE = 256, O_THREADS, O_SIZE, O_MEM, O_READ, O_FOLLOW, O_RSS,
           O_RETAIN, O_RANGED, O_URL, O_HTTP_LOG, O_HTTP_FILE, O_QUICK, O_CLIENTS, O_SERVE, O_SECONDS, O_REPS, O_CSV, O_TMP, O_STRICT, O_VERBOSE };
    static const struct option longopts[] = {
        { "case", required_argument, NULL, O_CASE },
        { "threads", required_argument, NULL, O_THREADS },
        { "size", required_argument, NULL, O_SIZE },
        { "mem-limit", required_argument, NULL, O_MEM },
        { "read-size", required_argument, NULL, O_READ },
        { "follow-read", required_argument, NULL, O_FOLLOW },
        { "rss-size", required_argument, NULL, O_RSS },
        { "retain", required_argument, NULL, O_RETAIN },
        { "ranged-size", required_argument, NULL, O_RANGED },
#ifdef SBBENCH_HTTP
        { "url", required_argument, NULL, O_URL },
        { "http-log", required_argument, NULL, O_HTTP_LOG },
        { "http-file", required_argument, NULL, O_HTTP_FILE },
#endif
        { "quick", no_argument, NULL, O_QUICK },
        { "clients", required_argument, NULL, O_CLIENTS },
        { "serve", required_argument, NULL, O_SERVE },
        { "seconds", required_argument, NULL, O_SECONDS },
        { "reps", required_argument, NULL, O_REPS },
        { "csv", required_argument, NULL, O_CSV },
        { "tmp-dir", required_argument, NULL, O_TMP },
        { "strict", no_argument, NULL, O_STRICT },
        { "verbose", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    bool any_case = false;
    char *end;

    opt.size = 256 * MiB;
    opt.mem_limit = 4 * MiB;
    opt.follow_read = 256 * KiB;
    opt.rss_size = GiB;
    opt.retain = 16 * MiB;
    opt.ranged_size = GiB;
    opt.clients = 10000;
    opt.seconds = 0.1;
    opt.reps = 9;
    opt.tmp_dir = getenv("TMPDIR");
    if (opt.tmp_dir == NULL || opt.tmp_dir[0] == '\0')
        opt.tmp_dir = "/tmp";
    threads_up_to(ncpu < 2 ? 2 : ncpu > 16 ? 16 : (int)ncpu);

    int c;
    while ((c = getopt_long(argc, argv, "hv", longopts, NULL)) != -1) {
        switch (c) {
        case O_CASE:
            each_item(optarg, add_case, opt.want);
            any_case = true;
            break;
        case O_THREADS:
            if (strchr(optarg, ',') != NULL) {
                opt.nthreads = 0;
                each_item(optarg, add_threads, NULL);
            } else {
                long n = strtol(optarg, &end, 10);
                if (*end != '\0' || n < 1 || n > MAX_THREADS)
                    bad_usage("thread count must be 1..64: %s", optarg);
                threads_up_to((int)n);
            }
            break;
        case O_SIZE: opt.size = parse_size(optarg); break;
        case O_MEM: opt.mem_limit = parse_size(optarg); break;
        case O_READ:
            opt.nread_sizes = 0;
            each_item(optarg, add_read_size, NULL);
            break;
        case O_FOLLOW: opt.follow_read = parse_size(optarg); break;
        case O_RSS: opt.rss_size = parse_size(optarg); break;
        case O_RETAIN: opt.retain = parse_size(optarg); break;
        case O_RANGED: opt.ranged_size = parse_size(optarg); break;
        case O_URL: opt.http_url = optarg; break;
        case O_HTTP_LOG: opt.http_log = optarg; break;
        case O_HTTP_FILE: opt.http_file = optarg; break;
        case O_QUICK:
            /* A check that the cases run, not a measurement: the ranged
               drain of 1 GiB alone takes 2.7 s a rep. */
            opt.ranged_size = 128 * MiB;
            opt.reps = 3;
            break;
        case O_CLIENTS: {
            long n = strtol(optarg, &end, 10);
            if (*end != '\0' || n < 1 || n > 1000000)
                bad_usage("--clients must be 1..1000000: %s", optarg);
            opt.clients = (int)n;
            break;
        }
        case O_SERVE: opt.serve_bin = optarg; break;
        case O_SECONDS:
            opt.seconds = strtod(optarg, &end);
            if (*end != '\0' || !(opt.seconds > 0) || opt.seconds > 60)
                bad_usage("--seconds must be in (0, 60]: %s", optarg);
            break;
        case O_REPS: {
            long n = strtol(optarg, &end, 10);
            if (*end != '\0' || n < 1 || n > MAX_REPS)
                bad_usage("--reps must be 1..101: %s", optarg);
            opt.reps = (int)n;
            break;
        }
        case O_CSV: opt.csv = optarg; break;
        case O_TMP: opt.tmp_dir = optarg; break;
        case O_STRICT: opt.strict = true; break;
        case 'v': opt.verbose = true; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); exit(2);
        }
    }
    if (optind < argc)
        bad_usage("unexpected argument: %s", argv[optind]);
#ifdef SBBENCH_HTTP
    /* sbbench_http is built for its own case; the others are sbbench's. */
    if (!any_case) {
        opt.want[CASE_HTTP] = true;
        any_case = true;
    }
#endif
    if (!any_case)
        for (int i = 0; i < CASE_COUNT; i++)
            opt.want[i] = true;
    /* The seed is measured inside the cases it is compared on. */
    bool host = opt.want[CASE_RAND_MEM] || opt.want[CASE_RAND_SPILL]
                || opt.want[CASE_FOLLOW];
    if (opt.want[CASE_SEED] && !host)
        opt.want[CASE_RAND_MEM] = opt.want[CASE_RAND_SPILL]
            = opt.want[CASE_FOLLOW] = true;
    if (opt.ranged_size < 2 * MiB)
        bad_usage("--ranged-size must be at least 2M%s", "");
    if (opt.size < 2 * MiB)
        bad_usage("--size must be at least 2M%s", "");
    if (opt.mem_limit == 0 || opt.rss_size == 0 || opt.follow_read == 0)
        bad_usage("--mem-limit, --rss-size and --follow-read must be"
                  " positive%s", "");
    if (opt.mem_limit >= opt.size
        && (opt.want[CASE_RAND_SPILL] || opt.want[CASE_FILL]
            || opt.want[CASE_FOLLOW]))
        bad_usage("--mem-limit must be below --size for the spilling"
                  " cases%s", "");
    for (int i = 0; i < opt.nread_sizes; i++)
        if (opt.read_sizes[i] > opt.size - (opt.want[CASE_RAND_SPILL]
                                            ? opt.mem_limit : 0))
            bad_usage("--read-size too large for --size%s", "");
}

/* ---- the table ----------------------------------------------------------------------- */

static FILE *csv;
static int n_targets, n_miss;
static char missed[1024];

struct row row_init(const char *name, int threads, const char *unit,
                    enum better better)
{
    struct row r = { .name = name, .threads = threads, .unit = unit,
                     .better = better, .target = NAN, .seed = NAN,
                     .lo = NAN, .hi = NAN, .faults = NAN,
                     .base_faults = NAN };
    return r;
}

void row_reps(struct row *r, const double *ours, const double *base, int n,
              double scale)
{
    r->ours = median(ours, n) * scale;
    r->base = median(base, n) * scale;
    r->lo = INFINITY;
    r->hi = -INFINITY;
    for (int k = 0; k < n; k++) {
        double q = ours[k] / base[k];
        r->lo = q < r->lo ? q : r->lo;
        r->hi = q > r->hi ? q : r->hi;
    }
}

/* A figure with its unit, 3 significant digits or so. */
static const char *fmt_val(double v, const char *unit, char *out, size_t cap)
{
    double a = fabs(v);
    int prec = a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : 3;
    snprintf(out, cap, "%.*f %s", prec, v, unit);
    return out;
}

static const char *fmt_target(const struct row *r, char *out, size_t cap)
{
    if (isnan(r->target))
        snprintf(out, cap, "-");
    else
        snprintf(out, cap, "%s%.2f", r->better == HIGHER ? ">=" : "<=",
                 r->target);
    return out;
}

/* Whether the median ratio misses the target (for --strict only). */
static bool misses(const struct row *r, double ratio)
{
    if (isnan(r->target))
        return false;
    return r->better == HIGHER ? ratio < r->target : ratio > r->target;
}

static void csv_field(const char *s)
{
    if (strpbrk(s, ",\"\n") == NULL) {
        fputs(s, csv);
        return;
    }
    fputc('"', csv);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', csv);
        fputc(*s, csv);
    }
    fputc('"', csv);
}

static void csv_row(const char *name, const char *variant, int threads,
                    double ours, double base, const char *unit, double ratio,
                    double lo, double hi, const char *target, double faults,
                    double base_faults)
{
    if (csv == NULL)
        return;
    csv_field(name);
    fputc(',', csv);
    csv_field(variant);
    fprintf(csv, ",%d,%.6g,%.6g,", threads, ours, base);
    csv_field(unit);
    fprintf(csv, ",%.4f,", ratio);
    if (!isnan(lo))
        fprintf(csv, "%.4f,%.4f", lo, hi);
    else
        fputc(',', csv);
    fprintf(csv, ",%s,", strcmp(target, "-") ? target : "");
    if (!isnan(faults))
        fprintf(csv, "%.2f,%.2f", faults, base_faults);
    else
        fputc(',', csv);
    fputc('\n', csv);
    fflush(csv);
}

void report(const struct row *r)
{
    char ours[32], base[32], target[16], thr[16], seed[16], spread[24];
    char faults[24];
    double ratio = r->ours / r->base;

    if (r->threads > 0)
        snprintf(thr, sizeof thr, "%d", r->threads);
    else
        snprintf(thr, sizeof thr, "-");
    if (isnan(r->seed))
        seed[0] = '\0';
    else
        snprintf(seed, sizeof seed, "%.3f", r->seed / r->base);
    if (isnan(r->lo))
        snprintf(spread, sizeof spread, "-");
    else
        snprintf(spread, sizeof spread, "%.2f-%.2f", r->lo, r->hi);
    if (isnan(r->faults))
        snprintf(faults, sizeof faults, "-");
    else
        snprintf(faults, sizeof faults, "%.1f/%.1f", r->faults, r->base_faults);
    printf("%-10s %-30s %3s %15s %15s %9.3f %11s %7s %9s %13s\n", r->name,
           r->variant, thr, fmt_val(r->ours, r->unit, ours, sizeof ours),
           fmt_val(r->base, r->unit, base, sizeof base), ratio, spread,
           fmt_target(r, target, sizeof target), seed, faults);
    fflush(stdout);

    n_targets += !isnan(r->target);
    if (misses(r, ratio)) {
        n_miss++;
        size_t used = strlen(missed);
        snprintf(missed + used, sizeof missed - used, "%s  %s %s, %s thr",
                 used ? "\n" : "", r->name, r->variant, thr);
    }
    csv_row(r->name, r->variant, r->threads, r->ours, r->base, r->unit, ratio,
            r->lo, r->hi, target, r->faults, r->base_faults);
    if (!isnan(r->seed)) {
        char sv[64];
        snprintf(sv, sizeof sv, "%s %s", r->name, r->variant);
        csv_row("seed", sv, r->threads, r->seed, r->base, r->unit,
                r->seed / r->base, NAN, NAN, "-", NAN, NAN);
    }
}

/* Only the http case (sbbench_http's default): its own header and notes. */
static bool http_only(void)
{
#ifdef SBBENCH_HTTP
    for (int i = 0; i < CASE_COUNT; i++)
        if (opt.want[i] != (i == CASE_HTTP))
            return false;
    return true;
#else
    return false;
#endif
}

static void header(void)
{
    struct utsname u;
    char model[128] = "?", line[256], sz[32], ml[32];
    double load[3] = { 0, 0, 0 };
    FILE *f = fopen("/proc/cpuinfo", "r");

    if (f != NULL) {
        while (fgets(line, sizeof line, f) != NULL) {
            char *colon = strchr(line, ':');
            if (strncmp(line, "model name", 10) == 0 && colon != NULL) {
                snprintf(model, sizeof model, "%s", colon + 2);
                model[strcspn(model, "\n")] = '\0';
                break;
            }
        }
        fclose(f);
    }
    if (uname(&u) != 0)
        snprintf(u.release, sizeof u.release, "?");
    if (getloadavg(load, 3) < 0)
        load[0] = NAN;

    printf("sbbench: streambuffer %d.%d.%d | %ld CPUs online (%s) | Linux %s"
           " | load %.2f\n",
           SB_VERSION_MAJOR, SB_VERSION_MINOR, SB_VERSION_PATCH,
           sysconf(_SC_NPROCESSORS_ONLN), model, u.release, load[0]);
    if (http_only()) {
        printf("%d reps (median; ours and its limit interleaved), tmp %s\n",
               opt.reps, opt.tmp_dir);
    } else {
        printf("size %s, mem-limit %s, threads", fmt_size(opt.size, sz, sizeof sz),
               fmt_size(opt.mem_limit, ml, sizeof ml));
        for (int i = 0; i < opt.nthreads; i++)
            printf("%c%d", i ? ',' : ' ', opt.threads[i]);
        printf(", %d reps x >= %.3g s each (median; ours and base interleaved)"
               ", tmp %s\n", opt.reps, opt.seconds, opt.tmp_dir);
    }
    if (opt.reps < 5)
        printf("(fewer than 5 reps: a quick check, not a measurement)\n");
    if (http_only())
        printf("\n");
    else
        printf("limits in huge pages (transparent_hugepage %s); faults: minor"
               " page faults per MiB of stream, ours/base\n\n", thp_mode());
    printf("%-10s %-30s %3s %15s %15s %9s %11s %7s %9s %13s\n", "case",
           "variant", "thr", "ours", "baseline", "ours/base", "spread",
           "target", "seed/base", "faults");
    fflush(stdout);
}

/* CPU time of all CPUs from /proc/stat: total and stolen by the host (in
   a virtual machine), in ticks.  Returns false if unreadable. */
static bool cpu_ticks(unsigned long long *total, unsigned long long *steal)
{
    unsigned long long v[8] = { 0 };
    FILE *f = fopen("/proc/stat", "r");
    if (f == NULL)
        return false;
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0],
                   &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (n < 8)
        return false;
    *total = 0;
    for (int i = 0; i < 8; i++)
        *total += v[i];
    *steal = v[7];
    return true;
}

int main(int argc, char **argv)
{
    parse_options(argc, argv);
    if (opt.csv != NULL) {
        csv = fopen(opt.csv, "w");
        if (csv == NULL)
            die_errno("%s", opt.csv);
        fprintf(csv, "case,variant,threads,ours,base,unit,ratio,lo,hi,target,"
                     "faults_per_mib,base_faults_per_mib\n");
    }

    unsigned long long tot0 = 0, st0 = 0, tot1 = 0, st1 = 0;
    bool ticks = cpu_ticks(&tot0, &st0);
    double t0 = now();
    header();
    for (int i = 0; i < CASE_COUNT; i++) {
        if (!opt.want[i] || cases[i].run == NULL)
            continue;
        /* rss forks: give it a lean parent. */
        if (cases[i].id == CASE_RSS)
            stream_bytes_free();
        double tc = now();
        cases[i].run();
        if (opt.verbose)
            fprintf(stderr, "    (%s: %.1f s)\n", cases[i].name, now() - tc);
    }
    stream_bytes_free();

    if (http_only())
        printf("\n"
"ratio = ours/baseline, medians; spread = lowest-highest ratio of one\n"
"interleaved pair (ours, limit).  The limits are one libcurl client of the\n"
"same server: one ranged GET on a new connection (F1), 8 threads of ranged\n"
"GETs on keep-alive connections (F2), one plain GET (F3).  server bytes:\n"
"$bytes_sent from the server's log (headers included; a connection closed\n"
"early counts what the server had written to it); fetched: sb_stats.fetched.\n"
"Lower is better; the target is a maximum.  Targets are not verdicts.\n");
    else
        printf("\n"
"ratio = ours/baseline, medians; spread = lowest-highest ratio of one\n"
"interleaved pair of measurements (a round, for wakeup).  Throughput (Mop/s,\n"
"GiB/s): higher is better, the target is a minimum; latency (us), wake-ups\n"
"and RSS: lower is better, the target is a maximum.  Targets are not\n"
"verdicts: one run on a shared machine is one sample (bench/runs.sh).\n"
"seed/base: the seed's design (one lock across pull and\n"
"copy) against the same baseline.  follow: stream bytes per second, 4 readers.\n"
"waiters: baseline = the ideal, 1 wake-up per satisfied wait; the max row is\n"
"an upper bound on any one reader's wake-ups for one range.  rss: peak RSS\n"
"above the child's baseline; baseline = the limit, mem-limit + 8 MiB.\n");
    printf("\n%.0f s", now() - t0);
    if (ticks && cpu_ticks(&tot1, &st1) && tot1 > tot0)
        printf("; CPU time stolen by the host: %.1f%%",
               100.0 * (double)(st1 - st0) / (double)(tot1 - tot0));
    printf("\n");
    if (opt.strict && n_miss > 0)
        printf("--strict: %d of %d targets missed by the median:\n%s\n",
               n_miss, n_targets, missed);
    if (csv != NULL && fclose(csv) != 0)
        die_errno("%s", opt.csv);
    return opt.strict && n_miss > 0 ? 1 : 0;
}
