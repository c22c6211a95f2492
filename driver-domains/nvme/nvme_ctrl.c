/* NVMe controller bring-up and recovery (contract in nvme.h). Citations
 * are to the NVM Express Base Specification 1.4. Everything here runs at
 * start or during a reset, never per request: MMIO reads are fine. */
#include "nvme.h"
#include "moat/pci_regs.h"

#define MS ((uint64_t)1000000)

static uint32_t csts(const struct nvme_drv *d) { return dd_mmio_read32(d->regs, NVME_REG_CSTS); }

/* Wait for CSTS.RDY to become `ready` within CAP.TO (§3.1.1 CAP.TO, §7.6.1),
 * running the loop meanwhile. While enabling, CFS is a failure. */
static void wait_rdy(struct nvme_drv *d, bool ready, const char *stage)
{
    uint64_t deadline = dd_now_ns() + d->ready_ns;
    for (;;) {
        uint32_t s = csts(d);
        if (s == 0xFFFFFFFFu)
            dd_panic("nvme: %s: CSTS reads all ones: the controller is gone", stage);
        if (ready && (s & NVME_CSTS_CFS))
            dd_panic("nvme: %s: the controller reports fatal status (CSTS 0x%x)", stage, s);
        if (((s & NVME_CSTS_RDY) != 0) == ready)
            return;
        if (dd_now_ns() >= deadline)
            dd_panic("nvme: %s: CSTS.RDY still %u after %lu ms (CAP.TO)", stage, ready ? 0u : 1u,
                     d->ready_ns / MS);
        dd_run_once();
    }
}

static void check_cap(struct nvme_drv *d)
{
    uint64_t cap = dd_mmio_read64(d->regs, NVME_REG_CAP);
    if (cap == UINT64_MAX)
        dd_panic("nvme: CAP reads all ones: the controller is gone");
    /* §3.1.1: memory pages of 2^(12 + MPS); this driver uses 4 KiB (MPS 0). */
    if (NVME_CAP_MPSMIN(cap) > 0 || NVME_CAP_MPSMAX(cap) < NVME_CAP_MPSMIN(cap))
        dd_panic("nvme: 4 KiB pages unsupported (CAP.MPSMIN %u, MPSMAX %u)",
                 NVME_CAP_MPSMIN(cap), NVME_CAP_MPSMAX(cap));
    if (!(cap & NVME_CAP_CSS_NVM))
        dd_panic("nvme: the controller lacks the NVM command set (CAP 0x%lx)", cap);
    d->cap = cap;
    d->dstrd = NVME_CAP_DSTRD(cap);
    uint32_t to = NVME_CAP_TO(cap);
    d->ready_ns = (uint64_t)(to ? to : 1u) * 500u * MS;
}

static void disable(struct nvme_drv *d)
{
    /* §7.6.2 (controller reset): CC.EN 1 -> 0, then RDY follows to 0. */
    dd_mmio_write32(d->regs, NVME_REG_CC, 0);
    wait_rdy(d, false, "disable");
}

static void enable(struct nvme_drv *d)
{
    /* §7.6.1: admin queues first, then CC with EN. */
    nvme_admin_rewind(d);
    dd_mmio_write32(d->regs, NVME_REG_AQA, NVME_AQA_MAKE(NVME_ADMIN_ENTRIES, NVME_ADMIN_ENTRIES));
    dd_mmio_write64(d->regs, NVME_REG_ASQ, d->asq.iova);
    dd_mmio_write64(d->regs, NVME_REG_ACQ, d->acq.iova);
    dd_wmb();
    /* MPS 0 (4 KiB), CSS 0 (NVM), AMS 0 (round robin), SQE 2^6, CQE 2^4. */
    dd_mmio_write32(d->regs, NVME_REG_CC, NVME_CC_MAKE(0u, 6u, 4u) | NVME_CC_EN);
    wait_rdy(d, true, "enable");
}

