/*
 * SPDX-License-Identifier: MIT
 *
 * fetch.c - a seekable source's fetcher threads: open a part where the
 * policy (parts.c) says, read it into the spool at its own offset, compare
 * the bytes of a seam, publish, and close the part when it is done.
 *
 * Each step is decided under parts->mu (sb__parts_step_locked) and done
 * without it: open_at, the part's read or next, the copy or pwrite into
 * the spool, the compare.  Fetchers write disjoint ranges (their reaches
 * never overlap), so they store at once without taking turns: in place in
 * the memory region where the whole room lies there, else through a
 * bounce buffer of their own and pwrite.  The spill file is made once,
 * by the first thread that needs it (sb__parts_spill: a fetcher, or a
 * read about to wait for bytes past memory), without parts->mu.
 *
 * A part is closed by the thread that opened it, once; its cancel (at most
 * once) may come from any thread: a move, sb_cancel.
 */
#include "internal.h"
#include "fault.h"
#include "lock.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* A callback's negative return as an errno; nonsense becomes EIO. */
static int source_errno(long r)
{
    return r < 0 && r >= -4095 ? (int)-r : EIO;
}

/* A fetcher's bounce buffer: a chunk, in whole pages. */
static size_t bounce_size(size_t chunk)
{
    return (chunk + 4095) / 4096 * 4096;
}

/* What a fetcher keeps across its steps without the lock. */
struct cursor {
    struct sb__fetcher *f;
    sb_buffer *b;
    unsigned char *bounce;       /* chunk_size bytes, for read-style
                                    streams: at the thread's start (see
                                    sb__fetcher_main), else on first use */
    unsigned char *held;         /* SB__SEAM bytes, for compares */
    const unsigned char *pend;   /* an iterator's chunk not yet used */
    size_t npend;
    uint64_t opened_ns;          /* when open_at was called */
    bool got_bytes;              /* the part gave a byte */
    bool own;                    /* it reads the source's own stream */
    bool own_ended;              /* ... which returned 0 or an error */
    bool spill_seen;             /* the spill file exists (it stays) */
};

/* The stream the fetcher reads now: the source's own, or its part. */
static const sb_source *stream_of(struct cursor *c)
{
    return c->f->first ? &c->b->src : &c->f->part;
}

/*
 * Pull up to cap bytes into room (read) or point at them (next).
 * Returns the count (> 0), 0 at the end, or -errno.  *data is where they
 * are: room for read, the iterator's chunk for next.
 */
static ssize_t pull(struct cursor *c, void *room, size_t cap,
                    const unsigned char **data)
{
    const sb_source *s = stream_of(c);
    if (s->read != NULL) {
        ssize_t r = s->read(s->ctx, room, cap);
        if (r < 0)
            return -source_errno(r);
        if ((size_t)r > cap)
            return -EIO;
        *data = room;
        return r;
    }
    while (c->npend == 0) {
        const void *chunk = NULL;
        size_t len = 0;
        int r = s->next(s->ctx, &chunk, &len);
        if (r < 0)
            return -source_errno(r);
        if (r == 0)
            return 0;
        if (len > 0 && chunk == NULL)
            return -EIO;
        c->pend = chunk;
        c->npend = len;
    }
    size_t k = c->npend < cap ? c->npend : cap;
    *data = c->pend;
    c->pend += k;
    c->npend -= k;
    return (ssize_t)k;
}

/* Store n bytes at off (data is in the spool already when in_place). */
static int store(struct cursor *c, uint64_t off, const unsigned char *data,
                 size_t n, bool in_place)
{
    sb_buffer *b = c->b;
    if (in_place || n == 0)
        return 0;
    if (off + n > b->spool.mem_cap && !c->spill_seen) {
        int rc = sb__parts_spill(b);
        if (rc < 0)
            return rc;
        c->spill_seen = true;
    }
    return sb__spool_write_at(&b->spool, off, data, n);
}

