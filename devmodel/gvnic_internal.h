/*
 * gvnic_internal.h — the gVNIC model's state, shared by gvnic.c (PCI,
 * registers, reset, the admin queue's doorbell) and gvnic_admin.c (the
 * commands). Not an interface for anything else.
 *
 * Lock: g->lock (a leaf) guards everything below; register accesses and
 * admin commands run on the vCPU thread with it held.
 */
#ifndef MOAT_GVNIC_INTERNAL_H
#define MOAT_GVNIC_INTERNAL_H

#include <pthread.h>
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
    enum gvnic_queue_format cfg_format;
    uint64_t counter_array, irq_db_addr;
    uint32_t num_counters, num_irq_dbs, irq_db_stride, msix_base;
    uint32_t mtu;
    uint64_t stats_addr, stats_len;
    struct gvnic_qpl qpl[GVNIC_QPL_MAX];
    uint64_t pages_registered;
    struct gvnic_queue txq[GVNIC_QUEUES_MAX], rxq[GVNIC_QUEUES_MAX];
    struct gvnic_stats st;
};

/* Execute one admin command (payload copied out of DMA memory); returns
 * the status to write back. gvnic_admin.c. */
uint32_t gvnic_admin_exec(struct gvnic *g, uint32_t opcode, const uint8_t payload[56]);
/* Drop everything the driver configured (queues, page lists, resources). */
void gvnic_admin_clear(struct gvnic *g);
/* The descriptor DESCRIBE_DEVICE writes, with its options; returns bytes. */
uint32_t gvnic_describe(const struct gvnic *g, uint8_t *out, uint32_t cap);
const char *gvnic_status_name(uint32_t status);

#endif /* MOAT_GVNIC_INTERNAL_H */
