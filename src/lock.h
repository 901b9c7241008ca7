/*
 * SPDX-License-Identifier: MIT
 *
 * lock.h - pthread calls whose failure can only mean a bug.  Internal.
 *
 * Locking a valid, initialised mutex that the caller does not hold, waiting
 * on a condition variable with it, and signalling one cannot fail; when they
 * do, memory is corrupt or a buffer is used after sb_close.  Going on would
 * read or write bytes under no lock, so these abort, as glibc does on a
 * corrupt heap.  Calls that can fail for a reason (init: ENOMEM, EAGAIN;
 * timed waits: ETIMEDOUT) are checked where they are made.
 */
#ifndef SB_LOCK_H
#define SB_LOCK_H

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

static inline void sb__check(int rc)
{
    if (rc != 0)
        abort();
}

static inline void sb__mutex_lock(pthread_mutex_t *m)
{
    sb__check(pthread_mutex_lock(m));
}

static inline void sb__mutex_unlock(pthread_mutex_t *m)
{
    sb__check(pthread_mutex_unlock(m));
}

static inline void sb__cond_wait(pthread_cond_t *c, pthread_mutex_t *m)
{
    sb__check(pthread_cond_wait(c, m));
}

static inline void sb__cond_signal(pthread_cond_t *c)
{
    sb__check(pthread_cond_signal(c));
}

static inline void sb__cond_broadcast(pthread_cond_t *c)
{
    sb__check(pthread_cond_broadcast(c));
}

/*
 * For a _locked helper: m is held.  pthread cannot say by whom, so this
 * checks only that someone holds it (a trylock that must fail); enough to
 * catch a caller that forgot to lock.  Compiled out under NDEBUG.
 */
static inline void sb__assert_held(pthread_mutex_t *m)
{
#ifndef NDEBUG
    int rc = pthread_mutex_trylock(m);
    if (rc == 0)
        sb__mutex_unlock(m);
    assert(rc == EBUSY);
#else
    (void)m;
#endif
}

#endif /* SB_LOCK_H */
