/*
 * moat-echo — a TCP echo server (RFC 862) for applications on moat: every
 * byte a client sends comes back, over a Nic cap through lwIP
 * (clients/moatnet), with an address from moat's gateway by DHCP. One
 * thread per connection, at most --max-conns; one line per connection on
 * stderr. A quick check that TCP through a NIC domain carries data both
 * ways, and across its restarts.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "lwip/sockets.h"
#include "cliutil/cli.h"
#include "moat/libmoat.h"
#include "moatnet/moatnet.h"

static atomic_uint conns;
static unsigned max_conns = 64;

struct conn {
    int fd;
    char peer[INET_ADDRSTRLEN];
};

static void *conn_main(void *arg)
{
    struct conn *c = arg;
    static _Thread_local char buf[16384];
    unsigned long long bytes = 0;
    for (;;) {
        ssize_t n = lwip_recv(c->fd, buf, sizeof buf, 0);
        if (n <= 0)
            break;
        ssize_t off = 0;
        while (off < n) {
            ssize_t w = lwip_send(c->fd, buf + off, (size_t)(n - off), 0);
            if (w <= 0)
                break;
            off += w;
        }
        bytes += (unsigned long long)off;
        if (off < n)
            break;
    }
    fprintf(stderr, "moat-echo: %s: %llu bytes echoed\n", c->peer, bytes);
    lwip_close(c->fd);
    free(c);
    atomic_fetch_sub(&conns, 1);
    return NULL;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: moat-echo [options] CAP\n"
            "A TCP echo server (RFC 862) on the Nic cap CAP (e.g. vnet0.nic0), with an address\n"
            "from moat's gateway by DHCP; TCP/IP is lwIP in this process.\n\n"
            "  -p, --port N           TCP port (default 7)\n"
            "  -s, --socket PATH      moat's control socket (default: $MOAT_SOCKET, else\n"
            "                         $XDG_RUNTIME_DIR/moat.sock, else /tmp/moat-$UID/moat.sock)\n"
            "  -w, --wait SECONDS     wait this long for moat and the cap (default 0)\n"
            "  -m, --max-conns N      connections served at once; more are closed (default 64)\n"
            "  -h, --help             this text\n\n"
            "Exit status: 1 cannot start, 2 usage.\n");
}

static unsigned number(const char *opt, const char *v, unsigned lo, unsigned hi)
{
    return cli_uint("moat-echo", opt, v, lo, hi);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "port", required_argument, NULL, 'p' }, { "socket", required_argument, NULL, 's' },
        { "wait", required_argument, NULL, 'w' }, { "max-conns", required_argument, NULL, 'm' },
        { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
    };
    struct moatnet_config cfg = { 0 };
    unsigned port = 7;
    int o;
    while ((o = getopt_long(argc, argv, "p:s:w:m:h", opts, NULL)) != -1) {
        switch (o) {
        case 'p': port = number("--port", optarg, 1, 65535); break;
        case 's': cfg.socket = optarg; break;
        case 'w': cfg.wait_s = number("--wait", optarg, 0, 3600); break;
        case 'm': max_conns = number("--max-conns", optarg, 1, 4096); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return 2;
    }
    cfg.cap = argv[optind];
    struct moatnet_info info;
    char err[256];
    if (moatnet_start(&cfg, &info, err, sizeof err)) {
        fprintf(stderr, "moat-echo: %s\n", err);
        return 1;
    }
    int ls = lwip_socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    if (ls < 0 || lwip_bind(ls, (struct sockaddr *)&a, sizeof a) || lwip_listen(ls, 64)) {
        fprintf(stderr, "moat-echo: cannot listen on port %u: %s\n", port, strerror(errno));
        moatnet_stop();
        return 1;
    }
    struct in_addr ip = { htonl(info.ip) };
    char ips[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &ip, ips, sizeof ips);
    fprintf(stderr, "moat-echo: echoing on %s:%u over %s\n", ips, port, cfg.cap);
    for (;;) {
        struct sockaddr_in peer;
        socklen_t pl = sizeof peer;
        int fd = lwip_accept(ls, (struct sockaddr *)&peer, &pl);
        if (fd < 0)
            continue;
        struct conn *c = calloc(1, sizeof *c);
        pthread_t t;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        if (!c || atomic_load(&conns) >= max_conns) {
            lwip_close(fd);
            free(c);
        } else {
            c->fd = fd;
            inet_ntop(AF_INET, &peer.sin_addr, c->peer, sizeof c->peer);
            atomic_fetch_add(&conns, 1);
            if (pthread_create(&t, &at, conn_main, c) != 0) {
                atomic_fetch_sub(&conns, 1);
                lwip_close(fd);
                free(c);
            }
        }
        pthread_attr_destroy(&at);
    }
}
