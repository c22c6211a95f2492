/*
 * Supervision under KVM (DESIGN §6): no deadlock between one domain's
 * teardown and another domain's fail-stop; the restart policy (automatic
 * restart of a crashed driver domain, none after an operator stop or for
 * restart=never), the restart budget and the breaker, and the operator
 * restart that closes it.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <unistd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sched.h>
#include "libmoat_internal.h"

#define BOOT_MS 10000u

#include "kvm_fixture.h"

static struct domain *boot(const char *spec)
{
    struct domain *d = tu_boot(&sup, spec, BOOT_MS, err, sizeof err);
    cr_assert_not_null(d, "boot '%s': %s", spec, err);
    return d;
}

static struct domain *boot_ramblk(const char *name, const char *extra)
{
    char spec[512];
    snprintf(spec, sizeof spec, "name=%s kernel=%s mem=16M %s args=\"size=4M\"", name,
             tu_guest("ramblk"), extra);
    return boot(spec);
}

/* testdrv with no copies, serving until stopped. */
static struct domain *boot_testdrv(const char *name, const char *extra, const char *args)
{
    char spec[512];
    snprintf(spec, sizeof spec, "name=%s kernel=%s mem=16M dev=testdev dma=2M %s "
             "args=\"copies=0 serve=1 %s\"", name, tu_guest("testdrv"), extra, args);
    return boot(spec);
}

static struct moat_cap *control_of(struct moat_client **c)
{
    cr_assert_eq(moat_connect(sock, c), 0, "connect to %s", sock);
    struct moat_cap *cap;
    int rc = moat_open(*c, "control", MOAT_RIGHT_READ | MOAT_RIGHT_ADMIN, &cap);
    cr_assert_eq(rc, 0, "open control: %s", moat_strerror(rc));
    return cap;
}

/* ---- predicates for tu_wait_until (sup->lock held) --------------------------------- */

static uint32_t want_incarnation;
static bool ready_again(const struct domain *d)
{
    return d->state == DOMAIN_READY && d->incarnation >= want_incarnation;
}
static bool breaker_open(const struct domain *d) { return d->breaker_open; }
static uint32_t want_failures;
static bool has_failed(const struct domain *d) { return d->n_causes >= want_failures; }
/* A fresh incarnation, ready, that no frame has failed yet. */
static bool ready_unhit(const struct domain *d)
{
    return d->state == DOMAIN_READY && !atomic_load(&d->stop) && d->n_causes < want_failures;
}
static bool down_for_good(const struct domain *d)
{
    return (DOMAIN_STATE_BIT(d->state) & DOMAIN_TERMINAL) && !d->restarting;
}

/* ---- the cross-domain deadlock ----------------------------------------------------- */

/* A client that keeps nica transmitting broadcast frames (which the switch
 * delivers to nicb) through every restart of nica. */
struct flood {
    struct moat_client *c;
    struct moat_cap *cap;
    struct moat_session *s;     /* opened before the thread starts */
    atomic_bool stop;
    pthread_mutex_t lock;
    pthread_cond_t progress;
    uint64_t sent;              /* under lock */
    bool paused;                /* under lock */
};

static void flood_pause(struct flood *f, bool paused)
{
    pthread_mutex_lock(&f->lock);
    f->paused = paused;
    pthread_cond_broadcast(&f->progress);
    pthread_mutex_unlock(&f->lock);
}

static uint64_t flood_sent(struct flood *f)
{
    pthread_mutex_lock(&f->lock);
    uint64_t n = f->sent;
    pthread_mutex_unlock(&f->lock);
    return n;
}

