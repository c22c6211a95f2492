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

struct moat_client {
    int fd;
    uint32_t seq;
    uint32_t client_id;
    bool admin;
    char path[108];
    struct moat_session *sessions[MOAT_CLIENT_SESSIONS_MAX];
    struct moat_cap *caps[MOAT_CLIENT_CAPS_MAX];    /* freed by moat_disconnect */
    uint64_t caps_up;           /* CAP_UP events seen (reattach waits on it) */
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
    uint16_t op;
    uint32_t blocks;
    uint32_t gen;
    void *user_buf;
    uint64_t user_data;
};

struct moat_session {
    struct moat_client *c;      /* NULL for a test-attached session */
    struct moat_cap *cap;
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
};

/* Build a session over memory and eventfds the caller set up (the VMM's
 * job in real use). The session does not own mem, kick_fd or notify_fd. */
int moat__session_attach(void *mem, const struct moat_session_reply *layout, int kick_fd,
                         int notify_fd, const struct moat_blk_geometry *geo, uint32_t rights,
                         struct moat_session **out);
/* Free a session made by moat__session_attach. */
void moat__session_detach(struct moat_session *s);

/* Client internals used by session.c. */
int moat__rpc(struct moat_client *c, uint16_t type, const void *req, uint32_t req_len,
              void *reply, uint32_t reply_max, uint32_t *reply_len, int *fds, unsigned n_fds);
/* Read pending events without blocking (marks revoked sessions). */
int moat__drain_events(struct moat_client *c);
/* The session failed: every outstanding request completes with err. */
void moat__session_fail(struct moat_session *s, int err);

#endif /* MOAT_LIBMOAT_INTERNAL_H */
