/* Assigned PCI functions and the domains' accesses (contract in dom_pci.h). */
#include "com1.h"
#include "dom_internal.h"
#include "dom_pci.h"
#include "gk/console.h"
#include "gk/kstring.h"
#include "gk/sys.h"
#include "mmio_map.h"
#include "moat/pci_regs.h"
#include "dom_pci_internal.h"
#include "nvme_shadow.h"
#include "virtio_shadow.h"
#include "vtd.h"
#include "apic.h"
#include "moat/virtio_regs.h"
#include "pci_enum.h"

#define ENTRY_INTX 0xFFFFFFFFu     /* vec_owner entry of an INTx line */
#define VEC_FIRST 64u           /* monitor vectors handed to devices */
#define VEC_LAST 223u
#define VEC_DOMAIN_FIRST 48u    /* what a domain may program (gk/event.h) */

struct dom_dev dom_devs[DEVS_MAX];
unsigned dom_n_devs;
static struct { struct dom_dev *dev; uint32_t entry; } vec_owner[256];
static uint32_t apic_dest;


/* ---- assignment ------------------------------------------------------------------------ */

static bool parse_bdf(const char *s, uint8_t *b, uint8_t *dv, uint8_t *f)
{
    unsigned v[3] = { 0 }, i = 0;
    for (; *s && i < 3; s++) {
        if ((*s == ':' && i == 0) || (*s == '.' && i == 1)) {
            i++;
            continue;
        }
        unsigned h = *s >= '0' && *s <= '9' ? (unsigned)(*s - '0')
                   : *s >= 'a' && *s <= 'f' ? (unsigned)(*s - 'a' + 10) : 99u;
        if (h > 15)
            return false;
        v[i] = v[i] * 16 + h;
    }
    if (i != 2 || v[0] > 255 || v[1] > 31 || v[2] > 7)
        return false;
    *b = (uint8_t)v[0];
    *dv = (uint8_t)v[1];
    *f = (uint8_t)v[2];
    return true;
}

static bool taken(const struct pci_fn_id *f)
{
    for (unsigned i = 0; i < dom_n_devs; i++)
        if (dom_devs[i].fn.bus == f->bus && dom_devs[i].fn.dev == f->dev && dom_devs[i].fn.fn == f->fn)
            return true;
    return false;
}

/* Size BAR n with decoding off; fills x->bar[n] (and skips n + 1 for 64-bit). */
static void size_bar(struct dom_dev *x, unsigned n)
{
    struct pci_bar_info b = pci_bar(&x->fn, n);
    if (!b.present)
        return;
    uint32_t off = PCI_BAR_REG(n), lo = cfg_rd(x, off), hi = b.is64 ? cfg_rd(x, off + 4) : 0;
    cfg_wr(x, off, 0xFFFFFFFFu);
    uint64_t mask = cfg_rd(x, off);
    if (b.is64) {
        cfg_wr(x, off + 4, 0xFFFFFFFFu);
        mask |= (uint64_t)cfg_rd(x, off + 4) << 32;
    } else {
        mask |= 0xFFFFFFFF00000000ull;
    }
    cfg_wr(x, off, lo);
    if (b.is64)
        cfg_wr(x, off + 4, hi);
    mask &= b.io ? ~3ull : ~0xFull;
    if (b.io)
        mask |= 0xFFFFFFFFFFFF0000ull;
    uint64_t size = ~mask + 1;
    x->bar[n] = (struct moat_bar_info){ .base = b.addr, .size = size,
                                        .kind = b.io ? MOAT_BAR_IO : b.is64 ? MOAT_BAR_MEM64
                                                                            : MOAT_BAR_MEM32 };
}

uint32_t dev_find_cap(const struct dom_dev *x, uint8_t id)
{
    if (!(cfg_rd(x, PCI_COMMAND) >> 16 & PCI_STATUS_CAP_LIST))
        return 0;
    uint32_t p = cfg_rd(x, PCI_CAP_PTR) & 0xFF;
    for (unsigned n = 0; p >= 0x40 && n < 48; n++) {
        uint32_t h = cfg_rd(x, p & ~3u);
        if ((h & 0xFF) == id)
            return p & ~3u;
        p = (h >> 8) & 0xFF;
    }
    return 0;
}

