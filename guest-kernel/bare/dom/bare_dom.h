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
 *   SESSION_TABLE  a serving domain's struct moat_session_table (read
 *              only): what the hosted VMM puts at MOAT_GPA_SESSION_TABLE
 *   DOORBELLS  a serving domain's doorbells, 4 bytes per slot (hosted:
 *              MOAT_GPA_SESSION_DOORBELL): the monitor takes them with an
 *              exchange when the domain sleeps and at every tick, and
 *              wakes the session's client
 *   SESSIONS   session memory, 2 MiB per slot: a server's slot i (hosted:
 *              MOAT_GPA_SESSION_BASE + i * MOAT_SESSION_SPAN), a client's
 *              session k; gk_gpa_ptr (dom_rt.c) translates the hosted
 *              addresses, so dd_serve.c serves sessions unchanged
 *   stack      BARE_DOM_STACK bytes below BARE_DOM_VA_STACK_TOP
 *   IMAGE      the domain's ELF, linked at BARE_DOM_VA_IMAGE
 *   windows    DMA windows at VA == IOVA from BARE_DOM_VA_WINDOWS; each is
 *              physically contiguous, and the monitor alone gives a device
 *              physical addresses (translated at the doorbell)
 * System calls: gk/sys.h's int3 gate and numbers (SYS_CFG, SYS_MMIO and
 * the session calls are bare only). Everything the domain writes is
 * hostile to the monitor.
 *
 * Caps between domains: a client (an app domain) opens a session on a
 * cap another domain registered (SYS_SESSION_OPEN, the monitor as
 * broker); the monitor formats the rings of moat/ring.h in fresh session
 * memory, maps it into both, and publishes it in the server's session
 * table as the hosted VMM would. The client kicks with SYS_SESSION_KICK;
 * the server rings its doorbell. When the server restarts, the monitor
 * formats the rings again, publishes them to the new incarnation and
 * bumps the session's generation in the client's events page: the client
 * attaches afresh and resubmits what had not completed.
 */
#ifndef BARE_DOM_ABI_H
#define BARE_DOM_ABI_H

#include <stdint.h>
#include "moat/session_abi.h"

#define BARE_DOM_VA_BASE      0x40000000ull
#define BARE_DOM_VA_BOOTINFO  0x40000000ull
#define BARE_DOM_VA_PLATFORM  0x40001000ull
#define BARE_DOM_VA_EVENTS    0x40002000ull
#define BARE_DOM_VA_SESSION_TABLE 0x40003000ull
#define BARE_DOM_VA_DOORBELLS 0x40004000ull
#define BARE_DOM_SHARED_PAGES 5u        /* boot info .. doorbells */
#define BARE_DOM_VA_STACK_TOP 0x40100000ull
#define BARE_DOM_STACK        (64u << 10)
#define BARE_DOM_VA_IMAGE     0x40200000ull
#define BARE_DOM_VA_HEAP      0x48000000ull
#define BARE_DOM_VA_WINDOWS   0x60000000ull
#define BARE_DOM_VA_SESSIONS  0x70000000ull  /* past the largest window */
#define BARE_DOM_SESSION_SIZE (2ull << 20)
#define BARE_DOM_SESSIONS     16u             /* = MOAT_SESSION_SLOTS */
#define BARE_DOM_VA_END       0x80000000ull

struct bare_dom_events {
    uint64_t irq_count;         /* interrupts and ticks delivered (SYS_WAIT's count) */
    uint64_t ticks;             /* monitor timer ticks seen */
    uint64_t pending[4];        /* vectors marked, 64 per word */
    uint32_t session_gen[BARE_DOM_SESSIONS];    /* a client's sessions: bumped at each
                                                 * fresh set of rings; BARE_SESSION_DOWN
                                                 * while its server stays down */
};
#define BARE_SESSION_DOWN 0xFFFFFFFFu   /* the server's breaker opened, or its policy
                                         * keeps it down: what is in flight fails */

_Static_assert(BARE_DOM_SESSIONS == MOAT_SESSION_SLOTS, "a server's slots are its sessions");

/* SYS_SESSION_OPEN's answer: the client's session k (its memory at
 * BARE_DOM_VA_SESSIONS + k * BARE_DOM_SESSION_SIZE). */
struct bare_session_info {
    uint32_t session;           /* k */
    uint32_t entries;           /* both rings */
    uint64_t sq_off, cq_off, data_off, data_size;
    uint32_t rights;            /* MOAT_RIGHT_* */
    uint32_t kind;              /* MOAT_CAP_BLOCK or MOAT_CAP_NIC */
    union {
        struct moat_blk_geometry blk;   /* kind == BLOCK */
        struct moat_nic_info nic;       /* kind == NIC */
    };
};

#endif /* BARE_DOM_ABI_H */
