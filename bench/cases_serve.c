/* SPDX-License-Identifier: MIT */
/*
 * cases_serve.c - case 13: build/examples/serve under many clients.
 *
 * Ours: the serve example (--serve PATH) run as a child process with
 * -m --mem-limit, so that the stream spills to a file as a large live one
 * would.  N clients (--clients, default 10,000) connect to it first, each
 * asking GET / with Range: bytes=A-B for 256 KiB at a pseudo-random offset
 * of the --size stream (splitmix64, a fixed seed: the same ranges every run
 * and on both sides).  Then the clock starts and a feeder thread writes the
 * stream into serve's standard input in 1 MiB writes: every response is
 * served while the stream is live (206, Content-Length or chunked).  One
 * epoll loop in this thread reads every response incrementally, checks its
 * head and compares every body byte with the stream as it arrives; the
 * clock stops when the last body is whole.
 *
 * The baseline is the least a server can do with the same clients: a forked
 * child of this process (no exec, no library) that has the whole stream in a
 * page-cached temp file already, accepts and reads every request, holds the
 * answers until the parent's "go" (when the clock starts), then writes each
 * a fixed head and its body with sendfile(2): one thread, one epoll loop,
 * non-blocking sockets.  Same connect procedure, same client loop.
 *
 * Rows: body bytes delivered per second (N x 256 KiB / seconds), ours vs
 * base; and peak RSS per client of each server: its VmHWM, read from
 * /proc/PID/status before the last client closes, minus its VmRSS once it
 * listens (the peak is reset to that point through /proc/PID/clear_refs,
 * since a forked child starts with its parent's), over N.  Both for
 * information.  A child that outlives this process gets SIGTERM
 * (PR_SET_PDEATHSIG), so a failed run leaves no server behind.
 */
#include "bench.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define SV_RANGE (256 * KiB)     /* each client's body */
#define SV_FEED MiB              /* the feeder's writes */
#define SV_INFLIGHT 256          /* connects in flight at most */
#define SV_LINE 512              /* the longest head or chunk-size line */
#define SV_READ (256 * KiB)      /* one read of a response */
#define SV_EVENTS 512
#define SV_STALL 30.0            /* seconds without an event: give up */
#define SV_SEED 0x5e12eull
#define SV_FD_SLACK 64

/* epoll data of the descriptors that are not clients. */
#define MARK_ERR UINT32_MAX        /* serve's standard error */
#define MARK_LISTEN UINT32_MAX     /* the baseline's listener (its own loop) */
#define MARK_GO (UINT32_MAX - 1)   /* the baseline's go pipe */

enum sv_side { SV_OURS, SV_BASE };
static const char *const sv_side_name[] = { "serve", "base" };

/* ---- /proc/PID ----------------------------------------------------------------------- */

