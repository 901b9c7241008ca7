/*
 * SPDX-License-Identifier: MIT
 *
 * wait.c - the watermark, the end state, and targeted wake-ups.
 *
 * Each waiting reader queues a small record on its own stack with its own
 * condition variable and the watermark it needs.  The queue is kept sorted
 * by that need, so a publish walks only the prefix of readers whose range is
 * now complete and signals each of them alone: a reader at offset 1 GiB is
 * not woken by every 64 KiB chunk on the way there (no thundering herd).
 * The end state wakes everyone.
 *
 * A waker unlinks the record before signalling it, under the mutex; so
 * "still linked" means "not woken yet", and a reader whose wait times out
 * unlinks itself.  The record may be freed (the reader returns) only after
 * the reader has re-taken the mutex, which the waker has released by then.
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
#include <time.h>

struct sb__waiter {
    uint64_t need;              /* wake once filled >= need */
    pthread_cond_t cond;
    struct sb__waiter *next;
    struct sb__waiter **pprev;  /* the pointer that points at us */
    bool linked;
};

static void lock(struct sb__wait *w)
{
    sb__mutex_lock(&w->mu);
#ifndef NDEBUG
    w->holder = pthread_self();
    w->held = true;
#endif
}

static void unlock(struct sb__wait *w)
{
#ifndef NDEBUG
    w->held = false;
#endif
    sb__mutex_unlock(&w->mu);
}

#ifndef NDEBUG
#define assert_locked(w) assert((w)->held && pthread_equal((w)->holder, pthread_self()))
#else
#define assert_locked(w) ((void)(w))
#endif

int sb__wait_init(struct sb__wait *w, uint64_t read_ahead,
                  uint64_t max_retained)
{
    int rc;

    atomic_init(&w->filled, 0);
    atomic_init(&w->state, SB_RUNNING);
    atomic_init(&w->floor, 0);
    w->err = 0;
    w->read_ahead = read_ahead;
    w->max_retained = max_retained;
    w->queue = NULL;
    atomic_init(&w->demand, 0);
    w->writer_paused = false;
    w->pauses = 0;
    w->paused_ns = 0;
    w->publishes = 0;
    w->waiting = 0;
    w->wakeups = 0;
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

static void raise_demand_locked(struct sb__wait *w, uint64_t d)
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
    raise_demand_locked(w, d);
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

/* Wake the waiters whose need is at most limit: a prefix of the queue. */
static void wake_locked(struct sb__wait *w, uint64_t limit)
{
    assert_locked(w);
    while (w->queue != NULL && w->queue->need <= limit) {
        struct sb__waiter *first = w->queue;
        dequeue_locked(w, first);
        sb__cond_signal(&first->cond);
    }
}

bool sb__wait_publish(struct sb__wait *w, uint64_t filled)
{
    lock(w);
    bool running = atomic_load_explicit(&w->state, memory_order_relaxed)
                   == SB_RUNNING;
    uint64_t old = atomic_load_explicit(&w->filled, memory_order_relaxed);
    assert(filled >= old);
    if (running && filled > old) {
        atomic_store_explicit(&w->filled, filled, memory_order_release);
        w->publishes++;
        wake_locked(w, filled);
    }
    unlock(w);
    return running;
}

bool sb__wait_finish(struct sb__wait *w, int err)
{
    lock(w);
    bool first = atomic_load_explicit(&w->state, memory_order_relaxed)
                 == SB_RUNNING;
    if (first) {
        w->err = err;
        atomic_store_explicit(&w->state, err == 0 ? SB_ENDED : SB_FAILED,
                              memory_order_release);
        wake_locked(w, UINT64_MAX);
        if (w->writer_paused)
            sb__cond_signal(&w->room);
    }
    unlock(w);
    return first;
}

static bool ready_locked(struct sb__wait *w, uint64_t need)
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

int sb__wait_until(struct sb__wait *w, uint64_t need, uint64_t demand,
                   int timeout_ms)
{
    struct timespec deadline;
    int rc = 0;

    if (timeout_ms > 0)
        deadline = deadline_after(timeout_ms);
    lock(w);
    if (ready_locked(w, need)) {
        unlock(w);
        return 0;
    }
    /* Even a read that will not wait asked for these bytes: a caller that
       polls with timeout 0 must get them under read_ahead too. */
    raise_demand_locked(w, demand > need ? demand : need);
    if (timeout_ms == 0) {
        unlock(w);
        return -ETIMEDOUT;
    }

    struct sb__waiter me = { .need = need };
    int e = pthread_cond_init(&me.cond, &w->condattr);
    if (e != 0) {
        unlock(w);
        return -e;
    }
    enqueue_locked(w, &me);
    while (me.linked) {
        e = cond_wait_locked(w, &me.cond, timeout_ms < 0 ? NULL : &deadline);
        w->wakeups++;
        if (e == ETIMEDOUT && me.linked) {
            dequeue_locked(w, &me);
            rc = -ETIMEDOUT;
        }
    }
    unlock(w);
    sb__check(pthread_cond_destroy(&me.cond));
    return rc;
}

void sb__wait_stats(struct sb__wait *w, sb_stats *out)
{
    lock(w);
    out->filled = atomic_load_explicit(&w->filled, memory_order_relaxed);
    out->state = atomic_load_explicit(&w->state, memory_order_relaxed);
    out->error = out->state == SB_FAILED ? w->err : 0;
    out->publishes = w->publishes;
    out->waiting = w->waiting;
    out->wakeups = w->wakeups;
    out->floor = atomic_load_explicit(&w->floor, memory_order_relaxed);
    out->demand = atomic_load_explicit(&w->demand, memory_order_relaxed);
    out->pauses = w->pauses;
    out->paused = w->writer_paused;
    out->paused_ns = w->paused_ns;
    unlock(w);
}
