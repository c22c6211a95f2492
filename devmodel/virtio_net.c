/* virtio-net device model: options, creation, lifecycle, interrupts and
 * the failure policy for malformed queues (contract in virtio_net.h;
 * register files in virtio_net_pci.c, data path in virtio_net_io.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include "devopts.h"
#include "log.h"
#include "virtio_net_internal.h"

static const struct pci_device_ops vnet_ops;

/* ---- interrupts (virtio 1.2 §4.1.4.5, §4.1.5.4) --------------------------- */

static bool msix_on(struct vnet *v)
{
    /* The enable bit is config space, written by the vCPU under irq_lock. */
    pthread_mutex_lock(&v->f->bus->irq_lock);
    bool on = pci_msix_enabled(v->f);
    pthread_mutex_unlock(&v->f->bus->irq_lock);
    return on;
}

/* irq_lock held. With MSI-X: the vector the driver chose (none: no
 * interrupt). Without: ISR bit + INTA# (level, until the ISR is read). */
static void irq_send(struct vnet *v, uint16_t vector, uint8_t isr_bit)
{
    if (msix_on(v)) {
        if (vector != VIRTIO_MSI_NO_VECTOR && pci_msix_notify(v->f, vector))
            VNET_COUNT(v, irq_sent);
        return;
    }
    v->isr |= isr_bit;
    pci_intx_set(v->f, true);
    VNET_COUNT(v, irq_sent);
}

void vnet_irq_queue(struct vnet *v, unsigned qi)
{
    pthread_mutex_lock(&v->irq_lock);
    irq_send(v, v->queue_vector[qi], VIRTIO_ISR_QUEUE);
    pthread_mutex_unlock(&v->irq_lock);
}

void vnet_irq_config(struct vnet *v)
{
    pthread_mutex_lock(&v->irq_lock);
    VNET_COUNT(v, config_irqs);
    /* The config bit is set even with MSI-X (§4.1.4.5.1). */
    v->isr |= VIRTIO_ISR_CONFIG;
    irq_send(v, v->config_vector, VIRTIO_ISR_CONFIG);
    pthread_mutex_unlock(&v->irq_lock);
}

uint8_t vnet_isr_read(struct vnet *v)
{
    pthread_mutex_lock(&v->irq_lock);
    uint8_t isr = v->isr;
    v->isr = 0;
    pci_intx_set(v->f, false);
    pthread_mutex_unlock(&v->irq_lock);
    return isr;
}

/* ---- queue state ------------------------------------------------------- */

bool vnet_queue_live(struct vnet *v, unsigned qi)
{
    const struct vnet_queue *q = &v->q[qi];
    return v->ready && !v->quiesced && q->enabled && !atomic_load(&q->stopped) &&
           !atomic_load(&v->needs_reset);
}

void vnet_fail(struct vnet *v, unsigned qi, enum virtq_err e)
{
    switch (e) {
    case VIRTQ_OK:
    case VIRTQ_EMPTY:
        return;
    case VIRTQ_ERR_AVAIL_IDX:
        VNET_COUNT(v, bad_avail_idx);
        break;
    case VIRTQ_ERR_DMA:
        break;      /* counted per refused map (dma_refusals) */
    case VIRTQ_ERR_NOT_READY:
    case VIRTQ_ERR_CONFIG:
    case VIRTQ_ERR_HEAD:
    case VIRTQ_ERR_NEXT:
    case VIRTQ_ERR_LOOP:
    case VIRTQ_ERR_TOO_MANY:
    case VIRTQ_ERR_INDIRECT:
    case VIRTQ_ERR_ZERO_LEN:
    case VIRTQ_ERR_DIRECTION:
    case VIRTQ_ERR_PUSH:
        VNET_COUNT(v, bad_chains);
        break;
    }
    if (v->legacy) {
        if (atomic_exchange(&v->q[qi].stopped, true))
            return;
        VNET_COUNT(v, queue_stopped);
        pci_guest_error(v->f, PCI_GERR_FATAL, qi == VIRTIO_NET_Q_RX ? "receive queue stopped until reset"
                                                      : "transmit queue stopped until reset",
                        qi, (uint64_t)e);
        return;
    }
    if (atomic_exchange(&v->needs_reset, true))
        return;
    VNET_COUNT(v, needs_reset);
    pci_guest_error(v->f, PCI_GERR_FATAL, virtq_err_name(e), qi, (uint64_t)e);
    vnet_irq_config(v);     /* §2.1.2: tell a live driver */
}

