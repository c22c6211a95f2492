/* NVMe admin commands (NVMe 1.4 §5), executed synchronously on the vCPU
 * thread at the admin SQ doorbell, lock held (contract in
 * nvme_internal.h). */
#include <stdio.h>
#include <string.h>
#include "nvme_internal.h"
#include "byteorder.h"


/* ASCII field of n bytes, space padded, not NUL terminated. */
static void put_ascii(uint8_t *p, size_t n, const char *s)
{
    memset(p, ' ', n);
    for (size_t i = 0; i < n && s[i]; i++)
        p[i] = (uint8_t)(s[i] >= 0x20 && s[i] < 0x7F ? s[i] : '?');
}

/* ---- IDENTIFY (§5.15) ----------------------------------------------------- */

static void identify_controller(const struct nvme_ctrl *c, uint8_t *d)
{
    char sn[21];
    snprintf(sn, sizeof sn, "MOAT-%s", c->f->name);
    put_le16(d + NVME_IDC_VID, NVME_MOAT_VENDOR);
    put_le16(d + NVME_IDC_SSVID, NVME_MOAT_VENDOR);
    put_ascii(d + NVME_IDC_SN, 20, sn);
    put_ascii(d + NVME_IDC_MN, 40, "moat NVMe controller model");
    put_ascii(d + NVME_IDC_FR, 8, "1.0");
    d[NVME_IDC_MDTS] = (uint8_t)c->mdts;
    put_le16(d + NVME_IDC_CNTLID, 0);
    put_le32(d + NVME_IDC_VER, NVME_VS_1_4);
    put_le16(d + NVME_IDC_OACS, NVME_OACS_DBBUF);
    d[NVME_IDC_ACL] = NVME_ACL;
    d[NVME_IDC_AERL] = NVME_AERL;
    d[NVME_IDC_SQES] = 0x66;        /* 64-byte SQEs, required and maximum */
    d[NVME_IDC_CQES] = 0x44;        /* 16-byte CQEs */
    put_le16(d + NVME_IDC_MAXCMD, (uint16_t)c->mqes);
    put_le32(d + NVME_IDC_NN, 1);
    put_le16(d + NVME_IDC_ONCS, NVME_ONCS_DSM | NVME_ONCS_WZ);
    d[NVME_IDC_VWC] = 1;
}

static void identify_namespace(const struct nvme_ctrl *c, uint8_t *d)
{
    put_le64(d + NVME_IDNS_NSZE, c->nsze);
    put_le64(d + NVME_IDNS_NCAP, c->nsze);
    put_le64(d + NVME_IDNS_NUSE, c->nsze);
    d[NVME_IDNS_NLBAF] = 0;         /* one format ... */
    d[NVME_IDNS_FLBAS] = 0;         /* ... in use */
    put_le32(d + NVME_IDNS_LBAF0, c->lba_shift << 16);   /* LBADS, no metadata */
}

static uint16_t identify(struct nvme_ctrl *c, const struct nvme_sqe *cmd)
{
    uint8_t d[NVME_IDENTIFY_SIZE] = { 0 };
    switch (cmd->cdw10 & 0xFFu) {
    case NVME_CNS_NAMESPACE:
        if (cmd->nsid != 1)
            return NVME_SC_INVALID_NS;
        identify_namespace(c, d);
        break;
    case NVME_CNS_CONTROLLER:
        identify_controller(c, d);
        break;
    case NVME_CNS_ACTIVE_NS:        /* active NSIDs greater than nsid */
        if (cmd->nsid >= 0xFFFFFFFEu)
            return NVME_SC_INVALID_NS;
        if (cmd->nsid < 1)
            put_le32(d, 1);
        break;
    default:
        return NVME_SC_INVALID_FIELD;
    }
    return nvme_xfer(c, cmd->prp1, cmd->prp2, d, sizeof d, DMA_FROM_DEVICE);
}

/* ---- queue management (§5.3-5.6) ----------------------------------------- */

/* Common checks of CREATE I/O CQ/SQ: cdw10 QID | QSIZE-1 << 16, PC, the
 * queue memory page aligned and reachable for dir. */
