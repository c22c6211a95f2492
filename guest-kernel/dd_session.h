/*
 * dd_session.h — the platform's client sessions, shared by dd_serve.c
 * (session table, rings, completions, the BlockDevice protocol) and
 * dd_nic.c (the Nic protocol). Drivers never see this.
 *
 * One run-loop poller (serve_poll in dd_serve.c) owns every session: it
 * scans the table, lets the cap's protocol take requests, publishes staged
 * completions once per pass (one doorbell when the client asked for one)
 * and releases closing sessions once nothing is owed (at once those it
 * never served: closed before it looked, or refused at attach).
 */
#ifndef GK_DD_SESSION_H
#define GK_DD_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include "dd.h"
#include "moat/ring.h"

#define SERVE_CAPS_MAX 4u

struct served_cap {
    uint32_t kind;              /* MOAT_CAP_BLOCK or MOAT_CAP_NIC */
    struct moat_blk_geometry geo;
    const struct dd_blk_ops *ops;
    void *ctx;
    struct dd_nic *nic;         /* kind == NIC */
};

/* A receive buffer a Nic client posted, or a frame waiting to be sent. */
struct nic_post {
    uint64_t tag;
    uint64_t off;               /* validated: off + len fits the data area */
    uint32_t len;               /* TX: the frame's length */
};

struct nic_session {
    struct nic_post *post;      /* FIFO of receive buffers, `entries` slots */
    uint32_t post_head, post_n;
    struct nic_post *txq;       /* FIFO of frames the driver had no room for */
    uint32_t txq_head, txq_n;
    bool tx_blocked;            /* the driver refused a frame: wait for tx_ready */
    struct moat_nic_status st;  /* this session's counters (mac/link filled on INFO) */
};

struct gsession {
    bool active, closing, broken;
    uint32_t slot, id, cap, rights, entries;
    struct moat_ring sq, cq;
    uint8_t *data;
    uint64_t data_size;
    uint64_t data_iova;         /* where devices reach data; 0 = they cannot */
    volatile uint32_t *doorbell;
    uint32_t owed;              /* requests taken whose completion is unpublished */
    uint32_t staged;            /* completions written, not yet published */
    uint32_t drain_left;        /* orderly stop: queued requests still to take */
    struct nic_session nic;     /* cap kind NIC */
};

extern struct served_cap serve_caps[SERVE_CAPS_MAX];

/* Write one completion (published at the end of the pass). The caller
 * made sure it is owed (counted in s->owed). */
void serve_stage(struct gsession *s, uint64_t tag, uint32_t status, uint32_t len);
/* The client broke its ring: stop serving s until moat closes it. */
void serve_abandon(struct gsession *s, const char *why);
/* Count one request taken from a ring (refused: answered as malformed). */
void serve_count_request(bool refused);
/* Requests waiting in s's ring and free completion slots; false (s
 * abandoned) when the client wrote an impossible index. */
bool serve_ring_room(struct gsession *s, uint32_t *avail, uint32_t *space);
/* Register a cap with moat and start serving sessions; the index in
 * serve_caps, or -1 (logged) when moat refused. */
int serve_register(const struct moat_cap_register *reg, const struct served_cap *c);
/* The same, with name copied (truncated to fit) into reg first. */
int serve_register_named(struct moat_cap_register *reg, const char *name,
                         const struct served_cap *c);
/* Session in slot i (0 .. MOAT_SESSION_SLOTS - 1). */
struct gsession *serve_session(uint32_t i);
/* Sessions whose cap is index cap and which are being served now. */
static inline bool serve_live(const struct gsession *s, uint32_t cap)
{
    return s->active && !s->closing && !s->broken && s->cap == cap;
}

/* Orderly stop (gk/stop.h): each session takes what its client had queued
 * when the stop began (drain_left), and nothing after; what was taken is
 * answered. Nic receive buffers posted are canceled (they would wait for
 * traffic and hold completion slots frames to send need). In flight: the
 * queued requests, block requests owed, Nic frames not yet sent. */
void serve_drain_start(void);
unsigned serve_in_flight(void);
/* n requests were taken from s's ring: consume them, kick the client if it
 * asked, count them against drain_left. */
void serve_consume(struct gsession *s, uint32_t n);

/* dd_nic.c: the Nic protocol's part of the pass. */
bool nic_take_requests(struct gsession *s);     /* true when it did work */
void nic_session_open(struct gsession *s);
void nic_session_closing(struct gsession *s);   /* cancel posted buffers and waiting frames */
void nic_cancel_posts(struct gsession *s);      /* cancel posted receive buffers */
void nic_pass_end(void);                        /* flush TX batches */

/* Injected fault (corrupt-session): put the first live session's
 * completion producer index where no ring can have it; false when no
 * session is live. */
bool dd_serve_corrupt_ring(void);

#endif /* GK_DD_SESSION_H */
