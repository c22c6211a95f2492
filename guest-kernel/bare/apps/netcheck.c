/* netcheck — an app domain of the bare monitor that checks a Nic another
 * domain serves, through a session (session_client.h), with nothing but
 * the network QEMU's user mode (or a cloud's) provides: a DHCP lease
 * (DISCOVER, OFFER, REQUEST, ACK), the gateway's MAC by ARP, then ICMP
 * echoes to the gateway. Its words (after the monitor's): cap=DOMAIN.CAP
 * (the Nic, required), pings=N (default 3).
 * Receive buffers stay posted: after a server restart they are posted
 * again; a frame being sent then is dropped, and the step's retry (every
 * second, 10 tries a step) sends it again.
 * Console: "netcheck NAME: N of M pings answered" every 100, then
 * "PASS: ..." and an orderly exit (code 0), or "FAIL: ..." and exit 1. */
#include "dd.h"
#include "gk/platform.h"
#include "gk/sys.h"
#include "session_client.h"

#define RETRY_NS 1000000000ull
#define TRIES 10u
#define RX_BUFS 8u
#define TX_BUFS 4u
#define BUF 2048u                       /* a buffer: at least the Nic's largest frame */
#define OPEN_TIMEOUT_NS (30ull * 1000000000ull)
#define WHAT_TX 0x100u                  /* slot_what: TX buffer j is WHAT_TX | j */

enum { NT_DISCOVER, NT_REQUEST, NT_ARP, NT_PING, NT_DONE };

static struct net_test {
    struct sclient c;
    const char *name;
    char cap[64];
    int phase;
    uint32_t xid, ip, server, gateway, mask, tries, pongs, pings;
    uint8_t mac[6], gw_mac[6];
    uint64_t sent_ns, best_ns, t0, frames;
    uint16_t seq;
    bool tx_busy[TX_BUFS];
    uint32_t slot_what[SC_INFLIGHT];
} t;

/* ---- the session ---------------------------------------------------------------------- */

static void post_rx(uint32_t i)
{
    struct moat_sqe e = { .op = MOAT_NIC_RX, .blocks = BUF, .buf_off = (uint64_t)i * BUF };
    int s = sc_submit(&t.c, &e, true);
    if (s < 0)
        dd_panic("netcheck: no request slot for receive buffer %u", i);
    t.slot_what[s] = i;
}

/* Send a frame (padded to 60 bytes); dropped when every buffer is in
 * flight: the step's retry sends it again. */
static void send(uint8_t *f, uint32_t len)
{
    if (len < 60) {
        memset(f + len, 0, 60 - len);
        len = 60;
    }
    for (uint32_t j = 0; j < TX_BUFS; j++) {
        if (t.tx_busy[j])
            continue;
        uint64_t off = (uint64_t)(RX_BUFS + j) * BUF;
        memcpy(t.c.data + off, f, len);
        struct moat_sqe e = { .op = MOAT_NIC_TX, .blocks = len, .buf_off = off };
        int s = sc_submit(&t.c, &e, false);
        if (s < 0)
            return;
        t.tx_busy[j] = true;
        t.slot_what[s] = WHAT_TX | j;
        t.frames++;
        return;
    }
}

/* ---- frames -------------------------------------------------------------------------- */

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v) { put16(p, (uint16_t)(v >> 16)); put16(p + 2, (uint16_t)v); }
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t get32(const uint8_t *p) { return (uint32_t)get16(p) << 16 | get16(p + 2); }

static uint16_t csum(const uint8_t *p, uint32_t len)
{
    uint32_t s = 0;
    for (uint32_t i = 0; i + 1 < len; i += 2)
        s += get16(p + i);
    if (len & 1)
        s += (uint32_t)p[len - 1] << 8;
    while (s >> 16)
        s = (s & 0xFFFF) + (s >> 16);
    return (uint16_t)~s;
}

static uint32_t eth(uint8_t *f, const uint8_t *dst, uint16_t type)
{
    memcpy(f, dst, 6);
    memcpy(f + 6, t.mac, 6);
    put16(f + 12, type);
    return 14;
}

static uint32_t ipv4(uint8_t *p, uint8_t proto, uint32_t src, uint32_t dst, uint32_t payload)
{
    memset(p, 0, 20);
    p[0] = 0x45;
    put16(p + 2, (uint16_t)(20 + payload));
    p[8] = 64;
    p[9] = proto;
    put32(p + 12, src);
    put32(p + 16, dst);
    put16(p + 10, csum(p, 20));
    return 20;
}

static const uint8_t bcast[6] = { 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF };

