/* virtio-net PCI transports: the modern register file (virtio 1.2 §4.1.4:
 * vendor capabilities, common config, ISR, device config, notify) in
 * BAR4, the legacy I/O register block (§4.1.4.8) in BAR0, and the PCI
 * function they live in (contract in virtio_net.h). */
#include <stdio.h>
#include <string.h>
#include "virtio_net_internal.h"
#include "byteorder.h"


/* One register: offset, width in bytes, writable. Every access must match
 * a register exactly (deny by default). */
struct vnet_reg {
    uint16_t off;
    uint8_t width;
    bool rw;
};

/* struct virtio_pci_common_cfg (§4.1.4.3); 64-bit fields as two dwords. */
static const struct vnet_reg common_regs[] = {
    { VIRTIO_COMMON_DFSELECT, 4, true },  { VIRTIO_COMMON_DF, 4, false },
    { VIRTIO_COMMON_GFSELECT, 4, true },  { VIRTIO_COMMON_GF, 4, true },
    { VIRTIO_COMMON_MSIX, 2, true },      { VIRTIO_COMMON_NUMQ, 2, false },
    { VIRTIO_COMMON_STATUS, 1, true },    { VIRTIO_COMMON_CFGGEN, 1, false },
    { VIRTIO_COMMON_Q_SELECT, 2, true },  { VIRTIO_COMMON_Q_SIZE, 2, true },
    { VIRTIO_COMMON_Q_MSIX, 2, true },    { VIRTIO_COMMON_Q_ENABLE, 2, true },
    { VIRTIO_COMMON_Q_NOFF, 2, false },
    { VIRTIO_COMMON_Q_DESCLO, 4, true },  { VIRTIO_COMMON_Q_DESCHI, 4, true },
    { VIRTIO_COMMON_Q_AVAILLO, 4, true }, { VIRTIO_COMMON_Q_AVAILHI, 4, true },
    { VIRTIO_COMMON_Q_USEDLO, 4, true },  { VIRTIO_COMMON_Q_USEDHI, 4, true },
};
_Static_assert(VIRTIO_COMMON_Q_USEDHI + 4 == VIRTIO_COMMON_SIZE, "common config is 0x38 bytes");

/* The legacy I/O block without MSI-X (§4.1.4.8); device config follows. */
static const struct vnet_reg legacy_regs[] = {
    { VIRTIO_LEGACY_HOST_FEATURES, 4, false }, { VIRTIO_LEGACY_GUEST_FEATURES, 4, true },
    { VIRTIO_LEGACY_QUEUE_PFN, 4, true },      { VIRTIO_LEGACY_QUEUE_NUM, 2, false },
    { VIRTIO_LEGACY_QUEUE_SEL, 2, true },      { VIRTIO_LEGACY_QUEUE_NOTIFY, 2, true },
    { VIRTIO_LEGACY_STATUS, 1, true },         { VIRTIO_LEGACY_ISR, 1, false },
};
/* MAC and status: what the legacy BAR shows of the device config. */
#define VNET_LEGACY_CFG_LEN  (VIRTIO_NET_CFG_STATUS + 2u)
_Static_assert(VIRTIO_LEGACY_CONFIG + VNET_LEGACY_CFG_LEN <= VNET_LEGACY_BAR_SIZE,
               "legacy config fits the 32-byte I/O BAR");

/* Modern regions in BAR4 and their lengths as the capabilities declare. */
#define VNET_NOTIFY_LEN  (VNET_NOTIFY_MULT * VNET_NQ)
_Static_assert(VNET_NOTIFY_OFF + 0x1000u == VNET_MODERN_BAR_SIZE, "four 4 KiB regions");

static const struct vnet_reg *reg_find(const struct vnet_reg *t, size_t n, uint64_t off)
{
    for (size_t i = 0; i < n; i++)
        if (t[i].off == off)
            return &t[i];
    return NULL;
}

/* A hostile or impossible access: refused (the domain's policy applies),
 * counted; a read returns 0. */
static void refuse(struct vnet *v, struct bus_access *a, const char *what)
{
    VNET_COUNT(v, bad_registers);
    pci_refuse(v->f, what, a->addr, a->is_write ? a->value : a->size);
    if (!a->is_write)
        a->value = 0;
}

/* A value the device cannot take in a legal access: ignored, counted. */
static void bad_value(struct vnet *v, const char *what, uint64_t value)
{
    VNET_COUNT(v, bad_queue_config);
    pci_guest_error(v->f, PCI_GERR_COMMAND, what, value, 0);
}

