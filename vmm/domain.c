/* Domain lifecycle and vCPU thread (contract in domain.h). */
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
#include "supervisor.h"

#define SIG_KICK SIGUSR1
#define IMAGE_MAX (64u << 20)

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
static bool should_log(uint64_t count)
{
    return count <= 8 || (count & (count - 1)) == 0;
}

/* One record in this domain's audit trail (any thread). */
#define AUDIT(d, kind, ...) audit_record(&(d)->sup->audit, (d)->id, (kind), __VA_ARGS__)

/* Caller holds sup->lock. */
static void set_state(struct domain *d, enum domain_state to)
{
    if (!domain_transition_ok(d->state, to)) {
        log_error(d->cfg.name, "internal: refused state change %s -> %s",
                  domain_state_name(d->state), domain_state_name(to));
        return;
    }
    d->state = to;
    pthread_cond_broadcast(&d->sup->changed);
}

static void console_sink(void *ctx, const char *line, size_t len)
{
    struct domain *d = ctx;
    char buf[UART_LINE_MAX + MOAT_NAME_MAX + 8];
    if (d->log_fd >= 0) {
        memcpy(buf, line, len);
        buf[len] = '\n';
        ssize_t w = write(d->log_fd, buf, len + 1);
        (void)w;
    }
    if (d->cfg.console_echo || d->sup->echo_all) {
        int n = snprintf(buf, sizeof buf, "[%s] %.*s\n", d->cfg.name, (int)len, line);
        if (n > 0) {
            ssize_t w = write(STDOUT_FILENO, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf);
            (void)w;
        }
    }
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

void domain_end_post(struct domain *d, enum domain_state st, const struct crash_info *why,
                     uint32_t code)
{
    pthread_mutex_lock(&d->end.lock);
    bool first = !d->end.decided;
    if (first) {
        d->end.decided = true;
        d->end.t_ns = monotonic_ns();
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
    d->stop_deadline_ns = monotonic_ns() + (uint64_t)DOMAIN_STOP_GRACE_MS * 1000000u;
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
        set_state(d, DOMAIN_STOPPED);
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

static void crash_vmm_error(struct crash_info *ci, const char *msg)
{
    memset(ci, 0, sizeof *ci);
    ci->cause = CRASH_VMM_ERROR;
    snprintf(ci->detail, sizeof ci->detail, "%s", msg);
}

/* ---- platform port ops (run on the vCPU thread) ------------------------- */

static uint64_t read_heartbeat(const struct domain *d)
{
    const uint64_t *hb = (const uint64_t *)(d->vm.ram + MOAT_GPA_PLATFORM_PAGE +
                                            offsetof(struct moat_platform_page, heartbeat));
    return __atomic_load_n(hb, __ATOMIC_RELAXED);
}

static uint64_t total_exits(const struct domain *d)
{
    return DSTAT_GET(d, exits_io) + DSTAT_GET(d, exits_mmio) + DSTAT_GET(d, exits_intr);
}

/* At READY, on the vCPU thread: the guest's boot marks (hostile, copied
 * once) and moat's stamps become the phase breakdown. */
static void note_boot_phases(struct domain *d)
{
    const volatile uint64_t *marks =
        (const volatile uint64_t *)(d->vm.ram + MOAT_GPA_PLATFORM_PAGE +
                                    offsetof(struct moat_platform_page, boot_tsc));
    for (unsigned i = 0; i < MOAT_BOOT_MARKS; i++)
        d->boot_st.guest_tsc[i] = marks[i];
    d->boot_st.ready_ns = d->t_ready_ns;
    d->boot_st.tsc_khz = d->vm.tsc_khz;
    boot_phases_compute(&d->boot_st, &d->boot);
    d->boot_exits = total_exits(d) - d->exits_at_first_run;
}

static void plat_ready(void *ctx)
{
    struct domain *d = ctx;
    bool ready = false;
    pthread_mutex_lock(&d->sup->lock);
    if (d->state == DOMAIN_BOOTING && !atomic_load(&d->stop)) {
        d->t_ready_ns = monotonic_ns();
        note_boot_phases(d);
        d->hb_last = read_heartbeat(d);
        d->hb_changed_ns = d->t_ready_ns;
        set_state(d, DOMAIN_READY);
        ready = true;
        char phases[256];
        boot_phases_format(&d->boot, phases, sizeof phases);
        log_info(d->cfg.name, "ready in %.2f ms (%s ms; %llu exits)",
                 (double)(d->t_ready_ns - d->t_start_ns) / 1e6, phases,
                 (unsigned long long)d->boot_exits);
    } else {
        DSTAT_INC(d, platform_refused);
        AUDIT(d, MOAT_AUDIT_PLATFORM, "READY announced again while %s; ignored",
              domain_state_name(d->state));
        log_error(d->cfg.name, "READY announced again while %s; ignored",
                  domain_state_name(d->state));
    }
    bool again = ready && d->crash_loop;
    pthread_mutex_unlock(&d->sup->lock);
    if (again) {
        struct crash_info ci = { .cause = CRASH_INJECTED };
        snprintf(ci.detail, sizeof ci.detail, "crash-loop: killed again once ready");
        domain_end_post(d, DOMAIN_CRASHED, &ci, 0);
        return;
    }
    if (ready)
        capsvc_domain_ready(&d->sup->caps, d);
}

static void plat_crash(void *ctx)
{
    struct domain *d = ctx;
    struct crash_info ci;
    crash_from_guest_record((const struct moat_crash_record *)(
                                d->vm.ram + MOAT_GPA_PLATFORM_PAGE +
                                offsetof(struct moat_platform_page, crash)), &ci);
    domain_end_post(d, DOMAIN_CRASHED, &ci, 0);
}

static void plat_exit(void *ctx, uint32_t code)
{
    domain_end_post(ctx, DOMAIN_STOPPED, NULL, code);
}

static void plat_msi(void *ctx, uint32_t vector)
{
    struct domain *d = ctx;
    if (!vm_signal_msi(&d->vm, vector))
        log_error(d->cfg.name, "KVM_SIGNAL_MSI for vector %u was not delivered", vector);
    __atomic_fetch_add(&d->stats.msi_sent, 1, __ATOMIC_RELAXED);
}

static void plat_refused(void *ctx, const char *why, uint64_t port, uint64_t value)
{
    struct domain *d = ctx;
    uint64_t refused = DSTAT_INC(d, platform_refused);
    AUDIT(d, MOAT_AUDIT_PLATFORM, "%s (port 0x%llx, value 0x%llx)", why,
          (unsigned long long)port, (unsigned long long)value);
    if (should_log(refused))
        log_error(d->cfg.name, "refused platform access: %s (port 0x%llx, value 0x%llx; %llu refused so far)",
                  why, (unsigned long long)port, (unsigned long long)value,
                  (unsigned long long)refused);
}

static void plat_set_result(struct domain *d, int rc)
{
    int32_t *r = (int32_t *)(d->vm.ram + MOAT_GPA_PLATFORM_PAGE +
                             offsetof(struct moat_platform_page, result));
    __atomic_store_n(r, rc, __ATOMIC_RELEASE);
}

static void plat_cap_register(void *ctx, uint32_t gpa)
{
    struct domain *d = ctx;
    pthread_mutex_lock(&d->sup->lock);
    int rc = capsvc_register(&d->sup->caps, d, gpa);
    if (rc == 0)
        d->served_caps = true;      /* a driver domain: restart=on-failure by default */
    pthread_mutex_unlock(&d->sup->lock);
    if (rc < 0) {
        DSTAT_INC(d, platform_refused);
        AUDIT(d, MOAT_AUDIT_PLATFORM, "cap registration refused: %s", moat_err_name(-rc));
    }
    plat_set_result(d, rc);
}

static void plat_session_release(void *ctx, uint32_t slot)
{
    struct domain *d = ctx;
    struct session gone;
    pthread_mutex_lock(&d->sup->lock);
    int rc = capsvc_release(&d->sup->caps, d, slot, &gone);
    pthread_mutex_unlock(&d->sup->lock);
    capsvc_session_free(&gone);     /* may wait for the device: no lock held */
    if (rc == 0) {
        pthread_mutex_lock(&d->sup->lock);
        d->slots_draining &= ~(1u << slot);     /* its window is gone: reusable */
        pthread_mutex_unlock(&d->sup->lock);
    }
    if (rc < 0) {
        DSTAT_INC(d, platform_refused);
        AUDIT(d, MOAT_AUDIT_PLATFORM, "release of session slot %u refused: it is not closing",
              slot);
        log_error(d->cfg.name, "refused release of session slot %u: it is not closing", slot);
    }
    plat_set_result(d, rc);
}

static void plat_yield(void *ctx)
{
    struct domain *d = ctx;
    __atomic_fetch_add(&d->stats.yields, 1, __ATOMIC_RELAXED);
    sched_yield();
}

static const struct platform_dev_ops plat_ops = {
    .ready = plat_ready, .crash = plat_crash, .exit = plat_exit,
    .msi = plat_msi, .refused = plat_refused,
    .cap_register = plat_cap_register, .session_release = plat_session_release,
    .yield = plat_yield,
};

/* ---- exits -------------------------------------------------------------- */

static void policy_kill(struct domain *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void policy_kill(struct domain *d, const char *fmt, ...)
{
    struct crash_info ci;
    memset(&ci, 0, sizeof ci);
    ci.cause = CRASH_POLICY;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ci.detail, sizeof ci.detail, fmt, ap);
    va_end(ap);
    AUDIT(d, MOAT_AUDIT_POLICY, "fail-stop: %s", ci.detail);
    /* Device workers get here too: a message, never a wait (domain.h). */
    domain_end_post(d, DOMAIN_CRASHED, &ci, 0);
}

/* ---- PCI platform hooks (vCPU thread or a device model's worker) -------- */

static bool pci_msi(void *ctx, uint64_t addr, uint32_t data)
{
    struct domain *d = ctx;
    __atomic_fetch_add(&d->stats.msi_sent, 1, __ATOMIC_RELAXED);
    return vm_signal_msi_msg(&d->vm, addr, data);
}

static bool plat_ioeventfd(void *ctx, bool pio, uint64_t addr, uint32_t len, int fd, bool assign)
{
    struct domain *d = ctx;
    return d->vm.fd >= 0 && vm_ioeventfd(&d->vm, fd, pio, addr, len, assign);
}

static void pci_intx(void *ctx, uint32_t gsi, bool level)
{
    struct domain *d = ctx;
    if (!vm_irq_line(&d->vm, gsi, level))
        log_error(d->cfg.name, "KVM_IRQ_LINE for GSI %u failed", gsi);
}

static void pci_refused(void *ctx, const char *device, const char *what, uint64_t addr,
                        uint64_t value)
{
    struct domain *d = ctx;
    uint64_t n = __atomic_add_fetch(&d->stats.pci_refused, 1, __ATOMIC_RELAXED);
    AUDIT(d, MOAT_AUDIT_PCI, "%s: %s (0x%llx, value 0x%llx)", device, what,
          (unsigned long long)addr, (unsigned long long)value);
    if (!d->cfg.policy_audit) {
        policy_kill(d, "%s: %s (0x%llx, value 0x%llx)", device, what,
                    (unsigned long long)addr, (unsigned long long)value);
        return;
    }
    if (should_log(n))
        log_error(d->cfg.name, "refused: %s: %s (0x%llx, value 0x%llx; %llu refused so far)",
                  device, what, (unsigned long long)addr, (unsigned long long)value,
                  (unsigned long long)n);
}

static void pci_dma_refused(void *ctx, const char *device, uint64_t iova, uint64_t len,
                            enum broker_refusal why)
{
    struct domain *d = ctx;
    uint64_t n = __atomic_add_fetch(&d->stats.dma_refused, 1, __ATOMIC_RELAXED);
    AUDIT(d, MOAT_AUDIT_DMA, "%s: %llu bytes at IOVA 0x%llx refused: %s", device,
          (unsigned long long)len, (unsigned long long)iova, broker_refusal_name(why));
    if (!d->cfg.policy_audit) {
        policy_kill(d, "%s: DMA of %llu bytes at IOVA 0x%llx refused: %s", device,
                    (unsigned long long)len, (unsigned long long)iova, broker_refusal_name(why));
        return;
    }
    if (should_log(n))
        log_error(d->cfg.name, "refused: %s: DMA of %llu bytes at IOVA 0x%llx: %s "
                  "(audited; %llu refused so far)", device, (unsigned long long)len,
                  (unsigned long long)iova, broker_refusal_name(why), (unsigned long long)n);
}

static void pci_guest_error_hook(void *ctx, const char *device, enum pci_guest_error kind,
                                 const char *what, uint64_t a, uint64_t b)
{
    struct domain *d = ctx;
    static const char *const kind_name[PCI_GERR_KINDS] = {
        [PCI_GERR_DOORBELL] = "invalid doorbell", [PCI_GERR_COMMAND] = "malformed command",
        [PCI_GERR_FATAL] = "fatal device state",
    };
    uint64_t n;
    switch (kind) {
    case PCI_GERR_DOORBELL: n = DSTAT_INC(d, bad_doorbells); break;
    case PCI_GERR_FATAL:    n = DSTAT_INC(d, device_fatal); break;
    case PCI_GERR_COMMAND:
    case PCI_GERR_KINDS:
    default:                n = DSTAT_INC(d, bad_commands); kind = PCI_GERR_COMMAND; break;
    }
    AUDIT(d, kind == PCI_GERR_FATAL ? MOAT_AUDIT_FATAL : MOAT_AUDIT_DEVICE,
          "%s: %s: %s (0x%llx, 0x%llx)", device, kind_name[kind], what,
          (unsigned long long)a, (unsigned long long)b);
    if (should_log(n))
        log_error(d->cfg.name, "%s: %s: %s (0x%llx, 0x%llx; %llu so far)", device,
                  kind_name[kind], what, (unsigned long long)a, (unsigned long long)b,
                  (unsigned long long)n);
    /* A storm of fatal states: the driver resets its device into the same
     * fault over and over (a policy violation, not a bug it survives). */
    uint64_t in_window;
    if (kind != PCI_GERR_FATAL ||
        !storm_hit(&d->fatal_storm, monotonic_ns(), DOMAIN_FATAL_STORM_MS * 1000000ull,
                   DOMAIN_FATAL_STORM, &in_window))
        return;
    if (!d->cfg.policy_audit) {
        policy_kill(d, "%s: a storm of fatal device states (%llu within %u ms; last: %s)",
                    device, (unsigned long long)in_window, DOMAIN_FATAL_STORM_MS, what);
    } else if (in_window == DOMAIN_FATAL_STORM) {   /* once per window */
        DSTAT_INC(d, pci_refused);
        AUDIT(d, MOAT_AUDIT_POLICY, "%s: a storm of fatal device states (%u within %u ms): "
              "kept running under policy=audit", device, DOMAIN_FATAL_STORM,
              DOMAIN_FATAL_STORM_MS);
    }
}

static const struct pci_platform_ops pci_plat_ops = {
    .msi = pci_msi, .intx = pci_intx, .refused = pci_refused, .dma_refused = pci_dma_refused,
    .guest_error = pci_guest_error_hook, .ioeventfd = plat_ioeventfd,
};

static void handle_io(struct domain *d, struct kvm_run *run)
{
    DSTAT_INC(d, exits_io);
    uint32_t size = run->io.size, count = run->io.count;
    uint64_t off = run->io.data_offset;
    if ((size != 1 && size != 2 && size != 4) ||
        off > d->vm.run_size || (uint64_t)size * count > d->vm.run_size - off) {
        struct crash_info ci;
        crash_vmm_error(&ci, "KVM reported a malformed I/O exit");
        domain_end_post(d, DOMAIN_CRASHED, &ci, 0);
        return;
    }
    uint8_t *data = (uint8_t *)run + off;
    bool out = run->io.direction == KVM_EXIT_IO_OUT;
    for (uint32_t i = 0; i < count; i++) {
        struct bus_access a = { .addr = run->io.port, .size = size, .is_write = out };
        if (out)
            memcpy(&a.value, data + (size_t)i * size, size);
        enum bus_result r = bus_dispatch(&d->pio, &a);
        if (!out)
            memcpy(data + (size_t)i * size, &a.value, size);
        if (r == BUS_UNCLAIMED) {
            uint64_t unclaimed = DSTAT_INC(d, unclaimed_pio);
            if (should_log(unclaimed))
                log_info(d->cfg.name, "unclaimed PIO %s port 0x%x (%u bytes): reads 0, "
                         "writes ignored (%llu so far)", out ? "write" : "read",
                         run->io.port, size, (unsigned long long)unclaimed);
        } else if (r == BUS_VIOLATION) {
            policy_kill(d, "device refused hostile PIO %s at port 0x%x (%u bytes)",
                        out ? "write" : "read", run->io.port, size);
            return;
        }
    }
}

static void handle_mmio(struct domain *d, struct kvm_run *run)
{
    DSTAT_INC(d, exits_mmio);
    uint32_t len = run->mmio.len;
    const char *dir = run->mmio.is_write ? "write" : "read";
    if (len == 0 || len > 8) {
        policy_kill(d, "MMIO %s at GPA 0x%llx with unsupported width %u", dir,
                    (unsigned long long)run->mmio.phys_addr, len);
        return;
    }
    struct bus_access a = { .addr = run->mmio.phys_addr, .size = len,
                            .is_write = run->mmio.is_write };
    if (a.is_write)
        memcpy(&a.value, run->mmio.data, len);
    enum bus_result r = bus_dispatch(&d->mmio, &a);
    if (r == BUS_UNCLAIMED) {
        policy_kill(d, "MMIO %s at GPA 0x%llx (%u bytes) outside every assigned region",
                    dir, (unsigned long long)run->mmio.phys_addr, len);
        return;
    }
    if (r == BUS_VIOLATION) {
        policy_kill(d, "device refused hostile MMIO %s at GPA 0x%llx (%u bytes)",
                    dir, (unsigned long long)run->mmio.phys_addr, len);
        return;
    }
    if (!a.is_write)
        memcpy(run->mmio.data, &a.value, len);
}

/* Where was the vCPU? For crashes the guest could not report itself. */
static void add_vcpu_regs(struct domain *d, struct crash_info *ci)
{
    struct kvm_regs r;
    struct kvm_sregs s;
    if (ci->have_regs || ioctl(d->vm.vcpu_fd, KVM_GET_REGS, &r) < 0 ||
        ioctl(d->vm.vcpu_fd, KVM_GET_SREGS, &s) < 0)
        return;
    ci->have_regs = true;
    ci->regs = (struct moat_regs){
        .rax = r.rax, .rbx = r.rbx, .rcx = r.rcx, .rdx = r.rdx, .rsi = r.rsi,
        .rdi = r.rdi, .rbp = r.rbp, .r8 = r.r8, .r9 = r.r9, .r10 = r.r10,
        .r11 = r.r11, .r12 = r.r12, .r13 = r.r13, .r14 = r.r14, .r15 = r.r15,
        .rip = r.rip, .rflags = r.rflags, .rsp = r.rsp, .cs = s.cs.selector,
        .ss = s.ss.selector, .cr0 = s.cr0, .cr2 = s.cr2, .cr3 = s.cr3, .cr4 = s.cr4,
    };
    size_t n = strlen(ci->detail);
    snprintf(ci->detail + n, sizeof ci->detail - n, "; vCPU at RIP 0x%llx RFLAGS 0x%llx",
             (unsigned long long)r.rip, (unsigned long long)r.rflags);
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
    d->boot_st.first_run_ns = monotonic_ns();
    d->exits_at_first_run = total_exits(d);
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
            crash_vmm_error(&ci, msg);
            domain_end_post(d, DOMAIN_CRASHED, &ci, 0);
            break;
        }
        switch (run->exit_reason) {
        case KVM_EXIT_IO:
            handle_io(d, run);
            break;
        case KVM_EXIT_MMIO:
            handle_mmio(d, run);
            break;
        case KVM_EXIT_INTR:
            DSTAT_INC(d, exits_intr);
            break;
        default: {
            struct crash_info ci;
            if (crash_from_exit(run, &ci)) {
                add_vcpu_regs(d, &ci);
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
        crash_vmm_error(&d->end.crash, build_err);
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
    uint64_t t_detect = d->end.t_ns ? d->end.t_ns : monotonic_ns();
    pthread_mutex_unlock(&d->end.lock);
    if (built && st == DOMAIN_CRASHED)
        add_vcpu_regs(d, &ci);

    pthread_mutex_lock(&s->lock);
    d->vm_live = false;         /* from here on only this thread touches the VM */
    pthread_mutex_unlock(&s->lock);
    /* DESIGN §5.3, with no lock held: observers of CRASHED/STOPPED know the
     * vCPU is gone, the devices quiesced and every window scrubbed and
     * freed. */
    teardown(d);

    pthread_mutex_lock(&s->lock);
    d->t_end_ns = monotonic_ns();
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
    set_state(d, st);
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
        uint64_t now = monotonic_ns();
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

static bool build_incarnation(struct domain *d, char *err, size_t errlen);

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
            set_state(d, DOMAIN_CREATED);
            d->restarting = false;
        }
        pthread_mutex_unlock(&s->lock);
        if (!again)
            return NULL;
        built = build_incarnation(d, err, sizeof err);
    }
}

/* ---- setup -------------------------------------------------------------- */

static bool read_image(struct domain *d, char *err, size_t errlen)
{
    int fd = open(d->cfg.kernel, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        snprintf(err, errlen, "cannot read kernel image %s: %s (build it with 'make')",
                 d->cfg.kernel, strerror(errno));
        if (fd >= 0)
            close(fd);
        return false;
    }
    if (!S_ISREG(st.st_mode) || st.st_size <= 0 || st.st_size > IMAGE_MAX) {
        snprintf(err, errlen, "kernel image %s is not a regular file of 1 byte to %u MiB",
                 d->cfg.kernel, IMAGE_MAX >> 20);
        close(fd);
        return false;
    }
    d->image_len = (size_t)st.st_size;
    d->image = malloc(d->image_len);
    size_t got = 0;
    while (d->image && got < d->image_len) {
        ssize_t n = read(fd, d->image + got, d->image_len - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    if (!d->image || got != d->image_len) {
        snprintf(err, errlen, "cannot read kernel image %s completely", d->cfg.kernel);
        free(d->image);
        d->image = NULL;
        return false;
    }
    return true;
}

/* cpu=N: the vCPU on N alone, device workers on every other CPU moat may
 * use (so a polling vCPU and the controller it drives never share one). */
static bool place_threads(struct domain *d, char *err, size_t errlen)
{
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) {
        snprintf(err, errlen, "cpu=%u: cannot read moat's CPU affinity: %s", d->cfg.cpu,
                 strerror(errno));
        return false;
    }
    if (!CPU_ISSET(d->cfg.cpu, &allowed)) {
        snprintf(err, errlen, "cpu=%u: moat may run on %d CPU(s) and this is not one of them "
                 "(see nproc and taskset -p %d)", d->cfg.cpu, CPU_COUNT(&allowed), (int)getpid());
        return false;
    }
    CPU_ZERO(&d->vcpu_cpus);
    CPU_SET(d->cfg.cpu, &d->vcpu_cpus);
    CPU_CLR(d->cfg.cpu, &allowed);
    if (CPU_COUNT(&allowed) > 0) {
        pci_bus_set_worker_cpus(&d->pci, &allowed);
        log_info(d->cfg.name, "vCPU pinned to CPU %u, device workers on the %d other CPU(s)",
                 d->cfg.cpu, CPU_COUNT(&allowed));
    } else {
        log_info(d->cfg.name, "cpu=%u is the only CPU moat may use: device workers share it",
                 d->cfg.cpu);
    }
    return true;
}

bool domain_init(struct domain *d, const struct domain_config *cfg, uint32_t id,
                 struct supervisor *sup, char *err, size_t errlen)
{
    memset(d, 0, sizeof *d);
    d->cfg = *cfg;
    d->id = id;
    d->sup = sup;
    d->state = DOMAIN_CREATED;
    d->log_fd = -1;
    d->vm.fd = d->vm.vcpu_fd = -1;
    atomic_init(&d->stop, false);
    atomic_init(&d->thread_started, false);
    pthread_mutex_init(&d->end.lock, NULL);
    restart_budget_init(&d->budget, cfg->restart_max ? cfg->restart_max : RESTART_DEFAULT_MAX,
                        cfg->restart_window_ms ? cfg->restart_window_ms
                                               : RESTART_DEFAULT_WINDOW_MS);
    pthread_once(&kick_once, install_kick_handler);
    if (!read_image(d, err, errlen))
        return false;
    if (!bus_init(&d->pio, 8) || !bus_init(&d->mmio, 16)) {
        snprintf(err, errlen, "out of memory");
        domain_fini(d);
        return false;
    }
    d->plat = (struct platform_dev){ .ops = &plat_ops, .ctx = d };
    struct pci_platform_ops pops = pci_plat_ops;
    pops.ctx = d;
    pci_bus_init(&d->pci, cfg->name, id, &sup->broker, &pops);
    if (cfg->pin_cpu && !place_threads(d, err, errlen)) {
        domain_fini(d);
        return false;
    }
    for (uint32_t i = 0; i < cfg->n_devices; i++) {
        char name[MOAT_DEVNAME_MAX];
        snprintf(name, sizeof name, "%.12s%u", cfg->devices[i], i % 8);
        if (!device_create(cfg->devices[i], name, cfg->device_opts[i], &d->pci, err, errlen)) {
            domain_fini(d);
            return false;
        }
    }
    if (!bus_register(&d->pio, UART_COM1_BASE, UART_PORTS, uart_io, &d->com1, "com1") ||
        !bus_register(&d->pio, MOAT_PLAT_PORT_BASE, MOAT_PLAT_PORT_COUNT, platform_dev_io,
                      &d->plat, "platform") ||
        !bus_register(&d->mmio, MOAT_GPA_PLATFORM_MMIO, MOAT_PLAT_MMIO_SIZE, platform_dev_mmio,
                      &d->plat, "platform-mmio") ||
        !pci_bus_attach(&d->pci, &d->mmio, &d->pio)) {
        snprintf(err, errlen, "internal: cannot register platform devices");
        domain_fini(d);
        return false;
    }
    char path[PATH_MAX + MOAT_NAME_MAX + 8];
    snprintf(path, sizeof path, "%s/%s.log", sup->log_dir, cfg->name);
    d->log_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (d->log_fd < 0) {
        snprintf(err, errlen, "cannot create domain log %s: %s (choose another --log-dir)",
                 path, strerror(errno));
        domain_fini(d);
        return false;
    }
    return true;
}

/* Ask the broker for this incarnation's DMA windows (mapped into the VM). */
static bool grant_windows(struct domain *d, char *err, size_t errlen)
{
    d->n_win = 0;
    for (uint32_t i = 0; i < d->cfg.dma_windows && i < MOAT_WINDOWS_MAX; i++) {
        uint64_t iova;
        char why[160];
        if (!broker_grant_any(&d->sup->broker, d->id, d->cfg.dma_window_size, 2ull << 20,
                              DMA_BIDIR, &d->win[i], &iova, why, sizeof why)) {
            snprintf(err, errlen, "DMA window %u of %llu MiB: %s", i,
                     (unsigned long long)(d->cfg.dma_window_size >> 20), why);
            return false;
        }
        d->win_info[i] = (struct moat_window_info){ .iova = iova, .size = d->cfg.dma_window_size,
                                                    .dirs = DMA_BIDIR };
        d->n_win++;
        log_info(d->cfg.name, "DMA window %u: IOVA 0x%llx, %llu MiB", i,
                 (unsigned long long)iova, (unsigned long long)(d->cfg.dma_window_size >> 20));
    }
    return true;
}

/* Build the next incarnation (state CREATED, no lock held): a fresh VM,
 * power-on devices, fresh windows; on success it is BOOTING and its end
 * box is empty. On failure the caller ends it (finish_incarnation). */
static bool build_incarnation(struct domain *d, char *err, size_t errlen)
{
    struct supervisor *s = d->sup;
    uint64_t t0 = monotonic_ns();
    bool ok = false;
    memset(&d->boot_st, 0, sizeof d->boot_st);
    d->boot_st.start_ns = t0;
    uart_init(&d->com1, console_sink, d);
    pci_bus_reset(&d->pci);     /* every incarnation meets power-on devices */
    if (!vm_create(&d->vm, &s->host, d->cfg.ram_size, err, errlen))
        goto out;
    d->boot_st.vm_ns = monotonic_ns();
    supervisor_set_vm(s, d->id, &d->vm);
    if (!grant_windows(d, err, errlen))
        goto out;
    d->boot_st.windows_ns = monotonic_ns();
    struct elf_layout lay;
    uint64_t cr3 = 0, ram_free = 0;
    if (!elf_load(d->image, d->image_len, d->vm.ram, d->vm.ram_size, MOAT_GPA_KERNEL_BASE,
                  &lay, err, errlen))
        goto out;
    boot_write_gdt(d->vm.ram);
    const struct kmap_image kimg = { .text_start = lay.text_start, .text_end = lay.text_end,
                                     .rodata_start = lay.rodata_start,
                                     .rodata_end = lay.rodata_end, .end = lay.end };
    if (!boot_write_kernel_map(d->vm.ram, d->vm.ram_size, &kimg, d->win_info, d->n_win,
                               kvm_host_gb_pages(&s->host), &cr3, &ram_free, err, errlen))
        goto out;
    *(struct moat_session_table *)(d->vm.ram + MOAT_GPA_SESSION_TABLE) =
        (struct moat_session_table){ .magic = MOAT_SESSION_TABLE_MAGIC, .version = 1,
                                     .n_slots = MOAT_SESSION_SLOTS };
    d->boot_st.image_ns = monotonic_ns();
    if (!vm_create_vcpu(&d->vm, &s->host, err, errlen))     /* after every memslot: vm.h */
        goto out;
    struct moat_device_info devs[MOAT_DEVICES_MAX];
    uint32_t n_devs = 0;
    for (unsigned slot = 1; slot < PCI_SLOTS_MAX && n_devs < MOAT_DEVICES_MAX; slot++)
        if (d->pci.slot[slot])
            pci_func_describe(d->pci.slot[slot], &devs[n_devs++]);
    struct boot_params bp = {
        .name = d->cfg.name, .cmdline = d->cfg.cmdline, .domain_id = d->id,
        .tsc_khz = d->vm.tsc_khz, .ecam_base = d->pci.ecam_base,
        .windows = d->win_info, .n_windows = d->n_win, .devices = devs, .n_devices = n_devs,
        .kernel_map = cr3, .ram_free = ram_free,
    };
    if (!boot_write_info(d->vm.ram, d->vm.ram_size, &bp)) {
        snprintf(err, errlen, "domain name or args too long for boot info");
        goto out;
    }
    if (!vm_enter_long_mode(&d->vm, lay.entry, MOAT_GPA_BOOT_INFO, cr3, err, errlen))
        goto out;
    d->boot_st.vcpu_ns = monotonic_ns();
    ok = true;
out:
    pthread_mutex_lock(&s->lock);
    d->attempts++;
    d->last_start_ok = ok;
    d->incarnation++;
    d->t_start_ns = t0;
    d->session_vector = 0;
    d->slots_draining = 0;      /* served_caps stays: a driver domain remains one */
    pthread_mutex_lock(&d->end.lock);
    d->end.decided = false;
    d->end.t_ns = 0;
    pthread_mutex_unlock(&d->end.lock);
    atomic_store(&d->stop, false);
    if (ok) {
        d->vm_live = true;
        set_state(d, DOMAIN_BOOTING);
        /* An operator restart asked for while this one was being built:
         * this fresh incarnation is it. */
        if (d->cmd == DOMAIN_CMD_RESTART) {
            d->cmd = DOMAIN_CMD_NONE;
            restart_budget_clear(&d->budget);
        }
        /* A stop or shutdown that came while it was being built ends it
         * at once (they found nothing running to end). */
        if (d->want_down || d->cmd == DOMAIN_CMD_SHUTDOWN)
            domain_end_post(d, DOMAIN_STOPPED, NULL, 0);
    }
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->lock);
    return ok;
}

/* The first incarnation could not start (no domain thread runs): tear
 * down what was built, CRASHED with the reason; no restart follows. */
static bool start_failed(struct domain *d, const char *err)
{
    struct supervisor *s = d->sup;
    pthread_mutex_lock(&s->lock);
    d->vm_live = false;
    pthread_mutex_unlock(&s->lock);
    teardown(d);
    pthread_mutex_lock(&s->lock);
    crash_vmm_error(&d->crash, err);
    d->t_end_ns = monotonic_ns();
    set_state(d, DOMAIN_CRASHED);
    record_cause(d, d->t_end_ns);
    log_error(d->cfg.name, "could not start: %s", err);
    pthread_mutex_unlock(&s->lock);
    return false;
}

bool domain_start(struct domain *d, char *err, size_t errlen)
{
    struct supervisor *s = d->sup;
    if (!build_incarnation(d, err, errlen))
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
    uint64_t t = monotonic_ns() + (uint64_t)ms * 1000000ull;
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
    uint64_t hb = d->vm_live ? read_heartbeat(d) : 0;
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
    uint64_t hb = read_heartbeat(d);
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
