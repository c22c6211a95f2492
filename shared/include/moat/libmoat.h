/*
 * moat/libmoat.h — what applications link to use moat's capabilities.
 *
 *   moat_connect            one control connection to a running moat
 *   moat_list / moat_open   find caps and open a handle with some rights
 *   moat_session_open       a pair of shared rings with the serving domain;
 *                           requests then bypass the VMM entirely
 *   moat_blk_read/write/…   synchronous block calls (one request, waits)
 *   moat_blk_submit / moat_poll / moat_wait
 *                           asynchronous calls and batches
 *   moat_nic_send/recv/status  Ethernet frames over a Nic session
 *   moat_domains/stats/audit/restart/stop/inject
 *                           the Control cap (what moatctl uses)
 *
 * Every call returns 0 (or a count, where it says so) or -MOAT_E*; see
 * moat_strerror. Nothing is thread-safe: use one session per thread.
 *
 * Trust: the serving domain may be buggy or hostile. Every completion is
 * validated before use (its tag must name an outstanding request, its status
 * must be known, its length must fit the request); a bad one fails the
 * session, and is reported to moat, which counts and audits it against the
 * domain. A recovering session (below) then moves to a fresh session with
 * the same domain and submits its outstanding requests again, up to 8
 * times; after that, or with recovery off, the session and every
 * outstanding request fail with MOAT_EPROTO. Read data is copied out of
 * shared memory before it is returned.
 *
 * Restarts: when the serving domain ends, moat revokes its sessions and
 * (by its restart policy) starts a new incarnation. A session recovers by
 * itself (moat_session_params.recover_ms): the next call waits for the cap
 * to come back, opens a fresh session on the new incarnation and submits
 * again every BlockDevice request that had not completed, in the order
 * they were first submitted (reads and writes are idempotent by LBA; a
 * flush goes again only once every request submitted before it has
 * completed). No completion from the old incarnation is ever delivered.
 * Callers see no MOAT_ESTALE for a crash the restart policy absorbs; they
 * get MOAT_EFAILED once the domain's breaker opens (it crash-loops and is
 * held down) and MOAT_EDOWN when it is not back within recover_ms - never
 * a hang. A Nic session drops (and counts) the frames in flight and posts
 * its receive buffers again. With recover_ms = -1 calls fail with
 * MOAT_ESTALE instead, and moat_session_reattach opens a fresh session.
 */
#ifndef MOAT_LIBMOAT_H
#define MOAT_LIBMOAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "moat/control_abi.h"

struct moat_client;
struct moat_cap;
struct moat_session;

/* Default control socket: $MOAT_SOCKET, else $XDG_RUNTIME_DIR/moat.sock,
 * else /tmp/moat-$UID/moat.sock. Returns a static string. */
const char *moat_default_socket(void);

/* path NULL = moat_default_socket(). */
int moat_connect(const char *path, struct moat_client **out);
/* Closes every cap and session of the connection and frees them: pointers
 * to them are invalid afterwards. */
void moat_disconnect(struct moat_client *c);
/* The control socket fd (readable when an event is pending), for poll(). */
int moat_client_fd(const struct moat_client *c);

/* moat_open, but while the cap's domain is restarting (MOAT_ERESTARTING)
 * wait up to timeout_ms for it to serve again. */
int moat_open_ready(struct moat_client *c, const char *name, uint32_t rights, int timeout_ms,
                    struct moat_cap **out);
/* Copy up to max cap descriptions into out; returns how many there are in
 * total (may exceed max) or -MOAT_E*. */
int moat_list(struct moat_client *c, struct moat_cap_desc *out, size_t max);

/* Open the cap called name with rights (MOAT_RIGHT_*; moat refuses rights
 * the caller may not have). */
int moat_open(struct moat_client *c, const char *name, uint32_t rights, struct moat_cap **out);
/* For tools started beside moat: connect (path NULL = default socket) and
 * open name, retrying every 100 ms for up to wait_s seconds while moat is
 * not up yet or the cap does not exist or is down. On success *c and *cap
 * are set; on failure nothing is left open and the last error returned. */
