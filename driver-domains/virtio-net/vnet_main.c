/*
 * virtio-net — the virtio-net driver domain: drives the virtio network
 * function assigned to the domain, modern (1af4:1041, or a transitional
 * 1af4:1000 that has the modern capabilities) or legacy (1af4:1000 with
 * an I/O BAR0, the GCE shape), and serves it as the Nic cap
 * "<domain>.<name>".
 *
 * args (all optional):
 *   name=CAP       cap suffix (default nic0)
 *   rx_bufs=N      receive buffers kept posted (default 256; at most what
 *                  the receive queue holds)
 *   tx_bufs=N      transmit bounce buffers (default 256; same bound)
 *   event_idx=0    do not negotiate VIRTIO_RING_F_EVENT_IDX (use the
 *                  NO_NOTIFY / NO_INTERRUPT flags instead)
 *   mrg_rxbuf=0    do not negotiate VIRTIO_NET_F_MRG_RXBUF
 *   status=0       do not negotiate VIRTIO_NET_F_STATUS (link always up)
 *   sessions=N     client sessions served at once (moat_nic_info.queues, 4)
 *   spin_us=N      keep polling N us after the last work before arming
 *                  interrupts and sleeping (default 200)
 *   stats_s=N      log a counter line every N s when something changed
 *                  (default 0: off)
 *   wild_rx=1      test: behave as a hostile driver and post receive
 *                  buffers in private RAM, outside every DMA window
 *   tx_timeout_ms=N  fail-stop when the device gives no transmit buffer
 *                  back for N ms while some are out (default 500): a
 *                  legacy device that stopped its queue says nothing else
 *
 * Memory: dma= must hold (rx_bufs + tx_bufs) x 2 KiB of buffers plus the
 * two rings (a 256-entry ring is 12 KiB; a legacy device's fixed 4096 is
 * 112 KiB each, 32768 is 836 KiB each): about 1.1 MiB by default.
 */
#include "vnet.h"
#include "moat/pci_regs.h"

static struct vnet drv;

static void parse_args(const char *args, struct vnet_cfg *c)
{
    if (!dd_arg(args, "name", c->name, sizeof c->name))
        memcpy(c->name, "nic0", 5);
    if (c->name[0] == '\0')
        dd_panic("virtio-net: name= is empty");
    c->rx_bufs = dd_arg_u32(args, "rx_bufs", 256, 1, VNET_BUFS_MAX);
    c->tx_bufs = dd_arg_u32(args, "tx_bufs", 256, 1, VNET_BUFS_MAX);
    c->wants.event_idx = dd_arg_u32(args, "event_idx", 1, 0, 1) != 0;
    c->wants.mrg_rxbuf = dd_arg_u32(args, "mrg_rxbuf", 1, 0, 1) != 0;
    c->wants.status = dd_arg_u32(args, "status", 1, 0, 1) != 0;
    c->sessions = dd_arg_u32(args, "sessions", 4, 1, MOAT_SESSION_SLOTS);
    c->spin_ns = dd_arg_u32(args, "spin_us", DD_SPIN_US_DEFAULT, 0, 1000000) * (uint64_t)1000;
    c->stats_ns = dd_arg_u32(args, "stats_s", 0, 0, 86400) * (uint64_t)1000000000;
    c->wild_rx = dd_arg_u32(args, "wild_rx", 0, 0, 1) != 0;
    c->tx_timeout_ns = dd_arg_u32(args, "tx_timeout_ms", 500, 10, 600000) * (uint64_t)1000000;
}

/* ---- finding the function and its transport ---------------------------------- */

static void find_device(struct vnet *v)
{
    struct dd_dev *d = dd_dev_find(VIRTIO_PCI_VENDOR, VIRTIO_PCI_DEVICE_NET_MODERN, 0);
    const char *why;
    if (d) {
        if ((why = vnet_modern_probe(&v->tp, d)) != NULL)
            dd_panic("virtio-net: modern function 1af4:1041 unusable: %s", why);
    } else if ((d = dd_dev_find(VIRTIO_PCI_VENDOR, VIRTIO_PCI_DEVICE_NET_LEGACY, 0)) != NULL) {
        /* Transitional functions carry both: prefer the modern interface. */
        const char *why_modern = vnet_modern_probe(&v->tp, d);
        if (why_modern) {
            if ((why = vnet_legacy_probe(&v->tp, d)) != NULL)
                dd_panic("virtio-net: 1af4:1000 has neither a usable modern interface (%s) nor "
                         "a legacy one (%s)", why_modern, why);
        }
    } else {
        dd_panic("virtio-net: none of the %u assigned PCI functions is a virtio-net device "
                 "(1af4:1041 or 1af4:1000)", dd_dev_count());
    }
    v->dev = d;
    v->ops = v->tp.ops;
    dd_dev_info(d, &v->info);
    dd_cmd_set(d, (uint16_t)((v->ops->modern ? PCI_CMD_MEM : PCI_CMD_IO) | PCI_CMD_MASTER));
}

/* ---- queues and buffers ------------------------------------------------------ */

