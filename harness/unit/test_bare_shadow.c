/*
 * The bare monitor's DMA interposition without an IOMMU, on the host
 * (harness/lib/bare_fake.h: host memory stands for physical memory, the
 * device's registers are a buffer). NVMe (nvme_shadow.c): the admin queues
 * a device gets are the monitor's shadow and the domain's translated CQ;
 * PRP1/PRP2 and PRP-list entries are translated into the window's physical
 * range; a raw physical address, a list entry outside the window, a queue
 * outside it, Doorbell Buffer Config and the Host Memory Buffer feature are
 * refused (the command becomes one that fails with the same CID) and
 * audited; a doorbell past the ring is refused; what the domain rewrites
 * after a doorbell never reaches the shadow; address registers are
 * refused. virtio (virtio_shadow.c, modern): unsafe features are hidden and
 * dropped; an enabled queue's rings are the monitor's (used: translated);
 * a notify copies chains with translated addresses; a raw address or an
 * indirect descriptor gets the scratch page; a loop is cut; an avail index
 * past the ring ends the domain; queue addresses cannot move while enabled.
 */
#include <criterion/criterion.h>
#include "bare_fake.h"
#include "moat/nvme_regs.h"
#include "moat/virtio_regs.h"
#include "../../guest-kernel/bare/nvme_shadow.h"
#include "../../guest-kernel/bare/virtio_shadow.h"

#define W BARE_DOM_VA_WINDOWS
#define WIN_SIZE (8ull << 20)

static struct dom d;
static uint8_t *bar;

static uint64_t rd64(uint64_t off) { uint64_t v; memcpy(&v, bar + off, 8); return v; }
static uint32_t rd32(uint64_t off) { uint32_t v; memcpy(&v, bar + off, 4); return v; }
static void wr32(uint64_t off, uint32_t v) { memcpy(bar + off, &v, 4); }

static void setup(void)
{
    fake_dom(&d, WIN_SIZE);
    bar = aligned_alloc(4096, 0x4000);
    memset(bar, 0, 0x4000);
}

static void teardown(void)
{
    fake_reset(&d);
    free(bar);
}

TestSuite(bare_nvme_shadow, .init = setup, .fini = teardown);

/* ---- NVMe ---------------------------------------------------------------------------- */

static struct nvme_shadow *s;

static void nvme_write(uint64_t off, unsigned width, uint64_t v)
{
    nvme_shadow_mmio(s, &d, off, width, true, v);
}

/* A controller with namespace 1 of 512-byte blocks, admin queues of 16
 * at W (SQ) and W + 0x1000 (CQ), enabled. */
static void nvme_up(void)
{
    uint8_t lbads[NVME_SHADOW_NS + 1] = { [1] = 9 };
    s = nvme_shadow_fixed(bar, 0, 64, 128u << 10, lbads);
    nvme_write(NVME_REG_AQA, 4, 15u << 16 | 15u);
    nvme_write(NVME_REG_ASQ, 8, W);
    nvme_write(NVME_REG_ACQ, 8, W + 0x1000);
    nvme_write(NVME_REG_CC, 4, NVME_CC_EN | 6u << 16 | 4u << 20);
}

static struct nvme_sqe *drv_sq(uint64_t iova, unsigned slot)
{
    return (struct nvme_sqe *)fake_iova(&d, iova) + slot;
}

/* The shadow admin SQ the device was given (ASQ in the real registers). */
static struct nvme_sqe *dev_sq(uint64_t base, unsigned slot)
{
    return (struct nvme_sqe *)(uintptr_t)base + slot;
}

static uint64_t pa(uint64_t iova) { return d.win[0].pa + (iova - W); }

