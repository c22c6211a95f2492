/*
 * The device path end to end under KVM: a driver domain (testdrv, dd_* only)
 * finds testdev, programs MSI-X or INTx and completes verified DMA copies;
 * hostile copies aimed at private RAM, another domain's window, a revoked
 * window and a wrapping range are refused by the broker with an audit
 * record while no byte outside the windows changes; by default a refusal
 * fail-stops the domain; windows are scrubbed and freed when it ends.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <string.h>
#include "moat/testdev_regs.h"
#include "testutil.h"

#define BOOT_MS  10000u
#define RUN_MS   120000u
#define READY    DOMAIN_STATE_BIT(DOMAIN_READY)
#define ENDED    DOMAIN_TERMINAL
#define GO_MAGIC 0x60606060u

static struct supervisor sup;
static char err[512];

static void start(void)
{
    TU_REQUIRE_KVM();
    cr_assert(tu_supervisor(&sup, 0, 0, err, sizeof err), "supervisor: %s", err);
}

static struct domain *add(const char *name, const char *spec_extra, const char *args)
{
    char spec[1024];
    /* restart=never: every test here looks at how an incarnation ended. */
    snprintf(spec, sizeof spec, "name=%s kernel=%s restart=never %s args=\"%s\"", name,
             tu_guest("testdrv"), spec_extra, args);
    struct domain_config cfg;
    cr_assert(config_parse_domain(spec, &cfg, err, sizeof err), "spec %s: %s", spec, err);
    struct domain *d = supervisor_add(&sup, &cfg, err, sizeof err);
    cr_assert_not_null(d, "add %s: %s", name, err);
    cr_assert(domain_start(d, err, sizeof err), "start %s: %s", name, err);
    return d;
}

static char *log_of(const struct domain *d)
{
    char *s = tu_domain_log(&sup, d);
    cr_assert_not_null(s, "cannot read %s's log in %s", d->cfg.name, sup.log_dir);
    return s;
}

/* Wait (by heartbeats, no sleeps) until d's log holds needle. */
static char *wait_for_line(struct domain *d, const char *needle)
{
    char *log = NULL;
    for (int i = 0; i < 400 && !(log && strstr(log, needle)); i++) {
        free(log);
        pthread_mutex_lock(&sup.lock);
        bool live = d->state == DOMAIN_READY;
        pthread_mutex_unlock(&sup.lock);
        cr_assert(live, "%s is %s while waiting for '%s': %s", d->cfg.name,
                  domain_state_name(d->state), needle, d->crash.detail);
        tu_wait_heartbeat_past(d, domain_heartbeat(d), 1000);
        log = log_of(d);
    }
    cr_assert(log && strstr(log, needle), "'%s' never appeared in %s's log:\n%s", needle,
              d->cfg.name, log ? log : "");
    return log;
}

static void expect_stopped_ok(struct domain *d)
{
    cr_assert(supervisor_wait(&sup, d, ENDED, RUN_MS), "%s did not finish", d->cfg.name);
    cr_assert_eq(d->state, DOMAIN_STOPPED, "%s ended %s: %s", d->cfg.name,
                 domain_state_name(d->state), d->crash.detail);
    cr_assert_eq(d->exit_code, 0, "%s exit code %u", d->cfg.name, d->exit_code);
}

static void expect_windows_released(const struct domain *d)
{
    struct broker_account a = broker_account(&sup.broker, d->id);
    cr_assert_eq(a.windows, 0, "%s still holds %u windows after it ended", d->cfg.name,
                 a.windows);
    cr_assert_eq(a.bytes, 0, "%s still holds %" PRIu64 " window bytes", d->cfg.name, a.bytes);
}

/* Audit records of domain id, oldest first. */
static size_t audit_of(uint32_t id, struct broker_audit *out, size_t max)
{
    static struct broker_audit all[BROKER_AUDIT_RING];
    size_t n = broker_audit_read(&sup.broker, 0, all, BROKER_AUDIT_RING), k = 0;
    for (size_t i = 0; i < n && k < max; i++)
        if (all[i].domain == id)
            out[k++] = all[i];
    return k;
}

Test(dma, ten_thousand_copies_with_msix, .timeout = 180)
{
    start();
    struct domain *d = add("drv", "dev=testdev dma=4M", "copies=10000");
    expect_stopped_ok(d);
    char *log = log_of(d);
    cr_assert(strstr(log, "testdrv: 10000 copies verified"), "no verified copies in log:\n%s", log);
    cr_assert(strstr(log, "msix interrupts"), "driver did not use MSI-X:\n%s", log);
    cr_assert_geq(d->stats.msi_sent, 10000, "only %" PRIu64 " MSIs sent", d->stats.msi_sent);
    struct broker_audit rec[4];
    cr_assert_eq(audit_of(d->id, rec, 4), 0, "a well-behaved driver left audit records");
    cr_assert_eq(d->stats.pci_refused, 0, "%" PRIu64 " PCI accesses refused", d->stats.pci_refused);
    expect_windows_released(d);
    free(log);
    supervisor_fini(&sup);
}

