/* NVMe interposition at the doorbell (contract in nvme_shadow.h; the
 * layouts are moat/nvme_regs.h's, from the NVMe base specification). */
#include "com1.h"
#include "dom_internal.h"
#include "gk/cpu.h"
#include "gk/kstring.h"
#include "moat/nvme_regs.h"
#include "nvme_shadow.h"
#include "palloc.h"

#define PAGE 4096ull
#define QMAX 17u                /* admin + 16 I/O queues */
#define NS_MAX NVME_SHADOW_NS
#define LISTS_PER_Q 64u         /* PRP-list pages per queue, by CID modulo */
#define LIST_ENTRIES (PAGE / 8)
#define IO_WRITE_UNCOR 0x04u     /* NVM command set opcodes moat/nvme_regs.h does not name */
#define IO_COMPARE 0x05u

struct shadow_sq {
    bool live;
    uint32_t size, tail;
    uint64_t drv_pa;            /* the domain's ring (read at the doorbell) */
    uint64_t shadow_pa;         /* what the device reads */
    uint32_t shadow_cap;        /* entries the shadow holds */
    uint64_t lists_pa;          /* LISTS_PER_Q pages */
};

struct nvme_shadow {
    volatile uint8_t *regs;
    uint64_t tsc_khz;
    uint32_t dstrd, mqes, timeout_ms;
    uint64_t max_xfer;          /* MDTS in bytes (capped by one list page) */
    uint8_t lbads[NS_MAX + 1];  /* 0: no such namespace (or one we cannot check) */
    uint32_t n_ns;
    /* What the domain wrote to the virtualized registers. */
    uint32_t aqa, cc;
    uint64_t asq, acq;
    struct shadow_sq sq[QMAX];
    uint64_t copied, refused;
    bool passthrough;           /* an IOMMU translates: addresses go to the device as written */
};

static struct nvme_shadow pool[4];
static unsigned n_pool;

static uint32_t rd32(const struct nvme_shadow *s, uint64_t off)
{ return *(volatile uint32_t *)(s->regs + off); }
static void wr32(const struct nvme_shadow *s, uint64_t off, uint32_t v)
{ *(volatile uint32_t *)(s->regs + off) = v; }
static void wr64(const struct nvme_shadow *s, uint64_t off, uint64_t v)
{
    wr32(s, off, (uint32_t)v);
    wr32(s, off + 4, (uint32_t)(v >> 32));
}

static uint64_t ms_to_tsc(const struct nvme_shadow *s, uint64_t ms) { return ms * s->tsc_khz; }

static bool wait_rdy(const struct nvme_shadow *s, bool want)
{
    uint64_t end = rdtsc() + ms_to_tsc(s, s->timeout_ms);
    while (((rd32(s, NVME_REG_CSTS) & 1u) != 0) != want) {
        if (rdtsc() > end)
            return false;
        cpu_relax();
    }
    return true;
}

bool nvme_shadow_reset(struct nvme_shadow *s)
{
    wr32(s, NVME_REG_CC, rd32(s, NVME_REG_CC) & ~NVME_CC_EN);
    for (unsigned q = 0; q < QMAX; q++)
        s->sq[q].live = false;
    s->cc = 0;
    return wait_rdy(s, false);
}

/* ---- the monitor's own probe: LBA sizes and MDTS -------------------------------------- */

struct probe {
    uint64_t sq, cq, buf;
    uint32_t tail, head, phase;
};

static bool probe_cmd(struct nvme_shadow *s, struct probe *p, uint32_t nsid, uint32_t cns)
{
    struct nvme_sqe *e = (struct nvme_sqe *)(uintptr_t)p->sq + p->tail;
    memset(e, 0, sizeof *e);
    e->opc = NVME_ADM_IDENTIFY;
    e->cid = (uint16_t)(p->tail + 1);
    e->nsid = nsid;
    e->prp1 = p->buf;
    e->cdw10 = cns;
    p->tail = (p->tail + 1) % 2;
    wr32(s, NVME_REG_DBS, p->tail);
    volatile struct nvme_cqe *c = (volatile struct nvme_cqe *)(uintptr_t)p->cq + p->head;
    uint64_t end = rdtsc() + ms_to_tsc(s, 1000);
    while ((c->status & NVME_CQE_PHASE) != p->phase)
        if (rdtsc() > end)
            return false;
    uint16_t st = NVME_CQE_STATUS(c->status);
    if (++p->head == 2) {
        p->head = 0;
        p->phase ^= 1u;
    }
    wr32(s, NVME_REG_DBS + (4u << s->dstrd), p->head);
    return st == 0;
}