static void *flood_thread(void *arg)
{
    struct flood *f = arg;
    struct moat_session *s = f->s;
    static uint8_t frame[64];
    memset(frame, 0xff, 6);                                 /* broadcast */
    memcpy(frame + 6, (uint8_t[]){ 0x52, 0x54, 0, 0xaa, 0, 1 }, 6);
    frame[12] = 0x88, frame[13] = 0xb5;
    struct moat_frame fr[16];
    for (int i = 0; i < 16; i++)
        fr[i] = (struct moat_frame){ .data = frame, .len = sizeof frame };
    while (!atomic_load(&f->stop)) {
        pthread_mutex_lock(&f->lock);
        while (f->paused && !atomic_load(&f->stop))
            pthread_cond_wait(&f->progress, &f->lock);
        pthread_mutex_unlock(&f->lock);
        /* nica restarts under us: the session follows it by itself. */
        int rc = moat_nic_send(s, fr, 16);
        if (rc > 0) {
            pthread_mutex_lock(&f->lock);
            f->sent += (uint64_t)rc;
            pthread_cond_broadcast(&f->progress);
            pthread_mutex_unlock(&f->lock);
        }
        struct moat_frame none = { 0 };
        if (rc == 0 && moat_nic_recv(s, &none, 0, 0) < 0)
            break;
        if (rc < 0) {
            fprintf(stderr, "flood: send failed: %s\n", moat_strerror(rc));
            break;
        }
    }
    return NULL;
}

/* The scenario a review found: nica's teardown quiesced nica's device,
 * which waited for nica's device worker, which was delivering a frame into
 * nicb, whose receive ring points outside its windows; the refusal
 * fail-stopped nicb by taking the supervisor lock that nica's teardown
 * held. Every restart of nica must return, however often nicb dies. */
Test(supervision, hostile_receiver_while_its_peer_restarts, .init = kvm_start, .fini = kvm_finish,
     .timeout = 300)
{
#define NIC_SPEC "name=%s kernel=%s mem=64M dma=16M %s dev=virtio-net:mac=%s args=\"%s\""
    char spec[1024];
    snprintf(spec, sizeof spec, NIC_SPEC, "nica", tu_guest("vnet"), "", "52-54-00-aa-00-01",
             "name=nic0");
    struct domain *a = boot(spec);
    /* nicb is fail-stop (the default policy) and restarts itself. */
    snprintf(spec, sizeof spec, NIC_SPEC, "nicb", tu_guest("vnet"),
             "restart=always restarts=64/200ms", "52-54-00-bb-00-02", "name=nic0 wild_rx=1");
    struct domain *b = boot(spec);

    static struct flood f;
    memset(&f, 0, sizeof f);
    pthread_mutex_init(&f.lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);   /* flood_past's deadline */
    pthread_cond_init(&f.progress, &ca);
    pthread_condattr_destroy(&ca);
    cr_assert_eq(moat_connect(sock, &f.c), 0);
    int rc = moat_open(f.c, "nica.nic0", MOAT_RIGHT_READ | MOAT_RIGHT_WRITE, &f.cap);
    cr_assert_eq(rc, 0, "open nica.nic0: %s", moat_strerror(rc));
    rc = moat_session_open(f.cap, &(struct moat_session_params){ .entries = 256 }, &f.s);
    cr_assert_eq(rc, 0, "session on nica.nic0: %s", moat_strerror(rc));
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, flood_thread, &f), 0);
    /* The flood reaches nicb, and nicb's hostile ring gets it killed. */
    want_failures = 1;
    cr_assert(tu_wait_until(&sup, b, has_failed, BOOT_MS),
              "nicb was not failed by the frames nica sent (%llu sent)",
              (unsigned long long)flood_sent(&f));
    const int rounds = 40;
    for (int i = 0; i < rounds; i++) {
        /* Hold the frames back until nicb is up again and unhit, then let
         * them go and restart nica at once: nica's worker fail-stops nicb
         * while nica is being torn down. */
        flood_pause(&f, true);
        want_failures = (uint32_t)i + 2;
        cr_assert(tu_wait_until(&sup, b, ready_unhit, BOOT_MS), "round %d: nicb not back", i);
        flood_pause(&f, false);
        uint64_t t0 = clock_mono_ns();
        cr_assert(domain_restart(a, err, sizeof err), "restart %d of nica: %s", i + 1, err);
        want_incarnation = (uint32_t)i + 2;
        cr_assert(tu_wait_until(&sup, a, ready_again, BOOT_MS),
                  "nica incarnation %u did not become ready", want_incarnation);
        double ms = (double)(clock_mono_ns() - t0) / 1e6;
        cr_assert_lt(ms, 10000.0, "restart %d of nica took %.0f ms", i + 1, ms);
        cr_assert(tu_wait_until(&sup, b, has_failed, BOOT_MS),
                  "round %d: nicb was not failed again (%llu frames queued)", i,
                  (unsigned long long)flood_sent(&f));
    }
    atomic_store(&f.stop, true);
    flood_pause(&f, false);
    pthread_join(t, NULL);
    tu_client_close(f.s, f.cap, f.c);

    pthread_mutex_lock(&sup.lock);
    uint64_t b_restarts = b->auto_restarts;
    uint32_t n_causes = b->n_causes;
    struct domain_cause last = b->causes[(n_causes - 1) % DOMAIN_CAUSES];
    pthread_mutex_unlock(&sup.lock);
    cr_assert_gt(flood_sent(&f), 0, "the flood sent nothing: the test proved nothing");
    cr_assert_gt(n_causes, 0, "nicb never failed: its hostile ring was never hit");
    cr_assert_eq(last.crash.cause, CRASH_POLICY, "nicb ended by %s, not a policy stop",
                 crash_cause_name(last.crash.cause));
    cr_assert(strstr(last.crash.detail, "DMA"), "nicb's end: %s", last.crash.detail);
    cr_assert_gt(b_restarts, 0, "nicb was never restarted automatically");
    cr_assert_gt(sup.broker.dom[b->id].acct.refusals, 0, "nicb's refusals were not audited");
    fprintf(stderr, "supervision: %d restarts of nica with %llu frames sent; nicb failed %u "
            "times, restarted %llu times\n", rounds, (unsigned long long)flood_sent(&f),
            n_causes, (unsigned long long)b_restarts);
}

