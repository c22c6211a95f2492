/* Event log (contract in log.h). */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "log.h"
#include "clock.h"

static bool quiet;

void log_set_quiet(bool q) { quiet = q; }

/* ---- per-domain rate limit ----------------------------------------------- */

struct bucket {
    char domain[48];
    double tokens;
    uint64_t last_ns;
    uint64_t suppressed;        /* lines dropped since the last one let through */
};

static pthread_mutex_t limit_lock = PTHREAD_MUTEX_INITIALIZER;     /* leaf */
static struct bucket buckets[LOG_DOMAINS_MAX];
static uint64_t limit_total;

/* May a line of domain go out now? *gone: lines of it suppressed since its
 * last line (to be reported first). */
static bool limit_pass(const char *domain, uint64_t *gone)
{
    *gone = 0;
    uint64_t now = clock_mono_ns();
    pthread_mutex_lock(&limit_lock);
    struct bucket *b = NULL, *free_b = NULL, *oldest = &buckets[0];
    for (unsigned i = 0; i < LOG_DOMAINS_MAX && !b; i++) {
        if (buckets[i].domain[0] == '\0') {
            free_b = free_b ? free_b : &buckets[i];
            continue;
        }
        if (strncmp(buckets[i].domain, domain, sizeof buckets[i].domain - 1) == 0)
            b = &buckets[i];
        else if (buckets[i].last_ns < oldest->last_ns)
            oldest = &buckets[i];
    }
    if (!b) {       /* a new domain (or more than the table holds: reuse the idlest) */
        b = free_b ? free_b : oldest;
        memset(b, 0, sizeof *b);
        snprintf(b->domain, sizeof b->domain, "%s", domain);
        b->tokens = LOG_BURST;
        b->last_ns = now;
    }
    b->tokens += (double)(now - b->last_ns) * LOG_RATE_PER_S / 1e9;
    if (b->tokens > LOG_BURST)
        b->tokens = LOG_BURST;
    b->last_ns = now;
    bool pass = b->tokens >= 1.0;
    if (pass) {
        b->tokens -= 1.0;
        *gone = b->suppressed;
        b->suppressed = 0;
    } else {
        b->suppressed++;
        limit_total++;
    }
    pthread_mutex_unlock(&limit_lock);
    return pass;
}

uint64_t log_suppressed_total(void)
{
    pthread_mutex_lock(&limit_lock);
    uint64_t n = limit_total;
    pthread_mutex_unlock(&limit_lock);
    return n;
}

/* ---- lines --------------------------------------------------------------- */

static void write_line(const char *domain, const char *level, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
static void write_line(const char *domain, const char *level, const char *fmt, va_list ap)
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

static void note_line(const char *domain, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void note_line(const char *domain, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    write_line(domain, "", fmt, ap);
    va_end(ap);
}

static void emit(const char *domain, const char *level, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
static void emit(const char *domain, const char *level, const char *fmt, va_list ap)
{
    uint64_t gone = 0;
    if (domain && !limit_pass(domain, &gone))
        return;
    if (gone)
        note_line(domain, "%llu log lines suppressed (at most %d per second after a burst of %d)",
                  (unsigned long long)gone, LOG_RATE_PER_S, LOG_BURST);
    write_line(domain, level, fmt, ap);
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
