/* The virtio-net data path (contract in vnet.h).
 *
 * Per run-loop pass: the serve poller (registered first) hands us client
 * frames through vnet_tx, which copies each into a TX bounce buffer and
 * adds a chain without publishing it; vnet_tx_flush (end of the
 * platform's batch) publishes them with one avail-index store and
 * notifies only when the ring says the device wants to hear (EVENT_IDX
 * avail_event or NO_NOTIFY). Then vnet_poll harvests the receive ring
 * (each frame is copied out with dd_nic_rx and its buffer re-posted at
 * once; one publish per pass), reclaims transmit buffers and tells the
 * platform when room returns after a refusal.
 *
 * Interrupts: while a pass finds work the device is asked not to
 * interrupt (used_event one behind, or NO_INTERRUPT) — stores into the
 * ring, no exits. When the domain is about to sleep (after spin_us
 * without work) the idle hook asks for an interrupt on the next receive
 * completion (and on the next transmit
 * completion only while a transmit is refused: otherwise nobody waits for
 * those), re-checks the rings behind a full barrier and only then lets
 * the loop sleep. */
#include "vnet.h"

_Noreturn static void violation(const struct vnet_vq *q, enum vq_verdict r,
                                const struct vq_used *u)
{
    dd_log("virtio-net: the device broke the %s ring: %s (used idx %u, id %u, len %u; last used "
           "%u, %u chains outstanding)", q->vq.qidx == VIRTIO_NET_Q_RX ? "receive" : "transmit",
           vq_verdict_name(r), u->idx, u->id, u->raw_len, q->vq.last_used, q->vq.outstanding);
    dd_panic("virtio-net: %s on queue %u", vq_verdict_name(r), q->vq.qidx);
}

/* Publish what was added to q; notify if the device asked for it. */
static void publish(struct vnet *v, struct vnet_vq *q)
{
    if (!vq_unpublished(&q->vq))
        return;
    unsigned i = q->vq.qidx & 1u;
    if (vq_publish(&q->vq)) {
        v->ops->notify(&v->tp, q->vq.qidx);
        v->st.kicks[i]++;
    } else {
        v->st.kicks_saved[i]++;
    }
}

/* ---- transmit ----------------------------------------------------------------- */

/* Take back every transmit buffer the device finished with. */
static uint32_t tx_reclaim(struct vnet *v)
{
    uint32_t n = 0;
    struct vq_used u;
    enum vq_verdict r;
    /* Bounded: only outstanding chains can come back. */
    while ((r = vq_pop(&v->txq.vq, &u)) == VQ_OK) {
        if (u.token >= v->txb.count)
            continue;           /* an injected fault's descriptor, not a buffer */
        v->tx_free[v->tx_free_top++] = (uint16_t)u.token;
        n++;
    }
    v->tx_completed += n;
    if (r != VQ_EMPTY)
        violation(&v->txq, r, &u);
    return n;
}

bool vnet_tx(void *ctx, const void *frame, uint32_t len)
{
    struct vnet *v = ctx;
    if (len < ETH_HDR_LEN || len > ETH_FRAME_MAX) {
        v->st.tx_bad_len++;     /* the platform bounds it: never expected */
        return true;
    }
    if (v->tx_free_top == 0)
        tx_reclaim(v);          /* a ring read, no exit */
    if (v->tx_free_top == 0) {
        v->tx_blocked = true;
        v->st.tx_busy++;
        return false;
    }
    uint32_t b = v->tx_free[--v->tx_free_top];
    uint8_t *p = (uint8_t *)v->txb.mem.va + (uint64_t)b * VNET_BUF_SIZE;
    uint64_t iova = v->txb.mem.iova + (uint64_t)b * VNET_BUF_SIZE;
    /* No offloads: an all-zero header (flags 0, GSO_NONE, num_buffers 0). */
    memset(p, 0, v->hdr_len);
    memcpy(p + v->hdr_len, frame, len);
    struct vq_seg s[2];
    unsigned n = 1;
    if (v->split_hdr) {
        s[0] = (struct vq_seg){ .addr = iova, .len = v->hdr_len };
        s[1] = (struct vq_seg){ .addr = iova + v->hdr_len, .len = len };
        n = 2;
    } else {
        s[0] = (struct vq_seg){ .addr = iova, .len = v->hdr_len + len };
    }
    if (vq_add(&v->txq.vq, s, n, b) < 0)
        dd_panic("virtio-net: driver bug: no descriptor for TX buffer %u", b);
    v->st.tx_frames++;
    v->st.tx_bytes += len;
    v->tx_since_poll = true;
    return true;
}

