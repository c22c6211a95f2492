/* The bare monitor's session broker (guest-kernel/bare/dom_session.c)
 * compiled for the host: this file includes it and plays the rest of the
 * monitor — domains whose shared pages are host memory, user copies
 * (address 0 is unmapped), mappings and events recorded, palloc from the
 * heap. Each test drives the system calls a client or a server makes,
 * hostile ones included, and checks what each side then sees. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../../guest-kernel/bare/dom_session.c"

#define DOMS 3u

static struct dom doms[DOMS];
static struct dom *srv = &doms[0], *cli = &doms[1], *cli2 = &doms[2];
static uint64_t mapped[DOMS][BARE_DOM_SESSIONS];
static uint32_t last_event[DOMS];
static unsigned events[DOMS], audits;
static char last_audit[256];
static void *allocs[64];
static unsigned n_allocs;

static unsigned idx(const struct dom *d) { return (unsigned)(d - doms); }

uint64_t palloc(uint64_t pages, uint64_t align)
{
    void *p = aligned_alloc(align < 4096 ? 4096 : align, pages * 4096);
    cr_assert_not_null(p);
    memset(p, 0, pages * 4096);
    allocs[n_allocs++] = p;
    return (uint64_t)(uintptr_t)p;
}
void com1_printf(const char *fmt, ...) { (void)fmt; }
void dom_log(const struct dom *d, const char *fmt, ...)
{
    (void)d;
    (void)fmt;
}
void dom_audit(struct dom *d, const char *fmt, ...)
{
    (void)d;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_audit, sizeof last_audit, fmt, ap);
    va_end(ap);
    audits++;
}
void dom_event(struct dom *d, uint32_t vector)
{
    last_event[idx(d)] = vector;
    events[idx(d)]++;
}
struct dom *dom_table(uint32_t *n)
{
    *n = DOMS;
    return doms;
}
bool dom_map_session(struct dom *d, uint32_t k, uint64_t pa)
{
    mapped[idx(d)][k] = pa;
    return true;
}

/* The server's devices: under an IOMMU whose reach a test sets. */
static uint64_t iommu_reach = UINT64_MAX, iommu_maps, iommu_unmaps;
bool dom_pci_dma_reaches(const struct dom *d, uint64_t iova_end)
{
    (void)d;
    return iova_end <= iommu_reach;
}
bool dom_pci_dma_range(struct dom *d, uint64_t iova, uint64_t pa, uint64_t len, bool on)
{
    (void)d;
    (void)iova;
    (void)pa;
    (void)len;
    on ? iommu_maps++ : iommu_unmaps++;
    return true;
}
bool dom_copy_in(const struct dom *d, void *dst, uint64_t va, uint64_t len)
{
    (void)d;
    if (!va)
        return false;
    memcpy(dst, (const void *)(uintptr_t)va, len);
    return true;
}
bool dom_copy_out(const struct dom *d, uint64_t va, const void *src, uint64_t len)
{
    (void)d;
    if (!va)
        return false;
    memcpy((void *)(uintptr_t)va, src, len);
    return true;
}

static void dom_up(struct dom *d, const char *name)
{
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "%s", name);
    d->state = DOM_RUNNABLE;
    d->incarnation = 1;
    d->table = calloc(1, 4096);
    d->doorbells = calloc(1, 4096);
    d->ev = calloc(1, sizeof *d->ev);
}

static void setup(void)
{
    memset(sess, 0, sizeof sess);
    memset(mapped, 0, sizeof mapped);
    memset(events, 0, sizeof events);
    audits = 0;
    iommu_reach = UINT64_MAX;
    iommu_maps = iommu_unmaps = 0;
    dom_up(srv, "nvme0");
    dom_up(cli, "app0");
    dom_up(cli2, "app1");
    srv->has_cap = true;
    srv->cap = (struct moat_cap_register){ .kind = MOAT_CAP_BLOCK, .vector = 60, .name = "blk0",
        .blk = { .block_size = 512, .max_blocks = 256, .blocks = 1 << 16 } };
    dom_session_server_ready(srv);
}