static uint16_t create_check(struct nvme_ctrl *c, const struct nvme_sqe *cmd, bool live,
                             uint32_t alloc, uint32_t entry, enum dma_dir dir)
{
    uint32_t qid = cmd->cdw10 & 0xFFFFu, size = (cmd->cdw10 >> 16) + 1u;
    if (qid == 0 || qid > alloc || live)
        return NVME_SC_QID_INVALID;
    if (size < 2 || size > c->mqes)
        return NVME_SC_QUEUE_SIZE;
    if (!(cmd->cdw11 & NVME_QUEUE_PC))  /* CAP.CQR = 1 */
        return NVME_SC_INVALID_FIELD;
    if (!cmd->prp1 || cmd->prp1 % NVME_PAGE_SIZE)
        return NVME_SC_INVALID_PRP_OFFSET;
    struct dma_mapping m;
    if (!pci_dma_map(c->f, cmd->prp1, (uint64_t)size * entry, dir, &m)) {
        NVME_COUNT(c, dma_refusals);
        return NVME_SC_DATA_XFER_ERROR;
    }
    pci_dma_unmap(c->f, &m);
    return NVME_SC_SUCCESS;
}

static uint16_t create_cq(struct nvme_ctrl *c, const struct nvme_sqe *cmd)
{
    uint16_t qid = (uint16_t)cmd->cdw10, iv = (uint16_t)(cmd->cdw11 >> 16);
    bool live = qid < NVME_NQ && c->cq[qid].live;
    uint16_t st = create_check(c, cmd, live, c->ncq_alloc, 16, DMA_FROM_DEVICE);
    if (st == NVME_SC_SUCCESS && iv > c->nq)        /* vectors 0..nq */
        st = NVME_SC_INVALID_VECTOR;
    if (st == NVME_SC_SUCCESS && NVME_CC_IOCQES(c->cc) != 4)
        st = NVME_SC_INVALID_FIELD;
    if (st != NVME_SC_SUCCESS)
        return st;
    c->cq[qid] = (struct nvme_cq){
        .live = true, .ien = cmd->cdw11 & NVME_CQ_IEN, .phase = true, .vector = iv,
        .size = (cmd->cdw10 >> 16) + 1u, .base = cmd->prp1, .event = NVME_NO_EVENT,
        .rejected = NVME_NO_EVENT,
    };
    return NVME_SC_SUCCESS;
}

static uint16_t create_sq(struct nvme_ctrl *c, const struct nvme_sqe *cmd)
{
    uint16_t qid = (uint16_t)cmd->cdw10, cqid = (uint16_t)(cmd->cdw11 >> 16);
    bool live = qid < NVME_NQ && c->sq[qid].live;
    uint16_t st = create_check(c, cmd, live, c->nsq_alloc, 64, DMA_TO_DEVICE);
    if (st == NVME_SC_SUCCESS && (cqid == 0 || cqid >= NVME_NQ || !c->cq[cqid].live))
        st = NVME_SC_CQ_INVALID;
    if (st == NVME_SC_SUCCESS && NVME_CC_IOSQES(c->cc) != 6)
        st = NVME_SC_INVALID_FIELD;
    if (st != NVME_SC_SUCCESS)
        return st;
    c->sq[qid] = (struct nvme_sq){
        .live = true, .cqid = cqid, .size = (cmd->cdw10 >> 16) + 1u, .base = cmd->prp1,
        .event = NVME_NO_EVENT, .rejected = NVME_NO_EVENT,
    };
    c->cq[cqid].sqs++;
    if (c->dbbuf)
        nvme_sq_ioeventfd(c, qid, true);
    return NVME_SC_SUCCESS;
}

static uint16_t delete_sq(struct nvme_ctrl *c, const struct nvme_sqe *cmd)
{
    uint16_t qid = (uint16_t)cmd->cdw10;
    if (qid == 0 || qid >= NVME_NQ || !c->sq[qid].live)
        return NVME_SC_QID_INVALID;
    nvme_worker_wait_idle(c);   /* its fetched commands complete first */
    nvme_stall_complete(c, qid, c->stall_cid, NVME_SC_ABORT_SQ_DELETED);
    nvme_sq_ioeventfd(c, qid, false);
    c->cq[c->sq[qid].cqid].sqs--;
    c->sq[qid] = (struct nvme_sq){ 0 };
    return NVME_SC_SUCCESS;
}

