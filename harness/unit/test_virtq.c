/* Device side of split virtqueues (devmodel/virtq.c) over plain heap
 * memory: chains and their validation (every malformed case has its own
 * error), directions, indirect tables, 16-bit index wrap, EVENT_IDX and
 * NO_INTERRUPT interrupt decisions, kick suppression, and the legacy
 * single-PFN layout for every power-of-two size 256..32768. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include "virtq.h"

/* ---- fake guest memory --------------------------------------------------- */

#define TM_BASE   0x40000000ull
#define TM_SIZE   (1ull << 20)
#define TM_DESC   (TM_BASE + 0x0000)
#define TM_AVAIL  (TM_BASE + 0x2000)
#define TM_USED   (TM_BASE + 0x4000)
#define TM_ITAB   (TM_BASE + 0x8000)    /* indirect tables */
#define TM_BUF    (TM_BASE + 0x10000)   /* buffers */

struct tmem {
    uint8_t *buf;
    uint64_t size;
    uint64_t refuse_lo, refuse_hi;      /* [lo, hi) refused, like an unmapped hole */
    int maps, live, refused, write_maps;
};

static struct tmem tm;
static struct virtq q;
static uint16_t drv_avail;          /* the driver's avail idx */

static void *tm_map(void *ctx, uint64_t iova, uint64_t len, bool write, struct dma_mapping *m)
{
    struct tmem *t = ctx;
    memset(m, 0, sizeof *m);
    if (len == 0 || iova < TM_BASE || iova - TM_BASE > t->size || len > t->size - (iova - TM_BASE) ||
        (iova < t->refuse_hi && t->refuse_lo < iova + len)) {
        t->refused++;
        return NULL;
    }
    t->maps++;
    t->live++;
    t->write_maps += write;
    m->iova = iova;
    m->len = len;
    m->host = t->buf + (iova - TM_BASE);
    return m->host;
}

static void tm_unmap(void *ctx, struct dma_mapping *m)
{
    struct tmem *t = ctx;
    cr_assert_not_null(m->host, "unmap of a mapping that was never made");
    t->live--;
    m->host = NULL;
}

static const struct virtq_mem tm_ops = { .map = tm_map, .unmap = tm_unmap, .ctx = &tm };

static void *at(uint64_t iova)
{
    cr_assert(iova >= TM_BASE && iova < TM_BASE + tm.size, "test address %#lx outside memory",
              (unsigned long)iova);
    return tm.buf + (iova - TM_BASE);
}

static void mem_init(uint64_t size)
{
    memset(&tm, 0, sizeof tm);
    tm.size = size;
    drv_avail = 0;
    tm.buf = calloc(1, size);
    cr_assert_not_null(tm.buf, "cannot allocate %lu bytes of test memory", (unsigned long)size);
    virtq_init(&q, &tm_ops);
}

static void mem_fini(void)
{
    virtq_close(&q);
    free(tm.buf);
    tm.buf = NULL;
}

/* A modern queue of size entries at the fixed test areas, opened. */
static void q_setup(uint32_t size, bool event_idx, bool indirect)
{
    cr_assert_eq(virtq_setup(&q, size, TM_DESC, TM_AVAIL, TM_USED), VIRTQ_OK,
                 "setup of a valid %u-entry queue failed", size);
    virtq_set_features(&q, event_idx, indirect);
    cr_assert_eq(virtq_open(&q), VIRTQ_OK, "open of a valid queue failed");
}

static void setup_default(void) { mem_init(TM_SIZE); }

TestSuite(virtq, .init = setup_default, .fini = mem_fini);
TestSuite(virtq_legacy, .fini = mem_fini);

/* ---- driver-side helpers ------------------------------------------------- */


static void desc_at(uint64_t table, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
                    uint16_t next)
{
    struct virtq_desc d = { .addr = addr, .len = len, .flags = flags, .next = next };
    memcpy(at(table + 16u * i), &d, sizeof d);
}

static void desc(uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
    desc_at(q.desc, i, addr, len, flags, next);
}

static void avail_set_idx(uint16_t idx)
{
    uint16_t *p = at(q.avail + VIRTQ_AVAIL_IDX);
    *p = idx;
    drv_avail = idx;
}

static void avail_put(uint16_t head)
{
    uint16_t *ring = at(q.avail + VIRTQ_AVAIL_RING(drv_avail & (q.size - 1u)));
    *ring = head;
    avail_set_idx((uint16_t)(drv_avail + 1u));
}

static uint16_t used_idx(void) { return *(uint16_t *)at(q.used + VIRTQ_USED_IDX); }

static struct virtq_used_elem used_at(uint16_t slot)
{
    struct virtq_used_elem e;
    memcpy(&e, at(q.used + VIRTQ_USED_RING(slot)), sizeof e);
    return e;
}

/* Expect pop to fail with want; the cursor must not move, nothing mapped. */
static void expect_pop_err(enum virtq_dir dir, enum virtq_err want, const char *what)
{
    struct virtq_chain c;
    uint16_t before = q.last_avail;
    int live = tm.live;
    enum virtq_err e = virtq_pop(&q, dir, &c);
    cr_assert_eq(e, want, "%s: pop gave '%s', want '%s'", what, virtq_err_name(e),
                 virtq_err_name(want));
    cr_assert_eq(q.last_avail, before, "%s: a failed pop moved last_avail", what);
    cr_assert_eq(tm.live, live, "%s: a failed pop left %d buffers mapped", what, tm.live - live);
}

