/* Hosted platform interface (contract in gk/platform.h, ABI in
 * moat/platform_abi.h): ports for rare events, shared page for the rest. */
#include "gk/cpu.h"
#include "gk/event.h"
#include "gk/mem.h"
#include "gk/platform.h"

static const struct moat_boot_info *boot_info;
static struct moat_platform_page *page;

void platform_init(const struct moat_boot_info *bi)
{
    boot_info = bi;
    page = (struct moat_platform_page *)(uintptr_t)bi->platform_page;
}

const struct moat_boot_info *platform_boot_info(void) { return boot_info; }

static uint64_t event_pending[4];
uint64_t *gk_event_pending(void) { return event_pending; }
struct moat_platform_page *platform_page(void) { return page; }

void platform_ready(void) { outl(MOAT_PLAT_PORT_READY, 1); }

void platform_request_msi(uint32_t vector)
{
    outl(MOAT_PLAT_PORT_MSI_TEST, vector);
}

int32_t platform_call(uint16_t port, uint32_t value)
{
    volatile int32_t *result = &platform_page()->result;
    *result = 1;                /* not a value the host ever leaves */
    outl(port, value);
    return *result;
}

void platform_yield(void)
{
    *(volatile uint32_t *)(uintptr_t)(MOAT_GPA_PLATFORM_MMIO + MOAT_PLAT_MMIO_YIELD) = 0;
}

_Noreturn void platform_exit(uint32_t code)
{
    cli();
    for (;;) {
        outl(MOAT_PLAT_PORT_EXIT, code);
        hlt();
    }
}

_Noreturn void platform_crash(void)
{
    cli();
    for (;;) {
        /* Release: the record must be visible before the host reads it. */
        __atomic_thread_fence(__ATOMIC_RELEASE);
        outl(MOAT_PLAT_PORT_CRASH, 1);
        hlt();
    }
}

/* Hosted, the platform's pages and the session windows are identity-mapped. */
void *gk_gpa_ptr(uint64_t gpa) { return (void *)(uintptr_t)gpa; }
