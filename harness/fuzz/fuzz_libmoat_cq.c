/*
 * fuzz_libmoat_cq — libmoat's validation of what a hostile serving domain
 * writes into a session (shared/libmoat/session.c: moat_blk_submit,
 * moat_poll, moat_wait; shared/libmoat/nic.c: moat_nic_send,
 * moat_nic_recv and the completion reaper behind them; the ring indices
 * through shared/src/ring.c).
 *
 * Per input: a fresh session (BlockDevice or Nic) over fresh heap memory
 * laid out like vmm/capsvc.c does it, attached with moat__session_attach
 * (_nic) (no VMM, no client connection: a malformed completion fails the
 * session with MOAT_EPROTO, never a recovery). The target plays both the
 * client (through the public calls) and the domain (raw writes into the
 * shared memory). Everything is synchronous and single-threaded: moat_wait
 * runs with a 0 ms timeout (a 20 us spin, then -MOAT_ETIMEDOUT);
 * moat_nic_status is not called (it blocks until the domain answers, which
 * a single thread cannot do) — instead an INFO request is put into the
 * ring the way nic.c's put() does, so the reaper's INFO path is covered.
 *
 * Input: byte 0 bit 0 picks Nic (1) or BlockDevice (0); then the session
 * shape (ring depth 8/16/32, rights, block geometry and feature flags or
 * Nic MTU, data area slack, the data area's fill byte), then up to 256
 * operations, each an opcode byte and its operands:
 *   client: submit a batch of block requests (op, lba, blocks each) / send
 *           frames (lengths) / receive (max frames, capacities) / put an
 *           INFO request; moat_poll(max) and moat_wait(max, 0);
 *   domain: complete an outstanding request well-formed (status, length),
 *           write a raw completion (tag near a real one or arbitrary,
 *           status, length) and publish it, set the CQ producer index
 *           (relative or absolute), consume SQ entries, set the SQ
 *           consumer index, poke any u32 of either ring header, write
 *           bytes into the data area.
 * The target keeps its own model of the protocol as session_abi.h states
 * it and aborts when libmoat disagrees. Checks beyond the sanitizers:
 *  - every request published names a data buffer inside the data area and
 *    carries the tag, op, lba and length submitted; a WRITE's (TX's) bytes
 *    are in its buffer when it is published; tags of outstanding requests
 *    are distinct;
 *  - a completion libmoat accepts names a request that is outstanding (a
 *    received frame not yet taken is no longer outstanding); each request
 *    completes exactly once; a block completion carries the user_data,
 *    the mapped status and the block count of the model (count == request
 *    on success, <= on error), a READ's buffer receives exactly the data
 *    area bytes on success and is untouched on error;
 *  - libmoat accepts exactly the prefix of completions the contract
 *    allows: the first malformed one (unknown tag, duplicate, unknown
 *    status, bad length, CANCELED on INFO, length on a failure) or an
 *    impossible producer / consumer index fails the session with
 *    MOAT_EPROTO (stats.malformed counts it), never later, never
 *    earlier, and every request outstanding then completes with
 *    MOAT_EPROTO exactly once; the CQ consumer index advances by exactly
 *    the completions taken;
 *  - Nic: tx_inflight, rx_posted and the received-frame queue match the
 *    model; received frames come out in completion order with the length
 *    the domain gave (14..max_frame), at most the caller's capacity copied,
 *    the bytes being the buffer's; sends respect the send half of the ring
 *    (entries - entries/2); refills keep entries/2 buffers posted unless
 *    the ring or the slots are full; an accepted INFO answer is the bytes
 *    of its buffer;
 *  - submitted/completed statistics and moat_inflight add up.
 * Seeds (harness/fuzz/corpus/fuzz_libmoat_cq/): block sessions doing
 * submit/complete/poll/wait rounds with reads and writes, a wrap of the
 * ring, a malformed tag; Nic sessions posting receive buffers, receiving
 * frames, sending, an INFO request, a duplicate RX completion.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include "fuzz_input.h"
#include "libmoat_internal.h"
#include "moat/ring.h"
#include "moat/session_abi.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c) FZ_CHECK(c)

#define PAGE_SZ 4096ull
#define BS 512u
#define OPS_MAX 256u
#define REQ_MAX 2048u
#define ENTRIES_MAX 32u

enum rstate { R_OUT = 1, R_READY, R_DONE };

struct req {
    uint64_t tag;
    uint16_t op;
    uint32_t len;               /* blocks (block) or bytes (Nic) as published */
    uint64_t buf_off;
    uint8_t *ubuf;              /* block READ/WRITE: the caller's buffer (exact size) */
    size_t ubuf_len;
    uint8_t fill;               /* what ubuf held at submit */
    enum rstate st;
    uint32_t got_len;           /* RX: frame length while ready */
};

