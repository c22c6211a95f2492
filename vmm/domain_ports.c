/* A domain's platform ports and its PCI bus's platform hooks: what the
 * guest and its device models ask of moat, checked, counted and audited
 * (contract in domain.h; shared parts in domain_internal.h). */
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


/* ---- platform port ops (run on the vCPU thread) ------------------------- */

uint64_t domain_read_heartbeat(const struct domain *d)
{
    const uint64_t *hb = (const uint64_t *)(d->vm.ram + MOAT_GPA_PLATFORM_PAGE +
                                            offsetof(struct moat_platform_page, heartbeat));
    return __atomic_load_n(hb, __ATOMIC_RELAXED);
}

uint64_t domain_total_exits(const struct domain *d)
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
    d->boot_exits = domain_total_exits(d) - d->exits_at_first_run;
}

static void plat_ready(void *ctx)
{
    struct domain *d = ctx;
    bool ready = false;
    pthread_mutex_lock(&d->sup->lock);
    if (d->state == DOMAIN_BOOTING && !atomic_load(&d->stop)) {
        d->t_ready_ns = clock_mono_ns();
        note_boot_phases(d);
        d->hb_last = domain_read_heartbeat(d);
        d->hb_changed_ns = d->t_ready_ns;
        domain_set_state(d, DOMAIN_READY);
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
    if (domain_should_log(refused))
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

const struct platform_dev_ops domain_plat_ops = {
    .ready = plat_ready, .crash = plat_crash, .exit = plat_exit,
    .msi = plat_msi, .refused = plat_refused,
    .cap_register = plat_cap_register, .session_release = plat_session_release,
    .yield = plat_yield,
};

/* ---- exits -------------------------------------------------------------- */

void domain_policy_kill(struct domain *d, const char *fmt, ...)
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
        domain_policy_kill(d, "%s: %s (0x%llx, value 0x%llx)", device, what,
                    (unsigned long long)addr, (unsigned long long)value);
        return;
    }
    if (domain_should_log(n))
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
        domain_policy_kill(d, "%s: DMA of %llu bytes at IOVA 0x%llx refused: %s", device,
                    (unsigned long long)len, (unsigned long long)iova, broker_refusal_name(why));
        return;
    }
    if (domain_should_log(n))
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
    if ((unsigned)kind >= PCI_GERR_KINDS)      /* pci_guest_error clamps it: never */
        kind = PCI_GERR_COMMAND;
    switch (kind) {
    case PCI_GERR_DOORBELL: n = DSTAT_INC(d, bad_doorbells); break;
    case PCI_GERR_FATAL:    n = DSTAT_INC(d, device_fatal); break;
    case PCI_GERR_COMMAND:
    case PCI_GERR_KINDS:
    default:                n = DSTAT_INC(d, bad_commands); break;
    }
    AUDIT(d, kind == PCI_GERR_FATAL ? MOAT_AUDIT_FATAL : MOAT_AUDIT_DEVICE,
          "%s: %s: %s (0x%llx, 0x%llx)", device, kind_name[kind], what,
          (unsigned long long)a, (unsigned long long)b);
    if (domain_should_log(n))
        log_error(d->cfg.name, "%s: %s: %s (0x%llx, 0x%llx; %llu so far)", device,
                  kind_name[kind], what, (unsigned long long)a, (unsigned long long)b,
                  (unsigned long long)n);
    /* A storm of fatal states: the driver resets its device into the same
     * fault over and over (a policy violation, not a bug it survives). */
    uint64_t in_window;
    if (kind != PCI_GERR_FATAL ||
        !storm_hit(&d->fatal_storm, clock_mono_ns(), DOMAIN_FATAL_STORM_MS * 1000000ull,
                   DOMAIN_FATAL_STORM, &in_window))
        return;
    if (!d->cfg.policy_audit) {
        domain_policy_kill(d, "%s: a storm of fatal device states (%llu within %u ms; last: %s)",
                    device, (unsigned long long)in_window, DOMAIN_FATAL_STORM_MS, what);
    } else if (in_window == DOMAIN_FATAL_STORM) {   /* once per window */
        DSTAT_INC(d, pci_refused);
        AUDIT(d, MOAT_AUDIT_POLICY, "%s: a storm of fatal device states (%u within %u ms): "
              "kept running under policy=audit", device, DOMAIN_FATAL_STORM,
              DOMAIN_FATAL_STORM_MS);
    }
}

const struct pci_platform_ops domain_pci_ops = {
    .msi = pci_msi, .intx = pci_intx, .refused = pci_refused, .dma_refused = pci_dma_refused,
    .guest_error = pci_guest_error_hook, .ioeventfd = plat_ioeventfd,
};

