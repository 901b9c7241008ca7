/* SPDX-License-Identifier: MIT */
/*
 * stream.h - long and endless streams for the flow-control tests: a source
 * that counts what it delivers, a fast pattern to check gigabytes with, and
 * follower threads that read through a reader and release as they go.
 *
 * gen_byte (helpers.h) costs a hash per byte; the pattern here costs one
 * store per 8 bytes, so a test can check several GiB.  It still catches a
 * read from the wrong offset: word k holds a mix of k, so no two words
 * (and no shift of them by a few bytes) are alike.
 */
#ifndef SB_TESTS_STREAM_H
#define SB_TESTS_STREAM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "fixture.h"

/* Bytes [off, off + n) of the pattern. */
void pat_fill(void *buf, size_t n, uint64_t off);
/* How many of buf's n bytes differ from the pattern at off. */
size_t pat_mismatches(const void *buf, size_t n, uint64_t off);

/* A read-style source of len pattern bytes (COUNT_FOREVER: no end), at most
   max_chunk bytes per call (0: all of cap).  pulled counts what it handed
   over, so a test sees how far the producer has pulled. */
#define COUNT_FOREVER UINT64_MAX
typedef struct count_src {
    uint64_t len;
    size_t max_chunk;
    _Atomic uint64_t pulled;
    atomic_int calls;
    atomic_int closes;
} count_src;

/* On the fixture's heap; freed at teardown. */
count_src *fx_count(uint64_t len, size_t max_chunk);
sb_source count_source(count_src *s);

/* sb_open over s, tracked by the fixture (fx_buffer). */
sb_buffer *open_count(count_src *s, const sb_options *o);
/* sb_get_stats, or fail the test. */
sb_stats stats(sb_buffer *b);
/* sb_reader_open, closed by teardown (fx_reader_close) unless untracked;
   NULL with errno as sb_reader_open. */
sb_reader *fx_sb_reader(sb_buffer *b, uint64_t floor);
void fx_reader_close(void *r);

/* sb_write(b, len pattern bytes from stream offset off) on a thread: the
   result in ret and err, and when it returned. */
typedef struct write_call {
    sb_buffer *b;
    size_t len;
    uint64_t off;
    ssize_t ret;
    int err;
    double returned_ms;
} write_call;
void do_write(void *arg); /* for fx_bg */

/* Poll sb_get_stats until the producer (or sb_write) has paused at least n
   times: it is paused now if nothing since has let it go.  1 or 0 on
   timeout. */
int wait_for_pauses(sb_buffer *b, uint64_t n, int timeout_ms);
/* Poll sb_get_stats until the producer (or sb_write) is paused now.  1 or
   0 on timeout. */
int wait_for_paused(sb_buffer *b, int timeout_ms);
/* Poll sb_get_stats until sb_floor reaches f.  1 or 0 on timeout. */
int wait_for_floor(sb_buffer *b, uint64_t f, int timeout_ms);

/*
 * A reader opened at `from` (by fx_follower, on the calling thread) and a
 * thread that reads [from, until) with it in pieces of
 * `step` bytes with sb_reader_pread, checks each against the pattern, and
 * releases the reader's floor behind each piece; it stops at the end of
 * the stream, at `until`, or at the first error.  The test reads the
 * results after follower_join.
 */
typedef struct follower {
    sb_buffer *b;
    uint64_t from, until;
    size_t step;
    /* Results. */
    uint64_t checked;    /* bytes read and compared */
    uint64_t bad;        /* of those, wrong */
    int err;             /* errno of the call that failed, 0 if none */
    int at_end;          /* the stream ended (a read returned 0) */
    sb_reader *r;        /* opened by fx_follower, closed by the thread */
    bg_call *bg;
} follower;

/* Open one's reader (on the fixture's heap).  NULL on failure (errno of
   sb_reader_open).  Open them all before starting any: a follower that
   runs alone raises the floor past `from` of the others. */
follower *fx_follower(sb_buffer *b, uint64_t from, uint64_t until,
                      size_t step);
/* Start its thread (joined at teardown).  0, or -1 (the reader is closed). */
int follower_start(follower *f);
/* Wait for it to finish (1) or time out (0), then join it. */
int follower_join(follower *f, int timeout_ms);

#endif /* SB_TESTS_STREAM_H */