static struct {
    bool nic;
    uint8_t *mem;
    struct moat_session_reply l;
    struct moat_session *s;
    uint32_t entries, mask;
    struct moat_blk_geometry geo;
    struct moat_nic_info info;
    uint32_t rights;
    struct req req[REQ_MAX];
    uint32_t n_req;
    uint32_t sq_seen;           /* SQ entries already recorded */
    uint32_t cq_cons;           /* the model's copy of libmoat's CQ consumer index */
    uint32_t dprod;             /* the domain's CQ producer counter */
    bool broken;                /* the model says: failed with EPROTO */
    uint64_t completed;         /* ring completions accepted */
    uint32_t ready[REQ_MAX];    /* Nic: received frames in completion order (req index) */
    uint32_t ready_head, ready_n;
    bool info_expect;
    uint8_t info_bytes[sizeof(struct moat_nic_status)];
} G;

static int kick_fd = -1, notify_fd = -1;

/* ---- shared memory views ------------------------------------------------------------ */

static struct moat_ring_shared *sq_hdr(void) { return (void *)(G.mem + G.l.sq_off); }
static struct moat_ring_shared *cq_hdr(void) { return (void *)(G.mem + G.l.cq_off); }
static uint8_t *data_area(void) { return G.mem + G.l.data_off; }
static uint32_t ld(const uint32_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static void st(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

static struct moat_sqe sqe_at(uint32_t pos)
{
    struct moat_sqe e;
    memcpy(&e, G.mem + G.l.sq_off + MOAT_RING_HDR_SIZE + (size_t)(pos & G.mask) * sizeof e,
           sizeof e);
    return e;
}

static struct moat_cqe *cqe_at(uint32_t pos)
{
    return (struct moat_cqe *)(G.mem + G.l.cq_off + MOAT_RING_HDR_SIZE +
                               (size_t)(pos & G.mask) * sizeof(struct moat_cqe));
}

/* Is the SQ consumer index the domain claims impossible? */
static bool sq_corrupt(void) { return G.s->sq.idx - ld(&sq_hdr()->cons) > G.entries; }

static uint32_t count_state(enum rstate s, int op)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < G.n_req; i++)
        if (G.req[i].st == s && (op < 0 || G.req[i].op == op))
            n++;
    return n;
}

static struct req *find_out(uint64_t tag)
{
    for (uint32_t i = 0; i < G.n_req; i++)
        if (G.req[i].st == R_OUT && G.req[i].tag == tag)
            return &G.req[i];
    return NULL;
}

/* Record the requests libmoat published since the last look. ops[]: the
 * op each new entry must carry (NULL: any Nic op). */
static void record_new(uint32_t n, const uint16_t *ops, const uint32_t *lens, const uint64_t *lbas,
                       uint8_t *const *ubufs, const size_t *ubuf_lens, const uint8_t *fills)
{
    CHECK(G.s->sq.idx - G.sq_seen == n);
    for (uint32_t i = 0; i < n; i++) {
        struct moat_sqe e = sqe_at(G.sq_seen + i);
        CHECK(G.n_req < REQ_MAX);
        struct req *r = &G.req[G.n_req];
        CHECK(!find_out(e.tag));
        for (uint32_t k = 0; k < G.n_req; k++)
            CHECK(G.req[k].st != R_READY || G.req[k].tag != e.tag);
        CHECK(e.flags == 0);
        *r = (struct req){ .tag = e.tag, .op = e.op, .len = e.blocks, .buf_off = e.buf_off,
                           .st = R_OUT };
        /* Only data ops use the buffer (block FLUSH/WRITE_ZEROES/DISCARD do not). */
        bool buf = G.nic || e.op == MOAT_BLK_READ || e.op == MOAT_BLK_WRITE;
        uint64_t bytes = G.nic ? e.blocks : (uint64_t)e.blocks * BS;
        CHECK(!buf || (e.buf_off <= G.l.data_size && bytes <= G.l.data_size - e.buf_off));
        if (ops)
            CHECK(e.op == ops[i]);
        if (!G.nic) {
            CHECK(e.blocks == lens[i]);
            CHECK(e.lba == lbas[i]);
            r->ubuf = ubufs[i];
            r->ubuf_len = ubuf_lens[i];
            r->fill = fills[i];
            if (e.op == MOAT_BLK_WRITE)
                CHECK(memcmp(data_area() + e.buf_off, r->ubuf, bytes) == 0);
        } else if (e.op == MOAT_NIC_TX) {
            CHECK(lens && e.blocks == lens[i]);
            CHECK(ubufs && memcmp(data_area() + e.buf_off, ubufs[i], e.blocks) == 0);
        } else if (e.op == MOAT_NIC_RX) {
            CHECK(e.blocks == G.s->slot_bytes && e.blocks >= G.info.max_frame);
        } else {
            CHECK(e.op == MOAT_NIC_INFO && e.blocks == sizeof(struct moat_nic_status));
        }
        G.n_req++;
    }
    G.sq_seen += n;
}

