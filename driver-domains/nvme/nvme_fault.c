/* NVMe: device faults on request (dd_fault_hook; kinds in
 * moat/platform_abi.h). Each one is what a buggy or hostile driver would
 * do to its controller; the controller model, the broker and the
 * supervisor must contain it. */
#include "nvme.h"
#include "nvme_cmd.h"
#include "moat/nvme_regs.h"

/* Private RAM: in no DMA window of any domain. */
#define WILD_PRIVATE_IOVA 0x200000ull
/* A CID no command slot has (slots use the low cid_bits). */
#define FAULT_CID 0xFFFFu

/* Put one READ of bytes at prp1 (prp2 for a second page) on I/O queue 1
 * outside every slot, and ring its doorbell by MMIO. */
static bool submit_read(struct nvme_drv *d, uint64_t prp1, uint64_t prp2, uint32_t bytes)
{
    if (d->state != NVME_ST_LIVE || d->nq == 0)
        return false;
    struct nvme_ioq *q = &d->ioq[0];
    struct nvme_sqe e;
    if (!nvme_sqe_rw(&e, NVME_IO_READ, NVME_NSID, 0, bytes / d->block_size, prp1, prp2))
        return false;
    e.cid = FAULT_CID;
    if (!nvme_sq_write(&q->q, &e))
        return false;
    /* Where the controller reads the tail: the shadow doorbell when in
     * use (it overrides the register), and the register itself. */
    if (d->dbbuf)
        d->db_shadow[q->sq_db_slot] = q->q.sq_tail;
    dd_wmb();
    dd_mmio_write32(d->regs, NVME_SQ_TDBL(q->q.qid, d->dstrd), q->q.sq_tail);
    q->q.sq_db = q->q.sq_tail;
    return true;
}

/* Reset the controller and enable it on a misaligned admin SQ, which
 * the controller answers with a fatal status (CSTS.CFS), times times. */
static bool fatal_storm(struct nvme_drv *d, unsigned times)
{
    for (unsigned i = 0; i < times; i++) {
        uint32_t cc = dd_mmio_read32(d->regs, NVME_REG_CC);
        dd_mmio_write32(d->regs, NVME_REG_CC, cc & ~NVME_CC_EN);
        dd_mmio_write64(d->regs, NVME_REG_ASQ, d->asq.iova | 0x100u);
        dd_mmio_write32(d->regs, NVME_REG_CC, cc | NVME_CC_EN);
        (void)dd_mmio_read32(d->regs, NVME_REG_CSTS);
    }
    return true;
}

static bool nvme_fault(void *ctx, uint32_t kind, uint64_t arg)
{
    struct nvme_drv *d = ctx;
    uint64_t win, size;
    switch (kind) {
    case MOAT_FAULT_WILD_DMA_PRIVATE:
        return submit_read(d, WILD_PRIVATE_IOVA, 0, 4096);
    case MOAT_FAULT_WILD_DMA_OTHER:
        return submit_read(d, arg & ~0xFFFull, 0, 4096);
    case MOAT_FAULT_WILD_DMA_END:
        /* The last page of the window, then the page after it. */
        if (!dd_dma_window(0, &win, &size))
            return false;
        return submit_read(d, win + size - 4096, win + size, 8192);
    case MOAT_FAULT_CORRUPT_DEVICE: {
        /* A tail outside the queue, where the controller reads the tail
         * (MMIO, and the shadow doorbell when in use). */
        struct nvme_ioq *q = &d->ioq[0];
        uint16_t bad = (uint16_t)(q->q.entries + 3u);
        if (d->dbbuf)
            d->db_shadow[q->sq_db_slot] = bad;
        dd_wmb();
        dd_mmio_write32(d->regs, NVME_SQ_TDBL(q->q.qid, d->dstrd), bad);
        return true;
    }
    case MOAT_FAULT_FATAL_STORM:
        return fatal_storm(d, 64);
    case MOAT_FAULT_EXIT_DMA:
        /* A read into our own bounce buffer, then leave at once. */
        if (!submit_read(d, d->ioq[0].io[0].bounce_iova, 0, 4096))
            return false;
        dd_exit(1);
    default:
        return false;
    }
}

void nvme_fault_hook(struct nvme_drv *d)
{
    dd_fault_hook(nvme_fault, d, MOAT_FAULTS_DRIVER);
}
