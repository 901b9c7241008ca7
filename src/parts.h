/*
 * SPDX-License-Identifier: MIT
 *
 * parts.h - a seekable source's fetchers, and the policy that places them
 * (see "Ranged sources" in the header and docs/design.md).  Internal.
 *
 * parts.c keeps the state and decides; fetch.c runs the fetcher threads
 * and does their I/O.  Everything here is under parts->mu but the extent
 * map's lookups, length and stale, which readers load without a lock.
 * Lock order: readers_mu, then parts->mu, then the wait's mu; spill_mu,
 * which only sb__parts_spill takes, before parts->mu.
 */
#ifndef SB_PARTS_H
#define SB_PARTS_H

#include "extent.h"
#include "streambuffer.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define SB__MAX_PARTS 64
#define SB__DEFAULT_PARTS 4
#define SB__DEFAULT_RETRIES 3
#define SB__SEAM ((uint64_t)4096)     /* bytes compared across a seam */
#define SB__UNKNOWN UINT64_MAX        /* a length not known yet */

/* A read that waits for [off, need), or an armed reader's range: what the
   policy places fetchers for.  Lives with the waiting call or the reader;
   linked under parts->mu. */
struct sb__want {
    uint64_t off, need;
    struct sb__want *prev, *next;
    bool linked;
    bool blocked;   /* a thread sleeps on it (not an armed reader): it
                       unwants once its bytes are held and it has woken
                       and run */
};

enum sb__fetcher_state {
    SB__F_IDLE,     /* no work: waits on cv */
    SB__F_ASSIGNED, /* told where to open; not yet reading */
    SB__F_RUNNING,  /* reading a stream */
};

struct sb__fetcher {
    struct sb__parts *parts;
    unsigned id;
    pthread_t thread;
    bool started;           /* thread is joinable */
    bool starting;          /* its thread is being made (parts.c,
                                   start_next_locked) */
    bool made_next;         /* its thread made (or tried to make) the
                               next one's */
    signed char other;      /* its thread's policy is SCHED_OTHER: 1 yes,
                               0 no, -1 not yet looked at (wait_until_locked;
                               only the thread itself) */
    pthread_cond_t cv;      /* the fetcher waits here: idle, paused,
                               between retries, for a seam's bytes */

    /* All under parts->mu. */
    enum sb__fetcher_state st;
    uint64_t at;            /* the next byte it stores (ASSIGNED: where its
                               bytes start) */
    uint64_t open_off;      /* where its part opens: at, or a seam before */
    uint64_t ext_lo;        /* the extent its bytes grow: 0 the watermark,
                               SB__UNKNOWN none yet */
    uint64_t limit;         /* it stores nothing at or past this: the next
                               bytes held or reached by another */
    uint64_t inflight;      /* a STORE step in progress reads [at,
                               inflight): claimed until it is published,
                               even once the fetcher is told to stop */
    uint64_t demand;        /* read_ahead: furthest byte asked for in reach */
    uint64_t open_demand;   /* demand when its part was asked for: more
                               since means readers go on through it */
    bool stop;              /* stop the stream it reads (moved, over) */
    bool first;             /* reads the source's own read/next */
    bool has_part;          /* part is open (closed by this thread) */
    bool part_cancelled;    /* part.cancel called (at most once) */
    unsigned fails;         /* failures in a row */
    bool retry;             /* pause before the next open (a failure) */
    bool probed;            /* read once past the length (and got 0) */
    bool progressed;        /* it stored bytes before its last failure */
    bool paused;            /* waits for flow control now */
    bool waiting;           /* asleep on cv now (wait_locked, the retry
                               pause): a signal reaches it */
    bool seam_wait;         /* waits for another run's bytes or end (one
                               of parts.seam_waiters) */
    uint64_t paused_at;     /* since when (CLOCK_MONOTONIC, ns) */
    bool delivered;         /* its stream gave bytes since it opened */
    uint64_t cmp_end;       /* [at, cmp_end): bytes to compare, not store */
    bool meet;              /* ... because it met held bytes at met: join
                               its run with them, then stop */
    uint64_t met;
    uint64_t reach_lo;      /* where its bytes began (demand is counted
                               from here to limit) */
    uint64_t req_end;       /* the end open_at was given */
    uint64_t moved_for;     /* being stopped to open at this byte; or
                               SB__UNKNOWN */
    double rate;            /* bytes/s it delivers while it runs (EWMA of
                               RATE_WINDOW_NS windows); 0 unknown */
    uint64_t win_bytes, win_ns; /* the window being measured */
    uint64_t last_ns;       /* when its last read returned; 0: none yet
                               in this part */
    uint64_t resumed_ns;    /* when flow control let it go last */
    sb_source part;
};

