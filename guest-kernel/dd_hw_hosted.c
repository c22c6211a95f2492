/* Hosted hardware access for dd_pci.c (contract in dd_internal.h): ECAM
 * and the BARs are mapped into the domain; every access is one plain load
 * or store the VMM decodes. Ring 3. */
#include "dd_internal.h"
#include "gk/platform.h"
#include "moat/pci_regs.h"

static volatile uint8_t *cfg_at(unsigned dev, uint32_t off)
{
    const struct moat_boot_info *bi = platform_boot_info();
    const struct moat_device_info *di = &bi->device[dev];
    return (volatile uint8_t *)(uintptr_t)(bi->ecam_base +
                                           pci_ecam_offset(di->bus, di->dev, di->fn, off));
}

bool dd_hw_present(void) { return platform_boot_info()->ecam_base != 0; }

uint32_t dd_hw_cfg_read(unsigned dev, uint32_t off, unsigned width)
{
    volatile uint8_t *p = cfg_at(dev, off);
    return width == 1 ? *p : width == 2 ? *(volatile uint16_t *)p : *(volatile uint32_t *)p;
}

void dd_hw_cfg_write(unsigned dev, uint32_t off, unsigned width, uint32_t v)
{
    volatile uint8_t *p = cfg_at(dev, off);
    if (width == 1)
        *p = (uint8_t)v;
    else if (width == 2)
        *(volatile uint16_t *)p = (uint16_t)v;
    else
        *(volatile uint32_t *)p = v;
}

uint64_t dd_hw_mmio_read(uint64_t addr, unsigned width)
{
    volatile void *p = (volatile void *)(uintptr_t)addr;
    switch (width) {
    case 1: return *(volatile uint8_t *)p;
    case 2: return *(volatile uint16_t *)p;
    case 4: return *(volatile uint32_t *)p;
    default: return *(volatile uint64_t *)p;
    }
}

void dd_hw_mmio_write(uint64_t addr, unsigned width, uint64_t v)
{
    volatile void *p = (volatile void *)(uintptr_t)addr;
    switch (width) {
    case 1: *(volatile uint8_t *)p = (uint8_t)v; break;
    case 2: *(volatile uint16_t *)p = (uint16_t)v; break;
    case 4: *(volatile uint32_t *)p = (uint32_t)v; break;
    default: *(volatile uint64_t *)p = v; break;
    }
}
