/* The NVMe driver domain's pure logic (driver-domains/nvme/nvme_queue.c,
 * nvme_cmd.c) on the host: CQ phase tags across wraps, CID allocation,
 * exhaustion and staleness, CQE validation, the FIFO of waiting requests,
 * PRP construction, EventIdx doorbell decisions (with wraps), status
 * mapping, timeout selection, IDENTIFY parsing and transfer sizing. */
#define DD_HOST_TEST 1
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include "../../driver-domains/nvme/nvme_cmd.c"
#include "../../driver-domains/nvme/nvme_queue.c"

/* ---- a queue over heap arrays, and a fake controller for its CQ ------------ */

struct fixture {
    struct nvme_queue q;
    struct nvme_sqe *sq;
    struct nvme_cqe *cq;
    struct nvme_slot *slots;
    uint16_t *free_stack;
    uint16_t dev_tail;          /* next CQ entry the fake controller writes */
    uint16_t dev_phase;
    uint16_t dev_sq_head;       /* next SQE the fake controller fetches */
};

static struct fixture fx;

static void fx_make(uint16_t qid, uint16_t entries)
{
    fx.sq = calloc(entries, sizeof *fx.sq);
    fx.cq = calloc(entries, sizeof *fx.cq);
    fx.slots = calloc(entries, sizeof *fx.slots);
    fx.free_stack = calloc(entries, sizeof *fx.free_stack);
    cr_assert(nvme_queue_init(&fx.q, qid, entries, fx.sq, fx.cq, fx.slots, fx.free_stack),
              "a queue of %u entries must initialise", entries);
    fx.dev_tail = 0;
    fx.dev_phase = 1;
    fx.dev_sq_head = 0;
}

static void fx_free(void)
{
    free(fx.sq);
    free(fx.cq);
    free(fx.slots);
    free(fx.free_stack);
    memset(&fx, 0, sizeof fx);
}

/* The controller posts a completion for cid with status sc (SCT|SC). */
static void dev_post(uint16_t sqid, uint16_t cid, uint16_t sc)
{
    struct nvme_cqe *e = &fx.cq[fx.dev_tail];
    e->dw0 = 0xD0D0u;
    e->sqid = sqid;
    e->cid = cid;
    e->sqhd = fx.dev_sq_head;
    e->status = (uint16_t)(sc << 1 | fx.dev_phase);
    if (++fx.dev_tail == fx.q.entries) {
        fx.dev_tail = 0;
        fx.dev_phase ^= 1u;
    }
}

/* The controller fetches the next SQE and returns its CID. */
static uint16_t dev_fetch(void)
{
    cr_assert_neq(fx.dev_sq_head, fx.q.sq_tail, "the fake controller found no SQE to fetch");
    uint16_t cid = fx.sq[fx.dev_sq_head].cid;
    fx.dev_sq_head = (uint16_t)((fx.dev_sq_head + 1u) % fx.q.entries);
    return cid;
}

TestSuite(nvme_queue, .fini = fx_free);

Test(nvme_queue, init_checks_sizes)
{
    struct nvme_queue q;
    struct nvme_sqe sq[2] = { 0 };
    struct nvme_cqe cq[2] = { 0 };
    struct nvme_slot sl[1] = { 0 };
    uint16_t fs[1] = { 0 };
    cr_assert_not(nvme_queue_init(&q, 1, 1, sq, cq, sl, fs), "1 entry is below the minimum of 2");
    cr_assert_not(nvme_queue_init(&q, 1, 4097, sq, cq, sl, fs), "4097 entries exceed 4096");
    cr_assert_not(nvme_queue_init(&q, 1, 2, NULL, cq, sl, fs), "a missing SQ must be refused");
    cr_assert(nvme_queue_init(&q, 1, 2, sq, cq, sl, fs));
    cr_assert_eq(q.depth, 1, "2 entries give 1 command slot, got %u", q.depth);
    fx_make(3, 65);
    cr_assert_eq(fx.q.depth, 64, "qd 64 needs 65 entries: depth %u", fx.q.depth);
    cr_assert_eq(fx.q.cid_bits, 6, "64 slots need 6 index bits, got %u", fx.q.cid_bits);
    cr_assert_eq(fx.q.cq_phase, 1, "a new CQ expects phase 1");
}

