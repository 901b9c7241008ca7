/*
 * SPDX-License-Identifier: MIT
 *
 * xfer.c - HTTP requests on one multi handle per source (a hub), pumped
 * by the threads that read them, woken by a cancel.
 *
 * Why a multi handle: curl_easy_perform would block the fetcher thread
 * inside libcurl for as long as the server stays silent, and nothing could
 * wake it but a timeout.  curl_multi_poll waits on the transfers' sockets
 * and on the multi handle's own wake-up pipe, which curl_multi_wakeup
 * (safe from any thread) signals: so a cancel returns a blocked read at
 * once, whatever the server does.
 *
 * Why one per source: libcurl keeps connections in the multi handle, so
 * the source's transfers share them: a part reuses a connection another
 * left (keep-alive), and parts that run at once on an HTTP/2 server are
 * streams of the connection the first response came on.  A multi handle
 * is driven by one thread at a time: the token (hub.pumping).  A thread that needs
 * bytes its transfer has not staged takes the token if it is free and
 * pumps for every transfer (curl_multi_perform under hub.mu, so the
 * callbacks stage each transfer's bytes under it; curl_multi_poll without
 * it), else waits on hub.cv, which every pump round broadcasts.  Adding or
 * removing a handle takes the token too, waking a poll in progress; the
 * pumper lets the token go after each round, and does not take it again
 * while a thread waits for it.  No thread of our own.
 *
 * Backpressure: the write callback stages the body; once more than
 * STAGE_MAX bytes wait there it answers CURL_WRITEFUNC_PAUSE, libcurl keeps
 * that piece and stops reading that transfer (TCP, or HTTP/2's window,
 * holds the server back), and the read that empties the stage asks the
 * pumper to resume it (curl_easy_pause belongs to the driving thread).
 * A read is lent the stage's unread bytes, which the core stores from
 * without a copy of its own, until its next call (x->lent): the
 * callback then only appends in place, never moves the stage.  Until
 * the first read, the stage holds one piece: the pump that waits for the
 * headers stops as soon as the body begins, and sb_open_url returns
 * rather than stage a quarter of a megabyte nobody has asked for yet.
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

struct sb__xfer_hub {
    CURLM *multi;
    pthread_mutex_t mu;     /* the token, and every transfer's staged state */
    pthread_cond_t cv;      /* a pump round ended, the token came free, a
                               transfer was cancelled */
    bool pumping;           /* a thread holds the token: it alone calls
                               into multi (curl_multi_poll without mu) */
    unsigned want_token;    /* threads waiting to add or remove a handle */
    struct sb__xfer *xfers; /* on multi, for the pumper's resumes */
    int broken;             /* a multi-level failure's errno, for all */
};

struct sb__xfer {
    struct sb__xfer_hub *hub;
    bool own_hub;               /* made for this transfer alone */
    struct sb__xfer *prev, *next; /* hub.xfers */
    CURL *easy;
    struct curl_slist *headers; /* If-Range */
    const atomic_bool *stop;    /* the source's cancel */
    atomic_bool cancelled;      /* this transfer's */

    /* The rest is under hub.mu (libcurl calls back on the pumping thread,
       which holds it then). */
    struct sb__http_hdrs cur;   /* the response being received */
    struct sb__http_hdrs final; /* the final response's, once final */
    bool final_in;
    bool added;                 /* on the multi handle */
    bool done;
    CURLcode result;
    int err;                    /* a multi-level failure's errno */
    bool paused;                /* the callback answered PAUSE */
    bool resume;                /* the reader asks the pumper to resume */
    size_t lent;                /* the stage's unread bytes lent to the
                                   reader (sb__xfer_next) until its next
                                   call; while not 0 the stage is not
                                   moved */
    bool was_read;              /* a read came: until then the stage holds
                                   one piece (the headers' pump stops) */
    bool discard;               /* being freed: the callback takes all */
    char *stage;
    size_t stage_cap, stage_pos, stage_len;
    char errbuf[CURL_ERROR_SIZE];
};

/* As sb__http_lock: a condition that cannot be used is a broken program. */
static void broadcast(pthread_cond_t *c)
{
    if (pthread_cond_broadcast(c) != 0)
        abort();
}

