/*
 * Applications over a Nic cap through lwIP (clients/moatnet, moat-httpd),
 * reached by real host tools: moat's TAP port is moved into a network
 * namespace of its own, where ping and curl talk to moat-httpd through the
 * Linux stack. For the virtio-net modern domain, the legacy domain with
 * 4096-entry queues and the gVNIC domain: moat-httpd takes a DHCP lease
 * from the gateway; ping answers; a 10 MiB download is sha256-identical,
 * through the namespace and through moat's host port forward (--hostfwd);
 * 50 concurrent downloads all complete; a 64 MiB download survives two
 * restarts of the NIC domain mid-transfer, sha256-identical; a client too
 * slow with its request gets 408.
 *
 * Needs root (a TAP device and a namespace), ip, ping, curl and
 * sha256sum: without them each test prints SKIPPED and why.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "control.h"
#include "netback.h"
#include "supervisor.h"
#include "testutil.h"

#define BOOT_MS 10000u

static struct supervisor sup;
static struct control ctl;
static char err[512];
static char sock[PATH_MAX];

static char ns[32], tap[16], www[PATH_MAX], out_dir[PATH_MAX];
static unsigned fwd_port;           /* 127.0.0.1:fwd_port -> the first lease, port 80 */
static pid_t httpd = -1;

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static bool have(const char *tool)
{
    return sh("command -v %s >/dev/null 2>&1", tool) == 0;
}

/* A file of n pseudo-random bytes. */
static void make_file(const char *name, size_t n)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", www, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "create %s", path);
    uint64_t x = 0x9E3779B97F4A7C15ull ^ n;
    static uint64_t buf[8192];
    for (size_t done = 0; done < n;) {
        for (size_t i = 0; i < 8192; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            buf[i] = x;
        }
        size_t k = n - done < sizeof buf ? n - done : sizeof buf;
        cr_assert_eq(fwrite(buf, 1, k, f), k);
        done += k;
    }
    fclose(f);
}

static void sha256_of(const char *path, char out[65])
{
    char cmd[PATH_MAX + 32];
    snprintf(cmd, sizeof cmd, "sha256sum '%s'", path);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    out[0] = '\0';
    cr_assert_eq(fscanf(p, "%64s", out), 1, "sha256sum %s", path);
    pclose(p);
}

static void same_file(const char *got, const char *name, const char *what)
{
    char a[65], b[65], want[PATH_MAX + 64];
    snprintf(want, sizeof want, "%s/%s", www, name);
    sha256_of(got, a);
    sha256_of(want, b);
    cr_assert_str_eq(a, b, "%s: the download of %s differs (sha256 %s, the file's %s)", what,
                     name, a, b);
}

static void start(void)
{
    TU_REQUIRE_KVM();
    if (geteuid() != 0) {
        fprintf(stderr, "SKIPPED: net_apps needs root (a TAP device and a network namespace)\n");
        cr_skip_test("needs root");
    }
    static const char *const tools[] = { "ip", "ping", "curl", "sha256sum" };
    for (size_t i = 0; i < sizeof tools / sizeof tools[0]; i++)
        if (!have(tools[i])) {
            fprintf(stderr, "SKIPPED: net_apps needs %s (scripts/install-deps.sh installs it)\n",
                    tools[i]);
            cr_skip_test("needs %s", tools[i]);
        }
    snprintf(ns, sizeof ns, "moat-test-%d", (int)getpid());
    snprintf(tap, sizeof tap, "mt%d", (int)getpid() % 100000);
    struct netback_config nb;
    netback_config_default(&nb);
    snprintf(nb.tap, sizeof nb.tap, "%s", tap);
    fwd_port = 20000u + (unsigned)getpid() % 20000u;
    char rule[64];
    snprintf(rule, sizeof rule, "tcp:127.0.0.1:%u-:80", fwd_port);
    cr_assert(netback_parse_hostfwd(rule, &nb, err, sizeof err), "%s", err);
    cr_assert(netback_setup(&nb, err, sizeof err), "netback: %s", err);
    cr_assert(tu_moat_start(&sup, &ctl, NULL, sock, sizeof sock, err, sizeof err), "%s", err);
    cr_assert_eq(sh("ip netns add %s && ip link set %s netns %s && "
                    "ip netns exec %s ip addr add 10.0.2.100/24 dev %s && "
                    "ip netns exec %s ip link set %s up && ip netns exec %s ip link set lo up",
                    ns, tap, ns, ns, tap, ns, tap, ns), 0,
                 "could not put the TAP port %s into namespace %s", tap, ns);
    snprintf(www, sizeof www, "%s/www", tu_tmpdir());
    snprintf(out_dir, sizeof out_dir, "%s/got", tu_tmpdir());
    cr_assert(mkdir(www, 0755) == 0 && mkdir(out_dir, 0755) == 0, "mkdir: %s", strerror(errno));
    make_file("index.html", 100);
    make_file("small.bin", 1 << 20);
    make_file("big.bin", 10 << 20);
    make_file("huge.bin", 64 << 20);
}

