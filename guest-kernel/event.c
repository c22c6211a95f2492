/* Interrupt events for ring-3 code (contract in gk/event.h). The pending
 * bitmap (the platform's, gk_event_pending) has one writer per bit
 * direction: the kernel or the bare monitor sets bits, ring 3 takes whole
 * words with an atomic exchange. */
#include "gk/event.h"
#include "gk/trap.h"

#define VEC_FIRST_EVENT 48u

static struct { gk_event_fn fn; void *ctx; } events[256];

uint32_t gk_event_alloc(gk_event_fn fn, void *ctx)
{
    if (!fn)
        return 0;
    for (uint32_t v = VEC_FIRST_EVENT; v < VEC_SPURIOUS; v++) {
        if (!events[v].fn) {
            events[v].ctx = ctx;
            /* Publish fn last: the kernel treats fn != NULL as "allocated". */
            __atomic_store_n(&events[v].fn, fn, __ATOMIC_RELEASE);
            return v;
        }
    }
    return 0;
}

bool gk_event_allocated(uint32_t vector)
{
    return vector < 256 && __atomic_load_n(&events[vector].fn, __ATOMIC_ACQUIRE);
}

bool gk_event_mark(uint32_t vector)
{
    if (!gk_event_allocated(vector))
        return false;
    __atomic_fetch_or(&gk_event_pending()[vector / 64], 1ull << (vector % 64), __ATOMIC_RELEASE);
    return true;
}

bool gk_event_dispatch(void)
{
    bool ran = false;
    uint64_t *pending = gk_event_pending();
    for (uint32_t w = 0; w < 4; w++) {
        uint64_t bits = __atomic_exchange_n(&pending[w], 0, __ATOMIC_ACQUIRE);
        while (bits) {
            uint32_t b = (uint32_t)__builtin_ctzll(bits);
            bits &= bits - 1;
            uint32_t v = w * 64 + b;
            gk_event_fn fn = __atomic_load_n(&events[v].fn, __ATOMIC_ACQUIRE);
            if (fn) {       /* a bare monitor marks what the domain programmed */
                fn(events[v].ctx, v);
                ran = true;
            }
        }
    }
    return ran;
}
