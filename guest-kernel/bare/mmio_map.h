/*
 * mmio_map.h — making device registers reachable in the kernel booted
 * bare. The boot map covers the first 4 GiB (mb_entry.S); firmware may
 * put 64-bit BARs far above it (OVMF: 0xE0_0000_0000), so those are
 * mapped here, 2 MiB at a time, uncached, identity (virtual = physical),
 * from a fixed pool of page-table pages; below 4 GiB the boot map's page
 * is re-marked uncached (device registers must not be cached).
 */
#ifndef BARE_MMIO_MAP_H
#define BARE_MMIO_MAP_H

#include <stdbool.h>
#include <stdint.h>

/* Make [phys, phys + len) reachable at the same address, uncached. False
 * when the range is beyond 48 bits or the table pool is used up. */
bool mmio_map(uint64_t phys, uint64_t len);

#endif /* BARE_MMIO_MAP_H */
