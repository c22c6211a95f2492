/* The virtio-net driver domain's pure logic (driver-domains/virtio-net/
 * vnet_ring.c, vnet_proto.c) on the host: ring layouts (every legacy size),
 * adding and harvesting chains across the 16-bit wrap, free-list
 * exhaustion, EVENT_IDX and NO_NOTIFY kick decisions, interrupt
 * suppression through used_event and NO_INTERRUPT with the re-check, used
 * element validation, feature negotiation, header sizes, and receive
 * reassembly (MRG_RXBUF). A small fake device plays the other side of the
 * ring, reading and writing it exactly where virtio 1.2 §2.7 says. */
#define DD_HOST_TEST 1
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include "../../driver-domains/virtio-net/vnet_proto.c"
#include "../../driver-domains/virtio-net/vnet_ring.c"

/* ---- a queue over heap memory, and a fake device ----------------------------- */

struct fixture {
    struct vq q;
    struct vq_layout l;
    uint8_t *ring;
    uint16_t *next;
    struct vq_head *heads;
    uint16_t dev_avail;         /* next avail index the device reads */
    uint16_t dev_used;          /* next used index the device writes */
};

static struct fixture fx;

static void fx_make(uint32_t size, bool legacy, bool event_idx)
{
    cr_assert(vq_layout(size, legacy, &fx.l), "size %u must have a layout", size);
    size_t bytes = (size_t)((fx.l.bytes + 4095u) & ~(uint64_t)4095u);
    fx.ring = aligned_alloc(4096, bytes);
    cr_assert_not_null(fx.ring);
    memset(fx.ring, 0, bytes);
    fx.next = calloc(size, sizeof *fx.next);
    fx.heads = calloc(size, sizeof *fx.heads);
    cr_assert(vq_init(&fx.q, 0, size, event_idx, fx.ring, &fx.l, fx.next, fx.heads));
    fx.dev_avail = fx.dev_used = 0;
}

static void fx_free(void)
{
    free(fx.ring);
    free(fx.next);
    free(fx.heads);
    memset(&fx, 0, sizeof fx);
}

static uint16_t *av16(uint32_t word) { return (uint16_t *)(void *)(fx.ring + fx.l.avail_off) + word; }
static uint8_t *used_base(void) { return fx.ring + fx.l.used_off; }
static uint16_t dev_read_avail_idx(void) { return *av16(1); }
static uint16_t dev_read_avail_flags(void) { return *av16(0); }
static uint16_t dev_read_used_event(void) { return *av16(2u + fx.q.size); }
static void dev_write_avail_event(uint16_t e)
{
    memcpy(used_base() + VIRTQ_AVAIL_EVENT(fx.q.size), &e, 2);
}
static void dev_write_used_flags(uint16_t f) { memcpy(used_base() + VIRTQ_USED_FLAGS, &f, 2); }
static void dev_write_used_idx(uint16_t i) { memcpy(used_base() + VIRTQ_USED_IDX, &i, 2); }

/* The device takes the next published chain: returns its head and counts
 * its descriptors, checking the flags on the way. */
static uint16_t dev_take(unsigned *ndesc, uint32_t *wlen)
{
    cr_assert_neq(fx.dev_avail, dev_read_avail_idx(), "the device found no published chain");
    uint16_t head = *av16(2u + (fx.dev_avail & fx.q.mask));
    fx.dev_avail++;
    cr_assert_lt(head, fx.q.size, "avail ring names descriptor %u of %u", head, fx.q.size);
    unsigned n = 0;
    uint32_t w = 0;
    uint16_t d = head;
    for (;;) {
        const struct virtq_desc *e = &fx.q.desc[d];
        n++;
        cr_assert_leq(n, fx.q.size, "descriptor chain loops");
        if (e->flags & VIRTQ_DESC_F_WRITE)
            w += e->len;
        if (!(e->flags & VIRTQ_DESC_F_NEXT))
            break;
        d = e->next;
        cr_assert_lt(d, fx.q.size);
    }
    if (ndesc)
        *ndesc = n;
    if (wlen)
        *wlen = w;
    return head;
}

/* The device returns chain id with len bytes written. */
static void dev_complete(uint32_t id, uint32_t len)
{
    struct virtq_used_elem e = { .id = id, .len = len };
    memcpy(used_base() + VIRTQ_USED_RING(fx.dev_used & fx.q.mask), &e, sizeof e);
    fx.dev_used++;
    dev_write_used_idx(fx.dev_used);
}

static int add1(uint32_t token, bool write, uint32_t len)
{
    struct vq_seg s = { .addr = 0x100000000ull + token * 4096ull, .len = len, .write = write };
    return vq_add(&fx.q, &s, 1, token);
}

TestSuite(vnet_ring, .fini = fx_free);
TestSuite(vnet_layout);
TestSuite(vnet_proto);

/* ---- layouts ------------------------------------------------------------------ */

