/* Client side of the session protocol (shared/libmoat/session.c) without a
 * VMM or KVM: the test builds the session memory the way capsvc_layout does,
 * attaches libmoat to it with moat__session_attach and plays the serving
 * domain through its own ring views (SQ consumer, CQ producer). Covers the
 * ring protocol (empty, full, wrap, batches, kicks and their suppression,
 * out-of-order completions, data movement), the client's request
 * validation, refusal of every kind of malformed completion (the session
 * fails with EPROTO and never uses the bad completion's data), mapping of
 * well-formed error statuses, and moat_wait's timeout and wake-up, including
 * against a fake domain running in another thread. */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>
#include "libmoat_internal.h"
#include "moat/ring.h"
#include "moat/session_abi.h"

#define BS 512u                 /* block size */
#define NBLOCKS 4096u           /* device capacity */
#define MAXB 16u                /* the domain's max_blocks */
#define PAGE_SZ 4096ull
#define MAXE 64u                /* largest ring any test uses */
#define FILL_USER 0x5Au         /* user buffers start as this */
#define FILL_DOM 0xEEu          /* what the domain leaves in the data area */

/* ---- fixture: session memory, eventfds, the client, the domain's views ------------ */

static struct {
    uint8_t *mem;
    struct moat_session_reply l;
    struct moat_blk_geometry geo;
    int kick, notify;
    struct moat_session *s;
    struct moat_ring sq, cq;    /* the fake domain's side */
    void *bufs[16];             /* freed at teardown */
    unsigned n_bufs;
} F = { .kick = -1, .notify = -1 };

static uint64_t page_up(uint64_t v) { return (v + PAGE_SZ - 1) & ~(PAGE_SZ - 1); }

/* capsvc_layout's arithmetic (vmm/capsvc.c). */
static void layout(uint32_t entries, uint64_t data_size, struct moat_session_reply *out)
{
    memset(out, 0, sizeof *out);
    out->session_id = 7;
    out->entries = entries;
    out->sq_off = 0;
    out->cq_off = page_up(moat_ring_bytes(entries, sizeof(struct moat_sqe)));
    out->data_off = out->cq_off + page_up(moat_ring_bytes(entries, sizeof(struct moat_cqe)));
    out->data_size = data_size;
    out->size = out->data_off + data_size;
}

static void fixture_close(void)
{
    if (F.s)
        moat__session_detach(F.s);
    F.s = NULL;
    free(F.mem);
    F.mem = NULL;
    if (F.kick >= 0)
        close(F.kick);
    if (F.notify >= 0)
        close(F.notify);
    F.kick = F.notify = -1;
    for (unsigned i = 0; i < F.n_bufs; i++)
        free(F.bufs[i]);
    F.n_bufs = 0;
}

/* Build a fresh session of this shape (replacing the current one). */
static void open_session(uint32_t entries, uint32_t flags, uint32_t rights)
{
    fixture_close();
    layout(entries, (uint64_t)entries * MAXB * BS, &F.l);
    F.mem = aligned_alloc(PAGE_SZ, F.l.size);
    cr_assert_not_null(F.mem, "cannot allocate %llu bytes of session memory",
                       (unsigned long long)F.l.size);
    memset(F.mem, 0, F.l.size);
    cr_assert_eq(moat_ring_format(F.mem + F.l.sq_off, F.l.cq_off - F.l.sq_off, entries,
                                  sizeof(struct moat_sqe)), MOAT_RING_OK, "SQ format failed");
    cr_assert_eq(moat_ring_format(F.mem + F.l.cq_off, F.l.data_off - F.l.cq_off, entries,
                                  sizeof(struct moat_cqe)), MOAT_RING_OK, "CQ format failed");
    F.kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    F.notify = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    cr_assert(F.kick >= 0 && F.notify >= 0, "eventfd: %s", strerror(errno));
    F.geo = (struct moat_blk_geometry){ .block_size = BS, .max_blocks = MAXB, .blocks = NBLOCKS,
                                        .flags = flags, .queues = 1 };
    int rc = moat__session_attach(F.mem, &F.l, F.kick, F.notify, &F.geo, rights, &F.s);
    cr_assert_eq(rc, 0, "moat__session_attach failed: %d", rc);
    cr_assert_eq(moat_ring_attach(&F.sq, F.mem + F.l.sq_off, F.l.cq_off - F.l.sq_off, entries,
                                  sizeof(struct moat_sqe), MOAT_RING_CONSUMER), MOAT_RING_OK,
                 "domain cannot attach the SQ");
    cr_assert_eq(moat_ring_attach(&F.cq, F.mem + F.l.cq_off, F.l.data_off - F.l.cq_off, entries,
                                  sizeof(struct moat_cqe), MOAT_RING_PRODUCER), MOAT_RING_OK,
                 "domain cannot attach the CQ");
    cr_assert_eq(moat_session_max_blocks(F.s), MAXB, "max_blocks %u, expected %u",
                 moat_session_max_blocks(F.s), MAXB);
}

#define ALL_FLAGS (MOAT_BLK_F_FLUSH | MOAT_BLK_F_WRITE_ZEROES | MOAT_BLK_F_DISCARD)
#define RW (MOAT_RIGHT_READ | MOAT_RIGHT_WRITE)

static void setup(void) { open_session(8, ALL_FLAGS, RW); }
static void teardown(void) { fixture_close(); }
TestSuite(session_proto, .init = setup, .fini = teardown, .timeout = 30.0);

/* ---- helpers: the client ---------------------------------------------------------- */

static uint8_t *user_buf(uint32_t blocks)
{
    cr_assert_lt(F.n_bufs, 16u, "test uses too many buffers");
    /* Exact size, so ASan catches a copy longer than the request. */
    uint8_t *b = malloc((size_t)blocks * BS);
    cr_assert_not_null(b);
    memset(b, FILL_USER, (size_t)blocks * BS);
    F.bufs[F.n_bufs++] = b;
    return b;
}

static int submit1(uint16_t op, uint64_t lba, uint32_t blocks, void *buf, uint64_t ud)
{
    struct moat_blk_req r = { .op = op, .lba = lba, .blocks = blocks, .buf = buf, .user_data = ud };
    return moat_blk_submit(F.s, &r, 1);
}

static struct moat_session_stats stats(void)
{
    struct moat_session_stats st;
    moat_session_stats(F.s, &st);
    return st;
}

