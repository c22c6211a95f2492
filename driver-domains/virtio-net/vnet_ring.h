/*
 * vnet_ring.h — the driver side of one split virtqueue (virtio 1.2 §2.7):
 * where the descriptor table, driver (avail) and device (used) areas sit
 * for the modern and legacy transports, a free-descriptor list, adding
 * chains, publishing the avail index once per batch, the notification
 * decision (EVENT_IDX avail_event, or VIRTQ_USED_F_NO_NOTIFY), harvesting
 * used elements, and interrupt suppression (EVENT_IDX used_event, or
 * VIRTQ_AVAIL_F_NO_INTERRUPT). No device access, no allocation: the caller
 * hands in the ring memory and the private arrays, so the host unit test
 * (harness/unit/test_vnet_driver.c) runs this file as is.
 *
 * Ownership: the avail index, avail ring, descriptors and used_event are
 * written only here; the used ring, used index and avail_event only by the
 * device. Every cursor that matters (next avail index, last published
 * index, last used index seen, free list, what each chain posted) lives in
 * private memory; the device only ever learns values from us.
 *
 * Error policy: used elements come from the device, which may be real
 * hardware in bare boot: vq_pop checks each one and reports what is wrong
 * (enum vq_verdict) without changing any state; the caller fails loudly.
 * Caller mistakes (bad sizes, missing arrays) are reported by return
 * value. All indices are free-running 16-bit counters (they wrap).
 */
#ifndef VNET_RING_H
#define VNET_RING_H

#include <stdbool.h>
#include <stdint.h>
#include "moat/virtio_regs.h"

/* Where the three parts of a queue of `size` entries sit in one
 * allocation, relative to its (page-aligned) start. */
struct vq_layout {
    uint64_t desc_off, avail_off, used_off;
    uint64_t bytes;             /* the whole allocation */
};

/* Layout for size (a power of two up to VIRTQ_SIZE_MAX). legacy: the
 * single-PFN layout of §2.7.2 (descriptors, avail ring, used ring at the
 * next 4096 boundary, total rounded to 4096: virtq_legacy_*). Modern: the
 * parts only need 16/2/4-byte alignment; the used area starts on its own
 * 64-byte line so the device's writes never share a cache line with ours.
 * False when size is invalid. */
bool vq_layout(uint32_t size, bool legacy, struct vq_layout *out);

/* One buffer of a chain: device-readable (write false) or -writable. */
struct vq_seg {
    uint64_t addr;              /* IOVA */
    uint32_t len;
    bool write;
};

/* What the driver posted at one chain head (private). */
struct vq_head {
    uint32_t token;             /* the caller's: returned by vq_pop */
    uint32_t wlen;              /* device-writable bytes in the chain */
    uint16_t ndesc;             /* descriptors in the chain; 0 = not a posted head */
};

struct vq {
    uint16_t qidx;              /* the queue's index (for logs) */
    uint16_t size;              /* entries, a power of two (32768 fits) */
    uint16_t mask;              /* size - 1 */
    bool event_idx;             /* VIRTIO_RING_F_EVENT_IDX negotiated */

    /* device-visible (in the ring allocation) */
    struct virtq_desc *desc;    /* [size] */
    volatile uint16_t *avail;   /* flags, idx, ring[size], used_event */
    const volatile uint8_t *used; /* flags, idx, ring[size] of 8 bytes, avail_event */

    /* private */
    uint16_t *next;             /* [size] free-list and chain links */
    struct vq_head *head;       /* [size] */
    uint16_t free_head;         /* first free descriptor */
    uint16_t num_free;          /* descriptors on the free list */
    uint16_t outstanding;       /* chains posted (published or not), not yet used */
    uint16_t avail_idx;         /* next avail index to fill (private shadow) */
    uint16_t avail_pub;         /* avail index last published */
    uint16_t last_used;         /* next used index to harvest */
    uint16_t avail_flags;       /* shadow of avail->flags */
    bool irq_on;                /* interrupts requested (vq_irq_enable) */
};

/* Set q up over ring memory laid out as l (from vq_layout with the same
 * size) and the private arrays next[size], heads[size]. The ring memory
 * must be zeroed (a fresh DMA allocation): indices start at 0, interrupts
 * requested (the device's default; call vq_irq_disable to suppress).
 * False when size is invalid or an array is missing. */