static const char *attach_nvme(struct dom_dev *x, uint32_t cmd, uint64_t tsc_khz)
{
    if (x->bar[0].kind != MOAT_BAR_MEM32 && x->bar[0].kind != MOAT_BAR_MEM64)
        return "the NVMe controller has no memory BAR 0";
    const char *why;
    cfg_wr(x, PCI_COMMAND, (cmd & 0xFFFF) | PCI_CMD_MEM | PCI_CMD_MASTER);   /* the probe's DMA */
    x->nvme = nvme_shadow_attach((volatile uint8_t *)(uintptr_t)x->bar[0].base, tsc_khz, &why);
    cfg_wr(x, PCI_COMMAND, (cmd & ~(uint32_t)PCI_CMD_MASTER) | PCI_CMD_MEM);
    return x->nvme ? NULL : why;
}

/* The modern transport's regions from the vendor capabilities; without
 * a common configuration, the legacy I/O block in BAR 0. */
static const char *attach_virtio(struct dom_dev *x)
{
    struct virtio_layout l = { 0 };
    for (unsigned b = 0; b < 6; b++)
        l.bar_base[b] = x->bar[b].base;
    uint32_t p = (cfg_rd(x, PCI_COMMAND) >> 16 & PCI_STATUS_CAP_LIST) ? cfg_rd(x, PCI_CAP_PTR) & 0xFF
                                                                       : 0;
    for (unsigned n = 0; p >= 0x40 && n < 48; n++) {
        uint32_t h = cfg_rd(x, p & ~3u), bar = cfg_rd(x, p + 4) & 0xFF;
        uint32_t off = cfg_rd(x, p + VIRTIO_PCI_CAP_OFFSET), len = cfg_rd(x, p + VIRTIO_PCI_CAP_LENGTH);
        if ((h & 0xFF) == 0x09 && bar < 6 && x->bar[bar].kind != MOAT_BAR_IO &&
            x->bar[bar].kind != MOAT_BAR_NONE && off < x->bar[bar].size &&
            len <= x->bar[bar].size - off) {
            switch ((h >> 24) & 0xFF) {
            case VIRTIO_PCI_CAP_COMMON_CFG:
                l.modern = true, l.common_bar = bar, l.common_off = off, l.common_len = len;
                break;
            case VIRTIO_PCI_CAP_NOTIFY_CFG:
                l.notify_bar = bar, l.notify_off = off, l.notify_len = len;
                l.notify_mult = cfg_rd(x, p + VIRTIO_PCI_CAP_MULTIPLIER);
                break;
            case VIRTIO_PCI_CAP_ISR_CFG:
                l.isr_bar = bar, l.isr_off = off, l.isr_len = len;
                break;
            case VIRTIO_PCI_CAP_DEVICE_CFG:
                l.device_bar = bar, l.device_off = off, l.device_len = len;
                break;
            default:
                break;
            }
        }
        p = (h >> 8) & 0xFF;
    }
    if (!l.modern) {
        if (x->bar[0].kind != MOAT_BAR_IO || x->bar[0].size < 0x14)
            return "the legacy virtio device has no I/O BAR 0";
        l.io_base = (uint16_t)x->bar[0].base;
    } else if (!l.notify_len || l.common_len < VIRTIO_COMMON_SIZE) {
        return "the modern virtio device lacks a notify or full common configuration region";
    }
    const char *why;
    x->vio = virtio_shadow_attach(&l, &why);
    x->vio_legacy = !l.modern;
    return x->vio ? NULL : why;
}

