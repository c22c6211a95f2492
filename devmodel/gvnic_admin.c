/* gVNIC model: admin commands (contract in gvnic.h, layouts in
 * moat/gvnic_abi.h). Each takes its payload as copied out of the queue,
 * checks every field, reaches driver memory only through pci_dma_map and
 * returns the status the driver reads. */
#include <stdlib.h>
#include <string.h>
#include "gvnic_internal.h"

const char *gvnic_status_name(uint32_t st)
{
    switch (st) {
    case GVNIC_AQ_PASSED: return "passed";
    case GVNIC_AQ_ALREADY_EXISTS: return "already exists";
    case GVNIC_AQ_FAILED_PRECONDITION: return "failed precondition";
    case GVNIC_AQ_INVALID_ARGUMENT: return "invalid argument";
    case GVNIC_AQ_NOT_FOUND: return "not found";
    case GVNIC_AQ_OUT_OF_RANGE: return "out of range";
    case GVNIC_AQ_PERMISSION_DENIED: return "permission denied (memory outside the windows)";
    case GVNIC_AQ_RESOURCE_EXHAUSTED: return "resource exhausted";
    case GVNIC_AQ_UNIMPLEMENTED: return "unimplemented";
    default: return "error";
    }
}

/* Copy len bytes to driver memory at iova; false when the broker refused. */
static bool dma_write(struct gvnic *g, uint64_t iova, const void *src, uint64_t len)
{
    struct dma_mapping m;
    uint8_t *p = pci_dma_map(g->f, iova, len, DMA_FROM_DEVICE, &m);
    if (!p) {
        GSTAT_INC(g, dma_refusals);
        return false;
    }
    memcpy(p, src, len);
    pci_dma_unmap(g->f, &m);
    return true;
}

/* Is [iova, iova + len) device-reachable memory? (Checked by mapping it.) */
static bool dma_reachable(struct gvnic *g, uint64_t iova, uint64_t len, enum dma_dir dir)
{
    struct dma_mapping m;
    if (!len || !pci_dma_map(g->f, iova, len, dir, &m)) {
        GSTAT_INC(g, dma_refusals);
        return false;
    }
    pci_dma_unmap(g->f, &m);
    return true;
}

/* ---- DESCRIBE_DEVICE ---------------------------------------------------------- */

static uint8_t *put_option(uint8_t *p, uint16_t id, const void *body, uint16_t len)
{
    struct gvnic_device_option h = { .option_id = gvnic_be16(id),
                                     .option_length = gvnic_be16(len) };
    memcpy(p, &h, sizeof h);
    memcpy(p + sizeof h, body, len);
    return p + sizeof h + len;
}

