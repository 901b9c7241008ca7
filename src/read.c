/*
 * SPDX-License-Identifier: MIT
 *
 * read.c - the read path: sb_pread and the wait half that every read
 * shares (sb__read for reader.c and stdio.c, sb__await for the views and
 * sendfile in zerocopy.c).
 *
 * It sits below the files with public calls and above only the wait and
 * the spool: it knows a reader by its floor and its arming (internal.h),
 * never calls back into reader.c or sb.c.
 */
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

/*
 * The read path, in two halves that the views and sendfile share: wait
 * (sb__await), then copy.  When the bytes are already filled it is an
 * acquire load, a compare and a copy: no lock, no shared write.  Otherwise
 * it waits until `least` bytes from off are there or the stream is over,
 * then copies as much of [off, off + n) as exists.
 *
 * With SB_RELEASE a plain read holds no floor, so the bytes it copies may
 * be given back while it copies them (the pages then read as zeros).  It
 * checks the floor again after the copy: the floor is raised before any
 * byte below it is given back, so if it still lies at or below off once
 * the copy is done, no byte copied was touched.  A read through a reader
 * needs no such check: nothing at or above its own floor is released.
 */
/*
 * sb__await for a stream that fetchers fill in runs (parts.h): the bytes
 * of [off, off + n) are there when the held run from off reaches them,
 * whichever run that is; a wait registers its range with the policy, so
 * that a part opens for it if no fetcher will come near soon.  A known
 * length answers what lies past it at once.
 */
static ssize_t await_parts(sb_buffer *b, const sb_reader *r, size_t n,
                           uint64_t off, size_t least, int timeout_ms)
{
    struct sb__parts *p = b->parts;
    uint64_t len, run;
    int err;
again:
    /* The length may be learnt while the read waits: clip again each
       time round. */
    len = sb__parts_length(p);
    if (len != SB__UNKNOWN) {
        if (off >= len)
            return 0;
        if (n > len - off)
            n = (size_t)(len - off);
        if (least > n)
            least = n;
    }
    run = sb__parts_run(b, off);
    if (run >= off + n)
        return (ssize_t)n;
    if (run < off + least && sb__wait_state(&b->wait, &err) == SB_RUNNING) {
        uint64_t cap = b->wait.max_retained;
        if (r != NULL && cap != 0 && off + least - sb__reader_floor(r) > cap)
            return -ENOBUFS;
        struct sb__armed *a = r != NULL ? sb__reader_arm(r) : NULL;
        int rc;
        if (a != NULL) {
            rc = sb__wait_arm_range(&b->wait, a, off, off + least, off + n);
            if (rc == -EAGAIN)
                sb__parts_want(b, (struct sb__want *)&r->want, off, off + least);
        } else {
            struct sb__want want = { .linked = false, .blocked = true };
            sb__parts_want(b, &want, off, off + least);
            /* While its part opens: the file it will store into (not
               for a read that will not wait).  A failure is the
               fetcher's to meet and report. */
            if (off + least > b->spool.mem_cap && timeout_ms != 0)
                (void)sb__parts_spill(b);
            rc = sb__wait_range(&b->wait, off, off + least, off + n, timeout_ms);
            sb__parts_unwant(b, &want);
        }
        if (rc < 0)
            return rc;
    }
    /* Enough is held, or the state is final: what is held from off is the
       answer; nothing held is the stream's end (0) or its error. */
    int state = sb__wait_state(&b->wait, &err);
    run = sb__parts_run(b, off);
    if (run < off + least && state == SB_RUNNING && (r == NULL || sb__reader_arm(r) == NULL)) {
        /* The runs went stale just as the wait ended; the stream's
           failure follows at once. */
        goto again;
    }
    if (run <= off) {
        len = sb__parts_length(p);
        if (state == SB_ENDED || (len != SB__UNKNOWN && off >= len))
            return 0;
        return -(err != 0 ? err : EIO);
    }
    return (ssize_t)(run - off < n ? run - off : n);
}

