/*
 * fuzz_netback — the process-wide L2 switch (devmodel/netback.c: MAC
 * learning, flooding, link state, sends from inside rx callbacks) and its
 * built-in gateway (devmodel/net_gateway.c: ARP, DHCP leases, ICMP echo),
 * fed hostile frames from device ports; plus the gateway's pure parsers
 * (net_ipv4_parse, net_udp_parse, net_dhcp_parse) on the raw input.
 *
 * State: a fresh switch per input. Each input starts with netback_setup
 * (the default config but a subnet prefix from the input, with or without
 * the gateway; no TAP, pcap or host forwards) and ends with
 * netback_shutdown, so no learned MAC, DHCP lease or counter survives an
 * input and runs are deterministic (learning uses the monotonic clock only
 * to order entries; nothing ages within an input at the default 300 s).
 * log_set_quiet(true): the switch logs an info line per port join, leave
 * and link change, which here are the target's own per-input set-up, not
 * guest input; errors still print. Everything is synchronous: rx
 * callbacks run inside netback_send on this thread.
 *
 * Ports: "fz.p0" and "fz.p1" record what they get; "fz.echo" records and,
 * while echo is on, answers every frame it gets (but echoes) at once from
 * inside its rx callback (the switch defers those sends) with 1..99
 * frames from its fixed MAC 02:00:00:00:00:ee (ethertype 0x88b5) to the
 * frame's source (or broadcast), so sends from rx callbacks, the deferred
 * queue and its 64-frame limit are exercised.
 *
 * Input: byte 0: bits 0-4 the prefix (8 + n % 18) of 10.0.2.0 (host bits
 * cleared), bit 5 no gateway; byte 1: bit i set = port i joins with the
 * MAC that follows (6 bytes each for p0 and p1), else the switch learns
 * it. Then up to 64 ops, each a byte: kind (low 3 bits), port (>> 3, % 3):
 *   0 raw frame: u16 length % 1600 (bad lengths included), bytes
 *   1 ARP request (net_arp_build) from the port's MAC: target the gateway
 *     or an address from the input, to broadcast / gateway / input MAC
 *   2 DHCP DISCOVER/REQUEST/other, built here: chaddr, xid, flags,
 *     ciaddr, options 53/50/54 as the input picks, extra raw option bytes,
 *     to 255.255.255.255 or the gateway (net_udp_build)
 *   3 ICMP echo request to the gateway or elsewhere, data from the input
 *   4 link up/down   5 remove the port / add it again (new MAC or none)
 *   6 echo: u8 % 100 frames per frame (0 = off)
 *   7 resend the previous frame from this port
 * Structured frames (1-3) may then have one byte XORed (position and value
 * from the input). Seeds (harness/fuzz/corpus/fuzz_netback/): DHCP
 * DISCOVER + REQUEST, ARP and ping from two ports; unicast/broadcast
 * between ports with link changes, removal and re-add, echo on; raw
 * frames of bad lengths; a DHCP option walk with odd options.
 *
 * Checks beyond the sanitizers (abort() on violation):
 *   - every delivery is 14..1514 bytes, happens inside a send, and never
 *     reaches a removed port or one whose link is down;
 *   - the frame a port sends (a heap copy of exactly its length, so ASan
 *     catches reads past it) is delivered as the same bytes and length,
 *     never back to its sender, at most once per port; a group address
 *     reaches exactly every other live port with its link up; a unicast
 *     reaches at most one of the target's ports or floods to all of them;
 *     a send from a down port or of a bad length returns false and
 *     delivers nothing (no gateway reply either);
 *   - frames sent from inside rx callbacks come from the echo port or the
 *     gateway only, and the echo port never gets its own frames back;
 *   - the gateway sends at most one reply per frame and only to a request
 *     it must answer: an ARP reply (60 bytes) answers an ARP request for
 *     the gateway's address with its MAC and address, to the asker; an
 *     ICMP echo reply parses as IPv4 (header checksum), has a valid ICMP
 *     checksum and the request's identifier, sequence and data, from the
 *     gateway to the asker; a DHCP reply parses as IPv4/UDP 67->68 with a
 *     valid non-zero UDP checksum and as DHCP: BOOTREPLY, the request's
 *     xid and chaddr, server id = gateway, OFFER to DISCOVER, ACK or NAK
 *     to REQUEST; an OFFER/ACK address lies in the pool, stays the same
 *     for a chaddr and differs between chaddrs, and an ACK gives the
 *     address asked for;
 *   - per-port counters agree with what the target saw: recv_frames =
 *     deliveries, sent_frames = accepted sends, bad_frames = bad lengths;
 *   - the pure parsers: a parsed IPv4 view lies inside the buffer with a
 *     correct header checksum, a UDP view inside the IPv4 payload; a
 *     parsed DHCP message rebuilt with net_dhcp_build parses back to the
 *     same fields.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "fuzz_input.h"
#include "log.h"
#include "net_gateway.h"
#include "netback.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x) FZ_CHECK(x)

#define NPORTS     3
#define ECHO       2
#define OPS_MAX    64
#define RAW_MAX    1600u
#define ETYPE_ECHO 0x88b5u
#define LEASES_MAX 512

static const uint8_t BCAST[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
static const uint8_t ECHO_MAC[6] = { 0x02, 0, 0, 0, 0, 0xee };

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static void wr16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void wr32(uint8_t *p, uint32_t v) { wr16(p, v >> 16); wr16(p + 2, v); }

struct hport {
    int id;
    const char *name;
    struct netback_port *p;     /* NULL while removed */
    bool up;
    uint8_t mac[6];
    uint64_t recv, sent, bad;   /* since it joined */
    unsigned direct_hits;       /* deliveries of the frame being sent */
};

