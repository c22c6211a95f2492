/*
 * moat/control_abi.h — the control protocol between clients (libmoat,
 * moatctl) and the VMM over a Unix SOCK_SEQPACKET socket: one message per
 * packet, a fixed header, a fixed-layout payload per type. Replies carry the
 * request's seq and a status (0 or -MOAT_E*). The server may also send
 * events (seq 0) at any time; a client reads them between replies.
 *
 * OPEN_SESSION's reply carries three file descriptors (SCM_RIGHTS): the
 * session memfd, the kick eventfd (client writes: interrupts the domain)
 * and the notify eventfd (client waits: the domain's doorbell).
 *
 * Both sides treat the other's messages as hostile: a wrong magic, a length
 * that does not match the type, an unterminated string is refused with
 * MOAT_EINVAL (server) or ends the connection (client).
 */
#ifndef MOAT_CONTROL_ABI_H
#define MOAT_CONTROL_ABI_H

#include <stdint.h>
#include "moat/platform_abi.h"
#include "moat/session_abi.h"

#define MOAT_CTL_MAGIC    0x4c54434du   /* "MCTL" */
#define MOAT_CTL_VERSION  2u
#define MOAT_CTL_MSG_MAX  65536u

/* Errors: libmoat calls return 0 or -MOAT_E*; replies carry the same. */
enum moat_err {
    MOAT_OK        = 0,
    MOAT_EINVAL    = 1,     /* malformed argument or message */
    MOAT_ENOENT    = 2,     /* no such cap, domain or session */
    MOAT_EPERM     = 3,     /* the handle lacks the right, or the peer may not */
    MOAT_ESTALE    = 4,     /* the object was restarted or revoked: reopen */
    MOAT_EBADCAP   = 5,     /* not a handle of this connection */
    MOAT_EDOWN     = 6,     /* the serving domain is not running */
    MOAT_ELIMIT    = 7,     /* a per-client or per-domain limit was reached */
    MOAT_EPROTO    = 8,     /* the peer broke the protocol (reported) */
    MOAT_EIO       = 9,     /* the device reported an error */
    MOAT_ENOTSUP   = 10,    /* the cap does not offer the operation */
    MOAT_ECONN     = 11,    /* cannot reach moat, or the connection is gone */
    MOAT_ETIMEDOUT = 12,
    MOAT_ENOMEM    = 13,
    MOAT_EBUSY     = 14,    /* too many requests outstanding */
    MOAT_ERANGE    = 15,    /* beyond the end of the device */
    MOAT_EROFS     = 16,    /* the device is read-only */
    MOAT_ESYS      = 17,    /* a system call failed (errno is kept) */
    MOAT_EFAILED   = 18,    /* the serving domain crash-looped: its breaker is open */
    MOAT_ERESTARTING = 19,  /* the serving domain is restarting: it comes back soon */
    MOAT_ERR_MAX   = 19,
};

/* "ESTALE" for MOAT_ESTALE (accepts the negative code too); "E?" if unknown.
 * Freestanding (shared/src/moat_err.c). */
const char *moat_err_name(int err);

enum moat_msg_type {
    MOAT_MSG_HELLO         = 1,
    MOAT_MSG_LIST_CAPS     = 2,
    MOAT_MSG_OPEN          = 3,
    MOAT_MSG_CLOSE         = 4,
    MOAT_MSG_OPEN_SESSION  = 5,
    MOAT_MSG_CLOSE_SESSION = 6,
    MOAT_MSG_REPORT        = 7,     /* client reports a domain's protocol violation */
    MOAT_MSG_DOMAINS       = 8,     /* Control: status of every domain */
    MOAT_MSG_STATS         = 9,     /* Control: counters of one domain */
    MOAT_MSG_AUDIT         = 10,    /* Control: recent audit records */
    MOAT_MSG_RESTART       = 11,    /* Control (admin) */
    MOAT_MSG_STOP          = 12,    /* Control (admin) */
    MOAT_MSG_INJECT        = 13,    /* Control (admin) */
    MOAT_MSG_EVENT         = 14,    /* server -> client, seq 0 */
    MOAT_MSG_AUDIT_SUM     = 15,    /* Control: audit counts of every domain */
    MOAT_MSG_TYPE_MAX      = 15,
};

