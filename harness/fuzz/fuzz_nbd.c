/*
 * fuzz_nbd — the NBD protocol engine of moat-nbd (clients/moat-nbd/
 * nbd_server.c, contract in nbd_server.h) against a hostile client: the
 * newstyle handshake (EXPORT_NAME, ABORT, LIST, INFO, GO, unknown and
 * oversized options, bad magic, unknown flags) and the transmission phase
 * (READ, WRITE, FLUSH, TRIM, WRITE_ZEROES, DISC, unknown commands and
 * flags, bad magic, huge and wrapping ranges, partial edge blocks,
 * pipelining), over an in-memory backend that completes its calls
 * asynchronously, in an order and with errors the input chooses.
 *
 * Input: a 16-byte configuration, then the client's byte stream.
 *   [0]  bits 0-2 block size 512 << n; bit 3 huge export (capacity up to
 *        2^64 - 1 bytes, no storage: READ returns a pattern of the
 *        absolute byte offset, WRITE only reads its buffer); bit 4 a
 *        description; bit 5 an edge lock; bit 6 multi_conn; bit 7 read-only
 *   [1]  bit 0 can_flush, bit 1 can_trim, bit 2 can_zeroes, bit 3 depth +256
 *   [2..3] capacity: 1 + v % (256 KiB / block size) blocks of a real disk
 *        initialised with the same pattern (or, huge: 2^(20 + v % 24) or,
 *        v bit 15, UINT64_MAX / block size - (v & 255) blocks)
 *   [4]  max_blocks - 1       [5] depth - 1 (+256 per [1] bit 3)
 *   [6]  backend room: 0 = depth, else 1 + n % depth calls (submit says
 *        -MOAT_EBUSY beyond it)
 *   [7]  bits 0-3: chance/16 that submit fails a call, bits 4-7: chance/16
 *        that a call completes with an error (0 = never)
 *   [8]  the reap call that reports the backend broken (0 = never)
 *   [9..15] seed of the PRNG that picks how many queued calls each reap
 *        completes (at least one when the engine waits), in which order,
 *        and which errors are injected.
 * The export is named "fz0". The client stream is walked first by a model
 * of the client's side (below). The work valid requests imply is capped
 * per input (1 MiB of READ/WRITE/TRIM/WRITE_ZEROES ranges, about 20000
 * backend calls), or a huge export would spend seconds on one input: the
 * stream is cut at the header of the first request over the cap, which the
 * engine sees as a clean EOF. Each request's
 * cookie is rewritten to its index in the stream, so every reply names
 * exactly one request (the engine only echoes cookies).
 *
 * Driving: the engine runs nbd_serve_connection() over one end of an
 * AF_UNIX socketpair (send buffers raised as far as the system allows).
 * The whole client stream is written to the other end first, then its
 * write side is shut. When the stream fit and the replies the model allows
 * fit the engine's send buffer (with a generous per-send allowance), the
 * engine runs on this thread: it can never block, and the run is fully
 * deterministic (it sees the whole stream at once). Otherwise it runs on a
 * thread of its own while this one writes the rest of the stream as room
 * appears and drains the replies until the engine says it returned
 * (eventfd), so the engine never blocks on a full socket. Either way the
 * reply bytes are collected and checked after the engine returned. The
 * backend is synchronous and deterministic: submit queues, reap completes
 * queued calls (PRNG of the input); a reap that waits with nothing queued
 * waits for the socket with poll() (already at EOF on the first path), as
 * the contract allows only with an fd.
 *
 * Checks beyond the sanitizers (abort() on violation):
 *   backend  every call is within the export (lba + blocks <= capacity,
 *            0 < blocks <= max_blocks), READ/WRITE carry a buffer (ASan
 *            checks its size as the call is carried out), FLUSH has lba 0
 *            and 0 blocks; no write-class call on a read-only export, no
 *            FLUSH/TRIM/ZEROES unless offered; never more than depth calls
 *            queued; the serialized call (tag UINT64_MAX) only with nothing
 *            else queued, other tags < min(depth, 256); no reap that waits
 *            with nothing queued and no fd; no call or reap after the
 *            backend said broken; nothing queued when the engine returns
 *            (unless broken).
 *   replies  the reply stream parses exactly against the model, with no
 *            byte left over: the greeting; per option, replies naming that
 *            option, of the lengths the spec gives (INFO_EXPORT with the
 *            export's size and flags, INFO_BLOCK_SIZE 1/bs/32 MiB, NAME and
 *            DESCRIPTION only when asked for, LIST's one export, errors
 *            under 256 bytes), ending in the ACK or error the contract's
 *            table predicts; EXPORT_NAME's 10 or 134 bytes; nothing after a
 *            hard disconnect. In transmission: every reply has the reply
 *            magic and names a request that was made and not yet answered
 *            (so at most one reply per request); a request the contract
 *            rejects gets exactly its documented error; a valid request
 *            succeeds unless the backend was made to fail something, and
 *            then fails only with an NBD error the contract maps to; a
 *            WRITE the engine hung up on gets no reply; READ data is
 *            exactly len bytes, and equals the disk's pattern where no
 *            write-class request of the input overlaps it.
 *   result   the return value is 0 for a clean end (EOF between messages,
 *            ABORT, DISC) and -MOAT_EPROTO for a protocol violation, any
 *            negative value once the backend said broken; on a clean end
 *            every request got exactly one reply and the stats add up
 *            (per-command counts, errors, bytes read and written).
 *
 * Seeds (harness/fuzz/corpus/fuzz_nbd/): GO (asking NAME, DESCRIPTION)
 * then aligned and unaligned READ/WRITE/TRIM/WRITE_ZEROES (FUA, NO_HOLE),
 * FLUSH, a READ past the end, an unknown command, DISC; EXPORT_NAME
 * without NO_ZEROES then pipelined WRITEs and READs on 4 KiB blocks;
 * INFO/LIST/unknown/malformed INFO and GO options then ABORT; a read-only
 * export refusing writes; a huge export with ranges at the 2^64 edge;
 * backend errors with a 2-call backend (EBUSY); a backend that breaks; a
 * READ and a WRITE over 32 MiB; an oversized option cut short.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include "fuzz_input.h"
#include "moat-nbd/nbd_server.h"
#include "moat/control_abi.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x) FZ_CHECK(x)

/* Wire values, spelled out from the spec, not taken from the engine. */
#include "nbd_wire.h"

