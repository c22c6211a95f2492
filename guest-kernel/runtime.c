/* The domain run loop (contract in gk/runtime.h). Ring 3. */
#include "gk/event.h"
#include "gk/fault_inject.h"
#include "gk/platform.h"
#include "gk/runtime.h"
#include "gk/stop.h"
#include "gk/sys.h"
#include "gk/timer.h"
#include "gk/trap.h"

/* Pollers and idle hooks: same signature, one table each. */
struct hook { bool (*fn)(void *ctx); void *ctx; };
static struct hook pollers[GK_POLLERS_MAX], idlers[GK_IDLERS_MAX];
static unsigned n_pollers, n_idlers;
static uint64_t last_tick, last_work_ns, last_yield_ns, spin_ns = GK_SPIN_NS_DEFAULT;

static bool hook_add(struct hook *table, unsigned *n, unsigned max, bool (*fn)(void *),
                     void *ctx)
{
    if (!fn || *n == max)
        return false;
    table[(*n)++] = (struct hook){ fn, ctx };
    return true;
}

bool gk_poller_add(gk_poll_fn fn, void *ctx)
{
    return hook_add(pollers, &n_pollers, GK_POLLERS_MAX, fn, ctx);
}

bool gk_idle_add(gk_idle_fn fn, void *ctx)
{
    return hook_add(idlers, &n_idlers, GK_IDLERS_MAX, fn, ctx);
}

void gk_spin_set(uint64_t ns) { spin_ns = ns; }

void gk_run_once(void)
{
    /* Sample before looking for work: an interrupt after this point makes
     * SYS_WAIT return at once instead of sleeping past it. */
    uint64_t irqs_seen = trap_irq_count();
    uint64_t t = timer_ticks();
    if (t != last_tick) {
        last_tick = t;
        platform_heartbeat();
    }
    bool work = gk_fault_poll();   /* an injected fault hits mid-work */
    work |= gk_stop_poll();
    work |= gk_event_dispatch();
    for (unsigned i = 0; i < n_pollers; i++)
        work |= pollers[i].fn(pollers[i].ctx);
    uint64_t now = timer_now_ns();
    if (work) {
        last_work_ns = now;
        return;
    }
    if (now - last_work_ns < spin_ns) {
        /* Idle a while: whoever we wait for (a device worker, a client)
         * may be queued behind us on this host CPU. */
        if (now - last_yield_ns >= GK_YIELD_NS && now - last_work_ns >= GK_YIELD_NS) {
            last_yield_ns = now;
            platform_yield();
        }
        return;
    }
    /* Every hook arms, even after one saw work: the next pass may sleep. */
    for (unsigned i = 0; i < n_idlers; i++)
        work |= idlers[i].fn(idlers[i].ctx);
    if (!work)
        sys_wait(irqs_seen);
}

_Noreturn void gk_run(void)
{
    gk_stop_watch();
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
