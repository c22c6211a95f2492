/* The kernel's page tables (contract in gk/paging.h).
 *
 * Built with as few ring-0 instructions as possible (ring 0 is emulated on
 * the target hosts): one page table for each 2 MiB region the kernel image
 * touches, 2 MiB pages for the rest of RAM. Every mapping is user-accessible
 * (domain code runs in ring 3 and the domain is the isolation boundary);
 * protection inside the domain is W^X: text read+execute, rodata and boot
 * info read-only, all else read/write and no-execute. */
#include "gk/cpu.h"
#include "gk/mem.h"
#include "gk/paging.h"
#include "gk/panic.h"
#include "moat/layout.h"
#include "moat/session_abi.h"

#define PAGE      4096ull
#define LARGE     (2ull << 20)
#define ADDR_MASK 0x000FFFFFFFFFF000ull
#define PTE_U     (1ull << 2)
#define TABLE     (PTE_P | PTE_W | PTE_U)

extern char __text_start[], __text_end[], __rodata_start[], __rodata_end[];
extern char __kernel_end[];

static uint64_t *pml4, *pd0;

static uint64_t *next_level(uint64_t *table, unsigned idx)
{
    if (!(table[idx] & PTE_P)) {
        uint64_t *t = mem_alloc_pages(1);
        table[idx] = (uint64_t)(uintptr_t)t | TABLE;
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

/* The top GiB below 4 GiB (PCI MMIO hole, ECAM, IOAPIC) uncached, with one
 * 1 GiB page when the CPU has them (one store in emulated ring 0). */
static void map_device_space(void)
{
    const uint64_t dev = PTE_P | PTE_W | PTE_U | PTE_NX | PTE_PCD | PTE_PWT;
    uint64_t *pdpt = next_level(pml4, 0);
    uint32_t a, b, c, d;
    cpuid(0x80000001u, 0, &a, &b, &c, &d);
    if (d & CPUID_EXT_EDX_1G_PAGES) {
        pdpt[3] = 0xC0000000ull | dev | PTE_PS;
        return;
    }
    uint64_t *pd = next_level(pdpt, 3);
    for (uint64_t i = 0; i < 512; i++)
        pd[i] = (0xC0000000ull + i * LARGE) | dev | PTE_PS;
}

/* DMA windows from boot info: ordinary write-back memory, 2 MiB pages. */
static void map_windows(const struct moat_boot_info *bi)
{
    for (uint32_t w = 0; w < bi->n_windows && w < MOAT_WINDOWS_MAX; w++) {
        const struct moat_window_info *win = &bi->window[w];
        if (win->iova % LARGE || win->size % LARGE || win->iova < MOAT_GPA_DMA_BASE ||
            win->iova > MOAT_GPA_SESSION_BASE || win->size > MOAT_GPA_SESSION_BASE - win->iova)
            panic("DMA window %u (0x%lx+0x%lx) is not 2 MiB aligned in the DMA range",
                  w, win->iova, win->size);
        for (uint64_t a = win->iova; a < win->iova + win->size; a += LARGE)
            pd_for(a)[a >> 21 & 511] = a | PTE_P | PTE_W | PTE_U | PTE_NX | PTE_PS;
    }
}

/* Capability sessions: every slot's span, ordinary memory (the VMM installs
 * a slot's memory before it marks the slot open in the session table). One
 * 1 GiB page per GiB when the CPU has them. */
static void map_sessions(void)
{
    const uint64_t f = PTE_P | PTE_W | PTE_U | PTE_NX | PTE_PS;
    const uint64_t span = MOAT_SESSION_SLOTS * MOAT_SESSION_SPAN;
    uint32_t a, b, c, d;
    cpuid(0x80000001u, 0, &a, &b, &c, &d);
    for (uint64_t gb = MOAT_GPA_SESSION_BASE; gb < MOAT_GPA_SESSION_BASE + span; gb += 1ull << 30) {
        if (d & CPUID_EXT_EDX_1G_PAGES) {
            uint64_t *pdpt = next_level(pml4, (unsigned)(gb >> 39) & 511);
            pdpt[gb >> 30 & 511] = gb | f;
            continue;
        }
        uint64_t *pd = pd_for(gb);
        for (uint64_t i = 0; i < 512; i++)
            pd[i] = (gb + i * LARGE) | f;
    }
}

void paging_init(const struct moat_boot_info *bi)
{
    uint64_t ram = bi->ram_size;
    if (ram % LARGE || ram > MOAT_RAM_MAX)
        panic("RAM size 0x%lx is not a multiple of 2 MiB up to 1 GiB", ram);
    pml4 = mem_alloc_pages(1);
    pd0 = pd_for(0);
    const uint64_t ts = (uint64_t)(uintptr_t)__text_start, te = (uint64_t)(uintptr_t)__text_end;
    const uint64_t rs = (uint64_t)(uintptr_t)__rodata_start, re = (uint64_t)(uintptr_t)__rodata_end;
    const uint64_t fine_end = ((uint64_t)(uintptr_t)__kernel_end + LARGE - 1) & ~(LARGE - 1);

    for (uint64_t region = 0; region < fine_end; region += LARGE) {
        uint64_t *pt = mem_alloc_pages(1);
        pd0[region >> 21] = (uint64_t)(uintptr_t)pt | TABLE;
        /* Page 0 stays unmapped: a NULL dereference is a page fault. */
        for (uint64_t a = region ? region : PAGE, i = a >> 12 & 511; i < 512; i++, a += PAGE) {
            uint64_t f = PTE_P | PTE_U | PTE_W | PTE_NX;
            if (a >= ts && a < te)
                f = PTE_P | PTE_U;
            else if ((a >= rs && a < re) || a == MOAT_GPA_BOOT_INFO ||
                     a == MOAT_GPA_SESSION_TABLE)
                f = PTE_P | PTE_U | PTE_NX;
            pt[i] = a | f;
        }
    }
    for (uint64_t a = fine_end; a < ram; a += LARGE)
        pd0[a >> 21] = a | PTE_P | PTE_W | PTE_U | PTE_NX | PTE_PS;
    map_device_space();
    map_windows(bi);
    map_sessions();

    wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_NXE);
    write_cr0(read_cr0() | CR0_WP);
    write_cr3((uint64_t)(uintptr_t)pml4);
}
