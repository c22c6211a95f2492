/*
 * bench_nic — Ethernet frames through moat, beside the same device models
 * without domains, in the same run:
 *   isolated:   client → Nic session → virtio-net driver domain (KVM) →
 *               virtio-net model → switch → model → driver domain →
 *               session → client;
 *   in-process: this process drives two virtio-net models directly (the
 *               driver's own ring code, driver-domains/virtio-net/vnet_ring.c,
 *               over register accesses and broker memory in this process)
 *               through the same switch.
 * and the same for gVNIC in both queue formats (GQI-QPL, DQO-RDA): the
 * isolated pair is two gVNIC driver domains, the in-process pair the gVNIC
 * driver's own sources (driver-domains/gvnic) over the driver API on
 * in-process models (dd_host.h).
 * Each pair moves frames one way, A → B, with the same number in flight,
 * at 64 B and 1514 B; every received frame's length and sequence number
 * are checked. The ratio isolated / in-process is the price of isolation.
 */
#define DD_HOST_TEST 1
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "broker.h"
#include "control.h"
#include "dd_host.h"
#include "gvnic.h"
#include "../../driver-domains/gvnic/gve.h"
#include "log.h"
#include "moat/libmoat.h"
#include "moat/pci_regs.h"
#include "moat/virtio_regs.h"
#include "netback.h"
#include "pci.h"
#include "report.h"
#include "supervisor.h"
#include "virtio_net.h"
#include "../../driver-domains/virtio-net/vnet_ring.c"

#define BENCH_DIR "/tmp/moat-bench-logs"
#define SOCK      BENCH_DIR "/nic-ctl.sock"
#define WINDOW    128u          /* frames in flight, both setups; receivers post twice as
                                 * many buffers, so a frame never meets an empty ring */
#define FRAMES_64   300000u
#define FRAMES_1514 100000u
#define GV_FRAMES_64   150000u      /* gVNIC pairs: half as many (two formats) */
#define GV_FRAMES_1514 50000u
#define ROUNDS      5u

static const uint8_t MAC_A[6] = { 0x52, 0x54, 0x00, 0xbe, 0x00, 0x0a };
static const uint8_t MAC_B[6] = { 0x52, 0x54, 0x00, 0xbe, 0x00, 0x0b };
/* The in-process pair shares the switch with the domains: MACs of its own. */
static const uint8_t MAC_C[6] = { 0x52, 0x54, 0x00, 0xbe, 0x00, 0x0c };
static const uint8_t MAC_D[6] = { 0x52, 0x54, 0x00, 0xbe, 0x00, 0x0d };
/* gVNIC pairs, by format: isolated A, B; in-process A, B. */
static const uint8_t MAC_GV[2][4][6] = {
    { { 0x52, 0x54, 0x00, 0xbe, 0x01, 0x0a }, { 0x52, 0x54, 0x00, 0xbe, 0x01, 0x0b },
      { 0x52, 0x54, 0x00, 0xbe, 0x01, 0x0c }, { 0x52, 0x54, 0x00, 0xbe, 0x01, 0x0d } },
    { { 0x52, 0x54, 0x00, 0xbe, 0x02, 0x0a }, { 0x52, 0x54, 0x00, 0xbe, 0x02, 0x0b },
      { 0x52, 0x54, 0x00, 0xbe, 0x02, 0x0c }, { 0x52, 0x54, 0x00, 0xbe, 0x02, 0x0d } },
};

static double now_s(void) { return bench_now_s(); }

static _Noreturn void die(const char *what, const char *why)
{
    bench_die("bench_nic", what, why);
}

static void make_frame(uint8_t *f, uint32_t len, const uint8_t *dst, const uint8_t *src,
                       uint32_t seq)
{
    memcpy(f, dst, 6);
    memcpy(f + 6, src, 6);
    f[12] = 0x88;
    f[13] = 0xb5;
    memcpy(f + 14, &seq, 4);
    memset(f + 18, (int)(seq & 0xff), len - 18);
}

static struct pci_func *diag_rx;   /* in-process receiver, for diagnostics */