const char *dom_pci_assign(struct dom *d, const char *sel, uint32_t apic_id, uint64_t tsc_khz)
{
    apic_dest = apic_id;
    if (dom_n_devs == DEVS_MAX || d->n_dev == MOAT_DEVICES_MAX)
        return "no room for another device";
    struct pci_fn_id all[64];
    uint32_t n = pci_scan(all, 64);
    struct pci_fn_id want = { 0 };
    bool by_addr = parse_bdf(sel, &want.bus, &want.dev, &want.fn), found = false;
    for (uint32_t i = 0; i < n && i < 64 && !found; i++) {
        if (taken(&all[i]))
            continue;
        bool is_vnet = all[i].vendor == VIRTIO_PCI_VENDOR &&
                       (all[i].device == VIRTIO_PCI_DEVICE_NET_MODERN ||
                        all[i].device == VIRTIO_PCI_DEVICE_NET_LEGACY);
        if (by_addr ? (all[i].bus == want.bus && all[i].dev == want.dev && all[i].fn == want.fn)
                    : ((strcmp(sel, "nvme") == 0 && all[i].class_code == 0x010802) ||
                       (strcmp(sel, "virtio-net") == 0 && is_vnet))) {
            want = all[i];
            found = true;
        }
    }
    if (!found)
        return "no unassigned PCI function matches dev= (try the console's pci command)";
    bool nvme = want.class_code == 0x010802;
    bool vnet = want.vendor == VIRTIO_PCI_VENDOR && (want.device == VIRTIO_PCI_DEVICE_NET_MODERN ||
                                                    want.device == VIRTIO_PCI_DEVICE_NET_LEGACY);
    if (!nvme && !vnet)
        return "only NVMe controllers and virtio-net functions can be assigned in bare mode "
               "(theirs are the doorbells the monitor interposes on)";
    struct dom_dev *x = &dom_devs[dom_n_devs];
    *x = (struct dom_dev){ .owner = d, .fn = want, .kind = nvme ? "nvme" : "virtio-net",
                           .gsi = MOAT_NO_GSI };
    uint32_t irq = cfg_rd(x, 0x3C);
    if ((irq >> 8 & 0xFF) && (irq & 0xFF) >= 1 && (irq & 0xFF) < 24)
        x->gsi = irq & 0xFF;    /* the PC's routing: the line firmware wrote is the GSI */
    uint32_t cmd = cfg_rd(x, PCI_COMMAND) & 0xFFFF;
    cfg_wr(x, PCI_COMMAND, cmd & ~(uint32_t)(PCI_CMD_MEM | PCI_CMD_IO | PCI_CMD_MASTER));
    for (unsigned b = 0; b < 6; b++)
        if (!(b > 0 && x->bar[b - 1].kind == MOAT_BAR_MEM64))
            size_bar(x, b);
    for (unsigned b = 0; b < 6; b++)
        if ((x->bar[b].kind == MOAT_BAR_MEM32 || x->bar[b].kind == MOAT_BAR_MEM64) &&
            !mmio_map(x->bar[b].base, x->bar[b].size))
            return "a BAR cannot be mapped";
    uint32_t decode = PCI_CMD_MEM | (x->bar[0].kind == MOAT_BAR_IO ? PCI_CMD_IO : 0u);
    cfg_wr(x, PCI_COMMAND, (cmd & ~(uint32_t)PCI_CMD_MASTER) | decode);
    x->msix_cap = dev_find_cap(x, PCI_CAP_ID_MSIX);
    if (x->msix_cap) {
        uint32_t h = cfg_rd(x, x->msix_cap), t = cfg_rd(x, x->msix_cap + PCI_MSIX_TABLE),
                 p = cfg_rd(x, x->msix_cap + PCI_MSIX_PBA);
        x->msix_n = ((h >> 16) & PCI_MSIX_CTRL_SIZE_MASK) + 1u;
        if (x->msix_n > MSIX_MAX)
            x->msix_n = MSIX_MAX;
        x->msix_bar = t & PCI_MSIX_BIR_MASK;
        x->msix_off = t & ~PCI_MSIX_BIR_MASK;
        x->pba_bar = p & PCI_MSIX_BIR_MASK;
        x->pba_off = p & ~PCI_MSIX_BIR_MASK;
        for (uint32_t e = 0; e < x->msix_n; e++)
            x->msix[e].ctrl = PCI_MSIX_ENTRY_MASKED;
    }
    const char *why = nvme ? attach_nvme(x, cmd, tsc_khz) : attach_virtio(x);
    if (why)
        return why;
    dev_reset_probe(x);
    dom_n_devs++;
    d->dev[d->n_dev++] = x;
    return NULL;
}

