/* A session client in a bare app domain (contract in session_client.h). */
#include "session_client.h"
#include "dd.h"
#include "gk/event.h"
#include "gk/console.h"
#include "gk/kstring.h"
#include "gk/runtime.h"
#include "gk/sys.h"
#include "gk/timer.h"
#include "gk/trap.h"

#define TAG_SLOT_BITS 8u

static uint32_t generation(const struct sclient *c)
{
    const struct bare_dom_events *ev = (const void *)(uintptr_t)BARE_DOM_VA_EVENTS;
    return __atomic_load_n(&ev->session_gen[c->info.session], __ATOMIC_ACQUIRE);
}

static void kick(const struct sclient *c) { sys_call3(SYS_SESSION_KICK, c->info.session, 0, 0); }

/* The rings of the generation the monitor announced last. */
static bool attach(struct sclient *c)
{
    c->gen = generation(c);
    const struct bare_session_info *i = &c->info;
    c->attached = moat_ring_attach(&c->sq, c->mem + i->sq_off, i->cq_off - i->sq_off, i->entries,
                                   sizeof(struct moat_sqe), MOAT_RING_PRODUCER) == MOAT_RING_OK &&
                  moat_ring_attach(&c->cq, c->mem + i->cq_off, i->data_off - i->cq_off, i->entries,
                                   sizeof(struct moat_cqe), MOAT_RING_CONSUMER) == MOAT_RING_OK;
    if (!c->attached)
        dd_log("session %u: the rings of generation %u do not attach; waiting for the next",
               i->session, c->gen);
    return c->attached;
}

/* Publish the requests not yet in the ring, oldest first. */
static bool publish_pending(struct sclient *c)
{
    bool any = false, kick_now = false;
    for (;;) {
        struct sc_req *r = NULL;
        for (unsigned s = 0; s < SC_INFLIGHT; s++)
            if (c->req[s].busy && !c->req[s].published && (!r || c->req[s].seq < r->seq))
                r = &c->req[s];
        uint32_t space;
        if (!r || moat_ring_space(&c->sq, &space) != MOAT_RING_OK || !space)
            break;
        memcpy(moat_ring_slot(&c->sq, 0), &r->e, sizeof r->e);
        bool k;
        if (moat_ring_publish(&c->sq, 1, &k) != MOAT_RING_OK)
            break;
        r->published = true;
        kick_now |= k;
        any = true;
    }
    if (kick_now)
        kick(c);
    return any;
}

/* Every request in flight fails with status (its server stays down, or
 * keeps breaking sessions). */
static void fail_all(struct sclient *c, uint32_t status)
{
    for (unsigned s = 0; s < SC_INFLIGHT; s++)
        if (c->req[s].busy) {
            c->req[s].busy = false;
            c->done(c->ctx, s, status, 0);
        }
}

/* After fresh rings (or a fresh session): requests in flight are
 * published again when submitted with `again`, the others dropped. */
static void requeue(struct sclient *c, const char *why)
{
    unsigned again = 0, dropped = 0;
    for (unsigned s = 0; s < SC_INFLIGHT; s++) {
        struct sc_req *r = &c->req[s];
        if (!r->busy)
            continue;
        r->published = false;
        if (r->again) {
            again++;
        } else {                /* a frame being sent: dropped, as a NIC reset drops it */
            r->busy = false;
            dropped++;
            c->done(c->ctx, s, MOAT_ST_CANCELED, 0);
        }
    }
    c->resubmitted += again;
    c->dropped += dropped;
    dd_log("session %u: %s: %u request%s in flight published again, %u dropped", c->info.session,
           why, again, again == 1 ? "" : "s", dropped);
}

static void fresh_rings(struct sclient *c)
{
    if (!attach(c))
        return;
    c->fresh_rings++;
    char why[48];
    ksnprintf(why, sizeof why, "fresh rings (generation %u)", c->gen);
    requeue(c, why);
}

/* One SYS_SESSION_OPEN; the session's index, or a negative -SYS_E*. */
static int64_t open_once(struct sclient *c, struct bare_session_info *info)
{
    return sys_call3(SYS_SESSION_OPEN, (uint64_t)(uintptr_t)c->cap, (uint64_t)(uintptr_t)info,
                     c->vector);
}

static uint8_t *session_mem(uint32_t k)
{
    return (uint8_t *)(uintptr_t)(BARE_DOM_VA_SESSIONS + (uint64_t)k * BARE_DOM_SESSION_SIZE);
}

/* The server broke the rings (an impossible index): the rings cannot be
 * trusted again, so take a fresh session on the same cap, carry the data
 * area over (the requests in flight point into it), close the broken one
 * (the server drains it) and publish again. Tried again at the next poll
 * while no session can be had. */
static void reopen(struct sclient *c)
{
    struct bare_session_info info;
    int64_t k = open_once(c, &info);
    if (k < 0)
        return;
    uint8_t *mem = session_mem((uint32_t)k);
    memcpy(mem + info.data_off, c->data, c->info.data_size < info.data_size ? c->info.data_size
                                                                            : info.data_size);
    sys_call3(SYS_SESSION_CLOSE, c->info.session, 0, 0);
    uint32_t old = c->info.session;
    c->info = info;
    c->mem = mem;
    c->data = mem + info.data_off;
    c->broken = false;
    c->reopened++;
    if (!attach(c))
        return;
    char why[48];
    ksnprintf(why, sizeof why, "opened in place of session %u", old);
    requeue(c, why);
    publish_pending(c);
}

