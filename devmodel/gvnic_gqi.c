/* gVNIC model: the GQI-QPL data path and the doorbells of BAR2 (contract
 * in gvnic.h; descriptor layouts in moat/gvnic_abi.h).
 *
 * TX: the driver writes descriptors (a packet descriptor, optional
 * metadata, segment descriptors) whose addresses are byte offsets into the
 * queue's page list, then the count of descriptors it produced to the
 * queue's doorbell. The device gathers each frame, sends it to the switch,
 * writes the count it consumed into the queue's event counter and raises
 * the queue's notification block.
 * RX: the driver fills data slots (page-list offsets) and writes the count
 * filled to the doorbell. For each frame the device takes the next slot,
 * writes the frame 2 bytes in (the pad), then the descriptor with its
 * length (pad included) and a sequence number running 1..7, last.
 * Anything malformed stops the queue, counts it and sets the device's
 * reset request (raised on the management vector): the driver resets.
 * Interrupts and the doorbell dispatch: gvnic_irq.c. */
#include <string.h>
#include "gvnic_internal.h"
#include "netback.h"

#define TXD_SIZE        16u
#define TXD_TYPE(b)     ((b) >> 4)
#define TXD_STD         0x0u
#define TXD_TSO         0x1u
#define TXD_SEG         0x2u
#define TXD_MTD         0x3u
#define TX_SEGS_MAX     18u         /* descriptors of one packet */
#define RXD_SIZE        64u
#define RX_PAD          2u
#define RXD_LEN_OFF     60u
#define RXD_FLAGS_SEQ   62u

/* ---- page lists -------------------------------------------------------------- */

/* Copy len bytes between buf and the page list at byte offset off;
 * false when [off, off + len) is outside it or a page was refused. */
static bool qpl_copy(struct gvnic *g, const struct gvnic_qpl *q, uint64_t off, void *buf,
                     uint32_t len, bool to_qpl)
{
    if (off > (uint64_t)q->n * GVNIC_PAGE || len > (uint64_t)q->n * GVNIC_PAGE - off)
        return false;
    uint8_t *b = buf;
    while (len) {
        uint64_t page = off / GVNIC_PAGE, in = off % GVNIC_PAGE;
        uint32_t n = (uint32_t)(GVNIC_PAGE - in < len ? GVNIC_PAGE - in : len);
        struct dma_mapping m;
        uint8_t *p = pci_dma_map(g->f, q->pages[page] + in, n,
                                 to_qpl ? DMA_FROM_DEVICE : DMA_TO_DEVICE, &m);
        if (!p) {
            GSTAT_INC(g, dma_refusals);
            return false;
        }
        if (to_qpl)
            memcpy(p, b, n);
        else
            memcpy(b, p, n);
        pci_dma_unmap(g->f, &m);
        b += n;
        off += n;
        len -= n;
    }
    return true;
}

/* ---- TX ------------------------------------------------------------------------ */

/* Gather the packet at q->head (ring mapped at ring); its descriptor
 * count in *used. NULL when done, else what is wrong. */
static const char *tx_gather(struct gvnic *g, const struct gvnic_qpl *qpl,
                             const struct gvnic_queue *q, const uint8_t *ring, uint8_t *frame,
                             uint32_t *len, uint32_t *used)
{
    const uint32_t avail = q->tail - q->head;
    const uint8_t *d = ring + (uint64_t)(q->head % q->size) * TXD_SIZE;
    uint32_t type = TXD_TYPE(d[0]), cnt = d[3];
    uint16_t plen, slen;
    memcpy(&plen, d + 4, 2);
    plen = gvnic_be16(plen);
    if (type != TXD_STD)
        return type == TXD_TSO ? "TSO was not offered" : "a packet does not start with a "
                                                         "packet descriptor";
    if (cnt == 0 || cnt > TX_SEGS_MAX || cnt > avail)
        return "descriptor count 0, too large, or past what was produced";
    if (plen < 14 || plen > NETBACK_FRAME_MAX)
        return "packet length outside 14..1514";
    uint32_t got = 0;
    for (uint32_t i = 0; i < cnt; i++) {
        d = ring + (uint64_t)((q->head + i) % q->size) * TXD_SIZE;
        type = TXD_TYPE(d[0]);
        if (i > 0 && type == TXD_MTD)
            continue;                               /* metadata: nothing to send */
        if (i > 0 && type != TXD_SEG)
            return "a packet's later descriptor is not a segment";
        uint64_t addr;
        memcpy(&slen, d + 6, 2);
        memcpy(&addr, d + 8, 8);
        slen = gvnic_be16(slen);
        if (slen > plen - got)
            return "segments longer than the packet";
        if (!qpl_copy(g, qpl, gvnic_be64(addr), frame + got, slen, false))
            return "a segment outside the queue's page list";
        got += slen;
    }
    if (got != plen)
        return "segments shorter than the packet";
    *len = plen;
    *used = cnt;
    return NULL;
}

