/* SPDX-License-Identifier: MIT */
/*
 * quickstart.c - the README's first example: two threads read standard
 * input at their own offsets while it streams in.
 *
 *     some-command | build/examples/quickstart
 */
#include <streambuffer.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void *read_far(void *arg)
{
    static char far[16];
    ssize_t n = sb_pread(arg, far, sizeof far, 1 << 20); /* waits for 1 MiB */
    printf("at 1 MiB: %.*s\n", n > 0 ? (int)n : 0, far);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc > 1) { /* no options: --help, or a mistake */
        int help = strcmp(argv[1], "--help") == 0;
        fputs("usage: some-command | quickstart\n", help ? stdout : stderr);
        return help ? 0 : 2;
    }
    sb_buffer *b = sb_open_fd(STDIN_FILENO, NULL); /* the producer starts now */
    if (b == NULL) {
        perror("sb_open_fd");
        return 1;
    }
    pthread_t t;
    if (pthread_create(&t, NULL, read_far, b) != 0)
        return 1;

    char head[16];
    ssize_t n = sb_pread(b, head, sizeof head, 0); /* waits for 16 bytes */
    printf("at 0: %.*s\n", n > 0 ? (int)n : 0, head);
    pthread_join(t, NULL);

    uint64_t len;
    if (sb_wait_end(b, &len) == 0) /* the whole stream is in */
        printf("%llu bytes in all\n", (unsigned long long)len);
    else
        perror("stream");
    sb_close(b); /* after every reader has returned */
    return 0;
}