Test(nvme_queue, cq_phase_flips_after_entries_completions)
{
    fx_make(1, 4);
    struct nvme_cqe e;
    cr_assert_not(nvme_cq_pop(&fx.q, &e), "a zeroed CQ holds nothing new");
    /* Three laps of the ring, one entry at a time, through real slots. */
    for (unsigned n = 0; n < 3u * fx.q.entries; n++) {
        uint16_t expect_phase = (uint16_t)(1u - (n / fx.q.entries) % 2u);
        cr_assert_eq(fx.q.cq_phase, expect_phase,
                     "after %u completions on a %u-entry CQ the phase must be %u, is %u", n,
                     fx.q.entries, expect_phase, fx.q.cq_phase);
        int s = nvme_slot_alloc(&fx.q, (void *)(uintptr_t)(n + 1), 0, n);
        cr_assert_geq(s, 0, "a slot must be free at step %u", n);
        struct nvme_sqe sqe = { .opc = NVME_IO_READ, .cid = fx.q.slot[s].cid };
        cr_assert(nvme_sq_write(&fx.q, &sqe), "the SQ must take command %u", n);
        dev_post(1, dev_fetch(), NVME_SC_SUCCESS);
        cr_assert(nvme_cq_pop(&fx.q, &e), "completion %u must be seen", n);
        cr_assert_not(nvme_cq_pop(&fx.q, &e), "only one completion was posted at step %u", n);
        uint16_t idx;
        cr_assert_eq(nvme_cqe_check(&fx.q, &e, &idx), NVME_CQE_OK, "completion %u must check", n);
        cr_assert_eq(idx, s, "completion %u names slot %u, not %d", n, idx, s);
        cr_assert_eq(fx.q.slot[idx].req, (void *)(uintptr_t)(n + 1), "slot carries its request");
        fx.q.sq_head = e.sqhd;
        nvme_slot_free(&fx.q, idx);
    }
    cr_assert_eq(fx.q.cq_head, 0, "after 3 laps the head is back at 0");
    cr_assert_eq(fx.q.cq_phase, 0, "after an odd number of laps the phase is 0");
}

Test(nvme_queue, stale_phase_entries_are_not_new)
{
    fx_make(1, 4);
    for (unsigned i = 0; i < 4; i++)
        dev_post(1, 0, 0);
    struct nvme_cqe e;
    for (unsigned i = 0; i < 4; i++)
        cr_assert(nvme_cq_pop(&fx.q, &e), "entry %u of the first lap is new", i);
    cr_assert_eq(fx.q.cq_phase, 0, "the head wrapped: the phase flipped to 0");
    cr_assert_not(nvme_cq_pop(&fx.q, &e),
                  "the first lap's entries (phase 1) must not look new in the second lap");
    dev_post(1, 0x42, 0);
    cr_assert(nvme_cq_pop(&fx.q, &e), "a second-lap entry (phase 0) is new");
    cr_assert_eq(e.cid, 0x42);
    cr_assert_eq(e.dw0, 0xD0D0u, "the whole entry is copied");
}

Test(nvme_queue, cid_allocation_exhaustion_and_staleness)
{
    fx_make(1, 9);              /* 8 slots, 3 index bits */
    uint16_t cids[8];
    for (int i = 0; i < 8; i++) {
        int s = nvme_slot_alloc(&fx.q, &cids[i], 0, 0);
        cr_assert_eq(s, i, "slots are handed out lowest first: expected %d, got %d", i, s);
        cids[i] = fx.q.slot[s].cid;
        cr_assert_eq(cids[i] & 7u, (unsigned)i, "CID 0x%x must carry slot index %d", cids[i], i);
        for (int j = 0; j < i; j++)
            cr_assert_neq(cids[i], cids[j], "CIDs of outstanding commands must differ");
    }
    cr_assert_eq(fx.q.busy, 8);
    cr_assert_eq(nvme_slot_alloc(&fx.q, NULL, 0, 0), -1, "a 9th command must find no slot");
    nvme_slot_free(&fx.q, 5);
    nvme_slot_free(&fx.q, 5);   /* double free is ignored */
    cr_assert_eq(fx.q.busy, 7, "a double free must not corrupt the count");
    int s = nvme_slot_alloc(&fx.q, NULL, 0, 0);
    cr_assert_eq(s, 5, "the freed slot is reused");
    cr_assert_eq(nvme_slot_alloc(&fx.q, NULL, 0, 0), -1, "still exhausted after reuse");
    cr_assert_neq(fx.q.slot[5].cid, cids[5], "a reused slot gets a new CID");
    /* The old command's completion arriving late must not complete the new one. */
    struct nvme_cqe late = { .sqid = 1, .cid = cids[5], .sqhd = 0 };
    uint16_t idx = 99;
    cr_assert_eq(nvme_cqe_check(&fx.q, &late, &idx), NVME_CQE_STALE_CID,
                 "a completion for the slot's previous CID is stale");
    cr_assert_eq(idx, 99, "a rejected CQE leaves idx alone");
    uint16_t before = fx.q.slot[2].cid;
    nvme_slot_reissue(&fx.q, 2, 77);
    cr_assert_neq(fx.q.slot[2].cid, before, "a reissued command gets a new CID");
    cr_assert_eq(fx.q.slot[2].submit_ns, 77, "reissue restamps the submit time");
}

