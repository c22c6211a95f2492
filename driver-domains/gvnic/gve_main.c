/*
 * gvnic — the gVNIC driver domain: drives the Google Virtual Ethernet
 * function (1ae0:0042) assigned to the domain in its GQI-QPL queue format
 * and serves it as the Nic cap "<domain>.<name>".
 *
 * Bring-up: reset (driver-status handshake), admin queue by base/length,
 * DESCRIBE_DEVICE (MAC, MTU, ring sizes, the GQI-QPL option is required),
 * CONFIGURE_DEVICE_RESOURCES (event counters, two notification blocks: TX
 * and RX, interrupt doorbells masked while polling), one page list per
 * queue, one TX and one RX queue, every RX slot filled.
 * A device that asks for a reset (or stops answering) fail-stops the
 * domain; the supervisor restarts it with a freshly reset device.
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
#include "gk/kstring.h"
#include "moat/pci_regs.h"

static struct gve drv;

static uint32_t arg32(const char *args, const char *key, uint32_t def, uint32_t lo, uint32_t hi)
{
    uint64_t v = dd_arg_u64(args, key, def);
    if (v < lo || v > hi)
        dd_panic("gvnic: %s=%lu is outside %u..%u", key, v, lo, hi);
    return (uint32_t)v;
}

static void dma_or_panic(uint64_t size, struct dd_dma *out, const char *what)
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
    dma_or_panic(4096, &g->page, "the device descriptor");
    struct gvnic_aq_describe c = { .descriptor_addr = gvnic_be64(g->page.iova),
                                   .descriptor_version = gvnic_be32(GVNIC_DESCRIPTOR_VERSION),
                                   .available_length = gvnic_be32(4096) };
    gve_adminq_ok(g, GVNIC_AQ_DESCRIBE_DEVICE, &c, sizeof c, "DESCRIBE_DEVICE");
    struct gvnic_device_descriptor d;
    memcpy(&d, g->page.va, sizeof d);           /* device memory: copied once */
    uint32_t total = gvnic_be16(d.total_length), n = gvnic_be16(d.num_device_options);
    if (total < sizeof d || total > 4096)
        dd_panic("gvnic: device descriptor of %u bytes", total);
    bool qpl = false;
    const uint8_t *p = (const uint8_t *)g->page.va + sizeof d, *end = (const uint8_t *)g->page.va + total;
    for (uint32_t i = 0; i < n; i++) {
        struct gvnic_device_option o;
        if (end - p < (long)sizeof o)
            dd_panic("gvnic: device option %u runs past the descriptor", i);
        memcpy(&o, p, sizeof o);
        uint32_t len = gvnic_be16(o.option_length);
        if ((uint64_t)(end - p) < sizeof o + len)
            dd_panic("gvnic: device option %u runs past the descriptor", i);
        if (gvnic_be16(o.option_id) == GVNIC_OPT_GQI_QPL && len >= 4 && !o.required_features_mask)
            qpl = true;
        p += sizeof o + len;
    }
    if (!qpl)
        dd_panic("gvnic: the device does not offer the GQI-QPL queue format");
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
        (g->rx_size & (g->rx_size - 1)) || g->rx_size > g->rx_pages || g->n_counters < 2 ||
        g->tx_pages * 4096u / GVE_TX_BUF < 1)
        dd_panic("gvnic: rings of %u/%u entries, %u counters, %u/%u pages per list", g->tx_size,
                 g->rx_size, g->n_counters, g->tx_pages, g->rx_pages);
    g->tx_bufs = g->tx_pages * (4096u / GVE_TX_BUF);
    if (g->tx_bufs > g->tx_size)
        g->tx_bufs = g->tx_size;
}

/* A page list of n fresh pages, registered as id. */
static void page_list(struct gve *g, uint32_t id, uint32_t n, struct dd_dma *pages,
                      struct dd_dma *list)
{
    dma_or_panic((uint64_t)n * 4096, pages, "a page list");
    dma_or_panic((uint64_t)n * 8, list, "a page address list");
    for (uint32_t i = 0; i < n; i++) {
        uint64_t be = gvnic_be64(pages->iova + (uint64_t)i * 4096);
        memcpy((uint8_t *)list->va + (uint64_t)i * 8, &be, 8);
    }
    if (g->cfg.wild_qpl) {
        uint64_t be = gvnic_be64((uint64_t)(uintptr_t)dd_mem_alloc(4096));
        memcpy(list->va, &be, 8);
        dd_log("gvnic: wild_qpl=1: page 0 of list %u is private RAM", id);
    }
    struct gvnic_aq_register_page_list c = { .page_list_id = gvnic_be32(id),
                                             .num_pages = gvnic_be32(n),
                                             .page_address_list = gvnic_be64(list->iova),
                                             .page_size = gvnic_be64(4096) };
    gve_adminq_ok(g, GVNIC_AQ_REGISTER_PAGE_LIST, &c, sizeof c, "REGISTER_PAGE_LIST");
}

static uint32_t resource(const struct dd_dma *res, bool counter)
{
    struct gvnic_queue_resources r;
    memcpy(&r, res->va, sizeof r);
    return gvnic_be32(counter ? r.counter_index : r.db_index);
}

