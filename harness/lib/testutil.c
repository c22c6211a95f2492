/* Test helpers (contract in testutil.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "testutil.h"

bool tu_kvm_available(char *why, size_t n)
{
    int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, n, "cannot open /dev/kvm: %s", strerror(errno));
        return false;
    }
    close(fd);
    return true;
}

const char *tu_guest(const char *image)
{
    static char pool[8][512];
    static unsigned next;
    char *p = pool[next++ % 8];
    snprintf(p, sizeof pool[0], "%s/guest/%s.elf", MOAT_BUILD_DIR, image);
    return p;
}

const char *tu_tmpdir(void)
{
    static char dir[64];
    snprintf(dir, sizeof dir, "/tmp/moat-test-XXXXXX");
    if (!mkdtemp(dir))
        return "/tmp";
    return dir;
}

bool tu_supervisor(struct supervisor *s, unsigned watchdog_ms, unsigned boot_timeout_ms,
                   char *err, size_t errlen)
{
    static struct moat_config cfg;
    config_defaults(&cfg);
    snprintf(cfg.log_dir, sizeof cfg.log_dir, "%s", tu_tmpdir());
    if (watchdog_ms)
        cfg.watchdog_ms = watchdog_ms;
    if (boot_timeout_ms)
        cfg.boot_timeout_ms = boot_timeout_ms;
    return supervisor_init(s, &cfg, err, errlen);
}

struct domain *tu_add(struct supervisor *s, const char *name, const char *image,
                      const char *args, char *err, size_t errlen)
{
    struct domain_config dc;
    memset(&dc, 0, sizeof dc);
    snprintf(dc.name, sizeof dc.name, "%s", name);
    snprintf(dc.kernel, sizeof dc.kernel, "%s", tu_guest(image));
    snprintf(dc.cmdline, sizeof dc.cmdline, "%s", args ? args : "");
    dc.ram_size = MOAT_DEFAULT_RAM;
    return supervisor_add(s, &dc, err, errlen);
}

char *tu_slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 2) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf)
        buf[len] = '\0';
    return buf;
}

char *tu_domain_log(const struct supervisor *s, const struct domain *d)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s.log", s->log_dir, d->cfg.name);
    return tu_slurp(path);
}

uint64_t tu_wait_heartbeat_past(struct domain *d, uint64_t since, unsigned timeout_ms)
{
    /* The heartbeat lives in guest memory and signals nothing, so this one
     * helper samples it; each sample waits on the supervisor's condition
     * variable (woken by any state change) for at most one guest tick. */
    uint64_t deadline = clock_mono_ns() + (uint64_t)timeout_ms * 1000000u;
    uint64_t hb;
    while ((hb = domain_heartbeat(d)) <= since && clock_mono_ns() < deadline)
        supervisor_wait(d->sup, d, DOMAIN_TERMINAL, 10);
    return hb;
}

enum domain_state tu_state(struct supervisor *s, struct domain *d)
{
    pthread_mutex_lock(&s->lock);
    enum domain_state st = d->state;
    pthread_mutex_unlock(&s->lock);
    return st;
}

bool tu_wait_until(struct supervisor *s, struct domain *d, bool (*pred)(const struct domain *),
                   unsigned timeout_ms)
{
    uint64_t t = clock_mono_ns() + (uint64_t)timeout_ms * 1000000u;
    struct timespec dl = { .tv_sec = (time_t)(t / 1000000000u), .tv_nsec = (long)(t % 1000000000u) };
    pthread_mutex_lock(&s->lock);
    bool ok;
    while (!(ok = pred(d)) && pthread_cond_timedwait(&s->changed, &s->lock, &dl) != ETIMEDOUT) {
    }
    ok = ok || pred(d);
    pthread_mutex_unlock(&s->lock);
    return ok;
}

