/*
 * nvme_internal.h — state of one NVMe controller model, shared by
 * nvme.c (PCI function, registers, doorbells, lifecycle), nvme_admin.c
 * (admin commands) and nvme_io.c (worker, NVM commands, completions,
 * interrupts). Not a public interface.
 *
 * Threads and locking. Two threads touch a controller: the domain's vCPU
 * thread (register and doorbell MMIO, admin commands run synchronously at
 * the admin doorbell) and the controller's worker (I/O queues). Everything
 * below `lock` is guarded by it, with two exceptions: the immutable
 * configuration above it, and the atomic counters. The worker drops the
 * lock while it executes a batch of I/O commands (image reads and writes);
 * it sets worker_busy meanwhile, and whoever must not run concurrently with
 * in-flight commands (queue deletion) waits on `idle`. Lock order:
 * nvme lock -> bus irq_lock -> broker lock.
 *
 * Queue memory and every other guest address is mapped through the broker
 * per batch, never across a sleep.
 */
#ifndef MOAT_NVME_INTERNAL_H
#define MOAT_NVME_INTERNAL_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include "moat/nvme_regs.h"
#include "nvme.h"
#include "image_map.h"
#include "pci.h"
#include "clock.h"
#include "dev_worker.h"

#define NVME_NQ          (NVME_QUEUES_MAX + 1u)   /* queue ids 0 (admin) .. 16 */
#define NVME_IO_BATCH    16u    /* commands fetched from one SQ per pass */
#define NVME_MDTS_MAX    8u     /* 2^8 pages = 1 MiB */
#define NVME_SEGS_MAX    ((1u << NVME_MDTS_MAX) + 1u)  /* pages + PRP1 offset */
#define NVME_ACL         3u     /* abort command limit, 0-based */
#define NVME_AERL        3u     /* async event requests held, 0-based */
#define NVME_CAP_TO_UNITS 20u   /* CAP.TO: 20 x 500 ms = 10 s */
#define NVME_NO_EVENT    UINT32_MAX  /* no EventIdx published yet */

struct nvme_sq {
    bool live;
    bool ioeventfd;         /* tail doorbell served by a KVM ioeventfd */
    uint16_t cqid;
    uint32_t size;          /* entries */
    uint64_t base;          /* IOVA of entry 0 */
    uint32_t head;          /* next entry the device fetches (private) */
    uint32_t tail;          /* host's tail: last valid doorbell or shadow */
    uint32_t event;         /* EventIdx last published (DBBUF) */
    uint32_t rejected;      /* last invalid shadow tail counted */
};

struct nvme_cq {
    bool live;
    bool ien;               /* interrupts enabled */
    bool phase;             /* phase tag the device writes next */
    bool blocked;           /* an SQ waits for room: head moves wake the worker */
    uint16_t vector;
    uint32_t size;
    uint64_t base;
    uint32_t tail;          /* next slot the device writes (private) */
    uint32_t head;          /* host's head: last valid doorbell or shadow */
    uint32_t reserved;      /* slots owed to fetched, uncompleted commands */
    uint32_t sqs;           /* SQs bound to this CQ */
    uint32_t event;         /* head EventIdx last published (DBBUF) */
    uint32_t rejected;      /* last invalid shadow head counted */
};

/* Per MSI-X vector: interrupt coalescing. */
struct nvme_vec {
    bool cd;                /* coalescing disabled (IRQ_CONFIG) */
    uint32_t pending;       /* completions since the last interrupt */
    uint64_t first_ns;      /* when the first of them was posted */
    bool sent;              /* a message since the CQs were last seen drained:
                               it may wait in the PBA (vector masked) */
};

/* One I/O command's outcome, filled by nvme_io_exec. */
struct nvme_result {
    uint16_t cid;
    uint16_t status;        /* SCT|SC */
    uint32_t dw0;
    bool swallowed;         /* the stall knob ate it: no completion now */
};

struct nvme_counters {
#define NVME_COUNTER_FIELD(name) _Atomic uint64_t name;
    NVME_STATS_FIELDS(NVME_COUNTER_FIELD)
#undef NVME_COUNTER_FIELD
};

#define NVME_COUNT(c, field) atomic_fetch_add_explicit(&(c)->st.field, 1, memory_order_relaxed)
#define NVME_ADD(c, field, n) \
    atomic_fetch_add_explicit(&(c)->st.field, (uint64_t)(n), memory_order_relaxed)

struct nvme_ctrl {
    struct pci_func *f;
    /* ---- configuration: set at creation, then read-only ---- */
    int fd;                 /* the image */
    struct image_map map;   /* reads come from here when mapped */
    uint32_t lba_shift;     /* log2 of the LBA size */
    uint64_t nsze;          /* namespace size in LBAs */
    uint32_t nq;            /* I/O queue pairs offered */
    uint32_t mqes;          /* entries per queue, 1-based */
    uint32_t mdts;          /* log2 of the max transfer in pages */
    bool ro;
    uint32_t poll_us;
    uint64_t stall_at;      /* 0 = off */

    pthread_mutex_t lock;
    pthread_cond_t idle;    /* worker_busy went false */

    /* ---- registers ---- */
    uint32_t cc, csts, aqa, intms;
    uint64_t asq, acq;
    bool quiesced;          /* no DMA, no interrupts until reset */
    bool intx_level;        /* what INTA# was last set to */

