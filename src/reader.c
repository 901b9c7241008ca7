/*
 * SPDX-License-Identifier: MIT
 *
 * reader.c - the sb_reader calls: open, release, close, the floor, tags,
 * and reads through a reader.
 *
 * A reader is a cursor that promises not to read below its floor.  This
 * file keeps the list of readers (under readers_mu) and calls down: the
 * read path in read.c, the buffer's floor and the give-back in release.c.
 */
#include "internal.h"
#include "fault.h"
#include "lock.h"

#include <errno.h>
#include <stdlib.h>

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
    r->want = (struct sb__want){.linked = false};
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
    sb__raise_floor_locked(b);
    sb__mutex_unlock(&b->readers_mu);

    sb__wait_demand(&b->wait, floor);
    sb__parts_poke(b);
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
    uint64_t below = sb__wait_floor(&b->wait);
    bool lowest = r->floor <= below;
    r->floor = floor;
    if (lowest)
        sb__raise_floor_locked(b);
    uint64_t above = sb__wait_floor(&b->wait);
    sb__mutex_unlock(&b->readers_mu);

    sb__wait_demand(&b->wait, floor);
    sb__parts_poke(b);
    int rc = sb__give_back_released(b, below, above);
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
        if (b->parts != NULL)
            sb__parts_unwant(b, &r->want);
    }
    sb__mutex_lock(&b->readers_mu);
    if (r->prev != NULL)
        r->prev->next = r->next;
    else
        b->readers = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
    b->nreaders--;
    sb__raise_floor_locked(b);
    sb__mutex_unlock(&b->readers_mu);
    free(r);
    sb__parts_poke(b);
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
