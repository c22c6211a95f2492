/*
 * gvnic.h — moat's model of Google's gVNIC (PCI 1ae0:0042, subsystem
 * 1ae0:0058), the NIC of newer GCE machine families; no other model of it
 * exists, so this is where the gVNIC driver domain is tested before GCE.
 * Register and admin-queue layouts: moat/gvnic_abi.h (which cites the
 * public header versions it follows).
 *
 * BAR0 is the big-endian register file (device/driver status, queue
 * limits, admin queue by PFN or by base/length, doorbell, event counter,
 * driver version), BAR1 the MSI-X table (one vector per notification block
 * plus the management vector, last), BAR2 the doorbells.
 *
 Implemented: reset (PFN 0 or driver RESET) and the admin queue —
 * DESCRIBE_DEVICE (the configured queue format's option, MTU and buffer
 * sizes), CONFIGURE/DECONFIGURE_DEVICE_RESOURCES, REGISTER/UNREGISTER_
 * PAGE_LIST, CREATE/DESTROY_TX/RX_QUEUE, SET_DRIVER_PARAMETER (MTU,
 * checked), REPORT_STATS (the buffer checked; no report is written),
 * REPORT_LINK_SPEED, GET_PTYPE_MAP, VERIFY_DRIVER_COMPATIBILITY — and both data paths: GQI-QPL (gvnic_gqi.c: TX gathered
 * from the page list on the doorbell and reported through the queue's
 * event counter, RX into filled slots with the 2-byte pad and sequence
 * numbers, interrupt doorbells with MASK and ACK|EVENT) and DQO-RDA
 * (gvnic_dqo.c: TX packets of up to 10 buffers answered on a completion
 * ring with tags, heads and generation bits, RX into posted buffers with
 * completions; blocks that disarm when they fire). Interrupts and the
 * doorbell dispatch: gvnic_irq.c. One RX queue takes every frame (no
 * RSS).
 *
 * The device joins the switch as port "<domain>.<name>" at creation.
 *
 * Everything the driver writes is hostile: registers of the wrong width or
 * offset are refused and counted; admin commands are executed in order on
 * the vCPU thread that rang the doorbell, every one gets a status (a
 * specific error for each malformed field), and every address they carry
 * goes through the broker (a refusal is audited there and the command
 * fails with PERMISSION_DENIED). A malformed descriptor or data slot
 * stops its queue, is counted, and sets the device's reset request with
 * the management interrupt: the driver must reset the device.
 */
#ifndef MOAT_GVNIC_H
#define MOAT_GVNIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "pci.h"

#define GVNIC_QUEUES_MAX   8u           /* TX and RX queues each */

#define GVNIC_STATS_FIELDS(X)                                                        \
    X(aq_commands)              /* admin commands executed */                        \
    X(aq_failed)                /* ... that did not pass */                          \
    X(aq_bad_doorbell)          /* doorbells past the queue's free entries, or */    \
                                /* rung with no admin queue set up */                \
    X(bad_registers)            /* refused register accesses */                      \
    X(dma_refusals)             /* command buffers the broker refused */             \
    X(resets)                   /* device resets (PFN 0, driver RESET) */            \
    X(pages_registered)         /* QPL pages registered now */                       \
    X(queues_destroyed)         /* DESTROY_TX/RX_QUEUE that passed */                \
    X(page_lists_unregistered)  /* UNREGISTER_PAGE_LIST that passed */               \
    X(deconfigured)             /* DECONFIGURE_DEVICE_RESOURCES that passed */       \
    X(tx_frames) X(rx_frames)                                                         \
    X(tx_bad)                   /* malformed TX descriptors: the device then asks */  \
                                /* the driver for a reset */                          \
    X(rx_no_buffer)             /* frames dropped: no slot filled */                  \
    X(rx_bad_slot)              /* a data slot outside its page list */               \
    X(bad_doorbells)            /* doorbells no queue or block owns */

struct gvnic_stats {
#define GVNIC_STAT_FIELD(name) uint64_t name;
    GVNIC_STATS_FIELDS(GVNIC_STAT_FIELD)
#undef GVNIC_STAT_FIELD
};

/* Add a gVNIC named name to bus, configured by opts:
 *   format=gqi-qpl|dqo-rda  the queue format it offers (gqi-qpl)
 *   queues=N                TX and RX queues, 1..8 (2)
 *   tx_ring=N rx_ring=N     ring entries, powers of two (256, 512)
 *   mtu=N                   68..1500 (1460, GCE's; frames on moat's switch stop at 1514)
 *   mac=..., link=up|down   as for virtio-net
 * False + a full sentence in err when an option is invalid or the bus is
 * full. The bus owns it. */
bool gvnic_create(struct pci_bus *bus, const char *name, uint32_t gsi, const char *opts,
                  char *err, size_t errlen);
/* Snapshot f's counters. False when f is not a gVNIC. */
bool gvnic_stats_get(const struct pci_func *f, struct gvnic_stats *out);

#endif /* MOAT_GVNIC_H */