struct domain *tu_boot(struct supervisor *s, const char *spec, unsigned timeout_ms,
                       char *err, size_t errlen)
{
    struct domain_config cfg;
    if (!config_parse_domain(spec, &cfg, err, errlen))
        return NULL;
    struct domain *d = supervisor_add(s, &cfg, err, errlen);
    if (!d || !domain_start(d, err, errlen))
        return NULL;
    supervisor_wait(s, d, DOMAIN_STATE_BIT(DOMAIN_READY) | DOMAIN_TERMINAL, timeout_ms);
    enum domain_state st = tu_state(s, d);
    if (st != DOMAIN_READY) {
        snprintf(err, errlen, "%s did not become ready (state %s: %s)", cfg.name,
                 domain_state_name(st), d->crash.detail);
        return NULL;
    }
    return d;
}

bool tu_moat_start(struct supervisor *s, struct control *c, const char *dir, char *sock,
                   size_t socklen, char *err, size_t errlen)
{
    if (!tu_supervisor(s, 0, 0, err, errlen))
        return false;
    snprintf(sock, socklen, "%s/ctl.sock", dir ? dir : tu_tmpdir());
    if (!control_start(c, s, sock, err, errlen)) {
        supervisor_fini(s);
        return false;
    }
    return true;
}

void tu_moat_stop(struct supervisor *s, struct control *c)
{
    control_stop(c);
    supervisor_fini(s);
}

void tu_client_close(struct moat_session *s, struct moat_cap *cap, struct moat_client *c)
{
    if (s)
        moat_session_close(s);
    if (cap)
        moat_close(cap);
    if (c)
        moat_disconnect(c);
}

pid_t tu_spawn(char *const argv[], FILE **out, char *err, size_t errlen)
{
    int pipefd[2];
    if (pipe(pipefd) != 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        close(pipefd[0]);
        close(pipefd[1]);
        return -1;
    }
    if (pid == 0) {
        dup2(pipefd[1], STDERR_FILENO);
        close(pipefd[0]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(pipefd[1]);
    *out = fdopen(pipefd[0], "r");
    return pid;
}

bool tu_wait_line(FILE *f, const char *needle, char *line, size_t len)
{
    bool found = false;
    line[0] = '\0';
    while (!found && fgets(line, (int)len, f))
        found = strstr(line, needle) != NULL;
    if (!found) {
        fclose(f);
        return false;
    }
    if (fork() == 0) {      /* keep draining its stderr so it never blocks */
        char l[512];
        while (fgets(l, sizeof l, f))
            fputs(l, stderr);
        _exit(0);
    }
    fclose(f);
    return true;
}

pid_t tu_spawn_nbd(const char *ctl_sock, const char *cap, const char *nbd_sock,
                   unsigned wait_s, FILE **out, char *err, size_t errlen)
{
    char bin[PATH_MAX], wait_arg[16];
    snprintf(bin, sizeof bin, "%s/asan/bin/moat-nbd", MOAT_BUILD_DIR);
    snprintf(wait_arg, sizeof wait_arg, "%u", wait_s);
    char *const argv[] = { bin, "--socket", (char *)ctl_sock, "--cap", (char *)cap, "--unix",
                           (char *)nbd_sock, "--wait", wait_arg, NULL };
    return tu_spawn(argv, out, err, errlen);
}

bool tu_nbd_wait_serving(FILE *f, const char *cap, char *err, size_t errlen)
{
    char line[512], want[96];
    snprintf(want, sizeof want, "serving cap %s", cap);
    if (tu_wait_line(f, want, line, sizeof line))
        return true;
    snprintf(err, errlen, "moat-nbd did not start serving (last line: %s)", line);
    return false;
}

pid_t tu_start_nbd(const char *ctl_sock, const char *cap, const char *nbd_sock, char *err,
                   size_t errlen)
{
    FILE *f;
    pid_t pid = tu_spawn_nbd(ctl_sock, cap, nbd_sock, 0, &f, err, errlen);
    if (pid < 0)
        return -1;
    return tu_nbd_wait_serving(f, cap, err, errlen) ? pid : -1;
}
