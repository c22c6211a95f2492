/* Device side of a split virtqueue (contract in virtq.h). Facts from
 * virtio 1.2 §2.7 (split virtqueues), §2.7.7-2.7.10 (notification
 * suppression, EVENT_IDX) and §2.7.2 legacy interfaces (queue layout). */
#include <string.h>
#include "virtq.h"

const char *virtq_err_name(enum virtq_err e)
{
    switch (e) {
    case VIRTQ_OK:              return "ok";
    case VIRTQ_EMPTY:           return "empty";
    case VIRTQ_ERR_NOT_READY:   return "queue not ready";
    case VIRTQ_ERR_CONFIG:      return "bad queue size or alignment";
    case VIRTQ_ERR_AVAIL_IDX:   return "avail index moved more than the queue size";
    case VIRTQ_ERR_HEAD:        return "head index out of range";
    case VIRTQ_ERR_NEXT:        return "next index out of range";
    case VIRTQ_ERR_LOOP:        return "chain longer than the queue (loop)";
    case VIRTQ_ERR_TOO_MANY:    return "chain has too many segments";
    case VIRTQ_ERR_INDIRECT:    return "invalid indirect descriptor";
    case VIRTQ_ERR_ZERO_LEN:    return "zero-length buffer";
    case VIRTQ_ERR_DIRECTION:   return "buffer direction wrong for the queue";
    case VIRTQ_ERR_DMA:         return "ring or buffer refused by the DMA check";
    case VIRTQ_ERR_PUSH:        return "push with no chain in flight";
    }
    return "unknown virtq error";
}

/* ---- shared-memory accessors ------------------------------------------- */

/* The rings are shared with a driver running concurrently: 16-bit fields
 * are single atomic loads/stores (their areas are 2/4-byte aligned, see
 * virtq_setup), never torn, never re-read after validation. */
static inline uint16_t ld16(const uint8_t *p)
{
    return __atomic_load_n((const uint16_t *)(const void *)p, __ATOMIC_RELAXED);
}

static inline void st16(uint8_t *p, uint16_t v)
{
    __atomic_store_n((uint16_t *)(void *)p, v, __ATOMIC_RELAXED);
}

static inline uint16_t slot(const struct virtq *q, uint16_t idx)
{
    return (uint16_t)(idx & (q->size - 1u));     /* size is a power of two */
}

static uint64_t avail_len(const struct virtq *q)
{
    /* used_event trails the ring only with EVENT_IDX (§2.7.6). */
    return 4ull + 2ull * q->size + (q->event_idx ? 2u : 0u);
}

static uint64_t used_len(const struct virtq *q)
{
    return 4ull + 8ull * q->size + (q->event_idx ? 2u : 0u);     /* avail_event */
}

/* ---- configuration ------------------------------------------------------ */

void virtq_init(struct virtq *q, const struct virtq_mem *mem)
{
    memset(q, 0, sizeof *q);
    q->mem = mem;
}

void virtq_reset(struct virtq *q)
{
    const struct virtq_mem *mem = q->mem;
    virtq_init(q, mem);
}

enum virtq_err virtq_setup(struct virtq *q, uint32_t size, uint64_t desc, uint64_t avail,
                           uint64_t used)
{
    virtq_reset(q);
    /* §2.7: alignment 16 (descriptor table), 2 (driver area), 4 (device area). */
    if (!virtq_size_valid(size) || desc % 16u || avail % 2u || used % 4u)
        return VIRTQ_ERR_CONFIG;
    q->size = size;
    q->desc = desc;
    q->avail = avail;
    q->used = used;
    return VIRTQ_OK;
}

enum virtq_err virtq_setup_legacy(struct virtq *q, uint32_t size, uint64_t base)
{
    if (!virtq_size_valid(size) || base % VIRTIO_LEGACY_ALIGN) {
        virtq_reset(q);
        return VIRTQ_ERR_CONFIG;
    }
    return virtq_setup(q, size, base, base + virtq_legacy_avail_off(size),
                       base + virtq_legacy_used_off(size));
}

void virtq_set_features(struct virtq *q, bool event_idx, bool indirect)
{
    q->event_idx = event_idx;
    q->indirect = indirect;
}

enum virtq_err virtq_open(struct virtq *q)
{
    if (!q->size || q->open || !q->mem)
        return VIRTQ_ERR_NOT_READY;
    const struct virtq_mem *m = q->mem;
    q->dt = m->map(m->ctx, q->desc, virtq_desc_bytes(q->size), false, &q->m_dt);
    if (!q->dt)
        return VIRTQ_ERR_DMA;
    q->av = m->map(m->ctx, q->avail, avail_len(q), false, &q->m_av);
    if (!q->av) {
        m->unmap(m->ctx, &q->m_dt);
        return VIRTQ_ERR_DMA;
    }
    q->us = m->map(m->ctx, q->used, used_len(q), true, &q->m_us);
    if (!q->us) {
        m->unmap(m->ctx, &q->m_av);
        m->unmap(m->ctx, &q->m_dt);
        return VIRTQ_ERR_DMA;
    }
    q->open = true;
    return VIRTQ_OK;
}