static void admin_ok(struct nvme_drv *d, struct nvme_sqe *cmd, const char *what,
                     struct nvme_cqe *out)
{
    uint16_t sc = nvme_admin_run(d, cmd, what, out);
    if (sc != NVME_SC_SUCCESS)
        dd_panic("nvme: %s failed: %s (status 0x%x)", what, nvme_status_name(sc), sc);
}

static void identify(struct nvme_drv *d)
{
    struct nvme_sqe e;
    nvme_sqe_identify(&e, NVME_CNS_CONTROLLER, 0, d->page.iova);
    admin_ok(d, &e, "IDENTIFY controller", NULL);
    nvme_parse_id_ctrl(d->page.va, &d->id);
    dd_log("nvme: %s serial %s firmware %s: MDTS %u, OACS 0x%x, ONCS 0x%x, VWC %u, %u namespaces",
           d->id.mn, d->id.sn, d->id.fr, d->id.mdts, d->id.oacs, d->id.oncs, d->id.vwc & 1u,
           d->id.nn);
    if (d->id.nn < NVME_NSID)
        dd_panic("nvme: the controller has no namespace %u (NN %u)", NVME_NSID, d->id.nn);

    memset(d->page.va, 0, NVME_IDENTIFY_SIZE);
    nvme_sqe_identify(&e, NVME_CNS_NAMESPACE, NVME_NSID, d->page.iova);
    admin_ok(d, &e, "IDENTIFY namespace 1", NULL);
    nvme_parse_id_ns(d->page.va, &d->ns);
    if (d->ns.nsze == 0)
        dd_panic("nvme: namespace %u is inactive (NSZE 0)", NVME_NSID);
    if (!d->ns.fmt_valid)
        dd_panic("nvme: namespace %u uses LBA format %u of %u", NVME_NSID, d->ns.fmt,
                 d->ns.nlbaf + 1u);
    if (d->ns.ms != 0)
        dd_panic("nvme: namespace %u has %u metadata bytes per block; unsupported", NVME_NSID,
                 d->ns.ms);
    if (d->ns.lbads < 9 || d->ns.lbads > 16)
        dd_panic("nvme: namespace %u has 2^%u-byte blocks; only 512..65536 are served",
                 NVME_NSID, d->ns.lbads);
}

static void geometry(struct nvme_drv *d)
{
    d->block_size = 1u << d->ns.lbads;
    d->max_xfer = nvme_max_transfer(d->cfg.max_bytes, d->id.mdts, d->block_size);
    if (d->max_xfer == 0)
        dd_panic("nvme: max_kib=%lu with MDTS %u cannot carry one %u-byte block",
                 d->cfg.max_bytes >> 10, d->id.mdts, d->block_size);
    d->geo = (struct moat_blk_geometry){
        .block_size = d->block_size,
        .max_blocks = d->max_xfer / d->block_size,
        .blocks = d->ns.nsze,
        .flags = MOAT_BLK_F_FLUSH | ((d->id.oncs & NVME_ONCS_WZ) ? MOAT_BLK_F_WRITE_ZEROES : 0u) |
                 ((d->id.oncs & NVME_ONCS_DSM) ? MOAT_BLK_F_DISCARD : 0u) |
                 (d->ns.write_protected ? MOAT_BLK_F_READONLY : 0u),
        .queues = d->cfg.sessions,
    };
    uint32_t acl = d->id.acl + 1u;
    d->abort_limit = (uint16_t)(acl < NVME_ADMIN_SLOTS - 1u ? acl : NVME_ADMIN_SLOTS - 1u);
}

/* SET FEATURES: number of queues (§5.21.1.7; after every reset, before
 * queues exist) and interrupt coalescing (§5.21.1.8). */
