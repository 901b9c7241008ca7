/*
 * SPDX-License-Identifier: MIT
 *
 * sb.c - the buffer's lifecycle and options: open, stats, cancel, close.
 *
 * Lifecycle of one buffer:
 *
 *   state      entered by                     filled          readers
 *   ---------  -----------------------------  --------------  ---------------------------
 *   RUNNING    sb_open, sb_open_fd,           grows, chunk    wait until off+n <= filled
 *              sb_open_writer                 by chunk
 *   ENDED      source returned end,           final = length  short count / 0 past it
 *              sb_finish(b, 0)
 *              (sb_open_mem: at once)
 *   FAILED     source error, spill error,     final           bytes below filled; then
 *              max_size (EFBIG), sb_cancel                    -1 with the stream's errno
 *              (ECANCELED), sb_finish(b, E)
 *   (freed)    sb_close: cancel, join the     -               none may remain
 *              producer, source close, free
 *
 * RUNNING is left exactly once (sb__wait_finish), and every waiter is woken
 * then.  The producer notices at its next step and returns; sb_close joins
 * it before freeing anything it might touch.
 */
#include "internal.h"
#include "fault.h"
#include "lock.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Options after defaults, checked. */
struct config {
    size_t mem_limit;
    size_t chunk_size;
    uint64_t max_size;
    uint64_t length_hint;
    const char *tmp_dir;
    uint64_t read_ahead;
    uint64_t max_retained;
    uint32_t flags;
    uint64_t seek_gap;
    uint32_t max_parts;
    uint32_t retries;
};

/* Whether n bytes at p are all zero: reserved fields must be. */
static bool all_zero(const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i] != 0)
            return false;
    return true;
}

/* ranged: the source has open_at, the one kind SB_LENGTH_KNOWN is for. */
static int resolve_options(const sb_options *o, struct config *c, bool ranged)
{
    static const sb_options defaults;
    if (o == NULL)
        o = &defaults;
    if (!all_zero(o->reserved, sizeof o->reserved) || o->reserved32 != 0)
        return -EINVAL;
    if ((o->flags & ~(SB_RELEASE | SB_MMAP_READS | SB_NO_HUGEPAGES | SB_LENGTH_KNOWN)) != 0)
        return -EINVAL;
    if ((o->flags & SB_LENGTH_KNOWN) && (!ranged || o->length_hint == 0))
        return -EINVAL;
    if (o->max_retained != 0 && !(o->flags & SB_RELEASE))
        return -EINVAL; /* nothing would ever lower what is retained */
    if (o->mem_limit > SSIZE_MAX || o->chunk_size > SSIZE_MAX)
        return -EINVAL;
    if (o->tmp_dir != NULL && o->tmp_dir[0] == '\0')
        return -EINVAL;
    if (o->max_size != 0 && o->length_hint > o->max_size)
        return -EINVAL;
    if (o->max_parts > SB__MAX_PARTS)
        return -EINVAL;

    c->mem_limit = o->mem_limit ? o->mem_limit : SB__DEFAULT_MEM_LIMIT;
    c->chunk_size = o->chunk_size ? o->chunk_size : SB__DEFAULT_CHUNK_SIZE;
    c->max_size = o->max_size ? o->max_size : UINT64_MAX;
    c->length_hint = o->length_hint;
    c->read_ahead = o->read_ahead;
    c->max_retained = o->max_retained;
    c->flags = o->flags;
    c->seek_gap = o->seek_gap;
    c->max_parts = o->max_parts ? o->max_parts : SB__DEFAULT_PARTS;
    c->retries = o->retries ? o->retries : SB__DEFAULT_RETRIES;
    c->tmp_dir = o->tmp_dir;
    if (c->tmp_dir == NULL) {
        /* secure_getenv: a setuid program must not spill where its
           caller's environment says. */
        c->tmp_dir = secure_getenv("TMPDIR");
        if (c->tmp_dir == NULL || c->tmp_dir[0] == '\0')
            c->tmp_dir = "/tmp";
    }
    return 0;
}

/* A buffer with its wait state set up and an empty spool, which
   free_buffer can free.  Returns NULL with errno set. */