/* ---- block: the model of moat_poll -------------------------------------------------- */

static int blk_status(uint32_t s)
{
    switch (s) {
    case MOAT_ST_OK:      return 0;
    case MOAT_ST_EINVAL:  return -MOAT_EINVAL;
    case MOAT_ST_EIO:     return -MOAT_EIO;
    case MOAT_ST_ENOTSUP: return -MOAT_ENOTSUP;
    case MOAT_ST_EROFS:   return -MOAT_EROFS;
    case MOAT_ST_ERANGE:  return -MOAT_ERANGE;
    case MOAT_ST_EPERM:   return -MOAT_EPERM;
    default:              return -MOAT_EPROTO;  /* CANCELED: libmoat has no better code */
    }
}

struct expect { uint32_t ri; int status; uint32_t blocks; };

/* A completion libmoat returned: must be ri's first one. */
static void blk_take(uint32_t ri, const struct moat_completion *c)
{
    CHECK(ri < G.n_req);
    struct req *r = &G.req[ri];
    CHECK(r->st == R_OUT);
    r->st = R_DONE;
    if (r->op == MOAT_BLK_READ && c->status == 0) {
        CHECK((size_t)c->blocks * BS == r->ubuf_len);
        CHECK(memcmp(r->ubuf, data_area() + r->buf_off, r->ubuf_len) == 0);
    } else if (r->ubuf) {
        for (size_t i = 0; i < r->ubuf_len; i++)
            CHECK(r->ubuf[i] == r->fill);
    }
}

/* moat_poll (wait = false) or moat_wait(max, 0 ms), checked against the model. */
static void blk_poll(uint32_t max, bool wait)
{
    struct moat_completion out[2 * ENTRIES_MAX + 2];
    struct expect ex[2 * ENTRIES_MAX + 2];
    uint32_t n_ex = 0, consumed = 0;
    bool was_broken = G.broken, brk = false;
    uint64_t malformed0 = G.s->st.malformed;
    if (!G.broken && max) {
        uint32_t a = ld(&cq_hdr()->prod) - G.cq_cons;
        if (a > G.entries)
            brk = true;
        for (uint32_t i = 0; !brk && i < a && n_ex < max; i++) {
            struct moat_cqe e = *cqe_at(G.cq_cons + i);
            struct req *r = find_out(e.tag);
            bool ok = r && e.status <= MOAT_ST_MAX &&
                      (e.status == MOAT_ST_OK ? e.blocks == r->len : e.blocks <= r->len);
            for (uint32_t k = 0; ok && k < n_ex; k++)
                ok = ex[k].ri != (uint32_t)(r - G.req);     /* twice in one batch */
            if (!ok) {
                brk = true;
                break;
            }
            ex[n_ex++] = (struct expect){ .ri = (uint32_t)(r - G.req),
                                          .status = blk_status(e.status), .blocks = e.blocks };
            consumed++;
        }
    }
    uint32_t out_before = count_state(R_OUT, -1);
    int rc = wait ? moat_wait(G.s, out, max, 0) : moat_poll(G.s, out, max);
    bool now_broken = was_broken || brk;
    CHECK(G.s->err == (now_broken ? -MOAT_EPROTO : 0));
    CHECK(G.s->st.malformed == malformed0 + (brk ? 1u : 0u));
    uint32_t left_out = out_before - n_ex;     /* failed with EPROTO when broken */
    uint32_t want = n_ex + (now_broken ? (left_out < max - n_ex ? left_out : max - n_ex) : 0);
    if (max == 0)
        want = 0;
    if (wait && want == 0 && max)
        CHECK(rc == (now_broken ? -MOAT_EPROTO : out_before ? -MOAT_ETIMEDOUT : 0));
    else
        CHECK(rc == (int)want);
    for (uint32_t i = 0; i < n_ex; i++) {
        CHECK(out[i].user_data == ex[i].ri && out[i].status == ex[i].status &&
              out[i].blocks == ex[i].blocks);
        blk_take(ex[i].ri, &out[i]);
    }
    for (uint32_t i = n_ex; i < want; i++) {
        CHECK(out[i].status == -MOAT_EPROTO && out[i].blocks == 0);
        CHECK(out[i].user_data < G.n_req);
        blk_take((uint32_t)out[i].user_data, &out[i]);
    }
    G.completed += n_ex;
    if (!now_broken)
        G.cq_cons += consumed;
    G.broken = now_broken;
    CHECK(G.s->cq.idx == G.cq_cons);
}

