/*
 * bench_boot — domain bring-up, create -> ready, with where the time goes:
 * from the start of VM creation in moat to the domain's READY announcement
 * (for a driver domain that is after its caps are registered, so for the
 * NVMe domain it is create -> nvme0.blk0 up), over sequential boots of
 *   - the test domain (16 MiB, no device),
 *   - the NVMe driver domain (64 MiB, 32 MiB DMA window, a 64 MiB image),
 *   - the virtio-net driver domain (32 MiB, 16 MiB window, modern device).
 * Each boot's phases come from moat's own stamps and the guest's boot marks
 * (vmm/boot_phases.h); the table gives each phase's median and the exits
 * the vCPU took while booting. Writes the medians and p99s to argv[1].
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "log.h"
#include "report.h"
#include "supervisor.h"

#define PER_SUPERVISOR 20
#define NVME_IMAGE "/tmp/moat-bench-logs/boot-nvme.img"

struct kind {
    const char *label;          /* in the records' names */
    const char *image;          /* in build/guest */
    const char *spec;           /* the rest of the domain spec */
    int boots;
};

static const struct kind kinds[] = {
    { "domain_boot", "testdomain.elf", "", 60 },
    { "nvme_boot", "nvme.elf", "mem=64M dma=32M dev=nvme:image=" NVME_IMAGE, 30 },
    { "vnet_boot", "vnet.elf", "mem=32M dma=16M dev=virtio-net", 30 },
};
#define KINDS (sizeof kinds / sizeof kinds[0])
#define BOOTS_MAX 60

struct samples {
    double total[BOOTS_MAX];
    double phase[BOOT_PHASES][BOOTS_MAX];
    double exits[BOOTS_MAX];
    int n;
};

static bool run_kind(const struct moat_config *cfg, const struct kind *k, struct samples *out)
{
    char spec[512], err[512];
    out->n = 0;
    while (out->n < k->boots) {
        static struct supervisor sup;
        if (!supervisor_init(&sup, cfg, err, sizeof err)) {
            fprintf(stderr, "bench_boot: %s\n", err);
            return false;
        }
        for (int i = 0; i < PER_SUPERVISOR && out->n < k->boots; i++) {
            snprintf(spec, sizeof spec, "name=%.8s%d kernel=%s/guest/%s %s", k->label, i,
                     MOAT_BUILD_DIR, k->image, k->spec);
            struct domain *d = bench_boot_domain(&sup, spec);
            int n = out->n++;
            out->total[n] = (double)(d->t_ready_ns - d->t_start_ns) / 1e6;
            for (int p = 0; p < BOOT_PHASES; p++)
                out->phase[p][n] = d->boot.known[p] ? (double)d->boot.ns[p] / 1e6 : 0;
            out->exits[n] = (double)d->boot_exits;
            domain_request_stop(d);
            domain_join(d);
        }
        supervisor_fini(&sup);
        fprintf(stderr, "bench_boot: %s: %d/%d boots\n", k->label, out->n, k->boots);
    }
    return true;
}

int main(int argc, char **argv)
{
    static struct moat_config cfg;
    if (!bench_start(argc, argv, &cfg))
        return 2;
    int fd = open(NVME_IMAGE, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || ftruncate(fd, 64 << 20) != 0) {
        perror("bench_boot: " NVME_IMAGE);
        return 1;
    }
    close(fd);
    static struct samples s[KINDS];
    static char names[KINDS * (BOOT_PHASES + 3)][96];
    struct bench_record rec[KINDS * (BOOT_PHASES + 3)];
    size_t nr = 0;
    for (size_t k = 0; k < KINDS; k++)
        if (!run_kind(&cfg, &kinds[k], &s[k]))
            return 1;
    fprintf(stderr, "bench_boot: median ms per phase (create -> ready)\n%-12s", "");
    for (int p = 0; p < BOOT_PHASES; p++)
        fprintf(stderr, " %8s", boot_phase_name(p));
    fprintf(stderr, " %8s %8s %6s\n", "total", "p99", "exits");
    for (size_t k = 0; k < KINDS; k++) {
        struct samples *x = &s[k];
        fprintf(stderr, "%-12s", kinds[k].label);
        for (int p = 0; p < BOOT_PHASES; p++) {
            double m = bench_percentile(x->phase[p], (size_t)x->n, 50);
            fprintf(stderr, " %8.2f", m);
            snprintf(names[nr], sizeof names[nr], "%s phase %s median", kinds[k].label,
                     boot_phase_name(p));
            rec[nr] = (struct bench_record){ names[nr], m, "ms", NULL, 0 };
            nr++;
        }
        double med = bench_percentile(x->total, (size_t)x->n, 50);
        double p99 = bench_percentile(x->total, (size_t)x->n, 99);
        double ex = bench_percentile(x->exits, (size_t)x->n, 50);
        fprintf(stderr, " %8.2f %8.2f %6.0f\n", med, p99, ex);
        /* The targets: 10 ms for a domain, 20 ms for a driver domain. */
        snprintf(names[nr], sizeof names[nr], "%s_create_to_ready_median", kinds[k].label);
        rec[nr] = (struct bench_record){ names[nr], med, "ms", "target", k == 0 ? 10.0 : 20.0 };
        nr++;
        snprintf(names[nr], sizeof names[nr], "%s_create_to_ready_p99", kinds[k].label);
        rec[nr] = (struct bench_record){ names[nr], p99, "ms", NULL, 0 };
        nr++;
        snprintf(names[nr], sizeof names[nr], "%s exits while booting, median", kinds[k].label);
        rec[nr] = (struct bench_record){ names[nr], ex, "exits", NULL, 0 };
        nr++;
    }
    unlink(NVME_IMAGE);
    return bench_write(argv[1], rec, nr) ? 0 : 1;
}
