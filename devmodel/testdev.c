/* testdev: a small DMA engine (contract in testdev.h, registers in
 * moat/testdev_regs.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "moat/testdev_regs.h"
#include "devopts.h"
#include "testdev.h"

struct testdev {
    struct pci_func *f;
    uint64_t src, dst;
    uint32_t len, vector, status, completed, errors, scratch, last_error;
    uint32_t io_scratch;
};

static void raise_irq(struct testdev *t)
{
    if (pci_msix_enabled(t->f))
        pci_msix_notify(t->f, (uint16_t)(t->vector < 0x10000 ? t->vector : 0xFFFF));
    else
        pci_intx_set(t->f, t->status != 0);
}

static void finish(struct testdev *t, uint32_t error)
{
    t->last_error = error;
    if (error) {
        t->errors++;
        t->status |= TD_STATUS_ERROR;
    } else {
        t->completed++;
        t->status |= TD_STATUS_DONE;
    }
    raise_irq(t);
}

/* Both ranges are checked by the broker before any byte moves. */
static void doorbell(struct testdev *t)
{
    if (t->len == 0 || t->len > TESTDEV_LEN_MAX) {
        finish(t, TD_ERR_LEN);
        return;
    }
    if (!(pci_command(t->f) & PCI_CMD_MASTER)) {
        struct dma_mapping m;
        pci_dma_map(t->f, t->src, t->len, DMA_TO_DEVICE, &m);   /* counted + reported */
        finish(t, TD_ERR_MASTER);
        return;
    }
    struct dma_mapping ms, md;
    const void *src = pci_dma_map(t->f, t->src, t->len, DMA_TO_DEVICE, &ms);
    if (!src) {
        finish(t, TD_ERR_DMA_BASE + ms.refusal);
        return;
    }
    void *dst = pci_dma_map(t->f, t->dst, t->len, DMA_FROM_DEVICE, &md);
    if (!dst) {
        pci_dma_unmap(t->f, &ms);
        finish(t, TD_ERR_DMA_BASE + md.refusal);
        return;
    }
    memmove(dst, src, t->len);
    pci_dma_unmap(t->f, &md);
    pci_dma_unmap(t->f, &ms);
    finish(t, TD_ERR_NONE);
}

static enum bus_result regs_access(struct testdev *t, struct bus_access *a)
{
    bool wide = a->size == 8;
    if ((a->size != 4 && !wide) || a->offset % a->size) {
        pci_refuse(t->f, "testdev register access not 4 or 8 bytes, naturally aligned",
                   a->addr, a->size);
        a->value = a->is_write ? a->value : 0;
        return BUS_OK;
    }
    uint64_t v = a->value;
    switch (a->offset) {
    case TD_REG_ID:
        a->value = a->is_write ? v : TESTDEV_ID_VALUE;
        break;
    case TD_REG_SRC:
    case TD_REG_DST: {
        uint64_t *r = a->offset == TD_REG_SRC ? &t->src : &t->dst;
        if (a->is_write)
            *r = wide ? v : ((*r & ~0xFFFFFFFFull) | (uint32_t)v);
        else
            a->value = wide ? *r : (uint32_t)*r;
        break;
    }
    case TD_REG_SRC + 4:
    case TD_REG_DST + 4: {
        uint64_t *r = a->offset == TD_REG_SRC + 4 ? &t->src : &t->dst;
        if (a->is_write && !wide)
            *r = (*r & 0xFFFFFFFFull) | (uint64_t)(uint32_t)v << 32;
        else if (!a->is_write)
            a->value = wide ? 0 : *r >> 32;
        break;
    }
    case TD_REG_LEN:
        if (a->is_write)
            t->len = (uint32_t)v;
        else
            a->value = t->len;
        break;
    case TD_REG_VECTOR:
        if (a->is_write)
            t->vector = (uint32_t)v;
        else
            a->value = t->vector;
        break;
    case TD_REG_DOORBELL:
        if (a->is_write)
            doorbell(t);
        else
            a->value = 0;
        break;
    case TD_REG_STATUS:
        if (a->is_write) {
            t->status &= ~(uint32_t)v;
            if (!pci_msix_enabled(t->f))
                pci_intx_set(t->f, t->status != 0);
        } else {
            a->value = t->status;
        }
        break;
    case TD_REG_COMPLETED:
        a->value = a->is_write ? v : t->completed;
        break;
    case TD_REG_ERRORS:
        a->value = a->is_write ? v : t->errors;
        break;
    case TD_REG_SCRATCH:
        if (a->is_write)
            t->scratch = (uint32_t)v;
        else
            a->value = t->scratch;
        break;
    case TD_REG_LAST_ERROR:
        a->value = a->is_write ? v : t->last_error;
        break;
    default:
        a->value = a->is_write ? v : 0;
        break;
    }
    return BUS_OK;
}

static enum bus_result io_access(struct testdev *t, struct bus_access *a)
{
    if (a->size != 4 || a->offset % 4) {
        pci_refuse(t->f, "testdev port access not 4 bytes, aligned", a->addr, a->size);
        a->value = a->is_write ? a->value : 0;
        return BUS_OK;
    }
    if (a->offset == TD_IO_ID && !a->is_write)
        a->value = TESTDEV_ID_VALUE;
    else if (a->offset == TD_IO_SCRATCH && a->is_write)
        t->io_scratch = (uint32_t)a->value;
    else if (a->offset == TD_IO_SCRATCH)
        a->value = t->io_scratch;
    else if (!a->is_write)
        a->value = 0;
    return BUS_OK;
}

static enum bus_result testdev_bar_access(void *dev, unsigned bar, struct bus_access *a)
{
    struct testdev *t = dev;
    if (bar == 0)
        return regs_access(t, a);
    if (bar == 4)
        return io_access(t, a);
    a->value = a->is_write ? a->value : 0;      /* BAR2 outside MSI-X */
    return BUS_OK;
}

static void testdev_destroy(void *dev)
{
    free(dev);
}

static const struct pci_device_ops testdev_ops = {
    .bar_access = testdev_bar_access,
    .destroy = testdev_destroy,
};

bool testdev_create(struct pci_bus *bus, const char *name, uint32_t gsi, const char *opts,
                    char *err, size_t errlen)
{
    static const char *const known[] = { NULL };
    if (!devopts_check("testdev", opts, known, err, errlen))
        return false;
    struct testdev *t = calloc(1, sizeof *t);
    struct pci_func *f = t ? pci_func_add(bus, name, TESTDEV_VENDOR_ID, TESTDEV_DEVICE_ID,
                                          TESTDEV_CLASS, gsi, &testdev_ops, t) : NULL;
    if (!f) {
        free(t);
        snprintf(err, errlen, "cannot add %s: the PCI bus has no free slot", name);
        return false;
    }
    t->f = f;
    if (!pci_bar_add(f, 0, PCI_BAR_MEM64, 4096) || !pci_bar_add(f, 2, PCI_BAR_MEM32, 4096) ||
        !pci_bar_add(f, 4, PCI_BAR_IOPORT, TD_IO_SIZE) ||
        !pci_msix_add(f, TESTDEV_MSIX_VECTORS, 2, 0, 2, 0x800)) {
        snprintf(err, errlen, "cannot place %s's BARs: the PCI windows are full", name);
        return false;   /* the bus owns t now and frees it */
    }
    return true;
}