Test(vnet_layout, legacy_every_size_256_to_32768)
{
    /* Pages by hand from §2.7.2 (desc 16n, avail 6+2n, used at the next
     * 4096 boundary, used 6+8n, total rounded to 4096):
     *   256: 4096+518=4614 -> used@8192, +2054=10246 -> 12288 = 3 pages
     *   512: 8192+1030=9222 -> 12288, +4102=16390 -> 20480 = 5
     *  1024: 16384+2054=18438 -> 20480, +8198=28678 -> 32768 = 8
     *  2048: 32768+4102=36870 -> 40960, +16390=57350 -> 61440 = 15
     *  4096: 65536+8198=73734 -> 77824, +32774=110598 -> 114688 = 28
     *  8192: 131072+16390=147462 -> 151552, +65542=217094 -> 221184 = 54
     * 16384: 262144+32774=294918 -> 299008, +131078=430086 -> 434176 = 106
     * 32768: 524288+65542=589830 -> 593920, +262150=856070 -> 860160 = 210 */
    static const struct { uint32_t n, pages; uint64_t used_off; } want[] = {
        { 256, 3, 8192 },     { 512, 5, 12288 },    { 1024, 8, 20480 },
        { 2048, 15, 40960 },  { 4096, 28, 77824 },  { 8192, 54, 151552 },
        { 16384, 106, 299008 }, { 32768, 210, 593920 },
    };
    unsigned i = 0;
    for (uint32_t n = 256; n <= 32768; n *= 2, i++) {
        struct vq_layout l;
        cr_assert(vq_layout(n, true, &l), "legacy size %u must be accepted", n);
        cr_assert_eq(want[i].n, n);
        cr_assert_eq(l.desc_off, 0);
        cr_assert_eq(l.avail_off, 16ull * n, "size %u: avail ring right after the descriptors", n);
        uint64_t avail_end = l.avail_off + 6ull + 2ull * n;
        cr_assert_eq(l.used_off % 4096u, 0, "size %u: used ring at 0x%lx is not 4096-aligned", n,
                     (unsigned long)l.used_off);
        cr_assert_geq(l.used_off, avail_end, "size %u: used ring overlaps the avail ring", n);
        cr_assert_lt(l.used_off - avail_end, 4096u, "size %u: used ring not at the next boundary", n);
        cr_assert_eq(l.used_off, want[i].used_off, "size %u: used ring at %lu, by hand %lu", n,
                     (unsigned long)l.used_off, (unsigned long)want[i].used_off);
        uint64_t used_end = l.used_off + 6ull + 8ull * n;
        cr_assert_eq(l.bytes % 4096u, 0);
        cr_assert_geq(l.bytes, used_end);
        cr_assert_lt(l.bytes - used_end, 4096u);
        cr_assert_eq(l.bytes / 4096u, want[i].pages, "size %u: %lu pages, by hand %u", n,
                     (unsigned long)(l.bytes / 4096u), want[i].pages);
        cr_assert_eq(l.bytes, virtq_legacy_bytes(n));
    }
    cr_assert_eq(i, 8u, "256..32768 is eight sizes");
}

Test(vnet_layout, sizes_refused)
{
    struct vq_layout l;
    static const uint32_t bad[] = { 0, 3, 100, 257, 4095, 65536, 0x80000000u };
    for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_not(vq_layout(bad[i], true, &l), "legacy size %u must be refused", bad[i]);
        cr_assert_not(vq_layout(bad[i], false, &l), "modern size %u must be refused", bad[i]);
    }
    struct vq q;
    uint8_t ring[64] = { 0 };
    uint16_t nx[4];
    struct vq_head hd[4];
    cr_assert(vq_layout(4, false, &l));
    cr_assert_not(vq_init(&q, 0, 3, false, ring, &l, nx, hd), "size 3 must be refused");
    cr_assert_not(vq_init(&q, 0, 4, false, ring, &l, NULL, hd), "a missing array must be refused");
}

Test(vnet_layout, modern_parts_aligned_and_apart)
{
    for (uint32_t n = 1; n <= 32768; n *= 2) {
        struct vq_layout l;
        cr_assert(vq_layout(n, false, &l));
        cr_assert_eq(l.desc_off, 0);
        cr_assert_eq(l.avail_off, 16ull * n, "size %u: avail after the descriptors", n);
        cr_assert_eq(l.used_off % 64u, 0, "size %u: used area on its own line", n);
        cr_assert_geq(l.used_off, l.avail_off + 6ull + 2ull * n, "size %u: used overlaps avail", n);
        cr_assert_lt(l.used_off - (l.avail_off + 6ull + 2ull * n), 64u);
        cr_assert_eq(l.bytes, l.used_off + 6ull + 8ull * n);
    }
}

/* ---- adding and harvesting ----------------------------------------------------- */

