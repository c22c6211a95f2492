/*
 * virtq.h — the device side of a split virtqueue (virtio 1.2 §2.7), pure:
 * it reaches the driver's memory only through a map callback the caller
 * supplies (the device model passes pci_dma_map, unit tests plain heap
 * memory), so every ring and buffer access is checked by whoever owns
 * that memory.
 *
 * Layouts: modern (three separate areas: descriptor table, driver area
 * with the avail ring, device area with the used ring) and legacy (one
 * base address, the areas at 0, 16 N and virtq_legacy_used_off(N)).
 *
 * Use: configure (virtq_setup / virtq_setup_legacy), set the negotiated
 * features, then per batch of work: virtq_open (maps the three areas),
 * any number of virtq_pop / virtq_push, virtq_flush (publishes the used
 * index and says whether the driver wants an interrupt), virtq_close.
 * Never keep a queue open across a sleep: the owner of the memory may be
 * waiting for the mappings to end (broker revocation).
 *
 * Cursors are private: last_avail (next avail entry to take) and used_idx
 * (next used entry to write) live here, never re-read from shared memory.
 * Every 16-bit index is free-running and compared modulo 2^16.
 *
 * Hostile input: everything read from the rings is copied into locals,
 * then validated; a malformed chain is an error the caller maps to its
 * device's failure mode (DEVICE_NEEDS_RESET, a stopped queue). Nothing in
 * here asserts on guest data.
 *
 * Error policy: functions return enum virtq_err; VIRTQ_OK and VIRTQ_EMPTY
 * are not errors. On any error nothing stays mapped by the failed call
 * and the cursors did not move.
 *
 * Threads: a struct virtq is not locked; its owner serialises calls.
 */
#ifndef MOAT_VIRTQ_H
#define MOAT_VIRTQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "broker.h"
#include "moat/virtio_regs.h"

/* Segments one chain may have. A longer (but otherwise valid) chain is
 * VIRTQ_ERR_TOO_MANY: virtio-net never needs more (a 1526-byte frame in
 * 64 pieces is already absurd). */
#define VIRTQ_CHAIN_SEGS 64u

enum virtq_err {
    VIRTQ_OK = 0,
    VIRTQ_EMPTY,            /* no available chain (not an error) */
    VIRTQ_ERR_NOT_READY,    /* queue not configured, or not open (caller bug) */
    VIRTQ_ERR_CONFIG,       /* size not a power of two <= 32768, area misaligned */
    VIRTQ_ERR_AVAIL_IDX,    /* avail idx moved more than the size past last_avail */
    VIRTQ_ERR_HEAD,         /* head index (avail ring, or a pushed id) >= size */
    VIRTQ_ERR_NEXT,         /* next index >= size (or >= the indirect table) */
    VIRTQ_ERR_LOOP,         /* chain longer than the queue / indirect table */
    VIRTQ_ERR_TOO_MANY,     /* more than VIRTQ_CHAIN_SEGS segments */
    VIRTQ_ERR_INDIRECT,     /* INDIRECT not negotiated, nested, with NEXT, or a
                             * table length that is 0, not a multiple of 16 or
                             * more entries than the queue size */
    VIRTQ_ERR_ZERO_LEN,     /* a buffer of length 0 */
    VIRTQ_ERR_DIRECTION,    /* device-writable buffer in a device-readable chain
                             * or the reverse */
    VIRTQ_ERR_DMA,          /* the map callback refused a ring, table or buffer */
    VIRTQ_ERR_PUSH,         /* push with no chain in flight (caller bug) */
};

/* "ok", "avail-idx", ... for logs. */
const char *virtq_err_name(enum virtq_err e);

/* What a chain must be: the device only reads it (transmit) or only
 * writes it (receive). */
enum virtq_dir { VIRTQ_DEVICE_READS, VIRTQ_DEVICE_WRITES };

/* What virtq_flush decided about the used-buffer notification. */
enum virtq_irq {
    VIRTQ_IRQ_NONE,         /* nothing new was published */
    VIRTQ_IRQ_SEND,         /* the driver wants an interrupt */
    VIRTQ_IRQ_SUPPRESSED,   /* published, but used_event / NO_INTERRUPT say no */
};

/* How the queue reaches the driver's memory. map returns a host pointer
 * to len bytes at iova (write: the device will write them) and fills m,
 * or NULL when refused; unmap ends one mapping. */
struct virtq_mem {
    void *(*map)(void *ctx, uint64_t iova, uint64_t len, bool write, struct dma_mapping *m);
    void (*unmap)(void *ctx, struct dma_mapping *m);
    void *ctx;
};

struct virtq_seg {
    uint8_t *host;
    uint32_t len;
    struct dma_mapping map;
};

/* One popped chain: its head (the id to push back) and its buffers, all
 * mapped until virtq_chain_release. */
