/* libmoat: the Nic protocol over a session (contract in moat/libmoat.h,
 * wire format in moat/session_abi.h). Every completion the domain writes is
 * checked before anything is done with it: its tag must name an
 * outstanding request (a received frame not yet taken by moat_nic_recv
 * no longer is, though its slot stays in use), its status must be one
 * that request can end with, and its length must fit (a TX echoes its length, an RX frame is
 * 14..max_frame, an INFO answer is exactly a moat_nic_status). */
#include <stdlib.h>
#include <string.h>
#include "libmoat_internal.h"

int moat__nic_init(struct moat_session *s)
{
    struct moat_nic_state *n = &s->nic;
    n->rx_target = s->layout.entries / 2;
    n->ready = calloc(s->layout.entries, sizeof *n->ready);
    return n->ready ? 0 : -MOAT_ENOMEM;
}

void moat__nic_free(struct moat_session *s)
{
    free(s->nic.ready);
    s->nic.ready = NULL;
}

int moat_nic_info(const struct moat_cap *cap, struct moat_nic_info *out)
{
    if (cap->desc.kind != MOAT_CAP_NIC)
        return -MOAT_EINVAL;
    *out = cap->desc.nic;
    return 0;
}

uint32_t moat_nic_tx_inflight(const struct moat_session *s) { return s->nic.tx_inflight; }

static uint8_t *slot_buf(struct moat_session *s, uint32_t idx)
{
    return s->mem + s->layout.data_off + (uint64_t)idx * s->slot_bytes;
}

/* ---- requests ----------------------------------------------------------------------- */

/* Claim a slot and write its request at position i past the producer. */
static uint32_t put(struct moat_session *s, uint32_t i, uint16_t op, uint32_t len)
{
    uint32_t idx = s->free_idx[--s->n_free];
    struct moat_slot *sl = &s->slot[idx];
    sl->busy = true;
    sl->arrived = false;
    sl->op = op;
    sl->blocks = len;
    sl->gen = sl->gen + 1 ? sl->gen + 1 : 1;
    struct moat_nic_sqe e = { .tag = (uint64_t)sl->gen << 32 | idx, .op = op, .len = len,
                              .buf_off = (uint64_t)idx * s->slot_bytes };
    memcpy(moat_ring_slot(&s->sq, i), &e, sizeof e);
    return idx;
}

/* Room in the request ring, or -MOAT_E* (the session failed). */
static int64_t sq_space(struct moat_session *s)
{
    uint32_t space;
    if (moat_ring_space(&s->sq, &space) != MOAT_RING_OK) {
        moat__malformed(s, "request ring: the domain's consumer index is impossible");
        return s->err;
    }
    return space;
}

/* Keep rx_target receive buffers posted (needs READ). */
static int refill_rx(struct moat_session *s)
{
    struct moat_nic_state *n = &s->nic;
    if (!(s->rights & MOAT_RIGHT_READ) || s->err)
        return s->err;
    int64_t space = sq_space(s);
    if (space < 0)
        return (int)space;
    uint32_t q = 0;
    while (n->rx_posted + n->ready_n < n->rx_target && q < space && s->n_free) {
        put(s, q++, MOAT_NIC_RX, (uint32_t)s->slot_bytes);
        n->rx_posted++;
    }
    return moat__publish(s, q);
}

/* ---- completions -------------------------------------------------------------------- */

