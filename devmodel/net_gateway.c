/* Built-in gateway: ARP, DHCP and ICMP echo (contract in net_gateway.h).
 * Every read of a guest frame goes through a length checked just before;
 * the parsers copy fields into locals and the builders never look back at
 * the request. */
#include <stdlib.h>
#include <string.h>
#include "log.h"
#include "net_gateway.h"

#define IPV4_HLEN       20u
#define UDP_HLEN        8u
#define ICMP_HLEN       8u
#define DHCP_OPTS_OFF   240u        /* options follow the magic cookie */
#define IP_TTL          64u
#define IP_FRAG_MASK    0x3fffu     /* MF flag + fragment offset (RFC 791) */
#define IP_BROADCAST    0xffffffffu

static const uint8_t eth_broadcast[NET_ETH_ALEN] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static void wr16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static void wr32(uint8_t *p, uint32_t v)
{
    wr16(p, v >> 16);
    wr16(p + 2, v);
}

/* ---- checksums ----------------------------------------------------------- */

uint32_t net_csum_add(uint32_t sum, const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t s = sum;
    for (; len >= 2; p += 2, len -= 2)
        s += rd16(p);
    if (len)
        s += (uint32_t)p[0] << 8;
    while (s >> 16)
        s = (s & 0xffffu) + (s >> 16);
    return (uint32_t)s;
}

uint16_t net_csum_fold(uint32_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xffffu) + (sum >> 16);
    return (uint16_t)~sum;
}

uint16_t net_csum(const void *data, size_t len)
{
    return net_csum_fold(net_csum_add(0, data, len));
}

/* The UDP pseudo-header sum (RFC 768). */
static uint32_t udp_pseudo(uint32_t src, uint32_t dst, size_t ulen)
{
    uint8_t ph[12];
    wr32(ph, src);
    wr32(ph + 4, dst);
    ph[8] = 0;
    ph[9] = NET_IP_PROTO_UDP;
    wr16(ph + 10, (uint32_t)ulen);
    return net_csum_add(0, ph, sizeof ph);
}

/* ---- parsers ------------------------------------------------------------- */

bool net_ipv4_parse(const uint8_t *frame, size_t len, struct net_ipv4_view *ip)
{
    if (len < NET_ETH_HLEN + IPV4_HLEN || rd16(frame + 12) != NET_ETHERTYPE_IPV4)
        return false;
    const uint8_t *h = frame + NET_ETH_HLEN;
    size_t avail = len - NET_ETH_HLEN;
    size_t ihl = (size_t)(h[0] & 0x0fu) * 4u;
    size_t total = rd16(h + 2);
    if (h[0] >> 4 != 4 || ihl < IPV4_HLEN || ihl > avail || total < ihl || total > avail)
        return false;
    if (rd16(h + 6) & IP_FRAG_MASK)
        return false;       /* the gateway does not reassemble */
    if (net_csum(h, ihl) != 0)
        return false;
    ip->hdr = h;
    ip->hdr_len = ihl;
    ip->ttl = h[8];
    ip->proto = h[9];
    ip->src = rd32(h + 12);
    ip->dst = rd32(h + 16);
    ip->payload = h + ihl;
    ip->payload_len = total - ihl;
    return true;
}

bool net_udp_parse(const struct net_ipv4_view *ip, struct net_udp_view *udp)
{
    if (ip->proto != NET_IP_PROTO_UDP || ip->payload_len < UDP_HLEN)
        return false;
    const uint8_t *u = ip->payload;
    size_t ulen = rd16(u + 4);
    if (ulen < UDP_HLEN || ulen > ip->payload_len)
        return false;
    if (rd16(u + 6) != 0 &&
        net_csum_fold(net_csum_add(udp_pseudo(ip->src, ip->dst, ulen), u, ulen)) != 0)
        return false;
    udp->sport = rd16(u);
    udp->dport = rd16(u + 2);
    udp->payload = u + UDP_HLEN;
    udp->payload_len = ulen - UDP_HLEN;
    return true;
}

