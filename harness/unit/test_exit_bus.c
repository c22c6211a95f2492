/* Exit bus: registration rules, routing with offsets, unclaimed accounting. */
#include <criterion/criterion.h>
#include "exit_bus.h"

struct rec { uint64_t offset; uint32_t size; bool is_write; uint64_t value; int calls; };

static enum bus_result record(void *ctx, struct bus_access *a)
{
    struct rec *r = ctx;
    r->offset = a->offset;
    r->size = a->size;
    r->is_write = a->is_write;
    r->value = a->value;
    r->calls++;
    if (!a->is_write)
        a->value = 0x1234;
    return BUS_OK;
}

static enum bus_result refuse(void *ctx, struct bus_access *a)
{
    (void)ctx;
    (void)a;
    return BUS_VIOLATION;
}

Test(exit_bus, routes_with_region_offset)
{
    struct exit_bus b;
    struct rec r1 = {0}, r2 = {0};
    cr_assert(bus_init(&b, 4));
    cr_assert(bus_register(&b, 0x3F8, 8, record, &r1, "uart"));
    cr_assert(bus_register(&b, 0x100, 0x10, record, &r2, "other"));
    struct bus_access a = { .addr = 0x3FD, .size = 1, .is_write = false };
    cr_assert_eq(bus_dispatch(&b, &a), BUS_OK);
    cr_assert_eq(r1.calls, 1);
    cr_assert_eq(r1.offset, 5, "handler must see the offset inside its region");
    cr_assert_eq(a.value, 0x1234, "read value not returned");
    a = (struct bus_access){ .addr = 0x10C, .size = 4, .is_write = true, .value = 7 };
    cr_assert_eq(bus_dispatch(&b, &a), BUS_OK);
    cr_assert_eq(r2.offset, 0xC);
    cr_assert_eq(r2.value, 7);
    cr_assert_eq(b.unclaimed, 0);
    bus_free(&b);
}

Test(exit_bus, refuses_overlap_wrap_zero_and_full)
{
    struct exit_bus b;
    struct rec r = {0};
    cr_assert(bus_init(&b, 3));
    cr_assert(bus_register(&b, 0x1000, 0x100, record, &r, "a"));
    cr_assert_not(bus_register(&b, 0x10FF, 1, record, &r, "overlap end"));
    cr_assert_not(bus_register(&b, 0xF00, 0x101, record, &r, "overlap start"));
    cr_assert_not(bus_register(&b, 0x1010, 0x10, record, &r, "inside"));
    cr_assert_not(bus_register(&b, 0x2000, 0, record, &r, "zero length"));
    cr_assert_not(bus_register(&b, UINT64_MAX - 2, 8, record, &r, "wraps"));
    cr_assert(bus_register(&b, 0x1100, 0x10, record, &r, "adjacent"));
    cr_assert(bus_register(&b, UINT64_MAX - 7, 8, record, &r, "ends at top"));
    cr_assert_not(bus_register(&b, 0x9000, 1, record, &r, "table full"));
    bus_free(&b);
}

Test(exit_bus, unclaimed_reads_zero_and_counts)
{
    struct exit_bus b;
    struct rec r = {0};
    cr_assert(bus_init(&b, 2));
    cr_assert(bus_register(&b, 0x100, 8, record, &r, "dev"));
    struct bus_access a = { .addr = 0x200, .size = 4, .value = 0xFFFF };
    cr_assert_eq(bus_dispatch(&b, &a), BUS_UNCLAIMED);
    cr_assert_eq(a.value, 0, "unclaimed read must read as zero");
    /* Straddling the end of a region is not claimed by it. */
    a = (struct bus_access){ .addr = 0x106, .size = 4 };
    cr_assert_eq(bus_dispatch(&b, &a), BUS_UNCLAIMED);
    a = (struct bus_access){ .addr = 0x50, .size = 1, .is_write = true, .value = 1 };
    cr_assert_eq(bus_dispatch(&b, &a), BUS_UNCLAIMED);
    cr_assert_eq(b.unclaimed, 3);
    cr_assert_eq(r.calls, 0, "no handler may run for unclaimed accesses");
    bus_free(&b);
}

Test(exit_bus, handler_violation_is_reported)
{
    struct exit_bus b;
    cr_assert(bus_init(&b, 1));
    cr_assert(bus_register(&b, 0xE0000000, 0x1000, refuse, NULL, "strict"));
    struct bus_access a = { .addr = 0xE0000010, .size = 4, .is_write = true };
    cr_assert_eq(bus_dispatch(&b, &a), BUS_VIOLATION);
    bus_free(&b);
}

Test(exit_bus, finds_among_many_regions)
{
    struct exit_bus b;
    struct rec r[16] = {0};
    cr_assert(bus_init(&b, 16));
    for (int i = 15; i >= 0; i--)   /* registered out of order */
        cr_assert(bus_register(&b, 0x1000u * (unsigned)i, 0x100, record, &r[i], "r"));
    for (int i = 0; i < 16; i++) {
        struct bus_access a = { .addr = 0x1000u * (unsigned)i + 0x80, .size = 2 };
        cr_assert_eq(bus_dispatch(&b, &a), BUS_OK);
        cr_assert_eq(r[i].calls, 1, "region %d not found", i);
        a = (struct bus_access){ .addr = 0x1000u * (unsigned)i + 0x100, .size = 1 };
        cr_assert_eq(bus_dispatch(&b, &a), BUS_UNCLAIMED, "gap after region %d claimed", i);
    }
    bus_free(&b);
}