int moat_open_wait(const char *path, const char *name, uint32_t rights, unsigned wait_s,
                   struct moat_client **c, struct moat_cap **cap);
/* Close and free one handle (its sessions must be closed first). */
void moat_close(struct moat_cap *cap);
const struct moat_cap_desc *moat_cap_desc(const struct moat_cap *cap);

/* ---- sessions -------------------------------------------------------------- */

struct moat_session_params {
    uint32_t entries;           /* ring depth: power of two, 8..4096 (0 = 64) */
    uint64_t data_size;         /* shared buffer bytes (0 = entries * 128 KiB,
                                 * capped at 64 MiB) */
    int32_t recover_ms;         /* after a restart of the domain, wait this
                                 * long for it (0 = MOAT_RECOVER_MS_DEFAULT;
                                 * -1 = do not recover: MOAT_ESTALE) */
};
#define MOAT_RECOVER_MS_DEFAULT 10000

int moat_session_open(struct moat_cap *cap, const struct moat_session_params *p,
                      struct moat_session **out);
void moat_session_close(struct moat_session *s);
/* After MOAT_ESTALE: wait up to timeout_ms for the cap to come back up and
 * open a new session in place of s (same parameters). */
int moat_session_reattach(struct moat_session *s, int timeout_ms);
/* Largest request in blocks (bounded by the domain and by the buffer). */
uint32_t moat_session_max_blocks(const struct moat_session *s);

struct moat_session_stats {
    uint64_t submitted, completed;
    uint64_t kicks_sent;        /* eventfd writes to the domain */
    uint64_t waits;             /* sleeps on the notify eventfd */
    uint64_t malformed;         /* completions refused (then EPROTO) */
    uint64_t recoveries;        /* new incarnations this session moved to */
    uint64_t resubmitted;       /* requests submitted again after a restart */
    uint64_t frames_dropped;    /* Nic: frames in flight lost to a restart */
};
void moat_session_stats(const struct moat_session *s, struct moat_session_stats *out);

/* ---- BlockDevice ----------------------------------------------------------- */

/* Geometry as the domain registered it (block size, count, features). */
int moat_blk_geometry(const struct moat_cap *cap, struct moat_blk_geometry *out);

/* Synchronous: one request, waits for its completion. buf holds
 * blocks * block_size bytes. */
int moat_blk_read(struct moat_session *s, uint64_t lba, uint32_t blocks, void *buf);
int moat_blk_write(struct moat_session *s, uint64_t lba, uint32_t blocks, const void *buf);
int moat_blk_flush(struct moat_session *s);
int moat_blk_write_zeroes(struct moat_session *s, uint64_t lba, uint32_t blocks);
int moat_blk_discard(struct moat_session *s, uint64_t lba, uint32_t blocks);

/* Asynchronous. For READ, buf receives the data when the completion is
 * returned by moat_poll/moat_wait; for WRITE the data is copied at submit,
 * so buf may be reused at once. buf is unused for other ops. */
struct moat_blk_req {
    uint16_t op;                /* enum moat_blk_op */
    uint64_t lba;
    uint32_t blocks;
    void *buf;
    uint64_t user_data;         /* returned in the completion */
};
struct moat_completion {
    uint64_t user_data;
    int status;                 /* 0 or -MOAT_E* */
    uint32_t blocks;
};

/* Queue up to n requests and kick the domain once (if it asked to be
 * kicked). Returns how many were queued (0..n; fewer when the ring or the
 * buffer is full) or -MOAT_E* when none could be. A request that is itself
 * invalid (zero or too many blocks, unknown op, op not offered) fails the
 * call with -MOAT_EINVAL / -MOAT_ENOTSUP before anything is queued. */
int moat_blk_submit(struct moat_session *s, const struct moat_blk_req *reqs, size_t n);
/* Completions available now, without sleeping: returns how many (0..max). */
int moat_poll(struct moat_session *s, struct moat_completion *out, size_t max);
/* Like moat_poll but sleeps until at least one completion arrives or
 * timeout_ms passes (-1 = forever): returns how many, or -MOAT_ETIMEDOUT. */