void dom_pci_boot_info(const struct dom *d)
{
    for (uint32_t i = 0; i < d->n_dev; i++) {
        const struct dom_dev *x = d->dev[i];
        struct moat_device_info *di = &d->bi->device[i];
        *di = (struct moat_device_info){ .bus = x->fn.bus, .dev = x->fn.dev, .fn = x->fn.fn,
                                         .vendor = x->fn.vendor, .device = x->fn.device,
                                         .intx_gsi = x->gsi };
        memcpy(di->name, x->kind, strlen(x->kind) + 1);
        memcpy(di->bar, x->bar, sizeof di->bar);
    }
    d->bi->n_devices = d->n_dev;
}

/* ---- configuration space ------------------------------------------------------------------- */

uint64_t dom_pci_cfg(struct dom *d, uint64_t dev_off, uint64_t width_flags, uint64_t v)
{
    uint32_t idx = (uint32_t)(dev_off >> 16), off = dev_off & 0xFFFF;
    unsigned width = width_flags & 0xFF;
    bool wr = width_flags & SYS_PIO_WRITE;
    if (idx >= d->n_dev || (width != 1 && width != 2 && width != 4) || off % width ||
        off >= 4096 || (width_flags & ~(uint64_t)(0xFF | SYS_PIO_WRITE))) {
        dom_kill(d, "configuration access of %u bytes at 0x%x of device %u", width, off, idx);
        return 0;
    }
    struct dom_dev *x = d->dev[idx];
    if (off >= 256) {           /* extended space: none offered (an empty list) */
        if (wr)
            dom_audit(d, "configuration write at 0x%x refused: extended space", off);
        return 0;
    }
    unsigned shift = (off & 3) * 8;
    uint32_t mask = width == 4 ? 0xFFFFFFFFu : ((1u << (width * 8)) - 1u) << shift;
    uint32_t cur = cfg_rd(x, off);
    if (!wr)
        return (cur & mask) >> shift;
    uint32_t nv = (uint32_t)(v << shift) & mask, allowed;
    if ((off & ~3u) == PCI_COMMAND) {
        allowed = PCI_CMD_MEM | PCI_CMD_IO | PCI_CMD_MASTER | PCI_CMD_INTX_DISABLE;
        cur &= 0xFFFF;          /* status bits are write-one-to-clear: write zeros */
    } else if (x->msix_cap && (off & ~3u) == x->msix_cap) {
        allowed = (uint32_t)(PCI_MSIX_CTRL_ENABLE | PCI_MSIX_CTRL_MASKALL) << 16;
    } else {
        allowed = 0;
    }
    if ((nv ^ (cur & mask)) & mask & ~allowed) {       /* it would change a bit not its own */
        x->cfg_refused++;
        dom_audit(d, "configuration write of 0x%x at 0x%x refused (only the command register's "
                  "decode/master/INTx bits and MSI-X enable/mask are the domain's)",
                  (uint32_t)v, off);
    }
    cfg_wr(x, off, (cur & ~(mask & allowed)) | (nv & allowed));
    return 0;
}

/* ---- MSI-X, kept virtual ---------------------------------------------------------------------- */

/* Under interrupt remapping the vector's table entry is set on the way:
 * only the device (an MSI-X entry) or its I/O APIC (INTx) may use it. */
static uint8_t vec_alloc(struct dom_dev *x, uint32_t entry)
{
    for (uint32_t v = VEC_FIRST; v <= VEC_LAST; v++) {
        if (vec_owner[v].dev)
            continue;
        uint8_t ioapic;
        uint16_t sid = (uint16_t)(x->fn.bus << 8 | x->fn.dev << 3 | x->fn.fn);
        if (entry == ENTRY_INTX && vtd_ir_active() &&
            !(ioapic_id_of(x->gsi, &ioapic) &&
              vtd_irte_set_ioapic((uint16_t)v, (uint8_t)v, apic_dest, ioapic)))
            return 0;
        if (entry != ENTRY_INTX && x->ir && !vtd_irte_set((uint16_t)v, (uint8_t)v, apic_dest, false, sid))
            return 0;
        vec_owner[v].dev = x;
        vec_owner[v].entry = entry;
        return (uint8_t)v;
    }
    return 0;
}

