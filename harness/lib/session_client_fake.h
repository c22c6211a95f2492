/*
 * session_client_fake.h — the world around guest-kernel/bare/apps/
 * session_client.c for host tests and fuzz targets (GK_HOST_TEST): the
 * monitor (SYS_SESSION_*: session k's memory and the events page at the
 * domain's fixed addresses, which sc_fake_map maps here), the run loop
 * (the poller the client registers, called directly) and the server's
 * side of the current session's rings (srv_sq, srv_cq). `sc_fake_check`
 * is what a failed expectation calls: cr_assert in unit tests, abort in
 * fuzz targets. Include session_client.c first, then this, in exactly
 * one file.
 */
#ifndef MOAT_SESSION_CLIENT_FAKE_H
#define MOAT_SESSION_CLIENT_FAKE_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <stdlib.h>
#include <sys/mman.h>

#ifndef SC_FAKE_CHECK
#define SC_FAKE_FIRST_(a, ...) a
#define SC_FAKE_CHECK(...) do { if (!(SC_FAKE_FIRST_(__VA_ARGS__, 0))) abort(); } while (0)
#endif

#define ENTRIES 8u
#define CQ_OFF 4096u
#define DATA_OFF 8192u

static struct bare_dom_events *ev;
static gk_poll_fn poller;
static void *poll_ctx;
static bool open_k[BARE_DOM_SESSIONS];
static unsigned opens, closes, kicks;
static struct moat_ring srv_sq, srv_cq;         /* the server's side of the current session */
static uint32_t srv_k;

static uint8_t *mem_of(uint32_t k) { return session_mem(k); }

/* Fresh rings in session k, the server attached to them. */
static void server_rings(uint32_t k)
{
    uint8_t *m = mem_of(k);
    memset(m, 0, DATA_OFF);
    SC_FAKE_CHECK(moat_ring_format(m, CQ_OFF, ENTRIES, sizeof(struct moat_sqe)) == MOAT_RING_OK);
    SC_FAKE_CHECK(moat_ring_format(m + CQ_OFF, DATA_OFF - CQ_OFF, ENTRIES,
                                   sizeof(struct moat_cqe)) == MOAT_RING_OK);
    SC_FAKE_CHECK(moat_ring_attach(&srv_sq, m, CQ_OFF, ENTRIES, sizeof(struct moat_sqe),
                                   MOAT_RING_CONSUMER) == MOAT_RING_OK);
    SC_FAKE_CHECK(moat_ring_attach(&srv_cq, m + CQ_OFF, DATA_OFF - CQ_OFF, ENTRIES,
                                   sizeof(struct moat_cqe), MOAT_RING_PRODUCER) == MOAT_RING_OK);
    srv_k = k;
    ev->session_gen[k]++;
}

int64_t sys_call3(uint64_t nr, uint64_t a, uint64_t b, uint64_t c)
{
    (void)c;
    if (nr == SYS_SESSION_KICK) {
        kicks++;
        return 0;
    }
    if (nr == SYS_SESSION_CLOSE) {
        SC_FAKE_CHECK(a < BARE_DOM_SESSIONS && open_k[a], "closed session %llu, not open",
                      (unsigned long long)a);
        open_k[a] = false;
        closes++;
        return 0;
    }
    SC_FAKE_CHECK(nr == SYS_SESSION_OPEN, "unexpected system call %llu", (unsigned long long)nr);
    uint32_t k = 0;
    while (k < BARE_DOM_SESSIONS && open_k[k])
        k++;
    if (k == BARE_DOM_SESSIONS)
        return -SYS_EAGAIN;
    open_k[k] = true;
    opens++;
    *(struct bare_session_info *)(uintptr_t)b = (struct bare_session_info){
        .session = k, .entries = ENTRIES, .sq_off = 0, .cq_off = CQ_OFF, .data_off = DATA_OFF,
        .data_size = BARE_DOM_SESSION_SIZE - DATA_OFF, .kind = MOAT_CAP_BLOCK,
        .blk = { .block_size = 512, .max_blocks = 128, .blocks = 1024 } };
    server_rings(k);
    return k;
}

static unsigned n_events;
uint32_t gk_event_alloc(gk_event_fn fn, void *ctx)
{
    (void)fn;
    (void)ctx;
    n_events++;
    return 48;
}
bool gk_poller_add(gk_poll_fn fn, void *ctx)
{
    poller = fn;
    poll_ctx = ctx;
    return true;
}
bool gk_idle_add(gk_idle_fn fn, void *ctx)
{
    (void)fn;
    (void)ctx;
    return true;
}
uint64_t timer_now_ns(void) { return 0; }
uint64_t trap_irq_count(void) { return 0; }

/* Map the domain's fixed addresses (events page, every session) and
 * forget every session: a fresh world. False when they cannot be mapped. */
static bool sc_fake_map(void)
{
    static bool mapped;
    if (!mapped) {
        void *e = mmap((void *)(uintptr_t)BARE_DOM_VA_EVENTS, 4096, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        void *s = mmap((void *)(uintptr_t)BARE_DOM_VA_SESSIONS,
                       BARE_DOM_SESSIONS * BARE_DOM_SESSION_SIZE,
                       PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
                       -1, 0);
        if (e != (void *)(uintptr_t)BARE_DOM_VA_EVENTS ||
            s != (void *)(uintptr_t)BARE_DOM_VA_SESSIONS)
            return false;
        mapped = true;
    }
    ev = (struct bare_dom_events *)(uintptr_t)BARE_DOM_VA_EVENTS;
    memset(ev, 0, sizeof *ev);
    memset(open_k, 0, sizeof open_k);
    opens = closes = kicks = 0;
    n_events = 0;
    return true;
}

#endif /* MOAT_SESSION_CLIENT_FAKE_H */
