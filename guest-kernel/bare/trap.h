/*
 * trap.h — traps in the kernel booted bare. A monitor exception reports
 * the vector, error code, every register and CR2 on COM1, then halts (the
 * machine stays up for a debugger or the console's reader). Interrupts:
 * the local APIC timer, the spurious vectors, device MSIs routed to
 * domains (dom.h), vtd.h's interrupt canary; an NMI is counted. From ring 3: system calls and domain faults.
 */
#ifndef BARE_TRAP_H
#define BARE_TRAP_H

#include <stdint.h>
#include "gk/trap.h"

/* trap_entry.S builds gk/trap.h's struct trap_frame (the hosted kernel's
 * isr.S builds the same; gk/trap_regs.h saves the registers for both). */

/* The GDT (ring 3 segments, TSS) and an IDT for all 256 vectors: int3 is
 * the domains' system call gate; exceptions from ring 3 end the domain
 * (dom.h), from ring 0 they are reported and halt the machine. */
void trap_init(void);
void bare_trap(struct trap_frame *f);
/* NMIs taken (counted, never fatal: nothing here asks for one). */
uint64_t trap_nmis(void);
/* "#PF page fault", ...; "exception" past the known ones. */
const char *trap_name(uint64_t vector);
/* CR3 of the monitor (taken on every trap from ring 3) and of the domain
 * running now (loaded when a trap returns to ring 3). */
extern uint64_t bare_master_cr3, bare_user_cr3;
/* Enter a ring-3 frame (trap_entry.S); f sits where the trap stack's
 * frame would. */
_Noreturn void bare_resume(struct trap_frame *f);
/* The monitor loop's setjmp/longjmp: save returns 0, and 1 when jumped to. */
struct bare_ctx { uint64_t rip, rsp, rbx, rbp, r12, r13, r14, r15; };
int bare_ctx_save(struct bare_ctx *c) __attribute__((returns_twice));
_Noreturn void bare_ctx_jump(struct bare_ctx *c);

#endif /* BARE_TRAP_H */
