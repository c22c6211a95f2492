/*
 * vnet_fixture.h — the "guest" the virtio-net model suite drives: a PCI
 * bus with a fake platform (MSI, INTx, refusals, ioeventfds recorded), a
 * real DMA broker with one 8 MiB window the test reads and writes
 * directly, the process switch (no gateway) with a test port "test.peer",
 * and helpers that act like a virtio driver over either transport
 * (registers, rings, kicks).
 *
 * Waiting: transmit completions come from the device's worker; they are
 * awaited by polling the used index or the test port against a deadline;
 * a timeout fails with what did not arrive. Receive is synchronous: the
 * test port's netback_send returns after the device wrote the buffers.
 */
#ifndef MOAT_VNET_FIXTURE_H
#define MOAT_VNET_FIXTURE_H

#include <criterion/criterion.h>
#include <pthread.h>
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
#include "moat/pci_regs.h"
#include "moat/virtio_regs.h"
#include "netback.h"
#include "pci.h"
#include "virtio_net.h"

#define VX_DOM        7u
#define VX_GSI        17u
#define VX_WIN        MOAT_GPA_DMA_BASE
#define VX_WIN_SIZE   (8ull << 20)
#define VX_RING(q)    (VX_WIN + (uint64_t)(q) * 0x100000)      /* 1 MiB per queue */
#define VX_RXBUF      (VX_WIN + 0x200000)
#define VX_TXBUF      (VX_WIN + 0x300000)
#define VX_BUF_SIZE   0x800u
#define VX_OUTSIDE    (VX_WIN + VX_WIN_SIZE + 0x100000)        /* in no window */
#define VX_MSI_DATA0  0x40u
#define VX_WAIT_MS    2000u
#define VX_RX         VIRTIO_NET_Q_RX
#define VX_TX         VIRTIO_NET_Q_TX
#define VX_MODERN_FEATURES (VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_NET_F_MAC))

static const uint8_t vx_peer_mac[6] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x01 };

struct vx_queue {
    uint32_t size;
    uint64_t desc, avail, used;
    uint16_t avail_idx;         /* the driver's */
    uint16_t used_seen;         /* used entries the test consumed */
    uint16_t next_desc;
    uint32_t next_buf;
};

struct vx_state {
    struct broker br;
    struct pci_bus bus;
    struct pci_func *f;
    struct dma_mapping win_map;
    uint8_t *mem;
    bool legacy;
    uint64_t features;
    uint32_t hdr_len;
    struct vx_queue q[2];
    struct fake_platform p;     /* worker threads call it too */
    /* the test port */
    struct netback_port *peer;
    pthread_mutex_t peer_mu;
    uint8_t peer_frame[NETBACK_FRAME_MAX];
    size_t peer_len;
    _Atomic int peer_frames;
};

static struct vx_state vx;






static void vx_peer_rx(void *ctx, const void *frame, size_t len)
{
    (void)ctx;
    pthread_mutex_lock(&vx.peer_mu);
    memcpy(vx.peer_frame, frame, len);
    vx.peer_len = len;
    pthread_mutex_unlock(&vx.peer_mu);
    atomic_fetch_add(&vx.peer_frames, 1);
}

static inline void *vx_ptr(uint64_t iova)
{
    cr_assert(iova >= VX_WIN && iova < VX_WIN + VX_WIN_SIZE, "IOVA %#lx outside the test window",
              (unsigned long)iova);
    return vx.mem + (iova - VX_WIN);
}

static inline uint64_t vx_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Bus + broker + switch (no gateway) + test port + a virtio-net "net0"
 * with opts; memory and I/O decode and bus mastering on. */
