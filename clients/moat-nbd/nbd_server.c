/* NBD protocol engine (contract in nbd_server.h). Wire facts cite the NBD
 * spec, doc/proto.md of NetworkBlockDevice/nbd, as [proto §section].
 * Over 600 lines: one protocol, handshake and pipelined transmission,
 * whose request slots both phases share. */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include "moat-nbd/nbd_server.h"
#include "moat/control_abi.h"

/* ---- wire constants --------------------------------------------------------- */

/* [proto §Newstyle negotiation, §Fixed newstyle negotiation] */
#define NBD_MAGIC_INIT       0x4e42444d41474943ull   /* "NBDMAGIC" */
#define NBD_MAGIC_OPT        0x49484156454f5054ull   /* "IHAVEOPT" */
#define NBD_MAGIC_OPT_REPLY  0x0003e889045565a9ull
/* [proto §Request message, §Simple reply message] */
#define NBD_MAGIC_REQUEST    0x25609513u
#define NBD_MAGIC_REPLY      0x67446698u

/* [proto §Handshake flags, §Client flags] */
#define NBD_FLAG_FIXED_NEWSTYLE    (1u << 0)
#define NBD_FLAG_NO_ZEROES         (1u << 1)
#define NBD_FLAG_C_FIXED_NEWSTYLE  (1u << 0)
#define NBD_FLAG_C_NO_ZEROES       (1u << 1)

/* [proto §Transmission flags] */
#define NBD_FLAG_HAS_FLAGS         (1u << 0)
#define NBD_FLAG_READ_ONLY         (1u << 1)
#define NBD_FLAG_SEND_FLUSH        (1u << 2)
#define NBD_FLAG_SEND_FUA          (1u << 3)
#define NBD_FLAG_SEND_TRIM         (1u << 5)
#define NBD_FLAG_SEND_WRITE_ZEROES (1u << 6)
#define NBD_FLAG_CAN_MULTI_CONN    (1u << 8)

/* [proto §Option types] */
enum {
    NBD_OPT_EXPORT_NAME = 1,
    NBD_OPT_ABORT       = 2,
    NBD_OPT_LIST        = 3,
    NBD_OPT_INFO        = 6,
    NBD_OPT_GO          = 7,
};

/* [proto §Option reply types]; errors have bit 31 set. */
#define NBD_REP_ACK          1u
#define NBD_REP_SERVER       2u
#define NBD_REP_INFO         3u
#define NBD_REP_ERR(n)       ((1u << 31) + (n))
#define NBD_REP_ERR_UNSUP    NBD_REP_ERR(1)
#define NBD_REP_ERR_INVALID  NBD_REP_ERR(3)
#define NBD_REP_ERR_UNKNOWN  NBD_REP_ERR(6)
#define NBD_REP_ERR_TOO_BIG  NBD_REP_ERR(9)

/* [proto §Option reply types, NBD_REP_INFO] */
#define NBD_INFO_EXPORT       0u
#define NBD_INFO_NAME         1u
#define NBD_INFO_DESCRIPTION  2u
#define NBD_INFO_BLOCK_SIZE   3u

/* [proto §Request types] */
enum {
    NBD_CMD_READ         = 0,
    NBD_CMD_WRITE        = 1,
    NBD_CMD_DISC         = 2,
    NBD_CMD_FLUSH        = 3,
    NBD_CMD_TRIM         = 4,
    NBD_CMD_WRITE_ZEROES = 6,
};

/* [proto §Command flags] */
#define NBD_CMD_FLAG_FUA      (1u << 0)
#define NBD_CMD_FLAG_NO_HOLE  (1u << 1)

/* [proto §Error values] */
#define NBD_EPERM     1u
#define NBD_EIO       5u
#define NBD_ENOMEM    12u
#define NBD_EINVAL    22u
#define NBD_ENOSPC    28u
#define NBD_ENOTSUP   95u

#define OPT_HDR_LEN     16u     /* magic, option, length */
#define OPT_REPLY_LEN   20u     /* magic, option, type, length */
#define REQ_HDR_LEN     28u     /* magic, flags, type, cookie, offset, length */
#define REPLY_HDR_LEN   16u     /* magic, error, cookie */
#define EXPORT_ZEROES   124u    /* reserved bytes after EXPORT_NAME's reply */
/* An oversized option is read and thrown away up to this much; beyond it
 * the client is treated as a denial of service [proto §Termination]. */
#define OPT_DRAIN_MAX   (1u << 20)
/* Source of zeroes for WRITE_ZEROES when the backend has no zeroes(). */
#define ZERO_BUF_BYTES  (1u << 20)

/* ---- big-endian fields -------------------------------------------------------- */

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v) { put16(p, (uint16_t)(v >> 16)); put16(p + 2, (uint16_t)v); }
static void put64(uint8_t *p, uint64_t v) { put32(p, (uint32_t)(v >> 32)); put32(p + 4, (uint32_t)v); }
static uint16_t get16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static uint32_t get32(const uint8_t *p) { return ((uint32_t)get16(p) << 16) | get16(p + 2); }
static uint64_t get64(const uint8_t *p) { return ((uint64_t)get32(p) << 32) | get32(p + 4); }

/* ---- requests in flight ----------------------------------------------------------
 * Each NBD request in flight holds a slot: its header, its payload buffer
 * and a plan of backend calls (op over a run of blocks, cut at chunk
 * blocks per call) that pump() submits as the backend has room. A slot is
 * answered (finish, then send_replies) when its last call completes. The
 * serialized path (read-modify-write) runs one request alone through
 * sync_call once nothing else is running. */

#define SYNC_TAG        UINT64_MAX  /* the one call of the serialized path */
#define NO_SLOT         UINT32_MAX
#define RBUF_BYTES      65536u      /* request bytes read ahead from the socket */
#define REAP_MAX        64u
#define REPLY_IOV       128u        /* iovecs in one send of replies */
#define SLOT_KEEP_BYTES (128u << 10) /* a slot keeps a payload buffer this big */
#define BUFFERED_MAX    (64u << 20) /* payload bytes held by requests in flight */

enum slot_state { SLOT_FREE, SLOT_RUNNING, SLOT_SERIAL, SLOT_DONE };

