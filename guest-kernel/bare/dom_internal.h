/* dom_internal.h — what the monitor's domain modules share (dom.c,
 * dom_load.c, dom_pci.c, nvme_shadow.c); nothing outside sees it. */
#ifndef BARE_DOM_INTERNAL_H
#define BARE_DOM_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dom/bare_dom.h"
#include "moat/boot_info.h"
#include "moat/platform_abi.h"
#include "moat/restart_policy.h"
#include "moat/session_abi.h"
#include "multiboot.h"
#include "trap.h"

#define DOMS_MAX 4u
#define DOM_AUDIT_MAX 16u
#define DOM_AUDIT_LEN 200u
#define DOM_WATCHDOG_MS 5000u          /* runnable, no heartbeat this long: stopped */

enum dom_state { DOM_FREE, DOM_RUNNABLE, DOM_WAITING, DOM_DEAD };
/* Why a domain ended: the restart policy restarts crashes (on-failure),
 * exits too (always), never an operator's stop or restart. */
enum dom_end_kind { DOM_END_CRASH, DOM_END_EXIT, DOM_END_OPERATOR };

struct dom_window { uint64_t iova, size, pa; };

struct dom_dev;                         /* dom_pci.c */

struct dom {
    enum dom_state state;
    char name[MOAT_NAME_MAX];
    uint32_t id;
    const struct boot_module *module;
    char dev_sel[24];
    uint64_t mem_size, dma_size;
    /* Memory, kept across restarts (scrubbed). */
    uint64_t pml4, image_pa, image_pages, heap_pa, stack_pa, pages_pa;
    struct dom_window win[MOAT_WINDOWS_MAX];
    uint32_t n_win;
    struct moat_boot_info *bi;          /* the monitor's views of the shared pages */
    struct moat_platform_page *pp;
    struct bare_dom_events *ev;
    struct moat_session_table *table;   /* as a server */
    uint32_t *doorbells;
    struct dom_dev *dev[MOAT_DEVICES_MAX];
    uint32_t n_dev;
    struct trap_frame frame;            /* where it resumes */
    /* svm (dom_svm.h): its VMCB and nested tables, kept across restarts. */
    uint64_t vmcb, npt, exits, npf;
    bool tlb_flush;                     /* its map narrowed: flush its ASID before it runs */
    uint64_t irq_count;                 /* the monitor's own count (the page is writable) */
    uint64_t entry;
    bool preempt;
    uint64_t hb_seen, hb_tsc;           /* the watchdog's last heartbeat and when */
    /* Life. */
    uint64_t started_tsc, ready_tsc;
    uint32_t incarnation, exit_code;
    char end_reason[DOM_AUDIT_LEN];
    struct moat_cap_register cap;
    bool has_cap;
    /* Supervision (dom_supervise.c). */
    enum restart_policy restart;
    struct restart_budget budget;
    bool breaker_open, crash_loop, restart_pending, auto_restart;
    uint64_t restart_tsc;               /* restart_pending: not before */
    /* Counters and the audit trail. */
    uint64_t syscalls, refused, irqs;
    char audit[DOM_AUDIT_MAX][DOM_AUDIT_LEN];
    uint32_t n_audit;
};

