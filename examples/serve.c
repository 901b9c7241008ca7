/* SPDX-License-Identifier: MIT */
/*
 * serve.c - stream standard input to every client that connects, each from
 * the start, while it is still arriving, with sb_sendfile.
 *
 *     some-command | build/examples/serve [-p PORT] [-n CLIENTS] [-m MEM]
 *     curl http://127.0.0.1:PORT/ > copy       # any number, any time
 *
 * It listens on 127.0.0.1 (PORT 0, the default, lets the kernel choose; the
 * port is printed on standard error), answers each connection with an
 * HTTP/1.0 response whose body is the whole stream, and sends the bytes
 * from the buffer's memory and spill file without copying them through
 * this process.  With -n it exits after serving that many clients.
 */
#include <streambuffer.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define STEP (1u << 20)
#define MAX_CLIENTS 256

struct client {
    sb_buffer *b;
    int fd;
    pthread_t th;
};

static void *serve_one(void *arg)
{
    struct client *c = arg;
    static const char head[] = "HTTP/1.0 200 OK\r\n"
                               "Content-Type: application/octet-stream\r\n\r\n";
    if (send(c->fd, head, sizeof head - 1, MSG_NOSIGNAL) == sizeof head - 1) {
        for (uint64_t off = 0;;) {
            ssize_t n = sb_sendfile(c->b, c->fd, off, STEP); /* waits */
            if (n <= 0) {
                if (n < 0 && errno != EPIPE && errno != ECONNRESET)
                    perror("serve: sb_sendfile");
                break; /* 0: the end of the stream */
            }
            off += (uint64_t)n;
        }
    }
    /* The client's request is still unread: close(2) now would answer it
       with a reset, and the client could lose the end of the stream.  Send
       our end of the stream first, then wait for the client to close. */
    shutdown(c->fd, SHUT_WR);
    char sink[4096];
    while (recv(c->fd, sink, sizeof sink, 0) > 0)
        ;
    close(c->fd);
    return NULL;
}

int main(int argc, char **argv)
{
    int port = 0, max = 0, c;
    sb_options o = {0};
    while ((c = getopt(argc, argv, "p:n:m:")) != -1) {
        if (c == 'p')
            port = atoi(optarg);
        else if (c == 'n')
            max = atoi(optarg);
        else if (c == 'm')
            o.mem_limit = strtoul(optarg, NULL, 0);
        else {
            fprintf(stderr, "usage: serve [-p PORT] [-n CLIENTS] [-m MEM]\n");
            return 2;
        }
    }
    if (max < 0 || max > MAX_CLIENTS)
        max = MAX_CLIENTS;

    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof a;
    int l = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    if (l < 0 || setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0
        || bind(l, (struct sockaddr *)&a, sizeof a) != 0 || listen(l, 64) != 0
        || getsockname(l, (struct sockaddr *)&a, &al) != 0) {
        perror("serve: listen");
        return 1;
    }
    sb_buffer *b = sb_open_fd(STDIN_FILENO, &o); /* starts reading now */
    if (b == NULL) {
        perror("serve: sb_open_fd");
        return 1;
    }
    fprintf(stderr, "serve: listening on 127.0.0.1:%d\n", ntohs(a.sin_port));

    static struct client cl[MAX_CLIENTS];
    int n = 0;
    while (n < (max ? max : MAX_CLIENTS)) {
        int fd = accept(l, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR)
                continue;
            perror("serve: accept");
            break;
        }
        cl[n] = (struct client){ .b = b, .fd = fd };
        if (pthread_create(&cl[n].th, NULL, serve_one, &cl[n]) != 0) {
            close(fd);
            break;
        }
        n++;
    }
    for (int i = 0; i < n; i++)
        pthread_join(cl[i].th, NULL);
    close(l);
    sb_close(b);
    return 0;
}
