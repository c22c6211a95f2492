/* DMA broker (contract in broker.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "broker.h"
#include "enum_name.h"
#include "moat/layout.h"

static const char *const refusal_names[] = {
    [BR_OK] = "ok",
    [BR_ZERO_LENGTH] = "zero length",
    [BR_OVERFLOW] = "address range wraps",
    [BR_OUT_OF_WINDOW] = "outside every window of the domain",
    [BR_PARTIAL] = "runs past the end of its window",
    [BR_DIRECTION] = "direction not allowed by the window",
    [BR_STALE] = "stale generation",
    [BR_NOT_LIVE] = "window is being revoked",
    [BR_REVOKED] = "window was revoked",
};

const char *broker_refusal_name(enum broker_refusal r)
{
    return ENUM_NAME(refusal_names, r);
}

void broker_init(struct broker *b, uint64_t quota_bytes, const struct broker_mapper *m)
{
    memset(b, 0, sizeof *b);
    pthread_mutex_init(&b->lock, NULL);
    for (unsigned i = 0; i < BROKER_DOMAINS_MAX; i++) {
        pthread_mutex_init(&b->dom[i].lock, NULL);
        pthread_cond_init(&b->dom[i].idle, NULL);
    }
    b->quota_bytes = quota_bytes;
    atomic_init(&b->audit_seq, 0);
    if (m)
        b->mapper = *m;
    for (unsigned i = 0; i < BROKER_WINDOWS_MAX; i++)
        b->win[i].memfd = -1;
}

/* Caller holds bd->lock. */
static void audit(struct broker *b, struct broker_domain *bd, uint32_t domain, const char *device,
                  uint64_t addr, uint64_t len, enum broker_refusal why)
{
    struct broker_audit *a = &bd->audit[bd->n_audit++ % BROKER_AUDIT_PER_DOMAIN];
    memset(a, 0, sizeof *a);
    a->seq = atomic_fetch_add(&b->audit_seq, 1);
    a->domain = domain;
    snprintf(a->device, sizeof a->device, "%s", device ? device : "?");
    a->addr = addr;
    a->len = len;
    a->reason = why;
    bd->acct.refusals++;
}

/* Ranges [a, a+al) and [c, c+cl), both non-empty and non-wrapping. */
static bool overlaps(uint64_t a, uint64_t al, uint64_t c, uint64_t cl)
{
    return a < c + cl && c < a + al;
}

/* Reserve a free slot for a window of domain at [iova, iova+len) inside
 * [lo, hi), after every check that does not depend on how it is backed;
 * -1 with err set otherwise. Caller holds b->lock. */
static int reserve_slot(struct broker *b, uint32_t domain, uint64_t iova, uint64_t len,
                        uint32_t dirs, const char *range, uint64_t lo, uint64_t hi, char *err,
                        size_t errlen)
{
    if (domain >= BROKER_DOMAINS_MAX) {
        snprintf(err, errlen, "domain id %u out of range", domain);
        return -1;
    }
    if (len == 0 || (iova | len) % MOAT_PAGE_SIZE || iova < lo || iova > UINT64_MAX - len ||
        iova + len > hi) {
        snprintf(err, errlen, "window 0x%llx+0x%llx must be page-aligned, non-empty and "
                 "inside the %s range [0x%llx, 0x%llx)", (unsigned long long)iova,
                 (unsigned long long)len, range, (unsigned long long)lo, (unsigned long long)hi);
        return -1;
    }
    if (!dirs || (dirs & ~(uint32_t)DMA_BIDIR)) {
        snprintf(err, errlen, "window directions 0x%x invalid", dirs);
        return -1;
    }
    int slot = -1;
    for (int i = 0; i < BROKER_WINDOWS_MAX; i++) {
        struct dma_window *w = &b->win[i];
        if (!w->reserved) {
            if (slot < 0)
                slot = i;
        } else if (w->domain == domain && overlaps(iova, len, w->iova, w->len)) {
            snprintf(err, errlen, "window 0x%llx+0x%llx overlaps window %d (0x%llx+0x%llx)",
                     (unsigned long long)iova, (unsigned long long)len, i,
                     (unsigned long long)w->iova, (unsigned long long)w->len);
            return -1;
        }
    }
    if (slot < 0) {
        snprintf(err, errlen, "no free window slot (%d in use)", BROKER_WINDOWS_MAX);
        return -1;
    }
    struct dma_window *w = &b->win[slot];
    w->reserved = true;
    w->domain = domain;
    w->iova = iova;
    w->len = len;
    w->host = NULL;
    w->memfd = -1;
    return slot;
}