struct sb__parts {
    struct sb_buffer *b;
    pthread_mutex_t mu;
    /* Held by whoever makes the spill file (sb__parts_spill), without
       mu: the file is made once, and another thread that needs it waits
       here for it.  Taken before mu, never under it. */
    pthread_mutex_t spill_mu;
    struct sb__extents ext;         /* written under mu, read lock-free */
    _Atomic uint64_t length;        /* SB__UNKNOWN until a part reports it
                                       or a part ends */
    _Atomic bool stale;             /* a seam mismatched: extents no longer
                                       count */
    _Atomic uint64_t end_max;       /* a part opened here found nothing:
                                       the stream ends at or before it */

    /* Set at open, read-only afterwards. */
    const sb_source *src;           /* the buffer's own copy */
    void *(*thread_main)(void *);   /* fetch.c's, given a fetcher */
    size_t chunk;
    unsigned max_parts;
    unsigned retries;
    uint64_t seek_gap;              /* 0: measured */
    uint64_t max_size;              /* 0: none */
    uint64_t read_ahead;
    uint64_t max_retained;

    /* Under mu. */
    struct sb__fetcher f[SB__MAX_PARTS];
    unsigned nthreads;              /* fetchers [0, nthreads) have threads
                                       (or are being given one) */
    struct sb__want *wants;
    bool off;                       /* open_at refused: no more parts */
    bool over;                      /* the stream is over: fetchers leave */
    bool tail_checked;              /* a stream read past the length found
                                       nothing (or ended there) */
    double open_ns;                 /* open_at to first byte (EWMA); 0 unknown */
    uint64_t parts_opened, parts_moved, part_retries;
    uint64_t pauses, paused_ns;     /* fetchers' pauses (read_ahead,
                                       max_retained), as the producer's */
    unsigned npaused;               /* fetchers paused now */
    unsigned seam_waiters;          /* fetchers waiting for a seam's bytes */
    uint64_t to_wake;               /* fetchers (a bit each) to signal once
                                       mu is let go (sb__parts_unlock):
                                       signalled under it, each would wake
                                       only to wait for mu */
    bool recheck;                   /* far readers to recheck, likewise */
    bool drain_held;                /* a read waits for a part's first
                                       bytes, or a blocked one has them
                                       and has not returned: no drain
                                       part opens */
    bool starved;                   /* under read_ahead, a read waits for
                                       a fetcher to come free (every one
                                       busy and needed): an unwant or a
                                       fetcher's pause runs the policy */
    bool wake_rest;                 /* the hold ended: the first fetcher
                                       to take mu wakes every one */
    uint64_t fetched, refetched;
};

struct sb_buffer;

/* For sb.c: set up (0 or -errno), start the first fetcher (0 or -errno),
   wake every fetcher and cancel every part (sb_cancel), join the fetchers
   and close their parts (sb_close, before the source's close), free. */
int sb__parts_init(struct sb_buffer *b, uint32_t max_parts, uint32_t retries,
                   uint64_t seek_gap, uint64_t length, void *(*thread_main)(void *));
int sb__parts_start(struct sb_buffer *b);
void sb__parts_cancel(struct sb_buffer *b);
void sb__parts_join(struct sb_buffer *b);
void sb__parts_destroy(struct sb_buffer *b);

/* Lock-free, for the read path: the end of the held run from off (off
   when off is not held), counting extents unless the stream went stale. */
uint64_t sb__parts_run(struct sb_buffer *b, uint64_t off);

/* The stream's length, SB__UNKNOWN while unknown.  Lock-free. */
static inline uint64_t sb__parts_exact_length(const struct sb__parts *p)
{
    return atomic_load_explicit(&p->length, memory_order_acquire);
}

