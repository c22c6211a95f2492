/*
 * svm_run.S — one VMRUN (svm.h): enter the guest whose VMCB is at
 * physical rdi, return at its #VMEXIT. The guest state lives in the VMCB
 * (RAX, RSP, RIP and the rest); the host's general registers other than
 * RAX, RSP and RIP survive only if saved here, so the callee-saved ones
 * are. Called with interrupts off; GIF is cleared around the run and set
 * again after it, so a host interrupt is taken only once the monitor
 * holds the CPU again.
 */
    .text
    .globl svm_run
    .type svm_run, @function
svm_run:
    push %rbx
    push %rbp
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rdi, %rax
    clgi
    vmrun
    stgi
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %rbp
    pop %rbx
    ret
    .size svm_run, . - svm_run
    .section .note.GNU-stack, "", @progbits