Test(bare_nvme_shadow, admin_queues_are_shadowed_and_translated)
{
    nvme_up();
    cr_assert(rd32(NVME_REG_CC) & NVME_CC_EN, "CC.EN did not reach the device");
    cr_assert(fake_is_monitor(rd64(NVME_REG_ASQ), 16 * 64),
              "the device's ASQ 0x%lx is not a shadow of the monitor's", rd64(NVME_REG_ASQ));
    cr_assert_eq(rd64(NVME_REG_ACQ), pa(W + 0x1000), "ACQ not translated to the window");
    cr_assert_eq(nvme_shadow_mmio(s, &d, NVME_REG_ASQ, 8, false, 0), W,
                 "the domain must read back its own ASQ");
    cr_assert_eq(fake_audits, 0, "a clean bring-up was audited: %s", fake_last_audit);
}

Test(bare_nvme_shadow, identify_prp_is_translated)
{
    nvme_up();
    *drv_sq(W, 0) = (struct nvme_sqe){ .opc = NVME_ADM_IDENTIFY, .cid = 7, .prp1 = W + 0x10000,
                                       .cdw10 = 1 };
    nvme_write(NVME_REG_DBS, 4, 1);
    struct nvme_sqe *e = dev_sq(rd64(NVME_REG_ASQ), 0);
    cr_assert_eq(e->opc, NVME_ADM_IDENTIFY);
    cr_assert_eq(e->cid, 7);
    cr_assert_eq(e->prp1, pa(W + 0x10000), "PRP1 0x%lx not translated", e->prp1);
    cr_assert_eq(rd32(NVME_REG_DBS), 1, "the doorbell did not reach the device");
}

Test(bare_nvme_shadow, a_raw_physical_prp_is_refused_with_the_same_cid)
{
    nvme_up();
    *drv_sq(W, 0) = (struct nvme_sqe){ .opc = NVME_ADM_IDENTIFY, .cid = 9, .prp1 = 0x1234000,
                                       .cdw10 = 1 };
    nvme_write(NVME_REG_DBS, 4, 1);
    struct nvme_sqe *e = dev_sq(rd64(NVME_REG_ASQ), 0);
    cr_assert_eq(e->opc, NVME_ADM_GET_FEATURES, "a refused admin command must fail harmlessly");
    cr_assert_eq(e->cdw10, 0, "FID 0 (reserved) expected");
    cr_assert_eq(e->prp1, 0, "the raw address reached the device");
    cr_assert_eq(e->cid, 9, "the driver must see its CID fail");
    cr_assert_eq(fake_audits, 1);
    cr_assert(strstr(fake_last_audit, "PRP1 is outside the domain's DMA windows"), "audit: %s",
              fake_last_audit);
}

/* Create I/O CQ 1 at W + 0x2000 and SQ 1 at W + 0x3000 (8 entries). */
static uint64_t io_queue_up(void)
{
    *drv_sq(W, 0) = (struct nvme_sqe){ .opc = NVME_ADM_CREATE_CQ, .cid = 1, .prp1 = W + 0x2000,
                                       .cdw10 = 1 | 7u << 16, .cdw11 = NVME_QUEUE_PC };
    *drv_sq(W, 1) = (struct nvme_sqe){ .opc = NVME_ADM_CREATE_SQ, .cid = 2, .prp1 = W + 0x3000,
                                       .cdw10 = 1 | 7u << 16, .cdw11 = NVME_QUEUE_PC | 1u << 16 };
    nvme_write(NVME_REG_DBS, 4, 2);
    struct nvme_sqe *cq = dev_sq(rd64(NVME_REG_ASQ), 0), *sq = dev_sq(rd64(NVME_REG_ASQ), 1);
    cr_assert_eq(cq->prp1, pa(W + 0x2000), "the CQ base is not translated");
    cr_assert(fake_is_monitor(sq->prp1, 8 * 64), "the I/O SQ given to the device is not a shadow");
    return sq->prp1;
}

