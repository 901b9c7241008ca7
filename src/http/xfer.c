/*
 * SPDX-License-Identifier: MIT
 *
 * xfer.c - one HTTP request, pumped by its reader, woken by a cancel.
 *
 * Why a multi handle per transfer: curl_easy_perform would block the
 * fetcher thread inside libcurl for as long as the server stays silent,
 * and nothing could wake it but a timeout.  curl_multi_poll waits on the
 * transfer's sockets and on the multi handle's own wake-up pipe, which
 * curl_multi_wakeup (safe from any thread) signals: so a cancel returns a
 * blocked read at once, whatever the server does.  The thread that reads
 * is the one that drives: no thread of our own, no hand-off between
 * threads for the bytes.
 *
 * Backpressure: the write callback stages the body; once more than
 * STAGE_MAX bytes wait there it answers CURL_WRITEFUNC_PAUSE, libcurl keeps
 * that piece and stops reading the socket (TCP holds the server back), and
 * the read that empties the stage resumes it.
 */
#include "xfer.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define STAGE_MAX   ((size_t)256 << 10)
#define POLL_MS     1000 /* a wait's slice; a cancel wakes it sooner */
#define MAX_REDIRS  10L

struct sb__xfer {
    CURL *easy;
    CURLM *multi;
    struct curl_slist *headers; /* If-Range */
    const atomic_bool *stop;    /* the source's cancel */
    atomic_bool cancelled;      /* this transfer's */

    /* The rest is the pumping thread's alone (libcurl calls back on it). */
    struct sb__http_hdrs cur;   /* the response being received */
    struct sb__http_hdrs final; /* the final response's, once final */
    bool final_in;
    bool added;                 /* on the multi handle */
    bool done;
    CURLcode result;
    int err;                    /* a multi-level failure's errno */
    bool paused;
    char *stage;
    size_t stage_cap, stage_pos, stage_len;
    char errbuf[CURL_ERROR_SIZE];
};

/* ---- libcurl, once ----------------------------------------------------- */

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static CURLcode init_rc = CURLE_FAILED_INIT;

static void init_curl(void)
{
    /* Thread-safe itself since 7.84, but once is enough on any version;
       never undone: another user in the process may still need it. */
    init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int sb__curl_init(void)
{
    if (pthread_once(&init_once, init_curl) != 0)
        return -ENOMEM;
    return init_rc == CURLE_OK ? 0 : -ENOMEM;
}

int sb__curl_errno(CURLcode c)
{
    switch (c) {
    case CURLE_OK:
        return 0;
    case CURLE_URL_MALFORMAT:
    case CURLE_BAD_FUNCTION_ARGUMENT:
        return EINVAL;
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
        return EHOSTUNREACH;
    case CURLE_COULDNT_CONNECT:
        return ECONNREFUSED;
    case CURLE_OPERATION_TIMEDOUT:
        return ETIMEDOUT;
    case CURLE_OUT_OF_MEMORY:
        return ENOMEM;
    case CURLE_TOO_MANY_REDIRECTS:
        return ELOOP;
    /* The URL's scheme was checked before any request (source.c), so
       this is the answer's fault: HTTP/0.9 (bytes that are not HTTP), or
       a redirect to another scheme. */
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_GOT_NOTHING:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_HTTP2:
        return EPROTO;
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_HTTP2_STREAM:
        return ECONNRESET;
    case CURLE_ABORTED_BY_CALLBACK:
    case CURLE_WRITE_ERROR: /* only a cancel makes our callbacks refuse */
        return ECANCELED;
    case CURLE_PARTIAL_FILE: /* the body ended before its length */
    default:
        return EIO;
    }
}

/* ---- the callbacks ------------------------------------------------------ */

static bool stopped(const struct sb__xfer *x)
{
    return atomic_load_explicit(&x->cancelled, memory_order_acquire) ||
           (x->stop != NULL &&
            atomic_load_explicit(x->stop, memory_order_acquire));
}

/* Copies a header value, trimmed, into dst (cut to its size). */
static void copy_value(char *dst, size_t cap, const char *v, size_t n)
{
    while (n > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        n--;
    }
    while (n > 0 && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' ' ||
                     v[n - 1] == '\t'))
        n--;
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, v, n);
    dst[n] = '\0';
}

