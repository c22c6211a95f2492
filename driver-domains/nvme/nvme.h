/*
 * nvme.h — the NVMe driver domain's state and the calls between its files:
 *   nvme_main.c   arguments, finding the controller, serving the cap, stats
 *   nvme_ctrl.c   reset/enable, IDENTIFY, features, queue creation, DBBUF,
 *                 recovery by controller reset
 *   nvme_admin.c  the admin queue: synchronous commands and async ABORTs
 *   nvme_io.c     the fast path: submit, the poller (reap, complete, start
 *                 waiting requests, doorbells), timeouts
 *   nvme_queue.c, nvme_cmd.c  pure logic (unit-tested on the host)
 *
 * Life cycle (d->state):
 *   DOWN --nvme_ctrl_start--> LIVE --timeout/CFS--> RESETTING --> LIVE
 * Everything runs on the domain's one thread. In RESETTING the poller does
 * nothing and submit only queues requests; the reset itself runs the loop
 * (dd_run_once) while it waits for the controller.
 *
 * Error policy: what the controller refuses during bring-up or recovery is
 * fatal (dd_panic with the reason: the supervisor restarts the domain);
 * what it does wrong on the data path is counted, logged once per kind and
 * survived (timeouts -> ABORT -> reset -> one retry -> EIO).
 */
#ifndef NVME_DRV_H
#define NVME_DRV_H

#include "dd.h"
#include "moat/nvme_regs.h"
#include "nvme_cmd.h"
#include "nvme_queue.h"

#define NVME_IOQ_MAX        16u     /* I/O queue pairs this driver drives */
#define NVME_ADMIN_ENTRIES  16u     /* admin SQ/CQ entries */
#define NVME_ADMIN_SLOTS    (NVME_ADMIN_ENTRIES - 1u)
#define NVME_NSID           1u      /* the namespace served */
/* Requests waiting for a slot. The platform never has more than 1024 in
 * flight (guest-kernel/dd_serve.c REQ_POOL); four times that is slack. */
#define NVME_WAIT_CAP       4096u

struct nvme_cfg {
    char name[MOAT_CAP_NAME_MAX];   /* cap suffix */
    uint32_t queues;            /* I/O queue pairs wanted */
    uint32_t qd;                /* commands per queue */
    uint64_t max_bytes;         /* transfer size wanted */
    uint64_t timeout_ns;        /* per command */
    uint64_t spin_ns;           /* keep polling this long after activity */
    uint64_t stats_ns;          /* summary line interval, 0 = never */
    uint32_t sessions;          /* geometry.queues */
    bool dbbuf, coalesce;
    bool irq_mask;              /* mask I/O vectors while polling */
    bool zero_copy;             /* point PRPs at session buffers when reachable */
    uint8_t coal_thr, coal_time;    /* 0-based entries, 100 us units */
};

/* Counters since the domain started (logged by nvme_stats_log). */
struct nvme_stats {
    uint64_t requests;          /* taken from sessions */
    uint64_t commands;          /* I/O commands issued (chunks and retries too) */
    uint64_t done[MOAT_ST_MAX + 1]; /* requests finished, by moat status */
    uint64_t waited;            /* requests that queued for a free slot */
    uint64_t timeouts, aborts, retries, resets;
    uint64_t db_mmio;           /* doorbell values written by MMIO */
    uint64_t db_shadow;         /* published in the shadow page only */
    uint64_t bad_cqe[NVME_CQE_VERDICTS];
    uint64_t sq_stale;          /* SQ looked full: stale SQ head reported */
    uint64_t irq_masks;         /* polling periods begun (I/O vectors masked) */
    uint64_t direct;            /* READ/WRITE commands on the client's buffer */
    uint64_t bounced;           /* READ/WRITE commands through a bounce buffer */
};

/* Per command slot of an I/O queue: its DMA and split-request state. */
struct nvme_io_slot {
    uint8_t *bounce;            /* max transfer bytes, device-visible */
    uint64_t bounce_iova;
    uint64_t *prp_list;         /* one page */
    uint64_t prp_list_iova;
    uint64_t lba_next;          /* WRITE ZEROES split in NLB-sized commands */
    uint32_t left;              /* blocks still to issue after the current one */
    bool direct;                /* the command uses the request's buffer */
};

struct nvme_ioq {
    struct nvme_queue q;
    struct nvme_io_slot *io;    /* [q.depth] */
    struct dd_dma sq_mem, cq_mem, bufs;
    struct dd_irq *irq;         /* MSI-X entry = qid */
    uint32_t sq_db_slot, cq_db_slot;    /* dword index in the DBBUF pages */
};

enum nvme_state { NVME_ST_DOWN, NVME_ST_LIVE, NVME_ST_RESETTING };

