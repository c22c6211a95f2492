/* Local APIC, I/O APICs and the timer (contract in apic.h). Registers:
 * Intel SDM vol. 3 ch. 10 (xAPIC offsets; x2APIC MSR = 0x800 + off/16)
 * and the 82093AA I/O APIC datasheet. */
#include <stddef.h>
#include "apic.h"
#include "gk/cpu.h"
#include "mmio_map.h"

#define MSR_APIC_BASE   0x1Bu
#define APIC_BASE_EN    (1ull << 11)
#define APIC_BASE_EXTD  (1ull << 10)    /* x2APIC mode */
#define REG_ID          0x020u
#define REG_VERSION     0x030u
#define REG_TPR         0x080u
#define REG_EOI         0x0B0u
#define REG_SVR         0x0F0u
#define REG_LVT_TIMER   0x320u
#define REG_TIMER_INIT  0x380u
#define REG_TIMER_DIV   0x3E0u
#define SVR_ENABLE      0x100u
#define LVT_PERIODIC    (1u << 17)
#define IOAPIC_SEL      0x00u
#define IOAPIC_WIN      0x10u
#define IOAPIC_VER      0x01u
#define IOAPIC_REDIR(n) (0x10u + 2u * (n))
#define IOAPIC_MASKED   (1u << 16)
#define IOAPIC_LEVEL    (1u << 15)

static bool x2;
static uint32_t local_id;
static volatile uint32_t *xapic;
static volatile uint64_t ticks;
struct ioapic_at { uint32_t addr, gsi_base, inputs; uint8_t id; };
static struct ioapic_at ioapics[ACPI_IOAPICS_MAX];
static uint32_t n_ioapics;

static uint64_t rdmsr64(uint32_t msr)
{
    uint32_t lo, hi;
    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return (uint64_t)hi << 32 | lo;
}

