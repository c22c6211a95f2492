/*
 * fuzz_pci — the PCI host bridge, configuration space, BAR decode and
 * MSI-X emulation (devmodel/pci.c) on hostile ECAM, MMIO and port I/O
 * accesses, through the real exit buses (vmm/exit_bus.c, pci_bus_attach).
 *
 * Per input a fresh bus with the host bridge, a testdev (devmodel/
 * testdev.c: 64-bit BAR0, BAR2 with a 4-entry MSI-X table and PBA, I/O
 * BAR4; no broker, so its DMA is refused) and "fzdev", a device of this
 * target whose shape the input chooses: BAR0 32-bit memory, BAR1 I/O,
 * BAR2 64-bit memory, a vendor capability with one writable byte, then
 * MSI-X with 1..2048 entries whose table and PBA lie in BAR0 or BAR2 at
 * input offsets (pci_bar_add / pci_msix_add may refuse the shape; the
 * input then runs with what was accepted).
 *
 * Input: fzdev's shape (BAR0, BAR1, BAR2 size bytes, entries u16, table
 * BIR+offset u16, PBA BIR+offset u16), then ops until the input ends, each
 * an opcode byte (op % OP_COUNT) with operands (see the switch): raw ECAM
 * reads/writes of any size, offset and alignment (any bus/device/function),
 * BAR sizing and moves, command register writes, MSI-X control writes,
 * BAR accesses (in a BAR, or raw MMIO / port addresses), MSI-X entry
 * programming, the device side (pci_msix_notify, pci_msix_retract,
 * pci_intx_set) and pci_bus_reset.
 *
 * Checks beyond the sanitizers (abort() on violation), after every op:
 *   - read-only config bits never change (every bit outside wmask/w1c, on
 *     every function, over the whole 4 KiB: IDs, class, header type,
 *     capability pointers and bodies, MSI-X table size...), except the
 *     status register's INTx bit and the BAR registers, nor do the masks;
 *   - a config write counted as refused or bad changes no config byte and
 *     no BAR; an ECAM read returns the function's bytes, or all ones when
 *     there is no function;
 *   - BARs are naturally aligned, inside their window, never overlap the
 *     ECAM window or another BAR of the same space, and their registers
 *     read what their state says (address or size mask);
 *   - an MSI is delivered only with a valid message (fixed, physical,
 *     vector >= 16) that an unmasked entry of a function with MSI-X
 *     enabled and not function-masked holds; deliveries equal msi_sent;
 *     a notify of a masked vector sets its pending bit and delivers
 *     nothing; no entry is left pending while it could be delivered, and
 *     no pending bit exists beyond the table;
 *   - the INTx line the platform sees is the function's level, gated by
 *     INTX_DISABLE, MSI-X and the function having a GSI;
 *   - fzdev's bar_access sees only accesses with decode enabled, inside
 *     the BAR and not starting in the MSI-X table or PBA; bar_moved
 *     reports the BAR's new address.
 *
 * Seeds (harness/fuzz/corpus/fuzz_pci/): sizing and moving every BAR;
 * enabling MSI-X, programming entries and raising vectors masked and
 * unmasked; INTx with INTX_DISABLE; testdev registers and a refused DMA
 * doorbell; a bus reset.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "exit_bus.h"
#include "fuzz_device.h"
#include "fuzz_input.h"
#include "moat/layout.h"
#include "moat/pci_regs.h"
#include "moat/testdev_regs.h"
#include "pci.h"
#include "testdev.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define GSI_TESTDEV 17u
#define GSI_FZDEV   18u
#define FUNCS       3u          /* slots 0 (host bridge), 1 (testdev), 2 (fzdev) */

enum {
    OP_CFG_READ, OP_CFG_WRITE, OP_BAR_SIZE, OP_BAR_MOVE, OP_COMMAND, OP_MSIX_CTRL,
    OP_BAR_ACCESS, OP_RAW_MMIO, OP_RAW_PIO, OP_MSIX_ENTRY, OP_NOTIFY, OP_RETRACT,
    OP_INTX, OP_RESET, OP_COUNT
};

#define fail() FZ_FAIL("see the line")

/* The invariant checks loop over whole config spaces and MSI-X tables:
 * their comparisons would only feed libFuzzer noise and cost most of the
 * time, so they are left out of the coverage instrumentation. */
