/* dd_internal.h — what the dd_*.c files share and drivers do not see. */
#ifndef GK_DD_INTERNAL_H
#define GK_DD_INTERNAL_H

#include <stdint.h>
#include "dd.h"

/* IOAPIC input of d's INTA#, MOAT_NO_GSI when it has none. */
uint32_t dd_dev_intx_gsi(const struct dd_dev *d);

/* How dd_pci.c reaches the hardware (widths 1, 2, 4; MMIO also 8).
 * Hosted (dd_hw_hosted.c): ECAM and the BARs are mapped, and the VMM
 * mediates each access. Bare (bare/dom/dd_hw_bare.c): a system call the
 * monitor checks and, for address-bearing registers and doorbells,
 * interposes on (DESIGN §5.5). dev is the index in boot info's device
 * table; addr a BAR address where boot info placed it. */
bool dd_hw_present(void);
uint32_t dd_hw_cfg_read(unsigned dev, uint32_t off, unsigned width);
void dd_hw_cfg_write(unsigned dev, uint32_t off, unsigned width, uint32_t v);
uint64_t dd_hw_mmio_read(uint64_t addr, unsigned width);
void dd_hw_mmio_write(uint64_t addr, unsigned width, uint64_t v);

#endif /* GK_DD_INTERNAL_H */
