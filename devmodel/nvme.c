/* NVMe controller model: PCI function, options, the BAR0 register file,
 * doorbells (MMIO, shadow doorbells + EventIdx, ioeventfds) and the
 * controller lifecycle (contract in nvme.h; admin commands in
 * nvme_admin.c, I/O in nvme_io.c). Over 600 lines: the register file and
 * the doorbell kinds (MMIO, shadow, ioeventfd) act on one queue state. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>
#include "devopts.h"
#include "log.h"
#include "nvme_internal.h"

/* ---- register file (NVMe 1.4 §3.1, Figure 78) ------------------------- */

struct nvme_reg {
    uint32_t off;
    uint32_t width;         /* bytes: 8 = may also be accessed as a qword */
};

/* Implemented registers; every other offset below the doorbells reads 0
 * and ignores writes. Dword accesses are always allowed (both halves of a
 * 64-bit register); qword accesses only to 64-bit registers. */
static const struct nvme_reg nvme_regs[] = {
    { NVME_REG_CAP, 8 },   { NVME_REG_VS, 4 },  { NVME_REG_INTMS, 4 }, { NVME_REG_INTMC, 4 },
    { NVME_REG_CC, 4 },    { NVME_REG_CSTS, 4 }, { NVME_REG_NSSR, 4 },  { NVME_REG_AQA, 4 },
    { NVME_REG_ASQ, 8 },   { NVME_REG_ACQ, 8 },
};
_Static_assert(NVME_REG_ACQ + 8 <= NVME_REG_DBS, "registers end before the doorbells");
_Static_assert(NVME_CQ_HDBL(NVME_QUEUES_MAX, 0) + 4 <= NVME_BAR0_SIZE, "doorbells fit BAR0");

#define NVME_AQA_RESERVED 0xF000F000u   /* AQA bits 15:12 and 31:28 */

static const struct pci_device_ops nvme_ops;

void nvme_fatal(struct nvme_ctrl *c, const char *why)
{
    if (c->csts & NVME_CSTS_CFS)
        return;
    c->csts |= NVME_CSTS_CFS;
    NVME_COUNT(c, fatal);
    pci_guest_error(c->f, PCI_GERR_FATAL, why, c->asq, c->acq);
}

void nvme_fatal_dma(struct nvme_ctrl *c, const char *what, const struct dma_mapping *m)
{
    char why[128];
    NVME_COUNT(c, dma_refusals);
    /* Name the real cause: pci_dma_map refuses before the broker when bus
     * mastering is off. */
    if (!(pci_command(c->f) & PCI_CMD_MASTER))
        snprintf(why, sizeof why, "%s not reachable: bus mastering is disabled", what);
    else
        snprintf(why, sizeof why, "%s refused by the broker: %s", what,
                 broker_refusal_name(m->refusal));
    nvme_fatal(c, why);
}

void nvme_count_status(struct nvme_ctrl *c, uint16_t status)
{
    switch ((enum nvme_status)status) {
    case NVME_SC_SUCCESS:           return;
    case NVME_SC_INVALID_OPCODE:    NVME_COUNT(c, err_opcode); return;
    case NVME_SC_INVALID_FIELD:     NVME_COUNT(c, err_field); return;
    case NVME_SC_INVALID_NS:        NVME_COUNT(c, err_ns); return;
    case NVME_SC_LBA_RANGE:         NVME_COUNT(c, err_lba_range); return;
    case NVME_SC_INVALID_PRP_OFFSET: NVME_COUNT(c, err_prp_offset); return;
    case NVME_SC_DATA_XFER_ERROR:   NVME_COUNT(c, err_data_xfer); return;
    case NVME_SC_NS_WRITE_PROTECTED: NVME_COUNT(c, err_write_protected); return;
    case NVME_SC_INTERNAL:
    case NVME_SC_READ_ERROR:
    case NVME_SC_WRITE_FAULT:       NVME_COUNT(c, err_media); return;
    case NVME_SC_CQ_INVALID:
    case NVME_SC_QID_INVALID:
    case NVME_SC_QUEUE_SIZE:
    case NVME_SC_INVALID_VECTOR:
    case NVME_SC_INVALID_DELETE:    NVME_COUNT(c, err_queue); return;
    case NVME_SC_ABORT_REQ:
    case NVME_SC_ABORT_SQ_DELETED:  NVME_COUNT(c, err_aborted); return;
    case NVME_SC_CID_CONFLICT:
    case NVME_SC_CMD_SEQ_ERROR:
    case NVME_SC_CAP_EXCEEDED:
    case NVME_SC_ABORT_LIMIT:
    case NVME_SC_AER_LIMIT:
    case NVME_SC_INVALID_LOG_PAGE:
    case NVME_SC_FEAT_NOT_SAVEABLE: break;
    }
    NVME_COUNT(c, err_other);
}

