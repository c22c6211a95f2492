/*
 * fuzz_virtio_net — the virtio-net device model (devmodel/virtio_net.c,
 * virtio_net_pci.c, virtio_net_io.c) driven like a hostile driver: modern
 * common config / ISR / device config / notify registers (BAR4), the
 * MSI-X table (BAR1), or the legacy I/O block (BAR0); feature
 * negotiation, queue setup, status writes including reset; transmit
 * chains the input writes into a real broker DMA window (vmm/broker.c,
 * broker_grant) and frames a switch port sends to the device (receive).
 *
 * Fixture (process-wide, fully reset per input): one PCI bus with a real
 * broker (one 256 KiB window, mapped once by the target to play the
 * driver), the process switch (devmodel/netback.c, no gateway) with a
 * peer port "fz.peer", and two devices created once: a modern "net0" and
 * a legacy "net1" (qsize=256, poll_us=0). Per input: pci_bus_reset (every
 * function and model back to power-on, worker stopped), memory and I/O
 * decode and bus mastering on, the window zeroed, the link up.
 *
 * The worker thread: transmit runs on the device's worker. After every op
 * that may have woken it the target makes it finish deterministically
 * with the model's own primitives (virtio_net_internal.h): under the
 * device lock, vnet_worker_stop (join), drain the eventfd, kick once,
 * vnet_worker_start; the new worker processes everything, then wakes for
 * the one kick (worker_wakeups counts it, under the lock) and passes
 * again; the target spins (sched_yield, no sleep) until it counted that
 * wakeup, then takes the device lock, which the worker holds until it
 * sleeps. The worker is then asleep with no kick pending, so nothing runs
 * concurrently with the next op. The model kicks its worker only on a
 * notify (counted in notifies) and when DRIVER_OK is newly set, so the
 * target syncs only after an op that notified or changed the status. Receive is synchronous (netback_send on
 * the peer returns after the device wrote the buffers).
 *
 * Input: byte 0 bit 0 picks the device (legacy when set); then ops until
 * the input ends, each an opcode byte (op % OP_COUNT) with operands (see
 * the switch): raw register access, a register write from a table of the
 * transport's registers, a full bring-up (features, queue size), poke
 * window bytes, post a TX chain (header + frame, one or two descriptors),
 * post an RX buffer, write a raw descriptor, set an avail idx, kick a
 * queue, the peer sends a frame, read ISR / device config, link up/down,
 * MSI-X on, bus reset.
 *
 * Checks beyond the sanitizers (abort() on violation), after every op:
 *   - nothing stays mapped while the device is idle: the window's
 *     in-flight mapping count is 0 (the model maps per batch);
 *   - the device touches only the window (the broker refuses the rest;
 *     ASan guards the window's memory) and never fail-stops the domain
 *     (no BUS_VIOLATION);
 *   - an MSI carries a valid message of an unmasked entry of an enabled,
 *     unmasked MSI-X function;
 *   - every frame the switch delivers to the peer is 14..1514 bytes, and
 *     the peer never gets more frames than the devices transmitted;
 *   - receive: rx_bytes grows by no more than the bytes the peer sent.
 *
 * Seeds (harness/fuzz/corpus/fuzz_virtio_net/): modern and legacy
 * bring-up with TX chains kicked and RX buffers filled by peer frames;
 * MSI-X on; a malformed TX chain (DEVICE_NEEDS_RESET) then reset and
 * bring-up again; hostile register accesses.
 */
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "broker.h"
#include "fuzz_device.h"
#include "fuzz_input.h"
#include "log.h"
#include "moat/layout.h"
#include "moat/pci_regs.h"
#include "moat/virtio_regs.h"
#include "netback.h"
#include "pci.h"
#include "virtio_net.h"
#include "virtio_net_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DOM        9u
#define WIN        MOAT_GPA_DMA_BASE
#define WIN_SIZE   0x40000ull           /* 256 KiB */
#define RING(qi)   (WIN + (uint64_t)(qi) * 0x4000u)
#define BUF_BASE   (WIN + 0x10000u)
#define BUF_SIZE   0x800u
#define BUFS       ((WIN_SIZE - 0x10000u) / BUF_SIZE)
#define QSIZE      256u

