/* Driver API: assigned PCI functions, configuration space, BARs (contract
 * in dd.h). Ring 3. Configuration space and registers are reached through
 * the platform's dd_hw_* (dd_internal.h); BARs come from boot info, where
 * the platform placed them, and the capability list is read once per
 * function: every configuration access is an exit (~50 us each on the PVM
 * hosts measured) or, bare, a system call. */
#include "dd.h"
#include "dd_internal.h"
#include "gk/kstring.h"
#include "gk/platform.h"
#include "gk/sys.h"
#include "moat/pci_regs.h"

struct dd_bar {
    struct dd_dev *dev;
    uint64_t base, size;
    uint8_t index;
    bool io, present;
};

#define CAPS_MAX 48u            /* dword capabilities that fit 256 bytes */

struct dd_dev {
    unsigned index;             /* in boot info's device table */
    const struct moat_device_info *info;
    struct dd_bar bar[PCI_BARS];
    bool bars_sized;
    /* The capability list, read once (it is read-only in every function):
     * each configuration read is an exit (~50 us on PVM hosts). */
    bool caps_read;
    uint8_t n_caps;
    uint8_t cap_off[CAPS_MAX], cap_id[CAPS_MAX];
};

static struct dd_dev devs[MOAT_DEVICES_MAX];
static unsigned n_devs;
static bool devs_found;

static void find_devices(void)
{
    if (devs_found)
        return;
    devs_found = true;
    const struct moat_boot_info *bi = platform_boot_info();
    if (!dd_hw_present())
        return;
    for (uint32_t i = 0; i < bi->n_devices && i < MOAT_DEVICES_MAX; i++) {
        const struct moat_device_info *di = &bi->device[i];
        struct dd_dev *d = &devs[n_devs];
        d->index = i;
        d->info = di;
        uint16_t vendor = (uint16_t)dd_hw_cfg_read(i, PCI_VENDOR_ID, 2);
        if (vendor != di->vendor)
            dd_panic("device %s at %02x:%02x.%x: config space says vendor %04x, the platform "
                     "said %04x", di->name, di->bus, di->dev, di->fn, vendor, di->vendor);
        n_devs++;
    }
}

unsigned dd_dev_count(void)
{
    find_devices();
    return n_devs;
}

struct dd_dev *dd_dev_get(unsigned i)
{
    find_devices();
    return i < n_devs ? &devs[i] : NULL;
}

struct dd_dev *dd_dev_find(uint16_t vendor, uint16_t device, unsigned nth)
{
    find_devices();
    for (unsigned i = 0; i < n_devs; i++)
        if (devs[i].info->vendor == vendor && devs[i].info->device == device && nth-- == 0)
            return &devs[i];
    return NULL;
}

static void check_dev(const struct dd_dev *d)
{
    if (!d || d < devs || d >= devs + n_devs)
        dd_panic("driver bug: %p is not an assigned device handle", (const void *)d);
}

static void check_cfg(const struct dd_dev *d, uint32_t off, uint32_t width)
{
    check_dev(d);
    if (off >= PCI_CFG_SIZE || off % width)
        dd_panic("driver bug: config access of %u bytes at 0x%x", width, off);
}

uint8_t dd_cfg_read8(const struct dd_dev *d, uint32_t off)
{
    check_cfg(d, off, 1);
    return (uint8_t)dd_hw_cfg_read(d->index, off, 1);
}
uint16_t dd_cfg_read16(const struct dd_dev *d, uint32_t off)
{
    check_cfg(d, off, 2);
    return (uint16_t)dd_hw_cfg_read(d->index, off, 2);
}
uint32_t dd_cfg_read32(const struct dd_dev *d, uint32_t off)
{
    check_cfg(d, off, 4);
    return dd_hw_cfg_read(d->index, off, 4);
}
void dd_cfg_write8(struct dd_dev *d, uint32_t off, uint8_t v)
{
    check_cfg(d, off, 1);
    dd_hw_cfg_write(d->index, off, 1, v);
}
void dd_cfg_write16(struct dd_dev *d, uint32_t off, uint16_t v)
{
    check_cfg(d, off, 2);
    dd_hw_cfg_write(d->index, off, 2, v);
}
void dd_cfg_write32(struct dd_dev *d, uint32_t off, uint32_t v)
{
    check_cfg(d, off, 4);
    dd_hw_cfg_write(d->index, off, 4, v);
}