/* Kicks waiting on the kick eventfd (reading resets the counter). */
static uint64_t kicks_pending(void)
{
    uint64_t v = 0;
    if (read(F.kick, &v, sizeof v) != sizeof v) {
        cr_assert_eq(errno, EAGAIN, "read(kick): %s", strerror(errno));
        return 0;
    }
    return v;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void assert_filled(const uint8_t *b, size_t len, uint8_t v, const char *what)
{
    for (size_t i = 0; i < len; i++)
        cr_assert_eq(b[i], v, "%s: byte %zu is 0x%02x, expected 0x%02x", what, i, b[i], v);
}

/* Byte off of block lba in a pattern (salt tells client from domain data). */
static uint8_t pat(uint64_t lba, size_t off, uint8_t salt)
{
    return (uint8_t)(lba * 31u + off * 7u + (off >> 8) + salt);
}

static void fill_pat(uint8_t *b, uint64_t lba, uint32_t blocks, uint8_t salt)
{
    for (uint32_t k = 0; k < blocks; k++)
        for (size_t j = 0; j < BS; j++)
            b[(size_t)k * BS + j] = pat(lba + k, j, salt);
}

static bool check_pat(const uint8_t *b, uint64_t lba, uint32_t blocks, uint8_t salt)
{
    for (uint32_t k = 0; k < blocks; k++)
        for (size_t j = 0; j < BS; j++)
            if (b[(size_t)k * BS + j] != pat(lba + k, j, salt))
                return false;
    return true;
}

/* ---- helpers: the fake domain ------------------------------------------------------ */

static uint32_t dom_avail(void)
{
    uint32_t n = 0;
    cr_assert_eq(moat_ring_avail(&F.sq, &n), MOAT_RING_OK, "domain: the SQ is corrupt");
    return n;
}

/* Take exactly n requests off the SQ. */
static void dom_take(struct moat_sqe *out, uint32_t n)
{
    uint32_t a = dom_avail();
    cr_assert_eq(a, n, "domain: expected %u requests in the SQ, found %u", n, a);
    for (uint32_t i = 0; i < n; i++)
        memcpy(&out[i], moat_ring_peek(&F.sq, i), sizeof out[i]);
    bool k;
    cr_assert_eq(moat_ring_consume(&F.sq, n, &k), MOAT_RING_OK, "domain: consume failed");
}

/* The data buffer a request names, checked to lie inside the data area. */
static uint8_t *dom_buf(const struct moat_sqe *e)
{
    cr_assert(e->buf_off + (uint64_t)e->blocks * BS <= F.l.data_size,
              "request buffer [%llu, +%u blocks) outside the %llu-byte data area",
              (unsigned long long)e->buf_off, e->blocks, (unsigned long long)F.l.data_size);
    return F.mem + F.l.data_off + e->buf_off;
}

/* Publish one completion; returns whether the client asked for a kick. */
static bool dom_complete(uint64_t tag, uint32_t status, uint32_t blocks)
{
    uint32_t sp = 0;
    cr_assert_eq(moat_ring_space(&F.cq, &sp), MOAT_RING_OK, "domain: the CQ is corrupt");
    cr_assert_gt(sp, 0u, "domain: the CQ is full");
    struct moat_cqe c = { .tag = tag, .status = status, .blocks = blocks };
    memcpy(moat_ring_slot(&F.cq, 0), &c, sizeof c);
    bool k = false;
    cr_assert_eq(moat_ring_publish(&F.cq, 1, &k), MOAT_RING_OK, "domain: publish failed");
    return k;
}

static int poll_all(struct moat_completion *out, size_t max)
{
    return moat_poll(F.s, out, max);
}

/* ===================================================================================
 * Ring protocol
 * =================================================================================== */

Test(session_proto, empty_session_polls_and_waits_zero)
{
    struct moat_completion out[4];
    cr_assert_eq(moat_inflight(F.s), 0u, "fresh session has %u in flight", moat_inflight(F.s));
    cr_assert_eq(poll_all(out, 4), 0, "poll on an empty session returned completions");
    uint64_t t0 = now_ms();
    int rc = moat_wait(F.s, out, 4, -1);
    cr_assert_eq(rc, 0, "wait with nothing in flight must return 0 at once, got %d", rc);
    cr_assert_lt(now_ms() - t0, 1000u, "wait with nothing in flight slept");
    cr_assert_eq(moat_wait(F.s, out, 0, -1), 0, "wait with max 0 must return 0");
    cr_assert_eq(moat_blk_submit(F.s, NULL, 0), 0, "submitting nothing must return 0");
    struct moat_session_stats st = stats();
    cr_assert(st.submitted == 0 && st.completed == 0 && st.kicks_sent == 0 && st.malformed == 0,
              "fresh session has non-zero stats");
    cr_assert_eq(dom_avail(), 0u, "domain sees requests nobody submitted");
}

Test(session_proto, full_ring_queues_entries_then_ebusy)
{
    struct moat_blk_req r[11];
    for (unsigned i = 0; i < 11; i++)
        r[i] = (struct moat_blk_req){ .op = MOAT_BLK_WRITE_ZEROES, .lba = i, .blocks = 1,
                                      .user_data = 100 + i };
    int rc = moat_blk_submit(F.s, r, 11);
    cr_assert_eq(rc, 8, "11 requests into an 8-entry ring: expected 8 queued, got %d", rc);
    cr_assert_eq(moat_inflight(F.s), 8u, "inflight %u, expected 8", moat_inflight(F.s));
    rc = moat_blk_submit(F.s, &r[8], 1);
    cr_assert_eq(rc, -MOAT_EBUSY, "submit on a full ring: expected -MOAT_EBUSY, got %d", rc);
    cr_assert_eq(dom_avail(), 8u, "the SQ holds %u entries, expected 8", dom_avail());
    cr_assert_eq(stats().submitted, 8u, "submitted counts %llu", (unsigned long long)stats().submitted);
    /* The first 8 went in, in order. */
    struct moat_sqe e[8];
    dom_take(e, 8);
    for (unsigned i = 0; i < 8; i++)
        cr_assert_eq(e[i].lba, i, "entry %u has lba %llu", i, (unsigned long long)e[i].lba);
    /* Consumed but not completed: the ring has room, the request slots do not. */
    rc = moat_blk_submit(F.s, &r[8], 1);
    cr_assert_eq(rc, -MOAT_EBUSY, "8 requests outstanding: expected -MOAT_EBUSY, got %d", rc);
    dom_complete(e[0].tag, MOAT_ST_OK, 1);
    struct moat_completion c[8];
    cr_assert_eq(poll_all(c, 8), 1);
    cr_assert_eq(c[0].user_data, 100u);
    rc = moat_blk_submit(F.s, &r[8], 3);
    cr_assert_eq(rc, 1, "one slot free: expected 1 queued, got %d", rc);
}

Test(session_proto, wrap_thousands_through_8_entry_ring)
{
    enum { TOTAL = 5000 };
    uint64_t rng = 0x9E3779B97F4A7C15ull;
#define RND() (rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17, rng)
    uint8_t *bufs[16];
    for (unsigned i = 0; i < 16; i++)
        bufs[i] = user_buf(4);
    static bool seen[TOTAL];
    memset(seen, 0, sizeof seen);
    uint64_t next = 0, done = 0;
    while (done < TOTAL) {
        /* Client: a batch of 1..8 reads and writes. */
        struct moat_blk_req r[8];
        uint32_t k = 1 + (uint32_t)(RND() % 8);
        if (k > TOTAL - next)
            k = (uint32_t)(TOTAL - next);
        for (uint32_t i = 0; i < k; i++) {
            uint64_t ud = next + i;
            uint16_t op = ud % 3 == 0 ? MOAT_BLK_WRITE : MOAT_BLK_READ;
            uint64_t lba = (ud * 7) % (NBLOCKS - 4);
            uint32_t blocks = 1 + (uint32_t)(ud % 4);
            if (op == MOAT_BLK_WRITE)
                fill_pat(bufs[ud % 16], lba, blocks, 0x11);
            else
                memset(bufs[ud % 16], FILL_USER, 4 * BS);
            r[i] = (struct moat_blk_req){ .op = op, .lba = lba, .blocks = blocks,
                                          .buf = bufs[ud % 16], .user_data = ud };
        }
        int q = k ? moat_blk_submit(F.s, r, k) : 0;
        cr_assert(q >= 0, "submit failed with %d after %llu requests", q, (unsigned long long)next);
        next += (uint64_t)q;
        /* Domain: take everything, serve it, complete in a shuffled order. */
        uint32_t n = dom_avail();
        struct moat_sqe e[8];
        dom_take(e, n);
        for (uint32_t i = 0; i < n; i++) {
            cr_assert(e[i].op == MOAT_BLK_READ || e[i].op == MOAT_BLK_WRITE, "bad op %u", e[i].op);
            uint8_t *d = dom_buf(&e[i]);
            if (e[i].op == MOAT_BLK_WRITE)
                cr_assert(check_pat(d, e[i].lba, e[i].blocks, 0x11),
                          "write data for lba %llu is not what the client wrote",
                          (unsigned long long)e[i].lba);
            else
                fill_pat(d, e[i].lba, e[i].blocks, 0x77);
        }
        for (uint32_t i = n; i > 1; i--) {
            uint32_t j = (uint32_t)(RND() % i);
            struct moat_sqe t = e[i - 1];
            e[i - 1] = e[j];
            e[j] = t;
        }
        for (uint32_t i = 0; i < n; i++)
            dom_complete(e[i].tag, MOAT_ST_OK, e[i].blocks);
        /* Client: collect them, a few at a time. */
        uint32_t got = 0;
        while (got < n) {
            struct moat_completion c[8];
            int m = poll_all(c, 1 + RND() % 8);
            cr_assert(m > 0, "poll returned %d with %u completions pending", m, n - got);
            for (int i = 0; i < m; i++) {
                uint64_t ud = c[i].user_data;
                cr_assert_lt(ud, (uint64_t)TOTAL, "unknown user_data %llu", (unsigned long long)ud);
                cr_assert(!seen[ud], "user_data %llu completed twice", (unsigned long long)ud);
                seen[ud] = true;
                cr_assert_eq(c[i].status, 0, "request %llu failed: %d", (unsigned long long)ud,
                             c[i].status);
                cr_assert_eq(c[i].blocks, 1 + (uint32_t)(ud % 4),
                             "request %llu: %u blocks returned, it asked for %u",
                             (unsigned long long)ud, c[i].blocks, 1 + (uint32_t)(ud % 4));
                if (ud % 3 != 0)
                    cr_assert(check_pat(bufs[ud % 16], (ud * 7) % (NBLOCKS - 4),
                                        1 + (uint32_t)(ud % 4), 0x77),
                              "read %llu got another request's data", (unsigned long long)ud);
            }
            got += (uint32_t)m;
        }
        done += n;
    }
#undef RND
    cr_assert_eq(moat_inflight(F.s), 0u);
    struct moat_session_stats st = stats();
    cr_assert(st.submitted == TOTAL && st.completed == TOTAL,
              "stats: submitted %llu completed %llu, expected %d", (unsigned long long)st.submitted,
              (unsigned long long)st.completed, TOTAL);
    cr_assert_eq(st.malformed, 0u);
    uint32_t prod = __atomic_load_n(&F.sq.sh->prod, __ATOMIC_ACQUIRE);
    cr_assert_eq(prod, (uint32_t)TOTAL, "SQ producer index %u: indices did not run past the ring", prod);
    cr_assert_eq(__atomic_load_n(&F.cq.sh->cons, __ATOMIC_ACQUIRE), (uint32_t)TOTAL,
                 "CQ consumer index did not reach %d", TOTAL);
}

Test(session_proto, batch_of_32_kicks_once_when_armed)
{
    open_session(64, ALL_FLAGS, RW);
    cr_assert(moat_ring_arm(&F.sq), "domain: arming an empty SQ must report idle");
    struct moat_blk_req r[32];
    for (unsigned i = 0; i < 32; i++)
        r[i] = (struct moat_blk_req){ .op = MOAT_BLK_DISCARD, .lba = i, .blocks = 1, .user_data = i };
    int rc = moat_blk_submit(F.s, r, 32);
    cr_assert_eq(rc, 32, "expected 32 queued, got %d", rc);
    uint64_t k = kicks_pending();
    cr_assert_eq(k, 1u, "a batch of 32 to an armed domain must kick exactly once, counter %llu",
                 (unsigned long long)k);
    cr_assert_eq(stats().kicks_sent, 1u, "kicks_sent %llu", (unsigned long long)stats().kicks_sent);
    /* Not re-armed: the next batch is not kicked. */
    rc = moat_blk_submit(F.s, r, 16);
    cr_assert_eq(rc, 16);
    cr_assert_eq(kicks_pending(), 0u, "kicked a domain that did not re-arm");
    /* The domain drains, re-arms: one more kick for the next batch. */
    struct moat_sqe e[48];
    dom_take(e, 48);
    cr_assert(moat_ring_arm(&F.sq), "domain: SQ not idle after draining");
    rc = moat_blk_submit(F.s, r, 8);
    cr_assert_eq(rc, 8, "expected 8 queued, got %d", rc);
    cr_assert_eq(kicks_pending(), 1u, "re-armed domain was not kicked once");
    cr_assert_eq(stats().kicks_sent, 2u, "kicks_sent %llu, expected 2",
                 (unsigned long long)stats().kicks_sent);
}

Test(session_proto, no_kick_when_domain_did_not_arm)
{
    /* The domain says "kick me at an index already passed" (no event). */
    __atomic_store_n(&F.sq.sh->cons_event, 0xFFFFFFFFu, __ATOMIC_RELEASE);
    for (unsigned i = 0; i < 3; i++)
        cr_assert_eq(submit1(MOAT_BLK_DISCARD, i, 1, NULL, i), 1);
    cr_assert_eq(stats().kicks_sent, 0u, "kicked a domain that asked for none: kicks_sent %llu",
                 (unsigned long long)stats().kicks_sent);
    cr_assert_eq(kicks_pending(), 0u, "the kick eventfd was written");
    /* The domain consumes without arming: still no kick. */
    struct moat_sqe e[3];
    dom_take(e, 3);
    cr_assert_eq(submit1(MOAT_BLK_DISCARD, 9, 1, NULL, 9), 1);
    cr_assert_eq(stats().kicks_sent, 0u, "kicked a domain that did not arm");
    /* Arms: kicked. */
    struct moat_sqe e1;
    dom_take(&e1, 1);
    cr_assert(moat_ring_arm(&F.sq));
    cr_assert_eq(submit1(MOAT_BLK_DISCARD, 10, 1, NULL, 10), 1);
    cr_assert_eq(stats().kicks_sent, 1u, "an armed domain was not kicked");
    cr_assert_eq(kicks_pending(), 1u);
}

Test(session_proto, consume_kicks_only_a_domain_waiting_for_cq_space)
{
    uint8_t *b = user_buf(1);
    /* Round 1: the domain does not wait for CQ space: consuming never kicks. */
    __atomic_store_n(&F.cq.sh->prod_event, 0xFFFFFFFFu, __ATOMIC_RELEASE);
    struct moat_blk_req r[8];
    for (unsigned i = 0; i < 8; i++)
        r[i] = (struct moat_blk_req){ .op = MOAT_BLK_WRITE_ZEROES, .lba = i, .blocks = 1,
                                      .buf = b, .user_data = i };
    cr_assert_eq(moat_blk_submit(F.s, r, 8), 8);
    struct moat_sqe e[8];
    dom_take(e, 8);
    for (unsigned i = 0; i < 8; i++)
        dom_complete(e[i].tag, MOAT_ST_OK, 1);
    kicks_pending();
    uint64_t base = stats().kicks_sent;
    struct moat_completion c[8];
    cr_assert_eq(poll_all(c, 8), 8);
    cr_assert_eq(stats().kicks_sent, base, "consuming completions kicked a domain that did not ask");
    /* Round 2: CQ full, the domain arms for space: the first consume kicks, once. */
    cr_assert_eq(moat_blk_submit(F.s, r, 8), 8);
    dom_take(e, 8);
    for (unsigned i = 0; i < 8; i++)
        dom_complete(e[i].tag, MOAT_ST_OK, 1);
    cr_assert(moat_ring_arm(&F.cq), "domain: arming a full CQ must report 'no space'");
    kicks_pending();
    base = stats().kicks_sent;
    cr_assert_eq(poll_all(c, 3), 3);
    cr_assert_eq(stats().kicks_sent, base + 1, "freeing CQ space for a waiting domain: no kick");
    cr_assert_eq(kicks_pending(), 1u);
    cr_assert_eq(poll_all(c, 8), 5);
    cr_assert_eq(stats().kicks_sent, base + 1, "kicked twice for one arm");
}

Test(session_proto, out_of_order_completions_matched_by_tag)
{
    uint8_t *b[4];
    struct moat_blk_req r[4];
    for (unsigned i = 0; i < 4; i++) {
        b[i] = user_buf(i + 1);
        r[i] = (struct moat_blk_req){ .op = MOAT_BLK_READ, .lba = 100 * (i + 1), .blocks = i + 1,
                                      .buf = b[i], .user_data = 0xC0DE0000u + i };
    }
    cr_assert_eq(moat_blk_submit(F.s, r, 4), 4);
    struct moat_sqe e[4];
    dom_take(e, 4);
    for (unsigned i = 0; i < 4; i++) {
        cr_assert_eq(e[i].lba, r[i].lba);
        fill_pat(dom_buf(&e[i]), e[i].lba, e[i].blocks, 0x33);
    }
    static const unsigned order[4] = { 2, 0, 3, 1 };
    for (unsigned i = 0; i < 4; i++)
        dom_complete(e[order[i]].tag, MOAT_ST_OK, e[order[i]].blocks);
    struct moat_completion c[4];
    cr_assert_eq(poll_all(c, 4), 4);
    for (unsigned i = 0; i < 4; i++) {
        unsigned want = order[i];
        cr_assert_eq(c[i].user_data, 0xC0DE0000u + want,
                     "completion %u carries user_data 0x%llx, expected 0x%x", i,
                     (unsigned long long)c[i].user_data, 0xC0DE0000u + want);
        cr_assert_eq(c[i].blocks, want + 1, "completion %u: %u blocks, expected %u", i, c[i].blocks,
                     want + 1);
        cr_assert_eq(c[i].status, 0);
        cr_assert(check_pat(b[want], 100 * (want + 1), want + 1, 0x33),
                  "read %u received another request's data", want);
    }
}

Test(session_proto, read_data_copied_into_user_buffer)
{
    uint8_t *b = user_buf(5);
    cr_assert_eq(submit1(MOAT_BLK_READ, 77, 5, b, 42), 1);
    struct moat_sqe e;
    dom_take(&e, 1);
    cr_assert(e.op == MOAT_BLK_READ && e.lba == 77 && e.blocks == 5 && e.flags == 0,
              "SQE op %u lba %llu blocks %u flags %u", e.op, (unsigned long long)e.lba, e.blocks,
              e.flags);
    fill_pat(dom_buf(&e), 77, 5, 0x44);
    dom_complete(e.tag, MOAT_ST_OK, 5);
    assert_filled(b, 5 * BS, FILL_USER, "user buffer written before the completion was polled");
    struct moat_completion c;
    cr_assert_eq(poll_all(&c, 1), 1);
    cr_assert(c.user_data == 42 && c.status == 0 && c.blocks == 5, "completion ud %llu st %d blk %u",
              (unsigned long long)c.user_data, c.status, c.blocks);
    cr_assert(check_pat(b, 77, 5, 0x44), "read data was not copied into the user buffer");
    /* Copied, not aliased: the domain scribbling afterwards changes nothing. */
    memset(dom_buf(&e), 0, 5 * BS);
    cr_assert(check_pat(b, 77, 5, 0x44), "user buffer follows the shared data area");
}

Test(session_proto, write_data_in_data_area_at_buf_off)
{
    uint8_t *b = user_buf(3);
    uint8_t *b2 = user_buf(2);
    fill_pat(b, 9, 3, 0x55);
    fill_pat(b2, 300, 2, 0x66);
    cr_assert_eq(submit1(MOAT_BLK_WRITE, 9, 3, b, 1), 1);
    cr_assert_eq(submit1(MOAT_BLK_WRITE, 300, 2, b2, 2), 1);
    /* The data was copied at submit: the caller may reuse its buffer. */
    memset(b, 0, 3 * BS);
    memset(b2, 0, 2 * BS);
    struct moat_sqe e[2];
    dom_take(e, 2);
    cr_assert(e[0].op == MOAT_BLK_WRITE && e[0].lba == 9 && e[0].blocks == 3);
    cr_assert(e[1].op == MOAT_BLK_WRITE && e[1].lba == 300 && e[1].blocks == 2);
    cr_assert_eq(e[0].buf_off % BS, 0u, "buf_off %llu not block aligned", (unsigned long long)e[0].buf_off);
    cr_assert(e[0].buf_off + 3 * BS <= e[1].buf_off || e[1].buf_off + 2 * BS <= e[0].buf_off,
              "two requests' buffers overlap (%llu, %llu)", (unsigned long long)e[0].buf_off,
              (unsigned long long)e[1].buf_off);
    cr_assert(check_pat(dom_buf(&e[0]), 9, 3, 0x55), "first write's data not at its buf_off");
    cr_assert(check_pat(dom_buf(&e[1]), 300, 2, 0x66), "second write's data not at its buf_off");
    dom_complete(e[1].tag, MOAT_ST_OK, 2);
    dom_complete(e[0].tag, MOAT_ST_OK, 3);
    struct moat_completion c[2];
    cr_assert_eq(poll_all(c, 2), 2);
    cr_assert(c[0].user_data == 2 && c[1].user_data == 1 && !c[0].status && !c[1].status);
}

Test(session_proto, flush_has_zero_blocks)
{
    struct moat_blk_req r = { .op = MOAT_BLK_FLUSH, .lba = 1234, .blocks = 7, .user_data = 5 };
    cr_assert_eq(moat_blk_submit(F.s, &r, 1), 1);
    struct moat_sqe e;
    dom_take(&e, 1);
    cr_assert_eq(e.op, MOAT_BLK_FLUSH);
    cr_assert_eq(e.blocks, 0u, "flush carried %u blocks, expected 0", e.blocks);
    cr_assert_eq(e.lba, 0u, "flush carried lba %llu, expected 0", (unsigned long long)e.lba);
    dom_complete(e.tag, MOAT_ST_OK, 0);
    struct moat_completion c;
    cr_assert_eq(poll_all(&c, 1), 1);
    cr_assert(c.user_data == 5 && c.status == 0 && c.blocks == 0, "flush completion st %d blk %u",
              c.status, c.blocks);
}

Test(session_proto, write_zeroes_and_discard_entries)
{
    /* No data: more blocks than one buffer holds is fine. */
    cr_assert_eq(submit1(MOAT_BLK_WRITE_ZEROES, 10, 100, NULL, 1), 1,
                 "write-zeroes beyond max_blocks refused");
    cr_assert_eq(submit1(MOAT_BLK_DISCARD, NBLOCKS - 50, 50, NULL, 2), 1, "discard to the end refused");
    struct moat_sqe e[2];
    dom_take(e, 2);
    cr_assert(e[0].op == MOAT_BLK_WRITE_ZEROES && e[0].lba == 10 && e[0].blocks == 100,
              "write-zeroes SQE op %u lba %llu blocks %u", e[0].op, (unsigned long long)e[0].lba,
              e[0].blocks);
    cr_assert(e[1].op == MOAT_BLK_DISCARD && e[1].lba == NBLOCKS - 50 && e[1].blocks == 50,
              "discard SQE op %u lba %llu blocks %u", e[1].op, (unsigned long long)e[1].lba,
              e[1].blocks);
    cr_assert_neq(e[0].tag, e[1].tag, "two outstanding requests share a tag");
    dom_complete(e[0].tag, MOAT_ST_OK, 100);
    dom_complete(e[1].tag, MOAT_ST_OK, 50);
    struct moat_completion c[2];
    cr_assert_eq(poll_all(c, 2), 2);
    cr_assert(c[0].blocks == 100 && c[1].blocks == 50 && !c[0].status && !c[1].status);
}

Test(session_proto, poll_returns_at_most_max)
{
    struct moat_blk_req r[6];
    for (unsigned i = 0; i < 6; i++)
        r[i] = (struct moat_blk_req){ .op = MOAT_BLK_DISCARD, .lba = i, .blocks = 1, .user_data = i };
    cr_assert_eq(moat_blk_submit(F.s, r, 6), 6);
    struct moat_sqe e[6];
    dom_take(e, 6);
    for (unsigned i = 0; i < 6; i++)
        dom_complete(e[i].tag, MOAT_ST_OK, 1);
    struct moat_completion c[6];
    cr_assert_eq(poll_all(c, 0), 0, "poll with max 0 returned completions");
    cr_assert_eq(poll_all(c, 4), 4, "poll(max 4) with 6 ready");
    cr_assert_eq(moat_inflight(F.s), 2u, "inflight %u after 4 of 6", moat_inflight(F.s));
    cr_assert_eq(poll_all(c + 4, 4), 2, "the rest were lost");
    for (unsigned i = 0; i < 6; i++)
        cr_assert_eq(c[i].user_data, i, "completion %u carries %llu", i,
                     (unsigned long long)c[i].user_data);
    cr_assert_eq(stats().completed, 6u);
}

/* ===================================================================================
 * Request validation (nothing reaches the ring)
 * =================================================================================== */

static void assert_refused(uint16_t op, uint64_t lba, uint32_t blocks, void *buf, int want,
                           const char *what)
{
    int rc = submit1(op, lba, blocks, buf, 99);
    cr_assert_eq(rc, want, "%s: expected %d (%s), got %d", what, want, moat_strerror(want), rc);
    cr_assert_eq(dom_avail(), 0u, "%s: a refused request reached the SQ", what);
    cr_assert_eq(moat_inflight(F.s), 0u, "%s: a refused request is in flight", what);
    cr_assert_eq(stats().submitted, 0u, "%s: a refused request was counted", what);
    cr_assert_eq(stats().kicks_sent, 0u, "%s: a refused request kicked the domain", what);
}

Test(session_proto, zero_blocks_refused)
{
    uint8_t *b = user_buf(1);
    assert_refused(MOAT_BLK_READ, 0, 0, b, -MOAT_EINVAL, "read of 0 blocks");
    assert_refused(MOAT_BLK_WRITE, 0, 0, b, -MOAT_EINVAL, "write of 0 blocks");
    assert_refused(MOAT_BLK_WRITE_ZEROES, 0, 0, NULL, -MOAT_EINVAL, "write-zeroes of 0 blocks");
    assert_refused(MOAT_BLK_DISCARD, 0, 0, NULL, -MOAT_EINVAL, "discard of 0 blocks");
}

Test(session_proto, too_many_blocks_refused)
{
    uint8_t *b = user_buf(MAXB + 1);
    assert_refused(MOAT_BLK_READ, 0, MAXB + 1, b, -MOAT_EINVAL, "read of max_blocks + 1");
    assert_refused(MOAT_BLK_WRITE, 0, MAXB + 1, b, -MOAT_EINVAL, "write of max_blocks + 1");
    assert_refused(MOAT_BLK_READ, 0, UINT32_MAX, b, -MOAT_EINVAL, "read of 2^32-1 blocks");
    cr_assert_eq(submit1(MOAT_BLK_READ, 0, MAXB, b, 1), 1, "read of exactly max_blocks refused");
}

Test(session_proto, unknown_op_refused)
{
    uint8_t *b = user_buf(1);
    assert_refused(0, 0, 1, b, -MOAT_EINVAL, "op 0");
    assert_refused(6, 0, 1, b, -MOAT_EINVAL, "op 6");
    assert_refused(0xFFFF, 0, 1, b, -MOAT_EINVAL, "op 0xffff");
}

Test(session_proto, null_buffer_refused)
{
    assert_refused(MOAT_BLK_READ, 0, 1, NULL, -MOAT_EINVAL, "read into NULL");
    assert_refused(MOAT_BLK_WRITE, 0, 1, NULL, -MOAT_EINVAL, "write from NULL");
}

Test(session_proto, lba_beyond_end_erange)
{
    uint8_t *b = user_buf(2);
    assert_refused(MOAT_BLK_READ, NBLOCKS, 1, b, -MOAT_ERANGE, "read at lba == capacity");
    assert_refused(MOAT_BLK_READ, NBLOCKS - 1, 2, b, -MOAT_ERANGE, "read straddling the end");
    assert_refused(MOAT_BLK_WRITE, UINT64_MAX, 1, b, -MOAT_ERANGE, "write at lba 2^64-1");
    assert_refused(MOAT_BLK_READ, UINT64_MAX - 1, 2, b, -MOAT_ERANGE, "read whose end wraps");
    assert_refused(MOAT_BLK_WRITE_ZEROES, 1, NBLOCKS, NULL, -MOAT_ERANGE, "write-zeroes past the end");
    assert_refused(MOAT_BLK_DISCARD, NBLOCKS + 1, 1, NULL, -MOAT_ERANGE, "discard past the end");
    cr_assert_eq(submit1(MOAT_BLK_READ, NBLOCKS - 2, 2, b, 1), 1, "read of the last blocks refused");
}

Test(session_proto, op_without_feature_enotsup)
{
    open_session(8, 0, RW);
    assert_refused(MOAT_BLK_FLUSH, 0, 1, NULL, -MOAT_ENOTSUP, "flush without the FLUSH feature");
    assert_refused(MOAT_BLK_WRITE_ZEROES, 0, 1, NULL, -MOAT_ENOTSUP, "write-zeroes without the feature");
    assert_refused(MOAT_BLK_DISCARD, 0, 1, NULL, -MOAT_ENOTSUP, "discard without the feature");
    cr_assert_eq(moat_blk_flush(F.s), -MOAT_ENOTSUP, "moat_blk_flush without the feature");
}

Test(session_proto, write_on_read_only_session_eperm)
{
    open_session(8, ALL_FLAGS, MOAT_RIGHT_READ);
    uint8_t *b = user_buf(1);
    assert_refused(MOAT_BLK_WRITE, 0, 1, b, -MOAT_EPERM, "write without WRITE right");
    assert_refused(MOAT_BLK_FLUSH, 0, 1, NULL, -MOAT_EPERM, "flush without WRITE right");
    assert_refused(MOAT_BLK_WRITE_ZEROES, 0, 1, NULL, -MOAT_EPERM, "write-zeroes without WRITE right");
    assert_refused(MOAT_BLK_DISCARD, 0, 1, NULL, -MOAT_EPERM, "discard without WRITE right");
    cr_assert_eq(moat_blk_write(F.s, 0, 1, b), -MOAT_EPERM, "moat_blk_write without WRITE right");
    cr_assert_eq(submit1(MOAT_BLK_READ, 0, 1, b, 1), 1, "read on a read-only session refused");
}

Test(session_proto, write_on_read_only_device_erofs)
{
    open_session(8, ALL_FLAGS | MOAT_BLK_F_READONLY, RW);
    uint8_t *b = user_buf(1);
    assert_refused(MOAT_BLK_WRITE, 0, 1, b, -MOAT_EROFS, "write to a read-only device");
    assert_refused(MOAT_BLK_WRITE_ZEROES, 0, 1, NULL, -MOAT_EROFS, "write-zeroes to a read-only device");
    assert_refused(MOAT_BLK_DISCARD, 0, 1, NULL, -MOAT_EROFS, "discard on a read-only device");
    cr_assert_eq(submit1(MOAT_BLK_READ, 0, 1, b, 1), 1, "read of a read-only device refused");
}

Test(session_proto, bad_request_in_batch_queues_nothing)
{
    uint8_t *b = user_buf(2);
    struct moat_blk_req r[5];
    for (unsigned i = 0; i < 5; i++)
        r[i] = (struct moat_blk_req){ .op = MOAT_BLK_READ, .lba = i, .blocks = 2, .buf = b,
                                      .user_data = i };
    static const struct { unsigned at; struct moat_blk_req bad; int want; } cases[] = {
        { 4, { .op = MOAT_BLK_READ, .lba = 0, .blocks = 0 }, -MOAT_EINVAL },
        { 2, { .op = 9, .lba = 0, .blocks = 1 }, -MOAT_EINVAL },
        { 0, { .op = MOAT_BLK_DISCARD, .lba = NBLOCKS, .blocks = 1 }, -MOAT_ERANGE },
        { 3, { .op = MOAT_BLK_READ, .lba = 0, .blocks = MAXB + 1 }, -MOAT_EINVAL },
    };
    for (unsigned k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        struct moat_blk_req rr[5];
        memcpy(rr, r, sizeof rr);
        rr[cases[k].at] = cases[k].bad;
        if (rr[cases[k].at].op == MOAT_BLK_READ)
            rr[cases[k].at].buf = b;
        int rc = moat_blk_submit(F.s, rr, 5);
        cr_assert_eq(rc, cases[k].want, "batch %u (bad entry at %u): expected %d, got %d", k,
                     cases[k].at, cases[k].want, rc);
        cr_assert_eq(dom_avail(), 0u, "batch %u: %u requests queued before the bad one", k,
                     dom_avail());
        cr_assert_eq(moat_inflight(F.s), 0u, "batch %u: requests in flight", k);
    }
    cr_assert_eq(stats().submitted, 0u);
    cr_assert_eq(stats().kicks_sent, 0u, "a refused batch kicked the domain");
    cr_assert_eq(moat_blk_submit(F.s, r, 5), 5, "the same batch without the bad entry");
}

/* ===================================================================================
 * Malformed completions: the session fails, nothing of the bad completion is used
 * =================================================================================== */

#define UD_A 0xA0A0u
#define UD_B 0xB0B0u

struct two_reads {
    uint8_t *a, *b;             /* user buffers: A 4 blocks, B 2 blocks */
    struct moat_sqe ea, eb;
};

/* Reads A and B outstanding; the domain has taken both and written data
 * (FILL_DOM) into their buffers, but completed neither. */
static void two_reads(struct two_reads *t)
{
    t->a = user_buf(4);
    t->b = user_buf(2);
    struct moat_blk_req r[2] = {
        { .op = MOAT_BLK_READ, .lba = 10, .blocks = 4, .buf = t->a, .user_data = UD_A },
        { .op = MOAT_BLK_READ, .lba = 20, .blocks = 2, .buf = t->b, .user_data = UD_B },
    };
    cr_assert_eq(moat_blk_submit(F.s, r, 2), 2);
    struct moat_sqe e[2];
    dom_take(e, 2);
    t->ea = e[0];
    t->eb = e[1];
    memset(dom_buf(&t->ea), FILL_DOM, 4 * BS);
    memset(dom_buf(&t->eb), FILL_DOM, 2 * BS);
}

/* Every outstanding request (uds) completes with EPROTO via poll or wait;
 * the session stays failed; exactly one malformed completion was counted. */
static void expect_session_failed(const uint64_t *uds, size_t n, bool via_wait, const char *why)
{
    struct moat_completion c[MAXE];
    int rc = via_wait ? moat_wait(F.s, c, MAXE, 2000) : moat_poll(F.s, c, MAXE);
    cr_assert_eq(rc, (int)n, "%s: expected %zu requests failed by %s, got %d", why, n,
                 via_wait ? "moat_wait" : "moat_poll", rc);
    bool seen[MAXE] = { false };
    for (int i = 0; i < rc; i++) {
        cr_assert_eq(c[i].status, -MOAT_EPROTO, "%s: request 0x%llx completed with %d, not EPROTO",
                     why, (unsigned long long)c[i].user_data, c[i].status);
        cr_assert_eq(c[i].blocks, 0u, "%s: a failed request reports %u blocks", why, c[i].blocks);
        size_t j = 0;
        while (j < n && uds[j] != c[i].user_data)
            j++;
        cr_assert_lt(j, n, "%s: completion with unknown user_data 0x%llx", why,
                     (unsigned long long)c[i].user_data);
        cr_assert(!seen[j], "%s: user_data 0x%llx returned twice", why,
                  (unsigned long long)c[i].user_data);
        seen[j] = true;
    }
    struct moat_session_stats st = stats();
    cr_assert_eq(st.malformed, 1u, "%s: malformed = %llu, expected 1", why,
                 (unsigned long long)st.malformed);
    cr_assert_eq(moat_inflight(F.s), 0u, "%s: %u still in flight", why, moat_inflight(F.s));
    uint8_t *b = user_buf(1);
    rc = submit1(MOAT_BLK_READ, 0, 1, b, 1);
    cr_assert_eq(rc, -MOAT_EPROTO, "%s: submit on a failed session returned %d, not EPROTO", why, rc);
    cr_assert_eq(moat_poll(F.s, c, MAXE), 0, "%s: completions after the failure was reported", why);
    rc = moat_wait(F.s, c, MAXE, 100);
    cr_assert_eq(rc, -MOAT_EPROTO, "%s: wait on a failed session returned %d, not EPROTO", why, rc);
    cr_assert_eq(stats().malformed, 1u, "%s: malformed counted again", why);
}

static void expect_untouched(const struct two_reads *t, const char *why)
{
    for (size_t i = 0; i < 4 * BS; i++)
        cr_assert_eq(t->a[i], FILL_USER, "%s: read A's buffer written at byte %zu", why, i);
    for (size_t i = 0; i < 2 * BS; i++)
        cr_assert_eq(t->b[i], FILL_USER, "%s: read B's buffer written at byte %zu", why, i);
}

static const uint64_t UDS_AB[2] = { UD_A, UD_B };

Test(session_proto, malformed_random_tag)
{
    struct two_reads t;
    two_reads(&t);
    dom_complete(0x1234567800000000ull | (F.l.entries + 5), MOAT_ST_OK, 4);
    expect_session_failed(UDS_AB, 2, false, "tag with index out of range");
    expect_untouched(&t, "random tag");
}

Test(session_proto, malformed_tag_of_idle_slot)
{
    struct two_reads t;
    two_reads(&t);
    /* An index in range that no request holds (slots are never 0 gen when busy). */
    uint32_t ia = (uint32_t)t.ea.tag, ib = (uint32_t)t.eb.tag, idle = 0;
    while (idle == ia || idle == ib)
        idle++;
    dom_complete((t.ea.tag & ~0xFFFFFFFFull) | idle, MOAT_ST_OK, 4);
    expect_session_failed(UDS_AB, 2, true, "tag of an idle slot");
    expect_untouched(&t, "idle slot tag");
}

Test(session_proto, malformed_duplicate_completion)
{
    struct two_reads t;
    two_reads(&t);
    fill_pat(dom_buf(&t.ea), 10, 4, 0x21);
    dom_complete(t.ea.tag, MOAT_ST_OK, 4);
    struct moat_completion c;
    cr_assert_eq(moat_poll(F.s, &c, 1), 1);
    cr_assert(c.user_data == UD_A && c.status == 0, "first completion of A refused");
    cr_assert(check_pat(t.a, 10, 4, 0x21), "A's data not delivered");
    /* The domain changes the data and completes A again. */
    memset(dom_buf(&t.ea), FILL_DOM, 4 * BS);
    dom_complete(t.ea.tag, MOAT_ST_OK, 4);
    const uint64_t ud_b = UD_B;
    expect_session_failed(&ud_b, 1, false, "duplicate completion");
    cr_assert(check_pat(t.a, 10, 4, 0x21), "the duplicate completion overwrote A's buffer");
    for (size_t i = 0; i < 2 * BS; i++)
        cr_assert_eq(t.b[i], FILL_USER, "B's buffer written at byte %zu", i);
}

Test(session_proto, malformed_stale_generation)
{
    struct two_reads t;
    two_reads(&t);
    dom_complete(t.ea.tag, MOAT_ST_OK, 4);
    struct moat_completion c;
    cr_assert_eq(moat_poll(F.s, &c, 1), 1);
    cr_assert_eq(c.user_data, UD_A);
    /* A new read reuses A's slot with a new generation. */
    uint8_t *d = user_buf(4);
    cr_assert_eq(submit1(MOAT_BLK_READ, 30, 4, d, 0xD0D0u), 1);
    struct moat_sqe ed;
    dom_take(&ed, 1);
    cr_assert_eq((uint32_t)ed.tag, (uint32_t)t.ea.tag,
                 "test premise: the new request should reuse A's slot (index %u vs %u)",
                 (uint32_t)ed.tag, (uint32_t)t.ea.tag);
    cr_assert_neq(ed.tag, t.ea.tag, "slot reused with the same generation: tags are ambiguous");
    memset(dom_buf(&ed), FILL_DOM, 4 * BS);
    dom_complete(t.ea.tag, MOAT_ST_OK, 4);      /* A's old tag */
    const uint64_t uds[2] = { UD_B, 0xD0D0u };
    expect_session_failed(uds, 2, false, "stale generation");
    assert_filled(d, 4 * BS, FILL_USER, "the stale completion wrote the new request's buffer");
    assert_filled(t.b, 2 * BS, FILL_USER, "B's buffer written");
}

Test(session_proto, malformed_unknown_status)
{
    struct two_reads t;
    two_reads(&t);
    dom_complete(t.ea.tag, 99, 4);
    expect_session_failed(UDS_AB, 2, true, "status 99");
    expect_untouched(&t, "unknown status");
}

Test(session_proto, malformed_status_just_past_max)
{
    struct two_reads t;
    two_reads(&t);
    dom_complete(t.eb.tag, MOAT_ST_MAX + 1, 0);
    expect_session_failed(UDS_AB, 2, false, "status MAX+1");
    expect_untouched(&t, "status MAX+1");
}

Test(session_proto, malformed_ok_more_blocks_than_requested)
{
    struct two_reads t;
    two_reads(&t);
    dom_complete(t.ea.tag, MOAT_ST_OK, 5);
    expect_session_failed(UDS_AB, 2, false, "OK with 5 of 4 blocks");
    expect_untouched(&t, "OK with more blocks");
}

Test(session_proto, malformed_ok_fewer_blocks_than_requested)
{
    struct two_reads t;
    two_reads(&t);
    dom_complete(t.ea.tag, MOAT_ST_OK, 3);
    expect_session_failed(UDS_AB, 2, true, "OK with 3 of 4 blocks");
    expect_untouched(&t, "OK with fewer blocks");
}

Test(session_proto, malformed_error_more_blocks_than_requested)
{
    struct two_reads t;
    two_reads(&t);
    dom_complete(t.eb.tag, MOAT_ST_EIO, 3);
    expect_session_failed(UDS_AB, 2, false, "EIO with 3 of 2 blocks");
    expect_untouched(&t, "error with more blocks");
}

Test(session_proto, malformed_flush_completed_with_blocks)
{
    struct moat_blk_req r = { .op = MOAT_BLK_FLUSH, .blocks = 1, .user_data = 0xF1u };
    cr_assert_eq(moat_blk_submit(F.s, &r, 1), 1);
    struct moat_sqe e;
    dom_take(&e, 1);
    dom_complete(e.tag, MOAT_ST_OK, 1);
    const uint64_t ud = 0xF1u;
    expect_session_failed(&ud, 1, false, "flush completed with 1 block");
}

Test(session_proto, malformed_impossible_cq_producer_index)
{
    struct two_reads t;
    two_reads(&t);
    dom_complete(t.ea.tag, MOAT_ST_OK, 4);      /* well formed, but then: */
    __atomic_store_n(&F.cq.sh->prod, 0 + F.l.entries + 5, __ATOMIC_RELEASE);
    expect_session_failed(UDS_AB, 2, false, "CQ prod = cons + entries + 5");
    expect_untouched(&t, "impossible CQ index");
}

Test(session_proto, malformed_impossible_cq_index_seen_by_wait)
{
    struct two_reads t;
    two_reads(&t);
    __atomic_store_n(&F.cq.sh->prod, 0u - 1u, __ATOMIC_RELEASE);    /* behind the consumer */
    expect_session_failed(UDS_AB, 2, true, "CQ prod behind cons");
    expect_untouched(&t, "CQ prod behind cons");
}

Test(session_proto, malformed_impossible_sq_consumer_index)
{
    struct two_reads t;
    two_reads(&t);
    /* The domain claims to have consumed more than was ever published. */
    __atomic_store_n(&F.sq.sh->cons, 3u, __ATOMIC_RELEASE);
    uint8_t *b = user_buf(1);
    int rc = submit1(MOAT_BLK_READ, 0, 1, b, 0xCCu);
    cr_assert_eq(rc, -MOAT_EPROTO, "submit over a corrupt SQ returned %d, not EPROTO", rc);
    expect_session_failed(UDS_AB, 2, false, "SQ cons = prod + 1");
    expect_untouched(&t, "impossible SQ index");
    assert_filled(b, BS, FILL_USER, "refused request's buffer written");
}

Test(session_proto, malformed_after_good_completions_in_same_poll)
{
    struct two_reads t;
    two_reads(&t);
    fill_pat(dom_buf(&t.eb), 20, 2, 0x42);
    dom_complete(t.eb.tag, MOAT_ST_OK, 2);      /* good */
    dom_complete(t.eb.tag, MOAT_ST_OK, 2);      /* duplicate */
    dom_complete(t.ea.tag, MOAT_ST_OK, 4);      /* after the violation: never used */
    struct moat_completion c[8];
    int rc = moat_poll(F.s, c, 8);
    cr_assert_eq(rc, 2, "expected B's completion and A's failure, got %d", rc);
    cr_assert(c[0].user_data == UD_B && c[0].status == 0 && c[0].blocks == 2,
              "the good completion before the violation: ud 0x%llx st %d",
              (unsigned long long)c[0].user_data, c[0].status);
    cr_assert(c[1].user_data == UD_A && c[1].status == -MOAT_EPROTO,
              "A after the violation: ud 0x%llx st %d", (unsigned long long)c[1].user_data,
              c[1].status);
    cr_assert(check_pat(t.b, 20, 2, 0x42), "B's data not delivered");
    assert_filled(t.a, 4 * BS, FILL_USER, "A's completion after the violation was used");
    cr_assert_eq(stats().malformed, 1u);
    cr_assert_eq(stats().completed, 1u, "completed counts %llu", (unsigned long long)stats().completed);
    cr_assert_eq(submit1(MOAT_BLK_DISCARD, 0, 1, NULL, 1), -MOAT_EPROTO);
}

/* ===================================================================================
 * Well-formed error statuses
 * =================================================================================== */

Test(session_proto, domain_error_statuses_map_and_session_survives)
{
    static const struct { uint32_t st; int want; } map[] = {
        { MOAT_ST_EINVAL, -MOAT_EINVAL }, { MOAT_ST_EIO, -MOAT_EIO },
        { MOAT_ST_ENOTSUP, -MOAT_ENOTSUP }, { MOAT_ST_EROFS, -MOAT_EROFS },
        { MOAT_ST_ERANGE, -MOAT_ERANGE }, { MOAT_ST_EPERM, -MOAT_EPERM },
        { MOAT_ST_OK, 0 },
    };
    uint8_t *b = user_buf(4);
    for (unsigned i = 0; i < sizeof map / sizeof map[0]; i++) {
        memset(b, FILL_USER, 4 * BS);
        cr_assert_eq(submit1(MOAT_BLK_READ, 40 + i, 4, b, i), 1, "status %u: submit refused",
                     map[i].st);
        struct moat_sqe e;
        dom_take(&e, 1);
        memset(dom_buf(&e), FILL_DOM, 4 * BS);
        dom_complete(e.tag, map[i].st, map[i].st == MOAT_ST_OK ? 4 : 0);
        struct moat_completion c;
        int rc = i % 2 ? moat_wait(F.s, &c, 1, 1000) : moat_poll(F.s, &c, 1);
        cr_assert_eq(rc, 1, "status %u: %d completions", map[i].st, rc);
        cr_assert_eq(c.user_data, i);
        cr_assert_eq(c.status, map[i].want, "status %u: mapped to %d, expected %d (%s)", map[i].st,
                     c.status, map[i].want, moat_strerror(map[i].want));
        if (map[i].st != MOAT_ST_OK)
            assert_filled(b, 4 * BS, FILL_USER, "a failed read's buffer was written");
        else
            assert_filled(b, 4 * BS, FILL_DOM, "the OK read's data was not delivered");
        cr_assert_eq(stats().malformed, 0u, "status %u counted as malformed", map[i].st);
        cr_assert_eq(moat_inflight(F.s), 0u);
    }
    cr_assert_eq(stats().completed, sizeof map / sizeof map[0]);
}

Test(session_proto, error_with_partial_blocks_is_well_formed)
{
    struct two_reads t;
    two_reads(&t);
    dom_complete(t.ea.tag, MOAT_ST_EIO, 2);     /* 2 of 4 done, then an error */
    dom_complete(t.eb.tag, MOAT_ST_ERANGE, 2);  /* all of them (still an error) */
    struct moat_completion c[2];
    cr_assert_eq(moat_poll(F.s, c, 2), 2);
    cr_assert(c[0].user_data == UD_A && c[0].status == -MOAT_EIO && c[0].blocks == 2,
              "A: ud 0x%llx st %d blocks %u", (unsigned long long)c[0].user_data, c[0].status,
              c[0].blocks);
    cr_assert(c[1].user_data == UD_B && c[1].status == -MOAT_ERANGE && c[1].blocks == 2,
              "B: st %d blocks %u", c[1].status, c[1].blocks);
    expect_untouched(&t, "failed reads");
    cr_assert_eq(stats().malformed, 0u, "a partial error counted as malformed");
    cr_assert_eq(submit1(MOAT_BLK_DISCARD, 0, 1, NULL, 1), 1, "session unusable after an error");
}

/* ===================================================================================
 * moat_wait: timeout and wake-up
 * =================================================================================== */

Test(session_proto, wait_times_out_when_domain_never_answers)
{
    uint8_t *b = user_buf(1);
    cr_assert_eq(submit1(MOAT_BLK_READ, 1, 1, b, 77), 1);
    struct moat_completion c;
    uint64_t t0 = now_ms();
    int rc = moat_wait(F.s, &c, 1, 50);
    uint64_t dt = now_ms() - t0;
    cr_assert_eq(rc, -MOAT_ETIMEDOUT, "wait on a silent domain returned %d, not ETIMEDOUT", rc);
    cr_assert_geq(dt, 45u, "timed out after %llu ms of a 50 ms timeout", (unsigned long long)dt);
    cr_assert_lt(dt, 2000u, "a 50 ms timeout took %llu ms", (unsigned long long)dt);
    cr_assert_eq(moat_inflight(F.s), 1u, "a timeout must leave the request in flight");
    cr_assert_eq(stats().malformed, 0u);
    cr_assert_geq(stats().waits, 1u, "wait never slept on the notify eventfd");
    rc = moat_wait(F.s, &c, 1, 0);
    cr_assert_eq(rc, -MOAT_ETIMEDOUT, "timeout 0 with nothing ready returned %d", rc);
    /* A late answer is still delivered. */
    struct moat_sqe e;
    dom_take(&e, 1);
    memset(dom_buf(&e), FILL_DOM, BS);
    dom_complete(e.tag, MOAT_ST_OK, 1);
    rc = moat_wait(F.s, &c, 1, 50);
    cr_assert_eq(rc, 1, "late completion not delivered: %d", rc);
    cr_assert(c.user_data == 77 && c.status == 0);
    assert_filled(b, BS, FILL_DOM, "late read");
}

Test(session_proto, wait_returns_completion_published_before_it)
{
    uint8_t *b = user_buf(2);
    cr_assert_eq(submit1(MOAT_BLK_READ, 5, 2, b, 3), 1);
    struct moat_sqe e;
    dom_take(&e, 1);
    fill_pat(dom_buf(&e), 5, 2, 0x13);
    dom_complete(e.tag, MOAT_ST_OK, 2);
    struct moat_completion c;
    uint64_t t0 = now_ms();
    cr_assert_eq(moat_wait(F.s, &c, 1, 5000), 1);
    cr_assert_lt(now_ms() - t0, 1000u, "wait slept with a completion ready");
    cr_assert(c.user_data == 3 && c.status == 0 && check_pat(b, 5, 2, 0x13));
    cr_assert_eq(stats().waits, 0u, "slept with a completion ready");
}

/* A domain thread answering one request per round, only after the client
 * has armed the CQ (so moat_wait must be woken by the notify eventfd). */
struct waker {
    unsigned rounds;
    atomic_bool stop;
    char err[200];
};

static bool spin_until(struct waker *w, bool (*cond)(uint32_t), uint32_t arg)
{
    uint64_t deadline = now_ms() + 10000;
    while (!cond(arg)) {
        if (atomic_load(&w->stop) || now_ms() > deadline)
            return false;
        sched_yield();
    }
    return true;
}

static bool sq_has_one(uint32_t unused)
{
    (void)unused;
    uint32_t n = 0;
    return moat_ring_avail(&F.sq, &n) == MOAT_RING_OK && n >= 1;
}

static bool cq_armed_at(uint32_t idx)
{
    return __atomic_load_n(&F.cq.sh->cons_event, __ATOMIC_ACQUIRE) == idx;
}

static void *waker_main(void *arg)
{
    struct waker *w = arg;
    for (uint32_t i = 0; i < w->rounds; i++) {
        if (!spin_until(w, sq_has_one, 0)) {
            snprintf(w->err, sizeof w->err, "round %u: no request arrived", i);
            return NULL;
        }
        struct moat_sqe e;
        memcpy(&e, moat_ring_peek(&F.sq, 0), sizeof e);
        bool k;
        moat_ring_consume(&F.sq, 1, &k);
        if (e.buf_off + (uint64_t)e.blocks * BS > F.l.data_size || e.op != MOAT_BLK_READ) {
            snprintf(w->err, sizeof w->err, "round %u: bad request", i);
            return NULL;
        }
        memset(F.mem + F.l.data_off + e.buf_off, (int)(i & 0xFF), (size_t)e.blocks * BS);
        if (!spin_until(w, cq_armed_at, i)) {
            snprintf(w->err, sizeof w->err, "round %u: the client never armed the CQ", i);
            return NULL;
        }
        uint32_t sp = 0;
        if (moat_ring_space(&F.cq, &sp) != MOAT_RING_OK || sp == 0) {
            snprintf(w->err, sizeof w->err, "round %u: no CQ space", i);
            return NULL;
        }
        struct moat_cqe c = { .tag = e.tag, .status = MOAT_ST_OK, .blocks = e.blocks };
        memcpy(moat_ring_slot(&F.cq, 0), &c, sizeof c);
        k = false;
        moat_ring_publish(&F.cq, 1, &k);
        if (!k) {
            snprintf(w->err, sizeof w->err, "round %u: the client armed but publish says no kick", i);
            return NULL;
        }
        uint64_t one = 1;
        if (write(F.notify, &one, sizeof one) != sizeof one) {
            snprintf(w->err, sizeof w->err, "round %u: write(notify): %s", i, strerror(errno));
            return NULL;
        }
    }
    return NULL;
}

Test(session_proto, wait_woken_by_notify_from_domain_thread)
{
    enum { ROUNDS = 200 };
    uint8_t *b = user_buf(2);
    /* Round 0 must wait for a real arm too: start from an event nobody set. */
    __atomic_store_n(&F.cq.sh->cons_event, 0xDEADBEEFu, __ATOMIC_RELEASE);
    static struct waker w;
    memset(&w, 0, sizeof w);
    w.rounds = ROUNDS;
    atomic_init(&w.stop, false);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, waker_main, &w), 0);
    uint64_t worst = 0;
    for (unsigned i = 0; i < ROUNDS; i++) {
        memset(b, FILL_USER, 2 * BS);
        int rc = submit1(MOAT_BLK_READ, i, 2, b, 1000 + i);
        if (rc != 1)
            break;
        struct moat_completion c = { 0 };
        uint64_t t0 = now_ms();
        rc = moat_wait(F.s, &c, 1, 5000);
        uint64_t dt = now_ms() - t0;
        worst = dt > worst ? dt : worst;
        if (rc != 1 || c.user_data != 1000 + i || c.status != 0) {
            atomic_store(&w.stop, true);
            pthread_join(th, NULL);
            cr_assert_fail("round %u: wait returned %d (ud %llu st %d); domain: %s", i, rc,
                    (unsigned long long)c.user_data, c.status, w.err[0] ? w.err : "ok");
        }
        for (size_t j = 0; j < 2 * BS; j++)
            if (b[j] != (uint8_t)i) {
                atomic_store(&w.stop, true);
                pthread_join(th, NULL);
                cr_assert_fail("round %u: byte %zu is 0x%02x", i, j, b[j]);
            }
    }
    pthread_join(th, NULL);
    cr_assert_eq(w.err[0], '\0', "domain thread: %s", w.err);
    cr_assert_lt(worst, 2500u, "a wait took %llu ms: woken by its timeout, not the notify",
                 (unsigned long long)worst);
    struct moat_session_stats st = stats();
    cr_assert_eq(st.completed, (uint64_t)ROUNDS);
    cr_assert_eq(st.malformed, 0u);
    cr_log_info("%llu of %d waits slept on the notify eventfd", (unsigned long long)st.waits, ROUNDS);
}

