/*
 * gk/trap_regs.h — for assembly: save and restore the general registers
 * in the order of struct trap_frame (gk/trap.h: r15 at the lowest
 * address), after a stub pushed the vector and an error code. Used by the
 * hosted kernel's isr.S and the bare monitor's trap_entry.S.
 */
#ifndef GK_TRAP_REGS_H
#define GK_TRAP_REGS_H

.macro PUSH_GPRS
    pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
.endm

.macro POP_GPRS
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rbp
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rbx
    popq %rax
.endm

#endif /* GK_TRAP_REGS_H */