struct moat_msg_hdr {
    uint32_t magic;
    uint16_t type;
    uint16_t flags;             /* 0 */
    uint32_t seq;               /* request: nonzero; reply: same; event: 0 */
    int32_t status;             /* replies: 0 or -MOAT_E* */
    uint32_t len;               /* payload bytes after the header */
    uint32_t reserved;
};

#define MOAT_NAME_LEN 48u       /* cap and domain names, NUL-terminated */

struct moat_hello_req   { uint32_t version; uint32_t reserved; };
struct moat_hello_reply { uint32_t version; uint32_t client_id; uint32_t uid; uint32_t admin; };

enum moat_cap_state { MOAT_CAP_UP = 1, MOAT_CAP_DOWN = 2 };

struct moat_cap_desc {
    char name[MOAT_NAME_LEN];   /* "<domain>.<suffix>", or "control" */
    char domain[MOAT_NAME_LEN]; /* serving domain ("" for control) */
    uint32_t kind;              /* enum moat_cap_kind */
    uint32_t state;             /* enum moat_cap_state */
    uint64_t generation;        /* bumped by every restart or revoke */
    union {
        struct moat_blk_geometry blk;   /* kind == BLOCK */
        struct moat_nic_info nic;       /* kind == NIC */
    };
};

#define MOAT_LIST_MAX 64u
struct moat_list_reply { uint32_t n; uint32_t reserved; struct moat_cap_desc cap[]; };

struct moat_open_req   { char name[MOAT_NAME_LEN]; uint32_t rights; uint32_t reserved; };
struct moat_open_reply { uint64_t handle; uint32_t rights; uint32_t reserved; struct moat_cap_desc cap; };

struct moat_close_req  { uint64_t handle; };

struct moat_session_req {
    uint64_t handle;
    uint32_t entries;           /* power of two, MOAT_SESSION_ENTRIES_MIN..MAX */
    uint32_t reserved;
    uint64_t data_size;         /* page multiple, <= MOAT_SESSION_DATA_MAX */
};
struct moat_session_reply {
    uint32_t session_id;
    uint32_t entries;
    uint64_t size;              /* of the memfd */
    uint64_t sq_off, cq_off, data_off, data_size;
};
struct moat_session_close_req { uint32_t session_id; uint32_t reserved; };

#define MOAT_REPORT_MAX 128u
struct moat_report_req { uint32_t session_id; uint32_t reserved; char reason[MOAT_REPORT_MAX]; };

/* Control. */
#define MOAT_DETAIL_MAX 160u
#define MOAT_DOMAIN_ENDS 4u
struct moat_domain_status {
    char name[MOAT_NAME_LEN];
    uint32_t id;
    uint32_t state;             /* vmm domain_state: 0 created .. 4 stopped */
    char state_name[16];
    uint64_t uptime_ns;         /* since this incarnation started */
    uint64_t heartbeat;
    uint32_t incarnation;       /* 1 for the first start */
    uint32_t sessions;          /* open now */
    char crash_cause[24];       /* "" unless crashed */
    char crash_detail[MOAT_DETAIL_MAX];
    /* Restart policy and breaker (moat/restart_policy.h). */
    char restart_policy[16];    /* "never", "on-failure", "always" */
    uint32_t restarts;          /* automatic and operator restarts */
    uint32_t auto_restarts;
    uint32_t budget_used, budget_max, budget_window_ms;
    uint32_t breaker_open;      /* 1: down until an operator restart */
    uint32_t n_ends;            /* entries of ends[], newest first */
    char breaker_reason[MOAT_DETAIL_MAX];
    struct moat_domain_end {    /* why recent incarnations ended */
        uint64_t ago_ns;
        uint32_t incarnation;
        uint32_t crashed;       /* 0: stopped with exit_code */
        uint32_t exit_code;
        uint32_t reserved;
        char cause[24];
        char detail[MOAT_DETAIL_MAX];
    } ends[MOAT_DOMAIN_ENDS];
};
struct moat_domains_reply { uint32_t n; uint32_t reserved; struct moat_domain_status dom[]; };