Test(vnet_ring, add_publish_pop_one_chain)
{
    fx_make(8, false, false);
    struct vq_seg s[3] = {
        { .addr = 0x1000, .len = 10 },
        { .addr = 0x2000, .len = 100, .write = true },
        { .addr = 0x3000, .len = 200, .write = true },
    };
    int h = vq_add(&fx.q, s, 3, 77);
    cr_assert_geq(h, 0);
    cr_assert_eq(fx.q.num_free, 5);
    cr_assert_eq(dev_read_avail_idx(), 0, "nothing is visible before vq_publish");
    cr_assert_eq(vq_unpublished(&fx.q), 1);
    cr_assert(vq_publish(&fx.q), "the first publish on a fresh ring notifies");
    cr_assert_eq(dev_read_avail_idx(), 1);
    unsigned n;
    uint32_t w;
    uint16_t head = dev_take(&n, &w);
    cr_assert_eq(head, h);
    cr_assert_eq(n, 3, "a 3-buffer chain has 3 descriptors");
    cr_assert_eq(w, 300);
    const struct virtq_desc *d0 = &fx.q.desc[head];
    cr_assert_eq(d0->addr, 0x1000);
    cr_assert_eq(d0->flags, VIRTQ_DESC_F_NEXT, "readable first, with NEXT");
    cr_assert_eq(fx.q.desc[fx.q.desc[d0->next].next].flags, VIRTQ_DESC_F_WRITE, "last: no NEXT");
    struct vq_used u;
    cr_assert_eq(vq_pop(&fx.q, &u), VQ_EMPTY);
    dev_complete(head, 250);
    cr_assert_eq(vq_pop(&fx.q, &u), VQ_OK);
    cr_assert_eq(u.token, 77);
    cr_assert_eq(u.len, 250);
    cr_assert_eq(fx.q.num_free, 8, "the chain's descriptors are free again");
    cr_assert_eq(fx.q.outstanding, 0);
    cr_assert_eq(vq_pop(&fx.q, &u), VQ_EMPTY);
    cr_assert_not(vq_publish(&fx.q), "nothing new: no publish, no notify");
}

Test(vnet_ring, many_laps_across_the_16bit_wrap)
{
    /* A small ring driven past 65536 on both indices, chains of 1..3
     * descriptors completed out of order. */
    fx_make(8, false, true);
    uint32_t token = 0, expect_next = 0, total = 0;
    uint32_t pend_tok[8];
    uint16_t pend_head[8];
    srand(7);
    while (total < 70000u) {
        unsigned k = 0;
        while (fx.q.num_free >= 3 && k < 3) {
            unsigned n = 1u + (unsigned)rand() % 3u;
            struct vq_seg s[3];
            for (unsigned i = 0; i < n; i++)
                s[i] = (struct vq_seg){ .addr = 0x1000u * (i + 1u), .len = 64, .write = true };
            int h = vq_add(&fx.q, s, n, token);
            cr_assert_geq(h, 0, "room was checked: add %u must succeed", token);
            pend_tok[k] = token++;
            pend_head[k] = (uint16_t)h;
            k++;
        }
        vq_publish(&fx.q);
        cr_assert_eq(dev_read_avail_idx(), fx.q.avail_idx, "published index is the private one");
        for (unsigned i = 0; i < k; i++) {
            unsigned n;
            uint16_t h = dev_take(&n, NULL);
            cr_assert_eq(h, pend_head[i], "the device sees heads in the order added");
        }
        /* Complete in reverse order. */
        for (unsigned i = k; i-- > 0;)
            dev_complete(pend_head[i], 32);
        for (unsigned i = k; i-- > 0;) {
            struct vq_used u;
            cr_assert_eq(vq_pop(&fx.q, &u), VQ_OK, "completion of token %u at used %u",
                         pend_tok[i], fx.q.last_used);
            cr_assert_eq(u.token, pend_tok[i]);
            cr_assert_eq(u.len, 32);
        }
        expect_next += k;
        total += k;
        cr_assert_eq(fx.q.num_free, 8, "every descriptor is back after each batch");
    }
    cr_assert_eq(fx.q.avail_idx, (uint16_t)expect_next, "avail index wrapped with the count");
    cr_assert_eq(fx.q.last_used, (uint16_t)expect_next);
    cr_assert_gt(expect_next, 65536u, "the test must cross the wrap");
}

Test(vnet_ring, pop_across_wrap_from_preset_indices)
{
    fx_make(16, false, false);
    /* Start both sides at 0xFFFC, as after a long run. */
    fx.q.avail_idx = fx.q.avail_pub = fx.q.last_used = 0xFFFCu;
    *av16(1) = 0xFFFCu;
    fx.dev_avail = fx.dev_used = 0xFFFCu;
    dev_write_used_idx(0xFFFCu);
    for (uint32_t t = 0; t < 10; t++)
        cr_assert_geq(add1(t, true, 1500), 0);
    vq_publish(&fx.q);
    cr_assert_eq(dev_read_avail_idx(), 0x0006u);
    for (uint32_t t = 0; t < 10; t++)
        dev_complete(dev_take(NULL, NULL), 60 + t);
    for (uint32_t t = 0; t < 10; t++) {
        struct vq_used u;
        cr_assert_eq(vq_pop(&fx.q, &u), VQ_OK);
        cr_assert_eq(u.token, t);
        cr_assert_eq(u.len, 60 + t);
    }
    cr_assert_eq(fx.q.last_used, 0x0006u);
}

