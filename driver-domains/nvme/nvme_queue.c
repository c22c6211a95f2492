/* Pure NVMe queue bookkeeping (contract in nvme_queue.h). */
#include "nvme_queue.h"
/* Relative so the host unit test, which has no -Idriver-domains/include,
 * compiles this file unchanged. */
#include "dd.h"

bool nvme_queue_init(struct nvme_queue *q, uint16_t qid, uint16_t entries,
                     struct nvme_sqe *sq, const volatile struct nvme_cqe *cq,
                     struct nvme_slot *slots, uint16_t *free_stack)
{
    if (entries < 2 || entries > 4096 || !sq || !cq || !slots || !free_stack)
        return false;
    uint16_t depth = (uint16_t)(entries - 1u), bits = 0;
    while ((1u << bits) < depth)
        bits++;
    *q = (struct nvme_queue){ .qid = qid, .entries = entries, .depth = depth, .cid_bits = bits,
                              .free = free_stack, .slot = slots, .sq = sq, .cq = cq };
    for (uint16_t i = 0; i < depth; i++)
        slots[i] = (struct nvme_slot){ 0 };
    nvme_queue_rewind(q);
    return true;
}

void nvme_queue_rewind(struct nvme_queue *q)
{
    q->sq_tail = q->sq_head = q->sq_db = 0;
    q->cq_head = q->cq_db = 0;
    q->cq_phase = 1;            /* a created CQ is zeroed: phase 0 means "old" */
    q->busy = 0;
    /* Slot 0 on top: the lowest indexes are used first (easier to read). */
    for (uint16_t i = 0; i < q->depth; i++) {
        q->free[i] = (uint16_t)(q->depth - 1u - i);
        q->slot[i].busy = false;
        q->slot[i].req = NULL;
    }
    q->free_top = q->depth;
}

/* A fresh CID for slot idx: the generation moves on every issue, so a late
 * or duplicated CQE of an earlier command in the same slot is stale. CID
 * FFFFh is never used (the Error Information log page reserves it). */
static void new_cid(struct nvme_queue *q, uint16_t idx)
{
    struct nvme_slot *s = &q->slot[idx];
    uint32_t gen_mask = 0xFFFFu >> q->cid_bits;
    do {
        s->gen = (uint16_t)((s->gen + 1u) & gen_mask);
        s->cid = (uint16_t)((uint32_t)s->gen << q->cid_bits | idx);
    } while (s->cid == 0xFFFFu);
}

int nvme_slot_alloc(struct nvme_queue *q, void *req, uint8_t tries, uint64_t now)
{
    if (q->free_top == 0)
        return -1;
    uint16_t idx = q->free[--q->free_top];
    struct nvme_slot *s = &q->slot[idx];
    s->busy = true;
    s->req = req;
    s->tries = tries;
    s->submit_ns = now;
    s->abort_ns = 0;
    new_cid(q, idx);
    q->busy++;
    return idx;
}

void nvme_slot_reissue(struct nvme_queue *q, uint16_t idx, uint64_t now)
{
    struct nvme_slot *s = &q->slot[idx];
    s->submit_ns = now;
    s->abort_ns = 0;
    new_cid(q, idx);
}

void nvme_slot_free(struct nvme_queue *q, uint16_t idx)
{
    struct nvme_slot *s = &q->slot[idx];
    if (!s->busy)
        return;                 /* already free: keep the stack consistent */
    s->busy = false;
    s->req = NULL;
    q->free[q->free_top++] = idx;
    q->busy--;
}

bool nvme_sq_write(struct nvme_queue *q, const struct nvme_sqe *e)
{
    uint16_t next = (uint16_t)((q->sq_tail + 1u) % q->entries);
    /* Every SQE in [sq_head, sq_tail) belongs to a command still
     * outstanding, and those are fewer than depth: full means the
     * controller reported a stale head. */
    if (next == q->sq_head)
        return false;
    memcpy(&q->sq[q->sq_tail], e, sizeof *e);
    q->sq_tail = next;
    return true;
}

bool nvme_cq_pop(struct nvme_queue *q, struct nvme_cqe *out)
{
    const volatile struct nvme_cqe *c = &q->cq[q->cq_head];
    uint16_t status = c->status;
    if ((status & NVME_CQE_PHASE) != q->cq_phase)
        return false;
    /* The phase is what the controller writes last: read the rest after. */
    dd_rmb();
    out->dw0 = c->dw0;
    out->dw1 = c->dw1;
    out->sqhd = c->sqhd;
    out->sqid = c->sqid;
    out->cid = c->cid;
    out->status = status;
    if (++q->cq_head == q->entries) {
        q->cq_head = 0;
        q->cq_phase ^= 1u;
    }
    return true;
}

