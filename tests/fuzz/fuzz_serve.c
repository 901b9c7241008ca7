/* SPDX-License-Identifier: MIT */
/*
 * fuzz_serve.c - libFuzzer target: examples/serve's request parser, the
 * code of examples/serve_parse.h itself, compiled in here.
 *
 * An input is the bytes a client sends on one connection.  They go
 * through the server's steps as serve.c takes them: its 8 KiB input
 * buffer filled from the input, head_end finding where the next head ends
 * (431 when a full buffer holds none), the head copied out and NUL-
 * terminated (400 if it holds a NUL), parse_head, and the next pipelined
 * request after it.  Every buffer the parser is handed is allocated to its
 * exact size, so ASan reports any read past the input.  Checked, beyond
 * "no crash, no undefined behaviour":
 *   - head_end: the empty lines it skips are CR and LF and no more; the
 *     head ends at the first LF LF or LF CR LF after them, as memmem finds
 *     it, and it says "incomplete" exactly when there is none;
 *   - parse_head: its status is 0, 400, 404, 405 or 505, 400 and 505 close
 *     the connection and 404 does not; a request it takes is GET or HEAD,
 *     and its range has a <= b <= 2^63 - 1;
 *   - the round trip: a request it takes, written back in canonical form
 *     (method, version, Connection, Range), parses to the same request,
 *     and so does its range alone through parse_range;
 *   - range_span, for lengths around a and b and at the extremes, ended
 *     and live: a range that is served lies within the stream's length
 *     (live bytes=a-b: starts within what has arrived), its bounds are the
 *     ones RFC 9110 and RFC 8673 give, 416 and "wait" exactly when they
 *     should be, and the Content-Range it makes fits serve's buffer.
 * Any mismatch aborts.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve_parse.h"

#define FAIL(...)                                                          \
    do {                                                                   \
        fprintf(stderr, "fuzz_serve: " __VA_ARGS__);                       \
        fputc('\n', stderr);                                               \
        abort();                                                           \
    } while (0)
#define CHECK(cond)                                                        \
    do {                                                                   \
        if (!(cond))                                                       \
            FAIL("%s:%d: %s", __FILE__, __LINE__, #cond);                  \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool same_request(const struct request *x, const struct request *y)
{
    return x->head == y->head && x->http10 == y->http10
           && x->keep_alive == y->keep_alive && x->kind == y->kind
           && (x->kind == WHOLE || x->a == y->a)
           && (x->kind != FROM_TO || x->b == y->b);
}

/* q's range as a Range value, into buf (at least 64 bytes). */
static void range_value(const struct request *q, char *buf, size_t cap)
{
    int n = 0;
    if (q->kind == FROM_TO)
        n = snprintf(buf, cap, "bytes=%" PRIu64 "-%" PRIu64, q->a, q->b);
    else if (q->kind == FROM)
        n = snprintf(buf, cap, "bytes=%" PRIu64 "-", q->a);
    else if (q->kind == SUFFIX)
        n = snprintf(buf, cap, "bytes=-%" PRIu64, q->a);
    else
        buf[0] = '\0';
    CHECK(n >= 0 && (size_t)n < cap);
}

/* The canonical form of a request parse_head took parses back to it. */
static void round_trip(const struct request *q)
{
    char range[64], text[256];
    range_value(q, range, sizeof range);
    int n = snprintf(text, sizeof text, "%s /?x HTTP/1.%c\r\nHost: h\r\n"
                     "Connection: %s\r\n%s%s%s\r\n",
                     q->head ? "HEAD" : "GET", q->http10 ? '0' : '1',
                     q->keep_alive ? "keep-alive" : "close",
                     q->kind == WHOLE ? "" : "Range: ", range,
                     q->kind == WHOLE ? "" : "\r\n");
    CHECK(n > 0 && (size_t)n < sizeof text);
    char *h = malloc((size_t)n + 1);
    CHECK(h != NULL);
    memcpy(h, text, (size_t)n + 1);
    struct request back;
    bool close;
    int status = parse_head(h, &back, &close);
    if (status != 0 || close || !same_request(q, &back))
        FAIL("round trip: %s gave status %d, kind %d a %" PRIu64 " b %" PRIu64,
             text, status, (int)back.kind, back.a, back.b);
    free(h);
    if (q->kind != WHOLE) {
        size_t k = strlen(range);
        char *v = malloc(k + 1);
        CHECK(v != NULL);
        memcpy(v, range, k + 1);
        struct request r = {.kind = WHOLE};
        CHECK(parse_range(v, &r) && r.kind == q->kind && r.a == q->a
              && (q->kind != FROM_TO || r.b == q->b));
        free(v);
    }
}

/* The bytes range_span picks for a stream of len bytes (ended) or with
   len bytes arrived (live), against the RFCs' rules. */