bool net_dhcp_parse(const uint8_t *p, size_t len, struct net_dhcp *d)
{
    memset(d, 0, sizeof *d);
    if (len < DHCP_OPTS_OFF || p[1] != 1 || p[2] != NET_ETH_ALEN ||
        rd32(p + NET_DHCP_FIXED_LEN) != NET_DHCP_MAGIC)
        return false;
    d->op = p[0];
    d->xid = rd32(p + 4);
    d->secs = rd16(p + 8);
    d->flags = rd16(p + 10);
    d->ciaddr = rd32(p + 12);
    d->yiaddr = rd32(p + 16);
    d->siaddr = rd32(p + 20);
    d->giaddr = rd32(p + 24);
    memcpy(d->chaddr, p + 28, NET_ETH_ALEN);
    /* RFC 2132 §2: code, length, body; PAD and END have no length. */
    for (size_t i = DHCP_OPTS_OFF; i < len;) {
        uint8_t code = p[i];
        if (code == NET_DHCP_OPT_PAD) {
            i++;
            continue;
        }
        if (code == NET_DHCP_OPT_END)
            return true;
        if (len - i < 2)
            return false;
        size_t olen = p[i + 1];
        if (olen > len - i - 2)
            return false;               /* the option runs past the message */
        const uint8_t *b = p + i + 2;
        switch (code) {
        case NET_DHCP_OPT_MSG_TYPE:
            if (olen != 1)
                return false;
            d->msg_type = b[0];
            break;
        case NET_DHCP_OPT_SERVER_ID:
        case NET_DHCP_OPT_REQUESTED_IP:
        case NET_DHCP_OPT_LEASE_TIME:
        case NET_DHCP_OPT_SUBNET_MASK:
            if (olen != 4)
                return false;
            *(code == NET_DHCP_OPT_SERVER_ID      ? &d->server_id
              : code == NET_DHCP_OPT_REQUESTED_IP ? &d->requested_ip
              : code == NET_DHCP_OPT_LEASE_TIME   ? &d->lease_time
                                                  : &d->subnet_mask) = rd32(b);
            break;
        case NET_DHCP_OPT_ROUTER:
        case NET_DHCP_OPT_DNS:
            if (olen < 4 || olen % 4)
                return false;
            *(code == NET_DHCP_OPT_ROUTER ? &d->router : &d->dns) = rd32(b);
            break;
        default:
            break;      /* options we do not use, overload (52) included */
        }
        i += 2 + olen;
    }
    return false;       /* no END option */
}

/* ---- builders ------------------------------------------------------------ */

static size_t pad_frame(uint8_t *out, size_t len)
{
    if (len < NET_ETH_ZLEN) {
        memset(out + len, 0, NET_ETH_ZLEN - len);
        len = NET_ETH_ZLEN;
    }
    return len;
}

static void eth_header(uint8_t *out, const uint8_t dst[6], const uint8_t src[6], uint16_t type)
{
    memcpy(out, dst, NET_ETH_ALEN);
    memcpy(out + 6, src, NET_ETH_ALEN);
    wr16(out + 12, type);
}

/* The IPv4 header at out + 14 for plen payload bytes that follow it. */
static void ipv4_header(uint8_t *out, uint32_t src, uint32_t dst, uint8_t proto, size_t plen)
{
    uint8_t *h = out + NET_ETH_HLEN;
    memset(h, 0, IPV4_HLEN);
    h[0] = 0x45;            /* version 4, IHL 5 */
    wr16(h + 2, (uint32_t)(IPV4_HLEN + plen));
    h[8] = IP_TTL;
    h[9] = proto;
    wr32(h + 12, src);
    wr32(h + 16, dst);
    wr16(h + 10, net_csum(h, IPV4_HLEN));
}

/* Room for an Ethernet + IPv4 frame of plen payload bytes in cap? */
static bool ipv4_fits(size_t cap, size_t plen)
{
    size_t need = NET_ETH_HLEN + IPV4_HLEN;
    return plen <= NET_ETH_FRAME_MAX - need && cap >= need + plen && cap >= NET_ETH_ZLEN;
}

