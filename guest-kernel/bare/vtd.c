/* Intel VT-d DMA remapping (contract in vtd.h; register layout and table
 * formats from the VT-d specification: root and context entries, second-
 * level page tables, queued (else register-based) invalidation, fault
 * recording). The interrupt remapping table is vtd_ir.c's. */
#include "com1.h"
#include "dom_internal.h"
#include "gk/cpu.h"
#include "gk/kstring.h"
#include "mmio_map.h"
#include "palloc.h"
#include "vtd.h"
#include "vtd_internal.h"

#define REG_VER    0x00u
#define REG_CAP    0x08u
#define REG_ECAP   0x10u
#define REG_GCMD   0x18u
#define REG_GSTS   0x1Cu
#define REG_RTADDR 0x20u
#define REG_CCMD   0x28u
#define REG_FSTS   0x34u
#define REG_IQH    0x80u
#define REG_IQT    0x88u
#define REG_IQA    0x90u
#define REG_IRTA   0xB8u
#define GSTS_TES   (1u << 31)
#define GSTS_RTPS  (1u << 30)
#define GSTS_QIES  (1u << 26)
#define GSTS_IRES  (1u << 25)
#define GSTS_IRTPS (1u << 24)
#define FSTS_IQE   (1u << 4)
#define ECAP_QI    (1ull << 1)
#define ECAP_IR    (1ull << 3)
#define IRT_SIZE_FIELD 7u               /* 2^(7+1) = VTD_IRT_ENTRIES */
/* Queued invalidation descriptors (128-bit): the type in bits 3:0. */
#define QI_CC_GLOBAL    (0x1ull | 1ull << 4)               /* context cache, global */
#define QI_IOTLB_GLOBAL (0x2ull | 1ull << 4 | 3ull << 6)   /* IOTLB, global, drain R+W */
#define QI_IEC_GLOBAL   0x4ull                              /* interrupt entry cache, global */
#define QI_WAIT         (0x5ull | 1ull << 5)               /* wait, status write */
#define QI_ENTRIES      256u                                /* one page */
#define GSTS_KEEP  (GSTS_TES | (1u << 26) | (1u << 25) | (1u << 23))  /* TE, QIE, IRE, CFI */
#define CCMD_ICC   (1ull << 63)
#define CCMD_GLOBAL (1ull << 61)
#define IOTLB_IVT  (1ull << 63)
#define IOTLB_GLOBAL (1ull << 60)
#define PTE_R 1ull
#define PTE_W 2ull
#define PAGE 4096ull
#define ADDR_MASK 0x000FFFFFFFFFF000ull
#define WAIT_SPINS 10000000u

static volatile uint8_t *regs;
static uint64_t root, iotlb_off, fault_off, faults_seen;
static uint32_t n_fault_regs, levels;
static bool active, queued, ir;
static uint64_t iq;                     /* the invalidation queue's page, 0 = register-based */
static uint32_t iq_tail;                /* next descriptor */
static volatile uint32_t iq_status;     /* where wait descriptors write */
static uint32_t iq_seq;
static struct { uint8_t id; uint16_t sid; } ioapic_sid[ACPI_IOAPICS_MAX];
static uint32_t n_ioapic_sid;

static uint32_t rd32(uint32_t off) { return *(volatile uint32_t *)(regs + off); }
static uint64_t rd64(uint32_t off) { return *(volatile uint64_t *)(regs + off); }
static void wr32(uint32_t off, uint32_t v) { *(volatile uint32_t *)(regs + off) = v; }
static void wr64(uint32_t off, uint64_t v) { *(volatile uint64_t *)(regs + off) = v; }
static uint64_t *table(uint64_t pa) { return (uint64_t *)(uintptr_t)pa; }

static bool wait_gsts(uint32_t bit, bool set)
{
    for (uint32_t i = 0; i < WAIT_SPINS; i++)
        if (((rd32(REG_GSTS) & bit) != 0) == set)
            return true;
    return false;
}

static bool wait_clear64(uint32_t off, uint64_t bit)
{
    for (uint32_t i = 0; i < WAIT_SPINS; i++)
        if (!(rd64(off) & bit))
            return true;
    return false;
}

