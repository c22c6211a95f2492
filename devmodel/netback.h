/*
 * netback.h — moat's network backend: one L2 switch per moat process that
 * joins every NIC port of every domain, a built-in gateway port answering
 * ARP, DHCP and ICMP echo on a configurable IPv4 subnet (like QEMU's user
 * network), an optional host TAP port, and pcap capture of any port.
 *
 * Ports. A device model adds a port with its MAC and an rx callback; it
 * hands every frame its driver transmits to netback_send. The switch
 * learns source MACs per port and forwards a unicast frame to the port
 * that owns the destination (flooding while unknown); broadcast and
 * multicast go to every port but the sender. A frame never returns to the
 * port that sent it. Frames are Ethernet without FCS, 14..NETBACK_FRAME_MAX
 * bytes; anything else is dropped and counted (bad_frames).
 *
 * Port names: device ports are "<domain>.<device>" (vnet0.virtio-net0); the
 * gateway is "gateway", the TAP port "tap". --pcap PORT=FILE names one.
 *
 * Threads. netback_send may be called from any thread, concurrently; the
 * rx callbacks run synchronously in the sending thread and may be called
 * concurrently for different ports but never concurrently for one port.
 * An rx callback must not block for long and may drop (and count) a frame
 * its device has no buffer for. Locking rule for device models: do not
 * hold any lock that your own rx callback takes while calling
 * netback_send (a TX lock and an RX lock, separately, are fine).
 * A netback_send made from inside an rx callback (the gateway's replies,
 * or a device answering at once) is copied and sent after the triggering
 * frame's delivery finished, when the outermost netback_send of that
 * thread returns; never re-entrantly from inside a delivery. At most 64
 * such frames per outermost send (more are dropped: deferred_dropped).
 * An rx callback must not call netback_port_remove.
 *
 * MAC learning: a table of 1024 entries (256 sets of 4) per switch. An
 * entry is refreshed by every frame from its MAC, moves when the MAC
 * shows up on another port, ages out after mac_age_ms without traffic
 * (default 300 s), gives way to the least recently seen entry of its set
 * when full, and is forgotten when its port is removed. Group (multicast,
 * broadcast) and all-zero source MACs are never learned.
 *
 * Host port forwards (net_hostfwd.h): a TCP endpoint of its own, port
 * "hostfwd" at NET + 3, carries host connections to guests.
 *
 * pcap: classic libpcap files (LINKTYPE_ETHERNET, microsecond stamps), one
 * record per frame the port sent or received, flushed per record so the
 * file is readable while moat runs.
 */
#ifndef MOAT_NETBACK_H
#define MOAT_NETBACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NETBACK_PORTS_MAX      32u
#define NETBACK_PORT_NAME_MAX  48u
#define NETBACK_FRAME_MAX      1514u    /* ETH_FRAME_MAX: no jumbo frames */
#define NETBACK_PCAPS_MAX      8u
#define NETBACK_FWDS_MAX       8u

/* A host port forward (net_hostfwd.h): connections to host_ip:host_port
 * are carried to guest_ip:guest_port (0: the first DHCP lease). Host
 * byte order. */
struct netback_hostfwd {
    uint32_t host_ip, guest_ip;
    uint16_t host_port, guest_port;
};

struct netback_config {
    uint32_t net;               /* IPv4 subnet, host byte order (10.0.2.0) */
    uint32_t prefix;            /* prefix length, 8..25 (24): the DHCP pool
                                 * needs at least 64 addresses from net + 15 */
    bool no_gateway;            /* true: no ARP/DHCP/ICMP answers */
    char tap[16];               /* host TAP interface to join, "" = none */
    struct {
        char port[NETBACK_PORT_NAME_MAX];
        char file[256];
    } pcap[NETBACK_PCAPS_MAX];
    unsigned n_pcap;
    uint32_t mac_age_ms;        /* learned MACs expire after this long idle;
                                 * 0 = NETBACK_MAC_AGE_MS */
    struct netback_hostfwd fwd[NETBACK_FWDS_MAX];
    unsigned n_fwd;
};

#define NETBACK_MAC_AGE_MS     300000u

/* Defaults: 10.0.2.0/24, gateway 10.0.2.2 (MAC 52:55:0a:00:02:02), DHCP
 * leases from 10.0.2.15, no TAP, no pcap, learned MACs age out after 300 s. */
