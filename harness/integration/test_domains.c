/*
 * Real domains under KVM: several boot at once; each kind of fault is
 * reported with the right cause while a healthy neighbour keeps running;
 * interrupts reach ring-3 code exactly once each.
 */
#include <criterion/criterion.h>
#include <string.h>
#include "testutil.h"

#define BOOT_MS  10000u
#define READY    DOMAIN_STATE_BIT(DOMAIN_READY)
#define CRASHED  DOMAIN_STATE_BIT(DOMAIN_CRASHED)
#define STOPPED  DOMAIN_STATE_BIT(DOMAIN_STOPPED)

static struct supervisor sup;
static char err[512];

static void start(unsigned watchdog_ms, unsigned boot_timeout_ms)
{
    TU_REQUIRE_KVM();
    cr_assert(tu_supervisor(&sup, watchdog_ms, boot_timeout_ms, err, sizeof err),
              "supervisor: %s", err);
}

static struct domain *add(const char *name, const char *args)
{
    struct domain *d = tu_add(&sup, name, "testdomain", args, err, sizeof err);
    cr_assert_not_null(d, "add %s: %s", name, err);
    return d;
}

static void finish(void) { supervisor_fini(&sup); }

Test(domains, four_boot_at_once_and_serve, .timeout = 60)
{
    start(0, 0);
    struct domain *d[4];
    for (int i = 0; i < 4; i++) {
        static const char *const names[4] = { "d0", "d1", "d2", "d3" };
        d[i] = add(names[i], "");
    }
    cr_assert(supervisor_start_all(&sup));
    cr_assert(supervisor_wait_all(&sup, READY, BOOT_MS), "not every domain reached ready");
    for (int i = 0; i < 4; i++) {
        uint64_t hb = domain_heartbeat(d[i]);
        cr_assert_gt(tu_wait_heartbeat_past(d[i], hb, 5000), hb,
                     "d%d is ready but its heartbeat does not move", i);
        cr_assert_gt(d[i]->t_ready_ns, d[i]->t_start_ns);
    }
    supervisor_stop_all(&sup);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(d[i]->state, DOMAIN_STOPPED, "d%d ended %s", i,
                     domain_state_name(d[i]->state));
        cr_assert_eq(domain_heartbeat(d[i]), 0, "memory of a stopped domain is still mapped");
    }
    finish();
}

struct fault_case {
    const char *fault;
    enum crash_cause cause;
    int vector;             /* -1: not an exception */
    uint64_t err_mask;      /* error-code bits that must be set */
    const char *detail;     /* substring of the detail line */
};

/* Crash the faulty domain next to a healthy one; the healthy one must keep
 * beating after the crash and stop cleanly. Only the faulty domain gets the
 * short watchdog, so a busy host cannot fail the healthy one. */
static void check_fault(const struct fault_case *fc)
{
    start(0, 0);
    struct domain *good = add("good", "");
    char args[64];
    snprintf(args, sizeof args, "fault=%s", fc->fault);
    struct domain *bad = add("bad", args);
    bad->cfg.watchdog_ms = 200;
    cr_assert(supervisor_start_all(&sup));
    cr_assert(supervisor_wait(&sup, bad, CRASHED, BOOT_MS), "fault=%s: domain ended %s, not crashed",
              fc->fault, domain_state_name(bad->state));
    cr_assert_eq(bad->crash.cause, fc->cause, "fault=%s: cause %s, want %s (%s)", fc->fault,
                 crash_cause_name(bad->crash.cause), crash_cause_name(fc->cause),
                 bad->crash.detail);
    if (fc->vector >= 0) {
        cr_assert_eq(bad->crash.vector, (uint32_t)fc->vector, "fault=%s: vector %u", fc->fault,
                     bad->crash.vector);
        cr_assert_eq(bad->crash.error_code & fc->err_mask, fc->err_mask,
                     "fault=%s: error code 0x%lx lacks 0x%lx", fc->fault,
                     (unsigned long)bad->crash.error_code, (unsigned long)fc->err_mask);
        cr_assert_eq(bad->crash.regs.cs & 3, 3, "fault=%s: expected a ring-3 fault", fc->fault);
    }
    cr_assert(bad->crash.have_regs, "fault=%s: no registers reported", fc->fault);
    cr_assert(strstr(bad->crash.detail, fc->detail), "fault=%s: detail '%s' lacks '%s'",
              fc->fault, bad->crash.detail, fc->detail);

    cr_assert(supervisor_wait(&sup, good, READY, BOOT_MS));
    uint64_t hb = domain_heartbeat(good);
    cr_assert_gt(tu_wait_heartbeat_past(good, hb, 5000), hb,
                 "fault=%s: the healthy domain stopped beating after its neighbour crashed",
                 fc->fault);
    cr_assert_eq(good->state, DOMAIN_READY);
    supervisor_stop_all(&sup);
    cr_assert_eq(good->state, DOMAIN_STOPPED);
    finish();
}

#define FAULT_TEST(name, ...)                                          \
    Test(faults, name, .timeout = 60)                                  \
    {                                                                  \
        const struct fault_case fc = { __VA_ARGS__ };                  \
        check_fault(&fc);                                              \
    }

