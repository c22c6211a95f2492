/* The moat binary as an operator uses it: help, errors, exit status, logs. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include "testutil.h"

struct run { int status; char *out, *err; };

static struct run last;

/* Run moat with args; the previous run's output is freed. */
static struct run moat(const char *args)
{
    free(last.out);
    free(last.err);
    const char *dir = tu_tmpdir();
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "cd %s/.. && %s/asan/bin/moat --log-dir %s/logs --control %s/ctl.sock %s >%s/out 2>%s/err",
             MOAT_BUILD_DIR, MOAT_BUILD_DIR, dir, dir, args, dir, dir);
    int rc = system(cmd);
    struct run r = { WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, NULL, NULL };
    char path[256];
    snprintf(path, sizeof path, "%s/out", dir);
    r.out = tu_slurp(path);
    snprintf(path, sizeof path, "%s/err", dir);
    r.err = tu_slurp(path);
    cr_assert(r.out && r.err, "could not read moat's output");
    last = r;
    return r;
}

static void release(void)
{
    free(last.out);
    free(last.err);
    last = (struct run){ 0, NULL, NULL };
}

TestSuite(cli, .fini = release);

#define DEMO "kernel=build/guest/demo.elf"
#define TESTDOM "kernel=build/guest/testdomain.elf"

Test(cli, help_and_version)
{
    struct run r = moat("--help");
    cr_assert_eq(r.status, 0);
    cr_assert(strstr(r.out, "Usage: moat") && strstr(r.out, "--domain"), "%s", r.out);
    const char *net[] = { "--net A.B.C.D/N", "--no-gateway", "--tap IFNAME", "--pcap PORT=FILE" };
    for (size_t i = 0; i < sizeof net / sizeof net[0]; i++)
        cr_assert(strstr(r.out, net[i]), "--help does not list %s:\n%s", net[i], r.out);
    r = moat("--version");
    cr_assert_eq(r.status, 0);
    cr_assert(strstr(r.out, "moat 0."), "%s", r.out);
}

Test(cli, usage_errors_exit_2_with_a_reason)
{
    struct run r = moat("");
    cr_assert_eq(r.status, 2);
    cr_assert(strstr(r.err, "no domain to run"), "%s", r.err);
    r = moat("-d 'name=x kernel=build/guest/demo.elf mem=3M'");
    cr_assert_eq(r.status, 2);
    cr_assert(strstr(r.err, "multiple of 2 MiB"), "%s", r.err);
    r = moat("-d 'name=x kernel=/nonexistent.elf'");
    cr_assert_eq(r.status, 2);
    cr_assert(strstr(r.err, "cannot read kernel image /nonexistent.elf"), "%s", r.err);
}

Test(cli, network_option_errors_exit_2_with_a_reason)
{
    struct run r = moat("--net 10.0.2.0/33 -d 'name=x " DEMO "'");
    cr_assert_eq(r.status, 2);
    cr_assert(strstr(r.err, "moat: --net: '10.0.2.0/33'") && strstr(r.err, "8..25"), "%s", r.err);
    r = moat("--pcap gateway -d 'name=x " DEMO "'");
    cr_assert_eq(r.status, 2);
    cr_assert(strstr(r.err, "moat: --pcap: 'gateway': give PORT=FILE"), "%s", r.err);
    r = moat("--tap 'no spaces' -d 'name=x " DEMO "'");
    cr_assert_eq(r.status, 2);
    cr_assert(strstr(r.err, "--tap 'no spaces': give a network interface name"), "%s", r.err);
    /* Applied before any domain starts: an unwritable capture stops moat. */
    r = moat("--pcap gateway=/nonexistent-dir/gw.pcap -d 'name=x " DEMO "'");
    cr_assert_eq(r.status, 2, "exit %d, stderr:\n%s", r.status, r.err);
    cr_assert(strstr(r.err, "cannot create pcap file /nonexistent-dir/gw.pcap for port gateway"),
              "%s", r.err);
}

