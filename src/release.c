/*
 * SPDX-License-Identifier: MIT
 *
 * release.c - the buffer's floor, and giving back what is below it.
 *
 * The buffer's floor is the lowest floor of the open readers (with
 * SB_RELEASE); it is recomputed under readers_mu whenever a reader opens,
 * releases or closes, and raised in wait.c while readers_mu is still held:
 * two threads that computed different minima must raise them in the order
 * they were computed, or a stale, higher minimum could pass a reader that
 * has just opened below it.  The list is short (a reader per consumer
 * thread), so a walk is cheaper than keeping it ordered.
 *
 * Giving back memory and disk (madvise, hole punching) is the one step that
 * knows both the floor and the spool.  It is done by whoever raised the
 * floor and by the writer before each step, whichever comes first, under
 * release_mu.  The writer waits for it, so that no step stores bytes
 * before what the floor has passed is back; so does sb_reader_release,
 * which promises the space back and reports its failure, and which the
 * writer may have beaten to it.  A reader that opens or closes only tries
 * it and leaves the work to the holder, which looks again after it lets go.
 *
 * Below the readers (reader.c), the producer (producer.c) and push mode
 * (writer.c), which call it; above only the wait and the spool.
 */
#include "internal.h"
#include "lock.h"

/* The lowest floor of the open readers; UINT64_MAX when there is none. */
static uint64_t lowest_floor_locked(const sb_buffer *b)
{
    uint64_t low = UINT64_MAX;
    for (const sb_reader *r = b->readers; r != NULL; r = r->next)
        if (r->floor < low)
            low = r->floor;
    return low;
}

void sb__raise_floor_locked(sb_buffer *b)
{
    sb__assert_held(&b->readers_mu);
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

int sb__give_back(sb_buffer *b, bool wait)
{
    if (!(b->flags & SB_RELEASE))
        return 0;
    for (;;) {
        if (!give_back_due(b, give_back_target(b)))
            return 0;
        /* One that does not wait leaves the work to a thread that is at it
           already, which looks again after letting go.  The writer waits:
           it is about to store more, and what the floor has passed must be
           back first, or a holder that the scheduler put aside would let
           the spill grow past max_retained. */
        if (wait)
            sb__mutex_lock(&b->release_mu);
        else if (pthread_mutex_trylock(&b->release_mu) != 0)
            return 0;
        uint64_t from = atomic_load(&b->released);
        uint64_t to = give_back_target(b);
        int rc = 0;
        if (to > from) {
            rc = sb__spool_release(&b->spool, from, to);
            sb__spool_unmap_below(&b->spool, to);
            if (rc < 0) {
                b->fail_from = from;
                b->fail_to = to;
                atomic_store(&b->fail_err, -rc);
            }
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

int sb__give_back_released(sb_buffer *b, uint64_t from, uint64_t to)
{
    int rc = sb__give_back(b, true);
    if (rc < 0 || from >= to || atomic_load(&b->fail_err) == 0)
        return rc;
    /* Another thread may have given back (and failed to give back) what
       this release passed: the last failure says. */
    sb__mutex_lock(&b->release_mu);
    if (b->fail_from < to && from < b->fail_to)
        rc = -atomic_load(&b->fail_err);
    sb__mutex_unlock(&b->release_mu);
    return rc;
}
