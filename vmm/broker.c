/* DMA broker (contract in broker.h). */
#include <errno.h>
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
    pthread_cond_init(&b->idle, NULL);
    b->quota_bytes = quota_bytes;
    if (m)
        b->mapper = *m;
    for (unsigned i = 0; i < BROKER_WINDOWS_MAX; i++)
        b->win[i].memfd = -1;
}

/* Caller holds the lock. */
static void audit(struct broker *b, uint32_t domain, const char *device, uint64_t addr,
                  uint64_t len, enum broker_refusal why)
{
    struct broker_audit *a = &b->audit[b->audit_seq % BROKER_AUDIT_RING];
    memset(a, 0, sizeof *a);
    a->seq = b->audit_seq++;
    a->domain = domain;
    snprintf(a->device, sizeof a->device, "%s", device ? device : "?");
    a->addr = addr;
    a->len = len;
    a->reason = why;
    if (domain < BROKER_DOMAINS_MAX)
        b->acct[domain].refusals++;
}

/* Ranges [a, a+al) and [c, c+cl), both non-empty and non-wrapping. */
static bool overlaps(uint64_t a, uint64_t al, uint64_t c, uint64_t cl)
{
    return a < c + cl && c < a + al;
}

/* A free slot for a window of domain at [iova, iova+len) inside [lo, hi),
 * after every check that does not depend on how it is backed; -1 with err
 * set otherwise. Caller holds the lock. */
static int claim_slot(struct broker *b, uint32_t domain, uint64_t iova, uint64_t len,
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
        if (w->state == WIN_FREE) {
            if (slot < 0)
                slot = i;
        } else if (w->domain == domain && overlaps(iova, len, w->iova, w->len)) {
            snprintf(err, errlen, "window 0x%llx+0x%llx overlaps window %d (0x%llx+0x%llx)",
                     (unsigned long long)iova, (unsigned long long)len, i,
                     (unsigned long long)w->iova, (unsigned long long)w->len);
            return -1;
        }
    }
    if (slot < 0)
        snprintf(err, errlen, "no free window slot (%d in use)", BROKER_WINDOWS_MAX);
    return slot;
}

/* Make slot a live window. Caller holds the lock. */
static struct dma_handle activate(struct broker *b, int slot, uint32_t domain, uint64_t iova,
                                  uint64_t len, uint32_t dirs, uint8_t *host, int memfd)
{
    struct dma_window *w = &b->win[slot];
    w->generation++;
    w->state = WIN_LIVE;
    w->domain = domain;
    w->dirs = dirs;
    w->iova = iova;
    w->len = len;
    w->host = host;
    w->memfd = memfd;
    w->adopted = memfd < 0;
    w->in_flight = 0;
    w->maps = 0;
    return (struct dma_handle){ (uint32_t)slot, w->generation };
}

/* Caller holds the lock. */
static bool grant_locked(struct broker *b, uint32_t domain, uint64_t iova, uint64_t len,
                         uint32_t dirs, struct dma_handle *out, char *err, size_t errlen)
{
    int slot = claim_slot(b, domain, iova, len, dirs, "DMA", MOAT_GPA_DMA_BASE,
                          MOAT_GPA_SESSION_BASE, err, errlen);
    if (slot < 0)
        return false;
    struct broker_account *acct = &b->acct[domain];
    if (len > b->quota_bytes - acct->bytes || acct->bytes > b->quota_bytes) {
        snprintf(err, errlen, "quota: domain %u holds %llu of %llu bytes, asked %llu more",
                 domain, (unsigned long long)acct->bytes, (unsigned long long)b->quota_bytes,
                 (unsigned long long)len);
        return false;
    }
    int fd = memfd_create("moat-dma-window", MFD_CLOEXEC);
    if (fd < 0 || ftruncate(fd, (off_t)len) < 0) {
        snprintf(err, errlen, "cannot back the window: %s", strerror(errno));
        if (fd >= 0)
            close(fd);
        return false;
    }
    void *host = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
    if (host == MAP_FAILED) {
        snprintf(err, errlen, "cannot map the window: %s", strerror(errno));
        close(fd);
        return false;
    }
    if (b->mapper.map && !b->mapper.map(b->mapper.ctx, domain, (uint32_t)slot, iova, len, host)) {
        snprintf(err, errlen, "cannot make the window visible to domain %u", domain);
        munmap(host, len);
        close(fd);
        return false;
    }
    acct->bytes += len;
    acct->windows++;
    *out = activate(b, slot, domain, iova, len, dirs, host, fd);
    return true;
}