/* Take every completion the domain published. */
static int reap(struct moat_session *s)
{
    struct moat_nic_state *n = &s->nic;
    if (s->err)
        return s->err;
    uint32_t avail;
    if (moat_ring_avail(&s->cq, &avail) != MOAT_RING_OK) {
        moat__malformed(s, "completion ring: the domain's producer index is impossible");
        return s->err;
    }
    uint32_t used = 0;
    for (; used < avail; used++) {
        struct moat_nic_cqe e;
        memcpy(&e, moat_ring_peek(&s->cq, used), sizeof e);    /* one copy, then check */
        uint32_t idx = (uint32_t)e.tag, gen = (uint32_t)(e.tag >> 32);
        struct moat_slot *sl = idx < s->layout.entries ? &s->slot[idx] : NULL;
        /* A received frame not yet taken is no longer outstanding: a
         * second completion for it would queue its slot twice. */
        if (!sl || !sl->busy || sl->arrived || sl->gen != gen) {
            moat__malformed(s, "Nic completion for tag 0x%llx, which is not outstanding",
                            (unsigned long long)e.tag);
            return s->err;
        }
        bool ok = e.status == MOAT_ST_OK;
        bool canceled = e.status == MOAT_ST_CANCELED;
        const char *bad = NULL;
        if (e.status > MOAT_ST_MAX || (canceled && sl->op == MOAT_NIC_INFO))
            bad = "a status this request cannot end with";
        else if (!ok && e.len)
            bad = "a length on a failed request";
        else if (ok && sl->op == MOAT_NIC_TX && e.len != sl->blocks)
            bad = "a sent length other than the frame's";
        else if (ok && sl->op == MOAT_NIC_RX &&
                 (e.len < MOAT_NIC_ETH_HDR || e.len > n->info.max_frame))
            bad = "a received frame length outside 14..max_frame";
        else if (ok && sl->op == MOAT_NIC_INFO && e.len != sizeof(struct moat_nic_status))
            bad = "a status answer of the wrong size";
        if (bad) {
            moat__malformed(s, "Nic completion (op %u, status %u, len %u) with %s", sl->op,
                            e.status, e.len, bad);
            return s->err;
        }
        s->st.completed++;
        bool keep = false;
        if (sl->op == MOAT_NIC_TX) {
            n->tx_inflight--;   /* sent, or canceled by a closing session */
        } else if (sl->op == MOAT_NIC_RX) {
            n->rx_posted--;
            if (ok) {               /* the frame waits in its slot for moat_nic_recv */
                n->ready[(n->ready_head + n->ready_n) % s->layout.entries] =
                    (struct moat_nic_rx){ .idx = idx, .len = e.len };
                n->ready_n++;
                sl->arrived = true;
                keep = true;
            }
        } else if (ok) {
            memcpy(&n->status, slot_buf(s, idx), sizeof n->status);
            n->info_done = true;
        } else {
            n->info_done = true;
            n->status.reserved = e.status;  /* remembered for moat_nic_status */
        }
        if (!keep) {
            sl->busy = false;
            s->free_idx[s->n_free++] = idx;
        }
    }
    if (used) {
        bool need_kick = false;
        if (moat_ring_consume(&s->cq, used, &need_kick) == MOAT_RING_OK && need_kick)
            moat__kick(s);
    }
    return 0;
}

/* ---- the calls ---------------------------------------------------------------------- */

static int send_once(struct moat_session *s, const struct moat_frame *frames, size_t n)
{
    struct moat_nic_state *ns = &s->nic;
    if (s->kind != MOAT_CAP_NIC)
        return -MOAT_EINVAL;
    if (!(s->rights & MOAT_RIGHT_WRITE))
        return -MOAT_EPERM;
    for (size_t i = 0; i < n; i++)
        if (!frames[i].data || frames[i].len < MOAT_NIC_ETH_HDR || frames[i].len > ns->info.max_frame)
            return -MOAT_EINVAL;
    int rc = reap(s);
    if (rc < 0)
        return rc;
    int64_t space = sq_space(s);
    if (space < 0)
        return (int)space;
    /* The send half: the slots not reserved for receive buffers. */
    uint32_t tx_max = s->layout.entries - ns->rx_target;
    size_t q = 0;
    while (q < n && q < (size_t)space && s->n_free && ns->tx_inflight < tx_max) {
        uint32_t idx = put(s, (uint32_t)q, MOAT_NIC_TX, frames[q].len);
        memcpy(slot_buf(s, idx), frames[q].data, frames[q].len);
        ns->tx_inflight++;
        q++;
    }
    rc = moat__publish(s, (uint32_t)q);
    /* Is the domain still there? (At most one look a millisecond: a
     * sender that never waits must still learn of a restart, or its
     * frames go to a dead ring until it fills.) */
    moat__idle_check(s);
    if (rc == 0 && s->recovering)
        return -MOAT_ESTALE;    /* NIC_CALL moves on and sends again */
    return rc < 0 ? rc : (int)q;
}

