/* Function-level reset of assigned functions (contract in
 * dom_pci_internal.h; PCI Express base specification: Device Capabilities
 * bit 28 offers it, Device Control bit 15 starts it, and software waits
 * 100 ms before it touches the function again; the function comes back
 * with its header cleared, so the monitor puts firmware's back). */
#include "dom_internal.h"
#include "dom_pci_internal.h"
#include "gk/cpu.h"
#include "moat/pci_regs.h"

#define PCIE_DEVCAP       0x04u
#define PCIE_DEVCAP_FLR   (1u << 28)
#define PCIE_DEVCTL       0x08u         /* Device Control (low half), Status (high) */
#define PCIE_DEVCTL_FLR   (1u << 15)
#define FLR_SETTLE_MS     100u
#define HDR_DWORDS        16u           /* the type 0 header, 0x00-0x3F */

void dev_reset_probe(struct dom_dev *x)
{
    x->pcie_cap = dev_find_cap(x, PCI_CAP_ID_PCIE);
    x->flr = x->pcie_cap && (cfg_rd(x, x->pcie_cap + PCIE_DEVCAP) & PCIE_DEVCAP_FLR);
    for (uint32_t i = 0; i < HDR_DWORDS; i++)
        x->saved_hdr[i] = cfg_rd(x, i * 4);
}

void dev_reset_start(struct dom_dev *x, uint64_t tsc_khz)
{
    x->resets++;
    if (!x->flr)
        return;
    /* Status bits are write-one-to-clear: write zeros there. */
    uint32_t ctl = cfg_rd(x, x->pcie_cap + PCIE_DEVCTL) & 0xFFFFu;
    cfg_wr(x, x->pcie_cap + PCIE_DEVCTL, ctl | PCIE_DEVCTL_FLR);
    x->settle_tsc = rdtsc() + FLR_SETTLE_MS * tsc_khz;
    dom_log(x->owner, "device %02x:%02x.%x: function-level reset, back in %u ms", x->fn.bus,
            x->fn.dev, x->fn.fn, FLR_SETTLE_MS);
}

void dev_reset_done(struct dom_dev *x)
{
    if (!x->settle_tsc)
        return;
    while (rdtsc() < x->settle_tsc)     /* the supervisor waited already; a console restart */
        __asm__ volatile("pause");      /* of a domain it never stopped may not have */
    x->settle_tsc = 0;
    /* BARs, cache line and latency, interrupt line; then decoding as before
     * (bus mastering stays off until the driver asks for it). */
    for (uint32_t off = PCI_BAR_REG(0); off <= PCI_BAR_REG(5); off += 4)
        cfg_wr(x, off, x->saved_hdr[off / 4]);
    cfg_wr(x, 0x0C, x->saved_hdr[0x0C / 4]);
    cfg_wr(x, 0x3C, x->saved_hdr[0x3C / 4]);
    cfg_wr(x, PCI_COMMAND, x->saved_hdr[PCI_COMMAND / 4] & 0xFFFFu & ~(uint32_t)PCI_CMD_MASTER);
}
