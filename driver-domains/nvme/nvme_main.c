/*
 * nvme — the NVMe driver domain: drives the NVMe controller assigned to the
 * domain (PCI class 01/08/02, found by class, never by IDs) and serves
 * namespace 1 as the BlockDevice cap "<domain>.<name>".
 *
 * args (all optional):
 *   name=CAP       cap suffix (default blk0)
 *   queues=N       I/O queue pairs (default 2; capped by SET FEATURES
 *                  NUMBER OF QUEUES, by MSI-X vectors - 1 and by 16)
 *   qd=N           commands per queue (default 64; entries = qd + 1,
 *                  capped by CAP.MQES)
 *   max_kib=N      largest transfer in KiB (default 128; capped by MDTS
 *                  and by one PRP list page, 2 MiB)
 *   timeout_ms=N   a command without completion this long is aborted,
 *                  and the controller reset if it stays stuck as long
 *                  again (default 5000)
 *   dbbuf=0        MMIO doorbells even if Doorbell Buffer Config is offered
 *   coalesce=0     no interrupt coalescing; else coal_thr=N (0-based
 *                  entries, default 31) and coal_time=N (100 us, default 1)
 *   spin_us=N      the domain keeps polling N us after its last work,
 *                  then unmasks and sleeps until an MSI-X (default 200)
 *   irq_mask=0     leave the I/O vectors unmasked while polling (by
 *                  default they are masked then: an interrupt only has
 *                  to wake a sleeping domain)
 *   zero_copy=0    always copy through the domain's bounce buffers (by
 *                  default READ and WRITE commands point at the client's
 *                  session buffer when moat made it DMA-reachable)
 *   stats_s=N      log a counter summary at most every N s when something
 *                  changed (default 10; 0 = only at resets)
 *   sessions=N     client sessions served at once (geometry.queues, 4)
 *
 * Memory: the domain needs dma= for queues, one bounce buffer of the max
 * transfer and one PRP list page per command slot: queues x qd x
 * (max_kib + 4) KiB plus a few pages (2 x 64 x 132 KiB ~ 16.6 MiB by
 * default).
 */
#include "nvme.h"
#include "moat/pci_regs.h"

#define MS ((uint64_t)1000000)

static struct nvme_drv drv;

static void parse_args(const char *args, struct nvme_cfg *c)
{
    if (!dd_arg(args, "name", c->name, sizeof c->name))
        memcpy(c->name, "blk0", 5);
    if (c->name[0] == '\0')
        dd_panic("nvme: name= is empty");
    c->queues = dd_arg_u32(args, "queues", 2, 1, NVME_IOQ_MAX);
    c->qd = dd_arg_u32(args, "qd", 64, 1, 4095);
    c->max_bytes = (uint64_t)dd_arg_u32(args, "max_kib", 128, 1, NVME_XFER_MAX >> 10) << 10;
    c->timeout_ns = dd_arg_u32(args, "timeout_ms", 5000, 10, 3600000) * MS;
    c->dbbuf = dd_arg_u64(args, "dbbuf", 1) != 0;
    c->coalesce = dd_arg_u64(args, "coalesce", 1) != 0;
    c->coal_thr = (uint8_t)dd_arg_u32(args, "coal_thr", 31, 0, 255);
    c->coal_time = (uint8_t)dd_arg_u32(args, "coal_time", 1, 0, 255);
    c->irq_mask = dd_arg_u64(args, "irq_mask", 1) != 0;
    c->zero_copy = dd_arg_u64(args, "zero_copy", 1) != 0;
    c->spin_ns = dd_arg_u32(args, "spin_us", DD_SPIN_US_DEFAULT, 0, 1000000) * (uint64_t)1000;
    c->stats_ns = dd_arg_u32(args, "stats_s", 10, 0, 86400) * (uint64_t)1000 * MS;
    c->sessions = dd_arg_u32(args, "sessions", 4, 1, MOAT_SESSION_SLOTS);
}

/* The first assigned function that is an NVMe I/O controller. */
static struct dd_dev *find_controller(void)
{
    for (unsigned i = 0; i < dd_dev_count(); i++) {
        struct dd_dev *dev = dd_dev_get(i);
        struct dd_dev_info info;
        dd_dev_info(dev, &info);
        if (info.class_code == NVME_PCI_CLASS) {
            dd_log("nvme: controller %s at %02x:%02x.%x (%04x:%04x rev %u)", info.name, info.bus,
                   info.dev, info.fn, info.vendor, info.device, info.revision);
            return dev;
        }
    }
    dd_panic("nvme: none of the %u assigned PCI functions is an NVMe controller (class %06x)",
             dd_dev_count(), NVME_PCI_CLASS);
}

void domain_main(const char *args)
{
    struct nvme_drv *d = &drv;
    parse_args(args, &d->cfg);
    d->sync_idx = -1;
    static struct nvme_wait waiting[NVME_WAIT_CAP];
    if (!nvme_fifo_init(&d->waitq, waiting, NVME_WAIT_CAP))
        dd_panic("nvme: driver bug: wait FIFO");

    d->dev = find_controller();
    d->regs = dd_bar(d->dev, 0);
    if (!d->regs || dd_bar_is_io(d->regs) || dd_bar_size(d->regs) < 0x2000u)
        dd_panic("nvme: BAR0 is not a memory BAR of at least 8 KiB");
    dd_cmd_set(d->dev, PCI_CMD_MEM | PCI_CMD_MASTER);

    nvme_ctrl_start(d);

    static const struct dd_blk_ops ops = { .submit = nvme_io_submit };
    if (!dd_blk_serve(d->cfg.name, &d->geo, &ops, d))
        dd_panic("nvme: moat refused the cap '%s'", d->cfg.name);
    /* After dd_blk_serve: the serve poller runs first in each pass, so the
     * doorbells rung at the end of ours cover every request it took. */
    dd_spin_set(d->cfg.spin_ns);
    if (!dd_poll_add(nvme_io_poll, d) || !dd_idle_add(nvme_io_idle, d))
        dd_panic("nvme: no poller slot left");
    uint64_t now = dd_now_ns();
    d->next_tmo_ns = now + MS;
    d->next_stats_ns = now + d->cfg.stats_ns;

    dd_log("nvme: serving %s: %lu blocks of %u bytes (%lu MiB), %u queues x %u, max %u KiB, "
           "flush %s%s%s%s, doorbells %s, coalescing %s", d->cfg.name, d->geo.blocks,
           d->geo.block_size, (d->geo.blocks << d->ns.lbads) >> 20, d->nq, d->ioq[0].q.depth,
           d->max_xfer >> 10, (d->id.vwc & 1u) ? "to the write cache" : "immediate (no cache)",
           (d->geo.flags & MOAT_BLK_F_WRITE_ZEROES) ? ", write zeroes" : "",
           (d->geo.flags & MOAT_BLK_F_DISCARD) ? ", discard" : "",
           (d->geo.flags & MOAT_BLK_F_READONLY) ? ", READ-ONLY (write protected)" : "",
           d->dbbuf ? "shadow + EventIdx" : "MMIO", d->cfg.coalesce ? "on" : "off");
    nvme_fault_hook(d);
    dd_stop_hook(nvme_ctrl_shutdown, d);
    dd_ready();
    dd_run();
}
