/*
 * mb_entry.S — how the kernel starts on a machine: multiboot1 and
 * multiboot2 headers, then 32-bit protected mode (as both protocols leave
 * it: paging off, interrupts off, EAX = magic, EBX = boot information) to
 * long mode with an identity map of the first 4 GiB in 2 MiB pages, then
 * bare_main(magic, info) on the boot stack. Linked by bare.ld at 1 MiB.
 */
#define MB1_MAGIC 0x1BADB002
#define MB1_FLAGS 0x00000003            /* page-aligned modules, memory info */
#define MB2_MAGIC 0xE85250D6
#define MB2_ARCH  0                     /* i386 protected mode */

    .section .multiboot, "a"
    .align 4
mb1_header:
    .long MB1_MAGIC
    .long MB1_FLAGS
    .long -(MB1_MAGIC + MB1_FLAGS)

    .align 8
mb2_header:
    .long MB2_MAGIC
    .long MB2_ARCH
    .long mb2_end - mb2_header
    .long -(MB2_MAGIC + MB2_ARCH + (mb2_end - mb2_header))
    .short 0                            /* end tag */
    .short 0
    .long 8
mb2_end:

    .section .text.entry32, "ax"
    .code32
    .globl _start
_start:
    cli
    movl %eax, boot_magic
    movl %ebx, boot_info
    movl $boot_stack_top, %esp
    cld
    /* .bss holds the page tables: zero it (not every loader does). */
    movl $__bss_start, %edi
    movl $__bss_end, %ecx
    subl %edi, %ecx
    shrl $2, %ecx
    xorl %eax, %eax
    rep stosl
    /* PML4[0] -> PDPT; PDPT[0..3] -> four page directories. */
    movl $boot_pdpt, %eax
    orl $3, %eax
    movl %eax, boot_pml4
    movl $boot_pd, %eax
    orl $3, %eax
    movl $boot_pdpt, %edi
    movl $4, %ecx
1:  movl %eax, (%edi)
    addl $4096, %eax
    addl $8, %edi
    loop 1b
    /* 2048 entries of 2 MiB: present, writable, large. */
    movl $boot_pd, %edi
    xorl %ecx, %ecx
2:  movl %ecx, %eax
    shll $21, %eax
    orl $0x83, %eax
    movl %eax, (%edi,%ecx,8)
    incl %ecx
    cmpl $2048, %ecx
    jb 2b
    movl $boot_pml4, %eax
    movl %eax, %cr3
    movl %cr4, %eax
    orl $0x20, %eax                     /* PAE */
    movl %eax, %cr4
    movl $0xC0000080, %ecx              /* EFER */
    rdmsr
    orl $0x100, %eax                    /* LME */
    wrmsr
    movl %cr0, %eax
    orl $0x80000001, %eax               /* PG, PE */
    movl %eax, %cr0
    lgdt boot_gdt_ptr
    ljmp $0x08, $long_mode

    .code64
long_mode:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw %ax, %fs
    movw %ax, %gs
    movq $boot_stack_top, %rsp
    movl boot_magic(%rip), %edi
    movl boot_info(%rip), %esi
    call bare_main
3:  cli
    hlt
    jmp 3b

    .section .rodata
    .align 8
boot_gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF            /* 0x08: 64-bit code */
    .quad 0x00CF92000000FFFF            /* 0x10: data */
boot_gdt_end:
boot_gdt_ptr:
    .short boot_gdt_end - boot_gdt - 1
    .long boot_gdt

    .section .data
    .align 4
boot_magic: .long 0
boot_info:  .long 0

    .section .bss
    .align 4096
boot_pml4:  .skip 4096
boot_pdpt:  .skip 4096
boot_pd:    .skip 4 * 4096
boot_stack: .skip 32768
boot_stack_top:
