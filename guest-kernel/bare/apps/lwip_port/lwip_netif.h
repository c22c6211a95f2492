/*
 * lwip_netif.h — an lwIP network interface over a Nic cap another domain
 * serves, for the bare app domains: frames through the session client
 * (../session_client.h), each copied between the session's data area and
 * lwIP's pbufs. LN_RX_BUFS receive buffers stay posted (and are posted
 * again after a server restart); a frame to send takes one of LN_TX_BUFS
 * buffers, or is refused with ERR_MEM when all are in flight (TCP keeps
 * the segment and sends it again; the app calls lwip_nic_tx_space to
 * learn when to push). A frame sent while the server restarts is dropped
 * and counted: TCP retransmits it. While the server stays down (its
 * breaker open) receive buffers that failed wait, and are posted again
 * once a restart from the console serves the session again. A received frame longer than the cap's
 * largest, or with no pbuf free, is dropped and counted.
 *
 * The address comes by DHCP (lwIP's client); lwIP's timers run from the
 * poller lwip_nic_open registers. One instance per domain, on the
 * domain's one thread.
 */
#ifndef BARE_APPS_LWIP_NETIF_H
#define BARE_APPS_LWIP_NETIF_H

#include <stdbool.h>
#include <stdint.h>
#include "lwip/netif.h"
#include "../session_client.h"

#define LN_RX_BUFS 8u
#define LN_TX_BUFS (SC_INFLIGHT - LN_RX_BUFS)
#define LN_BUF 2048u                    /* a buffer: at least the cap's largest frame */

struct lwip_nic {
    struct sclient c;
    struct netif netif;
    const char *name;                   /* the domain's, for its log lines */
    uint32_t slot_what[SC_INFLIGHT];    /* RX buffer i, or LN_WHAT_TX | TX buffer j */
    bool rx_unposted[LN_RX_BUFS];       /* failed (server down): posted again from the poller */
    bool tx_busy[LN_TX_BUFS];
    bool tx_freed;                      /* a TX buffer came back since the last ask */
    uint64_t tx_frames, tx_full, tx_dropped, rx_frames, rx_dropped, rx_bad;
};

/* Open a session on the Nic cap "<domain>.<cap>" (waiting up to
 * timeout_ns for its server), bring lwIP and the interface up and start
 * DHCP. False (logged) when the cap cannot be had or its frames do not
 * fit LN_BUF. */
bool lwip_nic_open(struct lwip_nic *n, const char *cap, uint64_t timeout_ns);
/* True once DHCP has bound an address. */
bool lwip_nic_up(const struct lwip_nic *n);
/* True (once) when a send buffer came back since the last call: time to
 * push what TCP holds (tcp_output). */
bool lwip_nic_tx_space(struct lwip_nic *n);

#endif /* BARE_APPS_LWIP_NETIF_H */
