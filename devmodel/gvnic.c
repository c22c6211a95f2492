/* gVNIC model: PCI function, BAR0 registers, reset and the admin queue's
 * doorbell (contract in gvnic.h; commands in gvnic_admin.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "devopts.h"
#include "gvnic_internal.h"
#include "log.h"
#include "netback.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "gvnic_be* assume a little-endian host");

#define BAR0_SIZE      4096u
#define MSIX_TABLE_OFF 0x0u
#define MSIX_PBA_OFF   0x800u

static const struct pci_device_ops gvnic_ops;

/* ---- reset ----------------------------------------------------------------- */

/* Back to the state after power-on or a reset: no admin queue, nothing
 * configured. is_reset says whether to report DEV_IS_RESET. Lock held. */
static void device_reset(struct gvnic *g, bool is_reset)
{
    gvnic_admin_clear(g);
    atomic_store(&g->reset_request, false);
    pthread_mutex_lock(&g->irq_lock);
    memset(g->irq_masked, 0, sizeof g->irq_masked);
    memset(g->irq_pending, 0, sizeof g->irq_pending);
    pthread_mutex_unlock(&g->irq_lock);
    g->driver_status = 0;
    g->is_reset = is_reset;
    g->aq_pfn = g->aq_base_hi = g->aq_base_lo = 0;
    g->aq_length = 0;
    g->aq_base = 0;
    g->aq_bytes = 0;
    g->aq_head = g->aq_events = 0;
    g->version_len = 0;
}

/* ---- the admin queue ------------------------------------------------------- */

static void aq_start(struct gvnic *g, uint64_t base, uint32_t bytes)
{
    g->aq_base = base;
    g->aq_bytes = bytes;
    g->aq_head = g->aq_events = 0;
    g->is_reset = false;
}

/* The driver's producer count is tail: run every command up to it, in
 * order, each answered with a status. */
static void aq_doorbell(struct gvnic *g, uint32_t tail)
{
    const uint32_t slots = g->aq_bytes / GVNIC_AQ_ENTRY_SIZE;
    if (!g->aq_base || tail - g->aq_head > slots) {
        GSTAT_INC(g, aq_bad_doorbell);
        pci_refuse(g->f, g->aq_base ? "admin doorbell past the queue's entries"
                                    : "admin doorbell with no admin queue",
                   GVNIC_REG_ADMINQ_DOORBELL, tail);
        return;
    }
    if (tail == g->aq_head)
        return;
    struct dma_mapping m;
    uint8_t *aq = pci_dma_map(g->f, g->aq_base, g->aq_bytes, DMA_BIDIR, &m);
    if (!aq) {
        GSTAT_INC(g, dma_refusals);
        return;     /* refused and audited; the commands stay unanswered */
    }
    while (g->aq_head != tail) {
        uint8_t *e = aq + (uint64_t)(g->aq_head % slots) * GVNIC_AQ_ENTRY_SIZE;
        uint32_t op;
        uint8_t payload[GVNIC_AQ_PAYLOAD_MAX];
        memcpy(&op, e, sizeof op);              /* copied once: the driver may */
        memcpy(payload, e + 8, sizeof payload); /* change it under us */
        uint32_t st = gvnic_admin_exec(g, gvnic_be32(op), payload);
        GSTAT_INC(g, aq_commands);
        if (st != GVNIC_AQ_PASSED) {
            GSTAT_INC(g, aq_failed);
            pci_guest_error(g->f, PCI_GERR_COMMAND, gvnic_status_name(st), gvnic_be32(op), st);
        }
        uint32_t be = gvnic_be32(st);
        memcpy(e + 4, &be, sizeof be);
        g->aq_head++;
        __atomic_store_n(&g->aq_events, g->aq_head, __ATOMIC_RELEASE);
    }
    pci_dma_unmap(g->f, &m);
}

/* ---- registers --------------------------------------------------------------- */

static uint32_t device_status(const struct gvnic *g)
{
    return (g->link_up ? GVNIC_DEV_LINK_UP : 0u) | (g->is_reset ? GVNIC_DEV_IS_RESET : 0u) |
           (atomic_load(&g->reset_request) ? GVNIC_DEV_RESET_REQUEST : 0u);
}

