/*
 * broker.h — the DMA broker: the single owner of every DMA window
 * (DESIGN §5). A window is a memfd-backed range of a domain's IOVA space
 * (IOVA == guest-physical, at or above MOAT_GPA_DMA_BASE). Device models
 * reach domain memory only through broker_dma_map, which checks that the
 * whole range lies in one live window owned by that domain, allowing that
 * direction, with overflow-safe arithmetic.
 *
 * Rules that never bend:
 *  - a refused map touches no memory, is counted, and leaves an audit
 *    record (domain, device, address, length, reason);
 *  - a window is resident while device-visible and zeroed before it is
 *    freed (revoke: unmap from the domain -> wait for in-flight device
 *    mappings to end -> bump generation -> scrub -> free); adopted
 *    memory is quiesced the same way and left to its owner;
 *  - a handle or mapping from an older generation never succeeds.
 *
 * Locking (order in supervisor.h): broker.lock guards the window slots
 * and IOVA allocation (grant, final free); each domain's windows, its
 * accounting and its audit ring live under that domain's own lock, so the
 * map path takes only the mapping domain's lock and scans only its
 * windows. A revoke waits for in-flight maps under the domain lock (the
 * condvar releases it) and scrubs with no lock held, the window invisible
 * (SCRUBBING refuses maps) meanwhile: one domain's 256 MiB scrub never
 * stalls another domain's DMA. Map and unmap never wait for anything but a
 * domain lock. Error policy: grant/revoke return false with a reason in
 * err; map returns NULL and audits.
 */
#ifndef MOAT_BROKER_H
#define MOAT_BROKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BROKER_WINDOWS_MAX 192       /* 64 granted + one per cap session */
#define BROKER_AUDIT_RING  256       /* most records one broker_audit_read returns */
#define BROKER_AUDIT_PER_DOMAIN 128  /* kept per domain: a flood hides no other */
#define BROKER_REVOKED_MEMORY 16     /* revoked ranges a domain is told about */
#define BROKER_DOMAINS_MAX 64
#define BROKER_GUARD       (2ull << 20)    /* unmapped gap around windows */

enum dma_dir {
    DMA_TO_DEVICE   = 1u << 0,  /* the device reads domain memory */
    DMA_FROM_DEVICE = 1u << 1,  /* the device writes domain memory */
    DMA_BIDIR       = DMA_TO_DEVICE | DMA_FROM_DEVICE,
};

enum window_state { WIN_FREE, WIN_LIVE, WIN_QUIESCING, WIN_SCRUBBING };

enum broker_refusal {
    BR_OK = 0,
    BR_ZERO_LENGTH,     /* length 0 */
    BR_OVERFLOW,        /* address + length wraps 64 bits */
    BR_OUT_OF_WINDOW,   /* no window of this domain contains the start */
    BR_PARTIAL,         /* starts in a window but runs past its end */
    BR_DIRECTION,       /* the window does not allow this direction */
    BR_STALE,           /* handle or mapping of an older generation */
    BR_NOT_LIVE,        /* window is being revoked */
    BR_REVOKED,         /* the range was a window of the domain, now revoked */
};

struct dma_handle {             /* what a grant hands out */
    uint32_t window;
    uint32_t generation;
};

struct dma_mapping {            /* a device model's view of one map call */
    void *host;                 /* host pointer to the first byte */
    uint64_t iova, len;
    uint32_t window, generation;
    uint32_t domain;
    enum broker_refusal refusal;    /* why a map was refused, BR_OK if not */
};

struct dma_window {
    /* Set when the slot is reserved (broker.lock) and fixed until it is
     * free again; a window is on its domain's list only in between. */
    bool reserved;
    uint32_t domain;
    uint64_t iova, len;
    uint8_t *host;
    int memfd;                  /* -1 for adopted memory */
    bool adopted;               /* memory the caller owns (broker_adopt) */
    /* Under the owning domain's lock. */
    enum window_state state;
    uint32_t generation;        /* bumped at every revoke; never reused */
    uint32_t dirs;              /* enum dma_dir bits allowed */
    uint32_t in_flight;         /* live dma_mappings */
    uint64_t maps;              /* device accesses granted since it went live */
};

struct broker_audit {
    uint64_t seq;
    uint32_t domain;
    char device[16];
    uint64_t addr, len;
    enum broker_refusal reason;
};

struct broker_account {
    uint64_t bytes;             /* granted and not yet freed */
    uint32_t windows;
    uint64_t refusals;
};

struct broker_domain {          /* one domain's side of the broker */
    pthread_mutex_t lock;
    pthread_cond_t idle;        /* a window's in_flight dropped to 0 */
    uint16_t list[BROKER_WINDOWS_MAX];  /* its windows (slot numbers) */
    uint32_t n;
    struct { uint64_t iova, len; } revoked[BROKER_REVOKED_MEMORY];  /* ring */
    uint32_t n_revoked;
    struct broker_account acct;
    struct broker_audit audit[BROKER_AUDIT_PER_DOMAIN];     /* ring */
    uint64_t n_audit;
};

