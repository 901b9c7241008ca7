/* SPDX-License-Identifier: MIT */
/*
 * serve.c - serve standard input, or a remote object, over HTTP/1.1 while it
 * is still arriving: any number of clients, each from any offset, from one
 * thread.
 *
 *     some-command | build/examples/serve [-p PORT] [-n CLIENTS] [-m MEM]
 *     build/examples/serve --url URL [--parts N] [--seek-gap BYTES] [-p ...]
 *     curl http://127.0.0.1:PORT/ > copy              # the whole stream
 *     curl -r 1000000-1999999 http://127.0.0.1:PORT/  # a range of it
 *
 * -p PORT     listen on 127.0.0.1:PORT (0, the default: the kernel chooses)
 * -n CLIENTS  exit once that many connections have been served and closed
 *             (0, the default: run until SIGINT or SIGTERM)
 * -m MEM      keep the stream's first MEM bytes in memory, the rest in the
 *             spill file (sb_options.mem_limit; 0: the library's default)
 * --url URL   an edge server: the stream is the body of URL (http:// or
 *             https://), read with libstreambuffer_http's sb_open_url
 *             instead of standard input (only where serve was built with
 *             libcurl; see the Makefile)
 * --parts N   with --url: at most N upstream requests at once
 *             (sb_options.max_parts; 0, the default: the library's 4;
 *             1: one plain GET, no ranged requests)
 * --seek-gap BYTES  with --url: a read that far past every request in
 *             flight starts a ranged request of its own
 *             (sb_options.seek_gap; 0, the default: measured as it runs)
 *
 * Once it listens it prints "serve: listening on 127.0.0.1:PORT" on
 * standard error.  The library's producer thread drains standard input into
 * the buffer; this program's own thread is one epoll loop over the
 * listening socket, the clients' sockets and the buffer's poll descriptor.
 * Every response body goes out with sb_reader_sendfile: from the memory
 * region with send(2), from the spill file with sendfile(2), never copied
 * through this process.  When standard input ends the stream is complete
 * and the server goes on serving it.
 *
 * An edge server (--url).  The buffer comes from sb_open_url, and every
 * client reads that one buffer, so each byte of the object is fetched from
 * upstream once however many clients ask for it: the first request is a
 * GET from byte 0 that the library drains into the buffer, and a client
 * whose range lies far ahead of it makes the library open one ranged
 * request (a part) there, which every other client of those bytes waits
 * on (see "Ranged sources" in streambuffer.h).  A thousand clients of the
 * same range make one upstream request.  An error of the first request
 * (ENOENT for a 404, EACCES for a 403, ECONNREFUSED...) is a one-line
 * message and exit status 1, before serve listens.  The object's length
 * is known from the start (sb_open_url gives the library the first
 * response's Content-Length as the length, SB_LENGTH_KNOWN), so every
 * answer is that of an ended stream below, while the bytes are still
 * arriving: each body goes out as its bytes come.  (An upstream that sends
 * no length: live answers, until a part reports the length.)  If the
 * upstream fails for good (the library has retried), responses under way
 * are cut short by a reset and later requests are 500.
 *
 * What it answers.  The stream is the resource "/" (a query string is
 * ignored); any other path is 404, so that a browser's /favicon.ico does
 * not download the stream.  GET and HEAD only (others: 405 with Allow).
 * HTTP/1.1 connections are persistent unless the request says
 * "Connection: close"; HTTP/1.0 ones only with "Connection: keep-alive" and
 * a response of known length.  Pipelined requests are answered in order.
 * A request head is at most 8 KiB (431 beyond); a malformed one, an
 * HTTP/1.1 one without Host, or one with a body is answered 400 and the
 * connection closed.
 *
 * Ended or live: below, "ended" means that the stream's length is known:
 * standard input has ended, or (--url) the object's length came with it,
 * even while its bytes are still arriving; "live", that it is not known
 * yet.  A response of known length whose bytes have not all arrived is
 * still 200 or 206 with Content-Length at once, and its body goes out as
 * they come.
 *
 * The whole stream, GET / without Range:
 *   - ended:   200 with Content-Length.
 *   - live:    200 with Transfer-Encoding: chunked, a chunk for whatever
 *              has arrived (at most 1 MiB) each time; the response ends
 *              when the stream does.  To an HTTP/1.0 client the body is
 *              delimited by the end of the connection instead.
 *
 * Range (RFC 9110 section 14; while the stream is live, RFC 8673, "HTTP
 * Random Access and Live Content").  A 206 says "Content-Range: bytes
 * a-b/LEN", where LEN is the length once the stream has ended and an
 * asterisk while it is live: the length is not known yet.  One range only:
 * a Range header with several, in another unit, or invalid, is ignored and
 * the whole stream served with 200, as RFC 9110 allows; so is any Range
 * next to an If-Range, since this server has no validator for it to match.
 *   - After the end: 206 with Content-Length, b clamped to LEN - 1.  A
 *     range that starts at or past LEN (or "bytes=-0") is 416, whose
 *     Content-Range gives the length only.
 *   - Live, "bytes=a-b": the response waits until byte a has arrived (a
 *     start beyond what has arrived is not an error), then is 206 with the
 *     range as asked and an asterisk for the length.  If all of a-b has
 *     arrived, with Content-Length.  If not, as RFC 8673 section 2.2 has
 *     it: the body is chunked and goes out as the bytes arrive, and if the
 *     stream ends before b, the body ends there, cleanly (a Content-Length
 *     could only be kept by luck).  This is how a client follows a live
 *     stream from an offset: bytes=a-999999999999.
 *   - Live, "bytes=a-": RFC 8673 section 2.1: once byte a has arrived, 206
 *     with Content-Length and the range a-e, where e + 1 is what has
 *     arrived: the part that can be read at random now.  The asterisk
 *     tells the client the stream goes on; it does not wait for more.
 *   - Live, "bytes=-n": the last n bytes need the length, so the response
 *     waits for the end of the stream and is then as after the end.
 * A stream that fails (standard input gives a read error) is 500 for the
 * requests that come after; a response whose stream fails in its body is
 * aborted with a reset, so that the client sees a truncated body, never a
 * clean end.
 *
 * How the loop works.  Each response has its own reader, opened with
 * SB_NONBLOCK at the start of its range and tagged with its connection.
 * A piece of body is always bytes that have arrived: below sb_available
 * (the run from byte 0), or past it a run of bytes held further on (a
 * ranged source's buffer is sparse: parts fill it at their own offsets),
 * which non-blocking views of shrinking length find without copying a
 * byte.  So sb_reader_sendfile's EAGAIN then means the socket is full: the
 * connection waits for EPOLLOUT.  When nothing new has arrived, the last
 * of those views (one byte at the next offset) has armed the reader, and
 * the connection comes back out of sb_poll_ready when the byte is there
 * (or the stream ended or failed).  Each connection sends at most 4 MiB
 * per turn, so a fast client never holds up the others, and a slow one
 * only waits on its own socket.  A client that goes away (a reset, EOF on
 * its socket, a failed send) is closed at once, reader and all.
 * Connections that end normally are shut down for writing first and
 * closed when the client closes its side (or after 2 s), so that the end
 * of a response is not lost to a reset.  The buffer is opened without
 * SB_RELEASE: every client may read from the start, so nothing is ever
 * given back.
 */
