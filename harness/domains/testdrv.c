/*
 * testdrv — the test driver domain for testdev (moat/testdev_regs.h). It
 * uses only the driver API (dd.h): finds its function, sizes and maps the
 * BARs, programs MSI-X (or INTx), allocates DMA memory from its windows and
 * runs copies, verifying every byte.
 *
 * Arguments (all optional):
 *   copies=N     copies to run and verify (default 10000)
 *   irq=msix|intx  completion interrupt (default msix)
 *   len=N        every copy N bytes (1..65536; default: random 1..65536)
 *   hostile=LIST  after the copies, aim one copy at each target in LIST
 *                 (comma-separated): private (the domain's own RAM),
 *                 foreign (IOVA given by foreign=0x...), revoked (the IOVA
 *                 of window 1, after the host revoked it and set the go
 *                 flag), overflow (a range that wraps 64 bits). Each must
 *                 end in STATUS.ERROR with nothing copied; one good copy
 *                 follows to show the device still works. Needs
 *                 policy=audit on the domain (failstop would stop it at the
 *                 first refusal, which is the other thing tests check).
 *                 Also: config (write the read-only vendor ID; it must
 *                 read back unchanged).
 *   foreign=IOVA  see above
 *   serve=1      announce ready and serve (heartbeat) until stopped
 *   stop=ignore  (with serve=1) a stop hook that never returns: the run
 *                loop keeps beating, so only moat's stop grace time ends
 *                the domain
 *
 * Lines it prints (tests look for them):
 *   testdrv: N copies verified in T us
 *   testdrv: hostile KIND refused with error 0xE
 *   testdrv: private canary intact
 *   testdrv: done
 *   testdrv: orderly stop (from its stop hook)
 */
#include "dd.h"
#include "moat/pci_regs.h"
#include "moat/testdev_regs.h"

#define WAIT_NS   2000000000ull
#define BUF_SIZE  (64u << 10)
/* The go flag the host sets (through the broker) in the last page of
 * window 0 before a revoked-window copy. */
#define GO_MAGIC  0x60606060u

static void stop_hook(void *ctx)
{
    (void)ctx;
    dd_log("testdrv: orderly stop");
}

static void stop_ignore(void *ctx)
{
    (void)ctx;
    dd_log("testdrv: ignoring the stop request");
    for (;;)
        dd_run_once();
}

static struct dd_dev *dev;
static struct dd_bar *regs;
static struct dd_irq *irq;
static bool use_intx;
static uint8_t canary[4096] __attribute__((aligned(4096)));

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* One copy; returns STATUS after completion and clears it. */
static uint32_t copy(uint64_t src, uint64_t dst, uint32_t len)
{
    uint64_t seen = dd_irq_count(irq);
    dd_mmio_write64(regs, TD_REG_SRC, src);
    dd_mmio_write64(regs, TD_REG_DST, dst);
    dd_mmio_write32(regs, TD_REG_LEN, len);
    dd_wmb();
    dd_mmio_write32(regs, TD_REG_DOORBELL, 1);
    if (!dd_irq_wait(irq, seen, WAIT_NS))
        dd_panic("copy of %u bytes 0x%lx -> 0x%lx: no interrupt within 2 s (status 0x%x)",
                 len, src, dst, dd_mmio_read32(regs, TD_REG_STATUS));
    uint32_t st = dd_mmio_read32(regs, TD_REG_STATUS);
    dd_mmio_write32(regs, TD_REG_STATUS, st);       /* W1C: deasserts INTx */
    if (use_intx)
        dd_irq_ack(irq);
    return st;
}

static uint32_t fixed_len;

static void run_copies(uint64_t n, struct dd_dma *a, struct dd_dma *b)
{
    uint64_t t0 = dd_now_ns();
    for (uint64_t i = 0; i < n; i++) {
        uint32_t len = fixed_len ? fixed_len : (uint32_t)(next_rand() % BUF_SIZE) + 1;
        uint8_t *src = a->va, *dst = b->va;
        for (uint32_t k = 0; k < len; k += 8) {
            uint64_t r = next_rand();
            memcpy(src + k, &r, len - k < 8 ? len - k : 8);
        }
        dst[len] = (uint8_t)~src[len];      /* the byte after must survive */
        uint8_t after = dst[len];
        uint32_t st = copy(a->iova, b->iova, len);
        if (st != TD_STATUS_DONE)
            dd_panic("copy %lu: status 0x%x, last error 0x%x", i, st,
                     dd_mmio_read32(regs, TD_REG_LAST_ERROR));
        if (memcmp(src, dst, len) != 0)
            dd_panic("copy %lu of %u bytes: destination differs from source", i, len);
        if (dst[len] != after)
            dd_panic("copy %lu of %u bytes wrote past its end", i, len);
    }
    uint32_t done = dd_mmio_read32(regs, TD_REG_COMPLETED);
    if (done < n)
        dd_panic("device counts %u completed copies, driver ran %lu", done, n);
    dd_log("testdrv: %lu copies verified in %lu us", n, (dd_now_ns() - t0) / 1000);
}

static void expect_refused(const char *kind, uint64_t src, uint64_t dst, uint32_t len)
{
    uint32_t st = copy(src, dst, len);
    uint32_t e = dd_mmio_read32(regs, TD_REG_LAST_ERROR);
    if (st != TD_STATUS_ERROR || e < TD_ERR_DMA_BASE)
        dd_panic("hostile %s copy was not refused by the broker (status 0x%x, error 0x%x)",
                 kind, st, e);
    dd_log("testdrv: hostile %s refused with error 0x%x", kind, e);
}