Test(nvme_queue, cid_ffff_is_never_used)
{
    fx_make(1, 2);              /* 1 slot: the CID is all generation */
    for (unsigned i = 0; i < 70000; i++) {
        int s = nvme_slot_alloc(&fx.q, NULL, 0, 0);
        cr_assert_eq(s, 0);
        cr_assert_neq(fx.q.slot[0].cid, 0xFFFFu, "CID FFFFh is reserved, used at round %u", i);
        nvme_slot_free(&fx.q, 0);
    }
}

Test(nvme_queue, cqe_validation)
{
    fx_make(2, 4);              /* 3 slots, 2 index bits: index 3 is out of range */
    int s = nvme_slot_alloc(&fx.q, NULL, 0, 0);
    uint16_t cid = fx.q.slot[s].cid, idx;
    struct nvme_cqe e = { .sqid = 2, .cid = cid, .sqhd = 1 };
    cr_assert_eq(nvme_cqe_check(&fx.q, &e, &idx), NVME_CQE_OK);
    cr_assert_eq(idx, s);
    e.sqid = 1;
    cr_assert_eq(nvme_cqe_check(&fx.q, &e, &idx), NVME_CQE_BAD_SQID, "SQ 1 on CQ 2 is refused");
    e.sqid = 2;
    e.cid = (uint16_t)((cid & ~3u) | 3u);
    cr_assert_eq(nvme_cqe_check(&fx.q, &e, &idx), NVME_CQE_BAD_CID, "index 3 of 3 slots");
    e.cid = (uint16_t)((cid & ~3u) | 1u);
    cr_assert_eq(nvme_cqe_check(&fx.q, &e, &idx), NVME_CQE_STALE_CID, "slot 1 is free");
    e.cid = cid;
    e.sqhd = 4;
    cr_assert_eq(nvme_cqe_check(&fx.q, &e, &idx), NVME_CQE_BAD_SQHD, "SQHD 4 of a 4-entry SQ");
    cr_assert_str_eq(nvme_cqe_verdict_name(NVME_CQE_STALE_CID), "CID not outstanding");
}

Test(nvme_queue, sq_full_only_with_stale_head)
{
    fx_make(1, 4);
    struct nvme_sqe e = { 0 };
    for (unsigned i = 0; i < 3; i++)
        cr_assert(nvme_sq_write(&fx.q, &e), "SQE %u fits a 4-entry SQ", i);
    cr_assert_not(nvme_sq_write(&fx.q, &e), "a 4th SQE would make the ring look empty");
    fx.q.sq_head = 2;
    cr_assert(nvme_sq_write(&fx.q, &e));
    cr_assert_eq(fx.q.sq_tail, 0, "the tail wraps to 0");
    cr_assert(nvme_sq_write(&fx.q, &e));
    cr_assert_eq(fx.q.sq_tail, 1);
}

Test(nvme_queue, rewind_frees_everything_and_keeps_generations)
{
    fx_make(1, 4);
    int s = nvme_slot_alloc(&fx.q, NULL, 0, 0);
    uint16_t old = fx.q.slot[s].cid;
    struct nvme_sqe e = { 0 };
    nvme_sq_write(&fx.q, &e);
    dev_post(1, old, 0);
    struct nvme_cqe c;
    nvme_cq_pop(&fx.q, &c);
    nvme_queue_rewind(&fx.q);
    cr_assert_eq(fx.q.busy, 0);
    cr_assert_eq(fx.q.free_top, 3);
    cr_assert(fx.q.sq_tail == 0 && fx.q.cq_head == 0 && fx.q.cq_phase == 1,
              "rings restart empty with phase 1");
    s = nvme_slot_alloc(&fx.q, NULL, 0, 0);
    cr_assert_eq(s, 0);
    cr_assert_neq(fx.q.slot[0].cid, old, "a CID from before the reset is not reused at once");
}