static void cond_wait(pthread_cond_t *c, pthread_mutex_t *m)
{
    if (pthread_cond_wait(c, m) != 0)
        abort();
}

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

    if (x->discard)
        return n;
    if (stopped(x))
        return CURL_WRITEFUNC_ERROR;
    take_final(x); /* a body: these headers were the last */
    size_t unread = x->stage_len - x->stage_pos;
    if ((unread > 0 && (unread + n > STAGE_MAX || !x->was_read))
        || (x->lent != 0 && x->stage_len + n > x->stage_cap)) {
        /* Full; or its unread bytes are lent to the reader and there is
           no room at its tail, the only place the stage may change
           then. */
        x->paused = true; /* libcurl keeps this piece for the resume */
        return CURL_WRITEFUNC_PAUSE;
    }
    if (x->lent != 0) {
        memcpy(x->stage + x->stage_len, data, n);
        x->stage_len += n;
        return n;
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

/* ---- the hub ------------------------------------------------------------ */

int sb__xfer_hub_new(struct sb__xfer_hub **out)
{
    int rc = sb__curl_init();
    if (rc < 0)
        return rc;
    struct sb__xfer_hub *h = calloc(1, sizeof *h);
    if (h == NULL)
        return -ENOMEM;
    h->multi = curl_multi_init();
    if (h->multi == NULL || pthread_mutex_init(&h->mu, NULL) != 0) {
        if (h->multi != NULL)
            (void)curl_multi_cleanup(h->multi);
        free(h);
        return -ENOMEM;
    }
    if (pthread_cond_init(&h->cv, NULL) != 0) {
        (void)pthread_mutex_destroy(&h->mu);
        (void)curl_multi_cleanup(h->multi);
        free(h);
        return -ENOMEM;
    }
    /* HTTP/2: parts that run at once are streams of one connection. */
    (void)curl_multi_setopt(h->multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
    *out = h;
    return 0;
}

void sb__xfer_hub_free(struct sb__xfer_hub *h)
{
    if (h == NULL)
        return;
    (void)curl_multi_cleanup(h->multi); /* every transfer was freed */
    (void)pthread_cond_destroy(&h->cv);
    (void)pthread_mutex_destroy(&h->mu);
    free(h);
}

/* Take the token to add or remove a handle: a pump in progress is woken
   and lets it go after its round.  hub.mu is held on return. */
static void token_take(struct sb__xfer_hub *h)
{
    sb__http_lock(&h->mu);
    h->want_token++;
    while (h->pumping) {
        (void)curl_multi_wakeup(h->multi);
        cond_wait(&h->cv, &h->mu);
    }
    h->want_token--;
    h->pumping = true;
}

static void token_give(struct sb__xfer_hub *h)
{
    h->pumping = false;
    broadcast(&h->cv);
    sb__http_unlock(&h->mu);
}

/* ---- the transfer -------------------------------------------------------- */

int sb__xfer_new(const struct sb__xfer_req *rq, struct sb__xfer **out)
{
    /* An own hub is the transfer's from here, freed with it on failure. */
    struct sb__xfer *x = calloc(1, sizeof *x);
    if (x == NULL) {
        if (rq->own)
            sb__xfer_hub_free(rq->hub);
        return -ENOMEM;
    }
    atomic_init(&x->cancelled, false);
    x->stop = rq->stop;
    reset_hdrs(&x->cur);
    reset_hdrs(&x->final);
    x->hub = rq->hub;
    x->own_hub = rq->hub != NULL && rq->own;
    if (x->hub == NULL) {
        int rc = sb__xfer_hub_new(&x->hub);
        if (rc < 0) {
            free(x);
            return rc;
        }
        x->own_hub = true;
    }
    x->easy = curl_easy_init();
    if (x->easy == NULL) {
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
    SET(CURLOPT_PRIVATE, x);
    if (rq->share != NULL)
        SET(CURLOPT_SHARE, rq->share);
    if (rq->fresh)
        SET(CURLOPT_FRESH_CONNECT, 1L);
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
        curl_easy_setopt(e, CURLOPT_HEADERDATA, x) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_PRIVATE, x) != CURLE_OK) {
        sb__xfer_free(x);
        return -ENOMEM;
    }
    struct sb__xfer_hub *h = x->hub;
    token_take(h);
    bool ok = curl_multi_add_handle(h->multi, e) == CURLM_OK;
    if (ok) {
        x->added = true;
        x->prev = NULL;
        x->next = h->xfers;
        if (h->xfers != NULL)
            h->xfers->prev = x;
        h->xfers = x;
    }
    token_give(h);
    if (!ok) {
        sb__xfer_free(x);
        return -ENOMEM;
    }
    *out = x;
    return 0;
}

/* Whether x has what its reader waits for: staged bytes (or, for the
   headers, the final ones), its end, or a cancel. */
static bool answered_locked(const struct sb__xfer *x, bool for_headers)
{
    return x->done || stopped(x) || x->hub->broken != 0
           || (for_headers ? x->final_in : x->stage_len > x->stage_pos);
}

/* One round with the token held and hub.mu held: resume the transfers
   whose readers asked, let libcurl work, collect the ends, wake the
   others; then, when self still has nothing, wait (at most POLL_MS, less
   on a cancel or a wake-up) without hub.mu. */
static void pump_locked(struct sb__xfer_hub *h, struct sb__xfer *self, bool for_headers)
{
    for (struct sb__xfer *y = h->xfers; y != NULL; y = y->next) {
        if (!y->resume)
            continue;
        y->resume = false;
        y->paused = false;
        /* libcurl may hand over the piece it kept from inside this call. */
        CURLcode c = curl_easy_pause(y->easy, CURLPAUSE_CONT);
        if (c != CURLE_OK && !y->done) {
            y->done = true;
            y->result = c;
        }
    }
    int running = 0;
    CURLMcode mc = curl_multi_perform(h->multi, &running);
    if (mc != CURLM_OK) {
        h->broken = mc == CURLM_OUT_OF_MEMORY ? ENOMEM : EIO;
        broadcast(&h->cv);
        return;
    }
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(h->multi, &left)) != NULL) {
        struct sb__xfer *y = NULL;
        if (m->msg != CURLMSG_DONE ||
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&y) != CURLE_OK ||
            y == NULL)
            continue;
        y->done = true;
        y->result = m->data.result;
    }
    broadcast(&h->cv);
    if (answered_locked(self, for_headers) || h->want_token > 0)
        return;
    sb__http_unlock(&h->mu);
    mc = curl_multi_poll(h->multi, NULL, 0, POLL_MS, NULL);
    sb__http_lock(&h->mu);
    if (mc != CURLM_OK && mc != CURLM_UNRECOVERABLE_POLL) {
        h->broken = EIO;
        broadcast(&h->cv);
    }
}

