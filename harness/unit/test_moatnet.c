/* moatnet's interface to lwIP (clients/moatnet/moatnet.c) over a fake
 * link in this process: frames in are answered as a host at 10.0.2.15
 * answers them (ARP, ICMP echo), hostile frames (runts, truncated and
 * corrupt IP headers, garbage) are dropped without harm, and frames lwIP
 * sends while the link refuses them wait in order in the queue. One lwIP
 * per process: Criterion runs each test in a process of its own. */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>
#include "moat/libmoat.h"
#include "moatnet/moatnet.h"
#include "moat/netpkt.h"

#define ME    0x0a00020fu           /* 10.0.2.15: moatnet's address */
#define PEER  0x0a000264u           /* 10.0.2.100 */
static const uint8_t MAC_ME[6] = { 0x52, 0x54, 0x00, 0x00, 0x00, 0x15 };
static const uint8_t MAC_PEER[6] = { 0x52, 0x54, 0x00, 0x00, 0x01, 0x00 };

static struct {
    pthread_mutex_t lock;
    pthread_cond_t sent;            /* out grew, or the pump came back for more */
    uint64_t idle_entries;          /* fk_recv entered with nothing to give */
    int in_fd;                      /* eventfd: in has frames */
    uint8_t in[16][1514];
    uint32_t in_len[16];
    unsigned in_n;
    uint8_t out[64][1514];
    uint32_t out_len[64];
    unsigned out_n;
    bool refuse;
} fk = { .lock = PTHREAD_MUTEX_INITIALIZER, .sent = PTHREAD_COND_INITIALIZER };

static int fk_send(void *ctx, const struct moat_frame *f, size_t n)
{
    (void)ctx;
    pthread_mutex_lock(&fk.lock);
    size_t k = 0;
    for (; !fk.refuse && k < n && fk.out_n < 64; k++) {
        memcpy(fk.out[fk.out_n], f[k].data, f[k].len);
        fk.out_len[fk.out_n++] = f[k].len;
    }
    pthread_cond_broadcast(&fk.sent);
    pthread_mutex_unlock(&fk.lock);
    return (int)k;
}

static int fk_recv(void *ctx, int wake_fd, struct moat_frame *f, size_t max, int timeout_ms)
{
    (void)ctx;
    pthread_mutex_lock(&fk.lock);
    if (!fk.in_n) {             /* everything given before was delivered */
        fk.idle_entries++;
        pthread_cond_broadcast(&fk.sent);
    }
    pthread_mutex_unlock(&fk.lock);
    for (;;) {
        pthread_mutex_lock(&fk.lock);
        size_t k = 0;
        for (; k < max && k < fk.in_n; k++) {
            memcpy(f[k].data, fk.in[k], fk.in_len[k]);
            f[k].len = fk.in_len[k];
        }
        memmove(fk.in, fk.in[k], (fk.in_n - k) * sizeof fk.in[0]);
        memmove(fk.in_len, fk.in_len + k, (fk.in_n - k) * sizeof fk.in_len[0]);
        fk.in_n -= (unsigned)k;
        pthread_mutex_unlock(&fk.lock);
        if (k || timeout_ms == 0)
            return (int)k;
        struct pollfd p[2] = { { .fd = fk.in_fd, .events = POLLIN },
                               { .fd = wake_fd, .events = POLLIN } };
        int r = poll(p, 2, timeout_ms);
        if (r == 0)
            return -MOAT_ETIMEDOUT;
        uint64_t v;
        if (p[0].revents & POLLIN)
            cr_assert_eq(read(fk.in_fd, &v, sizeof v), (ssize_t)sizeof v);
        if (p[1].revents & POLLIN)
            return 0;
    }
}