enum {
    OP_REG_RAW, OP_REG_WRITE, OP_BRINGUP, OP_POKE, OP_TX_POST, OP_RX_POST, OP_DESC,
    OP_AVAIL_IDX, OP_KICK, OP_PEER_SEND, OP_READ, OP_LINK, OP_MSIX_ON, OP_RESET,
    OP_COUNT
};

#define fail() FZ_FAIL("see the line")

static struct broker br;
static struct dma_handle win_h;
static struct dma_mapping win_map;
static uint8_t *mem;
static struct pci_bus bus;
static struct pci_func *devs[2];
static struct netback_port *peer;
static const uint8_t peer_mac[6] = { 0x02, 0, 0, 0, 0, 0x77 };
static _Atomic uint64_t peer_frames;

/* The driver's view of the two queues of the device under test. */
struct drv_q {
    uint32_t size;
    uint64_t desc, avail, used;
    uint16_t avail_idx, next_desc;
    uint32_t next_buf;
};
static struct drv_q dq[2];
static struct pci_func *f;
static struct vnet *v;
static bool legacy;
static uint64_t features;

/* ---- platform and peer ---------------------------------------------------- */

static bool plat_msi(void *ctx, uint64_t addr, uint32_t data)
{
    (void)ctx;
    if ((addr & ~0xFF000ull) != PCI_MSI_ADDR_BASE || (data & ~0xFFu) || (data & 0xFFu) < 16)
        fail();
    if (!fz_msi_from_unmasked_entry(&bus, addr, data))
        fail();
    return true;
}

static void plat_intx(void *ctx, uint32_t gsi, bool level)
{
    (void)ctx;
    (void)gsi;
    (void)level;
}

static const struct pci_platform_ops plat = {
    .msi = plat_msi, .intx = plat_intx, .refused = fz_ignore_refused,
    .dma_refused = fz_ignore_dma_refused,
};

static void peer_rx(void *ctx, const void *frame, size_t len)
{
    (void)ctx;
    (void)frame;
    if (len < ETH_HDR_LEN || len > ETH_FRAME_MAX)
        fail();
    atomic_fetch_add(&peer_frames, 1);
}

static void fixture(void)
{
    char err[256];
    struct netback_config cfg;
    log_set_quiet(true);        /* ports join the switch once, not per input */
    netback_config_default(&cfg);
    cfg.no_gateway = true;
    if (!netback_setup(&cfg, err, sizeof err))
        goto bad;
    peer = netback_port_add(netback_get(), "fz.peer", peer_mac, peer_rx, NULL, err, sizeof err);
    if (!peer)
        goto bad;
    broker_init(&br, 64ull << 20, NULL);
    if (!broker_grant(&br, DOM, WIN, WIN_SIZE, DMA_BIDIR, &win_h, err, sizeof err))
        goto bad;
    mem = broker_dma_map(&br, DOM, "fuzz", WIN, WIN_SIZE, DMA_BIDIR, &win_map);
    if (!mem)
        goto bad;
    pci_bus_init(&bus, "fz", DOM, &br, &plat);
    if (!virtio_net_create(&bus, "net0", 17, "qsize=256:poll_us=0", err, sizeof err) ||
        !virtio_net_create(&bus, "net1", 18, "legacy=1:qsize=256:poll_us=0", err, sizeof err))
        goto bad;
    devs[0] = bus.slot[1];
    devs[1] = bus.slot[2];
    return;
bad:
    fprintf(stderr, "fuzz_virtio_net: fixture: %s\n", err);
    abort();
}

/* ---- the worker ------------------------------------------------------------- */

