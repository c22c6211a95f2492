/*
 * bench_net — TCP through a NIC domain, beside the same lwIP app with the
 * same NIC driver in its own process, in the same run (alternating rounds):
 *   isolated:   client (Linux TCP, in a network namespace) → TAP → moat's
 *               switch → virtio-net model → virtio-net driver domain (KVM)
 *               → Nic session → moatnet (lwIP) → moat-httpd (a process);
 *   in-process: client → TAP → peer_httpd's own switch → the same model →
 *               the same driver's sources in that process → moatnet → the
 *               same server code (harness/bench/peer_httpd.c).
 * Figures: a 64 MiB download (Mbit/s) and small GETs (128 bytes, four
 * clients, a connection per request: requests/s), and the CPU time every
 * process involved spent per MiB and per request. Both servers run with
 * per-request logging off.
 *
 * Needs root (TAP devices, network namespaces): without it, SKIPPED and
 * no figures.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "control.h"
#include "log.h"
#include "netback.h"
#include "report.h"
#include "supervisor.h"
#include "testutil.h"

#define ROUNDS      5u
#define BULK_BYTES  (64u << 20)
#define GETS        800u            /* per round, over CLIENTS */
#define CLIENTS     4u
#define SERVER_IP   "10.0.2.15"
#define CLIENT_IP   "10.0.2.100/24"

static char www[PATH_MAX];

static double now_s(void) { return bench_now_s(); }

static _Noreturn void die(const char *what, const char *why)
{
    bench_die("bench_net", what, why);
}

static int sh(const char *cmd)
{
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* CPU seconds a child process has used so far (/proc/PID/stat). */
static double child_cpu_s(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f || !fgets(buf, sizeof buf, f))
        die("cpu", "cannot read a server's /proc stat");
    fclose(f);
    const char *p = strrchr(buf, ')');
    unsigned long ut = 0, st = 0;
    /* fields after ")": state(3) ... utime(14) stime(15) */
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        die("cpu", "cannot parse a server's /proc stat");
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* A namespace with the TAP interface tap in it, addressed CLIENT_IP. */
static int make_ns(const char *ns, const char *tap)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "ip netns add %s && ip link set %s netns %s && "
             "ip netns exec %s ip addr add " CLIENT_IP " dev %s && "
             "ip netns exec %s ip link set %s up", ns, tap, ns, ns, tap, ns, tap);
    if (sh(cmd) != 0)
        die(ns, "could not move the TAP interface into a namespace");
    char path[128];
    snprintf(path, sizeof path, "/run/netns/%s", ns);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        die(path, strerror(errno));
    return fd;
}

static _Thread_local const char *side_name = "?";

static int connect_server(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(80) };
    inet_pton(AF_INET, SERVER_IP, &a.sin_addr);
    struct timeval tv = { .tv_sec = 10 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        fprintf(stderr, "bench_net: %s: connect to " SERVER_IP ": %s\n", side_name,
                strerror(errno));
        exit(1);
    }
    return fd;
}

/* GET path as an HTTP client does: read the head, then Content-Length
 * bytes, then close (first: the server waits for that). Returns the body
 * bytes. */
