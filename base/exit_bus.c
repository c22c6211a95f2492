/* Exit dispatch bus (contract in exit_bus.h). */
#include <stdlib.h>
#include <string.h>
#include "exit_bus.h"

bool bus_init(struct exit_bus *b, size_t cap)
{
    memset(b, 0, sizeof *b);
    b->regions = calloc(cap ? cap : 1, sizeof *b->regions);
    b->cap = cap;
    return b->regions != NULL;
}

void bus_free(struct exit_bus *b)
{
    free(b->regions);
    memset(b, 0, sizeof *b);
}

bool bus_register(struct exit_bus *b, uint64_t base, uint64_t len,
                  bus_handler_fn fn, void *ctx, const char *name)
{
    if (!fn || len == 0 || base > UINT64_MAX - len + 1 || b->n == b->cap)
        return false;
    uint64_t last = base + (len - 1);
    size_t pos = 0;
    while (pos < b->n && b->regions[pos].base < base)
        pos++;
    if (pos > 0) {
        const struct bus_region *p = &b->regions[pos - 1];
        if (p->base + (p->len - 1) >= base)
            return false;
    }
    if (pos < b->n && b->regions[pos].base <= last)
        return false;
    memmove(&b->regions[pos + 1], &b->regions[pos], (b->n - pos) * sizeof *b->regions);
    b->regions[pos] = (struct bus_region){ base, len, fn, ctx, name };
    b->n++;
    return true;
}

const struct bus_region *bus_find(const struct exit_bus *b, uint64_t addr, uint32_t size)
{
    size_t lo = 0, hi = b->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct bus_region *r = &b->regions[mid];
        if (addr < r->base) {
            hi = mid;
        } else if (addr - r->base >= r->len) {
            lo = mid + 1;
        } else {
            /* addr is inside; the whole access must be too. */
            if (size == 0 || size > r->len - (addr - r->base))
                return NULL;
            return r;
        }
    }
    return NULL;
}

enum bus_result bus_dispatch(struct exit_bus *b, struct bus_access *a)
{
    const struct bus_region *r = bus_find(b, a->addr, a->size);
    if (!r) {
        b->unclaimed++;
        if (!a->is_write)
            a->value = 0;
        return BUS_UNCLAIMED;
    }
    a->offset = a->addr - r->base;
    return r->fn(r->ctx, a);
}
