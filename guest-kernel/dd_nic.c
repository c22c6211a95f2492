/* Driver API: serving a Nic cap (contract in dd.h, protocol in
 * moat/session_abi.h). Ring 3, on the run loop of dd_serve.c.
 *
 * Requests are validated before anything is done with them. TX frames go
 * to the driver straight from session memory (it copies them into device
 * memory) and complete at once; when the driver has no room they wait, in
 * order, in a per-session queue until dd_nic_tx_ready, while the ring
 * keeps being read (so receive buffers posted behind them still count).
 * RX buffers are kept in a FIFO per session and filled in posting order by
 * dd_nic_rx; a session with none posted loses the frame (counted). INFO
 * answers at once. */
#include "dd.h"
#include "dd_session.h"
#include "gk/mem.h"

struct dd_nic {
    uint32_t cap;               /* index in serve_caps */
    struct moat_nic_info info;
    const struct dd_nic_ops *ops;
    void *ctx;
    bool link_up;
    bool tx_taken;              /* frames handed to the driver this pass */
    struct dd_nic_stats st;
};

static struct dd_nic the_nic;
static bool nic_registered;

static struct dd_nic *nic_of(const struct gsession *s) { return serve_caps[s->cap].nic; }

/* ---- sessions --------------------------------------------------------------------- */

void nic_session_open(struct gsession *s)
{
    struct nic_session *n = &s->nic;
    struct nic_post *post = n->post, *txq = n->txq;
    *n = (struct nic_session){ .post = post, .txq = txq };
    /* Once per slot, sized for the largest ring: slots are reused. */
    size_t pages = (MOAT_SESSION_ENTRIES_MAX * sizeof *n->post + 4095) / 4096;
    if (!n->post)
        n->post = mem_alloc_pages(pages);
    if (!n->txq)
        n->txq = mem_alloc_pages(pages);
}

void nic_cancel_posts(struct gsession *s)
{
    struct nic_session *n = &s->nic;
    for (; n->post_n; n->post_n--) {
        serve_stage(s, n->post[n->post_head].tag, MOAT_ST_CANCELED, 0);
        n->post_head = (n->post_head + 1) % s->entries;
    }
}

void nic_session_closing(struct gsession *s)
{
    struct nic_session *n = &s->nic;
    nic_cancel_posts(s);
    for (; n->txq_n; n->txq_n--) {     /* never sent: the client learns so */
        serve_stage(s, n->txq[n->txq_head].tag, MOAT_ST_CANCELED, 0);
        n->txq_head = (n->txq_head + 1) % s->entries;
    }
}

/* Offer one frame to the driver; true when it took it (completed). */
static bool send_frame(struct gsession *s, struct dd_nic *nic, uint64_t tag, uint64_t off,
                       uint32_t len)
{
    if (!nic->ops->tx(nic->ctx, s->data + off, len)) {
        nic->st.tx_busy++;
        s->nic.tx_blocked = true;
        return false;
    }
    nic->tx_taken = true;
    nic->st.tx_frames++;
    s->nic.st.tx_frames++;
    s->nic.st.tx_bytes += len;
    serve_stage(s, tag, MOAT_ST_OK, len);
    return true;
}

/* Send what waits in the session's queue, in order, while the driver
 * takes it. True when something was sent. */
static bool drain_txq(struct gsession *s, struct dd_nic *nic)
{
    struct nic_session *n = &s->nic;
    bool sent = false;
    while (n->txq_n && !n->tx_blocked) {
        const struct nic_post *p = &n->txq[n->txq_head];
        if (!send_frame(s, nic, p->tag, p->off, p->len))
            break;
        n->txq_head = (n->txq_head + 1) % s->entries;
        n->txq_n--;
        sent = true;
    }
    return sent;
}

/* ---- requests --------------------------------------------------------------------- */

/* MOAT_ST_OK, or the status a malformed request is answered with. */
static uint32_t check(const struct gsession *s, const struct dd_nic *nic,
                      const struct moat_nic_sqe *e)
{
    if (e->flags || e->reserved0)
        return MOAT_ST_EINVAL;
    uint32_t need;
    switch (e->op) {
    case MOAT_NIC_TX:
        if (!(s->rights & MOAT_RIGHT_WRITE))
            return MOAT_ST_EPERM;
        if (e->len < MOAT_NIC_ETH_HDR || e->len > nic->info.max_frame)
            return MOAT_ST_EINVAL;
        need = e->len;
        break;
    case MOAT_NIC_RX:
        if (!(s->rights & MOAT_RIGHT_READ))
            return MOAT_ST_EPERM;
        if (e->len < nic->info.max_frame)
            return MOAT_ST_EINVAL;
        need = nic->info.max_frame;     /* only this much is ever written */
        break;
    case MOAT_NIC_INFO:
        if (!(s->rights & MOAT_RIGHT_READ))
            return MOAT_ST_EPERM;
        if (e->len < sizeof(struct moat_nic_status))
            return MOAT_ST_EINVAL;
        need = sizeof(struct moat_nic_status);
        break;
    default:
        return MOAT_ST_EINVAL;
    }
    if (e->buf_off > s->data_size || need > s->data_size - e->buf_off)
        return MOAT_ST_EINVAL;
    return MOAT_ST_OK;
}

