/*
 * SPDX-License-Identifier: MIT
 *
 * source.c - the HTTP source: what a response means for a part, and
 * sb_open_url.
 *
 * One source (struct src) per URL.  The first response teaches it the
 * object's length, validator and the server's word on ranges; every part
 * is then a ranged GET with If-Range, accepted only when its response
 * proves it carries the same object's bytes from the asked offset (the
 * rules are in streambuffer_http.h).  The transfers themselves are
 * xfer.c's.
 *
 * Threads: open_at runs on any fetcher thread, several at once, and the
 * source's cancel on any thread; so what they share (the learned facts,
 * the list of live parts, the cancel flag) is under src.mu or atomic.  A
 * part is its reader's alone, but for its cancel (xfer.c's, thread-safe).
 * DNS and TLS sessions are shared through a curl share handle with one
 * mutex per kind of data, as libcurl asks.  Connections are shared by
 * putting every transfer of the source on one multi handle, the hub
 * (xfer.c), rather than through the share handle: libcurl does not
 * support a connection cache used by concurrent threads
 * (CURLSHOPT_SHARE(3), CURL_LOCK_DATA_CONNECT).
 */
#include "streambuffer_http.h"
#include "xfer.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SB_API __attribute__((visibility("default")))

/* Kept-alive connections kept for later parts: as many as parts can run
   at once (SB__MAX_PARTS in the core). */
#define SPARE_HUBS 16

/* What the buffer compares across a seam (streambuffer.h: 4 KiB). */
#ifndef SEAM_MARGIN
#define SEAM_MARGIN ((uint64_t)4096)
#endif

struct part {
    struct part *prev, *next; /* src.live, under src.mu */
    struct src *s;
    struct sb__xfer *x;       /* NULL: an empty part (a range at the end) */
};

struct src {
    char *url;
    sb_http_options http;
    CURLSH *share;
    pthread_mutex_t share_mu[CURL_LOCK_DATA_LAST];
    atomic_bool stop;         /* the source's cancel */

    pthread_mutex_t mu;       /* everything below */
    struct part *live;        /* every part not yet freed */
    bool learned;             /* a first response was accepted */
    int no_parts;             /* 0, or ESPIPE/ESTALE for every later part */
    unsigned bad_ranges;      /* 206s that started elsewhere */
    bool length_known;
    uint64_t length;
    char etag[256];           /* strong ETag, "" none */
    char last_modified[64];   /* "" none */
    char *final_url;          /* after redirects; NULL: url */

    struct part *first;       /* sb_open_url's first stream */

    struct sb__xfer_hub *hub; /* every transfer's multi handle (xfer.c) */
    /* Hubs of HTTP/1.1 parts that ended cleanly, each with the connection
       its part left kept alive in it: the next part that cannot have the
       hub takes one, and sends its request on that connection rather than
       open a new one (random reads make a part each).  Under mu. */
    struct sb__xfer_hub *spare[SPARE_HUBS];
    unsigned nspare;
    /* The first response's protocol.  Over HTTP/2 (TLS) every part is on
       the hub: streams of one connection.  Over HTTP/1.1 a part takes the
       hub only when no transfer is on it (the connection another left,
       kept alive), else a multi handle of its own: one hub pumped for
       many HTTP/1.1 transfers serialises them (bench-http F2 ran half as
       fast).  Cleartext HTTP/2 (prior knowledge): libcurl 7.88 fails a
       stream added to such a connection once it runs (CURLE_HTTP2), so
       each part also asks for a fresh connection. */
    bool h2, h2c;
};

/* ---- locks ------------------------------------------------------------------ */

static void share_lock(CURL *h, curl_lock_data d, curl_lock_access a, void *u)
{
    struct src *s = u;
    (void)h;
    (void)a; /* shared or single: one mutex serves both */
    if ((unsigned)d < CURL_LOCK_DATA_LAST)
        sb__http_lock(&s->share_mu[d]);
}

static void share_unlock(CURL *h, curl_lock_data d, void *u)
{
    struct src *s = u;
    (void)h;
    if ((unsigned)d < CURL_LOCK_DATA_LAST)
        sb__http_unlock(&s->share_mu[d]);
}

/* ---- parts ------------------------------------------------------------------ */

static void link_part(struct part *p)
{
    struct src *s = p->s;
    sb__http_lock(&s->mu);
    p->prev = NULL;
    p->next = s->live;
    if (s->live != NULL)
        s->live->prev = p;
    s->live = p;
    sb__http_unlock(&s->mu);
}

