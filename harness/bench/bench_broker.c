/*
 * bench_broker — one domain's DMA map latency while another domain's
 * 256 MiB window is being revoked (quiesced, scrubbed, freed), beside the
 * same figure with nothing else going on. The broker's map path takes only
 * the mapping domain's lock and a scrub holds no lock, so the two should
 * match; before, one mutex guarded every window and a revoke zeroed the
 * window while holding it.
 *
 * Each round measures both sides back to back (quiet, then during a
 * scrub); the figures are the medians of the rounds' p99 and max. The
 * broker runs in-process (no KVM): this is the lock, not the exits.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "broker.h"
#include "moat/layout.h"
#include "report.h"

#define ROUNDS 5
#define BIG (256ull << 20)
#define MAX_SAMPLES (1u << 22)

static struct broker b;
static atomic_bool scrub_done;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void *revoker(void *arg)
{
    struct dma_handle *h = arg;
    char err[128];
    if (!broker_revoke(&b, *h, err, sizeof err))
        fprintf(stderr, "bench_broker: revoke: %s\n", err);
    atomic_store(&scrub_done, true);
    return NULL;
}

/* 4 KiB maps (and unmaps) of domain 1 until stop() says so, each timed;
 * returns the sample count. */
static size_t map_loop(double *samples, uint64_t iova, bool (*stop)(size_t n))
{
    size_t n = 0;
    struct dma_mapping m;
    while (n < MAX_SAMPLES && !stop(n)) {
        uint64_t t0 = now_ns();
        if (!broker_dma_map(&b, 1, "bench", iova, 4096, DMA_FROM_DEVICE, &m)) {
            fprintf(stderr, "bench_broker: map refused\n");
            exit(1);
        }
        broker_dma_unmap(&b, &m);
        samples[n++] = (double)(now_ns() - t0);
    }
    return n;
}

static size_t quiet_target;
static bool quiet_stop(size_t n) { return n >= quiet_target; }
static bool scrub_stop(size_t n) { (void)n; return atomic_load(&scrub_done); }

static int by_double(const void *x, const void *y)
{
    double a = *(const double *)x, c = *(const double *)y;
    return (a > c) - (a < c);
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, by_double);
    return v[n / 2];
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PART.json\n", argv[0]);
        return 2;
    }
    static double samples[MAX_SAMPLES];
    broker_init(&b, 1ull << 30, NULL);
    char err[128];
    struct dma_handle small;
    if (!broker_grant(&b, 1, MOAT_GPA_DMA_BASE, 1 << 20, DMA_BIDIR, &small, err, sizeof err)) {
        fprintf(stderr, "bench_broker: %s\n", err);
        return 1;
    }
    double p99q[ROUNDS], p99s[ROUNDS], maxq[ROUNDS], maxs[ROUNDS], medq[ROUNDS], meds[ROUNDS];
    double scrub_ms[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        struct dma_handle big;
        if (!broker_grant(&b, 2, MOAT_GPA_DMA_BASE + (1ull << 30), BIG, DMA_BIDIR, &big, err,
                          sizeof err)) {
            fprintf(stderr, "bench_broker: %s\n", err);
            return 1;
        }
        /* During: map while domain 2's window is revoked and scrubbed. */
        atomic_store(&scrub_done, false);
        pthread_t t;
        uint64_t t0 = now_ns();
        pthread_create(&t, NULL, revoker, &big);
        size_t ns = map_loop(samples, MOAT_GPA_DMA_BASE, scrub_stop);
        pthread_join(t, NULL);
        scrub_ms[r] = (double)(now_ns() - t0) / 1e6;
        p99s[r] = bench_percentile(samples, ns, 99);
        meds[r] = bench_percentile(samples, ns, 50);
        maxs[r] = bench_percentile(samples, ns, 100);
        /* Quiet: as many maps with nothing else going on. */
        quiet_target = ns;
        size_t nq = map_loop(samples, MOAT_GPA_DMA_BASE, quiet_stop);
        p99q[r] = bench_percentile(samples, nq, 99);
        medq[r] = bench_percentile(samples, nq, 50);
        maxq[r] = bench_percentile(samples, nq, 100);
        fprintf(stderr, "bench_broker: round %d: %zu maps during a %.1f ms scrub of 256 MiB: "
                "median %.0f ns, p99 %.0f ns, max %.0f ns; quiet: median %.0f, p99 %.0f, "
                "max %.0f ns\n", r + 1, ns, scrub_ms[r], meds[r], p99s[r], maxs[r], medq[r],
                p99q[r], maxq[r]);
    }
    struct bench_record rec[] = {
        { "broker 4K map p99, other domain scrubbing 256M", median(p99s, ROUNDS), "ns",
          "broker 4K map p99, quiet", median(p99q, ROUNDS) },
        { "broker 4K map median, other domain scrubbing", median(meds, ROUNDS), "ns",
          "broker 4K map median, quiet", median(medq, ROUNDS) },
        { "broker 4K map max, other domain scrubbing", median(maxs, ROUNDS), "ns",
          "broker 4K map max, quiet", median(maxq, ROUNDS) },
        { "broker revoke+scrub of a 256M window", median(scrub_ms, ROUNDS), "ms", NULL, 0 },
    };
    broker_fini(&b);
    return bench_write(argv[1], rec, sizeof rec / sizeof rec[0]) ? 0 : 1;
}
