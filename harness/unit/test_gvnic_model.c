/* The gVNIC model (devmodel/gvnic.h), driven as a driver would: PCI
 * identity, the big-endian register file, both ways of setting up the
 * admin queue, every admin command with the status each malformed field
 * gets, page lists and queues accounted, and a table that pins the ABI's
 * offsets, opcodes and sizes (moat/gvnic_abi.h) to the public headers. */
#include <criterion/criterion.h>
#include <stddef.h>
#include <string.h>
#include "broker.h"
#include "fake_platform.h"
#include "gvnic.h"
#include "moat/gvnic_abi.h"
#include "moat/layout.h"
#include "moat/pci_regs.h"
#include "netback.h"
#include "pci.h"

#define DOM      5u
#define WIN      MOAT_GPA_DMA_BASE
#define WIN_SIZE (8ull << 20)
#define AQ       (WIN + 0x0000)         /* admin queue, one page */
#define BUF      (WIN + 0x1000)         /* command buffers from here */
#define PAGES    (WIN + 0x100000)       /* QPL pages */
#define OUTSIDE  (WIN + WIN_SIZE + 0x100000)

static const uint8_t peer_mac[6] = { 0x02, 0, 0, 0, 0, 0x77 };

static struct {
    struct netback_port *peer;
    uint8_t got[NETBACK_FRAME_MAX];
    size_t got_len;
    int got_frames;
    struct broker br;
    struct pci_bus bus;
    struct pci_func *f;
    struct fake_platform p;
    struct dma_mapping map;
    uint8_t *mem;
    uint32_t prod;
} t;

static uint8_t *at(uint64_t iova) { return t.mem + (iova - WIN); }

/* The switch's test port: frames the device sent (synchronously, on the
 * thread that rang the doorbell). */
static void peer_rx(void *ctx, const void *frame, size_t len)
{
    (void)ctx;
    memcpy(t.got, frame, len);
    t.got_len = len;
    t.got_frames++;
}

static void setup_opts(const char *opts)
{
    char err[256];
    struct dma_handle h;
    memset(&t, 0, sizeof t);
    struct netback_config cfg;
    netback_config_default(&cfg);
    cfg.no_gateway = true;
    cr_assert(netback_setup(&cfg, err, sizeof err), "netback: %s", err);
    t.peer = netback_port_add(netback_get(), "test.peer", peer_mac, peer_rx, NULL, err, sizeof err);
    cr_assert_not_null(t.peer, "%s", err);
    broker_init(&t.br, 64ull << 20, NULL);
    cr_assert(broker_grant(&t.br, DOM, WIN, WIN_SIZE, DMA_BIDIR, &h, err, sizeof err), "%s", err);
    fake_platform_init(&t.p, 0x40, 5);
    struct pci_platform_ops plat = fake_platform_ops(&t.p);
    pci_bus_init(&t.bus, "gdom", DOM, &t.br, &plat);
    cr_assert(gvnic_create(&t.bus, "gvnic0", 17, opts, err, sizeof err), "create: %s", err);
    t.f = t.bus.slot[1];
    cr_assert(pci_cfg_write(t.f, PCI_COMMAND, 2, PCI_CMD_MEM | PCI_CMD_MASTER));
    t.mem = broker_dma_map(&t.br, DOM, "test", WIN, WIN_SIZE, DMA_BIDIR, &t.map);
    cr_assert_not_null(t.mem);
}
static void setup(void) { setup_opts(""); }

static void teardown(void)
{
    if (!t.f)
        return;
    pci_bus_fini(&t.bus);
    netback_port_remove(t.peer);
    netback_shutdown();
    broker_dma_unmap(&t.br, &t.map);
    broker_fini(&t.br);
    t.f = NULL;
}

/* Register accesses as the driver makes them (big-endian values). */
static enum bus_result bar(unsigned n, uint64_t off, uint32_t size, bool write, uint64_t *v)
{
    struct bus_access a = { .addr = t.f->bar[n].base + off, .size = size, .is_write = write,
                            .value = *v };
    enum bus_result r = pci_mmio_access(&t.bus, &a);
    *v = a.value;
    return r;
}
static uint32_t rd(uint64_t off)
{
    uint64_t v = 0;
    bar(GVNIC_BAR_REGS, off, 4, false, &v);
    return gvnic_be32((uint32_t)v);
}
static void wr(uint64_t off, uint32_t v)
{
    uint64_t raw = gvnic_be32(v);
    bar(GVNIC_BAR_REGS, off, 4, true, &raw);
}

static struct gvnic_stats stats(void)
{
    struct gvnic_stats s;
    cr_assert(gvnic_stats_get(t.f, &s));
    return s;
}

/* Admin queue by base/length and RUN (revision 1). */
static void aq_up(void)
{
    uint64_t len = gvnic_be16(4096);
    bar(GVNIC_BAR_REGS, GVNIC_REG_ADMINQ_LENGTH, 2, true, &len);
    wr(GVNIC_REG_ADMINQ_BASE_HI, (uint32_t)(AQ >> 32));
    wr(GVNIC_REG_ADMINQ_BASE_LO, (uint32_t)AQ);
    wr(GVNIC_REG_DRIVER_STATUS, GVNIC_DRV_RUN);
    t.prod = 0;
}

/* One command: payload in slot prod, doorbell, the status it got. */
static uint32_t cmd(uint32_t opcode, const void *payload, size_t len)
{
    uint8_t *e = at(AQ) + (t.prod % 64) * GVNIC_AQ_ENTRY_SIZE;
    memset(e, 0, GVNIC_AQ_ENTRY_SIZE);
    uint32_t op = gvnic_be32(opcode);
    memcpy(e, &op, 4);
    memcpy(e + 8, payload, len);
    t.prod++;
    wr(GVNIC_REG_ADMINQ_DOORBELL, t.prod);
    cr_assert_eq(rd(GVNIC_REG_ADMINQ_EVENTS), t.prod, "the event counter did not follow");
    uint32_t st;
    memcpy(&st, e + 4, 4);
    return gvnic_be32(st);
}

#define CMD(op, c) cmd((op), &(c), sizeof(c))

