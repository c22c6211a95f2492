/* PCI host bridge, configuration space, BAR decode and MSI-X (contract in
 * pci.h). Over 600 lines: config space, BAR decode and MSI-X share the
 * function's state and one lock; apart they would need it exported. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "moat/layout.h"
#include "pci.h"
#include "byteorder.h"

/* ---- small helpers -------------------------------------------------------- */


static bool is_mem(enum pci_bar_kind k) { return k == PCI_BAR_MEM32 || k == PCI_BAR_MEM64; }

void pci_refuse(struct pci_func *f, const char *what, uint64_t addr, uint64_t value)
{
    struct pci_bus *b = f->bus;
    if (b->plat.refused)
        b->plat.refused(b->plat.ctx, f->name, what, addr, value);
}

void pci_guest_error(struct pci_func *f, enum pci_guest_error kind, const char *what,
                     uint64_t a, uint64_t b)
{
    struct pci_bus *bus = f->bus;
    if ((unsigned)kind >= PCI_GERR_KINDS)
        kind = PCI_GERR_COMMAND;
    __atomic_fetch_add(&bus->stats.guest_errors[kind], 1, __ATOMIC_RELAXED);
    if (bus->plat.guest_error)
        bus->plat.guest_error(bus->plat.ctx, f->name, kind, what, a, b);
}

uint16_t pci_command(const struct pci_func *f)
{
    return __atomic_load_n(&f->command, __ATOMIC_ACQUIRE);
}

/* Publish the command register to other threads (irq_lock held). */
static void command_sync(struct pci_func *f)
{
    __atomic_store_n(&f->command, get_le16(f->cfg + PCI_COMMAND), __ATOMIC_RELEASE);
}

bool pci_msix_enabled(const struct pci_func *f)
{
    return f->msix.cap && (get_le16(f->cfg + f->msix.cap + PCI_MSIX_CTRL) & PCI_MSIX_CTRL_ENABLE);
}

static bool msix_func_masked(const struct pci_func *f)
{
    return get_le16(f->cfg + f->msix.cap + PCI_MSIX_CTRL) & PCI_MSIX_CTRL_MASKALL;
}

static void bar_sync(struct pci_func *f);

/* ---- bus ------------------------------------------------------------------ */

static void func_init(struct pci_func *f, struct pci_bus *b, uint8_t slot, const char *name,
                      uint16_t vendor, uint16_t device, uint32_t class_code, uint32_t gsi)
{
    memset(f, 0, sizeof *f);
    f->bus = b;
    f->slot = slot;
    snprintf(f->name, sizeof f->name, "%s", name);
    f->intx_gsi = gsi;
    put_le16(f->cfg + PCI_VENDOR_ID, vendor);
    put_le16(f->cfg + PCI_DEVICE_ID, device);
    f->cfg[PCI_REVISION_ID] = 1;
    f->cfg[PCI_PROG_IF] = (uint8_t)class_code;
    f->cfg[PCI_SUBCLASS] = (uint8_t)(class_code >> 8);
    f->cfg[PCI_CLASS] = (uint8_t)(class_code >> 16);
    put_le16(f->cfg + PCI_SUBSYS_VENDOR, vendor);
    put_le16(f->cfg + PCI_SUBSYS_ID, device);
    f->cfg[PCI_INT_LINE] = gsi == MOAT_NO_GSI ? 0xFF : (uint8_t)gsi;
    f->cfg[PCI_INT_PIN] = gsi == MOAT_NO_GSI ? 0 : 1;
    put_le16(f->wmask + PCI_COMMAND, PCI_CMD_IO | PCI_CMD_MEM | PCI_CMD_MASTER | PCI_CMD_PARITY |
                                  PCI_CMD_SERR | PCI_CMD_INTX_DISABLE);
    put_le16(f->w1c + PCI_STATUS, PCI_STATUS_ERRORS);
    f->wmask[PCI_INT_LINE] = 0xFF;
    f->cap_free = PCI_CAP_START;
}

void pci_bus_set_worker_cpus(struct pci_bus *b, const cpu_set_t *cpus)
{
    b->worker_cpus = *cpus;
    b->worker_cpus_set = true;
}

