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

struct moat_platform_page {
    uint64_t magic;             /* MOAT_PLATFORM_MAGIC, written by the VMM */
    uint64_t heartbeat;         /* guest increments; VMM only reads */
    uint64_t ticks;             /* guest timer ticks seen (informational) */
    int32_t result;             /* VMM: outcome of the last CAP_REGISTER/SESSION_RELEASE */
    uint32_t reserved0;
    uint64_t reserved[4];
    struct moat_crash_record crash;
};

_Static_assert(sizeof(struct moat_regs) == 24 * 8, "regs layout is ABI");
_Static_assert(sizeof(struct moat_platform_page) <= 4096,
               "platform page fits one page");

#endif /* MOAT_PLATFORM_ABI_H */
