/*
 * moat-httpd — a static file server for applications on moat: HTTP/1.x
 * GET and HEAD of the files under --root, over a Nic cap through lwIP
 * (clients/moatnet), with its address from moat's gateway by DHCP. One
 * thread per connection (at most --max-conns, beyond that 503); a client
 * gets --timeout-ms to send its request (408 after). One line per request
 * on stderr.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "http.h"
#include "lwip/sockets.h"
#include "moat/libmoat.h"
#include "moatnet/moatnet.h"

struct server {
    char root[PATH_MAX];        /* realpath of --root */
    unsigned max_conns, timeout_ms;
    atomic_uint conns;
    atomic_ullong served;
};

static struct server srv;

struct conn {
    int fd;
    char peer[INET_ADDRSTRLEN];
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

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
    int rc = http_resolve(srv.root, req->path, path, sizeof path);
    if (rc)
        return rc;
    if (!realpath(path, real))
        return errno == ENOENT || errno == ENOTDIR ? 404 : 403;
    size_t rl = strlen(srv.root);
    if (strncmp(real, srv.root, rl) || (real[rl] != '/' && real[rl] != '\0'))
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

static void *conn_main(void *arg)
{
    struct conn *c = arg;
    double t0 = now_s();
    struct http_request req = { .path = "" };
    off_t sent = 0;
    int status = read_request(c->fd, &req);
    if (status == 0)
        status = serve_file(c->fd, &req, &sent);
    if (status > 200)
        send_status(c->fd, status);
    if (status > 0)
        fprintf(stderr, "moat-httpd: %s %s %s %d %lld bytes in %.3f s\n", c->peer,
                status == 405 || !req.path[0] ? "-" : req.method == HTTP_HEAD ? "HEAD" : "GET",
                req.path[0] ? req.path : "-", status, (long long)sent, now_s() - t0);
    lwip_shutdown(c->fd, SHUT_RDWR);
    lwip_close(c->fd);
    free(c);
    atomic_fetch_sub(&srv.conns, 1);
    atomic_fetch_add(&srv.served, 1);
    return NULL;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: moat-httpd [options] --root DIR CAP\n"
            "Serve the files under DIR over HTTP (GET and HEAD) on the Nic cap CAP (e.g.\n"
            "vnet0.nic0), with an address from moat's gateway by DHCP. TCP/IP is lwIP in this\n"
            "process; the NIC driver runs in its own domain and may restart underneath.\n\n"
            "  -r, --root DIR         the files to serve (required); URLs ending in / get\n"
            "                         index.html; nothing outside DIR is ever served\n"
            "  -p, --port N           TCP port (default 80)\n"
            "  -s, --socket PATH      moat's control socket (default: $MOAT_SOCKET, else\n"
            "                         $XDG_RUNTIME_DIR/moat.sock, else /tmp/moat-$UID/moat.sock)\n"
            "  -w, --wait SECONDS     wait this long for moat and the cap (default 0)\n"
            "      --ip A.B.C.D/N     a static address instead of DHCP (with --gw)\n"
            "      --gw A.B.C.D       the static address's gateway\n"
            "  -m, --max-conns N      connections served at once; more get 503 (default 64)\n"
            "  -t, --timeout-ms N     time a client has to send its request (default 10000)\n"
            "  -h, --help             this text\n\n"
            "Reach it from the host through moat's TAP port (moat --tap IFNAME) or a host\n"
            "port forward (see README). Exit status: 1 cannot start, 2 usage.\n");
}

static bool parse_ip(const char *s, uint32_t *ip, uint32_t *prefix)
{
    char a[32];
    snprintf(a, sizeof a, "%s", s);
    char *slash = strchr(a, '/');
    if (slash) {
        *slash = '\0';
        char *end;
        unsigned long p = strtoul(slash + 1, &end, 10);
        if (!prefix || *end || p < 1 || p > 32)
            return false;
        *prefix = (uint32_t)p;
    } else if (prefix) {
        *prefix = 24;
    }
    struct in_addr in;
    if (inet_pton(AF_INET, a, &in) != 1)
        return false;
    *ip = ntohl(in.s_addr);
    return true;
}

