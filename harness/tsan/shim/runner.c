/* The TSan stand-in for Criterion's runner (see criterion/criterion.h
 * beside this file): each test in a child process, a TAP report, a
 * synthesis line. Options: --tap=FILE, --jobs=N (ignored: one at a time),
 * --filter=SUITE/NAME (an exact test, or * for every one). */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define EXIT_SKIP 77

/* A data race fails the test that hit it (exit 66), not just a report. */
const char *__tsan_default_options(void);
const char *__tsan_default_options(void) { return "halt_on_error=1:exitcode=66"; }

static struct tshim_test *head, **tail = &head;
static struct tshim_suite *suites;

void tshim_register(struct tshim_test *t)
{
    t->next = NULL;
    *tail = t;
    tail = &t->next;
}

void tshim_register_suite(struct tshim_suite *s)
{
    s->next = suites;
    suites = s;
}

/* A test without its own init/fini/timeout takes its suite's. */
static void inherit(struct tshim_test *t)
{
    for (const struct tshim_suite *s = suites; s; s = s->next) {
        if (strcmp(s->name, t->suite))
            continue;
        if (!t->init)
            t->init = s->init;
        if (!t->fini)
            t->fini = s->fini;
        if (t->timeout <= 0)
            t->timeout = s->timeout;
    }
}

void tshim_fail(const char *file, int line, const char *expr, const char *fmt, ...)
{
    fprintf(stderr, "[----] %s:%d: Assertion Failed\n[----]   %s\n[----]  ", file, line, expr);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    _exit(1);
}

void tshim_skip(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    _exit(EXIT_SKIP);
}

static bool wanted(const struct tshim_test *t, const char *filter)
{
    if (!filter || !strcmp(filter, "*"))
        return true;
    char full[256];
    snprintf(full, sizeof full, "%s/%s", t->suite, t->name);
    return !strcmp(full, filter);
}

int main(int argc, char **argv)
{
    const char *tap_path = NULL, *filter = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strncmp(argv[i], "--tap=", 6))
            tap_path = argv[i] + 6;
        else if (!strncmp(argv[i], "--filter=", 9))
            filter = argv[i] + 9;
    }
    FILE *tap = tap_path ? fopen(tap_path, "w") : NULL;
    unsigned n = 0, pass = 0, fail = 0, crash = 0, skip = 0;
    for (struct tshim_test *t = head; t; t = t->next)
        n += wanted(t, filter);
    if (tap)
        fprintf(tap, "TAP version 13\n1..%u\n", n);
    unsigned k = 0;
    for (struct tshim_test *t = head; t; t = t->next) {
        if (!wanted(t, filter))
            continue;
        k++;
        inherit(t);
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            alarm(t->timeout > 0 ? (unsigned)t->timeout : 600);
            if (t->init)
                t->init();
            t->fn();
            if (t->fini)
                t->fini();
            fflush(NULL);
            _exit(0);
        }
        int st = 0;
        waitpid(pid, &st, 0);
        const char *verdict;
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
            pass++;
            verdict = "ok";
        } else if (WIFEXITED(st) && WEXITSTATUS(st) == EXIT_SKIP) {
            skip++;
            verdict = "ok";
        } else if (WIFEXITED(st)) {
            fail++;
            verdict = "not ok";
        } else {
            crash++;
            verdict = "not ok";
            fprintf(stderr, "[----] %s::%s: crashed (signal %d%s)\n", t->suite, t->name,
                    WTERMSIG(st), WTERMSIG(st) == SIGALRM ? ": timed out" : "");
        }
        fprintf(stderr, "[%s] %s::%s\n", !strcmp(verdict, "ok") ? "PASS" : "FAIL", t->suite,
                t->name);
        if (tap)
            fprintf(tap, "%s %u - %s::%s%s\n", verdict, k, t->suite, t->name,
                    WIFEXITED(st) && WEXITSTATUS(st) == EXIT_SKIP ? " # SKIP" : "");
    }
    if (tap)
        fclose(tap);
    fprintf(stderr, "[====] Synthesis: Tested: %u | Passing: %u | Failing: %u | Crashing: %u\n",
            n - skip, pass, fail, crash);
    return fail || crash ? 1 : 0;
}