#define NO_COV __attribute__((no_sanitize("coverage"), noinline))

static struct pci_bus bus;
static struct exit_bus mmio, pio;
static struct pci_func *fz;         /* fzdev, NULL if it could not be added */
static uint64_t msi_calls;
static bool line_level[32];         /* the INTx line per GSI as the platform sees it */

/* After set-up: the masks, which bits are read-only (64-bit words), and
 * the config space as last checked. */
static uint8_t snap_wmask[FUNCS][PCI_CFG_SIZE], snap_w1c[FUNCS][PCI_CFG_SIZE];
static uint64_t ro_mask[FUNCS][PCI_CFG_SIZE / 8], prev_cfg[FUNCS][PCI_CFG_SIZE / 8];

static bool get_bit(const uint64_t *p, unsigned n) { return p[n / 64] >> (n % 64) & 1; }

static bool entry_masked(const struct pci_func *f, unsigned n)
{
    return f->msix.table[n * 4u + 3] & PCI_MSIX_ENTRY_MASKED;
}

static uint16_t cfg16(const struct pci_func *f, unsigned off)
{
    return (uint16_t)(f->cfg[off] | f->cfg[off + 1] << 8);
}

static bool func_masked(const struct pci_func *f)
{
    return cfg16(f, f->msix.cap + PCI_MSIX_CTRL) & PCI_MSIX_CTRL_MASKALL;
}

/* ---- platform --------------------------------------------------------------- */

NO_COV static bool plat_msi(void *ctx, uint64_t addr, uint32_t data)
{
    (void)ctx;
    msi_calls++;
    if ((addr & ~0xFF000ull) != PCI_MSI_ADDR_BASE || (data & ~0xFFu) || (data & 0xFFu) < 16)
        fail();                     /* an invalid message reached the platform */
    /* Some unmasked entry of an enabled, unmasked function holds it. */
    if (!fz_msi_from_unmasked_entry(&bus, addr, data))
        fail();
    return true;
}

static void plat_intx(void *ctx, uint32_t gsi, bool level)
{
    (void)ctx;
    if (gsi >= 32)
        fail();
    line_level[gsi] = level;
}

static const struct pci_platform_ops plat = {
    .msi = plat_msi, .intx = plat_intx, .refused = fz_ignore_refused,
    .dma_refused = fz_ignore_dma_refused,
};

/* ---- fzdev -------------------------------------------------------------------- */

static bool in_range(uint64_t off, uint64_t base, uint64_t len)
{
    return off >= base && off - base < len;
}

static enum bus_result fz_bar_access(void *dev, unsigned n, struct bus_access *a)
{
    struct pci_func *f = dev;
    const struct pci_bar *bar = &f->bar[n];
    if (n >= PCI_BARS || bar->kind == PCI_BAR_NONE)
        fail();
    bool mem = bar->kind != PCI_BAR_IOPORT;
    if (!(pci_command(f) & (mem ? PCI_CMD_MEM : PCI_CMD_IO)))
        fail();                     /* decode is off */
    if (a->size == 0 || a->offset >= bar->size || a->size > bar->size - a->offset ||
        a->addr != bar->base + a->offset)
        fail();
    const struct pci_msix *m = &f->msix;
    if (m->cap && ((n == m->table_bar &&
                    in_range(a->offset, m->table_off, (uint64_t)m->entries * PCI_MSIX_ENTRY_SIZE)) ||
                   (n == m->pba_bar &&
                    in_range(a->offset, m->pba_off, ((m->entries + 63u) / 64u) * 8u))))
        fail();                     /* MSI-X is the bus's, not the model's */
    if (!a->is_write)
        a->value = 0x5a5a5a5a5a5a5a5aull;
    return BUS_OK;
}

static void fz_bar_moved(void *dev, unsigned n, uint64_t old_base, uint64_t new_base)
{
    struct pci_func *f = dev;
    if (n >= PCI_BARS || f->bar[n].base != new_base || old_base == new_base)
        fail();
}

static const struct pci_device_ops fz_ops = {
    .bar_access = fz_bar_access, .bar_moved = fz_bar_moved,
};

