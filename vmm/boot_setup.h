/*
 * boot_setup.h — everything the VMM writes into a fresh domain before its
 * first instruction: boot GDT, the kernel's page tables (moat/kernel_map.h:
 * built here because ring 0 is emulated on the hosted targets), long-mode
 * segment and control registers, the boot info page and the platform page
 * header.
 * Pure functions over a RAM buffer (unit-tested without KVM).
 */
#ifndef MOAT_BOOT_SETUP_H
#define MOAT_BOOT_SETUP_H

#include <stdbool.h>
#include <stdint.h>
#include <linux/kvm.h>
#include "moat/boot_info.h"
#include "moat/kernel_map.h"

struct boot_params {
    const char *name;
    const char *cmdline;
    uint32_t domain_id;
    uint64_t tsc_khz;
    uint32_t flags;
    uint64_t ecam_base;                         /* 0 = no PCI */
    const struct moat_window_info *windows;
    uint32_t n_windows;                         /* <= MOAT_WINDOWS_MAX */
    const struct moat_device_info *devices;
    uint32_t n_devices;                         /* <= MOAT_DEVICES_MAX */
    uint64_t kernel_map, ram_free;              /* boot_write_kernel_map's; 0 = none */
};

/* The boot GDT (64-bit code, data). */
void boot_write_gdt(uint8_t *ram);
/* The kernel map for image in the pages right after it (at most
 * KMAP_PAGES_MAX); *cr3 is its PML4, *ram_free the first page after the
 * tables. False + err if the image or a window breaks the map's rules. */
bool boot_write_kernel_map(uint8_t *ram, uint64_t ram_size, const struct kmap_image *image,
                           const struct moat_window_info *windows, uint32_t n_windows,
                           bool gb_pages, uint64_t *cr3, uint64_t *ram_free,
                           char *err, size_t errlen);
/* Fill the long-mode part of sregs (CR0/3/4 with WP, EFER with NXE, CS/DS..,
 * GDT) entering on page tables cr3. */
void boot_long_mode_sregs(struct kvm_sregs *s, uint64_t cr3);
/* Write boot info and the platform page header. Returns false when name,
 * cmdline, windows or devices do not fit (the caller validated them; this
 * is a last check). */
bool boot_write_info(uint8_t *ram, uint64_t ram_size, const struct boot_params *p);

#endif /* MOAT_BOOT_SETUP_H */
