/* Domain lifecycle, the domain thread and its run loop (contract in
 * domain.h; the other parts of a domain are listed in domain_internal.h).
 * Over 600 lines: the incarnation state machine (end, restart decision,
 * stop, inject, watchdog) reads best in one place; it was split from
 * setup, platform ports and exit decoding. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include "boot_setup.h"
#include "devices.h"
#include "domain.h"
#include "elf_load.h"
#include "enum_name.h"
#include "capsvc.h"
#include "moat/session_abi.h"
#include "log.h"
#include "moat/layout.h"
#include "domain_internal.h"
#include "supervisor.h"

#define SIG_KICK SIGUSR1
#define DOMAIN_IMAGE_MAX (64u << 20)

static const char *const state_names[] = {
    [DOMAIN_CREATED] = "created", [DOMAIN_BOOTING] = "booting",
    [DOMAIN_READY] = "ready", [DOMAIN_CRASHED] = "crashed",
    [DOMAIN_STOPPED] = "stopped",
};

const char *domain_state_name(enum domain_state s)
{
    return ENUM_NAME(state_names, s);
}

bool domain_transition_ok(enum domain_state from, enum domain_state to)
{
    switch (from) {
    case DOMAIN_CREATED:
        return to == DOMAIN_BOOTING || to == DOMAIN_CRASHED || to == DOMAIN_STOPPED;
    case DOMAIN_BOOTING:
        return to == DOMAIN_READY || to == DOMAIN_CRASHED || to == DOMAIN_STOPPED;
    case DOMAIN_READY:
        return to == DOMAIN_CRASHED || to == DOMAIN_STOPPED;
    case DOMAIN_CRASHED:
    case DOMAIN_STOPPED:
        return to == DOMAIN_CREATED;    /* a new incarnation */
    }
    return false;
}

/* Log the first few of a repeated event, then only at powers of two. */
bool domain_should_log(uint64_t count)
{
    return count <= 8 || (count & (count - 1)) == 0;
}

/* Caller holds sup->lock. */
void domain_set_state(struct domain *d, enum domain_state to)
{
    if (!domain_transition_ok(d->state, to)) {
        log_error(d->cfg.name, "internal: refused state change %s -> %s",
                  domain_state_name(d->state), domain_state_name(to));
        return;
    }
    d->state = to;
    pthread_cond_broadcast(&d->sup->changed);
}

/* The signal only has to get the domain thread out of KVM_RUN: its
 * handler sets immediate_exit on the run structure of the incarnation the
 * thread is running (NULL between incarnations), so a kick that lands just
 * before KVM_RUN is not lost. */
static _Thread_local struct kvm_run *tls_run;

static void kick_handler(int sig)
{
    (void)sig;
    if (tls_run)
        tls_run->immediate_exit = 1;
}

static pthread_once_t kick_once = PTHREAD_ONCE_INIT;

static void install_kick_handler(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = kick_handler;   /* no SA_RESTART: KVM_RUN must return */
    sigemptyset(&sa.sa_mask);
    sigaction(SIG_KICK, &sa, NULL);
}

void domain_kick_setup(void)
{
    pthread_once(&kick_once, install_kick_handler);
}

void domain_end_post(struct domain *d, enum domain_state st, const struct crash_info *why,
                     uint32_t code)
{
    pthread_mutex_lock(&d->end.lock);
    bool first = !d->end.decided;
    if (first) {
        d->end.decided = true;
        d->end.t_ns = clock_mono_ns();
        d->end.state = st;
        if (why)
            d->end.crash = *why;
        else
            memset(&d->end.crash, 0, sizeof d->end.crash);
        d->end.code = code;
    }
    pthread_mutex_unlock(&d->end.lock);
    if (!first)
        return;
    atomic_store(&d->stop, true);
    /* The domain thread lives until domain_join, after every incarnation
     * (and every device worker that could post) has ended. */
    if (atomic_load(&d->thread_started) && !pthread_equal(pthread_self(), d->thread))
        pthread_kill(d->thread, SIG_KICK);
}

