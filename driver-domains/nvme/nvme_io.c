/* The NVMe driver's data path (contract in nvme.h).
 *
 * Per run-loop pass: the serve poller (registered first) takes client
 * requests and calls nvme_io_submit, which writes SQEs but rings nothing;
 * then nvme_io_poll reaps every CQ, completes requests, starts waiting
 * ones and publishes each changed CQ head and SQ tail once. With Doorbell
 * Buffer Config a publish is a store to the shadow page, and MMIO (a VM
 * exit) only when the controller asked for one through EventIdx. Nothing
 * here reads a register, except CSTS once a command is overdue.
 *
 * Interrupts: while the poller finds work the I/O vectors are masked; the
 * idle hook unmasks them when the domain is about to sleep (the run loop
 * spins spin_us first). A busy domain takes no interrupt at all. */
#include "nvme.h"

#define MS ((uint64_t)1000000)
#define TMO_CHECK_NS MS         /* look for overdue commands this often */
#define ERRORS_LOGGED 8u        /* error completions logged, then only counted */

static const char *op_name(uint16_t op)
{
    switch (op) {
    case MOAT_BLK_READ:         return "READ";
    case MOAT_BLK_WRITE:        return "WRITE";
    case MOAT_BLK_FLUSH:        return "FLUSH";
    case MOAT_BLK_WRITE_ZEROES: return "WRITE ZEROES";
    case MOAT_BLK_DISCARD:      return "DISCARD";
    default:                    return "?";
    }
}

static void finish(struct nvme_drv *d, struct dd_blk_req *req, uint32_t st)
{
    d->st.done[st <= MOAT_ST_MAX ? st : MOAT_ST_EIO]++;
    dd_blk_complete(req, st);
}

static void wait_push(struct nvme_drv *d, struct dd_blk_req *req, uint8_t tries, bool front)
{
    bool ok = front ? nvme_fifo_push_front(&d->waitq, req, tries)
                    : nvme_fifo_push(&d->waitq, req, tries);
    if (!ok)
        dd_panic("nvme: driver bug: more than %u requests wait for a command slot", NVME_WAIT_CAP);
}

/* ---- issuing ------------------------------------------------------------------ */

enum issue_result { ISSUED, INVALID, NO_ROOM };

/* Build and write the next command of the request in slot idx. */
static enum issue_result issue(struct nvme_drv *d, struct nvme_ioq *q, uint16_t idx)
{
    struct nvme_slot *s = &q->q.slot[idx];
    struct dd_blk_req *req = s->req;
    struct nvme_io_slot *io = &q->io[idx];
    struct nvme_sqe e;
    bool ok;
    switch (req->op) {
    case MOAT_BLK_READ:
    case MOAT_BLK_WRITE: {
        uint64_t len = (uint64_t)req->blocks * d->block_size, p1, p2;
        if (len > d->max_xfer)
            return INVALID;     /* dd_serve bounds blocks by max_blocks already */
        /* Zero copy when the device can reach the client's buffer (and
         * its pages fit one PRP list); else through the slot's bounce
         * buffer. A client that changes a buffer it is writing from only
         * changes what is written for itself. */
        io->direct = d->cfg.zero_copy && req->buf_iova &&
                     nvme_prp_build(req->buf_iova, len, io->prp_list, io->prp_list_iova,
                                    NVME_PRP_LIST_ENTRIES, &p1, &p2) != 0;
        if (!io->direct) {
            if (req->op == MOAT_BLK_WRITE)
                memcpy(io->bounce, req->buf, len);
            if (!nvme_prp_build(io->bounce_iova, len, io->prp_list, io->prp_list_iova,
                                NVME_PRP_LIST_ENTRIES, &p1, &p2))
                return INVALID;
        }
        d->st.direct += io->direct;
        d->st.bounced += !io->direct;
        ok = nvme_sqe_rw(&e, req->op == MOAT_BLK_READ ? NVME_IO_READ : NVME_IO_WRITE, NVME_NSID,
                         req->lba, req->blocks, p1, p2);
        io->left = 0;
        break;
    }
    case MOAT_BLK_FLUSH:
        nvme_sqe_flush(&e, NVME_NSID);
        ok = true;
        io->left = 0;
        break;
    case MOAT_BLK_WRITE_ZEROES: {
        /* NLB is 16 bits: larger requests go as consecutive commands. */
        uint32_t n = io->left < NVME_NLB_MAX ? io->left : NVME_NLB_MAX;
        ok = nvme_sqe_write_zeroes(&e, NVME_NSID, io->lba_next, n);
        io->lba_next += n;
        io->left -= n;
        break;
    }
    case MOAT_BLK_DISCARD:
        /* One DSM range (32-bit NLB) in the slot's first bounce page. */
        ok = nvme_sqe_discard(&e, NVME_NSID, (struct nvme_dsm_range *)(void *)io->bounce,
                              io->bounce_iova, req->lba, req->blocks);
        io->left = 0;
        break;
    default:
        ok = false;
        break;
    }
    if (!ok)
        return INVALID;
    e.cid = s->cid;
    if (!nvme_sq_write(&q->q, &e)) {
        d->st.sq_stale++;
        return NO_ROOM;
    }
    d->st.commands++;
    return ISSUED;
}

