/* Multiboot information (contract in multiboot.h). Layouts: the
 * Multiboot 0.6.96 and Multiboot2 1.6 specifications. */
#include <stddef.h>
#include "gk/kstring.h"
#include "multiboot.h"

#define MB1_INFO_CMDLINE 0x004u
#define MB1_INFO_MODS    0x008u
#define MB1_INFO_MMAP    0x040u
#define MB2_TAG_MODULE   3u
#define MB2_TAG_END      0u
#define MB2_TAG_CMDLINE  1u
#define MB2_TAG_MMAP     6u
#define MB2_TAG_RSDP_V1  14u
#define MB2_TAG_RSDP_V2  15u

static uint32_t rd32(uint64_t a) { uint32_t v; memcpy(&v, (const void *)(uintptr_t)a, 4); return v; }
static uint64_t rd64(uint64_t a) { uint64_t v; memcpy(&v, (const void *)(uintptr_t)a, 8); return v; }

static void add_range(struct boot_desc *d, uint64_t base, uint64_t len, uint32_t type)
{
    if (type == 1)
        d->usable_bytes += len;
    if (d->n_ram < BOOT_RANGES_MAX)
        d->ram[d->n_ram++] = (struct boot_range){ .base = base, .len = len, .type = type };
}

static void copy_str(char out[BOOT_CMDLINE_MAX], uint64_t s, size_t max)
{
    size_t n = 0;
    const char *p = (const char *)(uintptr_t)s;
    while (s && n + 1 < BOOT_CMDLINE_MAX && n < max && p[n])
        n++;
    memcpy(out, p, n);
    out[n] = '\0';
}

static void add_module(struct boot_desc *d, uint64_t start, uint64_t end, uint64_t str, size_t max)
{
    if (d->n_modules < BOOT_MODULES_MAX && start < end) {
        struct boot_module *m = &d->module[d->n_modules];
        m->start = start;
        m->end = end;
        copy_str(m->cmdline, str, max);
    }
    d->n_modules++;
}

static void parse_mb1(uint64_t info, struct boot_desc *d)
{
    uint32_t flags = rd32(info);
    d->loader = "multiboot1";
    if ((flags & MB1_INFO_CMDLINE) && rd32(info + 16))
        copy_str(d->cmdline, rd32(info + 16), BOOT_CMDLINE_MAX);
    if (flags & MB1_INFO_MODS)          /* mods_count, mods_addr; 16 bytes each */
        for (uint32_t i = 0, n = rd32(info + 20); i < n && i < 64; i++) {
            uint64_t m = rd32(info + 24) + 16ull * i;
            add_module(d, rd32(m), rd32(m + 4), rd32(m + 8), BOOT_CMDLINE_MAX);
        }
    if (!(flags & MB1_INFO_MMAP))
        return;
    uint64_t at = rd32(info + 48), end = at + rd32(info + 44);
    while (at + 24 <= end) {            /* entry: size (not counting itself), base, len, type */
        uint32_t size = rd32(at);
        add_range(d, rd64(at + 4), rd64(at + 12), rd32(at + 20));
        if (size < 20)
            break;
        at += (uint64_t)size + 4u;
    }
}

static void parse_mb2(uint64_t info, struct boot_desc *d)
{
    uint32_t total = rd32(info);
    uint64_t at = info + 8, end = info + total;
    d->loader = "multiboot2";
    while (at + 8 <= end) {
        uint32_t type = rd32(at), size = rd32(at + 4);
        if (type == MB2_TAG_END || size < 8 || at + size > end)
            break;
        if (type == MB2_TAG_CMDLINE)
            copy_str(d->cmdline, at + 8, size - 8u);
        if (type == MB2_TAG_MMAP && size >= 16) {
            uint32_t esize = rd32(at + 8);
            for (uint64_t e = at + 16; esize >= 24 && e + esize <= at + size; e += esize)
                add_range(d, rd64(e), rd64(e + 8), rd32(e + 16));
        }
        if (type == MB2_TAG_MODULE && size >= 16)
            add_module(d, rd32(at + 8), rd32(at + 12), at + 16, size - 16u);
        if ((type == MB2_TAG_RSDP_V1 || type == MB2_TAG_RSDP_V2) && !d->acpi_rsdp)
            d->acpi_rsdp = at + 8;
        at += ((uint64_t)size + 7u) & ~7ull;
    }
}

bool boot_desc_parse(uint32_t magic, uint64_t info, struct boot_desc *d)
{
    memset(d, 0, sizeof *d);
    d->loader = "unknown";
    if (magic == MB1_BOOT_MAGIC && info)
        parse_mb1(info, d);
    else if (magic == MB2_BOOT_MAGIC && info)
        parse_mb2(info, d);
    else
        return false;
    return true;
}
