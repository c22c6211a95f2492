/*
 * npt.h — nested page tables of the svm backend: a guest-physical address
 * space mapped one to one onto host memory, page by page, and nothing
 * else. The tables are the AMD64 long-mode format (4 levels, 4 KiB
 * leaves); every entry has the user bit (nested walks treat every guest
 * access as a user access). Intermediate tables are allocated as needed
 * and kept (palloc never frees): unmapping clears the leaf only. The
 * caller flushes the guest's TLB (its ASID) after unmapping or narrowing.
 */
#ifndef BARE_NPT_H
#define BARE_NPT_H

#include <stdbool.h>
#include <stdint.h>

#define NPT_W  0x2ull                   /* writable */
#define NPT_NX (1ull << 63)             /* not executable */

/* A new, empty top-level table: its physical address, or 0. */
uint64_t npt_new(void);
/* Map [pa, pa + bytes) (page-aligned) one to one with flags (NPT_W,
 * NPT_NX); false when memory for a table runs out. */
bool npt_map(uint64_t root, uint64_t pa, uint64_t bytes, uint64_t flags);
/* Unmap [pa, pa + bytes). */
void npt_unmap(uint64_t root, uint64_t pa, uint64_t bytes);
/* The leaf entry for gpa (0 when unmapped), for the console and tests. */
uint64_t npt_entry(uint64_t root, uint64_t gpa);
/* Pages mapped (leaves present) under root. */
uint64_t npt_pages(uint64_t root);

#endif /* BARE_NPT_H */