/* A field of /proc/PID/status, in KiB; -1 if missing. */
static long proc_kb(pid_t pid, const char *field)
{
    char path[64], line[256];
    long v = -1;
    size_t flen = strlen(field);
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, field, flen) == 0) {
            v = strtol(line + flen, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

/* Reset pid's VmHWM to its VmRSS now, then return that VmRSS. */
static long reset_peak(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/clear_refs", (int)pid);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, "5", 1) != 1)
        die_errno("serve: reset the peak RSS of pid %d (%s)", (int)pid, path);
    close(fd);
    long kb = proc_kb(pid, "VmRSS:");
    if (kb < 0)
        die("serve: no VmRSS for pid %d", (int)pid);
    return kb;
}

/* Open descriptors of this process (for the leak check). */
static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    if (d == NULL)
        die_errno("/proc/self/fd");
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the directory's own */
}

/* ---- the case's state -------------------------------------------------------------- */

/* What a client is waiting for. */
enum cstate {
    C_CONNECT, /* the connect to complete */
    C_REQUEST, /* to send (the rest of) its request */
    C_STATUS,  /* the status line */
    C_HEADER,  /* header lines, up to the empty one */
    C_BODY,    /* Content-Length body bytes */
    C_CSIZE,   /* a chunk-size line */
    C_CDATA,   /* chunk data */
    C_CCRLF,   /* the CRLF after chunk data */
    C_TRAILER, /* trailer lines after the last chunk, up to the empty one */
    C_DONE,
};

struct client {
    int fd;
    uint8_t state;
    bool chunked, has_len, has_range;
    uint16_t line_len;   /* bytes in line[] */
    uint16_t req_off;    /* request bytes sent */
    uint64_t got;        /* body bytes checked */
    uint64_t left;       /* chunk bytes still to come */
    char line[SV_LINE];
};

struct serve_case {
    int n;                    /* clients */
    uint64_t len;             /* the stream's length */
    const unsigned char *data;
    uint64_t *offs;           /* client i's range: [offs[i], offs[i] + SV_RANGE) */
    struct client *cl;
    int file_fd;              /* the baseline's copy of the stream */
    char serve_bin[4096];
    unsigned char *rbuf;      /* one read of a response */
};

/* One measurement's server, as the client loop sees it. */
struct server {
    enum sv_side side;
    pid_t pid;
    uint16_t port;
    int err_fd;               /* serve's standard error, or -1 */
    int in_fd;                /* serve's standard input (the feeder closes it) */
    int go_fd;                /* the baseline's go pipe */
    pthread_t feeder;
    bool feeding;
    int feed_err;             /* errno of a failed feed, or 0 */
    double fed_at;            /* when the feeder had written it all */
    long hwm_kb;              /* VmHWM before the last client closed */
    double connect_s;         /* the connect phase, untimed */
    double t0;                /* the clock's start */
};

/* ---- the client loop ------------------------------------------------------------------- */

static NORETURN void client_fail(const struct serve_case *x, const struct server *s,
                                 int i, const char *what)
{
    die("serve (%s): client %d of %d, bytes %" PRIu64 "-%" PRIu64 ", body byte %"
        PRIu64 ": %s", sv_side_name[s->side], i, x->n, x->offs[i],
        x->offs[i] + SV_RANGE - 1, x->cl[i].got, what);
}

static void ep_ctl(int ep, int op, int fd, uint32_t events, uint32_t data)
{
    struct epoll_event e = { .events = events, .data.u32 = data };
    if (epoll_ctl(ep, op, fd, &e) != 0)
        die_errno("serve: epoll_ctl");
}

static int request_text(const struct serve_case *x, int i, char *buf, size_t cap)
{
    return snprintf(buf, cap,
                    "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    "Range: bytes=%" PRIu64 "-%" PRIu64 "\r\n\r\n",
                    x->offs[i], x->offs[i] + SV_RANGE - 1);
}

static void client_connect(struct serve_case *x, const struct server *s, int ep,
                           int i)
{
    struct client *c = &x->cl[i];
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(s->port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    *c = (struct client){ .state = C_CONNECT };
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        die_errno("serve: socket for client %d", i);
    if (connect(c->fd, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS)
        die_errno("serve (%s): connect client %d of %d", sv_side_name[s->side],
                  i, x->n);
    ep_ctl(ep, EPOLL_CTL_ADD, c->fd, EPOLLOUT, (uint32_t)i);
}

/* Send (the rest of) client i's request; true once it is all out. */
static bool client_request(struct serve_case *x, const struct server *s, int i)
{
    struct client *c = &x->cl[i];
    char req[160];
    int len = request_text(x, i, req, sizeof req);
    while (c->req_off < len) {
        ssize_t w = send(c->fd, req + c->req_off, (size_t)(len - c->req_off),
                         MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN)
            return false;
        if (w < 0)
            client_fail(x, s, i, strerror(errno));
        c->req_off = (uint16_t)(c->req_off + w);
    }
    return true;
}

/* Compare n body bytes at p with the stream. */
static void check_body(const struct serve_case *x, const struct server *s, int i,
                       const unsigned char *p, size_t n)
{
    struct client *c = &x->cl[i];
    if (c->got + n > SV_RANGE)
        client_fail(x, s, i, "more body bytes than asked for");
    const unsigned char *want = x->data + x->offs[i] + c->got;
    if (memcmp(p, want, n) != 0) {
        size_t k = 0;
        while (p[k] == want[k])
            k++;
        c->got += k;
        client_fail(x, s, i, "wrong body byte");
    }
    c->got += n;
}

/* Client i's head line (NUL-terminated, CRLF stripped). */
static void head_line(const struct serve_case *x, const struct server *s, int i,
                      char *line)
{
    struct client *c = &x->cl[i];
    char msg[SV_LINE + 64];
    if (c->state == C_STATUS) {
        if (strncmp(line, "HTTP/1.1 206 ", 13) != 0) {
            snprintf(msg, sizeof msg, "status line \"%s\", not 206", line);
            client_fail(x, s, i, msg);
        }
        c->state = C_HEADER;
        return;
    }
    if (line[0] == '\0') { /* the end of the head */
        if (!c->has_range)
            client_fail(x, s, i, "no Content-Range");
        if (c->chunked == c->has_len)
            client_fail(x, s, i, "neither Content-Length nor chunked, or both");
        c->state = c->chunked ? C_CSIZE : C_BODY;
        return;
    }
    char *colon = strchr(line, ':');
    if (colon == NULL) {
        snprintf(msg, sizeof msg, "bad header line \"%s\"", line);
        client_fail(x, s, i, msg);
    }
    *colon = '\0';
    char *v = colon + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    if (strcasecmp(line, "Content-Range") == 0) {
        char want[96], len[32];
        int k = snprintf(want, sizeof want, "bytes %" PRIu64 "-%" PRIu64 "/",
                         x->offs[i], x->offs[i] + SV_RANGE - 1);
        snprintf(len, sizeof len, "%" PRIu64, x->len);
        if (strncmp(v, want, (size_t)k) != 0
            || (strcmp(v + k, "*") != 0 && strcmp(v + k, len) != 0)) {
            snprintf(msg, sizeof msg, "Content-Range \"%s\"", v);
            client_fail(x, s, i, msg);
        }
        c->has_range = true;
    } else if (strcasecmp(line, "Content-Length") == 0) {
        char *end;
        unsigned long long n = strtoull(v, &end, 10);
        if (end == v || *end != '\0' || n != SV_RANGE) {
            snprintf(msg, sizeof msg, "Content-Length \"%s\"", v);
            client_fail(x, s, i, msg);
        }
        c->has_len = true;
    } else if (strcasecmp(line, "Transfer-Encoding") == 0) {
        if (strcasecmp(v, "chunked") != 0) {
            snprintf(msg, sizeof msg, "Transfer-Encoding \"%s\"", v);
            client_fail(x, s, i, msg);
        }
        c->chunked = true;
    }
}

/* A chunk-size line, the CRLF after a chunk, or a trailer line. */
static void chunk_line(const struct serve_case *x, const struct server *s, int i,
                       const char *line)
{
    struct client *c = &x->cl[i];
    char msg[SV_LINE + 64];
    if (c->state == C_CCRLF) {
        if (line[0] != '\0')
            client_fail(x, s, i, "no CRLF after chunk data");
        c->state = C_CSIZE;
        return;
    }
    if (c->state == C_TRAILER) {
        if (line[0] != '\0')
            return; /* a trailer field: nothing to check */
        if (c->got != SV_RANGE)
            client_fail(x, s, i, "short body: the last chunk came early");
        c->state = C_DONE;
        return;
    }
    char *end;
    unsigned long long n = strtoull(line, &end, 16);
    if (end == line || (*end != '\0' && *end != ';' && *end != ' ')) {
        snprintf(msg, sizeof msg, "bad chunk-size line \"%s\"", line);
        client_fail(x, s, i, msg);
    }
    if (n == 0) {
        c->state = C_TRAILER;
    } else {
        if (c->got + n > SV_RANGE)
            client_fail(x, s, i, "a chunk past the end of the range");
        c->left = n;
        c->state = C_CDATA;
    }
}

/* Take bytes of a line into c->line; returns the bytes used from p and sets
   *whole once the line (through its LF) is in, NUL-terminated, CRLF gone. */
static size_t take_line(const struct serve_case *x, const struct server *s, int i,
                        const unsigned char *p, size_t n, bool *whole)
{
    struct client *c = &x->cl[i];
    const unsigned char *lf = memchr(p, '\n', n);
    size_t k = lf != NULL ? (size_t)(lf - p) + 1 : n;
    if (c->line_len + k >= SV_LINE)
        client_fail(x, s, i, "a head or chunk line too long");
    memcpy(c->line + c->line_len, p, k);
    c->line_len = (uint16_t)(c->line_len + k);
    *whole = lf != NULL;
    if (*whole) {
        size_t e = c->line_len - 1; /* the LF */
        if (e == 0 || c->line[e - 1] != '\r')
            client_fail(x, s, i, "a line not ended by CRLF");
        c->line[e - 1] = '\0';
        c->line_len = 0;
    }
    return k;
}

/* n response bytes for client i. */
static void client_bytes(const struct serve_case *x, const struct server *s, int i,
                         const unsigned char *p, size_t n)
{
    struct client *c = &x->cl[i];
    while (n > 0) {
        size_t k;
        bool whole;
        switch (c->state) {
        case C_STATUS:
        case C_HEADER:
            k = take_line(x, s, i, p, n, &whole);
            if (whole)
                head_line(x, s, i, c->line);
            break;
        case C_CSIZE:
        case C_CCRLF:
        case C_TRAILER:
            k = take_line(x, s, i, p, n, &whole);
            if (whole)
                chunk_line(x, s, i, c->line);
            break;
        case C_BODY:
            k = n < SV_RANGE - c->got ? n : (size_t)(SV_RANGE - c->got);
            check_body(x, s, i, p, k);
            if (c->got == SV_RANGE)
                c->state = C_DONE;
            break;
        case C_CDATA:
            k = n < c->left ? n : (size_t)c->left;
            check_body(x, s, i, p, k);
            c->left -= k;
            if (c->left == 0)
                c->state = C_CCRLF;
            break;
        case C_DONE:
            client_fail(x, s, i, "bytes after the end of the response");
        default:
            client_fail(x, s, i, "response bytes before the request was sent");
        }
        p += k;
        n -= k;
    }
}

/* Copy what serve printed on standard error to ours; false at its end. */
static bool forward_err(int fd)
{
    char buf[4096];
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r > 0) {
            fwrite(buf, 1, (size_t)r, stderr);
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        return r < 0 && errno == EAGAIN;
    }
}

static void start_server(struct serve_case *x, struct server *s);

/*
 * Connect every client (at most SV_INFLIGHT connects in flight), send each
 * its request, start the server's stream (the clock starts), then read and
 * check every response.  Returns the seconds from the start to the last
 * body byte.  Before the last client closes, s->hwm_kb gets the server's
 * VmHWM.
 */
static double run_clients(struct serve_case *x, struct server *s)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die_errno("serve: epoll_create1");
    if (s->err_fd >= 0)
        ep_ctl(ep, EPOLL_CTL_ADD, s->err_fd, EPOLLIN, MARK_ERR);

    struct epoll_event evs[SV_EVENTS];
    int next = 0, inflight = 0, sent = 0, done = 0;
    bool started = false;
    double t_conn = now(), t1 = 0, last_event = now();
    while (done < x->n) {
        while (next < x->n && inflight < SV_INFLIGHT) {
            client_connect(x, s, ep, next++);
            inflight++;
        }
        if (!started && sent == x->n) {
            s->connect_s = now() - t_conn;
            s->t0 = now();
            start_server(x, s);
            started = true;
        }
        int k = epoll_wait(ep, evs, SV_EVENTS, 1000);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            die_errno("serve: epoll_wait");
        if (k == 0) {
            if (now() - last_event > SV_STALL)
                die("serve (%s): no progress for %.0f s: %d of %d clients"
                    " connected, %d done", sv_side_name[s->side], SV_STALL, sent,
                    x->n, done);
            continue;
        }
        last_event = now();
        for (int e = 0; e < k; e++) {
            uint32_t ev = evs[e].events;
            uint32_t id = evs[e].data.u32;
            if (id == MARK_ERR) {
                if (!forward_err(s->err_fd))
                    ep_ctl(ep, EPOLL_CTL_DEL, s->err_fd, 0, 0);
                continue;
            }
            int i = (int)id;
            struct client *c = &x->cl[i];
            if (c->state == C_CONNECT) {
                int err = 0;
                socklen_t el = sizeof err;
                if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0)
                    err = errno;
                if (err != 0)
                    client_fail(x, s, i, strerror(err));
                inflight--;
                c->state = C_REQUEST;
            }
            if (c->state == C_REQUEST) {
                if (!client_request(x, s, i))
                    continue; /* EPOLLOUT again */
                c->state = C_STATUS;
                sent++;
                ep_ctl(ep, EPOLL_CTL_MOD, c->fd, EPOLLIN, (uint32_t)i);
                continue;
            }
            if (!(ev & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                continue;
            ssize_t r = read(c->fd, x->rbuf, SV_READ);
            if (r < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            if (r < 0)
                client_fail(x, s, i, strerror(errno));
            if (r == 0)
                client_fail(x, s, i, "the server closed the connection early");
            client_bytes(x, s, i, x->rbuf, (size_t)r);
            if (c->state != C_DONE)
                continue;
            if (++done == x->n) {
                t1 = now();
                /* The baseline exits once every client has closed. */
                s->hwm_kb = proc_kb(s->pid, "VmHWM:");
            }
            close(c->fd);
            c->fd = -1;
        }
    }
    close(ep);
    return t1 - s->t0;
}

/* ---- ours: the serve example ------------------------------------------------------------ */

struct feed {
    struct server *s;
    const unsigned char *data;
    uint64_t len;
};
static struct feed g_feed;

static void *feeder_main(void *arg)
{
    struct feed *f = arg;
    uint64_t off = 0;
    while (off < f->len) {
        size_t n = f->len - off < SV_FEED ? (size_t)(f->len - off) : SV_FEED;
        ssize_t w = write(f->s->in_fd, f->data + off, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            f->s->feed_err = w < 0 ? errno : EIO;
            break;
        }
        off += (uint64_t)w;
    }
    f->s->fed_at = now();
    close(f->s->in_fd);
    f->s->in_fd = -1;
    return NULL;
}

/* At the start of the clock: ours starts the stream, the baseline goes. */
static void start_server(struct serve_case *x, struct server *s)
{
    if (s->side == SV_BASE) {
        if (write(s->go_fd, "g", 1) != 1)
            die_errno("serve: go");
        return;
    }
    g_feed = (struct feed){ .s = s, .data = x->data, .len = x->len };
    int rc = pthread_create(&s->feeder, NULL, feeder_main, &g_feed);
    if (rc != 0) {
        errno = rc;
        die_errno("serve: pthread_create");
    }
    s->feeding = true;
}

/* Read serve's standard error up to its listening line; the port. */
static uint16_t await_listening(const struct serve_case *x, int fd, pid_t pid)
{
    char buf[1024];
    size_t len = 0;
    double t0 = now();
    for (;;) {
        buf[len] = '\0';
        char *nl;
        while ((nl = strchr(buf, '\n')) != NULL) {
            *nl = '\0';
            unsigned port;
            char tail;
            if (sscanf(buf, "serve: listening on 127.0.0.1:%u%c", &port, &tail) == 1
                && port > 0 && port < 65536)
                return (uint16_t)port;
            fprintf(stderr, "%s\n", buf); /* anything else it says */
            len -= (size_t)(nl + 1 - buf);
            memmove(buf, nl + 1, len + 1);
        }
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int left_ms = (int)((10.0 - (now() - t0)) * 1000);
        int k = left_ms > 0 ? poll(&p, 1, left_ms) : 0;
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            die("serve: %s (pid %d) did not say it listens within 10 s",
                x->serve_bin, (int)pid);
        ssize_t r = read(fd, buf + len, sizeof buf - 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            int status = 0;
            waitpid(pid, &status, 0);
            die("serve: %s exited before it listened (status %#x)", x->serve_bin,
                (unsigned)status);
        }
        len += (size_t)r;
        if (len == sizeof buf - 1 && strchr(buf, '\n') == NULL)
            len = 0; /* a line too long to be the one */
    }
}

/* Stop a server child: SIGTERM, and it must exit 0. */
static void stop_child(const struct server *s)
{
    int status;
    if (kill(s->pid, SIGTERM) != 0)
        die_errno("serve: kill %d", (int)s->pid);
    while (waitpid(s->pid, &status, 0) < 0)
        if (errno != EINTR)
            die_errno("serve: waitpid %d", (int)s->pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        if (WIFSIGNALED(status))
            die("serve (%s): the server was killed by signal %d",
                sv_side_name[s->side], WTERMSIG(status));
        die("serve (%s): the server exited with status %d",
            sv_side_name[s->side], WEXITSTATUS(status));
    }
}

/* In a child: die with the parent (the bench failing leaves no server). */
static void die_with_parent(pid_t parent)
{
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent)
        _exit(1);
}

/* One measurement of serve; its bytes per second, *rss its peak per client. */
static double ours_once(struct serve_case *x, double *rss)
{
    int in[2], err[2];
    char mem[32];
    snprintf(mem, sizeof mem, "%zu", opt.mem_limit);
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0)
        die_errno("serve: pipe");
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        die_errno("serve: fork");
    if (pid == 0) {
        die_with_parent(parent);
        if (dup2(in[0], STDIN_FILENO) < 0 || dup2(err[1], STDERR_FILENO) < 0)
            _exit(127);
        char *argv[] = { x->serve_bin, "-m", mem, NULL };
        execv(x->serve_bin, argv);
        fprintf(stderr, "serve: exec %s: %s\n", x->serve_bin, strerror(errno));
        _exit(127);
    }
    close(in[0]);
    close(err[1]);
    struct server s = { .side = SV_OURS, .pid = pid, .in_fd = in[1],
                        .err_fd = err[0], .go_fd = -1 };
    s.port = await_listening(x, err[0], pid);
    if (fcntl(err[0], F_SETFL, O_NONBLOCK) != 0)
        die_errno("serve: fcntl");
    long rss0 = reset_peak(pid);

    double dt = run_clients(x, &s);

    pthread_join(s.feeder, NULL);
    if (s.feed_err != 0) {
        errno = s.feed_err;
        die_errno("serve: feeding its standard input");
    }
    stop_child(&s);
    forward_err(err[0]);
    close(err[0]);
    if (s.hwm_kb < 0)
        die("serve: no VmHWM for pid %d", (int)pid);
    *rss = (double)(s.hwm_kb - rss0) * 1024.0 / x->n;
    if (opt.verbose)
        fprintf(stderr, "    serve ours: %.3f s (connect %.3f s, stream fed in"
                " %.3f s), rss %ld KiB, peak %ld KiB\n", dt, s.connect_s,
                s.fed_at - s.t0, rss0, s.hwm_kb);
    return (double)x->n * (double)SV_RANGE / dt;
}

/* ---- the baseline: a forked sendfile server ---------------------------------------------- */

enum bstate { B_REQUEST, B_WAIT_GO, B_SEND, B_LINGER, B_CLOSED };

struct bconn {
    uint64_t a;         /* the range's first byte */
    uint32_t len;       /* its length */
    uint32_t sent;      /* body bytes sent */
    int fd;
    uint16_t head_sent;
    uint8_t state;
    uint8_t out;        /* EPOLLOUT is in the interest set */
};

static void on_term(int sig)
{
    (void)sig;
    _exit(0);
}

/* Take one whole request head out of c's socket; false while incomplete. */
static bool base_request(struct bconn *c)
{
    char buf[1024];
    ssize_t r = recv(c->fd, buf, sizeof buf - 1, MSG_PEEK);
    if (r < 0 && (errno == EINTR || errno == EAGAIN))
        return false;
    if (r <= 0)
        die("serve (base): a client went away before its request");
    buf[r] = '\0';
    char *end = strstr(buf, "\r\n\r\n");
    if (end == NULL) {
        if (r == (ssize_t)sizeof buf - 1)
            die("serve (base): a request head too long");
        return false;
    }
    size_t head = (size_t)(end + 4 - buf);
    if (recv(c->fd, buf, head, 0) != (ssize_t)head)
        die_errno("serve (base): recv");
    *end = '\0';
    unsigned long long a = 0, b = 0;
    bool found = false;
    for (char *l = strstr(buf, "\r\n"); l != NULL; l = strstr(l + 2, "\r\n"))
        if (strncasecmp(l + 2, "Range: bytes=", 13) == 0) {
            found = sscanf(l + 15, "%llu-%llu", &a, &b) == 2;
            break;
        }
    if (!found || b < a || b - a >= UINT32_MAX)
        die("serve (base): a request without a range it can serve");
    c->a = a;
    c->len = (uint32_t)(b - a + 1);
    return true;
}

/* Send c's head and body until the socket is full; true once all is out. */
static bool base_send(struct bconn *c, int file_fd, uint64_t total)
{
    char head[160];
    int hl = snprintf(head, sizeof head,
                      "HTTP/1.1 206 Partial Content\r\n"
                      "Content-Range: bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64 "\r\n"
                      "Content-Length: %" PRIu32 "\r\n\r\n",
                      c->a, c->a + c->len - 1, total, c->len);
    while (c->head_sent < hl) {
        ssize_t w = send(c->fd, head + c->head_sent, (size_t)(hl - c->head_sent),
                         MSG_NOSIGNAL | MSG_MORE);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN)
            return false;
        if (w < 0)
            die_errno("serve (base): send");
        c->head_sent = (uint16_t)(c->head_sent + w);
    }
    while (c->sent < c->len) {
        off_t off = (off_t)(c->a + c->sent);
        ssize_t w = sendfile(c->fd, file_fd, &off, c->len - c->sent);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN)
            return false;
        if (w <= 0)
            die_errno("serve (base): sendfile");
        c->sent += (uint32_t)w;
    }
    return true;
}

