/*
 * log.h — one line per event, always naming the domain:
 *     moat: [demo0] ready in 3.2 ms
 * Lines go to stderr with a single write each, so concurrent domains never
 * interleave within a line. log_set_quiet(true) drops info lines but never
 * errors.
 *
 * Every line naming a domain is rate limited per domain (a token bucket:
 * LOG_BURST lines, then LOG_RATE_PER_S per second), so a hostile domain
 * cannot flood the log; the next line let through is preceded by one
 * saying how many were suppressed. What a refusal must leave is in the
 * audit trail (audit.h), which counts every record. Lines of moat itself
 * (domain NULL) are not limited. Thread-safe; its lock is a leaf.
 */
#ifndef MOAT_LOG_H
#define MOAT_LOG_H

#include <stdbool.h>
#include <stdint.h>

#define LOG_BURST        64
#define LOG_RATE_PER_S   20
#define LOG_DOMAINS_MAX  64     /* domains tracked at once (the idlest is reused) */

/* domain may be NULL for events of moat itself. */
void log_info(const char *domain, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void log_error(const char *domain, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void log_set_quiet(bool quiet);
/* Lines suppressed by the rate limit so far, all domains. */
uint64_t log_suppressed_total(void);

#endif /* MOAT_LOG_H */