/* Off the list first, so that the source's cancel never touches a
   transfer being freed. */
static void free_part(struct part *p)
{
    struct src *s = p->s;
    sb__http_lock(&s->mu);
    if (p->prev != NULL)
        p->prev->next = p->next;
    else if (s->live == p)
        s->live = p->next;
    if (p->next != NULL)
        p->next->prev = p->prev;
    sb__http_unlock(&s->mu);
    struct sb__xfer_hub *keep = sb__xfer_free_keep(p->x);
    if (keep != NULL) {
        sb__http_lock(&s->mu);
        if (s->nspare < SPARE_HUBS) {
            s->spare[s->nspare++] = keep;
            keep = NULL;
        }
        sb__http_unlock(&s->mu);
        sb__xfer_hub_free(keep);
    }
    free(p);
}

/* A spare hub (a kept-alive connection) for a part, or NULL. */
static struct sb__xfer_hub *take_spare(struct src *s)
{
    sb__http_lock(&s->mu);
    struct sb__xfer_hub *h = s->nspare > 0 ? s->spare[--s->nspare] : NULL;
    sb__http_unlock(&s->mu);
    return h;
}

static int part_next(void *ctx, const void **chunk, size_t *len)
{
    struct part *p = ctx;
    if (p->x == NULL)
        return atomic_load(&p->s->stop) ? -ECANCELED : 0;
    return sb__xfer_next(p->x, chunk, len);
}

static void part_cancel(void *ctx)
{
    struct part *p = ctx;
    if (p->x != NULL)
        sb__xfer_cancel(p->x);
}

static void part_close(void *ctx)
{
    free_part(ctx);
}

static bool strong_etag(const char *etag)
{
    return etag[0] != '\0' && strncmp(etag, "W/", 2) != 0;
}

/* A first response (2xx from byte 0, or a 206 from where asked): what it
   says about the object.  Under s->mu. */
static void learn(struct src *s, const struct sb__http_hdrs *h, uint64_t off,
                  const char *url)
{
    s->learned = true;
    if (h->status == 206 && h->has_range && h->range_total != UINT64_MAX) {
        s->length_known = true;
        s->length = h->range_total;
    } else if (h->status != 206 && h->content_length >= 0 && off == 0) {
        s->length_known = true;
        s->length = (uint64_t)h->content_length;
    }
    if (strong_etag(h->etag))
        snprintf(s->etag, sizeof s->etag, "%s", h->etag);
    snprintf(s->last_modified, sizeof s->last_modified, "%s", h->last_modified);
    /* A weak ETag without a date: the server says its representations may
       differ byte for byte, so no part can be trusted to continue one. */
    if (h->accept_none ||
        (h->etag[0] != '\0' && s->etag[0] == '\0' && s->last_modified[0] == '\0') ||
        (s->etag[0] == '\0' && s->last_modified[0] == '\0' && !s->length_known))
        s->no_parts = ESPIPE;
    if (url != NULL && strcmp(url, s->url) != 0 && s->final_url == NULL)
        s->final_url = strdup(url); /* NULL on ENOMEM: parts ask url again */
}

/* Whether a full response (200) is another version of the object than the
   one learned.  Under s->mu. */
static bool changed(const struct src *s, const struct sb__http_hdrs *h)
{
    if (s->etag[0] != '\0')
        return strcmp(h->etag, s->etag) != 0;
    if (s->last_modified[0] != '\0' &&
        strcmp(h->last_modified, s->last_modified) != 0)
        return true;
    return s->length_known && h->content_length >= 0 &&
           (uint64_t)h->content_length != s->length;
}

static int status_errno(long status)
{
    switch (status) {
    case 404:
    case 410:
        return ENOENT;
    case 401:
    case 403:
        return EACCES;
    default:
        return EIO;
    }
}

/*
 * What the final headers of a request for [off, ...) mean: 0 (take the
 * body), 1 (an empty part: the range starts at or past the end), or
 * -errno.  ESPIPE and ESTALE are remembered for every later part.  Under
 * s->mu.
 */
