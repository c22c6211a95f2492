/*
 * domain.h — one driver domain: a KVM VM, its buses and devices, its vCPU
 * thread, and its lifecycle.
 *
 *   CREATED --start--> BOOTING --READY port--> READY
 *      |                  |                      |
 *      +-- start fails ---+---- crash / kill ----+--> CRASHED  (terminal)
 *                         +---- exit / stop -----+--> STOPPED  (terminal)
 * Terminal states are terminal for an incarnation: an operator restart
 * (domain_restart) begins a new one at CREATED with a fresh VM and fresh
 * windows; its caps come back under the same names with new generations.
 *
 * A terminal state is entered only by the vCPU thread after the VM is torn
 * down (vCPU stopped, memory unmapped), so an observer that sees CRASHED or
 * STOPPED knows the domain can no longer touch anything. All state lives
 * under the supervisor's lock (domain->sup->lock); functions say whether
 * they take it. Crash evidence from the guest is hostile (see crash.h).
 */
#ifndef MOAT_DOMAIN_H
#define MOAT_DOMAIN_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include "config.h"
#include "crash.h"
#include "exit_bus.h"
#include "pci.h"
#include "platform_dev.h"
#include "uart_8250.h"
#include "vm.h"

struct supervisor;

enum domain_state {
    DOMAIN_CREATED,
    DOMAIN_BOOTING,
    DOMAIN_READY,
    DOMAIN_CRASHED,
    DOMAIN_STOPPED,
};
#define DOMAIN_STATE_BIT(s) (1u << (s))
#define DOMAIN_TERMINAL (DOMAIN_STATE_BIT(DOMAIN_CRASHED) | DOMAIN_STATE_BIT(DOMAIN_STOPPED))

struct domain_stats {
    uint64_t exits_io, exits_mmio, exits_intr;
    uint64_t unclaimed_pio;
    uint64_t msi_sent;
    uint64_t platform_refused;
    uint64_t pci_refused;           /* hostile config/BAR/MSI-X accesses */
    uint64_t dma_refused;           /* device DMA refused by the broker */
    uint64_t sessions_total;        /* cap sessions ever opened on it */
    uint64_t client_reports;        /* protocol violations clients reported */
    uint64_t yields;                /* YIELD hints: the idle domain gave way */
};

struct domain {
    struct domain_config cfg;
    uint32_t id;
    struct supervisor *sup;

    /* under sup->lock */
    enum domain_state state;
    struct crash_info crash;        /* valid in CRASHED */
    uint32_t exit_code;             /* valid in STOPPED */
    uint64_t t_start_ns, t_ready_ns, t_end_ns;
    uint64_t hb_last, hb_changed_ns;
    uint32_t incarnation;           /* 1 for the first start */
    uint64_t restarts;              /* operator restarts */
    bool restarting;                /* between stop and the new start */
    uint32_t session_vector;        /* set by its first cap registration */
    bool end_pending;               /* an end is decided, thread is leaving */
    enum domain_state end_state;
    struct crash_info end_crash;

    /* owned by the vCPU thread while it runs */
    struct vm vm;
    struct exit_bus pio, mmio;
    struct uart_8250 com1;
    struct platform_dev plat;
    struct pci_bus pci;
    struct domain_stats stats;

    /* DMA windows granted for this incarnation (broker-owned memory). */
    struct dma_handle win[MOAT_WINDOWS_MAX];
    struct moat_window_info win_info[MOAT_WINDOWS_MAX];
    uint32_t n_win;

    pthread_t thread;
    bool thread_started;
    cpu_set_t vcpu_cpus;        /* cfg.cpu alone, when pinned */
    atomic_bool stop;
    int log_fd;
    uint8_t *image;
    size_t image_len;
};

const char *domain_state_name(enum domain_state s);
/* Pure: is from -> to an allowed lifecycle edge? */
bool domain_transition_ok(enum domain_state from, enum domain_state to);

/* Read the kernel image and open the log (log_dir/NAME.log). */
bool domain_init(struct domain *d, const struct domain_config *cfg, uint32_t id,
                 struct supervisor *sup, char *err, size_t errlen);
/* Build the VM and start its vCPU thread (takes sup->lock). On failure the
 * domain is CRASHED with cause CRASH_VMM_ERROR and err says why. */
bool domain_start(struct domain *d, char *err, size_t errlen);
/* Fail-stop the domain with why (takes sup->lock). No-op once an end is
 * decided. */
void domain_kill(struct domain *d, const struct crash_info *why);
/* Orderly stop (takes sup->lock); the domain ends STOPPED with code 0. */
void domain_request_stop(struct domain *d);
/* Operator restart: stop the running incarnation (if any), wait for its
 * teardown, start a new one. Caller holds no lock. False + err on failure. */
bool domain_restart(struct domain *d, char *err, size_t errlen);
/* Wait for the vCPU thread to finish (no lock held by caller). */
void domain_join(struct domain *d);
void domain_fini(struct domain *d);

/* Current heartbeat of a running domain, or 0 once it has ended (takes
 * sup->lock). */
uint64_t domain_heartbeat(struct domain *d);

/* Watchdog step, called with sup->lock held: samples the heartbeat and
 * returns true (filling why) if the domain must be killed at time now. */
bool domain_watchdog_check(struct domain *d, uint64_t now_ns, struct crash_info *why);

#endif /* MOAT_DOMAIN_H */
