/* Driver API: serving caps over client sessions (contract in dd.h). Ring 3.
 *
 * moat writes the session table (moat/session_abi.h) and interrupts us on
 * the session vector; every run-loop pass checks the table's change count,
 * then each open session: requests are copied out of the ring, validated
 * (a client is as hostile as any domain), handed to the driver, and their
 * completions published in batches with one doorbell when the client asked
 * for one. After a short busy window the loop arms every request ring and
 * sleeps until a client kick arrives. */
#include "dd.h"
#include "dd_session.h"
#include "gk/event.h"
#include "gk/mem.h"
#include "gk/runtime.h"
#include "gk/sys.h"
#include "gk/timer.h"
#include "moat/control_abi.h"
#include "moat/layout.h"
#include "moat/ring.h"

#define REQ_POOL 1024u

struct req_impl {
    struct dd_blk_req pub;      /* first: the driver's pointer is ours */
    struct gsession *s;
    uint64_t tag;
    uint32_t next_free;
    bool busy;
};

struct served_cap serve_caps[SERVE_CAPS_MAX];
static uint32_t n_caps, vector;
static struct gsession ses[MOAT_SESSION_SLOTS];
static struct req_impl pool[REQ_POOL];
static uint32_t free_head = REQ_POOL, pool_ready;
static uint64_t table_seen;
static bool draining;           /* orderly stop: take nothing new */
static struct dd_serve_stats st;

void dd_serve_stats(struct dd_serve_stats *out) { *out = st; }

/* ---- request pool --------------------------------------------------------------- */

static struct req_impl *req_get(void)
{
    if (!pool_ready) {
        for (uint32_t i = 0; i < REQ_POOL; i++)
            pool[i].next_free = i + 1;
        free_head = 0;
        pool_ready = 1;
    }
    if (free_head == REQ_POOL)
        return NULL;
    struct req_impl *r = &pool[free_head];
    free_head = r->next_free;
    r->busy = true;
    return r;
}

static void req_put(struct req_impl *r)
{
    r->busy = false;
    r->next_free = free_head;
    free_head = (uint32_t)(r - pool);
}

static struct req_impl *impl_of(struct dd_blk_req *req)
{
    struct req_impl *r = (struct req_impl *)req;
    if (r < pool || r >= pool + REQ_POOL || !r->busy)
        dd_panic("dd_blk_complete: %p is not a request in flight", (void *)req);
    return r;
}

/* ---- completions ------------------------------------------------------------------ */

static void ring_doorbell(struct gsession *s)
{
    *s->doorbell = 1;           /* an ioeventfd in KVM: the client wakes */
    st.doorbells++;
}

void serve_stage(struct gsession *s, uint64_t tag, uint32_t status, uint32_t blocks)
{
    struct moat_cqe e = { .tag = tag, .status = status, .blocks = blocks };
    void *slot = moat_ring_slot(&s->cq, s->staged);
    memcpy(slot, &e, sizeof e);
    s->staged++;
}

static void flush_completions(struct gsession *s)
{
    if (!s->staged)
        return;
    if (s->broken) {            /* a ring nobody can trust: what is owed is dropped */
        s->owed -= s->staged < s->owed ? s->staged : s->owed;
        s->staged = 0;
        return;
    }
    bool kick = false;
    if (moat_ring_publish(&s->cq, s->staged, &kick) != MOAT_RING_OK && !s->broken) {
        s->broken = true;
        st.client_violations++;
        dd_log("session %u: the client corrupted its completion ring; abandoned", s->id);
    }
    s->owed -= s->staged < s->owed ? s->staged : s->owed;
    s->staged = 0;
    if (kick)
        ring_doorbell(s);
}

void dd_blk_complete(struct dd_blk_req *req, uint32_t status)
{
    struct req_impl *r = impl_of(req);
    serve_stage(r->s, r->tag, status, status == MOAT_ST_OK && req->op != MOAT_BLK_FLUSH ? req->blocks : 0);
    st.completed++;
    req_put(r);
}

