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
};

extern struct dom_dev dom_devs[DEVS_MAX];
extern unsigned dom_n_devs;

#endif /* BARE_DOM_PCI_INTERNAL_H */
