/*
 * multiboot.h — what the bare kernel takes from its loader: multiboot1
 * (QEMU's -kernel, iPXE under SeaBIOS) or multiboot2 (GRUB), reduced to
 * one description. The information is hostile only in the sense that a
 * loader may omit it: every length is bounded before use.
 */
#ifndef BARE_MULTIBOOT_H
#define BARE_MULTIBOOT_H

#include <stdbool.h>
#include <stdint.h>

#define MB1_BOOT_MAGIC 0x2BADB002u
#define MB2_BOOT_MAGIC 0x36D76289u
#define BOOT_RANGES_MAX 32u
#define BOOT_CMDLINE_MAX 256u

struct boot_range {
    uint64_t base, len;
    uint32_t type;                      /* 1 = usable RAM (both protocols) */
};

#define BOOT_MODULES_MAX 8u

/* A module the loader placed in memory (GRUB's module2, QEMU's -initrd
 * list, iPXE's module): a driver domain image and its words. */
struct boot_module {
    uint64_t start, end;                /* physical, end exclusive */
    char cmdline[BOOT_CMDLINE_MAX];
};

struct boot_desc {
    const char *loader;                 /* "multiboot1", "multiboot2" or "unknown" */
    char cmdline[BOOT_CMDLINE_MAX];
    struct boot_range ram[BOOT_RANGES_MAX];
    uint32_t n_ram;
    uint64_t usable_bytes;
    uint64_t acpi_rsdp;                 /* the RSDP the loader copied (MB2 tags 14/15), or 0 */
    struct boot_module module[BOOT_MODULES_MAX];
    uint32_t n_modules;                 /* may exceed BOOT_MODULES_MAX: the rest are ignored */
};

/* Fill d from the loader's magic and information pointer (identity
 * mapped). False when the magic is neither protocol's. */
bool boot_desc_parse(uint32_t magic, uint64_t info, struct boot_desc *d);

#endif /* BARE_MULTIBOOT_H */