struct slot {
    enum slot_state state;
    uint64_t cookie, off;
    uint16_t type, flags;
    uint32_t len;
    uint8_t *buf;               /* READ/WRITE payload */
    size_t buf_cap;
    uint16_t op;                /* enum nbd_io_op of the calls left */
    uint64_t lba, left;         /* blocks still to submit (FLUSH: 1) */
    uint8_t *p;                 /* data of the next call; NULL: none */
    bool p_fixed;               /* p does not advance (the zero buffer) */
    uint32_t chunk;             /* blocks per call */
    bool fua;                   /* a FLUSH follows the data */
    uint32_t outstanding;       /* calls in flight */
    int rc;                     /* first backend error */
    uint32_t error;             /* NBD error of the reply */
    uint8_t reply[REPLY_HDR_LEN];
};

/* ---- connection state ----------------------------------------------------------- */

struct conn {
    int fd;
    const struct nbd_backend *be;
    const char *name;
    size_t name_len;
    uint64_t size;              /* export bytes = blocks * block_size */
    uint16_t tflags;            /* transmission flags advertised */
    bool no_zeroes;             /* client set NBD_FLAG_C_NO_ZEROES */
    struct nbd_stats *st;
    uint8_t opt[NBD_OPT_DATA_MAX];
    struct slot *slot;          /* nslots requests in flight at most */
    uint32_t nslots;
    uint32_t *free_ix, n_free;  /* free slots (a stack) */
    uint32_t *done_ix, n_done;  /* answered, reply not yet sent (in order) */
    uint32_t running;           /* slots with calls to make or in flight */
    uint32_t submitting;        /* slots with calls still to submit */
    uint32_t calls;             /* backend calls in flight */
    uint32_t serial;            /* slot waiting to run alone, or NO_SLOT */
    uint32_t busy_max;
    uint64_t buffered;          /* payload bytes held by requests in flight */
    bool sync_done;             /* the serialized call came back... */
    int sync_rc;                /* ...with this */
    bool closing;               /* DISC came: answer what is in flight, end */
    bool eof;                   /* the client hung up */
    bool dead;                  /* replies can no longer be sent */
    bool broken;                /* the backend failed: its calls are void */
    uint8_t *rbuf;              /* bytes read from the client, [rpos, rlen) unread */
    size_t rpos, rlen;
    uint8_t *bounce;            /* one block, for partial edge blocks */
    uint8_t *zero;              /* zero_blocks blocks of zeroes, lazily */
    uint32_t zero_blocks;
    char *err;
    size_t errlen;
};

/* Say what went wrong in err; returns code. errno survives (for -MOAT_ESYS). */
__attribute__((format(printf, 3, 4)))
static int fail(struct conn *c, int code, const char *fmt, ...)
{
    int saved = errno;
    if (c->err && c->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err, c->errlen, fmt, ap);
        va_end(ap);
    }
    errno = saved;
    return code;
}

/* A client-supplied name made safe to print: printable ASCII only, cut at
 * 64 bytes. */
static void printable(char *dst, size_t dstlen, const uint8_t *src, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 4 < dstlen; i++) {
        if (i == 64) {
            memcpy(dst + o, "...", 3);
            o += 3;
            break;
        }
        dst[o++] = (src[i] >= 0x20 && src[i] < 0x7f) ? (char)src[i] : '?';
    }
    dst[o] = '\0';
}

/* ---- socket I/O: whole messages, retrying short transfers and EINTR ------------ */

/* Read exactly n bytes. Returns 0, 1 if the peer closed before the first
 * byte (a clean end between messages), or a negative -MOAT_E* with err set. */
static int recv_all(struct conn *c, void *p, size_t n, const char *what)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(c->fd, (uint8_t *)p + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return fail(c, -MOAT_ESYS, "reading %s from the client: %s", what, strerror(errno));
        if (r == 0) {
            if (got == 0)
                return 1;
            return fail(c, -MOAT_EPROTO, "client closed the connection in the middle of %s "
                        "(%zu of %zu bytes)", what, got, n);
        }
        got += (size_t)r;
    }
    return 0;
}

/* Like recv_all, but the peer closing before the first byte is an error too. */
static int recv_msg(struct conn *c, void *p, size_t n, const char *what)
{
    int rc = recv_all(c, p, n, what);
    if (rc == 1)
        return fail(c, -MOAT_EPROTO, "client closed the connection before sending %s", what);
    return rc;
}

/* Send iov[0..nv) as one stream of bytes. MSG_NOSIGNAL: a client that
 * hung up is an error return, never SIGPIPE. */
static int send_iov(struct conn *c, struct iovec *v, int nv)
{
    while (nv > 0) {
        if (v->iov_len == 0) {
            v++;
            nv--;
            continue;
        }
        struct msghdr mh = { .msg_iov = v, .msg_iovlen = (size_t)nv };
        ssize_t w = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
        if (w < 0 && errno == ENOTSOCK)
            w = writev(c->fd, v, nv);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return fail(c, -MOAT_ESYS, "sending to the client: %s", strerror(errno));
        size_t done = (size_t)w;
        while (nv > 0 && done >= v->iov_len) {
            done -= v->iov_len;
            v++;
            nv--;
        }
        if (nv > 0) {
            v->iov_base = (uint8_t *)v->iov_base + done;
            v->iov_len -= done;
        }
    }
    return 0;
}

/* Send a then b (either may be empty). */
static int send2(struct conn *c, const void *a, size_t alen, const void *b, size_t blen)
{
    struct iovec iov[2] = {
        { .iov_base = (void *)a, .iov_len = alen },
        { .iov_base = (void *)b, .iov_len = blen },
    };
    return send_iov(c, iov, 2);
}

/* Read and throw away n bytes the client sent. */
static int drain(struct conn *c, uint64_t n, const char *what)
{
    uint8_t sink[4096];
    while (n > 0) {
        size_t k = n < sizeof sink ? (size_t)n : sizeof sink;
        int rc = recv_msg(c, sink, k, what);
        if (rc < 0)
            return rc;
        n -= k;
    }
    return 0;
}

/* ---- backend access: whole blocks, split at max_blocks ---------------------------
 * The serialized path calls the backend one call at a time, waiting for
 * each; nothing else is in flight then (transmission() sees to it). */

static int reap(struct conn *c, bool wait, int fd);

