/*
 * writer.c - push mode: the caller is the producer.
 *
 * Many sources push rather than pull (libcurl's write callback, a decoder's
 * output callback, an event loop).  A writer buffer has no producer thread;
 * sb_write stores and publishes through the same sb__append step the
 * producer thread uses, so readers cannot tell the two apart.  The buffer
 * itself is opened and freed in sb.c.
 */
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <time.h>

/* Check a writer call's buffer.  Returns 0 or -EINVAL. */
static int check_writer(const sb_buffer *b)
{
    return b != NULL && b->is_writer ? 0 : -EINVAL;
}

/* Why a write cannot go on, with write_mu held: 0 if it can. */
static int write_refusal(sb_buffer *b)
{
    int err;
    if (b->finished)
        return EPIPE;
    if (sb__wait_state(&b->wait, &err) != SB_RUNNING)
        return err;
    return 0;
}

/*
 * A spill write past RLIMIT_FSIZE raises SIGXFSZ in the writing thread,
 * whose default action kills the process.  The producer thread blocks every
 * signal; a writer runs on the caller's thread, so while it may touch the
 * spill file SIGXFSZ is blocked, and one raised meanwhile is consumed: the
 * caller gets EFBIG, like a producer's reader would.
 */
struct xfsz_guard {
    sigset_t old;
    bool was_pending;
};

static void xfsz_block(struct xfsz_guard *g)
{
    sigset_t set, pending;
    sigemptyset(&set);
    sigaddset(&set, SIGXFSZ);
    pthread_sigmask(SIG_BLOCK, &set, &g->old);
    sigpending(&pending);
    g->was_pending = sigismember(&pending, SIGXFSZ) == 1;
}

static void xfsz_restore(struct xfsz_guard *g)
{
    sigset_t set, pending;
    sigemptyset(&set);
    sigaddset(&set, SIGXFSZ);
    sigpending(&pending);
    if (!g->was_pending && sigismember(&pending, SIGXFSZ) == 1) {
        const struct timespec now = { 0, 0 };
        sigtimedwait(&set, NULL, &now);
    }
    pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

SB_API ssize_t sb_write(sb_buffer *b, const void *data, size_t len)
{
    int rc = check_writer(b);
    if (rc == 0 && ((data == NULL && len > 0) || len > SSIZE_MAX))
        rc = -EINVAL;
    if (rc < 0) {
        errno = -rc;
        return -1;
    }

    pthread_mutex_lock(&b->write_mu);
    rc = -write_refusal(b);
    /* Only a write that reaches the file needs the signal dance. */
    struct xfsz_guard guard;
    bool spills = rc == 0
                  && sb__wait_filled(&b->wait) + len > b->spool.mem_cap;
    if (spills)
        xfsz_block(&guard);
    /* Publish chunk by chunk, so readers of the first bytes of a large
       write need not wait for the last. */
    const unsigned char *p = data;
    for (size_t left = len; rc == 0 && left > 0;) {
        size_t n = left < b->chunk_size ? left : b->chunk_size;
        rc = sb__append(b, p, n);
        p += n;
        left -= n;
    }
    if (spills)
        xfsz_restore(&guard);
    pthread_mutex_unlock(&b->write_mu);
    if (rc < 0) {
        errno = -rc;
        return -1;
    }
    return (ssize_t)len;
}

SB_API int sb_finish(sb_buffer *b, int err)
{
    int rc = check_writer(b);
    if (rc == 0 && err < 0)
        rc = -EINVAL;
    if (rc < 0) {
        errno = -rc;
        return -1;
    }

    pthread_mutex_lock(&b->write_mu);
    rc = write_refusal(b);
    if (rc == 0) {
        if (sb__wait_finish(&b->wait, err))
            b->finished = true;
        else
            rc = write_refusal(b); /* sb_cancel got there first */
    }
    pthread_mutex_unlock(&b->write_mu);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    return 0;
}
