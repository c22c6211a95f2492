/* Event storms (contract in storm.h). */
#include "storm.h"

bool storm_hit(struct storm *s, uint64_t now_ns, uint64_t window_ns, uint64_t limit,
               uint64_t *count)
{
    uint64_t start = __atomic_load_n(&s->window_start_ns, __ATOMIC_RELAXED);
    if (start == 0 || now_ns - start > window_ns) {
        __atomic_store_n(&s->window_start_ns, now_ns ? now_ns : 1, __ATOMIC_RELAXED);
        __atomic_store_n(&s->in_window, 0, __ATOMIC_RELAXED);
    }
    *count = __atomic_add_fetch(&s->in_window, 1, __ATOMIC_RELAXED);
    return *count >= limit;
}