void dd_blk_complete_raw(struct dd_blk_req *req, uint64_t tag, uint32_t status, uint32_t blocks)
{
    struct req_impl *r = impl_of(req);
    r->s->owed++;               /* one more entry than requests: keep the books */
    serve_stage(r->s, tag, status, blocks);
}

void dd_blk_corrupt_cq(struct dd_blk_req *req, uint32_t bogus_prod)
{
    struct req_impl *r = impl_of(req);
    __atomic_store_n(&r->s->cq.sh->prod, bogus_prod, __ATOMIC_RELEASE);
    ring_doorbell(r->s);
}

uint64_t dd_blk_tag(const struct dd_blk_req *req)
{
    return ((const struct req_impl *)req)->tag;
}

/* ---- requests -------------------------------------------------------------------- */

/* MOAT_ST_OK, or the status a malformed request is answered with. */
static uint32_t check(const struct gsession *s, const struct moat_sqe *e)
{
    const struct moat_blk_geometry *g = &serve_caps[s->cap].geo;
    bool data = e->op == MOAT_BLK_READ || e->op == MOAT_BLK_WRITE;
    if (e->flags)
        return MOAT_ST_EINVAL;
    switch (e->op) {
    case MOAT_BLK_READ:
    case MOAT_BLK_WRITE:
        if (e->blocks == 0 || e->blocks > g->max_blocks)
            return MOAT_ST_EINVAL;
        break;
    case MOAT_BLK_FLUSH:
        if (!(g->flags & MOAT_BLK_F_FLUSH))
            return MOAT_ST_ENOTSUP;
        if (e->blocks)
            return MOAT_ST_EINVAL;
        break;
    case MOAT_BLK_WRITE_ZEROES:
    case MOAT_BLK_DISCARD:
        if (!(g->flags & (e->op == MOAT_BLK_DISCARD ? MOAT_BLK_F_DISCARD : MOAT_BLK_F_WRITE_ZEROES)))
            return MOAT_ST_ENOTSUP;
        if (e->blocks == 0)
            return MOAT_ST_EINVAL;
        break;
    default:
        return MOAT_ST_EINVAL;
    }
    if (e->op != MOAT_BLK_READ && !(s->rights & MOAT_RIGHT_WRITE))
        return MOAT_ST_EPERM;
    if (e->op != MOAT_BLK_READ && (g->flags & MOAT_BLK_F_READONLY))
        return MOAT_ST_EROFS;
    if (e->op != MOAT_BLK_FLUSH && (e->lba > g->blocks || e->blocks > g->blocks - e->lba))
        return MOAT_ST_ERANGE;
    uint64_t len = (uint64_t)e->blocks * g->block_size;
    if (data && (e->buf_off > s->data_size || len > s->data_size - e->buf_off))
        return MOAT_ST_EINVAL;
    return MOAT_ST_OK;
}

void serve_count_request(bool refused)
{
    st.requests++;
    st.refused += refused;
}

bool serve_ring_room(struct gsession *s, uint32_t *avail, uint32_t *space)
{
    if (moat_ring_avail(&s->sq, avail) != MOAT_RING_OK) {
        serve_abandon(s, "the client wrote an impossible request-ring index");
        return false;
    }
    if (moat_ring_space(&s->cq, space) != MOAT_RING_OK) {
        serve_abandon(s, "the client wrote an impossible completion-ring index");
        return false;
    }
    if (draining && *avail > s->drain_left)
        *avail = s->drain_left;
    return true;
}

void serve_consume(struct gsession *s, uint32_t n)
{
    if (!n)
        return;
    bool kick = false;
    moat_ring_consume(&s->sq, n, &kick);
    if (kick)
        ring_doorbell(s);
    if (draining)
        s->drain_left -= n;
}

void serve_abandon(struct gsession *s, const char *why)
{
    if (s->broken)
        return;
    s->broken = true;
    st.client_violations++;
    dd_log("session %u: %s; abandoned until moat closes it", s->id, why);
}

