/*
 * SPDX-License-Identifier: MIT
 *
 * spool.c - memory-then-file storage.  See spool.h for the contract.
 *
 * Why one fixed region rather than a growing buffer: readers copy published
 * bytes without a lock, so the memory under them must never be moved or
 * freed while the spool lives.  mmap reserves address space only; pages are
 * committed as the writer first touches them, so a 5 MiB limit costs a small
 * stream one page, not 5 MiB.
 *
 * Why huge pages past the first MiB: on a virtual machine the first touch
 * of a 4 KiB page costs 10-20 us, more than copying 4 KiB into it, so a
 * 256 MiB stream in small pages spends a second on faults; in 2 MiB pages,
 * 128 faults.  The first MiB stays small so that many small streams cost
 * what their bytes do.  The writer also faults the region in ahead of its
 * copy (sb__spool_prefault): one madvise per stretch instead of one trap
 * per page; in the first MiB only for bytes it already has (a source's
 * read into reserved room may bring far fewer than the room).
 *
 * Why nothing is copied on spill-over: the file holds only the bytes past
 * mem_cap, at file offset (off - mem_cap), so the memory part stays where it
 * is and readers of it are undisturbed.
 */
#include "spool.h"
#include "fault.h"
#include "lock.h"
#include "sig.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14; older headers lack it */
#endif

/* Advice is advice: a kernel without THP (EINVAL) still gets a region
   that works, in small pages. */
static void advise(unsigned char *p, size_t len, int advice)
{
    if (len > 0)
        (void)madvise(p, len, advice);
}

/*
 * Reserve map_len bytes of address space, placed so that offset SB__SMALL
 * is 2 MiB-aligned when huge extents are wanted: a huge page can only back
 * a whole aligned 2 MiB of one mapping, and mmap aligns to 4 KiB only.  So
 * reserve 2 MiB more and give back the ends.  NULL on failure.
 */
