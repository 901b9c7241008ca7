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

int sb__wait_init(struct sb__wait *w)
{
    int rc;

    atomic_init(&w->filled, 0);
    atomic_init(&w->state, SB_RUNNING);
    w->err = 0;
    w->queue = NULL;
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
    if (rc == 0)
        rc = pthread_mutex_init(&w->mu, NULL);
    if (rc != 0) {
        sb__check(pthread_condattr_destroy(&w->condattr));
        return -rc;
    }
    return 0;
}

void sb__wait_destroy(struct sb__wait *w)
{
    assert(w->queue == NULL);
    sb__check(pthread_mutex_destroy(&w->mu));
    sb__check(pthread_condattr_destroy(&w->condattr));
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

int sb__wait_until(struct sb__wait *w, uint64_t need, int timeout_ms)
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
#ifndef NDEBUG
        w->held = false;
#endif
        e = timeout_ms < 0
                ? pthread_cond_wait(&me.cond, &w->mu)
                : pthread_cond_timedwait(&me.cond, &w->mu, &deadline);
        if (e != 0 && e != ETIMEDOUT)
            abort(); /* see lock.h */
#ifndef NDEBUG
        w->holder = pthread_self();
        w->held = true;
#endif
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
    unlock(w);
}