static void msix_program(struct dom_dev *x, uint32_t e)
{
    struct msix_entry *m = &x->msix[e];
    volatile uint32_t *real = (volatile uint32_t *)(uintptr_t)(x->bar[x->msix_bar].base +
                                                               x->msix_off + e * 16ull);
    bool usable = m->data >= VEC_DOMAIN_FIRST && m->data < 255 && m->lo == PCI_MSI_ADDR_BASE &&
                  m->hi == 0;
    if (usable && !m->host) {
        m->host = vec_alloc(x, e);
        if (!m->host)
            dom_audit(x->owner, "MSI-X entry %u: the monitor has no free vector (or the "
                      "remapping unit refused its entry)", e);
    }
    real[3] = PCI_MSIX_ENTRY_MASKED;
    if (!usable || !m->host)
        return;
    real[0] = x->ir ? vtd_msi_addr(m->host) : 0xFEE00000u | apic_dest << 12;
    real[1] = 0;
    real[2] = x->ir ? 0 : m->host;      /* remappable: the entry holds the vector */
    real[3] = m->ctrl & PCI_MSIX_ENTRY_MASKED;
}

static uint64_t msix_access(struct dom_dev *x, uint64_t off, unsigned width, bool wr, uint64_t v)
{
    uint32_t e = (uint32_t)(off / 16), w = (uint32_t)(off % 16) / 4;
    if (e >= x->msix_n || width < 4) {
        dom_audit(x->owner, "MSI-X table access of %u bytes at entry %u refused (%u entries, "
                  "4- or 8-byte accesses only)", width, e, x->msix_n);
        return 0;
    }
    struct msix_entry *m = &x->msix[e];
    uint32_t *reg[4] = { &m->lo, &m->hi, &m->data, &m->ctrl };
    if (!wr)
        return width == 8 && w % 2 == 0 ? (uint64_t)*reg[w + 1] << 32 | *reg[w] : *reg[w];
    *reg[w] = (uint32_t)v;
    if (width == 8 && w % 2 == 0)
        *reg[w + 1] = (uint32_t)(v >> 32);
    msix_program(x, e);
    return 0;
}

static uint64_t stray;

uint64_t dom_pci_stray(void) { return stray; }

void dom_pci_irq(uint32_t vector)
{
    struct dom_dev *x = vector < 256 ? vec_owner[vector].dev : NULL;
    if (!x) {
        if (stray++ == 0)   /* what a forged MSI that got through looks like */
            com1_printf("moat bare: an interrupt on vector %u, which no device holds (further "
                        "ones are only counted)\n", vector);
        return;
    }
    if (!x->owner)
        return;
    if (vec_owner[vector].entry == ENTRY_INTX) {
        /* A level line may be shared by devices of several domains: each
         * bound one hears of it; masked until one acks (a device still
         * asserting it raises it again). */
        ioapic_mask(x->gsi, true);
        for (unsigned i = 0; i < dom_n_devs; i++) {
            struct dom_dev *y = &dom_devs[i];
            if (y->gsi != x->gsi || !y->intx_vector || !y->owner)
                continue;
            y->owner->irqs++;
            if (y->vio)
                virtio_shadow_sync(y->vio, y->owner);
            dom_event(y->owner, y->intx_vector);
        }
    } else {
        x->owner->irqs++;
        if (x->vio)
            virtio_shadow_sync(x->vio, x->owner);  /* what the interrupt is about */
        dom_event(x->owner, x->msix[vec_owner[vector].entry].data);
    }
}

