/* The audit trail (vmm/audit.c), the log's per-domain rate limit
 * (vmm/log.c) and the storm rule (vmm/storm.c), from an outside defect
 * report: one domain under policy=audit pushed every other domain's
 * records out of one shared ring, and a domain could write 20,000 log
 * lines in 5 s. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "audit.h"
#include "log.h"
#include "storm.h"

static struct audit a;

static void setup(void)
{
    audit_init(&a);
    audit_name(&a, 0, "flood");
    audit_name(&a, 1, "quiet");
}

static void teardown(void) { audit_fini(&a); }

Test(audit, a_flooding_domain_cannot_push_another_out, .init = setup, .fini = teardown)
{
    audit_record(&a, 1, MOAT_AUDIT_PCI, "quiet's refusal %d", 1);
    for (int i = 0; i < 10000; i++)
        audit_record(&a, 0, MOAT_AUDIT_DMA, "flood %d", i);
    audit_record(&a, 1, MOAT_AUDIT_CLIENT, "quiet's refusal %d", 2);
    static struct moat_audit_rec out[MOAT_AUDIT_MAX];
    uint32_t n = audit_read(&a, NULL, out, MOAT_AUDIT_MAX);
    cr_assert_eq(n, AUDIT_PER_DOMAIN + 2, "read %u records, want flood's %u kept and quiet's 2",
                 n, AUDIT_PER_DOMAIN);
    int quiet = 0;
    for (uint32_t i = 0; i < n; i++) {
        quiet += strcmp(out[i].domain, "quiet") == 0;
        if (i > 0)
            cr_assert_gt(out[i].seq, out[i - 1].seq, "records not in order at %u", i);
    }
    cr_assert_eq(quiet, 2, "quiet's records in the reply: %d of 2", quiet);
    cr_assert_str_eq(out[n - 1].text, "quiet's refusal 2");
    cr_assert_str_eq(out[n - 1].source, "client");
    /* A small reply still gives quiet its share. */
    n = audit_read(&a, NULL, out, 4);
    quiet = 0;
    for (uint32_t i = 0; i < n; i++)
        quiet += strcmp(out[i].domain, "quiet") == 0;
    cr_assert_eq(n, 4, "a 4-record reply held %u", n);
    cr_assert_eq(quiet, 2, "a 4-record reply held %d of quiet's 2 records", quiet);
}

Test(audit, summary_counts_written_dropped_and_kinds, .init = setup, .fini = teardown)
{
    for (int i = 0; i < 1000; i++)
        audit_record(&a, 0, i % 2 ? MOAT_AUDIT_FATAL : MOAT_AUDIT_DEVICE, "x");
    audit_record(&a, 1, MOAT_AUDIT_CONTROL, "restart by uid 0");
    audit_record(&a, 999, MOAT_AUDIT_CONTROL, "an id with no trail goes to moat's");
    struct moat_audit_sum s[MOAT_AUDIT_SUM_MAX];
    uint32_t n = audit_summary(&a, s, MOAT_AUDIT_SUM_MAX);
    cr_assert_eq(n, 3, "%u trails summarised, want flood, quiet and moat's", n);
    cr_assert_str_eq(s[0].domain, "flood");
    cr_assert_eq(s[0].written, 1000);
    cr_assert_eq(s[0].dropped, 1000 - AUDIT_PER_DOMAIN, "dropped %llu",
                 (unsigned long long)s[0].dropped);
    cr_assert_eq(s[0].by_kind[MOAT_AUDIT_FATAL], 500);
    cr_assert_eq(s[0].by_kind[MOAT_AUDIT_DEVICE], 500);
    cr_assert_eq(s[1].written, 1);
    cr_assert_eq(s[1].dropped, 0);
    cr_assert_str_eq(s[2].domain, "", "moat's own trail has no domain name");
    cr_assert_eq(s[2].by_kind[MOAT_AUDIT_CONTROL], 1);
}

