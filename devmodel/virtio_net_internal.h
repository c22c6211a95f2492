/*
 * virtio_net_internal.h — state of one virtio-net device model, shared by
 * virtio_net.c (options, creation, lifecycle, interrupts, failure
 * handling), virtio_net_pci.c (the modern and legacy register files,
 * capabilities, ioeventfds) and virtio_net_io.c (worker, transmit,
 * receive). Not a public interface.
 *
 * Threads and locks. Three kinds of thread touch a device: the domain's
 * vCPU (register accesses), the device's worker (the transmit queue), and
 * whichever thread delivers a frame from the switch (the receive callback:
 * another device's worker, the TAP reader, or this device's own worker
 * when the gateway answers it).
 *   lock     registers, device status, the transmit queue, the worker's
 *            lifecycle. The worker holds it while it processes a batch,
 *            including netback_send (allowed: the rx callback never takes
 *            it).
 *   rx_lock  the receive queue and what the receive path reads of the
 *            device (ready, quiesced, features). The rx callback takes
 *            only this one. Register accesses take lock, then rx_lock, so
 *            either one is enough to read what registers change.
 *   irq_lock ISR, MSI-X vector numbers and the INTx level (any thread).
 * Order: lock -> rx_lock -> irq_lock -> bus irq_lock; the broker's lock
 * is a leaf. Never join the worker while holding rx_lock: its
 * netback_send may deliver back into this device's rx callback.
 *
 * needs_reset and the queues' stopped flags are atomics: the transmit and
 * receive paths raise them under different locks; a device reset (both
 * locks) clears them.
 *
 * Guest memory is mapped per batch through the broker (pci_dma_map),
 * never across a sleep.
 */
#ifndef MOAT_VIRTIO_NET_INTERNAL_H
#define MOAT_VIRTIO_NET_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include "moat/virtio_regs.h"
#include "netback.h"
#include "pci.h"
#include "virtio_net.h"
#include "virtq.h"
#include "dev_worker.h"

#define VNET_NQ           2u        /* queue 0 receive, queue 1 transmit */
#define VNET_TX_BATCH     64u       /* chains per worker pass */
/* Receive chains one frame may fill with MRG_RXBUF: each buffer holds at
 * least a header (§5.1.6.3.1), so a full frame needs at most this many. */
#define VNET_RX_BUFS_MAX  ((VIRTIO_NET_HDR_LEN_MRG + ETH_FRAME_MAX) / VIRTIO_NET_HDR_LEN_MRG + 1u)

struct vnet_counters {
#define VNET_COUNTER_FIELD(name) _Atomic uint64_t name;
    VNET_STATS_FIELDS(VNET_COUNTER_FIELD)
#undef VNET_COUNTER_FIELD
};

#define VNET_COUNT(v, field) atomic_fetch_add_explicit(&(v)->st.field, 1, memory_order_relaxed)
#define VNET_ADD(v, field, n) \
    atomic_fetch_add_explicit(&(v)->st.field, (uint64_t)(n), memory_order_relaxed)

struct vnet_queue {
    struct virtq vq;            /* cursors, mapped rings while open */
    bool enabled;               /* modern queue_enable / legacy PFN != 0 */
    uint16_t size;              /* modern queue_size (the driver may lower it) */
    uint64_t desc, driver, device;  /* modern queue addresses */
    uint32_t pfn;               /* legacy QUEUE_PFN */
    bool ioeventfd;             /* modern: its notify address has an ioeventfd */
    _Atomic bool stopped;       /* legacy: a bad chain stopped it until reset */
};

struct vnet {
    struct pci_func *f;
    /* ---- configuration: set at creation, then read-only ---- */
    bool legacy;
    uint32_t qsize;             /* modern: largest size; legacy: the fixed size */
    uint64_t offered;           /* feature bits offered */
    uint32_t poll_us;
    uint8_t mac_default[6];
    char port_name[NETBACK_PORT_NAME_MAX];
    struct netback_port *port;
    struct virtq_mem mem;       /* pci_dma_map through f */
    int efd;                    /* notifications wake the worker */

    pthread_mutex_t lock, rx_lock, irq_lock;

