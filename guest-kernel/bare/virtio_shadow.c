/* virtio-net interposition (contract in virtio_shadow.h; layouts from
 * moat/virtio_regs.h, the virtio 1.2 specification's). */
#include "com1.h"
#include "dom_internal.h"
#include "gk/cpu.h"
#include "gk/kstring.h"
#include "moat/virtio_regs.h"
#include "palloc.h"
#include "virtio_shadow.h"

#define PAGE 4096ull
#define QMAX 4u
/* What the device may offer and the driver accept: nothing here puts an
 * address the monitor does not translate in front of the device. */
#define SAFE_FEATURES (VIRTIO_BIT(VIRTIO_NET_F_MTU) | VIRTIO_BIT(VIRTIO_NET_F_MAC) |           \
                       VIRTIO_BIT(VIRTIO_NET_F_MRG_RXBUF) | VIRTIO_BIT(VIRTIO_NET_F_STATUS) |  \
                       VIRTIO_BIT(VIRTIO_F_ANY_LAYOUT) | VIRTIO_BIT(VIRTIO_F_VERSION_1) |      \
                       VIRTIO_BIT(VIRTIO_F_ACCESS_PLATFORM))

struct vq {
    bool live;
    uint32_t size;
    uint64_t v_desc, v_avail, v_used;   /* what the domain wrote (modern) */
    uint32_t v_pfn;                     /* (legacy) */
    uint64_t desc, avail, used;         /* the domain's rings, physical */
    uint64_t sh, sh_desc, sh_avail, sh_used, sh_cap;    /* the shadow */
    uint16_t avail_seen, used_seen;
};

struct virtio_shadow {
    struct virtio_layout l;
    uint32_t dfselect, gfselect;
    uint16_t qsel;
    uint32_t qsize[QMAX];               /* modern: the size the driver chose */
    struct vq q[QMAX];
    uint64_t scratch;                   /* where refused descriptors point */
    uint64_t chains, refused;
    uint64_t bad_notify_off;            /* the device named a notify address past its region */
    bool passthrough;                   /* an IOMMU translates: rings go to the device as written */
};

static struct virtio_shadow pool[4];
static unsigned n_pool;

static uint16_t pm16(uint64_t pa) { uint16_t v; memcpy(&v, (const void *)(uintptr_t)pa, 2); return v; }
static void pw16(uint64_t pa, uint16_t v)
{
    __atomic_store_n((uint16_t *)(uintptr_t)pa, v, __ATOMIC_RELEASE);
}

static const char *init(struct virtio_shadow *s, const struct virtio_layout *l)
{
    *s = (struct virtio_shadow){ .l = *l, .scratch = palloc(1, 0) };
    if (!s->scratch)
        return "no memory for the scratch page";
    virtio_shadow_reset(s);
    return NULL;
}

struct virtio_shadow *virtio_shadow_attach(const struct virtio_layout *l, const char **why)
{
    if (n_pool == sizeof pool / sizeof pool[0]) {
        *why = "too many virtio devices";
        return NULL;
    }
    *why = init(&pool[n_pool], l);
    return *why ? NULL : &pool[n_pool++];
}

struct virtio_shadow *virtio_shadow_fixed(const struct virtio_layout *l)
{
    static struct virtio_shadow one;
    return init(&one, l) ? NULL : &one;
}

uint64_t virtio_shadow_scratch(const struct virtio_shadow *s) { return s->scratch; }

/* ---- the device's registers, raw -------------------------------------------------- */

static volatile uint8_t *mreg(const struct virtio_shadow *s, uint32_t bar, uint64_t off)
{
    return (volatile uint8_t *)(uintptr_t)(s->l.bar_base[bar] + off);
}

static uint64_t raw_rd(const struct virtio_shadow *s, uint32_t bar, uint64_t off, unsigned w)
{
    if (!s->l.modern) {
        uint16_t p = (uint16_t)(s->l.io_base + off);
        return w == 1 ? inb(p) : w == 2 ? inw(p) : inl(p);
    }
    volatile uint8_t *r = mreg(s, bar, off);
    switch (w) {
    case 1: return *r;
    case 2: return *(volatile uint16_t *)r;
    case 4: return *(volatile uint32_t *)r;
    default: return *(volatile uint64_t *)r;
    }
}

