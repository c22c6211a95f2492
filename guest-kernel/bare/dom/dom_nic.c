/* Serving a Nic cap in a bare driver domain (contract in dd.h). Until app
 * domains hold Nic caps in bare mode (block ones do: dd_serve.c serves
 * them), the cap is announced to the monitor and, when the arguments ask
 * for it (selftest_net=1), exercised by a client in this runtime that
 * needs nothing but the network QEMU's user mode (or a cloud's) provides:
 * a DHCP lease (DISCOVER, OFFER, REQUEST, ACK), the gateway's MAC by ARP,
 * then ICMP echoes to the gateway. Frames go out through the driver's tx
 * and come back through dd_nic_rx, as a session's would. This image
 * serves no sessions (dom_noserve.c). */
#include "dd.h"
#include "gk/platform.h"
#include "gk/sys.h"

/* "<domain>.<cap>" and its NUL. */
#define DOM_CAP_NAME (MOAT_NAME_MAX + MOAT_CAP_NAME_MAX + 1)
#define RETRY_NS 1000000000ull
#define TRIES 10u
#define PINGS 3u

struct dd_nic {
    const struct dd_nic_ops *ops;
    void *ctx;
    struct moat_nic_info info;
    bool link;
    struct dd_nic_stats st;
};

static struct dd_nic nic;

enum { NT_OFF, NT_DISCOVER, NT_REQUEST, NT_ARP, NT_PING, NT_DONE };

static struct net_test {
    int phase;
    char cap[DOM_CAP_NAME];
    uint32_t xid, ip, server, gateway, mask, tries, pongs;
    uint8_t gw_mac[6];
    uint64_t sent_ns, best_ns, t0;
    uint16_t seq;
} t;

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

static void send(uint8_t *f, uint32_t len)
{
    if (len < 60) {
        memset(f + len, 0, 60 - len);
        len = 60;
    }
    if (!nic.ops->tx(nic.ctx, f, len))
        return;                     /* no room: the retry sends it again */
    nic.st.tx_frames++;
    if (nic.ops->tx_flush)
        nic.ops->tx_flush(nic.ctx);
}

static uint32_t eth(uint8_t *f, const uint8_t *dst, uint16_t type)
{
    memcpy(f, dst, 6);
    memcpy(f + 6, nic.info.mac, 6);
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
    memcpy(b + 28, nic.info.mac, 6);
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
    memcpy(a + 8, nic.info.mac, 6);
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
        if (++t.pongs == PINGS)
            t.phase = NT_DONE, dd_log("selftest %s: PASS: DHCP lease %u.%u.%u.%u (mask "
                                      "%u.%u.%u.%u) from %u.%u.%u.%u, gateway answered %u pings, "
                                      "best round trip %lu us, in %lu ms", t.cap,
                                      t.ip >> 24, t.ip >> 16 & 255, t.ip >> 8 & 255, t.ip & 255,
                                      t.mask >> 24, t.mask >> 16 & 255, t.mask >> 8 & 255,
                                      t.mask & 255, t.server >> 24, t.server >> 16 & 255,
                                      t.server >> 8 & 255, t.server & 255, PINGS,
                                      t.best_ns / 1000, (dd_now_ns() - t.t0) / 1000000);
    }
}

static bool net_poll(void *ctx)
{
    (void)ctx;
    if (t.phase == NT_OFF || t.phase == NT_DONE)
        return false;
    uint64_t now = dd_now_ns();
    if (t.sent_ns && now - t.sent_ns < RETRY_NS)
        return false;
    if (t.tries++ == TRIES) {
        static const char *const what[] = { "", "no DHCP offer", "no DHCP ack",
                                            "no ARP reply from the gateway", "no echo reply" };
        dd_log("selftest %s: FAIL: %s after %u tries", t.cap, what[t.phase], TRIES);
        t.phase = NT_DONE;
        return true;
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

/* ---- the dd_nic_* API ----------------------------------------------------------------------- */

/* Name reg (truncated to fit) and register it with the monitor; full gets
 * "<domain>.<name>". False (logged) when the monitor refuses. */
static bool cap_register(struct moat_cap_register *reg, const char *name, char full[DOM_CAP_NAME])
{
    size_t len = strlen(name);
    memcpy(reg->name, name, len < sizeof reg->name - 1 ? len : sizeof reg->name - 1);
    int64_t rc = sys_cap_register(reg);
    if (rc < 0) {
        dd_log("the monitor refused cap '%s' (%ld)", name, rc);
        return false;
    }
    const char *dom = platform_boot_info()->name;
    len = strnlen(dom, MOAT_NAME_MAX);
    memcpy(full, dom, len);
    full[len] = '.';
    memcpy(full + len + 1, reg->name, strlen(reg->name) + 1);
    return true;
}

struct dd_nic *dd_nic_serve(const char *name, const struct moat_nic_info *info,
                            const struct dd_nic_ops *ops, void *ctx)
{
    if (!ops || !ops->tx)
        dd_panic("dd_nic_serve: a Nic needs a tx function");
    if (nic.ops)
        dd_panic("driver bug: at most one Nic per domain");
    struct moat_cap_register reg = { .kind = MOAT_CAP_NIC, .nic = *info };
    if (!cap_register(&reg, name, t.cap))
        return NULL;
    nic = (struct dd_nic){ .ops = ops, .ctx = ctx, .info = *info, .link = true };
    const struct moat_boot_info *bi = platform_boot_info();
    if (dd_arg_u64(bi->cmdline, "selftest_net", 0)) {
        t.phase = NT_DISCOVER;
        t.xid = (uint32_t)dd_now_ns() ^ 0x6d6f6174u;
        t.t0 = dd_now_ns();
        if (!dd_poll_add(net_poll, NULL))
            dd_panic("selftest: no free poller");
    }
    return &nic;
}

void dd_nic_rx(struct dd_nic *n, const void *frame, uint32_t len)
{
    n->st.rx_frames++;
    if (len < MOAT_NIC_ETH_HDR || len > n->info.max_frame) {
        n->st.rx_bad++;
        return;
    }
    n->st.rx_delivered++;
    net_rx(frame, len);
}

void dd_nic_tx_ready(struct dd_nic *n) { (void)n; }
void dd_nic_link(struct dd_nic *n, bool up) { n->link = up; }
void dd_nic_stats(const struct dd_nic *n, struct dd_nic_stats *out) { *out = n->st; }
