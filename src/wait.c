/*
 * SPDX-License-Identifier: MIT
 *
 * wait.c - the watermark, the end state, and targeted wake-ups.
 *
 * Each waiting reader queues a small record on its own stack with the
 * watermark it needs and a futex word of its own.  The queue is kept sorted
 * by that need, so a publish walks only the prefix of readers whose range is
 * now complete and wakes each of them alone: a reader at offset 1 GiB is
 * not woken by every 64 KiB chunk on the way there (no thundering herd).
 * The end state wakes everyone.
 *
 * What a wake-up costs is the point of this file: the design before this
 * one, a condition variable per waiter signalled under the mutex (commit
 * bcf496b replaced it), cost 15-25 us per blocked read on this project's
 * machines.  Two things make it cheaper:
 *
 *   - The waker only unlinks the records under the mutex; it wakes them
 *     after it has let go, so a woken reader never runs into a mutex its
 *     waker still holds.
 *   - A woken reader leaves its wait by looking at its own word, without
 *     taking the mutex again: no second hand-off.
 *
 * The hand-off must keep the record alive while the waker uses it.  Its word
 * goes WAITING -> WOKEN -> DONE: the waker sets WOKEN, calls futex_wake on
 * the word, then sets DONE and never touches the record again; the reader
 * returns only once it sees DONE.  "Still linked" (under the mutex) means
 * "no waker has it": a reader whose timed wait expires unlinks itself if it
 * is still linked, and otherwise waits for DONE, which is imminent.
 * model/wait.pml is this protocol in Promela, checked by `make model`.
 *
 * The event-loop part (armed readers, the ready list, the poll fd) is
 * ready.c's: a publish and the end state call it with mu held
 * (sb__ready_make_locked) and signal its fd after letting go
 * (sb__ready_signal).
 *
 * Flow control lives here too, because its pause is a condition on the
 * same state: the writer (producer thread or sb_write) pauses on `room`
 * while filled runs read_ahead past the demand, or max_retained past the
 * floor.  Whatever moves those (a reader that has to wait raises the
 * demand, a release raises the floor, the end state) wakes it, and only
 * when it may go on.
 */
#include "wait.h"
#include "lock.h"

#include <assert.h>
#include <errno.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* A waiter's hand-off word; see the top. */
enum { W_WAITING, W_WOKEN, W_DONE };

struct sb__waiter {
    uint64_t need;              /* wake once filled >= need */
    uint64_t off;               /* on the far list: once [off, need) is
                                   held */
    _Atomic uint32_t state;     /* W_WAITING, W_WOKEN, W_DONE */
    struct sb__waiter *next;    /* in the queue; then in a waker's list */
    struct sb__waiter **pprev;  /* the pointer that points at us */
    bool linked;                /* in the queue (under mu) */
};

/* Sleep while *word == val, until an absolute CLOCK_MONOTONIC deadline
   (NULL: none).  Returns 0 or the errno (ETIMEDOUT, EINTR, EAGAIN: the word
   had changed). */
static int futex_wait(_Atomic uint32_t *word, uint32_t val,
                      const struct timespec *deadline)
{
    long r = syscall(SYS_futex, (void *)word, FUTEX_WAIT_BITSET_PRIVATE, val,
                     deadline, NULL, FUTEX_BITSET_MATCH_ANY);
    return r == 0 ? 0 : errno;
}

