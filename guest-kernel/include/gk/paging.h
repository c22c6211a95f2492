/*
 * gk/paging.h — the kernel's own page tables, replacing the loader's boot
 * map: the map of moat/kernel_map.h (identity map of private RAM with W^X,
 * device space uncached, DMA windows and session slots), EFER.NXE and
 * CR0.WP set. When the loader built that map itself (MOAT_BOOT_F_KERNEL_MAP)
 * this only checks CR3 points at it.
 */
#ifndef GK_PAGING_H
#define GK_PAGING_H

#include "moat/boot_info.h"

#define CPUID_EXT_EDX_1G_PAGES (1u << 26)

void paging_init(const struct moat_boot_info *bi);

#endif /* GK_PAGING_H */