static void check_frame(const uint8_t *f, uint32_t len, uint32_t want_len, uint32_t want_seq)
{
    uint32_t seq;
    memcpy(&seq, f + 14, 4);
    if (len != want_len || seq != want_seq) {
        fprintf(stderr, "bench_nic: got frame %u of %u bytes, expected %u of %u bytes\n", seq,
                len, want_seq, want_len);
        struct virtio_net_stats st;
        if (diag_rx && virtio_net_stats_get(diag_rx, &st))
            fprintf(stderr, "bench_nic: receiving model: %llu frames, %llu dropped without a "
                    "buffer, %llu too big, %llu bad chains\n", (unsigned long long)st.rx_frames,
                    (unsigned long long)st.rx_no_buffer, (unsigned long long)st.rx_too_big,
                    (unsigned long long)st.bad_chains);
        exit(1);
    }
}

/* ---- isolated: two driver domains, one client ------------------------------------------ */

struct iso {
    struct moat_client *c;
    struct moat_session *a, *b;
    struct domain *da, *db;
    const uint8_t *mac_a, *mac_b;
};

/* What the isolated path did, summed over both domains (see iso_print). */
struct iso_counts {
    double notifies, wakeups, irqs, exits_mmio, yields, exits_io, kicks, waits;
};

static struct iso_counts iso_counts_now(const struct iso *x)
{
    struct iso_counts c = { 0 };
    const struct domain *d[2] = { x->da, x->db };
    const struct moat_session *s[2] = { x->a, x->b };
    for (int i = 0; i < 2; i++) {
        struct virtio_net_stats v;
        struct moat_session_stats ss;
        if (virtio_net_stats_get(d[i]->pci.slot[1], &v)) {
            c.notifies += (double)v.notifies;
            c.wakeups += (double)v.worker_wakeups;
            c.irqs += (double)v.irq_sent;
        }
        c.exits_mmio += (double)DSTAT_GET(d[i], exits_mmio);
        c.exits_io += (double)DSTAT_GET(d[i], exits_io);
        c.yields += (double)DSTAT_GET(d[i], yields);
        moat_session_stats(s[i], &ss);
        c.kicks += (double)ss.kicks_sent;
        c.waits += (double)ss.waits;
    }
    return c;
}

static void iso_counts_add(struct iso_counts *sum, const struct iso_counts *a,
                           const struct iso_counts *b)
{
    sum->notifies += b->notifies - a->notifies;
    sum->wakeups += b->wakeups - a->wakeups;
    sum->irqs += b->irqs - a->irqs;
    sum->exits_mmio += b->exits_mmio - a->exits_mmio;
    sum->exits_io += b->exits_io - a->exits_io;
    sum->yields += b->yields - a->yields;
    sum->kicks += b->kicks - a->kicks;
    sum->waits += b->waits - a->waits;
}

static struct moat_session *open_nic(struct moat_client *c, const char *cap_name)
{
    struct moat_cap *cap;
    struct moat_session *s;
    int rc = moat_open(c, cap_name, MOAT_RIGHT_READ | MOAT_RIGHT_WRITE, &cap);
    if (!rc)
        rc = moat_session_open(cap, &(struct moat_session_params){ .entries = 4 * WINDOW }, &s);
    if (rc)
        die(cap_name, moat_strerror(rc));
    struct moat_frame none = { 0 };
    moat_nic_recv(s, &none, 0, 0);      /* post the receive buffers */
    return s;
}

static double iso_run(struct iso *x, uint32_t len, uint32_t n)
{
    static uint8_t tx[32][1514], rx[32][1514];
    struct moat_frame tf[32], rf[32];
    uint32_t sent = 0, got = 0;
    double t0 = now_s();
    while (got < n) {
        uint32_t k = 0;
        while (k < 32 && sent + k < n && sent + k - got < WINDOW) {
            make_frame(tx[k], len, x->mac_b, x->mac_a, sent + k);
            tf[k] = (struct moat_frame){ tx[k], len };
            k++;
        }
        if (k) {
            int q = moat_nic_send(x->a, tf, k);
            if (q < 0)
                die("send", moat_strerror(q));
            sent += (uint32_t)q;
        }
        for (int i = 0; i < 32; i++)
            rf[i] = (struct moat_frame){ rx[i], sizeof rx[i] };
        int r = moat_nic_recv(x->b, rf, 32, got < sent ? 5000 : 0);
        if (r < 0)
            die("receive", moat_strerror(r));
        for (int i = 0; i < r; i++)
            check_frame(rx[i], rf[i].len, len, got++);
    }
    return n / (now_s() - t0);
}

