/*
 * platform_dev.h — the hosted platform ports (moat/platform_abi.h) as a bus
 * device. It decodes and bounds guest writes and calls the owner's ops; it
 * holds no domain state of its own. The same for the platform MMIO
 * register (YIELD).
 *
 * Hostile input: only 32-bit writes to the defined ports act. Anything else
 * (reads, other sizes, unknown offsets, MSI vectors outside 32..254) is
 * ignored, counted in bad_accesses and reported through ops->refused.
 */
#ifndef MOAT_PLATFORM_DEV_H
#define MOAT_PLATFORM_DEV_H

#include <stdint.h>
#include "exit_bus.h"

struct platform_dev_ops {
    void (*ready)(void *ctx);
    void (*crash)(void *ctx);
    void (*exit)(void *ctx, uint32_t code);
    void (*msi)(void *ctx, uint32_t vector);
    void (*cap_register)(void *ctx, uint32_t gpa);
    void (*session_release)(void *ctx, uint32_t slot);
    void (*yield)(void *ctx);
    void (*refused)(void *ctx, const char *why, uint64_t port, uint64_t value);
};

struct platform_dev {
    const struct platform_dev_ops *ops;
    void *ctx;
    uint64_t bad_accesses;
};

/* Bus handler for MOAT_PLAT_PORT_COUNT ports at MOAT_PLAT_PORT_BASE. */
enum bus_result platform_dev_io(void *ctx, struct bus_access *a);
/* Bus handler for MOAT_PLAT_MMIO_SIZE bytes at MOAT_GPA_PLATFORM_MMIO. */
enum bus_result platform_dev_mmio(void *ctx, struct bus_access *a);

#endif /* MOAT_PLATFORM_DEV_H */
