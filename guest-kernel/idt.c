/* IDT setup and trap dispatch (contract in gk/trap.h). */
#include <stddef.h>
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
#define VEC_FIRST_DYNAMIC 48u

extern char isr_stubs[];

static struct idt_entry idt[256] __attribute__((aligned(16)));
static struct { irq_handler_fn fn; void *ctx; } handlers[256];
static volatile uint64_t irq_count;

uint64_t trap_irq_count(void) { return irq_count; }

void idt_init(void)
{
    for (unsigned v = 0; v < 256; v++) {
        uint64_t a = (uint64_t)(uintptr_t)(isr_stubs + 16 * v);
        idt[v] = (struct idt_entry){
            .off_lo = (uint16_t)a, .sel = 0x08,
            .ist = v == VEC_DF ? 1 : 0,
            .type_attr = 0x8E,            /* P, DPL0, 64-bit interrupt gate */
            .off_mid = (uint16_t)(a >> 16), .off_hi = (uint32_t)(a >> 32),
        };
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

uint32_t irq_alloc_vector(irq_handler_fn fn, void *ctx)
{
    for (uint32_t v = VEC_FIRST_DYNAMIC; v < VEC_SPURIOUS; v++)
        if (irq_register(v, fn, ctx))
            return v;
    return 0;
}

void trap_dispatch(struct trap_frame *f)
{
    uint32_t v = (uint32_t)f->vector;
    if (v < VEC_FIRST_IRQ)
        crash_from_trap(f);
    if (v == VEC_SPURIOUS)
        return;
    irq_count++;
    if (!handlers[v].fn)
        panic("interrupt on unclaimed vector %u", v);
    handlers[v].fn(handlers[v].ctx, v);
    lapic_eoi();
}