    struct nvme_sq sq[NVME_NQ];
    struct nvme_cq cq[NVME_NQ];
    struct nvme_vec vec[NVME_NQ];

    /* ---- features ---- */
    uint32_t nsq_alloc, ncq_alloc;  /* I/O queues granted (1-based) */
    uint8_t coal_thr, coal_time;    /* IRQ_COALESCE: 0-based count, 100 µs */
    bool wce;                       /* volatile write cache enabled */
    uint32_t aer_held;              /* ASYNC_EVENT requests outstanding */

    /* ---- Doorbell Buffer Config ---- */
    bool dbbuf;
    uint64_t dbs, eis;      /* shadow doorbell page, EventIdx page */

    /* ---- stall knob ---- */
    uint64_t io_seen;       /* I/O commands fetched since power-on */
    bool stall_done;
    bool stall_active;      /* a swallowed command awaits ABORT */
    uint16_t stall_sqid, stall_cid;

    /* ---- worker ---- */
    struct dev_worker w;
    bool worker_busy;
    uint32_t hold;          /* waiters for idle: start no new batch */
    uint32_t rr;            /* round-robin start among the I/O SQs */
    int efd;                /* eventfd: doorbells wake the worker */

    struct nvme_counters st;
};

/* ---- nvme.c ---- */
/* Set CSTS.CFS (lock held): the controller stops processing until the host
 * disables it. why goes to the platform (pci_guest_error: counted,
 * audited, logged at a limited rate). */
void nvme_fatal(struct nvme_ctrl *c, const char *why);
/* nvme_fatal for queue memory a map refused (m from the failed
 * pci_dma_map): counts the refusal and names its cause. */
void nvme_fatal_dma(struct nvme_ctrl *c, const char *what, const struct dma_mapping *m);
/* Count a completion status in the stats (any thread). */
void nvme_count_status(struct nvme_ctrl *c, uint16_t status);
/* Entries between from and to on a ring of size entries. */
static inline uint32_t nvme_ring_dist(uint32_t from, uint32_t to, uint32_t size)
{
    return to >= from ? to - from : size - from + to;
}

/* Shadow doorbells (DBBUF configured, lock held). read: take the SQ tails
 * and CQ heads the host published, counting invalid ones. publish: write
 * EventIdx for polling (sleeping = false) or before sleeping. Both set CFS
 * and return false when the broker refuses the page. */
bool nvme_dbbuf_read(struct nvme_ctrl *c);
bool nvme_dbbuf_publish(struct nvme_ctrl *c, bool sleeping);
/* Attach or detach SQ qid's tail doorbell to the worker's eventfd, when
 * the platform offers ioeventfds (lock held). */
void nvme_sq_ioeventfd(struct nvme_ctrl *c, uint16_t qid, bool assign);

/* ---- nvme_admin.c ---- */
/* Execute admin commands from the admin SQ while the admin CQ has room
 * (lock held, vCPU thread). */
void nvme_admin_process(struct nvme_ctrl *c);

/* ---- nvme_io.c ---- */
/* Bind the worker skeleton to c (once, after the eventfd exists). */
void nvme_worker_init(struct nvme_ctrl *c);
/* Start / stop the worker (lock held; stop drops it while joining). */
bool nvme_worker_start(struct nvme_ctrl *c);
void nvme_worker_stop(struct nvme_ctrl *c);
/* Wake the worker (any thread, no lock needed). */
void nvme_worker_kick(struct nvme_ctrl *c);
/* Wait until the worker has no command in flight (lock held). */
void nvme_worker_wait_idle(struct nvme_ctrl *c);
/* Copy len bytes between buf and the guest memory PRP1/PRP2 describe;
 * dir DMA_FROM_DEVICE writes guest memory. Returns an NVMe status. */
uint16_t nvme_xfer(struct nvme_ctrl *c, uint64_t prp1, uint64_t prp2, void *buf, uint64_t len,
                   enum dma_dir dir);
/* Free CQ slots not owed to fetched commands (lock held). */
uint32_t nvme_cq_room(const struct nvme_cq *cq);
/* Post the completions of n commands of sqid (swallowed ones skipped) to
 * its CQ and account their interrupt (lock held). The caller released the
 * CQ slots it had reserved. Refused CQ memory sets CFS; returns false. */
bool nvme_cq_post(struct nvme_ctrl *c, uint16_t sqid, const struct nvme_result *r, unsigned n);
/* Send the interrupts that are due (lock held); *deadline_ns (if not
 * NULL) gets the earliest coalescing deadline still pending, or 0. */
void nvme_irq_flush(struct nvme_ctrl *c, uint64_t now, uint64_t *deadline_ns);
/* Is MSI-X enabled (any thread)? */
bool nvme_msix_on(struct nvme_ctrl *c);
/* Recompute INTA# from the CQs (lock held). */
void nvme_intx_update(struct nvme_ctrl *c);
/* Complete the stalled command, if it is (sqid, cid), with status (lock
 * held). True when there was one to complete. */
bool nvme_stall_complete(struct nvme_ctrl *c, uint16_t sqid, uint16_t cid, uint16_t status);

#endif /* MOAT_NVME_INTERNAL_H */