/* ---- in-process: the driver's ring code on two models in this process ----------------- */

#define HQ      256u                        /* queue entries */
#define HBUF    2048u                       /* bytes per buffer */
#define HWIN    0x100000000ull              /* window IOVA */
#define HWIN_SZ (4ull << 20)
#define H_RXR   0x000000u                   /* RX ring */
#define H_TXR   0x010000u                   /* TX ring */
#define H_RXB   0x100000u                   /* RX buffers */
#define H_TXB   0x200000u                   /* TX buffers */

struct hnic {
    struct broker br;
    struct pci_bus bus;
    struct pci_func *f;
    struct dma_mapping wm;
    uint8_t *mem;
    struct vq rx, tx;
    uint16_t rx_next[HQ], tx_next[HQ];
    struct vq_head rx_head[HQ], tx_head[HQ];
    uint32_t hdr;
    uint64_t notify[2];                     /* BAR offsets of the queues' notify registers */
    uint16_t tx_free[HQ], n_tx_free;
};

static bool h_msi(void *ctx, uint64_t addr, uint32_t data) { (void)ctx; (void)addr; (void)data; return true; }
static void h_intx(void *ctx, uint32_t gsi, bool level) { (void)ctx; (void)gsi; (void)level; }
static void h_refused(void *ctx, const char *dev, const char *what, uint64_t addr, uint64_t v)
{
    (void)ctx;
    fprintf(stderr, "bench_nic: in-process %s refused: %s at %#llx (%#llx)\n", dev, what,
            (unsigned long long)addr, (unsigned long long)v);
    exit(1);
}
static void h_dma_refused(void *ctx, const char *dev, uint64_t iova, uint64_t len,
                          enum broker_refusal why)
{
    (void)ctx;
    (void)why;
    fprintf(stderr, "bench_nic: in-process %s DMA refused at %#llx+%llu\n", dev,
            (unsigned long long)iova, (unsigned long long)len);
    exit(1);
}

static uint64_t h_reg(struct hnic *h, uint64_t off, uint32_t size, bool write, uint64_t v)
{
    struct bus_access a = { .addr = h->f->bar[VNET_BAR_MODERN].base + off, .size = size,
                            .is_write = write, .value = v };
    if (pci_mmio_access(&h->bus, &a) != BUS_OK)
        die("in-process driver", "a register access was not handled");
    return a.value;
}
#define CW(h, off, size, v) h_reg(h, VNET_COMMON_OFF + (off), size, true, v)
#define CR(h, off, size)    h_reg(h, VNET_COMMON_OFF + (off), size, false, 0)

