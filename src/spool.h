/*
 * SPDX-License-Identifier: MIT
 *
 * spool.h - memory-then-file storage for one stream.  Internal.
 *
 * Bytes [0, mem_cap) live in one memory region that is reserved once and
 * never moves; bytes [mem_cap, ...) live in a temporary file without a name
 * at file offset (off - mem_cap), created on the first write that needs it.
 *
 * The spool knows nothing of threads.  Its callers guarantee:
 *   - one writer at a time, appending in order (sb__spool_reserve and
 *     sb__spool_write);
 *   - readers only read bytes the writer has finished writing and has
 *     published with a release store that the reader observed with an
 *     acquire load.  That publication is also what makes s->fd, set by the
 *     writer before the bytes that live in the file, visible to readers.
 */
#ifndef SB_SPOOL_H
#define SB_SPOOL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

/*
 * The spill file is mapped read-only in windows of SB__WINDOW bytes, on the
 * first view or mapped read that needs one, and a window stays where it is
 * until the spool is destroyed (or, with release, until every byte in it
 * has been released).  The windows are found without a lock: a table of
 * SB__DIR leaves of SB__LEAF windows each (128 TiB of file), leaves and
 * windows installed with a compare-and-swap by whichever thread needs them
 * first (the loser unmaps its own).
 */
#define SB__WINDOW_SHIFT 23                 /* 8 MiB windows */
#define SB__WINDOW ((uint64_t)1 << SB__WINDOW_SHIFT)
#define SB__LEAF 4096
#define SB__DIR 4096

struct sb__leaf {
    _Atomic(unsigned char *) window[SB__LEAF];
};
typedef _Atomic(struct sb__leaf *) sb__leaf_ptr;

/*
 * Pages.  The first SB__SMALL bytes of a region are in small pages, so a
 * small stream commits only what it touches.  Past them, whole 2 MiB
 * extents [huge_lo, huge_hi) are 2 MiB-aligned in memory and advised
 * MADV_HUGEPAGE, unless the caller asked for small pages only; the tail
 * past the last whole extent stays small, so a huge page never commits
 * memory past mem_cap.
 */
#define SB__SMALL ((size_t)1 << 20)
#define SB__HUGE ((size_t)2 << 20)

struct sb__spool {
    unsigned char *mem;  /* [0, mem_cap); never moves */
    size_t mem_cap;      /* bytes the region holds: the memory/file boundary */
    size_t map_len;      /* bytes mapped (mem_cap rounded up); 0: borrowed */
    size_t huge_lo, huge_hi; /* the extents advised MADV_HUGEPAGE, if any */
    size_t populated;    /* the writer's: [0, populated) has been faulted in */
    int populate;        /* the writer's: 1 while MADV_POPULATE_WRITE works */
    int fd;              /* spill file, -1 until the first byte past mem_cap */
    char *tmp_dir;       /* where the spill file goes; owned */
    _Atomic(sb__leaf_ptr *) dir; /* SB__DIR leaves; NULL until a window */
    uint64_t unmapped;   /* windows [0, unmapped) are gone (the releaser's) */
};

/* Reserve the memory region, with huge pages past SB__SMALL unless
   small_pages.  Returns 0 or -errno (-ENOMEM). */
int sb__spool_init(struct sb__spool *s, size_t mem_cap, const char *tmp_dir,
                   bool small_pages);

/* How many 2 MiB pages back the memory region now, as the kernel counts
   them (/proc/self/smaps); 0 where that cannot be read, and without
   reading it while the bytes stored, [0, filled), reach no extent. */
uint64_t sb__spool_huge_pages(const struct sb__spool *s, uint64_t filled);

/* A spool over caller-owned memory that is already complete: no copy, no
   file.  Never fails. */
void sb__spool_init_borrowed(struct sb__spool *s, const void *data, size_t len);

/* Unmap the region and close the spill file. */
void sb__spool_destroy(struct sb__spool *s);

/*
 * The writer is about to store [off, off + len): fault in, in bulk and
 * ahead of the copy, what of it lies in the memory region and is not yet
 * committed (a whole huge extent at a time), so the copy does not stop on
 * a page fault per 4 KiB.  Where MADV_POPULATE_WRITE is missing (before
 * Linux 5.14) it does nothing and the copy faults as it goes.
 */
void sb__spool_prefault(struct sb__spool *s, uint64_t off, size_t len);

/*
 * The reserve half of the writer's zero-copy path: where the len bytes at
 * offset off may be written in place, when all of them fall in the memory
 * region; NULL when they do not (the writer then uses sb__spool_write).
 * Bytes written there are stored: nothing else needs to be done with them.
 * Past the small-page head the room is faulted in first
 * (sb__spool_prefault).  Within the head it is not: len is what the
 * writer may write, not what it will (a source's read(2) may return 10
 * bytes of a 64 KiB chunk, or none at the end), and a small stream must
 * commit only the pages its bytes touch, so the writer's own stores
 * fault them in, one page at a time, for at most SB__SMALL bytes.
 */
