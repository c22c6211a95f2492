/*
 * storm.h — telling a storm from a few events: counts events in a fixed
 * window of time and says when the count reaches a limit (a driver that
 * resets its device into a fatal state over and over, DOMAIN_FATAL_STORM).
 *
 * Any thread may call storm_hit (relaxed atomics, no lock): concurrent
 * calls may start a new window together and lose a count at the window's
 * edge, never report a storm that did not happen within two windows.
 */
#ifndef MOAT_STORM_H
#define MOAT_STORM_H

#include <stdbool.h>
#include <stdint.h>

struct storm {
    uint64_t window_start_ns;
    uint64_t in_window;
};

/* Count one event at now_ns. *count: events in the current window,
 * this one included. True when *count >= limit. */
bool storm_hit(struct storm *s, uint64_t now_ns, uint64_t window_ns, uint64_t limit,
               uint64_t *count);

#endif /* MOAT_STORM_H */