/* Parses digits at *p into *out; false without any, or on overflow. */
static bool parse_u64(const char **p, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    if (*s < '0' || *s > '9')
        return false;
    for (; *s >= '0' && *s <= '9'; s++) {
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *p = s;
    *out = v;
    return true;
}

/* "bytes a-b/t", "bytes a-b/STAR" or "bytes STAR/t" (RFC 9110 14.4). */
static void parse_content_range(struct sb__http_hdrs *h, const char *v)
{
    uint64_t a = 0, b = 0, t = UINT64_MAX;
    bool unsat = false;
    if (strncasecmp(v, "bytes ", 6) != 0)
        return;
    v += 6;
    while (*v == ' ')
        v++;
    if (*v == '*') {
        unsat = true;
        v++;
    } else if (!parse_u64(&v, &a) || *v++ != '-' || !parse_u64(&v, &b) || b < a) {
        return;
    }
    if (*v++ != '/')
        return;
    if (*v == '*') {
        if (unsat)
            return;
    } else if (!parse_u64(&v, &t) || (!unsat && b >= t)) {
        return;
    }
    h->has_range = true;
    h->range_unsatisfied = unsat;
    h->range_first = a;
    h->range_last = b;
    h->range_total = t;
}

static void reset_hdrs(struct sb__http_hdrs *h)
{
    memset(h, 0, sizeof *h);
    h->content_length = -1;
    h->range_total = UINT64_MAX;
}

/* These headers are the final response's: take them. */
static void take_final(struct sb__xfer *x)
{
    long code = 0;
    curl_off_t cl = -1;
    if (x->final_in)
        return;
    x->final = x->cur;
    if (curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK)
        x->final.status = code;
    if (curl_easy_getinfo(x->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) ==
            CURLE_OK &&
        cl >= 0)
        x->final.content_length = (int64_t)cl;
    x->final_in = true;
}

static size_t on_header(char *line, size_t size, size_t nitems, void *ud)
{
    struct sb__xfer *x = ud;
    size_t n = size * nitems;
    char value[512];

    if (stopped(x))
        return 0; /* CURLE_WRITE_ERROR: the transfer ends now */
    if (n >= 5 && strncmp(line, "HTTP/", 5) == 0) {
        reset_hdrs(&x->cur); /* a new response: a redirect's, a 100's */
        return n;
    }
    if ((n == 2 && line[0] == '\r') || (n == 1 && line[0] == '\n')) {
        long code = 0;
        if (curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code) != CURLE_OK)
            code = 0;
        /* 1xx: more headers follow.  A 3xx with a Location is followed by
           libcurl (or fails with too many redirects); one it does not
           follow is taken when its body or its end comes. */
        if (code / 100 == 1 || (code / 100 == 3 && x->cur.has_location))
            return n;
        take_final(x);
        return n;
    }
    const char *colon = memchr(line, ':', n);
    if (colon == NULL)
        return n;
    size_t name_len = (size_t)(colon - line);
    copy_value(value, sizeof value, colon + 1, n - name_len - 1);
#define IS(name) (name_len == sizeof name - 1 && strncasecmp(line, name, name_len) == 0)
    if (IS("ETag"))
        copy_value(x->cur.etag, sizeof x->cur.etag, value, strlen(value));
    else if (IS("Last-Modified"))
        copy_value(x->cur.last_modified, sizeof x->cur.last_modified, value,
                   strlen(value));
    else if (IS("Content-Range"))
        parse_content_range(&x->cur, value);
    else if (IS("Accept-Ranges"))
        x->cur.accept_none = strcasecmp(value, "none") == 0;
    else if (IS("Location"))
        x->cur.has_location = value[0] != '\0';
#undef IS
    return n;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    struct sb__xfer *x = ud;
    size_t n = size * nmemb;

    if (stopped(x))
        return CURL_WRITEFUNC_ERROR;
    take_final(x); /* a body: these headers were the last */
    size_t unread = x->stage_len - x->stage_pos;
    if (unread > 0 && unread + n > STAGE_MAX) {
        x->paused = true; /* libcurl keeps this piece for the resume */
        return CURL_WRITEFUNC_PAUSE;
    }
    if (x->stage_pos > 0) { /* compact: the stage stays one run */
        memmove(x->stage, x->stage + x->stage_pos, unread);
        x->stage_pos = 0;
        x->stage_len = unread;
    }
    if (unread + n > x->stage_cap) {
        size_t cap = x->stage_cap ? x->stage_cap : 16384;
        while (cap < unread + n)
            cap *= 2;
        char *p = realloc(x->stage, cap);
        if (p == NULL)
            return CURL_WRITEFUNC_ERROR; /* the read reports ENOMEM */
        x->stage = p;
        x->stage_cap = cap;
    }
    memcpy(x->stage + x->stage_len, data, n);
    x->stage_len += n;
    return n;
}

