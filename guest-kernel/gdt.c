/*
 * GDT and TSS: flat 64-bit kernel and user code/data segments (user data
 * precedes user code, as SYSRET-style layouts expect), and a TSS with RSP0
 * for traps from ring 3 and IST1 giving the double-fault handler a
 * known-good stack (so a stack overflow is reported, not a triple fault).
 */
#include <stdint.h>
#include "gk/trap.h"

struct __attribute__((packed)) tss64 {
    uint32_t reserved0;
    uint64_t rsp[3];
    uint64_t reserved1;
    uint64_t ist[7];
    uint64_t reserved2;
    uint16_t reserved3;
    uint16_t iomap_base;
};
_Static_assert(sizeof(struct tss64) == 104, "TSS is 104 bytes (SDM 8.7)");

static struct tss64 tss;
static uint8_t ist1_stack[8192] __attribute__((aligned(16)));
static uint64_t gdt[7] __attribute__((aligned(16)));

void gdt_init(void)
{
    gdt[0] = 0;
    gdt[1] = 0x00AF9A000000FFFFull;   /* code: P, DPL0, exec/read, L=1 */
    gdt[2] = 0x00CF92000000FFFFull;   /* data: P, DPL0, read/write */
    gdt[3] = 0x00CFF2000000FFFFull;   /* user data: P, DPL3, read/write */
    gdt[4] = 0x00AFFA000000FFFFull;   /* user code: P, DPL3, exec/read, L=1 */
    tss.ist[0] = (uint64_t)(uintptr_t)(ist1_stack + sizeof ist1_stack);
    tss.iomap_base = sizeof tss;      /* no I/O bitmap */
    uint64_t base = (uint64_t)(uintptr_t)&tss;
    uint64_t limit = sizeof tss - 1;
    gdt[5] = (limit & 0xFFFF) | ((base & 0xFFFFFF) << 16) |
             (0x89ull << 40) |            /* P, available 64-bit TSS */
             (((limit >> 16) & 0xF) << 48) | (((base >> 24) & 0xFF) << 56);
    gdt[6] = base >> 32;

    struct __attribute__((packed)) { uint16_t limit; uint64_t base; } gdtr = {
        sizeof gdt - 1, (uint64_t)(uintptr_t)gdt
    };
    __asm__ volatile(
        "lgdt %0\n\t"
        "pushq %1\n\t"
        "leaq 1f(%%rip), %%rax\n\t"
        "pushq %%rax\n\t"
        "lretq\n"
        "1:\n\t"
        "movw %w2, %%ax\n\t"
        "movw %%ax, %%ds\n\t"
        "movw %%ax, %%es\n\t"
        "movw %%ax, %%ss\n\t"
        "xorl %%eax, %%eax\n\t"
        "movw %%ax, %%fs\n\t"
        "movw %%ax, %%gs\n\t"
        "movw %w3, %%ax\n\t"
        "ltr %%ax\n\t"
        : : "m"(gdtr), "i"(SEL_KCODE), "i"(SEL_KDATA), "i"(SEL_TSS)
        : "rax", "memory");
}

void gdt_set_kernel_stack(uint64_t top) { tss.rsp[0] = top; }

_Noreturn void enter_user(void (*fn)(const char *), uint64_t stack_top, const char *arg)
{
    /* iretq frame: SS, RSP, RFLAGS (IF set, IOPL 0), CS, RIP. The stack is
     * 16-byte aligned minus 8, as at any function entry. */
    __asm__ volatile(
        "movw %w0, %%ax\n\t"
        "movw %%ax, %%ds\n\t"
        "movw %%ax, %%es\n\t"
        "pushq %q0\n\t"
        "pushq %1\n\t"
        "pushq $0x202\n\t"
        "pushq %q2\n\t"
        "pushq %3\n\t"
        "iretq"
        : : "r"((uint64_t)SEL_UDATA), "r"(stack_top - 8), "r"((uint64_t)SEL_UCODE),
            "r"((uint64_t)(uintptr_t)fn), "D"(arg)
        : "rax", "memory");
    __builtin_unreachable();
}