#include <streambuffer.h>
#ifdef SERVE_HTTP /* the Makefile's, where libcurl is: --url */
#include <streambuffer_http.h>
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "serve_parse.h" /* the request parser, also the fuzz target's */

#define PIECE (1u << 20)      /* the most one chunk or sendfile call moves */
#define TURN (4u << 20)       /* the most one connection sends per turn */
#define LINGER_MS 2000        /* how long a closing connection waits */
#define END_PROBE (UINT64_MAX - 1) /* an offset no stream reaches */

/* How a response body is delimited. */
enum framing { FIXED, CHUNKED, UNTIL_CLOSE };

enum phase {
    READ_HEAD, /* waiting for (the rest of) a request head */
    DECIDE,    /* a request is in; its answer may wait for the stream */
    SEND,      /* sending the head and body */
    LINGER,    /* shut down for writing; waiting for the client to close */
    DEAD,      /* closed; freed after this round of events */
};

struct conn {
    int fd;
    enum phase phase;
    uint32_t events;      /* the epoll interest set now */
    struct request rq;    /* the request being answered */
    sb_reader *r;         /* the response's reader, while there is one */
    enum framing framing;
    bool close_after;     /* close once this response is out */
    bool body_done;       /* every body byte (and the last chunk) queued */
    uint64_t off, end;    /* body: stream bytes [off, end) still to send */
    uint64_t piece_left;  /* bytes of the current piece still to send */
    uint64_t linger_until; /* LINGER: the deadline, in ms */
    struct conn *prev, *next;              /* every open connection */
    struct conn *lprev, *lnext;            /* the lingering ones, oldest first */
    struct conn *dead_next;                /* closed this round */
    size_t out_off, out_len;               /* head and chunk lines to send */
    size_t in_len;                         /* request bytes not yet used */
    /* The buffers last, and not zeroed at accept: a page of them that is
       never written is never committed, so an idle client costs about a
       page, not the 8.5 KiB they span. */
    char out[512];
    char in[HEAD_MAX];
};

/* The server: one of it, and one thread uses it. */
static struct {
    sb_buffer *b;
    int ep, listen_fd;
    bool listening;          /* the listener is in the epoll set */
    unsigned long max;       /* -n; 0: no limit */
    unsigned long accepted, served;
    bool sparse;             /* bytes may be held past sb_available */
    struct conn *all;
    struct conn *linger_head, *linger_tail;
    struct conn *dead;
} S;

