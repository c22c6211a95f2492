/*
 * Fault injection under KVM, one kind at a time (moatctl inject): every
 * kind on each driver domain (ramblk, NVMe, virtio-net), with a client
 * session doing I/O across it. Each fault must end the incarnation with
 * the cause it names (or, where the device survives it, leave the domain
 * serving), the domain must come back by itself, and the client must get
 * right answers throughout. Kinds a domain cannot raise are refused.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#define BOOT_MS 10000u

#include "kvm_fixture.h"

/* What a fault must do to the incarnation it hits. */
enum outcome {
    ENDS_CRASHED,       /* crashed with the cause below, then restarted */
    ENDS_EXIT_1,        /* stopped with exit code 1, then restarted */
    SURVIVES,           /* the domain keeps serving */
    REFUSED,            /* inject answers ENOTSUP */
};

struct fault_case {
    uint32_t kind;
    enum outcome outcome;
    enum crash_cause cause;     /* ENDS_CRASHED */
    const char *detail;         /* a substring of the crash detail, or NULL */
};

static uint32_t want_incarnation, want_ends;
static bool ready_again(const struct domain *d)
{
    return d->state == DOMAIN_READY && d->incarnation >= want_incarnation;
}
static bool ended(const struct domain *d) { return d->n_causes >= want_ends; }

/* A BlockDevice client: write a pattern, read it back, both verified. */
static void blk_roundtrip(struct moat_session *s, uint32_t round, bool check_old)
{
    uint8_t w[4096], r[4096];
    for (size_t i = 0; i < sizeof w; i++)
        w[i] = (uint8_t)(round * 31u + i);
    int rc = moat_blk_write(s, 64 + round * 8, 8, w);
    cr_assert_eq(rc, 0, "round %u: write: %s", round, moat_strerror(rc));
    rc = moat_blk_flush(s);
    cr_assert_eq(rc, 0, "round %u: flush: %s", round, moat_strerror(rc));
    rc = moat_blk_read(s, 64 + round * 8, 8, r);
    cr_assert_eq(rc, 0, "round %u: read: %s", round, moat_strerror(rc));
    cr_assert(!memcmp(w, r, sizeof w), "round %u: read back differs", round);
    if (!check_old || round == 0)
        return;
    /* A durable (flushed) earlier write survived every crash since. */
    for (size_t i = 0; i < sizeof w; i++)
        w[i] = (uint8_t)((round - 1) * 31u + i);
    cr_assert_eq(moat_blk_read(s, 64 + (round - 1) * 8, 8, r), 0);
    cr_assert(!memcmp(w, r, sizeof w), "round %u: the flushed write of round %u was lost",
              round, round - 1);
}

/* Inject each case into d in turn; between faults a client does I/O. */
static void run_cases(struct domain *d, const char *dom, const struct fault_case *cases,
                      size_t n, struct moat_session *s, bool durable)
{
    struct moat_client *c;
    cr_assert_eq(moat_connect(sock, &c), 0);
    struct moat_cap *cc;
    cr_assert_eq(moat_open(c, "control", MOAT_RIGHT_READ | MOAT_RIGHT_ADMIN, &cc), 0);
    for (size_t i = 0; i < n; i++) {
        const struct fault_case *fc = &cases[i];
        const char *name = moat_fault_name(fc->kind);
        if (s)
            blk_roundtrip(s, (uint32_t)i, durable);
        pthread_mutex_lock(&sup.lock);
        uint32_t inc = d->incarnation, ends = d->n_causes;
        pthread_mutex_unlock(&sup.lock);
        int rc = moat_inject(cc, dom, fc->kind);
        if (fc->outcome == REFUSED) {
            cr_assert_eq(rc, -MOAT_ENOTSUP, "%s on %s: %s, want ENOTSUP", name, dom,
                         moat_strerror(rc));
            continue;
        }
        cr_assert_eq(rc, 0, "inject %s into %s: %s", name, dom, moat_strerror(rc));
        if (fc->outcome == SURVIVES) {
            if (s)
                blk_roundtrip(s, (uint32_t)i, durable);
            pthread_mutex_lock(&sup.lock);
            cr_assert_eq(d->incarnation, inc, "%s ended %s, which should survive it", name, dom);
            pthread_mutex_unlock(&sup.lock);
            continue;
        }
        want_ends = ends + 1;
        cr_assert(tu_wait_until(&sup, d, ended, BOOT_MS), "%s did not end %s", name, dom);
        pthread_mutex_lock(&sup.lock);
        struct domain_cause why = d->causes[ends % DOMAIN_CAUSES];
        pthread_mutex_unlock(&sup.lock);
        if (fc->outcome == ENDS_EXIT_1) {
            cr_assert_eq(why.state, DOMAIN_STOPPED, "%s: %s ended %s", name, dom,
                         domain_state_name(why.state));
            cr_assert_eq(why.exit_code, 1, "%s: exit code %u", name, why.exit_code);
        } else {
            cr_assert_eq(why.state, DOMAIN_CRASHED, "%s: %s ended %s", name, dom,
                         domain_state_name(why.state));
            cr_assert_eq(why.crash.cause, fc->cause, "%s: cause %s, want %s (%s)", name,
                         crash_cause_name(why.crash.cause), crash_cause_name(fc->cause),
                         why.crash.detail);
            if (fc->detail)
                cr_assert(strstr(why.crash.detail, fc->detail), "%s: detail '%s' lacks '%s'",
                          name, why.crash.detail, fc->detail);
        }
        want_incarnation = inc + 1;
        cr_assert(tu_wait_until(&sup, d, ready_again, BOOT_MS), "%s: %s did not come back", name,
                  dom);
    }
    if (s)
        blk_roundtrip(s, (uint32_t)n, durable);
    tu_client_close(NULL, cc, c);
}

