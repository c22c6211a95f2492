/*
 * pci_cf8.h — PCI configuration space through the legacy ports (0xCF8 /
 * 0xCFC), which every PC machine model has: the bare kernel's first view
 * of the devices it will hand to driver domains (ECAM from ACPI MCFG
 * replaces it where present, later).
 */
#ifndef BARE_PCI_CF8_H
#define BARE_PCI_CF8_H

#include <stdint.h>

struct pci_fn_id {
    uint8_t bus, dev, fn;
    uint16_t vendor, device;
    uint32_t class_code;                /* class << 16 | subclass << 8 | prog-if */
};

uint32_t pci_cf8_read32(uint8_t bus, uint8_t dev, uint8_t fn, uint8_t off);
/* Every present function, up to max, in bus/device/function order;
 * returns how many there are (may exceed max). */
uint32_t pci_cf8_scan(struct pci_fn_id *out, uint32_t max);
/* "NVMe controller", "Ethernet controller", ... or "other". */
const char *pci_class_name(uint32_t class_code);

#endif /* BARE_PCI_CF8_H */
