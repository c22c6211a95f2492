/*
 * gk/event.h — interrupts as events for ring-3 domain code.
 *
 * The kernel's handler for an event vector only marks it pending (and the
 * LAPIC is EOI'd); the run loop (gk/runtime.h) later calls the vector's
 * callback in ring 3. Edge interrupts arriving before the callback runs
 * coalesce into one call, as they would in the LAPIC's IRR.
 */
#ifndef GK_EVENT_H
#define GK_EVENT_H

#include <stdbool.h>
#include <stdint.h>

typedef void (*gk_event_fn)(void *ctx, uint32_t vector);

/* Allocate a free vector (48..254) whose arrival calls fn in ring 3;
 * returns 0 when none is free. Call from ring 3 before enabling the source. */
uint32_t gk_event_alloc(gk_event_fn fn, void *ctx);
/* Ring 3: call the callback of every pending vector once; returns whether
 * any ran. */
bool gk_event_dispatch(void);
/* Is vector allocated to an event? (Ring 0 or 3.) */
bool gk_event_allocated(uint32_t vector);
/* Ring 0 (trap path): mark vector pending; false if it is not an event vector. */
bool gk_event_mark(uint32_t vector);
/* The pending bitmap, 4 words of 64 vectors: the platform's (hosted: the
 * kernel's memory; bare: the page the monitor marks, bare/dom_abi.h). */
uint64_t *gk_event_pending(void);

#endif /* GK_EVENT_H */