static void futex_wake(_Atomic uint32_t *word)
{
    syscall(SYS_futex, (void *)word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

#define lock(w) sb__wait_lock(w)
#define unlock(w) sb__wait_unlock(w)
#define assert_locked(w) sb__wait_assert_locked(w)

/* The CPUs this process may run on (a cpuset or taskset can leave it one
   of many), which is what decides whether a spinner can take the
   producer's CPU. */
static int usable_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

int sb__wait_init(struct sb__wait *w, uint64_t read_ahead,
                  uint64_t max_retained, uint64_t near)
{
    int rc;

    w->held_run = NULL;
    w->held_arg = NULL;
    w->far = NULL;
    atomic_init(&w->filled, 0);
    atomic_init(&w->state, SB_RUNNING);
    atomic_init(&w->floor, 0);
    w->err = 0;
    w->read_ahead = read_ahead;
    w->near = near;
    atomic_init(&w->spinners, 0);
    int ncpu = usable_cpus();
    w->max_spinners = ncpu > 1 ? 2 * ncpu : 0;
    w->max_retained = max_retained;
    w->queue = NULL;
    atomic_init(&w->demand, 0);
    w->writer_paused = false;
    w->pauses = 0;
    w->paused_ns = 0;
    w->publishes = 0;
    w->waiting = 0;
    w->wakeups = 0;
    sb__ready_init(&w->ready);
#ifndef NDEBUG
    w->held = false;
#endif
    rc = pthread_condattr_init(&w->condattr);
    if (rc != 0)
        return -rc;
    rc = pthread_condattr_setclock(&w->condattr, CLOCK_MONOTONIC);
    if (rc != 0)
        goto no_mutex;
    rc = pthread_mutex_init(&w->mu, NULL);
    if (rc != 0)
        goto no_mutex;
    rc = pthread_cond_init(&w->room, NULL);
    if (rc == 0)
        return 0;
    sb__check(pthread_mutex_destroy(&w->mu));
no_mutex:
    sb__check(pthread_condattr_destroy(&w->condattr));
    return -rc;
}

void sb__wait_destroy(struct sb__wait *w)
{
    assert(w->queue == NULL && !w->writer_paused);
    sb__ready_destroy(&w->ready);
    sb__check(pthread_cond_destroy(&w->room));
    sb__check(pthread_mutex_destroy(&w->mu));
    sb__check(pthread_condattr_destroy(&w->condattr));
}

/* Wait on c with mu held, keeping the debug holder record true. */
static int cond_wait_locked(struct sb__wait *w, pthread_cond_t *c,
                            const struct timespec *deadline)
{
    assert_locked(w);
#ifndef NDEBUG
    w->held = false;
#endif
    int e = deadline == NULL ? pthread_cond_wait(c, &w->mu)
                             : pthread_cond_timedwait(c, &w->mu, deadline);
    if (e != 0 && e != ETIMEDOUT)
        abort(); /* see lock.h */
#ifndef NDEBUG
    w->holder = pthread_self();
    w->held = true;
#endif
    return e;
}

/* Whether the writer must pause now: flow control says so and the stream
   still runs. */
static bool must_pause_locked(struct sb__wait *w)
{
    assert_locked(w);
    if (atomic_load_explicit(&w->state, memory_order_relaxed) != SB_RUNNING)
        return false;
    uint64_t filled = atomic_load_explicit(&w->filled, memory_order_relaxed);
    if (w->read_ahead != 0) {
        uint64_t d = atomic_load_explicit(&w->demand, memory_order_relaxed);
        uint64_t until = d > UINT64_MAX - w->read_ahead ? UINT64_MAX
                                                        : d + w->read_ahead;
        if (filled >= until)
            return true;
    }
    if (w->max_retained != 0) {
        uint64_t floor = atomic_load_explicit(&w->floor, memory_order_relaxed);
        if (filled > floor && filled - floor >= w->max_retained)
            return true;
    }
    return false;
}

/* After something the pause depends on moved: let a paused writer go if it
   may now.  (One writer at most pauses: the producer, or the sb_write
   that holds write_mu.) */
static void wake_writer_locked(struct sb__wait *w)
{
    assert_locked(w);
    if (w->writer_paused && !must_pause_locked(w))
        sb__cond_signal(&w->room);
}

void sb__wait_raise_demand_locked(struct sb__wait *w, uint64_t d)
{
    assert_locked(w);
    if (d > atomic_load_explicit(&w->demand, memory_order_relaxed)) {
        atomic_store_explicit(&w->demand, d, memory_order_relaxed);
        wake_writer_locked(w);
    }
}

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

int sb__wait_room(struct sb__wait *w)
{
    lock(w);
    if (must_pause_locked(w)) {
        uint64_t t0 = now_ns();
        w->pauses++;
        w->writer_paused = true;
        while (must_pause_locked(w))
            cond_wait_locked(w, &w->room, NULL);
        w->writer_paused = false;
        w->paused_ns += now_ns() - t0;
    }
    int rc = 0;
    if (atomic_load_explicit(&w->state, memory_order_relaxed) == SB_FAILED)
        rc = -w->err;
    unlock(w);
    return rc;
}

void sb__wait_demand(struct sb__wait *w, uint64_t d)
{
    /* A reader that releases behind what it has read asks for nothing
       new: no lock for that. */
    if (d <= atomic_load_explicit(&w->demand, memory_order_relaxed))
        return;
    lock(w);
    sb__wait_raise_demand_locked(w, d);
    unlock(w);
}

uint64_t sb__wait_raise_floor(struct sb__wait *w, uint64_t f)
{
    lock(w);
    uint64_t old = atomic_load_explicit(&w->floor, memory_order_relaxed);
    if (f > old) {
        atomic_store_explicit(&w->floor, f, memory_order_release);
        wake_writer_locked(w);
    } else {
        f = old;
    }
    unlock(w);
    return f;
}

static void enqueue_locked(struct sb__wait *w, struct sb__waiter *me)
{
    assert_locked(w);
    struct sb__waiter **pp = &w->queue;
    while (*pp != NULL && (*pp)->need <= me->need)
        pp = &(*pp)->next;
    me->next = *pp;
    me->pprev = pp;
    if (*pp != NULL)
        (*pp)->pprev = &me->next;
    *pp = me;
    me->linked = true;
    w->waiting++;
}

static void dequeue_locked(struct sb__wait *w, struct sb__waiter *me)
{
    assert_locked(w);
    *me->pprev = me->next;
    if (me->next != NULL)
        me->next->pprev = me->pprev;
    me->linked = false;
    w->waiting--;
}

/* Unlink the waiters whose need is at most limit (a prefix of the queue)
   and return them as a list, for wake_list once mu is let go. */
static struct sb__waiter *take_locked(struct sb__wait *w, uint64_t limit)
{
    assert_locked(w);
    struct sb__waiter *list = NULL, **tail = &list;
    while (w->queue != NULL && w->queue->need <= limit) {
        struct sb__waiter *first = w->queue;
        dequeue_locked(w, first);
        first->next = NULL; /* the list's last, until another comes */
        *tail = first;
        tail = &first->next;
    }
    return list;
}

/* Hand one waiter over: wake it and let it go.  The record is the
   waker's until the W_DONE store (release: the reader that sees it sees
   everything published before); it is not touched after that. */
static void hand_over(struct sb__waiter *me)
{
    atomic_store_explicit(&me->state, W_WOKEN, memory_order_relaxed);
    futex_wake(&me->state);
    atomic_store_explicit(&me->state, W_DONE, memory_order_release);
}

/*
 * Wake the waiters take_locked returned, without mu.  The waker (the
 * producer, most often) wakes only the first; the first, once it is up,
 * wakes the rest (wake_rest).  A publish that completes many ranges then
 * costs the producer one futex_wake, and the others are paid for by a
 * reader that had nothing to do but wait.  The rest of the list rides in
 * the first record's next.
 */
static void wake_list(struct sb__waiter *list)
{
    if (list != NULL)
        hand_over(list);
}

bool sb__wait_held_locked(struct sb__wait *w, uint64_t off, uint64_t need)
{
    assert_locked(w);
    if (atomic_load_explicit(&w->filled, memory_order_relaxed) >= need)
        return true;
    return w->held_run != NULL && w->held_run(w->held_arg, off) >= need;
}

static void far_enqueue_locked(struct sb__wait *w, struct sb__waiter *me)
{
    assert_locked(w);
    me->next = w->far;
    me->pprev = &w->far;
    if (w->far != NULL)
        w->far->pprev = &me->next;
    w->far = me;
    me->linked = true;
    w->waiting++;
}

/* Unlink the far waiters whose range is held (all of them at the end
   state) and append them to the list at *list. */
static void take_far_locked(struct sb__wait *w, bool all,
                            struct sb__waiter **list)
{
    assert_locked(w);
    struct sb__waiter **tail = list;
    while (*tail != NULL)
        tail = &(*tail)->next;
    struct sb__waiter *me = w->far;
    while (me != NULL) {
        struct sb__waiter *next = me->next;
        if (all || sb__wait_held_locked(w, me->off, me->need)) {
            dequeue_locked(w, me);
            me->next = NULL;
            *tail = me;
            tail = &me->next;
        }
        me = next;
    }
}

/* A woken waiter's duty: wake the ones that came with it. */
static void wake_rest(struct sb__waiter *rest)
{
    while (rest != NULL) {
        struct sb__waiter *me = rest;
        rest = me->next;
        me->next = NULL; /* it has no one to wake: this list is ours */
        hand_over(me);
    }
}

bool sb__wait_publish(struct sb__wait *w, uint64_t filled)
{
    struct sb__waiter *woken = NULL;
    bool loop = false;
    lock(w);
    bool running = atomic_load_explicit(&w->state, memory_order_relaxed)
                   == SB_RUNNING;
    uint64_t old = atomic_load_explicit(&w->filled, memory_order_relaxed);
    assert(filled >= old);
    if (running && filled > old) {
        atomic_store_explicit(&w->filled, filled, memory_order_release);
        w->publishes++;
        woken = take_locked(w, filled);
        if (w->far != NULL)
            take_far_locked(w, false, &woken);
        loop = sb__ready_make_locked(w, filled);
        if (w->ready.far != NULL)
            loop |= sb__ready_make_far_locked(w, false);
    }
    unlock(w);
    wake_list(woken);
    if (loop)
        sb__ready_signal(w);
    return running;
}

bool sb__wait_finish(struct sb__wait *w, int err)
{
    struct sb__waiter *woken = NULL;
    bool loop = false;
    lock(w);
    bool first = atomic_load_explicit(&w->state, memory_order_relaxed)
                 == SB_RUNNING;
    if (first) {
        w->err = err;
        atomic_store_explicit(&w->state, err == 0 ? SB_ENDED : SB_FAILED,
                              memory_order_release);
        woken = take_locked(w, UINT64_MAX);
        take_far_locked(w, true, &woken);
        loop = sb__ready_make_locked(w, UINT64_MAX);
        loop |= sb__ready_make_far_locked(w, true);
        if (w->writer_paused)
            sb__cond_signal(&w->room);
    }
    unlock(w);
    wake_list(woken);
    if (loop)
        sb__ready_signal(w);
    return first;
}

bool sb__wait_answerable_locked(struct sb__wait *w, uint64_t need)
{
    assert_locked(w);
    return atomic_load_explicit(&w->filled, memory_order_relaxed) >= need
           || atomic_load_explicit(&w->state, memory_order_relaxed)
                  != SB_RUNNING;
}

static struct timespec deadline_after(int ms)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_sec += ms / 1000;
    t.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

/*
 * Before it sleeps, a waiter whose bytes are due within two chunks yields
 * its CPU for a while instead: a follower right behind the producer gets
 * its bytes within a chunk or two, and a futex sleep and wake-up cost more
 * than that on a virtual machine.  The spin ends after SPIN_NS, not after a
 * number of yields: a yield takes half a microsecond when nothing else is
 * runnable, while a chunk takes 15-30 us to store (64 KiB; the in-memory
 * part is slower, its pages are touched for the first time).  Measured on
 * 2 cores (make bench, case live, and the same rows in isolation):
 *
 *   - 8 yields, at most cores - 1 spinners (0.3.0): 4 followers 0.76 of
 *     the lower bound in memory, 0.98 spilling; 1 follower 0.78 and 0.83;
 *   - 100 us: 1 follower in memory 0.157 s -> 0.124 s a stream, spilling
 *     0.085 -> 0.071 s; 50 us bought less, 200 and 400 us nothing more;
 *   - and up to 2 x cores spinners: 4 followers' sleeps fell from 10,000
 *     a stream to about 100, and their time by a tenth (in memory 0.15 ->
 *     0.14 s, spilling 0.104 -> 0.093 s).  A spinner yields, so a producer
 *     that shares its CPU still runs; the cap bounds what spinners can take
 *     from it when many readers wait near the end.
 *
 * Never on one core (the CPUs this process may use), where the producer
 * needs the CPU that a spinner would hold; the cap is per buffer.  Waits further ahead (a random reader at 1 MiB) always sleep:
 * yielding there is only burnt CPU.  A waiter that spins in vain (a slow
 * source) burns at most SPIN_NS per wait.  In the whole bench (3 runs each)
 * 4 followers went from 0.77 to 0.84 of the bound in memory and from 0.96
 * to 1.02 spilling; a wake-up from sleep still takes what it took (23-27
 * us here), and a hand-over that comes while the reader spins takes 0.6 us.
 */
#define SPIN_NS 100000u

static void spin(struct sb__wait *w, struct sb__waiter *me, uint64_t ahead)
{
    if (w->max_spinners == 0 || ahead > w->near)
        return;
    if (atomic_fetch_add_explicit(&w->spinners, 1, memory_order_relaxed)
        >= w->max_spinners) {
        atomic_fetch_sub_explicit(&w->spinners, 1, memory_order_relaxed);
        return;
    }
    uint64_t t0 = now_ns();
    while (atomic_load_explicit(&me->state, memory_order_acquire) == W_WAITING
           && now_ns() - t0 < SPIN_NS)
        sched_yield();
    atomic_fetch_sub_explicit(&w->spinners, 1, memory_order_relaxed);
}

/* Sleep until a waker hands me over (0), or until the deadline (NULL:
   none) passes while I am still queued (-ETIMEDOUT, and I am not). */
static int sleep_until_done(struct sb__wait *w, struct sb__waiter *me,
                            const struct timespec *until)
{
    for (;;) {
        uint32_t st = atomic_load_explicit(&me->state, memory_order_acquire);
        if (st == W_DONE)
            return 0;
        if (st == W_WOKEN) {
            /* The waker is inside its futex_wake, a moment from DONE. */
            sched_yield();
            continue;
        }
        int e = futex_wait(&me->state, W_WAITING, until);
        if (e != EAGAIN)
            atomic_fetch_add_explicit(&w->wakeups, 1, memory_order_relaxed);
        if (e == ETIMEDOUT) {
            lock(w);
            bool mine = me->linked;
            if (mine)
                dequeue_locked(w, me);
            unlock(w);
            if (mine)
                return -ETIMEDOUT;
            until = NULL; /* a waker has it: DONE comes at once */
        }
    }
}

int sb__wait_until(struct sb__wait *w, uint64_t need, uint64_t demand,
                   int timeout_ms)
{
    struct timespec deadline;

    if (timeout_ms > 0)
        deadline = deadline_after(timeout_ms);
    lock(w);
    if (sb__wait_answerable_locked(w, need)) {
        unlock(w);
        return 0;
    }
    /* Even a read that will not wait asked for these bytes: a caller that
       polls with timeout 0 must get them under read_ahead too. */
    sb__wait_raise_demand_locked(w, demand > need ? demand : need);
    if (timeout_ms == 0) {
        unlock(w);
        return -ETIMEDOUT;
    }

    struct sb__waiter me = { .need = need };
    atomic_init(&me.state, W_WAITING);
    enqueue_locked(w, &me);
    uint64_t ahead = need - atomic_load_explicit(&w->filled, memory_order_relaxed);
    unlock(w);

    spin(w, &me, ahead);
    int rc = sleep_until_done(w, &me, timeout_ms < 0 ? NULL : &deadline);
    if (rc == 0)
        wake_rest(me.next);
    return rc;
}

int sb__wait_range(struct sb__wait *w, uint64_t off, uint64_t need,
                   uint64_t demand, int timeout_ms)
{
    struct timespec deadline;

    if (timeout_ms > 0)
        deadline = deadline_after(timeout_ms);
    lock(w);
    if (sb__wait_held_locked(w, off, need)
        || sb__wait_answerable_locked(w, UINT64_MAX)) {
        unlock(w);
        return 0;
    }
    sb__wait_raise_demand_locked(w, demand > need ? demand : need);
    if (timeout_ms == 0) {
        unlock(w);
        return -ETIMEDOUT;
    }
    struct sb__waiter me = { .need = need, .off = off };
    atomic_init(&me.state, W_WAITING);
    far_enqueue_locked(w, &me);
    unlock(w);
    int rc = sleep_until_done(w, &me, timeout_ms < 0 ? NULL : &deadline);
    if (rc == 0)
        wake_rest(me.next);
    return rc;
}

void sb__wait_recheck(struct sb__wait *w)
{
    struct sb__waiter *woken = NULL;
    bool loop = false;
    lock(w);
    if (w->far != NULL)
        take_far_locked(w, false, &woken);
    if (w->ready.far != NULL)
        loop = sb__ready_make_far_locked(w, false);
    unlock(w);
    wake_list(woken);
    if (loop)
        sb__ready_signal(w);
}

void sb__wait_stats(struct sb__wait *w, sb_stats *out)
{
    lock(w);
    out->filled = atomic_load_explicit(&w->filled, memory_order_relaxed);
    out->state = atomic_load_explicit(&w->state, memory_order_relaxed);
    out->error = out->state == SB_FAILED ? w->err : 0;
    out->publishes = w->publishes;
    out->waiting = w->waiting;
    out->wakeups = atomic_load_explicit(&w->wakeups, memory_order_relaxed);
    out->floor = atomic_load_explicit(&w->floor, memory_order_relaxed);
    out->demand = atomic_load_explicit(&w->demand, memory_order_relaxed);
    out->pauses = w->pauses;
    out->paused = w->writer_paused;
    out->paused_ns = w->paused_ns;
    unlock(w);
}