static uint16_t delete_cq(struct nvme_ctrl *c, const struct nvme_sqe *cmd)
{
    uint16_t qid = (uint16_t)cmd->cdw10;
    if (qid == 0 || qid >= NVME_NQ || !c->cq[qid].live)
        return NVME_SC_QID_INVALID;
    if (c->cq[qid].sqs)
        return NVME_SC_INVALID_DELETE;
    c->cq[qid] = (struct nvme_cq){ 0 };
    nvme_intx_update(c);
    return NVME_SC_SUCCESS;
}

/* ---- features (§5.21, §5.9) ---------------------------------------------- */

static bool any_io_queue(const struct nvme_ctrl *c)
{
    for (unsigned q = 1; q < NVME_NQ; q++)
        if (c->sq[q].live || c->cq[q].live)
            return true;
    return false;
}

static uint16_t set_features(struct nvme_ctrl *c, const struct nvme_sqe *cmd, uint32_t *dw0)
{
    uint32_t v = cmd->cdw11;
    if (cmd->cdw10 & NVME_FEAT_SV)
        return NVME_SC_FEAT_NOT_SAVEABLE;
    switch (cmd->cdw10 & 0xFFu) {
    case NVME_FEAT_NUM_QUEUES: {
        uint32_t nsqr = v & 0xFFFFu, ncqr = v >> 16;
        if (nsqr == 0xFFFFu || ncqr == 0xFFFFu)
            return NVME_SC_INVALID_FIELD;
        if (any_io_queue(c))    /* fixed once queues exist */
            return NVME_SC_CMD_SEQ_ERROR;
        c->nsq_alloc = nsqr + 1u < c->nq ? nsqr + 1u : c->nq;
        c->ncq_alloc = ncqr + 1u < c->nq ? ncqr + 1u : c->nq;
        *dw0 = (c->nsq_alloc - 1u) | (c->ncq_alloc - 1u) << 16;
        return NVME_SC_SUCCESS;
    }
    case NVME_FEAT_IRQ_COALESCE:
        c->coal_thr = (uint8_t)v;
        c->coal_time = (uint8_t)(v >> 8);
        nvme_worker_kick(c);    /* deadlines change */
        return NVME_SC_SUCCESS;
    case NVME_FEAT_IRQ_CONFIG:
        if ((v & 0xFFFFu) > c->nq)
            return NVME_SC_INVALID_FIELD;
        c->vec[v & 0xFFFFu].cd = v & NVME_FEAT_IRQ_CONFIG_CD;
        return NVME_SC_SUCCESS;
    case NVME_FEAT_VOLATILE_WC:
        c->wce = v & 1u;
        return NVME_SC_SUCCESS;
    default:
        return NVME_SC_INVALID_FIELD;
    }
}

static uint16_t get_features(struct nvme_ctrl *c, const struct nvme_sqe *cmd, uint32_t *dw0)
{
    uint32_t sel = NVME_FEAT_SEL(cmd->cdw10), fid = cmd->cdw10 & 0xFFu, iv = cmd->cdw11 & 0xFFFFu;
    bool cur = sel == 0;
    bool known = fid == NVME_FEAT_NUM_QUEUES || fid == NVME_FEAT_IRQ_COALESCE ||
                 fid == NVME_FEAT_IRQ_CONFIG || fid == NVME_FEAT_VOLATILE_WC;
    if (sel > 3 || !known || (fid == NVME_FEAT_IRQ_CONFIG && iv > c->nq))
        return NVME_SC_INVALID_FIELD;
    if (sel == 3) {
        *dw0 = NVME_FEAT_CAP_CHANGEABLE;
        return NVME_SC_SUCCESS;
    }
    if (fid == NVME_FEAT_NUM_QUEUES)
        *dw0 = cur ? (c->nsq_alloc - 1u) | (c->ncq_alloc - 1u) << 16
                   : (c->nq - 1u) | (c->nq - 1u) << 16;
    else if (fid == NVME_FEAT_IRQ_COALESCE)
        *dw0 = cur ? c->coal_thr | (uint32_t)c->coal_time << 8 : 0;
    else if (fid == NVME_FEAT_IRQ_CONFIG)
        *dw0 = iv | (cur && c->vec[iv].cd ? NVME_FEAT_IRQ_CONFIG_CD : 0);
    else
        *dw0 = cur ? c->wce : 1u;
    return NVME_SC_SUCCESS;
}

