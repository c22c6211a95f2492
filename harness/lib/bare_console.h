/*
 * bare_console.h — the kernel booted bare under QEMU (TCG), driven through
 * its COM1 console: find QEMU (SKIPPED loudly without it), boot to the
 * prompt, type a command and take its reply, reboot. One QEMU per test
 * (the static qc). Header-only, for the bare-mode suites.
 */
#ifndef MOAT_BARE_CONSOLE_H
#define MOAT_BARE_CONSOLE_H

#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "qemu_console.h"

#define PROMPT_MS 90000u        /* TCG on a loaded 2-core machine (OVMF: 10-25 s idle) */
#define REPLY_MS  10000u

static struct qemu_console qc;

static inline void need_qemu(char *path, size_t len)
{
    char err[256];
    const char *q = qc_qemu_path(err, sizeof err);
    if (!q) {
        fprintf(stderr, "SKIPPED: %s\n", err);
        cr_skip_test("SKIPPED: %s", err);
    }
    snprintf(path, len, "%s", q);
}

/* The CPU the suite's machines get unless a test names another: qemu64
 * (no nested paging: domains run in ring 3), or, built with
 * -DBARE_CPU='"EPYC"' (the *_svm suites), one with SVM and nested paging
 * (domains run as SVM guests). */
#ifndef BARE_CPU
#define BARE_CPU "qemu64"
#define BARE_ISOLATION "ring 3"         /* how `domains` describes a domain's */
#else
#define BARE_ISOLATION "svm guest (ASID "
#endif

/* The console names the isolation backend the CPU in effect (the last
 * -cpu given) and the command line call for. */
static inline void expect_isolation(char *const argv[])
{
    const char *cpu = "";
    bool ring3 = false;
    for (size_t i = 0; argv[i]; i++) {
        if (!strcmp(argv[i], "-cpu") && argv[i + 1])
            cpu = argv[i + 1];
        ring3 |= strstr(argv[i], "moat.isolation=ring3") != NULL;
    }
    bool svm = !ring3 && (!strcmp(cpu, "EPYC") || !strcmp(cpu, "max"));
    const char *want = svm ? "domains run as SVM guests with nested paging (svm)"
                           : "domains run in ring 3 with page tables of their own (ring3; not svm: ";
    cr_assert(strstr(qc.text, want), "-cpu %s: the console does not say '%s':\n%s", cpu, want,
              qc.text);
}

/* Boot build/bare/moat-bare.elf32 by -kernel on machine (with the extra
 * QEMU arguments, NULL-terminated) to the console prompt. */
