/*
 * fuzz_gvnic — the gVNIC device model (devmodel/gvnic.c, gvnic_admin.c,
 * gvnic_gqi.c, gvnic_dqo.c, gvnic_irq.c) driven as a hostile driver would:
 * BAR0 registers (admin queue by PFN or base/length, RUN/RESET, the
 * driver-version byte register, widths), the admin queue (DESCRIBE_DEVICE,
 * CONFIGURE/DECONFIGURE_DEVICE_RESOURCES, REGISTER/UNREGISTER_PAGE_LIST,
 * CREATE/DESTROY_TX/RX_QUEUE, SET_DRIVER_PARAMETER, REPORT_STATS,
 * REPORT_LINK_SPEED, GET_PTYPE_MAP, VERIFY_DRIVER_COMPATIBILITY, unknown),
 * BAR2 queue and interrupt doorbells, TX descriptor rings and RX slots /
 * buffer queues in both formats (GQI-QPL and DQO-RDA), frames arriving
 * from the switch, MSI-X, quiesce and reset.
 *
 * Fixture (process-wide, built once): the network switch (netback, no
 * gateway) with a peer port that injects frames, a broker whose one window
 * (1 MiB) is memory this target owns (broker_adopt) with a 4 KiB canary on
 * each side, and two gVNICs on one PCI bus with a fake platform: "gqi"
 * (format=gqi-qpl, 2 queues, rx_ring=64) and "dqo" (format=dqo-rda, 2
 * queues, rx_ring=64). The model has no thread of its own: everything runs
 * synchronously in the register access or in the peer's netback_send.
 * Per input: window zeroed, fake platform cleared; at the end the bus is
 * reset by the model's own reset path (pci_bus_reset -> gvnic reset).
 *
 * Window layout (IOVA = MOAT_GPA_SESSION_BASE + offset, pages): 0 admin
 * queue, 1 command buffers, 2 event counters, 3 interrupt doorbells, 4
 * queue resources, 8 TX ring, 10 DQO TX completions, 12 RX descriptors /
 * DQO completions, 14 RX data slots / DQO buffer queue, 16-17 page lists,
 * 64-127 TX QPL, 128-191 RX QPL, 192-255 DQO RX buffers and TX data.
 *
 * Input: byte 0 = setup: bit 0 the DQO device, bits 2:1 level (0 nothing,
 * 1 admin queue running, 2 + DESCRIBE and CONFIGURE_DEVICE_RESOURCES, 3 +
 * page lists (GQI), TX queue 0 and RX queue 0 created and RX slots/buffers
 * posted), bit 3 MSI-X on. Then up to 256 operations, each an opcode byte
 * and its arguments (see the op_* functions): admin command (structured
 * payload, or raw), register write/read, a TX packet (descriptors in the
 * ring + doorbell), RX slots/buffers + doorbell, a frame from the peer,
 * raw doorbell, poke bytes into the window, PCI/MSI-X, reset/quiesce.
 *
 * Invariants checked (abort() on violation), beyond ASan/UBSan:
 *  - nothing outside the window is written: both canaries intact;
 *  - page lists naming memory outside the window are refused: every page
 *    of every registered page list lies, page aligned, inside it, and the
 *    registered-page count is the sum of the lists;
 *  - every live queue's rings, the counter array and the interrupt
 *    doorbells lie inside the window; a page list's owner is the live
 *    queue that names it, and no list has two owners;
 *  - the admin queue answers in order: after a valid doorbell the event
 *    counter equals the producer count the driver wrote (unless the broker
 *    refused the queue memory);
 *  - the device never hands the switch a malformed frame (its port's
 *    bad_frames counter never moves; frames the peer gets are 14..1514).
 *
 * Logging: every failing admin command logs one log_info line (gvnic.c
 * aq_doorbell): hostile inputs do so on most runs; vmm/log.c rate limits
 * it per domain (about 40 lines/s reach stderr while fuzzing). Malformed
 * queues go to pci_guest_error (nothing printed here).
 *
 * Environment: FUZZ_GVNIC_DEBUG=1 prints the device's counters per input.
 *
 * Seeds (harness/fuzz/corpus/fuzz_gvnic/): gqi_level3_txrx and
 * dqo_level3_txrx (full bring-up, TX packets of one and several
 * segments/buffers, frames into posted RX slots/buffers, interrupt
 * doorbells, destroy/unregister/deconfigure, reset); gqi_level1_admin
 * (every admin command by hand, one raw); dqo_level2_admin (queues by
 * command, ptype map, a page list the format refuses); registers (the
 * driver-version bytes, PFN set-up and reset, bad widths).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "broker.h"
#include "fuzz_device.h"
#include "fuzz_input.h"
#include "gvnic.h"
#include "gvnic_internal.h"
#include "moat/gvnic_abi.h"
#include "moat/layout.h"
#include "moat/pci_regs.h"
#include "netback.h"
#include "pci.h"
#include "../unit/fake_platform.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DOM       9u
#define WIN       MOAT_GPA_SESSION_BASE
#define WIN_SIZE  (1u << 20)
#define PG(n)     (WIN + (uint64_t)(n) * 4096u)
#define AQ        PG(0)
#define BUF       PG(1)
#define COUNTERS  PG(2)
#define IRQ_DBS   PG(3)
#define QRES      PG(4)
#define TX_RING   PG(8)
#define TX_COMP   PG(10)
#define RX_DESC   PG(12)
#define RX_DATA   PG(14)
#define QPL_LIST  16u
#define TX_QPL    64u
#define RX_QPL    128u
#define DQO_BUFS  192u
#define OPS_MAX   256u

#define FATAL(...) FZ_FAIL(__VA_ARGS__)

static const uint8_t peer_mac[6] = { 0x02, 0, 0, 0, 0, 0x99 };

static struct {
    struct broker br;
    struct pci_bus bus;
    struct fake_platform p;
    struct netback_port *peer;
    uint8_t *buf, *mem;
    struct pci_func *fn[2];
} fx;

static struct {
    struct pci_func *f;
    struct gvnic *g;
    bool dqo;
    uint32_t prod;          /* admin producer count */
    uint32_t tx_tail;       /* TX 0: GQI free-running count, DQO ring index */
    uint32_t rx_tail;       /* RX 0: slots posted */
    uint64_t bad_frames;
} s;