static void h_queue(struct hnic *h, uint16_t q, struct vq *vq, uint64_t ring_off, uint16_t *next,
                    struct vq_head *heads, uint64_t features)
{
    struct vq_layout l;
    if (!vq_layout(HQ, false, &l) || l.bytes > 0x10000)
        die("in-process driver", "ring layout");
    CW(h, VIRTIO_COMMON_Q_SELECT, 2, q);
    if (CR(h, VIRTIO_COMMON_Q_SIZE, 2) < HQ)
        die("in-process driver", "the model offers fewer than 256 entries");
    CW(h, VIRTIO_COMMON_Q_SIZE, 2, HQ);
    CW(h, VIRTIO_COMMON_Q_MSIX, 2, VIRTIO_MSI_NO_VECTOR);
    uint64_t base = HWIN + ring_off;
    CW(h, VIRTIO_COMMON_Q_DESCLO, 4, (uint32_t)(base + l.desc_off));
    CW(h, VIRTIO_COMMON_Q_DESCHI, 4, (base + l.desc_off) >> 32);
    CW(h, VIRTIO_COMMON_Q_AVAILLO, 4, (uint32_t)(base + l.avail_off));
    CW(h, VIRTIO_COMMON_Q_AVAILHI, 4, (base + l.avail_off) >> 32);
    CW(h, VIRTIO_COMMON_Q_USEDLO, 4, (uint32_t)(base + l.used_off));
    CW(h, VIRTIO_COMMON_Q_USEDHI, 4, (base + l.used_off) >> 32);
    h->notify[q] = VNET_NOTIFY_OFF + CR(h, VIRTIO_COMMON_Q_NOFF, 2) * VNET_NOTIFY_MULT;
    CW(h, VIRTIO_COMMON_Q_ENABLE, 2, 1);
    if (!vq_init(vq, q, HQ, (features >> VIRTIO_RING_F_EVENT_IDX) & 1, h->mem + ring_off, &l,
                 next, heads))
        die("in-process driver", "vq_init");
    vq_irq_disable(vq);                     /* this driver polls */
}

static void h_kick(struct hnic *h, uint16_t q)
{
    h_reg(h, h->notify[q], 2, true, q);
}

static void h_setup(struct hnic *h, const char *name, const uint8_t mac[6])
{
    static const struct pci_platform_ops plat = { .msi = h_msi, .intx = h_intx,
                                                  .refused = h_refused,
                                                  .dma_refused = h_dma_refused };
    char err[256], opts[128];
    struct dma_handle dh;
    broker_init(&h->br, 64ull << 20, NULL);
    if (!broker_grant(&h->br, 1, HWIN, HWIN_SZ, DMA_BIDIR, &dh, err, sizeof err))
        die("broker", err);
    pci_bus_init(&h->bus, name, 1, &h->br, &plat);
    snprintf(opts, sizeof opts, "mac=%02x-%02x-%02x-%02x-%02x-%02x", mac[0], mac[1], mac[2],
             mac[3], mac[4], mac[5]);
    if (!virtio_net_create(&h->bus, "virtio-net0", 17, opts, err, sizeof err))
        die("virtio_net_create", err);
    h->f = h->bus.slot[1];
    if (!pci_cfg_write(h->f, PCI_COMMAND, 2, PCI_CMD_MEM | PCI_CMD_MASTER))
        die("in-process driver", "command register");
    h->mem = broker_dma_map(&h->br, 1, "bench", HWIN, HWIN_SZ, DMA_BIDIR, &h->wm);
    if (!h->mem)
        die("in-process driver", "cannot map the window");
    /* The handshake of virtio 1.2 §3.1.1, taking what the driver domain takes. */
    CW(h, VIRTIO_COMMON_STATUS, 1, 0);
    CW(h, VIRTIO_COMMON_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    CW(h, VIRTIO_COMMON_DFSELECT, 4, 0);
    uint64_t offered = CR(h, VIRTIO_COMMON_DF, 4);
    CW(h, VIRTIO_COMMON_DFSELECT, 4, 1);
    offered |= CR(h, VIRTIO_COMMON_DF, 4) << 32;
    uint64_t want = VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_NET_F_MAC) |
                    VIRTIO_BIT(VIRTIO_NET_F_STATUS) | VIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX) |
                    VIRTIO_BIT(VIRTIO_NET_F_MRG_RXBUF);
    uint64_t features = offered & want;
    CW(h, VIRTIO_COMMON_GFSELECT, 4, 0);
    CW(h, VIRTIO_COMMON_GF, 4, (uint32_t)features);
    CW(h, VIRTIO_COMMON_GFSELECT, 4, 1);
    CW(h, VIRTIO_COMMON_GF, 4, features >> 32);
    CW(h, VIRTIO_COMMON_STATUS, 1,
       VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    if (!(CR(h, VIRTIO_COMMON_STATUS, 1) & VIRTIO_STATUS_FEATURES_OK))
        die("in-process driver", "the model refused the features");
    h->hdr = virtio_net_hdr_len(features);
    h_queue(h, VIRTIO_NET_Q_RX, &h->rx, H_RXR, h->rx_next, h->rx_head, features);
    h_queue(h, VIRTIO_NET_Q_TX, &h->tx, H_TXR, h->tx_next, h->tx_head, features);
    CW(h, VIRTIO_COMMON_STATUS, 1,
       VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
       VIRTIO_STATUS_DRIVER_OK);
    for (uint32_t i = 0; i < HQ; i++) {
        struct vq_seg s = { HWIN + H_RXB + (uint64_t)i * HBUF, HBUF, true };
        vq_add(&h->rx, &s, 1, i);
        h->tx_free[h->n_tx_free++] = (uint16_t)i;
    }
    if (vq_publish(&h->rx))
        h_kick(h, VIRTIO_NET_Q_RX);
}