/* epoll's data for the three descriptors that are not connections. */
static char listen_mark, poll_mark, signal_mark;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- connections: interest, closing ---------------------------------- */

/* Watch c for reading, unless its input buffer is full (it is read again
   once a request has been taken out of it), and for writing if asked. */
static void set_events(struct conn *c, bool want_out)
{
    uint32_t ev = 0;
    if (c->phase == LINGER || c->in_len < sizeof c->in)
        ev |= EPOLLIN;
    if (want_out)
        ev |= EPOLLOUT;
    if (ev != c->events) {
        struct epoll_event e = {.events = ev, .data.ptr = c};
        if (epoll_ctl(S.ep, EPOLL_CTL_MOD, c->fd, &e) == 0)
            c->events = ev;
    }
}

static void linger_unlink(struct conn *c)
{
    if (c->lprev != NULL)
        c->lprev->lnext = c->lnext;
    else if (S.linger_head == c)
        S.linger_head = c->lnext;
    if (c->lnext != NULL)
        c->lnext->lprev = c->lprev;
    else if (S.linger_tail == c)
        S.linger_tail = c->lprev;
    c->lprev = c->lnext = NULL;
}

/*
 * Close c now.  With reset, the client gets a reset instead of a clean
 * end (SO_LINGER 0): the way to tell it that a body it was promised will
 * not come whole.  The struct is freed after the round of events, which
 * may still name it.
 */
static void conn_close(struct conn *c, bool reset)
{
    if (c->phase == DEAD)
        return;
    if (reset) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    sb_reader_close(c->r); /* takes it off the ready list too */
    c->r = NULL;
    close(c->fd); /* and out of the epoll set */
    if (c->phase == LINGER)
        linger_unlink(c);
    c->phase = DEAD;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        S.all = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    c->dead_next = S.dead;
    S.dead = c;
    S.served++;
    /* A descriptor is free again: accept, if that had stopped for want of
       one (and -n still allows it). */
    if (!S.listening && (S.max == 0 || S.accepted < S.max)) {
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = &listen_mark};
        if (epoll_ctl(S.ep, EPOLL_CTL_ADD, S.listen_fd, &e) == 0)
            S.listening = true;
    }
}

/*
 * Close c gracefully: our side first.  A close(2) with request bytes still
 * unread, or arriving after it, would answer them with a reset, which can
 * destroy the end of the response before the client has read it.  So
 * shut down for writing, then read and drop whatever comes until the
 * client closes its side, or LINGER_MS have passed.
 */
static void conn_linger(struct conn *c)
{
    sb_reader_close(c->r);
    c->r = NULL;
    shutdown(c->fd, SHUT_WR);
    c->phase = LINGER;
    c->in_len = 0;
    c->linger_until = now_ms() + LINGER_MS;
    c->lprev = S.linger_tail;
    c->lnext = NULL;
    if (S.linger_tail != NULL)
        S.linger_tail->lnext = c;
    else
        S.linger_head = c;
    S.linger_tail = c;
    set_events(c, false);
}

/* ---- responses -------------------------------------------------------- */