static void answer_info(struct gsession *s, const struct dd_nic *nic, uint64_t tag, uint64_t off)
{
    struct moat_nic_status *st = &s->nic.st;
    memcpy(st->mac, nic->info.mac, sizeof st->mac);
    st->link_up = nic->link_up ? 1u : 0u;
    st->mtu = nic->info.mtu;
    memcpy(s->data + off, st, sizeof *st);
    serve_stage(s, tag, MOAT_ST_OK, (uint32_t)sizeof *st);
}

bool nic_take_requests(struct gsession *s)
{
    struct dd_nic *nic = nic_of(s);
    struct nic_session *ns = &s->nic;
    bool work = drain_txq(s, nic);
    uint32_t avail, space;
    if (!serve_ring_room(s, &avail, &space))
        return true;
    uint32_t n = 0;
    for (; n < avail && s->owed < space; n++) {
        struct moat_nic_sqe e;
        memcpy(&e, moat_ring_peek(&s->sq, n), sizeof e);   /* one copy, then check */
        uint32_t bad = check(s, nic, &e);
        serve_count_request(bad != MOAT_ST_OK);
        s->owed++;
        if (bad != MOAT_ST_OK)
            serve_stage(s, e.tag, bad, 0);
        else if (e.op == MOAT_NIC_TX) {
            /* In order: behind what already waits, else straight to the driver. */
            if (ns->txq_n || !send_frame(s, nic, e.tag, e.buf_off, e.len)) {
                uint32_t at = (ns->txq_head + ns->txq_n) % s->entries;
                ns->txq[at] = (struct nic_post){ .tag = e.tag, .off = e.buf_off, .len = e.len };
                ns->txq_n++;
            }
        } else if (e.op == MOAT_NIC_INFO)
            answer_info(s, nic, e.tag, e.buf_off);
        else {
            /* RX: at most `entries` can be owed, so the FIFO cannot overflow. */
            uint32_t at = (ns->post_head + ns->post_n) % s->entries;
            ns->post[at] = (struct nic_post){ .tag = e.tag, .off = e.buf_off };
            ns->post_n++;
        }
    }
    serve_consume(s, n);
    return work || n != 0;
}

void nic_pass_end(void)
{
    struct dd_nic *nic = &the_nic;
    if (nic_registered && nic->tx_taken) {
        nic->tx_taken = false;
        if (nic->ops->tx_flush)
            nic->ops->tx_flush(nic->ctx);
    }
}

/* ---- the driver's side ------------------------------------------------------------ */

struct dd_nic *dd_nic_serve(const char *name, const struct moat_nic_info *info,
                            const struct dd_nic_ops *ops, void *ctx)
{
    if (nic_registered)
        dd_panic("dd_nic_serve: one Nic per domain");
    if (!ops || !ops->tx)
        dd_panic("dd_nic_serve: a Nic needs a tx function");
    struct dd_nic *nic = &the_nic;
    *nic = (struct dd_nic){ .info = *info, .ops = ops, .ctx = ctx, .link_up = true };
    struct moat_cap_register reg = { .kind = MOAT_CAP_NIC, .nic = *info };
    struct served_cap c = { .kind = MOAT_CAP_NIC, .nic = nic };
    int idx = serve_register_named(&reg, name, &c);
    if (idx < 0)
        return NULL;
    nic->cap = (uint32_t)idx;
    nic_registered = true;
    return nic;
}

void dd_nic_rx(struct dd_nic *nic, const void *frame, uint32_t len)
{
    if (len < MOAT_NIC_ETH_HDR || len > nic->info.max_frame) {
        nic->st.rx_bad++;
        return;
    }
    nic->st.rx_frames++;
    for (uint32_t i = 0; i < MOAT_SESSION_SLOTS; i++) {
        struct gsession *s = serve_session(i);
        if (!serve_live(s, nic->cap) || !(s->rights & MOAT_RIGHT_READ))
            continue;
        struct nic_session *ns = &s->nic;
        if (!ns->post_n) {
            ns->st.rx_dropped++;
            nic->st.rx_dropped++;
            continue;
        }
        struct nic_post p = ns->post[ns->post_head];
        ns->post_head = (ns->post_head + 1) % s->entries;
        ns->post_n--;
        memcpy(s->data + p.off, frame, len);
        serve_stage(s, p.tag, MOAT_ST_OK, len);
        ns->st.rx_frames++;
        ns->st.rx_bytes += len;
        nic->st.rx_delivered++;
    }
}

void dd_nic_tx_ready(struct dd_nic *nic)
{
    for (uint32_t i = 0; i < MOAT_SESSION_SLOTS; i++) {
        struct gsession *s = serve_session(i);
        if (s->active && s->cap == nic->cap)
            s->nic.tx_blocked = false;
    }
}

void dd_nic_link(struct dd_nic *nic, bool up) { nic->link_up = up; }

void dd_nic_stats(const struct dd_nic *nic, struct dd_nic_stats *out) { *out = nic->st; }
