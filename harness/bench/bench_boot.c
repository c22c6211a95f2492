/*
 * bench_boot — domain boot time, create -> ready: from the start of VM
 * creation in moat to the domain's READY announcement, over BOOTS
 * sequential boots of the test domain (16 MiB). Prints progress and writes
 * the median and p99 to the part file given as argv[1].
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "log.h"
#include "report.h"
#include "supervisor.h"

#define BOOTS 60
#define PER_SUPERVISOR 20

int main(int argc, char **argv)
{
    static struct moat_config cfg;
    if (!bench_start(argc, argv, &cfg))
        return 2;
    struct domain_config dc;
    memset(&dc, 0, sizeof dc);
    snprintf(dc.kernel, sizeof dc.kernel, "%s/guest/testdomain.elf", MOAT_BUILD_DIR);
    dc.ram_size = MOAT_DEFAULT_RAM;

    double ms[BOOTS];
    char err[512];
    for (int done = 0; done < BOOTS;) {
        static struct supervisor sup;
        if (!supervisor_init(&sup, &cfg, err, sizeof err)) {
            fprintf(stderr, "bench_boot: %s\n", err);
            return 1;
        }
        for (int i = 0; i < PER_SUPERVISOR && done < BOOTS; i++, done++) {
            snprintf(dc.name, sizeof dc.name, "boot%d", done);
            struct domain *d = supervisor_add(&sup, &dc, err, sizeof err);
            if (!d || !domain_start(d, err, sizeof err) ||
                !supervisor_wait(&sup, d, DOMAIN_STATE_BIT(DOMAIN_READY), 10000)) {
                fprintf(stderr, "bench_boot: boot %d failed: %s\n", done,
                        d ? d->crash.detail : err);
                return 1;
            }
            ms[done] = (double)(d->t_ready_ns - d->t_start_ns) / 1e6;
            domain_request_stop(d);
            domain_join(d);
            if (isatty(STDERR_FILENO))
                fprintf(stderr, "\rbench_boot: %d/%d boots", done + 1, BOOTS);
            else if ((done + 1) % 20 == 0)
                fprintf(stderr, "bench_boot: %d/%d boots\n", done + 1, BOOTS);
        }
        supervisor_fini(&sup);
    }
    if (isatty(STDERR_FILENO))
        fputc('\n', stderr);
    double median = bench_percentile(ms, BOOTS, 50), p99 = bench_percentile(ms, BOOTS, 99);
    struct bench_record r[] = {
        { "domain_boot_create_to_ready_median", median, "ms", NULL, 0 },
        { "domain_boot_create_to_ready_p99", p99, "ms", NULL, 0 },
    };
    return bench_write(argv[1], r, sizeof r / sizeof r[0]) ? 0 : 1;
}