void virtq_close(struct virtq *q)
{
    if (!q->open)
        return;
    q->mem->unmap(q->mem->ctx, &q->m_us);
    q->mem->unmap(q->mem->ctx, &q->m_av);
    q->mem->unmap(q->mem->ctx, &q->m_dt);
    q->dt = NULL;
    q->av = q->us = NULL;
    q->open = false;
}

/* ---- taking chains ------------------------------------------------------ */

bool virtq_has_avail(struct virtq *q)
{
    return q->open && ld16(q->av + VIRTQ_AVAIL_IDX) != q->last_avail;
}

void virtq_chain_release(struct virtq *q, struct virtq_chain *c)
{
    for (uint32_t i = 0; i < c->n; i++)
        q->mem->unmap(q->mem->ctx, &c->seg[i].map);
    c->n = 0;
}

/* One descriptor copied out of a table (the driver may rewrite it). */
static struct virtq_desc desc_read(const uint8_t *table, uint32_t i)
{
    struct virtq_desc d;
    memcpy(&d, table + (size_t)i * sizeof d, sizeof d);
    return d;
}

/* Walk and map the chain starting at head (see virtq_pop). */
static enum virtq_err chain_walk(struct virtq *q, enum virtq_dir dir, uint16_t head,
                                 struct virtq_chain *c, struct dma_mapping *itab, bool *itab_mapped)
{
    const struct virtq_mem *m = q->mem;
    const uint8_t *table = q->dt;
    uint32_t limit = q->size, count = 0, i = head;
    bool in_indirect = false, too_many = false;
    for (;;) {
        /* Each table holds at most limit descriptors, so a chain visiting
         * more of them than that revisits one: a loop (§2.7.5.2). */
        if (++count > limit)
            return VIRTQ_ERR_LOOP;
        struct virtq_desc d = desc_read(table, i);
        if (d.flags & VIRTQ_DESC_F_INDIRECT) {
            /* §2.7.5.3: only when negotiated, one level, never with NEXT;
             * the table is whole descriptors, no more than the queue holds. */
            if (!q->indirect || in_indirect || (d.flags & VIRTQ_DESC_F_NEXT) || d.len == 0 ||
                d.len % sizeof(struct virtq_desc) || d.len / sizeof(struct virtq_desc) > q->size)
                return VIRTQ_ERR_INDIRECT;
            table = m->map(m->ctx, d.addr, d.len, false, itab);
            if (!table)
                return VIRTQ_ERR_DMA;
            *itab_mapped = true;
            in_indirect = true;
            limit = d.len / (uint32_t)sizeof(struct virtq_desc);
            count = 0;
            i = 0;
            continue;
        }
        if (d.len == 0)
            return VIRTQ_ERR_ZERO_LEN;
        bool write = d.flags & VIRTQ_DESC_F_WRITE;
        if (write != (dir == VIRTQ_DEVICE_WRITES))
            return VIRTQ_ERR_DIRECTION;
        /* Past our capacity keep walking without mapping, so a loop is
         * still reported as a loop and not as a long chain. */
        too_many |= c->n == VIRTQ_CHAIN_SEGS;
        if (!too_many) {
            struct virtq_seg *s = &c->seg[c->n];
            s->host = m->map(m->ctx, d.addr, d.len, write, &s->map);
            if (!s->host)
                return VIRTQ_ERR_DMA;
            s->len = d.len;
            c->n++;
            c->bytes += d.len;
        }
        if (!(d.flags & VIRTQ_DESC_F_NEXT))
            return too_many ? VIRTQ_ERR_TOO_MANY : VIRTQ_OK;
        if (d.next >= limit)
            return VIRTQ_ERR_NEXT;
        i = d.next;
    }
}

enum virtq_err virtq_pop(struct virtq *q, enum virtq_dir dir, struct virtq_chain *c)
{
    c->n = 0;
    c->bytes = 0;
    if (!q->open)
        return VIRTQ_ERR_NOT_READY;
    /* Acquire: the ring entry and descriptors the driver wrote before
     * publishing idx are read after it (§2.7.13.3 driver side barrier). */
    uint16_t idx = __atomic_load_n((const uint16_t *)(const void *)(q->av + VIRTQ_AVAIL_IDX),
                                   __ATOMIC_ACQUIRE);
    uint16_t pending = (uint16_t)(idx - q->last_avail);
    if (pending == 0)
        return VIRTQ_EMPTY;
    if (pending > q->size)
        return VIRTQ_ERR_AVAIL_IDX;
    uint16_t head = ld16(q->av + VIRTQ_AVAIL_RING(slot(q, q->last_avail)));
    if (head >= q->size)
        return VIRTQ_ERR_HEAD;
    struct dma_mapping itab;
    bool itab_mapped = false;
    enum virtq_err e = chain_walk(q, dir, head, c, &itab, &itab_mapped);
    if (itab_mapped)
        q->mem->unmap(q->mem->ctx, &itab);  /* descriptors were copied out */
    if (e != VIRTQ_OK) {
        virtq_chain_release(q, c);
        c->bytes = 0;
        return e;
    }
    c->head = head;
    q->last_avail++;
    return VIRTQ_OK;
}

