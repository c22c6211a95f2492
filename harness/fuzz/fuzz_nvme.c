/*
 * fuzz_nvme — the NVMe controller model (devmodel/nvme.c, nvme_admin.c,
 * nvme_io.c, nvme_prp.c) driven as a hostile driver would: register and
 * doorbell MMIO (CC/AQA/ASQ/ACQ, invalid doorbells, shadow doorbells),
 * admin commands (IDENTIFY, CREATE/DELETE I/O SQ/CQ, GET/SET FEATURES, GET
 * LOG PAGE, DOORBELL BUFFER CONFIG, ABORT, ASYNC EVENT, unknown opcodes),
 * NVM commands (READ, WRITE, FLUSH, WRITE ZEROES, DSM, unknown) with PRPs
 * and PRP lists into the DMA window, MSI-X programming, bus-master off,
 * quiesce.
 *
 * Fixture (process-wide, built once in LLVMFuzzerInitialize, like
 * harness/unit/nvme_fixture.h): a PCI bus with a fake platform, a real
 * broker whose one window (1 MiB) is memory this target owns (broker_adopt)
 * with a 4 KiB canary on each side, a 1 MiB temp image (mkstemp in /tmp),
 * and two controllers on it: A (lba 512, 4 queue pairs, mqes 64, mdts 5)
 * and B (lba 4096, read-only, 2 pairs, mqes 16, mdts 2, stall=3: the third
 * I/O command is swallowed until ABORT). Both use poll_us=0. Per input:
 * window zeroed, image zeroed (hole punched), fake platform cleared, and
 * at the end every controller goes back to power-on by the model's own
 * reset path (pci_bus_reset -> nvme_reset, which stops the worker).
 *
 * The I/O worker thread: after every operation the target waits until the
 * controller is quiet, deterministically and without sleeping: under the
 * controller lock (nvme_internal.h) the worker must not be busy and no
 * live I/O SQ may hold fetchable work (commands with CQ room, or a valid
 * shadow tail/head not yet taken); meanwhile it kicks the worker
 * (nvme_worker_kick, what a doorbell does) and yields. A hang shows as a
 * libFuzzer timeout. Only interrupt coalescing deadlines stay timed (they
 * change interrupt counts, never queue memory).
 *
 * Window layout (IOVA = MOAT_GPA_SESSION_BASE + offset): the queue area
 * [0, 256 KiB) holds the admin SQ (page 0), admin CQ (page 1) and I/O SQ q
 * / CQ q at pages 2q and 2q+1; the data area [256 KiB, 1 MiB) holds PRP
 * lists, data, DSM ranges and, in its last two pages, the shadow doorbell
 * and EventIdx pages.
 *
 * Input: byte 0 = setup: bits 1:0 level (0 registers only, 1 enabled with
 * the admin queue, 2 + every I/O queue pair, 3 + Doorbell Buffer Config),
 * bit 2 controller B, bit 3 MSI-X on, bit 4 the platform accepts
 * ioeventfds. Then up to 256 operations, each an opcode byte and its
 * arguments (see op_*): register write/read, raw doorbell, admin command,
 * I/O command, SQ tail doorbell (MMIO or shadow), CQ head doorbell, poke
 * bytes into the data area, PCI config/MSI-X, raw shadow slot, quiesce,
 * CC enable/disable/shutdown.
 *
 * Invariants checked (abort() on violation), beyond ASan/UBSan:
 *  - nothing outside the window is written: both canaries intact;
 *  - every CQE the controller posts, read in order from each live CQ with
 *    the phase tag, names an SQ bound to that CQ and the CID of a command
 *    the controller fetched from that SQ (each completed at most once),
 *    and exactly the entries the controller says it posted carry the new
 *    phase (its private tail and phase match what the host sees);
 *  - the controller never posts to a queue that does not exist: every live
 *    SQ is bound to a live CQ, each CQ's SQ count is right, heads and
 *    tails lie inside their rings, no live queue is above the number
 *    granted, and once quiet no CQ slot stays reserved except the one of
 *    the command the stall knob holds.
 *  - the device never has more entries posted or owed on a CQ than the
 *    host released (head..tail + reserved <= size - 1).
 * The CQE checks assume the device did not DMA into the queue area at the
 * host's request (a PRP aimed at a ring, rings overlapping, a PRP list in
 * the data area naming the queue area): a violation is reported only when
 * no such aliasing exists; otherwise the rest of that input is not
 * checked. CQEs of an op are not matched either when an SQ head went a
 * whole lap (the controller's fetched-command count says more than the
 * heads moved: a tail moved backwards, e.g. a stale shadow tail) or the
 * host's CQ head passed entries it never saw (a shadow head written ahead).
 *
 * Logging: controller-fatal events and bad doorbells go to
 * pci_guest_error (the fake platform records nothing): no stderr lines
 * from the model in this configuration.
 *
 * Environment: FUZZ_NVME_DEBUG=1 prints the controller's counters per
 * input, FUZZ_NVME_TRACE=1 each CQ's host/device positions per check (for
 * writing seeds and reading a failure).
 *
 * Seeds (harness/fuzz/corpus/fuzz_nvme/): level3_rw (controller A, all
 * queues + DBBUF + MSI-X: WRITE with PRP1 only and with a PRP list, READ
 * through a PRP list, shadow doorbells, FLUSH, WRITE ZEROES + FUA, DSM,
 * CQ consumption, IDENTIFY, GET LOG PAGE, features, shutdown);
 * ctrlB_stall_abort (controller B: reads, the stalled command, ABORT,
 * write-protected WRITE, queue deletion); level1_queues (NUM_QUEUES, queue
 * creation by command, AER, IRQ_CONFIG, DBBUF later, deletion, disable);
 * level0_regs (registers, enable by hand, bad doorbells, MSI-X, quiesce).
 */
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "broker.h"
#include "fuzz_device.h"
#include "fuzz_input.h"
#include "moat/layout.h"
#include "moat/nvme_regs.h"
#include "moat/pci_regs.h"
#include "nvme.h"
#include "nvme_internal.h"
#include "pci.h"
#include "../unit/fake_platform.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DOM         7u
#define WIN         MOAT_GPA_SESSION_BASE
#define WIN_SIZE    (1u << 20)
#define QAREA       0x40000u                /* queue area: [0, QAREA) */
#define DATA_PAGES  ((WIN_SIZE - QAREA) / 4096u)
#define DBS_OFF     (WIN_SIZE - 2u * 4096u)
#define EIS_OFF     (WIN_SIZE - 4096u)
#define IMAGE_SIZE  (1u << 20)
#define MSI_DATA0   0x40u
#define OPS_MAX     256u
#define REC_MAX     64u

