/*
 * pci_enum.h — PCI configuration space in the kernel booted bare: ECAM
 * (from ACPI's MCFG) when there is one, else the legacy ports (0xCF8 /
 * 0xCFC) every PC machine model has; enumeration of every function, and
 * BAR decoding (firmware placed them; OVMF puts 64-bit BARs above 4 GiB).
 */
#ifndef BARE_PCI_ENUM_H
#define BARE_PCI_ENUM_H

#include <stdbool.h>
#include <stdint.h>

struct pci_fn_id {
    uint8_t bus, dev, fn;
    uint16_t vendor, device;
    uint32_t class_code;                /* class << 16 | subclass << 8 | prog-if */
};

struct pci_bar_info {
    bool present, io, is64;
    uint64_t addr;                      /* where firmware placed it */
};

/* Use ECAM at base for buses bus_start..bus_end (segment 0) from now on;
 * false (legacy ports stay) when the window cannot be mapped. */
bool pci_use_ecam(uint64_t base, uint8_t bus_start, uint8_t bus_end);
/* "ECAM at 0x..." or "the legacy ports". */
const char *pci_access_name(void);
uint32_t pci_read32(uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off);
void pci_write32(uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off, uint32_t v);
/* Every present function, up to max, in bus/device/function order;
 * returns how many there are (may exceed max). */
uint32_t pci_scan(struct pci_fn_id *out, uint32_t max);
/* BAR n (0..5) of a type-0 function; the upper half of a 64-bit BAR reads
 * as not present. */
struct pci_bar_info pci_bar(const struct pci_fn_id *f, unsigned n);
/* "NVMe controller", "Ethernet controller", ... or "other". */
const char *pci_class_name(uint32_t class_code);

#endif /* BARE_PCI_ENUM_H */