static uint8_t *at(uint64_t iova) { return fx.mem + (iova - WIN); }
static bool in_win(uint64_t iova, uint64_t len) { return fz_in_window(WIN, WIN_SIZE, iova, len); }

static void peer_rx(void *ctx, const void *frame, size_t len)
{
    (void)ctx;
    (void)frame;
    if (len < 14 || len > NETBACK_FRAME_MAX)
        FATAL("the switch delivered a %zu-byte frame", len);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char err[256];
    (void)argc;
    (void)argv;
    struct netback_config cfg;
    netback_config_default(&cfg);
    cfg.no_gateway = true;
    if (!netback_setup(&cfg, err, sizeof err))
        FATAL("netback: %s", err);
    fx.peer = netback_port_add(netback_get(), "fz.peer", peer_mac, peer_rx, NULL, err, sizeof err);
    if (!fx.peer)
        FATAL("peer port: %s", err);
    broker_init(&fx.br, 64ull << 20, NULL);
    fx.mem = fz_window_new(&fx.br, DOM, WIN, WIN_SIZE);
    fake_platform_init(&fx.p, 0x40, 5);
    struct pci_platform_ops plat = fake_platform_ops(&fx.p);
    pci_bus_init(&fx.bus, "fzg", DOM, &fx.br, &plat);
    static const char *const opts[2] = { "format=gqi-qpl:queues=2:rx_ring=64",
                                         "format=dqo-rda:queues=2:rx_ring=64" };
    for (unsigned i = 0; i < 2; i++) {
        if (!gvnic_create(&fx.bus, i ? "dqo" : "gqi", 17 + i, opts[i], err, sizeof err))
            FATAL("gvnic_create: %s", err);
        fx.fn[i] = fx.bus.slot[1 + i];
    }
    return 0;
}

/* ---- registers -------------------------------------------------------------- */

static uint64_t bar(unsigned n, uint64_t off, uint32_t size, bool write, uint64_t v)
{
    return fz_driver_mmio(&fx.bus, s.f, n, off, size, write, v);
}

static void wr(uint64_t off, uint32_t v) { bar(GVNIC_BAR_REGS, off, 4, true, gvnic_be32(v)); }