#define FATAL(...) FZ_FAIL(__VA_ARGS__)

/* Commands the controller fetched from one SQ and has not completed. */
struct rec {
    uint16_t cid;
    uint8_t opc;
    uint16_t qid;           /* admin create/delete: the queue it names */
    uint16_t cqid;          /* the CQ the SQ was bound to */
};

struct hsq {                /* the host's view of one SQ */
    bool live;
    uint64_t base;
    uint32_t size, head, pending, lasttail;
    unsigned n;
    bool lost;              /* records overflowed: CID checks off */
    bool lenient;           /* recreated during this op */
    struct rec r[REC_MAX];
};

struct hcq {                /* the host's view of one CQ */
    bool live, phase, lenient;
    uint64_t base;
    uint32_t size, pos;
};

static struct {
    struct broker br;
    struct pci_bus bus;
    struct fake_platform p;
    uint8_t *mem;           /* the window */
    int img;
    char image[64];
    struct pci_func *fn[2];
} fx;

static struct {
    struct pci_func *f;
    struct nvme_ctrl *c;
    struct hsq sq[NVME_NQ];
    struct hcq cq[NVME_NQ];
    bool regen_sq[NVME_NQ], regen_cq[NVME_NQ];
    bool tainted, skip;
    bool runaway;           /* the device feeds itself: stop the input */
    uint16_t next_cid;
    uint64_t io_fetched;    /* the controller's count at the last check */
} s;


static uint64_t q_sq_addr(unsigned q) { return WIN + (q ? 2u * q : 0u) * 4096u; }
static uint64_t q_cq_addr(unsigned q) { return WIN + (q ? 2u * q + 1u : 1u) * 4096u; }
static uint64_t data_addr(unsigned page) { return WIN + QAREA + (uint64_t)(page % DATA_PAGES) * 4096u; }

static bool in_win(uint64_t iova, uint64_t len) { return fz_in_window(WIN, WIN_SIZE, iova, len); }

static void *win_ptr(uint64_t iova) { return fx.mem + (iova - WIN); }

static bool in_qarea(uint64_t iova) { return iova >= WIN && iova - WIN < QAREA; }

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char err[256], opts[256];
    (void)argc;
    (void)argv;
    snprintf(fx.image, sizeof fx.image, "/tmp/fuzz-nvme-XXXXXX");
    fx.img = mkstemp(fx.image);
    if (fx.img < 0 || ftruncate(fx.img, IMAGE_SIZE) != 0)
        FATAL("cannot create the image %s", fx.image);
    broker_init(&fx.br, 64ull << 20, NULL);
    fx.mem = fz_window_new(&fx.br, DOM, WIN, WIN_SIZE);
    fake_platform_init(&fx.p, MSI_DATA0, NVME_QUEUES_MAX + 1);
    struct pci_platform_ops plat = fake_platform_ops(&fx.p);
    pci_bus_init(&fx.bus, "fz", DOM, &fx.br, &plat);
    static const char *const extra[2] = {
        "queues=4:mqes=64:mdts=5:poll_us=0",
        "lba=4096:queues=2:mqes=16:mdts=2:ro=1:stall=3:poll_us=0",
    };
    for (unsigned i = 0; i < 2; i++) {
        snprintf(opts, sizeof opts, "image=%s:%s", fx.image, extra[i]);
        if (!nvme_create(&fx.bus, i ? "nvme1" : "nvme0", 17 + i, opts, err, sizeof err))
            FATAL("nvme_create: %s", err);
        fx.fn[i] = fx.bus.slot[1 + i];
    }
    /* The image file stays until the process ends; unlink it now so no
     * run leaves it behind (the controllers hold it open). */
    unlink(fx.image);
    return 0;
}

/* ---- MMIO ------------------------------------------------------------------ */

static uint64_t mmio(unsigned bar, uint64_t off, uint32_t size, bool write, uint64_t v)
{
    return fz_driver_mmio(&fx.bus, s.f, bar, off, size, write, v);
}

static void reg_wr(uint64_t off, uint32_t size, uint64_t v) { mmio(NVME_BAR_REGS, off, size, true, v); }

/* ---- waiting for the worker ------------------------------------------------ */

static const uint32_t *shadow_page(const struct nvme_ctrl *c)
{
    return c->dbbuf && in_win(c->dbs, 4096) ? win_ptr(c->dbs) : NULL;
}