uint32_t gvnic_describe(const struct gvnic *g, uint8_t *out, uint32_t cap)
{
    uint8_t buf[256];
    struct gvnic_device_descriptor d = {
        .max_registered_pages = gvnic_be64((uint64_t)g->queues *
                                           (GVNIC_TX_PAGES_PER_QPL + GVNIC_RX_PAGES_PER_QPL)),
        .tx_queue_entries = gvnic_be16((uint16_t)g->tx_ring),
        .rx_queue_entries = gvnic_be16((uint16_t)g->rx_ring),
        .default_num_queues = gvnic_be16((uint16_t)g->queues),
        .mtu = gvnic_be16((uint16_t)g->mtu_max),
        .counters = gvnic_be16((uint16_t)(2u * g->queues)),
        .tx_pages_per_qpl = gvnic_be16(GVNIC_TX_PAGES_PER_QPL),
        .rx_pages_per_qpl = gvnic_be16(GVNIC_RX_PAGES_PER_QPL),
    };
    memcpy(d.mac, g->mac, sizeof d.mac);
    uint8_t *p = buf + sizeof d;
    const uint32_t feats = GVNIC_FEAT_BUFFER_SIZES | GVNIC_FEAT_JUMBO_FRAMES;
    if (g->format == GVNIC_FMT_DQO_RDA) {
        struct gvnic_opt_dqo_rda o = { .supported_features_mask = gvnic_be32(feats) };
        p = put_option(p, GVNIC_OPT_DQO_RDA, &o, sizeof o);
    } else {
        struct gvnic_opt_format o = { .supported_features_mask = gvnic_be32(feats) };
        p = put_option(p, GVNIC_OPT_GQI_QPL, &o, sizeof o);
    }
    struct gvnic_opt_jumbo_frames j = { .supported_features_mask = gvnic_be32(feats),
                                        .max_mtu = gvnic_be16((uint16_t)g->mtu_max) };
    p = put_option(p, GVNIC_OPT_JUMBO_FRAMES, &j, sizeof j);
    struct gvnic_opt_buffer_sizes b = { .supported_features_mask = gvnic_be32(feats),
                                        .packet_buffer_size = gvnic_be16(2048) };
    p = put_option(p, GVNIC_OPT_BUFFER_SIZES, &b, sizeof b);
    uint32_t total = (uint32_t)(p - buf);
    d.num_device_options = gvnic_be16(3);
    d.total_length = gvnic_be16((uint16_t)total);
    memcpy(buf, &d, sizeof d);
    if (total > cap)
        return 0;
    memcpy(out, buf, total);
    return total;
}

static uint32_t describe(struct gvnic *g, const uint8_t *pl)
{
    struct gvnic_aq_describe c;
    memcpy(&c, pl, sizeof c);
    uint8_t buf[256];
    uint32_t n = gvnic_describe(g, buf, sizeof buf);
    if (gvnic_be32(c.descriptor_version) != GVNIC_DESCRIPTOR_VERSION)
        return GVNIC_AQ_INVALID_ARGUMENT;
    if (gvnic_be32(c.available_length) < n)
        return GVNIC_AQ_OUT_OF_RANGE;
    return dma_write(g, gvnic_be64(c.descriptor_addr), buf, n) ? GVNIC_AQ_PASSED
                                                              : GVNIC_AQ_PERMISSION_DENIED;
}

/* ---- resources ------------------------------------------------------------------ */

static uint32_t configure(struct gvnic *g, const uint8_t *pl)
{
    struct gvnic_aq_configure_resources c;
    memcpy(&c, pl, sizeof c);
    if (g->configured)
        return GVNIC_AQ_ALREADY_EXISTS;
    uint32_t nc = gvnic_be32(c.num_counters), ni = gvnic_be32(c.num_irq_dbs);
    uint32_t stride = gvnic_be32(c.irq_db_stride), base = gvnic_be32(c.ntfy_blk_msix_base_idx);
    if (c.queue_format != g->format)
        return GVNIC_AQ_UNIMPLEMENTED;              /* a format not offered */
    if (nc < 2u * g->queues || nc > 1024u || ni == 0 || ni > 2u * g->queues ||
        stride < 4 || stride > 4096 || stride % 4 || base > 1)
        return GVNIC_AQ_INVALID_ARGUMENT;
    uint64_t counters = gvnic_be64(c.counter_array), irq = gvnic_be64(c.irq_db_addr);
    if (!dma_reachable(g, counters, (uint64_t)nc * 4, DMA_FROM_DEVICE))
        return GVNIC_AQ_PERMISSION_DENIED;
    uint64_t irq_len = (uint64_t)(ni - 1u) * stride + 4u;
    struct dma_mapping m;
    uint8_t *p = pci_dma_map(g->f, irq, irq_len, DMA_FROM_DEVICE, &m);
    if (!p) {
        GSTAT_INC(g, dma_refusals);
        return GVNIC_AQ_PERMISSION_DENIED;
    }
    for (uint32_t i = 0; i < ni; i++) {      /* block i rings doorbell i */
        uint32_t be = gvnic_be32(i);
        memcpy(p + (uint64_t)i * stride, &be, sizeof be);
    }
    pci_dma_unmap(g->f, &m);
    g->configured = true;
    g->counter_array = counters;
    g->irq_db_addr = irq;
    g->num_counters = nc;
    g->num_irq_dbs = ni;
    g->irq_db_stride = stride;
    g->msix_base = base;
    return GVNIC_AQ_PASSED;
}

