/* PCI configuration and enumeration (contract in pci_enum.h). */
#include "gk/console.h"
#include "gk/cpu.h"
#include "mmio_map.h"
#include "pci_enum.h"

static uint64_t ecam_base;
static uint8_t ecam_start, ecam_end;
static char access_name[48] = "the legacy ports";

bool pci_use_ecam(uint64_t base, uint8_t bus_start, uint8_t bus_end)
{
    uint64_t len = ((uint64_t)bus_end - bus_start + 1u) << 20;
    if (bus_end < bus_start || !mmio_map(base, len))
        return false;
    ecam_base = base;
    ecam_start = bus_start;
    ecam_end = bus_end;
    ksnprintf(access_name, sizeof access_name, "ECAM at 0x%llx", (unsigned long long)base);
    return true;
}

const char *pci_access_name(void) { return access_name; }

static volatile uint32_t *ecam_reg(uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off)
{
    if (!ecam_base || bus < ecam_start || bus > ecam_end)
        return NULL;
    uint64_t a = ecam_base + ((uint64_t)(bus - ecam_start) << 20) + ((uint64_t)(dev & 31u) << 15) +
                 ((uint64_t)(fn & 7u) << 12) + (off & 0xFFCu);
    return (volatile uint32_t *)(uintptr_t)a;
}

static uint32_t cf8_addr(uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off)
{
    return 0x80000000u | (uint32_t)bus << 16 | (uint32_t)(dev & 31u) << 11 |
           (uint32_t)(fn & 7u) << 8 | (off & 0xFCu);
}

uint32_t pci_read32(uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off)
{
    volatile uint32_t *r = ecam_reg(bus, dev, fn, off);
    if (r)
        return *r;
    if (off >= 256)
        return 0xFFFFFFFFu;             /* extended space needs ECAM */
    outl(0xCF8, cf8_addr(bus, dev, fn, off));
    return inl(0xCFC);
}

void pci_write32(uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off, uint32_t v)
{
    volatile uint32_t *r = ecam_reg(bus, dev, fn, off);
    if (r) {
        *r = v;
        return;
    }
    if (off >= 256)
        return;
    outl(0xCF8, cf8_addr(bus, dev, fn, off));
    outl(0xCFC, v);
}

uint32_t pci_scan(struct pci_fn_id *out, uint32_t max)
{
    uint32_t n = 0;
    for (unsigned bus = 0; bus < 256; bus++)
        for (uint8_t dev = 0; dev < 32; dev++)
            for (uint8_t fn = 0; fn < 8; fn++) {
                uint32_t id = pci_read32((uint8_t)bus, dev, fn, 0);
                if ((id & 0xFFFFu) == 0xFFFFu) {
                    if (fn == 0)
                        break;          /* no device: no functions either */
                    continue;
                }
                if (n < max)
                    out[n] = (struct pci_fn_id){
                        .bus = (uint8_t)bus, .dev = dev, .fn = fn,
                        .vendor = (uint16_t)id, .device = (uint16_t)(id >> 16),
                        .class_code = pci_read32((uint8_t)bus, dev, fn, 8) >> 8 };
                n++;
                uint32_t hdr = pci_read32((uint8_t)bus, dev, fn, 0x0C) >> 16;
                if (fn == 0 && !(hdr & 0x80u))
                    break;              /* single-function device */
            }
    return n;
}

struct pci_bar_info pci_bar(const struct pci_fn_id *f, unsigned n)
{
    struct pci_bar_info b = { 0 };
    uint32_t hdr = (pci_read32(f->bus, f->dev, f->fn, 0x0C) >> 16) & 0x7Fu;
    if (hdr != 0 || n > 5)
        return b;
    if (n > 0) {                        /* the upper half of the BAR before? */
        uint32_t prev = pci_read32(f->bus, f->dev, f->fn, (uint16_t)(0x10 + 4 * (n - 1)));
        if (!(prev & 1u) && ((prev >> 1) & 3u) == 2u)
            return b;
    }
    uint32_t lo = pci_read32(f->bus, f->dev, f->fn, (uint16_t)(0x10 + 4 * n));
    if (lo & 1u) {
        b.io = true;
        b.addr = lo & ~3u;
    } else {
        b.is64 = ((lo >> 1) & 3u) == 2u && n < 5;
        b.addr = lo & ~0xFull;
        if (b.is64)
            b.addr |= (uint64_t)pci_read32(f->bus, f->dev, f->fn, (uint16_t)(0x14 + 4 * n)) << 32;
    }
    b.present = b.addr != 0;
    return b;
}

const char *pci_class_name(uint32_t cc)
{
    switch (cc >> 8) {
    case 0x0108: return "NVMe controller";
    case 0x0101: return "IDE controller";
    case 0x0106: return "SATA controller";
    case 0x0200: return "Ethernet controller";
    case 0x0300: return "VGA controller";
    case 0x0600: return "host bridge";
    case 0x0601: return "ISA bridge";
    case 0x0604: return "PCI bridge";
    case 0x0680: return "bridge";
    case 0x0C05: return "SMBus controller";
    case 0x0C03: return "USB controller";
    default:     return "other";
    }
}
