/* The runtime of a driver domain the bare monitor runs in ring 3 (layout
 * in bare_dom.h): what the hosted guest kernel gives its ring-3 code —
 * boot info, the platform page, events, time, console, panic — here read
 * from the pages the monitor mapped or asked of it by system call. The
 * dd_* API above it is the hosted one, unchanged (dd_core.c, dd_dma.c,
 * dd_irq.c, dd_pci.c over dd_hw_bare.c, runtime.c, and dd_serve.c for the
 * sessions a block driver serves). */
#include <stdarg.h>
#include "bare_dom.h"
#include "dd.h"
#include "gk/console.h"
#include "gk/cpu.h"
#include "gk/event.h"
#include "gk/fault_inject.h"
#include "gk/mem.h"
#include "gk/panic.h"
#include "gk/platform.h"
#include "gk/sys.h"
#include "gk/timer.h"
#include "gk/trap.h"
#include "moat/layout.h"

static uint64_t tsc_start, heap_next, heap_end;

void dom_start(void);

const struct moat_boot_info *platform_boot_info(void)
{
    return (const struct moat_boot_info *)(uintptr_t)BARE_DOM_VA_BOOTINFO;
}

struct moat_platform_page *platform_page(void)
{
    return (struct moat_platform_page *)(uintptr_t)BARE_DOM_VA_PLATFORM;
}

static struct bare_dom_events *events(void)
{
    return (struct bare_dom_events *)(uintptr_t)BARE_DOM_VA_EVENTS;
}

uint64_t *gk_event_pending(void) { return events()->pending; }
uint64_t trap_irq_count(void) { return __atomic_load_n(&events()->irq_count, __ATOMIC_ACQUIRE); }
uint64_t timer_ticks(void) { return __atomic_load_n(&events()->ticks, __ATOMIC_RELAXED); }
uint64_t timer_tsc_khz(void) { return platform_boot_info()->tsc_khz; }
uint64_t timer_now_ns(void) { return timer_tsc_to_ns(rdtsc() - tsc_start, timer_tsc_khz()); }

/* The session ABI's hosted addresses, where the monitor maps them here. */
void *gk_gpa_ptr(uint64_t gpa)
{
    if (gpa >= MOAT_GPA_SESSION_TABLE && gpa - MOAT_GPA_SESSION_TABLE < 4096)
        return (void *)(uintptr_t)(BARE_DOM_VA_SESSION_TABLE + gpa - MOAT_GPA_SESSION_TABLE);
    if (gpa >= MOAT_GPA_SESSION_DOORBELL && gpa - MOAT_GPA_SESSION_DOORBELL < 4ull * BARE_DOM_SESSIONS)
        return (void *)(uintptr_t)(BARE_DOM_VA_DOORBELLS + gpa - MOAT_GPA_SESSION_DOORBELL);
    uint64_t off = gpa - MOAT_GPA_SESSION_BASE, slot = off / MOAT_SESSION_SPAN;
    if (gpa >= MOAT_GPA_SESSION_BASE && slot < BARE_DOM_SESSIONS &&
        off % MOAT_SESSION_SPAN < BARE_DOM_SESSION_SIZE)
        return (void *)(uintptr_t)(BARE_DOM_VA_SESSIONS + slot * BARE_DOM_SESSION_SIZE +
                                   off % MOAT_SESSION_SPAN);
    panic("no bare mapping for platform address 0x%lx", gpa);
}

/* The heap: the one RAM region of the boot info, handed out in pages
 * (gk/mem.h's contract: zeroed, kept, exhaustion a panic). */
void *mem_alloc_pages(size_t n)
{
    const struct moat_boot_info *bi = platform_boot_info();
    if (!heap_end) {
        if (bi->n_mem == 0 || bi->mem[0].kind != MOAT_MEM_RAM)
            panic("boot info gives no heap");
        heap_next = bi->mem[0].base;
        heap_end = bi->mem[0].base + bi->mem[0].size;
    }
    uint64_t bytes = (uint64_t)n * 4096;
    if (!n || bytes > heap_end - heap_next)
        panic("out of private memory: %lu pages asked, %lu bytes left", (uint64_t)n,
              heap_end - heap_next);
    void *p = (void *)(uintptr_t)heap_next;
    heap_next += bytes;
    return p;                   /* the monitor hands out zeroed pages */
}

/* One CPU, and the monitor's tick preempts a spinning domain: nothing to hint. */
void platform_yield(void) {}

void console_write(const char *s, size_t len) { sys_console_write(s, len); }

_Noreturn void panic(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    panic_user_v(fmt, ap);
}

/* Entered from dom_entry.S on the domain's stack, interrupts on. */
void dom_start(void)
{
    tsc_start = rdtsc();
    const struct moat_boot_info *bi = platform_boot_info();
    if (bi->magic != MOAT_BOOT_MAGIC || bi->version != MOAT_BOOT_VERSION ||
        bi->size != sizeof *bi || bi->platform != MOAT_PLATFORM_BARE || !bi->tsc_khz)
        panic("boot info missing, of another version or without a TSC rate");
    platform_boot_mark(MOAT_BOOT_USER);
    gk_fault_init();
    domain_main(bi->cmdline);
    sys_exit(0);
}
