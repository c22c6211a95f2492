/* gVNIC driver: the DQO-RDA queues, data path and poller (contract in
 * gve.h). Descriptors and doorbells are little-endian; buffers are given
 * by DMA address.
 *
 * TX: frame k goes into 2 KiB buffer k % tx_bufs behind one packet
 * descriptor (end of packet, completion tag = the buffer); the doorbell
 * takes the ring's tail index once per batch. Packet completions come back
 * on the completion ring, new while their generation bit differs from
 * ours (0 until the first wrap); each frees its buffer and descriptor.
 * RX: buffers (id = index) are posted to the buffer queue; completions
 * name the buffer, its length and end of packet; each buffer goes back to
 * the queue after its frame reached the platform, the tail written in
 * batches. Blocks disarm when they fire: going idle re-arms them. */
#include "gve.h"

#define TXD_PKT_EOP   (0x0Cu | 0x20u)
#define TXC_PKT       2u
#define RX_BATCH      32u
#define ITR_REARM     0x19u             /* enable, no interval update */

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

static void dqo_queues(struct gve *g)
{
    g->tx_bufs = g->tx_size / 2 < 128 ? g->tx_size / 2 : 128;
    gve_dma((uint64_t)g->tx_bufs * 2048, &g->tx_qpl, "TX buffers");
    gve_dma((uint64_t)g->rx_size * 2048, &g->rx_qpl, "RX buffers");
    gve_dma((uint64_t)g->tx_size * 16, &g->tx_ring, "the TX ring");
    gve_dma((uint64_t)g->tx_size * 8, &g->tx_comp, "the TX completion ring");
    gve_dma((uint64_t)g->rx_size * 32, &g->rx_desc, "the RX completion ring");
    gve_dma((uint64_t)g->rx_size * 32, &g->rx_data, "the RX buffer queue");
    gve_dma(64, &g->tx_res, "queue resources");
    gve_dma(64, &g->rx_res, "queue resources");
    struct gvnic_aq_create_tx_queue tq = {
        .queue_resources_addr = gvnic_be64(g->tx_res.iova),
        .tx_ring_addr = gvnic_be64(g->tx_ring.iova),
        .queue_page_list_id = gvnic_be32(GVNIC_RAW_ADDRESSING_QPL_ID),
        .ntfy_id = gvnic_be32(GVE_BLOCK_TX), .tx_comp_ring_addr = gvnic_be64(g->tx_comp.iova),
        .tx_ring_size = gvnic_be16((uint16_t)g->tx_size),
        .tx_comp_ring_size = gvnic_be16((uint16_t)g->tx_size),
    };
    gve_adminq_ok(g, GVNIC_AQ_CREATE_TX_QUEUE, &tq, sizeof tq, "CREATE_TX_QUEUE");
    struct gvnic_aq_create_rx_queue rq = {
        .ntfy_id = gvnic_be32(GVE_BLOCK_RX), .queue_resources_addr = gvnic_be64(g->rx_res.iova),
        .rx_desc_ring_addr = gvnic_be64(g->rx_desc.iova),
        .rx_data_ring_addr = gvnic_be64(g->rx_data.iova),
        .queue_page_list_id = gvnic_be32(GVNIC_RAW_ADDRESSING_QPL_ID),
        .rx_ring_size = gvnic_be16((uint16_t)g->rx_size), .packet_buffer_size = gvnic_be16(2048),
        .rx_buff_ring_size = gvnic_be16((uint16_t)g->rx_size),
    };
    gve_adminq_ok(g, GVNIC_AQ_CREATE_RX_QUEUE, &rq, sizeof rq, "CREATE_RX_QUEUE");
    g->tx_db = gve_resource(g, &g->tx_res, false);
    g->rx_db = gve_resource(g, &g->rx_res, false);
}

/* Post buffer id at the buffer queue's tail (not yet told to the device). */
static void rx_post(struct gve *g, uint16_t id)
{
    uint8_t *b = (uint8_t *)g->rx_data.va + (uint64_t)(g->rxb_tail % g->rx_size) * 32;
    uint64_t addr = g->rx_qpl.iova + (uint64_t)id * 2048;
    memset(b, 0, 32);
    memcpy(b, &id, 2);
    memcpy(b + 8, &addr, 8);
    g->rxb_tail++;
}

static void dqo_start(struct gve *g)
{
    /* One slot of the buffer queue stays empty: a full queue's tail would
     * equal its head. */
    for (uint16_t id = 0; id < g->rx_size - 1u; id++)
        rx_post(g, id);
    dd_wmb();
    gve_db_write(g, g->rx_db, g->rxb_tail % g->rx_size);
    g->rx_fill = g->rxb_tail;
    g->live = true;
}

static bool dqo_tx(void *ctx, const void *frame, uint32_t len)
{
    struct gve *g = ctx;
    if (g->tx_req - g->tx_done >= g->tx_bufs) {
        g->tx_blocked = true;
        return false;
    }
    uint16_t buf = (uint16_t)(g->tx_req % g->tx_bufs);
    memcpy((uint8_t *)g->tx_qpl.va + (uint64_t)buf * 2048, frame, len);
    uint8_t *d = (uint8_t *)g->tx_ring.va + (uint64_t)(g->tx_req % g->tx_size) * 16;
    uint64_t addr = g->tx_qpl.iova + (uint64_t)buf * 2048;
    uint16_t size = (uint16_t)len;
    memset(d, 0, 16);
    memcpy(d, &addr, 8);
    d[8] = TXD_PKT_EOP;
    memcpy(d + 12, &buf, 2);                    /* completion tag: the buffer */
    memcpy(d + 14, &size, 2);
    g->tx_req++;
    return true;
}