static void raw_wr(const struct virtio_shadow *s, uint32_t bar, uint64_t off, unsigned w, uint64_t v)
{
    if (!s->l.modern) {
        uint16_t p = (uint16_t)(s->l.io_base + off);
        if (w == 1)
            outb(p, (uint8_t)v);
        else if (w == 2)
            outw(p, (uint16_t)v);
        else
            outl(p, (uint32_t)v);
        return;
    }
    volatile uint8_t *r = mreg(s, bar, off);
    switch (w) {
    case 1: *r = (uint8_t)v; break;
    case 2: *(volatile uint16_t *)r = (uint16_t)v; break;
    case 4: *(volatile uint32_t *)r = (uint32_t)v; break;
    default: *(volatile uint64_t *)r = v; break;
    }
}

/* A device reset forgets every queue (its addresses read as 0 again). */
static void forget_queues(struct virtio_shadow *s)
{
    for (unsigned i = 0; i < QMAX; i++) {
        struct vq *q = &s->q[i];
        q->live = false;
        q->v_desc = q->v_avail = q->v_used = 0;
        q->v_pfn = 0;
    }
}

void virtio_shadow_reset(struct virtio_shadow *s)
{
    if (s->l.modern)
        raw_wr(s, s->l.common_bar, s->l.common_off + VIRTIO_COMMON_STATUS, 1, 0);
    else
        raw_wr(s, 0, VIRTIO_LEGACY_STATUS, 1, 0);
    forget_queues(s);
}

/* ---- queues ------------------------------------------------------------------------ */

/* Check the domain's rings and set up the shadow; NULL or why not. */
static const char *vq_enable(struct virtio_shadow *s, struct dom *d, struct vq *q, uint32_t size)
{
    if (!virtq_size_valid(size))
        return "queue size is not a power of two up to 32768";
    q->desc = dom_window_pa(d, q->v_desc, virtq_desc_bytes(size));
    q->avail = dom_window_pa(d, q->v_avail, virtq_avail_bytes(size));
    q->used = dom_window_pa(d, q->v_used, virtq_used_bytes(size));
    if (!q->desc || !q->avail || !q->used || (q->v_desc & 15) || (q->v_avail & 1) || (q->v_used & 3))
        return "a ring is misaligned or outside the domain's DMA windows";
    uint64_t bytes = virtq_legacy_bytes(size);      /* room for every layout */
    if (q->sh_cap < bytes) {
        q->sh = palloc(bytes / PAGE, 0);
        q->sh_cap = q->sh ? bytes : 0;
        if (!q->sh)
            return "no memory for a shadow ring";
    }
    memset((void *)(uintptr_t)q->sh, 0, bytes);
    q->sh_desc = q->sh;
    q->sh_avail = q->sh + virtq_legacy_avail_off(size);
    q->sh_used = s->l.modern ? q->used : q->sh + virtq_legacy_used_off(size);
    q->size = size;
    q->avail_seen = pm16(q->avail + VIRTQ_AVAIL_IDX);   /* a fresh ring: 0 */
    q->used_seen = 0;
    q->live = true;
    return NULL;
}

/* Copy one chain from the domain's table into the shadow. */
/* *budget: descriptors the chains of this publication may still hold;
 * false when this chain would go past it (nothing more is copied). */