bool pci_worker_start(struct pci_func *f, pthread_t *t, void *(*fn)(void *), void *arg,
                      const char *prefix)
{
    if (pthread_create(t, NULL, fn, arg) != 0)
        return false;
    char tname[16];             /* the kernel keeps 15 characters */
    snprintf(tname, sizeof tname, "%s-%.10s", prefix, f->name);
    pthread_setname_np(*t, tname);
    /* Placement is a speed hint: a refusal (a CPU gone offline since) is
     * not an error, the worker then runs anywhere. */
    if (f->bus && f->bus->worker_cpus_set)
        pthread_setaffinity_np(*t, sizeof f->bus->worker_cpus, &f->bus->worker_cpus);
    return true;
}

void pci_bus_init(struct pci_bus *b, const char *domain_name, uint32_t domain_id,
                  struct broker *broker, const struct pci_platform_ops *plat)
{
    memset(b, 0, sizeof *b);
    snprintf(b->domain_name, sizeof b->domain_name, "%s", domain_name);
    b->domain_id = domain_id;
    b->broker = broker;
    if (plat)
        b->plat = *plat;
    b->ecam_base = MOAT_GPA_ECAM;
    b->mmio_base = b->next_mmio = MOAT_GPA_MMIO_HOLE;
    b->mmio_end = MOAT_GPA_ECAM;
    b->next_io = PCI_IO_WINDOW_BASE;
    func_init(&b->host_bridge, b, 0, "host-bridge", PCI_VENDOR_MOAT, PCI_DEVICE_HOST_BRIDGE,
              0x060000, MOAT_NO_GSI);
    b->slot[0] = &b->host_bridge;
    pthread_mutex_init(&b->irq_lock, NULL);
}

void pci_bus_quiesce(struct pci_bus *b)
{
    for (unsigned s = 1; s < PCI_SLOTS_MAX; s++) {
        struct pci_func *f = b->slot[s];
        if (f && f->ops && f->ops->quiesce)
            f->ops->quiesce(f->dev);
    }
}

void pci_bus_fini(struct pci_bus *b)
{
    pci_bus_quiesce(b);
    for (unsigned s = 1; s < PCI_SLOTS_MAX; s++) {
        struct pci_func *f = b->slot[s];
        if (!f)
            continue;
        if (f->ops && f->ops->destroy)
            f->ops->destroy(f->dev);
        free(f->msix.table);
        free(f->msix.pending);
        free(f);
        b->slot[s] = NULL;
    }
    pthread_mutex_destroy(&b->irq_lock);
}

void pci_bus_reset(struct pci_bus *b)
{
    for (unsigned s = 1; s < PCI_SLOTS_MAX; s++) {
        struct pci_func *f = b->slot[s];
        if (!f)
            continue;
        if (f->ops && f->ops->reset)
            f->ops->reset(f->dev);
        pthread_mutex_lock(&b->irq_lock);
        put_le16(f->cfg + PCI_COMMAND, 0);
        command_sync(f);
        put_le16(f->cfg + PCI_STATUS, get_le16(f->cfg + PCI_STATUS) & PCI_STATUS_CAP_LIST);
        f->cfg[PCI_INT_LINE] = f->intx_gsi == MOAT_NO_GSI ? 0xFF : (uint8_t)f->intx_gsi;
        if (f->msix.cap) {
            put_le16(f->cfg + f->msix.cap + PCI_MSIX_CTRL, (uint16_t)(f->msix.entries - 1));
            for (unsigned i = 0; i < f->msix.entries; i++) {
                memset(&f->msix.table[i * 4], 0, 12);
                f->msix.table[i * 4 + 3] = PCI_MSIX_ENTRY_MASKED;
            }
            memset(f->msix.pending, 0, ((f->msix.entries + 63u) / 64u) * sizeof *f->msix.pending);
        }
        f->intx_level = false;
        if (f->intx_out && b->plat.intx)
            b->plat.intx(b->plat.ctx, f->intx_gsi, false);
        f->intx_out = false;
        for (unsigned n = 0; n < PCI_BARS; n++) {
            f->bar[n].sizing = f->bar[n].sizing_hi = false;
            f->bar[n].base = f->bar[n].fw_base;
        }
        bar_sync(f);
        pthread_mutex_unlock(&b->irq_lock);
    }
}

