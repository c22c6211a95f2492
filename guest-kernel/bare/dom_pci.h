/*
 * dom_pci.h — a PCI function assigned to a bare domain, and every access
 * the domain makes to it (SYS_CFG, SYS_MMIO). The monitor:
 *   - lets configuration reads through, and of writes only the command
 *     register's decode, bus-master and INTx-disable bits and the MSI-X
 *     enable and function-mask bits (BARs, MSI, everything else refused);
 *   - keeps the MSI-X table virtual: the device is programmed with a
 *     vector of the monitor's, which marks the domain's own vector;
 *   - hands BAR 0 of an NVMe controller to nvme_shadow.h and a virtio-net
 *     function's registers (modern BAR regions or the legacy I/O block) to
 *     virtio_shadow.h; other kinds of device are not assignable until
 *     their interposition exists;
 *   - routes INTA# (legacy devices without MSI-X) through the I/O APIC.
 * An access outside the function's BARs or configuration space ends the
 * domain (dd_pci.c checks first, so only a hostile domain gets there).
 */
#ifndef BARE_DOM_PCI_H
#define BARE_DOM_PCI_H

#include <stdbool.h>
#include <stdint.h>
#include "acpi.h"

struct dom;

/* Assign the function sel names ("nvme", "virtio-net", or "BB:DD.F") to d as its next
 * device. NULL, or why not. */
const char *dom_pci_assign(struct dom *d, const char *sel, uint32_t apic_id, uint64_t tsc_khz);
/* Describe d's devices in its (fresh) boot info. */
void dom_pci_boot_info(const struct dom *d);
uint64_t dom_pci_cfg(struct dom *d, uint64_t dev_off, uint64_t width_flags, uint64_t v);
uint64_t dom_pci_mmio(struct dom *d, uint64_t addr, uint64_t width_flags, uint64_t v);
/* SYS_PIO: a port of a device's I/O BAR (legacy virtio). */
uint64_t dom_pci_pio(struct dom *d, uint64_t port, uint64_t width_flags, uint64_t v);
/* SYS_INTX_BIND / SYS_INTX_ACK: INTA# of one of d's devices (the line
 * firmware wrote in its configuration space) to d's vector, level; the
 * monitor masks it at each interrupt until the domain acks. */
int64_t dom_pci_intx_bind(struct dom *d, uint64_t gsi, uint64_t vector);
int64_t dom_pci_intx_ack(struct dom *d, uint64_t gsi);
/* Let interposed devices catch up with d's rings (virtio_shadow_sync). */
void dom_pci_sync(struct dom *d);
/* A device interrupt on a monitor vector: mark the owning domain's. */
void dom_pci_irq(uint32_t vector);
/* Interrupts taken on vectors no device holds (stray or forged). */
uint64_t dom_pci_stray(void);
/* The domain ended: mask its vectors, reset its devices through their own
 * registers (NVMe CC.EN = 0 until CSTS.RDY = 0, virtio status 0), bus
 * mastering off, then a function-level reset where a device offers one. */
void dom_pci_quiesce(struct dom *d);
/* Let d's devices reach [iova, iova + len) at pa (on), or no more: under
 * VT-d their tables change; interposed ones ask dom_window_pa, which asks
 * the session broker. False when a unit refused. */
bool dom_pci_dma_range(struct dom *d, uint64_t iova, uint64_t pa, uint64_t len, bool on);
/* Can every device of d be given IOVAs below iova_end (a VT-d unit with
 * 3-level tables reaches 512 GiB)? */
bool dom_pci_dma_reaches(const struct dom *d, uint64_t iova_end);
/* When the last of d's device resets is over (TSC; 0: none under way). */
uint64_t dom_pci_settle_tsc(const struct dom *d);
/* Before d starts again, its resets over: the devices' headers put back. */
void dom_pci_reset_done(struct dom *d);
/* VT-d is on (vtd.h): confine each of d's devices to d's windows there
 * and stop interposing on it; a device whose DMA goes around the IOMMU
 * (virtio without ACCESS_PLATFORM) stays interposed. */
void dom_pci_use_vtd(struct dom *d, const struct acpi_info *acpi);
/* A fault record of the unit: audited against the device's domain. */
void dom_pci_vtd_fault(uint16_t sid, uint64_t addr, uint8_t reason, bool write);
/* "by VT-d" or "at the doorbell (no IOMMU)" (or both), for the console. */
const char *dom_pci_dma_mode(const struct dom *d);
/* Console lines for d's devices. */
void dom_pci_describe(const struct dom *d);

#endif /* BARE_DOM_PCI_H */
