/* NBD protocol engine (contract in nbd_server.h). Wire facts cite the NBD
 * spec, doc/proto.md of NetworkBlockDevice/nbd, as [proto §section]. */
#include <errno.h>
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
    uint8_t *buf;               /* READ/WRITE payload, grown on demand */
    size_t buf_cap;
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

/* Send a then b (either may be empty) as one stream of bytes. MSG_NOSIGNAL:
 * a client that hung up is an error return, never SIGPIPE. */
static int send2(struct conn *c, const void *a, size_t alen, const void *b, size_t blen)
{
    struct iovec iov[2] = {
        { .iov_base = (void *)a, .iov_len = alen },
        { .iov_base = (void *)b, .iov_len = blen },
    };
    struct iovec *v = iov;
    int nv = 2;
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

/* ---- backend access: whole blocks, split at max_blocks -------------------------- */

/* Read (write == false) or write n blocks at lba, in backend-sized calls. */
static int be_rw(struct conn *c, bool write, uint64_t lba, uint64_t n, uint8_t *p)
{
    const struct nbd_backend *be = c->be;
    while (n > 0) {
        uint32_t k = n < be->max_blocks ? (uint32_t)n : be->max_blocks;
        c->st->backend_calls++;
        int rc = write ? be->write(be->ctx, lba, k, p) : be->read(be->ctx, lba, k, p);
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

/* zeroes() or trim() over a run of blocks. */
static int be_range(struct conn *c, int (*op)(void *, uint64_t, uint32_t), uint64_t lba, uint64_t n)
{
    const struct nbd_backend *be = c->be;
    while (n > 0) {
        uint32_t k = n < be->max_blocks ? (uint32_t)n : be->max_blocks;
        c->st->backend_calls++;
        int rc = op(be->ctx, lba, k);
        if (rc < 0)
            return rc;
        lba += k;
        n -= k;
    }
    return 0;
}

static int be_write_zero_buf(struct conn *c, uint64_t lba, uint64_t n)
{
    const struct nbd_backend *be = c->be;
    if (!c->zero) {
        uint32_t k = ZERO_BUF_BYTES / be->block_size;
        if (k == 0)
            k = 1;
        if (k > be->max_blocks)
            k = be->max_blocks;
        c->zero = calloc(k, be->block_size);
        if (!c->zero)
            return -MOAT_ENOMEM;
        c->zero_blocks = k;
    }
    while (n > 0) {
        uint32_t k = n < c->zero_blocks ? (uint32_t)n : c->zero_blocks;
        int rc = be_write(c, lba, k, c->zero);
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
            else if (c->be->can_zeroes)
                rc = be_range(c, c->be->zeroes, lba, n);
            else
                rc = be_write_zero_buf(c, lba, n);
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

/* TRIM is a hint [proto §NBD_CMD_TRIM]: only the whole blocks inside the
 * range are discarded; partial edge blocks are left as they are. */
static int trim_range(struct conn *c, uint64_t off, uint64_t len)
{
    const uint32_t bs = c->be->block_size;
    uint64_t first = off / bs + (off % bs != 0);
    uint64_t end = (off + len) / bs;        /* off + len <= size: no wrap */
    if (end <= first)
        return 0;
    return be_range(c, c->be->trim, first, end - first);
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

static int ensure_buf(struct conn *c, size_t n)
{
    if (n <= c->buf_cap)
        return 0;
    free(c->buf);
    c->buf = malloc(n);
    c->buf_cap = c->buf ? n : 0;
    return c->buf ? 0 : -MOAT_ENOMEM;
}

/* After a successful write-class command with FUA: make it durable. */
static uint32_t fua(struct conn *c, uint16_t flags)
{
    if (!(flags & NBD_CMD_FLAG_FUA))
        return 0;
    c->st->backend_calls++;
    int rc = c->be->flush(c->be->ctx);
    return rc < 0 ? nbd_error_of(rc, true) : 0;
}

/* Carry out one checked request; returns the NBD error for the reply.
 * For WRITE the payload is already in c->buf. */
static uint32_t execute(struct conn *c, uint16_t flags, uint16_t type, uint64_t off, uint32_t len)
{
    const struct nbd_backend *be = c->be;
    /* FUA is valid on every command once advertised [proto §Command flags]. */
    uint16_t valid = (c->tflags & NBD_FLAG_SEND_FUA) ? NBD_CMD_FLAG_FUA : 0;
    int rc;
    switch (type) {
    case NBD_CMD_READ:
        if ((flags & ~valid) || len > NBD_PAYLOAD_MAX || !in_export(c, off, len))
            return NBD_EINVAL;
        if (ensure_buf(c, len) < 0)
            return NBD_ENOMEM;
        rc = span(c, SPAN_READ, off, len, c->buf);
        return rc < 0 ? nbd_error_of(rc, false) : 0;
    case NBD_CMD_WRITE:
        if (flags & ~valid)
            return NBD_EINVAL;
        if (be->read_only)
            return NBD_EPERM;
        if (!in_export(c, off, len))
            return NBD_ENOSPC;
        rc = span(c, SPAN_WRITE, off, len, c->buf);
        return rc < 0 ? nbd_error_of(rc, true) : fua(c, flags);
    case NBD_CMD_FLUSH:
        if ((flags & ~valid) || !(c->tflags & NBD_FLAG_SEND_FLUSH) || off != 0 || len != 0)
            return NBD_EINVAL;
        c->st->backend_calls++;
        rc = be->flush(be->ctx);
        return rc < 0 ? nbd_error_of(rc, true) : 0;
    case NBD_CMD_TRIM:
        if (flags & ~valid)
            return NBD_EINVAL;
        if (be->read_only)
            return NBD_EPERM;
        if (!(c->tflags & NBD_FLAG_SEND_TRIM) || !in_export(c, off, len))
            return NBD_EINVAL;
        rc = trim_range(c, off, len);
        return rc < 0 ? nbd_error_of(rc, true) : fua(c, flags);
    case NBD_CMD_WRITE_ZEROES:
        if (flags & ~(valid | NBD_CMD_FLAG_NO_HOLE))
            return NBD_EINVAL;
        if (be->read_only)
            return NBD_EPERM;
        if (!in_export(c, off, len))
            return NBD_ENOSPC;
        /* NO_HOLE needs nothing more: the backend's zeroes() writes zeroes
         * to a block device, it does not deallocate. */
        rc = span(c, SPAN_ZERO, off, len, NULL);
        return rc < 0 ? nbd_error_of(rc, true) : fua(c, flags);
    default:
        /* CACHE, BLOCK_STATUS (needs metadata contexts) and the unknown. */
        return NBD_EINVAL;
    }
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

static int transmission(struct conn *c)
{
    for (;;) {
        uint8_t h[REQ_HDR_LEN];
        int rc = recv_all(c, h, sizeof h, "a request header");
        if (rc == 1)
            return 0;       /* client hung up between requests */
        if (rc < 0)
            return rc;
        /* Copied into locals once; only these are used below. */
        uint32_t magic = get32(h);
        uint16_t flags = get16(h + 4);
        uint16_t type = get16(h + 6);
        uint64_t cookie = get64(h + 8);
        uint64_t off = get64(h + 16);
        uint32_t len = get32(h + 24);
        if (magic != NBD_MAGIC_REQUEST)
            return fail(c, -MOAT_EPROTO, "bad request magic 0x%08x (want 0x%08x), disconnecting",
                        magic, NBD_MAGIC_REQUEST);
        if (type == NBD_CMD_DISC)
            return 0;
        count(c->st, type);

        if (type == NBD_CMD_WRITE) {
            /* The payload follows whatever we think of the request, so it is
             * read first to stay in step; too big to read is a hang-up. */
            if (len > NBD_PAYLOAD_MAX)
                return fail(c, -MOAT_EPROTO, "client sent a %u-byte WRITE; the limit is %u bytes, "
                            "disconnecting", len, NBD_PAYLOAD_MAX);
            if (ensure_buf(c, len) < 0)
                return fail(c, -MOAT_ENOMEM, "out of memory for a %u-byte WRITE", len);
            rc = recv_msg(c, c->buf, len, "WRITE data");
            if (rc < 0)
                return rc;
        }

        uint32_t error = execute(c, flags, type, off, len);
        uint8_t r[REPLY_HDR_LEN];
        put32(r, NBD_MAGIC_REPLY);
        put32(r + 4, error);
        put64(r + 8, cookie);
        bool data = type == NBD_CMD_READ && error == 0;
        rc = send2(c, r, sizeof r, c->buf, data ? len : 0);
        if (rc < 0)
            return rc;
        if (error) {
            c->st->errors++;
        } else if (type == NBD_CMD_READ) {
            c->st->bytes_read += len;
        } else if (type == NBD_CMD_WRITE) {
            c->st->bytes_written += len;
        }
    }
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
    if (be->max_blocks == 0)
        return fail(c, -MOAT_EINVAL, "max_blocks is 0");
    if (!be->read || (!be->read_only && !be->write) || (be->can_flush && !be->flush) ||
        (be->can_trim && !be->trim) || (be->can_zeroes && !be->zeroes))
        return fail(c, -MOAT_EINVAL, "backend lacks a callback its flags offer");
    c->name = name;
    c->name_len = nl;
    c->size = be->blocks * bs;
    /* A read-only export offers no write-class command. CAN_MULTI_CONN is
     * never offered: the backend's cache is not known to be shared, and
     * read-modify-write of an edge block is not atomic against another
     * connection writing the same block. */
    c->tflags = NBD_FLAG_HAS_FLAGS;
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
        c->bounce = malloc(be->block_size);
        if (!c->bounce)
            rc = fail(c, -MOAT_ENOMEM, "out of memory for a bounce block");
    }
    if (rc == 0)
        rc = handshake(c);
    if (rc == 1) {
        rc = 0;             /* ended cleanly before transmission */
    } else if (rc == 0) {
        st->transmission = true;
        rc = transmission(c);
    }
    free(c->buf);
    free(c->bounce);
    free(c->zero);
    free(c);
    return rc;
}
