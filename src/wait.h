/*
 * SPDX-License-Identifier: MIT
 *
 * wait.h - the watermark, the end state, and the readers waiting on them.
 * Internal.
 *
 * This is the only shared mutable state between the writer (the producer)
 * and the readers.  It knows nothing of where the bytes are kept.
 */
#ifndef SB_WAIT_H
#define SB_WAIT_H

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "streambuffer.h" /* enum sb_state, sb_stats */
#include "lock.h"
#include "ready.h"

struct sb__waiter; /* private to wait.c; lives on a waiting reader's stack */

struct sb__wait {
    /*
     * filled: bytes [0, filled) are published and immutable.  Only grows.
     * Stored (release) by the writer with mu held; loaded (acquire) by
     * anyone without it, which is the readers' lock-free fast path.
     *
     * state: enum sb_state.  Leaves SB_RUNNING once and for all, stored
     * (release) with mu held after err and the final filled, so a reader
     * that loads a final state (acquire) may read err and filled without
     * the lock.
     */
    _Atomic uint64_t filled;
    _Atomic int state;
    int err;

    /*
     * floor: with SB_RELEASE, bytes below it are released.  Only grows.
     * Stored (release) with mu held, before any of those bytes is given
     * back; loaded (acquire) by anyone without it.
     */
    _Atomic uint64_t floor;

    /* Flow control, set at init and read-only after: 0 is off. */
    uint64_t read_ahead;
    uint64_t max_retained;
    uint64_t near;                  /* a wait this close to filled spins */
    int max_spinners;               /* how many may spin at once */
    _Atomic int spinners;

    /*
     * mu protects: the stores to filled and state (so that a waiter that
     * checked them under mu cannot miss the wake-up), the waiter queue,
     * and the counters below.  Never held across I/O, a copy of stream
     * bytes, or a source callback.  Helpers that need it held end in
     * _locked and assert it in debug builds.
     */
    pthread_mutex_t mu;
    pthread_condattr_t condattr;    /* CLOCK_MONOTONIC, for timed waits */
    struct sb__waiter *queue;       /* sorted by ascending need */
    _Atomic uint64_t demand;        /* furthest byte asked for; only grows;
                                       stored under mu, loaded anywhere */
    pthread_cond_t room;            /* the writer waits here while paused */
    bool writer_paused;             /* ... and says so */
    uint64_t pauses;                /* times the writer paused */
    uint64_t paused_ns;             /* and for how long */
    uint64_t publishes;             /* calls that published bytes */
    uint64_t waiting;               /* readers in the queue now */
    _Atomic uint64_t wakeups;       /* returns from a waiter's sleep */

    /* Event loops, also under mu: the armed readers, the ready list and
       the poll fd (ready.h; ready.c owns them). */
    struct sb__ready ready;

    /*
     * Ranged sources (parts.h): bytes past filled may be held too, in runs
     * that held_run() tells (the end of the held run from off, off if
     * none; lock-free, so it may be called under mu).  NULL for other
     * streams.  Waits for a range that starts past filled go on the far
     * list, unsorted (armings: ready.h), and every publish and
     * sb__wait_recheck looks at each: they are few (a reader each), and a
     * publish is a chunk.
     */
    uint64_t (*held_run)(void *arg, uint64_t off);
    void *held_arg;
    struct sb__waiter *far;
#ifndef NDEBUG
    pthread_t holder;               /* who holds mu, for _locked asserts */
    bool held;
#endif
};

/*
 * mu, with the debug record of who holds it (for the _locked asserts,
 * which a trylock could not give: it cannot say by whom).  For wait.c and
 * ready.c only.
 */
static inline void sb__wait_lock(struct sb__wait *w)
{
    sb__mutex_lock(&w->mu);
#ifndef NDEBUG
    w->holder = pthread_self();
    w->held = true;
#endif
}

static inline void sb__wait_unlock(struct sb__wait *w)
{
#ifndef NDEBUG
    w->held = false;
#endif
    sb__mutex_unlock(&w->mu);
}

#ifndef NDEBUG
#define sb__wait_assert_locked(w) \
    assert((w)->held && pthread_equal((w)->holder, pthread_self()))
