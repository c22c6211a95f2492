/* INTx through the IOAPIC (contract in gk/intx.h). Register layout: 82093AA
 * IOAPIC datasheet — IOREGSEL at +0x00, IOWIN at +0x10, redirection entry
 * of pin n at registers 0x10 + 2n (low dword) and 0x11 + 2n (high). */
#include "gk/event.h"
#include "gk/intx.h"
#include "gk/platform.h"
#include "gk/sys.h"
#include "moat/layout.h"

#define IOAPIC_PINS     24u
#define RTE_LEVEL       (1u << 15)
#define RTE_MASKED      (1u << 16)

static volatile uint32_t *const ioregsel = (volatile uint32_t *)(uintptr_t)MOAT_GPA_IOAPIC;
static volatile uint32_t *const iowin = (volatile uint32_t *)(uintptr_t)(MOAT_GPA_IOAPIC + 0x10);

static uint8_t vector_of_pin[IOAPIC_PINS];     /* 0 = not bound */
static uint8_t pin_of_vector[256];             /* pin + 1, 0 = none */

/* Low dword only (vector, trigger, mask): each access is an emulated
 * ring-0 MMIO write, and mask/unmask run once per level interrupt. */
static void rte_write(uint32_t pin, uint32_t lo)
{
    *ioregsel = 0x10 + 2 * pin;
    *iowin = lo;
}

static bool gsi_assigned(uint32_t gsi)
{
    const struct moat_boot_info *bi = platform_boot_info();
    for (uint32_t i = 0; i < bi->n_devices && i < MOAT_DEVICES_MAX; i++)
        if (bi->device[i].intx_gsi == gsi)
            return true;
    return false;
}

int64_t intx_bind(uint32_t gsi, uint32_t vector)
{
    if (gsi >= IOAPIC_PINS || !gsi_assigned(gsi) || vector < 48 || vector > 254 ||
        !gk_event_allocated(vector) || (vector_of_pin[gsi] && vector_of_pin[gsi] != vector) ||
        (pin_of_vector[vector] && pin_of_vector[vector] != gsi + 1))
        return -SYS_EINVAL;
    vector_of_pin[gsi] = (uint8_t)vector;
    pin_of_vector[vector] = (uint8_t)(gsi + 1);
    *ioregsel = 0x11 + 2 * gsi;
    *iowin = 0;                 /* destination: APIC ID 0, physical */
    /* Fixed delivery, active high (as the VMM drives the line), level. */
    rte_write(gsi, vector | RTE_LEVEL);
    return 0;
}

int64_t intx_ack(uint32_t gsi)
{
    if (gsi >= IOAPIC_PINS || !vector_of_pin[gsi])
        return -SYS_EINVAL;
    rte_write(gsi, vector_of_pin[gsi] | RTE_LEVEL);
    return 0;
}

void intx_on_vector(uint32_t vector)
{
    if (vector < 256 && pin_of_vector[vector]) {
        uint32_t pin = pin_of_vector[vector] - 1u;
        rte_write(pin, vector_of_pin[pin] | RTE_LEVEL | RTE_MASKED);
    }
}
