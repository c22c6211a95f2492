/*
 * trap.h — exceptions in the kernel booted bare: an IDT whose 32
 * exception gates report the vector, error code, every register and CR2
 * on COM1, then halt (the machine stays up for a debugger or the
 * console's reader); plus the gates of the local APIC timer and the
 * spurious vector (apic.h).
 */
#ifndef BARE_TRAP_H
#define BARE_TRAP_H

#include <stdint.h>

/* The frame trap_entry.S builds, lowest address first. */
struct bare_frame {
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax;
    uint64_t vector, error;
    uint64_t rip, cs, rflags, rsp, ss;      /* pushed by the CPU */
};

void trap_init(void);
void bare_trap(struct bare_frame *f) __attribute__((noreturn));

#endif /* BARE_TRAP_H */
