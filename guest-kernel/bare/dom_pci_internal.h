/* dom_pci_internal.h — what dom_pci.c and dom_pci_vtd.c share: an
 * assigned function's state and the table of them. */
#ifndef BARE_DOM_PCI_INTERNAL_H
#define BARE_DOM_PCI_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include "moat/boot_info.h"
#include "pci_enum.h"

#define DEVS_MAX 8u
#define MSIX_MAX 64u

struct dom;
struct nvme_shadow;
struct virtio_shadow;

struct msix_entry { uint32_t lo, hi, data, ctrl; uint8_t host; };

struct dom_dev {
    struct dom *owner;
    struct pci_fn_id fn;
    struct moat_bar_info bar[6];
    uint32_t msix_cap, msix_n, msix_bar, pba_bar;
    uint64_t msix_off, pba_off;
    struct msix_entry msix[MSIX_MAX];
    struct nvme_shadow *nvme;
    struct virtio_shadow *vio;
    bool vio_legacy;
    bool vtd;                   /* VT-d translates its DMA (no interposition) */
    bool ir;                    /* its MSIs go through VT-d interrupt remapping */
    uint64_t vtd_faults;
    const char *kind;           /* the platform's name for it (boot info) */
    uint32_t gsi;               /* INTA#'s I/O APIC input, MOAT_NO_GSI if none */
    uint32_t intx_vector;       /* the domain's vector for it, 0 = not bound */
    uint8_t intx_host;
    uint64_t cfg_refused;
    /* Reset (dom_pci_reset.c): the header as firmware left it, to put back
     * after a function-level reset; the reset's end. */
    uint32_t pcie_cap;          /* 0: not PCI Express */
    bool flr;                   /* it offers a function-level reset */
    uint32_t saved_hdr[16];
    uint64_t settle_tsc;        /* a reset is under way until then; 0: none */
    uint64_t resets;
};

extern struct dom_dev dom_devs[DEVS_MAX];
extern unsigned dom_n_devs;

static inline uint32_t cfg_rd(const struct dom_dev *x, uint32_t off)
{
    return pci_read32(x->fn.bus, x->fn.dev, x->fn.fn, (uint16_t)(off & ~3u));
}
static inline void cfg_wr(const struct dom_dev *x, uint32_t off, uint32_t v)
{
    pci_write32(x->fn.bus, x->fn.dev, x->fn.fn, (uint16_t)(off & ~3u), v);
}

/* The config-space offset of x's capability id, 0 when it has none. */
uint32_t dev_find_cap(const struct dom_dev *x, uint8_t id);

/* dom_pci_reset.c */
/* At assignment, decode set up: note whether x offers a function-level
 * reset and keep its header. */
void dev_reset_probe(struct dom_dev *x);
/* x is quiesced (its own reset done, bus mastering off): reset the
 * function where it offers that; its header comes back at dev_reset_done. */
void dev_reset_start(struct dom_dev *x, uint64_t tsc_khz);
/* Before the domain starts again: the reset is over (the supervisor waited
 * for settle_tsc); put the header back. */
void dev_reset_done(struct dom_dev *x);

#endif /* BARE_DOM_PCI_INTERNAL_H */