enum nvme_cqe_verdict nvme_cqe_check(const struct nvme_queue *q, const struct nvme_cqe *e,
                                     uint16_t *idx)
{
    if (e->sqid != q->qid)
        return NVME_CQE_BAD_SQID;
    uint16_t i = (uint16_t)(e->cid & ((1u << q->cid_bits) - 1u));
    if (i >= q->depth)
        return NVME_CQE_BAD_CID;
    if (!q->slot[i].busy || q->slot[i].cid != e->cid)
        return NVME_CQE_STALE_CID;
    if (e->sqhd >= q->entries)
        return NVME_CQE_BAD_SQHD;
    *idx = i;
    return NVME_CQE_OK;
}

const char *nvme_cqe_verdict_name(enum nvme_cqe_verdict v)
{
    switch (v) {
    case NVME_CQE_OK:        return "ok";
    case NVME_CQE_BAD_SQID:  return "SQ id of another queue";
    case NVME_CQE_BAD_CID:   return "CID beyond the queue's slots";
    case NVME_CQE_STALE_CID: return "CID not outstanding";
    case NVME_CQE_BAD_SQHD:  return "SQ head beyond the ring";
    case NVME_CQE_VERDICTS:  break;
    }
    return "?";
}

bool nvme_db_publish(volatile uint32_t *shadow, const volatile uint32_t *event_idx,
                     uint16_t new_idx, uint16_t old)
{
    dd_wmb();                   /* entries before the value that covers them */
    *shadow = new_idx;
    /* Store-load order: the controller must see the shadow value before we
     * read its EventIdx, or both sides could skip the doorbell. */
    dd_mb();
    uint16_t ei = (uint16_t)*event_idx;
    return nvme_dbbuf_need_event(ei, new_idx, old) != 0;
}

enum nvme_tmo nvme_queue_timeouts(const struct nvme_queue *q, uint64_t now,
                                  uint64_t timeout_ns, uint16_t *idx)
{
    enum nvme_tmo r = NVME_TMO_NONE;
    uint64_t oldest = UINT64_MAX;
    for (uint16_t i = 0; i < q->depth; i++) {
        const struct nvme_slot *s = &q->slot[i];
        if (!s->busy)
            continue;
        if (s->abort_ns) {
            if (now - s->abort_ns >= timeout_ns) {
                *idx = i;
                return NVME_TMO_RESET;
            }
            if (r == NVME_TMO_NONE)
                r = NVME_TMO_WAIT;
            continue;
        }
        if (now - s->submit_ns >= timeout_ns && s->submit_ns < oldest) {
            oldest = s->submit_ns;
            *idx = i;
            r = NVME_TMO_ABORT;
        }
    }
    return r;
}

bool nvme_fifo_init(struct nvme_fifo *f, struct nvme_wait *e, uint32_t cap)
{
    if (!e || cap == 0 || (cap & (cap - 1)))
        return false;
    *f = (struct nvme_fifo){ .e = e, .cap = cap };
    return true;
}

uint32_t nvme_fifo_len(const struct nvme_fifo *f) { return f->tail - f->head; }

bool nvme_fifo_push(struct nvme_fifo *f, void *req, uint8_t tries)
{
    if (nvme_fifo_len(f) == f->cap)
        return false;
    f->e[f->tail++ & (f->cap - 1)] = (struct nvme_wait){ .req = req, .tries = tries };
    return true;
}

bool nvme_fifo_push_front(struct nvme_fifo *f, void *req, uint8_t tries)
{
    if (nvme_fifo_len(f) == f->cap)
        return false;
    f->e[--f->head & (f->cap - 1)] = (struct nvme_wait){ .req = req, .tries = tries };
    return true;
}

const struct nvme_wait *nvme_fifo_peek(const struct nvme_fifo *f)
{
    return nvme_fifo_len(f) ? &f->e[f->head & (f->cap - 1)] : NULL;
}

bool nvme_fifo_pop(struct nvme_fifo *f, struct nvme_wait *out)
{
    if (!nvme_fifo_len(f))
        return false;
    *out = f->e[f->head++ & (f->cap - 1)];
    return true;
}