static unsigned char *reserve(size_t map_len, bool aligned)
{
    size_t extra = aligned ? SB__HUGE : 0;
    if (map_len > SIZE_MAX - extra)
        return NULL;
    void *m = sb__fault(SB__FAULT_ALLOC)
                  ? MAP_FAILED
                  : mmap(NULL, map_len + extra, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    unsigned char *raw = m;
    if (!aligned)
        return raw;
    /* The first address at or after raw whose offset SB__SMALL is
       aligned: less than 2 MiB on, so the tail given back is not empty. */
    uintptr_t at = ((uintptr_t)raw + SB__SMALL + SB__HUGE - 1)
                   / SB__HUGE * SB__HUGE - SB__SMALL;
    size_t head = (size_t)(at - (uintptr_t)raw);
    if (head > 0)
        munmap(raw, head);
    munmap(raw + head + map_len, extra - head);
    return raw + head;
}

int sb__spool_init(struct sb__spool *s, size_t mem_cap, const char *tmp_dir,
                   bool small_pages)
{
    size_t pg = sb__spool_page();
    size_t map_len = (mem_cap + pg - 1) / pg * pg;

    memset(s, 0, sizeof *s);
    s->fd = -1;
    s->populate = 1;
    if (map_len < mem_cap)
        return -ENOMEM; /* rounding overflowed */
    s->tmp_dir = sb__strdup(tmp_dir);
    if (s->tmp_dir == NULL)
        return -ENOMEM;
    size_t extents = !small_pages && mem_cap > SB__SMALL
                         ? (mem_cap - SB__SMALL) / SB__HUGE
                         : 0;
    unsigned char *mem = reserve(map_len, extents > 0);
    if (mem == NULL) {
        free(s->tmp_dir);
        s->tmp_dir = NULL;
        return -ENOMEM;
    }
    s->mem = mem;
    s->mem_cap = mem_cap;
    s->map_len = map_len;
    /* NOHUGEPAGE where small pages are promised: with transparent_hugepage
       set to "always" the kernel would otherwise back a small stream's
       first byte with 2 MiB. */
    if (extents == 0) {
        advise(mem, map_len, MADV_NOHUGEPAGE);
    } else {
        s->huge_lo = SB__SMALL;
        s->huge_hi = SB__SMALL + extents * SB__HUGE;
        advise(mem, s->huge_lo, MADV_NOHUGEPAGE);
        advise(mem + s->huge_lo, s->huge_hi - s->huge_lo, MADV_HUGEPAGE);
        advise(mem + s->huge_hi, map_len - s->huge_hi, MADV_NOHUGEPAGE);
    }
    return 0;
}

void sb__spool_prefault(struct sb__spool *s, uint64_t off, size_t len)
{
    if (!s->populate || s->map_len == 0 || off >= s->mem_cap)
        return;
    size_t end = len > s->mem_cap - (size_t)off ? s->mem_cap
                                                 : (size_t)off + len;
    if (end <= s->populated)
        return;
    /* From the first page not yet populated: a release (MADV_DONTNEED)
       only ever gives back pages below what was written, never these. */
    size_t pg = sb__spool_page();
    size_t from = s->populated > (size_t)off ? s->populated : (size_t)off;
    from -= from % pg;
    /* A huge extent at once: one fault-in of 2 MiB, not 512 of 4 KiB. */
    if (end > s->huge_lo && end <= s->huge_hi)
        end = s->huge_lo + (end - s->huge_lo + SB__HUGE - 1) / SB__HUGE * SB__HUGE;
    else
        end = (end + pg - 1) / pg * pg;
    if (end > s->map_len)
        end = s->map_len;
    if (madvise(s->mem + from, end - from, MADV_POPULATE_WRITE) != 0) {
        if (errno == EINVAL || errno == ENOSYS)
            s->populate = 0; /* an older kernel: the copy faults instead */
        return; /* ENOMEM, EFAULT...: the copy will tell */
    }
    s->populated = end;
}

uint64_t sb__spool_huge_pages(const struct sb__spool *s, uint64_t filled)
{
    /* No store has reached an extent: nothing to read smaps for (which
       walks the page tables of every mapping, a millisecond in a large
       process). */
    if (s->huge_hi == 0 || filled <= s->huge_lo)
        return 0;
    FILE *f = fopen("/proc/self/smaps", "re");
    if (f == NULL)
        return 0;
    uintptr_t lo = (uintptr_t)s->mem, hi = lo + s->map_len;
    uintptr_t start = 0, end = 0;
    unsigned long long kb, total = 0;
    char line[256];
    while (fgets(line, sizeof line, f) != NULL) {
        unsigned long a, z;
        if (sscanf(line, "%lx-%lx ", &a, &z) == 2) {
            if (a >= hi)
                break; /* in address order: the kernel need walk no more */
            start = a;
            end = z;
        } else if (start >= lo && end <= hi
                   && sscanf(line, "AnonHugePages: %llu kB", &kb) == 1) {
            total += kb;
        }
    }
    fclose(f);
    return total / (SB__HUGE >> 10);
}

void sb__spool_init_borrowed(struct sb__spool *s, const void *data, size_t len)
{
    memset(s, 0, sizeof *s);
    s->fd = -1;
    /* Only ever read through: the writer never runs on a borrowed spool. */
    s->mem = (unsigned char *)(uintptr_t)data;
    s->mem_cap = len;
}

/* A window that was unmapped because all its bytes were released: never
   mapped again. */
#define GONE ((unsigned char *)1)

static void unmap_windows(struct sb__spool *s)
{
    sb__leaf_ptr *dir = atomic_load(&s->dir);
    if (dir == NULL)
        return;
    for (size_t d = 0; d < SB__DIR; d++) {
        struct sb__leaf *leaf = atomic_load(&dir[d]);
        if (leaf == NULL)
            continue;
        for (size_t w = 0; w < SB__LEAF; w++) {
            unsigned char *p = atomic_load(&leaf->window[w]);
            if (p != NULL && p != GONE)
                munmap(p, SB__WINDOW);
        }
        free(leaf);
    }
    free((void *)dir);
    atomic_store(&s->dir, NULL);
}

void sb__spool_destroy(struct sb__spool *s)
{
    unmap_windows(s);
    if (s->map_len > 0)
        munmap(s->mem, s->map_len);
    if (s->fd >= 0)
        close(s->fd);
    free(s->tmp_dir);
    memset(s, 0, sizeof *s);
    s->fd = -1;
}

/*
 * An anonymous file in tmp_dir.  O_TMPFILE never gives the file a name;
 * where the filesystem lacks it, mkostemp's name lives only until the
 * unlink right after, so a crash at any later point leaves nothing behind.
 */
static int spill_create(const char *dir)
{
    int err = sb__fault(SB__FAULT_SPILL_CREATE);
    if (err != 0)
        return -err;
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0)
        return fd;
    if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
        return -errno;

    size_t len = strlen(dir) + sizeof "/.streambuffer-XXXXXX";
    char *path = sb__malloc(len);
    if (path == NULL)
        return -ENOMEM;
    snprintf(path, len, "%s/.streambuffer-XXXXXX", dir);
    fd = mkostemp(path, O_CLOEXEC);
    err = errno;
    if (fd >= 0 && unlink(path) != 0) {
        err = errno;
        close(fd);
        fd = -1;
    }
    free(path);
    return fd >= 0 ? fd : -err;
}