static sb_buffer *alloc_buffer(const struct config *c)
{
    sb_buffer *b = sb__calloc(1, sizeof *b);
    if (b == NULL)
        return NULL;
    int rc = sb__wait_init(&b->wait, c->read_ahead, c->max_retained,
                           2 * (uint64_t)c->chunk_size);
    if (rc < 0)
        goto no_wait;
    rc = -pthread_mutex_init(&b->readers_mu, NULL);
    if (rc < 0)
        goto no_readers;
    rc = -pthread_mutex_init(&b->release_mu, NULL);
    if (rc < 0)
        goto no_release;
    atomic_init(&b->released, 0);
    atomic_init(&b->fail_err, 0);
    sb__spool_init_borrowed(&b->spool, NULL, 0);
    b->max_size = c->max_size;
    b->length_hint = c->length_hint;
    b->chunk_size = c->chunk_size;
    b->flags = c->flags;
    return b;

no_release:
    sb__check(pthread_mutex_destroy(&b->readers_mu));
no_readers:
    sb__wait_destroy(&b->wait);
no_wait:
    free(b);
    errno = -rc;
    return NULL;
}

static void free_buffer(sb_buffer *b)
{
    sb__parts_destroy(b);
    if (b->is_writer)
        sb__check(pthread_mutex_destroy(&b->write_mu));
    sb__spool_destroy(&b->spool);
    sb__check(pthread_mutex_destroy(&b->release_mu));
    sb__check(pthread_mutex_destroy(&b->readers_mu));
    sb__wait_destroy(&b->wait);
    free(b->scratch);
    free(b);
}

/* A buffer with a spool that can take bytes.  Returns NULL with errno. */
static sb_buffer *alloc_spooled(const struct config *c)
{
    sb_buffer *b = alloc_buffer(c);
    if (b == NULL)
        return NULL;
    int rc = sb__spool_init(&b->spool, c->mem_limit, c->tmp_dir,
                            (c->flags & SB_NO_HUGEPAGES) != 0);
    if (rc < 0) {
        free_buffer(b);
        errno = -rc;
        return NULL;
    }
    return b;
}

/* The wait's view of the runs held past filled (wait.h).  A range that
   reaches the end is answerable once what lies before the end is held:
   a length learnt while a read waits past it ends that wait. */
static uint64_t held_run(void *arg, uint64_t off)
{
    sb_buffer *b = arg;
    uint64_t run = sb__parts_run(b, off);
    uint64_t len = sb__parts_length(b->parts);
    if (len != SB__UNKNOWN && (off >= len || run >= len))
        return UINT64_MAX;
    return run;
}

/* Open over a checked source.  On failure returns NULL with errno set and
   leaves src untouched (its close is not called). */
static sb_buffer *open_source(const sb_source *src, const struct config *c)
{
    sb_buffer *b = alloc_spooled(c);
    if (b == NULL)
        return NULL;
    b->src = *src;
    int rc;
    if (src->open_at != NULL) {
        /* Fetchers instead of the producer (fetch.c, parts.c). */
        rc = sb__parts_init(b, c->max_parts, c->retries, c->seek_gap,
                            (c->flags & SB_LENGTH_KNOWN) ? c->length_hint : SB__UNKNOWN,
                            sb__fetcher_main);
        if (rc == 0) {
            b->wait.held_run = held_run;
            b->wait.held_arg = b;
            rc = sb__parts_start(b);
        }
    } else {
        rc = sb__producer_start(b);
    }
    if (rc < 0) {
        free_buffer(b);
        errno = -rc;
        return NULL;
    }
    return b;
}

SB_API sb_buffer *sb_open(const sb_source *src, const sb_options *opts)
{
    struct config c;
    if (src == NULL || (src->read != NULL && src->next != NULL)
        || (src->read == NULL && src->next == NULL && src->open_at == NULL)
        || !all_zero(src->reserved, sizeof src->reserved)) {
        errno = EINVAL;
        return NULL;
    }
    int rc = resolve_options(opts, &c, src->open_at != NULL);
    if (rc < 0) {
        errno = -rc;
        return NULL;
    }
    return open_source(src, &c);
}

SB_API sb_buffer *sb_open_fd(int fd, const sb_options *opts)
{
    struct config c;
    sb_source src;

    int rc = fd < 0 ? -EINVAL : resolve_options(opts, &c, false);
    if (rc == 0)
        rc = sb__fd_source(fd, &src);
    if (rc < 0) {
        errno = -rc;
        return NULL;
    }
    sb_buffer *b = open_source(&src, &c);
    if (b == NULL) {
        int err = errno;
        src.close(src.ctx);
        errno = err;
    }
    return b;
}