static void dhcp_send(uint8_t type)
{
    uint8_t f[400] = { 0 };
    uint32_t o = eth(f, bcast, 0x0800);
    uint8_t *udp = f + o + 20, *b = udp + 8;
    b[0] = 1;                       /* BOOTREQUEST, Ethernet, 6-byte address */
    b[1] = 1;
    b[2] = 6;
    put32(b + 4, t.xid);
    put16(b + 10, 0x8000);          /* broadcast replies: we have no address yet */
    memcpy(b + 28, t.mac, 6);
    put32(b + 236, 0x63825363);     /* magic cookie */
    uint8_t *op = b + 240;
    *op++ = 53, *op++ = 1, *op++ = type;
    if (type == 3) {
        *op++ = 50, *op++ = 4, put32(op, t.ip), op += 4;
        *op++ = 54, *op++ = 4, put32(op, t.server), op += 4;
    }
    *op++ = 55, *op++ = 2, *op++ = 1, *op++ = 3;    /* ask for mask and router */
    *op++ = 255;
    uint32_t blen = (uint32_t)(op - b);
    put16(udp, 68);
    put16(udp + 2, 67);
    put16(udp + 4, (uint16_t)(8 + blen));
    ipv4(f + o, 17, 0, 0xFFFFFFFF, 8 + blen);
    send(f, o + 20 + 8 + blen);
}

static void arp_send(void)
{
    uint8_t f[64] = { 0 };
    uint32_t o = eth(f, bcast, 0x0806);
    uint8_t *a = f + o;
    put16(a, 1), put16(a + 2, 0x0800), a[4] = 6, a[5] = 4, put16(a + 6, 1);
    memcpy(a + 8, t.mac, 6);
    put32(a + 14, t.ip);
    put32(a + 24, t.gateway);
    send(f, o + 28);
}

static void ping_send(void)
{
    uint8_t f[128] = { 0 };
    uint32_t o = eth(f, t.gw_mac, 0x0800);
    uint8_t *ic = f + o + 20;
    ic[0] = 8;                      /* echo request */
    put16(ic + 4, 0x6d74);          /* identifier "mt" */
    put16(ic + 6, ++t.seq);
    memcpy(ic + 8, "moat bare ping", 14);
    put16(ic + 2, csum(ic, 8 + 14));
    ipv4(f + o, 1, t.ip, t.gateway, 8 + 14);
    t.sent_ns = dd_now_ns();
    send(f, o + 20 + 8 + 14);
}

static void next(int phase)
{
    t.phase = phase;
    t.tries = 0;
    t.sent_ns = 0;
}

/* ---- what comes back --------------------------------------------------------------------- */

static void dhcp_rx(const uint8_t *b, uint32_t len)
{
    if (len < 240 || b[0] != 2 || get32(b + 4) != t.xid || get32(b + 236) != 0x63825363)
        return;
    uint8_t type = 0;
    uint32_t server = 0, router = 0, mask = 0;
    for (uint32_t i = 240; i + 1 < len && b[i] != 255;) {
        if (b[i] == 0) {
            i++;
            continue;
        }
        uint8_t code = b[i], n = b[i + 1];
        if (i + 2 + n > len)
            break;
        if (code == 53 && n >= 1)
            type = b[i + 2];
        if (code == 54 && n >= 4)
            server = get32(b + i + 2);
        if (code == 3 && n >= 4)
            router = get32(b + i + 2);
        if (code == 1 && n >= 4)
            mask = get32(b + i + 2);
        i += 2u + n;
    }
    if (t.phase == NT_DISCOVER && type == 2) {          /* OFFER */
        t.ip = get32(b + 16);
        t.server = server;
        next(NT_REQUEST);
    } else if (t.phase == NT_REQUEST && type == 5) {    /* ACK */
        t.gateway = router ? router : server;
        t.mask = mask;
        next(NT_ARP);
    }
}

static _Noreturn void pass(void)
{
    dd_log("netcheck %s: PASS: DHCP lease %u.%u.%u.%u (mask %u.%u.%u.%u) from %u.%u.%u.%u, "
           "gateway answered %u pings, best round trip %lu us, in %lu ms, through %s; %lu frames "
           "sent, %lu requests published again and %lu dropped after %lu server restart%s and "
           "%lu broken session%s", t.name, t.ip >> 24, t.ip >> 16 & 255, t.ip >> 8 & 255,
           t.ip & 255, t.mask >> 24, t.mask >> 16 & 255, t.mask >> 8 & 255, t.mask & 255,
           t.server >> 24, t.server >> 16 & 255, t.server >> 8 & 255, t.server & 255, t.pings,
           t.best_ns / 1000, (dd_now_ns() - t.t0) / 1000000, t.cap, t.frames, t.c.resubmitted,
           t.c.dropped, t.c.fresh_rings, t.c.fresh_rings == 1 ? "" : "s", t.c.reopened,
           t.c.reopened == 1 ? "" : "s");
    sys_exit(0);
}