/* pwrite(2) that turns SIGXFSZ into a plain EFBIG (see sig.h). */
static ssize_t pwrite_no_sigxfsz(int fd, const void *p, size_t n, off_t off)
{
    struct sb__sig_guard g;
    sb__sig_hold(&g, SIGXFSZ);
    ssize_t w = pwrite(fd, p, n, off);
    int err = errno;
    sb__sig_release(&g, w < 0 && err == EFBIG);
    errno = err;
    return w;
}

/* pwrite len bytes at stream offset off (past mem_cap) to the spill
   file; *stored counts what landed.  0 or -errno. */
static int write_file(struct sb__spool *s, uint64_t off, const unsigned char *p,
                      size_t len, size_t *stored)
{
    uint64_t foff = off - s->mem_cap;
    while (len > 0) {
        if (foff > (uint64_t)INT64_MAX - len)
            return -EFBIG;
        int err = sb__fault(SB__FAULT_SPILL_WRITE);
        if (err != 0)
            return -err;
        ssize_t w = pwrite_no_sigxfsz(s->fd, p, len, (off_t)foff);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (w == 0)
            return -EIO;
        p += w;
        foff += (uint64_t)w;
        len -= (size_t)w;
        *stored += (size_t)w;
    }
    return 0;
}

int sb__spool_new_file(const struct sb__spool *s)
{
    return spill_create(s->tmp_dir);
}

void sb__spool_set_file(struct sb__spool *s, int fd)
{
    assert(s->fd < 0);
    s->fd = fd;
}

/* Fault in [off, off + len) of the memory region ahead of a store, by
   itself: a sparse writer's room is not past what was populated. */
static void prefault_range(struct sb__spool *s, uint64_t off, size_t len)
{
    if (!s->populate || s->map_len == 0 || off >= s->mem_cap || len == 0)
        return;
    size_t pg = sb__spool_page();
    size_t from = (size_t)off - (size_t)off % pg;
    size_t end = len > s->mem_cap - (size_t)off ? s->mem_cap : (size_t)off + len;
    end = (end + pg - 1) / pg * pg;
    if (end > s->map_len)
        end = s->map_len;
    (void)madvise(s->mem + from, end - from, MADV_POPULATE_WRITE);
}

unsigned char *sb__spool_reserve_at(struct sb__spool *s, uint64_t off,
                                    size_t len)
{
    if (off > s->mem_cap || len > s->mem_cap - (size_t)off)
        return NULL;
    prefault_range(s, off, len);
    return s->mem + off;
}

/* Copy what of [off, off + len) lies in the memory region, faulted in
   first (from what the one writer populated, or by itself for a sparse
   writer); returns how many bytes that was. */
static size_t store_head(struct sb__spool *s, uint64_t off, const void *data,
                         size_t len, bool sparse)
{
    if (off >= s->mem_cap)
        return 0;
    size_t head = s->mem_cap - (size_t)off;
    if (head > len)
        head = len;
    if (sparse)
        prefault_range(s, off, head);
    else
        sb__spool_prefault(s, off, head);
    memcpy(s->mem + off, data, head);
    return head;
}