int moat_wait(struct moat_session *s, struct moat_completion *out, size_t max, int timeout_ms);
/* For event loops: like moat_wait, but also returns 0 as soon as fd (yours:
 * a socket, a pipe) is readable, and waits on fd alone when nothing is in
 * flight. A restart being recovered is looked at while fd is watched. */
int moat_wait_fd(struct moat_session *s, int fd, struct moat_completion *out, size_t max,
                 int timeout_ms);
/* Requests submitted and not yet returned by poll/wait. */
uint32_t moat_inflight(const struct moat_session *s);

/* ---- Nic ------------------------------------------------------------------- */

/* MAC, MTU and largest frame as the domain registered them. */
int moat_nic_info(const struct moat_cap *cap, struct moat_nic_info *out);

/* A Nic session (moat_session_open on a Nic cap; the default data area
 * holds one frame per entry) keeps half its entries posted as receive
 * buffers, refilled as frames are taken; the other half carry frames out.
 * Frames are Ethernet without FCS, 14..max_frame bytes. */
struct moat_frame {
    void *data;
    uint32_t len;               /* send: frame length; recv: in capacity, out length */
};

/* Queue up to n frames for sending (copied at once; the buffers may be
 * reused on return) and kick the domain once if it asked. Returns how many
 * were queued, 0..n (fewer when the send half of the ring is full: take
 * received frames or call again), or -MOAT_E*. A frame of a bad length
 * fails the call with -MOAT_EINVAL before anything is queued. Needs WRITE. */
int moat_nic_send(struct moat_session *s, const struct moat_frame *frames, size_t n);
/* Take up to max received frames, waiting up to timeout_ms (0 = just
 * look, -1 = forever) for the first. Each is copied into frames[i].data
 * (at most the capacity given in frames[i].len, which then says the
 * frame's real length). Returns how many (0 only when timeout_ms is 0),
 * or -MOAT_ETIMEDOUT / -MOAT_E*. Needs READ. */
int moat_nic_recv(struct moat_session *s, struct moat_frame *frames, size_t max, int timeout_ms);
/* For event loops: like moat_nic_recv, but also returns 0 as soon as fd
 * (yours: an eventfd, a socket) is readable. */
int moat_nic_recv_fd(struct moat_session *s, int fd, struct moat_frame *frames, size_t max,
                     int timeout_ms);
/* Live link state and this session's counters (a request to the domain;
 * frames that arrive meanwhile stay queued for moat_nic_recv). */
int moat_nic_status(struct moat_session *s, struct moat_nic_status *out);
/* Frames queued for sending and not yet taken by the domain. */
uint32_t moat_nic_tx_inflight(const struct moat_session *s);

/* ---- Control (open "control" with READ, and ADMIN for changes) ------------- */

/* Return counts like moat_list. */
int moat_domains(struct moat_cap *ctl, struct moat_domain_status *out, size_t max);
int moat_domain_stats(struct moat_cap *ctl, const char *domain, struct moat_domain_stats *out);
/* The newest audit records of every domain (each domain's trail gives at
 * most its share of max, so one domain cannot crowd out the others), or
 * of one domain with moat_audit_of (domain NULL: all). */
int moat_audit(struct moat_cap *ctl, struct moat_audit_rec *out, size_t max);
int moat_audit_of(struct moat_cap *ctl, const char *domain, struct moat_audit_rec *out,
                  size_t max);
/* Per-domain audit counts: records written, dropped, by kind. */
int moat_audit_summary(struct moat_cap *ctl, struct moat_audit_sum *out, size_t max);
int moat_restart(struct moat_cap *ctl, const char *domain);
int moat_stop(struct moat_cap *ctl, const char *domain);
int moat_inject(struct moat_cap *ctl, const char *domain, uint32_t fault);

/* ---- errors ---------------------------------------------------------------- */

/* A sentence for err (0 or -MOAT_E*; also accepts the positive code). */
const char *moat_strerror(int err);

#endif /* MOAT_LIBMOAT_H */
