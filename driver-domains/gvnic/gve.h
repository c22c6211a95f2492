/*
 * gve.h — the gVNIC driver domain's state and its three parts:
 * gve_adminq.c (the admin queue: set-up, one command at a time, status),
 * gve_main.c (arguments, bring-up, serving Nic) and gve_io.c (the GQI-QPL
 * data path and the poller). Device layouts: moat/gvnic_abi.h.
 */
#ifndef GVE_DRIVER_H
#define GVE_DRIVER_H

#include <stdbool.h>
#include <stdint.h>
#include "dd.h"
#include "moat/gvnic_abi.h"

#define GVE_TX_BUF       2048u          /* one frame per TX buffer in the page list */
#define GVE_RX_PAD       2u
#define GVE_BLOCK_TX     0u             /* notification blocks */
#define GVE_BLOCK_RX     1u
#define GVE_BLOCKS       2u
#define GVE_TIMEOUT_NS   (500ul * 1000000ul)

struct gve_cfg {
    char name[32];
    uint32_t sessions;
    uint64_t spin_ns;
    bool wild_qpl;              /* test: a page list naming private RAM */
};

struct gve {
    struct gve_cfg cfg;
    struct dd_dev *dev;
    struct dd_bar *regs, *dbs;
    struct dd_dma aq, page, counters, irq_dbs, tx_ring, rx_desc, rx_data, tx_qpl, rx_qpl,
        tx_list, rx_list, tx_res, rx_res, tx_comp;
    bool dqo;                   /* the device offers DQO-RDA rather than GQI-QPL */
    uint32_t aq_prod;
    /* from DESCRIBE_DEVICE */
    uint8_t mac[6];
    uint32_t mtu, tx_size, rx_size, n_counters, tx_pages, rx_pages;
    /* queues */
    uint32_t tx_db, tx_counter, rx_db, irq_db[GVE_BLOCKS];
    uint32_t tx_req, tx_done, tx_bufs;      /* descriptors posted / completed */
    uint32_t tx_published;                  /* last doorbell value */
    uint32_t rx_head, rx_fill;
    uint8_t rx_seq;
    /* DQO: the completion rings' heads and generations (0 until the
     * device's first pass sets 1), the buffer queue's tail */
    uint32_t txc_head, rxb_tail;
    bool txc_gen, rxc_gen;
    bool tx_blocked, irqs_armed, link_up, live;
    uint64_t next_check_ns;
    struct dd_nic *nic;
    struct dd_irq *irq[GVE_BLOCKS + 1];
    uint64_t rx_bad, rx_bad_logged;     /* malformed frames dropped */
};

/* Big-endian register access. */
static inline uint32_t gve_rd(const struct gve *g, uint64_t off)
{
    return gvnic_be32(dd_mmio_read32(g->regs, off));
}
static inline void gve_wr(const struct gve *g, uint64_t off, uint32_t v)
{
    dd_mmio_write32(g->regs, off, gvnic_be32(v));
}

/* gve_main.c: parse args, bring the device up, serve the Nic cap, and
 * register the pollers and the stop hook: everything but dd_ready and the
 * run loop (domain_main adds those; the in-process peer of make bench
 * runs the same with its own loop). */
void gve_start(struct gve *g, const char *args);

/* gve_adminq.c: reset the device (driver-status handshake), then set up
 * the admin queue by base/length. Panics when the device does not obey. */
void gve_adminq_start(struct gve *g);
/* Reset the device, which releases the admin queue (orderly stop). */
void gve_adminq_release(struct gve *g);
/* Run one command (payload of len bytes); returns its status. */
uint32_t gve_adminq_run(struct gve *g, uint32_t opcode, const void *payload, uint32_t len);
/* The same, panicking with what on anything but PASSED. */
void gve_adminq_ok(struct gve *g, uint32_t opcode, const void *payload, uint32_t len,
                   const char *what);

/* The data path of one queue format: gve_io.c (GQI-QPL), gve_dqo.c
 * (DQO-RDA). queues creates the TX and RX queues (after resources),
 * start hands the device its RX buffers; tx/tx_flush serve dd_nic; poll
 * and idle are the run loop's. */
struct gve_path {
    const char *name;
    void (*queues)(struct gve *g);
    void (*start)(struct gve *g);
    struct dd_nic_ops nic;
    bool (*poll)(void *ctx);
    bool (*idle)(void *ctx);
};
extern const struct gve_path gve_gqi_path, gve_dqo_path;

/* Shared by both paths. gve_io.c: a raw doorbell write (the caller puts
 * it in the format's byte order); the periodic device-status look (a
 * reset request fail-stops the domain; link changes reach the cap).
 * gve_main.c: a fresh, zeroed DMA region or a panic naming what it is for;
 * the doorbell (or counter) index a create command left in its resources
 * block, checked against BAR2 (or the counters). */
void gve_db_write(const struct gve *g, uint32_t index, uint32_t raw);
void gve_check_device(struct gve *g);
/* The end of both formats' poll pass: tell the platform the device has
 * room again (after a refusal), flush the TX batch, and look at the device
 * status every 100 ms. */
void gve_poll_end(struct gve *g, void (*tx_flush)(void *ctx));
void gve_dma(uint64_t size, struct dd_dma *out, const char *what);
uint32_t gve_resource(const struct gve *g, const struct dd_dma *res, bool counter);

#endif /* GVE_DRIVER_H */
