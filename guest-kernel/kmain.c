/* Guest kernel bring-up: validate boot info, bring up each subsystem in
 * dependency order, then leave ring 0 for good: the domain image runs in
 * ring 3 (see gk/sys.h for why) and the kernel is entered only by traps. */
#include "gk/console.h"
#include "gk/cpu.h"
#include "gk/domain.h"
#include "gk/fault_inject.h"
#include "gk/lapic.h"
#include "gk/mem.h"
#include "gk/paging.h"
#include "gk/panic.h"
#include "gk/platform.h"
#include "gk/sys.h"
#include "gk/timer.h"
#include "gk/trap.h"

#define USER_STACK_SIZE (64u << 10)

extern char boot_stack_top[];
/* In .bss: zeroed by the loader, not by emulated ring-0 code. */
static uint8_t user_stack[USER_STACK_SIZE] __attribute__((aligned(4096)));

void kmain(const struct moat_boot_info *bi);

static uint32_t boot_apic_id;   /* read in ring 0 (an MSR), printed in ring 3 */

static void user_main(const char *cmdline)
{
    /* Formatted here, in ring 3: ring 0 is emulated on the target hosts and
     * formatting this line there took over a millisecond. */
    kprintf("moat guest kernel: %lu MiB RAM, TSC %lu kHz, x2APIC id %u, args \"%s\"\n",
            platform_boot_info()->ram_size >> 20, timer_tsc_khz(), boot_apic_id, cmdline);
    domain_main(cmdline);
    sys_exit(0);
}

void kmain(const struct moat_boot_info *bi)
{
    /* Before platform_init a panic still reaches the host (no record). */
    if (!bi || bi->magic != MOAT_BOOT_MAGIC || bi->version != MOAT_BOOT_VERSION ||
        bi->size != sizeof *bi)
        panic("boot info missing or of another version");
    platform_init(bi);
    platform_boot_mark(MOAT_BOOT_KERNEL);
    gk_fault_init();
    gdt_init();
    idt_init();
    mem_init(bi);
    paging_init(bi);
    lapic_init();
    timer_init(bi->tsc_khz);
    boot_apic_id = lapic_id();
    gdt_set_kernel_stack((uint64_t)(uintptr_t)boot_stack_top);
    platform_boot_mark(MOAT_BOOT_USER);
    enter_user(user_main, (uint64_t)(uintptr_t)(user_stack + sizeof user_stack), bi->cmdline);
}