static void check_span(const struct request *q, uint64_t len)
{
    uint64_t first, last;
    char cr[96]; /* decide's Content-Range buffer */
    enum span sp = range_span(q, len, true, &first, &last);
    bool empty = q->kind == SUFFIX ? q->a == 0 || len == 0 : q->a >= len;
    CHECK(sp == (empty ? SPAN_416 : SPAN_OK));
    if (sp == SPAN_OK) {
        CHECK(first <= last && last < len);
        if (q->kind == FROM_TO)
            CHECK(first == q->a && last == (q->b < len ? q->b : len - 1));
        else if (q->kind == FROM)
            CHECK(first == q->a && last == len - 1);
        else
            CHECK(last == len - 1 && last - first + 1 == (q->a < len ? q->a : len));
        int n = snprintf(cr, sizeof cr, "%" PRIu64 "-%" PRIu64 "/%" PRIu64,
                         first, last, len);
        CHECK(n > 0 && (size_t)n < sizeof cr);
    } else {
        int n = snprintf(cr, sizeof cr, "Content-Range: bytes */%" PRIu64, len);
        CHECK(n > 0 && (size_t)n < sizeof cr);
    }
    if (q->kind == SUFFIX)
        return; /* live, a suffix waits for the end before range_span */
    sp = range_span(q, len, false, &first, &last);
    CHECK(first == q->a);
    CHECK(sp == (q->a >= len ? SPAN_WAIT : SPAN_OK));
    if (sp == SPAN_OK) {
        CHECK(first < len && first <= last);
        CHECK(last == (q->kind == FROM ? len - 1 : q->b));
        int n = snprintf(cr, sizeof cr, "%" PRIu64 "-%" PRIu64 "/*", first, last);
        CHECK(n > 0 && (size_t)n < sizeof cr);
    }
}

/* Check a request parse_head took. */
static void check_request(const struct request *q, const char *copy)
{
    CHECK(strncmp(copy, q->head ? "HEAD " : "GET ", q->head ? 5 : 4) == 0);
    CHECK(q->kind == WHOLE || q->kind == FROM_TO || q->kind == FROM
          || q->kind == SUFFIX);
    if (q->kind != WHOLE)
        CHECK(q->a <= (uint64_t)MAX_POS);
    if (q->kind == FROM_TO)
        CHECK(q->a <= q->b && q->b <= (uint64_t)MAX_POS);
    round_trip(q);
    if (q->kind == WHOLE)
        return;
    const uint64_t a = q->a, b = q->kind == FROM_TO ? q->b : q->a;
    const uint64_t lens[] = {0, 1, 2, a, a + 1, b, b + 1, b + 2,
                             a > 0 ? a - 1 : 0, b > 0 ? b - 1 : 0,
                             (uint64_t)MAX_POS, UINT64_MAX};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++)
        check_span(q, lens[i]);
}

/* head_end against a search with memmem. */
static void check_head_end(const char *in, size_t len, size_t end, size_t skip)
{
    CHECK(skip <= len);
    for (size_t i = 0; i < skip; i++)
        CHECK(in[i] == '\r' || in[i] == '\n');
    CHECK(skip == len || (in[skip] != '\r' && in[skip] != '\n'));
    const char *p2 = memmem(in + skip, len - skip, "\n\n", 2);
    const char *p3 = memmem(in + skip, len - skip, "\n\r\n", 3);
    size_t want = 0;
    if (p2 != NULL && (p3 == NULL || p2 < p3))
        want = (size_t)(p2 - in) + 2;
    else if (p3 != NULL)
        want = (size_t)(p3 - in) + 3;
    if (end != want)
        FAIL("head_end: %zu, the first empty line ends at %zu", end, want);
    CHECK(end == 0 || (end > skip && end <= len));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* serve's c->in: HEAD_MAX bytes, filled as far as the input goes. */
    char in[HEAD_MAX];
    size_t in_len = 0, used = 0;
    for (int requests = 0; requests < 64; requests++) {
        size_t k = size - used < HEAD_MAX - in_len ? size - used : HEAD_MAX - in_len;
        memcpy(in + in_len, data + used, k);
        in_len += k;
        used += k;
        /* The parser sees exactly the bytes there are. */
        char *win = malloc(in_len > 0 ? in_len : 1);
        CHECK(win != NULL);
        memcpy(win, in, in_len);
        size_t skip;
        size_t end = head_end(win, in_len, &skip);
        check_head_end(win, in_len, end, skip);
        free(win);
        if (end == 0)
            break; /* more bytes would come, or 431 if the buffer is full */
        size_t n = end - skip;
        char *head = malloc(n + 1);
        CHECK(head != NULL);
        memcpy(head, in + skip, n);
        head[n] = '\0';
        memmove(in, in + end, in_len - end);
        in_len -= end;
        if (memchr(head, '\0', n) != NULL) { /* 400, and the connection closed */
            free(head);
            break;
        }
        char *copy = malloc(n + 1);
        CHECK(copy != NULL);
        memcpy(copy, head, n + 1);
        struct request q;
        bool close;
        int status = parse_head(head, &q, &close);
        switch (status) {
        case 0:
            CHECK(!close);
            check_request(&q, copy);
            break;
        case 400:
        case 505:
            CHECK(close);
            break;
        case 404:
            CHECK(!close);
            break;
        case 405:
            CHECK(strncmp(copy, "GET ", 4) != 0 && strncmp(copy, "HEAD ", 5) != 0);
            break;
        default:
            FAIL("parse_head: status %d", status);
        }
        free(copy);
        free(head);
    }
    return 0;
}
