/* SPDX-License-Identifier: MIT */
/*
 * seed.c - the seed's design, for contrast (case 9).
 *
 * Modelled on the Python package `buffer` (StreamBuffer over a
 * tempfile.SpooledTemporaryFile):
 *
 *   - one global mutex, held for the whole read: across pulling from the
 *     source, writing into the spool, and copying out;
 *   - no producer thread: the reading thread pulls chunks itself, on demand,
 *     until its range is there;
 *   - the spool is a growing memory buffer (BytesIO) that rolls over, all of
 *     it, into a temporary file once it passes mem_limit; from then on every
 *     byte is written to and read from the file.
 *
 * Unlike the seed, reads beyond the current position return the right
 * bytes: the contrast is about the design's cost, not its bug.
 */
#include "bench.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct seed {
    pthread_mutex_t mu;        /* held across pull, write and copy */
    sb_source src;
    size_t chunk_size;
    unsigned char *scratch;    /* one chunk from the source */
    uint64_t filled;
    bool ended;

    /* The SpooledTemporaryFile. */
    size_t max_mem;
    unsigned char *mem;        /* BytesIO until rollover */
    size_t mem_len, mem_cap;
    int fd;                    /* the whole stream after rollover */
};

struct seed *seed_open(const sb_source *src, size_t mem_limit,
                       size_t chunk_size)
{
    struct seed *s = calloc(1, sizeof *s);
    if (s == NULL)
        die("out of memory");
    pthread_mutex_init(&s->mu, NULL);
    s->src = *src;
    s->chunk_size = chunk_size;
    s->scratch = malloc(chunk_size);
    if (s->scratch == NULL)
        die("out of memory");
    s->max_mem = mem_limit;
    s->fd = -1;
    return s;
}

/* SpooledTemporaryFile.write, then its _check: roll over past max_size. */
static void spool_write(struct seed *s, const void *p, size_t n)
{
    if (s->fd >= 0) {
        pwrite_all(s->fd, p, n, s->filled);
        return;
    }
    if (s->mem_len + n > s->mem_cap) {
        size_t cap = s->mem_cap ? s->mem_cap * 2 : 64 * KiB;
        while (cap < s->mem_len + n)
            cap *= 2;
        unsigned char *m = realloc(s->mem, cap);
        if (m == NULL)
            die("out of memory");
        s->mem = m;
        s->mem_cap = cap;
    }
    memcpy(s->mem + s->mem_len, p, n);
    s->mem_len += n;
    if (s->mem_len > s->max_mem) {
        s->fd = tmp_file();
        pwrite_all(s->fd, s->mem, s->mem_len, 0);
        free(s->mem);
        s->mem = NULL;
        s->mem_len = s->mem_cap = 0;
    }
}

/* The reading thread pulls one chunk, under the lock. */
static void pull_locked(struct seed *s)
{
    ssize_t r = s->src.read(s->src.ctx, s->scratch, s->chunk_size);
    if (r < 0)
        die("seed: source failed");
    if (r == 0) {
        s->ended = true;
        return;
    }
    spool_write(s, s->scratch, (size_t)r);
    s->filled += (uint64_t)r;
}

ssize_t seed_pread(struct seed *s, void *buf, size_t n, uint64_t off)
{
    pthread_mutex_lock(&s->mu);
    while (!s->ended && s->filled < off + n)
        pull_locked(s);
    if (off >= s->filled)
        n = 0;
    else if (off + n > s->filled)
        n = (size_t)(s->filled - off);
    if (n > 0) {
        if (s->fd < 0)
            memcpy(buf, s->mem + off, n);
        else
            pread_all(s->fd, buf, n, off);
    }
    pthread_mutex_unlock(&s->mu);
    return (ssize_t)n;
}

void seed_close(struct seed *s)
{
    if (s == NULL)
        return;
    if (s->src.close != NULL)
        s->src.close(s->src.ctx);
    if (s->fd >= 0)
        close(s->fd);
    free(s->mem);
    free(s->scratch);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