/* ---- lifecycle -------------------------------------------------------- */

/* Features and queue state back to their defaults (lock held, worker
 * stopped). forget_ioeventfds: the VM they belonged to is gone. */
static void ctrl_clear(struct nvme_ctrl *c, bool forget_ioeventfds)
{
    for (uint16_t q = 1; q < NVME_NQ; q++)
        if (forget_ioeventfds)
            c->sq[q].ioeventfd = false;
        else
            nvme_sq_ioeventfd(c, q, false);
    memset(c->sq, 0, sizeof c->sq);
    memset(c->cq, 0, sizeof c->cq);
    memset(c->vec, 0, sizeof c->vec);
    c->nsq_alloc = c->ncq_alloc = c->nq;
    c->coal_thr = c->coal_time = 0;
    c->wce = true;
    c->aer_held = 0;
    c->dbbuf = false;
    c->dbs = c->eis = 0;
    c->stall_active = false;
    c->csts = 0;
    nvme_intx_update(c);
}

/* CC.EN 0 -> 1 (NVMe 1.4 §7.6.1): check the configuration and the admin
 * queue, then become ready. Anything wrong is a fatal status, never RDY. */
static void ctrl_enable(struct nvme_ctrl *c)
{
    uint32_t asqs = NVME_AQA_ASQS(c->aqa) + 1u, acqs = NVME_AQA_ACQS(c->aqa) + 1u;
    const char *bad = NULL;
    if (NVME_CC_CSS(c->cc) != 0 || NVME_CC_MPS(c->cc) != 0 || NVME_CC_AMS(c->cc) != 0)
        bad = "CC selects a command set, page size or arbitration it does not support";
    else if ((c->aqa & NVME_AQA_RESERVED) || asqs < NVME_ADMIN_QUEUE_MIN ||
             acqs < NVME_ADMIN_QUEUE_MIN)
        bad = "AQA admin queue sizes outside 2..4096";
    else if (!c->asq || !c->acq || c->asq % NVME_PAGE_SIZE || c->acq % NVME_PAGE_SIZE)
        bad = "ASQ/ACQ zero or not page aligned";
    else if (c->quiesced)
        bad = "enabled while quiesced";
    if (!bad) {
        struct dma_mapping ms, mc;
        bool sq_ok = pci_dma_map(c->f, c->asq, (uint64_t)asqs * 64u, DMA_TO_DEVICE, &ms);
        if (sq_ok)
            pci_dma_unmap(c->f, &ms);
        bool cq_ok = pci_dma_map(c->f, c->acq, (uint64_t)acqs * 16u, DMA_FROM_DEVICE, &mc);
        if (cq_ok)
            pci_dma_unmap(c->f, &mc);
        if (!sq_ok || !cq_ok) {
            NVME_ADD(c, dma_refusals, (uint64_t)!sq_ok + !cq_ok);
            bad = "admin queue memory not mappable";
        }
    }
    if (bad) {
        nvme_fatal(c, bad);
        return;
    }
    c->sq[0] = (struct nvme_sq){ .live = true, .size = asqs, .base = c->asq,
                                 .event = NVME_NO_EVENT };
    c->cq[0] = (struct nvme_cq){ .live = true, .ien = true, .phase = true, .size = acqs,
                                 .base = c->acq, .sqs = 1, .event = NVME_NO_EVENT };
    if (!nvme_worker_start(c)) {
        nvme_fatal(c, "cannot start the I/O worker thread");
        return;
    }
    c->csts |= NVME_CSTS_RDY;
}

/* CC.EN 1 -> 0: controller reset. The worker finishes its batch and
 * stops; every queue is gone. */
static void ctrl_disable(struct nvme_ctrl *c)
{
    nvme_worker_stop(c);
    ctrl_clear(c, false);
}