size_t net_arp_build(uint8_t *out, size_t cap, const uint8_t eth_dst[6], uint16_t oper,
                     const uint8_t sha[6], uint32_t spa, const uint8_t tha[6], uint32_t tpa)
{
    if (cap < NET_ETH_ZLEN)
        return 0;
    eth_header(out, eth_dst, sha, NET_ETHERTYPE_ARP);
    uint8_t *a = out + NET_ETH_HLEN;    /* RFC 826 packet layout */
    wr16(a, 1);                         /* hardware type: Ethernet */
    wr16(a + 2, NET_ETHERTYPE_IPV4);    /* protocol type */
    a[4] = NET_ETH_ALEN;
    a[5] = 4;
    wr16(a + 6, oper);
    memcpy(a + 8, sha, NET_ETH_ALEN);
    wr32(a + 14, spa);
    memcpy(a + 18, tha, NET_ETH_ALEN);
    wr32(a + 24, tpa);
    return pad_frame(out, NET_ETH_HLEN + NET_ARP_LEN);
}

size_t net_ipv4_build(uint8_t *out, size_t cap, const uint8_t eth_dst[6], const uint8_t eth_src[6],
                      uint32_t src, uint32_t dst, uint8_t proto, const void *payload, size_t plen)
{
    if (!ipv4_fits(cap, plen))
        return 0;
    eth_header(out, eth_dst, eth_src, NET_ETHERTYPE_IPV4);
    memmove(out + NET_ETH_HLEN + IPV4_HLEN, payload, plen);
    ipv4_header(out, src, dst, proto, plen);
    return pad_frame(out, NET_ETH_HLEN + IPV4_HLEN + plen);
}

size_t net_udp_build(uint8_t *out, size_t cap, const uint8_t eth_dst[6], const uint8_t eth_src[6],
                     uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport,
                     const void *payload, size_t plen)
{
    if (plen > NET_ETH_FRAME_MAX || !ipv4_fits(cap, UDP_HLEN + plen))
        return 0;
    size_t ulen = UDP_HLEN + plen;
    uint8_t *u = out + NET_ETH_HLEN + IPV4_HLEN;
    memmove(u + UDP_HLEN, payload, plen);
    wr16(u, sport);
    wr16(u + 2, dport);
    wr16(u + 4, (uint32_t)ulen);
    wr16(u + 6, 0);
    uint16_t c = net_csum_fold(net_csum_add(udp_pseudo(src, dst, ulen), u, ulen));
    wr16(u + 6, c ? c : 0xffffu);       /* 0 means "no checksum" (RFC 768) */
    eth_header(out, eth_dst, eth_src, NET_ETHERTYPE_IPV4);
    ipv4_header(out, src, dst, NET_IP_PROTO_UDP, ulen);
    return pad_frame(out, NET_ETH_HLEN + IPV4_HLEN + ulen);
}

/* Append option code with a 4-byte body at *at. */
static void opt32(uint8_t *p, size_t *at, uint8_t code, uint32_t v)
{
    p[(*at)++] = code;
    p[(*at)++] = 4;
    wr32(p + *at, v);
    *at += 4;
}