static void teardown(void)
{
    for (unsigned i = 0; i < DOMS; i++) {
        free(doms[i].table);
        free(doms[i].doorbells);
        free(doms[i].ev);
    }
    for (unsigned i = 0; i < n_allocs; i++)
        free(allocs[i]);
    n_allocs = 0;
}

static struct bare_session_info info;

static int64_t open_on(struct dom *c, const char *cap, uint32_t vector)
{
    return dom_session_open(c, (uint64_t)(uintptr_t)cap, (uint64_t)(uintptr_t)&info, vector);
}

TestSuite(bare_session, .init = setup, .fini = teardown);

Test(bare_session, an_open_is_refused_with_the_reason)
{
    cr_assert_eq(open_on(cli, "disk9.blk0", 50), -SYS_ENOENT, "a cap no domain serves");
    cr_assert_eq(open_on(cli, "nvme0.blk7", 50), -SYS_EAGAIN,
                 "a cap its domain has not registered (yet) must be asked again");
    cr_assert_eq(open_on(cli, "nvme0.blk0", 300), -SYS_EINVAL, "an event vector past 255");
    cr_assert(audits == 1 && strstr(last_audit, "event vector past 255"), "audit: %s",
              last_audit);
    cr_assert_eq(dom_session_open(cli, (uint64_t)(uintptr_t)"nvme0.blk0", 0, 50), -SYS_EFAULT,
                 "an answer the client cannot receive");
    cr_assert_eq(open_on(srv, "nvme0.blk0", 50), -SYS_ENOENT, "a server of its own cap");
    srv->state = DOM_DEAD;
    cr_assert_eq(open_on(cli, "nvme0.blk0", 50), -SYS_EAGAIN, "a server that is down");
    for (unsigned i = 0; i < SESS_MAX; i++)
        cr_assert_eq(sess[i].state, S_FREE, "a refused open left session record %u", i);
}

Test(bare_session, an_open_formats_maps_and_publishes_the_session)
{
    int64_t k = open_on(cli, "nvme0.blk0", 50);
    cr_assert_eq(k, 0);
    struct sess *s = &sess[0];
    cr_assert(mapped[idx(cli)][0] == s->pa && mapped[idx(srv)][0] == s->pa && s->pa,
              "not mapped into both");
    const struct moat_session_slot *e = &srv->table->slot[0];
    cr_assert(e->state == MOAT_SLOT_OPEN && e->seq % 2 == 0 && e->session_id == s->id &&
              e->gpa == MOAT_GPA_SESSION_BASE && e->sq_off == SQ_OFF && e->cq_off == CQ_OFF &&
              e->data_off == DATA_OFF && e->doorbell_gpa == MOAT_GPA_SESSION_DOORBELL,
              "the server's slot is not what dd_serve.c expects");
    cr_assert(srv->table->magic == MOAT_SESSION_TABLE_MAGIC && srv->table->changes > 0);
    struct moat_ring r;
    cr_assert_eq(moat_ring_attach(&r, (uint8_t *)(uintptr_t)s->pa + SQ_OFF, CQ_OFF - SQ_OFF,
                                  ENTRIES, sizeof(struct moat_sqe), MOAT_RING_PRODUCER),
                 MOAT_RING_OK, "the request ring is not formatted");
    cr_assert(info.session == 0 && info.kind == MOAT_CAP_BLOCK && info.blk.block_size == 512 &&
              info.data_off == DATA_OFF && info.entries == ENTRIES, "the client's answer");
    cr_assert(cli->ev->session_gen[0] == 1 && last_event[idx(cli)] == 50 &&
              last_event[idx(srv)] == 60, "both sides must hear of it");
}

