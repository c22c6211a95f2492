/*
 * fuzz_virtq — the device side of split virtqueues (devmodel/virtq.c):
 * the modern layout (virtq_setup: separate descriptor table, driver and
 * device areas; EVENT_IDX and INDIRECT_DESC) and the legacy single-PFN
 * layout (virtq_setup_legacy), over a fake guest memory the input fills.
 *
 * Fake memory: MEM_SIZE bytes at guest address MEM_BASE in one heap block
 * (ASan: nothing outside it may be touched), mapped by a callback like
 * harness/unit/test_virtq.c's, which refuses anything outside the memory
 * and anything overlapping a hole the input chooses.
 *
 * Input:
 *   hole offset u16, hole length u16       the refused hole
 *   layout u8: bit 0 legacy, bit 1 EVENT_IDX, bit 2 INDIRECT, bit 3 raw
 *     (unaligned / out-of-memory) addresses, bits 4..7 log2(size) (a
 *     following u16 replaces the size when bit 3 is set)
 *   addresses: legacy: page u8; modern: desc, avail, used offsets (u16
 *     each; u64 raw addresses when bit 3)
 *   then ops until the input ends, each an opcode byte (op % OP_COUNT)
 *   with its operands (see the switch in LLVMFuzzerTestOneInput): poke
 *   bytes, write a descriptor (main table or anywhere), add an avail
 *   entry, set the avail idx / flags / used_event, pop (either direction),
 *   chain read / write at input offsets, release, push, rewind, flush,
 *   kick_enable, has_avail, close / reopen, set up again, write a run of
 *   linked descriptors (long chains, big indirect tables).
 *
 * Checks beyond the sanitizers (abort() on violation):
 *   - every mapping made is unmapped exactly once, and at the end of the
 *     input nothing is mapped; the map callback never sees a zero length;
 *   - a pop for a device-readable chain makes no writable mapping and a
 *     pop for a device-writable chain maps every buffer writable;
 *   - the device never changes a byte of guest memory that was never
 *     mapped writable (a shadow copy is compared after every op);
 *   - a chain's segments are live mappings inside the memory, bytes is
 *     their sum; chain read / write copy exactly min(len, bytes - off)
 *     bytes (0 past the end), never more;
 *   - a failed pop leaves no new mapping, an empty chain, the cursor
 *     unmoved and the queue open; a successful one moves the cursor by
 *     one, returns head < size, and the error matches the avail idx
 *     distance (EMPTY / AVAIL_IDX) and the head (HEAD);
 *   - push, rewind, flush and kick_enable match a model of the cursors:
 *     push errors (NOT_READY, HEAD, PUSH), rewind refusal, the used idx
 *     published by flush and its interrupt decision (EVENT_IDX and
 *     NO_INTERRUPT), kick_enable's "chains arrived" answer;
 *   - setup accepts exactly the valid sizes and alignments.
 *
 * Seeds (harness/fuzz/corpus/fuzz_virtq/): a modern queue with a direct
 * TX chain popped, read, pushed and flushed; the same with an indirect
 * table and EVENT_IDX; an RX chain written; a legacy queue with two
 * chains, rewind and reopen.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fuzz_input.h"
#include "virtq.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MEM_BASE   0x100000ull
#define MEM_SIZE   0x10000u         /* 64 KiB */
#define MAPS_MAX   16384u
#define CHAINS     4u

enum {
    OP_POKE, OP_DESC, OP_AVAIL_PUT, OP_AVAIL_IDX, OP_DRV_FLAGS, OP_POP,
    OP_READ, OP_WRITE, OP_RELEASE, OP_PUSH, OP_REWIND, OP_FLUSH, OP_KICK,
    OP_HAS_AVAIL, OP_CLOSE_OPEN, OP_RESETUP, OP_CHAIN, OP_COUNT
};

struct live_map {
    bool live;
    bool write;
    uint64_t iova, len;
};

static uint8_t *mem;                /* the guest memory */
static uint8_t *shadow;             /* what the memory should hold */
static uint8_t *writable;           /* bytes ever mapped writable */
static uint64_t hole_lo, hole_hi;
static struct live_map maps[MAPS_MAX];
static uint32_t nmaps, live;
static int pop_dir = -1;            /* direction of the pop under way, -1 none */

static struct virtq q;
static struct virtq_chain chains[CHAINS];
static bool chain_held[CHAINS];
static enum virtq_dir chain_dir[CHAINS];

/* The model of the cursors. */
static uint16_t m_last_avail, m_used_idx, m_flushed;
static bool m_open;

