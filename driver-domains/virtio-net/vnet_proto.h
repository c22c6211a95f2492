/*
 * vnet_proto.h — pure virtio-net protocol decisions of the driver: feature
 * negotiation, the header layout that follows from it, and reassembly of
 * received frames from one or more buffers (VIRTIO_NET_F_MRG_RXBUF). No
 * device access, no allocation: unit-tested on the host as is
 * (harness/unit/test_vnet_driver.c).
 *
 * Error policy: received data is device input and never trusted; what is
 * wrong with a frame is reported (enum vnet_rx_bad) for the caller to
 * count, and the frame is dropped.
 */
#ifndef VNET_PROTO_H
#define VNET_PROTO_H

#include <stdbool.h>
#include <stdint.h>
#include "moat/virtio_regs.h"

/* Optional features the driver takes when the device offers them. */
struct vnet_wants {
    bool status;                /* VIRTIO_NET_F_STATUS: link state */
    bool event_idx;             /* VIRTIO_RING_F_EVENT_IDX */
    bool mrg_rxbuf;             /* VIRTIO_NET_F_MRG_RXBUF */
};

/* Decide the driver features from what the device offers. modern: the
 * 1.x transport (VERSION_1 required; ACCESS_PLATFORM taken when offered,
 * since every address we give is a device address); legacy: 32-bit
 * features only, ANY_LAYOUT taken when offered. MAC is required. Never
 * taken: RING_PACKED, INDIRECT_DESC, CTRL_VQ, offloads. Returns NULL and
 * *accepted, or the reason the device cannot be driven (*accepted = 0). */
const char *vnet_negotiate(uint64_t offered, bool modern, const struct vnet_wants *w,
                           uint64_t *accepted);

/* Legacy without ANY_LAYOUT (§5.1.6.6 legacy interface): the header must
 * sit in a descriptor of its own, the frame in the following ones. */
static inline bool vnet_split_header(uint64_t features)
{
    return !(features & (VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_F_ANY_LAYOUT)));
}

/* Why a received frame was dropped. */
enum vnet_rx_bad {
    VNET_RX_OK = 0,
    VNET_RX_SHORT,              /* buffer shorter than the header, or frame < 14 bytes */
    VNET_RX_LONG,               /* frame longer than ETH_FRAME_MAX */
    VNET_RX_NUM_BUFFERS,        /* num_buffers 0 or more than buffers posted */
    VNET_RX_BADS
};
const char *vnet_rx_bad_name(enum vnet_rx_bad b);

/* A frame being reassembled from several buffers (private memory). */
struct vnet_rx_asm {
    uint8_t *buf;               /* [ETH_FRAME_MAX] */
    uint32_t len;               /* frame bytes gathered so far */
    uint16_t left;              /* buffers of this frame still to come */
    enum vnet_rx_bad bad;       /* the frame in progress is dropped for this */
};

enum vnet_rx_result {
    VNET_RX_MORE,               /* buffer consumed, the frame continues */
    VNET_RX_FRAME,              /* *frame / *flen: a whole frame (14..1514 bytes) */
    VNET_RX_DROP,               /* a whole frame dropped, *why says why */
};

/* Feed one used receive buffer (data, len bytes the device wrote) in used
 * order. hdr_len from virtio_net_hdr_len; mrg when MRG_RXBUF was
 * negotiated (then the first buffer's header says how many buffers the
 * frame spans, at most max_bufs). A single-buffer frame is returned in
 * place (*frame points into data); a merged one is copied into a->buf.
 * The buffer may be reused as soon as this returns unless the result is
 * VNET_RX_FRAME with *frame inside data. */
enum vnet_rx_result vnet_rx_take(struct vnet_rx_asm *a, uint32_t hdr_len, bool mrg,
                                 uint32_t max_bufs, const uint8_t *data, uint32_t len,
                                 const uint8_t **frame, uint32_t *flen, enum vnet_rx_bad *why);

#endif /* VNET_PROTO_H */
