/*
 * moat-httpd — a static file server for applications on moat: HTTP/1.x
 * GET and HEAD of the files under --root, over a Nic cap through lwIP
 * (clients/moatnet), with its address from moat's gateway by DHCP; the
 * server itself is httpd.c.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "httpd.h"
#include "lwip/sockets.h"
#include "cliutil/cli.h"
#include "moat/libmoat.h"
#include "moatnet/moatnet.h"

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
            "  -q, --quiet            no line per request\n"
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
    return cli_uint("moat-httpd", opt, v, lo, hi);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "root", required_argument, NULL, 'r' }, { "port", required_argument, NULL, 'p' },
        { "socket", required_argument, NULL, 's' }, { "wait", required_argument, NULL, 'w' },
        { "ip", required_argument, NULL, 'I' }, { "gw", required_argument, NULL, 'G' },
        { "max-conns", required_argument, NULL, 'm' },
        { "timeout-ms", required_argument, NULL, 't' }, { "help", no_argument, NULL, 'h' },
        { "quiet", no_argument, NULL, 'q' },
        { NULL, 0, NULL, 0 },
    };
    struct moatnet_config cfg = { 0 };
    const char *root = NULL;
    static struct httpd_config hc = { .port = 80, .max_conns = 64, .timeout_ms = 10000 };
    int o;
    uint32_t prefix = 24;
    bool have_gw = false;
    while ((o = getopt_long(argc, argv, "r:p:s:w:m:t:qh", opts, NULL)) != -1) {
        switch (o) {
        case 'r': root = optarg; break;
        case 'p': hc.port = number("--port", optarg, 1, 65535); break;
        case 's': cfg.socket = optarg; break;
        case 'w': cfg.wait_s = number("--wait", optarg, 0, 3600); break;
        case 'm': hc.max_conns = number("--max-conns", optarg, 1, 4096); break;
        case 't': hc.timeout_ms = number("--timeout-ms", optarg, 1, 3600000); break;
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
        case 'q': hc.quiet = true; break;
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
    if (!realpath(root, hc.root)) {
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
    int ls = httpd_listen(&hc);
    if (ls < 0) {
        fprintf(stderr, "moat-httpd: cannot listen on port %u: %s\n", hc.port, strerror(errno));
        moatnet_stop();
        return 1;
    }
    struct in_addr ip = { htonl(info.ip) };
    char ips[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &ip, ips, sizeof ips);
    fprintf(stderr, "moat-httpd: serving %s on http://%s:%u/ over %s (mac "
            "%02x:%02x:%02x:%02x:%02x:%02x, MTU %u%s)\n", hc.root, ips, hc.port, cfg.cap,
            info.mac[0], info.mac[1], info.mac[2], info.mac[3], info.mac[4], info.mac[5],
            info.mtu, cfg.static_ip ? ", static address" : ", DHCP lease");
    httpd_run(&hc, ls);
}
