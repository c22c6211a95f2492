/*
 * gk/lapic.h — local APIC in x2APIC (MSR) mode. On these hosts the xAPIC
 * MMIO page triple-faults the guest, so hosted domains require x2APIC and
 * lapic_init() panics with a clear reason when CPUID does not offer it.
 */
#ifndef GK_LAPIC_H
#define GK_LAPIC_H

#include <stdint.h>

void lapic_init(void);
void lapic_eoi(void);
uint32_t lapic_id(void);
/* Program the LVT timer for TSC-deadline mode on vector. */
void lapic_timer_deadline_mode(uint32_t vector);
void lapic_timer_arm(uint64_t tsc_deadline);

#endif /* GK_LAPIC_H */