struct virtq_chain {
    uint16_t head;
    uint32_t n;
    uint64_t bytes;         /* sum of the segment lengths */
    struct virtq_seg seg[VIRTQ_CHAIN_SEGS];
};

struct virtq {
    const struct virtq_mem *mem;
    /* configuration */
    uint32_t size;          /* entries, 0 = not configured */
    uint64_t desc, avail, used;     /* IOVAs of the three areas */
    bool event_idx;         /* VIRTIO_RING_F_EVENT_IDX negotiated */
    bool indirect;          /* VIRTIO_RING_F_INDIRECT_DESC negotiated */
    /* private cursors */
    uint16_t last_avail;    /* next avail ring entry to take */
    uint16_t used_idx;      /* next used ring entry to write */
    uint16_t flushed;       /* used idx last published */
    /* while open */
    bool open;
    const uint8_t *dt;      /* descriptor table */
    uint8_t *av;            /* driver area */
    uint8_t *us;            /* device area */
    struct dma_mapping m_dt, m_av, m_us;
};

/* A blank, unconfigured queue reaching memory through mem. */
void virtq_init(struct virtq *q, const struct virtq_mem *mem);
/* Forget the configuration and cursors (the queue must be closed). */
void virtq_reset(struct virtq *q);
/* Modern layout: size entries (power of two, 1..32768), descriptor table
 * at desc (16-byte aligned), driver area at avail (2-byte aligned), device
 * area at used (4-byte aligned). Cursors start at 0. Nothing is mapped
 * yet. VIRTQ_ERR_CONFIG leaves the queue unconfigured. */
enum virtq_err virtq_setup(struct virtq *q, uint32_t size, uint64_t desc, uint64_t avail,
                           uint64_t used);
/* Legacy layout: everything from base (4096-aligned). */
enum virtq_err virtq_setup_legacy(struct virtq *q, uint32_t size, uint64_t base);
/* Negotiated ring features; set before the first open. */
void virtq_set_features(struct virtq *q, bool event_idx, bool indirect);
static inline bool virtq_configured(const struct virtq *q) { return q->size != 0; }

/* Map the three areas for a batch of work (the avail and used areas with
 * their EVENT_IDX trailers only when EVENT_IDX is on). VIRTQ_ERR_DMA when
 * any is refused (nothing stays mapped). */
enum virtq_err virtq_open(struct virtq *q);
/* End the batch: unmap the areas (chains must have been released). */
void virtq_close(struct virtq *q);

/* Does the avail ring hold a chain we have not taken (open queue)? A
 * corrupt avail idx counts as work: virtq_pop reports it. */
bool virtq_has_avail(struct virtq *q);
/* Take the next available chain: validate every descriptor, check each
 * buffer's direction against dir, map every buffer through the callback.
 * VIRTQ_OK: c holds the chain, last_avail moved on. VIRTQ_EMPTY: nothing
 * available. Any error: nothing mapped, last_avail unchanged. */
enum virtq_err virtq_pop(struct virtq *q, enum virtq_dir dir, struct virtq_chain *c);
/* Unmap a popped chain's buffers (its head is still owed to the driver
 * until pushed). */
void virtq_chain_release(struct virtq *q, struct virtq_chain *c);
/* Give back the last n popped chains not yet pushed (they will be popped
 * again). False, nothing changed, when fewer than n are in flight. */
bool virtq_rewind(struct virtq *q, uint16_t n);
/* Copy up to len bytes of the chain's data from byte off into dst /
 * from src into the chain at byte off. Return the bytes copied. */
size_t virtq_chain_read(const struct virtq_chain *c, uint64_t off, void *dst, size_t len);
size_t virtq_chain_write(struct virtq_chain *c, uint64_t off, const void *src, size_t len);

/* Write a used element (id head, len bytes written) into the next used
 * slot, unpublished. VIRTQ_ERR_HEAD when head >= size, VIRTQ_ERR_PUSH
 * when no chain is in flight. */
enum virtq_err virtq_push(struct virtq *q, uint16_t head, uint32_t len);
/* Publish the used index (release: the elements are visible first), then
 * decide the used-buffer notification: with EVENT_IDX, interrupt when the
 * index passed used_event since the previous flush (virtq_need_event);
 * without, unless the driver set VIRTQ_AVAIL_F_NO_INTERRUPT. */
enum virtq_irq virtq_flush(struct virtq *q);
/* Driver-to-device notifications (kicks). Off while the device polls:
 * without EVENT_IDX sets VIRTQ_USED_F_NO_NOTIFY; with EVENT_IDX leaves
 * avail_event behind. On before sleeping: clears the flag or writes
 * avail_event = last_avail, then (full barrier) re-reads the avail idx and
 * returns true when chains arrived meanwhile (do not sleep then). */
bool virtq_kick_enable(struct virtq *q, bool on);

#endif /* MOAT_VIRTQ_H */
