/*
 * vnet.h — the virtio-net driver domain's state and the calls between its
 * files:
 *   vnet_main.c       arguments, finding the function, choosing the
 *                     transport, bring-up (§3.1.1), serving the Nic cap
 *   vnet_io.c         the data path: transmit, receive, the poller,
 *                     interrupt suppression, configuration changes, stats
 *   vnet_modern.c, vnet_legacy.c   the transports (vnet_transport.h)
 *   vnet_ring.c, vnet_proto.c      pure logic (unit-tested on the host)
 *
 * Life cycle: bring-up runs once in domain_main; then the domain is LIVE
 * until it dies. There is no in-domain recovery: DEVICE_NEEDS_RESET, a
 * device that breaks a ring rule, or a refusal during bring-up is a
 * dd_panic with the reason, and the supervisor restarts the domain with a
 * fresh device reset (DESIGN §6). Frames in flight are lost then, which
 * the Nic contract allows.
 *
 * Error policy: device input (used elements, frame lengths, header
 * fields) is checked before use: what breaks the ring protocol is fatal,
 * a malformed frame is counted and dropped.
 */
#ifndef VNET_DRV_H
#define VNET_DRV_H

#include "dd.h"
#include "vnet_proto.h"
#include "vnet_ring.h"
#include "vnet_transport.h"

#define VNET_BUF_SIZE     2048u     /* one RX or TX buffer: header + 1514 fit */
#define VNET_BUFS_MAX     32768u
#define VNET_RESET_NS     ((uint64_t)1000000000)    /* reset must finish within 1 s */
#define VNET_CHECK_NS     ((uint64_t)250000000)     /* device status checked this often */

_Static_assert(VNET_BUF_SIZE >= VIRTIO_NET_HDR_LEN_MRG + ETH_FRAME_MAX, "a buffer holds a frame");

struct vnet_cfg {
    char name[MOAT_CAP_NAME_MAX];   /* cap suffix */
    uint32_t rx_bufs, tx_bufs;      /* wanted; bounded by the queue sizes */
    uint32_t sessions;              /* moat_nic_info.queues */
    struct vnet_wants wants;
    uint64_t stats_ns;              /* counter line interval, 0 = never */
    uint64_t spin_ns;               /* keep polling this long after work */
    bool wild_rx;                   /* test: receive buffers outside every window */
    uint64_t tx_timeout_ns;         /* transmit queue stuck this long: fail-stop */
};

/* Counters since the domain started. */
struct vnet_stats {
    uint64_t rx_frames, rx_bytes;   /* handed to dd_nic_rx */
    uint64_t rx_merged;             /* of them, assembled from several buffers */
    uint64_t rx_bad[VNET_RX_BADS];  /* dropped, by reason */
    uint64_t tx_frames, tx_bytes;   /* taken from the platform */
    uint64_t tx_busy;               /* refusals: no TX buffer free */
    uint64_t tx_bad_len;            /* frames outside 14..1514 (dropped) */
    uint64_t kicks[2];              /* notifications written, per queue */
    uint64_t kicks_saved[2];        /* publishes the device did not need to hear of */
    uint64_t sleeps;                /* times the poller armed interrupts and went idle */
    uint64_t rechecks;              /* ... and found work in the re-check instead */
    uint64_t config_events;         /* configuration-change interrupts */
};

/* A slab of equal buffers in one DMA allocation. */
struct vnet_bufs {
    struct dd_dma mem;
    uint32_t count;
};

struct vnet {
    struct vnet_cfg cfg;
    bool live;                      /* DRIVER_OK set and serving */
    struct dd_dev *dev;
    struct dd_dev_info info;
    struct vnet_tp tp;
    const struct vnet_transport_ops *ops;

    uint64_t offered, features;
    uint32_t hdr_len;               /* 10 or 12 */
    bool split_hdr;                 /* legacy without ANY_LAYOUT */
    bool mrg;                       /* MRG_RXBUF */
    bool has_status;                /* STATUS: link state is real */
    uint8_t mac[6];
    bool link_up;

    struct vnet_vq rxq, txq;
    struct vnet_bufs rxb, txb;
    uint32_t rx_descs, tx_descs;    /* descriptors per buffer (2 with split_hdr) */
    struct vnet_rx_asm rasm;
    uint16_t *tx_free;              /* [txb.count] stack of free TX buffers */
    uint32_t tx_free_top;
    bool tx_blocked;                /* tx refused since the last dd_nic_tx_ready */
    bool tx_since_poll;             /* vnet_tx took frames since the last poll */
    uint64_t tx_completed;          /* transmit chains the device gave back */
    uint64_t tx_completed_seen;     /* ... at the last check */
    uint64_t tx_stall_ns;           /* since when none came back with some out, 0 */

    struct dd_nic *nic;
    bool irqs_armed;                /* the poller went idle with interrupts on */
    uint64_t next_check_ns, next_stats_ns;
    bool rx_bad_logged[VNET_RX_BADS];
    struct vnet_stats st, st_logged;
};

/* ---- vnet_main.c ---- */
/* Parse args, find the function, bring it up, serve the Nic cap, register
 * the pollers and hooks: everything but dd_ready and the run loop
 * (domain_main adds those; make bench's in-process peer runs its own). */
void vnet_start(struct vnet *v, const char *args);

/* ---- vnet_io.c ---- */
/* dd_nic_ops.tx / .tx_flush; ctx is the vnet. */
bool vnet_tx(void *ctx, const void *frame, uint32_t len);
void vnet_tx_flush(void *ctx);
/* The poller (register after dd_nic_serve); true if it did work. */
bool vnet_poll(void *ctx);
/* The idle hook: enable the interrupts that must wake the domain, true
 * when the rings moved meanwhile. */
bool vnet_idle(void *ctx);
/* Transport hook: a configuration change (link, DEVICE_NEEDS_RESET). */
void vnet_config_event(void *ctx);
/* Post every receive buffer, publish and notify (after DRIVER_OK). */
void vnet_rx_fill(struct vnet *v);
/* Panic if the device status says it needs a reset or was reset under us. */
void vnet_check_status(struct vnet *v);
/* Re-read the link state; report a change to the platform. */
void vnet_link_update(struct vnet *v);
/* Log a counter line when anything changed (or always when force). */
void vnet_stats_log(struct vnet *v, bool force);

/* ---- vnet_fault.c ---- */
/* Offer the device faults (wild DMA, a corrupt avail index, an exit with
 * frames in flight) to the platform's fault injection. */
void vnet_fault_hook(struct vnet *v);

#endif /* VNET_DRV_H */