Test(nvme_queue, timeouts_pick_the_oldest_then_reset)
{
    fx_make(1, 9);
    const uint64_t T = 1000;
    int a = nvme_slot_alloc(&fx.q, NULL, 0, 300);
    int b = nvme_slot_alloc(&fx.q, NULL, 0, 100);
    int c = nvme_slot_alloc(&fx.q, NULL, 0, 200);
    uint16_t idx = 99;
    cr_assert_eq(nvme_queue_timeouts(&fx.q, 1099, T, &idx), NVME_TMO_NONE,
                 "nothing is overdue 999 ns after the oldest submit");
    cr_assert_eq(nvme_queue_timeouts(&fx.q, 5000, T, &idx), NVME_TMO_ABORT);
    cr_assert_eq(idx, b, "the oldest (submitted at 100, slot %d) must be chosen, got slot %u", b,
                 idx);
    fx.q.slot[b].abort_ns = 5000;
    cr_assert_eq(nvme_queue_timeouts(&fx.q, 5000, T, &idx), NVME_TMO_ABORT);
    cr_assert_eq(idx, c, "next the one submitted at 200 (slot %d), got %u", c, idx);
    fx.q.slot[c].abort_ns = 5000;
    fx.q.slot[a].abort_ns = 5000;
    cr_assert_eq(nvme_queue_timeouts(&fx.q, 5999, T, &idx), NVME_TMO_WAIT,
                 "aborted commands within their grace only wait");
    cr_assert_eq(nvme_queue_timeouts(&fx.q, 6000, T, &idx), NVME_TMO_RESET,
                 "a whole timeout after ABORT the controller must be reset");
    nvme_slot_free(&fx.q, (uint16_t)a);
    nvme_slot_free(&fx.q, (uint16_t)b);
    nvme_slot_free(&fx.q, (uint16_t)c);
    cr_assert_eq(nvme_queue_timeouts(&fx.q, 99999, T, &idx), NVME_TMO_NONE, "no busy slots");
}

/* ---- FIFO of waiting requests -------------------------------------------------- */

Test(nvme_fifo, order_front_full_and_wrap)
{
    struct nvme_wait e[4];
    struct nvme_fifo f;
    cr_assert_not(nvme_fifo_init(&f, e, 3), "capacity 3 is not a power of two");
    cr_assert(nvme_fifo_init(&f, e, 4));
    struct nvme_wait w;
    cr_assert_null(nvme_fifo_peek(&f));
    cr_assert_not(nvme_fifo_pop(&f, &w), "an empty FIFO pops nothing");
    int r[6];
    for (int i = 0; i < 4; i++)
        cr_assert(nvme_fifo_push(&f, &r[i], 0));
    cr_assert_not(nvme_fifo_push(&f, &r[4], 0), "a 5th entry does not fit 4");
    cr_assert_not(nvme_fifo_push_front(&f, &r[4], 1), "nor at the front");
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(nvme_fifo_peek(&f)->req, &r[i], "peek shows entry %d", i);
        cr_assert(nvme_fifo_pop(&f, &w));
        cr_assert_eq(w.req, &r[i], "requests leave in arrival order: expected %d", i);
    }
    /* A retry jumps the queue. */
    nvme_fifo_push(&f, &r[0], 0);
    nvme_fifo_push(&f, &r[1], 0);
    nvme_fifo_push_front(&f, &r[5], 1);
    cr_assert_eq(nvme_fifo_len(&f), 3);
    nvme_fifo_pop(&f, &w);
    cr_assert(w.req == &r[5] && w.tries == 1, "the retry (tries 1) comes out first");
    nvme_fifo_pop(&f, &w);
    cr_assert_eq(w.req, &r[0]);
    /* Many laps of the free-running indices. */
    for (int i = 0; i < 10000; i++) {
        cr_assert(nvme_fifo_push(&f, &r[i % 6], (uint8_t)i));
        cr_assert(nvme_fifo_pop(&f, &w));
        cr_assert_eq(w.req, i ? &r[(i - 1) % 6] : &r[1], "lap %d keeps order", i);
    }
}

