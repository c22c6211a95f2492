/* The network backend (devmodel/netback.h): the L2 switch, the gateway's
 * ARP/DHCP/ICMP answers (byte for byte, parsed here with the test's own
 * code), pcap files read back, and the host TAP port when /dev/net/tun can
 * be used. Sends are synchronous: when netback_send returns, every
 * delivery it caused (gateway replies included) has happened. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "log.h"
#include "net_gateway.h"
#include "net_pcap.h"
#include "net_tap.h"
#include "netback.h"
#include "testutil.h"

#define ETH_TEST 0x88b5u        /* IEEE local experimental ethertype */

static char err[512];

/* ---- test ports --------------------------------------------------------- */

struct tport {
    struct netback_port *p;
    uint8_t mac[6];
    atomic_uint frames;             /* every rx */
    atomic_uint test_bcast, test_ucast, arp_replies;
    atomic_int in_rx;               /* rx running now */
    atomic_uint overlaps;           /* rx entered while already running */
    uint8_t last[NETBACK_FRAME_MAX];
    size_t last_len;
    /* optional behaviour */
    struct tport *echo_peer;        /* echo test frames back from inside rx */
    struct tport *watch;            /* count frames arriving while watch is in rx */
    atomic_uint reentered;
};

static void trx(void *ctx, const void *frame, size_t len)
{
    struct tport *t = ctx;
    if (atomic_exchange(&t->in_rx, 1))
        atomic_fetch_add(&t->overlaps, 1);
    const uint8_t *f = frame;
    memcpy(t->last, frame, len);
    t->last_len = len;
    uint16_t type = (uint16_t)(f[12] << 8 | f[13]);
    if (type == ETH_TEST)
        atomic_fetch_add((f[0] & 1) ? &t->test_bcast : &t->test_ucast, 1);
    if (type == NET_ETHERTYPE_ARP && len >= 22 && f[20] == 0 && f[21] == 2)
        atomic_fetch_add(&t->arp_replies, 1);
    if (t->watch && atomic_load(&t->watch->in_rx))
        atomic_fetch_add(&t->reentered, 1);
    if (t->echo_peer && type == ETH_TEST) {
        uint8_t echo[NETBACK_FRAME_MAX];
        memcpy(echo, f, len);
        memcpy(echo, f + 6, 6);
        memcpy(echo + 6, t->mac, 6);
        cr_expect(netback_send(t->p, echo, len), "a send from inside rx was refused");
    }
    atomic_fetch_add(&t->frames, 1);
    atomic_store(&t->in_rx, 0);
}

static void mkmac(uint8_t mac[6], unsigned i)
{
    const uint8_t m[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, (uint8_t)(0x10 + i) };
    memcpy(mac, m, 6);
}

/* Join port "pI" with MAC 52:54:00:12:34:(10+I); announce = give the MAC. */
static void tport_add(struct tport *t, unsigned i, bool announce)
{
    char name[16];
    snprintf(name, sizeof name, "p%u", i);
    mkmac(t->mac, i);
    t->p = netback_port_add(netback_get(), name, announce ? t->mac : NULL, trx, t, err, sizeof err);
    cr_assert_not_null(t->p, "port %s: %s", name, err);
}

static size_t mkframe(uint8_t *buf, const uint8_t dst[6], const uint8_t src[6], uint16_t type,
                      size_t len)
{
    memcpy(buf, dst, 6);
    memcpy(buf + 6, src, 6);
    buf[12] = (uint8_t)(type >> 8);
    buf[13] = (uint8_t)type;
    for (size_t i = 14; i < len; i++)
        buf[i] = (uint8_t)(i * 7);
    return len;
}

