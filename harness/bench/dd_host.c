/* The driver API over in-process device models (contract in dd_host.h). */
#define DD_HOST_TEST 1
#include "dd_host.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>
#include "dd.h"
#include "moat/pci_regs.h"

#define HOST_WINDOW_IOVA 0x100000000ull
#define HOST_MSI_VECTOR0 32u        /* entry n sends vector 32 + n (models check the range) */

static struct dd_host *cur;

static struct dd_host *current(const char *call)
{
    if (!cur) {
        fprintf(stderr, "dd_host: %s called before dd_host_use\n", call);
        exit(1);
    }
    return cur;
}

static bool h_msi(void *ctx, uint64_t addr, uint32_t data)
{
    struct dd_host *h = ctx;
    (void)addr;
    uint32_t entry = data - HOST_MSI_VECTOR0;
    if (entry < sizeof h->irq / sizeof h->irq[0])
        h->irq[entry].count++;
    uint64_t one = 1;
    return write(h->irq_fd, &one, sizeof one) == sizeof one;
}
static void h_intx(void *ctx, uint32_t gsi, bool level) { (void)ctx, (void)gsi, (void)level; }
static void h_refused(void *ctx, const char *dev, const char *what, uint64_t addr, uint64_t v)
{
    struct dd_host *h = ctx;
    fprintf(stderr, "dd_host %s: %s refused: %s at %#llx (%#llx)\n", h->name, dev, what,
            (unsigned long long)addr, (unsigned long long)v);
    exit(1);
}
static void h_dma_refused(void *ctx, const char *dev, uint64_t iova, uint64_t len,
                          enum broker_refusal why)
{
    struct dd_host *h = ctx;
    fprintf(stderr, "dd_host %s: %s DMA refused at %#llx+%llu (%s)\n", h->name, dev,
            (unsigned long long)iova, (unsigned long long)len, broker_refusal_name(why));
    exit(1);
}

void dd_host_init(struct dd_host *h, const char *name, uint64_t window_bytes)
{
    memset(h, 0, sizeof *h);
    snprintf(h->name, sizeof h->name, "%s", name);
    const struct pci_platform_ops plat = { .msi = h_msi, .intx = h_intx, .refused = h_refused,
                                           .dma_refused = h_dma_refused, .ctx = h };
    char err[256];
    struct dma_handle dh;
    broker_init(&h->br, window_bytes * 2, NULL);
    if (!broker_grant(&h->br, 1, HOST_WINDOW_IOVA, window_bytes, DMA_BIDIR, &dh, err, sizeof err)) {
        fprintf(stderr, "dd_host %s: %s\n", name, err);
        exit(1);
    }
    h->irq_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (h->irq_fd < 0) {
        fprintf(stderr, "dd_host %s: no eventfd\n", name);
        exit(1);
    }
    pci_bus_init(&h->bus, name, 1, &h->br, &plat);
    h->mem = broker_dma_map(&h->br, 1, "dd_host", HOST_WINDOW_IOVA, window_bytes, DMA_BIDIR,
                            &h->wm);
    if (!h->mem) {
        fprintf(stderr, "dd_host %s: cannot map its window\n", name);
        exit(1);
    }
}

void dd_host_use(struct dd_host *h) { cur = h; }

bool dd_host_poll(struct dd_host *h)
{
    struct dd_host *was = cur;
    cur = h;
    bool work = false;
    for (unsigned i = 0; i < h->n_poll; i++)
        work |= h->poll[i].fn(h->poll[i].ctx);
    cur = was;
    return work;
}

bool dd_host_idle(struct dd_host *h)
{
    struct dd_host *was = cur;
    cur = h;
    bool work = false;
    for (unsigned i = 0; i < h->n_idle; i++)
        work |= h->idle[i].fn(h->idle[i].ctx);
    cur = was;
    return work;
}

