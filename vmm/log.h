/*
 * log.h — one line per event, always naming the domain:
 *     moat: [demo0] ready in 3.2 ms
 * Lines go to stderr with a single write each, so concurrent domains never
 * interleave within a line. log_set_quiet(true) drops info lines but never
 * errors.
 */
#ifndef MOAT_LOG_H
#define MOAT_LOG_H

#include <stdbool.h>

/* domain may be NULL for events of moat itself. */
void log_info(const char *domain, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void log_error(const char *domain, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void log_set_quiet(bool quiet);

#endif /* MOAT_LOG_H */
