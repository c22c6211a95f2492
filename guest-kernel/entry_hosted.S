/*
 * Hosted entry: the moat VMM enters here already in 64-bit long mode with
 * identity paging, interrupts off, and RDI = guest-physical address of the
 * boot info page. We only need a stack before C.
 */
    .section .text.entry, "ax"
    .globl _start
_start:
    cli
    leaq boot_stack_top(%rip), %rsp
    xorl %ebp, %ebp
    /* bss is zeroed here, not trusted to be fresh memory (bare loaders).
     * The stack lives in bss too, so the boot info pointer waits in r12. */
    movq %rdi, %r12
    leaq __bss_start(%rip), %rdi
    leaq __bss_end(%rip), %rcx
    subq %rdi, %rcx
    xorl %eax, %eax
    rep stosb
    movq %r12, %rdi
    call kmain
1:  cli
    hlt
    jmp 1b

    .section .bss
    .balign 16
boot_stack:
    .skip 16384
boot_stack_top:
