/*
 * source.c - the ready-made file descriptor source behind sb_open_fd.
 *
 * A producer blocked in read(2) on a quiet pipe or socket would keep
 * sb_close waiting for as long as the peer stays silent.  So where read(2)
 * can block, the source first waits in poll(2) on the fd and on an eventfd
 * that sb_cancel signals; the producer then returns at once.  Regular files
 * and block devices never block that way and skip the extra poll.
 */
#include "internal.h"
#include "fault.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

struct fd_source {
    int fd;         /* the caller's; never closed here */
    int wake_fd;    /* eventfd, readable once cancelled */
    bool pollable;  /* read(2) may block: wait in poll(2) first */
};

/* Wait until fd is readable (or hung up) or the source is interrupted. */
static int wait_readable(struct fd_source *s)
{
    struct pollfd p[2] = {
        { .fd = s->fd, .events = POLLIN },
        { .fd = s->wake_fd, .events = POLLIN },
    };
    for (;;) {
        int n = poll(p, 2, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (p[1].revents != 0)
            return -ECANCELED;
        if (p[0].revents & POLLNVAL)
            return -EBADF;
        return 0;
    }
}

static ssize_t fd_read(void *ctx, void *buf, size_t cap)
{
    struct fd_source *s = ctx;
    for (;;) {
        if (s->pollable) {
            int rc = wait_readable(s);
            if (rc < 0)
                return rc;
        }
        ssize_t r = read(s->fd, buf, cap);
        if (r >= 0)
            return r;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            s->pollable = true; /* a non-blocking fd: poll from now on */
            continue;
        }
        return -errno;
    }
}

static void fd_interrupt(void *ctx)
{
    struct fd_source *s = ctx;
    uint64_t one = 1;
    /* Cannot fail short of a bug: the counter is far from overflow. */
    ssize_t w = write(s->wake_fd, &one, sizeof one);
    (void)w;
}

static void fd_close(void *ctx)
{
    struct fd_source *s = ctx;
    close(s->wake_fd);
    free(s);
}

int sb__fd_source(int fd, sb_source *src, void (**interrupt)(void *ctx))
{
    struct stat st;
    if (fd < 0)
        return -EINVAL;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fstat(fd, &st) != 0)
        return -EBADF;
    if ((fl & O_ACCMODE) == O_WRONLY || (fl & O_PATH) != 0)
        return -EBADF; /* read(2) could only fail, later and less clearly */

    struct fd_source *s = sb__malloc(sizeof *s);
    if (s == NULL)
        return -ENOMEM;
    s->fd = fd;
    s->pollable = !S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode);
    s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->wake_fd < 0) {
        int err = errno;
        free(s);
        return -err;
    }
    *src = (sb_source){ .read = fd_read, .close = fd_close, .ctx = s };
    *interrupt = fd_interrupt;
    return 0;
}