Test(cli, network_options_set_up_the_switch, .timeout = 60)
{
    TU_REQUIRE_KVM();
    const char *dir = tu_tmpdir();
    char args[512], path[300];
    snprintf(path, sizeof path, "%s/gw.pcap", dir);
    snprintf(args, sizeof args, "--net 192.168.7.0/24 --pcap gateway=%s -d 'name=n0 " DEMO "'",
             path);
    struct run r = moat(args);
    cr_assert_eq(r.status, 0, "exit %d, stderr:\n%s", r.status, r.err);
    cr_assert(strstr(r.err, "moat: [net] switch on 192.168.7.0/24, gateway 192.168.7.2"),
              "the switch was not set up from the options:\n%s", r.err);
    cr_assert(strstr(r.err, "captured to ") && strstr(r.err, path), "%s", r.err);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "the pcap file %s was not created", path);
    unsigned char h[24];
    cr_assert_eq(fread(h, 1, sizeof h, f), sizeof h, "the pcap file has no header");
    fclose(f);
    const unsigned char magic[4] = { 0xd4, 0xc3, 0xb2, 0xa1 };  /* 0xa1b2c3d4, little-endian */
    cr_assert_eq(memcmp(h, magic, 4), 0, "pcap magic");
}

Test(cli, demo_domains_run_to_completion, .timeout = 60)
{
    TU_REQUIRE_KVM();
    struct run r = moat("--console -d 'name=demo0 " DEMO "' -d 'name=demo1 " DEMO "'");
    cr_assert_eq(r.status, 0, "exit %d, stderr:\n%s", r.status, r.err);
    for (int i = 0; i < 2; i++) {
        char want[64];
        snprintf(want, sizeof want, "moat: [demo%d] ready in ", i);
        cr_assert(strstr(r.err, want), "missing '%s' in:\n%s", want, r.err);
        snprintf(want, sizeof want, "moat: [demo%d] stopped (exit code 0)", i);
        cr_assert(strstr(r.err, want), "missing '%s' in:\n%s", want, r.err);
        snprintf(want, sizeof want, "[demo%d] demo: MSI on vector", i);
        cr_assert(strstr(r.out, want), "missing console line '%s' in:\n%s", want, r.out);
    }
}

Test(cli, until_ready_stops_serving_domains, .timeout = 60)
{
    TU_REQUIRE_KVM();
    struct run r = moat("--until-ready -d 'name=a " TESTDOM "' -d 'name=b " TESTDOM "'");
    cr_assert_eq(r.status, 0, "exit %d, stderr:\n%s", r.status, r.err);
    cr_assert(strstr(r.err, "[a] ready in") && strstr(r.err, "[b] ready in"), "%s", r.err);
    cr_assert(strstr(r.err, "2 domain(s) ended, 0 crashed"), "%s", r.err);
}

Test(cli, a_crash_exits_1_and_names_the_domain, .timeout = 60)
{
    TU_REQUIRE_KVM();
    struct run r = moat("-d 'name=ok " TESTDOM " args=\"exit_ms=100\"' "
                        "-d 'name=boom " TESTDOM " args=\"fault=divzero\"'");
    cr_assert_eq(r.status, 1, "exit %d, stderr:\n%s", r.status, r.err);
    cr_assert(strstr(r.err, "moat: [boom] error: crashed: exception: #DE"), "%s", r.err);
    cr_assert(strstr(r.err, "moat: [ok] stopped (exit code 0)"), "%s", r.err);
}

Test(cli, config_file, .timeout = 60)
{
    TU_REQUIRE_KVM();
    const char *dir = tu_tmpdir();
    char path[256];
    snprintf(path, sizeof path, "%s/moat.conf", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "# test\nwatchdog-ms 500\ndomain name=c1 " DEMO "\n");
    fclose(f);
    char args[300];
    snprintf(args, sizeof args, "-c %s", path);
    struct run r = moat(args);
    cr_assert_eq(r.status, 0, "exit %d, stderr:\n%s", r.status, r.err);
    cr_assert(strstr(r.err, "[c1] stopped (exit code 0)"), "%s", r.err);
}