static const uint16_t blk_ops[8] = { MOAT_BLK_READ, MOAT_BLK_WRITE, MOAT_BLK_READ, MOAT_BLK_WRITE,
                                     MOAT_BLK_FLUSH, MOAT_BLK_WRITE_ZEROES, MOAT_BLK_DISCARD, 9 };

static void blk_submit(struct fz *f)
{
    uint32_t n = 1 + fz_below(f, 4);
    struct moat_blk_req rq[4];
    uint16_t ops[4];
    uint32_t lens[4];
    uint64_t lbas[4];
    uint8_t *bufs[4] = { 0 };
    size_t blens[4] = { 0 };
    uint8_t fills[4] = { 0 };
    for (uint32_t i = 0; i < n; i++) {
        uint16_t op = blk_ops[fz_u8(f) % 8];
        uint32_t blocks = fz_u8(f) % (G.geo.max_blocks + 2);
        uint64_t lba = fz_u16(f) % (G.geo.blocks + 2);
        bool data = op == MOAT_BLK_READ || op == MOAT_BLK_WRITE;
        if (data && blocks) {
            blens[i] = (size_t)blocks * BS;
            bufs[i] = malloc(blens[i]);
            CHECK(bufs[i]);
            fills[i] = (uint8_t)(G.n_req + i * 7 + 1);
            memset(bufs[i], fills[i], blens[i]);
        }
        rq[i] = (struct moat_blk_req){ .op = op, .lba = lba, .blocks = blocks, .buf = bufs[i],
                                       .user_data = G.n_req + i };
        ops[i] = op;
        lens[i] = op == MOAT_BLK_FLUSH ? 0 : blocks;
        lbas[i] = op == MOAT_BLK_FLUSH ? 0 : lba;
    }
    if (G.n_req + n > REQ_MAX) {
        for (uint32_t i = 0; i < n; i++)
            free(bufs[i]);
        return;
    }
    bool corrupt = sq_corrupt();
    uint32_t space = corrupt ? 0 : G.entries - (G.s->sq.idx - ld(&sq_hdr()->cons));
    uint32_t nfree = G.entries - count_state(R_OUT, -1);
    uint32_t q = n < space ? n : space;
    q = q < nfree ? q : nfree;
    uint64_t malformed0 = G.s->st.malformed;
    int rc = moat_blk_submit(G.s, rq, n);
    if (G.broken) {
        CHECK(rc == -MOAT_EPROTO);
    } else if (rc == -MOAT_EPROTO) {
        CHECK(corrupt && G.s->st.malformed == malformed0 + 1);
        G.broken = true;
    } else if (rc < 0 && rc != -MOAT_EBUSY) {
        CHECK(G.s->err == 0);   /* the request itself was refused */
    } else {
        CHECK(!corrupt);
        CHECK(rc == (q ? (int)q : -MOAT_EBUSY));
    }
    uint32_t took = rc > 0 ? (uint32_t)rc : 0;
    record_new(took, ops, lens, lbas, bufs, blens, fills);
    for (uint32_t i = took; i < n; i++)
        free(bufs[i]);
}

/* ---- Nic: the model of the reaper --------------------------------------------------- */

/* What reap() must do with the completions published now: accept a
 * prefix (applied to the model here), then maybe break. */