/* ---- configuration ------------------------------------------------------- */

Test(virtq, setup_checks_size_and_alignment)
{
    struct { uint32_t size; uint64_t d, a, u; const char *what; } bad[] = {
        { 0, TM_DESC, TM_AVAIL, TM_USED, "size 0" },
        { 3, TM_DESC, TM_AVAIL, TM_USED, "size 3 (not a power of two)" },
        { 65536, TM_DESC, TM_AVAIL, TM_USED, "size 65536 (over 32768)" },
        { 256, TM_DESC + 8, TM_AVAIL, TM_USED, "descriptor table 8-byte aligned" },
        { 256, TM_DESC, TM_AVAIL + 1, TM_USED, "driver area odd" },
        { 256, TM_DESC, TM_AVAIL, TM_USED + 2, "device area 2-byte aligned" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        enum virtq_err e = virtq_setup(&q, bad[i].size, bad[i].d, bad[i].a, bad[i].u);
        cr_assert_eq(e, VIRTQ_ERR_CONFIG, "%s: setup gave '%s', want a config error", bad[i].what,
                     virtq_err_name(e));
        cr_assert_not(virtq_configured(&q), "%s: queue configured after a refused setup",
                      bad[i].what);
        cr_assert_eq(virtq_open(&q), VIRTQ_ERR_NOT_READY, "%s: an unconfigured queue opened",
                     bad[i].what);
    }
    cr_assert_eq(virtq_setup(&q, 1, TM_DESC, TM_AVAIL + 2, TM_USED + 4), VIRTQ_OK,
                 "size 1 at minimal alignment refused");
    cr_assert_eq(virtq_setup(&q, 32768, TM_DESC, TM_DESC + 0x80000, TM_DESC + 0x90000), VIRTQ_OK,
                 "size 32768 refused");
    cr_assert_eq(virtq_setup_legacy(&q, 256, TM_BASE + 0x800), VIRTQ_ERR_CONFIG,
                 "legacy base not 4096-aligned accepted");
}

Test(virtq, open_maps_ring_areas_and_refusal_is_dma_error)
{
    cr_assert_eq(virtq_setup(&q, 256, TM_DESC, TM_AVAIL, TM_USED), VIRTQ_OK);
    tm.refuse_lo = TM_USED + 0x100;
    tm.refuse_hi = TM_USED + 0x101;
    cr_assert_eq(virtq_open(&q), VIRTQ_ERR_DMA, "used ring in a refused range: open must fail");
    cr_assert_eq(tm.live, 0, "a failed open left %d areas mapped", tm.live);
    tm.refuse_lo = tm.refuse_hi = 0;
    cr_assert_eq(virtq_open(&q), VIRTQ_OK, "open failed once the range is allowed");
    cr_assert_eq(tm.live, 3, "open maps %d areas, want 3", tm.live);
    cr_assert_eq(tm.write_maps, 1, "only the used area is device-written, got %d write maps",
                 tm.write_maps);
    cr_assert_eq(virtq_open(&q), VIRTQ_ERR_NOT_READY, "a second open of an open queue accepted");
    virtq_close(&q);
    cr_assert_eq(tm.live, 0, "close left %d areas mapped", tm.live);
}

Test(virtq, ring_without_event_idx_trailer_fits_exactly)
{
    /* Without EVENT_IDX the driver need not allocate used_event /
     * avail_event: areas ending exactly at a refused byte still open. */
    cr_assert_eq(virtq_setup(&q, 16, TM_DESC, TM_AVAIL, TM_USED), VIRTQ_OK);
    tm.refuse_lo = TM_USED + 4 + 8 * 16;
    tm.refuse_hi = tm.refuse_lo + 2;
    cr_assert_eq(virtq_open(&q), VIRTQ_OK, "open without EVENT_IDX mapped the avail_event field");
    virtq_close(&q);
    virtq_set_features(&q, true, false);
    cr_assert_eq(virtq_open(&q), VIRTQ_ERR_DMA, "with EVENT_IDX avail_event must be mapped");
}

/* ---- chains -------------------------------------------------------------- */

Test(virtq, empty_queue_pops_nothing)
{
    q_setup(8, false, false);
    struct virtq_chain c;
    cr_assert_eq(virtq_pop(&q, VIRTQ_DEVICE_READS, &c), VIRTQ_EMPTY, "pop of an empty ring");
    cr_assert_not(virtq_has_avail(&q), "empty ring reports work");
}

Test(virtq, tx_chain_of_three_readable_buffers)
{
    q_setup(8, false, false);
    memcpy(at(TM_BUF), "0123456789ab", 12);
    memcpy(at(TM_BUF + 0x100), "header+", 7);
    memcpy(at(TM_BUF + 0x200), "payload", 7);
    desc(5, TM_BUF, 12, VIRTQ_DESC_F_NEXT, 2);
    desc(2, TM_BUF + 0x100, 7, VIRTQ_DESC_F_NEXT, 7);
    desc(7, TM_BUF + 0x200, 7, 0, 0);
    avail_put(5);
    cr_assert(virtq_has_avail(&q), "a published chain is not seen");
    struct virtq_chain c;
    cr_assert_eq(virtq_pop(&q, VIRTQ_DEVICE_READS, &c), VIRTQ_OK, "pop of a valid TX chain");
    cr_assert_eq(c.head, 5, "head %u, want 5", c.head);
    cr_assert_eq(c.n, 3, "%u segments, want 3", c.n);
    cr_assert_eq(c.bytes, 26, "%lu bytes, want 26", (unsigned long)c.bytes);
    cr_assert(c.seg[1].host == at(TM_BUF + 0x100) && c.seg[1].len == 7, "segment 1 wrong");
    char all[32] = "";
    cr_assert_eq(virtq_chain_read(&c, 0, all, sizeof all), 26, "read the whole chain");
    cr_assert(!memcmp(all, "0123456789abheader+payload", 26), "chain data '%.26s'", all);
    char mid[8] = "";
    cr_assert_eq(virtq_chain_read(&c, 10, mid, 5), 5, "read across a segment boundary");
    cr_assert(!memcmp(mid, "abhea", 5), "bytes 10..14 are '%.5s', want 'abhea'", mid);
    cr_assert_eq(virtq_chain_read(&c, 25, mid, 5), 1, "read past the end copies what exists");
    cr_assert_eq(tm.write_maps, 1, "TX buffers were mapped for writing");
    cr_assert_eq(tm.live, 3 + 3, "3 ring areas + 3 buffers mapped, got %d", tm.live);
    virtq_chain_release(&q, &c);
    cr_assert_eq(tm.live, 3, "release left buffers mapped");
    cr_assert_eq(virtq_push(&q, c.head, 0), VIRTQ_OK, "push");
    cr_assert_eq(used_idx(), 0, "push alone must not publish the used idx");
    cr_assert_eq(virtq_flush(&q), VIRTQ_IRQ_SEND, "flush without suppression must interrupt");
    cr_assert_eq(used_idx(), 1, "used idx %u after flush, want 1", used_idx());
    struct virtq_used_elem e = used_at(0);
    cr_assert(e.id == 5 && e.len == 0, "used elem {%u, %u}, want {5, 0}", e.id, e.len);
    cr_assert_eq(virtq_flush(&q), VIRTQ_IRQ_NONE, "a second flush with nothing new");
}

Test(virtq, rx_chain_written_across_segments)
{
    q_setup(4, false, false);
    desc(0, TM_BUF, 4, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
    desc(1, TM_BUF + 0x40, 100, VIRTQ_DESC_F_WRITE, 0);
    avail_put(0);
    struct virtq_chain c;
    cr_assert_eq(virtq_pop(&q, VIRTQ_DEVICE_WRITES, &c), VIRTQ_OK, "pop of a valid RX chain");
    cr_assert_eq(tm.write_maps, 1 + 2, "RX buffers must be mapped for writing");
    cr_assert_eq(virtq_chain_write(&c, 2, "hello", 5), 5, "write across segments");
    cr_assert(!memcmp(at(TM_BUF + 2), "he", 2) && !memcmp(at(TM_BUF + 0x40), "llo", 3),
              "data split wrong across the 4-byte first segment");
    cr_assert_eq(virtq_chain_write(&c, 100, "xyzw", 4), 4, "write at the end");
    cr_assert_eq(virtq_chain_write(&c, 103, "xyzw", 4), 1, "write past the end is cut");
    virtq_chain_release(&q, &c);
    cr_assert_eq(virtq_push(&q, 0, 7), VIRTQ_OK);
    cr_assert_eq(virtq_flush(&q), VIRTQ_IRQ_SEND);
    cr_assert_eq(used_at(0).len, 7, "used len %u, want 7", used_at(0).len);
}

Test(virtq, direction_is_checked_per_descriptor)
{
    q_setup(8, false, false);
    desc(0, TM_BUF, 16, VIRTQ_DESC_F_NEXT, 1);
    desc(1, TM_BUF + 0x100, 16, VIRTQ_DESC_F_WRITE, 0);    /* mixed chain */
    avail_put(0);
    expect_pop_err(VIRTQ_DEVICE_READS, VIRTQ_ERR_DIRECTION, "TX chain ending device-writable");
    expect_pop_err(VIRTQ_DEVICE_WRITES, VIRTQ_ERR_DIRECTION, "RX chain starting readable");
    desc(0, TM_BUF, 16, 0, 0);
    expect_pop_err(VIRTQ_DEVICE_WRITES, VIRTQ_ERR_DIRECTION, "RX chain of one readable buffer");
    struct virtq_chain c;
    cr_assert_eq(virtq_pop(&q, VIRTQ_DEVICE_READS, &c), VIRTQ_OK,
                 "the same readable buffer as a TX chain");
    virtq_chain_release(&q, &c);
}

Test(virtq, malformed_chains_each_have_their_error)
{
    q_setup(8, false, false);
    avail_put(8);
    expect_pop_err(VIRTQ_DEVICE_READS, VIRTQ_ERR_HEAD, "head == size");
    *(uint16_t *)at(q.avail + VIRTQ_AVAIL_RING(0)) = 0xFFFF;
    expect_pop_err(VIRTQ_DEVICE_READS, VIRTQ_ERR_HEAD, "head 0xFFFF");
    *(uint16_t *)at(q.avail + VIRTQ_AVAIL_RING(0)) = 0;
    desc(0, TM_BUF, 16, VIRTQ_DESC_F_NEXT, 8);
    expect_pop_err(VIRTQ_DEVICE_READS, VIRTQ_ERR_NEXT, "next == size");
    desc(0, TM_BUF, 16, VIRTQ_DESC_F_NEXT, 0);
    expect_pop_err(VIRTQ_DEVICE_READS, VIRTQ_ERR_LOOP, "descriptor pointing at itself");
    desc(0, TM_BUF, 16, VIRTQ_DESC_F_NEXT, 1);
    desc(1, TM_BUF, 16, VIRTQ_DESC_F_NEXT, 2);
    desc(2, TM_BUF, 16, VIRTQ_DESC_F_NEXT, 1);
    expect_pop_err(VIRTQ_DEVICE_READS, VIRTQ_ERR_LOOP, "0 -> 1 -> 2 -> 1 loop");
    desc(2, TM_BUF, 0, 0, 0);
    expect_pop_err(VIRTQ_DEVICE_READS, VIRTQ_ERR_ZERO_LEN, "zero-length last buffer");
    desc(2, TM_BUF + TM_SIZE, 16, 0, 0);
    expect_pop_err(VIRTQ_DEVICE_READS, VIRTQ_ERR_DMA, "buffer outside memory");
    cr_assert_geq(tm.refused, 1, "the out-of-memory buffer never reached the map callback");
    desc(2, TM_BASE + TM_SIZE - 8, 16, 0, 0);
    expect_pop_err(VIRTQ_DEVICE_READS, VIRTQ_ERR_DMA, "buffer running past the end of memory");
    desc(2, ~0ull - 7, 16, 0, 0);
    expect_pop_err(VIRTQ_DEVICE_READS, VIRTQ_ERR_DMA, "buffer address wrapping 64 bits");
    desc(2, TM_BUF, 16, VIRTQ_DESC_F_INDIRECT, 0);
    expect_pop_err(VIRTQ_DEVICE_READS, VIRTQ_ERR_INDIRECT, "INDIRECT not negotiated");
    desc(2, TM_BUF, 16, 0, 0);
    struct virtq_chain c;
    cr_assert_eq(virtq_pop(&q, VIRTQ_DEVICE_READS, &c), VIRTQ_OK, "the repaired chain pops");
    cr_assert_eq(c.n, 3, "repaired chain has %u segments, want 3", c.n);
    virtq_chain_release(&q, &c);
}

Test(virtq, a_loop_through_every_descriptor_is_caught_at_size_plus_one)
{
    q_setup(16, false, false);
    for (uint16_t i = 0; i < 16; i++)
        desc(i, TM_BUF + 32u * i, 32, VIRTQ_DESC_F_NEXT, (uint16_t)((i + 1u) % 16u));
    avail_put(3);
    expect_pop_err(VIRTQ_DEVICE_READS, VIRTQ_ERR_LOOP, "16-entry ring chained in a circle");
    desc(2, TM_BUF + 64, 32, 0, 0);     /* 3 -> ... -> 15 -> 0 -> 1 -> 2: all 16, no loop */
    struct virtq_chain c;
    cr_assert_eq(virtq_pop(&q, VIRTQ_DEVICE_READS, &c), VIRTQ_OK,
                 "a chain using every descriptor once is legal");
    cr_assert_eq(c.n, 16, "%u segments, want 16", c.n);
    virtq_chain_release(&q, &c);
}

Test(virtq, more_segments_than_a_chain_holds_is_too_many)
{
    q_setup(128, false, false);
    for (uint16_t i = 0; i < VIRTQ_CHAIN_SEGS + 1u; i++)
        desc(i, TM_BUF + 16u * i, 16, i < VIRTQ_CHAIN_SEGS ? VIRTQ_DESC_F_NEXT : 0,
             (uint16_t)(i + 1u));
    avail_put(0);
    expect_pop_err(VIRTQ_DEVICE_READS, VIRTQ_ERR_TOO_MANY, "65-descriptor chain");
    for (uint16_t i = 0; i < 128; i++)      /* a circle longer than a chain holds */
        desc(i, TM_BUF + 16u * i, 16, VIRTQ_DESC_F_NEXT, (uint16_t)((i + 1u) % 128u));
    expect_pop_err(VIRTQ_DEVICE_READS, VIRTQ_ERR_LOOP, "loop through 128 descriptors");
    desc(127, TM_BUF, 16, 0, 0);
    expect_pop_err(VIRTQ_DEVICE_READS, VIRTQ_ERR_TOO_MANY, "128 descriptors, no loop");
    for (uint16_t i = 0; i < VIRTQ_CHAIN_SEGS + 1u; i++)
        desc(i, TM_BUF + 16u * i, 16, i < VIRTQ_CHAIN_SEGS ? VIRTQ_DESC_F_NEXT : 0,
             (uint16_t)(i + 1u));
    desc(VIRTQ_CHAIN_SEGS - 1u, TM_BUF, 16, 0, 0);
    struct virtq_chain c;
    cr_assert_eq(virtq_pop(&q, VIRTQ_DEVICE_READS, &c), VIRTQ_OK, "64 segments fit");
    virtq_chain_release(&q, &c);
}

Test(virtq, indirect_tables_when_negotiated)
{
    q_setup(8, false, true);
    desc_at(TM_ITAB, 0, TM_BUF, 10, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 2);
    desc_at(TM_ITAB, 2, TM_BUF + 0x100, 20, VIRTQ_DESC_F_WRITE, 0);
    desc_at(TM_ITAB, 1, TM_BUF + 0x200, 30, VIRTQ_DESC_F_WRITE, 0);    /* not in the chain */
    desc(4, TM_BUF + 0x300, 5, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 6);
    desc(6, TM_ITAB, 3 * 16, VIRTQ_DESC_F_INDIRECT, 0);     /* direct, then a table */
    avail_put(4);
    struct virtq_chain c;
    int before = tm.live;
    cr_assert_eq(virtq_pop(&q, VIRTQ_DEVICE_WRITES, &c), VIRTQ_OK, "direct + indirect chain");
    cr_assert_eq(c.n, 3, "%u segments, want 3 (5 + 10 + 20 bytes)", c.n);
    cr_assert_eq(c.bytes, 35, "%lu bytes, want 35", (unsigned long)c.bytes);
    cr_assert_eq(tm.live, before + 3, "the indirect table stayed mapped after the pop");
    virtq_chain_release(&q, &c);
    cr_assert_eq(virtq_push(&q, c.head, 0), VIRTQ_OK);

    struct { uint32_t len; uint16_t flags; uint16_t inner; const char *what; } bad[] = {
        { 3 * 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 0, "INDIRECT with NEXT" },
        { 0, VIRTQ_DESC_F_INDIRECT, 0, "empty table" },
        { 20, VIRTQ_DESC_F_INDIRECT, 0, "table length not a multiple of 16" },
        { 9 * 16, VIRTQ_DESC_F_INDIRECT, 0, "table longer than the queue" },
        { 3 * 16, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_INDIRECT, "nested table" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        desc_at(TM_ITAB, 0, TM_BUF, 10, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT | bad[i].inner, 2);
        desc(6, TM_ITAB, bad[i].len, bad[i].flags, 0);
        avail_set_idx((uint16_t)(q.last_avail + 1u));
        *(uint16_t *)at(q.avail + VIRTQ_AVAIL_RING(q.last_avail & 7u)) = 6;
        expect_pop_err(VIRTQ_DEVICE_WRITES, VIRTQ_ERR_INDIRECT, bad[i].what);
    }
    desc_at(TM_ITAB, 0, TM_BUF, 10, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 3);
    desc(6, TM_ITAB, 3 * 16, VIRTQ_DESC_F_INDIRECT, 0);
    expect_pop_err(VIRTQ_DEVICE_WRITES, VIRTQ_ERR_NEXT, "next beyond the indirect table");
    desc_at(TM_ITAB, 0, TM_BUF, 10, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 0);
    expect_pop_err(VIRTQ_DEVICE_WRITES, VIRTQ_ERR_LOOP, "loop inside the indirect table");
    desc(6, TM_BASE + TM_SIZE, 3 * 16, VIRTQ_DESC_F_INDIRECT, 0);
    expect_pop_err(VIRTQ_DEVICE_WRITES, VIRTQ_ERR_DMA, "indirect table outside memory");
}

Test(virtq, avail_idx_moving_more_than_size_is_an_error)
{
    q_setup(8, false, false);
    for (uint16_t i = 0; i < 8; i++) {
        desc(i, TM_BUF + 64u * i, 64, 0, 0);
        avail_put(i);
    }
    avail_set_idx(9);       /* 9 ahead of last_avail 0 in an 8-entry ring */
    expect_pop_err(VIRTQ_DEVICE_READS, VIRTQ_ERR_AVAIL_IDX, "avail idx 9 ahead");
    avail_set_idx(0x8000);
    expect_pop_err(VIRTQ_DEVICE_READS, VIRTQ_ERR_AVAIL_IDX, "avail idx 0x8000 ahead");
    avail_set_idx(8);       /* exactly a full ring is legal */
    struct virtq_chain c;
    for (uint16_t i = 0; i < 8; i++) {
        cr_assert_eq(virtq_pop(&q, VIRTQ_DEVICE_READS, &c), VIRTQ_OK, "pop %u of a full ring", i);
        cr_assert_eq(c.head, i, "pop %u gave head %u", i, c.head);
        virtq_chain_release(&q, &c);
    }
    cr_assert_eq(virtq_pop(&q, VIRTQ_DEVICE_READS, &c), VIRTQ_EMPTY, "ring drained");
    avail_set_idx(7);       /* going backwards: 65535 ahead */
    expect_pop_err(VIRTQ_DEVICE_READS, VIRTQ_ERR_AVAIL_IDX, "avail idx moved backwards");
}

Test(virtq, indices_wrap_at_16_bits)
{
    q_setup(4, false, false);
    /* Start just before the wrap: device cursors and ring indices agree. */
    q.last_avail = q.used_idx = q.flushed = 65533;
    avail_set_idx(65533);
    *(uint16_t *)at(q.used + VIRTQ_USED_IDX) = 65533;
    struct virtq_chain c;
    for (uint16_t round = 0; round < 3; round++) {
        for (uint16_t i = 0; i < 3; i++) {
            uint16_t head = (uint16_t)((round + i) % 4u);
            desc(head, TM_BUF + 0x100u * head, 0x40, 0, 0);
            avail_put(head);
        }
        for (uint16_t i = 0; i < 3; i++) {
            uint16_t slot = (uint16_t)(q.used_idx & 3u);
            cr_assert_eq(virtq_pop(&q, VIRTQ_DEVICE_READS, &c), VIRTQ_OK,
                         "round %u pop %u across the wrap", round, i);
            cr_assert_eq(c.head, (round + i) % 4u, "round %u pop %u: head %u", round, i, c.head);
            virtq_chain_release(&q, &c);
            cr_assert_eq(virtq_push(&q, c.head, 100u + i), VIRTQ_OK);
            struct virtq_used_elem e = used_at(slot);
            cr_assert(e.id == c.head && e.len == 100u + i,
                      "round %u: used slot %u holds {%u, %u}", round, slot, e.id, e.len);
        }
        cr_assert_eq(virtq_flush(&q), VIRTQ_IRQ_SEND, "round %u flush", round);
        cr_assert_eq(used_idx(), (uint16_t)(65533u + 3u * (round + 1u)),
                     "round %u: used idx %u", round, used_idx());
    }
    cr_assert_eq(q.last_avail, 6, "last_avail %u after 9 pops from 65533, want 6", q.last_avail);
    cr_assert_eq(virtq_pop(&q, VIRTQ_DEVICE_READS, &c), VIRTQ_EMPTY, "drained after the wrap");
    avail_set_idx((uint16_t)(6u + 5u));
    expect_pop_err(VIRTQ_DEVICE_READS, VIRTQ_ERR_AVAIL_IDX, "5 ahead of 6 in a 4-ring after wrap");
}

Test(virtq, push_and_rewind_check_what_is_in_flight)
{
    q_setup(8, false, false);
    cr_assert_eq(virtq_push(&q, 0, 0), VIRTQ_ERR_PUSH, "push with nothing popped");
    for (uint16_t i = 0; i < 3; i++) {
        desc(i, TM_BUF + 64u * i, 64, VIRTQ_DESC_F_WRITE, 0);
        avail_put(i);
    }
    struct virtq_chain c;
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(virtq_pop(&q, VIRTQ_DEVICE_WRITES, &c), VIRTQ_OK);
        virtq_chain_release(&q, &c);
    }
    cr_assert_eq(virtq_push(&q, 8, 0), VIRTQ_ERR_HEAD, "push of id == size");
    cr_assert_eq(virtq_push(&q, 0, 10), VIRTQ_OK);
    cr_assert_not(virtq_rewind(&q, 3), "rewind over a pushed chain accepted");
    cr_assert(virtq_rewind(&q, 2), "rewind of the 2 unpushed chains refused");
    cr_assert_eq(virtq_pop(&q, VIRTQ_DEVICE_WRITES, &c), VIRTQ_OK);
    cr_assert_eq(c.head, 1, "after rewind the next pop is head %u, want 1", c.head);
    virtq_chain_release(&q, &c);
}

/* ---- notifications ------------------------------------------------------- */

Test(virtq, need_event_arithmetic_including_wrap)
{
    struct { uint16_t event, new_idx, old; bool want; } t[] = {
        { 0, 1, 0, true },              /* passed event 0 */
        { 1, 1, 0, false },             /* event 1 not passed until new > 1 */
        { 1, 2, 0, true },
        { 5, 5, 3, false },
        { 4, 5, 3, true },
        { 3, 5, 3, true },              /* event == old: crossed */
        { 2, 5, 3, false },             /* already behind old */
        { 65535, 0, 65534, true },      /* crossing the wrap */
        { 65535, 2, 65530, true },
        { 0, 2, 65530, true },
        { 1, 2, 65530, true },
        { 2, 2, 65530, false },
        { 65529, 2, 65530, false },     /* behind old, before the wrap */
        { 7, 7, 7, false },             /* nothing moved */
        { 100, 0, 65535, false },
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        cr_assert_eq(virtq_need_event(t[i].event, t[i].new_idx, t[i].old), t[i].want,
                     "need_event(event %u, new %u, old %u) != %d", t[i].event, t[i].new_idx,
                     t[i].old, t[i].want);
}

/* Pop and push n chains of one writable buffer each. */
static void complete(uint16_t n)
{
    struct virtq_chain c;
    for (uint16_t i = 0; i < n; i++) {
        uint16_t head = (uint16_t)(drv_avail & (q.size - 1u));
        desc(head, TM_BUF + 64u * head, 64, VIRTQ_DESC_F_WRITE, 0);
        avail_put(head);
        cr_assert_eq(virtq_pop(&q, VIRTQ_DEVICE_WRITES, &c), VIRTQ_OK);
        virtq_chain_release(&q, &c);
        cr_assert_eq(virtq_push(&q, c.head, 64), VIRTQ_OK);
    }
}

Test(virtq, event_idx_interrupts_only_when_used_event_is_passed)
{
    q_setup(16, true, false);
    uint16_t *used_event = at(q.avail + VIRTQ_USED_EVENT(16));
    *used_event = 2;        /* "interrupt me once entry 2 is used" */
    complete(2);            /* used idx 0 -> 2: entries 0, 1 */
    cr_assert_eq(virtq_flush(&q), VIRTQ_IRQ_SUPPRESSED, "used 0->2 must not pass used_event 2");
    complete(1);            /* 2 -> 3 */
    cr_assert_eq(virtq_flush(&q), VIRTQ_IRQ_SEND, "used 2->3 passes used_event 2");
    complete(4);            /* 3 -> 7, used_event still 2: behind */
    cr_assert_eq(virtq_flush(&q), VIRTQ_IRQ_SUPPRESSED, "used_event left behind: no interrupt");
    *used_event = 9;
    complete(3);            /* 7 -> 10 crosses 9 */
    cr_assert_eq(virtq_flush(&q), VIRTQ_IRQ_SEND, "used 7->10 passes used_event 9");
    *(uint16_t *)at(q.avail + VIRTQ_AVAIL_FLAGS) = VIRTQ_AVAIL_F_NO_INTERRUPT;
    *used_event = 10;
    complete(1);
    cr_assert_eq(virtq_flush(&q), VIRTQ_IRQ_SEND, "with EVENT_IDX the NO_INTERRUPT flag is ignored");
    cr_assert_eq(virtq_flush(&q), VIRTQ_IRQ_NONE, "nothing new");
}

Test(virtq, event_idx_across_the_wrap)
{
    q_setup(8, true, false);
    q.last_avail = q.used_idx = q.flushed = 65534;
    avail_set_idx(65534);
    *(uint16_t *)at(q.avail + VIRTQ_USED_EVENT(8)) = 65535;
    complete(1);            /* 65534 -> 65535 */
    cr_assert_eq(virtq_flush(&q), VIRTQ_IRQ_SUPPRESSED, "65534->65535 does not pass 65535");
    complete(2);            /* 65535 -> 1 */
    cr_assert_eq(virtq_flush(&q), VIRTQ_IRQ_SEND, "65535->1 passes used_event 65535");
    cr_assert_eq(used_idx(), 1, "used idx %u after the wrap, want 1", used_idx());
}

Test(virtq, no_interrupt_flag_without_event_idx)
{
    q_setup(8, false, false);
    uint16_t *flags = at(q.avail + VIRTQ_AVAIL_FLAGS);
    *(uint16_t *)at(q.avail + VIRTQ_USED_EVENT(8)) = 1000;  /* must be ignored */
    *flags = VIRTQ_AVAIL_F_NO_INTERRUPT;
    complete(1);
    cr_assert_eq(virtq_flush(&q), VIRTQ_IRQ_SUPPRESSED, "NO_INTERRUPT set: no interrupt");
    cr_assert_eq(used_idx(), 1, "a suppressed flush still publishes the used idx");
    *flags = 0;
    complete(1);
    cr_assert_eq(virtq_flush(&q), VIRTQ_IRQ_SEND, "flag clear: interrupt (used_event ignored)");
    cr_assert_eq(virtq_flush(&q), VIRTQ_IRQ_NONE, "nothing new: no interrupt");
}

Test(virtq, kick_suppression_without_event_idx_uses_the_used_flag)
{
    q_setup(8, false, false);
    uint16_t *flags = at(q.used + VIRTQ_USED_FLAGS);
    cr_assert_not(virtq_kick_enable(&q, false), "disabling never reports work");
    cr_assert_eq(*flags, VIRTQ_USED_F_NO_NOTIFY, "used flags %#x, want NO_NOTIFY", *flags);
    cr_assert_not(virtq_kick_enable(&q, true), "enable on an empty ring reports work");
    cr_assert_eq(*flags, 0, "used flags %#x after enable, want 0", *flags);
    desc(0, TM_BUF, 8, 0, 0);
    avail_put(0);
    cr_assert(virtq_kick_enable(&q, true), "enable must report the chain that is waiting");
}

Test(virtq, kick_suppression_with_event_idx_writes_avail_event)
{
    q_setup(8, true, false);
    uint16_t *avail_event = at(q.used + VIRTQ_AVAIL_EVENT(8));
    uint16_t *flags = at(q.used + VIRTQ_USED_FLAGS);
    *avail_event = 77;
    cr_assert_not(virtq_kick_enable(&q, false));
    cr_assert_eq(*avail_event, 77, "disabling must leave avail_event behind, not move it");
    cr_assert_eq(*flags, 0, "with EVENT_IDX the used flags stay 0");
    complete(3);
    cr_assert_not(virtq_kick_enable(&q, true), "no new chain");
    cr_assert_eq(*avail_event, 3, "avail_event %u, want last_avail 3", *avail_event);
    desc(3, TM_BUF, 8, 0, 0);
    avail_put(3);
    cr_assert(virtq_kick_enable(&q, true), "a chain published before the request is reported");
}

Test(virtq, every_error_has_a_name)
{
    for (int e = VIRTQ_OK; e <= VIRTQ_ERR_PUSH; e++) {
        const char *n = virtq_err_name((enum virtq_err)e);
        cr_assert(n && n[0] && strcmp(n, "unknown virtq error"), "error %d has no name", e);
    }
}

/* ---- legacy layout ------------------------------------------------------- */

/* The legacy formula of virtio 1.2 §2.7.2 (Legacy Interfaces: A Note on
 * Virtqueue Layout), written out independently of virtio_regs.h:
 *   ALIGN(16 N + 2 (3 + N)) + ALIGN(2 * 3 + 8 N), ALIGN to 4096. */
static uint64_t spec_align(uint64_t x) { return (x + 4095u) & ~4095ull; }

Test(virtq_legacy, known_sizes_in_pages)
{
    /* 256 -> 3 pages, 1024 -> 8, 4096 -> 28 (the GCE queue). */
    cr_assert_eq(virtq_legacy_bytes(256), 3 * 4096, "256 entries: %lu bytes",
                 (unsigned long)virtq_legacy_bytes(256));
    cr_assert_eq(virtq_legacy_bytes(1024), 8 * 4096, "1024 entries: %lu bytes",
                 (unsigned long)virtq_legacy_bytes(1024));
    cr_assert_eq(virtq_legacy_bytes(4096), 28 * 4096, "4096 entries: %lu bytes",
                 (unsigned long)virtq_legacy_bytes(4096));
    cr_assert_eq(virtq_legacy_used_off(256), 0x2000, "256 entries: used ring at %#lx",
                 (unsigned long)virtq_legacy_used_off(256));
    cr_assert_eq(virtq_legacy_used_off(4096), 0x13000, "4096 entries: used ring at %#lx",
                 (unsigned long)virtq_legacy_used_off(4096));
}

Test(virtq_legacy, every_size_256_to_32768_addresses_by_the_spec_formula)
{
    for (uint32_t n = 256; n <= VIRTQ_SIZE_MAX; n *= 2) {
        uint64_t avail_off = 16ull * n;
        uint64_t used_off = spec_align(16ull * n + 2ull * (3 + n));
        uint64_t total = used_off + spec_align(2ull * 3 + 8ull * n);
        cr_assert_eq(virtq_legacy_avail_off(n), avail_off, "N=%u: avail at %#lx, want %#lx", n,
                     (unsigned long)virtq_legacy_avail_off(n), (unsigned long)avail_off);
        cr_assert_eq(virtq_legacy_used_off(n), used_off, "N=%u: used at %#lx, want %#lx", n,
                     (unsigned long)virtq_legacy_used_off(n), (unsigned long)used_off);
        cr_assert_eq(virtq_legacy_bytes(n), total, "N=%u: %lu bytes, want %lu", n,
                     (unsigned long)virtq_legacy_bytes(n), (unsigned long)total);

        /* Exactly the legacy region, nothing more: every access must fall
         * inside it, at the positions the formula gives. */
        mem_init(total);
        cr_assert_eq(virtq_setup_legacy(&q, n, TM_BASE), VIRTQ_OK, "N=%u: legacy setup", n);
        cr_assert(q.desc == TM_BASE && q.avail == TM_BASE + avail_off &&
                  q.used == TM_BASE + used_off, "N=%u: areas at %#lx/%#lx/%#lx", n,
                  (unsigned long)q.desc, (unsigned long)q.avail, (unsigned long)q.used);
        virtq_set_features(&q, true, false);
        cr_assert_eq(virtq_open(&q), VIRTQ_OK, "N=%u: the rings with EVENT_IDX fit the region", n);
        uint16_t head = (uint16_t)(n - 1u);           /* last descriptor slot */
        struct virtq_desc d = { .addr = TM_BASE + 8, .len = 8, .flags = VIRTQ_DESC_F_WRITE };
        memcpy(tm.buf + 16ull * head, &d, sizeof d);
        /* Place the chain in the last avail slot: start the ring at N-1. */
        uint16_t start = (uint16_t)(n - 1u);
        q.last_avail = q.used_idx = q.flushed = start;
        memcpy(tm.buf + avail_off + 4 + 2ull * (n - 1u), &head, 2);
        uint16_t idx = (uint16_t)(start + 1u), ev = start;
        memcpy(tm.buf + avail_off + 2, &idx, 2);
        memcpy(tm.buf + avail_off + 4 + 2ull * n, &ev, 2);     /* used_event */
        struct virtq_chain c;
        cr_assert_eq(virtq_pop(&q, VIRTQ_DEVICE_WRITES, &c), VIRTQ_OK, "N=%u: pop", n);
        cr_assert_eq(c.head, head, "N=%u: head %u", n, c.head);
        virtq_chain_release(&q, &c);
        cr_assert_eq(virtq_push(&q, head, 0x1234), VIRTQ_OK, "N=%u: push", n);
        cr_assert_eq(virtq_flush(&q), VIRTQ_IRQ_SEND, "N=%u: used_event at avail + 4 + 2N", n);
        cr_assert_not(virtq_kick_enable(&q, true), "N=%u: no more work", n);
        struct virtq_used_elem e;
        memcpy(&e, tm.buf + used_off + 4 + 8ull * (n - 1u), sizeof e);
        cr_assert(e.id == head && e.len == 0x1234, "N=%u: used elem {%u, %#x} at the last slot",
                  n, e.id, e.len);
        uint16_t uidx, aev;
        memcpy(&uidx, tm.buf + used_off + 2, 2);
        memcpy(&aev, tm.buf + used_off + 4 + 8ull * n, 2);
        cr_assert_eq(uidx, (uint16_t)(start + 1u), "N=%u: used idx %u", n, uidx);
        cr_assert_eq(aev, (uint16_t)(start + 1u), "N=%u: avail_event %u at used + 4 + 8N", n, aev);
        cr_assert_leq(used_off + 4 + 8ull * n + 2, total, "N=%u: avail_event past the region", n);
        cr_assert_eq(tm.refused, 0, "N=%u: %d accesses fell outside the legacy region", n,
                     tm.refused);
        mem_fini();
    }
}