/* A RAM-disk domain in a thread: serves whatever is in the SQ, sleeps on
 * the kick eventfd when idle, notifies when the client asked. Blocks at and
 * above bad_lba fail with EIO. */
#define DISK_BLOCKS 256u
struct ramdom {
    uint8_t disk[DISK_BLOCKS * BS];
    uint64_t bad_lba;
    atomic_bool stop;
    unsigned served, flushes, zeroes, discards;
    char err[200];
};

static bool ramdom_serve(struct ramdom *d)
{
    uint32_t n = 0;
    if (moat_ring_avail(&F.sq, &n) != MOAT_RING_OK) {
        snprintf(d->err, sizeof d->err, "SQ corrupt");
        return false;
    }
    for (uint32_t i = 0; i < n; i++) {
        struct moat_sqe e;
        memcpy(&e, moat_ring_peek(&F.sq, i), sizeof e);
        uint32_t st = MOAT_ST_OK, blocks = e.blocks;
        bool data = e.op == MOAT_BLK_READ || e.op == MOAT_BLK_WRITE;
        if (data && e.buf_off + (uint64_t)e.blocks * BS > F.l.data_size) {
            snprintf(d->err, sizeof d->err, "buffer outside the data area");
            return false;
        }
        uint8_t *buf = F.mem + F.l.data_off + e.buf_off;
        if (e.op == MOAT_BLK_FLUSH) {
            d->flushes++;
        } else if (e.lba >= DISK_BLOCKS || e.blocks > DISK_BLOCKS - e.lba) {
            st = MOAT_ST_ERANGE;
            blocks = 0;
        } else if (e.lba + e.blocks > d->bad_lba) {
            st = MOAT_ST_EIO;
            blocks = 0;
        } else if (e.op == MOAT_BLK_READ) {
            memcpy(buf, d->disk + e.lba * BS, (size_t)e.blocks * BS);
        } else if (e.op == MOAT_BLK_WRITE) {
            memcpy(d->disk + e.lba * BS, buf, (size_t)e.blocks * BS);
        } else if (e.op == MOAT_BLK_WRITE_ZEROES) {
            memset(d->disk + e.lba * BS, 0, (size_t)e.blocks * BS);
            d->zeroes++;
        } else if (e.op == MOAT_BLK_DISCARD) {
            d->discards++;
        } else {
            st = MOAT_ST_EINVAL;
            blocks = 0;
        }
        uint32_t sp = 0;
        if (moat_ring_space(&F.cq, &sp) != MOAT_RING_OK || sp == 0) {
            snprintf(d->err, sizeof d->err, "no CQ space");
            return false;
        }
        struct moat_cqe c = { .tag = e.tag, .status = st, .blocks = blocks };
        memcpy(moat_ring_slot(&F.cq, 0), &c, sizeof c);
        bool k = false;
        moat_ring_publish(&F.cq, 1, &k);
        if (k) {
            uint64_t one = 1;
            if (write(F.notify, &one, sizeof one) != sizeof one) {
                snprintf(d->err, sizeof d->err, "write(notify): %s", strerror(errno));
                return false;
            }
        }
        d->served++;
    }
    bool k;
    if (n)
        moat_ring_consume(&F.sq, n, &k);
    return true;
}