/* Lock held: may the worker still change queue state on its own? */
static bool busy(const struct nvme_ctrl *c)
{
    if (!c->w.running || c->w.stop || (c->csts & NVME_CSTS_CFS))
        return false;
    if (c->worker_busy)
        return true;
    const uint32_t *db = shadow_page(c);
    for (uint16_t q = 1; q < NVME_NQ; q++) {
        const struct nvme_sq *sq = &c->sq[q];
        const struct nvme_cq *cq = &c->cq[q];
        if (sq->live && sq->head != sq->tail && nvme_cq_room(&c->cq[sq->cqid]) > 0)
            return true;
        if (!db)
            continue;
        uint32_t t = __atomic_load_n(&db[2u * q], __ATOMIC_ACQUIRE);
        if (sq->live && t != sq->tail && t < sq->size)
            return true;
        uint32_t h = __atomic_load_n(&db[2u * q + 1u], __ATOMIC_ACQUIRE);
        if (cq->live && h != cq->head && h < cq->size &&
            nvme_ring_dist(cq->head, h, cq->size) <= nvme_ring_dist(cq->head, cq->tail, cq->size))
            return true;
    }
    return false;
}

/* Returns with the controller lock held and the worker quiet — or, when
 * the host made a ring that feeds itself (CQEs written over its own SQ or
 * shadow doorbells, so the device is never done), after QUIET_TRIES kicks
 * with s.runaway set: the rest of the input is not checked or run. */
#define QUIET_TRIES 20000u      /* ~0.7 s of kicks: far past any batch */
static void lock_quiet(void)
{
    for (uint32_t tries = 0;; tries++) {
        pthread_mutex_lock(&s.c->lock);
        if (!busy(s.c))
            return;
        if (tries == QUIET_TRIES) {
            s.runaway = s.skip = true;
            return;
        }
        pthread_mutex_unlock(&s.c->lock);
        nvme_worker_kick(s.c);
        sched_yield();
    }
}

/* ---- checks ---------------------------------------------------------------- */

static bool overlaps(uint64_t a, uint64_t al, uint64_t b, uint64_t bl)
{
    return a < b + bl && b < a + al;
}

/* Did the host make the device write into the queue area (so that CQEs
 * and fetched SQEs may legitimately differ from what the host wrote)? */
static bool aliasing(const struct nvme_ctrl *c)
{
    if (s.tainted)
        return true;
    for (unsigned i = 0; i < 2 * NVME_NQ; i++) {
        bool sq = i < NVME_NQ;
        unsigned q = i % NVME_NQ;
        bool live = sq ? c->sq[q].live : c->cq[q].live;
        if (!live)
            continue;
        uint64_t b = sq ? c->sq[q].base : c->cq[q].base;
        uint64_t l = (uint64_t)(sq ? c->sq[q].size : c->cq[q].size) * (sq ? 64u : 16u);
        if (!in_qarea(b) || b - WIN + l > QAREA)
            return true;
        for (unsigned j = i + 1; j < 2 * NVME_NQ; j++) {
            bool sq2 = j < NVME_NQ;
            unsigned q2 = j % NVME_NQ;
            if (!(sq2 ? c->sq[q2].live : c->cq[q2].live))
                continue;
            uint64_t b2 = sq2 ? c->sq[q2].base : c->cq[q2].base;
            uint64_t l2 = (uint64_t)(sq2 ? c->sq[q2].size : c->cq[q2].size) * (sq2 ? 64u : 16u);
            if (overlaps(b, l, b2, l2))
                return true;
        }
    }
    if (c->dbbuf && (overlaps(c->dbs, 4096, WIN, QAREA) || overlaps(c->eis, 4096, WIN, QAREA)))
        return true;
    /* PRP lists (and DSM ranges, data) come from the data area. */
    for (size_t off = QAREA; off + 8 <= WIN_SIZE; off += 4) {
        uint64_t v;
        memcpy(&v, fx.mem + off, 8);
        if (v >= WIN - 0x100000u && v < WIN + QAREA)
            return true;
    }
    return false;
}

/* A violation, unless the host aliased the queue area. Lock held. */
static bool violation(const char *what, unsigned a, unsigned b)
{
    if (aliasing(s.c)) {
        s.skip = true;
        return false;
    }
    FATAL("%s (%u, %u)", what, a, b);
}

/* New SQ entries the controller fetched since last time: record them;
 * returns how many. */
static uint64_t sq_fetched(uint16_t q)
{
    uint64_t got = 0;
    const struct nvme_sq *sq = &s.c->sq[q];
    struct hsq *h = &s.sq[q];
    if (!sq->live)
        return 0;
    if (!h->live || h->base != sq->base || h->size != sq->size || s.regen_sq[q]) {
        h->live = true;
        h->base = sq->base;
        h->size = sq->size;
        h->head = 0;
        h->n = 0;
        h->pending = 0;
        h->lost = false;
        h->lenient = true;
    }
    if (!in_win(sq->base, (uint64_t)sq->size * 64u)) {
        h->lost = true;
        h->head = sq->head;
        return 0;
    }
    for (uint32_t i = h->head; i != sq->head; i = (i + 1u) % sq->size, got++) {
        struct nvme_sqe e;
        memcpy(&e, win_ptr(sq->base + (uint64_t)i * 64u), sizeof e);
        if (h->n == REC_MAX) {
            h->lost = true;
            memmove(&h->r[0], &h->r[1], sizeof h->r[0] * (REC_MAX - 1));
            h->n--;
        }
        h->r[h->n++] = (struct rec){ .cid = e.cid, .opc = e.opc, .qid = (uint16_t)e.cdw10,
                                      .cqid = q ? sq->cqid : 0 };
    }
    h->head = sq->head;
    return got;
}

