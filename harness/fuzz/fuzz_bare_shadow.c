/*
 * fuzz_bare_shadow — the bare monitor's DMA interposition without an IOMMU
 * (guest-kernel/bare/nvme_shadow.c and virtio_shadow.c, modern transport),
 * driven by a hostile domain: register and doorbell writes, and anything
 * in its DMA window (queues, commands, PRP lists, descriptors, avail rings).
 * harness/lib/bare_fake.h stands for the rest of the monitor: host memory
 * is "physical" memory, the device's registers are a buffer.
 *
 * Input: byte 0 picks the device (bit 0: virtio, else NVMe) and, for NVMe,
 * namespace 1's LBA shift (bit 1: 4096, else 512) and a 16 KiB MDTS (bit
 * 2); then ops until the input ends, each an opcode byte with operands:
 *   0 register write: offset u16, width (u8: 4 or 8, virtio 1/2/4),
 *     value u64 (NVMe offsets reach the doorbells of queues 0..16);
 *   1 window poke: offset u16 * 8 in the window's first 512 KiB, length
 *     u8, the bytes;
 *   2 (NVMe) a command in a queue slot: queue base u8 * 4 KiB, slot u8,
 *     opcode from the ones the monitor knows or any, flags, cid, nsid,
 *     PRP1 and PRP2 (an IOVA in the window or a raw u64), cdw10..12;
 *     (virtio) a descriptor: index u8, address (window or raw), length,
 *     flags, next;
 *   3 doorbell (NVMe: queue u8 % 17, SQ or CQ, value u16) or publish
 *     (virtio: head u8 into the next avail slot, idx bump u8, notify);
 *   4 register read (offset u16, width u8).
 *
 * Checks beyond the sanitizers (abort() on violation), after every op:
 *   - NVMe: the device's ASQ is 0 or the monitor's memory, its ACQ 0 or
 *     inside the window; in every shadow SQ the device was given (the
 *     admin one, and each CREATE I/O SQ's PRP1 found there), every command
 *     names only the window or monitor memory: PRP1 (CREATE SQ: a monitor
 *     queue; CREATE CQ and data: the window), PRP2 (the window, or a
 *     monitor list page whose every non-zero entry is in the window);
 *   - virtio: the device's descriptor table and avail ring are the
 *     monitor's, its used ring 0 or in the window; every descriptor of
 *     every table the device was given is unused (0), or a buffer inside
 *     the window, or the scratch page with at most 4096 bytes.
 *
 * Seeds (harness/fuzz/corpus/fuzz_bare_shadow/): an NVMe bring-up with an
 * IDENTIFY, a queue pair and a READ through a PRP list; a virtio queue
 * enabled and a two-descriptor chain published.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "bare_fake.h"
#include "fuzz_input.h"
#include "moat/nvme_regs.h"
#include "moat/virtio_regs.h"
#include "../../guest-kernel/bare/nvme_shadow.h"
#include "../../guest-kernel/bare/virtio_shadow.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define W BARE_DOM_VA_WINDOWS
#define WIN_SIZE (2ull << 20)
#define POKE_SPAN (512u << 10)
#define BAR_SIZE 0x4000u
#define TABLES_MAX 64u

static struct dom d;
static uint8_t *bar;

static uint64_t bar64(uint64_t off) { uint64_t v; memcpy(&v, bar + off, 8); return v; }
static uint32_t bar32(uint64_t off) { uint32_t v; memcpy(&v, bar + off, 4); return v; }

static uint64_t address(struct fz *f)
{
    return fz_u8(f) & 1 ? fz_u64(f) : W + (uint64_t)fz_u16(f) * 64;
}

/* Op 1 of both devices: bytes anywhere in the window's first POKE_SPAN. */
static void poke(struct fz *f)
{
    uint64_t off = (uint64_t)fz_u16(f) * 8 % POKE_SPAN;
    fz_bytes(f, fake_iova(&d, W + off), fz_u8(f));
}

/* ---- NVMe ------------------------------------------------------------------------------- */

static void check_list(uint64_t page)
{
    const uint64_t *e = (const uint64_t *)(uintptr_t)page;
    for (unsigned i = 0; i < 512; i++)
        if (e[i] && !fake_in_window(&d, e[i], 4096))
            FZ_FAIL("PRP list entry %u is 0x%lx, outside the window", i, e[i]);
}