static bool any_queue(const struct gvnic *g)
{
    for (uint32_t q = 0; q < GVNIC_QUEUES_MAX; q++)
        if (g->txq[q].live || g->rxq[q].live)
            return true;
    return false;
}

static uint32_t deconfigure(struct gvnic *g)
{
    if (!g->configured)
        return GVNIC_AQ_FAILED_PRECONDITION;
    if (any_queue(g))
        return GVNIC_AQ_FAILED_PRECONDITION;        /* destroy the queues first */
    g->configured = false;
    GSTAT_INC(g, deconfigured);
    return GVNIC_AQ_PASSED;
}

/* ---- page lists ------------------------------------------------------------------- */

struct gvnic_qpl *gvnic_qpl_find(struct gvnic *g, uint32_t id)
{
    for (unsigned i = 0; i < GVNIC_QPL_MAX; i++)
        if (g->qpl[i].used && g->qpl[i].id == id)
            return &g->qpl[i];
    return NULL;
}

static uint32_t register_qpl(struct gvnic *g, const uint8_t *pl)
{
    struct gvnic_aq_register_page_list c;
    memcpy(&c, pl, sizeof c);
    uint32_t id = gvnic_be32(c.page_list_id), n = gvnic_be32(c.num_pages);
    uint64_t size = gvnic_be64(c.page_size);
    if (g->format != GVNIC_FMT_GQI_QPL)
        return GVNIC_AQ_UNIMPLEMENTED;              /* RDA formats have no page lists */
    if (id == GVNIC_RAW_ADDRESSING_QPL_ID || n == 0 || (size != 0 && size != GVNIC_PAGE))
        return GVNIC_AQ_INVALID_ARGUMENT;
    if (gvnic_qpl_find(g, id))
        return GVNIC_AQ_ALREADY_EXISTS;
    uint64_t limit = (uint64_t)g->queues * (GVNIC_TX_PAGES_PER_QPL + GVNIC_RX_PAGES_PER_QPL);
    if (n > GVNIC_RX_PAGES_PER_QPL || g->pages_registered + n > limit)
        return GVNIC_AQ_RESOURCE_EXHAUSTED;
    struct gvnic_qpl *slot = NULL;
    for (unsigned i = 0; i < GVNIC_QPL_MAX && !slot; i++)
        if (!g->qpl[i].used)
            slot = &g->qpl[i];
    if (!slot)
        return GVNIC_AQ_RESOURCE_EXHAUSTED;
    struct dma_mapping m;
    const uint8_t *list = pci_dma_map(g->f, gvnic_be64(c.page_address_list), (uint64_t)n * 8,
                                      DMA_TO_DEVICE, &m);
    if (!list) {
        GSTAT_INC(g, dma_refusals);
        return GVNIC_AQ_PERMISSION_DENIED;
    }
    uint64_t *pages = malloc((size_t)n * sizeof *pages);
    uint32_t st = pages ? GVNIC_AQ_PASSED : GVNIC_AQ_RESOURCE_EXHAUSTED;
    for (uint32_t i = 0; i < n && st == GVNIC_AQ_PASSED; i++) {
        uint64_t be;
        memcpy(&be, list + (uint64_t)i * 8, sizeof be);
        pages[i] = gvnic_be64(be);
        if (pages[i] % GVNIC_PAGE)
            st = GVNIC_AQ_INVALID_ARGUMENT;
        else if (!dma_reachable(g, pages[i], GVNIC_PAGE, DMA_BIDIR))
            st = GVNIC_AQ_PERMISSION_DENIED;
    }
    pci_dma_unmap(g->f, &m);
    if (st != GVNIC_AQ_PASSED) {
        free(pages);
        return st;
    }
    pthread_mutex_lock(&g->rx_lock);        /* the rx callback looks lists up */
    *slot = (struct gvnic_qpl){ .used = true, .id = id, .n = n, .pages = pages, .owner = -1 };
    pthread_mutex_unlock(&g->rx_lock);
    g->pages_registered += n;
    return GVNIC_AQ_PASSED;
}