/* A sparse image file of size bytes in the test's temp dir; its path in img. */
static void make_image(char *img, size_t len, const char *name, off_t size)
{
    snprintf(img, len, "%s/%s", tu_tmpdir(), name);
    int fd = open(img, O_RDWR | O_CREAT | O_TRUNC, 0600);
    cr_assert_geq(fd, 0, "cannot create %s", img);
    cr_assert_eq(ftruncate(fd, size), 0, "cannot size %s", img);
    close(fd);
}

static struct moat_session *blk_session(const char *cap_name, struct moat_client **c,
                                        struct moat_cap **cap)
{
    cr_assert_eq(moat_connect(sock, c), 0);
    int rc = moat_open(*c, cap_name, MOAT_RIGHT_READ | MOAT_RIGHT_WRITE, cap);
    cr_assert_eq(rc, 0, "open %s: %s", cap_name, moat_strerror(rc));
    struct moat_session *s;
    rc = moat_session_open(*cap, &(struct moat_session_params){ .entries = 16 }, &s);
    cr_assert_eq(rc, 0, "session on %s: %s", cap_name, moat_strerror(rc));
    return s;
}

#define POLICY(d) { .outcome = ENDS_CRASHED, .cause = CRASH_POLICY, .detail = d }

static const struct fault_case kernel_cases[] = {
    { MOAT_FAULT_TRIPLE_FAULT, ENDS_CRASHED, CRASH_TRIPLE_FAULT, NULL },
    { MOAT_FAULT_HANG, ENDS_CRASHED, CRASH_WATCHDOG, "heartbeat" },
    { MOAT_FAULT_SPIN, ENDS_CRASHED, CRASH_WATCHDOG, "heartbeat" },
    { MOAT_FAULT_PANIC, ENDS_CRASHED, CRASH_PANIC, "injected fault: panic" },
    { MOAT_FAULT_WILD_MMIO, ENDS_CRASHED, CRASH_POLICY, "outside every assigned region" },
    { MOAT_FAULT_CORRUPT_SESSION, SURVIVES, CRASH_NONE, NULL },
    { MOAT_FAULT_KILL, ENDS_CRASHED, CRASH_INJECTED, "kill injected" },
};

