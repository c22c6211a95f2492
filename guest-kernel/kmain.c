/* Guest kernel bring-up: validate boot info, then each subsystem in
 * dependency order, then hand over to the domain image. */
#include "gk/console.h"
#include "gk/cpu.h"
#include "gk/domain.h"
#include "gk/lapic.h"
#include "gk/mem.h"
#include "gk/paging.h"
#include "gk/panic.h"
#include "gk/platform.h"
#include "gk/timer.h"
#include "gk/trap.h"

void kmain(const struct moat_boot_info *bi);

void kmain(const struct moat_boot_info *bi)
{
    /* Before platform_init a panic still reaches the host (no record). */
    if (!bi || bi->magic != MOAT_BOOT_MAGIC || bi->version != MOAT_BOOT_VERSION ||
        bi->size != sizeof *bi)
        panic("boot info missing or of another version");
    platform_init(bi);
    gdt_init();
    idt_init();
    mem_init(bi);
    paging_init(bi);
    lapic_init();
    timer_init(bi->tsc_khz);
    sti();
    kprintf("moat guest kernel: %lu MiB RAM, TSC %lu kHz, x2APIC id %u, args \"%s\"\n",
            bi->ram_size >> 20, timer_tsc_khz(), lapic_id(), bi->cmdline);
    domain_main(bi->cmdline);
    platform_exit(0);
}