static void check_prps(const struct nvme_sqe *e, bool admin, uint64_t *sqs, uint32_t *sizes,
                       unsigned *n)
{
    if (admin && e->opc == NVME_ADM_CREATE_SQ) {
        uint32_t qsize = (e->cdw10 >> 16) + 1u;
        if (!fake_is_monitor(e->prp1, qsize * 64ull))
            FZ_FAIL("CREATE SQ hands the device 0x%lx, not a monitor queue", e->prp1);
        if (*n < TABLES_MAX)
            sqs[*n] = e->prp1, sizes[(*n)++] = qsize;
        return;
    }
    if (admin && e->opc == NVME_ADM_CREATE_CQ) {
        if (!fake_in_window(&d, e->prp1, ((e->cdw10 >> 16) + 1ull) * 16))
            FZ_FAIL("CREATE CQ hands the device 0x%lx, outside the window", e->prp1);
        return;
    }
    if (e->prp1 && !fake_in_window(&d, e->prp1, 4))
        FZ_FAIL("PRP1 0x%lx (opcode 0x%x) is outside the window", e->prp1, e->opc);
    if (e->prp2 && !fake_in_window(&d, e->prp2, 4)) {
        if (!fake_is_monitor(e->prp2, 4096))
            FZ_FAIL("PRP2 0x%lx (opcode 0x%x) is in neither the window nor a list page", e->prp2,
                    e->opc);
        check_list(e->prp2);
    }
}

static void nvme_check(void)
{
    if (!(bar32(NVME_REG_CC) & NVME_CC_EN))
        return;
    uint64_t asq = bar64(NVME_REG_ASQ), acq = bar64(NVME_REG_ACQ);
    uint32_t aqa = bar32(NVME_REG_AQA), sqs_n = (aqa & 0xFFF) + 1u;
    FZ_CHECK(fake_is_monitor(asq, sqs_n * 64ull));
    FZ_CHECK(fake_in_window(&d, acq, (((aqa >> 16) & 0xFFF) + 1ull) * 16));
    uint64_t sqs[TABLES_MAX];
    uint32_t sizes[TABLES_MAX];
    unsigned n = 0;
    for (uint32_t i = 0; i < sqs_n; i++)
        check_prps((const struct nvme_sqe *)(uintptr_t)asq + i, true, sqs, sizes, &n);
    for (unsigned q = 0; q < n; q++)
        for (uint32_t i = 0; i < sizes[q]; i++)
            check_prps((const struct nvme_sqe *)(uintptr_t)sqs[q] + i, false, sqs, sizes, &n);
}

static const uint8_t nvme_ops[] = { NVME_ADM_CREATE_SQ, NVME_ADM_CREATE_CQ, NVME_ADM_IDENTIFY,
                                    NVME_ADM_GET_LOG_PAGE, NVME_ADM_SET_FEATURES,
                                    NVME_ADM_DELETE_SQ, NVME_IO_READ, NVME_IO_WRITE,
                                    NVME_IO_DSM, NVME_ADM_DBBUF_CONFIG };

static void nvme_op(struct nvme_shadow *s, struct fz *f, uint8_t op)
{
    switch (op % 5) {
    case 0: {
        uint64_t off = fz_u16(f) % 0x1090u & ~3ull;
        unsigned width = fz_u8(f) & 1 ? 8 : 4;
        nvme_shadow_mmio(s, &d, width == 8 ? off & ~7ull : off, width, true, fz_u64(f));
        break;
    }
    case 1:
        poke(f);
        break;
    case 2: {
        uint64_t base = W + (uint64_t)fz_u8(f) % 64 * 4096;
        struct nvme_sqe *e = (struct nvme_sqe *)fake_iova(&d, base) + fz_u8(f) % 64;
        uint8_t pick = fz_u8(f);
        *e = (struct nvme_sqe){ .opc = pick < 200 ? nvme_ops[pick % sizeof nvme_ops] : fz_u8(f),
                                .flags = fz_u8(f) & 0xC3 ? 0 : fz_u8(f), .cid = fz_u16(f),
                                .nsid = fz_u8(f) % 3 };
        e->prp1 = address(f);
        e->prp2 = address(f);
        e->cdw10 = fz_u32(f);
        e->cdw11 = fz_u32(f);
        e->cdw12 = fz_u16(f) % 300;
        break;
    }
    case 3: {
        uint32_t q = fz_u8(f) % 17, cq = fz_u8(f) & 1;
        nvme_shadow_mmio(s, &d, NVME_REG_DBS + (2 * q + cq) * 4ull, 4, true, fz_u16(f) % 80);
        break;
    }
    default:
        nvme_shadow_mmio(s, &d, fz_u16(f) % 0x1090u & ~3ull, 4, false, 0);
    }
}

/* ---- virtio ------------------------------------------------------------------------------ */

static struct { uint64_t table; uint32_t size; } tables[TABLES_MAX];
static unsigned n_tables;

