/*
 * fuzz_device.h — what the device-model targets (fuzz_nvme, fuzz_gvnic,
 * fuzz_pci, fuzz_virtio_net) share: a DMA window the target owns, fenced
 * by canaries a device must never write; an access to a function's BAR
 * through the bus, as a driver's MMIO would arrive; and platform hooks
 * that check an MSI was sent by an unmasked MSI-X entry or ignore
 * refusals (the targets check those through counters). Header-only.
 */
#ifndef MOAT_FUZZ_DEVICE_H
#define MOAT_FUZZ_DEVICE_H

#include <stdlib.h>
#include "broker.h"
#include "fuzz_input.h"
#include "moat/pci_regs.h"
#include "pci.h"

#define FZ_CANARY 4096u

static inline uint8_t fz_canary_byte(size_t i) { return (uint8_t)(0xA5u ^ (i * 131u)); }

/* size bytes for the device to reach, fenced by FZ_CANARY bytes each side,
 * adopted into br (initialised) as domain dom's window at iova. */
static inline uint8_t *fz_window_new(struct broker *br, uint32_t dom, uint64_t iova, size_t size)
{
    char err[256];
    struct dma_handle h;
    uint8_t *buf = aligned_alloc(4096, size + 2u * FZ_CANARY);
    if (!buf)
        FZ_FAIL("out of memory for a %zu-byte window", size);
    uint8_t *mem = buf + FZ_CANARY;
    for (size_t i = 0; i < FZ_CANARY; i++)
        buf[i] = mem[size + i] = fz_canary_byte(i);
    if (!broker_adopt(br, dom, iova, size, mem, DMA_BIDIR, &h, err, sizeof err))
        FZ_FAIL("window: %s", err);
    return mem;
}

/* No byte just outside the window changed. */
static inline void fz_window_check(const uint8_t *mem, size_t size)
{
    for (size_t i = 0; i < FZ_CANARY; i++)
        if (mem[(ptrdiff_t)i - (ptrdiff_t)FZ_CANARY] != fz_canary_byte(i) ||
            mem[size + i] != fz_canary_byte(i))
            FZ_FAIL("memory %s the DMA window was written (byte %zu)",
                    mem[(ptrdiff_t)i - (ptrdiff_t)FZ_CANARY] != fz_canary_byte(i) ? "below"
                                                                                 : "above", i);
}

/* Does [iova, iova + len) lie in the window [win, win + size)? */
static inline bool fz_in_window(uint64_t win, uint64_t size, uint64_t iova, uint64_t len)
{
    return iova >= win && len <= size && iova - win <= size - len;
}

/* A driver's access to BAR bar of f at off; returns what a read gives. */
static inline uint64_t fz_driver_mmio(struct pci_bus *bus, const struct pci_func *f, unsigned bar,
                                     uint64_t off, uint32_t size, bool write, uint64_t v)
{
    struct bus_access a = { .addr = f->bar[bar].base + off, .size = size, .is_write = write,
                            .value = v };
    (void)pci_mmio_access(bus, &a);
    return a.value;
}

/* Did an unmasked entry of an enabled, unmasked MSI-X function on bus
 * hold this message? (The platform's msi hook runs under the bus's
 * irq_lock: the tables are stable.) */
static inline bool fz_msi_from_unmasked_entry(const struct pci_bus *bus, uint64_t addr,
                                              uint32_t data)
{
    for (unsigned s = 0; s < PCI_SLOTS_MAX; s++) {
        const struct pci_func *f = bus->slot[s];
        if (!f || !pci_msix_enabled(f) ||
            (f->cfg[f->msix.cap + PCI_MSIX_CTRL + 1] & (PCI_MSIX_CTRL_MASKALL >> 8)))
            continue;
        for (unsigned n = 0; n < f->msix.entries; n++) {
            const uint32_t *e = &f->msix.table[n * 4u];
            if (!(e[3] & PCI_MSIX_ENTRY_MASKED) && ((uint64_t)e[1] << 32 | e[0]) == addr &&
                e[2] == data)
                return true;
        }
    }
    return false;
}

static inline void fz_ignore_refused(void *ctx, const char *device, const char *what,
                                     uint64_t addr, uint64_t value)
{
    (void)ctx;
    (void)device;
    (void)what;
    (void)addr;
    (void)value;
}

static inline void fz_ignore_dma_refused(void *ctx, const char *device, uint64_t iova,
                                         uint64_t len, enum broker_refusal why)
{
    (void)ctx;
    (void)device;
    (void)iova;
    (void)len;
    (void)why;
}

#endif /* MOAT_FUZZ_DEVICE_H */