/* I/O commands the controller fetched so far (executed or swallowed). */
static uint64_t io_fetched(const struct nvme_ctrl *c)
{
    return atomic_load(&c->st.io_reads) + atomic_load(&c->st.io_writes) +
           atomic_load(&c->st.io_flushes) + atomic_load(&c->st.io_write_zeroes) +
           atomic_load(&c->st.io_dsm) + atomic_load(&c->st.io_other) +
           atomic_load(&c->st.stalled);
}

/* Take a completion's record; false when there is none. */
static bool take(uint16_t sqid, uint16_t cqid, uint16_t cid, struct rec *out)
{
    struct hsq *h = &s.sq[sqid];
    for (unsigned i = 0; i < h->n; i++) {
        if (h->r[i].cid != cid || h->r[i].cqid != cqid)
            continue;
        *out = h->r[i];
        memmove(&h->r[i], &h->r[i + 1], sizeof h->r[0] * (h->n - i - 1));
        h->n--;
        return true;
    }
    return false;
}

static void cq_scan(uint16_t q)
{
    const struct nvme_cq *cq = &s.c->cq[q];
    struct hcq *h = &s.cq[q];
    if (!cq->live)
        return;
    if (!h->live || h->base != cq->base || h->size != cq->size || s.regen_cq[q]) {
        *h = (struct hcq){ .live = true, .phase = true, .base = cq->base, .size = cq->size,
                           .lenient = true };
    }
    if (!in_win(cq->base, (uint64_t)cq->size * 16u)) {
        h->pos = cq->tail;
        h->phase = cq->phase;
        return;
    }
    uint32_t n = h->phase == cq->phase ? cq->tail - h->pos : cq->size - h->pos + cq->tail;
    if (getenv("FUZZ_NVME_TRACE"))
        fprintf(stderr, "CQ %u: host pos %u phase %d, device tail %u phase %d head %u size %u; "
                "SQ %u head %u tail %u; dbbuf %d dbs %#llx shadow %u/%u\n",
                q, h->pos, h->phase, cq->tail, cq->phase, cq->head, cq->size, q, s.c->sq[q].head,
                s.c->sq[q].tail, s.c->dbbuf, (unsigned long long)s.c->dbs,
                shadow_page(s.c) ? shadow_page(s.c)[2 * q] : 0,
                shadow_page(s.c) ? shadow_page(s.c)[2 * q + 1] : 0);
    /* The host may pass entries it never looked at (a CQ head written
     * ahead, e.g. a stale shadow head): the device may then reuse them
     * within this op, so what is there cannot be matched any more. That
     * the device never overwrites an entry the host has not released is
     * checked on its state (structure()). */
    if (n >= cq->size || nvme_ring_dist(h->pos, cq->head, cq->size) > n) {
        h->pos = cq->tail;
        h->phase = cq->phase;
        return;
    }
    for (uint32_t i = 0; i < n && !s.skip; i++) {
        struct nvme_cqe e;
        memcpy(&e, win_ptr(cq->base + (uint64_t)h->pos * 16u), sizeof e);
        if ((e.status & 1u) != (h->phase ? 1u : 0u) &&
            !violation("posted CQE without the new phase tag", q, h->pos))
            break;
        struct rec r;
        if (e.sqid >= NVME_NQ || (q == 0) != (e.sqid == 0)) {
            if (!violation("CQE names an SQ that cannot post to this CQ", q, e.sqid))
                break;
        } else if (!take(e.sqid, q, e.cid, &r)) {
            if (!s.sq[e.sqid].lost && !s.sq[e.sqid].lenient && !h->lenient &&
                !violation("CQE for a command never fetched (CQ, SQ)", q, e.sqid))
                break;
        } else if (q == 0 && NVME_CQE_STATUS(e.status) == NVME_SC_SUCCESS && r.qid < NVME_NQ) {
            /* Queues the admin queue created or deleted: start afresh. */
            if (r.opc == NVME_ADM_CREATE_SQ || r.opc == NVME_ADM_DELETE_SQ)
                s.regen_sq[r.qid] = true;
            if (r.opc == NVME_ADM_CREATE_CQ || r.opc == NVME_ADM_DELETE_CQ)
                s.regen_cq[r.qid] = true;
        }
        if (++h->pos == h->size) {
            h->pos = 0;
            h->phase = !h->phase;
        }
    }
    if (h->pos != cq->tail || h->phase != cq->phase) {
        if (!s.skip)
            violation("CQ tail/phase differ from what the host saw", q, cq->tail);
        h->pos = cq->tail;
        h->phase = cq->phase;
    }
}