bool pci_ioeventfd(struct pci_func *f, unsigned bar, uint64_t off, uint32_t len, int fd,
                   bool assign)
{
    struct pci_bus *b = f->bus;
    if (bar >= PCI_BARS || f->bar[bar].kind == PCI_BAR_NONE || off >= f->bar[bar].size ||
        !b->plat.ioeventfd)
        return false;
    return b->plat.ioeventfd(b->plat.ctx, f->bar[bar].kind == PCI_BAR_IOPORT,
                             f->bar[bar].base + off, len, fd, assign);
}

bool pci_ioeventfd_move(struct pci_func *f, unsigned bar, uint64_t old_base, uint64_t off,
                        uint32_t len, int fd)
{
    struct pci_bus *b = f->bus;
    if (bar >= PCI_BARS || f->bar[bar].kind == PCI_BAR_NONE || !b->plat.ioeventfd)
        return false;
    b->plat.ioeventfd(b->plat.ctx, f->bar[bar].kind == PCI_BAR_IOPORT, old_base + off, len, fd,
                      false);
    return pci_ioeventfd(f, bar, off, len, fd, true);
}

bool pci_bus_attach(struct pci_bus *b, struct exit_bus *mmio, struct exit_bus *pio)
{
    return bus_register(mmio, b->ecam_base, MOAT_ECAM_SIZE, pci_ecam_access, b, "pci-ecam") &&
           bus_register(mmio, b->mmio_base, b->mmio_end - b->mmio_base, pci_mmio_access, b,
                        "pci-mmio") &&
           bus_register(pio, PCI_IO_WINDOW_BASE, PCI_IO_WINDOW_END - PCI_IO_WINDOW_BASE,
                        pci_pio_access, b, "pci-io");
}

struct pci_func *pci_func_add(struct pci_bus *b, const char *name, uint16_t vendor,
                              uint16_t device, uint32_t class_code, uint32_t intx_gsi,
                              const struct pci_device_ops *ops, void *dev)
{
    for (uint8_t s = 1; s < PCI_SLOTS_MAX; s++) {
        if (b->slot[s])
            continue;
        struct pci_func *f = malloc(sizeof *f);
        if (!f)
            return NULL;
        func_init(f, b, s, name, vendor, device, class_code, intx_gsi);
        f->ops = ops;
        f->dev = dev;
        b->slot[s] = f;
        return f;
    }
    return NULL;
}

/* ---- BARs ----------------------------------------------------------------- */

/* Re-derive the BAR registers in cfg[] from the BAR state. */
static void bar_sync(struct pci_func *f)
{
    for (unsigned n = 0; n < PCI_BARS; n++) {
        const struct pci_bar *bar = &f->bar[n];
        uint32_t v = 0;
        switch (bar->kind) {
        case PCI_BAR_NONE:
            if (n > 0 && f->bar[n - 1].kind == PCI_BAR_MEM64) {    /* upper dword */
                const struct pci_bar *lo = &f->bar[n - 1];
                v = lo->sizing_hi ? (uint32_t)(~(lo->size - 1) >> 32)
                                  : (uint32_t)(lo->base >> 32);
            }
            break;
        case PCI_BAR_MEM32:
        case PCI_BAR_MEM64:
            v = (uint32_t)((bar->sizing ? ~(bar->size - 1) : bar->base) & PCI_BAR_MEM_MASK);
            if (bar->kind == PCI_BAR_MEM64)
                v |= PCI_BAR_MEM_64;
            break;
        case PCI_BAR_IOPORT:
            v = (uint32_t)((bar->sizing ? ~(bar->size - 1) : bar->base) & PCI_BAR_IO_MASK) |
                PCI_BAR_IO;
            break;
        }
        put_le32(f->cfg + PCI_BAR_REG(n), v);
    }
}

static bool overlaps(uint64_t a, uint64_t al, uint64_t c, uint64_t cl)
{
    return a < c + cl && c < a + al;
}