/* Append to c's output; the head and chunk lines are far smaller. */
static void out_printf(struct conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void out_printf(struct conn *c, const char *fmt, ...)
{
    if (c->out_off > 0) { /* make room at the end */
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(c->out + c->out_len, sizeof c->out - c->out_len, fmt, ap);
    va_end(ap);
    if (n > 0 && (size_t)n < sizeof c->out - c->out_len)
        c->out_len += (size_t)n;
    else
        abort(); /* a head that does not fit is a bug in this file */
}

/* The Date header's value, made once a second. */
static const char *http_date(void)
{
    static char buf[64];
    static time_t last = -1;
    time_t t = time(NULL);
    if (t != last) {
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        last = t;
    }
    return buf;
}

/* The status line and the headers every response has. */
static void put_status(struct conn *c, int status, const char *reason)
{
    out_printf(c, "HTTP/1.1 %d %s\r\nDate: %s\r\nServer: streambuffer-serve\r\n",
               status, reason, http_date());
}

/* The Connection header, where it is not the default of the version. */
static void put_connection(struct conn *c)
{
    if (c->close_after)
        out_printf(c, "Connection: close\r\n");
    else if (c->rq.http10)
        out_printf(c, "Connection: keep-alive\r\n");
}

/*
 * An error or a 416: a short text body, and the connection closed after it
 * if close is set (the request stream can no longer be trusted).  extra is
 * one more header line, or NULL.
 */
static void respond_error(struct conn *c, int status, const char *reason,
                          bool close, const char *extra)
{
    sb_reader_close(c->r);
    c->r = NULL;
    c->close_after = close || !c->rq.keep_alive;
    put_status(c, status, reason);
    if (extra != NULL)
        out_printf(c, "%s\r\n", extra);
    out_printf(c, "Content-Type: text/plain\r\nContent-Length: %zu\r\n",
               strlen(reason) + 1);
    put_connection(c);
    out_printf(c, "\r\n");
    if (!c->rq.head)
        out_printf(c, "%s\n", reason);
    c->framing = FIXED;
    c->body_done = true;
    c->piece_left = 0;
    c->phase = SEND;
}

/*
 * A response with a body of stream bytes [off, end) (end UINT64_MAX: until
 * the stream ends).  range is the Content-Range value, or NULL for 200.
 */
static void respond_body(struct conn *c, uint64_t off, uint64_t end,
                         enum framing framing, const char *range)
{
    if (framing == CHUNKED && c->rq.http10)
        framing = UNTIL_CLOSE; /* HTTP/1.0 has no chunked coding */
    c->framing = framing;
    c->close_after = !c->rq.keep_alive || framing == UNTIL_CLOSE;
    if (range != NULL)
        put_status(c, 206, "Partial Content");
    else
        put_status(c, 200, "OK");
    out_printf(c, "Content-Type: application/octet-stream\r\n"
                  "Accept-Ranges: bytes\r\n");
    if (range != NULL)
        out_printf(c, "Content-Range: bytes %s\r\n", range);
    if (framing == FIXED)
        out_printf(c, "Content-Length: %" PRIu64 "\r\n", end - off);
    else if (framing == CHUNKED)
        out_printf(c, "Transfer-Encoding: chunked\r\n");
    put_connection(c);
    out_printf(c, "\r\n");
    c->off = off;
    c->end = end;
    c->piece_left = 0;
    c->body_done = c->rq.head || off == end;
    if (c->body_done && !c->rq.head && framing == CHUNKED)
        out_printf(c, "0\r\n\r\n");
    c->phase = SEND;
}

/*
 * The stream's state now: SB_RUNNING, SB_ENDED or SB_FAILED.  *len is its
 * length if that is known (*known): after the end, or (--url) the
 * object's length, which the library reports while the bytes still
 * arrive; else what has arrived from byte 0.
 */
static int stream_state(uint64_t *len, bool *known, int *err)
{
    sb_stats st;
    if (sb_get_stats(S.b, &st) != 0) {
        *len = 0;
        *known = false;
        *err = errno;
        return SB_FAILED;
    }
    *known = st.state == SB_ENDED || st.length != 0; /* 0: not known */
    *len = st.state != SB_ENDED && st.length != 0 ? st.length : st.filled;
    *err = st.error;
    return st.state;
}

/* Arm c's reader for the byte at off: false if it has to wait for the
   poll descriptor, true if the answer is there now (the byte arrived, the
   stream ended before it or failed) and the caller should look again. */
static bool arm(struct conn *c, uint64_t off)
{
    char byte;
    if (sb_reader_pread(c->r, &byte, 1, off) < 0 && errno == EAGAIN) {
        set_events(c, false);
        return false;
    }
    return true;
}

/*
 * DECIDE: choose the response to c's request from the state of the stream,
 * or arm the reader and wait when the answer depends on bytes (or an end)
 * that have not come yet.  Returns false while it waits.
 */
static bool decide(struct conn *c)
{
    const struct request *q = &c->rq;
    char range[96];
    for (;;) {
        uint64_t len; /* the length if known, else what has arrived */
        bool ended;   /* the length is known: answer as after the end */
        int err;
        int state = stream_state(&len, &ended, &err);
        if (state == SB_FAILED) {
            fprintf(stderr, "serve: the stream failed: %s\n", strerror(err));
            respond_error(c, 500, "Internal Server Error", true, NULL);
            return true;
        }
        if (c->r == NULL) {
            /* The reader's floor is where the body starts: the bytes it
               will read are the only ones it pins (as far as floors pin
               anything without SB_RELEASE). */
            uint64_t floor = q->kind == FROM_TO || q->kind == FROM ? q->a : 0;
            c->r = sb_reader_open_flags(S.b, floor, SB_NONBLOCK);
            if (c->r == NULL) {
                respond_error(c, 503, "Service Unavailable", true, NULL);
                return true;
            }
            sb_reader_set_tag(c->r, c);
        }
        if (q->kind == WHOLE) {
            if (ended)
                respond_body(c, 0, len, FIXED, NULL);
            else
                respond_body(c, 0, UINT64_MAX, CHUNKED, NULL);
            return true;
        }
        if (q->kind == SUFFIX && !ended) {
            /* The last n bytes: wait for the length. */
            if (!arm(c, END_PROBE))
                return false;
            continue;
        }
        uint64_t first, last;
        enum span sp = range_span(q, len, ended, &first, &last);
        if (sp == SPAN_416) {
            snprintf(range, sizeof range, "Content-Range: bytes */%" PRIu64, len);
            respond_error(c, 416, "Range Not Satisfiable", false, range);
            return true;
        }
        if (ended) {
            snprintf(range, sizeof range, "%" PRIu64 "-%" PRIu64 "/%" PRIu64,
                     first, last, len);
            sb_reader_release(c->r, first); /* a suffix's start is known now */
            respond_body(c, first, last + 1, FIXED, range);
            return true;
        }
        /* Live, bytes=a-b or bytes=a-: nothing is said until byte a is in,
           so that the answer can never be a 206 with no bytes. */
        if (sp == SPAN_WAIT) {
            if (!arm(c, first))
                return false;
            continue;
        }
        /* RFC 8673 2.1, bytes=a-: what is there now.  2.2, bytes=a-b: as
           asked; chunked if not all in yet. */
        snprintf(range, sizeof range, "%" PRIu64 "-%" PRIu64 "/*", first, last);
        respond_body(c, first, last + 1, last < len ? FIXED : CHUNKED, range);
        return true;
    }
}

/* What next_piece found. */
enum piece { PIECE_READY, PIECE_END, PIECE_WAIT, PIECE_ABORT };

/*
 * The next piece of c's body: the bytes from c->off that have arrived, at
 * most PIECE, with its chunk-size line queued if chunked.  Or the end of
 * the body (the last chunk queued), or an armed reader (nothing new yet),
 * or an abort: the stream failed, or ended short of a Content-Length.
 */
static enum piece next_piece(struct conn *c)
{
    if (c->off < c->end) {
        uint64_t want = c->end - c->off, k = 0;
        if (want > PIECE)
            want = PIECE;
        uint64_t avail = sb_available(S.b);
        if (avail > c->off) {
            k = avail - c->off; /* the run from byte 0: no call needed */
        } else {
            /*
             * Past that run the buffer may hold bytes all the same (a
             * part's, from a ranged source).  A non-blocking view answers
             * only for bytes that are all there, and copies none: ask for
             * the piece, then for an eighth of it, and so on down to one
             * byte, whose EAGAIN arms the reader for the next byte.  A
             * longer view that failed leaves the reader armed for its
             * range, so that c may be resumed once more when those bytes
             * come, which does no harm.  Standard input has no such
             * bytes: one byte at once.
             */
            for (uint64_t n = S.sparse ? want : 1;; n = n > 8 ? n / 8 : 1) {
                const void *p;
                ssize_t v = sb_reader_view(c->r, c->off, (size_t)n, &p);
                if (v >= 0) {
                    k = (uint64_t)v; /* 0: the stream ended at c->off */
                    break;
                }
                if (errno != EAGAIN)
                    return PIECE_ABORT; /* the stream failed */
                if (n == 1)
                    return PIECE_WAIT;
            }
        }
        if (k == 0 && c->framing == FIXED)
            return PIECE_ABORT; /* it ended short of the Content-Length */
        if (k > 0) {
            if (k > want)
                k = want;
            if (c->framing == CHUNKED)
                out_printf(c, "%" PRIx64 "\r\n", k);
            c->piece_left = k;
            return PIECE_READY;
        }
        /* The stream ended: so does a body without a length. */
    }
    if (c->framing == CHUNKED)
        out_printf(c, "0\r\n\r\n");
    c->body_done = true;
    return PIECE_END;
}

/* The response is out: the next request, if the connection stays. */
static bool response_done(struct conn *c)
{
    sb_reader_close(c->r);
    c->r = NULL;
    if (c->close_after) {
        conn_linger(c);
        return false;
    }
    c->phase = READ_HEAD;
    set_events(c, false);
    return true; /* a pipelined request may be waiting in c->in */
}

/*
 * SEND: the head, then the body a piece at a time, each piece being bytes
 * that have arrived.  Returns false when it has to wait: for EPOLLOUT (the
 * socket is full, or the turn is over) or for the poll descriptor (the
 * reader is armed).
 */
static bool send_some(struct conn *c)
{
    uint64_t budget = TURN;
    for (;;) {
        enum piece p = PIECE_READY;
        if (c->piece_left == 0 && !c->body_done) {
            p = next_piece(c);
            if (p == PIECE_ABORT) {
                conn_close(c, true);
                return false;
            }
        }
        while (c->out_off < c->out_len) {
            /* MSG_MORE while body bytes follow at once: the head or a
               chunk line goes out in the same segment as them. */
            int more = c->piece_left > 0 ? MSG_MORE : 0;
            ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
                             MSG_NOSIGNAL | more);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                set_events(c, true);
                return false;
            }
            if (n < 0) {
                conn_close(c, false); /* EPIPE, ECONNRESET: gone */
                return false;
            }
            c->out_off += (size_t)n;
        }
        c->out_off = c->out_len = 0;
        if (p == PIECE_WAIT) {
            set_events(c, false); /* armed: sb_poll_ready gives c back */
            return false;
        }
        if (c->piece_left == 0) {
            if (c->body_done)
                return response_done(c);
            continue;
        }
        if (budget == 0) {
            /* Others' turn.  Level-triggered EPOLLOUT brings c back in the
               next round if the socket still has room. */
            set_events(c, true);
            return false;
        }
        size_t want = (size_t)(c->piece_left < budget ? c->piece_left : budget);
        ssize_t n = sb_reader_sendfile(c->r, c->fd, c->off, want);
        if (n < 0) {
            if (errno == EAGAIN && sb_reader_armed(c->r)) {
                set_events(c, false); /* cannot be: the bytes had arrived */
                return false;
            }
            if (errno == EAGAIN) { /* the socket is full */
                set_events(c, true);
                return false;
            }
            /* The client is gone (EPIPE, ECONNRESET), or the spill file
               could not be read: either way this body cannot be finished. */
            conn_close(c, true);
            return false;
        }
        if (n == 0) { /* cannot be: the bytes had arrived */
            conn_close(c, true);
            return false;
        }
        c->off += (uint64_t)n;
        c->piece_left -= (uint64_t)n;
        budget -= (uint64_t)n;
        /* Without SB_RELEASE this gives nothing back; it says that this
           reader is done below off, which is all a server opened with
           SB_RELEASE would need to run an endless stream in bounded space. */
        sb_reader_release(c->r, c->off);
        if (c->piece_left == 0 && c->framing == CHUNKED)
            out_printf(c, "\r\n");
        if ((size_t)n < want) { /* the socket took less: it is full */
            set_events(c, true);
            return false;
        }
    }
}

