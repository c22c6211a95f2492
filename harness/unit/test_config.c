/* Operator configuration and the moat command line: accepted forms and a
 * clear refusal for each bad one. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "config.h"
#include "options.h"

static char err[512];

Test(config, sizes)
{
    uint64_t v;
    cr_assert(config_parse_size("16M", &v));
    cr_assert_eq(v, 16ull << 20);
    cr_assert(config_parse_size("1G", &v));
    cr_assert_eq(v, 1ull << 30);
    cr_assert(config_parse_size("4096k", &v));
    cr_assert_eq(v, 4096ull << 10);
    cr_assert(config_parse_size("123", &v));
    cr_assert_eq(v, 123);
    cr_assert_not(config_parse_size("", &v));
    cr_assert_not(config_parse_size("-1M", &v));
    cr_assert_not(config_parse_size("16MB", &v));
    cr_assert_not(config_parse_size("99999999999999999999G", &v));
    cr_assert_not(config_parse_size("17179869184G", &v), "overflowing shift accepted");
}

Test(config, full_domain_spec)
{
    struct domain_config d;
    cr_assert(config_parse_domain("name=nvme0 kernel=/x/nvme.elf mem=32M "
                                  "args=\"queues=4 depth=64\" console=on watchdog-ms=250 "
                                  "boot-timeout-ms=900", &d, err, sizeof err), "%s", err);
    cr_assert_str_eq(d.name, "nvme0");
    cr_assert_str_eq(d.kernel, "/x/nvme.elf");
    cr_assert_eq(d.ram_size, 32ull << 20);
    cr_assert_str_eq(d.cmdline, "queues=4 depth=64");
    cr_assert(d.console_echo);
    cr_assert_eq(d.watchdog_ms, 250);
    cr_assert_eq(d.boot_timeout_ms, 900);
}

Test(config, devices_windows_and_policy)
{
    struct domain_config d;
    cr_assert(config_parse_domain("name=n kernel=k dev=testdev,testdev dma=8M dma-windows=3 "
                                  "policy=audit", &d, err, sizeof err), "%s", err);
    cr_assert_eq(d.n_devices, 2);
    cr_assert_str_eq(d.devices[1], "testdev");
    cr_assert_eq(d.dma_window_size, 8ull << 20);
    cr_assert_eq(d.dma_windows, 3);
    cr_assert(d.policy_audit);
    cr_assert(config_parse_domain("name=n kernel=k dma=4M", &d, err, sizeof err), "%s", err);
    cr_assert_eq(d.dma_windows, 1, "dma= alone gives one window");
    cr_assert_not(d.policy_audit, "fail-stop is the default policy");
    cr_assert(config_parse_domain("name=n kernel=k dma-windows=2", &d, err, sizeof err), "%s", err);
    cr_assert_eq(d.dma_window_size, 2ull << 20, "dma-windows alone gives 2 MiB windows");
}

Test(config, cpu_pins_only_when_given)
{
    struct domain_config d;
    cr_assert(config_parse_domain("name=n kernel=k", &d, err, sizeof err), "%s", err);
    cr_assert_not(d.pin_cpu, "a domain without cpu= must not be pinned (to CPU 0 or any)");
    cr_assert(config_parse_domain("name=n kernel=k cpu=1", &d, err, sizeof err), "%s", err);
    cr_assert(d.pin_cpu);
    cr_assert_eq(d.cpu, 1);
    cr_assert(config_parse_domain("name=n kernel=k cpu=0", &d, err, sizeof err), "%s", err);
    cr_assert(d.pin_cpu && d.cpu == 0, "cpu=0 is a CPU like any other");
}

Test(config, device_options_follow_the_kind)
{
    struct domain_config d;
    cr_assert(config_parse_domain("name=n kernel=k dev=testdev,testdev:a=1:b", &d, err, sizeof err),
              "%s", err);
    cr_assert_eq(d.n_devices, 2);
    cr_assert_str_eq(d.devices[0], "testdev");
    cr_assert_str_eq(d.device_opts[0], "", "a kind without options has empty options");
    cr_assert_str_eq(d.devices[1], "testdev");
    cr_assert_str_eq(d.device_opts[1], "a=1:b");
    cr_assert_not(config_parse_domain("name=n kernel=k dev=nosuch:x=1", &d, err, sizeof err));
    cr_assert(strstr(err, "unknown device kind 'nosuch'"), "error: %s", err);
    cr_assert_not(config_parse_domain("name=n kernel=k dev=:x=1", &d, err, sizeof err),
                  "options without a kind were accepted");
}

Test(config, defaults)
{
    struct domain_config d;
    cr_assert(config_parse_domain("  name=a   kernel=k  ", &d, err, sizeof err), "%s", err);
    cr_assert_eq(d.ram_size, MOAT_DEFAULT_RAM);
    cr_assert_eq(d.watchdog_ms, 0, "0 means the run-wide default");
    cr_assert_not(d.console_echo);
    cr_assert_str_eq(d.cmdline, "");
}

#define REFUSED(spec, needle)                                                   \
    do {                                                                        \
        struct domain_config d_;                                                \
        cr_assert_not(config_parse_domain(spec, &d_, err, sizeof err),          \
                      "accepted bad spec: %s", spec);                           \
        cr_assert(strstr(err, needle), "spec '%s': message '%s' lacks '%s'",    \
                  spec, err, needle);                                           \
    } while (0)

Test(config, refusals_name_the_problem)
{
    REFUSED("kernel=k", "needs name=");
    REFUSED("name=a", "needs kernel=");
    REFUSED("name=a/b kernel=k", "must be");
    REFUSED("name=0123456789012345678901234567890123 kernel=k", "must be");
    REFUSED("name=a kernel=k mem=3M", "multiple of 2 MiB");
    REFUSED("name=a kernel=k mem=2G", "multiple of 2 MiB");
    REFUSED("name=a kernel=k mem=17M", "multiple of 2 MiB");
    REFUSED("name=a kernel=k console=yes", "console=on");
    REFUSED("name=a kernel=k watchdog-ms=10", "watchdog-ms");
    REFUSED("name=a kernel=k boot-timeout-ms=0", "boot-timeout-ms");
    REFUSED("name=a kernel=k colour=red", "unknown domain option 'colour'");
    REFUSED("name=a kernel=k args=\"open", "unterminated quote");
    REFUSED("name=a kernel", "expected key=value");
    REFUSED("name=a kernel=k dev=floppy", "unknown device kind 'floppy'");
    REFUSED("name=a kernel=k dev=testdev,,testdev", "separated by commas");
    REFUSED("name=a kernel=k dev=testdev,testdev,testdev,testdev,testdev,testdev,testdev,testdev",
            "at most 7 devices");
    REFUSED("name=a kernel=k dma=3M", "multiple of 2 MiB");
    REFUSED("name=a kernel=k dma=512M", "multiple of 2 MiB");
    REFUSED("name=a kernel=k dma-windows=9", "dma-windows=9");
    REFUSED("name=a kernel=k policy=lenient", "policy=failstop");
    REFUSED("name=a kernel=k cpu=first", "cpu=first: give a CPU number");
    REFUSED("name=a kernel=k cpu=-1", "cpu=-1: give a CPU number");
    REFUSED("name=a kernel=k cpu=99999", "cpu=99999: give a CPU number");
    REFUSED("name=a kernel=k restart=sometimes", "restart=on-failure");
    REFUSED("name=a kernel=k restarts=5", "N/SECONDSs");
    REFUSED("name=a kernel=k restarts=0/30s", "N from 1 to 64");
    REFUSED("name=a kernel=k restarts=65/30s", "N from 1 to 64");
    REFUSED("name=a kernel=k restarts=5/30", "N/SECONDSs");
    REFUSED("name=a kernel=k restarts=5/0s", "N/SECONDSs");
    REFUSED("name=a kernel=k restarts=5/xs", "N/SECONDSs");
}

Test(config, restart_policy_and_budget)
{
    struct domain_config d;
    cr_assert(config_parse_domain("name=a kernel=k", &d, err, sizeof err), "%s", err);
    cr_assert_eq(d.restart, RESTART_DEFAULT, "no restart= leaves the per-kind default");
    cr_assert_eq(d.restart_max, RESTART_DEFAULT_MAX);
    cr_assert_eq(d.restart_window_ms, RESTART_DEFAULT_WINDOW_MS);
    cr_assert(config_parse_domain("name=a kernel=k restart=always restarts=3/10s", &d, err,
                                  sizeof err), "%s", err);
    cr_assert_eq(d.restart, RESTART_ALWAYS);
    cr_assert_eq(d.restart_max, 3);
    cr_assert_eq(d.restart_window_ms, 10000);
    cr_assert(config_parse_domain("name=a kernel=k restart=never restarts=64/250ms", &d, err,
                                  sizeof err), "%s", err);
    cr_assert_eq(d.restart, RESTART_NEVER);
    cr_assert_eq(d.restart_max, 64);
    cr_assert_eq(d.restart_window_ms, 250);
    cr_assert(config_parse_domain("name=a kernel=k restart=on-failure", &d, err, sizeof err));
    cr_assert_eq(d.restart, RESTART_ON_FAILURE);
}

/* ---- restart policy (pure) ---------------------------------------------------------- */

