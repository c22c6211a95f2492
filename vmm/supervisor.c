/* Supervisor: domains, lock, watchdog (contract in supervisor.h). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include "log.h"
#include "supervisor.h"

#define WATCHDOG_PERIOD_MS 20u

static struct timespec deadline_after_ms(unsigned ms)
{
    uint64_t t = clock_mono_ns() + (uint64_t)ms * 1000000ull;
    return (struct timespec){ .tv_sec = (time_t)(t / 1000000000ull),
                              .tv_nsec = (long)(t % 1000000000ull) };
}

static bool broker_map(void *ctx, uint32_t domain, uint32_t window, uint64_t iova,
                       uint64_t len, void *host)
{
    struct supervisor *s = ctx;
    pthread_mutex_lock(&s->vms.lock);
    struct vm *vm = domain < BROKER_DOMAINS_MAX ? s->vms.vm[domain] : NULL;
    bool ok = vm && vm_map_memory(vm, VM_SLOT_FIRST_EXTRA + window, iova, len, host);
    pthread_mutex_unlock(&s->vms.lock);
    return ok;
}

static void broker_unmap(void *ctx, uint32_t domain, uint32_t window, uint64_t iova,
                         uint64_t len)
{
    (void)iova;
    (void)len;
    struct supervisor *s = ctx;
    pthread_mutex_lock(&s->vms.lock);
    struct vm *vm = domain < BROKER_DOMAINS_MAX ? s->vms.vm[domain] : NULL;
    if (vm)
        vm_unmap_memory(vm, VM_SLOT_FIRST_EXTRA + window);
    pthread_mutex_unlock(&s->vms.lock);
}

void supervisor_set_vm(struct supervisor *s, uint32_t id, struct vm *vm)
{
    if (id >= BROKER_DOMAINS_MAX)
        return;
    pthread_mutex_lock(&s->vms.lock);
    s->vms.vm[id] = vm;
    pthread_mutex_unlock(&s->vms.lock);
}

static bool mkdir_p(const char *path, char *err, size_t errlen)
{
    char buf[PATH_MAX];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; ; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, 0755) < 0 && errno != EEXIST) {
                snprintf(err, errlen, "cannot create log directory %s: %s", buf, strerror(errno));
                return false;
            }
            *p = c;
            if (!c)
                return true;
        }
    }
}

static void *watchdog_thread(void *arg)
{
    struct supervisor *s = arg;
    pthread_mutex_lock(&s->lock);
    while (!s->shutting_down) {
        uint64_t now = clock_mono_ns();
        for (size_t i = 0; i < s->n_domains; i++) {
            struct domain *d = s->domains[i];
            struct crash_info why;
            if (domain_stop_overdue(d, now))
                continue;
            if (domain_watchdog_check(d, now, &why)) {
                pthread_mutex_unlock(&s->lock);
                domain_kill(d, &why);
                pthread_mutex_lock(&s->lock);
            }
        }
        struct timespec dl = deadline_after_ms(WATCHDOG_PERIOD_MS);
        pthread_cond_timedwait(&s->changed, &s->lock, &dl);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

bool supervisor_init(struct supervisor *s, const struct moat_config *cfg,
                     char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    if (!kvm_host_open(&s->host, err, errlen))
        return false;
    snprintf(s->log_dir, sizeof s->log_dir, "%s", cfg->log_dir);
    s->echo_all = cfg->console;
    s->watchdog_ms = cfg->watchdog_ms;
    s->boot_timeout_ms = cfg->boot_timeout_ms;
    if (!mkdir_p(s->log_dir, err, errlen)) {
        kvm_host_close(&s->host);
        return false;
    }
    if (!capsvc_init(&s->caps, s, err, errlen)) {
        kvm_host_close(&s->host);
        return false;
    }
    audit_init(&s->audit);
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->vms.lock, NULL);
    broker_init(&s->broker, MOAT_DMA_QUOTA_BYTES,
                &(struct broker_mapper){ .map = broker_map, .unmap = broker_unmap, .ctx = s });
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->changed, &ca);
    pthread_condattr_destroy(&ca);

    int rc = pthread_create(&s->watchdog, NULL, watchdog_thread, s);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start watchdog thread: %s", strerror(rc));
        broker_fini(&s->broker);
        capsvc_fini(&s->caps);
        audit_fini(&s->audit);
        kvm_host_close(&s->host);
        return false;
    }
    s->watchdog_running = true;
    return true;
}

struct domain *supervisor_add(struct supervisor *s, const struct domain_config *cfg,
                              char *err, size_t errlen)
{
    if (s->n_domains == MOAT_DOMAINS_MAX) {
        snprintf(err, errlen, "too many domains (at most %d)", MOAT_DOMAINS_MAX);
        return NULL;
    }
    struct domain *d = calloc(1, sizeof *d);
    if (!d) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (!domain_init(d, cfg, s->next_id, s, err, errlen)) {
        free(d);
        return NULL;
    }
    audit_name(&s->audit, d->id, d->cfg.name);
    pthread_mutex_lock(&s->lock);
    s->next_id++;
    s->domains[s->n_domains++] = d;
    pthread_mutex_unlock(&s->lock);
    return d;
}

bool supervisor_start_all(struct supervisor *s)
{
    bool ok = true;
    for (size_t i = 0; i < s->n_domains; i++) {
        struct domain *d = s->domains[i];
        if (d->state != DOMAIN_CREATED)
            continue;
        char err[256];
        log_info(d->cfg.name, "booting %s with %llu MiB RAM%s%s", d->cfg.kernel,
                 (unsigned long long)(d->cfg.ram_size >> 20),
                 d->cfg.cmdline[0] ? ", args: " : "", d->cfg.cmdline);
        ok &= domain_start(d, err, sizeof err);
    }
    return ok;
}

bool supervisor_wait(struct supervisor *s, struct domain *d, unsigned mask,
                     unsigned timeout_ms)
{
    struct timespec dl = deadline_after_ms(timeout_ms);
    pthread_mutex_lock(&s->lock);
    while (!(DOMAIN_STATE_BIT(d->state) & mask)) {
        if (pthread_cond_timedwait(&s->changed, &s->lock, &dl) == ETIMEDOUT)
            break;
    }
    bool ok = DOMAIN_STATE_BIT(d->state) & mask;
    pthread_mutex_unlock(&s->lock);
    return ok;
}

static bool all_in(const struct supervisor *s, unsigned mask)
{
    for (size_t i = 0; i < s->n_domains; i++)
        if (s->domains[i]->restarting || !(DOMAIN_STATE_BIT(s->domains[i]->state) & mask))
            return false;
    return true;
}

bool supervisor_wait_all(struct supervisor *s, unsigned mask, unsigned timeout_ms)
{
    struct timespec dl = deadline_after_ms(timeout_ms);
    pthread_mutex_lock(&s->lock);
    while (!all_in(s, mask) && !s->interrupted) {
        if (pthread_cond_timedwait(&s->changed, &s->lock, &dl) == ETIMEDOUT)
            break;
    }
    bool ok = all_in(s, mask);
    pthread_mutex_unlock(&s->lock);
    return ok;
}

void supervisor_interrupt(struct supervisor *s)
{
    pthread_mutex_lock(&s->lock);
    s->interrupted = true;
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->lock);
}

/* sup->lock held: is some domain still finishing an orderly stop? */
static bool stops_pending(const struct supervisor *s)
{
    for (size_t i = 0; i < s->n_domains; i++)
        if (domain_stop_pending(s->domains[i]))
            return true;
    return false;
}