static struct hport H[NPORTS] = {
    { .id = 0, .name = "fz.p0" }, { .id = 1, .name = "fz.p1" }, { .id = ECHO, .name = "fz.echo" },
};

/* The send in progress. */
static struct {
    bool active;
    const uint8_t *buf;         /* the frame the target is sending */
    size_t len;
    int from;
    bool gateway;               /* the switch has a gateway */
    uint8_t gw_mac[6];
    uint32_t gw_ip, first, pool_end;
    unsigned echo;              /* frames the echo port answers each frame with */
    uint8_t reply[NETBACK_FRAME_MAX];   /* the gateway's reply seen, if any */
    size_t reply_len;
} cur;

/* DHCP leases seen: chaddr -> address. */
static struct {
    uint8_t mac[6];
    uint32_t ip;
} leases[LEASES_MAX];
static unsigned n_leases;

/* ---- the pure parsers ------------------------------------------------------------ */

static void check_dhcp_roundtrip(const uint8_t *p, size_t len)
{
    struct net_dhcp d, d2;
    if (!net_dhcp_parse(p, len, &d))
        return;
    uint8_t out[NET_DHCP_MIN_LEN];
    size_t n = net_dhcp_build(out, sizeof out, &d);
    CHECK(n == NET_DHCP_MIN_LEN);
    CHECK(net_dhcp_parse(out, n, &d2));
    CHECK(d.op == d2.op && d.xid == d2.xid && d.secs == d2.secs && d.flags == d2.flags &&
          d.ciaddr == d2.ciaddr && d.yiaddr == d2.yiaddr && d.siaddr == d2.siaddr &&
          d.giaddr == d2.giaddr && !memcmp(d.chaddr, d2.chaddr, 6) &&
          d.msg_type == d2.msg_type && d.server_id == d2.server_id &&
          d.requested_ip == d2.requested_ip && d.lease_time == d2.lease_time &&
          d.subnet_mask == d2.subnet_mask && d.router == d2.router && d.dns == d2.dns);
}