/* dom.c */
/* Log one line "moat bare: NAME: ..." (one event). */
void dom_log(const struct dom *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A refused input: logged, counted, kept in the domain's audit trail. */
void dom_audit(struct dom *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* End d (a hostile or broken access): audited, its devices quiesced. It
 * returns: the caller stops touching d's rings and returns; if d is the
 * domain running, it leaves the CPU when the trap returns (dom_return).
 * Safe from any trap, also a tick's sync of a domain not running. */
void dom_kill(struct dom *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Mark vector pending in d's event page and wake it. */
void dom_event(struct dom *d, uint32_t vector);
/* d ends (what: why, for the console): its devices quiesced and reset,
 * then the supervisor decides on a restart. */
void dom_end(struct dom *d, const char *what, enum dom_end_kind kind);
uint64_t dom_tsc_khz(void);
/* (Re)start d from its module: NULL, or why not. */
const char *dom_start(struct dom *d);
/* "cap NAME.CAP: BlockDevice, ..." or "...: Nic, MAC ..." */
void dom_cap_describe(const struct dom *d, char *out, size_t len);
/* Every domain slot, n of them (for the console). */
struct dom *dom_table(uint32_t *n);

/* dom_session.c: caps between domains, the monitor as broker */
/* SYS_SESSION_OPEN, SYS_SESSION_KICK, SYS_SESSION_CLOSE, SYS_SESSION_RELEASE. */
int64_t dom_session_open(struct dom *client, uint64_t name_va, uint64_t info_va, uint64_t vector);
int64_t dom_session_kick(struct dom *client, uint64_t k);
int64_t dom_session_close(struct dom *client, uint64_t k);
int64_t dom_session_release(struct dom *server, uint64_t slot);
/* server registered its cap (a new incarnation): fresh rings for every
 * session on it, published to it, their clients told. */
void dom_session_server_ready(struct dom *server);
/* d ended: as a client its sessions close; as a server they wait for its
 * next incarnation. */
void dom_session_ended(struct dom *d);
/* server stays down (its policy, or its breaker opened): its sessions'
 * clients are told, and fail what they have in flight. */
void dom_session_server_down(struct dom *server);
/* The physical address of [iova, iova + len) when it lies in the data
 * area of a session d serves now (zero copy), else 0. */
uint64_t dom_session_dma_pa(const struct dom *d, uint64_t iova, uint64_t len);
/* Take the doorbells d rang and wake their clients (d sleeps, or a tick). */
void dom_session_doorbells(struct dom *d);

/* dom_supervise.c */
/* The module's restart= and restarts= (first start only: they stay across
 * restarts); NULL, or why they are malformed. */
const char *dom_supervise_words(struct dom *d, const char *cmd);
/* d ended: restart it later (per policy and budget), or open its breaker. */
void dom_supervise_ended(struct dom *d, enum dom_end_kind kind);
/* The operator's restart: end d if it runs, close the breaker, forget the
 * budget, restart it as soon as its devices have settled. */
void dom_supervise_restart(struct dom *d);
/* d told the monitor it is ready (crash-loop injection kills it here). */
void dom_supervise_ready(struct dom *d);
/* Start the domains whose restart is due (the monitor loop, not a trap). */
void dom_supervise_poll(void);
/* "restart=on-failure, 1 of 5 restarts used in 30 s" and the breaker. */
void dom_supervise_describe(const struct dom *d, char *out, size_t len);

/* dom_load.c */
/* Build d's address space and load its image (first time: allocate;
 * later: scrub and reuse). NULL, or why not. */
const char *dom_load(struct dom *d, uint64_t tsc_khz);
/* Map 2 MiB of session memory at pa as d's session k (pa 0: unmap; what
 * was there is unmapped first). Entered domains get a fresh CR3 load (or,
 * under svm, a flush of their ASID), so no stale translation stays. False
 * when memory for a nested table runs out (nothing is then mapped). */
bool dom_map_session(struct dom *d, uint32_t k, uint64_t pa);
/* Physical address of [iova, iova + len) when it lies inside one of d's
 * windows or the data area of a session it serves (dom_session_dma_pa),
 * else 0 (a window never starts at physical 0). */
uint64_t dom_window_pa(const struct dom *d, uint64_t iova, uint64_t len);
/* Copy len bytes from d's user address va; false when any byte is not
 * mapped for ring 3. */
bool dom_copy_in(const struct dom *d, void *dst, uint64_t va, uint64_t len);
/* Copy len bytes to d's user address va; false when any byte is not
 * mapped writable for ring 3. */
bool dom_copy_out(const struct dom *d, uint64_t va, const void *src, uint64_t len);

#endif /* BARE_DOM_INTERNAL_H */