static void structure(const struct nvme_ctrl *c)
{
    uint32_t sqs[NVME_NQ] = { 0 };
    for (uint16_t q = 1; q < NVME_NQ; q++) {
        const struct nvme_sq *sq = &c->sq[q];
        if (!sq->live)
            continue;
        if (q > c->nsq_alloc || sq->size < 2 || sq->size > c->mqes || sq->head >= sq->size ||
            sq->tail >= sq->size)
            FATAL("SQ %u: bad geometry (size %u head %u tail %u)", q, sq->size, sq->head,
                  sq->tail);
        if (sq->cqid == 0 || sq->cqid >= NVME_NQ || !c->cq[sq->cqid].live)
            FATAL("SQ %u bound to CQ %u, which does not exist", q, sq->cqid);
        sqs[sq->cqid]++;
    }
    for (uint16_t q = 0; q < NVME_NQ; q++) {
        const struct nvme_cq *cq = &c->cq[q];
        if (!cq->live)
            continue;
        if ((q && (q > c->ncq_alloc || cq->size > c->mqes)) || cq->size < 2 ||
            cq->head >= cq->size || cq->tail >= cq->size)
            FATAL("CQ %u: bad geometry (size %u head %u tail %u)", q, cq->size, cq->head,
                  cq->tail);
        if (nvme_ring_dist(cq->head, cq->tail, cq->size) + cq->reserved > cq->size - 1u)
            FATAL("CQ %u: more entries posted or owed (%u + %u) than the host released", q,
                  nvme_ring_dist(cq->head, cq->tail, cq->size), cq->reserved);
        if (q && cq->sqs != sqs[q])
            FATAL("CQ %u counts %u SQs, %u are bound to it", q, cq->sqs, sqs[q]);
        bool stalled = c->stall_active && c->sq[c->stall_sqid].live &&
                       c->sq[c->stall_sqid].cqid == q;
        if (!c->worker_busy && cq->reserved != (stalled ? 1u : 0u))
            FATAL("CQ %u: %u slots reserved while the worker is idle", q, cq->reserved);
    }
    if (c->nsq_alloc > c->nq || c->ncq_alloc > c->nq || c->aer_held > NVME_AERL + 1u)
        FATAL("feature state out of range");
}

/* After every operation: worker quiet, then every check. */
static void settle(void)
{
    lock_quiet();
    struct nvme_ctrl *c = s.c;
    memset(s.regen_sq, 0, sizeof s.regen_sq);
    memset(s.regen_cq, 0, sizeof s.regen_cq);
    if (!s.skip) {
        sq_fetched(0);
        cq_scan(0);
        uint64_t seen = 0, fetched = io_fetched(c);
        for (uint16_t q = 1; q < NVME_NQ; q++)
            seen += sq_fetched(q);
        /* A head that went a whole lap round its ring (the host moved a
         * tail backwards, e.g. a stale shadow tail) hides what was
         * fetched: such an op's CQEs are not matched. */
        if (fetched - s.io_fetched != seen)
            for (uint16_t q = 1; q < NVME_NQ; q++)
                s.sq[q].lenient = true;
        s.io_fetched = fetched;
        for (uint16_t q = 1; q < NVME_NQ && !s.skip; q++)
            cq_scan(q);
    }
    for (uint16_t q = 0; q < NVME_NQ; q++) {
        if (!c->sq[q].live)
            s.sq[q].live = false;
        if (!c->cq[q].live)
            s.cq[q].live = false;
        s.sq[q].lenient = false;
        s.cq[q].lenient = false;
        if (c->sq[q].tail != s.sq[q].lasttail) {
            s.sq[q].lasttail = c->sq[q].tail;
            s.sq[q].pending = 0;
        }
    }
    structure(c);
    pthread_mutex_unlock(&c->lock);
}

/* ---- building commands ----------------------------------------------------- */

/* A guest address: mostly a data page (maybe offset), sometimes a queue
 * ring, the edges of the window, outside it, or anything. */
static uint64_t pick_addr(struct fz *f)
{
    uint8_t sel = fz_u8(f);
    switch (sel % 8u) {
    case 4: return data_addr(fz_u8(f)) + (fz_u16(f) % 4096u);
    case 5: return WIN + (uint64_t)(fz_u8(f) % (QAREA / 4096u)) * 4096u;
    case 6: return fz_u64(f);
    case 7:
        switch (fz_u8(f) % 4u) {
        case 0: return WIN + WIN_SIZE - 4096u;
        case 1: return WIN + WIN_SIZE + (fz_u16(f) & ~7u);
        case 2: return WIN - 4096u;
        default: return 0;
        }
    default: return data_addr(fz_u8(f));
    }
}

static uint64_t prp_of(struct fz *f, bool may_alias)
{
    uint64_t a = pick_addr(f);
    if (!may_alias && a >= WIN - 0x100000u && a < WIN + QAREA)
        s.tainted = true;   /* the device may write into a ring */
    return a;
}

/* Put cmd at SQ q's next free slot (the host's tail); false when full. */
static bool sq_put(uint16_t q, struct nvme_sqe *cmd)
{
    pthread_mutex_lock(&s.c->lock);
    const struct nvme_sq *sq = &s.c->sq[q];
    struct hsq *h = &s.sq[q];
    bool ok = sq->live && in_win(sq->base, (uint64_t)sq->size * 64u) &&
              h->pending + nvme_ring_dist(sq->head, sq->tail, sq->size) + 1u < sq->size;
    if (ok) {
        uint32_t slot = (sq->tail + h->pending) % sq->size;
        cmd->cid = s.next_cid++;
        memcpy(win_ptr(sq->base + (uint64_t)slot * 64u), cmd, sizeof *cmd);
        h->pending++;
    }
    pthread_mutex_unlock(&s.c->lock);
    return ok;
}

/* Ring SQ q's tail over what was put: with Doorbell Buffer Config the
 * shadow page (+ a kick), then MMIO unless shadow says not to. */