const char *vnet_vq_alloc(struct vnet_vq *out, uint16_t qidx, uint32_t size, bool legacy,
                          bool event_idx)
{
    struct vq_layout l;
    if (!vq_layout(size, legacy, &l))
        return "queue size is not a power of two up to 32768";
    if (!dd_dma_alloc(l.bytes, legacy ? VIRTIO_LEGACY_ALIGN : 0, &out->mem))
        return "no DMA memory left for the ring";
    uint16_t *next = dd_mem_alloc((uint64_t)size * sizeof *next);
    struct vq_head *heads = dd_mem_alloc((uint64_t)size * sizeof *heads);
    if (!vq_init(&out->vq, qidx, size, event_idx, out->mem.va, &l, next, heads))
        return "driver bug: ring initialisation refused";
    out->desc_iova = out->mem.iova + l.desc_off;
    out->avail_iova = out->mem.iova + l.avail_off;
    out->used_iova = out->mem.iova + l.used_off;
    return NULL;
}

/* Smallest power of two >= n (n <= 32768). */
static uint32_t pow2_at_least(uint32_t n)
{
    uint32_t p = 1;
    while (p < n)
        p *= 2u;
    return p;
}

static void fail(struct vnet *v, const char *what, const char *why)
{
    /* Tell the device we gave up (§3.1.1), then let the supervisor act. */
    v->ops->status_set(&v->tp, (uint8_t)(v->ops->status_get(&v->tp) | VIRTIO_STATUS_FAILED));
    dd_panic("virtio-net %04x:%04x %s: %s: %s", v->info.vendor, v->info.device, v->ops->name,
             what, why);
}

static void setup_queue(struct vnet *v, uint16_t qidx, uint32_t bufs, uint32_t per,
                        struct vnet_vq *q)
{
    const char *why = v->ops->queue_setup(&v->tp, qidx, pow2_at_least(bufs * per),
                                          (v->features & VIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX)) != 0,
                                          q);
    if (why)
        fail(v, qidx == VIRTIO_NET_Q_RX ? "receive queue" : "transmit queue", why);
    if (q->vq.size < per)
        fail(v, "queue", "the queue cannot hold one buffer");
}

static void alloc_bufs(struct vnet *v, struct vnet_bufs *b, uint32_t count, const char *what)
{
    b->count = count;
    if (!dd_dma_alloc((uint64_t)count * VNET_BUF_SIZE, 0, &b->mem))
        fail(v, what, "no DMA memory left for the buffers (raise dma=)");
}

/* ---- bring-up (§3.1.1) ---------------------------------------------------------- */

/* Write 0 to the status and wait until it reads 0 again (§4.1.4.3.2):
 * emulated devices reset at once, real ones may take a while. */
static const char *reset(struct vnet_tp *t, const struct vnet_transport_ops *ops,
                         uint64_t timeout_ns)
{
    ops->status_set(t, 0);
    uint64_t deadline = dd_now_ns() + timeout_ns;
    for (;;) {
        for (unsigned i = 0; i < 64; i++)       /* status reads between clock checks */
            if (ops->status_get(t) == 0)
                return NULL;
        if (dd_now_ns() > deadline)
            return "the device status did not read 0 after reset";
    }
}

static void bring_up(struct vnet *v)
{
    struct vnet_tp *t = &v->tp;
    const struct vnet_transport_ops *ops = v->ops;
    const char *why = reset(t, ops, VNET_RESET_NS);
    if (why)
        dd_panic("virtio-net %04x:%04x %s: %s", v->info.vendor, v->info.device, ops->name, why);
    ops->status_set(t, VIRTIO_STATUS_ACKNOWLEDGE);
    ops->status_set(t, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);

    v->offered = ops->features_get(t);
    if ((why = vnet_negotiate(v->offered, ops->modern, &v->cfg.wants, &v->features)) != NULL)
        fail(v, "features", why);
    ops->features_set(t, v->features);
    if ((why = ops->features_ok(t)) != NULL)
        fail(v, "features", why);
    v->hdr_len = virtio_net_hdr_len(v->features);
    v->split_hdr = !ops->modern && vnet_split_header(v->features);
    v->mrg = (v->features & VIRTIO_BIT(VIRTIO_NET_F_MRG_RXBUF)) != 0;
    v->has_status = (v->features & VIRTIO_BIT(VIRTIO_NET_F_STATUS)) != 0;
    dd_boot_mark(MOAT_BOOT_DEVICE);

    if ((why = ops->irq_setup(t, vnet_config_event, NULL, v)) != NULL)
        fail(v, "interrupts", why);

    /* With the header in its own descriptor, each buffer takes two
     * (merged receive buffers always carry their header inline). */
    v->rx_descs = v->split_hdr && !v->mrg ? 2u : 1u;
    v->tx_descs = v->split_hdr ? 2u : 1u;
    setup_queue(v, VIRTIO_NET_Q_RX, v->cfg.rx_bufs, v->rx_descs, &v->rxq);
    setup_queue(v, VIRTIO_NET_Q_TX, v->cfg.tx_bufs, v->tx_descs, &v->txq);
    uint32_t rx_max = v->rxq.vq.size / v->rx_descs, tx_max = v->txq.vq.size / v->tx_descs;
    alloc_bufs(v, &v->rxb, v->cfg.rx_bufs < rx_max ? v->cfg.rx_bufs : rx_max, "receive");
    alloc_bufs(v, &v->txb, v->cfg.tx_bufs < tx_max ? v->cfg.tx_bufs : tx_max, "transmit");
    v->tx_free = dd_mem_alloc((uint64_t)v->txb.count * sizeof *v->tx_free);
    for (uint32_t i = 0; i < v->txb.count; i++)
        v->tx_free[i] = (uint16_t)(v->txb.count - 1u - i);
    v->tx_free_top = v->txb.count;
    v->rasm.buf = dd_mem_alloc(ETH_FRAME_MAX);

    struct vnet_config c;
    ops->config_read(t, v->has_status, &c);
    memcpy(v->mac, c.mac, sizeof v->mac);
    v->link_up = (c.status & VIRTIO_NET_S_LINK_UP) != 0;
    if ((v->mac[0] & 1u) || !(v->mac[0] | v->mac[1] | v->mac[2] | v->mac[3] | v->mac[4] | v->mac[5]))
        fail(v, "configuration", "the device MAC is zero or multicast");

    ops->status_set(t, (uint8_t)(ops->status_get(t) | VIRTIO_STATUS_DRIVER_OK));
    vnet_check_status(v);
    dd_boot_mark(MOAT_BOOT_QUEUES);
}