static void command(uint32_t bit)
{
    wr32(REG_GCMD, (rd32(REG_GSTS) & GSTS_KEEP) | bit);
}

/* Queue descriptors, then a wait whose status write says the unit has
 * done them all; false when it reported a queue error or never wrote. */
static bool queue(const uint64_t *desc, uint32_t n)
{
    uint64_t *q = table(iq);
    uint32_t seq = ++iq_seq;
    for (uint32_t i = 0; i <= n; i++) {
        uint64_t lo = i < n ? desc[i] : QI_WAIT | (uint64_t)seq << 32;
        uint64_t hi = i < n ? 0 : (uint64_t)(uintptr_t)&iq_status;
        q[iq_tail * 2] = lo;
        q[iq_tail * 2 + 1] = hi;
        iq_tail = (iq_tail + 1) % QI_ENTRIES;
    }
    __atomic_thread_fence(__ATOMIC_RELEASE);
    wr64(REG_IQT, (uint64_t)iq_tail << 4);
    for (uint32_t i = 0; i < WAIT_SPINS; i++) {
        if (rd32(REG_FSTS) & FSTS_IQE)
            return false;
        if (__atomic_load_n(&iq_status, __ATOMIC_ACQUIRE) == seq)
            return true;
    }
    return false;
}

/* Context cache and IOTLB, globally (rare: assignment and release). */
static bool invalidate(void)
{
    if (queued)
        return queue((const uint64_t[]){ QI_CC_GLOBAL, QI_IOTLB_GLOBAL }, 2);
    wr64(REG_CCMD, CCMD_ICC | CCMD_GLOBAL);
    if (!wait_clear64(REG_CCMD, CCMD_ICC))
        return false;
    wr64((uint32_t)iotlb_off + 8, IOTLB_IVT | IOTLB_GLOBAL);
    return wait_clear64((uint32_t)iotlb_off + 8, IOTLB_IVT);
}

bool vtd_invalidate_iec(void)
{
    return queued && queue((const uint64_t[]){ QI_IEC_GLOBAL }, 1);
}

bool vtd_active(void) { return active; }
bool vtd_ir_active(void) { return ir; }

/* Queued invalidation on: the register-based commands must not be used
 * while it is. */
static bool start_queue(const char **why)
{
    if (!(iq = palloc(1, 0))) {
        *why = "no memory for the invalidation queue";
        return false;
    }
    wr64(REG_IQT, 0);
    wr64(REG_IQA, iq);                  /* 128-bit descriptors, one page */
    command(GSTS_QIES);
    if (!wait_gsts(GSTS_QIES, true)) {
        *why = "the unit did not start queued invalidation";
        return false;
    }
    iq_tail = (uint32_t)(rd64(REG_IQH) >> 4) % QI_ENTRIES;
    queued = true;
    return true;
}

bool vtd_ir_enable(uint64_t irt, const char **why)
{
    wr64(REG_IRTA, irt | IRT_SIZE_FIELD);   /* xAPIC destinations (EIME 0) */
    command(GSTS_IRTPS);
    if (!wait_gsts(GSTS_IRTPS, true) || !vtd_invalidate_iec()) {
        *why = "the unit did not take the interrupt remapping table";
        return false;
    }
    command(GSTS_IRES);                 /* CFI stays 0: compatibility format blocked */
    if (!wait_gsts(GSTS_IRES, true)) {
        *why = "the unit did not turn interrupt remapping on";
        return false;
    }
    ir = true;
    return true;
}

bool vtd_ioapic_sid(uint8_t id, uint16_t *sid)
{
    for (uint32_t i = 0; i < n_ioapic_sid; i++)
        if (ioapic_sid[i].id == id) {
            *sid = ioapic_sid[i].sid;
            return true;
        }
    return false;
}

