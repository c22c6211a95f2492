/*
 * gk/timer.h — monotonic time from the TSC and a periodic tick.
 *
 * The TSC rate comes from boot info (the VMM reads KVM_GET_TSC_KHZ); when it
 * is 0 (bare boot) it is taken from CPUID 0x15/0x16, else the kernel panics.
 * The tick (GK_TICK_NS) drives the heartbeat; it is re-armed in the handler.
 */
#ifndef GK_TIMER_H
#define GK_TIMER_H

#include <stdint.h>

#define GK_TICK_NS ((uint64_t)10000000)  /* 10 ms */

void timer_init(uint64_t tsc_khz);
uint64_t timer_now_ns(void);
uint64_t timer_ticks(void);
uint64_t timer_tsc_khz(void);
/* Pure: ns elapsed for tsc_delta ticks at khz, without 128-bit arithmetic. */
static inline uint64_t timer_tsc_to_ns(uint64_t tsc_delta, uint64_t khz)
{
    /* ns = delta * 1e6 / khz, split so nothing overflows 64 bits for any
     * delta (remainder * 1e6 < khz * 1e6, and khz < 2^32 in practice). */
    return tsc_delta / khz * 1000000ull + (tsc_delta % khz) * 1000000ull / khz;
}

#endif /* GK_TIMER_H */
