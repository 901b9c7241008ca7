/* SPDX-License-Identifier: MIT */
/*
 * seek.h - a seekable test source (sb_source.open_at) for the ranged-source
 * tests: a stream of pattern bytes (pat_fill, stream.h) whose content at
 * any offset is known, started over at any offset as a *part*.
 *
 * Knobs, set on the struct between fx_seek and open_seek: each part's
 * first-byte latency and rate (paced against CLOCK_MONOTONIC), a part that
 * fails or drops after N bytes, a length reported or not, a source that
 * refuses to seek, an object that changes after N opens, parts that ignore
 * `end`, odd chunk sizes, iterator parts, and a gate that holds every
 * stream until released or cancelled.
 *
 * Events for the tests to synchronise on, never the clock: the open_at
 * calls (with the offsets and ends asked), parts closed, streams blocked at
 * the gate; each with a bounded wait on a condition variable.  Per part,
 * its cancels and closes are counted, and the rules a part's callbacks
 * must keep (one thread, nothing after close) are checked and counted as
 * violations.
 *
 * Thread-safe: open_at runs on several fetcher threads at once.
 */
#ifndef SB_TESTS_SEEK_H
#define SB_TESTS_SEEK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "stream.h"

/* Version v of the object holds the pattern at off + v * SEEK_VERSION_SHIFT:
   version 0 is pat_fill's stream, any other differs at every word. */
#define SEEK_VERSION_SHIFT ((uint64_t)1 << 48)

/* What the source's own read / next is (the first stream). */
enum seek_first {
    SEEK_FIRST_NONE = 0, /* read and next NULL: the first stream is open_at */
    SEEK_FIRST_READ,     /* a plain read-style first stream */
    SEEK_FIRST_NEXT,     /* a plain next-style first stream */
};

typedef struct seek_part seek_part;

#define SEEK_GATES 4

typedef struct seek_src {
    /* ---- knobs (set before open_seek; not changed while it runs) ---- */
    uint64_t len;          /* the length open_at reports */
    uint64_t data_len;     /* bytes a stream really has (fx_seek: len); less
                              than len: truncated, more: past the length */
    int report_len;        /* open_at stores *length (fx_seek: 1) */
    int first;             /* enum seek_first (fx_seek: SEEK_FIRST_NONE) */
    int iter;              /* parts are next-style (else read-style) */
    int no_seek;           /* open_at returns -ESPIPE */
    unsigned latency_us;   /* a part's time from open_at to its first byte */
    uint64_t rate;         /* bytes/s per stream; 0: unpaced */
    uint64_t burst;        /* with rate: bytes come in bursts of this many,
                              each at once when its time comes (a socket
                              buffer's); 0: smoothly */
    uint64_t fail_after;   /* a part fails after this many bytes (0: never) */
    int fail_err;          /* ... with -fail_err; 0: drops (returns 0) */
    int fail_first;        /* the first stream (read / next) fails too */
    uint64_t fail_at;      /* every stream fails on reaching this byte of
                              the stream, with -fail_err (0: drops); 0:
                              never */
    int open_err;          /* open_at fails with -open_err ... */
    int open_fails;        /* ... this many times (-1: always) */
    int open_fail_skip;    /* ... after this many opens succeeded first */
    int change_after;      /* opens that succeed after this many deliver
                              version 1 (fx_seek: -1, never) */
    int ignore_end;        /* deliver past the end argument */
    const size_t *chunks;  /* bytes per call, cycled (NULL: cap) */
    size_t nchunks;
    size_t max_chunk;      /* at most this per call (0: no bound) */
    /* The gate: while gated, a stream about to deliver a byte in one of
       the ranges [gate_lo[i], gate_hi[i]) (gate_hi 0: to the end) blocks
       until seek_release or its cancel; with gate_first_only, the first
       stream only (read, next, or the open_at at 0 without them). */
    int gated;
    int gate_first_only;
    uint64_t gate_lo[SEEK_GATES], gate_hi[SEEK_GATES];
    int ngates;

    /* ---- state and observations: mu guards all but the atomics ---- */
    pthread_mutex_t mu;
    pthread_cond_t cv;     /* broadcast on every event */
    int opens;             /* open_at calls */
    int opens_ok;          /* of those, returned 0 */
    uint64_t *offs, *ends; /* off and end of each open_at call */
    size_t cap_opens;
    seek_part **parts;     /* every stream made, the first one included */
    size_t nparts, cap_parts;
    int blocked;           /* streams blocked at the gate now */
    int closed;            /* parts closed */
    int first_closed;      /* the source's close */
    int first_cancels;     /* the source's cancel */
    _Atomic uint64_t delivered; /* bytes handed over by every stream */
    atomic_int failures;   /* streams failed by fail_after */
    atomic_int first_done; /* the source's done calls */
    atomic_int first_ended; /* the first stream's read or next gave <= 0 */
    atomic_int violations; /* broken rules (see seek_check) */
} seek_src;

