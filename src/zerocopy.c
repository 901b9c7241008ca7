/*
 * SPDX-License-Identifier: MIT
 *
 * zerocopy.c - views of the stream in place, and sendfile.
 *
 * Both wait exactly as sb_pread does (sb__await) and then, instead of
 * copying, point into the spool (sb__spool_at: the memory region, or a
 * window of the mapped spill file) or hand the bytes to the kernel.  With
 * SB_RELEASE only a reader may do either: its floor keeps the bytes from
 * being given back while the caller or the kernel still reads them.
 */
#include "internal.h"
#include "sig.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static ssize_t fail(int err)
{
    errno = err;
    return -1;
}

static ssize_t view(sb_buffer *b, const sb_reader *r, uint64_t off, size_t n,
                    const void **ptr)
{
    if (ptr == NULL || (r == NULL && b != NULL && (b->flags & SB_RELEASE)))
        return fail(EINVAL);
    ssize_t got = sb__await(b, r, n, off, n, -1);
    if (got <= 0)
        return got < 0 ? fail((int)-got) : 0;
    size_t contig;
    const unsigned char *p = sb__spool_at(&b->spool, off, &contig);
    if (p == NULL)
        return -1; /* errno from the mapping */
    *ptr = p;
    return (ssize_t)((size_t)got < contig ? (size_t)got : contig);
}

SB_API ssize_t sb_view(sb_buffer *b, uint64_t off, size_t n, const void **ptr)
{
    return view(b, NULL, off, n, ptr);
}

SB_API ssize_t sb_reader_view(sb_reader *r, uint64_t off, size_t n,
                              const void **ptr)
{
    if (r == NULL)
        return fail(EINVAL);
    return view(sb__reader_buffer(r), r, off, n, ptr);
}

/* The most one sendfile(2) or write(2) moves (Linux caps them there). */
#define MAX_IO ((size_t)0x7ffff000)

/* The bounce buffer of the copy that stands in for sendfile(2). */
#define COPY_BUF ((size_t)128 << 10)

/*
 * Write [off, off + n), all published, to out: write(2) (send(2) without
 * SIGPIPE for a socket) from the memory part, sendfile(2) from the spill
 * file.  sendfile(2) refuses some outputs that write(2) takes (a file
 * opened with O_APPEND: EINVAL; a kernel or file system without it:
 * ENOSYS); for those the spilled part is copied, pread(2) into a bounce
 * buffer and write(2), so that every fd write(2) works on works here.  Not
 * from the spill file's mapping: a failed read-back must stay EIO, not
 * become a SIGBUS.  Stops at the first call that moves nothing or fails;
 * returns the bytes moved, or -errno when none moved.
 */
static ssize_t send_out(sb_buffer *b, int out, uint64_t off, size_t n)
{
    struct stat st;
    if (fstat(out, &st) != 0)
        return -errno;
    bool sock = S_ISSOCK(st.st_mode);
    const struct sb__spool *s = &b->spool;
    unsigned char *bounce = NULL; /* non-NULL: copy instead of sendfile */
    struct sb__sig_guard g;
    sb__sig_hold(&g, SIGPIPE);
    size_t done = 0;
    int err = 0;
    while (done < n) {
        uint64_t at = off + done;
        size_t k = n - done < MAX_IO ? n - done : MAX_IO;
        ssize_t w;
        if (at < s->mem_cap) {
            if (k > s->mem_cap - at)
                k = (size_t)(s->mem_cap - at);
            w = sock ? send(out, s->mem + at, k, MSG_NOSIGNAL)
                     : write(out, s->mem + at, k);
        } else if (bounce == NULL) {
            off_t foff = (off_t)(at - s->mem_cap);
            w = sendfile(out, s->fd, &foff, k);
            if (w < 0 && (errno == EINVAL || errno == ENOSYS)) {
                if ((bounce = malloc(COPY_BUF)) == NULL) {
                    err = ENOMEM;
                    break;
                }
                continue; /* the same bytes, by copy */
            }
        } else {
            if (k > COPY_BUF)
                k = COPY_BUF;
            int rerr = sb__spool_read_file(s, bounce, k, at);
            if (rerr != 0) {
                err = -rerr;
                break;
            }
            w = write(out, bounce, k);
        }
        if (w < 0 && errno == EINTR && done == 0)
            continue;
        if (w < 0) {
            err = errno;
            break;
        }
        if (w == 0) {
            err = EIO; /* sendfile found the spill file short: a bug */
            break;
        }
        done += (size_t)w;
    }
    sb__sig_release(&g, err == EPIPE);
    free(bounce);
    if (done > 0)
        return (ssize_t)done;
    return -err;
}

static ssize_t send_range(sb_buffer *b, const sb_reader *r, int out,
                          uint64_t off, size_t n)
{
    if (out < 0 || (r == NULL && b != NULL && (b->flags & SB_RELEASE)))
        return fail(EINVAL);
    ssize_t got = sb__await(b, r, n, off, n, -1);
    if (got > 0) {
        got = send_out(b, out, off, (size_t)got);
        /* out_fd took nothing: the caller is to wait for out_fd, not for
           the stream, so a non-blocking reader armed earlier for another
           range is disarmed and sb_reader_armed reads 0 (see "Event
           loops" in the header). */
        struct sb__armed *a = r != NULL ? sb__reader_arm(r) : NULL;
        if (got == -EAGAIN && a != NULL)
            sb__wait_disarm(&b->wait, a);
    }
    return got < 0 ? fail((int)-got) : got;
}

SB_API ssize_t sb_sendfile(sb_buffer *b, int out_fd, uint64_t off, size_t n)
{
    return send_range(b, NULL, out_fd, off, n);
}

SB_API ssize_t sb_reader_sendfile(sb_reader *r, int out_fd, uint64_t off,
                                  size_t n)
{
    if (r == NULL)
        return fail(EINVAL);
    return send_range(sb__reader_buffer(r), r, out_fd, off, n);
}
