/*
 * bench_nvme — the NVMe path end to end: libmoat → cap session → NVMe
 * driver domain (KVM) → moat's NVMe controller model → image file, beside
 * raw pread(2) of the same image file by this process, in the same run:
 *   - 4 KiB random reads, IOPS, at QD1 (synchronous calls) and QD32
 *     (32 requests kept in flight);
 *   - 128 KiB sequential reads, MB/s, at QD1 and QD32.
 * The raw baseline is one thread calling pread in a loop on the warm page
 * cache — the best a process reading the file itself does without moat.
 * The 4 KiB QD32 figure (the target) is the median of ROUNDS rounds, each
 * a raw round then a moat round, so drift in the machine hits both sides.
 * The domain runs with cpu= (its vCPU on the last CPU we may use, the
 * controller worker on the others), as one would deploy a polling driver.
 * Also: MMIO exits per request at QD32 (what shadow doorbells save), and on
 * stderr where each phase's time goes (interrupts into the domain, worker
 * wake-ups, kicks). BENCH_NVME_DEV / BENCH_NVME_ARGS add controller
 * options / driver args for tuning runs.
 */
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "control.h"
#include "log.h"
#include "nvme.h"
#include "moat/libmoat.h"
#include "report.h"
#include "supervisor.h"

#define BENCH_DIR       "/tmp/moat-bench-logs"
#define IMAGE     BENCH_DIR "/nvme-bench.img"
#define SOCK      BENCH_DIR "/nvme-ctl.sock"
#define DISK      (256ull << 20)
#define QD        32u
#define RAND_QD1  20000u
#define RAND_QD32 200000u
#define SEQ_BYTES (2ull << 30)  /* per sequential figure */
#define ROUNDS    5u

static double now_s(void) { return bench_now_s(); }

static uint64_t rng = 88172645463325252ull;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static int fail(const char *what, int rc)
{
    fprintf(stderr, "bench_nvme: %s: %s\n", what, moat_strerror(rc));
    exit(1);
}



static double raw_random_iops(int fd, uint32_t n)
{
    static char buf[4096];
    double t0 = now_s();
    for (uint32_t i = 0; i < n; i++)
        if (pread(fd, buf, 4096, (off_t)(next_rand() % (DISK / 4096) * 4096)) != 4096)
            return 0;
    return n / (now_s() - t0);
}

static double raw_seq_mbs(int fd, uint64_t total)
{
    static char buf[128 << 10];
    double t0 = now_s();
    for (uint64_t done = 0; done < total; done += sizeof buf)
        if (pread(fd, buf, sizeof buf, (off_t)(done % DISK)) != (ssize_t)sizeof buf)
            return 0;
    return (double)total / 1e6 / (now_s() - t0);
}

/* n reads of `blocks` blocks with qd in flight; random or sequential LBAs.
 * Returns requests per second. */
static double moat_reads(struct moat_session *s, uint32_t bs, uint32_t blocks, uint64_t n,
                         uint32_t qd, bool random)
{
    static char bufs[QD][128 << 10];
    const uint64_t slots = DISK / bs / blocks;
    uint64_t next = 0, done = 0, submitted = 0;
    double t0 = now_s();
    if (qd == 1) {
        for (uint64_t i = 0; i < n; i++) {
            uint64_t lba = (random ? next_rand() % slots : next++ % slots) * blocks;
            int rc = moat_blk_read(s, lba, blocks, bufs[0]);
            if (rc)
                fail("QD1 read", rc);
        }
        return n / (now_s() - t0);
    }
    uint32_t free_slot[QD], n_free = 0;
    for (uint32_t i = 0; i < qd; i++)
        free_slot[n_free++] = i;
    struct moat_blk_req r[QD];
    struct moat_completion c[QD];
    while (done < n) {
        uint32_t k = 0;
        while (n_free && submitted + k < n) {
            uint32_t slot = free_slot[--n_free];
            uint64_t lba = (random ? next_rand() % slots : next++ % slots) * blocks;
            r[k++] = (struct moat_blk_req){ .op = MOAT_BLK_READ, .lba = lba, .blocks = blocks,
                                            .buf = bufs[slot], .user_data = slot };
        }
        if (k) {
            int q = moat_blk_submit(s, r, k);
            if (q < 0)
                fail("submit", q);
            for (uint32_t i = (uint32_t)q; i < k; i++)
                free_slot[n_free++] = (uint32_t)r[i].user_data;
            submitted += (uint32_t)q;
        }
        int m = moat_wait(s, c, QD, 10000);
        if (m <= 0)
            fail("wait", m);
        for (int i = 0; i < m; i++) {
            if (c[i].status)
                fail("read", c[i].status);
            free_slot[n_free++] = (uint32_t)c[i].user_data;
        }
        done += (uint32_t)m;
    }
    return n / (now_s() - t0);
}

