/* gVNIC driver: the GQI-QPL queues, data path and poller, and the
 * helpers both formats share (contract in gve.h).
 *
 * TX: frame k goes into TX buffer k % tx_bufs of the page list (2 KiB
 * each) behind one packet descriptor; the doorbell takes the count of
 * descriptors posted, once per batch; the device's event counter says how
 * many it consumed, which frees buffers in order.
 * RX: slot i is page i of the RX list; a descriptor is new when its
 * sequence number is the one expected (1..7); the frame sits 2 bytes into
 * the slot. Slots go back to the device in batches.
 * While busy the notification blocks stay masked and the run loop polls;
 * going idle unmasks them (ACK | EVENT) and looks once more. */
#include "gve.h"

#define RX_REFILL_BATCH 32u
#define CHECK_NS        (100ull * 1000000u)

void gve_db_write(const struct gve *g, uint32_t index, uint32_t raw)
{
    dd_mmio_write32(g->dbs, (uint64_t)index * 4, raw);
}

/* GQI doorbells are big-endian. */
static void db_write(const struct gve *g, uint32_t index, uint32_t v)
{
    gve_db_write(g, index, gvnic_be32(v));
}

/* A page list of n fresh pages, registered as id. */
static void page_list(struct gve *g, uint32_t id, uint32_t n, struct dd_dma *pages,
                      struct dd_dma *list)
{
    gve_dma((uint64_t)n * 4096, pages, "a page list");
    gve_dma((uint64_t)n * 8, list, "a page address list");
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

/* One page list per queue (TX: the device's tx_pages_per_qpl, 2 KiB
 * buffers; RX: a page per slot), then the two queues. */
static void gqi_queues(struct gve *g)
{
    page_list(g, 0, g->tx_pages, &g->tx_qpl, &g->tx_list);
    page_list(g, 1, g->rx_size, &g->rx_qpl, &g->rx_list);
    gve_dma((uint64_t)g->tx_size * 16, &g->tx_ring, "the TX ring");
    gve_dma((uint64_t)g->rx_size * 64, &g->rx_desc, "the RX descriptor ring");
    gve_dma((uint64_t)g->rx_size * 8, &g->rx_data, "the RX data slots");
    gve_dma(64, &g->tx_res, "queue resources");
    gve_dma(64, &g->rx_res, "queue resources");
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
    g->tx_db = gve_resource(g, &g->tx_res, false);
    g->tx_counter = gve_resource(g, &g->tx_res, true);
    g->rx_db = gve_resource(g, &g->rx_res, false);
}

static uint32_t tx_counter(const struct gve *g)
{
    const uint32_t *c = (const uint32_t *)g->counters.va + g->tx_counter;
    return gvnic_be32(__atomic_load_n(c, __ATOMIC_ACQUIRE));
}

static bool gqi_tx(void *ctx, const void *frame, uint32_t len)
{
    struct gve *g = ctx;
    if (g->tx_req - g->tx_done >= g->tx_bufs) {
        g->tx_done = tx_counter(g);             /* maybe the device moved on */
        if (g->tx_req - g->tx_done >= g->tx_bufs) {
            g->tx_blocked = true;
            return false;
        }
    }
    uint32_t buf = g->tx_req % g->tx_bufs;
    memcpy((uint8_t *)g->tx_qpl.va + (uint64_t)buf * GVE_TX_BUF, frame, len);
    uint8_t *d = (uint8_t *)g->tx_ring.va + (uint64_t)(g->tx_req % g->tx_size) * 16;
    uint16_t be_len = gvnic_be16((uint16_t)len);
    uint64_t be_off = gvnic_be64((uint64_t)buf * GVE_TX_BUF);
    d[0] = 0x00;                                /* a standard packet */
    d[1] = d[2] = 0;
    d[3] = 1;                                   /* one descriptor */
    memcpy(d + 4, &be_len, 2);
    memcpy(d + 6, &be_len, 2);                  /* the whole frame in this segment */
    memcpy(d + 8, &be_off, 8);
    g->tx_req++;
    return true;
}

static void gqi_tx_flush(void *ctx)
{
    struct gve *g = ctx;
    if (g->tx_published == g->tx_req)
        return;
    dd_wmb();
    db_write(g, g->tx_db, g->tx_req);
    g->tx_published = g->tx_req;
}

static void gqi_start(struct gve *g)
{
    g->rx_seq = 1;
    g->rx_head = 0;
    g->rx_fill = g->rx_size;                    /* every slot was filled at creation */
    db_write(g, g->rx_db, g->rx_fill);
    g->live = true;
}

static uint32_t rx_harvest(struct gve *g)
{
    uint32_t n = 0;
    for (;;) {
        const uint8_t *d = (const uint8_t *)g->rx_desc.va + (uint64_t)(g->rx_head % g->rx_size) * 64;
        uint16_t fs = gvnic_be16(__atomic_load_n((const uint16_t *)(const void *)(d + 62),
                                                 __ATOMIC_ACQUIRE));
        if ((fs & 7u) != g->rx_seq)
            break;
        uint16_t be_len;
        memcpy(&be_len, d + 60, 2);
        uint32_t len = gvnic_be16(be_len);
        const uint8_t *frame = (const uint8_t *)g->rx_qpl.va +
                               (uint64_t)(g->rx_head % g->rx_size) * 4096 + GVE_RX_PAD;
        if (len < GVE_RX_PAD + 14u || len > GVE_RX_PAD + g->mtu + 14u || (fs & 0x2000u))
            g->rx_bad++;                     /* runt, giant, or a multi-part frame */
        else
            dd_nic_rx(g->nic, frame, len - GVE_RX_PAD);
        g->rx_seq = (uint8_t)(g->rx_seq % 7u + 1u);
        g->rx_head++;
        n++;
    }
    /* Slots back to the device in batches (each doorbell is an exit). */
    if (g->rx_head + g->rx_size - g->rx_fill >= RX_REFILL_BATCH) {
        g->rx_fill = g->rx_head + g->rx_size;
        db_write(g, g->rx_db, g->rx_fill);
    }
    return n;
}

void gve_poll_end(struct gve *g, void (*tx_flush)(void *ctx))
{
    if (g->tx_blocked && g->tx_req - g->tx_done < g->tx_bufs) {
        g->tx_blocked = false;
        dd_nic_tx_ready(g->nic);
    }
    tx_flush(g);
    uint64_t now = dd_now_ns();
    if (now >= g->next_check_ns) {
        g->next_check_ns = now + CHECK_NS;
        gve_check_device(g);
    }
}

void gve_check_device(struct gve *g)
{
    uint32_t s = gve_rd(g, GVNIC_REG_DEVICE_STATUS);
    if (s & GVNIC_DEV_RESET_REQUEST)
        dd_panic("gvnic: the device asks for a reset (status 0x%x); stopping the domain for "
                 "the supervisor to restart it", s);
    if (g->rx_bad != g->rx_bad_logged) {
        dd_log("gvnic: %lu malformed frames from the device dropped so far", g->rx_bad);
        g->rx_bad_logged = g->rx_bad;
    }
    bool up = (s & GVNIC_DEV_LINK_UP) != 0;
    if (up != g->link_up) {
        g->link_up = up;
        dd_log("gvnic: link %s", up ? "up" : "down");
        dd_nic_link(g->nic, up);
    }
}

static bool gqi_poll(void *ctx)
{
    struct gve *g = ctx;
    if (!g->live)
        return false;
    if (g->irqs_armed) {                        /* busy again: poll, no interrupts */
        for (unsigned b = 0; b < GVE_BLOCKS; b++)
            db_write(g, g->irq_db[b], GVNIC_IRQ_MASK);
        g->irqs_armed = false;
    }
    bool work = rx_harvest(g) != 0;
    uint32_t done = tx_counter(g);
    if (done != g->tx_done) {
        if (done - g->tx_done > g->tx_req - g->tx_done)
            dd_panic("gvnic: the TX event counter says %u descriptors done, %u were posted",
                     done, g->tx_req);
        g->tx_done = done;
        work = true;
    }
    gve_poll_end(g, gqi_tx_flush);
    return work;
}

static bool gqi_idle(void *ctx)
{
    struct gve *g = ctx;
    if (!g->live)
        return false;
    /* Unmask both blocks (events while masked are raised now), then look
     * once more: a frame that landed before the unmask raises nothing. */
    for (unsigned b = 0; b < GVE_BLOCKS; b++)
        db_write(g, g->irq_db[b], GVNIC_IRQ_ACK | GVNIC_IRQ_EVENT);
    g->irqs_armed = true;
    const uint8_t *d = (const uint8_t *)g->rx_desc.va + (uint64_t)(g->rx_head % g->rx_size) * 64;
    uint16_t fs = gvnic_be16(__atomic_load_n((const uint16_t *)(const void *)(d + 62),
                                             __ATOMIC_ACQUIRE));
    return (fs & 7u) == g->rx_seq || (g->tx_blocked && tx_counter(g) != g->tx_done);
}

const struct gve_path gve_gqi_path = {
    .name = "GQI-QPL", .queues = gqi_queues, .start = gqi_start,
    .nic = { .tx = gqi_tx, .tx_flush = gqi_tx_flush }, .poll = gqi_poll, .idle = gqi_idle,
};
