/* Benchmark records (contract in report.h). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include "config.h"
#include "log.h"
#include "supervisor.h"
#include "report.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_percentile(double *s, size_t n, double p)
{
    if (n == 0)
        return NAN;
    qsort(s, n, sizeof *s, cmp_double);
    size_t rank = (size_t)ceil(p / 100.0 * (double)n);
    return s[rank ? rank - 1 : 0];
}

bool bench_write(const char *path, const struct bench_record *r, size_t n)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "bench: cannot write %s: %s\n", path, strerror(errno));
        return false;
    }
    fputs("[\n", f);
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "  {\"name\": \"%s\", \"value\": %.6g, \"unit\": \"%s\", ", r[i].name,
                r[i].value, r[i].unit);
        if (r[i].baseline_name)
            fprintf(f, "\"baseline_name\": \"%s\", \"baseline_value\": %.6g, \"ratio\": %.6g}",
                    r[i].baseline_name, r[i].baseline_value, r[i].value / r[i].baseline_value);
        else
            fputs("\"baseline_name\": null, \"baseline_value\": null, \"ratio\": null}", f);
        fputs(i + 1 < n ? ",\n" : "\n", f);
    }
    fputs("]\n", f);
    return fclose(f) == 0;
}

bool bench_start(int argc, char **argv, struct moat_config *cfg)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PART.json\n", argv[0]);
        return false;
    }
    log_set_quiet(true);
    config_defaults(cfg);
    snprintf(cfg->log_dir, sizeof cfg->log_dir, "/tmp/moat-bench-logs");
    return true;
}

struct bench_spread bench_spread(double *s, size_t n)
{
    if (n == 0)
        return (struct bench_spread){ NAN, NAN, NAN };
    qsort(s, n, sizeof *s, cmp_double);
    double m = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    return (struct bench_spread){ m, s[0], s[n - 1] };
}

struct bench_cpu bench_cpu_now(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (struct bench_cpu){
        .cpu_s = (double)u.ru_utime.tv_sec + (double)u.ru_utime.tv_usec / 1e6 +
                 (double)u.ru_stime.tv_sec + (double)u.ru_stime.tv_usec / 1e6,
        .switches = (double)u.ru_nvcsw + (double)u.ru_nivcsw,
    };
}

struct domain *bench_boot_domain(struct supervisor *sup, const char *spec)
{
    char err[512] = "";
    struct domain_config dc;
    struct domain *d = NULL;
    if (!config_parse_domain(spec, &dc, err, sizeof err) ||
        !(d = supervisor_add(sup, &dc, err, sizeof err)) || !domain_start(d, err, sizeof err) ||
        !supervisor_wait(sup, d, DOMAIN_STATE_BIT(DOMAIN_READY), 20000)) {
        fprintf(stderr, "bench: cannot boot %s: %s %s\n", spec, err, d ? d->crash.detail : "");
        exit(1);
    }
    return d;
}

int bench_random_file(const char *path, uint64_t bytes)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    static uint64_t chunk[1 << 16];
    uint64_t x = 0x9e3779b97f4a7c15ull;                 /* xorshift64 */
    for (uint64_t off = 0; off < bytes; off += sizeof chunk) {
        for (size_t i = 0; i < sizeof chunk / 8; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk[i] = x;
        }
        size_t n = bytes - off < sizeof chunk ? (size_t)(bytes - off) : sizeof chunk;
        if (pwrite(fd, chunk, n, (off_t)off) != (ssize_t)n) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
    }
    return fd;
}

double bench_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

_Noreturn void bench_die(const char *prog, const char *what, const char *why)
{
    fprintf(stderr, "%s: %s: %s\n", prog, what, why);
    exit(1);
}