void vnet_queue_features(struct vnet *v, unsigned qi)
{
    virtq_set_features(&v->q[qi].vq, v->features & VIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX), false);
}

void vnet_ioeventfd(struct vnet *v, unsigned qi, bool assign)
{
    if (v->legacy) {
        /* One notify port for both queues: attached while any is enabled. */
        bool want = assign || v->q[VIRTIO_NET_Q_RX].enabled || v->q[VIRTIO_NET_Q_TX].enabled;
        if (want == v->legacy_ioeventfd)
            return;
        if (want) {
            v->legacy_ioeventfd = pci_ioeventfd(v->f, VNET_BAR_LEGACY, VIRTIO_LEGACY_QUEUE_NOTIFY,
                                                2, v->efd, true);
        } else {
            pci_ioeventfd(v->f, VNET_BAR_LEGACY, VIRTIO_LEGACY_QUEUE_NOTIFY, 2, v->efd, false);
            v->legacy_ioeventfd = false;
        }
        return;
    }
    struct vnet_queue *q = &v->q[qi];
    uint64_t off = VNET_NOTIFY_OFF + (uint64_t)VNET_NOTIFY_MULT * qi;
    if (assign == q->ioeventfd)
        return;
    if (assign) {
        q->ioeventfd = pci_ioeventfd(v->f, VNET_BAR_MODERN, off, 2, v->efd, true);
    } else {
        pci_ioeventfd(v->f, VNET_BAR_MODERN, off, 2, v->efd, false);
        q->ioeventfd = false;
    }
}

void vnet_device_reset(struct vnet *v)
{
    for (unsigned qi = 0; qi < VNET_NQ; qi++) {
        struct vnet_queue *q = &v->q[qi];
        q->enabled = false;
        vnet_ioeventfd(v, qi, false);
        virtq_reset(&q->vq);
        q->size = (uint16_t)(v->qsize > UINT16_MAX ? 0 : v->qsize);
        q->desc = q->driver = q->device = 0;
        q->pfn = 0;
        atomic_store(&q->stopped, false);
    }
    v->status = 0;
    v->dfselect = v->gfselect = 0;
    v->driver_features = v->features = 0;
    v->unknown_features = false;
    v->queue_select = 0;
    v->ready = false;
    atomic_store(&v->needs_reset, false);
    pthread_mutex_lock(&v->irq_lock);
    v->isr = 0;
    v->config_vector = VIRTIO_MSI_NO_VECTOR;
    for (unsigned qi = 0; qi < VNET_NQ; qi++)
        v->queue_vector[qi] = VIRTIO_MSI_NO_VECTOR;
    if (v->f)
        pci_intx_set(v->f, false);
    pthread_mutex_unlock(&v->irq_lock);
}

void vnet_go_live(struct vnet *v)
{
    v->ready = true;
    for (unsigned qi = 0; qi < VNET_NQ; qi++)
        vnet_queue_features(v, qi);
    if (!vnet_worker_start(v))
        log_error(v->f->bus->domain_name, "%s: cannot start the worker thread: nothing will "
                  "be transmitted", v->f->name);
    vnet_worker_kick(v);
}

/* ---- lifecycle --------------------------------------------------------- */

static void vnet_quiesce(void *dev)
{
    struct vnet *v = dev;
    pthread_mutex_lock(&v->lock);
    vnet_worker_stop(v);
    pthread_mutex_lock(&v->rx_lock);
    v->quiesced = true;     /* the rx callback drops from now on */
    pthread_mutex_unlock(&v->rx_lock);
    pthread_mutex_unlock(&v->lock);
}

static void vnet_reset(void *dev)
{
    struct vnet *v = dev;
    pthread_mutex_lock(&v->lock);
    vnet_worker_stop(v);
    pthread_mutex_lock(&v->rx_lock);
    v->legacy_ioeventfd = false;    /* they belonged to the old VM, gone */
    for (unsigned qi = 0; qi < VNET_NQ; qi++)
        v->q[qi].ioeventfd = false;
    vnet_device_reset(v);
    memcpy(v->mac, v->mac_default, sizeof v->mac);
    v->quiesced = false;
    pthread_mutex_unlock(&v->rx_lock);
    pthread_mutex_unlock(&v->lock);
}