int sb__spool_write_at(struct sb__spool *s, uint64_t off, const void *data,
                       size_t len)
{
    size_t stored = 0;
    size_t head = store_head(s, off, data, len, true);
    const unsigned char *p = (const unsigned char *)data + head;
    off += head;
    len -= head;
    if (len == 0)
        return 0;
    if (s->fd < 0)
        return -EBADF; /* the caller makes the file first */
    return write_file(s, off, p, len, &stored);
}

int sb__spool_write(struct sb__spool *s, uint64_t off, const void *data,
                    size_t len, size_t *stored)
{
    size_t head = store_head(s, off, data, len, false);
    const unsigned char *p = (const unsigned char *)data + head;
    off += head;
    len -= head;
    *stored = head;
    if (len == 0)
        return 0;
    if (s->fd < 0) {
        int fd = spill_create(s->tmp_dir);
        if (fd < 0)
            return fd;
        s->fd = fd;
    }
    return write_file(s, off, p, len, stored);
}

/* The slot of window number w, making its leaf (and the table) if need
   be.  NULL with errno ENOMEM. */
static _Atomic(unsigned char *) *window_slot(struct sb__spool *s, uint64_t w)
{
    if (w >= (uint64_t)SB__DIR * SB__LEAF) {
        errno = EFBIG;
        return NULL;
    }
    sb__leaf_ptr *dir = atomic_load_explicit(&s->dir, memory_order_acquire);
    if (dir == NULL) {
        /* Set once, by whichever thread gets there first. */
        sb__leaf_ptr *fresh = sb__calloc(SB__DIR, sizeof *fresh);
        if (fresh == NULL)
            return NULL;
        sb__leaf_ptr *none = NULL;
        if (atomic_compare_exchange_strong(&s->dir, &none, fresh))
            dir = fresh;
        else {
            free((void *)fresh);
            dir = none;
        }
    }
    sb__leaf_ptr *lp = &dir[w / SB__LEAF];
    struct sb__leaf *leaf = atomic_load_explicit(lp, memory_order_acquire);
    if (leaf == NULL) {
        struct sb__leaf *fresh = sb__calloc(1, sizeof *fresh);
        if (fresh == NULL)
            return NULL;
        struct sb__leaf *none = NULL;
        if (atomic_compare_exchange_strong(lp, &none, fresh))
            leaf = fresh;
        else {
            free(fresh);
            leaf = none;
        }
    }
    return &leaf->window[w % SB__LEAF];
}

/*
 * The spill file is written with pwrite(2), never through a mapping: a full
 * disk is then an ENOSPC from pwrite, not a SIGBUS on a store.  A mapping
 * is only read, and only where pwrite has written, so it never reaches
 * past the end of the file; reading a page the kernel must bring back from
 * disk can still raise SIGBUS if that I/O fails (see SB_MMAP_READS in the
 * header).
 */
static unsigned char *map_window(struct sb__spool *s, uint64_t w)
{
    _Atomic(unsigned char *) *slot = window_slot(s, w);
    if (slot == NULL)
        return NULL;
    unsigned char *p = atomic_load_explicit(slot, memory_order_acquire);
    if (p == GONE) {
        errno = EINVAL; /* released: a caller's bug */
        return NULL;
    }
    if (p != NULL)
        return p;
    int err = sb__fault(SB__FAULT_MAP);
    void *m = err != 0 ? MAP_FAILED
                       : mmap(NULL, SB__WINDOW, PROT_READ, MAP_SHARED, s->fd,
                              (off_t)(w << SB__WINDOW_SHIFT));
    if (m == MAP_FAILED) {
        errno = err != 0 ? err : errno;
        return NULL;
    }
    unsigned char *none = NULL;
    if (atomic_compare_exchange_strong(slot, &none, (unsigned char *)m))
        return m;
    munmap(m, SB__WINDOW);
    if (none == GONE) {
        errno = EINVAL;
        return NULL;
    }
    return none;
}