#define MS 1000000ull

Test(restart_policy, on_failure_restarts_crashes_not_exits)
{
    struct restart_budget b;
    restart_budget_init(&b, 5, 30000);
    uint64_t delay;
    cr_assert_eq(restart_decide(RESTART_ON_FAILURE, false, &b, 1000 * MS, &delay),
                 RESTART_STAY_DOWN, "an orderly exit is not a failure");
    cr_assert_eq(restart_decide(RESTART_ON_FAILURE, true, &b, 1000 * MS, &delay),
                 RESTART_AFTER_DELAY);
    cr_assert_eq(delay, 0, "the first restart in a quiet window is immediate");
    cr_assert_eq(restart_decide(RESTART_NEVER, true, &b, 1000 * MS, &delay), RESTART_STAY_DOWN);
    cr_assert_eq(restart_decide(RESTART_ALWAYS, false, &b, 1000 * MS, &delay),
                 RESTART_AFTER_DELAY, "always restarts after an exit too");
}

Test(restart_policy, backoff_doubles_then_the_breaker_opens)
{
    struct restart_budget b;
    restart_budget_init(&b, 5, 30000);
    uint64_t delay, want[] = { 0, 10, 20, 40, 80 };
    for (unsigned i = 0; i < 5; i++) {
        cr_assert_eq(restart_decide(RESTART_ON_FAILURE, true, &b, (1000 + i) * MS, &delay),
                     RESTART_AFTER_DELAY, "restart %u of 5", i + 1);
        cr_assert_eq(delay, want[i] * MS, "restart %u waits %llu ms, want %llu", i + 1,
                     (unsigned long long)(delay / MS), (unsigned long long)want[i]);
    }
    cr_assert_eq(restart_budget_used(&b, 1010 * MS), 5);
    cr_assert_eq(restart_decide(RESTART_ON_FAILURE, true, &b, 1010 * MS, &delay),
                 RESTART_BREAKER_OPEN, "a sixth crash within 30 s opens the breaker");
    restart_budget_clear(&b);
    cr_assert_eq(restart_decide(RESTART_ON_FAILURE, true, &b, 1011 * MS, &delay),
                 RESTART_AFTER_DELAY, "a cleared budget restarts again");
    cr_assert_eq(delay, 0);
}

