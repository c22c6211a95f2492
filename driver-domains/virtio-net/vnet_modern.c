/* The virtio 1.x PCI transport (contract in vnet_transport.h; virtio 1.2
 * §4.1.4 capabilities, §4.1.5 device initialisation). */
#include "vnet_transport.h"
#include "moat/pci_regs.h"


/* ---- register access within the validated windows ------------------------- */

static uint8_t c8(struct vnet_tp *t, uint32_t off) { return dd_mmio_read8(t->common.bar, t->common.off + off); }
static uint16_t c16(struct vnet_tp *t, uint32_t off) { return dd_mmio_read16(t->common.bar, t->common.off + off); }
static uint32_t c32(struct vnet_tp *t, uint32_t off) { return dd_mmio_read32(t->common.bar, t->common.off + off); }
static void cw8(struct vnet_tp *t, uint32_t off, uint8_t v) { dd_mmio_write8(t->common.bar, t->common.off + off, v); }
static void cw16(struct vnet_tp *t, uint32_t off, uint16_t v) { dd_mmio_write16(t->common.bar, t->common.off + off, v); }
static void cw32(struct vnet_tp *t, uint32_t off, uint32_t v) { dd_mmio_write32(t->common.bar, t->common.off + off, v); }
/* 64-bit fields as two 32-bit halves, low first (§4.1.3.1 allows it, and
 * some devices take nothing else). */
static void cw64(struct vnet_tp *t, uint32_t off, uint64_t v)
{
    cw32(t, off, (uint32_t)v);
    cw32(t, off + 4u, (uint32_t)(v >> 32));
}

/* ---- discovery ---------------------------------------------------------------- */

static const char *cap_name(uint8_t type)
{
    switch (type) {
    case VIRTIO_PCI_CAP_COMMON_CFG: return "common";
    case VIRTIO_PCI_CAP_NOTIFY_CFG: return "notify";
    case VIRTIO_PCI_CAP_ISR_CFG:    return "ISR";
    case VIRTIO_PCI_CAP_DEVICE_CFG: return "device";
    default:                        return "?";
    }
}

/* Smallest window each structure needs to be usable. */
static uint64_t cap_min_len(uint8_t type)
{
    switch (type) {
    case VIRTIO_PCI_CAP_COMMON_CFG: return VIRTIO_COMMON_SIZE;
    case VIRTIO_PCI_CAP_NOTIFY_CFG: return 2;
    case VIRTIO_PCI_CAP_ISR_CFG:    return 1;
    default:                        return VIRTIO_NET_CFG_STATUS;  /* the MAC */
    }
}

const char *vnet_modern_probe(struct vnet_tp *t, struct dd_dev *dev)
{
    t->dev = dev;
    t->common.bar = t->notify.bar = t->isr.bar = t->device.bar = NULL;
    for (uint32_t c = dd_cap_find(dev, PCI_CAP_ID_VENDOR, 0); c;
         c = dd_cap_find(dev, PCI_CAP_ID_VENDOR, c)) {
        if (c > PCI_CFG_LEGACY_SIZE - 4u)
            continue;
        uint8_t type = dd_cfg_read8(dev, c + VIRTIO_PCI_CAP_CFG_TYPE);
        struct vnet_region *r = type == VIRTIO_PCI_CAP_COMMON_CFG ? &t->common
                              : type == VIRTIO_PCI_CAP_NOTIFY_CFG ? &t->notify
                              : type == VIRTIO_PCI_CAP_ISR_CFG    ? &t->isr
                              : type == VIRTIO_PCI_CAP_DEVICE_CFG ? &t->device : NULL;
        if (!r || r->bar)
            continue;           /* PCI_CFG, unknown, or not the first of its type */
        uint8_t cap_len = dd_cfg_read8(dev, c + 2u);
        uint32_t need = type == VIRTIO_PCI_CAP_NOTIFY_CFG ? VIRTIO_PCI_NOTIFY_CAP_LEN
                                                          : VIRTIO_PCI_CAP_LEN;
        if (cap_len < need || c + need > PCI_CFG_LEGACY_SIZE) {
            dd_log("virtio-net: %s capability at 0x%x is %u bytes (< %u) or runs past the "
                   "configuration header: skipped", cap_name(type), c, cap_len, need);
            continue;
        }
        uint8_t bar_no = dd_cfg_read8(dev, c + VIRTIO_PCI_CAP_BAR);
        uint64_t off = dd_cfg_read32(dev, c + VIRTIO_PCI_CAP_OFFSET);
        uint64_t len = dd_cfg_read32(dev, c + VIRTIO_PCI_CAP_LENGTH);
        const struct dd_bar *bar = bar_no < PCI_BARS ? dd_bar(dev, bar_no) : NULL;
        if (!bar || dd_bar_is_io(bar)) {
            dd_log("virtio-net: %s capability names BAR %u, which is no memory BAR: skipped",
                   cap_name(type), bar_no);
            continue;
        }
        uint64_t size = dd_bar_size(bar);
        if (len < cap_min_len(type) || off > size || len > size - off) {
            dd_log("virtio-net: %s window 0x%lx+0x%lx does not fit BAR %u (0x%lx bytes) or is "
                   "too small: skipped", cap_name(type), off, len, bar_no, size);
            continue;
        }
        *r = (struct vnet_region){ .bar = bar, .off = off, .len = len };
        if (type == VIRTIO_PCI_CAP_NOTIFY_CFG)
            t->notify_mult = dd_cfg_read32(dev, c + VIRTIO_PCI_CAP_MULTIPLIER);
    }
    if (!t->common.bar)
        return "no usable common configuration capability";
    if (!t->notify.bar)
        return "no usable notify capability";
    if (!t->isr.bar)
        return "no usable ISR capability";
    if (!t->device.bar)
        return "no usable device configuration capability";
    t->ops = &vnet_modern_ops;
    return NULL;
}

