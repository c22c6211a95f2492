/*
 * net_gateway.h — the switch's built-in gateway (netback.h), and the pure
 * packet helpers it is made of. Like QEMU's user network, the gateway
 * answers on subnet NET/N (default 10.0.2.0/24):
 *   - ARP requests for its address, gateway = NET + 2, with its MAC
 *     52:55 + the four bytes of that address (52:55:0a:00:02:02);
 *   - DHCP (RFC 2131, options RFC 2132): DISCOVER -> OFFER, REQUEST ->
 *     ACK for the client's lease or NAK; leases by client MAC from
 *     NET + 15 upward, stable per MAC for the life of the process;
 *   - ICMP echo requests to its address -> echo reply.
 * It does not route, answer DNS or forward anything else.
 *
 * Hostile input: frames come from guests. Every parser bounds-checks
 * every field against the frame it was given (IP header length, total
 * length, fragments, UDP length, the DHCP option walk); a frame that does
 * not parse, or asks for something the gateway does not do, is ignored
 * (NET_GW_IGNORED) and never read past its end.
 *
 * Addresses (uint32_t) are IPv4 in host byte order. Builders write into
 * a caller buffer and return the frame length, or 0 when cap is too small.
 * Frames shorter than 60 bytes are zero-padded to 60 (ETH_ZLEN, no FCS).
 *
 * Threads: a gateway object is not thread-safe; the switch calls it only
 * from the gateway port's rx callback, which it never runs concurrently.
 */
#ifndef MOAT_NET_GATEWAY_H
#define MOAT_NET_GATEWAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NET_ETH_ALEN       6u
#define NET_ETH_HLEN       14u
#define NET_ETH_ZLEN       60u          /* minimum frame without FCS */
#define NET_ETH_FRAME_MAX  1514u
#define NET_ETHERTYPE_IPV4 0x0800u
#define NET_ETHERTYPE_ARP  0x0806u
#define NET_IP_PROTO_ICMP  1u
#define NET_IP_PROTO_UDP   17u
#define NET_ARP_LEN        28u          /* Ethernet/IPv4 ARP body (RFC 826) */
#define NET_ARP_REQUEST    1u
#define NET_ARP_REPLY      2u
#define NET_ICMP_ECHO_REPLY   0u
#define NET_ICMP_ECHO_REQUEST 8u
#define NET_DHCP_SERVER_PORT  67u
#define NET_DHCP_CLIENT_PORT  68u
#define NET_DHCP_FIXED_LEN    236u      /* BOOTP header up to options (RFC 2131 §2) */
#define NET_DHCP_MAGIC        0x63825363u  /* 99.130.83.99 (RFC 2131 §3) */
#define NET_DHCP_MIN_LEN      300u      /* BOOTP messages are at least 300 bytes */
#define NET_DHCP_FLAG_BROADCAST 0x8000u

/* DHCP option codes (RFC 2132) and message types (option 53, §9.6). */
enum net_dhcp_option {
    NET_DHCP_OPT_PAD = 0,
    NET_DHCP_OPT_SUBNET_MASK = 1,
    NET_DHCP_OPT_ROUTER = 3,
    NET_DHCP_OPT_DNS = 6,
    NET_DHCP_OPT_REQUESTED_IP = 50,
    NET_DHCP_OPT_LEASE_TIME = 51,
    NET_DHCP_OPT_OVERLOAD = 52,
    NET_DHCP_OPT_MSG_TYPE = 53,
    NET_DHCP_OPT_SERVER_ID = 54,
    NET_DHCP_OPT_END = 255,
};
enum net_dhcp_msg_type {
    NET_DHCP_DISCOVER = 1,
    NET_DHCP_OFFER = 2,
    NET_DHCP_REQUEST = 3,
    NET_DHCP_DECLINE = 4,
    NET_DHCP_ACK = 5,
    NET_DHCP_NAK = 6,
    NET_DHCP_RELEASE = 7,
    NET_DHCP_INFORM = 8,
};

#define NET_GW_LEASE_SECONDS 86400u
#define NET_GW_POOL_MAX      256u       /* leases at most (fewer in a small subnet) */
#define NET_GW_POOL_MIN      64u        /* a subnet must leave room for this many */
#define NET_GW_HOST_GATEWAY  2u         /* gateway = net + 2 */
#define NET_GW_HOST_DHCP     15u        /* first lease = net + 15 */

/* ---- checksums (RFC 1071) ---------------------------------------------- */

/* Add data[0..len) as big-endian 16-bit words to a running sum (an odd
 * last byte is padded with zero). Chain calls, then fold. */
uint32_t net_csum_add(uint32_t sum, const void *data, size_t len);
/* Fold a running sum into the one's-complement checksum field value. */
uint16_t net_csum_fold(uint32_t sum);
/* The checksum of one buffer: net_csum_fold(net_csum_add(0, data, len)).
 * Over a buffer that holds a correct checksum field the result is 0. */
uint16_t net_csum(const void *data, size_t len);

/* ---- parsed views (pointers into the caller's frame) ------------------- */

struct net_ipv4_view {
    uint32_t src, dst;
    uint8_t proto, ttl;
    size_t hdr_len;             /* IHL * 4 */
    const uint8_t *hdr;         /* IP header */
    const uint8_t *payload;     /* after the header, up to total length */
    size_t payload_len;
};
/* Parse an Ethernet frame carrying IPv4: version 4, IHL >= 5, header and
 * total length inside the frame (trailing padding allowed), header
 * checksum correct, not a fragment. False otherwise. */
