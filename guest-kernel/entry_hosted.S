/*
 * Hosted entry: the moat VMM enters here already in 64-bit long mode with
 * identity paging, interrupts off, and RDI = guest-physical address of the
 * boot info page. .bss is already zero: every ELF loader (the VMM's
 * included) zero-fills p_memsz beyond p_filesz, and redoing it here would
 * cost tens of thousands of emulated ring-0 instructions. We only need a
 * stack before C; after kmain drops to ring 3 this stack becomes the ring-0
 * trap stack (TSS.RSP0).
 */
    .section .text.entry, "ax"
    .globl _start
_start:
    cli
    leaq boot_stack_top(%rip), %rsp
    xorl %ebp, %ebp
    call kmain
1:  cli
    hlt
    jmp 1b

    .section .bss
    .balign 16
    .globl boot_stack_top
boot_stack:
    .skip 16384
boot_stack_top:
