/* The driver API over in-process device models (contract in dd_host.h). */
#define DD_HOST_TEST 1
#include "dd_host.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "dd.h"
#include "moat/pci_regs.h"

#define HOST_WINDOW_IOVA 0x100000000ull

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
    (void)ctx, (void)addr, (void)data;
    return true;                /* polled: interrupts go nowhere */
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

void dd_host_fini(struct dd_host *h)
{
    pci_bus_fini(&h->bus);
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

void *dd_mem_alloc(uint64_t size)
{
    void *p = aligned_alloc(4096, (size + 4095) & ~4095ull);
    if (!p)
        dd_panic("dd_host: out of memory");
    memset(p, 0, size);
    return p;           /* kept for the life of the process, like a domain's */
}

struct dd_irq *dd_irq_msix(struct dd_dev *d, unsigned entry, dd_irq_fn fn, void *ctx)
{
    (void)fn, (void)ctx;
    if (entry >= sizeof d->h->irq / sizeof d->h->irq[0])
        dd_panic("dd_host: MSI-X entry %u", entry);
    return &d->h->irq[entry];
}

/* ---- Nic ------------------------------------------------------------------------------ */

struct dd_nic *dd_nic_serve(const char *name, const struct moat_nic_info *info,
                            const struct dd_nic_ops *ops, void *ctx)
{
    (void)name, (void)info;
    struct dd_host *h = current("dd_nic_serve");
    h->nic = (struct dd_nic){ .h = h, .ops = ops, .ctx = ctx, .link_up = true };
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
    (void)fn, (void)ctx;
    return true;                /* never idle: the caller polls */
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
