/*
 * gvnic — the gVNIC driver domain: drives the Google Virtual Ethernet
 * function (1ae0:0042) assigned to the domain and serves it as the Nic
 * cap "<domain>.<name>": in the GQI-QPL queue format when the device
 * offers it (gve_io.c), else DQO-RDA (gve_dqo.c).
 *
 * Bring-up: reset (driver-status handshake), admin queue by base/length,
 * DESCRIBE_DEVICE (MAC, MTU, ring sizes, a queue format it offers),
 * CONFIGURE_DEVICE_RESOURCES (event counters, two notification blocks: TX
 * and RX, quiet while the domain polls), then the format's queues: one TX
 * and one RX queue (GQI-QPL: a page list each), every RX buffer given.
 * A device that asks for a reset (or stops answering) fail-stops the
 * domain; the supervisor restarts it with a freshly reset device. An
 * orderly stop (moatctl stop) undoes bring-up in reverse (teardown).
 *
 * args (all optional):
 *   name=CAP       cap suffix (default nic0)
 *   sessions=N     client sessions served at once (4)
 *   spin_us=N      keep polling N us after the last work (default 200)
 *   wild_qpl=1     test: behave as a hostile driver and register a page
 *                  list whose first page is in private RAM, outside every
 *                  DMA window (the device must refuse it)
 *
 * Memory: dma= must hold the page lists (the device's tx_pages_per_qpl
 * and one page per RX slot: about 2.3 MiB with the model's defaults) and
 * the rings: dma=8M is plenty.
 */
#include "gve.h"
#include "moat/pci_regs.h"

static struct gve drv;

void gve_dma(uint64_t size, struct dd_dma *out, const char *what)
{
    if (!dd_dma_alloc(size, 0, out))
        dd_panic("gvnic: no DMA memory for %s (%lu bytes): give the domain a larger dma=", what,
                 size);
}

static void find_device(struct gve *g)
{
    g->dev = dd_dev_find(GVNIC_PCI_VENDOR, GVNIC_PCI_DEVICE, 0);
    if (!g->dev)
        dd_panic("gvnic: none of the %u assigned PCI functions is a gVNIC (1ae0:0042)",
                 dd_dev_count());
    g->regs = dd_bar(g->dev, GVNIC_BAR_REGS);
    g->dbs = dd_bar(g->dev, GVNIC_BAR_DOORBELLS);
    if (!g->regs || !g->dbs || dd_bar_is_io(g->regs) || dd_bar_is_io(g->dbs) ||
        dd_bar_size(g->regs) < 0x2C)
        dd_panic("gvnic: BAR0 (registers) or BAR2 (doorbells) is missing or not memory");
    dd_cmd_set(g->dev, PCI_CMD_MEM | PCI_CMD_MASTER);
}