static void release_slot(struct broker *b, int slot)
{
    pthread_mutex_lock(&b->lock);
    b->win[slot].reserved = false;
    pthread_mutex_unlock(&b->lock);
}

/* Put reserved slot on its domain's list as a live window. */
static struct dma_handle activate(struct broker *b, int slot, uint32_t dirs, uint8_t *host,
                                  int memfd)
{
    struct dma_window *w = &b->win[slot];
    struct broker_domain *bd = &b->dom[w->domain];
    pthread_mutex_lock(&bd->lock);
    w->host = host;
    w->memfd = memfd;
    w->adopted = memfd < 0;
    w->generation++;
    w->state = WIN_LIVE;
    w->dirs = dirs;
    w->in_flight = 0;
    w->maps = 0;
    bd->list[bd->n++] = (uint16_t)slot;
    if (!w->adopted)
        bd->acct.windows++;
    struct dma_handle h = { (uint32_t)slot, w->generation };
    pthread_mutex_unlock(&bd->lock);
    return h;
}

/* Reserve (b->lock held on entry, dropped on return), back and map a
 * granted window. */
static bool grant_reserved(struct broker *b, int slot, uint32_t dirs, struct dma_handle *out,
                           char *err, size_t errlen)
{
    struct dma_window *w = &b->win[slot];
    uint32_t domain = w->domain;
    uint64_t iova = w->iova, len = w->len;
    struct broker_domain *bd = &b->dom[domain];
    pthread_mutex_lock(&bd->lock);
    struct broker_account *acct = &bd->acct;
    bool quota_ok = len <= b->quota_bytes - acct->bytes && acct->bytes <= b->quota_bytes;
    if (quota_ok)
        acct->bytes += len;     /* held while the window is backed */
    else
        snprintf(err, errlen, "quota: domain %u holds %llu of %llu bytes, asked %llu more",
                 domain, (unsigned long long)acct->bytes, (unsigned long long)b->quota_bytes,
                 (unsigned long long)len);
    pthread_mutex_unlock(&bd->lock);
    if (!quota_ok)
        w->reserved = false;
    pthread_mutex_unlock(&b->lock);
    if (!quota_ok)
        return false;
    /* No broker lock is held while backing it. Backed lazily: pages come
     * (zeroed) when the domain or a device first touches them, so a large
     * window the driver uses a little of costs little to grant (populating
     * 32 MiB up front took ~19 ms of a domain's boot). */
    int fd = memfd_create("moat-dma-window", MFD_CLOEXEC);
    void *host = MAP_FAILED;
    if (fd < 0 || ftruncate(fd, (off_t)len) < 0) {
        snprintf(err, errlen, "cannot back the window: %s", strerror(errno));
    } else {
        host = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (host == MAP_FAILED)
            snprintf(err, errlen, "cannot map the window: %s", strerror(errno));
    }
    if (host != MAP_FAILED && b->mapper.map &&
        !b->mapper.map(b->mapper.ctx, domain, (uint32_t)slot, iova, len, host)) {
        snprintf(err, errlen, "cannot make the window visible to domain %u", domain);
        munmap(host, len);
        host = MAP_FAILED;
    }
    if (host == MAP_FAILED) {
        if (fd >= 0)
            close(fd);
        pthread_mutex_lock(&bd->lock);
        acct->bytes -= len;
        pthread_mutex_unlock(&bd->lock);
        release_slot(b, slot);
        return false;
    }
    *out = activate(b, slot, dirs, host, fd);
    return true;
}

bool broker_grant(struct broker *b, uint32_t domain, uint64_t iova, uint64_t len,
                  uint32_t dirs, struct dma_handle *out, char *err, size_t errlen)
{
    pthread_mutex_lock(&b->lock);
    int slot = reserve_slot(b, domain, iova, len, dirs, "DMA", MOAT_GPA_DMA_BASE,
                            MOAT_GPA_SESSION_BASE, err, errlen);
    if (slot < 0) {
        pthread_mutex_unlock(&b->lock);
        return false;
    }
    return grant_reserved(b, slot, dirs, out, err, errlen);
}

/* Lowest IOVA >= the DMA base, aligned, with a guard gap to every window of
 * every domain. Caller holds b->lock. */
