/*
 * SPDX-License-Identifier: MIT
 *
 * streambuffer.h - many threads, one byte stream, random access.
 *
 * A streambuffer (an sb_buffer) drains a one-pass byte source (a pipe, a socket, an
 * HTTP body, an iterator of chunks) on a background producer thread into a
 * spool: the first mem_limit bytes in one memory region that never moves, the
 * rest in a temporary file that has no name (only its owner and root can
 * still reach it, through /proc).  Any number of
 * threads read it with positional reads, like pread(2), that block only until
 * the bytes they asked for have arrived, the stream has ended, or it has
 * failed.  Bytes that have arrived never change, so reading them takes no lock.
 *
 * Errors follow POSIX: a function returns -1 (or NULL) and sets errno.
 *
 * Example: share a pipe between worker threads.
 *
 *     sb_buffer *b = sb_open_fd(STDIN_FILENO, NULL);      // producer starts now
 *     if (b == NULL)
 *         err(1, "sb_open_fd");
 *     // ... any thread, any offset, any order:
 *     char hdr[512];
 *     ssize_t n = sb_pread(b, hdr, sizeof hdr, 0); // waits for 512 bytes
 *     if (n < 0)
 *         warn("read");                            // errno: the stream's error
 *     uint64_t len;
 *     if (sb_wait_end(b, &len) == 0)               // the whole stream is in
 *         printf("%llu bytes\n", (unsigned long long)len);
 *     // ... stop and join the readers, then:
 *     sb_close(b);
 *
 * Push mode: with sb_open_writer the caller is the producer (sb_write,
 * sb_finish), for sources that call back with their data (libcurl, a
 * decoder).  sb_fopen gives any reader its own FILE * over the stream.
 *
 * Link with -lstreambuffer -lpthread, or: pkg-config --cflags --libs
 * streambuffer.
 */
#ifndef STREAMBUFFER_H
#define STREAMBUFFER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>     /* FILE, for sb_fopen */
#include <sys/types.h> /* ssize_t */

