/*
 * supervisor.h — owns the host KVM handle, every domain, the lock and
 * condition variable domain state lives under, and the watchdog thread
 * (boot timeouts and stopped heartbeats). Each domain's own thread runs
 * and restarts it (domain.h).
 *
 * Lock order — the one place it is written. A thread may take a lock only
 * while holding locks above it in this list, never below:
 *   1. sup->lock            domain state, restart bookkeeping, the condvar
 *   2. capsvc.lock          caps, sessions, capsvc audit and events
 *   3. broker.lock          window slots, IOVA allocation (grant/free)
 *   4. broker.dom[i].lock   one domain's windows: map, unmap, revoke state
 *   5. vms.lock             the broker's view of each domain's VM (memslots)
 * Leaf locks, held only for a copy or a counter and never while taking
 * another: domain end box (domain.h), device model locks below their own
 * documented order (pci irq_lock, NVMe/virtio-net queue locks, gVNIC's
 * lock -> rx_lock -> irq_lock in gvnic_internal.h), netback locks (the
 * host forward's connection lock, its port's delivery mutex and lwIP's
 * core lock come before them, in that order: net_hostfwd.h), the log,
 * each audit trail (audit.h).
 * Rules (DESIGN §6): none of 1-5 is held across a thread join, a device
 * quiesce, a revoke's wait for device access, or a scrub; device workers
 * never take 1 or 2 (a policy kill is domain_end_post, a message); a
 * device worker may take 3-5 only through broker_dma_map/unmap, which
 * never wait.
 *
 * Error policy: init/add return false with an actionable err. Waiting
 * functions return whether the wanted condition was met before the timeout;
 * they never sleep-poll (condition variable on CLOCK_MONOTONIC).
 */
#ifndef MOAT_SUPERVISOR_H
#define MOAT_SUPERVISOR_H

#include <pthread.h>
#include <stdbool.h>
#include "audit.h"
#include "broker.h"
#include "clock.h"
#include "capsvc.h"
#include "config.h"
#include "domain.h"
#include "kvm_host.h"

struct supervisor {
    struct kvm_host host;
    pthread_mutex_t lock;
    pthread_cond_t changed;         /* broadcast on every domain state change */
    struct domain *domains[MOAT_DOMAINS_MAX];
    size_t n_domains;
    uint32_t next_id;
    char log_dir[PATH_MAX];
    bool echo_all;
    uint32_t watchdog_ms, boot_timeout_ms;
    pthread_t watchdog;
    bool watchdog_running, shutting_down;
    bool interrupted;               /* set by supervisor_interrupt */

    /* The DMA broker owns every window; it installs them as memslots in a
     * domain's VM through the registry below (vms.lock, last in the order). */
    struct broker broker;
    /* Every domain's audit trail (leaf locks, one per trail). */
    struct audit audit;
    /* Caps and sessions (capsvc.lock: second in the order). */
    struct capsvc caps;
    struct {
        pthread_mutex_t lock;
        struct vm *vm[BROKER_DOMAINS_MAX];
    } vms;
};

#define MOAT_DMA_QUOTA_BYTES (1ull << 30)   /* per domain */


bool supervisor_init(struct supervisor *s, const struct moat_config *cfg,
                     char *err, size_t errlen);
struct domain *supervisor_add(struct supervisor *s, const struct domain_config *cfg,
                              char *err, size_t errlen);
/* Start every CREATED domain; false if any failed to start. */
bool supervisor_start_all(struct supervisor *s);
/* Wait until d's state is in mask (DOMAIN_STATE_BIT set). */
bool supervisor_wait(struct supervisor *s, struct domain *d, unsigned mask,
                     unsigned timeout_ms);
/* Wait until every domain's state is in mask, or interrupted. */
bool supervisor_wait_all(struct supervisor *s, unsigned mask, unsigned timeout_ms);
/* Wake waiters with interrupted = true. Not async-signal-safe: call it from
 * a thread (moat's signal thread does). */
void supervisor_interrupt(struct supervisor *s);
/* Stop every domain for good and join every domain thread. */
void supervisor_stop_all(struct supervisor *s);
/* Make domain id's VM reachable by the broker (vm = NULL: no longer). */
void supervisor_set_vm(struct supervisor *s, uint32_t id, struct vm *vm);
/* Stop, join, free everything. */
void supervisor_fini(struct supervisor *s);

#endif /* MOAT_SUPERVISOR_H */