/* Move c along; its interest set follows. */
static void base_run(struct bconn *c, int ep, uint32_t i, bool go, int file_fd,
                     uint64_t total)
{
    if (c->state == B_REQUEST) {
        if (!base_request(c))
            return;
        c->state = B_WAIT_GO;
        ep_ctl(ep, EPOLL_CTL_MOD, c->fd, 0, i);
    }
    if (c->state == B_WAIT_GO && go)
        c->state = B_SEND;
    if (c->state == B_SEND) {
        if (!base_send(c, file_fd, total)) {
            if (!c->out)
                ep_ctl(ep, EPOLL_CTL_MOD, c->fd, EPOLLOUT, i);
            c->out = 1;
            return;
        }
        shutdown(c->fd, SHUT_WR);
        c->state = B_LINGER;
        c->out = 0;
        ep_ctl(ep, EPOLL_CTL_MOD, c->fd, EPOLLIN, i);
    }
}

static NORETURN void base_child(struct serve_case *x, int port_fd, int go_fd)
{
    signal(SIGTERM, on_term);
    stream_bytes_free(); /* the parent's, not this server's */
    int n = x->n, one = 1;
    struct sockaddr_in a = { .sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof a;
    int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) != 0
        || listen(l, 4096) != 0 || getsockname(l, (struct sockaddr *)&a, &al) != 0)
        die_errno("serve (base): listen");
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die_errno("serve (base): epoll_create1");
    ep_ctl(ep, EPOLL_CTL_ADD, l, EPOLLIN, MARK_LISTEN);
    ep_ctl(ep, EPOLL_CTL_ADD, go_fd, EPOLLIN, MARK_GO);
    struct bconn *cs = calloc((size_t)n, sizeof *cs);
    if (cs == NULL)
        die("out of memory");
    uint16_t port = ntohs(a.sin_port);
    if (write(port_fd, &port, sizeof port) != (ssize_t)sizeof port)
        _exit(1);
    close(port_fd);

    int accepted = 0, closed = 0;
    bool go = false;
    struct epoll_event evs[SV_EVENTS];
    while (closed < n) {
        int k = epoll_wait(ep, evs, SV_EVENTS, -1);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            die_errno("serve (base): epoll_wait");
        for (int e = 0; e < k; e++) {
            uint32_t id = evs[e].data.u32;
            if (id == MARK_LISTEN) {
                for (;;) {
                    int fd = accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0 && (errno == EINTR || errno == ECONNABORTED))
                        continue;
                    if (fd < 0 && errno == EAGAIN)
                        break;
                    if (fd < 0)
                        die_errno("serve (base): accept");
                    if (accepted == n)
                        die("serve (base): more than %d clients", n);
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    cs[accepted] = (struct bconn){ .fd = fd, .state = B_REQUEST };
                    ep_ctl(ep, EPOLL_CTL_ADD, fd, EPOLLIN, (uint32_t)accepted);
                    accepted++;
                }
                continue;
            }
            if (id == MARK_GO) {
                char g;
                if (read(go_fd, &g, 1) != 1)
                    _exit(1); /* the parent has gone */
                go = true;
                ep_ctl(ep, EPOLL_CTL_DEL, go_fd, 0, 0);
                for (int i = 0; i < accepted; i++)
                    if (cs[i].state == B_WAIT_GO)
                        base_run(&cs[i], ep, (uint32_t)i, go, x->file_fd, x->len);
                continue;
            }
            struct bconn *c = &cs[id];
            if (c->state == B_CLOSED)
                continue;
            if (c->state == B_LINGER) {
                char sink[256];
                ssize_t r = recv(c->fd, sink, sizeof sink, 0);
                if (r > 0 || (r < 0 && (errno == EINTR || errno == EAGAIN)))
                    continue;
                close(c->fd); /* the client has closed: done */
                c->state = B_CLOSED;
                closed++;
                continue;
            }
            if ((evs[e].events & (EPOLLHUP | EPOLLERR)) && c->state != B_REQUEST)
                die("serve (base): client %u went away before its response", id);
            base_run(c, ep, id, go, x->file_fd, x->len);
        }
    }
    _exit(0);
}