static void features(struct nvme_drv *d, bool first)
{
    uint32_t want = first ? d->cfg.queues : d->nq;
    struct nvme_sqe e;
    struct nvme_cqe c;
    nvme_sqe_set_features(&e, NVME_FEAT_NUM_QUEUES, (want - 1u) | (want - 1u) << 16);
    admin_ok(d, &e, "SET FEATURES number of queues", &c);
    uint32_t nsq = (c.dw0 & 0xFFFFu) + 1u, ncq = (c.dw0 >> 16) + 1u;
    uint32_t got = want < nsq ? want : nsq;
    got = got < ncq ? got : ncq;
    if (first) {
        /* Each queue's doorbells must lie inside BAR0 (CAP.DSTRD apart). */
        while (got > 1 && NVME_CQ_HDBL(got, d->dstrd) + 4u > dd_bar_size(d->regs))
            got--;
        if (NVME_CQ_HDBL(got, d->dstrd) + 4u > dd_bar_size(d->regs))
            dd_panic("nvme: BAR0 of %lu bytes has no room for I/O queue doorbells",
                     dd_bar_size(d->regs));
        d->nq = (uint16_t)got;
    }
    else if (got < d->nq)
        dd_panic("nvme: after reset the controller grants %u queue pairs, %u are in use", got,
                 d->nq);
    if (!d->cfg.coalesce)
        return;
    nvme_sqe_set_features(&e, NVME_FEAT_IRQ_COALESCE,
                          d->cfg.coal_thr | (uint32_t)d->cfg.coal_time << 8);
    uint16_t sc = nvme_admin_run(d, &e, "SET FEATURES interrupt coalescing", NULL);
    if (sc != NVME_SC_SUCCESS) {
        dd_log("nvme: interrupt coalescing refused: %s (0x%x); going on without",
               nvme_status_name(sc), sc);
        d->cfg.coalesce = false;
    }
}

static void dma_or_panic(uint64_t size, struct dd_dma *m, const char *what, uint16_t qid)
{
    if (!dd_dma_alloc(size, 0, m))
        dd_panic("nvme: no room for %lu KiB of DMA memory (%s, queue %u): raise dma= or lower "
                 "queues=/qd=/max_kib=", (size + 1023) >> 10, what, qid);
}

/* Memory and interrupt of each I/O queue, once per domain life. */
static void alloc_queues(struct nvme_drv *d)
{
    uint32_t mqes = NVME_CAP_MQES(d->cap) + 1u;
    uint32_t entries = d->cfg.qd + 1u;
    if (entries > mqes)
        entries = mqes;
    if (entries > 4096u)
        entries = 4096u;
    uint32_t depth = entries - 1u;
    if (depth < d->cfg.qd)
        dd_log("nvme: qd=%u capped to %u by CAP.MQES %u", d->cfg.qd, depth, mqes - 1u);
    /* Bounce buffers start on page boundaries: PRP1 has no offset. */
    uint64_t page_mask = NVME_PAGE_SIZE - 1u;
    uint64_t stride = ((uint64_t)d->max_xfer + page_mask) & ~page_mask;
    for (uint16_t i = 0; i < d->nq; i++) {
        struct nvme_ioq *q = &d->ioq[i];
        uint16_t qid = (uint16_t)(i + 1u);
        dma_or_panic(entries * sizeof(struct nvme_sqe), &q->sq_mem, "SQ", qid);
        dma_or_panic(entries * sizeof(struct nvme_cqe), &q->cq_mem, "CQ", qid);
        dma_or_panic(depth * (stride + NVME_PAGE_SIZE), &q->bufs, "bounce buffers", qid);
        struct nvme_slot *slots = dd_mem_alloc(depth * sizeof *slots);
        uint16_t *free_stack = dd_mem_alloc(depth * sizeof *free_stack);
        q->io = dd_mem_alloc(depth * sizeof *q->io);
        if (!nvme_queue_init(&q->q, qid, (uint16_t)entries, q->sq_mem.va, q->cq_mem.va, slots,
                             free_stack))
            dd_panic("nvme: driver bug: queue %u with %u entries", qid, entries);
        uint8_t *base = q->bufs.va;
        for (uint32_t s = 0; s < depth; s++) {
            struct nvme_io_slot *io = &q->io[s];
            io->bounce = base + s * stride;
            io->bounce_iova = q->bufs.iova + s * stride;
            io->prp_list = (uint64_t *)(void *)(base + depth * stride + s * NVME_PAGE_SIZE);
            io->prp_list_iova = q->bufs.iova + depth * stride + s * NVME_PAGE_SIZE;
        }
        q->irq = dd_irq_msix(d->dev, qid, NULL, NULL);
        q->sq_db_slot = NVME_DBBUF_SLOT(2u * qid, d->dstrd);
        q->cq_db_slot = NVME_DBBUF_SLOT(2u * qid + 1u, d->dstrd);
    }
}