static const uint8_t BCAST[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

static void setup_switch(bool gateway)
{
    struct netback_config cfg;
    netback_config_default(&cfg);
    cfg.no_gateway = !gateway;
    cr_assert(netback_setup(&cfg, err, sizeof err), "setup: %s", err);
}

static void quiet(void) { log_set_quiet(true); }
static void down(void) { netback_shutdown(); }

TestSuite(netback_switch, .init = quiet, .fini = down);
TestSuite(netback_gateway, .init = quiet, .fini = down);
TestSuite(netback_pcap, .init = quiet, .fini = down);
TestSuite(netback_config, .init = quiet, .fini = down);
TestSuite(netback_tap, .init = quiet, .fini = down);

static struct netback_stats nbstats(void)
{
    struct netback_stats s;
    netback_stats(netback_get(), &s);
    return s;
}

/* ---- switch ----------------------------------------------------------- */

Test(netback_switch, floods_unknown_unicast_then_forwards_after_learning)
{
    setup_switch(false);
    static struct tport a, b, c;
    tport_add(&a, 0, false);
    tport_add(&b, 1, false);
    tport_add(&c, 2, false);
    uint8_t f[64];
    mkframe(f, b.mac, a.mac, ETH_TEST, 64);
    cr_assert(netback_send(a.p, f, 64));
    cr_assert_eq(b.test_ucast, 1, "unknown unicast not flooded to b");
    cr_assert_eq(c.test_ucast, 1, "unknown unicast not flooded to c");
    cr_assert_eq(a.frames, 0, "a frame came back to its sender");

    mkframe(f, a.mac, b.mac, ETH_TEST, 64);     /* a's MAC was learned from its frame */
    cr_assert(netback_send(b.p, f, 64));
    cr_assert_eq(a.test_ucast, 1, "learned unicast did not reach a");
    cr_assert_eq(c.frames, 1, "learned unicast to a was also flooded to c");

    mkframe(f, b.mac, a.mac, ETH_TEST, 64);     /* now b is known too */
    cr_assert(netback_send(a.p, f, 64));
    cr_assert_eq(b.test_ucast, 2, "learned unicast did not reach b");
    cr_assert_eq(c.frames, 1, "learned unicast to b was also flooded to c");
    struct netback_stats s = nbstats();
    cr_assert_eq(s.flooded, 2, "flooded counts copies: %llu", (unsigned long long)s.flooded);
    cr_assert_eq(s.forwarded, 2, "forwarded: %llu", (unsigned long long)s.forwarded);
    cr_assert_eq(s.mac_learned, 2, "learned: %llu", (unsigned long long)s.mac_learned);
    struct netback_port_stats ps;
    netback_port_stats(a.p, &ps);
    cr_assert(ps.sent_frames == 2 && ps.sent_bytes == 128 && ps.recv_frames == 1 &&
              ps.recv_bytes == 64, "port a stats wrong: sent %llu/%llu recv %llu/%llu",
              (unsigned long long)ps.sent_frames, (unsigned long long)ps.sent_bytes,
              (unsigned long long)ps.recv_frames, (unsigned long long)ps.recv_bytes);
    cr_assert_eq(memcmp(b.last, f, 64), 0, "b received different bytes than a sent");
}

Test(netback_switch, configured_mac_is_known_before_traffic)
{
    setup_switch(false);
    static struct tport a, b, c;
    tport_add(&a, 0, false);
    tport_add(&b, 1, true);
    tport_add(&c, 2, false);
    uint8_t f[60];
    mkframe(f, b.mac, a.mac, ETH_TEST, 60);
    netback_send(a.p, f, 60);
    cr_assert_eq(b.frames, 1, "frame to b's configured MAC did not reach b");
    cr_assert_eq(c.frames, 0, "frame to b's configured MAC was flooded");
}

Test(netback_switch, broadcast_and_multicast_reach_every_port_but_the_sender)
{
    setup_switch(false);
    static struct tport t[4];
    for (unsigned i = 0; i < 4; i++)
        tport_add(&t[i], i, true);
    const uint8_t mcast[6] = { 0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb };
    uint8_t f[100];
    for (unsigned i = 0; i < 4; i++) {
        mkframe(f, BCAST, t[i].mac, ETH_TEST, 100);
        cr_assert(netback_send(t[i].p, f, 100));
        mkframe(f, mcast, t[i].mac, ETH_TEST, 100);
        cr_assert(netback_send(t[i].p, f, 100));
    }
    for (unsigned i = 0; i < 4; i++)
        cr_assert_eq(t[i].test_bcast, 6, "port %u got %u group frames, want 3 x 2 (its own "
                     "never)", i, t[i].test_bcast);
    cr_assert_eq(nbstats().flooded, 24);
}

Test(netback_switch, a_frame_never_returns_to_its_sender)
{
    setup_switch(false);
    static struct tport a, b;
    tport_add(&a, 0, true);
    tport_add(&b, 1, true);
    uint8_t f[60];
    mkframe(f, a.mac, a.mac, ETH_TEST, 60);     /* to itself */
    cr_assert(netback_send(a.p, f, 60));
    cr_assert_eq(a.frames + b.frames, 0, "a frame to the sender's own MAC was delivered");
    cr_assert_eq(nbstats().unknown_dropped, 1);
    netback_port_remove(b.p);
    const uint8_t nobody[6] = { 0x02, 0, 0, 0, 0, 9 };
    mkframe(f, nobody, a.mac, ETH_TEST, 60);
    cr_assert(netback_send(a.p, f, 60));
    cr_assert_eq(a.frames, 0, "unknown unicast on a one-port switch came back");
    cr_assert_eq(nbstats().unknown_dropped, 2, "unicast to nobody not counted");
}

Test(netback_switch, bad_lengths_are_dropped_and_counted)
{
    setup_switch(false);
    static struct tport a, b;
    tport_add(&a, 0, true);
    tport_add(&b, 1, true);
    static uint8_t big[2000];
    mkframe(big, BCAST, a.mac, ETH_TEST, sizeof big);
    const size_t bad[] = { 0, 1, 13, 1515, 2000 };
    for (size_t i = 0; i < 5; i++)
        cr_assert_not(netback_send(a.p, big, bad[i]), "length %zu accepted", bad[i]);
    cr_assert_eq(b.frames, 0, "a bad-length frame was delivered");
    struct netback_port_stats ps;
    netback_port_stats(a.p, &ps);
    cr_assert_eq(ps.bad_frames, 5, "bad_frames %llu", (unsigned long long)ps.bad_frames);
    cr_assert_eq(ps.sent_frames, 0);
    cr_assert(netback_send(a.p, big, 14), "a 14-byte frame (header only) was refused");
    cr_assert(netback_send(a.p, big, 1514), "a 1514-byte frame was refused");
    cr_assert_eq(b.frames, 2);
    cr_assert_eq(b.last_len, 1514);
}

Test(netback_switch, link_down_drops_both_ways)
{
    setup_switch(false);
    static struct tport a, b;
    tport_add(&a, 0, true);
    tport_add(&b, 1, true);
    uint8_t f[60];
    netback_port_link(b.p, false);
    mkframe(f, b.mac, a.mac, ETH_TEST, 60);
    netback_send(a.p, f, 60);
    cr_assert_eq(b.frames, 0, "a port with link down received a frame");
    mkframe(f, a.mac, b.mac, ETH_TEST, 60);
    cr_assert_not(netback_send(b.p, f, 60), "a port with link down could send");
    cr_assert_eq(a.frames, 0);
    struct netback_port_stats ps;
    netback_port_stats(b.p, &ps);
    cr_assert_eq(ps.dropped_link, 2, "dropped_link %llu, want 1 in + 1 out",
                 (unsigned long long)ps.dropped_link);
    netback_port_link(b.p, true);
    cr_assert(netback_send(b.p, f, 60));
    cr_assert_eq(a.frames, 1, "link up again did not restore traffic");
}

Test(netback_switch, names_are_unique_and_the_switch_has_a_limit)
{
    setup_switch(true);     /* the gateway takes one of the ports */
    static struct tport t[NETBACK_PORTS_MAX];
    for (unsigned i = 0; i < NETBACK_PORTS_MAX - 1; i++)
        tport_add(&t[i], i, false);
    uint8_t mac[6];
    mkmac(mac, 99);
    cr_assert_null(netback_port_add(netback_get(), "extra", mac, trx, &t[0], err, sizeof err),
                   "a port beyond the limit joined");
    cr_assert(strstr(err, "switch is full"), "%s", err);
    netback_port_remove(t[5].p);
    cr_assert_null(netback_port_add(netback_get(), "p6", mac, trx, &t[0], err, sizeof err),
                   "a duplicate name joined");
    cr_assert(strstr(err, "name is taken"), "%s", err);
    cr_assert_null(netback_port_add(netback_get(), "bad name", mac, trx, &t[0], err, sizeof err));
    struct netback_port *p = netback_port_add(netback_get(), "p5", mac, trx, &t[5], err, sizeof err);
    cr_assert_not_null(p, "a removed port's name could not be reused: %s", err);
}

Test(netback_switch, macs_move_and_age_out)
{
    struct netback_config cfg;
    netback_config_default(&cfg);
    cfg.no_gateway = true;
    cfg.mac_age_ms = 50;
    cr_assert(netback_setup(&cfg, err, sizeof err), "%s", err);
    static struct tport a, b, c;
    tport_add(&a, 0, false);
    tport_add(&b, 1, false);
    tport_add(&c, 2, false);
    uint8_t f[60];
    mkframe(f, BCAST, b.mac, ETH_TEST, 60);
    netback_send(b.p, f, 60);                   /* learn b on port b */
    mkframe(f, BCAST, b.mac, ETH_TEST, 60);
    netback_send(c.p, f, 60);                   /* b's MAC now shows up on port c */
    cr_assert_eq(nbstats().mac_moves, 1, "the move was not counted");
    unsigned b0 = b.frames, c0 = c.frames;
    mkframe(f, b.mac, a.mac, ETH_TEST, 60);
    netback_send(a.p, f, 60);
    cr_assert_eq(c.frames, c0 + 1, "frame to a moved MAC did not follow it to port c");
    cr_assert_eq(b.frames, b0, "frame to a moved MAC still went to its old port");

    /* Aging is about time passing: wait (by the clock, not as a
     * synchronisation) until every entry is older than mac_age_ms. */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        struct timespec nap = { 0, 5 * 1000000 };
        nanosleep(&nap, NULL);
        clock_gettime(CLOCK_MONOTONIC, &t1);
    } while ((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 < 120);
    netback_send(a.p, f, 60);
    cr_assert_eq(b.frames, b0 + 1, "an aged-out MAC was not flooded again (b)");
    cr_assert_eq(c.frames, c0 + 2, "an aged-out MAC was not flooded again (c)");
}

/* Port removal: blocks while an rx of the port runs. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool in_rx, release, rx_done, remove_returned, rx_done_at_return;
} rm = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false, false, false, false };

static void blocking_rx(void *ctx, const void *frame, size_t len)
{
    (void)ctx, (void)frame, (void)len;
    pthread_mutex_lock(&rm.lock);
    rm.in_rx = true;
    pthread_cond_broadcast(&rm.cond);
    while (!rm.release)
        pthread_cond_wait(&rm.cond, &rm.lock);
    rm.rx_done = true;
    pthread_mutex_unlock(&rm.lock);
}

static struct tport rm_a;
static struct netback_port *rm_port;

static void *rm_sender(void *arg)
{
    (void)arg;
    uint8_t f[60];
    mkframe(f, BCAST, rm_a.mac, ETH_TEST, 60);
    netback_send(rm_a.p, f, 60);
    return NULL;
}

static void *rm_remover(void *arg)
{
    (void)arg;
    netback_port_remove(rm_port);
    pthread_mutex_lock(&rm.lock);
    rm.remove_returned = true;
    rm.rx_done_at_return = rm.rx_done;
    pthread_mutex_unlock(&rm.lock);
    return NULL;
}

Test(netback_switch, port_remove_waits_for_a_running_delivery_and_forgets_its_macs, .timeout = 20)
{
    setup_switch(false);
    tport_add(&rm_a, 0, true);
    uint8_t bmac[6];
    mkmac(bmac, 1);
    rm_port = netback_port_add(netback_get(), "blocker", bmac, blocking_rx, NULL, err, sizeof err);
    cr_assert_not_null(rm_port, "%s", err);
    pthread_t s, r;
    pthread_create(&s, NULL, rm_sender, NULL);
    pthread_mutex_lock(&rm.lock);
    while (!rm.in_rx)
        pthread_cond_wait(&rm.cond, &rm.lock);
    pthread_mutex_unlock(&rm.lock);
    pthread_create(&r, NULL, rm_remover, NULL);
    /* The remover unlinks the port first (its name becomes free), then
     * waits for the delivery: wait until the name can be taken again. */
    static struct tport probe;
    struct netback_port *again;
    while (!(again = netback_port_add(netback_get(), "blocker", NULL, trx, &probe, err,
                                      sizeof err)))
        sched_yield();
    pthread_mutex_lock(&rm.lock);
    bool early = rm.remove_returned;
    rm.release = true;
    pthread_cond_broadcast(&rm.cond);
    pthread_mutex_unlock(&rm.lock);
    pthread_join(s, NULL);
    pthread_join(r, NULL);
    cr_assert_not(early, "netback_port_remove returned while the port's rx was running");
    cr_assert(rm.rx_done_at_return, "remove returned before the rx callback finished");
    netback_port_remove(again);

    static struct tport c;
    tport_add(&c, 2, false);
    uint8_t f[60];
    mkframe(f, bmac, rm_a.mac, ETH_TEST, 60);
    netback_send(rm_a.p, f, 60);
    cr_assert_eq(c.test_ucast, 1, "the removed port's MAC was not forgotten (frame not flooded)");
}