int64_t dom_pci_intx_bind(struct dom *d, uint64_t gsi, uint64_t vector)
{
    for (uint32_t i = 0; i < d->n_dev; i++) {
        struct dom_dev *x = d->dev[i];
        if (x->gsi != gsi || gsi == MOAT_NO_GSI)
            continue;
        if (vector < VEC_DOMAIN_FIRST || vector >= 255)
            return -SYS_EINVAL;
        for (unsigned k = 0; k < dom_n_devs && !x->intx_host; k++)
            if (dom_devs[k].gsi == x->gsi && dom_devs[k].intx_host)
                x->intx_host = dom_devs[k].intx_host;   /* a shared line: one vector */
        if (!x->intx_host && !(x->intx_host = vec_alloc(x, ENTRY_INTX)))
            return -SYS_EINVAL;
        x->intx_vector = (uint32_t)vector;
        if (!(vtd_ir_active() ? ioapic_route_remapped(x->gsi, x->intx_host, x->intx_host)
                              : ioapic_route_level(x->gsi, x->intx_host, apic_dest)))
            return -SYS_EINVAL;
        return 0;
    }
    dom_audit(d, "INTx bind of GSI %llu refused: not its device's line", (unsigned long long)gsi);
    return -SYS_EFAULT;
}

int64_t dom_pci_intx_ack(struct dom *d, uint64_t gsi)
{
    for (uint32_t i = 0; i < d->n_dev; i++)
        if (d->dev[i]->gsi == gsi && d->dev[i]->intx_host) {
            ioapic_mask((uint32_t)gsi, false);
            return 0;
        }
    return -SYS_EINVAL;
}

void dom_pci_sync(struct dom *d)
{
    for (uint32_t i = 0; i < d->n_dev; i++)
        if (d->dev[i]->vio)
            virtio_shadow_sync(d->dev[i]->vio, d);
}

uint64_t dom_pci_pio(struct dom *d, uint64_t port, uint64_t width_flags, uint64_t v)
{
    unsigned width = width_flags & 0xFF;
    bool wr = width_flags & SYS_PIO_WRITE;
    if ((width != 1 && width != 2 && width != 4) || port % width || port > 0xFFFF) {
        dom_kill(d, "port access of %u bytes at 0x%llx", width, (unsigned long long)port);
        return 0;
    }
    for (uint32_t i = 0; i < d->n_dev; i++) {
        struct dom_dev *x = d->dev[i];
        const struct moat_bar_info *bar = &x->bar[0];
        if (bar->kind != MOAT_BAR_IO || port < bar->base || port - bar->base >= bar->size ||
            width > bar->size - (port - bar->base))
            continue;
        if (x->vio && x->vio_legacy)
            return virtio_shadow_pio(x->vio, d, (uint32_t)(port - bar->base), width, wr, v);
        dom_audit(d, "port 0x%llx refused: the device is driven through its modern registers",
                  (unsigned long long)port);
        return 0;
    }
    dom_kill(d, "port access at 0x%llx, outside every I/O BAR of its devices",
             (unsigned long long)port);
    return 0;
}

/* ---- registers ----------------------------------------------------------------------------------- */

uint64_t dom_pci_mmio(struct dom *d, uint64_t addr, uint64_t width_flags, uint64_t v)
{
    unsigned width = width_flags & 0xFF;
    bool wr = width_flags & SYS_PIO_WRITE;
    if ((width != 1 && width != 2 && width != 4 && width != 8) || addr % width) {
        dom_kill(d, "register access of %u bytes at 0x%llx", width, (unsigned long long)addr);
        return 0;
    }
    for (uint32_t i = 0; i < d->n_dev; i++) {
        struct dom_dev *x = d->dev[i];
        for (unsigned b = 0; b < 6; b++) {
            const struct moat_bar_info *bar = &x->bar[b];
            if ((bar->kind != MOAT_BAR_MEM32 && bar->kind != MOAT_BAR_MEM64) ||
                addr < bar->base || addr - bar->base >= bar->size ||
                width > bar->size - (addr - bar->base))
                continue;
            uint64_t off = addr - bar->base;
            if (x->msix_cap && b == x->msix_bar && off >= x->msix_off &&
                off < x->msix_off + x->msix_n * 16ull)
                return msix_access(x, off - x->msix_off, width, wr, v);
            if (x->msix_cap && b == x->pba_bar && off >= x->pba_off &&
                off < x->pba_off + (x->msix_n + 63) / 64 * 8)
                return wr ? 0 : *(volatile uint32_t *)(uintptr_t)(addr & ~3ull);
            if (b == 0 && x->nvme)
                return nvme_shadow_mmio(x->nvme, d, off, width, wr, v);
            if (x->vio)
                return virtio_shadow_mmio(x->vio, d, b, off, width, wr, v);
            dom_audit(d, "access to BAR %u offset 0x%llx refused: nothing there is the domain's",
                      b, (unsigned long long)off);
            return 0;
        }
    }
    dom_kill(d, "register access at 0x%llx, outside every BAR of its devices",
             (unsigned long long)addr);
    return 0;
}