/* ---- restart policy ---------------------------------------------------------------- */

Test(supervision, a_crashed_driver_domain_restarts_by_itself, .init = kvm_start, .fini = kvm_finish,
     .timeout = 120)
{
    struct domain *d = boot_ramblk("ram0", "");     /* serves a cap: on-failure */
    struct moat_client *c;
    struct moat_cap *cc = control_of(&c);
    cr_assert_eq(moat_inject(cc, "ram0", MOAT_FAULT_KILL), 0);
    want_incarnation = 2;
    cr_assert(tu_wait_until(&sup, d, ready_again, BOOT_MS),
              "ram0 did not come back by itself (state %s, incarnation %u)",
              domain_state_name(tu_state(&sup, d)), d->incarnation);
    pthread_mutex_lock(&sup.lock);
    cr_assert_eq(d->auto_restarts, 1, "auto restarts %llu", (unsigned long long)d->auto_restarts);
    cr_assert_eq(d->n_causes, 1);
    cr_assert_eq(d->causes[0].crash.cause, CRASH_INJECTED, "recorded cause %s",
                 crash_cause_name(d->causes[0].crash.cause));
    cr_assert_eq(d->causes[0].incarnation, 1);
    cr_assert_not(d->breaker_open);
    pthread_mutex_unlock(&sup.lock);
    /* The cap is served again under the same name. */
    struct moat_cap *blk;
    int rc = moat_open(c, "ram0.blk0", MOAT_RIGHT_READ, &blk);
    cr_assert_eq(rc, 0, "open ram0.blk0 after the restart: %s", moat_strerror(rc));
    tu_client_close(NULL, cc, c);
}