static void db_write(uint32_t idx, uint32_t raw) { bar(GVNIC_BAR_DOORBELLS, idx * 4u, 4, true, raw); }

/* ---- checks ----------------------------------------------------------------- */

static void check(void)
{
    struct gvnic *g = s.g;
    pthread_mutex_lock(&g->lock);
    uint64_t pages = 0;
    for (unsigned i = 0; i < GVNIC_QPL_MAX; i++) {
        const struct gvnic_qpl *q = &g->qpl[i];
        if (!q->used)
            continue;
        pages += q->n;
        for (uint32_t p = 0; p < q->n; p++)
            if (q->pages[p] % GVNIC_PAGE || !in_win(q->pages[p], GVNIC_PAGE))
                FATAL("page list %u page %u is %#llx: outside the window", q->id, p,
                      (unsigned long long)q->pages[p]);
        for (unsigned j = i + 1; j < GVNIC_QPL_MAX; j++)
            if (g->qpl[j].used && g->qpl[j].id == q->id)
                FATAL("page list id %u registered twice", q->id);
        if (q->owner >= 0) {
            bool tx = q->owner < (int)GVNIC_QUEUES_MAX;
            const struct gvnic_queue *qu = tx ? &g->txq[q->owner]
                                              : &g->rxq[q->owner - (int)GVNIC_QUEUES_MAX];
            if (q->owner >= (int)(2 * GVNIC_QUEUES_MAX) || !qu->live || qu->qpl_id != q->id)
                FATAL("page list %u owned by queue %d, which does not use it", q->id, q->owner);
        }
    }
    if (pages != g->pages_registered)
        FATAL("%llu pages registered, the lists hold %llu",
              (unsigned long long)g->pages_registered, (unsigned long long)pages);
    if (g->configured && (!in_win(g->counter_array, (uint64_t)g->num_counters * 4u) ||
                          !in_win(g->irq_db_addr, 4)))
        FATAL("device resources outside the window");
    for (unsigned i = 0; i < 2 * GVNIC_QUEUES_MAX; i++) {
        bool tx = i < GVNIC_QUEUES_MAX;
        const struct gvnic_queue *q = tx ? &g->txq[i] : &g->rxq[i - GVNIC_QUEUES_MAX];
        if (!q->live)
            continue;
        if (!g->configured || i % GVNIC_QUEUES_MAX >= g->queues)
            FATAL("queue %u live without resources or beyond the queues offered", i);
        uint64_t l1 = (uint64_t)q->size * (tx ? 16u : s.dqo ? 32u : 64u);
        uint64_t l2 = s.dqo ? (uint64_t)q->size2 * (tx ? 8u : 32u) : tx ? 0 : q->size * 8u;
        if (!in_win(q->ring, l1) || (l2 && !in_win(q->ring2, l2)))
            FATAL("queue %u's rings lie outside the window", i);
        if (!s.dqo && !gvnic_qpl_find(g, q->qpl_id))
            FATAL("GQI queue %u without its page list", i);
    }
    pthread_mutex_unlock(&g->lock);
    struct netback_port_stats ns;
    netback_port_stats(s.g->port, &ns);
    if (ns.bad_frames != s.bad_frames)
        FATAL("the device sent %llu malformed frames",
              (unsigned long long)(ns.bad_frames - s.bad_frames));
}

/* ---- admin queue -------------------------------------------------------------- */

static void aq_up(void)
{
    bar(GVNIC_BAR_REGS, GVNIC_REG_ADMINQ_LENGTH, 2, true, gvnic_be16(4096));
    wr(GVNIC_REG_ADMINQ_BASE_HI, (uint32_t)(AQ >> 32));
    wr(GVNIC_REG_ADMINQ_BASE_LO, (uint32_t)AQ);
    wr(GVNIC_REG_DRIVER_STATUS, GVNIC_DRV_RUN);
    s.prod = 0;
}

