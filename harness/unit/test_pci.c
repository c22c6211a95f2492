/* PCI bus model: ECAM config space, BAR sizing/relocation/decode, capability
 * list, hostile config writes, MSI-X masking and pending bits, INTx, and DMA
 * through the broker. One behaviour per test. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include "broker.h"
#include "exit_bus.h"
#include "moat/layout.h"
#include "moat/pci_regs.h"
#include "moat/testdev_regs.h"
#include "pci.h"
#include "testdev.h"

#define DOM     3u
#define GSI     10u
#define PAGE    4096ull
#define W0      MOAT_GPA_DMA_BASE
#define QUOTA   (1ull << 20)
#define MSI_LOG 16

/* ---- fake platform ------------------------------------------------------- */

struct fake_plat {
    int msi_calls;
    uint64_t msi_addr[MSI_LOG];
    uint32_t msi_data[MSI_LOG];
    int intx_calls;
    uint32_t intx_gsi;
    bool intx_level;
    int refused_calls;
    char last_what[160];
    char last_device[PCI_NAME_MAX];
    int dma_refused_calls;
    uint64_t dma_iova, dma_len;
    enum broker_refusal dma_why;
    int ioeventfd_calls, ioeventfd_fd;
    uint64_t ioeventfd_gpa;
    uint32_t ioeventfd_len;
    bool ioeventfd_assign;
    bool ioeventfd_pio;
};

static struct fake_plat fk;

static bool fake_msi(void *ctx, uint64_t addr, uint32_t data)
{
    (void)ctx;
    if (fk.msi_calls < MSI_LOG) {
        fk.msi_addr[fk.msi_calls] = addr;
        fk.msi_data[fk.msi_calls] = data;
    }
    fk.msi_calls++;
    return true;
}

static void fake_intx(void *ctx, uint32_t gsi, bool level)
{
    (void)ctx;
    fk.intx_calls++;
    fk.intx_gsi = gsi;
    fk.intx_level = level;
}

static void fake_refused(void *ctx, const char *device, const char *what, uint64_t addr,
                         uint64_t value)
{
    (void)ctx;
    (void)addr;
    (void)value;
    fk.refused_calls++;
    snprintf(fk.last_what, sizeof fk.last_what, "%s", what);
    snprintf(fk.last_device, sizeof fk.last_device, "%s", device);
}

static void fake_dma_refused(void *ctx, const char *device, uint64_t iova, uint64_t len,
                             enum broker_refusal why)
{
    (void)ctx;
    (void)device;
    fk.dma_refused_calls++;
    fk.dma_iova = iova;
    fk.dma_len = len;
    fk.dma_why = why;
}

/* ---- fake device model --------------------------------------------------- */

struct fake_dev {
    int bar_calls;
    unsigned bar;
    uint64_t offset;
    uint32_t size;
    bool is_write;
    uint64_t value;
    int moved_calls;
    unsigned moved_bar;
    uint64_t moved_old, moved_new;
    int quiesce_calls, destroy_calls, reset_calls;
};

#define DEV_READ_VALUE 0xC0DEu

static struct fake_dev dv;

static enum bus_result dev_bar_access(void *dev, unsigned bar, struct bus_access *a)
{
    struct fake_dev *d = dev;
    d->bar_calls++;
    d->bar = bar;
    d->offset = a->offset;
    d->size = a->size;
    d->is_write = a->is_write;
    if (a->is_write)
        d->value = a->value;
    else
        a->value = DEV_READ_VALUE;
    return BUS_OK;
}

static void dev_bar_moved(void *dev, unsigned bar, uint64_t old_base, uint64_t new_base)
{
    struct fake_dev *d = dev;
    d->moved_calls++;
    d->moved_bar = bar;
    d->moved_old = old_base;
    d->moved_new = new_base;
}

static void dev_quiesce(void *dev) { ((struct fake_dev *)dev)->quiesce_calls++; }
static void dev_destroy(void *dev) { ((struct fake_dev *)dev)->destroy_calls++; }
static void dev_reset(void *dev) { ((struct fake_dev *)dev)->reset_calls++; }

static const struct pci_device_ops dev_ops = {
    .bar_access = dev_bar_access,
    .bar_moved = dev_bar_moved,
    .quiesce = dev_quiesce,
    .reset = dev_reset,
    .destroy = dev_destroy,
};

/* ---- fixture ------------------------------------------------------------- */

static struct pci_bus bus;
static struct broker br;
static bool bus_live;

static bool fake_ioeventfd(void *ctx, bool pio, uint64_t gpa, uint32_t len, int fd, bool assign)
{
    (void)ctx;
    fk.ioeventfd_calls++;
    fk.ioeventfd_pio = pio;
    fk.ioeventfd_gpa = gpa;
    fk.ioeventfd_len = len;
    fk.ioeventfd_fd = fd;
    fk.ioeventfd_assign = assign;
    return true;
}

static void setup(void)
{
    static const struct pci_platform_ops plat = {
        .msi = fake_msi, .intx = fake_intx, .refused = fake_refused,
        .dma_refused = fake_dma_refused, .ioeventfd = fake_ioeventfd,
    };
    memset(&fk, 0, sizeof fk);
    memset(&dv, 0, sizeof dv);
    broker_init(&br, QUOTA, NULL);
    pci_bus_init(&bus, "dom", DOM, &br, &plat);
    bus_live = true;
}

static void teardown(void)
{
    if (bus_live)
        pci_bus_fini(&bus);
    broker_fini(&br);
}

TestSuite(pci, .init = setup, .fini = teardown);

static struct pci_func *add_dev(const char *name)
{
    struct pci_func *f = pci_func_add(&bus, name, 0x1AF4, 0x1041, 0x020000, GSI, &dev_ops, &dv);
    cr_assert_not_null(f, "pci_func_add(%s) failed on a bus with free slots", name);
    return f;
}

/* A function with BAR0 = 64-bit 16 KiB mem, BAR2 = 32-bit 4 KiB mem,
 * BAR4 = 32-byte I/O. */
static struct pci_func *add_bar_dev(void)
{
    struct pci_func *f = add_dev("bars");
    cr_assert(pci_bar_add(f, 0, PCI_BAR_MEM64, 0x4000), "64-bit 16 KiB BAR0 refused");
    cr_assert(pci_bar_add(f, 2, PCI_BAR_MEM32, 0x1000), "32-bit 4 KiB BAR2 refused");
    cr_assert(pci_bar_add(f, 4, PCI_BAR_IOPORT, 32), "32-byte I/O BAR4 refused");
    return f;
}

static void cfg_wr_ok(struct pci_func *f, uint32_t off, uint32_t size, uint32_t v)
{
    cr_assert(pci_cfg_write(f, off, size, v), "config write of %#x (%u bytes) at %#x refused: %s",
              v, size, off, fk.last_what);
}

static void set_command(struct pci_func *f, uint16_t cmd)
{
    cfg_wr_ok(f, PCI_COMMAND, 2, cmd);
    cr_assert_eq(pci_command(f), cmd, "command reads %#x after writing %#x", pci_command(f), cmd);
}

/* ECAM access at offset (bus, dev, fn, reg) through the exit-bus handler. */
static uint64_t ecam_rd(uint32_t b, uint32_t d, uint32_t fn, uint32_t reg, uint32_t size)
{
    uint64_t off = pci_ecam_offset(b, d, fn, reg);
    struct bus_access a = { .addr = MOAT_GPA_ECAM + off, .offset = off, .size = size,
                            .value = 0x5A5A5A5A5A5A5A5Aull };
    cr_assert_eq(pci_ecam_access(&bus, &a), BUS_OK, "ECAM read %02x:%02x.%x+%#x not handled",
                 b, d, fn, reg);
    return a.value;
}

static void ecam_wr(uint32_t b, uint32_t d, uint32_t fn, uint32_t reg, uint32_t size,
                    uint64_t v)
{
    uint64_t off = pci_ecam_offset(b, d, fn, reg);
    struct bus_access a = { .addr = MOAT_GPA_ECAM + off, .offset = off, .size = size,
                            .is_write = true, .value = v };
    cr_assert_eq(pci_ecam_access(&bus, &a), BUS_OK, "ECAM write %02x:%02x.%x+%#x not handled",
                 b, d, fn, reg);
}

/* One access through an exit-bus handler; reads start from a junk value so
 * an unset result shows. */
static enum bus_result bus_access_via(bus_handler_fn fn, uint64_t base, uint64_t addr,
                                      uint32_t size, bool write, uint64_t *v)
{
    struct bus_access a = { .addr = addr, .offset = addr - base, .size = size,
                            .is_write = write, .value = write ? *v : 0x5A5A5A5A5A5A5A5Aull };
    enum bus_result r = fn(&bus, &a);
    if (!write)
        *v = a.value;
    return r;
}

static enum bus_result mem_access(uint64_t addr, uint32_t size, bool write, uint64_t *v)
{
    return bus_access_via(pci_mmio_access, MOAT_GPA_MMIO_HOLE, addr, size, write, v);
}

static uint64_t mem_rd(uint64_t addr, uint32_t size)
{
    uint64_t v = 0;
    cr_assert_eq(mem_access(addr, size, false, &v), BUS_OK, "MMIO read at %#lx not claimed",
                 (unsigned long)addr);
    return v;
}

static void mem_wr(uint64_t addr, uint32_t size, uint64_t v)
{
    cr_assert_eq(mem_access(addr, size, true, &v), BUS_OK, "MMIO write at %#lx not claimed",
                 (unsigned long)addr);
}

static enum bus_result io_access(uint64_t port, uint32_t size, bool write, uint64_t *v)
{
    return bus_access_via(pci_pio_access, PCI_IO_WINDOW_BASE, port, size, write, v);
}

static uint64_t ones(uint32_t size) { return size == 8 ? ~0ull : (1ull << (8 * size)) - 1; }

/* ---- 1. host bridge and empty slots -------------------------------------- */

