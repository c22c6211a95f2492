/*
 * libmoat_internal.h — what libmoat's files share, and the one hook the
 * ring-protocol suite uses to play the serving domain without a VMM.
 */
#ifndef MOAT_LIBMOAT_INTERNAL_H
#define MOAT_LIBMOAT_INTERNAL_H

#include "moat/libmoat.h"
#include "moat/ring.h"

#define MOAT_CLIENT_SESSIONS_MAX 64u
#define MOAT_CLIENT_CAPS_MAX 64u
/* Protocol violations a session recovers from (on a fresh session) before
 * it fails with MOAT_EPROTO for good. */
#define MOAT_PROTO_RECOVERIES 8u

struct moat_client {
    int fd;
    uint32_t seq;
    uint32_t client_id;
    bool admin;
    char path[108];
    struct moat_session *sessions[MOAT_CLIENT_SESSIONS_MAX];
    struct moat_cap *caps[MOAT_CLIENT_CAPS_MAX];    /* freed by moat_disconnect */
    uint64_t caps_up;           /* CAP_UP events seen (reattach waits on it) */
    uint64_t domains_down;      /* DOMAIN_DOWN events seen (likewise) */
};

struct moat_cap {
    struct moat_client *c;
    uint64_t handle;
    uint32_t rights;
    struct moat_cap_desc desc;
};

/* One request slot: tag = gen << 32 | index. */
struct moat_slot {
    bool busy;
    bool arrived;               /* Nic RX: completed, its frame waits in the slot for
                                 * moat_nic_recv (busy, but no longer outstanding) */
    uint16_t op;
    uint32_t blocks;
    uint32_t gen;
    void *user_buf;
    uint64_t user_data;
    uint64_t lba;
    uint64_t seq;               /* submission order, kept across a recovery */
};

/* A BlockDevice request waiting for the next incarnation (recover.c). */
struct moat_held {
    uint16_t op;
    uint32_t blocks;
    uint64_t lba;
    void *buf;
    uint64_t user_data;
    uint64_t seq;
};

/* A Nic session's client-side state (nic.c). */
struct moat_nic_rx { uint32_t idx, len; };
struct moat_nic_state {
    struct moat_nic_info info;
    uint32_t rx_target;         /* receive buffers kept posted */
    uint32_t rx_posted;         /* posted, not yet completed */
    uint32_t tx_inflight;
    struct moat_nic_rx *ready;  /* received frames not yet taken (FIFO) */
    uint32_t ready_head, ready_n;
    bool info_done;
    struct moat_nic_status status;
};

struct moat_session {
    struct moat_client *c;      /* NULL for a test-attached session */
    struct moat_cap *cap;
    uint32_t kind;              /* MOAT_CAP_BLOCK or MOAT_CAP_NIC */
    struct moat_nic_state nic;
    struct moat_session_params params;
    uint32_t id;
    int err;                    /* latched: -MOAT_EPROTO / -MOAT_ESTALE, else 0 */
    uint8_t *mem;
    struct moat_session_reply layout;
    int kick_fd, notify_fd;
    struct moat_ring sq, cq;
    struct moat_blk_geometry geo;
    uint32_t rights;
    uint32_t max_blocks;
    uint64_t slot_bytes;        /* data area bytes per request slot */
    struct moat_slot *slot;
    uint32_t *free_idx;
    uint32_t n_free;
    struct moat_completion *local;  /* completions made here (errors) */
    uint32_t n_local;
    struct moat_session_stats st;
    /* Recovery (recover.c); these outlive a reattach. */
    uint64_t seq_next;
    bool recovering;            /* revoked: held requests wait for a new incarnation */
    uint32_t domain_down;       /* enum moat_down_reason: it will not come back */
    uint64_t recover_deadline;  /* CLOCK_MONOTONIC ns */
    uint64_t caps_seen;         /* c->caps_up at the last look for the new incarnation */
    uint64_t looked_ns;         /* when that look was (0: none yet) */
    struct moat_held *held;     /* submit order */
    uint32_t n_held, cap_held;
    struct moat_completion *owed;   /* completions to deliver while detached */
    uint32_t n_owed, cap_owed;
    uint64_t events_checked_ns; /* last look at moat's events or for the new
                                 * incarnation (at most once a ms) */
};

/* Build a session over memory and eventfds the caller set up (the VMM's
 * job in real use). The session does not own mem, kick_fd or notify_fd. */
