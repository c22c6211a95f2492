/*
 * moat/platform_abi.h — the hosted platform interface between a domain and
 * the VMM: a handful of I/O ports and one shared page.
 *
 * Ports (32-bit OUT unless noted; every write is one VM exit, so none of them
 * is on a per-request or per-tick path):
 *   READY     domain finished init and serves; value ignored.
 *   CRASH     the crash record in the platform page is complete; the domain
 *             will never run again (the VMM fail-stops it).
 *   EXIT      orderly stop; value = exit code (0 = success).
 *   MSI_TEST  ask the VMM to deliver one MSI with vector = value to this
 *             domain's vCPU (used to prove interrupt delivery end to end).
 *   CAP_REGISTER  value = guest-physical address of a struct
 *             moat_cap_register (moat/session_abi.h) in private RAM; the
 *             VMM leaves 0 or -MOAT_E* in platform_page.result.
 *   SESSION_RELEASE  value = session slot the domain no longer touches
 *             (it was CLOSING); result as above.
 *
 * MMIO register (a 32-bit store from ring 3 at MOAT_GPA_PLATFORM_MMIO +
 * offset, in the device space every domain maps):
 *   YIELD     the domain spins for work and found none for a while: the
 *             VMM lets other runnable threads (the device model workers and
 *             clients the domain waits for) have the vCPU's host CPU, then
 *             resumes it. One exit, no kernel entry in the domain; a hint.
 *
 * Boot marks: the guest stores its TSC in platform_page.boot_tsc[mark] as it
 * passes each step of bring-up (plain shared memory, no exit); the VMM reads
 * them once, at READY, to log where boot time went. Informational only: the
 * VMM keeps a mark only if the marks before it are set and not later.
 *
 * Orderly stop: stop_req and guest_flags below (no port: the request is a
 * store and an interrupt, the answer is the EXIT port).
 *
 * Heartbeat: the guest's run loop increments platform_page.heartbeat in plain
 * shared memory; the VMM's watchdog samples it. No exit per beat.
 *
 * Everything the guest writes here is hostile input to the VMM: the VMM copies
 * the crash record once, bounds every field and terminates every string.
 */
#ifndef MOAT_PLATFORM_ABI_H
#define MOAT_PLATFORM_ABI_H

#include <stdint.h>

#define MOAT_PLAT_PORT_BASE     0x0510u
#define MOAT_PLAT_PORT_READY    (MOAT_PLAT_PORT_BASE + 0x0)
#define MOAT_PLAT_PORT_CRASH    (MOAT_PLAT_PORT_BASE + 0x4)
#define MOAT_PLAT_PORT_EXIT     (MOAT_PLAT_PORT_BASE + 0x8)
#define MOAT_PLAT_PORT_MSI_TEST (MOAT_PLAT_PORT_BASE + 0xC)
#define MOAT_PLAT_PORT_CAP_REGISTER    (MOAT_PLAT_PORT_BASE + 0x10)
#define MOAT_PLAT_PORT_SESSION_RELEASE (MOAT_PLAT_PORT_BASE + 0x14)
#define MOAT_PLAT_PORT_COUNT    0x18u

#define MOAT_GPA_PLATFORM_MMIO  0xFED01000ull
#define MOAT_PLAT_MMIO_YIELD    0x0u
#define MOAT_PLAT_MMIO_SIZE     0x4u

#define MOAT_PLATFORM_MAGIC     0x54414c50544f4f4dull /* "MOOTPLAT" */

enum moat_crash_kind {
    MOAT_CRASH_NONE      = 0,
    MOAT_CRASH_EXCEPTION = 1,   /* CPU exception, vector valid */
    MOAT_CRASH_PANIC     = 2,   /* software panic, message valid */
};

#define MOAT_CRASH_MSG_MAX 128u

/* Register snapshot, in the order the guest's trap entry pushes them. */
struct moat_regs {
    uint64_t rax, rbx, rcx, rdx, rsi, rdi, rbp;
    uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
    uint64_t rip, cs, rflags, rsp, ss;
    uint64_t cr0, cr2, cr3, cr4;
};

struct moat_crash_record {
    uint32_t kind;              /* enum moat_crash_kind */
    uint32_t vector;            /* exception vector (kind == EXCEPTION) */
    uint64_t error_code;        /* exception error code, 0 if none */
    struct moat_regs regs;
    char message[MOAT_CRASH_MSG_MAX];
};

/* Faults an operator or a test can inject (moatctl inject, MOAT_MSG_INJECT).
 * The VMM raises KILL and CRASH_LOOP itself; every other kind is raised
 * inside the domain by its guest kernel (or, for the device kinds, by the
 * driver through the hook it registered), so it hits the driver mid-work. */