void vnet_tx_flush(void *ctx)
{
    struct vnet *v = ctx;
    publish(v, &v->txq);
}

/* ---- receive ------------------------------------------------------------------- */

/* wild_rx=1: where a hostile driver aims its receive buffers - private
 * RAM, in no DMA window (the device must refuse, the domain is failed). */
#define VNET_WILD_RX_ADDR 0x200000ull

static void rx_post(struct vnet *v, uint32_t b)
{
    uint64_t iova = v->cfg.wild_rx ? VNET_WILD_RX_ADDR + (uint64_t)b * VNET_BUF_SIZE
                                   : v->rxb.mem.iova + (uint64_t)b * VNET_BUF_SIZE;
    struct vq_seg s[2];
    unsigned n = 1;
    if (v->rx_descs == 2) {
        s[0] = (struct vq_seg){ .addr = iova, .len = v->hdr_len, .write = true };
        s[1] = (struct vq_seg){ .addr = iova + v->hdr_len, .len = VNET_BUF_SIZE - v->hdr_len,
                                .write = true };
        n = 2;
    } else {
        s[0] = (struct vq_seg){ .addr = iova, .len = VNET_BUF_SIZE, .write = true };
    }
    if (vq_add(&v->rxq.vq, s, n, b) < 0)
        dd_panic("virtio-net: driver bug: no descriptor for RX buffer %u", b);
}

void vnet_rx_fill(struct vnet *v)
{
    for (uint32_t b = 0; b < v->rxb.count; b++)
        rx_post(v, b);
    publish(v, &v->rxq);
}

static void rx_dropped(struct vnet *v, enum vnet_rx_bad why, const struct vq_used *u)
{
    v->st.rx_bad[why]++;
    if (v->rx_bad_logged[why])
        return;
    v->rx_bad_logged[why] = true;
    dd_log("virtio-net: dropped a received frame: %s (buffer of %u bytes at used idx %u); "
           "further ones are only counted", vnet_rx_bad_name(why), u->len, u->idx);
}

static uint32_t rx_harvest(struct vnet *v)
{
    struct vq *q = &v->rxq.vq;
    uint32_t n = 0;
    /* At most one ring's worth per pass: a device that keeps completing
     * cannot hold the loop. */
    while (n < q->size) {
        struct vq_used u;
        enum vq_verdict r = vq_pop(q, &u);
        if (r == VQ_EMPTY)
            break;
        if (r != VQ_OK)
            violation(&v->rxq, r, &u);
        n++;
        const uint8_t *buf = (const uint8_t *)v->rxb.mem.va + (uint64_t)u.token * VNET_BUF_SIZE;
        const uint8_t *frame = NULL;
        uint32_t flen = 0;
        enum vnet_rx_bad why;
        switch (vnet_rx_take(&v->rasm, v->hdr_len, v->mrg, v->rxb.count, buf, u.len, &frame,
                             &flen, &why)) {
        case VNET_RX_FRAME:
            v->st.rx_frames++;
            v->st.rx_bytes += flen;
            if (frame == v->rasm.buf)
                v->st.rx_merged++;
            dd_nic_rx(v->nic, frame, flen);     /* copies it: the buffer is free again */
            break;
        case VNET_RX_DROP:
            rx_dropped(v, why, &u);
            break;
        case VNET_RX_MORE:
            break;
        }
        rx_post(v, u.token);
    }
    publish(v, &v->rxq);
    return n;
}

/* ---- device status and configuration ------------------------------------------ */

void vnet_check_status(struct vnet *v)
{
    uint8_t s = v->ops->status_get(&v->tp);
    if (s & VIRTIO_STATUS_DEVICE_NEEDS_RESET) {
        dd_log("virtio-net: device status 0x%x: DEVICE_NEEDS_RESET; stopping the domain for the "
               "supervisor to restart", s);
        dd_panic("virtio-net: the device needs a reset");
    }
    if ((s & VIRTIO_STATUS_FAILED) || !(s & VIRTIO_STATUS_DRIVER_OK)) {
        dd_log("virtio-net: device status 0x%x: the device was reset or failed under the driver", s);
        dd_panic("virtio-net: the device left DRIVER_OK");
    }
}

void vnet_link_update(struct vnet *v)
{
    if (!v->has_status)
        return;
    struct vnet_config c;
    v->ops->config_read(&v->tp, true, &c);
    bool up = (c.status & VIRTIO_NET_S_LINK_UP) != 0;
    if (up == v->link_up)
        return;
    v->link_up = up;
    dd_log("virtio-net: link %s", up ? "up" : "down");
    if (v->nic)
        dd_nic_link(v->nic, up);
}