static int sync_call(struct conn *c, uint16_t op, uint64_t lba, uint32_t n, void *buf)
{
    struct nbd_io io = { .op = op, .lba = lba, .blocks = n, .buf = buf, .tag = SYNC_TAG };
    c->st->backend_calls++;
    int rc = c->be->submit(c->be->ctx, &io);
    if (rc == -MOAT_EBUSY)
        return -MOAT_EIO;       /* full with nothing in flight: the backend is broken */
    if (rc < 0)
        return rc;
    c->calls++;
    c->sync_done = false;
    while (!c->sync_done) {
        rc = reap(c, true, -1);
        if (rc < 0)
            return rc;
    }
    return c->sync_rc;
}

/* Read (write == false) or write n blocks at lba, in backend-sized calls. */
static int be_rw(struct conn *c, bool write, uint64_t lba, uint64_t n, uint8_t *p)
{
    const struct nbd_backend *be = c->be;
    while (n > 0) {
        uint32_t k = n < be->max_blocks ? (uint32_t)n : be->max_blocks;
        int rc = sync_call(c, write ? NBD_IO_WRITE : NBD_IO_READ, lba, k, p);
        if (rc < 0)
            return rc;
        lba += k;
        n -= k;
        p += (uint64_t)k * be->block_size;
    }
    return 0;
}

static int be_read(struct conn *c, uint64_t lba, uint64_t n, uint8_t *p)
{
    return be_rw(c, false, lba, n, p);
}

static int be_write(struct conn *c, uint64_t lba, uint64_t n, const uint8_t *p)
{
    return be_rw(c, true, lba, n, (uint8_t *)(uintptr_t)p);
}

/* Blocks of zeroes for WRITE_ZEROES when the backend has no ZEROES: made
 * once per connection, at most max_blocks and ZERO_BUF_BYTES. */
static int zero_buf(struct conn *c)
{
    if (c->zero)
        return 0;
    const struct nbd_backend *be = c->be;
    uint32_t k = ZERO_BUF_BYTES / be->block_size;
    if (k == 0)
        k = 1;
    if (k > be->max_blocks)
        k = be->max_blocks;
    c->zero = calloc(k, be->block_size);
    if (!c->zero)
        return -MOAT_ENOMEM;
    c->zero_blocks = k;
    return 0;
}

static int be_zeroes(struct conn *c, uint64_t lba, uint64_t n)
{
    const struct nbd_backend *be = c->be;
    bool native = be->can_zeroes;
    if (!native && zero_buf(c) < 0)
        return -MOAT_ENOMEM;
    uint32_t most = native ? be->max_blocks : c->zero_blocks;
    while (n > 0) {
        uint32_t k = n < most ? (uint32_t)n : most;
        int rc = native ? sync_call(c, NBD_IO_ZEROES, lba, k, NULL) : be_write(c, lba, k, c->zero);
        if (rc < 0)
            return rc;
        lba += k;
        n -= k;
    }
    return 0;
}

/* ---- byte ranges onto blocks ------------------------------------------------------
 * The client addresses bytes (minimum block size 1). Each range is walked
 * block by block: runs of whole aligned blocks go to the backend directly
 * (be_* split them at max_blocks); a partial block at either edge goes
 * through the bounce block, with read-modify-write for writes. The caller
 * has checked the range lies inside the export. */

enum span_op { SPAN_READ, SPAN_WRITE, SPAN_ZERO };

static int span(struct conn *c, enum span_op op, uint64_t off, uint64_t len, uint8_t *data)
{
    const uint32_t bs = c->be->block_size;
    while (len > 0) {
        uint64_t lba = off / bs;
        uint32_t in = (uint32_t)(off % bs);
        uint64_t adv;
        int rc;
        if (in == 0 && len >= bs) {
            uint64_t n = len / bs;
            adv = n * bs;
            if (op == SPAN_READ)
                rc = be_read(c, lba, n, data);
            else if (op == SPAN_WRITE)
                rc = be_write(c, lba, n, data);
            else
                rc = be_zeroes(c, lba, n);
        } else {
            adv = bs - in < len ? bs - in : len;
            rc = be_read(c, lba, 1, c->bounce);
            if (rc == 0 && op == SPAN_READ)
                memcpy(data, c->bounce + in, (size_t)adv);
            if (rc == 0 && op != SPAN_READ) {
                if (op == SPAN_WRITE)
                    memcpy(c->bounce + in, data, (size_t)adv);
                else
                    memset(c->bounce + in, 0, (size_t)adv);
                rc = be_write(c, lba, 1, c->bounce);
            }
        }
        if (rc < 0)
            return rc;
        off += adv;
        len -= adv;
        if (data)
            data += adv;
    }
    return 0;
}

/* Backend -MOAT_E* -> NBD error [proto §Error values]. */
static uint32_t nbd_error_of(int rc, bool writing)
{
    switch (-rc) {
    case MOAT_EPERM:
    case MOAT_EROFS:
        return NBD_EPERM;
    case MOAT_ERANGE:
        return writing ? NBD_ENOSPC : NBD_EINVAL;
    case MOAT_EINVAL:
        return NBD_EINVAL;
    case MOAT_ENOTSUP:
        return NBD_ENOTSUP;
    default:
        return NBD_EIO;
    }
}

/* ---- handshake ---------------------------------------------------------------- */

static int opt_reply(struct conn *c, uint32_t opt, uint32_t type, const void *data, uint32_t len)
{
    uint8_t h[OPT_REPLY_LEN];
    put64(h, NBD_MAGIC_OPT_REPLY);
    put32(h + 8, opt);
    put32(h + 12, type);
    put32(h + 16, len);
    return send2(c, h, sizeof h, data, len);
}

/* An error reply with a message for the human [proto §Option reply types]. */
__attribute__((format(printf, 4, 5)))
static int opt_error(struct conn *c, uint32_t opt, uint32_t type, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof msg)
        n = sizeof msg - 1;
    return opt_reply(c, opt, type, msg, (uint32_t)n);
}

/* The empty name is the default export [proto §NBD_OPT_EXPORT_NAME]. */
static bool name_matches(const struct conn *c, const uint8_t *name, size_t len)
{
    return len == 0 || (len == c->name_len && memcmp(name, c->name, len) == 0);
}