Test(vnet_ring, free_list_exhaustion_and_bad_chains)
{
    fx_make(4, false, false);
    for (uint32_t t = 0; t < 4; t++)
        cr_assert_geq(add1(t, false, 60), 0, "descriptor %u of 4 must be free", t);
    cr_assert_eq(fx.q.num_free, 0);
    cr_assert_eq(add1(9, false, 60), -1, "a fifth chain on a 4-entry ring must be refused");
    vq_publish(&fx.q);
    uint16_t h = dev_take(NULL, NULL);
    dev_complete(h, 0);
    struct vq_used u;
    cr_assert_eq(vq_pop(&fx.q, &u), VQ_OK);
    cr_assert_eq(fx.q.num_free, 1);
    struct vq_seg two[2] = { { .addr = 1, .len = 1 }, { .addr = 2, .len = 1 } };
    cr_assert_eq(vq_add(&fx.q, two, 2, 5), -1, "2 descriptors with 1 free must be refused");
    cr_assert_eq(fx.q.num_free, 1, "a refused add changes nothing");
    cr_assert_geq(add1(10, false, 60), 0, "the freed descriptor is reused");
    cr_assert_eq(vq_add(&fx.q, two, 0, 5), -1, "an empty chain must be refused");

    fx_free();
    fx_make(8, false, false);
    struct vq_seg wr[2] = { { .addr = 1, .len = 1, .write = true }, { .addr = 2, .len = 1 } };
    cr_assert_eq(vq_add(&fx.q, wr, 2, 1), -1, "a readable buffer after a writable one is refused");
    struct vq_seg nine[9] = { { 0 } };
    cr_assert_eq(vq_add(&fx.q, nine, 9, 1), -1, "a chain longer than the ring is refused");
    cr_assert_eq(fx.q.num_free, 8);
}

/* ---- notification (kick) decisions ---------------------------------------------- */

/* Publish k one-descriptor chains from avail index old with the device's
 * avail_event at ev; return the decision. */
static bool kick_case(uint16_t old, unsigned k, uint16_t ev)
{
    fx.q.avail_idx = fx.q.avail_pub = old;
    fx.q.last_used = old;
    fx.q.outstanding = 0;
    fx.q.num_free = fx.q.size;
    *av16(1) = old;
    dev_write_avail_event(ev);
    for (unsigned i = 0; i < fx.q.size; i++) {
        fx.next[i] = (uint16_t)((i + 1u) & fx.q.mask);
        fx.heads[i].ndesc = 0;
    }
    fx.q.free_head = 0;
    for (unsigned i = 0; i < k; i++)
        cr_assert_geq(add1(i, false, 60), 0);
    return vq_publish(&fx.q);
}

Test(vnet_ring, event_idx_kick_decisions)
{
    fx_make(16, false, true);
    /* The device asks to hear once the index passes ev: notify iff ev is
     * in [old, new). */
    cr_assert(kick_case(0, 1, 0), "0 -> 1 passes avail_event 0");
    cr_assert_not(kick_case(1, 1, 0), "1 -> 2 does not pass avail_event 0 again");
    cr_assert(kick_case(10, 4, 13), "10 -> 14 passes 13");
    cr_assert_not(kick_case(10, 4, 14), "10 -> 14 does not pass 14 (not yet reached)");
    cr_assert_not(kick_case(10, 4, 9), "10 -> 14: 9 was passed before");
    cr_assert(kick_case(10, 4, 10), "10 -> 14 passes 10");
    /* Across the wrap: old 0xFFFE, new 0x0001. */
    cr_assert(kick_case(0xFFFEu, 3, 0xFFFEu));
    cr_assert(kick_case(0xFFFEu, 3, 0xFFFFu), "0xFFFE -> 0x0001 passes 0xFFFF");
    cr_assert(kick_case(0xFFFEu, 3, 0x0000u), "0xFFFE -> 0x0001 passes 0x0000");
    cr_assert_not(kick_case(0xFFFEu, 3, 0x0001u), "0x0001 is not passed yet");
    cr_assert_not(kick_case(0xFFFEu, 3, 0xFFFDu), "0xFFFD was passed before");
    cr_assert_not(kick_case(0xFFFEu, 3, 0x8000u), "far away: no notify");
    /* Flags do not matter with EVENT_IDX. */
    dev_write_used_flags(VIRTQ_USED_F_NO_NOTIFY);
    cr_assert(kick_case(5, 1, 5), "with EVENT_IDX the NO_NOTIFY flag is ignored");
}

Test(vnet_ring, no_notify_flag_without_event_idx)
{
    fx_make(16, false, false);
    cr_assert(kick_case(0, 2, 0x1234u), "without EVENT_IDX avail_event is ignored: notify");
    dev_write_used_flags(VIRTQ_USED_F_NO_NOTIFY);
    cr_assert_not(kick_case(2, 2, 2), "NO_NOTIFY set: no notify");
    dev_write_used_flags(0);
    cr_assert(kick_case(4, 1, 0), "NO_NOTIFY cleared: notify");
}

Test(vnet_ring, publish_is_one_index_store_per_batch)
{
    fx_make(16, false, true);
    for (uint32_t t = 0; t < 5; t++)
        add1(t, false, 60);
    cr_assert_eq(dev_read_avail_idx(), 0, "adds alone publish nothing");
    cr_assert_eq(vq_unpublished(&fx.q), 5);
    vq_publish(&fx.q);
    cr_assert_eq(dev_read_avail_idx(), 5, "one store covers the batch");
    cr_assert_eq(vq_unpublished(&fx.q), 0);
}

