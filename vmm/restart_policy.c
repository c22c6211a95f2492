/* Restart policy, budget and breaker (contract in restart_policy.h). */
#include <string.h>
#include "enum_name.h"
#include "restart_policy.h"

static const char *const policy_names[] = {
    [RESTART_DEFAULT] = "default", [RESTART_NEVER] = "never",
    [RESTART_ON_FAILURE] = "on-failure", [RESTART_ALWAYS] = "always",
};

const char *restart_policy_name(enum restart_policy p)
{
    return ENUM_NAME(policy_names, p);
}

bool restart_policy_parse(const char *s, enum restart_policy *out)
{
    for (unsigned p = RESTART_NEVER; p <= RESTART_ALWAYS; p++) {
        if (!strcmp(s, policy_names[p])) {
            *out = (enum restart_policy)p;
            return true;
        }
    }
    return false;
}

void restart_budget_init(struct restart_budget *b, uint32_t max, uint32_t window_ms)
{
    memset(b, 0, sizeof *b);
    b->max = max > RESTART_BUDGET_MAX ? RESTART_BUDGET_MAX : max;
    b->window_ms = window_ms;
}

void restart_budget_clear(struct restart_budget *b)
{
    b->n = 0;
}

/* Drop the restarts that fell out of the window ending at now. */
static void expire(struct restart_budget *b, uint64_t now)
{
    uint64_t window = (uint64_t)b->window_ms * 1000000u;
    uint32_t keep = 0;
    for (uint32_t i = 0; i < b->n; i++)
        if (now - b->when_ns[i] < window)
            b->when_ns[keep++] = b->when_ns[i];
    b->n = keep;
}

uint32_t restart_budget_used(const struct restart_budget *b, uint64_t now_ns)
{
    struct restart_budget copy = *b;
    expire(&copy, now_ns);
    return copy.n;
}

enum restart_verdict restart_decide(enum restart_policy policy, bool crashed,
                                    struct restart_budget *b, uint64_t now_ns,
                                    uint64_t *delay_ns)
{
    *delay_ns = 0;
    if (policy == RESTART_NEVER || policy == RESTART_DEFAULT ||
        (policy == RESTART_ON_FAILURE && !crashed))
        return RESTART_STAY_DOWN;
    expire(b, now_ns);
    if (b->n >= b->max)
        return RESTART_BREAKER_OPEN;
    if (b->n > 0) {
        uint64_t ms = RESTART_BACKOFF_FIRST_MS;
        for (uint32_t i = 1; i < b->n && ms < RESTART_BACKOFF_MAX_MS; i++)
            ms *= 2;
        if (ms > RESTART_BACKOFF_MAX_MS)
            ms = RESTART_BACKOFF_MAX_MS;
        *delay_ns = ms * 1000000u;
    }
    b->when_ns[b->n++] = now_ns;
    return RESTART_AFTER_DELAY;
}