static uint32_t configure(uint32_t irq_dbs)
{
    struct gvnic_aq_configure_resources c = {
        .counter_array = gvnic_be64(BUF + 0x1000), .irq_db_addr = gvnic_be64(BUF + 0x2000),
        .num_counters = gvnic_be32(4), .num_irq_dbs = gvnic_be32(irq_dbs),
        .irq_db_stride = gvnic_be32(64), .queue_format = GVNIC_FMT_GQI_QPL,
    };
    return CMD(GVNIC_AQ_CONFIGURE_DEVICE_RESOURCES, c);
}

static uint32_t register_qpl(uint32_t id, uint32_t pages, uint64_t first)
{
    uint64_t list = BUF + 0x4000 + (uint64_t)id % 8 * 0x1000;
    for (uint32_t i = 0; i < pages; i++) {
        uint64_t be = gvnic_be64(first + (uint64_t)i * 4096);
        memcpy(at(list) + i * 8, &be, 8);
    }
    struct gvnic_aq_register_page_list c = { .page_list_id = gvnic_be32(id),
                                             .num_pages = gvnic_be32(pages),
                                             .page_address_list = gvnic_be64(list),
                                             .page_size = gvnic_be64(4096) };
    return CMD(GVNIC_AQ_REGISTER_PAGE_LIST, c);
}

static uint32_t create_tx(uint32_t q, uint32_t qpl, uint32_t ntfy)
{
    struct gvnic_aq_create_tx_queue c = {
        .queue_id = gvnic_be32(q), .queue_resources_addr = gvnic_be64(BUF + 0xC000 + q * 64),
        .tx_ring_addr = gvnic_be64(BUF + 0x10000), .queue_page_list_id = gvnic_be32(qpl),
        .ntfy_id = gvnic_be32(ntfy), .tx_ring_size = gvnic_be16(256),
    };
    return CMD(GVNIC_AQ_CREATE_TX_QUEUE, c);
}

static uint32_t create_rx(uint32_t q, uint32_t qpl, uint32_t ntfy)
{
    struct gvnic_aq_create_rx_queue c = {
        .queue_id = gvnic_be32(q), .ntfy_id = gvnic_be32(ntfy),
        .queue_resources_addr = gvnic_be64(BUF + 0xD000 + q * 64),
        .rx_desc_ring_addr = gvnic_be64(BUF + 0x20000), .rx_data_ring_addr = gvnic_be64(BUF + 0x30000),
        .queue_page_list_id = gvnic_be32(qpl), .rx_ring_size = gvnic_be16(512),
        .packet_buffer_size = gvnic_be16(2048),
    };
    return CMD(GVNIC_AQ_CREATE_RX_QUEUE, c);
}

/* ---- identity and registers ------------------------------------------------------- */

Test(gvnic, pci_identity_bars_and_registers, .init = setup, .fini = teardown)
{
    cr_assert_eq(pci_cfg_read(t.f, PCI_VENDOR_ID, 2), GVNIC_PCI_VENDOR);
    cr_assert_eq(pci_cfg_read(t.f, PCI_DEVICE_ID, 2), GVNIC_PCI_DEVICE);
    cr_assert_eq(pci_cfg_read(t.f, PCI_SUBSYS_VENDOR, 2), GVNIC_PCI_SUBSYS_VENDOR);
    cr_assert_eq(pci_cfg_read(t.f, PCI_SUBSYS_ID, 2), GVNIC_PCI_SUBSYS_ID);
    cr_assert_eq(pci_cfg_read(t.f, PCI_REVISION_ID, 1), GVNIC_PCI_REVISION);
    cr_assert_eq(pci_cfg_read(t.f, PCI_REVISION_ID, 4) >> 8, GVNIC_PCI_CLASS);
    for (unsigned n = 0; n < 3; n++)
        cr_assert_eq(t.f->bar[n].kind, PCI_BAR_MEM32, "BAR%u is not a 32-bit memory BAR", n);
    cr_assert_eq(t.f->msix.entries, 5, "2 queues each way + the management vector");
    cr_assert_eq(rd(GVNIC_REG_MAX_TX_QUEUES), 2);
    cr_assert_eq(rd(GVNIC_REG_MAX_RX_QUEUES), 2);
    cr_assert(rd(GVNIC_REG_DEVICE_STATUS) & GVNIC_DEV_LINK_UP, "link should start up");
    /* wrong widths and offsets are refused and counted */
    uint64_t v = 0;
    bar(GVNIC_BAR_REGS, GVNIC_REG_MAX_TX_QUEUES, 2, false, &v);
    cr_assert_eq(v, 0xFFFFFFFFFFFFFFFFull, "a 16-bit read of a 32-bit register answered");
    wr(0x100, 1);
    wr(GVNIC_REG_DRIVER_STATUS, 0x80);
    cr_assert_eq(stats().bad_registers, 3);
    cr_assert_eq(atomic_load(&t.p.refused), 3, "the platform was not told");
}

Test(gvnic, link_down_option_and_bad_options)
{
    setup_opts("link=down:queues=1:format=dqo-rda:mtu=1500");
    cr_assert_not(rd(GVNIC_REG_DEVICE_STATUS) & GVNIC_DEV_LINK_UP);
    cr_assert_eq(t.f->msix.entries, 3);
    teardown();
    char err[256];
    struct netback_config cfg;
    netback_config_default(&cfg);
    cfg.no_gateway = true;
    cr_assert(netback_setup(&cfg, err, sizeof err), "netback: %s", err);
    struct pci_bus b;
    struct broker br;
    broker_init(&br, 1 << 20, NULL);
    struct fake_platform p;
    fake_platform_init(&p, 0x40, 3);
    struct pci_platform_ops plat = fake_platform_ops(&p);
    pci_bus_init(&b, "x", 1, &br, &plat);
    static const char *const bad[] = { "format=gqi-rda", "queues=9", "tx_ring=300", "mtu=20",
                                       "mac=01-00-00-00-00-01", "link=sideways", "speed=1" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        cr_assert_not(gvnic_create(&b, "g", 17, bad[i], err, sizeof err), "%s accepted", bad[i]);
        cr_assert(strstr(err, "dev=gvnic"), "%s: the error does not name the device: %s", bad[i],
                  err);
    }
    pci_bus_fini(&b);
    broker_fini(&br);
    netback_shutdown();
}

/* ---- admin queue set-up and reset ------------------------------------------------------ */