/* Let the worker finish everything and go to sleep with no kick pending
 * (see the header). */
static void sync_worker(void)
{
    pthread_mutex_lock(&v->lock);
    if (!v->w.running) {
        pthread_mutex_unlock(&v->lock);
        return;
    }
    vnet_worker_stop(v);
    uint64_t n;
    while (read(v->efd, &n, sizeof n) > 0)
        ;                               /* the eventfd is non-blocking */
    uint64_t before = atomic_load(&v->st.worker_wakeups);
    vnet_worker_kick(v);
    bool ok = vnet_worker_start(v);
    pthread_mutex_unlock(&v->lock);
    if (!ok)
        return;
    while (atomic_load(&v->st.worker_wakeups) == before)
        sched_yield();
    pthread_mutex_lock(&v->lock);       /* held by the worker until it sleeps */
    pthread_mutex_unlock(&v->lock);
}

/* ---- registers ---------------------------------------------------------------- */

static uint64_t bar_io(unsigned bar, uint64_t off, uint32_t size, bool write, uint64_t val)
{
    const struct pci_bar *b = &f->bar[bar];
    struct bus_access a = { .addr = b->base + off, .size = size, .is_write = write, .value = val };
    enum bus_result r = b->kind == PCI_BAR_IOPORT ? pci_pio_access(&bus, &a)
                                                  : pci_mmio_access(&bus, &a);
    if (r == BUS_VIOLATION)
        fail();
    return a.value;
}

static void reg_wr(uint64_t off, uint32_t size, uint64_t val)
{
    if (legacy)
        bar_io(VNET_BAR_LEGACY, off, size, true, val);
    else
        bar_io(VNET_BAR_MODERN, VNET_COMMON_OFF + off, size, true, val);
}

static uint64_t reg_rd(uint64_t off, uint32_t size)
{
    return legacy ? bar_io(VNET_BAR_LEGACY, off, size, false, 0)
                  : bar_io(VNET_BAR_MODERN, VNET_COMMON_OFF + off, size, false, 0);
}

static const struct { uint8_t off, size; } modern_regs[] = {
    { VIRTIO_COMMON_DFSELECT, 4 }, { VIRTIO_COMMON_GFSELECT, 4 }, { VIRTIO_COMMON_GF, 4 },
    { VIRTIO_COMMON_MSIX, 2 }, { VIRTIO_COMMON_STATUS, 1 }, { VIRTIO_COMMON_Q_SELECT, 2 },
    { VIRTIO_COMMON_Q_SIZE, 2 }, { VIRTIO_COMMON_Q_MSIX, 2 }, { VIRTIO_COMMON_Q_ENABLE, 2 },
    { VIRTIO_COMMON_Q_DESCLO, 4 }, { VIRTIO_COMMON_Q_DESCHI, 4 }, { VIRTIO_COMMON_Q_AVAILLO, 4 },
    { VIRTIO_COMMON_Q_AVAILHI, 4 }, { VIRTIO_COMMON_Q_USEDLO, 4 }, { VIRTIO_COMMON_Q_USEDHI, 4 },
    { VIRTIO_COMMON_DF, 4 }, { VIRTIO_COMMON_NUMQ, 2 },
};
static const struct { uint8_t off, size; } legacy_regs[] = {
    { VIRTIO_LEGACY_GUEST_FEATURES, 4 }, { VIRTIO_LEGACY_QUEUE_PFN, 4 },
    { VIRTIO_LEGACY_QUEUE_SEL, 2 }, { VIRTIO_LEGACY_QUEUE_NOTIFY, 2 },
    { VIRTIO_LEGACY_STATUS, 1 }, { VIRTIO_LEGACY_HOST_FEATURES, 4 },
    { VIRTIO_LEGACY_QUEUE_NUM, 2 }, { VIRTIO_LEGACY_CONFIG, 2 },
};

/* ---- driver side ----------------------------------------------------------------- */

