/* Caps between domains, the monitor as broker (contract in dom_internal.h;
 * the shared layout and protocol are bare/dom/bare_dom.h's and
 * moat/session_abi.h's). A session joins one client domain to the cap a
 * server domain registered: 2 MiB of monitor memory holding two rings of
 * moat/ring.h and a data area, mapped into both. The server sees it as the
 * hosted VMM would give it (a slot of its session table, a doorbell); the
 * client through SYS_SESSION_OPEN's answer. Every incarnation of the server
 * gets freshly formatted rings, and the client a new generation: requests
 * in flight when a server dies are resubmitted by the client, never
 * half-served by a new incarnation that never saw them.
 *
 * Zero copy: the data area is also a DMA window of the server (the slot
 * says MOAT_SLOT_DATA_DMA, at IOVA = its hosted address), translated at
 * the doorbell by dom_window_pa or mapped in the server's VT-d tables,
 * while the session lasts. Session memory, once a server's device could
 * reach it, is only ever reused for sessions of that same server (after a
 * scrub): a DMA its device still had in flight at a release can land only
 * in memory that server serves anyway, never in another domain's. */
#include "com1.h"
#include "dom.h"
#include "dom_pci.h"
#include "dom_internal.h"
#include "gk/kstring.h"
#include "gk/sys.h"
#include "moat/layout.h"
#include "moat/ring.h"
#include "palloc.h"

#define SESS_MAX   16u
#define CLIENT_MAX 4u                   /* sessions one client may hold */
#define ENTRIES    64u
#define SQ_OFF     0ull
#define CQ_OFF     8192ull
#define DATA_OFF   16384ull
#define DATA_SIZE  (BARE_DOM_SESSION_SIZE - DATA_OFF)
#define NAME_MAX_  (MOAT_NAME_MAX + MOAT_CAP_NAME_MAX + 1)

_Static_assert(SQ_OFF + MOAT_RING_HDR_SIZE + ENTRIES * sizeof(struct moat_sqe) <= CQ_OFF &&
               CQ_OFF + MOAT_RING_HDR_SIZE + ENTRIES * sizeof(struct moat_cqe) <= DATA_OFF,
               "the rings fit their places");

enum sess_state { S_FREE, S_OPEN, S_CLOSING };

static struct sess {
    enum sess_state state;
    struct dom *client, *server;
    uint32_t k;                 /* the client's index */
    uint32_t slot;              /* the server's slot */
    uint32_t id;                /* nonzero, unique in this boot */
    uint32_t vector;            /* the client's, for the server's doorbell */
    uint32_t server_inc;        /* the incarnation that has its rings; 0: none yet */
    uint64_t pa;                /* its memory, kept for the next session in this record */
    struct dom *bound;          /* the server its memory may be reused for (see above) */
    bool dma;                   /* the data area is a DMA window of the server now */
    uint32_t gen;               /* the generation last published to the client */
    uint64_t kicks, doorbells, rings;
} sess[SESS_MAX];
static uint32_t next_id = 1;

static bool serving(const struct sess *s)
{
    return s->server_inc && s->server_inc == s->server->incarnation &&
           s->server->state != DOM_DEAD;
}

/* Rewrite the server's slot (odd sequence while it changes, as the VMM
 * does), then tell it the table changed. */
static void write_slot(struct sess *s, uint32_t state)
{
    struct moat_session_table *t = s->server->table;
    struct moat_session_slot *e = &t->slot[s->slot];
    __atomic_store_n(&e->seq, e->seq | 1, __ATOMIC_RELEASE);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (state == MOAT_SLOT_OPEN) {
        uint64_t gpa = MOAT_GPA_SESSION_BASE + (uint64_t)s->slot * MOAT_SESSION_SPAN;
        *e = (struct moat_session_slot){
            .seq = e->seq, .state = state, .cap_index = 0, .session_id = s->id,
            .rights = MOAT_RIGHT_READ | MOAT_RIGHT_WRITE, .flags = s->dma ? MOAT_SLOT_DATA_DMA : 0,
            .gpa = gpa,
            .size = BARE_DOM_SESSION_SIZE, .sq_entries = ENTRIES, .cq_entries = ENTRIES,
            .sq_off = SQ_OFF, .cq_off = CQ_OFF, .data_off = DATA_OFF, .data_size = DATA_SIZE,
            .doorbell_gpa = MOAT_GPA_SESSION_DOORBELL + 4ull * s->slot };
    } else {
        e->state = state;
    }
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    __atomic_store_n(&e->seq, e->seq + 1, __ATOMIC_RELEASE);
    __atomic_fetch_add(&t->changes, 1, __ATOMIC_RELEASE);
    dom_event(s->server, s->server->cap.vector);
}