/* Put req on a free slot of some queue (round robin) and write its first
 * command. False when no slot is free (req is untouched then). */
static bool start(struct nvme_drv *d, struct dd_blk_req *req, uint8_t tries)
{
    uint64_t now = dd_now_ns();
    for (uint16_t k = 0; k < d->nq; k++) {
        struct nvme_ioq *q = &d->ioq[d->rr];
        d->rr = (uint16_t)((d->rr + 1u) % d->nq);
        int s = nvme_slot_alloc(&q->q, req, tries, now);
        if (s < 0)
            continue;
        uint16_t idx = (uint16_t)s;
        q->io[idx].lba_next = req->lba;
        q->io[idx].left = req->blocks;
        enum issue_result r = issue(d, q, idx);
        if (r == NO_ROOM) {
            nvme_slot_free(&q->q, idx);
            continue;
        }
        if (r == INVALID) {
            nvme_slot_free(&q->q, idx);
            finish(d, req, MOAT_ST_EINVAL);
        }
        return true;
    }
    return false;
}

void nvme_io_submit(void *ctx, struct dd_blk_req *req)
{
    struct nvme_drv *d = ctx;
    d->st.requests++;
    if (req->op == MOAT_BLK_FLUSH && !(d->id.vwc & 1u)) {
        finish(d, req, MOAT_ST_OK);     /* no volatile cache: writes are durable */
        return;
    }
    /* Behind anything already waiting, so requests start in order. */
    if (d->state == NVME_ST_LIVE && nvme_fifo_len(&d->waitq) == 0 && start(d, req, 0))
        return;
    d->st.waited++;
    wait_push(d, req, 0, false);
}

/* Start waiting requests while slots are free. */
static bool drain(struct nvme_drv *d)
{
    bool any = false;
    const struct nvme_wait *w;
    while ((w = nvme_fifo_peek(&d->waitq)) && start(d, w->req, w->tries)) {
        struct nvme_wait done;
        nvme_fifo_pop(&d->waitq, &done);
        any = true;
    }
    return any;
}

/* ---- completions ------------------------------------------------------------ */

static void log_error(struct nvme_drv *d, const struct nvme_ioq *q,
                      const struct dd_blk_req *req, uint16_t sc)
{
    if (d->errors_logged >= ERRORS_LOGGED)
        return;
    d->errors_logged++;
    dd_log("nvme: q%u %s lba %lu x%u: %s (0x%x)%s", q->q.qid, op_name(req->op), req->lba,
           req->blocks, nvme_status_name(sc), sc,
           d->errors_logged == ERRORS_LOGGED ? "; further errors are only counted" : "");
}

static void complete(struct nvme_drv *d, struct nvme_ioq *q, uint16_t idx, uint16_t sc)
{
    struct nvme_slot *s = &q->q.slot[idx];
    struct dd_blk_req *req = s->req;
    struct nvme_io_slot *io = &q->io[idx];
    if (sc == NVME_SC_ABORT_REQ && s->abort_ns && s->tries == 0) {
        /* We aborted it as stuck: one more try from the start. */
        nvme_slot_free(&q->q, idx);
        d->st.retries++;
        wait_push(d, req, 1, true);
        return;
    }
    if (sc == NVME_SC_SUCCESS && io->left) {
        nvme_slot_reissue(&q->q, idx, dd_now_ns());
        if (issue(d, q, idx) == ISSUED)
            return;
        sc = NVME_SC_INTERNAL;  /* cannot happen: the slot's last SQE was consumed */
    }
    uint32_t st = nvme_status_to_moat(sc);
    if (st == MOAT_ST_OK && req->op == MOAT_BLK_READ && !io->direct)
        memcpy(req->buf, io->bounce, (uint64_t)req->blocks * d->block_size);
    if (st != MOAT_ST_OK)
        log_error(d, q, req, sc);
    nvme_slot_free(&q->q, idx);
    finish(d, req, st);
}

