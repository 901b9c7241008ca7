/*
 * SPDX-License-Identifier: MIT
 *
 * source.c - the ready-made file descriptor source behind sb_open_fd.
 *
 * It is an ordinary sb_source: read pulls, cancel wakes, close frees.
 *
 * Not blocking sb_close.  A producer blocked in read(2) on a quiet pipe or
 * socket would keep sb_close waiting for as long as the peer stays silent,
 * and poll(2) before a blocking read(2) is not enough: when something else
 * reads the same pipe, both may see it readable, the other takes the bytes,
 * and our read(2) blocks.  So every read that could wait is made
 * non-blocking for this call alone, without touching the flags of the
 * caller's open file description (which its other users share):
 *
 *   - sockets (stream, datagram, seqpacket): recv(2) with MSG_DONTWAIT;
 *   - pipes and FIFOs: a second open file description of the same pipe,
 *     opened O_NONBLOCK through /proc/self/fd, that only we use (a pipe has
 *     no file offset, so reading either description reads the same bytes);
 *   - an fd the caller opened O_NONBLOCK (a terminal, a character device):
 *     read(2) as it is.
 *
 * Each of those tries the read first and waits in poll(2) on the fd and on
 * an eventfd that cancel signals only when there is nothing to read.  That
 * order also makes a non-blocking FIFO without a writer an empty stream, as
 * read(2) says, where poll(2) would wait for a writer that may never come.
 * Regular files and block devices never wait that way and are read as they
 * are.  What is left, a blocking character device (a terminal) or a pipe
 * when /proc cannot be used, is polled before a blocking read(2): prompt
 * unless another reader takes the bytes in between.  Reopening a character
 * device through /proc would work for a terminal, but opening a device can
 * have side effects (a serial line, a tape), so it is not done.
 *
 * Not losing bytes of messages.  A read(2) shorter than the message at the
 * head of a datagram or seqpacket socket, an O_DIRECT pipe or a tun device
 * discards the rest of the message, so the bytes of the stream would depend
 * on how much the producer asks for.  Message-oriented sockets are asked
 * for the length of the next message first (MSG_PEEK | MSG_TRUNC).  A pipe
 * or FIFO is read at least PIPE_BUF bytes (the largest packet of an
 * O_DIRECT pipe) at a time: the read end of a packet pipe does not say that
 * it is one (only the write end has O_DIRECT).  A character device (a tun
 * device is one) is read at least FD_MIN_READ bytes (more than an IP
 * packet).  A message longer than the producer's room is read whole into a
 * staging buffer and handed out over the next calls.  Stream sockets and
 * files have no minimum, so near max_size the producer's smaller reads take
 * nothing past it from them; from a pipe they take less than PIPE_BUF.
 */
#include "internal.h"
#include "fault.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define FD_MIN_READ ((size_t)64 << 10)

enum fd_kind {
    FD_FILE,   /* regular file, block device: read(2) never waits long */
    FD_SOCKET, /* recv(2) with MSG_DONTWAIT */
    FD_OTHER,  /* pipe, FIFO, character device, anything else */
};

struct fd_source {
    int fd;            /* the caller's; never closed here */
    int rfd;           /* what is read: fd, or our own description of it */
    int wake_fd;       /* eventfd, readable once cancelled */
    enum fd_kind kind;
    bool try_first;    /* a read never blocks: read, poll only on EAGAIN */
    bool messages;     /* datagram or seqpacket socket */
    size_t min_read;   /* else: the smallest read that loses nothing */
    /* A message (or a minimum-size read) that did not fit the producer's
       room: bytes [stage_off, stage_len) are still to be handed out. */
    unsigned char *stage;
    size_t stage_cap, stage_off, stage_len;
};