int moat__session_attach(void *mem, const struct moat_session_reply *layout, int kick_fd,
                         int notify_fd, const struct moat_blk_geometry *geo, uint32_t rights,
                         struct moat_session **out);
/* The same for a Nic session described by info. */
int moat__session_attach_nic(void *mem, const struct moat_session_reply *layout, int kick_fd,
                             int notify_fd, const struct moat_nic_info *info, uint32_t rights,
                             struct moat_session **out);
/* Free a session made by moat__session_attach(_nic). */
void moat__session_detach(struct moat_session *s);

/* Client internals used by session.c. */
int moat__rpc(struct moat_client *c, uint16_t type, const void *req, uint32_t req_len,
              void *reply, uint32_t reply_max, uint32_t *reply_len, int *fds, unsigned n_fds);
/* Sleep on c's socket, reading events, until a CAP_UP or DOMAIN_DOWN
 * arrives after the counts given, or deadline: 0 or -MOAT_ETIMEDOUT. */
int moat__wait_caps(struct moat_client *c, uint64_t seen_up, uint64_t seen_down,
                    uint64_t deadline);
/* Read pending events without blocking (marks revoked sessions). */
int moat__drain_events(struct moat_client *c);
/* The session failed: every outstanding request completes with err. */
void moat__session_fail(struct moat_session *s, int err);
/* The domain broke the protocol: fail the session with EPROTO and report
 * the reason to moat. */
void moat__malformed(struct moat_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Kick the domain (eventfd write), counted. */
void moat__kick(struct moat_session *s);
/* Sleep until the completion ring has entries, the session failed, or
 * deadline (CLOCK_MONOTONIC ns; UINT64_MAX = none) passes: 0, or
 * -MOAT_ETIMEDOUT / -MOAT_ESYS. Spins briefly first. */
int moat__session_block(struct moat_session *s, uint64_t deadline);
/* While recovering without blocking (moat_poll, event loops): is it time to
 * look for the new incarnation? At most once a ms it reads moat's events;
 * yes when a cap came up since the last look, the domain is down for good,
 * recover_ms ran out, or RECOVER_LOOK_NS passed (a missed event). */
#define RECOVER_LOOK_NS 100000000ull
bool moat__recover_due(struct moat_session *s);
/* The same, also waking when fd (>= 0; -1 = none) is readable: returns 1
 * then, else 0 or -MOAT_E*. */
int moat__session_block_fd(struct moat_session *s, int fd, uint64_t deadline);
uint64_t moat__now_ns(void);
/* Recovery (recover.c). The domain serving s is gone (ESTALE): hold its
 * outstanding requests for the next incarnation, or fail them with err
 * when s does not recover. */
void moat__recover_begin(struct moat_session *s);
/* Move to the next incarnation, waiting until deadline (CLOCK_MONOTONIC
 * ns) at most: reattach, submit the held requests again. 0 on success;
 * -MOAT_ETIMEDOUT when deadline came first (still recovering); another
 * -MOAT_E* when recovery gave up (every held request then completes with
 * it, and the session keeps that error). */
int moat__recover(struct moat_session *s, uint64_t deadline);
/* Before a call uses s: recover if its domain restarted (waiting at most
 * recover_ms). 0 when s is attached and may be used, else -MOAT_E*. */
int moat__session_ready(struct moat_session *s);
/* After completions: submit held flushes whose earlier requests are done. */
void moat__recover_release_flushes(struct moat_session *s);
/* A call found nothing to do: at most once a millisecond, read moat's
 * events without blocking, so a caller that only ever polls still learns
 * that its session was revoked (and recovers). */
void moat__idle_check(struct moat_session *s);
/* Free what recovery holds (session close). */
void moat__recover_free(struct moat_session *s);
/* Submit one request into a free slot (the caller checked room), keeping
 * seq (moat_blk_submit passes a new one). */
void moat__submit_one(struct moat_session *s, uint32_t pos, const struct moat_blk_req *r,
                      uint64_t seq);
/* Publish n requests written at positions 0..n-1 (kicks when asked). */
int moat__publish(struct moat_session *s, uint32_t n);
/* moat_session_reattach without the final failure latch. */
int moat__reattach(struct moat_session *s, uint64_t deadline);

/* Nic: make the session's Nic state (nic.c); -MOAT_E* on failure. */
int moat__nic_init(struct moat_session *s);
void moat__nic_free(struct moat_session *s);

#endif /* MOAT_LIBMOAT_INTERNAL_H */
