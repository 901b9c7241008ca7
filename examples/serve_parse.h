/* SPDX-License-Identifier: MIT */
/*
 * serve_parse.h - examples/serve's request parsing, apart from its sockets
 * so that tests/fuzz/fuzz_serve.c can compile the very same code: where a
 * request head ends in the bytes read so far, what the head asks for (or
 * which error answers it), and which bytes of the stream a Range means.
 * It touches no connection, no buffer and no global: the caller (serve.c)
 * turns the results into responses.  Included once per program.
 */
#ifndef SERVE_PARSE_H
#define SERVE_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#define HEAD_MAX (8u << 10)   /* the largest request head: 431 beyond */
#define MAX_POS INT64_MAX     /* range positions beyond are invalid */

/* What a request asks for. */
enum range_kind { WHOLE, FROM_TO, FROM, SUFFIX };

struct request {
    bool head;            /* HEAD: the headers of GET, no body */
    bool http10;          /* HTTP/1.0: no chunked coding */
    bool keep_alive;      /* the client lets the connection persist */
    enum range_kind kind; /* FROM_TO: bytes a-b; FROM: a-; SUFFIX: -a */
    uint64_t a, b;
};

static bool is_tchar(int ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')
           || (ch >= '0' && ch <= '9') || (ch != 0 && strchr("!#$%&'*+-.^_`|~", ch));
}

/* Parse decimal digits at *p into *v (at most MAX_POS); false if there are
   none or the number is too large. */
static bool parse_pos(const char **p, uint64_t *v)
{
    const char *s = *p;
    uint64_t x = 0;
    if (*s < '0' || *s > '9')
        return false;
    for (; *s >= '0' && *s <= '9'; s++) {
        unsigned d = (unsigned)(*s - '0');
        if (x > ((uint64_t)MAX_POS - d) / 10)
            return false;
        x = x * 10 + d;
    }
    *p = s;
    *v = x;
    return true;
}

/* A Range value: one byte range, or false (then it is ignored). */
static bool parse_range(const char *v, struct request *q)
{
    if (strncasecmp(v, "bytes", 5) != 0)
        return false;
    v += 5;
    while (*v == ' ' || *v == '\t')
        v++;
    if (*v++ != '=')
        return false;
    while (*v == ' ' || *v == '\t')
        v++;
    if (*v == '-') {
        v++;
        if (!parse_pos(&v, &q->a))
            return false;
        q->kind = SUFFIX;
    } else {
        if (!parse_pos(&v, &q->a) || *v++ != '-')
            return false;
        if (*v >= '0' && *v <= '9') {
            if (!parse_pos(&v, &q->b) || q->b < q->a)
                return false;
            q->kind = FROM_TO;
        } else {
            q->kind = FROM;
        }
    }
    while (*v == ' ' || *v == '\t')
        v++;
    return *v == '\0'; /* a comma here: several ranges, ignored */
}

/* Whether a comma-separated header value lists token (any case). */
static bool has_token(const char *v, const char *token)
{
    size_t n = strlen(token);
    while (*v != '\0') {
        while (*v == ' ' || *v == '\t' || *v == ',')
            v++;
        const char *e = v;
        while (*e != '\0' && *e != ',' && *e != ' ' && *e != '\t')
            e++;
        if ((size_t)(e - v) == n && strncasecmp(v, token, n) == 0)
            return true;
        while (*e != '\0' && *e != ',')
            e++;
        v = e;
    }
    return false;
}

/* The next line of the head at *p, NUL-terminated in place (LF or CRLF). */
static char *next_line(char **p)
{
    char *line = *p, *lf = strchr(line, '\n');
    *p = lf + 1;
    *lf = '\0';
    if (lf > line && lf[-1] == '\r')
        lf[-1] = '\0';
    return line;
}

/*
 * Where the first request head in in[0, len) ends: the offset just past
 * its empty line, or 0 while it is not complete.  *skip is set to the
 * empty lines before it (allowed by RFC 9112 2.2), which are not part of
 * the head.  Reads nothing at or past in + len.
 */