static bool nic_reap_model(void)
{
    if (G.broken)
        return true;
    uint32_t a = ld(&cq_hdr()->prod) - G.cq_cons;
    if (a > G.entries)
        return true;
    for (uint32_t i = 0; i < a; i++) {
        struct moat_cqe e = *cqe_at(G.cq_cons);     /* advanced below per entry taken */
        struct req *r = find_out(e.tag);
        if (!r)
            return true;
        bool ok = e.status == MOAT_ST_OK;
        if (e.status > MOAT_ST_MAX || (e.status == MOAT_ST_CANCELED && r->op == MOAT_NIC_INFO) ||
            (!ok && e.blocks) || (ok && r->op == MOAT_NIC_TX && e.blocks != r->len) ||
            (ok && r->op == MOAT_NIC_RX &&
             (e.blocks < MOAT_NIC_ETH_HDR || e.blocks > G.info.max_frame)) ||
            (ok && r->op == MOAT_NIC_INFO && e.blocks != sizeof(struct moat_nic_status)))
            return true;
        G.cq_cons++;
        G.completed++;
        if (r->op == MOAT_NIC_RX && ok) {
            r->st = R_READY;
            r->got_len = e.blocks;
            CHECK(G.ready_n < REQ_MAX);
            G.ready[(G.ready_head + G.ready_n++) % REQ_MAX] = (uint32_t)(r - G.req);
        } else {
            r->st = R_DONE;
        }
        if (r->op == MOAT_NIC_INFO) {
            G.info_expect = ok;
            if (ok)
                memcpy(G.info_bytes, data_area() + r->buf_off, sizeof G.info_bytes);
        }
    }
    return false;
}

/* After a Nic call: libmoat agrees with the model. */
static void nic_check(bool brk, uint64_t malformed0)
{
    CHECK(G.s->st.malformed == malformed0 + (brk && !G.broken ? 1u : 0u));
    G.broken = G.broken || brk;
    CHECK(G.s->err == (G.broken ? -MOAT_EPROTO : 0));
    if (G.broken)
        return;
    CHECK(G.s->cq.idx == G.cq_cons);
    CHECK(G.s->nic.tx_inflight == count_state(R_OUT, MOAT_NIC_TX));
    CHECK(G.s->nic.rx_posted == count_state(R_OUT, MOAT_NIC_RX));
    CHECK(G.s->nic.ready_n == G.ready_n);
    CHECK(G.s->n_free == G.entries - count_state(R_OUT, -1) - count_state(R_READY, -1));
    CHECK(G.s->st.completed == G.completed);
    if (G.info_expect) {
        CHECK(G.s->nic.info_done && memcmp(&G.s->nic.status, G.info_bytes, sizeof G.info_bytes) == 0);
        G.info_expect = false;
    }
}

/* The SQ's room as sq_space() sees it, or -1 when the index is impossible. */
static int64_t sq_room(void)
{
    return sq_corrupt() ? -1 : (int64_t)(G.entries - (G.s->sq.idx - ld(&sq_hdr()->cons)));
}

static void nic_send(struct fz *f)
{
    uint32_t n = 1 + fz_below(f, 4);
    if (G.n_req + n > REQ_MAX)
        return;
    struct moat_frame fr[4];
    uint8_t *bufs[4];
    uint32_t lens[4];
    uint16_t ops[4];
    bool bad_len = false;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t len = fz_u8(f) == 0xff ? fz_u16(f) : MOAT_NIC_ETH_HDR + fz_u16(f) % (G.info.max_frame - 13);
        bad_len |= len < MOAT_NIC_ETH_HDR || len > G.info.max_frame;
        bufs[i] = malloc(len ? len : 1);
        CHECK(bufs[i]);
        for (uint32_t k = 0; k < len; k++)
            bufs[i][k] = (uint8_t)(k * 13 + G.n_req + i);
        fr[i] = (struct moat_frame){ .data = bufs[i], .len = len };
        lens[i] = len;
        ops[i] = MOAT_NIC_TX;
    }
    uint64_t malformed0 = G.s->st.malformed;
    bool reaps = (G.rights & MOAT_RIGHT_WRITE) && !bad_len;
    bool brk = reaps && nic_reap_model();
    int64_t room = reaps && !brk ? sq_room() : 0;
    brk |= room < 0;
    uint32_t tx_max = G.entries - G.entries / 2, tx_out = count_state(R_OUT, MOAT_NIC_TX);
    uint32_t nfree = G.entries - count_state(R_OUT, -1) - count_state(R_READY, -1);
    uint32_t q = n;
    q = (int64_t)q < room ? q : (uint32_t)(room > 0 ? room : 0);
    q = q < nfree ? q : nfree;
    q = q < tx_max - tx_out ? q : tx_max - tx_out;
    int rc = moat_nic_send(G.s, fr, n);
    if (!(G.rights & MOAT_RIGHT_WRITE))
        CHECK(rc == -MOAT_EPERM);
    else if (bad_len)
        CHECK(rc == -MOAT_EINVAL);
    else
        CHECK(rc == (brk || G.broken ? -MOAT_EPROTO : (int)q));
    record_new(rc > 0 ? (uint32_t)rc : 0, ops, lens, NULL, bufs, NULL, NULL);
    nic_check(brk, malformed0);
    for (uint32_t i = 0; i < n; i++)
        free(bufs[i]);
}

