/*
 * fuzz_dd_serve — the driver domain's side of cap sessions: how
 * guest-kernel/dd_serve.c (BlockDevice) and guest-kernel/dd_nic.c (Nic)
 * validate what a hostile client writes into a session's request ring and
 * data area (opcodes, flags, offsets, lengths, LBAs, ring indices, Nic
 * TX/RX/INFO posts), and what they publish back.
 *
 * The two files are compiled for the host with -DGK_HOST_TEST (link line:
 * FUZZ_EXTRA_fuzz_dd_serve := guest-kernel/dd_serve.c guest-kernel/dd_nic.c);
 * this file plays everything around them: the kernel (sys_call3: cap
 * registration and session release; gk_gpa_ptr: guest-physical addresses
 * of the session table, the session windows and the doorbells map to
 * memory owned here; the run loop: the poller and idle function
 * dd_serve.c registers are called directly, synchronously), the VMM (it
 * writes the session table: opens sessions, closes them, frees the slot on
 * release), a fake block driver (checks each request it is handed, then
 * completes it at once or when the input says) and a fake Nic driver
 * (checks each frame, takes it or reports no room; delivers received
 * frames), and the clients (write requests and ring indices, read
 * completions). A process-wide fixture registers one BlockDevice cap and
 * one Nic cap once (dd_serve.c allows four caps and one Nic per process);
 * per input the block geometry is rewritten (serve_caps[].geo), 1..3
 * sessions are opened in fresh memory (each an exact-size heap block, so
 * ASan sees any access past its data area), and at the end every session
 * is closed, every held request completed, and each session must be
 * released: nothing carries over. serve_drain_start (the orderly stop) is
 * not called: it latches for the process.
 *
 * Input: the block geometry (block size, max_blocks, blocks, feature
 * flags), the number of sessions, per session: cap kind, ring depth
 * 8/16/32, rights, DMA flag, slot, data area slack; then up to 256
 * operations (opcode byte: low 5 bits the operation, high 3 the session;
 * then its operands):
 * client: write and publish a request (op, flags, length, lba, buffer
 * offset chosen near valid values or raw), overwrite a published request's
 * fields, set the request producer index or the completion consumer index
 * to any value, poke any u32 of a ring header, read the completions;
 * domain: a run-loop pass, the idle function; drivers: complete a held
 * block request (status), switch immediate completion, receive a frame
 * (length), report TX room or none, change link state; VMM: close a
 * session, open a new one in a slot the domain released.
 * Checks beyond the sanitizers (a "liar" client is one that wrote an index
 * itself rather than through the ring protocol; some checks are relaxed
 * for its session only):
 *  - every block request the driver gets is one a client published (by
 *    tag; each at most once unless the client lied), with the op, lba,
 *    blocks and buffer that client wrote; valid per session_abi.h (op
 *    known, flags 0, the feature offered, the rights held, not a write to
 *    a read-only device, 1..max_blocks blocks for data, 0 for a flush);
 *    inside the geometry (lba + blocks <= blocks); its buffer inside the
 *    session's data area (NULL for ops without data) and buf_iova the
 *    buffer's own IOVA (0 without MOAT_SLOT_DATA_DMA);
 *  - every frame the Nic driver gets lies inside the data area of a
 *    session with WRITE, has a length in 14..max_frame and is, per
 *    session, the oldest valid TX not yet taken (in order); a received
 *    frame lands, whole, in the oldest posted receive buffer of each
 *    receiving session (all others: dropped), nowhere else;
 *  - a valid request published by an honest client is never refused
 *    (reaches the driver, or is answered at once for INFO); an invalid one
 *    never reaches the driver and is answered with an error status;
 *  - every completion published names a request its own client published
 *    (answered once unless the client lied), with a known status, the
 *    driver's status for a block request the driver completed, the full
 *    length on success (block: the request's blocks, 0 for a flush; TX:
 *    the frame's length; RX: the received frame's; INFO: 64, with this
 *    Nic's MAC and MTU) and 0 on failure; CANCELED only for Nic TX/RX;
 *  - the completion producer index never runs more than a ring ahead of an
 *    honest client's consumer index; the request consumer index never
 *    passes an honest client's producer index or moves back;
 *  - a closing session is released once its requests are answered; every
 *    block request taken by the driver is completed (stats add up);
 *  - dd_log is called at most a few times per session (never per request;
 *    FUZZ_DD_SERVE_LOG=1 prints the lines).
 * Seeds (harness/fuzz/corpus/fuzz_dd_serve/): a block session with reads,
 * writes, flush, zeroes, discard completed at once and later, and refused
 * requests; a Nic session posting RX buffers, receiving frames, sending
 * with and without room, INFO; two Nic sessions sharing received frames; a
 * client that moves its producer index past the ring.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dd.h"
#include "../../guest-kernel/dd_session.h"
#include "fuzz_input.h"
#include "gk/event.h"
#include "gk/mem.h"
#include "gk/runtime.h"
#include "gk/sys.h"
#include "moat/layout.h"
#include "moat/ring.h"
#include "moat/session_abi.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c) FZ_CHECK(c)

#define PAGE_SZ 4096ull
#define SESS_MAX 3u
#define SUB_MAX 2048u
#define OPS_MAX 256u
#define PEND_MAX 1024u
#define MTU 1500u
#define MAX_FRAME (MTU + MOAT_NIC_ETH_HDR)

/* ---- the kernel, the run loop and the VMM ------------------------------------------ */