/* ---- status and features ---------------------------------------------------- */

static uint8_t m_status_get(struct vnet_tp *t) { return c8(t, VIRTIO_COMMON_STATUS); }
static void m_status_set(struct vnet_tp *t, uint8_t s) { cw8(t, VIRTIO_COMMON_STATUS, s); }

static uint64_t m_features_get(struct vnet_tp *t)
{
    cw32(t, VIRTIO_COMMON_DFSELECT, 0);
    uint64_t lo = c32(t, VIRTIO_COMMON_DF);
    cw32(t, VIRTIO_COMMON_DFSELECT, 1);
    uint64_t hi = c32(t, VIRTIO_COMMON_DF);
    return hi << 32 | lo;
}

static void m_features_set(struct vnet_tp *t, uint64_t f)
{
    cw32(t, VIRTIO_COMMON_GFSELECT, 0);
    cw32(t, VIRTIO_COMMON_GF, (uint32_t)f);
    cw32(t, VIRTIO_COMMON_GFSELECT, 1);
    cw32(t, VIRTIO_COMMON_GF, (uint32_t)(f >> 32));
}

static const char *m_features_ok(struct vnet_tp *t)
{
    m_status_set(t, (uint8_t)(m_status_get(t) | VIRTIO_STATUS_FEATURES_OK));
    if (!(m_status_get(t) & VIRTIO_STATUS_FEATURES_OK))
        return "the device did not keep FEATURES_OK (it refused the features)";
    return NULL;
}

/* ---- interrupts ------------------------------------------------------------- */

/* INTx (a modern function without MSI-X): reading ISR tells the cause and
 * lowers the line. */
static void m_intx(void *ctx)
{
    struct vnet_tp *t = ctx;
    uint8_t isr = dd_mmio_read8(t->isr.bar, t->isr.off);
    t->isr_reads++;
    if ((isr & VIRTIO_ISR_CONFIG) && t->on_config)
        t->on_config(t->hook_ctx);
    if ((isr & VIRTIO_ISR_QUEUE) && t->on_queue)
        t->on_queue(t->hook_ctx);
    dd_irq_ack(t->irq[0]);
}

/* One vector for everything (a table with fewer than 3 entries): any
 * interrupt may be a configuration change. */
static void m_shared(void *ctx)
{
    struct vnet_tp *t = ctx;
    if (t->on_config)
        t->on_config(t->hook_ctx);
    if (t->on_queue)
        t->on_queue(t->hook_ctx);
}

static const char *m_irq_setup(struct vnet_tp *t, dd_irq_fn on_config, dd_irq_fn on_queue,
                               void *ctx)
{
    t->on_config = on_config;
    t->on_queue = on_queue;
    t->hook_ctx = ctx;
    uint32_t cap = dd_cap_find(t->dev, PCI_CAP_ID_MSIX, 0);
    if (!cap) {
        t->msix = false;
        t->vec_config = t->vec_queue[0] = t->vec_queue[1] = VIRTIO_MSI_NO_VECTOR;
        t->irq[0] = dd_irq_intx(t->dev, m_intx, t);
        return NULL;
    }
    t->msix = true;
    unsigned entries = (dd_cfg_read16(t->dev, cap + PCI_MSIX_CTRL) & PCI_MSIX_CTRL_SIZE_MASK) + 1u;
    if (entries >= 3) {
        /* Entry 0: configuration; 1: receive queue; 2: transmit queue. */
        t->irq[0] = dd_irq_msix(t->dev, 0, on_config, ctx);
        t->irq[1] = dd_irq_msix(t->dev, 1, on_queue, ctx);
        t->irq[2] = dd_irq_msix(t->dev, 2, on_queue, ctx);
        t->vec_config = 0;
        t->vec_queue[0] = 1;
        t->vec_queue[1] = 2;
    } else {
        t->irq[0] = dd_irq_msix(t->dev, 0, m_shared, t);
        t->vec_config = t->vec_queue[0] = t->vec_queue[1] = 0;
    }
    cw16(t, VIRTIO_COMMON_MSIX, t->vec_config);
    if (c16(t, VIRTIO_COMMON_MSIX) != t->vec_config)
        return "the device refused the configuration MSI-X vector";
    return NULL;
}