/* After a refill: either entries/2 buffers are posted or there was no room. */
static void nic_refill_check(void)
{
    if (G.broken || !(G.rights & MOAT_RIGHT_READ))
        return;
    uint32_t posted = count_state(R_OUT, MOAT_NIC_RX) + G.ready_n;
    uint32_t nfree = G.entries - count_state(R_OUT, -1) - count_state(R_READY, -1);
    CHECK(posted <= G.entries / 2);
    CHECK(posted >= G.entries / 2 || nfree == 0 || sq_room() == 0);
}

static void nic_recv(struct fz *f)
{
    uint32_t max = fz_below(f, 5);
    struct moat_frame fr[4];
    uint8_t *bufs[4] = { 0 };
    for (uint32_t i = 0; i < max; i++) {
        uint32_t cap = fz_u8(f) < 32 ? fz_u16(f) % (G.info.max_frame + 1) : G.info.max_frame;
        bufs[i] = malloc(cap ? cap : 1);
        CHECK(bufs[i]);
        fr[i] = (struct moat_frame){ .data = bufs[i], .len = cap };
    }
    if (G.n_req + G.entries > REQ_MAX)
        goto out;
    uint64_t malformed0 = G.s->st.malformed;
    bool reads = G.rights & MOAT_RIGHT_READ;
    bool brk = reads && nic_reap_model();
    brk |= reads && !brk && sq_room() < 0;
    uint32_t caps[4];
    for (uint32_t i = 0; i < max; i++)
        caps[i] = fr[i].len;
    uint32_t seen0 = G.sq_seen;
    int rc = moat_nic_recv(G.s, fr, max, 0);
    if (!reads) {
        CHECK(rc == -MOAT_EPERM);
        goto out;
    }
    if (brk || G.broken) {
        CHECK(rc == -MOAT_EPROTO);
        CHECK(G.s->sq.idx == seen0);
        nic_check(brk, malformed0);
        goto out;
    }
    uint32_t want = max < G.ready_n ? max : G.ready_n;
    CHECK(rc == (int)want);
    for (uint32_t i = 0; i < want; i++) {
        struct req *r = &G.req[G.ready[G.ready_head]];
        G.ready_head = (G.ready_head + 1) % REQ_MAX;
        G.ready_n--;
        CHECK(r->st == R_READY && fr[i].len == r->got_len);
        CHECK(r->got_len >= MOAT_NIC_ETH_HDR && r->got_len <= G.info.max_frame);
        uint32_t copy = r->got_len < caps[i] ? r->got_len : caps[i];
        CHECK(memcmp(bufs[i], data_area() + r->buf_off, copy) == 0);
        r->st = R_DONE;
    }
    uint32_t n_new = G.s->sq.idx - G.sq_seen;
    uint16_t ops[ENTRIES_MAX];
    for (uint32_t i = 0; i < n_new && i < ENTRIES_MAX; i++)
        ops[i] = MOAT_NIC_RX;
    CHECK(n_new <= ENTRIES_MAX);
    record_new(n_new, ops, NULL, NULL, NULL, NULL, NULL);
    nic_check(false, malformed0);
    nic_refill_check();
out:
    for (uint32_t i = 0; i < max; i++)
        free(bufs[i]);
}

/* An INFO request, put the way nic.c's put() does (see the header). */
static void nic_info(void)
{
    struct moat_session *s = G.s;
    if (!(G.rights & MOAT_RIGHT_READ) || G.broken || sq_room() <= 0 || !s->n_free ||
        G.n_req >= REQ_MAX)
        return;
    uint32_t idx = s->free_idx[--s->n_free];
    struct moat_slot *sl = &s->slot[idx];
    sl->busy = true;
    sl->op = MOAT_NIC_INFO;
    sl->blocks = sizeof(struct moat_nic_status);
    sl->gen = sl->gen + 1 ? sl->gen + 1 : 1;
    s->nic.info_done = false;
    s->nic.status.reserved = 0;
    struct moat_nic_sqe e = { .tag = (uint64_t)sl->gen << 32 | idx, .op = MOAT_NIC_INFO,
                              .len = sl->blocks, .buf_off = (uint64_t)idx * s->slot_bytes };
    memcpy(moat_ring_slot(&s->sq, 0), &e, sizeof e);
    CHECK(moat__publish(s, 1) == 0);
    uint16_t op = MOAT_NIC_INFO;
    record_new(1, &op, NULL, NULL, NULL, NULL, NULL);
}

