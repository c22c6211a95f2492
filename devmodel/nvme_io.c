/* NVMe I/O path: PRP transfers, the NVM command set, completion posting,
 * interrupts and coalescing, and the worker thread that serves the I/O
 * queues (contract in nvme_internal.h). Over 600 lines: transfers,
 * commands, completions and interrupt coalescing are one pipeline under
 * one lock. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>
#include "nvme_internal.h"
#include "nvme_prp.h"

/* ---- PRP transfers ------------------------------------------------------ */

/* A PRP list page is guest memory like any other: through the broker. */
static bool prp_list_read(void *ctx, uint64_t iova, uint64_t *out, uint32_t n)
{
    struct nvme_ctrl *c = ctx;
    struct dma_mapping m;
    const void *p = pci_dma_map(c->f, iova, (uint64_t)n * 8u, DMA_TO_DEVICE, &m);
    if (!p) {
        NVME_COUNT(c, dma_refusals);
        return false;
    }
    memcpy(out, p, (size_t)n * 8u);
    pci_dma_unmap(c->f, &m);
    return true;
}

static uint16_t prp_status(enum nvme_prp_result r)
{
    switch (r) {
    case NVME_PRP_OK:           return NVME_SC_SUCCESS;
    case NVME_PRP_BAD_OFFSET:   return NVME_SC_INVALID_PRP_OFFSET;
    case NVME_PRP_LIST_REFUSED:
    case NVME_PRP_OVERFLOW:     return NVME_SC_DATA_XFER_ERROR;   /* no window holds it */
    case NVME_PRP_TOO_MANY:     return NVME_SC_INVALID_FIELD;
    case NVME_PRP_BAD_ARGS:     break;
    }
    return NVME_SC_INTERNAL;
}

/* The guest memory of one transfer, mapped. */
struct xfer {
    unsigned n;
    struct nvme_prp_seg seg[NVME_SEGS_MAX];
    struct dma_mapping map[NVME_SEGS_MAX];
    struct iovec iov[NVME_SEGS_MAX];
};

/* Walk the PRPs of a len-byte transfer and map every segment for dir.
 * On failure nothing stays mapped. */
static uint16_t xfer_map(struct nvme_ctrl *c, struct xfer *x, uint64_t prp1, uint64_t prp2,
                         uint64_t len, enum dma_dir dir)
{
    struct nvme_prp_seg wrapped;
    struct nvme_prp_req req = { .prp1 = prp1, .prp2 = prp2, .len = len, .page = NVME_PAGE_SIZE,
                                .wrapped = &wrapped };
    unsigned n;
    enum nvme_prp_result res = nvme_prp_walk(&req, prp_list_read, c, x->seg, NVME_SEGS_MAX, &n);
    x->n = 0;
    if (res == NVME_PRP_OVERFLOW) {
        /* Refused like every address outside a window: through the broker,
         * which counts and audits it (and the domain's policy applies). */
        struct dma_mapping m;
        if (pci_dma_map(c->f, wrapped.iova, wrapped.len, dir, &m))
            pci_dma_unmap(c->f, &m);    /* cannot happen: a wrapping range */
        NVME_COUNT(c, dma_refusals);
        return NVME_SC_DATA_XFER_ERROR;
    }
    uint16_t st = prp_status(res);
    if (st == NVME_SC_INVALID_PRP_OFFSET)
        pci_guest_error(c->f, PCI_GERR_COMMAND, "PRP entry with an invalid offset", prp1, prp2);
    if (st != NVME_SC_SUCCESS)
        return st;
    for (unsigned i = 0; i < n; i++) {
        void *p = pci_dma_map(c->f, x->seg[i].iova, x->seg[i].len, dir, &x->map[i]);
        if (!p) {
            NVME_COUNT(c, dma_refusals);
            for (unsigned j = 0; j < i; j++)
                pci_dma_unmap(c->f, &x->map[j]);
            return NVME_SC_DATA_XFER_ERROR;
        }
        x->iov[i] = (struct iovec){ .iov_base = p, .iov_len = (size_t)x->seg[i].len };
    }
    x->n = n;
    return NVME_SC_SUCCESS;
}

