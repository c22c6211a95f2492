/*
 * report.h — benchmark records in the one format every moat benchmark
 * writes: a JSON array of {"name", "value", "unit", "baseline_name",
 * "baseline_value", "ratio"} (baseline fields null when a figure has none).
 * Each benchmark writes its own part file; run-bench.sh merges the parts
 * into harness/results/bench.json and prints the table.
 */
#ifndef MOAT_BENCH_REPORT_H
#define MOAT_BENCH_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bench_record {
    const char *name;
    double value;
    const char *unit;
    const char *baseline_name;  /* NULL: no baseline */
    double baseline_value;
};

/* Write records to path as a JSON array; false (and a message on stderr)
 * when the file cannot be written. ratio = value / baseline_value. */
bool bench_write(const char *path, const struct bench_record *r, size_t n);
struct moat_config;
/* Every moat benchmark's start: argv must be PROG PART.json (else usage on
 * stderr, false); quiet logs; cfg gets the defaults with its domain logs
 * in /tmp/moat-bench-logs. */
bool bench_start(int argc, char **argv, struct moat_config *cfg);
/* Percentile p (0..100) of n samples, nearest-rank; sorts samples. */
double bench_percentile(double *samples, size_t n, double p);

/* Median of n samples (the mean of the middle two when n is even) and
 * their range; sorts samples. */
struct bench_spread {
    double median, lo, hi;
};
struct bench_spread bench_spread(double *samples, size_t n);

/* What this process's threads used (getrusage): CPU seconds, user and
 * system, and context switches, voluntary (it slept) and involuntary (the
 * scheduler or a sched_yield took the CPU). Differences of two readings
 * divided by the work done show what limits a figure on a busy host. */
struct bench_cpu {
    double cpu_s;
    double switches;
};
struct bench_cpu bench_cpu_now(void);

/* CLOCK_MONOTONIC in seconds. */
double bench_now_s(void);
/* "PROG: what: why" on stderr, then exit(1) (benchmarks stop at the first
 * thing that goes wrong). */
_Noreturn void bench_die(const char *prog, const char *what, const char *why);

struct supervisor;
struct domain;
/* Add and start the domain spec describes on sup and wait for it to be
 * ready; on any failure say why on stderr and exit(1) (benchmarks only). */
struct domain *bench_boot_domain(struct supervisor *sup, const char *spec);
/* A file of bytes pseudo-random bytes (no holes: both sides of a
 * comparison read real data), created or truncated; returns it open
 * read-write, or -1 with errno. */
int bench_random_file(const char *path, uint64_t bytes);

#endif /* MOAT_BENCH_REPORT_H */