static void *ramdom_main(void *arg)
{
    struct ramdom *d = arg;
    while (!atomic_load(&d->stop)) {
        if (!ramdom_serve(d))
            return NULL;
        if (!moat_ring_arm(&F.sq))
            continue;           /* work arrived while arming */
        struct pollfd p = { .fd = F.kick, .events = POLLIN };
        if (poll(&p, 1, 10000) <= 0) {
            snprintf(d->err, sizeof d->err, "no kick within 10 s");
            return NULL;
        }
        uint64_t v;
        if (read(F.kick, &v, sizeof v) < 0 && errno != EAGAIN) {
            snprintf(d->err, sizeof d->err, "read(kick): %s", strerror(errno));
            return NULL;
        }
    }
    return NULL;
}

static void ramdom_stop(struct ramdom *d, pthread_t th)
{
    atomic_store(&d->stop, true);
    uint64_t one = 1;
    (void)!write(F.kick, &one, sizeof one);
    pthread_join(th, NULL);
}

Test(session_proto, sync_calls_against_threaded_domain)
{
    static struct ramdom d;
    memset(&d, 0, sizeof d);
    d.bad_lba = 200;
    atomic_init(&d.stop, false);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, ramdom_main, &d), 0);
    enum { NB = 40 };           /* > max_blocks: split into 3 requests */
    uint8_t *w = user_buf(NB), *r = user_buf(NB), *z = user_buf(8), *bad = user_buf(16);
    fill_pat(w, 3, NB, 0x5C);
    int rc1 = moat_blk_write(F.s, 3, NB, w);
    int rc2 = moat_blk_read(F.s, 3, NB, r);
    int rc3 = moat_blk_flush(F.s);
    int rc4 = moat_blk_write_zeroes(F.s, 10, 8);
    int rc5 = moat_blk_read(F.s, 10, 8, z);
    int rc6 = moat_blk_discard(F.s, 0, 4);
    int rc7 = moat_blk_read(F.s, 190, 16, bad);   /* reaches the bad blocks */
    int rc8 = moat_blk_read(F.s, 3, 1, z);        /* still works afterwards */
    ramdom_stop(&d, th);
    cr_assert_eq(d.err[0], '\0', "domain thread: %s", d.err);
    cr_assert_eq(rc1, 0, "moat_blk_write: %d", rc1);
    cr_assert_eq(rc2, 0, "moat_blk_read: %d", rc2);
    cr_assert(check_pat(r, 3, NB, 0x5C), "read back differs from what was written");
    assert_filled(bad, 16 * BS, FILL_USER, "a failed read wrote the user buffer");
    cr_assert_eq(rc3, 0, "moat_blk_flush: %d", rc3);
    cr_assert_eq(rc4, 0, "moat_blk_write_zeroes: %d", rc4);
    cr_assert_eq(rc5, 0, "read of zeroed blocks: %d", rc5);
    cr_assert_eq(rc6, 0, "moat_blk_discard: %d", rc6);
    cr_assert_eq(rc7, -MOAT_EIO, "read of failing blocks: %d, expected -MOAT_EIO", rc7);
    cr_assert_eq(rc8, 0, "read after an EIO: %d", rc8);
    assert_filled(z + BS, 7 * BS, 0, "zeroed blocks read back");
    cr_assert(check_pat(z, 3, 1, 0x5C), "last read returned wrong data");
    cr_assert(d.flushes == 1 && d.zeroes == 1 && d.discards == 1,
              "domain saw %u flushes, %u write-zeroes, %u discards", d.flushes, d.zeroes, d.discards);
    /* 3 + 3 + 1 + 1 + 1 + 1 + 1 (EIO stops the split) + 1 */
    cr_assert_eq(d.served, 12u, "domain served %u requests, expected 12", d.served);
    cr_assert_eq(stats().malformed, 0u);
    cr_assert_eq(moat_inflight(F.s), 0u);
}