void dd_host_fini(struct dd_host *h)
{
    pci_bus_fini(&h->bus);
    close(h->irq_fd);
    broker_dma_unmap(&h->br, &h->wm);
    broker_fini(&h->br);
    if (cur == h)
        cur = NULL;
}

/* ---- entry, arguments ------------------------------------------------------------ */

bool dd_arg(const char *args, const char *key, char *out, size_t len)
{
    size_t kl = strlen(key);
    for (const char *p = args; p && *p;) {
        while (*p == ' ')
            p++;
        const char *end = strchr(p, ' ');
        size_t wl = end ? (size_t)(end - p) : strlen(p);
        if (wl >= kl && !strncmp(p, key, kl) && (wl == kl || p[kl] == '=')) {
            size_t vl = wl == kl ? 0 : wl - kl - 1;
            if (vl >= len)
                vl = len - 1;
            memcpy(out, p + kl + (wl == kl ? 0 : 1), vl);
            out[vl] = '\0';
            return true;
        }
        p += wl;
    }
    return false;
}

uint64_t dd_arg_u64(const char *args, const char *key, uint64_t fallback)
{
    char v[32];
    char *end;
    if (!dd_arg(args, key, v, sizeof v) || !v[0])
        return fallback;
    unsigned long long n = strtoull(v, &end, 0);
    return *end ? fallback : n;
}

uint32_t dd_arg_u32(const char *args, const char *key, uint32_t fallback, uint32_t lo,
                    uint32_t hi)
{
    uint64_t v = dd_arg_u64(args, key, fallback);
    if (v < lo || v > hi)
        dd_panic("driver argument %s=%llu is outside %u..%u", key, (unsigned long long)v, lo,
                 hi);
    return (uint32_t)v;
}

/* ---- devices, configuration space, BARs ------------------------------------------- */

unsigned dd_dev_count(void)
{
    struct dd_host *h = current("dd_dev_count");
    unsigned n = 0;
    for (unsigned i = 1; i < PCI_SLOTS_MAX; i++)
        n += h->bus.slot[i] != NULL;
    return n;
}

struct dd_dev *dd_dev_find(uint16_t vendor, uint16_t device, unsigned nth)
{
    struct dd_host *h = current("dd_dev_find");
    for (unsigned i = 1; i < PCI_SLOTS_MAX; i++) {
        struct pci_func *f = h->bus.slot[i];
        uint16_t v, d;
        if (!f)
            continue;
        memcpy(&v, f->cfg + 0, 2);
        memcpy(&d, f->cfg + 2, 2);
        if (v == vendor && d == device && nth-- == 0) {
            h->dev[i] = (struct dd_dev){ h, f };
            return &h->dev[i];
        }
    }
    return NULL;
}

uint8_t dd_cfg_read8(const struct dd_dev *d, uint32_t off) { return (uint8_t)pci_cfg_read(d->f, off, 1); }
uint16_t dd_cfg_read16(const struct dd_dev *d, uint32_t off) { return (uint16_t)pci_cfg_read(d->f, off, 2); }
uint32_t dd_cfg_read32(const struct dd_dev *d, uint32_t off) { return pci_cfg_read(d->f, off, 4); }

static void cfg_write(struct dd_dev *d, uint32_t off, uint32_t size, uint32_t v)
{
    if (!pci_cfg_write(d->f, off, size, v))
        dd_panic("dd_host: config write of %#x at %#x refused", v, off);
}
void dd_cfg_write8(struct dd_dev *d, uint32_t off, uint8_t v) { cfg_write(d, off, 1, v); }
void dd_cfg_write16(struct dd_dev *d, uint32_t off, uint16_t v) { cfg_write(d, off, 2, v); }
void dd_cfg_write32(struct dd_dev *d, uint32_t off, uint32_t v) { cfg_write(d, off, 4, v); }

