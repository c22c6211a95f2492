/*
 * bench_bare_dma — the cost of bare mode's backends side by side under
 * TCG: blkcheck, an app domain, writes 4 MiB through the NVMe domain's
 * cap, flushes, reads it back and verifies (64 KiB requests, zero copy),
 * with the domains in ring 3 or as SVM guests (isolation) and the
 * controller's DMA checked at the doorbell (shadow: SQs copied, PRPs
 * translated; no IOMMU) or confined by VT-d (q35's intel-iommu; no
 * interposition) — all four, in alternating rounds on one machine shape
 * (-cpu EPYC, the isolation chosen by moat.isolation=); MiB/s and
 * requests/s, medians with the range, each as a ratio of ring3 + shadow.
 * Everything is emulated here (the CPU, SVM and the IOMMU): the ratios
 * say how the backends compare under TCG, not what hardware would show.
 * No QEMU: SKIPPED, and an empty part.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bare_bench.h"

#define ROUNDS 5
#define KIB 512
#define APP_ROUNDS 8
#define DEADLINE_MS 180000u
#define IMG "/tmp/moat-bench-bare-dma.img"

static struct qemu_console qc;

struct run { double mibs, reqs; };

/* One boot with the isolation and DMA backends asked: the app's MiB/s
 * (APP_ROUNDS x write + flush + read + verify of KIB) and requests/s. */
static struct run one_run(const char *qemu, bool svm, bool vtd)
{
    char kernel[PATH_MAX], mod[2 * PATH_MAX + 256], err[256];
    snprintf(kernel, sizeof kernel, "%s/bare/moat-bare.elf32", MOAT_BUILD_DIR);
    snprintf(mod, sizeof mod, "%s/bare/nvme.dom.elf domain=nvme0 dev=nvme mem=16M dma=32M,"
             "%s/bare/blkcheck.dom.elf domain=app0 mem=4M dma=2M cap=nvme0.blk0 kib=%d "
             "rounds=%d", MOAT_BUILD_DIR, MOAT_BUILD_DIR, KIB, APP_ROUNDS);
    char *argv[40] = { (char *)qemu, "-accel", "tcg", "-cpu", "EPYC", "-M", "q35", "-m", "256M",
                       "-display", "none", "-no-reboot", "-serial", "stdio", "-monitor", "none",
                       "-net", "none", "-kernel", kernel, "-initrd", mod,
                       "-drive", "if=none,id=nv0,format=raw,file=" IMG,
                       "-device", "nvme,serial=bench,drive=nv0",
                       "-append", svm ? "moat.isolation=svm" : "moat.isolation=ring3" };
    int n = 0;
    while (argv[n])
        n++;
    if (vtd) {
        argv[n++] = "-device";
        argv[n++] = "intel-iommu,aw-bits=48";  /* used by default (it remaps interrupts);
                                                  * 4-level tables reach the session data */
    }
    argv[n] = NULL;
    if (!qc_start(&qc, argv, err, sizeof err))
        bench_die("bench_bare_dma", "cannot start QEMU", err);
    const char *pass = " blocks of 512 bytes) in ";
    if (!qc_expect(&qc, pass, DEADLINE_MS) || !qc_expect(&qc, " requests", DEADLINE_MS) ||
        !strstr(qc.text, "blkcheck app0: PASS") ||
        vtd != (strstr(qc.text, "DMA confined by VT-d") != NULL) ||
        svm != (strstr(qc.text, "domains run as SVM guests") != NULL)) {
        fprintf(stderr, "%s\n", qc.text);
        qc_close(&qc);
        bench_die("bench_bare_dma", "a run",
                  "the app did not pass on the backends asked (the console said the above)");
    }
    char *end;
    double ms = strtod(strstr(qc.text, pass) + strlen(pass), &end);
    double reqs = strncmp(end, " ms; ", 5) ? 0 : strtod(end + 5, NULL);
    qc_close(&qc);
    if (ms <= 0 || reqs <= 0)
        bench_die("bench_bare_dma", "a run", "no time or request count in the app's PASS line");
    return (struct run){ (APP_ROUNDS * KIB / 1024.0) / (ms / 1000.0), reqs / (ms / 1000.0) };
}

#define CONFIGS 4
static const struct { bool svm, vtd; const char *label, *key; } configs[CONFIGS] = {
    { false, false, "ring3 + shadow (no IOMMU)", "ring3_shadow" },
    { false, true, "ring3 + VT-d", "ring3_vtd" },
    { true, false, "svm + shadow", "svm_shadow" },
    { true, true, "svm + VT-d", "svm_vtd" },
};

int main(int argc, char **argv)
{
    int rc;
    const char *qemu = bare_bench_start(argc, argv, IMG, 64 << 20, &rc);
    if (!qemu)
        return rc;
    double mibs[CONFIGS][ROUNDS], reqs[CONFIGS][ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        fprintf(stderr, "round %d:", r + 1);
        for (int c = 0; c < CONFIGS; c++) {
            struct run x = one_run(qemu, configs[c].svm, configs[c].vtd);
            mibs[c][r] = x.mibs;
            reqs[c][r] = x.reqs;
            fprintf(stderr, "  %s %.1f MiB/s", configs[c].key, x.mibs);
        }
        fprintf(stderr, "\n");
    }
    unlink(IMG);
    fprintf(stderr, "\nAn app domain checking the NVMe domain's cap (%d x write %d KiB, flush, "
            "read, verify; 64 KiB requests) under TCG, -cpu EPYC, medians of %d alternating "
            "rounds:\n", APP_ROUNDS, KIB, ROUNDS);
    struct bench_record rec[2 * CONFIGS];
    static char names[2 * CONFIGS][64];
    struct bench_spread base = bench_spread(mibs[0], ROUNDS), base_r = bench_spread(reqs[0], ROUNDS);
    for (int c = 0; c < CONFIGS; c++) {
        struct bench_spread m = bench_spread(mibs[c], ROUNDS), q = bench_spread(reqs[c], ROUNDS);
        fprintf(stderr, "  %-26s %7.1f MiB/s (%.1f-%.1f)  %7.0f requests/s  ratio %.2f\n",
                configs[c].label, m.median, m.lo, m.hi, q.median,
                base.median > 0 ? m.median / base.median : 0);
        snprintf(names[2 * c], sizeof names[0], "bare_nvme_app_%s_tcg", configs[c].key);
        snprintf(names[2 * c + 1], sizeof names[0], "bare_nvme_app_%s_reqs_tcg", configs[c].key);
        rec[2 * c] = (struct bench_record){ names[2 * c], m.median, "MiB/s",
                                            c ? "ring3_shadow" : NULL, c ? base.median : 0 };
        rec[2 * c + 1] = (struct bench_record){ names[2 * c + 1], q.median, "requests/s",
                                                c ? "ring3_shadow" : NULL, c ? base_r.median : 0 };
    }
    return bench_write(argv[1], rec, sizeof rec / sizeof rec[0]) ? 0 : 1;
}
