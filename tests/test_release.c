/* SPDX-License-Identifier: MIT */
/*
 * test_release.c - readers, floors and SB_RELEASE: ESPIPE below a floor,
 * what the buffer's floor is, memory and disk given back, an endless
 * stream through a small tmpfs, reads racing releases (run it under
 * ThreadSanitizer), a FILE that releases as it reads, and a failed give-back.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "fault.h"
#include "internal.h" /* release_mu, sb__give_back: the writer's side */
#include "stream.h"

#define KB ((uint64_t)1024)
#define MB (KB * KB)

#if defined(__SANITIZE_THREAD__)
#define ENDLESS_BYTES (256 * MB)
#elif defined(__SANITIZE_ADDRESS__)
#define ENDLESS_BYTES (1024 * MB)
#else
#define ENDLESS_BYTES (3072 * MB)
#endif

/* Read [off, off + n) through r (or plainly with r NULL) and compare. */
static int read_ok(sb_buffer *b, sb_reader *r, uint64_t off, size_t n)
{
    unsigned char *buf = malloc(n);
    if (buf == NULL)
        return -1;
    ssize_t got = r ? sb_reader_pread(r, buf, n, off) : sb_pread(b, buf, n, off);
    int rc = got == (ssize_t)n && pat_mismatches(buf, n, off) == 0 ? 0 : -1;
    if (rc != 0)
        fprintf(stderr, "read %zu at %llu: %zd (errno %d)\n", n,
                (unsigned long long)off, got, errno);
    free(buf);
    return rc;
}

/* ---- floors ------------------------------------------------------------------------ */

static void test_espipe_below_floor(void **state)
{
    (void)state;
    count_src *s = fx_count(1 * MB, 0);
    sb_options o = {.flags = SB_RELEASE, .mem_limit = 64 * KB,
                    .tmp_dir = fx_scratch()};
    sb_buffer *b = open_count(s, &o);
    assert_non_null(b);
    assert_int_equal(sb_wait_end(b, NULL), 0);
    sb_reader *r = fx_sb_reader(b, 0);
    assert_non_null(r);
    assert_int_equal(sb_floor(b), 0);
    assert_int_equal(read_ok(b, r, 0, 100 * KB), 0);
    assert_int_equal(sb_reader_release(r, 100 * KB), 0);
    assert_int_equal(sb_floor(b), 100 * KB);

    unsigned char buf[16];
    /* Below the floor: through the reader, plainly, and straddling it. */
    assert_fails_with(sb_reader_pread(r, buf, 1, 100 * KB - 1), ESPIPE);
    assert_fails_with(sb_pread(b, buf, 1, 0), ESPIPE);
    assert_fails_with(sb_pread(b, buf, sizeof buf, 100 * KB - 8), ESPIPE);
    assert_fails_with(sb_pread_timed(b, buf, 1, 5, 0), ESPIPE);
    assert_fails_with(sb_pread(b, buf, 0, 5), ESPIPE);
    /* At and above it, everything as before. */
    assert_int_equal(read_ok(b, NULL, 100 * KB, 200 * KB), 0);
    assert_int_equal(read_ok(b, r, 100 * KB, 16), 0);
    /* A floor only rises. */
    assert_fails_with(sb_reader_release(r, 50 * KB), EINVAL);
    assert_int_equal(sb_reader_release(r, 100 * KB), 0);
    assert_null_with(sb_reader_open(b, 99 * KB), ESPIPE);
    /* The lowest reader sets the floor. */
    sb_reader *r2 = sb_reader_open(b, 300 * KB);
    assert_non_null(r2);
    assert_int_equal(sb_floor(b), 100 * KB);
    assert_int_equal(sb_reader_release(r, 400 * KB), 0);
    assert_int_equal(sb_floor(b), 300 * KB);
    assert_fails_with(sb_reader_pread(r2, buf, 1, 299 * KB), ESPIPE);
    assert_int_equal(stats(b).readers, 2);
    /* With no reader open the floor stays. */
    sb_reader_close(r2);
    fx_untrack(r);
    sb_reader_close(r);
    assert_int_equal(stats(b).readers, 0);
    assert_int_equal(sb_floor(b), 400 * KB);
    assert_fails_with(sb_pread(b, buf, 1, 399 * KB), ESPIPE);
    r = sb_reader_open(b, 400 * KB);
    assert_non_null(r);
    assert_int_equal(sb_floor(b), 400 * KB);
    sb_reader_close(r);
    /* The end is still the end. */
    assert_int_equal(sb_pread(b, buf, 1, 1 * MB), 0);
}