bool vtd_init(const struct acpi_info *a, bool need_ir, const char **why)
{
    *why = NULL;
    if (!a->drhd_base) {
        *why = a->dmar ? "the DMAR names no remapping unit on segment 0" : "no DMAR";
        return false;
    }
    if (a->dmar_units > 1) {
        *why = "more than one remapping unit (one is supported so far)";
        return false;
    }
    if (!mmio_map(a->drhd_base, 4096)) {
        *why = "the remapping unit's registers cannot be mapped";
        return false;
    }
    regs = (volatile uint8_t *)(uintptr_t)a->drhd_base;
    uint64_t cap = rd64(REG_CAP), ecap = rd64(REG_ECAP);
    uint32_t sagaw = (uint32_t)(cap >> 8) & 0x1Fu;
    levels = sagaw & 4u ? 4 : sagaw & 2u ? 3 : 0;
    if (!levels) {
        *why = "the unit offers neither 3- nor 4-level second-level tables";
        return false;
    }
    if (cap & (1ull << 7)) {
        *why = "the unit is in caching mode (a virtual one that wants invalidation per map)";
        return false;
    }
    if (need_ir && (ecap & (ECAP_QI | ECAP_IR)) != (ECAP_QI | ECAP_IR)) {
        *why = "the unit offers no interrupt remapping, so a device it translates could raise "
               "any vector by writing the interrupt range (moat.vtd=on uses it anyway)";
        return false;
    }
    iotlb_off = ((ecap >> 8) & 0x3FFu) * 16;
    fault_off = ((cap >> 24) & 0x3FFu) * 16;
    n_fault_regs = (uint32_t)((cap >> 40) & 0xFFu) + 1u;
    if (!(root = palloc(1, 0))) {
        *why = "no memory for the root table";
        return false;
    }
    for (uint32_t i = 0; i < a->n_drhd_ioapic && i < ACPI_IOAPICS_MAX; i++) {
        ioapic_sid[i].id = a->drhd_ioapic[i].id;
        ioapic_sid[i].sid = a->drhd_ioapic[i].sid;
        n_ioapic_sid++;
    }
    if ((ecap & ECAP_QI) && !start_queue(why))
        return false;
    wr64(REG_RTADDR, root);
    command(GSTS_RTPS);
    if (!wait_gsts(GSTS_RTPS, true) || !invalidate()) {
        *why = "the unit did not take the root table";
        return false;
    }
    /* Interrupts first: once translation is on, a device may write the
     * interrupt range. */
    if ((ecap & ECAP_IR) && queued && !vtd_ir_init(why))
        return false;
    command(GSTS_TES);
    if (!wait_gsts(GSTS_TES, true)) {
        *why = "the unit did not turn translation on";
        return false;
    }
    active = true;
    return true;
}

/* The second-level entry for iova at the last level, tables made on the way. */
static uint64_t *leaf(uint64_t top, uint64_t iova)
{
    uint64_t t = top;
    for (uint32_t l = levels; l > 1; l--) {
        uint64_t *e = &table(t)[(iova >> (12 + 9 * (l - 1))) & 511];
        if (!(*e & (PTE_R | PTE_W))) {
            uint64_t next = palloc(1, 0);
            if (!next)
                return NULL;
            *e = next | PTE_R | PTE_W;
        }
        t = *e & ADDR_MASK;
    }
    return &table(t)[(iova >> 12) & 511];
}

static uint64_t *context_slot(uint8_t bus, uint8_t dev, uint8_t fn, bool make)
{
    uint64_t *r = &table(root)[bus * 2u];
    if (!(*r & 1)) {
        uint64_t ctx = make ? palloc(1, 0) : 0;
        if (!ctx)
            return NULL;
        r[0] = ctx | 1;
        r[1] = 0;
    }
    return &table(r[0] & ADDR_MASK)[((unsigned)dev << 3 | fn) * 2u];
}

bool vtd_attach(uint8_t bus, uint8_t dev, uint8_t fn, uint16_t did,
                const struct dom_window *w, unsigned n, const char **why)
{
    uint64_t top = palloc(1, 0);
    uint64_t *c = context_slot(bus, dev, fn, true);
    if (!top || !c) {
        *why = "no memory for translation tables";
        return false;
    }
    for (unsigned i = 0; i < n; i++)
        for (uint64_t o = 0; o < w[i].size; o += PAGE) {
            uint64_t *e = leaf(top, w[i].iova + o);
            if (!e) {
                *why = "no memory for translation tables";
                return false;
            }
            *e = (w[i].pa + o) | PTE_R | PTE_W;
        }
    c[1] = (uint64_t)(levels == 4 ? 2u : 1u) | (uint64_t)did << 8;
    __atomic_thread_fence(__ATOMIC_RELEASE);
    c[0] = top | 1;                     /* present, translation type 0 (untranslated only) */
    if (!invalidate()) {
        *why = "the unit did not invalidate its caches";
        return false;
    }
    return true;
}