static size_t head_end(const char *in, size_t len, size_t *skip)
{
    size_t s = 0;
    while (s < len && (in[s] == '\r' || in[s] == '\n'))
        s++;
    *skip = s;
    for (size_t i = s; i + 1 < len; i++) {
        if (in[i] == '\n' && in[i + 1] == '\n')
            return i + 2;
        if (in[i] == '\n' && in[i + 1] == '\r' && i + 2 < len && in[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

/*
 * Parse the request head in h (NUL-terminated, lines ending in LF or CRLF,
 * the empty line included; h is cut into lines in place) into *q.
 * Returns 0 for a request to answer from the stream, else the status of
 * the error that answers it (400, 404, 405 or 505); *close says whether
 * the connection must be closed after that error.  *q is filled as far as
 * the parse got, which is what the error response goes by.
 */
static int parse_head(char *h, struct request *q, bool *close)
{
    *q = (struct request){.kind = WHOLE, .keep_alive = false};
    *close = true;

    char *line = next_line(&h);
    char *method = line, *target = strchr(line, ' ');
    char *version = target != NULL ? strchr(target + 1, ' ') : NULL;
    if (version == NULL || strchr(version + 1, ' ') != NULL)
        return 400;
    *target++ = '\0';
    *version++ = '\0';
    for (const char *s = method; *s != '\0'; s++)
        if (!is_tchar((unsigned char)*s))
            method = "";
    /* HTTP/1.1, or a later 1.x answered as 1.1 (RFC 9110 6.2). */
    bool v11 = strncmp(version, "HTTP/1.", 7) == 0 && version[7] >= '1'
               && version[7] <= '9' && version[8] == '\0';
    q->http10 = strcmp(version, "HTTP/1.0") == 0;
    if (*method == '\0' || *target == '\0' || (!v11 && !q->http10)) {
        bool other = strncmp(version, "HTTP/", 5) == 0 && version[5] >= '2'
                     && version[5] <= '9' && version[6] == '.';
        return other ? 505 : 400;
    }
    for (const char *s = target; *s != '\0'; s++)
        if ((unsigned char)*s <= ' ' || *s == 0x7f)
            return 400;

    bool says_close = false, says_keep = false, body = false, if_range = false;
    int hosts = 0, ranges = 0;
    const char *range = NULL;
    while (*h != '\0') {
        line = next_line(&h);
        if (*line == '\0')
            break; /* the end of the head */
        char *colon = strchr(line, ':');
        bool bad = colon == NULL || colon == line;
        for (char *s = line; !bad && s < colon; s++)
            bad = !is_tchar((unsigned char)*s); /* also: space before ':' */
        if (bad) /* and obsolete line folding, which starts with a space */
            return 400;
        *colon = '\0';
        char *v = colon + 1, *e = v + strlen(v);
        while (*v == ' ' || *v == '\t')
            v++;
        while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
            *--e = '\0';
        if (strcasecmp(line, "Host") == 0) {
            hosts++;
        } else if (strcasecmp(line, "Connection") == 0) {
            says_close |= has_token(v, "close");
            says_keep |= has_token(v, "keep-alive");
        } else if (strcasecmp(line, "Range") == 0) {
            range = v;
            ranges++;
        } else if (strcasecmp(line, "If-Range") == 0) {
            if_range = true;
        } else if (strcasecmp(line, "Transfer-Encoding") == 0) {
            body = true;
        } else if (strcasecmp(line, "Content-Length") == 0) {
            for (const char *s = v; *s != '\0'; s++)
                body |= *s != '0';
        }
    }
    q->keep_alive = v11 ? !says_close : says_keep && !says_close;
    q->head = strcmp(method, "HEAD") == 0;

    if (strcmp(method, "GET") != 0 && !q->head) {
        /* Its body, if any, is not read: the connection cannot go on. */
        *close = body;
        return 405;
    }
    if ((v11 && hosts != 1) || hosts > 1 || body)
        return 400;
    /* The path: origin form, or the absolute form a proxy sends. */
    char *path = target;
    if (strncasecmp(path, "http://", 7) == 0) {
        path = strchr(path + 7, '/');
        if (path == NULL)
            path = "/";
    }
    if (path[0] != '/' || (path[1] != '\0' && path[1] != '?')) {
        *close = false;
        return 404;
    }
    if (ranges == 1 && !if_range && !parse_range(range, q))
        q->kind = WHOLE;
    *close = false;
    return 0;
}

/* What range_span found. */
enum span { SPAN_OK, SPAN_WAIT, SPAN_416 };

/*
 * The stream bytes [*first, *last] that the range q (not WHOLE) asks for,
 * len being the length once ended, else what has arrived.  Live: SPAN_WAIT
 * while byte *first has not arrived (a SUFFIX waits for the end before it
 * gets here); *last of FROM_TO is b, which may lie beyond len.  Ended:
 * SPAN_416 for a range that starts at or past the end (or bytes=-0), else
 * *last is clamped below len.
 */
static enum span range_span(const struct request *q, uint64_t len, bool ended,
                            uint64_t *first, uint64_t *last)
{
    *first = q->kind == SUFFIX ? (q->a < len ? len - q->a : 0) : q->a;
    if (ended) {
        if (*first >= len || (q->kind == SUFFIX && q->a == 0))
            return SPAN_416;
        *last = q->kind == FROM_TO && q->b < len ? q->b : len - 1;
        return SPAN_OK;
    }
    if (*first >= len)
        return SPAN_WAIT;
    *last = q->kind == FROM ? len - 1 : q->b;
    return SPAN_OK;
}

#endif
