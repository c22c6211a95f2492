/*
 * dom_pci.h — a PCI function assigned to a bare domain, and every access
 * the domain makes to it (SYS_CFG, SYS_MMIO). The monitor:
 *   - lets configuration reads through, and of writes only the command
 *     register's decode, bus-master and INTx-disable bits and the MSI-X
 *     enable and function-mask bits (BARs, MSI, everything else refused);
 *   - keeps the MSI-X table virtual: the device is programmed with a
 *     vector of the monitor's, which marks the domain's own vector;
 *   - hands BAR 0 of an NVMe controller to nvme_shadow.h; other kinds of
 *     device are not assignable until their interposition exists.
 * An access outside the function's BARs or configuration space ends the
 * domain (dd_pci.c checks first, so only a hostile domain gets there).
 */
#ifndef BARE_DOM_PCI_H
#define BARE_DOM_PCI_H

#include <stdbool.h>
#include <stdint.h>

struct dom;

/* Assign the function sel names ("nvme", or "BB:DD.F") to d as its next
 * device. NULL, or why not. */
const char *dom_pci_assign(struct dom *d, const char *sel, uint32_t apic_id, uint64_t tsc_khz);
/* Describe d's devices in its (fresh) boot info. */
void dom_pci_boot_info(const struct dom *d);
uint64_t dom_pci_cfg(struct dom *d, uint64_t dev_off, uint64_t width_flags, uint64_t v);
uint64_t dom_pci_mmio(struct dom *d, uint64_t addr, uint64_t width_flags, uint64_t v);
/* A device interrupt on a monitor vector: mark the owning domain's. */
void dom_pci_irq(uint32_t vector);
/* The domain ended: mask its vectors, reset its devices, bus mastering off. */
void dom_pci_quiesce(struct dom *d);
/* Console lines for d's devices. */
void dom_pci_describe(const struct dom *d);

#endif /* BARE_DOM_PCI_H */