Test(restart_policy, restarts_leave_the_window_and_the_backoff_caps)
{
    struct restart_budget b;
    restart_budget_init(&b, 64, 1000);
    uint64_t delay = 0;
    for (unsigned i = 0; i < 20; i++)
        cr_assert_eq(restart_decide(RESTART_ALWAYS, true, &b, 5000 * MS + i, &delay),
                     RESTART_AFTER_DELAY);
    cr_assert_eq(delay, RESTART_BACKOFF_MAX_MS * MS, "backoff capped at %u ms, got %llu ms",
                 RESTART_BACKOFF_MAX_MS, (unsigned long long)(delay / MS));
    cr_assert_eq(restart_budget_used(&b, 5999 * MS), 20);
    cr_assert_eq(restart_budget_used(&b, 6001 * MS), 0, "a restart older than the window counts");
    cr_assert_eq(restart_decide(RESTART_ALWAYS, true, &b, 6001 * MS, &delay), RESTART_AFTER_DELAY);
    cr_assert_eq(delay, 0, "a quiet window starts the backoff over");
}

Test(restart_policy, names_round_trip)
{
    for (unsigned p = RESTART_NEVER; p <= RESTART_ALWAYS; p++) {
        enum restart_policy q;
        cr_assert(restart_policy_parse(restart_policy_name((enum restart_policy)p), &q));
        cr_assert_eq(q, p);
    }
    enum restart_policy q;
    cr_assert_not(restart_policy_parse("default", &q), "'default' is not a spec value");
}

Test(config, duplicate_names_and_limit)
{
    struct moat_config c;
    config_defaults(&c);
    cr_assert(config_add_domain(&c, "name=a kernel=k", err, sizeof err));
    cr_assert_not(config_add_domain(&c, "name=a kernel=k2", err, sizeof err));
    cr_assert(strstr(err, "unique"), "%s", err);
    for (int i = 1; i < MOAT_DOMAINS_MAX; i++) {
        char spec[64];
        snprintf(spec, sizeof spec, "name=d%d kernel=k", i);
        cr_assert(config_add_domain(&c, spec, err, sizeof err), "%s", err);
    }
    cr_assert_not(config_add_domain(&c, "name=extra kernel=k", err, sizeof err));
    cr_assert(strstr(err, "too many"), "%s", err);
}

