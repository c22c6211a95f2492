/* Client packets before a TCP/IP stack: ARP, DHCP client, ICMP echo
 * (contract in moat/netpkt.h). Layouts: Ethernet II, ARP (RFC 826), IPv4
 * (RFC 791, no options sent; options skipped on receive), UDP (RFC 768,
 * checksum 0 = none), BOOTP/DHCP (RFC 2131/2132), ICMP echo (RFC 792).
 * Freestanding: host clients and bare app domains link it. */
#include "moat/netpkt.h"

#define memcpy __builtin_memcpy
#define memset __builtin_memset
#define memcmp __builtin_memcmp

#define ETH_HDR 14u
#define ETHERTYPE_IPV4 0x0800u
#define ETHERTYPE_ARP  0x0806u
#define IP_HDR 20u
#define IPPROTO_ICMP_ 1u
#define IPPROTO_UDP_ 17u
#define UDP_HDR 8u
#define BOOTP_FIXED 236u            /* op .. file, before the magic cookie */
#define DHCP_MAGIC 0x63825363u
#define DHCP_CLIENT_PORT 68u
#define DHCP_SERVER_PORT 67u

static const uint8_t BCAST[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v)
{
    put16(p, (uint16_t)(v >> 16));
    put16(p + 2, (uint16_t)v);
}
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t get32(const uint8_t *p) { return (uint32_t)get16(p) << 16 | get16(p + 2); }

