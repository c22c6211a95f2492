/*
 * dd_host.h — the driver API (driver-domains/include/dd.h) over device
 * models in this process: a driver's own sources run with no domain, no
 * KVM and no sessions. This is the in-process peer of `make bench` (the
 * same driver code on the same model, without isolation), not a platform
 * for users.
 *
 * One dd_host is one "domain": a broker with one DMA window, a PCI bus
 * the caller adds its device model to, the pollers the driver registers,
 * and the Nic it serves (frames it receives go to on_rx). Several may
 * coexist; dd_host_use picks the one the next driver calls act on (the
 * API has no handle for DMA allocation and registration). Interrupts are
 * MSI-X messages count on the entry's dd_irq and make irq_fd (an
 * eventfd) readable, so a caller can sleep the way a domain does:
 * dd_host_poll, then dd_host_idle (the driver arms its interrupts), then
 * poll irq_fd. A driver panic, a
 * refused register access or a refused DMA ends the process with the
 * reason. Single-threaded: call a host's driver only from one thread.
 */
#ifndef MOAT_DD_HOST_H
#define MOAT_DD_HOST_H

#include <stdbool.h>
#include <stdint.h>
#include "broker.h"
#include "moat/session_abi.h"
#include "pci.h"

#define DD_HOST_POLLERS 4

struct dd_host;

struct dd_dev { struct dd_host *h; struct pci_func *f; };
struct dd_bar { struct dd_host *h; struct pci_func *f; unsigned n; };
struct dd_irq {
    struct dd_dev *dev;
    uint64_t table_off;         /* the entry in the MSI-X table's BAR */
    unsigned bar;
    _Atomic uint64_t count;
};
struct dd_nic {
    struct dd_host *h;
    const struct dd_nic_ops *ops;
    void *ctx;
    struct moat_nic_info info;  /* as the driver registered it */
    bool link_up;
    uint64_t tx_ready;          /* dd_nic_tx_ready calls */
};

struct dd_host {
    char name[32];
    struct broker br;
    struct pci_bus bus;
    struct dma_mapping wm;
    uint8_t *mem;
    uint64_t used;              /* bump allocator over the window */
    struct dd_dev dev[PCI_SLOTS_MAX];
    struct dd_bar bar[PCI_SLOTS_MAX][PCI_BARS];
    struct dd_irq irq[64];
    struct dd_nic nic;
    bool nic_served;
    struct { bool (*fn)(void *); void *ctx; } poll[DD_HOST_POLLERS], idle[DD_HOST_POLLERS];
    unsigned n_poll, n_idle;
    int irq_fd;                 /* eventfd: an MSI-X message arrived */
    void (*on_rx)(void *ctx, const void *frame, uint32_t len);
    void *rx_ctx;
};

/* Set up h (broker, one DMA window of window_bytes, an empty bus named
 * name); then add a device model to &h->bus. Exits on failure. */
void dd_host_init(struct dd_host *h, const char *name, uint64_t window_bytes);
/* The host the next driver calls act on. */
void dd_host_use(struct dd_host *h);
/* Run h's pollers once; true if one did work. */
bool dd_host_poll(struct dd_host *h);
/* Run h's idle hooks (they arm the driver's interrupts); true if one saw
 * work after all (poll again instead of sleeping). */
bool dd_host_idle(struct dd_host *h);
/* The bus first (its devices are ports of a switch that may outlive h),
 * then the window and the broker. */
void dd_host_fini(struct dd_host *h);

#endif /* MOAT_DD_HOST_H */
