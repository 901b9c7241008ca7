/* SPDX-License-Identifier: MIT */
/*
 * http_tail - download a URL and read both of its ends while it arrives.
 *
 *   http_tail [-n BYTES] [-o PREFIX] [-t SECONDS] URL
 *
 * libcurl pushes the body into a streambuffer in push mode: its write
 * callback calls sb_write, and when the transfer is over the main thread
 * calls sb_finish, with 0 or an errno made from the CURLcode.  Meanwhile two
 * reader threads use the same buffer:
 *
 *   head  reads the first BYTES (default 64 KiB) at once: it gets them as
 *         soon as they have arrived, long before the download ends;
 *   tail  reads the last 64 KiB: it learns the length from Content-Length as
 *         soon as the response headers are in (or, without one, waits for
 *         the end with sb_wait_end), then blocks in sb_pread until exactly
 *         those bytes have arrived.
 *
 * That is the buffer's whole point: a one-pass stream read at two offsets,
 * ahead and behind, by two threads, without either one waiting for the
 * other.  Bytes past the memory limit (5 MiB) go to an unlinked temporary
 * file; nothing is left behind.
 *
 * It prints the length, when each reader got its bytes and how much of the
 * stream had arrived by then, and the first and last 16 bytes of each
 * range in hex.  With -o PREFIX it also writes the ranges to PREFIX.head
 * and PREFIX.tail.  Exit status: 0 if the download and both reads succeeded
 * and a re-read of both ranges after the end gives the same bytes; 1 on any
 * error; 2 on bad usage.
 *
 * Uses only the public streambuffer API.  Build:
 *   cc -std=c11 http_tail.c $(pkg-config --cflags --libs streambuffer libcurl)
 */
#include <streambuffer.h>

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TAIL_BYTES ((uint64_t)64 << 10)

typedef unsigned long long ull;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ---- the download: libcurl's callbacks push into the buffer ------------ */

struct download {
    CURL *curl;
    sb_buffer *b;
    int write_err; /* sb_write's errno, if it failed */