static void finish(void)
{
    if (httpd > 0) {
        kill(httpd, SIGTERM);
        waitpid(httpd, NULL, 0);
        httpd = -1;
    }
    tu_moat_stop(&sup, &ctl);
    netback_shutdown();
    if (ns[0])
        sh("ip netns del %s 2>/dev/null", ns);
}

/* Boot the NIC domain, start moat-httpd on its cap; returns its address. */
static struct domain *serve(const char *image, const char *dev, char ip[16])
{
    char spec[512];
    snprintf(spec, sizeof spec, "name=net0 kernel=%s mem=64M dma=16M dev=%s args=\"name=nic0\"",
             tu_guest(image), dev);
    struct domain *d = tu_boot(&sup, spec, BOOT_MS, err, sizeof err);
    cr_assert_not_null(d, "boot: %s", err);
    char bin[PATH_MAX];
    snprintf(bin, sizeof bin, "%s/asan/bin/moat-httpd", MOAT_BUILD_DIR);
    char *const argv[] = { bin, "--socket", sock, "--root", www, "--wait", "10",
                           "--timeout-ms", "1000", "net0.nic0", NULL };
    FILE *f;
    httpd = tu_spawn(argv, &f, err, sizeof err);
    cr_assert_gt(httpd, 0, "%s", err);
    char line[512];
    cr_assert(tu_wait_line(f, "moat-httpd: serving", line, sizeof line),
              "moat-httpd did not start: %s", line);
    cr_assert(strstr(line, "DHCP lease"), "not a DHCP address: %s", line);
    const char *at = strstr(line, "http://");
    cr_assert(at && sscanf(at, "http://%15[0-9.]", ip) == 1, "no address in: %s", line);
    cr_assert(!strncmp(ip, "10.0.2.", 7) && atoi(ip + 7) >= 15,
              "%s is not from the gateway's pool (10.0.2.15 and up)", ip);
    return d;
}

static void curl_ok(const char *ip, const char *name, const char *out, const char *extra)
{
    int rc = sh("ip netns exec %s curl -sS -m 120 %s -o '%s' http://%s/%s", ns, extra, out, ip,
                name);
    cr_assert_eq(rc, 0, "curl of %s from %s exited %d", name, ip, rc);
}

static off_t size_of(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : 0;
}

/* Restart d once the download into path has passed `past` bytes. */
static void restart_past(struct domain *d, const char *path, off_t past, pid_t curl)
{
    for (int i = 0; i < 6000 && size_of(path) < past; i++) {
        cr_assert_eq(waitpid(curl, NULL, WNOHANG), 0, "curl ended at %lld bytes, before the "
                     "restart", (long long)size_of(path));
        usleep(10000);          /* watching a file grow: nothing to wait on */
    }
    cr_assert_geq(size_of(path), past, "the download stalled at %lld bytes",
                  (long long)size_of(path));
    cr_assert(domain_restart(d, err, sizeof err), "restart: %s", err);
}

