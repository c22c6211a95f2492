/* IDT setup and trap dispatch (contract in gk/trap.h). */
#include <stddef.h>
#include "gk/event.h"
#include "gk/intx.h"
#include "gk/lapic.h"
#include "gk/panic.h"
#include "gk/trap.h"

struct __attribute__((packed)) idt_entry {
    uint16_t off_lo;
    uint16_t sel;
    uint8_t ist;
    uint8_t type_attr;
    uint16_t off_mid;
    uint32_t off_hi;
    uint32_t zero;
};
_Static_assert(sizeof(struct idt_entry) == 16, "IDT gate is 16 bytes");

#define VEC_DF 8u

/* Gate for vector v (SDM Vol. 3A, Figure 6-8): interrupt gate to stub v in
 * the kernel code segment; DPL 3 for the system call vector, IST 1 for
 * double faults. Stubs are below 4 GiB, so the high quadword is 0. */
#define STUB(v) (GK_ISR_STUBS + 16ull * (v))
#define GATE(v)                                                                        \
    ((STUB(v) & 0xFFFFull) | ((uint64_t)SEL_KCODE << 16) |                            \
     ((uint64_t)((v) == VEC_DF) << 32) | ((uint64_t)((v) == VEC_SYSCALL ? 0xEE : 0x8E) << 40) | \
     ((STUB(v) >> 16 & 0xFFFFull) << 48)),                                           \
    0ull
#define GATES4(v) GATE(v), GATE((v) + 1), GATE((v) + 2), GATE((v) + 3)
#define GATES16(v) GATES4(v), GATES4((v) + 4), GATES4((v) + 8), GATES4((v) + 12)
#define GATES64(v) GATES16(v), GATES16((v) + 16), GATES16((v) + 32), GATES16((v) + 48)
_Static_assert(GK_ISR_STUBS < (1ull << 32), "gates assume the stubs below 4 GiB");

/* 256 gates of struct idt_entry layout, as quadword pairs; read-only. */
static const uint64_t idt[2 * 256] __attribute__((aligned(16))) = {
    GATES64(0), GATES64(64), GATES64(128), GATES64(192),
};
static struct { irq_handler_fn fn; void *ctx; } handlers[256];
static volatile uint64_t irq_count;

uint64_t trap_irq_count(void) { return irq_count; }

void idt_init(void)
{
    struct __attribute__((packed)) { uint16_t limit; uint64_t base; } idtr = {
        sizeof idt - 1, (uint64_t)(uintptr_t)idt
    };
    __asm__ volatile("lidt %0" : : "m"(idtr));
}

void idt_load_empty(void)
{
    struct __attribute__((packed)) { uint16_t limit; uint64_t base; } idtr = { 0, 0 };
    __asm__ volatile("lidt %0" : : "m"(idtr));
}

bool irq_register(uint32_t vector, irq_handler_fn fn, void *ctx)
{
    if (vector < VEC_FIRST_IRQ || vector >= VEC_SPURIOUS || !fn ||
        handlers[vector].fn)
        return false;
    handlers[vector].ctx = ctx;
    handlers[vector].fn = fn;
    return true;
}

void trap_dispatch(struct trap_frame *f)
{
    uint32_t v = (uint32_t)f->vector;
    if (v == VEC_SYSCALL && (f->cs & 3) == 3) {
        syscall_dispatch(f);
        return;
    }
    if (v < VEC_FIRST_IRQ)
        crash_from_trap(f);
    if (v == VEC_SPURIOUS)
        return;
    irq_count++;
    if (handlers[v].fn)
        handlers[v].fn(handlers[v].ctx, v);
    else if (!gk_event_mark(v))
        panic("interrupt on unclaimed vector %u", v);
    intx_on_vector(v);      /* a level INTx stays masked until ring 3 acks it */
    lapic_eoi();
}