/* ---- the transfer -------------------------------------------------------- */

int sb__xfer_new(const struct sb__xfer_req *rq, struct sb__xfer **out)
{
    int rc = sb__curl_init();
    struct sb__xfer *x = rc < 0 ? NULL : calloc(1, sizeof *x);
    if (x == NULL) {
        if (rq->multi != NULL)
            (void)curl_multi_cleanup(rq->multi); /* it was handed over */
        return rc < 0 ? rc : -ENOMEM;
    }
    atomic_init(&x->cancelled, false);
    x->stop = rq->stop;
    reset_hdrs(&x->cur);
    reset_hdrs(&x->final);
    x->easy = curl_easy_init();
    x->multi = rq->multi != NULL ? rq->multi : curl_multi_init();
    if (x->easy == NULL || x->multi == NULL) {
        sb__xfer_free(x);
        return -ENOMEM;
    }
    CURL *e = x->easy;
    CURLcode c = CURLE_OK;
    /* Each setopt's failure is kept: the first one decides (as curl's
       tool does with its my_setopt chain). */
#define SET(opt, val) do { if (c == CURLE_OK) c = curl_easy_setopt(e, opt, val); } while (0)
    SET(CURLOPT_URL, rq->url);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_FOLLOWLOCATION, 1L);
    SET(CURLOPT_MAXREDIRS, MAX_REDIRS);
    SET(CURLOPT_NOSIGNAL, 1L); /* threads: no SIGALRM for DNS timeouts */
    SET(CURLOPT_BUFFERSIZE, 65536L);
    SET(CURLOPT_ERRORBUFFER, x->errbuf);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, x);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, x);
    if (rq->share != NULL)
        SET(CURLOPT_SHARE, rq->share);
    if (rq->range != NULL)
        SET(CURLOPT_RANGE, rq->range);
    if (rq->if_range != NULL) {
        size_t len = strlen(rq->if_range) + sizeof "If-Range: ";
        char *h = malloc(len);
        if (h == NULL) {
            sb__xfer_free(x);
            return -ENOMEM;
        }
        memcpy(h, "If-Range: ", sizeof "If-Range: " - 1);
        memcpy(h + sizeof "If-Range: " - 1, rq->if_range, strlen(rq->if_range) + 1);
        x->headers = curl_slist_append(NULL, h); /* copies h */
        free(h);
        if (x->headers == NULL) {
            sb__xfer_free(x);
            return -ENOMEM;
        }
        SET(CURLOPT_HTTPHEADER, x->headers);
    }
#undef SET
    if (c != CURLE_OK) {
        sb__xfer_free(x);
        return -sb__curl_errno(c);
    }
    if (rq->setup != NULL)
        rq->setup(e, rq->setup_arg);
    /* setup may have changed these; ours must stay. */
    if (curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_WRITEDATA, x) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_HEADERDATA, x) != CURLE_OK) {
        sb__xfer_free(x);
        return -ENOMEM;
    }
    if (curl_multi_add_handle(x->multi, e) != CURLM_OK) {
        sb__xfer_free(x);
        return -ENOMEM;
    }
    x->added = true;
    *out = x;
    return 0;
}

/* One step: let libcurl work, collect the end, and wait (at most
   POLL_MS, less on a cancel) when there is nothing to hand out: no
   staged bytes, or for headers, no final headers yet. */
static void pump(struct sb__xfer *x, bool for_headers)
{
    int running = 0;
    CURLMcode mc = curl_multi_perform(x->multi, &running);
    if (mc != CURLM_OK) {
        x->done = true;
        x->err = mc == CURLM_OUT_OF_MEMORY ? ENOMEM : EIO;
        return;
    }
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(x->multi, &left)) != NULL) {
        if (m->msg == CURLMSG_DONE && m->easy_handle == x->easy) {
            x->done = true;
            x->result = m->data.result;
        }
    }
    if (x->done || x->stage_len > x->stage_pos || (for_headers && x->final_in) ||
        stopped(x))
        return;
    mc = curl_multi_poll(x->multi, NULL, 0, POLL_MS, NULL);
    if (mc != CURLM_OK && mc != CURLM_UNRECOVERABLE_POLL) {
        x->done = true;
        x->err = EIO;
    }
}

