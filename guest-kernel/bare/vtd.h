/*
 * vtd.h — DMA confined by Intel VT-d (DMA remapping), where ACPI has a
 * DMAR whose remapping unit covers every device. Once on, every device's
 * DMA is translated: a device no domain holds reaches nothing (no context
 * entry), and an assigned one reaches exactly its domain's windows — IOVA
 * (the window's address in the domain) to the physical pages behind it,
 * in second-level tables of its own (its own VT-d domain id). A DMA
 * anywhere else is blocked by the unit and recorded; vtd_poll_faults
 * hands each record to the monitor, which audits it against the owner.
 * The interposition of nvme_shadow.h and virtio_shadow.h is then off for
 * that device (the unit translates instead). Not done yet: interrupt
 * remapping (a device can still send MSIs of its choosing to the local
 * APIC), queued invalidation (register-based here), more than one unit,
 * devices behind bridges (a DRHD's sub-hierarchy scopes).
 */
#ifndef BARE_VTD_H
#define BARE_VTD_H

#include <stdbool.h>
#include <stdint.h>
#include "acpi.h"

struct dom_window;

/* Find and start the unit: translation on, every device blocked. False
 * (and *why) when there is none or it cannot be used; then the monitor
 * interposes instead. */
bool vtd_init(const struct acpi_info *a, const char **why);
bool vtd_active(void);
/* Give bus:dev.fn its own VT-d domain mapping exactly these windows
 * (read and write). False (and *why) when tables cannot be made. */
bool vtd_attach(uint8_t bus, uint8_t dev, uint8_t fn, uint16_t did,
                const struct dom_window *w, unsigned n, const char **why);
/* Block bus:dev.fn again (its context entry cleared, caches invalidated). */
void vtd_detach(uint8_t bus, uint8_t dev, uint8_t fn);
/* Read and clear the unit's fault records, fn for each (source id
 * bus << 8 | dev << 3 | fn, the faulting address, the reason code,
 * whether it was a write). Returns how many. */
typedef void (*vtd_fault_fn)(uint16_t sid, uint64_t addr, uint8_t reason, bool write);
unsigned vtd_poll_faults(vtd_fault_fn fn);
/* One console line: the unit, its address width, faults seen. */
void vtd_describe(void);

#endif /* BARE_VTD_H */
