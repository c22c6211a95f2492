/* PCI configuration through 0xCF8/0xCFC (contract in pci_cf8.h). */
#include "gk/cpu.h"
#include "pci_cf8.h"

uint32_t pci_cf8_read32(uint8_t bus, uint8_t dev, uint8_t fn, uint8_t off)
{
    uint32_t addr = 0x80000000u | (uint32_t)bus << 16 | (uint32_t)(dev & 31u) << 11 |
                    (uint32_t)(fn & 7u) << 8 | (off & 0xFCu);
    outl(0xCF8, addr);
    return inl(0xCFC);
}

uint32_t pci_cf8_scan(struct pci_fn_id *out, uint32_t max)
{
    uint32_t n = 0;
    for (unsigned bus = 0; bus < 256; bus++)
        for (uint8_t dev = 0; dev < 32; dev++)
            for (uint8_t fn = 0; fn < 8; fn++) {
                uint32_t id = pci_cf8_read32((uint8_t)bus, dev, fn, 0);
                if ((id & 0xFFFFu) == 0xFFFFu) {
                    if (fn == 0)
                        break;          /* no device: no functions either */
                    continue;
                }
                if (n < max)
                    out[n] = (struct pci_fn_id){
                        .bus = (uint8_t)bus, .dev = dev, .fn = fn,
                        .vendor = (uint16_t)id, .device = (uint16_t)(id >> 16),
                        .class_code = pci_cf8_read32((uint8_t)bus, dev, fn, 8) >> 8 };
                n++;
                uint32_t hdr = pci_cf8_read32((uint8_t)bus, dev, fn, 0x0C) >> 16;
                if (fn == 0 && !(hdr & 0x80u))
                    break;              /* single-function device */
            }
    return n;
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