static void check_parsers(const uint8_t *f, size_t len)
{
    struct net_ipv4_view ip;
    if (net_ipv4_parse(f, len, &ip)) {
        CHECK(len >= 34 && rd16(f + 12) == NET_ETHERTYPE_IPV4);
        CHECK(ip.hdr == f + 14 && ip.hdr_len >= 20 && (ip.hdr[0] >> 4) == 4);
        CHECK(ip.hdr_len == (size_t)(ip.hdr[0] & 15) * 4 && ip.hdr_len <= len - 14);
        CHECK(ip.payload == ip.hdr + ip.hdr_len);
        CHECK(ip.payload_len <= len - 14 - ip.hdr_len);
        CHECK(ip.hdr_len + ip.payload_len == rd16(ip.hdr + 2));
        CHECK(net_csum(ip.hdr, ip.hdr_len) == 0);
        struct net_udp_view udp;
        if (net_udp_parse(&ip, &udp)) {
            CHECK(ip.proto == NET_IP_PROTO_UDP);
            CHECK(udp.payload == ip.payload + 8 && udp.payload_len + 8 <= ip.payload_len);
            CHECK(rd16(ip.payload + 4) == udp.payload_len + 8);
            check_dhcp_roundtrip(udp.payload, udp.payload_len);
        }
    }
    check_dhcp_roundtrip(f, len);
}

/* ---- the gateway's replies ---------------------------------------------------------- */

static void lease_seen(const uint8_t mac[6], uint32_t ip)
{
    CHECK(ip >= cur.first && ip < cur.pool_end);
    for (unsigned i = 0; i < n_leases; i++) {
        if (!memcmp(leases[i].mac, mac, 6)) {
            CHECK(leases[i].ip == ip);          /* stable per chaddr */
            return;
        }
        CHECK(leases[i].ip != ip);              /* one chaddr per address */
    }
    CHECK(n_leases < LEASES_MAX);
    memcpy(leases[n_leases].mac, mac, 6);
    leases[n_leases++].ip = ip;
}

static void check_arp_reply(const uint8_t *r, size_t len)
{
    const uint8_t *q = cur.buf, *a = r + 14, *qa = q + 14;
    CHECK(len == NET_ETH_ZLEN && rd16(r + 12) == NET_ETHERTYPE_ARP);
    /* The request: an Ethernet/IPv4 ARP request for the gateway. */
    CHECK(cur.len >= 42 && rd16(q + 12) == NET_ETHERTYPE_ARP);
    CHECK(rd16(qa) == 1 && rd16(qa + 2) == NET_ETHERTYPE_IPV4 && qa[4] == 6 && qa[5] == 4 &&
          rd16(qa + 6) == NET_ARP_REQUEST && rd32(qa + 24) == cur.gw_ip &&
          rd32(qa + 14) != cur.gw_ip && !(qa[8] & 1));
    CHECK(!memcmp(q, cur.gw_mac, 6) || !memcmp(q, BCAST, 6));
    /* The reply: to the asker, from the gateway. */
    CHECK(!memcmp(r, qa + 8, 6) && !memcmp(r + 6, cur.gw_mac, 6));
    CHECK(rd16(a) == 1 && rd16(a + 2) == NET_ETHERTYPE_IPV4 && a[4] == 6 && a[5] == 4 &&
          rd16(a + 6) == NET_ARP_REPLY);
    CHECK(!memcmp(a + 8, cur.gw_mac, 6) && rd32(a + 14) == cur.gw_ip);
    CHECK(!memcmp(a + 18, qa + 8, 6) && rd32(a + 24) == rd32(qa + 14));
    for (size_t i = 42; i < len; i++)
        CHECK(r[i] == 0);
}

