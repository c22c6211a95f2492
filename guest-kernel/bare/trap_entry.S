/*
 * trap_entry.S — the bare kernel's exception stubs: vectors 0-31 push
 * their number (and a zero where the CPU pushes no error code), save the
 * general registers and call bare_trap(frame) (trap.c), which reports and
 * halts: a fault in the monitor is never silent. Then the interrupt
 * entries (the local APIC timer, spurious), which return.
 */
    .section .text
    .code64

.macro STUB n, has_err
    .globl bare_isr\n
bare_isr\n:
    .if \has_err == 0
    pushq $0
    .endif
    pushq $\n
    jmp trap_common
.endm

STUB 0,0
STUB 1,0
STUB 2,0
STUB 3,0
STUB 4,0
STUB 5,0
STUB 6,0
STUB 7,0
STUB 8,1
STUB 9,0
STUB 10,1
STUB 11,1
STUB 12,1
STUB 13,1
STUB 14,1
STUB 15,0
STUB 16,0
STUB 17,1
STUB 18,0
STUB 19,0
STUB 20,0
STUB 21,1
STUB 22,0
STUB 23,0
STUB 24,0
STUB 25,0
STUB 26,0
STUB 27,0
STUB 28,0
STUB 29,1
STUB 30,1
STUB 31,0

trap_common:
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
    movq %rsp, %rdi
    andq $-16, %rsp
    call bare_trap
1:  cli
    hlt
    jmp 1b

/* Device and timer interrupts: save what C may clobber, call the handler
 * (which sends the EOI), return. 5 + 9 pushes keep RSP 16-byte aligned. */
.macro IRQ name, handler
    .globl \name
\name:
    pushq %rax
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    call \handler
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rax
    iretq
.endm

IRQ bare_irq_timer, apic_timer_tick

    .globl bare_irq_spurious
bare_irq_spurious:                      /* no EOI for a spurious interrupt */
    iretq

    .section .rodata
    .align 8
    .globl bare_isr_table
bare_isr_table:
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .quad bare_isr\n
    .endr