void dd_dev_info(const struct dd_dev *d, struct dd_dev_info *out)
{
    check_dev(d);
    memset(out, 0, sizeof *out);
    out->vendor = dd_cfg_read16(d, PCI_VENDOR_ID);
    out->device = dd_cfg_read16(d, PCI_DEVICE_ID);
    out->class_code = dd_cfg_read32(d, PCI_REVISION_ID) >> 8;
    out->revision = dd_cfg_read8(d, PCI_REVISION_ID);
    out->bus = d->info->bus;
    out->dev = d->info->dev;
    out->fn = d->info->fn;
    memcpy(out->name, d->info->name, sizeof out->name);
    out->name[sizeof out->name - 1] = '\0';
}

static void read_caps(struct dd_dev *d)
{
    d->caps_read = true;
    if (!(dd_cfg_read16(d, PCI_STATUS) & PCI_STATUS_CAP_LIST))
        return;
    uint32_t p = dd_cfg_read8(d, PCI_CAP_PTR);
    /* A list longer than CAPS_MAX entries loops: it ends there. */
    while (p >= PCI_CAP_START && d->n_caps < CAPS_MAX) {
        p &= ~3u;
        d->cap_off[d->n_caps] = (uint8_t)p;
        d->cap_id[d->n_caps++] = dd_cfg_read8(d, p);
        p = dd_cfg_read8(d, p + 1);
    }
}

uint32_t dd_cap_find(const struct dd_dev *cd, uint8_t id, uint32_t after)
{
    check_dev(cd);
    struct dd_dev *d = &devs[cd - devs];     /* the cache is ours to fill */
    if (!d->caps_read)
        read_caps(d);
    unsigned i = 0;
    if (after) {
        while (i < d->n_caps && d->cap_off[i] != after)
            i++;
        i++;                                    /* the one after it; none if unknown */
    }
    for (; i < d->n_caps; i++)
        if (d->cap_id[i] == id)
            return d->cap_off[i];
    return 0;
}

void dd_cmd_set(struct dd_dev *d, uint16_t bits)
{
    dd_cfg_write16(d, PCI_COMMAND, (uint16_t)(dd_cfg_read16(d, PCI_COMMAND) | bits));
}

void dd_cmd_clear(struct dd_dev *d, uint16_t bits)
{
    dd_cfg_write16(d, PCI_COMMAND, (uint16_t)(dd_cfg_read16(d, PCI_COMMAND) & ~bits));
}

/* The BARs where the platform placed them (boot info: the loader sized
 * and programmed them, so this takes no configuration cycle), then decode
 * on for the kinds of BAR the function has. A BAR description the platform
 * got wrong is a panic, not a guess. */
static void size_bars(struct dd_dev *d)
{
    uint16_t cmd = dd_cfg_read16(d, PCI_COMMAND);
    for (unsigned n = 0; n < PCI_BARS; n++) {
        const struct moat_bar_info *bi = &d->info->bar[n];
        if (bi->kind == MOAT_BAR_NONE)
            continue;
        struct dd_bar *b = &d->bar[n];
        if (bi->kind > MOAT_BAR_IO || !bi->size || (bi->size & (bi->size - 1)) ||
            bi->base % bi->size || (bi->kind == MOAT_BAR_IO && bi->base + bi->size > 0x10000u))
            dd_panic("device %s: the platform describes BAR %u as kind %u, 0x%lx bytes at "
                     "0x%lx", d->info->name, n, bi->kind, bi->size, bi->base);
        *b = (struct dd_bar){ .dev = d, .base = bi->base, .size = bi->size, .index = (uint8_t)n,
                              .io = bi->kind == MOAT_BAR_IO, .present = true };
        cmd |= b->io ? PCI_CMD_IO : PCI_CMD_MEM;
    }
    dd_cfg_write16(d, PCI_COMMAND, cmd);
    d->bars_sized = true;
}