void vnet_config_event(void *ctx)
{
    struct vnet *v = ctx;
    v->st.config_events++;
    if (!v->live)
        return;
    vnet_check_status(v);
    vnet_link_update(v);
}

/* ---- the poller ------------------------------------------------------------------ */

/* Transmit buffers out and none given back for tx_timeout: the device
 * stopped the queue (a legacy device has no other way to say so). Like a
 * network stack's transmit watchdog, but the remedy is a fail-stop: the
 * supervisor restarts the domain with a freshly reset device. */
static void check_tx_progress(struct vnet *v, uint64_t now)
{
    if (v->txq.vq.outstanding == 0 || v->tx_completed != v->tx_completed_seen) {
        v->tx_completed_seen = v->tx_completed;
        v->tx_stall_ns = 0;
        return;
    }
    if (!v->tx_stall_ns) {
        v->tx_stall_ns = now;
        return;
    }
    if (now - v->tx_stall_ns >= v->cfg.tx_timeout_ns)
        dd_panic("virtio-net: the device gave no transmit buffer back for %lu ms (%u out)",
                 (now - v->tx_stall_ns) / 1000000u, v->txq.vq.outstanding);
}

bool vnet_poll(void *ctx)
{
    struct vnet *v = ctx;
    if (!v->live)
        return false;
    /* Busy (or maybe busy): no interrupts while we look. Refreshed every
     * pass so used_event never falls a wrap behind. */
    vq_irq_disable(&v->rxq.vq);
    vq_irq_disable(&v->txq.vq);
    bool work = v->tx_since_poll;
    v->tx_since_poll = false;
    work |= rx_harvest(v) != 0;
    work |= tx_reclaim(v) != 0;
    if (v->tx_blocked && v->tx_free_top) {
        v->tx_blocked = false;
        dd_nic_tx_ready(v->nic);
    }
    publish(v, &v->txq);        /* frames of a batch without tx_flush */

    uint64_t now = dd_now_ns();
    if (now >= v->next_check_ns) {
        v->next_check_ns = now + VNET_CHECK_NS;
        vnet_check_status(v);
        check_tx_progress(v, now);
    }
    if (v->cfg.stats_ns && now >= v->next_stats_ns) {
        v->next_stats_ns = now + v->cfg.stats_ns;
        vnet_stats_log(v, false);
    }
    if (work)
        v->irqs_armed = false;
    return work;
}

bool vnet_idle(void *ctx)
{
    struct vnet *v = ctx;
    if (!v->live)
        return false;
    /* Going idle: ask for the next receive completion (and transmit
     * completion while a frame waits for room), then look again: one
     * that landed before the device saw the request raises nothing. */
    bool pending = vq_irq_enable(&v->rxq.vq, 1);
    if (v->tx_blocked)
        pending |= vq_irq_enable(&v->txq.vq, 1);
    if (pending) {
        v->st.rechecks++;
        return true;
    }
    if (!v->irqs_armed)
        v->st.sleeps++;
    v->irqs_armed = true;
    return false;
}

void vnet_stats_log(struct vnet *v, bool force)
{
    if (!force && memcmp(&v->st, &v->st_logged, sizeof v->st) == 0)
        return;
    const struct vnet_stats *s = &v->st;
    uint64_t irqs = 0;
    for (unsigned i = 0; i < 3; i++)
        irqs += v->tp.irq[i] ? dd_irq_count(v->tp.irq[i]) : 0;
    dd_log("virtio-net: rx %lu frames %lu bytes (%lu merged), dropped %lu short %lu long %lu "
           "num_buffers; tx %lu frames %lu bytes, %lu busy, %lu bad length; kicks rx %lu tx %lu "
           "(not needed rx %lu tx %lu); irqs %lu (ISR reads %lu), sleeps %lu, re-checks %lu, "
           "config events %lu", s->rx_frames, s->rx_bytes, s->rx_merged,
           s->rx_bad[VNET_RX_SHORT], s->rx_bad[VNET_RX_LONG], s->rx_bad[VNET_RX_NUM_BUFFERS],
           s->tx_frames, s->tx_bytes, s->tx_busy, s->tx_bad_len, s->kicks[0], s->kicks[1],
           s->kicks_saved[0], s->kicks_saved[1], irqs, v->tp.isr_reads, s->sleeps, s->rechecks,
           s->config_events);
    v->st_logged = v->st;
}
