/*
 * virtio_shadow.h — a virtio-net function (modern or legacy transport)
 * assigned to a ring-3 domain on a machine without an IOMMU (DESIGN §5.5).
 * The device reads only rings the monitor owns:
 *   - queue addresses (modern queue_desc/driver/device, legacy QUEUE_PFN)
 *     are kept virtual; when a queue is enabled its rings are checked to
 *     lie in the domain's windows and the device is given a shadow
 *     descriptor table and avail ring (legacy: and used ring, whose
 *     entries the monitor copies back);
 *   - at each notify (and whenever the domain sleeps or the tick comes:
 *     a driver may skip kicks the device asked it to skip) the newly
 *     published chains are copied into the shadow, every address checked
 *     and translated; a descriptor aimed outside the windows, or indirect,
 *     is pointed at a scratch page of the monitor's instead and audited;
 *     an avail index or chain head out of range ends the domain;
 *   - features that would carry addresses the monitor does not translate
 *     (indirect descriptors, packed rings, event index, control queues...)
 *     are hidden: the device offers, and accepts, only a known-safe set.
 */
#ifndef BARE_VIRTIO_SHADOW_H
#define BARE_VIRTIO_SHADOW_H

#include <stdbool.h>
#include <stdint.h>

struct dom;
struct virtio_shadow;

/* Regions of the modern transport (BAR index and offset, from the vendor
 * capabilities), or legacy = the I/O BAR at io_base. */
struct virtio_layout {
    bool modern;
    uint32_t common_bar, notify_bar, isr_bar, device_bar;
    uint64_t common_off, notify_off, isr_off, device_off;
    uint64_t common_len, notify_len, isr_len, device_len;
    uint32_t notify_mult;
    uint64_t bar_base[6];       /* where each BAR is (memory: mapped) */
    uint16_t io_base;
};

struct virtio_shadow *virtio_shadow_attach(const struct virtio_layout *l, const char **why);
/* The same outside the pool, for host tests and fuzzing (modern only: the
 * legacy block is port I/O): one at a time, a static instance. */
struct virtio_shadow *virtio_shadow_fixed(const struct virtio_layout *l);
/* The page refused descriptors are pointed at. */
uint64_t virtio_shadow_scratch(const struct virtio_shadow *s);
/* A memory-BAR access (modern) at BAR bar, offset off. */
uint64_t virtio_shadow_mmio(struct virtio_shadow *s, struct dom *d, uint32_t bar, uint64_t off,
                            unsigned width, bool is_write, uint64_t v);
/* A port access (legacy) at offset off of the I/O BAR. */
uint64_t virtio_shadow_pio(struct virtio_shadow *s, struct dom *d, uint32_t off, unsigned width,
                           bool is_write, uint64_t v);
/* Publish what the driver queued without a kick, and (legacy) copy used
 * entries back; before the domain sees an interrupt and when it sleeps. */
void virtio_shadow_sync(struct virtio_shadow *s, struct dom *d);
/* Reset the device (status 0) and forget the queues. */
void virtio_shadow_reset(struct virtio_shadow *s);
/* Does the device put its DMA through the platform's IOMMU (modern, and
 * offers VIRTIO_F_ACCESS_PLATFORM)? Without it QEMU's DMA goes around. */
bool virtio_shadow_iommu_capable(struct virtio_shadow *s);
/* An IOMMU translates this device's DMA (vtd.h): rings and notifies go to
 * it as the domain wrote them; unsafe features stay hidden. */
void virtio_shadow_passthrough(struct virtio_shadow *s, bool on);
void virtio_shadow_describe(const struct virtio_shadow *s);

#endif /* BARE_VIRTIO_SHADOW_H */
