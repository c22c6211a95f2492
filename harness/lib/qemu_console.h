/*
 * qemu_console.h — drive a QEMU machine through its serial console, for
 * the bare-mode suites: start qemu-system-x86_64 with COM1 on a pipe,
 * wait for text with a deadline, type lines, wait for the exit.
 *
 * Everything QEMU printed is kept (qc->text) so a failing test can show
 * it. Deadlines are on CLOCK_MONOTONIC; nothing sleeps.
 */
#ifndef MOAT_QEMU_CONSOLE_H
#define MOAT_QEMU_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define QC_TEXT_MAX (256u << 10)

struct qemu_console {
    pid_t pid;
    int to_qemu, from_qemu;
    char text[QC_TEXT_MAX];         /* all output so far, NUL-terminated */
    size_t len;
    size_t mark;                    /* qc_expect searches from here */
};

/* The QEMU binary, or NULL (why in err) when it is not installed. */
const char *qc_qemu_path(char *err, size_t errlen);
/* Start argv (argv[0] = the QEMU binary) with stdin/stdout on pipes and
 * stderr merged into stdout. False + err on failure. */
bool qc_start(struct qemu_console *qc, char *const argv[], char *err, size_t errlen);
/* Read until needle appears after the mark (the mark then moves past it)
 * or timeout_ms passes or QEMU closes its output. */
bool qc_expect(struct qemu_console *qc, const char *needle, unsigned timeout_ms);
/* The text since the last mark move, for assertions. */
const char *qc_since_mark(const struct qemu_console *qc);
/* Type a line (a newline is added). */
bool qc_send(struct qemu_console *qc, const char *line);
/* Wait for QEMU to exit; its exit status in *status (-1 if it was a
 * signal). False if it still ran after timeout_ms (it is then killed). */
bool qc_wait_exit(struct qemu_console *qc, unsigned timeout_ms, int *status);
/* Kill QEMU if it still runs and close the pipes. */
void qc_close(struct qemu_console *qc);

#endif /* MOAT_QEMU_CONSOLE_H */