/* fd >= 0: also return 0 as soon as it is readable. */
static int recv_once(struct moat_session *s, int fd, struct moat_frame *frames, size_t max,
                     int timeout_ms)
{
    struct moat_nic_state *ns = &s->nic;
    if (s->kind != MOAT_CAP_NIC)
        return -MOAT_EINVAL;
    if (!(s->rights & MOAT_RIGHT_READ))
        return -MOAT_EPERM;
    uint64_t deadline = timeout_ms < 0 ? UINT64_MAX
                                       : moat__now_ns() + (uint64_t)timeout_ms * 1000000ull;
    for (;;) {
        int rc = reap(s);
        if (rc == 0)
            rc = refill_rx(s);
        if (rc < 0)
            return rc;
        if (max == 0)
            moat__idle_check(s);    /* a zero-size receive looks too */
        if (ns->ready_n || max == 0)
            break;
        if (timeout_ms == 0) {
            moat__idle_check(s);
            return s->recovering ? -MOAT_ESTALE : 0;
        }
        rc = fd < 0 ? moat__session_block(s, deadline) : moat__session_block_fd(s, fd, deadline);
        if (rc < 0)
            return rc;
        if (rc == 1)
            return 0;               /* fd is readable */
    }
    size_t got = 0;
    for (; got < max && ns->ready_n; got++) {
        struct moat_nic_rx r = ns->ready[ns->ready_head];
        ns->ready_head = (ns->ready_head + 1) % s->layout.entries;
        ns->ready_n--;
        uint32_t copy = r.len < frames[got].len ? r.len : frames[got].len;
        memcpy(frames[got].data, slot_buf(s, r.idx), copy);
        frames[got].len = r.len;
        s->slot[r.idx].busy = false;
        s->slot[r.idx].arrived = false;
        s->free_idx[s->n_free++] = r.idx;
    }
    int rc = refill_rx(s);
    return rc < 0 ? rc : (int)got;
}

static int status_once(struct moat_session *s, struct moat_nic_status *out)
{
    struct moat_nic_state *ns = &s->nic;
    if (s->kind != MOAT_CAP_NIC)
        return -MOAT_EINVAL;
    if (!(s->rights & MOAT_RIGHT_READ))
        return -MOAT_EPERM;
    int rc = reap(s);
    if (rc < 0)
        return rc;
    int64_t space = sq_space(s);
    if (space < 0)
        return (int)space;
    if (!space || !s->n_free)
        return -MOAT_EBUSY;
    ns->info_done = false;
    ns->status.reserved = 0;
    put(s, 0, MOAT_NIC_INFO, (uint32_t)sizeof *out);
    if ((rc = moat__publish(s, 1)) < 0)
        return rc;
    while (!ns->info_done) {
        if ((rc = moat__session_block(s, UINT64_MAX)) < 0 || (rc = reap(s)) < 0)
            return rc;
    }
    if (ns->status.reserved) {
        uint32_t st = ns->status.reserved;
        ns->status.reserved = 0;
        return st == MOAT_ST_EPERM ? -MOAT_EPERM : -MOAT_EINVAL;
    }
    *out = ns->status;
    return 0;
}

/* ---- the calls, following the domain across restarts ---------------------------------- */

/* A call that found its session revoked (ESTALE) moves to the domain's new
 * incarnation and runs again; what was in flight is dropped and counted. */
#define NIC_CALL(s, expr)                                                     \
    do {                                                                      \
        for (int tries_ = 0;; tries_++) {                                     \
            int rc_ = moat__session_ready(s);   /* frames in flight: dropped */                                         \
            if (rc_ < 0)                                                      \
                return rc_;                                                   \
            rc_ = (expr);                                                     \
            if (rc_ != -MOAT_ESTALE || !(s)->recovering || tries_ == 3)       \
                return rc_;                                                   \
        }                                                                     \
    } while (0)

int moat_nic_send(struct moat_session *s, const struct moat_frame *frames, size_t n)
{
    NIC_CALL(s, send_once(s, frames, n));
}

int moat_nic_recv(struct moat_session *s, struct moat_frame *frames, size_t max, int timeout_ms)
{
    NIC_CALL(s, recv_once(s, -1, frames, max, timeout_ms));
}

int moat_nic_recv_fd(struct moat_session *s, int fd, struct moat_frame *frames, size_t max,
                     int timeout_ms)
{
    if (fd < 0)
        return -MOAT_EINVAL;
    NIC_CALL(s, recv_once(s, fd, frames, max, timeout_ms));
}

int moat_nic_status(struct moat_session *s, struct moat_nic_status *out)
{
    NIC_CALL(s, status_once(s, out));
}
