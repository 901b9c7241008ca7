/* SPDX-License-Identifier: MIT */
/*
 * test_http_parts.c - sb_open_url with the core's parts (ranged sources).
 *
 * Part of `make http-test` (so of `make test`), plain and under both
 * sanitizers; `make http-parts` runs them alone.
 *
 * Same environment as test_http.c (tests/test_http.sh): SB_HTTP_NGINX,
 * SB_HTTP_FAULT, SB_HTTP_H2, SB_HTTP_H2C, SB_HTTP_H2CERT, SB_HTTP_H2LOG,
 * SB_HTTP_DIR.  Every byte read is compared with the file.
 */
#include <streambuffer_http.h>

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

static const char *nginx_base, *fault_base, *h2_base, *h2_log, *h2_cert, *h2c_base;
static unsigned char *big;
static size_t big_len;

static int setup_env(void **state)
{
    (void)state;
    nginx_base = getenv("SB_HTTP_NGINX");
    fault_base = getenv("SB_HTTP_FAULT");
    h2_base = getenv("SB_HTTP_H2");
    h2_log = getenv("SB_HTTP_H2LOG");
    h2_cert = getenv("SB_HTTP_H2CERT");
    h2c_base = getenv("SB_HTTP_H2C");
    const char *dir = getenv("SB_HTTP_DIR");
    if (nginx_base == NULL || fault_base == NULL || h2_base == NULL || h2_log == NULL ||
        h2_cert == NULL || h2c_base == NULL || dir == NULL)
        return -1;
    char path[4096];
    snprintf(path, sizeof path, "%s/big.bin", dir);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return -1;
    big = malloc(8 << 20);
    big_len = big != NULL ? fread(big, 1, 8 << 20, f) : 0;
    fclose(f);
    return big_len > 0 ? 0 : -1;
}

static int teardown_env(void **state)
{
    (void)state;
    free(big);
    return 0;
}