static void check_ip_reply(const uint8_t *r, size_t len)
{
    struct net_ipv4_view ip, qip;
    CHECK(net_ipv4_parse(r, len, &ip));
    CHECK(ip.hdr_len == 20 && ip.src == cur.gw_ip && ip.ttl == 64);
    CHECK(14 + 20 + ip.payload_len == len || (len == NET_ETH_ZLEN && 34 + ip.payload_len < len));
    CHECK(net_ipv4_parse(cur.buf, cur.len, &qip));
    CHECK(!memcmp(cur.buf, cur.gw_mac, 6) || !memcmp(cur.buf, BCAST, 6));
    if (ip.proto == NET_IP_PROTO_ICMP) {
        CHECK(qip.proto == NET_IP_PROTO_ICMP && qip.dst == cur.gw_ip && ip.dst == qip.src);
        CHECK(!memcmp(r, cur.buf + 6, 6));
        CHECK(ip.payload_len == qip.payload_len && ip.payload_len >= 8);
        CHECK(net_csum(ip.payload, ip.payload_len) == 0);
        CHECK(ip.payload[0] == NET_ICMP_ECHO_REPLY && ip.payload[1] == 0);
        CHECK(qip.payload[0] == NET_ICMP_ECHO_REQUEST && qip.payload[1] == 0);
        CHECK(net_csum(qip.payload, qip.payload_len) == 0);
        CHECK(!memcmp(ip.payload + 4, qip.payload + 4, ip.payload_len - 4));
        return;
    }
    CHECK(ip.proto == NET_IP_PROTO_UDP);
    struct net_udp_view udp, qudp;
    CHECK(net_udp_parse(&ip, &udp));
    CHECK(rd16(ip.payload + 6) != 0);           /* the gateway always sums */
    CHECK(udp.sport == NET_DHCP_SERVER_PORT && udp.dport == NET_DHCP_CLIENT_PORT);
    CHECK(net_udp_parse(&qip, &qudp) && qudp.sport == NET_DHCP_CLIENT_PORT &&
          qudp.dport == NET_DHCP_SERVER_PORT);
    struct net_dhcp d, q;
    CHECK(net_dhcp_parse(udp.payload, udp.payload_len, &d));
    CHECK(udp.payload_len == NET_DHCP_MIN_LEN);
    CHECK(net_dhcp_parse(qudp.payload, qudp.payload_len, &q));
    CHECK(q.op == 1 && q.giaddr == 0);
    CHECK(d.op == 2 && d.xid == q.xid && !memcmp(d.chaddr, q.chaddr, 6));
    CHECK(d.server_id == cur.gw_ip && d.giaddr == 0);
    /* RFC 2131 §4.1: a NAK, or a client without an address or asking for
     * broadcast, gets a broadcast; a client at ciaddr gets a unicast. */
    bool bcast = d.msg_type == NET_DHCP_NAK || !q.ciaddr || (q.flags & NET_DHCP_FLAG_BROADCAST);
    CHECK(ip.dst == (bcast ? 0xffffffffu : q.ciaddr));
    CHECK(!memcmp(r, bcast ? BCAST : q.chaddr, 6));
    switch (d.msg_type) {
    case NET_DHCP_OFFER:
        CHECK(q.msg_type == NET_DHCP_DISCOVER);
        lease_seen(q.chaddr, d.yiaddr);
        CHECK(d.router == cur.gw_ip && d.lease_time == NET_GW_LEASE_SECONDS);
        break;
    case NET_DHCP_ACK:
        CHECK(q.msg_type == NET_DHCP_REQUEST);
        lease_seen(q.chaddr, d.yiaddr);
        CHECK(d.yiaddr == (q.requested_ip ? q.requested_ip : q.ciaddr));
        CHECK(d.router == cur.gw_ip && d.lease_time == NET_GW_LEASE_SECONDS);
        break;
    case NET_DHCP_NAK:
        CHECK(q.msg_type == NET_DHCP_REQUEST && d.yiaddr == 0 && ip.dst == 0xffffffffu);
        break;
    default:
        abort();
    }
}

static void check_gateway_reply(const uint8_t *r, size_t len)
{
    CHECK(cur.gateway && cur.from >= 0);
    if (cur.reply_len) {                        /* one reply per request */
        CHECK(len == cur.reply_len && !memcmp(r, cur.reply, len));
        return;
    }
    memcpy(cur.reply, r, len);
    cur.reply_len = len;
    if (rd16(r + 12) == NET_ETHERTYPE_ARP)
        check_arp_reply(r, len);
    else
        check_ip_reply(r, len);
}

