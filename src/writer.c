/*
 * SPDX-License-Identifier: MIT
 *
 * writer.c - push mode: the caller is the producer.
 *
 * Many sources push rather than pull (libcurl's write callback, a decoder's
 * output callback, an event loop).  A writer buffer has no producer thread;
 * sb_write stores and publishes through the same sb__append step the
 * producer thread uses, so readers cannot tell the two apart.  The buffer
 * itself is opened and freed in sb.c.
 */
#include "internal.h"
#include "lock.h"

#include <errno.h>
#include <limits.h>

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

SB_API ssize_t sb_write(sb_buffer *b, const void *data, size_t len)
{
    int rc = check_writer(b);
    if (rc == 0 && ((data == NULL && len > 0) || len > SSIZE_MAX))
        rc = -EINVAL;
    if (rc < 0) {
        errno = -rc;
        return -1;
    }

    sb__mutex_lock(&b->write_mu);
    rc = -write_refusal(b);
    /* Publish chunk by chunk, so readers of the first bytes of a large
       write need not wait for the last. */
    const unsigned char *p = data;
    for (size_t left = len; rc == 0 && left > 0;) {
        size_t n = left < b->chunk_size ? left : b->chunk_size;
        /* Block where the producer would pause, like a full pipe. */
        rc = sb__give_back(b, true);
        if (rc == 0)
            rc = sb__wait_room(&b->wait);
        if (rc == 0)
            rc = -write_refusal(b);
        if (rc < 0)
            break;
        rc = sb__append(b, p, n);
        p += n;
        left -= n;
    }
    sb__mutex_unlock(&b->write_mu);
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

    sb__mutex_lock(&b->write_mu);
    rc = write_refusal(b);
    if (rc == 0) {
        if (sb__wait_finish(&b->wait, err))
            b->finished = true;
        else
            rc = write_refusal(b); /* sb_cancel got there first */
    }
    sb__mutex_unlock(&b->write_mu);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    return 0;
}