static bool copy_chain(struct virtio_shadow *s, struct dom *d, uint32_t qi, struct vq *q,
                       uint16_t head, uint32_t *budget)
{
    uint16_t i = head;
    for (uint32_t n = 0;; n++) {
        if (*budget == 0)
            return false;
        --*budget;
        struct virtq_desc e;
        memcpy(&e, (const void *)(uintptr_t)(q->desc + i * 16ull), sizeof e);
        const char *why = NULL;
        uint64_t pa = 0;
        if (e.flags & VIRTQ_DESC_F_INDIRECT)
            why = "an indirect descriptor (not negotiated)";
        else if (!e.len || !(pa = dom_window_pa(d, e.addr, e.len)))
            why = "a buffer outside the domain's DMA windows";
        if ((e.flags & VIRTQ_DESC_F_NEXT) && (e.next >= q->size || n + 1 >= q->size)) {
            why = why ? why : "a chain that leaves the table or loops";
            e.flags &= (uint16_t)~VIRTQ_DESC_F_NEXT;
        }
        if (why) {
            s->refused++;
            dom_audit(d, "virtio queue %u descriptor %u (address 0x%llx, %u bytes) refused at "
                      "the notify: %s; the device gets a scratch page", qi, i,
                      (unsigned long long)e.addr, e.len, why);
            pa = s->scratch;
            e.len = e.len < PAGE ? e.len : (uint32_t)PAGE;
            e.flags &= (uint16_t)~VIRTQ_DESC_F_INDIRECT;
        }
        e.addr = pa;
        memcpy((void *)(uintptr_t)(q->sh_desc + i * 16ull), &e, sizeof e);
        if (!(e.flags & VIRTQ_DESC_F_NEXT))
            return true;
        i = e.next;
    }
}

/* Publish the chains the domain made available since the last time;
 * true when there were some (the device should hear of them). */
static bool vq_push(struct virtio_shadow *s, struct dom *d, uint32_t qi)
{
    struct vq *q = &s->q[qi];
    if (!q->live)
        return false;
    uint16_t idx = pm16(q->avail + VIRTQ_AVAIL_IDX), n = (uint16_t)(idx - q->avail_seen);
    if (n == 0)
        return false;
    if (n > q->size) {
        dom_kill(d, "virtio queue %u: avail index moved by %u on a %u-entry ring", qi, n, q->size);
        return false;
    }
    /* Chains in flight never share descriptors, so together they hold at
     * most the ring's size: the bound on the monitor's work per call. */
    uint32_t budget = q->size;
    for (uint16_t k = 0; k < n; k++) {
        uint16_t slot = (uint16_t)((q->avail_seen + k) & (q->size - 1));
        uint16_t head = pm16(q->avail + VIRTQ_AVAIL_RING(slot));
        if (head >= q->size) {
            dom_kill(d, "virtio queue %u: chain head %u on a %u-entry ring", qi, head, q->size);
            return false;
        }
        if (!copy_chain(s, d, qi, q, head, &budget)) {
            dom_kill(d, "virtio queue %u: the %u chains made available hold more descriptors "
                     "than the %u-entry ring has", qi, n, q->size);
            return false;
        }
        pw16(q->sh_avail + VIRTQ_AVAIL_RING(slot), head);
        s->chains++;
    }
    pw16(q->sh_avail + VIRTQ_AVAIL_FLAGS, pm16(q->avail + VIRTQ_AVAIL_FLAGS));
    __atomic_thread_fence(__ATOMIC_RELEASE);
    pw16(q->sh_avail + VIRTQ_AVAIL_IDX, idx);
    q->avail_seen = idx;
    return true;
}

/* Legacy: the device's used entries, copied to the domain's ring. */
static void vq_pull(struct virtio_shadow *s, struct vq *q)
{
    if (s->l.modern || !q->live)
        return;
    uint16_t idx = __atomic_load_n((uint16_t *)(uintptr_t)(q->sh_used + VIRTQ_USED_IDX),
                                   __ATOMIC_ACQUIRE);
    for (; q->used_seen != idx; q->used_seen++) {
        uint32_t slot = q->used_seen & (q->size - 1);
        memcpy((void *)(uintptr_t)(q->used + VIRTQ_USED_RING(slot)),
               (const void *)(uintptr_t)(q->sh_used + VIRTQ_USED_RING(slot)), 8);
    }
    pw16(q->used + VIRTQ_USED_FLAGS, pm16(q->sh_used + VIRTQ_USED_FLAGS));
    pw16(q->used + VIRTQ_USED_IDX, idx);
}