/* Take what the client queued, as far as completions can be owed. */
static bool blk_take_requests(struct gsession *s)
{
    uint32_t avail, space;
    if (!serve_ring_room(s, &avail, &space))
        return true;
    const struct served_cap *c = &serve_caps[s->cap];
    uint32_t n = 0;
    for (; n < avail && s->owed < space; n++) {
        struct req_impl *r = req_get();
        if (!r)
            break;              /* back-pressure: the rest waits in the ring */
        struct moat_sqe e;
        memcpy(&e, moat_ring_peek(&s->sq, n), sizeof e);   /* one copy, then check */
        s->owed++;
        st.requests++;
        r->s = s;
        r->tag = e.tag;
        uint32_t bad = check(s, &e);
        if (bad != MOAT_ST_OK) {
            st.refused++;
            serve_stage(s, e.tag, bad, 0);
            req_put(r);
            continue;
        }
        bool data = e.op == MOAT_BLK_READ || e.op == MOAT_BLK_WRITE;
        r->pub = (struct dd_blk_req){ .op = e.op, .blocks = e.op == MOAT_BLK_FLUSH ? 0 : e.blocks,
                                      .lba = e.lba, .buf = data ? s->data + e.buf_off : NULL,
                                      .buf_iova = data && s->data_iova ? s->data_iova + e.buf_off
                                                                       : 0 };
        c->ops->submit(c->ctx, &r->pub);
    }
    serve_consume(s, n);
    return n != 0;
}

/* ---- the session table ------------------------------------------------------------- */

static const volatile struct moat_session_table *table(void)
{
    return (const volatile struct moat_session_table *)gk_gpa_ptr(MOAT_GPA_SESSION_TABLE);
}

static void read_slot(uint32_t i, struct moat_session_slot *out)
{
    const volatile struct moat_session_slot *e = &table()->slot[i];
    for (;;) {
        uint32_t a = __atomic_load_n(&e->seq, __ATOMIC_ACQUIRE);
        if (a & 1)
            continue;
        memcpy(out, (const void *)e, sizeof *out);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&e->seq, __ATOMIC_ACQUIRE) == a)
            return;
    }
}

static bool pow2(uint64_t v) { return v && !(v & (v - 1)); }

static void attach(uint32_t i, const struct moat_session_slot *v)
{
    struct gsession *s = &ses[i];
    uint64_t base = MOAT_GPA_SESSION_BASE + (uint64_t)i * MOAT_SESSION_SPAN;
    uint8_t *m = gk_gpa_ptr(base);
    bool ok = v->gpa == base && v->size <= MOAT_SESSION_SPAN && v->cap_index < n_caps &&
              v->sq_entries == v->cq_entries && pow2(v->sq_entries) &&
              v->sq_entries <= MOAT_SESSION_ENTRIES_MAX && v->sq_off < v->cq_off &&
              v->cq_off < v->data_off && v->data_off <= v->size &&
              v->data_size <= v->size - v->data_off &&
              v->doorbell_gpa == MOAT_GPA_SESSION_DOORBELL + 4ull * i;
    /* A Nic session's FIFOs are allocated once per slot (nic_session_open):
     * keep them, or every session opened on a reused slot leaks pages
     * until the domain runs out of memory. */
    struct nic_session nic_keep = { .post = s->nic.post, .txq = s->nic.txq };
    *s = (struct gsession){ .slot = i, .id = v->session_id, .nic = nic_keep };
    ok = ok && moat_ring_attach(&s->sq, m + v->sq_off, v->cq_off - v->sq_off, v->sq_entries,
                                sizeof(struct moat_sqe), MOAT_RING_CONSUMER) == MOAT_RING_OK &&
         moat_ring_attach(&s->cq, m + v->cq_off, v->data_off - v->cq_off, v->cq_entries,
                          sizeof(struct moat_cqe), MOAT_RING_PRODUCER) == MOAT_RING_OK;
    if (!ok) {
        dd_log("session %u in slot %u has a layout this domain cannot use (cap %u of %u, "
               "%u entries, offsets 0x%lx/0x%lx/0x%lx, size 0x%lx); ignored", v->session_id, i,
               v->cap_index, n_caps, v->sq_entries, v->sq_off, v->cq_off, v->data_off, v->size);
        return;
    }
    s->active = true;
    s->cap = v->cap_index;
    s->rights = v->rights;
    s->entries = v->sq_entries;
    s->data = m + v->data_off;
    s->data_size = v->data_size;
    s->data_iova = (v->flags & MOAT_SLOT_DATA_DMA) ? v->gpa + v->data_off : 0;
    s->doorbell = (volatile uint32_t *)gk_gpa_ptr(v->doorbell_gpa);
    st.sessions_opened++;
    if (serve_caps[s->cap].kind == MOAT_CAP_NIC)
        nic_session_open(s);
    dd_log("session %u open (slot %u, %u entries, %lu KiB data%s, %s)", s->id, i, s->entries,
           s->data_size >> 10, s->data_iova ? " DMA-reachable" : "",
           (s->rights & MOAT_RIGHT_WRITE) ? "read-write" : "read-only");
}

