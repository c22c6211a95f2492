/*
 * moat/boot_info.h — what the VMM (or the bare-mode loader) tells the guest
 * kernel at entry. The guest kernel receives its guest-physical address in
 * RDI and must check magic, version and size before using any field; every
 * field is then trusted (the VMM is the more privileged side).
 *
 * Fixed-size, little-endian, no pointers: the same layout is written by the
 * 64-bit VMM and read by the freestanding kernel.
 */
#ifndef MOAT_BOOT_INFO_H
#define MOAT_BOOT_INFO_H

#include <stdint.h>

#define MOAT_BOOT_MAGIC    0x544f4f42544f4f4dull /* "MOOTBOOT" */
#define MOAT_BOOT_VERSION  3u

#define MOAT_NAME_MAX      32u   /* domain name, NUL-terminated */
#define MOAT_CMDLINE_MAX   256u  /* domain arguments, NUL-terminated */
#define MOAT_MEM_REGIONS_MAX 8u
#define MOAT_WINDOWS_MAX     8u  /* DMA windows handed to one domain */
#define MOAT_WINDOW_SIZE_MAX (256ull << 20)
#define MOAT_DEVICES_MAX     8u  /* PCI functions assigned to one domain */
#define MOAT_DEVNAME_MAX     16u

enum moat_platform_kind {
    MOAT_PLATFORM_HOSTED = 1,   /* a KVM VM under the moat VMM */
    MOAT_PLATFORM_BARE   = 2,   /* booted on (virtual) hardware */
};

enum moat_mem_kind {
    MOAT_MEM_RAM       = 1,     /* private RAM, usable by the kernel */
    MOAT_MEM_RESERVED  = 2,     /* boot info, platform page, boot tables */
};

struct moat_mem_region {
    uint64_t base;
    uint64_t size;
    uint32_t kind;              /* enum moat_mem_kind */
    uint32_t reserved;
};

/* A DMA window: IOVA == guest-physical address; the guest maps it as
 * ordinary write-back memory. Both fields are 2 MiB aligned. Every window
 * a domain is handed reads as zeros at boot (fresh or scrubbed memory). */
struct moat_window_info {
    uint64_t iova;
    uint64_t size;
    uint32_t dirs;              /* bit 0: device reads, bit 1: device writes */
    uint32_t reserved;
};

enum moat_bar_kind {
    MOAT_BAR_NONE  = 0,
    MOAT_BAR_MEM32 = 1,
    MOAT_BAR_MEM64 = 2,         /* occupies this BAR and the next */
    MOAT_BAR_IO    = 3,
};

struct moat_bar_info {          /* where the platform placed a BAR */
    uint64_t base;
    uint64_t size;
    uint32_t kind;              /* enum moat_bar_kind */
    uint32_t reserved;
};

/* An assigned PCI function, as ACPI (MCFG, _PRT) would describe it. The
 * guest reads everything else from its configuration space. */
struct moat_device_info {
    uint8_t bus, dev, fn, reserved0;
    uint16_t vendor, device;
    uint32_t intx_gsi;          /* IOAPIC input of INTA#, MOAT_NO_GSI if none */
    uint32_t reserved1;
    char name[MOAT_DEVNAME_MAX];
    struct moat_bar_info bar[6];
};
#define MOAT_NO_GSI 0xFFFFFFFFu

struct moat_boot_info {
    uint64_t magic;             /* MOAT_BOOT_MAGIC */
    uint32_t version;           /* MOAT_BOOT_VERSION */
    uint32_t size;              /* sizeof(struct moat_boot_info) */
    uint32_t platform;          /* enum moat_platform_kind */
    uint32_t flags;             /* MOAT_BOOT_F_* */
    uint64_t tsc_khz;           /* TSC rate; 0 = calibrate */
    uint64_t ram_size;          /* bytes of private RAM from GPA 0 */
    uint64_t platform_page;     /* GPA of struct moat_platform_page */
    uint64_t ecam_base;         /* PCI ECAM GPA, 0 = no PCI */
    uint32_t n_mem;
    uint32_t domain_id;         /* small integer, unique per moat run */
    struct moat_mem_region mem[MOAT_MEM_REGIONS_MAX];
    char name[MOAT_NAME_MAX];
    char cmdline[MOAT_CMDLINE_MAX];
    uint32_t n_windows;
    uint32_t n_devices;
    struct moat_window_info window[MOAT_WINDOWS_MAX];
    struct moat_device_info device[MOAT_DEVICES_MAX];
    uint64_t kernel_map;        /* MOAT_BOOT_F_KERNEL_MAP: the PML4 in CR3 */
    uint64_t ram_free;          /* MOAT_BOOT_F_KERNEL_MAP: first page after the
                                   image and the loader's page tables */
};

/* Every byte of RAM outside the loaded image reads as zero at entry, so the
 * kernel need not zero memory it has never handed out. */
#define MOAT_BOOT_F_RAM_ZEROED    (1u << 1)
/* The loader built the kernel's page tables (moat/kernel_map.h), entered
 * with CR3 = kernel_map, EFER.NXE and CR0.WP set; pages from the image end
 * to ram_free hold them. Without it the kernel builds its own. */
#define MOAT_BOOT_F_KERNEL_MAP    (1u << 2)

_Static_assert(sizeof(struct moat_window_info) == 24, "window info layout is ABI");
_Static_assert(sizeof(struct moat_device_info) == 32 + 6 * 24, "device info layout is ABI");
_Static_assert(sizeof(struct moat_boot_info) ==
               64 + 8 * 24 + 32 + 256 + 8 + 8 * 24 + 8 * 176 + 16, "boot info layout is ABI");
_Static_assert(sizeof(struct moat_boot_info) <= 4096, "boot info fits its page");

#endif /* MOAT_BOOT_INFO_H */