Test(gvnic, admin_queue_by_pfn_and_by_base_length_and_both_resets, .init = setup,
     .fini = teardown)
{
    wr(GVNIC_REG_ADMINQ_PFN, (uint32_t)(AQ / 4096));
    t.prod = 0;
    uint8_t desc[256];
    struct gvnic_aq_describe d = { .descriptor_addr = gvnic_be64(BUF),
                                   .descriptor_version = gvnic_be32(1),
                                   .available_length = gvnic_be32(sizeof desc) };
    cr_assert_eq(CMD(GVNIC_AQ_DESCRIBE_DEVICE, d), GVNIC_AQ_PASSED);
    cr_assert_eq(rd(GVNIC_REG_ADMINQ_PFN), AQ / 4096);
    /* legacy reset: PFN 0 reads back 0, the event counter restarts */
    wr(GVNIC_REG_ADMINQ_PFN, 0);
    cr_assert_eq(rd(GVNIC_REG_ADMINQ_PFN), 0);
    cr_assert_eq(rd(GVNIC_REG_ADMINQ_EVENTS), 0);
    /* a doorbell with no admin queue is refused */
    wr(GVNIC_REG_ADMINQ_DOORBELL, 1);
    cr_assert_eq(stats().aq_bad_doorbell, 1);
    /* revision 1: base/length then RUN; reset by driver status */
    aq_up();
    cr_assert_eq(CMD(GVNIC_AQ_DESCRIBE_DEVICE, d), GVNIC_AQ_PASSED);
    cr_assert_eq(configure(2), GVNIC_AQ_PASSED);
    wr(GVNIC_REG_DRIVER_STATUS, GVNIC_DRV_RESET);
    cr_assert(rd(GVNIC_REG_DEVICE_STATUS) & GVNIC_DEV_IS_RESET, "DEVICE_IS_RESET not reported");
    aq_up();
    cr_assert_not(rd(GVNIC_REG_DEVICE_STATUS) & GVNIC_DEV_IS_RESET, "still reset after RUN");
    cr_assert_eq(configure(2), GVNIC_AQ_PASSED, "the reset did not release the resources");
    cr_assert_eq(stats().resets, 2);
}

Test(gvnic, hostile_doorbells_and_unknown_opcodes, .init = setup, .fini = teardown)
{
    aq_up();
    wr(GVNIC_REG_ADMINQ_DOORBELL, 65);            /* more than the 64 entries */
    cr_assert_eq(rd(GVNIC_REG_ADMINQ_EVENTS), 0, "commands ran past the queue");
    cr_assert_eq(stats().aq_bad_doorbell, 1);
    uint8_t none[8] = { 0 };
    cr_assert_eq(cmd(0x77, none, sizeof none), GVNIC_AQ_UNIMPLEMENTED);
    cr_assert_eq(cmd(GVNIC_AQ_CONFIGURE_RSS, none, sizeof none), GVNIC_AQ_UNIMPLEMENTED);
    /* the queue wraps: 70 more commands all answered */
    for (int i = 0; i < 70; i++)
        cr_assert_eq(cmd(0x77, none, sizeof none), GVNIC_AQ_UNIMPLEMENTED);
    cr_assert_eq(stats().aq_commands, 72);
}

/* ---- commands -------------------------------------------------------------------------- */

Test(gvnic, describe_device_descriptor_and_options, .init = setup, .fini = teardown)
{
    aq_up();
    struct gvnic_aq_describe d = { .descriptor_addr = gvnic_be64(BUF),
                                   .descriptor_version = gvnic_be32(1),
                                   .available_length = gvnic_be32(4096) };
    cr_assert_eq(CMD(GVNIC_AQ_DESCRIBE_DEVICE, d), GVNIC_AQ_PASSED);
    struct gvnic_device_descriptor dd;
    memcpy(&dd, at(BUF), sizeof dd);
    cr_assert_eq(gvnic_be16(dd.mtu), 1460, "GCE's MTU by default");
    cr_assert_eq(gvnic_be16(dd.tx_queue_entries), 256);
    cr_assert_eq(gvnic_be16(dd.rx_queue_entries), 512);
    cr_assert_eq(gvnic_be16(dd.counters), 4);
    cr_assert(dd.mac[0] == 0x52 && !(dd.mac[0] & 1), "default MAC not locally administered");
    uint16_t n = gvnic_be16(dd.num_device_options), total = gvnic_be16(dd.total_length);
    cr_assert_eq(n, 3);
    const uint8_t *p = at(BUF) + sizeof dd, *end = at(BUF) + total;
    bool qpl = false, jumbo = false, bufs = false;
    for (uint16_t i = 0; i < n; i++) {
        struct gvnic_device_option o;
        memcpy(&o, p, sizeof o);
        cr_assert_eq(o.required_features_mask, 0, "option %u requires features", i);
        uint16_t id = gvnic_be16(o.option_id), len = gvnic_be16(o.option_length);
        qpl |= id == GVNIC_OPT_GQI_QPL && len == 4;
        jumbo |= id == GVNIC_OPT_JUMBO_FRAMES && len == 8;
        bufs |= id == GVNIC_OPT_BUFFER_SIZES && len == 8;
        p += sizeof o + len;
        cr_assert_leq(p, end, "option %u runs past total_length", i);
    }
    cr_assert(qpl && jumbo && bufs, "options: GQI_QPL %d, jumbo %d, buffer sizes %d", qpl, jumbo,
              bufs);
    cr_assert_eq(p, end, "total_length does not end at the last option");
    /* malformed */
    d.descriptor_version = gvnic_be32(2);
    cr_assert_eq(CMD(GVNIC_AQ_DESCRIBE_DEVICE, d), GVNIC_AQ_INVALID_ARGUMENT);
    d.descriptor_version = gvnic_be32(1);
    d.available_length = gvnic_be32(40);
    cr_assert_eq(CMD(GVNIC_AQ_DESCRIBE_DEVICE, d), GVNIC_AQ_OUT_OF_RANGE);
    d.available_length = gvnic_be32(4096);
    d.descriptor_addr = gvnic_be64(OUTSIDE);
    cr_assert_eq(CMD(GVNIC_AQ_DESCRIBE_DEVICE, d), GVNIC_AQ_PERMISSION_DENIED);
    cr_assert_eq(atomic_load(&t.p.dma_refused), 1, "the refusal was not reported");
}