/* Put one command in the next slot and ring; check the event counter. */
static void aq_cmd(uint32_t opcode, const void *payload, size_t len)
{
    uint8_t *e = at(AQ) + (s.prod % 64u) * GVNIC_AQ_ENTRY_SIZE;
    memset(e, 0, GVNIC_AQ_ENTRY_SIZE);
    uint32_t op = gvnic_be32(opcode);
    memcpy(e, &op, 4);
    memcpy(e + 8, payload, len < GVNIC_AQ_PAYLOAD_MAX ? len : GVNIC_AQ_PAYLOAD_MAX);
    s.prod++;
    pthread_mutex_lock(&s.g->lock);
    bool running = s.g->aq_base == AQ && s.g->aq_bytes == 4096 && s.g->aq_head == s.prod - 1u;
    uint64_t refusals = s.g->st.dma_refusals;
    pthread_mutex_unlock(&s.g->lock);
    wr(GVNIC_REG_ADMINQ_DOORBELL, s.prod);
    uint32_t ev = gvnic_be32((uint32_t)bar(GVNIC_BAR_REGS, GVNIC_REG_ADMINQ_EVENTS, 4, false, 0));
    if (running && ev != s.prod && s.g->st.dma_refusals == refusals)
        FATAL("admin event counter %u after doorbell %u", ev, s.prod);
    if (!running)   /* resynchronise with whatever the driver state is */
        s.prod = s.g->aq_head;
}

static uint64_t pick_addr(struct fz *f)
{
    uint8_t sel = fz_u8(f);
    switch (sel % 8u) {
    case 5: return fz_u64(f);
    case 6: return PG(fz_u8(f)) + (fz_u16(f) % 4096u);
    case 7:
        switch (fz_u8(f) % 3u) {
        case 0: return WIN + WIN_SIZE - 8u;
        case 1: return WIN + WIN_SIZE + 4096u * (fz_u8(f) % 4u);
        default: return WIN - 4096u;
        }
    default: return PG(fz_u8(f));
    }
}

static void describe(void)
{
    struct gvnic_aq_describe c = { .descriptor_addr = gvnic_be64(BUF),
                                   .descriptor_version = gvnic_be32(GVNIC_DESCRIPTOR_VERSION),
                                   .available_length = gvnic_be32(4096) };
    aq_cmd(GVNIC_AQ_DESCRIBE_DEVICE, &c, sizeof c);
}

static void configure(uint32_t irq_dbs)
{
    struct gvnic_aq_configure_resources c = {
        .counter_array = gvnic_be64(COUNTERS), .irq_db_addr = gvnic_be64(IRQ_DBS),
        .num_counters = gvnic_be32(2u * s.g->queues), .num_irq_dbs = gvnic_be32(irq_dbs),
        .irq_db_stride = gvnic_be32(4), .ntfy_blk_msix_base_idx = 0,
        .queue_format = s.dqo ? GVNIC_FMT_DQO_RDA : GVNIC_FMT_GQI_QPL };
    aq_cmd(GVNIC_AQ_CONFIGURE_DEVICE_RESOURCES, &c, sizeof c);
}

/* Page list id with n pages from page first (the list itself at page
 * QPL_LIST + slot). */
static void register_qpl(uint32_t id, uint32_t n, uint32_t first, unsigned slot)
{
    uint64_t *list = (uint64_t *)(void *)at(PG(QPL_LIST + slot));
    for (uint32_t i = 0; i < n && i < 512u; i++)
        list[i] = gvnic_be64(PG(first + i));
    struct gvnic_aq_register_page_list c = { .page_list_id = gvnic_be32(id),
                                             .num_pages = gvnic_be32(n),
                                             .page_address_list = gvnic_be64(PG(QPL_LIST + slot)),
                                             .page_size = gvnic_be64(4096) };
    aq_cmd(GVNIC_AQ_REGISTER_PAGE_LIST, &c, sizeof c);
}

static void create_tx(uint32_t q, uint32_t qpl, uint32_t ntfy)
{
    struct gvnic_aq_create_tx_queue c = {
        .queue_id = gvnic_be32(q), .queue_resources_addr = gvnic_be64(QRES + q * 64u),
        .tx_ring_addr = gvnic_be64(TX_RING), .queue_page_list_id = gvnic_be32(qpl),
        .ntfy_id = gvnic_be32(ntfy), .tx_comp_ring_addr = gvnic_be64(TX_COMP),
        .tx_ring_size = gvnic_be16(256), .tx_comp_ring_size = gvnic_be16(256) };
    aq_cmd(GVNIC_AQ_CREATE_TX_QUEUE, &c, sizeof c);
    s.tx_tail = 0;
}

