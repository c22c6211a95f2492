/*
 * capsvc.h — the capability service: the cap table, the sessions between
 * clients and serving domains (what clients report is audited). The
 * control server (control.h) is its socket front-end; domains reach it
 * through platform ports (cap registration, session release).
 *
 * A session is set up and torn down here and then runs without the VMM:
 *   open    memfd (sealed against resizing) with the two rings formatted
 *           and a data area; installed in the domain as a memslot at
 *           MOAT_GPA_SESSION_BASE + slot * MOAT_SESSION_SPAN, an irqfd
 *           (client kick -> the domain's session vector) and an ioeventfd
 *           on the slot's doorbell (domain kick -> client); the data
 *           area is adopted by the broker as a window of the domain (zero
 *           copy; directions from the rights); the domain's session table
 *           slot is written and the domain is interrupted.
 *   close   (client, or its connection ended) the slot goes CLOSING; the
 *           memory stays mapped until the domain releases the slot, so a
 *           domain never faults on a session it was still serving. At
 *           release (or teardown) the data window is revoked - device
 *           access quiesced, the area scrubbed - before the memory goes.
 *   down    (the serving domain ended; its VM is gone) every session of it
 *           is freed, its cap generations move on, and each client gets a
 *           MOAT_EVT_SESSION_REVOKED event (queued; the control thread
 *           sends it) plus a wake-up on its notify eventfd.
 *
 * Locking: capsvc.lock nests inside the supervisor's lock (the order is
 * written in supervisor.h). Functions say which locks they want; nothing
 * here waits for another thread (a revoke's wait for device access, a
 * scrub) while holding capsvc.lock or sup->lock.
 * Everything a domain passes in is hostile: bounded and refused with a
 * counted, logged reason.
 */
#ifndef MOAT_CAPSVC_H
#define MOAT_CAPSVC_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include "broker.h"
#include "cap_table.h"
#include "moat/control_abi.h"

struct domain;
struct supervisor;

#define CAPSVC_SESSIONS_MAX         128u
#define CAPSVC_SESSIONS_PER_CLIENT  16u
#define CAPSVC_MEM_PER_CLIENT       (512ull << 20)
#define CAPSVC_EVENTS_MAX           256u
#define CAPSVC_SESSION_GSI          24u     /* first GSI above the IOAPIC pins */
#define CAPSVC_VM_SLOT_FIRST        16u     /* KVM memslots of session slots */

enum session_state { SES_FREE = 0, SES_OPEN, SES_CLOSING };

struct session {
    enum session_state state;
    uint32_t id;
    uint32_t client;
    uint32_t object;
    uint32_t rights;
    struct domain *d;
    uint32_t slot;              /* in the domain's session table */
    int memfd, kick_fd, notify_fd;
    uint8_t *host;              /* the VMM's mapping (backs the memslot) */
    struct broker *broker;      /* holding the data area as a window, or NULL */
    struct dma_handle data_win;
    struct moat_session_reply layout;
};

#define CAPSVC_ALL_CLIENTS 0u

struct capsvc_event {
    uint32_t client;            /* or CAPSVC_ALL_CLIENTS */
    struct moat_event_msg msg;
};

struct capsvc {
    pthread_mutex_t lock;
    struct supervisor *sup;
    struct cap_table caps;
    struct session ses[CAPSVC_SESSIONS_MAX];
    uint32_t next_session_id;
    struct capsvc_event ev[CAPSVC_EVENTS_MAX];
    uint32_t ev_head, ev_count;
    uint64_t ev_dropped;
    int wake_fd;                /* eventfd: events queued (control polls it) */
};

bool capsvc_init(struct capsvc *cs, struct supervisor *sup, char *err, size_t errlen);
void capsvc_fini(struct capsvc *cs);

/* Session memory layout for entries and data_size (both already valid):
 * page-aligned rings, then the data area. */
void capsvc_layout(uint32_t entries, uint64_t data_size, struct moat_session_reply *out);

/* ---- from the domain's vCPU thread (caller holds sup->lock) ---------------- */

/* The domain registers a served cap from guest memory at gpa. Returns 0 or
 * -MOAT_E*; every refusal is logged with the reason. */
int capsvc_register(struct capsvc *cs, struct domain *d, uint64_t gpa);
/* The domain is done with a CLOSING slot: take it out of the domain and
 * move the session into *gone (freed or not, *gone can be passed to
 * capsvc_session_free). Free it only after dropping sup->lock: freeing
 * revokes the data window, which waits for device access to it to end,
 * and a device model's refusal path takes sup->lock. */
int capsvc_release(struct capsvc *cs, struct domain *d, uint32_t slot, struct session *gone);
/* Revoke the data window (quiesce), unmap the memory, close fds.
 * Takes no capsvc or supervisor lock. */
void capsvc_session_free(struct session *gone);
/* The domain's VM is gone: free its sessions, move its caps on, queue
 * events for the clients. Called by teardown with no lock held; the
 * sessions are freed (scrubbed) after capsvc.lock is dropped. */
void capsvc_domain_down(struct capsvc *cs, struct domain *d);
/* d became READY: tell every client its caps are usable (MOAT_EVT_CAP_UP;
 * sessions can be opened on them from now on). */
void capsvc_domain_ready(struct capsvc *cs, struct domain *d);
/* d ended and will not come back by itself (why: its policy or an
 * operator stop, or its breaker opened): tell every client
 * (MOAT_EVT_DOMAIN_DOWN; sessions on its caps stop waiting for it). Caller
 * holds sup->lock. */
void capsvc_domain_stays_down(struct capsvc *cs, struct domain *d, enum moat_down_reason why);
/* Sessions open now on d. */
uint32_t capsvc_domain_sessions(struct capsvc *cs, const struct domain *d);

/* ---- from the control thread (caller holds no lock) ------------------------ */

int capsvc_open(struct capsvc *cs, uint32_t client, const char *name, uint32_t rights,
                uint32_t allowed, struct moat_open_reply *out);
int capsvc_close(struct capsvc *cs, uint32_t client, uint64_t handle);
/* Check a handle (e.g. Control ops): 0 or -MOAT_E*. */
int capsvc_check(struct capsvc *cs, uint32_t client, uint64_t handle, uint32_t need,
                 uint32_t kind);
size_t capsvc_list(struct capsvc *cs, struct moat_cap_desc *out, size_t max);
/* fds[3] = copies of the session's memfd, kick and notify fds: the caller
 * sends them in the reply and closes them (the session may be revoked, and
 * its own fds closed, before the reply goes). */
int capsvc_session_open(struct capsvc *cs, uint32_t client, const struct moat_session_req *req,
                        struct moat_session_reply *out, int fds[3]);
int capsvc_session_close(struct capsvc *cs, uint32_t client, uint32_t session_id);
/* A client says the domain serving session_id broke the protocol. */
int capsvc_report(struct capsvc *cs, uint32_t client, const char *who, uint32_t session_id,
                  const char *reason);
/* The client's connection ended: close its sessions, drop its handles. */
void capsvc_client_gone(struct capsvc *cs, uint32_t client);
/* Dequeue up to max events (oldest first). */
uint32_t capsvc_take_events(struct capsvc *cs, struct capsvc_event *out, uint32_t max);

#endif /* MOAT_CAPSVC_H */
