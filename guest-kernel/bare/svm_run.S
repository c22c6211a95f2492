/*
 * svm_run.S — svm_enter(vmcb, frame) (svm.h): enter the guest whose VMCB
 * is at physical rdi and return at its #VMEXIT. RAX, RSP and RIP are the
 * VMCB's; the guest's other general registers are loaded from the trap
 * frame at rsi before VMRUN and stored back into it after, and the host's
 * callee-saved ones are kept on the stack (VMRUN and #VMEXIT keep only
 * the host's RAX, RSP and RIP). GIF is cleared before IF is set, so no
 * interrupt reaches the host until the guest runs (where one is an INTR
 * #VMEXIT) or until STGI after it, where it is taken through the IDT;
 * interrupts are off again on return.
 */
#define F_R15 0
#define F_R14 8
#define F_R13 16
#define F_R12 24
#define F_R11 32
#define F_R10 40
#define F_R9  48
#define F_R8  56
#define F_RBP 64
#define F_RDI 72
#define F_RSI 80
#define F_RDX 88
#define F_RCX 96
#define F_RBX 104
    .text
    .globl svm_enter
    .type svm_enter, @function
svm_enter:
    push %rbx
    push %rbp
    push %r12
    push %r13
    push %r14
    push %r15
    push %rsi                   /* the frame, for after the exit */
    mov %rdi, %rax
    mov F_R15(%rsi), %r15
    mov F_R14(%rsi), %r14
    mov F_R13(%rsi), %r13
    mov F_R12(%rsi), %r12
    mov F_R11(%rsi), %r11
    mov F_R10(%rsi), %r10
    mov F_R9(%rsi), %r9
    mov F_R8(%rsi), %r8
    mov F_RBP(%rsi), %rbp
    mov F_RDI(%rsi), %rdi
    mov F_RDX(%rsi), %rdx
    mov F_RCX(%rsi), %rcx
    mov F_RBX(%rsi), %rbx
    mov F_RSI(%rsi), %rsi
    clgi
    sti
    vmrun
    /* Host again: RAX, RSP, RIP are ours; GIF is clear. */
    push %rax
    mov 8(%rsp), %rax           /* the frame */
    mov %r15, F_R15(%rax)
    mov %r14, F_R14(%rax)
    mov %r13, F_R13(%rax)
    mov %r12, F_R12(%rax)
    mov %r11, F_R11(%rax)
    mov %r10, F_R10(%rax)
    mov %r9, F_R9(%rax)
    mov %r8, F_R8(%rax)
    mov %rbp, F_RBP(%rax)
    mov %rdi, F_RDI(%rax)
    mov %rsi, F_RSI(%rax)
    mov %rdx, F_RDX(%rax)
    mov %rcx, F_RCX(%rax)
    mov %rbx, F_RBX(%rax)
    pop %rax
    stgi                        /* an interrupt that made the exit is taken here */
    cli
    pop %rsi
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %rbp
    pop %rbx
    ret
    .size svm_enter, . - svm_enter
    .section .note.GNU-stack, "", @progbits
