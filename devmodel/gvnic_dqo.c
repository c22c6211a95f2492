/* gVNIC model: the DQO-RDA data path (contract in gvnic.h). Descriptors
 * and doorbells are little-endian; addresses are DMA addresses (RDA).
 *
 * TX: the driver writes 16-byte packet descriptors (buffer address, size,
 * end of packet, completion tag, report-event) and the ring's new tail
 * index to the queue's doorbell. The device gathers each packet (up to 10
 * buffers), sends it, and writes to the completion ring a packet
 * completion with its tag, plus a descriptor completion with the new head
 * when the last descriptor asked for one; each completion carries the
 * ring's generation bit (1 on the first pass, flipped at every wrap).
 * RX: the driver posts 32-byte buffer descriptors (id, address) and the
 * buffer queue's tail; the device writes each frame into the next buffer
 * and a 32-byte completion (length, generation, end of packet, the id).
 * Anything malformed stops the queue and asks the driver for a reset. */
#include <string.h>
#include "gvnic_internal.h"
#include "netback.h"
#include "byteorder.h"

#define TXD_SIZE      16u
#define TXD_DTYPE_PKT 0x0Cu
#define TXD_EOP       0x20u
#define TXD_RE        0x80u
#define TX_BUFS_MAX   10u
#define TXC_SIZE      8u
#define TXC_PKT       2u
#define TXC_DESC      4u
#define RXB_SIZE      32u
#define RXC_SIZE      32u


/* Write one 8-byte TX completion (the generation word last). */
static bool tx_complete(struct gvnic *g, struct gvnic_queue *q, uint32_t qi, uint32_t type,
                        uint16_t value)
{
    struct dma_mapping m;
    uint8_t *c = pci_dma_map(g->f, q->ring2 + (uint64_t)q->head2 * TXC_SIZE, TXC_SIZE,
                             DMA_FROM_DEVICE, &m);
    if (!c) {
        GSTAT_INC(g, dma_refusals);
        return false;
    }
    memset(c + 4, 0, 4);
    put_le16(c + 2, value);
    uint16_t w = (uint16_t)((qi & 0x7FFu) | type << 11 | (q->gen ? 0x8000u : 0u));
    __atomic_store_n((uint16_t *)(void *)c, w, __ATOMIC_RELEASE);
    pci_dma_unmap(g->f, &m);
    if (++q->head2 == q->size2) {
        q->head2 = 0;
        q->gen = !q->gen;
    }
    return true;
}

/* Gather the packet at q->head: NULL when done (*used descriptors, the
 * last one's tag and report-event in *tag / *re), "" when its end is not
 * posted yet, else what is wrong. */
static const char *tx_gather(struct gvnic *g, const struct gvnic_queue *q, const uint8_t *ring,
                             uint8_t *frame, uint32_t *len, uint32_t *used, uint16_t *tag,
                             bool *re)
{
    const uint32_t avail = (q->tail + q->size - q->head) % q->size;
    uint32_t got = 0;
    for (uint32_t i = 0; i < TX_BUFS_MAX; i++) {
        if (i == avail)
            return "";                          /* the rest is not posted yet */
        const uint8_t *d = ring + (uint64_t)((q->head + i) % q->size) * TXD_SIZE;
        if ((d[8] & 0x1Fu) != TXD_DTYPE_PKT)
            return "not a packet descriptor (context descriptors and TSO were not offered)";
        uint64_t addr;
        memcpy(&addr, d, 8);
        uint32_t size = get_le16(d + 14) & 0x3FFFu;
        if (size > NETBACK_FRAME_MAX - got)
            return "a packet longer than 1514 bytes";
        struct dma_mapping m;
        const uint8_t *p = size ? pci_dma_map(g->f, addr, size, DMA_TO_DEVICE, &m) : NULL;
        if (size && !p) {
            GSTAT_INC(g, dma_refusals);
            return "a buffer outside the windows";
        }
        if (p) {
            memcpy(frame + got, p, size);
            pci_dma_unmap(g->f, &m);
        }
        got += size;
        if (d[8] & TXD_EOP) {
            if (got < 14)
                return "a packet shorter than an Ethernet header";
            *len = got;
            *used = i + 1;
            *tag = get_le16(d + 12);
            *re = (d[8] & TXD_RE) != 0;
            return NULL;
        }
    }
    return "a packet of more than 10 buffers";
}