void nvme_io_bad_cqe(struct nvme_drv *d, uint16_t qid, enum nvme_cqe_verdict v,
                     const struct nvme_cqe *e)
{
    d->st.bad_cqe[v]++;
    if (d->bad_logged[v])
        return;
    d->bad_logged[v] = true;
    dd_log("nvme: ignored a completion on CQ %u: %s (SQ %u, CID 0x%x, SQHD %u, status 0x%x); "
           "further ones are only counted", qid, nvme_cqe_verdict_name(v), e->sqid, e->cid,
           e->sqhd, e->status);
}

static bool reap(struct nvme_drv *d, struct nvme_ioq *q)
{
    bool any = false;
    struct nvme_cqe e;
    /* Bounded: a controller that keeps writing entries cannot hold us. */
    for (unsigned n = 0; n < q->q.entries && nvme_cq_pop(&q->q, &e); n++) {
        any = true;
        uint16_t idx;
        enum nvme_cqe_verdict v = nvme_cqe_check(&q->q, &e, &idx);
        if (v != NVME_CQE_OK) {
            nvme_io_bad_cqe(d, q->q.qid, v, &e);
            continue;
        }
        q->q.sq_head = e.sqhd;
        complete(d, q, idx, NVME_CQE_STATUS(e.status));
    }
    return any;
}

/* ---- doorbells ---------------------------------------------------------------- */

/* Publish a new doorbell value: shadow + EventIdx test, or MMIO alone. */
static void doorbell(struct nvme_drv *d, uint32_t slot, uint64_t off, uint16_t v, uint16_t old)
{
    if (d->dbbuf && !nvme_db_publish(&d->db_shadow[slot], &d->db_event[slot], v, old)) {
        d->st.db_shadow++;
        return;
    }
    dd_wmb();                   /* SQEs (or consumed CQEs) before the doorbell */
    dd_mmio_write32(d->regs, off, v);
    d->st.db_mmio++;
}

static void ring(struct nvme_drv *d, struct nvme_ioq *q)
{
    struct nvme_queue *r = &q->q;
    if (r->cq_head != r->cq_db) {
        doorbell(d, q->cq_db_slot, NVME_CQ_HDBL(r->qid, d->dstrd), r->cq_head, r->cq_db);
        r->cq_db = r->cq_head;
    }
    if (r->sq_tail != r->sq_db) {
        doorbell(d, q->sq_db_slot, NVME_SQ_TDBL(r->qid, d->dstrd), r->sq_tail, r->sq_db);
        r->sq_db = r->sq_tail;
    }
}

/* ---- timeouts and recovery ------------------------------------------------------ */

static void timed_out(struct nvme_drv *d, struct nvme_ioq *q, uint16_t idx, uint64_t now)
{
    struct nvme_slot *s = &q->q.slot[idx];
    const struct dd_blk_req *req = s->req;
    bool sent = nvme_admin_abort(d, q->q.qid, s->cid);
    d->st.timeouts++;
    d->st.aborts += sent;
    dd_log("nvme: q%u cid 0x%x (%s lba %lu x%u) timed out after %lu ms; %s", q->q.qid,
           s->cid, op_name(req->op), req->lba, req->blocks, (now - s->submit_ns) / MS,
           sent ? "ABORT sent" : "ABORT limit reached: a reset follows if it stays stuck");
    s->abort_ns = now;
}

/* Abort overdue commands, reset a controller that stays stuck or failed.
 * True when it reset (the FIFO then holds the requests to resubmit). */
static bool check_timeouts(struct nvme_drv *d, uint64_t now)
{
    bool overdue = false;
    for (uint16_t i = 0; i < d->nq; i++) {
        struct nvme_ioq *q = &d->ioq[i];
        if (!q->q.busy)
            continue;
        uint16_t idx = 0;
        switch (nvme_queue_timeouts(&q->q, now, d->cfg.timeout_ns, &idx)) {
        case NVME_TMO_NONE:
            break;
        case NVME_TMO_WAIT:
            overdue = true;
            break;
        case NVME_TMO_ABORT:
            overdue = true;
            timed_out(d, q, idx, now);
            break;
        case NVME_TMO_RESET:
            dd_log("nvme: q%u cid 0x%x still stuck %lu ms after it timed out", q->q.qid,
                   q->q.slot[idx].cid, (now - q->q.slot[idx].abort_ns) / MS);
            nvme_ctrl_recover(d, "a command stayed stuck after ABORT");
            return true;
        }
    }
    if (overdue) {
        uint32_t csts = dd_mmio_read32(d->regs, NVME_REG_CSTS);
        if (csts == 0xFFFFFFFFu || (csts & NVME_CSTS_CFS)) {
            dd_log("nvme: CSTS 0x%x while commands are overdue", csts);
            nvme_ctrl_recover(d, "controller fatal status");
            return true;
        }
    }
    return false;
}