uint32_t dd_cap_find(const struct dd_dev *d, uint8_t id, uint32_t after)
{
    if (!(dd_cfg_read16(d, PCI_STATUS) & PCI_STATUS_CAP_LIST))
        return 0;
    bool past = after == 0;
    for (uint32_t off = dd_cfg_read8(d, PCI_CAP_PTR) & ~3u, n = 0; off && n < 48; n++) {
        if (past && dd_cfg_read8(d, off) == id)
            return off;
        past |= off == after;
        off = dd_cfg_read8(d, off + 1) & ~3u;
    }
    return 0;
}

void dd_dev_info(const struct dd_dev *d, struct dd_dev_info *out)
{
    *out = (struct dd_dev_info){ .vendor = dd_cfg_read16(d, 0), .device = dd_cfg_read16(d, 2),
                                 .class_code = dd_cfg_read32(d, 8) >> 8,
                                 .revision = dd_cfg_read8(d, 8), .dev = d->f->slot };
    snprintf(out->name, sizeof out->name, "%s", d->f->name);
}

void dd_cmd_set(struct dd_dev *d, uint16_t bits)
{
    uint16_t cmd;
    memcpy(&cmd, d->f->cfg + PCI_COMMAND, 2);
    if (!pci_cfg_write(d->f, PCI_COMMAND, 2, (uint32_t)(cmd | bits)))
        dd_panic("dd_host: the command register refused %#x", bits);
}

struct dd_bar *dd_bar(struct dd_dev *d, unsigned n)
{
    if (n >= PCI_BARS || d->f->bar[n].kind == PCI_BAR_NONE)
        return NULL;
    struct dd_bar *b = &d->h->bar[d->f->slot][n];
    *b = (struct dd_bar){ d->h, d->f, n };
    return b;
}

uint64_t dd_bar_size(const struct dd_bar *b) { return b->f->bar[b->n].size; }
bool dd_bar_is_io(const struct dd_bar *b) { return b->f->bar[b->n].kind == PCI_BAR_IOPORT; }

static uint64_t bar_access(const struct dd_bar *b, uint64_t off, uint32_t size, bool write,
                           uint64_t v)
{
    if (off + size > dd_bar_size(b) || off % size)
        dd_panic("dd_host: BAR%u access of %u bytes at %#llx", b->n, size,
                 (unsigned long long)off);
    struct bus_access a = { .addr = b->f->bar[b->n].base + off, .size = size,
                            .is_write = write, .value = v };
    if (pci_mmio_access(&b->h->bus, &a) != BUS_OK)
        dd_panic("dd_host: BAR%u access at %#llx was not handled", b->n,
                 (unsigned long long)off);
    return a.value;
}

uint8_t dd_mmio_read8(const struct dd_bar *b, uint64_t off) { return (uint8_t)bar_access(b, off, 1, false, 0); }
uint16_t dd_mmio_read16(const struct dd_bar *b, uint64_t off) { return (uint16_t)bar_access(b, off, 2, false, 0); }
uint32_t dd_mmio_read32(const struct dd_bar *b, uint64_t off) { return (uint32_t)bar_access(b, off, 4, false, 0); }
uint64_t dd_mmio_read64(const struct dd_bar *b, uint64_t off) { return bar_access(b, off, 8, false, 0); }
void dd_mmio_write8(const struct dd_bar *b, uint64_t off, uint8_t v) { bar_access(b, off, 1, true, v); }
void dd_mmio_write16(const struct dd_bar *b, uint64_t off, uint16_t v) { bar_access(b, off, 2, true, v); }
void dd_mmio_write32(const struct dd_bar *b, uint64_t off, uint32_t v) { bar_access(b, off, 4, true, v); }
void dd_mmio_write64(const struct dd_bar *b, uint64_t off, uint64_t v) { bar_access(b, off, 8, true, v); }