bool broker_grant(struct broker *b, uint32_t domain, uint64_t iova, uint64_t len,
                  uint32_t dirs, struct dma_handle *out, char *err, size_t errlen)
{
    pthread_mutex_lock(&b->lock);
    bool ok = grant_locked(b, domain, iova, len, dirs, out, err, errlen);
    pthread_mutex_unlock(&b->lock);
    return ok;
}

/* Lowest IOVA >= the DMA base, aligned, with a guard gap to every window of
 * every domain. Caller holds the lock. */
static uint64_t pick_iova(const struct broker *b, uint64_t len, uint64_t align)
{
    uint64_t cand = MOAT_GPA_DMA_BASE;
    for (bool moved = true; moved;) {
        moved = false;
        for (int i = 0; i < BROKER_WINDOWS_MAX; i++) {
            const struct dma_window *w = &b->win[i];
            if (w->state == WIN_FREE ||
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
    bool ok = grant_locked(b, domain, *iova, len, dirs, out, err, errlen);
    pthread_mutex_unlock(&b->lock);
    return ok;
}

bool broker_adopt(struct broker *b, uint32_t domain, uint64_t iova, uint64_t len, void *host,
                  uint32_t dirs, struct dma_handle *out, char *err, size_t errlen)
{
    if (!host || (uintptr_t)host % MOAT_PAGE_SIZE) {
        snprintf(err, errlen, "adopted memory must be page-aligned");
        return false;
    }
    pthread_mutex_lock(&b->lock);
    int slot = claim_slot(b, domain, iova, len, dirs, "session", MOAT_GPA_SESSION_BASE,
                          UINT64_MAX, err, errlen);
    if (slot >= 0)
        *out = activate(b, slot, domain, iova, len, dirs, host, -1);
    pthread_mutex_unlock(&b->lock);
    return slot >= 0;
}

void *broker_dma_map(struct broker *b, uint32_t domain, const char *device, uint64_t iova,
                     uint64_t len, enum dma_dir dir, struct dma_mapping *m)
{
    memset(m, 0, sizeof *m);
    pthread_mutex_lock(&b->lock);
    enum broker_refusal why = BR_OUT_OF_WINDOW;
    struct dma_window *hit = NULL;
    if (len == 0) {
        why = BR_ZERO_LENGTH;
    } else if (iova > UINT64_MAX - (len - 1)) {
        why = BR_OVERFLOW;
    } else {
        for (int i = 0; i < BROKER_WINDOWS_MAX && !hit; i++) {
            struct dma_window *w = &b->win[i];
            if (w->state != WIN_FREE && w->domain == domain && iova >= w->iova &&
                iova - w->iova < w->len)
                hit = w;
        }
        /* A freed slot remembers its last window until reused, so a device
         * still aiming at it is told why. */
        for (int i = 0; i < BROKER_WINDOWS_MAX && !hit; i++) {
            const struct dma_window *w = &b->win[i];
            if (w->state == WIN_FREE && w->len && w->domain == domain && iova >= w->iova &&
                iova - w->iova < w->len)
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
        audit(b, domain, device, iova, len, why);
        m->refusal = why;
        pthread_mutex_unlock(&b->lock);
        return NULL;
    }
    hit->in_flight++;
    hit->maps++;
    *m = (struct dma_mapping){
        .host = hit->host + (iova - hit->iova), .iova = iova, .len = len,
        .window = (uint32_t)(hit - b->win), .generation = hit->generation, .domain = domain,
    };
    pthread_mutex_unlock(&b->lock);
    return m->host;
}

void broker_dma_unmap(struct broker *b, struct dma_mapping *m)
{
    if (!m->host)
        return;
    pthread_mutex_lock(&b->lock);
    struct dma_window *w = &b->win[m->window];
    if (w->in_flight && --w->in_flight == 0)
        pthread_cond_broadcast(&b->idle);
    pthread_mutex_unlock(&b->lock);
    m->host = NULL;
}

bool broker_mapping_valid(struct broker *b, const struct dma_mapping *m)
{
    pthread_mutex_lock(&b->lock);
    bool ok = m->host && m->window < BROKER_WINDOWS_MAX &&
              b->win[m->window].state == WIN_LIVE &&
              b->win[m->window].generation == m->generation;
    pthread_mutex_unlock(&b->lock);
    return ok;
}

/* Caller holds the lock; w is LIVE. Hide, quiesce, bump, scrub, free. */
static void revoke_locked(struct broker *b, struct dma_window *w)
{
    uint32_t slot = (uint32_t)(w - b->win);
    w->state = WIN_QUIESCING;
    w->generation++;            /* every older handle and mapping is stale now */
    if (b->mapper.unmap && !w->adopted)     /* the owner hid adopted memory */
        b->mapper.unmap(b->mapper.ctx, w->domain, slot, w->iova, w->len);
    while (w->in_flight)        /* in-flight device I/O finishes first */
        pthread_cond_wait(&b->idle, &b->lock);
    w->state = WIN_SCRUBBING;
    memset(w->host, 0, w->len);
    if (b->mapper.scrubbed)
        b->mapper.scrubbed(b->mapper.ctx, slot, w->host, w->len);
    if (!w->adopted) {
        munmap(w->host, w->len);
        close(w->memfd);
        struct broker_account *acct = &b->acct[w->domain];
        acct->bytes -= w->len;
        acct->windows--;
    }
    w->host = NULL;
    w->memfd = -1;
    w->state = WIN_FREE;
}

bool broker_revoke(struct broker *b, struct dma_handle h, char *err, size_t errlen)
{
    pthread_mutex_lock(&b->lock);
    struct dma_window *w = h.window < BROKER_WINDOWS_MAX ? &b->win[h.window] : NULL;
    if (!w || w->state != WIN_LIVE || w->generation != h.generation) {
        snprintf(err, errlen, "window handle %u/%u is stale or invalid", h.window, h.generation);
        pthread_mutex_unlock(&b->lock);
        return false;
    }
    revoke_locked(b, w);
    pthread_mutex_unlock(&b->lock);
    return true;
}

unsigned broker_revoke_domain(struct broker *b, uint32_t domain)
{
    unsigned n = 0;
    pthread_mutex_lock(&b->lock);
    for (int i = 0; i < BROKER_WINDOWS_MAX; i++) {
        if (b->win[i].state == WIN_LIVE && b->win[i].domain == domain) {
            revoke_locked(b, &b->win[i]);
            n++;
        }
    }
    pthread_mutex_unlock(&b->lock);
    return n;
}

struct broker_account broker_account(struct broker *b, uint32_t domain)
{
    struct broker_account a = {0};
    pthread_mutex_lock(&b->lock);
    if (domain < BROKER_DOMAINS_MAX)
        a = b->acct[domain];
    pthread_mutex_unlock(&b->lock);
    return a;
}

size_t broker_audit_read(struct broker *b, uint64_t since, struct broker_audit *out, size_t max)
{
    pthread_mutex_lock(&b->lock);
    uint64_t oldest = b->audit_seq > BROKER_AUDIT_RING ? b->audit_seq - BROKER_AUDIT_RING : 0;
    if (since < oldest)
        since = oldest;
    size_t n = 0;
    for (uint64_t s = since; s < b->audit_seq && n < max; s++)
        out[n++] = b->audit[s % BROKER_AUDIT_RING];
    pthread_mutex_unlock(&b->lock);
    return n;
}

void broker_fini(struct broker *b)
{
    pthread_mutex_lock(&b->lock);
    for (int i = 0; i < BROKER_WINDOWS_MAX; i++)
        if (b->win[i].state == WIN_LIVE)
            revoke_locked(b, &b->win[i]);
    pthread_mutex_unlock(&b->lock);
    pthread_cond_destroy(&b->idle);
    pthread_mutex_destroy(&b->lock);
}