void gvnic_gqi_tx_run(struct gvnic *g, uint32_t qi)
{
    struct gvnic_queue *q = &g->txq[qi];
    const struct gvnic_qpl *qpl = gvnic_qpl_find(g, q->qpl_id);
    if (q->stopped || !qpl || q->head == q->tail)
        return;
    struct dma_mapping m;
    const uint8_t *ring = gvnic_tx_ring(g, qi, TXD_SIZE, &m);
    if (!ring)
        return;
    uint8_t frame[NETBACK_FRAME_MAX];
    uint32_t sent = 0;
    while (q->head != q->tail) {
        uint32_t len, used;
        const char *why = tx_gather(g, qpl, q, ring, frame, &len, &used);
        if (why) {
            gvnic_tx_fail(g, q, qi, why);
            break;
        }
        if (g->port)
            netback_send(g->port, frame, len);
        q->head += used;
        sent++;
    }
    pci_dma_unmap(g->f, &m);
    __atomic_fetch_add(&g->st.tx_frames, sent, __ATOMIC_RELAXED);
    /* What was consumed, in the queue's event counter. */
    uint32_t be = gvnic_be32(q->head);
    struct dma_mapping cm;
    uint8_t *c = pci_dma_map(g->f, g->counter_array + (uint64_t)q->counter * 4, 4,
                             DMA_FROM_DEVICE, &cm);
    if (c) {
        __atomic_store_n((uint32_t *)(void *)c, be, __ATOMIC_RELEASE);
        pci_dma_unmap(g->f, &cm);
    } else {
        GSTAT_INC(g, dma_refusals);
    }
    gvnic_notify(g, q->ntfy);
}

/* ---- RX --------------------------------------------------------------------------- */

void gvnic_gqi_rx(struct gvnic *g, const void *frame, size_t len)
{
    pthread_mutex_lock(&g->rx_lock);
    struct gvnic_queue *q = &g->rxq[0];         /* one RX queue takes all (no RSS) */
    const struct gvnic_qpl *qpl = q->live ? gvnic_qpl_find(g, q->qpl_id) : NULL;
    if (g->quiesced || !qpl || q->stopped) {
        pthread_mutex_unlock(&g->rx_lock);
        return;                                 /* not running: the wire drops it */
    }
    if (q->head == q->tail) {
        GSTAT_INC(g, rx_no_buffer);
        pthread_mutex_unlock(&g->rx_lock);
        return;
    }
    uint32_t idx = q->head % q->size;
    struct dma_mapping m;
    const uint8_t *slot = pci_dma_map(g->f, q->ring2 + (uint64_t)idx * 8, 8, DMA_TO_DEVICE, &m);
    uint64_t off = 0;
    if (slot) {
        memcpy(&off, slot, 8);
        off = gvnic_be64(off);
        pci_dma_unmap(g->f, &m);
    }
    /* The frame and its pad stay inside one packet buffer of one page. */
    bool ok = slot && off % GVNIC_PAGE + RX_PAD + len <= GVNIC_PAGE &&
              RX_PAD + len <= q->packet_buffer_size &&
              qpl_copy(g, qpl, off + RX_PAD, (void *)(uintptr_t)frame, (uint32_t)len, true);
    uint8_t *d = ok ? pci_dma_map(g->f, q->ring + (uint64_t)idx * RXD_SIZE, RXD_SIZE,
                                  DMA_FROM_DEVICE, &m)
                    : NULL;
    if (!d) {
        GSTAT_INC(g, rx_bad_slot);
        q->stopped = true;
        pci_guest_error(g->f, PCI_GERR_FATAL, "RX slot outside its page list or unreachable: "
                        "the device asks for a reset", idx, off);
        pthread_mutex_unlock(&g->rx_lock);
        gvnic_management(g);
        return;
    }
    memset(d, 0, RXD_FLAGS_SEQ);
    uint16_t be_len = gvnic_be16((uint16_t)(len + RX_PAD));
    memcpy(d + RXD_LEN_OFF, &be_len, 2);
    /* The sequence number last: it is what makes the descriptor new. */
    __atomic_store_n((uint16_t *)(void *)(d + RXD_FLAGS_SEQ), gvnic_be16(q->seq),
                     __ATOMIC_RELEASE);
    pci_dma_unmap(g->f, &m);
    q->seq = (uint8_t)(q->seq % 7u + 1u);
    q->head++;
    GSTAT_INC(g, rx_frames);
    uint32_t ntfy = q->ntfy;
    pthread_mutex_unlock(&g->rx_lock);
    gvnic_notify(g, ntfy);
}
