/*
 * Interrupt/exception entry stubs: 256 stubs of 16 bytes each starting at
 * isr_stubs, so the IDT entry for vector n is isr_stubs + 16 * n. Each stub
 * pushes a zero error code when the CPU does not, then the vector, and jumps
 * to isr_common, which saves all GPRs in the order of struct trap_frame
 * (gk/trap.h) and calls trap_dispatch(frame). The stubs are linked first in
 * .text, at GK_ISR_STUBS (kernel.ld checks it), so idt.c builds the IDT at
 * compile time instead of in (emulated) ring 0.
 */
#include "gk/trap_regs.h"
    .section .text.isr, "ax"
    .balign 16
    .globl isr_stubs
isr_stubs:
    .set vec, 0
    .rept 256
    .balign 16
    .if (vec == 8) || (vec == 10) || (vec == 11) || (vec == 12) || (vec == 13) || (vec == 14) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
    .else
    pushq $0
    .endif
    pushq $vec
    jmp isr_common
    .set vec, vec + 1
    .endr
    /* Longest stub: pushq $0 (2) + pushq $imm32 (5) + jmp rel32 (5) = 12
     * bytes, so .balign 16 keeps the stride exact; idt.c relies on it. */

isr_common:
    PUSH_GPRS
    cld
    movq %rsp, %rdi
    /* Keep the ABI's 16-byte stack alignment for the C handler. */
    movq %rsp, %rbx
    andq $-16, %rsp
    call trap_dispatch
    movq %rbx, %rsp
    POP_GPRS
    addq $16, %rsp      /* vector and error code */
    iretq