/* ---- requests --------------------------------------------------------- */

/*
 * Parse the request head in h (NUL-terminated, lines ending in LF or CRLF,
 * the empty line included) into c->rq and answer it: errors here, the rest
 * in DECIDE.
 */
static void handle_request(struct conn *c, char *h)
{
    bool close;
    switch (parse_head(h, &c->rq, &close)) {
    case 0:
        c->phase = DECIDE;
        break;
    case 404:
        respond_error(c, 404, "Not Found", close, NULL);
        break;
    case 405:
        respond_error(c, 405, "Method Not Allowed", close, "Allow: GET, HEAD");
        break;
    case 505:
        respond_error(c, 505, "HTTP Version Not Supported", close, NULL);
        break;
    default:
        respond_error(c, 400, "Bad Request", close, NULL);
        break;
    }
}

/*
 * READ_HEAD: take the next request head out of c->in and answer it.
 * Returns false while the head is not complete.
 */
static bool read_head(struct conn *c)
{
    size_t skip;
    size_t end = head_end(c->in, c->in_len, &skip);
    if (end == 0) {
        if (c->in_len < sizeof c->in) {
            set_events(c, false);
            return false;
        }
        respond_error(c, 431, "Request Header Fields Too Large", true, NULL);
        c->in_len = 0;
        return true;
    }
    char head[HEAD_MAX + 1];
    size_t n = end - skip;
    memcpy(head, c->in + skip, n);
    head[n] = '\0';
    memmove(c->in, c->in + end, c->in_len - end);
    c->in_len -= end;
    if (memchr(head, '\0', n) != NULL)
        respond_error(c, 400, "Bad Request", true, NULL);
    else
        handle_request(c, head);
    return true;
}

