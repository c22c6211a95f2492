/*
 * acpi.h — what the kernel booted bare reads from the firmware's ACPI
 * tables: the RSDP (from the loader, else by scanning the BIOS areas),
 * the XSDT (or RSDT), the MADT (local APICs, I/O APICs, the local APIC
 * base), the MCFG (ECAM windows for PCI) and the DMAR (VT-d): whether it
 * is there, the remapping unit, the devices and I/O APICs it covers. Tables are firmware input: every checksum and length is
 * checked, and a table that fails is reported and skipped.
 */
#ifndef BARE_ACPI_H
#define BARE_ACPI_H

#include <stdbool.h>
#include <stdint.h>

#define ACPI_IOAPICS_MAX 8u
#define ACPI_ECAM_MAX    4u
#define ACPI_TABLES_MAX  32u
#define ACPI_SCOPES_MAX  32u

struct acpi_ioapic { uint8_t id; uint32_t addr, gsi_base; };
struct acpi_ecam { uint64_t base; uint16_t segment; uint8_t bus_start, bus_end; };

struct acpi_info {
    bool found;
    const char *rsdp_from;              /* "the loader" or "a BIOS area scan" */
    uint8_t revision;                   /* RSDP revision: 0 = ACPI 1.0 (RSDT) */
    char tables[ACPI_TABLES_MAX][5];    /* signatures seen in the XSDT/RSDT */
    uint32_t n_tables, bad_tables;      /* bad: checksum or length refused */
    uint64_t lapic_base;
    uint32_t cpus;                      /* enabled local APICs / x2APICs */
    struct acpi_ioapic ioapic[ACPI_IOAPICS_MAX];
    uint32_t n_ioapics;
    struct acpi_ecam ecam[ACPI_ECAM_MAX];
    uint32_t n_ecam;
    bool dmar;                          /* a VT-d DMAR table is present */
    uint8_t dmar_haw;                   /* host address width - 1 */
    uint32_t dmar_units;                /* remapping units (DRHDs) on segment 0 */
    uint64_t drhd_base;                 /* the first one's registers, 0: none */
    bool drhd_all;                      /* it covers every device (INCLUDE_PCI_ALL) */
    uint16_t drhd_dev[ACPI_SCOPES_MAX]; /* else these endpoints: bus << 8 | dev << 3 | fn */
    uint32_t n_drhd_dev;
    uint16_t drhd_bridge[ACPI_SCOPES_MAX]; /* and the hierarchies below these bridges */
    uint32_t n_drhd_bridge;
    /* I/O APICs under the unit (scope type 3): MADT id and source id. */
    struct { uint8_t id; uint16_t sid; } drhd_ioapic[ACPI_IOAPICS_MAX];
    uint32_t n_drhd_ioapic;
};

/* The source id the unit sees for the I/O APIC with MADT id `id`; false
 * when the DMAR does not name it. */
bool acpi_dmar_ioapic_sid(const struct acpi_info *a, uint8_t id, uint16_t *sid);
/* The buses below the bridge at source id sid (its configuration's
 * secondary and subordinate bus numbers); false when it is not a bridge. */
typedef bool (*acpi_bridge_buses_fn)(uint16_t sid, uint8_t *secondary, uint8_t *subordinate);
/* Does the DMAR's unit cover bus:dev.fn: every device, one of its
 * endpoints, or a device below one of its bridges (buses says which
 * buses those are; NULL: bridges cover nothing)? */
bool acpi_dmar_covers(const struct acpi_info *a, uint8_t bus, uint8_t dev, uint8_t fn,
                      acpi_bridge_buses_fn buses);
/* Read the tables; rsdp = the copy the loader gave (0: scan). */
void acpi_read(uint64_t rsdp, struct acpi_info *out);

#endif /* BARE_ACPI_H */