Test(bare_session, a_client_holds_four_sessions_at_most)
{
    for (unsigned i = 0; i < CLIENT_MAX; i++)
        cr_assert_eq(open_on(cli, "nvme0.blk0", 50), (int64_t)i);
    cr_assert_eq(open_on(cli, "nvme0.blk0", 50), -SYS_EAGAIN);
    cr_assert(audits == 1 && strstr(last_audit, "holds 4 already"), "audit: %s", last_audit);
    cr_assert_eq(open_on(cli2, "nvme0.blk0", 50), 0, "another client was starved");
}

Test(bare_session, kicks_and_doorbells_wake_the_other_side)
{
    open_on(cli, "nvme0.blk0", 50);
    unsigned e = events[idx(srv)];
    cr_assert_eq(dom_session_kick(cli, 0), 0);
    cr_assert(events[idx(srv)] == e + 1 && last_event[idx(srv)] == 60, "the kick did not wake");
    uint64_t refused = cli->refused;
    cr_assert_eq(dom_session_kick(cli, 1), -SYS_EINVAL, "a kick on no session");
    cr_assert_eq(dom_session_kick(cli, 99), -SYS_EINVAL, "a kick past the table");
    cr_assert_eq(cli->refused, refused + 2, "refused kicks must be counted");
    e = events[idx(cli)];
    srv->doorbells[0] = 1;
    srv->doorbells[5] = 1;              /* a slot with no session: nobody to wake */
    dom_session_doorbells(srv);
    cr_assert(events[idx(cli)] == e + 1 && srv->doorbells[0] == 0, "the doorbell did not wake");
    dom_session_doorbells(srv);
    cr_assert_eq(events[idx(cli)], e + 1, "one ring, one wake-up");
}

Test(bare_session, a_session_is_released_only_after_its_client_closed_it)
{
    open_on(cli, "nvme0.blk0", 50);
    cr_assert_eq(dom_session_release(srv, 0), -SYS_EINVAL, "released while open");
    cr_assert(audits == 1 && strstr(last_audit, "it is open"), "audit: %s", last_audit);
    cr_assert_eq(dom_session_release(srv, 7), -SYS_EINVAL, "released a slot with nothing");
    cr_assert_eq(dom_session_close(cli, 0), 0);
    cr_assert(mapped[idx(cli)][0] == 0 && srv->table->slot[0].state == MOAT_SLOT_CLOSING,
              "closing: gone from the client, the server told");
    cr_assert_eq(dom_session_close(cli, 0), -SYS_EINVAL, "closed twice");
    cr_assert(strstr(last_audit, "close of session 0 refused: it is closing already"), "audit: %s",
              last_audit);
    cr_assert_eq(dom_session_release(srv, 0), 0);
    cr_assert(mapped[idx(srv)][0] == 0 && srv->table->slot[0].state == MOAT_SLOT_FREE &&
              sess[0].state == S_FREE, "not released");
}

Test(bare_session, a_restarted_server_gets_fresh_rings_and_the_client_a_new_generation)
{
    open_on(cli, "nvme0.blk0", 50);
    uint8_t *m = (uint8_t *)(uintptr_t)sess[0].pa;
    ((struct moat_ring_shared *)(m + SQ_OFF))->prod = 5;   /* requests the old one never saw */
    srv->state = DOM_DEAD;
    dom_session_ended(srv);
    unsigned e = events[idx(srv)];
    cr_assert_eq(dom_session_kick(cli, 0), 0);
    cr_assert_eq(events[idx(srv)], e, "a dead server was woken");
    memset(srv->table, 0, 4096);                            /* the restart scrubbed it */
    srv->state = DOM_RUNNABLE;
    srv->incarnation = 2;
    dom_session_server_ready(srv);
    cr_assert_eq(((struct moat_ring_shared *)(m + SQ_OFF))->prod, 0, "the rings were not fresh");
    cr_assert(srv->table->slot[0].state == MOAT_SLOT_OPEN && cli->ev->session_gen[0] == 2,
              "not published again, or the client not told");
}