/* Move c along until it has to wait for an event. */
static void run(struct conn *c)
{
    for (;;) {
        bool go;
        switch (c->phase) {
        case READ_HEAD:
            go = read_head(c);
            break;
        case DECIDE:
            go = decide(c);
            break;
        case SEND:
            go = send_some(c);
            break;
        default:
            return;
        }
        if (!go)
            return;
    }
}

/* ---- events ----------------------------------------------------------- */

/*
 * c's socket is readable: a request, pipelined requests while a response
 * is out (kept in c->in until their turn), or the client's end.  EOF or an
 * error while anything is pending means the client has gone (a client
 * that only half-closes is taken for gone too, as most servers do).
 */
static void on_readable(struct conn *c)
{
    if (c->phase == LINGER) {
        char sink[4096];
        for (;;) {
            ssize_t n = recv(c->fd, sink, sizeof sink, 0);
            if (n > 0)
                continue;
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                return;
            conn_close(c, false); /* the client has closed: done */
            return;
        }
    }
    while (c->in_len < sizeof c->in) {
        ssize_t n = recv(c->fd, c->in + c->in_len, sizeof c->in - c->in_len, 0);
        if (n > 0) {
            c->in_len += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        conn_close(c, false);
        return;
    }
    if (c->phase == READ_HEAD)
        run(c);
    else if (c->in_len == sizeof c->in)
        set_events(c, (c->events & EPOLLOUT) != 0); /* full: stop reading */
}

static void accept_all(void)
{
    while (S.max == 0 || S.accepted < S.max) {
        int fd = accept4(S.listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS
                || errno == ENOMEM) {
                /* No descriptor for it: leave the client in the backlog
                   until a connection closes (conn_close resumes). */
                epoll_ctl(S.ep, EPOLL_CTL_DEL, S.listen_fd, NULL);
                S.listening = false;
                return;
            }
            perror("serve: accept");
            return;
        }
        /* Small writes (the end of a chunked body) go out at once, not
           after the client's delayed ACK; MSG_MORE batches the rest. */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = malloc(sizeof *c);
        if (c != NULL)
            memset(c, 0, offsetof(struct conn, out));
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
        if (c == NULL || epoll_ctl(S.ep, EPOLL_CTL_ADD, fd, &e) != 0) {
            free(c);
            close(fd);
            continue;
        }
        c->fd = fd;
        c->events = EPOLLIN;
        c->phase = READ_HEAD;
        c->next = S.all;
        if (S.all != NULL)
            S.all->prev = c;
        S.all = c;
        S.accepted++;
    }
    /* -n: that was the last one to accept. */
    epoll_ctl(S.ep, EPOLL_CTL_DEL, S.listen_fd, NULL);
    S.listening = false;
}