static inline void vx_setup(const char *opts)
{
    char err[256];
    struct dma_handle h;
    struct netback_config cfg;
    memset(&vx, 0, sizeof vx);
    pthread_mutex_init(&vx.peer_mu, NULL);
    netback_config_default(&cfg);
    cfg.no_gateway = true;
    cr_assert(netback_setup(&cfg, err, sizeof err), "netback_setup failed: %s", err);
    vx.peer = netback_port_add(netback_get(), "test.peer", vx_peer_mac, vx_peer_rx, NULL, err,
                               sizeof err);
    cr_assert_not_null(vx.peer, "cannot add the test port: %s", err);
    broker_init(&vx.br, 64ull << 20, NULL);
    cr_assert(broker_grant(&vx.br, VX_DOM, VX_WIN, VX_WIN_SIZE, DMA_BIDIR, &h, err, sizeof err),
              "window grant failed: %s", err);
    fake_platform_init(&vx.p, VX_MSI_DATA0, VNET_MSIX_VECTORS);
    struct pci_platform_ops plat = fake_platform_ops(&vx.p);
    pci_bus_init(&vx.bus, "vdom", VX_DOM, &vx.br, &plat);
    cr_assert(virtio_net_create(&vx.bus, "net0", VX_GSI, opts, err, sizeof err),
              "virtio_net_create(%s) failed: %s", opts, err);
    vx.f = vx.bus.slot[1];
    vx.legacy = vx.f->bar[VNET_BAR_LEGACY].kind == PCI_BAR_IOPORT;
    cr_assert(pci_cfg_write(vx.f, PCI_COMMAND, 2, PCI_CMD_IO | PCI_CMD_MEM | PCI_CMD_MASTER),
              "command register write refused");
    vx.mem = broker_dma_map(&vx.br, VX_DOM, "test", VX_WIN, VX_WIN_SIZE, DMA_BIDIR, &vx.win_map);
    cr_assert_not_null(vx.mem, "the test cannot map its own window");
}

static inline void vx_teardown(void)
{
    if (!vx.f)
        return;
    pci_bus_fini(&vx.bus);
    netback_port_remove(vx.peer);
    netback_shutdown();
    broker_dma_unmap(&vx.br, &vx.win_map);
    broker_fini(&vx.br);
    pthread_mutex_destroy(&vx.peer_mu);
    vx.f = NULL;
}

static inline struct virtio_net_stats vx_stats(void)
{
    struct virtio_net_stats s;
    cr_assert(virtio_net_stats_get(vx.f, &s), "virtio_net_stats_get refused the device");
    return s;
}

/* Wait until cond holds (s re-read each round), else fail with the message. */
#define VX_WAIT_STATS(s, cond, ...)                                           \
    do {                                                                      \
        uint64_t vx_end_ = vx_now_ms() + VX_WAIT_MS;                          \
        for (s = vx_stats(); !(cond); s = vx_stats()) {                       \
            cr_assert(vx_now_ms() < vx_end_, __VA_ARGS__);                    \
            sched_yield();                                                    \
        }                                                                     \
    } while (0)

/* ---- register access ------------------------------------------------------ */

/* An access to BAR bar at off; returns the bus result, *v in/out. */
static inline enum bus_result vx_bar(unsigned bar, uint64_t off, uint32_t size, bool write,
                                     uint64_t *v)
{
    struct bus_access a = { .addr = vx.f->bar[bar].base + off, .size = size, .is_write = write,
                            .value = write ? *v : 0x5A5A5A5A5A5A5A5Aull };
    enum bus_result r = vx.f->bar[bar].kind == PCI_BAR_IOPORT ? pci_pio_access(&vx.bus, &a)
                                                              : pci_mmio_access(&vx.bus, &a);
    if (!write)
        *v = a.value;
    return r;
}

/* A register read/write that must be accepted (not refused). */
static inline uint64_t vx_rd(unsigned bar, uint64_t off, uint32_t size)
{
    uint64_t v = 0;
    int before = atomic_load(&vx.p.refused);
    cr_assert_eq(vx_bar(bar, off, size, false, &v), BUS_OK, "BAR%u read at %#lx not handled", bar,
                 (unsigned long)off);
    cr_assert_eq(atomic_load(&vx.p.refused), before, "BAR%u %u-byte read at %#lx refused: %s", bar,
                 size, (unsigned long)off, vx.p.last_refused);
    return v;
}

static inline void vx_wr(unsigned bar, uint64_t off, uint32_t size, uint64_t v)
{
    int before = atomic_load(&vx.p.refused);
    cr_assert_eq(vx_bar(bar, off, size, true, &v), BUS_OK, "BAR%u write at %#lx not handled", bar,
                 (unsigned long)off);
    cr_assert_eq(atomic_load(&vx.p.refused), before, "BAR%u %u-byte write at %#lx refused: %s", bar,
                 size, (unsigned long)off, vx.p.last_refused);
}

static inline uint64_t cm_rd(uint64_t off, uint32_t size)
{
    return vx_rd(VNET_BAR_MODERN, VNET_COMMON_OFF + off, size);
}

static inline void cm_wr(uint64_t off, uint32_t size, uint64_t v)
{
    vx_wr(VNET_BAR_MODERN, VNET_COMMON_OFF + off, size, v);
}

static inline uint64_t lg_rd(uint64_t off, uint32_t size)
{
    return vx_rd(VNET_BAR_LEGACY, off, size);
}

static inline void lg_wr(uint64_t off, uint32_t size, uint64_t v)
{
    vx_wr(VNET_BAR_LEGACY, off, size, v);
}

