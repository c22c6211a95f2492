/*
 * bench_restart — how fast a driver fault becomes a restart a client does
 * not see, per fault kind, for ramblk and the NVMe driver:
 *   detection  fault injected -> the VMM decided the incarnation ended
 *   restored   fault injected -> the first client read that succeeds on
 *              the new incarnation (libmoat's transparent recovery)
 * and where the restored time goes (detection, teardown, building the new
 * VM, its boot to ready, the client's reattach), medians per kind. Target:
 * restored within 100 ms at p99; a warm spare would be near 20 ms.
 * The domains run with watchdog-ms=100 (hang and spin are found only by
 * the watchdog: their detection is that figure, not a code path) and
 * restarts=64/10ms: each fault is an isolated one, whose restart is
 * immediate (a crash loop's backoff is not what this measures).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>
#include "control.h"
#include "log.h"
#include "moat/libmoat.h"
#include "report.h"
#include "supervisor.h"

#define REPS 12
#define SOCK "/tmp/moat-bench-logs/restart.sock"

static struct supervisor sup;
static struct control ctl;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static struct domain *boot(const char *spec) { return bench_boot_domain(&sup, spec); }

struct phases { double detect, teardown, build, boot, reattach, restored; };

/* One fault into d; the client reads until its session moved on. */
static bool one(struct domain *d, const char *name, uint32_t kind, struct moat_cap *cc,
                struct moat_session *s, struct phases *out)
{
    struct moat_session_stats st0, st;
    moat_session_stats(s, &st0);
    pthread_mutex_lock(&sup.lock);
    uint32_t ends = d->n_causes;
    pthread_mutex_unlock(&sup.lock);
    static uint8_t buf[4096];
    uint64_t t0 = now_ns();
    int rc = moat_inject(cc, name, kind);
    if (rc) {
        fprintf(stderr, "bench_restart: inject %s into %s: %s\n", moat_fault_name(kind), name,
                moat_strerror(rc));
        return false;
    }
    do {
        if ((rc = moat_blk_read(s, 0, 8, buf)) != 0) {
            fprintf(stderr, "bench_restart: read across %s: %s\n", moat_fault_name(kind),
                    moat_strerror(rc));
            return false;
        }
        moat_session_stats(s, &st);
    } while (st.recoveries == st0.recoveries);
    uint64_t t_back = now_ns();
    pthread_mutex_lock(&sup.lock);
    if (d->n_causes != ends + 1) {
        pthread_mutex_unlock(&sup.lock);
        fprintf(stderr, "bench_restart: %s ended %u times\n", name, d->n_causes - ends);
        return false;
    }
    const struct domain_cause *c = &d->causes[ends % DOMAIN_CAUSES];
    *out = (struct phases){
        .detect = (double)(c->t_detect_ns - t0) / 1e6,
        .teardown = (double)(c->t_ns - c->t_detect_ns) / 1e6,
        .build = (double)(d->t_start_ns > c->t_ns ? d->t_start_ns - c->t_ns : 0) / 1e6,
        .boot = (double)(d->t_ready_ns - d->t_start_ns) / 1e6,
        .reattach = (double)(t_back > d->t_ready_ns ? t_back - d->t_ready_ns : 0) / 1e6,
        .restored = (double)(t_back - t0) / 1e6,
    };
    pthread_mutex_unlock(&sup.lock);
    return true;
}