/* Caller holds sup->lock: is an incarnation running that an end applies to? */
static bool running_locked(const struct domain *d)
{
    return (d->state == DOMAIN_BOOTING || d->state == DOMAIN_READY) && !atomic_load(&d->stop);
}

void domain_kill(struct domain *d, const struct crash_info *why)
{
    pthread_mutex_lock(&d->sup->lock);
    if (running_locked(d))
        domain_end_post(d, DOMAIN_CRASHED, why, 0);
    pthread_mutex_unlock(&d->sup->lock);
}

/* Caller holds sup->lock, d is READY with its VM live: ask the guest for
 * an orderly stop if its run loop says it honours one. */
static bool ask_orderly_stop(struct domain *d)
{
    struct moat_platform_page *pp = (struct moat_platform_page *)(d->vm.ram +
                                                                  MOAT_GPA_PLATFORM_PAGE);
    uint32_t flags = __atomic_load_n(&pp->guest_flags, __ATOMIC_ACQUIRE);  /* a hint */
    if (!(flags & MOAT_GUEST_F_ORDERLY_STOP))
        return false;
    __atomic_store_n(&pp->stop_req, 1u, __ATOMIC_RELEASE);
    if (d->session_vector)      /* a sleeping guest wakes now, else at its next tick */
        vm_signal_msi(&d->vm, d->session_vector);
    d->stop_deadline_ns = clock_mono_ns() + (uint64_t)DOMAIN_STOP_GRACE_MS * 1000000u;
    log_info(d->cfg.name, "orderly stop asked of the driver (forced after %u ms)",
             DOMAIN_STOP_GRACE_MS);
    return true;
}

bool domain_stop_pending(const struct domain *d)
{
    return d->stop_deadline_ns && running_locked(d);
}

bool domain_stop_overdue(struct domain *d, uint64_t now)
{
    if (!domain_stop_pending(d) || now < d->stop_deadline_ns)
        return false;
    log_error(d->cfg.name, "did not finish its orderly stop within %u ms: stopping it by force",
              DOMAIN_STOP_GRACE_MS);
    DSTAT_INC(d, forced_stops);
    domain_end_post(d, DOMAIN_STOPPED, NULL, 0);
    return true;
}

void domain_request_stop(struct domain *d)
{
    pthread_mutex_lock(&d->sup->lock);
    d->want_down = true;
    if (d->state == DOMAIN_CREATED && !atomic_load(&d->thread_started))
        domain_set_state(d, DOMAIN_STOPPED);
    else if (domain_stop_pending(d))
        ;                       /* already asked; the watchdog holds the deadline */
    else if (running_locked(d) &&
             !(d->state == DOMAIN_READY && d->vm_live && ask_orderly_stop(d)))
        domain_end_post(d, DOMAIN_STOPPED, NULL, 0);
    if (d->restarting) {
        d->restarting = false;      /* the domain thread parks instead */
        log_info(d->cfg.name, "pending restart cancelled by a stop");
    }
    pthread_cond_broadcast(&d->sup->changed);
    pthread_mutex_unlock(&d->sup->lock);
}

void domain_crash_vmm_error(struct crash_info *ci, const char *msg)
{
    memset(ci, 0, sizeof *ci);
    ci->cause = CRASH_VMM_ERROR;
    snprintf(ci->detail, sizeof ci->detail, "%s", msg);
}

/* The incarnation has stopped (its vCPU no longer runs) and no other
 * thread may touch its VM any more (vm_live is clear): quiesce the devices
 * (their workers may still DMA and interrupt), destroy the VM, move the
 * caps on (generations bumped, sessions revoked and scrubbed), then revoke
 * the windows (generation bumped, scrubbed, freed). No lock is held. */
