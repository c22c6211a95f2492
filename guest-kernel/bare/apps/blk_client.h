/*
 * blk_client.h — a BlockDevice client in a bare app domain: one session
 * on a cap another domain serves (SYS_SESSION_OPEN, the monitor as
 * broker), requests through the session's rings (moat/ring.h, the hosted
 * protocol of moat/session_abi.h), every completion checked (tag
 * outstanding, status known, blocks within the request; a bad one is the
 * server's fault and is counted, never believed).
 *
 * Recovery: when the server restarts, the monitor formats fresh rings and
 * bumps the session's generation (bare_dom.h). The client attaches to them
 * and publishes again every request that had not completed, in the order
 * first submitted: a write is idempotent by LBA, and a flush outstanding
 * comes again after the writes before it. A completed write is the
 * device's (a flush makes it durable); nothing completes twice.
 *
 * Runs in the domain runtime's loop: blkc_open registers a poller (takes
 * completions, calls back) and an idle hook (asks the server for a kick,
 * then the loop sleeps). One CPU, no locks.
 */
#ifndef BARE_APPS_BLK_CLIENT_H
#define BARE_APPS_BLK_CLIENT_H

#include <stdbool.h>
#include <stdint.h>
#include "bare/dom/bare_dom.h"
#include "moat/ring.h"

#define BLKC_INFLIGHT 16u

struct blkc;
/* Request slot `slot` completed with status (enum moat_status). */
typedef void (*blkc_done_fn)(void *ctx, unsigned slot, uint32_t status);

struct blkc_req {
    bool busy;
    bool published;             /* in the rings of the current generation */
    uint64_t seq;               /* submission order */
    struct moat_sqe e;          /* as published (tag = seq << 8 | slot) */
};

struct blkc {
    struct bare_session_info info;
    uint8_t *mem;               /* the session memory */
    uint8_t *data;              /* its data area: buffers by offset */
    struct moat_ring sq, cq;
    uint32_t gen, vector;
    bool attached;
    blkc_done_fn done;
    void *ctx;
    struct blkc_req req[BLKC_INFLIGHT];
    uint64_t next_seq;
    uint64_t submitted, completed, resubmitted, bad_completions;
    uint64_t fresh_rings;        /* sets of rings after the first: server restarts seen */
};

/* Open a session on cap "<domain>.<cap>", waiting up to timeout_ns for its
 * server to register it; done is called for every completion. False
 * (logged) when it cannot. */
bool blkc_open(struct blkc *c, const char *cap, uint64_t timeout_ns, blkc_done_fn done, void *ctx);
/* Submit one request (buf_off: its buffer in the data area); the slot it
 * took, or -1 when all are busy. */
int blkc_submit(struct blkc *c, uint16_t op, uint64_t lba, uint32_t blocks, uint64_t buf_off);
/* Requests submitted and not completed. */
unsigned blkc_in_flight(const struct blkc *c);

#endif /* BARE_APPS_BLK_CLIENT_H */
