/*
 * gk/runtime.h — the domain run loop (ring 3): dispatches pending interrupt
 * events (gk/event.h), runs registered pollers, sleeps in the kernel
 * (SYS_WAIT) when nothing had work, and bumps the heartbeat once per timer
 * tick it observes. A domain stuck anywhere else stops the heartbeat and is
 * caught by the host's watchdog.
 */
#ifndef GK_RUNTIME_H
#define GK_RUNTIME_H

#include <stdbool.h>
#include <stdint.h>

/* Returns true when it did work (the loop then polls again before sleeping). */
typedef bool (*gk_poll_fn)(void *ctx);

#define GK_POLLERS_MAX 16

/* Register a poller; false when the table is full. */
bool gk_poller_add(gk_poll_fn fn, void *ctx);
/* Run pollers once, sleep until an interrupt if none did work. */
void gk_run_once(void);
/* Run forever. */
_Noreturn void gk_run(void);
/* Run the loop until *flag != 0 or timeout_ns elapses; returns *flag != 0. */
bool gk_wait_flag(volatile uint32_t *flag, uint64_t timeout_ns);

#endif /* GK_RUNTIME_H */