static void notify(struct virtio_shadow *s, uint32_t qi)
{
    if (s->l.modern) {
        /* The device says where (queue_notify_off); the region bounds it. */
        uint64_t noff = raw_rd(s, s->l.common_bar, s->l.common_off + VIRTIO_COMMON_Q_NOFF, 2);
        uint64_t at = noff * s->l.notify_mult;
        if (at + 2 <= s->l.notify_len)
            raw_wr(s, s->l.notify_bar, s->l.notify_off + at, 2, qi);
        else
            s->bad_notify_off++;
    } else {
        raw_wr(s, 0, VIRTIO_LEGACY_QUEUE_NOTIFY, 2, qi);
    }
}

void virtio_shadow_sync(struct virtio_shadow *s, struct dom *d)
{
    if (s->passthrough)
        return;
    for (uint32_t i = 0; i < QMAX; i++) {
        vq_pull(s, &s->q[i]);
        if (vq_push(s, d, i)) {
            if (s->l.modern)   /* keep queue_select as the driver left it */
                raw_wr(s, s->l.common_bar, s->l.common_off + VIRTIO_COMMON_Q_SELECT, 2, i);
            notify(s, i);
            if (s->l.modern)
                raw_wr(s, s->l.common_bar, s->l.common_off + VIRTIO_COMMON_Q_SELECT, 2, s->qsel);
        }
    }
}

/* ---- modern: the common configuration ------------------------------------------------ */

static uint64_t *qaddr(struct vq *q, uint64_t reg)
{
    return reg < VIRTIO_COMMON_Q_AVAILLO ? &q->v_desc : reg < VIRTIO_COMMON_Q_USEDLO ? &q->v_avail
                                                                                    : &q->v_used;
}

static uint64_t common(struct virtio_shadow *s, struct dom *d, uint64_t off, unsigned w, bool wr,
                       uint64_t v)
{
    const struct virtio_layout *l = &s->l;
    struct vq *q = s->qsel < QMAX ? &s->q[s->qsel] : NULL;
    if (s->passthrough && off != VIRTIO_COMMON_DF && off != VIRTIO_COMMON_GF &&
        off != VIRTIO_COMMON_DFSELECT && off != VIRTIO_COMMON_GFSELECT) {
        if (!wr)
            return raw_rd(s, l->common_bar, l->common_off + off, w);
        raw_wr(s, l->common_bar, l->common_off + off, w, v);
        return 0;
    }
    if (off >= VIRTIO_COMMON_Q_DESCLO && off < VIRTIO_COMMON_SIZE) {
        if (!q)
            return 0;
        uint64_t *a = qaddr(q, off), sh = (off & 4) ? 32 : 0;
        if (!wr)
            return w == 8 ? *a : (uint32_t)(*a >> sh);
        if (q->live)
            dom_audit(d, "virtio queue %u address changed while enabled: ignored", s->qsel);
        else if (w == 8)
            *a = v;
        else
            *a = (*a & ~(0xFFFFFFFFull << sh)) | (v & 0xFFFFFFFFull) << sh;
        return 0;
    }
    switch (off) {
    case VIRTIO_COMMON_DFSELECT:
        if (wr)
            s->dfselect = (uint32_t)v;
        break;
    case VIRTIO_COMMON_DF:
        if (!wr) {
            raw_wr(s, l->common_bar, l->common_off + VIRTIO_COMMON_DFSELECT, 4, s->dfselect);
            uint64_t f = raw_rd(s, l->common_bar, l->common_off + VIRTIO_COMMON_DF, 4);
            return s->dfselect < 2 ? f & (uint32_t)(SAFE_FEATURES >> 32 * s->dfselect) : 0;
        }
        return 0;
    case VIRTIO_COMMON_GFSELECT:
        if (wr)
            s->gfselect = (uint32_t)v;
        break;
    case VIRTIO_COMMON_GF:
        if (wr && s->gfselect < 2) {
            uint32_t safe = (uint32_t)(SAFE_FEATURES >> 32 * s->gfselect);
            if (v & ~(uint64_t)safe)
                dom_audit(d, "virtio features 0x%llx (word %u) not offered: dropped",
                          (unsigned long long)(v & ~(uint64_t)safe), s->gfselect);
            raw_wr(s, l->common_bar, l->common_off + VIRTIO_COMMON_GFSELECT, 4, s->gfselect);
            raw_wr(s, l->common_bar, l->common_off + VIRTIO_COMMON_GF, 4, v & safe);
        }
        return 0;
    case VIRTIO_COMMON_Q_SELECT:
        if (wr)
            s->qsel = (uint16_t)v;
        break;
    case VIRTIO_COMMON_Q_ENABLE:
        if (wr && v == 1 && q && !q->live) {
            uint32_t size = (uint32_t)raw_rd(s, l->common_bar, l->common_off + VIRTIO_COMMON_Q_SIZE, 2);
            const char *why = vq_enable(s, d, q, size);
            if (why) {
                dom_audit(d, "virtio queue %u not enabled: %s", s->qsel, why);
                return 0;
            }
            raw_wr(s, l->common_bar, l->common_off + VIRTIO_COMMON_Q_DESCLO, 4, (uint32_t)q->sh_desc);
            raw_wr(s, l->common_bar, l->common_off + VIRTIO_COMMON_Q_DESCHI, 4, q->sh_desc >> 32);
            raw_wr(s, l->common_bar, l->common_off + VIRTIO_COMMON_Q_AVAILLO, 4, (uint32_t)q->sh_avail);
            raw_wr(s, l->common_bar, l->common_off + VIRTIO_COMMON_Q_AVAILHI, 4, q->sh_avail >> 32);
            raw_wr(s, l->common_bar, l->common_off + VIRTIO_COMMON_Q_USEDLO, 4, (uint32_t)q->sh_used);
            raw_wr(s, l->common_bar, l->common_off + VIRTIO_COMMON_Q_USEDHI, 4, q->sh_used >> 32);
        } else if (wr) {
            return 0;               /* 0 is not a value a driver may write */
        }
        break;
    case VIRTIO_COMMON_STATUS:
        if (wr && (v & 0xFF) == 0)
            forget_queues(s);
        break;
    default:
        break;
    }
    if (off == VIRTIO_COMMON_Q_SELECT || off == VIRTIO_COMMON_Q_SIZE ||
        off == VIRTIO_COMMON_Q_MSIX || off == VIRTIO_COMMON_Q_ENABLE || off == VIRTIO_COMMON_Q_NOFF)
        raw_wr(s, l->common_bar, l->common_off + VIRTIO_COMMON_Q_SELECT, 2, s->qsel);
    if (wr) {
        raw_wr(s, l->common_bar, l->common_off + off, w, v);
        return 0;
    }
    return raw_rd(s, l->common_bar, l->common_off + off, w);
}

