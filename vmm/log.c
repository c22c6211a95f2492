/* Event log (contract in log.h). */
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>
#include "log.h"

static bool quiet;

void log_set_quiet(bool q) { quiet = q; }

static void emit(const char *domain, const char *level, const char *fmt, va_list ap)
{
    char line[1024];
    int n = domain ? snprintf(line, sizeof line, "moat: [%s] %s", domain, level)
                   : snprintf(line, sizeof line, "moat: %s", level);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
    int m = vsnprintf(line + len, sizeof line - len, fmt, ap);
    if (m > 0)
        len += (size_t)m < sizeof line - len ? (size_t)m : sizeof line - len - 1;
    if (len >= sizeof line - 1)
        len = sizeof line - 2;
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

void log_info(const char *domain, const char *fmt, ...)
{
    if (quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    emit(domain, "", fmt, ap);
    va_end(ap);
}

void log_error(const char *domain, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit(domain, "error: ", fmt, ap);
    va_end(ap);
}
