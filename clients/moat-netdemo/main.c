/*
 * moat-netdemo — a first network client of a Nic cap: ask moat's built-in
 * gateway for an address by DHCP, find the gateway by ARP, ping it and
 * print each step with round-trip times. What `make run` runs against the
 * virtio-net domain; also a quick check of any Nic.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "moat/libmoat.h"
#include "moatnet/dhcp.h"
#include "moat/netpkt.h"
#include "cliutil/cli.h"

#define STEP_MS 2000

struct demo {
    const char *socket, *cap_name;
    unsigned wait_s, count;
    struct moat_client *c;
    struct moat_cap *cap;
    struct moat_session *s;
    struct moat_nic_info info;
    uint32_t ip, gw_ip;
    uint8_t gw_mac[6];
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: moat-netdemo [options] [CAP]\n"
            "Over a Nic cap (default vnet0.nic0): get an address from moat's gateway by\n"
            "DHCP, resolve the gateway by ARP and ping it, printing each step.\n\n"
            "  -s, --socket PATH   moat's control socket (default: $MOAT_SOCKET, else\n"
            "                      $XDG_RUNTIME_DIR/moat.sock, else /tmp/moat-$UID/moat.sock)\n"
            "  -c, --count N       pings to send (default 4)\n"
            "  -w, --wait SECONDS  wait this long for moat and the cap to come up (default 0)\n"
            "  -h, --help          this text\n\n"
            "Exit status: 0 every step answered, 1 a step got no answer, 2 usage or no moat/cap.\n");
}

static int open_cap(struct demo *d)
{
    int rc = moat_open_wait(d->socket, d->cap_name, MOAT_RIGHT_READ | MOAT_RIGHT_WRITE,
                            d->wait_s, &d->c, &d->cap);
    if (rc) {
        fprintf(stderr, "moat-netdemo: cannot open %s: %s (is moat running with that cap? "
                "try moatctl list)\n", d->cap_name, moat_strerror(rc));
        return rc;
    }
    if ((rc = moat_nic_info(d->cap, &d->info)) == 0)
        rc = moat_session_open(d->cap, NULL, &d->s);
    if (rc)
        fprintf(stderr, "moat-netdemo: cannot open a session on %s: %s\n", d->cap_name,
                moat_strerror(rc));
    return rc;
}

static int send1(struct demo *d, const uint8_t *f, size_t len)
{
    struct moat_frame fr = { .data = (void *)(uintptr_t)f, .len = (uint32_t)len };
    int rc = moat_nic_send(d->s, &fr, 1);
    return rc == 1 ? 0 : rc < 0 ? rc : -MOAT_EBUSY;
}

/* Receive frames until match accepts one or STEP_MS passes: 0 or -MOAT_E*. */
typedef bool (*match_fn)(struct demo *d, const uint8_t *f, size_t len, void *out);
static int await(struct demo *d, match_fn match, void *out)
{
    uint64_t deadline = cli_now_ns() + STEP_MS * 1000000ull;
    static uint8_t buf[NETPKT_FRAME_MAX];
    for (;;) {
        uint64_t t = cli_now_ns();
        if (t >= deadline)
            return -MOAT_ETIMEDOUT;
        struct moat_frame fr = { .data = buf, .len = sizeof buf };
        int n = moat_nic_recv(d->s, &fr, 1, (int)((deadline - t) / 1000000 + 1));
        if (n < 0)
            return n;
        if (n == 1 && fr.len <= sizeof buf && match(d, buf, fr.len, out))
            return 0;
    }
}

static bool is_arp(struct demo *d, const uint8_t *f, size_t len, void *out)
{
    (void)out;
    return netpkt_arp_reply(f, len, d->info.mac, d->ip, d->gw_ip, d->gw_mac);
}

static bool is_pong(struct demo *d, const uint8_t *f, size_t len, void *out)
{
    uint16_t seq;
    return netpkt_icmp_reply(f, len, d->info.mac, d->ip, d->gw_ip, 0x6d74, &seq) &&
           seq == *(uint16_t *)out;
}

static void print_offer(const struct netpkt_dhcp_reply *r, void *ctx)
{
    (void)ctx;
    char a[16], b[16];
    printf("dhcp: offer %s from %s\n", netpkt_ip_str(r->yiaddr, a), netpkt_ip_str(r->server_id, b));
}