/* Where a phase's time goes: per request, interrupts into the domain,
 * controller worker wake-ups, doorbells that reached the model, vCPU exits. */
struct costs {
    struct nvme_stats n;
    struct moat_session_stats s;
    uint64_t msi, io, mmio, intr;
};

static struct costs costs_now(struct domain *d, struct moat_session *s)
{
    struct costs c;
    moat_session_stats(s, &c.s);
    nvme_stats_get(d->pci.slot[1], &c.n);
    c.msi = __atomic_load_n(&d->stats.msi_sent, __ATOMIC_RELAXED);
    c.io = __atomic_load_n(&d->stats.exits_io, __ATOMIC_RELAXED);
    c.mmio = __atomic_load_n(&d->stats.exits_mmio, __ATOMIC_RELAXED);
    c.intr = __atomic_load_n(&d->stats.exits_intr, __ATOMIC_RELAXED);
    return c;
}

static void costs_print(const char *phase, const struct costs *a, const struct costs *b,
                        uint64_t n)
{
    double r = (double)n;
    fprintf(stderr, "bench_nvme: %-10s per request: %.3f MSIs (%.3f from the controller, "
            "%.3f skipped), %.3f worker wakeups, %.3f MMIO doorbells, exits %.3f PIO "
            "%.3f MMIO %.3f signal; client %.3f kicks %.3f sleeps\n", phase,
            (double)(b->msi - a->msi) / r,
            (double)(b->n.irq_sent - a->n.irq_sent) / r,
            (double)(b->n.irq_skipped - a->n.irq_skipped) / r,
            (double)(b->n.worker_wakeups - a->n.worker_wakeups) / r,
            (double)(b->n.mmio_doorbells - a->n.mmio_doorbells) / r, (double)(b->io - a->io) / r,
            (double)(b->mmio - a->mmio) / r, (double)(b->intr - a->intr) / r,
            (double)(b->s.kicks_sent - a->s.kicks_sent) / r, (double)(b->s.waits - a->s.waits) / r);
}

