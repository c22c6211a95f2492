/* Supervision of the bare monitor's domains (contract in dom_internal.h):
 * a domain that ended is started again per its policy and restart budget
 * (moat/restart_policy.h, the VMM's own rules), once its devices have
 * settled from their reset; a spent budget opens the breaker until the
 * operator restarts it from the console. */
#include "com1.h"
#include "dom_internal.h"
#include "dom_pci.h"
#include "gk/cmdline.h"
#include "gk/console.h"
#include "gk/cpu.h"

static uint64_t now_ns(void) { return rdtsc() / dom_tsc_khz() * 1000000ull; }

const char *dom_supervise_words(struct dom *d, const char *cmd)
{
    char v[24];
    if (d->incarnation)         /* the policy and the budget stay across restarts */
        return NULL;
    d->restart = RESTART_ON_FAILURE;
    uint32_t max = RESTART_DEFAULT_MAX, window_ms = RESTART_DEFAULT_WINDOW_MS;
    if (cmdline_get(cmd, "restart", v, sizeof v) && !restart_policy_parse(v, &d->restart))
        return "restart= must be never, on-failure (after a crash) or always (after a crash "
               "or an exit)";
    if (cmdline_get(cmd, "restarts", v, sizeof v) && !restart_budget_parse(v, &max, &window_ms))
        return "restarts= must be N/SECONDSs or N/MSms, at most N automatic restarts per "
               "window (e.g. restarts=5/30s)";
    restart_budget_init(&d->budget, max, window_ms);
    return NULL;
}

static void schedule(struct dom *d, uint64_t delay_ns)
{
    uint64_t at = rdtsc() + delay_ns / 1000000ull * dom_tsc_khz(), settle = dom_pci_settle_tsc(d);
    d->restart_tsc = at > settle ? at : settle;
    d->restart_pending = true;
}

void dom_supervise_ended(struct dom *d, enum dom_end_kind kind)
{
    uint64_t delay_ns;
    if (kind == DOM_END_OPERATOR)
        return;
    switch (restart_decide(d->restart, kind == DOM_END_CRASH, &d->budget, now_ns(), &delay_ns)) {
    case RESTART_STAY_DOWN:
        dom_log(d, "stays down (restart=%s)", restart_policy_name(d->restart));
        dom_session_server_down(d);
        return;
    case RESTART_BREAKER_OPEN:
        d->breaker_open = true;
        dom_log(d, "stays down: %u automatic restarts in %u s spent its budget (breaker open; "
                "'restart %s' closes it)", d->budget.max, d->budget.window_ms / 1000, d->name);
        dom_session_server_down(d);
        return;
    case RESTART_AFTER_DELAY:
        schedule(d, delay_ns);
        d->auto_restart = true;
        uint64_t now = rdtsc();
        dom_log(d, "restart %u of %u in %u s, in %llu ms", d->budget.n, d->budget.max,
                d->budget.window_ms / 1000, (unsigned long long)(d->restart_tsc > now ?
                                                                 (d->restart_tsc - now) /
                                                                 dom_tsc_khz() : 0));
        return;
    }
}

void dom_supervise_restart(struct dom *d)
{
    if (d->state != DOM_DEAD)
        dom_end(d, "restarted from the console", DOM_END_OPERATOR);
    d->breaker_open = false;
    d->crash_loop = false;
    restart_budget_clear(&d->budget);
    d->auto_restart = false;
    schedule(d, 0);
}

void dom_supervise_ready(struct dom *d)
{
    if (d->crash_loop)
        dom_kill(d, "crash-loop: killed as it became ready (injected)");
}

void dom_supervise_poll(void)
{
    uint32_t n;
    struct dom *doms = dom_table(&n);
    for (uint32_t i = 0; i < n; i++) {
        struct dom *d = &doms[i];
        if (d->state != DOM_DEAD || !d->restart_pending || rdtsc() < d->restart_tsc)
            continue;
        d->restart_pending = false;
        const char *why = dom_start(d);
        if (why) {
            dom_log(d, "restart failed: %s", why);
            dom_supervise_ended(d, DOM_END_CRASH);   /* a failed start counts as a crash */
            continue;
        }
        dom_log(d, "restarted%s: memory scrubbed, image reloaded, devices reset, incarnation %u",
                d->auto_restart ? " after its end" : "", d->incarnation);
    }
}

void dom_supervise_describe(const struct dom *d, char *out, size_t len)
{
    ksnprintf(out, len, "restart=%s, %u of %u restarts used in %u s%s%s",
              restart_policy_name(d->restart), restart_budget_used(&d->budget, now_ns()),
              d->budget.max, d->budget.window_ms / 1000, d->breaker_open ? ", breaker open" : "",
              d->crash_loop ? ", crash-loop injected" : "");
}