Test(gvnic, resources_page_lists_and_queues, .init = setup, .fini = teardown)
{
    aq_up();
    cr_assert_eq(create_tx(0, 1, 0), GVNIC_AQ_FAILED_PRECONDITION, "a queue before resources");
    cr_assert_eq(configure(5), GVNIC_AQ_INVALID_ARGUMENT, "more blocks than vectors");
    cr_assert_eq(configure(4), GVNIC_AQ_PASSED);
    cr_assert_eq(configure(4), GVNIC_AQ_ALREADY_EXISTS);
    for (uint32_t i = 0; i < 4; i++) {
        uint32_t db;
        memcpy(&db, at(BUF + 0x2000 + i * 64), 4);
        cr_assert_eq(gvnic_be32(db), i, "irq doorbell index of block %u", i);
    }
    /* page lists */
    cr_assert_eq(register_qpl(1, 64, PAGES), GVNIC_AQ_PASSED);
    cr_assert_eq(register_qpl(1, 64, PAGES), GVNIC_AQ_ALREADY_EXISTS);
    cr_assert_eq(register_qpl(2, 4, PAGES + 8), GVNIC_AQ_INVALID_ARGUMENT, "unaligned page");
    cr_assert_eq(register_qpl(3, 4, OUTSIDE), GVNIC_AQ_PERMISSION_DENIED, "page outside");
    cr_assert_eq(register_qpl(GVNIC_RAW_ADDRESSING_QPL_ID, 4, PAGES), GVNIC_AQ_INVALID_ARGUMENT);
    cr_assert_eq(register_qpl(4, 512, PAGES + 0x40000), GVNIC_AQ_PASSED);
    cr_assert_eq(stats().pages_registered, 576);
    /* queues */
    cr_assert_eq(create_tx(0, 9, 0), GVNIC_AQ_NOT_FOUND, "a page list never registered");
    cr_assert_eq(create_tx(2, 1, 0), GVNIC_AQ_OUT_OF_RANGE, "queue id past max_tx_queues");
    cr_assert_eq(create_tx(0, 1, 4), GVNIC_AQ_OUT_OF_RANGE, "notify block past num_irq_dbs");
    cr_assert_eq(create_tx(0, 1, 0), GVNIC_AQ_PASSED);
    cr_assert_eq(create_tx(0, 1, 0), GVNIC_AQ_ALREADY_EXISTS);
    cr_assert_eq(create_tx(1, 1, 1), GVNIC_AQ_FAILED_PRECONDITION, "two queues on one list");
    struct gvnic_queue_resources r;
    memcpy(&r, at(BUF + 0xC000), sizeof r);
    cr_assert_eq(gvnic_be32(r.counter_index), 0);
    uint32_t tx_db = gvnic_be32(r.db_index);
    cr_assert(tx_db * 4 < 4096 && tx_db >= 4, "TX doorbell %u outside BAR2 or on an irq "
              "doorbell", tx_db);
    cr_assert_eq(create_rx(0, 1, 2), GVNIC_AQ_FAILED_PRECONDITION, "RX on TX's page list");
    cr_assert_eq(create_rx(0, 4, 2), GVNIC_AQ_PASSED);
    memcpy(&r, at(BUF + 0xD000), sizeof r);
    cr_assert_neq(gvnic_be32(r.db_index), tx_db, "RX shares TX's doorbell");
    cr_assert_eq(gvnic_be32(r.counter_index), 2, "RX counters follow the TX ones");
    /* teardown order: a used list cannot go, resources not while queues live */
    struct gvnic_aq_unregister_page_list u = { .page_list_id = gvnic_be32(1) };
    cr_assert_eq(CMD(GVNIC_AQ_UNREGISTER_PAGE_LIST, u), GVNIC_AQ_FAILED_PRECONDITION);
    cr_assert_eq(cmd(GVNIC_AQ_DECONFIGURE_DEVICE_RESOURCES, &u, 0), GVNIC_AQ_FAILED_PRECONDITION);
    struct gvnic_aq_destroy_queue dq = { .queue_id = gvnic_be32(0) };
    cr_assert_eq(CMD(GVNIC_AQ_DESTROY_TX_QUEUE, dq), GVNIC_AQ_PASSED);
    cr_assert_eq(CMD(GVNIC_AQ_DESTROY_TX_QUEUE, dq), GVNIC_AQ_NOT_FOUND);
    cr_assert_eq(CMD(GVNIC_AQ_DESTROY_RX_QUEUE, dq), GVNIC_AQ_PASSED);
    cr_assert_eq(CMD(GVNIC_AQ_UNREGISTER_PAGE_LIST, u), GVNIC_AQ_PASSED);
    cr_assert_eq(CMD(GVNIC_AQ_UNREGISTER_PAGE_LIST, u), GVNIC_AQ_NOT_FOUND);
    cr_assert_eq(cmd(GVNIC_AQ_DECONFIGURE_DEVICE_RESOURCES, &u, 0), GVNIC_AQ_PASSED);
    cr_assert_eq(stats().pages_registered, 512);
    /* a reset releases the rest */
    wr(GVNIC_REG_DRIVER_STATUS, GVNIC_DRV_RESET);
    cr_assert_eq(stats().pages_registered, 0, "page lists left registered after a reset");
}

Test(gvnic, page_lists_are_bounded, .init = setup, .fini = teardown)
{
    aq_up();
    cr_assert_eq(configure(4), GVNIC_AQ_PASSED);
    cr_assert_eq(register_qpl(1, 513, PAGES), GVNIC_AQ_RESOURCE_EXHAUSTED, "longer than a list");
    uint32_t limit = 2 * (64 + 512), done = 0;
    for (uint32_t id = 10; done + 512 <= limit; id++, done += 512)
        cr_assert_eq(register_qpl(id, 512, PAGES), GVNIC_AQ_PASSED);
    cr_assert_eq(register_qpl(99, 512, PAGES), GVNIC_AQ_RESOURCE_EXHAUSTED,
                 "registered past max_registered_pages");
}