void netback_config_default(struct netback_config *cfg);
/* Parse "A.B.C.D/N" into cfg (net, prefix); false + err (a sentence
 * saying what is wrong and what to give) when malformed, when N is
 * outside 8..25 or when host bits are set. */
bool netback_parse_subnet(const char *s, struct netback_config *cfg, char *err, size_t errlen);
/* Parse "PORT=FILE" and append it to cfg; false + err when malformed,
 * full, or when the port or the file is already captured. */
bool netback_parse_pcap(const char *s, struct netback_config *cfg, char *err, size_t errlen);
/* Parse "tcp:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT" (QEMU's hostfwd
 * syntax; an empty HOSTADDR is 127.0.0.1, an empty GUESTADDR the first
 * DHCP lease) and append it to cfg; false + err when malformed, full, or
 * when the host address and port are already forwarded. */
bool netback_parse_hostfwd(const char *s, struct netback_config *cfg, char *err, size_t errlen);

struct netback;
struct netback_port;

/* (Re)configure the process-wide switch: call once at start, before any
 * port exists. Opens pcap files (a named port that does not exist yet is
 * captured once it is added), opens the TAP device and starts its reader
 * thread. False + a full sentence in err (e.g. the TAP cannot be opened:
 * needs CAP_NET_ADMIN and an existing interface or the right to create it). */
bool netback_setup(const struct netback_config *cfg, char *err, size_t errlen);
/* The process-wide switch, created with the defaults on first use. */
struct netback *netback_get(void);
/* Stop the TAP thread, close pcap files, forget every port (at exit, and
 * between unit tests; no port may be in use). The next netback_get or
 * netback_setup creates a fresh switch. */
void netback_shutdown(void);

/* Gateway addresses in network terms (host byte order), for tests. */
uint32_t netback_gateway_ip(const struct netback *nb);
void netback_gateway_mac(const struct netback *nb, uint8_t mac[6]);
/* The first DHCP lease address (gateway + 13, like QEMU's .15). */
uint32_t netback_dhcp_first(const struct netback *nb);

/* Receives a frame the switch delivers to this port. */
typedef void (*netback_rx_fn)(void *ctx, const void *frame, size_t len);

/* Join the switch. name is unique among live ports; mac may be NULL (the
 * switch learns it). NULL + err when the name is taken or the switch is
 * full. */
struct netback_port *netback_port_add(struct netback *nb, const char *name, const uint8_t mac[6],
                                      netback_rx_fn rx, void *ctx, char *err, size_t errlen);
/* Leave the switch; returns once no rx callback for it runs any more and
 * no send from it is in flight (frames queued from rx callbacks
 * included). Its learned MACs are forgotten. NULL is a no-op. Not from
 * inside an rx callback. */
void netback_port_remove(struct netback_port *p);
/* Link state: while down the port neither sends nor receives (frames are
 * dropped and counted). Ports start up. */
void netback_port_link(struct netback_port *p, bool up);

/* A frame the port's device transmitted: learn, capture, forward. False
 * when the frame was dropped here (bad length, link down). p must be a
 * live port (not being removed by another thread). */
bool netback_send(struct netback_port *p, const void *frame, size_t len);

struct netback_port_stats {
    uint64_t sent_frames, sent_bytes;       /* frames from the port into the switch */
    uint64_t recv_frames, recv_bytes;       /* frames the switch delivered to it */
    uint64_t dropped_link;                  /* dropped while its link was down */
    uint64_t bad_frames;                    /* refused: length outside 14..1514 */
};
void netback_port_stats(const struct netback_port *p, struct netback_port_stats *out);

struct netback_stats {
    uint64_t forwarded, flooded;            /* unicast to a known port; copies sent by flooding */
    uint64_t unknown_dropped;               /* unicast to nobody (no other port, or
                                             * addressed to the sender itself) */
    uint64_t arp_replies, dhcp_offers, dhcp_acks, dhcp_naks, icmp_replies;
    uint64_t gateway_ignored;               /* frames delivered to the gateway (floods
                                             * included) it did not answer: malformed,
                                             * for another address, unsupported */
    uint64_t pcap_records, pcap_errors;
    uint64_t tap_in, tap_out, tap_errors, tap_down;
    uint64_t mac_learned;                   /* new MAC table entries */
    uint64_t mac_moves;                     /* a live MAC seen on another port */
    uint64_t deferred_dropped;              /* sends from rx callbacks over the limit */
};
void netback_stats(const struct netback *nb, struct netback_stats *out);

#endif /* MOAT_NETBACK_H */
