/*
 * moatnet.h — TCP/IP for applications over a Nic cap: an lwIP network
 * interface on a libmoat Nic session, with its address from moat's
 * gateway by DHCP (or static). Apps then use lwIP's sockets API
 * (lwip_socket, lwip_bind, lwip_listen, lwip_accept, lwip_recv,
 * lwip_send, lwip_poll, ... with the system's struct sockaddr_in).
 *
 * lwIP is Debian's liblwip 2.1.3, which is built with NO_SYS=0: it runs
 * its own tcpip thread and offers blocking sockets, so apps are plain
 * threaded servers (a thread per connection, or lwip_poll). NO_SYS=1 is
 * not a choice with that build, and we would not take it: it would leave
 * every app to run lwIP's timers and callbacks in its own loop. One lwIP
 * instance per process, hence one moatnet per process.
 *
 * Threads: lwIP's tcpip thread; moatnet's pump thread, the only one that
 * touches the Nic session (libmoat sessions are single-threaded). lwIP
 * hands frames to send to the netif, which copies them into a bounded
 * queue (frameq.h) and wakes the pump through an eventfd; the pump sends
 * them in batches and passes every received frame to lwIP (tcpip_input).
 * The pump also follows the cap's link state (netif link up/down) and
 * renews the DHCP lease at half its time.
 *
 * Received frames go to lwIP in PBUF_RAM buffers, never PBUF_POOL: Debian's
 * liblwip hands out pool buffers smaller than the length they claim for a
 * full-size frame (ASan caught pbuf_take writing 1514 bytes into 616).
 *
 * A restart of the NIC domain is invisible here: the session follows the
 * cap to the new incarnation by itself (libmoat); frames in flight are
 * lost and TCP retransmits them.
 */
#ifndef MOAT_MOATNET_H
#define MOAT_MOATNET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct moatnet_config {
    const char *socket;         /* moat's control socket, NULL: the default */
    const char *cap;            /* a Nic cap, e.g. "vnet0.nic0" */
    unsigned wait_s;            /* wait this long for moat and the cap */
    bool static_ip;             /* else DHCP from moat's gateway */
    uint32_t ip, mask, gw;      /* static_ip: host byte order */
    uint32_t txq_frames;        /* frames lwIP may queue for sending (0: 512) */
};

struct moatnet_info {
    uint8_t mac[6];
    uint16_t mtu;
    uint32_t ip, mask, gw;      /* host byte order */
    uint32_t lease_s;           /* 0 for a static address */
};

struct moatnet_stats {
    uint64_t rx_frames, tx_frames;
    uint64_t rx_no_pbuf;        /* received frames lwIP had no memory for */
    uint64_t tx_queue_full;     /* frames lwIP sent while the queue was full */
    uint64_t link_changes, dhcp_renewals;
    uint64_t session_recoveries;    /* NIC domain restarts followed */
};

/* Open the cap, take an address, bring lwIP up on it and start the pump.
 * 0 with *out filled, or -MOAT_E* with a sentence in err. Once per
 * process. */
int moatnet_start(const struct moatnet_config *cfg, struct moatnet_info *out, char *err,
                  size_t errlen);

/* Frames from somewhere other than a Nic session: make bench's in-process
 * peer runs the same app over a driver in its own process. The pump is
 * the only caller of both functions. */
struct moat_frame;
struct moatnet_link {
    void *ctx;
    /* Take up to n frames to send (copied): how many, or -MOAT_E*. */
    int (*send)(void *ctx, const struct moat_frame *f, size_t n);
    /* Like moat_nic_recv_fd: frames received (their lengths set), 0 as
     * soon as wake_fd is readable, -MOAT_ETIMEDOUT, or -MOAT_E*. */
    int (*recv)(void *ctx, int wake_fd, struct moat_frame *f, size_t max, int timeout_ms);
    uint8_t mac[6];
    uint16_t mtu;
};
/* moatnet_start over link instead of a cap (cfg: static_ip and txq_frames;
 * no DHCP, no link state). */
int moatnet_start_link(const struct moatnet_config *cfg, const struct moatnet_link *link,
                       struct moatnet_info *out, char *err, size_t errlen);
void moatnet_stats(struct moatnet_stats *out);
/* Stop the pump and close the session (lwIP itself cannot be stopped:
 * call this at exit). */
void moatnet_stop(void);

#endif /* MOAT_MOATNET_H */