#define fail() FZ_FAIL("see the line")

static void *mem_at(uint64_t iova, uint64_t len)
{
    if (iova < MEM_BASE || iova - MEM_BASE > MEM_SIZE || len > MEM_SIZE - (iova - MEM_BASE))
        return NULL;
    return mem + (iova - MEM_BASE);
}

/* Driver-side writes: into the memory and its shadow. */
static void drv_write(uint64_t iova, const void *src, uint64_t len)
{
    uint8_t *p = mem_at(iova, len);
    if (!p)
        return;
    memcpy(p, src, len);
    memcpy(shadow + (p - mem), src, len);
}

static void drv_w16(uint64_t iova, uint16_t v) { drv_write(iova, &v, 2); }

static uint16_t drv_r16(uint64_t iova)
{
    uint16_t v = 0;
    const uint8_t *p = mem_at(iova, 2);
    if (p)
        memcpy(&v, p, 2);
    return v;
}

static void *f_map(void *ctx, uint64_t iova, uint64_t len, bool write, struct dma_mapping *m)
{
    (void)ctx;
    memset(m, 0, sizeof *m);
    if (len == 0)
        fail();                     /* virtq never maps an empty range */
    if (pop_dir == VIRTQ_DEVICE_READS && write)
        fail();                     /* a TX pop must not map anything writable */
    uint8_t *p = mem_at(iova, len);
    if (!p || (hole_lo < hole_hi && iova < hole_hi && hole_lo < iova + len))
        return NULL;
    if (nmaps == MAPS_MAX)
        return NULL;                /* the harness's limit, looks like a refusal */
    maps[nmaps] = (struct live_map){ .live = true, .write = write, .iova = iova, .len = len };
    m->iova = iova;
    m->len = len;
    m->host = p;
    m->generation = nmaps + 1;      /* our id of this mapping */
    nmaps++;
    live++;
    if (write)
        memset(writable + (p - mem), 1, len);
    return p;
}

static void f_unmap(void *ctx, struct dma_mapping *m)
{
    (void)ctx;
    uint32_t id = m->generation;
    if (id == 0 || id > nmaps || !maps[id - 1].live || maps[id - 1].iova != m->iova ||
        maps[id - 1].len != m->len || m->host != mem + (m->iova - MEM_BASE))
        fail();                     /* unmap of something never mapped, or twice */
    maps[id - 1].live = false;
    live--;
}

static const struct virtq_mem f_mem = { .map = f_map, .unmap = f_unmap, .ctx = NULL };

/* The device changed only bytes it had mapped writable. */
static void check_memory(void)
{
    if (memcmp(mem, shadow, MEM_SIZE) == 0)
        return;
    for (uint32_t i = 0; i < MEM_SIZE; i++) {
        if (mem[i] != shadow[i]) {
            if (!writable[i])
                fail();
            shadow[i] = mem[i];
        }
    }
}

static void check_chain(const struct virtq_chain *c, enum virtq_dir dir)
{
    uint64_t sum = 0;
    if (c->n == 0 || c->n > VIRTQ_CHAIN_SEGS || c->head >= q.size)
        fail();
    for (uint32_t i = 0; i < c->n; i++) {
        const struct virtq_seg *s = &c->seg[i];
        uint32_t id = s->map.generation;
        if (s->len == 0 || id == 0 || id > nmaps || !maps[id - 1].live ||
            maps[id - 1].len != s->len || s->host != mem_at(maps[id - 1].iova, s->len) ||
            maps[id - 1].write != (dir == VIRTQ_DEVICE_WRITES))
            fail();
        sum += s->len;
    }
    if (sum != c->bytes)
        fail();
}

static void release_chain(unsigned k)
{
    if (!chain_held[k])
        return;
    uint32_t before = live, n = chains[k].n;
    virtq_chain_release(&q, &chains[k]);
    if (chains[k].n != 0 || live != before - n)
        fail();
    chain_held[k] = false;
}

static void release_all(void)
{
    for (unsigned k = 0; k < CHAINS; k++)
        release_chain(k);
}

static void do_close(void)
{
    release_all();
    virtq_close(&q);
    if (live != 0 || q.open)
        fail();
    m_open = false;
}

static void do_open(void)
{
    if (!q.size || m_open)
        return;
    uint32_t before = live;
    enum virtq_err e = virtq_open(&q);
    if (e == VIRTQ_OK) {
        if (!q.open || live != before + 3)
            fail();
        m_open = true;
    } else if (e != VIRTQ_ERR_DMA || q.open || live != before) {
        fail();
    }
}