static unsigned number(const char *opt, const char *v, unsigned lo, unsigned hi)
{
    char *end;
    unsigned long n = strtoul(v, &end, 10);
    if (!*v || *end || n < lo || n > hi) {
        fprintf(stderr, "moat-httpd: %s %s: expected a number in %u..%u\n", opt, v, lo, hi);
        exit(2);
    }
    return (unsigned)n;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "root", required_argument, NULL, 'r' }, { "port", required_argument, NULL, 'p' },
        { "socket", required_argument, NULL, 's' }, { "wait", required_argument, NULL, 'w' },
        { "ip", required_argument, NULL, 'I' }, { "gw", required_argument, NULL, 'G' },
        { "max-conns", required_argument, NULL, 'm' },
        { "timeout-ms", required_argument, NULL, 't' }, { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct moatnet_config cfg = { 0 };
    const char *root = NULL;
    unsigned port = 80;
    srv.max_conns = 64;
    srv.timeout_ms = 10000;
    int o;
    uint32_t prefix = 24;
    bool have_gw = false;
    while ((o = getopt_long(argc, argv, "r:p:s:w:m:t:h", opts, NULL)) != -1) {
        switch (o) {
        case 'r': root = optarg; break;
        case 'p': port = number("--port", optarg, 1, 65535); break;
        case 's': cfg.socket = optarg; break;
        case 'w': cfg.wait_s = number("--wait", optarg, 0, 3600); break;
        case 'm': srv.max_conns = number("--max-conns", optarg, 1, 4096); break;
        case 't': srv.timeout_ms = number("--timeout-ms", optarg, 1, 3600000); break;
        case 'I':
            if (!parse_ip(optarg, &cfg.ip, &prefix)) {
                fprintf(stderr, "moat-httpd: --ip %s: expected A.B.C.D or A.B.C.D/N\n", optarg);
                return 2;
            }
            cfg.static_ip = true;
            break;
        case 'G':
            if (!parse_ip(optarg, &cfg.gw, NULL)) {
                fprintf(stderr, "moat-httpd: --gw %s: expected A.B.C.D\n", optarg);
                return 2;
            }
            have_gw = true;
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!root || optind != argc - 1) {
        usage(stderr);
        return 2;
    }
    if (cfg.static_ip && !have_gw) {
        fprintf(stderr, "moat-httpd: --ip needs --gw\n");
        return 2;
    }
    cfg.mask = prefix == 32 ? 0xffffffffu : ~(0xffffffffu >> prefix);
    cfg.cap = argv[optind];
    if (!realpath(root, srv.root)) {
        fprintf(stderr, "moat-httpd: --root %s: %s\n", root, strerror(errno));
        return 1;
    }
    struct moatnet_info info;
    char err[256];
    int rc = moatnet_start(&cfg, &info, err, sizeof err);
    if (rc) {
        fprintf(stderr, "moat-httpd: %s\n", err);
        return 1;
    }
    int ls = lwip_socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    if (ls < 0 || lwip_bind(ls, (struct sockaddr *)&a, sizeof a) || lwip_listen(ls, 64)) {
        fprintf(stderr, "moat-httpd: cannot listen on port %u: %s\n", port, strerror(errno));
        moatnet_stop();
        return 1;
    }
    struct in_addr ip = { htonl(info.ip) };
    char ips[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &ip, ips, sizeof ips);
    fprintf(stderr, "moat-httpd: serving %s on http://%s:%u/ over %s (mac "
            "%02x:%02x:%02x:%02x:%02x:%02x, MTU %u%s)\n", srv.root, ips, port, cfg.cap,
            info.mac[0], info.mac[1], info.mac[2], info.mac[3], info.mac[4], info.mac[5],
            info.mtu, cfg.static_ip ? ", static address" : ", DHCP lease");
    for (;;) {
        struct sockaddr_in peer;
        socklen_t pl = sizeof peer;
        int fd = lwip_accept(ls, (struct sockaddr *)&peer, &pl);
        if (fd < 0) {
            fprintf(stderr, "moat-httpd: accept: %s\n", strerror(errno));
            continue;
        }
        struct timeval tv = { .tv_sec = srv.timeout_ms / 1000,
                              .tv_usec = (srv.timeout_ms % 1000) * 1000 };
        lwip_setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        struct conn *c = calloc(1, sizeof *c);
        if (!c || atomic_load(&srv.conns) >= srv.max_conns) {
            send_status(fd, 503);
            lwip_close(fd);
            free(c);
            continue;
        }
        c->fd = fd;
        inet_ntop(AF_INET, &peer.sin_addr, c->peer, sizeof c->peer);
        atomic_fetch_add(&srv.conns, 1);
        pthread_t t;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &at, conn_main, c) != 0) {
            atomic_fetch_sub(&srv.conns, 1);
            send_status(fd, 503);
            lwip_close(fd);
            free(c);
        }
        pthread_attr_destroy(&at);
    }
}