/* One measurement of the baseline; its bytes per second, *rss its peak per
   client. */
static double base_once(struct serve_case *x, double *rss)
{
    int rep[2], go[2];
    if (pipe2(rep, O_CLOEXEC) != 0 || pipe2(go, O_CLOEXEC) != 0)
        die_errno("serve: pipe");
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        die_errno("serve: fork");
    if (pid == 0) {
        die_with_parent(parent);
        close(rep[0]);
        close(go[1]);
        base_child(x, rep[1], go[0]);
    }
    close(rep[1]);
    close(go[0]);
    struct server s = { .side = SV_BASE, .pid = pid, .err_fd = -1, .in_fd = -1,
                        .go_fd = go[1] };
    uint16_t port;
    ssize_t r;
    while ((r = read(rep[0], &port, sizeof port)) < 0 && errno == EINTR)
        ;
    close(rep[0]);
    if (r != (ssize_t)sizeof port) {
        int status = 0;
        waitpid(pid, &status, 0);
        die("serve: the baseline server failed to start (status %#x)",
            (unsigned)status);
    }
    s.port = port;
    long rss0 = reset_peak(pid);

    double dt = run_clients(x, &s);

    stop_child(&s);
    close(go[1]);
    if (s.hwm_kb < 0)
        die("serve: no VmHWM for the baseline's pid %d", (int)pid);
    *rss = (double)(s.hwm_kb - rss0) * 1024.0 / x->n;
    if (opt.verbose)
        fprintf(stderr, "    serve base: %.3f s (connect %.3f s), rss %ld KiB,"
                " peak %ld KiB\n", dt, s.connect_s, rss0, s.hwm_kb);
    return (double)x->n * (double)SV_RANGE / dt;
}

