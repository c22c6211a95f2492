/*
 * bench_bare_http — an application's throughput over a Nic cap in bare
 * mode, per isolation backend: the host's curl downloads httpd's 32 MiB
 * blob (lwIP in an app domain, over the virtio-net domain's cap, through
 * QEMU's user network and a forwarded port) with the domains in ring 3
 * and as SVM guests (-cpu EPYC, moat.isolation=), in alternating rounds;
 * MB/s (curl's figure), medians with the range, svm as a ratio of ring3.
 * TCG emulates the CPU, SVM and the NIC and slirp copies every byte on the
 * host: the ratio compares the backends, not what hardware would show.
 * No QEMU, curl or httpd.dom.elf (lwIP's source): SKIPPED.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include "bare_bench.h"

#define ROUNDS 5
#define BLOB (32u << 20)
#define DEADLINE_MS 120000u
#define IMG "/tmp/moat-bench-bare-http.img"

static struct qemu_console qc;

/* One boot: curl's bytes per second for the blob. */
static double one_run(const char *qemu, bool svm, unsigned port)
{
    char kernel[PATH_MAX], mod[2 * PATH_MAX + 256], netdev[96], err[256];
    snprintf(kernel, sizeof kernel, "%s/bare/moat-bare.elf32", MOAT_BUILD_DIR);
    snprintf(mod, sizeof mod, "%s/bare/vnet.dom.elf domain=vnet0 dev=virtio-net mem=16M dma=32M,"
             "%s/bare/httpd.dom.elf domain=web mem=8M dma=2M cap=vnet0.nic0 size=%u",
             MOAT_BUILD_DIR, MOAT_BUILD_DIR, BLOB);
    snprintf(netdev, sizeof netdev, "user,id=n0,hostfwd=tcp:127.0.0.1:%u-:80", port);
    char *argv[] = { (char *)qemu, "-accel", "tcg", "-cpu", "EPYC", "-M", "q35", "-m", "128M",
                     "-display", "none", "-no-reboot", "-serial", "stdio", "-monitor", "none",
                     "-net", "none", "-kernel", kernel, "-initrd", mod,
                     "-netdev", netdev, "-device", "virtio-net-pci,netdev=n0",
                     "-append", svm ? "moat.isolation=svm" : "moat.isolation=ring3", NULL };
    if (!qc_start(&qc, argv, err, sizeof err))
        bench_die("bench_bare_http", "cannot start QEMU", err);
    if (!qc_expect(&qc, "httpd: serving http://", DEADLINE_MS) ||
        svm != (strstr(qc.text, "domains run as SVM guests") != NULL)) {
        fprintf(stderr, "%s\n", qc.text);
        qc_close(&qc);
        bench_die("bench_bare_http", "a run", "httpd did not serve on the backend asked (above)");
    }
    char cmd[256];
    snprintf(cmd, sizeof cmd, "curl -sS -m 120 -o /dev/null -w '%%{size_download} "
             "%%{speed_download}' http://127.0.0.1:%u/blob", port);
    FILE *p = popen(cmd, "r");
    double size = 0, speed = 0;
    if (!p || fscanf(p, "%lf %lf", &size, &speed) != 2)
        size = 0;
    if (p)
        pclose(p);
    qc_close(&qc);
    if (size != BLOB)
        bench_die("bench_bare_http", "a run", "curl did not get the whole blob");
    return speed;
}

int main(int argc, char **argv)
{
    int rc;
    const char *qemu = bare_bench_start(argc, argv, IMG, 4096, &rc);
    if (!qemu)
        return rc;
    unlink(IMG);
    char httpd[PATH_MAX];
    snprintf(httpd, sizeof httpd, "%s/bare/httpd.dom.elf", MOAT_BUILD_DIR);
    if (system("command -v curl >/dev/null 2>&1") != 0 || access(httpd, R_OK) != 0) {
        fprintf(stderr, "%s: SKIPPED: needs curl and %s (lwIP's source: "
                "scripts/fetch-lwip-source.sh)\n", argv[0], httpd);
        return bench_write(argv[1], NULL, 0) ? 0 : 1;
    }
    unsigned port = 40000u + (unsigned)getpid() % 20000u;
    double ring3[ROUNDS], svm[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        ring3[r] = one_run(qemu, false, port) / 1e6;
        svm[r] = one_run(qemu, true, port) / 1e6;
        fprintf(stderr, "round %d: ring3 %.2f MB/s, svm %.2f MB/s\n", r + 1, ring3[r], svm[r]);
    }
    struct bench_spread a = bench_spread(ring3, ROUNDS), b = bench_spread(svm, ROUNDS);
    fprintf(stderr, "\ncurl of httpd's %u MiB blob through hostfwd (lwIP in an app domain over "
            "the virtio-net domain's cap) under TCG, -cpu EPYC, medians of %d alternating "
            "rounds:\n", BLOB >> 20, ROUNDS);
    fprintf(stderr, "  ring3   %6.2f MB/s  (%.2f-%.2f)\n", a.median, a.lo, a.hi);
    fprintf(stderr, "  svm     %6.2f MB/s  (%.2f-%.2f)  ratio %.2f\n", b.median, b.lo, b.hi,
            a.median > 0 ? b.median / a.median : 0);
    struct bench_record rec[] = {
        { "bare_http_ring3_tcg", a.median, "MB/s", NULL, 0 },
        { "bare_http_svm_tcg", b.median, "MB/s", "ring3", a.median },
    };
    return bench_write(argv[1], rec, sizeof rec / sizeof rec[0]) ? 0 : 1;
}