static void create_rx(uint32_t q, uint32_t qpl, uint32_t ntfy)
{
    struct gvnic_aq_create_rx_queue c = {
        .queue_id = gvnic_be32(q), .ntfy_id = gvnic_be32(ntfy),
        .queue_resources_addr = gvnic_be64(QRES + 512u + q * 64u),
        .rx_desc_ring_addr = gvnic_be64(RX_DESC), .rx_data_ring_addr = gvnic_be64(RX_DATA),
        .queue_page_list_id = gvnic_be32(qpl), .rx_ring_size = gvnic_be16(64),
        .packet_buffer_size = gvnic_be16(2048), .rx_buff_ring_size = gvnic_be16(64) };
    aq_cmd(GVNIC_AQ_CREATE_RX_QUEUE, &c, sizeof c);
    s.rx_tail = 0;
}

static void op_admin(struct fz *f)
{
    uint8_t k = fz_u8(f), fl = fz_u8(f);
    uint8_t pl[GVNIC_AQ_PAYLOAD_MAX];
    if (fl & 0x80u) {       /* raw */
        uint32_t opcode = (fl & 0x40u) ? fz_u32(f) : k % 18u;
        fz_bytes(f, pl, sizeof pl);
        aq_cmd(opcode, pl, sizeof pl);
        return;
    }
    uint32_t q = fz_u8(f) % 3u, id = fz_u8(f) % 4u;
    switch (k % 14u) {
    case 0: describe(); break;
    case 1: configure(1u + fz_u8(f) % 4u); break;
    case 2: aq_cmd(GVNIC_AQ_DECONFIGURE_DEVICE_RESOURCES, pl, 0); break;
    case 3: {   /* a page list: mostly good pages, or anything */
        uint32_t n = 1u + fz_u16(f) % 80u;
        if (fl & 1u) {
            uint64_t *list = (uint64_t *)(void *)at(PG(QPL_LIST + 1u));
            for (uint32_t i = 0; i < 8u; i++)
                list[i] = gvnic_be64(pick_addr(f) & ((fl & 2u) ? ~0ull : ~4095ull));
            struct gvnic_aq_register_page_list c = {
                .page_list_id = gvnic_be32(id), .num_pages = gvnic_be32(n % 9u),
                .page_address_list = gvnic_be64((fl & 4u) ? pick_addr(f) : PG(QPL_LIST + 1u)),
                .page_size = gvnic_be64((fl & 8u) ? fz_u64(f) : 4096u) };
            aq_cmd(GVNIC_AQ_REGISTER_PAGE_LIST, &c, sizeof c);
        } else {
            register_qpl(id, n, (fl & 2u) ? RX_QPL : TX_QPL, 2u + (id & 1u));
        }
        break;
    }
    case 4: {
        struct gvnic_aq_unregister_page_list c = { .page_list_id = gvnic_be32(id) };
        aq_cmd(GVNIC_AQ_UNREGISTER_PAGE_LIST, &c, sizeof c);
        break;
    }
    case 5: create_tx(q, s.dqo ? GVNIC_RAW_ADDRESSING_QPL_ID : id, fz_u8(f) % 5u); break;
    case 6: create_rx(q, s.dqo ? GVNIC_RAW_ADDRESSING_QPL_ID : id, fz_u8(f) % 5u); break;
    case 7:
    case 8: {
        struct gvnic_aq_destroy_queue c = { .queue_id = gvnic_be32(q) };
        aq_cmd(k % 14u == 7 ? GVNIC_AQ_DESTROY_TX_QUEUE : GVNIC_AQ_DESTROY_RX_QUEUE, &c, sizeof c);
        break;
    }
    case 9: {
        struct gvnic_aq_set_driver_parameter c = { .parameter_type = gvnic_be32(fz_u8(f) % 3u),
                                                   .parameter_value = gvnic_be64(fz_u16(f)) };
        aq_cmd(GVNIC_AQ_SET_DRIVER_PARAMETER, &c, sizeof c);
        break;
    }
    case 10: {
        struct gvnic_aq_report_stats c = { .stats_report_len = gvnic_be64(fz_u32(f) % 8192u),
                                           .stats_report_addr = gvnic_be64(pick_addr(f)) };
        aq_cmd(GVNIC_AQ_REPORT_STATS, &c, sizeof c);
        break;
    }
    case 11: {
        struct gvnic_aq_report_link_speed c = { .link_speed_address = gvnic_be64(pick_addr(f)) };
        aq_cmd(GVNIC_AQ_REPORT_LINK_SPEED, &c, sizeof c);
        break;
    }
    case 12: {
        struct gvnic_aq_get_ptype_map c = { .ptype_map_len = gvnic_be64(fz_u16(f)),
                                            .ptype_map_addr = gvnic_be64(pick_addr(f)) };
        aq_cmd(GVNIC_AQ_GET_PTYPE_MAP, &c, sizeof c);
        break;
    }
    default: {
        struct gvnic_aq_verify_driver c = { .driver_info_len = gvnic_be64(fz_u16(f) % 5000u),
                                            .driver_info_addr = gvnic_be64(pick_addr(f)) };
        aq_cmd(GVNIC_AQ_VERIFY_DRIVER_COMPATIBILITY, &c, sizeof c);
        break;
    }
    }
}

