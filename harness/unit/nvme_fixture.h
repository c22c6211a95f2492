/*
 * nvme_fixture.h — the "guest" the NVMe model suites drive: a PCI bus with
 * a fake platform, a real DMA broker with one 4 MiB window the test reads
 * and writes directly, a temp image file, and helpers that act like a
 * driver (registers, queues, doorbells, shadow doorbells, MSI-X).
 *
 * Waiting: completions from the worker are awaited by polling the phase
 * tag against a deadline; a timeout fails with what did not arrive.
 * Included by test_nvme_model.c and test_nvme_cmds.c only.
 */
#ifndef MOAT_NVME_FIXTURE_H
#define MOAT_NVME_FIXTURE_H

#include <criterion/criterion.h>
#include <fcntl.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "broker.h"
#include "fake_platform.h"
#include "moat/layout.h"
#include "moat/nvme_regs.h"
#include "moat/pci_regs.h"
#include "nvme.h"
#include "pci.h"

#define FX_DOM        5u
#define FX_GSI        17u
#define FX_WIN        MOAT_GPA_DMA_BASE
#define FX_WIN_SIZE   (4ull << 20)
#define FX_ASQ        (FX_WIN + 0x00000)
#define FX_ACQ        (FX_WIN + 0x08000)
#define FX_BUF        (FX_WIN + 0x10000)    /* 4 pages of scratch (IDENTIFY, ...) */
#define FX_SQ(q)      (FX_WIN + 0x20000 + (uint64_t)(q) * 0x20000)  /* q <= 5 */
#define FX_CQ(q)      (FX_SQ(q) + 0x10000)
#define FX_DBS        (FX_WIN + 0xF0000)
#define FX_EIS        (FX_WIN + 0xF1000)
#define FX_LIST       (FX_WIN + 0x100000)   /* PRP list pages */
#define FX_DATA       (FX_WIN + 0x200000)   /* data buffers, 2 MiB */
#define FX_OUTSIDE    (FX_WIN + FX_WIN_SIZE + 0x100000)   /* in no window */
#define FX_MSI_DATA0  0x40u                 /* MSI-X vector v sends data 0x40 + v */
#define FX_WAIT_MS    2000u
#define FX_IMAGE_SIZE (8u << 20)

struct fx_queue {
    uint16_t qid;
    uint32_t sqsize, cqsize;
    uint64_t sq, cq;            /* IOVAs */
    uint32_t sq_tail, cq_head;
    bool phase;
    uint16_t next_cid;
};

struct fx_state {
    struct broker br;
    struct pci_bus bus;
    struct pci_func *f;
    struct dma_mapping win_map;
    uint8_t *mem;               /* the window, as the guest sees it */
    char dir[64], image[96];
    struct fx_queue adm;
    struct fake_platform p;     /* called from the worker too */
};

static struct fx_state fx;






static inline void *fx_ptr(uint64_t iova)
{
    cr_assert(iova >= FX_WIN && iova < FX_WIN + FX_WIN_SIZE, "IOVA %#lx outside the test window",
              (unsigned long)iova);
    return fx.mem + (iova - FX_WIN);
}

static inline uint64_t fx_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Build bus + broker + an NVMe controller with "image=...:" extra_opts.
 * Bus mastering and memory decode are on. */
