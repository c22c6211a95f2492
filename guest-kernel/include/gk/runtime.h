/*
 * gk/runtime.h — the domain run loop (ring 3): dispatches pending interrupt
 * events (gk/event.h), runs registered pollers, and bumps the heartbeat
 * once per timer tick it observes. A domain stuck anywhere else stops the
 * heartbeat and is caught by the host's watchdog.
 *
 * Sleeping: waking a domain costs an interrupt and a kernel entry, which
 * on PVM hosts are emulated (~100 us); a poll pass costs nanoseconds. So
 * after its last work the loop keeps polling for the spin time (default
 * GK_SPIN_NS_DEFAULT), then runs the idle hooks, which arm what must wake
 * the domain (unmask a vector, ask clients for a kick, enable a virtqueue
 * interrupt) and look once more; only when none saw work does it sleep in
 * the kernel (SYS_WAIT). An interrupt taken after the pass began makes
 * that sleep return at once, so arming then sleeping loses no wake-up.
 */
#ifndef GK_RUNTIME_H
#define GK_RUNTIME_H

#include <stdbool.h>
#include <stdint.h>

/* Returns true when it did work (the loop then polls again before sleeping). */
typedef bool (*gk_poll_fn)(void *ctx);

/* Arm the wake-up, look again; true when work appeared (no sleep then). */
typedef bool (*gk_idle_fn)(void *ctx);

#define GK_POLLERS_MAX 16
#define GK_IDLERS_MAX 16
#define GK_SPIN_NS_DEFAULT 200000ull
#define GK_YIELD_NS 20000ull    /* idle this long while spinning: yield (hint) */

/* Register a poller / an idle hook; false when the table is full. */
bool gk_poller_add(gk_poll_fn fn, void *ctx);
bool gk_idle_add(gk_idle_fn fn, void *ctx);
/* How long the loop polls after the last work before it may sleep. */
void gk_spin_set(uint64_t ns);
/* One pass: events, pollers; after the spin time without work, the idle
 * hooks and then a sleep until an interrupt. */
void gk_run_once(void);
/* Run forever. */
_Noreturn void gk_run(void);
/* Run the loop until *flag != 0 or timeout_ns elapses; returns *flag != 0. */
bool gk_wait_flag(volatile uint32_t *flag, uint64_t timeout_ns);

#endif /* GK_RUNTIME_H */