/* Without SB_RELEASE a reader's floor binds the reader only. */
static void test_floor_without_release(void **state)
{
    (void)state;
    count_src *s = fx_count(256 * KB, 0);
    sb_buffer *b = open_count(s, NULL);
    assert_non_null(b);
    sb_reader *r = fx_sb_reader(b, 10 * KB);
    assert_non_null(r);
    assert_int_equal(sb_reader_release(r, 200 * KB), 0);
    unsigned char buf[1];
    assert_fails_with(sb_reader_pread(r, buf, 1, 199 * KB), ESPIPE);
    assert_int_equal(sb_floor(b), 0);
    assert_int_equal(read_ok(b, NULL, 0, 256 * KB), 0);
    assert_int_equal(stats(b).released, 0);
    sb_reader *r0 = sb_reader_open(b, 0);
    assert_non_null(r0);
    sb_reader_close(r0);
}

/* sb_reader_floor: where the reader opened, then each release; a failed
   release leaves it; it is the reader's own, not the buffer's. */
static void test_reader_floor(void **state)
{
    (void)state;
    count_src *s = fx_count(256 * KB, 0);
    sb_options o = {.flags = SB_RELEASE};
    sb_buffer *b = open_count(s, &o);
    assert_non_null(b);
    sb_reader *low = fx_sb_reader(b, 0); /* first: it holds the floor */
    sb_reader *r = fx_sb_reader(b, 10 * KB);
    assert_non_null(low);
    assert_non_null(r);
    assert_int_equal(sb_reader_floor(r), 10 * KB);
    assert_int_equal(sb_reader_floor(low), 0);
    assert_int_equal(sb_reader_release(r, 200 * KB), 0);
    assert_int_equal(sb_reader_floor(r), 200 * KB);
    assert_int_equal(sb_floor(b), 0); /* low holds the buffer's */
    assert_fails_with(sb_reader_release(r, 100 * KB), EINVAL);
    assert_int_equal(sb_reader_floor(r), 200 * KB);
    assert_int_equal(sb_reader_release(r, 200 * KB), 0);
    assert_int_equal(sb_reader_floor(r), 200 * KB);
    /* Beyond what has arrived, and beyond the end: still the floor. */
    assert_int_equal(sb_reader_release(r, UINT64_MAX - 1), 0);
    assert_int_equal(sb_reader_floor(r), UINT64_MAX - 1);
    errno = 0;
    assert_int_equal(sb_reader_floor(NULL), 0);
    assert_int_equal(errno, EINVAL);
}

static void test_reader_bad_arguments(void **state)
{
    (void)state;
    unsigned char buf[4];
    assert_null_with(sb_reader_open(NULL, 0), EINVAL);
    assert_fails_with(sb_reader_pread(NULL, buf, 1, 0), EINVAL);
    assert_fails_with(sb_reader_pread_timed(NULL, buf, 1, 0, 0), EINVAL);
    assert_fails_with(sb_reader_release(NULL, 0), EINVAL);
    assert_null_with(sb_reader_fopen(NULL), EINVAL);
    errno = 0;
    assert_int_equal(sb_floor(NULL), 0);
    assert_int_equal(errno, EINVAL);
    sb_reader_close(NULL);

    sb_buffer *b = fx_buffer(sb_open_mem("abcd", 4, NULL));
    assert_non_null(b);
    sb_reader *r = fx_sb_reader(b, 0);
    assert_non_null(r);
    assert_fails_with(sb_reader_pread(r, NULL, 1, 0), EINVAL);
    assert_fails_with(sb_reader_pread(r, buf, 1, UINT64_MAX), EINVAL);
    assert_fails_with(sb_reader_pread_timed(r, buf, 1, 0, -2), EINVAL);
    assert_int_equal(sb_reader_pread(r, buf, 4, 0), 4);
    assert_memory_equal(buf, "abcd", 4);

    /* Options: unknown flags, max_retained without SB_RELEASE. */
    sb_options o = {.flags = 0x80};
    assert_null_with(fx_buffer(sb_open_writer(&o)), EINVAL);
    o = (sb_options){.max_retained = 1000};
    assert_null_with(fx_buffer(sb_open_writer(&o)), EINVAL);
    o = (sb_options){.reserved32 = 1};
    assert_null_with(fx_buffer(sb_open_writer(&o)), EINVAL);
}

