/*
 * boot_setup.h — everything the VMM writes into a fresh domain before its
 * first instruction: boot GDT and identity page tables, long-mode segment
 * and control registers, the boot info page and the platform page header.
 * Pure functions over a RAM buffer (unit-tested without KVM).
 */
#ifndef MOAT_BOOT_SETUP_H
#define MOAT_BOOT_SETUP_H

#include <stdbool.h>
#include <stdint.h>
#include <linux/kvm.h>
#include "moat/boot_info.h"

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
};

/* Boot GDT + 1 GiB identity map (2 MiB pages). ram_size >= MOAT_RAM_MIN. */
void boot_write_tables(uint8_t *ram, uint64_t ram_size);
/* Fill the long-mode part of sregs (CR0/3/4, EFER, CS/DS.., GDT). */
void boot_long_mode_sregs(struct kvm_sregs *s);
/* Write boot info and the platform page header. Returns false when name,
 * cmdline, windows or devices do not fit (the caller validated them; this
 * is a last check). */
bool boot_write_info(uint8_t *ram, uint64_t ram_size, const struct boot_params *p);

#endif /* MOAT_BOOT_SETUP_H */
