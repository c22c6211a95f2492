/*
 * domain.h — one driver domain: a KVM VM, its buses and devices, and the
 * domain thread that runs it and supervises its incarnations.
 *
 *   CREATED --start--> BOOTING --READY port--> READY
 *      |                  |                      |
 *      +-- start fails ---+---- crash / kill ----+--> CRASHED
 *                         +---- exit / stop -----+--> STOPPED
 * CRASHED and STOPPED end an incarnation. The domain thread then follows
 * the restart policy (restart_policy.h): it starts a fresh incarnation
 * (back at CREATED, with a fresh VM, fresh windows, caps under the same
 * names with new generations) at once or after a backoff, or leaves the
 * domain down, with the breaker open once the restart budget is spent.
 * An operator restart (domain_restart) starts one at once and closes the
 * breaker; an operator stop (domain_request_stop) is never followed by an
 * automatic restart.
 *
 * Ending an incarnation is a message, never a wait: domain_end_post (any
 * thread, device workers included) records the first decision in the
 * domain's end box (a leaf lock held for a copy), sets stop and kicks the
 * domain thread out of KVM_RUN. The domain thread then tears down with no
 * lock held (DESIGN §5.3: stop -> quiesce the devices -> bump generations
 * -> scrub -> free) and only then enters CRASHED/STOPPED, so an observer
 * that sees a terminal state knows the incarnation can touch nothing.
 *
 * Locks (the order is written once, in supervisor.h): state and the
 * fields marked "sup->lock" live under the supervisor's lock, which is
 * only ever held for short bookkeeping, never across a join, a quiesce or
 * a scrub. Other threads may touch the VM (its RAM, ioctls) only under
 * sup->lock while vm_live is set. Crash evidence from the guest is hostile
 * (see crash.h).
 */
#ifndef MOAT_DOMAIN_H
#define MOAT_DOMAIN_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include "config.h"
#include "boot_phases.h"
#include "crash.h"
#include "exit_bus.h"
#include "pci.h"
#include "platform_dev.h"
#include "moat/restart_policy.h"
#include "storm.h"
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

/* Counters other threads read (control, tests) while the domain thread
 * and device workers bump them: always through these. */
#define DSTAT_ADD(d, f, n) __atomic_add_fetch(&(d)->stats.f, (n), __ATOMIC_RELAXED)
#define DSTAT_INC(d, f) DSTAT_ADD(d, f, 1)
#define DSTAT_GET(d, f) __atomic_load_n(&(d)->stats.f, __ATOMIC_RELAXED)

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
    uint64_t bad_doorbells;         /* doorbell writes the device ignored */
    uint64_t bad_commands;          /* malformed commands/descriptors refused */
    uint64_t device_fatal;          /* fatal device states the driver caused */
    uint64_t orderly_stops;         /* stops the guest finished itself */
    uint64_t forced_stops;          /* orderly stops it did not finish in time */
};

#define DOMAIN_CAUSES 4           /* recent ends remembered for status */

struct domain_cause {           /* why an incarnation ended */
    uint64_t t_ns;              /* monotonic: teardown done */
    uint64_t t_detect_ns;       /* monotonic: the end was decided */
    uint32_t incarnation;
    enum domain_state state;    /* CRASHED or STOPPED */
    struct crash_info crash;    /* valid when CRASHED */
    uint32_t exit_code;         /* valid when STOPPED */
};

enum domain_cmd { DOMAIN_CMD_NONE, DOMAIN_CMD_RESTART, DOMAIN_CMD_SHUTDOWN };

struct domain {
    struct domain_config cfg;
    uint32_t id;
    struct supervisor *sup;

    /* under sup->lock */
    enum domain_state state;
    struct crash_info crash;        /* valid in CRASHED */
    uint32_t exit_code;             /* valid in STOPPED */
    uint64_t t_start_ns, t_ready_ns, t_end_ns;
    struct boot_stamps boot_st;     /* this incarnation's bring-up stamps */
    struct boot_phases boot;        /* and where its time went (set at READY) */
    uint64_t boot_exits;            /* vCPU exits from first run to READY */
    uint64_t exits_at_first_run;    /* (to count them) */
    uint64_t hb_last, hb_changed_ns;
    uint32_t incarnation;           /* 1 for the first start */
    uint32_t attempts;              /* incarnations built or tried */
    bool last_start_ok;             /* the newest attempt built its VM */
    uint64_t restarts;              /* automatic and operator restarts */
    uint64_t auto_restarts;
    bool restarting;                /* a new incarnation is decided, not begun */
    uint64_t restart_at_ns;         /* when (restarting) */
    bool want_down;                 /* operator stop: no automatic restart */
    uint64_t stop_deadline_ns;      /* orderly stop asked of the guest: forced
                                     * after this (0: none asked) */
    enum domain_cmd cmd;            /* for the domain thread */
    bool breaker_open;
    char breaker_reason[160];
    struct restart_budget budget;
    struct domain_cause causes[DOMAIN_CAUSES];  /* ring, newest at n_causes-1 */
    uint32_t n_causes;
    bool served_caps;               /* some incarnation registered a cap */
    bool crash_loop;                /* inject crash-loop: kill it at every ready */
    /* Fatal device states in the current storm window (device workers and
     * the vCPU thread report them). */
    struct storm fatal_storm;
    bool vm_live;                   /* the VM may be touched (see above) */
    uint32_t session_vector;        /* set by its first cap registration */
    uint32_t slots_draining;        /* session slots released, data window not yet revoked */