#define EXPORT        "fz0"
#define DESC          "fuzzed in-memory disk"
#define DISK_MAX      (256u << 10)
#define PAYLOAD_MAX   (32u << 20)
#define WORK_BYTES    (1u << 20)    /* READ/WRITE/TRIM/ZEROES bytes per input */
#define WORK_CALLS    20000u        /* backend calls those imply, per input */
#define OUT_MAX       (64u << 20)
#define QMAX          512u
#define SYNC_TAG      UINT64_MAX
#define TRIM_MARK     0xd1

static void put64(uint8_t *p, uint64_t v) { for (int i = 7; i >= 0; i--, v >>= 8) p[i] = (uint8_t)v; }
static uint16_t get16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static uint32_t get32(const uint8_t *p) { return ((uint32_t)get16(p) << 16) | get16(p + 2); }
static uint64_t get64(const uint8_t *p) { return ((uint64_t)get32(p) << 32) | get32(p + 4); }

/* The disk's content: byte x is T[x % 4096 + shift(x / 4096)], T random,
 * so each 4 KiB page is its own window of T (fills and checks are memcpy
 * and memcmp). */
static uint8_t pat_t[8192];

static size_t pat_shift(uint64_t page) { return (size_t)((page * 0x9e3779b97f4a7c15ull) >> 52); }

static void pat_init(void)
{
    uint64_t z = 1;
    for (size_t i = 0; i < sizeof pat_t; i++) {
        z = z * 6364136223846793005ull + 1442695040888963407ull;
        pat_t[i] = (uint8_t)(z >> 56);
    }
}

static void pat_fill(uint8_t *dst, uint64_t x, size_t n)
{
    while (n) {
        size_t in = (size_t)(x & 4095), k = 4096 - in < n ? 4096 - in : n;
        memcpy(dst, pat_t + in + pat_shift(x >> 12), k);
        dst += k;
        x += k;
        n -= k;
    }
}

static bool pat_eq(const uint8_t *p, uint64_t x, size_t n)
{
    while (n) {
        size_t in = (size_t)(x & 4095), k = 4096 - in < n ? 4096 - in : n;
        if (memcmp(p, pat_t + in + pat_shift(x >> 12), k) != 0)
            return false;
        p += k;
        x += k;
        n -= k;
    }
    return true;
}

/* ---- configuration ----------------------------------------------------------------- */

struct cfg {
    uint32_t bs, max_blocks, depth, room;
    uint64_t blocks, size;
    bool huge, desc, edge_lock, multi_conn, ro, flush, trim, zeroes;
    uint8_t err_submit, err_complete, broken_at;
    uint64_t seed;
    uint16_t tflags;
};

