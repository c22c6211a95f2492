/*
 * cli.h — what every client tool needs and nothing else: bounded numbers
 * from option values, with the error every tool prints, and one clock.
 */
#ifndef MOAT_CLI_H
#define MOAT_CLI_H

#include <stdint.h>

/* v as a decimal number in lo..hi; otherwise "PROG: OPT V: expected a
 * number in LO..HI" on stderr and exit(2) (a usage error). */
unsigned cli_uint(const char *prog, const char *opt, const char *v, unsigned lo, unsigned hi);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t cli_now_ns(void);

#endif /* MOAT_CLI_H */
