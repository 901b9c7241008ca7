/*
 * internal.h - the buffer object shared by sb.c, producer.c and source.c.
 * Internal: nothing here is part of the public API.
 */
#ifndef SB_INTERNAL_H
#define SB_INTERNAL_H

#include "streambuffer.h"
#include "spool.h"
#include "wait.h"

#include <pthread.h>
#include <stdbool.h>

#define SB_API __attribute__((visibility("default")))

#define SB__DEFAULT_MEM_LIMIT  ((size_t)5 << 20)
#define SB__DEFAULT_CHUNK_SIZE ((size_t)64 << 10)

struct sb_buffer {
    /* Shared with readers; see wait.h for its rules. */
    struct sb__wait wait;
    /* Written by the producer only, read by readers below the watermark. */
    struct sb__spool spool;

    /* Set at open, read-only afterwards. */
    sb_source src;
    uint64_t max_size;        /* UINT64_MAX when there is no cap */
    uint64_t length_hint;
    size_t chunk_size;
    /* Wakes a built-in source blocked inside its callback (sb_cancel). */
    void (*interrupt)(void *ctx);

    /* The producer's own. */
    unsigned char *scratch;   /* chunk_size bytes, for reads past mem_cap */
    pthread_t producer;
    bool has_producer;

    /*
     * Push mode (sb_open_writer): the caller is the producer.  write_mu
     * makes concurrent sb_write/sb_finish calls take turns, so each call's
     * bytes stay contiguous and sb__append keeps its single writer.  Only
     * writers take it, and it is held across the spool write: readers never
     * wait for it.  finished is set by sb_finish, under write_mu.
     */
    bool is_writer;
    bool finished;
    pthread_mutex_t write_mu;
};

/*
 * The writer's one step: store len bytes at the end of the stream, then
 * publish them.  Truncates at max_size and fails the stream with EFBIG past
 * it.  data may point into the spool's own memory window (zero-copy).  The
 * caller must be the stream's only writer.  Returns 0, or -errno when the
 * stream has failed or been cancelled (the stream's state says which).
 */
int sb__append(sb_buffer *b, const void *data, size_t len);

/*
 * sb_pread's engine: wait until `least` (1..n) bytes from off have arrived
 * or the stream is over, then copy as much of [off, off + n) as exists.
 * least == n is sb_pread; least == 1 is read(2)-like (sb_fopen).
 */
ssize_t sb__read(sb_buffer *b, void *buf, size_t n, uint64_t off, size_t least,
                 int timeout_ms);

/* Start the producer thread with every signal blocked.  Returns 0 or -errno. */
int sb__producer_start(sb_buffer *b);

/* The built-in file descriptor source (source.c).  Returns 0 or -errno;
   on success *src owns a context that src->close frees. */
int sb__fd_source(int fd, sb_source *src, void (**interrupt)(void *ctx));

#endif /* SB_INTERNAL_H */
