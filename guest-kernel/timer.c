/* Monotonic time and the periodic tick (contract in gk/timer.h). */
#include "gk/cpu.h"
#include "gk/lapic.h"
#include "gk/panic.h"
#include "gk/platform.h"
#include "gk/timer.h"
#include "gk/trap.h"

static uint64_t tsc_khz;
static uint64_t tsc_start;
static uint64_t tick_tsc;
static uint64_t next_deadline;
static volatile uint64_t ticks;

static uint64_t khz_from_cpuid(void)
{
    uint32_t a, b, c, d;
    cpuid(0, 0, &a, &b, &c, &d);
    if (a >= 0x15) {
        cpuid(0x15, 0, &a, &b, &c, &d);   /* TSC = crystal * b / a */
        if (a && b && c)
            return (uint64_t)c * b / a / 1000;
    }
    cpuid(0, 0, &a, &b, &c, &d);
    if (a >= 0x16) {
        cpuid(0x16, 0, &a, &b, &c, &d);   /* base MHz */
        if (a)
            return (uint64_t)a * 1000;
    }
    return 0;
}

static void on_tick(void *ctx, uint32_t vector)
{
    (void)ctx;
    (void)vector;
    ticks++;
    struct moat_platform_page *pp = platform_page();
    if (pp)
        pp->ticks = ticks;
    next_deadline += tick_tsc;
    uint64_t now = rdtsc();
    if (next_deadline <= now)       /* missed ticks (host preemption) */
        next_deadline = now + tick_tsc;
    lapic_timer_arm(next_deadline);
}

void timer_init(uint64_t khz)
{
    tsc_khz = khz ? khz : khz_from_cpuid();
    if (!tsc_khz)
        panic("TSC rate unknown: boot info gives 0 and CPUID 0x15/0x16 neither");
    tsc_start = rdtsc();
    tick_tsc = tsc_khz * (GK_TICK_NS / 1000000ull);
    if (!irq_register(VEC_TIMER, on_tick, 0))
        panic("timer vector %u already claimed", VEC_TIMER);
    lapic_timer_deadline_mode(VEC_TIMER);
    next_deadline = tsc_start + tick_tsc;
    lapic_timer_arm(next_deadline);
}

uint64_t timer_now_ns(void) { return timer_tsc_to_ns(rdtsc() - tsc_start, tsc_khz); }
uint64_t timer_ticks(void) { return ticks; }
uint64_t timer_tsc_khz(void) { return tsc_khz; }
