/*
 * bench_bare_dma — the cost of the two DMA backends of bare mode, side by
 * side under TCG: the NVMe domain's self-test (write 4 MiB, flush, read it
 * back, verify; 64 KiB requests, zero copy) through the monitor's
 * doorbell-time interposition (shadow SQs, PRP translation: no IOMMU) and
 * through VT-d (q35's intel-iommu translates; no interposition), in
 * alternating rounds on the same machine shape; medians with the range,
 * and the VT-d figure as a ratio of the shadow one. Everything is
 * emulated here (the CPU and the IOMMU): the ratio says how much the
 * interposition costs against an emulated IOMMU, not what real hardware
 * would show. No QEMU: SKIPPED, and an empty part.
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

/* The app's MiB/s (APP_ROUNDS x write + flush + read + verify of KIB). */
static double one_run(const char *qemu, bool vtd)
{
    char kernel[PATH_MAX], mod[2 * PATH_MAX + 256], err[256];
    snprintf(kernel, sizeof kernel, "%s/bare/moat-bare.elf32", MOAT_BUILD_DIR);
    snprintf(mod, sizeof mod, "%s/bare/nvme.dom.elf domain=nvme0 dev=nvme mem=16M dma=32M,"
             "%s/bare/blkcheck.dom.elf domain=app0 mem=4M dma=2M cap=nvme0.blk0 kib=%d "
             "rounds=%d", MOAT_BUILD_DIR, MOAT_BUILD_DIR, KIB, APP_ROUNDS);
    char *argv[40] = { (char *)qemu, "-accel", "tcg", "-M", "q35", "-m", "256M", "-display", "none",
                       "-no-reboot", "-serial", "stdio", "-monitor", "none", "-net", "none",
                       "-kernel", kernel, "-initrd", mod,
                       "-drive", "if=none,id=nv0,format=raw,file=" IMG,
                       "-device", "nvme,serial=bench,drive=nv0" };
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
    const char *confined = "DMA confined by VT-d";
    if (!qc_expect(&qc, " blocks of 512 bytes) in ", DEADLINE_MS) ||
        !qc_expect(&qc, " ms", DEADLINE_MS) || !strstr(qc.text, "blkcheck app0: PASS") ||
        (vtd != (strstr(qc.text, confined) != NULL))) {
        fprintf(stderr, "%s\n", qc.text);
        qc_close(&qc);
        bench_die("bench_bare_dma", vtd ? "the VT-d run" : "the shadow run",
                  "the app did not pass on the expected backend (the console said the above)");
    }
    const char *p = strstr(qc.text, " blocks of 512 bytes) in ");
    double ms = strtod(p + strlen(" blocks of 512 bytes) in "), NULL);
    qc_close(&qc);
    return ms > 0 ? (APP_ROUNDS * KIB / 1024.0) / (ms / 1000.0) : 0;
}

int main(int argc, char **argv)
{
    int rc;
    const char *qemu = bare_bench_start(argc, argv, IMG, 64 << 20, &rc);
    if (!qemu)
        return rc;
    double shadow[ROUNDS], vtd[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        shadow[r] = one_run(qemu, false);
        vtd[r] = one_run(qemu, true);
        fprintf(stderr, "round %d: shadow %.1f MiB/s, VT-d %.1f MiB/s\n", r + 1, shadow[r], vtd[r]);
    }
    unlink(IMG);
    struct bench_spread s = bench_spread(shadow, ROUNDS), v = bench_spread(vtd, ROUNDS);
    fprintf(stderr, "\nAn app domain checking the NVMe domain's cap (%d x write %d KiB, flush, "
            "read, verify) under TCG, medians of %d alternating rounds:\n", APP_ROUNDS, KIB, ROUNDS);
    fprintf(stderr, "  ring3 + shadow (no IOMMU)   %7.1f MiB/s  (%.1f-%.1f)\n", s.median, s.lo, s.hi);
    fprintf(stderr, "  ring3 + VT-d                %7.1f MiB/s  (%.1f-%.1f)  ratio %.2f\n", v.median,
            v.lo, v.hi, s.median > 0 ? v.median / s.median : 0);
    struct bench_record rec[] = {
        { "bare_nvme_app_ring3_shadow_tcg", s.median, "MiB/s", NULL, 0 },
        { "bare_nvme_app_ring3_vtd_tcg", v.median, "MiB/s", "ring3_shadow", s.median },
    };
    return bench_write(argv[1], rec, sizeof rec / sizeof rec[0]) ? 0 : 1;
}