static void *at(uint64_t iova, uint64_t len)
{
    if (iova < WIN || iova - WIN > WIN_SIZE || len > WIN_SIZE - (iova - WIN))
        return NULL;
    return mem + (iova - WIN);
}

static void ring_init(unsigned qi, uint32_t size)
{
    dq[qi] = (struct drv_q){ .size = size, .desc = RING(qi),
                             .avail = RING(qi) + virtq_legacy_avail_off(size),
                             .used = RING(qi) + virtq_legacy_used_off(size) };
    memset(at(RING(qi), 0x4000), 0, 0x4000);
}

static void bringup(struct fz *in)
{
    uint32_t feats = fz_u32(in);
    uint32_t size = 1u << (fz_u8(in) % 9u);         /* 1..256 */
    uint8_t st = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER;
    reg_wr(legacy ? VIRTIO_LEGACY_STATUS : VIRTIO_COMMON_STATUS, 1, 0);
    reg_wr(legacy ? VIRTIO_LEGACY_STATUS : VIRTIO_COMMON_STATUS, 1, st);
    if (legacy) {
        reg_wr(VIRTIO_LEGACY_GUEST_FEATURES, 4, feats);
        features = feats;
        for (unsigned qi = 0; qi < 2; qi++) {
            reg_wr(VIRTIO_LEGACY_QUEUE_SEL, 2, qi);
            ring_init(qi, (uint32_t)reg_rd(VIRTIO_LEGACY_QUEUE_NUM, 2));
            reg_wr(VIRTIO_LEGACY_QUEUE_PFN, 4, RING(qi) >> VIRTIO_LEGACY_PFN_SHIFT);
        }
    } else {
        features = feats | VIRTIO_BIT(VIRTIO_F_VERSION_1);
        for (uint32_t sel = 0; sel < 2; sel++) {
            reg_wr(VIRTIO_COMMON_GFSELECT, 4, sel);
            reg_wr(VIRTIO_COMMON_GF, 4, (uint32_t)(features >> (32 * sel)));
        }
        st |= VIRTIO_STATUS_FEATURES_OK;
        reg_wr(VIRTIO_COMMON_STATUS, 1, st);
        for (unsigned qi = 0; qi < 2; qi++) {
            ring_init(qi, size);
            reg_wr(VIRTIO_COMMON_Q_SELECT, 2, qi);
            reg_wr(VIRTIO_COMMON_Q_SIZE, 2, size);
            reg_wr(VIRTIO_COMMON_Q_DESCLO, 4, (uint32_t)dq[qi].desc);
            reg_wr(VIRTIO_COMMON_Q_DESCHI, 4, (uint32_t)(dq[qi].desc >> 32));
            reg_wr(VIRTIO_COMMON_Q_AVAILLO, 4, (uint32_t)dq[qi].avail);
            reg_wr(VIRTIO_COMMON_Q_AVAILHI, 4, (uint32_t)(dq[qi].avail >> 32));
            reg_wr(VIRTIO_COMMON_Q_USEDLO, 4, (uint32_t)dq[qi].used);
            reg_wr(VIRTIO_COMMON_Q_USEDHI, 4, (uint32_t)(dq[qi].used >> 32));
            reg_wr(VIRTIO_COMMON_Q_ENABLE, 2, 1);
        }
    }
    reg_wr(legacy ? VIRTIO_LEGACY_STATUS : VIRTIO_COMMON_STATUS, 1, st | VIRTIO_STATUS_DRIVER_OK);
}

static void desc_put(unsigned qi, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
                     uint16_t next)
{
    if (!dq[qi].size)
        return;
    struct virtq_desc d = { .addr = addr, .len = len, .flags = flags, .next = next };
    void *p = at(dq[qi].desc + 16ull * (i % dq[qi].size), sizeof d);
    if (p)
        memcpy(p, &d, sizeof d);
}