static struct moat_session_table g_table __attribute__((aligned(4096)));
static uint32_t g_doorbell[MOAT_SESSION_SLOTS];
static uint8_t *g_win[MOAT_SESSION_SLOTS];     /* session memory per slot */
static uint64_t g_win_size[MOAT_SESSION_SLOTS];
static gk_poll_fn g_poll;
static gk_idle_fn g_idle;
static bool g_released[MOAT_SESSION_SLOTS];
static uint32_t g_logs;

void *gk_gpa_ptr(uint64_t gpa)
{
    if (gpa == MOAT_GPA_SESSION_TABLE)
        return &g_table;
    if (gpa >= MOAT_GPA_SESSION_DOORBELL && gpa < MOAT_GPA_SESSION_DOORBELL + sizeof g_doorbell)
        return (uint8_t *)g_doorbell + (gpa - MOAT_GPA_SESSION_DOORBELL);
    if (gpa >= MOAT_GPA_SESSION_BASE &&
        gpa < MOAT_GPA_SESSION_BASE + MOAT_SESSION_SLOTS * MOAT_SESSION_SPAN) {
        uint64_t i = (gpa - MOAT_GPA_SESSION_BASE) / MOAT_SESSION_SPAN;
        uint64_t off = (gpa - MOAT_GPA_SESSION_BASE) % MOAT_SESSION_SPAN;
        CHECK(g_win[i] && off <= g_win_size[i]);
        return g_win[i] + off;
    }
    FZ_FAIL("guest-physical address outside anything mapped");
    return NULL;
}

static void table_write(uint32_t slot, const struct moat_session_slot *v)
{
    struct moat_session_slot *e = &g_table.slot[slot];
    uint32_t seq = e->seq;
    *e = *v;
    e->seq = seq + 2;
    g_table.changes++;
}

int64_t sys_call3(uint64_t nr, uint64_t a, uint64_t b, uint64_t c)
{
    (void)b;
    (void)c;
    switch (nr) {
    case SYS_CAP_REGISTER:
        return 0;
    case SYS_SESSION_RELEASE: {
        CHECK(a < MOAT_SESSION_SLOTS && g_table.slot[a].state == MOAT_SLOT_CLOSING);
        g_released[a] = true;
        struct moat_session_slot v = { .state = MOAT_SLOT_FREE };
        table_write((uint32_t)a, &v);
        return 0;
    }
    default:
        FZ_FAIL("unexpected system call");
        return -SYS_ENOSYS;
    }
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
    g_poll = fn;
    return true;
}

bool gk_idle_add(gk_idle_fn fn, void *ctx)
{
    (void)ctx;
    g_idle = fn;
    return true;
}

void *mem_alloc_pages(size_t n)
{
    void *p = aligned_alloc(PAGE_SZ, n * PAGE_SZ);
    CHECK(p);
    memset(p, 0, n * PAGE_SZ);
    return p;                   /* kept for the process, like guest pages */
}

void dd_log(const char *fmt, ...)
{
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (getenv("FUZZ_DD_SERVE_LOG"))
        fprintf(stderr, "dd_log: %s\n", line);
    g_logs++;
}

