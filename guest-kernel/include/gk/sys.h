/*
 * gk/sys.h — system calls from domain code (ring 3) into the guest kernel
 * (ring 0).
 *
 * Why ring 3: on the KVM hosts moat targets (kvm_pvm), a non-PVM guest's
 * ring-0 code is emulated (~0.35 us per instruction) while ring-3 code runs
 * natively. Drivers therefore run in ring 3 and enter the kernel only for
 * what needs privilege: port I/O, sleeping, and telling the platform.
 *
 * Gate: `int3` through a DPL-3 interrupt gate (SYSCALL and `int N` are not
 * usable on those hosts). ABI: rax = number, rdi/rsi/rdx = arguments,
 * result in rax (negative = -SYS_E*); every other register is preserved.
 * The kernel checks every pointer and length it is given.
 */
#ifndef GK_SYS_H
#define GK_SYS_H

#include <stddef.h>
#include <stdint.h>

enum sys_nr {
    SYS_CONSOLE_WRITE = 1,  /* (buf, len): one console line/chunk */
    SYS_WAIT          = 2,  /* (irq_seen): sleep unless trap_irq_count() moved */
    SYS_READY         = 3,  /* announce readiness to the platform */
    SYS_EXIT          = 4,  /* (code): orderly stop; never returns */
    SYS_PANIC         = 5,  /* (msg): fail-stop with the caller's registers */
    SYS_MSI_TEST      = 6,  /* (vector): ask the platform for one MSI */
    SYS_TEST_FAULT    = 7,  /* (kind): kernel-mode faults for the test suites */
    SYS_PIO           = 8,  /* (port, size | SYS_PIO_WRITE, value): I/O BAR access */
    SYS_INTX_BIND     = 9,  /* (gsi, vector): route an assigned device's INTx */
    SYS_INTX_ACK      = 10, /* (gsi): unmask the pin after the cause is cleared */
    SYS_CAP_REGISTER  = 11, /* (struct moat_cap_register *): serve a cap; 0 or -MOAT_E* */
    SYS_SESSION_RELEASE = 12, /* (slot): done with a CLOSING session; 0 or -MOAT_E* */
    /* Bare domains only (bare/dom/bare_dom.h): the monitor mediates every
     * configuration and register access. A refused access stops the
     * domain (a driver's own checks in dd_pci.c came first), so these
     * return the value read and have no error result. */
    SYS_CFG           = 13, /* (dev << 16 | off, width | SYS_PIO_WRITE, value) */
    SYS_MMIO          = 14, /* (address, width | SYS_PIO_WRITE, value) */
    /* A client's sessions (bare/dom/bare_dom.h): 0.. or -SYS_E*. */
    SYS_SESSION_OPEN  = 15, /* (cap name, struct bare_session_info *, vector) */
    SYS_SESSION_KICK  = 16, /* (session k): wake the server */
    SYS_SESSION_CLOSE = 17, /* (session k): done with it (the server drains it) */
};

#define SYS_PIO_WRITE 0x100u    /* with size 1, 2 or 4 */

enum sys_test_fault {
    SYS_FAULT_HANG_IRQS_OFF = 1,    /* cli; spin forever */
    SYS_FAULT_EMPTY_IDT     = 2,    /* load a zero-length IDT and return */
};

#define SYS_EINVAL 22
#define SYS_EFAULT 14
#define SYS_ENOSYS 38
#define SYS_EAGAIN 11
#define SYS_ENOENT 2

#ifdef GK_HOST_TEST
/* Host tests that compile guest code (e.g. harness/fuzz/fuzz_dd_serve.c)
 * play the kernel: they provide this. */
int64_t sys_call3(uint64_t nr, uint64_t a, uint64_t b, uint64_t c);
#else
static inline int64_t sys_call3(uint64_t nr, uint64_t a, uint64_t b, uint64_t c)
{
    int64_t ret;
    __asm__ volatile("int3" : "=a"(ret) : "a"(nr), "D"(a), "S"(b), "d"(c) : "memory");
    return ret;
}
#endif

static inline int64_t sys_console_write(const char *buf, size_t len)
{ return sys_call3(SYS_CONSOLE_WRITE, (uint64_t)(uintptr_t)buf, len, 0); }
static inline void sys_wait(uint64_t irq_seen) { sys_call3(SYS_WAIT, irq_seen, 0, 0); }
static inline void sys_ready(void) { sys_call3(SYS_READY, 0, 0, 0); }
_Noreturn static inline void sys_exit(uint32_t code)
{
    sys_call3(SYS_EXIT, code, 0, 0);
    __builtin_unreachable();
}
_Noreturn static inline void sys_panic(const char *msg)
{
    sys_call3(SYS_PANIC, (uint64_t)(uintptr_t)msg, 0, 0);
    __builtin_unreachable();
}
static inline int64_t sys_msi_test(uint32_t vector) { return sys_call3(SYS_MSI_TEST, vector, 0, 0); }
static inline int64_t sys_test_fault(uint32_t kind) { return sys_call3(SYS_TEST_FAULT, kind, 0, 0); }
/* Port I/O inside an assigned device's I/O BAR: the read value (>= 0) or
 * -SYS_EINVAL / -SYS_EFAULT (port range not inside any I/O BAR). */
static inline int64_t sys_pio(uint32_t port, uint32_t size_flags, uint32_t value)
{ return sys_call3(SYS_PIO, port, size_flags, value); }
static inline int64_t sys_intx_bind(uint32_t gsi, uint32_t vector)
{ return sys_call3(SYS_INTX_BIND, gsi, vector, 0); }
static inline int64_t sys_intx_ack(uint32_t gsi) { return sys_call3(SYS_INTX_ACK, gsi, 0, 0); }
static inline int64_t sys_cap_register(const void *reg)
{ return sys_call3(SYS_CAP_REGISTER, (uint64_t)(uintptr_t)reg, 0, 0); }
static inline int64_t sys_session_release(uint32_t slot)
{ return sys_call3(SYS_SESSION_RELEASE, slot, 0, 0); }
static inline uint64_t sys_cfg(uint32_t dev_off, uint32_t width_flags, uint32_t value)
{ return (uint64_t)sys_call3(SYS_CFG, dev_off, width_flags, value); }
static inline uint64_t sys_mmio(uint64_t addr, uint32_t width_flags, uint64_t value)
{ return (uint64_t)sys_call3(SYS_MMIO, addr, width_flags, value); }

#endif /* GK_SYS_H */