bool virtq_rewind(struct virtq *q, uint16_t n)
{
    if (n > (uint16_t)(q->last_avail - q->used_idx))
        return false;
    q->last_avail = (uint16_t)(q->last_avail - n);
    return true;
}

size_t virtq_chain_read(const struct virtq_chain *c, uint64_t off, void *dst, size_t len)
{
    uint8_t *out = dst;
    size_t done = 0;
    for (uint32_t i = 0; i < c->n && done < len; i++) {
        const struct virtq_seg *s = &c->seg[i];
        if (off >= s->len) {
            off -= s->len;
            continue;
        }
        size_t n = s->len - (size_t)off < len - done ? s->len - (size_t)off : len - done;
        memcpy(out + done, s->host + off, n);
        done += n;
        off = 0;
    }
    return done;
}

size_t virtq_chain_write(struct virtq_chain *c, uint64_t off, const void *src, size_t len)
{
    const uint8_t *in = src;
    size_t done = 0;
    for (uint32_t i = 0; i < c->n && done < len; i++) {
        struct virtq_seg *s = &c->seg[i];
        if (off >= s->len) {
            off -= s->len;
            continue;
        }
        size_t n = s->len - (size_t)off < len - done ? s->len - (size_t)off : len - done;
        memcpy(s->host + off, in + done, n);
        done += n;
        off = 0;
    }
    return done;
}

/* ---- returning chains --------------------------------------------------- */

enum virtq_err virtq_push(struct virtq *q, uint16_t head, uint32_t len)
{
    if (!q->open)
        return VIRTQ_ERR_NOT_READY;
    if (head >= q->size)
        return VIRTQ_ERR_HEAD;
    if (q->used_idx == q->last_avail)
        return VIRTQ_ERR_PUSH;
    uint8_t *e = q->us + VIRTQ_USED_RING(slot(q, q->used_idx));
    struct virtq_used_elem el = { .id = head, .len = len };
    memcpy(e, &el, sizeof el);      /* invisible to the driver until flush */
    q->used_idx++;
    return VIRTQ_OK;
}

enum virtq_irq virtq_flush(struct virtq *q)
{
    if (!q->open || q->used_idx == q->flushed)
        return VIRTQ_IRQ_NONE;
    /* Release: the used elements are visible before the index that
     * publishes them (§2.7.8.2 device side). */
    __atomic_store_n((uint16_t *)(void *)(q->us + VIRTQ_USED_IDX), q->used_idx, __ATOMIC_RELEASE);
    /* Full barrier: the index store must be visible before we read
     * used_event / flags. The driver does the mirror image (write
     * used_event, full barrier, re-read the used idx), so either it sees
     * our new idx or we see its new used_event: no lost interrupt. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    uint16_t old = q->flushed;
    q->flushed = q->used_idx;
    bool want;
    if (q->event_idx)
        want = virtq_need_event(ld16(q->av + VIRTQ_USED_EVENT(q->size)), q->used_idx, old);
    else
        want = !(ld16(q->av + VIRTQ_AVAIL_FLAGS) & VIRTQ_AVAIL_F_NO_INTERRUPT);
    return want ? VIRTQ_IRQ_SEND : VIRTQ_IRQ_SUPPRESSED;
}

bool virtq_kick_enable(struct virtq *q, bool on)
{
    if (!q->open)
        return false;
    if (q->event_idx) {
        /* Kick me when you publish past the entry I take next (§2.7.10). */
        if (on)
            st16(q->us + VIRTQ_AVAIL_EVENT(q->size), q->last_avail);
    } else {
        st16(q->us + VIRTQ_USED_FLAGS, on ? 0 : VIRTQ_USED_F_NO_NOTIFY);
    }
    if (!on)
        return false;
    /* Full barrier: our request must be visible before we look again; the
     * driver publishes idx, barrier, then reads our request. Either it
     * kicks or we see its chain here. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    return __atomic_load_n((const uint16_t *)(const void *)(q->av + VIRTQ_AVAIL_IDX),
                           __ATOMIC_ACQUIRE) != q->last_avail;
}
