/*
 * SPDX-License-Identifier: MIT
 *
 * reader.c - readers, their floors, and giving back what is below them.
 *
 * A reader is a cursor that promises not to read below its floor.  The
 * buffer's floor is the lowest floor of the open readers (with SB_RELEASE);
 * it is recomputed under readers_mu whenever a reader opens, releases or
 * closes, and raised in wait.c while readers_mu is still held: two threads
 * that computed different minima must raise them in the order they were
 * computed, or a stale, higher minimum could pass a reader that has just
 * opened below it.  The list is short (a reader per consumer thread), so a
 * walk is cheaper than keeping it ordered.
 *
 * Giving back memory and disk (madvise, hole punching) is the one step that
 * knows both the floor and the spool.  It is done by whoever raised the
 * floor and by the writer before each step, whichever comes first, under
 * release_mu: a reader only tries it and leaves the work to the holder,
 * which looks again after it lets go; the writer waits for it, so that no
 * step stores bytes before what the floor has passed is back.
 */
#include "internal.h"
#include "fault.h"
#include "lock.h"

#include <errno.h>
#include <stdlib.h>

struct sb_reader {
    sb_buffer *b;
    /* Written under readers_mu by the reader's own thread; read by that
       thread without the lock and by others under it. */
    uint64_t floor;
    struct sb_reader *prev, *next;
    unsigned flags;           /* SB_NONBLOCK; set at open */
    struct sb__armed arm;     /* a non-blocking reader's; see wait.h */
    _Atomic(void *) tag;      /* the caller's */
};

struct sb__armed *sb__reader_arm(const sb_reader *r)
{
    /* The arming is the wait's state, not the reader's: a read through a
       const reader still arms it. */
    return (r->flags & SB_NONBLOCK) ? (struct sb__armed *)&r->arm : NULL;
}

uint64_t sb__reader_floor(const sb_reader *r)
{
    return r->floor;
}

sb_buffer *sb__reader_buffer(const sb_reader *r)
{
    return r->b;
}

/* The lowest floor of the open readers; UINT64_MAX when there is none. */
static uint64_t lowest_floor_locked(const sb_buffer *b)
{
    uint64_t low = UINT64_MAX;
    for (const sb_reader *r = b->readers; r != NULL; r = r->next)
        if (r->floor < low)
            low = r->floor;
    return low;
}

/* After the readers changed: raise the buffer's floor to their lowest. */
static void raise_floor_locked(sb_buffer *b)
{
    if (!(b->flags & SB_RELEASE) || b->readers == NULL)
        return; /* without readers the floor stays where it was */
    uint64_t low = lowest_floor_locked(b);
    if (low > sb__wait_floor(&b->wait))
        sb__wait_raise_floor(&b->wait, low);
}

/* The page below both the floor and the watermark: what may go back. */
static uint64_t give_back_target(sb_buffer *b)
{
    uint64_t floor = sb__wait_floor(&b->wait);
    uint64_t filled = sb__wait_filled(&b->wait);
    uint64_t to = floor < filled ? floor : filled;
    return to - to % sb__spool_page();
}

/*
 * Each give-back is a syscall (two where memory and file meet), so it waits
 * until a chunk's worth is due: then released space lags the floor by less
 * than a chunk, and a follower that releases every few KiB does not pay a
 * madvise for each.  The writer gives back before every step, so the spill
 * stays within max_retained plus two chunks.
 */
static bool give_back_due(sb_buffer *b, uint64_t to)
{
    uint64_t from = atomic_load(&b->released);
    return to > from && to - from >= b->chunk_size;
}

int sb__give_back(sb_buffer *b, bool writer)
{
    if (!(b->flags & SB_RELEASE))
        return 0;
    for (;;) {
        if (!give_back_due(b, give_back_target(b)))
            return 0;
        /* A reader leaves the work to a thread that is at it already,
           which looks again after letting go.  The writer waits for it:
           it is about to store more, and what the floor has passed must
           be back first, or a holder that the scheduler put aside would
           let the spill grow past max_retained. */
        if (writer)
            sb__mutex_lock(&b->release_mu);
        else if (pthread_mutex_trylock(&b->release_mu) != 0)
            return 0;
        uint64_t from = atomic_load(&b->released);
        uint64_t to = give_back_target(b);
        int rc = 0;
        if (to > from) {
            rc = sb__spool_release(&b->spool, from, to);
            sb__spool_unmap_below(&b->spool, to);
            /* Bytes below the floor are released whether or not their
               space came back: a failure is not tried again. */
            atomic_store(&b->released, to);
        }
        sb__mutex_unlock(&b->release_mu);
        if (rc < 0) {
            sb__wait_finish(&b->wait, -rc);
            return rc;
        }
    }
}