Test(gvnic, parameters_and_reports, .init = setup, .fini = teardown)
{
    aq_up();
    struct gvnic_aq_set_driver_parameter sp = { .parameter_type = gvnic_be32(GVNIC_PARAM_MTU),
                                                .parameter_value = gvnic_be64(1400) };
    cr_assert_eq(CMD(GVNIC_AQ_SET_DRIVER_PARAMETER, sp), GVNIC_AQ_PASSED);
    sp.parameter_value = gvnic_be64(9000);
    cr_assert_eq(CMD(GVNIC_AQ_SET_DRIVER_PARAMETER, sp), GVNIC_AQ_OUT_OF_RANGE, "MTU > max");
    sp.parameter_type = gvnic_be32(7);
    cr_assert_eq(CMD(GVNIC_AQ_SET_DRIVER_PARAMETER, sp), GVNIC_AQ_UNIMPLEMENTED);
    struct gvnic_aq_report_link_speed ls = { .link_speed_address = gvnic_be64(BUF + 0x800) };
    cr_assert_eq(CMD(GVNIC_AQ_REPORT_LINK_SPEED, ls), GVNIC_AQ_PASSED);
    uint64_t mbps;
    memcpy(&mbps, at(BUF + 0x800), 8);
    cr_assert_gt(gvnic_be64(mbps), 0, "no link speed written");
    struct gvnic_aq_report_stats rs = { .stats_report_len = gvnic_be64(4096),
                                        .stats_report_addr = gvnic_be64(OUTSIDE) };
    cr_assert_eq(CMD(GVNIC_AQ_REPORT_STATS, rs), GVNIC_AQ_PERMISSION_DENIED);
    rs.stats_report_addr = gvnic_be64(BUF + 0x3000);
    cr_assert_eq(CMD(GVNIC_AQ_REPORT_STATS, rs), GVNIC_AQ_PASSED);
    struct gvnic_aq_get_ptype_map pm = { .ptype_map_len = gvnic_be64(2048),
                                         .ptype_map_addr = gvnic_be64(BUF + 0x8000) };
    cr_assert_eq(CMD(GVNIC_AQ_GET_PTYPE_MAP, pm), GVNIC_AQ_UNIMPLEMENTED, "GQI has no ptypes");
    struct gvnic_aq_verify_driver vd = { .driver_info_len = gvnic_be64(304),
                                         .driver_info_addr = gvnic_be64(BUF + 0x9000) };
    cr_assert_eq(CMD(GVNIC_AQ_VERIFY_DRIVER_COMPATIBILITY, vd), GVNIC_AQ_PASSED);
    /* the driver version streams in byte by byte */
    const char *ver = "GVE-moat-test\n";
    for (const char *c = ver; *c; c++) {
        uint64_t b = (uint8_t)*c;
        cr_assert_eq(bar(GVNIC_BAR_REGS, GVNIC_REG_DRIVER_VERSION, 1, true, &b), BUS_OK);
    }
    cr_assert_eq(stats().bad_registers, 0, "the version string was refused");
}

Test(gvnic, dqo_rda_format_offers_dqo_and_takes_raw_addressing)
{
    setup_opts("format=dqo-rda");
    aq_up();
    struct gvnic_aq_describe d = { .descriptor_addr = gvnic_be64(BUF),
                                   .descriptor_version = gvnic_be32(1),
                                   .available_length = gvnic_be32(4096) };
    cr_assert_eq(CMD(GVNIC_AQ_DESCRIBE_DEVICE, d), GVNIC_AQ_PASSED);
    struct gvnic_device_option o;
    memcpy(&o, at(BUF) + sizeof(struct gvnic_device_descriptor), sizeof o);
    cr_assert_eq(gvnic_be16(o.option_id), GVNIC_OPT_DQO_RDA);
    cr_assert_eq(configure(2), GVNIC_AQ_UNIMPLEMENTED, "a GQI format accepted by a DQO device");
    struct gvnic_aq_configure_resources c = {
        .counter_array = gvnic_be64(BUF + 0x1000), .irq_db_addr = gvnic_be64(BUF + 0x2000),
        .num_counters = gvnic_be32(4), .num_irq_dbs = gvnic_be32(4),
        .irq_db_stride = gvnic_be32(64), .queue_format = GVNIC_FMT_DQO_RDA,
    };
    cr_assert_eq(CMD(GVNIC_AQ_CONFIGURE_DEVICE_RESOURCES, c), GVNIC_AQ_PASSED);
    cr_assert_eq(register_qpl(1, 4, PAGES), GVNIC_AQ_UNIMPLEMENTED, "page lists under RDA");
    struct gvnic_aq_create_tx_queue tq = {
        .queue_id = 0, .queue_resources_addr = gvnic_be64(BUF + 0xC000),
        .tx_ring_addr = gvnic_be64(BUF + 0x10000), .tx_comp_ring_addr = gvnic_be64(BUF + 0x18000),
        .queue_page_list_id = gvnic_be32(GVNIC_RAW_ADDRESSING_QPL_ID),
        .tx_ring_size = gvnic_be16(256), .tx_comp_ring_size = gvnic_be16(512),
    };
    cr_assert_eq(CMD(GVNIC_AQ_CREATE_TX_QUEUE, tq), GVNIC_AQ_PASSED);
    struct gvnic_aq_get_ptype_map pm = { .ptype_map_len = gvnic_be64(2048),
                                         .ptype_map_addr = gvnic_be64(BUF + 0x8000) };
    cr_assert_eq(CMD(GVNIC_AQ_GET_PTYPE_MAP, pm), GVNIC_AQ_PASSED);
    cr_assert_eq(at(BUF + 0x8000)[2], 2, "entry 1 is not IPv4");
    teardown();
}

/* ---- GQI-QPL data path ----------------------------------------------------------------- */

#define TXQPL_PAGES 64u
#define RXQPL_PAGES 512u
#define TX_RING     (BUF + 0x10000)
#define RX_DESC     (BUF + 0x20000)
#define RX_DATA     (BUF + 0x30000)
#define COUNTERS    (BUF + 0x1000)

static void msix_on(void)
{
    uint32_t ctrl = pci_cfg_read(t.f, t.f->msix.cap + 2, 2);
    cr_assert(pci_cfg_write(t.f, t.f->msix.cap + 2, 2, ctrl | 0x8000), "MSI-X enable refused");
    for (unsigned v = 0; v < t.f->msix.entries; v++) {      /* unmask, address, data */
        uint64_t addr = 0xFEE00000, data = 0x40 + v, ctl = 0;
        bar(GVNIC_BAR_MSIX, v * 16, 4, true, &addr);
        bar(GVNIC_BAR_MSIX, v * 16 + 8, 4, true, &data);
        bar(GVNIC_BAR_MSIX, v * 16 + 12, 4, true, &ctl);
    }
}

/* Up to live queues: resources, a TX and an RX page list, both queues, all
 * RX slots filled. */