Test(faults, ramblk_every_kernel_kind_and_no_device_kinds, .init = kvm_start, .fini = kvm_finish,
     .timeout = 180)
{
    char spec[512];
    snprintf(spec, sizeof spec, "name=ram0 kernel=%s mem=32M watchdog-ms=100 restarts=64/60s "
             "args=\"size=4M\"", tu_guest("ramblk"));
    struct domain *d = tu_boot(&sup, spec, BOOT_MS, err, sizeof err);
    cr_assert_not_null(d, "%s", err);
    struct moat_client *c;
    struct moat_cap *cap;
    struct moat_session *s = blk_session("ram0.blk0", &c, &cap);
    /* ramblk keeps its blocks in its own RAM: a crash loses them, so only
     * each round's own write is checked. */
    run_cases(d, "ram0", kernel_cases, sizeof kernel_cases / sizeof kernel_cases[0], s, false);
    static const struct fault_case device_cases[] = {
        { MOAT_FAULT_WILD_DMA_PRIVATE, REFUSED, CRASH_NONE, NULL },
        { MOAT_FAULT_CORRUPT_DEVICE, REFUSED, CRASH_NONE, NULL },
        { MOAT_FAULT_EXIT_DMA, REFUSED, CRASH_NONE, NULL },
    };
    run_cases(d, "ram0", device_cases, 3, NULL, false);
    struct moat_session_stats st;
    moat_session_stats(s, &st);
    cr_assert_geq(st.recoveries, 5, "the session followed %llu restarts",
                  (unsigned long long)st.recoveries);
    moat_session_close(s);
    tu_client_close(NULL, cap, c);
}

Test(faults, nvme_every_kind, .init = kvm_start, .fini = kvm_finish, .timeout = 240)
{
    char img[PATH_MAX], spec[PATH_MAX + 256];
    make_image(img, sizeof img, "f.img", 16 << 20);
    /* A second domain with a window, for wild-dma-other to aim at. */
    snprintf(spec, sizeof spec, "name=other kernel=%s dev=testdev dma=2M args=\"serve=1\"",
             tu_guest("testdrv"));
    cr_assert_not_null(tu_boot(&sup, spec, BOOT_MS, err, sizeof err), "%s", err);
    snprintf(spec, sizeof spec, "name=nv kernel=%s mem=64M dma=32M watchdog-ms=100 "
             "restarts=64/60s dev=nvme:image=%s", tu_guest("nvme"), img);
    struct domain *d = tu_boot(&sup, spec, BOOT_MS, err, sizeof err);
    cr_assert_not_null(d, "%s", err);
    struct moat_client *c;
    struct moat_cap *cap;
    struct moat_session *s = blk_session("nv.blk0", &c, &cap);
    static const struct fault_case cases[] = {
        POLICY("outside every window"),                         /* wild-dma-private */
        POLICY("outside every window"),                         /* wild-dma-other */
        POLICY("DMA"),                                          /* wild-dma-end */
        { MOAT_FAULT_CORRUPT_DEVICE, SURVIVES, CRASH_NONE, NULL },
        { MOAT_FAULT_EXIT_DMA, ENDS_EXIT_1, CRASH_NONE, NULL },
        { MOAT_FAULT_FATAL_STORM, ENDS_CRASHED, CRASH_POLICY, "storm of fatal device states" },
    };
    struct fault_case all[sizeof cases / sizeof cases[0]];
    memcpy(all, cases, sizeof cases);
    all[0].kind = MOAT_FAULT_WILD_DMA_PRIVATE;
    all[1].kind = MOAT_FAULT_WILD_DMA_OTHER;
    all[2].kind = MOAT_FAULT_WILD_DMA_END;
    run_cases(d, "nv", all, sizeof all / sizeof all[0], s, true);
    run_cases(d, "nv", kernel_cases, sizeof kernel_cases / sizeof kernel_cases[0], s, true);
    /* The refusals were audited against nv, not against the domain aimed at. */
    cr_assert_geq(sup.broker.dom[d->id].acct.refusals, 3, "nv's wild DMAs were not audited");
    struct moat_audit_sum sum[MOAT_AUDIT_SUM_MAX];
    uint32_t ns = audit_summary(&sup.audit, sum, MOAT_AUDIT_SUM_MAX);
    const struct moat_audit_sum *nv = NULL;
    for (uint32_t i = 0; i < ns; i++)
        if (strcmp(sum[i].domain, "nv") == 0)
            nv = &sum[i];
    cr_assert_not_null(nv, "nv has no audit trail");
    cr_assert_geq(nv->by_kind[MOAT_AUDIT_DMA], 3, "nv's wild DMAs: %llu DMA audit records",
                  (unsigned long long)nv->by_kind[MOAT_AUDIT_DMA]);
    cr_assert_geq(nv->by_kind[MOAT_AUDIT_FATAL], DOMAIN_FATAL_STORM,
                  "the fatal storm left %llu fatal records",
                  (unsigned long long)nv->by_kind[MOAT_AUDIT_FATAL]);
    cr_assert_geq(nv->by_kind[MOAT_AUDIT_POLICY], 4, "policy kills: %llu audit records",
                  (unsigned long long)nv->by_kind[MOAT_AUDIT_POLICY]);
    moat_session_close(s);
    tu_client_close(NULL, cap, c);
}