static void cfg_parse(struct cfg *c, struct fz *f)
{
    uint8_t b0 = fz_u8(f), b1 = fz_u8(f);
    uint16_t v = fz_u16(f);
    memset(c, 0, sizeof *c);
    c->bs = 512u << (b0 & 7);
    c->huge = b0 & 8;
    c->desc = b0 & 16;
    c->edge_lock = b0 & 32;
    c->multi_conn = b0 & 64;
    c->ro = b0 & 128;
    c->flush = b1 & 1;
    c->trim = b1 & 2;
    c->zeroes = b1 & 4;
    if (!c->huge)
        c->blocks = 1 + v % (DISK_MAX / c->bs);
    else if (v & 0x8000)
        c->blocks = UINT64_MAX / c->bs - (v & 255);
    else
        c->blocks = 1ull << (20 + v % 24);
    c->size = c->blocks * c->bs;
    c->max_blocks = 1u + fz_u8(f);
    c->depth = 1u + fz_u8(f) + ((b1 & 8) ? 256u : 0u);
    uint8_t room = fz_u8(f);
    c->room = room ? 1u + room % c->depth : c->depth;
    uint8_t e = fz_u8(f);
    c->err_submit = e & 15;
    c->err_complete = e >> 4;
    c->broken_at = fz_u8(f);
    uint8_t s[7];
    fz_bytes(f, s, sizeof s);
    c->seed = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < 7; i++)
        c->seed = (c->seed ^ s[i]) * 0x100000001b3ull;
    /* Transmission flags as the contract describes them. */
    c->tflags = TF_HAS_FLAGS;
    if (c->multi_conn && c->edge_lock)
        c->tflags |= TF_MULTI_CONN;
    if (c->ro) {
        c->tflags |= TF_READ_ONLY;
    } else {
        c->tflags |= TF_SEND_WZ;
        if (c->flush)
            c->tflags |= TF_SEND_FLUSH | TF_SEND_FUA;
        if (c->trim)
            c->tflags |= TF_SEND_TRIM;
    }
}

/* ---- the backend --------------------------------------------------------------------- */

struct be {
    const struct cfg *cfg;
    uint8_t *disk;              /* NULL for a huge export */
    struct nbd_io q[QMAX];
    uint32_t n;
    uint64_t rng;
    uint32_t reaps;
    uint64_t dirty_lo, dirty_hi; /* disk bytes changed, to restore */
    bool injected;              /* some call was failed on purpose */
    bool broken;                /* reap said the backend is broken */
};