/* Called to make a window visible to (or hide it from) a domain, e.g. by
 * installing a KVM memslot. May be NULL (unit tests). */
struct broker_mapper {
    bool (*map)(void *ctx, uint32_t domain, uint32_t window, uint64_t iova, uint64_t len,
                void *host);
    void (*unmap)(void *ctx, uint32_t domain, uint32_t window, uint64_t iova, uint64_t len);
    /* Observer: the window's bytes right after scrubbing, before free. */
    void (*scrubbed)(void *ctx, uint32_t window, const uint8_t *host, uint64_t len);
    void *ctx;
};

struct broker {
    pthread_mutex_t lock;       /* slots (reserved) and IOVA allocation */
    struct dma_window win[BROKER_WINDOWS_MAX];
    struct broker_domain dom[BROKER_DOMAINS_MAX];
    uint64_t quota_bytes;       /* per domain */
    _Atomic uint64_t audit_seq; /* records ever written, all domains */
    struct broker_mapper mapper;
};

const char *broker_refusal_name(enum broker_refusal r);

void broker_init(struct broker *b, uint64_t quota_bytes, const struct broker_mapper *m);
/* Revokes (and scrubs) everything left, then frees. */
void broker_fini(struct broker *b);

/* Grant domain a zeroed window [iova, iova+len) allowing dirs. iova and len
 * must be page-aligned, iova >= MOAT_GPA_DMA_BASE, not overlapping another
 * window of the same domain, within the domain's quota. */
bool broker_grant(struct broker *b, uint32_t domain, uint64_t iova, uint64_t len,
                  uint32_t dirs, struct dma_handle *out, char *err, size_t errlen);
/* Grant a window at an IOVA the broker picks: aligned, unique across all
 * domains (so an address names one window, and a device aimed at another
 * domain's window is out of window), with BROKER_GUARD unmapped on each
 * side. The IOVA is returned in *iova. */
bool broker_grant_any(struct broker *b, uint32_t domain, uint64_t len, uint64_t align,
                      uint32_t dirs, struct dma_handle *out, uint64_t *iova,
                      char *err, size_t errlen);
/* Adopt memory the caller owns as a window of domain: host (len bytes)
 * at [iova, iova+len), both page-aligned and inside the session range
 * (>= MOAT_GPA_SESSION_BASE): cap-session data areas, which the domain
 * already shares with a client. Device models then reach it through
 * broker_dma_map like any window. The caller makes it visible to the
 * domain (no mapper call) and must revoke it before it unmaps the memory;
 * revoking quiesces it like any window (no device access after it
 * returns) but neither scrubs nor unmaps it: the memory is its owner's,
 * never anyone else's, and a client may still be reading a completed
 * request's data from it. Not counted against the domain's quota. */
bool broker_adopt(struct broker *b, uint32_t domain, uint64_t iova, uint64_t len, void *host,
                  uint32_t dirs, struct dma_handle *out, char *err, size_t errlen);
/* The only way a device model reaches domain memory. On success fills m
 * and returns m->host; the caller must broker_dma_unmap(m) when done. On
 * refusal returns NULL, counts and audits it, touches nothing. */
void *broker_dma_map(struct broker *b, uint32_t domain, const char *device, uint64_t iova,
                     uint64_t len, enum dma_dir dir, struct dma_mapping *m);
void broker_dma_unmap(struct broker *b, struct dma_mapping *m);
/* Is m still of the window's current generation (for long-lived maps)? */
bool broker_mapping_valid(struct broker *b, const struct dma_mapping *m);
/* Revoke: hide, quiesce (wait for in-flight maps), bump generation, scrub,
 * free. A stale handle is refused (false, err says so). */
bool broker_revoke(struct broker *b, struct dma_handle h, char *err, size_t errlen);
/* Revoke every window of domain (teardown), adopted ones too. Returns how
 * many. */
unsigned broker_revoke_domain(struct broker *b, uint32_t domain);
struct broker_account broker_account(struct broker *b, uint32_t domain);
/* Copy up to max audit records with seq >= since (oldest first); returns
 * the count. Older records than the ring holds are gone. */
size_t broker_audit_read(struct broker *b, uint64_t since, struct broker_audit *out,
                         size_t max);
/* Records ever written (the next record's seq). */
uint64_t broker_audit_seq(struct broker *b);
/* Some live DMA window (not session memory) of a domain other than
 * domain: its IOVA in *iova (a target for the wild-dma-other fault). */
bool broker_other_window(struct broker *b, uint32_t domain, uint64_t *iova);
/* A consistent copy of window slot `window` (tests, status). False if the
 * slot number is out of range. */
bool broker_window_peek(struct broker *b, uint32_t window, struct dma_window *out);

#endif /* MOAT_BROKER_H */