static uint32_t unregister_qpl(struct gvnic *g, const uint8_t *pl)
{
    struct gvnic_aq_unregister_page_list c;
    memcpy(&c, pl, sizeof c);
    struct gvnic_qpl *q = gvnic_qpl_find(g, gvnic_be32(c.page_list_id));
    if (!q)
        return GVNIC_AQ_NOT_FOUND;
    if (q->owner >= 0)
        return GVNIC_AQ_FAILED_PRECONDITION;        /* a live queue uses it */
    g->pages_registered -= q->n;
    pthread_mutex_lock(&g->rx_lock);
    free(q->pages);
    *q = (struct gvnic_qpl){ .owner = -1 };
    pthread_mutex_unlock(&g->rx_lock);
    GSTAT_INC(g, page_lists_unregistered);
    return GVNIC_AQ_PASSED;
}

/* ---- queues -------------------------------------------------------------------------- */

/* Write the queue's resources (doorbell and counter indices). */
static bool put_resources(struct gvnic *g, uint64_t addr, uint32_t db, uint32_t counter)
{
    struct gvnic_queue_resources r = { .db_index = gvnic_be32(db),
                                       .counter_index = gvnic_be32(counter) };
    return dma_write(g, addr, &r, sizeof r);
}

/* Common checks of a queue about to be created; the QPL it takes (GQI-QPL)
 * in *qpl. */
static uint32_t queue_checks(struct gvnic *g, uint32_t q, bool live, uint32_t ntfy, uint32_t qpl_id,
                             uint32_t need_pages, struct gvnic_qpl **qpl)
{
    if (!g->configured)
        return GVNIC_AQ_FAILED_PRECONDITION;
    if (q >= g->queues || ntfy >= g->num_irq_dbs)
        return GVNIC_AQ_OUT_OF_RANGE;
    if (live)
        return GVNIC_AQ_ALREADY_EXISTS;
    *qpl = NULL;
    if (g->format != GVNIC_FMT_GQI_QPL)
        return qpl_id == GVNIC_RAW_ADDRESSING_QPL_ID ? GVNIC_AQ_PASSED
                                                      : GVNIC_AQ_INVALID_ARGUMENT;
    struct gvnic_qpl *p = gvnic_qpl_find(g, qpl_id);
    if (!p)
        return GVNIC_AQ_NOT_FOUND;
    if (p->owner >= 0)
        return GVNIC_AQ_FAILED_PRECONDITION;        /* one queue per page list */
    if (p->n < need_pages)
        return GVNIC_AQ_INVALID_ARGUMENT;
    *qpl = p;
    return GVNIC_AQ_PASSED;
}

static bool ring_size_ok(uint32_t n, uint32_t max)
{
    return n && n <= max && !(n & (n - 1));
}