enum moat_fault {
    MOAT_FAULT_KILL            = 1,   /* VMM: fail-stop as if it crashed */
    MOAT_FAULT_TRIPLE_FAULT    = 2,   /* kernel: an exception with no IDT */
    MOAT_FAULT_HANG            = 3,   /* kernel: interrupts off, spin (watchdog) */
    MOAT_FAULT_SPIN            = 4,   /* ring 3: spin, no heartbeat (watchdog) */
    MOAT_FAULT_PANIC           = 5,   /* a software panic */
    MOAT_FAULT_WILD_DMA_PRIVATE = 6,  /* driver: DMA aimed at private RAM */
    MOAT_FAULT_WILD_DMA_OTHER  = 7,   /* driver: DMA aimed at another domain's window (arg) */
    MOAT_FAULT_WILD_DMA_END    = 8,   /* driver: DMA running past its window's end */
    MOAT_FAULT_WILD_MMIO       = 9,   /* kernel: an access outside every BAR */
    MOAT_FAULT_CORRUPT_SESSION = 10,  /* kernel: a cap session ring index */
    MOAT_FAULT_CORRUPT_DEVICE  = 11,  /* driver: a device ring index */
    MOAT_FAULT_EXIT_DMA        = 12,  /* driver: exit (code 1) with DMA in flight */
    MOAT_FAULT_CRASH_LOOP      = 13,  /* VMM: crash again right after every restart */
    MOAT_FAULT_FATAL_STORM     = 14,  /* driver: reset its device into a fatal state, 64 times */
    MOAT_FAULT_MAX             = 14,
};
#define MOAT_FAULT_BIT(k) (1u << (k))
/* Raised by every guest kernel whatever its driver. */
#define MOAT_FAULTS_KERNEL                                                        \
    (MOAT_FAULT_BIT(MOAT_FAULT_TRIPLE_FAULT) | MOAT_FAULT_BIT(MOAT_FAULT_HANG) |  \
     MOAT_FAULT_BIT(MOAT_FAULT_SPIN) | MOAT_FAULT_BIT(MOAT_FAULT_PANIC) |         \
     MOAT_FAULT_BIT(MOAT_FAULT_WILD_MMIO) | MOAT_FAULT_BIT(MOAT_FAULT_CORRUPT_SESSION))
/* Raised by a driver that registered a fault hook (dd_fault_hook). */
#define MOAT_FAULTS_DRIVER                                                             \
    (MOAT_FAULT_BIT(MOAT_FAULT_WILD_DMA_PRIVATE) | MOAT_FAULT_BIT(MOAT_FAULT_WILD_DMA_OTHER) | \
     MOAT_FAULT_BIT(MOAT_FAULT_WILD_DMA_END) | MOAT_FAULT_BIT(MOAT_FAULT_CORRUPT_DEVICE) |     \
     MOAT_FAULT_BIT(MOAT_FAULT_EXIT_DMA) | MOAT_FAULT_BIT(MOAT_FAULT_FATAL_STORM))
/* "wild-dma-other" and what it does; "unknown" outside 1..MOAT_FAULT_MAX. */
const char *moat_fault_name(uint32_t kind);
const char *moat_fault_what(uint32_t kind);
/* The kind named name, or 0. */
uint32_t moat_fault_parse(const char *name);
/* An MMIO address in no BAR and no platform region (wild-mmio). */
#define MOAT_GPA_WILD_MMIO      0xDFFFF000ull

/* Steps of a domain's bring-up, in order (platform_page.boot_tsc). */
enum moat_boot_mark {
    MOAT_BOOT_KERNEL = 0,       /* guest kernel entered (kmain) */
    MOAT_BOOT_USER,             /* kernel set up; the driver's main starts */
    MOAT_BOOT_DEVICE,           /* driver: device found, reset and identified */
    MOAT_BOOT_QUEUES,           /* driver: device queues and interrupts set up */
    MOAT_BOOT_CAPS,             /* driver: its caps registered with moat */
    MOAT_BOOT_MARKS,
};

struct moat_platform_page {
    uint64_t magic;             /* MOAT_PLATFORM_MAGIC, written by the VMM */
    uint64_t heartbeat;         /* guest increments; VMM only reads */
    uint64_t ticks;             /* guest timer ticks seen (informational) */
    int32_t result;             /* VMM: outcome of the last CAP_REGISTER/SESSION_RELEASE */
    uint32_t reserved0;
    /* Fault injection: the VMM writes kind and arg, then bumps seq (release);
     * the guest raises the fault once per new seq. The guest keeps in
     * faults the MOAT_FAULT_BITs it can raise (the VMM refuses others). */
    uint32_t fault_seq;
    uint32_t fault_kind;        /* enum moat_fault */
    uint64_t fault_arg;         /* WILD_DMA_OTHER: an IOVA in another domain's window */
    uint32_t faults;            /* guest writes: what it can raise */
    /* Orderly stop: the VMM sets stop_req to 1 (release) and sends the
     * session interrupt; a guest that set MOAT_GUEST_F_ORDERLY_STOP in
     * guest_flags drains its sessions, lets its driver tear the device
     * down and writes EXIT. The VMM forces the stop after its grace time
     * whatever the guest does (guest_flags is a hint, never trusted). */
    uint32_t stop_req;
    uint32_t guest_flags;       /* guest writes: MOAT_GUEST_F_* */
    uint32_t reserved2;
    struct moat_crash_record crash;
    uint64_t boot_tsc[MOAT_BOOT_MARKS];  /* guest: TSC at each boot mark, 0 = not passed */
};

/* platform_page.guest_flags */
#define MOAT_GUEST_F_ORDERLY_STOP 0x1u  /* the run loop watches stop_req */

_Static_assert(sizeof(struct moat_regs) == 24 * 8, "regs layout is ABI");
_Static_assert(sizeof(struct moat_platform_page) <= 4096,
               "platform page fits one page");

#endif /* MOAT_PLATFORM_ABI_H */