static void vnet_free(struct vnet *v)
{
    if (v->efd >= 0)
        close(v->efd);
    pthread_mutex_destroy(&v->irq_lock);
    pthread_mutex_destroy(&v->rx_lock);
    pthread_mutex_destroy(&v->lock);
    free(v);
}

static void vnet_destroy(void *dev)
{
    struct vnet *v = dev;
    pthread_mutex_lock(&v->lock);
    vnet_worker_stop(v);    /* it may be sending through the port */
    pthread_mutex_unlock(&v->lock);
    netback_port_remove(v->port);   /* returns once no rx callback runs */
    vnet_free(v);
}

static const struct pci_device_ops vnet_ops = {
    .bar_access = vnet_bar_access,
    .bar_moved = vnet_bar_moved,
    .quiesce = vnet_quiesce,
    .reset = vnet_reset,
    .destroy = vnet_destroy,
};

/* ---- options ----------------------------------------------------------- */

struct vnet_opts {
    uint64_t legacy, qsize, event_idx, mrg_rxbuf, status, poll_us;
    bool link_up, mac_set;
    uint8_t mac[6];
};

static bool parse_opts(const char *opts, struct vnet_opts *o, char *err, size_t errlen)
{
    static const char *const known[] = { "legacy", "qsize", "mac", "link", "event_idx",
                                         "mrg_rxbuf", "status", "poll_us", NULL };
    memset(o, 0, sizeof *o);
    if (!devopts_check("virtio-net", opts, known, err, errlen) ||
        !devopts_u64("virtio-net", opts, "legacy", 0, 0, 1, &o->legacy, err, errlen) ||
        !devopts_u64("virtio-net", opts, "qsize", 256, 2, VIRTQ_SIZE_MAX, &o->qsize, err, errlen) ||
        !devopts_u64("virtio-net", opts, "event_idx", 1, 0, 1, &o->event_idx, err, errlen) ||
        !devopts_u64("virtio-net", opts, "mrg_rxbuf", 1, 0, 1, &o->mrg_rxbuf, err, errlen) ||
        !devopts_u64("virtio-net", opts, "status", 1, 0, 1, &o->status, err, errlen) ||
        !devopts_u64("virtio-net", opts, "poll_us", 50, 0, 1000000, &o->poll_us, err, errlen))
        return false;
    if (!virtq_size_valid((uint32_t)o->qsize)) {
        snprintf(err, errlen, "dev=virtio-net: option qsize=%llu: the queue size must be a "
                 "power of two from 2 to 32768", (unsigned long long)o->qsize);
        return false;
    }
    return devopts_link("virtio-net", opts, true, &o->link_up, err, errlen) &&
           devopts_mac("virtio-net", opts, o->mac, &o->mac_set, err, errlen);
}

/* ---- creation ---------------------------------------------------------- */