/* The last CPU this process may use (the vCPU goes there). */
static int last_cpu(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        return 0;
    for (int i = CPU_SETSIZE - 1; i > 0; i--)
        if (CPU_ISSET(i, &set))
            return i;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PART.json\n", argv[0]);
        return 2;
    }
    log_set_quiet(true);
    mkdir(BENCH_DIR, 0700);
    int fd = bench_random_file(IMAGE, DISK);    /* real pages on both sides */
    if (fd < 0) {
        perror("bench_nvme: create " IMAGE);
        return 1;
    }
    static struct moat_config cfg;
    static struct supervisor sup;
    static struct control ctl;
    config_defaults(&cfg);
    snprintf(cfg.log_dir, sizeof cfg.log_dir, BENCH_DIR);
    char spec[1024], err[512];
    /* Tuning experiments: BENCH_NVME_DEV / BENCH_NVME_ARGS add model
     * options and driver args. */
    const char *dev_extra = getenv("BENCH_NVME_DEV"), *args = getenv("BENCH_NVME_ARGS");
    snprintf(spec, sizeof spec, "name=nvme0 kernel=%s/guest/nvme.elf mem=64M dma=32M cpu=%d "
             "dev=nvme:image=" IMAGE "%s%s args=\"%s\"", MOAT_BUILD_DIR, last_cpu(),
             dev_extra ? ":" : "", dev_extra ? dev_extra : "", args ? args : "");
    unlink(SOCK);
    if (!supervisor_init(&sup, &cfg, err, sizeof err) ||
        !control_start(&ctl, &sup, SOCK, err, sizeof err)) {
        fprintf(stderr, "bench_nvme: %s\n", err);
        return 1;
    }
    struct domain *d = bench_boot_domain(&sup, spec);
    struct moat_client *c;
    struct moat_cap *cap;
    struct moat_session *s;
    int rc = moat_connect(SOCK, &c);
    if (rc || (rc = moat_open(c, "nvme0.blk0", MOAT_RIGHT_READ, &cap)) ||
        (rc = moat_session_open(cap, &(struct moat_session_params){ .entries = 64,
                                                                    .data_size = 8u << 20 }, &s)))
        fail("session", rc);
    struct moat_blk_geometry geo;
    moat_blk_geometry(cap, &geo);
    const uint32_t bs = geo.block_size, b4k = 4096 / bs, b128k = (128u << 10) / bs;

    /* Warm both paths (page cache, domain, worker), then measure. */
    raw_seq_mbs(fd, DISK);
    moat_reads(s, bs, b128k, DISK / (128u << 10), QD, false);

    /* QD1: alternating rounds of raw pread and synchronous moat reads, with
     * what the process spent per request (CPU, context switches: the client,
     * the vCPU and the controller worker share this host's CPUs). */
    double raw1[ROUNDS], qd1[ROUNDS], ratio1[ROUNDS];
    struct bench_cpu qd1_cpu = { 0, 0 }, raw_cpu = { 0, 0 };
    struct costs c0 = costs_now(d, s);
    for (unsigned r = 0; r < ROUNDS; r++) {
        struct bench_cpu a = bench_cpu_now();
        raw1[r] = raw_random_iops(fd, RAND_QD1 * 5);
        struct bench_cpu b = bench_cpu_now();
        qd1[r] = moat_reads(s, bs, b4k, RAND_QD1, 1, true);
        struct bench_cpu e = bench_cpu_now();
        raw_cpu.cpu_s += b.cpu_s - a.cpu_s;
        raw_cpu.switches += b.switches - a.switches;
        qd1_cpu.cpu_s += e.cpu_s - b.cpu_s;
        qd1_cpu.switches += e.switches - b.switches;
        ratio1[r] = qd1[r] / raw1[r];
        fprintf(stderr, "bench_nvme: 4K QD1 round %u: raw pread %.0f, moat %.0f (%.2f)\n", r + 1,
                raw1[r], qd1[r], ratio1[r]);
    }
    struct costs c1 = costs_now(d, s);
    const struct bench_spread q1 = bench_spread(qd1, ROUNDS), r1 = bench_spread(ratio1, ROUNDS);
    const double m4k1 = q1.median;
    fprintf(stderr, "bench_nvme: 4K QD1 ratio per round: median %.2f, range %.2f-%.2f; per "
            "request: moat %.2f us CPU, %.3f context switches; raw pread %.2f us CPU, %.4f\n",
            r1.median, r1.lo, r1.hi, qd1_cpu.cpu_s * 1e6 / (RAND_QD1 * ROUNDS),
            qd1_cpu.switches / (RAND_QD1 * ROUNDS), raw_cpu.cpu_s * 1e6 / (RAND_QD1 * 5.0 * ROUNDS),
            raw_cpu.switches / (RAND_QD1 * 5.0 * ROUNDS));
    double raw_r[ROUNDS], moat_r[ROUNDS], ratio_r[ROUNDS];
    for (unsigned r = 0; r < ROUNDS; r++) {
        raw_r[r] = raw_random_iops(fd, RAND_QD32);
        moat_r[r] = moat_reads(s, bs, b4k, RAND_QD32, QD, true);
        ratio_r[r] = moat_r[r] / raw_r[r];
        fprintf(stderr, "bench_nvme: 4K QD32 round %u: raw pread %.0f, moat %.0f (%.2f)\n", r + 1,
                raw_r[r], moat_r[r], ratio_r[r]);
    }
    struct costs c2 = costs_now(d, s);
    costs_print("4K QD1", &c0, &c1, (uint64_t)RAND_QD1 * ROUNDS);
    costs_print("4K QD32", &c1, &c2, (uint64_t)RAND_QD32 * ROUNDS);
    double exits32 = (double)(c2.mmio - c1.mmio) / ((double)RAND_QD32 * ROUNDS);
    double raw4k = bench_spread(raw_r, ROUNDS).median, m4k32 = bench_spread(moat_r, ROUNDS).median;
    const struct bench_spread r32 = bench_spread(ratio_r, ROUNDS);
    fprintf(stderr, "bench_nvme: 4K QD32 ratio per round: median %.2f, range %.2f-%.2f\n",
            r32.median, r32.lo, r32.hi);
    double rawseq = raw_seq_mbs(fd, SEQ_BYTES);
    double mseq1 = moat_reads(s, bs, b128k, SEQ_BYTES / 4 / (128u << 10), 1, false) *
                   (128u << 10) / 1e6;
    double mseq32 = moat_reads(s, bs, b128k, SEQ_BYTES / (128u << 10), QD, false) *
                    (128u << 10) / 1e6;
    fprintf(stderr, "bench_nvme: 4K random read IOPS: raw pread %.0f, moat QD1 %.0f (%.2f), "
            "QD32 %.0f (%.2f); %.3f MMIO exits per request at QD32\n", raw4k, m4k1, r1.median,
            m4k32, m4k32 / raw4k, exits32);
    fprintf(stderr, "bench_nvme: 128K sequential read MB/s: raw pread %.0f, moat QD1 %.0f (%.2f), "
            "QD32 %.0f (%.2f)\n", rawseq, mseq1, mseq1 / rawseq, mseq32, mseq32 / rawseq);
    moat_session_close(s);
    moat_close(cap);
    moat_disconnect(c);
    control_stop(&ctl);
    supervisor_fini(&sup);
    close(fd);
    unlink(IMAGE);
    struct bench_record rec[] = {
        { "nvme_4K_randread_iops_qd1", m4k1, "IOPS", "raw_pread_4K_randread_iops_qd1",
          m4k1 / r1.median },
        { "nvme_4K_qd1_context_switches_per_request", qd1_cpu.switches / (RAND_QD1 * ROUNDS),
          "switches", NULL, 0 },
        { "nvme_4K_qd1_cpu_us_per_request", qd1_cpu.cpu_s * 1e6 / (RAND_QD1 * ROUNDS), "us",
          "raw_pread_cpu_us_per_request", raw_cpu.cpu_s * 1e6 / (RAND_QD1 * 5.0 * ROUNDS) },
        { "nvme_4K_randread_iops_qd32", m4k32, "IOPS", "raw_pread_4K_randread_iops", raw4k },
        { "nvme_128K_seqread_mbs_qd1", mseq1, "MB/s", "raw_pread_128K_seqread_mbs", rawseq },
        { "nvme_128K_seqread_mbs_qd32", mseq32, "MB/s", "raw_pread_128K_seqread_mbs", rawseq },
        { "nvme_mmio_exits_per_request_qd32", exits32, "exits", NULL, 0 },
    };
    return bench_write(argv[1], rec, sizeof rec / sizeof rec[0]) ? 0 : 1;
}