static void sq_ring(uint16_t q, bool shadow)
{
    pthread_mutex_lock(&s.c->lock);
    const struct nvme_sq *sq = &s.c->sq[q];
    uint32_t v = sq->size ? (sq->tail + s.sq[q].pending) % sq->size : 0;
    uint32_t *db = (uint32_t *)shadow_page(s.c);
    pthread_mutex_unlock(&s.c->lock);
    if (db && q) {      /* as a driver does: the shadow first, MMIO unless told not to */
        __atomic_store_n(&db[2u * q], v, __ATOMIC_RELEASE);
        nvme_worker_kick(s.c);
    }
    if (!shadow || !db || !q)
        reg_wr(NVME_SQ_TDBL(q, 0), 4, v);
}

static void submit(uint16_t q, struct nvme_sqe *cmd, bool ring, bool shadow)
{
    if (sq_put(q, cmd) && ring)
        sq_ring(q, shadow);
}

static const uint8_t admin_opcodes[] = {
    NVME_ADM_IDENTIFY, NVME_ADM_CREATE_CQ, NVME_ADM_CREATE_SQ, NVME_ADM_DELETE_SQ,
    NVME_ADM_DELETE_CQ, NVME_ADM_GET_FEATURES, NVME_ADM_SET_FEATURES, NVME_ADM_GET_LOG_PAGE,
    NVME_ADM_DBBUF_CONFIG, NVME_ADM_ABORT, NVME_ADM_ASYNC_EVENT,
};

static void op_admin(struct fz *f)
{
    uint8_t k = fz_u8(f), fl = fz_u8(f);
    struct nvme_sqe cmd = { 0 };
    cmd.opc = k < 0xF0u ? admin_opcodes[k % sizeof admin_opcodes] : fz_u8(f);
    cmd.flags = (fl & 0x80u) ? fz_u8(f) : 0;
    cmd.nsid = (fl & 0x40u) ? fz_u32(f) : 1u;
    bool raw = fl & 0x20u;
    uint32_t nq = s.c->nq;
    switch (cmd.opc) {
    case NVME_ADM_CREATE_CQ:
    case NVME_ADM_CREATE_SQ: {
        bool cq = cmd.opc == NVME_ADM_CREATE_CQ;
        uint16_t qid = (uint16_t)(fz_u8(f) % (nq + 2u));
        uint32_t size = 2u + fz_u8(f) % (s.c->mqes - 1u);
        cmd.prp1 = (fl & 0x10u) ? pick_addr(f) : cq ? q_cq_addr(qid) : q_sq_addr(qid);
        cmd.cdw10 = raw ? fz_u32(f) : qid | (size - 1u) << 16;
        cmd.cdw11 = raw ? fz_u32(f)
                        : cq ? (NVME_QUEUE_PC | (fl & 1u ? NVME_CQ_IEN : 0) |
                                (uint32_t)(fz_u8(f) % (nq + 2u)) << 16)
                             : (NVME_QUEUE_PC | (uint32_t)(fz_u8(f) % (nq + 2u)) << 16);
        break;
    }
    case NVME_ADM_DELETE_CQ:
    case NVME_ADM_DELETE_SQ:
        cmd.cdw10 = raw ? fz_u32(f) : fz_u8(f) % (nq + 2u);
        break;
    case NVME_ADM_DBBUF_CONFIG:
        cmd.prp1 = (fl & 0x10u) ? pick_addr(f) : WIN + DBS_OFF;
        cmd.prp2 = (fl & 0x08u) ? pick_addr(f) : WIN + EIS_OFF;
        if (in_qarea(cmd.prp1) || in_qarea(cmd.prp2))
            s.tainted = true;
        break;
    case NVME_ADM_ABORT:
        cmd.cdw10 = raw ? fz_u32(f) : (fz_u8(f) % (nq + 1u)) | (uint32_t)fz_u16(f) << 16;
        break;
    default:
        cmd.prp1 = prp_of(f, false);
        cmd.prp2 = (fl & 0x04u) ? prp_of(f, false) : cmd.prp1 + 4096u;
        cmd.cdw10 = fz_u32(f);
        cmd.cdw11 = fz_u32(f);
        cmd.cdw12 = (fl & 0x02u) ? fz_u32(f) : 0;
        cmd.cdw13 = (fl & 0x02u) ? fz_u32(f) : 0;
        break;
    }
    submit(0, &cmd, !(fl & 0x01u), false);   /* else a later op rings */
}

static const uint8_t io_opcodes[] = {
    NVME_IO_READ, NVME_IO_WRITE, NVME_IO_READ, NVME_IO_WRITE, NVME_IO_FLUSH,
    NVME_IO_WRITE_ZEROES, NVME_IO_DSM,
};

static void op_io(struct fz *f)
{
    uint8_t k = fz_u8(f), fl = fz_u8(f);
    uint16_t q = (uint16_t)(1u + fz_u8(f) % s.c->nq);
    struct nvme_sqe cmd = { 0 };
    cmd.opc = k < 0xF0u ? io_opcodes[k % sizeof io_opcodes] : fz_u8(f);
    cmd.flags = (fl & 0x80u) ? fz_u8(f) : 0;
    cmd.nsid = (fl & 0x40u) ? fz_u32(f) : 1u;
    uint64_t blocks = IMAGE_SIZE >> s.c->lba_shift;
    uint64_t slba = (fl & 0x20u) ? fz_u64(f) : fz_u16(f) % blocks;
    cmd.cdw10 = (uint32_t)slba;
    cmd.cdw11 = (uint32_t)(slba >> 32);
    uint32_t nlb = (fl & 0x10u) ? fz_u16(f) : fz_u8(f) % 16u;
    cmd.cdw12 = nlb | ((fl & 0x08u) ? NVME_RW_FUA : 0);
    if (cmd.opc == NVME_IO_DSM) {
        cmd.cdw10 = fz_u8(f);
        cmd.cdw11 = fz_u8(f) & 7u;
    }
    cmd.prp1 = prp_of(f, false);
    cmd.prp2 = (fl & 0x04u) ? prp_of(f, false) : (cmd.prp1 & ~4095ull) + 4096u;
    submit(q, &cmd, !(fl & 0x02u), fl & 0x01u);
}

