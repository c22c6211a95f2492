/* gVNIC driver: the GQI-QPL data path and the poller (contract in gve.h).
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
#include "gk/kstring.h"

#define RX_REFILL_BATCH 32u
#define CHECK_NS        (100ull * 1000000u)

static void db_write(const struct gve *g, uint32_t index, uint32_t v)
{
    dd_mmio_write32(g->dbs, (uint64_t)index * 4, gvnic_be32(v));
}

static uint32_t tx_counter(const struct gve *g)
{
    const uint32_t *c = (const uint32_t *)g->counters.va + g->tx_counter;
    return gvnic_be32(__atomic_load_n(c, __ATOMIC_ACQUIRE));
}

bool gve_tx(void *ctx, const void *frame, uint32_t len)
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
    g->st.tx_frames++;
    return true;
}

void gve_tx_flush(void *ctx)
{
    struct gve *g = ctx;
    if (g->tx_published == g->tx_req)
        return;
    dd_wmb();
    db_write(g, g->tx_db, g->tx_req);
    g->tx_published = g->tx_req;
}

void gve_rx_start(struct gve *g)
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
            g->st.rx_bad++;                     /* runt, giant, or a multi-part frame */
        else
            dd_nic_rx(g->nic, frame, len - GVE_RX_PAD);
        g->rx_seq = (uint8_t)(g->rx_seq % 7u + 1u);
        g->rx_head++;
        g->st.rx_frames++;
        n++;
    }
    /* Slots back to the device in batches (each doorbell is an exit). */
    if (g->rx_head + g->rx_size - g->rx_fill >= RX_REFILL_BATCH) {
        g->rx_fill = g->rx_head + g->rx_size;
        db_write(g, g->rx_db, g->rx_fill);
    }
    return n;
}

static void check_device(struct gve *g)
{
    uint32_t s = gve_rd(g, GVNIC_REG_DEVICE_STATUS);
    if (s & GVNIC_DEV_RESET_REQUEST)
        dd_panic("gvnic: the device asks for a reset (status 0x%x); stopping the domain for "
                 "the supervisor to restart it", s);
    bool up = (s & GVNIC_DEV_LINK_UP) != 0;
    if (up != g->link_up) {
        g->link_up = up;
        dd_log("gvnic: link %s", up ? "up" : "down");
        dd_nic_link(g->nic, up);
    }
}

bool gve_poll(void *ctx)
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
    if (g->tx_blocked && g->tx_req - g->tx_done < g->tx_bufs) {
        g->tx_blocked = false;
        dd_nic_tx_ready(g->nic);
    }
    gve_tx_flush(g);
    uint64_t now = dd_now_ns();
    if (now >= g->next_check_ns) {
        g->next_check_ns = now + CHECK_NS;
        check_device(g);
    }
    return work;
}

bool gve_idle(void *ctx)
{
    struct gve *g = ctx;
    if (!g->live)
        return false;
    /* Unmask both blocks (events while masked are raised now), then look
     * once more: a frame that landed before the unmask raises nothing. */
    for (unsigned b = 0; b < GVE_BLOCKS; b++)
        db_write(g, g->irq_db[b], GVNIC_IRQ_ACK | GVNIC_IRQ_EVENT);
    g->irqs_armed = true;
    g->st.sleeps++;
    const uint8_t *d = (const uint8_t *)g->rx_desc.va + (uint64_t)(g->rx_head % g->rx_size) * 64;
    uint16_t fs = gvnic_be16(__atomic_load_n((const uint16_t *)(const void *)(d + 62),
                                             __ATOMIC_ACQUIRE));
    return (fs & 7u) == g->rx_seq || (g->tx_blocked && tx_counter(g) != g->tx_done);
}