Test(bare_nvme_shadow, prp_list_entries_are_translated_and_checked)
{
    nvme_up();
    uint64_t shadow = io_queue_up();
    uint64_t *list = fake_iova(&d, W + 0x30000);
    list[0] = W + 0x21000;
    list[1] = W + 0x22000;
    list[2] = W + 0x23000;
    *drv_sq(W + 0x3000, 0) = (struct nvme_sqe){ .opc = NVME_IO_READ, .cid = 3, .nsid = 1,
                                                .prp1 = W + 0x20000, .prp2 = W + 0x30000,
                                                .cdw12 = 31 };     /* 32 x 512 = 16 KiB */
    nvme_write(NVME_REG_DBS + 8, 4, 1);
    struct nvme_sqe *e = dev_sq(shadow, 0);
    cr_assert_eq(e->opc, NVME_IO_READ, "a valid read was refused: %s", fake_last_audit);
    cr_assert_eq(e->prp1, pa(W + 0x20000));
    cr_assert(fake_is_monitor(e->prp2, 4096), "PRP2 must be the monitor's copy of the list");
    const uint64_t *copy = (const uint64_t *)(uintptr_t)e->prp2;
    for (int i = 0; i < 3; i++)
        cr_assert_eq(copy[i], pa(W + 0x21000 + 0x1000ull * (uint64_t)i), "entry %d", i);
    /* The same with one entry aimed outside: refused whole. */
    list[1] = 0xdead000;
    *drv_sq(W + 0x3000, 1) = *drv_sq(W + 0x3000, 0);
    drv_sq(W + 0x3000, 1)->cid = 4;
    nvme_write(NVME_REG_DBS + 8, 4, 2);
    e = dev_sq(shadow, 1);
    cr_assert(e->opc == NVME_IO_FLUSH && e->nsid == 0 && e->cid == 4 && !e->prp1 && !e->prp2,
              "a list entry outside the window was passed");
    cr_assert(strstr(fake_last_audit, "a PRP list entry"), "audit: %s", fake_last_audit);
}

Test(bare_nvme_shadow, a_queue_outside_the_window_is_refused)
{
    nvme_up();
    *drv_sq(W, 0) = (struct nvme_sqe){ .opc = NVME_ADM_CREATE_SQ, .cid = 1, .prp1 = 0x100000,
                                       .cdw10 = 1 | 7u << 16, .cdw11 = NVME_QUEUE_PC | 1u << 16 };
    nvme_write(NVME_REG_DBS, 4, 1);
    cr_assert_eq(dev_sq(rd64(NVME_REG_ASQ), 0)->opc, NVME_ADM_GET_FEATURES);
    nvme_write(NVME_REG_DBS + 8, 4, 1);     /* the queue does not exist */
    cr_assert_eq(rd32(NVME_REG_DBS + 8), 0, "a doorbell of a refused queue reached the device");
    cr_assert_eq(fake_audits, 2);
}

Test(bare_nvme_shadow, doorbell_buffers_and_the_host_memory_buffer_are_refused)
{
    nvme_up();
    *drv_sq(W, 0) = (struct nvme_sqe){ .opc = NVME_ADM_DBBUF_CONFIG, .cid = 1, .prp1 = W,
                                       .prp2 = W + 0x1000 };
    *drv_sq(W, 1) = (struct nvme_sqe){ .opc = NVME_ADM_SET_FEATURES, .cid = 2, .cdw10 = 0x0D };
    *drv_sq(W, 2) = (struct nvme_sqe){ .opc = NVME_ADM_SET_FEATURES, .cid = 3,
                                       .cdw10 = NVME_FEAT_NUM_QUEUES };
    nvme_write(NVME_REG_DBS, 4, 3);
    struct nvme_sqe *sq = dev_sq(rd64(NVME_REG_ASQ), 0);
    cr_assert(sq[0].opc == NVME_ADM_GET_FEATURES && sq[0].cdw10 == 0, "DBBUF passed");
    cr_assert(sq[1].opc == NVME_ADM_GET_FEATURES && sq[1].cdw10 == 0, "HMB passed");
    cr_assert(sq[2].opc == NVME_ADM_SET_FEATURES && sq[2].cdw10 == NVME_FEAT_NUM_QUEUES,
              "a harmless feature was refused");
    cr_assert_eq(fake_audits, 2);
}