bool virtio_net_create(struct pci_bus *bus, const char *name, uint32_t gsi, const char *opts,
                       char *err, size_t errlen)
{
    struct vnet_opts o;
    if (!parse_opts(opts, &o, err, errlen))
        return false;
    struct vnet *v = calloc(1, sizeof *v);
    if (!v) {
        snprintf(err, errlen, "dev=virtio-net: out of memory creating %s", name);
        return false;
    }
    pthread_mutex_init(&v->lock, NULL);
    pthread_mutex_init(&v->rx_lock, NULL);
    pthread_mutex_init(&v->irq_lock, NULL);
    v->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (v->efd < 0) {
        snprintf(err, errlen, "dev=virtio-net: cannot create an eventfd for %s: %s", name,
                 strerror(errno));
        vnet_free(v);
        return false;
    }
    vnet_worker_init(v);
    int n = snprintf(v->port_name, sizeof v->port_name, "%s.%s", bus->domain_name, name);
    if (n < 0 || (size_t)n >= sizeof v->port_name) {
        snprintf(err, errlen, "dev=virtio-net: switch port name %s.%s is longer than %u bytes",
                 bus->domain_name, name, NETBACK_PORT_NAME_MAX - 1u);
        vnet_free(v);
        return false;
    }
    v->legacy = o.legacy != 0;
    v->qsize = (uint32_t)o.qsize;
    v->poll_us = (uint32_t)o.poll_us;
    v->offered = VIRTIO_BIT(VIRTIO_NET_F_MAC) |
                 (o.status ? VIRTIO_BIT(VIRTIO_NET_F_STATUS) : 0) |
                 (o.event_idx ? VIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX) : 0) |
                 (o.mrg_rxbuf ? VIRTIO_BIT(VIRTIO_NET_F_MRG_RXBUF) : 0) |
                 (v->legacy ? 0 : VIRTIO_BIT(VIRTIO_F_VERSION_1));
    if (o.mac_set)
        memcpy(v->mac_default, o.mac, 6);
    else
        devopts_default_mac(v->port_name, v->mac_default);
    memcpy(v->mac, v->mac_default, 6);
    v->net_status = o.link_up ? VIRTIO_NET_S_LINK_UP : 0;
    vnet_mem_init(v);
    for (unsigned qi = 0; qi < VNET_NQ; qi++)
        virtq_init(&v->q[qi].vq, &v->mem);
    vnet_device_reset(v);       /* v->f is NULL: touches no platform */

    /* The port first: a name clash must not leave a PCI function behind.
     * Until DRIVER_OK the rx callback drops without touching v->f. */
    struct netback *nb = netback_get();
    char perr[160] = "the network backend could not be created";
    v->port = nb ? netback_port_add(nb, v->port_name, v->mac, vnet_rx, v, perr, sizeof perr)
                 : NULL;
    if (!v->port) {
        snprintf(err, errlen, "cannot add %s to the network switch: %s", name, perr);
        vnet_free(v);
        return false;
    }
    if (!o.link_up)
        netback_port_link(v->port, false);
    struct pci_func *f = pci_func_add(bus, name, VIRTIO_PCI_VENDOR,
                                      v->legacy ? VIRTIO_PCI_DEVICE_NET_LEGACY
                                                : VIRTIO_PCI_DEVICE_NET_MODERN,
                                      VIRTIO_PCI_CLASS_NET, gsi, &vnet_ops, v);
    if (!f) {
        snprintf(err, errlen, "cannot add %s: the PCI bus has no free slot", name);
        netback_port_remove(v->port);
        vnet_free(v);
        return false;
    }
    pthread_mutex_lock(&v->rx_lock);
    v->f = f;
    pthread_mutex_unlock(&v->rx_lock);
    if (!vnet_pci_setup(v)) {
        snprintf(err, errlen, "cannot place %s's BARs and capabilities: the PCI windows or "
                 "configuration space are full", name);
        return false;   /* the bus owns v now and destroys it */
    }
    return true;
}

static struct vnet *vnet_of(const struct pci_func *f)
{
    return f && f->ops == &vnet_ops ? f->dev : NULL;
}

bool virtio_net_stats_get(const struct pci_func *f, struct virtio_net_stats *out)
{
    const struct vnet *v = vnet_of(f);
    if (!v)
        return false;
#define VNET_STAT_COPY(name) out->name = atomic_load_explicit(&v->st.name, memory_order_relaxed);
    VNET_STATS_FIELDS(VNET_STAT_COPY)
#undef VNET_STAT_COPY
    return true;
}

bool virtio_net_set_link(struct pci_func *f, bool up)
{
    struct vnet *v = vnet_of(f);
    if (!v)
        return false;
    pthread_mutex_lock(&v->lock);
    pthread_mutex_lock(&v->rx_lock);
    uint16_t ns = up ? VIRTIO_NET_S_LINK_UP : 0;
    bool changed = ns != v->net_status;
    v->net_status = ns;
    if (changed)
        v->cfg_gen++;       /* §4.1.4.3: the config changed */
    bool irq = changed && v->ready && !v->quiesced &&
               (v->features & VIRTIO_BIT(VIRTIO_NET_F_STATUS));
    pthread_mutex_unlock(&v->rx_lock);
    if (irq)
        vnet_irq_config(v);
    pthread_mutex_unlock(&v->lock);
    netback_port_link(v->port, up);     /* never under our locks */
    return true;
}

bool virtio_net_mac(const struct pci_func *f, uint8_t mac[6])
{
    struct vnet *v = vnet_of(f);
    if (!v)
        return false;
    pthread_mutex_lock(&v->lock);
    memcpy(mac, v->mac, 6);
    pthread_mutex_unlock(&v->lock);
    return true;
}
