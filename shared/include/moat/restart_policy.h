/*
 * restart_policy.h — when a domain that ended is started again (DESIGN §6).
 *
 *   restart=never        an ended domain stays down
 *   restart=on-failure   restart after a crash (any crash cause, a failed
 *                        start included), not after an orderly exit
 *   restart=always       restart after a crash or an exit
 * An operator stop is never followed by a restart, whatever the policy.
 *
 * A budget bounds automatic restarts: at most `max` in any `window_ms`.
 * The first restart in a quiet window is immediate (crash -> service
 * restored as fast as a boot allows); each further one in the same window
 * waits twice as long as the last, from RESTART_BACKOFF_FIRST_MS up to
 * RESTART_BACKOFF_MAX_MS. A restart that would exceed the budget opens the
 * breaker instead: the domain stays down with the reason, until an operator
 * closes it (restart_budget_clear, `moatctl restart`).
 *
 * Pure logic (no threads, no clock reads, freestanding): the caller passes
 * the time and keeps the state under its own lock. The VMM and the bare
 * monitor share it.
 */
#ifndef MOAT_RESTART_POLICY_H
#define MOAT_RESTART_POLICY_H

#include <stdbool.h>
#include <stdint.h>

enum restart_policy { RESTART_DEFAULT = 0, RESTART_NEVER, RESTART_ON_FAILURE, RESTART_ALWAYS };

#define RESTART_BUDGET_MAX        64u   /* largest `max` a spec may give */
#define RESTART_DEFAULT_MAX       5u
#define RESTART_DEFAULT_WINDOW_MS 30000u
#define RESTART_BACKOFF_FIRST_MS  10u
#define RESTART_BACKOFF_MAX_MS    1000u

struct restart_budget {
    uint32_t max;                       /* restarts allowed per window */
    uint32_t window_ms;
    uint64_t when_ns[RESTART_BUDGET_MAX];   /* automatic restarts, oldest first */
    uint32_t n;
};

enum restart_verdict {
    RESTART_STAY_DOWN,      /* the policy does not restart this end */
    RESTART_AFTER_DELAY,    /* restart once *delay_ns has passed */
    RESTART_BREAKER_OPEN,   /* the budget is spent: stay down until reset */
};

const char *restart_policy_name(enum restart_policy p);
/* "never" / "on-failure" / "always" -> policy; false for anything else. */
bool restart_policy_parse(const char *s, enum restart_policy *out);

/* "N/Ts" or "N/Tms": at most N (1..RESTART_BUDGET_MAX) automatic restarts
 * in any window of T seconds or milliseconds; false for anything else. */
bool restart_budget_parse(const char *s, uint32_t *max, uint32_t *window_ms);
void restart_budget_init(struct restart_budget *b, uint32_t max, uint32_t window_ms);
/* Forget every restart counted (an operator closed the breaker). */
void restart_budget_clear(struct restart_budget *b);
/* Restarts counted in the window ending at now_ns. */
uint32_t restart_budget_used(const struct restart_budget *b, uint64_t now_ns);

/* A domain ended at now_ns (crashed: it failed). Decide, and when the
 * verdict is RESTART_AFTER_DELAY count the restart in b and set *delay_ns.
 * policy must not be RESTART_DEFAULT (resolve it first). */
enum restart_verdict restart_decide(enum restart_policy policy, bool crashed,
                                    struct restart_budget *b, uint64_t now_ns,
                                    uint64_t *delay_ns);

#endif /* MOAT_RESTART_POLICY_H */