void dom_pci_quiesce(struct dom *d)
{
    for (uint32_t i = 0; i < d->n_dev; i++) {
        struct dom_dev *x = d->dev[i];
        for (uint32_t e = 0; e < x->msix_n; e++) {
            x->msix[e].ctrl = PCI_MSIX_ENTRY_MASKED;
            x->msix[e].data = 0;
            msix_program(x, e);
        }
        if (x->intx_vector) {
            x->intx_vector = 0;
            bool shared = false;    /* another domain's device still listens on the line */
            for (unsigned k = 0; k < dom_n_devs; k++)
                shared |= &dom_devs[k] != x && dom_devs[k].gsi == x->gsi && dom_devs[k].intx_vector;
            if (!shared)
                ioapic_mask(x->gsi, true);
        }
        if (x->vio)
            virtio_shadow_reset(x->vio);
        if (x->nvme && !nvme_shadow_reset(x->nvme))
            dom_log(d, "NVMe controller %02x:%02x.%x did not stop in CAP.TO; bus mastering off "
                    "anyway", x->fn.bus, x->fn.dev, x->fn.fn);
        cfg_wr(x, PCI_COMMAND, (cfg_rd(x, PCI_COMMAND) & 0xFFFF & ~(uint32_t)PCI_CMD_MASTER));
        dev_reset_start(x, dom_tsc_khz());
    }
}

uint64_t dom_pci_settle_tsc(const struct dom *d)
{
    uint64_t t = 0;
    for (uint32_t i = 0; i < d->n_dev; i++)
        if (d->dev[i]->settle_tsc > t)
            t = d->dev[i]->settle_tsc;
    return t;
}

void dom_pci_reset_done(struct dom *d)
{
    for (uint32_t i = 0; i < d->n_dev; i++)
        dev_reset_done(d->dev[i]);
}

void dom_pci_describe(const struct dom *d)
{
    for (uint32_t i = 0; i < d->n_dev; i++) {
        const struct dom_dev *x = d->dev[i];
        char intx[32];
        if (x->gsi == MOAT_NO_GSI)
            ksnprintf(intx, sizeof intx, "no INTx");
        else
            ksnprintf(intx, sizeof intx, "INTx GSI %u %s", x->gsi, x->intx_vector ? "bound" : "unused");
        unsigned bn = 0;
        while (bn < 5 && x->bar[bn].kind == MOAT_BAR_NONE)
            bn++;
        com1_printf("  device %02x:%02x.%x %04x:%04x %s, BAR%u %s 0x%llx (%llu bytes), %u MSI-X "
                    "entries, %s, %llu configuration writes refused\n", x->fn.bus, x->fn.dev,
                    x->fn.fn, x->fn.vendor, x->fn.device, pci_class_name(x->fn.class_code), bn,
                    x->bar[bn].kind == MOAT_BAR_IO ? "ports" : "memory",
                    (unsigned long long)x->bar[bn].base, (unsigned long long)x->bar[bn].size,
                    x->msix_n, intx, (unsigned long long)x->cfg_refused);
        com1_printf("    reset: %s, %llu so far\n", x->flr ? "its own, then a function-level reset"
                                                         : "its own (no function-level reset)",
                    (unsigned long long)x->resets);
        com1_printf("    DMA: %s", x->vtd ? "vtd" : "shadow");
        if (x->vtd)
            com1_printf(", %llu blocked by the unit", (unsigned long long)x->vtd_faults);
        com1_printf("\n");
        if (x->nvme)
            nvme_shadow_describe(x->nvme);
        if (x->vio)
            virtio_shadow_describe(x->vio);
    }
}
