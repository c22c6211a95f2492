/*
 * peer_httpd — make bench's in-process peer of moat-httpd: the same server
 * (clients/moat-httpd/httpd.c) on the same lwIP interface code
 * (clients/moatnet) over the virtio-net driver's own sources
 * (driver-domains/virtio-net) driving moat's virtio-net model in this
 * process through the driver API (dd_host.h): no domain, no session, no
 * VMM. Its own switch, with the gateway, joins the host TAP interface
 * given, as moat --tap does; bench_net reaches both through TAP.
 *
 * The driver runs as a domain's run loop would: the pump polls it, spins
 * 200 us after the last work, then lets it arm its interrupts and sleeps
 * until the model's MSI-X (an eventfd here) or lwIP has frames to send.
 *
 * usage: peer_httpd --tap IFNAME --root DIR [--port N]
 * Address: 10.0.2.15/24 (static; the in-process peer has no session to
 * run DHCP on). Prints "peer_httpd: serving" once it listens.
 */
#define DD_HOST_TEST 1
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "dd_host.h"
#include "log.h"
#include "moat/libmoat.h"
#include "moat-httpd/httpd.h"
#include "moatnet/moatnet.h"
#include "netback.h"
#include "virtio_net.h"
#include "../../driver-domains/virtio-net/vnet.h"

#define RXQ      512u
#define SPIN_NS  200000ull

static struct dd_host host;
static struct vnet drv;
static struct {
    uint8_t f[RXQ][1514];
    uint16_t len[RXQ];
    unsigned head, n;
    uint64_t dropped;
} rxq;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static _Noreturn void die(const char *what, const char *why)
{
    fprintf(stderr, "peer_httpd: %s: %s\n", what, why);
    exit(1);
}

/* The driver delivers a frame (from dd_host_poll, on the pump). */
static void on_rx(void *ctx, const void *frame, uint32_t len)
{
    (void)ctx;
    if (rxq.n == RXQ || len > sizeof rxq.f[0]) {
        rxq.dropped++;
        return;
    }
    unsigned at = (rxq.head + rxq.n) % RXQ;
    memcpy(rxq.f[at], frame, len);
    rxq.len[at] = (uint16_t)len;
    rxq.n++;
}

static int link_send(void *ctx, const struct moat_frame *f, size_t n)
{
    (void)ctx;
    dd_host_use(&host);
    size_t k = 0;
    while (k < n && host.nic.ops->tx(host.nic.ctx, f[k].data, f[k].len))
        k++;
    if (k && host.nic.ops->tx_flush)
        host.nic.ops->tx_flush(host.nic.ctx);
    return (int)k;
}

static int take(struct moat_frame *f, size_t max)
{
    size_t k = 0;
    for (; k < max && rxq.n; k++) {
        uint32_t len = rxq.len[rxq.head];
        memcpy(f[k].data, rxq.f[rxq.head], len < f[k].len ? len : f[k].len);
        f[k].len = len;
        rxq.head = (rxq.head + 1) % RXQ;
        rxq.n--;
    }
    return (int)k;
}

static int link_recv(void *ctx, int wake_fd, struct moat_frame *f, size_t max, int timeout_ms)
{
    (void)ctx;
    uint64_t start = now_ns(), last = start;
    uint64_t deadline = timeout_ms < 0 ? UINT64_MAX : start + (uint64_t)timeout_ms * 1000000u;
    for (;;) {
        if (dd_host_poll(&host))
            last = now_ns();
        if (rxq.n)
            return take(f, max);
        if (timeout_ms == 0)
            return 0;
        uint64_t t = now_ns();
        if (t >= deadline)
            return -MOAT_ETIMEDOUT;
        if (t - last < SPIN_NS || dd_host_idle(&host))
            continue;
        struct pollfd p[2] = { { .fd = wake_fd, .events = POLLIN },
                               { .fd = host.irq_fd, .events = POLLIN } };
        uint64_t left = deadline - t;
        int ms = left > 1000000000ull ? 1000 : (int)(left / 1000000u) + 1;
        if (poll(p, 2, ms) > 0) {
            if (p[1].revents & POLLIN) {
                uint64_t v;
                if (read(host.irq_fd, &v, sizeof v) < 0 && errno != EAGAIN)
                    die("interrupt eventfd", strerror(errno));
            }
            if (p[0].revents & POLLIN)
                return 0;
        }
        last = now_ns();    /* woke up: spin again before the next sleep */
    }
}

int main(int argc, char **argv)
{
    const char *tap = NULL, *root = NULL;
    static struct httpd_config hc = { .port = 80, .max_conns = 64, .timeout_ms = 10000,
                                      .quiet = true };
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--tap"))
            tap = argv[i + 1];
        else if (!strcmp(argv[i], "--root"))
            root = argv[i + 1];
        else if (!strcmp(argv[i], "--port"))
            hc.port = (unsigned)atoi(argv[i + 1]);
    }
    if (!tap || !root || !realpath(root, hc.root) || !hc.port || hc.port > 65535) {
        fprintf(stderr, "usage: peer_httpd --tap IFNAME --root DIR [--port N]\n");
        return 2;
    }
    log_set_quiet(true);
    char err[512];
    struct netback_config nb;
    netback_config_default(&nb);
    snprintf(nb.tap, sizeof nb.tap, "%s", tap);
    if (!netback_setup(&nb, err, sizeof err))
        die("switch", err);
    dd_host_init(&host, "peer", 16u << 20);
    if (!virtio_net_create(&host.bus, "virtio-net0", 17, "mac=52-54-00-be-05-01", err, sizeof err))
        die("virtio-net model", err);
    dd_host_use(&host);
    vnet_start(&drv, "name=nic0");
    if (!host.nic_served)
        die("virtio-net driver", "it did not serve its Nic");
    host.on_rx = on_rx;
    struct moatnet_link link = { .send = link_send, .recv = link_recv,
                                 .mtu = host.nic.info.mtu };
    memcpy(link.mac, host.nic.info.mac, 6);
    struct moatnet_config cfg = { .cap = "peer.nic0", .static_ip = true, .ip = 0x0a00020fu,
                                  .mask = 0xffffff00u, .gw = 0x0a000202u };
    struct moatnet_info info;
    if (moatnet_start_link(&cfg, &link, &info, err, sizeof err))
        die("moatnet", err);
    int ls = httpd_listen(&hc);
    if (ls < 0)
        die("listen", strerror(errno));
    fprintf(stderr, "peer_httpd: serving %s on http://10.0.2.15:%u/ over an in-process "
            "virtio-net driver (TAP %s)\n", hc.root, hc.port, tap);
    httpd_run(&hc, ls);
}