int main(int argc, char **argv)
{
    static struct moat_config cfg;
    if (!bench_start(argc, argv, &cfg))
        return 2;
    char err[512];
    if (!supervisor_init(&sup, &cfg, err, sizeof err) ||
        !control_start(&ctl, &sup, SOCK, err, sizeof err)) {
        fprintf(stderr, "bench_restart: %s\n", err);
        return 1;
    }
    const char *img = "/tmp/moat-bench-logs/restart.img";
    int fd = open(img, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || ftruncate(fd, 16 << 20) != 0) {
        fprintf(stderr, "bench_restart: cannot create %s\n", img);
        return 1;
    }
    close(fd);
    char spec[1024];
    snprintf(spec, sizeof spec, "name=ram0 kernel=%s/guest/ramblk.elf mem=32M watchdog-ms=100 "
             "restarts=64/10ms args=\"size=4M\"", MOAT_BUILD_DIR);
    struct domain *ram = boot(spec);
    snprintf(spec, sizeof spec, "name=nv kernel=%s/guest/nvme.elf mem=64M dma=32M "
             "watchdog-ms=100 restarts=64/10ms dev=nvme:image=%s", MOAT_BUILD_DIR, img);
    struct domain *nv = boot(spec);
    struct moat_client *c;
    struct moat_cap *cc, *cap[2];
    struct moat_session *s[2];
    int rc = moat_connect(SOCK, &c);
    if (rc || (rc = moat_open(c, "control", MOAT_RIGHT_READ | MOAT_RIGHT_ADMIN, &cc)) ||
        (rc = moat_open(c, "ram0.blk0", MOAT_RIGHT_READ, &cap[0])) ||
        (rc = moat_open(c, "nv.blk0", MOAT_RIGHT_READ, &cap[1])) ||
        (rc = moat_session_open(cap[0], NULL, &s[0])) ||
        (rc = moat_session_open(cap[1], NULL, &s[1]))) {
        fprintf(stderr, "bench_restart: client: %s\n", moat_strerror(rc));
        return 1;
    }
    static const uint32_t kinds[] = { MOAT_FAULT_KILL, MOAT_FAULT_PANIC, MOAT_FAULT_TRIPLE_FAULT,
                                      MOAT_FAULT_WILD_MMIO, MOAT_FAULT_HANG,
                                      MOAT_FAULT_WILD_DMA_PRIVATE };
    struct domain *doms[2] = { ram, nv };
    const char *names[2] = { "ram0", "nv" };
    static struct bench_record rec[64];
    static char rec_names[64][96];
    size_t nr = 0;
    double all_restored[2][REPS * 6];
    size_t n_all[2] = { 0, 0 };
    fprintf(stderr, "medians in ms; 'wait' is restart backoff (0 for an isolated fault), 'boot' "
            "runs from building the VM to ready\n");
    fprintf(stderr, "%-5s %-17s %9s %9s %9s %9s %9s %9s %9s\n", "dom", "fault", "detect",
            "teardown", "wait", "boot", "reattach", "restored", "p99");
    for (int k = 0; k < 2; k++) {
        for (size_t f = 0; f < sizeof kinds / sizeof kinds[0]; f++) {
            if (kinds[f] == MOAT_FAULT_WILD_DMA_PRIVATE && k == 0)
                continue;       /* ramblk has no device */
            double det[REPS], td[REPS], bld[REPS], bt[REPS], re[REPS], rs[REPS];
            for (int r = 0; r < REPS; r++) {
                struct phases p;
                if (!one(doms[k], names[k], kinds[f], cc, s[k], &p))
                    return 1;
                det[r] = p.detect, td[r] = p.teardown, bld[r] = p.build, bt[r] = p.boot;
                re[r] = p.reattach, rs[r] = p.restored;
                all_restored[k][n_all[k]++] = p.restored;
            }
            double p99 = bench_percentile(rs, REPS, 99), med = bench_percentile(rs, REPS, 50);
            fprintf(stderr, "%-5s %-17s %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f\n", names[k],
                    moat_fault_name(kinds[f]), bench_percentile(det, REPS, 50),
                    bench_percentile(td, REPS, 50), bench_percentile(bld, REPS, 50),
                    bench_percentile(bt, REPS, 50), bench_percentile(re, REPS, 50), med, p99);
            snprintf(rec_names[nr], sizeof rec_names[nr], "%s %s: fault->detected median",
                     names[k], moat_fault_name(kinds[f]));
            rec[nr] = (struct bench_record){ rec_names[nr], bench_percentile(det, REPS, 50), "ms",
                                             NULL, 0 };
            nr++;
            snprintf(rec_names[nr], sizeof rec_names[nr], "%s %s: fault->restored p99",
                     names[k], moat_fault_name(kinds[f]));
            rec[nr] = (struct bench_record){ rec_names[nr], p99, "ms",
                                             "median", med };
            nr++;
        }
    }
    for (int k = 0; k < 2; k++) {
        snprintf(rec_names[nr], sizeof rec_names[nr], "%s: fault->restored p99, all kinds", names[k]);
        rec[nr] = (struct bench_record){ rec_names[nr],
                                         bench_percentile(all_restored[k], n_all[k], 99), "ms",
                                         "target", 100 };
        nr++;
    }
    moat_session_close(s[0]);
    moat_session_close(s[1]);
    moat_disconnect(c);
    control_stop(&ctl);
    supervisor_fini(&sup);
    return bench_write(argv[1], rec, nr) ? 0 : 1;
}
