/*
 * GDT and TSS: flat 64-bit code/data segments and a TSS whose IST1 gives the
 * double-fault handler a known-good stack (so a stack overflow is reported,
 * not turned into a triple fault).
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

#define SEL_CODE 0x08
#define SEL_DATA 0x10
#define SEL_TSS  0x18

static struct tss64 tss;
static uint8_t ist1_stack[8192] __attribute__((aligned(16)));
static uint64_t gdt[5] __attribute__((aligned(16)));

void gdt_init(void)
{
    gdt[0] = 0;
    gdt[1] = 0x00AF9A000000FFFFull;   /* code: P, DPL0, exec/read, L=1 */
    gdt[2] = 0x00CF92000000FFFFull;   /* data: P, DPL0, read/write */
    tss.ist[0] = (uint64_t)(uintptr_t)(ist1_stack + sizeof ist1_stack);
    tss.iomap_base = sizeof tss;      /* no I/O bitmap */
    uint64_t base = (uint64_t)(uintptr_t)&tss;
    uint64_t limit = sizeof tss - 1;
    gdt[3] = (limit & 0xFFFF) | ((base & 0xFFFFFF) << 16) |
             (0x89ull << 40) |            /* P, available 64-bit TSS */
             (((limit >> 16) & 0xF) << 48) | (((base >> 24) & 0xFF) << 56);
    gdt[4] = base >> 32;

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
        : : "m"(gdtr), "i"(SEL_CODE), "i"(SEL_DATA), "i"(SEL_TSS)
        : "rax", "memory");
}
