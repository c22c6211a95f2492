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

extern char isr_stubs[];

/* 256 gates of struct idt_entry layout, stored as quadword pairs. */
static uint64_t idt[2 * 256] __attribute__((aligned(16)));
static struct { irq_handler_fn fn; void *ctx; } handlers[256];
static volatile uint64_t irq_count;

uint64_t trap_irq_count(void) { return irq_count; }

void idt_init(void)
{
    /* Two quadword stores per gate, few instructions: this runs in
     * emulated ring 0 (gate layout: SDM Vol. 3A, Figure 6-8). */
    uint64_t *q = idt;
    uint64_t a = (uint64_t)(uintptr_t)isr_stubs;
    for (unsigned v = 0; v < 256; v++, a += 16) {
        uint64_t attr = v == VEC_SYSCALL ? 0xEEull : 0x8Eull;
        uint64_t ist = v == VEC_DF ? 1ull : 0ull;
        q[2 * v] = (a & 0xFFFF) | ((uint64_t)SEL_KCODE << 16) | (ist << 32) | (attr << 40) |
                   ((a >> 16 & 0xFFFF) << 48);
        q[2 * v + 1] = a >> 32;
    }
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