/* ---- the domain --------------------------------------------------------------------- */

static void dom_publish(uint64_t tag, uint32_t status, uint32_t len)
{
    struct moat_cqe *e = cqe_at(G.dprod);
    *e = (struct moat_cqe){ .tag = tag, .status = status, .blocks = len };
    st(&cq_hdr()->prod, ++G.dprod);
}

/* Complete an outstanding request the way a correct domain would (mostly). */
static void dom_complete_good(struct fz *f)
{
    uint32_t n_out = count_state(R_OUT, -1);
    if (!n_out)
        return;
    uint32_t k = fz_below(f, n_out);
    struct req *r = NULL;
    for (uint32_t i = 0; i < G.n_req; i++)
        if (G.req[i].st == R_OUT && k-- == 0) {
            r = &G.req[i];
            break;
        }
    uint8_t sel = fz_u8(f);
    uint32_t status = sel < 200 ? MOAT_ST_OK : 1u + sel % 7u;
    uint32_t len = 0;
    if (status == MOAT_ST_OK) {
        if (!G.nic)
            len = r->len;
        else if (r->op == MOAT_NIC_TX)
            len = r->len;
        else if (r->op == MOAT_NIC_RX)
            len = MOAT_NIC_ETH_HDR + fz_u16(f) % (G.info.max_frame - 13);
        else
            len = sizeof(struct moat_nic_status);
    } else if (!G.nic) {
        len = r->len ? fz_below(f, r->len + 1) : 0;
    }
    dom_publish(r->tag, status, len);
}

/* Publish a raw completion: a tag near a real one, or any. */
static void dom_complete_raw(struct fz *f)
{
    uint8_t how = fz_u8(f);
    uint64_t tag;
    if (G.n_req && how < 192) {
        tag = G.req[fz_below(f, G.n_req)].tag;
        if (how & 1)
            tag ^= (uint64_t)1 << (fz_u8(f) % 64);
    } else {
        tag = fz_u64(f);
    }
    uint32_t status = fz_u8(f);
    if (status > 250)
        status = fz_u32(f);
    uint32_t len = fz_u8(f) < 128 ? fz_u16(f) : fz_u32(f);
    dom_publish(tag, status, len);
}

static const uint32_t hdr_fields[] = { 0, 4, 64, 68, 128, 132, 136, 140 };

static void dom_op(struct fz *f, uint8_t op)
{
    switch (op) {
    case 0: /* CQ producer relative to libmoat's consumer */
        G.dprod = G.s->cq.idx + (uint32_t)(int8_t)fz_u8(f);
        st(&cq_hdr()->prod, G.dprod);
        break;
    case 1: /* CQ producer, any value */
        G.dprod = fz_u32(f);
        st(&cq_hdr()->prod, G.dprod);
        break;
    case 2: { /* consume up to n requests */
        uint32_t cons = ld(&sq_hdr()->cons), avail = G.s->sq.idx - cons;
        uint32_t n = fz_below(f, G.entries + 1);
        if (avail <= G.entries)
            st(&sq_hdr()->cons, cons + (n < avail ? n : avail));
        break;
    }
    case 3: /* SQ consumer, relative */
        st(&sq_hdr()->cons, G.s->sq.idx - (uint32_t)(int8_t)fz_u8(f));
        break;
    case 4: { /* any u32 of either ring header */
        uint8_t sel = fz_u8(f);
        uint8_t *h = (uint8_t *)((sel & 0x80) ? cq_hdr() : sq_hdr());
        uint32_t v = fz_u32(f);
        memcpy(h + hdr_fields[sel % 8], &v, sizeof v);
        break;
    }
    case 5: { /* data area bytes */
        uint64_t off = fz_u32(f) % G.l.data_size;
        uint32_t len = fz_u8(f);
        if (len > G.l.data_size - off)
            len = (uint32_t)(G.l.data_size - off);
        uint8_t v = fz_u8(f);
        for (uint32_t i = 0; i < len; i++)
            data_area()[off + i] = (uint8_t)(v + i);
        break;
    }
    default:
        break;
    }
}

/* ---- one input ---------------------------------------------------------------------- */

static uint64_t page_up(uint64_t v) { return (v + PAGE_SZ - 1) & ~(PAGE_SZ - 1); }