static void data_up(void)
{
    msix_on();
    aq_up();
    cr_assert_eq(configure(4), GVNIC_AQ_PASSED);
    cr_assert_eq(register_qpl(1, TXQPL_PAGES, PAGES), GVNIC_AQ_PASSED);
    cr_assert_eq(register_qpl(2, RXQPL_PAGES, PAGES + TXQPL_PAGES * 4096), GVNIC_AQ_PASSED);
    cr_assert_eq(create_tx(0, 1, 0), GVNIC_AQ_PASSED);
    cr_assert_eq(create_rx(0, 2, 2), GVNIC_AQ_PASSED);
    for (uint32_t i = 0; i < 512; i++) {
        uint64_t be = gvnic_be64((uint64_t)i * 4096);
        memcpy(at(RX_DATA) + i * 8, &be, 8);
    }
}

/* The device's MAC, as DESCRIBE_DEVICE reports it. */
static void device_mac(uint8_t mac[6])
{
    struct gvnic_aq_describe d = { .descriptor_addr = gvnic_be64(BUF + 0x9000),
                                   .descriptor_version = gvnic_be32(1),
                                   .available_length = gvnic_be32(4096) };
    cr_assert_eq(CMD(GVNIC_AQ_DESCRIBE_DEVICE, d), GVNIC_AQ_PASSED);
    struct gvnic_device_descriptor dd;
    memcpy(&dd, at(BUF + 0x9000), sizeof dd);
    memcpy(mac, dd.mac, 6);
}

static void db(uint32_t index, uint32_t v)
{
    uint64_t raw = gvnic_be32(v);
    bar(GVNIC_BAR_DOORBELLS, (uint64_t)index * 4, 4, true, &raw);
}

static uint32_t queue_db(uint64_t res)
{
    struct gvnic_queue_resources r;
    memcpy(&r, at(res), sizeof r);
    return gvnic_be32(r.db_index);
}

/* A frame of len bytes to peer_mac, its payload byte i = seed + i. */
static void make_frame(uint8_t *f, uint32_t len, uint8_t seed)
{
    memcpy(f, peer_mac, 6);
    memset(f + 6, 0x52, 6);
    f[12] = 0x08;
    f[13] = 0x00;
    for (uint32_t i = 14; i < len; i++)
        f[i] = (uint8_t)(seed + i);
}

/* Packet descriptor (slot d) of len bytes, first segment seg bytes at QPL
 * offset off; cnt descriptors in all. */
static void tx_desc(uint32_t d, uint8_t type, uint8_t cnt, uint16_t len, uint16_t seg, uint64_t off)
{
    uint8_t *p = at(TX_RING) + d * 16;
    memset(p, 0, 16);
    p[0] = type;
    p[3] = cnt;
    uint16_t bl = gvnic_be16(len), bs = gvnic_be16(seg);
    uint64_t bo = gvnic_be64(off);
    memcpy(p + 4, &bl, 2);
    memcpy(p + 6, &bs, 2);
    memcpy(p + 8, &bo, 8);
}

Test(gvnic_gqi, transmit_gathers_segments_and_reports_the_count, .init = setup, .fini = teardown)
{
    data_up();
    uint32_t txdb = queue_db(BUF + 0xC000);
    uint8_t frame[600];
    make_frame(frame, sizeof frame, 3);
    /* one packet in two segments across the QPL's first page boundary */
    memcpy(at(PAGES) + 4096 - 100, frame, 100);
    memcpy(at(PAGES) + 4096, frame + 100, 500);
    tx_desc(0, 0x00, 2, 600, 100, 4096 - 100);
    tx_desc(1, 0x20, 0, 0, 500, 4096);
    int msi0 = atomic_load(&t.p.msi[0]);
    db(txdb, 2);
    cr_assert_eq(t.got_frames, 1, "the peer got %d frames", t.got_frames);
    cr_assert_eq(t.got_len, 600);
    cr_assert_arr_eq(t.got, frame, 600, "the frame changed on the way");
    uint32_t c;
    memcpy(&c, at(COUNTERS), 4);
    cr_assert_eq(gvnic_be32(c), 2, "the event counter says %u descriptors", gvnic_be32(c));
    cr_assert_gt(atomic_load(&t.p.msi[0]), msi0, "no interrupt on the TX block's vector");
    /* masked block: no interrupt until ACK|EVENT unmasks it */
    db(0, GVNIC_IRQ_MASK);
    tx_desc(2, 0x00, 1, 60, 60, 0);
    memcpy(at(PAGES), frame, 60);
    int msi1 = atomic_load(&t.p.msi[0]);
    db(txdb, 3);
    cr_assert_eq(t.got_frames, 2);
    cr_assert_eq(atomic_load(&t.p.msi[0]), msi1, "an interrupt through a masked block");
    db(0, GVNIC_IRQ_ACK | GVNIC_IRQ_EVENT);
    cr_assert_gt(atomic_load(&t.p.msi[0]), msi1, "the pending event was lost on unmask");
    cr_assert_eq(stats().tx_frames, 2);
}

Test(gvnic_gqi, malformed_transmit_stops_the_queue_and_asks_for_a_reset, .init = setup,
     .fini = teardown)
{
    data_up();
    uint32_t txdb = queue_db(BUF + 0xC000);
    tx_desc(0, 0x00, 1, 60, 60, (uint64_t)TXQPL_PAGES * 4096);     /* past the page list */
    db(txdb, 1);
    cr_assert_eq(t.got_frames, 0, "a frame from outside the page list went out");
    cr_assert_eq(stats().tx_bad, 1);
    cr_assert(rd(GVNIC_REG_DEVICE_STATUS) & GVNIC_DEV_RESET_REQUEST, "no reset requested");
    cr_assert_gt(atomic_load(&t.p.msi[4]), 0, "no management interrupt");
    tx_desc(1, 0x00, 1, 60, 60, 0);
    db(txdb, 2);
    cr_assert_eq(t.got_frames, 0, "a stopped queue kept sending");
    /* other malformed shapes, each after a reset */
    static const struct { uint8_t type, cnt; uint16_t len, seg; } bad[] = {
        { 0x10, 1, 60, 60 },        /* TSO, not offered */
        { 0x00, 0, 60, 60 },        /* no descriptors */
        { 0x00, 1, 10, 10 },        /* shorter than a header */
        { 0x00, 1, 60, 50 },        /* segments short of the length */
        { 0x20, 1, 60, 60 },        /* starts with a segment */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        wr(GVNIC_REG_DRIVER_STATUS, GVNIC_DRV_RESET);
        cr_assert_not(rd(GVNIC_REG_DEVICE_STATUS) & GVNIC_DEV_RESET_REQUEST);
        data_up();
        txdb = queue_db(BUF + 0xC000);
        tx_desc(0, bad[i].type, bad[i].cnt, bad[i].len, bad[i].seg, 0);
        db(txdb, 1);
        cr_assert_eq(stats().tx_bad, 2 + i, "case %zu accepted", i);
    }
    cr_assert_eq(t.got_frames, 0);
}

