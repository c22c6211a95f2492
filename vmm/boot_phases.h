/*
 * boot_phases — where a domain's bring-up time went. moat stamps the steps
 * it does itself (VM, DMA windows, image load, vCPU, starting its thread,
 * the READY exit); the guest stores its TSC at its own steps in the
 * platform page (moat/platform_abi.h, enum moat_boot_mark). This module
 * turns both into durations per phase. Pure, no locks.
 *
 * The guest's marks are hostile: a mark counts only if the kernel-entry
 * mark is set, it is not earlier than the mark before it and it does not
 * land after READY. A phase whose closing mark is missing or refused is
 * "unknown" and its time goes to the next phase that is known; the total
 * is always READY - start.
 */
#ifndef MOAT_BOOT_PHASES_H
#define MOAT_BOOT_PHASES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "moat/platform_abi.h"

enum boot_phase {
    BOOT_PH_VM,         /* KVM VM and its RAM memslot */
    BOOT_PH_WINDOWS,    /* DMA windows granted by the broker and mapped */
    BOOT_PH_IMAGE,      /* kernel image load, its page tables */
    BOOT_PH_VCPU,       /* irqchip, vCPU, CPUID, boot registers */
    BOOT_PH_THREAD,     /* built -> the vCPU's first KVM_RUN */
    BOOT_PH_KERNEL,     /* guest kernel set-up, to the driver's main */
    BOOT_PH_DEVICE,     /* driver: find, reset and identify the device */
    BOOT_PH_QUEUES,     /* driver: device queues and interrupts */
    BOOT_PH_CAPS,       /* driver: cap registration with moat */
    BOOT_PH_ANNOUNCE,   /* the READY exit reaching moat */
    BOOT_PHASES,
};

/* What moat stamped (CLOCK_MONOTONIC ns) and the guest's marks (TSC). */
struct boot_stamps {
    uint64_t start_ns, vm_ns, windows_ns, image_ns, vcpu_ns, first_run_ns, ready_ns;
    uint64_t tsc_khz;
    uint64_t guest_tsc[MOAT_BOOT_MARKS];
};

struct boot_phases {
    uint64_t ns[BOOT_PHASES];
    bool known[BOOT_PHASES];
    uint64_t total_ns;
    uint32_t marks_refused;     /* guest marks set but out of order or late */
};

void boot_phases_compute(const struct boot_stamps *s, struct boot_phases *out);
/* "vm", "image", ... */
const char *boot_phase_name(enum boot_phase p);
/* "vm 0.21, windows 0.10, ..., announce 0.02" in ms, "-" for unknown
 * phases; always terminated. */
void boot_phases_format(const struct boot_phases *p, char *buf, size_t len);

#endif