Test(bare_nvme_shadow, a_doorbell_past_the_ring_is_refused)
{
    nvme_up();
    nvme_write(NVME_REG_DBS, 4, 99);
    cr_assert_eq(rd32(NVME_REG_DBS), 0, "the bad tail reached the device");
    cr_assert(strstr(fake_last_audit, "past the queue's end"), "audit: %s", fake_last_audit);
}

Test(bare_nvme_shadow, what_the_domain_rewrites_after_the_doorbell_stays_out)
{
    nvme_up();
    *drv_sq(W, 0) = (struct nvme_sqe){ .opc = NVME_ADM_IDENTIFY, .cid = 5, .prp1 = W + 0x10000,
                                       .cdw10 = 1 };
    nvme_write(NVME_REG_DBS, 4, 1);
    drv_sq(W, 0)->prp1 = 0x1000;            /* too late */
    cr_assert_eq(dev_sq(rd64(NVME_REG_ASQ), 0)->prp1, pa(W + 0x10000));
}

Test(bare_nvme_shadow, address_registers_and_a_bad_enable_are_refused)
{
    nvme_up();
    nvme_write(0x50, 4, 0x12345678);        /* CMBMSC: the controller memory buffer's address */
    cr_assert_eq(rd32(0x50), 0, "CMBMSC reached the device");
    nvme_write(NVME_REG_CC, 4, 0);
    nvme_write(NVME_REG_ACQ, 8, 0x200000);  /* outside the window */
    nvme_write(NVME_REG_CC, 4, NVME_CC_EN | 6u << 16 | 4u << 20);
    cr_assert_eq(rd32(NVME_REG_CC) & NVME_CC_EN, 0, "enabled with an ACQ outside the window");
    cr_assert(strstr(fake_last_audit, "CC.EN refused"), "audit: %s", fake_last_audit);
}

/* ---- virtio (modern) -------------------------------------------------------------------- */

static struct virtio_shadow *v;

#define COMMON 0x0u
#define NOTIFY 0x3000u

static void vio_up(void)
{
    struct virtio_layout l = { .modern = true, .common_bar = 4, .common_off = COMMON,
                               .common_len = VIRTIO_COMMON_SIZE, .notify_bar = 4,
                               .notify_off = NOTIFY, .notify_len = 0x100, .notify_mult = 4,
                               .isr_bar = 4, .isr_off = 0x1000, .isr_len = 4, .device_bar = 4,
                               .device_off = 0x2000, .device_len = 0x100 };
    l.bar_base[4] = (uint64_t)(uintptr_t)bar;
    v = virtio_shadow_fixed(&l);
    cr_assert(v);
}

static uint64_t vwrite(uint64_t off, unsigned width, uint64_t val)
{
    return virtio_shadow_mmio(v, &d, 4, off, width, true, val);
}

static uint64_t vread(uint64_t off, unsigned width)
{
    return virtio_shadow_mmio(v, &d, 4, off, width, false, 0);
}

/* Queue 0 of 8 entries: table at W, avail at W + 0x1000, used at W + 0x2000. */
static void queue_up(void)
{
    wr32(COMMON + VIRTIO_COMMON_Q_SIZE, 8);
    vwrite(COMMON + VIRTIO_COMMON_Q_SELECT, 2, 0);
    vwrite(COMMON + VIRTIO_COMMON_Q_DESCLO, 4, (uint32_t)W);
    vwrite(COMMON + VIRTIO_COMMON_Q_AVAILLO, 4, (uint32_t)(W + 0x1000));
    vwrite(COMMON + VIRTIO_COMMON_Q_USEDLO, 4, (uint32_t)(W + 0x2000));
    vwrite(COMMON + VIRTIO_COMMON_Q_ENABLE, 2, 1);
}

static struct virtq_desc *drv_desc(unsigned i) { return (struct virtq_desc *)fake_iova(&d, W) + i; }
static uint64_t dev_reg64(uint64_t lo) { return (uint64_t)rd32(lo + 4) << 32 | rd32(lo); }
static struct virtq_desc *dev_desc(unsigned i)
{
    return (struct virtq_desc *)(uintptr_t)dev_reg64(COMMON + VIRTIO_COMMON_Q_DESCLO) + i;
}