static void op_sq_ring(struct fz *f)
{
    uint8_t a = fz_u8(f);
    sq_ring((uint16_t)((a >> 1) % (s.c->nq + 1u)), a & 1u);
}

/* Consume CQ q: the head over everything the host saw (or a raw value). */
static void op_cq_head(struct fz *f)
{
    uint8_t a = fz_u8(f);
    uint16_t q = (uint16_t)((a >> 2) % (s.c->nq + 1u));
    uint32_t v = s.cq[q].pos;
    if (a & 2u)
        v = fz_u16(f) % (s.cq[q].size + 2u);
    pthread_mutex_lock(&s.c->lock);
    uint32_t *db = (uint32_t *)shadow_page(s.c);
    pthread_mutex_unlock(&s.c->lock);
    if (db && q) {
        __atomic_store_n(&db[2u * q + 1u], v, __ATOMIC_RELEASE);
        nvme_worker_kick(s.c);
    }
    if (!(a & 1u) || !db || !q)
        reg_wr(NVME_CQ_HDBL(q, 0), 4, v);
}

static void op_reg(struct fz *f)
{
    static const uint32_t sizes[] = { 4, 8, 4, 1, 2 };
    uint8_t a = fz_u8(f);
    uint64_t off = (a & 0x80u) ? fz_u16(f) % NVME_BAR0_SIZE : (uint64_t)(fz_u8(f) % 0x40u);
    uint32_t size = sizes[a % 5u];
    if (a & 0x40u) {
        (void)mmio(NVME_BAR_REGS, off, size, false, 0);
        return;
    }
    uint64_t v = fz_u64(f);
    if (off == NVME_REG_CC && size == 4 && (a & 0x20u))     /* a sane CC, mostly */
        v = NVME_CC_MAKE(0, 6, 4) | (v & (NVME_CC_EN | NVME_CC_SHN_MASK));
    reg_wr(off, size, v);
}

static void op_doorbell_raw(struct fz *f)
{
    uint32_t idx = fz_u8(f) % (2u * NVME_NQ + 6u);
    reg_wr(NVME_REG_DBS + 4u * idx, (fz_u8(f) & 1u) ? 2 : 4, fz_u32(f));
}

static void op_poke(struct fz *f)
{
    uint32_t off = QAREA + fz_u32(f) % (WIN_SIZE - QAREA);
    uint32_t len = 1u + fz_u8(f) % 64u;
    if (len > WIN_SIZE - off)
        len = WIN_SIZE - off;
    fz_bytes(f, fx.mem + off, len);
}

static void msix_program(bool on)
{
    for (unsigned v = 0; v < s.f->msix.entries; v++) {
        uint64_t off = NVME_MSIX_TABLE_OFF + v * PCI_MSIX_ENTRY_SIZE;
        mmio(NVME_BAR_MSIX, off + PCI_MSIX_ENTRY_ADDR_LO, 4, true, PCI_MSI_ADDR_BASE);
        mmio(NVME_BAR_MSIX, off + PCI_MSIX_ENTRY_DATA, 4, true, MSI_DATA0 + v);
        mmio(NVME_BAR_MSIX, off + PCI_MSIX_ENTRY_CTRL, 4, true, 0);
    }
    uint16_t ctl = (uint16_t)pci_cfg_read(s.f, s.f->msix.cap + PCI_MSIX_CTRL, 2);
    ctl = on ? ctl | PCI_MSIX_CTRL_ENABLE : ctl & ~PCI_MSIX_CTRL_ENABLE;
    pci_cfg_write(s.f, s.f->msix.cap + PCI_MSIX_CTRL, 2, ctl);
}

static void op_pci(struct fz *f)
{
    uint8_t a = fz_u8(f);
    switch (a % 5u) {
    case 0: msix_program(a & 8u); break;
    case 1:     /* bus mastering / decode / INTx disable */
        pci_cfg_write(s.f, PCI_COMMAND, 2, PCI_CMD_MEM | ((a & 8u) ? PCI_CMD_MASTER : 0) |
                                               ((a & 16u) ? PCI_CMD_INTX_DISABLE : 0));
        break;
    case 2: {   /* one MSI-X table dword, e.g. a mask bit */
        uint32_t off = fz_u16(f) % (s.f->msix.entries * PCI_MSIX_ENTRY_SIZE);
        mmio(NVME_BAR_MSIX, off & ~3u, 4, true, fz_u32(f));
        break;
    }
    case 3: (void)mmio(NVME_BAR_MSIX, NVME_MSIX_PBA_OFF, 8, false, 0); break;
    default:    /* interrupt mask set / clear */
        reg_wr((a & 8u) ? NVME_REG_INTMC : NVME_REG_INTMS, 4, 1);
        break;
    }
}