/* ---- data path ------------------------------------------------------------------- */

/* A TX packet on queue 0: descriptors at the tail, then the doorbell. */
static void op_tx(struct fz *f)
{
    uint8_t fl = fz_u8(f);
    uint32_t nseg = 1u + fz_u8(f) % 12u;
    uint32_t plen = 14u + fz_u16(f) % 1600u;
    uint8_t *ring = at(TX_RING);
    if (!s.dqo) {   /* GQI: packet descriptor, then segments; offsets into the QPL */
        uint32_t per = plen / nseg, left = plen;
        for (uint32_t i = 0; i < nseg; i++) {
            uint8_t *d = ring + ((s.tx_tail + i) % 256u) * 16u;
            memset(d, 0, 16);
            uint16_t slen = (uint16_t)(i + 1 == nseg ? left : per);
            if (fl & 0x10u)
                slen = fz_u16(f);
            left -= i + 1 == nseg ? left : per;
            d[0] = (uint8_t)((i ? 0x2u : 0x0u) << 4);
            if (fl & 0x20u)
                d[0] = fz_u8(f);
            d[3] = (uint8_t)((fl & 0x40u) ? fz_u8(f) : nseg);
            uint16_t bl = gvnic_be16((uint16_t)plen), bs = gvnic_be16(slen);
            memcpy(d + 4, &bl, 2);
            memcpy(d + 6, &bs, 2);
            uint64_t off = (fl & 0x80u) ? fz_u64(f) : (uint64_t)fz_u16(f) % (64u * 4096u);
            off = gvnic_be64(off);
            memcpy(d + 8, &off, 8);
        }
        s.tx_tail += nseg;
        db_write(GVNIC_DB_TX_BASE, gvnic_be32((fl & 1u) ? fz_u32(f) : s.tx_tail));
        return;
    }
    /* DQO: packet descriptors (address, size, EOP on the last, tag, RE) */
    uint32_t per = plen / nseg, left = plen;
    for (uint32_t i = 0; i < nseg; i++) {
        uint8_t *d = ring + ((s.tx_tail + i) % 256u) * 16u;
        memset(d, 0, 16);
        uint64_t addr = (fl & 0x80u) ? pick_addr(f) : PG(DQO_BUFS + fz_u8(f) % 64u);
        memcpy(d, &addr, 8);
        d[8] = 0x0C | (i + 1 == nseg ? 0x20 : 0) | ((fl & 2u) ? 0x80 : 0);
        if (fl & 0x20u)
            d[8] = fz_u8(f);
        uint16_t tag = fz_u16(f);
        memcpy(d + 12, &tag, 2);
        uint16_t sz = (uint16_t)(i + 1 == nseg ? left : per);
        if (fl & 0x10u)
            sz = fz_u16(f);
        left -= i + 1 == nseg ? left : per;
        memcpy(d + 14, &sz, 2);
    }
    s.tx_tail = (s.tx_tail + nseg) % 256u;
    db_write(GVNIC_DB_TX_BASE, (fl & 1u) ? fz_u32(f) : s.tx_tail);
}

