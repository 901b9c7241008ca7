/*
 * SPDX-License-Identifier: MIT
 *
 * streambuffer_http.h - an HTTP(S) URL as a seekable streambuffer source.
 *
 * libstreambuffer_http reads a URL with libcurl and hands it to the core
 * library as a ranged source (see "Ranged sources" in streambuffer.h): the
 * first stream is a plain GET from byte 0, and every later stream (a
 * *part*) is a ranged GET, "Range: bytes=off-" or "bytes=off-(end-1)",
 * guarded by If-Range, so that a read far ahead of the download waits for
 * one round trip and its own bytes instead of everything before them.
 *
 * Example: read the last 64 KiB of a large object without waiting for the
 * rest.
 *
 *     sb_buffer *b = sb_open_url("https://example.org/big.iso", NULL, NULL);
 *     if (b == NULL)
 *         err(1, "sb_open_url");          // ENOENT for a 404, ...
 *     sb_stats st;
 *     sb_get_stats(b, &st);               // st.length: the object's size
 *     ...sb_pread(b, buf, n, off)...      // any thread, any offset
 *     sb_close(b);
 *
 * How parts are made (the rules of the core library decide when):
 *
 *   - The first response teaches the source the object's length
 *     (Content-Length, or a Content-Range total), its validator (a strong
 *     ETag, else Last-Modified; a weak ETag, W/"...", is never used) and
 *     whether the server refuses ranges (Accept-Ranges: none).  Redirects
 *     are followed (at most 10); parts ask the final URL.
 *   - A part is accepted only as a 206 whose Content-Range starts at the
 *     asked offset and has the same total.  A 200 to a part is never
 *     delivered: with the same validator the server ignores Range (the
 *     part fails with ESPIPE: no more parts, the stream goes on as a
 *     plain one); with another validator or length the object changed
 *     (ESTALE).  A 206 whose total differs is ESTALE, one that starts
 *     elsewhere is EIO (a broken server or proxy: the core may retry).  A
 *     416 for a range at or past the length is an empty part (the end).
 *   - No parts at all (ESPIPE) after Accept-Ranges: none, a weak ETag
 *     without Last-Modified (the server says its bytes may differ between
 *     responses), or neither a validator nor a length.
 *   - Content-Encoding is never asked for (no Accept-Encoding), so offsets
 *     are the object's own bytes.  Proxies come from the environment, as
 *     for curl(1) (http_proxy, https_proxy, no_proxy).
 *   - Connections are shared through one libcurl multi handle per source
 *     (the hub), which keeps them, driven in turn by the threads that
 *     read its transfers.  On an HTTP/2 server (over TLS, by ALPN) every
 *     part is on it: the parts that run at once are streams of one
 *     connection.  Over HTTP/1.1 a part takes the hub when no transfer is
 *     on it (reusing the connection another left, keep-alive), else a
 *     multi handle of its own, which its thread alone drives: one handle
 *     pumped for many HTTP/1.1 transfers serialises them.  DNS answers
 *     and TLS sessions are shared too (a curl share handle).  Cleartext
 *     HTTP/2 by prior knowledge (set in setup) gets a connection a part:
 *     libcurl 7.88 fails a stream added to such a connection once it
 *     runs.
 *   - A read never blocks in libcurl beyond a cancel: the thread that
 *     drives waits in curl_multi_poll, which a part's cancel (and the
 *     source's) wakes, and the others on a condition variable that the
 *     cancel signals.
 *
 * Errors mid-stream are a part's negative errno (ECONNRESET for a dropped
 * connection, EIO for a body shorter than its Content-Length, ETIMEDOUT),
 * so the core reopens the part where it stopped.
 *
 * Link with -lstreambuffer_http -lstreambuffer, or: pkg-config --cflags
 * --libs streambuffer-http.
 */
#ifndef STREAMBUFFER_HTTP_H
#define STREAMBUFFER_HTTP_H

#include <streambuffer.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Options.  A NULL pointer or an all-zero struct means the defaults.  The
 * reserved tail must be zero (EINVAL otherwise), as in sb_options.
 */