static void publish(unsigned qi, uint16_t head)
{
    struct drv_q *q = &dq[qi];
    if (!q->size)
        return;
    uint16_t *ring = at(q->avail + VIRTQ_AVAIL_RING(q->avail_idx & (q->size - 1u)), 2);
    uint16_t *idx = at(q->avail + VIRTQ_AVAIL_IDX, 2);
    if (!ring || !idx)
        return;
    *ring = head;
    q->avail_idx++;
    __atomic_store_n(idx, q->avail_idx, __ATOMIC_RELEASE);
}

static uint16_t alloc_desc(unsigned qi)
{
    struct drv_q *q = &dq[qi];
    uint16_t d = q->size ? (uint16_t)(q->next_desc % q->size) : 0;
    q->next_desc++;
    return d;
}

static uint32_t next_buf;

static uint64_t alloc_buf(void)
{
    return BUF_BASE + (uint64_t)(next_buf++ % BUFS) * BUF_SIZE;
}

static void kick(unsigned qi)
{
    if (legacy)
        bar_io(VNET_BAR_LEGACY, VIRTIO_LEGACY_QUEUE_NOTIFY, 2, true, qi);
    else
        bar_io(VNET_BAR_MODERN, VNET_NOTIFY_OFF + VNET_NOTIFY_MULT * (qi & 1u), 2, true, qi);
}

static void frame_fill(struct fz *in, uint8_t *fr, size_t len, uint8_t dst_sel, const uint8_t *mac)
{
    fz_bytes(in, fr, len);
    if (len >= ETH_HDR_LEN) {
        static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
        if (dst_sel % 3 == 0)
            memcpy(fr, mac, 6);
        else if (dst_sel % 3 == 1)
            memcpy(fr, bcast, 6);
    }
}

/* ---- invariants --------------------------------------------------------------------- */

static void check_idle(void)
{
    struct dma_window w;
    if (!broker_window_peek(&br, win_h.window, &w) || w.in_flight != 1)
        fail();                 /* 1: the target's own mapping of the window */
}