Test(dma, copies_with_intx_through_the_ioapic, .timeout = 120)
{
    start();
    struct domain *d = add("drv", "dev=testdev dma=2M", "copies=500 irq=intx");
    expect_stopped_ok(d);
    char *log = log_of(d);
    cr_assert(strstr(log, "testdrv: 500 copies verified"), "no verified copies in log:\n%s", log);
    cr_assert(strstr(log, "intx interrupts"), "driver did not use INTx:\n%s", log);
    cr_assert_eq(d->stats.msi_sent, 0, "INTx mode sent %" PRIu64 " MSIs", d->stats.msi_sent);
    free(log);
    supervisor_fini(&sup);
}

/* Write v to len bytes at iova of domain id, as the host (not a device). */
static void host_fill(uint32_t id, uint64_t iova, uint64_t len, uint8_t v)
{
    struct dma_mapping m;
    void *p = broker_dma_map(&sup.broker, id, "harness", iova, len, DMA_FROM_DEVICE, &m);
    cr_assert_not_null(p, "harness cannot map IOVA 0x%" PRIx64, iova);
    memset(p, v, len);
    broker_dma_unmap(&sup.broker, &m);
}

static bool host_all_equal(uint32_t id, uint64_t iova, uint64_t len, uint8_t v, uint64_t *bad)
{
    struct dma_mapping m;
    const uint8_t *p = broker_dma_map(&sup.broker, id, "harness", iova, len, DMA_TO_DEVICE, &m);
    cr_assert_not_null(p, "harness cannot map IOVA 0x%" PRIx64, iova);
    bool ok = true;
    for (uint64_t i = 0; i < len && ok; i++)
        if (p[i] != v) {
            ok = false;
            *bad = i;
        }
    broker_dma_unmap(&sup.broker, &m);
    return ok;
}

Test(dma, hostile_copies_refused_audited_and_harmless, .timeout = 120)
{
    start();
    struct domain *victim = add("victim", "dev=testdev dma=2M", "copies=0 serve=1");
    cr_assert(supervisor_wait(&sup, victim, READY, BOOT_MS), "victim not ready");
    uint64_t vwin = victim->win_info[0].iova, vlen = victim->win_info[0].size;
    host_fill(victim->id, vwin, vlen, 0xC3);

    char args[256];
    snprintf(args, sizeof args, "copies=10 hostile=private,foreign,config,revoked,overflow "
             "foreign=0x%" PRIx64 " serve=1", vwin);
    struct domain *h = add("hostile", "dev=testdev dma=2M dma-windows=2 policy=audit", args);
    cr_assert(supervisor_wait(&sup, h, READY, BOOT_MS), "hostile domain not ready");
    cr_assert_eq(h->n_win, 2, "hostile domain has %u windows", h->n_win);
    uint64_t w0 = h->win_info[0].iova, w0len = h->win_info[0].size, w1 = h->win_info[1].iova;
    cr_assert(w1 != vwin && w0 != vwin, "IOVAs are not unique across domains");

    cr_assert(broker_revoke(&sup.broker, h->win[1], err, sizeof err), "revoke: %s", err);
    uint32_t go = GO_MAGIC;
    struct dma_mapping m;
    void *flag = broker_dma_map(&sup.broker, h->id, "harness", w0 + w0len - 4096, 4,
                                DMA_FROM_DEVICE, &m);
    cr_assert_not_null(flag);
    memcpy(flag, &go, 4);
    broker_dma_unmap(&sup.broker, &m);

    char *log = wait_for_line(h, "testdrv: done");
    static const char *const kinds[] = { "private", "foreign", "revoked", "overflow" };
    for (size_t i = 0; i < 4; i++) {
        char want[64];
        snprintf(want, sizeof want, "testdrv: hostile %s refused", kinds[i]);
        cr_assert(strstr(log, want), "missing '%s' in:\n%s", want, log);
    }
    cr_assert(strstr(log, "testdrv: hostile config refused"), "config write accepted:\n%s", log);
    cr_assert(strstr(log, "testdrv: private canary intact"), "canary changed:\n%s", log);
    cr_assert(strstr(log, "testdrv: 1 copies verified"), "device unusable after refusals:\n%s", log);

    struct broker_audit rec[8];
    size_t n = audit_of(h->id, rec, 8);
    cr_assert_eq(n, 4, "expected 4 audit records for the hostile domain, got %zu", n);
    const enum broker_refusal want[4] = { BR_OUT_OF_WINDOW, BR_OUT_OF_WINDOW, BR_REVOKED,
                                          BR_OVERFLOW };
    for (size_t i = 0; i < 4; i++) {
        cr_assert_str_eq(rec[i].device, "testdev0", "record %zu names device %s", i,
                         rec[i].device);
        cr_assert_eq(rec[i].reason, want[i], "record %zu (%s): reason %s, want %s", i,
                     kinds[i], broker_refusal_name(rec[i].reason),
                     broker_refusal_name(want[i]));
    }
    cr_assert_lt(rec[0].addr, h->cfg.ram_size - 4096, "private target 0x%" PRIx64
                 " not in RAM", rec[0].addr);
    /* The host's own look at the private target, while the domain is alive. */
    for (uint64_t i = 0; i < 4096; i++)
        cr_assert_eq(h->vm.ram[rec[0].addr + i], 0xA5, "private RAM byte 0x%" PRIx64
                     " changed to 0x%x", rec[0].addr + i, h->vm.ram[rec[0].addr + i]);
    cr_assert_eq(rec[1].addr, vwin, "foreign record address 0x%" PRIx64, rec[1].addr);
    cr_assert_eq(rec[2].addr, w1, "revoked record address 0x%" PRIx64, rec[2].addr);
    cr_assert_eq(rec[3].addr, 0xFFFFFFFFFFFFF000ull, "overflow record address");
    cr_assert_eq(h->stats.dma_refused, 4, "%" PRIu64 " DMA refusals counted", h->stats.dma_refused);
    cr_assert_eq(h->stats.pci_refused, 1, "%" PRIu64 " config refusals counted",
                 h->stats.pci_refused);

    uint64_t bad = 0;
    cr_assert(host_all_equal(victim->id, vwin, vlen, 0xC3, &bad),
              "victim's window byte %" PRIu64 " changed", bad);
    cr_assert_eq(victim->state, DOMAIN_READY, "victim is %s", domain_state_name(victim->state));
    domain_request_stop(h);
    expect_stopped_ok(h);
    expect_windows_released(h);
    free(log);
    supervisor_fini(&sup);
}