static uint32_t io_access(const struct dd_bar *b, uint32_t off, uint32_t size, bool write,
                          uint32_t v)
{
    if ((uint64_t)off + size > dd_bar_size(b) || !dd_bar_is_io(b))
        dd_panic("dd_host: I/O BAR%u access of %u bytes at %#x", b->n, size, off);
    struct bus_access a = { .addr = b->f->bar[b->n].base + off, .size = size,
                            .is_write = write, .value = v };
    if (pci_pio_access(&b->h->bus, &a) != BUS_OK)
        dd_panic("dd_host: I/O BAR%u access at %#x was not handled", b->n, off);
    return (uint32_t)a.value;
}

uint8_t dd_io_read8(const struct dd_bar *b, uint32_t off) { return (uint8_t)io_access(b, off, 1, false, 0); }
uint16_t dd_io_read16(const struct dd_bar *b, uint32_t off) { return (uint16_t)io_access(b, off, 2, false, 0); }
uint32_t dd_io_read32(const struct dd_bar *b, uint32_t off) { return io_access(b, off, 4, false, 0); }
void dd_io_write8(const struct dd_bar *b, uint32_t off, uint8_t v) { io_access(b, off, 1, true, v); }
void dd_io_write16(const struct dd_bar *b, uint32_t off, uint16_t v) { io_access(b, off, 2, true, v); }
void dd_io_write32(const struct dd_bar *b, uint32_t off, uint32_t v) { io_access(b, off, 4, true, v); }

/* ---- DMA, memory, interrupts --------------------------------------------------------- */

bool dd_dma_alloc(uint64_t size, uint64_t align, struct dd_dma *out)
{
    struct dd_host *h = current("dd_dma_alloc");
    uint64_t a = align > 4096 ? align : 4096;
    uint64_t at = (h->used + a - 1) & ~(a - 1);
    size = (size + 4095) & ~4095ull;
    if (!size || at + size > h->wm.len)
        return false;
    h->used = at + size;
    memset(h->mem + at, 0, size);
    *out = (struct dd_dma){ .va = h->mem + at, .iova = HOST_WINDOW_IOVA + at, .size = size };
    return true;
}

unsigned dd_dma_window_count(void) { return 1; }

bool dd_dma_window(unsigned i, uint64_t *iova, uint64_t *size)
{
    struct dd_host *h = current("dd_dma_window");
    if (i != 0)
        return false;
    *iova = HOST_WINDOW_IOVA;
    *size = h->wm.len;
    return true;
}

void *dd_mem_alloc(uint64_t size)
{
    void *p = aligned_alloc(4096, (size + 4095) & ~4095ull);
    if (!p)
        dd_panic("dd_host: out of memory");
    memset(p, 0, size);
    return p;           /* kept for the life of the process, like a domain's */
}

/* Entry `entry` routed to the host's irq_fd (fn is not called: the
 * caller's loop polls after a wake-up). */
struct dd_irq *dd_irq_msix(struct dd_dev *d, unsigned entry, dd_irq_fn fn, void *ctx)
{
    (void)fn, (void)ctx;
    uint32_t cap = dd_cap_find(d, PCI_CAP_ID_MSIX, 0);
    if (!cap || entry >= sizeof d->h->irq / sizeof d->h->irq[0])
        dd_panic("dd_host: no MSI-X capability or entry %u out of range", entry);
    uint16_t ctrl = dd_cfg_read16(d, cap + PCI_MSIX_CTRL);
    uint32_t t = dd_cfg_read32(d, cap + PCI_MSIX_TABLE);
    struct dd_irq *irq = &d->h->irq[entry];
    irq->dev = d;
    irq->bar = t & PCI_MSIX_BIR_MASK;
    irq->table_off = (t & ~PCI_MSIX_BIR_MASK) + (uint64_t)entry * PCI_MSIX_ENTRY_SIZE;
    const struct dd_bar *bar = dd_bar(d, irq->bar);
    if (!bar)
        dd_panic("dd_host: the MSI-X table BAR is missing");
    dd_mmio_write32(bar, irq->table_off + PCI_MSIX_ENTRY_CTRL, PCI_MSIX_ENTRY_MASKED);
    dd_mmio_write32(bar, irq->table_off + PCI_MSIX_ENTRY_ADDR_LO, PCI_MSI_ADDR_BASE);
    dd_mmio_write32(bar, irq->table_off + PCI_MSIX_ENTRY_ADDR_HI, 0);
    dd_mmio_write32(bar, irq->table_off + PCI_MSIX_ENTRY_DATA, HOST_MSI_VECTOR0 + entry);
    dd_mmio_write32(bar, irq->table_off + PCI_MSIX_ENTRY_CTRL, 0);
    cfg_write(d, cap + PCI_MSIX_CTRL, 2,
              (uint16_t)((ctrl & ~PCI_MSIX_CTRL_MASKALL) | PCI_MSIX_CTRL_ENABLE));
    return irq;
}