void supervisor_stop_all(struct supervisor *s)
{
    for (size_t i = 0; i < s->n_domains; i++)
        domain_request_stop(s->domains[i]);
    /* Orderly stops end by themselves or by the watchdog's force: wait for
     * them (every state change broadcasts), with a backstop in case the
     * watchdog is gone. Then the joins stop whatever is left at once. */
    pthread_mutex_lock(&s->lock);
    struct timespec dl = deadline_after_ms(DOMAIN_STOP_GRACE_MS + 1000u);
    while (stops_pending(s))
        if (pthread_cond_timedwait(&s->changed, &s->lock, &dl) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&s->lock);
    for (size_t i = 0; i < s->n_domains; i++)
        domain_join(s->domains[i]);
}

void supervisor_fini(struct supervisor *s)
{
    supervisor_stop_all(s);
    if (s->watchdog_running) {
        pthread_mutex_lock(&s->lock);
        s->shutting_down = true;
        pthread_cond_broadcast(&s->changed);
        pthread_mutex_unlock(&s->lock);
        pthread_join(s->watchdog, NULL);
        s->watchdog_running = false;
    }
    for (size_t i = 0; i < s->n_domains; i++) {
        domain_fini(s->domains[i]);
        free(s->domains[i]);
    }
    s->n_domains = 0;
    capsvc_fini(&s->caps);
    broker_fini(&s->broker);
    audit_fini(&s->audit);
    pthread_mutex_destroy(&s->vms.lock);
    kvm_host_close(&s->host);
    pthread_cond_destroy(&s->changed);
    pthread_mutex_destroy(&s->lock);
}
