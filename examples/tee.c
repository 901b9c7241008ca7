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
 */
#include <streambuffer.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_OUT 16
#define STEP (256 * 1024)

struct out {
    sb_reader *r;
    size_t step; /* no more than max_retained: a reader's own bound */
    int fd;
    int err; /* errno of the first failure, 0 if none */
};

static void *copy_out(void *arg)
{
    struct out *o = arg;
    static _Thread_local char buf[STEP];
    for (uint64_t off = 0;;) {
        ssize_t n = sb_reader_pread(o->r, buf, o->step, off);
        if (n <= 0) {
            o->err = n < 0 ? errno : 0;
            break;
        }
        for (ssize_t done = 0; done < n;) {
            ssize_t w = write(o->fd, buf + done, (size_t)(n - done));
            if (w < 0) {
                o->err = errno;
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

int main(int argc, char **argv)
{
    sb_options opts = {.flags = SB_RELEASE, .max_retained = 8u << 20,
                       .mem_limit = 1u << 20};
    int verbose = 0, c;
    while ((c = getopt(argc, argv, "k:v")) != -1) {
        if (c == 'k')
            opts.max_retained = strtoull(optarg, NULL, 0);
        else if (c == 'v')
            verbose = 1;
        else
            goto usage;
    }
    int nout = argc - optind;
    if (nout < 1 || nout > MAX_OUT || opts.max_retained == 0)
        goto usage;

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
        if (out[i].err != 0) {
            fprintf(stderr, "tee: %s: %s\n", argv[optind + i],
                    strerror(out[i].err));
            status = 1;
        }
        if (out[i].fd != STDOUT_FILENO && close(out[i].fd) != 0)
            status = 1;
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

usage:
    fprintf(stderr, "usage: tee [-k RETAIN_BYTES] [-v] OUT...  (- is stdout, "
                    "at most %d)\n", MAX_OUT);
    return 2;
}