/*
 * Compare n bytes at off, which are held, with data.  Under SB_RELEASE
 * the floor may pass them after the policy chose the seam (a reader
 * released behind itself): bytes below the floor read back as whatever
 * giving them back left, and nobody can read them any more, so only
 * those at or above the floor once they have been read count.  (The
 * floor is raised before the bytes are given back.)
 */
static int compare(struct cursor *c, uint64_t off, const unsigned char *data,
                   size_t n, bool *equal)
{
    sb_buffer *b = c->b;
    if (c->held == NULL && (c->held = malloc(SB__SEAM)) == NULL)
        return -ENOMEM;
    *equal = true;
    while (n > 0) {
        size_t k = n < SB__SEAM ? n : (size_t)SB__SEAM;
        int rc = sb__spool_read(&b->spool, c->held, k, off);
        if (rc < 0)
            return rc;
        uint64_t floor = (b->flags & SB_RELEASE) ? sb__wait_floor(&b->wait) : 0;
        size_t skip = floor <= off ? 0 : floor - off < k ? (size_t)(floor - off) : k;
        if (memcmp(c->held + skip, data + skip, k - skip) != 0)
            *equal = false;
        data += k;
        off += k;
        n -= k;
    }
    return 0;
}

/* Close the stream the fetcher read, under the lock (its close runs
   without it). */
static void close_part_locked(struct cursor *c)
{
    struct sb__fetcher *f = c->f;
    struct sb__parts *p = f->parts;
    /* An iterator's chunk past where the fetcher stopped was delivered
       and not stored. */
    p->fetched += c->npend;
    p->refetched += c->npend;
    c->npend = 0;
    c->pend = NULL;
    if (c->own) {
        /* The source's own stream is never read again once its fetcher
           leaves it (sb__parts_left_locked): tell the source, unless the
           stream ended by itself. */
        bool tell = !c->own_ended && p->src->done != NULL;
        c->own = false;
        if (tell) {
            sb__parts_unlock(p);
            p->src->done(p->src->ctx);
            sb__mutex_lock(&p->mu);
        }
    }
    if (!f->has_part)
        return;
    sb_source part = f->part;
    /* Cancelled first when it was stopped early, so the source knows the
       rest is not wanted; a part that ended needs no cancel. */
    if (!f->part_cancelled && part.cancel != NULL && f->stop) {
        f->part_cancelled = true;
        part.cancel(part.ctx);
    }
    f->has_part = false;
    sb__parts_unlock(p);
    if (part.close != NULL)
        part.close(part.ctx);
    sb__mutex_lock(&p->mu);
}

/* Open the part the fetcher was assigned.  false: it did not open. */
static bool open_part_locked(struct cursor *c)
{
    struct sb__fetcher *f = c->f;
    struct sb__parts *p = f->parts;
    f->last_ns = 0; /* its rate counts from this stream's first read */
    if (f->first) {
        f->st = SB__F_RUNNING; /* the source's own stream: open already */
        f->req_end = UINT64_MAX;
        c->opened_ns = now_ns();
        c->got_bytes = true; /* no open to measure */
        c->own = true;
        c->own_ended = false;
        sb__parts_first_running_locked(f);
        return true;
    }
    if (!sb__parts_retry_pause_locked(f))
        return false;
    if (f->st != SB__F_ASSIGNED)
        return false;
    /* The part is read up to its limit, and a seam's worth past it when
       bytes are held there, to compare them. */
    uint64_t off = f->open_off, len = SB__UNKNOWN;
    uint64_t end = sb__parts_open_end_locked(f);
    f->req_end = end;
    sb_source part;
    memset(&part, 0, sizeof part);
    sb__parts_unlock(p);
    c->opened_ns = now_ns();
    c->got_bytes = false;
    int rc = p->src->open_at(p->src->ctx, off, end, &part, &len);
    if (rc > 0)
        rc = -EIO;
    if (rc == 0 && (part.read == NULL) == (part.next == NULL)) {
        if (part.close != NULL)
            part.close(part.ctx);
        rc = -EIO; /* a part must have exactly one of them */
    }
    sb__mutex_lock(&p->mu);
    if (rc == 0)
        f->part = part;
    sb__parts_opened_locked(f, rc < -4095 ? -EIO : rc, len);
    if (rc == 0 && f->st != SB__F_RUNNING) {
        close_part_locked(c);
        return false;
    }
    return rc == 0;
}