static uint64_t pick_iova(const struct broker *b, uint64_t len, uint64_t align)
{
    uint64_t cand = MOAT_GPA_DMA_BASE;
    for (bool moved = true; moved;) {
        moved = false;
        for (int i = 0; i < BROKER_WINDOWS_MAX; i++) {
            const struct dma_window *w = &b->win[i];
            if (!w->reserved ||
                !overlaps(cand, len + BROKER_GUARD, w->iova - BROKER_GUARD,
                          w->len + 2 * BROKER_GUARD))
                continue;
            cand = (w->iova + w->len + BROKER_GUARD + align - 1) & ~(align - 1);
            moved = true;
        }
    }
    return cand;
}

bool broker_grant_any(struct broker *b, uint32_t domain, uint64_t len, uint64_t align,
                      uint32_t dirs, struct dma_handle *out, uint64_t *iova,
                      char *err, size_t errlen)
{
    if (align < MOAT_PAGE_SIZE || align & (align - 1) || len == 0 ||
        len > MOAT_GPA_SESSION_BASE - MOAT_GPA_DMA_BASE) {
        snprintf(err, errlen, "window of 0x%llx bytes aligned to 0x%llx is invalid",
                 (unsigned long long)len, (unsigned long long)align);
        return false;
    }
    pthread_mutex_lock(&b->lock);
    *iova = pick_iova(b, len, align);
    int slot = reserve_slot(b, domain, *iova, len, dirs, "DMA", MOAT_GPA_DMA_BASE,
                            MOAT_GPA_SESSION_BASE, err, errlen);
    if (slot < 0) {
        pthread_mutex_unlock(&b->lock);
        return false;
    }
    return grant_reserved(b, slot, dirs, out, err, errlen);
}

bool broker_adopt(struct broker *b, uint32_t domain, uint64_t iova, uint64_t len, void *host,
                  uint32_t dirs, struct dma_handle *out, char *err, size_t errlen)
{
    if (!host || (uintptr_t)host % MOAT_PAGE_SIZE) {
        snprintf(err, errlen, "adopted memory must be page-aligned");
        return false;
    }
    pthread_mutex_lock(&b->lock);
    int slot = reserve_slot(b, domain, iova, len, dirs, "session", MOAT_GPA_SESSION_BASE,
                            UINT64_MAX, err, errlen);
    pthread_mutex_unlock(&b->lock);
    if (slot >= 0)
        *out = activate(b, slot, dirs, host, -1);
    return slot >= 0;
}

void *broker_dma_map(struct broker *b, uint32_t domain, const char *device, uint64_t iova,
                     uint64_t len, enum dma_dir dir, struct dma_mapping *m)
{
    memset(m, 0, sizeof *m);
    if (domain >= BROKER_DOMAINS_MAX) {     /* a VMM bug, not guest input */
        m->refusal = BR_OUT_OF_WINDOW;
        return NULL;
    }
    struct broker_domain *bd = &b->dom[domain];
    pthread_mutex_lock(&bd->lock);
    enum broker_refusal why = BR_OUT_OF_WINDOW;
    struct dma_window *hit = NULL;
    if (len == 0) {
        why = BR_ZERO_LENGTH;
    } else if (iova > UINT64_MAX - (len - 1)) {
        why = BR_OVERFLOW;
    } else {
        for (uint32_t i = 0; i < bd->n && !hit; i++) {
            struct dma_window *w = &b->win[bd->list[i]];
            if (iova >= w->iova && iova - w->iova < w->len)
                hit = w;
        }
        /* A revoked window is remembered a while, so a device still aiming
         * at it is told why. */
        for (uint32_t i = 0; i < BROKER_REVOKED_MEMORY && !hit; i++) {
            if (bd->revoked[i].len && iova >= bd->revoked[i].iova &&
                iova - bd->revoked[i].iova < bd->revoked[i].len)
                why = BR_REVOKED;
        }
        if (hit) {
            uint64_t room = hit->len - (iova - hit->iova);
            if (hit->state != WIN_LIVE)
                why = BR_NOT_LIVE;
            else if (len > room)
                why = BR_PARTIAL;
            else if ((uint32_t)dir & ~hit->dirs || !dir)
                why = BR_DIRECTION;
            else
                why = BR_OK;
        }
    }
    if (why != BR_OK) {
        audit(b, bd, domain, device, iova, len, why);
        m->refusal = why;
        pthread_mutex_unlock(&bd->lock);
        return NULL;
    }
    hit->in_flight++;
    hit->maps++;
    *m = (struct dma_mapping){
        .host = hit->host + (iova - hit->iova), .iova = iova, .len = len,
        .window = (uint32_t)(hit - b->win), .generation = hit->generation, .domain = domain,
    };
    pthread_mutex_unlock(&bd->lock);
    return m->host;
}