#ifdef __cplusplus
extern "C" {
#endif

/* The version of this header.  sb_version() gives the library's. */
#define SB_VERSION_MAJOR 0
#define SB_VERSION_MINOR 5
#define SB_VERSION_PATCH 0
#define SB_VERSION "0.5.0"
#define SB_VERSION_NUMBER \
    (SB_VERSION_MAJOR * 10000 + SB_VERSION_MINOR * 100 + SB_VERSION_PATCH)

/* A shared stream buffer.  Opaque; create with sb_open*, free with sb_close. */
typedef struct sb_buffer sb_buffer;

/*
 * Where the bytes come from.  Set exactly one of read and next; zero the
 * rest (an initializer such as { .read = f, .ctx = c } does).
 *
 * read, next and close run on the producer thread only, one at a time,
 * never concurrently with each other; they must not call back into the
 * same buffer.  cancel is the exception: see there.
 */
typedef struct sb_source {
    /*
     * Pull-style: copy up to cap bytes into buf.  Return the number of bytes
     * copied (> 0), 0 at the end of the stream, or a negative errno value
     * (-EIO, ...) to fail the stream with that error.  Returning more than cap
     * fails the stream with EIO and discards that call's bytes.  May block;
     * see sb_cancel and sb_close.
     */
    ssize_t (*read)(void *ctx, void *buf, size_t cap);

    /*
     * Iterator-style: point *chunk and *len at the next chunk and return 1,
     * return 0 at the end of the stream, or a negative errno value to fail it.
     * The chunk must stay valid until the next call; the library copies it.
     * Empty chunks (*len == 0) are allowed and skipped.  A NULL *chunk with a
     * non-zero *len fails the stream with EIO.
     */
    int (*next)(void *ctx, const void **chunk, size_t *len);

    /*
     * Optional.  Called exactly once, from sb_close, after the producer thread
     * has stopped, to release ctx.  Not called when sb_open fails.
     */
    void (*close)(void *ctx);

    /*
     * Optional: wake a read or next callback that may be blocked, so that
     * sb_cancel and sb_close need not wait for the source.  Called at most
     * once, on the thread that calls sb_cancel (or sb_close), when that call
     * cancels a running stream; never after close.  It may run while read or
     * next is running on the producer thread, or between two calls, so it
     * must be safe against both (an eventfd or a pipe that the callback
     * polls, a flag and a condition variable).  Once it has been called,
     * the stream's bytes no longer matter: the callback in progress should
     * return, with any value, as soon as it can.  It must not block and
     * must not call into the buffer.  Without it, sb_close waits for the
     * callback in progress to return by itself.
     */
    void (*cancel)(void *ctx);

    void *ctx; /* passed to every callback */

    /*
     * Optional: start the same stream again at byte off (a seekable
     * source: an HTTP server that honours Range, an object store's ranged
     * GET, a file).  See "Ranged sources" below for what the buffer does
     * with it.  Fill *part (zeroed by the caller) with a read or next, an
     * optional cancel and close, and the part's own ctx; a part's open_at
     * and reserved fields are ignored.  end is where the buffer will stop
     * reading the part: 4 KiB past the first byte it holds or is fetching
     * past off (those 4 KiB are compared across the seam), or UINT64_MAX
     * for "to the end" (also for a part that reaches the known length:
     * one read past the length tells whether the object is longer); under
     * read_ahead (before sb_wait_end), no farther than read_ahead and the
     * seek gap past the read it opens for, where flow control would stop
     * it anyway (a later read past end opens the next part there); the
     * part may stop at end (return 0) or deliver more.  When the
     * stream's total length is known, store it in *length (left alone
     * otherwise).  Return 0, or a negative errno:
     *   -ESPIPE  the source cannot seek after all: the buffer never calls
     *            open_at again and the stream goes on as a plain one;
     *   -ESTALE  the bytes at off are no longer this stream's (the object
     *            changed): likewise never again;
     *   other    this attempt failed; the buffer may try again later.
     * Runs on one of the buffer's fetcher threads, possibly on several at
     * once, never after close.  A part's callbacks run on the thread that
     * opened it; its close is called exactly once, when the buffer is done
     * with the part, and its cancel at most once, before that close, to
     * stop a read that may be blocked (as sb_source.cancel does).
     */
    int (*open_at)(void *ctx, uint64_t off, uint64_t end,
                   struct sb_source *part, uint64_t *length);

    /*
     * Optional, with open_at and read or next: the buffer has stopped
     * reading the source's own stream before read or next returned 0 or
     * an error (its bytes met bytes that parts had fetched, the stream
     * ended through parts, failed or was cancelled): they are not called
     * again, so let go of what that stream holds (a connection, whose
     * bytes would otherwise pile up unread until close).  Called at most
     * once, on the fetcher thread that read the stream, possibly while
     * sb_cancel runs cancel on another thread; never after close.  A
     * part's done is ignored.
     */
    void (*done)(void *ctx);

    /* Must be zero: room for callbacks of later versions, so that this
       struct keeps its size (sb_open fails with EINVAL otherwise). */
    void *reserved[2];
} sb_source;

/*
 * Tuning.  A NULL pointer or an all-zero struct means the defaults.
 *
 * The struct has a fixed size and a zeroed tail, reserved[], from which
 * later versions take new options, so a program built against this header
 * keeps working with later libraries.  A non-zero reserved field fails
 * sb_open* with EINVAL: a program that sets an option an older library does
 * not know gets an error, not a silently ignored option.
 */
typedef struct sb_options {
    /* Bytes kept in memory: the stream's first mem_limit bytes.  Reserved as
       address space at open; pages are committed only as bytes arrive.
       0: 5 MiB. */
    size_t mem_limit;
    /* Hard cap on the stream's length.  A source that delivers more fails the
       stream with EFBIG after the first max_size bytes, which stay readable.
       0: no cap. */
    uint64_t max_size;
    /* Directory for the spill file, which is created only once the stream
       outgrows mem_limit (or, with parts, a read waits for bytes past
       it).  The string is copied.  NULL: $TMPDIR if set and not empty,
       else "/tmp". */
    const char *tmp_dir;
    /* Most bytes the producer asks the source for at once.  0: 64 KiB. */
    size_t chunk_size;
    /* Expected total length, if known.  Only a hint: the stream ends where
       the source ends.  0: unknown. */
    uint64_t length_hint;

    /* Flow control: each is off at 0 (see "Flow control" below). */

    /* Lazy pull: the producer (or sb_write) pauses while filled >=
       demand + read_ahead, where demand is the end of the furthest range
       a reader had to wait for.  0: drain the source eagerly. */
    uint64_t read_ahead;
    /* Backpressure, with SB_RELEASE only: the producer (or sb_write)
       pauses while filled - sb_floor() >= max_retained, so the slowest
       reader holds the stream back.  0: no bound. */
    uint64_t max_retained;
    /* SB_RELEASE, SB_MMAP_READS, SB_NO_HUGEPAGES; other bits must be
       zero. */
    uint32_t flags;
    /* Must be zero. */
    uint32_t reserved32;

    /* Ranged sources (a source with open_at; see "Ranged sources"). */

    /* A waiting read opens a part when its first missing byte is more
       than this past every fetcher that will reach it.  0: measured as
       the stream runs (what the nearest fetcher delivers while a part
       opens), at least chunk_size. */
    uint64_t seek_gap;
    /* Most streams (parts) read at once, the first one included.  0: 4;
       1: no parts for a source with a first stream (read or next: it is
       read as a plain one); a source with open_at alone reads one part at
       a time, moved to a far read as at any max_parts.  At most 64. */
    uint32_t max_parts;
    /* Reopens of a failed part in a row before the stream fails.  0: 3. */
    uint32_t retries;
    uint64_t reserved[6];
} sb_options;

/* sb_options.flags */
/* Give bytes below the floor back to the system: memory pages and spill
   file space (see "Flow control"). */
#define SB_RELEASE 0x1u
/* sb_pread of spilled bytes copies from a read-only mapping of the spill
   file instead of calling pread(2) (see "Zero-copy"). */
#define SB_MMAP_READS 0x2u
/*
 * Keep the memory part in small pages.  The first 1 MiB of every memory
 * region is in small (4 KiB) pages, so a small stream commits only the
 * pages its bytes touch.  By default the region past it is 2 MiB-aligned
 * and advised MADV_HUGEPAGE (2 MiB pages where the kernel's
 * transparent_hugepage mode allows it), because on a virtual machine a
 * first touch of a 4 KiB page can cost more than copying the bytes into
 * it.  A huge page commits 2 MiB at once, but never past mem_limit: only
 * whole 2 MiB extents inside the region are advised.  Release gives back
 * exactly the pages it says, splitting a huge page where it must.  This
 * flag keeps the whole region in small pages, for programs that must.
 */
#define SB_NO_HUGEPAGES 0x4u
/*
 * opts->length_hint is the stream's length, not a hint: as if open_at had
 * reported it before the first byte (see "The length" under "Ranged
 * sources"), so that reads past it answer at once and sb_stats' length
 * is known from the start.  For a source with open_at whose length is
 * known before it opens (an HTTP response's Content-Length: sb_open_url
 * sets it); sb_open fails with EINVAL without open_at or with
 * length_hint 0, and every other open with EINVAL.
 */
#define SB_LENGTH_KNOWN 0x8u

/*
 * sb_open - start buffering a stream from a source.
 *
 * Copies *src and *opts, starts the producer thread, which begins pulling
 * from the source at once, and returns without blocking.
 *
 * With src->open_at set, the first stream may also come from open_at(ctx,
 * 0, ...), which the first fetcher thread calls (read and next both NULL);
 * see "Ranged sources".
 *
 * Returns the new buffer, or NULL with errno:
 *   EINVAL  src is NULL; both of src->read and src->next are set, or
 *           neither while src->open_at is NULL; a reserved field of *src or
 *           *opts is not zero; opts->chunk_size or opts->mem_limit above
 *           SSIZE_MAX; opts->tmp_dir is an empty string;
 *           opts->length_hint greater than a non-zero opts->max_size; an
 *           unknown bit in opts->flags; opts->max_retained without
 *           SB_RELEASE; opts->max_parts above 64; SB_LENGTH_KNOWN without
 *           src->open_at or with opts->length_hint 0.
 *   ENOMEM  out of memory or address space for the memory region.
 *   EAGAIN  the producer thread could not be created.
 * On failure nothing is left behind and src->close is not called.
 *
 * Thread-safety: safe to call from any thread.
 */
sb_buffer *sb_open(const sb_source *src, const sb_options *opts);

/*
 * Ranged sources: far reads do not wait.
 *
 * A source with open_at can start the stream over at any offset.  The
 * buffer then runs up to opts->max_parts *fetchers* (threads), each
 * draining one stream (a *part*) into the spool at the part's own offset:
 * [0, mem_limit) in memory, the rest in the spill file at off - mem_limit
 * (written with pwrite, so the holes cost no disk).  The bytes held form
 * *extents* that grow and merge; sb_available and sb_stats' filled stay
 * the contiguous run from 0.  A read of bytes held in any extent takes no
 * lock and writes nothing shared; a wait ends when the read's whole range
 * is held (or at the end, a failure, a cancel), and armed SB_NONBLOCK
 * readers become ready on the same rule.  Views stop at the end of an
 * extent.  mem_limit, chunk_size, max_parts and the seek gap never change
 * which bytes the stream holds.
 *
 * When a part opens.  A blocked or armed read (not sb_wait_end) whose
 * first missing byte m lies at or above the floor and more than the seek
 * gap past the position of every fetcher that will reach m (a fetcher
 * reaches the bytes from its position up to the next bytes held or
 * fetched by another) opens a part at m.  With max_parts fetchers busy, a
 * fetcher that no blocked or armed read needs within the seek gap of its
 * position is moved to m instead (its part is cancelled and closed; the
 * lowest such fetcher first); if every fetcher is needed, the read waits
 * for one to come free.  The seek gap is opts->seek_gap, or else what the
 * fetcher that would reach m delivers (its rate while it reads) in the time
 * a part takes from open_at to its first byte (both measured as the
 * stream runs), and never less than chunk_size.  Stats: parts_opened,
 * parts_moved, seek_gap.
 *
 * Each byte once.  A fetcher stops where it meets bytes held or being
 * fetched by another: its part is cancelled and closed.  Without
 * read_ahead the stream drains to its end: a stopped fetcher reopens past
 * the extent it met, and once the length is known, idle fetchers take the
 * largest gap (or split the largest stretch a running fetcher still has
 * ahead of it, once that fetcher's rate has been measured: about 50 ms of
 * its reading), so a server that limits each connection's rate is
 * drained over max_parts connections.  A read that waits for a part to open
 * comes first: until that part has given its first bytes, no part opens
 * to drain and fetchers that no read needs pause, so that a far read's
 * round trip does not share the source (or the CPUs) with the drain.  A
 * fetcher thread that sleeps while the drain is held so sleeps under
 * SCHED_BATCH, and is back under SCHED_OTHER as soon as it runs: the
 * read that ends the hold wakes it, and the kernel never lets a
 * SCHED_BATCH thread preempt the thread that woke it.  A fetcher thread
 * under another policy (it has the policy of the thread that made it:
 * the one that called sb_open, a reader, or another fetcher) keeps it.
 * With read_ahead a fetcher goes on only while demand asks for it
 * (below).
 *
 * Seams.  Wherever two fetchers' bytes meet, the buffer compares 4 KiB
 * across the seam (fewer where the stream, or what the other fetcher has
 * delivered so far, ends sooner): a fetcher that reaches held bytes reads
 * that far into them, and a part opened right after held bytes starts
 * that far before them.  Extents join only once their seam compared
 * equal, so no read spans an unchecked seam.  A mismatch fails the stream
 * with ESTALE; from then on only [0, filled) stays readable and every read
 * past it fails with ESTALE: no read ever returns bytes of two versions.
 * The compared bytes count in refetched; a stream drained over several
 * parts delivers its length plus 4 KiB a seam.
 *
 * The length.  A length reported by open_at (or given with
 * SB_LENGTH_KNOWN) is the stream's length (opts->length_hint alone stays
 * a hint): no part opens at or past it, a read
 * wholly past it returns 0 at once, a read that straddles it waits only
 * for the bytes before it (a short count), and a stream whose parts end
 * elsewhere or deliver past it fails with EIO; bytes that arrived stay
 * readable.  Without a reported length, a part that ends before its end
 * argument ends the stream there (EIO if bytes are held past that point).
 * The stream is ENDED once every byte before the end is held.
 *
 * Failures.  A part that fails (its read or next returns -E, open_at
 * returns -E, or it ends before the known length: EIO) is reopened at the
 * byte it reached, up to opts->retries times in a row (a part that
 * delivered bytes before it failed starts the count again, and reopens at
 * once); failures in a row without progress pause about 50 ms, doubling
 * each time (sb_cancel ends the pause).  Past that the
 * stream fails with E.  -ESPIPE or -ESTALE from open_at turns parts off
 * for good: the first stream, if it still runs, goes on as a plain one;
 * if bytes that must still come can come from no stream, the stream fails
 * with that error.  A failure of the first stream when it is not a part
 * (read or next) is treated as a part's: it is reopened with open_at.
 * Stats: part_retries.
 *
 * Flow control.  read_ahead holds each fetcher read_ahead past the
 * furthest byte demanded within the extent it extends (a read that had to
 * wait for bytes that fetcher will reach, a reader's floor there), within
 * its seek gap: a read farther on has a part opened for it instead.
 * read_ahead is earned: a part asks open_at (its end) for no more past
 * the demand than the run it continues already holds, at most read_ahead
 * (a part opened where no read waits asks for a chunk).  So a far read
 * that continues nothing costs the source its own bytes alone, and a
 * reader that goes on doubles the window each part; a part that ends
 * where it asked while readers have gone on into it is followed at once
 * by the next (open_at again where it ended, the seam compared).
 * sb_wait_end demands everything: every fetcher drains.  With SB_RELEASE
 * no part opens below the floor, and max_retained bounds the bytes held at
 * or above the floor in all extents together: every fetcher pauses while
 * they reach it.  max_size bounds the stream's length as before (a part
 * past it: EFBIG).  sb_cancel cancels every part (its cancel callback,
 * then the source's); sb_close joins every fetcher, closes every part
 * still open, then closes the source.
 *
 * A source without open_at, push mode and sb_open_mem work exactly as
 * described elsewhere in this header.
 */

/*
 * sb_open_fd - buffer everything read(2) returns from a file descriptor.
 *
 * Reads start at fd's current offset and advance it, never past what
 * opts->max_size can still take (plus the one byte that tells that the
 * stream is too long; from a pipe or FIFO, which is read at least PIPE_BUF
 * bytes at a time, less than PIPE_BUF past it).  The fd stays the caller's: it is never closed, its
 * flags are never changed, and it must stay open until sb_close returns.
 *
 * A quiet pipe, FIFO or socket does not delay sb_cancel or sb_close, even
 * when the fd is blocking and something else reads it too: sockets are read
 * with recv(MSG_DONTWAIT), pipes and FIFOs through a second, non-blocking
 * open file description of their own (/proc/self/fd), and when nothing is
 * there the producer waits in poll(2), which sb_cancel interrupts.  The one
 * exception is a blocking character device (a terminal) that another
 * reader shares, or a pipe when /proc is not mounted: there the producer
 * waits in poll(2) and then reads, and if the other reader takes the bytes
 * in between, sb_close waits for the next byte or the end.
 *
 * The stream is what read(2) returns, in order, until it returns 0.  So a
 * non-blocking FIFO that no writer has opened yet is an empty stream, as
 * read(2) says.  Message-oriented fds (SOCK_SEQPACKET and SOCK_DGRAM
 * sockets, O_DIRECT "packet" pipes) lose no bytes whatever mem_limit and
 * chunk_size are: each message is read whole and becomes the next bytes of
 * the stream; a message of length 0 ends it.  EINTR is retried; any other
 * read error fails the stream with that errno.
 *
 * Returns the new buffer, or NULL with errno:
 *   EINVAL  fd is negative, or opts is invalid (see sb_open).
 *   EBADF   fd is not an open descriptor open for reading.
 *   EMFILE, ENFILE  no descriptor left for the internal wake-up eventfd
 *           (or the pipe's second open file description).
 *   ENOMEM, EAGAIN  as for sb_open.
 *
 * Thread-safety: safe to call from any thread.
 */
sb_buffer *sb_open_fd(int fd, const sb_options *opts);

/*
 * sb_open_mem - a buffer over bytes already in memory.
 *
 * Copies nothing: readers read data itself, which must stay valid and
 * unchanged until sb_close returns.  The stream has ended when this returns
 * (sb_available is len at once) and no thread is started.  opts->mem_limit,
 * tmp_dir and chunk_size are validated but have no effect; with a non-zero
 * opts->max_size below len the stream is failed with EFBIG after its first
 * max_size bytes, as for any source.
 *
 * Returns the new buffer, or NULL with errno:
 *   EINVAL  data is NULL while len > 0, or opts is invalid (see sb_open).
 *   ENOMEM  out of memory.
 *
 * Thread-safety: safe to call from any thread.
 */
sb_buffer *sb_open_mem(const void *data, size_t len, const sb_options *opts);

/*
 * sb_open_writer - a buffer that the caller fills: push mode.
 *
 * No producer thread: the bytes come from sb_write, and sb_finish ends the
 * stream.  Readers see no difference.  opts as for sb_open.
 *
 * Returns the new buffer, or NULL with errno:
 *   EINVAL  opts is invalid (see sb_open).
 *   ENOMEM  out of memory or address space for the memory region.
 *
 * Thread-safety: safe to call from any thread.
 */
sb_buffer *sb_open_writer(const sb_options *opts);

/*
 * sb_write - append len bytes to a writer buffer's stream.
 *
 * Copies data into the spool (memory, then the spill file) and wakes the
 * readers whose range is complete; a large write is published chunk_size
 * bytes at a time.  Without flow control it blocks only for the copy and
 * the spill file's write.  With opts->read_ahead or opts->max_retained it
 * also blocks, before each chunk, for as long as the producer thread of a
 * pulled stream would pause (see "Flow control"), like a write(2) to a full
 * pipe: until readers ask for more or release what they have read, or
 * until sb_cancel.  sb_finish takes turns with a blocked sb_write.
 *
 * Returns len, or -1 with errno:
 *   EINVAL     b is NULL or not from sb_open_writer; data is NULL while
 *              len > 0; len > SSIZE_MAX.
 *   EPIPE      sb_finish was called, with or without an error.
 *   ECANCELED  sb_cancel was called (also while the call was blocked).
 *   EFBIG      the stream would pass opts->max_size: the bytes up to it are
 *              stored and the stream fails with EFBIG.  Also when the spill
 *              file hits RLIMIT_FSIZE: SIGXFSZ is blocked around the write
 *              and consumed, so it does not kill the process.
 *   ENOSPC, EIO, ...  the spill file could not be created or written; the
 *              stream fails with that error (bytes before stay readable).
 *   After a failure, later calls fail with the stream's error, even with
 *   len == 0.  A call that fails may have published part of its bytes (a
 *   chunk_size piece at a time); sb_available tells how many arrived.
 *
 * Thread-safety: calls from several threads take turns; each call's bytes
 * are contiguous in the stream.
 */
ssize_t sb_write(sb_buffer *b, const void *data, size_t len);

/*
 * sb_finish - end a writer buffer's stream.
 *
 * err == 0 ends it normally at the bytes written so far; a positive errno
 * value fails it with that error, as a source error would.  Wakes every
 * waiting reader.
 *
 * Returns 0, or -1 with errno:
 *   EINVAL     b is NULL or not from sb_open_writer, or err < 0.
 *   EPIPE      sb_finish was already called.
 *   ECANCELED, ENOSPC, ...  the stream had already been cancelled or had
 *              failed; its error stays.
 *
 * Thread-safety: safe from any thread; takes turns with sb_write.
 */
int sb_finish(sb_buffer *b, int err);

/*
 * sb_pread - read bytes [off, off + n) of the stream into buf.
 *
 * Blocks until the whole range has arrived, then copies it and returns n.
 * If the stream ends inside the range, returns the bytes that exist (a short
 * count); if off is at or past the end, returns 0.  If the stream has failed
 * or was cancelled, the bytes that arrived before are still returned as
 * above, and a read that can return none fails with the stream's error.
 * A read of bytes that have already arrived takes no lock and never blocks.
 * A read that has to wait raises the demand to off + n (see "Flow
 * control"), so under opts->read_ahead the producer pulls what it needs.
 *
 * Returns the number of bytes copied, or -1 with errno:
 *   EINVAL     b or buf is NULL, n > SSIZE_MAX, or off + n overflows.
 *   ESPIPE     off is below sb_floor(b): those bytes have been released
 *              (with SB_RELEASE).  Never other bytes instead, not even when
 *              a release races with the read.
 *   ECANCELED  sb_cancel was called before the bytes arrived.
 *   EFBIG      the stream passed opts->max_size, or the spill file hit the
 *              file size limit.
 *   ENOSPC, EIO, ...  the spill file could not be created or written
 *              (the errno of open(2) or pwrite(2)), or the source failed
 *              with that error; all of these fail the stream.
 *   EIO, ...   pread(2) of the spill file failed for this read alone; the
 *              stream is not failed and the read may be retried.
 * n == 0 returns 0 at once (after the argument checks, and the floor's:
 * below sb_floor even an empty read is ESPIPE).
 *
 * Thread-safety: any number of threads may read at once, at any offsets.
 */
ssize_t sb_pread(sb_buffer *b, void *buf, size_t n, uint64_t off);

/*
 * sb_pread_timed - sb_pread that waits at most timeout_ms milliseconds.
 *
 * As sb_pread, but the wait for missing bytes ends after timeout_ms (-1 waits
 * forever, 0 never waits), measured on CLOCK_MONOTONIC.  On timeout no bytes
 * are copied, even if part of the range had arrived.
 *
 * Returns as sb_pread, or -1 with errno:
 *   ETIMEDOUT  the range had not arrived, nor the stream ended, in time.
 *   EINVAL     as sb_pread, or timeout_ms < -1.
 *
 * Thread-safety: as sb_pread.
 */
ssize_t sb_pread_timed(sb_buffer *b, void *buf, size_t n, uint64_t off,
                       int timeout_ms);

/*
 * sb_available - how many bytes have arrived, now.
 *
 * Never blocks, takes no lock.  The count only grows, so a read of
 * [0, sb_available(b)) never blocks.
 *
 * Returns the count; 0 with errno EINVAL if b is NULL.
 *
 * Thread-safety: safe from any thread.
 */
uint64_t sb_available(sb_buffer *b);

/*
 * sb_fopen - a standard read-only FILE * over the stream.
 *
 * The FILE has its own position, starting at 0.  Its reads behave like
 * read(2) on a pipe: they block until at least one byte has arrived, so
 * fgets and getc return as soon as their bytes are there, and fread waits
 * until it has all it asked for or the stream ends; the end of the
 * stream is EOF; a failed or cancelled stream sets the error indicator
 * (ferror) with errno set as sb_pread sets it (ESPIPE for released bytes:
 * the FILE holds no floor, so with SB_RELEASE it reads only what readers
 * still hold; see sb_reader_fopen for one that does).  fseek and ftell work
 * (glibc's fopencookie) and never wait, except for SEEK_END: it uses the
 * total length, waiting for the end, unless the stream is still running
 * and opts->length_hint was given, in which case the hint is used; on a
 * failed or cancelled stream it fails with the stream's error.  A seek to
 * bytes that have not arrived succeeds at once; the next read waits.
 * Writing fails.  Any number of FILEs may be open on one buffer, each used
 * by its own thread.  fclose it before sb_close; fclose does not close the
 * buffer.  glibc only.
 *
 * Returns the FILE, or NULL with errno:
 *   EINVAL  b is NULL.
 *   ENOMEM  out of memory.
 *
 * Thread-safety: safe to call from any thread.  One FILE is as thread-safe
 * as any FILE (stdio locks it).
 */
FILE *sb_fopen(sb_buffer *b);

/*
 * Flow control: lazy pull, readers that release, backpressure.
 *
 * With all-zero options the producer drains the source eagerly and every
 * byte stays until sb_close.  Three knobs bound what a stream uses; each is
 * off unless set, and none changes the bytes of the stream.
 *
 * demand is the end (off + n) of the furthest range that any call had to
 * wait for: sb_pread*, sb_reader_pread* and sb_fopen reads that found their
 * bytes missing, the floor of every sb_reader (its own, at open and on each
 * release), and sb_wait_end(_timed), which demands everything.  It only
 * grows.
 * Reads of bytes that have arrived do not touch it.
 *
 * opts->read_ahead (lazy pull): the producer pauses while filled >= demand
 * + read_ahead and resumes as soon as the demand rises.  It pulls a whole
 * chunk at a time, so it stops at most chunk_size bytes past that mark.
 *
 * A reader (sb_reader_open) is a registered cursor with a floor: the lowest
 * offset it may still read.  The floor starts where the reader is opened and
 * only rises (sb_reader_release).  The buffer's floor, sb_floor(), is the
 * lowest floor of the open readers with SB_RELEASE, and 0 without it; it
 * never goes down, and while no reader is open it stays where it was.
 *
 * SB_RELEASE: bytes below sb_floor() count as released at once.  Every read
 * of them, through a reader or not, fails with ESPIPE, and their memory
 * pages and spill-file space are given back (madvise, a hole punched in the
 * file) a chunk_size batch at a time: by the time the producer (or
 * sb_write) stores its next chunk, all but less than chunk_size bytes of
 * them are back.  A read that races with a release
 * returns the right bytes or fails with ESPIPE, never other bytes.  A
 * reader's own bytes, [its floor, ...), are never released while it is open.
 *
 * opts->max_retained (backpressure, needs SB_RELEASE): the producer pauses
 * while filled - sb_floor() >= max_retained, so the slowest reader holds
 * the stream back and a stream without end runs in max_retained plus a
 * chunk or two of memory and disk.  A reader's wait for bytes more than
 * max_retained past its own floor could never end; it fails at once with
 * ENOBUFS.  Plain reads hold no floor: they wait.
 *
 * In push mode sb_write blocks exactly where the producer would pause.
 * sb_cancel and sb_close end every pause and every wait.
 */

/* A registered cursor over one buffer; see sb_reader_open. */
typedef struct sb_reader sb_reader;

/*
 * sb_reader_open - register a reader with its floor at floor.
 *
 * The reader's floor counts as demand, so under read_ahead the producer
 * pulls up to it.  Never blocks for long.
 *
 * Returns the reader, or NULL with errno:
 *   EINVAL  b is NULL.
 *   ESPIPE  floor is below sb_floor(b): those bytes are released already.
 *   ENOMEM  out of memory.
 *
 * Thread-safety: safe from any thread.  Close every reader before
 * sb_close.
 */
sb_reader *sb_reader_open(sb_buffer *b, uint64_t floor);

/*
 * sb_reader_pread - sb_pread through a reader.
 *
 * As sb_pread, with two more errors:
 *   ESPIPE   off is below the reader's floor.
 *   ENOBUFS  with opts->max_retained, off + n is more than max_retained
 *            past the reader's floor and those bytes have not arrived: the
 *            wait could never end (the reader itself holds the producer).
 * The reader's bytes cannot be released under it, so a read through a
 * reader never fails because of a race with release.
 *
 * Thread-safety: one thread at a time per reader; different readers in
 * parallel.
 */
ssize_t sb_reader_pread(sb_reader *r, void *buf, size_t n, uint64_t off);

/* sb_reader_pread with a timeout, as sb_pread_timed. */
ssize_t sb_reader_pread_timed(sb_reader *r, void *buf, size_t n, uint64_t off,
                              int timeout_ms);

/*
 * sb_reader_release - raise the reader's floor to floor.
 *
 * The reader may read only [floor, ...) from now on.  With SB_RELEASE, when
 * this raises sb_floor(), the bytes below the new floor are released: their
 * memory and disk are given back (before this returns, once a chunk_size
 * worth is due, or else by the producer's next step), and a producer paused
 * by max_retained resumes.  Raises the
 * demand to floor.  Releasing to the current floor does nothing.
 *
 * Returns 0, or -1 with errno:
 *   EINVAL  r is NULL, or floor is below the reader's floor.
 *   EIO, ...  giving back the space of the bytes this call released
 *           failed, whether this call or another thread (the producer,
 *           before its next step) tried it first (say, a file system that
 *           cannot punch holes: EOPNOTSUPP); the stream fails with that
 *           error, and the floor has still risen.
 *
 * Thread-safety: as sb_reader_pread.
 */
int sb_reader_release(sb_reader *r, uint64_t floor);

/*
 * sb_reader_floor - the reader's floor: where it was opened, or the last
 * sb_reader_release.  Never blocks.
 *
 * Returns the floor; 0 with errno EINVAL when r is NULL (a reader's floor
 * may be 0 too: check r).
 *
 * Thread-safety: as sb_reader_pread.
 */
uint64_t sb_reader_floor(const sb_reader *r);

/*
 * sb_reader_close - unregister and free a reader.
 *
 * The buffer's floor may rise (the lowest floor of the readers that are
 * left); when the last reader closes it stays.  If giving back what that
 * releases fails, the stream fails with the error (see sb_reader_release),
 * which later calls report.  A NULL r is ignored.
 *
 * Thread-safety: as sb_reader_pread; not concurrently with another call on
 * r.
 */
void sb_reader_close(sb_reader *r);

/*
 * sb_floor - the buffer's floor: reads below it fail with ESPIPE.
 *
 * 0 without SB_RELEASE.  Never blocks, takes no lock.  0 with errno EINVAL
 * if b is NULL.
 *
 * Thread-safety: safe from any thread.
 */
uint64_t sb_floor(sb_buffer *b);

/*
 * sb_reader_fopen - a FILE * that reads through a reader and releases as it
 * reads.
 *
 * As sb_fopen, starting at the reader's floor, with one difference: after
 * each read the reader's floor rises to the FILE's read position (stdio
 * keeps its own copy of what it buffered), so a FILE over an endless
 * stream reads it in bounded space.  It is forward-only: fseek works and
 * never waits, but a read at a position below the floor fails with ESPIPE
 * (ferror).  Over an SB_NONBLOCK reader, nothing waits, SEEK_END included
 * (EAGAIN while the end is unknown; see "Event loops").  The FILE uses r and does not close it: fclose the FILE, then
 * sb_reader_close(r).  Use r only through the FILE while it is open.
 *
 * Returns the FILE, or NULL with errno EINVAL (r is NULL) or ENOMEM.
 *
 * Thread-safety: safe to call from any thread.
 */
FILE *sb_reader_fopen(sb_reader *r);

/*
 * Zero-copy: views of the bytes in place, and sendfile.
 *
 * The memory part of a buffer never moves.  The spill file is mapped
 * read-only, in windows of 8 MiB, the first time a view (or, with
 * SB_MMAP_READS, a read) needs one, and a window stays mapped until
 * sb_close.  The file is still written with pwrite(2), so a full disk is an
 * ENOSPC that fails the stream, never a SIGBUS.  What a mapping can do that
 * pread(2) cannot: when the kernel has to read a page back from the disk
 * (it was evicted from the page cache) and that I/O fails, the thread that
 * touches the page gets SIGBUS instead of a read that fails with EIO.  On
 * a healthy disk, or a spill on tmpfs, that never happens; it is why
 * SB_MMAP_READS is off by default (SQLite's mmap_size is off by default for
 * the same reason) and why views of spilled bytes are an explicit call.
 *
 * The rule for how long a view lives: the bytes under a view never change
 * and never move until sb_close.  With SB_RELEASE, views are taken through
 * a reader, and a view's bytes stay valid until that reader releases past
 * them (sb_reader_release to an offset beyond the view, or
 * sb_reader_close); after that they may read as zeros, and a window whose
 * every byte is released is unmapped, so touching them may fault.
 */

/*
 * sb_view - point *ptr at the bytes at off, in place.
 *
 * Waits exactly as sb_pread(b, ..., n, off) does, then sets *ptr to the
 * byte at off and returns how many contiguous bytes start there: at least
 * 1 and at most n; fewer where the bytes cross from memory to the spill
 * file or from one 8 MiB spill window to the next (ask again at off +
 * the count for the rest), and where the stream ends inside the range.
 * Returns 0 at or past the end of the stream (*ptr is not written).
 *
 * Returns the count, or -1 with errno:
 *   EINVAL  b or ptr is NULL, n > SSIZE_MAX, off + n overflows; or the
 *           buffer has SB_RELEASE (a view needs a reader to pin its bytes:
 *           sb_reader_view).
 *   ENOMEM  no address space to map a spill window.
 *   ECANCELED, EFBIG, ENOSPC, EIO, ...  as sb_pread.
 *
 * Thread-safety: as sb_pread.
 */
ssize_t sb_view(sb_buffer *b, uint64_t off, size_t n, const void **ptr);

/*
 * sb_reader_view - sb_view through a reader.
 *
 * As sb_view, with the errors of sb_reader_pread (ESPIPE below the
 * reader's floor, ENOBUFS past floor + max_retained), and allowed with
 * SB_RELEASE: the view's bytes stay valid until the reader releases past
 * them.
 *
 * Thread-safety: as sb_reader_pread.
 */
ssize_t sb_reader_view(sb_reader *r, uint64_t off, size_t n,
                       const void **ptr);

/*
 * sb_sendfile - write bytes [off, off + n) of the stream to out_fd without
 * copying them through user space where the kernel allows.
 *
 * Waits as sb_pread does, then writes what exists of the range (all of it,
 * or up to the end of an ended stream) to out_fd at its current offset: the
 * spilled part with sendfile(2) from the spill file, the memory part with
 * write(2) (send(2) for a socket).  out_fd may be a socket, a pipe or a
 * file, any fd write(2) works on: where sendfile(2) refuses out_fd (a file
 * opened with O_APPEND, a file system without it), the spilled part is
 * copied with pread(2) and write(2) instead, so out_fd's own rules (append
 * at the end) hold and a failed read-back is EIO.  SIGPIPE is blocked in the calling thread while it writes and a
 * SIGPIPE it raised is consumed, so a peer that has gone away is the error
 * EPIPE, never the death of the process.
 *
 * Returns the bytes written: the whole range, or fewer when out_fd took
 * fewer (a non-blocking socket whose buffer filled up, a signal), as
 * write(2) does; 0 at or past the end of the stream.  -1 with errno:
 *   EAGAIN     out_fd is non-blocking and took nothing.
 *   EPIPE      out_fd is a pipe or socket whose reading end has gone.
 *   EBADF, EINVAL, ...  out_fd cannot be written (write(2)'s errors).
 *   EINVAL     b is NULL, out_fd < 0, n > SSIZE_MAX, off + n overflows; or
 *              the buffer has SB_RELEASE (send through a reader:
 *              sb_reader_sendfile, whose floor pins the bytes).
 *   ECANCELED, EFBIG, ENOSPC, EIO, ...  as sb_pread, when no byte of the
 *              range could be had.
 *
 * Thread-safety: as sb_pread.
 */
ssize_t sb_sendfile(sb_buffer *b, int out_fd, uint64_t off, size_t n);

/* sb_sendfile through a reader: its floor pins the bytes while the kernel
   reads them.  The errors of sb_reader_pread as well.  Thread-safety: as
   sb_reader_pread. */
ssize_t sb_reader_sendfile(sb_reader *r, int out_fd, uint64_t off, size_t n);

/*
 * Event loops: readers that are not threads.
 *
 * A reader opened with SB_NONBLOCK never waits.  Its sb_reader_pread,
 * sb_reader_view and sb_reader_sendfile do what they do on any reader when
 * the range can be answered now: all of it has arrived, or the stream
 * ended, failed or was cancelled inside it.  Otherwise they return -1 with
 * errno EAGAIN and *arm* the reader for that range, and nothing else
 * happens: no byte is copied or sent.  One thread can then serve any
 * number of readers from one event loop (epoll, poll, libuv, asyncio,
 * io_uring):
 *
 *     int pfd = sb_poll_fd(b);               // register for POLLIN once
 *     ...
 *     if (sb_reader_pread(r, buf, n, off) < 0 && errno == EAGAIN)
 *         ;                                  // armed: wait for pfd
 *     ...
 *     // pfd is readable:
 *     sb_reader *ready[64];
 *     size_t k = sb_poll_ready(b, ready, 64);
 *     for (size_t i = 0; i < k; i++)
 *         resume(sb_reader_tag(ready[i]));   // call sb_reader_pread again
 *
 * The rules:
 *
 *   - An armed range counts as demand (read_ahead), exactly as a blocked
 *     wait does; ESPIPE, ENOBUFS and EINVAL are returned as they are on a
 *     blocking reader, without arming.  A reader has at most one armed
 *     range: an EAGAIN re-arms it for the new range, replacing the old one
 *     and taking the reader off the ready list if it was on it.  A call
 *     that answers leaves the reader's arming as it was; the one call that
 *     disarms without answering is sb_reader_sendfile when out_fd takes
 *     nothing (below).
 *   - When an armed range becomes answerable (its bytes arrived, the
 *     stream ended or failed, sb_cancel, sb_close started) the reader is
 *     disarmed and put once on the buffer's ready list.  The answer is not
 *     kept: call again to get it (it does not wait now).  sb_poll_ready
 *     takes readers off the list; each arming yields a reader at most once.
 *   - sb_poll_fd is readable (POLLIN, level-triggered) while the ready
 *     list is not empty, and is drained by whatever empties the list: the
 *     sb_poll_ready that takes the last reader, or an sb_reader_close or a
 *     new arm of the last one listed.  It may be readable with the list
 *     empty, once, when a reader became ready on another thread just as
 *     the list was emptied (sb_poll_ready then returns 0 and drains it).
 *     With edge-triggered epoll (EPOLLET), call sb_poll_ready until it
 *     returns fewer than max.  Never read, write or
 *     close it yourself.
 *   - The library signals it at most once per change of the list from
 *     empty to not empty, after it has let go of its locks, and never
 *     blocks on it.  A publish that makes no armed reader ready costs no
 *     system call.
 *   - sb_reader_close of an armed or listed reader takes it off; the list
 *     never yields a closed reader.  Close readers before sb_close, as
 *     always.
 *   - The _timed calls fail with EINVAL on a non-blocking reader.  A FILE
 *     from sb_reader_fopen over one reads like a FILE over a non-blocking
 *     fd and never waits either: a read with nothing there fails with
 *     EAGAIN (ferror), and fseek(f, off, SEEK_END) on a stream that is
 *     still running without a length_hint fails at once with EAGAIN (the
 *     position stays; nothing is armed).
 *
 * sb_reader_sendfile on a non-blocking reader has two reasons for EAGAIN,
 * and after it sb_reader_armed tells which: 1, the range has not arrived
 * (the reader is armed for it: wait for sb_poll_fd); 0, the range is
 * there but out_fd took nothing (wait until out_fd is writable, then call
 * again).  An EAGAIN from out_fd disarms the reader, taking it off the
 * heap and the ready list whatever range it was armed for before, so 0
 * reliably means "wait for out_fd": no earlier arming will also wake it.
 */

/* sb_reader_open_flags flag: the reader never waits; see "Event loops". */
#define SB_NONBLOCK 0x1u

/*
 * sb_reader_open_flags - sb_reader_open with flags.
 *
 * flags is 0 or SB_NONBLOCK; sb_reader_open(b, floor) is
 * sb_reader_open_flags(b, floor, 0).
 *
 * Returns the reader, or NULL with errno:
 *   EINVAL  b is NULL, or an unknown bit in flags.
 *   ESPIPE, ENOMEM  as sb_reader_open.
 *
 * Thread-safety: safe from any thread.
 */
sb_reader *sb_reader_open_flags(sb_buffer *b, uint64_t floor, unsigned flags);

/*
 * sb_poll_fd - the buffer's poll descriptor: readable while the ready list
 * of its non-blocking readers is not empty.
 *
 * Made on the first call (an eventfd, close-on-exec) and the same on
 * every later one; it stays open until sb_close, which closes it.  Works
 * with poll(2), select(2), epoll (level-triggered or EPOLLET), libuv's
 * uv_poll_t, asyncio's loop.add_reader and io_uring's POLL_ADD.  Never
 * blocks.
 *
 * Returns the descriptor, or -1 with errno:
 *   EINVAL  b is NULL.
 *   EMFILE, ENFILE, ENOMEM  the eventfd could not be made (a later call
 *           tries again).
 *
 * Thread-safety: safe from any thread.
 */
int sb_poll_fd(sb_buffer *b);

/*
 * sb_poll_ready - take up to max readers off the ready list.
 *
 * Stores them in out[0..k) in the order they became ready and returns k
 * (0 when the list is empty or max is 0).  Never blocks for long (it
 * takes an internal lock briefly).  A reader it returns is disarmed: call
 * its sb_reader_pread (or view, or sendfile) again for the answer.  When
 * it leaves the list empty it drains sb_poll_fd.
 *
 * Returns k, or 0 with errno EINVAL if b is NULL, or out is NULL while max
 * is not 0.
 *
 * Thread-safety: safe from any thread; meant for one consumer (the event
 * loop) while the producer, sb_write, sb_cancel and readers' calls put
 * readers on the list from other threads.
 */
size_t sb_poll_ready(sb_buffer *b, sb_reader **out, size_t max);

/*
 * sb_reader_armed - whether r waits for the stream: 1 if it is armed (its
 * last call returned EAGAIN because the range had not arrived, and the
 * range is still not answerable), else 0 (also for a blocking reader, or
 * NULL).  Never blocks, takes no lock.
 *
 * Thread-safety: safe from any thread; the answer may be stale by the
 * time it returns, in one direction only: an armed reader may become
 * ready.
 */
int sb_reader_armed(const sb_reader *r);

/*
 * sb_reader_set_tag, sb_reader_tag - the caller's pointer on a reader (a
 * connection, a future), for finding what to resume when sb_poll_ready
 * returns the reader.  NULL until set; the library never touches what it
 * points at.  sb_reader_tag(NULL) is NULL; sb_reader_set_tag(NULL, ...)
 * does nothing.
 *
 * Thread-safety: safe from any thread (a set is seen by a later get).
 */
void sb_reader_set_tag(sb_reader *r, void *tag);
void *sb_reader_tag(const sb_reader *r);

/* The stream's state, as reported by sb_get_stats. */
enum sb_state {
    SB_RUNNING = 0, /* bytes may still arrive */
    SB_ENDED = 1,   /* the source ended; filled is the total length */
    SB_FAILED = 2,  /* failed or cancelled; error says why */
};

/* A snapshot for monitoring and benchmarks.  See sb_get_stats. */
typedef struct sb_stats {
    uint64_t filled;      /* bytes arrived: what sb_available returns */
    uint64_t in_memory;   /* of those, bytes held in the memory region */
    uint64_t spilled;     /* of those, bytes held in the spill file */
    uint64_t publishes;   /* times filled grew: the producer (or sb_write)
                             published at least one new byte */
    uint64_t waiting;     /* readers blocked in sb_pread* or sb_wait_end* */
    uint64_t wakeups;     /* times a blocked reader woke up, so far: each
                             targeted wake-up, timeout or spurious return */
    int state;            /* enum sb_state */
    int error;            /* the stream's errno when SB_FAILED, else 0 */
    /* Flow control (see "Flow control"). */
    uint64_t floor;       /* sb_floor: bytes below it are released */
    uint64_t demand;      /* the furthest byte readers have asked for */
    uint64_t released;    /* bytes whose memory or disk has been given back */
    uint64_t pauses;      /* times the producer (or sb_write) paused under
                             read_ahead or max_retained */
    uint64_t paused_ns;   /* the time it spent paused, in nanoseconds */
    uint64_t readers;     /* sb_reader objects open now */
    uint64_t paused;      /* 1 while the producer (or sb_write) is paused
                             now, else 0 */
    uint64_t huge_pages;  /* 2 MiB pages backing the memory region now (the
                             kernel's count, from /proc/self/smaps; 0 where
                             it cannot be read) */
    /* Ranged sources (see "Ranged sources"); 0 for a source without
       open_at, but for fetched, extents and length. */
    uint64_t parts_opened; /* parts open_at has started so far */
    uint64_t parts_active; /* fetchers reading a stream now */
    uint64_t fetched;     /* bytes the source (all its parts) delivered */
    uint64_t refetched;   /* of those, bytes not stored: the compared
                             seams, and the rest of an iterator's chunk
                             past where a fetcher stopped */
    uint64_t extents;     /* runs of held bytes now, [0, filled) included:
                             1 once a stream is whole */
    uint64_t length;      /* the stream's length once known (a part
                             reported it, SB_LENGTH_KNOWN gave it, or the
                             stream ended), else 0 */
    uint64_t seek_gap;    /* the seek gap in force now (bytes) */
    uint64_t parts_moved; /* fetchers moved to a farther wait at max_parts */
    uint64_t part_retries; /* parts reopened after a failure */
    /* Zero: room for counters of later versions, which take their place
       here so that the struct keeps its size. */
    uint64_t reserved[8];
} sb_stats;

/*
 * sb_get_stats - take a consistent snapshot of the buffer's counters.
 *
 * Never blocks for long (it takes the internal lock briefly).  The counters
 * are consistent with each other at one instant; they may be stale by the
 * time the call returns.  huge_pages is the exception: it is counted after
 * the lock is let go, by reading /proc/self/smaps once the memory region
 * has reached past its first MiB (a file of a dozen lines per mapping of
 * the process), and a count is reused for 10 ms, so that a caller that asks
 * often pays for it at most a hundred times a second.
 *
 * Returns 0, or -1 with errno EINVAL if b or out is NULL.
 *
 * Thread-safety: safe from any thread.
 */
int sb_get_stats(sb_buffer *b, sb_stats *out);

/*
 * sb_wait_end - wait until the stream has ended, failed or been cancelled.
 *
 * Blocks until the source has been drained (or the stream fails).
 *
 * Returns 0 and stores the stream's total length in *length (if length is
 * not NULL), or -1 with errno:
 *   EINVAL  b is NULL.
 *   ECANCELED, EFBIG, ENOSPC, EIO, ...  the stream's error (see sb_pread);
 *           *length is not written.
 *
 * Thread-safety: safe from any thread, any number at once.
 */
int sb_wait_end(sb_buffer *b, uint64_t *length);

/*
 * sb_wait_end_timed - sb_wait_end that waits at most timeout_ms
 * milliseconds (-1 forever, 0 not at all), on CLOCK_MONOTONIC.
 *
 * Returns as sb_wait_end, or -1 with errno:
 *   ETIMEDOUT  the stream was still running when the time was up; nothing
 *              changed (the wait's demand for everything stays, as a
 *              timed-out sb_pread_timed's does).
 *   EINVAL     b is NULL, or timeout_ms < -1.
 *
 * Thread-safety: as sb_wait_end.
 */
int sb_wait_end_timed(sb_buffer *b, uint64_t *length, int timeout_ms);

/*
 * sb_cancel - stop the stream now.
 *
 * If the stream has not ended or failed yet, it fails with ECANCELED: every
 * reader waiting for bytes that have not arrived returns at once (ECANCELED,
 * or a short count), and the producer stops at its next step.  It does not
 * wait for a source callback in progress to return; it calls the source's
 * cancel, if it has one, so that the callback can.  Bytes that arrived
 * before stay readable.  On a stream that has already ended or failed it does
 * nothing.  Never blocks for long (it takes the internal lock briefly).
 * A NULL b is ignored.
 *
 * Thread-safety: safe from any thread at any time, any number of times.
 */
void sb_cancel(sb_buffer *b);

/*
 * sb_close - cancel, stop the producer, and free everything.
 *
 * Cancels the stream (see sb_cancel), waits for the producer thread to
 * return (which waits for a source read or next callback in progress to
 * return: at once for a source with a cancel callback, such as the one of
 * sb_open_fd), calls the source's close, closes
 * the spill file, which disappears with it, and frees the buffer.  A NULL b
 * is ignored.
 *
 * Thread-safety: NOT safe concurrently with any other call on b.  The caller
 * must make sure every other call on b has returned: cancel, join the
 * readers, then close.
 */
void sb_close(sb_buffer *b);

/*
 * sb_version - the library's version, "MAJOR.MINOR.PATCH".
 *
 * Compare with SB_VERSION to catch a program running against another
 * library than the header it was built with.  Never fails; thread-safe.
 */
const char *sb_version(void);

#ifdef __cplusplus
}
#endif

#endif /* STREAMBUFFER_H */
