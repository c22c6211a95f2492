/*
 * moat/ring.h — a single-producer single-consumer ring of fixed-size entries
 * in memory shared by two mutually distrusting sides (a client and a driver
 * domain). Used by capability sessions: one ring per direction.
 *
 * Layout (little-endian, at the start of the shared mapping):
 *   [0, 64)    producer line: prod (entries published, free-running) and
 *              prod_event (producer: "kick me when cons passes this")
 *   [64, 128)  consumer line: cons (entries consumed, free-running) and
 *              cons_event (consumer: "kick me when prod passes this")
 *   [128, 192) geometry written once by the creator: magic, version,
 *              entries (a power of two), entry_size (a multiple of 8)
 *   [192, ...) entries * entry_size bytes
 * Each index has exactly one writer. Indices are free-running uint32_t and
 * taken modulo entries, so wrap-around needs no special case.
 *
 * Trust: neither side trusts the other. Each keeps its own index and the
 * geometry privately (agreed out of band, checked against the header at
 * attach) and validates every index it reads from the peer: a producer
 * claiming more than `entries` outstanding, or a consumer claiming to have
 * consumed entries never published, is corruption. Corruption is latched:
 * every later call on that side fails with MOAT_RING_ECORRUPT, the caller
 * reports it and tears the session down. The ring never looks inside
 * entries; their contents are the protocol's to validate.
 *
 * Notifications (like virtio EVENT_IDX): publish/consume say whether the
 * peer asked to be kicked for the range just passed. To sleep, a side asks
 * to be kicked (arm), then checks again, and sleeps only if still idle.
 * Freestanding (no libc): builds in the guest kernel and on the host.
 */
#ifndef MOAT_RING_H
#define MOAT_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MOAT_RING_MAGIC     0x474e4952u     /* "RING" */
#define MOAT_RING_VERSION   1u
#define MOAT_RING_HDR_SIZE  192u
#define MOAT_RING_MAX_ENTRIES (1u << 16)
#define MOAT_RING_MAX_ENTRY_SIZE 4096u

struct moat_ring_shared {
    uint32_t prod, prod_event;
    uint8_t pad0[56];
    uint32_t cons, cons_event;
    uint8_t pad1[56];
    uint32_t magic, version, entries, entry_size;
    uint8_t pad2[48];
};
_Static_assert(sizeof(struct moat_ring_shared) == MOAT_RING_HDR_SIZE, "ring header is ABI");
_Static_assert(offsetof(struct moat_ring_shared, cons) == 64, "consumer owns the second line");
_Static_assert(offsetof(struct moat_ring_shared, magic) == 128, "geometry on the third line");

enum moat_ring_err {
    MOAT_RING_OK = 0,
    MOAT_RING_EINVAL = 1,       /* bad geometry or argument (caller's bug) */
    MOAT_RING_ECORRUPT = 2,     /* the peer wrote an impossible index; latched */
};

enum moat_ring_role { MOAT_RING_PRODUCER, MOAT_RING_CONSUMER };

/* One side's private view. Never place it in shared memory. */
struct moat_ring {
    struct moat_ring_shared *sh;
    uint8_t *slots;
    uint32_t entries, mask, entry_size;
    uint32_t idx;               /* prod (producer) or cons (consumer), private */
    enum moat_ring_role role;
    bool broken;                /* corruption seen: every call fails */
};

/* Bytes of shared memory a ring of this geometry needs (0 if invalid). */
size_t moat_ring_bytes(uint32_t entries, uint32_t entry_size);
/* Creator (the VMM): write the header into zeroed mem of len bytes. */
enum moat_ring_err moat_ring_format(void *mem, size_t len, uint32_t entries,
                                    uint32_t entry_size);
/* Attach one side. The geometry is what that side expects; the header must
 * agree, and this side's own index must be where a fresh ring has it (0) —
 * otherwise EINVAL. The peer may already have moved (a client can publish
 * before the domain attaches); its index is checked at every use. */
enum moat_ring_err moat_ring_attach(struct moat_ring *r, void *mem, size_t len,
                                    uint32_t entries, uint32_t entry_size,
                                    enum moat_ring_role role);

/* Producer: free slots in *n. */
enum moat_ring_err moat_ring_space(struct moat_ring *r, uint32_t *n);
/* Producer: the i-th free slot (i < space) to fill before publishing. */
void *moat_ring_slot(struct moat_ring *r, uint32_t i);
/* Producer: make n filled slots visible (n <= space); *kick says whether
 * the consumer asked to be notified for them. */
enum moat_ring_err moat_ring_publish(struct moat_ring *r, uint32_t n, bool *kick);

/* Consumer: entries ready in *n. */
enum moat_ring_err moat_ring_avail(struct moat_ring *r, uint32_t *n);
/* Consumer: the i-th ready entry (i < avail). Copy it out before use: the
 * producer can still write it. */
const void *moat_ring_peek(struct moat_ring *r, uint32_t i);
/* Consumer: release n entries (n <= avail); *kick says whether the
 * producer asked to be notified when space frees. */
enum moat_ring_err moat_ring_consume(struct moat_ring *r, uint32_t n, bool *kick);

/* Ask the peer for a kick at its next publish (consumer) or consume
 * (producer), then look again: true means still idle (safe to sleep until
 * kicked), false means work arrived meanwhile (do not sleep). */
bool moat_ring_arm(struct moat_ring *r);

#endif /* MOAT_RING_H */
