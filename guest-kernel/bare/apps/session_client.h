/*
 * session_client.h — the client side of one session in a bare app domain:
 * a cap another domain serves (SYS_SESSION_OPEN, the monitor as broker),
 * requests through the session's rings (moat/ring.h, the hosted protocol
 * of moat/session_abi.h: BlockDevice and Nic entries share one size and
 * layout), every completion checked (tag outstanding, status known, length
 * within the request; a bad one is the server's fault and is counted,
 * never believed).
 *
 * Recovery: when the server restarts, the monitor formats fresh rings and
 * bumps the session's generation (bare_dom.h). The client attaches to them;
 * every request that had not completed and was submitted with `again` is
 * published again, in the order first submitted (a block write is
 * idempotent by LBA, and a flush outstanding comes again after the writes
 * before it; a posted Nic receive buffer is posted again); the others (a
 * frame being sent) complete at once as MOAT_ST_CANCELED and are counted
 * as dropped: TCP, or the app's own retry, recovers. Nothing completes
 * twice. When the server stays down (its policy, or its breaker opened),
 * what is in flight fails with MOAT_ST_EIO, and so does what is submitted
 * until a restart from the console serves it again. A server that breaks the rings (an impossible index) loses the
 * session: the client opens a fresh one on the same cap, carries its data
 * area over, closes the broken one and publishes again the same way; at
 * the fourth time, what is in flight fails with MOAT_ST_EIO instead.
 *
 * Runs in the domain runtime's loop: sc_open registers a poller (takes
 * completions, calls back) and an idle hook (asks the server for a kick,
 * then the loop sleeps). One CPU, no locks.
 */
#ifndef BARE_APPS_SESSION_CLIENT_H
#define BARE_APPS_SESSION_CLIENT_H

#include <stdbool.h>
#include <stdint.h>
#include "../dom/bare_dom.h"
#include "moat/ring.h"

#define SC_INFLIGHT 32u
#define SC_REOPENS_MAX 3u              /* then the session's requests fail (EIO) */

/* Request slot `slot` completed with status (enum moat_status) and len
 * (blocks, or a Nic entry's bytes). */
typedef void (*sc_done_fn)(void *ctx, unsigned slot, uint32_t status, uint32_t len);

struct sc_req {
    bool busy;
    bool again;                 /* publish again on fresh rings (else: dropped) */
    bool published;             /* in the rings of the current generation */
    uint64_t seq;               /* submission order */
    struct moat_sqe e;          /* as published (tag = seq << 8 | slot) */
};

struct sclient {
    char cap[64];               /* "<domain>.<cap>" */
    struct bare_session_info info;
    uint8_t *mem;               /* the session memory */
    uint8_t *data;              /* its data area: buffers by offset */
    struct moat_ring sq, cq;
    uint32_t gen, vector;
    bool attached;
    bool broken;                /* the server broke the rings: a fresh session is due */
    bool down;                  /* its server stays down (BARE_SESSION_DOWN) */
    sc_done_fn done;
    void *ctx;
    struct sc_req req[SC_INFLIGHT];
    uint64_t next_seq;
    uint64_t submitted, completed, resubmitted, dropped, bad_completions;
    uint64_t fresh_rings;       /* sets of rings after the first: server restarts seen */
    uint64_t reopened;          /* fresh sessions after the server broke the rings */
};

/* Open a session on cap "<domain>.<cap>" of kind (MOAT_CAP_BLOCK or
 * MOAT_CAP_NIC), waiting up to timeout_ns for its server to register it;
 * done is called for every completion. False (logged) when it cannot. */
bool sc_open(struct sclient *c, const char *cap, uint32_t kind, uint64_t timeout_ns,
             sc_done_fn done, void *ctx);
/* Submit one entry (its tag is set here); the slot it took, or -1 when
 * all are busy. While the server stays down, done is called at once
 * (MOAT_ST_EIO) from here: a done that submits again on MOAT_ST_EIO
 * would recurse without end. Keep what failed, and submit it again from
 * a poller once sc_server_down is false. */
int sc_submit(struct sclient *c, const struct moat_sqe *e, bool again);
/* The server stays down (its breaker opened, or restart=never) until a
 * restart from the console. */
static inline bool sc_server_down(const struct sclient *c) { return c->down; }
/* Requests submitted and not completed. */
unsigned sc_in_flight(const struct sclient *c);

#endif /* BARE_APPS_SESSION_CLIENT_H */