/* ---- PRPs ------------------------------------------------------------------------- */

#define BUF 0x100000000ull      /* an IOVA above 4 GiB, page aligned */
#define LIST 0x100200000ull

Test(nvme_prp, one_two_three_and_thirty_two_pages)
{
    uint64_t list[NVME_PRP_LIST_ENTRIES], p1, p2;
    memset(list, 0xEE, sizeof list);
    cr_assert_eq(nvme_prp_build(BUF, 512, list, LIST, 512, &p1, &p2), 1);
    cr_assert(p1 == BUF && p2 == 0, "one page: PRP1 = buffer, PRP2 = 0 (got 0x%lx, 0x%lx)",
              (unsigned long)p1, (unsigned long)p2);
    cr_assert_eq(nvme_prp_build(BUF, 4096, list, LIST, 512, &p1, &p2), 1, "4096 bytes: 1 page");
    cr_assert_eq(p2, 0);
    cr_assert_eq(nvme_prp_build(BUF, 8192, list, LIST, 512, &p1, &p2), 2);
    cr_assert_eq(p2, BUF + 4096, "two pages: PRP2 is the second page, got 0x%lx",
                 (unsigned long)p2);
    cr_assert_eq(list[0], 0xEEEEEEEEEEEEEEEEull, "two pages do not touch the list");
    cr_assert_eq(nvme_prp_build(BUF, 12288, list, LIST, 512, &p1, &p2), 3);
    cr_assert_eq(p2, LIST, "three pages: PRP2 points at the list");
    cr_assert(list[0] == BUF + 4096 && list[1] == BUF + 8192, "list = pages 2 and 3");
    cr_assert_eq(list[2], 0xEEEEEEEEEEEEEEEEull, "nothing written past the last entry");
    cr_assert_eq(nvme_prp_build(BUF, 128u << 10, list, LIST, 512, &p1, &p2), 32);
    cr_assert(p1 == BUF && p2 == LIST);
    for (unsigned i = 0; i < 31; i++)
        cr_assert_eq(list[i], BUF + (i + 1u) * 4096u, "entry %u must be page %u", i, i + 2);
    cr_assert_eq(list[31], 0xEEEEEEEEEEEEEEEEull, "32 pages use exactly 31 list entries");
    cr_assert_eq(nvme_prp_build(BUF, 2u << 20, list, LIST, 512, &p1, &p2), 512,
                 "2 MiB fills one list page (511 entries)");
    cr_assert_eq(list[510], BUF + 511u * 4096u);
}

Test(nvme_prp, offset_buffers)
{
    uint64_t list[8], p1, p2;
    cr_assert_eq(nvme_prp_build(BUF + 512, 4096 - 512, list, LIST, 8, &p1, &p2), 1,
                 "an offset transfer ending at the page end is one page");
    cr_assert(p1 == BUF + 512 && p2 == 0, "PRP1 keeps the offset");
    cr_assert_eq(nvme_prp_build(BUF + 512, 4096, list, LIST, 8, &p1, &p2), 2,
                 "4096 bytes at offset 512 straddle two pages");
    cr_assert_eq(p2, BUF + 4096, "PRP2 is the next page base, not offset");
    cr_assert_eq(nvme_prp_build(BUF + 512, 8192, list, LIST, 8, &p1, &p2), 3);
    cr_assert(p2 == LIST && list[0] == BUF + 4096 && list[1] == BUF + 8192,
              "list entries are page bases after an offset PRP1");
}

Test(nvme_prp, refusals)
{
    uint64_t list[2], p1 = 1, p2 = 1;
    cr_assert_eq(nvme_prp_build(BUF, 0, list, LIST, 2, &p1, &p2), 0, "empty transfer");
    cr_assert_eq(nvme_prp_build(BUF + 2, 512, list, LIST, 2, &p1, &p2), 0, "not dword aligned");
    cr_assert_eq(nvme_prp_build(BUF, 4u * 4096u, list, LIST, 2, &p1, &p2), 0,
                 "4 pages need 3 list entries, only 2 given");
    cr_assert_eq(nvme_prp_build(BUF, 3u * 4096u, list, LIST + 4, 2, &p1, &p2), 0,
                 "a list that is not qword aligned");
    cr_assert_eq(nvme_prp_build(UINT64_MAX - 4095, 8192, list, LIST, 2, &p1, &p2), 0,
                 "a buffer that wraps 64 bits");
}