static void stats(struct virtio_net_stats *s)
{
    if (!virtio_net_stats_get(f, s))
        fail();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!mem)
        fixture();
    struct fz in = fz_init(data, size);
    legacy = fz_u8(&in) & 1;
    f = devs[legacy];
    v = f->dev;
    pci_bus_reset(&bus);
    for (unsigned i = 0; i < 2; i++)
        if (!pci_cfg_write(devs[i], PCI_COMMAND, 2, PCI_CMD_IO | PCI_CMD_MEM | PCI_CMD_MASTER))
            fail();
    memset(mem, 0, WIN_SIZE);
    memset(dq, 0, sizeof dq);
    next_buf = 0;
    features = 0;
    virtio_net_set_link(devs[0], true);
    virtio_net_set_link(devs[1], true);
    struct virtio_net_stats s0, s1, o0, o1;
    stats(&s0);
    if (!virtio_net_stats_get(devs[!legacy], &o0))
        fail();
    uint64_t peer0 = atomic_load(&peer_frames), sent_bytes = 0;

    for (unsigned ops = 0; fz_left(&in) && ops < 128; ops++) {
        /* The model kicks its worker only on a notify (counted) and when
         * DRIVER_OK is newly set (a status change): sync only after those. */
        uint64_t notifies = atomic_load(&v->st.notifies);
        pthread_mutex_lock(&v->lock);
        bool was_ready = v->ready;
        uint8_t was_status = v->status;
        pthread_mutex_unlock(&v->lock);
        switch (fz_u8(&in) % OP_COUNT) {
        case OP_REG_RAW: {
            uint8_t sel = fz_u8(&in);
            uint16_t off = fz_u16(&in);
            static const uint32_t sizes[4] = { 1, 2, 4, 8 };
            uint32_t sz = sizes[(sel >> 1) & 3];
            bool write = sel & 8;
            uint32_t val = fz_u32(&in);
            unsigned bar = legacy ? VNET_BAR_LEGACY : (sel & 1 ? VNET_BAR_MSIX : VNET_BAR_MODERN);
            bar_io(bar, off % f->bar[bar].size, sz, write, val);
            break;
        }
        case OP_REG_WRITE: {
            uint8_t r = fz_u8(&in);
            uint32_t val = fz_u32(&in);
            if (legacy) {
                r %= sizeof legacy_regs / sizeof legacy_regs[0];
                reg_wr(legacy_regs[r].off, legacy_regs[r].size, val);
            } else {
                r %= sizeof modern_regs / sizeof modern_regs[0];
                reg_wr(modern_regs[r].off, modern_regs[r].size, val);
            }
            break;
        }
        case OP_BRINGUP:
            bringup(&in);
            break;
        case OP_POKE: {
            uint32_t off = fz_u32(&in) % WIN_SIZE;
            uint8_t buf[256];
            size_t n = fz_u8(&in);
            fz_bytes(&in, buf, n);
            if (n > WIN_SIZE - off)
                n = WIN_SIZE - off;
            memcpy(mem + off, buf, n);
            break;
        }
        case OP_TX_POST: {
            /* Header + frame, in one descriptor or two. */
            uint8_t sel = fz_u8(&in);
            uint32_t hl = sel & 1 ? fz_u8(&in) % 16u : virtio_net_hdr_len(features);
            size_t len = fz_u16(&in) % (ETH_FRAME_MAX + 8u);
            uint8_t fr[ETH_FRAME_MAX + 8];
            frame_fill(&in, fr, len, sel >> 2, peer_mac);
            if (len >= ETH_HDR_LEN && !(sel & 0x80)) {
                uint8_t mac[6];
                virtio_net_mac(f, mac);
                memcpy(fr + 6, mac, 6);     /* the device's own source MAC */
            }
            uint64_t b0 = alloc_buf(), b1 = alloc_buf();
            uint16_t d0 = alloc_desc(1);
            if (sel & 2) {
                uint16_t d1 = alloc_desc(1);
                memset(at(b0, BUF_SIZE), 0, hl);
                memcpy(at(b1, BUF_SIZE), fr, len);
                desc_put(1, d0, b0, hl, VIRTQ_DESC_F_NEXT, d1);
                desc_put(1, d1, b1, (uint32_t)len, 0, 0);
            } else {
                uint8_t *p = at(b0, BUF_SIZE);
                if (hl + len > BUF_SIZE)
                    len = BUF_SIZE - hl;
                memset(p, 0, hl);
                memcpy(p + hl, fr, len);
                desc_put(1, d0, b0, (uint32_t)(hl + len), 0, 0);
            }
            publish(1, d0);
            break;
        }
        case OP_RX_POST: {
            uint32_t len = fz_u16(&in) % (BUF_SIZE + 1u);
            uint16_t d = alloc_desc(0);
            desc_put(0, d, alloc_buf(), len, VIRTQ_DESC_F_WRITE, 0);
            publish(0, d);
            break;
        }
        case OP_DESC: {
            uint8_t sel = fz_u8(&in);
            unsigned qi = sel & 1;
            uint16_t i = fz_u16(&in);
            uint64_t addr = sel & 2 ? fz_u64(&in) : WIN + fz_u32(&in) % WIN_SIZE;
            uint32_t len = sel & 4 ? fz_u32(&in) : fz_u16(&in);
            uint16_t flags = fz_u8(&in) & 7u;
            uint16_t next = fz_u16(&in);
            desc_put(qi, i, addr, len, flags, next);
            if (sel & 8)
                publish(qi, i);
            break;
        }
        case OP_AVAIL_IDX: {
            uint8_t qi = fz_u8(&in) & 1;
            uint16_t idx = fz_u16(&in);
            uint16_t *p = dq[qi].size ? at(dq[qi].avail + VIRTQ_AVAIL_IDX, 2) : NULL;
            if (p) {
                dq[qi].avail_idx = idx;
                __atomic_store_n(p, idx, __ATOMIC_RELEASE);
            }
            break;
        }
        case OP_KICK:
            kick(fz_u8(&in) & 3u);
            break;
        case OP_PEER_SEND: {
            uint8_t sel = fz_u8(&in);
            size_t len = ETH_HDR_LEN + fz_u16(&in) % (ETH_FRAME_MAX - ETH_HDR_LEN + 1u);
            uint8_t fr[ETH_FRAME_MAX], mac[6];
            virtio_net_mac(f, mac);
            frame_fill(&in, fr, len, sel, mac);
            memcpy(fr + 6, peer_mac, 6);
            if (netback_send(peer, fr, len))
                sent_bytes += len;
            break;
        }
        case OP_READ: {
            uint8_t sel = fz_u8(&in);
            if (legacy)
                bar_io(VNET_BAR_LEGACY, sel & 1 ? VIRTIO_LEGACY_ISR : VIRTIO_LEGACY_CONFIG + (sel >> 1) % 12u,
                       1, false, 0);
            else
                bar_io(VNET_BAR_MODERN, sel & 1 ? VNET_ISR_OFF : VNET_DEVICE_OFF + (sel >> 1) % 12u, 1,
                       false, 0);
            break;
        }
        case OP_LINK:
            virtio_net_set_link(f, fz_u8(&in) & 1);
            break;
        case OP_MSIX_ON: {
            if (legacy)
                break;
            for (unsigned n = 0; n < VNET_MSIX_VECTORS; n++) {
                uint64_t off = VNET_MSIX_TABLE_OFF + n * PCI_MSIX_ENTRY_SIZE;
                bar_io(VNET_BAR_MSIX, off + PCI_MSIX_ENTRY_ADDR_LO, 4, true, PCI_MSI_ADDR_BASE);
                bar_io(VNET_BAR_MSIX, off + PCI_MSIX_ENTRY_DATA, 4, true, 0x40 + n);
                bar_io(VNET_BAR_MSIX, off + PCI_MSIX_ENTRY_CTRL, 4, true, 0);
            }
            uint16_t ctl = (uint16_t)pci_cfg_read(f, f->msix.cap + PCI_MSIX_CTRL, 2);
            pci_cfg_write(f, f->msix.cap + PCI_MSIX_CTRL, 2, ctl | PCI_MSIX_CTRL_ENABLE);
            reg_wr(VIRTIO_COMMON_MSIX, 2, 0);
            for (unsigned qi = 0; qi < 2; qi++) {
                reg_wr(VIRTIO_COMMON_Q_SELECT, 2, qi);
                reg_wr(VIRTIO_COMMON_Q_MSIX, 2, qi + 1);
            }
            break;
        }
        case OP_RESET:
            pci_bus_reset(&bus);
            pci_cfg_write(f, PCI_COMMAND, 2, PCI_CMD_IO | PCI_CMD_MEM | PCI_CMD_MASTER);
            break;
        default:
            break;
        }
        pthread_mutex_lock(&v->lock);
        bool went_live = was_ready != v->ready || was_status != v->status;
        pthread_mutex_unlock(&v->lock);
        if (went_live || atomic_load(&v->st.notifies) != notifies)
            sync_worker();
        check_idle();
        stats(&s1);
        if (!virtio_net_stats_get(devs[!legacy], &o1))
            fail();
        if (atomic_load(&peer_frames) - peer0 >
            (s1.tx_frames - s0.tx_frames) + (o1.tx_frames - o0.tx_frames))
            fail();             /* the peer got a frame nobody transmitted */
        if (s1.rx_bytes - s0.rx_bytes > sent_bytes)
            fail();
    }
    sync_worker();
    pci_bus_reset(&bus);        /* stops the worker */
    check_idle();
    return 0;
}