/* Wait until rfd is readable (or hung up) or the source is cancelled. */
static int wait_readable(struct fd_source *s)
{
    struct pollfd p[2] = {
        { .fd = s->rfd, .events = POLLIN },
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

/* Make the staging buffer hold at least n bytes.  Returns 0 or -ENOMEM. */
static int stage_reserve(struct fd_source *s, size_t n)
{
    if (s->stage_cap >= n)
        return 0;
    unsigned char *p = sb__malloc(n);
    if (p == NULL)
        return -ENOMEM;
    free(s->stage);
    s->stage = p;
    s->stage_cap = n;
    return 0;
}

/* One attempt: read(2) or recv(2) up to cap bytes into buf.  Returns the
   bytes read, 0 at the end, or -errno (-EAGAIN: nothing there yet). */
static ssize_t read_some(struct fd_source *s, void *buf, size_t cap)
{
    ssize_t r;
    if (s->kind == FD_SOCKET)
        r = recv(s->rfd, buf, cap, MSG_DONTWAIT | (s->messages ? MSG_TRUNC : 0));
    else
        r = read(s->rfd, buf, cap);
    if (r < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    if (s->messages && (size_t)r > cap)
        return -EMSGSIZE; /* another reader took the message we measured */
    return r;
}

/* How many bytes the next read must ask for so that nothing is lost:
   the length of the next message, or min_read (0: no minimum). */
static ssize_t read_size(struct fd_source *s)
{
    if (!s->messages)
        return (ssize_t)s->min_read;
    ssize_t len = recv(s->rfd, NULL, 0, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT);
    if (len < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    return len;
}

/* One read of the fd into buf (cap bytes), through the staging buffer when
   the read must be larger than cap. */
static ssize_t read_once(struct fd_source *s, void *buf, size_t cap)
{
    ssize_t want = read_size(s);
    if (want < 0)
        return want;
    if ((size_t)want <= cap)
        return read_some(s, buf, cap);
    int rc = stage_reserve(s, (size_t)want);
    if (rc < 0)
        return rc;
    ssize_t r = read_some(s, s->stage, (size_t)want);
    if (r <= 0)
        return r;
    size_t n = (size_t)r < cap ? (size_t)r : cap;
    memcpy(buf, s->stage, n);
    s->stage_off = n;
    s->stage_len = (size_t)r;
    return (ssize_t)n;
}

static ssize_t fd_read(void *ctx, void *buf, size_t cap)
{
    struct fd_source *s = ctx;

    if (s->stage_off < s->stage_len) {
        size_t n = s->stage_len - s->stage_off;
        if (n > cap)
            n = cap;
        memcpy(buf, s->stage + s->stage_off, n);
        s->stage_off += n;
        return (ssize_t)n;
    }
    bool poll_first = s->kind != FD_FILE && !s->try_first;
    for (;;) {
        if (poll_first) {
            int rc = wait_readable(s);
            if (rc < 0)
                return rc;
        }
        ssize_t r = read_once(s, buf, cap);
        if (r != -EINTR && r != -EAGAIN)
            return r;
        /* EAGAIN: from our own non-blocking reads, or from an fd that the
           caller made non-blocking after sb_open_fd; poll from now on. */
        poll_first = r == -EAGAIN;
    }
}

static void fd_cancel(void *ctx)
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
    if (s->rfd != s->fd)
        close(s->rfd);
    close(s->wake_fd);
    free(s->stage);
    free(s);
}

/*
 * A non-blocking open file description of the pipe or FIFO fd, of our own.
 * Returns the new fd, -1 where that cannot be had (no /proc, a sandbox
 * that forbids it: the caller falls back on poll before read), or -errno
 * when the process is out of descriptors or memory.
 */
static int reopen_nonblocking(int fd)
{
    char path[sizeof "/proc/self/fd/" + 3 * sizeof(int)];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    int r = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (r >= 0)
        return r;
    if (errno == EMFILE || errno == ENFILE || errno == ENOMEM)
        return -errno;
    return -1;
}

/* What kind of fd this is and how to read it without blocking. */
static int classify(struct fd_source *s, const struct stat *st, int fl)
{
    s->rfd = s->fd;
    if (S_ISREG(st->st_mode) || S_ISBLK(st->st_mode)) {
        s->kind = FD_FILE;
        return 0;
    }
    if (S_ISSOCK(st->st_mode)) {
        int type = 0;
        socklen_t len = sizeof type;
        if (getsockopt(s->fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0)
            return -errno;
        s->kind = FD_SOCKET;
        s->try_first = true;
        s->messages = type != SOCK_STREAM;
        return 0;
    }
    s->kind = FD_OTHER;
    if (S_ISFIFO(st->st_mode))
        s->min_read = PIPE_BUF;
    else
        s->min_read = FD_MIN_READ;
    if (fl & O_NONBLOCK) {
        s->try_first = true;
        return 0;
    }
    if (S_ISFIFO(st->st_mode)) {
        int r = reopen_nonblocking(s->fd);
        if (r < -1)
            return r;
        if (r >= 0) {
            s->rfd = r;
            s->try_first = true;
        }
    }
    return 0;
}

int sb__fd_source(int fd, sb_source *src)
{
    struct stat st;
    if (fd < 0)
        return -EINVAL;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fstat(fd, &st) != 0)
        return -EBADF;
    if ((fl & O_ACCMODE) == O_WRONLY || (fl & O_PATH) != 0)
        return -EBADF; /* read(2) could only fail, later and less clearly */

    struct fd_source *s = sb__calloc(1, sizeof *s);
    if (s == NULL)
        return -ENOMEM;
    s->fd = fd;
    int rc = classify(s, &st, fl);
    /* The staging buffer for minimum-size reads now, so that a stream that
       fits in memory allocates nothing once it runs; a message socket's
       grows to its longest message when one does not fit. */
    if (rc == 0)
        rc = stage_reserve(s, s->min_read);
    if (rc < 0) {
        if (s->rfd != fd)
            close(s->rfd);
        free(s);
        return rc;
    }
    s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->wake_fd < 0) {
        int err = errno;
        if (s->rfd != fd)
            close(s->rfd);
        free(s->stage);
        free(s);
        return -err;
    }
    *src = (sb_source){
        .read = fd_read, .cancel = fd_cancel, .close = fd_close, .ctx = s,
    };
    return 0;
}