static void apps_over(const char *image, const char *dev)
{
    char ip[16], out[PATH_MAX + 32];
    struct domain *d = serve(image, dev, ip);

    cr_assert_eq(sh("ip netns exec %s ping -c 3 -W 2 %s >/dev/null", ns, ip), 0,
                 "ping %s from the namespace got no replies", ip);

    snprintf(out, sizeof out, "%s/big", out_dir);
    curl_ok(ip, "big.bin", out, "");
    same_file(out, "big.bin", "10 MiB through TAP");

    /* The same from the host itself, through moat's host port forward
     * (no namespace, no root needed for this part). */
    snprintf(out, sizeof out, "%s/big-fwd", out_dir);
    int rc = sh("curl -sS -m 120 -o '%s' http://127.0.0.1:%u/big.bin", out, fwd_port);
    cr_assert_eq(rc, 0, "curl through the host forward 127.0.0.1:%u exited %d", fwd_port, rc);
    same_file(out, "big.bin", "10 MiB through the host forward");

    cr_assert_eq(sh("cd '%s' && for i in $(seq 50); do ip netns exec %s curl -sS -m 120 "
                    "-o c$i http://%s/small.bin & done; wait", out_dir, ns, ip), 0);
    for (int i = 1; i <= 50; i++) {
        snprintf(out, sizeof out, "%s/c%d", out_dir, i);
        same_file(out, "small.bin", "one of 50 concurrent downloads");
    }

    /* 64 MiB at 16 MB/s: about 4 s, with two restarts of the NIC domain. */
    snprintf(out, sizeof out, "%s/huge", out_dir);
    pid_t curl = fork();
    cr_assert_geq(curl, 0);
    if (curl == 0) {
        char url[64];
        snprintf(url, sizeof url, "http://%s/huge.bin", ip);
        execlp("ip", "ip", "netns", "exec", ns, "curl", "-sS", "-m", "120", "--limit-rate", "16M",
               "-o", out, url, (char *)NULL);
        _exit(127);
    }
    restart_past(d, out, 8 << 20, curl);
    restart_past(d, out, 32 << 20, curl);
    int st;
    cr_assert_eq(waitpid(curl, &st, 0), curl);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the 64 MiB curl failed (status %#x)", st);
    same_file(out, "huge.bin", "64 MiB across two NIC domain restarts");
    cr_assert_geq(d->incarnation, 3, "the domain was not restarted twice (incarnation %u)",
                  d->incarnation);

    /* A client that starts a request and stalls gets 408 after --timeout-ms. */
    FILE *p;
    char cmd[512], reply[256] = "";
    snprintf(cmd, sizeof cmd, "ip netns exec %s bash -c 'exec 3<>/dev/tcp/%s/80; "
             "printf \"GET / HT\" >&3; cat <&3'", ns, ip);
    p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t n = fread(reply, 1, sizeof reply - 1, p);
    reply[n] = '\0';
    pclose(p);
    cr_assert(strstr(reply, "408 Request Timeout"), "a stalled request got: %s", reply);
}

/* moat-echo on a virtio-net domain: 4 MiB sent from the namespace come
 * back identical (TCP carries data both ways through the domain). */
Test(net_apps, echo_over_virtio_net, .init = start, .fini = finish, .timeout = 120)
{
    struct domain *d = tu_boot(&sup, "name=echo0 kernel=" MOAT_BUILD_DIR "/guest/vnet.elf "
                               "mem=64M dma=16M dev=virtio-net args=\"name=nic0\"", BOOT_MS, err,
                               sizeof err);
    cr_assert_not_null(d, "boot: %s", err);
    char bin[PATH_MAX];
    snprintf(bin, sizeof bin, "%s/asan/bin/moat-echo", MOAT_BUILD_DIR);
    char *const argv[] = { bin, "--socket", sock, "--wait", "10", "echo0.nic0", NULL };
    FILE *f;
    httpd = tu_spawn(argv, &f, err, sizeof err);
    cr_assert_gt(httpd, 0, "%s", err);
    char line[512], ip[16];
    cr_assert(tu_wait_line(f, "moat-echo: echoing on", line, sizeof line),
              "moat-echo did not start: %s", line);
    cr_assert(sscanf(strstr(line, "on ") + 3, "%15[0-9.]", ip) == 1, "no address in: %s", line);
    make_file("echo.bin", 4 << 20);
    char out[PATH_MAX + 32];
    snprintf(out, sizeof out, "%s/echo", out_dir);
    int rc = sh("ip netns exec %s bash -c 'exec 3<>/dev/tcp/%s/7; cat %s/echo.bin >&3 & "
                "head -c %d <&3 >%s; wait'", ns, ip, www, 4 << 20, out);
    cr_assert_eq(rc, 0, "the echo exchange exited %d", rc);
    same_file(out, "echo.bin", "4 MiB through moat-echo");
}

Test(net_apps, httpd_over_virtio_net_modern, .init = start, .fini = finish, .timeout = 300)
{
    apps_over("vnet", "virtio-net");
}

Test(net_apps, httpd_over_virtio_net_legacy_4096, .init = start, .fini = finish, .timeout = 300)
{
    apps_over("vnet", "virtio-net:legacy=1:qsize=4096");
}

Test(net_apps, httpd_over_gvnic, .init = start, .fini = finish, .timeout = 300)
{
    apps_over("gvnic", "gvnic");
}