    /* ---- registers (lock; changed under rx_lock too) ---- */
    uint8_t status;             /* as accepted, without DEVICE_NEEDS_RESET */
    uint32_t dfselect, gfselect;
    uint64_t driver_features;   /* what the driver wrote */
    bool unknown_features;      /* it wrote bits above 63 */
    uint64_t features;          /* negotiated: FEATURES_OK (modern), written (legacy) */
    uint16_t queue_select;
    uint8_t mac[6];
    uint16_t net_status;        /* VIRTIO_NET_S_LINK_UP */
    uint8_t cfg_gen;            /* config_generation */
    bool ready;                 /* DRIVER_OK: queues are processed */
    bool quiesced;              /* no DMA, no interrupts until reset */
    bool legacy_ioeventfd;      /* legacy notify port has an ioeventfd */
    struct vnet_queue q[VNET_NQ];
    _Atomic bool needs_reset;   /* modern: DEVICE_NEEDS_RESET */

    /* ---- interrupts (irq_lock) ---- */
    uint8_t isr;
    uint16_t config_vector;
    uint16_t queue_vector[VNET_NQ];

    /* ---- worker (lock) ---- */
    struct dev_worker w;

    struct vnet_counters st;
};

/* ---- virtio_net.c ---- */
/* Queue qi's chain or ring was malformed or refused (lock or rx_lock
 * held): count it, then DEVICE_NEEDS_RESET + config interrupt (modern) or
 * stop the queue until reset (legacy). One log line the first time. */
void vnet_fail(struct vnet *v, unsigned qi, enum virtq_err e);
/* Used-buffer interrupt for queue qi / config-change interrupt (any
 * thread; takes irq_lock): MSI-X vector when enabled, else ISR + INTx. */
void vnet_irq_queue(struct vnet *v, unsigned qi);
void vnet_irq_config(struct vnet *v);
/* ISR read: the bits, cleared; INTx lowered (takes irq_lock). */
uint8_t vnet_isr_read(struct vnet *v);
/* Driver status write 0 (lock and rx_lock held): every queue, feature,
 * vector and interrupt back to power-on; ioeventfds detached. */
void vnet_device_reset(struct vnet *v);
/* DRIVER_OK was set (lock and rx_lock held): start processing. */
void vnet_go_live(struct vnet *v);
/* Ring features of queue qi from the negotiated features (both locks). */
void vnet_queue_features(struct vnet *v, unsigned qi);
/* Attach (or detach) the notify ioeventfd of queue qi (lock held); for
 * legacy the one notify port, attached while any queue is enabled. */
void vnet_ioeventfd(struct vnet *v, unsigned qi, bool assign);
/* Header length for the negotiated features. */
static inline uint32_t vnet_hdr_len(const struct vnet *v) { return virtio_net_hdr_len(v->features); }
/* Is queue qi usable for DMA right now (lock or rx_lock held)? */
bool vnet_queue_live(struct vnet *v, unsigned qi);

/* ---- virtio_net_pci.c ---- */
/* Build the PCI function's BARs and capabilities (modern or legacy). */
bool vnet_pci_setup(struct vnet *v);
enum bus_result vnet_bar_access(void *dev, unsigned bar, struct bus_access *a);
void vnet_bar_moved(void *dev, unsigned bar, uint64_t old_base, uint64_t new_base);

/* ---- virtio_net_io.c ---- */
/* Point v->mem at pci_dma_map / pci_dma_unmap of v's function. */
void vnet_mem_init(struct vnet *v);
/* Bind the worker skeleton to v (once, after the eventfd exists). */
void vnet_worker_init(struct vnet *v);
/* Start / stop the worker (lock held; stop drops it while joining, so
 * never call it with rx_lock held). */
bool vnet_worker_start(struct vnet *v);
void vnet_worker_stop(struct vnet *v);
/* Wake the worker (any thread, no lock). */
void vnet_worker_kick(struct vnet *v);
/* The switch delivers a frame (netback_rx_fn; takes rx_lock). */
void vnet_rx(void *ctx, const void *frame, size_t len);

#endif /* MOAT_VIRTIO_NET_INTERNAL_H */