Test(gvnic_gqi, receive_fills_slots_with_pad_and_sequence_numbers, .init = setup,
     .fini = teardown)
{
    data_up();
    uint32_t rxdb = queue_db(BUF + 0xD000);
    uint8_t frame[1514];
    make_frame(frame, sizeof frame, 9);
    uint8_t mac[6];
    device_mac(mac);
    memcpy(frame, mac, 6);
    netback_send(t.peer, frame, 100);
    cr_assert_eq(stats().rx_no_buffer, 1, "a frame landed with no slot filled");
    db(rxdb, 8);
    for (int i = 0; i < 9; i++)
        netback_send(t.peer, frame, i == 0 ? sizeof frame : 64u + (uint32_t)i);
    cr_assert_eq(stats().rx_frames, 8);
    cr_assert_eq(stats().rx_no_buffer, 2, "the 9th frame should find no slot");
    const uint8_t *d0 = at(RX_DESC);
    uint16_t len, fs;
    memcpy(&len, d0 + 60, 2);
    memcpy(&fs, d0 + 62, 2);
    cr_assert_eq(gvnic_be16(len), sizeof frame + 2, "length without the 2-byte pad");
    cr_assert_eq(gvnic_be16(fs) & 7, 1, "the first sequence number is not 1");
    const uint8_t *data = at(PAGES + TXQPL_PAGES * 4096);
    cr_assert_arr_eq(data + 2, frame, sizeof frame, "the frame is not 2 bytes into its slot");
    for (int i = 1; i < 8; i++) {
        memcpy(&fs, at(RX_DESC) + i * 64 + 62, 2);
        cr_assert_eq(gvnic_be16(fs) & 7, (unsigned)(i % 7 + 1), "descriptor %d's sequence", i);
    }
    cr_assert_gt(atomic_load(&t.p.msi[2]), 0, "no interrupt on the RX block's vector");
    /* a slot outside the page list: the queue stops, a reset is asked for */
    uint64_t far = gvnic_be64((uint64_t)RXQPL_PAGES * 4096);
    memcpy(at(RX_DATA) + 8 * 8, &far, 8);
    db(rxdb, 9);
    netback_send(t.peer, frame, 100);
    cr_assert_eq(stats().rx_bad_slot, 1);
    cr_assert(rd(GVNIC_REG_DEVICE_STATUS) & GVNIC_DEV_RESET_REQUEST);
    db(rxdb, 600);                              /* more than the ring */
    cr_assert_eq(stats().bad_doorbells, 1);
}

/* ---- DQO-RDA data path --------------------------------------------------------------------- */

static void db_raw(uint32_t index, uint32_t v)
{
    uint64_t raw = v;                           /* DQO doorbells are little-endian */
    bar(GVNIC_BAR_DOORBELLS, (uint64_t)index * 4, 4, true, &raw);
}

#define DQ_TXC   (BUF + 0x18000)    /* TX completions, 512 x 8 */
#define DQ_RXC   (BUF + 0x20000)    /* RX completions, 512 x 32 */
#define DQ_RXB   (BUF + 0x30000)    /* RX buffer queue, 512 x 32 */
#define DQ_BUFS  (WIN + 0x200000)   /* buffers, 2 KiB each */

static void dqo_up(void)
{
    setup_opts("format=dqo-rda");
    msix_on();
    aq_up();
    struct gvnic_aq_configure_resources c = {
        .counter_array = gvnic_be64(BUF + 0x1000), .irq_db_addr = gvnic_be64(BUF + 0x2000),
        .num_counters = gvnic_be32(4), .num_irq_dbs = gvnic_be32(4),
        .irq_db_stride = gvnic_be32(64), .queue_format = GVNIC_FMT_DQO_RDA,
    };
    cr_assert_eq(CMD(GVNIC_AQ_CONFIGURE_DEVICE_RESOURCES, c), GVNIC_AQ_PASSED);
    struct gvnic_aq_create_tx_queue tq = {
        .queue_resources_addr = gvnic_be64(BUF + 0xC000), .tx_ring_addr = gvnic_be64(TX_RING),
        .tx_comp_ring_addr = gvnic_be64(DQ_TXC),
        .queue_page_list_id = gvnic_be32(GVNIC_RAW_ADDRESSING_QPL_ID),
        .tx_ring_size = gvnic_be16(256), .tx_comp_ring_size = gvnic_be16(512),
    };
    cr_assert_eq(CMD(GVNIC_AQ_CREATE_TX_QUEUE, tq), GVNIC_AQ_PASSED);
    struct gvnic_aq_create_rx_queue rq = {
        .ntfy_id = gvnic_be32(2), .queue_resources_addr = gvnic_be64(BUF + 0xD000),
        .rx_desc_ring_addr = gvnic_be64(DQ_RXC), .rx_data_ring_addr = gvnic_be64(DQ_RXB),
        .queue_page_list_id = gvnic_be32(GVNIC_RAW_ADDRESSING_QPL_ID),
        .rx_ring_size = gvnic_be16(512), .packet_buffer_size = gvnic_be16(2048),
        .rx_buff_ring_size = gvnic_be16(512),
    };
    cr_assert_eq(CMD(GVNIC_AQ_CREATE_RX_QUEUE, rq), GVNIC_AQ_PASSED);
}

static void dqo_txd(uint32_t d, uint64_t addr, uint16_t size, bool eop, bool re, uint16_t tag)
{
    uint8_t *p = at(TX_RING) + d * 16;
    memset(p, 0, 16);
    memcpy(p, &addr, 8);
    p[8] = (uint8_t)(0x0C | (eop ? 0x20 : 0) | (re ? 0x80 : 0));
    memcpy(p + 12, &tag, 2);
    memcpy(p + 14, &size, 2);
}