/* ---- interrupt suppression -------------------------------------------------------- */

Test(vnet_ring, event_idx_interrupt_enable_disable)
{
    fx_make(16, false, true);
    for (uint32_t t = 0; t < 6; t++)
        add1(t, true, 2048);
    vq_publish(&fx.q);
    vq_irq_disable(&fx.q);
    cr_assert_eq(dev_read_used_event(), 0xFFFFu, "disabled at last_used 0: used_event = 0xFFFF");
    cr_assert_eq(dev_read_avail_flags(), 0, "with EVENT_IDX the flags stay 0");
    /* The device completes everything: it must never decide to interrupt. */
    for (uint32_t t = 0; t < 6; t++) {
        uint16_t old = fx.dev_used;
        dev_complete(dev_take(NULL, NULL), 100);
        cr_assert_not(virtq_need_event(dev_read_used_event(), fx.dev_used, old),
                      "suppressed: completion %u must not interrupt", t);
    }
    struct vq_used u;
    cr_assert_eq(vq_pop(&fx.q, &u), VQ_OK);
    cr_assert_eq(vq_pop(&fx.q, &u), VQ_OK);
    cr_assert(vq_irq_enable(&fx.q, 1), "4 completions are waiting: the re-check must see them");
    cr_assert_eq(dev_read_used_event(), 2, "enable(1) at last_used 2: used_event = 2");
    while (vq_pop(&fx.q, &u) == VQ_OK)
        ;
    cr_assert_not(vq_irq_enable(&fx.q, 1), "nothing pending: safe to sleep");
    cr_assert_eq(dev_read_used_event(), 6);
    /* Now the device's next completion interrupts. */
    add1(50, true, 2048);
    add1(51, true, 2048);
    vq_publish(&fx.q);
    uint16_t old = fx.dev_used;
    dev_complete(dev_take(NULL, NULL), 1);
    cr_assert(virtq_need_event(dev_read_used_event(), fx.dev_used, old), "armed: interrupt");
    /* enable(after) waits for several completions. */
    cr_assert_eq(vq_pop(&fx.q, &u), VQ_OK);
    add1(52, true, 2048);
    add1(53, true, 2048);
    vq_publish(&fx.q);
    cr_assert_not(vq_irq_enable(&fx.q, 3), "3 outstanding, none done");
    cr_assert_eq(dev_read_used_event(), (uint16_t)(fx.q.last_used + 2u));
    old = fx.dev_used;
    dev_complete(dev_take(NULL, NULL), 1);
    cr_assert_not(virtq_need_event(dev_read_used_event(), fx.dev_used, old), "1 of 3: quiet");
    old = fx.dev_used;
    dev_complete(dev_take(NULL, NULL), 1);
    cr_assert_not(virtq_need_event(dev_read_used_event(), fx.dev_used, old), "2 of 3: quiet");
    cr_assert_not(vq_irq_enable(&fx.q, 3), "re-check: only 2 of 3 done");
    old = fx.dev_used;
    dev_complete(dev_take(NULL, NULL), 1);
    cr_assert(virtq_need_event(dev_read_used_event(), fx.dev_used, old), "3 of 3: interrupt");
    cr_assert(vq_irq_enable(&fx.q, 3), "re-check sees all 3");
}

Test(vnet_ring, event_idx_disable_across_wrap)
{
    fx_make(8, false, true);
    fx.q.avail_idx = fx.q.avail_pub = fx.q.last_used = 0x0000u;
    vq_irq_disable(&fx.q);
    cr_assert_eq(dev_read_used_event(), 0xFFFFu);
    fx.q.last_used = 0x0003u;
    vq_irq_enable(&fx.q, 1);
    cr_assert_eq(dev_read_used_event(), 0x0003u);
    fx.q.last_used = 0xFFFFu;
    vq_irq_enable(&fx.q, 4);
    cr_assert_eq(dev_read_used_event(), 0x0002u, "0xFFFF + 3 wraps to 2");
}

Test(vnet_ring, no_interrupt_flag_without_event_idx)
{
    fx_make(8, false, false);
    cr_assert(fx.q.irq_on, "a fresh ring has interrupts on (the device default)");
    vq_irq_disable(&fx.q);
    cr_assert_eq(dev_read_avail_flags(), VIRTQ_AVAIL_F_NO_INTERRUPT);
    cr_assert_eq(dev_read_used_event(), 0, "used_event is not used without EVENT_IDX");
    cr_assert_not(fx.q.irq_on);
    add1(1, true, 100);
    vq_publish(&fx.q);
    dev_complete(dev_take(NULL, NULL), 10);
    cr_assert(vq_irq_enable(&fx.q, 5), "any completion counts without EVENT_IDX");
    cr_assert_eq(dev_read_avail_flags(), 0, "enable clears NO_INTERRUPT");
    struct vq_used u;
    cr_assert_eq(vq_pop(&fx.q, &u), VQ_OK);
    cr_assert_not(vq_irq_enable(&fx.q, 1));
}

/* ---- used element validation --------------------------------------------------------- */

