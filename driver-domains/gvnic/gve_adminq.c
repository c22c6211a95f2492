/* gVNIC driver: the admin queue (contract in gve.h). Register accesses are
 * exits (~50 us each on PVM hosts): the event counter is polled, not
 * waited on with sleeps, and every command is one doorbell. */
#include "gve.h"

static void wait_status(struct gve *g, uint32_t mask, const char *what)
{
    uint64_t deadline = dd_now_ns() + GVE_TIMEOUT_NS;
    while (!(gve_rd(g, GVNIC_REG_DEVICE_STATUS) & mask))
        if (dd_now_ns() > deadline)
            dd_panic("gvnic: %s: device status 0x%x after %lu ms", what,
                     gve_rd(g, GVNIC_REG_DEVICE_STATUS), GVE_TIMEOUT_NS / 1000000u);
}

void gve_adminq_start(struct gve *g)
{
    gve_wr(g, GVNIC_REG_DRIVER_STATUS, GVNIC_DRV_RESET);
    wait_status(g, GVNIC_DEV_IS_RESET, "reset");
    if (!g->aq.va && !dd_dma_alloc(GVNIC_AQ_DEFAULT_BYTES, 0, &g->aq))
        dd_panic("gvnic: no DMA memory for the admin queue");
    memset(g->aq.va, 0, GVNIC_AQ_DEFAULT_BYTES);
    dd_mmio_write16(g->regs, GVNIC_REG_ADMINQ_LENGTH, gvnic_be16(GVNIC_AQ_DEFAULT_BYTES));
    gve_wr(g, GVNIC_REG_ADMINQ_BASE_HI, (uint32_t)(g->aq.iova >> 32));
    gve_wr(g, GVNIC_REG_ADMINQ_BASE_LO, (uint32_t)g->aq.iova);
    gve_wr(g, GVNIC_REG_DRIVER_STATUS, GVNIC_DRV_RUN);
    g->aq_prod = 0;
}

void gve_adminq_release(struct gve *g)
{
    gve_wr(g, GVNIC_REG_DRIVER_STATUS, GVNIC_DRV_RESET);
    wait_status(g, GVNIC_DEV_IS_RESET, "admin queue release");
}

uint32_t gve_adminq_run(struct gve *g, uint32_t opcode, const void *payload, uint32_t len)
{
    if (len > GVNIC_AQ_PAYLOAD_MAX)
        dd_panic("gvnic: driver bug: a %u-byte admin payload", len);
    const uint32_t slots = GVNIC_AQ_DEFAULT_BYTES / GVNIC_AQ_ENTRY_SIZE;
    struct gvnic_aq_entry *e = (struct gvnic_aq_entry *)g->aq.va + g->aq_prod % slots;
    memset(e, 0, sizeof *e);
    e->opcode = gvnic_be32(opcode);
    memcpy(e->payload, payload, len);
    dd_wmb();
    g->aq_prod++;
    gve_wr(g, GVNIC_REG_ADMINQ_DOORBELL, g->aq_prod);
    uint64_t deadline = dd_now_ns() + GVE_TIMEOUT_NS;
    while (gve_rd(g, GVNIC_REG_ADMINQ_EVENTS) != g->aq_prod)
        if (dd_now_ns() > deadline)
            dd_panic("gvnic: admin command 0x%x got no completion in %lu ms", opcode,
                     GVE_TIMEOUT_NS / 1000000u);
    uint32_t st = gvnic_be32(__atomic_load_n(&e->status, __ATOMIC_ACQUIRE));
    return st == GVNIC_AQ_UNSET ? GVNIC_AQ_UNKNOWN_ERROR : st;
}

void gve_adminq_ok(struct gve *g, uint32_t opcode, const void *payload, uint32_t len,
                   const char *what)
{
    uint32_t st = gve_adminq_run(g, opcode, payload, len);
    if (st != GVNIC_AQ_PASSED)
        dd_panic("gvnic: %s failed: admin status 0x%x", what, st);
}