static inline unsigned char *sb__spool_reserve(struct sb__spool *s,
                                               uint64_t off, size_t len)
{
    if (off > s->mem_cap || len > s->mem_cap - (size_t)off)
        return NULL;
    if (off >= SB__SMALL && off + len > s->populated)
        sb__spool_prefault(s, off, len);
    return s->mem + off;
}

/*
 * Copy len bytes from data to offset off: the part below mem_cap into
 * memory, the rest into the spill file, which is created on demand.  data
 * must not point into the spool.  Stores *stored, the bytes from off that
 * are now in place, and returns 0 or -errno.  A failure never takes back
 * what was stored before it: the memory part always is, and of the file
 * part whatever pwrite(2) accepted, so *stored may be anything from the
 * memory part to len - 1.  A write that goes past RLIMIT_FSIZE fails with
 * EFBIG and never kills the process with SIGXFSZ, on whatever thread.
 */
int sb__spool_write(struct sb__spool *s, uint64_t off, const void *data,
                    size_t len, size_t *stored);

/*
 * Sparse writes, for a stream that several fetchers fill at once at their
 * own offsets (see parts.h).  The callers write disjoint ranges and make
 * the spill file, once, before any of them writes past mem_cap (under a
 * lock of theirs); these touch no field of the spool but the bytes.
 *
 * sb__spool_new_file, sb__spool_set_file: the spill file in two steps,
 *   so that it is created (I/O) outside the callers' lock and installed
 *   under it: a new spill file's descriptor, or -errno; then it is the
 *   spool's (which had none).
 * sb__spool_reserve_at: as sb__spool_reserve, but the room is faulted in
 *   by itself (not from what the one writer populated before).
 * sb__spool_write_at: store len bytes at off, memory then file; 0 or
 *   -errno (a failure may have stored a prefix, which the caller does not
 *   publish).
 */
int sb__spool_new_file(const struct sb__spool *s);
void sb__spool_set_file(struct sb__spool *s, int fd);
unsigned char *sb__spool_reserve_at(struct sb__spool *s, uint64_t off,
                                    size_t len);
int sb__spool_write_at(struct sb__spool *s, uint64_t off, const void *data,
                       size_t len);

/*
 * Give back the memory pages and spill-file space of bytes [from, to), which
 * nobody will read again: from and to are multiples of the page size (or to
 * is past mem_cap).  Memory goes back with madvise(MADV_DONTNEED), so the
 * pages no longer count in RSS and would read as zeros; the file gets a
 * hole (fallocate PUNCH_HOLE), so the disk space is free and the offsets of
 * later bytes stay where they are.  A borrowed region is left alone.
 * Returns 0 or -errno (EOPNOTSUPP: the file system cannot punch holes).
 */
int sb__spool_release(struct sb__spool *s, uint64_t from, uint64_t to);

/*
 * Where published byte off is in place, and how many bytes from there are
 * contiguous (to the end of the memory region, or of its spill window; the
 * caller clips to what is published).  Maps the window on first use.
 * Returns NULL with *contig 0 on failure: errno ENOMEM (no address space),
 * or the mmap(2) error.
 */
const unsigned char *sb__spool_at(struct sb__spool *s, uint64_t off,
                                  size_t *contig);

/* sb__spool_read, but the spilled part is copied from the mapping instead
   of pread(2).  Returns 0 or -errno (a window that cannot be mapped). */
int sb__spool_read_mapped(struct sb__spool *s, void *buf, size_t n,
                          uint64_t off);

/* Unmap the windows whose every byte lies below stream offset `below`
   (released bytes, which nobody may touch any more). */
void sb__spool_unmap_below(struct sb__spool *s, uint64_t below);

/* The page size the spool rounds to. */
size_t sb__spool_page(void);

/* pread(2) the spilled part [off, off + n) with off >= mem_cap.
   Returns 0 or -errno. */
int sb__spool_read_file(const struct sb__spool *s, void *buf, size_t n,
                        uint64_t off);

/*
 * Copy published bytes [off, off + n) into buf.  Inline because the
 * in-memory case is the library's hot path: a compare and a memcpy.
 * Returns 0 or -errno (from pread of the spill file only).
 */
static inline int sb__spool_read(const struct sb__spool *s, void *buf,
                                 size_t n, uint64_t off)
{
    if (off + n <= s->mem_cap) {
        memcpy(buf, s->mem + off, n);
        return 0;
    }
    size_t head = 0;
    if (off < s->mem_cap) {
        head = s->mem_cap - (size_t)off;
        memcpy(buf, s->mem + off, head);
    }
    return sb__spool_read_file(s, (unsigned char *)buf + head, n - head,
                               off + head);
}

#endif /* SB_SPOOL_H */
