/* Driver API: interrupts (contract in dd.h). Ring 3. An interrupt is an
 * event vector (gk/event.h); MSI-X entries are programmed through the
 * table in the function's BAR, INTx through the kernel (IOAPIC). */
#include "dd.h"
#include "dd_internal.h"
#include "gk/event.h"
#include "gk/runtime.h"
#include "gk/sys.h"
#include "gk/timer.h"
#include "moat/boot_info.h"
#include "moat/pci_regs.h"

#define DD_IRQS_MAX 32u

struct dd_irq {
    struct dd_dev *dev;
    const struct dd_bar *table;     /* MSI-X table BAR, NULL for INTx */
    uint64_t entry_off;             /* of the table entry inside that BAR */
    uint32_t vector, gsi;
    dd_irq_fn fn;
    void *ctx;
    volatile uint64_t count;
};

static struct dd_irq irqs[DD_IRQS_MAX];
static unsigned n_irqs;

static void on_vector(void *ctx, uint32_t vector)
{
    (void)vector;
    struct dd_irq *irq = ctx;
    irq->count++;
    if (irq->fn)
        irq->fn(irq->ctx);
}

static struct dd_irq *irq_new(struct dd_dev *d, dd_irq_fn fn, void *ctx)
{
    if (n_irqs == DD_IRQS_MAX)
        dd_panic("driver bug: more than %u interrupts set up", DD_IRQS_MAX);
    struct dd_irq *irq = &irqs[n_irqs];
    irq->vector = gk_event_alloc(on_vector, irq);
    if (!irq->vector)
        dd_panic("no free interrupt vector");
    irq->dev = d;
    irq->fn = fn;
    irq->ctx = ctx;
    irq->gsi = MOAT_NO_GSI;
    n_irqs++;
    return irq;
}

static void check_irq(const struct dd_irq *irq)
{
    if (!irq || irq < irqs || irq >= irqs + n_irqs)
        dd_panic("driver bug: %p is not an interrupt handle", (const void *)irq);
}

struct dd_irq *dd_irq_msix(struct dd_dev *d, unsigned entry, dd_irq_fn fn, void *ctx)
{
    uint32_t cap = dd_cap_find(d, PCI_CAP_ID_MSIX, 0);
    if (!cap)
        dd_panic("device has no MSI-X capability");
    uint16_t ctrl = dd_cfg_read16(d, cap + PCI_MSIX_CTRL);
    if (entry > (ctrl & PCI_MSIX_CTRL_SIZE_MASK))
        dd_panic("driver bug: MSI-X entry %u of a %u-entry table", entry,
                 (ctrl & PCI_MSIX_CTRL_SIZE_MASK) + 1u);
    uint32_t t = dd_cfg_read32(d, cap + PCI_MSIX_TABLE);
    const struct dd_bar *bar = dd_bar(d, t & PCI_MSIX_BIR_MASK);
    if (!bar || dd_bar_is_io(bar))
        dd_panic("MSI-X table BAR %u is not a memory BAR", t & PCI_MSIX_BIR_MASK);
    struct dd_irq *irq = irq_new(d, fn, ctx);
    irq->table = bar;
    irq->entry_off = (t & ~PCI_MSIX_BIR_MASK) + (uint64_t)entry * PCI_MSIX_ENTRY_SIZE;
    /* Program while masked, then unmask; x2APIC destination 0, fixed. */
    dd_mmio_write32(bar, irq->entry_off + PCI_MSIX_ENTRY_CTRL, PCI_MSIX_ENTRY_MASKED);
    dd_mmio_write32(bar, irq->entry_off + PCI_MSIX_ENTRY_ADDR_LO, PCI_MSI_ADDR_BASE);
    dd_mmio_write32(bar, irq->entry_off + PCI_MSIX_ENTRY_ADDR_HI, 0);
    dd_mmio_write32(bar, irq->entry_off + PCI_MSIX_ENTRY_DATA, irq->vector);
    dd_mmio_write32(bar, irq->entry_off + PCI_MSIX_ENTRY_CTRL, 0);
    if ((ctrl & (PCI_MSIX_CTRL_ENABLE | PCI_MSIX_CTRL_MASKALL)) != PCI_MSIX_CTRL_ENABLE)
        dd_cfg_write16(d, cap + PCI_MSIX_CTRL,
                       (uint16_t)((ctrl & ~PCI_MSIX_CTRL_MASKALL) | PCI_MSIX_CTRL_ENABLE));
    return irq;
}

struct dd_irq *dd_irq_intx(struct dd_dev *d, dd_irq_fn fn, void *ctx)
{
    uint32_t gsi = dd_dev_intx_gsi(d);
    if (gsi == MOAT_NO_GSI)
        dd_panic("device has no INTx line");
    struct dd_irq *irq = irq_new(d, fn, ctx);
    irq->gsi = gsi;
    dd_cmd_clear(d, PCI_CMD_INTX_DISABLE);
    int64_t r = sys_intx_bind(gsi, irq->vector);
    if (r < 0)
        dd_panic("kernel refused to route INTx GSI %u to vector %u (%ld)", gsi, irq->vector, r);
    return irq;
}

void dd_irq_mask(struct dd_irq *irq, bool masked)
{
    check_irq(irq);
    if (!irq->table)
        dd_panic("driver bug: dd_irq_mask on an INTx interrupt (use dd_irq_ack)");
    dd_mmio_write32(irq->table, irq->entry_off + PCI_MSIX_ENTRY_CTRL,
                    masked ? PCI_MSIX_ENTRY_MASKED : 0);
}

void dd_irq_ack(struct dd_irq *irq)
{
    check_irq(irq);
    if (irq->table)
        return;
    if (sys_intx_ack(irq->gsi) < 0)
        dd_panic("kernel refused to unmask INTx GSI %u", irq->gsi);
}

uint64_t dd_irq_count(const struct dd_irq *irq)
{
    check_irq(irq);
    return irq->count;
}

bool dd_irq_wait(struct dd_irq *irq, uint64_t seen, uint64_t timeout_ns)
{
    check_irq(irq);
    uint64_t deadline = timer_now_ns() + timeout_ns;
    while (irq->count <= seen) {
        if (timer_now_ns() >= deadline)
            return false;
        gk_run_once();
    }
    return true;
}
