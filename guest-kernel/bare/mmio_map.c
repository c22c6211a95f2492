/* MMIO mappings above the boot map (contract in mmio_map.h). */
#include "gk/kstring.h"
#include "mmio_map.h"

#define PTE_P      0x001ull
#define PTE_W      0x002ull
#define PTE_PWT    0x008ull
#define PTE_PCD    0x010ull
#define PTE_PS     0x080ull
#define PTE_ADDR   0x000FFFFFFFFFF000ull
#define POOL_PAGES 16u
#define TWO_MIB    (2ull << 20)

static uint64_t pool[POOL_PAGES][512] __attribute__((aligned(4096)));
static unsigned pool_used;

static uint64_t *cr3_table(void)
{
    uint64_t cr3;
    __asm__ volatile("mov %%cr3, %0" : "=r"(cr3));
    return (uint64_t *)(uintptr_t)(cr3 & PTE_ADDR);
}

/* The table entry e points to, made (zeroed, from the pool) if absent. */
static uint64_t *next_table(uint64_t *e)
{
    if (*e & PTE_P)
        return (*e & PTE_PS) ? NULL : (uint64_t *)(uintptr_t)(*e & PTE_ADDR);
    if (pool_used == POOL_PAGES)
        return NULL;
    uint64_t *t = pool[pool_used++];
    memset(t, 0, 4096);
    *e = (uint64_t)(uintptr_t)t | PTE_P | PTE_W;
    return t;
}

bool mmio_map(uint64_t phys, uint64_t len)
{
    if (len == 0 || phys + len < phys || phys + len > (1ull << 48))
        return false;
    uint64_t end = phys + len;
    for (uint64_t a = phys & ~(TWO_MIB - 1); a < end; a += TWO_MIB) {
        uint64_t *pdpt = next_table(&cr3_table()[(a >> 39) & 511]);
        uint64_t *pd = pdpt ? next_table(&pdpt[(a >> 30) & 511]) : NULL;
        if (!pd)
            return false;
        /* Below 4 GiB this re-marks the boot map's own page uncached. */
        pd[(a >> 21) & 511] = a | PTE_P | PTE_W | PTE_PS | PTE_PCD | PTE_PWT;
        __asm__ volatile("invlpg (%0)" : : "r"(a) : "memory");
    }
    return true;
}