/* Read the part until the policy stops it.  Under the lock. */
static void run_locked(struct cursor *c)
{
    struct sb__fetcher *f = c->f;
    struct sb__parts *p = f->parts;
    sb_buffer *b = c->b;
    size_t chunk = b->chunk_size;
    for (;;) {
        size_t cap = 0;
        enum sb__step step = sb__parts_step_locked(f, chunk, &cap);
        if (step == SB__STEP_STOP || step == SB__STEP_QUIT) {
            f->stop = true;
            return;
        }
        uint64_t at = f->at;
        sb__parts_unlock(p);
        if (step == SB__STEP_PROBE) {
            unsigned char one[1];
            const unsigned char *data;
            ssize_t r = c->npend > 0 ? 1 : pull(c, one, 1, &data);
            sb__mutex_lock(&p->mu);
            sb__parts_probed_locked(f, r);
            continue;
        }

        (void)sb__give_back(b, true);
        /* Room for a read: the spool itself, or the bounce buffer.  An
           iterator needs none: it lends its own chunk, stored from where
           it is. */
        void *room = NULL;
        bool in_place = false;
        if (stream_of(c)->read != NULL && step == SB__STEP_STORE
            && (room = sb__spool_reserve_at(&b->spool, at, cap)) != NULL) {
            in_place = true;
        } else if (stream_of(c)->read != NULL) {
            if (c->bounce == NULL
                && (c->bounce = sb__aligned_alloc(4096, bounce_size(chunk))) == NULL) {
                sb__mutex_lock(&p->mu);
                sb__wait_finish(&b->wait, ENOMEM);
                return;
            }
            room = c->bounce;
        }
        const unsigned char *data = NULL;
        uint64_t t0 = now_ns();
        ssize_t r = pull(c, room, cap, &data);
        uint64_t t1 = now_ns();
        int rc = 0;
        bool equal = true;
        if (r > 0 && step == SB__STEP_STORE)
            rc = store(c, at, data, (size_t)r, in_place && data == room);
        else if (r > 0)
            rc = compare(c, at, data, (size_t)r, &equal);

        sb__mutex_lock(&p->mu);
        if (r <= 0) {
            c->own_ended = c->own;
            sb__parts_ended_locked(f, (int)r);
            return;
        }
        if (rc < 0) {
            /* The spool (the disk) failed, not the source: the stream
               fails with it, as the producer's would. */
            sb__wait_finish(&b->wait, -rc);
            return;
        }
        bool first = !c->got_bytes;
        c->got_bytes = true;
        if (step == SB__STEP_STORE)
            sb__parts_stored_locked(f, (size_t)r, t0, t1, first,
                                    t1 - c->opened_ns);
        else
            sb__parts_compared_locked(f, (size_t)r, equal);
    }
}

void *sb__fetcher_main(void *arg)
{
    struct cursor c = { .f = arg };
    struct sb__parts *p = c.f->parts;
    c.b = p->b;
    /* A fetcher made ahead of its job has the time to get its bounce
       buffer now, rather than when its part's first bytes are in (a new
       thread's first allocation makes its malloc arena).  One that
       cannot gets it on first use, which reports the failure.  Not for
       a source whose own stream is an iterator: its parts most likely
       are too, and an iterator needs none (a read-style part gets one
       on first use). */
    if (c.f->id > 0 && p->src->next == NULL)
        c.bounce = sb__aligned_alloc(4096, bounce_size(c.b->chunk_size));
    sb__mutex_lock(&p->mu);
    while (sb__parts_next_job_locked(c.f)) {
        if (!open_part_locked(&c))
            continue;
        run_locked(&c);
        close_part_locked(&c);
        sb__parts_left_locked(c.f);
    }
    close_part_locked(&c);
    c.f->st = SB__F_IDLE;
    sb__parts_unlock(p);
    free(c.bounce);
    free(c.held);
    return NULL;
}