bool net_ipv4_parse(const uint8_t *frame, size_t len, struct net_ipv4_view *ip);

struct net_udp_view {
    uint16_t sport, dport;
    const uint8_t *payload;
    size_t payload_len;         /* UDP length - 8 */
};
/* Parse the UDP header of ip: UDP length 8..payload_len, checksum correct
 * when non-zero. False otherwise. */
bool net_udp_parse(const struct net_ipv4_view *ip, struct net_udp_view *udp);

/* A DHCP message, either parsed or to build. Options not present are 0. */
struct net_dhcp {
    uint8_t op;                 /* 1 BOOTREQUEST, 2 BOOTREPLY */
    uint32_t xid;
    uint16_t secs, flags;
    uint32_t ciaddr, yiaddr, siaddr, giaddr;
    uint8_t chaddr[NET_ETH_ALEN];
    uint8_t msg_type;           /* enum net_dhcp_msg_type, 0 = absent */
    uint32_t server_id;         /* 54 */
    uint32_t requested_ip;      /* 50 */
    uint32_t lease_time;        /* 51 */
    uint32_t subnet_mask;       /* 1 */
    uint32_t router;            /* 3, first address */
    uint32_t dns;               /* 6, first address */
};
/* Parse a DHCP message (the UDP payload): length >= 240, Ethernet htype
 * and hlen, the magic cookie, and an option walk that stays inside p
 * (each option's length byte and body must be present; a fixed-size
 * option with a short body is malformed). False when malformed. */
bool net_dhcp_parse(const uint8_t *p, size_t len, struct net_dhcp *d);

/* ---- builders ---------------------------------------------------------- */

/* Ethernet/IPv4 ARP frame (RFC 826): eth_dst <- sha, operation oper. */
size_t net_arp_build(uint8_t *out, size_t cap, const uint8_t eth_dst[6], uint16_t oper,
                     const uint8_t sha[6], uint32_t spa, const uint8_t tha[6], uint32_t tpa);
/* Ethernet + IPv4 (IHL 5, TTL 64, DF clear, id 0, checksum) around
 * payload[0..plen). */
size_t net_ipv4_build(uint8_t *out, size_t cap, const uint8_t eth_dst[6], const uint8_t eth_src[6],
                      uint32_t src, uint32_t dst, uint8_t proto, const void *payload, size_t plen);
/* Ethernet + IPv4 + UDP with the UDP checksum over the pseudo-header. */
size_t net_udp_build(uint8_t *out, size_t cap, const uint8_t eth_dst[6], const uint8_t eth_src[6],
                     uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport,
                     const void *payload, size_t plen);
/* The BOOTP body of d (padded to 300 bytes) with options 53, 54, 51, 1,
 * 3, 6 and 50 for each non-zero field, then END. Returns its length. */
size_t net_dhcp_build(uint8_t *out, size_t cap, const struct net_dhcp *d);
/* Echo reply to the echo request in ip (parsed from frame): to the
 * request's source MAC and address, from mac and the request's
 * destination address, same identifier, sequence and data, IHL 5, fresh
 * checksums. 0 when ip does not hold a well-formed echo request (ICMP
 * checksum included) or cap is too small. */
size_t net_icmp_echo_reply_build(uint8_t *out, size_t cap, const uint8_t *frame,
                                 const struct net_ipv4_view *ip, const uint8_t mac[6]);

/* ---- the gateway ------------------------------------------------------- */

enum net_gw_verdict {
    NET_GW_IGNORED,             /* not answered: malformed, not for us, unsupported */
    NET_GW_ARP_REPLY,
    NET_GW_DHCP_OFFER,
    NET_GW_DHCP_ACK,
    NET_GW_DHCP_NAK,
    NET_GW_ICMP_REPLY,
};

struct net_gateway;

/* A gateway for net/prefix (net has no host bits; prefix 8..25 so the
 * pool holds at least NET_GW_POOL_MIN leases). NULL when invalid or out
 * of memory. */
struct net_gateway *net_gateway_new(uint32_t net, uint32_t prefix);
/* Free gw (NULL is a no-op); its leases are forgotten. */
void net_gateway_free(struct net_gateway *gw);
/* The gateway's own address (net + 2) and MAC. */
uint32_t net_gateway_ip(const struct net_gateway *gw);
/* The MAC of a gateway at ip: 52:55 followed by ip's four bytes. */
void net_gateway_mac_of(uint32_t ip, uint8_t mac[6]);
void net_gateway_mac(const struct net_gateway *gw, uint8_t mac[6]);
/* The first lease address (net + 15). */
uint32_t net_gateway_dhcp_first(const struct net_gateway *gw);
/* Leases the pool holds (at most NET_GW_POOL_MAX). */
unsigned net_gateway_pool_size(const struct net_gateway *gw);

/* Handle one frame delivered to the gateway. When the verdict is not
 * NET_GW_IGNORED the reply frame is in reply[0..*reply_len) (cap must be
 * at least NET_ETH_FRAME_MAX). */
enum net_gw_verdict net_gateway_input(struct net_gateway *gw, const void *frame, size_t len,
                                      uint8_t *reply, size_t cap, size_t *reply_len);

#endif /* MOAT_NET_GATEWAY_H */