static inline uint8_t vx_status(void)
{
    return (uint8_t)(vx.legacy ? lg_rd(VIRTIO_LEGACY_STATUS, 1) : cm_rd(VIRTIO_COMMON_STATUS, 1));
}

static inline uint8_t vx_isr(void)
{
    return (uint8_t)(vx.legacy ? lg_rd(VIRTIO_LEGACY_ISR, 1) : vx_rd(VNET_BAR_MODERN, VNET_ISR_OFF, 1));
}

/* Device config byte / le16 at off (either transport). */
static inline uint16_t vx_cfg16(uint64_t off)
{
    return (uint16_t)(vx.legacy ? lg_rd(VIRTIO_LEGACY_CONFIG + off, 2)
                                : vx_rd(VNET_BAR_MODERN, VNET_DEVICE_OFF + off, 2));
}

static inline void vx_write_status(uint8_t s)
{
    if (vx.legacy)
        lg_wr(VIRTIO_LEGACY_STATUS, 1, s);
    else
        cm_wr(VIRTIO_COMMON_STATUS, 1, s);
}

/* ---- rings ---------------------------------------------------------------- */

/* Lay queue qi out at VX_RING(qi) in the legacy shape (valid for modern
 * too), zeroed. */
static inline void vx_ring_init(unsigned qi, uint32_t size)
{
    struct vx_queue *q = &vx.q[qi];
    *q = (struct vx_queue){ .size = size, .desc = VX_RING(qi),
                            .avail = VX_RING(qi) + virtq_legacy_avail_off(size),
                            .used = VX_RING(qi) + virtq_legacy_used_off(size) };
    memset(vx_ptr(VX_RING(qi)), 0, (size_t)virtq_legacy_bytes(size));
}

/* Modern bring-up: negotiate feats (FEATURES_OK must stick), queues of
 * size entries, DRIVER_OK. */
