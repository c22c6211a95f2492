/*
 * lwipopts.h — lwIP's configuration for the bare app domains: the raw API
 * on one thread (NO_SYS: the domain's run loop calls lwIP, no locks, no
 * OS), IPv4 with DHCP, ARP, ICMP, UDP (for DHCP) and TCP; lwIP's own heap
 * and pools in the image (no malloc). Sized for a server sending bulk
 * data to a few clients over one Nic session (lwip_netif.h): a send
 * buffer of 32 segments, and receive pbufs for the session's receive
 * buffers. Statistics on (the app reports TCP's retransmissions).
 * Assertions stay on: one fails as a panic of the domain (arch/cc.h).
 */
#ifndef MOAT_LWIPOPTS_H
#define MOAT_LWIPOPTS_H

#define NO_SYS                  1
#define SYS_LIGHTWEIGHT_PROT    0
#define LWIP_SOCKET             0
#define LWIP_NETCONN            0
#define LWIP_NETIF_API          0

#define LWIP_IPV4               1
#define LWIP_IPV6               0
#define LWIP_ARP                1
#define LWIP_ETHERNET           1
#define LWIP_ICMP               1
#define LWIP_UDP                1
#define LWIP_TCP                1
#define LWIP_DHCP               1
#define LWIP_DHCP_DOES_ACD_CHECK 0
#define LWIP_AUTOIP             0
#define LWIP_IGMP               0
#define LWIP_DNS                0
#define LWIP_RAW                0
#define IP_REASSEMBLY           0
#define IP_FRAG                 0
#define LWIP_NETIF_STATUS_CALLBACK 1
#define LWIP_NETIF_LINK_CALLBACK   1
#define LWIP_NETIF_HOSTNAME     1

#define MEM_ALIGNMENT           8
#define MEM_SIZE                (256 * 1024)
#define MEMP_NUM_PBUF           64
#define MEMP_NUM_TCP_PCB        8
#define MEMP_NUM_TCP_PCB_LISTEN 2
#define MEMP_NUM_UDP_PCB        4
#define PBUF_POOL_SIZE          64
#define PBUF_POOL_BUFSIZE       1600        /* a whole frame in one pbuf */

#define TCP_MSS                 1460
#define TCP_WND                 (16 * TCP_MSS)
#define TCP_SND_BUF             (32 * TCP_MSS)
#define TCP_SND_QUEUELEN        (4 * TCP_SND_BUF / TCP_MSS)
#define MEMP_NUM_TCP_SEG        TCP_SND_QUEUELEN
#define TCP_LISTEN_BACKLOG      1
#define LWIP_TCP_KEEPALIVE      1
#define TCP_QUEUE_OOSEQ         1

#define LWIP_CHKSUM_ALGORITHM   3
#define LWIP_STATS              1
#define LWIP_STATS_DISPLAY      0
#define MIB2_STATS              1       /* the TCP retransmission count */

/* Initial sequence numbers keyed per connection (RFC 6528), not lwIP's
 * counter: lwip_port.c. */
#define LWIP_HOOK_FILENAME      "lwip_hooks.h"
#define LWIP_HOOK_TCP_ISN       moat_lwip_tcp_isn

#endif /* MOAT_LWIPOPTS_H */