/* Fresh rings for the server's incarnation now running; the client hears
 * of them through its generation. */
static void publish(struct sess *s)
{
    uint8_t *m = (uint8_t *)(uintptr_t)s->pa;
    memset(m, 0, DATA_OFF);
    moat_ring_format(m + SQ_OFF, CQ_OFF - SQ_OFF, ENTRIES, sizeof(struct moat_sqe));
    moat_ring_format(m + CQ_OFF, DATA_OFF - CQ_OFF, ENTRIES, sizeof(struct moat_cqe));
    s->server->doorbells[s->slot] = 0;
    s->server_inc = s->server->incarnation;
    s->rings++;
    write_slot(s, MOAT_SLOT_OPEN);
    if (++s->gen == BARE_SESSION_DOWN)     /* the monitor's count, not the page's */
        s->gen = 1;
    __atomic_store_n(&s->client->ev->session_gen[s->k], s->gen, __ATOMIC_RELEASE);
    dom_event(s->client, s->vector);
}

void dom_session_server_down(struct dom *server)
{
    for (uint32_t i = 0; i < SESS_MAX; i++) {
        struct sess *s = &sess[i];
        if (s->state != S_OPEN || s->server != server)
            continue;
        __atomic_store_n(&s->client->ev->session_gen[s->k], BARE_SESSION_DOWN, __ATOMIC_RELEASE);
        dom_event(s->client, s->vector);
        dom_log(s->client, "session %u: %s stays down: what is in flight fails (a restart "
                "from the console serves it again)", s->id, server->name);
    }
}

static uint64_t data_iova(const struct sess *s)
{
    return MOAT_GPA_SESSION_BASE + (uint64_t)s->slot * MOAT_SESSION_SPAN + DATA_OFF;
}

static void release(struct sess *s)
{
    if (s->dma && !dom_pci_dma_range(s->server, data_iova(s), s->pa + DATA_OFF, DATA_SIZE, false))
        dom_log(s->server, "session %u: the IOMMU did not take its data area back", s->id);
    s->dma = false;
    dom_map_session(s->server, s->slot, 0);
    if (serving(s))
        write_slot(s, MOAT_SLOT_FREE);
    s->state = S_FREE;
}

static struct dom *server_named(const struct dom *client, const char *name, bool *known)
{
    uint32_t n;
    struct dom *doms = dom_table(&n);
    *known = false;
    for (uint32_t i = 0; i < n; i++) {
        struct dom *d = &doms[i];
        size_t len = strlen(d->name);
        if (d == client || strncmp(name, d->name, len) != 0 || name[len] != '.')
            continue;
        *known = true;
        if (d->has_cap && d->state != DOM_DEAD && strcmp(name + len + 1, d->cap.name) == 0)
            return d;
    }
    return NULL;
}

static struct sess *find(const struct dom *d, bool as_client, uint32_t index)
{
    for (uint32_t i = 0; i < SESS_MAX; i++)
        if (sess[i].state != S_FREE && (as_client ? sess[i].client : sess[i].server) == d &&
            (as_client ? sess[i].k : sess[i].slot) == index)
            return &sess[i];
    return NULL;
}