/* ---- doorbells ---------------------------------------------------------------------- */

static bool need(uint16_t ei, uint16_t new_idx, uint16_t old)
{
    uint32_t shadow = old, event = ei;
    bool r = nvme_db_publish(&shadow, &event, new_idx, old);
    cr_assert_eq(shadow, new_idx, "the shadow doorbell must hold the new value");
    return r;
}

Test(nvme_doorbell, eventidx_decisions)
{
    /* old 5 -> new 8: an MMIO write exactly when EventIdx is in [5, 8). */
    for (uint16_t ei = 0; ei < 12; ei++)
        cr_assert_eq(need(ei, 8, 5), ei >= 5 && ei < 8,
                     "old 5 new 8 EventIdx %u: MMIO %s expected", ei,
                     ei >= 5 && ei < 8 ? "is" : "is not");
    cr_assert_not(need(4, 8, 5), "a polling controller (EventIdx one behind what it saw) "
                                 "needs no doorbell");
    cr_assert(need(5, 6, 5), "a sleeping controller (EventIdx = what it saw) needs one");
}

Test(nvme_doorbell, eventidx_across_ring_wrap)
{
    /* A 65-entry ring: tail 63 -> 1 passes 63, 64, 0. */
    for (uint16_t ei = 0; ei < 65; ei++) {
        bool want = ei == 63 || ei == 64 || ei == 0;
        cr_assert_eq(need(ei, 1, 63), want, "ring wrap 63 -> 1, EventIdx %u: MMIO %s expected",
                     ei, want ? "is" : "is not");
    }
    /* And the 16-bit wrap of the arithmetic itself. */
    cr_assert(need(65535, 2, 65534));
    cr_assert(need(0, 2, 65534));
    cr_assert(need(1, 2, 65534));
    cr_assert_not(need(2, 2, 65534));
    cr_assert_not(need(65533, 2, 65534));
}

/* ---- commands ----------------------------------------------------------------------- */

Test(nvme_cmd, io_sqes)
{
    struct nvme_sqe e;
    memset(&e, 0xAB, sizeof e);
    cr_assert(nvme_sqe_rw(&e, NVME_IO_READ, 1, 0x123456789ull, 8, BUF, LIST));
    cr_assert(e.opc == NVME_IO_READ && e.nsid == 1 && e.flags == 0 && e.cid == 0);
    cr_assert(e.cdw10 == 0x23456789u && e.cdw11 == 0x1u, "SLBA split over CDW10/11");
    cr_assert_eq(e.cdw12, 7, "NLB is 0-based: 8 blocks -> 7, got %u", e.cdw12);
    cr_assert(e.prp1 == BUF && e.prp2 == LIST && e.mptr == 0 && e.cdw13 == 0);
    cr_assert_not(nvme_sqe_rw(&e, NVME_IO_WRITE, 1, 0, 0, BUF, 0), "0 blocks");
    cr_assert_not(nvme_sqe_rw(&e, NVME_IO_WRITE, 1, 0, 65537, BUF, 0), "65537 blocks");
    cr_assert(nvme_sqe_write_zeroes(&e, 1, 10, 65536));
    cr_assert(e.opc == NVME_IO_WRITE_ZEROES && e.cdw12 == 0xFFFF && e.prp1 == 0);
    nvme_sqe_flush(&e, 1);
    cr_assert(e.opc == NVME_IO_FLUSH && e.nsid == 1 && e.cdw10 == 0);
    struct nvme_dsm_range r;
    cr_assert(nvme_sqe_discard(&e, 1, &r, BUF, 1000, 0x10000000u));
    cr_assert(e.opc == NVME_IO_DSM && e.prp1 == BUF && e.cdw10 == 0 && e.cdw11 == NVME_DSM_AD,
              "DSM: one range (NR 0), deallocate");
    cr_assert(r.slba == 1000 && r.nlb == 0x10000000u && r.cattr == 0, "range NLB is 1-based");
}

