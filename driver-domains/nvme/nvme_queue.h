/*
 * nvme_queue.h — pure bookkeeping of the NVMe driver's queues: the ring
 * indices and phase tag of one SQ/CQ pair, command slots with generation-
 * tagged CIDs, the check every completion entry passes before it may touch
 * a request, doorbell (shadow + EventIdx) decisions, command timeouts, and
 * the FIFO of requests waiting for a free slot. No device access, no
 * allocation: the caller hands in every array, so the host unit tests
 * (harness/unit/test_nvme_driver.c) run this file as is.
 *
 * Error policy: functions that take device-written data (CQEs, EventIdx)
 * never trust it: they report what is wrong and change nothing. Caller
 * mistakes (bad sizes) are reported by return value, never by crashing.
 */
#ifndef NVME_QUEUE_H
#define NVME_QUEUE_H

#include <stdbool.h>
#include <stdint.h>
#include "moat/nvme_regs.h"

/* One command slot of a queue. A slot carries one command of one request
 * at a time; its CID changes every time it is (re)issued. */
struct nvme_slot {
    void *req;                  /* the request it carries (opaque here) */
    uint64_t submit_ns;         /* when its current command was issued */
    uint64_t abort_ns;          /* when an ABORT was sent for it; 0 = never */
    uint16_t cid;               /* generation << cid_bits | slot index */
    uint16_t gen;               /* bumped on every issue */
    uint8_t tries;              /* earlier attempts of the request (0 = first) */
    bool busy;
};

/* One SQ/CQ pair. The SQ and CQ have the same number of entries; at most
 * entries - 1 commands are outstanding, so neither ring can overflow. The
 * authoritative indices live here, in private memory; the device only ever
 * learns them through doorbells. */
struct nvme_queue {
    uint16_t qid;
    uint16_t entries;           /* of each ring, 2..4096 */
    uint16_t depth;             /* command slots: entries - 1 */
    uint16_t cid_bits;          /* CID low bits holding the slot index */
    uint16_t sq_tail;           /* next SQE the driver writes */
    uint16_t sq_head;           /* last SQ head the controller reported */
    uint16_t sq_db;             /* tail value last published to the device */
    uint16_t cq_head;           /* next CQE the driver reads */
    uint16_t cq_db;             /* head value last published to the device */
    uint16_t cq_phase;          /* phase tag of a new CQE at cq_head (0/1) */
    uint16_t busy;              /* slots in use */
    uint16_t free_top;          /* entries on the free stack */
    uint16_t *free;             /* [depth] stack of free slot indexes */
    struct nvme_slot *slot;     /* [depth] */
    struct nvme_sqe *sq;        /* [entries], device-visible */
    const volatile struct nvme_cqe *cq; /* [entries], device-written */
};

/* Set up q with entries ring entries (2..4096) over the given arrays
 * (slots and free_stack hold entries - 1 elements each; sq and cq hold
 * entries). Rings start empty with phase 1; every slot is free. False when
 * entries is out of range or an array is missing. */
bool nvme_queue_init(struct nvme_queue *q, uint16_t qid, uint16_t entries,
                     struct nvme_sqe *sq, const volatile struct nvme_cqe *cq,
                     struct nvme_slot *slots, uint16_t *free_stack);

/* Rewind both rings to a freshly created queue's state (after a controller
 * reset) and free every slot, keeping generations so no old CID recurs
 * soon. The caller has already taken the requests of busy slots. */
void nvme_queue_rewind(struct nvme_queue *q);

/* Take a free slot for req (tries: earlier attempts) at time now and give
 * it a fresh CID. Returns the slot index, or -1 when all are busy. */
int nvme_slot_alloc(struct nvme_queue *q, void *req, uint8_t tries, uint64_t now);
/* Give busy slot idx a fresh CID for its next command (a request split in
 * several commands); restamps submit_ns and clears abort_ns. */
void nvme_slot_reissue(struct nvme_queue *q, uint16_t idx, uint64_t now);
/* Return busy slot idx to the free stack. */
void nvme_slot_free(struct nvme_queue *q, uint16_t idx);

