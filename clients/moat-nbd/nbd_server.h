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
 *   pipelining Up to min(depth, NBD_INFLIGHT_MAX) requests are in flight at
 *              once; each is answered when its backend calls complete, so
 *              replies come out of order (by cookie), as NBD allows
 *              [proto §Ordering of messages and writes]. A request with a
 *              partial edge block (read-modify-write) first waits for every
 *              request in flight, then runs alone. FLUSH covers the writes
 *              answered before it arrived; FUA is a flush after the write.
 *              DISC and EOF answer what is in flight before returning.
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
 * allow it. NBD_FLAG_CAN_MULTI_CONN is offered only when the backend says
 * its flush covers every connection's writes (multi_conn) and gives a lock
 * shared by those connections (edge_lock), held around each read-modify-
 * write so that two connections writing different bytes of one block do
 * not undo each other.
 */
#ifndef MOAT_NBD_SERVER_H
#define MOAT_NBD_SERVER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NBD_PAYLOAD_MAX   (32u << 20)   /* largest READ/WRITE payload */
#define NBD_OPT_DATA_MAX  8192u         /* largest option the engine parses */
#define NBD_NAME_MAX      4096u         /* longest export name (spec limit) */

#define NBD_INFLIGHT_MAX  256u         /* NBD requests in flight per connection */

/* One backend call. Calls are block-granular: the engine never passes
 * blocks == 0, blocks > max_blocks or a range beyond blocks, and issues
 * only what the flags offer (WRITE/TRIM/ZEROES never when read_only, FLUSH
 * never unless can_flush, TRIM never unless can_trim, ZEROES never unless
 * can_zeroes: a WRITE of a zero buffer is used instead). buf (READ and
 * WRITE only) holds blocks * block_size bytes and stays valid until the
 * call completes; blocks and lba are 0 for FLUSH. */
enum nbd_io_op { NBD_IO_READ, NBD_IO_WRITE, NBD_IO_FLUSH, NBD_IO_TRIM, NBD_IO_ZEROES };
struct nbd_io {
    uint16_t op;                /* enum nbd_io_op */
    uint64_t lba;
    uint32_t blocks;
    void *buf;
    uint64_t tag;               /* returned in the completion */
};
struct nbd_done {
    uint64_t tag;
    int status;                 /* 0 or -MOAT_E* */
};

/* Storage behind the export, driven asynchronously:
 *   submit  queue one call: 0, or -MOAT_EBUSY when the backend is full
 *           (the engine reaps, then submits again), or another -MOAT_E*
 *           that fails this call alone (nothing was queued).
 *   reap    completed calls, up to max: returns how many (0..max). With
 *           wait, sleeps first until at least one completes or, when fd >=
 *           0, fd becomes readable (then it may return 0); the engine waits
 *           only with calls in flight or fd given. A negative -MOAT_E* means
 *           the backend is broken: the connection ends, and the backend
 *           guarantees no call still in flight touches its buf again.
 * depth is how many calls the engine keeps in flight at most (> 0). */
struct nbd_backend {
    uint64_t blocks;            /* capacity, > 0 */
    uint32_t block_size;        /* power of two, 512..65536 */
    uint32_t max_blocks;        /* largest single call, > 0 */
    uint32_t depth;             /* calls in flight at most, > 0 */
    bool read_only, can_flush, can_trim, can_zeroes;
    bool multi_conn;            /* flush covers every connection's writes */
    int (*submit)(void *ctx, const struct nbd_io *io);
    int (*reap)(void *ctx, int fd, bool wait, struct nbd_done *out, size_t max);
    void *ctx;
    pthread_mutex_t *edge_lock; /* shared by the connections of one export;
                                 * NULL = none (then no multi-conn) */
    const char *description;    /* NBD_INFO_DESCRIPTION and LIST detail; NULL = none */
};

/* What one connection did. Requests are counted per command whether they
 * succeed or not; bytes only for successful READ/WRITE payloads; errors is
 * the number of error replies sent. backend_calls counts submitted calls;
 * backend_full the times submit said EAGAIN; inflight_max the most NBD
 * requests in flight at once; serialized the requests that waited for the
 * pipeline to empty (read-modify-write); reply_sends the send calls that
 * carried replies (several replies share one when they complete together);
 * waits the sleeps in reap. */
struct nbd_stats {
    uint64_t reads, writes, flushes, trims, zeroes, other;
    uint64_t bytes_read, bytes_written;
    uint64_t errors;
    uint64_t backend_calls, backend_full;
    uint64_t inflight_max, serialized, reply_sends, waits;
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