Test(session_proto, sync_call_refused_while_async_in_flight)
{
    cr_assert_eq(submit1(MOAT_BLK_DISCARD, 0, 1, NULL, 1), 1);
    uint8_t *b = user_buf(1);
    cr_assert_eq(moat_blk_read(F.s, 0, 1, b), -MOAT_EBUSY, "sync read with a request in flight");
    cr_assert_eq(moat_blk_flush(F.s), -MOAT_EBUSY, "sync flush with a request in flight");
    cr_assert_eq(dom_avail(), 1u, "a refused sync call queued a request");
}

/* ===================================================================================
 * Attach: the layout is checked before anything is touched
 * =================================================================================== */

Test(session_proto, attach_refuses_bad_layouts)
{
    struct moat_session *s = NULL;
    struct moat_blk_geometry g = F.geo;
    struct moat_session_reply l;
#define REFUSE(mutate, why)                                                                      \
    do {                                                                                         \
        l = F.l;                                                                                 \
        g = F.geo;                                                                               \
        mutate;                                                                                  \
        int rc_ = moat__session_attach(F.mem, &l, F.kick, F.notify, &g, RW, &s);                 \
        cr_assert_lt(rc_, 0, "attach accepted a layout with %s", why);                           \
    } while (0)
    REFUSE(l.entries = 12, "non-power-of-two entries");
    REFUSE(l.entries = 4, "fewer than 8 entries");
    REFUSE(l.entries = 16, "entries not matching the rings");
    REFUSE(l.cq_off += 8, "misaligned cq_off");
    REFUSE(l.cq_off = l.sq_off, "CQ on top of the SQ");
    REFUSE(l.data_off = l.cq_off, "data on top of the CQ");
    REFUSE(l.size = l.data_off + l.data_size - 1, "data beyond the memory");
    REFUSE(l.data_size = MOAT_SESSION_DATA_MAX + PAGE_SZ, "data area above the maximum");
    REFUSE(g.block_size = 0, "block size 0");
    REFUSE(g.block_size = 768, "block size not a power of two");
    REFUSE(l.data_size = 4 * BS, "data area smaller than one block per entry");
    REFUSE((l.data_off = UINT64_MAX - 4095, l.data_size = 8192), "a data offset that wraps");
    REFUSE(l.sq_off = UINT64_MAX - 4095, "an SQ offset that wraps");
    REFUSE(l.size = MOAT_SESSION_SPAN + PAGE_SZ, "memory larger than a session slot");
#undef REFUSE
    /* Good layout, data area smaller than entries * max_blocks: max_blocks shrinks. */
    l = F.l;
    l.data_size = (uint64_t)F.l.entries * 4 * BS;
    g = F.geo;
    cr_assert_eq(moat__session_attach(F.mem, &l, F.kick, F.notify, &g, RW, &s), 0);
    cr_assert_eq(moat_session_max_blocks(s), 4u, "max_blocks %u, expected 4 (the buffer)",
                 moat_session_max_blocks(s));
    moat__session_detach(s);
}