Test(nvme_cmd, admin_sqes)
{
    struct nvme_sqe e;
    cr_assert(nvme_sqe_create_cq(&e, 2, 65, BUF, 2));
    cr_assert(e.opc == NVME_ADM_CREATE_CQ && e.prp1 == BUF);
    cr_assert_eq(e.cdw10, 2u | 64u << 16, "QID 2, size 65 -> 64 (0-based)");
    cr_assert_eq(e.cdw11, NVME_QUEUE_PC | NVME_CQ_IEN | 2u << 16, "PC, IEN, IV 2");
    cr_assert_not(nvme_sqe_create_cq(&e, 0, 65, BUF, 0), "QID 0 is the admin queue");
    cr_assert_not(nvme_sqe_create_cq(&e, 1, 65, BUF + 8, 1), "queue memory is page aligned");
    cr_assert(nvme_sqe_create_sq(&e, 3, 2, BUF, 3));
    cr_assert(e.opc == NVME_ADM_CREATE_SQ && e.cdw10 == (3u | 1u << 16) &&
              e.cdw11 == (NVME_QUEUE_PC | 3u << 16));
    nvme_sqe_abort(&e, 4, 0x1234);
    cr_assert(e.opc == NVME_ADM_ABORT && e.cdw10 == (4u | 0x1234u << 16), "SQID | CID << 16");
    nvme_sqe_dbbuf(&e, BUF, BUF + 4096);
    cr_assert(e.opc == NVME_ADM_DBBUF_CONFIG && e.prp1 == BUF && e.prp2 == BUF + 4096);
    nvme_sqe_set_features(&e, NVME_FEAT_NUM_QUEUES, 0x00010001u);
    cr_assert(e.opc == NVME_ADM_SET_FEATURES && e.cdw10 == NVME_FEAT_NUM_QUEUES &&
              e.cdw11 == 0x00010001u);
    nvme_sqe_identify(&e, NVME_CNS_NAMESPACE, 1, BUF);
    cr_assert(e.opc == NVME_ADM_IDENTIFY && e.nsid == 1 && e.cdw10 == 0 && e.prp1 == BUF);
}

Test(nvme_cmd, status_mapping)
{
    static const struct { uint16_t sc; uint32_t st; } m[] = {
        { NVME_SC_SUCCESS, MOAT_ST_OK },
        { NVME_SC_LBA_RANGE, MOAT_ST_ERANGE },
        { NVME_SC_INVALID_FIELD, MOAT_ST_EINVAL },
        { NVME_SC_INVALID_OPCODE, MOAT_ST_EINVAL },
        { NVME_SC_INVALID_PRP_OFFSET, MOAT_ST_EINVAL },
        { NVME_SC_NS_WRITE_PROTECTED, MOAT_ST_EROFS },
        { NVME_SC_READ_ONLY_RANGE, MOAT_ST_EROFS },
        { NVME_SC_DATA_XFER_ERROR, MOAT_ST_EIO },
        { NVME_SC_ABORT_REQ, MOAT_ST_EIO },
        { NVME_SC_WRITE_FAULT, MOAT_ST_EIO },
        { NVME_SC_READ_ERROR, MOAT_ST_EIO },
        { NVME_SC_INTERNAL, MOAT_ST_EIO },
        { NVME_STATUS(7, 0xFF), MOAT_ST_EIO },
    };
    for (unsigned i = 0; i < sizeof m / sizeof m[0]; i++)
        cr_assert_eq(nvme_status_to_moat(m[i].sc), m[i].st,
                     "NVMe status 0x%x (%s) must map to moat status %u, got %u", m[i].sc,
                     nvme_status_name(m[i].sc), m[i].st, nvme_status_to_moat(m[i].sc));
    cr_assert_str_eq(nvme_status_name(NVME_SC_LBA_RANGE), "LBA out of range");
    cr_assert_str_eq(nvme_status_name(0x7FF), "unknown status");
    /* NVME_CQE_STATUS strips phase and DNR as the driver sees them. */
    uint16_t raw = (uint16_t)(NVME_SC_LBA_RANGE << 1 | 1u | NVME_CQE_DNR);
    cr_assert_eq(nvme_status_to_moat(NVME_CQE_STATUS(raw)), MOAT_ST_ERANGE);
}

/* ---- IDENTIFY and sizing ---------------------------------------------------------- */

