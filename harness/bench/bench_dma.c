/*
 * bench_dma — the device path's round trip: one testdev copy (driver writes
 * SRC/DST/LEN and the doorbell, each an MMIO exit; the device copies through
 * the broker; the completion interrupt reaches the ring-3 driver), measured
 * by the driver over COPIES copies of 64 bytes, with MSI-X and with INTx
 * through the IOAPIC, side by side in one run. Also: MMIO exits per copy.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "log.h"
#include "report.h"
#include "supervisor.h"

#define COPIES 3000

/* Microseconds per copy reported by testdrv, or a negative value. */
static double run(const char *irq, double *exits_per_copy)
{
    static struct moat_config cfg;
    config_defaults(&cfg);
    snprintf(cfg.log_dir, sizeof cfg.log_dir, "/tmp/moat-bench-logs");
    char spec[512], err[512];
    snprintf(spec, sizeof spec, "name=dma-%s kernel=%s/guest/testdrv.elf dev=testdev dma=2M "
             "args=\"copies=%d len=64 irq=%s\"", irq, MOAT_BUILD_DIR, COPIES, irq);
    struct domain_config dc;
    static struct supervisor sup;
    if (!config_parse_domain(spec, &dc, err, sizeof err) ||
        !supervisor_init(&sup, &cfg, err, sizeof err)) {
        fprintf(stderr, "bench_dma: %s\n", err);
        return -1;
    }
    double us = -1;
    struct domain *d = supervisor_add(&sup, &dc, err, sizeof err);
    if (!d || !domain_start(d, err, sizeof err) ||
        !supervisor_wait(&sup, d, DOMAIN_TERMINAL, 120000) || d->state != DOMAIN_STOPPED) {
        fprintf(stderr, "bench_dma: %s run failed: %s\n", irq, d ? d->crash.detail : err);
        goto out;
    }
    char path[PATH_MAX + 64], line[512];
    snprintf(path, sizeof path, "%s/%s.log", cfg.log_dir, dc.name);
    FILE *f = fopen(path, "r");
    unsigned long n = 0, t = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "testdrv: %lu copies verified in %lu us", &n, &t) == 2 && n == COPIES)
            us = (double)t / (double)n;
    if (f)
        fclose(f);
    *exits_per_copy = (double)d->stats.exits_mmio / COPIES;
    fprintf(stderr, "bench_dma: %s: %.1f us per copy, %.1f MMIO exits per copy\n", irq, us,
            *exits_per_copy);
out:
    supervisor_fini(&sup);
    return us;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PART.json\n", argv[0]);
        return 2;
    }
    log_set_quiet(true);
    double ex_msix = 0, ex_intx = 0;
    double msix = run("msix", &ex_msix), intx = run("intx", &ex_intx);
    if (msix <= 0 || intx <= 0)
        return 1;
    struct bench_record r[] = {
        { "dma_copy_64B_round_trip_msix", msix, "us", "dma_copy_64B_round_trip_intx", intx },
        { "dma_copy_mmio_exits_per_copy_msix", ex_msix, "exits", NULL, 0 },
        { "dma_copy_mmio_exits_per_copy_intx", ex_intx, "exits", NULL, 0 },
    };
    return bench_write(argv[1], r, sizeof r / sizeof r[0]) ? 0 : 1;
}