static const char *probe(struct nvme_shadow *s)
{
    uint64_t cap = *(volatile uint64_t *)(s->regs + NVME_REG_CAP);
    s->mqes = (uint32_t)(cap & 0xFFFF) + 1u;
    s->dstrd = (uint32_t)(cap >> 32) & 0xFu;
    s->timeout_ms = (uint32_t)((cap >> 24) & 0xFF) * 500u + 500u;
    if ((cap >> 48) & 0xFu)
        return "the controller's smallest page is larger than 4 KiB";
    if (!nvme_shadow_reset(s))
        return "the controller did not stop (CSTS.RDY stayed 1)";
    struct probe p = { .sq = palloc(1, 0), .cq = palloc(1, 0), .buf = palloc(1, 0), .phase = 1 };
    if (!p.sq || !p.cq || !p.buf)
        return "no memory for the probe queues";
    wr32(s, NVME_REG_AQA, 1u << 16 | 1u);
    wr64(s, NVME_REG_ASQ, p.sq);
    wr64(s, NVME_REG_ACQ, p.cq);
    wr32(s, NVME_REG_CC, NVME_CC_EN | 6u << 16 | 4u << 20);
    if (!wait_rdy(s, true))
        return "the controller did not become ready for the probe";
    const uint8_t *id = (const uint8_t *)(uintptr_t)p.buf;
    if (!probe_cmd(s, &p, 0, NVME_CNS_CONTROLLER))
        return "IDENTIFY CONTROLLER failed";
    uint32_t nn;
    memcpy(&nn, id + NVME_IDC_NN, 4);
    s->max_xfer = LIST_ENTRIES * PAGE;
    if (id[NVME_IDC_MDTS] && id[NVME_IDC_MDTS] < 20 && (PAGE << id[NVME_IDC_MDTS]) < s->max_xfer)
        s->max_xfer = PAGE << id[NVME_IDC_MDTS];
    for (uint32_t ns = 1; ns <= nn && ns <= NS_MAX; ns++) {
        if (!probe_cmd(s, &p, ns, NVME_CNS_NAMESPACE))
            continue;
        uint64_t nsze;
        uint32_t lbaf;
        memcpy(&nsze, id + NVME_IDNS_NSZE, 8);
        memcpy(&lbaf, id + NVME_IDNS_LBAF0 + 4u * (id[NVME_IDNS_FLBAS] & 0xFu), 4);
        /* Metadata would change a transfer's length: such namespaces are refused. */
        if (nsze && NVME_LBAF_MS(lbaf) == 0 && NVME_LBAF_LBADS(lbaf) >= 9 &&
            NVME_LBAF_LBADS(lbaf) <= 16) {
            s->lbads[ns] = (uint8_t)NVME_LBAF_LBADS(lbaf);
            s->n_ns++;
        }
    }
    if (!nvme_shadow_reset(s))
        return "the controller did not stop after the probe";
    return NULL;
}

struct nvme_shadow *nvme_shadow_fixed(volatile uint8_t *regs, uint32_t dstrd, uint32_t mqes,
                                      uint64_t max_xfer, const uint8_t lbads[NVME_SHADOW_NS + 1])
{
    static struct nvme_shadow one;
    one = (struct nvme_shadow){ .regs = regs, .tsc_khz = 1000000, .dstrd = dstrd, .mqes = mqes,
                                .max_xfer = max_xfer, .timeout_ms = 1 };
    for (unsigned ns = 1; ns <= NS_MAX; ns++)
        if (lbads[ns] >= 9 && lbads[ns] <= 16)
            one.lbads[ns] = lbads[ns], one.n_ns++;
    return &one;
}