static inline void fx_setup(const char *extra_opts)
{
    char err[256], opts[256];
    struct dma_handle h;
    memset(&fx, 0, sizeof fx);
    snprintf(fx.dir, sizeof fx.dir, "/tmp/moat-nvme-XXXXXX");
    cr_assert_not_null(mkdtemp(fx.dir), "cannot create a temp dir");
    snprintf(fx.image, sizeof fx.image, "%s/disk.img", fx.dir);
    int fd = open(fx.image, O_RDWR | O_CREAT | O_TRUNC, 0600);
    cr_assert(fd >= 0 && ftruncate(fd, FX_IMAGE_SIZE) == 0, "cannot create %s", fx.image);
    close(fd);
    broker_init(&fx.br, 64ull << 20, NULL);
    cr_assert(broker_grant(&fx.br, FX_DOM, FX_WIN, FX_WIN_SIZE, DMA_BIDIR, &h, err, sizeof err),
              "window grant failed: %s", err);
    fake_platform_init(&fx.p, FX_MSI_DATA0, NVME_QUEUES_MAX + 1);
    struct pci_platform_ops plat = fake_platform_ops(&fx.p);
    pci_bus_init(&fx.bus, "dom", FX_DOM, &fx.br, &plat);
    snprintf(opts, sizeof opts, "image=%s%s%s", fx.image, extra_opts[0] ? ":" : "", extra_opts);
    cr_assert(nvme_create(&fx.bus, "nvme0", FX_GSI, opts, err, sizeof err),
              "nvme_create(%s) failed: %s", opts, err);
    fx.f = fx.bus.slot[1];
    cr_assert(pci_cfg_write(fx.f, PCI_COMMAND, 2, PCI_CMD_MEM | PCI_CMD_MASTER),
              "command register write refused");
    fx.mem = broker_dma_map(&fx.br, FX_DOM, "test", FX_WIN, FX_WIN_SIZE, DMA_BIDIR, &fx.win_map);
    cr_assert_not_null(fx.mem, "the test cannot map its own window");
}

static inline void fx_teardown(void)
{
    if (!fx.f)
        return;
    for (int i = 0; i < fx.p.ioev_calls && i < (int)FAKE_IOEV_MAX; i++)
        cr_assert_not(fx.p.ioev[i].pio, "NVMe doorbells are memory-mapped, never I/O ports");
    pci_bus_fini(&fx.bus);
    broker_dma_unmap(&fx.br, &fx.win_map);
    broker_fini(&fx.br);
    unlink(fx.image);
    rmdir(fx.dir);
    fx.f = NULL;
}

static inline struct nvme_stats fx_stats(void)
{
    struct nvme_stats s;
    cr_assert(nvme_stats_get(fx.f, &s), "nvme_stats_get refused the NVMe function");
    return s;
}

/* ---- registers ------------------------------------------------------------ */

static inline enum bus_result fx_mmio(unsigned bar, uint64_t off, uint32_t size, bool write,
                                      uint64_t *v)
{
    struct bus_access a = { .addr = fx.f->bar[bar].base + off, .size = size, .is_write = write,
                            .value = write ? *v : 0x5A5A5A5A5A5A5A5Aull };
    enum bus_result r = pci_mmio_access(&fx.bus, &a);
    if (!write)
        *v = a.value;
    return r;
}

static inline uint64_t reg_rd(uint64_t off, uint32_t size)
{
    uint64_t v = 0;
    cr_assert_eq(fx_mmio(0, off, size, false, &v), BUS_OK, "BAR0 read at %#lx not handled",
                 (unsigned long)off);
    return v;
}

static inline void reg_wr(uint64_t off, uint32_t size, uint64_t v)
{
    cr_assert_eq(fx_mmio(0, off, size, true, &v), BUS_OK, "BAR0 write at %#lx not handled",
                 (unsigned long)off);
}

#define FX_CC_IO NVME_CC_MAKE(0, 6, 4)

/* Program the admin queue and enable; returns CSTS. */
static inline uint32_t fx_try_enable(uint32_t aqa, uint64_t asq, uint64_t acq)
{
    reg_wr(NVME_REG_AQA, 4, aqa);
    reg_wr(NVME_REG_ASQ, 8, asq);
    reg_wr(NVME_REG_ACQ, 8, acq);
    reg_wr(NVME_REG_CC, 4, FX_CC_IO | NVME_CC_EN);
    return (uint32_t)reg_rd(NVME_REG_CSTS, 4);
}