static bool in(uint64_t off, unsigned w, uint64_t start, uint64_t len)
{
    return off >= start && off - start < len && w <= len - (off - start);
}

uint64_t virtio_shadow_mmio(struct virtio_shadow *s, struct dom *d, uint32_t bar, uint64_t off,
                            unsigned width, bool is_write, uint64_t v)
{
    const struct virtio_layout *l = &s->l;
    if (bar == l->common_bar && in(off, width, l->common_off, l->common_len))
        return common(s, d, off - l->common_off, width, is_write, v);
    if (bar == l->notify_bar && in(off, width, l->notify_off, l->notify_len)) {
        if (is_write && s->passthrough) {
            raw_wr(s, bar, off, width, v);
        } else if (is_write) {
            uint32_t qi = (uint32_t)(v & 0xFFFF);
            if (qi < QMAX && vq_push(s, d, qi))
                notify(s, qi);
        }
        return 0;
    }
    if (bar == l->isr_bar && in(off, width, l->isr_off, l->isr_len))
        return is_write ? 0 : raw_rd(s, bar, off, width);
    if (bar == l->device_bar && in(off, width, l->device_off, l->device_len)) {
        if (!is_write)
            return raw_rd(s, bar, off, width);
        raw_wr(s, bar, off, width, v);
        return 0;
    }
    dom_audit(d, "virtio BAR %u offset 0x%llx: in no region the domain may use", bar,
              (unsigned long long)off);
    return 0;
}

/* ---- legacy: the I/O block ------------------------------------------------------------- */