/* With hub.mu held: until x is answered, pump when the token is free and
   nobody waits for it, else wait for a round to end. */
static void wait_locked(struct sb__xfer *x, bool for_headers)
{
    struct sb__xfer_hub *h = x->hub;
    while (!answered_locked(x, for_headers)) {
        if (!h->pumping && h->want_token == 0) {
            h->pumping = true;
            pump_locked(h, x, for_headers);
            h->pumping = false;
            broadcast(&h->cv);
        } else {
            cond_wait(&h->cv, &h->mu);
        }
    }
}

/* The transfer's error, once done: 0 for a success. */
static int done_errno(const struct sb__xfer *x)
{
    if (x->hub->broken != 0 && !x->done)
        return x->hub->broken;
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
    struct sb__xfer_hub *h = x->hub;
    int rc = 0;
    sb__http_lock(&h->mu);
    for (;;) {
        if (stopped(x)) {
            rc = -ECANCELED;
            break;
        }
        if (x->final_in)
            break;
        if (x->done || h->broken != 0) {
            int e = done_errno(x);
            if (e != 0) {
                rc = -e;
                break;
            }
            take_final(x); /* ended without a body: a 3xx not followed, a 204 */
            break;
        }
        wait_locked(x, true);
    }
    sb__http_unlock(&h->mu);
    return rc;
}

const struct sb__http_hdrs *sb__xfer_headers(const struct sb__xfer *x)
{
    /* Written once, before sb__xfer_wait_headers returned 0 (under
       hub.mu, which that call took after). */
    return &x->final;
}

const char *sb__xfer_url(struct sb__xfer *x)
{
    char *u = NULL;
    struct sb__xfer_hub *h = x->hub;
    token_take(h); /* the easy handle is the pumper's while it pumps */
    if (curl_easy_getinfo(x->easy, CURLINFO_EFFECTIVE_URL, &u) != CURLE_OK)
        u = NULL;
    token_give(h);
    return u;
}

bool sb__xfer_h2(struct sb__xfer *x, bool *cleartext)
{
    long v = 0;
    char *u = NULL;
    struct sb__xfer_hub *h = x->hub;
    token_take(h);
    bool h2 = curl_easy_getinfo(x->easy, CURLINFO_HTTP_VERSION, &v) == CURLE_OK &&
              v == CURL_HTTP_VERSION_2_0;
    *cleartext = h2 && curl_easy_getinfo(x->easy, CURLINFO_EFFECTIVE_URL, &u) == CURLE_OK &&
                 u != NULL && strncasecmp(u, "http:", 5) == 0;
    token_give(h);
    return h2;
}