/* Enable with fresh (zeroed) admin queues at FX_ASQ/FX_ACQ. */
static inline void fx_enable(uint32_t asq_entries, uint32_t acq_entries)
{
    memset(fx_ptr(FX_ASQ), 0, (size_t)asq_entries * 64u);
    memset(fx_ptr(FX_ACQ), 0, (size_t)acq_entries * 16u);
    uint32_t csts = fx_try_enable(NVME_AQA_MAKE(asq_entries, acq_entries), FX_ASQ, FX_ACQ);
    cr_assert_eq(csts, NVME_CSTS_RDY, "CSTS after a valid enable is %#x, want RDY only", csts);
    fx.adm = (struct fx_queue){ .qid = 0, .sqsize = asq_entries, .cqsize = acq_entries,
                                .sq = FX_ASQ, .cq = FX_ACQ, .phase = true, .next_cid = 0x100 };
}

/* ---- queues -------------------------------------------------------------- */

/* Write cmd at the SQ tail (cid assigned); ring = write the MMIO doorbell. */
static inline uint16_t q_put(struct fx_queue *q, struct nvme_sqe cmd, bool ring)
{
    cmd.cid = q->next_cid++;
    memcpy(fx_ptr(q->sq + (uint64_t)q->sq_tail * 64u), &cmd, sizeof cmd);
    q->sq_tail = (q->sq_tail + 1u) % q->sqsize;
    if (ring)
        reg_wr(NVME_SQ_TDBL(q->qid, 0), 4, q->sq_tail);
    return cmd.cid;
}

/* The CQE at the head if its phase says it is new. */
static inline bool q_peek(const struct fx_queue *q, struct nvme_cqe *out)
{
    uint32_t *e = fx_ptr(q->cq + (uint64_t)q->cq_head * 16u);
    uint32_t dw3 = __atomic_load_n(&e[3], __ATOMIC_ACQUIRE);
    if (((dw3 >> 16) & NVME_CQE_PHASE) != (q->phase ? 1u : 0u))
        return false;
    memcpy(out, e, sizeof *out);
    return true;
}

/* Consume the head CQE; ring = write the CQ head doorbell. */
static inline void q_pop(struct fx_queue *q, bool ring)
{
    if (++q->cq_head == q->cqsize) {
        q->cq_head = 0;
        q->phase = !q->phase;
    }
    if (ring)
        reg_wr(NVME_CQ_HDBL(q->qid, 0), 4, q->cq_head);
}

/* Wait for the next CQE (deadline) without consuming it. */
static inline struct nvme_cqe q_await(const struct fx_queue *q, const char *what)
{
    struct nvme_cqe e;
    uint64_t end = fx_now_ms() + FX_WAIT_MS;
    while (!q_peek(q, &e)) {
        cr_assert(fx_now_ms() < end, "no completion for %s on CQ %u within %u ms (head %u, "
                  "phase %d)", what, q->qid, FX_WAIT_MS, q->cq_head, q->phase);
        sched_yield();
    }
    return e;
}

/* Wait for the next CQE, consume it and ring the head doorbell. */
static inline struct nvme_cqe q_wait(struct fx_queue *q, const char *what)
{
    struct nvme_cqe e = q_await(q, what);
    q_pop(q, true);
    return e;
}

/* An admin command: completes synchronously at the doorbell. */
static inline struct nvme_cqe adm(struct nvme_sqe cmd)
{
    struct nvme_cqe e;
    uint16_t cid = q_put(&fx.adm, cmd, true);
    cr_assert(q_peek(&fx.adm, &e), "admin opcode %#x: no completion right after the doorbell",
              cmd.opc);
    cr_assert_eq(e.cid, cid, "admin completion for cid %#x, want %#x", e.cid, cid);
    q_pop(&fx.adm, true);
    return e;
}

static inline uint16_t cqe_sc(const struct nvme_cqe *e) { return NVME_CQE_STATUS(e->status); }

/* Admin command expecting status want. */
static inline struct nvme_cqe adm_expect(struct nvme_sqe cmd, uint16_t want, const char *what)
{
    struct nvme_cqe e = adm(cmd);
    cr_assert_eq(cqe_sc(&e), want, "%s: status %#x, want %#x", what, cqe_sc(&e), want);
    return e;
}

static inline struct nvme_sqe cmd_create_cq(uint16_t qid, uint32_t size, uint16_t iv, bool ien)
{
    return (struct nvme_sqe){ .opc = NVME_ADM_CREATE_CQ, .prp1 = FX_CQ(qid),
                              .cdw10 = qid | (size - 1u) << 16,
                              .cdw11 = NVME_QUEUE_PC | (ien ? NVME_CQ_IEN : 0) |
                                       (uint32_t)iv << 16 };
}