/* The selected queue, NULL when queue_select names none. */
static struct vnet_queue *sel_queue(struct vnet *v)
{
    return v->queue_select < VNET_NQ ? &v->q[v->queue_select] : NULL;
}

/* Device configuration (§5.1.4): mac, status, max_virtqueue_pairs, mtu. */
static void cfg_bytes(const struct vnet *v, uint8_t out[VIRTIO_NET_CFG_SIZE])
{
    memcpy(out + VIRTIO_NET_CFG_MAC, v->mac, 6);
    put_le16(out + VIRTIO_NET_CFG_STATUS, v->net_status);
    put_le16(out + VIRTIO_NET_CFG_MAX_PAIRS, 1);
    put_le16(out + VIRTIO_NET_CFG_MTU, ETH_MTU);
}

/* Read size bytes of device config at off, or refuse when the access is
 * not a naturally aligned 1/2/4-byte read inside len bytes. */
static void cfg_read(struct vnet *v, struct bus_access *a, uint64_t off, uint32_t len)
{
    if ((a->size != 1 && a->size != 2 && a->size != 4) || off % a->size || off >= len ||
        a->size > len - off) {
        refuse(v, a, "virtio-net device config access not naturally aligned inside it");
        return;
    }
    uint8_t b[VIRTIO_NET_CFG_SIZE];
    cfg_bytes(v, b);
    a->value = 0;
    for (uint32_t i = 0; i < a->size; i++)
        a->value |= (uint64_t)b[off + i] << (8 * i);
}

static void vector_write(struct vnet *v, uint16_t *slot, uint32_t val)
{
    /* A vector the device has not got reads back as NO_VECTOR (§4.1.5.1.2). */
    pthread_mutex_lock(&v->irq_lock);
    *slot = (uint16_t)(val < VNET_MSIX_VECTORS ? val : VIRTIO_MSI_NO_VECTOR);
    pthread_mutex_unlock(&v->irq_lock);
}

/* ---- modern: common configuration ---------------------------------------- */

static uint32_t common_read(struct vnet *v, uint64_t off)
{
    const struct vnet_queue *q = sel_queue(v);
    uint32_t r;
    switch (off) {
    case VIRTIO_COMMON_DFSELECT: return v->dfselect;
    case VIRTIO_COMMON_DF:
        return v->dfselect < 2 ? (uint32_t)(v->offered >> (32 * v->dfselect)) : 0;
    case VIRTIO_COMMON_GFSELECT: return v->gfselect;
    case VIRTIO_COMMON_GF:
        return v->gfselect < 2 ? (uint32_t)(v->driver_features >> (32 * v->gfselect)) : 0;
    case VIRTIO_COMMON_MSIX:
    case VIRTIO_COMMON_Q_MSIX:
        pthread_mutex_lock(&v->irq_lock);
        r = off == VIRTIO_COMMON_MSIX ? v->config_vector
            : q ? v->queue_vector[v->queue_select] : VIRTIO_MSI_NO_VECTOR;
        pthread_mutex_unlock(&v->irq_lock);
        return r;
    case VIRTIO_COMMON_NUMQ:     return VNET_NQ;
    case VIRTIO_COMMON_STATUS:
        return v->status | (atomic_load(&v->needs_reset) ? VIRTIO_STATUS_DEVICE_NEEDS_RESET : 0u);
    case VIRTIO_COMMON_CFGGEN:   return v->cfg_gen;
    case VIRTIO_COMMON_Q_SELECT: return v->queue_select;
    case VIRTIO_COMMON_Q_SIZE:   return q ? q->size : 0;    /* 0: no such queue */
    case VIRTIO_COMMON_Q_ENABLE: return q ? q->enabled : 0;
    case VIRTIO_COMMON_Q_NOFF:   return q ? v->queue_select : 0;
    case VIRTIO_COMMON_Q_DESCLO:  return q ? (uint32_t)q->desc : 0;
    case VIRTIO_COMMON_Q_DESCHI:  return q ? (uint32_t)(q->desc >> 32) : 0;
    case VIRTIO_COMMON_Q_AVAILLO: return q ? (uint32_t)q->driver : 0;
    case VIRTIO_COMMON_Q_AVAILHI: return q ? (uint32_t)(q->driver >> 32) : 0;
    case VIRTIO_COMMON_Q_USEDLO:  return q ? (uint32_t)q->device : 0;
    case VIRTIO_COMMON_Q_USEDHI:  return q ? (uint32_t)(q->device >> 32) : 0;
    default:                      return 0;
    }
}