/* sb_open_mem borrows the caller's memory: floors hold, nothing is
   touched. */
static void test_open_mem_with_release(void **state)
{
    (void)state;
    unsigned char *data = fx_calloc(256 * KB);
    pat_fill(data, 256 * KB, 0);
    sb_options o = {.flags = SB_RELEASE};
    sb_buffer *b = fx_buffer(sb_open_mem(data, 256 * KB, &o));
    assert_non_null(b);
    sb_reader *r = sb_reader_open(b, 0);
    assert_non_null(r);
    assert_int_equal(sb_reader_release(r, 128 * KB), 0);
    sb_reader_close(r);
    assert_int_equal(sb_floor(b), 128 * KB);
    unsigned char c;
    assert_fails_with(sb_pread(b, &c, 1, 0), ESPIPE);
    assert_int_equal(pat_mismatches(data, 256 * KB, 0), 0);
    assert_int_equal(read_ok(b, NULL, 128 * KB, 128 * KB), 0);
}

/* ---- what comes back --------------------------------------------------------------- */

/* Allocated bytes (not size: holes do not count) of the files in dir that
   this process has open; -1 on error. */
static long long allocated_in_dir(const char *dir)
{
    char real[PATH_MAX];
    if (realpath(dir, real) == NULL)
        return -1;
    size_t rl = strlen(real);
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    long long total = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char link[64 + 256], target[PATH_MAX];
        snprintf(link, sizeof link, "/proc/self/fd/%s", e->d_name);
        ssize_t tl = readlink(link, target, sizeof target - 1);
        if (tl <= 0)
            continue;
        target[tl] = '\0';
        struct stat st;
        if (strncmp(target, real, rl) == 0 && target[rl] == '/' &&
            stat(link, &st) == 0 && S_ISREG(st.st_mode))
            total += (long long)st.st_blocks * 512;
    }
    closedir(d);
    return total;
}

/* Memory pages below the floor leave RSS; spill-file blocks below it
   leave the disk. */
static void test_release_gives_back_memory_and_disk(void **state)
{
    (void)state;
    char *dir = fx_scratch();
    count_src *s = fx_count(96 * MB, 0);
    sb_options o = {.flags = SB_RELEASE, .mem_limit = 48 * MB, .tmp_dir = dir};
    sb_buffer *b = open_count(s, &o);
    assert_non_null(b);
    sb_reader *r = fx_sb_reader(b, 0);
    assert_non_null(r);
    assert_int_equal(sb_wait_end(b, NULL), 0);
    /* Touch it all: the memory part is resident, the file is on disk. */
    assert_int_equal(read_ok(b, r, 0, 96 * MB), 0);
    long long rss0 = rss_bytes(), disk0 = allocated_in_dir(dir);
    assert_true(rss0 > 0);
    assert_true(disk0 >= (long long)(48 * MB));

    assert_int_equal(sb_reader_release(r, 40 * MB), 0);
    assert_int_equal(stats(b).released, 40 * MB);
    long long rss1 = rss_bytes();
    assert_true(rss0 - rss1 >= (long long)(36 * MB));
    assert_int_equal(allocated_in_dir(dir), disk0);

    assert_int_equal(sb_reader_release(r, 90 * MB), 0);
    assert_int_equal(stats(b).released, 90 * MB);
    long long rss2 = rss_bytes(), disk2 = allocated_in_dir(dir);
    assert_true(rss1 - rss2 >= (long long)(6 * MB));
    assert_true(disk0 - disk2 >= (long long)(40 * MB));
    assert_true(disk2 <= (long long)(7 * MB));
    /* What is left reads as before. */
    assert_int_equal(read_ok(b, r, 90 * MB, 6 * MB), 0);
}

/* A failed give-back fails the stream with its errno; what readers hold
   stays readable. */
static void disarm(void *unused)
{
    (void)unused;
    sb__fault_disarm();
}

