/* The domain run loop (contract in gk/runtime.h). */
#include "gk/cpu.h"
#include "gk/platform.h"
#include "gk/runtime.h"
#include "gk/timer.h"
#include "gk/trap.h"

static struct { gk_poll_fn fn; void *ctx; } pollers[GK_POLLERS_MAX];
static unsigned n_pollers;
static uint64_t last_tick;

bool gk_poller_add(gk_poll_fn fn, void *ctx)
{
    if (!fn || n_pollers == GK_POLLERS_MAX)
        return false;
    pollers[n_pollers].fn = fn;
    pollers[n_pollers].ctx = ctx;
    n_pollers++;
    return true;
}

void gk_run_once(void)
{
    uint64_t irqs_seen = trap_irq_count();
    uint64_t t = timer_ticks();
    if (t != last_tick) {
        last_tick = t;
        platform_heartbeat();
    }
    bool work = false;
    for (unsigned i = 0; i < n_pollers; i++)
        work |= pollers[i].fn(pollers[i].ctx);
    if (work)
        return;
    /* Sleep only if no interrupt arrived since we started polling. */
    cli();
    if (trap_irq_count() == irqs_seen)
        sti_hlt();
    else
        sti();
}

_Noreturn void gk_run(void)
{
    for (;;)
        gk_run_once();
}

bool gk_wait_flag(volatile uint32_t *flag, uint64_t timeout_ns)
{
    uint64_t deadline = timer_now_ns() + timeout_ns;
    while (!*flag) {
        if (timer_now_ns() >= deadline)
            return false;
        gk_run_once();
    }
    return true;
}
