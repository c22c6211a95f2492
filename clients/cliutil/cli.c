/* Command-line helpers for the client tools (contract in cli.h). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "cli.h"

unsigned cli_uint(const char *prog, const char *opt, const char *v, unsigned lo, unsigned hi)
{
    char *end;
    unsigned long n = strtoul(v, &end, 10);
    if (!*v || *end || *v == '-' || n < lo || n > hi) {
        fprintf(stderr, "%s: %s %s: expected a number in %u..%u\n", prog, opt, v, lo, hi);
        exit(2);
    }
    return (unsigned)n;
}

uint64_t cli_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
