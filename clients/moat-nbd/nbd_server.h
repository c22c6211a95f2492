/*
 * moat-nbd/nbd_server.h — the NBD protocol engine of moat-nbd: serves one
 * export to one client connection, from the handshake to the disconnect,
 * over any byte stream (a Unix or TCP socket). It knows nothing of libmoat:
 * the storage behind the export is a struct nbd_backend of block-granular
 * callbacks, so the Criterion suite drives it with an in-memory disk.
 *
 * Protocol (the NBD spec, doc/proto.md of NetworkBlockDevice/nbd):
 *   handshake  newstyle (no oldstyle); the server offers FIXED_NEWSTYLE
 *              and NO_ZEROES and honours the client's flags (one without
 *              FIXED_NEWSTYLE is served the same way). Options:
 *              EXPORT_NAME, ABORT, LIST (one export), INFO and GO (replies
 *              INFO_EXPORT, INFO_BLOCK_SIZE always, INFO_NAME and
 *              INFO_DESCRIPTION when asked). The name "" is the default
 *              export and means the one export. Every other option is
 *              answered NBD_REP_ERR_UNSUP, so structured replies, metadata
 *              contexts and extended headers are never negotiated.
 *   transmission  simple replies only. READ, WRITE (FUA), FLUSH, TRIM,
 *              WRITE_ZEROES (FUA, NO_HOLE), DISC. Offsets and lengths are
 *              bytes: the engine maps them onto whole blocks, splits at
 *              max_blocks and does read-modify-write of partial edge blocks,
 *              so it advertises a minimum block size of 1, a preferred size
 *              of block_size and a maximum payload of NBD_PAYLOAD_MAX.
 *              Requests are served one at a time, in order.
 *
 * Trust: the client is hostile. Every header field is copied into locals
 * and checked before use; a range is checked as len > size || off > size -
 * len (never off + len), and a rejected request never reaches the backend.
 * Per request:
 *   bad magic, truncated header     hard disconnect (return -MOAT_EPROTO)
 *   WRITE payload > NBD_PAYLOAD_MAX hard disconnect (the spec allows it; the
 *                                   payload is not read)
 *   READ length > NBD_PAYLOAD_MAX   NBD_EINVAL, connection kept
 *   unknown command, unknown flag,
 *   flag not valid for the command,
 *   command not advertised          NBD_EINVAL
 *   WRITE/TRIM/WRITE_ZEROES on a
 *   read-only export                NBD_EPERM (payload consumed first)
 *   range beyond the export         NBD_ENOSPC for WRITE/WRITE_ZEROES,
 *                                   NBD_EINVAL for READ/TRIM
 *   FLUSH with offset or length     NBD_EINVAL
 *   no memory for a READ buffer     NBD_ENOMEM
 * Per option: bad magic or unknown client flags: hard disconnect; data over
 * NBD_OPT_DATA_MAX: discarded and answered NBD_REP_ERR_TOO_BIG (over 1 MiB:
 * hard disconnect); malformed INFO/GO or LIST with data: NBD_REP_ERR_INVALID;
 * EXPORT_NAME of an unknown export or with a name over NBD_NAME_MAX: hard
 * disconnect (the option cannot fail otherwise).
 *
 * Backend errors: a callback returns 0 or -MOAT_E* (moat/control_abi.h);
 * the reply carries MOAT_EPERM/EROFS -> NBD_EPERM, MOAT_ERANGE -> NBD_ENOSPC
 * (writes) or NBD_EINVAL (reads), MOAT_EINVAL -> NBD_EINVAL, MOAT_ENOTSUP ->
 * NBD_ENOTSUP, anything else -> NBD_EIO. A backend error never ends the
 * connection. A failed READ sends no data.
 *
 * Concurrency: one call serves one connection on the calling thread;
 * separate connections may be served on separate threads if their backends
 * allow it. Read-modify-write of an edge block is not atomic against another
 * connection writing the same block, which is one reason the engine never
 * offers NBD_FLAG_CAN_MULTI_CONN.
 */
#ifndef MOAT_NBD_SERVER_H
#define MOAT_NBD_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NBD_PAYLOAD_MAX   (32u << 20)   /* largest READ/WRITE payload */
#define NBD_OPT_DATA_MAX  8192u         /* largest option the engine parses */
#define NBD_NAME_MAX      4096u         /* longest export name (spec limit) */

/* Storage behind the export. Callbacks take whole blocks; the engine never
 * passes blocks == 0, blocks > max_blocks or a range beyond blocks, and
 * calls only what the flags offer (write/trim/zeroes never when read_only,
 * flush never unless can_flush, trim never unless can_trim, zeroes never
 * unless can_zeroes: write of a zero buffer is used instead). Each returns
 * 0 or -MOAT_E*. */
struct nbd_backend {
    uint64_t blocks;            /* capacity, > 0 */
    uint32_t block_size;        /* power of two, 512..65536 */
    uint32_t max_blocks;        /* largest single call, > 0 */
    bool read_only, can_flush, can_trim, can_zeroes;
    int (*read)(void *ctx, uint64_t lba, uint32_t blocks, void *buf);
    int (*write)(void *ctx, uint64_t lba, uint32_t blocks, const void *buf);
    int (*flush)(void *ctx);
    int (*trim)(void *ctx, uint64_t lba, uint32_t blocks);
    int (*zeroes)(void *ctx, uint64_t lba, uint32_t blocks);
    void *ctx;
    const char *description;    /* NBD_INFO_DESCRIPTION and LIST detail; NULL = none */
};

/* What one connection did. Requests are counted per command whether they
 * succeed or not; bytes only for successful READ/WRITE payloads; errors is
 * the number of error replies sent. backend_calls counts callback calls. */
struct nbd_stats {
    uint64_t reads, writes, flushes, trims, zeroes, other;
    uint64_t bytes_read, bytes_written;
    uint64_t errors;
    uint64_t backend_calls;
    bool transmission;          /* the handshake reached transmission */
};

/* Serve one client on fd (a connected stream socket; not closed here) until
 * it disconnects. export_name (non-empty, at most NBD_NAME_MAX bytes) is the
 * name the export is offered under; be describes the storage and must stay
 * valid throughout; st (may be NULL) is zeroed, then filled in.
 * Returns 0 when the client ended the session cleanly: NBD_CMD_DISC,
 * NBD_OPT_ABORT, or EOF between two messages. Otherwise a negative
 * -MOAT_E* and a sentence in err (err may be NULL when errlen is 0):
 *   -MOAT_EPROTO  the client broke the protocol (hard disconnect)
 *   -MOAT_ESYS    the socket failed (errno is kept)
 *   -MOAT_EINVAL  export_name or be is unusable (nothing was sent)
 *   -MOAT_ENOMEM  out of memory */
int nbd_serve_connection(int fd, const char *export_name, const struct nbd_backend *be,
                         struct nbd_stats *st, char *err, size_t errlen);

#endif /* MOAT_NBD_SERVER_H */
