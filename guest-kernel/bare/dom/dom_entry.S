/* Entry of a bare driver domain: the monitor starts it in ring 3 at
 * dom_entry with RSP at BARE_DOM_VA_STACK_TOP (bare_dom.h). */
    .section .text.entry, "ax"
    .globl dom_entry
dom_entry:
    xorl %ebp, %ebp
    andq $-16, %rsp
    call dom_start
1:  ud2
    jmp 1b
