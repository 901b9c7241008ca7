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
 * Why nothing is copied on spill-over: the file holds only the bytes past
 * mem_cap, at file offset (off - mem_cap), so the memory part stays where it
 * is and readers of it are undisturbed.
 */
#include "spool.h"
#include "fault.h"
#include "lock.h"

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

int sb__spool_init(struct sb__spool *s, size_t mem_cap, const char *tmp_dir)
{
    size_t pg = sb__spool_page();
    size_t map_len = (mem_cap + pg - 1) / pg * pg;

    memset(s, 0, sizeof *s);
    s->fd = -1;
    if (map_len < mem_cap)
        return -ENOMEM; /* rounding overflowed */
    s->tmp_dir = sb__strdup(tmp_dir);
    if (s->tmp_dir == NULL)
        return -ENOMEM;
    void *mem = sb__fault(SB__FAULT_ALLOC)
                    ? MAP_FAILED
                    : mmap(NULL, map_len, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mem == MAP_FAILED) {
        free(s->tmp_dir);
        s->tmp_dir = NULL;
        return -ENOMEM;
    }
    s->mem = mem;
    s->mem_cap = mem_cap;
    s->map_len = map_len;
    return 0;
}

void sb__spool_init_borrowed(struct sb__spool *s, const void *data, size_t len)
{
    memset(s, 0, sizeof *s);
    s->fd = -1;
    /* Only ever read through: the writer never runs on a borrowed spool. */
    s->mem = (unsigned char *)(uintptr_t)data;
    s->mem_cap = len;
}

void sb__spool_destroy(struct sb__spool *s)
{
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

/*
 * pwrite(2) that turns SIGXFSZ into a plain EFBIG.  A write past
 * RLIMIT_FSIZE raises SIGXFSZ in the writing thread, whose default action
 * kills the process; the writer may be the producer thread (which blocks
 * every signal) or any caller of sb_write.  So SIGXFSZ is blocked around the
 * write and, if this write raised it (it fails with EFBIG then), consumed,
 * unless one was already pending before, which stays for its owner.  A
 * thread that has it blocked already (the producer) pays one syscall.
 */
static ssize_t pwrite_no_sigxfsz(int fd, const void *p, size_t n, off_t off)
{
    sigset_t xfsz, old, pending;
    sigemptyset(&xfsz);
    sigaddset(&xfsz, SIGXFSZ);
    sb__check(pthread_sigmask(SIG_BLOCK, &xfsz, &old));
    bool was_blocked = sigismember(&old, SIGXFSZ) == 1;
    bool was_pending = false;
    if (was_blocked) {
        sigpending(&pending);
        was_pending = sigismember(&pending, SIGXFSZ) == 1;
    }
    ssize_t w = pwrite(fd, p, n, off);
    int err = errno;
    if (w < 0 && err == EFBIG && !was_pending) {
        const struct timespec now = { 0, 0 };
        sigtimedwait(&xfsz, NULL, &now);
    }
    if (!was_blocked)
        sb__check(pthread_sigmask(SIG_SETMASK, &old, NULL));
    errno = err;
    return w;
}

int sb__spool_write(struct sb__spool *s, uint64_t off, const void *data,
                    size_t len, size_t *stored)
{
    const unsigned char *p = data;

    *stored = 0;
    if (off < s->mem_cap) {
        size_t head = s->mem_cap - (size_t)off;
        if (head > len)
            head = len;
        memcpy(s->mem + off, p, head);
        p += head;
        off += head;
        len -= head;
        *stored = head;
    }
    if (len == 0)
        return 0;
    if (s->fd < 0) {
        int fd = spill_create(s->tmp_dir);
        if (fd < 0)
            return fd;
        s->fd = fd;
    }
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
