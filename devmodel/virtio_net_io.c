/* virtio-net data path: guest memory through the broker, the worker that
 * serves the transmit queue, and the receive callback the switch calls
 * (virtio 1.2 §5.1.6; contract in virtio_net.h, locking in
 * virtio_net_internal.h). */
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "virtio_net_internal.h"
#include "clock.h"

/* ---- guest memory ------------------------------------------------------- */

static void *vnet_map(void *ctx, uint64_t iova, uint64_t len, bool write, struct dma_mapping *m)
{
    struct vnet *v = ctx;
    void *p = pci_dma_map(v->f, iova, len, write ? DMA_FROM_DEVICE : DMA_TO_DEVICE, m);
    if (!p)
        VNET_COUNT(v, dma_refusals);
    return p;
}

static void vnet_unmap(void *ctx, struct dma_mapping *m)
{
    struct vnet *v = ctx;
    pci_dma_unmap(v->f, m);
}

void vnet_mem_init(struct vnet *v)
{
    v->mem = (struct virtq_mem){ .map = vnet_map, .unmap = vnet_unmap, .ctx = v };
}

/* Publish queue qi's used entries and interrupt if the driver wants it. */
static void flush_irq(struct vnet *v, unsigned qi)
{
    switch (virtq_flush(&v->q[qi].vq)) {
    case VIRTQ_IRQ_NONE:
        break;
    case VIRTQ_IRQ_SEND:
        vnet_irq_queue(v, qi);
        break;
    case VIRTQ_IRQ_SUPPRESSED:
        VNET_COUNT(v, irq_suppressed);
        break;
    }
}

/* ---- transmit ----------------------------------------------------------- */

/* One pass over the transmit queue (lock held): up to a batch of chains,
 * each header stripped and its frame handed to the switch. True if any
 * chain was taken. */
static bool tx_pass(struct vnet *v)
{
    struct vnet_queue *q = &v->q[VIRTIO_NET_Q_TX];
    if (!vnet_queue_live(v, VIRTIO_NET_Q_TX))
        return false;
    enum virtq_err e = virtq_open(&q->vq);
    if (e != VIRTQ_OK) {
        vnet_fail(v, VIRTIO_NET_Q_TX, e);
        return false;
    }
    virtq_kick_enable(&q->vq, false);      /* we are looking anyway */
    uint32_t hdr = vnet_hdr_len(v);
    uint8_t frame[ETH_FRAME_MAX];
    struct virtq_chain c;
    unsigned n = 0;
    while (n < VNET_TX_BATCH) {
        e = virtq_pop(&q->vq, VIRTQ_DEVICE_READS, &c);
        if (e == VIRTQ_EMPTY)
            break;
        if (e != VIRTQ_OK) {
            vnet_fail(v, VIRTIO_NET_Q_TX, e);
            break;
        }
        n++;
        /* Copy out first: the driver may rewrite its buffer at any time. */
        bool len_ok = c.bytes >= hdr + ETH_HDR_LEN && c.bytes <= hdr + ETH_FRAME_MAX;
        size_t len = len_ok ? (size_t)(c.bytes - hdr) : 0;
        if (len_ok)
            virtq_chain_read(&c, hdr, frame, len);
        virtq_chain_release(&q->vq, &c);
        virtq_push(&q->vq, c.head, 0);      /* the device wrote nothing into it */
        if (!len_ok) {
            VNET_COUNT(v, tx_bad_len);
        } else if (netback_send(v->port, frame, len)) {
            VNET_COUNT(v, tx_frames);
            VNET_ADD(v, tx_bytes, len);
        } else {
            VNET_COUNT(v, tx_dropped);
        }
    }
    flush_irq(v, VIRTIO_NET_Q_TX);
    virtq_close(&q->vq);
    return n > 0;
}

/* Before sleeping (lock held): ask the driver to kick again, then look
 * once more. True when chains arrived meanwhile (do not sleep). */
static bool tx_rearm(struct vnet *v)
{
    struct vnet_queue *q = &v->q[VIRTIO_NET_Q_TX];
    if (!vnet_queue_live(v, VIRTIO_NET_Q_TX))
        return false;
    enum virtq_err e = virtq_open(&q->vq);
    if (e != VIRTQ_OK) {
        vnet_fail(v, VIRTIO_NET_Q_TX, e);
        return false;
    }
    bool more = virtq_kick_enable(&q->vq, true);
    virtq_close(&q->vq);
    return more;
}

/* ---- the worker --------------------------------------------------------- */

static bool worker_pass(void *dev, uint64_t *deadline_ns)
{
    (void)deadline_ns;      /* no timed work */
    return tx_pass(dev);
}

static bool worker_arm(void *dev) { return !tx_rearm(dev); }

static void worker_woke(void *dev)
{
    struct vnet *v = dev;
    VNET_COUNT(v, worker_wakeups);
}

static const struct dev_worker_ops worker_ops = {
    .pass = worker_pass, .arm = worker_arm, .woke = worker_woke,
};

void vnet_worker_init(struct vnet *v)
{
    dev_worker_init(&v->w, &worker_ops, v, &v->lock, v->efd, &v->poll_us);
}

void vnet_worker_kick(struct vnet *v) { dev_worker_kick(&v->w); }

bool vnet_worker_start(struct vnet *v) { return dev_worker_start(&v->w, v->f, "vnet"); }

void vnet_worker_stop(struct vnet *v) { dev_worker_stop(&v->w); }

/* ---- receive ------------------------------------------------------------ */

/* Write bytes [from, from + n) of the stream header + frame at the start
 * of chain c. */