static bool reg_read(struct gvnic *g, uint64_t off, uint32_t size, uint64_t *out)
{
    if (size != 4 || off % 4)
        return false;
    uint32_t v;
    switch (off) {
    case GVNIC_REG_DEVICE_STATUS: v = device_status(g); break;
    case GVNIC_REG_DRIVER_STATUS: v = g->driver_status; break;
    case GVNIC_REG_MAX_TX_QUEUES:
    case GVNIC_REG_MAX_RX_QUEUES: v = g->queues; break;
    case GVNIC_REG_ADMINQ_PFN: v = g->aq_pfn; break;
    case GVNIC_REG_ADMINQ_EVENTS: v = g->aq_events; break;
    case GVNIC_REG_ADMINQ_BASE_HI: v = g->aq_base_hi; break;
    case GVNIC_REG_ADMINQ_BASE_LO: v = g->aq_base_lo; break;
    default: return false;
    }
    *out = gvnic_be32(v);
    return true;
}

static bool reg_write(struct gvnic *g, uint64_t off, uint32_t size, uint64_t raw)
{
    if (off == GVNIC_REG_DRIVER_VERSION && size == 1) {
        char c = (char)raw;
        if (c == '\n' || g->version_len == sizeof g->version - 1) {
            g->version[g->version_len] = '\0';
            log_info(g->f->bus->domain_name, "%s: driver version \"%s\"", g->f->name,
                     g->version);
            g->version_len = 0;
        } else if (c >= 0x20 && c < 0x7F) {
            g->version[g->version_len++] = c;
        }
        return true;
    }
    /* The length register is a be16 (Linux); iPXE writes it 32 bits wide
     * with the be16 in its first two bytes: the same value either way. */
    if (off == GVNIC_REG_ADMINQ_LENGTH && (size == 2 || size == 4)) {
        g->aq_length = gvnic_be16((uint16_t)raw);
        return true;
    }
    if (size != 4 || off % 4)
        return false;
    uint32_t v = gvnic_be32((uint32_t)raw);
    switch (off) {
    case GVNIC_REG_DRIVER_STATUS:
        if (v & ~(GVNIC_DRV_RUN | GVNIC_DRV_RESET))
            return false;
        if (v & GVNIC_DRV_RESET) {
            GSTAT_INC(g, resets);
            device_reset(g, true);
            return true;
        }
        g->driver_status = v;
        if ((v & GVNIC_DRV_RUN) && !g->aq_base) {
            uint64_t base = (uint64_t)g->aq_base_hi << 32 | g->aq_base_lo;
            uint32_t len = g->aq_length;
            if (!base || base % GVNIC_PAGE || len < GVNIC_AQ_ENTRY_SIZE || len > 4096 ||
                len % GVNIC_AQ_ENTRY_SIZE) {
                pci_refuse(g->f, "admin queue base/length not a page with whole entries",
                           base, len);
                GSTAT_INC(g, bad_registers);
                return true;
            }
            aq_start(g, base, len);
        }
        return true;
    case GVNIC_REG_ADMINQ_PFN:
        if (v == 0) {               /* the legacy reset: everything released */
            GSTAT_INC(g, resets);
            device_reset(g, true);
            return true;
        }
        if (g->aq_base)             /* already running: a driver bug */
            return false;
        g->aq_pfn = v;
        aq_start(g, (uint64_t)v * GVNIC_PAGE, GVNIC_AQ_DEFAULT_BYTES);
        return true;
    case GVNIC_REG_ADMINQ_DOORBELL:
        aq_doorbell(g, v);
        return true;
    case GVNIC_REG_ADMINQ_BASE_HI: g->aq_base_hi = v; return true;
    case GVNIC_REG_ADMINQ_BASE_LO: g->aq_base_lo = v; return true;
    default:
        return false;
    }
}

static enum bus_result bar_access(void *dev, unsigned bar, struct bus_access *a)
{
    struct gvnic *g = dev;
    pthread_mutex_lock(&g->lock);
    bool ok;
    if (bar == GVNIC_BAR_REGS)
        ok = a->is_write ? reg_write(g, a->offset, a->size, a->value)
                         : reg_read(g, a->offset, a->size, &a->value);
    else if (bar == GVNIC_BAR_DOORBELLS) {
        ok = a->size == 4 && a->offset % 4 == 0;
        if (ok && a->is_write)
            gvnic_doorbell(g, (uint32_t)(a->offset / 4), (uint32_t)a->value);
    } else
        ok = false;
    if (!ok) {
        GSTAT_INC(g, bad_registers);
        if (!a->is_write)
            a->value = ~0ull;
    }
    pthread_mutex_unlock(&g->lock);
    if (!ok)
        pci_refuse(g->f, a->is_write ? "register write refused" : "register read refused",
                   a->offset, a->value);
    else if (bar == GVNIC_BAR_DOORBELLS && !a->is_write)
        a->value = 0;
    return BUS_OK;
}