bool vq_init(struct vq *q, uint16_t qidx, uint32_t size, bool event_idx, void *ring,
             const struct vq_layout *l, uint16_t *next, struct vq_head *heads);

/* Add a chain of n buffers (device-readable ones first, then writable,
 * as §2.7.4 requires), carrying token, to the avail ring without
 * publishing it. Returns the head descriptor, or -1 when fewer than n
 * descriptors are free, n is 0, or a readable segment follows a
 * writable one. */
int vq_add(struct vq *q, const struct vq_seg *segs, unsigned n, uint32_t token);

/* Chains added since the last vq_publish. */
static inline uint16_t vq_unpublished(const struct vq *q)
{
    return (uint16_t)(q->avail_idx - q->avail_pub);
}

/* Publish every chain added since the last call with one store of the
 * avail index (after a write barrier), then decide whether the device must
 * be notified: with EVENT_IDX when the index moved past the device's
 * avail_event (virtq_need_event; the 16-bit wrap is part of it), otherwise
 * unless the device set VIRTQ_USED_F_NO_NOTIFY. A full barrier separates
 * the index store from those loads, or both sides could skip the
 * notification. False (and nothing written) when nothing was added. */
bool vq_publish(struct vq *q);
/* Fault injection only: publish avail index idx in place of the real one
 * and carry on counting from it, as a driver with a corrupted index would
 * (the device must refuse an index that moved more than the ring holds). */
void vq_avail_idx_force(struct vq *q, uint16_t idx);

/* A used element, checked. */
struct vq_used {
    uint32_t token;             /* what vq_add was given */
    uint32_t len;               /* bytes the device wrote; 0 for chains
                                 * without writable buffers */
    uint32_t id, raw_len;       /* as the device wrote them (diagnostics) */
    uint16_t idx;               /* the used index they came from */
};

enum vq_verdict {
    VQ_OK = 0,
    VQ_EMPTY,                   /* nothing new in the used ring */
    VQ_BAD_USED_IDX,            /* used idx moved past more chains than are out */
    VQ_BAD_ID,                  /* id >= queue size */
    VQ_STALE_ID,                /* id is not the head of an outstanding chain */
    VQ_BAD_LEN,                 /* len > the writable bytes posted */
    VQ_VERDICTS
};
const char *vq_verdict_name(enum vq_verdict v);

/* Take the next used element: on VQ_OK fill *out, return the chain's
 * descriptors to the free list and advance. Chains that posted no
 * writable buffer report len 0 whatever the device wrote (legacy devices
 * are known to write junk there: §2.7.8, legacy note). On any other verdict
 * nothing changes; out->id/raw_len/idx describe the offending element
 * (VQ_BAD_USED_IDX: out->idx is the device's used idx). */
enum vq_verdict vq_pop(struct vq *q, struct vq_used *out);

/* Ask the device not to interrupt for this queue: with EVENT_IDX,
 * used_event = last_used - 1 (the device only interrupts when its used idx
 * crosses that value, which it cannot do while it stays within 32768 of
 * last_used); otherwise VIRTQ_AVAIL_F_NO_INTERRUPT (a hint the device may
 * ignore). Stores only; call it at the start of every busy pass so a
 * long busy period cannot drift past the 16-bit wrap. */
void vq_irq_disable(struct vq *q);

/* Ask for an interrupt once `after` (>= 1) more chains are used (with
 * EVENT_IDX: used_event = last_used + after - 1; without it any used
 * chain interrupts: the flag is cleared). Then, behind a full barrier,
 * re-check the used ring: returns true when the condition is already met
 * (the device may have passed used_event before it saw the store), in
 * which case no interrupt can be relied on and the caller must keep
 * polling. */
bool vq_irq_enable(struct vq *q, uint16_t after);

/* Used index as the device last wrote it (a volatile read). */
uint16_t vq_used_idx(const struct vq *q);
/* avail_event as the device last wrote it (EVENT_IDX). */
uint16_t vq_avail_event(const struct vq *q);
/* used->flags as the device last wrote it. */
uint16_t vq_used_flags(const struct vq *q);

#endif /* VNET_RING_H */