/* Under the default policy, the hostile act stops the domain. */
static void expect_policy_stop(const char *hostile, const char *detail)
{
    start();
    char args[64];
    snprintf(args, sizeof args, "copies=1 hostile=%s", hostile);
    struct domain *d = add("drv", "dev=testdev dma=2M", args);
    cr_assert(supervisor_wait(&sup, d, ENDED, RUN_MS), "domain did not end");
    cr_assert_eq(d->state, DOMAIN_CRASHED, "domain ended %s", domain_state_name(d->state));
    cr_assert_eq(d->crash.cause, CRASH_POLICY, "cause %s", crash_cause_name(d->crash.cause));
    cr_assert(strstr(d->crash.detail, detail), "detail: %s", d->crash.detail);
    expect_windows_released(d);
    supervisor_fini(&sup);
}

Test(dma, refused_dma_fail_stops_by_default, .timeout = 60)
{
    expect_policy_stop("overflow", "address range wraps");
}

Test(dma, protected_config_write_fail_stops_by_default, .timeout = 60)
{
    expect_policy_stop("config", "read-only");
}

static unsigned scrubbed_clean, scrubbed_dirty;

/* Broker observer: the window's bytes after scrubbing, before free. */
static void on_scrubbed(void *ctx, uint32_t window, const uint8_t *host, uint64_t len)
{
    (void)ctx;
    (void)window;
    for (uint64_t i = 0; i < len; i++)
        if (host[i]) {
            scrubbed_dirty++;
            return;
        }
    scrubbed_clean++;
}

Test(dma, windows_scrubbed_before_free, .timeout = 60)
{
    start();
    sup.broker.mapper.scrubbed = on_scrubbed;
    struct domain *d = add("drv", "dev=testdev dma=2M", "copies=50 serve=1");
    cr_assert(supervisor_wait(&sup, d, READY, BOOT_MS), "not ready");
    /* The driver's buffers hold random data once copies have run. */
    free(wait_for_line(d, "testdrv: done"));
    uint8_t *host = sup.broker.win[d->win[0].window].host;
    uint64_t len = d->win_info[0].size;
    bool dirty = false;
    for (uint64_t i = 0; i < len && !dirty; i++)
        dirty = host[i] != 0;
    cr_assert(dirty, "window holds no data to scrub: test would prove nothing");
    domain_request_stop(d);
    cr_assert(supervisor_wait(&sup, d, ENDED, RUN_MS));
    expect_windows_released(d);
    cr_assert_eq(sup.broker.win[d->win[0].window].state, WIN_FREE);
    cr_assert_eq(scrubbed_dirty, 0, "%u windows were freed with data in them", scrubbed_dirty);
    cr_assert_eq(scrubbed_clean, 1, "%u windows observed scrubbed, want 1", scrubbed_clean);
    supervisor_fini(&sup);
}