/* Could bar of f decode [base, base+size)? */
static bool bar_place_ok(const struct pci_func *f, unsigned n, uint64_t base)
{
    const struct pci_bus *b = f->bus;
    const struct pci_bar *bar = &f->bar[n];
    bool mem = is_mem(bar->kind);
    uint64_t lo = mem ? b->mmio_base : PCI_IO_WINDOW_BASE;
    uint64_t hi = mem ? b->mmio_end : PCI_IO_WINDOW_END;
    if (base % bar->size || base < lo || base > hi || bar->size > hi - base)
        return false;
    if (mem && overlaps(base, bar->size, b->ecam_base, MOAT_ECAM_SIZE))
        return false;
    for (unsigned s = 0; s < PCI_SLOTS_MAX; s++) {
        const struct pci_func *g = b->slot[s];
        for (unsigned m = 0; g && m < PCI_BARS; m++) {
            const struct pci_bar *o = &g->bar[m];
            if ((g == f && m == n) || o->kind == PCI_BAR_NONE || is_mem(o->kind) != mem)
                continue;
            if (overlaps(base, bar->size, o->base, o->size))
                return false;
        }
    }
    return true;
}

bool pci_bar_add(struct pci_func *f, unsigned n, enum pci_bar_kind kind, uint64_t size)
{
    bool mem = is_mem(kind);
    if (n >= PCI_BARS || kind == PCI_BAR_NONE || f->bar[n].kind != PCI_BAR_NONE ||
        (kind == PCI_BAR_MEM64 && (n + 1 >= PCI_BARS || f->bar[n + 1].kind != PCI_BAR_NONE)) ||
        (n > 0 && f->bar[n - 1].kind == PCI_BAR_MEM64) || size & (size - 1) ||
        size < (mem ? MOAT_PAGE_SIZE : 4) || size > (mem ? (256ull << 20) : 256))
        return false;
    struct pci_bus *b = f->bus;
    uint64_t *next = mem ? &b->next_mmio : &b->next_io;
    uint64_t base = (*next + size - 1) & ~(size - 1);
    f->bar[n] = (struct pci_bar){ .kind = kind, .size = size };
    if (!bar_place_ok(f, n, base)) {
        f->bar[n].kind = PCI_BAR_NONE;
        return false;
    }
    f->bar[n].base = f->bar[n].fw_base = base;
    *next = base + size;
    bar_sync(f);
    return true;
}

/* A 32-bit write to BAR register n. */
static bool bar_write(struct pci_func *f, unsigned n, uint32_t v)
{
    struct pci_bar *bar = &f->bar[n];
    bool upper = bar->kind == PCI_BAR_NONE && n > 0 && f->bar[n - 1].kind == PCI_BAR_MEM64;
    if (bar->kind == PCI_BAR_NONE && !upper) {
        /* Unimplemented BAR: hardwired to zero; sizing it reads back 0. */
        if (v == 0 || v == 0xFFFFFFFFu)
            return true;
        pci_refuse(f, "write to an unimplemented BAR", PCI_BAR_REG(n), v);
        return false;
    }
    if (upper)
        bar = &f->bar[n - 1];
    unsigned idx = upper ? n - 1 : n;
    uint64_t new_base;
    if (upper) {
        if (v == 0xFFFFFFFFu) {
            bar->sizing_hi = true;
            bar_sync(f);
            return true;
        }
        new_base = ((uint64_t)v << 32) | (bar->base & 0xFFFFFFFFull);
    } else {
        uint32_t mask = (uint32_t)(is_mem(bar->kind) ? PCI_BAR_MEM_MASK : PCI_BAR_IO_MASK);
        if ((v & mask) == mask) {
            bar->sizing = true;
            bar_sync(f);
            return true;
        }
        new_base = (bar->base & ~0xFFFFFFFFull) | (v & mask);
    }
    if (new_base != bar->base) {
        if (!bar_place_ok(f, idx, new_base)) {
            pci_refuse(f, "BAR address misaligned, outside the window or overlapping",
                    PCI_BAR_REG(n), v);
            return false;
        }
        uint64_t old = bar->base;
        bar->base = new_base;
        if (f->ops && f->ops->bar_moved)
            f->ops->bar_moved(f->dev, idx, old, new_base);
    }
    if (upper)
        bar->sizing_hi = false;
    else
        bar->sizing = false;
    bar_sync(f);
    return true;
}