/* CC.SHN: finish in-flight I/O, make the image durable, report done. */
static void ctrl_shutdown(struct nvme_ctrl *c)
{
    nvme_worker_wait_idle(c);
    if (fdatasync(c->fd) != 0)
        log_error(c->f->bus->domain_name, "%s: flush at shutdown failed: %s", c->f->name,
                  strerror(errno));
    c->csts = (c->csts & ~NVME_CSTS_SHST_MASK) | NVME_CSTS_SHST_DONE;
    NVME_COUNT(c, shutdowns);
}

static void cc_write(struct nvme_ctrl *c, uint32_t v)
{
    uint32_t old = c->cc;
    c->cc = v;
    if (!(old & NVME_CC_EN) && (v & NVME_CC_EN))
        ctrl_enable(c);
    else if ((old & NVME_CC_EN) && !(v & NVME_CC_EN))
        ctrl_disable(c);
    if ((v & NVME_CC_EN) && NVME_CC_SHN(v) && !NVME_CC_SHN(old))
        ctrl_shutdown(c);
}

/* ---- register access ---------------------------------------------------- */

static bool reg_access_ok(uint64_t off, uint32_t size)
{
    if (size == 4)
        return off % 4 == 0;
    if (size != 8 || off % 8)
        return false;
    for (size_t i = 0; i < sizeof nvme_regs / sizeof nvme_regs[0]; i++)
        if (nvme_regs[i].off == off)
            return nvme_regs[i].width == 8;
    return false;
}

static uint64_t cap_value(const struct nvme_ctrl *c)
{
    /* MQES 0-based, CQR, TO, DSTRD 0, CSS NVM, MPSMIN = MPSMAX = 0 (4 KiB). */
    return NVME_CAP_MAKE(c->mqes - 1u, NVME_CAP_TO_UNITS, 0);
}

/* The dword at off (4-byte aligned, below the doorbells). */
static uint32_t reg_read32(const struct nvme_ctrl *c, uint64_t off)
{
    switch (off) {
    case NVME_REG_CAP:      return (uint32_t)cap_value(c);
    case NVME_REG_CAP + 4:  return (uint32_t)(cap_value(c) >> 32);
    case NVME_REG_VS:       return NVME_VS_1_4;
    case NVME_REG_INTMS:
    case NVME_REG_INTMC:    return c->intms;    /* both read the mask */
    case NVME_REG_CC:       return c->cc;
    case NVME_REG_CSTS:     return c->csts;
    case NVME_REG_AQA:      return c->aqa;
    case NVME_REG_ASQ:      return (uint32_t)c->asq;
    case NVME_REG_ASQ + 4:  return (uint32_t)(c->asq >> 32);
    case NVME_REG_ACQ:      return (uint32_t)c->acq;
    case NVME_REG_ACQ + 4:  return (uint32_t)(c->acq >> 32);
    default:                return 0;           /* NSSR (unsupported), reserved */
    }
}

static uint64_t reg_read(const struct nvme_ctrl *c, uint64_t off, uint32_t size)
{
    uint64_t v = reg_read32(c, off);
    return size == 8 ? v | (uint64_t)reg_read32(c, off + 4) << 32 : v;
}

/* Merge a dword or qword write at off into a 64-bit register. */
static uint64_t merge64(uint64_t cur, uint64_t off, uint32_t size, uint64_t v)
{
    if (size == 8)
        return v;
    return off % 8 ? (cur & 0xFFFFFFFFull) | (v << 32) : (cur & ~0xFFFFFFFFull) | (uint32_t)v;
}

static void reg_write(struct nvme_ctrl *c, uint64_t off, uint32_t size, uint64_t v)
{
    bool en = c->cc & NVME_CC_EN;
    switch (off) {
    case NVME_REG_INTMS:
        c->intms |= (uint32_t)v;
        nvme_intx_update(c);
        break;
    case NVME_REG_INTMC:
        c->intms &= ~(uint32_t)v;
        nvme_intx_update(c);
        break;
    case NVME_REG_CC:
        cc_write(c, (uint32_t)v);
        break;
    case NVME_REG_AQA:
        if (!en)    /* AQA/ASQ/ACQ change only while disabled (§3.1.8-3.1.10) */
            c->aqa = (uint32_t)v;
        break;
    case NVME_REG_ASQ:
    case NVME_REG_ASQ + 4:
        if (!en)
            c->asq = merge64(c->asq, off, size, v);
        break;
    case NVME_REG_ACQ:
    case NVME_REG_ACQ + 4:
        if (!en)
            c->acq = merge64(c->acq, off, size, v);
        break;
    default:    /* CAP, VS, CSTS read-only; NSSR unsupported (CAP.NSSRS = 0); reserved */
        break;
    }
}