/* Publish head in avail slot idx and notify queue 0. */
static void publish(uint16_t head, uint16_t new_idx)
{
    uint16_t *avail = fake_iova(&d, W + 0x1000);
    avail[2 + (new_idx - 1) % 8] = head;
    avail[1] = new_idx;
    vwrite(NOTIFY, 2, 0);
}

TestSuite(bare_virtio_shadow, .init = setup, .fini = teardown);

Test(bare_virtio_shadow, unsafe_features_are_hidden_and_dropped)
{
    vio_up();
    wr32(COMMON + VIRTIO_COMMON_DF, (uint32_t)(VIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC) |
                                               VIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX) |
                                               VIRTIO_BIT(VIRTIO_NET_F_MAC)));
    vwrite(COMMON + VIRTIO_COMMON_DFSELECT, 4, 0);
    cr_assert_eq(vread(COMMON + VIRTIO_COMMON_DF, 4), VIRTIO_BIT(VIRTIO_NET_F_MAC),
                 "indirect descriptors or the event index were offered");
    vwrite(COMMON + VIRTIO_COMMON_GFSELECT, 4, 0);
    vwrite(COMMON + VIRTIO_COMMON_GF, 4, VIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC) |
                                         VIRTIO_BIT(VIRTIO_NET_F_MAC));
    cr_assert_eq(rd32(COMMON + VIRTIO_COMMON_GF), VIRTIO_BIT(VIRTIO_NET_F_MAC),
                 "the device was told of an unsafe feature");
    cr_assert_eq(fake_audits, 1);
}

Test(bare_virtio_shadow, an_enabled_queue_gets_the_monitor_rings)
{
    vio_up();
    queue_up();
    cr_assert(fake_is_monitor(dev_reg64(COMMON + VIRTIO_COMMON_Q_DESCLO), 8 * 16),
              "the device reads the domain's descriptor table");
    cr_assert(fake_is_monitor(dev_reg64(COMMON + VIRTIO_COMMON_Q_AVAILLO), 6 + 2 * 8),
              "the device reads the domain's avail ring");
    cr_assert_eq(dev_reg64(COMMON + VIRTIO_COMMON_Q_USEDLO), pa(W + 0x2000),
                 "the used ring is not translated");
    cr_assert_eq(vread(COMMON + VIRTIO_COMMON_Q_DESCLO, 4), (uint32_t)W,
                 "the domain must read back its own address");
    vwrite(COMMON + VIRTIO_COMMON_Q_DESCLO, 4, 0x1000);
    cr_assert(strstr(fake_last_audit, "changed while enabled"), "audit: %s", fake_last_audit);
}

Test(bare_virtio_shadow, a_notify_copies_translated_chains)
{
    vio_up();
    queue_up();
    *drv_desc(0) = (struct virtq_desc){ W + 0x10000, 1514, VIRTQ_DESC_F_NEXT, 1 };
    *drv_desc(1) = (struct virtq_desc){ W + 0x11000, 100, VIRTQ_DESC_F_WRITE, 0 };
    publish(0, 1);
    cr_assert_eq(dev_desc(0)->addr, pa(W + 0x10000));
    cr_assert_eq(dev_desc(0)->len, 1514);
    cr_assert_eq(dev_desc(1)->addr, pa(W + 0x11000));
    cr_assert_eq(dev_desc(1)->flags, VIRTQ_DESC_F_WRITE);
    uint16_t *avail = (uint16_t *)(uintptr_t)dev_reg64(COMMON + VIRTIO_COMMON_Q_AVAILLO);
    cr_assert(avail[1] == 1 && avail[2] == 0, "the shadow avail ring was not published");
    cr_assert_eq(fake_audits, 0, "audited: %s", fake_last_audit);
}