    /* The end of the running incarnation: first decision wins. */
    struct {
        pthread_mutex_t lock;       /* leaf: held only to copy the decision */
        bool decided;
        uint64_t t_ns;              /* when it was decided */
        enum domain_state state;
        struct crash_info crash;
        uint32_t code;
    } end;
    atomic_bool stop;               /* set once an end is decided */

    /* owned by the domain thread while an incarnation runs */
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

    pthread_t thread;               /* the domain thread */
    atomic_bool thread_started;
    cpu_set_t vcpu_cpus;        /* cfg.cpu alone, when pinned */
    int log_fd;
    uint8_t *image;
    size_t image_len;
};

const char *domain_state_name(enum domain_state s);
/* Pure: is from -> to an allowed lifecycle edge? */
bool domain_transition_ok(enum domain_state from, enum domain_state to);

/* Can cfg's kernel image be read (a usage error to report before KVM is
 * even opened)? False with a sentence in err. */
bool domain_check_image(const struct domain_config *cfg, char *err, size_t errlen);
/* Read the kernel image and open the log (log_dir/NAME.log). */
bool domain_init(struct domain *d, const struct domain_config *cfg, uint32_t id,
                 struct supervisor *sup, char *err, size_t errlen);
/* Build the first incarnation's VM and start the domain thread (takes
 * sup->lock). On failure the domain is CRASHED with cause CRASH_VMM_ERROR,
 * err says why, and no restart follows (a configuration error). */
bool domain_start(struct domain *d, char *err, size_t errlen);
/* End the running incarnation with why (takes sup->lock); the restart
 * policy then applies. No-op unless BOOTING or READY, or once an end is
 * decided. */
void domain_kill(struct domain *d, const struct crash_info *why);
/* Post the end of the running incarnation from any thread without taking
 * sup->lock (device workers, the domain thread): st is CRASHED (with why)
 * or STOPPED (with code). The caller must know an incarnation is running
 * (it is its vCPU or one of its device workers). */
void domain_end_post(struct domain *d, enum domain_state st, const struct crash_info *why,
                     uint32_t code);
/* Operator stop (takes sup->lock): the domain ends STOPPED and is not
 * restarted automatically; a pending automatic restart is cancelled. A
 * READY domain whose run loop honours stop requests (its guest says so in
 * the platform page) is asked for an orderly stop first: it drains its
 * sessions, its driver tears the device down, and it exits; the watchdog
 * forces the stop DOMAIN_STOP_GRACE_MS later if it has not (a hostile
 * guest gains nothing by ignoring it). Any other domain is stopped at
 * once. The device is quiesced and the windows scrubbed either way. */
#define DOMAIN_STOP_GRACE_MS 2000u
/* DOMAIN_FATAL_STORM fatal device states within DOMAIN_FATAL_STORM_MS are
 * a policy violation (fail-stop; audited once per window under
 * policy=audit): a driver resetting its device into the same fault. */
#define DOMAIN_FATAL_STORM    16u
#define DOMAIN_FATAL_STORM_MS 1000u
void domain_request_stop(struct domain *d);
/* Watchdog (sup->lock held): has d's orderly stop outlived its grace
 * time? Then the stop is forced (logged) and true is returned. */
bool domain_stop_overdue(struct domain *d, uint64_t now);
/* sup->lock held: is an orderly stop of d under way? */
bool domain_stop_pending(const struct domain *d);
/* Operator restart: end the running incarnation (if any), close the
 * breaker, forget the restart budget, and wait (up to 10 s) until a new
 * incarnation was built. Caller holds no lock. False + err on failure. */
bool domain_restart(struct domain *d, char *err, size_t errlen);
/* Inject fault kind (enum moat_fault) into the running incarnation (takes
 * sup->lock): the VMM raises kill and crash-loop itself; other kinds are
 * handed to the guest through the platform page and raised there (its
 * session vector wakes it; the run loop polls). 0, or -MOAT_EDOWN (not
 * running), -MOAT_ERESTARTING (on its way back), -MOAT_EINVAL (no such
 * kind), -MOAT_ENOTSUP (its guest cannot raise it; err says why). */
int domain_inject(struct domain *d, uint32_t kind, const char *who, char *err, size_t errlen);
/* Stop the domain for good and wait for its thread (no lock held). */
void domain_join(struct domain *d);
void domain_fini(struct domain *d);
/* Is d on its way to serving (booting, ending with a restart possible,
 * or waiting for one), rather than down for good? sup->lock held. */
bool domain_coming_back(const struct domain *d);
/* The policy in force for d (RESTART_DEFAULT resolved; sup->lock held). */
enum restart_policy domain_restart_policy(const struct domain *d);

/* Current heartbeat of a running domain, or 0 once it has ended (takes
 * sup->lock). */
uint64_t domain_heartbeat(struct domain *d);

/* Watchdog step, called with sup->lock held: samples the heartbeat and
 * returns true (filling why) if the domain must be killed at time now. */
bool domain_watchdog_check(struct domain *d, uint64_t now_ns, struct crash_info *why);

#endif /* MOAT_DOMAIN_H */