static inline void vx_modern_up(uint64_t feats, uint32_t size)
{
    cm_wr(VIRTIO_COMMON_STATUS, 1, 0);
    cm_wr(VIRTIO_COMMON_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE);
    cm_wr(VIRTIO_COMMON_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    for (uint32_t sel = 0; sel < 2; sel++) {
        cm_wr(VIRTIO_COMMON_GFSELECT, 4, sel);
        cm_wr(VIRTIO_COMMON_GF, 4, (uint32_t)(feats >> (32 * sel)));
    }
    uint8_t st = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK;
    cm_wr(VIRTIO_COMMON_STATUS, 1, st);
    cr_assert(cm_rd(VIRTIO_COMMON_STATUS, 1) & VIRTIO_STATUS_FEATURES_OK,
              "FEATURES_OK refused for features %#lx", (unsigned long)feats);
    for (unsigned qi = 0; qi < 2; qi++) {
        vx_ring_init(qi, size);
        cm_wr(VIRTIO_COMMON_Q_SELECT, 2, qi);
        cm_wr(VIRTIO_COMMON_Q_SIZE, 2, size);
        cm_wr(VIRTIO_COMMON_Q_DESCLO, 4, (uint32_t)vx.q[qi].desc);
        cm_wr(VIRTIO_COMMON_Q_DESCHI, 4, (uint32_t)(vx.q[qi].desc >> 32));
        cm_wr(VIRTIO_COMMON_Q_AVAILLO, 4, (uint32_t)vx.q[qi].avail);
        cm_wr(VIRTIO_COMMON_Q_AVAILHI, 4, (uint32_t)(vx.q[qi].avail >> 32));
        cm_wr(VIRTIO_COMMON_Q_USEDLO, 4, (uint32_t)vx.q[qi].used);
        cm_wr(VIRTIO_COMMON_Q_USEDHI, 4, (uint32_t)(vx.q[qi].used >> 32));
        cm_wr(VIRTIO_COMMON_Q_ENABLE, 2, 1);
        cr_assert_eq(cm_rd(VIRTIO_COMMON_Q_ENABLE, 2), 1, "queue %u did not enable", qi);
    }
    cm_wr(VIRTIO_COMMON_STATUS, 1, st | VIRTIO_STATUS_DRIVER_OK);
    cr_assert_eq(cm_rd(VIRTIO_COMMON_STATUS, 1), st | VIRTIO_STATUS_DRIVER_OK,
                 "status after DRIVER_OK");
    vx.features = feats;
    vx.hdr_len = virtio_net_hdr_len(feats);
}

/* Legacy bring-up: 32-bit features, the device's fixed queue size, PFNs,
 * DRIVER_OK. */
static inline void vx_legacy_up(uint32_t feats)
{
    lg_wr(VIRTIO_LEGACY_STATUS, 1, 0);
    lg_wr(VIRTIO_LEGACY_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    lg_wr(VIRTIO_LEGACY_GUEST_FEATURES, 4, feats);
    for (unsigned qi = 0; qi < 2; qi++) {
        lg_wr(VIRTIO_LEGACY_QUEUE_SEL, 2, qi);
        uint32_t size = (uint32_t)lg_rd(VIRTIO_LEGACY_QUEUE_NUM, 2);
        cr_assert(virtq_size_valid(size), "legacy queue %u size %u", qi, size);
        vx_ring_init(qi, size);
        lg_wr(VIRTIO_LEGACY_QUEUE_PFN, 4, VX_RING(qi) >> VIRTIO_LEGACY_PFN_SHIFT);
    }
    lg_wr(VIRTIO_LEGACY_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
                                   VIRTIO_STATUS_DRIVER_OK);
    vx.features = feats;
    vx.hdr_len = virtio_net_hdr_len(feats);
}

/* Write descriptor i of queue qi. */
static inline void vx_desc(unsigned qi, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
                           uint16_t next)
{
    struct virtq_desc d = { .addr = addr, .len = len, .flags = flags, .next = next };
    memcpy(vx_ptr(vx.q[qi].desc + 16ull * i), &d, sizeof d);
}

/* Publish head in the avail ring (release: the descriptors first). */
static inline void vx_publish(unsigned qi, uint16_t head)
{
    struct vx_queue *q = &vx.q[qi];
    uint16_t *ring = vx_ptr(q->avail + VIRTQ_AVAIL_RING(q->avail_idx & (q->size - 1u)));
    *ring = head;
    q->avail_idx++;
    __atomic_store_n((uint16_t *)vx_ptr(q->avail + VIRTQ_AVAIL_IDX), q->avail_idx,
                     __ATOMIC_RELEASE);
}

/* Set the avail idx directly (hostile tests). */
static inline void vx_set_avail_idx(unsigned qi, uint16_t idx)
{
    vx.q[qi].avail_idx = idx;
    __atomic_store_n((uint16_t *)vx_ptr(vx.q[qi].avail + VIRTQ_AVAIL_IDX), idx, __ATOMIC_RELEASE);
}

static inline uint16_t vx_alloc_desc(unsigned qi)
{
    struct vx_queue *q = &vx.q[qi];
    uint16_t d = q->next_desc;
    q->next_desc = (uint16_t)((q->next_desc + 1u) % q->size);
    return d;
}

static inline uint64_t vx_alloc_buf(unsigned qi)
{
    struct vx_queue *q = &vx.q[qi];
    uint64_t b = (qi == VX_RX ? VX_RXBUF : VX_TXBUF) + (uint64_t)(q->next_buf % 256u) * VX_BUF_SIZE;
    q->next_buf++;
    return b;
}

/* Kick queue qi the way the driver would (MMIO or port write). */
static inline void vx_kick(unsigned qi)
{
    if (vx.legacy)
        lg_wr(VIRTIO_LEGACY_QUEUE_NOTIFY, 2, qi);
    else
        vx_wr(VNET_BAR_MODERN, VNET_NOTIFY_OFF + VNET_NOTIFY_MULT * qi, 2, qi);
}

/* Post a transmit chain: a zeroed header descriptor, then the frame in a
 * second one. Returns the head. */
static inline uint16_t vx_tx_post(const void *frame, uint32_t len)
{
    uint16_t d0 = vx_alloc_desc(VX_TX), d1 = vx_alloc_desc(VX_TX);
    uint64_t hb = vx_alloc_buf(VX_TX), fb = vx_alloc_buf(VX_TX);
    memset(vx_ptr(hb), 0, vx.hdr_len);
    memcpy(vx_ptr(fb), frame, len);
    vx_desc(VX_TX, d0, hb, vx.hdr_len, VIRTQ_DESC_F_NEXT, d1);
    vx_desc(VX_TX, d1, fb, len, 0, 0);
    vx_publish(VX_TX, d0);
    return d0;
}

/* Post one device-writable receive buffer of len bytes; its IOVA in *buf. */
static inline uint16_t vx_rx_post(uint32_t len, uint64_t *buf)
{
    uint16_t d = vx_alloc_desc(VX_RX);
    uint64_t b = vx_alloc_buf(VX_RX);
    memset(vx_ptr(b), 0xEE, VX_BUF_SIZE);
    vx_desc(VX_RX, d, b, len, VIRTQ_DESC_F_WRITE, 0);
    vx_publish(VX_RX, d);
    if (buf)
        *buf = b;
    return d;
}

static inline uint16_t vx_used_idx(unsigned qi)
{
    return __atomic_load_n((uint16_t *)vx_ptr(vx.q[qi].used + VIRTQ_USED_IDX), __ATOMIC_ACQUIRE);
}

static inline struct virtq_used_elem vx_used_elem(unsigned qi, uint16_t idx)
{
    struct virtq_used_elem e;
    memcpy(&e, vx_ptr(vx.q[qi].used + VIRTQ_USED_RING(idx & (vx.q[qi].size - 1u))), sizeof e);
    return e;
}

/* Wait until queue qi's used idx reaches want. */
static inline void vx_wait_used(unsigned qi, uint16_t want, const char *what)
{
    uint64_t end = vx_now_ms() + VX_WAIT_MS;
    while (vx_used_idx(qi) != want) {
        cr_assert(vx_now_ms() < end, "%s: queue %u used idx %u, want %u within %u ms", what, qi,
                  vx_used_idx(qi), want, VX_WAIT_MS);
        sched_yield();
    }
}

/* Wait until the test port has received n frames in all. */
static inline void vx_wait_peer(int n, const char *what)
{
    uint64_t end = vx_now_ms() + VX_WAIT_MS;
    while (atomic_load(&vx.peer_frames) < n) {
        cr_assert(vx_now_ms() < end, "%s: the test port got %d frames, want %d within %u ms", what,
                  atomic_load(&vx.peer_frames), n, VX_WAIT_MS);
        sched_yield();
    }
}

/* Kick the transmit queue and return only after the worker woke and
 * finished a pass that saw everything posted before the kick: the
 * wakeup is counted under the device lock, held through the pass, and a
 * register read needs that lock. Needs poll_us=0 (the worker sleeps at
 * once when idle). */
static inline void vx_tx_kick_and_sync(const char *what)
{
    struct virtio_net_stats s;
    uint64_t before = vx_stats().worker_wakeups;
    vx_kick(VX_TX);
    VX_WAIT_STATS(s, s.worker_wakeups > before, "%s: the worker never woke up", what);
    (void)vx_status();
}

/* A 60..1514-byte frame from src to dst with a recognisable payload. */
static inline void vx_frame(uint8_t *f, uint32_t len, const uint8_t dst[6], const uint8_t src[6],
                            uint8_t seed)
{
    memcpy(f, dst, 6);
    memcpy(f + 6, src, 6);
    f[12] = 0x88;       /* local experimental EtherType: nobody answers it */
    f[13] = 0xB5;
    for (uint32_t i = ETH_HDR_LEN; i < len; i++)
        f[i] = (uint8_t)(seed + i);
}

static inline void vx_dev_mac(uint8_t mac[6])
{
    cr_assert(virtio_net_mac(vx.f, mac), "virtio_net_mac refused the device");
}

/* The test port sends a frame to the device (synchronous delivery). */
static inline void vx_peer_send(uint32_t len, uint8_t seed, uint8_t *copy)
{
    uint8_t mac[6], f[NETBACK_FRAME_MAX];
    vx_dev_mac(mac);
    vx_frame(f, len, mac, vx_peer_mac, seed);
    if (copy)
        memcpy(copy, f, len);
    cr_assert(netback_send(vx.peer, f, len), "the switch refused the test port's frame");
}

/* MSI-X on, vector v sending data VX_MSI_DATA0 + v, all unmasked. */
static inline void vx_msix_on(void)
{
    for (unsigned v = 0; v < vx.f->msix.entries; v++) {
        uint64_t off = VNET_MSIX_TABLE_OFF + v * PCI_MSIX_ENTRY_SIZE;
        vx_wr(VNET_BAR_MSIX, off + PCI_MSIX_ENTRY_ADDR_LO, 4, PCI_MSI_ADDR_BASE);
        vx_wr(VNET_BAR_MSIX, off + PCI_MSIX_ENTRY_DATA, 4, VX_MSI_DATA0 + v);
        vx_wr(VNET_BAR_MSIX, off + PCI_MSIX_ENTRY_CTRL, 4, 0);
    }
    uint16_t ctl = (uint16_t)pci_cfg_read(vx.f, vx.f->msix.cap + PCI_MSIX_CTRL, 2);
    cr_assert(pci_cfg_write(vx.f, vx.f->msix.cap + PCI_MSIX_CTRL, 2, ctl | PCI_MSIX_CTRL_ENABLE),
              "MSI-X enable refused: %s", vx.p.last_refused);
}

#endif /* MOAT_VNET_FIXTURE_H */
