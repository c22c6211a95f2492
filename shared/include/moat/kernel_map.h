/*
 * moat/kernel_map.h — the guest kernel's page tables, as a pure builder
 * run by whoever loads the kernel: moat's VMM writes them into a domain's
 * RAM before its first instruction (ring 0 is emulated on the hosted
 * targets, where building them in the guest took 15-25 ms of a 20 ms
 * boot), and a kernel booted without such a loader builds them itself with
 * the same code. Freestanding: no libc.
 *
 * The map (identity, every mapping user-accessible: domain code runs in
 * ring 3 and the domain is the isolation boundary; W^X inside it):
 *   - private RAM: page 0 not present (NULL faults); the 2 MiB regions the
 *     kernel image touches in 4 KiB pages — text read+execute; rodata, the
 *     boot info page and the session table read-only, no-execute; the rest
 *     read/write, no-execute — and the rest of RAM in 2 MiB pages RW, NX;
 *   - the device space, the top GiB below 4 GiB, uncached RW, NX;
 *   - every DMA window RW, NX in 2 MiB pages;
 *   - every session slot's span RW, NX (1 GiB pages when the CPU has them).
 * The loader also sets EFER.NXE and CR0.WP so ring 0 honours both.
 */
#ifndef MOAT_KERNEL_MAP_H
#define MOAT_KERNEL_MAP_H

#include <stdbool.h>
#include <stdint.h>
#include "moat/boot_info.h"

#define KMAP_PTE_P   (1ull << 0)
#define KMAP_PTE_W   (1ull << 1)
#define KMAP_PTE_U   (1ull << 2)
#define KMAP_PTE_PWT (1ull << 3)
#define KMAP_PTE_PCD (1ull << 4)
#define KMAP_PTE_PS  (1ull << 7)
#define KMAP_PTE_NX  (1ull << 63)
#define KMAP_ADDR_MASK 0x000FFFFFFFFFF000ull

/* The kernel image, page-aligned guest-physical bounds. */
struct kmap_image {
    uint64_t text_start, text_end;      /* executable */
    uint64_t rodata_start, rodata_end;  /* read-only (may be empty) */
    uint64_t end;                       /* end of everything loaded */
};

/* A zeroed page for a table: returns where the builder writes it (NULL when
 * out of pages) and sets *pa to its guest-physical address. */
typedef uint64_t *(*kmap_page_fn)(void *ctx, uint64_t *pa);

struct kmap_params {
    struct kmap_image image;
    uint64_t ram_size;                  /* multiple of 2 MiB, <= MOAT_RAM_MAX */
    const struct moat_window_info *windows;
    uint32_t n_windows;
    bool gb_pages;                      /* CPUID 0x80000001 EDX bit 26 */
    kmap_page_fn page;
    void *ctx;
};

/* Page-table pages kmap_build may need at most (a loader reserves them). */
#define KMAP_PAGES_MAX 64u

/* Build the map; NULL and *cr3 = the PML4's address on success, otherwise
 * what is wrong (the image, RAM size or a window out of the rules, or no
 * page left). */
const char *kmap_build(const struct kmap_params *p, uint64_t *cr3);

#endif /* MOAT_KERNEL_MAP_H */