static void teardown(struct domain *d)
{
    supervisor_set_vm(d->sup, d->id, NULL);
    pci_bus_quiesce(&d->pci);
    vm_release(&d->vm);         /* stopped for good; the kernel's part goes on aside */
    capsvc_domain_down(&d->sup->caps, d);
    broker_revoke_domain(&d->sup->broker, d->id);
    d->n_win = 0;
}

/* Run the incarnation's vCPU until an end is posted. */
static void run_vcpu(struct domain *d)
{
    struct kvm_run *run = d->vm.run;
    tls_run = run;
    d->boot_st.first_run_ns = clock_mono_ns();
    d->exits_at_first_run = domain_total_exits(d);
    while (!atomic_load(&d->stop)) {
        if (ioctl(d->vm.vcpu_fd, KVM_RUN, 0) < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                run->immediate_exit = 0;
                DSTAT_INC(d, exits_intr);
                continue;
            }
            struct crash_info ci;
            char msg[128];
            snprintf(msg, sizeof msg, "KVM_RUN failed: %s", strerror(errno));
            domain_crash_vmm_error(&ci, msg);
            domain_end_post(d, DOMAIN_CRASHED, &ci, 0);
            break;
        }
        switch (run->exit_reason) {
        case KVM_EXIT_IO:
            domain_handle_io(d, run);
            break;
        case KVM_EXIT_MMIO:
            domain_handle_mmio(d, run);
            break;
        case KVM_EXIT_INTR:
            DSTAT_INC(d, exits_intr);
            break;
        default: {
            struct crash_info ci;
            if (crash_from_exit(run, &ci)) {
                domain_add_vcpu_regs(d, &ci);
                domain_end_post(d, DOMAIN_CRASHED, &ci, 0);
            }
            break;
        }
        }
    }
    tls_run = NULL;
    uart_flush(&d->com1);
}

/* Caller holds sup->lock. Remember why the incarnation ended. */
static void record_cause(struct domain *d, uint64_t t_detect)
{
    struct domain_cause *c = &d->causes[d->n_causes++ % DOMAIN_CAUSES];
    *c = (struct domain_cause){ .t_ns = d->t_end_ns, .t_detect_ns = t_detect,
                                .incarnation = d->incarnation,
                                .state = d->state, .crash = d->crash,
                                .exit_code = d->exit_code };
}

bool domain_coming_back(const struct domain *d)
{
    if (d->breaker_open || d->want_down)
        return false;
    if (d->restarting || d->cmd == DOMAIN_CMD_RESTART || d->state == DOMAIN_CREATED ||
        d->state == DOMAIN_BOOTING)
        return true;
    /* Ending: whether it restarts is decided after its teardown. */
    return d->state == DOMAIN_READY && domain_restart_policy(d) != RESTART_NEVER;
}

enum restart_policy domain_restart_policy(const struct domain *d)
{
    if (d->cfg.restart != RESTART_DEFAULT)
        return d->cfg.restart;
    return d->cfg.n_devices || d->served_caps ? RESTART_ON_FAILURE : RESTART_NEVER;
}

/* Caller holds sup->lock; the incarnation just ended (state terminal).
 * Apply the restart policy: set restarting (+ restart_at_ns), open the
 * breaker, or leave the domain down. */