static void fzdev_add(struct fz *in)
{
    uint8_t s0 = fz_u8(in), s1 = fz_u8(in), s2 = fz_u8(in);
    uint16_t entries = (uint16_t)(fz_u16(in) % PCI_MSIX_ENTRIES_MAX + 1u);
    uint16_t t = fz_u16(in), p = fz_u16(in);
    fz = pci_func_add(&bus, "fzdev", 0x1af4, 0x10ff, 0x020000, GSI_FZDEV, &fz_ops, NULL);
    if (!fz)
        fail();
    fz->dev = fz;
    pci_bar_add(fz, 0, PCI_BAR_MEM32, 1ull << (12u + s0 % 6u));
    pci_bar_add(fz, 1, PCI_BAR_IOPORT, 1ull << (2u + s1 % 7u));
    pci_bar_add(fz, 2, PCI_BAR_MEM64, 1ull << (12u + s2 % 6u));
    static const uint8_t vendor[6] = { 6, 0xaa, 0xbb, 0xcc, 0xdd, 0xee };
    uint16_t vcap = pci_cap_add(fz, PCI_CAP_ID_VENDOR, vendor, sizeof vendor);
    if (vcap)
        fz->wmask[vcap + 4] = 0xff;
    pci_msix_add(fz, entries, t & 1 ? 2 : 0, t & ~7u, p & 1 ? 2 : 0, p & ~7u);
}

/* ---- invariants ------------------------------------------------------------- */

NO_COV static void snapshot(void)
{
    for (unsigned s = 0; s < FUNCS; s++) {
        const struct pci_func *f = bus.slot[s];
        memcpy(prev_cfg[s], f->cfg, PCI_CFG_SIZE);
        memcpy(snap_wmask[s], f->wmask, PCI_CFG_SIZE);
        memcpy(snap_w1c[s], f->w1c, PCI_CFG_SIZE);
        uint8_t ro[PCI_CFG_SIZE];
        for (unsigned i = 0; i < PCI_CFG_SIZE; i++) {
            ro[i] = (uint8_t)~(f->wmask[i] | f->w1c[i]);
            if (i >= PCI_BAR0 && i < PCI_BAR_REG(PCI_BARS))
                ro[i] = 0;              /* BARs: checked against their state */
            if (i == PCI_STATUS)
                ro[i] &= (uint8_t)~PCI_STATUS_INTX;     /* hardware state */
        }
        memcpy(ro_mask[s], ro, sizeof ro);
    }
}

/* Read-only bits never change (compared with the previous check, which
 * by induction equals the set-up state in those bits). */
NO_COV static void check_ro(void)
{
    for (unsigned s = 0; s < FUNCS; s++) {
        const struct pci_func *f = bus.slot[s];
        if (memcmp(snap_wmask[s], f->wmask, PCI_CFG_SIZE) || memcmp(snap_w1c[s], f->w1c, PCI_CFG_SIZE))
            fail();
        if (memcmp(prev_cfg[s], f->cfg, PCI_CFG_SIZE) == 0)
            continue;
        uint64_t now[PCI_CFG_SIZE / 8];
        memcpy(now, f->cfg, PCI_CFG_SIZE);
        for (unsigned i = 0; i < PCI_CFG_SIZE / 8; i++)
            if ((now[i] ^ prev_cfg[s][i]) & ro_mask[s][i])
                fail();
        memcpy(prev_cfg[s], now, PCI_CFG_SIZE);
    }
}

static bool overlaps(uint64_t a, uint64_t al, uint64_t c, uint64_t cl)
{
    return a < c + cl && c < a + al;
}

static uint32_t cfg32(const struct pci_func *f, unsigned off)
{
    return cfg16(f, off) | (uint32_t)cfg16(f, off + 2) << 16;
}