size_t net_dhcp_build(uint8_t *out, size_t cap, const struct net_dhcp *d)
{
    /* 240 fixed + 3 (type) + 6 x 6 (addresses, lease) + 1 (end) < 300 */
    if (cap < NET_DHCP_MIN_LEN)
        return 0;
    memset(out, 0, NET_DHCP_MIN_LEN);
    out[0] = d->op;
    out[1] = 1;                 /* htype Ethernet */
    out[2] = NET_ETH_ALEN;
    wr32(out + 4, d->xid);
    wr16(out + 8, d->secs);
    wr16(out + 10, d->flags);
    wr32(out + 12, d->ciaddr);
    wr32(out + 16, d->yiaddr);
    wr32(out + 20, d->siaddr);
    wr32(out + 24, d->giaddr);
    memcpy(out + 28, d->chaddr, NET_ETH_ALEN);
    wr32(out + NET_DHCP_FIXED_LEN, NET_DHCP_MAGIC);
    size_t at = DHCP_OPTS_OFF;
    if (d->msg_type) {
        out[at++] = NET_DHCP_OPT_MSG_TYPE;
        out[at++] = 1;
        out[at++] = d->msg_type;
    }
    if (d->server_id)
        opt32(out, &at, NET_DHCP_OPT_SERVER_ID, d->server_id);
    if (d->lease_time)
        opt32(out, &at, NET_DHCP_OPT_LEASE_TIME, d->lease_time);
    if (d->subnet_mask)
        opt32(out, &at, NET_DHCP_OPT_SUBNET_MASK, d->subnet_mask);
    if (d->router)
        opt32(out, &at, NET_DHCP_OPT_ROUTER, d->router);
    if (d->dns)
        opt32(out, &at, NET_DHCP_OPT_DNS, d->dns);
    if (d->requested_ip)
        opt32(out, &at, NET_DHCP_OPT_REQUESTED_IP, d->requested_ip);
    out[at++] = NET_DHCP_OPT_END;
    return NET_DHCP_MIN_LEN;
}

size_t net_icmp_echo_reply_build(uint8_t *out, size_t cap, const uint8_t *frame,
                                 const struct net_ipv4_view *ip, const uint8_t mac[6])
{
    size_t n = ip->payload_len;
    if (ip->proto != NET_IP_PROTO_ICMP || n < ICMP_HLEN || !ipv4_fits(cap, n))
        return 0;
    const uint8_t *req = ip->payload;
    if (req[0] != NET_ICMP_ECHO_REQUEST || req[1] != 0 || net_csum(req, n) != 0)
        return 0;
    uint8_t src_mac[NET_ETH_ALEN];
    memcpy(src_mac, frame + 6, NET_ETH_ALEN);   /* before out may overwrite frame */
    uint8_t *icmp = out + NET_ETH_HLEN + IPV4_HLEN;
    memmove(icmp, req, n);
    icmp[0] = NET_ICMP_ECHO_REPLY;
    wr16(icmp + 2, 0);
    wr16(icmp + 2, net_csum(icmp, n));
    eth_header(out, src_mac, mac, NET_ETHERTYPE_IPV4);
    ipv4_header(out, ip->dst, ip->src, NET_IP_PROTO_ICMP, n);
    return pad_frame(out, NET_ETH_HLEN + IPV4_HLEN + n);
}

/* ---- the gateway ----------------------------------------------------------- */

struct net_gateway {
    uint32_t net, mask, ip, first, bcast;
    uint8_t mac[NET_ETH_ALEN];
    unsigned pool;
    bool pool_full_logged;
    struct {
        bool used;
        uint8_t mac[NET_ETH_ALEN];
    } leases[NET_GW_POOL_MAX];  /* lease i is first + i */
};

void net_gateway_mac_of(uint32_t ip, uint8_t mac[6])
{
    mac[0] = 0x52;
    mac[1] = 0x55;
    wr32(mac + 2, ip);
}

struct net_gateway *net_gateway_new(uint32_t net, uint32_t prefix)
{
    if (prefix < 8 || prefix > 25)
        return NULL;
    uint32_t mask = ~0u << (32u - prefix);
    if (net & ~mask)
        return NULL;
    struct net_gateway *gw = calloc(1, sizeof *gw);
    if (!gw)
        return NULL;
    gw->net = net;
    gw->mask = mask;
    gw->ip = net + NET_GW_HOST_GATEWAY;
    gw->first = net + NET_GW_HOST_DHCP;
    gw->bcast = net | ~mask;
    uint32_t room = gw->bcast - gw->first;      /* first .. bcast - 1 */
    gw->pool = room < NET_GW_POOL_MAX ? room : NET_GW_POOL_MAX;
    net_gateway_mac_of(gw->ip, gw->mac);
    return gw;
}

void net_gateway_free(struct net_gateway *gw)
{
    free(gw);
}