Test(netback_switch, sends_from_inside_rx_happen_after_the_delivery)
{
    setup_switch(false);
    static struct tport a, b;
    tport_add(&a, 0, true);
    tport_add(&b, 1, true);
    b.echo_peer = &a;           /* b answers every test frame from inside its rx */
    a.watch = &b;               /* a checks b's rx is not running when the answer arrives */
    uint8_t f[80];
    mkframe(f, b.mac, a.mac, ETH_TEST, 80);
    cr_assert(netback_send(a.p, f, 80));
    cr_assert_eq(a.test_ucast, 1, "the answer sent from b's rx was not delivered by the time "
                 "netback_send returned");
    cr_assert_eq(a.reentered, 0, "the answer was delivered re-entrantly, inside b's rx");
}

/* Concurrency: NTHREADS ports send from their own threads at once. */
#define NTHREADS 4u
#define NFRAMES  4000u
#define NARP     200u

static struct tport cc[NTHREADS];
static atomic_uint cc_refused;      /* sends refused (asserted in the main thread) */

static void *cc_sender(void *arg)
{
    unsigned i = (unsigned)(uintptr_t)arg;
    struct tport *me = &cc[i], *next = &cc[(i + 1) % NTHREADS];
    uint8_t f[128], arp[64];
    uint8_t zero[6] = { 0 };
    size_t alen = net_arp_build(arp, sizeof arp, BCAST, NET_ARP_REQUEST, me->mac,
                                0x0a00020fu + i, zero, 0x0a000202u);
    for (unsigned n = 0; n < NFRAMES; n++) {
        bool ok = true;
        mkframe(f, next->mac, me->mac, ETH_TEST, 64 + n % 64);
        ok &= netback_send(me->p, f, 64 + n % 64);
        mkframe(f, BCAST, me->mac, ETH_TEST, 60);
        ok &= netback_send(me->p, f, 60);
        if (n < NARP)
            ok &= netback_send(me->p, arp, alen);
        if (!ok)
            atomic_fetch_add(&cc_refused, 1);
    }
    return NULL;
}