NO_COV static void check_bars(void)
{
    for (unsigned s = 0; s < PCI_SLOTS_MAX; s++) {
        const struct pci_func *f = bus.slot[s];
        for (unsigned n = 0; f && n < PCI_BARS; n++) {
            const struct pci_bar *b = &f->bar[n];
            uint32_t reg = cfg32(f, PCI_BAR_REG(n));
            if (b->kind == PCI_BAR_NONE) {
                if (n > 0 && f->bar[n - 1].kind == PCI_BAR_MEM64) {
                    const struct pci_bar *lo = &f->bar[n - 1];
                    if (reg != (uint32_t)((lo->sizing_hi ? ~(lo->size - 1) : lo->base) >> 32))
                        fail();
                } else if (reg != 0) {
                    fail();
                }
                continue;
            }
            bool mem = b->kind != PCI_BAR_IOPORT;
            uint64_t lo = mem ? bus.mmio_base : PCI_IO_WINDOW_BASE;
            uint64_t hi = mem ? bus.mmio_end : PCI_IO_WINDOW_END;
            if (!b->size || (b->size & (b->size - 1)) || b->base % b->size || b->base < lo ||
                b->base > hi || b->size > hi - b->base)
                fail();
            if (mem && overlaps(b->base, b->size, bus.ecam_base, MOAT_ECAM_SIZE))
                fail();
            uint64_t want = b->sizing ? ~(b->size - 1) : b->base;
            uint32_t low = mem ? (uint32_t)(want & PCI_BAR_MEM_MASK) | (b->kind == PCI_BAR_MEM64 ? PCI_BAR_MEM_64 : 0)
                               : (uint32_t)(want & PCI_BAR_IO_MASK) | PCI_BAR_IO;
            if (reg != low)
                fail();
            for (unsigned t = s; t < PCI_SLOTS_MAX; t++) {
                const struct pci_func *g = bus.slot[t];
                for (unsigned m = t == s ? n + 1 : 0; g && m < PCI_BARS; m++) {
                    const struct pci_bar *o = &g->bar[m];
                    if (o->kind != PCI_BAR_NONE && (o->kind != PCI_BAR_IOPORT) == mem &&
                        overlaps(b->base, b->size, o->base, o->size))
                        fail();
                }
            }
        }
    }
}

NO_COV static void check_irq(void)
{
    if (PCI_STAT(&bus, msi_sent) != msi_calls)
        fail();
    for (unsigned s = 0; s < PCI_SLOTS_MAX; s++) {
        const struct pci_func *f = bus.slot[s];
        if (!f)
            continue;
        if (f->msix.cap) {
            bool deliverable = pci_msix_enabled(f) && !func_masked(f);
            for (unsigned n = 0; n < f->msix.entries; n++)
                if (deliverable && !entry_masked(f, n) && get_bit(f->msix.pending, n))
                    fail();         /* pending although it could be delivered */
            unsigned words = (f->msix.entries + 63u) / 64u;
            if (f->msix.entries % 64u &&
                f->msix.pending[words - 1] >> (f->msix.entries % 64u))
                fail();             /* pending beyond the table */
        }
        if (f->intx_gsi != MOAT_NO_GSI) {
            bool out = f->intx_level && !pci_msix_enabled(f) &&
                       !(pci_command(f) & PCI_CMD_INTX_DISABLE);
            if (line_level[f->intx_gsi] != out)
                fail();
        }
    }
}

static void check_all(void)
{
    check_ro();
    check_bars();
    check_irq();
}

/* ---- accesses ------------------------------------------------------------------ */

static const uint32_t sizes[8] = { 1, 2, 4, 8, 4, 4, 2, 3 };

static struct bus_access access(struct exit_bus *b, uint64_t addr, uint32_t size, bool write,
                                uint64_t value)
{
    struct bus_access a = { .addr = addr, .size = size, .is_write = write, .value = value };
    if (bus_dispatch(b, &a) == BUS_VIOLATION)
        fail();                     /* nothing here may fail-stop the domain */
    return a;
}

static struct pci_func *func_of(uint8_t sel)
{
    return bus.slot[sel % FUNCS];
}