Test(pci, host_bridge_identity_via_ecam)
{
    cr_assert_eq(ecam_rd(0, 0, 0, PCI_VENDOR_ID, 2), PCI_VENDOR_MOAT,
                 "host bridge vendor ID is not PCI_VENDOR_MOAT");
    cr_assert_eq(ecam_rd(0, 0, 0, PCI_DEVICE_ID, 2), PCI_DEVICE_HOST_BRIDGE,
                 "host bridge device ID is not PCI_DEVICE_HOST_BRIDGE");
    cr_assert_eq(ecam_rd(0, 0, 0, 0, 4),
                 (uint64_t)PCI_DEVICE_HOST_BRIDGE << 16 | PCI_VENDOR_MOAT,
                 "dword 0 must be device << 16 | vendor");
    cr_assert_eq(ecam_rd(0, 0, 0, PCI_CLASS, 1), 0x06, "host bridge base class is not 06 (bridge)");
    cr_assert_eq(ecam_rd(0, 0, 0, PCI_SUBCLASS, 1), 0x00,
                 "host bridge subclass is not 00 (host bridge)");
    cr_assert_eq(ecam_rd(0, 0, 0, PCI_REVISION_ID, 4) >> 8, 0x060000,
                 "class dword at 0x08 must carry class 06/00/00 above the revision");
    cr_assert_eq(ecam_rd(0, 0, 0, PCI_HEADER_TYPE, 1), 0, "host bridge must be a type-0 header");
    cr_assert_eq(bus.stats.cfg_bad_access + bus.stats.cfg_refused, 0,
                 "plain aligned reads were counted as bad");
}

Test(pci, empty_slot_and_other_bus_read_all_ones_and_drop_writes)
{
    struct { uint32_t b, d, fn; const char *what; } holes[] = {
        { 0, 5, 0, "empty slot 5" },
        { 0, 31, 0, "device 31 (beyond PCI_SLOTS_MAX)" },
        { 0, 0, 1, "function 1 of the host bridge" },
        { 1, 0, 0, "bus 1 device 0" },
    };
    for (size_t i = 0; i < sizeof holes / sizeof holes[0]; i++)
        for (uint32_t size = 1; size <= 4; size *= 2)
            cr_assert_eq(ecam_rd(holes[i].b, holes[i].d, holes[i].fn, 0, size), ones(size),
                         "%u-byte read of %s must read all ones", size, holes[i].what);

    /* Writes to bus 1 device 0 must not alias the host bridge at 00:00.0. */
    ecam_wr(1, 0, 0, PCI_COMMAND, 2, PCI_CMD_MEM | PCI_CMD_MASTER);
    ecam_wr(0, 5, 0, PCI_COMMAND, 2, PCI_CMD_MEM);
    ecam_wr(0, 5, 0, PCI_VENDOR_ID, 4, 0xDEADBEEF);
    cr_assert_eq(pci_command(&bus.host_bridge), 0, "a write to bus 1 reached the host bridge");
    cr_assert_eq(ecam_rd(0, 5, 0, 0, 4), 0xFFFFFFFFu, "a write made the empty slot respond");
    cr_assert_eq(fk.refused_calls, 0, "writes to absent functions must drop silently");
    cr_assert_eq(bus.stats.cfg_refused, 0, "writes to absent functions counted as refused");
    cr_assert_eq(bus.stats.cfg_bad_access, 0, "accesses to absent functions counted as bad");
}

/* ---- 2. BAR sizing ------------------------------------------------------- */

Test(pci, bar_sizing_reads_back_size_masks)
{
    struct pci_func *f = add_bar_dev();
    uint32_t orig[PCI_BARS];
    for (unsigned n = 0; n < PCI_BARS; n++)
        orig[n] = pci_cfg_read(f, PCI_BAR_REG(n), 4);
    cr_assert_eq(orig[0], (uint32_t)f->bar[0].base | PCI_BAR_MEM_64,
                 "BAR0 must read its base with the 64-bit type bits");
    cr_assert_eq(orig[1], 0, "BAR1 (upper half, window below 4 GiB) must read 0");
    cr_assert_eq(orig[2], (uint32_t)f->bar[2].base, "BAR2 must read its base");
    cr_assert_eq(orig[4], (uint32_t)f->bar[4].base | PCI_BAR_IO, "BAR4 must read port | IO bit");

    static const uint32_t want[PCI_BARS] = {
        0xFFFFC004u,    /* 16 KiB, 64-bit */
        0xFFFFFFFFu,    /* upper dword of BAR0 */
        0xFFFFF000u,    /* 4 KiB, 32-bit */
        0,              /* unimplemented */
        0xFFFFFFE1u,    /* 32 ports */
        0,              /* unimplemented */
    };
    for (unsigned n = 0; n < PCI_BARS; n++) {
        cfg_wr_ok(f, PCI_BAR_REG(n), 4, 0xFFFFFFFFu);
        uint32_t got = pci_cfg_read(f, PCI_BAR_REG(n), 4);
        cr_assert_eq(got, want[n], "BAR%u sizing read back %#x, want %#x", n, got, want[n]);
    }
    cr_assert_eq(fk.refused_calls, 0, "the sizing pattern must never be refused (last: %s)",
                 fk.last_what);
    cr_assert_eq(bus.stats.cfg_refused, 0, "the sizing pattern was counted as refused");
}

Test(pci, bar_sizing_then_restore_gives_original_address)
{
    struct pci_func *f = add_bar_dev();
    uint32_t orig[PCI_BARS];
    uint64_t base[PCI_BARS];
    for (unsigned n = 0; n < PCI_BARS; n++) {
        orig[n] = pci_cfg_read(f, PCI_BAR_REG(n), 4);
        base[n] = f->bar[n].base;
    }
    for (unsigned n = 0; n < PCI_BARS; n++) {
        cfg_wr_ok(f, PCI_BAR_REG(n), 4, 0xFFFFFFFFu);
        cfg_wr_ok(f, PCI_BAR_REG(n), 4, orig[n]);
    }
    for (unsigned n = 0; n < PCI_BARS; n++) {
        cr_assert_eq(pci_cfg_read(f, PCI_BAR_REG(n), 4), orig[n],
                     "BAR%u reads %#x after sizing and restore, want the original %#x", n,
                     pci_cfg_read(f, PCI_BAR_REG(n), 4), orig[n]);
        cr_assert_eq(f->bar[n].base, base[n], "BAR%u decode address changed by sizing", n);
    }
    cr_assert_eq(dv.moved_calls, 0, "sizing and restoring is not a move");
    cr_assert_eq(fk.refused_calls, 0, "restore refused: %s", fk.last_what);

    set_command(f, PCI_CMD_MEM);
    (void)mem_rd(base[2] + 8, 4);
    cr_assert_eq(dv.bar_calls, 1, "BAR2 no longer decodes at its original address");
    cr_assert_eq(dv.bar, 2, "access at BAR2's address reached BAR %u", dv.bar);
}

/* ---- 3. BAR relocation --------------------------------------------------- */

Test(pci, bar_relocation_moves_decode_and_tells_the_model)
{
    struct pci_func *f = add_bar_dev();
    set_command(f, PCI_CMD_MEM | PCI_CMD_IO);
    uint64_t old = f->bar[2].base, nb = MOAT_GPA_MMIO_HOLE + 0x100000;
    cfg_wr_ok(f, PCI_BAR_REG(2), 4, (uint32_t)nb);
    cr_assert_eq(f->bar[2].base, nb, "BAR2 base not moved");
    cr_assert_eq(pci_cfg_read(f, PCI_BAR_REG(2), 4), (uint32_t)nb, "BAR2 register not updated");
    cr_assert_eq(dv.moved_calls, 1, "bar_moved called %d times, want 1", dv.moved_calls);
    cr_assert_eq(dv.moved_bar, 2, "bar_moved told BAR %u, want 2", dv.moved_bar);
    cr_assert_eq(dv.moved_old, old, "bar_moved old base %#lx, want %#lx",
                 (unsigned long)dv.moved_old, (unsigned long)old);
    cr_assert_eq(dv.moved_new, nb, "bar_moved new base %#lx, want %#lx",
                 (unsigned long)dv.moved_new, (unsigned long)nb);

    cr_assert_eq(mem_rd(nb + 0x24, 4), DEV_READ_VALUE, "read at the new address not served");
    cr_assert_eq(dv.bar_calls, 1, "access at the new address did not reach the model");
    cr_assert_eq(dv.bar, 2, "access reached BAR %u, want 2", dv.bar);
    cr_assert_eq(dv.offset, 0x24, "model saw offset %#lx, want 0x24", (unsigned long)dv.offset);
    uint64_t v = 0;
    cr_assert_eq(mem_access(old + 0x24, 4, false, &v), BUS_UNCLAIMED,
                 "the old BAR2 address still decodes");
    cr_assert_eq(dv.bar_calls, 1, "access at the old address reached the model");

    /* The 64-bit BAR moves through its lower dword. */
    uint64_t nb0 = MOAT_GPA_MMIO_HOLE + 0x200000;
    cfg_wr_ok(f, PCI_BAR_REG(0), 4, (uint32_t)nb0 | PCI_BAR_MEM_64);
    cr_assert_eq(f->bar[0].base, nb0, "BAR0 base not moved");
    cr_assert_eq(dv.moved_bar, 0, "bar_moved told BAR %u, want 0", dv.moved_bar);
    (void)mem_rd(nb0 + 0x3FFC, 4);
    cr_assert_eq(dv.bar, 0, "last dword of moved BAR0 reached BAR %u", dv.bar);
    cr_assert_eq(dv.offset, 0x3FFC, "model saw offset %#lx, want 0x3FFC",
                 (unsigned long)dv.offset);

    /* The I/O BAR. */
    uint64_t np = 0xD000;
    cfg_wr_ok(f, PCI_BAR_REG(4), 4, (uint32_t)np | PCI_BAR_IO);
    cr_assert_eq(f->bar[4].base, np, "BAR4 port not moved");
    v = 0;
    cr_assert_eq(io_access(np + 3, 1, false, &v), BUS_OK, "port at the new I/O base unclaimed");
    cr_assert_eq(dv.bar, 4, "port access reached BAR %u, want 4", dv.bar);
    cr_assert_eq(dv.offset, 3, "model saw port offset %#lx, want 3", (unsigned long)dv.offset);
    cr_assert_eq(dv.moved_calls, 3, "bar_moved called %d times after 3 moves", dv.moved_calls);
    cr_assert_eq(fk.refused_calls, 0, "a valid move was refused: %s", fk.last_what);
}

