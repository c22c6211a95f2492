/* gVNIC model: notification blocks, the management interrupt, and the
 * BAR2 doorbell dispatch (contract in gvnic_internal.h).
 *
 * GQI interrupt doorbells are big-endian: MASK masks the block, anything
 * else (0, or ACK | EVENT after polling) unmasks it and raises what came
 * while it was masked. DQO's are little-endian: a block disarms itself
 * when it fires and a write with ENABLE re-arms it (raising what came
 * meanwhile); a write without ENABLE disarms it. */
#include "gvnic_internal.h"

#define DQO_ITR_ENABLE 0x1u

static void send_block(struct gvnic *g, uint32_t b)
{
    pci_msix_notify(g->f, (uint16_t)(b + (g->msix_base ? 1u : 0u)));
}

void gvnic_notify(struct gvnic *g, uint32_t b)
{
    if (b >= GVNIC_IRQ_DB_MAX)
        return;
    pthread_mutex_lock(&g->irq_lock);
    bool send = !g->irq_masked[b];
    if (!send)
        g->irq_pending[b] = true;
    else if (g->format == GVNIC_FMT_DQO_RDA)
        g->irq_masked[b] = true;            /* fired: disarmed until re-armed */
    pthread_mutex_unlock(&g->irq_lock);
    if (send)
        send_block(g, b);
}

void gvnic_management(struct gvnic *g)
{
    atomic_store(&g->reset_request, true);
    pci_msix_notify(g->f, (uint16_t)(g->msix_base ? 0u : g->num_irq_dbs));
}

static void irq_doorbell(struct gvnic *g, uint32_t b, uint32_t raw)
{
    bool dqo = g->format == GVNIC_FMT_DQO_RDA;
    bool arm = dqo ? (raw & DQO_ITR_ENABLE) != 0 : !(gvnic_be32(raw) & GVNIC_IRQ_MASK);
    pthread_mutex_lock(&g->irq_lock);
    bool send = arm && g->irq_pending[b];
    g->irq_masked[b] = !arm;
    if (send) {
        g->irq_pending[b] = false;
        g->irq_masked[b] = dqo;             /* a DQO block fires once per arming */
    }
    pthread_mutex_unlock(&g->irq_lock);
    if (send)
        send_block(g, b);
}

void gvnic_tx_fail(struct gvnic *g, struct gvnic_queue *q, uint32_t qi, const char *why)
{
    GSTAT_INC(g, tx_bad);
    q->stopped = true;
    pci_guest_error(g->f, PCI_GERR_FATAL, why, qi, 0);
    gvnic_management(g);
}

const uint8_t *gvnic_tx_ring(struct gvnic *g, uint32_t qi, uint32_t desc_size,
                             struct dma_mapping *m)
{
    struct gvnic_queue *q = &g->txq[qi];
    const uint8_t *ring = pci_dma_map(g->f, q->ring, (uint64_t)q->size * desc_size,
                                      DMA_TO_DEVICE, m);
    if (!ring) {
        GSTAT_INC(g, dma_refusals);
        gvnic_tx_fail(g, q, qi, "its ring is no longer reachable");
    }
    return ring;
}

/* Queue doorbells. GQI (big-endian) takes free-running counts: TX the
 * descriptors produced, RX the slots filled. DQO (little-endian) takes
 * ring indices: TX the descriptor ring's tail, RX the buffer queue's. */
void gvnic_doorbell(struct gvnic *g, uint32_t db, uint32_t raw)
{
    if (g->configured && db < g->num_irq_dbs) {
        irq_doorbell(g, db, raw);
        return;
    }
    const bool dqo = g->format == GVNIC_FMT_DQO_RDA;
    const uint32_t v = dqo ? raw : gvnic_be32(raw);
    if (db >= GVNIC_DB_TX_BASE && db - GVNIC_DB_TX_BASE < g->queues &&
        g->txq[db - GVNIC_DB_TX_BASE].live) {
        uint32_t qi = db - GVNIC_DB_TX_BASE;
        struct gvnic_queue *q = &g->txq[qi];
        if (dqo ? v >= q->size : v - q->head > q->size) {
            gvnic_tx_fail(g, q, qi, "doorbell past the ring");
            return;
        }
        q->tail = v;
        if (dqo)
            gvnic_dqo_tx_run(g, qi);
        else
            gvnic_gqi_tx_run(g, qi);
        return;
    }
    if (db >= GVNIC_DB_RX_BASE && db - GVNIC_DB_RX_BASE < g->queues &&
        g->rxq[db - GVNIC_DB_RX_BASE].live) {
        pthread_mutex_lock(&g->rx_lock);
        struct gvnic_queue *q = &g->rxq[db - GVNIC_DB_RX_BASE];
        bool bad = dqo ? v >= q->size2 : v - q->head > q->size;
        if (!bad)
            q->tail = v;
        pthread_mutex_unlock(&g->rx_lock);
        if (bad) {
            GSTAT_INC(g, bad_doorbells);
            pci_refuse(g->f, "RX doorbell past what the ring holds", db, v);
        }
        return;
    }
    GSTAT_INC(g, bad_doorbells);
    pci_refuse(g->f, "write to a doorbell no queue or block owns", db, raw);
}

void gvnic_rx(void *ctx, const void *frame, size_t len)
{
    struct gvnic *g = ctx;
    if (g->format == GVNIC_FMT_DQO_RDA)
        gvnic_dqo_rx(g, frame, len);
    else
        gvnic_gqi_rx(g, frame, len);
}
