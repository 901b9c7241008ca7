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

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "streambuffer.h" /* enum sb_state, sb_stats */

struct sb__waiter; /* private to wait.c; lives on a waiting reader's stack */

/*
 * A non-blocking reader's arming (see "Event loops" in the header): the
 * range it waits for, kept in the buffer's heap of armed readers until it
 * becomes answerable, then on the ready list until sb_poll_ready takes it.
 * Lives in the reader; every field but armed is under the wait's mu.
 */
struct sb__armed {
    uint64_t need;              /* answerable once filled >= need */
    size_t slot;                /* index in the heap; SB__UNARMED if none */
    struct sb__armed *prev, *next; /* on the ready list */
    bool listed;                /* on the ready list */
    atomic_bool armed;          /* in the heap; stored under mu, loaded
                                   anywhere (sb_reader_armed) */
    uint64_t off;               /* a far range [off, need): armed on the
                                   far list, not in the heap */
    bool far;
    void *owner;                /* the sb_reader, which poll_ready returns */
};
#define SB__UNARMED SIZE_MAX

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

    /*
     * Event loops, also under mu: the armed readers in a binary min-heap
     * by need (a publish looks at the top only), with room for every
     * non-blocking reader reserved when it opens, so arming never
     * allocates; the ready list, oldest first; and the eventfd (-1 until
     * sb_poll_fd), stored under mu, loaded anywhere.
     */
    struct sb__armed **heap;
    size_t nheap, heap_cap, armable;

    /*
     * Ranged sources (parts.h): bytes past filled may be held too, in runs
     * that held_run() tells (the end of the held run from off, off if none;
     * lock-free, so it may be called under mu).  NULL for other streams.
     * Waits and armings for a range that starts past filled go on the far
     * lists, unsorted, and every publish and sb__wait_recheck looks at
     * each: they are few (a reader each), a publish is a chunk.
     */
    uint64_t (*held_run)(void *arg, uint64_t off);
    void *held_arg;
    struct sb__waiter *far;
    struct sb__armed *far_armed;
    struct sb__armed *ready_head, *ready_tail;
    _Atomic int efd;
#ifndef NDEBUG
    pthread_t holder;               /* who holds mu, for _locked asserts */
    bool held;
#endif
};

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
 * to `demand` (the end of the range asked for; at least need).  Returns 0,
 * -ETIMEDOUT, or -ENOMEM/-EAGAIN when the waiter's condition variable
 * cannot be set up.
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
 * sb__wait_arm_range arms a for it in the same way.  sb__wait_recheck:
 * held runs grew or joined; wake the far waiters and armings now held.
 */
int sb__wait_range(struct sb__wait *w, uint64_t off, uint64_t need,
                   uint64_t demand, int timeout_ms);
int sb__wait_arm_range(struct sb__wait *w, struct sb__armed *a, uint64_t off,
                       uint64_t need, uint64_t demand);
void sb__wait_recheck(struct sb__wait *w);

/* Raise the demand to at least d (a reader's floor).  Wakes a paused
   writer that may now go on. */
void sb__wait_demand(struct sb__wait *w, uint64_t d);

/* Raise the floor to f (never lowers it).  Wakes a paused writer that may
   now go on.  Returns the floor now. */
uint64_t sb__wait_raise_floor(struct sb__wait *w, uint64_t f);

/*
 * Non-blocking readers.  sb__wait_armable(w, +1) reserves heap room for
 * one more (0 or -ENOMEM), (w, -1) gives it back.  sb__wait_arm: if the
 * range ending at need is answerable now, 0 and nothing changes; else the
 * demand rises as for a wait, a takes the place of its old arming (off
 * the heap and the ready list) and -EAGAIN.  sb__wait_disarm takes a off
 * both (a closing reader).  sb__wait_take_ready moves up to max owners
 * off the ready list into out and drains the eventfd when it leaves the
 * list empty.  sb__wait_poll_fd makes the eventfd once: the fd or -errno.
 */
int sb__wait_armable(struct sb__wait *w, int delta);
int sb__wait_arm(struct sb__wait *w, struct sb__armed *a, uint64_t need,
                 uint64_t demand);
void sb__wait_disarm(struct sb__wait *w, struct sb__armed *a);
size_t sb__wait_take_ready(struct sb__wait *w, void **out, size_t max);
int sb__wait_poll_fd(struct sb__wait *w);

/* Fill filled, publishes, waiting, wakeups, state, error, floor, demand,
   pauses and paused_ns of *out, all read at one instant. */
void sb__wait_stats(struct sb__wait *w, sb_stats *out);

#endif /* SB_WAIT_H */
