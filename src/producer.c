/*
 * SPDX-License-Identifier: MIT
 *
 * producer.c - the producer thread: pull from the source, then append.
 *
 * The producer is the stream's only writer.  Without flow control it
 * drains the source eagerly, whether or not anyone is reading, so a reader
 * only ever waits for bytes that have not been produced yet, never for its
 * own turn to pull them.  With read_ahead or max_retained it pauses before
 * a step while flow control says so (sb__wait_room), and with SB_RELEASE
 * it gives back what is below the floor before each step, so released
 * space comes back no later than the next publish.
 *
 * A read-style source reads into room reserved at the end of the stream
 * (sb__reserve): straight into the memory region while a whole chunk fits
 * there, so a stream that fits in memory is copied exactly once, and into
 * the bounce buffer beyond.  An iterator's chunks are copied in (they are
 * only valid until the next call).
 *
 * The producer stops when the source ends or fails, when storing fails, or
 * at its next step after sb_cancel; it checks the state after each callback
 * and the append step refuses to publish once the stream is over.
 */
#include "internal.h"
#include "fault.h"
#include "lock.h"

#include <errno.h>
#include <signal.h>

/* A callback's negative return as an errno; nonsense becomes EIO. */
static int source_errno(long r)
{
    return r < 0 && r >= -4095 ? (int)-r : EIO;
}

static bool running(sb_buffer *b)
{
    int err;
    return sb__wait_state(&b->wait, &err) == SB_RUNNING;
}

/* One read-style step.  Returns true to go on. */
static bool pull_read(sb_buffer *b)
{
    void *room;
    size_t cap;
    if (sb__reserve(b, &room, &cap) < 0)
        return false;
    ssize_t r = b->src.read(b->src.ctx, room, cap);
    if (r <= 0 || (size_t)r > cap) {
        sb__wait_finish(&b->wait, r == 0 ? 0 : r < 0 ? source_errno(r) : EIO);
        return false;
    }
    return sb__commit(b, room, (size_t)r) == 0;
}

/* One iterator step.  Returns true to go on. */
static bool pull_next(sb_buffer *b)
{
    const void *chunk = NULL;
    size_t len = 0;
    int r = b->src.next(b->src.ctx, &chunk, &len);

    if (r <= 0) {
        sb__wait_finish(&b->wait, r == 0 ? 0 : source_errno(r));
        return false;
    }
    if (len == 0)
        return true;
    if (chunk == NULL) {
        sb__wait_finish(&b->wait, EIO);
        return false;
    }
    return sb__append(b, chunk, len) == 0;
}

static void *producer_main(void *arg)
{
    sb_buffer *b = arg;
    bool (*step)(sb_buffer *) = b->src.read != NULL ? pull_read : pull_next;

    while (running(b) && sb__give_back(b, true) == 0 && sb__wait_room(&b->wait) == 0
           && running(b) && step(b))
        ;
    return NULL;
}

int sb__producer_start(sb_buffer *b)
{
    sigset_t all, old;

    /* Signals belong to the application's threads. */
    sigfillset(&all);
    int rc = pthread_sigmask(SIG_SETMASK, &all, &old);
    if (rc != 0)
        return -rc;
    rc = sb__fault(SB__FAULT_THREAD);
    if (rc == 0)
        rc = pthread_create(&b->producer, NULL, producer_main, b);
    sb__check(pthread_sigmask(SIG_SETMASK, &old, NULL));
    if (rc != 0)
        return -rc;
    b->has_producer = true;
    return 0;
}