static void h_fini(struct hnic *h)
{
    pci_bus_fini(&h->bus);
    broker_dma_unmap(&h->br, &h->wm);
    broker_fini(&h->br);
}

static double inproc_run(struct hnic *a, struct hnic *b, uint32_t len, uint32_t n)
{
    uint32_t sent = 0, got = 0;
    double t0 = now_s(), deadline = t0 + 60;
    while (got < n) {
        struct vq_used u;
        while (vq_pop(&a->tx, &u) == VQ_OK)
            a->tx_free[a->n_tx_free++] = (uint16_t)u.token;
        bool added = false;
        while (sent < n && sent - got < WINDOW && a->n_tx_free) {
            uint16_t i = a->tx_free[--a->n_tx_free];
            uint8_t *buf = a->mem + H_TXB + (uint64_t)i * HBUF;
            memset(buf, 0, a->hdr);
            make_frame(buf + a->hdr, len, MAC_D, MAC_C, sent);
            struct vq_seg s = { HWIN + H_TXB + (uint64_t)i * HBUF, a->hdr + len, false };
            vq_add(&a->tx, &s, 1, i);
            sent++;
            added = true;
        }
        if (added && vq_publish(&a->tx))
            h_kick(a, VIRTIO_NET_Q_TX);
        bool reposted = false;
        enum vq_verdict v;
        while ((v = vq_pop(&b->rx, &u)) == VQ_OK) {
            const uint8_t *buf = b->mem + H_RXB + (uint64_t)u.token * HBUF;
            check_frame(buf + b->hdr, u.len - b->hdr, len, got++);
            struct vq_seg s = { HWIN + H_RXB + (uint64_t)u.token * HBUF, HBUF, true };
            vq_add(&b->rx, &s, 1, u.token);
            reposted = true;
        }
        if (v != VQ_EMPTY)
            die("in-process driver", vq_verdict_name(v));
        if (reposted && vq_publish(&b->rx))
            h_kick(b, VIRTIO_NET_Q_RX);
        if (now_s() > deadline)
            die("in-process run", "stalled");
    }
    return n / (now_s() - t0);
}

/* ---- in-process gVNIC: the driver's own sources over dd_host ------------------------ */

struct gvh {
    struct dd_host h;
    struct gve g;
    const struct gve_path *path;
    const uint8_t *mac;
    uint32_t got, want_len;     /* receiver: frames checked, their length */
};

static void gv_rx(void *ctx, const void *frame, uint32_t len)
{
    struct gvh *b = ctx;
    check_frame(frame, len, b->want_len, b->got++);
}

