/* The kernel's page tables (contract in gk/paging.h). */
#include "gk/cpu.h"
#include "gk/mem.h"
#include "gk/paging.h"
#include "gk/panic.h"
#include "moat/layout.h"

#define PAGE     4096ull
#define LARGE    (2ull << 20)
#define ADDR_MASK 0x000FFFFFFFFFF000ull

extern char __text_start[], __text_end[], __rodata_start[], __rodata_end[];
extern char __kernel_end[];

static uint64_t *pml4;

static uint64_t *next_level(uint64_t *table, unsigned idx)
{
    if (!(table[idx] & PTE_P)) {
        uint64_t *t = mem_alloc_pages(1);
        table[idx] = (uint64_t)(uintptr_t)t | PTE_P | PTE_W;
    } else if (table[idx] & PTE_PS) {
        panic("paging: 4 KiB mapping inside a large page (entry %u)", idx);
    }
    return (uint64_t *)(uintptr_t)(table[idx] & ADDR_MASK);
}

static uint64_t *pd_for(uint64_t pa)
{
    uint64_t *pdpt = next_level(pml4, (unsigned)(pa >> 39) & 511);
    return next_level(pdpt, (unsigned)(pa >> 30) & 511);
}

void paging_map(uint64_t pa, uint64_t len, uint64_t flags)
{
    for (uint64_t a = pa & ~(PAGE - 1); a < pa + len; a += PAGE) {
        uint64_t *pt = next_level(pd_for(a), (unsigned)(a >> 21) & 511);
        pt[(a >> 12) & 511] = a | flags | PTE_P;
    }
}

static void map_large(uint64_t pa, uint64_t flags)
{
    pd_for(pa)[(pa >> 21) & 511] = pa | flags | PTE_P | PTE_PS;
}

static uint64_t flags_for(uint64_t a)
{
    uint64_t ts = (uint64_t)(uintptr_t)__text_start, te = (uint64_t)(uintptr_t)__text_end;
    uint64_t rs = (uint64_t)(uintptr_t)__rodata_start, re = (uint64_t)(uintptr_t)__rodata_end;
    if (a >= ts && a < te)
        return 0;                       /* text: read + execute */
    if ((a >= rs && a < re) || a == MOAT_GPA_BOOT_INFO)
        return PTE_NX;                  /* read-only */
    return PTE_W | PTE_NX;
}

void paging_init(const struct moat_boot_info *bi)
{
    pml4 = mem_alloc_pages(1);
    uint64_t ram = bi->ram_size;
    uint64_t fine_end = ((uint64_t)(uintptr_t)__kernel_end + LARGE - 1) & ~(LARGE - 1);
    if (fine_end > ram)
        fine_end = ram;
    /* Page 0 stays unmapped: a NULL dereference is a page fault. */
    for (uint64_t a = PAGE; a < fine_end; a += PAGE)
        paging_map(a, PAGE, flags_for(a));
    uint64_t a = fine_end;
    for (; a + LARGE <= ram; a += LARGE)
        map_large(a, PTE_W | PTE_NX);
    if (a < ram)
        paging_map(a, ram - a, PTE_W | PTE_NX);

    wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_NXE);
    write_cr0(read_cr0() | CR0_WP);
    write_cr3((uint64_t)(uintptr_t)pml4);
}