static const char *write_tmp(const char *text)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/moat-cfg-XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

Test(config, file_with_comments_and_settings)
{
    struct moat_config c;
    config_defaults(&c);
    const char *p = write_tmp("# two domains\n"
                              "log-dir /tmp/somewhere\n"
                              "watchdog-ms 300\n"
                              "\n"
                              "domain name=a kernel=k   # trailing comment\n"
                              "domain name=b kernel=k args=\"x=1 #notacomment\"\n");
    cr_assert(config_load_file(&c, p, err, sizeof err), "%s", err);
    cr_assert_eq(c.n_domains, 2);
    cr_assert_str_eq(c.log_dir, "/tmp/somewhere");
    cr_assert_eq(c.watchdog_ms, 300);
    cr_assert_str_eq(c.domains[1].cmdline, "x=1 #notacomment");
    unlink(p);
}

Test(config, file_errors_name_the_line)
{
    struct moat_config c;
    config_defaults(&c);
    const char *p = write_tmp("domain name=a kernel=k\nbogus directive\n");
    cr_assert_not(config_load_file(&c, p, err, sizeof err));
    cr_assert(strstr(err, ":2: unknown directive 'bogus'"), "%s", err);
    unlink(p);
    cr_assert_not(config_load_file(&c, "/nonexistent/moat.conf", err, sizeof err));
    cr_assert(strstr(err, "cannot read config"), "%s", err);
}

static struct netback_config net;

static enum options_result parse(int argc, char **argv, struct moat_config *c, char *out,
                                 size_t outlen)
{
    FILE *f = fmemopen(out, outlen, "w");
    enum options_result r = options_parse(argc, argv, c, &net, f, err, sizeof err);
    fclose(f);
    return r;
}

Test(options, help_lists_every_option)
{
    static struct moat_config c;
    static char out[16384];
    char *argv[] = { "moat", "--help", NULL };
    cr_assert_eq(parse(2, argv, &c, out, sizeof out), OPTIONS_EXIT_OK);
    const char *want[] = { "--domain", "--config", "--console", "--log-dir", "--watchdog-ms",
                           "--boot-timeout-ms", "--until-ready", "--timeout", "--quiet",
                           "--version", "Exit status", "Example", "dev=KIND", "dma=SIZE",
                           "dma-windows=N", "cpu=N", "policy=failstop", "restart=never|on-failure|always",
                           "restarts=N/Ts", "--net A.B.C.D/N",
                           "--no-gateway", "--tap IFNAME", "--pcap PORT=FILE",
                           "ip tuntap add dev IFNAME mode tap user $USER" };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_assert(strstr(out, want[i]), "--help does not mention %s", want[i]);
}

Test(options, parses_domains_and_flags)
{
    static struct moat_config c;
    static char out[256];
    char *argv[] = { "moat", "-d", "name=a kernel=k", "--domain", "name=b kernel=k",
                     "--console", "--until-ready", "--watchdog-ms", "200", "--timeout", "3",
                     "--log-dir", "/tmp/l", "-q", NULL };
    cr_assert_eq(parse(14, argv, &c, out, sizeof out), OPTIONS_RUN, "%s", err);
    cr_assert_eq(c.n_domains, 2);
    cr_assert(c.console && c.until_ready && c.quiet);
    cr_assert_eq(c.watchdog_ms, 200);
    cr_assert_eq(c.timeout_s, 3);
    cr_assert_str_eq(c.log_dir, "/tmp/l");
}

Test(options, errors)
{
    static struct moat_config c;
    static char out[256];
    char *none[] = { "moat", NULL };
    cr_assert_eq(parse(1, none, &c, out, sizeof out), OPTIONS_ERROR);
    cr_assert(strstr(err, "no domain to run"), "%s", err);
    char *unknown[] = { "moat", "--frobnicate", NULL };
    cr_assert_eq(parse(2, unknown, &c, out, sizeof out), OPTIONS_ERROR);
    cr_assert(strstr(err, "unknown option --frobnicate"), "%s", err);
    char *missing[] = { "moat", "-d", NULL };
    cr_assert_eq(parse(2, missing, &c, out, sizeof out), OPTIONS_ERROR);
    cr_assert(strstr(err, "needs a value"), "%s", err);
    char *badwd[] = { "moat", "-d", "name=a kernel=k", "--watchdog-ms", "5", NULL };
    cr_assert_eq(parse(5, badwd, &c, out, sizeof out), OPTIONS_ERROR);
    cr_assert(strstr(err, "--watchdog-ms"), "%s", err);
    char *stray[] = { "moat", "-d", "name=a kernel=k", "extra", NULL };
    cr_assert_eq(parse(4, stray, &c, out, sizeof out), OPTIONS_ERROR);
    cr_assert(strstr(err, "unexpected argument 'extra'"), "%s", err);
}