void gvnic_dqo_tx_run(struct gvnic *g, uint32_t qi)
{
    struct gvnic_queue *q = &g->txq[qi];
    if (q->stopped)
        return;
    struct dma_mapping m;
    const uint8_t *ring = gvnic_tx_ring(g, qi, TXD_SIZE, &m);
    if (!ring)
        return;
    uint8_t frame[NETBACK_FRAME_MAX];
    bool any = false;
    while (q->head != q->tail) {
        uint32_t len, used;
        uint16_t tag;
        bool re;
        const char *why = tx_gather(g, q, ring, frame, &len, &used, &tag, &re);
        if (why && !why[0])
            break;
        if (why) {
            gvnic_tx_fail(g, q, qi, why);
            break;
        }
        if (g->port)
            netback_send(g->port, frame, len);
        __atomic_fetch_add(&g->st.tx_frames, 1, __ATOMIC_RELAXED);
        q->head = (q->head + used) % q->size;
        if (!tx_complete(g, q, qi, TXC_PKT, tag) ||
            (re && !tx_complete(g, q, qi, TXC_DESC, (uint16_t)q->head))) {
            gvnic_tx_fail(g, q, qi, "its completion ring is not reachable");
            break;
        }
        any = true;
    }
    pci_dma_unmap(g->f, &m);
    if (any)
        gvnic_notify(g, q->ntfy);
}

void gvnic_dqo_rx(struct gvnic *g, const void *frame, size_t len)
{
    pthread_mutex_lock(&g->rx_lock);
    struct gvnic_queue *q = &g->rxq[0];         /* one RX queue takes all (no RSS) */
    if (g->quiesced || !q->live || q->stopped) {
        pthread_mutex_unlock(&g->rx_lock);
        return;
    }
    if (q->head2 == q->tail) {                  /* the buffer queue is empty */
        GSTAT_INC(g, rx_no_buffer);
        pthread_mutex_unlock(&g->rx_lock);
        return;
    }
    struct dma_mapping m;
    const uint8_t *b = pci_dma_map(g->f, q->ring2 + (uint64_t)q->head2 * RXB_SIZE, RXB_SIZE,
                                   DMA_TO_DEVICE, &m);
    uint16_t id = 0;
    uint64_t addr = 0;
    if (b) {
        id = get_le16(b);
        memcpy(&addr, b + 8, 8);
        pci_dma_unmap(g->f, &m);
    }
    uint8_t *dst = b && len <= q->packet_buffer_size
                       ? pci_dma_map(g->f, addr, len, DMA_FROM_DEVICE, &m) : NULL;
    if (dst) {
        memcpy(dst, frame, len);
        pci_dma_unmap(g->f, &m);
    }
    uint8_t *c = dst ? pci_dma_map(g->f, q->ring + (uint64_t)q->head * RXC_SIZE, RXC_SIZE,
                                   DMA_FROM_DEVICE, &m)
                     : NULL;
    if (!c) {
        GSTAT_INC(g, rx_bad_slot);
        q->stopped = true;
        pci_guest_error(g->f, PCI_GERR_FATAL, "DQO RX buffer or completion ring outside the "
                        "windows: the device asks for a reset", id, addr);
        pthread_mutex_unlock(&g->rx_lock);
        gvnic_management(g);
        return;
    }
    /* Every byte but the length/generation word, which goes last: clearing
     * it first would flip the generation the driver compares, and it would
     * take a half-written completion for a new one. */
    memset(c, 0, 4);
    memset(c + 6, 0, RXC_SIZE - 6);
    c[0] = 1;                                   /* rxdid */
    c[8] = 0x3;                                 /* descriptor done, end of packet */
    put_le16(c + 12, id);
    /* Length and generation last: the generation is what makes it new. */
    __atomic_store_n((uint16_t *)(void *)(c + 4),
                     (uint16_t)((len & 0x3FFFu) | (q->gen ? 0x4000u : 0u)), __ATOMIC_RELEASE);
    pci_dma_unmap(g->f, &m);
    q->head2 = (q->head2 + 1) % q->size2;
    if (++q->head == q->size) {
        q->head = 0;
        q->gen = !q->gen;
    }
    GSTAT_INC(g, rx_frames);
    uint32_t ntfy = q->ntfy;
    pthread_mutex_unlock(&g->rx_lock);
    gvnic_notify(g, ntfy);
}