void pci_func_describe(const struct pci_func *f, struct moat_device_info *out)
{
    memset(out, 0, sizeof *out);
    out->bus = 0;
    out->dev = f->slot;
    out->fn = 0;
    out->vendor = get_le16(f->cfg + PCI_VENDOR_ID);
    out->device = get_le16(f->cfg + PCI_DEVICE_ID);
    out->intx_gsi = f->intx_gsi;
    snprintf(out->name, sizeof out->name, "%s", f->name);
    for (unsigned n = 0; n < PCI_BARS; n++) {
        static const uint32_t kinds[] = {
            [PCI_BAR_NONE] = MOAT_BAR_NONE, [PCI_BAR_MEM32] = MOAT_BAR_MEM32,
            [PCI_BAR_MEM64] = MOAT_BAR_MEM64, [PCI_BAR_IOPORT] = MOAT_BAR_IO,
        };
        out->bar[n] = (struct moat_bar_info){
            .base = f->bar[n].base, .size = f->bar[n].size, .kind = kinds[f->bar[n].kind],
        };
    }
}

/* ---- capabilities and MSI-X ---------------------------------------------- */

uint16_t pci_cap_add(struct pci_func *f, uint8_t id, const void *body, uint8_t len)
{
    uint32_t off = (f->cap_free + 3u) & ~3u;
    uint32_t total = (2u + len + 3u) & ~3u;
    if (off + total > PCI_CFG_LEGACY_SIZE)
        return 0;
    f->cfg[off] = id;
    f->cfg[off + 1] = 0;
    if (len)
        memcpy(f->cfg + off + 2, body, len);
    if (f->cap_tail)
        f->cfg[f->cap_tail + 1] = (uint8_t)off;
    else
        f->cfg[PCI_CAP_PTR] = (uint8_t)off;
    put_le16(f->cfg + PCI_STATUS, get_le16(f->cfg + PCI_STATUS) | PCI_STATUS_CAP_LIST);
    f->cap_tail = (uint16_t)off;
    f->cap_free = (uint16_t)(off + total);
    return (uint16_t)off;
}

bool pci_msix_add(struct pci_func *f, uint16_t n, unsigned table_bar, uint32_t table_off,
                  unsigned pba_bar, uint32_t pba_off)
{
    if (f->msix.cap || n == 0 || n > PCI_MSIX_ENTRIES_MAX || table_bar >= PCI_BARS ||
        pba_bar >= PCI_BARS || !is_mem(f->bar[table_bar].kind) || !is_mem(f->bar[pba_bar].kind) ||
        table_off % 8 || pba_off % 8)
        return false;
    uint64_t tlen = (uint64_t)n * PCI_MSIX_ENTRY_SIZE, plen = ((n + 63u) / 64u) * 8u;
    if (table_off > f->bar[table_bar].size || tlen > f->bar[table_bar].size - table_off ||
        pba_off > f->bar[pba_bar].size || plen > f->bar[pba_bar].size - pba_off ||
        (table_bar == pba_bar && overlaps(table_off, tlen, pba_off, plen)))
        return false;
    uint32_t *table = calloc(n, PCI_MSIX_ENTRY_SIZE);
    uint64_t *pending = calloc((n + 63u) / 64u, sizeof *pending);
    uint8_t body[PCI_MSIX_CAP_LEN - 2];
    put_le16(body, (uint16_t)(n - 1));
    put_le32(body + 2, table_off | table_bar);
    put_le32(body + 6, pba_off | pba_bar);
    uint16_t cap = table && pending ? pci_cap_add(f, PCI_CAP_ID_MSIX, body, sizeof body) : 0;
    if (!cap) {
        free(table);
        free(pending);
        return false;
    }
    for (unsigned i = 0; i < n; i++)
        table[i * 4 + 3] = PCI_MSIX_ENTRY_MASKED;
    f->wmask[cap + PCI_MSIX_CTRL + 1] = (uint8_t)((PCI_MSIX_CTRL_ENABLE | PCI_MSIX_CTRL_MASKALL) >> 8);
    f->msix = (struct pci_msix){
        .cap = cap, .entries = n, .table_bar = (uint8_t)table_bar, .pba_bar = (uint8_t)pba_bar,
        .table_off = table_off, .pba_off = pba_off, .table = table, .pending = pending,
    };
    return true;
}

static bool entry_masked(const struct pci_func *f, uint16_t n)
{
    return f->msix.table[n * 4u + 3] & PCI_MSIX_ENTRY_MASKED;
}

