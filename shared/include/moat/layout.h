/*
 * moat/layout.h — the guest-physical memory map of a hosted domain.
 *
 * Contract between the VMM (which builds the domain) and the guest kernel
 * (which must find everything here or in boot info, never by guessing).
 *
 *   0x0000_0000  null guard page (never mapped by the guest kernel)
 *   0x0000_1000  boot info page (struct moat_boot_info), written by the VMM
 *   0x0000_2000  platform page (struct moat_platform_page): heartbeat, crash
 *   0x0000_7000  VMM boot GDT
 *   0x0010_0000  kernel image (ELF PT_LOAD segments), then the kernel's page
 *                tables (moat/kernel_map.h, built by the VMM), then kernel heap
 *   ... up to ram_size: private RAM, never DMA-reachable
 *   0xC000_0000  PCI MMIO hole (BARs), up to the ECAM window
 *   0xE000_0000  PCI ECAM window (256 MiB)
 *   0xFEC0_0000  IOAPIC (in-kernel KVM model; INTx of assigned devices)
 *   0x1_0000_0000 and up: DMA windows (IOVA == guest-physical)
 *   0x80_0000_0000 and up: capability-session rings
 */
#ifndef MOAT_LAYOUT_H
#define MOAT_LAYOUT_H

#define MOAT_GPA_BOOT_INFO      0x1000ull
#define MOAT_GPA_PLATFORM_PAGE  0x2000ull
#define MOAT_GPA_BOOT_GDT       0x7000ull
#define MOAT_GPA_KERNEL_BASE    0x100000ull

#define MOAT_RAM_MIN            (4ull << 20)   /* smallest private RAM   */
#define MOAT_RAM_MAX            (1ull << 30)   /* boot map covers 1 GiB  */

#define MOAT_GPA_MMIO_HOLE      0xC0000000ull
#define MOAT_GPA_ECAM           0xE0000000ull
#define MOAT_ECAM_SIZE          0x10000000ull
#define MOAT_GPA_IOAPIC         0xFEC00000ull
#define MOAT_GPA_DMA_BASE       0x100000000ull
#define MOAT_GPA_SESSION_BASE   0x8000000000ull

#define MOAT_PAGE_SIZE          4096ull

#endif /* MOAT_LAYOUT_H */