/* A doorbell write (NVMe 1.4 §3.1.24-25). A write the controller cannot
 * take (controller not ready, no such queue, value outside the queue, a
 * CQ head past the entries posted) is a driver bug the device survives:
 * counted, ignored. */
static void bad_doorbell(struct nvme_ctrl *c, const char *why, uint32_t idx, uint32_t v)
{
    NVME_COUNT(c, invalid_doorbells);
    pci_guest_error(c->f, PCI_GERR_DOORBELL, why, idx, v);
}

static void doorbell_write(struct nvme_ctrl *c, uint64_t off, uint32_t v)
{
    uint32_t idx = (uint32_t)(off - NVME_REG_DBS) / 4u, qid = idx / 2u;
    bool is_cq = idx & 1u;
    bool ready = (c->csts & NVME_CSTS_RDY) && !(c->csts & NVME_CSTS_CFS) && !c->quiesced;
    if (!ready || qid >= NVME_NQ || !(is_cq ? c->cq[qid].live : c->sq[qid].live)) {
        bad_doorbell(c, ready ? "doorbell of a queue that does not exist"
                              : "doorbell while the controller is not ready", idx, v);
        return;
    }
    if (qid > 0)
        NVME_COUNT(c, mmio_doorbells);
    if (is_cq) {
        struct nvme_cq *cq = &c->cq[qid];
        if (v >= cq->size ||
            nvme_ring_dist(cq->head, v, cq->size) > nvme_ring_dist(cq->head, cq->tail, cq->size)) {
            bad_doorbell(c, "CQ head doorbell outside the queue or past what was posted", idx, v);
            return;
        }
        cq->head = v;
        if (qid == 0)
            nvme_admin_process(c);      /* the admin SQ may wait for room */
        else if (cq->blocked)
            nvme_worker_kick(c);
        /* INTx follows the CQs; a message pended while the host polled
         * with the vector masked is taken back once it drained them. */
        nvme_irq_flush(c, clock_mono_ns(), NULL);
        return;
    }
    struct nvme_sq *sq = &c->sq[qid];
    if (v >= sq->size) {
        bad_doorbell(c, "SQ tail doorbell outside the queue", idx, v);
        return;
    }
    sq->tail = v;
    if (qid == 0)
        nvme_admin_process(c);
    else
        nvme_worker_kick(c);
}

/* ---- shadow doorbells and EventIdx (Doorbell Buffer Config) ------------- */

/* Take the I/O SQ tails and CQ heads the host published in the shadow
 * page (lock held). Invalid values are counted once and ignored. */
bool nvme_dbbuf_read(struct nvme_ctrl *c)
{
    struct dma_mapping m;
    const uint32_t *db = pci_dma_map(c->f, c->dbs, NVME_PAGE_SIZE, DMA_TO_DEVICE, &m);
    if (!db) {
        nvme_fatal_dma(c, "shadow doorbell page", &m);
        return false;
    }
    for (uint16_t q = 1; q < NVME_NQ; q++) {
        struct nvme_sq *sq = &c->sq[q];
        struct nvme_cq *cq = &c->cq[q];
        /* Acquire: the SQEs the host wrote before the tail are read after it. */
        uint32_t t = sq->live ? __atomic_load_n(&db[NVME_DBBUF_SLOT(2u * q, 0)], __ATOMIC_ACQUIRE)
                              : 0;
        if (sq->live && t != sq->tail) {
            if (t < sq->size) {
                sq->tail = t;
                NVME_COUNT(c, shadow_doorbells);
            } else if (t != sq->rejected) {
                sq->rejected = t;
                bad_doorbell(c, "shadow SQ tail outside the queue", 2u * q, t);
            }
        }
        uint32_t h = cq->live ? __atomic_load_n(&db[NVME_DBBUF_SLOT(2u * q + 1u, 0)],
                                                __ATOMIC_ACQUIRE) : 0;
        if (cq->live && h != cq->head) {
            bool ok = h < cq->size && nvme_ring_dist(cq->head, h, cq->size) <=
                                          nvme_ring_dist(cq->head, cq->tail, cq->size);
            if (ok) {
                cq->head = h;
            } else if (h != cq->rejected) {
                cq->rejected = h;
                bad_doorbell(c, "shadow CQ head outside the queue or past what was posted",
                             2u * q + 1u, h);
            }
        }
    }
    pci_dma_unmap(c->f, &m);
    return true;
}