static int judge(struct src *s, const struct sb__http_hdrs *h, uint64_t off,
                 bool ranged, const char *url)
{
    int no = 0;
    if (h->status == 206) {
        if (!h->has_range || h->range_unsatisfied)
            return -EIO; /* a 206 must say what it carries */
        if (s->learned && s->length_known && h->range_total != UINT64_MAX &&
            h->range_total != s->length) {
            no = ESTALE; /* another length: another object */
        } else if (s->learned && s->etag[0] != '\0' && strong_etag(h->etag) &&
                   strcmp(h->etag, s->etag) != 0) {
            no = ESTALE; /* If-Range should have stopped this; it did not */
        } else if (h->range_first != off) {
            /* Bytes from elsewhere, of the same object as far as we can
               tell: a broken server or proxy.  Not ESTALE (nothing says
               the object changed).  The first time EIO, which the core
               retries (a proxy's glitch); the second, ESPIPE: this server
               cannot be trusted with ranges, and the stream goes on
               without parts rather than failing on retries. */
            if (++s->bad_ranges < 2)
                return -EIO;
            no = ESPIPE;
        } else {
            if (!s->learned) {
                learn(s, h, off, url);
            } else if (!s->length_known && h->range_total != UINT64_MAX) {
                s->length_known = true; /* the first response had none */
                s->length = h->range_total;
            }
            return 0;
        }
    } else if (h->status == 416) {
        uint64_t total = s->length_known ? s->length
                         : h->has_range ? h->range_total : UINT64_MAX;
        if (total != UINT64_MAX && off >= total) {
            if (s->learned && !s->length_known) {
                s->length_known = true;
                s->length = total;
            }
            return 1;
        }
        no = ESTALE; /* inside the object as we knew it: it shrank */
    } else if (h->status / 100 == 2) {
        if (!ranged) {
            learn(s, h, off, url); /* the first request, a plain GET */
            return 0;
        }
        if (!s->learned && off == 0) {
            learn(s, h, off, url);
            return 0;
        }
        if (s->learned && changed(s, h)) {
            no = ESTALE; /* If-Range failed: the validator moved */
        } else if (off == 0) {
            return 0; /* the whole object from 0 is what was asked */
        } else {
            no = ESPIPE; /* same object, whole body: Range is ignored */
        }
    } else {
        return -status_errno(h->status);
    }
    if (!ranged)
        return -EIO; /* a 206 or 416 to a request without Range */
    if (s->no_parts == 0)
        s->no_parts = no;
    return -no;
}

/*
 * Opens the stream at off: sends the request and waits for its final
 * headers (a cancel ends the wait).  On 0, *out is the part (its x NULL for
 * an empty one) and *length the object's length if known.
 */
static int open_part(struct src *s, uint64_t off, uint64_t end,
                     struct part **out, uint64_t *length)
{
    char range[64], *url, *if_range = NULL;
    bool ranged;
    int rc;

    if (atomic_load(&s->stop))
        return -ECANCELED;
    sb__http_lock(&s->mu);
    if (s->no_parts != 0) {
        rc = s->no_parts;
        sb__http_unlock(&s->mu);
        return -rc;
    }
    struct part *p = calloc(1, sizeof *p);
    url = strdup(s->final_url != NULL ? s->final_url : s->url);
    bool s_learned = s->learned;
    if (s_learned)
        if_range = strdup(s->etag[0] != '\0' ? s->etag : s->last_modified);
    bool at_end = s->learned && s->length_known && off >= s->length;
    uint64_t len = s->length;
    bool len_known = s->length_known;
    bool h2c = s->h2c, h2 = s->h2;
    /* The first request is a plain GET: it works on every server, and the
       response says whether ranges do. */
    ranged = s->learned || off > 0;
    sb__http_unlock(&s->mu);
    if (p == NULL || url == NULL || (ranged && s_learned && if_range == NULL)) {
        rc = -ENOMEM;
        goto fail;
    }
    p->s = s;
    if (at_end) {
        *out = p;
        *length = len;
        link_part(p);
        free(url);
        free(if_range);
        return 0;
    }
    /* The buffer reads SEAM_MARGIN past end, to compare its seam with the
       bytes held there (streambuffer.h, "Seams"): ask for them too. */
    if (end != UINT64_MAX && end > off && UINT64_MAX - end > SEAM_MARGIN)
        end += SEAM_MARGIN;
    if (end == UINT64_MAX || end <= off || (len_known && end >= len))
        snprintf(range, sizeof range, "%" PRIu64 "-", off);
    else
        snprintf(range, sizeof range, "%" PRIu64 "-%" PRIu64, off, end - 1);
    struct sb__xfer_hub *hub = NULL;
    bool own = false;
    if (!s_learned || (h2 && !h2c) || sb__xfer_hub_idle(s->hub))
        hub = s->hub;
    else if (!h2c)
        own = (hub = take_spare(s)) != NULL;
    struct sb__xfer_req rq = {
        .url = url,
        .range = ranged ? range : NULL,
        .if_range = if_range != NULL && if_range[0] != '\0' ? if_range : NULL,
        .share = s->share,
        .setup = s->http.setup,
        .setup_arg = s->http.setup_arg,
        .stop = &s->stop,
        .hub = hub,
        .own = own,
        .fresh = h2c,
    };
    rc = sb__xfer_new(&rq, &p->x);
    if (rc < 0)
        goto fail; /* an own hub went with it */
    link_part(p); /* from here the source's cancel reaches it */
    rc = sb__xfer_wait_headers(p->x);
    if (rc == 0) {
        const char *final_url = sb__xfer_url(p->x);
        bool first_h2c = false;
        bool first_h2 = !s_learned && sb__xfer_h2(p->x, &first_h2c);
        sb__http_lock(&s->mu);
        if (first_h2) {
            s->h2 = true;
            s->h2c = first_h2c;
        }
        rc = judge(s, sb__xfer_headers(p->x), off, ranged, final_url);
        len_known = s->length_known;
        len = s->length;
        sb__http_unlock(&s->mu);
    }
    if (rc == 1) { /* an empty part: its transfer is of no use */
        sb__xfer_free(p->x);
        p->x = NULL;
        rc = 0;
    }
    free(url);
    free(if_range);
    if (rc < 0) {
        free_part(p);
        return rc;
    }
    if (len_known)
        *length = len;
    *out = p;
    return 0;
fail:
    free(p);
    free(url);
    free(if_range);
    return rc;
}

