/* Every libFuzzer target (harness/fuzz/fuzz_*.c, built by make into
 * build/fuzz/bin/) as a smoke test: first its regression inputs
 * (harness/fuzz/regress/TARGET/: inputs that once crashed it), then
 * FUZZ_SMOKE_S seconds of fuzzing from its seed corpus. A crash, a leak,
 * a sanitizer report or a timeout fails the test with the fuzzer's report.
 * make fuzz runs the same targets for longer (harness/fuzz/run-fuzz.sh). */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define FUZZ_SMOKE_S 3
#define TARGETS_MAX  32

struct target { char name[64]; };

static const char *src_dir(void)
{
    static char dir[4096];
    snprintf(dir, sizeof dir, "%s/..", MOAT_BUILD_DIR);
    return dir;
}

ParameterizedTestParameters(fuzz_smoke, target)
{
    static struct target t[TARGETS_MAX];
    size_t n = 0;
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/harness/fuzz", src_dir());
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)) && n < TARGETS_MAX) {
        size_t len = strlen(e->d_name);
        if (strncmp(e->d_name, "fuzz_", 5) == 0 && len > 2 && strcmp(e->d_name + len - 2, ".c") == 0 &&
            len - 2 < sizeof t[n].name) {
            memcpy(t[n].name, e->d_name, len - 2);
            t[n].name[len - 2] = '\0';
            n++;
        }
    }
    if (d)
        closedir(d);
    return cr_make_param_array(struct target, t, n);
}

/* Run cmd through the shell; its output goes to log. */
static int run(const char *cmd)
{
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

static void show_log(const char *log)
{
    FILE *f = fopen(log, "r");
    char line[512];
    int n = 0;
    while (f && fgets(line, sizeof line, f) && n++ < 80)
        fputs(line, stderr);
    if (f)
        fclose(f);
}

ParameterizedTest(struct target *t, fuzz_smoke, target, .timeout = 120)
{
    char bin[4200], tmp[] = "/tmp/moat-fuzz-smoke.XXXXXX", cmd[16384], log[256];
    snprintf(bin, sizeof bin, "%s/fuzz/bin/%s", MOAT_BUILD_DIR, t->name);
    struct stat st;
    cr_assert_eq(stat(bin, &st), 0, "%s is not built (make builds every fuzz target)", bin);
    cr_assert_not_null(mkdtemp(tmp));
    snprintf(log, sizeof log, "%s/log", tmp);
    /* Regression inputs, each run once. */
    char regress[4300];
    snprintf(regress, sizeof regress, "%s/harness/fuzz/regress/%s", src_dir(), t->name);
    if (stat(regress, &st) == 0) {
        snprintf(cmd, sizeof cmd, "set -e; for f in '%s'/*; do [ -f \"$f\" ] || continue; "
                 "'%s' -runs=1 \"$f\"; done >'%s' 2>&1", regress, bin, log);
        int rc = run(cmd);
        if (rc != 0)
            show_log(log);
        cr_assert_eq(rc, 0, "%s: a regression input crashes it again (log above)", t->name);
    }
    /* New corpus units go to the temp dir, never into the seeds. */
    snprintf(cmd, sizeof cmd, "'%s' -max_total_time=%d -timeout=10 -rss_limit_mb=2048 "
             "-print_final_stats=1 -artifact_prefix='%s/' '%s' '%s/harness/fuzz/corpus/%s' "
             ">'%s' 2>&1", bin, FUZZ_SMOKE_S, tmp, tmp, src_dir(), t->name, log);
    int rc = run(cmd);
    if (rc != 0)
        show_log(log);
    cr_assert_eq(rc, 0, "%s: %d s of fuzzing found a crash, leak or timeout (report above)",
                 t->name, FUZZ_SMOKE_S);
    snprintf(cmd, sizeof cmd, "grep -q '^stat::number_of_executed_units: *[1-9]' '%s'", log);
    cr_assert_eq(run(cmd), 0, "%s ran no input at all", t->name);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    run(cmd);
}