struct dd_bar *dd_bar(struct dd_dev *d, unsigned n)
{
    check_dev(d);
    if (n >= PCI_BARS)
        return NULL;
    if (!d->bars_sized)
        size_bars(d);
    return d->bar[n].present ? &d->bar[n] : NULL;
}

uint64_t dd_bar_size(const struct dd_bar *b) { return b->size; }
bool dd_bar_is_io(const struct dd_bar *b) { return b->io; }

static uint64_t mmio_at(const struct dd_bar *b, uint64_t off, unsigned width)
{
    if (!b || b->io || off >= b->size || width > b->size - off || off % width)
        dd_panic("driver bug: MMIO access of %u bytes at 0x%lx outside BAR %u (0x%lx bytes)",
                 width, off, b ? b->index : 0u, b ? b->size : 0ul);
    return b->base + off;
}

uint8_t dd_mmio_read8(const struct dd_bar *b, uint64_t off)
{ return (uint8_t)dd_hw_mmio_read(mmio_at(b, off, 1), 1); }
uint16_t dd_mmio_read16(const struct dd_bar *b, uint64_t off)
{ return (uint16_t)dd_hw_mmio_read(mmio_at(b, off, 2), 2); }
uint32_t dd_mmio_read32(const struct dd_bar *b, uint64_t off)
{ return (uint32_t)dd_hw_mmio_read(mmio_at(b, off, 4), 4); }
uint64_t dd_mmio_read64(const struct dd_bar *b, uint64_t off)
{ return dd_hw_mmio_read(mmio_at(b, off, 8), 8); }
void dd_mmio_write8(const struct dd_bar *b, uint64_t off, uint8_t v)
{ dd_hw_mmio_write(mmio_at(b, off, 1), 1, v); }
void dd_mmio_write16(const struct dd_bar *b, uint64_t off, uint16_t v)
{ dd_hw_mmio_write(mmio_at(b, off, 2), 2, v); }
void dd_mmio_write32(const struct dd_bar *b, uint64_t off, uint32_t v)
{ dd_hw_mmio_write(mmio_at(b, off, 4), 4, v); }
void dd_mmio_write64(const struct dd_bar *b, uint64_t off, uint64_t v)
{ dd_hw_mmio_write(mmio_at(b, off, 8), 8, v); }

static uint32_t pio(const struct dd_bar *b, uint32_t off, uint32_t width, bool write, uint32_t v)
{
    if (!b || !b->io || off >= b->size || width > b->size - off || off % width)
        dd_panic("driver bug: port access of %u bytes at 0x%x outside I/O BAR %u (%lu ports)",
                 width, off, b ? b->index : 0u, b ? b->size : 0ul);
    int64_t r = sys_pio((uint32_t)b->base + off, width | (write ? SYS_PIO_WRITE : 0u), v);
    if (r < 0)
        dd_panic("port 0x%lx refused by the kernel (%ld)", b->base + off, r);
    return (uint32_t)r;
}

uint8_t dd_io_read8(const struct dd_bar *b, uint32_t off) { return (uint8_t)pio(b, off, 1, false, 0); }
uint16_t dd_io_read16(const struct dd_bar *b, uint32_t off) { return (uint16_t)pio(b, off, 2, false, 0); }
uint32_t dd_io_read32(const struct dd_bar *b, uint32_t off) { return pio(b, off, 4, false, 0); }
void dd_io_write8(const struct dd_bar *b, uint32_t off, uint8_t v) { pio(b, off, 1, true, v); }
void dd_io_write16(const struct dd_bar *b, uint32_t off, uint16_t v) { pio(b, off, 2, true, v); }
void dd_io_write32(const struct dd_bar *b, uint32_t off, uint32_t v) { pio(b, off, 4, true, v); }

uint32_t dd_dev_intx_gsi(const struct dd_dev *d)
{
    check_dev(d);
    return d->info->intx_gsi;
}