/* policy=audit: a storm of fatal controller states is counted, audited
 * once per window as a policy violation, and does not end the domain; the
 * log stays within its rate limit; the stats show every kind. */
Test(faults, nvme_fatal_storm_under_audit_policy, .init = kvm_start, .fini = kvm_finish,
     .timeout = 120)
{
    char img[PATH_MAX], spec[PATH_MAX + 256];
    make_image(img, sizeof img, "s.img", 4 << 20);
    snprintf(spec, sizeof spec, "name=nva kernel=%s mem=64M dma=16M policy=audit "
             "dev=nvme:image=%s", tu_guest("nvme"), img);
    struct domain *d = tu_boot(&sup, spec, BOOT_MS, err, sizeof err);
    cr_assert_not_null(d, "%s", err);
    struct moat_client *c;
    cr_assert_eq(moat_connect(sock, &c), 0);
    struct moat_cap *cc;
    cr_assert_eq(moat_open(c, "control", MOAT_RIGHT_READ | MOAT_RIGHT_ADMIN, &cc), 0);
    pthread_mutex_lock(&sup.lock);
    uint32_t ends = d->n_causes;
    pthread_mutex_unlock(&sup.lock);
    int rc = moat_inject(cc, "nva", MOAT_FAULT_FATAL_STORM);
    cr_assert_eq(rc, 0, "inject fatal-storm: %s", moat_strerror(rc));
    /* The driver runs the fault from its loop: follow its heartbeat until
     * the 64th fatal state is counted (or 5 s). */
    struct moat_domain_stats st;
    uint64_t hb = 0;
    for (int tries = 0; tries < 25; tries++) {
        cr_assert_eq(moat_domain_stats(cc, "nva", &st), 0);
        if (st.device_fatal >= 64)
            break;
        hb = tu_wait_heartbeat_past(d, hb, 200);
    }
    cr_assert_eq(st.device_fatal, 64, "device_fatal %llu, want the 64 the driver caused",
                 (unsigned long long)st.device_fatal);
    cr_assert_geq(st.audit_records, 64, "audit records %llu", (unsigned long long)st.audit_records);
    cr_assert_gt(st.audit_dropped, 0, "64+ records in a trail of %u: none dropped?",
                 AUDIT_PER_DOMAIN);
    static struct moat_audit_rec rec[MOAT_AUDIT_MAX];
    int n = moat_audit_of(cc, "nva", rec, MOAT_AUDIT_MAX);
    cr_assert_eq(n, (int)AUDIT_PER_DOMAIN, "nva's trail holds %d records", n);
    bool storm = false;
    for (int i = 0; i < n; i++) {
        cr_assert_str_eq(rec[i].domain, "nva");
        storm |= strcmp(rec[i].source, "policy") == 0 && strstr(rec[i].text, "kept running");
    }
    cr_assert(storm, "no policy record for the storm among nva's newest records");
    /* The policy let it run (its driver may still give up on its dead
     * controller by itself: that is not the policy's doing). */
    pthread_mutex_lock(&sup.lock);
    for (uint32_t i = ends; i < d->n_causes; i++)
        cr_assert_neq(d->causes[i % DOMAIN_CAUSES].crash.cause, CRASH_POLICY,
                      "policy=audit ended the domain: %s", d->causes[i % DOMAIN_CAUSES].crash.detail);
    pthread_mutex_unlock(&sup.lock);
    tu_client_close(NULL, cc, c);
}