static int opt_list(struct conn *c, uint32_t len)
{
    if (len != 0)
        return opt_error(c, NBD_OPT_LIST, NBD_REP_ERR_INVALID, "NBD_OPT_LIST takes no data");
    const char *desc = c->be->description ? c->be->description : "";
    size_t dlen = strnlen(desc, NBD_NAME_MAX);
    uint8_t *r = malloc(4 + c->name_len + dlen);
    if (!r)
        return fail(c, -MOAT_ENOMEM, "out of memory answering NBD_OPT_LIST");
    put32(r, (uint32_t)c->name_len);
    memcpy(r + 4, c->name, c->name_len);
    memcpy(r + 4 + c->name_len, desc, dlen);
    int rc = opt_reply(c, NBD_OPT_LIST, NBD_REP_SERVER, r, (uint32_t)(4 + c->name_len + dlen));
    free(r);
    if (rc < 0)
        return rc;
    return opt_reply(c, NBD_OPT_LIST, NBD_REP_ACK, NULL, 0);
}

/* One NBD_REP_INFO: 16-bit type, then payload. */
static int send_info(struct conn *c, uint32_t opt, uint16_t type, const void *p, size_t n)
{
    uint8_t h[OPT_REPLY_LEN + 2];
    put64(h, NBD_MAGIC_OPT_REPLY);
    put32(h + 8, opt);
    put32(h + 12, NBD_REP_INFO);
    put32(h + 16, (uint32_t)(2 + n));
    put16(h + 20, type);
    return send2(c, h, sizeof h, p, n);
}

/* NBD_OPT_INFO / NBD_OPT_GO [proto §NBD_OPT_INFO and NBD_OPT_GO]. Data:
 * 32-bit name length, name, 16-bit count, count 16-bit info types.
 * Returns 0 (answered), or negative. *go is set when GO succeeded. */
static int opt_info(struct conn *c, uint32_t opt, uint32_t len, bool *go)
{
    const uint8_t *d = c->opt;
    const char *what = opt == NBD_OPT_GO ? "NBD_OPT_GO" : "NBD_OPT_INFO";
    if (len < 6)
        return opt_error(c, opt, NBD_REP_ERR_INVALID, "%s: %u bytes is too short", what, len);
    uint32_t nlen = get32(d);
    if (nlen > len - 6)
        return opt_error(c, opt, NBD_REP_ERR_INVALID, "%s: name length %u overruns the option",
                         what, nlen);
    uint32_t nreq = get16(d + 4 + nlen);
    if ((uint64_t)len != 4ull + nlen + 2 + 2ull * nreq)
        return opt_error(c, opt, NBD_REP_ERR_INVALID,
                         "%s: %u information requests do not fill the option", what, nreq);
    bool want_name = false, want_desc = false;
    for (uint32_t i = 0; i < nreq; i++) {
        uint16_t t = get16(d + 4 + nlen + 2 + 2 * i);
        want_name |= t == NBD_INFO_NAME;
        want_desc |= t == NBD_INFO_DESCRIPTION;
    }
    if (!name_matches(c, d + 4, nlen))
        return opt_error(c, opt, NBD_REP_ERR_UNKNOWN, "no such export; this server has one: %s",
                         c->name);

    uint8_t exp[10];
    put64(exp, c->size);
    put16(exp + 8, c->tflags);
    /* Minimum 1: unaligned requests are served by read-modify-write.
     * Preferred: the backend's block. Maximum: the payload cap. Sent even
     * when not asked for, which the spec allows [proto §NBD_REP_INFO]. */
    uint8_t bsz[12];
    put32(bsz, 1);
    put32(bsz + 4, c->be->block_size);
    put32(bsz + 8, NBD_PAYLOAD_MAX);
    int rc = send_info(c, opt, NBD_INFO_EXPORT, exp, sizeof exp);
    if (rc == 0)
        rc = send_info(c, opt, NBD_INFO_BLOCK_SIZE, bsz, sizeof bsz);
    if (rc == 0 && want_name)
        rc = send_info(c, opt, NBD_INFO_NAME, c->name, c->name_len);
    if (rc == 0 && want_desc && c->be->description)
        rc = send_info(c, opt, NBD_INFO_DESCRIPTION, c->be->description,
                       strnlen(c->be->description, NBD_NAME_MAX));
    if (rc == 0)
        rc = opt_reply(c, opt, NBD_REP_ACK, NULL, 0);
    if (rc == 0 && opt == NBD_OPT_GO)
        *go = true;
    return rc;
}

/* NBD_OPT_EXPORT_NAME: no way to refuse but to hang up. */
static int opt_export_name(struct conn *c, uint32_t len)
{
    if (!name_matches(c, c->opt, len)) {
        char shown[80];
        printable(shown, sizeof shown, c->opt, len);
        return fail(c, -MOAT_EPROTO, "client asked for export \"%s\" with NBD_OPT_EXPORT_NAME; "
                    "this server has only \"%s\", disconnecting", shown, c->name);
    }
    uint8_t r[10 + EXPORT_ZEROES];
    memset(r, 0, sizeof r);
    put64(r, c->size);
    put16(r + 8, c->tflags);
    return send2(c, r, c->no_zeroes ? 10 : sizeof r, NULL, 0);
}

/* Greeting and option haggling. Returns 0 to enter transmission, 1 when
 * the client ended the session cleanly, negative on error. */
