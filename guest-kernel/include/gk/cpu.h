/*
 * gk/cpu.h — x86_64 instruction wrappers for the guest kernel. Each is one
 * instruction; none has side effects beyond the instruction's own.
 */
#ifndef GK_CPU_H
#define GK_CPU_H

#include <stdint.h>

#define MSR_EFER           0xC0000080u
#define EFER_NXE           (1ull << 11)
#define MSR_APIC_BASE      0x1Bu
#define MSR_TSC_DEADLINE   0x6E0u

#define CR0_WP             (1ull << 16)

static inline void outb(uint16_t port, uint8_t v)
{ __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outl(uint16_t port, uint32_t v)
{ __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outw(uint16_t port, uint16_t v)
{ __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port)); }
static inline uint8_t inb(uint16_t port)
{ uint8_t v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline uint16_t inw(uint16_t port)
{ uint16_t v; __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline uint32_t inl(uint16_t port)
{ uint32_t v; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port)); return v; }

/* One string OUT: the VMM sees it as a single exit carrying len bytes. */
static inline void outsb(uint16_t port, const void *buf, uint64_t len)
{
    __asm__ volatile("rep outsb"
                     : "+S"(buf), "+c"(len) : "d"(port) : "memory");
}

static inline uint64_t rdmsr(uint32_t msr)
{
    uint32_t lo, hi;
    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return ((uint64_t)hi << 32) | lo;
}
static inline void wrmsr(uint32_t msr, uint64_t v)
{
    __asm__ volatile("wrmsr" : : "c"(msr), "a"((uint32_t)v),
                     "d"((uint32_t)(v >> 32)) : "memory");
}

static inline uint64_t rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

static inline void cpuid(uint32_t leaf, uint32_t sub, uint32_t *a, uint32_t *b,
                         uint32_t *c, uint32_t *d)
{
    __asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d)
                     : "a"(leaf), "c"(sub));
}

#define DEFINE_CR_ACCESS(n)                                                  \
    static inline uint64_t read_cr##n(void)                                  \
    { uint64_t v; __asm__ volatile("mov %%cr" #n ", %0" : "=r"(v)); return v; } \
    static inline void write_cr##n(uint64_t v)                               \
    { __asm__ volatile("mov %0, %%cr" #n : : "r"(v) : "memory"); }
DEFINE_CR_ACCESS(0)
DEFINE_CR_ACCESS(2)
DEFINE_CR_ACCESS(3)
DEFINE_CR_ACCESS(4)
#undef DEFINE_CR_ACCESS

static inline void cli(void) { __asm__ volatile("cli" ::: "memory"); }
static inline void sti(void) { __asm__ volatile("sti" ::: "memory"); }
/* sti's one-instruction shadow makes "sti; hlt" free of the lost-wakeup race. */
static inline void sti_hlt(void) { __asm__ volatile("sti; hlt" ::: "memory"); }
static inline void hlt(void) { __asm__ volatile("hlt" ::: "memory"); }
static inline void cpu_relax(void) { __asm__ volatile("pause" ::: "memory"); }

static inline uint64_t read_rflags(void)
{ uint64_t f; __asm__ volatile("pushfq; popq %0" : "=r"(f)); return f; }
#define RFLAGS_IF (1ull << 9)

static inline void compiler_barrier(void) { __asm__ volatile("" ::: "memory"); }

#endif /* GK_CPU_H */
