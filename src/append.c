/*
 * SPDX-License-Identifier: MIT
 *
 * append.c - the one write step, shared by the producer thread and push
 * mode: store bytes at the end of the stream, then publish them.
 *
 * Storing never takes back what reached the spool: when the spill file
 * cannot be created or written, the bytes that did land (at least the
 * part that fits in memory) are published before the stream fails, so a
 * chunk that straddles mem_limit loses nothing that memory could hold,
 * whichever kind of source or writer delivered it.
 */
#include "internal.h"
#include "fault.h"

#include <errno.h>

/* Fail the stream with err (unless it is over already) and return the
   stream's error, negated. */
static int fail(sb_buffer *b, int err)
{
    sb__wait_finish(&b->wait, err);
    sb__wait_state(&b->wait, &err);
    return -err;
}

/*
 * Publish len bytes at off that the caller has stored (in_place) or that
 * are to be copied from data.  The stream's bytes end at max_size.
 */
static int store(sb_buffer *b, uint64_t off, const void *data, size_t len,
                 bool in_place)
{
    int over = 0;
    if (len > b->max_size - off) {
        len = (size_t)(b->max_size - off);
        over = EFBIG;
    }
    size_t stored = len;
    int rc = 0;
    if (!in_place && len > 0)
        rc = sb__spool_write(&b->spool, off, data, len, &stored);
    if (stored > 0 && !sb__wait_publish(&b->wait, off + stored))
        return fail(b, ECANCELED); /* over already: keeps its error */
    if (rc < 0)
        return fail(b, -rc);
    if (over)
        return fail(b, over);
    return 0;
}

int sb__append(sb_buffer *b, const void *data, size_t len)
{
    return store(b, sb__wait_filled(&b->wait), data, len, false);
}

/*
 * The bounce buffer, chunk_size bytes rounded up to whole pages and
 * page-aligned: the kernel's copy from it into the page cache is
 * measurably faster (about a tenth of the spilling fill) than from a
 * malloc'd, misaligned one.
 */
static unsigned char *scratch_alloc(size_t cap)
{
    size_t pg = sb__spool_page();
    return sb__aligned_alloc(pg, (cap + pg - 1) / pg * pg);
}

int sb__reserve(sb_buffer *b, void **room, size_t *cap)
{
    uint64_t off = sb__wait_filled(&b->wait);
    size_t n = b->chunk_size;
    /* Never consume more of the source than the stream can keep: what is
       left below max_size, and one byte more to tell that it is too long. */
    if (b->max_size - off < n)
        n = (size_t)(b->max_size - off) + 1;

    void *p = sb__spool_reserve(&b->spool, off, n);
    if (p == NULL) {
        /* Not the room left in memory: a message-oriented source (a
           datagram socket, a packet pipe) would lose the rest of a message
           that did not fit, and the stream's contents would depend on
           mem_limit.  The bounce buffer takes the whole chunk instead. */
        if (b->scratch == NULL
            && (b->scratch = scratch_alloc(b->chunk_size)) == NULL)
            return fail(b, ENOMEM);
        p = b->scratch;
    }
    *room = p;
    *cap = n;
    return 0;
}

int sb__commit(sb_buffer *b, const void *room, size_t len)
{
    return store(b, sb__wait_filled(&b->wait), room, len, room != b->scratch);
}