Test(supervision, an_operator_stop_is_not_followed_by_a_restart, .init = kvm_start, .fini = kvm_finish,
     .timeout = 120)
{
    struct domain *d = boot_ramblk("ram0", "restart=always");
    domain_request_stop(d);
    cr_assert(tu_wait_until(&sup, d, down_for_good, BOOT_MS), "ram0 did not stay down");
    cr_assert_eq(tu_state(&sup, d), DOMAIN_STOPPED);
    cr_assert_eq(d->auto_restarts, 0, "an operator stop was followed by an automatic restart");
}

/* A serving domain asked to stop finishes by itself: its stop hook runs,
 * it exits 0 and the stop counts as orderly. One whose hook never returns
 * (it keeps beating, so the heartbeat watchdog has nothing to say) is
 * stopped by force once the grace time is up, and ends STOPPED too. */
Test(supervision, an_operator_stop_is_orderly_and_a_deaf_domain_is_forced, .init = kvm_start,
     .fini = kvm_finish, .timeout = 120)
{
    struct domain *d = boot_testdrv("polite", "", "");
    domain_request_stop(d);
    cr_assert(supervisor_wait(&sup, d, DOMAIN_TERMINAL, BOOT_MS), "polite did not stop");
    cr_assert_eq(tu_state(&sup, d), DOMAIN_STOPPED);
    cr_assert_eq(DSTAT_GET(d, orderly_stops), 1, "the stop was not orderly");
    cr_assert_eq(DSTAT_GET(d, forced_stops), 0);
    char *log = tu_domain_log(&sup, d);
    cr_assert(log && strstr(log, "testdrv: orderly stop") && strstr(log, "orderly stop requested"),
              "the stop hook did not run:\n%s", log ? log : "(no log)");
    free(log);

    d = boot_testdrv("deaf", "", "stop=ignore");
    uint64_t t0 = clock_mono_ns();
    domain_request_stop(d);
    cr_assert(supervisor_wait(&sup, d, DOMAIN_TERMINAL, DOMAIN_STOP_GRACE_MS + BOOT_MS),
              "deaf was never stopped");
    uint64_t took_ms = (clock_mono_ns() - t0) / 1000000u;
    cr_assert_eq(tu_state(&sup, d), DOMAIN_STOPPED, "deaf ended %s",
                 domain_state_name(tu_state(&sup, d)));
    cr_assert_geq(took_ms, DOMAIN_STOP_GRACE_MS, "forced after %lu ms, before the grace time",
                  (unsigned long)took_ms);
    cr_assert_eq(DSTAT_GET(d, forced_stops), 1, "the stop was not counted as forced");
    cr_assert_eq(DSTAT_GET(d, orderly_stops), 0);
    cr_assert_eq(d->auto_restarts, 0, "a forced operator stop was followed by a restart");
}

Test(supervision, restart_never_leaves_a_crashed_domain_down, .init = kvm_start, .fini = kvm_finish,
     .timeout = 120)
{
    struct domain *d = boot_ramblk("ram0", "restart=never");
    struct moat_client *c;
    struct moat_cap *cc = control_of(&c);
    cr_assert_eq(moat_inject(cc, "ram0", MOAT_FAULT_KILL), 0);
    cr_assert(tu_wait_until(&sup, d, down_for_good, BOOT_MS), "ram0 did not end");
    cr_assert_eq(tu_state(&sup, d), DOMAIN_CRASHED);
    cr_assert_eq(d->incarnation, 1, "restart=never restarted it");
    tu_client_close(NULL, cc, c);
}

/* A crash loop spends the budget, opens the breaker (the domain stays down
 * with the reason), and an operator restart closes it again. */
