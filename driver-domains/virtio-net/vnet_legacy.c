/* The legacy virtio 0.9 PCI transport: one I/O BAR0 register block
 * (contract in vnet_transport.h; virtio 1.2 §4.1.4.8 and §2.7.2 legacy
 * interfaces). This is the shape GCE presents: 1af4:1000, INTx, no MSI-X,
 * device-fixed queue sizes (4096 there). */
#include "vnet_transport.h"
#include "moat/pci_regs.h"


static uint8_t r8(struct vnet_tp *t, uint32_t off) { return dd_io_read8(t->io, off); }
static uint16_t r16(struct vnet_tp *t, uint32_t off) { return dd_io_read16(t->io, off); }
static uint32_t r32(struct vnet_tp *t, uint32_t off) { return dd_io_read32(t->io, off); }
static void w8(struct vnet_tp *t, uint32_t off, uint8_t v) { dd_io_write8(t->io, off, v); }
static void w16(struct vnet_tp *t, uint32_t off, uint16_t v) { dd_io_write16(t->io, off, v); }
static void w32(struct vnet_tp *t, uint32_t off, uint32_t v) { dd_io_write32(t->io, off, v); }

const char *vnet_legacy_probe(struct vnet_tp *t, struct dd_dev *dev)
{
    t->dev = dev;
    t->io = dd_bar(dev, 0);
    if (!t->io || !dd_bar_is_io(t->io))
        return "BAR0 is not an I/O BAR";
    /* The device configuration follows the common block at 0x14 only while
     * MSI-X is off (with it on, 0x18). We use INTx, so make sure it is off. */
    uint32_t cap = dd_cap_find(dev, PCI_CAP_ID_MSIX, 0);
    if (cap) {
        uint16_t ctrl = dd_cfg_read16(dev, cap + PCI_MSIX_CTRL);
        if (ctrl & PCI_MSIX_CTRL_ENABLE)
            dd_cfg_write16(dev, cap + PCI_MSIX_CTRL, (uint16_t)(ctrl & ~PCI_MSIX_CTRL_ENABLE));
    }
    t->cfg_off = VIRTIO_LEGACY_CONFIG;
    if (dd_bar_size(t->io) < t->cfg_off + VIRTIO_NET_CFG_STATUS)
        return "the I/O BAR is too small for the register block and the MAC";
    t->ops = &vnet_legacy_ops;
    return NULL;
}

static uint8_t l_status_get(struct vnet_tp *t) { return r8(t, VIRTIO_LEGACY_STATUS); }
static void l_status_set(struct vnet_tp *t, uint8_t s) { w8(t, VIRTIO_LEGACY_STATUS, s); }

static uint64_t l_features_get(struct vnet_tp *t) { return r32(t, VIRTIO_LEGACY_HOST_FEATURES); }

static void l_features_set(struct vnet_tp *t, uint64_t f)
{
    w32(t, VIRTIO_LEGACY_GUEST_FEATURES, (uint32_t)f);
}

static const char *l_features_ok(struct vnet_tp *t)
{
    (void)t;                    /* no FEATURES_OK before 1.0 */
    return NULL;
}

/* INTx: reading ISR tells the cause, clears it and lowers the line; only
 * then may the line be unmasked. One port read per interrupt. */
static void l_intx(void *ctx)
{
    struct vnet_tp *t = ctx;
    uint8_t isr = r8(t, VIRTIO_LEGACY_ISR);
    t->isr_reads++;
    if ((isr & VIRTIO_ISR_CONFIG) && t->on_config)
        t->on_config(t->hook_ctx);
    if ((isr & VIRTIO_ISR_QUEUE) && t->on_queue)
        t->on_queue(t->hook_ctx);
    dd_irq_ack(t->irq[0]);
}

static const char *l_irq_setup(struct vnet_tp *t, dd_irq_fn on_config, dd_irq_fn on_queue,
                               void *ctx)
{
    t->on_config = on_config;
    t->on_queue = on_queue;
    t->hook_ctx = ctx;
    t->msix = false;
    t->vec_config = t->vec_queue[0] = t->vec_queue[1] = VIRTIO_MSI_NO_VECTOR;
    t->irq[0] = dd_irq_intx(t->dev, l_intx, t);
    return NULL;
}

static const char *l_queue_setup(struct vnet_tp *t, uint16_t qidx, uint32_t want, bool event_idx,
                                 struct vnet_vq *out)
{
    (void)want;                 /* the device decides */
    w16(t, VIRTIO_LEGACY_QUEUE_SEL, qidx);
    uint32_t size = r16(t, VIRTIO_LEGACY_QUEUE_NUM);
    if (!virtq_size_valid(size)) {
        dd_log("virtio-net: legacy queue %u has device-fixed size %u", qidx, size);
        return size == 0 ? "the device has no such queue (size 0)"
                         : "the device-fixed queue size is not a power of two up to 32768";
    }
    if (r32(t, VIRTIO_LEGACY_QUEUE_PFN) != 0)
        return "the queue is in use already after reset (PFN set)";
    const char *err = vnet_vq_alloc(out, qidx, size, true, event_idx);
    if (err)
        return err;
    uint64_t pfn = out->mem.iova >> VIRTIO_LEGACY_PFN_SHIFT;
    if (pfn > UINT32_MAX)
        return "the ring lies above what a 32-bit queue PFN can address";
    w32(t, VIRTIO_LEGACY_QUEUE_PFN, (uint32_t)pfn);
    /* Not compared with what we wrote: in bare boot the monitor points the
     * device at its shadow ring (DESIGN §5.5), so only "taken" is checked. */
    if (r32(t, VIRTIO_LEGACY_QUEUE_PFN) == 0)
        return "the device did not take the queue PFN";
    return NULL;
}

static void l_notify(struct vnet_tp *t, uint16_t qidx) { w16(t, VIRTIO_LEGACY_QUEUE_NOTIFY, qidx); }

static void l_config_read(struct vnet_tp *t, bool with_status, struct vnet_config *out)
{
    /* No generation counter before 1.0: the MAC does not change anyway. */
    for (uint32_t i = 0; i < 6; i++)
        out->mac[i] = r8(t, t->cfg_off + VIRTIO_NET_CFG_MAC + i);
    out->status = VIRTIO_NET_S_LINK_UP;
    if (with_status && dd_bar_size(t->io) >= t->cfg_off + VIRTIO_NET_CFG_STATUS + 2u)
        out->status = r16(t, t->cfg_off + VIRTIO_NET_CFG_STATUS);
}

const struct vnet_transport_ops vnet_legacy_ops = {
    .name = "legacy",
    .modern = false,
    .status_get = l_status_get,
    .status_set = l_status_set,
    .features_get = l_features_get,
    .features_set = l_features_set,
    .features_ok = l_features_ok,
    .irq_setup = l_irq_setup,
    .queue_setup = l_queue_setup,
    .notify = l_notify,
    .config_read = l_config_read,
};