const unsigned char *sb__spool_at(struct sb__spool *s, uint64_t off,
                                  size_t *contig)
{
    if (off < s->mem_cap) {
        *contig = s->mem_cap - (size_t)off;
        return s->mem + off;
    }
    uint64_t foff = off - s->mem_cap;
    unsigned char *p = map_window(s, foff >> SB__WINDOW_SHIFT);
    if (p == NULL) {
        *contig = 0;
        return NULL;
    }
    size_t in = (size_t)(foff & (SB__WINDOW - 1));
    *contig = (size_t)SB__WINDOW - in;
    return p + in;
}

int sb__spool_read_mapped(struct sb__spool *s, void *buf, size_t n,
                          uint64_t off)
{
    unsigned char *d = buf;
    while (n > 0) {
        size_t contig;
        const unsigned char *p = sb__spool_at(s, off, &contig);
        if (p == NULL)
            return -errno;
        size_t k = contig < n ? contig : n;
        memcpy(d, p, k);
        d += k;
        off += k;
        n -= k;
    }
    return 0;
}

void sb__spool_unmap_below(struct sb__spool *s, uint64_t below)
{
    sb__leaf_ptr *dir = atomic_load_explicit(&s->dir, memory_order_acquire);
    if (below <= s->mem_cap)
        return;
    uint64_t whole = (below - s->mem_cap) >> SB__WINDOW_SHIFT;
    if (whole > (uint64_t)SB__DIR * SB__LEAF)
        whole = (uint64_t)SB__DIR * SB__LEAF;
    for (uint64_t w = s->unmapped; dir != NULL && w < whole; w++) {
        struct sb__leaf *leaf = atomic_load(&dir[w / SB__LEAF]);
        if (leaf == NULL)
            continue; /* nothing of it was ever mapped */
        unsigned char *p = atomic_exchange(&leaf->window[w % SB__LEAF], GONE);
        if (p != NULL && p != GONE)
            munmap(p, SB__WINDOW);
    }
    if (whole > s->unmapped)
        s->unmapped = whole;
}

size_t sb__spool_page(void)
{
    long page = sysconf(_SC_PAGESIZE);
    return page > 0 ? (size_t)page : 4096;
}

/*
 * Why holes rather than one file per segment (as Kafka keeps its log): a
 * hole frees the disk just as well on the file systems a spill lives on
 * (tmpfs, ext4, xfs, btrfs), keeps one fd whose lifetime is the buffer's
 * (a reader's pread can never meet a closed or reused fd), keeps file
 * offsets a plain subtraction, and lets a mapping of the file (zero-copy
 * views) stay valid: a punched page reads as zeros, it does not fault.
 * The price is a sparse file whose size only grows, which costs nothing.
 */
int sb__spool_release(struct sb__spool *s, uint64_t from, uint64_t to)
{
    int err = sb__fault(SB__FAULT_RELEASE);
    if (err != 0)
        return -err;
    if (from >= to)
        return 0;
    if (s->map_len > 0 && from < s->mem_cap) {
        /* Every byte of a page below to is released; past mem_cap the
           last, partial page holds no later byte either. */
        size_t hi = to >= s->mem_cap ? s->map_len : (size_t)to;
        hi -= hi % sb__spool_page();
        if (hi > from && madvise(s->mem + from, hi - (size_t)from,
                                 MADV_DONTNEED) != 0)
            return -errno;
    }
    if (to > s->mem_cap && s->fd >= 0) {
        uint64_t lo = from > s->mem_cap ? from - s->mem_cap : 0;
        uint64_t len = to - s->mem_cap - lo;
        if (fallocate(s->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                      (off_t)lo, (off_t)len) != 0)
            return -errno;
    }
    return 0;
}

int sb__spool_read_file(const struct sb__spool *s, void *buf, size_t n,
                        uint64_t off)
{
    unsigned char *p = buf;
    uint64_t foff = off - s->mem_cap;

    while (n > 0) {
        int err = sb__fault(SB__FAULT_SPILL_READ);
        if (err != 0)
            return -err;
        ssize_t r = pread(s->fd, p, n, (off_t)foff);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0)
            return -EIO; /* published bytes missing from the file */
        p += r;
        foff += (uint64_t)r;
        n -= (size_t)r;
    }
    return 0;
}