static void serve(struct vnet *v)
{
    struct moat_nic_info info = {
        .mtu = ETH_MTU,
        .max_frame = ETH_FRAME_MAX,
        .flags = v->has_status ? MOAT_NIC_F_LINK_STATUS : 0u,
        .queues = v->cfg.sessions,
    };
    memcpy(info.mac, v->mac, sizeof info.mac);
    static const struct dd_nic_ops ops = { .tx = vnet_tx, .tx_flush = vnet_tx_flush };
    v->nic = dd_nic_serve(v->cfg.name, &info, &ops, v);
    if (!v->nic)
        dd_panic("virtio-net: moat refused the cap '%s'", v->cfg.name);
    if (!v->link_up)
        dd_nic_link(v->nic, false);     /* the platform starts with up */
    v->live = true;
    vnet_rx_fill(v);
    /* After dd_nic_serve: its poller runs first in each pass, so the
     * batch our poller publishes covers the frames it handed us. */
    dd_spin_set(v->cfg.spin_ns);
    if (!dd_poll_add(vnet_poll, v) || !dd_idle_add(vnet_idle, v))
        dd_panic("virtio-net: no poller slot left");
    uint64_t now = dd_now_ns();
    v->next_check_ns = now + VNET_CHECK_NS;
    v->next_stats_ns = now + v->cfg.stats_ns;
}

/* Orderly stop (dd_stop_hook): sessions are drained; let the device send
 * what is in the TX queue (bounded), log the final counters, then reset
 * the device (§3.3.1: the driver resets it before letting go). */
static void stop(void *ctx)
{
    struct vnet *v = ctx;
    uint64_t deadline = dd_now_ns() + VNET_RESET_NS;
    while (v->tx_free_top != v->txb.count && dd_now_ns() < deadline)
        dd_run_once();
    uint32_t unsent = v->txb.count - v->tx_free_top;
    v->live = false;
    vnet_stats_log(v, true);
    const char *why = reset(&v->tp, v->ops, VNET_RESET_NS);
    if (why)
        dd_panic("virtio-net: orderly stop: %s", why);
    dd_log("virtio-net: device reset for the stop (%u frame%s left unsent)", unsent,
           unsent == 1 ? "" : "s");
}

void vnet_start(struct vnet *v, const char *args)
{
    parse_args(args, &v->cfg);
    find_device(v);
    bring_up(v);
    serve(v);
    const uint8_t *m = v->mac;
    dd_log("virtio-net %04x:%04x %s, features 0x%lx (offered 0x%lx), header %u%s, queues rx %u "
           "tx %u, buffers rx %u tx %u, %s, interrupts %s, mac %02x:%02x:%02x:%02x:%02x:%02x, "
           "link %s, serving %s", v->info.vendor, v->info.device, v->ops->name, v->features,
           v->offered, v->hdr_len, v->split_hdr ? " (own descriptor)" : "", v->rxq.vq.size,
           v->txq.vq.size, v->rxb.count, v->txb.count,
           v->rxq.vq.event_idx ? "event idx" : "ring flags",
           v->tp.msix ? "MSI-X" : "INTx", m[0], m[1], m[2], m[3], m[4], m[5],
           v->link_up ? "up" : "down", v->cfg.name);
    vnet_fault_hook(v);
    dd_stop_hook(stop, v);
}

void domain_main(const char *args)
{
    vnet_start(&drv, args);
    dd_ready();
    dd_run();
}
