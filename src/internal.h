/*
 * SPDX-License-Identifier: MIT
 *
 * internal.h - the buffer and reader objects, and the calls between the
 * library's layers.  Each file calls only the ones below it (docs/design.md,
 * "The files"): the public calls (sb.c, reader.c, writer.c, zerocopy.c,
 * stdio.c, poll.c) over the read path (read.c) and the producer
 * (producer.c), over the floor and give-back (release.c) and the write step
 * (append.c), over the wait state and the spool.  The fd source (source.c)
 * sees only the public sb_source.  Internal: nothing here is part of the
 * public API.
 */
#ifndef SB_INTERNAL_H
#define SB_INTERNAL_H

#include "streambuffer.h"
#include "parts.h"
#include "spool.h"
#include "wait.h"

#include <pthread.h>
#include <stdbool.h>

#define SB_API __attribute__((visibility("default")))

#define SB__DEFAULT_MEM_LIMIT  ((size_t)5 << 20)
#define SB__DEFAULT_CHUNK_SIZE ((size_t)64 << 10)
#define SB__HUGE_COUNT_NS      ((uint64_t)10 * 1000 * 1000) /* 10 ms */

struct sb_buffer {
    /* Shared with readers; see wait.h for its rules. */
    struct sb__wait wait;
    /* Written by the stream's one writer, read by readers below the
       watermark; see spool.h. */
    struct sb__spool spool;

    /* Set at open, read-only afterwards. */
    sb_source src;
    uint64_t max_size;        /* UINT64_MAX when there is no cap */
    uint64_t length_hint;
    size_t chunk_size;
    uint32_t flags;           /* SB_RELEASE */

    /* The writer's own (append.c): the bounce buffer for a read-style
       source's chunks that do not fit in memory.  Allocated on first use. */
    unsigned char *scratch;

    /*
     * Readers (reader.c; their lowest floor: release.c).  readers_mu
     * protects the list, every reader's floor, and nreaders; it is taken
     * before wait.mu, never after, and it is held while the buffer's floor
     * is raised, so that floors are raised in the order they were
     * computed.  Never held across I/O.
     */
    pthread_mutex_t readers_mu;
    struct sb_reader *readers;
    uint64_t nreaders;

    /*
     * Giving back what is below the floor (release.c).  release_mu lets one
     * thread at a time do it; it protects the last failure, [fail_from,
     * fail_to) with fail_err, which sb_reader_release reports when it
     * covers the bytes that call released.  released: bytes [0, released)
     * have been given back (or their give-back failed).  fail_err is 0
     * until a give-back fails and is stored before released moves past
     * the failure, so a release need not take release_mu to learn there
     * was none.
     */
    pthread_mutex_t release_mu;
    _Atomic uint64_t released;
    _Atomic int fail_err;
    uint64_t fail_from, fail_to;

    /*
     * sb_get_stats's count of huge pages, and when it was taken
     * (CLOCK_MONOTONIC, ns; 0: never).  Counting reads /proc/self/smaps,
     * which costs a syscall per few mappings, so a count is reused for
     * SB__HUGE_COUNT_NS: a server that asks for stats on every request
     * must not pay a file read for each.  Racing callers may both count;
     * either result is right.
     */
    _Atomic uint64_t huge_count;
    _Atomic uint64_t huge_count_ns;

    /* A seekable source's fetchers (parts.c, fetch.c); NULL for any
       other stream, which has the producer thread instead. */
    struct sb__parts *parts;

    /* The producer thread, when there is one. */
    pthread_t producer;
    bool has_producer;

    /*
     * Push mode (sb_open_writer): the caller is the producer.  write_mu
     * makes concurrent sb_write/sb_finish calls take turns, so each call's
     * bytes stay contiguous and the append step keeps its single writer.
     * Only writers take it, and it is held across the spool write: readers
     * never wait for it.  finished is set by sb_finish, under write_mu.
     */
    bool is_writer;
    bool finished;
    pthread_mutex_t write_mu;
};