#else
#define sb__wait_assert_locked(w) ((void)(w))
#endif

/* Returns 0 or -errno (pthread's: ENOMEM, EAGAIN).  read_ahead and
   max_retained are the flow-control options, 0 for off. */
int sb__wait_init(struct sb__wait *w, uint64_t read_ahead,
                  uint64_t max_retained, uint64_t near);
/* No thread may be waiting. */
void sb__wait_destroy(struct sb__wait *w);

static inline uint64_t sb__wait_filled(struct sb__wait *w)
{
    return atomic_load_explicit(&w->filled, memory_order_acquire);
}

static inline uint64_t sb__wait_floor(struct sb__wait *w)
{
    return atomic_load_explicit(&w->floor, memory_order_acquire);
}

/* The state, and in *err the stream's error when it is SB_FAILED. */
static inline enum sb_state sb__wait_state(struct sb__wait *w, int *err)
{
    int s = atomic_load_explicit(&w->state, memory_order_acquire);
    *err = s == SB_FAILED ? w->err : 0;
    return (enum sb_state)s;
}

/*
 * The writer publishes bytes [0, filled) and wakes exactly the readers whose
 * range is now complete.  A filled that is not larger than the last one
 * publishes nothing and is not counted.  Returns false, publishing nothing,
 * if the stream is no longer running (it was cancelled or failed).
 */
bool sb__wait_publish(struct sb__wait *w, uint64_t filled);

/*
 * Set the end state, once: err == 0 ends the stream at the current filled,
 * otherwise fails it with err.  Wakes every waiter.  Returns true if this
 * call set it, false if the state was already final (nothing changes).
 */
bool sb__wait_finish(struct sb__wait *w, int err);

/*
 * Block until filled >= need or the state is final, for at most timeout_ms
 * (-1 forever, 0 not at all).  Unless it returns at once, the demand rises
 * to `demand` (the end of the range asked for; at least need).  Returns 0
 * or -ETIMEDOUT; it allocates nothing (the waiter's record is on the
 * caller's stack) and so cannot fail otherwise.
 */
int sb__wait_until(struct sb__wait *w, uint64_t need, uint64_t demand,
                   int timeout_ms);

/*
 * The writer's pause: block while the stream runs and flow control says
 * stop (filled >= demand + read_ahead, or filled - floor >= max_retained).
 * Returns 0 to go on, or -err once the stream is over (its error; 0 is
 * returned for a stream that ended, which the writer never sees running).
 */
int sb__wait_room(struct sb__wait *w);

/*
 * sb__wait_until for a range [off, need) of a stream with held runs past
 * filled: wait until all of it is held (one run), or the state is final.
 * sb__wait_recheck: held runs grew or joined; wake the far waiters and
 * armings (ready.h) now held.
 */
int sb__wait_range(struct sb__wait *w, uint64_t off, uint64_t need,
                   uint64_t demand, int timeout_ms);
void sb__wait_recheck(struct sb__wait *w);

/* Raise the demand to at least d (a reader's floor).  Wakes a paused
   writer that may now go on. */
void sb__wait_demand(struct sb__wait *w, uint64_t d);

/* Raise the floor to f (never lowers it).  Wakes a paused writer that may
   now go on.  Returns the floor now. */
uint64_t sb__wait_raise_floor(struct sb__wait *w, uint64_t f);

/*
 * For ready.c, with mu held: whether a range ending at need is answerable
 * now (filled >= need, or the state is final), and raising the demand to
 * d as a wait does (waking a paused writer that may go on).
 */
bool sb__wait_answerable_locked(struct sb__wait *w, uint64_t need);
/* Whether [off, need) is all held in one run (filled, or held_run). */
bool sb__wait_held_locked(struct sb__wait *w, uint64_t off, uint64_t need);
void sb__wait_raise_demand_locked(struct sb__wait *w, uint64_t d);

/* Fill filled, publishes, waiting, wakeups, state, error, floor, demand,
   pauses and paused_ns of *out, all read at one instant. */
void sb__wait_stats(struct sb__wait *w, sb_stats *out);

#endif /* SB_WAIT_H */
