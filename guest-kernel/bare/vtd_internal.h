/* vtd_internal.h — what vtd.c (the unit, DMA remapping, invalidation,
 * faults) and vtd_ir.c (the interrupt remapping table) share. */
#ifndef BARE_VTD_INTERNAL_H
#define BARE_VTD_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#define VTD_IRT_ENTRIES 256u            /* one per monitor vector */

/* Invalidate the interrupt entry cache (queued invalidation): false when
 * the unit did not complete it. */
bool vtd_invalidate_iec(void);
/* Make the table and turn remapping on (vtd_init, after queued
 * invalidation is on); false and *why when the unit refuses. */
bool vtd_ir_init(const char **why);
/* The DMAR's source id for I/O APIC `id` (MADT id). */
bool vtd_ioapic_sid(uint8_t id, uint16_t *sid);
/* Point the unit at the table irt (VTD_IRT_ENTRIES entries, zeroed = not present)
 * and turn remapping on with compatibility-format requests blocked. */
bool vtd_ir_enable(uint64_t irt, const char **why);

#endif /* BARE_VTD_INTERNAL_H */