/* The poll descriptor is readable: resume the connections whose readers
   the stream has made ready. */
static void resume_ready(void)
{
    sb_reader *ready[64];
    size_t k;
    do {
        k = sb_poll_ready(S.b, ready, 64);
        for (size_t i = 0; i < k; i++)
            run(sb_reader_tag(ready[i]));
    } while (k == 64);
}

/* ---- main ------------------------------------------------------------- */

static unsigned long long parse_num(const char *s, unsigned long long max)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno != 0 || end == s || *end != '\0' || *s == '-' || v > max) {
        fprintf(stderr, "serve: bad number: %s\n", s);
        exit(2);
    }
    return v;
}

static void usage(FILE *to, int status)
{
    fprintf(to,
            "usage: some-command | serve [-p PORT] [-n CLIENTS] [-m MEM]\n"
            "       serve --url URL [--parts N] [--seek-gap BYTES] [-p PORT] ...\n"
            "\n"
            "Serve standard input (or with --url, a remote object) over HTTP/1.1\n"
            "on 127.0.0.1 while it is still arriving: GET and HEAD of /, Range\n"
            "requests live and ended.\n"
            "  -p PORT     listen on that port (default 0: the kernel chooses;\n"
            "              \"serve: listening on 127.0.0.1:PORT\" on stderr)\n"
            "  -n CLIENTS  exit once that many connections have been served\n"
            "              (default 0: until SIGINT or SIGTERM)\n"
            "  -m MEM      keep the first MEM bytes in memory, the rest in the\n"
            "              spill file (default 0: the library's 5 MiB)\n"
            "  --url URL   an edge server: serve the body of URL (http:// or\n"
            "              https://) instead of standard input, each byte\n"
            "              fetched from upstream once for all the clients; a\n"
            "              range far ahead of the download gets a ranged\n"
            "              request of its own\n"
#ifndef SERVE_HTTP
            "              (not in this build: serve was built without libcurl)\n"
#endif
            "  --parts N   with --url: at most N upstream requests at once\n"
            "              (default 0: the library's 4; 1: one plain GET)\n"
            "  --seek-gap BYTES  with --url: a read more than BYTES past every\n"
            "              upstream request in flight gets a request of its own\n"
            "              (default 0: measured as the download runs)\n"
            "  -h, --help  this help\n");
    exit(status);
}


