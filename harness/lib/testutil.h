/*
 * testutil.h — helpers shared by the Criterion suites.
 *
 * KVM suites call TU_REQUIRE_KVM() first: without a usable /dev/kvm the test
 * is reported SKIPPED loudly (stderr and Criterion's skip count), never
 * passed silently.
 */
#ifndef MOAT_TESTUTIL_H
#define MOAT_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <stdio.h>
#include "control.h"
#include "moat/libmoat.h"
#include "supervisor.h"

#ifndef MOAT_BUILD_DIR
#error "MOAT_BUILD_DIR must name the build directory"
#endif

bool tu_kvm_available(char *why, size_t n);

#define TU_REQUIRE_KVM()                                                      \
    do {                                                                      \
        char tu_why_[256];                                                    \
        if (!tu_kvm_available(tu_why_, sizeof tu_why_)) {                     \
            fprintf(stderr, "SKIPPED: %s\n", tu_why_);                        \
            cr_skip_test("SKIPPED: needs /dev/kvm: %s", tu_why_);             \
        }                                                                     \
    } while (0)

/* Path of a guest image built by make (static buffer per call site is not
 * needed: returns a pointer into a small rotating pool). */
const char *tu_guest(const char *image);
/* A fresh temporary directory (for logs); never removed during the test. */
const char *tu_tmpdir(void);
/* Initialise s with defaults (logs in a temp dir) and the given watchdog. */
bool tu_supervisor(struct supervisor *s, unsigned watchdog_ms, unsigned boot_timeout_ms,
                   char *err, size_t errlen);
/* The cap suites' fixture: a supervisor with defaults (tu_supervisor) and
 * its control socket at <dir>/ctl.sock, dir NULL = a fresh tu_tmpdir();
 * the socket's path goes to sock. False with err set otherwise. */
bool tu_moat_start(struct supervisor *s, struct control *c, const char *dir, char *sock,
                   size_t socklen, char *err, size_t errlen);
void tu_moat_stop(struct supervisor *s, struct control *c);
/* Close what a client opened, each part if non-NULL: the session, the
 * cap handle, then the connection. */
void tu_client_close(struct moat_session *s, struct moat_cap *cap, struct moat_client *c);
/* Add a domain running image with args. */
struct domain *tu_add(struct supervisor *s, const char *name, const char *image,
                      const char *args, char *err, size_t errlen);
/* The domain's state, read under the supervisor lock. */
enum domain_state tu_state(struct supervisor *s, struct domain *d);
/* Wait on the supervisor's condition variable (no sleeps) until pred(d)
 * holds, called with sup->lock held; false if timeout_ms passed first. */
bool tu_wait_until(struct supervisor *s, struct domain *d, bool (*pred)(const struct domain *),
                   unsigned timeout_ms);
/* Parse spec, add and start the domain, wait up to timeout_ms for READY.
 * NULL with err set (including the state and crash detail) otherwise. */
struct domain *tu_boot(struct supervisor *s, const char *spec, unsigned timeout_ms,
                       char *err, size_t errlen);
/* Read a whole file into a NUL-terminated heap buffer (NULL on error). */
char *tu_slurp(const char *path);
/* d's log (log_dir/NAME.log) so far, as tu_slurp. */
char *tu_domain_log(const struct supervisor *s, const struct domain *d);
/* Start argv[0] (a path) with argv; *out reads its stderr. Its pid, or
 * -1 with err. */
pid_t tu_spawn(char *const argv[], FILE **out, char *err, size_t errlen);
/* Read f until a line containing needle (copied to line): then a child
 * keeps copying the rest to our stderr (so the writer never blocks) and
 * f is closed. False (f closed, line the last one read) at EOF. */
bool tu_wait_line(FILE *f, const char *needle, char *line, size_t len);
/* Start build/asan/bin/moat-nbd --wait wait_s exporting cap on nbd_sock;
 * *out reads its stderr. Returns its pid, or -1 with err. */
pid_t tu_spawn_nbd(const char *ctl_sock, const char *cap, const char *nbd_sock,
                   unsigned wait_s, FILE **out, char *err, size_t errlen);
/* Read moat-nbd's stderr until it serves cap (its stderr then goes on to
 * ours); false with err when it ended first. */
bool tu_nbd_wait_serving(FILE *f, const char *cap, char *err, size_t errlen);
/* Start build/asan/bin/moat-nbd exporting cap (served by the moat on
 * ctl_sock) on the Unix socket nbd_sock; returns once it serves (its pid;
 * its stderr goes on to ours), or -1 with err. */
pid_t tu_start_nbd(const char *ctl_sock, const char *cap, const char *nbd_sock, char *err,
                   size_t errlen);
/* Wait until d's heartbeat exceeds since, or timeout; returns the beat. */
uint64_t tu_wait_heartbeat_past(struct domain *d, uint64_t since, unsigned timeout_ms);

#endif /* MOAT_TESTUTIL_H */
