/* SPDX-License-Identifier: MIT */
/*
 * tee.c - copy standard input to several outputs, one thread each, in
 * bounded space however long the input is.
 *
 *     some-command | build/examples/tee [-k RETAIN] [-v] OUT...
 *
 * Every OUT (a file, or - for standard output) gets its own reader thread,
 * which writes at its own pace.  The buffer keeps only what the slowest
 * output has not written yet: at most RETAIN bytes (default 8 MiB), after
 * which reading standard input waits, as a pipe would.  -v prints at the
 * end how much was released, how often the input waited, and the peak RSS.
 *
 * An output that fails (a full disk, a pipe whose reader has gone: EPIPE,
 * never death by SIGPIPE) is reported on standard error at once and
 * dropped; the others go on to the end, and the exit status is then 1, as
 * GNU tee --output-error=warn does.
 */
#include <streambuffer.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_OUT 16
#define STEP (256 * 1024)

struct out {
    sb_reader *r;
    const char *path;
    size_t step; /* no more than max_retained: a reader's own bound */
    int fd;
    int err; /* errno of the first failure, 0 if none */
};

/* Note o's failure (errno err) now, not after the others have finished. */
static void out_failed(struct out *o, int err)
{
    o->err = err;
    fprintf(stderr, "tee: %s: %s\n", o->path, strerror(err));
}

static void *copy_out(void *arg)
{
    struct out *o = arg;
    static _Thread_local char buf[STEP];
    for (uint64_t off = 0;;) {
        ssize_t n = sb_reader_pread(o->r, buf, o->step, off);
        if (n <= 0) {
            if (n < 0)
                out_failed(o, errno);
            break;
        }
        for (ssize_t done = 0; done < n;) {
            ssize_t w = write(o->fd, buf + done, (size_t)(n - done));
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0) {
                out_failed(o, errno);
                /* Let go of everything, or this output would hold the
                   others back for ever. */
                sb_reader_release(o->r, UINT64_MAX);
                return NULL;
            }
            done += w;
        }
        off += (uint64_t)n;
        sb_reader_release(o->r, off); /* written: the buffer may let go */
    }
    return NULL;
}

static long peak_rss_kb(void)
{
    char line[256];
    long kb = -1;
    FILE *f = fopen("/proc/self/status", "r");
    while (f != NULL && fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
            break;
    if (f != NULL)
        fclose(f);
    return kb;
}

static void usage(FILE *to, int status)
{
    fprintf(to,
            "usage: some-command | tee [-k RETAIN] [-v] OUT...\n"
            "\n"
            "Copy standard input to every OUT (a file, or - for standard\n"
            "output; at most %d), each at its own pace, in bounded space.\n"
            "  -k RETAIN   keep at most RETAIN bytes that an output has not\n"
            "              written yet (default 8388608); then wait for it\n"
            "  -v          at the end: bytes released, pauses, peak RSS\n"
            "  -h, --help  this help\n"
            "An output that fails is reported and dropped, the others go on;\n"
            "the exit status is then 1.\n",
            MAX_OUT);
    exit(status);
}

int main(int argc, char **argv)
{
    sb_options opts = {.flags = SB_RELEASE, .max_retained = 8u << 20,
                       .mem_limit = 1u << 20};
    int verbose = 0, c;
    /* --help as well as -h: it is what a newcomer types first. */
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "--help") == 0)
            usage(stdout, 0);
    while ((c = getopt(argc, argv, "k:vh")) != -1) {
        if (c == 'k')
            opts.max_retained = strtoull(optarg, NULL, 0);
        else if (c == 'v')
            verbose = 1;
        else if (c == 'h')
            usage(stdout, 0);
        else
            usage(stderr, 2);
    }
    int nout = argc - optind;
    if (nout < 1 || nout > MAX_OUT || opts.max_retained == 0)
        usage(stderr, 2);
    /* An output whose reader has gone is an EPIPE, reported, not the end
       of the others. */
    signal(SIGPIPE, SIG_IGN);

    sb_buffer *b = sb_open_fd(STDIN_FILENO, &opts);
    if (b == NULL) {
        perror("sb_open_fd");
        return 1;
    }
    struct out out[MAX_OUT];
    pthread_t th[MAX_OUT];
    /* Every reader holds its floor at 0 before any of them starts. */
    for (int i = 0; i < nout; i++) {
        const char *path = argv[optind + i];
        out[i].fd = strcmp(path, "-") == 0
                        ? STDOUT_FILENO
                        : open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        out[i].r = sb_reader_open(b, 0);
        out[i].path = path;
        out[i].step = opts.max_retained < STEP ? (size_t)opts.max_retained
                                                : STEP;
        out[i].err = 0;
        if (out[i].fd < 0 || out[i].r == NULL) {
            perror(path);
            return 1;
        }
    }
    for (int i = 0; i < nout; i++)
        if (pthread_create(&th[i], NULL, copy_out, &out[i]) != 0)
            return 1;
    int status = 0;
    for (int i = 0; i < nout; i++) {
        pthread_join(th[i], NULL);
        sb_reader_close(out[i].r);
        if (out[i].err != 0) /* reported when it happened */
            status = 1;
        if (out[i].fd != STDOUT_FILENO && close(out[i].fd) != 0) {
            fprintf(stderr, "tee: %s: %s\n", out[i].path, strerror(errno));
            status = 1;
        }
    }
    sb_stats st;
    if (verbose && sb_get_stats(b, &st) == 0)
        fprintf(stderr, "tee: %llu bytes, %llu released, %llu pauses, "
                        "peak RSS %ld KiB\n",
                (unsigned long long)st.filled,
                (unsigned long long)st.released,
                (unsigned long long)st.pauses, peak_rss_kb());
    sb_close(b);
    return status;
}