void dd_panic(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("fuzz_dd_serve: dd_panic: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

/* ---- the model: sessions and the requests their clients wrote ---------------------- */

enum sub_state { S_WRITTEN = 1, S_PUBLISHED, S_DRIVER, S_ANSWERED };

struct sub {
    uint64_t tag;
    uint32_t sess, gen;         /* whose: G.s[sess] while its gen is this */
    struct moat_sqe e;          /* what the ring slot holds (Nic entries alias it) */
    bool valid;                 /* per session_abi.h at the time it was written */
    enum sub_state st;
    bool drv_seen;              /* block: the driver got it */
    bool drv_done;              /* block: the driver completed it */
    uint32_t drv_status;
    bool sent;                  /* TX: the driver took it */
    uint32_t rx_len;            /* RX: a frame of this length landed in it */
};

struct hsess {
    bool used;
    uint32_t gen;               /* sessions opened in this place (reopen) */
    uint32_t slot, kind, entries, rights, flags, id;
    uint8_t *mem;
    uint64_t size, sq_off, cq_off, data_off, data_size;
    uint32_t prod;              /* the client's request producer index */
    uint32_t cons;              /* the client's completion consumer index */
    uint32_t prod_seen;         /* the domain's completion producer index, last look
                                 * (== cons unless the client lied) */
    uint32_t seen_sq_cons;      /* the domain's request consumer index, last look */
    bool liar;
    bool closing;
    uint32_t slot_sub[MOAT_SESSION_ENTRIES_MAX];  /* ring position -> sub + 1 (0: none) */
    uint32_t rxq[SUB_MAX], rxq_head, rxq_n;       /* RX posts taken, in order */
};

static struct {
    struct hsess s[SESS_MAX];
    uint32_t n_sess;
    uint32_t opens;             /* sessions opened (reopens too) */
    struct sub sub[SUB_MAX];
    uint32_t n_sub;
    struct moat_blk_geometry geo;
    struct dd_blk_req *pend[PEND_MAX];
    uint32_t n_pend;
    bool complete_now;
    uint32_t now_status;
    bool tx_refuse;
    bool link_up;
    uint32_t rx_seq;
} G;

static int blk_cap = -1, nic_cap = -1;
static struct dd_nic *g_nic;
static uint32_t g_session_id;
static const uint8_t nic_mac[6] = { 2, 0x11, 0x22, 0x33, 0x44, 0x55 };

static struct moat_ring_shared *sq_hdr(const struct hsess *h) { return (void *)(h->mem + h->sq_off); }
static struct moat_ring_shared *cq_hdr(const struct hsess *h) { return (void *)(h->mem + h->cq_off); }
static uint8_t *data_of(const struct hsess *h) { return h->mem + h->data_off; }
static uint32_t ld(const uint32_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static void st32(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

static struct moat_sqe *sqe_slot(const struct hsess *h, uint32_t pos)
{
    return (struct moat_sqe *)(h->mem + h->sq_off + MOAT_RING_HDR_SIZE +
                               (size_t)(pos & (h->entries - 1)) * sizeof(struct moat_sqe));
}

static struct sub *sub_of_tag(uint64_t tag)
{
    if ((tag >> 32) != 0x5eedu || (uint32_t)tag >= G.n_sub)
        return NULL;
    return &G.sub[(uint32_t)tag];
}

static struct gsession *gs_of(const struct hsess *h) { return serve_session(h->slot); }

/* Is this block request valid per session_abi.h? */
static bool blk_valid(const struct hsess *h, const struct moat_sqe *e)
{
    const struct moat_blk_geometry *g = &G.geo;
    bool data = e->op == MOAT_BLK_READ || e->op == MOAT_BLK_WRITE;
    if (e->flags)
        return false;
    switch (e->op) {
    case MOAT_BLK_READ:
    case MOAT_BLK_WRITE:
        if (!e->blocks || e->blocks > g->max_blocks)
            return false;
        break;
    case MOAT_BLK_FLUSH:
        if (!(g->flags & MOAT_BLK_F_FLUSH) || e->blocks)
            return false;
        break;
    case MOAT_BLK_WRITE_ZEROES:
        if (!(g->flags & MOAT_BLK_F_WRITE_ZEROES) || !e->blocks)
            return false;
        break;
    case MOAT_BLK_DISCARD:
        if (!(g->flags & MOAT_BLK_F_DISCARD) || !e->blocks)
            return false;
        break;
    default:
        return false;
    }
    if (e->op != MOAT_BLK_READ &&
        (!(h->rights & MOAT_RIGHT_WRITE) || (g->flags & MOAT_BLK_F_READONLY)))
        return false;
    if (e->op != MOAT_BLK_FLUSH && (e->lba > g->blocks || e->blocks > g->blocks - e->lba))
        return false;
    unsigned __int128 end = (unsigned __int128)e->buf_off + (uint64_t)e->blocks * g->block_size;
    return !data || end <= h->data_size;
}

static bool nic_valid(const struct hsess *h, const struct moat_nic_sqe *e)
{
    uint64_t need;
    if (e->flags || e->reserved0)
        return false;
    switch (e->op) {
    case MOAT_NIC_TX:
        if (!(h->rights & MOAT_RIGHT_WRITE) || e->len < MOAT_NIC_ETH_HDR || e->len > MAX_FRAME)
            return false;
        need = e->len;
        break;
    case MOAT_NIC_RX:
        if (!(h->rights & MOAT_RIGHT_READ) || e->len < MAX_FRAME)
            return false;
        need = MAX_FRAME;
        break;
    case MOAT_NIC_INFO:
        if (!(h->rights & MOAT_RIGHT_READ) || e->len < sizeof(struct moat_nic_status))
            return false;
        need = sizeof(struct moat_nic_status);
        break;
    default:
        return false;
    }
    return (unsigned __int128)e->buf_off + need <= h->data_size;
}

static bool sub_valid(const struct hsess *h, const struct moat_sqe *e)
{
    return h->kind == MOAT_CAP_BLOCK ? blk_valid(h, e)
                                     : nic_valid(h, (const struct moat_nic_sqe *)e);
}

/* ---- the drivers -------------------------------------------------------------------- */

static void drv_complete(struct dd_blk_req *req, uint32_t status)
{
    struct sub *u = sub_of_tag(dd_blk_tag(req));
    u->drv_done = true;
    u->drv_status = status;
    dd_blk_complete(req, status);
}

static void blk_submit(void *ctx, struct dd_blk_req *req)
{
    (void)ctx;
    struct sub *u = sub_of_tag(dd_blk_tag(req));
    CHECK(u);                   /* a tag some client wrote */
    struct hsess *h = &G.s[u->sess];
    CHECK(h->kind == MOAT_CAP_BLOCK && u->gen == h->gen && !g_released[h->slot]);
    CHECK(h->liar || (u->st == S_PUBLISHED && !u->drv_done));
    /* What the client wrote (the record follows every write to the slot). */
    CHECK(u->valid && blk_valid(h, &u->e));
    CHECK(req->op == u->e.op);
    CHECK(req->blocks == (u->e.op == MOAT_BLK_FLUSH ? 0 : u->e.blocks));
    CHECK(u->e.op == MOAT_BLK_FLUSH || req->lba == u->e.lba);
    /* Inside the geometry and the data area, whatever the model says. */
    const struct moat_blk_geometry *g = &G.geo;
    CHECK(req->op >= MOAT_BLK_READ && req->op <= MOAT_BLK_DISCARD);
    CHECK(req->op == MOAT_BLK_FLUSH || (req->lba <= g->blocks && req->blocks <= g->blocks - req->lba));
    bool data = req->op == MOAT_BLK_READ || req->op == MOAT_BLK_WRITE;
    if (data) {
        uint8_t *d = data_of(h), *b = req->buf;
        CHECK(req->blocks >= 1 && req->blocks <= g->max_blocks);
        CHECK(b >= d && (uint64_t)(b - d) <= h->data_size &&
              (uint64_t)req->blocks * g->block_size <= h->data_size - (uint64_t)(b - d));
        CHECK(b == d + u->e.buf_off);
        uint64_t iova = (h->flags & MOAT_SLOT_DATA_DMA)
                            ? MOAT_GPA_SESSION_BASE + h->slot * MOAT_SESSION_SPAN + h->data_off +
                                  (uint64_t)(b - d)
                            : 0;
        CHECK(req->buf_iova == iova);
    } else {
        CHECK(!req->buf && !req->buf_iova);
    }
    if (req->op != MOAT_BLK_READ)
        CHECK((h->rights & MOAT_RIGHT_WRITE) && !(g->flags & MOAT_BLK_F_READONLY));
    u->st = S_DRIVER;
    u->drv_seen = true;
    if (G.complete_now) {
        drv_complete(req, G.now_status);
        return;
    }
    CHECK(G.n_pend < PEND_MAX);
    G.pend[G.n_pend++] = req;
}

static const struct dd_blk_ops blk_ops = { .submit = blk_submit };

/* The session whose data area holds [p, p + len). */
static struct hsess *sess_of_buf(const uint8_t *p, uint32_t len)
{
    for (uint32_t i = 0; i < G.n_sess; i++) {
        struct hsess *h = &G.s[i];
        uint8_t *d = data_of(h);
        if (p >= d && (uint64_t)(p - d) <= h->data_size && len <= h->data_size - (uint64_t)(p - d))
            return h;
    }
    return NULL;
}

static bool nic_tx(void *ctx, const void *frame, uint32_t len)
{
    (void)ctx;
    const uint8_t *p = frame;
    CHECK(len >= MOAT_NIC_ETH_HDR && len <= MAX_FRAME);
    struct hsess *h = sess_of_buf(p, len);
    CHECK(h && h->kind == MOAT_CAP_NIC && (h->rights & MOAT_RIGHT_WRITE));
    struct sub *u = NULL;
    if (!h->liar) {
        /* In order: the oldest valid TX of this session not yet taken. */
        for (uint32_t i = 0; i < G.n_sub && !u; i++) {
            struct sub *c = &G.sub[i];
            if (&G.s[c->sess] == h && c->gen == h->gen && c->e.op == MOAT_NIC_TX && c->valid && !c->sent &&
                c->st >= S_PUBLISHED && c->st < S_ANSWERED)
                u = c;
        }
        CHECK(u);
        CHECK(p == data_of(h) + u->e.buf_off && len == u->e.blocks);
    }
    if (G.tx_refuse)
        return false;
    if (u) {
        u->sent = true;
        u->st = S_DRIVER;
    }
    return true;
}

static void nic_tx_flush(void *ctx) { (void)ctx; }

static const struct dd_nic_ops nic_ops = { .tx = nic_tx, .tx_flush = nic_tx_flush };

/* ---- what the domain did in a pass -------------------------------------------------- */

/* After a pass: the requests it took from each ring. */
static void note_taken(void)
{
    for (uint32_t i = 0; i < G.n_sess; i++) {
        struct hsess *h = &G.s[i];
        uint32_t c = ld(&sq_hdr(h)->cons);
        if (!h->liar) {
            CHECK(c - h->seen_sq_cons <= h->prod - h->seen_sq_cons);   /* not past prod */
            CHECK(h->prod - c <= h->entries);
        }
        uint32_t n = c - h->seen_sq_cons;
        if (n > h->entries)
            n = 0;              /* a liar's index games: nothing to match */
        for (uint32_t k = 0; k < n; k++) {
            uint32_t si = h->slot_sub[(h->seen_sq_cons + k) & (h->entries - 1)];
            if (h->liar)
                continue;
            CHECK(si);          /* an honest client published only what it wrote */
            struct sub *u = &G.sub[si - 1];
            if (h->kind == MOAT_CAP_BLOCK && u->valid)
                CHECK(u->st >= S_DRIVER);   /* a valid request reached the driver */
            if (h->kind == MOAT_CAP_BLOCK && !u->valid)
                CHECK(u->st == S_PUBLISHED);
            if (h->kind == MOAT_CAP_NIC && u->valid && u->e.op == MOAT_NIC_INFO) {
                /* Answered in this pass: this Nic's MAC, MTU and link. */
                struct moat_nic_status ns;
                memcpy(&ns, data_of(h) + u->e.buf_off, sizeof ns);
                CHECK(memcmp(ns.mac, nic_mac, 6) == 0 && ns.mtu == MTU &&
                      ns.link_up == (G.link_up ? 1u : 0u));
            }
            if (h->kind == MOAT_CAP_NIC && u->valid && u->e.op == MOAT_NIC_RX) {
                h->rxq[(h->rxq_head + h->rxq_n) % SUB_MAX] = (uint32_t)(u - G.sub);
                h->rxq_n++;
            }
        }
        h->seen_sq_cons = c;
    }
}

static void pass(void)
{
    g_poll(NULL);
    note_taken();
}

/* ---- the clients -------------------------------------------------------------------- */

static const uint16_t blk_ops_tab[8] = { MOAT_BLK_READ, MOAT_BLK_WRITE, MOAT_BLK_FLUSH,
                                         MOAT_BLK_WRITE_ZEROES, MOAT_BLK_DISCARD, 0, 6,
                                         MOAT_BLK_READ };
static const uint16_t nic_ops_tab[8] = { MOAT_NIC_TX, MOAT_NIC_RX, MOAT_NIC_INFO, 0, 4,
                                         MOAT_NIC_TX, MOAT_NIC_RX, MOAT_NIC_RX };

static uint64_t pick_off(struct fz *f, const struct hsess *h, uint64_t align)
{
    uint8_t m = fz_u8(f);
    if (m < 200)
        return ((uint64_t)fz_u16(f) * align) % (h->data_size + align);
    if (m < 230)
        return h->data_size - fz_u16(f) % 4096u;
    return fz_u64(f);
}

/* Fill e with a request (near valid unless the input says otherwise). */
static void gen_sqe(struct fz *f, const struct hsess *h, struct moat_sqe *e)
{
    uint8_t sel = fz_u8(f);
    memset(e, 0, sizeof *e);
    if (sel & 0x80)
        e->flags = fz_u16(f);
    if (h->kind == MOAT_CAP_BLOCK) {
        e->op = blk_ops_tab[sel & 7];
        uint8_t lm = fz_u8(f);
        e->blocks = lm < 240 ? lm % (G.geo.max_blocks + 2) : fz_u32(f);
        if (e->op == MOAT_BLK_FLUSH && lm < 200)
            e->blocks = 0;
        e->lba = lm < 240 ? fz_u16(f) % (G.geo.blocks + 2) : fz_u64(f);
        e->buf_off = pick_off(f, h, G.geo.block_size);
    } else {
        struct moat_nic_sqe *n = (struct moat_nic_sqe *)e;
        n->op = nic_ops_tab[sel & 7];
        uint8_t lm = fz_u8(f);
        if (lm >= 240)
            n->len = fz_u32(f);
        else if (n->op == MOAT_NIC_TX)
            n->len = MOAT_NIC_ETH_HDR + fz_u16(f) % (MAX_FRAME - MOAT_NIC_ETH_HDR + 2);
        else if (n->op == MOAT_NIC_INFO)
            n->len = sizeof(struct moat_nic_status) + lm % 3u - 1u;
        else
            n->len = MAX_FRAME + lm % 3u - 1u;
        if (sel & 0x40)
            n->reserved0 = fz_u8(f);
        n->buf_off = pick_off(f, h, 2048);
    }
}

/* Write one request at the producer position and publish it. */
static void client_submit(struct fz *f, struct hsess *h)
{
    bool force = fz_u8(f) == 0xA5;
    uint32_t used = h->prod - ld(&sq_hdr(h)->cons);
    if ((used >= h->entries && !force) || G.n_sub >= SUB_MAX)
        return;
    if (used >= h->entries)
        h->liar = true;         /* overwrites what the domain has not read */
    struct sub *u = &G.sub[G.n_sub];
    *u = (struct sub){ .tag = 0x5eedull << 32 | G.n_sub, .sess = (uint32_t)(h - G.s),
                       .gen = h->gen, .st = S_PUBLISHED };
    gen_sqe(f, h, &u->e);
    u->e.tag = u->tag;
    u->valid = sub_valid(h, &u->e);
    memcpy(sqe_slot(h, h->prod), &u->e, sizeof u->e);
    h->slot_sub[h->prod & (h->entries - 1)] = ++G.n_sub;
    st32(&sq_hdr(h)->prod, ++h->prod);
}

/* Rewrite the fields (not the tag) of a request the domain has not read yet. */
static void client_rewrite(struct fz *f, struct hsess *h)
{
    uint32_t c = ld(&sq_hdr(h)->cons), n = h->prod - c;
    if (!n || n > h->entries)
        return;
    uint32_t pos = c + fz_below(f, n);
    uint32_t si = h->slot_sub[pos & (h->entries - 1)];
    if (!si || G.sub[si - 1].st != S_PUBLISHED)
        return;                 /* a slot a liar published without writing */
    struct sub *u = &G.sub[si - 1];
    gen_sqe(f, h, &u->e);
    u->e.tag = u->tag;
    u->valid = sub_valid(h, &u->e);
    memcpy(sqe_slot(h, pos), &u->e, sizeof u->e);
}

/* Read every completion published and check it against the model. */
static void client_reap(struct hsess *h)
{
    uint32_t prod = ld(&cq_hdr(h)->prod);
    if (!h->liar)
        CHECK(prod - h->cons <= h->entries && h->cons == h->prod_seen);
    /* What the domain published since the last look is fresh whatever
     * the client claimed (a liar may have let it run further). */
    uint32_t pos = h->prod_seen;
    if (prod - pos > h->entries)
        pos = prod;
    for (; pos != prod; pos++) {
        struct moat_cqe e;
        memcpy(&e, h->mem + h->cq_off + MOAT_RING_HDR_SIZE +
                       (size_t)(pos & (h->entries - 1)) * sizeof e, sizeof e);
        struct sub *u = sub_of_tag(e.tag);
        CHECK(e.status <= MOAT_ST_MAX);
        if (h->liar && e.tag == 0)
            continue;           /* a slot past what it wrote, answered as invalid */
        CHECK(u && &G.s[u->sess] == h && u->gen == h->gen);  /* this session's client's */
        if (h->liar) {
            u->st = S_ANSWERED;
            continue;
        }
        CHECK(u->st != S_ANSWERED);         /* once */
        CHECK(e.status == MOAT_ST_OK || e.blocks == 0);
        if (h->kind == MOAT_CAP_BLOCK) {
            CHECK(e.status != MOAT_ST_CANCELED);
            if (u->st == S_DRIVER) {
                CHECK(u->drv_done && e.status == u->drv_status);
                if (e.status == MOAT_ST_OK)
                    CHECK(e.blocks == (u->e.op == MOAT_BLK_FLUSH ? 0 : u->e.blocks));
            } else {
                CHECK(!u->valid && e.status != MOAT_ST_OK);     /* refused */
            }
        } else {
            const struct moat_nic_sqe *n = (const struct moat_nic_sqe *)&u->e;
            if (e.status != MOAT_ST_OK && e.status != MOAT_ST_CANCELED)
                CHECK(!u->valid);
            if (e.status == MOAT_ST_CANCELED)
                CHECK(u->valid && n->op != MOAT_NIC_INFO && h->closing);
            if (e.status == MOAT_ST_OK) {
                CHECK(u->valid);
                if (n->op == MOAT_NIC_TX) {
                    CHECK(u->sent && e.blocks == n->len);
                } else if (n->op == MOAT_NIC_RX) {
                    CHECK(u->rx_len && e.blocks == u->rx_len);
                } else {
                    CHECK(e.blocks == sizeof(struct moat_nic_status));
                }
            }
            if (n->op == MOAT_NIC_TX && e.status == MOAT_ST_CANCELED)
                CHECK(!u->sent);
        }
        u->st = S_ANSWERED;
    }
    h->prod_seen = h->cons = prod;
    st32(&cq_hdr(h)->cons, h->cons);
}

static const uint32_t hdr_fields[] = { 0, 4, 64, 68, 128, 132, 136, 140 };

/* ---- the Nic driver receives a frame -------------------------------------------------- */

static void nic_receive(struct fz *f)
{
    uint8_t m = fz_u8(f);
    uint32_t len = m < 240 ? MOAT_NIC_ETH_HDR + fz_u16(f) % (MAX_FRAME - MOAT_NIC_ETH_HDR + 1)
                           : fz_u16(f);
    uint8_t *frame = malloc(len ? len : 1);
    CHECK(frame);
    uint8_t salt = (uint8_t)++G.rx_seq;
    for (uint32_t i = 0; i < len; i++)
        frame[i] = (uint8_t)(i * 7 + salt);
    bool ok_len = len >= MOAT_NIC_ETH_HDR && len <= MAX_FRAME;
    /* Which buffer of each session must get it. */
    struct sub *want[SESS_MAX] = { 0 };
    for (uint32_t i = 0; i < G.n_sess; i++) {
        struct hsess *h = &G.s[i];
        struct gsession *gs = gs_of(h);
        if (!ok_len || h->kind != MOAT_CAP_NIC || h->liar || !serve_live(gs, (uint32_t)nic_cap) ||
            !(h->rights & MOAT_RIGHT_READ))
            continue;
        CHECK(gs->nic.post_n == h->rxq_n);
        if (h->rxq_n) {
            want[i] = &G.sub[h->rxq[h->rxq_head]];
            h->rxq_head = (h->rxq_head + 1) % SUB_MAX;
            h->rxq_n--;
        }
    }
    dd_nic_rx(g_nic, frame, len);
    for (uint32_t i = 0; i < G.n_sess; i++) {
        struct sub *u = want[i];
        if (!u)
            continue;
        CHECK(memcmp(data_of(&G.s[i]) + u->e.buf_off, frame, len) == 0);
        u->rx_len = len;
    }
    free(frame);
}

/* ---- one input ---------------------------------------------------------------------- */

static uint64_t page_up(uint64_t v) { return (v + PAGE_SZ - 1) & ~(PAGE_SZ - 1); }

/* Open session i (in slot, or in one the input picks when slot < 0). */
static void open_session(struct fz *f, uint32_t i, int slot)
{
    struct hsess *h = &G.s[i];
    uint8_t k = fz_u8(f);
    uint32_t gen = h->gen + 1;
    *h = (struct hsess){ .used = true, .gen = gen };
    G.opens++;
    h->slot = slot >= 0 ? (uint32_t)slot
                        : (i * 5 + (k >> 6)) % MOAT_SESSION_SLOTS;   /* distinct: i*5 + 0..3 */
    h->kind = (k & 1) ? MOAT_CAP_NIC : MOAT_CAP_BLOCK;
    h->entries = 8u << ((k >> 1) % 3u);
    h->rights = (k >> 3) & 3u;
    h->flags = (k & 0x20) ? MOAT_SLOT_DATA_DMA : 0;
    h->id = ++g_session_id;
    uint64_t per = h->kind == MOAT_CAP_NIC ? 2048 : (uint64_t)G.geo.max_blocks * G.geo.block_size;
    h->data_size = per * h->entries;
    if (h->data_size > (256u << 10))
        h->data_size = 256u << 10;
    h->data_size -= fz_u8(f) % 8u * 512u;
    h->sq_off = 0;
    h->cq_off = page_up(moat_ring_bytes(h->entries, sizeof(struct moat_sqe)));
    h->data_off = h->cq_off + page_up(moat_ring_bytes(h->entries, sizeof(struct moat_cqe)));
    h->size = h->data_off + h->data_size;
    h->mem = malloc(h->size);   /* exact: ASan sees any access past the data area */
    CHECK(h->mem);
    memset(h->mem, 0, h->size);
    CHECK(moat_ring_format(h->mem + h->sq_off, h->cq_off - h->sq_off, h->entries,
                           sizeof(struct moat_sqe)) == MOAT_RING_OK);
    CHECK(moat_ring_format(h->mem + h->cq_off, h->data_off - h->cq_off, h->entries,
                           sizeof(struct moat_cqe)) == MOAT_RING_OK);
    g_win[h->slot] = h->mem;
    g_win_size[h->slot] = h->size;
    g_released[h->slot] = false;
    struct moat_session_slot v = {
        .state = MOAT_SLOT_OPEN, .cap_index = (uint32_t)(h->kind == MOAT_CAP_NIC ? nic_cap : blk_cap),
        .session_id = h->id, .rights = h->rights, .flags = h->flags,
        .gpa = MOAT_GPA_SESSION_BASE + h->slot * MOAT_SESSION_SPAN, .size = h->size,
        .sq_entries = h->entries, .cq_entries = h->entries, .sq_off = h->sq_off,
        .cq_off = h->cq_off, .data_off = h->data_off, .data_size = h->data_size,
        .doorbell_gpa = MOAT_GPA_SESSION_DOORBELL + 4ull * h->slot,
    };
    table_write(h->slot, &v);
}

static void close_session(struct hsess *h)
{
    if (h->closing)
        return;
    h->closing = true;
    struct moat_session_slot v = g_table.slot[h->slot];
    v.state = MOAT_SLOT_CLOSING;
    table_write(h->slot, &v);
}

static void fixture(void)
{
    if (blk_cap >= 0)
        return;
    g_table.magic = MOAT_SESSION_TABLE_MAGIC;
    g_table.version = 1;
    g_table.n_slots = MOAT_SESSION_SLOTS;
    struct moat_blk_geometry geo = { .block_size = 512, .max_blocks = 8, .blocks = 1024,
                                     .flags = MOAT_BLK_F_ALL, .queues = 4 };
    CHECK(dd_blk_serve("blk0", &geo, &blk_ops, NULL));
    blk_cap = 0;
    struct moat_nic_info info = { .mtu = MTU, .max_frame = MAX_FRAME, .queues = 4 };
    memcpy(info.mac, nic_mac, 6);
    g_nic = dd_nic_serve("nic0", &info, &nic_ops, NULL);
    CHECK(g_nic && g_poll && g_idle);
    nic_cap = 1;
    CHECK(serve_caps[blk_cap].kind == MOAT_CAP_BLOCK && serve_caps[nic_cap].kind == MOAT_CAP_NIC);
}

static void finish(void)
{
    /* Close everything, answer everything, and every session must go. */
    for (uint32_t i = 0; i < G.n_sess; i++)
        close_session(&G.s[i]);
    G.complete_now = true;
    G.now_status = MOAT_ST_OK;
    G.tx_refuse = false;
    for (int round = 0; round < 3; round++) {
        pass();
        while (G.n_pend)
            drv_complete(G.pend[--G.n_pend], MOAT_ST_OK);
        for (uint32_t i = 0; i < G.n_sess; i++)
            client_reap(&G.s[i]);
    }
    for (uint32_t i = 0; i < G.n_sess; i++) {
        struct hsess *h = &G.s[i];
        CHECK(g_released[h->slot] && !gs_of(h)->active);
        g_win[h->slot] = NULL;
        free(h->mem);
    }
    struct dd_serve_stats ss;
    dd_serve_stats(&ss);
    CHECK(ss.sessions_opened == ss.sessions_released);
    /* Every block request the driver took was completed. */
    uint32_t drv = 0, done = 0;
    for (uint32_t i = 0; i < G.n_sub; i++) {
        drv += G.sub[i].drv_seen;
        done += G.sub[i].drv_done;
    }
    CHECK(drv == done && G.n_pend == 0);
    CHECK(g_logs <= 4u * G.opens);
    memset(&G, 0, sizeof G);
    g_logs = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fixture();
    struct fz f = fz_init(data, size);
    /* The block geometry this input's sessions see. */
    G.geo = (struct moat_blk_geometry){ .block_size = 512u << fz_below(&f, 4),
                                        .max_blocks = 1 + fz_u8(&f) % 16u,
                                        .blocks = 1 + fz_u16(&f), .flags = fz_u8(&f) & MOAT_BLK_F_ALL,
                                        .queues = 4 };
    serve_caps[blk_cap].geo = G.geo;
    G.complete_now = true;
    G.link_up = true;
    dd_nic_link(g_nic, true);
    dd_nic_tx_ready(g_nic);
    G.n_sess = 1 + fz_below(&f, SESS_MAX);
    for (uint32_t i = 0; i < G.n_sess; i++)
        open_session(&f, i, -1);
    pass();
    for (uint32_t n = 0; n < OPS_MAX && fz_left(&f); n++) {
        uint8_t op = fz_u8(&f);
        struct hsess *h = &G.s[(op >> 5) % G.n_sess];
        switch (op & 31) {
        case 0: case 1: case 2: case 3: case 4: case 5:
            client_submit(&f, h);
            break;
        case 6:
            client_rewrite(&f, h);
            break;
        case 7: case 8: case 9: case 10:
            pass();
            break;
        case 11: case 12:
            client_reap(h);
            break;
        case 13:
            g_idle(NULL);
            break;
        case 14: case 15: /* the block driver completes a held request */
            if (G.n_pend) {
                uint32_t k = fz_below(&f, G.n_pend);
                struct dd_blk_req *r = G.pend[k];
                G.pend[k] = G.pend[--G.n_pend];
                drv_complete(r, fz_u8(&f) < 200 ? MOAT_ST_OK : MOAT_ST_EIO);
            }
            break;
        case 16:
            G.complete_now = !G.complete_now;
            G.now_status = fz_u8(&f) < 220 ? MOAT_ST_OK : MOAT_ST_EIO;
            break;
        case 17: case 18:
            nic_receive(&f);
            break;
        case 19:
            G.tx_refuse = !G.tx_refuse;
            if (!G.tx_refuse)
                dd_nic_tx_ready(g_nic);
            break;
        case 20:
            G.link_up = !G.link_up;
            dd_nic_link(g_nic, G.link_up);
            break;
        case 21: /* the client's request producer index, any value */
            h->liar = true;
            h->prod = ld(&sq_hdr(h)->cons) + (uint32_t)(int8_t)fz_u8(&f);
            if (fz_u8(&f) == 0xff)
                h->prod = fz_u32(&f);
            st32(&sq_hdr(h)->prod, h->prod);
            break;
        case 22: /* the client's completion consumer index, any value */
            h->liar = true;
            h->cons = ld(&cq_hdr(h)->prod) + (uint32_t)(int8_t)fz_u8(&f);
            st32(&cq_hdr(h)->cons, h->cons);
            break;
        case 23: { /* any u32 of either ring header */
            uint8_t sel = fz_u8(&f);
            uint32_t off = hdr_fields[sel % 8];
            uint8_t *hdr = (uint8_t *)((sel & 0x80) ? (void *)cq_hdr(h) : (void *)sq_hdr(h));
            uint32_t v = fz_u32(&f);
            memcpy(hdr + off, &v, sizeof v);
            if (off == 0 || off == 64)
                h->liar = true;     /* an index, not just an event or the geometry */
            break;
        }
        case 24: /* data area bytes (frames to send, junk) */
        {
            uint64_t off = fz_u32(&f) % h->data_size;
            uint32_t len = fz_u8(&f);
            if (len > h->data_size - off)
                len = (uint32_t)(h->data_size - off);
            memset(data_of(h) + off, fz_u8(&f), len);
            break;
        }
        case 25:
            close_session(h);
            break;
        case 26: /* moat opens a new session in the slot h's released */
            if (g_released[h->slot]) {
                CHECK(!gs_of(h)->active);
                free(h->mem);
                g_win[h->slot] = NULL;
                open_session(&f, (uint32_t)(h - G.s), (int)h->slot);
            }
            break;
        default:
            client_submit(&f, h);
            break;
        }
    }
    finish();
    return 0;
}