static void test_failed_give_back_fails_stream(void **state)
{
    (void)state;
    count_src *s = fx_count(1 * MB, 0);
    sb_options o = {.flags = SB_RELEASE, .mem_limit = 256 * KB,
                    .tmp_dir = fx_scratch()};
    sb_buffer *b = open_count(s, &o);
    assert_non_null(b);
    assert_int_equal(sb_wait_end(b, NULL), 0);
    sb_reader *r = fx_sb_reader(b, 0);
    assert_non_null(r);
    fx_track(b, NULL, disarm); /* teardown disarms, even after a failure */
    sb__fault_arm(SB__FAULT_RELEASE, 1, EOPNOTSUPP);
    assert_fails_with(sb_reader_release(r, 512 * KB), EOPNOTSUPP);
    assert_true(sb__fault_fired(SB__FAULT_RELEASE));
    sb__fault_disarm();
    assert_int_equal(sb_floor(b), 512 * KB);
    /* The stream had ended: it stays ended; a running one fails. */
    assert_int_equal(stats(b).state, SB_ENDED);
    assert_int_equal(read_ok(b, r, 512 * KB, 512 * KB), 0);

    count_src *s2 = fx_count(COUNT_FOREVER, 0);
    sb_buffer *b2 = open_count(s2, &o);
    assert_non_null(b2);
    assert_true(wait_available(b2, 300 * KB, WAIT_LONG_MS));
    sb_reader *r2 = fx_sb_reader(b2, 0);
    assert_non_null(r2);
    sb__fault_arm(SB__FAULT_RELEASE, 1, EIO);
    assert_fails_with(sb_reader_release(r2, 200 * KB), EIO);
    sb__fault_disarm();
    assert_fails_with(sb_wait_end(b2, NULL), EIO);
    uint64_t avail = sb_available(b2);
    assert_int_equal(read_ok(b2, r2, 200 * KB, (size_t)(avail - 200 * KB)), 0);
}

/* A release whose give-back another thread (the writer, before its next
   step) did, and failed, still reports the failure: the release waits for
   the give-back in progress rather than leaving it to the holder.  The test
   holds release_mu as a writer at work would, lets the release raise the
   floor, then gives back as the writer does. */
typedef struct releasing {
    sb_reader *r;
    uint64_t to;
    int rc, err;
} releasing;

static void do_release(void *arg)
{
    releasing *x = arg;
    x->rc = sb_reader_release(x->r, x->to);
    x->err = x->rc < 0 ? errno : 0;
}

static void test_failed_give_back_reaches_a_racing_release(void **state)
{
    (void)state;
    count_src *s = fx_count(1 * MB, 0);
    sb_options o = {.flags = SB_RELEASE, .mem_limit = 256 * KB,
                    .chunk_size = 64 * KB, .tmp_dir = fx_scratch()};
    sb_buffer *b = open_count(s, &o);
    assert_non_null(b);
    assert_int_equal(sb_wait_end(b, NULL), 0);
    releasing x = {.r = fx_sb_reader(b, 0), .to = 512 * KB};
    assert_non_null(x.r);
    fx_track(b, NULL, disarm);
    sb__fault_arm(SB__FAULT_RELEASE, 1, EOPNOTSUPP);

    assert_int_equal(pthread_mutex_lock(&b->release_mu), 0);
    bg_call *c = fx_bg(do_release, &x);
    int risen = c != NULL && wait_for_floor(b, 512 * KB, WAIT_LONG_MS);
    assert_int_equal(pthread_mutex_unlock(&b->release_mu), 0);
    assert_true(risen);
    int writer_rc = sb__give_back(b, true);
    assert_true(bg_wait(c, WAIT_LONG_MS));
    bg_join(c);

    assert_true(sb__fault_fired(SB__FAULT_RELEASE));
    assert_int_equal(x.rc, -1);
    assert_int_equal(x.err, EOPNOTSUPP);
    /* Whichever of the two gave back failed; the other found it done. */
    assert_true(writer_rc == 0 || writer_rc == -EOPNOTSUPP);
    assert_int_equal(sb_floor(b), 512 * KB);
    assert_int_equal(read_ok(b, x.r, 512 * KB, 512 * KB), 0);
    /* A release past what failed reports nothing old. */
    sb__fault_disarm();
    assert_int_equal(sb_reader_release(x.r, 768 * KB), 0);
}