/*
 * The write step, shared by the producer thread and push mode (append.c).
 * The caller must be the stream's only writer.  Each returns 0, or -errno
 * once the stream has ended, failed or been cancelled (the stream's state
 * says which; a failure they cause themselves is set there first).
 *
 * sb__append copies len bytes to the end of the stream and publishes them.
 * It truncates at max_size and fails the stream with EFBIG past it, and when
 * storing fails it publishes what did reach the spool before failing the
 * stream with the error.
 *
 * sb__reserve and sb__commit are its zero-copy form for read-style sources,
 * like Varnish's ObjGetSpace and ObjExtend: reserve gives *cap bytes of room
 * at the end of the stream (in place in memory when a whole chunk fits
 * there, else in the bounce buffer), never fewer than chunk_size only
 * because memory is nearly full, and never more than max_size can still
 * take plus one byte; the source fills some of it, and commit stores (if
 * need be) and publishes the first len bytes, as sb__append does.
 */
int sb__append(sb_buffer *b, const void *data, size_t len);
int sb__reserve(sb_buffer *b, void **room, size_t *cap);
int sb__commit(sb_buffer *b, const void *room, size_t len);

/*
 * sb_pread's engine: wait until `least` (1..n) bytes from off have arrived
 * or the stream is over, then copy as much of [off, off + n) as exists.
 * least == n is sb_pread; least == 1 is read(2)-like (sb_fopen).  r is the
 * reader the read goes through, or NULL for a plain read.
 */
ssize_t sb__read(sb_buffer *b, const sb_reader *r, void *buf, size_t n,
                 uint64_t off, size_t least, int timeout_ms);

/*
 * The wait half of every read (sb__read, the views, sendfile): check the
 * arguments and the floor, wait until `least` bytes from off have arrived
 * or the stream is over, and return how many of [off, off + n) are there
 * (0 at the end of an ended stream), or -errno.
 */
ssize_t sb__await(sb_buffer *b, const sb_reader *r, size_t n, uint64_t off,
                  size_t least, int timeout_ms);

/* Whether a read by r (NULL: plain) copies spilled bytes from the mapping
   (SB_MMAP_READS), which a plain read under SB_RELEASE must not. */
bool sb__mapped_reads(const sb_buffer *b, const sb_reader *r);

/*
 * A reader (reader.c owns it: open, release, close).  Declared here so that
 * the read path below reader.c knows a reader's floor and arming without
 * calling up into it.
 */
struct sb_reader {
    sb_buffer *b;
    /* Written under readers_mu by the reader's own thread; read by that
       thread without the lock and by others under it. */
    uint64_t floor;
    struct sb_reader *prev, *next; /* b->readers, under readers_mu */
    unsigned flags;           /* SB_NONBLOCK; set at open */
    struct sb__armed arm;     /* a non-blocking reader's; see ready.h */
    struct sb__want want;     /* its armed range, for the parts' policy */
    _Atomic(void *) tag;      /* the caller's */
};

/* The floor of reader r (its lowest readable offset). */
static inline uint64_t sb__reader_floor(const sb_reader *r)
{
    return r->floor;
}

/* A non-blocking reader's arming; NULL for a blocking reader.  The arming
   is the wait's state, not the reader's: a read through a const reader
   still arms it. */
static inline struct sb__armed *sb__reader_arm(const sb_reader *r)
{
    return (r->flags & SB_NONBLOCK) ? (struct sb__armed *)&r->arm : NULL;
}

/* The buffer r reads. */
static inline sb_buffer *sb__reader_buffer(const sb_reader *r)
{
    return r->b;
}

/* After the readers changed (readers_mu held): raise the buffer's floor to
   their lowest, with SB_RELEASE (release.c). */
void sb__raise_floor_locked(sb_buffer *b);

/*
 * With SB_RELEASE, give back the memory and disk of the whole pages below
 * both the floor and the watermark.  The writer calls it before each step
 * (wait true: it waits for a give-back in progress), a reader that opens
 * or closes after it moved the floor (it never waits).  Returns 0, or
 * -errno when giving back failed (the stream then fails with it).
 */
int sb__give_back(sb_buffer *b, bool wait);

/*
 * The same after sb_reader_release moved the buffer's floor from from to
 * to: it waits for a give-back in progress, so that the space is back when
 * it returns, and returns -errno when giving back any of [from, to) failed,
 * whichever thread tried.
 */
int sb__give_back_released(sb_buffer *b, uint64_t from, uint64_t to);

/* Start the producer thread with every signal blocked.  Returns 0 or -errno. */
int sb__producer_start(sb_buffer *b);

/* The built-in file descriptor source (source.c).  Returns 0 or -errno;
   on success *src owns a context that src->close frees. */
int sb__fd_source(int fd, sb_source *src);

#endif /* SB_INTERNAL_H */