/* ---- queues ----------------------------------------------------------------- */

static const char *m_queue_setup(struct vnet_tp *t, uint16_t qidx, uint32_t want, bool event_idx,
                                 struct vnet_vq *out)
{
    cw16(t, VIRTIO_COMMON_Q_SELECT, qidx);
    uint32_t max = c16(t, VIRTIO_COMMON_Q_SIZE);
    if (max == 0)
        return "the device has no such queue (size 0)";
    if (c16(t, VIRTIO_COMMON_Q_ENABLE))
        return "the queue is enabled already after reset";
    /* A power of two no larger than either (split queues need one). */
    uint32_t lim = want < max ? want : max, size = 1;
    while (size * 2u <= lim && size * 2u <= VIRTQ_SIZE_MAX)
        size *= 2u;
    const char *err = vnet_vq_alloc(out, qidx, size, false, event_idx);
    if (err)
        return err;
    cw16(t, VIRTIO_COMMON_Q_SIZE, (uint16_t)size);
    uint16_t vec = t->vec_queue[qidx & 1u];
    cw16(t, VIRTIO_COMMON_Q_MSIX, vec);
    if (vec != VIRTIO_MSI_NO_VECTOR && c16(t, VIRTIO_COMMON_Q_MSIX) != vec)
        return "the device refused the queue's MSI-X vector";
    cw64(t, VIRTIO_COMMON_Q_DESCLO, out->desc_iova);
    cw64(t, VIRTIO_COMMON_Q_AVAILLO, out->avail_iova);
    cw64(t, VIRTIO_COMMON_Q_USEDLO, out->used_iova);
    uint64_t at = (uint64_t)c16(t, VIRTIO_COMMON_Q_NOFF) * t->notify_mult;
    if (at > t->notify.len || t->notify.len - at < 2u)
        return "the queue's notify address lies outside the notify window";
    t->notify_at[qidx & 1u] = t->notify.off + at;
    cw16(t, VIRTIO_COMMON_Q_ENABLE, 1);
    return NULL;
}

static void m_notify(struct vnet_tp *t, uint16_t qidx)
{
    /* The index (no NOTIFICATION_DATA) at the queue's own address. */
    dd_mmio_write16(t->notify.bar, t->notify_at[qidx & 1u], qidx);
}

/* ---- device configuration ---------------------------------------------------- */

static void m_config_read(struct vnet_tp *t, bool with_status, struct vnet_config *out)
{
    const struct dd_bar *b = t->device.bar;
    uint64_t o = t->device.off;
    /* §4.1.4.3: retry until the generation is the same before and after,
     * so the fields come from one consistent version. */
    for (unsigned tries = 0;; tries++) {
        uint8_t gen = c8(t, VIRTIO_COMMON_CFGGEN);
        for (uint32_t i = 0; i < 6; i++)
            out->mac[i] = dd_mmio_read8(b, o + VIRTIO_NET_CFG_MAC + i);
        out->status = VIRTIO_NET_S_LINK_UP;
        if (with_status && t->device.len >= VIRTIO_NET_CFG_STATUS + 2u)
            out->status = dd_mmio_read16(b, o + VIRTIO_NET_CFG_STATUS);
        if (c8(t, VIRTIO_COMMON_CFGGEN) == gen)
            return;
        if (tries == 100)
            dd_panic("virtio-net: the configuration generation keeps changing");
    }
}

const struct vnet_transport_ops vnet_modern_ops = {
    .name = "modern",
    .modern = true,
    .status_get = m_status_get,
    .status_set = m_status_set,
    .features_get = m_features_get,
    .features_set = m_features_set,
    .features_ok = m_features_ok,
    .irq_setup = m_irq_setup,
    .queue_setup = m_queue_setup,
    .notify = m_notify,
    .config_read = m_config_read,
};