struct nvme_shadow *nvme_shadow_attach(volatile uint8_t *regs, uint64_t tsc_khz, const char **why)
{
    if (n_pool == sizeof pool / sizeof pool[0]) {
        *why = "too many NVMe controllers";
        return NULL;
    }
    struct nvme_shadow *s = &pool[n_pool];
    *s = (struct nvme_shadow){ .regs = regs, .tsc_khz = tsc_khz };
    *why = probe(s);
    if (*why)
        return NULL;
    n_pool++;
    return s;
}

/* ---- commands at the doorbell ------------------------------------------------------------ */

/* Translate the PRPs of a transfer of len bytes; list entries go to the
 * queue's list page for this CID. NULL, or why the command is refused. */
static const char *translate_prps(struct nvme_shadow *s, struct dom *d, struct shadow_sq *q,
                                  struct nvme_sqe *e, uint64_t len)
{
    if (len == 0 || len > s->max_xfer)
        return "transfer length is zero or past the controller's limit";
    if (e->prp1 & 3)
        return "PRP1 is not dword aligned";
    uint64_t first = PAGE - (e->prp1 & (PAGE - 1));
    if (first > len)
        first = len;
    uint64_t pa1 = dom_window_pa(d, e->prp1, first);
    if (!pa1)
        return "PRP1 is outside the domain's DMA windows";
    uint64_t rest = len - first;
    e->prp1 = pa1;
    if (rest == 0) {
        e->prp2 = 0;
        return NULL;
    }
    if (rest <= PAGE) {
        uint64_t pa2 = (e->prp2 & (PAGE - 1)) ? 0 : dom_window_pa(d, e->prp2, rest);
        if (!pa2)
            return "PRP2 is unaligned or outside the domain's DMA windows";
        e->prp2 = pa2;
        return NULL;
    }
    uint64_t n = (rest + PAGE - 1) / PAGE;
    if ((e->prp2 & 7) || n > (PAGE - (e->prp2 & (PAGE - 1))) / 8)
        return "the PRP list is unaligned or chained (not supported without an IOMMU)";
    uint64_t list = dom_window_pa(d, e->prp2, n * 8);
    if (!list)
        return "the PRP list is outside the domain's DMA windows";
    uint64_t *out = (uint64_t *)(uintptr_t)(q->lists_pa + (e->cid % LISTS_PER_Q) * PAGE);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t ent;
        memcpy(&ent, (const void *)(uintptr_t)(list + i * 8), 8);   /* once */
        uint64_t part = i + 1 < n ? PAGE : rest - i * PAGE;
        uint64_t pa = (ent & (PAGE - 1)) ? 0 : dom_window_pa(d, ent, part);
        if (!pa)
            return "a PRP list entry is unaligned or outside the domain's DMA windows";
        out[i] = pa;
    }
    e->prp2 = q->lists_pa + (e->cid % LISTS_PER_Q) * PAGE;
    return NULL;
}

static const char *queue_create(struct nvme_shadow *s, struct dom *d, struct nvme_sqe *e, bool sq)
{
    uint32_t qid = e->cdw10 & 0xFFFF, size = (e->cdw10 >> 16) + 1u;
    if (qid == 0 || qid >= QMAX || size < 2 || size > s->mqes)
        return "queue id or size out of range";
    if (!(e->cdw11 & NVME_QUEUE_PC) || (e->prp1 & (PAGE - 1)))
        return "the queue is not physically contiguous or not page aligned";
    uint64_t pa = dom_window_pa(d, e->prp1, (uint64_t)size * (sq ? 64u : 16u));
    if (!pa)
        return "the queue is outside the domain's DMA windows";
    e->prp2 = 0;
    if (!sq) {
        e->prp1 = pa;
        return NULL;
    }
    struct shadow_sq *q = &s->sq[qid];
    if (q->shadow_cap < size) {
        uint64_t sp = palloc((size * 64ull + PAGE - 1) / PAGE, 0);
        if (!sp)
            return "no memory for a shadow queue";
        q->shadow_pa = sp;
        q->shadow_cap = size;
    }
    if (!q->lists_pa && !(q->lists_pa = palloc(LISTS_PER_Q, 0)))
        return "no memory for PRP lists";
    q->drv_pa = pa;
    q->size = size;
    q->tail = 0;
    q->live = true;
    e->prp1 = q->shadow_pa;
    return NULL;
}