static void wrmsr64(uint32_t msr, uint64_t v)
{
    __asm__ volatile("wrmsr" : : "c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)));
}

static uint32_t apic_read(uint32_t off)
{
    return x2 ? (uint32_t)rdmsr64(0x800u + (off >> 4)) : xapic[off / 4u];
}

static void apic_write(uint32_t off, uint32_t v)
{
    if (x2)
        wrmsr64(0x800u + (off >> 4), v);
    else
        xapic[off / 4u] = v;
}

static uint32_t ioapic_read(uint32_t addr, uint32_t reg)
{
    volatile uint32_t *io = (volatile uint32_t *)(uintptr_t)addr;
    io[IOAPIC_SEL / 4u] = reg;
    return io[IOAPIC_WIN / 4u];
}

static void ioapic_write(uint32_t addr, uint32_t reg, uint32_t v)
{
    volatile uint32_t *io = (volatile uint32_t *)(uintptr_t)addr;
    io[IOAPIC_SEL / 4u] = reg;
    io[IOAPIC_WIN / 4u] = v;
}

/* The legacy 8259 pair: the BIOS leaves IRQ 0 on vector 8 (#DF's). Move
 * both to PIC_VECTOR_BASE.. (their spurious IRQ 7 and 15 land on gates of
 * their own) and mask every input: interrupts come through the APICs. */
static void pic_off(void)
{
    outb(0x20, 0x11);                   /* ICW1: init, ICW4 follows */
    outb(0xA0, 0x11);
    outb(0x21, PIC_VECTOR_BASE);        /* ICW2: vector bases */
    outb(0xA1, PIC_VECTOR_BASE + 8);
    outb(0x21, 0x04);                   /* ICW3: slave on IRQ 2 */
    outb(0xA1, 0x02);
    outb(0x21, 0x01);                   /* ICW4: 8086 mode */
    outb(0xA1, 0x01);
    outb(0x21, 0xFF);                   /* mask all */
    outb(0xA1, 0xFF);
}

void apic_init(const struct acpi_info *acpi, struct apic_state *out)
{
    pic_off();
    uint32_t a = 1, b, c, d;
    __asm__ volatile("cpuid" : "+a"(a), "=b"(b), "=c"(c), "=d"(d));
    x2 = (c >> 21) & 1u;
    uint64_t base = rdmsr64(MSR_APIC_BASE);
    out->base = base & 0xFFFFFF000ull;
    if (x2) {
        wrmsr64(MSR_APIC_BASE, base | APIC_BASE_EN);    /* xAPIC first, then x2APIC */
        wrmsr64(MSR_APIC_BASE, base | APIC_BASE_EN | APIC_BASE_EXTD);
    } else {
        wrmsr64(MSR_APIC_BASE, base | APIC_BASE_EN);
        mmio_map(out->base, 4096);
        xapic = (volatile uint32_t *)(uintptr_t)out->base;
    }
    out->x2apic = x2;
    out->id = local_id = x2 ? apic_read(REG_ID) : apic_read(REG_ID) >> 24;
    out->version = apic_read(REG_VERSION) & 0xFFu;
    out->max_lvt = ((apic_read(REG_VERSION) >> 16) & 0xFFu) + 1u;
    /* Task priority class 1: a fixed interrupt on a vector below 32 (the
     * exception vectors, and int3, the domains' system call) is never
     * delivered, so a forged MSI can never pass for an exception or a
     * system call. Every vector the monitor uses is 32 or above. */
    apic_write(REG_TPR, APIC_TPR_BLOCK_EXCEPTION_VECTORS);
    apic_write(REG_SVR, SVR_ENABLE | APIC_SPURIOUS_VECTOR);
    /* Every I/O APIC input masked: no device interrupt until a driver asks. */
    for (uint32_t i = 0; i < acpi->n_ioapics && i < ACPI_IOAPICS_MAX; i++) {
        uint32_t addr = acpi->ioapic[i].addr;
        mmio_map(addr, 4096);
        uint32_t n = ((ioapic_read(addr, IOAPIC_VER) >> 16) & 0xFFu) + 1u;
        out->ioapic_inputs[i] = n;
        ioapics[n_ioapics++] = (struct ioapic_at){ addr, acpi->ioapic[i].gsi_base, n, acpi->ioapic[i].id };
        for (uint32_t e = 0; e < n; e++)
            ioapic_write(addr, IOAPIC_REDIR(e), IOAPIC_MASKED);
    }
    apic_write(REG_TIMER_DIV, 0x3u);                    /* divide by 16 */
    apic_write(REG_LVT_TIMER, LVT_PERIODIC | APIC_TIMER_VECTOR);
    apic_write(REG_TIMER_INIT, 1000000u);
}

void apic_eoi(void) { apic_write(REG_EOI, 0); }
uint32_t apic_local_id(void) { return local_id; }

/* The I/O APIC and input of gsi, or NULL. */
static const struct ioapic_at *ioapic_of(uint32_t gsi, uint32_t *addr, uint32_t *pin)
{
    for (uint32_t i = 0; i < n_ioapics; i++)
        if (gsi >= ioapics[i].gsi_base && gsi - ioapics[i].gsi_base < ioapics[i].inputs) {
            *addr = ioapics[i].addr;
            *pin = gsi - ioapics[i].gsi_base;
            return &ioapics[i];
        }
    return NULL;
}

bool ioapic_id_of(uint32_t gsi, uint8_t *id)
{
    uint32_t addr, pin;
    const struct ioapic_at *io = ioapic_of(gsi, &addr, &pin);
    if (io)
        *id = io->id;
    return io != NULL;
}

/* Program an input as level, active high, unmasked: hi and lo are the
 * entry's halves (lo without the level bit). */
static bool route(uint32_t gsi, uint32_t hi, uint32_t lo)
{
    uint32_t addr, pin;
    if (!ioapic_of(gsi, &addr, &pin))
        return false;
    ioapic_write(addr, IOAPIC_REDIR(pin), IOAPIC_MASKED);
    ioapic_write(addr, IOAPIC_REDIR(pin) + 1, hi);
    ioapic_write(addr, IOAPIC_REDIR(pin), IOAPIC_LEVEL | lo);
    return true;
}

bool ioapic_route_level(uint32_t gsi, uint8_t vector, uint32_t dest)
{
    return route(gsi, dest << 24, vector);      /* fixed, physical destination */
}

bool ioapic_route_remapped(uint32_t gsi, uint8_t vector, uint16_t handle)
{
    /* Remappable format: bit 48 set, handle[14:0] in 63:49, handle[15] in
     * bit 11; the vector stays for the EOI that ends a level interrupt. */
    return route(gsi, 1u << 16 | (uint32_t)(handle & 0x7FFFu) << 17,
                 vector | (uint32_t)(handle >> 15) << 11);
}

void ioapic_mask(uint32_t gsi, bool masked)
{
    uint32_t addr, pin;
    if (!ioapic_of(gsi, &addr, &pin))
        return;
    uint32_t lo = ioapic_read(addr, IOAPIC_REDIR(pin));
    ioapic_write(addr, IOAPIC_REDIR(pin), masked ? lo | IOAPIC_MASKED : lo & ~IOAPIC_MASKED);
}

uint64_t apic_ticks(void) { return ticks; }

void apic_timer_tick(void)
{
    ticks++;
    apic_eoi();
}