/* ---- an endless stream in bounded space --------------------------------------------- */

typedef struct sampler {
    sb_buffer *b;
    const char *dir;
    fsblkcnt_t free0;           /* free blocks before the stream */
    _Atomic int stop;
    uint64_t max_retained_seen; /* filled - floor */
    uint64_t max_disk;          /* bytes used in dir's file system */
    uint64_t samples;
    uint64_t max_unreleased;    /* filled - released */
} sampler;

static void sample(void *arg)
{
    sampler *m = arg;
    while (!atomic_load(&m->stop)) {
        sb_stats st;
        struct statvfs v;
        if (sb_get_stats(m->b, &st) != 0 || statvfs(m->dir, &v) != 0)
            break;
        uint64_t kept = st.filled > st.floor ? st.filled - st.floor : 0;
        uint64_t used = m->free0 > v.f_bfree
                            ? (uint64_t)(m->free0 - v.f_bfree) * v.f_frsize
                            : 0;
        if (kept > m->max_retained_seen)
            m->max_retained_seen = kept;
        if (st.filled - st.released > m->max_unreleased)
            m->max_unreleased = st.filled - st.released;
        if (used > m->max_disk)
            m->max_disk = used;
        m->samples++;
        sleep_ms(1);
    }
}

static void stop_sampler(void *m)
{
    atomic_store(&((sampler *)m)->stop, 1);
}

static void test_endless_stream_through_small_tmpfs(void **state)
{
    (void)state;
    char *dir = fx_tmpfs(0, "8m");
    if (dir == NULL)
        skip();
    const uint64_t retain = 2 * MB, chunk = 64 * KB;
    struct statvfs v0;
    assert_int_equal(statvfs(dir, &v0), 0);
    count_src *s = fx_count(COUNT_FOREVER, 0);
    sb_options o = {.flags = SB_RELEASE, .max_retained = retain,
                    .mem_limit = 1 * MB, .chunk_size = (size_t)chunk,
                    .tmp_dir = dir};
    sb_buffer *b = open_count(s, &o);
    assert_non_null(b);
    sampler *m = fx_calloc(sizeof *m);
    m->b = b;
    m->dir = dir;
    m->free0 = v0.f_bfree;
    fx_track(m, stop_sampler, NULL); /* teardown stops it, too */
    bg_call *mb = fx_bg(sample, m);
    assert_non_null(mb);
    follower *f[4];
    static const size_t steps[4] = {64 * 1024, 4096, 100000, 256 * 1024};
    for (int k = 0; k < 4; k++) {
        f[k] = fx_follower(b, 0, ENDLESS_BYTES, steps[k]);
        assert_non_null(f[k]);
    }
    for (int k = 0; k < 4; k++)
        assert_int_equal(follower_start(f[k]), 0);
    int done = 1;
    for (int k = 0; k < 4; k++)
        done &= follower_join(f[k], 10 * WAIT_LONG_MS);
    atomic_store(&m->stop, 1);
    assert_true(bg_wait(mb, WAIT_LONG_MS));
    sb_stats st = stats(b);
    assert_true(done);
    for (int k = 0; k < 4; k++) {
        assert_int_equal(f[k]->err, 0);
        assert_int_equal(f[k]->bad, 0);
        assert_int_equal(f[k]->checked, ENDLESS_BYTES);
    }
    fprintf(stderr, "endless: %llu MiB checked 4 times, %llu samples, at most "
                    "%llu KiB retained, %llu KiB on disk, %llu KiB not given back, %llu pauses\n",
            (unsigned long long)(ENDLESS_BYTES / MB),
            (unsigned long long)m->samples,
            (unsigned long long)(m->max_retained_seen / KB),
            (unsigned long long)(m->max_disk / KB),
            (unsigned long long)(m->max_unreleased / KB),
            (unsigned long long)st.pauses);
    assert_int_equal(st.state, SB_RUNNING);
    assert_true(m->samples > 0);
    assert_true(m->max_retained_seen <= retain + chunk);
    /* On disk: what is retained past memory, plus a page or two. */
    assert_true(m->max_disk <= retain + chunk + 64 * KB);
    assert_true(st.released >= ENDLESS_BYTES - retain - chunk);
}