typedef struct sb_http_options {
    /*
     * Optional: called on every libcurl easy handle (a CURL *, passed as
     * void * so that this header does not need curl/curl.h) after the
     * library has set its own options and before the request starts: the
     * first request and every part.  Set any CURLOPT there (headers, auth,
     * proxy, TLS, timeouts).  Do not set CURLOPT_WRITEFUNCTION,
     * CURLOPT_HEADERFUNCTION, their data pointers, CURLOPT_RANGE,
     * CURLOPT_SHARE or CURLOPT_PRIVATE: the library needs them.  It may run
     * on any thread of the buffer, on several at once: it must be
     * thread-safe, and must not call into the buffer.
     */
    void (*setup)(void *curl, void *arg);
    void *setup_arg; /* passed to setup */
    void *reserved[6];
} sb_http_options;

/*
 * sb_open_url - a buffer over the body of an http:// or https:// URL.
 *
 * Sends the first request (a GET, redirects followed) on the calling
 * thread and blocks until the final response's headers have arrived (or
 * the request failed, or a timeout set by setup expired: libcurl's
 * connect timeout, 300 s, is the default bound).  With a 2xx answer it
 * opens the buffer (sb_open) with the transfer already under way as its
 * first stream and the source of sb_http_source for every later part,
 * and returns.  If opts->length_hint is 0 and the response gave the
 * length, that length is the hint.  The string url is copied.
 *
 * Returns the new buffer, or NULL with errno:
 *   EINVAL        url or opts is invalid (see sb_http_source, sb_open).
 *   ENOENT        404 Not Found, 410 Gone.
 *   EACCES        401 Unauthorized, 403 Forbidden.
 *   EIO           any other status that is not 2xx (a 3xx without a
 *                 Location, a 5xx...).
 *   ECONNREFUSED  nothing listens there.
 *   EHOSTUNREACH  the host name does not resolve.
 *   ETIMEDOUT     a timeout (setup's CURLOPT_TIMEOUT, the connect timeout).
 *   EPROTO        the answer is not HTTP (garbage, an empty reply), or
 *                 TLS failed.
 *   ELOOP         more than 10 redirects.
 *   ENOMEM, EAGAIN  as sb_open.
 *
 * Thread-safety: safe to call from any thread.
 */
sb_buffer *sb_open_url(const char *url, const sb_options *opts,
                       const sb_http_options *http);

/*
 * sb_http_source - the seekable source alone, for sb_open or for use on
 * its own.
 *
 * Fills *out with a source whose read and next are NULL and whose
 * open_at, cancel and close are set (ctx is the library's): the first
 * stream is open_at(ctx, 0, ...), and each open_at sends one request and
 * blocks until its final headers are in (see the rules above for what it
 * returns: 0; -ESPIPE, -ESTALE; -ENOENT, -EACCES, -EIO, -ECONNREFUSED,
 * ... as for sb_open_url; -ECANCELED after cancel).  Sends nothing
 * itself.  Each part is iterator-style (next; read is NULL): its next
 * lends what has arrived, pumping its own transfer until at least one
 * byte is there, and returns 1 with a chunk that stays valid until its
 * next call or its close (0 at its end, or a negative errno); the buffer
 * stores from the chunk without a copy of its own.  Its cancel makes a
 * next in progress (and every later one) return -ECANCELED at once, from
 * any thread; its close frees it.  The
 * source's cancel does that to every part and to every open_at in
 * progress, and makes later ones fail with -ECANCELED.  Close every part
 * before the source's close.  url and *http are copied.
 *
 * Returns 0, or -1 with errno:
 *   EINVAL  url or out is NULL; url is not an absolute http:// or
 *           https:// URL; a reserved field of *http is not zero.
 *   ENOMEM  out of memory.
 *
 * Thread-safety: safe to call from any thread.  open_at may run on any
 * number of threads at once; each part is used by one thread at a time
 * (its cancel excepted).
 */
int sb_http_source(const char *url, const sb_http_options *http,
                   sb_source *out);

#ifdef __cplusplus
}
#endif

#endif /* STREAMBUFFER_HTTP_H */