/* ---- ports ------------------------------------------------------------------------- */

static void echo_back(const uint8_t *f, size_t len)
{
    uint8_t e[64];
    memset(e, 0, sizeof e);
    memcpy(e, (f[6] & 1) || !memcmp(f + 6, "\0\0\0\0\0\0", 6) ? BCAST : f + 6, 6);
    memcpy(e + 6, ECHO_MAC, 6);
    wr16(e + 12, ETYPE_ECHO);
    memcpy(e + 14, f, len < 50 ? len : 50);
    for (unsigned i = 0; i < cur.echo; i++)
        if (netback_send(H[ECHO].p, e, sizeof e))
            H[ECHO].sent++;
}

static void rx(void *ctx, const void *frame, size_t len)
{
    struct hport *h = ctx;
    const uint8_t *f = frame;
    CHECK(cur.active);                          /* only inside a send */
    CHECK(h->p && h->up);                       /* never to a removed or down port */
    CHECK(len >= NET_ETH_HLEN && len <= NETBACK_FRAME_MAX);
    h->recv++;
    if (f == cur.buf) {
        /* The frame being sent: as sent, never back to its sender, once. */
        CHECK(len == cur.len && h->id != cur.from && h->direct_hits == 0);
        h->direct_hits++;
    } else if (!memcmp(f + 6, ECHO_MAC, 6)) {
        CHECK(h->id != ECHO);                   /* the echo port's own frame */
        CHECK(len == 64 && rd16(f + 12) == ETYPE_ECHO);
        return;                                 /* echoes are not echoed */
    } else {
        CHECK(cur.gateway && !memcmp(f + 6, cur.gw_mac, 6));
        check_gateway_reply(f, len);
    }
    if (h->id == ECHO && cur.echo)
        echo_back(f, len);
}

static void port_add(struct hport *h, bool with_mac)
{
    char err[256];
    h->p = netback_port_add(netback_get(), h->name, with_mac ? h->mac : NULL, rx, h, err,
                            sizeof err);
    CHECK(h->p);
    h->up = true;
    h->recv = h->sent = h->bad = 0;
}

static void check_port_stats(const struct hport *h)
{
    struct netback_port_stats st;
    netback_port_stats(h->p, &st);
    CHECK(st.recv_frames == h->recv && st.sent_frames == h->sent && st.bad_frames == h->bad);
}

static void port_remove(struct hport *h)
{
    check_port_stats(h);
    netback_port_remove(h->p);
    h->p = NULL;
}

/* ---- sending ---------------------------------------------------------------------- */

static void send_from(struct hport *h, const uint8_t *frame, size_t len)
{
    if (!h->p)
        return;
    uint8_t *buf = malloc(len ? len : 1);       /* exactly len: ASan sees overreads */
    CHECK(buf);
    memcpy(buf, frame, len);
    for (int i = 0; i < NPORTS; i++)
        H[i].direct_hits = 0;
    uint64_t recv_before[NPORTS];
    for (int i = 0; i < NPORTS; i++)
        recv_before[i] = H[i].recv;
    cur.active = true;
    cur.buf = buf;
    cur.len = len;
    cur.from = h->id;
    cur.reply_len = 0;
    bool ok = netback_send(h->p, buf, len);
    cur.active = false;
    cur.buf = NULL;

    bool valid = len >= NET_ETH_HLEN && len <= NETBACK_FRAME_MAX;
    CHECK(ok == (valid && h->up));
    if (!valid)
        h->bad++;
    if (ok)
        h->sent++;
    if (!ok) {
        for (int i = 0; i < NPORTS; i++)
            CHECK(H[i].recv == recv_before[i]);  /* nothing at all was delivered */
        CHECK(cur.reply_len == 0);
        free(buf);
        return;
    }
    /* Who got the frame itself, against who may. */
    unsigned got = 0;
    bool exact = true;
    for (int i = 0; i < NPORTS; i++) {
        bool may = H[i].p && H[i].up && i != h->id;
        got += H[i].direct_hits;
        if (H[i].direct_hits != may)
            exact = false;
    }
    if (buf[0] & 1)
        CHECK(exact);                           /* group: every other live port */
    else
        CHECK(got <= 1 || exact);               /* unicast: one port, or a flood */
    free(buf);
}