static void dqo_tx_flush(void *ctx)
{
    struct gve *g = ctx;
    if (g->tx_published == g->tx_req)
        return;
    dd_wmb();
    gve_db_write(g, g->tx_db, g->tx_req % g->tx_size);
    g->tx_published = g->tx_req;
}

/* TX completions: packet completions free buffers, in order here (one
 * descriptor and one buffer per frame). */
static uint32_t tx_reap(struct gve *g)
{
    uint32_t n = 0;
    for (;;) {
        const uint8_t *c = (const uint8_t *)g->tx_comp.va + (uint64_t)g->txc_head * 8;
        uint16_t w = __atomic_load_n((const uint16_t *)(const void *)c, __ATOMIC_ACQUIRE);
        if (((w >> 15) & 1u) == g->txc_gen)
            break;
        if (((w >> 11) & 7u) == TXC_PKT) {
            uint16_t tag = le16(c + 2);
            if (tag != g->tx_done % g->tx_bufs || g->tx_done == g->tx_req)
                dd_panic("gvnic: TX completion for buffer %u, %u expected (%u of %u out)", tag,
                         g->tx_done % g->tx_bufs, g->tx_req - g->tx_done, g->tx_bufs);
            g->tx_done++;
            n++;
        }
        if (++g->txc_head == g->tx_size) {
            g->txc_head = 0;
            g->txc_gen = !g->txc_gen;
        }
    }
    return n;
}

static uint32_t rx_harvest(struct gve *g)
{
    uint32_t n = 0;
    for (;;) {
        const uint8_t *c = (const uint8_t *)g->rx_desc.va + (uint64_t)g->rx_head * 32;
        uint16_t lw = __atomic_load_n((const uint16_t *)(const void *)(c + 4), __ATOMIC_ACQUIRE);
        if (((lw >> 14) & 1u) == g->rxc_gen)
            break;
        uint16_t id = le16(c + 12);
        uint32_t len = lw & 0x3FFFu;
        if (id >= g->rx_size - 1u)
            dd_panic("gvnic: RX completion names buffer %u, only %u were posted", id,
                     g->rx_size - 1u);
        if ((c[1] & 0x04u) || !(c[8] & 0x02u) || len < 14u || len > g->mtu + 14u)
            g->rx_bad++;                     /* error, multi-part, runt or giant */
        else
            dd_nic_rx(g->nic, (const uint8_t *)g->rx_qpl.va + (uint64_t)id * 2048, len);
        rx_post(g, id);                         /* the buffer goes back */
        if (++g->rx_head == g->rx_size) {
            g->rx_head = 0;
            g->rxc_gen = !g->rxc_gen;
        }
        n++;
    }
    if (g->rxb_tail - g->rx_fill >= RX_BATCH) {
        dd_wmb();
        gve_db_write(g, g->rx_db, g->rxb_tail % g->rx_size);
        g->rx_fill = g->rxb_tail;
    }
    return n;
}

static bool dqo_poll(void *ctx)
{
    struct gve *g = ctx;
    if (!g->live)
        return false;
    g->irqs_armed = false;      /* a block that fired disarmed itself */
    bool work = rx_harvest(g) != 0;
    work |= tx_reap(g) != 0;
    gve_poll_end(g, dqo_tx_flush);
    return work;
}

static bool dqo_idle(void *ctx)
{
    struct gve *g = ctx;
    if (!g->live)
        return false;
    if (g->rxb_tail != g->rx_fill) {            /* every buffer back before sleeping */
        gve_db_write(g, g->rx_db, g->rxb_tail % g->rx_size);
        g->rx_fill = g->rxb_tail;
    }
    for (unsigned b = 0; b < GVE_BLOCKS; b++)
        gve_db_write(g, g->irq_db[b], ITR_REARM);
    g->irqs_armed = true;
    const uint8_t *rc = (const uint8_t *)g->rx_desc.va + (uint64_t)g->rx_head * 32;
    const uint8_t *tc = (const uint8_t *)g->tx_comp.va + (uint64_t)g->txc_head * 8;
    uint16_t lw = __atomic_load_n((const uint16_t *)(const void *)(rc + 4), __ATOMIC_ACQUIRE);
    uint16_t tw = __atomic_load_n((const uint16_t *)(const void *)tc, __ATOMIC_ACQUIRE);
    return ((lw >> 14) & 1u) != g->rxc_gen || (g->tx_blocked && ((tw >> 15) & 1u) != g->txc_gen);
}

const struct gve_path gve_dqo_path = {
    .name = "DQO-RDA", .queues = dqo_queues, .start = dqo_start,
    .nic = { .tx = dqo_tx, .tx_flush = dqo_tx_flush }, .poll = dqo_poll, .idle = dqo_idle,
};