/* DESCRIBE_DEVICE: the device's limits, and the GQI-QPL option. */
static void describe(struct gve *g)
{
    gve_dma(4096, &g->page, "the device descriptor");
    struct gvnic_aq_describe c = { .descriptor_addr = gvnic_be64(g->page.iova),
                                   .descriptor_version = gvnic_be32(GVNIC_DESCRIPTOR_VERSION),
                                   .available_length = gvnic_be32(4096) };
    gve_adminq_ok(g, GVNIC_AQ_DESCRIBE_DEVICE, &c, sizeof c, "DESCRIBE_DEVICE");
    struct gvnic_device_descriptor d;
    memcpy(&d, g->page.va, sizeof d);           /* device memory: copied once */
    uint32_t total = gvnic_be16(d.total_length), n = gvnic_be16(d.num_device_options);
    if (total < sizeof d || total > 4096)
        dd_panic("gvnic: device descriptor of %u bytes", total);
    bool qpl = false, dqo = false;
    const uint8_t *p = (const uint8_t *)g->page.va + sizeof d, *end = (const uint8_t *)g->page.va + total;
    for (uint32_t i = 0; i < n; i++) {
        struct gvnic_device_option o;
        if (end - p < (long)sizeof o)
            dd_panic("gvnic: device option %u runs past the descriptor", i);
        memcpy(&o, p, sizeof o);
        uint32_t len = gvnic_be16(o.option_length);
        if ((uint64_t)(end - p) < sizeof o + len)
            dd_panic("gvnic: device option %u runs past the descriptor", i);
        uint16_t id = gvnic_be16(o.option_id);
        if (id == GVNIC_OPT_GQI_QPL && len >= 4 && !o.required_features_mask)
            qpl = true;
        if (id == GVNIC_OPT_DQO_RDA && len >= 4 && !o.required_features_mask)
            dqo = true;
        p += sizeof o + len;
    }
    if (!qpl && !dqo)
        dd_panic("gvnic: the device offers neither GQI-QPL nor DQO-RDA");
    g->dqo = !qpl;                      /* GQI-QPL when offered (as iPXE prefers) */
    memcpy(g->mac, d.mac, sizeof g->mac);
    g->mtu = gvnic_be16(d.mtu);
    g->tx_size = gvnic_be16(d.tx_queue_entries);
    g->rx_size = gvnic_be16(d.rx_queue_entries);
    g->n_counters = gvnic_be16(d.counters);
    g->tx_pages = gvnic_be16(d.tx_pages_per_qpl);
    g->rx_pages = gvnic_be16(d.rx_pages_per_qpl);
    if (g->mtu < 68 || g->mtu + 14u > 1514u || (g->mac[0] & 1u))
        dd_panic("gvnic: MTU %u (this driver takes 68..1500) or multicast MAC", g->mtu);
    if (!g->tx_size || (g->tx_size & (g->tx_size - 1)) || !g->rx_size ||
        (g->rx_size & (g->rx_size - 1)) || (!g->dqo && g->rx_size > g->rx_pages) ||
        g->n_counters < 2 ||
        g->tx_pages * 4096u / GVE_TX_BUF < 1)
        dd_panic("gvnic: rings of %u/%u entries, %u counters, %u/%u pages per list", g->tx_size,
                 g->rx_size, g->n_counters, g->tx_pages, g->rx_pages);
    g->tx_bufs = g->tx_pages * (4096u / GVE_TX_BUF);
    if (g->tx_bufs > g->tx_size)
        g->tx_bufs = g->tx_size;
}

uint32_t gve_resource(const struct gve *g, const struct dd_dma *res, bool counter)
{
    struct gvnic_queue_resources r;
    memcpy(&r, res->va, sizeof r);
    uint32_t v = gvnic_be32(counter ? r.counter_index : r.db_index);
    if (counter ? v >= g->n_counters : (uint64_t)v * 4 + 4 > dd_bar_size(g->dbs))
        dd_panic("gvnic: the device gave a queue %s %u, outside its range",
                 counter ? "event counter" : "doorbell", v);
    return v;
}

static const struct gve_path *path(const struct gve *g)
{
    return g->dqo ? &gve_dqo_path : &gve_gqi_path;
}

static void bring_up(struct gve *g)
{
    gve_adminq_start(g);
    describe(g);
    dd_boot_mark(MOAT_BOOT_DEVICE);

    gve_dma((uint64_t)g->n_counters * 4, &g->counters, "the event counters");
    gve_dma(GVE_BLOCKS * 64, &g->irq_dbs, "the interrupt doorbell indices");
    for (unsigned b = 0; b < GVE_BLOCKS + 1; b++)      /* blocks, then management */
        g->irq[b] = dd_irq_msix(g->dev, b, NULL, NULL);
    struct gvnic_aq_configure_resources rc = {
        .counter_array = gvnic_be64(g->counters.iova), .irq_db_addr = gvnic_be64(g->irq_dbs.iova),
        .num_counters = gvnic_be32(g->n_counters), .num_irq_dbs = gvnic_be32(GVE_BLOCKS),
        .irq_db_stride = gvnic_be32(64),
        .queue_format = g->dqo ? GVNIC_FMT_DQO_RDA : GVNIC_FMT_GQI_QPL,
    };
    gve_adminq_ok(g, GVNIC_AQ_CONFIGURE_DEVICE_RESOURCES, &rc, sizeof rc,
                  "CONFIGURE_DEVICE_RESOURCES");
    for (unsigned b = 0; b < GVE_BLOCKS; b++) {
        uint32_t be;
        memcpy(&be, (uint8_t *)g->irq_dbs.va + b * 64, 4);
        g->irq_db[b] = gvnic_be32(be);
        if ((uint64_t)g->irq_db[b] * 4 + 4 > dd_bar_size(g->dbs))
            dd_panic("gvnic: interrupt doorbell %u of block %u is outside BAR2", g->irq_db[b], b);
    }

    path(g)->queues(g);
    g->link_up = (gve_rd(g, GVNIC_REG_DEVICE_STATUS) & GVNIC_DEV_LINK_UP) != 0;
    dd_boot_mark(MOAT_BOOT_QUEUES);
}

