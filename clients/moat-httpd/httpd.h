/*
 * httpd.h — moat-httpd's server over lwIP sockets: static files under a
 * root, GET and HEAD (http.h parses), one thread per connection, at most
 * max_conns at once (503 beyond), timeout_ms for a client to send its
 * request (408 after), one log line per request on stderr. Needs lwIP up
 * (moatnet_start or moatnet_start_link).
 */
#ifndef MOAT_HTTPD_H
#define MOAT_HTTPD_H

#include <limits.h>
#include <stdbool.h>

struct httpd_config {
    char root[PATH_MAX];        /* an absolute, resolved path (realpath) */
    unsigned port, max_conns, timeout_ms;
    bool quiet;                 /* no line per request (benchmarks) */
};

/* Listen on cfg->port: the lwIP socket, or -1 (errno set). */
int httpd_listen(const struct httpd_config *cfg);
/* Accept and serve on lfd forever. */
_Noreturn void httpd_run(const struct httpd_config *cfg, int lfd);

#endif /* MOAT_HTTPD_H */