Test(vnet_ring, used_element_validation)
{
    fx_make(8, false, false);
    struct vq_seg rx[2] = { { .addr = 0x1000, .len = 12, .write = true },
                            { .addr = 0x100c, .len = 2036, .write = true } };
    int h0 = vq_add(&fx.q, rx, 2, 100);     /* descriptors 0, 1 */
    int h1 = add1(101, true, 2048);         /* descriptor 2 */
    cr_assert_eq(h0, 0);
    cr_assert_eq(h1, 2);
    vq_publish(&fx.q);
    struct vq_used u;

    dev_complete(8, 10);
    cr_assert_eq(vq_pop(&fx.q, &u), VQ_BAD_ID, "id 8 on an 8-entry ring");
    cr_assert_eq(u.id, 8);
    cr_assert_eq(fx.q.last_used, 0, "a refused element changes nothing");
    cr_assert_eq(fx.q.outstanding, 2);

    fx.dev_used--;
    dev_complete(1, 10);
    cr_assert_eq(vq_pop(&fx.q, &u), VQ_STALE_ID, "descriptor 1 is inside a chain, not a head");
    fx.dev_used--;
    dev_complete(5, 10);
    cr_assert_eq(vq_pop(&fx.q, &u), VQ_STALE_ID, "descriptor 5 is free");

    fx.dev_used--;
    dev_complete(0, 2049);
    cr_assert_eq(vq_pop(&fx.q, &u), VQ_BAD_LEN, "2049 bytes into a 2048-byte chain");
    cr_assert_eq(u.raw_len, 2049);
    fx.dev_used--;
    dev_complete(0, 2048);
    cr_assert_eq(vq_pop(&fx.q, &u), VQ_OK, "exactly the posted bytes are fine");
    cr_assert_eq(u.token, 100);

    dev_complete(0, 10);
    cr_assert_eq(vq_pop(&fx.q, &u), VQ_STALE_ID, "a second completion of the same chain");
    fx.dev_used--;
    dev_write_used_idx(fx.dev_used);

    /* Used idx jumping past the chains outstanding (1 left). */
    dev_write_used_idx((uint16_t)(fx.dev_used + 2u));
    cr_assert_eq(vq_pop(&fx.q, &u), VQ_BAD_USED_IDX);
    cr_assert_eq(u.idx, (uint16_t)(fx.dev_used + 2u));
    dev_write_used_idx((uint16_t)(fx.dev_used + 0x8000u));
    cr_assert_eq(vq_pop(&fx.q, &u), VQ_BAD_USED_IDX, "a huge jump too");
    dev_write_used_idx(fx.dev_used);
    cr_assert_eq(vq_pop(&fx.q, &u), VQ_EMPTY);
    cr_assert_str_neq(vq_verdict_name(VQ_BAD_LEN), "?");
}

Test(vnet_ring, readable_only_chain_ignores_len)
{
    fx_make(8, true, false);
    cr_assert_geq(add1(7, false, 1526), 0);
    vq_publish(&fx.q);
    dev_complete(dev_take(NULL, NULL), 0xDEADBEEFu);
    struct vq_used u;
    cr_assert_eq(vq_pop(&fx.q, &u), VQ_OK, "TX len is junk on some legacy devices: ignored");
    cr_assert_eq(u.len, 0);
    cr_assert_eq(u.raw_len, 0xDEADBEEFu);
}

/* ---- feature negotiation and header ---------------------------------------------------- */

#define B(x) VIRTIO_BIT(x)

static const struct vnet_wants all = { .status = true, .event_idx = true, .mrg_rxbuf = true };

Test(vnet_proto, modern_requires_version_1_and_mac)
{
    uint64_t acc = 1;
    cr_assert_not_null(vnet_negotiate(B(VIRTIO_NET_F_MAC), true, &all, &acc),
                       "a modern device without VERSION_1 must be refused");
    cr_assert_eq(acc, 0);
    cr_assert_not_null(vnet_negotiate(B(VIRTIO_F_VERSION_1) | B(VIRTIO_NET_F_STATUS), true, &all,
                                      &acc), "no MAC must be refused");
    cr_assert_not_null(vnet_negotiate(B(VIRTIO_NET_F_STATUS), false, &all, &acc),
                       "legacy without MAC must be refused");
}