static bool feature_has_no_data(uint32_t fid)
{
    return (fid >= 0x01 && fid <= 0x0B && fid != 0x03) || fid == 0x80;
}

static const char *admin_check(struct nvme_shadow *s, struct dom *d, struct nvme_sqe *e)
{
    switch (e->opc) {
    case NVME_ADM_DELETE_SQ:
        if ((e->cdw10 & 0xFFFF) > 0 && (e->cdw10 & 0xFFFF) < QMAX)
            s->sq[e->cdw10 & 0xFFFF].live = false;
        e->prp1 = e->prp2 = 0;
        return NULL;
    case NVME_ADM_CREATE_SQ:
        return queue_create(s, d, e, true);
    case NVME_ADM_CREATE_CQ:
        return queue_create(s, d, e, false);
    case NVME_ADM_IDENTIFY:
        return translate_prps(s, d, &s->sq[0], e, NVME_IDENTIFY_SIZE);
    case NVME_ADM_GET_LOG_PAGE:
        return translate_prps(s, d, &s->sq[0], e,
                              ((uint64_t)((e->cdw11 & 0xFFFF) << 16 | e->cdw10 >> 16) + 1u) * 4u);
    case NVME_ADM_SET_FEATURES:
    case NVME_ADM_GET_FEATURES:
        if (!feature_has_no_data(e->cdw10 & 0xFF))
            return "a feature that moves data or hands the device memory";
        e->prp1 = e->prp2 = 0;
        return NULL;
    case NVME_ADM_DELETE_CQ:
    case NVME_ADM_ABORT:
    case NVME_ADM_ASYNC_EVENT:
        e->prp1 = e->prp2 = 0;
        return NULL;
    default:
        return e->opc == NVME_ADM_DBBUF_CONFIG ? "doorbell buffers would bypass the monitor"
                                          : "an admin opcode the monitor does not pass";
    }
}

static const char *io_check(struct nvme_shadow *s, struct dom *d, struct shadow_sq *q,
                            struct nvme_sqe *e)
{
    bool ns_ok = e->nsid >= 1 && e->nsid <= NS_MAX && s->lbads[e->nsid];
    switch (e->opc) {
    case NVME_IO_FLUSH:
        e->prp1 = e->prp2 = 0;
        return NULL;
    case NVME_IO_WRITE:
    case NVME_IO_READ:
    case IO_COMPARE:
        if (!ns_ok)
            return "a namespace the monitor did not probe";
        return translate_prps(s, d, q, e, ((uint64_t)(e->cdw12 & 0xFFFF) + 1u) << s->lbads[e->nsid]);
    case NVME_IO_WRITE_ZEROES:
    case IO_WRITE_UNCOR:
        if (!ns_ok)
            return "a namespace the monitor did not probe";
        e->prp1 = e->prp2 = 0;
        return NULL;
    case NVME_IO_DSM:
        return translate_prps(s, d, q, e, ((uint64_t)(e->cdw10 & 0xFF) + 1u) * 16u);
    default:
        return "an I/O opcode the monitor does not pass";
    }
}

/* Copy, check and translate one command; a refused one becomes a command
 * that fails without touching memory, with the same CID. */