static void decide_restart(struct domain *d)
{
    if (d->cmd == DOMAIN_CMD_RESTART)
        return;     /* an operator restart follows at once */
    if (d->want_down || d->cmd == DOMAIN_CMD_SHUTDOWN) {
        capsvc_domain_stays_down(&d->sup->caps, d, MOAT_DOWN_STAYS);
        return;     /* an operator stop, or moat is shutting down */
    }
    uint64_t delay;
    bool crashed = d->state == DOMAIN_CRASHED;
    bool failed = crashed || d->exit_code != 0;     /* a non-zero exit is a failure */
    enum restart_policy pol = domain_restart_policy(d);
    switch (restart_decide(pol, failed, &d->budget, d->t_end_ns, &delay)) {
    case RESTART_STAY_DOWN:
        capsvc_domain_stays_down(&d->sup->caps, d, MOAT_DOWN_STAYS);
        if (crashed && pol == RESTART_NEVER && d->cfg.restart == RESTART_DEFAULT &&
            d->incarnation > 0)
            log_info(d->cfg.name, "not restarted: not a driver domain (no device, no cap; "
                     "set restart=on-failure to restart it)");
        return;
    case RESTART_AFTER_DELAY:
        d->restarting = true;
        d->restart_at_ns = d->t_end_ns + delay;
        log_info(d->cfg.name, "restart %u of %u allowed in %u s (restart=%s) %s%.0f ms",
                 d->budget.n, d->budget.max, d->budget.window_ms / 1000,
                 restart_policy_name(pol), delay ? "after " : "in ", (double)delay / 1e6);
        return;
    case RESTART_BREAKER_OPEN:
        d->breaker_open = true;
        d->crash_loop = false;      /* it did its job */
        snprintf(d->breaker_reason, sizeof d->breaker_reason,
                 "crash loop: %u restarts within %u ms were not enough; last end: %s",
                 d->budget.max, d->budget.window_ms,
                 crashed ? crash_cause_name(d->crash.cause) : "non-zero exit");
        log_error(d->cfg.name, "breaker open, staying down: %s (moatctl restart %s closes it)",
                  d->breaker_reason, d->cfg.name);
        capsvc_domain_stays_down(&d->sup->caps, d, MOAT_DOWN_BREAKER);
        return;
    }
}

/* End the incarnation that ran (or failed to build): teardown with no
 * lock, then the terminal state, the cause and the restart decision. */
static void finish_incarnation(struct domain *d, bool built, const char *build_err)
{
    struct supervisor *s = d->sup;
    pthread_mutex_lock(&d->end.lock);
    if (!built) {
        domain_crash_vmm_error(&d->end.crash, build_err);
        d->end.state = DOMAIN_CRASHED;
        d->end.decided = true;
    }
    if (!d->end.decided) {      /* stop flag without a decision: orderly */
        d->end.decided = true;
        d->end.state = DOMAIN_STOPPED;
        d->end.code = 0;
    }
    enum domain_state st = d->end.state;
    struct crash_info ci = d->end.crash;
    uint32_t code = d->end.code;
    uint64_t t_detect = d->end.t_ns ? d->end.t_ns : clock_mono_ns();
    pthread_mutex_unlock(&d->end.lock);
    if (built && st == DOMAIN_CRASHED)
        domain_add_vcpu_regs(d, &ci);

    pthread_mutex_lock(&s->lock);
    d->vm_live = false;         /* from here on only this thread touches the VM */
    pthread_mutex_unlock(&s->lock);
    /* DESIGN §5.3, with no lock held: observers of CRASHED/STOPPED know the
     * vCPU is gone, the devices quiesced and every window scrubbed and
     * freed. */
    teardown(d);

    pthread_mutex_lock(&s->lock);
    d->t_end_ns = clock_mono_ns();
    if (st == DOMAIN_CRASHED) {
        d->crash = ci;
        if (built)
            log_error(d->cfg.name, "crashed: %s: %s", crash_cause_name(ci.cause), ci.detail);
        else
            log_error(d->cfg.name, "could not start: %s", build_err);
    } else {
        d->exit_code = code;
        if (d->stop_deadline_ns && t_detect < d->stop_deadline_ns) {
            DSTAT_INC(d, orderly_stops);
            log_info(d->cfg.name, "stopped (exit code %u) in an orderly way, %.1f ms after "
                     "the request", code,
                     (double)(t_detect - (d->stop_deadline_ns -
                                          (uint64_t)DOMAIN_STOP_GRACE_MS * 1000000u)) / 1e6);
        } else {
            log_info(d->cfg.name, "stopped (exit code %u)", code);
        }
    }
    d->stop_deadline_ns = 0;
    domain_set_state(d, st);
    record_cause(d, t_detect);
    decide_restart(d);
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->lock);
}

/* Wait (sup->lock held) for the next incarnation to be due: true to build
 * it, false to leave the thread (shutdown). */