FAULT_TEST(divide_by_zero, "divzero", CRASH_EXCEPTION, 0, 0, "#DE")
FAULT_TEST(page_fault_unmapped, "pagefault", CRASH_EXCEPTION, 14, 0x4, "CR2 0x40000000000")
FAULT_TEST(page_fault_write_to_text, "wprotect", CRASH_EXCEPTION, 14, 0x7, "#PF")
FAULT_TEST(page_fault_execute_data, "nx", CRASH_EXCEPTION, 14, 0x10, "#PF")
FAULT_TEST(general_protection, "gp", CRASH_EXCEPTION, 13, 0, "#GP")
FAULT_TEST(invalid_opcode, "ud", CRASH_EXCEPTION, 6, 0, "#UD")
FAULT_TEST(triple_fault, "triple", CRASH_TRIPLE_FAULT, -1, 0, "triple fault")
FAULT_TEST(hang_interrupts_off, "hang", CRASH_WATCHDOG, -1, 0, "heartbeat stuck")
FAULT_TEST(spin_interrupts_on, "spin", CRASH_WATCHDOG, -1, 0, "heartbeat stuck")
FAULT_TEST(panic_with_message, "panic", CRASH_PANIC, -1, 0, "injected panic")
FAULT_TEST(mmio_outside_every_bar, "mmio", CRASH_POLICY, -1, 0, "outside every assigned region")

Test(domains, hang_reports_where_the_vcpu_was, .timeout = 60)
{
    start(200, 0);      /* the only domain: the run-wide default applies */
    struct domain *d = add("hang", "fault=hang");
    cr_assert(supervisor_start_all(&sup));
    cr_assert(supervisor_wait(&sup, d, CRASHED, BOOT_MS));
    cr_assert(strstr(d->crash.detail, "vCPU at RIP"), "detail: %s", d->crash.detail);
    cr_assert_eq(d->crash.regs.rflags & 0x200, 0, "the hang had interrupts off");
    finish();
}

Test(domains, boot_timeout, .timeout = 60)
{
    start(0, 300);
    struct domain *d = add("slow", "fault=spin when=boot");
    cr_assert(supervisor_start_all(&sup));
    cr_assert(supervisor_wait(&sup, d, CRASHED, BOOT_MS));
    cr_assert_eq(d->crash.cause, CRASH_BOOT_TIMEOUT, "cause %s", crash_cause_name(d->crash.cause));
    cr_assert(strstr(d->crash.detail, "300 ms"), "detail: %s", d->crash.detail);
    finish();
}

Test(domains, msi_round_trips_exactly_once, .timeout = 60)
{
    start(0, 0);
    /* The domain panics if any MSI is lost or delivered twice. */
    struct domain *d = add("msi", "msi=2000 exit_ms=0");
    cr_assert(supervisor_start_all(&sup));
    cr_assert(supervisor_wait(&sup, d, DOMAIN_TERMINAL, 30000));
    cr_assert_eq(d->state, DOMAIN_STOPPED, "domain %s: %s", domain_state_name(d->state),
                 d->crash.detail);
    cr_assert_eq(d->exit_code, 0);
    cr_assert_eq(d->stats.msi_sent, 2000, "VMM sent %lu MSIs", (unsigned long)d->stats.msi_sent);
    finish();
}

Test(domains, bad_system_calls_are_refused, .timeout = 60)
{
    start(0, 0);
    struct domain *d = add("badsys", "fault=badsys");
    cr_assert(supervisor_start_all(&sup));
    cr_assert(supervisor_wait(&sup, d, DOMAIN_TERMINAL, BOOT_MS));
    cr_assert_eq(d->state, DOMAIN_STOPPED, "domain %s: %s", domain_state_name(d->state),
                 d->crash.detail);
    finish();
}

Test(domains, console_goes_to_the_domain_log, .timeout = 60)
{
    start(0, 0);
    struct domain *d = add("chatty", "exit_ms=0");
    cr_assert(supervisor_start_all(&sup));
    cr_assert(supervisor_wait(&sup, d, STOPPED, BOOT_MS));
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/chatty.log", sup.log_dir);
    char *log = tu_slurp(path);
    cr_assert_not_null(log, "no log at %s", path);
    cr_assert(strstr(log, "moat guest kernel: 16 MiB RAM"), "log: %s", log);
    free(log);
    finish();
}

Test(domains, images_that_cannot_run_are_refused, .timeout = 60)
{
    start(0, 0);
    struct domain_config dc;
    memset(&dc, 0, sizeof dc);
    snprintf(dc.name, sizeof dc.name, "missing");
    snprintf(dc.kernel, sizeof dc.kernel, "/nonexistent/image.elf");
    dc.ram_size = MOAT_DEFAULT_RAM;
    cr_assert_null(supervisor_add(&sup, &dc, err, sizeof err));
    cr_assert(strstr(err, "cannot read kernel image"), "%s", err);

    /* A real ELF that is not a kernel: moat itself (ET_DYN). */
    snprintf(dc.name, sizeof dc.name, "notkernel");
    snprintf(dc.kernel, sizeof dc.kernel, "%s/asan/bin/moat", MOAT_BUILD_DIR);
    struct domain *d = supervisor_add(&sup, &dc, err, sizeof err);
    cr_assert_not_null(d, "%s", err);
    cr_assert_not(supervisor_start_all(&sup));
    cr_assert_eq(d->state, DOMAIN_CRASHED);
    cr_assert_eq(d->crash.cause, CRASH_VMM_ERROR);
    cr_assert(strstr(d->crash.detail, "not an executable"), "%s", d->crash.detail);
    finish();
}