Test(vnet_proto, modern_takes_what_it_wants)
{
    uint64_t offered = B(VIRTIO_F_VERSION_1) | B(VIRTIO_NET_F_MAC) | B(VIRTIO_NET_F_STATUS) |
                       B(VIRTIO_RING_F_EVENT_IDX) | B(VIRTIO_NET_F_MRG_RXBUF) |
                       B(VIRTIO_NET_F_CSUM) | B(VIRTIO_NET_F_GUEST_CSUM) | B(VIRTIO_NET_F_CTRL_VQ) |
                       B(VIRTIO_RING_F_INDIRECT_DESC) | B(VIRTIO_F_RING_PACKED) |
                       B(VIRTIO_NET_F_MTU) | B(VIRTIO_F_ACCESS_PLATFORM);
    uint64_t acc;
    cr_assert_null(vnet_negotiate(offered, true, &all, &acc));
    cr_assert_eq(acc, B(VIRTIO_F_VERSION_1) | B(VIRTIO_NET_F_MAC) | B(VIRTIO_NET_F_STATUS) |
                          B(VIRTIO_RING_F_EVENT_IDX) | B(VIRTIO_NET_F_MRG_RXBUF) |
                          B(VIRTIO_F_ACCESS_PLATFORM), "accepted 0x%lx", (unsigned long)acc);
    struct vnet_wants none = { 0 };
    cr_assert_null(vnet_negotiate(offered, true, &none, &acc));
    cr_assert_eq(acc, B(VIRTIO_F_VERSION_1) | B(VIRTIO_NET_F_MAC) | B(VIRTIO_F_ACCESS_PLATFORM),
                 "args off: only the required bits");
    struct vnet_wants no_ev = all;
    no_ev.event_idx = false;
    cr_assert_null(vnet_negotiate(offered, true, &no_ev, &acc));
    cr_assert_eq(acc & B(VIRTIO_RING_F_EVENT_IDX), 0, "event_idx=0 declines EVENT_IDX");
    cr_assert_neq(acc & B(VIRTIO_NET_F_MRG_RXBUF), 0);
    /* Not offered: not taken, whatever the args. */
    cr_assert_null(vnet_negotiate(B(VIRTIO_F_VERSION_1) | B(VIRTIO_NET_F_MAC), true, &all, &acc));
    cr_assert_eq(acc, B(VIRTIO_F_VERSION_1) | B(VIRTIO_NET_F_MAC));
}

Test(vnet_proto, legacy_never_sets_high_bits)
{
    uint64_t offered = 0xFFFFFFFFFFFFFFFFull;   /* a confused device */
    uint64_t acc;
    cr_assert_null(vnet_negotiate(offered, false, &all, &acc));
    cr_assert_eq(acc >> 32, 0, "legacy accepted 0x%lx has bits above 31", (unsigned long)acc);
    cr_assert_eq(acc, B(VIRTIO_NET_F_MAC) | B(VIRTIO_NET_F_STATUS) | B(VIRTIO_RING_F_EVENT_IDX) |
                          B(VIRTIO_NET_F_MRG_RXBUF) | B(VIRTIO_F_ANY_LAYOUT));
    /* The GCE-like word observed under QEMU (seed §4): MAC set. */
    cr_assert_null(vnet_negotiate(0x79bf8064ull, false, &all, &acc));
    cr_assert_neq(acc & B(VIRTIO_NET_F_MAC), 0);
    cr_assert_eq(acc >> 32, 0);
    struct vnet_wants none = { 0 };
    cr_assert_null(vnet_negotiate(B(VIRTIO_NET_F_MAC) | B(VIRTIO_NET_F_MRG_RXBUF), false, &none,
                                  &acc));
    cr_assert_eq(acc, B(VIRTIO_NET_F_MAC), "mrg_rxbuf=0 declines it");
}

Test(vnet_proto, header_length_and_layout)
{
    cr_assert_eq(virtio_net_hdr_len(B(VIRTIO_NET_F_MAC)), 10, "legacy without MRG_RXBUF: 10");
    cr_assert_eq(virtio_net_hdr_len(B(VIRTIO_NET_F_MAC) | B(VIRTIO_NET_F_MRG_RXBUF)), 12);
    cr_assert_eq(virtio_net_hdr_len(B(VIRTIO_F_VERSION_1)), 12, "modern: always 12");
    cr_assert_eq(virtio_net_hdr_len(B(VIRTIO_F_VERSION_1) | B(VIRTIO_NET_F_MRG_RXBUF)), 12);
    cr_assert(vnet_split_header(B(VIRTIO_NET_F_MAC)), "legacy without ANY_LAYOUT: own descriptor");
    cr_assert_not(vnet_split_header(B(VIRTIO_NET_F_MAC) | B(VIRTIO_F_ANY_LAYOUT)));
    cr_assert_not(vnet_split_header(B(VIRTIO_F_VERSION_1)), "VERSION_1 implies any layout");
}

/* ---- receive reassembly ------------------------------------------------------------------ */

static uint8_t asm_buf[ETH_FRAME_MAX];

static void put_nb(uint8_t *b, uint16_t nb)
{
    b[VIRTIO_NET_HDR_NUM_BUFFERS] = (uint8_t)nb;
    b[VIRTIO_NET_HDR_NUM_BUFFERS + 1] = (uint8_t)(nb >> 8);
}