bool sb__xfer_hub_idle(struct sb__xfer_hub *h)
{
    sb__http_lock(&h->mu);
    bool idle = h->xfers == NULL;
    sb__http_unlock(&h->mu);
    return idle;
}

/* With hub.mu held: the lent bytes are read; an empty stage starts over
   and a paused transfer is to be resumed. */
static void give_back_locked(struct sb__xfer *x)
{
    struct sb__xfer_hub *h = x->hub;
    if (x->lent == 0)
        return;
    x->stage_pos += x->lent;
    x->lent = 0;
    if (x->stage_pos == x->stage_len)
        x->stage_pos = x->stage_len = 0;
    if (x->paused && !x->resume && x->stage_len == x->stage_pos) {
        /* Empty: the pumper resumes it (the driving thread's call); a
           poll in progress wakes for it. */
        x->resume = true;
        if (h->pumping)
            (void)curl_multi_wakeup(h->multi);
    }
}

int sb__xfer_next(struct sb__xfer *x, const void **chunk, size_t *len)
{
    struct sb__xfer_hub *h = x->hub;
    sb__http_lock(&h->mu);
    give_back_locked(x);
    for (;;) {
        if (stopped(x)) {
            sb__http_unlock(&h->mu);
            return -ECANCELED;
        }
        x->was_read = true;
        size_t unread = x->stage_len - x->stage_pos;
        if (unread > 0) {
            /* Lent until the next call: the pumper only appends now. */
            x->lent = unread;
            *chunk = x->stage + x->stage_pos;
            *len = unread;
            sb__http_unlock(&h->mu);
            return 1;
        }
        if (x->paused) {
            if (!x->resume) {
                x->resume = true;
                if (h->pumping)
                    (void)curl_multi_wakeup(h->multi);
            }
        } else if (x->done || h->broken != 0) {
            int e = done_errno(x);
            sb__http_unlock(&h->mu);
            return -e;
        }
        /* Paused and asked to resume, it is not answered: the next round
           resumes it. */
        wait_locked(x, false);
    }
}

void sb__xfer_cancel(struct sb__xfer *x)
{
    struct sb__xfer_hub *h = x->hub;
    atomic_store_explicit(&x->cancelled, true, memory_order_release);
    /* Wakes a curl_multi_poll in progress, or makes the next one return
       at once; safe from any thread.  Readers waiting for a round wake
       on the broadcast. */
    (void)curl_multi_wakeup(h->multi);
    sb__http_lock(&h->mu);
    broadcast(&h->cv);
    sb__http_unlock(&h->mu);
}

static void xfer_free(struct sb__xfer *x, bool keep_hub)
{
    struct sb__xfer_hub *h = x->hub;
    if (x->added) {
        token_take(h);
        if (x->paused) {
            /* libcurl 7.88 frees the piece a paused transfer keeps only
               when the transfer is done with its connection, so it leaks
               when another transfer still uses that connection (an
               HTTP/2 stream's; curl issue 10971): hand it over, to be
               dropped, before the transfer goes. */
            x->discard = true;
            (void)curl_easy_pause(x->easy, CURLPAUSE_CONT);
        }
        (void)curl_multi_remove_handle(h->multi, x->easy);
        if (x->prev != NULL)
            x->prev->next = x->next;
        else
            h->xfers = x->next;
        if (x->next != NULL)
            x->next->prev = x->prev;
        x->added = false;
        token_give(h);
    }
    if (x->easy != NULL)
        curl_easy_cleanup(x->easy);
    if (x->own_hub && !keep_hub)
        sb__xfer_hub_free(h);
    curl_slist_free_all(x->headers);
    free(x->stage);
    free(x);
}

void sb__xfer_free(struct sb__xfer *x)
{
    if (x != NULL)
        xfer_free(x, false);
}

struct sb__xfer_hub *sb__xfer_free_keep(struct sb__xfer *x)
{
    if (x == NULL)
        return NULL;
    struct sb__xfer_hub *h = x->hub;
    /* Ended by libcurl without an error: the connection went back to the
       hub's cache (or was closed by the server's word, which libcurl
       noted): either way the hub is fit for the next transfer.  Cut off
       mid-body (a cancel) or failed, its connection is in no state to be
       reused, and the hub goes with it. */
    sb__http_lock(&h->mu);
    bool keep = x->own_hub && x->done && x->result == CURLE_OK && x->err == 0 &&
                h->broken == 0 && !stopped(x);
    sb__http_unlock(&h->mu);
    xfer_free(x, keep);
    return keep ? h : NULL;
}