/* FEATURES_OK (§3.1.1 step 5): only offered bits, and VERSION_1. */
static bool features_ok(struct vnet *v)
{
    uint64_t extra = v->driver_features & ~v->offered;
    if (!v->unknown_features && !extra && (v->driver_features & VIRTIO_BIT(VIRTIO_F_VERSION_1))) {
        v->features = v->driver_features;
        return true;
    }
    VNET_COUNT(v, bad_features);
    pci_guest_error(v->f, PCI_GERR_COMMAND,
                    extra || v->unknown_features ? "FEATURES_OK refused: unoffered features"
                                                 : "FEATURES_OK refused: no VERSION_1",
                    v->driver_features, v->offered);
    return false;
}

static void modern_status_write(struct vnet *v, uint8_t val)
{
    if (val == 0) {
        VNET_COUNT(v, driver_resets);
        vnet_device_reset(v);
        return;
    }
    uint8_t old = v->status;
    val &= (uint8_t)~VIRTIO_STATUS_DEVICE_NEEDS_RESET;     /* the device's bit */
    /* Negotiation and going live end only with a reset. */
    val |= old & (VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
    if ((val & VIRTIO_STATUS_FEATURES_OK) && !(old & VIRTIO_STATUS_FEATURES_OK) && !features_ok(v))
        val &= (uint8_t)~VIRTIO_STATUS_FEATURES_OK;        /* the driver reads it back clear */
    if ((val & VIRTIO_STATUS_DRIVER_OK) && !(val & VIRTIO_STATUS_FEATURES_OK)) {
        VNET_COUNT(v, bad_features);    /* DRIVER_OK without negotiated features */
        val &= (uint8_t)~VIRTIO_STATUS_DRIVER_OK;
    }
    v->status = val;
    if ((val & VIRTIO_STATUS_DRIVER_OK) && !(old & VIRTIO_STATUS_DRIVER_OK))
        vnet_go_live(v);
}

static void queue_enable(struct vnet *v, struct vnet_queue *q, uint32_t val)
{
    if (!q || val != 1) {   /* §4.1.4.3.2: the driver never writes 0 */
        bad_value(v, q ? "queue_enable written with a value other than 1"
                       : "queue_enable of a queue that does not exist", val);
        return;
    }
    if (q->enabled)
        return;
    unsigned qi = (unsigned)(q - v->q);
    enum virtq_err e = virtq_setup(&q->vq, q->size, q->desc, q->driver, q->device);
    if (e != VIRTQ_OK) {
        bad_value(v, "queue enabled with misaligned ring addresses", q->desc);
        return;
    }
    vnet_queue_features(v, qi);
    q->enabled = true;
    vnet_ioeventfd(v, qi, true);
}

/* Merge a dword into the half of a 64-bit queue address. */
static void addr_write(struct vnet *v, struct vnet_queue *q, uint64_t *field, bool hi, uint32_t val)
{
    if (!q || q->enabled) {
        bad_value(v, q ? "queue address changed while the queue is enabled"
                       : "queue address of a queue that does not exist", val);
        return;
    }
    *field = hi ? (*field & 0xFFFFFFFFull) | (uint64_t)val << 32
                : (*field & ~0xFFFFFFFFull) | val;
}

static void common_write(struct vnet *v, uint64_t off, uint32_t val)
{
    struct vnet_queue *q = sel_queue(v);
    switch (off) {
    case VIRTIO_COMMON_DFSELECT: v->dfselect = val; break;
    case VIRTIO_COMMON_GFSELECT: v->gfselect = val; break;
    case VIRTIO_COMMON_GF:
        if (v->status & VIRTIO_STATUS_FEATURES_OK)
            break;      /* negotiation is over until reset */
        if (v->gfselect < 2)
            v->driver_features = (v->driver_features & ~(0xFFFFFFFFull << (32 * v->gfselect))) |
                                 (uint64_t)val << (32 * v->gfselect);
        else if (val)
            v->unknown_features = true;
        break;
    case VIRTIO_COMMON_MSIX:     vector_write(v, &v->config_vector, val); break;
    case VIRTIO_COMMON_STATUS:   modern_status_write(v, (uint8_t)val); break;
    case VIRTIO_COMMON_Q_SELECT: v->queue_select = (uint16_t)val; break;
    case VIRTIO_COMMON_Q_SIZE:
        if (!q || q->enabled || !virtq_size_valid(val) || val > v->qsize)
            bad_value(v, "queue_size not a power of two up to the maximum, or the queue is "
                      "enabled or does not exist", val);
        else
            q->size = (uint16_t)val;
        break;
    case VIRTIO_COMMON_Q_MSIX:
        if (q)
            vector_write(v, &v->queue_vector[v->queue_select], val);
        else
            bad_value(v, "queue_msix_vector of a queue that does not exist", val);
        break;
    case VIRTIO_COMMON_Q_ENABLE:  queue_enable(v, q, val); break;
    case VIRTIO_COMMON_Q_DESCLO:  addr_write(v, q, q ? &q->desc : NULL, false, val); break;
    case VIRTIO_COMMON_Q_DESCHI:  addr_write(v, q, q ? &q->desc : NULL, true, val); break;
    case VIRTIO_COMMON_Q_AVAILLO: addr_write(v, q, q ? &q->driver : NULL, false, val); break;
    case VIRTIO_COMMON_Q_AVAILHI: addr_write(v, q, q ? &q->driver : NULL, true, val); break;
    case VIRTIO_COMMON_Q_USEDLO:  addr_write(v, q, q ? &q->device : NULL, false, val); break;
    case VIRTIO_COMMON_Q_USEDHI:  addr_write(v, q, q ? &q->device : NULL, true, val); break;
    default: break;     /* read-only registers never get here */
    }
}

/* ---- modern: BAR4 -------------------------------------------------------- */

static void modern_access(struct vnet *v, struct bus_access *a)
{
    uint64_t off = a->offset;
    if (off < VNET_ISR_OFF) {
        const struct vnet_reg *r = reg_find(common_regs, sizeof common_regs / sizeof common_regs[0],
                                            off);
        if (!r || r->width != a->size) {
            refuse(v, a, "virtio common config access of the wrong width or offset");
        } else if (a->is_write && !r->rw) {
            refuse(v, a, "write to a read-only virtio common config register");
        } else {
            pthread_mutex_lock(&v->lock);
            pthread_mutex_lock(&v->rx_lock);
            if (a->is_write)
                common_write(v, off, (uint32_t)a->value);
            else
                a->value = common_read(v, off);
            pthread_mutex_unlock(&v->rx_lock);
            pthread_mutex_unlock(&v->lock);
        }
    } else if (off < VNET_DEVICE_OFF) {
        if (off != VNET_ISR_OFF || a->size != 1 || a->is_write)
            refuse(v, a, "virtio ISR access other than a byte read");
        else
            a->value = vnet_isr_read(v);
    } else if (off < VNET_NOTIFY_OFF) {
        if (a->is_write) {
            refuse(v, a, "write to the read-only virtio-net device config");
        } else {
            pthread_mutex_lock(&v->lock);
            cfg_read(v, a, off - VNET_DEVICE_OFF, VIRTIO_NET_CFG_SIZE);
            pthread_mutex_unlock(&v->lock);
        }
    } else {
        uint64_t n = off - VNET_NOTIFY_OFF;
        if (!a->is_write || a->size != 2 || n % VNET_NOTIFY_MULT || n >= VNET_NOTIFY_LEN) {
            refuse(v, a, "virtio notify access other than a 16-bit write to a queue's address");
        } else {
            VNET_COUNT(v, notifies);    /* no ioeventfd took it: wake the worker here */
            vnet_worker_kick(v);
        }
    }
}

/* ---- legacy: I/O BAR0 ---------------------------------------------------- */

static uint32_t legacy_read(struct vnet *v, uint64_t off)
{
    const struct vnet_queue *q = sel_queue(v);
    switch (off) {
    case VIRTIO_LEGACY_HOST_FEATURES:  return (uint32_t)v->offered;
    case VIRTIO_LEGACY_GUEST_FEATURES: return (uint32_t)v->features;
    case VIRTIO_LEGACY_QUEUE_PFN:      return q ? q->pfn : 0;
    case VIRTIO_LEGACY_QUEUE_NUM:      return q ? v->qsize : 0;     /* 0: no such queue */
    case VIRTIO_LEGACY_QUEUE_SEL:      return v->queue_select;
    case VIRTIO_LEGACY_STATUS:         return v->status;
    case VIRTIO_LEGACY_ISR:            return vnet_isr_read(v);
    default:                           return 0;    /* QUEUE_NOTIFY */
    }
}

static void legacy_pfn_write(struct vnet *v, struct vnet_queue *q, uint32_t pfn)
{
    if (!q) {
        bad_value(v, "QUEUE_PFN of a queue that does not exist", pfn);
        return;
    }
    unsigned qi = (unsigned)(q - v->q);
    q->enabled = false;
    virtq_reset(&q->vq);
    q->pfn = 0;
    atomic_store(&q->stopped, false);
    if (pfn) {
        /* A PFN always gives a 4096-aligned base and qsize is valid. */
        if (virtq_setup_legacy(&q->vq, v->qsize, (uint64_t)pfn << VIRTIO_LEGACY_PFN_SHIFT) !=
            VIRTQ_OK) {
            bad_value(v, "QUEUE_PFN rejected", pfn);
        } else {
            q->pfn = pfn;
            q->enabled = true;
            vnet_queue_features(v, qi);
        }
    }
    vnet_ioeventfd(v, qi, q->enabled);
}

static void legacy_write(struct vnet *v, uint64_t off, uint32_t val)
{
    struct vnet_queue *q = sel_queue(v);
    switch (off) {
    case VIRTIO_LEGACY_GUEST_FEATURES:
        if (v->ready) {
            bad_value(v, "feature change after DRIVER_OK", val);
            break;
        }
        if (val & ~(uint32_t)v->offered) {
            VNET_COUNT(v, bad_features);
            pci_guest_error(v->f, PCI_GERR_COMMAND, "unoffered features accepted (ignored)",
                            val, v->offered);
        }
        v->driver_features = val;
        v->features = val & v->offered;
        break;
    case VIRTIO_LEGACY_QUEUE_PFN:
        legacy_pfn_write(v, q, val);
        break;
    case VIRTIO_LEGACY_QUEUE_SEL:
        v->queue_select = (uint16_t)val;
        break;
    case VIRTIO_LEGACY_QUEUE_NOTIFY:
        VNET_COUNT(v, notifies);        /* no ioeventfd took it */
        vnet_worker_kick(v);
        break;
    case VIRTIO_LEGACY_STATUS:
        if (val == 0) {
            VNET_COUNT(v, driver_resets);
            vnet_device_reset(v);
        } else {
            uint8_t old = v->status;
            v->status = (uint8_t)val | (old & VIRTIO_STATUS_DRIVER_OK);
            if ((val & VIRTIO_STATUS_DRIVER_OK) && !(old & VIRTIO_STATUS_DRIVER_OK))
                vnet_go_live(v);
        }
        break;
    default:
        break;
    }
}

static void legacy_access(struct vnet *v, struct bus_access *a)
{
    uint64_t off = a->offset;
    if (off >= VIRTIO_LEGACY_CONFIG) {
        uint64_t c = off - VIRTIO_LEGACY_CONFIG;
        if (!a->is_write) {
            pthread_mutex_lock(&v->lock);
            cfg_read(v, a, c, VNET_LEGACY_CFG_LEN);
            pthread_mutex_unlock(&v->lock);
            return;
        }
        /* Legacy drivers may set the MAC byte by byte (no CTRL_MAC_ADDR). */
        if (a->size != 1 || c >= 6) {
            refuse(v, a, "legacy virtio-net config write other than a MAC byte");
            return;
        }
        pthread_mutex_lock(&v->lock);
        v->mac[c] = (uint8_t)a->value;
        pthread_mutex_unlock(&v->lock);
        return;
    }
    const struct vnet_reg *r = reg_find(legacy_regs, sizeof legacy_regs / sizeof legacy_regs[0], off);
    if (!r || r->width != a->size) {
        refuse(v, a, "legacy virtio register access of the wrong width or offset");
        return;
    }
    if (a->is_write && !r->rw) {
        refuse(v, a, "write to a read-only legacy virtio register");
        return;
    }
    pthread_mutex_lock(&v->lock);
    pthread_mutex_lock(&v->rx_lock);
    if (a->is_write)
        legacy_write(v, off, (uint32_t)a->value);
    else
        a->value = legacy_read(v, off);
    pthread_mutex_unlock(&v->rx_lock);
    pthread_mutex_unlock(&v->lock);
}

/* ---- the PCI function ---------------------------------------------------- */

enum bus_result vnet_bar_access(void *dev, unsigned bar, struct bus_access *a)
{
    struct vnet *v = dev;
    if (v->legacy && bar == VNET_BAR_LEGACY)
        legacy_access(v, a);
    else if (!v->legacy && bar == VNET_BAR_MODERN)
        modern_access(v, a);
    else    /* BAR1 outside the MSI-X table and PBA */
        refuse(v, a, "virtio-net MSI-X BAR access outside the table and PBA");
    return BUS_OK;
}

void vnet_bar_moved(void *dev, unsigned bar, uint64_t old_base, uint64_t new_base)
{
    struct vnet *v = dev;
    (void)new_base;
    pthread_mutex_lock(&v->lock);
    if (v->legacy && bar == VNET_BAR_LEGACY && v->legacy_ioeventfd)
        v->legacy_ioeventfd = pci_ioeventfd_move(v->f, bar, old_base, VIRTIO_LEGACY_QUEUE_NOTIFY,
                                                 2, v->efd);
    for (unsigned qi = 0; qi < VNET_NQ && !v->legacy && bar == VNET_BAR_MODERN; qi++)
        if (v->q[qi].ioeventfd)
            v->q[qi].ioeventfd = pci_ioeventfd_move(v->f, bar, old_base,
                                                    VNET_NOTIFY_OFF + VNET_NOTIFY_MULT * qi,
                                                    2, v->efd);
    pthread_mutex_unlock(&v->lock);
}

/* One struct virtio_pci_cap (+ notify_off_multiplier) in BAR4. */
static bool vendor_cap(struct pci_func *f, uint8_t type, uint32_t off, uint32_t len)
{
    bool notify = type == VIRTIO_PCI_CAP_NOTIFY_CFG;
    uint8_t cap[VIRTIO_PCI_NOTIFY_CAP_LEN] = { 0 };
    uint8_t cap_len = notify ? VIRTIO_PCI_NOTIFY_CAP_LEN : VIRTIO_PCI_CAP_LEN;
    cap[VIRTIO_PCI_CAP_CAPLEN] = cap_len;
    cap[VIRTIO_PCI_CAP_CFG_TYPE] = type;
    cap[VIRTIO_PCI_CAP_BAR] = VNET_BAR_MODERN;
    put_le32(cap + VIRTIO_PCI_CAP_OFFSET, off);
    put_le32(cap + VIRTIO_PCI_CAP_LENGTH, len);
    if (notify)
        put_le32(cap + VIRTIO_PCI_CAP_MULTIPLIER, VNET_NOTIFY_MULT);
    /* pci_cap_add writes the ID and next pointer (bytes 0-1) itself. */
    return pci_cap_add(f, PCI_CAP_ID_VENDOR, cap + 2, (uint8_t)(cap_len - 2u)) != 0;
}

bool vnet_pci_setup(struct vnet *v)
{
    struct pci_func *f = v->f;
    if (v->legacy) {
        /* Legacy identity (§4.1.2.3): revision 0, subsystem = device type. */
        f->cfg[PCI_REVISION_ID] = 0;
        put_le16(f->cfg + PCI_SUBSYS_VENDOR, VIRTIO_PCI_VENDOR);
        put_le16(f->cfg + PCI_SUBSYS_ID, VIRTIO_ID_NET);
        return pci_bar_add(f, VNET_BAR_LEGACY, PCI_BAR_IOPORT, VNET_LEGACY_BAR_SIZE);
    }
    f->cfg[PCI_REVISION_ID] = 1;    /* §4.1.2.1: modern devices have revision >= 1 */
    return pci_bar_add(f, VNET_BAR_MSIX, PCI_BAR_MEM32, 4096) &&
           pci_bar_add(f, VNET_BAR_MODERN, PCI_BAR_MEM64, VNET_MODERN_BAR_SIZE) &&
           vendor_cap(f, VIRTIO_PCI_CAP_COMMON_CFG, VNET_COMMON_OFF, VIRTIO_COMMON_SIZE) &&
           vendor_cap(f, VIRTIO_PCI_CAP_NOTIFY_CFG, VNET_NOTIFY_OFF, VNET_NOTIFY_LEN) &&
           vendor_cap(f, VIRTIO_PCI_CAP_ISR_CFG, VNET_ISR_OFF, 1) &&
           vendor_cap(f, VIRTIO_PCI_CAP_DEVICE_CFG, VNET_DEVICE_OFF, VIRTIO_NET_CFG_SIZE) &&
           pci_msix_add(f, VNET_MSIX_VECTORS, VNET_BAR_MSIX, VNET_MSIX_TABLE_OFF, VNET_BAR_MSIX,
                        VNET_MSIX_PBA_OFF);
}
