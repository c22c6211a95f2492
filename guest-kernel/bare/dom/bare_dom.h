/*
 * bare_dom.h — the contract between the bare monitor and a driver domain
 * it runs in ring 3 (DESIGN §1 bare mode, §5.5): where things sit in the
 * domain's address space and the page the monitor marks interrupts in.
 *
 * A domain's address space (its own page tables; everything below
 * BARE_DOM_VA_BASE is the monitor's, supervisor-only):
 *   BOOTINFO   struct moat_boot_info (read-only): name, args, windows,
 *              devices (BARs where firmware put them), tsc_khz, and one
 *              RAM region: the heap dd_mem_alloc hands out
 *   PLATFORM   struct moat_platform_page (heartbeat, boot marks)
 *   EVENTS     struct bare_dom_events: the monitor sets pending bits and
 *              counts; the domain takes pending words with an exchange
 *   stack      BARE_DOM_STACK bytes below BARE_DOM_VA_STACK_TOP
 *   IMAGE      the domain's ELF, linked at BARE_DOM_VA_IMAGE
 *   windows    DMA windows at VA == IOVA from BARE_DOM_VA_WINDOWS; each is
 *              physically contiguous, and the monitor alone gives a device
 *              physical addresses (translated at the doorbell)
 * System calls: gk/sys.h's int3 gate and numbers (SYS_CFG and SYS_MMIO are
 * bare only). Everything the domain writes is hostile to the monitor.
 */
#ifndef BARE_DOM_ABI_H
#define BARE_DOM_ABI_H

#include <stdint.h>

#define BARE_DOM_VA_BASE      0x40000000ull
#define BARE_DOM_VA_BOOTINFO  0x40000000ull
#define BARE_DOM_VA_PLATFORM  0x40001000ull
#define BARE_DOM_VA_EVENTS    0x40002000ull
#define BARE_DOM_VA_STACK_TOP 0x40100000ull
#define BARE_DOM_STACK        (64u << 10)
#define BARE_DOM_VA_IMAGE     0x40200000ull
#define BARE_DOM_VA_HEAP      0x48000000ull
#define BARE_DOM_VA_WINDOWS   0x60000000ull
#define BARE_DOM_VA_END       0x80000000ull

struct bare_dom_events {
    uint64_t irq_count;         /* interrupts and ticks delivered (SYS_WAIT's count) */
    uint64_t ticks;             /* monitor timer ticks seen */
    uint64_t pending[4];        /* vectors marked, 64 per word */
};

#endif /* BARE_DOM_ABI_H */