static void virtio_check(struct virtio_shadow *v)
{
    uint64_t desc = bar64(VIRTIO_COMMON_Q_DESCLO), avail = bar64(VIRTIO_COMMON_Q_AVAILLO);
    uint64_t used = bar64(VIRTIO_COMMON_Q_USEDLO);
    uint32_t size = bar32(VIRTIO_COMMON_Q_SIZE) & 0xFFFF;
    if (desc) {
        FZ_CHECK(fake_is_monitor(desc, 16));
        FZ_CHECK(fake_is_monitor(avail, 6));
        FZ_CHECK(used && fake_in_window(&d, used, 6));
        bool known = false;
        for (unsigned i = 0; i < n_tables; i++)
            known |= tables[i].table == desc;
        if (!known && n_tables < TABLES_MAX && virtq_size_valid(size))
            tables[n_tables].table = desc, tables[n_tables++].size = size;
    }
    uint64_t scratch = virtio_shadow_scratch(v);
    for (unsigned t = 0; t < n_tables; t++)
        for (uint32_t i = 0; i < tables[t].size; i++) {
            const struct virtq_desc *e = (const struct virtq_desc *)(uintptr_t)tables[t].table + i;
            if (!e->addr && !e->len)
                continue;
            if (e->addr == scratch ? e->len > 4096 : !fake_in_window(&d, e->addr, e->len))
                FZ_FAIL("descriptor %u of table %u: 0x%lx+%u reaches past the window", i, t,
                        e->addr, e->len);
            if (e->flags & VIRTQ_DESC_F_INDIRECT)
                FZ_FAIL("descriptor %u of table %u is indirect", i, t);
        }
}

static void virtio_op(struct virtio_shadow *v, struct fz *f, uint8_t op, uint16_t *avail_idx)
{
    switch (op % 5) {
    case 0: {
        uint64_t off = fz_u16(f) % 0x40u;
        unsigned width = 1u << (fz_u8(f) % 3);
        virtio_shadow_mmio(v, &d, 4, off & ~(uint64_t)(width - 1), width, true, fz_u32(f));
        break;
    }
    case 1:
        poke(f);
        break;
    case 2: {
        struct virtq_desc *e = (struct virtq_desc *)fake_iova(&d, W) + fz_u8(f) % 64;
        e->addr = address(f);
        e->len = fz_u16(f);
        e->flags = fz_u8(f) & 7;
        e->next = fz_u8(f) % 70;
        break;
    }
    case 3: {
        uint16_t *ring = fake_iova(&d, W + 0x1000);
        ring[2 + *avail_idx % 64] = fz_u8(f) % 70;
        *avail_idx = (uint16_t)(*avail_idx + (fz_u8(f) % 4));
        ring[1] = *avail_idx;
        virtio_shadow_mmio(v, &d, 4, 0x3000, 2, true, fz_u8(f) % 4);
        break;
    }
    default:
        virtio_shadow_mmio(v, &d, 4, fz_u16(f) % 0x40u, 1, false, 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz f = fz_init(data, size);
    static void *window;
    if (!window)
        window = aligned_alloc(2u << 20, WIN_SIZE);
    fake_dom_on(&d, window, WIN_SIZE);
    bar = aligned_alloc(4096, BAR_SIZE);
    memset(bar, 0, BAR_SIZE);
    uint8_t mode = fz_u8(&f);
    n_tables = 0;
    if (mode & 1) {
        struct virtio_layout l = { .modern = true, .common_bar = 4, .common_len = VIRTIO_COMMON_SIZE,
                                   .notify_bar = 4, .notify_off = 0x3000, .notify_len = 0x100,
                                   .notify_mult = 4, .isr_bar = 4, .isr_off = 0x1000, .isr_len = 4,
                                   .device_bar = 4, .device_off = 0x2000, .device_len = 0x100 };
        l.bar_base[4] = (uint64_t)(uintptr_t)bar;
        struct virtio_shadow *v = virtio_shadow_fixed(&l);
        FZ_CHECK(v);
        uint16_t avail_idx = 0;
        for (unsigned n = 0; fz_left(&f) && n < 512; n++) {
            virtio_op(v, &f, fz_u8(&f), &avail_idx);
            if (d.state == DOM_DEAD)
                break;              /* the monitor ended the domain: nothing more reaches it */
            virtio_check(v);
        }
    } else {
        uint8_t lbads[NVME_SHADOW_NS + 1] = { [1] = (uint8_t)(mode & 2 ? 12 : 9) };
        struct nvme_shadow *s = nvme_shadow_fixed(bar, 0, 64, mode & 4 ? 16u << 10 : 128u << 10,
                                                  lbads);
        for (unsigned n = 0; fz_left(&f) && n < 512; n++) {
            nvme_op(s, &f, fz_u8(&f));
            if (d.state == DOM_DEAD)
                break;
            nvme_check();
        }
    }
    fake_reset(&d);
    free(bar);
    return 0;
}