static void inject(const void *frame, size_t len)
{
    pthread_mutex_lock(&fk.lock);
    cr_assert_lt(fk.in_n, 16u, "the fake link's input is full");
    memcpy(fk.in[fk.in_n], frame, len);
    fk.in_len[fk.in_n++] = (uint32_t)len;
    pthread_mutex_unlock(&fk.lock);
    uint64_t one = 1;
    cr_assert_eq(write(fk.in_fd, &one, sizeof one), (ssize_t)sizeof one);
}

/* Wait (condition variable, 2 s) until the pump has delivered everything
 * injected so far to lwIP: it comes back to the link with nothing left. */
static void settle(void)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 2;
    pthread_mutex_lock(&fk.lock);
    uint64_t e0 = fk.idle_entries;
    int rc = 0;
    while ((fk.idle_entries == e0 || fk.in_n) && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&fk.sent, &fk.lock, &dl);
    pthread_mutex_unlock(&fk.lock);
    cr_assert_neq(rc, ETIMEDOUT, "the pump did not take the injected frames");
}

typedef bool (*match_fn)(const uint8_t *f, size_t len);

/* Wait (condition variable, 2 s) until a frame matching m was sent after
 * the first `from`. */
static bool await_out_from(match_fn m, unsigned from)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 2;
    pthread_mutex_lock(&fk.lock);
    unsigned seen = from;
    bool found = false;
    while (!found) {
        for (; seen < fk.out_n && !found; seen++)
            found = m(fk.out[seen], fk.out_len[seen]);
        if (found || pthread_cond_timedwait(&fk.sent, &fk.lock, &dl) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&fk.lock);
    return found;
}

static bool await_out(match_fn m) { return await_out_from(m, 0); }

static bool is_any_pong(const uint8_t *f, size_t len)
{
    uint16_t seq;
    return netpkt_icmp_reply(f, len, MAC_PEER, PEER, ME, 0x4242, &seq);
}

static bool is_arp_reply(const uint8_t *f, size_t len)
{
    uint8_t mac[6];
    return netpkt_arp_reply(f, len, MAC_PEER, PEER, ME, mac) && !memcmp(mac, MAC_ME, 6);
}

static bool is_pong(const uint8_t *f, size_t len)
{
    uint16_t seq;
    return netpkt_icmp_reply(f, len, MAC_PEER, PEER, ME, 0x4242, &seq) && seq == 7;
}

static void start(void)
{
    fk.in_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    cr_assert_geq(fk.in_fd, 0);
    struct moatnet_link link = { .send = fk_send, .recv = fk_recv, .mtu = 1500 };
    memcpy(link.mac, MAC_ME, 6);
    struct moatnet_config cfg = { .cap = "fake", .static_ip = true, .ip = ME,
                                  .mask = 0xffffff00u, .gw = 0x0a000202u, .txq_frames = 8 };
    struct moatnet_info info;
    char err[256];
    cr_assert_eq(moatnet_start_link(&cfg, &link, &info, err, sizeof err), 0, "%s", err);
    cr_assert_eq(info.ip, ME);
}

static void arp_request(void)
{
    uint8_t f[NETPKT_ETH_MIN];
    inject(f, netpkt_arp_request(f, MAC_PEER, PEER, ME));
}

TestSuite(moatnet, .init = start, .timeout = 20);

Test(moatnet, answers_arp_and_ping_as_its_address)
{
    arp_request();
    cr_assert(await_out(is_arp_reply), "no ARP reply for 10.0.2.15");
    uint8_t f[NETPKT_FRAME_MAX];
    const char payload[] = "moatnet echo";
    size_t n = netpkt_icmp_echo(f, sizeof f, MAC_PEER, MAC_ME, PEER, ME, 0x4242, 7, payload,
                                sizeof payload);
    inject(f, n);
    cr_assert(await_out(is_pong), "no echo reply to a ping");
    struct moatnet_stats st;
    moatnet_stats(&st);
    cr_assert_geq(st.rx_frames, 2);
    cr_assert_geq(st.tx_frames, 2);
}