static void xfer_unmap(struct nvme_ctrl *c, struct xfer *x)
{
    for (unsigned i = 0; i < x->n; i++)
        pci_dma_unmap(c->f, &x->map[i]);
    x->n = 0;
}

uint16_t nvme_xfer(struct nvme_ctrl *c, uint64_t prp1, uint64_t prp2, void *buf, uint64_t len,
                   enum dma_dir dir)
{
    struct xfer x;
    uint16_t st = xfer_map(c, &x, prp1, prp2, len, dir);
    if (st != NVME_SC_SUCCESS)
        return st;
    uint8_t *b = buf;
    for (unsigned i = 0; i < x.n; b += x.iov[i].iov_len, i++) {
        if (dir == DMA_FROM_DEVICE)
            memcpy(x.iov[i].iov_base, b, x.iov[i].iov_len);
        else
            memcpy(b, x.iov[i].iov_base, x.iov[i].iov_len);
    }
    xfer_unmap(c, &x);
    return NVME_SC_SUCCESS;
}

/* ---- NVM command set (NVMe 1.4 §6) --------------------------------------- */

/* All of iov against the image at off; short transfers continue. */
static bool image_io(int fd, struct iovec *iov, int cnt, uint64_t off, bool write)
{
    while (cnt > 0) {
        ssize_t n = write ? pwritev(fd, iov, cnt, (off_t)off) : preadv(fd, iov, cnt, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        off += (uint64_t)n;
        while (cnt > 0 && (size_t)n >= iov->iov_len) {
            n -= (ssize_t)iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + n;
            iov->iov_len -= (size_t)n;
        }
    }
    return true;
}

/* Zero [off, off + len) of the image: punch a hole (reads back zeros,
 * frees space), or write zeros where the file system cannot. */
static bool image_zero(int fd, uint64_t off, uint64_t len)
{
    static const uint8_t zeros[64 * 1024];
    if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) == 0)
        return true;
    while (len > 0) {
        size_t n = len < sizeof zeros ? (size_t)len : sizeof zeros;
        struct iovec iov = { .iov_base = (void *)zeros, .iov_len = n };
        if (!image_io(fd, &iov, 1, off, true))
            return false;
        off += n;
        len -= n;
    }
    return true;
}

static uint16_t lba_range(const struct nvme_ctrl *c, uint64_t slba, uint64_t nlb)
{
    uint64_t end;
    if (__builtin_add_overflow(slba, nlb, &end) || end > c->nsze)
        return NVME_SC_LBA_RANGE;
    return NVME_SC_SUCCESS;
}

/* A write is durable at completion with FUA, or when the host turned the
 * volatile write cache off. */
static bool durable(const struct nvme_ctrl *c, const struct nvme_sqe *cmd, bool wce)
{
    if (wce && !(cmd->cdw12 & NVME_RW_FUA))
        return true;
    return fdatasync(c->fd) == 0;
}