static void bring_up(struct gve *g)
{
    gve_adminq_start(g);
    describe(g);
    dd_boot_mark(MOAT_BOOT_DEVICE);

    dma_or_panic((uint64_t)g->n_counters * 4, &g->counters, "the event counters");
    dma_or_panic(GVE_BLOCKS * 64, &g->irq_dbs, "the interrupt doorbell indices");
    for (unsigned b = 0; b < GVE_BLOCKS + 1; b++)      /* blocks, then management */
        g->irq[b] = dd_irq_msix(g->dev, b, NULL, NULL);
    struct gvnic_aq_configure_resources rc = {
        .counter_array = gvnic_be64(g->counters.iova), .irq_db_addr = gvnic_be64(g->irq_dbs.iova),
        .num_counters = gvnic_be32(g->n_counters), .num_irq_dbs = gvnic_be32(GVE_BLOCKS),
        .irq_db_stride = gvnic_be32(64), .queue_format = GVNIC_FMT_GQI_QPL,
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

    page_list(g, 0, g->tx_pages, &g->tx_qpl, &g->tx_list);
    page_list(g, 1, g->rx_size, &g->rx_qpl, &g->rx_list);
    dma_or_panic((uint64_t)g->tx_size * 16, &g->tx_ring, "the TX ring");
    dma_or_panic((uint64_t)g->rx_size * 64, &g->rx_desc, "the RX descriptor ring");
    dma_or_panic((uint64_t)g->rx_size * 8, &g->rx_data, "the RX data slots");
    dma_or_panic(64, &g->tx_res, "queue resources");
    dma_or_panic(64, &g->rx_res, "queue resources");
    struct gvnic_aq_create_tx_queue tq = {
        .queue_id = 0, .queue_resources_addr = gvnic_be64(g->tx_res.iova),
        .tx_ring_addr = gvnic_be64(g->tx_ring.iova), .queue_page_list_id = 0,
        .ntfy_id = gvnic_be32(GVE_BLOCK_TX), .tx_ring_size = gvnic_be16((uint16_t)g->tx_size),
    };
    gve_adminq_ok(g, GVNIC_AQ_CREATE_TX_QUEUE, &tq, sizeof tq, "CREATE_TX_QUEUE");
    for (uint32_t i = 0; i < g->rx_size; i++) {        /* slot i: page i */
        uint64_t be = gvnic_be64((uint64_t)i * 4096);
        memcpy((uint8_t *)g->rx_data.va + (uint64_t)i * 8, &be, 8);
    }
    struct gvnic_aq_create_rx_queue rq = {
        .queue_id = 0, .index = 0, .ntfy_id = gvnic_be32(GVE_BLOCK_RX),
        .queue_resources_addr = gvnic_be64(g->rx_res.iova),
        .rx_desc_ring_addr = gvnic_be64(g->rx_desc.iova),
        .rx_data_ring_addr = gvnic_be64(g->rx_data.iova), .queue_page_list_id = gvnic_be32(1),
        .rx_ring_size = gvnic_be16((uint16_t)g->rx_size), .packet_buffer_size = gvnic_be16(2048),
    };
    gve_adminq_ok(g, GVNIC_AQ_CREATE_RX_QUEUE, &rq, sizeof rq, "CREATE_RX_QUEUE");
    g->tx_db = resource(&g->tx_res, false);
    g->tx_counter = resource(&g->tx_res, true);
    g->rx_db = resource(&g->rx_res, false);
    if ((uint64_t)g->tx_db * 4 + 4 > dd_bar_size(g->dbs) ||
        (uint64_t)g->rx_db * 4 + 4 > dd_bar_size(g->dbs) || g->tx_counter >= g->n_counters)
        dd_panic("gvnic: queue doorbells %u/%u or counter %u outside their ranges", g->tx_db,
                 g->rx_db, g->tx_counter);
    g->link_up = (gve_rd(g, GVNIC_REG_DEVICE_STATUS) & GVNIC_DEV_LINK_UP) != 0;
    dd_boot_mark(MOAT_BOOT_QUEUES);
}

void domain_main(const char *args)
{
    struct gve *g = &drv;
    if (!dd_arg(args, "name", g->cfg.name, sizeof g->cfg.name))
        memcpy(g->cfg.name, "nic0", 5);
    if (g->cfg.name[0] == '\0')
        dd_panic("gvnic: name= is empty");
    g->cfg.sessions = arg32(args, "sessions", 4, 1, MOAT_SESSION_SLOTS);
    g->cfg.spin_ns = arg32(args, "spin_us", DD_SPIN_US_DEFAULT, 0, 1000000) * (uint64_t)1000;
    g->cfg.wild_qpl = arg32(args, "wild_qpl", 0, 0, 1) != 0;
    find_device(g);
    bring_up(g);

    struct moat_nic_info info = { .mtu = (uint16_t)g->mtu, .max_frame = g->mtu + 14u,
                                  .flags = MOAT_NIC_F_LINK_STATUS, .queues = g->cfg.sessions };
    memcpy(info.mac, g->mac, sizeof info.mac);
    static const struct dd_nic_ops ops = { .tx = gve_tx, .tx_flush = gve_tx_flush };
    g->nic = dd_nic_serve(g->cfg.name, &info, &ops, g);
    if (!g->nic)
        dd_panic("gvnic: moat refused the cap '%s'", g->cfg.name);
    if (!g->link_up)
        dd_nic_link(g->nic, false);
    gve_rx_start(g);
    dd_spin_set(g->cfg.spin_ns);
    if (!dd_poll_add(gve_poll, g) || !dd_idle_add(gve_idle, g))
        dd_panic("gvnic: no poller slot left");
    const uint8_t *m = g->mac;
    dd_log("gvnic: GQI-QPL, MTU %u, mac %02x:%02x:%02x:%02x:%02x:%02x, rings tx %u rx %u, "
           "%u TX buffers, link %s, serving %s", g->mtu, m[0], m[1], m[2], m[3], m[4], m[5],
           g->tx_size, g->rx_size, g->tx_bufs, g->link_up ? "up" : "down", g->cfg.name);
    dd_ready();
    dd_run();
}