/* A session closed before this domain served it (opened and closed
 * between two looks at the table, or refused at attach): nothing is owed,
 * give the slot back at once, or moat waits for its release forever and
 * the slot is lost. */
static void release_unserved(uint32_t i, uint32_t id)
{
    static uint64_t tried[MOAT_SESSION_SLOTS];  /* once per session: no retry loop */
    if (tried[i] == (1ull << 32 | id))
        return;
    tried[i] = 1ull << 32 | id;
    int64_t rc = sys_session_release(i);
    dd_log("session %u closed before it was served; slot %u %s", id, i,
           rc < 0 ? "not released" : "released");
}

static void scan_table(void)
{
    for (uint32_t i = 0; i < MOAT_SESSION_SLOTS; i++) {
        struct moat_session_slot v;
        read_slot(i, &v);
        struct gsession *s = &ses[i];
        bool same = s->active && s->id == v.session_id;
        if (v.state == MOAT_SLOT_OPEN && !same)
            attach(i, &v);
        else if (v.state == MOAT_SLOT_CLOSING && same && !s->closing) {
            s->closing = true;
            if (serve_caps[s->cap].kind == MOAT_CAP_NIC)
                nic_session_closing(s);
        } else if (v.state == MOAT_SLOT_CLOSING && !s->active)
            release_unserved(i, v.session_id);
    }
}

static void release(struct gsession *s)
{
    int64_t rc = sys_session_release(s->slot);
    if (rc < 0)
        dd_log("session %u: moat refused the release of slot %u (%ld)", s->id, s->slot, rc);
    else
        dd_log("session %u released", s->id);
    s->active = false;
    st.sessions_released++;
}

static bool serve_poll(void *ctx)
{
    (void)ctx;
    bool work = false;
    uint64_t ch = __atomic_load_n(&table()->changes, __ATOMIC_ACQUIRE);
    if (ch != table_seen) {
        table_seen = ch;
        scan_table();
        work = true;
    }
    for (uint32_t i = 0; i < MOAT_SESSION_SLOTS; i++) {
        struct gsession *s = &ses[i];
        if (!s->active)
            continue;
        /* Completions the driver staged since the last pass (Nic frames
         * received) go out with this pass's. */
        work |= s->staged != 0;
        if (!s->closing && !s->broken)
            work |= serve_caps[s->cap].kind == MOAT_CAP_NIC ? nic_take_requests(s)
                                                            : blk_take_requests(s);
        flush_completions(s);
        if (s->closing && s->owed == 0) {
            release(s);
            work = true;
        }
    }
    nic_pass_end();
    return work;
}

void serve_drain_start(void)
{
    for (uint32_t i = 0; i < MOAT_SESSION_SLOTS; i++) {
        struct gsession *s = &ses[i];
        uint32_t space;
        if (!s->active || s->closing || s->broken)
            continue;
        if (!serve_ring_room(s, &s->drain_left, &space))
            s->drain_left = 0;
        if (serve_caps[s->cap].kind == MOAT_CAP_NIC)
            nic_cancel_posts(s);
    }
    draining = true;
}