static void broken(struct sclient *c, const char *what)
{
    c->attached = false;
    if (c->reopened >= SC_REOPENS_MAX) {
        /* A server that keeps breaking sessions: fail what is in flight. */
        dd_log("session %u: the server broke its %s ring again (%lu fresh sessions already): "
               "giving up on %s", c->info.session, what, c->reopened, c->cap);
        fail_all(c, MOAT_ST_EIO);
        return;
    }
    dd_log("session %u: the server broke its %s ring: opening a fresh session", c->info.session,
           what);
    c->broken = true;
    reopen(c);
}

/* One completion from the server: believed only when it answers a request
 * in flight, with a known status and no more blocks than asked. */
static void complete(struct sclient *c, const struct moat_cqe *e)
{
    unsigned s = (unsigned)(e->tag & ((1u << TAG_SLOT_BITS) - 1));
    struct sc_req *r = s < SC_INFLIGHT ? &c->req[s] : NULL;
    if (!r || !r->busy || r->e.tag != e->tag || !c->req[s].published || e->status > MOAT_ST_MAX ||
        e->blocks > r->e.blocks) {
        if (c->bad_completions++ == 0)
            dd_log("session %u: a completion for no request in flight (tag 0x%lx, status "
                   "%u): ignored, further ones only counted", c->info.session, e->tag, e->status);
        return;
    }
    r->busy = false;
    c->completed++;
    c->done(c->ctx, s, e->status, e->blocks);
}

static bool client_poll(void *ctx)
{
    struct sclient *c = ctx;
    bool work = false;
    uint32_t g = generation(c);
    if (g == BARE_SESSION_DOWN) {
        if (!c->down) {
            dd_log("session %u: its server stays down: what is in flight fails",
                   c->info.session);
            c->down = true;
            c->attached = false;
            fail_all(c, MOAT_ST_EIO);
        }
        return false;
    }
    if (g != c->gen || c->down) {      /* back from down: fresh rings whatever the number */
        c->down = false;
        fresh_rings(c);
        work = true;
    }
    if (c->broken) {
        reopen(c);
        work = true;
    }
    if (!c->attached)
        return work;
    work |= publish_pending(c);
    uint32_t n;
    if (moat_ring_avail(&c->cq, &n) != MOAT_RING_OK || c->sq.broken) {
        broken(c, c->sq.broken ? "request" : "completion");
        return true;
    }
    for (uint32_t i = 0; i < n; i++) {
        struct moat_cqe e;
        memcpy(&e, moat_ring_peek(&c->cq, i), sizeof e);
        complete(c, &e);
    }
    if (n) {
        bool k;
        if (moat_ring_consume(&c->cq, n, &k) == MOAT_RING_OK && k)
            kick(c);
        work = true;
    }
    return work;
}

/* About to sleep: ask the server to kick at its next completion. */
static bool client_idle(void *ctx)
{
    struct sclient *c = ctx;
    return c->attached && !moat_ring_arm(&c->cq);
}

static void session_event(void *ctx, uint32_t vector)
{
    (void)ctx;
    (void)vector;               /* client_poll looks at everything */
}

bool sc_open(struct sclient *c, const char *cap, uint32_t kind, uint64_t timeout_ns,
             sc_done_fn done, void *ctx)
{
    *c = (struct sclient){ .done = done, .ctx = ctx };
    c->vector = gk_event_alloc(session_event, c);
    if (!c->vector)
        dd_panic("session: no free event vector");
    size_t len = strlen(cap);
    if (len >= sizeof c->cap)
        dd_panic("session: cap name '%s' too long", cap);
    memcpy(c->cap, cap, len + 1);
    uint64_t deadline = timer_now_ns() + timeout_ns;
    int64_t k;
    for (;;) {
        k = open_once(c, &c->info);
        if (k != -SYS_EAGAIN || timer_now_ns() >= deadline)
            break;
        sys_wait(trap_irq_count());     /* the next tick: its server may be up by then */
    }
    if (k < 0) {
        dd_log("session: no session on %s: %s", cap,
               k == -SYS_EAGAIN ? "its server did not register it in time"
               : k == -SYS_ENOENT ? "no domain serves it" : "refused");
        return false;
    }
    if (c->info.kind != kind) {
        dd_log("session: %s is not a %s", cap, kind == MOAT_CAP_BLOCK ? "BlockDevice" : "Nic");
        return false;
    }
    c->mem = session_mem((uint32_t)k);
    c->data = c->mem + c->info.data_off;
    if (!attach(c) || !gk_poller_add(client_poll, c) || !gk_idle_add(client_idle, c))
        return false;
    dd_log("session %u on %s: %u entries, %lu KiB data", c->info.session, cap, c->info.entries,
           c->info.data_size >> 10);
    return true;
}

int sc_submit(struct sclient *c, const struct moat_sqe *e, bool again)
{
    for (unsigned s = 0; s < SC_INFLIGHT; s++) {
        struct sc_req *r = &c->req[s];
        if (r->busy)
            continue;
        *r = (struct sc_req){ .busy = true, .again = again, .seq = c->next_seq++, .e = *e };
        r->e.tag = r->seq << TAG_SLOT_BITS | s;
        c->submitted++;
        if (c->down) {          /* its server stays down: fails at once */
            r->busy = false;
            c->done(c->ctx, s, MOAT_ST_EIO, 0);
            return (int)s;
        }
        if (c->attached)
            publish_pending(c);
        return (int)s;
    }
    return -1;
}

unsigned sc_in_flight(const struct sclient *c)
{
    unsigned n = 0;
    for (unsigned s = 0; s < SC_INFLIGHT; s++)
        n += c->req[s].busy;
    return n;
}