static void stream_write(struct virtq_chain *c, const uint8_t *hdr, uint32_t hl,
                         const uint8_t *frame, size_t from, size_t n)
{
    size_t at = 0;
    if (from < hl) {
        size_t k = hl - from < n ? hl - from : n;
        virtq_chain_write(c, 0, hdr + from, k);
        at = k;
        from += k;
        n -= k;
    }
    if (n)
        virtq_chain_write(c, at, frame + (from - hl), n);
}

/* Without MRG_RXBUF: the whole header + frame in one chain. */
static enum virtq_err rx_single(struct vnet *v, struct virtq *vq, const uint8_t *frame,
                                size_t len, uint32_t hl)
{
    struct virtq_chain c;
    enum virtq_err e = virtq_pop(vq, VIRTQ_DEVICE_WRITES, &c);
    if (e == VIRTQ_EMPTY) {
        VNET_COUNT(v, rx_no_buffer);
        return VIRTQ_OK;
    }
    if (e != VIRTQ_OK)
        return e;
    if (c.bytes < hl + len) {
        /* Too small for this frame; it stays the driver's (it may hold a
         * smaller one). */
        virtq_chain_release(vq, &c);
        virtq_rewind(vq, 1);
        VNET_COUNT(v, rx_too_big);
        return VIRTQ_OK;
    }
    uint8_t hdr[VIRTIO_NET_HDR_LEN_MRG] = { 0 };    /* no offloads, GSO_NONE */
    hdr[VIRTIO_NET_HDR_NUM_BUFFERS] = 1;    /* §5.1.6.4: 1 without MRG_RXBUF */
    virtq_chain_write(&c, 0, hdr, hl);
    virtq_chain_write(&c, hl, frame, len);
    virtq_chain_release(vq, &c);
    virtq_push(vq, c.head, (uint32_t)(hl + len));
    VNET_COUNT(v, rx_frames);
    VNET_ADD(v, rx_bytes, len);
    return VIRTQ_OK;
}

/* With MRG_RXBUF: as many chains as the frame needs, num_buffers in the
 * first one's header. Short of buffers, every chain taken goes back. */
static enum virtq_err rx_merge(struct vnet *v, struct virtq *vq, const uint8_t *frame,
                               size_t len, uint32_t hl)
{
    struct virtq_chain first, more;
    struct rx_used { uint16_t head; uint32_t len; } used[VNET_RX_BUFS_MAX];
    uint8_t hdr[VIRTIO_NET_HDR_LEN_MRG] = { 0 };
    size_t total = hl + len, done = 0;
    uint16_t nbuf = 0;
    enum virtq_err e = VIRTQ_OK;
    while (done < total) {
        if (nbuf == VNET_RX_BUFS_MAX) {
            VNET_COUNT(v, rx_too_big);
            goto give_back;
        }
        struct virtq_chain *c = nbuf ? &more : &first;
        e = virtq_pop(vq, VIRTQ_DEVICE_WRITES, c);
        if (e == VIRTQ_EMPTY) {
            VNET_COUNT(v, rx_no_buffer);
            e = VIRTQ_OK;
            goto give_back;
        }
        if (e != VIRTQ_OK)
            goto give_back;
        used[nbuf++] = (struct rx_used){ .head = c->head };
        if (c == &first && c->bytes < hl) {     /* the header must fit the first */
            VNET_COUNT(v, rx_too_big);
            goto give_back;
        }
        size_t n = c->bytes < total - done ? (size_t)c->bytes : total - done;
        stream_write(c, hdr, hl, frame, done, n);
        used[nbuf - 1].len = (uint32_t)n;
        done += n;
        if (c != &first)
            virtq_chain_release(vq, c);
    }
    uint8_t nb[2] = { (uint8_t)nbuf, (uint8_t)(nbuf >> 8) };    /* le16 */
    virtq_chain_write(&first, VIRTIO_NET_HDR_NUM_BUFFERS, nb, sizeof nb);
    virtq_chain_release(vq, &first);
    for (uint16_t i = 0; i < nbuf; i++)
        virtq_push(vq, used[i].head, used[i].len);
    VNET_COUNT(v, rx_frames);
    VNET_ADD(v, rx_bytes, len);
    return VIRTQ_OK;
give_back:
    if (nbuf) {
        virtq_chain_release(vq, &first);
        virtq_rewind(vq, nbuf);
    }
    return e;
}

void vnet_rx(void *ctx, const void *frame, size_t len)
{
    struct vnet *v = ctx;
    pthread_mutex_lock(&v->rx_lock);
    struct vnet_queue *q = &v->q[VIRTIO_NET_Q_RX];
    if (len > ETH_FRAME_MAX) {      /* the switch never delivers one */
        VNET_COUNT(v, rx_too_big);
    } else if (!vnet_queue_live(v, VIRTIO_NET_Q_RX)) {
        VNET_COUNT(v, rx_no_buffer);    /* not live, quiesced, stopped or broken */
    } else {
        enum virtq_err e = virtq_open(&q->vq);
        if (e == VIRTQ_OK) {
            /* Refills need no kick: we look when a frame arrives. */
            virtq_kick_enable(&q->vq, false);
            uint32_t hl = vnet_hdr_len(v);
            e = (v->features & VIRTIO_BIT(VIRTIO_NET_F_MRG_RXBUF))
                    ? rx_merge(v, &q->vq, frame, len, hl)
                    : rx_single(v, &q->vq, frame, len, hl);
            flush_irq(v, VIRTIO_NET_Q_RX);
            virtq_close(&q->vq);
        }
        vnet_fail(v, VIRTIO_NET_Q_RX, e);   /* nothing for VIRTQ_OK */
    }
    pthread_mutex_unlock(&v->rx_lock);
}