/* ---- reads racing releases ------------------------------------------------------------ */

typedef struct racer {
    sb_buffer *b;
    _Atomic int *stop;
    uint64_t seed;
    uint64_t len;
    uint64_t ok, espipe, bad, other;
    int last_other;
} racer;

/* Plain reads around the moving floor: right bytes or ESPIPE, nothing
   else. */
static void race_reads(void *arg)
{
    racer *x = arg;
    unsigned char buf[3 * 4096];
    while (!atomic_load(x->stop)) {
        x->seed = x->seed * 6364136223846793005u + 1442695040888963407u;
        uint64_t floor = sb_floor(x->b);
        uint64_t jitter = (x->seed >> 33) % (256 * KB);
        uint64_t off = floor > 128 * KB ? floor - 128 * KB + jitter : jitter;
        size_t n = 1 + (size_t)((x->seed >> 13) % sizeof buf);
        ssize_t got = sb_pread_timed(x->b, buf, n, off, 0);
        if (got > 0) {
            if (pat_mismatches(buf, (size_t)got, off) == 0)
                x->ok++;
            else
                x->bad++;
        } else if (got < 0 && errno == ESPIPE) {
            x->espipe++;
        } else if (got == 0 ? off < x->len
                             : !(got < 0 && errno == ETIMEDOUT)) {
            x->other++; /* 0 only at the end of the stream */
            x->last_other = got < 0 ? errno : 0;
        }
    }
}

typedef struct releaser {
    sb_buffer *b;
    uint64_t until;
    size_t step;
    int err;
    uint64_t bad;
} releaser;

/* A reader that reads each step (checked) and releases it at once. */
static void race_release(void *arg)
{
    releaser *l = arg;
    unsigned char buf[4096];
    sb_reader *r = sb_reader_open(l->b, 0);
    if (r == NULL) {
        l->err = errno;
        return;
    }
    for (uint64_t off = 0; off < l->until; off += l->step) {
        size_t n = l->step < sizeof buf ? l->step : sizeof buf;
        if (sb_reader_pread(r, buf, n, off) != (ssize_t)n) {
            l->err = errno;
            break;
        }
        l->bad += pat_mismatches(buf, n, off);
        if (sb_reader_release(r, off + l->step) != 0) {
            l->err = errno;
            break;
        }
    }
    sb_reader_close(r);
}

static void race(size_t mem_limit)
{
    const uint64_t len = 24 * MB;
    count_src *s = fx_count(len, 0);
    sb_options o = {.flags = SB_RELEASE, .mem_limit = mem_limit,
                    .tmp_dir = fx_scratch(), .read_ahead = 512 * KB};
    sb_buffer *b = open_count(s, &o);
    assert_non_null(b);
    _Atomic int *stop = fx_calloc(sizeof *stop);
    racer *x[2];
    bg_call *xb[2];
    for (int k = 0; k < 2; k++) {
        x[k] = fx_calloc(sizeof *x[k]);
        *x[k] = (racer){.b = b, .stop = stop, .seed = 77u + (uint64_t)k,
                        .len = len};
        xb[k] = fx_bg(race_reads, x[k]);
        assert_non_null(xb[k]);
    }
    releaser *l = fx_calloc(sizeof *l);
    *l = (releaser){.b = b, .until = len, .step = 4096};
    bg_call *lb = fx_bg(race_release, l);
    assert_non_null(lb);
    assert_true(bg_wait(lb, 10 * WAIT_LONG_MS));
    atomic_store(stop, 1);
    uint64_t ok = 0, espipe = 0;
    for (int k = 0; k < 2; k++) {
        assert_true(bg_wait(xb[k], WAIT_LONG_MS));
        bg_join(xb[k]);
        ok += x[k]->ok;
        espipe += x[k]->espipe;
    }
    fprintf(stderr, "race (mem_limit %zu): %llu right, %llu ESPIPE\n",
            mem_limit, (unsigned long long)ok, (unsigned long long)espipe);
    assert_int_equal(l->err, 0);
    assert_int_equal(l->bad, 0);
    for (int k = 0; k < 2; k++) {
        if (x[k]->other != 0)
            fprintf(stderr, "racer %d: %llu other results, last errno %d\n", k,
                    (unsigned long long)x[k]->other, x[k]->last_other);
        assert_int_equal(x[k]->bad, 0);
        assert_int_equal(x[k]->other, 0);
    }
    assert_true(ok > 0);
    assert_true(espipe > 0);
    /* Given back a chunk at a time: all but less than one (64 KiB). */
    assert_true(stats(b).released > len - 64 * KB);
}