Test(bare_session, a_server_down_for_good_tells_its_client_then_comes_back_on_a_new_number)
{
    open_on(cli, "nvme0.blk0", 50);
    srv->state = DOM_DEAD;
    dom_session_ended(srv);
    dom_session_server_down(srv);
    cr_assert_eq(cli->ev->session_gen[0], BARE_SESSION_DOWN);
    srv->state = DOM_RUNNABLE;
    srv->incarnation = 2;
    dom_session_server_ready(srv);
    uint32_t g = cli->ev->session_gen[0];
    cr_assert(g != BARE_SESSION_DOWN && g != 1, "generation %u: the client cannot tell it is new",
              g);
    /* A client that ends while its server is down is released at once. */
    srv->state = DOM_DEAD;
    dom_session_ended(srv);
    dom_session_ended(cli);
    cr_assert(sess[0].state == S_FREE && mapped[idx(cli)][0] == 0 && mapped[idx(srv)][0] == 0,
              "a session of two gone domains was kept");
}

Test(bare_session, the_data_area_is_a_dma_window_of_the_server_while_the_session_lasts)
{
    open_on(cli, "nvme0.blk0", 50);
    struct sess *s = &sess[0];
    uint64_t iova = MOAT_GPA_SESSION_BASE + DATA_OFF;
    cr_assert(srv->table->slot[0].flags & MOAT_SLOT_DATA_DMA, "the server was not told");
    cr_assert_eq(iommu_maps, 1, "the server's IOMMU tables were not given the data area");
    cr_assert_eq(dom_session_dma_pa(srv, iova + 4096, 8192), s->pa + DATA_OFF + 4096);
    cr_assert_eq(dom_session_dma_pa(srv, iova - 8, 16), 0, "the rings are not DMA-reachable");
    cr_assert_eq(dom_session_dma_pa(srv, iova + DATA_SIZE - 8, 16), 0, "past the data area");
    cr_assert_eq(dom_session_dma_pa(cli, iova, 16), 0, "only the server's devices reach it");
    srv->state = DOM_DEAD;              /* a dead incarnation's device reaches nothing */
    cr_assert_eq(dom_session_dma_pa(srv, iova, 16), 0);
    srv->state = DOM_RUNNABLE;
    dom_session_close(cli, 0);
    dom_session_release(srv, 0);
    cr_assert(iommu_unmaps == 1 && dom_session_dma_pa(srv, iova, 16) == 0, "kept after release");
}

Test(bare_session, memory_a_servers_device_reached_serves_only_that_server_again)
{
    free(cli2->table);
    free(cli2->doorbells);
    free(cli2->ev);
    dom_up(cli2, "nvme1");              /* a second server this time */
    cli2->has_cap = true;
    cli2->cap = srv->cap;
    dom_session_server_ready(cli2);
    open_on(cli, "nvme0.blk0", 50);
    uint64_t first = sess[0].pa;
    dom_session_close(cli, 0);
    dom_session_release(srv, 0);
    open_on(cli, "nvme1.blk0", 50);
    for (unsigned i = 0; i < SESS_MAX; i++)
        if (sess[i].state != S_FREE)
            cr_assert_neq(sess[i].pa, first, "nvme0's memory went to a session of nvme1");
    open_on(cli, "nvme0.blk0", 50);
    bool reused = false;
    for (unsigned i = 0; i < SESS_MAX; i++)
        reused |= sess[i].state != S_FREE && sess[i].server == srv && sess[i].pa == first;
    cr_assert(reused, "nvme0's own memory was not reused for it");
}

Test(bare_session, a_unit_that_cannot_reach_the_data_area_means_copies)
{
    iommu_reach = 1ull << 39;           /* 3-level tables: below 512 GiB only */
    open_on(cli, "nvme0.blk0", 50);
    cr_assert(!(srv->table->slot[0].flags & MOAT_SLOT_DATA_DMA) && iommu_maps == 0,
              "zero copy offered where the device cannot reach the data area");
    cr_assert_eq(dom_session_dma_pa(srv, MOAT_GPA_SESSION_BASE + DATA_OFF, 16), 0);
}
