/*
 * bench_bare_entries — what entering the monitor costs per isolation
 * backend, side by side under TCG (-cpu EPYC: SVM with nested paging): in
 * one boot per round, entrycheck (an app domain) times 20000 system calls
 * through ring 3's int3 gate, and the console's svm-probe times 20000
 * entries into a minimal SVM guest (VMRUN, a VMMCALL #VMEXIT, resume).
 * Medians of five rounds with the range; the svm figure as a ratio of the
 * ring3 one. Both are emulated here: the ratio says how TCG's SVM compares
 * with its int3, not what a CPU would show (there, VMRUN and #VMEXIT cost
 * hundreds of cycles, an int3 round trip far fewer). No QEMU: SKIPPED.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bare_bench.h"

#define ROUNDS 5
#define DEADLINE_MS 60000u
#define IMG "/tmp/moat-bench-bare-entries.img"

static struct qemu_console qc;

/* The number before " per second" after needle in the console's text. */
static double rate_after(const char *needle)
{
    const char *p = strstr(qc.text, needle), *q = p ? strstr(p, " in ") : NULL;
    q = q ? strstr(q, ": ") : NULL;
    return q ? strtod(q + 2, NULL) : 0;
}

static void one_round(const char *qemu, double *ring3, double *svm)
{
    char kernel[PATH_MAX], mod[PATH_MAX + 64], err[256];
    snprintf(kernel, sizeof kernel, "%s/bare/moat-bare.elf32", MOAT_BUILD_DIR);
    snprintf(mod, sizeof mod, "%s/bare/entrycheck.dom.elf domain=app2 mem=1M dma=2M",
             MOAT_BUILD_DIR);
    char *argv[] = { (char *)qemu, "-accel", "tcg", "-cpu", "EPYC", "-M", "q35", "-m", "128M",
                     "-display", "none", "-no-reboot", "-serial", "stdio", "-monitor", "none",
                     "-net", "none", "-kernel", kernel, "-initrd", mod, NULL };
    if (!qc_start(&qc, argv, err, sizeof err))
        bench_die("bench_bare_entries", "cannot start QEMU", err);
    if (!qc_expect(&qc, " per second", DEADLINE_MS) ||   /* the prompt came before it */
        !qc_send(&qc, "svm-probe") || !qc_expect(&qc, "svm: 20000 guest entries", DEADLINE_MS) ||
        !qc_expect(&qc, " per second", DEADLINE_MS)) {
        fprintf(stderr, "%s\n", qc.text);
        qc_close(&qc);
        bench_die("bench_bare_entries", "a round", "no figure from both sides (above)");
    }
    *ring3 = rate_after("system calls (int3 round trips)");
    *svm = rate_after("svm: 20000 guest entries");
    qc_close(&qc);
}

int main(int argc, char **argv)
{
    int rc;
    const char *qemu = bare_bench_start(argc, argv, IMG, 1 << 20, &rc);
    if (!qemu)
        return rc;
    unlink(IMG);
    double ring3[ROUNDS], svm[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        one_round(qemu, &ring3[r], &svm[r]);
        fprintf(stderr, "round %d: ring3 %.0f/s, svm %.0f/s\n", r + 1, ring3[r], svm[r]);
    }
    struct bench_spread a = bench_spread(ring3, ROUNDS), b = bench_spread(svm, ROUNDS);
    fprintf(stderr, "\nEntries into the monitor under TCG (-cpu EPYC), medians of %d rounds:\n",
            ROUNDS);
    fprintf(stderr, "  ring3: int3 system call round trips   %9.0f/s  (%.0f-%.0f)\n", a.median,
            a.lo, a.hi);
    fprintf(stderr, "  svm: VMRUN + VMMCALL exit             %9.0f/s  (%.0f-%.0f)  ratio %.2f\n",
            b.median, b.lo, b.hi, a.median > 0 ? b.median / a.median : 0);
    struct bench_record rec[] = {
        { "bare_entries_ring3_int3_tcg", a.median, "/s", NULL, 0 },
        { "bare_entries_svm_vmrun_tcg", b.median, "/s", "ring3_int3", a.median },
    };
    return bench_write(argv[1], rec, sizeof rec / sizeof rec[0]) ? 0 : 1;
}
