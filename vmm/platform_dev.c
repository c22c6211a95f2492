/* Hosted platform ports (contract in platform_dev.h). */
#include "moat/platform_abi.h"
#include "platform_dev.h"

#define MSI_VECTOR_MIN 32u
#define MSI_VECTOR_MAX 254u

static enum bus_result refuse(struct platform_dev *p, const char *why,
                              const struct bus_access *a)
{
    p->bad_accesses++;
    if (p->ops->refused)
        p->ops->refused(p->ctx, why, a->addr, a->value);
    return BUS_OK;
}

enum bus_result platform_dev_io(void *ctx, struct bus_access *a)
{
    struct platform_dev *p = ctx;
    if (!a->is_write) {
        a->value = 0;
        return refuse(p, "read of a write-only platform port", a);
    }
    if (a->size != 4)
        return refuse(p, "platform port write is not 32-bit", a);
    uint32_t v = (uint32_t)a->value;
    switch (a->offset) {
    case MOAT_PLAT_PORT_READY - MOAT_PLAT_PORT_BASE:
        p->ops->ready(p->ctx);
        return BUS_OK;
    case MOAT_PLAT_PORT_CRASH - MOAT_PLAT_PORT_BASE:
        p->ops->crash(p->ctx);
        return BUS_OK;
    case MOAT_PLAT_PORT_EXIT - MOAT_PLAT_PORT_BASE:
        p->ops->exit(p->ctx, v);
        return BUS_OK;
    case MOAT_PLAT_PORT_MSI_TEST - MOAT_PLAT_PORT_BASE:
        if (v < MSI_VECTOR_MIN || v > MSI_VECTOR_MAX)
            return refuse(p, "MSI vector outside 32..254", a);
        p->ops->msi(p->ctx, v);
        return BUS_OK;
    case MOAT_PLAT_PORT_CAP_REGISTER - MOAT_PLAT_PORT_BASE:
        p->ops->cap_register(p->ctx, v);
        return BUS_OK;
    case MOAT_PLAT_PORT_SESSION_RELEASE - MOAT_PLAT_PORT_BASE:
        p->ops->session_release(p->ctx, v);
        return BUS_OK;
    default:
        return refuse(p, "write to an undefined platform port", a);
    }
}

enum bus_result platform_dev_mmio(void *ctx, struct bus_access *a)
{
    struct platform_dev *p = ctx;
    if (!a->is_write) {
        a->value = 0;
        return refuse(p, "read of the write-only platform MMIO register", a);
    }
    if (a->size != 4 || a->offset != MOAT_PLAT_MMIO_YIELD)
        return refuse(p, "platform MMIO write is not a 32-bit store to YIELD", a);
    p->ops->yield(p->ctx);
    return BUS_OK;
}