/* Send entry n's message (entry and function unmasked, MSI-X enabled). */
static void msix_deliver(struct pci_func *f, uint16_t n)
{
    struct pci_bus *b = f->bus;
    const uint32_t *e = &f->msix.table[n * 4u];
    uint64_t addr = (uint64_t)e[1] << 32 | e[0];
    uint32_t data = e[2];
    /* Fixed delivery, physical destination, vector >= 16: anything else is
     * a message the interrupt remapping of a real IOMMU would block. */
    if ((addr & ~0xFF000ull) != PCI_MSI_ADDR_BASE || (data & ~PCI_MSI_DATA_VECTOR_MASK) ||
        (data & PCI_MSI_DATA_VECTOR_MASK) < 16) {
        PCI_COUNT(b, msi_bad_message);
        pci_refuse(f, "MSI-X message with an invalid address or data", addr, data);
        return;
    }
    PCI_COUNT(b, msi_sent);
    if (b->plat.msi)
        b->plat.msi(b->plat.ctx, addr, data);
}

static void msix_flush_pending(struct pci_func *f)
{
    if (!pci_msix_enabled(f) || msix_func_masked(f))
        return;
    for (uint16_t n = 0; n < f->msix.entries; n++) {
        uint64_t bit = 1ull << (n % 64);
        if ((f->msix.pending[n / 64] & bit) && !entry_masked(f, n)) {
            f->msix.pending[n / 64] &= ~bit;
            msix_deliver(f, n);
        }
    }
}

bool pci_msix_pending(const struct pci_func *f, uint16_t n)
{
    return f->msix.cap && n < f->msix.entries && (f->msix.pending[n / 64] >> (n % 64) & 1);
}

bool pci_msix_retract(struct pci_func *f, uint16_t n)
{
    if (!f->msix.cap || n >= f->msix.entries)
        return false;
    uint64_t bit = 1ull << (n % 64);
    pthread_mutex_lock(&f->bus->irq_lock);
    bool was = f->msix.pending[n / 64] & bit;
    f->msix.pending[n / 64] &= ~bit;
    pthread_mutex_unlock(&f->bus->irq_lock);
    return was;
}

bool pci_msix_notify(struct pci_func *f, uint16_t n)
{
    pthread_mutex_lock(&f->bus->irq_lock);
    bool ok = pci_msix_enabled(f);
    if (ok && n >= f->msix.entries) {   /* e.g. a vector number the driver chose */
        PCI_COUNT(f->bus, msi_bad_message);
        pci_refuse(f, "MSI-X entry beyond the table", n, f->msix.entries);
        ok = false;
    } else if (ok && (msix_func_masked(f) || entry_masked(f, n))) {
        f->msix.pending[n / 64] |= 1ull << (n % 64);
        PCI_COUNT(f->bus, msi_pended);
    } else if (ok) {
        msix_deliver(f, n);
    }
    pthread_mutex_unlock(&f->bus->irq_lock);
    return ok;
}

/* Table or PBA access at off inside the BAR; false if not MSI-X's. */
static bool msix_access(struct pci_func *f, unsigned bar, struct bus_access *a)
{
    struct pci_msix *m = &f->msix;
    if (!m->cap)
        return false;
    uint64_t tlen = (uint64_t)m->entries * PCI_MSIX_ENTRY_SIZE, plen = ((m->entries + 63u) / 64u) * 8u;
    bool in_table = bar == m->table_bar && a->offset >= m->table_off && a->offset - m->table_off < tlen;
    bool in_pba = bar == m->pba_bar && a->offset >= m->pba_off && a->offset - m->pba_off < plen;
    if (!in_table && !in_pba)
        return false;
    uint64_t off = a->offset - (in_table ? m->table_off : m->pba_off);
    if ((a->size != 4 && a->size != 8) || off % a->size) {
        PCI_COUNT(f->bus, msix_bad_access);
        pci_refuse(f, in_table ? "MSI-X table access not a naturally aligned dword or qword"
                            : "MSI-X PBA access not a naturally aligned dword or qword",
                a->addr, a->size);
        a->value = 0;
        return true;
    }
    if (in_pba) {
        if (a->is_write) {
            PCI_COUNT(f->bus, msix_bad_access);
            pci_refuse(f, "write to the read-only MSI-X PBA", a->addr, a->value);
        } else {
            uint64_t q = m->pending[off / 8];
            a->value = a->size == 8 ? q : (uint32_t)(q >> (off % 8 * 8));
        }
        return true;
    }
    uint32_t *dw = &m->table[off / 4];
    if (!a->is_write) {
        a->value = a->size == 8 ? ((uint64_t)dw[1] << 32 | dw[0]) : dw[0];
        return true;
    }
    for (uint32_t i = 0; i < a->size / 4; i++) {
        uint32_t v = (uint32_t)(a->value >> (32 * i));
        /* Only the mask bit of vector control is writable. */
        dw[i] = (off / 4 + i) % 4 == 3 ? (v & PCI_MSIX_ENTRY_MASKED) : v;
    }
    msix_flush_pending(f);
    return true;
}