static void op_shadow_raw(struct fz *f)
{
    pthread_mutex_lock(&s.c->lock);
    uint32_t *db = (uint32_t *)shadow_page(s.c);
    pthread_mutex_unlock(&s.c->lock);
    uint32_t slot = fz_u8(f) % (2u * NVME_NQ), v = fz_u32(f);
    if (!db)
        return;
    __atomic_store_n(&db[slot], (v & 0x80000000u) ? v : v % 80u, __ATOMIC_RELEASE);
    nvme_worker_kick(s.c);
}

/* Enable with the admin queue at its pages: asq x acq entries. */
static void enable(uint32_t asq, uint32_t acq)
{
    reg_wr(NVME_REG_AQA, 4, NVME_AQA_MAKE(asq, acq));
    reg_wr(NVME_REG_ASQ, 8, q_sq_addr(0));
    reg_wr(NVME_REG_ACQ, 8, q_cq_addr(0));
    reg_wr(NVME_REG_CC, 4, NVME_CC_MAKE(0, 6, 4) | NVME_CC_EN);
}

static void op_cc(struct fz *f)
{
    uint8_t a = fz_u8(f);
    switch (a % 4u) {
    case 0: reg_wr(NVME_REG_CC, 4, 0); break;
    case 1: enable(2u + fz_u8(f) % 63u, 2u + fz_u8(f) % 255u); break;
    case 2: reg_wr(NVME_REG_CC, 4, NVME_CC_MAKE(0, 6, 4) | NVME_CC_EN | NVME_CC_SHN_NORMAL); break;
    default:    /* quiesce: DMA stops until reset; then the reset itself */
        if (a & 4u) {
            pci_bus_quiesce(&fx.bus);
        } else {
            pci_bus_reset(&fx.bus);
            pci_cfg_write(s.f, PCI_COMMAND, 2, PCI_CMD_MEM | PCI_CMD_MASTER);
        }
        break;
    }
}

static void setup(unsigned level)
{
    if (level == 0)
        return;
    enable(32, 64);
    settle();
    if (level == 1)
        return;
    uint32_t size = s.c->mqes < 32u ? s.c->mqes : 32u;
    for (uint16_t q = 1; q <= s.c->nq; q++) {
        struct nvme_sqe cq = { .opc = NVME_ADM_CREATE_CQ, .prp1 = q_cq_addr(q),
                               .cdw10 = q | (size - 1u) << 16,
                               .cdw11 = NVME_QUEUE_PC | NVME_CQ_IEN | (uint32_t)q << 16 };
        struct nvme_sqe sq = { .opc = NVME_ADM_CREATE_SQ, .prp1 = q_sq_addr(q),
                               .cdw10 = q | (size - 1u) << 16,
                               .cdw11 = NVME_QUEUE_PC | (uint32_t)q << 16 };
        submit(0, &cq, true, false);
        settle();
        submit(0, &sq, true, false);
        settle();
    }
    if (level == 2)
        return;
    struct nvme_sqe db = { .opc = NVME_ADM_DBBUF_CONFIG, .prp1 = WIN + DBS_OFF,
                           .prp2 = WIN + EIS_OFF };
    submit(0, &db, true, false);
    settle();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz f = fz_init(data, size);
    uint8_t cfg = fz_u8(&f);
    memset(&s, 0, sizeof s);
    s.f = fx.fn[(cfg >> 2) & 1u];
    s.c = s.f->dev;
    s.next_cid = 0x100;
    s.io_fetched = io_fetched(s.c);
    memset(fx.mem, 0, WIN_SIZE);
    if (fallocate(fx.img, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, IMAGE_SIZE) != 0)
        FATAL("cannot zero the image");
    fake_platform_init(&fx.p, MSI_DATA0, NVME_QUEUES_MAX + 1);
    fx.p.ioev_accept = cfg & 0x10u;
    pci_cfg_write(s.f, PCI_COMMAND, 2, PCI_CMD_MEM | PCI_CMD_MASTER);
    if (cfg & 0x08u)
        msix_program(true);
    setup(cfg & 3u);
    for (unsigned n = 0; n < OPS_MAX && fz_left(&f) > 0 && !s.runaway; n++) {
        uint8_t op = fz_u8(&f);
        switch (op % 16u) {
        case 0: case 1: case 2: op_io(&f); break;
        case 3: case 4: op_admin(&f); break;
        case 5: case 6: op_sq_ring(&f); break;
        case 7: case 8: op_cq_head(&f); break;
        case 9: op_reg(&f); break;
        case 10: op_doorbell_raw(&f); break;
        case 11: op_poke(&f); break;
        case 12: op_pci(&f); break;
        case 13: op_shadow_raw(&f); break;
        case 14: op_cc(&f); break;
        default: (void)mmio(NVME_BAR_REGS, NVME_REG_CSTS, 4, false, 0); break;
        }
        settle();
    }
    if (getenv("FUZZ_NVME_DEBUG")) {   /* what the input reached, for writing seeds */
        struct nvme_stats st;
        nvme_stats_get(s.f, &st);
#define PRINT_STAT(name) if (st.name) fprintf(stderr, " %s=%llu", #name, (unsigned long long)st.name);
        NVME_STATS_FIELDS(PRINT_STAT)
#undef PRINT_STAT
        fprintf(stderr, " | csts %#x skip %d tainted %d\n", s.c->csts, s.skip, s.tainted);
    }
    pci_bus_reset(&fx.bus);     /* the model's reset: worker stopped, queues gone */
    fz_window_check(fx.mem, WIN_SIZE);
    return 0;
}