/* READ / WRITE: SLBA cdw10-11, NLB (0-based) cdw12 15:0, FUA cdw12 bit 30. */
static uint16_t io_rw(struct nvme_ctrl *c, const struct nvme_sqe *cmd, bool wce, bool write)
{
    struct xfer x;
    uint64_t slba = (uint64_t)cmd->cdw11 << 32 | cmd->cdw10;
    uint64_t nlb = (cmd->cdw12 & 0xFFFFu) + 1u;
    uint16_t st = lba_range(c, slba, nlb);
    if (st != NVME_SC_SUCCESS)
        return st;
    uint64_t len = nlb << c->lba_shift;
    if (len > ((uint64_t)NVME_PAGE_SIZE << c->mdts))
        return NVME_SC_INVALID_FIELD;
    if (write && c->ro)
        return NVME_SC_NS_WRITE_PROTECTED;
    st = xfer_map(c, &x, cmd->prp1, cmd->prp2, len, write ? DMA_TO_DEVICE : DMA_FROM_DEVICE);
    if (st != NVME_SC_SUCCESS)
        return st;
    bool ok = !write && c->map.base ? image_map_readv(&c->map, x.iov, x.n, slba << c->lba_shift)
                                    : image_io(c->fd, x.iov, (int)x.n, slba << c->lba_shift, write);
    xfer_unmap(c, &x);
    if (!ok)
        return write ? NVME_SC_WRITE_FAULT : NVME_SC_READ_ERROR;
    if (!write) {
        NVME_ADD(c, bytes_read, len);
        return NVME_SC_SUCCESS;
    }
    NVME_ADD(c, bytes_written, len);
    return durable(c, cmd, wce) ? NVME_SC_SUCCESS : NVME_SC_WRITE_FAULT;
}

static uint16_t io_read(struct nvme_ctrl *c, const struct nvme_sqe *cmd, bool wce)
{
    return io_rw(c, cmd, wce, false);
}

static uint16_t io_write(struct nvme_ctrl *c, const struct nvme_sqe *cmd, bool wce)
{
    return io_rw(c, cmd, wce, true);
}

static uint16_t io_flush(struct nvme_ctrl *c, const struct nvme_sqe *cmd, bool wce)
{
    (void)cmd;
    (void)wce;
    return fdatasync(c->fd) == 0 ? NVME_SC_SUCCESS : NVME_SC_WRITE_FAULT;
}

static uint16_t io_write_zeroes(struct nvme_ctrl *c, const struct nvme_sqe *cmd, bool wce)
{
    uint64_t slba = (uint64_t)cmd->cdw11 << 32 | cmd->cdw10;
    uint64_t nlb = (cmd->cdw12 & 0xFFFFu) + 1u;
    uint16_t st = lba_range(c, slba, nlb);
    if (st != NVME_SC_SUCCESS)
        return st;
    if (c->ro)
        return NVME_SC_NS_WRITE_PROTECTED;
    if (!image_zero(c->fd, slba << c->lba_shift, nlb << c->lba_shift))
        return NVME_SC_WRITE_FAULT;
    return durable(c, cmd, wce) ? NVME_SC_SUCCESS : NVME_SC_WRITE_FAULT;
}

/* DSM: cdw10 NR (0-based) ranges in a page the PRPs give; with AD the
 * ranges are deallocated (read back as zeros). Every range is checked
 * before any is touched. */
static uint16_t io_dsm(struct nvme_ctrl *c, const struct nvme_sqe *cmd, bool wce)
{
    struct nvme_dsm_range r[256];
    unsigned nr = (cmd->cdw10 & 0xFFu) + 1u;
    (void)wce;
    uint16_t st = nvme_xfer(c, cmd->prp1, cmd->prp2, r, nr * sizeof r[0], DMA_TO_DEVICE);
    if (st != NVME_SC_SUCCESS || !(cmd->cdw11 & NVME_DSM_AD))
        return st;
    if (c->ro)
        return NVME_SC_NS_WRITE_PROTECTED;
    for (unsigned i = 0; i < nr; i++) {
        r[i].slba = le64toh(r[i].slba);
        r[i].nlb = le32toh(r[i].nlb);
        if ((st = lba_range(c, r[i].slba, r[i].nlb)) != NVME_SC_SUCCESS)
            return st;
    }
    for (unsigned i = 0; i < nr; i++)
        if (r[i].nlb && !image_zero(c->fd, r[i].slba << c->lba_shift,
                                    (uint64_t)r[i].nlb << c->lba_shift))
            return NVME_SC_WRITE_FAULT;
    return NVME_SC_SUCCESS;
}

typedef uint16_t (*io_fn)(struct nvme_ctrl *c, const struct nvme_sqe *cmd, bool wce);

