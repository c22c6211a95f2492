/*
 * dhcp.h — a DHCP client exchange (DISCOVER, OFFER, REQUEST, ACK; RFC
 * 2131) over a Nic session, before any IP stack runs on it: what
 * moat-netdemo does by hand and what moatnet does before lwIP takes the
 * interface (Debian's liblwip is built without its own DHCP client).
 * Frames that are not the answer are ignored; every reply is parsed as
 * hostile (netpkt.h).
 */
#ifndef MOAT_NET_DHCP_H
#define MOAT_NET_DHCP_H

#include <stdint.h>
#include "moat/libmoat.h"
#include "moat/netpkt.h"

struct dhcp_lease {
    uint32_t ip, mask, router, server, lease_s;     /* host byte order */
    uint32_t xid;
};

/* DISCOVER then REQUEST the offer, each step sent up to tries times and
 * awaited step_ms. 0 with *out filled, or -MOAT_ETIMEDOUT (no answer),
 * -MOAT_EPROTO (a NAK or an answer of the wrong type), -MOAT_E* from the
 * session. offer (may be NULL) is called with the OFFER before the REQUEST. */
int dhcp_obtain(struct moat_session *s, const uint8_t mac[6], unsigned step_ms, unsigned tries,
                void (*offer)(const struct netpkt_dhcp_reply *r, void *ctx), void *ctx,
                struct dhcp_lease *out);

#endif /* MOAT_NET_DHCP_H */