static uint32_t create_tx(struct gvnic *g, const uint8_t *pl)
{
    struct gvnic_aq_create_tx_queue c;
    memcpy(&c, pl, sizeof c);
    uint32_t q = gvnic_be32(c.queue_id), size = gvnic_be16(c.tx_ring_size);
    if (!size)
        size = g->tx_ring;                          /* some drivers leave it 0 */
    struct gvnic_qpl *qpl;
    uint32_t st = queue_checks(g, q, q < GVNIC_QUEUES_MAX && g->txq[q].live,
                               gvnic_be32(c.ntfy_id), gvnic_be32(c.queue_page_list_id), 1,
                               &qpl);
    if (st != GVNIC_AQ_PASSED)
        return st;
    if (!ring_size_ok(size, g->tx_ring))
        return GVNIC_AQ_INVALID_ARGUMENT;
    uint64_t ring = gvnic_be64(c.tx_ring_addr), comp = gvnic_be64(c.tx_comp_ring_addr);
    uint32_t comp_size = gvnic_be16(c.tx_comp_ring_size);
    bool dqo = g->format == GVNIC_FMT_DQO_RDA;
    /* 16-byte descriptors in both formats; DQO completions are 8 bytes. */
    if (!dma_reachable(g, ring, (uint64_t)size * 16u, DMA_TO_DEVICE) ||
        (dqo && (!ring_size_ok(comp_size, 4096) ||
                 !dma_reachable(g, comp, (uint64_t)comp_size * 8u, DMA_FROM_DEVICE))))
        return dqo && !ring_size_ok(comp_size, 4096) ? GVNIC_AQ_INVALID_ARGUMENT
                                                      : GVNIC_AQ_PERMISSION_DENIED;
    if (!put_resources(g, gvnic_be64(c.queue_resources_addr), GVNIC_DB_TX_BASE + q, q))
        return GVNIC_AQ_PERMISSION_DENIED;
    g->txq[q] = (struct gvnic_queue){ .live = true, .ntfy = gvnic_be32(c.ntfy_id),
                                      .qpl_id = gvnic_be32(c.queue_page_list_id), .size = size,
                                      .ring = ring, .ring2 = comp, .counter = q,
                                      .size2 = dqo ? comp_size : 0, .gen = true };
    if (qpl)
        qpl->owner = (int)q;
    return GVNIC_AQ_PASSED;
}

static uint32_t create_rx(struct gvnic *g, const uint8_t *pl)
{
    struct gvnic_aq_create_rx_queue c;
    memcpy(&c, pl, sizeof c);
    uint32_t q = gvnic_be32(c.queue_id), size = gvnic_be16(c.rx_ring_size);
    uint32_t buf = gvnic_be16(c.packet_buffer_size);
    if (!size)
        size = g->rx_ring;
    struct gvnic_qpl *qpl;
    uint32_t st = queue_checks(g, q, q < GVNIC_QUEUES_MAX && g->rxq[q].live,
                               gvnic_be32(c.ntfy_id), gvnic_be32(c.queue_page_list_id), size,
                               &qpl);
    if (st != GVNIC_AQ_PASSED)
        return st;
    if (!ring_size_ok(size, g->rx_ring) || buf < 1024 || buf > 4096 || buf % 128)
        return GVNIC_AQ_INVALID_ARGUMENT;
    bool dqo = g->format == GVNIC_FMT_DQO_RDA;
    uint32_t bufs = dqo ? gvnic_be16(c.rx_buff_ring_size) : size;
    if (dqo && !ring_size_ok(bufs, 4096))
        return GVNIC_AQ_INVALID_ARGUMENT;
    /* GQI: 64-byte descriptors, 8-byte data slots; DQO: 32-byte
     * completions, 32-byte buffer descriptors. */
    uint64_t desc = gvnic_be64(c.rx_desc_ring_addr), data = gvnic_be64(c.rx_data_ring_addr);
    if (!dma_reachable(g, desc, (uint64_t)size * (dqo ? 32u : 64u), DMA_FROM_DEVICE) ||
        !dma_reachable(g, data, (uint64_t)bufs * (dqo ? 32u : 8u), DMA_TO_DEVICE))
        return GVNIC_AQ_PERMISSION_DENIED;
    if (!put_resources(g, gvnic_be64(c.queue_resources_addr), GVNIC_DB_RX_BASE + q,
                       g->queues + q))
        return GVNIC_AQ_PERMISSION_DENIED;
    pthread_mutex_lock(&g->rx_lock);
    g->rxq[q] = (struct gvnic_queue){ .live = true, .ntfy = gvnic_be32(c.ntfy_id),
                                      .qpl_id = gvnic_be32(c.queue_page_list_id), .size = size,
                                      .ring = desc, .ring2 = data, .packet_buffer_size = buf,
                                      .seq = 1, .size2 = dqo ? bufs : 0, .gen = true };
    pthread_mutex_unlock(&g->rx_lock);
    if (qpl)
        qpl->owner = (int)(GVNIC_QUEUES_MAX + q);
    return GVNIC_AQ_PASSED;
}