Test(audit, read_of_one_domain, .init = setup, .fini = teardown)
{
    for (int i = 0; i < 100; i++)
        audit_record(&a, 0, MOAT_AUDIT_DMA, "flood %d", i);
    audit_record(&a, 1, MOAT_AUDIT_PCI, "only me");
    static struct moat_audit_rec out[MOAT_AUDIT_MAX];
    uint32_t n = audit_read(&a, "quiet", out, MOAT_AUDIT_MAX);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(out[0].text, "only me");
    n = audit_read(&a, "flood", out, 10);
    cr_assert_eq(n, 10);
    cr_assert_str_eq(out[9].text, "flood 99", "the newest last, got '%s'", out[9].text);
    cr_assert_eq(audit_read(&a, "nobody", out, 10), 0, "a name with no trail has no records");
}

/* ---- log rate limit ------------------------------------------------------- */

/* Run fn with stderr going to a temp file; return how many lines it wrote
 * that contain needle. */
static int count_lines(void (*fn)(void), const char *needle)
{
    char path[] = "/tmp/moat-logtest.XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    unlink(path);
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    fn();
    dup2(saved, STDERR_FILENO);
    close(saved);
    lseek(fd, 0, SEEK_SET);
    FILE *f = fdopen(fd, "r");
    char line[1200];
    int n = 0;
    while (fgets(line, sizeof line, f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

static void flood_one_domain(void)
{
    for (int i = 0; i < 20000; i++)
        log_error("hostile", "controller fatal status %d", i);
    log_error("bystander", "one line of another domain");
    for (int i = 0; i < 200; i++)
        log_error(NULL, "moat's own line %d", i);
}

Test(log, a_domain_flooding_the_log_is_rate_limited_alone)
{
    uint64_t before = log_suppressed_total();
    cr_assert_leq(count_lines(flood_one_domain, "[hostile] error: controller fatal"), LOG_BURST + 2,
                  "20,000 lines of one domain got through more than the burst");
    cr_assert_geq(log_suppressed_total() - before, 20000 - LOG_BURST - 2, "suppressed %llu",
                  (unsigned long long)(log_suppressed_total() - before));
}

static void other_domains(void)
{
    for (int i = 0; i < 20000; i++)
        log_error("hostile2", "flood %d", i);
    log_error("bystander2", "one line of another domain");
    for (int i = 0; i < 200; i++)
        log_error(NULL, "moat's own line %d", i);
}

Test(log, other_domains_and_moat_itself_are_not_limited_by_it)
{
    cr_assert_eq(count_lines(other_domains, "[bystander2] error: one line"), 1,
                 "another domain's line was suppressed by the flood");
    cr_assert_eq(count_lines(other_domains, "moat: error: moat's own line"), 200,
                 "moat's own lines are never limited");
}

static void after_refill(void)
{
    for (int i = 0; i < 1000; i++)
        log_error("refill", "flood %d", i);
    /* Let the bucket refill one token (20 per second): this test is about
     * time passing, not about waiting for another thread. */
    usleep(1000000 / LOG_RATE_PER_S + 20000);
    log_error("refill", "after the pause");
}

Test(log, the_next_line_says_how_many_were_suppressed)
{
    cr_assert_eq(count_lines(after_refill, "[refill] 936 log lines suppressed"), 1,
                 "no line reported the 1000 - 64 lines suppressed");
}

/* ---- storms (vmm/storm.c: the fatal-state storm rule) ---------------------- */

Test(storm, limit_within_one_window_is_a_storm)
{
    struct storm s = { 0 };
    uint64_t n, ms = 1000000;
    for (int i = 1; i < 16; i++)
        cr_assert_not(storm_hit(&s, 1000 * ms + (uint64_t)i * ms, 1000 * ms, 16, &n),
                      "event %d of 16 within 1 s called a storm", i);
    cr_assert(storm_hit(&s, 1000 * ms + 500 * ms, 1000 * ms, 16, &n), "the 16th is the storm");
    cr_assert_eq(n, 16);
}

Test(storm, events_spread_over_windows_are_not)
{
    struct storm s = { 0 };
    uint64_t n, ms = 1000000;
    for (int i = 0; i < 100; i++)   /* one every 100 ms: 10 per window at most */
        cr_assert_not(storm_hit(&s, 5000 * ms + (uint64_t)i * 100 * ms, 1000 * ms, 16, &n),
                      "event %d (one per 100 ms) called a storm (count %llu)", i,
                      (unsigned long long)n);
    cr_assert_leq(n, 11, "a window held %llu events", (unsigned long long)n);
}
