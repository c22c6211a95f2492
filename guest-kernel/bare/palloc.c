/* Physical pages of the bare monitor (contract in palloc.h). */
#include "gk/kstring.h"
#include "palloc.h"

#define PAGE 4096ull
#define LIMIT (4ull << 30)

extern char __bss_end[];

struct run { uint64_t next, end; };
static struct run run[BOOT_RANGES_MAX];
static uint32_t n_runs;

void palloc_init(const struct boot_desc *b)
{
    uint64_t floor = (uint64_t)(uintptr_t)__bss_end;
    for (uint32_t i = 0; i < b->n_modules && i < BOOT_MODULES_MAX; i++)
        if (b->module[i].end > floor)
            floor = b->module[i].end;
    floor = (floor + PAGE - 1) & ~(PAGE - 1);
    for (uint32_t i = 0; i < b->n_ram; i++) {
        const struct boot_range *r = &b->ram[i];
        uint64_t lo = r->base < floor ? floor : r->base;
        uint64_t hi = r->base + r->len > LIMIT ? LIMIT : r->base + r->len;
        lo = (lo + PAGE - 1) & ~(PAGE - 1);
        hi &= ~(PAGE - 1);
        if (r->type == 1 && lo < hi)
            run[n_runs++] = (struct run){ lo, hi };
    }
}

uint64_t palloc(uint64_t pages, uint64_t align)
{
    if (align < PAGE)
        align = PAGE;
    uint64_t bytes = pages * PAGE;
    for (uint32_t i = 0; i < n_runs; i++) {
        uint64_t at = (run[i].next + align - 1) & ~(align - 1);
        if (at >= run[i].end || bytes > run[i].end - at)
            continue;
        run[i].next = at + bytes;
        memset((void *)(uintptr_t)at, 0, bytes);
        return at;
    }
    return 0;
}

uint64_t palloc_free_bytes(void)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i < n_runs; i++)
        n += run[i].end - run[i].next;
    return n;
}