/* Every Control request: the Control handle, a domain name where the
 * operation needs one, and arg (AUDIT: max records; INJECT: enum moat_fault). */
struct moat_ctl_req { uint64_t handle; char name[MOAT_NAME_LEN]; uint32_t arg; uint32_t reserved; };

struct moat_domain_stats {
    char name[MOAT_NAME_LEN];
    uint64_t exits_io, exits_mmio, exits_intr;
    uint64_t msi_sent, platform_refused, pci_refused, dma_refused;
    /* refusals by kind (pci_refused and dma_refused are their totals) */
    uint64_t cfg_refused, cfg_bad_access, msix_bad_access, msi_bad_message;
    uint64_t bar_decode_off, dma_master_off;
    uint64_t bad_doorbells, bad_commands, device_fatal;
    uint64_t dma_bytes, dma_windows;
    uint64_t sessions_open, sessions_total, client_reports;
    uint64_t restarts;
    uint64_t audit_records, audit_dropped;  /* its audit trail */
};

/* What an audit record is about. Each domain's trail counts its records
 * by kind (moat_audit_sum). */
enum moat_audit_kind {
    MOAT_AUDIT_DMA,         /* device DMA refused by the broker */
    MOAT_AUDIT_PCI,         /* PCI policy: config, BAR or MSI-X access refused */
    MOAT_AUDIT_PLATFORM,    /* platform port access refused */
    MOAT_AUDIT_DEVICE,      /* a device refused driver input (doorbell, command) */
    MOAT_AUDIT_FATAL,       /* the driver put its device in a fatal state */
    MOAT_AUDIT_POLICY,      /* a policy violation ended the incarnation */
    MOAT_AUDIT_CLIENT,      /* a client reported the domain */
    MOAT_AUDIT_CONTROL,     /* an operator action or a cap refusal */
    MOAT_AUDIT_KINDS
};

struct moat_audit_rec {
    uint64_t seq;               /* order across all domains */
    char source[16];            /* the kind's name: "dma", "pci", ... */
    char domain[MOAT_NAME_LEN]; /* "" for moat itself */
    char text[MOAT_DETAIL_MAX];
};
#define MOAT_AUDIT_MAX 128u
/* AUDIT: moat_ctl_req.name selects one domain's trail ("" = every trail,
 * each giving at most its share of arg records); arg = how many (0: max). */
struct moat_audit_reply { uint32_t n; uint32_t reserved; struct moat_audit_rec rec[]; };

/* AUDIT_SUM: one entry per domain (and one for moat) with records. */
struct moat_audit_sum {
    char domain[MOAT_NAME_LEN];
    uint64_t written;           /* records ever written to its trail */
    uint64_t dropped;           /* of those, no longer kept (the trail is bounded) */
    uint64_t by_kind[MOAT_AUDIT_KINDS];
};
#define MOAT_AUDIT_SUM_MAX 64u
struct moat_audit_sum_reply { uint32_t n; uint32_t reserved; struct moat_audit_sum sum[]; };

/* INJECT faults (arg of moat_ctl_req): enum moat_fault in moat/platform_abi.h. */

enum moat_event {
    MOAT_EVT_SESSION_REVOKED = 1,   /* the serving domain ended: ESTALE */
    MOAT_EVT_CAP_UP          = 2,   /* a cap's domain became ready: reattach now works */
    MOAT_EVT_DOMAIN_DOWN     = 3,   /* the domain ended and stays down (reason in
                                     * session_id: enum moat_down_reason) */
};
enum moat_down_reason {
    MOAT_DOWN_STAYS   = 1,      /* its restart policy does not restart it, or an
                                 * operator stopped it */
    MOAT_DOWN_BREAKER = 2,      /* it crash-looped: the breaker is open */
};

struct moat_event_msg {
    uint32_t event;
    uint32_t session_id;            /* SESSION_REVOKED; DOMAIN_DOWN: the reason */
    char domain[MOAT_NAME_LEN];
    char cap[MOAT_NAME_LEN];        /* CAP_UP */
};

#endif /* MOAT_CONTROL_ABI_H */