Test(bare_virtio_shadow, raw_and_indirect_descriptors_get_the_scratch_page)
{
    vio_up();
    queue_up();
    *drv_desc(0) = (struct virtq_desc){ 0x3245000, 1514, 0, 0 };
    *drv_desc(1) = (struct virtq_desc){ W + 0x10000, 64, VIRTQ_DESC_F_INDIRECT, 0 };
    *drv_desc(2) = (struct virtq_desc){ W + WIN_SIZE - 64, 128, 0, 0 };      /* runs past the end */
    publish(0, 1);
    publish(1, 2);
    publish(2, 3);
    uint64_t scratch = virtio_shadow_scratch(v);
    for (unsigned i = 0; i < 3; i++)
        cr_assert_eq(dev_desc(i)->addr, scratch, "descriptor %u reached the device", i);
    cr_assert_eq(dev_desc(1)->flags & VIRTQ_DESC_F_INDIRECT, 0, "INDIRECT passed");
    cr_assert_eq(fake_audits, 3);
}

Test(bare_virtio_shadow, a_looping_chain_is_cut_and_a_jumping_index_ends_the_domain)
{
    vio_up();
    queue_up();
    *drv_desc(0) = (struct virtq_desc){ W + 0x10000, 64, VIRTQ_DESC_F_NEXT, 0 };   /* itself */
    publish(0, 1);
    cr_assert_eq(dev_desc(0)->flags & VIRTQ_DESC_F_NEXT, 0, "the loop reached the device");
    cr_assert(strstr(fake_last_audit, "loops"), "audit: %s", fake_last_audit);
    uint16_t *avail = fake_iova(&d, W + 0x1000);
    avail[1] = 100;
    vwrite(NOTIFY, 2, 0);
    cr_assert_eq(fake_kills, 1, "an avail index 99 past the last did not end the domain");
    cr_assert_eq(d.state, DOM_DEAD);
}

/* Found by fuzz_bare_shadow (regress/fuzz_bare_shadow/chains_sharing_descriptors: 43 s of
 * the monitor's time for a 114-byte input): every avail entry naming the same ring-long
 * chain made each publication cost size x size descriptor copies. */
Test(bare_virtio_shadow, chains_holding_more_descriptors_than_the_ring_end_the_domain)
{
    vio_up();
    queue_up();
    for (unsigned i = 0; i < 7; i++)
        *drv_desc(i) = (struct virtq_desc){ W + 0x10000, 64, VIRTQ_DESC_F_NEXT, (uint16_t)(i + 1) };
    *drv_desc(7) = (struct virtq_desc){ W + 0x10000, 64, 0, 0 };
    publish(0, 1);                      /* one chain of all 8: fine */
    cr_assert_eq(fake_kills, 0, "a ring-long chain ended the domain: %s", fake_last_audit);
    uint16_t *avail = fake_iova(&d, W + 0x1000);
    avail[2 + 1] = 0;                   /* the same chain twice more */
    avail[2 + 2] = 0;
    avail[1] = 3;
    vwrite(NOTIFY, 2, 0);
    cr_assert_eq(fake_kills, 1, "16 descriptors made available on an 8-entry ring");
    cr_assert(strstr(fake_last_audit, "hold more descriptors than the 8-entry ring"), "kill: %s",
              fake_last_audit);
}

/* Found by fuzz_bare_shadow (regress/fuzz_bare_shadow/notify_off_past_the_region):
 * the notify address came from the device's queue_notify_off unbounded. */
Test(bare_virtio_shadow, notify_off_past_the_region_is_not_written)
{
    vio_up();
    queue_up();
    uint16_t noff = 0xFFFF;                         /* 0xFFFF * 4 is far past the 0x100 region */
    memcpy(bar + COMMON + VIRTIO_COMMON_Q_NOFF, &noff, 2);
    *drv_desc(0) = (struct virtq_desc){ W + 0x10000, 64, 0, 0 };
    publish(0, 1);                                  /* ASan: no write past the BAR */
    cr_assert_eq(rd32(NOTIFY), 0, "a notify was written where the device did not say");
    cr_assert_eq(dev_desc(0)->addr, pa(W + 0x10000), "the chain must still be published");
}
