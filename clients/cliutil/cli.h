/*
 * cli.h — what every client tool's command line needs and nothing else:
 * bounded numbers from option values, with the error every tool prints.
 */
#ifndef MOAT_CLI_H
#define MOAT_CLI_H

/* v as a decimal number in lo..hi; otherwise "PROG: OPT V: expected a
 * number in LO..HI" on stderr and exit(2) (a usage error). */
unsigned cli_uint(const char *prog, const char *opt, const char *v, unsigned lo, unsigned hi);

#endif /* MOAT_CLI_H */