static void fill_part(struct part *p, sb_source *part)
{
    memset(part, 0, sizeof *part);
    part->next = part_next; /* stored from the stage: no copy of ours */
    part->cancel = part_cancel;
    part->close = part_close;
    part->ctx = p;
}

static int src_open_at(void *ctx, uint64_t off, uint64_t end, sb_source *part,
                       uint64_t *length)
{
    struct part *p;
    int rc = open_part(ctx, off, end, &p, length);
    if (rc == 0)
        fill_part(p, part);
    return rc;
}

/* Every part, every open_at in progress, and every later one. */
static void src_cancel(void *ctx)
{
    struct src *s = ctx;
    atomic_store(&s->stop, true);
    sb__http_lock(&s->mu);
    for (struct part *p = s->live; p != NULL; p = p->next)
        if (p->x != NULL)
            sb__xfer_cancel(p->x);
    sb__http_unlock(&s->mu);
}

static void src_free(struct src *s)
{
    /* Its connections first: closing one may use the share. */
    while (s->nspare > 0)
        sb__xfer_hub_free(s->spare[--s->nspare]);
    sb__xfer_hub_free(s->hub);
    if (s->share != NULL)
        (void)curl_share_cleanup(s->share);
    for (unsigned i = 0; i < CURL_LOCK_DATA_LAST; i++)
        (void)pthread_mutex_destroy(&s->share_mu[i]);
    (void)pthread_mutex_destroy(&s->mu);
    free(s->final_url);
    free(s->url);
    free(s);
}

static void src_close(void *ctx)
{
    struct src *s = ctx;
    if (s->first != NULL)
        free_part(s->first);
    /* The caller closed every other part first (the contract); one left
       would keep the share handle in use. */
    src_free(s);
}

/* sb_open_url's first stream, read through the source itself. */
static int first_next(void *ctx, const void **chunk, size_t *len)
{
    struct src *s = ctx;
    return part_next(s->first, chunk, len);
}

/* The buffer reads the first stream no more (parts hold the rest): its
   transfer goes now (its connection closes, or goes back to the hub),
   rather than take the server's bytes unread until sb_close. */
static void first_done(void *ctx)
{
    struct src *s = ctx;
    sb__http_lock(&s->mu);
    struct part *p = s->first;
    s->first = NULL;
    sb__http_unlock(&s->mu);
    if (p != NULL)
        free_part(p);
}

static bool all_zero(const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i] != 0)
            return false;
    return true;
}

/* An absolute http:// or https:// URL, as libcurl parses it. */
static int check_url(const char *url)
{
    CURLU *u = curl_url();
    char *scheme = NULL;
    int rc = -EINVAL;
    if (u == NULL)
        return -ENOMEM;
    if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        (strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0))
        rc = 0;
    curl_free(scheme);
    curl_url_cleanup(u);
    return rc;
}