/* Room for any frame the target builds. */
static uint8_t frame[RAW_MAX];
static size_t last_len;

static void corrupt(struct fz *f, size_t len)
{
    uint8_t c = fz_u8(f);
    if ((c & 1) && len) {
        size_t pos = fz_u16(f) % len;
        frame[pos] ^= fz_u8(f);
    }
}

static size_t build_arp(struct fz *f, struct hport *h)
{
    uint8_t mode = fz_u8(f);
    uint32_t spa = fz_u32(f), tpa = (mode & 1) ? fz_u32(f) : cur.gw_ip;
    uint8_t dst[6], tha[6] = { 0 };
    if (mode & 2)
        fz_bytes(f, dst, 6);
    else
        memcpy(dst, (mode & 4) ? cur.gw_mac : BCAST, 6);
    return net_arp_build(frame, sizeof frame, dst, NET_ARP_REQUEST, h->mac, spa, tha, tpa);
}

static size_t build_dhcp(struct fz *f, struct hport *h)
{
    uint8_t mode = fz_u8(f);
    uint8_t body[NET_DHCP_MIN_LEN + 64];
    memset(body, 0, sizeof body);
    body[0] = (mode & 0x80) ? 2 : 1;            /* BOOTREQUEST (or not) */
    body[1] = 1;
    body[2] = 6;
    wr32(body + 4, fz_u32(f));                  /* xid */
    wr16(body + 10, (mode & 8) ? NET_DHCP_FLAG_BROADCAST : 0);
    uint32_t ciaddr = (mode & 0x10) ? fz_u32(f) : 0;
    wr32(body + 12, ciaddr);
    if (mode & 0x20)
        fz_bytes(f, body + 28, 6);              /* chaddr */
    else
        memcpy(body + 28, h->mac, 6);
    wr32(body + NET_DHCP_FIXED_LEN, NET_DHCP_MAGIC);
    size_t at = 240;
    static const uint8_t types[4] = { NET_DHCP_DISCOVER, NET_DHCP_REQUEST, NET_DHCP_REQUEST,
                                      NET_DHCP_RELEASE };
    body[at++] = NET_DHCP_OPT_MSG_TYPE;
    body[at++] = 1;
    body[at++] = types[mode & 3];
    uint8_t o = fz_u8(f);
    if (o & 1) {                                /* requested address */
        uint32_t want = (o & 2) ? fz_u32(f) : cur.first + (uint32_t)((o >> 4) % 4);
        body[at++] = NET_DHCP_OPT_REQUESTED_IP;
        body[at++] = 4;
        wr32(body + at, want);
        at += 4;
    }
    if (o & 4) {                                /* server id */
        body[at++] = NET_DHCP_OPT_SERVER_ID;
        body[at++] = 4;
        wr32(body + at, (o & 8) ? fz_u32(f) : cur.gw_ip);
        at += 4;
    }
    size_t extra = fz_u8(f) % 33;               /* raw option bytes */
    fz_bytes(f, body + at, extra);
    at += extra;
    body[at++] = NET_DHCP_OPT_END;
    size_t blen = at < NET_DHCP_MIN_LEN ? NET_DHCP_MIN_LEN : at;
    uint32_t dst = (mode & 0x40) ? cur.gw_ip : 0xffffffffu;
    return net_udp_build(frame, sizeof frame, (mode & 0x40) ? cur.gw_mac : BCAST, h->mac,
                         ciaddr, NET_DHCP_CLIENT_PORT, dst, NET_DHCP_SERVER_PORT, body, blen);
}