Test(netback_switch, concurrent_senders_lose_nothing_and_never_overlap_a_port, .timeout = 60)
{
    setup_switch(true);
    for (unsigned i = 0; i < NTHREADS; i++)
        tport_add(&cc[i], i, true);
    pthread_t th[NTHREADS];
    for (unsigned i = 0; i < NTHREADS; i++)
        pthread_create(&th[i], NULL, cc_sender, (void *)(uintptr_t)i);
    for (unsigned i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
    cr_assert_eq(cc_refused, 0, "%u sends were refused", cc_refused);
    for (unsigned i = 0; i < NTHREADS; i++) {
        cr_assert_eq(cc[i].test_ucast, NFRAMES, "port %u got %u unicast frames, want %u", i,
                     cc[i].test_ucast, NFRAMES);
        cr_assert_eq(cc[i].test_bcast, (NTHREADS - 1) * NFRAMES, "port %u got %u broadcasts, "
                     "want %u", i, cc[i].test_bcast, (NTHREADS - 1) * NFRAMES);
        cr_assert_eq(cc[i].arp_replies, NARP, "port %u got %u ARP replies from the gateway, "
                     "want %u", i, cc[i].arp_replies, NARP);
        cr_assert_eq(cc[i].overlaps, 0, "port %u's rx ran concurrently with itself %u times", i,
                     cc[i].overlaps);
    }
    struct netback_stats s = nbstats();
    cr_assert_eq(s.arp_replies, NTHREADS * NARP);
    cr_assert_eq(s.deferred_dropped, 0);
}

/* ---- gateway: the test's own packet code ------------------------------- */

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static void wr16(uint8_t *p, unsigned v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void wr32(uint8_t *p, uint32_t v) { wr16(p, v >> 16); wr16(p + 2, v & 0xffff); }

/* One's-complement sum over data, RFC 1071, written independently of
 * net_gateway.c; 0 over a buffer holding a correct checksum. */
static uint16_t tcsum(uint32_t sum, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i + 1 < n; i += 2)
        sum += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (n & 1)
        sum += (uint32_t)p[n - 1] << 8;
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

#define IP(a, b, c, d) ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (d))
static const uint8_t GWMAC[6] = { 0x52, 0x55, 0x0a, 0x00, 0x02, 0x02 };
static const uint8_t CMAC[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
static const uint8_t CMAC2[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x57 };

/* Ethernet + IPv4 (IHL 5) header for plen payload bytes; checksum set. */
static void tip(uint8_t *f, const uint8_t dst[6], const uint8_t src[6], uint32_t sip,
                uint32_t dip, uint8_t proto, size_t plen)
{
    memcpy(f, dst, 6);
    memcpy(f + 6, src, 6);
    wr16(f + 12, 0x0800);
    uint8_t *h = f + 14;
    memset(h, 0, 20);
    h[0] = 0x45;
    wr16(h + 2, (unsigned)(20 + plen));
    h[8] = 64;
    h[9] = proto;
    wr32(h + 12, sip);
    wr32(h + 16, dip);
    wr16(h + 10, tcsum(0, h, 20));
}

/* A DHCP client message from mac (UDP checksum 0 = none). Returns the
 * frame length. requested/server 0 = option absent. */
static size_t tdhcp(uint8_t *f, const uint8_t mac[6], uint8_t type, uint32_t xid,
                    uint32_t requested, uint32_t server)
{
    memset(f, 0, 342);
    uint8_t *b = f + 42;
    b[0] = 1;
    b[1] = 1;
    b[2] = 6;
    wr32(b + 4, xid);
    wr16(b + 10, 0x8000);       /* broadcast flag */
    memcpy(b + 28, mac, 6);
    wr32(b + 236, 0x63825363);
    size_t o = 240;
    b[o++] = 53, b[o++] = 1, b[o++] = type;
    b[o++] = 55, b[o++] = 3, b[o++] = 1, b[o++] = 3, b[o++] = 6;   /* parameter list */
    if (requested)
        b[o++] = 50, b[o++] = 4, wr32(b + o, requested), o += 4;
    if (server)
        b[o++] = 54, b[o++] = 4, wr32(b + o, server), o += 4;
    b[o++] = 255;
    size_t blen = 300;
    uint8_t *u = f + 34;
    wr16(u, 68);
    wr16(u + 2, 67);
    wr16(u + 4, (unsigned)(8 + blen));
    tip(f, BCAST, mac, 0, 0xffffffffu, 17, 8 + blen);
    return 42 + blen;
}

/* Find option code in a DHCP reply; NULL if absent. */
static const uint8_t *topt(const uint8_t *opts, size_t n, uint8_t code, uint8_t *olen)
{
    for (size_t i = 0; i < n && opts[i] != 255;) {
        if (opts[i] == 0) {
            i++;
            continue;
        }
        cr_assert(i + 1 < n && i + 2 + opts[i + 1] <= n, "the reply's options run past its end");
        if (opts[i] == code) {
            *olen = opts[i + 1];
            return opts + i + 2;
        }
        i += 2 + opts[i + 1];
    }
    return NULL;
}

static uint32_t topt32(const uint8_t *f, size_t len, uint8_t code, const char *what)
{
    uint8_t olen = 0;
    const uint8_t *v = topt(f + 42 + 240, len - 42 - 240, code, &olen);
    cr_assert_not_null(v, "option %u (%s) missing", code, what);
    cr_assert_eq(olen, 4, "option %u (%s) has length %u", code, what, olen);
    return rd32(v);
}

/* Check the Ethernet/IPv4/UDP framing of a gateway DHCP reply and return
 * its message type. */
static uint8_t tcheck_dhcp_reply(const uint8_t *f, size_t len, uint32_t xid, const uint8_t mac[6])
{
    cr_assert_geq(len, 42 + 240 + 4, "DHCP reply too short: %zu", len);
    cr_assert_eq(memcmp(f, BCAST, 6), 0, "reply not broadcast at L2 (client has no address)");
    cr_assert_eq(memcmp(f + 6, GWMAC, 6), 0, "reply not from the gateway MAC");
    cr_assert_eq(rd16(f + 12), 0x0800);
    const uint8_t *h = f + 14;
    cr_assert_eq(h[0], 0x45, "IP version/IHL %#x", h[0]);
    cr_assert_eq(tcsum(0, h, 20), 0, "IP header checksum wrong");
    cr_assert_eq(h[9], 17);
    cr_assert_eq(rd32(h + 12), IP(10, 0, 2, 2), "IP source %#x", rd32(h + 12));
    cr_assert_eq(rd32(h + 16), 0xffffffffu, "IP destination %#x", rd32(h + 16));
    size_t ulen = rd16(f + 38);
    cr_assert_eq(rd16(h + 2), 20 + ulen, "IP and UDP lengths disagree");
    cr_assert_leq(14 + 20 + ulen, len);
    cr_assert_eq(rd16(f + 34), 67);
    cr_assert_eq(rd16(f + 36), 68);
    /* UDP checksum over the pseudo-header + segment */
    uint8_t ph[12];
    memcpy(ph, h + 12, 8);
    ph[8] = 0, ph[9] = 17;
    wr16(ph + 10, (unsigned)ulen);
    uint32_t s = (uint16_t)~tcsum(0, ph, 12);
    cr_assert(rd16(f + 40) != 0 && tcsum(s, f + 34, ulen) == 0, "UDP checksum wrong");
    const uint8_t *b = f + 42;
    cr_assert_eq(b[0], 2, "op is not BOOTREPLY");
    cr_assert_eq(rd32(b + 4), xid, "xid not echoed");
    cr_assert_eq(memcmp(b + 28, mac, 6), 0, "chaddr not echoed");
    cr_assert_eq(rd32(b + 236), 0x63825363u, "magic cookie");
    uint8_t olen = 0;
    const uint8_t *t = topt(b + 240, ulen - 8 - 240, 53, &olen);
    cr_assert(t && olen == 1, "no message type option");
    return t[0];
}

/* A port "client" on the default switch; returns the single reply it got
 * to f. */
static struct tport client;

static void client_join(void)
{
    setup_switch(true);
    client.p = netback_port_add(netback_get(), "client", NULL, trx, &client, err, sizeof err);
    cr_assert_not_null(client.p, "%s", err);
}

static size_t exchange(const uint8_t *f, size_t len)
{
    unsigned before = client.frames;
    cr_assert(netback_send(client.p, f, len));
    cr_assert_eq(client.frames, before + 1, "expected exactly one reply, got %u",
                 client.frames - before);
    return client.last_len;
}

static void expect_no_reply(const uint8_t *f, size_t len, const char *what)
{
    unsigned before = client.frames;
    uint64_t ign = nbstats().gateway_ignored;
    netback_send(client.p, f, len);
    cr_assert_eq(client.frames, before, "%s was answered", what);
    cr_assert_eq(nbstats().gateway_ignored, ign + 1, "%s not counted in gateway_ignored", what);
}

Test(netback_gateway, addresses_follow_the_subnet)
{
    setup_switch(true);
    struct netback *nb = netback_get();
    cr_assert_eq(netback_gateway_ip(nb), IP(10, 0, 2, 2));
    cr_assert_eq(netback_dhcp_first(nb), IP(10, 0, 2, 15));
    uint8_t mac[6];
    netback_gateway_mac(nb, mac);
    cr_assert_eq(memcmp(mac, GWMAC, 6), 0, "gateway MAC is not 52:55:0a:00:02:02");
    struct netback_config cfg;
    netback_config_default(&cfg);
    cr_assert(netback_parse_subnet("192.168.64.0/20", &cfg, err, sizeof err), "%s", err);
    cr_assert(netback_setup(&cfg, err, sizeof err), "%s", err);
    nb = netback_get();
    cr_assert_eq(netback_gateway_ip(nb), IP(192, 168, 64, 2));
    cr_assert_eq(netback_dhcp_first(nb), IP(192, 168, 64, 15));
    netback_gateway_mac(nb, mac);
    const uint8_t want[6] = { 0x52, 0x55, 192, 168, 64, 2 };
    cr_assert_eq(memcmp(mac, want, 6), 0);
}

Test(netback_gateway, arp_request_gets_a_byte_exact_reply)
{
    client_join();
    uint8_t req[60] = { 0 };
    memcpy(req, BCAST, 6);
    memcpy(req + 6, CMAC, 6);
    wr16(req + 12, 0x0806);
    wr16(req + 14, 1);          /* Ethernet */
    wr16(req + 16, 0x0800);     /* IPv4 */
    req[18] = 6, req[19] = 4;
    wr16(req + 20, 1);          /* request */
    memcpy(req + 22, CMAC, 6);
    wr32(req + 28, IP(10, 0, 2, 15));
    wr32(req + 38, IP(10, 0, 2, 2));
    const uint8_t want[60] = {
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56,     /* to the asker */
        0x52, 0x55, 0x0a, 0x00, 0x02, 0x02,     /* from the gateway */
        0x08, 0x06,
        0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x02,
        0x52, 0x55, 0x0a, 0x00, 0x02, 0x02, 10, 0, 2, 2,    /* sender: gateway */
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 10, 0, 2, 15,   /* target: asker */
        /* 18 bytes of padding to 60 */
    };
    size_t n = exchange(req, sizeof req);
    cr_assert_eq(n, 60, "reply length %zu, want 60 (padded)", n);
    for (size_t i = 0; i < 60; i++)
        cr_assert_eq(client.last[i], want[i], "byte %zu of the ARP reply is %#x, want %#x", i,
                     client.last[i], want[i]);
    cr_assert_eq(nbstats().arp_replies, 1);

    wr32(req + 38, IP(10, 0, 2, 3));
    expect_no_reply(req, sizeof req, "an ARP request for another address");
    wr32(req + 28, IP(10, 0, 2, 2));
    wr32(req + 38, IP(10, 0, 2, 2));
    expect_no_reply(req, sizeof req, "a gratuitous ARP for the gateway address");
    wr32(req + 28, IP(10, 0, 2, 15));
    wr16(req + 20, 2);
    expect_no_reply(req, sizeof req, "an ARP reply");
    wr16(req + 20, 1);
    expect_no_reply(req, 14 + 27, "a truncated ARP request");
}

Test(netback_gateway, dhcp_discover_gets_an_offer_request_an_ack)
{
    client_join();
    uint8_t f[400];
    size_t n = tdhcp(f, CMAC, 1, 0x12345678u, 0, 0);
    n = exchange(f, n);
    const uint8_t *r = client.last;
    cr_assert_eq(tcheck_dhcp_reply(r, n, 0x12345678u, CMAC), 2, "DISCOVER not answered by OFFER");
    cr_assert_eq(rd32(r + 42 + 16), IP(10, 0, 2, 15), "yiaddr %#x, want 10.0.2.15",
                 rd32(r + 42 + 16));
    cr_assert_eq(rd32(r + 42 + 20), IP(10, 0, 2, 2), "siaddr");
    cr_assert_eq(topt32(r, n, 54, "server id"), IP(10, 0, 2, 2));
    cr_assert_eq(topt32(r, n, 1, "subnet mask"), 0xffffff00u);
    cr_assert_eq(topt32(r, n, 3, "router"), IP(10, 0, 2, 2));
    cr_assert_eq(topt32(r, n, 51, "lease time"), 86400u);

    n = tdhcp(f, CMAC, 3, 0x12345679u, IP(10, 0, 2, 15), IP(10, 0, 2, 2));
    n = exchange(f, n);
    cr_assert_eq(tcheck_dhcp_reply(r, n, 0x12345679u, CMAC), 5, "REQUEST not answered by ACK");
    cr_assert_eq(rd32(r + 42 + 16), IP(10, 0, 2, 15));
    cr_assert_eq(topt32(r, n, 54, "server id"), IP(10, 0, 2, 2));
    cr_assert_eq(topt32(r, n, 51, "lease time"), 86400u);
    cr_assert_eq(topt32(r, n, 1, "subnet mask"), 0xffffff00u);

    /* A second client gets the next address; the first keeps its own. */
    n = tdhcp(f, CMAC2, 1, 7, 0, 0);
    n = exchange(f, n);
    cr_assert_eq(tcheck_dhcp_reply(r, n, 7, CMAC2), 2);
    cr_assert_eq(rd32(r + 42 + 16), IP(10, 0, 2, 16), "second MAC offered %#x", rd32(r + 58));
    n = tdhcp(f, CMAC, 1, 8, 0, 0);
    n = exchange(f, n);
    cr_assert_eq(rd32(r + 42 + 16), IP(10, 0, 2, 15), "lease not stable per MAC");
    struct netback_stats s = nbstats();
    cr_assert(s.dhcp_offers == 3 && s.dhcp_acks == 1, "offers %llu acks %llu",
              (unsigned long long)s.dhcp_offers, (unsigned long long)s.dhcp_acks);
}

Test(netback_gateway, dhcp_request_for_a_wrong_address_or_server_gets_a_nak)
{
    client_join();
    uint8_t f[400];
    size_t n = exchange(f, tdhcp(f, CMAC, 1, 1, 0, 0));
    n = tdhcp(f, CMAC, 3, 2, IP(10, 0, 2, 99), IP(10, 0, 2, 2));
    n = exchange(f, n);
    const uint8_t *r = client.last;
    cr_assert_eq(tcheck_dhcp_reply(r, n, 2, CMAC), 6, "wrong address not NAKed");
    cr_assert_eq(rd32(r + 42 + 16), 0, "a NAK carries yiaddr");
    uint8_t olen;
    cr_assert_null(topt(r + 282, n - 282, 51, &olen), "a NAK carries a lease time");
    cr_assert_eq(topt32(r, n, 54, "server id"), IP(10, 0, 2, 2));
    n = exchange(f, tdhcp(f, CMAC, 3, 3, IP(10, 0, 2, 15), IP(10, 0, 2, 1)));
    cr_assert_eq(tcheck_dhcp_reply(r, n, 3, CMAC), 6, "wrong server id not NAKed");
    n = exchange(f, tdhcp(f, CMAC, 3, 4, 0, 0));
    cr_assert_eq(tcheck_dhcp_reply(r, n, 4, CMAC), 6, "REQUEST without an address not NAKed");
    cr_assert_eq(nbstats().dhcp_naks, 3);
}

Test(netback_gateway, icmp_echo_gets_a_reply_with_valid_checksums)
{
    client_join();
    uint8_t f[14 + 20 + 64];
    uint8_t *icmp = f + 34;
    icmp[0] = 8, icmp[1] = 0;
    wr16(icmp + 2, 0);
    wr16(icmp + 4, 0xbeef);
    wr16(icmp + 6, 42);
    for (int i = 8; i < 64; i++)
        icmp[i] = (uint8_t)i;
    wr16(icmp + 2, tcsum(0, icmp, 64));
    tip(f, GWMAC, CMAC, IP(10, 0, 2, 15), IP(10, 0, 2, 2), 1, 64);
    size_t n = exchange(f, sizeof f);
    const uint8_t *r = client.last;
    cr_assert_eq(n, sizeof f);
    cr_assert_eq(memcmp(r, CMAC, 6), 0, "reply not to the asker's MAC");
    cr_assert_eq(memcmp(r + 6, GWMAC, 6), 0);
    cr_assert_eq(tcsum(0, r + 14, 20), 0, "IP header checksum wrong");
    cr_assert_eq(rd32(r + 26), IP(10, 0, 2, 2));
    cr_assert_eq(rd32(r + 30), IP(10, 0, 2, 15));
    cr_assert_eq(r[23], 1);
    cr_assert_eq(r[34], 0, "not an echo reply");
    cr_assert_eq(tcsum(0, r + 34, 64), 0, "ICMP checksum wrong");
    cr_assert_eq(memcmp(r + 38, icmp + 4, 60), 0, "id, sequence or data not echoed");
    cr_assert_eq(nbstats().icmp_replies, 1);

    wr16(icmp + 2, (unsigned)rd16(icmp + 2) ^ 1);
    expect_no_reply(f, sizeof f, "an echo request with a bad ICMP checksum");
    wr16(icmp + 2, (unsigned)rd16(icmp + 2) ^ 1);
    tip(f, GWMAC, CMAC, IP(10, 0, 2, 15), IP(10, 0, 2, 3), 1, 64);
    expect_no_reply(f, sizeof f, "an echo request for another address");
}

Test(netback_gateway, malformed_frames_are_ignored_and_counted)
{
    client_join();
    uint8_t good[400], f[400];
    size_t n = tdhcp(good, CMAC, 1, 9, 0, 0);
    exchange(good, n);      /* the well-formed one is answered */

    memcpy(f, good, n);
    expect_no_reply(f, 14 + 10, "a truncated IP header");
    memcpy(f, good, n);
    f[14] = 0x44;           /* IHL 4 */
    expect_no_reply(f, n, "IHL below 5");
    memcpy(f, good, n);
    f[14] = 0x4f;           /* IHL 15: 60 bytes, longer than a 40-byte frame's IP part */
    expect_no_reply(f, 14 + 40, "IHL beyond the frame");
    memcpy(f, good, n);
    wr16(f + 16, 1400);     /* total length beyond the frame */
    wr16(f + 24, 0), wr16(f + 24, tcsum(0, f + 14, 20));
    expect_no_reply(f, n, "IP total length beyond the frame");
    memcpy(f, good, n);
    f[24] ^= 0x40;
    expect_no_reply(f, n, "a bad IP header checksum");
    memcpy(f, good, n);
    wr16(f + 20, 0x2000);   /* more fragments */
    wr16(f + 24, 0), wr16(f + 24, tcsum(0, f + 14, 20));
    expect_no_reply(f, n, "an IP fragment");
    memcpy(f, good, n);
    wr16(f + 38, 1000);     /* UDP length beyond the IP payload */
    expect_no_reply(f, n, "UDP length beyond the frame");
    memcpy(f, good, n);
    wr16(f + 38, 4);        /* UDP length below its header */
    expect_no_reply(f, n, "UDP length below 8");
    memcpy(f, good, n);
    f[42 + 240 + 1] = 200;  /* message type option runs past the end */
    expect_no_reply(f, n, "a DHCP option walk past the end");
    memcpy(f, good, n);
    memset(f + 42 + 240, 0, 60);
    f[42 + 299] = 53;       /* last byte: a code without a length */
    expect_no_reply(f, n, "a DHCP option code without its length byte");
    memcpy(f, good, n);
    memset(f + 42 + 240 + 3, 0, 57);    /* type option, then no END */
    expect_no_reply(f, n, "DHCP options without END");
    memcpy(f, good, n);
    f[42 + 240 + 1] = 2;    /* message type of length 2 */
    expect_no_reply(f, n, "a DHCP message type of the wrong size");
    memcpy(f, good, n);
    f[42 + 236] = 0;        /* magic */
    expect_no_reply(f, n, "a DHCP message without the magic cookie");
    memcpy(f, good, n);
    wr16(f + 16, 20 + 8 + 200);     /* IP and UDP agree on a 200-byte BOOTP body */
    wr16(f + 24, 0), wr16(f + 24, tcsum(0, f + 14, 20));
    wr16(f + 38, 8 + 200);
    expect_no_reply(f, 42 + 200, "a DHCP message shorter than its fixed part");
    memcpy(f, good, n);
    memcpy(f + 42 + 28, BCAST, 6);
    expect_no_reply(f, n, "DHCP from a broadcast chaddr");
    const uint8_t other[6] = { 0x02, 0, 0, 0, 0, 1 };
    memcpy(f, good, n);
    memcpy(f, other, 6);
    expect_no_reply(f, n, "a frame to another MAC (flooded to the gateway)");
    memcpy(f, good, n);
    wr16(f + 12, 0x86dd);
    expect_no_reply(f, n, "an IPv6 frame");
    /* And then the gateway still works. */
    cr_assert_eq(tcheck_dhcp_reply(client.last, exchange(good, n), 9, CMAC), 2);
}

Test(netback_gateway, pure_helpers)
{
    /* RFC 1071 §3 example: the sum of 0001 f203 f4f5 f6f7 is ddf2. */
    const uint8_t v[8] = { 0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7 };
    cr_assert_eq(net_csum(v, 8), (uint16_t)~0xddf2u);
    cr_assert_eq(net_csum_fold(net_csum_add(net_csum_add(0, v, 4), v + 4, 4)), net_csum(v, 8),
                 "a sum chained at an even offset differs from the sum in one go");
    const uint8_t odd[3] = { 0x12, 0x34, 0x56 };    /* odd tail is padded: 1234 + 5600 */
    cr_assert_eq(net_csum(odd, 3), (uint16_t)~0x6834u);
    struct net_gateway *gw = net_gateway_new(IP(10, 0, 2, 0), 24);
    cr_assert_not_null(gw);
    cr_assert_eq(net_gateway_pool_size(gw), 240, "10.0.2.15..254 is 240 leases");
    net_gateway_free(gw);
    gw = net_gateway_new(IP(10, 0, 2, 0), 25);
    cr_assert_eq(net_gateway_pool_size(gw), 112);
    net_gateway_free(gw);
    cr_assert_null(net_gateway_new(IP(10, 0, 2, 0), 26), "a /26 pool is smaller than 64");
    cr_assert_null(net_gateway_new(IP(10, 0, 2, 1), 24), "host bits accepted");
    /* The DHCP builder round-trips through the parser. */
    struct net_dhcp d = { .op = 2, .xid = 5, .yiaddr = IP(10, 0, 2, 20), .chaddr = { 2, 3 },
                          .msg_type = NET_DHCP_ACK, .server_id = IP(10, 0, 2, 2),
                          .lease_time = 60, .subnet_mask = 0xffffff00u, .router = 9, .dns = 8 };
    uint8_t buf[400];
    size_t n = net_dhcp_build(buf, sizeof buf, &d);
    cr_assert_eq(n, 300);
    struct net_dhcp e;
    cr_assert(net_dhcp_parse(buf, n, &e));
    cr_assert(e.xid == 5 && e.yiaddr == d.yiaddr && e.msg_type == NET_DHCP_ACK &&
              e.server_id == d.server_id && e.lease_time == 60 && e.subnet_mask == d.subnet_mask
              && e.router == 9 && e.dns == 8 && !memcmp(e.chaddr, d.chaddr, 6), "round trip");
}

/* ---- pcap --------------------------------------------------------------- */

struct rec { uint32_t len, orig; uint8_t data[NETBACK_FRAME_MAX]; };

/* Read a pcap file: check the header, return the number of records (up
 * to max) in recs. */
static unsigned read_pcap(const char *path, struct rec *recs, unsigned max)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    uint32_t h[6];
    cr_assert_eq(fread(h, 4, 6, f), 6, "%s: short global header", path);
    cr_assert_eq(h[0], 0xa1b2c3d4u, "magic %#x", h[0]);
    cr_assert_eq(h[1] & 0xffff, 2, "major version");
    cr_assert_eq(h[1] >> 16, 4, "minor version");
    cr_assert_eq(h[2], 0, "thiszone");
    cr_assert_eq(h[3], 0, "sigfigs");
    cr_assert_eq(h[4], 65535, "snaplen %u", h[4]);
    cr_assert_eq(h[5], 1, "linktype %u, want LINKTYPE_ETHERNET", h[5]);
    unsigned n = 0;
    uint32_t r[4];
    while (fread(r, 4, 4, f) == 4) {
        cr_assert_lt(n, max, "%s has more records than expected", path);
        cr_assert_leq(r[2], NETBACK_FRAME_MAX, "record length %u", r[2]);
        cr_assert_eq(r[2], r[3], "truncated record");
        cr_assert_lt(r[1], 1000000u, "microseconds %u", r[1]);
        recs[n].len = r[2];
        cr_assert_eq(fread(recs[n].data, 1, r[2], f), r[2], "%s: short record", path);
        n++;
    }
    fclose(f);
    return n;
}

Test(netback_pcap, captured_frames_read_back_byte_for_byte)
{
    const char *dir = tu_tmpdir();
    char pa[300], pg[300], pl[300];
    snprintf(pa, sizeof pa, "%s/a.pcap", dir);
    snprintf(pg, sizeof pg, "%s/gw.pcap", dir);
    snprintf(pl, sizeof pl, "%s/later.pcap", dir);
    struct netback_config cfg;
    netback_config_default(&cfg);
    char spec[400];
    snprintf(spec, sizeof spec, "p0=%s", pa);
    cr_assert(netback_parse_pcap(spec, &cfg, err, sizeof err), "%s", err);
    snprintf(spec, sizeof spec, "gateway=%s", pg);
    cr_assert(netback_parse_pcap(spec, &cfg, err, sizeof err), "%s", err);
    snprintf(spec, sizeof spec, "later=%s", pl);
    cr_assert(netback_parse_pcap(spec, &cfg, err, sizeof err), "%s", err);
    cr_assert(netback_setup(&cfg, err, sizeof err), "%s", err);

    static struct tport a;
    tport_add(&a, 0, true);
    uint8_t arp[60];
    const uint8_t zero[6] = { 0 };
    size_t alen = net_arp_build(arp, sizeof arp, BCAST, 1, a.mac, IP(10, 0, 2, 15), zero,
                                IP(10, 0, 2, 2));
    cr_assert(netback_send(a.p, arp, alen));
    cr_assert_eq(a.frames, 1);
    uint8_t big[1514];
    mkframe(big, BCAST, a.mac, ETH_TEST, sizeof big);
    cr_assert(netback_send(a.p, big, sizeof big));

    static struct rec r[8];
    unsigned n = read_pcap(pa, r, 8);
    cr_assert_eq(n, 3, "port p0: %u records, want request, reply, big frame", n);
    cr_assert(r[0].len == alen && !memcmp(r[0].data, arp, alen), "record 0 is not the request");
    cr_assert_eq(r[1].len, 60);
    cr_assert_eq(memcmp(r[1].data + 6, GWMAC, 6), 0, "record 1 is not the gateway's reply");
    cr_assert(r[2].len == 1514 && !memcmp(r[2].data, big, 1514), "record 2 is not the big frame");
    uint8_t reply[60];
    memcpy(reply, r[1].data, 60);
    n = read_pcap(pg, r, 8);
    cr_assert_eq(n, 3, "gateway: %u records, want request, reply, big frame", n);
    cr_assert(r[0].len == alen && !memcmp(r[0].data, arp, alen), "gateway did not record the request");
    cr_assert(r[1].len == 60 && !memcmp(r[1].data, reply, 60), "gateway's reply differs");
    cr_assert_eq(read_pcap(pl, r, 8), 0, "a port that never joined has records");
    static struct tport later;
    later.p = netback_port_add(netback_get(), "later", NULL, trx, &later, err, sizeof err);
    cr_assert_not_null(later.p, "%s", err);
    cr_assert(netback_send(a.p, big, 100));
    cr_assert_eq(read_pcap(pl, r, 8), 1, "a port added after setup is not captured");
    cr_assert(r[0].len == 100 && !memcmp(r[0].data, big, 100));
    struct netback_stats s = nbstats();
    cr_assert_eq(s.pcap_records, 3 + 3 + 2 + 1, "pcap_records %llu",
                 (unsigned long long)s.pcap_records);
    cr_assert_eq(s.pcap_errors, 0);
}

Test(netback_pcap, an_unwritable_file_fails_setup_with_a_sentence)
{
    struct netback_config cfg;
    netback_config_default(&cfg);
    cr_assert(netback_parse_pcap("p0=/nonexistent-dir/x.pcap", &cfg, err, sizeof err), "%s", err);
    cr_assert_not(netback_setup(&cfg, err, sizeof err));
    cr_assert(strstr(err, "cannot create pcap file /nonexistent-dir/x.pcap for port p0"), "%s", err);
    struct net_pcap *pc = net_pcap_open("/dev/full", "p0", err, sizeof err);
    cr_assert_null(pc, "a pcap on a full device was accepted");
    cr_assert(strstr(err, "/dev/full"), "%s", err);
}

Test(netback_pcap, write_errors_are_counted_not_fatal)
{
    const char *dir = tu_tmpdir();
    char path[300], spec[400];
    snprintf(path, sizeof path, "%s/small.pcap", dir);
    snprintf(spec, sizeof spec, "p0=%s", path);
    struct netback_config cfg;
    netback_config_default(&cfg);
    cfg.no_gateway = true;
    cr_assert(netback_parse_pcap(spec, &cfg, err, sizeof err), "%s", err);
    cr_assert(netback_setup(&cfg, err, sizeof err), "%s", err);
    static struct tport a, b;
    tport_add(&a, 0, true);
    tport_add(&b, 1, true);
    /* Room for the header and one 60-byte record, then EFBIG. */
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 24 + 16 + 60;
    signal(SIGXFSZ, SIG_IGN);
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0, "setrlimit: %s", strerror(errno));
    uint8_t f[60];
    mkframe(f, b.mac, a.mac, ETH_TEST, 60);
    for (int i = 0; i < 3; i++)
        cr_assert(netback_send(a.p, f, 60), "a capture error refused the frame");
    setrlimit(RLIMIT_FSIZE, &old);
    cr_assert_eq(b.frames, 3, "capture errors stopped forwarding");
    struct netback_stats s = nbstats();
    cr_assert_eq(s.pcap_records, 1, "pcap_records %llu", (unsigned long long)s.pcap_records);
    cr_assert_eq(s.pcap_errors, 2, "pcap_errors %llu", (unsigned long long)s.pcap_errors);
}

/* ---- configuration ------------------------------------------------------- */

Test(netback_config, subnets)
{
    struct netback_config c;
    netback_config_default(&c);
    cr_assert(c.net == IP(10, 0, 2, 0) && c.prefix == 24 && !c.no_gateway && !c.tap[0] &&
              c.n_pcap == 0, "defaults");
    cr_assert(netback_parse_subnet("172.16.0.0/12", &c, err, sizeof err), "%s", err);
    cr_assert(c.net == IP(172, 16, 0, 0) && c.prefix == 12);
    cr_assert(netback_parse_subnet("10.0.0.0/8", &c, err, sizeof err), "%s", err);
    cr_assert(netback_parse_subnet("10.9.8.128/25", &c, err, sizeof err), "%s", err);
    const char *bad[] = { "", "10.0.2.0", "10.0.2/24", "10.0.2.0/", "10.0.2.0/x", "256.0.0.0/8",
                          "10.0.2.0/24x", " 10.0.2.0/24", "10.0.2.0/-1", "1.2.3.4.5/8",
                          "10.0.2.0/0024" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_not(netback_parse_subnet(bad[i], &c, err, sizeof err), "'%s' accepted", bad[i]);
        cr_assert(strstr(err, "A.B.C.D/N"), "error for '%s' does not say what to give: %s",
                  bad[i], err);
    }
    cr_assert_not(netback_parse_subnet("10.0.2.0/26", &c, err, sizeof err));
    cr_assert(strstr(err, "8..25"), "%s", err);
    cr_assert_not(netback_parse_subnet("10.0.0.0/7", &c, err, sizeof err));
    cr_assert_not(netback_parse_subnet("10.0.2.5/24", &c, err, sizeof err));
    cr_assert(strstr(err, "host bits") && strstr(err, "10.0.2.0/24"), "%s", err);
}

Test(netback_config, pcap_specs)
{
    struct netback_config c;
    netback_config_default(&c);
    cr_assert(netback_parse_pcap("vnet0.net0=/tmp/a.pcap", &c, err, sizeof err), "%s", err);
    cr_assert(c.n_pcap == 1 && !strcmp(c.pcap[0].port, "vnet0.net0") &&
              !strcmp(c.pcap[0].file, "/tmp/a.pcap"));
    const char *bad[] = { "", "x", "=f", "x=", "noequals" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_not(netback_parse_pcap(bad[i], &c, err, sizeof err), "'%s' accepted", bad[i]);
        cr_assert(strstr(err, "PORT=FILE"), "%s", err);
    }
    cr_assert_not(netback_parse_pcap("vnet0.net0=/tmp/b.pcap", &c, err, sizeof err));
    cr_assert(strstr(err, "already captured"), "%s", err);
    cr_assert_not(netback_parse_pcap("gateway=/tmp/a.pcap", &c, err, sizeof err));
    cr_assert(strstr(err, "own file"), "%s", err);
    for (unsigned i = 1; i < NETBACK_PCAPS_MAX; i++) {
        char s[64];
        snprintf(s, sizeof s, "p%u=/tmp/p%u.pcap", i, i);
        cr_assert(netback_parse_pcap(s, &c, err, sizeof err), "%s", err);
    }
    cr_assert_not(netback_parse_pcap("one=/tmp/too-many.pcap", &c, err, sizeof err));
    cr_assert(strstr(err, "at most"), "%s", err);
    cr_assert_eq(c.n_pcap, NETBACK_PCAPS_MAX);
}

Test(netback_config, hostfwd_specs)
{
    struct netback_config c;
    netback_config_default(&c);
    cr_assert(netback_parse_hostfwd("tcp:127.0.0.1:8080-:80", &c, err, sizeof err), "%s", err);
    cr_assert(c.n_fwd == 1 && c.fwd[0].host_ip == 0x7f000001u && c.fwd[0].host_port == 8080 &&
              c.fwd[0].guest_ip == 0 && c.fwd[0].guest_port == 80,
              "parsed %#x:%u -> %#x:%u", c.fwd[0].host_ip, c.fwd[0].host_port,
              c.fwd[0].guest_ip, c.fwd[0].guest_port);
    cr_assert(netback_parse_hostfwd("tcp::2222-10.0.2.16:22", &c, err, sizeof err), "%s", err);
    cr_assert(c.fwd[1].host_ip == 0x7f000001u && c.fwd[1].guest_ip == 0x0a000210u,
              "an empty host address is 127.0.0.1 (not every interface)");
    cr_assert(netback_parse_hostfwd("tcp:0.0.0.0:9000-:90", &c, err, sizeof err), "%s", err);
    cr_assert_eq(c.fwd[2].host_ip, 0u, "0.0.0.0 stays every interface when asked for");
    const char *bad[] = { "", "udp:127.0.0.1:53-:53", "tcp:8080-:80", "tcp:127.0.0.1:8080",
                          "tcp:127.0.0.1:0-:80", "tcp:127.0.0.1:65536-:80", "tcp::80-:x",
                          "tcp:1.2.3:80-:80", "tcp::80-:", "tcp::123456-:80" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_not(netback_parse_hostfwd(bad[i], &c, err, sizeof err), "'%s' accepted", bad[i]);
        cr_assert(strstr(err, "tcp:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT"), "%s", err);
    }
    cr_assert_not(netback_parse_hostfwd("tcp::8080-:81", &c, err, sizeof err));
    cr_assert(strstr(err, "already forwarded"), "%s", err);
    for (unsigned i = c.n_fwd; i < NETBACK_FWDS_MAX; i++) {
        char s[64];
        snprintf(s, sizeof s, "tcp::%u-:80", 10000 + i);
        cr_assert(netback_parse_hostfwd(s, &c, err, sizeof err), "%s", err);
    }
    cr_assert_not(netback_parse_hostfwd("tcp::11111-:80", &c, err, sizeof err));
    cr_assert(strstr(err, "at most"), "%s", err);
}

Test(netback_config, first_use_creates_the_default_switch)
{
    struct netback *nb = netback_get();     /* no netback_setup */
    cr_assert_not_null(nb);
    cr_assert_eq(netback_gateway_ip(nb), IP(10, 0, 2, 2));
    cr_assert_eq(netback_get(), nb, "a second netback_get made another switch");
    client.p = netback_port_add(nb, "client", NULL, trx, &client, err, sizeof err);
    cr_assert_not_null(client.p, "%s", err);
    uint8_t arp[60];
    const uint8_t zero[6] = { 0 };
    size_t n = net_arp_build(arp, sizeof arp, BCAST, NET_ARP_REQUEST, CMAC, IP(10, 0, 2, 15), zero,
                             IP(10, 0, 2, 2));
    exchange(arp, n);
    cr_assert_eq(memcmp(client.last + 6, GWMAC, 6), 0, "the default gateway did not answer");
}

Test(netback_config, setup_refuses_once_device_ports_joined)
{
    setup_switch(true);
    static struct tport a;
    tport_add(&a, 0, true);
    struct netback_config cfg;
    netback_config_default(&cfg);
    cr_assert_not(netback_setup(&cfg, err, sizeof err), "reconfigured under a live port");
    cr_assert(strstr(err, "device port"), "%s", err);
    netback_port_remove(a.p);
    cr_assert(netback_setup(&cfg, err, sizeof err), "%s", err);
}

/* ---- TAP ------------------------------------------------------------------ */

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned got;
    uint8_t frame[NETBACK_FRAME_MAX];
    size_t len;
} tapw = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, { 0 }, 0 };