static void test_reads_race_releases_in_memory(void **state)
{
    (void)state;
    race(32 * MB);
}

static void test_reads_race_releases_spilled(void **state)
{
    (void)state;
    race(64 * KB);
}

/* ---- stdio -------------------------------------------------------------------------------- */

static void close_file(void *f)
{
    fclose(f);
}

/* sb_reader_fopen reads an endless stream in bounded space. */
static void test_reader_fopen_releases_as_it_reads(void **state)
{
    (void)state;
    count_src *s = fx_count(COUNT_FOREVER, 0);
    sb_options o = {.flags = SB_RELEASE, .max_retained = 1 * MB,
                    .mem_limit = 256 * KB, .tmp_dir = fx_scratch()};
    sb_buffer *b = open_count(s, &o);
    assert_non_null(b);
    sb_reader *r = fx_sb_reader(b, 1000);
    assert_non_null(r);
    FILE *f = sb_reader_fopen(r);
    assert_non_null(f);
    fx_track(f, NULL, close_file);
    assert_int_equal(ftell(f), 1000);
    unsigned char *buf = fx_calloc(1 * MB);
    uint64_t pos = 1000;
    for (int i = 0; i < 20; i++) {
        assert_int_equal(fread(buf, 1, 1 * MB, f), 1 * MB);
        assert_int_equal(pat_mismatches(buf, 1 * MB, pos), 0);
        pos += 1 * MB;
        /* The floor follows: within stdio's buffer of the position. */
        assert_true(sb_floor(b) + 64 * KB >= pos);
    }
    /* Back below the floor: ESPIPE, reported by ferror. */
    assert_int_equal(fseek(f, 5000, SEEK_SET), 0);
    assert_int_equal(fread(buf, 1, 10, f), 0);
    assert_true(ferror(f));
    assert_int_equal(errno, ESPIPE);
}

/* A plain FILE holds no floor: below it, ESPIPE. */
static void test_fopen_below_floor_is_espipe(void **state)
{
    (void)state;
    count_src *s = fx_count(512 * KB, 0);
    sb_options o = {.flags = SB_RELEASE};
    sb_buffer *b = open_count(s, &o);
    assert_non_null(b);
    assert_int_equal(sb_wait_end(b, NULL), 0);
    sb_reader *r = sb_reader_open(b, 0);
    assert_non_null(r);
    assert_int_equal(sb_reader_release(r, 100 * KB), 0);
    sb_reader_close(r);
    FILE *f = sb_fopen(b);
    assert_non_null(f);
    fx_track(f, NULL, close_file);
    unsigned char buf[100];
    assert_int_equal(fread(buf, 1, sizeof buf, f), 0);
    assert_true(ferror(f));
    assert_int_equal(errno, ESPIPE);
    clearerr(f);
    assert_int_equal(fseek(f, 200 * KB, SEEK_SET), 0);
    assert_int_equal(fread(buf, 1, sizeof buf, f), sizeof buf);
    assert_int_equal(pat_mismatches(buf, sizeof buf, 200 * KB), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        FX_TEST(test_espipe_below_floor),
        FX_TEST(test_floor_without_release),
        FX_TEST(test_reader_floor),
        FX_TEST(test_reader_bad_arguments),
        FX_TEST(test_open_mem_with_release),
        FX_TEST(test_release_gives_back_memory_and_disk),
        FX_TEST(test_failed_give_back_fails_stream),
        FX_TEST(test_failed_give_back_reaches_a_racing_release),
        FX_TEST(test_endless_stream_through_small_tmpfs),
        FX_TEST(test_reads_race_releases_in_memory),
        FX_TEST(test_reads_race_releases_spilled),
        FX_TEST(test_reader_fopen_releases_as_it_reads),
        FX_TEST(test_fopen_below_floor_is_espipe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
