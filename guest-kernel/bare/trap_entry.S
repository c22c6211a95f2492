/*
 * trap_entry.S — every vector of the bare kernel enters here: a stub
 * pushes its number (and a zero where the CPU pushes no error code), the
 * common path saves the general registers and calls bare_trap(frame)
 * (trap.c). A trap from a ring-3 domain switches to the monitor's page
 * tables first (bare_master_cr3); returning to ring 3 loads the running
 * domain's (bare_user_cr3). bare_resume(frame) enters a domain from a
 * saved frame; bare_ctx_save / bare_ctx_jump are the monitor loop's
 * setjmp and longjmp (dom.c leaves a domain with them).
 */
#include "gk/trap_regs.h"
    .section .text
    .code64

#define F_CS (17 * 8 + 8)                /* 15 registers, vector, error, RIP */

.macro STUB n
    .align 16
bare_isr\n:
    .if (\n == 8) || (\n >= 10 && \n <= 14) || (\n == 17) || (\n == 21) || (\n == 29) || (\n == 30)
    .else
    pushq $0
    .endif
    pushq $\n
    jmp trap_common
.endm

    .altmacro
.macro STUBS from, to
    STUB %from
    .if \to - \from
    STUBS %(\from + 1), \to
    .endif
.endm
    STUBS 0, 63
    STUBS 64, 127
    STUBS 128, 191
    STUBS 192, 255
    .noaltmacro

trap_common:
    PUSH_GPRS
    cld
    testb $3, F_CS(%rsp)
    jz 1f
    movq bare_master_cr3(%rip), %rax
    movq %rax, %cr3
1:  movq %rsp, %rdi
    movq %rsp, %rbx
    andq $-16, %rsp
    call bare_trap
    movq %rbx, %rsp
    .globl bare_trap_return
bare_trap_return:
    testb $3, F_CS(%rsp)
    jz 2f
    movq bare_user_cr3(%rip), %rax
    movq %rax, %cr3
2:  POP_GPRS
    addq $16, %rsp
    iretq

/* bare_resume(frame): enter the frame (placed by the caller where the
 * trap stack's frames sit), through the common return path. */
    .globl bare_resume
bare_resume:
    movq %rdi, %rsp
    jmp bare_trap_return

/* bare_ctx_save(ctx): 0 now, 1 when bare_ctx_jump(ctx) comes back. */
    .globl bare_ctx_save
bare_ctx_save:
    movq (%rsp), %rax
    movq %rax, 0(%rdi)
    leaq 8(%rsp), %rax
    movq %rax, 8(%rdi)
    movq %rbx, 16(%rdi)
    movq %rbp, 24(%rdi)
    movq %r12, 32(%rdi)
    movq %r13, 40(%rdi)
    movq %r14, 48(%rdi)
    movq %r15, 56(%rdi)
    xorl %eax, %eax
    ret

    .globl bare_ctx_jump
bare_ctx_jump:
    movq 8(%rdi), %rsp
    movq 16(%rdi), %rbx
    movq 24(%rdi), %rbp
    movq 32(%rdi), %r12
    movq 40(%rdi), %r13
    movq 48(%rdi), %r14
    movq 56(%rdi), %r15
    movl $1, %eax
    jmpq *0(%rdi)

    .section .rodata
    .align 8
    .globl bare_isr_table
bare_isr_table:
    .altmacro
.macro ENTRY n
    .quad bare_isr\n
.endm
.macro ENTRIES from, to
    ENTRY %from
    .if \to - \from
    ENTRIES %(\from + 1), \to
    .endif
.endm
    ENTRIES 0, 63
    ENTRIES 64, 127
    ENTRIES 128, 191
    ENTRIES 192, 255
    .noaltmacro