/* CREATE I/O CQ then SQ for every queue (§5.3, §5.4), from empty rings. */
static void create_queues(struct nvme_drv *d)
{
    for (uint16_t i = 0; i < d->nq; i++) {
        struct nvme_ioq *q = &d->ioq[i];
        memset(q->sq_mem.va, 0, q->sq_mem.size);
        memset(q->cq_mem.va, 0, q->cq_mem.size);   /* no stale phase tags */
        nvme_queue_rewind(&q->q);
        struct nvme_sqe e;
        if (!nvme_sqe_create_cq(&e, q->q.qid, q->q.entries, q->cq_mem.iova, q->q.qid))
            dd_panic("nvme: driver bug: CREATE I/O CQ %u", q->q.qid);
        admin_ok(d, &e, "CREATE I/O CQ", NULL);
        if (!nvme_sqe_create_sq(&e, q->q.qid, q->q.entries, q->sq_mem.iova, q->q.qid))
            dd_panic("nvme: driver bug: CREATE I/O SQ %u", q->q.qid);
        admin_ok(d, &e, "CREATE I/O SQ", NULL);
    }
}

/* Doorbell Buffer Config (§5.8) when the controller offers it (OACS bit 8)
 * and dbbuf=0 was not given; sent after the queues exist, with both pages
 * zeroed to match the rings' fresh indices. */
static void dbbuf(struct nvme_drv *d, bool first)
{
    if (first) {
        uint32_t last = NVME_DBBUF_SLOT(2u * d->nq + 1u, d->dstrd);
        d->dbbuf = d->cfg.dbbuf && (d->id.oacs & NVME_OACS_DBBUF) &&
                   last < NVME_PAGE_SIZE / 4u;
        if (!d->dbbuf)
            return;
        dma_or_panic(2u * NVME_PAGE_SIZE, &d->dbbuf_mem, "doorbell buffers", 0);
        d->db_shadow = d->dbbuf_mem.va;
        d->db_event = (const volatile uint32_t *)((uint8_t *)d->dbbuf_mem.va + NVME_PAGE_SIZE);
    }
    if (!d->dbbuf)
        return;
    memset(d->dbbuf_mem.va, 0, d->dbbuf_mem.size);
    struct nvme_sqe e;
    nvme_sqe_dbbuf(&e, d->dbbuf_mem.iova, d->dbbuf_mem.iova + NVME_PAGE_SIZE);
    uint16_t sc = nvme_admin_run(d, &e, "DOORBELL BUFFER CONFIG", NULL);
    if (sc != NVME_SC_SUCCESS) {
        dd_log("nvme: Doorbell Buffer Config refused: %s (0x%x); using MMIO doorbells",
               nvme_status_name(sc), sc);
        d->dbbuf = false;
    }
}

