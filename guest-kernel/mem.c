/* Page-frame bump allocator over private RAM (contract in gk/mem.h).
 * A bump allocator never hands a page out twice, so when the loader
 * guarantees zeroed RAM (MOAT_BOOT_F_RAM_ZEROED) pages need no zeroing;
 * ring 0 is emulated on the target hosts and zeroing a page there costs
 * about a millisecond. */
#include "gk/kstring.h"
#include "gk/mem.h"
#include "gk/panic.h"

#define PAGE 4096ull

extern char __kernel_end[];

static uint64_t next, limit;
static bool ram_zeroed;

void mem_init(const struct moat_boot_info *bi)
{
    ram_zeroed = bi->flags & MOAT_BOOT_F_RAM_ZEROED;
    uint64_t kend = ((uint64_t)(uintptr_t)__kernel_end + PAGE - 1) & ~(PAGE - 1);
    for (uint32_t i = 0; i < bi->n_mem && i < MOAT_MEM_REGIONS_MAX; i++) {
        const struct moat_mem_region *r = &bi->mem[i];
        if (r->kind == MOAT_MEM_RAM && r->base <= kend && kend < r->base + r->size) {
            next = kend;
            /* The loader's page tables follow the image (gk/paging.h). */
            if ((bi->flags & MOAT_BOOT_F_KERNEL_MAP) && bi->ram_free > kend &&
                bi->ram_free < r->base + r->size && bi->ram_free % PAGE == 0)
                next = bi->ram_free;
            limit = r->base + r->size;
            return;
        }
    }
    panic("no RAM region in boot info contains the kernel end 0x%lx", kend);
}

void *mem_alloc_pages(size_t n)
{
    uint64_t bytes = (uint64_t)n * PAGE;
    if (n == 0 || bytes / PAGE != n || bytes > limit - next)
        panic("out of memory: %zu pages requested, %lu bytes free",
              n, limit - next);
    void *p = (void *)(uintptr_t)next;
    next += bytes;
    if (!ram_zeroed)
        memset(p, 0, bytes);
    return p;
}