static bool wait_next(struct domain *d)
{
    struct supervisor *s = d->sup;
    for (;;) {
        if (d->cmd == DOMAIN_CMD_SHUTDOWN) {
            d->restarting = false;
            return false;
        }
        if (d->cmd == DOMAIN_CMD_RESTART) {     /* operator: now, breaker closed */
            d->cmd = DOMAIN_CMD_NONE;
            d->breaker_open = false;
            d->crash_loop = false;
            d->breaker_reason[0] = '\0';
            restart_budget_clear(&d->budget);
            d->want_down = false;
            d->restarting = true;
            d->restarts++;
            log_info(d->cfg.name, "restarting (operator restart; %llu restart(s) so far)",
                     (unsigned long long)d->restarts);
            return true;
        }
        uint64_t now = clock_mono_ns();
        if (d->restarting && now >= d->restart_at_ns) {
            d->restarts++;
            d->auto_restarts++;
            log_info(d->cfg.name, "restarting (automatic restart %llu after %s)",
                     (unsigned long long)d->auto_restarts,
                     d->state == DOMAIN_CRASHED ? crash_cause_name(d->crash.cause) : "an exit");
            return true;
        }
        if (d->restarting) {
            struct timespec dl = { .tv_sec = (time_t)(d->restart_at_ns / 1000000000ull),
                                   .tv_nsec = (long)(d->restart_at_ns % 1000000000ull) };
            pthread_cond_timedwait(&s->changed, &s->lock, &dl);
        } else {
            pthread_cond_wait(&s->changed, &s->lock);
        }
    }
}


/* The domain thread: run the incarnation built for it, end it, and build
 * the next while the policy (or an operator) asks for one. */
static void *domain_thread(void *arg)
{
    struct domain *d = arg;
    struct supervisor *s = d->sup;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIG_KICK);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    bool built = true;
    char err[256] = "";
    for (;;) {
        if (built)
            run_vcpu(d);
        finish_incarnation(d, built, err);
        pthread_mutex_lock(&s->lock);
        bool again = wait_next(d);
        if (again) {
            domain_set_state(d, DOMAIN_CREATED);
            d->restarting = false;
        }
        pthread_mutex_unlock(&s->lock);
        if (!again)
            return NULL;
        built = domain_build_incarnation(d, err, sizeof err);
    }
}

static bool start_failed(struct domain *d, const char *err)
{
    struct supervisor *s = d->sup;
    pthread_mutex_lock(&s->lock);
    d->vm_live = false;
    pthread_mutex_unlock(&s->lock);
    teardown(d);
    pthread_mutex_lock(&s->lock);
    domain_crash_vmm_error(&d->crash, err);
    d->t_end_ns = clock_mono_ns();
    domain_set_state(d, DOMAIN_CRASHED);
    record_cause(d, d->t_end_ns);
    log_error(d->cfg.name, "could not start: %s", err);
    pthread_mutex_unlock(&s->lock);
    return false;
}

bool domain_start(struct domain *d, char *err, size_t errlen)
{
    struct supervisor *s = d->sup;
    if (!domain_build_incarnation(d, err, errlen))
        return start_failed(d, err);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    if (d->cfg.pin_cpu)
        pthread_attr_setaffinity_np(&attr, sizeof d->vcpu_cpus, &d->vcpu_cpus);
    pthread_mutex_lock(&s->lock);
    int rc = pthread_create(&d->thread, &attr, domain_thread, d);
    if (rc == 0)
        atomic_store(&d->thread_started, true);
    pthread_mutex_unlock(&s->lock);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the domain thread: %s", strerror(rc));
        return start_failed(d, err);
    }
    char tname[16];     /* visible in top -H and perf */
    snprintf(tname, sizeof tname, "vcpu-%.10s", d->cfg.name);
    pthread_setname_np(d->thread, tname);
    return true;
}