uint16_t netpkt_csum(const void *data, size_t len)
{
    const uint8_t *p = data;
    uint32_t sum = 0;
    for (size_t i = 0; i + 1 < len; i += 2)
        sum += get16(p + i);
    if (len & 1)
        sum += (uint32_t)p[len - 1] << 8;
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

const char *netpkt_ip_str(uint32_t ip, char *buf)
{
    char *p = buf;
    for (int shift = 24; shift >= 0; shift -= 8) {
        unsigned octet = (ip >> shift) & 255u;
        if (octet >= 100)
            *p++ = (char)('0' + octet / 100);
        if (octet >= 10)
            *p++ = (char)('0' + octet / 10 % 10);
        *p++ = (char)('0' + octet % 10);
        *p++ = shift ? '.' : '\0';
    }
    return buf;
}

static void eth(uint8_t *f, const uint8_t dst[6], const uint8_t src[6], uint16_t type)
{
    memcpy(f, dst, 6);
    memcpy(f + 6, src, 6);
    put16(f + 12, type);
}

/* IPv4 header at p for a payload of plen bytes. */
static void ipv4(uint8_t *p, uint8_t proto, uint32_t src, uint32_t dst, size_t plen)
{
    memset(p, 0, IP_HDR);
    p[0] = 0x45;
    put16(p + 2, (uint16_t)(IP_HDR + plen));
    p[8] = 64;
    p[9] = proto;
    put32(p + 12, src);
    put32(p + 16, dst);
    put16(p + 10, netpkt_csum(p, IP_HDR));
}

/* The IPv4 payload of f if it is a valid IPv4 frame for proto: header
 * length, total length and header checksum checked. */
static const uint8_t *ipv4_payload(const uint8_t *f, size_t len, uint8_t proto, size_t *plen,
                                   uint32_t *src, uint32_t *dst)
{
    if (len < ETH_HDR + IP_HDR || get16(f + 12) != ETHERTYPE_IPV4)
        return NULL;
    const uint8_t *ip = f + ETH_HDR;
    size_t ihl = (size_t)(ip[0] & 15u) * 4u, total = get16(ip + 2);
    if ((ip[0] >> 4) != 4 || ihl < IP_HDR || total < ihl || total > len - ETH_HDR ||
        ip[9] != proto || netpkt_csum(ip, ihl) != 0 || (get16(ip + 6) & 0x3fffu))
        return NULL;            /* fragments are not for us either */
    *plen = total - ihl;
    *src = get32(ip + 12);
    *dst = get32(ip + 16);
    return ip + ihl;
}

static size_t pad(uint8_t *f, size_t len)
{
    if (len < NETPKT_ETH_MIN) {
        memset(f + len, 0, NETPKT_ETH_MIN - len);
        len = NETPKT_ETH_MIN;
    }
    return len;
}

/* ---- ARP ------------------------------------------------------------------------- */

size_t netpkt_arp_request(uint8_t *out, const uint8_t src_mac[6], uint32_t src_ip,
                          uint32_t target_ip)
{
    eth(out, BCAST, src_mac, ETHERTYPE_ARP);
    uint8_t *a = out + ETH_HDR;
    put16(a, 1);                /* Ethernet */
    put16(a + 2, ETHERTYPE_IPV4);
    a[4] = 6;
    a[5] = 4;
    put16(a + 6, 1);            /* request */
    memcpy(a + 8, src_mac, 6);
    put32(a + 14, src_ip);
    memset(a + 18, 0, 6);
    put32(a + 24, target_ip);
    return pad(out, ETH_HDR + 28);
}

bool netpkt_arp_reply(const uint8_t *f, size_t len, const uint8_t our_mac[6], uint32_t our_ip,
                      uint32_t ip, uint8_t mac[6])
{
    if (len < ETH_HDR + 28 || get16(f + 12) != ETHERTYPE_ARP || memcmp(f, our_mac, 6))
        return false;
    const uint8_t *a = f + ETH_HDR;
    if (get16(a) != 1 || get16(a + 2) != ETHERTYPE_IPV4 || a[4] != 6 || a[5] != 4 ||
        get16(a + 6) != 2 || get32(a + 14) != ip || get32(a + 24) != our_ip ||
        memcmp(a + 18, our_mac, 6))
        return false;
    memcpy(mac, a + 8, 6);
    return true;
}

/* ---- DHCP ------------------------------------------------------------------------ */

size_t netpkt_dhcp_client(uint8_t *out, size_t cap, enum netpkt_dhcp_type type,
                          const uint8_t mac[6], uint32_t xid, uint32_t req_ip,
                          uint32_t server_id)
{
    if (type != NETPKT_DHCP_DISCOVER && type != NETPKT_DHCP_REQUEST)
        return 0;
    size_t opts = 3 + 3 + (type == NETPKT_DHCP_REQUEST ? 12 : 0) + 1;
    size_t bootp = BOOTP_FIXED + 4 + opts, total = ETH_HDR + IP_HDR + UDP_HDR + bootp;
    if (cap < total || cap < NETPKT_ETH_MIN)
        return 0;
    memset(out, 0, total);
    eth(out, BCAST, mac, ETHERTYPE_IPV4);
    ipv4(out + ETH_HDR, IPPROTO_UDP_, 0, 0xffffffffu, UDP_HDR + bootp);
    uint8_t *u = out + ETH_HDR + IP_HDR;
    put16(u, DHCP_CLIENT_PORT);
    put16(u + 2, DHCP_SERVER_PORT);
    put16(u + 4, (uint16_t)(UDP_HDR + bootp));  /* checksum 0: none */
    uint8_t *b = u + UDP_HDR;
    b[0] = 1;                   /* BOOTREQUEST */
    b[1] = 1;                   /* Ethernet */
    b[2] = 6;
    put32(b + 4, xid);
    put16(b + 10, 0x8000);      /* broadcast: we have no address yet */
    memcpy(b + 28, mac, 6);
    put32(b + BOOTP_FIXED, DHCP_MAGIC);
    uint8_t *o = b + BOOTP_FIXED + 4;
    *o++ = 53; *o++ = 1; *o++ = (uint8_t)type;
    *o++ = 55; *o++ = 1; *o++ = 1;              /* parameter list: subnet mask */
    if (type == NETPKT_DHCP_REQUEST) {
        *o++ = 50; *o++ = 4; put32(o, req_ip); o += 4;
        *o++ = 54; *o++ = 4; put32(o, server_id); o += 4;
    }
    *o = 255;
    return pad(out, total);
}

bool netpkt_dhcp_reply(const uint8_t *f, size_t len, const uint8_t mac[6], uint32_t xid,
                       struct netpkt_dhcp_reply *out)
{
    size_t plen;
    uint32_t src, dst;
    const uint8_t *u = ipv4_payload(f, len, IPPROTO_UDP_, &plen, &src, &dst);
    if (!u || plen < UDP_HDR || get16(u) != DHCP_SERVER_PORT || get16(u + 2) != DHCP_CLIENT_PORT)
        return false;
    size_t ulen = get16(u + 4);
    if (ulen < UDP_HDR + BOOTP_FIXED + 4 || ulen > plen)
        return false;
    const uint8_t *b = u + UDP_HDR;
    size_t blen = ulen - UDP_HDR;
    if (b[0] != 2 || get32(b + 4) != xid || memcmp(b + 28, mac, 6) ||
        get32(b + BOOTP_FIXED) != DHCP_MAGIC)
        return false;
    *out = (struct netpkt_dhcp_reply){ .xid = xid, .yiaddr = get32(b + 16) };
    int type = 0;
    for (size_t i = BOOTP_FIXED + 4; i < blen;) {
        uint8_t code = b[i];
        if (code == 255)
            break;
        if (code == 0) {
            i++;
            continue;
        }
        if (i + 2 > blen || i + 2 + b[i + 1] > blen)
            return false;       /* an option runs past the message */
        const uint8_t *v = b + i + 2;
        uint8_t l = b[i + 1];
        if (code == 53 && l == 1)
            type = v[0];
        else if (code == 54 && l == 4)
            out->server_id = get32(v);
        else if (code == 1 && l == 4)
            out->mask = get32(v);
        else if (code == 3 && l >= 4)
            out->router = get32(v);
        else if (code == 51 && l == 4)
            out->lease_s = get32(v);
        i += 2u + l;
    }
    if (type != NETPKT_DHCP_OFFER && type != NETPKT_DHCP_ACK && type != NETPKT_DHCP_NAK)
        return false;
    out->type = (enum netpkt_dhcp_type)type;
    return true;
}

/* ---- ICMP echo ------------------------------------------------------------------- */

size_t netpkt_icmp_echo(uint8_t *out, size_t cap, const uint8_t src_mac[6],
                        const uint8_t dst_mac[6], uint32_t src_ip, uint32_t dst_ip, uint16_t id,
                        uint16_t seq, const void *payload, size_t plen)
{
    size_t total = ETH_HDR + IP_HDR + 8 + plen;
    if (total > NETPKT_FRAME_MAX || cap < total || cap < NETPKT_ETH_MIN)
        return 0;
    eth(out, dst_mac, src_mac, ETHERTYPE_IPV4);
    ipv4(out + ETH_HDR, IPPROTO_ICMP_, src_ip, dst_ip, 8 + plen);
    uint8_t *c = out + ETH_HDR + IP_HDR;
    c[0] = 8;                   /* echo request */
    c[1] = 0;
    put16(c + 2, 0);
    put16(c + 4, id);
    put16(c + 6, seq);
    if (plen)
        memcpy(c + 8, payload, plen);
    put16(c + 2, netpkt_csum(c, 8 + plen));
    return pad(out, total);
}

bool netpkt_icmp_reply(const uint8_t *f, size_t len, const uint8_t our_mac[6], uint32_t our_ip,
                       uint32_t from_ip, uint16_t id, uint16_t *seq)
{
    size_t plen;
    uint32_t src, dst;
    if (len < 6 || memcmp(f, our_mac, 6))
        return false;
    const uint8_t *c = ipv4_payload(f, len, IPPROTO_ICMP_, &plen, &src, &dst);
    if (!c || plen < 8 || src != from_ip || dst != our_ip || c[0] != 0 || c[1] != 0 ||
        get16(c + 4) != id || netpkt_csum(c, plen) != 0)
        return false;
    *seq = get16(c + 6);
    return true;
}