/* ---- INTx ----------------------------------------------------------------- */

static void intx_update(struct pci_func *f)
{
    bool out = f->intx_level && f->intx_gsi != MOAT_NO_GSI && !pci_msix_enabled(f) &&
               !(pci_command(f) & PCI_CMD_INTX_DISABLE);
    if (out == f->intx_out)
        return;
    f->intx_out = out;
    if (f->bus->plat.intx)
        f->bus->plat.intx(f->bus->plat.ctx, f->intx_gsi, out);
}

void pci_intx_set(struct pci_func *f, bool level)
{
    pthread_mutex_lock(&f->bus->irq_lock);
    uint16_t st = get_le16(f->cfg + PCI_STATUS);
    put_le16(f->cfg + PCI_STATUS, level ? (st | PCI_STATUS_INTX) : (st & ~PCI_STATUS_INTX));
    f->intx_level = level;
    intx_update(f);
    pthread_mutex_unlock(&f->bus->irq_lock);
}

/* ---- configuration space -------------------------------------------------- */

uint32_t pci_cfg_read(struct pci_func *f, uint32_t off, uint32_t size)
{
    if ((size != 1 && size != 2 && size != 4) || off % size || off >= PCI_CFG_SIZE) {
        PCI_COUNT(f->bus, cfg_bad_access);
        pci_refuse(f, "config read not naturally aligned inside 4 KiB", off, size);
        return 0xFFFFFFFFu;
    }
    uint32_t v = 0;
    for (uint32_t i = 0; i < size; i++)
        v |= (uint32_t)f->cfg[off + i] << (8 * i);
    return v;
}

bool pci_cfg_write(struct pci_func *f, uint32_t off, uint32_t size, uint32_t value)
{
    if ((size != 1 && size != 2 && size != 4) || off % size || off >= PCI_CFG_SIZE) {
        PCI_COUNT(f->bus, cfg_bad_access);
        pci_refuse(f, "config write not naturally aligned inside 4 KiB", off, size);
        return false;
    }
    if (off >= PCI_BAR0 && off < PCI_BAR_REG(PCI_BARS)) {
        bool ok = size == 4 && bar_write(f, (off - PCI_BAR0) / 4, value);
        if (size != 4)
            pci_refuse(f, "BAR write narrower than 32 bits", off, value);
        if (!ok)
            PCI_COUNT(f->bus, cfg_refused);
        return ok;
    }
    if (off == 0x30 && size == 4)   /* no expansion ROM: hardwired zero */
        return true;
    for (uint32_t i = 0; i < size; i++) {
        uint8_t v = (uint8_t)(value >> (8 * i));
        uint8_t ro = (uint8_t)~(f->wmask[off + i] | f->w1c[off + i]);
        /* STATUS is hardware state plus RW1C bits: software writes only the
         * bits it clears, so its read-only bits ignore what is written. */
        if (off + i == PCI_STATUS || off + i == PCI_STATUS + 1)
            ro = 0;
        if ((v ^ f->cfg[off + i]) & ro) {
            PCI_COUNT(f->bus, cfg_refused);
            pci_refuse(f, "config write would change read-only bits", off, value);
            return false;
        }
    }
    pthread_mutex_lock(&f->bus->irq_lock);
    bool msix_was = pci_msix_enabled(f), masked_was = f->msix.cap && msix_func_masked(f);
    for (uint32_t i = 0; i < size; i++) {
        uint8_t v = (uint8_t)(value >> (8 * i));
        uint8_t *c = &f->cfg[off + i];
        *c = (uint8_t)((*c & ~f->wmask[off + i]) | (v & f->wmask[off + i]));
        *c = (uint8_t)(*c & ~(v & f->w1c[off + i]));
    }
    command_sync(f);
    if (f->msix.cap && (pci_msix_enabled(f) != msix_was || msix_func_masked(f) != masked_was))
        msix_flush_pending(f);
    intx_update(f);
    pthread_mutex_unlock(&f->bus->irq_lock);
    return true;
}

