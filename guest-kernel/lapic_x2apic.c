/* Local APIC through x2APIC MSRs (contract in gk/lapic.h). Register numbers:
 * Intel SDM Vol. 3, Table 11-6 (x2APIC MSR = 0x800 + xAPIC offset / 16). */
#include "gk/cpu.h"
#include "gk/lapic.h"
#include "gk/panic.h"
#include "gk/trap.h"

#define APIC_BASE_EN    (1ull << 11)
#define APIC_BASE_EXTD  (1ull << 10)
#define X2APIC_ID       0x802u
#define X2APIC_TPR      0x808u
#define X2APIC_EOI      0x80Bu
#define X2APIC_SVR      0x80Fu
#define X2APIC_ESR      0x828u
#define X2APIC_LVT_TMR  0x832u
#define SVR_ENABLE      (1u << 8)
#define LVT_TSC_DEADLINE (2u << 17)
#define CPUID1_ECX_X2APIC       (1u << 21)
#define CPUID1_ECX_TSC_DEADLINE (1u << 24)

void lapic_init(void)
{
    uint32_t a, b, c, d;
    cpuid(1, 0, &a, &b, &c, &d);
    if (!(c & CPUID1_ECX_X2APIC))
        panic("CPU offers no x2APIC (CPUID.1:ECX[21]); hosted domains need it");
    if (!(c & CPUID1_ECX_TSC_DEADLINE))
        panic("CPU offers no TSC-deadline timer (CPUID.1:ECX[24])");
    uint64_t base = rdmsr(MSR_APIC_BASE);
    /* xAPIC must be enabled before x2APIC (SDM 11.12.5 state transitions). */
    wrmsr(MSR_APIC_BASE, base | APIC_BASE_EN);
    wrmsr(MSR_APIC_BASE, base | APIC_BASE_EN | APIC_BASE_EXTD);
    wrmsr(X2APIC_TPR, 0);
    wrmsr(X2APIC_SVR, SVR_ENABLE | VEC_SPURIOUS);
    wrmsr(X2APIC_ESR, 0);
}

void lapic_eoi(void) { wrmsr(X2APIC_EOI, 0); }

uint32_t lapic_id(void) { return (uint32_t)rdmsr(X2APIC_ID); }

void lapic_timer_deadline_mode(uint32_t vector)
{
    wrmsr(X2APIC_LVT_TMR, LVT_TSC_DEADLINE | (vector & 0xFF));
    /* SDM 10.5.4.1: order the LVT write before the first deadline write. */
    __asm__ volatile("mfence" ::: "memory");
}

void lapic_timer_arm(uint64_t tsc_deadline)
{
    wrmsr(MSR_TSC_DEADLINE, tsc_deadline);
}