/* Publish EventIdx for every live I/O queue (lock held). The host rings
 * the MMIO doorbell only when its new value passes EventIdx
 * (nvme_dbbuf_need_event). Polling (sleeping = false): one behind what we
 * saw, so no submission rings. Before sleeping: what we saw, so the next
 * one does. A CQ head rings only when the worker waits for it (a full CQ)
 * or INTx is asserted for it. */
bool nvme_dbbuf_publish(struct nvme_ctrl *c, bool sleeping)
{
    uint32_t want[2 * NVME_NQ];
    bool change = false;
    bool intx = !nvme_msix_on(c);
    for (uint16_t q = 1; q < NVME_NQ; q++) {
        const struct nvme_sq *sq = &c->sq[q];
        const struct nvme_cq *cq = &c->cq[q];
        want[2 * q] = !sq->live ? NVME_NO_EVENT
                      : sleeping ? sq->tail : (sq->tail + sq->size - 1u) % sq->size;
        bool ring = cq->blocked || (intx && cq->head != cq->tail);
        want[2 * q + 1] = !cq->live ? NVME_NO_EVENT
                          : ring ? cq->head : (cq->head + cq->size - 1u) % cq->size;
        change |= want[2 * q] != sq->event || want[2 * q + 1] != cq->event;
    }
    if (!change)
        return true;
    struct dma_mapping m;
    uint32_t *ei = pci_dma_map(c->f, c->eis, NVME_PAGE_SIZE, DMA_FROM_DEVICE, &m);
    if (!ei) {
        nvme_fatal_dma(c, "EventIdx page", &m);
        return false;
    }
    for (uint16_t q = 1; q < NVME_NQ; q++) {
        if (c->sq[q].live && want[2 * q] != c->sq[q].event) {
            c->sq[q].event = want[2 * q];
            __atomic_store_n(&ei[NVME_DBBUF_SLOT(2u * q, 0)], want[2 * q], __ATOMIC_RELEASE);
        }
        if (c->cq[q].live && want[2 * q + 1] != c->cq[q].event) {
            c->cq[q].event = want[2 * q + 1];
            __atomic_store_n(&ei[NVME_DBBUF_SLOT(2u * q + 1u, 0)], want[2 * q + 1],
                             __ATOMIC_RELEASE);
        }
    }
    pci_dma_unmap(c->f, &m);
    return true;
}

void nvme_sq_ioeventfd(struct nvme_ctrl *c, uint16_t qid, bool assign)
{
    struct nvme_sq *sq = &c->sq[qid];
    if (assign == sq->ioeventfd)
        return;
    if (assign) {
        sq->ioeventfd = pci_ioeventfd(c->f, NVME_BAR_REGS, NVME_SQ_TDBL(qid, 0), 4, c->efd, true);
        if (sq->ioeventfd)
            NVME_COUNT(c, ioeventfds);
    } else {
        pci_ioeventfd(c->f, NVME_BAR_REGS, NVME_SQ_TDBL(qid, 0), 4, c->efd, false);
        sq->ioeventfd = false;
    }
}

static enum bus_result nvme_bar_access(void *dev, unsigned bar, struct bus_access *a)
{
    struct nvme_ctrl *c = dev;
    if (bar != NVME_BAR_REGS) {     /* BAR4 outside the MSI-X table and PBA */
        a->value = a->is_write ? a->value : 0;
        return BUS_OK;
    }
    bool db = a->offset >= NVME_REG_DBS;
    if (db ? (a->size != 4 || a->offset % 4) : !reg_access_ok(a->offset, a->size)) {
        pci_refuse(c->f, db ? "NVMe doorbell access not an aligned dword"
                            : "NVMe register access of the wrong width or alignment",
                   a->addr, a->size);
        a->value = a->is_write ? a->value : 0;
        return BUS_OK;
    }
    pthread_mutex_lock(&c->lock);
    if (!a->is_write)
        a->value = db ? 0 : reg_read(c, a->offset, a->size);
    else if (db)
        doorbell_write(c, a->offset, (uint32_t)a->value);
    else
        reg_write(c, a->offset, a->size, a->value);
    pthread_mutex_unlock(&c->lock);
    return BUS_OK;
}