struct seek_part {
    seek_src *s;
    uint64_t start, end;   /* open_at's off and end (the first: 0, MAX) */
    uint64_t pos;          /* next byte it delivers */
    _Atomic uint64_t delivered; /* bytes it delivered */
    int version;
    int is_first;
    size_t chunk_idx;
    double t0_ns;          /* when its first byte may go (monotonic ns) */
    pthread_t thread;      /* the thread that opened it */
    int have_thread;
    atomic_int tid;        /* that thread's id (gettid), once known */
    unsigned char *scratch; /* next-style: the chunk, overwritten per call */
    size_t scratch_cap;
    atomic_int cancelled;
    atomic_int cancels;
    atomic_int closes;
};

/* On the fixture's heap, len bytes, the length reported, no first stream,
   unpaced; its gate is released in pass 1, it is destroyed in pass 2
   (after the buffers opened later are closed). */
seek_src *fx_seek(uint64_t len);
sb_source seek_source(seek_src *s);
/* sb_open over s, tracked (fx_buffer); NULL with errno as sb_open. */
sb_buffer *open_seek(seek_src *s, const sb_options *o);

/* Add a gate range [lo, hi) (hi 0: to the end) and turn the gate on. */
void seek_gate(seek_src *s, uint64_t lo, uint64_t hi);
/* Let every stream past the gate, for good. */
void seek_release(seek_src *s);

/* Bounded waits on the source's events: 1, or 0 on timeout. */
int seek_wait_opens(seek_src *s, int n, int timeout_ms);     /* open_at calls */
int seek_wait_closed(seek_src *s, int n, int timeout_ms);    /* parts closed */
int seek_wait_blocked(seek_src *s, int n, int timeout_ms);   /* at the gate */
/* Until open_at has succeeded at an offset in [lo, hi]. */
int seek_wait_open_in(seek_src *s, uint64_t lo, uint64_t hi, int timeout_ms);

/* Snapshots (under mu). */
int seek_opens(seek_src *s);
int seek_opens_ok(seek_src *s);
int seek_closed(seek_src *s);
/* open_at calls with off in [lo, hi]. */
int seek_opens_in(seek_src *s, uint64_t lo, uint64_t hi);
/* Parts opened and not yet closed. */
int seek_open_now(seek_src *s);
/* Bytes of [lo, hi) delivered by the streams made so far (a byte that
   two streams delivered counts twice). */
uint64_t seek_delivered_in(seek_src *s, uint64_t lo, uint64_t hi);
/* The lowest off asked of open_at (UINT64_MAX if none). */
uint64_t seek_lowest_open(seek_src *s);
/* The thread id (gettid) of the fetcher that reads the first stream
   (first) or the part opened at start; 0 while there is none. */
int seek_thread_id(seek_src *s, int first, uint64_t start);

/*
 * Every rule a stream's callbacks must see kept, counted over all parts
 * made so far: returns 0, or -1 and says on stderr which part broke which:
 * a part closed more than once or cancelled more than once, cancelled
 * after its close, a callback after close, callbacks on two threads, an
 * open_at after the source's close.  With all_closed, every part made must
 * also have been closed exactly once (call it after sb_close).
 */
int seek_check(seek_src *s, int all_closed);

/*
 * The run list: runs tests[0 .. n), or by hand only those named in
 * $SB_ONLY (a list of test names split by spaces; the others are named on
 * stderr as not run).
 */
struct CMUnitTest;
int seek_run_tests(const char *group, struct CMUnitTest *tests, size_t n);

#endif /* SB_TESTS_SEEK_H */
