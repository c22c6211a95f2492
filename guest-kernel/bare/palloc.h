/*
 * palloc.h — physical memory of the bare monitor: zeroed, physically
 * contiguous runs of pages from the loader's usable RAM below 4 GiB (the
 * monitor's identity map), above its own image and every module. A bump
 * allocator: domains keep what they are given across restarts (the
 * monitor scrubs and reuses it), so nothing is ever freed.
 */
#ifndef BARE_PALLOC_H
#define BARE_PALLOC_H

#include <stdint.h>
#include "multiboot.h"

void palloc_init(const struct boot_desc *b);
/* pages * 4 KiB, aligned to align (a power of two >= 4 KiB), zeroed; the
 * physical address (= the monitor's virtual), or 0 when no range has room. */
uint64_t palloc(uint64_t pages, uint64_t align);
/* Bytes left (for the console). */
uint64_t palloc_free_bytes(void);

#endif /* BARE_PALLOC_H */
