/* The driver side of a split virtqueue (contract in vnet_ring.h). */
#include "vnet_ring.h"
#include "dd.h"                 /* barriers; memset/memcpy (libc's on the host) */

#define USED_LINE 64u           /* the device-written area starts a fresh cache line */

/* avail area as 16-bit words: flags, idx, ring[size], used_event */
#define AV_FLAGS          0u
#define AV_IDX            1u
#define AV_RING(i)        (2u + (i))
#define AV_USED_EVENT(n)  (2u + (n))

bool vq_layout(uint32_t size, bool legacy, struct vq_layout *out)
{
    if (!virtq_size_valid(size))
        return false;
    out->desc_off = 0;
    if (legacy) {
        out->avail_off = virtq_legacy_avail_off(size);
        out->used_off = virtq_legacy_used_off(size);
        out->bytes = virtq_legacy_bytes(size);
    } else {
        out->avail_off = virtq_desc_bytes(size);
        uint64_t end = out->avail_off + virtq_avail_bytes(size);
        out->used_off = (end + USED_LINE - 1u) & ~(uint64_t)(USED_LINE - 1u);
        out->bytes = out->used_off + virtq_used_bytes(size);
    }
    return true;
}

bool vq_init(struct vq *q, uint16_t qidx, uint32_t size, bool event_idx, void *ring,
             const struct vq_layout *l, uint16_t *next, struct vq_head *heads)
{
    if (!virtq_size_valid(size) || !ring || !l || !next || !heads)
        return false;
    uint8_t *base = ring;
    *q = (struct vq){
        .qidx = qidx,
        .size = (uint16_t)size,
        .mask = (uint16_t)(size - 1u),
        .event_idx = event_idx,
        .desc = (struct virtq_desc *)(void *)(base + l->desc_off),
        .avail = (volatile uint16_t *)(void *)(base + l->avail_off),
        .used = base + l->used_off,
        .next = next,
        .head = heads,
        .num_free = (uint16_t)size,
        .irq_on = true,
    };
    for (uint32_t i = 0; i < size; i++) {
        next[i] = (uint16_t)((i + 1u) & (size - 1u));
        heads[i] = (struct vq_head){ 0 };
    }
    return true;
}

int vq_add(struct vq *q, const struct vq_seg *segs, unsigned n, uint32_t token)
{
    if (n == 0 || n > q->num_free)
        return -1;
    /* Check everything before writing anything: readable buffers first
     * (§2.7.4.2), and the writable total must fit the used element's len. */
    uint64_t wlen = 0;
    bool writable = false;
    for (unsigned i = 0; i < n; i++) {
        if (writable && !segs[i].write)
            return -1;
        writable = segs[i].write;
        if (writable)
            wlen += segs[i].len;
    }
    if (wlen > UINT32_MAX)
        return -1;

    uint16_t head = q->free_head, d = head;
    for (unsigned i = 0; i < n; i++) {
        bool more = i + 1u < n;
        struct virtq_desc *e = &q->desc[d];
        e->addr = segs[i].addr;
        e->len = segs[i].len;
        e->flags = (uint16_t)((segs[i].write ? VIRTQ_DESC_F_WRITE : 0u) |
                              (more ? VIRTQ_DESC_F_NEXT : 0u));
        /* The device follows next; our own links stay in q->next, which
         * the device cannot touch. */
        e->next = more ? q->next[d] : (uint16_t)0;
        d = q->next[d];
    }
    q->free_head = d;
    q->num_free = (uint16_t)(q->num_free - n);
    q->head[head] = (struct vq_head){ .token = token, .wlen = (uint32_t)wlen, .ndesc = (uint16_t)n };
    q->avail[AV_RING(q->avail_idx & q->mask)] = head;
    q->avail_idx++;
    q->outstanding++;
    return head;
}

uint16_t vq_used_idx(const struct vq *q)
{
    return *(const volatile uint16_t *)(const volatile void *)(q->used + VIRTQ_USED_IDX);
}

uint16_t vq_avail_event(const struct vq *q)
{
    return *(const volatile uint16_t *)(const volatile void *)(q->used + VIRTQ_AVAIL_EVENT(q->size));
}

uint16_t vq_used_flags(const struct vq *q)
{
    return *(const volatile uint16_t *)(const volatile void *)(q->used + VIRTQ_USED_FLAGS);
}

