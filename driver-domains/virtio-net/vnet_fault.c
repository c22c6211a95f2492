/* virtio-net: device faults on request (dd_fault_hook; kinds in
 * moat/platform_abi.h). Each one is what a buggy or hostile driver would
 * do to its device; the device model and the supervisor must contain it. */
#include "vnet.h"

/* Private RAM: in no DMA window of any domain. */
#define WILD_PRIVATE_IOVA 0x200000ull

/* One transmit descriptor of len bytes at iova, published and kicked. */
static bool post_tx(struct vnet *v, uint64_t iova, uint32_t len)
{
    struct vq_seg s = { .addr = iova, .len = len };
    if (vq_add(&v->txq.vq, &s, 1, VNET_BUFS_MAX) < 0)
        return false;
    vq_publish(&v->txq.vq);
    v->ops->notify(&v->tp, v->txq.vq.qidx);
    return true;
}

static bool vnet_fault(void *ctx, uint32_t kind, uint64_t arg)
{
    struct vnet *v = ctx;
    uint64_t win, size;
    switch (kind) {
    case MOAT_FAULT_WILD_DMA_PRIVATE:
        return post_tx(v, WILD_PRIVATE_IOVA, 1514);
    case MOAT_FAULT_WILD_DMA_OTHER:
        return post_tx(v, arg, 1514);
    case MOAT_FAULT_WILD_DMA_END:
        /* Starts in the window, runs 64 bytes past its end. */
        if (!dd_dma_window(0, &win, &size))
            return false;
        return post_tx(v, win + size - 64, 128);
    case MOAT_FAULT_CORRUPT_DEVICE: {
        /* A frame of our own in flight, then the avail index jumps by more
         * than the ring holds. */
        static const uint8_t frame[64] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
        vnet_tx(v, frame, sizeof frame);
        vq_avail_idx_force(&v->txq.vq, (uint16_t)(v->txq.vq.avail_pub + v->txq.vq.size + 3u));
        v->ops->notify(&v->tp, v->txq.vq.qidx);
        return true;
    }
    case MOAT_FAULT_EXIT_DMA: {
        /* Frames of our own in flight, then leave without waiting. */
        static const uint8_t frame[64] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
        for (int i = 0; i < 16 && vnet_tx(v, frame, sizeof frame); i++) {
        }
        vnet_tx_flush(v);
        dd_exit(1);
    }
    default:
        return false;
    }
}

void vnet_fault_hook(struct vnet *v)
{
    dd_fault_hook(vnet_fault, v, MOAT_FAULTS_DRIVER);
}