static void shadow_one(struct nvme_shadow *s, struct dom *d, uint32_t qid, uint32_t slot)
{
    struct shadow_sq *q = &s->sq[qid];
    struct nvme_sqe e;
    memcpy(&e, (const void *)(uintptr_t)(q->drv_pa + slot * 64ull), sizeof e);
    struct nvme_sqe orig = e;
    const char *why = NULL;
    if (e.flags & (NVME_SQE_FUSE_MASK | NVME_SQE_PSDT_MASK))
        why = "fused commands and SGLs are not passed";
    else if (e.mptr)
        why = "a metadata pointer";
    else
        why = qid == 0 ? admin_check(s, d, &e) : io_check(s, d, q, &e);
    if (why) {
        s->refused++;
        dom_audit(d, "NVMe SQ %u command %u (opcode 0x%02x, PRP1 0x%llx, PRP2 0x%llx) refused at "
                  "the doorbell: %s", qid, orig.cid, orig.opc, (unsigned long long)orig.prp1,
                  (unsigned long long)orig.prp2, why);
        e = (struct nvme_sqe){ .cid = orig.cid };
        if (qid == 0)
            e.opc = NVME_ADM_GET_FEATURES;    /* FID 0 is reserved: Invalid Field */
        else
            e.opc = NVME_IO_FLUSH;             /* NSID 0: Invalid Namespace */
    }
    s->copied++;
    memcpy((void *)(uintptr_t)(q->shadow_pa + slot * 64ull), &e, sizeof e);
}

static void sq_doorbell(struct nvme_shadow *s, struct dom *d, uint32_t qid, uint32_t tail,
                        uint64_t off)
{
    struct shadow_sq *q = &s->sq[qid];
    if (!q->live || tail >= q->size) {
        dom_audit(d, "NVMe SQ %u tail doorbell %u refused: %s", qid, tail,
                  q->live ? "past the queue's end" : "no such queue");
        return;
    }
    while (q->tail != tail) {
        shadow_one(s, d, qid, q->tail);
        q->tail = (q->tail + 1) % q->size;
    }
    __atomic_thread_fence(__ATOMIC_RELEASE);
    wr32(s, off, tail);
}

/* CC with EN rising: the admin queues must lie in the windows. */
static void cc_write(struct nvme_shadow *s, struct dom *d, uint32_t v)
{
    bool was = s->cc & NVME_CC_EN, now = v & NVME_CC_EN;
    if (!was && now) {
        uint32_t sqs = (s->aqa & 0xFFF) + 1u, cqs = ((s->aqa >> 16) & 0xFFF) + 1u;
        uint64_t sq = (s->asq & (PAGE - 1)) ? 0 : dom_window_pa(d, s->asq, sqs * 64ull);
        uint64_t cq = (s->acq & (PAGE - 1)) ? 0 : dom_window_pa(d, s->acq, cqs * 16ull);
        struct shadow_sq *q = &s->sq[0];
        if (!sq || !cq || NVME_CC_IOSQES(v) != 6 || NVME_CC_IOCQES(v) != 4 || sqs < 2 || cqs < 2) {
            dom_audit(d, "NVMe CC.EN refused: admin queues ASQ 0x%llx ACQ 0x%llx (%u/%u entries) "
                      "outside the windows or entry sizes not 64/16",
                      (unsigned long long)s->asq, (unsigned long long)s->acq, sqs, cqs);
            v &= ~NVME_CC_EN;
        } else {
            if (q->shadow_cap < sqs) {
                q->shadow_pa = palloc((sqs * 64ull + PAGE - 1) / PAGE, 0);
                q->shadow_cap = q->shadow_pa ? sqs : 0;
            }
            if (!q->lists_pa)
                q->lists_pa = palloc(LISTS_PER_Q, 0);
            if (!q->shadow_pa || !q->lists_pa) {
                dom_audit(d, "NVMe CC.EN refused: no memory for the shadow admin queue");
                v &= ~NVME_CC_EN;
            } else {
                *q = (struct shadow_sq){ .live = true, .size = sqs, .drv_pa = sq,
                                         .shadow_pa = q->shadow_pa, .shadow_cap = q->shadow_cap,
                                         .lists_pa = q->lists_pa };
                wr32(s, NVME_REG_AQA, s->aqa);
                wr64(s, NVME_REG_ASQ, q->shadow_pa);
                wr64(s, NVME_REG_ACQ, cq);
            }
        }
    }
    if (was && !now)
        for (unsigned i = 0; i < QMAX; i++)
            s->sq[i].live = false;
    s->cc = v;
    wr32(s, NVME_REG_CC, v);
}

