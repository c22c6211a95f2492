/* moat-httpd's server over lwIP sockets (contract in httpd.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "http.h"
#include "httpd.h"
#include "lwip/sockets.h"
#include "cliutil/cli.h"

#define CLOSE_WAIT_MS 2000

static const struct httpd_config *cfg;
static atomic_uint conns;

struct conn {
    int fd;
    char peer[INET_ADDRSTRLEN];
};

static bool send_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t n = lwip_send(fd, p, len, 0);
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

static void send_status(int fd, int status)
{
    char body[128], head[256];
    int bl = snprintf(body, sizeof body, "%d %s\n", status, http_reason(status));
    int hl = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\n"
                      "Content-Length: %d\r\nConnection: close\r\n\r\n", status,
                      http_reason(status), bl);
    if (send_all(fd, head, (size_t)hl))
        send_all(fd, body, (size_t)bl);
}

/* Read the request head: 0 with req, or the status to answer with. */
static int read_request(int fd, struct http_request *req)
{
    static _Thread_local char buf[HTTP_HEAD_MAX];
    size_t len = 0, head_len;
    for (;;) {
        ssize_t n = lwip_recv(fd, buf + len, sizeof buf - len, 0);
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK ? 408 : -1;
        if (n == 0)
            return len ? 400 : -1;      /* truncated, or nothing at all */
        len += (size_t)n;
        int rc = http_parse(buf, len, req, &head_len);
        if (rc != 1)
            return rc;
    }
}

/* The file for req: 0 with an open fd and its size, or the status. */
static int open_file(const struct http_request *req, int *out, off_t *size)
{
    char path[PATH_MAX], real[PATH_MAX];
    int rc = http_resolve(cfg->root, req->path, path, sizeof path);
    if (rc)
        return rc;
    if (!realpath(path, real))
        return errno == ENOENT || errno == ENOTDIR ? 404 : 403;
    size_t rl = strlen(cfg->root);
    if (strncmp(real, cfg->root, rl) || (real[rl] != '/' && real[rl] != '\0'))
        return 403;             /* a symbolic link out of the root */
    int fd = open(real, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        if (fd >= 0)
            close(fd);
        return fd < 0 && errno == EACCES ? 403 : 404;
    }
    *out = fd;
    *size = st.st_size;
    return 0;
}

static int serve_file(int cfd, const struct http_request *req, off_t *sent)
{
    int fd;
    off_t size;
    int rc = open_file(req, &fd, &size);
    if (rc)
        return rc;
    char head[512];
    int hl = snprintf(head, sizeof head, "HTTP/1.%u 200 OK\r\nContent-Type: %s\r\n"
                      "Content-Length: %lld\r\nConnection: close\r\nServer: moat-httpd\r\n\r\n",
                      req->minor, http_content_type(req->path), (long long)size);
    bool ok = send_all(cfd, head, (size_t)hl);
    static _Thread_local char buf[64 * 1024];
    for (off_t left = size; ok && req->method == HTTP_GET && left > 0;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0)
            break;              /* the file shrank: the client sees a short body */
        ok = send_all(cfd, buf, (size_t)n);
        if (ok)
            *sent += n;
        left -= n;
    }
    close(fd);
    return 200;
}

/* Close once the client has: whoever closes first keeps the connection in
 * TIME_WAIT for two minutes, and lwIP (unlike Linux, RFC 6191) answers a
 * new SYN that meets a TIME_WAIT with an ACK rather than a connection, so
 * a busy server that closed first would stop taking clients whose port
 * comes round again. HTTP clients close once they have the body
 * (Content-Length); one that does not within CLOSE_WAIT_MS is closed on. */
static void close_after_client(int fd)
{
    struct timeval tv = { .tv_sec = CLOSE_WAIT_MS / 1000, .tv_usec = CLOSE_WAIT_MS % 1000 * 1000 };
    lwip_setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char sink[512];
    while (lwip_recv(fd, sink, sizeof sink, 0) > 0) {
    }
    lwip_close(fd);
}

static void *conn_main(void *arg)
{
    struct conn *c = arg;
    double t0 = ((double)cli_now_ns() / 1e9);
    struct http_request req = { .path = "" };
    off_t sent = 0;
    int status = read_request(c->fd, &req);
    if (status == 0)
        status = serve_file(c->fd, &req, &sent);
    if (status > 200)
        send_status(c->fd, status);
    if (status > 0 && !cfg->quiet)
        fprintf(stderr, "moat-httpd: %s %s %s %d %lld bytes in %.3f s\n", c->peer,
                status == 405 || !req.path[0] ? "-" : req.method == HTTP_HEAD ? "HEAD" : "GET",
                req.path[0] ? req.path : "-", status, (long long)sent, ((double)cli_now_ns() / 1e9) - t0);
    close_after_client(c->fd);
    free(c);
    atomic_fetch_sub(&conns, 1);
    return NULL;
}

int httpd_listen(const struct httpd_config *c)
{
    int ls = lwip_socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)c->port) };
    if (ls < 0)
        return -1;
    if (lwip_bind(ls, (struct sockaddr *)&a, sizeof a) || lwip_listen(ls, 64)) {
        int e = errno;
        lwip_close(ls);
        errno = e;
        return -1;
    }
    return ls;
}

_Noreturn void httpd_run(const struct httpd_config *c, int ls)
{
    cfg = c;
    for (;;) {
        struct sockaddr_in peer;
        socklen_t pl = sizeof peer;
        int fd = lwip_accept(ls, (struct sockaddr *)&peer, &pl);
        if (fd < 0) {
            fprintf(stderr, "moat-httpd: accept: %s\n", strerror(errno));
            continue;
        }
        struct timeval tv = { .tv_sec = c->timeout_ms / 1000,
                              .tv_usec = (c->timeout_ms % 1000) * 1000 };
        lwip_setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        struct conn *k = calloc(1, sizeof *k);
        if (!k || atomic_load(&conns) >= c->max_conns) {
            send_status(fd, 503);
            lwip_close(fd);
            free(k);
            continue;
        }
        k->fd = fd;
        inet_ntop(AF_INET, &peer.sin_addr, k->peer, sizeof k->peer);
        atomic_fetch_add(&conns, 1);
        pthread_t t;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &at, conn_main, k) != 0) {
            atomic_fetch_sub(&conns, 1);
            send_status(fd, 503);
            lwip_close(fd);
            free(k);
        }
        pthread_attr_destroy(&at);
    }
}
