/* The bare app domains' session client (guest-kernel/bare/apps/
 * session_client.c) compiled for the host (GK_HOST_TEST): this file
 * includes it and plays what is around it — the monitor (SYS_SESSION_*:
 * session memory and the events page at the domain's fixed addresses,
 * mapped here), the run loop (the poller it registers is called directly)
 * and a server that is hostile where a test says so: completions for no
 * request, twice, with unknown status or too many blocks; fresh rings
 * after a restart; an impossible index; a server that stays down. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../../guest-kernel/bare/apps/session_client.c"

#define SC_FAKE_CHECK(...) cr_assert(__VA_ARGS__)
#include "session_client_fake.h"
#include "dd_fake_log.h"
/* ---- the app ---------------------------------------------------------------------- */

static struct sclient c;
static unsigned done_n[SC_INFLIGHT];
static uint32_t done_status[SC_INFLIGHT], done_len[SC_INFLIGHT];

static void on_done(void *ctx, unsigned slot, uint32_t status, uint32_t len)
{
    (void)ctx;
    cr_assert(slot < SC_INFLIGHT);
    done_n[slot]++;
    done_status[slot] = status;
    done_len[slot] = len;
}

static void setup(void)
{
    cr_assert(sc_fake_map(), "cannot map the domain's fixed addresses here");
    cr_assert(sc_open(&c, "srv0.blk0", MOAT_CAP_BLOCK, 0, on_done, NULL), "sc_open failed");
    cr_assert_not_null(poller);
}

static void teardown(void) {}

static int submit(uint16_t op, uint64_t lba, bool again)
{
    struct moat_sqe e = { .op = op, .blocks = 4, .lba = lba, .buf_off = lba * 512 };
    return sc_submit(&c, &e, again);
}

/* The server takes every request published, in order, into out. */
static uint32_t server_take(struct moat_sqe *out, uint32_t max)
{
    uint32_t n = 0;
    cr_assert_eq(moat_ring_avail(&srv_sq, &n), MOAT_RING_OK);
    cr_assert_leq(n, max);
    for (uint32_t i = 0; i < n; i++)
        memcpy(&out[i], moat_ring_peek(&srv_sq, i), sizeof out[i]);
    bool k;
    cr_assert_eq(moat_ring_consume(&srv_sq, n, &k), MOAT_RING_OK);
    return n;
}

static void server_complete(uint64_t tag, uint32_t status, uint32_t blocks)
{
    uint32_t space;
    cr_assert_eq(moat_ring_space(&srv_cq, &space), MOAT_RING_OK);
    cr_assert_gt(space, 0);
    *(struct moat_cqe *)moat_ring_slot(&srv_cq, 0) = (struct moat_cqe){ .tag = tag,
        .status = status, .blocks = blocks };
    bool k;
    cr_assert_eq(moat_ring_publish(&srv_cq, 1, &k), MOAT_RING_OK);
}

TestSuite(session_client, .init = setup, .fini = teardown);

Test(session_client, only_completions_of_requests_in_flight_are_believed)
{
    int a = submit(MOAT_BLK_READ, 1, true), b = submit(MOAT_BLK_WRITE, 2, true);
    cr_assert(a >= 0 && b >= 0 && a != b);
    struct moat_sqe got[ENTRIES];
    cr_assert_eq(server_take(got, ENTRIES), 2, "both requests must be published");
    server_complete(got[0].tag ^ 0x100, MOAT_ST_OK, 4);     /* no such request */
    server_complete(got[0].tag, MOAT_ST_MAX + 1, 4);         /* unknown status */
    server_complete(got[0].tag, MOAT_ST_OK, 5);              /* more blocks than asked */
    server_complete(got[0].tag, MOAT_ST_OK, 4);              /* right */
    server_complete(got[0].tag, MOAT_ST_OK, 4);              /* again: not in flight now */
    poller(poll_ctx);
    cr_assert_eq(done_n[a], 1, "request %d completed %u times", a, done_n[a]);
    cr_assert(done_status[a] == MOAT_ST_OK && done_len[a] == 4);
    cr_assert_eq(done_n[b], 0, "the other request completed without a completion");
    cr_assert_eq(c.bad_completions, 4, "%lu bad completions counted", c.bad_completions);
    cr_assert_eq(sc_in_flight(&c), 1);
}

