/*
 * producer.c - the producer thread: pull from the source, append, publish.
 *
 * The producer is the stream's only writer.  It drains the source eagerly,
 * whether or not anyone is reading, so a reader only ever waits for bytes
 * that have not been produced yet, never for its own turn to pull them.
 *
 * A read-style source reads straight into the spool's memory region while
 * there is room, so a stream that fits in memory is copied exactly once;
 * past mem_limit it reads into a scratch chunk that is then written to the
 * spill file.  An iterator's chunks are copied into the spool (they are only
 * valid until the next call).
 *
 * The producer stops when the source ends or fails, when storing fails, or
 * at its next step after sb_cancel; it checks the state after each callback
 * and sb__wait_publish refuses to publish once the stream is over.
 */
#include "internal.h"
#include "fault.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>

int sb__append(sb_buffer *b, const void *data, size_t len)
{
    uint64_t off = sb__wait_filled(&b->wait);
    int over = 0;

    if (len > b->max_size - off) {
        len = (size_t)(b->max_size - off);
        over = EFBIG;
    }
    int rc = sb__spool_write(&b->spool, off, data, len);
    if (rc < 0) {
        sb__wait_finish(&b->wait, -rc);
        return rc;
    }
    if (!sb__wait_publish(&b->wait, off + len)) {
        int err;
        sb__wait_state(&b->wait, &err);
        return -err;
    }
    if (over) {
        sb__wait_finish(&b->wait, over);
        return -over;
    }
    return 0;
}

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

/*
 * The bounce buffer for bytes bound for the spill file.  Page-aligned: the
 * kernel's copy from it into the page cache is measurably faster (about a
 * tenth of the spilling fill) than from a malloc'd, misaligned one.
 */
static unsigned char *scratch_alloc(size_t cap)
{
    const size_t page = 4096;
    return sb__aligned_alloc(page, (cap + page - 1) / page * page);
}

/* One read-style step.  Returns true to go on. */
static bool pull_read(sb_buffer *b)
{
    uint64_t off = sb__wait_filled(&b->wait);
    size_t cap = b->chunk_size;
    size_t room;
    unsigned char *dst = sb__spool_window(&b->spool, off, &room);

    if (dst != NULL) {
        if (cap > room)
            cap = room;
    } else {
        if (b->scratch == NULL && (b->scratch = scratch_alloc(cap)) == NULL) {
            sb__wait_finish(&b->wait, ENOMEM);
            return false;
        }
        dst = b->scratch;
    }
    ssize_t r = b->src.read(b->src.ctx, dst, cap);
    if (r <= 0 || (size_t)r > cap) {
        sb__wait_finish(&b->wait, r == 0 ? 0 : r < 0 ? source_errno(r) : EIO);
        return false;
    }
    return sb__append(b, dst, (size_t)r) == 0;
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

    while (running(b) && step(b))
        ;
    return NULL;
}

int sb__producer_start(sb_buffer *b)
{
    sigset_t all, old;

    /* Signals belong to the application's threads.  Blocking them here
       also turns SIGXFSZ from a spill write past RLIMIT_FSIZE into a plain
       EFBIG instead of the death of the process. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = sb__fault(SB__FAULT_THREAD);
    if (rc == 0)
        rc = pthread_create(&b->producer, NULL, producer_main, b);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        return -rc;
    b->has_producer = true;
    return 0;
}