/* Copy e (with its CID already set) to the SQ tail and advance the tail.
 * False when the ring is full, which only a controller that reported a
 * stale SQ head can cause (commands outstanding are fewer than entries). */
bool nvme_sq_write(struct nvme_queue *q, const struct nvme_sqe *e);

/* If the CQE at the head carries the current phase, copy it to out (read
 * after the phase, behind a read barrier), advance the head (flipping the
 * phase at the wrap) and return true; false when the CQ holds nothing new. */
bool nvme_cq_pop(struct nvme_queue *q, struct nvme_cqe *out);

/* What is wrong with a CQE popped from q's CQ, if anything. */
enum nvme_cqe_verdict {
    NVME_CQE_OK = 0,
    NVME_CQE_BAD_SQID,          /* names another SQ than the CQ's own */
    NVME_CQE_BAD_CID,           /* index beyond the queue's slots */
    NVME_CQE_STALE_CID,         /* slot free, or busy with another CID */
    NVME_CQE_BAD_SQHD,          /* SQ head beyond the ring */
    NVME_CQE_VERDICTS
};
/* Check e against q; on NVME_CQE_OK *idx is the slot it completes. */
enum nvme_cqe_verdict nvme_cqe_check(const struct nvme_queue *q, const struct nvme_cqe *e,
                                     uint16_t *idx);
const char *nvme_cqe_verdict_name(enum nvme_cqe_verdict v);

/* Publish a new doorbell value through the shadow doorbell (Doorbell
 * Buffer Config): store new_idx in *shadow, full barrier, read the
 * controller's *event_idx, and return whether the MMIO doorbell must be
 * written too (the value moved past EventIdx; see nvme_dbbuf_need_event).
 * old is the value last published in *shadow. */
bool nvme_db_publish(volatile uint32_t *shadow, const volatile uint32_t *event_idx,
                     uint16_t new_idx, uint16_t old);

/* What a queue's oldest commands call for (see nvme_queue_timeouts). */
enum nvme_tmo {
    NVME_TMO_NONE = 0,          /* nothing overdue */
    NVME_TMO_WAIT,              /* overdue, ABORT sent, its grace not over */
    NVME_TMO_ABORT,             /* *idx is overdue and not yet aborted */
    NVME_TMO_RESET,             /* *idx was aborted a whole timeout ago */
};
/* Scan q's busy slots at time now: RESET for an aborted command whose
 * ABORT is timeout_ns old, else ABORT for the oldest overdue command not
 * yet aborted (submit_ns + timeout_ns <= now), else WAIT if an aborted
 * command is pending, else NONE. *idx names the slot for ABORT/RESET. */
enum nvme_tmo nvme_queue_timeouts(const struct nvme_queue *q, uint64_t now,
                                  uint64_t timeout_ns, uint16_t *idx);

/* FIFO of requests waiting for a command slot, in arrival order; retries
 * go to the front. Capacity is a power of two chosen by the caller. */
struct nvme_wait {
    void *req;
    uint8_t tries;
};
struct nvme_fifo {
    struct nvme_wait *e;        /* [cap] */
    uint32_t cap, head, tail;   /* free-running; len = tail - head */
};
/* False when cap is not a power of two or e is missing. */
bool nvme_fifo_init(struct nvme_fifo *f, struct nvme_wait *e, uint32_t cap);
uint32_t nvme_fifo_len(const struct nvme_fifo *f);
/* Append (push) or prepend (push_front); false when full. */
bool nvme_fifo_push(struct nvme_fifo *f, void *req, uint8_t tries);
bool nvme_fifo_push_front(struct nvme_fifo *f, void *req, uint8_t tries);
/* The oldest entry, or NULL when empty; pop removes it. */
const struct nvme_wait *nvme_fifo_peek(const struct nvme_fifo *f);
bool nvme_fifo_pop(struct nvme_fifo *f, struct nvme_wait *out);

#endif /* NVME_QUEUE_H */
