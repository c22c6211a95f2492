/*
 * apic.h — interrupts in the kernel booted bare: one local-APIC layer
 * over both access modes (x2APIC through MSRs when CPUID offers it, else
 * xAPIC through its MMIO page, uncached), the I/O APICs the MADT lists
 * (every input masked until a driver wants one), the legacy 8259 PICs
 * moved off the exception vectors and masked, and the local APIC timer
 * ticking on APIC_TIMER_VECTOR. The task priority keeps every vector
 * below 32 from being delivered as an interrupt.
 */
#ifndef BARE_APIC_H
#define BARE_APIC_H

#include <stdbool.h>
#include <stdint.h>
#include "acpi.h"

#define APIC_TIMER_VECTOR    32u
#define APIC_SPURIOUS_VECTOR 255u
#define PIC_VECTOR_BASE      0xE0u      /* the masked legacy PICs: 0xE0-0xEF */
#define IR_CANARY_VECTOR     0xF0u      /* vtd.h's interrupt canary */
#define APIC_TPR_BLOCK_EXCEPTION_VECTORS 0x10u  /* vectors 0-31 never delivered */

struct apic_state {
    bool x2apic;
    uint64_t base;              /* xAPIC MMIO base */
    uint32_t id, version, max_lvt;
    uint32_t ioapic_inputs[ACPI_IOAPICS_MAX];   /* redirection entries per I/O APIC */
};

/* Enable the local APIC (x2APIC if offered), mask every I/O APIC input,
 * start the timer; interrupts stay off until the caller sets IF. */
void apic_init(const struct acpi_info *acpi, struct apic_state *out);
/* End of interrupt (from an interrupt handler). */
void apic_eoi(void);
/* This CPU's local APIC id (apic_init's out->id). */
uint32_t apic_local_id(void);
/* Route I/O APIC input gsi (a PCI INTx line: level, active high as
 * QEMU's and the PC's PCI routing give it) to vector on local APIC dest,
 * unmasked; false when no I/O APIC has that input. */
bool ioapic_route_level(uint32_t gsi, uint8_t vector, uint32_t dest);
/* The same through interrupt remapping: the input names entry `handle`
 * of the remapping table (vtd.h), which holds the destination; vector
 * must be the entry's. */
bool ioapic_route_remapped(uint32_t gsi, uint8_t vector, uint16_t handle);
/* The MADT id of the I/O APIC that has input gsi; false when none. */
bool ioapic_id_of(uint32_t gsi, uint8_t *id);
void ioapic_mask(uint32_t gsi, bool masked);
/* Timer interrupts taken so far. */
uint64_t apic_ticks(void);
/* Called by the trap entry for the timer vector. */
void apic_timer_tick(void);

#endif /* BARE_APIC_H */
