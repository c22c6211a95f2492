/* ACPI tables (contract in acpi.h). Layouts: ACPI 6.4 §5.2. */
#include <stddef.h>
#include "acpi.h"
#include "gk/kstring.h"

#define SDT_HEADER 36u
#define TABLE_MAX  (1u << 20)           /* larger is not a table we trust */

/* Physical (identity-mapped) memory at addr. The empty asm keeps the
 * compiler from treating a constant address as a zero-length object. */
static const uint8_t *at(uint64_t addr)
{
    uintptr_t p = (uintptr_t)addr;
    __asm__("" : "+r"(p));
    return (const uint8_t *)p;
}
static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p) { return (uint32_t)rd16(p) | (uint32_t)rd16(p + 2) << 16; }
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

static bool sum_ok(const uint8_t *p, uint32_t len)
{
    uint8_t s = 0;
    for (uint32_t i = 0; i < len; i++)
        s = (uint8_t)(s + p[i]);
    return s == 0;
}

/* A valid RSDP at p? (20 bytes checked; 36 with the extended part.) */
static bool rsdp_ok(const uint8_t *p)
{
    if (memcmp(p, "RSD PTR ", 8) != 0 || !sum_ok(p, 20))
        return false;
    return p[15] < 2 || sum_ok(p, rd32(p + 20) < 36 || rd32(p + 20) > 64 ? 36 : rd32(p + 20));
}

static const uint8_t *scan(uint64_t from, uint64_t to)
{
    for (uint64_t a = from; a + 36 <= to; a += 16)
        if (rsdp_ok(at(a)))
            return at(a);
    return NULL;
}

/* The table at addr if its header, length and checksum hold. */
static const uint8_t *table(uint64_t addr, struct acpi_info *out)
{
    if (addr == 0 || addr >= (4ull << 30))
        return NULL;                    /* outside the identity map */
    const uint8_t *t = at(addr);
    uint32_t len = rd32(t + 4);
    if (len < SDT_HEADER || len > TABLE_MAX || !sum_ok(t, len)) {
        out->bad_tables++;
        return NULL;
    }
    return t;
}

static void read_madt(const uint8_t *t, struct acpi_info *out)
{
    uint32_t len = rd32(t + 4);
    out->lapic_base = rd32(t + SDT_HEADER);
    for (uint32_t off = SDT_HEADER + 8; off + 2 <= len;) {
        uint8_t type = t[off], elen = t[off + 1];
        if (elen < 2 || off + elen > len)
            break;
        const uint8_t *e = t + off;
        if (type == 0 && elen >= 8 && (rd32(e + 4) & 1u))         /* local APIC, enabled */
            out->cpus++;
        else if (type == 9 && elen >= 16 && (rd32(e + 8) & 1u))   /* local x2APIC, enabled */
            out->cpus++;
        else if (type == 1 && elen >= 12 && out->n_ioapics < ACPI_IOAPICS_MAX)
            out->ioapic[out->n_ioapics++] = (struct acpi_ioapic){
                .id = e[2], .addr = rd32(e + 4), .gsi_base = rd32(e + 8) };
        else if (type == 5 && elen >= 12)                         /* 64-bit LAPIC override */
            out->lapic_base = rd64(e + 4);
        off += elen;
    }
}

static void read_mcfg(const uint8_t *t, struct acpi_info *out)
{
    uint32_t len = rd32(t + 4);
    for (uint32_t off = SDT_HEADER + 8; off + 16 <= len && out->n_ecam < ACPI_ECAM_MAX; off += 16)
        out->ecam[out->n_ecam++] = (struct acpi_ecam){
            .base = rd64(t + off), .segment = rd16(t + off + 8),
            .bus_start = t[off + 10], .bus_end = t[off + 11] };
}

/* A DRHD's device scopes on a one-step path (a root bus device: QEMU
 * lists each): endpoints (type 1), bridges whose whole hierarchy the unit
 * covers (type 2: PCI sub-hierarchy; which buses are below one is the
 * bridge's own configuration, read by the caller) and I/O APICs (type 3). */
