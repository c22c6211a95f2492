/* The NVMe driver's admin queue (contract in nvme.h): synchronous commands
 * for bring-up and recovery, asynchronous ABORTs on the data path. Admin
 * doorbells are always MMIO: DBBUF covers I/O queues only, and the admin
 * queue is never on the per-request path. */
#include "nvme.h"

static void ring_sq(struct nvme_drv *d)
{
    dd_wmb();                   /* the SQE before the doorbell that covers it */
    dd_mmio_write32(d->regs, NVME_SQ_TDBL(0u, d->dstrd), d->aq.sq_tail);
    d->aq.sq_db = d->aq.sq_tail;
}

static void ring_cq(struct nvme_drv *d)
{
    if (d->aq.cq_head == d->aq.cq_db)
        return;
    dd_mmio_write32(d->regs, NVME_CQ_HDBL(0u, d->dstrd), d->aq.cq_head);
    d->aq.cq_db = d->aq.cq_head;
}

/* Write cmd with a fresh CID and ring; the admin slot index or -1. */
static int issue(struct nvme_drv *d, struct nvme_sqe *cmd, bool is_abort, uint16_t sqid,
                 uint16_t cid)
{
    int idx = nvme_slot_alloc(&d->aq, NULL, 0, dd_now_ns());
    if (idx < 0)
        return -1;
    cmd->cid = d->aq.slot[idx].cid;
    if (!nvme_sq_write(&d->aq, cmd)) {
        nvme_slot_free(&d->aq, (uint16_t)idx);
        return -1;
    }
    d->aof[idx].is_abort = is_abort;
    d->aof[idx].sqid = sqid;
    d->aof[idx].cid = cid;
    ring_sq(d);
    return idx;
}

uint16_t nvme_admin_run(struct nvme_drv *d, struct nvme_sqe *cmd, const char *what,
                        struct nvme_cqe *out)
{
    if (d->sync_idx >= 0)
        dd_panic("nvme: driver bug: %s while another admin command waits", what);
    int idx = issue(d, cmd, false, 0, 0);
    if (idx < 0)
        dd_panic("nvme: driver bug: no admin queue entry free for %s", what);
    d->sync_idx = idx;
    d->sync_done = false;
    uint64_t deadline = dd_now_ns() + d->cfg.timeout_ns;
    for (;;) {
        nvme_admin_reap(d);
        if (d->sync_done)
            break;
        if (dd_now_ns() >= deadline)
            dd_panic("nvme: %s got no completion within %lu ms (CSTS 0x%x)", what,
                     d->cfg.timeout_ns / 1000000u, dd_mmio_read32(d->regs, NVME_REG_CSTS));
        dd_run_once();          /* sleeps until the admin vector or a tick */
    }
    d->sync_idx = -1;
    if (out)
        *out = d->sync_cqe;
    return NVME_CQE_STATUS(d->sync_cqe.status);
}

bool nvme_admin_abort(struct nvme_drv *d, uint16_t sqid, uint16_t cid)
{
    /* Keep one entry for a synchronous command (a reset may need it). */
    if (d->aborts_out >= d->abort_limit || d->aq.free_top < 2)
        return false;
    struct nvme_sqe e;
    nvme_sqe_abort(&e, sqid, cid);
    if (issue(d, &e, true, sqid, cid) < 0)
        return false;
    d->aborts_out++;
    return true;
}

static void abort_done(struct nvme_drv *d, uint16_t idx, const struct nvme_cqe *e)
{
    uint16_t sc = NVME_CQE_STATUS(e->status);
    d->aborts_out--;
    if (sc != NVME_SC_SUCCESS)
        dd_log("nvme: ABORT of q%u cid 0x%x failed: %s (0x%x)", d->aof[idx].sqid,
               d->aof[idx].cid, nvme_status_name(sc), sc);
    else
        dd_log("nvme: ABORT of q%u cid 0x%x: %s", d->aof[idx].sqid, d->aof[idx].cid,
               (e->dw0 & NVME_ABORT_NOT_ABORTED) ? "the controller did not abort it"
                                                 : "aborted");
}

bool nvme_admin_reap(struct nvme_drv *d)
{
    bool any = false;
    struct nvme_cqe e;
    /* Bounded: a controller that keeps writing entries cannot hold us. */
    for (unsigned n = 0; n < d->aq.entries && nvme_cq_pop(&d->aq, &e); n++) {
        any = true;
        uint16_t idx;
        enum nvme_cqe_verdict v = nvme_cqe_check(&d->aq, &e, &idx);
        if (v != NVME_CQE_OK) {
            nvme_io_bad_cqe(d, 0, v, &e);
            continue;
        }
        d->aq.sq_head = e.sqhd;
        if ((int)idx == d->sync_idx) {
            d->sync_cqe = e;
            d->sync_done = true;
        } else if (d->aof[idx].is_abort) {
            abort_done(d, idx, &e);
        }
        nvme_slot_free(&d->aq, idx);
    }
    if (any)
        ring_cq(d);
    return any;
}

void nvme_admin_rewind(struct nvme_drv *d)
{
    /* A zeroed CQ: no stale entry can carry the phase a new one will. */
    memset(d->asq.va, 0, d->asq.size);
    memset(d->acq.va, 0, d->acq.size);
    nvme_queue_rewind(&d->aq);
    d->aborts_out = 0;
    d->sync_idx = -1;
    d->sync_done = false;
}