/* ===================================================================================
 * Nic completions (shared/libmoat/nic.c)
 * =================================================================================== */

/* Replace the session with a Nic session of 8 entries (MTU 1500). */
static void open_nic_session(void)
{
    fixture_close();
    layout(8, 8 * 2048, &F.l);
    F.mem = aligned_alloc(PAGE_SZ, F.l.size);
    cr_assert_not_null(F.mem);
    memset(F.mem, 0, F.l.size);
    cr_assert_eq(moat_ring_format(F.mem + F.l.sq_off, F.l.cq_off - F.l.sq_off, 8,
                                  sizeof(struct moat_sqe)), MOAT_RING_OK);
    cr_assert_eq(moat_ring_format(F.mem + F.l.cq_off, F.l.data_off - F.l.cq_off, 8,
                                  sizeof(struct moat_cqe)), MOAT_RING_OK);
    F.kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    F.notify = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    cr_assert(F.kick >= 0 && F.notify >= 0, "eventfd: %s", strerror(errno));
    struct moat_nic_info info = { .mac = { 2, 0, 0, 0, 0, 1 }, .mtu = 1500, .max_frame = 1514,
                                  .queues = 1 };
    cr_assert_eq(moat__session_attach_nic(F.mem, &F.l, F.kick, F.notify, &info, RW, &F.s), 0);
    cr_assert_eq(moat_ring_attach(&F.sq, F.mem + F.l.sq_off, F.l.cq_off - F.l.sq_off, 8,
                                  sizeof(struct moat_sqe), MOAT_RING_CONSUMER), MOAT_RING_OK);
    cr_assert_eq(moat_ring_attach(&F.cq, F.mem + F.l.cq_off, F.l.data_off - F.l.cq_off, 8,
                                  sizeof(struct moat_cqe), MOAT_RING_PRODUCER), MOAT_RING_OK);
}

