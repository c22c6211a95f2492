/*
 * gk/trap.h — IDT, trap frames and interrupt handler registration.
 *
 * Vectors 0..31 are CPU exceptions: always fatal, reported to the platform
 * with the full register dump (see panic.h). Vectors 32..254 may be claimed
 * with irq_register(); an unclaimed one arriving is a panic. 255 is the
 * LAPIC spurious vector and is ignored. Handlers run with interrupts off and
 * the LAPIC is EOI'd after the handler returns.
 */
#ifndef GK_TRAP_H
#define GK_TRAP_H

#include <stdbool.h>
#include <stdint.h>

/* Memory order of what isr.S pushes; lowest address first. */
struct trap_frame {
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
    uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
    uint64_t vector, error_code;
    uint64_t rip, cs, rflags, rsp, ss;
};

#define VEC_FIRST_IRQ   32u
#define VEC_TIMER       32u
#define VEC_SPURIOUS    255u

typedef void (*irq_handler_fn)(void *ctx, uint32_t vector);

void idt_init(void);
/* Claim vector for handler; returns false if out of range or taken. */
bool irq_register(uint32_t vector, irq_handler_fn fn, void *ctx);
/* Allocate a free vector >= 48 and claim it; returns 0 when none is free. */
uint32_t irq_alloc_vector(irq_handler_fn fn, void *ctx);
/* Load a zero-length IDT: the next exception triple-faults (tests only). */
void idt_load_empty(void);

void trap_dispatch(struct trap_frame *f);
/* Interrupts (vectors >= 32) taken so far; the run loop sleeps only when
 * this has not moved since it last polled. */
uint64_t trap_irq_count(void);

void gdt_init(void);

#endif /* GK_TRAP_H */
