/* The driver domain's session serving (guest-kernel/dd_serve.c and
 * guest-kernel/dd_nic.c) compiled for the host (GK_HOST_TEST): this file
 * includes both and plays what is around them, as harness/fuzz/
 * fuzz_dd_serve.c does: the kernel (sys_call3, gk_gpa_ptr: the session
 * table, session windows and doorbells are memory owned here), the run
 * loop (the poller dd_serve.c registers is called directly) and the VMM
 * (opens and closes sessions in the table, frees a slot on release).
 * Regression tests for what the fuzzer found. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../../guest-kernel/dd_serve.c"
/* One translation unit: dd_nic.c's static check() and its locals named st
 * meet dd_serve.c's statics. */
#define check nic_check
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#include "../../guest-kernel/dd_nic.c"
#pragma GCC diagnostic pop
#undef check
#include "moat/layout.h"

static struct moat_session_table tbl __attribute__((aligned(4096)));
static uint32_t bells[MOAT_SESSION_SLOTS];
static uint8_t *win[MOAT_SESSION_SLOTS];
static uint64_t win_size[MOAT_SESSION_SLOTS];
static gk_poll_fn poller;
static bool released[MOAT_SESSION_SLOTS];
static unsigned page_allocs;

void *gk_gpa_ptr(uint64_t gpa)
{
    if (gpa == MOAT_GPA_SESSION_TABLE)
        return &tbl;
    if (gpa >= MOAT_GPA_SESSION_DOORBELL && gpa < MOAT_GPA_SESSION_DOORBELL + sizeof bells)
        return (uint8_t *)bells + (gpa - MOAT_GPA_SESSION_DOORBELL);
    uint64_t i = (gpa - MOAT_GPA_SESSION_BASE) / MOAT_SESSION_SPAN;
    cr_assert(gpa >= MOAT_GPA_SESSION_BASE && i < MOAT_SESSION_SLOTS && win[i],
              "guest-physical 0x%llx is not mapped", (unsigned long long)gpa);
    return win[i] + (gpa - MOAT_GPA_SESSION_BASE) % MOAT_SESSION_SPAN;
}

static void slot_write(uint32_t i, const struct moat_session_slot *v)
{
    uint32_t seq = tbl.slot[i].seq;
    tbl.slot[i] = *v;
    tbl.slot[i].seq = seq + 2;
    tbl.changes++;
}

int64_t sys_call3(uint64_t nr, uint64_t a, uint64_t b, uint64_t c)
{
    (void)b;
    (void)c;
    if (nr == SYS_CAP_REGISTER)
        return 0;
    cr_assert_eq(nr, SYS_SESSION_RELEASE, "unexpected system call %llu", (unsigned long long)nr);
    cr_assert_eq(tbl.slot[a].state, MOAT_SLOT_CLOSING, "released a slot that is not closing");
    released[a] = true;
    struct moat_session_slot v = { .state = MOAT_SLOT_FREE };
    slot_write((uint32_t)a, &v);
    return 0;
}

uint32_t gk_event_alloc(gk_event_fn fn, void *ctx)
{
    (void)fn;
    (void)ctx;
    return 48;
}

bool gk_poller_add(gk_poll_fn fn, void *ctx)
{
    (void)ctx;
    poller = fn;
    return true;
}

bool gk_idle_add(gk_idle_fn fn, void *ctx)
{
    (void)fn;
    (void)ctx;
    return true;
}

void *mem_alloc_pages(size_t n)
{
    page_allocs++;
    void *p = calloc(n, 4096);
    cr_assert_not_null(p);
    return p;                   /* guest pages are never given back */
}

#include "dd_fake_log.h"

static bool tx_take(void *ctx, const void *frame, uint32_t len)
{
    (void)ctx;
    (void)frame;
    (void)len;
    return true;
}

static const struct dd_nic_ops nic_ops = { .tx = tx_take };

static uint64_t page_up(uint64_t v) { return (v + 4095) & ~4095ull; }