/* ---- exit-bus handlers ---------------------------------------------------- */

enum bus_result pci_ecam_access(void *ctx, struct bus_access *a)
{
    struct pci_bus *b = ctx;
    uint64_t bus = a->offset >> 20, dev = (a->offset >> 15) & 31, fn = (a->offset >> 12) & 7;
    uint32_t reg = (uint32_t)(a->offset & 0xFFF);
    struct pci_func *f = bus == 0 && dev < PCI_SLOTS_MAX && fn == 0 ? b->slot[dev] : NULL;
    if (!f) {               /* no function: reads all ones, writes drop */
        a->value = a->is_write ? 0 : (a->size == 8 ? ~0ull : (1ull << (8 * a->size)) - 1);
        return BUS_OK;
    }
    if (a->is_write)
        pci_cfg_write(f, reg, a->size, (uint32_t)a->value);
    else
        a->value = pci_cfg_read(f, reg, a->size);
    return BUS_OK;
}

static enum bus_result bar_dispatch(struct pci_bus *b, bool mem, struct bus_access *a)
{
    for (unsigned s = 0; s < PCI_SLOTS_MAX; s++) {
        struct pci_func *f = b->slot[s];
        for (unsigned n = 0; f && n < PCI_BARS; n++) {
            const struct pci_bar *bar = &f->bar[n];
            if (bar->kind == PCI_BAR_NONE || is_mem(bar->kind) != mem || a->addr < bar->base ||
                a->addr - bar->base >= bar->size || a->size > bar->size - (a->addr - bar->base))
                continue;
            if (!(pci_command(f) & (mem ? PCI_CMD_MEM : PCI_CMD_IO))) {
                PCI_COUNT(b, bar_decode_off);
                a->value = a->is_write ? a->value : ~0ull;
                return BUS_OK;
            }
            a->offset = a->addr - bar->base;
            if (mem) {
                pthread_mutex_lock(&b->irq_lock);
                bool msix = msix_access(f, n, a);
                pthread_mutex_unlock(&b->irq_lock);
                if (msix)
                    return BUS_OK;
            }
            if (!f->ops || !f->ops->bar_access) {
                a->value = a->is_write ? a->value : 0;
                return BUS_OK;
            }
            return f->ops->bar_access(f->dev, n, a);
        }
    }
    return BUS_UNCLAIMED;
}

enum bus_result pci_mmio_access(void *ctx, struct bus_access *a)
{
    return bar_dispatch(ctx, true, a);
}

enum bus_result pci_pio_access(void *ctx, struct bus_access *a)
{
    return bar_dispatch(ctx, false, a);
}

/* ---- DMA ------------------------------------------------------------------ */

void *pci_dma_map(struct pci_func *f, uint64_t iova, uint64_t len, enum dma_dir dir,
                  struct dma_mapping *m)
{
    struct pci_bus *b = f->bus;
    memset(m, 0, sizeof *m);
    if (!(pci_command(f) & PCI_CMD_MASTER)) {
        PCI_COUNT(b, dma_master_off);   /* any thread */
        pci_refuse(f, "device DMA refused: bus mastering is disabled (PCI command register)",
                   iova, len);
        return NULL;
    }
    void *p = b->broker ? broker_dma_map(b->broker, b->domain_id, f->name, iova, len, dir, m)
                        : NULL;
    if (!p) {
        PCI_COUNT(b, dma_refused);
        if (b->plat.dma_refused)
            b->plat.dma_refused(b->plat.ctx, f->name, iova, len,
                                b->broker ? m->refusal : BR_OUT_OF_WINDOW);
    }
    return p;
}

void pci_dma_unmap(struct pci_func *f, struct dma_mapping *m)
{
    if (f->bus->broker)
        broker_dma_unmap(f->bus->broker, m);
}
