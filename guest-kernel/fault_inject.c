/* Injected faults (contract in gk/fault_inject.h). */
#include "dd.h"
#include "gk/console.h"
#include "gk/fault_inject.h"
#include "gk/platform.h"
#include "gk/sys.h"
#include "dd_session.h"

static uint32_t seen_seq;           /* the last request raised */
static dd_fault_fn driver_fn;
static void *driver_ctx;

void gk_fault_init(void)
{
    struct moat_platform_page *p = platform_page();
    seen_seq = p->fault_seq;        /* a request left from before boot is stale */
    p->faults = MOAT_FAULTS_KERNEL;
}

void dd_fault_hook(dd_fault_fn fn, void *ctx, uint32_t kinds)
{
    driver_fn = fn;
    driver_ctx = ctx;
    struct moat_platform_page *p = platform_page();
    __atomic_store_n(&p->faults, MOAT_FAULTS_KERNEL | (kinds & MOAT_FAULTS_DRIVER),
                     __ATOMIC_RELEASE);
}

static _Noreturn void spin_forever(void)
{
    /* Ring 3, interrupts on, no heartbeat: only the watchdog can end it. */
    for (volatile uint64_t n = 0;; n++) {
    }
}

static bool raise_fault(uint32_t kind, uint64_t arg)
{
    switch (kind) {
    case MOAT_FAULT_TRIPLE_FAULT:
        sys_test_fault(SYS_FAULT_EMPTY_IDT);
        __asm__ volatile("ud2");    /* undeliverable: triple fault */
        break;
    case MOAT_FAULT_HANG:
        sys_test_fault(SYS_FAULT_HANG_IRQS_OFF);
        break;
    case MOAT_FAULT_SPIN:
        spin_forever();
    case MOAT_FAULT_PANIC:
        dd_panic("injected fault: panic");
    case MOAT_FAULT_WILD_MMIO: {
        /* Hosted: mapped (the device range is), decoded by nothing: the
         * VMM's MMIO bus finds no region and fail-stops the domain. Bare:
         * the monitor names an address of its own (arg), outside the
         * domain's map. */
        uint32_t v = *(volatile uint32_t *)(uintptr_t)(arg ? arg : MOAT_GPA_WILD_MMIO);
        (void)v;
        break;
    }
    case MOAT_FAULT_CORRUPT_SESSION:
        return dd_serve_corrupt_ring();
    default:
        if (driver_fn && (MOAT_FAULT_BIT(kind) & MOAT_FAULTS_DRIVER))
            return driver_fn(driver_ctx, kind, arg);
        return false;
    }
    return true;
}

bool gk_fault_poll(void)
{
    const struct moat_platform_page *p = platform_page();
    uint32_t seq = __atomic_load_n(&p->fault_seq, __ATOMIC_ACQUIRE);
    if (seq == seen_seq)
        return false;
    seen_seq = seq;
    uint32_t kind = p->fault_kind;
    uint64_t arg = p->fault_arg;
    kprintf("fault injected: %s\n", moat_fault_name(kind));
    if (!raise_fault(kind, arg)) {
        kprintf("fault %s: nothing to raise it on (declined)\n", moat_fault_name(kind));
        return false;
    }
    return true;
}