SB_API sb_reader *sb_reader_open_flags(sb_buffer *b, uint64_t floor,
                                       unsigned flags)
{
    if (b == NULL || (flags & ~SB_NONBLOCK) != 0) {
        errno = EINVAL;
        return NULL;
    }
    sb_reader *r = sb__malloc(sizeof *r);
    if (r == NULL)
        return NULL;
    r->b = b;
    r->floor = floor;
    r->prev = NULL;
    r->flags = flags;
    r->arm = (struct sb__armed){.slot = SB__UNARMED, .owner = r};
    atomic_init(&r->arm.armed, false);
    atomic_init(&r->tag, NULL);
    if ((flags & SB_NONBLOCK) && sb__wait_armable(&b->wait, 1) < 0) {
        free(r);
        errno = ENOMEM;
        return NULL;
    }

    sb__mutex_lock(&b->readers_mu);
    /* The floor cannot rise while readers_mu is held: this check holds. */
    if (floor < sb__wait_floor(&b->wait)) {
        sb__mutex_unlock(&b->readers_mu);
        if (flags & SB_NONBLOCK)
            sb__wait_armable(&b->wait, -1);
        free(r);
        errno = ESPIPE;
        return NULL;
    }
    r->next = b->readers;
    if (b->readers != NULL)
        b->readers->prev = r;
    b->readers = r;
    b->nreaders++;
    raise_floor_locked(b);
    sb__mutex_unlock(&b->readers_mu);

    sb__wait_demand(&b->wait, floor);
    sb__give_back(b, false);
    return r;
}

SB_API sb_reader *sb_reader_open(sb_buffer *b, uint64_t floor)
{
    return sb_reader_open_flags(b, floor, 0);
}

SB_API int sb_reader_armed(const sb_reader *r)
{
    return r != NULL && (r->flags & SB_NONBLOCK)
           && atomic_load_explicit(&r->arm.armed, memory_order_relaxed);
}

SB_API void sb_reader_set_tag(sb_reader *r, void *tag)
{
    if (r != NULL)
        atomic_store_explicit(&r->tag, tag, memory_order_release);
}

SB_API void *sb_reader_tag(const sb_reader *r)
{
    return r == NULL ? NULL
                     : atomic_load_explicit(&((sb_reader *)r)->tag,
                                            memory_order_acquire);
}

SB_API int sb_reader_release(sb_reader *r, uint64_t floor)
{
    if (r == NULL || floor < r->floor) {
        errno = EINVAL;
        return -1;
    }
    if (floor == r->floor)
        return 0;
    sb_buffer *b = r->b;
    sb__mutex_lock(&b->readers_mu);
    /* Only the lowest reader can move the buffer's floor. */
    bool lowest = r->floor <= sb__wait_floor(&b->wait);
    r->floor = floor;
    if (lowest)
        raise_floor_locked(b);
    sb__mutex_unlock(&b->readers_mu);

    sb__wait_demand(&b->wait, floor);
    int rc = sb__give_back(b, false);
    if (rc < 0) {
        errno = -rc;
        return -1;
    }
    return 0;
}

SB_API void sb_reader_close(sb_reader *r)
{
    if (r == NULL)
        return;
    sb_buffer *b = r->b;
    if (r->flags & SB_NONBLOCK) {
        /* Off the heap and the ready list before it is freed: the list
           never yields a closed reader. */
        sb__wait_disarm(&b->wait, &r->arm);
        sb__wait_armable(&b->wait, -1);
    }
    sb__mutex_lock(&b->readers_mu);
    if (r->prev != NULL)
        r->prev->next = r->next;
    else
        b->readers = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
    b->nreaders--;
    raise_floor_locked(b);
    sb__mutex_unlock(&b->readers_mu);
    free(r);
    sb__give_back(b, false);
}

SB_API uint64_t sb_floor(sb_buffer *b)
{
    if (b == NULL) {
        errno = EINVAL;
        return 0;
    }
    return sb__wait_floor(&b->wait);
}

SB_API uint64_t sb_reader_floor(const sb_reader *r)
{
    if (r == NULL) {
        errno = EINVAL;
        return 0;
    }
    return r->floor;
}

SB_API ssize_t sb_reader_pread(sb_reader *r, void *buf, size_t n, uint64_t off)
{
    if (r == NULL) {
        errno = EINVAL;
        return -1;
    }
    return sb__read(r->b, r, buf, n, off, n, -1);
}

SB_API ssize_t sb_reader_pread_timed(sb_reader *r, void *buf, size_t n,
                                     uint64_t off, int timeout_ms)
{
    /* A non-blocking reader has no time to wait for. */
    if (r == NULL || timeout_ms < -1 || (r->flags & SB_NONBLOCK)) {
        errno = EINVAL;
        return -1;
    }
    return sb__read(r->b, r, buf, n, off, n, timeout_ms);
}