/* Post n RX slots (GQI: QPL offsets) or buffers (DQO: id + address). */
static void rx_post(struct fz *f, uint32_t n, uint8_t fl)
{
    for (uint32_t i = 0; i < n; i++) {
        uint32_t slot = (s.rx_tail + i) % 64u;
        if (!s.dqo) {
            uint64_t off = (fl & 0x80u) ? fz_u64(f) : (uint64_t)slot * 4096u + (fz_u8(f) & 0x7Fu);
            off = gvnic_be64(off);
            memcpy(at(RX_DATA) + slot * 8u, &off, 8);
        } else {
            uint8_t *b = at(RX_DATA) + slot * 32u;
            memset(b, 0, 32);
            uint16_t id = (uint16_t)slot;
            memcpy(b, &id, 2);
            uint64_t addr = (fl & 0x80u) ? pick_addr(f) : PG(DQO_BUFS + slot);
            memcpy(b + 8, &addr, 8);
        }
    }
    s.rx_tail += n;
    uint32_t v = s.dqo ? s.rx_tail % 64u : gvnic_be32(s.rx_tail);
    db_write(GVNIC_DB_RX_BASE, (fl & 1u) ? fz_u32(f) : v);
}

static void op_rx_post(struct fz *f)
{
    uint8_t fl = fz_u8(f);
    rx_post(f, 1u + fz_u8(f) % 16u, fl);
}

/* A frame from the peer: broadcast (every port gets it) or to a MAC. */
static void op_frame(struct fz *f)
{
    uint8_t fr[NETBACK_FRAME_MAX + 4];
    uint8_t fl = fz_u8(f);
    size_t len = 14u + fz_u16(f) % (NETBACK_FRAME_MAX - 13u);
    if (fl & 0x80u)
        len = fz_u16(f) % sizeof fr;
    memset(fr, fl, sizeof fr);
    if (fl & 1u)
        fz_bytes(f, fr, 6);
    else
        memset(fr, 0xFF, 6);
    memcpy(fr + 6, peer_mac, 6);
    fz_bytes(f, fr + 12, fz_u8(f) % 32u);
    netback_send(fx.peer, fr, len);
}

static void op_reg(struct fz *f)
{
    static const uint32_t sizes[] = { 4, 4, 1, 2, 8 };
    uint8_t a = fz_u8(f);
    uint64_t off = fz_u8(f) % 0x40u;
    uint32_t size = sizes[a % 5u];
    if (a & 0x80u)
        (void)bar(GVNIC_BAR_REGS, off, size, false, 0);
    else
        bar(GVNIC_BAR_REGS, off, size, true, (a & 0x40u) ? fz_u64(f) : gvnic_be32(fz_u32(f)));
}

static void op_doorbell(struct fz *f)
{
    uint8_t a = fz_u8(f);
    uint32_t idx = (a & 0x80u) ? fz_u16(f) % 1100u
                               : (a & 1u) ? fz_u8(f) % 8u
                                          : (a & 2u ? GVNIC_DB_RX_BASE : GVNIC_DB_TX_BASE) +
                                                fz_u8(f) % 3u;
    uint32_t v = fz_u32(f);
    if (a & 4u)     /* an interrupt doorbell's usual values */
        v = s.dqo ? (a & 8u) : gvnic_be32((a & 8u) ? GVNIC_IRQ_MASK
                                                   : GVNIC_IRQ_ACK | GVNIC_IRQ_EVENT);
    bar(GVNIC_BAR_DOORBELLS, (uint64_t)idx * 4u, (a & 0x40u) ? 2 : 4, true, v);
}

static void op_poke(struct fz *f)
{
    uint32_t off = fz_u32(f) % WIN_SIZE, len = 1u + fz_u8(f) % 64u;
    if (len > WIN_SIZE - off)
        len = WIN_SIZE - off;
    fz_bytes(f, fx.mem + off, len);
}