static bool setup(struct fz *f)
{
    uint8_t mode = fz_u8(f);
    G.nic = mode & 1;
    G.entries = 8u << fz_below(f, 3);
    G.mask = G.entries - 1;
    G.rights = fz_u8(f) % 4;
    uint64_t slot;
    if (!G.nic) {
        G.geo = (struct moat_blk_geometry){ .block_size = BS, .max_blocks = 1 + fz_u8(f) % 8,
                                            .blocks = 1 + fz_u16(f) % 4096,
                                            .flags = fz_u8(f) & MOAT_BLK_F_ALL, .queues = 1 };
        slot = (uint64_t)G.geo.max_blocks * BS + (fz_u8(f) % 3) * BS;
    } else {
        uint16_t mtu = (uint16_t)(MOAT_NIC_MTU_MIN + fz_u16(f) % (1500 - MOAT_NIC_MTU_MIN + 1));
        G.info = (struct moat_nic_info){ .mac = { 2, 0, 0, 0, 0, 1 }, .mtu = mtu,
                                         .max_frame = mtu + MOAT_NIC_ETH_HDR, .queues = 1 };
        slot = ((G.info.max_frame + 63) & ~63u) + (fz_u8(f) % 3) * 64u;
    }
    uint8_t fill = fz_u8(f);
    G.l = (struct moat_session_reply){ .session_id = 7, .entries = G.entries };
    G.l.cq_off = page_up(moat_ring_bytes(G.entries, sizeof(struct moat_sqe)));
    G.l.data_off = G.l.cq_off + page_up(moat_ring_bytes(G.entries, sizeof(struct moat_cqe)));
    G.l.data_size = slot * G.entries;
    G.l.size = G.l.data_off + G.l.data_size;
    G.mem = aligned_alloc(PAGE_SZ, page_up(G.l.size));
    CHECK(G.mem);
    memset(G.mem, 0, G.l.data_off);
    memset(G.mem + G.l.data_off, fill, G.l.data_size);
    CHECK(moat_ring_format(G.mem + G.l.sq_off, G.l.cq_off - G.l.sq_off, G.entries,
                           sizeof(struct moat_sqe)) == MOAT_RING_OK);
    CHECK(moat_ring_format(G.mem + G.l.cq_off, G.l.data_off - G.l.cq_off, G.entries,
                           sizeof(struct moat_cqe)) == MOAT_RING_OK);
    int rc = G.nic ? moat__session_attach_nic(G.mem, &G.l, kick_fd, notify_fd, &G.info,
                                              G.rights, &G.s)
                   : moat__session_attach(G.mem, &G.l, kick_fd, notify_fd, &G.geo, G.rights,
                                          &G.s);
    CHECK(rc == 0);
    return true;
}

static void teardown(void)
{
    if (G.s && !G.nic) {
        /* Drain: a failed session owes every outstanding request. */
        for (int i = 0; i < 8; i++)
            blk_poll(2 * ENTRIES_MAX, false);
        if (G.broken)
            CHECK(count_state(R_OUT, -1) == 0);
        CHECK(moat_inflight(G.s) == count_state(R_OUT, -1));
    }
    if (G.s) {
        CHECK(G.s->st.submitted == G.sq_seen);
        if (!G.broken)
            CHECK(G.s->st.completed == G.completed);
        moat__session_detach(G.s);
    }
    for (uint32_t i = 0; i < G.n_req; i++)
        free(G.req[i].ubuf);
    free(G.mem);
    memset(&G, 0, sizeof G);
    uint64_t v;
    while (read(kick_fd, &v, sizeof v) == sizeof v) {}
    while (read(notify_fd, &v, sizeof v) == sizeof v) {}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (kick_fd < 0) {
        kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        notify_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        CHECK(kick_fd >= 0 && notify_fd >= 0);
    }
    struct fz f = fz_init(data, size);
    setup(&f);
    for (uint32_t n = 0; n < OPS_MAX && fz_left(&f); n++) {
        uint8_t op = fz_u8(&f) % 16;
        switch (op) {
        case 0: case 1: /* client: submit / send */
            if (G.nic)
                nic_send(&f);
            else
                blk_submit(&f);
            break;
        case 2: /* client: poll / receive */
            if (G.nic)
                nic_recv(&f);
            else
                blk_poll(fz_below(&f, 2 * G.entries + 2), false);
            break;
        case 3: /* client: wait 0 ms / INFO request */
            if (G.nic)
                nic_info();
            else
                blk_poll(fz_below(&f, 2 * G.entries + 2), true);
            break;
        case 4: case 5: case 6:
            dom_complete_good(&f);
            break;
        case 7:
            dom_complete_raw(&f);
            break;
        case 8: case 9:
            dom_op(&f, 2);     /* the domain takes requests */
            break;
        default:
            dom_op(&f, (uint8_t)(op - 10));
            break;
        }
    }
    teardown();
    return 0;
}
