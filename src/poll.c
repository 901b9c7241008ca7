/*
 * SPDX-License-Identifier: MIT
 *
 * poll.c - the event-loop calls: the buffer's poll descriptor and its
 * ready list (see "Event loops" in the header).
 *
 * The list and the eventfd are ready.c's, under the wait's lock, because a
 * reader becomes ready exactly when a publish or the end state passes its
 * range; this file is the public face of them.
 */
#include "internal.h"

#include <errno.h>

SB_API int sb_poll_fd(sb_buffer *b)
{
    if (b == NULL) {
        errno = EINVAL;
        return -1;
    }
    int fd = sb__wait_poll_fd(&b->wait);
    if (fd < 0) {
        errno = -fd;
        return -1;
    }
    return fd;
}

SB_API size_t sb_poll_ready(sb_buffer *b, sb_reader **out, size_t max)
{
    if (b == NULL || (out == NULL && max != 0)) {
        errno = EINVAL;
        return 0;
    }
    /* ready.c stores the readers as the owners of their armings. */
    return sb__wait_take_ready(&b->wait, (void **)out, max);
}