uint32_t net_gateway_ip(const struct net_gateway *gw) { return gw->ip; }
void net_gateway_mac(const struct net_gateway *gw, uint8_t mac[6]) { memcpy(mac, gw->mac, 6); }
uint32_t net_gateway_dhcp_first(const struct net_gateway *gw) { return gw->first; }
unsigned net_gateway_pool_size(const struct net_gateway *gw) { return gw->pool; }

/* The lease of mac, allocated on first use (stable for the process
 * lifetime); its address, or 0 when the pool is full. */
static uint32_t lease_for(struct net_gateway *gw, const uint8_t *mac)
{
    unsigned free_slot = gw->pool;
    for (unsigned i = 0; i < gw->pool; i++) {
        if (gw->leases[i].used && !memcmp(gw->leases[i].mac, mac, NET_ETH_ALEN))
            return gw->first + i;
        if (!gw->leases[i].used && free_slot == gw->pool)
            free_slot = i;
    }
    if (free_slot == gw->pool) {
        if (!gw->pool_full_logged) {
            gw->pool_full_logged = true;
            log_error("net", "gateway: DHCP pool of %u leases is full; new clients get no "
                      "address (use a larger --net subnet)", gw->pool);
        }
        return 0;
    }
    gw->leases[free_slot].used = true;
    memcpy(gw->leases[free_slot].mac, mac, NET_ETH_ALEN);
    return gw->first + free_slot;
}

static enum net_gw_verdict arp_input(struct net_gateway *gw, const uint8_t *f, size_t len,
                                     uint8_t *reply, size_t cap, size_t *reply_len)
{
    if (len < NET_ETH_HLEN + NET_ARP_LEN)
        return NET_GW_IGNORED;
    const uint8_t *a = f + NET_ETH_HLEN;
    if (rd16(a) != 1 || rd16(a + 2) != NET_ETHERTYPE_IPV4 || a[4] != NET_ETH_ALEN || a[5] != 4 ||
        rd16(a + 6) != NET_ARP_REQUEST)
        return NET_GW_IGNORED;
    uint8_t sha[NET_ETH_ALEN];
    memcpy(sha, a + 8, NET_ETH_ALEN);
    uint32_t spa = rd32(a + 14), tpa = rd32(a + 24);
    /* Only requests for our address; a gratuitous ARP (spa == tpa)
     * announces, it asks nothing. */
    if (tpa != gw->ip || spa == tpa || (sha[0] & 1u))
        return NET_GW_IGNORED;
    *reply_len = net_arp_build(reply, cap, sha, NET_ARP_REPLY, gw->mac, gw->ip, sha, spa);
    return *reply_len ? NET_GW_ARP_REPLY : NET_GW_IGNORED;
}