ssize_t sb__await(sb_buffer *b, const sb_reader *r, size_t n, uint64_t off,
                  size_t least, int timeout_ms)
{
    if (b == NULL || n > SSIZE_MAX || off > UINT64_MAX - n)
        return -EINVAL;
    if (r != NULL ? off < sb__reader_floor(r)
                  : (b->flags & SB_RELEASE) && off < sb__wait_floor(&b->wait))
        return -ESPIPE;
    if (n == 0)
        return 0;
    if (b->parts != NULL)
        return await_parts(b, r, n, off, least, timeout_ms);

    uint64_t filled = sb__wait_filled(&b->wait);
    if (off + n <= filled)
        return (ssize_t)n;
    int err;
    if (off + least > filled && sb__wait_state(&b->wait, &err) == SB_RUNNING) {
        /* A reader's own floor holds the producer within max_retained of
           it: a wait past that could never end. */
        uint64_t cap = b->wait.max_retained;
        if (r != NULL && cap != 0 && off + least - sb__reader_floor(r) > cap)
            return -ENOBUFS;
        /* A non-blocking reader arms instead (EAGAIN), unless the range
           became answerable in the meantime. */
        struct sb__armed *a = r != NULL ? sb__reader_arm(r) : NULL;
        int rc = a != NULL
                     ? sb__wait_arm(&b->wait, a, off + least, off + n)
                     : sb__wait_until(&b->wait, off + least, off + n, timeout_ms);
        if (rc < 0)
            return rc;
    }
    /* Either enough is there, or the state is final (and so is filled,
       stored before the state). */
    sb__wait_state(&b->wait, &err);
    filled = sb__wait_filled(&b->wait);
    if (off >= filled)
        return -err; /* 0 at the end of an ended stream */
    return (ssize_t)(off + n > filled ? filled - off : n);
}

bool sb__mapped_reads(const sb_buffer *b, const sb_reader *r)
{
    /* A plain read under SB_RELEASE holds no floor: the window it would
       copy from may be unmapped under it once its bytes are released. */
    return (b->flags & SB_MMAP_READS) && (r != NULL || !(b->flags & SB_RELEASE));
}

ssize_t sb__read(sb_buffer *b, const sb_reader *r, void *buf, size_t n,
                 uint64_t off, size_t least, int timeout_ms)
{
    ssize_t got = buf == NULL ? -EINVAL
                              : sb__await(b, r, n, off, least, timeout_ms);
    if (got > 0) {
        size_t m = (size_t)got;
        int rc = sb__mapped_reads(b, r)
                     ? sb__spool_read_mapped(&b->spool, buf, m, off)
                     : sb__spool_read(&b->spool, buf, m, off);
        if (rc == 0 && r == NULL && (b->flags & SB_RELEASE)) {
            atomic_thread_fence(memory_order_acquire);
            if (off < atomic_load_explicit(&b->wait.floor, memory_order_relaxed))
                rc = -ESPIPE;
        }
        if (rc < 0)
            got = rc;
    }
    if (got < 0) {
        errno = (int)-got;
        return -1;
    }
    return got;
}

SB_API ssize_t sb_pread(sb_buffer *b, void *buf, size_t n, uint64_t off)
{
    /* The hot path, spelled out: bytes in memory that have arrived, on a
       buffer without release or mapped reads, are a bounds check, an
       acquire load and a memcpy.  Everything else takes the general path
       (which gives the same answer for these bytes, a few branches later:
       enough to cost a third of a 64-byte read). */
    if (b != NULL && buf != NULL && !(b->flags & (SB_RELEASE | SB_MMAP_READS))
        && n <= b->spool.mem_cap && off <= b->spool.mem_cap - n && n > 0
        && off + n <= sb__wait_filled(&b->wait)) {
        memcpy(buf, b->spool.mem + off, n);
        return (ssize_t)n;
    }
    return sb__read(b, NULL, buf, n, off, n, -1);
}

SB_API ssize_t sb_pread_timed(sb_buffer *b, void *buf, size_t n, uint64_t off,
                              int timeout_ms)
{
    if (timeout_ms < -1) {
        errno = EINVAL;
        return -1;
    }
    return sb__read(b, NULL, buf, n, off, n, timeout_ms);
}
