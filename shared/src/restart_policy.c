/* Restart policy, budget and breaker (contract in moat/restart_policy.h).
 * Freestanding: the VMM and the bare monitor link it. */
#include "moat/restart_policy.h"

static const char *const policy_names[] = {
    [RESTART_DEFAULT] = "default", [RESTART_NEVER] = "never",
    [RESTART_ON_FAILURE] = "on-failure", [RESTART_ALWAYS] = "always",
};

static bool same(const char *a, const char *b)
{
    while (*a && *a == *b)
        a++, b++;
    return *a == *b;
}

const char *restart_policy_name(enum restart_policy p)
{
    return (unsigned)p <= RESTART_ALWAYS ? policy_names[p] : "unknown";
}

bool restart_policy_parse(const char *s, enum restart_policy *out)
{
    for (unsigned p = RESTART_NEVER; p <= RESTART_ALWAYS; p++) {
        if (same(s, policy_names[p])) {
            *out = (enum restart_policy)p;
            return true;
        }
    }
    return false;
}

/* Decimal digits from *s up to a non-digit, into *out (no overflow past
 * UINT32_MAX); false when there are none. */
static bool digits(const char **s, uint32_t *out)
{
    uint64_t v = 0;
    const char *p = *s;
    for (; *p >= '0' && *p <= '9'; p++)
        if ((v = v * 10 + (uint64_t)(*p - '0')) > UINT32_MAX)
            return false;
    if (p == *s)
        return false;
    *s = p;
    *out = (uint32_t)v;
    return true;
}

bool restart_budget_parse(const char *s, uint32_t *max, uint32_t *window_ms)
{
    uint32_t n, t, unit;
    if (!digits(&s, &n) || *s++ != '/' || !digits(&s, &t))
        return false;
    if (same(s, "ms"))
        unit = 1;
    else if (same(s, "s"))
        unit = 1000;
    else
        return false;
    if (n == 0 || n > RESTART_BUDGET_MAX || t == 0 || t > UINT32_MAX / unit)
        return false;
    *max = n;
    *window_ms = t * unit;
    return true;
}

void restart_budget_init(struct restart_budget *b, uint32_t max, uint32_t window_ms)
{
    *b = (struct restart_budget){ .max = max > RESTART_BUDGET_MAX ? RESTART_BUDGET_MAX : max,
                                  .window_ms = window_ms };
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