static size_t build_icmp(struct fz *f, struct hport *h)
{
    uint8_t mode = fz_u8(f);
    uint8_t icmp[8 + 255];
    size_t dlen = fz_u8(f);
    icmp[0] = NET_ICMP_ECHO_REQUEST;
    icmp[1] = 0;
    wr16(icmp + 2, 0);
    wr32(icmp + 4, fz_u32(f));                  /* identifier, sequence */
    fz_bytes(f, icmp + 8, dlen);
    wr16(icmp + 2, net_csum(icmp, 8 + dlen));
    uint32_t src = fz_u32(f), dst = (mode & 1) ? fz_u32(f) : cur.gw_ip;
    return net_ipv4_build(frame, sizeof frame, (mode & 2) ? BCAST : cur.gw_mac, h->mac, src, dst,
                          NET_IP_PROTO_ICMP, icmp, 8 + dlen);
}

/* ---- one input ---------------------------------------------------------------------- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool once;
    if (!once) {
        log_set_quiet(true);
        once = true;
    }
    check_parsers(data, size);

    struct fz f = fz_init(data, size);
    uint8_t b0 = fz_u8(&f), b1 = fz_u8(&f);
    struct netback_config cfg;
    netback_config_default(&cfg);
    cfg.prefix = 8u + b0 % 18u;
    cfg.net &= ~0u << (32u - cfg.prefix);
    cfg.no_gateway = b0 & 0x20;
    char err[256];
    CHECK(netback_setup(&cfg, err, sizeof err));
    struct netback *nb = netback_get();
    memset(&cur, 0, sizeof cur);
    n_leases = 0;
    cur.from = -1;
    cur.gateway = !cfg.no_gateway;
    cur.gw_ip = netback_gateway_ip(nb);
    netback_gateway_mac(nb, cur.gw_mac);
    cur.first = netback_dhcp_first(nb);
    uint32_t bcast = cfg.net | ~(~0u << (32u - cfg.prefix));
    uint32_t room = bcast - cur.first;
    cur.pool_end = cur.first + (room < NET_GW_POOL_MAX ? room : NET_GW_POOL_MAX);

    for (int i = 0; i < NPORTS; i++) {
        if (i == ECHO)
            memcpy(H[i].mac, ECHO_MAC, 6);
        else
            fz_bytes(&f, H[i].mac, 6);
        port_add(&H[i], i == ECHO || (b1 >> i & 1));
    }
    last_len = 0;

    for (int op = 0; op < OPS_MAX && fz_left(&f); op++) {
        uint8_t k = fz_u8(&f);
        struct hport *h = &H[(k >> 3) % NPORTS];
        size_t len = 0;
        switch (k & 7) {
        case 0:
            len = fz_u16(&f) % RAW_MAX;
            fz_bytes(&f, frame, len);
            check_parsers(frame, len);
            break;
        case 1:
            len = build_arp(&f, h);
            break;
        case 2:
            len = build_dhcp(&f, h);
            break;
        case 3:
            len = build_icmp(&f, h);
            break;
        case 4:
            if (h->p) {
                h->up = fz_u8(&f) & 1;
                netback_port_link(h->p, h->up);
            }
            continue;
        case 5:
            if (h->p) {
                port_remove(h);
            } else {
                uint8_t m = fz_u8(&f);
                if (h->id != ECHO && (m & 1))
                    fz_bytes(&f, h->mac, 6);
                port_add(h, h->id == ECHO || (m & 2));
            }
            continue;
        case 6:
            cur.echo = fz_u8(&f) % 100;
            continue;
        default:
            len = last_len;
            break;
        }
        CHECK(len <= sizeof frame);
        if ((k & 7) >= 1 && (k & 7) <= 3) {
            CHECK(len >= NET_ETH_ZLEN);
            corrupt(&f, len);
        }
        last_len = len;
        send_from(h, frame, len);
    }

    for (int i = 0; i < NPORTS; i++)
        if (H[i].p)
            port_remove(&H[i]);
    netback_shutdown();
    return 0;
}