static struct timespec deadline_in_ms(unsigned ms)
{
    uint64_t t = clock_mono_ns() + (uint64_t)ms * 1000000ull;
    return (struct timespec){ .tv_sec = (time_t)(t / 1000000000ull),
                              .tv_nsec = (long)(t % 1000000000ull) };
}

bool domain_restart(struct domain *d, char *err, size_t errlen)
{
    struct supervisor *s = d->sup;
    pthread_mutex_lock(&s->lock);
    if (!atomic_load(&d->thread_started)) {
        /* Never started, or its first start failed: start it here. */
        if (d->state != DOMAIN_CREATED && d->state != DOMAIN_CRASHED &&
            d->state != DOMAIN_STOPPED) {
            pthread_mutex_unlock(&s->lock);
            snprintf(err, errlen, "internal: domain in state %s has no thread",
                     domain_state_name(d->state));
            return false;
        }
        d->state = DOMAIN_CREATED;
        d->want_down = false;
        d->breaker_open = false;
        restart_budget_clear(&d->budget);
        d->restarts++;
        pthread_cond_broadcast(&s->changed);
        pthread_mutex_unlock(&s->lock);
        return domain_start(d, err, errlen);
    }
    if (d->cmd != DOMAIN_CMD_NONE) {
        pthread_mutex_unlock(&s->lock);
        snprintf(err, errlen, "a restart or shutdown of this domain is already under way");
        return false;
    }
    uint32_t attempts = d->attempts;
    d->cmd = DOMAIN_CMD_RESTART;
    if (running_locked(d))
        domain_end_post(d, DOMAIN_STOPPED, NULL, 0);
    pthread_cond_broadcast(&s->changed);
    struct timespec dl = deadline_in_ms(10000);
    while (d->attempts == attempts &&
           pthread_cond_timedwait(&s->changed, &s->lock, &dl) != ETIMEDOUT) {
    }
    bool started = d->attempts != attempts;
    bool ok = started && d->last_start_ok;
    if (!started)
        snprintf(err, errlen, "the running incarnation did not end within 10 s");
    else if (!ok)
        snprintf(err, errlen, "the new incarnation could not start: %s", d->crash.detail);
    pthread_mutex_unlock(&s->lock);
    return ok;
}

/* Caller holds sup->lock, d's VM is live: hand kind to the guest. */
static int inject_in_guest(struct domain *d, uint32_t kind, char *err, size_t errlen)
{
    struct moat_platform_page *pp = (struct moat_platform_page *)(d->vm.ram +
                                                                  MOAT_GPA_PLATFORM_PAGE);
    uint32_t can = __atomic_load_n(&pp->faults, __ATOMIC_ACQUIRE);     /* hostile: a hint */
    if (!(can & MOAT_FAULT_BIT(kind))) {
        snprintf(err, errlen, "%s cannot raise '%s' (its guest offers 0x%x; device faults need "
                 "a driver with a fault hook)", d->cfg.name, moat_fault_name(kind), can);
        return -MOAT_ENOTSUP;
    }
    uint64_t arg = 0;
    if (kind == MOAT_FAULT_WILD_DMA_OTHER &&
        !broker_other_window(&d->sup->broker, d->id, &arg)) {
        snprintf(err, errlen, "no other domain has a DMA window to aim at");
        return -MOAT_ENOTSUP;
    }
    pp->fault_kind = kind;
    pp->fault_arg = arg;
    __atomic_store_n(&pp->fault_seq, pp->fault_seq + 1, __ATOMIC_RELEASE);
    /* A polling domain sees it at once; a sleeping one on this interrupt
     * (or its next timer tick). */
    if (d->session_vector)
        vm_signal_msi(&d->vm, d->session_vector);
    return 0;
}