Test(nvme_identify, controller_fields)
{
    uint8_t *p = calloc(1, 4096);
    memcpy(p + NVME_IDC_SN, "SN-0001             ", 20);
    memcpy(p + NVME_IDC_MN, "moat NVMe\001                              ", 40);
    memcpy(p + NVME_IDC_FR, "1.0     ", 8);
    p[NVME_IDC_MDTS] = 5;
    p[NVME_IDC_OACS] = 0x00;
    p[NVME_IDC_OACS + 1] = 0x01;        /* bit 8: DBBUF */
    p[NVME_IDC_ONCS] = NVME_ONCS_DSM | NVME_ONCS_WZ;
    p[NVME_IDC_VWC] = 1;
    p[NVME_IDC_ACL] = 3;
    p[NVME_IDC_NN] = 1;
    struct nvme_id_ctrl c;
    nvme_parse_id_ctrl(p, &c);
    cr_assert_str_eq(c.sn, "SN-0001", "trailing spaces are trimmed: '%s'", c.sn);
    cr_assert_str_eq(c.mn, "moat NVMe?", "control bytes become '?': '%s'", c.mn);
    cr_assert_str_eq(c.fr, "1.0");
    cr_assert(c.mdts == 5 && c.acl == 3 && c.vwc == 1 && c.nn == 1);
    cr_assert(c.oacs & NVME_OACS_DBBUF, "OACS bit 8 read from byte 257");
    cr_assert_eq(c.oncs, NVME_ONCS_DSM | NVME_ONCS_WZ);
    free(p);
}

Test(nvme_identify, namespace_format)
{
    uint8_t *p = calloc(1, 4096);
    uint64_t nsze = 131072;
    memcpy(p + NVME_IDNS_NSZE, &nsze, 8);
    p[NVME_IDNS_NLBAF] = 1;             /* two formats */
    p[NVME_IDNS_FLBAS] = 0x11;          /* format 1 (bit 4: metadata at end, ignored) */
    uint32_t f0 = 9u << 16, f1 = 12u << 16;
    memcpy(p + NVME_IDNS_LBAF0, &f0, 4);
    memcpy(p + NVME_IDNS_LBAF0 + 4, &f1, 4);
    struct nvme_id_ns ns;
    nvme_parse_id_ns(p, &ns);
    cr_assert(ns.fmt_valid && ns.fmt == 1);
    cr_assert_eq(ns.lbads, 12, "format 1 has 4096-byte blocks, got 2^%u", ns.lbads);
    cr_assert(ns.nsze == nsze && ns.ms == 0);
    cr_assert_not(ns.write_protected, "NSATTR 0: writable");
    p[NVME_IDNS_NSATTR] = NVME_NSATTR_WP;
    nvme_parse_id_ns(p, &ns);
    cr_assert(ns.write_protected, "NSATTR bit 0: write protected");
    p[NVME_IDNS_FLBAS] = 2;
    nvme_parse_id_ns(p, &ns);
    cr_assert_not(ns.fmt_valid, "format 2 of 2 (NLBAF 1) is invalid");
    uint32_t fm = 9u << 16 | 8u;
    memcpy(p + NVME_IDNS_LBAF0, &fm, 4);
    p[NVME_IDNS_FLBAS] = 0;
    nvme_parse_id_ns(p, &ns);
    cr_assert_eq(ns.ms, 8, "8 metadata bytes reported for the driver to refuse");
    free(p);
}

Test(nvme_identify, max_transfer)
{
    cr_assert_eq(nvme_max_transfer(128u << 10, 5, 512), 128u << 10, "MDTS 5 = 128 KiB");
    cr_assert_eq(nvme_max_transfer(128u << 10, 3, 512), 32u << 10, "MDTS 3 caps at 32 KiB");
    cr_assert_eq(nvme_max_transfer(8u << 20, 0, 512), 2u << 20,
                 "no MDTS: one PRP list page (2 MiB) is the cap");
    cr_assert_eq(nvme_max_transfer(100u << 10, 0, 65536), 65536,
                 "rounded down to whole 64 KiB blocks");
    cr_assert_eq(nvme_max_transfer(32u << 10, 0, 65536), 0, "not one 64 KiB block fits");
    cr_assert_eq(nvme_max_transfer(6000, 0, 512), 5632, "rounded down to 512-byte blocks");
    cr_assert_eq(nvme_max_transfer(4096, 0, 3000), 0, "block size must be a power of two");
}