/* BAR0 moved: KVM ioeventfds are bound to guest-physical addresses, so
 * move every doorbell that has one. */
static void nvme_bar_moved(void *dev, unsigned bar, uint64_t old_base, uint64_t new_base)
{
    struct nvme_ctrl *c = dev;
    (void)new_base;
    if (bar != NVME_BAR_REGS)
        return;
    pthread_mutex_lock(&c->lock);
    for (uint16_t q = 1; q < NVME_NQ; q++)
        if (c->sq[q].ioeventfd)
            c->sq[q].ioeventfd = pci_ioeventfd_move(c->f, NVME_BAR_REGS, old_base,
                                                    NVME_SQ_TDBL(q, 0), 4, c->efd);
    pthread_mutex_unlock(&c->lock);
}

static void nvme_quiesce(void *dev)
{
    struct nvme_ctrl *c = dev;
    pthread_mutex_lock(&c->lock);
    nvme_worker_stop(c);
    c->quiesced = true;
    pthread_mutex_unlock(&c->lock);
}

static void nvme_reset(void *dev)
{
    struct nvme_ctrl *c = dev;
    pthread_mutex_lock(&c->lock);
    nvme_worker_stop(c);
    ctrl_clear(c, true);
    c->cc = c->aqa = c->intms = 0;
    c->asq = c->acq = 0;
    c->io_seen = 0;
    c->stall_done = false;
    c->quiesced = false;
    pthread_mutex_unlock(&c->lock);
}