Test(vnet_proto, rx_single_buffer_frames)
{
    struct vnet_rx_asm a = { .buf = asm_buf };
    uint8_t b[2048];
    for (unsigned i = 0; i < sizeof b; i++)
        b[i] = (uint8_t)i;
    const uint8_t *f;
    uint32_t fl;
    enum vnet_rx_bad why;
    cr_assert_eq(vnet_rx_take(&a, 10, false, 256, b, 10 + 60, &f, &fl, &why), VNET_RX_FRAME);
    cr_assert_eq(f, b + 10, "a single-buffer frame is returned in place");
    cr_assert_eq(fl, 60);
    cr_assert_eq(vnet_rx_take(&a, 10, false, 256, b, 10 + 1514, &f, &fl, &why), VNET_RX_FRAME);
    cr_assert_eq(fl, 1514);
    cr_assert_eq(vnet_rx_take(&a, 10, false, 256, b, 10 + 1515, &f, &fl, &why), VNET_RX_DROP);
    cr_assert_eq(why, VNET_RX_LONG);
    cr_assert_eq(vnet_rx_take(&a, 10, false, 256, b, 10 + 13, &f, &fl, &why), VNET_RX_DROP);
    cr_assert_eq(why, VNET_RX_SHORT, "13 frame bytes are less than an Ethernet header");
    cr_assert_eq(vnet_rx_take(&a, 12, false, 256, b, 5, &f, &fl, &why), VNET_RX_DROP);
    cr_assert_eq(why, VNET_RX_SHORT, "shorter than the header");
    put_nb(b, 1);
    cr_assert_eq(vnet_rx_take(&a, 12, true, 256, b, 12 + 100, &f, &fl, &why), VNET_RX_FRAME,
                 "MRG_RXBUF with num_buffers 1");
    cr_assert_eq(f, b + 12);
    cr_assert_eq(fl, 100);
}

Test(vnet_proto, rx_merged_frame_is_assembled)
{
    struct vnet_rx_asm a = { .buf = asm_buf };
    uint8_t b1[2048], b2[2048], b3[2048];
    memset(b1, 0, 12);
    put_nb(b1, 3);
    for (unsigned i = 0; i < 500; i++) {
        b1[12 + i] = (uint8_t)(i * 7u);
        b2[i] = (uint8_t)((500 + i) * 7u);
        b3[i] = (uint8_t)((1000 + i) * 7u);
    }
    const uint8_t *f;
    uint32_t fl;
    enum vnet_rx_bad why;
    cr_assert_eq(vnet_rx_take(&a, 12, true, 256, b1, 12 + 500, &f, &fl, &why), VNET_RX_MORE);
    cr_assert_eq(vnet_rx_take(&a, 12, true, 256, b2, 500, &f, &fl, &why), VNET_RX_MORE);
    memset(b1, 0xEE, sizeof b1);    /* buffers may be reused after each call */
    memset(b2, 0xEE, sizeof b2);
    cr_assert_eq(vnet_rx_take(&a, 12, true, 256, b3, 400, &f, &fl, &why), VNET_RX_FRAME);
    cr_assert_eq(f, asm_buf);
    cr_assert_eq(fl, 1400);
    for (unsigned i = 0; i < 1400; i++)
        cr_assert_eq(f[i], (uint8_t)(i * 7u), "byte %u of the merged frame", i);
    /* The next frame starts fresh. */
    put_nb(b1, 1);
    cr_assert_eq(vnet_rx_take(&a, 12, true, 256, b1, 12 + 64, &f, &fl, &why), VNET_RX_FRAME);
    cr_assert_eq(fl, 64);
}

Test(vnet_proto, rx_merged_bad_frames_are_dropped_whole)
{
    struct vnet_rx_asm a = { .buf = asm_buf };
    uint8_t b[2048] = { 0 };
    const uint8_t *f;
    uint32_t fl;
    enum vnet_rx_bad why;
    put_nb(b, 0);
    cr_assert_eq(vnet_rx_take(&a, 12, true, 256, b, 100, &f, &fl, &why), VNET_RX_DROP);
    cr_assert_eq(why, VNET_RX_NUM_BUFFERS, "num_buffers 0");
    put_nb(b, 257);
    cr_assert_eq(vnet_rx_take(&a, 12, true, 256, b, 100, &f, &fl, &why), VNET_RX_DROP);
    cr_assert_eq(why, VNET_RX_NUM_BUFFERS, "more buffers than were posted");
    /* Too long in total: every buffer is consumed, then one drop. */
    put_nb(b, 2);
    cr_assert_eq(vnet_rx_take(&a, 12, true, 256, b, 12 + 1000, &f, &fl, &why), VNET_RX_MORE);
    cr_assert_eq(vnet_rx_take(&a, 12, true, 256, b, 600, &f, &fl, &why), VNET_RX_DROP);
    cr_assert_eq(why, VNET_RX_LONG);
    /* Too short in total (header-only first buffer + 10 bytes). */
    put_nb(b, 2);
    cr_assert_eq(vnet_rx_take(&a, 12, true, 256, b, 12, &f, &fl, &why), VNET_RX_MORE);
    cr_assert_eq(vnet_rx_take(&a, 12, true, 256, b, 10, &f, &fl, &why), VNET_RX_DROP);
    cr_assert_eq(why, VNET_RX_SHORT);
    /* First buffer alone already too long: its followers are still eaten. */
    put_nb(b, 2);
    cr_assert_eq(vnet_rx_take(&a, 12, true, 256, b, 12 + 1600, &f, &fl, &why), VNET_RX_MORE);
    cr_assert_eq(vnet_rx_take(&a, 12, true, 256, b, 10, &f, &fl, &why), VNET_RX_DROP);
    cr_assert_eq(why, VNET_RX_LONG);
    put_nb(b, 1);
    cr_assert_eq(vnet_rx_take(&a, 12, true, 256, b, 12 + 60, &f, &fl, &why), VNET_RX_FRAME,
                 "recovered for the next frame");
    cr_assert_str_neq(vnet_rx_bad_name(VNET_RX_LONG), "?");
}
