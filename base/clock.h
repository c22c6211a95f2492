/*
 * clock.h — the one clock of moat's host side: CLOCK_MONOTONIC in
 * nanoseconds (never goes back, not the wall time). Header-only.
 */
#ifndef MOAT_CLOCK_H
#define MOAT_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t clock_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#endif /* MOAT_CLOCK_H */
