/* The client packet module (clients/moatnet/netpkt.c): the Internet
 * checksum against RFC 1071's worked example, ARP/DHCP/ICMP frames laid
 * out byte for byte as the RFCs say, and parsers that accept exactly the
 * replies they look for and refuse truncated, corrupted or foreign ones. */
#include <criterion/criterion.h>
#include <string.h>
#include "moat/netpkt.h"

static const uint8_t MAC[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
static const uint8_t GWMAC[6] = { 0x52, 0x55, 0x0a, 0x00, 0x02, 0x02 };
#define IP_ME 0x0A00020Fu   /* 10.0.2.15 */
#define IP_GW 0x0A000202u   /* 10.0.2.2 */

static uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t be32(const uint8_t *p) { return (uint32_t)be16(p) << 16 | be16(p + 2); }
static void wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void wr32(uint8_t *p, uint32_t v) { wr16(p, (uint16_t)(v >> 16)); wr16(p + 2, (uint16_t)v); }

Test(netpkt, checksum_matches_rfc1071_example)
{
    /* RFC 1071 §3: the one's complement sum of these words is 0xddf2. */
    const uint8_t d[8] = { 0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7 };
    cr_assert_eq(netpkt_csum(d, sizeof d), (uint16_t)~0xddf2u, "checksum 0x%04x, want 0x%04x",
                 netpkt_csum(d, sizeof d), (uint16_t)~0xddf2u);
    const uint8_t odd[3] = { 0x01, 0x02, 0x03 };   /* the odd byte is padded with zero */
    cr_assert_eq(netpkt_csum(odd, 3), (uint16_t)~(0x0102u + 0x0300u), "odd-length checksum");
}

Test(netpkt, arp_request_layout_and_reply_parse)
{
    uint8_t f[64];
    size_t len = netpkt_arp_request(f, MAC, IP_ME, IP_GW);
    cr_assert_eq(len, 60u, "ARP request padded to the Ethernet minimum, got %zu", len);
    for (int i = 0; i < 6; i++)
        cr_assert_eq(f[i], 0xff, "ARP request must be broadcast");
    cr_assert(!memcmp(f + 6, MAC, 6) && be16(f + 12) == 0x0806, "source MAC / ethertype");
    cr_assert(be16(f + 14) == 1 && be16(f + 16) == 0x0800 && f[18] == 6 && f[19] == 4 &&
              be16(f + 20) == 1, "ARP header: Ethernet/IPv4, request");
    cr_assert(be32(f + 28) == IP_ME && be32(f + 38) == IP_GW, "sender / target IP");

    /* The gateway's answer, built by hand. */
    uint8_t r[60] = { 0 };
    memcpy(r, MAC, 6);
    memcpy(r + 6, GWMAC, 6);
    wr16(r + 12, 0x0806);
    wr16(r + 14, 1); wr16(r + 16, 0x0800); r[18] = 6; r[19] = 4; wr16(r + 20, 2);
    memcpy(r + 22, GWMAC, 6); wr32(r + 28, IP_GW);
    memcpy(r + 32, MAC, 6); wr32(r + 38, IP_ME);
    uint8_t got[6];
    cr_assert(netpkt_arp_reply(r, sizeof r, MAC, IP_ME, IP_GW, got), "a valid reply refused");
    cr_assert(!memcmp(got, GWMAC, 6), "the gateway's MAC not taken from the reply");
    cr_assert_not(netpkt_arp_reply(r, 41, MAC, IP_ME, IP_GW, got), "a truncated reply accepted");
    cr_assert_not(netpkt_arp_reply(r, sizeof r, MAC, IP_ME, IP_GW + 1, got), "a reply about another IP accepted");
    r[21] = 1;
    cr_assert_not(netpkt_arp_reply(r, sizeof r, MAC, IP_ME, IP_GW, got), "a request taken for a reply");
}

Test(netpkt, dhcp_client_messages_follow_rfc2131)
{
    uint8_t f[600];
    size_t len = netpkt_dhcp_client(f, sizeof f, NETPKT_DHCP_DISCOVER, MAC, 0xdeadbeef, 0, 0);
    cr_assert_gt(len, 14u + 20u + 8u + 240u, "DISCOVER too short: %zu", len);
    const uint8_t *ip = f + 14, *udp = ip + 20, *b = udp + 8;
    cr_assert_eq(netpkt_csum(ip, 20), 0, "IP header checksum invalid");
    cr_assert(be32(ip + 12) == 0 && be32(ip + 16) == 0xffffffffu, "0.0.0.0 -> 255.255.255.255");
    cr_assert(be16(udp) == 68 && be16(udp + 2) == 67, "UDP ports 68 -> 67");
    cr_assert(b[0] == 1 && b[1] == 1 && b[2] == 6, "BOOTREQUEST over Ethernet");
    cr_assert_eq(be32(b + 4), 0xdeadbeefu, "xid");
    cr_assert_eq(be16(b + 10), 0x8000, "broadcast flag: the client has no address yet");
    cr_assert(!memcmp(b + 28, MAC, 6), "chaddr");
    cr_assert_eq(be32(b + 236), 0x63825363u, "magic cookie");
    cr_assert(b[240] == 53 && b[241] == 1 && b[242] == NETPKT_DHCP_DISCOVER, "option 53 first");
    len = netpkt_dhcp_client(f, sizeof f, NETPKT_DHCP_REQUEST, MAC, 7, IP_ME, IP_GW);
    bool req = false, sid = false;
    for (size_t i = 240; i < len - 42 && b[i] != 255; i += 2u + b[i + 1]) {
        if (b[i] == 50 && b[i + 1] == 4)
            req = be32(b + i + 2) == IP_ME;
        if (b[i] == 54 && b[i + 1] == 4)
            sid = be32(b + i + 2) == IP_GW;
    }
    cr_assert(req && sid, "REQUEST must carry options 50 (address) and 54 (server id)");
    cr_assert_eq(netpkt_dhcp_client(f, 100, NETPKT_DHCP_DISCOVER, MAC, 1, 0, 0), 0u,
                 "a DISCOVER must not be written into a too-small buffer");
    cr_assert_eq(netpkt_dhcp_client(f, sizeof f, NETPKT_DHCP_OFFER, MAC, 1, 0, 0), 0u,
                 "a client does not send OFFERs");
}

/* An OFFER as a server would send it; returns its length. */
static size_t offer(uint8_t *f, uint32_t xid)
{
    memset(f, 0, 600);
    memcpy(f, MAC, 6);
    memcpy(f + 6, GWMAC, 6);
    wr16(f + 12, 0x0800);
    uint8_t *ip = f + 14, *udp = ip + 20, *b = udp + 8;
    uint8_t opts[] = { 53, 1, 2, 54, 4, 10, 0, 2, 2, 1, 4, 255, 255, 255, 0,
                       3, 4, 10, 0, 2, 2, 51, 4, 0, 0, 0x0e, 0x10, 255 };
    size_t blen = 240 + sizeof opts;
    b[0] = 2; b[1] = 1; b[2] = 6;
    wr32(b + 4, xid);
    wr32(b + 16, IP_ME);
    memcpy(b + 28, MAC, 6);
    wr32(b + 236, 0x63825363u);
    memcpy(b + 240, opts, sizeof opts);
    wr16(udp, 67); wr16(udp + 2, 68); wr16(udp + 4, (uint16_t)(8 + blen));
    ip[0] = 0x45; wr16(ip + 2, (uint16_t)(28 + blen)); ip[8] = 64; ip[9] = 17;
    wr32(ip + 12, IP_GW); wr32(ip + 16, 0xffffffffu);
    wr16(ip + 10, netpkt_csum(ip, 20));
    return 14 + 28 + blen;
}

Test(netpkt, dhcp_reply_parse_takes_offers_and_refuses_damage)
{
    uint8_t f[600];
    size_t len = offer(f, 42);
    struct netpkt_dhcp_reply r;
    cr_assert(netpkt_dhcp_reply(f, len, MAC, 42, &r), "a valid OFFER refused");
    cr_assert(r.type == NETPKT_DHCP_OFFER && r.yiaddr == IP_ME && r.server_id == IP_GW &&
              r.mask == 0xffffff00u && r.router == IP_GW && r.lease_s == 3600,
              "OFFER fields: type %d yiaddr %#x server %#x mask %#x router %#x lease %u", r.type,
              r.yiaddr, r.server_id, r.mask, r.router, r.lease_s);
    cr_assert_not(netpkt_dhcp_reply(f, len, MAC, 43, &r), "another transaction's reply accepted");
    cr_assert_not(netpkt_dhcp_reply(f, 14 + 28 + 100, MAC, 42, &r), "a truncated message accepted");
    f[14 + 28 + 240 + 4] = 200;     /* option 54's length runs past the end */
    cr_assert_not(netpkt_dhcp_reply(f, len, MAC, 42, &r), "an option past the end accepted");
    len = offer(f, 42);
    f[14 + 10] ^= 0x55;             /* IP header checksum broken */
    cr_assert_not(netpkt_dhcp_reply(f, len, MAC, 42, &r), "a bad IP checksum accepted");
    len = offer(f, 42);
    f[14] = 0x44;                   /* IHL 4: shorter than the minimum */
    cr_assert_not(netpkt_dhcp_reply(f, len, MAC, 42, &r), "an IHL below 5 accepted");
}

Test(netpkt, icmp_echo_round_trip_and_damage)
{
    uint8_t f[200];
    const char payload[] = "moat ping";
    size_t len = netpkt_icmp_echo(f, sizeof f, MAC, GWMAC, IP_ME, IP_GW, 0x1234, 7, payload,
                                  sizeof payload);
    cr_assert_eq(len, 60u, "a short echo is padded to 60 bytes, got %zu", len);
    uint8_t *ip = f + 14, *c = ip + 20;
    cr_assert_eq(netpkt_csum(ip, 20), 0, "IP checksum");
    cr_assert_eq(netpkt_csum(c, 8 + sizeof payload), 0, "ICMP checksum");
    cr_assert(c[0] == 8 && be16(c + 4) == 0x1234 && be16(c + 6) == 7, "echo request id/seq");
    /* Turn it into the reply a gateway sends. */
    memcpy(f, MAC, 6);
    memcpy(f + 6, GWMAC, 6);
    wr32(ip + 12, IP_GW);
    wr32(ip + 16, IP_ME);
    wr16(ip + 10, 0);
    wr16(ip + 10, netpkt_csum(ip, 20));
    c[0] = 0;
    wr16(c + 2, 0);
    wr16(c + 2, netpkt_csum(c, 8 + sizeof payload));
    uint16_t seq = 0;
    cr_assert(netpkt_icmp_reply(f, len, MAC, IP_ME, IP_GW, 0x1234, &seq) && seq == 7,
              "a valid echo reply refused (seq %u)", seq);
    cr_assert_not(netpkt_icmp_reply(f, len, MAC, IP_ME, IP_GW, 0x9999, &seq), "another id accepted");
    c[9] ^= 1;
    cr_assert_not(netpkt_icmp_reply(f, len, MAC, IP_ME, IP_GW, 0x1234, &seq), "a bad ICMP checksum accepted");
}

Test(netpkt, ip_str_writes_dotted_quads)
{
    static const struct { uint32_t ip; const char *s; } cases[] = {
        { 0x0A00020Fu, "10.0.2.15" }, { 0, "0.0.0.0" }, { 0xFFFFFFFFu, "255.255.255.255" },
        { 0xC0A86401u, "192.168.100.1" }, { 0x01020A63u, "1.2.10.99" },
    };
    for (unsigned i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[16];
        cr_assert_str_eq(netpkt_ip_str(cases[i].ip, buf), cases[i].s);
    }
}
