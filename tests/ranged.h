/* SPDX-License-Identifier: MIT */
/*
 * ranged.h - what the ranged-source tests (test_ranged*.c) share: sizes,
 * the sanitizers' scale, and waits on the stats.  Header-only: small
 * static functions, so each test file carries its own copy.
 */
#ifndef SB_TESTS_RANGED_H
#define SB_TESTS_RANGED_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seek.h"

#define KB ((uint64_t)1024)
#define MB (KB * KB)
#define GB (KB * MB)
#define SEAM (4 * KB) /* bytes compared across every seam */

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define UNDER_SAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define UNDER_SAN 1
#endif
#endif
#ifndef UNDER_SAN
#define UNDER_SAN 0
#endif

/* A stats field (a uint64_t of sb_stats, by offset) reaching a value. */
struct ranged_stat_want {
    sb_buffer *b;
    size_t field;
    uint64_t want;
};

static inline int ranged_stat_reached(void *arg)
{
    struct ranged_stat_want *w = arg;
    sb_stats st;
    uint64_t v;
    if (sb_get_stats(w->b, &st) != 0)
        return 0;
    memcpy(&v, (const char *)&st + w->field, sizeof v);
    return v >= w->want;
}

/* Poll sb_get_stats until field >= want: 1, or 0 after timeout_ms. */
#define wait_stat(b, field, want, timeout_ms)                                 \
    poll_until(ranged_stat_reached,                                           \
               &(struct ranged_stat_want){(b), offsetof(sb_stats, field),     \
                                          (want)},                            \
               (timeout_ms))

/* sb_pread of n bytes at off returns want and they are version 0's;
   with timeout_ms >= 0, sb_pread_timed (a read that would wait for good
   fails here, not in the harness's timeout). */
static inline int pat_read_timed(sb_buffer *b, uint64_t off, size_t n,
                                 ssize_t want, int timeout_ms)
{
    unsigned char *buf = malloc(n ? n : 1);
    if (buf == NULL)
        return -1;
    errno = 0;
    ssize_t got = timeout_ms < 0 ? sb_pread(b, buf, n, off)
                                 : sb_pread_timed(b, buf, n, off, timeout_ms);
    int rc = 0;
    if (got != want) {
        fprintf(stderr, "pread(%zu at %llu): %zd (errno %d), want %zd\n", n,
                (unsigned long long)off, got, errno, want);
        rc = -1;
    } else if (got > 0 && pat_mismatches(buf, (size_t)got, off) != 0) {
        fprintf(stderr, "pread(%zu at %llu): %zu wrong bytes\n", n,
                (unsigned long long)off,
                pat_mismatches(buf, (size_t)got, off));
        rc = -1;
    }
    free(buf);
    return rc;
}

/* The same, blocking. */
static inline int pat_read(sb_buffer *b, uint64_t off, size_t n, ssize_t want)
{
    return pat_read_timed(b, off, n, want, -1);
}

/* The whole stream, read in pieces of step, is len bytes of version 0. */
static inline int pat_stream(sb_buffer *b, uint64_t len, size_t step)
{
    unsigned char *buf = malloc(step);
    if (buf == NULL)
        return -1;
    int rc = 0;
    for (uint64_t off = 0; off < len && rc == 0; off += step) {
        size_t n = len - off < step ? (size_t)(len - off) : step;
        ssize_t got = sb_pread(b, buf, n, off);
        if (got != (ssize_t)n || pat_mismatches(buf, n, off) != 0) {
            fprintf(stderr, "stream at %llu: %zd of %zu, %zu wrong\n",
                    (unsigned long long)off, got, n,
                    got > 0 ? pat_mismatches(buf, (size_t)got, off) : 0);
            rc = -1;
        }
    }
    if (rc == 0 && sb_pread(b, buf, 1, len) != 0)
        rc = -1;
    free(buf);
    return rc;
}

#endif /* SB_TESTS_RANGED_H */
