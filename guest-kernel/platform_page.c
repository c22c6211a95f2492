/* The platform page from ring 3 (contract in gk/platform.h): plain stores
 * the host (hosted VMM or bare monitor) samples; no exit, no kernel entry.
 * Shared by the hosted kernel and bare domains. */
#include "gk/cpu.h"
#include "gk/platform.h"

void platform_heartbeat(void)
{
    /* A plain store the host samples; no ordering with anything else needed. */
    struct moat_platform_page *page = platform_page();
    __atomic_store_n(&page->heartbeat, page->heartbeat + 1, __ATOMIC_RELAXED);
}

void platform_boot_mark(enum moat_boot_mark m)
{
    struct moat_platform_page *page = platform_page();
    if ((unsigned)m < MOAT_BOOT_MARKS && page->boot_tsc[m] == 0)
        __atomic_store_n(&page->boot_tsc[m], rdtsc(), __ATOMIC_RELAXED);
}