SB_API sb_buffer *sb_open_mem(const void *data, size_t len, const sb_options *opts)
{
    struct config c;
    int rc = data == NULL && len > 0 ? -EINVAL : resolve_options(opts, &c, false);
    if (rc < 0) {
        errno = -rc;
        return NULL;
    }
    sb_buffer *b = alloc_buffer(&c);
    if (b == NULL)
        return NULL;
    sb__spool_init_borrowed(&b->spool, data, len);
    /* The bytes are all there: publish them, with the same max_size rule
       a producer would apply, and end the stream.  No thread needed. */
    uint64_t n = len < b->max_size ? len : b->max_size;
    if (n > 0)
        sb__wait_publish(&b->wait, n);
    sb__wait_finish(&b->wait, n < len ? EFBIG : 0);
    return b;
}

SB_API sb_buffer *sb_open_writer(const sb_options *opts)
{
    struct config c;
    int rc = resolve_options(opts, &c, false);
    if (rc < 0) {
        errno = -rc;
        return NULL;
    }
    sb_buffer *b = alloc_spooled(&c);
    if (b == NULL)
        return NULL;
    rc = pthread_mutex_init(&b->write_mu, NULL);
    if (rc != 0) {
        free_buffer(b);
        errno = rc;
        return NULL;
    }
    b->is_writer = true;
    return b;
}

SB_API uint64_t sb_available(sb_buffer *b)
{
    if (b == NULL) {
        errno = EINVAL;
        return 0;
    }
    return sb__wait_filled(&b->wait);
}

SB_API int sb_wait_end_timed(sb_buffer *b, uint64_t *length, int timeout_ms)
{
    int err;
    if (b == NULL || timeout_ms < -1) {
        errno = EINVAL;
        return -1;
    }
    if (b->parts != NULL) {
        /* Everything is demanded: every fetcher drains (parts.c). */
        sb__wait_demand(&b->wait, UINT64_MAX);
        sb__parts_poke(b);
    }
    int rc = sb__wait_until(&b->wait, UINT64_MAX, UINT64_MAX, timeout_ms);
    if (rc < 0) {
        errno = -rc; /* ETIMEDOUT, or the wait could not be set up */
        return -1;
    }
    if (sb__wait_state(&b->wait, &err) != SB_ENDED) {
        errno = err;
        return -1;
    }
    if (length != NULL)
        *length = sb__wait_filled(&b->wait);
    return 0;
}

SB_API int sb_wait_end(sb_buffer *b, uint64_t *length)
{
    return sb_wait_end_timed(b, length, -1);
}

/* The huge pages of b's memory region, counted at most once per
   SB__HUGE_COUNT_NS (see internal.h). */
static uint64_t huge_pages(sb_buffer *b)
{
    struct timespec ts;
    uint64_t filled = sb__wait_filled(&b->wait);
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return sb__spool_huge_pages(&b->spool, filled);
    uint64_t now = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    uint64_t then = atomic_load(&b->huge_count_ns);
    if (then != 0 && now - then < SB__HUGE_COUNT_NS)
        return atomic_load(&b->huge_count);
    uint64_t n = sb__spool_huge_pages(&b->spool, filled);
    atomic_store(&b->huge_count, n);
    atomic_store(&b->huge_count_ns, now);
    return n;
}

SB_API int sb_get_stats(sb_buffer *b, sb_stats *out)
{
    if (b == NULL || out == NULL) {
        errno = EINVAL;
        return -1;
    }
    memset(out, 0, sizeof *out);
    /* readers_mu first, as everywhere: the reader counts belong to the
       same instant as the rest. */
    sb__mutex_lock(&b->readers_mu);
    sb__wait_stats(&b->wait, out);
    out->readers = b->nreaders;
    out->released = atomic_load(&b->released);
    sb__mutex_unlock(&b->readers_mu);
    uint64_t cap = b->spool.mem_cap;
    out->in_memory = out->filled < cap ? out->filled : cap;
    out->spilled = out->filled - out->in_memory;
    out->huge_pages = huge_pages(b);
    sb__parts_stats(b, out);
    return 0;
}

SB_API const char *sb_version(void)
{
    return SB_VERSION;
}

SB_API void sb_cancel(sb_buffer *b)
{
    if (b == NULL)
        return;
    /* Only the call that ends the stream wakes the source; later ones find
       the producer already on its way out. */
    if (sb__wait_finish(&b->wait, ECANCELED) && b->src.cancel != NULL)
        b->src.cancel(b->src.ctx);
    sb__parts_cancel(b);
}

SB_API void sb_close(sb_buffer *b)
{
    if (b == NULL)
        return;
    sb_cancel(b);
    if (b->has_producer)
        sb__check(pthread_join(b->producer, NULL));
    sb__parts_join(b);
    if (b->src.close != NULL)
        b->src.close(b->src.ctx);
    free_buffer(b);
}