uint64_t virtio_shadow_pio(struct virtio_shadow *s, struct dom *d, uint32_t off, unsigned width,
                           bool is_write, uint64_t v)
{
    struct vq *q = s->qsel < QMAX ? &s->q[s->qsel] : NULL;
    switch (off) {
    case VIRTIO_LEGACY_HOST_FEATURES:
        return is_write ? 0 : raw_rd(s, 0, off, 4) & (uint32_t)SAFE_FEATURES;
    case VIRTIO_LEGACY_GUEST_FEATURES:
        if (!is_write)
            return raw_rd(s, 0, off, 4);
        if (v & ~(uint64_t)(uint32_t)SAFE_FEATURES)
            dom_audit(d, "virtio features 0x%llx not offered: dropped",
                      (unsigned long long)(v & ~(uint64_t)(uint32_t)SAFE_FEATURES));
        raw_wr(s, 0, off, 4, v & (uint32_t)SAFE_FEATURES);
        return 0;
    case VIRTIO_LEGACY_QUEUE_PFN:
        if (!q)
            return 0;
        if (!is_write)
            return q->v_pfn;
        if (v == 0) {
            q->live = false;
            q->v_pfn = 0;
            raw_wr(s, 0, off, 4, 0);
            return 0;
        } else {
            uint32_t size = (uint32_t)raw_rd(s, 0, VIRTIO_LEGACY_QUEUE_NUM, 2);
            q->v_pfn = (uint32_t)v;
            q->v_desc = v << VIRTIO_LEGACY_PFN_SHIFT;
            q->v_avail = q->v_desc + virtq_legacy_avail_off(size);
            q->v_used = q->v_desc + virtq_legacy_used_off(size);
            const char *why = vq_enable(s, d, q, size);
            if (why) {
                dom_audit(d, "virtio queue %u not enabled: %s", s->qsel, why);
                return 0;
            }
            raw_wr(s, 0, off, 4, q->sh >> VIRTIO_LEGACY_PFN_SHIFT);
        }
        return 0;
    case VIRTIO_LEGACY_QUEUE_SEL:
        if (is_write)
            s->qsel = (uint16_t)v;
        break;
    case VIRTIO_LEGACY_QUEUE_NOTIFY:
        if (is_write && v < QMAX && vq_push(s, d, (uint32_t)v))
            notify(s, (uint32_t)v);
        return 0;
    case VIRTIO_LEGACY_STATUS:
        if (is_write && (v & 0xFF) == 0)
            forget_queues(s);
        break;
    case VIRTIO_LEGACY_ISR:
        if (!is_write)
            virtio_shadow_sync(s, d);   /* the used entries the interrupt is about */
        break;
    default:
        break;
    }
    if (is_write) {
        raw_wr(s, 0, off, width, v);
        return 0;
    }
    return raw_rd(s, 0, off, width);
}

bool virtio_shadow_iommu_capable(struct virtio_shadow *s)
{
    if (!s->l.modern)
        return false;                   /* the legacy transport has no ACCESS_PLATFORM */
    raw_wr(s, s->l.common_bar, s->l.common_off + VIRTIO_COMMON_DFSELECT, 4, 1);
    uint64_t hi = raw_rd(s, s->l.common_bar, s->l.common_off + VIRTIO_COMMON_DF, 4);
    return hi & (VIRTIO_BIT(VIRTIO_F_ACCESS_PLATFORM) >> 32);
}

void virtio_shadow_passthrough(struct virtio_shadow *s, bool on) { s->passthrough = on; }

void virtio_shadow_describe(const struct virtio_shadow *s)
{
    if (s->passthrough) {
        com1_printf("    virtio-net (modern): DMA translated by VT-d (no shadow rings)\n");
        return;
    }
    unsigned live = 0;
    for (unsigned i = 0; i < QMAX; i++)
        live += s->q[i].live;
    com1_printf("    virtio-net (%s): %u queue%s shadowed, %llu chains copied, %llu descriptors "
                "refused, %llu notifies the device placed past its region\n",
                s->l.modern ? "modern" : "legacy", live, live == 1 ? "" : "s",
                (unsigned long long)s->chains, (unsigned long long)s->refused,
                (unsigned long long)s->bad_notify_off);
}