/* Configure from the input; on success the queue is open if it can be. */
static void do_setup(struct fz *f)
{
    uint8_t lay = fz_u8(f);
    bool legacy = lay & 1, ev = lay & 2, ind = lay & 4, raw = lay & 8;
    uint32_t size = 1u << ((lay >> 4) % 16u);
    if (raw)
        size = fz_u16(f);
    bool size_ok = size && size <= 32768u && !(size & (size - 1u));
    enum virtq_err e;
    bool ok;
    if (legacy) {
        uint64_t base = raw ? fz_u64(f) : MEM_BASE + (uint64_t)(fz_u8(f) % 16u) * 4096u;
        e = virtq_setup_legacy(&q, size, base);
        ok = size_ok && base % 4096u == 0;
    } else {
        uint64_t d, a, u;
        if (raw) {
            d = fz_u64(f);
            a = fz_u64(f);
            u = fz_u64(f);
        } else {
            d = MEM_BASE + (fz_u16(f) & ~15u);
            a = MEM_BASE + (fz_u16(f) & ~1u);
            u = MEM_BASE + (fz_u16(f) & ~3u);
        }
        e = virtq_setup(&q, size, d, a, u);
        ok = size_ok && d % 16u == 0 && a % 2u == 0 && u % 4u == 0;
    }
    if ((e == VIRTQ_OK) != ok || (e != VIRTQ_OK && e != VIRTQ_ERR_CONFIG) ||
        virtq_configured(&q) != ok || q.open)
        fail();
    virtq_set_features(&q, ev, ind);
    m_last_avail = m_used_idx = m_flushed = 0;
    do_open();
}

static void do_pop(struct fz *f)
{
    unsigned k = fz_u8(f) % CHAINS;
    enum virtq_dir dir = fz_u8(f) & 1 ? VIRTQ_DEVICE_WRITES : VIRTQ_DEVICE_READS;
    release_chain(k);
    struct virtq_chain *c = &chains[k];
    uint32_t before = live;
    /* What the header promises from the avail ring alone. */
    uint16_t idx = 0, pending = 0, head = 0;
    if (m_open) {
        idx = drv_r16(q.avail + VIRTQ_AVAIL_IDX);
        pending = (uint16_t)(idx - m_last_avail);
        head = drv_r16(q.avail + VIRTQ_AVAIL_RING(m_last_avail & (q.size - 1u)));
    }
    pop_dir = (int)dir;
    enum virtq_err e = virtq_pop(&q, dir, c);
    pop_dir = -1;
    if (!m_open) {
        if (e != VIRTQ_ERR_NOT_READY)
            fail();
    } else if (pending == 0) {
        if (e != VIRTQ_EMPTY)
            fail();
    } else if (pending > q.size) {
        if (e != VIRTQ_ERR_AVAIL_IDX)
            fail();
    } else if (head >= q.size) {
        if (e != VIRTQ_ERR_HEAD)
            fail();
    }
    if (e == VIRTQ_OK) {
        if (c->head != head || q.last_avail != (uint16_t)(m_last_avail + 1u) ||
            live != before + c->n)
            fail();
        check_chain(c, dir);
        chain_held[k] = true;
        chain_dir[k] = dir;
        m_last_avail++;
    } else {
        if (c->n != 0 || c->bytes != 0 || live != before || q.last_avail != m_last_avail ||
            q.open != m_open)
            fail();
        (void)virtq_err_name(e);
    }
}

static void do_copy(struct fz *f, bool write)
{
    unsigned k = fz_u8(f) % CHAINS;
    uint64_t off = fz_u8(f) & 0x80 ? fz_u64(f) : fz_u16(f);
    size_t len = fz_u16(f) % 4097u;
    static uint8_t buf[4096 + 64];
    /* The device writes only chains it popped as device-writable. */
    if (!chain_held[k] || (write && chain_dir[k] != VIRTQ_DEVICE_WRITES))
        return;
    struct virtq_chain *c = &chains[k];
    size_t want = off >= c->bytes ? 0 : (c->bytes - off < len ? (size_t)(c->bytes - off) : len);
    /* Guard bytes past len must survive a read. */
    memset(buf, 0xa5, sizeof buf);
    size_t got;
    if (write) {
        fz_bytes(f, buf, len);
        got = virtq_chain_write(c, off, buf, len);
    } else {
        got = virtq_chain_read(c, off, buf, len);
        for (size_t i = len; i < sizeof buf; i++)
            if (buf[i] != 0xa5)
                fail();
    }
    if (got != want)
        fail();
}

