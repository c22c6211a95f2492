/*
 * fake_platform.h — the platform a device-model suite gives its PCI bus:
 * it records what the model asks of the platform (MSI messages by vector,
 * the INTx line, refusals, DMA refusals, ioeventfd requests) instead of
 * reaching KVM. Model worker threads call it too, hence the atomics; the
 * ioeventfd log is written from the test (vCPU) thread only.
 *
 * Use: fake_platform_init(&p, data0, vectors), then pci_bus_init with
 * fake_platform_ops(&p). MSI data data0 + v counts as vector v; any other
 * message counts in msi_bad. Included by the model fixtures only.
 */
#ifndef MOAT_FAKE_PLATFORM_H
#define MOAT_FAKE_PLATFORM_H

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include "pci.h"

#define FAKE_VECTORS_MAX 17u
#define FAKE_IOEV_MAX    16u

struct fake_ioev {
    bool pio;
    uint64_t addr;
    uint32_t len;
    int fd;
    bool assign;
};

struct fake_platform {
    uint32_t msi_data0, vectors;
    _Atomic int msi[FAKE_VECTORS_MAX], msi_bad;
    _Atomic int intx_level, intx_calls;
    _Atomic int refused, dma_refused;
    _Atomic int guest_error[PCI_GERR_KINDS];   /* bumped after last_guest_error is set */
    pthread_mutex_t text_lock;          /* last_guest_error (workers report too) */
    char last_guest_error[160];
    _Atomic int last_dma_why;           /* enum broker_refusal of the last refusal */
    char last_refused[160];
    bool ioev_accept;           /* does the platform take ioeventfds? */
    int ioev_calls;
    struct fake_ioev ioev[FAKE_IOEV_MAX];
};

static bool fake_msi(void *ctx, uint64_t addr, uint32_t data)
{
    struct fake_platform *p = ctx;
    (void)addr;
    if (data >= p->msi_data0 && data - p->msi_data0 < p->vectors)
        atomic_fetch_add(&p->msi[data - p->msi_data0], 1);
    else
        atomic_fetch_add(&p->msi_bad, 1);
    return true;
}

static void fake_intx(void *ctx, uint32_t gsi, bool level)
{
    struct fake_platform *p = ctx;
    (void)gsi;
    atomic_store(&p->intx_level, level);
    atomic_fetch_add(&p->intx_calls, 1);
}

static void fake_refused(void *ctx, const char *device, const char *what, uint64_t addr,
                         uint64_t value)
{
    struct fake_platform *p = ctx;
    (void)device;
    (void)addr;
    (void)value;
    snprintf(p->last_refused, sizeof p->last_refused, "%s", what);
    atomic_fetch_add(&p->refused, 1);
}

static void fake_dma_refused(void *ctx, const char *device, uint64_t iova, uint64_t len,
                             enum broker_refusal why)
{
    struct fake_platform *p = ctx;
    (void)device;
    (void)iova;
    (void)len;
    atomic_store(&p->last_dma_why, (int)why);
    atomic_fetch_add(&p->dma_refused, 1);
}

static void fake_guest_error(void *ctx, const char *device, enum pci_guest_error kind,
                             const char *what, uint64_t a, uint64_t b)
{
    struct fake_platform *p = ctx;
    (void)device;
    (void)a;
    (void)b;
    pthread_mutex_lock(&p->text_lock);
    snprintf(p->last_guest_error, sizeof p->last_guest_error, "%s", what);
    pthread_mutex_unlock(&p->text_lock);
    if ((unsigned)kind < PCI_GERR_KINDS)
        atomic_fetch_add(&p->guest_error[kind], 1);
}

static bool fake_ioeventfd(void *ctx, bool pio, uint64_t addr, uint32_t len, int fd, bool assign)
{
    struct fake_platform *p = ctx;
    if (p->ioev_calls < (int)FAKE_IOEV_MAX)
        p->ioev[p->ioev_calls] = (struct fake_ioev){ pio, addr, len, fd, assign };
    p->ioev_calls++;
    return p->ioev_accept;
}

static inline void fake_platform_init(struct fake_platform *p, uint32_t msi_data0, uint32_t vectors)
{
    memset(p, 0, sizeof *p);
    pthread_mutex_init(&p->text_lock, NULL);
    p->msi_data0 = msi_data0;
    p->vectors = vectors < FAKE_VECTORS_MAX ? vectors : FAKE_VECTORS_MAX;
}

static inline struct pci_platform_ops fake_platform_ops(struct fake_platform *p)
{
    return (struct pci_platform_ops){ .msi = fake_msi, .intx = fake_intx,
                                      .refused = fake_refused, .dma_refused = fake_dma_refused,
                                      .guest_error = fake_guest_error, .ioeventfd = fake_ioeventfd, .ctx = p };
}

/* The text of the last guest error reported (copied into out). */
static inline void fake_last_guest_error(struct fake_platform *p, char *out, size_t len)
{
    pthread_mutex_lock(&p->text_lock);
    snprintf(out, len, "%s", p->last_guest_error);
    pthread_mutex_unlock(&p->text_lock);
}

#endif /* MOAT_FAKE_PLATFORM_H */