/* A config access at ECAM offset off (any bus/device/function/register). */
static void ecam(uint32_t off, uint32_t size, bool write, uint32_t value)
{
    uint64_t bus_no = off >> 20, dev = (off >> 15) & 31, fn = (off >> 12) & 7;
    uint32_t reg = off & 0xFFF;
    struct pci_func *f = bus_no == 0 && dev < PCI_SLOTS_MAX && fn == 0 ? bus.slot[dev] : NULL;
    static uint8_t before[PCI_CFG_SIZE];
    struct pci_bar bars[PCI_BARS];
    uint64_t bad = PCI_STAT(&bus, cfg_refused) + PCI_STAT(&bus, cfg_bad_access);
    if (f) {
        memcpy(before, f->cfg, PCI_CFG_SIZE);
        memcpy(bars, f->bar, sizeof bars);
    }
    struct bus_access a = access(&mmio, bus.ecam_base + off, size, write, value);
    if (off + size > MOAT_ECAM_SIZE) {
        /* Past the end of the window: the exit bus leaves it unclaimed. */
        if (PCI_STAT(&bus, cfg_refused) + PCI_STAT(&bus, cfg_bad_access) != bad ||
            (!write && a.value != 0) || (f && memcmp(before, f->cfg, PCI_CFG_SIZE)))
            fail();
        return;
    }
    bool refused = PCI_STAT(&bus, cfg_refused) + PCI_STAT(&bus, cfg_bad_access) != bad;
    if (!f) {
        if (refused || (!write && a.value != (size >= 8 ? ~0ull : (1ull << (8 * size)) - 1)))
            fail();
        return;
    }
    bool valid = (size == 1 || size == 2 || size == 4) && reg % size == 0;
    if (!valid && !refused)
        fail();
    if (!write && valid) {
        uint32_t want = 0;
        for (uint32_t i = 0; i < size; i++)
            want |= (uint32_t)f->cfg[reg + i] << (8 * i);
        if (a.value != want)
            fail();
    }
    if (refused && (memcmp(before, f->cfg, PCI_CFG_SIZE) || memcmp(bars, f->bar, sizeof bars)))
        fail();
}