/* One I/O command, on the worker without the lock. wce: the volatile
 * write cache setting when the batch was fetched. */
static uint16_t io_exec(struct nvme_ctrl *c, const struct nvme_sqe *cmd, bool wce)
{
    io_fn fn;
    switch ((enum nvme_io_opc)cmd->opc) {
    case NVME_IO_READ:         fn = io_read; NVME_COUNT(c, io_reads); break;
    case NVME_IO_WRITE:        fn = io_write; NVME_COUNT(c, io_writes); break;
    case NVME_IO_FLUSH:        fn = io_flush; NVME_COUNT(c, io_flushes); break;
    case NVME_IO_WRITE_ZEROES: fn = io_write_zeroes; NVME_COUNT(c, io_write_zeroes); break;
    case NVME_IO_DSM:          fn = io_dsm; NVME_COUNT(c, io_dsm); break;
    default:
        NVME_COUNT(c, io_other);
        return NVME_SC_INVALID_OPCODE;
    }
    bool all_ok = cmd->opc == NVME_IO_FLUSH && cmd->nsid == NVME_NSID_ALL;
    if (cmd->nsid != 1 && !all_ok)
        return NVME_SC_INVALID_NS;
    if (cmd->flags & (NVME_SQE_FUSE_MASK | NVME_SQE_PSDT_MASK))
        return NVME_SC_INVALID_FIELD;   /* no fused commands, no SGLs */
    return fn(c, cmd, wce);
}

/* ---- completions and interrupts ----------------------------------------- */

uint32_t nvme_cq_room(const struct nvme_cq *cq)
{
    uint32_t used = nvme_ring_dist(cq->head, cq->tail, cq->size) + cq->reserved;
    return used >= cq->size - 1u ? 0 : cq->size - 1u - used;
}

/* Errors a retry cannot fix carry Do Not Retry. */
static uint16_t cqe_status(uint16_t status, bool phase)
{
    bool transient = status == NVME_SC_SUCCESS || status == NVME_SC_ABORT_REQ ||
                     status == NVME_SC_ABORT_SQ_DELETED || status == NVME_SC_INTERNAL ||
                     status == NVME_SC_READ_ERROR || status == NVME_SC_WRITE_FAULT;
    return (uint16_t)((uint32_t)status << 1 | (transient ? 0u : NVME_CQE_DNR) | (phase ? 1u : 0u));
}

bool nvme_msix_on(struct nvme_ctrl *c)
{
    /* The enable bit is config space, written by the vCPU under irq_lock. */
    pthread_mutex_lock(&c->f->bus->irq_lock);
    bool on = pci_msix_enabled(c->f);
    pthread_mutex_unlock(&c->f->bus->irq_lock);
    return on;
}

/* Any live CQ on vector v still holding entries the host has not consumed? */
static bool vector_unconsumed(const struct nvme_ctrl *c, uint16_t v)
{
    for (unsigned q = 0; q < NVME_NQ; q++)
        if (c->cq[q].live && c->cq[q].ien && c->cq[q].vector == v && c->cq[q].head != c->cq[q].tail)
            return true;
    return false;
}

static void msix_send(struct nvme_ctrl *c, uint16_t v)
{
    struct nvme_vec *vec = &c->vec[v];
    if (vec->pending > 1)
        NVME_ADD(c, irq_coalesced, vec->pending - 1u);
    vec->pending = 0;
    vec->sent = true;
    if (pci_msix_notify(c->f, v))
        NVME_COUNT(c, irq_sent);
}

/* The CQ heads, read from the shadow page once per flush: the host may
 * have consumed entries without ringing. False when the page is refused
 * (the controller is then fatal). */
static bool heads_fresh(struct nvme_ctrl *c, bool *heads_read)
{
    if (!c->dbbuf || *heads_read)
        return true;
    *heads_read = true;
    return nvme_dbbuf_read(c);
}

/* Vector v's message may wait in the PBA while the host masks it and
 * polls: once the host drained its CQs, take the message back. */