/* The transfer's error, once done: 0 for a success. */
static int done_errno(const struct sb__xfer *x)
{
    if (x->err != 0)
        return x->err;
    if (x->result == CURLE_WRITE_ERROR && !stopped(x))
        return ENOMEM; /* on_body could not grow the stage */
    return sb__curl_errno(x->result);
}

int sb__xfer_wait_headers(struct sb__xfer *x)
{
    /* Bounded by libcurl's own timeouts (the connect timeout, setup's),
       and by a cancel. */
    while (!x->final_in) {
        if (stopped(x))
            return -ECANCELED;
        if (x->done) {
            int e = done_errno(x);
            if (e != 0)
                return -e;
            take_final(x); /* ended without a body: a 3xx not followed, a 204 */
            break;
        }
        pump(x, true);
    }
    return 0;
}

const struct sb__http_hdrs *sb__xfer_headers(const struct sb__xfer *x)
{
    return &x->final;
}

const char *sb__xfer_url(struct sb__xfer *x)
{
    char *u = NULL;
    if (curl_easy_getinfo(x->easy, CURLINFO_EFFECTIVE_URL, &u) != CURLE_OK)
        return NULL;
    return u;
}

ssize_t sb__xfer_read(struct sb__xfer *x, void *buf, size_t cap)
{
    if (cap > SSIZE_MAX)
        cap = SSIZE_MAX;
    for (;;) {
        if (stopped(x))
            return -ECANCELED;
        size_t unread = x->stage_len - x->stage_pos;
        if (unread > 0 && cap > 0) {
            size_t n = unread < cap ? unread : cap;
            memcpy(buf, x->stage + x->stage_pos, n);
            x->stage_pos += n;
            if (x->stage_pos == x->stage_len)
                x->stage_pos = x->stage_len = 0;
            return (ssize_t)n;
        }
        if (cap == 0)
            return 0;
        if (x->paused) {
            /* The stage is empty: resume.  libcurl may hand over the
               piece it kept from inside this call. */
            x->paused = false;
            CURLcode c = curl_easy_pause(x->easy, CURLPAUSE_CONT);
            if (c != CURLE_OK)
                return -sb__curl_errno(c);
            continue;
        }
        if (x->done)
            return -(ssize_t)done_errno(x);
        pump(x, false);
    }
}

void sb__xfer_cancel(struct sb__xfer *x)
{
    atomic_store_explicit(&x->cancelled, true, memory_order_release);
    /* Wakes a curl_multi_poll in progress, or makes the next one return
       at once; safe from any thread. */
    (void)curl_multi_wakeup(x->multi);
}

CURLM *sb__xfer_free_keep(struct sb__xfer *x)
{
    if (x == NULL)
        return NULL;
    bool clean = x->added && !stopped(x) && x->stage_len == x->stage_pos;
    if (clean && !x->done) {
        /* The last bytes read may have been the body's last: collect the
           end if it is there, without waiting for it. */
        int running = 0;
        CURLMsg *m;
        int left;
        if (curl_multi_perform(x->multi, &running) != CURLM_OK)
            clean = false;
        while (clean && (m = curl_multi_info_read(x->multi, &left)) != NULL) {
            if (m->msg == CURLMSG_DONE && m->easy_handle == x->easy) {
                x->done = true;
                x->result = m->data.result;
            }
        }
    }
    if (!clean || !x->done || x->err != 0 || x->result != CURLE_OK || x->paused
        || x->stage_len != x->stage_pos) {
        sb__xfer_free(x);
        return NULL;
    }
    CURLM *multi = x->multi;
    x->multi = NULL;
    if (curl_multi_remove_handle(multi, x->easy) != CURLM_OK) {
        (void)curl_multi_cleanup(multi);
        multi = NULL;
    }
    x->added = false;
    sb__xfer_free(x);
    return multi;
}

void sb__xfer_free(struct sb__xfer *x)
{
    if (x == NULL)
        return;
    if (x->added && x->multi != NULL)
        (void)curl_multi_remove_handle(x->multi, x->easy);
    if (x->easy != NULL)
        curl_easy_cleanup(x->easy);
    if (x->multi != NULL)
        (void)curl_multi_cleanup(x->multi);
    curl_slist_free_all(x->headers);
    free(x->stage);
    free(x);
}