void broker_dma_unmap(struct broker *b, struct dma_mapping *m)
{
    if (!m->host)
        return;
    struct broker_domain *bd = &b->dom[m->domain];
    pthread_mutex_lock(&bd->lock);
    struct dma_window *w = &b->win[m->window];
    if (w->in_flight && --w->in_flight == 0)
        pthread_cond_broadcast(&bd->idle);
    pthread_mutex_unlock(&bd->lock);
    m->host = NULL;
}

bool broker_mapping_valid(struct broker *b, const struct dma_mapping *m)
{
    if (!m->host || m->window >= BROKER_WINDOWS_MAX || m->domain >= BROKER_DOMAINS_MAX)
        return false;
    struct broker_domain *bd = &b->dom[m->domain];
    pthread_mutex_lock(&bd->lock);
    bool ok = b->win[m->window].state == WIN_LIVE &&
              b->win[m->window].generation == m->generation;
    pthread_mutex_unlock(&bd->lock);
    return ok;
}

/* Caller holds bd->lock and w is LIVE; returns with no lock held. Hide,
 * quiesce, bump, then scrub and free outside the lock. */
static void revoke_locked(struct broker *b, struct broker_domain *bd, struct dma_window *w)
{
    uint32_t slot = (uint32_t)(w - b->win);
    w->state = WIN_QUIESCING;
    w->generation++;            /* every older handle and mapping is stale now */
    if (b->mapper.unmap && !w->adopted)     /* the owner hid adopted memory */
        b->mapper.unmap(b->mapper.ctx, w->domain, slot, w->iova, w->len);
    while (w->in_flight)        /* in-flight device I/O finishes first */
        pthread_cond_wait(&bd->idle, &bd->lock);
    w->state = WIN_SCRUBBING;   /* invisible: every map is refused */
    pthread_mutex_unlock(&bd->lock);

    /* A granted window's memory is freed and may back another domain's
     * window next: scrubbed. Adopted memory (a session's data area) stays
     * with its owner and is never handed to anyone else; its client may be
     * copying a completed read out of it right now: left as it is. */
    if (!w->adopted) {
        /* Punching the whole file out frees its pages at once: every byte
         * reads as zero from here on, without writing 256 MiB of zeros
         * (the kernel zero-fills pages when it hands them out again). */
        if (fallocate(w->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
                      (off_t)w->len) != 0)
            memset(w->host, 0, w->len);
        if (b->mapper.scrubbed)
            b->mapper.scrubbed(b->mapper.ctx, slot, w->host, w->len);
        munmap(w->host, w->len);
        close(w->memfd);
    }

    pthread_mutex_lock(&bd->lock);
    for (uint32_t i = 0; i < bd->n; i++) {
        if (bd->list[i] == slot) {
            bd->list[i] = bd->list[--bd->n];
            break;
        }
    }
    bd->revoked[bd->n_revoked++ % BROKER_REVOKED_MEMORY].iova = w->iova;
    bd->revoked[(bd->n_revoked - 1) % BROKER_REVOKED_MEMORY].len = w->len;
    if (!w->adopted) {
        bd->acct.bytes -= w->len;
        bd->acct.windows--;
    }
    w->host = NULL;
    w->memfd = -1;
    w->state = WIN_FREE;
    pthread_mutex_unlock(&bd->lock);
    release_slot(b, (int)slot);
}

bool broker_revoke(struct broker *b, struct dma_handle h, char *err, size_t errlen)
{
    struct dma_window *w = h.window < BROKER_WINDOWS_MAX ? &b->win[h.window] : NULL;
    /* The owner of a slot is set while it is reserved (b->lock); a slot
     * freed and reserved again meanwhile has moved its generation on, so
     * the handle is refused as stale under whichever domain lock we hold. */
    struct broker_domain *bd = NULL;
    if (w) {
        pthread_mutex_lock(&b->lock);
        if (w->reserved)
            bd = &b->dom[w->domain];
        pthread_mutex_unlock(&b->lock);
    }
    if (bd)
        pthread_mutex_lock(&bd->lock);
    if (!w || !bd || w->state != WIN_LIVE || w->generation != h.generation) {
        snprintf(err, errlen, "window handle %u/%u is stale or invalid", h.window, h.generation);
        if (bd)
            pthread_mutex_unlock(&bd->lock);
        return false;
    }
    revoke_locked(b, bd, w);
    return true;
}

