/*
 * gk/paging.h — the kernel's own page tables, replacing the loader's.
 *
 * Identity map of private RAM: the null page is not present, kernel text is
 * read-only and executable, rodata read-only and NX, everything else RW and
 * NX. EFER.NXE and CR0.WP are set so both protections are enforced in ring 0.
 * Also mapped (user-accessible, NX): the device space below 4 GiB (PCI MMIO
 * hole, ECAM, IOAPIC) uncached, and every DMA window from boot info as
 * ordinary memory at IOVA == virtual address.
 */
#ifndef GK_PAGING_H
#define GK_PAGING_H

#include <stdint.h>
#include "moat/boot_info.h"

#define PTE_P    (1ull << 0)
#define PTE_W    (1ull << 1)
#define PTE_PWT  (1ull << 3)
#define PTE_PCD  (1ull << 4)
#define PTE_PS   (1ull << 7)
#define PTE_NX   (1ull << 63)
#define CPUID_EXT_EDX_1G_PAGES (1u << 26)

void paging_init(const struct moat_boot_info *bi);

#endif /* GK_PAGING_H */