static int new_src(const char *url, const sb_http_options *http, struct src **out)
{
    if (url == NULL || (http != NULL && !all_zero(http->reserved, sizeof http->reserved)))
        return -EINVAL;
    int rc = sb__curl_init();
    if (rc == 0)
        rc = check_url(url);
    if (rc < 0)
        return rc;
    struct src *s = calloc(1, sizeof *s);
    if (s == NULL)
        return -ENOMEM;
    atomic_init(&s->stop, false);
    if (http != NULL)
        s->http = *http;
    unsigned made = 0;
    bool mu = pthread_mutex_init(&s->mu, NULL) == 0;
    while (mu && made < CURL_LOCK_DATA_LAST &&
           pthread_mutex_init(&s->share_mu[made], NULL) == 0)
        made++;
    s->url = strdup(url);
    s->share = curl_share_init();
    if (!mu || made < CURL_LOCK_DATA_LAST || s->url == NULL || s->share == NULL ||
        curl_share_setopt(s->share, CURLSHOPT_LOCKFUNC, share_lock) != CURLSHE_OK ||
        curl_share_setopt(s->share, CURLSHOPT_UNLOCKFUNC, share_unlock) != CURLSHE_OK ||
        curl_share_setopt(s->share, CURLSHOPT_USERDATA, s) != CURLSHE_OK ||
        curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) != CURLSHE_OK ||
        curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) !=
            CURLSHE_OK) {
        if (s->share != NULL)
            (void)curl_share_cleanup(s->share);
        for (unsigned i = 0; i < made; i++)
            (void)pthread_mutex_destroy(&s->share_mu[i]);
        if (mu)
            (void)pthread_mutex_destroy(&s->mu);
        free(s->url);
        free(s);
        return -ENOMEM;
    }
    rc = sb__xfer_hub_new(&s->hub);
    if (rc < 0) {
        src_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

SB_API int sb_http_source(const char *url, const sb_http_options *http,
                          sb_source *out)
{
    struct src *s;
    int rc = out == NULL ? -EINVAL : new_src(url, http, &s);
    if (rc < 0) {
        errno = -rc;
        return -1;
    }
    memset(out, 0, sizeof *out);
    out->open_at = src_open_at;
    out->cancel = src_cancel;
    out->close = src_close;
    out->ctx = s;
    return 0;
}

SB_API sb_buffer *sb_open_url(const char *url, const sb_options *opts,
                              const sb_http_options *http)
{
    struct src *s;
    uint64_t length = UINT64_MAX;
    int rc = new_src(url, http, &s);
    if (rc < 0) {
        errno = -rc;
        return NULL;
    }
    /* The first request on the caller's thread: its errors are the
       caller's to see, and a buffer is made only for a body that comes. */
    rc = open_part(s, 0, UINT64_MAX, &s->first, &length);
    if (rc < 0) {
        src_free(s);
        errno = -rc;
        return NULL;
    }
    sb_options o;
    memset(&o, 0, sizeof o);
    if (opts != NULL)
        o = *opts;
    if (o.length_hint == 0 && length != UINT64_MAX &&
        (o.max_size == 0 || length <= o.max_size))
        o.length_hint = length;
    /* The response's length is the object's: the core knows it from the
       start (reads past it answer at once, sb_stats shows it), as if a
       part had reported it. */
    bool exact = length != UINT64_MAX && length != 0 && o.length_hint == length;
    /* The transfer under way is the first stream (read), open_at the
       rest: a core without parts reads it as a plain stream. */
    sb_source src;
    memset(&src, 0, sizeof src);
    src.next = first_next;
    src.done = first_done;
    /* No parts possible (Accept-Ranges: none, a weak ETag alone...): a
       plain source, and the buffer starts no fetchers for nothing. */
    sb__http_lock(&s->mu);
    if (s->no_parts == 0) {
        src.open_at = src_open_at;
        if (exact)
            o.flags |= SB_LENGTH_KNOWN;
    }
    sb__http_unlock(&s->mu);
    src.cancel = src_cancel;
    src.close = src_close;
    src.ctx = s;
    sb_buffer *b = sb_open(&src, &o);
    if (b == NULL) {
        int e = errno;
        src_close(s);
        errno = e;
    }
    return b;
}