static enum net_gw_verdict dhcp_input(struct net_gateway *gw, const struct net_ipv4_view *ip,
                                      const struct net_udp_view *udp, uint8_t *reply, size_t cap,
                                      size_t *reply_len)
{
    struct net_dhcp q;
    if (udp->sport != NET_DHCP_CLIENT_PORT || !net_dhcp_parse(udp->payload, udp->payload_len, &q))
        return NET_GW_IGNORED;
    if (q.op != 1 || (q.chaddr[0] & 1u) || !(q.chaddr[0] | q.chaddr[1] | q.chaddr[2] |
                                              q.chaddr[3] | q.chaddr[4] | q.chaddr[5]))
        return NET_GW_IGNORED;
    if (q.giaddr)
        return NET_GW_IGNORED;      /* relayed: we serve our own link only */
    if (ip->dst != IP_BROADCAST && ip->dst != gw->ip && ip->dst != gw->bcast)
        return NET_GW_IGNORED;

    struct net_dhcp r = { .op = 2, .xid = q.xid, .flags = q.flags, .server_id = gw->ip };
    memcpy(r.chaddr, q.chaddr, NET_ETH_ALEN);
    enum net_gw_verdict v;
    uint32_t addr;
    switch (q.msg_type) {
    case NET_DHCP_DISCOVER:
        addr = lease_for(gw, q.chaddr);
        if (!addr)
            return NET_GW_IGNORED;
        r.msg_type = NET_DHCP_OFFER;
        r.yiaddr = addr;
        v = NET_GW_DHCP_OFFER;
        break;
    case NET_DHCP_REQUEST: {
        /* SELECTING / INIT-REBOOT name the address in option 50, RENEWING
         * / REBINDING in ciaddr (RFC 2131 §4.3.2). A server id other than
         * ours gets a NAK rather than silence: we are the only server on
         * this link, so the client holds a stale choice; NAK restarts it. */
        uint32_t want = q.requested_ip ? q.requested_ip : q.ciaddr;
        addr = lease_for(gw, q.chaddr);
        if ((q.server_id && q.server_id != gw->ip) || !addr || want != addr) {
            r.msg_type = NET_DHCP_NAK;
            v = NET_GW_DHCP_NAK;
        } else {
            r.msg_type = NET_DHCP_ACK;
            r.ciaddr = q.ciaddr;
            r.yiaddr = addr;
            v = NET_GW_DHCP_ACK;
        }
        break;
    }
    default:
        return NET_GW_IGNORED;      /* DECLINE, RELEASE, INFORM: leases stay */
    }
    if (v != NET_GW_DHCP_NAK) {
        r.siaddr = gw->ip;
        r.lease_time = NET_GW_LEASE_SECONDS;
        r.subnet_mask = gw->mask;
        r.router = gw->ip;
    }
    uint8_t body[NET_DHCP_MIN_LEN];
    size_t blen = net_dhcp_build(body, sizeof body, &r);
    /* A NAK, or a client without an address or asking for broadcast, is
     * answered by broadcast; a renewing client at its address. */
    bool bcast = v == NET_GW_DHCP_NAK || !q.ciaddr || (q.flags & NET_DHCP_FLAG_BROADCAST);
    *reply_len = net_udp_build(reply, cap, bcast ? eth_broadcast : q.chaddr, gw->mac, gw->ip,
                               NET_DHCP_SERVER_PORT, bcast ? IP_BROADCAST : q.ciaddr,
                               NET_DHCP_CLIENT_PORT, body, blen);
    return *reply_len ? v : NET_GW_IGNORED;
}

enum net_gw_verdict net_gateway_input(struct net_gateway *gw, const void *frame, size_t len,
                                      uint8_t *reply, size_t cap, size_t *reply_len)
{
    const uint8_t *f = frame;
    *reply_len = 0;
    if (len < NET_ETH_HLEN || len > NET_ETH_FRAME_MAX || cap < NET_ETH_FRAME_MAX)
        return NET_GW_IGNORED;
    /* Ours are frames to our MAC or to everyone; other unicast reaches
     * us only by flooding. */
    if (memcmp(f, gw->mac, NET_ETH_ALEN) && memcmp(f, eth_broadcast, NET_ETH_ALEN))
        return NET_GW_IGNORED;
    uint16_t type = rd16(f + 12);
    if (type == NET_ETHERTYPE_ARP)
        return arp_input(gw, f, len, reply, cap, reply_len);
    struct net_ipv4_view ip;
    if (type != NET_ETHERTYPE_IPV4 || !net_ipv4_parse(f, len, &ip))
        return NET_GW_IGNORED;
    if (ip.proto == NET_IP_PROTO_UDP) {
        struct net_udp_view udp;
        if (!net_udp_parse(&ip, &udp) || udp.dport != NET_DHCP_SERVER_PORT)
            return NET_GW_IGNORED;
        return dhcp_input(gw, &ip, &udp, reply, cap, reply_len);
    }
    if (ip.proto == NET_IP_PROTO_ICMP && ip.dst == gw->ip) {
        *reply_len = net_icmp_echo_reply_build(reply, cap, f, &ip, gw->mac);
        return *reply_len ? NET_GW_ICMP_REPLY : NET_GW_IGNORED;
    }
    return NET_GW_IGNORED;
}