static int handshake(struct conn *c)
{
    uint8_t g[18];
    put64(g, NBD_MAGIC_INIT);
    put64(g + 8, NBD_MAGIC_OPT);
    put16(g + 16, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
    int rc = send2(c, g, sizeof g, NULL, 0);
    if (rc < 0)
        return rc;

    uint8_t cf[4];
    rc = recv_all(c, cf, sizeof cf, "the client flags");
    if (rc != 0)
        return rc;
    uint32_t cflags = get32(cf);
    /* [proto §Client flags]: the server MUST drop the connection on an
     * unknown flag. A client without FIXED_NEWSTYLE is served as fixed
     * anyway (allowed); it only ever sends EXPORT_NAME. */
    if (cflags & ~(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES))
        return fail(c, -MOAT_EPROTO, "client sent unknown handshake flags 0x%x, disconnecting", cflags);
    c->no_zeroes = cflags & NBD_FLAG_C_NO_ZEROES;

    for (;;) {
        uint8_t h[OPT_HDR_LEN];
        rc = recv_all(c, h, sizeof h, "an option header");
        if (rc != 0)
            return rc;
        uint64_t magic = get64(h);
        uint32_t opt = get32(h + 8);
        uint32_t len = get32(h + 12);
        if (magic != NBD_MAGIC_OPT)
            return fail(c, -MOAT_EPROTO, "bad option magic 0x%016llx (want IHAVEOPT), disconnecting",
                        (unsigned long long)magic);
        if (len > NBD_OPT_DATA_MAX) {
            if (opt == NBD_OPT_EXPORT_NAME)
                return fail(c, -MOAT_EPROTO, "NBD_OPT_EXPORT_NAME with a %u-byte name (limit %u), "
                            "disconnecting", len, NBD_NAME_MAX);
            if (len > OPT_DRAIN_MAX)
                return fail(c, -MOAT_EPROTO, "option %u carries %u bytes (limit %u), disconnecting",
                            opt, len, NBD_OPT_DATA_MAX);
            rc = drain(c, len, "oversized option data");
            if (rc == 0)
                rc = opt_error(c, opt, NBD_REP_ERR_TOO_BIG, "option data over %u bytes",
                               NBD_OPT_DATA_MAX);
            if (rc < 0)
                return rc;
            continue;
        }
        rc = recv_msg(c, c->opt, len, "option data");
        if (rc < 0)
            return rc;

        bool go = false;
        switch (opt) {
        case NBD_OPT_EXPORT_NAME:
            if (len > NBD_NAME_MAX)
                return fail(c, -MOAT_EPROTO, "NBD_OPT_EXPORT_NAME with a %u-byte name (limit %u), "
                            "disconnecting", len, NBD_NAME_MAX);
            rc = opt_export_name(c, len);
            return rc < 0 ? rc : 0;
        case NBD_OPT_ABORT:
            /* The client may already have gone [proto §NBD_OPT_ABORT]. */
            (void)opt_reply(c, opt, NBD_REP_ACK, NULL, 0);
            return 1;
        case NBD_OPT_LIST:
            rc = opt_list(c, len);
            break;
        case NBD_OPT_INFO:
        case NBD_OPT_GO:
            rc = opt_info(c, opt, len, &go);
            break;
        default:
            /* STARTTLS, STRUCTURED_REPLY, META_CONTEXT, EXTENDED_HEADERS... */
            rc = opt_error(c, opt, NBD_REP_ERR_UNSUP, "option %u is not supported by moat-nbd", opt);
            break;
        }
        if (rc < 0)
            return rc;
        if (go)
            return 0;
    }
}

/* ---- transmission --------------------------------------------------------------- */

static bool in_export(const struct conn *c, uint64_t off, uint64_t len)
{
    return len <= c->size && off <= c->size - len;
}

static bool aligned(const struct conn *c, uint64_t off, uint64_t len)
{
    return off % c->be->block_size == 0 && len % c->be->block_size == 0;
}

static int slot_buf(struct conn *c, struct slot *s, size_t n)
{
    if (n > s->buf_cap) {
        free(s->buf);
        s->buf = malloc(n);
        s->buf_cap = s->buf ? n : 0;
        if (!s->buf)
            return -MOAT_ENOMEM;
    }
    c->buffered += n;
    return 0;
}

static void count(struct nbd_stats *st, uint16_t type)
{
    switch (type) {
    case NBD_CMD_READ:         st->reads++; break;
    case NBD_CMD_WRITE:        st->writes++; break;
    case NBD_CMD_FLUSH:        st->flushes++; break;
    case NBD_CMD_TRIM:         st->trims++; break;
    case NBD_CMD_WRITE_ZEROES: st->zeroes++; break;
    case NBD_CMD_DISC:         break;
    default:                   st->other++; break;
    }
}

/* The request is answered: its reply goes out with the next send. */
static void finish(struct conn *c, struct slot *s)
{
    if (s->state == SLOT_RUNNING)
        c->running--;
    if (s->rc < 0 && !s->error)
        s->error = nbd_error_of(s->rc, s->type != NBD_CMD_READ);
    s->state = SLOT_DONE;
    put32(s->reply, NBD_MAGIC_REPLY);
    put32(s->reply + 4, s->error);
    put64(s->reply + 8, s->cookie);
    if (s->error)
        c->st->errors++;
    else if (s->type == NBD_CMD_READ)
        c->st->bytes_read += s->len;
    else if (s->type == NBD_CMD_WRITE)
        c->st->bytes_written += s->len;
    c->done_ix[c->n_done++] = (uint32_t)(s - c->slot);
}

/* The calls of a planned request are to be submitted; a request with none
 * left (zero length, a TRIM inside one block) is answered now, after its
 * FUA flush if it asked for one. */
static void start(struct conn *c, struct slot *s)
{
    if (s->left == 0 && s->fua) {
        s->fua = false;
        s->op = NBD_IO_FLUSH;
        s->left = 1;
    }
    if (s->left == 0) {
        finish(c, s);
        return;
    }
    s->state = SLOT_RUNNING;
    c->running++;
    c->submitting++;
}

/* Submit the calls of running requests while the backend has room. */
static void pump(struct conn *c)
{
    const uint32_t bs = c->be->block_size;
    for (uint32_t i = 0; c->submitting && i < c->nslots; i++) {
        struct slot *s = &c->slot[i];
        while (s->state == SLOT_RUNNING && s->left && c->calls < c->be->depth) {
            bool flush = s->op == NBD_IO_FLUSH;
            uint32_t k = flush ? 0 : s->left < s->chunk ? (uint32_t)s->left : s->chunk;
            struct nbd_io io = { .op = s->op, .lba = flush ? 0 : s->lba, .blocks = k,
                                 .buf = s->p, .tag = i };
            int rc = c->be->submit(c->be->ctx, &io);
            if (rc == -MOAT_EBUSY) {
                c->st->backend_full++;
                return;
            }
            if (rc < 0) {
                /* This call fails alone: no more of the request goes out. */
                s->rc = rc;
                s->left = 0;
                c->submitting--;
                if (!s->outstanding)
                    finish(c, s);
                break;
            }
            c->st->backend_calls++;
            c->calls++;
            s->outstanding++;
            if (flush) {
                s->left = 0;
            } else {
                s->lba += k;
                s->left -= k;
                if (s->p && !s->p_fixed)
                    s->p += (uint64_t)k * bs;
            }
            if (!s->left)
                c->submitting--;
        }
        if (c->calls >= c->be->depth)
            return;
    }
}

static int complete(struct conn *c, const struct nbd_done *d)
{
    if (d->tag == SYNC_TAG && !c->sync_done && c->calls) {
        c->calls--;
        c->sync_done = true;
        c->sync_rc = d->status;
        return 0;
    }
    struct slot *s = d->tag < c->nslots ? &c->slot[d->tag] : NULL;
    if (!s || s->state != SLOT_RUNNING || !s->outstanding)
        return fail(c, -MOAT_EIO, "the backend completed a call it was not given (tag 0x%llx)",
                    (unsigned long long)d->tag);
    c->calls--;
    s->outstanding--;
    if (d->status < 0 && !s->rc) {
        s->rc = d->status;
        if (s->left) {          /* the rest of the request is not sent */
            s->left = 0;
            c->submitting--;
        }
    }
    if (s->outstanding || s->left)
        return 0;
    if (!s->rc && s->fua) {
        s->fua = false;
        s->op = NBD_IO_FLUSH;
        s->left = 1;
        c->submitting++;
        return 0;
    }
    finish(c, s);
    return 0;
}

/* Take completions; with wait, sleep for one (or for fd) first. */
static int reap(struct conn *c, bool wait, int fd)
{
    struct nbd_done d[REAP_MAX];
    if (wait)
        c->st->waits++;
    int n = c->be->reap(c->be->ctx, fd, wait, d, REAP_MAX);
    if (n < 0) {
        c->broken = true;
        return fail(c, n, "the storage behind the export failed (error %d)", -n);
    }
    for (int i = 0; i < n && i < (int)REAP_MAX; i++) {
        int rc = complete(c, &d[i]);
        if (rc < 0) {
            c->broken = true;
            return rc;
        }
    }
    return n;
}

/* Send every reply that is ready, several to a send call. */
static int send_replies(struct conn *c)
{
    while (c->n_done) {
        struct iovec iov[REPLY_IOV];
        int nv = 0;
        uint32_t k = 0;
        for (; k < c->n_done && nv + 2 <= (int)REPLY_IOV; k++) {
            struct slot *s = &c->slot[c->done_ix[k]];
            iov[nv++] = (struct iovec){ .iov_base = s->reply, .iov_len = REPLY_HDR_LEN };
            if (s->type == NBD_CMD_READ && !s->error && s->len)
                iov[nv++] = (struct iovec){ .iov_base = s->buf, .iov_len = s->len };
        }
        int rc = 0;
        if (!c->dead) {
            c->st->reply_sends++;
            rc = send_iov(c, iov, nv);
        }
        for (uint32_t i = 0; i < k; i++) {
            struct slot *s = &c->slot[c->done_ix[i]];
            if (s->type == NBD_CMD_READ || s->type == NBD_CMD_WRITE)
                c->buffered -= s->len;
            if (s->buf_cap > SLOT_KEEP_BYTES) {
                free(s->buf);
                s->buf = NULL;
                s->buf_cap = 0;
            }
            s->state = SLOT_FREE;
            c->free_ix[c->n_free++] = c->done_ix[i];
        }
        c->n_done -= k;
        memmove(c->done_ix, c->done_ix + k, c->n_done * sizeof *c->done_ix);
        if (rc < 0) {
            if (!c->eof)
                return rc;
            c->dead = true;     /* the client hung up without waiting: not an error */
        }
    }
    return 0;
}

/* Check a request as the spec says; returns the NBD error of the reply. */
static uint32_t check(const struct conn *c, const struct slot *s)
{
    const struct nbd_backend *be = c->be;
    /* FUA is valid on every command once advertised [proto §Command flags]. */
    uint16_t valid = (c->tflags & NBD_FLAG_SEND_FUA) ? NBD_CMD_FLAG_FUA : 0;
    switch (s->type) {
    case NBD_CMD_READ:
        return (s->flags & ~valid) || s->len > NBD_PAYLOAD_MAX || !in_export(c, s->off, s->len)
                   ? NBD_EINVAL : 0;
    case NBD_CMD_WRITE:
        return (s->flags & ~valid) ? NBD_EINVAL : be->read_only ? NBD_EPERM
               : !in_export(c, s->off, s->len) ? NBD_ENOSPC : 0;
    case NBD_CMD_FLUSH:
        return (s->flags & ~valid) || !(c->tflags & NBD_FLAG_SEND_FLUSH) || s->off || s->len
                   ? NBD_EINVAL : 0;
    case NBD_CMD_TRIM:
        return (s->flags & ~valid) ? NBD_EINVAL : be->read_only ? NBD_EPERM
               : !(c->tflags & NBD_FLAG_SEND_TRIM) || !in_export(c, s->off, s->len) ? NBD_EINVAL
               : 0;
    case NBD_CMD_WRITE_ZEROES:
        /* NO_HOLE needs nothing more: ZEROES writes zeroes to a block
         * device, it does not deallocate. */
        return (s->flags & ~(valid | NBD_CMD_FLAG_NO_HOLE)) ? NBD_EINVAL
               : be->read_only ? NBD_EPERM : !in_export(c, s->off, s->len) ? NBD_ENOSPC : 0;
    default:
        /* CACHE, BLOCK_STATUS (needs metadata contexts) and the unknown. */
        return NBD_EINVAL;
    }
}

/* Turn a checked request into backend calls, or mark it for the serialized
 * path (a partial edge block). Returns an NBD error, or 0. */
static uint32_t plan(struct conn *c, struct slot *s)
{
    const struct nbd_backend *be = c->be;
    const uint32_t bs = be->block_size;
    s->fua = s->flags & NBD_CMD_FLAG_FUA;
    s->chunk = be->max_blocks;
    s->lba = s->off / bs;
    switch (s->type) {
    case NBD_CMD_READ:
    case NBD_CMD_WRITE:
        if (s->type == NBD_CMD_READ && slot_buf(c, s, s->len) < 0)
            return NBD_ENOMEM;
        if (!aligned(c, s->off, s->len))
            break;
        s->op = s->type == NBD_CMD_READ ? NBD_IO_READ : NBD_IO_WRITE;
        s->left = s->len / bs;
        s->p = s->buf;
        start(c, s);
        return 0;
    case NBD_CMD_FLUSH:
        s->op = NBD_IO_FLUSH;
        s->left = 1;
        start(c, s);
        return 0;
    case NBD_CMD_TRIM: {
        /* TRIM is a hint [proto §NBD_CMD_TRIM]: only the whole blocks
         * inside the range are discarded; partial edge blocks stay. */
        uint64_t first = s->off / bs + (s->off % bs != 0);
        uint64_t end = (s->off + s->len) / bs;  /* in the export: no wrap */
        s->op = NBD_IO_TRIM;
        s->lba = first;
        s->left = end > first ? end - first : 0;
        start(c, s);
        return 0;
    }
    default:    /* NBD_CMD_WRITE_ZEROES */
        if (!aligned(c, s->off, s->len))
            break;
        if (be->can_zeroes) {
            s->op = NBD_IO_ZEROES;
        } else {
            if (zero_buf(c) < 0)
                return NBD_ENOMEM;
            s->op = NBD_IO_WRITE;
            s->p = c->zero;
            s->p_fixed = true;
            s->chunk = c->zero_blocks;
        }
        s->left = s->len / bs;
        start(c, s);
        return 0;
    }
    s->state = SLOT_SERIAL;
    c->serial = (uint32_t)(s - c->slot);
    return 0;
}

/* A request with a partial edge block, alone: nothing else is running. */
static void run_serial(struct conn *c, struct slot *s)
{
    c->st->serialized++;
    c->serial = NO_SLOT;
    if (c->be->edge_lock)
        pthread_mutex_lock(c->be->edge_lock);
    enum span_op op = s->type == NBD_CMD_READ ? SPAN_READ
                      : s->type == NBD_CMD_WRITE ? SPAN_WRITE : SPAN_ZERO;
    int rc = span(c, op, s->off, s->len, op == SPAN_ZERO ? NULL : s->buf);
    if (c->be->edge_lock)
        pthread_mutex_unlock(c->be->edge_lock);
    if (rc == 0 && (s->flags & NBD_CMD_FLAG_FUA))
        rc = sync_call(c, NBD_IO_FLUSH, 0, 0, NULL);
    s->rc = rc;
    finish(c, s);
}

/* The next request's header is whole in rbuf and a slot is free: take it
 * (and a WRITE's payload). */
static int take_request(struct conn *c)
{
    const uint8_t *h = c->rbuf + c->rpos;
    /* Copied into locals once; only these are used below. */
    uint32_t magic = get32(h);
    uint16_t flags = get16(h + 4);
    uint16_t type = get16(h + 6);
    uint64_t cookie = get64(h + 8);
    uint64_t off = get64(h + 16);
    uint32_t len = get32(h + 24);
    c->rpos += REQ_HDR_LEN;
    if (magic != NBD_MAGIC_REQUEST)
        return fail(c, -MOAT_EPROTO, "bad request magic 0x%08x (want 0x%08x), disconnecting",
                    magic, NBD_MAGIC_REQUEST);
    if (type == NBD_CMD_DISC) {
        c->closing = true;      /* answer what is in flight, then end */
        return 0;
    }
    count(c->st, type);
    struct slot *s = &c->slot[c->free_ix[--c->n_free]];
    uint8_t *keep = s->buf;
    size_t keep_cap = s->buf_cap;
    *s = (struct slot){ .state = SLOT_SERIAL, .cookie = cookie, .off = off, .type = type,
                        .flags = flags, .len = len, .buf = keep, .buf_cap = keep_cap };
    c->busy_max = c->nslots - c->n_free > c->busy_max ? c->nslots - c->n_free : c->busy_max;
    if (type == NBD_CMD_WRITE) {
        /* The payload follows whatever we think of the request, so it is
         * read first to stay in step; too big to read is a hang-up. */
        if (len > NBD_PAYLOAD_MAX)
            return fail(c, -MOAT_EPROTO, "client sent a %u-byte WRITE; the limit is %u bytes, "
                        "disconnecting", len, NBD_PAYLOAD_MAX);
        if (slot_buf(c, s, len) < 0)
            return fail(c, -MOAT_ENOMEM, "out of memory for a %u-byte WRITE", len);
        size_t have = c->rlen - c->rpos < len ? c->rlen - c->rpos : len;
        if (have)               /* a 0-byte WRITE has no buffer: memcpy(NULL, ..., 0) is UB */
            memcpy(s->buf, c->rbuf + c->rpos, have);
        c->rpos += have;
        if (have < len) {
            int rc = recv_msg(c, s->buf + have, len - have, "WRITE data");
            if (rc < 0)
                return rc;
        }
    }
    uint32_t error = check(c, s);
    if (!error)
        error = plan(c, s);
    if (error) {
        s->error = error;
        finish(c, s);
    }
    return 0;
}

/* Would the next request, whose header is in rbuf, fit the payload budget? */
static bool payload_fits(const struct conn *c)
{
    const uint8_t *h = c->rbuf + c->rpos;
    uint16_t type = get16(h + 6);
    uint32_t len = get32(h + 24);
    if (type != NBD_CMD_READ && type != NBD_CMD_WRITE)
        return true;
    /* Alone, any request fits (within NBD_PAYLOAD_MAX, checked later). */
    return c->nslots == c->n_free || c->buffered + len <= BUFFERED_MAX;
}

/* Read what the client has sent into rbuf; with block, wait for a byte.
 * Returns 1 (bytes came), 0 (none now, or EOF: c->eof), or -MOAT_E*. */
static int fill(struct conn *c, bool block)
{
    size_t keep = c->rlen - c->rpos;
    memmove(c->rbuf, c->rbuf + c->rpos, keep);
    c->rpos = 0;
    c->rlen = keep;
    for (;;) {
        ssize_t r = block ? read(c->fd, c->rbuf + c->rlen, RBUF_BYTES - c->rlen)
                          : recv(c->fd, c->rbuf + c->rlen, RBUF_BYTES - c->rlen, MSG_DONTWAIT);
        if (r < 0 && errno == ENOTSOCK) {
            struct pollfd p = { .fd = c->fd, .events = POLLIN };
            if (poll(&p, 1, 0) <= 0)
                return 0;
            block = true;
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (r < 0)
            return fail(c, -MOAT_ESYS, "reading a request from the client: %s", strerror(errno));
        if (r == 0) {
            if (c->rlen)
                return fail(c, -MOAT_EPROTO, "client closed the connection in the middle of a "
                            "request header (%zu of %u bytes)", c->rlen, REQ_HDR_LEN);
            c->eof = true;
            return 0;
        }
        c->rlen += (size_t)r;
        return 1;
    }
}

static int transmission(struct conn *c)
{
    int rc = 0;
    for (;;) {
        /* Take every request already read while there is room, so their
         * calls go to the backend together. */
        bool ended = c->closing || c->eof;
        while (!ended && c->serial == NO_SLOT && c->n_free > 0 &&
               c->rlen - c->rpos >= REQ_HDR_LEN && payload_fits(c)) {
            if ((rc = take_request(c)) < 0)
                goto out;
            ended = c->closing;
        }
        pump(c);
        if ((rc = reap(c, false, -1)) < 0)
            break;
        if (c->submitting)
            pump(c);            /* a completion may have planned a FUA flush */
        if (c->serial != NO_SLOT && c->running == 0) {
            run_serial(c, &c->slot[c->serial]);
            if (c->broken) {
                rc = -MOAT_EIO;
                break;
            }
        }
        if ((rc = send_replies(c)) < 0)
            break;
        if (ended && c->n_free == c->nslots)
            break;              /* everything answered */
        bool accept = !ended && c->serial == NO_SLOT && c->n_free > 0;
        bool header = c->rlen - c->rpos >= REQ_HDR_LEN;
        if (accept && header && payload_fits(c))
            continue;
        if (accept && !header) {
            /* Idle: sleep in read; else look without waiting. */
            rc = fill(c, c->n_free == c->nslots);
            if (rc < 0)
                break;
            if (rc > 0 || c->eof)
                continue;
        }
        if (c->calls == 0) {
            if (c->submitting) {
                c->broken = true;
                rc = fail(c, -MOAT_EIO, "the storage behind the export is full with nothing "
                          "in flight");
                break;
            }
            if (c->serial != NO_SLOT || c->n_free != c->nslots)
                continue;       /* a serialized request is due, or replies */
            rc = fail(c, -MOAT_EIO, "internal error: nothing in flight and nothing to read");
            break;
        }
        /* Requests in flight: sleep until one completes, or the client
         * sends more while there is room for it. */
        if ((rc = reap(c, true, accept && !header ? c->fd : -1)) < 0)
            break;
    }
out:
    /* Calls still in flight own their buffers: wait them out (a broken
     * backend has promised not to touch them again). */
    while (c->calls && !c->broken)
        if (reap(c, true, -1) < 0)
            break;
    c->st->inflight_max = c->busy_max;
    return rc;
}

/* ---- entry ------------------------------------------------------------------------ */

static int check_backend(struct conn *c, const char *name, const struct nbd_backend *be)
{
    size_t nl = name ? strnlen(name, NBD_NAME_MAX + 1) : 0;
    if (nl == 0 || nl > NBD_NAME_MAX)
        return fail(c, -MOAT_EINVAL, "export name must be 1..%u bytes", NBD_NAME_MAX);
    if (!be)
        return fail(c, -MOAT_EINVAL, "no backend");
    uint32_t bs = be->block_size;
    if (bs < 512 || bs > 65536 || (bs & (bs - 1)))
        return fail(c, -MOAT_EINVAL, "block size %u is not a power of two in 512..65536", bs);
    if (be->blocks == 0 || be->blocks > UINT64_MAX / bs)
        return fail(c, -MOAT_EINVAL, "capacity of %llu blocks is unusable",
                    (unsigned long long)be->blocks);
    if (be->max_blocks == 0 || be->depth == 0)
        return fail(c, -MOAT_EINVAL, "max_blocks and depth must be > 0");
    if (!be->submit || !be->reap)
        return fail(c, -MOAT_EINVAL, "backend lacks submit or reap");
    c->name = name;
    c->name_len = nl;
    c->size = be->blocks * bs;
    /* A read-only export offers no write-class command. CAN_MULTI_CONN
     * only when a flush covers every connection's writes and the edge
     * blocks' read-modify-write is serialized across connections. */
    c->tflags = NBD_FLAG_HAS_FLAGS;
    if (be->multi_conn && be->edge_lock)
        c->tflags |= NBD_FLAG_CAN_MULTI_CONN;
    if (be->read_only) {
        c->tflags |= NBD_FLAG_READ_ONLY;
    } else {
        c->tflags |= NBD_FLAG_SEND_WRITE_ZEROES;
        if (be->can_flush)
            c->tflags |= NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA;
        if (be->can_trim)
            c->tflags |= NBD_FLAG_SEND_TRIM;
    }
    return 0;
}

int nbd_serve_connection(int fd, const char *export_name, const struct nbd_backend *be,
                         struct nbd_stats *st, char *err, size_t errlen)
{
    struct nbd_stats local;
    if (!st)
        st = &local;
    memset(st, 0, sizeof *st);
    if (err && errlen)
        err[0] = '\0';

    struct conn *c = calloc(1, sizeof *c);
    if (!c) {
        if (err && errlen)
            snprintf(err, errlen, "out of memory for a connection");
        return -MOAT_ENOMEM;
    }
    c->fd = fd;
    c->st = st;
    c->err = err;
    c->errlen = errlen;
    c->be = be;
    int rc = check_backend(c, export_name, be);
    if (rc == 0) {
        c->nslots = be->depth < NBD_INFLIGHT_MAX ? be->depth : NBD_INFLIGHT_MAX;
        c->serial = NO_SLOT;
        c->bounce = malloc(be->block_size);
        c->rbuf = malloc(RBUF_BYTES);
        c->slot = calloc(c->nslots, sizeof *c->slot);
        c->free_ix = calloc(c->nslots, sizeof *c->free_ix);
        c->done_ix = calloc(c->nslots, sizeof *c->done_ix);
        if (!c->bounce || !c->rbuf || !c->slot || !c->free_ix || !c->done_ix)
            rc = fail(c, -MOAT_ENOMEM, "out of memory for a connection's buffers");
        for (uint32_t i = 0; rc == 0 && i < c->nslots; i++)
            c->free_ix[c->n_free++] = c->nslots - 1 - i;
    }
    if (rc == 0)
        rc = handshake(c);
    if (rc == 1) {
        rc = 0;             /* ended cleanly before transmission */
    } else if (rc == 0) {
        st->transmission = true;
        rc = transmission(c);
    }
    for (uint32_t i = 0; c->slot && i < c->nslots; i++)
        free(c->slot[i].buf);
    free(c->slot);
    free(c->free_ix);
    free(c->done_ix);
    free(c->rbuf);
    free(c->bounce);
    free(c->zero);
    free(c);
    return rc;
}
