/* Exception reports of the bare kernel (contract in trap.h). */
#include "apic.h"
#include "com1.h"
#include "dom.h"
#include "gk/trap.h"
#include "trap.h"
#include "vtd.h"

struct idt_gate {
    uint16_t off_lo, sel;
    uint8_t ist, type;
    uint16_t off_mid;
    uint32_t off_hi, zero;
} __attribute__((packed));

extern const uint64_t bare_isr_table[256];
static struct idt_gate idt[256] __attribute__((aligned(16)));

static const char *const names[32] = {
    "#DE divide error", "#DB debug", "NMI", "#BP breakpoint", "#OF overflow",
    "#BR bound range", "#UD invalid opcode", "#NM device not available", "#DF double fault",
    "coprocessor segment overrun", "#TS invalid TSS", "#NP segment not present",
    "#SS stack fault", "#GP general protection", "#PF page fault", "reserved",
    "#MF x87 error", "#AC alignment check", "#MC machine check", "#XM SIMD error",
    "#VE virtualization", "#CP control protection",
};

uint64_t bare_master_cr3, bare_user_cr3;

/* type: 0x8E interrupt gate, DPL 0; 0xEE the same callable from ring 3. */
static void gate(unsigned v, uint64_t a, uint8_t type, uint8_t ist)
{
    idt[v] = (struct idt_gate){ .off_lo = (uint16_t)a, .sel = SEL_KCODE, .ist = ist, .type = type,
                                .off_mid = (uint16_t)(a >> 16), .off_hi = (uint32_t)(a >> 32) };
}

void trap_init(void)
{
    gdt_init();                 /* flat segments, ring 3, the TSS (IST1 for #DF) */
    for (unsigned v = 0; v < 256; v++)
        gate(v, bare_isr_table[v], v == VEC_SYSCALL ? 0xEE : 0x8E, v == 8 ? 1 : 0);
    struct { uint16_t limit; uint64_t base; } __attribute__((packed)) d = {
        .limit = sizeof idt - 1, .base = (uint64_t)(uintptr_t)idt };
    __asm__ volatile("lidt %0" : : "m"(d));
    __asm__ volatile("mov %%cr3, %0" : "=r"(bare_master_cr3));
}

const char *trap_name(uint64_t vector)
{
    return vector < 32 && names[vector] ? names[vector] : "exception";
}

/* A fault of the monitor itself: report everything and halt. */
static _Noreturn void monitor_fault(const struct trap_frame *f)

{
    uint64_t cr2;
    __asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
    const char *name = trap_name(f->vector);
    com1_printf("\nmoat bare: PANIC: %s (vector %llu, error 0x%llx) at RIP 0x%016llx\n", name,
                (unsigned long long)f->vector, (unsigned long long)f->error_code,
                (unsigned long long)f->rip);
    com1_printf("  RAX %016llx RBX %016llx RCX %016llx RDX %016llx\n",
                (unsigned long long)f->rax, (unsigned long long)f->rbx,
                (unsigned long long)f->rcx, (unsigned long long)f->rdx);
    com1_printf("  RSI %016llx RDI %016llx RBP %016llx RSP %016llx\n",
                (unsigned long long)f->rsi, (unsigned long long)f->rdi,
                (unsigned long long)f->rbp, (unsigned long long)f->rsp);
    com1_printf("  R8  %016llx R9  %016llx R10 %016llx R11 %016llx\n",
                (unsigned long long)f->r8, (unsigned long long)f->r9,
                (unsigned long long)f->r10, (unsigned long long)f->r11);
    com1_printf("  R12 %016llx R13 %016llx R14 %016llx R15 %016llx\n",
                (unsigned long long)f->r12, (unsigned long long)f->r13,
                (unsigned long long)f->r14, (unsigned long long)f->r15);
    com1_printf("  RFLAGS %016llx CS %04llx SS %04llx CR2 %016llx\n",
                (unsigned long long)f->rflags, (unsigned long long)f->cs,
                (unsigned long long)f->ss, (unsigned long long)cr2);
    com1_printf("moat bare: halted\n");
    for (;;)
        __asm__ volatile("cli; hlt");
}

static uint64_t nmis;

uint64_t trap_nmis(void) { return nmis; }

void bare_trap(struct trap_frame *f)
{
    bool user = (f->cs & 3) == 3;
    uint64_t v = f->vector;
    if (v == APIC_SPURIOUS_VECTOR || v == PIC_VECTOR_BASE + 7 || v == PIC_VECTOR_BASE + 15)
        return;                             /* no EOI for a spurious interrupt */
    if (v == 2) {
        /* Nobody here asks for NMIs: a platform error, or one forged by a
         * device past an IOMMU that does not remap interrupts. Neither is
         * the running domain's fault, and the monitor goes on. */
        if (nmis++ == 0)
            com1_printf("moat bare: an NMI (no source known; further ones are only counted)\n");
    } else if (v == VEC_SYSCALL && user)
        dom_syscall(f);
    else if (v < 32 && user)
        dom_fault(f);                       /* never returns */
    else if (v < 32)
        monitor_fault(f);
    else if (v == APIC_TIMER_VECTOR) {
        apic_timer_tick();
        dom_tick();
    } else if (v == IR_CANARY_VECTOR) {
        vtd_ir_canary_fired();
        apic_eoi();
    } else {
        dom_irq((uint32_t)v);
        apic_eoi();
    }
    if (user)
        dom_return(f);                      /* may leave for the monitor loop */
}