int64_t dom_session_open(struct dom *client, uint64_t name_va, uint64_t info_va, uint64_t vector)
{
    char name[NAME_MAX_];
    size_t n = 0;
    while (n + 1 < sizeof name && dom_copy_in(client, &name[n], name_va + n, 1) && name[n])
        n++;
    name[n] = '\0';
    if (vector >= 256 || !n) {
        dom_audit(client, "session open refused: %s", n ? "event vector past 255"
                                                         : "no readable cap name");
        return -SYS_EINVAL;
    }
    bool known;
    struct dom *server = server_named(client, name, &known);
    if (!server) {
        if (!known)
            dom_log(client, "session refused: no domain serves a cap named '%s'", name);
        return known ? -SYS_EAGAIN : -SYS_ENOENT;   /* again: not (re)registered yet */
    }
    uint32_t k = 0, slot = 0, held = 0;
    for (uint32_t i = 0; i < SESS_MAX; i++)
        held += sess[i].state != S_FREE && sess[i].client == client;
    if (held >= CLIENT_MAX) {
        dom_audit(client, "session on %s refused: it holds %u already", name, held);
        return -SYS_EAGAIN;
    }
    while (k < BARE_DOM_SESSIONS && find(client, true, k))
        k++;
    while (slot < MOAT_SESSION_SLOTS && find(server, false, slot))
        slot++;
    /* Memory this server's device could reach before, else fresh memory. */
    struct sess *s = NULL;
    for (uint32_t i = 0; i < SESS_MAX && !s; i++)
        if (sess[i].state == S_FREE && sess[i].pa && sess[i].bound == server)
            s = &sess[i];
    for (uint32_t i = 0; i < SESS_MAX && !s; i++)
        if (sess[i].state == S_FREE && !sess[i].pa)
            s = &sess[i];
    if (!s || k == BARE_DOM_SESSIONS || slot == MOAT_SESSION_SLOTS) {
        dom_log(client, "session on %s refused: no free session", name);
        return -SYS_EAGAIN;
    }
    if (!s->pa && !(s->pa = palloc(BARE_DOM_SESSION_SIZE / 4096, BARE_DOM_SESSION_SIZE)))
        return -SYS_EAGAIN;
    memset((void *)(uintptr_t)s->pa, 0, BARE_DOM_SESSION_SIZE);   /* the last one's data */
    *s = (struct sess){ .state = S_OPEN, .client = client, .server = server, .k = k,
                        .slot = slot, .id = next_id++, .vector = (uint32_t)vector, .pa = s->pa,
                        .bound = server };
    struct bare_session_info info = {
        .session = k, .entries = ENTRIES, .sq_off = SQ_OFF, .cq_off = CQ_OFF,
        .data_off = DATA_OFF, .data_size = DATA_SIZE,
        .rights = MOAT_RIGHT_READ | MOAT_RIGHT_WRITE, .kind = server->cap.kind };
    if (info.kind == MOAT_CAP_NIC)
        info.nic = server->cap.nic;
    else
        info.blk = server->cap.blk;
    if (!dom_copy_out(client, info_va, &info, sizeof info)) {
        s->state = S_FREE;
        return -SYS_EFAULT;
    }
    if (!dom_map_session(server, slot, s->pa) || !dom_map_session(client, k, s->pa)) {
        dom_map_session(server, slot, 0);
        dom_map_session(client, k, 0);
        s->state = S_FREE;
        dom_log(client, "session on %s refused: no memory for nested tables", name);
        return -SYS_EAGAIN;
    }
    s->dma = dom_pci_dma_reaches(server, data_iova(s) + DATA_SIZE) &&
             dom_pci_dma_range(server, data_iova(s), s->pa + DATA_OFF, DATA_SIZE, true);
    publish(s);
    dom_log(client, "session %u open on %s (its slot %u, %u entries, %llu KiB data%s)", s->id,
            name, slot, ENTRIES, (unsigned long long)(DATA_SIZE >> 10),
            s->dma ? ", zero copy" : "");
    return k;
}

int64_t dom_session_kick(struct dom *client, uint64_t k)
{
    struct sess *s = k < BARE_DOM_SESSIONS ? find(client, true, (uint32_t)k) : NULL;
    if (!s) {
        client->refused++;      /* counted, not logged: a kick is cheap to repeat */
        return -SYS_EINVAL;
    }
    if (s->state == S_OPEN && serving(s)) {
        s->kicks++;
        dom_event(s->server, s->server->cap.vector);
    }
    return 0;
}

int64_t dom_session_release(struct dom *server, uint64_t slot)
{
    struct sess *s = slot < MOAT_SESSION_SLOTS ? find(server, false, (uint32_t)slot) : NULL;
    if (!s || s->state != S_CLOSING) {
        dom_audit(server, "release of session slot %llu refused: %s", (unsigned long long)slot,
                  s ? "it is open" : "no session there");
        return -SYS_EINVAL;
    }
    release(s);
    return 0;
}