struct nvme_drv {
    struct nvme_cfg cfg;
    enum nvme_state state;
    struct dd_dev *dev;
    struct dd_bar *regs;
    uint64_t cap;
    uint32_t dstrd;
    uint64_t ready_ns;          /* CAP.TO: how long RDY may take to change */
    uint32_t msix_entries;
    struct nvme_id_ctrl id;
    struct nvme_id_ns ns;
    uint32_t block_size, max_xfer;
    struct moat_blk_geometry geo;

    /* admin queue */
    struct nvme_queue aq;
    struct nvme_slot aslot[NVME_ADMIN_SLOTS];
    uint16_t afree[NVME_ADMIN_SLOTS];
    struct { uint16_t sqid, cid; bool is_abort; } aof[NVME_ADMIN_SLOTS];
    struct dd_dma asq, acq, page;   /* page: IDENTIFY data */
    struct dd_irq *airq;
    int sync_idx;               /* admin slot of the synchronous command, -1 */
    bool sync_done;
    struct nvme_cqe sync_cqe;
    uint16_t aborts_out, abort_limit;

    /* Doorbell Buffer Config */
    bool dbbuf;
    struct dd_dma dbbuf_mem;    /* page 0: shadow doorbells, page 1: EventIdx */
    volatile uint32_t *db_shadow;
    const volatile uint32_t *db_event;

    /* I/O */
    uint16_t nq, rr;
    struct nvme_ioq ioq[NVME_IOQ_MAX];
    struct nvme_fifo waitq;
    uint64_t next_tmo_ns, next_stats_ns;
    bool irqs_masked;           /* I/O vectors masked: the poller runs */
    bool bad_logged[NVME_CQE_VERDICTS];
    uint32_t errors_logged;     /* error completions logged (the first few) */
    struct nvme_stats st, st_logged;
};

/* ---- nvme_ctrl.c ---- */
/* Bring the controller found in d->dev/d->regs up from any state:
 * reset, IDENTIFY, geometry (d->geo), features, I/O queues, DBBUF. Panics
 * with the reason when the controller cannot be used. */
void nvme_ctrl_start(struct nvme_drv *d);
/* Recover from a stuck or failed controller: take back every outstanding
 * command (nvme_io_requeue), reset, rebuild the queues. why is logged. */
void nvme_ctrl_recover(struct nvme_drv *d, const char *why);
/* The orderly stop (dd_stop_hook, ctx = d): delete the I/O queues, then
 * a normal shutdown (CC.SHN) so the controller makes its data durable. */
void nvme_ctrl_shutdown(void *ctx);

/* ---- nvme_admin.c ---- */
/* Run one admin command to completion (the loop runs while it waits);
 * returns its status (SCT|SC), *out (may be NULL) gets the CQE. Panics
 * when no completion arrives within the command timeout. */
uint16_t nvme_admin_run(struct nvme_drv *d, struct nvme_sqe *cmd, const char *what,
                        struct nvme_cqe *out);
/* Send ABORT for (sqid, cid) without waiting; false when the abort limit
 * or the admin queue is exhausted. */
bool nvme_admin_abort(struct nvme_drv *d, uint16_t sqid, uint16_t cid);
/* Reap admin completions (sync result, ABORT outcomes). True if any. */
bool nvme_admin_reap(struct nvme_drv *d);
/* Forget every admin command (the controller was reset). */
void nvme_admin_rewind(struct nvme_drv *d);

/* ---- nvme_io.c ---- */
/* The BlockDevice submit entry (dd_blk_ops.submit); ctx is the nvme_drv. */
void nvme_io_submit(void *ctx, struct dd_blk_req *req);
/* The driver's poller (register after dd_blk_serve); true if it did work.
 * While it finds work the I/O vectors stay masked. */
bool nvme_io_poll(void *ctx);
/* The idle hook: the domain is about to sleep, so unmask the I/O vectors
 * (true: look once more). */
bool nvme_io_idle(void *ctx);
/* Take every outstanding command back before a reset: a request on its
 * first attempt waits to be resubmitted, a retried one completes EIO. */
void nvme_io_requeue(struct nvme_drv *d);
/* Count a CQE that failed nvme_cqe_check on queue qid; logs the first of
 * each kind. */
void nvme_io_bad_cqe(struct nvme_drv *d, uint16_t qid, enum nvme_cqe_verdict v,
                     const struct nvme_cqe *e);
/* Log a (dd_log) counter summary when anything changed, or always when force. */
void nvme_stats_log(struct nvme_drv *d, bool force);

/* ---- nvme_fault.c ---- */
/* Offer the device faults (wild DMA, a corrupt doorbell, an exit with DMA
 * in flight) to the platform's fault injection. */
void nvme_fault_hook(struct nvme_drv *d);

#endif /* NVME_DRV_H */
