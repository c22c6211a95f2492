/*
 * exit_bus.h — routes decoded PIO/MMIO exits to the device model that owns
 * the address (one bus per address space per domain).
 *
 * Regions are registered at domain creation into a table sized then; the
 * exit path never allocates. A handler sees the offset inside its region.
 * An access that no region fully contains reads as zero, ignores writes,
 * and is counted (bus->unclaimed) — the caller decides whether that is a
 * policy violation (MMIO) or benign probing (PIO).
 */
#ifndef MOAT_EXIT_BUS_H
#define MOAT_EXIT_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bus_access {
    uint64_t addr;      /* port or guest-physical address */
    uint64_t offset;    /* addr - region base, filled by the bus */
    uint32_t size;      /* 1, 2, 4 or 8 */
    bool is_write;
    uint64_t value;     /* in for writes, out for reads */
};

enum bus_result {
    BUS_OK,             /* handled */
    BUS_UNCLAIMED,      /* no region: read-as-zero / write-ignored */
    BUS_VIOLATION,      /* handler refused a hostile access: fail-stop */
};

typedef enum bus_result (*bus_handler_fn)(void *ctx, struct bus_access *a);

struct bus_region {
    uint64_t base, len;
    bus_handler_fn fn;
    void *ctx;
    const char *name;
};

struct exit_bus {
    struct bus_region *regions;     /* sorted by base, non-overlapping */
    size_t n, cap;
    uint64_t unclaimed;             /* accesses no region claimed */
};

/* Table for up to cap regions; false on allocation failure. */
bool bus_init(struct exit_bus *b, size_t cap);
void bus_free(struct exit_bus *b);
/* Register [base, base+len). Refused (false) when len is 0, the range
 * wraps, it overlaps a region, or the table is full. */
bool bus_register(struct exit_bus *b, uint64_t base, uint64_t len,
                  bus_handler_fn fn, void *ctx, const char *name);
/* The region containing all of [addr, addr+size), or NULL. */
const struct bus_region *bus_find(const struct exit_bus *b, uint64_t addr, uint32_t size);
/* Route one access; on BUS_UNCLAIMED a read's value is 0. */
enum bus_result bus_dispatch(struct exit_bus *b, struct bus_access *a);

#endif /* MOAT_EXIT_BUS_H */
