/*
 * gvnic_internal.h — the gVNIC model's state, shared by gvnic.c (PCI,
 * registers, reset, the admin queue's doorbell) and gvnic_admin.c (the
 * commands). Not an interface for anything else.
 *
 * Locks: g->lock guards the registers, the admin state and TX; register
 * accesses, admin commands and transmission run on the vCPU thread with it
 * held, and frames go to the switch with it held (the switch never calls
 * back into this device's TX). g->rx_lock, taken after g->lock, guards
 * what the switch's rx callback uses: the RX queues' rings and positions.
 * g->irq_lock, a leaf, guards the interrupt doorbells' state, so that a
 * frame arriving from another device's TX (whose lock that thread holds)
 * can raise an interrupt without g->lock. pci_dma_map and
 * pci_msix_notify may be called under any of them.
 */
#ifndef MOAT_GVNIC_INTERNAL_H
#define MOAT_GVNIC_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include "gvnic.h"
#include "moat/gvnic_abi.h"

#define GVNIC_TX_PAGES_PER_QPL 64u
#define GVNIC_RX_PAGES_PER_QPL 512u
#define GVNIC_QPL_MAX          (2u * GVNIC_QUEUES_MAX)
#define GVNIC_DB_BAR_SIZE      4096u        /* 1024 doorbells */
#define GVNIC_DB_TX_BASE       256u         /* doorbell index of TX queue 0 */
#define GVNIC_DB_RX_BASE       512u         /* ... of RX queue 0 */
#define GVNIC_IRQ_DB_MAX       (2u * GVNIC_QUEUES_MAX)
#define GVNIC_LINK_MBPS        10000u       /* what REPORT_LINK_SPEED says */
#define GVNIC_PAGE             4096u

struct gvnic_qpl {
    bool used;
    uint32_t id;
    uint32_t n;
    uint64_t *pages;            /* n page addresses, checked at registration */
    int owner;                  /* queue using it: TX q, RX GVNIC_QUEUES_MAX + q; -1 */
};

struct gvnic_queue {
    bool live;
    bool stopped;               /* a malformed descriptor: no more work until reset */
    uint32_t counter;           /* its event counter (TX) */
    uint32_t head;              /* descriptors/slots consumed, free-running */
    uint32_t tail;              /* TX: the doorbell's count; RX: slots filled */
    uint8_t seq;                /* RX: the next descriptor's sequence number, 1..7 */
    /* DQO: the second ring (TX completions; RX buffer queue) and the
     * completion ring's position and generation (1 on the first pass). */
    uint32_t size2, head2;
    bool gen;
    uint32_t ntfy;
    uint32_t qpl_id;
    uint32_t size;              /* ring entries */
    uint64_t ring, ring2;       /* TX: descriptors, DQO completions;
                                   RX: descriptors/completions, data slots/buffers */
    uint32_t packet_buffer_size;
};

struct gvnic {
    struct pci_func *f;
    pthread_mutex_t lock;
    pthread_mutex_t rx_lock;
    pthread_mutex_t irq_lock;
    struct netback_port *port;
    char port_name[48];
    bool quiesced;              /* rx_lock: the rx callback drops */
    _Atomic bool reset_request; /* device_status RESET: the driver must reset */
    /* configuration (options) */
    enum gvnic_queue_format format;
    uint32_t queues, tx_ring, rx_ring, mtu_max;
    uint8_t mac[6];
    bool link_up;
    /* registers */
    uint32_t driver_status;
    bool is_reset;              /* DEV_IS_RESET until the admin queue runs again */
    uint32_t aq_pfn;            /* as written (0 after a reset) */
    uint32_t aq_base_hi, aq_base_lo;
    uint16_t aq_length;
    uint64_t aq_base;           /* the live admin queue, 0 = none */
    uint32_t aq_bytes;
    uint32_t aq_head;           /* commands consumed (free-running) */
    uint32_t aq_events;         /* = aq_head, as the event counter register */
    char version[64];
    uint32_t version_len;
    /* what the driver configured */
    bool configured;
    uint64_t counter_array, irq_db_addr;
    uint32_t num_counters, num_irq_dbs, irq_db_stride, msix_base;
    struct gvnic_qpl qpl[GVNIC_QPL_MAX];
    uint64_t pages_registered;
    struct gvnic_queue txq[GVNIC_QUEUES_MAX], rxq[GVNIC_QUEUES_MAX];
    /* irq_lock: masked blocks and events that came while masked */
    bool irq_masked[GVNIC_IRQ_DB_MAX], irq_pending[GVNIC_IRQ_DB_MAX];
    struct gvnic_stats st;
};

/* Counters are bumped from the vCPU thread and the rx callback: atomics. */
#define GSTAT_INC(g, f) __atomic_fetch_add(&(g)->st.f, 1, __ATOMIC_RELAXED)

/* Execute one admin command (payload copied out of DMA memory); returns
 * the status to write back. gvnic_admin.c. */
uint32_t gvnic_admin_exec(struct gvnic *g, uint32_t opcode, const uint8_t payload[56]);
/* Drop everything the driver configured (queues, page lists, resources). */
void gvnic_admin_clear(struct gvnic *g);
/* The descriptor DESCRIBE_DEVICE writes, with its options; returns bytes. */
uint32_t gvnic_describe(const struct gvnic *g, uint8_t *out, uint32_t cap);
const char *gvnic_status_name(uint32_t status);

/* The registered page list id, or NULL (gvnic_admin.c). */
struct gvnic_qpl *gvnic_qpl_find(struct gvnic *g, uint32_t id);

/* gvnic_irq.c: a write to BAR2 doorbell index db (raw, as the driver
 * wrote it; g->lock held): an interrupt doorbell, or the queue's, by
 * format. */
void gvnic_doorbell(struct gvnic *g, uint32_t db, uint32_t raw);
/* The switch's rx callback (ctx is the gvnic): by format. */
void gvnic_rx(void *ctx, const void *frame, size_t len);
/* Raise notification block b's vector, or note it while the block is
 * masked (GQI: until unmasked; DQO: a block masks itself when it fires). */
void gvnic_notify(struct gvnic *g, uint32_t b);
/* Ask the driver for a reset: the status bit and the management vector. */
void gvnic_management(struct gvnic *g);

/* A malformed TX queue: stopped, counted, logged, reset requested. */
void gvnic_tx_fail(struct gvnic *g, struct gvnic_queue *q, uint32_t qi, const char *why);
/* TX queue qi's descriptor ring mapped for reading (release with
 * pci_dma_unmap), or NULL after failing the queue. */
const uint8_t *gvnic_tx_ring(struct gvnic *g, uint32_t qi, uint32_t desc_size,
                             struct dma_mapping *m);

/* Data paths (gvnic_gqi.c, gvnic_dqo.c): run TX queue qi up to its tail
 * (g->lock held), and take a received frame. */
void gvnic_gqi_tx_run(struct gvnic *g, uint32_t qi);
void gvnic_gqi_rx(struct gvnic *g, const void *frame, size_t len);
void gvnic_dqo_tx_run(struct gvnic *g, uint32_t qi);
void gvnic_dqo_rx(struct gvnic *g, const void *frame, size_t len);

#endif /* MOAT_GVNIC_INTERNAL_H */