struct dd_irq *dd_irq_intx(struct dd_dev *d, dd_irq_fn fn, void *ctx)
{
    (void)d, (void)fn, (void)ctx;
    dd_panic("dd_host: INTx is not routed in process (use MSI-X)");
}

void dd_irq_ack(struct dd_irq *irq) { (void)irq; }
uint64_t dd_irq_count(const struct dd_irq *irq) { return irq->count; }

/* ---- Nic ------------------------------------------------------------------------------ */

struct dd_nic *dd_nic_serve(const char *name, const struct moat_nic_info *info,
                            const struct dd_nic_ops *ops, void *ctx)
{
    (void)name;
    struct dd_host *h = current("dd_nic_serve");
    h->nic = (struct dd_nic){ .h = h, .ops = ops, .ctx = ctx, .info = *info, .link_up = true };
    h->nic_served = true;
    return &h->nic;
}

void dd_nic_rx(struct dd_nic *n, const void *frame, uint32_t len)
{
    if (n->h->on_rx)
        n->h->on_rx(n->h->rx_ctx, frame, len);
}

void dd_nic_tx_ready(struct dd_nic *n) { n->tx_ready++; }
void dd_nic_link(struct dd_nic *n, bool up) { n->link_up = up; }

/* ---- time, run loop, logging ----------------------------------------------------------- */

uint64_t dd_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

bool dd_poll_add(bool (*fn)(void *ctx), void *ctx)
{
    struct dd_host *h = current("dd_poll_add");
    if (h->n_poll == DD_HOST_POLLERS)
        return false;
    h->poll[h->n_poll].fn = fn;
    h->poll[h->n_poll++].ctx = ctx;
    return true;
}

bool dd_idle_add(bool (*fn)(void *ctx), void *ctx)
{
    struct dd_host *h = current("dd_idle_add");
    if (h->n_idle == DD_HOST_POLLERS)
        return false;
    h->idle[h->n_idle].fn = fn;
    h->idle[h->n_idle++].ctx = ctx;
    return true;
}

void dd_run_once(void) { dd_host_poll(current("dd_run_once")); }
void dd_ready(void) {}

_Noreturn void dd_run(void)
{
    for (;;)
        dd_run_once();
}
void dd_spin_set(uint64_t ns) { (void)ns; }
void dd_boot_mark(enum moat_boot_mark step) { (void)step; }
void dd_stop_hook(void (*fn)(void *ctx), void *ctx) { (void)fn, (void)ctx; }
void dd_fault_hook(dd_fault_fn fn, void *ctx, uint32_t kinds) { (void)fn, (void)ctx, (void)kinds; }

_Noreturn void dd_exit(uint32_t code)
{
    fprintf(stderr, "dd_host %s: the driver exited with code %u\n", cur ? cur->name : "-", code);
    exit(code ? 1 : 0);
}

static void vsay(const char *what, const char *fmt, va_list ap)
{
    fprintf(stderr, "dd_host %s: %s", cur ? cur->name : "-", what);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void dd_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsay("", fmt, ap);
    va_end(ap);
}

void dd_panic(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsay("driver panic: ", fmt, ap);
    va_end(ap);
    exit(1);
}