Test(options, network_defaults_when_not_given)
{
    static struct moat_config c;
    static char out[256];
    char *argv[] = { "moat", "-d", "name=a kernel=k", NULL };
    cr_assert_eq(parse(3, argv, &c, out, sizeof out), OPTIONS_RUN, "%s", err);
    cr_assert_eq(net.net, 0x0a000200u, "default subnet is not 10.0.2.0");
    cr_assert_eq(net.prefix, 24);
    cr_assert(!net.no_gateway && !net.tap[0] && net.n_pcap == 0);
    cr_assert_not(options_net_given(&net), "defaults reported as given");
}

Test(options, network_options)
{
    static struct moat_config c;
    static char out[256];
    char *argv[] = { "moat", "--net", "192.168.7.0/24", "--no-gateway", "--tap", "moat0",
                     "--pcap", "vnet0.net0=a.pcap", "--pcap", "gateway=gw.pcap",
                     "-d", "name=a kernel=k", NULL };
    cr_assert_eq(parse(12, argv, &c, out, sizeof out), OPTIONS_RUN, "%s", err);
    cr_assert_eq(net.net, 0xc0a80700u, "--net not applied: %#x", net.net);
    cr_assert_eq(net.prefix, 24);
    cr_assert(net.no_gateway, "--no-gateway not applied");
    cr_assert_str_eq(net.tap, "moat0");
    cr_assert_eq(net.n_pcap, 2, "--pcap is repeatable");
    cr_assert_str_eq(net.pcap[0].port, "vnet0.net0");
    cr_assert_str_eq(net.pcap[0].file, "a.pcap");
    cr_assert_str_eq(net.pcap[1].port, "gateway");
    cr_assert_str_eq(net.pcap[1].file, "gw.pcap");
    cr_assert(options_net_given(&net));
    char *only_tap[] = { "moat", "--tap", "t0", "-d", "name=a kernel=k", NULL };
    cr_assert_eq(parse(5, only_tap, &c, out, sizeof out), OPTIONS_RUN, "%s", err);
    cr_assert(options_net_given(&net) && net.n_pcap == 0 && !net.no_gateway,
              "a second parse kept options from the first");
}

Test(options, network_errors_say_what_to_give)
{
    static struct moat_config c;
    static char out[256];
    struct { const char *opt, *val, *want; } bad[] = {
        { "--net", "10.0.2.0", "A.B.C.D/N" },
        { "--net", "10.0.2.300/24", "A.B.C.D/N" },
        { "--net", "10.0.2.0/30", "8..25" },
        { "--net", "10.0.2.7/24", "host bits set" },
        { "--tap", "", "1 to 15" },
        { "--tap", "a-very-long-interface-name", "1 to 15" },
        { "--tap", "bad/name", "1 to 15" },
        { "--pcap", "nofile", "PORT=FILE" },
        { "--pcap", "=x.pcap", "PORT=FILE" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *argv[] = { "moat", (char *)bad[i].opt, (char *)bad[i].val, "-d", "name=a kernel=k",
                         NULL };
        cr_assert_eq(parse(5, argv, &c, out, sizeof out), OPTIONS_ERROR, "%s %s accepted",
                     bad[i].opt, bad[i].val);
        cr_assert(strstr(err, bad[i].opt) && strstr(err, bad[i].want),
                  "error for %s '%s' does not name the option and what to give: %s", bad[i].opt,
                  bad[i].val, err);
    }
    char *dup[] = { "moat", "--pcap", "p=a.pcap", "--pcap", "p=b.pcap", "-d", "name=a kernel=k",
                    NULL };
    cr_assert_eq(parse(7, dup, &c, out, sizeof out), OPTIONS_ERROR);
    cr_assert(strstr(err, "--pcap") && strstr(err, "already captured"), "%s", err);
    char *missing[] = { "moat", "-d", "name=a kernel=k", "--net", NULL };
    cr_assert_eq(parse(4, missing, &c, out, sizeof out), OPTIONS_ERROR);
    cr_assert(strstr(err, "--net needs a value"), "%s", err);
}
