/*
 * SPDX-License-Identifier: MIT
 *
 * sig.h - a signal that a system call would raise in the calling thread,
 * turned into the call's errno.  Internal.
 *
 * A pwrite(2) past RLIMIT_FSIZE raises SIGXFSZ, a write(2) or sendfile(2)
 * to a pipe or socket whose reader has gone raises SIGPIPE; the default
 * action of both kills the process, and the library's calls run on the
 * application's threads.  So the signal is blocked around the call and,
 * if the call raised it (it failed with EFBIG or EPIPE then), consumed,
 * unless one was already pending before, which stays for its owner.  A
 * thread that has the signal blocked already (the producer thread blocks
 * every signal) pays one pthread_sigmask call.
 */
#ifndef SB_SIG_H
#define SB_SIG_H

#include "lock.h"

#include <signal.h>
#include <stdbool.h>
#include <time.h>

struct sb__sig_guard {
    int sig;
    sigset_t old;
    bool was_blocked, was_pending;
};

static inline void sb__sig_hold(struct sb__sig_guard *g, int sig)
{
    sigset_t set, pending;
    sigemptyset(&set);
    sigaddset(&set, sig);
    g->sig = sig;
    sb__check(pthread_sigmask(SIG_BLOCK, &set, &g->old));
    g->was_blocked = sigismember(&g->old, sig) == 1;
    g->was_pending = false;
    if (g->was_blocked) {
        sigpending(&pending);
        g->was_pending = sigismember(&pending, sig) == 1;
    }
}

/* raised: the call failed with the errno that comes with the signal. */
static inline void sb__sig_release(struct sb__sig_guard *g, bool raised)
{
    if (raised && !g->was_pending) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, g->sig);
        const struct timespec now = { 0, 0 };
        sigtimedwait(&set, NULL, &now);
    }
    if (!g->was_blocked)
        sb__check(pthread_sigmask(SIG_SETMASK, &g->old, NULL));
}

#endif /* SB_SIG_H */