static void tap_test_rx(void *ctx, const void *frame, size_t len)
{
    (void)ctx;
    const uint8_t *f = frame;
    if (len < 14 || rd16(f + 12) != ETH_TEST)
        return;     /* the host's own traffic (IPv6 router solicitations, ...) */
    pthread_mutex_lock(&tapw.lock);
    memcpy(tapw.frame, frame, len);
    tapw.len = len;
    tapw.got++;
    pthread_cond_broadcast(&tapw.cond);
    pthread_mutex_unlock(&tapw.lock);
}

/* A switch with no gateway whose TAP port is a fresh interface named
 * PREFIX<pid> (down); SKIPPED (said loudly) without /dev/net/tun rights. */
static void tap_switch(const char *prefix, char name[16])
{
    snprintf(name, 16, "%s%d", prefix, (int)(getpid() % 100000));
    struct netback_config cfg;
    netback_config_default(&cfg);
    cfg.no_gateway = true;
    snprintf(cfg.tap, sizeof cfg.tap, "%s", name);
    if (!netback_setup(&cfg, err, sizeof err)) {
        fprintf(stderr, "SKIPPED: cannot open /dev/net/tun (%s)\n", err);
        cr_skip_test("SKIPPED: cannot open /dev/net/tun (%s)", err);
    }
}