static const char *url(const char *base, const char *path)
{
    static _Thread_local char buf[4][512];
    static _Thread_local unsigned next;
    char *u = buf[next++ % 4];
    snprintf(u, sizeof buf[0], "%s%s", base, path);
    return u;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Every byte of the stream, once it ended, is the file's. */
static void check_all(sb_buffer *b)
{
    uint64_t total = 0;
    assert_int_equal(sb_wait_end(b, &total), 0);
    assert_int_equal(total, big_len);
    unsigned char *all = malloc(big_len);
    assert_non_null(all);
    assert_int_equal(sb_pread(b, all, big_len, 0), (ssize_t)big_len);
    assert_memory_equal(all, big, big_len);
    free(all);
}

/* nginx sends 256 KiB/s a connection: the last 4 KiB of 3 MiB come in
   one round trip through a part, not after 12 s. */
static void test_far_read_does_not_wait(void **state)
{
    (void)state;
    sb_buffer *b = sb_open_url(url(nginx_base, "/slow/big.bin"), NULL, NULL);
    assert_non_null(b);
    unsigned char buf[4096];
    double t0 = now_ms();
    assert_int_equal(sb_pread(b, buf, sizeof buf, big_len - sizeof buf),
                     (ssize_t)sizeof buf);
    assert_true(now_ms() - t0 < 3000);
    assert_memory_equal(buf, big + big_len - sizeof buf, sizeof buf);
    sb_stats st;
    assert_int_equal(sb_get_stats(b, &st), 0);
    assert_true(st.parts_opened >= 1);
    assert_int_equal(st.length, big_len);
    check_all(b); /* drained over several connections, seams compared */
    sb_close(b);
}

/* Every connection drops after 256 KiB: parts reopen where they stopped
   and the stream completes, every byte right. */
static void test_drops_complete(void **state)
{
    (void)state;
    sb_buffer *b = sb_open_url(url(fault_base, "/drop=256/big.bin"), NULL, NULL);
    assert_non_null(b);
    check_all(b);
    sb_stats st;
    assert_int_equal(sb_get_stats(b, &st), 0);
    assert_true(st.part_retries >= 1);
    sb_close(b);
}

/* A server that ignores Range, one that lies in Content-Range, one whose
   object gets a new ETag per request: no part's bytes are taken; the
   first stream goes on and delivers the object (the first version). */
static void test_bad_parts_fall_back(void **state)
{
    (void)state;
    static const char *paths[] = {"/norange,slow=1024/big.bin", "/lie,slow=1024/big.bin",
                                  "/newetag,slow=1024/big.bin",
                                  "/arnone,slow=1024/big.bin"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        print_message("%s\n", paths[i]);
        sb_buffer *b = sb_open_url(url(fault_base, paths[i]), NULL, NULL);
        assert_non_null(b);
        unsigned char buf[4096];
        ssize_t got = sb_pread(b, buf, sizeof buf, big_len / 2);
        if (got != (ssize_t)sizeof buf)
            fail_msg("%s: pread %zd (%s)", paths[i], got, strerror(errno));
        assert_memory_equal(buf, big + big_len / 2, sizeof buf);
        check_all(b);
        sb_close(b);
    }
}

/* Same ETag, same length, new bytes on every request: only the seam
   comparison can tell.  The stream fails with ESTALE, and from then on
   every read gives the first version's bytes or ESTALE.  (Before that, a
   read inside a part's own extent gets that part's bytes: nothing can
   tell them apart until its seam is compared.) */
static void test_same_etag_new_bytes_is_estale(void **state)
{
    (void)state;
    sb_buffer *b = sb_open_url(url(fault_base, "/sameetag,slow=1024/big.bin"), NULL, NULL);
    assert_non_null(b);
    unsigned char buf[4096];
    ssize_t n = sb_pread(b, buf, sizeof buf, big_len / 2); /* opens a part */
    assert_true(n == (ssize_t)sizeof buf || (n < 0 && errno == ESTALE));
    uint64_t total;
    assert_int_equal(sb_wait_end(b, &total), -1);
    assert_int_equal(errno, ESTALE);
    for (uint64_t off = 0; off < big_len; off += 65536) {
        n = sb_pread(b, buf, sizeof buf, off);
        if (n < 0)
            assert_int_equal(errno, ESTALE);
        else
            assert_memory_equal(buf, big + off, (size_t)n);
    }
    sb_close(b);
}

struct far {
    pthread_t t;
    sb_buffer *b;
    uint64_t off;
};

static void *far_main(void *arg)
{
    struct far *f = arg;
    unsigned char buf[64];
    (void)sb_pread(f->b, buf, sizeof buf, f->off); /* until the cancel */
    return NULL;
}

/* Eight parts in flight at 256 KiB/s each: sb_cancel and sb_close
   return within a second. */
static void test_eight_parts_close_promptly(void **state)
{
    (void)state;
    sb_options o;
    memset(&o, 0, sizeof o);
    o.max_parts = 8;
    o.seek_gap = 65536;
    sb_buffer *b = sb_open_url(url(nginx_base, "/slow/big.bin"), &o, NULL);
    assert_non_null(b);
    struct far f[7];
    for (int i = 0; i < 7; i++) {
        f[i].b = b;
        f[i].off = (uint64_t)(i + 1) * (big_len / 8) + 100000;
        assert_int_equal(pthread_create(&f[i].t, NULL, far_main, &f[i]), 0);
    }
    sb_stats st;
    for (int k = 0; k < 500; k++) {
        assert_int_equal(sb_get_stats(b, &st), 0);
        if (st.parts_active >= 8)
            break;
        sleep_ms(10);
    }
    assert_true(st.parts_active >= 8);
    double t0 = now_ms();
    sb_cancel(b);
    for (int i = 0; i < 7; i++)
        assert_int_equal(pthread_join(f[i].t, NULL), 0);
    sb_close(b);
    assert_true(now_ms() - t0 < 1000);
}

/* Trust the test's certificate (HTTP/2 comes by ALPN over TLS). */
static void trust_test_cert(void *curl, void *arg)
{
    (void)arg;
    (void)curl_easy_setopt(curl, CURLOPT_CAINFO, h2_cert);
}

/* Cleartext HTTP/2 (the server speaks nothing else on that port). */
static void h2_prior_knowledge(void *curl, void *arg)
{
    (void)arg;
    (void)curl_easy_setopt(curl, CURLOPT_HTTP_VERSION,
                           (long)CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
}

/* Lines of the HTTP/2 server's log for path, and how many distinct
   connections they came on. */
static int h2_requests(const char *path, int *conns)
{
    FILE *f = fopen(h2_log, "r");
    char line[1024];
    long seen[256];
    int n = 0, k = 0;
    if (f == NULL)
        return 0;
    while (fgets(line, sizeof line, f) != NULL) {
        long c;
        int status;
        char req[900];
        if (sscanf(line, "%ld %d %899[^\n]", &c, &status, req) != 3 || strstr(req, path) == NULL)
            continue;
        n++;
        int j = 0;
        while (j < k && seen[j] != c)
            j++;
        if (j == k && k < 256)
            seen[k++] = c;
    }
    fclose(f);
    *conns = k;
    return n;
}

/* Three far reads while the stream (at 256 KiB/s a connection) drains
   over four parts: four parts at once, each read's bytes the file's.  No
   read_ahead: under it a part asks for its read alone and ends with it. */
static void four_parts_at_once(sb_buffer *b)
{
    unsigned char buf[4096];
    for (int i = 1; i <= 3; i++) {
        uint64_t off = (uint64_t)i * (big_len / 4) + 777;
        ssize_t got = sb_pread(b, buf, sizeof buf, off);
        if (got != (ssize_t)sizeof buf)
            fail_msg("pread at %llu: %zd (%s)", (unsigned long long)off, got, strerror(errno));
        assert_memory_equal(buf, big + off, sizeof buf);
    }
    /* Four at once: a fetcher moved to a read is between its two parts
       for a moment, so the count is waited for (bounded), not sampled. */
    sb_stats st;
    assert_int_equal(sb_get_stats(b, &st), 0);
    for (int k = 0; k < 1000 && st.parts_active < 4; k++) {
        sleep_ms(10);
        assert_int_equal(sb_get_stats(b, &st), 0);
    }
    assert_true(st.parts_opened >= 3);
    assert_true(st.parts_active >= 4);
}

/* An HTTP/2 server (over TLS, as browsers and CDNs speak it) gets the
   parts that run at once as streams of one connection: every request on
   one connection, as the server logs them once each stream has closed. */
static void test_h2_parts_are_streams_of_one_connection(void **state)
{
    (void)state;
    /* The log from here on (nginx appends, O_APPEND: after the cut). */
    FILE *log = fopen(h2_log, "w");
    assert_non_null(log);
    fclose(log);
    sb_http_options h = {.setup = trust_test_cert};
    sb_options o = {.max_parts = 4, .seek_gap = 64 << 10};
    sb_buffer *b = sb_open_url(url(h2_base, "/slow/big.bin"), &o, &h);
    assert_non_null(b);
    four_parts_at_once(b);
    sb_close(b);
    int n = 0, conns = 0;
    for (int k = 0; k < 500 && (n = h2_requests("/slow/big.bin", &conns)) < 4; k++)
        sleep_ms(10);
    assert_true(n >= 4);
    assert_int_equal(conns, 1);
}

/* Cleartext HTTP/2 by prior knowledge: libcurl 7.88 fails a stream added
   to such a connection once it runs, so each part has a connection of its
   own; the reads work all the same. */
static void test_h2c_parts_work(void **state)
{
    (void)state;
    sb_http_options h = {.setup = h2_prior_knowledge};
    sb_options o = {.max_parts = 4, .seek_gap = 64 << 10};
    sb_buffer *b = sb_open_url(url(h2c_base, "/slow/big.bin"), &o, &h);
    assert_non_null(b);
    four_parts_at_once(b);
    sb_stats st;
    assert_int_equal(sb_get_stats(b, &st), 0);
    assert_int_equal(st.part_retries, 0);
    sb_close(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_far_read_does_not_wait),
        cmocka_unit_test(test_drops_complete),
        cmocka_unit_test(test_bad_parts_fall_back),
        cmocka_unit_test(test_same_etag_new_bytes_is_estale),
        cmocka_unit_test(test_eight_parts_close_promptly),
        cmocka_unit_test(test_h2_parts_are_streams_of_one_connection),
        cmocka_unit_test(test_h2c_parts_work),
    };
    return cmocka_run_group_tests(tests, setup_env, teardown_env);
}
