/*
 * bench_bare_entries — what entering the monitor costs per isolation
 * backend, side by side under TCG (-cpu EPYC: SVM with nested paging): in
 * two boots per round, entrycheck (an app domain) times 20000 system
 * calls, its domain in ring 3 (int3 through the IDT) and then an SVM
 * guest (each int3 a #VMEXIT and a VMRUN back); in the second boot the
 * console's svm-probe also times 20000 entries into a minimal SVM guest
 * (VMRUN, a VMMCALL #VMEXIT, resume: the floor). Medians of five
 * alternating rounds with the range; the svm figures as ratios of the
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

/* One boot: entrycheck's system calls per second, the domain in ring 3
 * or an SVM guest; in the SVM boot, svm-probe's entries per second too. */
static void one_boot(const char *qemu, bool svm, double *calls, double *probe)
{
    char kernel[PATH_MAX], mod[PATH_MAX + 64], err[256];
    snprintf(kernel, sizeof kernel, "%s/bare/moat-bare.elf32", MOAT_BUILD_DIR);
    snprintf(mod, sizeof mod, "%s/bare/entrycheck.dom.elf domain=app2 mem=1M dma=2M",
             MOAT_BUILD_DIR);
    char *argv[] = { (char *)qemu, "-accel", "tcg", "-cpu", "EPYC", "-M", "q35", "-m", "128M",
                     "-display", "none", "-no-reboot", "-serial", "stdio", "-monitor", "none",
                     "-net", "none", "-kernel", kernel, "-initrd", mod,
                     "-append", svm ? "moat.isolation=svm" : "moat.isolation=ring3", NULL };
    if (!qc_start(&qc, argv, err, sizeof err))
        bench_die("bench_bare_entries", "cannot start QEMU", err);
    bool ok = qc_expect(&qc, " per second", DEADLINE_MS) &&    /* the prompt came before it */
              svm == (strstr(qc.text, "domains run as SVM guests") != NULL);
    if (ok && svm)
        ok = qc_send(&qc, "svm-probe") && qc_expect(&qc, "svm: 20000 guest entries", DEADLINE_MS) &&
             qc_expect(&qc, " per second", DEADLINE_MS);
    if (!ok) {
        fprintf(stderr, "%s\n", qc.text);
        qc_close(&qc);
        bench_die("bench_bare_entries", "a round", "no figure on the backend asked (above)");
    }
    *calls = rate_after("system calls (int3 round trips)");
    if (svm)
        *probe = rate_after("svm: 20000 guest entries");
    qc_close(&qc);
}

int main(int argc, char **argv)
{
    int rc;
    const char *qemu = bare_bench_start(argc, argv, IMG, 1 << 20, &rc);
    if (!qemu)
        return rc;
    unlink(IMG);
    double ring3[ROUNDS], svm[ROUNDS], probe[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        one_boot(qemu, false, &ring3[r], NULL);
        one_boot(qemu, true, &svm[r], &probe[r]);
        fprintf(stderr, "round %d: ring3 %.0f/s, svm domain %.0f/s, svm probe %.0f/s\n", r + 1,
                ring3[r], svm[r], probe[r]);
    }
    struct bench_spread a = bench_spread(ring3, ROUNDS), b = bench_spread(svm, ROUNDS),
                        c = bench_spread(probe, ROUNDS);
    fprintf(stderr, "\nEntries into the monitor under TCG (-cpu EPYC), medians of %d alternating "
            "rounds:\n", ROUNDS);
    fprintf(stderr, "  ring3 domain: int3 system call round trips   %9.0f/s  (%.0f-%.0f)\n",
            a.median, a.lo, a.hi);
    fprintf(stderr, "  svm domain: int3 system calls (#VMEXIT)      %9.0f/s  (%.0f-%.0f)  ratio "
            "%.2f\n", b.median, b.lo, b.hi, a.median > 0 ? b.median / a.median : 0);
    fprintf(stderr, "  svm probe: VMRUN + VMMCALL exit              %9.0f/s  (%.0f-%.0f)  ratio "
            "%.2f\n", c.median, c.lo, c.hi, a.median > 0 ? c.median / a.median : 0);
    struct bench_record rec[] = {
        { "bare_entries_ring3_int3_tcg", a.median, "/s", NULL, 0 },
        { "bare_entries_svm_domain_int3_tcg", b.median, "/s", "ring3_int3", a.median },
        { "bare_entries_svm_vmrun_tcg", c.median, "/s", "ring3_int3", a.median },
    };
    return bench_write(argv[1], rec, sizeof rec / sizeof rec[0]) ? 0 : 1;
}
