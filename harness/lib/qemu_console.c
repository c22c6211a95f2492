/* QEMU over its serial console (contract in qemu_console.h). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "qemu_console.h"

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *qc_qemu_path(char *err, size_t errlen)
{
    static const char *const where[] = { "/usr/bin/qemu-system-x86_64",
                                         "/usr/local/bin/qemu-system-x86_64" };
    for (size_t i = 0; i < sizeof where / sizeof where[0]; i++)
        if (access(where[i], X_OK) == 0)
            return where[i];
    snprintf(err, errlen, "qemu-system-x86_64 is not installed (scripts/install-deps.sh "
             "installs qemu-system-x86)");
    return NULL;
}

bool qc_start(struct qemu_console *qc, char *const argv[], char *err, size_t errlen)
{
    int in[2], out[2];
    memset(qc, 0, sizeof *qc);
    qc->pid = -1;
    if (pipe(in) != 0 || pipe(out) != 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        return false;
    }
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        return false;
    }
    if (pid == 0) {
        dup2(in[0], STDIN_FILENO);
        dup2(out[1], STDOUT_FILENO);
        dup2(out[1], STDERR_FILENO);
        close(in[1]);
        close(out[0]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    qc->pid = pid;
    qc->to_qemu = in[1];
    qc->from_qemu = out[0];
    fcntl(qc->from_qemu, F_SETFL, O_NONBLOCK);
    return true;
}

/* Append what is there to read within ms; false once QEMU closed it. */
static bool pump(struct qemu_console *qc, int ms)
{
    struct pollfd p = { .fd = qc->from_qemu, .events = POLLIN };
    if (poll(&p, 1, ms) <= 0)
        return true;
    size_t room = sizeof qc->text - 1 - qc->len;
    if (room == 0) {            /* keep the newest half */
        size_t half = sizeof qc->text / 2;
        memmove(qc->text, qc->text + half, qc->len - half);
        qc->len -= half;
        qc->mark = qc->mark > half ? qc->mark - half : 0;
        room = sizeof qc->text - 1 - qc->len;
    }
    ssize_t n = read(qc->from_qemu, qc->text + qc->len, room);
    if (n <= 0)
        return n < 0 && (errno == EAGAIN || errno == EINTR);
    for (ssize_t i = 0; i < n; i++)     /* firmware prints NULs: keep the text one string */
        if (qc->text[qc->len + (size_t)i] == '\0')
            qc->text[qc->len + (size_t)i] = ' ';
    qc->len += (size_t)n;
    qc->text[qc->len] = '\0';
    return true;
}

bool qc_expect(struct qemu_console *qc, const char *needle, unsigned timeout_ms)
{
    long long end = now_ms() + timeout_ms;
    for (;;) {
        const char *hit = strstr(qc->text + qc->mark, needle);
        if (hit) {
            qc->mark = (size_t)(hit - qc->text) + strlen(needle);
            return true;
        }
        long long left = end - now_ms();
        if (left <= 0 || !pump(qc, (int)(left < 100 ? left : 100)))
            return strstr(qc->text + qc->mark, needle) != NULL;
    }
}

const char *qc_since_mark(const struct qemu_console *qc)
{
    return qc->text + qc->mark;
}

bool qc_send(struct qemu_console *qc, const char *line)
{
    char buf[512];
    int n = snprintf(buf, sizeof buf, "%s\n", line);
    return n > 0 && (size_t)n < sizeof buf && write(qc->to_qemu, buf, (size_t)n) == n;
}

bool qc_wait_exit(struct qemu_console *qc, unsigned timeout_ms, int *status)
{
    long long end = now_ms() + timeout_ms;
    while (qc->pid > 0) {
        int st;
        pid_t r = waitpid(qc->pid, &st, WNOHANG);
        if (r == qc->pid) {
            qc->pid = -1;
            *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
            return true;
        }
        if (now_ms() >= end)
            break;
        pump(qc, 50);           /* also the wait: returns when output or 50 ms pass */
    }
    qc_close(qc);
    return false;
}

void qc_close(struct qemu_console *qc)
{
    if (qc->pid > 0) {
        kill(qc->pid, SIGKILL);
        waitpid(qc->pid, NULL, 0);
        qc->pid = -1;
    }
    if (qc->to_qemu > 0)
        close(qc->to_qemu);
    if (qc->from_qemu > 0)
        close(qc->from_qemu);
    qc->to_qemu = qc->from_qemu = -1;
}
