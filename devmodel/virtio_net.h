/*
 * virtio_net.h — moat's virtio-net device model (wire format in
 * moat/virtio_regs.h), in one of two shapes:
 *
 *  modern (default): virtio 1.x PCI, 1af4:1041 revision 1, class 02/00/00.
 *    BAR1 32-bit memory 4 KiB: MSI-X table (0x000) and PBA (0x800), 3
 *    vectors (config + RX + TX). BAR4 64-bit memory 16 KiB: common config
 *    at 0x0000, ISR at 0x1000, device config at 0x2000, notify at 0x3000
 *    (notify_off_multiplier 4, queue q notifies at 0x3000 + 4 q), each
 *    described by a vendor capability. Features offered: VERSION_1, MAC,
 *    STATUS, EVENT_IDX, MRG_RXBUF (each switchable); 12-byte header.
 *  legacy (legacy=1): virtio 0.9, 1af4:1000 revision 0, subsystem
 *    1af4:0001. BAR0 32-byte I/O block (registers at VIRTIO_LEGACY_*,
 *    MAC at 0x14), INTx only (no MSI-X), device-fixed queue size,
 *    single-PFN rings aligned to 4096, 32-bit features (MAC, STATUS,
 *    EVENT_IDX, MRG_RXBUF), 10-byte header unless MRG_RXBUF is accepted.
 *
 * Queues: 0 = receive, 1 = transmit. Transmitted frames go to the switch
 * (netback.h) through the device's port "<domain>.<name>"; frames from the
 * switch fill receive buffers (one chain per frame, or several with
 * MRG_RXBUF); with no buffer available the frame is dropped and counted.
 * Interrupts follow EVENT_IDX / NO_INTERRUPT; notifications are served by
 * ioeventfds (memory or I/O port) and a worker thread per device.
 *
 * Options (dev=virtio-net:key=value:...):
 *   legacy=0|1      shape (default 0: modern)
 *   qsize=N         modern: largest queue size offered, the driver may
 *                   choose less (default 256); legacy: the fixed size
 *                   (default 256). A power of two, 2..32768.
 *   mac=XX-XX-XX-XX-XX-XX or mac=XXXXXXXXXXXX
 *                   unicast MAC, hex (':' separates options, so it cannot
 *                   separate the bytes; default 52:54:00 + 3 bytes hashed
 *                   from "<domain>.<name>")
 *   link=up|down    initial link state (default up)
 *   event_idx=0|1, mrg_rxbuf=0|1, status=0|1
 *                   offer the feature (default 1)
 *   poll_us=N       worker polls this long for more work before sleeping,
 *                   0..1000000 (default 50)
 *
 * Hostile input: the driver's rings and buffers are reached only through
 * the broker. A malformed chain (loop, longer than the queue, index out
 * of range, buffer outside the DMA windows, zero-length buffer, direction
 * wrong for the queue, INDIRECT (never offered), available index moving
 * more than the queue size) is counted; then the modern device sets
 * DEVICE_NEEDS_RESET and raises a config interrupt (until the driver
 * writes status 0), the legacy device stops that queue until reset
 * (status 0 or QUEUE_PFN 0). A transmit chain of the wrong total length
 * is not malformed: it completes with length 0, counted (tx_bad_len).
 * Register accesses of the wrong width or offset, reads of write-only and
 * writes of read-only registers are refused (pci_refuse, counted in
 * bad_registers); legal accesses with values the device cannot take
 * (queue size not a power of two, a queue changed while enabled) are
 * ignored and counted (bad_queue_config).
 */
#ifndef MOAT_VIRTIO_NET_H
#define MOAT_VIRTIO_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "pci.h"

#define VNET_BAR_LEGACY        0u
#define VNET_BAR_MSIX          1u
#define VNET_BAR_MODERN        4u
#define VNET_MODERN_BAR_SIZE   0x4000u
#define VNET_COMMON_OFF        0x0000u
#define VNET_ISR_OFF           0x1000u
#define VNET_DEVICE_OFF        0x2000u
#define VNET_NOTIFY_OFF        0x3000u
#define VNET_NOTIFY_MULT       4u
#define VNET_LEGACY_BAR_SIZE   32u
#define VNET_MSIX_VECTORS      3u
#define VNET_MSIX_TABLE_OFF    0x000u
#define VNET_MSIX_PBA_OFF      0x800u

#define VNET_STATS_FIELDS(X)                                                  \
    X(tx_frames) X(tx_bytes)    /* frames sent to the switch */               \
    X(tx_dropped)               /* frames the switch refused (link down) */   \
    X(rx_frames) X(rx_bytes)    /* frames written into receive buffers */     \
    X(rx_no_buffer)             /* frames dropped: no receive buffer */       \
    X(rx_too_big)               /* frames dropped: chain(s) too small */      \
    X(tx_bad_len)               /* TX chains shorter than the header or */    \
                                /* longer than header + 1514: dropped */      \
    X(bad_chains)               /* malformed descriptor chains */             \
    X(bad_avail_idx)            /* avail index moved more than the size */    \
    X(dma_refusals)             /* ring or buffer maps the broker refused */  \
    X(needs_reset)              /* times DEVICE_NEEDS_RESET was set */        \
    X(driver_resets)            /* status 0 written by the driver */          \
    X(queue_stopped)            /* legacy queues stopped by a bad chain */    \
    X(bad_registers)            /* refused register accesses */               \
    X(bad_features)             /* FEATURES_OK refused (unoffered bits) */    \
    X(bad_queue_config)         /* queue size/address/enable values ignored */ \
    X(notifies)                 /* notifications that reached the model */    \
    X(irq_sent) X(irq_suppressed) /* interrupts sent / skipped by the ring */ \
    X(config_irqs)              /* config-change interrupts */                \
    X(worker_wakeups)

struct virtio_net_stats {
#define VNET_STAT_FIELD(name) uint64_t name;
    VNET_STATS_FIELDS(VNET_STAT_FIELD)
#undef VNET_STAT_FIELD
};

/* Add a virtio-net device named name to bus, INTA# on gsi, configured by
 * opts; joins the process-wide switch (netback_get). The bus owns it.
 * False + a full sentence in err when the options are invalid, the port
 * name is taken or the bus is full. */
bool virtio_net_create(struct pci_bus *bus, const char *name, uint32_t gsi, const char *opts,
                       char *err, size_t errlen);

/* Snapshot f's counters. False when f is not a virtio-net device. */
bool virtio_net_stats_get(const struct pci_func *f, struct virtio_net_stats *out);
/* Change the link state (VIRTIO_NET_S_LINK_UP; a config interrupt when
 * STATUS was negotiated). False when f is not a virtio-net device. */
bool virtio_net_set_link(struct pci_func *f, bool up);
/* The device's MAC. False when f is not a virtio-net device. */
bool virtio_net_mac(const struct pci_func *f, uint8_t mac[6]);

#endif /* MOAT_VIRTIO_NET_H */