Test(supervision, a_crash_loop_opens_the_breaker_and_a_restart_closes_it, .init = kvm_start,
     .fini = kvm_finish, .timeout = 120)
{
    struct domain *d = boot_ramblk("ram0", "restarts=2/60s");
    struct moat_client *c;
    struct moat_cap *cc = control_of(&c);
    for (uint32_t i = 1; i <= 2; i++) {
        cr_assert_eq(moat_inject(cc, "ram0", MOAT_FAULT_KILL), 0);
        want_incarnation = i + 1;
        cr_assert(tu_wait_until(&sup, d, ready_again, BOOT_MS), "restart %u within the budget", i);
    }
    cr_assert_eq(moat_inject(cc, "ram0", MOAT_FAULT_KILL), 0);
    cr_assert(tu_wait_until(&sup, d, breaker_open, BOOT_MS), "the third crash in 60 s did not "
              "open the breaker (restarts=2/60s)");
    cr_assert(tu_wait_until(&sup, d, down_for_good, BOOT_MS));
    pthread_mutex_lock(&sup.lock);
    cr_assert_eq(d->state, DOMAIN_CRASHED);
    cr_assert_eq(d->incarnation, 3, "incarnation %u", d->incarnation);
    cr_assert(strstr(d->breaker_reason, "crash loop"), "reason: %s", d->breaker_reason);
    pthread_mutex_unlock(&sup.lock);
    /* A client gets a clear error while the breaker is open, not a hang. */
    struct moat_cap *blk;
    int rc = moat_open(c, "ram0.blk0", MOAT_RIGHT_READ, &blk);
    struct moat_session *s = NULL;
    if (rc == 0)
        rc = moat_session_open(blk, NULL, &s);
    cr_assert_eq(rc, -MOAT_EFAILED, "a session on a domain behind an open breaker: %s",
                 moat_strerror(rc));
    cr_assert_eq(moat_restart(cc, "ram0"), 0, "operator restart");
    want_incarnation = 4;
    cr_assert(tu_wait_until(&sup, d, ready_again, BOOT_MS), "ram0 did not come back");
    pthread_mutex_lock(&sup.lock);
    cr_assert_not(d->breaker_open, "the operator restart did not close the breaker");
    cr_assert_eq(restart_budget_used(&d->budget, clock_mono_ns()), 0, "budget not cleared");
    pthread_mutex_unlock(&sup.lock);
    tu_client_close(NULL, cc, c);
}

/* ---- transparent client recovery ---------------------------------------------------- */

#define NV_BS 512u
#define NV_REQS 24u

static void pattern(uint8_t *b, size_t len, uint32_t lba, uint32_t round)
{
    for (size_t i = 0; i < len; i++)
        b[i] = (uint8_t)(lba * 13u + round * 101u + i * 7u + 1u);
}

/* Writes and a flush in flight when the NVMe domain dies are submitted
 * again to its next incarnation: every one completes OK, exactly once, and
 * the data is on the device and in the image file. The controller swallows
 * one command (stall=) so something is surely in flight at the kill. */