/* ---- the rest ------------------------------------------------------------ */

/* GET LOG PAGE (§5.14): error, SMART and firmware pages, all quiet. */
static uint16_t get_log_page(struct nvme_ctrl *c, const struct nvme_sqe *cmd)
{
    uint8_t d[NVME_PAGE_SIZE] = { 0 };
    uint32_t lid = cmd->cdw10 & 0xFFu;
    uint64_t numd = ((cmd->cdw10 >> 16) | (uint64_t)(cmd->cdw11 & 0xFFFFu) << 16) + 1u;
    if (lid != NVME_LOG_ERROR && lid != NVME_LOG_SMART && lid != NVME_LOG_FW_SLOT)
        return NVME_SC_INVALID_LOG_PAGE;
    if (numd * 4u > sizeof d || cmd->cdw12 || cmd->cdw13)  /* no offsets (LPA bit 2 = 0) */
        return NVME_SC_INVALID_FIELD;
    if (lid == NVME_LOG_SMART)
        put_le16(d + NVME_SMART_TEMP, 300);   /* kelvin: a cool 27 °C */
    return nvme_xfer(c, cmd->prp1, cmd->prp2, d, numd * 4u, DMA_FROM_DEVICE);
}

/* DOORBELL BUFFER CONFIG (§5.7 of NVMe 1.3+): PRP1 shadow doorbells,
 * PRP2 EventIdx; page aligned, distinct and inside the domain's windows.
 * Queues that already exist get their current values in the shadow page. */
static uint16_t dbbuf_config(struct nvme_ctrl *c, const struct nvme_sqe *cmd)
{
    uint64_t dbs = cmd->prp1, eis = cmd->prp2;
    struct dma_mapping md, me;
    if (!dbs || !eis || dbs % NVME_PAGE_SIZE || eis % NVME_PAGE_SIZE || dbs == eis)
        return NVME_SC_INVALID_FIELD;
    bool io = any_io_queue(c);
    uint32_t *db = pci_dma_map(c->f, dbs, NVME_PAGE_SIZE, io ? DMA_BIDIR : DMA_TO_DEVICE, &md);
    void *ei = pci_dma_map(c->f, eis, NVME_PAGE_SIZE, DMA_FROM_DEVICE, &me);
    if (!db || !ei) {
        NVME_ADD(c, dma_refusals, (uint64_t)!db + !ei);
        if (db)
            pci_dma_unmap(c->f, &md);
        if (ei)
            pci_dma_unmap(c->f, &me);
        return NVME_SC_INVALID_FIELD;
    }
    for (uint16_t q = 1; q < NVME_NQ && io; q++) {
        if (c->sq[q].live)
            __atomic_store_n(&db[NVME_DBBUF_SLOT(2u * q, 0)], c->sq[q].tail, __ATOMIC_RELEASE);
        if (c->cq[q].live)
            __atomic_store_n(&db[NVME_DBBUF_SLOT(2u * q + 1u, 0)], c->cq[q].head,
                             __ATOMIC_RELEASE);
    }
    pci_dma_unmap(c->f, &me);
    pci_dma_unmap(c->f, &md);
    c->dbbuf = true;
    c->dbs = dbs;
    c->eis = eis;
    for (uint16_t q = 1; q < NVME_NQ; q++) {
        c->sq[q].event = c->cq[q].event = NVME_NO_EVENT;
        if (c->sq[q].live)
            nvme_sq_ioeventfd(c, q, true);
    }
    nvme_worker_kick(c);
    return NVME_SC_SUCCESS;
}

/* ABORT (§5.1): commands run to completion as they are fetched, so there
 * is nothing to abort, except a command the stall knob swallowed. */
