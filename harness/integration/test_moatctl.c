/*
 * moatctl, the binary, against a live moat (control socket in-process, a
 * ramblk domain under KVM): every command in human and JSON form (JSON
 * checked with jq), the changes it makes really happen, and its errors
 * say what went wrong with the documented exit codes.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include "control.h"
#include "testutil.h"

static struct supervisor sup;
static struct control ctl;
static struct domain *ram0;
static char err[512], sock[300], dir[256];

static void start(void)
{
    TU_REQUIRE_KVM();
    if (system("command -v jq >/dev/null 2>&1") != 0) {
        fprintf(stderr, "SKIPPED: jq not installed (scripts/install-deps.sh installs it)\n");
        cr_skip_test("SKIPPED: jq not installed");
    }
    snprintf(dir, sizeof dir, "%s", tu_tmpdir());
    cr_assert(tu_moat_start(&sup, &ctl, dir, sock, sizeof sock, err, sizeof err), "%s", err);
    char spec[512];
    snprintf(spec, sizeof spec, "name=ram0 kernel=%s mem=16M restart=never args=\"size=4M\"", tu_guest("ramblk"));
    struct domain_config cfg;
    cr_assert(config_parse_domain(spec, &cfg, err, sizeof err), "%s", err);
    ram0 = supervisor_add(&sup, &cfg, err, sizeof err);
    cr_assert_not_null(ram0, "%s", err);
    cr_assert(domain_start(ram0, err, sizeof err), "%s", err);
    cr_assert(supervisor_wait(&sup, ram0, DOMAIN_STATE_BIT(DOMAIN_READY), 10000), "not ready");
}

static void finish(void) { tu_moat_stop(&sup, &ctl); }

TestSuite(moatctl, .init = start, .fini = finish, .timeout = 120);

struct out { int status; char *text; };

/* moatctl ARGS [| filter]: stdout (+stderr with 2>&1 in args) and exit status. */
static struct out moatctl(const char *args, const char *filter)
{
    char cmd[8192], path[300];
    snprintf(path, sizeof path, "%.250s/moatctl.out", dir);
    snprintf(cmd, sizeof cmd, "%s/asan/bin/moatctl --socket %s %s >%s.raw 2>&1; rc=$?; %s <%s.raw >%s; exit $rc",
             MOAT_BUILD_DIR, sock, args, path, filter ? filter : "cat", path, path);
    int rc = system(cmd);
    struct out o = { WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, tu_slurp(path) };
    cr_assert_not_null(o.text, "no output from moatctl %s", args);
    return o;
}

static void expect(const char *args, const char *filter, int status, const char *needle)
{
    struct out o = moatctl(args, filter);
    cr_assert_eq(o.status, status, "moatctl %s exited %d, expected %d; output: %s", args, o.status,
                 status, o.text);
    cr_assert_not_null(strstr(o.text, needle), "moatctl %s: expected '%s' in: %s", args, needle,
                       o.text);
    free(o.text);
}

Test(moatctl, list_shows_the_block_cap)
{
    expect("list", NULL, 0, "ram0.blk0");
    expect("list", NULL, 0, "4.0 MiB, 512 B blocks");
    expect("--json list", "jq -r '.caps[] | select(.name==\"ram0.blk0\") | .blk.blocks'", 0, "8192");
    expect("--json list", "jq -r '.caps[] | select(.name==\"control\") | .kind'", 0, "control");
}

Test(moatctl, status_stats_and_audit)
{
    expect("status", NULL, 0, "ready");
    expect("--json status ram0", "jq -r '.domains[0].state'", 0, "ready");
    expect("--json status ram0", "jq -r '.domains[0].incarnation'", 0, "1");
    expect("stats ram0", NULL, 0, "ram0");
    expect("--json stats ram0", "jq -r '.stats.restarts'", 0, "0");
    expect("audit -n 5", NULL, 0, "");
    expect("--json audit", "jq -r '.audit | type'", 0, "array");
}

Test(moatctl, restart_inject_and_stop_take_effect)
{
    expect("restart ram0", NULL, 0, "ok");
    cr_assert(supervisor_wait(&sup, ram0, DOMAIN_STATE_BIT(DOMAIN_READY), 10000));
    expect("--json status ram0", "jq -r '.domains[0].incarnation'", 0, "2");
    expect("--json stats ram0", "jq -r '.stats.restarts'", 0, "1");
    expect("--json inject ram0 kill", "jq -r '.ok'", 0, "true");
    cr_assert(supervisor_wait(&sup, ram0, DOMAIN_TERMINAL, 10000));
    cr_assert_eq(ram0->crash.cause, CRASH_INJECTED);
    expect("status ram0", NULL, 0, "injected fault");
    expect("--json status ram0", "jq -r '.domains[0].crash.cause'", 0, "injected fault");
    expect("audit", NULL, 0, "fault 'kill' injected");
    expect("--json audit", "jq -r '.audit[].text'", 0, "restart by");
    expect("restart ram0", NULL, 0, "ok");
    cr_assert(supervisor_wait(&sup, ram0, DOMAIN_STATE_BIT(DOMAIN_READY), 10000));
    expect("stop ram0", NULL, 0, "ok");
    cr_assert(supervisor_wait(&sup, ram0, DOMAIN_TERMINAL, 10000));
    expect("--json status ram0", "jq -r '.domains[0].state'", 0, "stopped");
}

Test(moatctl, errors_say_why_with_exit_codes)
{
    expect("status nosuch", NULL, 1, "no domain called 'nosuch'");
    expect("inject ram0 explode", NULL, 2, "explode");
    expect("inject ram0 explode", NULL, 2, "wild-dma-other");     /* the faults are listed */
    expect("inject ram0 wild-dma-private", NULL, 1, "ram0 cannot raise 'wild-dma-private'");
    expect("frobnicate", NULL, 2, "--help");
    expect("stats", NULL, 2, "DOMAIN");
    char args[PATH_MAX + 64];
    snprintf(args, sizeof args, "--socket %s/none.sock status", dir);
    expect(args, NULL, 1, "cannot reach moat");
    expect("--help", NULL, 0, "Usage: moatctl");
    expect("--help", NULL, 0, "crash-loop");
}

/* An in-guest fault and the status it leaves (ram0 is restart=never). */
Test(moatctl, inject_panic_shows_why_it_ended)
{
    expect("inject ram0 panic", NULL, 0, "ok");
    cr_assert(supervisor_wait(&sup, ram0, DOMAIN_TERMINAL, 10000));
    expect("status ram0", NULL, 0, "injected fault: panic");
    expect("status ram0", NULL, 0, "restart=never");
    expect("--json status ram0", "jq -r '.domains[0].ends[0].cause'", 0, "panic");
}