static uint32_t cfg_off(const struct pci_func *f, uint32_t reg)
{
    return (uint32_t)f->slot << 15 | reg;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz in = fz_init(data, size);
    msi_calls = 0;
    memset(line_level, 0, sizeof line_level);
    pci_bus_init(&bus, "fz", 1, NULL, &plat);
    char err[128];
    if (!bus_init(&mmio, 4) || !bus_init(&pio, 4) ||
        !testdev_create(&bus, "td0", GSI_TESTDEV, "", err, sizeof err) ||
        !pci_bus_attach(&bus, &mmio, &pio))
        fail();
    fzdev_add(&in);
    snapshot();
    check_all();

    for (unsigned ops = 0; fz_left(&in) && ops < 512; ops++) {
        uint8_t op = fz_u8(&in) % OP_COUNT;
        switch (op) {
        case OP_CFG_READ:
        case OP_CFG_WRITE: {
            uint8_t sel = fz_u8(&in);
            uint32_t off = sel & 0x80 ? fz_u32(&in) % (uint32_t)MOAT_ECAM_SIZE
                                      : (uint32_t)(sel % PCI_SLOTS_MAX) << 15 | (fz_u16(&in) & 0xFFFu);
            uint32_t sz = sizes[fz_u8(&in) % 8u];
            uint32_t v = op == OP_CFG_WRITE ? fz_u32(&in) : 0;
            ecam(off, sz, op == OP_CFG_WRITE, v);
            break;
        }
        case OP_BAR_SIZE: {
            struct pci_func *f = func_of(fz_u8(&in));
            unsigned n = fz_u8(&in) % PCI_BARS;
            ecam(cfg_off(f, PCI_BAR_REG(n)), 4, true, 0xFFFFFFFFu);
            ecam(cfg_off(f, PCI_BAR_REG(n)), 4, false, 0);
            break;
        }
        case OP_BAR_MOVE: {
            struct pci_func *f = func_of(fz_u8(&in));
            uint8_t sel = fz_u8(&in);
            unsigned n = (sel & 7u) % PCI_BARS;
            uint32_t v;
            if (sel & 0x80)
                v = fz_u32(&in);
            else if (f->bar[n].kind == PCI_BAR_IOPORT)
                v = PCI_IO_WINDOW_BASE + (fz_u16(&in) & 0x3FFCu);
            else
                v = (uint32_t)bus.mmio_base + ((uint32_t)fz_u16(&in) << 12);
            ecam(cfg_off(f, PCI_BAR_REG(n)), 4, true, v);
            break;
        }
        case OP_COMMAND: {
            struct pci_func *f = func_of(fz_u8(&in));
            ecam(cfg_off(f, PCI_COMMAND), 2, true, fz_u16(&in));
            break;
        }
        case OP_MSIX_CTRL: {
            struct pci_func *f = func_of(fz_u8(&in));
            uint8_t v = fz_u8(&in);
            if (f->msix.cap)
                ecam(cfg_off(f, f->msix.cap + PCI_MSIX_CTRL + 1u), 1, true, v & 0xC0u);
            break;
        }
        case OP_BAR_ACCESS: {
            struct pci_func *f = func_of(fz_u8(&in));
            uint8_t sel = fz_u8(&in);
            const struct pci_bar *b = &f->bar[(sel & 7u) % PCI_BARS];
            uint64_t off = fz_u16(&in);
            uint32_t sz = sizes[(sel >> 3) % 8u];
            bool write = sel & 0x40;
            uint64_t v = fz_u64(&in);
            access(b->kind == PCI_BAR_IOPORT ? &pio : &mmio, b->base + off, sz, write, v);
            break;
        }
        case OP_RAW_MMIO: {
            uint8_t sel = fz_u8(&in);
            uint64_t addr = bus.mmio_base + fz_u32(&in) % (MOAT_GPA_ECAM + MOAT_ECAM_SIZE - bus.mmio_base);
            access(&mmio, addr, sizes[sel % 8u], sel & 0x40, fz_u64(&in));
            break;
        }
        case OP_RAW_PIO: {
            uint8_t sel = fz_u8(&in);
            uint64_t port = fz_u16(&in);
            access(&pio, port, sizes[sel % 8u], sel & 0x40, fz_u32(&in));
            break;
        }
        case OP_MSIX_ENTRY: {
            /* Program one entry through its BAR: address, data, control. */
            struct pci_func *f = func_of(fz_u8(&in));
            uint16_t n = fz_u16(&in);
            uint8_t vec = fz_u8(&in), flags = fz_u8(&in);
            if (!f->msix.cap)
                break;
            n = (uint16_t)(n % f->msix.entries);
            uint64_t base = f->bar[f->msix.table_bar].base + f->msix.table_off + 16ull * n;
            uint64_t addr = flags & 2 ? fz_u64(&in) : PCI_MSI_ADDR_BASE | (uint64_t)(flags >> 4) << 12;
            uint32_t dat = flags & 4 ? fz_u32(&in) : vec;
            if (flags & 8) {
                access(&mmio, base, 8, true, addr);
                access(&mmio, base + 8, 8, true, dat | (uint64_t)(flags & 1) << 32);
            } else {
                access(&mmio, base, 4, true, (uint32_t)addr);
                access(&mmio, base + 4, 4, true, addr >> 32);
                access(&mmio, base + 8, 4, true, dat);
                access(&mmio, base + 12, 4, true, flags & 1);
            }
            break;
        }
        case OP_NOTIFY: {
            struct pci_func *f = func_of(fz_u8(&in));
            uint16_t n = fz_u16(&in);
            if (f->msix.cap && !(n & 0x8000))
                n = (uint16_t)(n % f->msix.entries);
            bool enabled = pci_msix_enabled(f);
            bool masked = enabled && n < f->msix.entries && (func_masked(f) || entry_masked(f, n));
            uint64_t calls = msi_calls, bad = PCI_STAT(&bus, msi_bad_message);
            bool ok = pci_msix_notify(f, n);
            if (ok != (enabled && n < f->msix.entries))
                fail();
            if (masked && (!get_bit(f->msix.pending, n) || msi_calls != calls))
                fail();             /* a masked vector pends, silently */
            if (ok && !masked && msi_calls + PCI_STAT(&bus, msi_bad_message) != calls + bad + 1)
                fail();             /* unmasked: delivered or counted bad, once */
            break;
        }
        case OP_RETRACT: {
            struct pci_func *f = func_of(fz_u8(&in));
            uint16_t n = fz_u16(&in);
            if (f->msix.cap)
                n = (uint16_t)(n % (f->msix.entries + 1u));
            bool was = pci_msix_pending(f, n);
            if (pci_msix_retract(f, n) != was || pci_msix_pending(f, n))
                fail();
            break;
        }
        case OP_INTX: {
            struct pci_func *f = func_of(fz_u8(&in));
            pci_intx_set(f, fz_u8(&in) & 1);
            break;
        }
        case OP_RESET:
            pci_bus_reset(&bus);
            break;
        default:
            break;
        }
        check_all();
    }
    pci_bus_fini(&bus);
    bus_free(&mmio);
    bus_free(&pio);
    return 0;
}
