/*
 * gk/trap.h — GDT, IDT, trap frames, kernel interrupt handlers, ring 3.
 *
 * Vector 3 (int3) from ring 3 is the system call gate (gk/sys.h). Every other
 * vector below 32 is a CPU exception: always fatal, reported to the platform
 * with the full register dump (see panic.h), whichever ring it came from.
 * Vectors 32..254 are either kernel handlers claimed with irq_register() or
 * ring-3 events (gk/event.h); anything else arriving is a panic. 255 is the
 * LAPIC spurious vector and is ignored. Handlers run in ring 0 with
 * interrupts off; the LAPIC is EOI'd after the handler returns.
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

#define VEC_SYSCALL     3u
#define VEC_FIRST_IRQ   32u
#define VEC_TIMER       32u
#define VEC_SPURIOUS    255u

typedef void (*irq_handler_fn)(void *ctx, uint32_t vector);

/* Where kernel.ld puts isr.S's 256 stubs of 16 bytes (the start of .text):
 * the IDT is a constant table built from it. */
#define GK_ISR_STUBS 0x100000ull
/* Load the IDT (a constant, read-only table: no ring-0 work to build). */
void idt_init(void);
/* Claim vector for handler; returns false if out of range or taken. */
bool irq_register(uint32_t vector, irq_handler_fn fn, void *ctx);
/* Load a zero-length IDT: the next exception triple-faults (tests only). */
void idt_load_empty(void);

void trap_dispatch(struct trap_frame *f);
/* Interrupts (vectors >= 32) taken so far; the run loop sleeps only when
 * this has not moved since it last polled. */
uint64_t trap_irq_count(void);

void syscall_dispatch(struct trap_frame *f);

#define SEL_KCODE 0x08
#define SEL_KDATA 0x10
#define SEL_UDATA 0x1B      /* GDT entry 3, RPL 3 */
#define SEL_UCODE 0x23      /* GDT entry 4, RPL 3 */
#define SEL_TSS   0x28

void gdt_init(void);
/* Stack the CPU switches to on a trap from ring 3 (TSS.RSP0). */
void gdt_set_kernel_stack(uint64_t top);
/* Leave ring 0 for good: run fn(arg) in ring 3 on stack_top, interrupts on. */
_Noreturn void enter_user(void (*fn)(const char *), uint64_t stack_top, const char *arg);
/* True when running in ring 3. */
static inline bool cpu_in_user(void)
{
    uint16_t cs;
    __asm__ volatile("mov %%cs, %0" : "=r"(cs));
    return (cs & 3) == 3;
}

#endif /* GK_TRAP_H */
