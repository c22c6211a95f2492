/*
 * net_hostfwd.h — host port forwards into the switch's subnet, like
 * QEMU's hostfwd: moat listens on a host TCP address (127.0.0.1:8080) and
 * carries each connection to a guest address and port (10.0.2.15:80), so
 * `curl http://127.0.0.1:8080/` reaches an app on a Nic cap without root.
 *
 * The guest side is a TCP endpoint on the switch: lwIP (Debian's liblwip,
 * its tcpip thread, once per process) on a port of its own, "hostfwd",
 * with the address NET + 3 and MAC 52:55 + that address. It answers ARP
 * for itself; guests see connections from NET + 3. Every frame it gets is
 * hostile input to lwIP, which parses it.
 *
 * Threads: one listener thread polls every host listener; each accepted
 * connection gets two threads (host to guest, guest to host), at most
 * NET_HOSTFWD_CONNS connections at once (more are closed at once and
 * counted). A guest that does not accept within 5 s closes the host
 * connection (counted as refused, logged once per forward per minute).
 *
 * Locks, in order: h->lock (the connection table; stop and a connection
 * that finds the stop begun shut lwIP sockets under it), the hostfwd
 * port's delivery mutex (its rx hands the frame in under the next), lwIP's
 * core lock (lwIP sends into the switch with it held; the switch defers
 * sends made inside a delivery), then the switch's own locks. Nothing
 * takes h->lock under the core lock or a delivery mutex.
 */
#ifndef MOAT_NET_HOSTFWD_H
#define MOAT_NET_HOSTFWD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "netback.h"

#define NET_HOSTFWD_CONNS       64u
#define NET_HOSTFWD_HOST_OFFSET 3u      /* the endpoint's address: net + 3 */
#define NET_HOSTFWD_CONNECT_MS  5000

struct net_hostfwd;

/* Listen on every rule's host address and join nb as port "hostfwd"
 * (address net + 3 in the subnet of mask).
 * guest_ip 0 in a rule means first_lease. NULL + a full sentence in err
 * (an address in use, lwIP refused the interface). */
struct net_hostfwd *net_hostfwd_start(struct netback *nb, uint32_t net, uint32_t mask,
                                      const struct netback_hostfwd *rules, unsigned n,
                                      uint32_t first_lease, char *err, size_t errlen);
/* Close the listeners and every connection, leave the switch, remove the
 * interface from lwIP. NULL is a no-op. */
void net_hostfwd_stop(struct net_hostfwd *h);

struct net_hostfwd_counters {
    uint64_t accepted;          /* host connections taken */
    uint64_t connected;         /* ... that reached the guest */
    uint64_t refused;           /* the guest refused or did not answer */
    uint64_t over_limit;        /* closed at once: NET_HOSTFWD_CONNS busy */
    uint64_t bytes_to_guest, bytes_to_host;
    uint64_t no_pbuf;           /* frames from the switch lwIP had no memory for */
};
void net_hostfwd_counters(const struct net_hostfwd *h, struct net_hostfwd_counters *out);

#endif /* MOAT_NET_HOSTFWD_H */