static void net_rx(const uint8_t *f, uint32_t len)
{
    if (len < 14 + 28)
        return;
    uint16_t type = get16(f + 12);
    const uint8_t *p = f + 14;
    if (type == 0x0806 && t.phase == NT_ARP && get16(p + 6) == 2 && get32(p + 14) == t.gateway) {
        memcpy(t.gw_mac, p + 8, 6);
        next(NT_PING);
        return;
    }
    if (type != 0x0800 || (p[0] >> 4) != 4 || len < 14u + (p[0] & 15u) * 4u + 8u)
        return;
    const uint8_t *l4 = p + (p[0] & 15u) * 4u;
    uint32_t l4len = len - 14u - (p[0] & 15u) * 4u;
    if (p[9] == 17 && get16(l4 + 2) == 68)
        dhcp_rx(l4 + 8, l4len - 8);
    else if (p[9] == 1 && t.phase == NT_PING && l4[0] == 0 && get16(l4 + 4) == 0x6d74 &&
             get16(l4 + 6) == t.seq && get32(p + 12) == t.gateway) {
        uint64_t rtt = dd_now_ns() - t.sent_ns;
        if (!t.best_ns || rtt < t.best_ns)
            t.best_ns = rtt;
        t.sent_ns = 0;
        if (++t.pongs % 100 == 0 && t.pongs < t.pings)
            dd_log("netcheck %s: %u of %u pings answered", t.name, t.pongs, t.pings);
        if (t.pongs == t.pings)
            pass();
        else
            next(NT_PING);
    }
}

static bool net_poll(void *ctx)
{
    (void)ctx;
    if (t.phase == NT_DONE)
        return false;
    uint64_t now = dd_now_ns();
    if (t.sent_ns && now - t.sent_ns < RETRY_NS)
        return false;
    if (t.tries++ == TRIES) {
        static const char *const what[] = { "no DHCP offer", "no DHCP ack",
                                            "no ARP reply from the gateway", "no echo reply" };
        dd_log("netcheck %s: FAIL: %s after %u tries, through %s", t.name, what[t.phase], TRIES,
               t.cap);
        sys_exit(1);
    }
    t.sent_ns = now;
    if (t.phase == NT_DISCOVER)
        dhcp_send(1);
    else if (t.phase == NT_REQUEST)
        dhcp_send(3);
    else if (t.phase == NT_ARP)
        arp_send();
    else
        ping_send();
    return true;
}


static void done(void *ctx, unsigned slot, uint32_t status, uint32_t len)
{
    (void)ctx;
    uint32_t what = t.slot_what[slot];
    if (what & WHAT_TX) {
        t.tx_busy[what & ~WHAT_TX] = false;
        return;
    }
    if (status == MOAT_ST_CANCELED)     /* the session closes: nothing more comes */
        return;
    if (status == MOAT_ST_OK)
        net_rx(t.c.data + (uint64_t)what * BUF, len);
    post_rx(what);
}

void domain_main(const char *args)
{
    t.name = platform_boot_info()->name;
    if (!dd_arg(args, "cap", t.cap, sizeof t.cap))
        dd_panic("netcheck: give the Nic to check: cap=DOMAIN.CAP");
    t.pings = dd_arg_u32(args, "pings", 3, 1, 1000000);
    if (!sc_open(&t.c, t.cap, MOAT_CAP_NIC, OPEN_TIMEOUT_NS, done, NULL))
        sys_exit(1);
    if (t.c.info.nic.max_frame > BUF || (uint64_t)(RX_BUFS + TX_BUFS) * BUF > t.c.info.data_size)
        dd_panic("netcheck: frames of %u bytes do not fit its %u-byte buffers in the session",
                 t.c.info.nic.max_frame, BUF);
    memcpy(t.mac, t.c.info.nic.mac, 6);
    for (uint32_t i = 0; i < RX_BUFS; i++)
        post_rx(i);
    t.phase = NT_DISCOVER;
    t.xid = (uint32_t)dd_now_ns() ^ 0x6d6f6174u;
    t.t0 = dd_now_ns();
    if (!dd_poll_add(net_poll, NULL))
        dd_panic("netcheck: no free poller");
    dd_ready();
    dd_run();
}
