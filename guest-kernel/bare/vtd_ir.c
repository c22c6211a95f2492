/* VT-d interrupt remapping: the monitor's table (contract in vtd.h;
 * entry and address formats from the VT-d specification, xAPIC
 * destinations). Entry i is the monitor's vector i: set once when the
 * vector is given to a device (or an I/O APIC input), never reused for
 * another source. */
#include "apic.h"
#include "com1.h"
#include "palloc.h"
#include "vtd.h"
#include "vtd_internal.h"

#define IRTE_PRESENT   1ull
#define IRTE_LEVEL     (1ull << 4)
#define IRTE_SVT_SID   (1ull << 18)     /* verify the full source id (SQ 0) */
#define MSI_REMAPPABLE (1u << 4)

#define CANARY_INDEX  0u
#define CANARY_SOURCE 0xFFFFu            /* ff:1f.7 */

static uint64_t *irt;
static uint64_t canary_hits;

bool vtd_ir_init(const char **why)
{
    uint64_t pa = palloc(VTD_IRT_ENTRIES * 16 / 4096, 0);
    if (!pa) {
        *why = "no memory for the interrupt remapping table";
        return false;
    }
    irt = (uint64_t *)(uintptr_t)pa;
    if (!vtd_ir_enable(pa, why))
        return false;
    vtd_irte_set(CANARY_INDEX, IR_CANARY_VECTOR, apic_local_id(), false, CANARY_SOURCE);
    return true;
}

void vtd_ir_canary_fired(void)
{
    if (canary_hits++ == 0)
        com1_printf("moat bare: the interrupt canary fired: the remapping unit delivered a "
                    "request that names a source no device is (source verification fails open)\n");
}

uint64_t vtd_ir_canary_hits(void) { return canary_hits; }

void vtd_ir_canary_describe(void)
{
    if (!vtd_ir_active())
        com1_printf("interrupt canary: none (no interrupt remapping)\n");
    else
        com1_printf("interrupt canary (remapping entry %u, source ff:1f.7): %s (%llu times)\n",
                    CANARY_INDEX, canary_hits ? "FIRED" : "never fired",
                    (unsigned long long)canary_hits);
}

static bool set(uint16_t index, uint8_t vector, uint32_t apic_id, bool level, uint64_t source)
{
    if (!vtd_ir_active() || index >= VTD_IRT_ENTRIES)
        return false;
    uint64_t *e = &irt[index * 2u];
    e[0] = 0;                           /* not present while it changes */
    __atomic_thread_fence(__ATOMIC_RELEASE);
    e[1] = source;
    __atomic_thread_fence(__ATOMIC_RELEASE);
    e[0] = IRTE_PRESENT | (level ? IRTE_LEVEL : 0) | (uint64_t)vector << 16 |
           (uint64_t)(apic_id & 0xFFu) << 40;   /* physical, fixed; xAPIC id in DST 15:8 */
    return vtd_invalidate_iec();
}

bool vtd_irte_set(uint16_t index, uint8_t vector, uint32_t apic_id, bool level, uint16_t sid)
{
    return set(index, vector, apic_id, level, IRTE_SVT_SID | sid);
}

bool vtd_irte_set_ioapic(uint16_t index, uint8_t vector, uint32_t apic_id, uint8_t ioapic_id)
{
    uint16_t sid;
    return set(index, vector, apic_id, true,
               vtd_ioapic_sid(ioapic_id, &sid) ? IRTE_SVT_SID | sid : 0);
}

uint32_t vtd_msi_addr(uint16_t index)
{
    return 0xFEE00000u | (uint32_t)(index & 0x7FFFu) << 5 | MSI_REMAPPABLE |
           (uint32_t)(index >> 15) << 2;
}