/* Found by fuzz_libmoat_cq (harness/fuzz/regress/fuzz_libmoat_cq/nic-rx-completed-twice):
 * a received frame waiting for moat_nic_recv kept its slot "outstanding",
 * so a second completion for the same RX tag was accepted: the slot was
 * queued twice, the frame delivered twice, the slot freed twice (two later
 * requests then shared one buffer, and the free list could overflow). */
Test(session_proto, nic_rx_completed_twice_fails_the_session)
{
    open_nic_session();
    uint8_t buf[4][1514];
    struct moat_frame fr[4];
    for (int i = 0; i < 4; i++)
        fr[i] = (struct moat_frame){ .data = buf[i], .len = sizeof buf[i] };
    cr_assert_eq(moat_nic_recv(F.s, fr, 1, 0), 0, "nothing received yet");
    struct moat_sqe rx[4];
    dom_take(rx, 4);            /* entries / 2 receive buffers posted */
    cr_assert_eq(rx[0].op, MOAT_NIC_RX);
    memset(F.mem + F.l.data_off + rx[0].buf_off, 0xAB, 60);
    dom_complete(rx[0].tag, MOAT_ST_OK, 60);
    cr_assert_eq(moat_nic_recv(F.s, fr, 0, 0), 0, "a zero-size receive takes nothing");
    /* The frame waits in its slot; the domain completes the same RX again. */
    dom_complete(rx[0].tag, MOAT_ST_OK, 60);
    int rc = moat_nic_recv(F.s, fr, 4, 0);
    cr_assert_eq(rc, -MOAT_EPROTO, "a second completion for a received frame must fail the "
                 "session, got %d", rc);
    cr_assert_eq(stats().malformed, 1u);
    /* The same in one batch. */
    open_nic_session();
    cr_assert_eq(moat_nic_recv(F.s, fr, 1, 0), 0);
    dom_take(rx, 4);
    dom_complete(rx[1].tag, MOAT_ST_OK, 60);
    dom_complete(rx[1].tag, MOAT_ST_OK, 60);
    rc = moat_nic_recv(F.s, fr, 4, 0);
    cr_assert_eq(rc, -MOAT_EPROTO, "a completion twice in one batch must fail the session, "
                 "got %d", rc);
}