unsigned broker_revoke_domain(struct broker *b, uint32_t domain)
{
    if (domain >= BROKER_DOMAINS_MAX)
        return 0;
    struct broker_domain *bd = &b->dom[domain];
    unsigned n = 0;
    for (;;) {
        pthread_mutex_lock(&bd->lock);
        struct dma_window *live = NULL;
        for (uint32_t i = 0; i < bd->n && !live; i++)
            if (b->win[bd->list[i]].state == WIN_LIVE)
                live = &b->win[bd->list[i]];
        if (!live) {
            pthread_mutex_unlock(&bd->lock);
            return n;
        }
        revoke_locked(b, bd, live);     /* drops the lock */
        n++;
    }
}

struct broker_account broker_account(struct broker *b, uint32_t domain)
{
    struct broker_account a = {0};
    if (domain >= BROKER_DOMAINS_MAX)
        return a;
    pthread_mutex_lock(&b->dom[domain].lock);
    a = b->dom[domain].acct;
    pthread_mutex_unlock(&b->dom[domain].lock);
    return a;
}

static int by_seq(const void *x, const void *y)
{
    const struct broker_audit *a = x, *c = y;
    return (a->seq > c->seq) - (a->seq < c->seq);
}

size_t broker_audit_read(struct broker *b, uint64_t since, struct broker_audit *out, size_t max)
{
    /* Each domain keeps its own newest records; merge them by seq. */
    static _Thread_local struct broker_audit all[BROKER_DOMAINS_MAX * BROKER_AUDIT_PER_DOMAIN];
    size_t n = 0;
    for (unsigned d = 0; d < BROKER_DOMAINS_MAX; d++) {
        struct broker_domain *bd = &b->dom[d];
        pthread_mutex_lock(&bd->lock);
        uint64_t first = bd->n_audit > BROKER_AUDIT_PER_DOMAIN
                             ? bd->n_audit - BROKER_AUDIT_PER_DOMAIN : 0;
        for (uint64_t i = first; i < bd->n_audit; i++) {
            const struct broker_audit *a = &bd->audit[i % BROKER_AUDIT_PER_DOMAIN];
            if (a->seq >= since)
                all[n++] = *a;
        }
        pthread_mutex_unlock(&bd->lock);
    }
    qsort(all, n, sizeof all[0], by_seq);
    size_t k = n < max ? n : max;
    memcpy(out, all, k * sizeof out[0]);
    return k;
}

uint64_t broker_audit_seq(struct broker *b)
{
    return atomic_load(&b->audit_seq);
}

bool broker_other_window(struct broker *b, uint32_t domain, uint64_t *iova)
{
    bool found = false;
    pthread_mutex_lock(&b->lock);
    for (unsigned i = 0; i < BROKER_WINDOWS_MAX && !found; i++) {
        const struct dma_window *w = &b->win[i];
        if (w->reserved && w->domain != domain && w->iova < MOAT_GPA_SESSION_BASE) {
            *iova = w->iova;
            found = true;
        }
    }
    pthread_mutex_unlock(&b->lock);
    return found;
}

bool broker_window_peek(struct broker *b, uint32_t window, struct dma_window *out)
{
    if (window >= BROKER_WINDOWS_MAX)
        return false;
    pthread_mutex_lock(&b->lock);
    struct dma_window *w = &b->win[window];
    uint32_t domain = w->domain < BROKER_DOMAINS_MAX ? w->domain : 0;
    pthread_mutex_lock(&b->dom[domain].lock);
    *out = *w;
    pthread_mutex_unlock(&b->dom[domain].lock);
    pthread_mutex_unlock(&b->lock);
    return true;
}

void broker_fini(struct broker *b)
{
    for (uint32_t d = 0; d < BROKER_DOMAINS_MAX; d++)
        broker_revoke_domain(b, d);
    for (unsigned i = 0; i < BROKER_DOMAINS_MAX; i++) {
        pthread_cond_destroy(&b->dom[i].idle);
        pthread_mutex_destroy(&b->dom[i].lock);
    }
    pthread_mutex_destroy(&b->lock);
}
