/*
 * fuzz_session_client — the bare app domains' session client
 * (guest-kernel/bare/apps/session_client.c) against a hostile server:
 * everything the server, or the monitor on its behalf, can write — the
 * completion ring's entries and producer index, the request ring's
 * consumer index, fresh rings (a restart), the session down for good —
 * interleaved with the client's submissions and polls.
 * harness/lib/session_client_fake.h plays the monitor and the run loop.
 *
 * Input: ops until the input ends, each an opcode byte with operands:
 *   0 submit (op, blocks, lba, buffer offset, again)   1 the server takes
 *   up to n requests   2 a completion (a taken request's tag or any,
 *   status, blocks)   3 any completion producer index   4 any request
 *   consumer index   5 fresh rings   6 the server down for good   7 a poll.
 *
 * Checks beyond the sanitizers (abort() on violation): every completion
 * the client reports is of a request it had in flight, once, with a known
 * status; its count of requests in flight is the app's.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "../../guest-kernel/bare/apps/session_client.c"
#include "fuzz_input.h"
#include "session_client_fake.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

void dd_log(const char *fmt, ...) { (void)fmt; }
void dd_panic(const char *fmt, ...)
{
    (void)fmt;
    abort();
}

static struct sclient c;
static bool out[SC_INFLIGHT], in_submit, done_in_submit;
static uint64_t taken[ENTRIES];
static unsigned n_taken;

static void on_done(void *ctx, unsigned slot, uint32_t status, uint32_t len)
{
    (void)ctx;
    (void)len;
    FZ_CHECK(slot < SC_INFLIGHT && status <= MOAT_ST_MAX);
    if (in_submit) {                    /* the server is down: it fails at once */
        done_in_submit = true;
        return;
    }
    FZ_CHECK(out[slot]);
    out[slot] = false;
}

static void take(uint32_t max)
{
    uint32_t n;
    if (moat_ring_avail(&srv_sq, &n) != MOAT_RING_OK)
        return;
    for (uint32_t i = 0; i < n && i < max; i++) {
        struct moat_sqe e;
        memcpy(&e, moat_ring_peek(&srv_sq, i), sizeof e);
        taken[n_taken++ % ENTRIES] = e.tag;
    }
    bool k;
    moat_ring_consume(&srv_sq, n < max ? n : max, &k);
}

static void srv_complete(uint64_t tag, uint32_t status, uint32_t blocks)
{
    uint32_t space;
    if (moat_ring_space(&srv_cq, &space) != MOAT_RING_OK || !space)
        return;
    *(struct moat_cqe *)moat_ring_slot(&srv_cq, 0) = (struct moat_cqe){ .tag = tag,
        .status = status, .blocks = blocks };
    bool k;
    moat_ring_publish(&srv_cq, 1, &k);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz f = fz_init(data, size);
    if (!sc_fake_map())
        abort();
    memset(out, 0, sizeof out);
    n_taken = 0;
    FZ_CHECK(sc_open(&c, "srv0.blk0", MOAT_CAP_BLOCK, 0, on_done, NULL));
    for (unsigned ops = 0; fz_left(&f) && ops < 512; ops++) {
        switch (fz_u8(&f) % 8) {
        case 0: {
            struct moat_sqe e = { .op = (uint16_t)(fz_u8(&f) % 7), .blocks = fz_u8(&f),
                                  .lba = fz_u32(&f), .buf_off = fz_u32(&f) };
            bool again = fz_u8(&f) & 1;
            in_submit = true;
            done_in_submit = false;
            int s = sc_submit(&c, &e, again);
            in_submit = false;
            if (s >= 0) {
                FZ_CHECK(!out[s]);
                out[s] = !done_in_submit;
            }
            break;
        }
        case 1:
            take(fz_below(&f, ENTRIES + 1));
            break;
        case 2: {
            uint8_t pick = fz_u8(&f);
            uint64_t tag = pick & 0x80 || !n_taken ? fz_u64(&f) : taken[pick % ENTRIES];
            srv_complete(tag, fz_u8(&f) % (MOAT_ST_MAX + 3), fz_u8(&f));
            break;
        }
        case 3:
            __atomic_store_n(&srv_cq.sh->prod, fz_u32(&f), __ATOMIC_RELEASE);
            break;
        case 4:
            __atomic_store_n(&srv_sq.sh->cons, fz_u32(&f), __ATOMIC_RELEASE);
            break;
        case 5:
            server_rings(srv_k);
            break;
        case 6:
            ev->session_gen[srv_k] = BARE_SESSION_DOWN;
            break;
        default:
            poller(poll_ctx);
            break;
        }
        unsigned n = 0;
        for (unsigned s = 0; s < SC_INFLIGHT; s++)
            n += out[s];
        FZ_CHECK(n == sc_in_flight(&c));
    }
    return 0;
}