static void msix_retract_drained(struct nvme_ctrl *c, uint16_t v, bool *heads_read)
{
    if (!heads_fresh(c, heads_read) || vector_unconsumed(c, v))
        return;
    c->vec[v].sent = false;
    if (pci_msix_retract(c->f, v))
        NVME_COUNT(c, irq_retracted);
}

void nvme_intx_update(struct nvme_ctrl *c)
{
    bool level = false;
    if (!nvme_msix_on(c) && !(c->intms & 1u) && !c->quiesced)
        for (uint16_t q = 0; q < NVME_NQ && !level; q++)
            level = c->cq[q].live && c->cq[q].ien && c->cq[q].head != c->cq[q].tail;
    if (level == c->intx_level)
        return;
    c->intx_level = level;
    if (level)
        NVME_COUNT(c, irq_sent);
    pci_intx_set(c->f, level);
}

bool nvme_cq_post(struct nvme_ctrl *c, uint16_t sqid, const struct nvme_result *r, unsigned n)
{
    struct nvme_sq *sq = &c->sq[sqid];
    struct nvme_cq *cq = &c->cq[sq->cqid];
    struct dma_mapping m;
    uint8_t *ring = pci_dma_map(c->f, cq->base, (uint64_t)cq->size * 16u, DMA_FROM_DEVICE, &m);
    if (!ring) {
        nvme_fatal_dma(c, "completion queue memory", &m);
        return false;
    }
    unsigned posted = 0;
    for (unsigned i = 0; i < n; i++) {
        if (r[i].swallowed)
            continue;
        uint32_t *e = (uint32_t *)(ring + (size_t)cq->tail * 16u);
        e[0] = r[i].dw0;
        e[1] = 0;
        e[2] = sq->head | (uint32_t)sqid << 16;     /* SQHD, SQID */
        /* Release: the host takes the entry as new when it sees the phase
         * tag in dword 3, so dwords 0-2 must be visible before it. */
        __atomic_store_n(&e[3], r[i].cid | (uint32_t)cqe_status(r[i].status, cq->phase) << 16,
                         __ATOMIC_RELEASE);
        nvme_count_status(c, r[i].status);
        if (++cq->tail == cq->size) {
            cq->tail = 0;
            cq->phase = !cq->phase;
        }
        posted++;
    }
    pci_dma_unmap(c->f, &m);
    if (!posted || !cq->ien)
        return true;
    if (!nvme_msix_on(c)) {
        nvme_intx_update(c);
        return true;
    }
    struct nvme_vec *vec = &c->vec[cq->vector];
    if (!vec->pending)
        vec->first_ns = clock_mono_ns();
    vec->pending += posted;
    if (sq->cqid == 0)      /* coalescing applies to I/O queues only */
        msix_send(c, cq->vector);
    return true;
}

void nvme_irq_flush(struct nvme_ctrl *c, uint64_t now, uint64_t *deadline_ns)
{
    uint64_t dl = 0;
    if (deadline_ns)
        *deadline_ns = 0;
    if (!nvme_msix_on(c)) {
        for (uint16_t v = 0; v < NVME_NQ; v++) {    /* INTx is a level: nothing to */
            c->vec[v].pending = 0;                  /* count; IRQ_CONFIG stays */
            c->vec[v].sent = false;
        }
        nvme_intx_update(c);
        return;
    }
    uint32_t thr = c->coal_thr + 1u;
    uint64_t time_ns = c->coal_time * 100000ull;
    bool coalescing = thr > 1 || time_ns > 0, heads_read = false;
    for (uint16_t v = 0; v <= c->nq; v++) {
        struct nvme_vec *vec = &c->vec[v];
        if (!vec->pending) {
            if (vec->sent)
                msix_retract_drained(c, v, &heads_read);
            continue;
        }
        bool by_thr = vec->cd || vec->pending >= thr;
        bool by_time = now - vec->first_ns >= time_ns;
        if (!by_thr && !by_time) {
            if (!dl || vec->first_ns + time_ns < dl)
                dl = vec->first_ns + time_ns;
            continue;
        }
        if (coalescing && !vec->cd) {
            if (by_thr)
                NVME_COUNT(c, irq_by_threshold);
            else
                NVME_COUNT(c, irq_by_time);
        }
        if (!heads_fresh(c, &heads_read))
            return;
        if (vector_unconsumed(c, v)) {
            msix_send(c, v);
        } else {
            NVME_COUNT(c, irq_skipped);
            NVME_ADD(c, irq_coalesced, vec->pending - 1u);
            vec->pending = 0;
        }
    }
    if (deadline_ns)
        *deadline_ns = dl;
}