/* TX runs only inside register accesses (vCPU thread): stopping RX is
 * what is left; then nothing the dead incarnation registered (page lists,
 * queues, resources) outlives it. */
static void quiesce(void *dev)
{
    struct gvnic *g = dev;
    pthread_mutex_lock(&g->lock);
    pthread_mutex_lock(&g->rx_lock);
    g->quiesced = true;
    pthread_mutex_unlock(&g->rx_lock);
    gvnic_admin_clear(g);
    pthread_mutex_unlock(&g->lock);
}

static void reset(void *dev)
{
    struct gvnic *g = dev;
    pthread_mutex_lock(&g->lock);
    device_reset(g, false);
    pthread_mutex_lock(&g->rx_lock);
    g->quiesced = false;
    pthread_mutex_unlock(&g->rx_lock);
    pthread_mutex_unlock(&g->lock);
}

static void gvnic_free(struct gvnic *g)
{
    gvnic_admin_clear(g);
    pthread_mutex_destroy(&g->irq_lock);
    pthread_mutex_destroy(&g->rx_lock);
    pthread_mutex_destroy(&g->lock);
    free(g);
}

static void destroy(void *dev)
{
    struct gvnic *g = dev;
    if (g->port)
        netback_port_remove(g->port);   /* no rx callback after this */
    gvnic_free(g);
}

static const struct pci_device_ops gvnic_ops = {
    .bar_access = bar_access, .quiesce = quiesce, .reset = reset, .destroy = destroy,
};

/* ---- creation ------------------------------------------------------------------- */

static bool parse_opts(struct gvnic *g, const char *opts, bool *mac_set, char *err, size_t errlen)
{
    static const char *const known[] = { "format", "queues", "tx_ring", "rx_ring", "mtu", "mac",
                                         "link", NULL };
    uint64_t queues, tx, rx, mtu;
    char fmt[16];
    if (!devopts_check("gvnic", opts, known, err, errlen) ||
        !devopts_u64("gvnic", opts, "queues", 2, 1, GVNIC_QUEUES_MAX, &queues, err, errlen) ||
        !devopts_u64("gvnic", opts, "tx_ring", 256, 256, 4096, &tx, err, errlen) ||
        !devopts_u64("gvnic", opts, "rx_ring", 512, 64, GVNIC_RX_PAGES_PER_QPL, &rx, err, errlen) ||
        !devopts_u64("gvnic", opts, "mtu", 1460, 68, 1500, &mtu, err, errlen) ||
        !devopts_link("gvnic", opts, true, &g->link_up, err, errlen) ||
        !devopts_mac("gvnic", opts, g->mac, mac_set, err, errlen))
        return false;
    if ((tx & (tx - 1)) || (rx & (rx - 1))) {
        snprintf(err, errlen, "dev=gvnic: options tx_ring=%llu rx_ring=%llu: ring sizes are "
                 "powers of two", (unsigned long long)tx, (unsigned long long)rx);
        return false;
    }
    g->format = GVNIC_FMT_GQI_QPL;
    if (devopts_get(opts, "format", fmt, sizeof fmt, err, errlen)) {
        if (!strcmp(fmt, "dqo-rda"))
            g->format = GVNIC_FMT_DQO_RDA;
        else if (strcmp(fmt, "gqi-qpl")) {
            snprintf(err, errlen, "dev=gvnic: option format=%s: give gqi-qpl or dqo-rda", fmt);
            return false;
        }
    } else if (err[0]) {
        return false;
    }
    g->queues = (uint32_t)queues;
    g->tx_ring = (uint32_t)tx;
    g->rx_ring = (uint32_t)rx;
    g->mtu_max = (uint32_t)mtu;
    return true;
}

