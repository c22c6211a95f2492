/*
 * svm.h — AMD SVM with nested paging for the bare monitor: what the CPU
 * offers, turning it on, the VMCB's layout (the fields the monitor uses:
 * AMD64 APM volume 2, appendix B), entering a guest, and the entry probe
 * (svm-probe: a minimal long-mode guest whose VMMCALLs exit to the
 * monitor, which measures what an entry and exit cost). The svm isolation
 * backend (dom_svm.h) runs domains as guests with these.
 *
 * A guest is entered with svm_run (the probe's, no guest registers but
 * RAX/RSP/RIP, which live in the VMCB) or svm_enter (a domain's: its other
 * general registers are loaded from and saved into a trap frame). Both
 * clear GIF around VMRUN and run the guest with the host's IF set, so a
 * physical interrupt while the guest runs is an INTR #VMEXIT, and it is
 * taken, through the monitor's IDT, when GIF is set again after it.
 * Called with interrupts off; they are off again on return.
 */
#ifndef BARE_SVM_H
#define BARE_SVM_H

#include <stdbool.h>
#include <stdint.h>
#include "gk/trap.h"

/* Control area. */
#define VMCB_INTERCEPT_CR    0x000u
#define VMCB_INTERCEPT_EXC   0x008u     /* one bit per exception vector */
#define VMCB_INTERCEPT_MISC1 0x00Cu
#define VMCB_INTERCEPT_MISC2 0x010u
#define VMCB_IOPM_BASE   0x040u
#define VMCB_MSRPM_BASE  0x048u
#define VMCB_ASID        0x058u
#define VMCB_TLB_CONTROL 0x05Cu         /* byte */
#define VMCB_VINTR       0x060u
#define VMCB_EXITCODE    0x070u
#define VMCB_EXITINFO1   0x078u
#define VMCB_EXITINFO2   0x080u
#define VMCB_NP_ENABLE   0x090u
#define VMCB_NCR3        0x0B0u
/* State save area (0x400 on). */
#define VMCB_ES     0x400u
#define VMCB_CS     0x410u
#define VMCB_SS     0x420u
#define VMCB_DS     0x430u
#define VMCB_GDTR   0x460u
#define VMCB_IDTR   0x480u
#define VMCB_TR     0x490u
#define VMCB_CPL    0x4CBu              /* byte */
#define VMCB_EFER   0x4D0u
#define VMCB_CR4    0x548u
#define VMCB_CR3    0x550u
#define VMCB_CR0    0x558u
#define VMCB_RFLAGS 0x570u
#define VMCB_RIP    0x578u
#define VMCB_RSP    0x5D8u
#define VMCB_RAX    0x5F8u
#define VMCB_CR2    0x640u
#define VMCB_GPAT   0x668u

#define SVM_INTERCEPT_INTR     (1u << 0)    /* misc1 */
#define SVM_INTERCEPT_NMI      (1u << 1)
#define SVM_INTERCEPT_SMI      (1u << 2)
#define SVM_INTERCEPT_INIT     (1u << 3)
#define SVM_INTERCEPT_INTN     (1u << 21)
#define SVM_INTERCEPT_HLT      (1u << 24)
#define SVM_INTERCEPT_IOIO     (1u << 27)
#define SVM_INTERCEPT_MSR      (1u << 28)
#define SVM_INTERCEPT_SHUTDOWN (1u << 31)
#define SVM_INTERCEPT_VMRUN    (1u << 0)    /* misc2: VMRUN's is required */
#define SVM_INTERCEPT_VMMCALL  (1u << 1)
#define SVM_INTERCEPT_ALL_SVM  0xFFu        /* VMRUN ... INVLPGA, SKINIT */
#define SVM_V_INTR_MASKING     (1ull << 24)

#define SVM_EXIT_EXCP_BASE 0x40u            /* + vector */
#define SVM_EXIT_INTR      0x60u
#define SVM_EXIT_NMI       0x61u
#define SVM_EXIT_SMI       0x62u
#define SVM_EXIT_INIT      0x63u
#define SVM_EXIT_SWINT     0x75u
#define SVM_EXIT_HLT       0x78u
#define SVM_EXIT_IOIO      0x7Bu
#define SVM_EXIT_MSR       0x7Cu
#define SVM_EXIT_SHUTDOWN  0x7Fu
#define SVM_EXIT_VMMCALL   0x81u
#define SVM_EXIT_NPF       0x400u
#define SVM_EXIT_INVALID   (~0ull)          /* VMRUN refused the guest state */

static inline void vmcb_w8(uint64_t v, uint32_t off, uint8_t x) { *(volatile uint8_t *)(uintptr_t)(v + off) = x; }
static inline void vmcb_w16(uint64_t v, uint32_t off, uint16_t x) { *(volatile uint16_t *)(uintptr_t)(v + off) = x; }
static inline void vmcb_w32(uint64_t v, uint32_t off, uint32_t x) { *(volatile uint32_t *)(uintptr_t)(v + off) = x; }
static inline void vmcb_w64(uint64_t v, uint32_t off, uint64_t x) { *(volatile uint64_t *)(uintptr_t)(v + off) = x; }
static inline uint64_t vmcb_r64(uint64_t v, uint32_t off) { return *(volatile uint64_t *)(uintptr_t)(v + off); }

/* A segment in the state save area: selector, attributes (descriptor
 * bits 40-47, then 52-55), limit, base. */
void svm_seg(uint64_t vmcb, uint32_t off, uint16_t sel, uint16_t attr, uint32_t limit,
             uint64_t base);

/* Does this CPU offer SVM with nested paging (and has firmware left it
 * enabled: VM_CR.SVMDIS clear)? why says what is missing. */
bool svm_offered(const char **why);
/* Turn SVM on (EFER.SVME, the host save area), once; false (*why) when
 * it is not offered or memory is short. */
bool svm_enable(const char **why);
/* An I/O and an MSR permission map that intercept everything (shared by
 * every guest): their physical addresses, after svm_enable. */
uint64_t svm_iopm_all(void);
uint64_t svm_msrpm_all(void);

/* Enter the guest of vmcb (physical) with its RAX/RSP/RIP from the VMCB
 * and its other general registers from f; at the #VMEXIT, f holds them. */
void svm_enter(uint64_t vmcb, struct trap_frame *f);

/* Enter the probe guest n times (each a VMRUN and a VMMCALL #VMEXIT; an
 * interrupt's exit is taken and the guest entered again, not counted);
 * false (and *why) when SVM is not offered or the guest exits for
 * another reason (its exit code in *exit_code). *tsc gets the TSC ticks
 * spent. */
bool svm_probe(uint32_t n, uint64_t *tsc, uint64_t *exit_code, const char **why);

#endif /* BARE_SVM_H */