Test(moatnet, hostile_frames_are_dropped_without_harm)
{
    uint8_t f[NETPKT_FRAME_MAX];
    size_t n = netpkt_icmp_echo(f, sizeof f, MAC_PEER, MAC_ME, PEER, ME, 0x4242, 7, "x", 1);
    uint8_t bad[6][NETPKT_FRAME_MAX];
    size_t blen[6];
    memcpy(bad[0], f, 14);                          /* a bare Ethernet header */
    blen[0] = 14;
    memcpy(bad[1], f, 20);                          /* an IPv4 header cut short */
    blen[1] = 20;
    memcpy(bad[2], f, n);                           /* a corrupt IP checksum */
    bad[2][24] ^= 0xff;
    blen[2] = n;
    memcpy(bad[3], f, n);                           /* IHL 15: options past the frame */
    bad[3][14] = 0x4f;
    blen[3] = n;
    memcpy(bad[4], f, n);                           /* total length far past the frame */
    bad[4][16] = 0xff, bad[4][17] = 0xff;
    blen[4] = n;
    for (size_t i = 0; i < sizeof bad[5]; i++)      /* garbage, IPv4 ethertype */
        bad[5][i] = (uint8_t)(i * 37 + 11);
    memcpy(bad[5], MAC_ME, 6);
    bad[5][12] = 0x08, bad[5][13] = 0x00;
    blen[5] = 1514;
    for (int i = 0; i < 6; i++)
        inject(bad[i], blen[i]);
    /* Still itself afterwards, and none of them was answered. */
    arp_request();
    cr_assert(await_out(is_arp_reply), "no ARP reply after the hostile frames");
    pthread_mutex_lock(&fk.lock);
    for (unsigned i = 0; i < fk.out_n; i++)
        cr_assert_not(is_pong(fk.out[i], fk.out_len[i]), "a corrupt ping was answered");
    pthread_mutex_unlock(&fk.lock);
}

Test(moatnet, frames_wait_in_order_while_the_link_refuses_them)
{
    arp_request();                  /* lwIP learns the peer's MAC: replies need no ARP */
    cr_assert(await_out(is_arp_reply), "no ARP reply");
    pthread_mutex_lock(&fk.lock);
    fk.refuse = true;
    unsigned before = fk.out_n;     /* lwIP's announcement when the interface came up */
    pthread_mutex_unlock(&fk.lock);
    uint8_t f[NETPKT_FRAME_MAX];
    for (uint16_t seq = 1; seq <= 12; seq++) {      /* 12 pings, 8 queue slots */
        size_t n = netpkt_icmp_echo(f, sizeof f, MAC_PEER, MAC_ME, PEER, ME, 0x4242, seq, "q", 1);
        inject(f, n);
    }
    settle();                       /* lwIP answered them (into the queue) */
    struct moatnet_stats st;
    moatnet_stats(&st);
    cr_assert_geq(st.rx_frames, 12, "lwIP took %lu frames", (unsigned long)st.rx_frames);
    cr_assert_gt(st.tx_queue_full, 0, "12 replies and 8 slots: some must be counted dropped");
    pthread_mutex_lock(&fk.lock);
    cr_assert_eq(fk.out_n, before, "the link refused, yet %u frames went out",
                 fk.out_n - before);
    fk.refuse = false;
    pthread_mutex_unlock(&fk.lock);
    /* The pump keeps offering its backlog: it drains by itself. */
    cr_assert(await_out_from(is_any_pong, before),
              "the queue did not drain once the link took frames");
    settle();
    pthread_mutex_lock(&fk.lock);
    int last = 0;
    for (unsigned i = 0; i < fk.out_n; i++) {
        uint16_t seq;
        if (netpkt_icmp_reply(fk.out[i], fk.out_len[i], MAC_PEER, PEER, ME, 0x4242, &seq)) {
            cr_assert_gt(seq, last, "reply %u came after reply %d", seq, last);
            last = seq;
        }
    }
    pthread_mutex_unlock(&fk.lock);
    cr_assert_gt(last, 0, "no queued echo reply came out");
}
