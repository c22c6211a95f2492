/*
 * net_tap.h — the switch's optional host TAP port "tap" (netback.h).
 *
 * net_tap_open opens /dev/net/tun with IFF_TAP | IFF_NO_PI for an
 * interface name: an existing persistent tap device the user may open
 * (created once with `ip tuntap add dev NAME mode tap user $USER`), or a
 * new one when the process has CAP_NET_ADMIN. It joins the switch as port
 * "tap" and starts a reader thread that hands every frame the host sends
 * on the interface to netback_send; frames the switch delivers to the port
 * are written to the interface. Frames the host sends that are longer than
 * 1514 bytes are dropped by the switch (bad_frames of port "tap").
 *
 * Errors: open failures return NULL and a full sentence in err; I/O
 * errors while running are counted (tap_errors) and the first is logged.
 * Frames for the host while the interface is down are dropped and counted
 * (tap_down), the first with a line saying how to bring it up.
 */
#ifndef MOAT_NET_TAP_H
#define MOAT_NET_TAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct netback;
struct net_tap;

/* Open the tap device ifname (1..15 characters) in non-blocking mode;
 * returns the fd, or -1 + err (a full sentence saying what failed and
 * what to do). Exposed for tests. */
int net_tap_open_fd(const char *ifname, char *err, size_t errlen);

/* Open ifname, join nb as port "tap" and start the reader thread. */
struct net_tap *net_tap_open(struct netback *nb, const char *ifname, char *err, size_t errlen);
/* Stop the reader thread (promptly: it also polls a wake eventfd), leave
 * the switch and close the device. NULL is a no-op. */
void net_tap_close(struct net_tap *t);

struct net_tap_counters {
    uint64_t in;                /* frames read from the host and offered to the switch */
    uint64_t out;               /* frames written to the host */
    uint64_t errors;            /* failed reads and writes */
    uint64_t down;              /* frames dropped: the interface was down */
};
void net_tap_counters(const struct net_tap *t, struct net_tap_counters *out);

#endif /* MOAT_NET_TAP_H */