static void read_scopes(const uint8_t *t, uint32_t at, uint32_t end, struct acpi_info *out)
{
    while (at + 8 <= end) {
        uint8_t type = t[at], n = t[at + 1];
        if (n < 6 || at + n > end)
            return;
        uint16_t sid = (uint16_t)(t[at + 5] << 8 | (t[at + 6] & 31) << 3 | (t[at + 7] & 7));
        if (type == 1 && n == 8 && out->n_drhd_dev < ACPI_SCOPES_MAX)
            out->drhd_dev[out->n_drhd_dev++] = sid;
        else if (type == 2 && n == 8 && out->n_drhd_bridge < ACPI_SCOPES_MAX)
            out->drhd_bridge[out->n_drhd_bridge++] = sid;
        else if (type == 3 && n == 8 && out->n_drhd_ioapic < ACPI_IOAPICS_MAX) {
            out->drhd_ioapic[out->n_drhd_ioapic].id = t[at + 4];
            out->drhd_ioapic[out->n_drhd_ioapic++].sid = sid;
        }
        at += n;
    }
}

/* DMAR: the host address width, then remapping structures (DRHD, type 0,
 * is a remapping unit: INCLUDE_PCI_ALL, or the devices its scopes list). */
static void read_dmar(const uint8_t *t, struct acpi_info *out)
{
    out->dmar = true;
    uint32_t len = rd32(t + 4);
    out->dmar_haw = t[36];
    for (uint32_t at = 48; at + 4 <= len;) {
        uint16_t type = rd16(t + at), n = rd16(t + at + 2);
        if (n < 4 || at + n > len)
            break;
        if (type == 0 && n >= 16 && rd16(t + at + 6) == 0 && out->dmar_units++ == 0) {
            out->drhd_base = rd64(t + at + 8);
            out->drhd_all = t[at + 4] & 1u;
            read_scopes(t, at + 16, at + n, out);
        }
        at += n;
    }
}

bool acpi_dmar_ioapic_sid(const struct acpi_info *a, uint8_t id, uint16_t *sid)
{
    for (uint32_t i = 0; i < a->n_drhd_ioapic; i++)
        if (a->drhd_ioapic[i].id == id) {
            *sid = a->drhd_ioapic[i].sid;
            return true;
        }
    return false;
}

bool acpi_dmar_covers(const struct acpi_info *a, uint8_t bus, uint8_t dev, uint8_t fn,
                      acpi_bridge_buses_fn buses)
{
    if (a->drhd_all)
        return true;
    uint16_t sid = (uint16_t)(bus << 8 | (dev & 31) << 3 | (fn & 7));
    for (uint32_t i = 0; i < a->n_drhd_dev; i++)
        if (a->drhd_dev[i] == sid)
            return true;
    for (uint32_t i = 0; i < a->n_drhd_bridge && buses; i++) {
        uint8_t secondary, subordinate;
        if (buses(a->drhd_bridge[i], &secondary, &subordinate) && secondary &&
            bus >= secondary && bus <= subordinate)
            return true;
    }
    return false;
}

void acpi_read(uint64_t rsdp, struct acpi_info *out)
{
    memset(out, 0, sizeof *out);
    const uint8_t *r = rsdp && rsdp_ok(at(rsdp)) ? at(rsdp) : NULL;
    out->rsdp_from = "the loader";
    if (!r) {
        uint64_t ebda = (uint64_t)rd16(at(0x40E)) << 4;
        r = ebda >= 0x80000 && ebda < 0xA0000 ? scan(ebda, ebda + 1024) : NULL;
        if (!r)
            r = scan(0xE0000, 0x100000);
        out->rsdp_from = "a BIOS area scan";
    }
    if (!r)
        return;
    out->found = true;
    out->revision = r[15];
    bool x = r[15] >= 2 && rd64(r + 24) != 0;
    const uint8_t *root = table(x ? rd64(r + 24) : rd32(r + 16), out);
    if (!root)
        return;
    uint32_t esz = x ? 8u : 4u, n = (rd32(root + 4) - SDT_HEADER) / esz;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *e = root + SDT_HEADER + i * esz;
        const uint8_t *t = table(x ? rd64(e) : rd32(e), out);
        if (!t)
            continue;
        if (out->n_tables < ACPI_TABLES_MAX) {
            memcpy(out->tables[out->n_tables], t, 4);
            out->tables[out->n_tables++][4] = '\0';
        }
        if (memcmp(t, "APIC", 4) == 0)
            read_madt(t, out);
        else if (memcmp(t, "MCFG", 4) == 0)
            read_mcfg(t, out);
        else if (memcmp(t, "DMAR", 4) == 0)
            read_dmar(t, out);
    }
}