/* ---- the case ----------------------------------------------------------------------------- */

static void find_serve(struct serve_case *x)
{
    if (opt.serve_bin != NULL) {
        snprintf(x->serve_bin, sizeof x->serve_bin, "%s", opt.serve_bin);
    } else {
        char exe[4096];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n <= 0)
            die_errno("serve: /proc/self/exe");
        exe[n] = '\0';
        char *dir = dirname(dirname(exe)); /* build/bench/sbbench -> build */
        snprintf(x->serve_bin, sizeof x->serve_bin, "%s/examples/serve", dir);
    }
    if (access(x->serve_bin, X_OK) != 0)
        die_errno("serve: %s is missing: make build/examples/serve (or give"
                  " --serve PATH)", x->serve_bin);
}

void case_serve(void)
{
    struct serve_case x = { .n = opt.clients, .len = opt.size, .file_fd = -1 };
    struct rlimit rl, rl0;

    find_serve(&x);
    if (x.len < SV_RANGE)
        die("serve: --size must be at least 256K");
    if (getrlimit(RLIMIT_NOFILE, &rl0) != 0)
        die_errno("getrlimit");
    if (rl0.rlim_max != RLIM_INFINITY
        && rl0.rlim_max < (rlim_t)x.n + SV_FD_SLACK)
        die("serve: %d clients need %d descriptors, and RLIMIT_NOFILE's hard"
            " limit is %llu: give --clients %llu or less, or raise it (ulimit -Hn)",
            x.n, x.n + SV_FD_SLACK, (unsigned long long)rl0.rlim_max,
            (unsigned long long)(rl0.rlim_max - SV_FD_SLACK));
    rl = rl0;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        die_errno("setrlimit RLIMIT_NOFILE");
    /* A server that goes away is an EPIPE on its socket or pipe. */
    void (*old_pipe)(int) = signal(SIGPIPE, SIG_IGN);

    x.data = stream_bytes();
    x.offs = malloc((size_t)x.n * sizeof *x.offs);
    x.cl = calloc((size_t)x.n, sizeof *x.cl);
    x.rbuf = malloc(SV_READ);
    if (x.offs == NULL || x.cl == NULL || x.rbuf == NULL)
        die("out of memory");
    uint64_t seed = SV_SEED;
    for (int i = 0; i < x.n; i++)
        x.offs[i] = splitmix64(&seed) % (x.len - SV_RANGE + 1);
    x.file_fd = tmp_file();
    pwrite_all(x.file_fd, x.data, x.len, 0);

    double v[2][MAX_REPS], rss[2][MAX_REPS];
    for (int k = 0; k < opt.reps; k++) {
        int fds = count_fds();
        v[0][k] = ours_once(&x, &rss[0][k]);
        int fds_ours = count_fds();
        v[1][k] = base_once(&x, &rss[1][k]);
        int fds_base = count_fds();
        if (opt.verbose)
            fprintf(stderr, "    serve: open descriptors %d, after ours %d, after"
                    " base %d\n", fds, fds_ours, fds_base);
        if (fds_ours != fds || fds_base != fds)
            die("serve: descriptors leaked: %d before, %d after ours, %d after"
                " base", fds, fds_ours, fds_base);
    }
    if (opt.verbose) {
        print_reps("ours", v[0], 1.0 / (double)GiB, "GiB/s");
        print_reps("base", v[1], 1.0 / (double)GiB, "GiB/s");
        print_reps("ours", rss[0], 1.0, "B/client");
        print_reps("base", rss[1], 1.0, "B/client");
    }

    struct row row = row_init("serve", 0, "GiB/s", HIGHER);
    snprintf(row.variant, sizeof row.variant, "serve %d clients live", x.n);
    row_reps(&row, v[0], v[1], opt.reps, 1.0 / (double)GiB);
    report(&row);
    struct row rr = row_init("serve", 0, "B", LOWER);
    snprintf(rr.variant, sizeof rr.variant, "serve RSS/client %d clients", x.n);
    row_reps(&rr, rss[0], rss[1], opt.reps, 1.0);
    report(&rr);

    close(x.file_fd);
    free(x.rbuf);
    free(x.cl);
    free(x.offs);
    signal(SIGPIPE, old_pipe);
    if (setrlimit(RLIMIT_NOFILE, &rl0) != 0)
        die_errno("setrlimit RLIMIT_NOFILE");
}
