/*
 * bench_bare_boot — the kernel booted bare under QEMU (TCG, q35, SeaBIOS,
 * -kernel), with an NVMe and a virtio-net driver domain as modules: from
 * the loader's hand-over to every domain ready (the monitor's own TSC
 * figure), each domain's create -> ready, and the wall time from starting
 * QEMU to every domain ready beside the wall time to the console prompt of
 * the same machine with no domains (alternating rounds, medians with the
 * range). Under TCG every instruction is emulated: these figures are not
 * comparable with the hosted ones (KVM) and say nothing of real hardware;
 * they show where bare bring-up spends its time. No QEMU: SKIPPED, and an
 * empty part.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bare_bench.h"

#define ROUNDS 5
#define DEADLINE_MS 120000u
#define IMG "/tmp/moat-bench-bare-nvme.img"

static struct qemu_console qc;

/* The number after key in qc's text (from the start), or -1. */
static double number_after(const char *key)
{
    const char *p = strstr(qc.text, key);
    return p ? strtod(p + strlen(key), NULL) : -1;
}

static double one_boot(const char *qemu, bool domains, double *handover_ms, double *nvme_ms,
                       double *vnet_ms)
{
    char kernel[PATH_MAX], mods[3 * PATH_MAX], err[256];
    snprintf(kernel, sizeof kernel, "%s/bare/moat-bare.elf32", MOAT_BUILD_DIR);
    snprintf(mods, sizeof mods, "%s/bare/nvme.dom.elf domain=nvme0 dev=nvme mem=16M dma=32M,"
             "%s/bare/vnet.dom.elf domain=vnet0 dev=virtio-net mem=16M dma=16M",
             MOAT_BUILD_DIR, MOAT_BUILD_DIR);
    char *argv[40] = { (char *)qemu, "-accel", "tcg", "-M", "q35", "-m", "256M", "-display", "none",
                       "-no-reboot", "-serial", "stdio", "-monitor", "none", "-net", "none",
                       "-kernel", kernel,
                       "-drive", "if=none,id=nv0,format=raw,file=" IMG,
                       "-device", "nvme,serial=bench,drive=nv0",
                       "-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0" };
    int n = 0;
    while (argv[n])
        n++;
    if (domains) {
        argv[n++] = "-initrd";
        argv[n++] = mods;
    }
    argv[n] = NULL;
    double t0 = bench_now_s();
    if (!qc_start(&qc, argv, err, sizeof err))
        bench_die("bench_bare_boot", "cannot start QEMU", err);
    const char *until = domains ? " us after the loader handed over" : "moat> ";
    if (!qc_expect(&qc, until, DEADLINE_MS)) {
        fprintf(stderr, "%s\n", qc.text);
        qc_close(&qc);
        bench_die("bench_bare_boot", until, "not seen in time (the console said the above)");
    }
    double wall = (bench_now_s() - t0) * 1000;
    if (domains) {
        *handover_ms = number_after("domains ready, ") / 1000;
        *nvme_ms = number_after("nvme0: ready in ");
        *vnet_ms = number_after("vnet0: ready in ");
    }
    qc_close(&qc);
    return wall;
}

int main(int argc, char **argv)
{
    int rc;
    const char *qemu = bare_bench_start(argc, argv, IMG, 64 << 20, &rc);
    if (!qemu)
        return rc;
    double wall_dom[ROUNDS], wall_none[ROUNDS], handover[ROUNDS], nvme[ROUNDS], vnet[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        wall_none[r] = one_boot(qemu, false, NULL, NULL, NULL);
        wall_dom[r] = one_boot(qemu, true, &handover[r], &nvme[r], &vnet[r]);
        fprintf(stderr, "round %d: prompt without domains %.0f ms; with them, all ready %.0f ms "
                "(hand-over -> ready %.1f ms; nvme0 %.0f ms, vnet0 %.0f ms)\n", r + 1,
                wall_none[r], wall_dom[r], handover[r], nvme[r], vnet[r]);
    }
    unlink(IMG);
    struct bench_spread h = bench_spread(handover, ROUNDS), nv = bench_spread(nvme, ROUNDS),
                        vn = bench_spread(vnet, ROUNDS), wd = bench_spread(wall_dom, ROUNDS),
                        wn = bench_spread(wall_none, ROUNDS);
    fprintf(stderr, "\nbare boot under TCG (medians of %d alternating rounds, range):\n", ROUNDS);
    fprintf(stderr, "  loader hand-over -> every domain ready  %8.1f ms  (%.1f-%.1f)\n", h.median,
            h.lo, h.hi);
    fprintf(stderr, "  nvme0 create -> ready                   %8.1f ms  (%.1f-%.1f)\n", nv.median,
            nv.lo, nv.hi);
    fprintf(stderr, "  vnet0 create -> ready                   %8.1f ms  (%.1f-%.1f)\n", vn.median,
            vn.lo, vn.hi);
    fprintf(stderr, "  QEMU start -> every domain ready        %8.1f ms  (%.1f-%.1f)\n", wd.median,
            wd.lo, wd.hi);
    fprintf(stderr, "  QEMU start -> prompt, no domains        %8.1f ms  (%.1f-%.1f)\n", wn.median,
            wn.lo, wn.hi);
    struct bench_record rec[] = {
        { "bare_boot_handover_to_all_ready_tcg", h.median, "ms", NULL, 0 },
        { "bare_boot_nvme_create_to_ready_tcg", nv.median, "ms", NULL, 0 },
        { "bare_boot_vnet_create_to_ready_tcg", vn.median, "ms", NULL, 0 },
        { "bare_boot_qemu_start_to_all_ready_tcg", wd.median, "ms",
          "qemu_start_to_prompt_no_domains", wn.median },
    };
    return bench_write(argv[1], rec, sizeof rec / sizeof rec[0]) ? 0 : 1;
}