/* moat opens a session of 8 entries on cap in slot i. */
static void vmm_open(uint32_t i, uint32_t cap, uint32_t id)
{
    uint64_t cq_off = page_up(moat_ring_bytes(8, sizeof(struct moat_sqe)));
    uint64_t data_off = cq_off + page_up(moat_ring_bytes(8, sizeof(struct moat_cqe)));
    uint64_t size = data_off + 8 * 2048;
    win[i] = calloc(1, size);
    win_size[i] = size;
    cr_assert_not_null(win[i]);
    cr_assert_eq(moat_ring_format(win[i], cq_off, 8, sizeof(struct moat_sqe)), MOAT_RING_OK);
    cr_assert_eq(moat_ring_format(win[i] + cq_off, data_off - cq_off, 8, sizeof(struct moat_cqe)),
                 MOAT_RING_OK);
    released[i] = false;
    struct moat_session_slot v = {
        .state = MOAT_SLOT_OPEN, .cap_index = cap, .session_id = id,
        .rights = MOAT_RIGHT_READ | MOAT_RIGHT_WRITE,
        .gpa = MOAT_GPA_SESSION_BASE + i * MOAT_SESSION_SPAN, .size = size, .sq_entries = 8,
        .cq_entries = 8, .sq_off = 0, .cq_off = cq_off, .data_off = data_off,
        .data_size = 8 * 2048, .doorbell_gpa = MOAT_GPA_SESSION_DOORBELL + 4ull * i,
    };
    slot_write(i, &v);
}

static void vmm_close(uint32_t i)
{
    struct moat_session_slot v = tbl.slot[i];
    v.state = MOAT_SLOT_CLOSING;
    slot_write(i, &v);
}

static void setup(void)
{
    tbl.magic = MOAT_SESSION_TABLE_MAGIC;
    tbl.version = 1;
    tbl.n_slots = MOAT_SESSION_SLOTS;
}

TestSuite(dd_serve, .init = setup, .timeout = 30.0);

/* Found by fuzz_dd_serve (harness/fuzz/regress/fuzz_dd_serve/
 * nic-session-reopen-leaks-fifos): attach() cleared the slot's session
 * state, including the Nic FIFOs nic_session_open allocates once per slot,
 * so every Nic session opened on a reused slot took 48 fresh pages from
 * the domain's bump allocator, never given back: a client opening and
 * closing sessions ran the domain out of memory (a panic). */
Test(dd_serve, nic_session_reopen_keeps_fifos)
{
    struct moat_nic_info info = { .mac = { 2, 0, 0, 0, 0, 1 }, .mtu = 1500, .max_frame = 1514,
                                  .queues = 1 };
    struct dd_nic *nic = dd_nic_serve("nic0", &info, &nic_ops, NULL);
    cr_assert_not_null(nic);
    cr_assert_not_null(poller);
    unsigned before = page_allocs;
    for (uint32_t round = 0; round < 4; round++) {
        vmm_open(3, 0, 100 + round);
        poller(NULL);
        cr_assert(serve_session(3)->active, "round %u: the session did not open", round);
        vmm_close(3);
        poller(NULL);
        cr_assert(released[3], "round %u: the closed session was not released", round);
        free(win[3]);
        win[3] = NULL;
    }
    cr_assert_eq(page_allocs - before, 2u,
                 "%u page allocations for 4 sessions in one slot; the two FIFOs must be "
                 "allocated once per slot", page_allocs - before);
}

/* Found by fuzz_dd_serve (harness/fuzz/regress/fuzz_dd_serve/
 * session-closed-before-served-never-released): a session moat opened and
 * closed before the domain's next look at the table (or one whose layout
 * it refused) was never released: the domain ignored CLOSING for a
 * session it did not serve, moat waited for the release forever, and the
 * slot was lost (a client opening and closing sessions quickly could use
 * up all 16). */
Test(dd_serve, session_closed_before_served_is_released)
{
    struct moat_nic_info info = { .mac = { 2, 0, 0, 0, 0, 1 }, .mtu = 1500, .max_frame = 1514,
                                  .queues = 1 };
    cr_assert_not_null(dd_nic_serve("nic0", &info, &nic_ops, NULL));
    vmm_open(5, 0, 7);
    vmm_close(5);               /* before the domain looked */
    poller(NULL);
    cr_assert(released[5], "a session closed before it was served must be released");
    cr_assert_eq(tbl.slot[5].state, MOAT_SLOT_FREE);
    cr_assert(!serve_session(5)->active);
    free(win[5]);
    win[5] = NULL;
    /* The slot serves the next session. */
    vmm_open(5, 0, 8);
    poller(NULL);
    cr_assert(serve_session(5)->active && serve_session(5)->id == 8);
    vmm_close(5);
    poller(NULL);
    cr_assert(released[5]);
    free(win[5]);
    win[5] = NULL;
}