static uint32_t destroy_queue(struct gvnic *g, const uint8_t *pl, bool tx)
{
    struct gvnic_aq_destroy_queue c;
    memcpy(&c, pl, sizeof c);
    uint32_t q = gvnic_be32(c.queue_id);
    if (q >= g->queues)
        return GVNIC_AQ_OUT_OF_RANGE;
    struct gvnic_queue *qu = tx ? &g->txq[q] : &g->rxq[q];
    if (!qu->live)
        return GVNIC_AQ_NOT_FOUND;
    struct gvnic_qpl *p = g->format == GVNIC_FMT_GQI_QPL ? gvnic_qpl_find(g, qu->qpl_id) : NULL;
    if (p)
        p->owner = -1;
    pthread_mutex_lock(&g->rx_lock);
    *qu = (struct gvnic_queue){ 0 };
    pthread_mutex_unlock(&g->rx_lock);
    GSTAT_INC(g, queues_destroyed);
    return GVNIC_AQ_PASSED;
}

/* ---- parameters and reports ---------------------------------------------------------------- */

/* The MTU the driver sets is checked, not kept: the switch bounds every
 * frame at 1514 bytes either way. */
static uint32_t set_parameter(struct gvnic *g, const uint8_t *pl)
{
    struct gvnic_aq_set_driver_parameter c;
    memcpy(&c, pl, sizeof c);
    if (gvnic_be32(c.parameter_type) != GVNIC_PARAM_MTU)
        return GVNIC_AQ_UNIMPLEMENTED;
    uint64_t mtu = gvnic_be64(c.parameter_value);
    return mtu < 68 || mtu > g->mtu_max ? GVNIC_AQ_OUT_OF_RANGE : GVNIC_AQ_PASSED;
}

/* The report buffer is checked; the model writes no report into it (a
 * driver treats reports as optional). */
static uint32_t report_stats(struct gvnic *g, const uint8_t *pl)
{
    struct gvnic_aq_report_stats c;
    memcpy(&c, pl, sizeof c);
    uint64_t len = gvnic_be64(c.stats_report_len), addr = gvnic_be64(c.stats_report_addr);
    if (!len && !addr)                              /* detach */
        return GVNIC_AQ_PASSED;
    if (len < 8 || len > (1u << 20))
        return GVNIC_AQ_INVALID_ARGUMENT;
    return dma_reachable(g, addr, len, DMA_BIDIR) ? GVNIC_AQ_PASSED : GVNIC_AQ_PERMISSION_DENIED;
}

static uint32_t link_speed(struct gvnic *g, const uint8_t *pl)
{
    struct gvnic_aq_report_link_speed c;
    memcpy(&c, pl, sizeof c);
    uint64_t mbps = gvnic_be64(GVNIC_LINK_MBPS);
    return dma_write(g, gvnic_be64(c.link_speed_address), &mbps, sizeof mbps)
               ? GVNIC_AQ_PASSED : GVNIC_AQ_PERMISSION_DENIED;
}

/* The packet-type map DQO completions index: 0 unknown; then IPv4 and
 * IPv6, each with no L4, TCP, UDP, ICMP (the codes of gvnic_abi.h's
 * source: L3 1 other, 2 IPv4, 3 IPv6; L4 1 other, 2 TCP, 3 UDP, 4 ICMP). */