unsigned serve_in_flight(void)
{
    unsigned n = 0;
    for (uint32_t i = 0; i < MOAT_SESSION_SLOTS; i++) {
        const struct gsession *s = &ses[i];
        if (!s->active || s->closing || s->broken)
            continue;
        n += s->drain_left + (serve_caps[s->cap].kind == MOAT_CAP_NIC ? s->nic.txq_n : s->owed);
    }
    return n;
}

/* The domain is going to sleep: ask every client for a kick at its next
 * request, then look once more. */
static bool serve_idle(void *ctx)
{
    (void)ctx;
    bool work = false;
    for (uint32_t i = 0; i < MOAT_SESSION_SLOTS; i++)
        if (ses[i].active && !ses[i].closing && !ses[i].broken && !draining &&
            !moat_ring_arm(&ses[i].sq))
            work = true;
    return work;
}

static void session_irq(void *ctx, uint32_t vec)
{
    (void)ctx;
    (void)vec;                  /* serve_poll looks at everything */
}

struct gsession *serve_session(uint32_t i) { return &ses[i]; }

int serve_register(const struct moat_cap_register *reg, const struct served_cap *c)
{
    if (n_caps == SERVE_CAPS_MAX)
        dd_panic("serving caps: at most %u per domain", SERVE_CAPS_MAX);
    if (!vector) {
        vector = gk_event_alloc(session_irq, NULL);
        if (!vector || !gk_poller_add(serve_poll, NULL) || !gk_idle_add(serve_idle, NULL))
            dd_panic("serving caps: no free vector or poller for sessions");
    }
    struct moat_cap_register r = *reg;
    r.vector = vector;
    int64_t rc = sys_cap_register(&r);
    if (rc < 0) {
        dd_log("moat refused cap '%.*s': %s", (int)sizeof r.name, r.name, moat_err_name((int)rc));
        return -1;
    }
    serve_caps[n_caps] = *c;
    return (int)n_caps++;
}

/* A cap name into the registration (truncated to fit, NUL-terminated). */
static void reg_name(struct moat_cap_register *reg, const char *name)
{
    size_t len = strlen(name);
    if (len >= sizeof reg->name)
        len = sizeof reg->name - 1;
    memcpy(reg->name, name, len);
}

bool dd_blk_serve(const char *name, const struct moat_blk_geometry *geo,
                  const struct dd_blk_ops *ops, void *ctx)
{
    if (!ops || !ops->submit)
        dd_panic("dd_blk_serve: a BlockDevice needs a submit function");
    struct moat_cap_register reg = { .kind = MOAT_CAP_BLOCK, .blk = *geo };
    reg_name(&reg, name);
    struct served_cap c = { .kind = MOAT_CAP_BLOCK, .geo = *geo, .ops = ops, .ctx = ctx };
    return serve_register(&reg, &c) >= 0;
}

int serve_register_named(struct moat_cap_register *reg, const char *name,
                         const struct served_cap *c)
{
    reg_name(reg, name);
    return serve_register(reg, c);
}

/* ---- injected fault: a corrupt session ring ------------------------------------ */

/* Move the first live session's completion producer index to where no
 * ring can have it (more than a ring ahead of the client), and walk away
 * from the session as a broken server would (no later completion puts the
 * index right again before the client looks): the client must refuse the
 * session, report it, and recover on a fresh one. */
bool dd_serve_corrupt_ring(void)
{
    for (uint32_t i = 0; i < MOAT_SESSION_SLOTS; i++) {
        struct gsession *s = &ses[i];
        if (!s->active || s->closing || s->broken)
            continue;
        __atomic_store_n(&s->cq.sh->prod, s->cq.idx + 2 * s->entries + 7, __ATOMIC_RELEASE);
        s->broken = true;
        ring_doorbell(s);       /* the client looks now */
        dd_log("fault: session %u's completion index corrupted", s->id);
        return true;
    }
    return false;
}