static inline void boot_kernel_to_prompt(const char *machine, char *const extra[])
{
    static char qemu[PATH_MAX], kernel[PATH_MAX];
    char err[256];
    need_qemu(qemu, sizeof qemu);
    snprintf(kernel, sizeof kernel, "%s/bare/moat-bare.elf32", MOAT_BUILD_DIR);
    char *argv[42] = { qemu, "-accel", "tcg", "-M", (char *)machine, "-m", "128M",
                       "-display", "none", "-no-reboot", "-serial", "stdio", "-monitor", "none",
                       "-net", "none", "-kernel", kernel, "-cpu", BARE_CPU };
    size_t n = 20;
    for (size_t i = 0; extra && extra[i] && n + 1 < sizeof argv / sizeof argv[0]; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    cr_assert(qc_start(&qc, argv, err, sizeof err), "cannot start QEMU: %s", err);
    cr_assert(qc_expect(&qc, "moat> ", PROMPT_MS), "no console prompt within %u ms:\n%s",
              PROMPT_MS, qc.text);
    expect_isolation(argv);
}

/* Type cmd at the prompt and wait for the next prompt; what the console
 * printed in between (the echoed command, then the reply) is then in out. */
static inline void run_cmd(const char *cmd, char *out, size_t len)
{
    size_t from = qc.mark;
    cr_assert(qc_send(&qc, cmd), "cannot type '%s'", cmd);
    cr_assert(qc_expect(&qc, "moat> ", REPLY_MS), "no prompt after '%s'; the console said:\n%s",
              cmd, qc.text);
    size_t end = qc.mark - strlen("moat> ");
    size_t n = end - from < len - 1 ? end - from : len - 1;
    memcpy(out, qc.text + from, n);
    out[n] = '\0';
}

/* reboot must end QEMU. */
static inline void reboot_and_close(void)
{
    cr_assert(qc_send(&qc, "reboot"));
    int status;
    cr_assert(qc_wait_exit(&qc, REPLY_MS, &status), "reboot did not reset the machine:\n%s",
              qc.text);
    qc_close(&qc);
}

/* needle anywhere in what QEMU printed, waiting for it when it has not
 * come yet: for domain output, which interleaves with console replies and
 * may land before the mark. */
static inline bool qc_seen(const char *needle, unsigned timeout_ms)
{
    return strstr(qc.text, needle) || qc_expect(&qc, needle, timeout_ms);
}

/* Make domain `name` panic (inject NAME panic) and see its report, then
 * its automatic restart as incarnation 2 within timeout_ms. */
static inline void panic_and_restart(const char *name, unsigned timeout_ms)
{
    char cmd[64], want[160], out[8192];
    snprintf(cmd, sizeof cmd, "inject %s panic", name);
    run_cmd(cmd, out, sizeof out);
    snprintf(want, sizeof want, "%s: panic: injected fault: panic", name);
    cr_assert(qc_expect(&qc, want, REPLY_MS), "no panic report from %s:\n%s", name, qc.text);
    snprintf(want, sizeof want, "%s: restarted after its end: memory scrubbed, image reloaded, "
             "devices reset, incarnation 2", name);
    cr_assert(qc_expect(&qc, want, timeout_ms), "no automatic restart of %s:\n%s", name,
              qc.text);
}

/* Make domain `server` crash each time it is ready (inject NAME
 * crash-loop) until its restart budget is spent and its breaker opens;
 * then its client domain is told its session's server stays down. */
static inline void crash_loop_to_breaker(const char *server, const char *client,
                                         unsigned timeout_ms)
{
    char cmd[64], want[160], out[8192];
    snprintf(cmd, sizeof cmd, "inject %s crash-loop", server);
    run_cmd(cmd, out, sizeof out);
    snprintf(want, sizeof want, "%s: stays down: 5 automatic restarts in 30 s spent its budget "
             "(breaker open; 'restart %s' closes it)", server, server);
    cr_assert(qc_expect(&qc, want, timeout_ms), "the breaker of %s did not open:\n%s", server,
              qc.text);
    snprintf(want, sizeof want, "%s: session 0: its server stays down: what is in flight fails",
             client);
    cr_assert(qc_expect(&qc, want, REPLY_MS), "%s was not told its server is gone:\n%s", client,
              qc.text);
}

/* Extra QEMU arguments for a driver domain: -initrd with the module (the
 * image under build/bare, then its words) and, when app is given, an app
 * domain (guest-kernel/bare/apps: blkcheck.dom.elf, netcheck.dom.elf) as a
 * second module with app_words; then more (NULL-terminated). In static
 * storage, for boot_kernel_to_prompt. */
static inline char **bare_modules_args(const char *image, const char *words, const char *app,
                                       const char *app_words, char *const more[])
{
    static char module[2 * PATH_MAX + 512];
    static char *extra[16];
    const char *images[2] = { image, app };
    for (int i = 0; i < 2 && images[i]; i++) {
        snprintf(module, sizeof module, "%s/bare/%s", MOAT_BUILD_DIR, images[i]);
        cr_assert_eq(access(module, R_OK), 0, "%s is not built (make builds it)", module);
    }
    int n = snprintf(module, sizeof module, "%s/bare/%s %s", MOAT_BUILD_DIR, image, words);
    if (app)
        snprintf(module + n, sizeof module - (size_t)n, ",%s/bare/%s %s", MOAT_BUILD_DIR, app,
                 app_words);
    size_t k = 0;
    extra[k++] = "-initrd";
    extra[k++] = module;
    for (size_t i = 0; more[i] && k + 1 < sizeof extra / sizeof extra[0]; i++)
        extra[k++] = more[i];
    extra[k] = NULL;
    return extra;
}

static inline char **bare_domain_args(const char *image, const char *words, char *const more[])
{
    return bare_modules_args(image, words, NULL, NULL, more);
}

#endif /* MOAT_BARE_CONSOLE_H */