static inline struct nvme_sqe cmd_create_sq(uint16_t qid, uint32_t size, uint16_t cqid)
{
    return (struct nvme_sqe){ .opc = NVME_ADM_CREATE_SQ, .prp1 = FX_SQ(qid),
                              .cdw10 = qid | (size - 1u) << 16,
                              .cdw11 = NVME_QUEUE_PC | (uint32_t)cqid << 16 };
}

/* I/O queue pair qid (CQ on vector qid, interrupts on). */
static inline struct fx_queue fx_io_queue(uint16_t qid, uint32_t size)
{
    adm_expect(cmd_create_cq(qid, size, qid, true), NVME_SC_SUCCESS, "CREATE I/O CQ");
    adm_expect(cmd_create_sq(qid, size, qid), NVME_SC_SUCCESS, "CREATE I/O SQ");
    return (struct fx_queue){ .qid = qid, .sqsize = size, .cqsize = size, .sq = FX_SQ(qid),
                              .cq = FX_CQ(qid), .phase = true, .next_cid = 1 };
}

static inline struct nvme_sqe cmd_rw(uint8_t opc, uint64_t slba, uint32_t nlb, uint64_t prp1,
                                     uint64_t prp2)
{
    return (struct nvme_sqe){ .opc = opc, .nsid = 1, .prp1 = prp1, .prp2 = prp2,
                              .cdw10 = (uint32_t)slba, .cdw11 = (uint32_t)(slba >> 32),
                              .cdw12 = nlb - 1u };
}

static inline struct nvme_sqe cmd_set_feature(uint32_t fid, uint32_t v)
{
    return (struct nvme_sqe){ .opc = NVME_ADM_SET_FEATURES, .cdw10 = fid, .cdw11 = v };
}

/* Enable MSI-X with vector v sending data FX_MSI_DATA0 + v, all unmasked. */
static inline void fx_msix_on(void)
{
    for (unsigned v = 0; v < fx.f->msix.entries; v++) {
        uint64_t off = NVME_MSIX_TABLE_OFF + v * PCI_MSIX_ENTRY_SIZE;
        uint64_t addr = PCI_MSI_ADDR_BASE, data = FX_MSI_DATA0 + v, ctrl = 0;
        cr_assert_eq(fx_mmio(NVME_BAR_MSIX, off + PCI_MSIX_ENTRY_ADDR_LO, 4, true, &addr), BUS_OK);
        cr_assert_eq(fx_mmio(NVME_BAR_MSIX, off + PCI_MSIX_ENTRY_DATA, 4, true, &data), BUS_OK);
        cr_assert_eq(fx_mmio(NVME_BAR_MSIX, off + PCI_MSIX_ENTRY_CTRL, 4, true, &ctrl), BUS_OK);
    }
    uint16_t ctl = (uint16_t)pci_cfg_read(fx.f, fx.f->msix.cap + PCI_MSIX_CTRL, 2);
    cr_assert(pci_cfg_write(fx.f, fx.f->msix.cap + PCI_MSIX_CTRL, 2, ctl | PCI_MSIX_CTRL_ENABLE),
              "MSI-X enable refused: %s", fx.p.last_refused);
}

/* Wait until cond (over the stats snapshot s and anything else) holds;
 * fail with the message after the deadline. s is re-read once cond holds,
 * so it includes whatever led up to it (counters only grow). */
#define FX_WAIT_STATS(s, cond, ...)                                           \
    do {                                                                      \
        uint64_t fx_end_ = fx_now_ms() + FX_WAIT_MS;                          \
        for (s = fx_stats(); !(cond); s = fx_stats()) {                       \
            cr_assert(fx_now_ms() < fx_end_, __VA_ARGS__);                    \
            sched_yield();                                                    \
        }                                                                     \
        s = fx_stats();                                                       \
    } while (0)

#endif /* MOAT_NVME_FIXTURE_H */
