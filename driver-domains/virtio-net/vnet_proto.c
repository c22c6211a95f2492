/* Pure virtio-net protocol decisions (contract in vnet_proto.h). */
#include "vnet_proto.h"
#include "dd.h"                 /* memcpy (libc's on the host) */

const char *vnet_negotiate(uint64_t offered, bool modern, const struct vnet_wants *w,
                           uint64_t *accepted)
{
    *accepted = 0;
    if (!modern)
        offered &= 0xFFFFFFFFull;   /* the legacy feature word is 32 bits */
    if (modern && !(offered & VIRTIO_BIT(VIRTIO_F_VERSION_1)))
        return "the modern device does not offer VIRTIO_F_VERSION_1";
    if (!(offered & VIRTIO_BIT(VIRTIO_NET_F_MAC)))
        return "the device offers no MAC address (VIRTIO_NET_F_MAC)";
    uint64_t want = VIRTIO_BIT(VIRTIO_NET_F_MAC);
    if (modern)
        want |= VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_F_ACCESS_PLATFORM);
    else
        want |= VIRTIO_BIT(VIRTIO_F_ANY_LAYOUT);
    if (w->status)
        want |= VIRTIO_BIT(VIRTIO_NET_F_STATUS);
    if (w->event_idx)
        want |= VIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX);
    if (w->mrg_rxbuf)
        want |= VIRTIO_BIT(VIRTIO_NET_F_MRG_RXBUF);
    *accepted = offered & want;
    return NULL;
}

const char *vnet_rx_bad_name(enum vnet_rx_bad b)
{
    switch (b) {
    case VNET_RX_OK:          return "ok";
    case VNET_RX_SHORT:       return "shorter than header + Ethernet header";
    case VNET_RX_LONG:        return "longer than 1514 bytes";
    case VNET_RX_NUM_BUFFERS: return "impossible num_buffers";
    case VNET_RX_BADS:        break;
    }
    return "?";
}

static enum vnet_rx_result drop(struct vnet_rx_asm *a, enum vnet_rx_bad b, enum vnet_rx_bad *why)
{
    *why = b;
    a->len = 0;
    a->left = 0;
    a->bad = VNET_RX_OK;
    return VNET_RX_DROP;
}

enum vnet_rx_result vnet_rx_take(struct vnet_rx_asm *a, uint32_t hdr_len, bool mrg,
                                 uint32_t max_bufs, const uint8_t *data, uint32_t len,
                                 const uint8_t **frame, uint32_t *flen, enum vnet_rx_bad *why)
{
    *why = VNET_RX_OK;
    if (a->left == 0) {
        /* The first buffer of a frame: the header, then frame bytes. */
        if (len < hdr_len)
            return drop(a, VNET_RX_SHORT, why);
        uint32_t nb = 1, n = len - hdr_len;
        if (mrg) {
            nb = (uint32_t)data[VIRTIO_NET_HDR_NUM_BUFFERS] |
                 (uint32_t)data[VIRTIO_NET_HDR_NUM_BUFFERS + 1u] << 8;
            /* A bound we can trust: never more buffers than we posted.
             * Past it the following buffers cannot be told apart from
             * new frames; they will be counted as they fail. */
            if (nb == 0 || nb > max_bufs)
                return drop(a, VNET_RX_NUM_BUFFERS, why);
        }
        if (nb == 1) {
            if (n < ETH_HDR_LEN)
                return drop(a, VNET_RX_SHORT, why);
            if (n > ETH_FRAME_MAX)
                return drop(a, VNET_RX_LONG, why);
            *frame = data + hdr_len;
            *flen = n;
            return VNET_RX_FRAME;
        }
        a->left = (uint16_t)(nb - 1u);
        a->len = 0;
        a->bad = VNET_RX_OK;
        if (n > ETH_FRAME_MAX)
            a->bad = VNET_RX_LONG;  /* keep consuming its buffers */
        else {
            memcpy(a->buf, data + hdr_len, n);
            a->len = n;
        }
        return VNET_RX_MORE;
    }
    /* A continuation buffer: frame bytes only. */
    a->left--;
    if (a->bad == VNET_RX_OK) {
        if (len > ETH_FRAME_MAX - a->len)
            a->bad = VNET_RX_LONG;
        else {
            memcpy(a->buf + a->len, data, len);
            a->len += len;
        }
    }
    if (a->left)
        return VNET_RX_MORE;
    if (a->bad == VNET_RX_OK && a->len < ETH_HDR_LEN)
        a->bad = VNET_RX_SHORT;
    if (a->bad != VNET_RX_OK)
        return drop(a, a->bad, why);
    *frame = a->buf;
    *flen = a->len;
    a->len = 0;
    return VNET_RX_FRAME;
}