/* Where the stream ends at the latest: its length, or else the lowest
   offset where a part found nothing (SB__UNKNOWN: no bound yet).  No byte
   lies at or past it.  Lock-free. */
static inline uint64_t sb__parts_length(const struct sb__parts *p)
{
    uint64_t len = atomic_load_explicit(&p->length, memory_order_acquire);
    uint64_t max = atomic_load_explicit(&p->end_max, memory_order_acquire);
    return len < max ? len : max;
}

/* A read is about to wait for [off, need): register it and let the policy
   place a fetcher; unwant takes it off once the wait is over (or the
   reader that armed it closes).  Re-wanting a linked want moves it. */
void sb__parts_want(struct sb_buffer *b, struct sb__want *w, uint64_t off,
                    uint64_t need);
void sb__parts_unwant(struct sb_buffer *b, struct sb__want *w);

/* The spill file exists: made once, by whoever comes first, under
   spill_mu and without mu (it is I/O), then installed under mu; another
   caller meanwhile waits for it.  0 or -errno.  A fetcher calls it
   before its first store past the memory region (the file stays until
   the buffer goes); a blocking read that is to wait for such bytes calls
   it too, while its part opens, so that the file's creation is not in
   the way of the part's first bytes.  Any thread, without mu. */
int sb__parts_spill(struct sb_buffer *b);

/* The demand or the floor moved: paused fetchers look again. */
void sb__parts_poke(struct sb_buffer *b);

/* The ranged fields of *out. */
void sb__parts_stats(struct sb_buffer *b, sb_stats *out);

/* ---- between parts.c and fetch.c (parts->mu held) ---------------------- */

/* What a fetcher does next, decided under mu. */
enum sb__step {
    SB__STEP_STORE,   /* read up to cap bytes and store them at at */
    SB__STEP_SEAM,    /* read cap bytes and compare them with held ones */
    SB__STEP_PROBE,   /* at the length: read once more, expecting the end */
    SB__STEP_STOP,    /* close the stream it reads (met bytes, moved) */
    SB__STEP_QUIT,    /* the stream is over: close and leave */
};

/* Wait for work (an assignment) while idle; false when the stream is
   over.  Then the caller opens f->open_off. */
bool sb__parts_next_job_locked(struct sb__fetcher *f);
/* The end to give open_at: past the limit by a seam, within the length. */
uint64_t sb__parts_open_end_locked(const struct sb__fetcher *f);
/* open_at answered rc (0 or -errno) after ns, with *length as it set it. */
void sb__parts_opened_locked(struct sb__fetcher *f, int rc, uint64_t length);
/* The next step from f->at (pausing for flow control first). */
enum sb__step sb__parts_step_locked(struct sb__fetcher *f, size_t chunk,
                                    size_t *cap);
/* n bytes at f->at are stored: publish them (after a read that took ns). */
/* The source's own stream runs: with the length known from the start
   (SB_LENGTH_KNOWN), free fetchers may split the drain at once. */
void sb__parts_first_running_locked(struct sb__fetcher *f);
void sb__parts_stored_locked(struct sb__fetcher *f, size_t n, uint64_t t0,
                             uint64_t t1, bool first_bytes, uint64_t since_open_ns);
/* n seam bytes at f->at compared equal (or not). */
void sb__parts_compared_locked(struct sb__fetcher *f, size_t n, bool equal);
/* f has closed the stream it read: it is free (unless a retry waits). */
void sb__parts_left_locked(struct sb__fetcher *f);
/* A PROBE read r (0 the end, > 0 bytes past the length, < 0 an error). */
void sb__parts_probed_locked(struct sb__fetcher *f, ssize_t r);
/* The stream f reads ended (0) or failed (-errno); a STOP closes too. */
void sb__parts_ended_locked(struct sb__fetcher *f, int rc);
/* The pause before a retry: false if the stream is over meanwhile. */
bool sb__parts_retry_pause_locked(struct sb__fetcher *f);

/* Lets mu go, then wakes the fetchers and readers that what was done
   under it concerns.  Every unlock of mu goes through here. */
void sb__parts_unlock(struct sb__parts *p);

/* fetch.c: a fetcher thread's body (arg: its struct sb__fetcher). */
void *sb__fetcher_main(void *arg);

#endif /* SB_PARTS_H */