static void run_hostile(const char *args, struct dd_dma *a, struct dd_dma *b)
{
    char list[128];
    if (!dd_arg(args, "hostile", list, sizeof list))
        return;
    memset(canary, 0xA5, sizeof canary);
    memset(a->va, 0x5A, BUF_SIZE);
    for (char *p = list; *p;) {
        char *kind = p;
        while (*p && *p != ',')
            p++;
        if (*p)
            *p++ = '\0';
        if (!strcmp(kind, "private")) {
            expect_refused(kind, a->iova, (uint64_t)(uintptr_t)canary, sizeof canary);
        } else if (!strcmp(kind, "foreign")) {
            uint64_t f = dd_arg_u64(args, "foreign", 0);
            if (!f)
                dd_panic("hostile=foreign needs foreign=IOVA");
            expect_refused(kind, a->iova, f, 4096);
        } else if (!strcmp(kind, "revoked")) {
            uint64_t w0, s0, w1, s1;
            if (!dd_dma_window(0, &w0, &s0) || !dd_dma_window(1, &w1, &s1))
                dd_panic("hostile=revoked needs dma-windows=2");
            volatile uint32_t *go = (volatile uint32_t *)(uintptr_t)(w0 + s0 - 4096);
            dd_log("testdrv: waiting for the host to revoke window 1 at 0x%lx", w1);
            uint64_t until = dd_now_ns() + 10 * WAIT_NS;
            while (*go != GO_MAGIC) {
                if (dd_now_ns() > until)
                    dd_panic("the host never set the go flag");
                dd_run_once();
            }
            expect_refused(kind, a->iova, w1, 4096);
        } else if (!strcmp(kind, "config")) {
            dd_cfg_write16(dev, PCI_VENDOR_ID, 0xDEAD);
            uint16_t v = dd_cfg_read16(dev, PCI_VENDOR_ID);
            if (v != TESTDEV_VENDOR_ID)
                dd_panic("vendor ID write was accepted (reads 0x%x)", v);
            dd_log("testdrv: hostile config refused, vendor still 0x%x", v);
        } else if (!strcmp(kind, "overflow")) {
            expect_refused(kind, a->iova, 0xFFFFFFFFFFFFF000ull, 0x2000);
        } else {
            dd_panic("unknown hostile kind '%s'", kind);
        }
    }
    for (unsigned i = 0; i < sizeof canary; i++)
        if (canary[i] != 0xA5)
            dd_panic("private canary byte %u changed to 0x%x", i, canary[i]);
    dd_log("testdrv: private canary intact");
    run_copies(1, a, b);
}

void domain_main(const char *args)
{
    char mode[8] = "msix";
    dd_arg(args, "irq", mode, sizeof mode);
    use_intx = !strcmp(mode, "intx");
    uint64_t l = dd_arg_u64(args, "len", 0);
    if (l > BUF_SIZE)
        dd_panic("len=%lu: at most %u", l, BUF_SIZE);
    fixed_len = (uint32_t)l;

    dev = dd_dev_find(TESTDEV_VENDOR_ID, TESTDEV_DEVICE_ID, 0);
    if (!dev)
        dd_panic("no testdev among the %u assigned devices", dd_dev_count());
    struct dd_dev_info info;
    dd_dev_info(dev, &info);
    regs = dd_bar(dev, 0);
    struct dd_bar *io = dd_bar(dev, 4);
    if (!regs || !io || dd_bar_size(regs) != 4096 || !dd_bar_is_io(io))
        dd_panic("testdev BARs are not as documented");
    if (dd_mmio_read32(regs, TD_REG_ID) != TESTDEV_ID_VALUE ||
        dd_io_read32(io, TD_IO_ID) != TESTDEV_ID_VALUE)
        dd_panic("testdev ID register reads wrong");
    dd_io_write32(io, TD_IO_SCRATCH, 0xC0FFEE);
    if (dd_io_read32(io, TD_IO_SCRATCH) != 0xC0FFEE)
        dd_panic("testdev I/O scratch register does not hold its value");
    dd_cmd_set(dev, PCI_CMD_MASTER);
    irq = use_intx ? dd_irq_intx(dev, 0, 0) : dd_irq_msix(dev, 1, 0, 0);
    dd_mmio_write32(regs, TD_REG_VECTOR, 1);
    dd_log("testdrv: %s at %02x:%02x.%x class %06x, %u DMA windows, %s interrupts", info.name,
           info.bus, info.dev, info.fn, info.class_code, dd_dma_window_count(), mode);

    struct dd_dma a, b;
    if (!dd_dma_alloc(BUF_SIZE, 0, &a) || !dd_dma_alloc(BUF_SIZE + 4096, 0, &b))
        dd_panic("no room for two %u-byte DMA buffers", BUF_SIZE);
    dd_ready();

    run_copies(dd_arg_u64(args, "copies", 10000), &a, &b);
    run_hostile(args, &a, &b);
    dd_log("testdrv: done");
    if (dd_arg_u64(args, "serve", 0)) {
        char stop[16] = "";
        dd_arg(args, "stop", stop, sizeof stop);
        dd_stop_hook(strcmp(stop, "ignore") ? stop_hook : stop_ignore, NULL);
        dd_run();
    }
}