Test(session_client, fresh_rings_get_what_was_in_flight_in_order_frames_being_sent_are_dropped)
{
    int a = submit(MOAT_BLK_WRITE, 1, true), tx = submit(MOAT_BLK_WRITE, 2, false),
        b = submit(MOAT_BLK_FLUSH, 0, true);
    struct moat_sqe got[ENTRIES];
    cr_assert_eq(server_take(got, ENTRIES), 3);
    server_rings(srv_k);                /* the server restarted: fresh rings, new generation */
    poller(poll_ctx);
    cr_assert_eq(done_n[tx], 1, "the request without `again` was not dropped");
    cr_assert_eq(done_status[tx], MOAT_ST_CANCELED);
    cr_assert(done_n[a] == 0 && done_n[b] == 0, "a request to publish again completed");
    cr_assert_eq(server_take(got, ENTRIES), 2, "not both published again");
    cr_assert(got[0].op == MOAT_BLK_WRITE && got[0].lba == 1 && got[1].op == MOAT_BLK_FLUSH,
              "published again out of order: op %u lba %lu, then op %u", got[0].op, got[0].lba,
              got[1].op);
    cr_assert(c.fresh_rings == 1 && c.resubmitted == 2 && c.dropped == 1);
    server_complete(got[1].tag, MOAT_ST_OK, 0);
    poller(poll_ctx);
    cr_assert_eq(done_n[b], 1, "a completion on the fresh rings was not taken");
}

Test(session_client, a_broken_ring_moves_to_a_fresh_session_with_the_data)
{
    int a = submit(MOAT_BLK_WRITE, 3, true);
    memset(c.data + 3 * 512, 0x5a, 4 * 512);            /* the write's buffer */
    struct moat_sqe got[ENTRIES];
    cr_assert_eq(server_take(got, ENTRIES), 1);
    uint32_t old = srv_k;
    __atomic_store_n(&srv_cq.sh->prod, srv_cq.idx + 3 * ENTRIES, __ATOMIC_RELEASE);
    poller(poll_ctx);
    cr_assert(opens == 2 && closes == 1 && !open_k[old], "the broken session was not replaced");
    cr_assert_neq(srv_k, old);
    cr_assert_eq(c.info.session, srv_k);
    for (uint32_t i = 0; i < 4 * 512; i++)
        cr_assert_eq(mem_of(srv_k)[DATA_OFF + 3 * 512 + i], 0x5a, "the data was not carried over");
    cr_assert_eq(server_take(got, ENTRIES), 1, "the write was not published again");
    server_complete(got[0].tag, MOAT_ST_OK, 4);
    poller(poll_ctx);
    cr_assert(done_n[a] == 1 && done_status[a] == MOAT_ST_OK && c.reopened == 1);
}

Test(session_client, a_server_that_keeps_breaking_rings_fails_the_requests)
{
    int a = submit(MOAT_BLK_READ, 1, true);
    for (unsigned i = 0; i <= SC_REOPENS_MAX; i++) {
        struct moat_sqe got[ENTRIES];
        server_take(got, ENTRIES);
        __atomic_store_n(&srv_cq.sh->prod, srv_cq.idx + 3 * ENTRIES, __ATOMIC_RELEASE);
        poller(poll_ctx);
    }
    cr_assert_eq(c.reopened, SC_REOPENS_MAX);
    cr_assert(done_n[a] == 1 && done_status[a] == MOAT_ST_EIO,
              "the request did not fail after %u broken sessions", SC_REOPENS_MAX + 1);
}

Test(session_client, a_server_down_for_good_fails_what_is_in_flight_and_what_comes)
{
    int a = submit(MOAT_BLK_WRITE, 1, true);
    ev->session_gen[srv_k] = BARE_SESSION_DOWN;
    poller(poll_ctx);
    cr_assert(done_n[a] == 1 && done_status[a] == MOAT_ST_EIO, "in flight did not fail");
    memset(done_n, 0, sizeof done_n);
    int b = submit(MOAT_BLK_READ, 2, true);
    cr_assert(b >= 0 && done_n[b] == 1 && done_status[b] == MOAT_ST_EIO,
              "a request submitted while the server is down did not fail at once");
    server_rings(srv_k);                /* the console restarted it: any generation but down */
    poller(poll_ctx);
    memset(done_n, 0, sizeof done_n);
    int d = submit(MOAT_BLK_READ, 3, true);
    struct moat_sqe got[ENTRIES];
    cr_assert_eq(server_take(got, ENTRIES), 1, "not served again after the restart");
    cr_assert_eq(done_n[d], 0, "failed although the server is back");
}