static int dhcp(struct demo *d)
{
    struct dhcp_lease l;
    int rc = dhcp_obtain(d->s, d->info.mac, STEP_MS, 1, print_offer, NULL, &l);
    if (rc) {
        fprintf(stderr, "moat-netdemo: no DHCP lease: %s\n", rc == -MOAT_EPROTO
                ? "the server answered with a NAK or an unexpected message" : moat_strerror(rc));
        return rc;
    }
    d->ip = l.ip;
    d->gw_ip = l.router;
    char a[16], b[16];
    printf("dhcp: bound to %s, gateway %s, lease %u s\n", netpkt_ip_str(d->ip, a),
           netpkt_ip_str(d->gw_ip, b), l.lease_s);
    return 0;
}

static int arp(struct demo *d)
{
    uint8_t f[NETPKT_ETH_MIN];
    size_t len = netpkt_arp_request(f, d->info.mac, d->ip, d->gw_ip);
    int rc = send1(d, f, len);
    if (rc == 0)
        rc = await(d, is_arp, NULL);
    if (rc) {
        fprintf(stderr, "moat-netdemo: the gateway did not answer ARP: %s\n", moat_strerror(rc));
        return rc;
    }
    printf("arp: gateway is at %02x:%02x:%02x:%02x:%02x:%02x\n", d->gw_mac[0], d->gw_mac[1],
           d->gw_mac[2], d->gw_mac[3], d->gw_mac[4], d->gw_mac[5]);
    return 0;
}

static int ping(struct demo *d)
{
    uint8_t f[NETPKT_FRAME_MAX], payload[56];
    for (unsigned i = 0; i < sizeof payload; i++)
        payload[i] = (uint8_t)i;
    char a[16];
    unsigned answered = 0;
    for (uint16_t seq = 1; seq <= d->count; seq++) {
        size_t len = netpkt_icmp_echo(f, sizeof f, d->info.mac, d->gw_mac, d->ip, d->gw_ip,
                                      0x6d74, seq, payload, sizeof payload);
        uint64_t t0 = cli_now_ns();
        int rc = send1(d, f, len);
        if (rc == 0)
            rc = await(d, is_pong, &seq);
        if (rc == 0) {
            answered++;
            printf("ping: reply from %s seq=%u time=%.1f us\n", netpkt_ip_str(d->gw_ip, a), seq,
                   (double)(cli_now_ns() - t0) / 1000.0);
        } else {
            printf("ping: seq=%u no reply: %s\n", seq, moat_strerror(rc));
        }
    }
    printf("ping: %u/%u answered\n", answered, d->count);
    return answered == d->count ? 0 : -MOAT_ETIMEDOUT;
}

int main(int argc, char **argv)
{
    struct demo d = { .cap_name = "vnet0.nic0", .count = 4 };
    static const struct option longopts[] = {
        { "socket", required_argument, NULL, 's' }, { "count", required_argument, NULL, 'c' },
        { "wait", required_argument, NULL, 'w' }, { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int o;
    while ((o = getopt_long(argc, argv, "s:c:w:h", longopts, NULL)) != -1) {
        char *end = NULL;
        switch (o) {
        case 's': d.socket = optarg; break;
        case 'c':
            d.count = (unsigned)strtoul(optarg, &end, 10);
            if (!*optarg || *end || d.count == 0 || d.count > 65535) {
                fprintf(stderr, "moat-netdemo: --count wants 1..65535, not '%s'\n", optarg);
                return 2;
            }
            break;
        case 'w':
            d.wait_s = (unsigned)strtoul(optarg, &end, 10);
            if (!*optarg || *end) {
                fprintf(stderr, "moat-netdemo: --wait wants whole seconds, not '%s'\n", optarg);
                return 2;
            }
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc)
        d.cap_name = argv[optind++];
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    if (open_cap(&d))
        return 2;
    printf("nic: %s, MAC %02x:%02x:%02x:%02x:%02x:%02x, MTU %u\n", d.cap_name, d.info.mac[0],
           d.info.mac[1], d.info.mac[2], d.info.mac[3], d.info.mac[4], d.info.mac[5], d.info.mtu);
    int rc = dhcp(&d);
    if (rc == 0)
        rc = arp(&d);
    if (rc == 0)
        rc = ping(&d);
    moat_session_close(d.s);
    moat_close(d.cap);
    moat_disconnect(d.c);
    return rc ? 1 : 0;
}