bool vq_publish(struct vq *q)
{
    uint16_t old = q->avail_pub, now = q->avail_idx;
    if (old == now)
        return false;
    /* Descriptors and ring slots before the index that hands them over. */
    dd_wmb();
    q->avail[AV_IDX] = now;
    q->avail_pub = now;
    /* Store-load: the device must be able to see the new index before we
     * read what it asked for; otherwise it could decide to sleep on the
     * old index while we decide not to wake it. */
    dd_mb();
    if (q->event_idx)
        return virtq_need_event(vq_avail_event(q), now, old);
    return !(vq_used_flags(q) & VIRTQ_USED_F_NO_NOTIFY);
}

void vq_avail_idx_force(struct vq *q, uint16_t idx)
{
    dd_wmb();
    q->avail[AV_IDX] = idx;
    q->avail_idx = q->avail_pub = idx;  /* and the driver goes on from there */
}

const char *vq_verdict_name(enum vq_verdict v)
{
    switch (v) {
    case VQ_OK:           return "ok";
    case VQ_EMPTY:        return "empty";
    case VQ_BAD_USED_IDX: return "used index moved past the chains outstanding";
    case VQ_BAD_ID:       return "used id beyond the queue";
    case VQ_STALE_ID:     return "used id is not an outstanding chain head";
    case VQ_BAD_LEN:      return "used len exceeds the writable bytes posted";
    case VQ_VERDICTS:     break;
    }
    return "?";
}

enum vq_verdict vq_pop(struct vq *q, struct vq_used *out)
{
    uint16_t idx = vq_used_idx(q);
    uint16_t ready = (uint16_t)(idx - q->last_used);
    if (ready == 0)
        return VQ_EMPTY;
    if (ready > q->outstanding) {
        out->idx = idx;
        out->id = out->raw_len = 0;
        return VQ_BAD_USED_IDX;
    }
    /* The index is what the device writes last: read the element after. */
    dd_rmb();
    const volatile struct virtq_used_elem *e =
        (const volatile struct virtq_used_elem *)(const volatile void *)
            (q->used + VIRTQ_USED_RING(q->last_used & q->mask));
    uint32_t id = e->id, len = e->len;     /* once: the device may rewrite them */
    out->id = id;
    out->raw_len = len;
    out->idx = q->last_used;
    if (id >= q->size)
        return VQ_BAD_ID;
    struct vq_head *h = &q->head[id];
    if (h->ndesc == 0)
        return VQ_STALE_ID;
    if (h->wlen && len > h->wlen)
        return VQ_BAD_LEN;
    out->token = h->token;
    out->len = h->wlen ? len : 0;

    /* Back to the free list, walking our private links. */
    uint16_t tail = (uint16_t)id;
    for (uint16_t k = 1; k < h->ndesc; k++)
        tail = q->next[tail];
    q->next[tail] = q->free_head;
    q->free_head = (uint16_t)id;
    q->num_free = (uint16_t)(q->num_free + h->ndesc);
    h->ndesc = 0;
    q->outstanding--;
    q->last_used++;
    return VQ_OK;
}

void vq_irq_disable(struct vq *q)
{
    if (q->event_idx) {
        /* One behind what we consumed: the device is at or ahead of
         * last_used by at most the queue size, so it never crosses it. */
        q->avail[AV_USED_EVENT(q->size)] = (uint16_t)(q->last_used - 1u);
    } else if (!(q->avail_flags & VIRTQ_AVAIL_F_NO_INTERRUPT)) {
        q->avail_flags |= VIRTQ_AVAIL_F_NO_INTERRUPT;
        q->avail[AV_FLAGS] = q->avail_flags;
    }
    q->irq_on = false;
}

bool vq_irq_enable(struct vq *q, uint16_t after)
{
    if (after == 0)
        after = 1;
    if (q->event_idx) {
        q->avail[AV_USED_EVENT(q->size)] = (uint16_t)(q->last_used + after - 1u);
    } else if (q->avail_flags & VIRTQ_AVAIL_F_NO_INTERRUPT) {
        q->avail_flags &= (uint16_t)~VIRTQ_AVAIL_F_NO_INTERRUPT;
        q->avail[AV_FLAGS] = q->avail_flags;
    }
    q->irq_on = true;
    /* Store-load again: used_event (or the flag) must be visible before we
     * look at the used index, or a completion that raced with the store
     * would go unseen by both of us. */
    dd_mb();
    uint16_t ready = (uint16_t)(vq_used_idx(q) - q->last_used);
    return q->event_idx ? ready >= after : ready != 0;
}