void nvme_ctrl_start(struct nvme_drv *d)
{
    check_cap(d);
    uint32_t mx = dd_cap_find(d->dev, PCI_CAP_ID_MSIX, 0);
    if (!mx)
        dd_panic("nvme: the controller has no MSI-X capability");
    d->msix_entries = (dd_cfg_read16(d->dev, mx + PCI_MSIX_CTRL) & PCI_MSIX_CTRL_SIZE_MASK) + 1u;
    if (d->msix_entries < 2)
        dd_panic("nvme: MSI-X has %u vector; one per queue plus admin are needed",
                 d->msix_entries);
    if (d->cfg.queues > d->msix_entries - 1u)
        d->cfg.queues = d->msix_entries - 1u;
    dma_or_panic(NVME_ADMIN_ENTRIES * sizeof(struct nvme_sqe), &d->asq, "admin SQ", 0);
    dma_or_panic(NVME_ADMIN_ENTRIES * sizeof(struct nvme_cqe), &d->acq, "admin CQ", 0);
    dma_or_panic(NVME_IDENTIFY_SIZE, &d->page, "IDENTIFY page", 0);
    if (!nvme_queue_init(&d->aq, 0, NVME_ADMIN_ENTRIES, d->asq.va, d->acq.va, d->aslot, d->afree))
        dd_panic("nvme: driver bug: admin queue");
    d->airq = dd_irq_msix(d->dev, 0, NULL, NULL);

    disable(d);
    enable(d);
    identify(d);
    geometry(d);
    dd_boot_mark(MOAT_BOOT_DEVICE);
    features(d, true);
    alloc_queues(d);
    create_queues(d);
    dbbuf(d, true);
    d->state = NVME_ST_LIVE;
    dd_boot_mark(MOAT_BOOT_QUEUES);
}

void nvme_ctrl_recover(struct nvme_drv *d, const char *why)
{
    d->state = NVME_ST_RESETTING;
    d->st.resets++;
    dd_log("nvme: resetting the controller: %s", why);
    nvme_io_requeue(d);
    disable(d);
    enable(d);
    features(d, false);
    create_queues(d);
    dbbuf(d, false);
    d->state = NVME_ST_LIVE;
    d->next_tmo_ns = dd_now_ns() + MS;
    dd_log("nvme: controller reset done (%lu so far); %u requests to resubmit", d->st.resets,
           nvme_fifo_len(&d->waitq));
}

void nvme_ctrl_shutdown(void *ctx)
{
    struct nvme_drv *d = ctx;
    /* §7.6.2 (normal shutdown): I/O is drained (the platform answered
     * every request first); delete every I/O SQ, then the CQs, then set
     * CC.SHN to 01b and wait for CSTS.SHST 10b. */
    d->state = NVME_ST_DOWN;            /* the pollers leave the queues alone */
    struct nvme_sqe e;
    for (unsigned sq = 1; sq <= 2; sq++)
        for (uint16_t i = 0; i < d->nq; i++) {
            nvme_sqe_delete_queue(&e, sq == 1, d->ioq[i].q.qid);
            admin_ok(d, &e, sq == 1 ? "DELETE I/O SQ" : "DELETE I/O CQ", NULL);
        }
    uint32_t cc = dd_mmio_read32(d->regs, NVME_REG_CC);
    dd_mmio_write32(d->regs, NVME_REG_CC, (cc & ~NVME_CC_SHN_MASK) | NVME_CC_SHN_NORMAL);
    uint64_t deadline = dd_now_ns() + d->ready_ns;
    while ((csts(d) & NVME_CSTS_SHST_MASK) != NVME_CSTS_SHST_DONE) {
        if (dd_now_ns() >= deadline)
            dd_panic("nvme: shutdown: CSTS.SHST still 0x%x after %lu ms",
                     (csts(d) & NVME_CSTS_SHST_MASK) >> 2, d->ready_ns / MS);
        dd_run_once();
    }
    dd_log("nvme: controller shut down (%u I/O queue pairs deleted, shutdown complete)", d->nq);
}