int main(int argc, char **argv)
{
    unsigned long port = 0;
    sb_options o = {0};
    const char *url = NULL;
    bool edge_opts = false; /* --parts or --seek-gap */
    int opt;
    static const struct option longs[] = {
        {"url", required_argument, NULL, 'u'},
        {"parts", required_argument, NULL, 'P'},
        {"seek-gap", required_argument, NULL, 'g'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    /* --help as well as -h: it is what a newcomer types first. */
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "--help") == 0)
            usage(stdout, 0);
    while ((opt = getopt_long(argc, argv, "p:n:m:h", longs, NULL)) != -1) {
        if (opt == 'p') {
            port = (unsigned long)parse_num(optarg, 65535);
        } else if (opt == 'n') {
            S.max = (unsigned long)parse_num(optarg, ULONG_MAX);
        } else if (opt == 'm') {
            o.mem_limit = (size_t)parse_num(optarg, SSIZE_MAX);
        } else if (opt == 'u') {
            url = optarg;
        } else if (opt == 'P') {
            o.max_parts = (uint32_t)parse_num(optarg, 64); /* sb_open's cap */
            edge_opts = true;
        } else if (opt == 'g') {
            o.seek_gap = (uint64_t)parse_num(optarg, ULLONG_MAX);
            edge_opts = true;
        } else if (opt == 'h') {
            usage(stdout, 0);
        } else {
            usage(stderr, 2);
        }
    }
    if (optind < argc)
        usage(stderr, 2);
    if (edge_opts && url == NULL) {
        fprintf(stderr, "serve: --parts and --seek-gap go with --url\n");
        return 2;
    }
#ifndef SERVE_HTTP
    if (url != NULL) {
        fprintf(stderr, "serve: --url needs libstreambuffer_http, and this serve "
                        "was built without libcurl (apt-get install "
                        "libcurl4-openssl-dev, then rebuild)\n");
        return 2;
    }
#endif

    /* No client limit but descriptors: take all the system allows. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    /* A client that goes away is an EPIPE, not the end of the server. */
    signal(SIGPIPE, SIG_IGN);
    /* SIGINT and SIGTERM arrive through a signalfd in the loop.  Blocked
       before sb_open_fd, so that its producer thread inherits the mask and
       never takes them instead. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    int sfd = signalfd(-1, &stop, SFD_NONBLOCK | SFD_CLOEXEC);

#ifdef SERVE_HTTP
    /* --url: the upstream first, so that its error is all there is.
       sb_open_url returns once the first response's headers are in, and
       fails with the errno of a 404 (ENOENT), a 403 (EACCES), a refused
       connection... */
    if (url != NULL) {
        S.b = sb_open_url(url, &o, NULL);
        if (S.b == NULL) {
            fprintf(stderr, "serve: %s: %s\n", url, strerror(errno));
            return 1;
        }
        S.sparse = true;
    }
#endif

    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    int one = 1;
    S.listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (sfd < 0 || S.listen_fd < 0
        || setsockopt(S.listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0
        || bind(S.listen_fd, (struct sockaddr *)&a, sizeof a) != 0
        || listen(S.listen_fd, 4096) != 0 /* the kernel caps it at somaxconn */
        || getsockname(S.listen_fd, (struct sockaddr *)&a, &al) != 0) {
        perror("serve: listen");
        sb_close(S.b);
        return 1;
    }

    if (S.b == NULL) {
        S.b = sb_open_fd(STDIN_FILENO, &o); /* the producer starts reading now */
        if (S.b == NULL) {
            perror("serve: sb_open_fd");
            return 1;
        }
    }
    int pfd = sb_poll_fd(S.b);
    S.ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event el = {.events = EPOLLIN, .data.ptr = &listen_mark};
    struct epoll_event ep = {.events = EPOLLIN, .data.ptr = &poll_mark};
    struct epoll_event es = {.events = EPOLLIN, .data.ptr = &signal_mark};
    if (pfd < 0 || S.ep < 0 || epoll_ctl(S.ep, EPOLL_CTL_ADD, pfd, &ep) != 0
        || epoll_ctl(S.ep, EPOLL_CTL_ADD, sfd, &es) != 0
        || epoll_ctl(S.ep, EPOLL_CTL_ADD, S.listen_fd, &el) != 0) {
        perror("serve: epoll");
        sb_close(S.b);
        return 1;
    }
    S.listening = true;
    fprintf(stderr, "serve: listening on 127.0.0.1:%u\n",
            (unsigned)ntohs(a.sin_port));

    bool stopping = false;
    while (!stopping && (S.max == 0 || S.served < S.max)) {
        int timeout = -1;
        if (S.linger_head != NULL) {
            uint64_t now = now_ms(), until = S.linger_head->linger_until;
            timeout = until > now ? (int)(until - now) : 0;
        }
        struct epoll_event evs[256];
        int n = epoll_wait(S.ep, evs, 256, timeout);
        if (n < 0 && errno != EINTR) {
            perror("serve: epoll_wait");
            break;
        }
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            uint32_t ev = evs[i].events;
            if (p == &listen_mark) {
                accept_all();
            } else if (p == &poll_mark) {
                resume_ready();
            } else if (p == &signal_mark) {
                stopping = true;
            } else {
                struct conn *c = p;
                if (c->phase == DEAD)
                    continue; /* closed earlier in this round */
                if (ev & (EPOLLERR | EPOLLHUP)) {
                    conn_close(c, false); /* a reset, or both sides shut */
                    continue;
                }
                if (ev & EPOLLIN)
                    on_readable(c);
                if ((ev & EPOLLOUT) && c->phase != DEAD)
                    run(c);
            }
        }
        /* Connections whose linger time is up. */
        for (uint64_t now = now_ms(); S.linger_head != NULL
                                      && S.linger_head->linger_until <= now;)
            conn_close(S.linger_head, false);
        while (S.dead != NULL) {
            struct conn *c = S.dead;
            S.dead = c->dead_next;
            free(c);
        }
    }

    /* Readers before the buffer, as always. */
    while (S.all != NULL)
        conn_close(S.all, false);
    while (S.dead != NULL) {
        struct conn *c = S.dead;
        S.dead = c->dead_next;
        free(c);
    }
    close(S.listen_fd);
    close(S.ep);
    close(sfd);
    sb_close(S.b);
    return 0;
}
