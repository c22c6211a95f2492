/* SPSC ring over shared memory between distrusting sides (contract in
 * moat/ring.h). Freestanding: only compiler atomics, no libc. */
#include "moat/ring.h"

/* Indices are published with release stores and read with acquire loads:
 * an entry's bytes are visible before the index that covers them, and a
 * slot is not reused before the index that frees it has been read. */
static uint32_t load_acquire(const uint32_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static void store_release(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static uint32_t load_relaxed(const uint32_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
static void store_relaxed(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
/* Store-then-load ordering (our index or event, then the peer's): without
 * a full fence both sides could miss each other's update and sleep. */
static void full_fence(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

static bool geometry_ok(uint32_t entries, uint32_t entry_size)
{
    return entries >= 2 && entries <= MOAT_RING_MAX_ENTRIES && !(entries & (entries - 1)) &&
           entry_size >= 8 && entry_size <= MOAT_RING_MAX_ENTRY_SIZE && entry_size % 8 == 0;
}

size_t moat_ring_bytes(uint32_t entries, uint32_t entry_size)
{
    return geometry_ok(entries, entry_size)
               ? MOAT_RING_HDR_SIZE + (size_t)entries * entry_size : 0;
}

enum moat_ring_err moat_ring_format(void *mem, size_t len, uint32_t entries, uint32_t entry_size)
{
    size_t need = moat_ring_bytes(entries, entry_size);
    if (!mem || !need || len < need)
        return MOAT_RING_EINVAL;
    struct moat_ring_shared *sh = mem;
    store_relaxed(&sh->prod, 0);
    store_relaxed(&sh->prod_event, 0);
    store_relaxed(&sh->cons, 0);
    store_relaxed(&sh->cons_event, 0);
    sh->entries = entries;
    sh->entry_size = entry_size;
    sh->version = MOAT_RING_VERSION;
    store_release(&sh->magic, MOAT_RING_MAGIC);
    return MOAT_RING_OK;
}

enum moat_ring_err moat_ring_attach(struct moat_ring *r, void *mem, size_t len,
                                    uint32_t entries, uint32_t entry_size,
                                    enum moat_ring_role role)
{
    size_t need = moat_ring_bytes(entries, entry_size);
    struct moat_ring_shared *sh = mem;
    r->broken = true;
    if (!mem || !need || len < need || load_acquire(&sh->magic) != MOAT_RING_MAGIC ||
        sh->version != MOAT_RING_VERSION || sh->entries != entries ||
        sh->entry_size != entry_size ||
        load_relaxed(role == MOAT_RING_PRODUCER ? &sh->prod : &sh->cons) != 0)
        return MOAT_RING_EINVAL;
    r->sh = sh;
    r->slots = (uint8_t *)mem + MOAT_RING_HDR_SIZE;
    r->entries = entries;
    r->mask = entries - 1;
    r->entry_size = entry_size;
    r->idx = 0;
    r->role = role;
    r->broken = false;
    return MOAT_RING_OK;
}

/* Entries the producer has outstanding, per the consumer's index. */
static enum moat_ring_err outstanding(struct moat_ring *r, uint32_t *used)
{
    if (r->broken || r->role != MOAT_RING_PRODUCER)
        return r->broken ? MOAT_RING_ECORRUPT : MOAT_RING_EINVAL;
    uint32_t u = r->idx - load_acquire(&r->sh->cons);
    if (u > r->entries) {       /* consumed what was never published */
        r->broken = true;
        return MOAT_RING_ECORRUPT;
    }
    *used = u;
    return MOAT_RING_OK;
}

enum moat_ring_err moat_ring_space(struct moat_ring *r, uint32_t *n)
{
    uint32_t used = 0;
    enum moat_ring_err e = outstanding(r, &used);
    *n = e == MOAT_RING_OK ? r->entries - used : 0;
    return e;
}

void *moat_ring_slot(struct moat_ring *r, uint32_t i)
{
    return r->slots + (size_t)((r->idx + i) & r->mask) * r->entry_size;
}

/* Did the peer ask for a kick at an index in (old, new]? (virtio's
 * vring_need_event, on 32-bit free-running indices.) */
static bool need_kick(uint32_t event, uint32_t new_idx, uint32_t old_idx)
{
    return (uint32_t)(new_idx - event - 1) < (uint32_t)(new_idx - old_idx);
}

/* Move our index n entries on (n <= room, which the caller just read),
 * publish it in *shared_idx, and say whether the peer's event asked for a
 * kick in the range passed. */
static enum moat_ring_err advance(struct moat_ring *r, uint32_t n, uint32_t room,
                                  uint32_t *shared_idx, const uint32_t *peer_event, bool *kick)
{
    if (n > room)
        return MOAT_RING_EINVAL;
    uint32_t old = r->idx;
    r->idx += n;
    store_release(shared_idx, r->idx);
    full_fence();
    *kick = n && need_kick(load_relaxed(peer_event), r->idx, old);
    return MOAT_RING_OK;
}

enum moat_ring_err moat_ring_publish(struct moat_ring *r, uint32_t n, bool *kick)
{
    *kick = false;
    uint32_t space = 0;
    enum moat_ring_err e = moat_ring_space(r, &space);
    return e != MOAT_RING_OK ? e : advance(r, n, space, &r->sh->prod, &r->sh->cons_event, kick);
}

enum moat_ring_err moat_ring_avail(struct moat_ring *r, uint32_t *n)
{
    *n = 0;
    if (r->broken || r->role != MOAT_RING_CONSUMER)
        return r->broken ? MOAT_RING_ECORRUPT : MOAT_RING_EINVAL;
    uint32_t a = load_acquire(&r->sh->prod) - r->idx;
    if (a > r->entries) {       /* published more than the ring holds */
        r->broken = true;
        return MOAT_RING_ECORRUPT;
    }
    *n = a;
    return MOAT_RING_OK;
}

const void *moat_ring_peek(struct moat_ring *r, uint32_t i)
{
    return r->slots + (size_t)((r->idx + i) & r->mask) * r->entry_size;
}

enum moat_ring_err moat_ring_consume(struct moat_ring *r, uint32_t n, bool *kick)
{
    *kick = false;
    uint32_t avail = 0;
    enum moat_ring_err e = moat_ring_avail(r, &avail);
    return e != MOAT_RING_OK ? e : advance(r, n, avail, &r->sh->cons, &r->sh->prod_event, kick);
}

bool moat_ring_arm(struct moat_ring *r)
{
    uint32_t n = 0;
    if (r->role == MOAT_RING_CONSUMER) {
        store_relaxed(&r->sh->cons_event, r->idx);  /* kick me at the next entry */
        full_fence();
        return moat_ring_avail(r, &n) == MOAT_RING_OK && n == 0;
    }
    uint32_t used = 0;
    if (outstanding(r, &used) != MOAT_RING_OK)
        return false;
    /* Kick me when the consumer passes the index it is at now. */
    store_relaxed(&r->sh->prod_event, r->idx - used);
    full_fence();
    return moat_ring_space(r, &n) == MOAT_RING_OK && n == 0;
}