/* ---- the worker ---------------------------------------------------------- */

/* The stall knob: is this fetched command the one to swallow? */
static bool stall_pick(struct nvme_ctrl *c, uint16_t sqid, const struct nvme_sqe *cmd)
{
    c->io_seen++;
    if (!c->stall_at || c->stall_done || c->io_seen != c->stall_at)
        return false;
    c->stall_done = c->stall_active = true;
    c->stall_sqid = sqid;
    c->stall_cid = cmd->cid;
    NVME_COUNT(c, stalled);
    return true;
}

bool nvme_stall_complete(struct nvme_ctrl *c, uint16_t sqid, uint16_t cid, uint16_t status)
{
    if (!c->stall_active || c->stall_sqid != sqid || c->stall_cid != cid)
        return false;
    c->stall_active = false;
    c->cq[c->sq[sqid].cqid].reserved--;
    struct nvme_result r = { .cid = cid, .status = status };
    nvme_cq_post(c, sqid, &r, 1);
    nvme_irq_flush(c, clock_mono_ns(), NULL);
    nvme_worker_kick(c);    /* its coalescing deadline may have changed */
    return true;
}

/* Fetch up to a batch from SQ qid (as many as its CQ has room for),
 * execute it without the lock, post the completions. True if any. */
static bool sq_process(struct nvme_ctrl *c, uint16_t qid)
{
    struct nvme_sqe cmd[NVME_IO_BATCH];
    struct nvme_result res[NVME_IO_BATCH];
    struct nvme_sq *sq = &c->sq[qid];
    struct nvme_cq *cq = &c->cq[sq->cqid];
    uint32_t n = nvme_ring_dist(sq->head, sq->tail, sq->size), room = nvme_cq_room(cq);
    if (n == 0 || c->hold)      /* the vCPU waits for us to be idle: let it in */
        return false;
    if (room == 0) {        /* never overwrite an unconsumed CQE: wait for the head */
        cq->blocked = true;
        return false;
    }
    n = n < room ? n : room;
    n = n < NVME_IO_BATCH ? n : NVME_IO_BATCH;
    struct dma_mapping m;
    const uint8_t *ring = pci_dma_map(c->f, sq->base, (uint64_t)sq->size * 64u, DMA_TO_DEVICE, &m);
    if (!ring) {
        nvme_fatal_dma(c, "submission queue memory", &m);
        return false;
    }
    /* Copy before looking: the host may rewrite its ring at any time. */
    for (uint32_t i = 0; i < n; i++)
        memcpy(&cmd[i], ring + (size_t)((sq->head + i) % sq->size) * 64u, sizeof cmd[i]);
    pci_dma_unmap(c->f, &m);
    sq->head = (sq->head + n) % sq->size;
    cq->reserved += n;
    cq->blocked = false;
    uint32_t swallowed = 0;
    for (uint32_t i = 0; i < n; i++) {
        res[i] = (struct nvme_result){ .cid = cmd[i].cid };
        res[i].swallowed = stall_pick(c, qid, &cmd[i]);
        swallowed += res[i].swallowed;
    }
    bool wce = c->wce;
    c->worker_busy = true;
    pthread_mutex_unlock(&c->lock);
    for (uint32_t i = 0; i < n; i++)
        if (!res[i].swallowed)
            res[i].status = io_exec(c, &cmd[i], wce);
    pthread_mutex_lock(&c->lock);
    c->worker_busy = false;
    pthread_cond_broadcast(&c->idle);
    cq->reserved -= n - swallowed;  /* a swallowed command keeps its slot */
    nvme_cq_post(c, qid, res, n);
    return true;
}

