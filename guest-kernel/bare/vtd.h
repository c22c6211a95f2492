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
 * that device (the unit translates instead).
 *
 * Interrupt remapping comes on with translation when the unit offers it
 * and queued invalidation (which the monitor then uses for every
 * invalidation): a write to the interrupt range in compatibility format
 * is blocked, and a remappable one reaches the CPU only through an entry
 * of the monitor's table, which names the vector, the destination and
 * the one source (device or I/O APIC) allowed to use it. Without it, a
 * translated device could write the MSI range and raise any vector in the
 * monitor, so the monitor then uses the unit only when asked (need_ir).
 * Not done: more than one unit, devices behind bridges (a DRHD's sub-
 * hierarchy scopes), x2APIC destinations (EIM).
 */
#ifndef BARE_VTD_H
#define BARE_VTD_H

#include <stdbool.h>
#include <stdint.h>
#include "acpi.h"

struct dom_window;

/* Find and start the unit: interrupt remapping on where offered, then
 * translation, every device blocked. False (and *why) when there is none,
 * it cannot be used, or need_ir and it offers no interrupt remapping;
 * then the monitor interposes instead. */
bool vtd_init(const struct acpi_info *a, bool need_ir, const char **why);
bool vtd_active(void);
/* Interrupt remapping is on (vtd_init turned it on). */
bool vtd_ir_active(void);
/* Entry `index` (< 256: the monitor's vector) delivers `vector` to local
 * APIC apic_id, fixed, edge or level; only source sid may use it. The
 * entry of an I/O APIC input names the I/O APIC (MADT id) instead: its
 * source id from the DMAR, unchecked if the DMAR does not name it.
 * False when remapping is off or index is out of range. */
bool vtd_irte_set(uint16_t index, uint8_t vector, uint32_t apic_id, bool level, uint16_t sid);
bool vtd_irte_set_ioapic(uint16_t index, uint8_t vector, uint32_t apic_id, uint8_t ioapic_id);
/* The MSI address (low half; the high half and data are 0) that names
 * entry index in remappable format. */
uint32_t vtd_msi_addr(uint16_t index);
/* The interrupt canary: entry 0 (no vector of the monitor's) is present
 * but names a source no device is (ff:1f.7), and IR_CANARY_VECTOR
 * (apic.h). A forged request naming it must fail source verification; if
 * the unit ever delivers it, the monitor says so. */
void vtd_ir_canary_fired(void);
uint64_t vtd_ir_canary_hits(void);
/* One console line on it. */
void vtd_ir_canary_describe(void);
/* Give bus:dev.fn its own VT-d domain mapping exactly these windows
 * (read and write). False (and *why) when tables cannot be made. */
bool vtd_attach(uint8_t bus, uint8_t dev, uint8_t fn, uint16_t did,
                const struct dom_window *w, unsigned n, const char **why);
/* Map (on) or unmap [iova, iova + len) -> pa for an attached bus:dev.fn,
 * read and write; false when it is not attached, the range is past
 * vtd_iova_limit, or tables cannot be made. */
bool vtd_map(uint8_t bus, uint8_t dev, uint8_t fn, uint64_t iova, uint64_t pa, uint64_t len,
             bool on);
/* The first IOVA the unit's tables cannot reach (3 levels: 512 GiB). */
uint64_t vtd_iova_limit(void);
/* Block bus:dev.fn again (its context entry cleared, caches invalidated). */
void vtd_detach(uint8_t bus, uint8_t dev, uint8_t fn);
/* Read and clear the unit's fault records, fn for each (source id
 * bus << 8 | dev << 3 | fn, the faulting address, or the IRT index for
 * an interrupt request, the reason code, whether it was a write).
 * Returns how many. */
typedef void (*vtd_fault_fn)(uint16_t sid, uint64_t addr, uint8_t reason, bool write);
unsigned vtd_poll_faults(vtd_fault_fn fn);
/* What a fault reason code means, and whether it is an interrupt
 * request's (0x20-0x26) rather than a DMA's. */
const char *vtd_fault_reason(uint8_t reason);
bool vtd_fault_is_interrupt(uint8_t reason);
/* One console line: the unit, its address width, faults seen. */
void vtd_describe(void);

#endif /* BARE_VTD_H */