Test(netback_tap, frames_cross_between_the_switch_and_the_host, .timeout = 30)
{
    char name[16];
    tap_switch("moatt", name);
    /* Bring the interface up and listen on it like a host program. */
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(s, 0);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", name);
    cr_assert_eq(ioctl(s, SIOCGIFFLAGS, &ifr), 0, "SIOCGIFFLAGS %s: %s", name, strerror(errno));
    ifr.ifr_flags |= IFF_UP;
    cr_assert_eq(ioctl(s, SIOCSIFFLAGS, &ifr), 0, "SIOCSIFFLAGS %s: %s", name, strerror(errno));
    close(s);
    int ps = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_TEST));
    if (ps < 0) {
        fprintf(stderr, "SKIPPED: no packet socket to watch %s (%s)\n", name, strerror(errno));
        cr_skip_test("SKIPPED: no packet socket to watch %s (%s)", name, strerror(errno));
    }
    struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_TEST),
                               .sll_ifindex = (int)if_nametoindex(name) };
    cr_assert_gt(sll.sll_ifindex, 0);
    cr_assert_eq(bind(ps, (struct sockaddr *)&sll, sizeof sll), 0, "bind: %s", strerror(errno));

    struct netback_port *p = netback_port_add(netback_get(), "p0", NULL, tap_test_rx, NULL,
                                              err, sizeof err);
    cr_assert_not_null(p, "%s", err);
    uint8_t mac[6], f[200];
    mkmac(mac, 0);
    /* switch -> host */
    mkframe(f, BCAST, mac, ETH_TEST, 120);
    cr_assert(netback_send(p, f, 120));
    struct pollfd pfd = { .fd = ps, .events = POLLIN };
    cr_assert_eq(poll(&pfd, 1, 5000), 1, "the frame sent into the switch never reached %s", name);
    uint8_t got[2048];
    ssize_t n = recv(ps, got, sizeof got, 0);
    cr_assert_eq(n, 120, "host read %zd bytes, want 120", n);
    cr_assert_eq(memcmp(got, f, 120), 0, "the host got different bytes");

    /* host -> switch */
    uint8_t hostmac[6] = { 0x02, 0x11, 0x22, 0x33, 0x44, 0x55 };
    mkframe(f, mac, hostmac, ETH_TEST, 90);
    f[20] = 0xab;
    cr_assert_eq(sendto(ps, f, 90, 0, (struct sockaddr *)&sll, sizeof sll), 90, "sendto: %s",
                 strerror(errno));
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 5;
    pthread_mutex_lock(&tapw.lock);
    while (tapw.got == 0 && pthread_cond_timedwait(&tapw.cond, &tapw.lock, &until) == 0)
        ;
    unsigned got_n = tapw.got;
    pthread_mutex_unlock(&tapw.lock);
    cr_assert_geq(got_n, 1, "the frame the host sent on %s never reached the switch", name);
    cr_assert(tapw.len == 90 && !memcmp(tapw.frame, f, 90), "the switch got different bytes");
    struct netback_stats st = nbstats();
    cr_assert_geq(st.tap_out, 1, "tap_out %llu", (unsigned long long)st.tap_out);
    cr_assert_geq(st.tap_in, 1, "tap_in %llu (tap_out %llu, errors %llu, down %llu; switch got %u "
                  "frames, the last %u bytes)", (unsigned long long)st.tap_in,
                  (unsigned long long)st.tap_out, (unsigned long long)st.tap_errors,
                  (unsigned long long)st.tap_down, got_n, tapw.len);
    close(ps);
    netback_port_remove(p);
}