static void gv_setup(struct gvh *x, const char *name, const uint8_t mac[6], const char *format)
{
    char opts[160], err[256];
    dd_host_init(&x->h, name, 16u << 20);
    snprintf(opts, sizeof opts, "format=%s:mtu=1500:mac=%02x-%02x-%02x-%02x-%02x-%02x", format,
             mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
    if (!gvnic_create(&x->h.bus, "gvnic0", 17, opts, err, sizeof err))
        die("gvnic_create", err);
    dd_host_use(&x->h);
    gve_start(&x->g, "name=nic0");
    x->path = x->g.dqo ? &gve_dqo_path : &gve_gqi_path;
    x->mac = mac;
    x->h.on_rx = gv_rx;
    x->h.rx_ctx = x;
}

static double gv_run(struct gvh *a, struct gvh *b, uint32_t len, uint32_t n)
{
    static uint8_t f[1514];
    uint32_t sent = 0;
    b->got = 0;
    b->want_len = len;
    double t0 = now_s(), deadline = t0 + 60;
    while (b->got < n) {
        dd_host_use(&a->h);
        bool took = false;
        while (sent < n && sent - b->got < WINDOW) {
            make_frame(f, len, b->mac, a->mac, sent);
            if (!a->path->nic.tx(&a->g, f, len))
                break;                          /* no room: its poll reclaims */
            sent++;
            took = true;
        }
        if (took)
            a->path->nic.tx_flush(&a->g);
        dd_host_poll(&a->h);
        dd_host_poll(&b->h);
        if (now_s() > deadline)
            die("in-process gVNIC run", "stalled");
    }
    return n / (now_s() - t0);
}

/* ---- the run ----------------------------------------------------------------------------- */

/* One row pair of the table: an isolated pair of domains and the same
 * device model driven in-process, measured in alternating rounds. */
struct pair {
    const char *what;           /* for the log */
    const char *key;            /* record name prefix */
    const char *inproc_key;
    struct iso x;
    double (*inproc)(struct pair *p, uint32_t len, uint32_t n);
    struct hnic *ha, *hb;       /* virtio-net in-process pair */
    struct gvh *ga, *gb;        /* gVNIC in-process pair */
    uint32_t frames[2];
    double in[2][ROUNDS], iso[2][ROUNDS], ratio[2][ROUNDS];
    struct bench_cpu cost[2][2];        /* [size][in-process, isolated] summed */
    struct iso_counts counts[2];
};

static double vnet_inproc(struct pair *p, uint32_t len, uint32_t n)
{
    diag_rx = p->hb->f;
    double r = inproc_run(p->ha, p->hb, len, n);
    diag_rx = NULL;
    return r;
}

static double gvnic_inproc(struct pair *p, uint32_t len, uint32_t n)
{
    return gv_run(p->ga, p->gb, len, n);
}

static struct domain *boot_nic_domain(struct supervisor *sup, const char *name,
                                      const char *image, const char *dev, const uint8_t *mac)
{
    char spec[1024];
    snprintf(spec, sizeof spec, "name=%s kernel=%s/guest/%s.elf mem=64M dma=16M "
             "dev=%s:mac=%02x-%02x-%02x-%02x-%02x-%02x args=\"name=nic0\"", name,
             MOAT_BUILD_DIR, image, dev, mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
    return bench_boot_domain(sup, spec);
}

static void pair_open(struct pair *p, struct moat_client *c)
{
    char cap[64];
    p->x.c = c;
    snprintf(cap, sizeof cap, "%s.nic0", p->x.da->cfg.name);
    p->x.a = open_nic(c, cap);
    snprintf(cap, sizeof cap, "%s.nic0", p->x.db->cfg.name);
    p->x.b = open_nic(c, cap);
}

static void pair_round(struct pair *p, unsigned r)
{
    static const uint32_t lens[2] = { 64, 1514 };
    for (int z = 0; z < 2; z++) {
        struct bench_cpu c0 = bench_cpu_now();
        p->in[z][r] = p->inproc(p, lens[z], p->frames[z]);
        struct bench_cpu c1 = bench_cpu_now();
        struct iso_counts k0 = iso_counts_now(&p->x);
        p->iso[z][r] = iso_run(&p->x, lens[z], p->frames[z]);
        struct iso_counts k1 = iso_counts_now(&p->x);
        struct bench_cpu c2 = bench_cpu_now();
        iso_counts_add(&p->counts[z], &k0, &k1);
        p->cost[z][0].cpu_s += c1.cpu_s - c0.cpu_s;
        p->cost[z][0].switches += c1.switches - c0.switches;
        p->cost[z][1].cpu_s += c2.cpu_s - c1.cpu_s;
        p->cost[z][1].switches += c2.switches - c1.switches;
        p->ratio[z][r] = p->iso[z][r] / p->in[z][r];
        fprintf(stderr, "bench_nic: round %u, %s, %u B: isolated %.0f, in-process %.0f "
                "frames/s (%.2f)\n", r + 1, p->what, lens[z], p->iso[z][r], p->in[z][r],
                p->ratio[z][r]);
    }
}

/* Print the pair's summary and append its records. */
static size_t pair_report(struct pair *p, bool virtio, struct bench_record *rec)
{
    static const uint32_t lens[2] = { 64, 1514 };
    static char names[2][6][2][64];
    static int calls;
    char (*nm)[2][64] = names[calls++];
    size_t n = 0;
    for (int z = 0; z < 2; z++) {
        struct bench_spread sr = bench_spread(p->ratio[z], ROUNDS);
        struct bench_spread si = bench_spread(p->iso[z], ROUNDS);
        double frames = (double)p->frames[z] * ROUNDS;
        double cpu_in = p->cost[z][0].cpu_s * 1e6 / frames;
        double cpu_iso = p->cost[z][1].cpu_s * 1e6 / frames;
        fprintf(stderr, "bench_nic: %s, %u B: isolated / in-process median %.2f (range "
                "%.2f-%.2f); per frame: in-process %.2f us CPU, %.4f context switches; isolated "
                "%.2f us CPU, %.4f context switches\n", p->what, lens[z], sr.median, sr.lo, sr.hi,
                cpu_in, p->cost[z][0].switches / frames, cpu_iso,
                p->cost[z][1].switches / frames);
        const struct iso_counts *k = &p->counts[z];
        fprintf(stderr, "bench_nic: %s, %u B isolated, per frame over both domains: ", p->what,
                lens[z]);
        if (virtio)
            fprintf(stderr, "%.4f notifies reached the models, %.4f model worker wake-ups, "
                    "%.4f interrupts, ", k->notifies / frames, k->wakeups / frames,
                    k->irqs / frames);
        fprintf(stderr, "vCPU exits %.4f MMIO (%.4f of them YIELD hints) %.4f PIO; client "
                "%.4f kicks %.4f sleeps\n", k->exits_mmio / frames, k->yields / frames,
                k->exits_io / frames, k->kicks / frames, k->waits / frames);
        /* The ratio's median is the figure (the values are the rounds' medians). */
        double peer = si.median / sr.median;
        const double bits = (double)lens[z] * 8 / 1e6;
        snprintf(nm[3 * z][0], 64, "%s_%uB_frames_per_s", p->key, lens[z]);
        snprintf(nm[3 * z][1], 64, "%s_%uB_frames_per_s", p->inproc_key, lens[z]);
        snprintf(nm[3 * z + 1][0], 64, "%s_%uB_mbit_per_s", p->key, lens[z]);
        snprintf(nm[3 * z + 1][1], 64, "%s_%uB_mbit_per_s", p->inproc_key, lens[z]);
        snprintf(nm[3 * z + 2][0], 64, "%s_%uB_cpu_us_per_frame", p->key, lens[z]);
        snprintf(nm[3 * z + 2][1], 64, "%s_%uB_cpu_us_per_frame", p->inproc_key, lens[z]);
        rec[n++] = (struct bench_record){ nm[3 * z][0], si.median, "fps", nm[3 * z][1], peer };
        rec[n++] = (struct bench_record){ nm[3 * z + 1][0], si.median * bits, "Mbit/s",
                                          nm[3 * z + 1][1], peer * bits };
        rec[n++] = (struct bench_record){ nm[3 * z + 2][0], cpu_iso, "us", nm[3 * z + 2][1],
                                          cpu_in };
    }
    return n;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: bench_nic RESULT.json\n");
        return 2;
    }
    log_set_quiet(true);
    mkdir(BENCH_DIR, 0700);

    /* Both setups live side by side (the in-process NICs have brokers of
     * their own); rounds alternate so drift in the machine hits both. */
    static struct hnic ha, hb;
    h_setup(&ha, "inproc-a", MAC_C);
    h_setup(&hb, "inproc-b", MAC_D);
    static struct gvh gv[2][2];
    static const char *const formats[2] = { "gqi-qpl", "dqo-rda" };
    static const char *const gv_names[2][2] = { { "inproc-gqi-a", "inproc-gqi-b" },
                                                { "inproc-dqo-a", "inproc-dqo-b" } };
    for (int f = 0; f < 2; f++)
        for (int i = 0; i < 2; i++)
            gv_setup(&gv[f][i], gv_names[f][i], MAC_GV[f][2 + i], formats[f]);

    static struct moat_config cfg;
    static struct supervisor sup;
    static struct control ctl;
    config_defaults(&cfg);
    snprintf(cfg.log_dir, sizeof cfg.log_dir, BENCH_DIR);
    char err[512];
    unlink(SOCK);
    if (!supervisor_init(&sup, &cfg, err, sizeof err) ||
        !control_start(&ctl, &sup, SOCK, err, sizeof err))
        die("moat", err);

    static struct pair pairs[3] = {
        { .what = "virtio-net", .key = "nic", .inproc_key = "inproc",
          .inproc = vnet_inproc, .frames = { FRAMES_64, FRAMES_1514 } },
        { .what = "gVNIC GQI-QPL", .key = "gvnic_gqi", .inproc_key = "inproc_gvnic_gqi",
          .inproc = gvnic_inproc, .frames = { GV_FRAMES_64, GV_FRAMES_1514 } },
        { .what = "gVNIC DQO-RDA", .key = "gvnic_dqo", .inproc_key = "inproc_gvnic_dqo",
          .inproc = gvnic_inproc, .frames = { GV_FRAMES_64, GV_FRAMES_1514 } },
    };
    pairs[0].ha = &ha;
    pairs[0].hb = &hb;
    pairs[0].x = (struct iso){ .da = boot_nic_domain(&sup, "bnica", "vnet", "virtio-net", MAC_A),
                               .db = boot_nic_domain(&sup, "bnicb", "vnet", "virtio-net", MAC_B),
                               .mac_a = MAC_A, .mac_b = MAC_B };
    static const char *const iso_names[2][2] = { { "bgqia", "bgqib" }, { "bdqoa", "bdqob" } };
    for (int f = 0; f < 2; f++) {
        struct pair *p = &pairs[1 + f];
        char dev[64];
        snprintf(dev, sizeof dev, "gvnic:format=%s:mtu=1500", formats[f]);
        p->ga = &gv[f][0];
        p->gb = &gv[f][1];
        p->x = (struct iso){ .da = boot_nic_domain(&sup, iso_names[f][0], "gvnic", dev,
                                                   MAC_GV[f][0]),
                             .db = boot_nic_domain(&sup, iso_names[f][1], "gvnic", dev,
                                                   MAC_GV[f][1]),
                             .mac_a = MAC_GV[f][0], .mac_b = MAC_GV[f][1] };
    }
    struct moat_client *c;
    int rc = moat_connect(SOCK, &c);
    if (rc)
        die("connect", moat_strerror(rc));
    for (int i = 0; i < 3; i++) {
        pair_open(&pairs[i], c);
        pairs[i].inproc(&pairs[i], 64, pairs[i].frames[0] / 10);       /* warm up */
        iso_run(&pairs[i].x, 64, pairs[i].frames[0] / 10);
    }
    for (unsigned r = 0; r < ROUNDS; r++)
        for (int i = 0; i < 3; i++)
            pair_round(&pairs[i], r);
    moat_disconnect(c);
    h_fini(&ha);                /* before the switch they are ports of goes */
    h_fini(&hb);
    for (int f = 0; f < 2; f++)
        for (int i = 0; i < 2; i++)
            dd_host_fini(&gv[f][i].h);
    control_stop(&ctl);
    supervisor_fini(&sup);
    netback_shutdown();

    struct bench_record rec[18];
    size_t n = 0;
    for (int i = 0; i < 3; i++)
        n += pair_report(&pairs[i], i == 0, rec + n);
    return bench_write(argv[1], rec, n) ? 0 : 1;
}