void nvme_io_requeue(struct nvme_drv *d)
{
    uint32_t retry = 0, failed = 0;
    for (uint16_t i = 0; i < d->nq; i++) {
        struct nvme_queue *q = &d->ioq[i].q;
        for (uint16_t idx = 0; idx < q->depth; idx++) {
            struct nvme_slot *s = &q->slot[idx];
            if (!s->busy)
                continue;
            struct dd_blk_req *req = s->req;
            uint8_t tries = s->tries;
            nvme_slot_free(q, idx);
            if (tries >= 1) {
                failed++;
                finish(d, req, MOAT_ST_EIO);
            } else {
                retry++;
                d->st.retries++;
                wait_push(d, req, (uint8_t)(tries + 1u), true);
            }
        }
    }
    dd_log("nvme: %u outstanding commands taken back: %u to resubmit once, %u failed "
           "(already retried)", retry + failed, retry, failed);
}

/* ---- interrupts while polling ----------------------------------------------------- */

/* An interrupt only has to wake a sleeping domain, and one costs a domain
 * far more than a poll (its kernel entry is emulated on PVM hosts). So,
 * NAPI-style: while the poller runs, the I/O vectors are masked in the
 * MSI-X table; before the domain may sleep they are unmasked, and a
 * completion that arrived while masked is then delivered from the PBA
 * (the controller retracts the pending bit of a CQ we already drained). */
static void irqs_mask(struct nvme_drv *d, bool masked)
{
    if (!d->cfg.irq_mask || d->irqs_masked == masked)
        return;
    for (uint16_t i = 0; i < d->nq; i++)
        if (d->ioq[i].irq)
            dd_irq_mask(d->ioq[i].irq, masked);
    d->irqs_masked = masked;
    d->st.irq_masks += masked;
}

/* ---- the poller ------------------------------------------------------------------ */

bool nvme_io_poll(void *ctx)
{
    struct nvme_drv *d = ctx;
    if (d->state != NVME_ST_LIVE)
        return false;           /* a reset runs the loop: it owns the queues */
    bool work = false;
    for (uint16_t i = 0; i < d->nq; i++)
        work |= reap(d, &d->ioq[i]);
    if (d->aq.busy)
        work |= nvme_admin_reap(d);
    work |= drain(d);
    for (uint16_t i = 0; i < d->nq; i++)
        ring(d, &d->ioq[i]);

    uint64_t now = dd_now_ns();
    if (now >= d->next_tmo_ns) {
        d->next_tmo_ns = now + TMO_CHECK_NS;
        work |= check_timeouts(d, now);     /* after a reset: resubmit next pass */
    }
    if (d->cfg.stats_ns && now >= d->next_stats_ns) {
        d->next_stats_ns = now + d->cfg.stats_ns;
        nvme_stats_log(d, false);
    }
    if (work)
        irqs_mask(d, true);
    return work;
}

bool nvme_io_idle(void *ctx)
{
    struct nvme_drv *d = ctx;
    if (d->state != NVME_ST_LIVE || !d->irqs_masked)
        return false;
    irqs_mask(d, false);
    /* A completion that landed while masked is delivered from the PBA
     * now, and the loop sees it before it sleeps: look once more anyway. */
    return true;
}

void nvme_stats_log(struct nvme_drv *d, bool force)
{
    if (!force && memcmp(&d->st, &d->st_logged, sizeof d->st) == 0)
        return;
    uint64_t irqs = d->airq ? dd_irq_count(d->airq) : 0, bad = 0;
    for (uint16_t i = 0; i < d->nq; i++)
        irqs += d->ioq[i].irq ? dd_irq_count(d->ioq[i].irq) : 0;
    for (unsigned v = 0; v < NVME_CQE_VERDICTS; v++)
        bad += d->st.bad_cqe[v];
    const uint64_t *n = d->st.done;
    dd_log("nvme: %lu requests, %lu commands (%lu zero-copy, %lu bounced); ok %lu, eio %lu, "
           "einval %lu, erange %lu, erofs %lu; waited %lu; timeouts %lu, aborts %lu, retries %lu, "
           "resets %lu; irqs %lu; doorbells %lu mmio, %lu shadow only; polling periods %lu; "
           "bad CQEs %lu", d->st.requests, d->st.commands, d->st.direct, d->st.bounced,
           n[MOAT_ST_OK], n[MOAT_ST_EIO], n[MOAT_ST_EINVAL], n[MOAT_ST_ERANGE], n[MOAT_ST_EROFS],
           d->st.waited, d->st.timeouts, d->st.aborts, d->st.retries, d->st.resets, irqs,
           d->st.db_mmio, d->st.db_shadow, d->st.irq_masks, bad);
    d->st_logged = d->st;
}