static void do_push(struct fz *f)
{
    uint8_t sel = fz_u8(f);
    uint16_t head = sel & 0x80 ? fz_u16(f) : (chain_held[sel % CHAINS] ? chains[sel % CHAINS].head : 0);
    uint32_t len = fz_u32(f);
    enum virtq_err e = virtq_push(&q, head, len);
    enum virtq_err want = !m_open ? VIRTQ_ERR_NOT_READY
                        : head >= q.size ? VIRTQ_ERR_HEAD
                        : m_used_idx == m_last_avail ? VIRTQ_ERR_PUSH : VIRTQ_OK;
    if (e != want)
        fail();
    if (e == VIRTQ_OK) {
        struct virtq_used_elem el;
        const void *p = mem_at(q.used + VIRTQ_USED_RING(m_used_idx & (q.size - 1u)), sizeof el);
        if (!p)
            fail();                 /* the used area was mapped, so it is in memory */
        memcpy(&el, p, sizeof el);
        if (el.id != head || el.len != len)
            fail();
        m_used_idx++;
    }
    if (q.used_idx != m_used_idx)
        fail();
}

static void do_flush(void)
{
    uint16_t old = m_flushed;
    enum virtq_irq irq = virtq_flush(&q);
    /* Read after the flush: the driver may have laid the areas over each
     * other, and flush reads them after publishing the used idx. */
    uint16_t flags = 0, used_event = 0;
    if (m_open) {
        flags = drv_r16(q.avail + VIRTQ_AVAIL_FLAGS);
        used_event = drv_r16(q.avail + VIRTQ_USED_EVENT(q.size));
    }
    if (!m_open || m_used_idx == old) {
        if (irq != VIRTQ_IRQ_NONE)
            fail();
        return;
    }
    m_flushed = m_used_idx;
    if (drv_r16(q.used + VIRTQ_USED_IDX) != m_used_idx)
        fail();
    bool want = q.event_idx ? virtq_need_event(used_event, m_used_idx, old)
                            : !(flags & VIRTQ_AVAIL_F_NO_INTERRUPT);
    if (irq != (want ? VIRTQ_IRQ_SEND : VIRTQ_IRQ_SUPPRESSED))
        fail();
}

static void do_kick(struct fz *f)
{
    bool on = fz_u8(f) & 1;
    bool r = virtq_kick_enable(&q, on);
    bool want = m_open && on && drv_r16(q.avail + VIRTQ_AVAIL_IDX) != m_last_avail;
    if (r != want)
        fail();
    if (m_open && on && q.event_idx && drv_r16(q.used + VIRTQ_AVAIL_EVENT(q.size)) != m_last_avail)
        fail();
    if (m_open && !q.event_idx &&
        drv_r16(q.used + VIRTQ_USED_FLAGS) != (on ? 0 : VIRTQ_USED_F_NO_NOTIFY))
        fail();
}

static void do_desc(struct fz *f)
{
    uint8_t sel = fz_u8(f);
    uint64_t at;
    if (sel & 1) {
        if (!q.size)
            return;
        at = q.desc + 16ull * (fz_u16(f) % q.size);
    } else {
        at = MEM_BASE + (fz_u16(f) & ~15u);         /* an indirect table, anywhere */
    }
    struct virtq_desc d;
    d.addr = sel & 2 ? fz_u64(f) : MEM_BASE + fz_u16(f);
    d.len = sel & 4 ? fz_u32(f) : fz_u16(f) % 2048u;
    d.flags = fz_u8(f) & 7u;
    d.next = sel & 8 ? fz_u16(f) : fz_u8(f);
    drv_write(at, &d, sizeof d);
}

/* A run of n linked descriptors (i -> i + 1, the last without NEXT) over
 * consecutive buffers: long chains and big indirect tables in a few bytes. */