void dom_session_server_ready(struct dom *server)
{
    struct moat_session_table *t = server->table;
    t->magic = MOAT_SESSION_TABLE_MAGIC;
    t->version = 1;
    t->n_slots = MOAT_SESSION_SLOTS;
    for (uint32_t i = 0; i < SESS_MAX; i++) {
        struct sess *s = &sess[i];
        if (s->state != S_OPEN || s->server != server)
            continue;
        publish(s);
        dom_log(s->client, "session %u: fresh rings from %s's incarnation %u; what was in "
                "flight is the client's to resubmit", s->id, server->name, server->incarnation);
    }
}

/* The client is done with s: gone from its space; the server drains it
 * and releases it, or it is free at once when no server holds it. */
static void client_close(struct sess *s)
{
    dom_map_session(s->client, s->k, 0);
    if (!serving(s)) {
        release(s);
    } else if (s->state == S_OPEN) {
        s->state = S_CLOSING;
        write_slot(s, MOAT_SLOT_CLOSING);
    }                           /* else: closing already, the server drains it */
}

int64_t dom_session_close(struct dom *client, uint64_t k)
{
    struct sess *s = k < BARE_DOM_SESSIONS ? find(client, true, (uint32_t)k) : NULL;
    if (!s || s->state != S_OPEN) {
        dom_audit(client, "close of session %llu refused: %s", (unsigned long long)k,
                  s ? "it is closing already" : "no session there");
        return -SYS_EINVAL;
    }
    dom_log(client, "session %u on %s.%s closed by its client", s->id, s->server->name,
            s->server->cap.name);
    client_close(s);
    return 0;
}

void dom_session_ended(struct dom *d)
{
    for (uint32_t i = 0; i < SESS_MAX; i++) {
        struct sess *s = &sess[i];
        if (s->state == S_FREE)
            continue;
        if (s->client == d) {
            client_close(s);
        } else if (s->server == d) {
            s->server_inc = 0;          /* the next incarnation gets fresh rings */
            if (s->state == S_CLOSING)
                release(s);
        }
    }
}

uint64_t dom_session_dma_pa(const struct dom *d, uint64_t iova, uint64_t len)
{
    for (uint32_t i = 0; i < SESS_MAX; i++) {
        const struct sess *s = &sess[i];
        if (s->state == S_FREE || s->server != d || !s->dma || !serving(s))
            continue;
        uint64_t base = data_iova(s);
        if (iova >= base && iova - base < DATA_SIZE && len <= DATA_SIZE - (iova - base))
            return s->pa + DATA_OFF + (iova - base);
    }
    return 0;
}

void dom_session_doorbells(struct dom *d)
{
    for (uint32_t i = 0; i < SESS_MAX; i++) {
        struct sess *s = &sess[i];
        if (s->state != S_OPEN || s->server != d || !serving(s))
            continue;
        if (__atomic_exchange_n(&d->doorbells[s->slot], 0, __ATOMIC_ACQ_REL)) {
            s->doorbells++;
            dom_event(s->client, s->vector);
        }
    }
}

void dom_session_describe(void)
{
    bool any = false;
    for (uint32_t i = 0; i < SESS_MAX; i++) {
        const struct sess *s = &sess[i];
        if (s->state == S_FREE)
            continue;
        any = true;
        com1_printf("session %u: %s (its session %u) -> %s.%s (slot %u), %s%s, %u entries, "
                    "%llu KiB data, %llu kicks, %llu doorbells, %llu set%s of rings\n", s->id,
                    s->client->name, s->k, s->server->name, s->server->cap.name, s->slot,
                    s->state == S_OPEN ? "open" : "closing",
                    serving(s) ? "" : " (server down)", ENTRIES,
                    (unsigned long long)(DATA_SIZE >> 10), (unsigned long long)s->kicks,
                    (unsigned long long)s->doorbells, (unsigned long long)s->rings,
                    s->rings == 1 ? "" : "s");
    }
    if (!any)
        com1_printf("no sessions (an app domain opens one on a cap: cap=NAME.CAP)\n");
}