/* A TAP interface that is not up yet (or was just moved into a namespace)
 * makes writes fail with EIO: a dropped frame, counted as tap_down, not
 * an error. */
Test(netback_tap, frames_for_a_down_interface_are_counted_drops, .timeout = 30)
{
    char name[16];
    tap_switch("moatd", name);
    struct netback_port *p = netback_port_add(netback_get(), "p0", NULL, tap_test_rx, NULL,
                                              err, sizeof err);
    cr_assert_not_null(p, "%s", err);
    uint8_t mac[6], f[200];
    mkmac(mac, 0);
    mkframe(f, BCAST, mac, ETH_TEST, 120);
    for (int i = 0; i < 3; i++)
        cr_assert(netback_send(p, f, 120));
    struct netback_stats st;
    netback_stats(netback_get(), &st);
    cr_assert_eq(st.tap_down, 3, "%lu frames counted down, want 3", (unsigned long)st.tap_down);
    cr_assert_eq(st.tap_errors, 0, "a down interface counted as %lu errors",
                 (unsigned long)st.tap_errors);
    netback_port_remove(p);
}

Test(netback_tap, a_missing_device_gives_a_full_sentence)
{
    char e[512];
    int fd = net_tap_open_fd("", e, sizeof e);
    cr_assert_eq(fd, -1);
    cr_assert(strstr(e, "1..15"), "%s", e);
    fd = net_tap_open_fd("this-name-is-too-long", e, sizeof e);
    cr_assert_eq(fd, -1);
}