static void ctrl_free(struct nvme_ctrl *c)
{
    if (c->efd >= 0)
        close(c->efd);
    image_map_close(&c->map);
    if (c->fd >= 0)
        close(c->fd);
    pthread_cond_destroy(&c->idle);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

static void nvme_destroy(void *dev)
{
    struct nvme_ctrl *c = dev;
    pthread_mutex_lock(&c->lock);
    nvme_worker_stop(c);
    pthread_mutex_unlock(&c->lock);
    ctrl_free(c);
}

static const struct pci_device_ops nvme_ops = {
    .bar_access = nvme_bar_access,
    .bar_moved = nvme_bar_moved,
    .quiesce = nvme_quiesce,
    .reset = nvme_reset,
    .destroy = nvme_destroy,
};

/* ---- creation ------------------------------------------------------------ */

struct nvme_opts {
    char image[DEVOPTS_MAX];
    uint64_t lba, queues, mqes, mdts, ro, poll_us, stall;
};

static bool parse_opts(const char *opts, struct nvme_opts *o, char *err, size_t errlen)
{
    static const char *const known[] = { "image", "lba", "queues", "mqes", "mdts", "ro",
                                         "poll_us", "stall", NULL };
    if (!devopts_check("nvme", opts, known, err, errlen))
        return false;
    if (!devopts_get(opts, "image", o->image, sizeof o->image, err, errlen)) {
        if (!err[0])
            snprintf(err, errlen, "dev=nvme: option image=PATH is required (a raw image "
                     "file; create it with: truncate -s 64M PATH)");
        return false;
    }
    if (!devopts_u64("nvme", opts, "lba", 512, 512, 4096, &o->lba, err, errlen) ||
        !devopts_u64("nvme", opts, "queues", 4, 1, NVME_QUEUES_MAX, &o->queues, err, errlen) ||
        !devopts_u64("nvme", opts, "mqes", 1024, 2, 4096, &o->mqes, err, errlen) ||
        !devopts_u64("nvme", opts, "mdts", 5, 1, NVME_MDTS_MAX, &o->mdts, err, errlen) ||
        !devopts_u64("nvme", opts, "ro", 0, 0, 1, &o->ro, err, errlen) ||
        !devopts_u64("nvme", opts, "poll_us", 20, 0, 1000000, &o->poll_us, err, errlen) ||
        !devopts_u64("nvme", opts, "stall", 0, 0, UINT32_MAX, &o->stall, err, errlen))
        return false;
    if (o->lba != 512 && o->lba != 4096) {
        snprintf(err, errlen, "dev=nvme: option lba=%llu: the LBA size must be 512 or 4096",
                 (unsigned long long)o->lba);
        return false;
    }
    return true;
}

/* Open the image and check its size; returns the fd or -1 (err set). */
static int open_image(const struct nvme_opts *o, uint64_t *blocks, char *err, size_t errlen)
{
    int fd = open(o->image, (o->ro ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "dev=nvme: cannot open image %s: %s (create it with: "
                 "truncate -s 64M %s)", o->image, strerror(errno), o->image);
        return -1;
    }
    off_t size = lseek(fd, 0, SEEK_END);
    if (size < 0 || (uint64_t)size < o->lba || (uint64_t)size % o->lba) {
        snprintf(err, errlen, "dev=nvme: image %s is %lld bytes: it must be a non-zero "
                 "multiple of the %llu-byte LBA size (e.g. truncate -s 64M %s)", o->image,
                 (long long)size, (unsigned long long)o->lba, o->image);
        close(fd);
        return -1;
    }
    *blocks = (uint64_t)size / o->lba;
    return fd;
}

bool nvme_create(struct pci_bus *bus, const char *name, uint32_t gsi, const char *opts,
                 char *err, size_t errlen)
{
    struct nvme_opts o;
    uint64_t blocks;
    if (!parse_opts(opts, &o, err, errlen))
        return false;
    int fd = open_image(&o, &blocks, err, errlen);
    if (fd < 0)
        return false;
    struct nvme_ctrl *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        snprintf(err, errlen, "dev=nvme: out of memory creating %s", name);
        return false;
    }
    c->fd = fd;
    /* Reads copy from a mapping (no system call per command); without
     * one they fall back to preadv. */
    image_map_open(&c->map, fd, blocks << (o.lba == 4096 ? 12u : 9u));
    c->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->idle, NULL);
    c->lba_shift = o.lba == 4096 ? 12u : 9u;
    c->nsze = blocks;
    c->nq = (uint32_t)o.queues;
    c->mqes = (uint32_t)o.mqes;
    c->mdts = (uint32_t)o.mdts;
    c->ro = o.ro != 0;
    c->poll_us = (uint32_t)o.poll_us;
    c->stall_at = o.stall;
    if (c->efd < 0) {
        snprintf(err, errlen, "dev=nvme: cannot create an eventfd for %s: %s", name,
                 strerror(errno));
        ctrl_free(c);
        return false;
    }
    nvme_worker_init(c);
    struct pci_func *f = pci_func_add(bus, name, NVME_MOAT_VENDOR, NVME_MOAT_DEVICE,
                                      NVME_PCI_CLASS, gsi, &nvme_ops, c);
    if (!f) {
        snprintf(err, errlen, "cannot add %s: the PCI bus has no free slot", name);
        ctrl_free(c);
        return false;
    }
    c->f = f;
    pthread_mutex_lock(&c->lock);
    ctrl_clear(c, true);
    pthread_mutex_unlock(&c->lock);
    if (!pci_bar_add(f, NVME_BAR_REGS, PCI_BAR_MEM64, NVME_BAR0_SIZE) ||
        !pci_bar_add(f, NVME_BAR_MSIX, PCI_BAR_MEM32, 4096) ||
        !pci_msix_add(f, (uint16_t)(c->nq + 1u), NVME_BAR_MSIX, NVME_MSIX_TABLE_OFF,
                      NVME_BAR_MSIX, NVME_MSIX_PBA_OFF)) {
        snprintf(err, errlen, "cannot place %s's BARs: the PCI windows are full", name);
        return false;   /* the bus owns c now and frees it */
    }
    return true;
}

bool nvme_stats_get(const struct pci_func *f, struct nvme_stats *out)
{
    if (!f || f->ops != &nvme_ops)
        return false;
    const struct nvme_ctrl *c = f->dev;
#define NVME_STAT_COPY(name) out->name = atomic_load_explicit(&c->st.name, memory_order_relaxed);
    NVME_STATS_FIELDS(NVME_STAT_COPY)
#undef NVME_STAT_COPY
    return true;
}
