/*
 * vnet_transport.h — the two ways a virtio-net function is reached, behind
 * one small ops table:
 *   vnet_modern.c  virtio 1.x PCI (§4.1.4): vendor capabilities locate the
 *                  common, notify, ISR and device configuration windows in
 *                  memory BARs; 64-bit features, FEATURES_OK, driver-chosen
 *                  queue sizes, MSI-X (one vector for config, one per
 *                  queue), INTx + ISR when the function has no MSI-X.
 *   vnet_legacy.c  virtio 0.9 (§4.1.4.8 legacy interface): one I/O BAR0
 *                  register block; 32-bit features, no FEATURES_OK,
 *                  device-fixed queue sizes, single-PFN rings, INTx + ISR.
 *                  Every access is a port access, i.e. a kernel entry: the
 *                  data path touches only QUEUE_NOTIFY (once per batch) and
 *                  ISR (once per interrupt).
 *
 * Error policy: what the device refuses or reports out of range during
 * bring-up is returned as a sentence (const char *, NULL = fine) for the
 * caller to log and fail on; a register access outside a validated window
 * is a driver bug caught by the platform (dd_panic). Nothing here trusts a
 * value read from the device without bounding it first.
 */
#ifndef VNET_TRANSPORT_H
#define VNET_TRANSPORT_H

#include "dd.h"
#include "vnet_ring.h"

/* A queue with its memory. */
struct vnet_vq {
    struct vq vq;
    struct dd_dma mem;          /* the ring allocation (device-visible) */
    uint64_t desc_iova, avail_iova, used_iova;
};

/* Allocate and initialise a queue of size entries (zeroed DMA memory laid
 * out by vq_layout, 4096-aligned for the legacy layout; private arrays).
 * Implemented in vnet_main.c. NULL, or why it failed. */
const char *vnet_vq_alloc(struct vnet_vq *out, uint16_t qidx, uint32_t size, bool legacy,
                          bool event_idx);

/* One window of a modern vendor capability, checked against its BAR. */
struct vnet_region {
    const struct dd_bar *bar;   /* NULL = not found */
    uint64_t off, len;
};

/* What the device configuration says (§5.1.4). */
struct vnet_config {
    uint8_t mac[6];
    uint16_t status;            /* VIRTIO_NET_S_*; LINK_UP when not read */
};

struct vnet_tp {
    struct dd_dev *dev;
    const struct vnet_transport_ops *ops;
    /* modern */
    struct vnet_region common, notify, isr, device;
    uint32_t notify_mult;
    uint64_t notify_at[2];      /* per queue: offset in the notify window's BAR */
    /* legacy */
    const struct dd_bar *io;
    uint32_t cfg_off;           /* device configuration in the I/O block */
    /* interrupts */
    bool msix;
    uint16_t vec_config, vec_queue[2];  /* MSI-X entries, or VIRTIO_MSI_NO_VECTOR */
    struct dd_irq *irq[3];
    dd_irq_fn on_config, on_queue;      /* hooks (on_queue may be NULL) */
    void *hook_ctx;
    uint64_t isr_reads;
};

struct vnet_transport_ops {
    const char *name;           /* "modern" / "legacy" */
    bool modern;                /* VERSION_1 rules: layout, header, features */
    /* Write 0 to the status and wait (up to timeout_ns) until it reads 0. */
    uint8_t (*status_get)(struct vnet_tp *t);
    void (*status_set)(struct vnet_tp *t, uint8_t status);
    /* Device features (legacy: bits 0..31) / driver features (legacy:
     * the low 32 bits are written, the rest must be 0). */
    uint64_t (*features_get)(struct vnet_tp *t);
    void (*features_set)(struct vnet_tp *t, uint64_t features);
    /* Modern: set FEATURES_OK and read it back (§3.1.1 step 6); legacy has
     * no such step and always succeeds. */
    const char *(*features_ok)(struct vnet_tp *t);
    /* Route the device's interrupts: on_config runs for configuration
     * changes, on_queue (may be NULL) for used buffers; either runs from
     * the run loop. Before queue_setup (queues take their vectors). */
    const char *(*irq_setup)(struct vnet_tp *t, dd_irq_fn on_config, dd_irq_fn on_queue,
                             void *ctx);
    /* Size, allocate (vnet_vq_alloc) and hand queue qidx to the device.
     * want: a power of two the driver would like (modern: min with the
     * device's maximum; legacy: ignored, the size is the device's). */
    const char *(*queue_setup)(struct vnet_tp *t, uint16_t qidx, uint32_t want, bool event_idx,
                               struct vnet_vq *out);
    /* Tell the device queue qidx has new buffers (one register write). */
    void (*notify)(struct vnet_tp *t, uint16_t qidx);
    /* MAC, and the status field when with_status (STATUS negotiated). */
    void (*config_read)(struct vnet_tp *t, bool with_status, struct vnet_config *out);
};

extern const struct vnet_transport_ops vnet_modern_ops, vnet_legacy_ops;

/* Find the modern vendor capabilities of dev (every window bounded by its
 * BAR; unusable ones are logged and skipped). NULL when t can drive dev
 * as a modern device, else why not. */
const char *vnet_modern_probe(struct vnet_tp *t, struct dd_dev *dev);
/* Check dev has the legacy I/O BAR0 block. NULL, or why not. */
const char *vnet_legacy_probe(struct vnet_tp *t, struct dd_dev *dev);

#endif /* VNET_TRANSPORT_H */
