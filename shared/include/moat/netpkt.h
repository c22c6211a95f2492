/*
 * netpkt.h — the few packets a network client of a Nic cap needs before it
 * has a TCP/IP stack: ARP requests and replies, a DHCP client exchange
 * (DISCOVER/REQUEST out, OFFER/ACK/NAK in) and ICMP echo. Builders write
 * complete Ethernet frames (padded to the 60-byte minimum); parsers treat
 * every frame as hostile (every length and offset checked) and return
 * false for anything that is not exactly what they look for.
 *
 * IPv4 addresses are uint32_t in host byte order (10.0.2.15 = 0x0A00020F).
 */
#ifndef MOAT_NETPKT_H
#define MOAT_NETPKT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NETPKT_FRAME_MAX 1514u
#define NETPKT_ETH_MIN   60u

enum netpkt_dhcp_type {
    NETPKT_DHCP_DISCOVER = 1, NETPKT_DHCP_OFFER = 2, NETPKT_DHCP_REQUEST = 3,
    NETPKT_DHCP_ACK = 5, NETPKT_DHCP_NAK = 6,
};

/* The Internet checksum (RFC 1071) of len bytes. */
uint16_t netpkt_csum(const void *data, size_t len);
/* "a.b.c.d" into buf (>= 16 bytes); returns buf. */
const char *netpkt_ip_str(uint32_t ip, char *buf);

/* Broadcast ARP request "who has target_ip, tell src_ip". Returns the
 * frame length (60). out holds >= NETPKT_ETH_MIN bytes. */
size_t netpkt_arp_request(uint8_t *out, const uint8_t src_mac[6], uint32_t src_ip,
                          uint32_t target_ip);
/* Is f an ARP reply telling us (our_mac/our_ip) where ip is? Sets mac. */
bool netpkt_arp_reply(const uint8_t *f, size_t len, const uint8_t our_mac[6], uint32_t our_ip,
                      uint32_t ip, uint8_t mac[6]);

/* DHCP client message (DISCOVER, or REQUEST for req_ip from server_id),
 * broadcast from mac with transaction id xid. Returns the frame length,
 * 0 when out (cap bytes) is too small or type is not a client message. */
size_t netpkt_dhcp_client(uint8_t *out, size_t cap, enum netpkt_dhcp_type type,
                          const uint8_t mac[6], uint32_t xid, uint32_t req_ip,
                          uint32_t server_id);

struct netpkt_dhcp_reply {
    enum netpkt_dhcp_type type;
    uint32_t xid, yiaddr, server_id, mask, router, lease_s;
};
/* Is f a DHCP server reply (OFFER/ACK/NAK) for mac and xid? Fills out. */
bool netpkt_dhcp_reply(const uint8_t *f, size_t len, const uint8_t mac[6], uint32_t xid,
                       struct netpkt_dhcp_reply *out);

/* ICMP echo request with plen payload bytes. Returns the frame length, 0
 * when it does not fit cap. */
size_t netpkt_icmp_echo(uint8_t *out, size_t cap, const uint8_t src_mac[6],
                        const uint8_t dst_mac[6], uint32_t src_ip, uint32_t dst_ip, uint16_t id,
                        uint16_t seq, const void *payload, size_t plen);
/* Is f an echo reply from from_ip to (our_mac, our_ip) with id and valid
 * IP and ICMP checksums? Sets seq. */
bool netpkt_icmp_reply(const uint8_t *f, size_t len, const uint8_t our_mac[6], uint32_t our_ip,
                       uint32_t from_ip, uint16_t id, uint16_t *seq);

#endif /* MOAT_NETPKT_H */