static void do_chain(struct fz *f)
{
    uint8_t sel = fz_u8(f);
    uint64_t table;
    uint32_t first = 0, entries;
    if (sel & 1) {
        if (!q.size)
            return;
        table = q.desc;
        entries = q.size;
        first = fz_u16(f) % q.size;
    } else {
        table = MEM_BASE + (fz_u16(f) & ~15u);
        entries = MEM_SIZE / 16u;
    }
    uint32_t n = fz_u8(f) + 1u;
    uint64_t addr = MEM_BASE + fz_u16(f);
    uint32_t len = fz_u8(f) + 1u;
    uint16_t flags = fz_u8(f) & VIRTQ_DESC_F_WRITE;
    for (uint32_t i = 0; i < n && first + i < entries; i++) {
        bool last = i + 1 == n || first + i + 1 == entries;
        struct virtq_desc d = {
            .addr = addr + (uint64_t)i * len, .len = len,
            .flags = (uint16_t)(flags | (last ? 0 : VIRTQ_DESC_F_NEXT)),
            .next = (uint16_t)(first + i + 1),
        };
        drv_write(table + 16ull * (first + i), &d, sizeof d);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!mem) {
        mem = malloc(MEM_SIZE);
        shadow = malloc(MEM_SIZE);
        writable = malloc(MEM_SIZE);
        if (!mem || !shadow || !writable)
            abort();
    }
    memset(mem, 0, MEM_SIZE);
    memset(shadow, 0, MEM_SIZE);
    memset(writable, 0, MEM_SIZE);
    memset(chain_held, 0, sizeof chain_held);
    nmaps = live = 0;
    m_open = false;
    virtq_init(&q, &f_mem);

    struct fz f = fz_init(data, size);
    hole_lo = MEM_BASE + fz_u16(&f);
    hole_hi = hole_lo + fz_u16(&f);
    do_setup(&f);

    uint16_t drv_avail = 0;         /* the driver's avail idx */
    for (unsigned ops = 0; fz_left(&f) && ops < 256; ops++) {
        switch (fz_u8(&f) % OP_COUNT) {
        case OP_POKE: {
            uint16_t off = fz_u16(&f);
            uint8_t buf[256];
            size_t n = fz_u8(&f);
            fz_bytes(&f, buf, n);
            if (off + n > MEM_SIZE)
                n = MEM_SIZE - off;
            drv_write(MEM_BASE + off, buf, n);
            break;
        }
        case OP_DESC:
            do_desc(&f);
            break;
        case OP_AVAIL_PUT: {
            uint16_t head = fz_u16(&f);
            if (q.size) {
                drv_w16(q.avail + VIRTQ_AVAIL_RING(drv_avail & (q.size - 1u)), head);
                drv_avail++;
                drv_w16(q.avail + VIRTQ_AVAIL_IDX, drv_avail);
            }
            break;
        }
        case OP_AVAIL_IDX:
            drv_avail = fz_u16(&f);
            if (q.size)
                drv_w16(q.avail + VIRTQ_AVAIL_IDX, drv_avail);
            break;
        case OP_DRV_FLAGS: {
            uint16_t flags = fz_u16(&f), ev = fz_u16(&f);
            if (q.size) {
                drv_w16(q.avail + VIRTQ_AVAIL_FLAGS, flags);
                drv_w16(q.avail + VIRTQ_USED_EVENT(q.size), ev);
            }
            break;
        }
        case OP_POP:
            do_pop(&f);
            break;
        case OP_READ:
            do_copy(&f, false);
            break;
        case OP_WRITE:
            do_copy(&f, true);
            break;
        case OP_RELEASE:
            release_chain(fz_u8(&f) % CHAINS);
            break;
        case OP_PUSH:
            do_push(&f);
            break;
        case OP_REWIND: {
            uint16_t n = fz_u8(&f) & 0x80 ? fz_u16(&f) : fz_u8(&f) % 4u;
            bool ok = virtq_rewind(&q, n);
            bool want = n <= (uint16_t)(m_last_avail - m_used_idx);
            if (ok != want)
                fail();
            if (ok)
                m_last_avail = (uint16_t)(m_last_avail - n);
            if (q.last_avail != m_last_avail)
                fail();
            break;
        }
        case OP_FLUSH:
            do_flush();
            break;
        case OP_KICK:
            do_kick(&f);
            break;
        case OP_HAS_AVAIL: {
            bool want = m_open && drv_r16(q.avail + VIRTQ_AVAIL_IDX) != m_last_avail;
            if (virtq_has_avail(&q) != want)
                fail();
            break;
        }
        case OP_CLOSE_OPEN:
            if (m_open)
                do_close();
            else
                do_open();
            break;
        case OP_RESETUP:
            do_close();
            do_setup(&f);
            drv_avail = drv_r16(q.avail + VIRTQ_AVAIL_IDX);
            break;
        case OP_CHAIN:
            do_chain(&f);
            break;
        default:
            break;
        }
        check_memory();
        if (q.open != m_open || q.last_avail != m_last_avail || q.used_idx != m_used_idx)
            fail();
    }
    do_close();
    if (live != 0)
        fail();
    return 0;
}