static uint64_t rnd(struct be *b)
{
    uint64_t z = (b->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int inject(struct be *b)
{
    static const int codes[] = { -MOAT_EIO, -MOAT_EPERM, -MOAT_EROFS, -MOAT_ERANGE,
                                 -MOAT_EINVAL, -MOAT_ENOTSUP, -MOAT_ENOMEM, -MOAT_EDOWN };
    b->injected = true;
    return codes[rnd(b) % (sizeof codes / sizeof codes[0])];
}

static int be_submit(void *ctx, const struct nbd_io *io)
{
    struct be *b = ctx;
    const struct cfg *c = b->cfg;
    CHECK(!b->broken);
    CHECK(b->n < c->depth && b->n < QMAX);
    switch (io->op) {
    case NBD_IO_READ:
        break;
    case NBD_IO_WRITE:
        CHECK(!c->ro);
        break;
    case NBD_IO_FLUSH:
        CHECK(c->flush && !c->ro);
        CHECK(io->lba == 0 && io->blocks == 0);
        break;
    case NBD_IO_TRIM:
        CHECK(c->trim && !c->ro);
        break;
    case NBD_IO_ZEROES:
        CHECK(c->zeroes && !c->ro);
        break;
    default:
        abort();
    }
    if (io->op != NBD_IO_FLUSH) {
        CHECK(io->blocks > 0 && io->blocks <= c->max_blocks);
        CHECK(io->lba <= c->blocks && io->blocks <= c->blocks - io->lba);
    }
    if (io->op == NBD_IO_READ || io->op == NBD_IO_WRITE)
        CHECK(io->buf != NULL);
    if (io->tag == SYNC_TAG)
        CHECK(b->n == 0);       /* the serialized path runs alone */
    else
        CHECK(io->tag < c->depth && io->tag < NBD_INFLIGHT_MAX);
    if (b->n >= c->room)
        return -MOAT_EBUSY;
    if (c->err_submit && rnd(b) % 16 < c->err_submit)
        return inject(b);
    b->q[b->n++] = *io;
    return 0;
}

/* Carry out one call at completion time. */
static int be_do(struct be *b, const struct nbd_io *io)
{
    const struct cfg *c = b->cfg;
    if (c->err_complete && rnd(b) % 16 < c->err_complete)
        return inject(b);
    size_t bytes = (size_t)io->blocks * c->bs;
    uint64_t at = io->lba * c->bs;
    uint8_t *p = io->buf;
    if (b->disk && io->op != NBD_IO_READ && io->op != NBD_IO_FLUSH) {
        b->dirty_lo = at < b->dirty_lo ? at : b->dirty_lo;
        b->dirty_hi = at + bytes > b->dirty_hi ? at + bytes : b->dirty_hi;
    }
    switch (io->op) {
    case NBD_IO_READ:
        if (b->disk) {
            memcpy(p, b->disk + at, bytes);
        } else {
            pat_fill(p, at, bytes);
        }
        break;
    case NBD_IO_WRITE:
        if (b->disk) {
            memcpy(b->disk + at, p, bytes);
        } else {
            static uint8_t sink[1u << 16];  /* let ASan see every byte of buf */
            for (size_t i = 0; i < bytes; i += sizeof sink)
                memcpy(sink, p + i, bytes - i < sizeof sink ? bytes - i : sizeof sink);
        }
        break;
    case NBD_IO_TRIM:
        if (b->disk)
            memset(b->disk + at, TRIM_MARK, bytes);
        break;
    case NBD_IO_ZEROES:
        if (b->disk)
            memset(b->disk + at, 0, bytes);
        break;
    default:
        break;
    }
    return 0;
}

static int be_reap(void *ctx, int fd, bool wait, struct nbd_done *out, size_t max)
{
    struct be *b = ctx;
    CHECK(!b->broken);
    b->reaps++;
    if (b->cfg->broken_at && b->reaps == b->cfg->broken_at) {
        b->broken = true;       /* nothing queued is touched again */
        b->n = 0;
        return -MOAT_EIO;
    }
    if (b->n == 0) {
        if (wait) {
            CHECK(fd >= 0);     /* the engine waits only with calls or an fd */
            struct pollfd p = { .fd = fd, .events = POLLIN };
            while (poll(&p, 1, -1) < 0 && errno == EINTR)
                ;
        }
        return 0;
    }
    size_t k = wait ? 1 + rnd(b) % b->n : rnd(b) % (b->n + 1);
    if (k > max)
        k = max;
    for (size_t i = 0; i < k; i++) {
        uint32_t j = (uint32_t)(rnd(b) % b->n);
        struct nbd_io io = b->q[j];
        b->q[j] = b->q[--b->n];
        out[i] = (struct nbd_done){ .tag = io.tag, .status = be_do(b, &io) };
    }
    return (int)k;
}

/* ---- the model of the client's stream ------------------------------------------------ */

enum opt_kind { K_ERR, K_ABORT, K_LIST, K_INFO, K_EXPORT };
struct opt_exp {
    uint32_t opt;
    enum opt_kind kind;
    uint32_t err;               /* K_ERR: the error reply */
    bool want_name, want_desc;
};

#define NO_REPLY UINT32_MAX
struct req {
    uint16_t type, flags;
    uint64_t off;
    uint32_t len;
    uint32_t want;              /* predicted NBD error; NO_REPLY: hung up on */
    bool answered;
};

struct model {
    struct opt_exp *opts;
    size_t nopts;
    bool no_zeroes, transmission;
    struct req *reqs;
    size_t nreqs;
    bool proto;                 /* the stream breaks the protocol */
    size_t send_len;            /* bytes of the stream sent */
    uint64_t out_bound;         /* socket memory the replies may need, at most */
    uint64_t count[8];          /* requests per type (7: other) */
};

static bool in_export(const struct cfg *c, uint64_t off, uint64_t len)
{
    return len <= c->size && off <= c->size - len;
}

/* The NBD error the contract's table gives a request, or 0. */
static uint32_t predict(const struct cfg *c, const struct req *r)
{
    uint16_t valid = (c->tflags & TF_SEND_FUA) ? CMDF_FUA : 0;
    bool badf = r->flags & ~valid;
    switch (r->type) {
    case CMD_READ:
        return badf || r->len > PAYLOAD_MAX || !in_export(c, r->off, r->len) ? E_INVAL : 0;
    case CMD_WRITE:
        return badf ? E_INVAL : c->ro ? E_PERM : !in_export(c, r->off, r->len) ? E_NOSPC : 0;
    case CMD_FLUSH:
        return badf || !(c->tflags & TF_SEND_FLUSH) || r->off || r->len ? E_INVAL : 0;
    case CMD_TRIM:
        return badf ? E_INVAL : c->ro ? E_PERM
               : !(c->tflags & TF_SEND_TRIM) || !in_export(c, r->off, r->len) ? E_INVAL : 0;
    case CMD_WRITE_ZEROES:
        return (r->flags & ~(valid | CMDF_NO_HOLE)) ? E_INVAL : c->ro ? E_PERM
               : !in_export(c, r->off, r->len) ? E_NOSPC : 0;
    default:
        return E_INVAL;
    }
}

static bool name_ok(const uint8_t *p, uint32_t n)
{
    return n == 0 || (n == strlen(EXPORT) && memcmp(p, EXPORT, n) == 0);
}

/* Walk the stream s[0..n) (cookies patched in place) as the engine should
 * read it. */
static void model_walk(struct model *m, const struct cfg *c, uint8_t *s, size_t n)
{
    size_t p = 0;
    m->send_len = n;
    /* Socket memory (truesize) of the replies: generous per send. */
    m->out_bound = 18 + 2048;
    if (n < 4) {
        m->proto = n != 0;
        return;
    }
    uint32_t cflags = get32(s);
    p = 4;
    if (cflags & ~3u) {
        m->proto = true;
        return;
    }
    m->no_zeroes = cflags & 2;
    for (;;) {
        if (p == n)
            return;
        if (n - p < 16) {
            m->proto = true;
            return;
        }
        uint64_t magic = get64(s + p);
        uint32_t opt = get32(s + p + 8), len = get32(s + p + 12);
        p += 16;
        if (magic != MAGIC_OPT) {
            m->proto = true;
            return;
        }
        struct opt_exp *e = &m->opts[m->nopts];
        *e = (struct opt_exp){ .opt = opt, .kind = K_ERR };
        m->out_bound += 5 * 2048 + 1024;
        if (len > 8192) {
            if (opt == OPT_EXPORT_NAME || len > (1u << 20) || n - p < len) {
                m->proto = true;
                return;
            }
            p += len;
            e->err = REP_ERR_TOO_BIG;
            m->nopts++;
            continue;
        }
        if (n - p < len) {
            m->proto = true;
            return;
        }
        const uint8_t *d = s + p;
        p += len;
        switch (opt) {
        case OPT_EXPORT_NAME:
            if (len > 4096 || !name_ok(d, len)) {
                m->proto = true;
                return;
            }
            e->kind = K_EXPORT;
            m->nopts++;
            m->transmission = true;
            break;
        case OPT_ABORT:
            e->kind = K_ABORT;
            m->nopts++;
            return;
        case OPT_LIST:
            e->kind = len ? K_ERR : K_LIST;
            e->err = REP_ERR_INVALID;
            m->nopts++;
            continue;
        case OPT_INFO:
        case OPT_GO: {
            m->nopts++;
            e->err = REP_ERR_INVALID;
            if (len < 6)
                continue;
            uint32_t nlen = get32(d);
            if (nlen > len - 6)
                continue;
            uint32_t nreq = get16(d + 4 + nlen);
            if ((uint64_t)len != 6ull + nlen + 2ull * nreq)
                continue;
            if (!name_ok(d + 4, nlen)) {
                e->err = REP_ERR_UNKNOWN;
                continue;
            }
            for (uint32_t i = 0; i < nreq; i++) {
                uint16_t t = get16(d + 6 + nlen + 2 * i);
                e->want_name |= t == INFO_NAME;
                e->want_desc |= t == INFO_DESCRIPTION;
            }
            e->kind = K_INFO;
            if (opt == OPT_GO)
                m->transmission = true;
            break;
        }
        default:
            e->err = REP_ERR_UNSUP;
            m->nopts++;
            continue;
        }
        if (m->transmission)
            break;
        if (e->kind == K_INFO)
            continue;
    }

    uint64_t work_bytes = 0, work_calls = 0;
    for (;;) {
        if (p == n)
            return;
        if (n - p < 28) {
            m->proto = true;
            return;
        }
        uint8_t *h = s + p;
        struct req r = { .flags = get16(h + 4), .type = get16(h + 6), .off = get64(h + 16),
                         .len = get32(h + 24) };
        if (get32(h) != MAGIC_REQ) {
            m->proto = true;
            return;
        }
        if (r.type == CMD_DISC)
            return;
        r.want = predict(c, &r);
        if (!r.want && r.type != CMD_FLUSH) {
            uint64_t blocks = r.len / c->bs + 2;
            uint64_t per = r.type == CMD_WRITE_ZEROES && !c->zeroes
                               ? ((1u << 20) / c->bs < c->max_blocks ? (1u << 20) / c->bs
                                                                      : c->max_blocks)
                               : c->max_blocks;
            if (per == 0)
                per = 1;
            work_bytes += r.len;
            work_calls += blocks / per + 4;
            if (work_bytes > WORK_BYTES || work_calls > WORK_CALLS) {
                m->send_len = p;        /* cut here: a clean EOF */
                return;
            }
        }
        put64(h + 8, m->nreqs);         /* cookie = index */
        m->out_bound += 2048 + (r.type == CMD_READ && !r.want ? (uint64_t)r.len * 2 + 8192 : 0);
        p += 28;
        m->count[r.type < 7 ? r.type : 7]++;
        if (r.type == CMD_WRITE) {
            if (r.len > PAYLOAD_MAX || n - p < r.len) {
                r.want = NO_REPLY;
                m->reqs[m->nreqs++] = r;
                m->proto = true;
                return;
            }
            p += r.len;
        }
        m->reqs[m->nreqs++] = r;
    }
}

/* ---- checking the replies ------------------------------------------------------------ */

struct rd {
    const uint8_t *p;
    size_t n;
};

static const uint8_t *take(struct rd *r, size_t k)
{
    CHECK(r->n >= k);
    const uint8_t *p = r->p;
    r->p += k;
    r->n -= k;
    return p;
}

static void check_option(struct rd *r, const struct cfg *c, const struct model *m,
                         const struct opt_exp *e)
{
    if (e->kind == K_EXPORT) {
        size_t k = m->no_zeroes ? 10 : 134;
        const uint8_t *x = take(r, k);
        CHECK(get64(x) == c->size && get16(x + 8) == c->tflags);
        for (size_t i = 10; i < k; i++)
            CHECK(x[i] == 0);
        return;
    }
    bool seen[4] = { false };
    bool listed = false;
    for (;;) {
        const uint8_t *h = take(r, 20);
        CHECK(get64(h) == MAGIC_OPT_REPLY);
        CHECK(get32(h + 8) == e->opt);
        uint32_t type = get32(h + 12), len = get32(h + 16);
        const uint8_t *d = take(r, len);
        if (type & 0x80000000u) {
            CHECK(e->kind == K_ERR && type == e->err && len < 256);
            return;
        }
        CHECK(e->kind != K_ERR);
        if (type == REP_ACK) {
            CHECK(len == 0);
            if (e->kind == K_LIST)
                CHECK(listed);
            if (e->kind == K_INFO)
                CHECK(seen[INFO_EXPORT] && seen[INFO_BLOCK_SIZE] &&
                      seen[INFO_NAME] == e->want_name &&
                      seen[INFO_DESCRIPTION] == (e->want_desc && c->desc));
            return;
        }
        if (type == REP_SERVER) {
            size_t nl = strlen(EXPORT), dl = c->desc ? strlen(DESC) : 0;
            CHECK(e->kind == K_LIST && !listed && len == 4 + nl + dl);
            CHECK(get32(d) == nl && memcmp(d + 4, EXPORT, nl) == 0);
            CHECK(memcmp(d + 4 + nl, DESC, dl) == 0);
            listed = true;
            continue;
        }
        CHECK(type == REP_INFO && e->kind == K_INFO && len >= 2);
        uint16_t it = get16(d);
        CHECK(it < 4 && !seen[it]);
        seen[it] = true;
        switch (it) {
        case INFO_EXPORT:
            CHECK(len == 12 && get64(d + 2) == c->size && get16(d + 10) == c->tflags);
            break;
        case INFO_BLOCK_SIZE:
            CHECK(len == 14 && get32(d + 2) == 1 && get32(d + 6) == c->bs &&
                  get32(d + 10) == PAYLOAD_MAX);
            break;
        case INFO_NAME:
            CHECK(len == 2 + strlen(EXPORT) && memcmp(d + 2, EXPORT, len - 2) == 0);
            break;
        default:
            CHECK(c->desc && len == 2 + strlen(DESC) && memcmp(d + 2, DESC, len - 2) == 0);
            break;
        }
    }
}

static bool written(const struct model *m, uint64_t off, uint64_t len)
{
    for (size_t i = 0; i < m->nreqs; i++) {
        const struct req *w = &m->reqs[i];
        if (w->type != CMD_WRITE && w->type != CMD_TRIM && w->type != CMD_WRITE_ZEROES)
            continue;
        if (w->len && len && w->off < off + len && off < w->off + w->len)
            return true;
    }
    return false;
}

struct tally {
    uint64_t errors, bytes_read, bytes_written, replies;
};

static void check_replies(struct rd *r, const struct cfg *c, struct model *m,
                          const struct be *b, struct tally *t)
{
    const uint8_t *g = take(r, 18);
    CHECK(get64(g) == MAGIC_INIT && get64(g + 8) == MAGIC_OPT && get16(g + 16) == 3);
    for (size_t i = 0; i < m->nopts; i++)
        check_option(r, c, m, &m->opts[i]);
    if (!m->transmission) {
        CHECK(r->n == 0);
        return;
    }
    while (r->n) {
        const uint8_t *h = take(r, 16);
        CHECK(get32(h) == MAGIC_REPLY);
        uint32_t err = get32(h + 4);
        uint64_t ck = get64(h + 8);
        CHECK(ck < m->nreqs);
        struct req *q = &m->reqs[ck];
        CHECK(!q->answered && q->want != NO_REPLY);
        q->answered = true;
        t->replies++;
        if (q->want) {
            CHECK(err == q->want);
        } else if (err) {
            CHECK(b->injected);
            CHECK(err == E_PERM || err == E_IO || err == E_INVAL || err == E_NOSPC ||
                  err == E_NOTSUP);
        }
        if (err) {
            t->errors++;
            continue;
        }
        if (q->type == CMD_WRITE)
            t->bytes_written += q->len;
        if (q->type != CMD_READ)
            continue;
        t->bytes_read += q->len;
        const uint8_t *d = take(r, q->len);
        if (!b->disk || !written(m, q->off, q->len))
            CHECK(pat_eq(d, q->off, q->len));
    }
}

/* ---- driving ----------------------------------------------------------------------------- */

struct srv {
    int fd, done_fd;
    const struct nbd_backend *be;
    struct nbd_stats st;
    int rc;
    char err[256];
};

static void *srv_main(void *arg)
{
    struct srv *s = arg;
    s->rc = nbd_serve_connection(s->fd, EXPORT, s->be, &s->st, s->err, sizeof s->err);
    uint64_t one = 1;
    CHECK(write(s->done_fd, &one, sizeof one) == sizeof one);
    return NULL;
}

struct outbuf {
    uint8_t *p;
    size_t n, cap;
};

/* Read what the engine has sent, without waiting. */
static void drain_out(int fd, struct outbuf *o)
{
    for (;;) {
        if (o->cap - o->n < 65536) {
            CHECK(o->cap < OUT_MAX);    /* far more than any reply stream */
            o->cap = o->cap ? o->cap * 2 : 1u << 16;
            o->p = realloc(o->p, o->cap);
            CHECK(o->p);
        }
        ssize_t r = recv(fd, o->p + o->n, o->cap - o->n, MSG_DONTWAIT);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return;
        o->n += (size_t)r;
    }
}

/* The disk: the pattern, restored after each input where it was written. */
static uint8_t disk_buf[DISK_MAX];

/* Make fd's send buffer as big as the system allows; returns its size. */
static int sndbuf(int fd)
{
    int v = 4 << 20;
    socklen_t l = sizeof v;
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof v);
    CHECK(getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, &l) == 0);
    return v;
}
static bool disk_ready;
static pthread_mutex_t edge_lock = PTHREAD_MUTEX_INITIALIZER;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz f = fz_init(data, size);
    struct cfg c;
    cfg_parse(&c, &f);
    size_t n = fz_left(&f);
    uint8_t *s = malloc(n ? n : 1);
    CHECK(s);
    fz_bytes(&f, s, n);

    struct model m = { 0 };
    m.opts = calloc(n / 16 + 2, sizeof *m.opts);
    m.reqs = calloc(n / 28 + 2, sizeof *m.reqs);
    CHECK(m.opts && m.reqs);
    model_walk(&m, &c, s, n);

    struct be b = { .cfg = &c, .rng = c.seed, .disk = c.huge ? NULL : disk_buf,
                    .dirty_lo = UINT64_MAX };
    if (!disk_ready) {
        pat_init();
        pat_fill(disk_buf, 0, DISK_MAX);
        disk_ready = true;
    }
    struct nbd_backend be = {
        .blocks = c.blocks, .block_size = c.bs, .max_blocks = c.max_blocks, .depth = c.depth,
        .read_only = c.ro, .can_flush = c.flush, .can_trim = c.trim, .can_zeroes = c.zeroes,
        .multi_conn = c.multi_conn, .submit = be_submit, .reap = be_reap, .ctx = &b,
        .edge_lock = c.edge_lock ? &edge_lock : NULL, .description = c.desc ? DESC : NULL,
    };

    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    CHECK(fcntl(sv[1], F_SETFL, O_NONBLOCK) == 0);
    int srv_room = sndbuf(sv[0]);
    (void)sndbuf(sv[1]);

    /* The client's bytes go first, as many as the socket takes. */
    size_t sent = 0;
    for (;;) {
        if (sent < m.send_len) {
            ssize_t w = send(sv[1], s + sent, m.send_len - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w > 0) {
                sent += (size_t)w;
                continue;
            }
            CHECK(w < 0 && (errno == EAGAIN || errno == EINTR));
            if (errno == EINTR)
                continue;
        }
        break;
    }
    bool shut = sent == m.send_len;
    if (shut)
        CHECK(shutdown(sv[1], SHUT_WR) == 0);

    struct srv sr = { .fd = sv[0], .done_fd = -1, .be = &be };
    static struct outbuf o;     /* kept: only ever grows */
    o.n = 0;
    if (shut && m.out_bound <= (uint64_t)srv_room / 2) {
        /* Everything fits the sockets: serve on this thread. */
        sr.rc = nbd_serve_connection(sv[0], EXPORT, &be, &sr.st, sr.err, sizeof sr.err);
    } else {
        sr.done_fd = eventfd(0, EFD_CLOEXEC);
        CHECK(sr.done_fd >= 0);
        pthread_t th;
        CHECK(pthread_create(&th, NULL, srv_main, &sr) == 0);
        for (;;) {
            struct pollfd p[2] = {
                { .fd = sv[1], .events = (short)(POLLIN | (shut ? 0 : POLLOUT)) },
                { .fd = sr.done_fd, .events = POLLIN },
            };
            if (poll(p, 2, -1) < 0) {
                CHECK(errno == EINTR);
                continue;
            }
            if (p[0].revents & POLLIN)
                drain_out(sv[1], &o);
            if (!shut && (p[0].revents & POLLOUT)) {
                ssize_t w = send(sv[1], s + sent, m.send_len - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (w > 0)
                    sent += (size_t)w;
                if (sent == m.send_len) {
                    CHECK(shutdown(sv[1], SHUT_WR) == 0);
                    shut = true;
                }
            }
            if (p[1].revents & POLLIN)
                break;
        }
        CHECK(pthread_join(th, NULL) == 0);
        close(sr.done_fd);
    }
    drain_out(sv[1], &o);       /* everything the engine sent is queued by now */
    close(sv[0]);
    close(sv[1]);

    /* The result. */
    CHECK(b.broken || b.n == 0);
    if (b.broken)
        CHECK(sr.rc < 0);
    else
        CHECK(sr.rc == (m.proto ? -MOAT_EPROTO : 0));
    CHECK(sr.st.transmission == m.transmission);

    struct rd r = { .p = o.p, .n = o.n };
    struct tally t = { 0 };
    check_replies(&r, &c, &m, &b, &t);
    if (sr.rc == 0 && m.transmission) {
        for (size_t i = 0; i < m.nreqs; i++)
            CHECK(m.reqs[i].answered);
        const struct nbd_stats *st = &sr.st;
        CHECK(st->reads == m.count[CMD_READ] && st->writes == m.count[CMD_WRITE] &&
              st->flushes == m.count[CMD_FLUSH] && st->trims == m.count[CMD_TRIM] &&
              st->zeroes == m.count[CMD_WRITE_ZEROES] &&
              st->other == m.count[5] + m.count[7]);
        CHECK(st->errors == t.errors && st->bytes_read == t.bytes_read &&
              st->bytes_written == t.bytes_written);
    }

    if (b.dirty_lo < b.dirty_hi)
        pat_fill(disk_buf + b.dirty_lo, b.dirty_lo, (size_t)(b.dirty_hi - b.dirty_lo));
    free(m.opts);
    free(m.reqs);
    free(s);
    return 0;
}