static void msix_on(void)
{
    for (unsigned v = 0; v < s.f->msix.entries; v++) {
        uint64_t off = v * PCI_MSIX_ENTRY_SIZE;
        bar(GVNIC_BAR_MSIX, off + PCI_MSIX_ENTRY_ADDR_LO, 4, true, PCI_MSI_ADDR_BASE);
        bar(GVNIC_BAR_MSIX, off + PCI_MSIX_ENTRY_DATA, 4, true, 0x40u + v);
        bar(GVNIC_BAR_MSIX, off + PCI_MSIX_ENTRY_CTRL, 4, true, 0);
    }
    uint16_t ctl = (uint16_t)pci_cfg_read(s.f, s.f->msix.cap + PCI_MSIX_CTRL, 2);
    pci_cfg_write(s.f, s.f->msix.cap + PCI_MSIX_CTRL, 2, ctl | PCI_MSIX_CTRL_ENABLE);
}

static void op_misc(struct fz *f)
{
    uint8_t a = fz_u8(f);
    switch (a % 6u) {
    case 0: msix_on(); break;
    case 1: pci_cfg_write(s.f, PCI_COMMAND, 2, PCI_CMD_MEM | ((a & 8u) ? PCI_CMD_MASTER : 0)); break;
    case 2: wr(GVNIC_REG_DRIVER_STATUS, GVNIC_DRV_RESET); s.prod = 0; break;
    case 3: wr(GVNIC_REG_ADMINQ_PFN, (a & 8u) ? 0 : (uint32_t)(AQ / 4096u)); s.prod = 0; break;
    case 4: aq_up(); break;
    default:
        if (a & 8u) {
            pci_bus_quiesce(&fx.bus);
        } else {
            pci_bus_reset(&fx.bus);
            pci_cfg_write(s.f, PCI_COMMAND, 2, PCI_CMD_MEM | PCI_CMD_MASTER);
            s.prod = 0;
        }
        break;
    }
}

static void setup(unsigned level)
{
    if (level == 0)
        return;
    aq_up();
    if (level == 1)
        return;
    describe();
    configure(2u * s.g->queues);
    if (level == 2)
        return;
    if (!s.dqo) {
        register_qpl(0, 64, TX_QPL, 0);
        register_qpl(1, 64, RX_QPL, 1);
    }
    create_tx(0, s.dqo ? GVNIC_RAW_ADDRESSING_QPL_ID : 0, 0);
    create_rx(0, s.dqo ? GVNIC_RAW_ADDRESSING_QPL_ID : 1, 1);
    static const uint8_t nothing[1];
    struct fz none = fz_init(nothing, 0);
    rx_post(&none, s.dqo ? 32 : 64, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz f = fz_init(data, size);
    uint8_t cfg = fz_u8(&f);
    memset(&s, 0, sizeof s);
    s.dqo = cfg & 1u;
    s.f = fx.fn[s.dqo];
    s.g = s.f->dev;
    struct netback_port_stats ns;
    netback_port_stats(s.g->port, &ns);
    s.bad_frames = ns.bad_frames;
    memset(fx.mem, 0, WIN_SIZE);
    fake_platform_init(&fx.p, 0x40, 5);
    pci_cfg_write(s.f, PCI_COMMAND, 2, PCI_CMD_MEM | PCI_CMD_MASTER);
    if (cfg & 8u)
        msix_on();
    setup((cfg >> 1) & 3u);
    check();
    for (unsigned n = 0; n < OPS_MAX && fz_left(&f) > 0; n++) {
        uint8_t op = fz_u8(&f);
        switch (op % 12u) {
        case 0: case 1: case 2: op_admin(&f); break;
        case 3: case 4: op_tx(&f); break;
        case 5: op_rx_post(&f); break;
        case 6: case 7: op_frame(&f); break;
        case 8: op_reg(&f); break;
        case 9: op_doorbell(&f); break;
        case 10: op_poke(&f); break;
        default: op_misc(&f); break;
        }
        check();
    }
    if (getenv("FUZZ_GVNIC_DEBUG")) {   /* what the input reached, for writing seeds */
        struct gvnic_stats st;
        gvnic_stats_get(s.f, &st);
#define PRINT_STAT(name) if (st.name) fprintf(stderr, " %s=%llu", #name, (unsigned long long)st.name);
        GVNIC_STATS_FIELDS(PRINT_STAT)
#undef PRINT_STAT
        fprintf(stderr, "\n");
    }
    pci_bus_reset(&fx.bus);     /* the model's reset: page lists freed, queues gone */
    fz_window_check(fx.mem, WIN_SIZE);
    return 0;
}