static void vnet_device_kinds(const char *dev, const struct fault_case *cases, size_t n)
{
    char spec[512];
    snprintf(spec, sizeof spec, "name=other kernel=%s dev=testdev dma=2M args=\"serve=1\"",
             tu_guest("testdrv"));
    cr_assert_not_null(tu_boot(&sup, spec, BOOT_MS, err, sizeof err), "%s", err);
    snprintf(spec, sizeof spec, "name=vn kernel=%s mem=64M dma=16M watchdog-ms=100 "
             "restarts=64/60s dev=%s args=\"name=nic0\"", tu_guest("vnet"), dev);
    struct domain *d = tu_boot(&sup, spec, BOOT_MS, err, sizeof err);
    cr_assert_not_null(d, "%s", err);
    /* A client keeps frames going out (a stopped queue shows only then). */
    run_cases(d, "vn", cases, n, NULL, false);
}

Test(faults, virtio_net_device_kinds, .init = kvm_start, .fini = kvm_finish, .timeout = 180)
{
    static const struct fault_case cases[] = {
        { MOAT_FAULT_WILD_DMA_PRIVATE, ENDS_CRASHED, CRASH_POLICY, "outside every window" },
        { MOAT_FAULT_WILD_DMA_OTHER, ENDS_CRASHED, CRASH_POLICY, "outside every window" },
        { MOAT_FAULT_WILD_DMA_END, ENDS_CRASHED, CRASH_POLICY, "DMA" },
        { MOAT_FAULT_CORRUPT_DEVICE, ENDS_CRASHED, CRASH_PANIC, "needs a reset" },
        { MOAT_FAULT_EXIT_DMA, ENDS_EXIT_1, CRASH_NONE, NULL },
        { MOAT_FAULT_PANIC, ENDS_CRASHED, CRASH_PANIC, NULL },
    };
    vnet_device_kinds("virtio-net", cases, sizeof cases / sizeof cases[0]);
}

/* A legacy device has no DEVICE_NEEDS_RESET: it stops the queue, and the
 * driver's transmit watchdog fail-stops the domain. */
Test(faults, virtio_net_legacy_corrupt_ring, .init = kvm_start, .fini = kvm_finish, .timeout = 120)
{
    static const struct fault_case cases[] = {
        { MOAT_FAULT_CORRUPT_DEVICE, ENDS_CRASHED, CRASH_PANIC, "gave no transmit buffer back" },
        { MOAT_FAULT_WILD_DMA_PRIVATE, ENDS_CRASHED, CRASH_POLICY, "outside every window" },
    };
    vnet_device_kinds("virtio-net:legacy=1", cases, sizeof cases / sizeof cases[0]);
}

/* crash-loop kills every new incarnation as soon as it is ready, until
 * the breaker opens; then the domain stays down. */
Test(faults, crash_loop_opens_the_breaker, .init = kvm_start, .fini = kvm_finish, .timeout = 120)
{
    char spec[512];
    snprintf(spec, sizeof spec, "name=ram0 kernel=%s mem=32M restarts=3/60s args=\"size=4M\"",
             tu_guest("ramblk"));
    struct domain *d = tu_boot(&sup, spec, BOOT_MS, err, sizeof err);
    cr_assert_not_null(d, "%s", err);
    struct moat_client *c;
    cr_assert_eq(moat_connect(sock, &c), 0);
    struct moat_cap *cc;
    cr_assert_eq(moat_open(c, "control", MOAT_RIGHT_READ | MOAT_RIGHT_ADMIN, &cc), 0);
    cr_assert_eq(moat_inject(cc, "ram0", MOAT_FAULT_CRASH_LOOP), 0);
    want_ends = 4;
    cr_assert(tu_wait_until(&sup, d, ended, BOOT_MS), "ram0 did not crash 4 times");
    pthread_mutex_lock(&sup.lock);
    bool open = d->breaker_open;
    uint32_t inc = d->incarnation;
    enum crash_cause last = d->crash.cause;
    pthread_mutex_unlock(&sup.lock);
    cr_assert(open, "crash-loop did not open the breaker (incarnation %u)", inc);
    cr_assert_eq(inc, 4, "1 + 3 restarts, got incarnation %u", inc);
    cr_assert_eq(last, CRASH_INJECTED);
    /* An operator restart closes the breaker and ends the crash loop. */
    cr_assert_eq(moat_restart(cc, "ram0"), 0);
    want_incarnation = 5;
    cr_assert(tu_wait_until(&sup, d, ready_again, BOOT_MS), "ram0 did not come back");
    tu_client_close(NULL, cc, c);
}