    /* The total length, once the headers are in: known says whether
       length has been decided, and length is -1 when the server did not
       say.  mu and cv hand it to the tail reader. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool known;
    int64_t length;
};

static void announce_length(struct download *d, int64_t length)
{
    pthread_mutex_lock(&d->mu);
    if (!d->known) {
        d->known = true;
        d->length = length;
        pthread_cond_broadcast(&d->cv);
    }
    pthread_mutex_unlock(&d->mu);
}

/* Called for every header line.  The empty line ends a response's headers;
   only a 2xx response's length is the body's (a redirect or a 100 Continue
   is followed by more headers). */
static size_t on_header(char *line, size_t size, size_t nitems, void *ud)
{
    struct download *d = ud;
    size_t len = size * nitems;
    if ((len == 2 && line[0] == '\r' && line[1] == '\n') ||
        (len == 1 && line[0] == '\n')) {
        long code = 0;
        curl_off_t cl = -1;
        if (curl_easy_getinfo(d->curl, CURLINFO_RESPONSE_CODE, &code) ==
                CURLE_OK &&
            code >= 200 && code < 300 &&
            curl_easy_getinfo(d->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T,
                              &cl) == CURLE_OK)
            announce_length(d, cl >= 0 ? (int64_t)cl : -1);
    }
    return len;
}

/* The body: straight into the buffer.  Returning less than given makes
   libcurl stop with CURLE_WRITE_ERROR. */
static size_t on_data(char *data, size_t size, size_t nmemb, void *ud)
{
    struct download *d = ud;
    size_t len = size * nmemb;
    if (len > 0 && sb_write(d->b, data, len) < 0) {
        d->write_err = errno;
        return 0;
    }
    return len;
}

/* The errno the stream fails with when the transfer did. */
static int transfer_errno(CURLcode rc, int write_err)
{
    switch (rc) {
    case CURLE_OK:
        return 0;
    case CURLE_WRITE_ERROR:
        return write_err != 0 ? write_err : EIO;
    case CURLE_OUT_OF_MEMORY:
        return ENOMEM;
    case CURLE_OPERATION_TIMEDOUT:
        return ETIMEDOUT;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return EHOSTUNREACH;
    case CURLE_COULDNT_CONNECT:
        return ECONNREFUSED;
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
        return ECONNRESET;
    case CURLE_PARTIAL_FILE: /* shorter than its Content-Length */
        return EPIPE;
    case CURLE_HTTP_RETURNED_ERROR:
        return EPROTO;
    case CURLE_REMOTE_FILE_NOT_FOUND:
        return ENOENT;
    case CURLE_ABORTED_BY_CALLBACK:
        return ECANCELED;
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
        return EINVAL;
    default:
        return EIO;
    }
}

/* ---- the readers ----------------------------------------------------------- */

struct range_read {
    const char *name;
    struct download *d;
    double t0;
    uint64_t want; /* head: bytes to read; tail: TAIL_BYTES */
    /* Results, read by main after the join. */
    uint64_t off;
    unsigned char *buf;
    ssize_t got;       /* sb_pread's return */
    int err;           /* its errno, or sb_wait_end's */
    double at_ms;      /* when it returned, since the start */
    uint64_t arrived;  /* sb_available then */
    bool from_header;  /* tail: the length came from Content-Length */
};

static void finish_read(struct range_read *r, ssize_t got)
{
    r->got = got;
    r->err = got < 0 ? errno : 0;
    r->arrived = sb_available(r->d->b);
    r->at_ms = now_ms() - r->t0;
}

static void *head_main(void *arg)
{
    struct range_read *r = arg;
    r->off = 0;
    finish_read(r, sb_pread(r->d->b, r->buf, (size_t)r->want, 0));
    return NULL;
}

static void *tail_main(void *arg)
{
    struct range_read *r = arg;
    struct download *d = r->d;

    pthread_mutex_lock(&d->mu);
    while (!d->known)
        pthread_cond_wait(&d->cv, &d->mu);
    int64_t announced = d->length;
    pthread_mutex_unlock(&d->mu);

    uint64_t len;
    if (announced >= 0) {
        len = (uint64_t)announced;
        r->from_header = true;
    } else if (sb_wait_end(d->b, &len) != 0) {
        r->err = errno;
        r->got = -1;
        r->at_ms = now_ms() - r->t0;
        return NULL;
    }
    r->off = len > r->want ? len - r->want : 0;
    finish_read(r, sb_pread(d->b, r->buf, (size_t)(len - r->off), r->off));
    return NULL;
}

/* ---- output ----------------------------------------------------------------- */

static void hex16(const char *label, const unsigned char *p, size_t n)
{
    printf("%s", label);
    for (size_t i = 0; i < n && i < 16; i++)
        printf(" %02x", p[i]);
    printf("\n");
}

static void report(const struct range_read *r)
{
    if (r->got < 0) {
        printf("  %-8s failed after %.1f ms: %s\n", r->name, r->at_ms,
               strerror(r->err));
        return;
    }
    size_t n = (size_t)r->got;
    printf("  %-8s %zu bytes at %llu, read %.1f ms after the start, when "
           "%llu bytes had arrived\n",
           r->name, n, (ull)r->off, r->at_ms, (ull)r->arrived);
    hex16("           first 16:", r->buf, n);
    hex16("           last 16: ", r->buf + (n > 16 ? n - 16 : 0), n);
}

/* Write what a reader got to PREFIX.SUFFIX.  0 or -1 (with a message). */
static int save(const char *prefix, const char *suffix,
                const struct range_read *r)
{
    size_t plen = strlen(prefix) + strlen(suffix) + 2;
    char *path = malloc(plen);
    if (path == NULL) {
        perror("http_tail: malloc");
        return -1;
    }
    snprintf(path, plen, "%s.%s", prefix, suffix);
    FILE *f = fopen(path, "wb");
    int rc = 0;
    if (f == NULL ||
        fwrite(r->buf, 1, (size_t)r->got, f) != (size_t)r->got) {
        fprintf(stderr, "http_tail: %s: %s\n", path, strerror(errno));
        rc = -1;
    }
    if (f != NULL && fclose(f) != 0 && rc == 0) {
        fprintf(stderr, "http_tail: %s: %s\n", path, strerror(errno));
        rc = -1;
    }
    free(path);
    return rc;
}

/* After the end: a second read of the range gives the same bytes (bytes
   that have arrived never change). */
static bool reread_matches(sb_buffer *b, const struct range_read *r)
{
    if (r->got <= 0)
        return true;
    unsigned char *again = malloc((size_t)r->got);
    if (again == NULL)
        return false;
    bool same = sb_pread(b, again, (size_t)r->got, r->off) == r->got &&
                memcmp(again, r->buf, (size_t)r->got) == 0;
    free(again);
    return same;
}

static void usage(FILE *to, int status)
{
    fprintf(to,
            "usage: http_tail [-n BYTES] [-o PREFIX] [-t SECONDS] URL\n"
            "\n"
            "Download URL into a streambuffer while one thread reads its "
            "first BYTES\n"
            "(default 65536) and another its last 64 KiB, each as soon as "
            "they arrive.\n"
            "  -o PREFIX   also write them to PREFIX.head and PREFIX.tail\n"
            "  -t SECONDS  give up on the transfer after that long "
            "(default: never)\n"
            "  -h, --help  this help\n");
    exit(status);
}

int main(int argc, char **argv)
{
    uint64_t head_bytes = 64 << 10;
    const char *out = NULL;
    long timeout_s = 0;
    int c;

    /* --help as well as -h: it is what a newcomer types first. */
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "--help") == 0)
            usage(stdout, 0);
    while ((c = getopt(argc, argv, "n:o:t:h")) != -1) {
        char *end;
        switch (c) {
        case 'n': {
            errno = 0;
            unsigned long long v = strtoull(optarg, &end, 10);
            if (errno != 0 || *optarg < '0' || *optarg > '9' || *end != '\0' ||
                v == 0 || v > ((uint64_t)1 << 30)) {
                fprintf(stderr, "http_tail: -n: want 1 to 1073741824\n");
                return 2;
            }
            head_bytes = v;
            break;
        }
        case 'o':
            out = optarg;
            break;
        case 't':
            timeout_s = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || timeout_s < 0) {
                fprintf(stderr, "http_tail: -t: want seconds\n");
                return 2;
            }
            break;
        case 'h':
            usage(stdout, 0);
            break;
        default:
            usage(stderr, 2);
        }
    }
    if (argc - optind != 1)
        usage(stderr, 2);
    const char *url = argv[optind];

    if (strcmp(sb_version(), SB_VERSION) != 0)
        fprintf(stderr, "http_tail: built with streambuffer %s, running "
                        "with %s\n", SB_VERSION, sb_version());
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
        fprintf(stderr, "http_tail: curl_global_init failed\n");
        return 1;
    }

    struct download d = {.length = -1};
    pthread_mutex_init(&d.mu, NULL);
    pthread_cond_init(&d.cv, NULL);
    d.curl = curl_easy_init();
    d.b = sb_open_writer(NULL);
    if (d.curl == NULL || d.b == NULL) {
        fprintf(stderr, "http_tail: %s\n",
                d.b == NULL ? strerror(errno) : "curl_easy_init failed");
        return 1;
    }
    curl_easy_setopt(d.curl, CURLOPT_URL, url);
    curl_easy_setopt(d.curl, CURLOPT_NOSIGNAL, 1L); /* we have threads */
    curl_easy_setopt(d.curl, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(d.curl, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(d.curl, CURLOPT_CONNECTTIMEOUT, 30L);
    curl_easy_setopt(d.curl, CURLOPT_TIMEOUT, timeout_s);
    curl_easy_setopt(d.curl, CURLOPT_USERAGENT,
                     "http_tail (streambuffer " SB_VERSION ")");
    curl_easy_setopt(d.curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(d.curl, CURLOPT_HEADERDATA, &d);
    curl_easy_setopt(d.curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(d.curl, CURLOPT_WRITEDATA, &d);
    char curl_err[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(d.curl, CURLOPT_ERRORBUFFER, curl_err);

    /* The readers start before the first byte: they wait in the buffer. */
    double t0 = now_ms();
    struct range_read head = {.name = "head", .d = &d, .t0 = t0,
                              .want = head_bytes};
    struct range_read tail = {.name = "tail", .d = &d, .t0 = t0,
                              .want = TAIL_BYTES};
    head.buf = malloc((size_t)head_bytes);
    tail.buf = malloc((size_t)TAIL_BYTES);
    pthread_t th_head, th_tail;
    int started = 0;
    if (head.buf == NULL || tail.buf == NULL) {
        fprintf(stderr, "http_tail: out of memory\n");
    } else if ((errno = pthread_create(&th_head, NULL, head_main, &head)) !=
               0) {
        perror("http_tail: pthread_create");
    } else if (started = 1,
               (errno = pthread_create(&th_tail, NULL, tail_main, &tail)) !=
                   0) {
        perror("http_tail: pthread_create");
    } else {
        started = 2;
    }

    CURLcode rc = CURLE_ABORTED_BY_CALLBACK;
    if (started == 2)
        rc = curl_easy_perform(d.curl);
    double t_end = now_ms();
    /* The end of the stream: the readers waiting past it return now. */
    int err = transfer_errno(rc, d.write_err);
    if (sb_finish(d.b, err) != 0 && err == 0) {
        fprintf(stderr, "http_tail: sb_finish: %s\n", strerror(errno));
        err = errno;
    }
    announce_length(&d, -1); /* no 2xx headers: tail uses sb_wait_end */
    if (started >= 1)
        pthread_join(th_head, NULL);
    if (started == 2)
        pthread_join(th_tail, NULL);

    int status = 0;
    uint64_t len = 0;
    sb_stats st;
    if (sb_get_stats(d.b, &st) != 0)
        memset(&st, 0, sizeof st);
    if (sb_wait_end(d.b, &len) != 0) {
        fprintf(stderr, "http_tail: %s: %s%s%s\n", url, strerror(errno),
                curl_err[0] ? ": " : "", curl_err);
        status = 1;
    }

    printf("http_tail: %s\n", url);
    if (status == 0) {
        double s = (t_end - t0) / 1e3;
        printf("  length   %llu bytes", (ull)len);
        if (tail.from_header)
            printf(" (Content-Length)\n");
        else
            printf(" (no Content-Length: found at the end)\n");
        printf("  download %llu bytes in %.3f s, %.1f MiB/s; %llu bytes "
               "spilled to a temporary file\n",
               (ull)len, s, s > 0 ? (double)len / (1 << 20) / s : 0.0,
               (ull)st.spilled);
    }
    if (started == 2) {
        report(&head);
        report(&tail);
        if (head.got < 0 || tail.got < 0)
            status = 1;
        if (status == 0) {
            /* What the readers got is exactly the stream's ends. */
            uint64_t hn = len < head_bytes ? len : head_bytes;
            uint64_t tn = len < TAIL_BYTES ? len : TAIL_BYTES;
            if ((uint64_t)head.got != hn || (uint64_t)tail.got != tn ||
                tail.off != len - tn) {
                fprintf(stderr, "http_tail: the reads do not match the "
                                "length %llu\n", (ull)len);
                status = 1;
            } else if (!reread_matches(d.b, &head) ||
                       !reread_matches(d.b, &tail)) {
                fprintf(stderr, "http_tail: a re-read gave other bytes\n");
                status = 1;
            }
        }
        if (status == 0 && out != NULL &&
            (save(out, "head", &head) != 0 || save(out, "tail", &tail) != 0))
            status = 1;
    } else {
        status = 1;
    }
    printf("  result   %s\n", status == 0 ? "OK" : "FAILED");

    sb_close(d.b);
    curl_easy_cleanup(d.curl);
    curl_global_cleanup();
    free(head.buf);
    free(tail.buf);
    pthread_cond_destroy(&d.cv);
    pthread_mutex_destroy(&d.mu);
    return status;
}
