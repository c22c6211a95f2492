/* The kernel's page tables (contract in gk/paging.h). The map itself is
 * moat/kernel_map.h's; a loader that built it (moat's VMM: ring 0 is
 * emulated on the hosted targets) entered the kernel with it loaded. */
#include "gk/cpu.h"
#include "gk/mem.h"
#include "gk/paging.h"
#include "gk/panic.h"
#include "moat/kernel_map.h"

extern char __text_start[], __text_end[], __rodata_start[], __rodata_end[];
extern char __kernel_end[];

static uint64_t *table_page(void *ctx, uint64_t *pa)
{
    (void)ctx;
    uint64_t *t = mem_alloc_pages(1);       /* zeroed; identity-mapped */
    *pa = (uint64_t)(uintptr_t)t;
    return t;
}

void paging_init(const struct moat_boot_info *bi)
{
    if (bi->flags & MOAT_BOOT_F_KERNEL_MAP) {
        if (read_cr3() != bi->kernel_map)
            panic("boot info says the loader built the page tables at 0x%lx, CR3 is 0x%lx",
                  bi->kernel_map, read_cr3());
        return;
    }
    uint32_t a, b, c, d;
    cpuid(0x80000001u, 0, &a, &b, &c, &d);
    struct kmap_params p = {
        .image = {
            .text_start = (uint64_t)(uintptr_t)__text_start,
            .text_end = (uint64_t)(uintptr_t)__text_end,
            .rodata_start = (uint64_t)(uintptr_t)__rodata_start,
            .rodata_end = (uint64_t)(uintptr_t)__rodata_end,
            .end = (uint64_t)(uintptr_t)__kernel_end,
        },
        .ram_size = bi->ram_size,
        .windows = bi->window,
        .n_windows = bi->n_windows,
        .gb_pages = (d & CPUID_EXT_EDX_1G_PAGES) != 0,
        .page = table_page,
    };
    uint64_t cr3;
    const char *why = kmap_build(&p, &cr3);
    if (why)
        panic("paging: %s", why);
    wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_NXE);
    write_cr0(read_cr0() | CR0_WP);
    write_cr3(cr3);
}