/* One round-robin pass over the I/O SQs. True if anything was done. */
static bool io_pass(struct nvme_ctrl *c)
{
    bool progress = false;
    if (c->dbbuf && !nvme_dbbuf_read(c))
        return false;
    for (uint32_t i = 0; i < c->nq && !c->w.stop && !(c->csts & NVME_CSTS_CFS); i++) {
        uint16_t q = (uint16_t)(1u + (c->rr + i) % c->nq);
        if (c->sq[q].live && sq_process(c, q))
            progress = true;
    }
    c->rr = (c->rr + 1u) % c->nq;
    if (c->dbbuf && !(c->csts & NVME_CSTS_CFS))
        nvme_dbbuf_publish(c, false);
    return progress;
}

/* Any SQ with commands and CQ room (lock held)? */
static bool work_pending(const struct nvme_ctrl *c)
{
    for (uint16_t q = 1; q < NVME_NQ; q++) {
        const struct nvme_sq *sq = &c->sq[q];
        if (sq->live && sq->head != sq->tail && nvme_cq_room(&c->cq[sq->cqid]) > 0)
            return true;
    }
    return false;
}

/* Before sleeping (lock held): true when it is safe to sleep. MMIO
 * doorbells signal the eventfd, so only shadow doorbells need the
 * request -> recheck dance. */
static bool arm_sleep(struct nvme_ctrl *c)
{
    if (!c->dbbuf)
        return true;
    if (!nvme_dbbuf_publish(c, true))
        return false;
    /* Full barrier: our EventIdx stores must be visible before we re-read
     * the shadow tails. The driver does the mirror image (store the shadow
     * tail, full barrier, load EventIdx), so at least one side sees the
     * other's store and no submission is left unseen and unrung. */
    atomic_thread_fence(memory_order_seq_cst);
    return nvme_dbbuf_read(c) && !work_pending(c);
}

static bool worker_pass(void *dev, uint64_t *deadline_ns)
{
    struct nvme_ctrl *c = dev;
    bool progress = io_pass(c);
    nvme_irq_flush(c, clock_mono_ns(), deadline_ns);    /* after the pass's completions */
    return progress;
}

static bool worker_arm(void *dev) { return arm_sleep(dev); }

static bool worker_halted(void *dev)
{
    const struct nvme_ctrl *c = dev;
    return c->csts & NVME_CSTS_CFS;
}

static void worker_woke(void *dev)
{
    struct nvme_ctrl *c = dev;
    NVME_COUNT(c, worker_wakeups);
}

static const struct dev_worker_ops worker_ops = {
    .pass = worker_pass, .arm = worker_arm, .halted = worker_halted, .woke = worker_woke,
};

void nvme_worker_init(struct nvme_ctrl *c)
{
    dev_worker_init(&c->w, &worker_ops, c, &c->lock, c->efd, &c->poll_us);
}

void nvme_worker_kick(struct nvme_ctrl *c) { dev_worker_kick(&c->w); }

bool nvme_worker_start(struct nvme_ctrl *c) { return dev_worker_start(&c->w, c->f, "nvme"); }

void nvme_worker_stop(struct nvme_ctrl *c)
{
    dev_worker_stop(&c->w);
    c->worker_busy = false;
}

void nvme_worker_wait_idle(struct nvme_ctrl *c)
{
    c->hold++;      /* else a busy worker could start batch after batch */
    while (c->worker_busy)
        pthread_cond_wait(&c->idle, &c->lock);
    c->hold--;
    nvme_worker_kick(c);    /* it may have skipped work meanwhile, then slept */
}