static uint64_t get(const char *path)
{
    int fd = connect_server();
    static _Thread_local char buf[65536];
    int n = snprintf(buf, sizeof buf, "GET %s HTTP/1.1\r\nHost: bench\r\n\r\n", path);
    if (send(fd, buf, (size_t)n, MSG_NOSIGNAL) != n)
        die("send", strerror(errno));
    size_t have = 0;
    char *end = NULL;
    while (!end) {
        ssize_t r = recv(fd, buf + have, sizeof buf - 1 - have, 0);
        if (r <= 0)
            die("receive", r ? strerror(errno) : "the server closed before its head");
        have += (size_t)r;
        buf[have] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    const char *cl = strstr(buf, "Content-Length: ");
    if (!cl || cl > end)
        die("receive", "a reply without Content-Length");
    uint64_t want = strtoull(cl + 16, NULL, 10), got = have - (size_t)(end + 4 - buf);
    while (got < want) {
        ssize_t r = recv(fd, buf, sizeof buf, 0);
        if (r <= 0)
            die("receive", r ? strerror(errno) : "the body came back short");
        got += (uint64_t)r;
    }
    close(fd);
    return got;
}

struct job {
    const char *side;
    int ns_fd;
    unsigned gets;              /* 0: one bulk download */
    uint64_t bytes;
};

static void *client(void *arg)
{
    struct job *j = arg;
    side_name = j->side;
    for (unsigned i = 0; i < j->gets; i++)
        j->bytes += get("/small.txt");
    return NULL;
}

static void *measure(void *arg)
{
    struct job *j = arg;
    side_name = j->side;
    if (setns(j->ns_fd, CLONE_NEWNET) != 0)
        die("setns", strerror(errno));
    if (!j->gets) {
        j->bytes = get("/bulk.bin");
        return NULL;
    }
    pthread_t t[CLIENTS];       /* they inherit this thread's namespace */
    struct job cj[CLIENTS];
    for (unsigned i = 0; i < CLIENTS; i++) {
        cj[i] = (struct job){ .side = j->side, .gets = j->gets / CLIENTS };
        pthread_create(&t[i], NULL, client, &cj[i]);
    }
    for (unsigned i = 0; i < CLIENTS; i++) {
        pthread_join(t[i], NULL);
        j->bytes += cj[i].bytes;
    }
    return NULL;
}

struct side {
    const char *what;
    int ns_fd;
    pid_t server;
    double bulk[ROUNDS], rps[ROUNDS];
    double cpu_bulk, cpu_gets;  /* summed over rounds, every process */
};

/* One timed job on side s; returns seconds, adds the CPU it took. */
static double run_job(struct side *s, unsigned gets, double *cpu)
{
    struct job j = { .side = s->what, .ns_fd = s->ns_fd, .gets = gets };
    struct bench_cpu c0 = bench_cpu_now();
    double k0 = child_cpu_s(s->server), t0 = now_s();
    pthread_t t;
    pthread_create(&t, NULL, measure, &j);
    pthread_join(t, NULL);
    double dt = now_s() - t0;
    *cpu += bench_cpu_now().cpu_s - c0.cpu_s + child_cpu_s(s->server) - k0;
    if (!gets && j.bytes < BULK_BYTES)
        die(s->what, "the bulk download came back short");
    return dt;
}

static pid_t spawn_server(char *const argv[], const char *ready)
{
    FILE *f;
    char err[256], line[512];
    pid_t pid = tu_spawn(argv, &f, err, sizeof err);
    if (pid < 0)
        die(argv[0], err);
    if (!tu_wait_line(f, ready, line, sizeof line))
        die(argv[0], line[0] ? line : "exited before serving");
    return pid;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: bench_net RESULT.json\n");
        return 2;
    }
    if (geteuid() != 0 || sh("command -v ip >/dev/null") != 0) {
        fprintf(stderr, "bench_net: SKIPPED: needs root and ip (TAP devices, network "
                "namespaces); no figures written\n");
        return bench_write(argv[1], NULL, 0) ? 0 : 1;
    }
    log_set_quiet(true);
    snprintf(www, sizeof www, "%s", tu_tmpdir());
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/bulk.bin", www);
    int fd = bench_random_file(path, BULK_BYTES);
    if (fd < 0)
        die(path, strerror(errno));
    close(fd);
    snprintf(path, sizeof path, "%s/small.txt", www);
    fd = bench_random_file(path, 128);
    close(fd);

    char tap_iso[16], tap_in[16], ns_iso[32], ns_in[32];
    snprintf(tap_iso, sizeof tap_iso, "bni%d", (int)getpid() % 10000);
    snprintf(tap_in, sizeof tap_in, "bnp%d", (int)getpid() % 10000);
    snprintf(ns_iso, sizeof ns_iso, "bench-iso-%d", (int)getpid());
    snprintf(ns_in, sizeof ns_in, "bench-in-%d", (int)getpid());

    /* Isolated: moat in this process, the driver in a domain, moat-httpd. */
    static struct supervisor sup;
    static struct control ctl;
    char err[512], sock[PATH_MAX];
    struct netback_config nb;
    netback_config_default(&nb);
    snprintf(nb.tap, sizeof nb.tap, "%s", tap_iso);
    if (!netback_setup(&nb, err, sizeof err) ||
        !tu_moat_start(&sup, &ctl, NULL, sock, sizeof sock, err, sizeof err))
        die("moat", err);
    bench_boot_domain(&sup, "name=bnet0 kernel=" MOAT_BUILD_DIR "/guest/vnet.elf mem=64M dma=16M "
                      "dev=virtio-net:mac=52-54-00-be-05-02 args=\"name=nic0\"");
    char httpd[PATH_MAX], peer[PATH_MAX];
    snprintf(httpd, sizeof httpd, "%s/bin/moat-httpd", MOAT_BUILD_DIR);
    snprintf(peer, sizeof peer, "%s/host/bench/peer_httpd", MOAT_BUILD_DIR);
    char *const iso_argv[] = { httpd, "--socket", sock, "--root", www, "--wait", "10",
                               "--quiet", "bnet0.nic0", NULL };
    struct side iso = { .what = "isolated" }, in = { .what = "in-process" };
    iso.server = spawn_server(iso_argv, "moat-httpd: serving");
    iso.ns_fd = make_ns(ns_iso, tap_iso);

    /* In-process: peer_httpd, its own switch on its own TAP. */
    char *const in_argv[] = { peer, "--tap", tap_in, "--root", www, NULL };
    in.server = spawn_server(in_argv, "peer_httpd: serving");
    in.ns_fd = make_ns(ns_in, tap_in);

    struct side *sides[2] = { &in, &iso };
    double warm = 0;
    for (int k = 0; k < 2; k++) {       /* warm up: ARP, caches */
        run_job(sides[k], 0, &warm);
        run_job(sides[k], GETS / 4, &warm);
    }
    double ratio_bulk[ROUNDS], ratio_rps[ROUNDS];
    for (unsigned r = 0; r < ROUNDS; r++) {
        for (int k = 0; k < 2; k++) {
            struct side *s = sides[(r + (unsigned)k) % 2];     /* alternate who goes first */
            s->bulk[r] = (double)BULK_BYTES * 8 / 1e6 / run_job(s, 0, &s->cpu_bulk);
            s->rps[r] = GETS / run_job(s, GETS, &s->cpu_gets);
        }
        ratio_bulk[r] = iso.bulk[r] / in.bulk[r];
        ratio_rps[r] = iso.rps[r] / in.rps[r];
        fprintf(stderr, "bench_net: round %u: 64 MiB download %.0f vs %.0f Mbit/s (%.2f); small "
                "GETs %.0f vs %.0f /s (%.2f)\n", r + 1, iso.bulk[r], in.bulk[r], ratio_bulk[r],
                iso.rps[r], in.rps[r], ratio_rps[r]);
    }
    kill(iso.server, SIGTERM);
    kill(in.server, SIGTERM);
    waitpid(iso.server, NULL, 0);
    waitpid(in.server, NULL, 0);
    close(iso.ns_fd);
    close(in.ns_fd);
    snprintf(path, sizeof path, "ip netns del %s; ip netns del %s", ns_iso, ns_in);
    sh(path);
    tu_moat_stop(&sup, &ctl);
    netback_shutdown();

    struct bench_spread rb = bench_spread(ratio_bulk, ROUNDS), rr = bench_spread(ratio_rps, ROUNDS);
    struct bench_spread ib = bench_spread(iso.bulk, ROUNDS), ir = bench_spread(iso.rps, ROUNDS);
    const double mib = (double)BULK_BYTES / (1 << 20) * ROUNDS, reqs = (double)GETS * ROUNDS;
    fprintf(stderr, "bench_net: 64 MiB download: isolated / in-process median %.2f (range "
            "%.2f-%.2f); CPU per MiB over every process: isolated %.2f ms, in-process %.2f ms\n",
            rb.median, rb.lo, rb.hi, iso.cpu_bulk * 1e3 / mib, in.cpu_bulk * 1e3 / mib);
    fprintf(stderr, "bench_net: small GETs: isolated / in-process median %.2f (range %.2f-%.2f); "
            "CPU per request over every process: isolated %.0f us, in-process %.0f us\n",
            rr.median, rr.lo, rr.hi, iso.cpu_gets * 1e6 / reqs, in.cpu_gets * 1e6 / reqs);
    struct bench_record rec[] = {
        { "tcp_download_mbit_per_s", ib.median, "Mbit/s", "inproc_tcp_download_mbit_per_s",
          ib.median / rb.median },
        { "http_small_get_per_s", ir.median, "req/s", "inproc_http_small_get_per_s",
          ir.median / rr.median },
        { "tcp_download_cpu_ms_per_mib", iso.cpu_bulk * 1e3 / mib, "ms",
          "inproc_tcp_download_cpu_ms_per_mib", in.cpu_bulk * 1e3 / mib },
        { "http_small_get_cpu_us", iso.cpu_gets * 1e6 / reqs, "us", "inproc_http_small_get_cpu_us",
          in.cpu_gets * 1e6 / reqs },
    };
    return bench_write(argv[1], rec, sizeof rec / sizeof rec[0]) ? 0 : 1;
}