bool gvnic_create(struct pci_bus *bus, const char *name, uint32_t gsi, const char *opts,
                  char *err, size_t errlen)
{
    struct gvnic *g = calloc(1, sizeof *g);
    bool mac_set = false;
    if (!g) {
        snprintf(err, errlen, "dev=gvnic: out of memory creating %s", name);
        return false;
    }
    if (!parse_opts(g, opts, &mac_set, err, errlen)) {
        free(g);
        return false;
    }
    pthread_mutex_init(&g->lock, NULL);
    pthread_mutex_init(&g->rx_lock, NULL);
    pthread_mutex_init(&g->irq_lock, NULL);
    for (unsigned i = 0; i < GVNIC_QPL_MAX; i++)
        g->qpl[i].owner = -1;
    int n = snprintf(g->port_name, sizeof g->port_name, "%s.%s", bus->domain_name, name);
    if (n < 0 || (size_t)n >= sizeof g->port_name) {
        snprintf(err, errlen, "dev=gvnic: the port name %s.%s is too long", bus->domain_name,
                 name);
        gvnic_free(g);
        return false;
    }
    if (!mac_set)
        devopts_default_mac(g->port_name, g->mac);
    /* The port first: a name clash must not leave a PCI function behind.
     * Until the driver creates an RX queue the rx callback drops. */
    struct netback *nb = netback_get();
    char perr[160] = "the network backend could not be created";
    g->port = nb ? netback_port_add(nb, g->port_name, g->mac, gvnic_rx, g, perr, sizeof perr)
                 : NULL;
    if (!g->port) {
        snprintf(err, errlen, "cannot add %s to the network switch: %s", name, perr);
        gvnic_free(g);
        return false;
    }
    if (!g->link_up)
        netback_port_link(g->port, false);
    struct pci_func *f = pci_func_add(bus, name, GVNIC_PCI_VENDOR, GVNIC_PCI_DEVICE,
                                      GVNIC_PCI_CLASS, gsi, &gvnic_ops, g);
    if (!f) {
        snprintf(err, errlen, "cannot add %s: the PCI bus has no free slot", name);
        netback_port_remove(g->port);
        gvnic_free(g);
        return false;
    }
    g->f = f;
    f->cfg[PCI_REVISION_ID] = GVNIC_PCI_REVISION;
    f->cfg[PCI_SUBSYS_VENDOR] = GVNIC_PCI_SUBSYS_VENDOR & 0xFF;
    f->cfg[PCI_SUBSYS_VENDOR + 1] = GVNIC_PCI_SUBSYS_VENDOR >> 8;
    f->cfg[PCI_SUBSYS_ID] = GVNIC_PCI_SUBSYS_ID & 0xFF;
    f->cfg[PCI_SUBSYS_ID + 1] = GVNIC_PCI_SUBSYS_ID >> 8;
    device_reset(g, false);
    /* One vector per notification block (TX and RX queues) and the
     * management vector, last. */
    if (!pci_bar_add(f, GVNIC_BAR_REGS, PCI_BAR_MEM32, BAR0_SIZE) ||
        !pci_bar_add(f, GVNIC_BAR_MSIX, PCI_BAR_MEM32, 4096) ||
        !pci_bar_add(f, GVNIC_BAR_DOORBELLS, PCI_BAR_MEM32, GVNIC_DB_BAR_SIZE) ||
        !pci_msix_add(f, (uint16_t)(2u * g->queues + 1u), GVNIC_BAR_MSIX, MSIX_TABLE_OFF,
                      GVNIC_BAR_MSIX, MSIX_PBA_OFF)) {
        snprintf(err, errlen, "cannot place %s's BARs: the PCI windows are full", name);
        return false;   /* the bus owns g now and frees it */
    }
    return true;
}

bool gvnic_stats_get(const struct pci_func *f, struct gvnic_stats *out)
{
    if (!f || f->ops != &gvnic_ops)
        return false;
    struct gvnic *g = f->dev;
#define GVNIC_STAT_LOAD(name) out->name = __atomic_load_n(&g->st.name, __ATOMIC_RELAXED);
    GVNIC_STATS_FIELDS(GVNIC_STAT_LOAD)
#undef GVNIC_STAT_LOAD
    pthread_mutex_lock(&g->lock);
    out->pages_registered = g->pages_registered;
    pthread_mutex_unlock(&g->lock);
    return true;
}