int domain_inject(struct domain *d, uint32_t kind, const char *who, char *err, size_t errlen)
{
    if (kind == 0 || kind > MOAT_FAULT_MAX) {
        snprintf(err, errlen, "no fault kind %u", kind);
        return -MOAT_EINVAL;
    }
    int rc = 0;
    pthread_mutex_lock(&d->sup->lock);
    if (!running_locked(d) || !d->vm_live) {
        snprintf(err, errlen, "%s is not running (%s)", d->cfg.name, domain_state_name(d->state));
        rc = domain_coming_back(d) ? -MOAT_ERESTARTING : -MOAT_EDOWN;
    } else if (kind == MOAT_FAULT_KILL || kind == MOAT_FAULT_CRASH_LOOP) {
        struct crash_info ci = { .cause = CRASH_INJECTED };
        snprintf(ci.detail, sizeof ci.detail, "%s injected by %s", moat_fault_name(kind), who);
        d->crash_loop = kind == MOAT_FAULT_CRASH_LOOP;
        domain_end_post(d, DOMAIN_CRASHED, &ci, 0);
    } else {
        rc = inject_in_guest(d, kind, err, errlen);
    }
    pthread_mutex_unlock(&d->sup->lock);
    if (rc == 0)
        log_info(d->cfg.name, "fault '%s' injected by %s", moat_fault_name(kind), who);
    return rc;
}

void domain_join(struct domain *d)
{
    if (!atomic_load(&d->thread_started))
        return;
    pthread_mutex_lock(&d->sup->lock);
    d->cmd = DOMAIN_CMD_SHUTDOWN;
    d->want_down = true;
    if (running_locked(d))
        domain_end_post(d, DOMAIN_STOPPED, NULL, 0);
    pthread_cond_broadcast(&d->sup->changed);
    pthread_mutex_unlock(&d->sup->lock);
    pthread_join(d->thread, NULL);
    atomic_store(&d->thread_started, false);
    pthread_mutex_lock(&d->sup->lock);
    d->cmd = DOMAIN_CMD_NONE;
    pthread_mutex_unlock(&d->sup->lock);
}

void domain_fini(struct domain *d)
{
    domain_join(d);
    vm_destroy(&d->vm);
    pci_bus_fini(&d->pci);
    bus_free(&d->pio);
    bus_free(&d->mmio);
    free(d->image);
    d->image = NULL;
    if (d->log_fd >= 0)
        close(d->log_fd);
    d->log_fd = -1;
    pthread_mutex_destroy(&d->end.lock);
}

uint64_t domain_heartbeat(struct domain *d)
{
    pthread_mutex_lock(&d->sup->lock);
    uint64_t hb = d->vm_live ? domain_read_heartbeat(d) : 0;
    pthread_mutex_unlock(&d->sup->lock);
    return hb;
}

bool domain_watchdog_check(struct domain *d, uint64_t now, struct crash_info *why)
{
    if (!running_locked(d) || !d->vm_live)
        return false;
    memset(why, 0, sizeof *why);
    if (d->state == DOMAIN_BOOTING) {
        uint32_t limit = d->cfg.boot_timeout_ms ? d->cfg.boot_timeout_ms : d->sup->boot_timeout_ms;
        if (now - d->t_start_ns <= (uint64_t)limit * 1000000u)
            return false;
        why->cause = CRASH_BOOT_TIMEOUT;
        snprintf(why->detail, sizeof why->detail, "did not announce ready within %u ms", limit);
        return true;
    }
    if (d->state != DOMAIN_READY)
        return false;
    uint64_t hb = domain_read_heartbeat(d);
    if (hb != d->hb_last) {
        d->hb_last = hb;
        d->hb_changed_ns = now;
        return false;
    }
    uint32_t limit = d->cfg.watchdog_ms ? d->cfg.watchdog_ms : d->sup->watchdog_ms;
    if (now - d->hb_changed_ns <= (uint64_t)limit * 1000000u)
        return false;
    why->cause = CRASH_WATCHDOG;
    snprintf(why->detail, sizeof why->detail, "heartbeat stuck at %llu for %llu ms (limit %u ms)",
             (unsigned long long)hb, (unsigned long long)((now - d->hb_changed_ns) / 1000000u),
             limit);
    return true;
}