Test(pci, bar_relocation_refusals_leave_bar_in_place)
{
    struct pci_func *f = add_bar_dev();
    struct pci_func *g = add_dev("other");
    cr_assert(pci_bar_add(g, 0, PCI_BAR_MEM32, 0x1000), "second function's BAR refused");
    struct { unsigned reg; uint32_t v; const char *why; } bad[] = {
        { 2, (uint32_t)MOAT_GPA_MMIO_HOLE + 0x100800, "misaligned for a 4 KiB BAR" },
        { 2, 0x1000, "outside the MMIO window (low RAM)" },
        { 2, (uint32_t)f->bar[0].base + 0x1000, "inside this function's BAR0" },
        { 2, (uint32_t)g->bar[0].base, "on another function's BAR" },
        { 2, (uint32_t)MOAT_GPA_ECAM, "on the ECAM window" },
        { 2, (uint32_t)MOAT_GPA_ECAM + 0x8000, "inside the ECAM window" },
        { 0, (uint32_t)MOAT_GPA_ECAM | PCI_BAR_MEM_64, "64-bit BAR on the ECAM window" },
        { 0, ((uint32_t)MOAT_GPA_MMIO_HOLE + 0x102000) | PCI_BAR_MEM_64,
          "misaligned for a 16 KiB BAR" },
        { 1, 1, "upper dword above 4 GiB, outside the window" },
        { 4, 0x1000 | PCI_BAR_IO, "port outside the I/O window" },
        { 4, 0xD010 | PCI_BAR_IO, "port misaligned for 32 ports" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        unsigned r = bad[i].reg, bi = r == 1 ? 0 : r;
        uint64_t base = f->bar[bi].base;
        uint32_t reg = pci_cfg_read(f, PCI_BAR_REG(r), 4);
        uint64_t refused0 = bus.stats.cfg_refused;
        int calls0 = fk.refused_calls;
        cr_assert_not(pci_cfg_write(f, PCI_BAR_REG(r), 4, bad[i].v),
                      "BAR%u <- %#x (%s) accepted", r, bad[i].v, bad[i].why);
        cr_assert_eq(bus.stats.cfg_refused, refused0 + 1, "refusal of BAR%u <- %#x (%s) not counted",
                     r, bad[i].v, bad[i].why);
        cr_assert_eq(fk.refused_calls, calls0 + 1, "platform not told of BAR%u <- %#x (%s)", r,
                     bad[i].v, bad[i].why);
        cr_assert_eq(f->bar[bi].base, base, "refused write (%s) moved the BAR", bad[i].why);
        cr_assert_eq(pci_cfg_read(f, PCI_BAR_REG(r), 4), reg,
                     "refused write (%s) changed the BAR register", bad[i].why);
    }
    cr_assert_eq(dv.moved_calls, 0, "bar_moved called for a refused move");
}

/* ---- 4. capabilities ----------------------------------------------------- */

Test(pci, capability_chain_is_well_formed)
{
    struct pci_func *plain = add_dev("plain");
    cr_assert_eq(ecam_rd(0, plain->slot, 0, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST, 0,
                 "a function without capabilities must not set STATUS.CAP_LIST");
    cr_assert_eq(ecam_rd(0, plain->slot, 0, PCI_CAP_PTR, 1), 0,
                 "a function without capabilities must have CAP_PTR 0");

    struct pci_func *f = add_dev("caps");
    cr_assert(pci_bar_add(f, 0, PCI_BAR_MEM32, 0x4000));
    static const uint8_t vend[5] = { 7, 0xAA, 0xBB, 0xCC, 0xDD };
    uint16_t vcap = pci_cap_add(f, PCI_CAP_ID_VENDOR, vend, sizeof vend);
    cr_assert_neq(vcap, 0, "vendor capability not added");
    cr_assert(pci_msix_add(f, 8, 0, 0x2000, 0, 0x3000), "MSI-X not added");

    cr_assert_neq(ecam_rd(0, f->slot, 0, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST, 0,
                  "STATUS.CAP_LIST not set with capabilities present");
    static const uint8_t want[] = { PCI_CAP_ID_VENDOR, PCI_CAP_ID_MSIX };
    uint8_t ptr = (uint8_t)ecam_rd(0, f->slot, 0, PCI_CAP_PTR, 1);
    size_t found = 0;
    uint16_t msix_at = 0;
    for (int guard = 0; ptr; guard++) {
        cr_assert_lt(guard, 48, "capability list does not terminate (loop?)");
        cr_assert_geq(ptr, PCI_CAP_START, "capability at %#x is inside the header", ptr);
        cr_assert_leq(ptr, 0xFC, "capability at %#x runs past 0xFF", ptr);
        cr_assert_eq(ptr % 4, 0, "capability at %#x is not dword aligned", ptr);
        cr_assert_lt(found, sizeof want, "more capabilities than added");
        uint8_t id = (uint8_t)ecam_rd(0, f->slot, 0, ptr, 1);
        cr_assert_eq(id, want[found], "capability %zu has ID %#x, want %#x", found, id,
                     want[found]);
        if (id == PCI_CAP_ID_MSIX)
            msix_at = ptr;
        found++;
        ptr = (uint8_t)ecam_rd(0, f->slot, 0, ptr + 1u, 1);
    }
    cr_assert_eq(found, sizeof want, "walked %zu capabilities, want %zu", found, sizeof want);
    cr_assert_eq(ecam_rd(0, f->slot, 0, vcap + 2u, 1), 7, "vendor capability body not copied");
    cr_assert_eq(ecam_rd(0, f->slot, 0, vcap + 6u, 1), 0xDD, "vendor capability body truncated");
    cr_assert_leq(msix_at + PCI_MSIX_CAP_LEN, PCI_CFG_LEGACY_SIZE, "MSI-X runs past 0xFF");
    cr_assert_eq(ecam_rd(0, f->slot, 0, msix_at + PCI_MSIX_CTRL, 2) & PCI_MSIX_CTRL_SIZE_MASK, 7,
                 "MSI-X table size field must be entries - 1");
    cr_assert_eq(ecam_rd(0, f->slot, 0, msix_at + PCI_MSIX_TABLE, 4), 0x2000u | 0,
                 "MSI-X table offset/BIR wrong");
    cr_assert_eq(ecam_rd(0, f->slot, 0, msix_at + PCI_MSIX_PBA, 4), 0x3000u | 0,
                 "MSI-X PBA offset/BIR wrong");
}

Test(pci, cap_add_stays_inside_legacy_config_space)
{
    struct pci_func *f = add_dev("full");
    uint8_t body[62];
    memset(body, 0xEE, sizeof body);
    uint16_t at[3];
    for (unsigned i = 0; i < 3; i++) {
        at[i] = pci_cap_add(f, PCI_CAP_ID_VENDOR, body, sizeof body);
        cr_assert_eq(at[i], PCI_CAP_START + 64u * i, "capability %u placed at %#x, want %#x", i,
                     at[i], PCI_CAP_START + 64u * i);
    }
    cr_assert_eq(pci_cap_add(f, PCI_CAP_ID_VENDOR, body, 1), 0,
                 "a capability past 0xFF (in extended config space) was added");
    cr_assert_eq(pci_cfg_read(f, at[2] + 1u, 1), 0, "a refused capability was linked in");
    cr_assert_eq(pci_cfg_read(f, PCI_CFG_LEGACY_SIZE, 4), 0,
                 "a refused capability wrote extended config space");
}

Test(pci, describe_reports_slot_ids_and_bars)
{
    struct pci_func *f = add_bar_dev();
    struct moat_device_info d;
    pci_func_describe(f, &d);
    cr_assert_eq(d.bus, 0, "described bus %u", d.bus);
    cr_assert_eq(d.dev, f->slot, "described device %u, want slot %u", d.dev, f->slot);
    cr_assert_eq(d.vendor, 0x1AF4, "described vendor %#x", d.vendor);
    cr_assert_eq(d.device, 0x1041, "described device ID %#x", d.device);
    cr_assert_eq(d.intx_gsi, GSI, "described GSI %u", d.intx_gsi);
    cr_assert_str_eq(d.name, "bars", "described name '%s'", d.name);
    static const uint32_t kind[PCI_BARS] = {
        MOAT_BAR_MEM64, MOAT_BAR_NONE, MOAT_BAR_MEM32, MOAT_BAR_NONE, MOAT_BAR_IO, MOAT_BAR_NONE,
    };
    for (unsigned n = 0; n < PCI_BARS; n++) {
        cr_assert_eq(d.bar[n].kind, kind[n], "BAR%u described as kind %u, want %u", n,
                     d.bar[n].kind, kind[n]);
        cr_assert_eq(d.bar[n].base, f->bar[n].base, "BAR%u base described wrong", n);
        cr_assert_eq(d.bar[n].size, f->bar[n].size, "BAR%u size described wrong", n);
    }
}

/* ---- 5. protected config writes ------------------------------------------ */

Test(pci, read_only_config_writes_are_refused_whole)
{
    struct pci_func *f = add_dev("ro");
    cr_assert(pci_bar_add(f, 0, PCI_BAR_MEM32, 0x4000));
    cr_assert(pci_msix_add(f, 4, 0, 0x2000, 0, 0x3000));
    uint32_t ctrl = f->msix.cap + PCI_MSIX_CTRL;
    struct { uint32_t off, size, v; const char *what; } ro[] = {
        { PCI_VENDOR_ID, 2, 0x8086, "vendor ID" },
        { PCI_DEVICE_ID, 2, 0x1234, "device ID" },
        { PCI_VENDOR_ID, 4, 0x12348086, "vendor+device dword" },
        { PCI_CLASS, 1, 0x01, "class" },
        { PCI_SUBCLASS, 1, 0x80, "subclass" },
        { PCI_HEADER_TYPE, 1, 0x80, "header type (multi-function bit)" },
        { PCI_CAP_PTR, 1, 0x80, "capability pointer" },
        { PCI_INT_PIN, 1, 2, "interrupt pin" },
        { f->msix.cap, 1, PCI_CAP_ID_MSI, "MSI-X capability ID" },
        { f->msix.cap + 1u, 1, 0x80, "MSI-X next pointer" },
        { ctrl, 2, PCI_MSIX_CTRL_ENABLE | 0x7FF, "MSI-X table size bits" },
        { f->msix.cap + PCI_MSIX_TABLE, 4, 0x1000, "MSI-X table offset" },
    };
    for (size_t i = 0; i < sizeof ro / sizeof ro[0]; i++) {
        uint32_t before = pci_cfg_read(f, ro[i].off, ro[i].size);
        uint64_t refused0 = bus.stats.cfg_refused;
        int calls0 = fk.refused_calls;
        cr_assert_not(pci_cfg_write(f, ro[i].off, ro[i].size, ro[i].v),
                      "write of %#x to the %s accepted", ro[i].v, ro[i].what);
        cr_assert_eq(bus.stats.cfg_refused, refused0 + 1, "refused write to the %s not counted",
                     ro[i].what);
        cr_assert_eq(fk.refused_calls, calls0 + 1, "platform not told of the write to the %s",
                     ro[i].what);
        cr_assert_str_eq(fk.last_device, "ro", "refusal blamed on '%s'", fk.last_device);
        cr_assert_eq(pci_cfg_read(f, ro[i].off, ro[i].size), before,
                     "refused write changed the %s", ro[i].what);
    }
    cr_assert_not(pci_msix_enabled(f), "the refused control write enabled MSI-X anyway");
}

Test(pci, same_value_to_read_only_field_is_accepted)
{
    struct pci_func *f = add_dev("same");
    uint32_t id = pci_cfg_read(f, PCI_VENDOR_ID, 4);
    cfg_wr_ok(f, PCI_VENDOR_ID, 4, id);
    cfg_wr_ok(f, PCI_VENDOR_ID, 2, id & 0xFFFF);
    cfg_wr_ok(f, PCI_CLASS, 1, 0x02);
    cfg_wr_ok(f, PCI_HEADER_TYPE, 1, 0);
    cr_assert_eq(pci_cfg_read(f, PCI_VENDOR_ID, 4), id, "IDs changed by an identical write");
    cr_assert_eq(bus.stats.cfg_refused, 0, "identical writes were counted as refused");
    cr_assert_eq(fk.refused_calls, 0, "identical write refused: %s", fk.last_what);
    /* INT_LINE is OS scratch. */
    cfg_wr_ok(f, PCI_INT_LINE, 1, 0x42);
    cr_assert_eq(pci_cfg_read(f, PCI_INT_LINE, 1), 0x42, "INT_LINE is not writable scratch");
}

Test(pci, command_register_write_mask)
{
    struct pci_func *f = add_dev("cmd");
    uint16_t rw = PCI_CMD_IO | PCI_CMD_MEM | PCI_CMD_MASTER | PCI_CMD_INTX_DISABLE;
    ecam_wr(0, f->slot, 0, PCI_COMMAND, 2, rw);
    cr_assert_eq(ecam_rd(0, f->slot, 0, PCI_COMMAND, 2), rw,
                 "IO/MEM/MASTER/INTX_DISABLE not all writable through ECAM");
    cr_assert_eq(fk.refused_calls, 0, "writable command bits refused: %s", fk.last_what);
    set_command(f, 0);

    cr_assert_not(pci_cfg_write(f, PCI_COMMAND, 2, PCI_CMD_MEM | 0x0008),
                  "command bit 0x0008 (special cycles) accepted");
    cr_assert_eq(bus.stats.cfg_refused, 1, "refused command write not counted");
    cr_assert_eq(fk.refused_calls, 1, "platform not told of the refused command write");
    cr_assert_eq(pci_command(f), 0, "refused write must change nothing, not even MEM");
}

Test(pci, status_error_bits_are_write_one_to_clear)
{
    struct pci_func *f = add_dev("status");
    f->cfg[PCI_STATUS + 1] = 0x81;  /* detected parity error (15) + master data parity (8) */
    uint16_t st = (uint16_t)pci_cfg_read(f, PCI_STATUS, 2);
    cr_assert_eq(st & 0x8100, 0x8100, "test setup: error bits not visible");

    cfg_wr_ok(f, PCI_STATUS, 2, 0);
    cr_assert_eq(pci_cfg_read(f, PCI_STATUS, 2) & 0x8100, 0x8100,
                 "writing 0 to RW1C bits cleared them");
    cfg_wr_ok(f, PCI_STATUS, 2, 0x0100);
    cr_assert_eq(pci_cfg_read(f, PCI_STATUS, 2) & 0x8100, 0x8000,
                 "writing 1 to bit 8 must clear only bit 8");
    cfg_wr_ok(f, PCI_STATUS, 2, 0x8000);
    cr_assert_eq(pci_cfg_read(f, PCI_STATUS, 2) & PCI_STATUS_ERRORS, 0,
                 "writing 1 to bit 15 did not clear it");
    cr_assert_eq(fk.refused_calls, 0, "RW1C writes refused: %s", fk.last_what);

    /* STATUS's read-only bits are hardware state: writes are ignored, as
     * in hardware, not refused. */
    cfg_wr_ok(f, PCI_STATUS, 2, PCI_STATUS_INTX);
    cr_assert_eq(pci_cfg_read(f, PCI_STATUS, 2) & PCI_STATUS_INTX, 0,
                 "a write set the read-only STATUS.INTX");
}

/* The RW1C idiom is "write 1 to the bits to clear, 0 elsewhere" (Linux's
 * pci_status_get_and_clear_errors() writes status & PCI_STATUS_ERROR_BITS).
 * The read-only STATUS bits (CAP_LIST, INTX) ignore writes in hardware; a
 * 0 written to them must not make the clear a hostile, refused write. */
Test(pci, status_rw1c_clear_accepted_while_read_only_status_bits_are_set)
{
    struct pci_func *f = add_dev("status");
    static const uint8_t body[2] = { 0, 0 };
    cr_assert_neq(pci_cap_add(f, PCI_CAP_ID_VENDOR, body, sizeof body), 0);
    f->cfg[PCI_STATUS + 1] = 0x80;  /* detected parity error */
    uint16_t st = (uint16_t)pci_cfg_read(f, PCI_STATUS, 2);
    cr_assert_eq(st, PCI_STATUS_CAP_LIST | 0x8000, "test setup: status reads %#x", st);

    bool ok = pci_cfg_write(f, PCI_STATUS, 2, 0x8000);
    cr_assert(ok, "clearing STATUS bit 15 by writing 0x8000 refused (\"%s\") because the write "
                  "carries 0 in the read-only CAP_LIST bit", fk.last_what);
    cr_assert_eq(pci_cfg_read(f, PCI_STATUS, 2), PCI_STATUS_CAP_LIST,
                 "status after the clear must keep CAP_LIST and drop bit 15");
    cr_assert_eq(bus.stats.cfg_refused, 0, "a well-formed RW1C clear was counted as hostile");

    /* Same with the device asserting INTx (STATUS.INTX changes under the guest). */
    f->cfg[PCI_STATUS + 1] = 0x80;
    pci_intx_set(f, true);
    cr_assert(pci_cfg_write(f, PCI_STATUS, 2, 0x8000),
              "RW1C clear refused while STATUS.INTX is set (\"%s\")", fk.last_what);
    st = (uint16_t)pci_cfg_read(f, PCI_STATUS, 2);
    cr_assert_eq(st & 0x8000, 0, "bit 15 not cleared");
    cr_assert_eq(st & (PCI_STATUS_INTX | PCI_STATUS_CAP_LIST), PCI_STATUS_INTX | PCI_STATUS_CAP_LIST,
                 "writing 0 to the read-only INTX/CAP_LIST bits changed them (status %#x)", st);
}

Test(pci, misaligned_config_accesses_are_refused)
{
    struct pci_func *f = add_dev("align");
    struct { uint32_t off, size; const char *what; } bad[] = {
        { PCI_COMMAND + 1, 2, "2-byte at odd offset" },
        { PCI_DEVICE_ID, 4, "4-byte at offset 2" },
        { PCI_COMMAND, 3, "3-byte" },
        { PCI_COMMAND, 8, "8-byte" },
        { PCI_CFG_SIZE, 4, "past 4 KiB" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t bad0 = bus.stats.cfg_bad_access;
        cr_assert_not(pci_cfg_write(f, bad[i].off, bad[i].size, 0xFFFFFFFFu),
                      "%s config write accepted", bad[i].what);
        cr_assert_eq(bus.stats.cfg_bad_access, bad0 + 1, "%s config write not counted",
                     bad[i].what);
        cr_assert_eq(pci_cfg_read(f, bad[i].off, bad[i].size), 0xFFFFFFFFu,
                     "%s config read must read all ones", bad[i].what);
        cr_assert_eq(bus.stats.cfg_bad_access, bad0 + 2, "%s config read not counted",
                     bad[i].what);
    }
    cr_assert_eq(pci_command(f), 0, "a misaligned write changed the command register");
    /* Through ECAM as well. */
    uint64_t bad0 = bus.stats.cfg_bad_access;
    ecam_wr(0, f->slot, 0, PCI_COMMAND + 1, 2, 0xFFFF);
    cr_assert_eq(bus.stats.cfg_bad_access, bad0 + 1, "misaligned ECAM write not counted");
    cr_assert_eq(pci_command(f), 0, "misaligned ECAM write changed the command register");
    cr_assert_eq(fk.refused_calls, 2 * 5 + 1, "every bad access must reach the platform");
}

Test(pci, narrow_bar_writes_are_refused)
{
    struct pci_func *f = add_bar_dev();
    uint32_t reg = pci_cfg_read(f, PCI_BAR_REG(2), 4);
    cr_assert_not(pci_cfg_write(f, PCI_BAR_REG(2), 1, 0xFF), "1-byte BAR write accepted");
    cr_assert_not(pci_cfg_write(f, PCI_BAR_REG(2) + 2, 2, 0xC010), "2-byte BAR write accepted");
    cr_assert_not(pci_cfg_write(f, PCI_BAR_REG(3), 2, 0), "2-byte write to an empty BAR accepted");
    cr_assert_eq(bus.stats.cfg_refused, 3, "narrow BAR writes counted %lu, want 3",
                 (unsigned long)bus.stats.cfg_refused);
    cr_assert_eq(fk.refused_calls, 3, "platform told of %d narrow BAR writes, want 3",
                 fk.refused_calls);
    cr_assert_eq(pci_cfg_read(f, PCI_BAR_REG(2), 4), reg, "narrow write changed the BAR");
    cr_assert_eq(dv.moved_calls, 0, "narrow write moved the BAR");
}

/* ---- 6. BAR decode ------------------------------------------------------- */

Test(pci, mem_bar_decode_follows_command_mem)
{
    struct pci_func *f = add_bar_dev();
    uint64_t a = f->bar[2].base + 0x10;
    cr_assert_eq(mem_rd(a, 4) & ones(4), ones(4), "read with MEM decode off must read all ones");
    mem_wr(a, 4, 0x1234);
    cr_assert_eq(dv.bar_calls, 0, "an access with MEM decode off reached the model");
    cr_assert_eq(bus.stats.bar_decode_off, 2, "decode-off accesses counted %lu, want 2",
                 (unsigned long)bus.stats.bar_decode_off);

    set_command(f, PCI_CMD_MEM);
    cr_assert_eq(mem_rd(a, 4), DEV_READ_VALUE, "read with MEM on not served by the model");
    mem_wr(a, 2, 0xBEEF);
    cr_assert_eq(dv.bar_calls, 2, "accesses with MEM on reached the model %d times, want 2",
                 dv.bar_calls);
    cr_assert(dv.is_write, "the write arrived as a read");
    cr_assert_eq(dv.value, 0xBEEF, "the model saw value %#lx", (unsigned long)dv.value);
    cr_assert_eq(dv.size, 2, "the model saw size %u", dv.size);
    cr_assert_eq(dv.offset, 0x10, "the model saw offset %#lx", (unsigned long)dv.offset);

    set_command(f, PCI_CMD_IO);
    (void)mem_rd(a, 4);
    cr_assert_eq(dv.bar_calls, 2, "IO decode alone let a memory access through");
}

Test(pci, io_bar_decode_follows_command_io)
{
    struct pci_func *f = add_bar_dev();
    uint64_t port = f->bar[4].base + 4, v = 0;
    cr_assert_eq(io_access(port, 2, false, &v), BUS_OK, "port in the I/O BAR unclaimed");
    cr_assert_eq(v & ones(2), ones(2), "read with IO decode off must read all ones");
    cr_assert_eq(dv.bar_calls, 0, "a port access with IO decode off reached the model");
    cr_assert_eq(bus.stats.bar_decode_off, 1, "decode-off port access not counted");

    set_command(f, PCI_CMD_MEM);
    cr_assert_eq(io_access(port, 2, false, &v), BUS_OK);
    cr_assert_eq(dv.bar_calls, 0, "MEM decode alone let a port access through");

    set_command(f, PCI_CMD_IO);
    cr_assert_eq(io_access(port, 2, false, &v), BUS_OK);
    cr_assert_eq(v, DEV_READ_VALUE, "port read with IO on not served by the model");
    cr_assert_eq(dv.bar_calls, 1, "port access with IO on did not reach the model");
    cr_assert_eq(dv.bar, 4, "port access reached BAR %u, want 4", dv.bar);
    cr_assert_eq(dv.offset, 4, "model saw port offset %#lx, want 4", (unsigned long)dv.offset);
}

Test(pci, accesses_outside_every_bar_are_unclaimed)
{
    struct pci_func *f = add_bar_dev();
    set_command(f, PCI_CMD_MEM | PCI_CMD_IO);
    uint64_t v = 0;
    cr_assert_eq(mem_access(MOAT_GPA_MMIO_HOLE + 0x10000000, 4, false, &v), BUS_UNCLAIMED,
                 "a hole address in no BAR was claimed");
    uint64_t end = f->bar[2].base + f->bar[2].size;
    cr_assert_eq(mem_access(end - 2, 4, false, &v), BUS_UNCLAIMED,
                 "an access straddling the end of BAR2 was claimed");
    cr_assert_eq(mem_access(end - 4, 8, true, &v), BUS_UNCLAIMED,
                 "a write straddling the end of BAR2 was claimed");
    cr_assert_eq(io_access(0xFF00, 1, false, &v), BUS_UNCLAIMED, "a port in no BAR was claimed");
    cr_assert_eq(io_access(f->bar[4].base + 30, 4, false, &v), BUS_UNCLAIMED,
                 "a port access straddling the end of BAR4 was claimed");
    cr_assert_eq(dv.bar_calls, 0, "an unclaimed access reached the model");
    cr_assert_eq(mem_access(end - 4, 4, false, &v), BUS_OK, "the last dword of BAR2 unclaimed");
}

/* ---- 7. MSI-X ------------------------------------------------------------ */

#define MSIX_N      4u
#define TABLE_OFF   0x2000u
#define PBA_OFF     0x3000u

static void *notify_many(void *arg)
{
    for (int i = 0; i < 2000; i++)
        pci_msix_notify(arg, 0);
    return NULL;
}

static struct pci_func *add_msix_dev(void)
{
    struct pci_func *f = add_dev("msix");
    cr_assert(pci_bar_add(f, 0, PCI_BAR_MEM64, 0x4000), "MSI-X BAR refused");
    cr_assert(pci_msix_add(f, MSIX_N, 0, TABLE_OFF, 0, PBA_OFF), "MSI-X capability refused");
    set_command(f, PCI_CMD_MEM);
    return f;
}

static void msix_ctrl(struct pci_func *f, uint16_t bits)
{
    uint32_t off = f->msix.cap + PCI_MSIX_CTRL;
    uint16_t size = (uint16_t)(pci_cfg_read(f, off, 2) & PCI_MSIX_CTRL_SIZE_MASK);
    cfg_wr_ok(f, off, 2, size | bits);
}

static uint64_t entry(const struct pci_func *f, unsigned n, unsigned field)
{
    return f->bar[0].base + TABLE_OFF + n * PCI_MSIX_ENTRY_SIZE + field;
}

static uint64_t pba(const struct pci_func *f) { return f->bar[0].base + PBA_OFF; }

static void program(struct pci_func *f, unsigned n, uint64_t addr, uint32_t data)
{
    mem_wr(entry(f, n, PCI_MSIX_ENTRY_ADDR_LO), 4, (uint32_t)addr);
    mem_wr(entry(f, n, PCI_MSIX_ENTRY_ADDR_HI), 4, addr >> 32);
    mem_wr(entry(f, n, PCI_MSIX_ENTRY_DATA), 4, data);
}

Test(pci, msix_masked_entry_pends_and_unmask_delivers_once)
{
    struct pci_func *f = add_msix_dev();
    for (unsigned n = 0; n < MSIX_N; n++)
        cr_assert_eq(mem_rd(entry(f, n, PCI_MSIX_ENTRY_CTRL), 4), PCI_MSIX_ENTRY_MASKED,
                     "entry %u does not start masked", n);
    msix_ctrl(f, PCI_MSIX_CTRL_ENABLE);
    cr_assert(pci_msix_enabled(f), "MSI-X enable bit not writable");
    program(f, 1, 0xFEE00000u, 0x41);

    cr_assert(pci_msix_notify(f, 1), "notify of a masked entry must succeed (pend)");
    cr_assert_eq(fk.msi_calls, 0, "a masked entry delivered");
    cr_assert(pci_msix_pending(f, 1), "pending bit not set for the masked entry");
    cr_assert_eq(mem_rd(pba(f), 4), 0x2, "PBA dword reads %#lx, want bit 1",
                 (unsigned long)mem_rd(pba(f), 4));
    cr_assert_eq(mem_rd(pba(f), 8), 0x2, "PBA qword reads %#lx, want bit 1",
                 (unsigned long)mem_rd(pba(f), 8));
    cr_assert_eq(dv.bar_calls, 0, "table/PBA accesses leaked to the device model");

    mem_wr(entry(f, 1, PCI_MSIX_ENTRY_CTRL), 4, 0);
    cr_assert_eq(fk.msi_calls, 1, "unmasking delivered %d messages, want 1", fk.msi_calls);
    cr_assert_eq(fk.msi_addr[0], 0xFEE00000u, "delivered address %#lx",
                 (unsigned long)fk.msi_addr[0]);
    cr_assert_eq(fk.msi_data[0], 0x41, "delivered data %#x", fk.msi_data[0]);
    cr_assert_not(pci_msix_pending(f, 1), "pending bit not cleared on delivery");
    cr_assert_eq(mem_rd(pba(f), 4), 0, "PBA still shows the delivered vector");

    mem_wr(entry(f, 1, PCI_MSIX_ENTRY_CTRL), 4, 0);
    cr_assert_eq(fk.msi_calls, 1, "a second unmask re-delivered the message");
    cr_assert(pci_msix_notify(f, 1));
    cr_assert_eq(fk.msi_calls, 2, "notify of an unmasked entry did not deliver at once");
    cr_assert_eq(bus.stats.msi_sent, 2, "msi_sent %lu, want 2", (unsigned long)bus.stats.msi_sent);
    cr_assert_eq(bus.stats.msi_pended, 1, "msi_pended %lu, want 1",
                 (unsigned long)bus.stats.msi_pended);
}

Test(pci, msix_retracted_pending_bit_sends_nothing_at_unmask)
{
    struct pci_func *f = add_msix_dev();
    msix_ctrl(f, PCI_MSIX_CTRL_ENABLE);
    program(f, 2, 0xFEE00000u, 0x42);
    cr_assert(pci_msix_notify(f, 2), "notify of a masked entry must pend");
    cr_assert(pci_msix_pending(f, 2), "pending bit not set");
    cr_assert(pci_msix_retract(f, 2), "retract must report the bit it cleared");
    cr_assert_not(pci_msix_pending(f, 2), "retract left the pending bit");
    cr_assert_eq(mem_rd(pba(f), 4), 0, "the PBA still shows a retracted vector");
    cr_assert_not(pci_msix_retract(f, 2), "a second retract found a bit");
    cr_assert_not(pci_msix_retract(f, MSIX_N), "retract of an entry beyond the table");
    mem_wr(entry(f, 2, PCI_MSIX_ENTRY_CTRL), 4, 0);
    cr_assert_eq(fk.msi_calls, 0, "unmasking sent %d messages for a retracted vector",
                 fk.msi_calls);
    cr_assert(pci_msix_notify(f, 2));
    cr_assert_eq(fk.msi_calls, 1, "a later notify of the unmasked entry must deliver");
}

Test(pci, msix_function_mask_pends_until_cleared)
{
    struct pci_func *f = add_msix_dev();
    program(f, 2, 0xFEE03000u, 0x55);
    mem_wr(entry(f, 2, PCI_MSIX_ENTRY_CTRL), 4, 0);
    msix_ctrl(f, PCI_MSIX_CTRL_ENABLE | PCI_MSIX_CTRL_MASKALL);
    cr_assert(pci_msix_notify(f, 2));
    cr_assert_eq(fk.msi_calls, 0, "delivered while the function was masked");
    cr_assert(pci_msix_pending(f, 2), "function-masked vector not pending");
    cr_assert_eq(mem_rd(pba(f), 4), 0x4, "PBA does not show the function-masked vector");
    /* Touching the (unmasked) entry must not bypass the function mask. */
    mem_wr(entry(f, 2, PCI_MSIX_ENTRY_CTRL), 4, 0);
    cr_assert_eq(fk.msi_calls, 0, "an entry write delivered through the function mask");
    /* Nor may a disabled capability deliver. */
    msix_ctrl(f, PCI_MSIX_CTRL_MASKALL);
    msix_ctrl(f, 0);
    cr_assert_eq(fk.msi_calls, 0, "delivered with MSI-X disabled");
    mem_wr(entry(f, 2, PCI_MSIX_ENTRY_CTRL), 4, 0);
    cr_assert_eq(fk.msi_calls, 0, "an entry write delivered with MSI-X disabled");
    cr_assert(pci_msix_pending(f, 2), "pending bit lost while MSI-X was disabled");
    msix_ctrl(f, PCI_MSIX_CTRL_ENABLE | PCI_MSIX_CTRL_MASKALL);
    cr_assert_eq(fk.msi_calls, 0, "re-enabling with MASKALL set delivered");

    msix_ctrl(f, PCI_MSIX_CTRL_ENABLE);
    cr_assert_eq(fk.msi_calls, 1, "clearing MASKALL delivered %d messages, want 1", fk.msi_calls);
    cr_assert_eq(fk.msi_addr[0], 0xFEE03000u, "delivered address %#lx",
                 (unsigned long)fk.msi_addr[0]);
    cr_assert_eq(fk.msi_data[0], 0x55, "delivered data %#x", fk.msi_data[0]);
    cr_assert_not(pci_msix_pending(f, 2), "pending bit survived delivery");
}

Test(pci, msix_notify_refused_when_disabled_or_out_of_range)
{
    struct pci_func *f = add_msix_dev();
    program(f, 0, 0xFEE00000u, 0x30);
    mem_wr(entry(f, 0, PCI_MSIX_ENTRY_CTRL), 4, 0);
    cr_assert_not(pci_msix_notify(f, 0), "notify succeeded with MSI-X disabled");
    cr_assert_not(pci_msix_pending(f, 0), "notify with MSI-X disabled left a pending bit");
    msix_ctrl(f, PCI_MSIX_CTRL_ENABLE);
    cr_assert_eq(fk.msi_calls, 0, "enabling MSI-X delivered a vector nobody raised");
    cr_assert_not(pci_msix_notify(f, MSIX_N), "notify of entry n == entries succeeded");
    cr_assert_not(pci_msix_notify(f, 0xFFFF), "notify of entry 0xFFFF succeeded");
    cr_assert_eq(fk.msi_calls, 0, "an out-of-range notify delivered");
    cr_assert_eq(bus.stats.msi_pended, 0, "a refused notify was counted as pended");
    cr_assert_eq(bus.stats.msi_bad_message, 2, "out-of-range notifies not counted");
    cr_assert_eq(fk.refused_calls, 2, "out-of-range notifies not reported to the platform");

    struct pci_func *plain = add_dev("no-msix");
    cr_assert_not(pci_msix_notify(plain, 0), "notify on a function without MSI-X succeeded");
    cr_assert_not(pci_msix_enabled(plain), "a function without MSI-X reports it enabled");
}

Test(pci, msix_invalid_messages_are_not_delivered)
{
    struct pci_func *f = add_msix_dev();
    msix_ctrl(f, PCI_MSIX_CTRL_ENABLE);
    struct { uint64_t addr; uint32_t data; const char *what; } bad[] = {
        { 0x12345000u, 0x41, "address outside the interrupt window" },
        { 0xFEE00000u, 15, "vector below 16" },
        { 0xFEE00000u, 0x100 | 0x41, "non-fixed delivery mode" },
        { 0xFEE00008u, 0x41, "redirection hint / logical mode bits" },
        { 0x1FEE00000ull, 0x41, "address above 4 GiB" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        program(f, 0, bad[i].addr, bad[i].data);
        mem_wr(entry(f, 0, PCI_MSIX_ENTRY_CTRL), 4, 0);
        int refused0 = fk.refused_calls;
        cr_assert(pci_msix_notify(f, 0));
        cr_assert_eq(fk.msi_calls, 0, "message with %s delivered", bad[i].what);
        cr_assert_eq(bus.stats.msi_bad_message, i + 1, "message with %s not counted", bad[i].what);
        cr_assert_eq(fk.refused_calls, refused0 + 1, "platform not told of the %s", bad[i].what);
    }
    program(f, 0, 0xFEE0F000u, 0x41);   /* destination APIC 15 is fine */
    cr_assert(pci_msix_notify(f, 0));
    cr_assert_eq(fk.msi_calls, 1, "a valid message to APIC 15 not delivered");
    cr_assert_eq(bus.stats.msi_sent, 1, "msi_sent counts invalid messages");
}

Test(pci, msix_table_and_pba_width_and_alignment_refused)
{
    struct pci_func *f = add_msix_dev();
    program(f, 0, 0xFEE00000u, 0x41);
    struct { uint64_t addr; uint32_t size; bool write; const char *what; } bad[] = {
        { entry(f, 0, 0), 1, false, "1-byte table read" },
        { entry(f, 0, 0), 2, false, "2-byte table read" },
        { entry(f, 0, 0), 1, true, "1-byte table write" },
        { entry(f, 0, 2), 2, true, "2-byte table write" },
        { entry(f, 0, 2), 4, true, "misaligned dword table write" },
        { entry(f, 0, 4), 8, true, "misaligned qword table write" },
        { pba(f), 1, false, "1-byte PBA read" },
        { pba(f), 4, true, "dword PBA write" },
        { pba(f), 8, true, "qword PBA write" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t v = bad[i].write ? ~0ull : 0;
        uint64_t bad0 = bus.stats.msix_bad_access;
        int refused0 = fk.refused_calls;
        cr_assert_eq(mem_access(bad[i].addr, bad[i].size, bad[i].write, &v), BUS_OK,
                     "%s unclaimed", bad[i].what);
        cr_assert_eq(bus.stats.msix_bad_access, bad0 + 1, "%s not counted", bad[i].what);
        cr_assert_eq(fk.refused_calls, refused0 + 1, "platform not told of the %s", bad[i].what);
        if (!bad[i].write)
            cr_assert_eq(v, 0, "%s returned %#lx, want 0", bad[i].what, (unsigned long)v);
    }
    cr_assert_eq(mem_rd(entry(f, 0, PCI_MSIX_ENTRY_ADDR_LO), 4), 0xFEE00000u,
                 "a refused table write changed the address");
    cr_assert_eq(mem_rd(entry(f, 0, PCI_MSIX_ENTRY_DATA), 4), 0x41,
                 "a refused table write changed the data");
    cr_assert_eq(mem_rd(entry(f, 0, PCI_MSIX_ENTRY_CTRL), 4), PCI_MSIX_ENTRY_MASKED,
                 "a refused table write unmasked the entry");
    cr_assert_eq(mem_rd(pba(f), 8), 0, "a refused PBA write set pending bits");
    cr_assert_eq(dv.bar_calls, 0, "a table/PBA access leaked to the device model");
}

Test(pci, msix_vector_control_only_mask_bit_writable)
{
    struct pci_func *f = add_msix_dev();
    mem_wr(entry(f, 3, PCI_MSIX_ENTRY_CTRL), 4, 0xFFFFFFFFu);
    cr_assert_eq(mem_rd(entry(f, 3, PCI_MSIX_ENTRY_CTRL), 4), PCI_MSIX_ENTRY_MASKED,
                 "vector control reads %#lx after writing all ones, want 1",
                 (unsigned long)mem_rd(entry(f, 3, PCI_MSIX_ENTRY_CTRL), 4));
    mem_wr(entry(f, 3, PCI_MSIX_ENTRY_DATA), 8, 0xFFFFFFFE00000041ull);
    cr_assert_eq(mem_rd(entry(f, 3, PCI_MSIX_ENTRY_CTRL), 4), 0,
                 "a qword write over data+control must keep only control bit 0 (cleared)");
    cr_assert_eq(mem_rd(entry(f, 3, PCI_MSIX_ENTRY_DATA), 4), 0x41, "data dword not written");
}

Test(pci, msix_qword_table_write_sets_address)
{
    struct pci_func *f = add_msix_dev();
    mem_wr(entry(f, 2, PCI_MSIX_ENTRY_ADDR_LO), 8, 0x00000000FEE02000ull);
    cr_assert_eq(mem_rd(entry(f, 2, PCI_MSIX_ENTRY_ADDR_LO), 4), 0xFEE02000u,
                 "qword write: low address dword wrong");
    cr_assert_eq(mem_rd(entry(f, 2, PCI_MSIX_ENTRY_ADDR_HI), 4), 0,
                 "qword write: high address dword wrong");
    cr_assert_eq(mem_rd(entry(f, 2, PCI_MSIX_ENTRY_ADDR_LO), 8), 0xFEE02000ull,
                 "qword read back of the address wrong");
    mem_wr(entry(f, 2, PCI_MSIX_ENTRY_DATA), 4, 0x61);
    mem_wr(entry(f, 2, PCI_MSIX_ENTRY_CTRL), 4, 0);
    msix_ctrl(f, PCI_MSIX_CTRL_ENABLE);
    cr_assert(pci_msix_notify(f, 2));
    cr_assert_eq(fk.msi_calls, 1, "message programmed by qword write not delivered");
    cr_assert_eq(fk.msi_addr[0], 0xFEE02000u, "delivered address %#lx",
                 (unsigned long)fk.msi_addr[0]);
    cr_assert_eq(fk.msi_data[0], 0x61, "delivered data %#x", fk.msi_data[0]);
    cr_assert_eq(bus.stats.msix_bad_access, 0, "aligned qword/dword accesses counted as bad");
}

/* ---- 8. INTx ------------------------------------------------------------- */

Test(pci, intx_level_status_and_disable)
{
    struct pci_func *f = add_dev("intx");
    cr_assert_eq(pci_cfg_read(f, PCI_INT_PIN, 1), 1, "a function with a GSI must use INTA#");
    pci_intx_set(f, true);
    cr_assert_neq(pci_cfg_read(f, PCI_STATUS, 2) & PCI_STATUS_INTX, 0, "STATUS.INTX not set");
    cr_assert_eq(fk.intx_calls, 1, "platform not told of the raised line");
    cr_assert_eq(fk.intx_gsi, GSI, "line raised on GSI %u, want %u", fk.intx_gsi, GSI);
    cr_assert(fk.intx_level, "platform told the line is low");

    set_command(f, PCI_CMD_INTX_DISABLE);
    cr_assert_eq(fk.intx_calls, 2, "INTX_DISABLE did not lower the platform line");
    cr_assert_not(fk.intx_level, "INTX_DISABLE left the platform line high");
    cr_assert_neq(pci_cfg_read(f, PCI_STATUS, 2) & PCI_STATUS_INTX, 0,
                  "STATUS.INTX must reflect the device's line even while disabled");

    set_command(f, 0);
    cr_assert_eq(fk.intx_calls, 3, "clearing INTX_DISABLE did not re-raise the line");
    cr_assert(fk.intx_level, "line low after clearing INTX_DISABLE with the device asserting");

    pci_intx_set(f, false);
    cr_assert_eq(fk.intx_calls, 4, "platform not told of the lowered line");
    cr_assert_not(fk.intx_level, "level false left the line high");
    cr_assert_eq(pci_cfg_read(f, PCI_STATUS, 2) & PCI_STATUS_INTX, 0, "STATUS.INTX stuck");
    pci_intx_set(f, false);
    cr_assert_eq(fk.intx_calls, 4, "an unchanged level was re-sent to the platform");
}

Test(pci, intx_suppressed_while_msix_enabled)
{
    struct pci_func *f = add_msix_dev();
    msix_ctrl(f, PCI_MSIX_CTRL_ENABLE);
    pci_intx_set(f, true);
    cr_assert_eq(fk.intx_calls, 0, "INTx delivered while MSI-X is enabled");
    cr_assert_neq(pci_cfg_read(f, PCI_STATUS, 2) & PCI_STATUS_INTX, 0, "STATUS.INTX not set");
    msix_ctrl(f, 0);
    cr_assert_eq(fk.intx_calls, 1, "disabling MSI-X did not deliver the asserted INTx");
    cr_assert(fk.intx_level, "disabling MSI-X delivered a low line");
    msix_ctrl(f, PCI_MSIX_CTRL_ENABLE);
    cr_assert_eq(fk.intx_calls, 2, "enabling MSI-X did not lower INTx");
    cr_assert_not(fk.intx_level, "enabling MSI-X left INTx high");
}

Test(pci, intx_absent_without_gsi)
{
    struct pci_func *f = pci_func_add(&bus, "nogsi", 0x1AF4, 0x1041, 0x020000, MOAT_NO_GSI,
                                      &dev_ops, &dv);
    cr_assert_not_null(f);
    cr_assert_eq(pci_cfg_read(f, PCI_INT_PIN, 1), 0, "INT_PIN must be 0 without a GSI");
    pci_intx_set(f, true);
    cr_assert_eq(fk.intx_calls, 0, "INTx delivered for a function without a GSI");
}

/* ---- 9. DMA -------------------------------------------------------------- */

static void grant_window(uint32_t dom, uint64_t len)
{
    struct dma_handle h;
    char err[128];
    cr_assert(broker_grant(&br, dom, W0, len, DMA_BIDIR, &h, err, sizeof err), "grant: %s", err);
}

Test(pci, dma_refused_without_bus_master)
{
    struct pci_func *f = add_dev("dma");
    grant_window(DOM, 4 * PAGE);
    uint64_t seq0 = br.audit_seq;
    struct dma_mapping m;
    void *p = pci_dma_map(f, W0, 64, DMA_TO_DEVICE, &m);
    void *host = m.host;
    if (p)
        pci_dma_unmap(f, &m);   /* never leave a mapping for broker_fini to wait on */
    cr_assert_null(p, "DMA mapped with bus mastering disabled");
    cr_assert_null(host, "refused map left a host pointer");
    cr_assert_eq(bus.stats.dma_master_off, 1, "master-off DMA not counted");
    cr_assert_eq(bus.stats.dma_refused, 0, "master-off DMA counted as a broker refusal");
    cr_assert_eq(br.audit_seq, seq0, "master-off DMA reached the broker");
    cr_assert_eq(fk.refused_calls, 1, "platform not told of the master-off DMA");
    cr_assert_eq(fk.dma_refused_calls, 0, "master-off DMA reported as a broker refusal");
}

Test(pci, dma_in_window_returns_broker_memory)
{
    struct pci_func *f = add_dev("dma");
    grant_window(DOM, 4 * PAGE);
    set_command(f, PCI_CMD_MASTER);
    struct dma_mapping m;
    uint8_t *p = pci_dma_map(f, W0 + 0x100, 64, DMA_FROM_DEVICE, &m);
    cr_assert_not_null(p, "in-window DMA refused (%s)", broker_refusal_name(m.refusal));
    struct dma_mapping seen = m;
    memcpy(p, "pci-dma!", 8);
    pci_dma_unmap(f, &m);
    cr_assert_eq(p, seen.host, "returned pointer is not the mapping's host pointer");
    cr_assert_eq(seen.domain, DOM, "mapping made for domain %u, want %u", seen.domain, DOM);
    cr_assert_eq(seen.iova, W0 + 0x100, "mapping iova %#lx", (unsigned long)seen.iova);

    struct dma_mapping m2;
    uint8_t *q = broker_dma_map(&br, DOM, "check", W0 + 0x100, 8, DMA_TO_DEVICE, &m2);
    cr_assert_not_null(q);
    cr_assert_eq(memcmp(q, "pci-dma!", 8), 0, "DMA did not write the broker's window");
    broker_dma_unmap(&br, &m2);
    cr_assert_eq(bus.stats.dma_refused + bus.stats.dma_master_off, 0, "a good map was counted");
    cr_assert_eq(br.win[m.window].in_flight, 0, "pci_dma_unmap did not release the mapping");
}

Test(pci, dma_out_of_window_refused_and_audited)
{
    struct pci_func *f = add_dev("dmabad");
    grant_window(DOM, 4 * PAGE);
    grant_window(DOM + 1, 8 * PAGE);    /* another domain's memory */
    set_command(f, PCI_CMD_MASTER);
    uint64_t seq0 = br.audit_seq;
    struct dma_mapping m;
    void *p = pci_dma_map(f, W0 + 4 * PAGE, 16, DMA_TO_DEVICE, &m);
    if (p)
        pci_dma_unmap(f, &m);   /* never leave a mapping for broker_fini to wait on */
    cr_assert_null(p, "DMA beyond the window (into another domain's range) mapped");
    cr_assert_eq(bus.stats.dma_refused, 1, "refused DMA not counted");
    cr_assert_eq(fk.dma_refused_calls, 1, "platform dma_refused not called");
    cr_assert_eq(fk.dma_why, BR_OUT_OF_WINDOW, "platform told %s, want out-of-window",
                 broker_refusal_name(fk.dma_why));
    cr_assert_eq(fk.dma_iova, W0 + 4 * PAGE, "platform told iova %#lx",
                 (unsigned long)fk.dma_iova);
    cr_assert_eq(fk.dma_len, 16, "platform told len %lu", (unsigned long)fk.dma_len);

    struct broker_audit a;
    cr_assert_eq(broker_audit_read(&br, seq0, &a, 1), 1, "no broker audit record");
    cr_assert_eq(a.domain, DOM, "audited domain %u, want %u", a.domain, DOM);
    cr_assert_str_eq(a.device, "dmabad", "audited device '%s'", a.device);
    cr_assert_eq(a.addr, W0 + 4 * PAGE, "audited address %#lx", (unsigned long)a.addr);
    cr_assert_eq(a.reason, BR_OUT_OF_WINDOW, "audited reason %s",
                 broker_refusal_name(a.reason));
}

/* ---- 10. construction limits --------------------------------------------- */

Test(pci, bar_add_refuses_invalid_bars)
{
    struct pci_func *f = add_dev("limits");
    cr_assert_not(pci_bar_add(f, 0, PCI_BAR_MEM32, 0x3000), "non-power-of-two size accepted");
    cr_assert_not(pci_bar_add(f, 0, PCI_BAR_MEM32, 0x800), "2 KiB memory BAR accepted");
    cr_assert_not(pci_bar_add(f, 0, PCI_BAR_MEM32, 0), "zero-size BAR accepted");
    cr_assert_not(pci_bar_add(f, 0, PCI_BAR_IOPORT, 24), "non-power-of-two I/O BAR accepted");
    cr_assert_not(pci_bar_add(f, 5, PCI_BAR_MEM64, 0x1000), "64-bit BAR at index 5 accepted");
    cr_assert_not(pci_bar_add(f, PCI_BARS, PCI_BAR_MEM32, 0x1000), "BAR index 6 accepted");
    cr_assert_not(pci_bar_add(f, 0, PCI_BAR_NONE, 0x1000), "BAR of kind NONE accepted");
    cr_assert(pci_bar_add(f, 0, PCI_BAR_MEM64, 0x1000), "a valid 64-bit BAR0 refused");
    cr_assert_not(pci_bar_add(f, 0, PCI_BAR_MEM32, 0x1000), "BAR0 reused");
    cr_assert_not(pci_bar_add(f, 1, PCI_BAR_MEM32, 0x1000),
                  "BAR1 (upper half of 64-bit BAR0) reused");
    cr_assert(pci_bar_add(f, 3, PCI_BAR_MEM32, 0x1000), "a valid BAR3 refused");
    cr_assert_not(pci_bar_add(f, 2, PCI_BAR_MEM64, 0x1000),
                  "64-bit BAR2 whose upper half (BAR3) is taken accepted");
    for (unsigned n = 0; n < PCI_BARS; n++)
        for (unsigned m = n + 1; m < PCI_BARS; m++)
            if (f->bar[n].kind != PCI_BAR_NONE && f->bar[m].kind != PCI_BAR_NONE)
                cr_assert_geq(f->bar[m].base, f->bar[n].base + f->bar[n].size,
                              "BARs %u and %u placed overlapping", n, m);
}

Test(pci, msix_add_refuses_tables_that_do_not_fit)
{
    struct pci_func *f = add_dev("msixlim");
    cr_assert(pci_bar_add(f, 0, PCI_BAR_MEM32, 0x1000));
    cr_assert(pci_bar_add(f, 1, PCI_BAR_IOPORT, 64));
    cr_assert_not(pci_msix_add(f, 8, 0, 0xFC0, 0, 0x0), "table running past the BAR accepted");
    cr_assert_not(pci_msix_add(f, 8, 0, 0x2000, 0, 0x0), "table offset past the BAR accepted");
    cr_assert_not(pci_msix_add(f, 8, 0, 0x0, 0, 0x1000), "PBA past the BAR accepted");
    cr_assert_not(pci_msix_add(f, 8, 0, 0x0, 0, 0x40), "PBA overlapping the table accepted");
    cr_assert_not(pci_msix_add(f, 8, 0, 0x4, 0, 0x800), "misaligned table offset accepted");
    cr_assert_not(pci_msix_add(f, 8, 1, 0x0, 0, 0x800), "table in an I/O BAR accepted");
    cr_assert_not(pci_msix_add(f, 8, 2, 0x0, 0, 0x800), "table in an unimplemented BAR accepted");
    cr_assert_not(pci_msix_add(f, 0, 0, 0x0, 0, 0x800), "zero-entry MSI-X accepted");
    cr_assert_eq(f->msix.cap, 0, "a refused pci_msix_add left a capability behind");
    cr_assert_eq(pci_cfg_read(f, PCI_CAP_PTR, 1), 0, "a refused pci_msix_add linked a capability");
    cr_assert(pci_msix_add(f, 8, 0, 0xF80, 0, 0x800), "a table ending exactly at the BAR refused");
    cr_assert_not(pci_msix_add(f, 8, 0, 0x0, 0, 0x800), "a second MSI-X capability accepted");
}

Test(pci, func_add_fails_when_all_slots_are_taken)
{
    struct pci_func *fs[PCI_SLOTS_MAX - 1];
    for (unsigned i = 0; i < PCI_SLOTS_MAX - 1; i++) {
        fs[i] = pci_func_add(&bus, "dev", 0x1AF4, (uint16_t)(0x1000 + i), 0x020000, MOAT_NO_GSI,
                             &dev_ops, &dv);
        cr_assert_not_null(fs[i], "device %u of %u refused", i + 1, PCI_SLOTS_MAX - 1);
        cr_assert_eq(fs[i]->slot, i + 1, "device %u placed in slot %u", i + 1, fs[i]->slot);
    }
    cr_assert_null(pci_func_add(&bus, "extra", 0x1AF4, 0x2000, 0x020000, MOAT_NO_GSI, &dev_ops,
                                &dv), "an eighth device was added to a full bus");
    cr_assert_eq(ecam_rd(0, 7, 0, PCI_DEVICE_ID, 2), 0x1006, "slot 7 not visible through ECAM");
    cr_assert_eq(bus.slot[0], &bus.host_bridge, "host bridge displaced");
}

Test(pci, bus_fini_quiesces_then_destroys_every_model)
{
    (void)add_dev("a");
    (void)add_dev("b");
    pci_bus_quiesce(&bus);
    cr_assert_eq(dv.quiesce_calls, 2, "quiesce reached %d models, want 2", dv.quiesce_calls);
    cr_assert_eq(dv.destroy_calls, 0, "quiesce destroyed a model");
    pci_bus_fini(&bus);
    bus_live = false;
    cr_assert_eq(dv.quiesce_calls, 4, "fini did not quiesce every model first");
    cr_assert_eq(dv.destroy_calls, 2, "fini destroyed %d models, want 2", dv.destroy_calls);
    for (unsigned s = 1; s < PCI_SLOTS_MAX; s++)
        cr_assert_null(bus.slot[s], "slot %u not cleared by fini", s);
}

Test(pci, attach_registers_ecam_mmio_and_io_windows)
{
    struct exit_bus mmio, pio;
    cr_assert(bus_init(&mmio, 4));
    cr_assert(bus_init(&pio, 4));
    struct pci_func *f = add_bar_dev();
    set_command(f, PCI_CMD_MEM);
    cr_assert(pci_bus_attach(&bus, &mmio, &pio), "attach refused");
    struct bus_access a = { .addr = MOAT_GPA_ECAM + pci_ecam_offset(0, f->slot, 0, 0), .size = 2 };
    cr_assert_eq(bus_dispatch(&mmio, &a), BUS_OK, "ECAM not registered on the MMIO bus");
    cr_assert_eq(a.value, 0x1AF4, "vendor through the exit bus reads %#lx",
                 (unsigned long)a.value);
    a = (struct bus_access){ .addr = f->bar[2].base + 8, .size = 4 };
    cr_assert_eq(bus_dispatch(&mmio, &a), BUS_OK, "BAR window not registered on the MMIO bus");
    cr_assert_eq(dv.offset, 8, "offset through the exit bus is %#lx", (unsigned long)dv.offset);
    cr_assert(bus_find(&pio, PCI_IO_WINDOW_BASE, 1) != NULL, "I/O window not registered");
    bus_free(&mmio);
    bus_free(&pio);
}

Test(pci, testdev_refuses_register_accesses_of_the_wrong_width)
{
    char e[128];
    cr_assert(testdev_create(&bus, "td", GSI, "", e, sizeof e), "%s", e);
    struct pci_func *f = bus.slot[1];
    cr_assert_not_null(f);
    pci_cfg_write(f, PCI_COMMAND, 2, PCI_CMD_MEM | PCI_CMD_IO);
    uint64_t regs = f->bar[0].base, io = f->bar[4].base;
    cr_assert_eq(mem_rd(regs + TD_REG_ID, 4), TESTDEV_ID_VALUE, "ID reads wrong");
    cr_assert_eq(fk.refused_calls, 0);
    uint64_t v = 0;
    cr_assert_eq(mem_access(regs + TD_REG_ID, 2, false, &v), BUS_OK);
    cr_assert_eq(v, 0, "a refused 2-byte read returned 0x%llx", (unsigned long long)v);
    cr_assert_eq(fk.refused_calls, 1, "2-byte register read not refused");
    mem_wr(regs + TD_REG_SCRATCH + 2, 2, 0xFFFF);
    cr_assert_eq(fk.refused_calls, 2, "misaligned register write not refused");
    cr_assert_eq(mem_rd(regs + TD_REG_SCRATCH, 4), 0, "refused write changed SCRATCH");
    v = 0;
    cr_assert_eq(io_access(io + TD_IO_ID, 1, false, &v), BUS_OK);
    cr_assert_eq(fk.refused_calls, 3, "1-byte port read not refused");
}

Test(pci, bus_reset_returns_every_function_to_power_on_state)
{
    struct pci_func *f = add_msix_dev();
    uint64_t fw = f->bar[0].base;
    msix_ctrl(f, PCI_MSIX_CTRL_ENABLE);
    program(f, 2, 0xFEE00000u, 0x42);
    mem_wr(entry(f, 2, PCI_MSIX_ENTRY_CTRL), 4, 0);
    mem_wr(entry(f, 3, PCI_MSIX_ENTRY_CTRL), 4, PCI_MSIX_ENTRY_MASKED);
    cr_assert(pci_msix_notify(f, 3), "notify of a masked entry must pend");
    set_command(f, PCI_CMD_MEM | PCI_CMD_MASTER);
    cfg_wr_ok(f, PCI_BAR_REG(0), 4, (uint32_t)(fw + 0x100000));
    cr_assert_neq(f->bar[0].base, fw, "the BAR did not move before the reset");

    pci_bus_reset(&bus);
    cr_assert_eq(dv.reset_calls, 1, "the model's reset ran %d times, want 1", dv.reset_calls);
    cr_assert_eq(pci_command(f), 0, "command register %#x after reset, want 0", pci_command(f));
    cr_assert_not(pci_msix_enabled(f), "MSI-X still enabled after reset");
    cr_assert_not(pci_msix_pending(f, 3), "a pending bit survived the reset");
    for (unsigned n = 0; n < MSIX_N; n++)
        cr_assert_eq(f->msix.table[n * 4 + 3], PCI_MSIX_ENTRY_MASKED,
                     "entry %u not masked after reset", n);
    cr_assert_eq(f->msix.table[2 * 4 + 2], 0, "entry 2's data survived the reset");
    cr_assert_eq(f->bar[0].base, fw, "BAR0 at %#lx after reset, want firmware's %#lx",
                 (unsigned long)f->bar[0].base, (unsigned long)fw);
    cr_assert_eq(pci_cfg_read(f, PCI_BAR_REG(0), 4) & ~0xFu, (uint32_t)fw,
                 "BAR0 register does not show the firmware address after reset");
    cr_assert_eq(fk.msi_calls, 0, "the reset delivered an interrupt");
}

Test(pci, ioeventfd_goes_to_the_bars_current_address)
{
    struct pci_func *f = add_bar_dev();
    cr_assert(pci_ioeventfd(f, 0, 0x1000, 4, 7, true), "ioeventfd on BAR0 refused");
    cr_assert_eq(fk.ioeventfd_calls, 1);
    cr_assert_eq(fk.ioeventfd_gpa, f->bar[0].base + 0x1000, "ioeventfd at %#lx, want BAR0+0x1000",
                 (unsigned long)fk.ioeventfd_gpa);
    cr_assert(fk.ioeventfd_assign && fk.ioeventfd_fd == 7 && fk.ioeventfd_len == 4,
              "ioeventfd arguments not passed through");
    cr_assert_not(fk.ioeventfd_pio, "a memory BAR's ioeventfd was flagged as an I/O port");
    cr_assert_not(pci_ioeventfd(f, 0, 0x4000, 4, 7, true), "an ioeventfd past the BAR was accepted");
    cr_assert_not(pci_ioeventfd(f, 1, 0, 4, 7, true), "an ioeventfd on an unimplemented BAR was accepted");
    cr_assert_eq(fk.ioeventfd_calls, 1, "refused ioeventfds reached the platform");
    cr_assert(pci_ioeventfd(f, 4, 0x10, 2, 7, true), "an ioeventfd on the I/O BAR was refused");
    cr_assert(fk.ioeventfd_pio && fk.ioeventfd_gpa == f->bar[4].base + 0x10 && fk.ioeventfd_len == 2,
              "the I/O BAR's ioeventfd went to %#lx (pio %d), want port %#lx",
              (unsigned long)fk.ioeventfd_gpa, fk.ioeventfd_pio, (unsigned long)(f->bar[4].base + 0x10));
    uint64_t old = f->bar[0].base;
    cr_assert(pci_ioeventfd_move(f, 0, old - 0x10000, 0x1000, 4, 7), "moving an ioeventfd failed");
    cr_assert_eq(fk.ioeventfd_calls, 4, "a move must detach at the old address and attach at the new");
    cr_assert(fk.ioeventfd_assign && fk.ioeventfd_gpa == old + 0x1000,
              "the moved ioeventfd is not attached at the BAR's current address");
}

Test(pci, msix_notify_is_safe_from_a_worker_thread)
{
    struct pci_func *f = add_msix_dev();
    msix_ctrl(f, PCI_MSIX_CTRL_ENABLE);
    program(f, 0, 0xFEE00000u, 0x40);
    mem_wr(entry(f, 0, PCI_MSIX_ENTRY_CTRL), 4, PCI_MSIX_ENTRY_MASKED);
    pthread_t t;
    struct pci_func *arg = f;
    cr_assert_eq(pthread_create(&t, NULL, notify_many, arg), 0);
    for (int i = 0; i < 2000; i++)      /* vCPU side: mask and unmask meanwhile */
        mem_wr(entry(f, 0, PCI_MSIX_ENTRY_CTRL), 4, (i & 1) ? 0 : PCI_MSIX_ENTRY_MASKED);
    pthread_join(t, NULL);
    mem_wr(entry(f, 0, PCI_MSIX_ENTRY_CTRL), 4, 0);
    cr_assert_gt(fk.msi_calls, 0, "no interrupt delivered");
    cr_assert_not(pci_msix_pending(f, 0), "an interrupt stayed pending after the final unmask");
}