static void set_half(uint64_t *reg, uint64_t off, unsigned width, uint64_t v)
{
    if (width == 8)
        *reg = v;
    else if (off & 4)
        *reg = (*reg & 0xFFFFFFFFull) | v << 32;
    else
        *reg = (*reg & ~0xFFFFFFFFull) | (v & 0xFFFFFFFFull);
}

uint64_t nvme_shadow_mmio(struct nvme_shadow *s, struct dom *d, uint64_t off, unsigned width,
                          bool is_write, uint64_t v)
{
    if (width != 4 && !(width == 8 && (off == NVME_REG_CAP || off == NVME_REG_ASQ ||
                                       off == NVME_REG_ACQ))) {
        dom_kill(d, "NVMe register 0x%llx accessed %u bytes wide", (unsigned long long)off, width);
        return 0;
    }
    if (s->passthrough && (off >= NVME_REG_DBS || off == NVME_REG_CC || off == NVME_REG_AQA ||
                           off == NVME_REG_ASQ || off == NVME_REG_ASQ + 4 ||
                           off == NVME_REG_ACQ || off == NVME_REG_ACQ + 4)) {
        volatile uint8_t *r = s->regs + off;
        if (!is_write)
            return width == 8 ? *(volatile uint64_t *)r : *(volatile uint32_t *)r;
        if (width == 8)
            *(volatile uint64_t *)r = v;
        else
            *(volatile uint32_t *)r = (uint32_t)v;
        return 0;
    }
    if (off >= NVME_REG_DBS) {
        uint32_t stride = 4u << s->dstrd, idx = (uint32_t)((off - NVME_REG_DBS) / stride);
        if ((off - NVME_REG_DBS) % stride || idx / 2 >= QMAX) {
            if (is_write)
                dom_audit(d, "NVMe write to 0x%llx refused: not a doorbell of a usable queue",
                          (unsigned long long)off);
            return 0;
        }
        if (!is_write)
            return 0;
        if (idx % 2 == 0)
            sq_doorbell(s, d, idx / 2, (uint32_t)v, off);
        else
            wr32(s, off, (uint32_t)v);  /* CQ head: the device bounds it */
        return 0;
    }
    if (!is_write) {
        if (off == NVME_REG_ASQ || off == NVME_REG_ASQ + 4)
            return width == 8 ? s->asq : (uint32_t)(s->asq >> (off & 4 ? 32 : 0));
        if (off == NVME_REG_ACQ || off == NVME_REG_ACQ + 4)
            return width == 8 ? s->acq : (uint32_t)(s->acq >> (off & 4 ? 32 : 0));
        return width == 8 ? *(volatile uint64_t *)(s->regs + off) : rd32(s, off);
    }
    switch (off) {
    case NVME_REG_INTMS:
    case NVME_REG_INTMC:
        wr32(s, off, (uint32_t)v);
        break;
    case NVME_REG_CC:
        cc_write(s, d, (uint32_t)v);
        break;
    case NVME_REG_AQA:
        s->aqa = (uint32_t)v;
        break;
    case NVME_REG_ASQ:
    case NVME_REG_ASQ + 4:
        set_half(&s->asq, off, width, v);
        break;
    case NVME_REG_ACQ:
    case NVME_REG_ACQ + 4:
        set_half(&s->acq, off, width, v);
        break;
    default:
        dom_audit(d, "NVMe register 0x%llx write refused (0x%llx): it carries an address or "
                  "resets more than the controller", (unsigned long long)off, (unsigned long long)v);
    }
    return 0;
}

void nvme_shadow_passthrough(struct nvme_shadow *s, bool on) { s->passthrough = on; }

void nvme_shadow_describe(const struct nvme_shadow *s)
{
    if (s->passthrough) {
        com1_printf("    NVMe: %u namespace%s probed; DMA translated by VT-d (no shadow queues)\n",
                    s->n_ns, s->n_ns == 1 ? "" : "s");
        return;
    }
    com1_printf("    NVMe: %u namespace%s probed, largest transfer %llu KiB, %llu commands "
                "copied, %llu refused\n", s->n_ns, s->n_ns == 1 ? "" : "s",
                (unsigned long long)(s->max_xfer >> 10), (unsigned long long)s->copied,
                (unsigned long long)s->refused);
}