Test(gvnic_dqo, transmit_completions_carry_tags_heads_and_generations, .fini = teardown)
{
    dqo_up();
    uint32_t txdb = queue_db(BUF + 0xC000);
    uint8_t frame[300];
    make_frame(frame, sizeof frame, 5);
    memcpy(at(DQ_BUFS), frame, 100);
    memcpy(at(DQ_BUFS + 2048), frame + 100, 200);
    dqo_txd(0, DQ_BUFS, 100, false, false, 0);
    dqo_txd(1, DQ_BUFS + 2048, 200, true, true, 0x1234);
    db_raw(txdb, 1);                            /* the end is not posted yet */
    cr_assert_eq(t.got_frames, 0, "half a packet went out");
    db_raw(txdb, 2);
    cr_assert_eq(t.got_frames, 1);
    cr_assert_arr_eq(t.got, frame, sizeof frame);
    uint16_t w, v;
    memcpy(&w, at(DQ_TXC), 2);
    memcpy(&v, at(DQ_TXC) + 2, 2);
    cr_assert_eq((w >> 11) & 7, 2, "first completion type %u, want a packet completion",
                 (w >> 11) & 7);
    cr_assert(w & 0x8000, "generation bit not 1 on the first pass");
    cr_assert_eq(v, 0x1234, "completion tag 0x%x", v);
    memcpy(&w, at(DQ_TXC) + 8, 2);
    memcpy(&v, at(DQ_TXC) + 10, 2);
    cr_assert_eq((w >> 11) & 7, 4, "report-event gave no descriptor completion");
    cr_assert_eq(v, 2, "descriptor completion head %u, want 2", v);
    /* malformed: a buffer outside the windows */
    dqo_txd(2, OUTSIDE, 60, true, false, 1);
    db_raw(txdb, 3);
    cr_assert_eq(stats().tx_bad, 1);
    cr_assert(rd(GVNIC_REG_DEVICE_STATUS) & GVNIC_DEV_RESET_REQUEST);
    cr_assert_eq(t.got_frames, 1);
}

Test(gvnic_dqo, receive_fills_posted_buffers_and_interrupts_once_per_arming, .fini = teardown)
{
    dqo_up();
    uint32_t rxdb = queue_db(BUF + 0xD000);
    uint8_t mac[6];
    device_mac(mac);
    for (uint16_t i = 0; i < 4; i++) {             /* buffers 100..103 */
        uint8_t *b = at(DQ_RXB) + i * 32;
        memset(b, 0, 32);
        uint16_t id = (uint16_t)(100 + i);
        uint64_t addr = DQ_BUFS + (uint64_t)i * 2048;
        memcpy(b, &id, 2);
        memcpy(b + 8, &addr, 8);
    }
    uint8_t frame[1514];
    make_frame(frame, sizeof frame, 7);
    memcpy(frame, mac, 6);
    netback_send(t.peer, frame, 200);
    cr_assert_eq(stats().rx_no_buffer, 1, "a frame landed before any buffer was posted");
    db_raw(rxdb, 4);
    db_raw(2, 0x19);                               /* arm the RX block */
    int msi = atomic_load(&t.p.msi[2]);
    netback_send(t.peer, frame, sizeof frame);
    netback_send(t.peer, frame, 64);
    cr_assert_eq(stats().rx_frames, 2);
    cr_assert_eq(atomic_load(&t.p.msi[2]), msi + 1, "a DQO block fired twice without re-arming");
    uint16_t lw, id;
    memcpy(&lw, at(DQ_RXC) + 4, 2);
    memcpy(&id, at(DQ_RXC) + 12, 2);
    cr_assert_eq(lw & 0x3FFF, sizeof frame);
    cr_assert(lw & 0x4000, "generation bit not 1 on the first pass");
    cr_assert_eq(id, 100, "buffer id %u", id);
    cr_assert_eq(at(DQ_RXC)[8] & 3, 3, "descriptor done and end of packet not set");
    cr_assert_arr_eq(at(DQ_BUFS), frame, sizeof frame, "the frame is not in buffer 100");
    memcpy(&id, at(DQ_RXC) + 32 + 12, 2);
    cr_assert_eq(id, 101);
    db_raw(2, 0x19);                               /* re-armed: what came meanwhile fires */
    cr_assert_eq(atomic_load(&t.p.msi[2]), msi + 2);
    db_raw(rxdb, 600);
    cr_assert_eq(stats().bad_doorbells, 1, "a tail past the buffer queue was taken");
}

/* ---- the ABI, pinned ---------------------------------------------------------------------- */

Test(gvnic_abi, offsets_opcodes_and_sizes_match_the_cited_headers)
{
    /* gve_register.h */
    cr_assert_eq(GVNIC_REG_ADMINQ_PFN, 0x10);
    cr_assert_eq(GVNIC_REG_ADMINQ_EVENTS, 0x18);
    cr_assert_eq(GVNIC_REG_DRIVER_VERSION, 0x1F);
    cr_assert_eq(GVNIC_REG_ADMINQ_LENGTH, 0x28);
    cr_assert_eq(GVNIC_DEV_IS_RESET, 0x10);
    /* gve_adminq.h opcodes and statuses */
    cr_assert_eq(GVNIC_AQ_CREATE_RX_QUEUE, 0x6);
    cr_assert_eq(GVNIC_AQ_VERIFY_DRIVER_COMPATIBILITY, 0xF);
    cr_assert_eq(GVNIC_AQ_PASSED, 1);
    cr_assert_eq(GVNIC_AQ_UNIMPLEMENTED, 0xFFFFFFFE);
    /* payload layouts */
    cr_assert_eq(offsetof(struct gvnic_device_descriptor, mtu), 16);
    cr_assert_eq(offsetof(struct gvnic_device_descriptor, mac), 24);
    cr_assert_eq(offsetof(struct gvnic_device_descriptor, total_length), 32);
    cr_assert_eq(offsetof(struct gvnic_aq_configure_resources, queue_format), 32);
    cr_assert_eq(offsetof(struct gvnic_aq_create_tx_queue, tx_ring_size), 40);
    cr_assert_eq(offsetof(struct gvnic_aq_create_rx_queue, packet_buffer_size), 46);
    cr_assert_eq(offsetof(struct gvnic_aq_create_rx_queue, header_buffer_size), 52);
    cr_assert_eq(sizeof(struct gvnic_aq_create_rx_queue), 56);
    cr_assert_eq(sizeof(struct gvnic_queue_resources), 64);
    cr_assert_eq(GVNIC_IRQ_ACK | GVNIC_IRQ_EVENT, 0xA0000000u);
}