bool vtd_map(uint8_t bus, uint8_t dev, uint8_t fn, uint64_t iova, uint64_t pa, uint64_t len,
             bool on)
{
    uint64_t *c = context_slot(bus, dev, fn, false);
    if (!c || !(c[0] & 1) || iova + len > vtd_iova_limit())
        return false;
    uint64_t top = c[0] & ADDR_MASK;
    for (uint64_t o = 0; o < len; o += PAGE) {
        uint64_t *e = leaf(top, iova + o);
        if (!e)
            return false;
        *e = on ? (pa + o) | PTE_R | PTE_W : 0;
    }
    /* Not-present entries are never cached (caching mode is refused):
     * only a removal needs the caches invalidated. */
    return on || invalidate();
}

uint64_t vtd_iova_limit(void) { return active ? 1ull << (12 + 9 * levels) : 0; }

void vtd_detach(uint8_t bus, uint8_t dev, uint8_t fn)
{
    uint64_t *c = context_slot(bus, dev, fn, false);
    if (!c)
        return;
    c[0] = 0;
    c[1] = 0;
    invalidate();
}

unsigned vtd_poll_faults(vtd_fault_fn fn)
{
    if (!active)
        return 0;
    unsigned n = 0;
    for (uint32_t i = 0; i < n_fault_regs; i++) {
        uint32_t off = (uint32_t)fault_off + 16u * i;
        uint64_t hi = rd64(off + 8);
        if (!(hi >> 63))
            continue;
        uint64_t lo = rd64(off);
        uint8_t reason = (uint8_t)(hi >> 32);
        uint64_t addr = vtd_fault_is_interrupt(reason) ? lo >> 48 : lo & ADDR_MASK;
        wr32(off + 12, 1u << 31);       /* F is write-one-to-clear */
        faults_seen++;
        n++;
        fn((uint16_t)hi, addr, reason, !((hi >> 62) & 1));
    }
    if (rd32(REG_FSTS) & 1u)
        wr32(REG_FSTS, 1u);             /* overflow: records were lost */
    return n;
}

bool vtd_fault_is_interrupt(uint8_t reason) { return reason >= 0x20 && reason <= 0x26; }

const char *vtd_fault_reason(uint8_t reason)
{
    switch (reason) {
    case 0x01: return "no root entry";
    case 0x02: return "no context entry";
    case 0x03: return "invalid context entry";
    case 0x04: return "address beyond the domain's address width";
    case 0x05: return "write to a page not mapped writable";
    case 0x06: return "read from a page not mapped readable";
    case 0x07: return "the page table could not be read";
    case 0x0A: case 0x0B: case 0x0C: return "reserved bits set in a table entry";
    case 0x20: return "interrupt request with reserved fields set";
    case 0x21: return "interrupt index beyond the table";
    case 0x22: return "interrupt entry not present";
    case 0x23: return "the interrupt table could not be read";
    case 0x24: return "reserved bits set in an interrupt entry";
    case 0x25: return "compatibility-format interrupt blocked";
    case 0x26: return "interrupt entry belongs to another source";
    default: return "other";
    }
}

void vtd_describe(void)
{
    if (!active) {
        com1_printf("VT-d: off\n");
        return;
    }
    com1_printf("VT-d: unit at 0x%llx, version %u.%u, %u-level tables, translation on, "
                "interrupt remapping %s, %s invalidation, %llu faults recorded\n",
                (unsigned long long)(uintptr_t)regs, (rd32(REG_VER) >> 4) & 0xF,
                rd32(REG_VER) & 0xF, levels, ir ? "on" : "off (not offered)",
                queued ? "queued" : "register-based", (unsigned long long)faults_seen);
}