/* Orderly stop (dd_stop_hook): sessions are drained; let the device send
 * what is in its TX ring (bounded), then undo bring-up in reverse, as the
 * device expects: destroy the queues, unregister the page lists (GQI),
 * deconfigure the resources, release the admin queue (a reset). Any
 * failure is a panic: moat quiesces the device either way. */
static void teardown(void *ctx)
{
    struct gve *g = ctx;
    uint64_t deadline = dd_now_ns() + GVE_TIMEOUT_NS;
    while (g->tx_done != g->tx_req && dd_now_ns() < deadline)
        dd_run_once();
    uint32_t unsent = g->tx_req - g->tx_done;
    g->live = false;                    /* the pollers leave the device alone */
    struct gvnic_aq_destroy_queue q = { .queue_id = 0 };
    gve_adminq_ok(g, GVNIC_AQ_DESTROY_TX_QUEUE, &q, sizeof q, "DESTROY_TX_QUEUE");
    gve_adminq_ok(g, GVNIC_AQ_DESTROY_RX_QUEUE, &q, sizeof q, "DESTROY_RX_QUEUE");
    for (uint32_t id = 0; !g->dqo && id < 2; id++) {
        struct gvnic_aq_unregister_page_list u = { .page_list_id = gvnic_be32(id) };
        gve_adminq_ok(g, GVNIC_AQ_UNREGISTER_PAGE_LIST, &u, sizeof u, "UNREGISTER_PAGE_LIST");
    }
    gve_adminq_ok(g, GVNIC_AQ_DECONFIGURE_DEVICE_RESOURCES, &q, 0,
                  "DECONFIGURE_DEVICE_RESOURCES");
    gve_adminq_release(g);
    dd_log("gvnic: torn down (queues destroyed%s, resources deconfigured, admin queue "
           "released; %u frame%s left unsent)", g->dqo ? "" : ", page lists unregistered",
           unsent, unsent == 1 ? "" : "s");
}

void gve_start(struct gve *g, const char *args)
{
    if (!dd_arg(args, "name", g->cfg.name, sizeof g->cfg.name))
        memcpy(g->cfg.name, "nic0", 5);
    if (g->cfg.name[0] == '\0')
        dd_panic("gvnic: name= is empty");
    g->cfg.sessions = dd_arg_u32(args, "sessions", 4, 1, MOAT_SESSION_SLOTS);
    g->cfg.spin_ns = dd_arg_u32(args, "spin_us", DD_SPIN_US_DEFAULT, 0, 1000000) * (uint64_t)1000;
    g->cfg.wild_qpl = dd_arg_u32(args, "wild_qpl", 0, 0, 1) != 0;
    find_device(g);
    bring_up(g);

    struct moat_nic_info info = { .mtu = (uint16_t)g->mtu, .max_frame = g->mtu + 14u,
                                  .flags = MOAT_NIC_F_LINK_STATUS, .queues = g->cfg.sessions };
    memcpy(info.mac, g->mac, sizeof info.mac);
    g->nic = dd_nic_serve(g->cfg.name, &info, &path(g)->nic, g);
    if (!g->nic)
        dd_panic("gvnic: moat refused the cap '%s'", g->cfg.name);
    if (!g->link_up)
        dd_nic_link(g->nic, false);
    path(g)->start(g);
    dd_spin_set(g->cfg.spin_ns);
    if (!dd_poll_add(path(g)->poll, g) || !dd_idle_add(path(g)->idle, g))
        dd_panic("gvnic: no poller slot left");
    const uint8_t *m = g->mac;
    dd_log("gvnic: %s, MTU %u, mac %02x:%02x:%02x:%02x:%02x:%02x, rings tx %u rx %u, "
           "%u TX buffers, link %s, serving %s", path(g)->name, g->mtu, m[0], m[1], m[2], m[3],
           m[4], m[5],
           g->tx_size, g->rx_size, g->tx_bufs, g->link_up ? "up" : "down", g->cfg.name);
    dd_stop_hook(teardown, g);
}

void domain_main(const char *args)
{
    gve_start(&drv, args);
    dd_ready();
    dd_run();
}