Test(supervision, requests_in_flight_survive_a_crash_of_the_nvme_domain, .init = kvm_start,
     .fini = kvm_finish, .timeout = 120)
{
    char img[PATH_MAX];
    snprintf(img, sizeof img, "%s/nv.img", tu_tmpdir());
    int fd = open(img, O_RDWR | O_CREAT | O_TRUNC, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(ftruncate(fd, 16 << 20), 0);
    char spec[PATH_MAX + 256];
    snprintf(spec, sizeof spec, "name=nv kernel=%s mem=64M dma=32M dev=nvme:image=%s:stall=5",
             tu_guest("nvme"), img);
    struct domain *d = boot(spec);
    struct moat_client *c;
    struct moat_cap *cc = control_of(&c);
    struct moat_cap *blk;
    cr_assert_eq(moat_open(c, "nv.blk0", MOAT_RIGHT_READ | MOAT_RIGHT_WRITE, &blk), 0);
    struct moat_session *s;
    int rc = moat_session_open(blk, &(struct moat_session_params){ .entries = 32 }, &s);
    cr_assert_eq(rc, 0, "session: %s", moat_strerror(rc));

    static uint8_t bufs[NV_REQS][8 * NV_BS];
    struct moat_blk_req r[NV_REQS + 1];
    for (uint32_t i = 0; i < NV_REQS; i++) {
        pattern(bufs[i], sizeof bufs[i], i * 64, 1);
        r[i] = (struct moat_blk_req){ .op = MOAT_BLK_WRITE, .lba = i * 64, .blocks = 8,
                                      .buf = bufs[i], .user_data = i };
    }
    r[NV_REQS] = (struct moat_blk_req){ .op = MOAT_BLK_FLUSH, .blocks = 1, .user_data = 999 };
    cr_assert_eq(moat_blk_submit(s, r, NV_REQS + 1), (int)NV_REQS + 1);
    cr_assert_eq(moat_inject(cc, "nv", MOAT_FAULT_KILL), 0);
    bool seen[NV_REQS + 1] = { false };
    for (uint32_t got = 0; got < NV_REQS + 1;) {
        struct moat_completion cpl[8];
        int n = moat_wait(s, cpl, 8, 20000);
        cr_assert_gt(n, 0, "waiting for completions across the crash: %s (%u of %u)",
                     moat_strerror(n), got, NV_REQS + 1);
        for (int i = 0; i < n; i++) {
            uint32_t k = cpl[i].user_data == 999 ? NV_REQS : (uint32_t)cpl[i].user_data;
            cr_assert_lt(k, NV_REQS + 1, "completion for a request never made");
            cr_assert_not(seen[k], "request %u completed twice", k);
            cr_assert_eq(cpl[i].status, 0, "request %u failed across the crash: %s", k,
                         moat_strerror(cpl[i].status));
            seen[k] = true;
            got++;
        }
    }
    struct moat_session_stats st;
    moat_session_stats(s, &st);
    cr_assert_eq(st.recoveries, 1, "the session moved %llu times", (unsigned long long)st.recoveries);
    cr_assert_gt(st.resubmitted, 0, "nothing was in flight at the kill: the test proved nothing");
    pthread_mutex_lock(&sup.lock);
    cr_assert_eq(d->incarnation, 2, "incarnation %u", d->incarnation);
    cr_assert_eq(d->causes[0].crash.cause, CRASH_INJECTED);
    pthread_mutex_unlock(&sup.lock);
    uint8_t back[8 * NV_BS], want[8 * NV_BS];
    for (uint32_t i = 0; i < NV_REQS; i++) {
        pattern(want, sizeof want, i * 64, 1);
        cr_assert_eq(moat_blk_read(s, i * 64, 8, back), 0);
        cr_assert(!memcmp(back, want, sizeof want), "LBA %u reads back wrong after the crash",
                  i * 64);
        cr_assert_eq(pread(fd, back, sizeof back, (off_t)i * 64 * NV_BS), (ssize_t)sizeof back);
        cr_assert(!memcmp(back, want, sizeof want), "the image file lacks the write at LBA %u",
                  i * 64);
    }
    close(fd);
    moat_session_close(s);
    tu_client_close(NULL, cc, c);
}

/* A crash loop ends recovery with a clear error, not a hang. */
Test(supervision, a_session_gets_efailed_when_the_breaker_opens, .init = kvm_start, .fini = kvm_finish,
     .timeout = 120)
{
    struct domain *d = boot_ramblk("ram0", "restarts=1/60s");
    struct moat_client *c;
    struct moat_cap *cc = control_of(&c);
    struct moat_cap *blk;
    cr_assert_eq(moat_open(c, "ram0.blk0", MOAT_RIGHT_READ, &blk), 0);
    struct moat_session *s;
    cr_assert_eq(moat_session_open(blk, NULL, &s), 0);
    uint8_t buf[512];
    cr_assert_eq(moat_inject(cc, "ram0", MOAT_FAULT_KILL), 0);
    cr_assert_eq(moat_blk_read(s, 0, 1, buf), 0, "the first crash is absorbed");
    cr_assert_eq(moat_inject(cc, "ram0", MOAT_FAULT_KILL), 0);
    cr_assert(tu_wait_until(&sup, d, breaker_open, BOOT_MS));
    uint64_t t0 = clock_mono_ns();
    int rc = moat_blk_read(s, 0, 1, buf);
    cr_assert_eq(rc, -MOAT_EFAILED, "a read once the breaker is open: %s", moat_strerror(rc));
    cr_assert_lt(clock_mono_ns() - t0, 5000000000ull, "the error took longer than 5 s");
    moat_session_close(s);
    tu_client_close(NULL, cc, c);
}

/* A read the domain completed just before it died: its data is copied out
 * of the session's data area after the teardown, which must leave that
 * area alone (it once scrubbed it under the client). */
Test(supervision, a_read_completed_before_a_crash_keeps_its_data, .init = kvm_start, .fini = kvm_finish,
     .timeout = 60)
{
    struct domain *d = boot_ramblk("ram0", "restart=never");
    struct moat_client *c;
    struct moat_cap *blk;
    cr_assert_eq(moat_connect(sock, &c), 0);
    cr_assert_eq(moat_open(c, "ram0.blk0", MOAT_RIGHT_READ | MOAT_RIGHT_WRITE, &blk), 0);
    struct moat_session *s;
    cr_assert_eq(moat_session_open(blk, NULL, &s), 0);
    uint8_t w[4096], r[4096];
    for (size_t i = 0; i < sizeof w; i++)
        w[i] = (uint8_t)(i * 5 + 1);
    cr_assert_eq(moat_blk_write(s, 8, 8, w), 0);
    memset(r, 0xEE, sizeof r);
    struct moat_blk_req q = { .op = MOAT_BLK_READ, .lba = 8, .blocks = 8, .buf = r, .user_data = 7 };
    cr_assert_eq(moat_blk_submit(s, &q, 1), 1);
    /* The domain has completed it (the completion is in the ring) ... */
    uint32_t avail = 0;
    uint64_t until = clock_mono_ns() + 5000000000ull;
    while ((moat_ring_avail(&s->cq, &avail) != MOAT_RING_OK || avail == 0) &&
           clock_mono_ns() < until)
        sched_yield();
    cr_assert_eq(avail, 1, "the read did not complete");
    /* ... and dies; its teardown is over before the client looks. */
    struct crash_info why = { .cause = CRASH_INJECTED };
    domain_kill(d, &why);
    cr_assert(supervisor_wait(&sup, d, DOMAIN_TERMINAL, BOOT_MS));
    struct moat_completion cpl;
    cr_assert_eq(moat_poll(s, &cpl, 1), 1, "the completed read was not delivered");
    cr_assert_eq(cpl.status, 0);
    cr_assert(!memcmp(r, w, sizeof r), "the read's data changed under the client (%02x %02x, "
              "want %02x %02x)", r[0], r[1], w[0], w[1]);
    moat_session_close(s);
    tu_client_close(NULL, blk, c);
}

/* DESIGN §5.3 in a restart: the old incarnation's window generation moves
 * on before anything else runs, so a mapping (or handle) a device model
 * kept from it is stale, and an access to the old window's range that no
 * new window covers is refused as revoked and audited. */
static bool ready_inc2(const struct domain *d)
{
    return d->state == DOMAIN_READY && d->incarnation >= 2;
}

Test(supervision, an_old_incarnations_dma_is_refused_after_a_restart, .init = kvm_start,
     .fini = kvm_finish, .timeout = 60)
{
    struct domain *d = boot_testdrv("drv", "restart=on-failure", "");
    uint64_t iova = d->win_info[0].iova;
    struct dma_handle old = d->win[0];
    struct dma_mapping m;
    cr_assert_not_null(broker_dma_map(&sup.broker, d->id, "test", iova, 4096, DMA_TO_DEVICE, &m));
    broker_dma_unmap(&sup.broker, &m);
    m.host = (void *)1;     /* as a device model would keep it */
    struct crash_info why = { .cause = CRASH_INJECTED };
    domain_kill(d, &why);
    cr_assert(tu_wait_until(&sup, d, ready_inc2, BOOT_MS), "drv did not come back");
    cr_assert_not(broker_mapping_valid(&sup.broker, &m),
                  "a mapping of the old incarnation is still valid");
    char why_err[128];
    cr_assert_not(broker_revoke(&sup.broker, old, why_err, sizeof why_err),
                  "the old incarnation's window handle still works");
    /* The new incarnation's window sits elsewhere or at the same IOVA; an
     * access past both is refused, and the refusal is audited. */
    uint64_t seq = broker_audit_seq(&sup.broker);
    struct dma_mapping m2;
    cr_assert_null(broker_dma_map(&sup.broker, d->id, "test", iova + (4ull << 20), 64,
                                  DMA_TO_DEVICE, &m2));
    cr_assert_gt(broker_audit_seq(&sup.broker), seq, "the refusal was not audited");
}

/* The property whose absence deadlocked moat: a device worker that must
 * fail-stop a domain does not wait for the supervisor's lock. The test
 * itself holds sup.lock while nica's device worker delivers a frame into
 * nicb's out-of-window ring; nicb's end must be decided all the same
 * (before, the worker spun on the lock until it was free: with a teardown
 * holding it and waiting for that worker, forever). */
Test(supervision, a_worker_fail_stops_a_domain_while_the_supervisor_lock_is_held,
     .init = kvm_start, .fini = kvm_finish, .timeout = 60)
{
    char spec[1024];
    snprintf(spec, sizeof spec, NIC_SPEC, "nica", tu_guest("vnet"), "", "52-54-00-aa-00-01",
             "name=nic0");
    boot(spec);
    snprintf(spec, sizeof spec, NIC_SPEC, "nicb", tu_guest("vnet"), "restart=never",
             "52-54-00-bb-00-02", "name=nic0 wild_rx=1");
    struct domain *b = boot(spec);
    struct moat_client *c;
    struct moat_cap *cap;
    struct moat_session *s;
    cr_assert_eq(moat_connect(sock, &c), 0);
    cr_assert_eq(moat_open(c, "nica.nic0", MOAT_RIGHT_READ | MOAT_RIGHT_WRITE, &cap), 0);
    cr_assert_eq(moat_session_open(cap, &(struct moat_session_params){ .entries = 64 }, &s), 0);
    static uint8_t frame[64];
    memset(frame, 0xff, 6);
    frame[12] = 0x88, frame[13] = 0xb5;
    struct moat_frame fr = { .data = frame, .len = sizeof frame };

    pthread_mutex_lock(&sup.lock);
    uint64_t until = clock_mono_ns() + 5000000000ull;
    while (!atomic_load(&b->stop) && clock_mono_ns() < until) {
        moat_nic_send(s, &fr, 1);       /* a broadcast: the switch gives nicb a copy */
        struct moat_frame none = { 0 };
        moat_nic_recv(s, &none, 0, 0);
        sched_yield();
    }
    bool decided = atomic_load(&b->stop);
    pthread_mutex_unlock(&sup.lock);
    cr_assert(decided, "nicb's fail-stop waited for the supervisor's lock");
    cr_assert(supervisor_wait(&sup, b, DOMAIN_TERMINAL, BOOT_MS));
    cr_assert_eq(b->crash.cause, CRASH_POLICY, "nicb ended by %s", crash_cause_name(b->crash.cause));
    moat_session_close(s);
    tu_client_close(NULL, cap, c);
}
