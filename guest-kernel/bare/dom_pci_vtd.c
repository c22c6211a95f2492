/* Assigned functions under VT-d (contract in dom_pci.h): confining them
 * to their domain's windows, auditing what the unit blocked. */
#include "com1.h"
#include "dom_internal.h"
#include "dom_pci.h"
#include "dom_pci_internal.h"
#include "nvme_shadow.h"
#include "pci_enum.h"
#include "virtio_shadow.h"
#include "vtd.h"

/* A type 1 (bridge) header's bus numbers, from its configuration. */
static bool bridge_buses(uint16_t sid, uint8_t *secondary, uint8_t *subordinate)
{
    uint8_t bus = (uint8_t)(sid >> 8), dev = (uint8_t)(sid >> 3 & 31), fn = (uint8_t)(sid & 7);
    if ((pci_read32(bus, dev, fn, 0x0C) >> 16 & 0x7Fu) != 1)
        return false;
    uint32_t v = pci_read32(bus, dev, fn, 0x18);
    *secondary = (uint8_t)(v >> 8);
    *subordinate = (uint8_t)(v >> 16);
    return true;
}

void dom_pci_use_vtd(struct dom *d, const struct acpi_info *acpi)
{
    for (uint32_t i = 0; i < d->n_dev; i++) {
        struct dom_dev *x = d->dev[i];
        const char *why = NULL;
        if (!acpi_dmar_covers(acpi, x->fn.bus, x->fn.dev, x->fn.fn, bridge_buses)) {
            dom_log(d, "device %02x:%02x.%x: no remapping unit covers it: interposed instead",
                    x->fn.bus, x->fn.dev, x->fn.fn);
            continue;
        }
        x->ir = vtd_ir_active();        /* its MSIs cross the unit, translated or not */
        if (x->vio && !virtio_shadow_iommu_capable(x->vio)) {
            dom_log(d, "device %02x:%02x.%x: no VIRTIO_F_ACCESS_PLATFORM, its DMA goes around the "
                    "IOMMU: interposed at the notify instead", x->fn.bus, x->fn.dev, x->fn.fn);
            continue;
        }
        if (!vtd_attach(x->fn.bus, x->fn.dev, x->fn.fn, (uint16_t)(x - dom_devs + 1), d->win, d->n_win,
                        &why)) {
            dom_log(d, "device %02x:%02x.%x: VT-d refused it (%s): interposed instead", x->fn.bus,
                    x->fn.dev, x->fn.fn, why);
            continue;
        }
        x->vtd = true;
        if (x->nvme)
            nvme_shadow_passthrough(x->nvme, true);
        if (x->vio)
            virtio_shadow_passthrough(x->vio, true);
        dom_log(d, "device %02x:%02x.%x: DMA confined by VT-d to the domain's windows",
                x->fn.bus, x->fn.dev, x->fn.fn);
    }
}

void dom_pci_vtd_fault(uint16_t sid, uint64_t addr, uint8_t reason, bool write)
{
    for (unsigned i = 0; i < dom_n_devs; i++) {
        struct dom_dev *x = &dom_devs[i];
        if (((unsigned)x->fn.bus << 8 | (unsigned)x->fn.dev << 3 | x->fn.fn) != sid || !x->owner)
            continue;
        x->vtd_faults++;
        if (vtd_fault_is_interrupt(reason))
            dom_audit(x->owner, "VT-d blocked an interrupt request by device %02x:%02x.%x "
                      "(entry %llu: %s, fault reason 0x%x)", x->fn.bus, x->fn.dev, x->fn.fn,
                      (unsigned long long)addr, vtd_fault_reason(reason), reason);
        else
            dom_audit(x->owner, "VT-d blocked a DMA %s at 0x%llx by device %02x:%02x.%x (%s, "
                      "fault reason 0x%x): outside the domain's windows", write ? "write" : "read",
                      (unsigned long long)addr, x->fn.bus, x->fn.dev, x->fn.fn,
                      vtd_fault_reason(reason), reason);
        return;
    }
    com1_printf("moat bare: VT-d blocked a%s %s 0x%llx by %02x:%02x.%x, a source no domain "
                "holds (%s, fault reason 0x%x)\n", vtd_fault_is_interrupt(reason) ? "n" : "",
                vtd_fault_is_interrupt(reason) ? "interrupt request, entry" :
                write ? "DMA write at" : "DMA read at", (unsigned long long)addr,
                sid >> 8, (sid >> 3) & 31, sid & 7, vtd_fault_reason(reason), reason);
}

const char *dom_pci_dma_mode(const struct dom *d)
{
    bool vtd = false, other = false;
    for (uint32_t i = 0; i < d->n_dev; i++) {
        vtd |= d->dev[i]->vtd;
        other |= !d->dev[i]->vtd;
    }
    return vtd && other ? "by VT-d for some devices, at the doorbell for others"
                        : vtd ? "by VT-d" : "at the doorbell (no IOMMU)";
}

bool dom_pci_dma_range(struct dom *d, uint64_t iova, uint64_t pa, uint64_t len, bool on)
{
    bool ok = true;
    for (uint32_t i = 0; i < d->n_dev; i++) {
        struct dom_dev *x = d->dev[i];
        if (x->vtd)
            ok &= vtd_map(x->fn.bus, x->fn.dev, x->fn.fn, iova, pa, len, on);
    }
    return ok;
}

bool dom_pci_dma_reaches(const struct dom *d, uint64_t iova_end)
{
    for (uint32_t i = 0; i < d->n_dev; i++)
        if (d->dev[i]->vtd && iova_end > vtd_iova_limit())
            return false;
    return true;
}
