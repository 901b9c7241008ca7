/*
 * SPDX-License-Identifier: MIT
 *
 * xfer.h - HTTP requests driven without blocking beyond a cancel.
 *
 * A transfer is a libcurl easy handle on a hub: a multi handle that the
 * source's transfers share (and with it the connections libcurl keeps),
 * pumped by whichever thread reads and finds the hub's token free (see
 * xfer.c).  Its body goes through a small staging buffer; while that is
 * full the transfer is paused, so a slow reader holds the connection (or
 * its HTTP/2 stream) back instead of growing memory.  It knows HTTP only
 * as far as parsing the headers that the source (source.c) decides on.
 * Internal.
 */
#ifndef SB_HTTP_XFER_H
#define SB_HTTP_XFER_H

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/types.h>

/* What the final response's headers said. */
struct sb__http_hdrs {
    long status;            /* 0 until the final headers are in */
    int64_t content_length; /* -1: none */
    bool has_range;         /* a Content-Range was parsed */
    bool range_unsatisfied; /* it was "bytes STAR/total" (a 416's) */
    uint64_t range_first, range_last;
    uint64_t range_total;   /* UINT64_MAX: "/STAR", unknown */
    bool accept_none;       /* Accept-Ranges: none */
    bool has_location;      /* a Location header (a redirect) */
    char etag[256];         /* as sent (W/ and quotes kept); "" none */
    char last_modified[64]; /* as sent; "" none */
};

struct sb__xfer_req {
    const char *url;
    const char *range;         /* "a-" or "a-b"; NULL: no Range */
    const char *if_range;      /* an ETag or a date; NULL: no If-Range */
    CURLSH *share;             /* NULL: none */
    void (*setup)(void *curl, void *arg);
    void *setup_arg;
    const atomic_bool *stop;   /* the source's cancel flag; NULL: none */
    struct sb__xfer_hub *hub;  /* the source's; NULL: one of its own */
    bool own;                  /* hub is this transfer's alone (a spare
                                  that sb__xfer_free_keep gave back) */
    bool fresh;                /* a connection of its own (CURLOPT_FRESH_CONNECT) */
};

struct sb__xfer;
struct sb__xfer_hub;

/* A lock that cannot be taken is a broken program: there is no error to
   return from where the HTTP source locks, and going on unlocked would
   corrupt memory.  (The core's sb__mutex_lock is not exported to this
   library.) */
static inline void sb__http_lock(pthread_mutex_t *m)
{
    if (pthread_mutex_lock(m) != 0)
        abort();
}

static inline void sb__http_unlock(pthread_mutex_t *m)
{
    if (pthread_mutex_unlock(m) != 0)
        abort();
}

/* A hub for one source's transfers; freed after every transfer on it.
   0 or -ENOMEM. */
int sb__xfer_hub_new(struct sb__xfer_hub **out);
void sb__xfer_hub_free(struct sb__xfer_hub *h);

/* Makes the handles, starts nothing.  0 or -ENOMEM/-EINVAL; an own hub
   (rq->own) is freed on failure. */
int sb__xfer_new(const struct sb__xfer_req *rq, struct sb__xfer **out);
/* Pumps until the final response's headers are in: 0, or the transfer's
   -errno (-ECANCELED after a cancel). */
int sb__xfer_wait_headers(struct sb__xfer *x);
const struct sb__http_hdrs *sb__xfer_headers(const struct sb__xfer *x);
/* The URL the final response came from (after redirects); NULL unknown.
   Valid until sb__xfer_free. */
const char *sb__xfer_url(struct sb__xfer *x);
/* Whether the final response came as HTTP/2, and in *cleartext whether
   without TLS (prior knowledge, h2c).  After sb__xfer_wait_headers. */
bool sb__xfer_h2(struct sb__xfer *x, bool *cleartext);
/* Whether no transfer is on h now. */
bool sb__xfer_hub_idle(struct sb__xfer_hub *h);
/* The next body bytes, as sb_source.next: 1 with *chunk and *len (the
   stage's unread bytes, lent until the next call or sb__xfer_free), 0 at
   the end, or -errno.  The owner's thread only. */
int sb__xfer_next(struct sb__xfer *x, const void **chunk, size_t *len);
/* Any thread, at any time before sb__xfer_free: a pump in progress and
   every later one return -ECANCELED. */
void sb__xfer_cancel(struct sb__xfer *x);
void sb__xfer_free(struct sb__xfer *x);
/* sb__xfer_free, but a hub of the transfer's own whose transfer ended
   cleanly (libcurl kept its connection, if the server allowed) is
   returned for another transfer, rather than freed with its connection;
   NULL otherwise. */
struct sb__xfer_hub *sb__xfer_free_keep(struct sb__xfer *x);


/* The errno for a transfer's CURLcode. */
int sb__curl_errno(CURLcode c);
/* Once, thread-safely: curl_global_init.  0 or -ENOMEM. */
int sb__curl_init(void);

#endif /* SB_HTTP_XFER_H */