static uint32_t ptype_map(struct gvnic *g, const uint8_t *pl)
{
    struct gvnic_aq_get_ptype_map c;
    memcpy(&c, pl, sizeof c);
    if (g->format != GVNIC_FMT_DQO_RDA)
        return GVNIC_AQ_UNIMPLEMENTED;
    if (gvnic_be64(c.ptype_map_len) < 2u * GVNIC_PTYPE_ENTRIES)
        return GVNIC_AQ_OUT_OF_RANGE;
    static const uint8_t known[][2] = { { 0, 0 }, { 2, 1 }, { 2, 2 }, { 2, 3 }, { 2, 4 },
                                        { 3, 1 }, { 3, 2 }, { 3, 3 }, { 3, 4 } };
    uint8_t map[2 * GVNIC_PTYPE_ENTRIES] = { 0 };
    memcpy(map, known, sizeof known);
    return dma_write(g, gvnic_be64(c.ptype_map_addr), map, sizeof map)
               ? GVNIC_AQ_PASSED : GVNIC_AQ_PERMISSION_DENIED;
}

static uint32_t verify_driver(struct gvnic *g, const uint8_t *pl)
{
    struct gvnic_aq_verify_driver c;
    memcpy(&c, pl, sizeof c);
    uint64_t len = gvnic_be64(c.driver_info_len);
    if (len < 16 || len > 4096)
        return GVNIC_AQ_INVALID_ARGUMENT;
    return dma_reachable(g, gvnic_be64(c.driver_info_addr), len, DMA_TO_DEVICE)
               ? GVNIC_AQ_PASSED : GVNIC_AQ_PERMISSION_DENIED;
}

/* ---- dispatch ------------------------------------------------------------------------------ */

uint32_t gvnic_admin_exec(struct gvnic *g, uint32_t opcode, const uint8_t pl[56])
{
    switch (opcode) {
    case GVNIC_AQ_DESCRIBE_DEVICE:              return describe(g, pl);
    case GVNIC_AQ_CONFIGURE_DEVICE_RESOURCES:   return configure(g, pl);
    case GVNIC_AQ_DECONFIGURE_DEVICE_RESOURCES: return deconfigure(g);
    case GVNIC_AQ_REGISTER_PAGE_LIST:           return register_qpl(g, pl);
    case GVNIC_AQ_UNREGISTER_PAGE_LIST:         return unregister_qpl(g, pl);
    case GVNIC_AQ_CREATE_TX_QUEUE:              return create_tx(g, pl);
    case GVNIC_AQ_CREATE_RX_QUEUE:              return create_rx(g, pl);
    case GVNIC_AQ_DESTROY_TX_QUEUE:             return destroy_queue(g, pl, true);
    case GVNIC_AQ_DESTROY_RX_QUEUE:             return destroy_queue(g, pl, false);
    case GVNIC_AQ_SET_DRIVER_PARAMETER:         return set_parameter(g, pl);
    case GVNIC_AQ_REPORT_STATS:                 return report_stats(g, pl);
    case GVNIC_AQ_REPORT_LINK_SPEED:            return link_speed(g, pl);
    case GVNIC_AQ_GET_PTYPE_MAP:                return ptype_map(g, pl);
    case GVNIC_AQ_VERIFY_DRIVER_COMPATIBILITY:  return verify_driver(g, pl);
    default:                                    return GVNIC_AQ_UNIMPLEMENTED;
    }
}

void gvnic_admin_clear(struct gvnic *g)
{
    pthread_mutex_lock(&g->rx_lock);        /* the rx callback reads lists and queues */
    for (unsigned i = 0; i < GVNIC_QPL_MAX; i++) {
        free(g->qpl[i].pages);
        g->qpl[i] = (struct gvnic_qpl){ .owner = -1 };
    }
    memset(g->txq, 0, sizeof g->txq);
    memset(g->rxq, 0, sizeof g->rxq);
    pthread_mutex_unlock(&g->rx_lock);
    g->pages_registered = 0;
    g->configured = false;
}