static uint16_t abort_cmd(struct nvme_ctrl *c, const struct nvme_sqe *cmd, uint32_t *dw0)
{
    uint16_t sqid = (uint16_t)cmd->cdw10, cid = (uint16_t)(cmd->cdw10 >> 16);
    bool done = sqid > 0 && sqid < NVME_NQ &&
                nvme_stall_complete(c, sqid, cid, NVME_SC_ABORT_REQ);
    *dw0 = done ? 0 : NVME_ABORT_NOT_ABORTED;
    return NVME_SC_SUCCESS;
}

/* One admin command; *held = true when it completes later (never, for
 * ASYNC EVENT REQUEST: no event is ever reported). */
static uint16_t admin_exec(struct nvme_ctrl *c, const struct nvme_sqe *cmd, uint32_t *dw0,
                           bool *held)
{
    *held = false;
    switch ((enum nvme_admin_opc)cmd->opc) {
    case NVME_ADM_DELETE_SQ:
    case NVME_ADM_CREATE_SQ:
    case NVME_ADM_GET_LOG_PAGE:
    case NVME_ADM_DELETE_CQ:
    case NVME_ADM_CREATE_CQ:
    case NVME_ADM_IDENTIFY:
    case NVME_ADM_ABORT:
    case NVME_ADM_SET_FEATURES:
    case NVME_ADM_GET_FEATURES:
    case NVME_ADM_ASYNC_EVENT:
    case NVME_ADM_DBBUF_CONFIG:
        break;
    default:
        return NVME_SC_INVALID_OPCODE;
    }
    if (cmd->flags & (NVME_SQE_FUSE_MASK | NVME_SQE_PSDT_MASK))
        return NVME_SC_INVALID_FIELD;
    switch ((enum nvme_admin_opc)cmd->opc) {
    case NVME_ADM_DELETE_SQ:    return delete_sq(c, cmd);
    case NVME_ADM_CREATE_SQ:    return create_sq(c, cmd);
    case NVME_ADM_GET_LOG_PAGE: return get_log_page(c, cmd);
    case NVME_ADM_DELETE_CQ:    return delete_cq(c, cmd);
    case NVME_ADM_CREATE_CQ:    return create_cq(c, cmd);
    case NVME_ADM_IDENTIFY:     return identify(c, cmd);
    case NVME_ADM_ABORT:        return abort_cmd(c, cmd, dw0);
    case NVME_ADM_SET_FEATURES: return set_features(c, cmd, dw0);
    case NVME_ADM_GET_FEATURES: return get_features(c, cmd, dw0);
    case NVME_ADM_DBBUF_CONFIG: return dbbuf_config(c, cmd);
    case NVME_ADM_ASYNC_EVENT:
        if (c->aer_held > NVME_AERL)
            return NVME_SC_AER_LIMIT;
        c->aer_held++;
        *held = true;
        return NVME_SC_SUCCESS;
    }
    return NVME_SC_INVALID_OPCODE;
}

void nvme_admin_process(struct nvme_ctrl *c)
{
    struct nvme_sq *sq = &c->sq[0];
    while (sq->live && !(c->csts & NVME_CSTS_CFS) && !c->quiesced && sq->head != sq->tail &&
           nvme_cq_room(&c->cq[0]) > 0) {
        struct nvme_sqe cmd;
        struct dma_mapping m;
        const void *p = pci_dma_map(c->f, sq->base + (uint64_t)sq->head * 64u, 64, DMA_TO_DEVICE,
                                    &m);
        if (!p) {
            nvme_fatal_dma(c, "admin submission queue memory", &m);
            return;
        }
        memcpy(&cmd, p, sizeof cmd);    /* copy first: the host may rewrite it */
        pci_dma_unmap(c->f, &m);
        sq->head = (sq->head + 1u) % sq->size;
        NVME_COUNT(c, admin_cmds);
        struct nvme_result r = { .cid = cmd.cid };
        r.status = admin_exec(c, &cmd, &r.dw0, &r.swallowed);
        nvme_cq_post(c, 0, &r, 1);
    }
}
