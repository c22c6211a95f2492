/* Per-domain audit trails (contract in audit.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "audit.h"

_Static_assert(AUDIT_TRAILS <= MOAT_AUDIT_SUM_MAX, "every trail fits one summary reply");

void audit_init(struct audit *a)
{
    memset(a, 0, sizeof *a);
    for (uint32_t i = 0; i < AUDIT_TRAILS; i++)
        pthread_mutex_init(&a->trail[i].lock, NULL);
    atomic_init(&a->seq, 0);
}

void audit_fini(struct audit *a)
{
    for (uint32_t i = 0; i < AUDIT_TRAILS; i++)
        pthread_mutex_destroy(&a->trail[i].lock);
}

static struct audit_trail *trail_of(struct audit *a, uint32_t domain)
{
    return &a->trail[domain < AUDIT_MOAT ? domain : AUDIT_MOAT];
}

void audit_name(struct audit *a, uint32_t domain, const char *name)
{
    struct audit_trail *t = trail_of(a, domain);
    pthread_mutex_lock(&t->lock);
    snprintf(t->name, sizeof t->name, "%s", name ? name : "");
    pthread_mutex_unlock(&t->lock);
}

const char *audit_kind_name(enum moat_audit_kind kind)
{
    switch (kind) {
    case MOAT_AUDIT_DMA:      return "dma";
    case MOAT_AUDIT_PCI:      return "pci";
    case MOAT_AUDIT_PLATFORM: return "platform";
    case MOAT_AUDIT_DEVICE:   return "device";
    case MOAT_AUDIT_FATAL:    return "fatal";
    case MOAT_AUDIT_POLICY:   return "policy";
    case MOAT_AUDIT_CLIENT:   return "client";
    case MOAT_AUDIT_CONTROL:  return "control";
    case MOAT_AUDIT_KINDS:    break;
    }
    return "unknown";
}

void audit_record(struct audit *a, uint32_t domain, enum moat_audit_kind kind,
                  const char *fmt, ...)
{
    struct audit_trail *t = trail_of(a, domain);
    if ((unsigned)kind >= MOAT_AUDIT_KINDS)
        kind = MOAT_AUDIT_CONTROL;
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&t->lock);
    struct moat_audit_rec *r = &t->rec[t->written % AUDIT_PER_DOMAIN];
    memset(r, 0, sizeof *r);
    r->seq = atomic_fetch_add_explicit(&a->seq, 1, memory_order_relaxed);
    snprintf(r->source, sizeof r->source, "%s", audit_kind_name(kind));
    memcpy(r->domain, t->name, sizeof r->domain);   /* both NUL-terminated MOAT_NAME_LEN */
    vsnprintf(r->text, sizeof r->text, fmt, ap);
    t->written++;
    t->by_kind[kind]++;
    pthread_mutex_unlock(&t->lock);
    va_end(ap);
}

/* The newest min(max, kept) records of t, oldest first. */
static uint32_t trail_copy(struct audit_trail *t, struct moat_audit_rec *out, uint32_t max)
{
    pthread_mutex_lock(&t->lock);
    uint64_t kept = t->written < AUDIT_PER_DOMAIN ? t->written : AUDIT_PER_DOMAIN;
    uint32_t n = kept < max ? (uint32_t)kept : max;
    for (uint32_t i = 0; i < n; i++)
        out[i] = t->rec[(t->written - n + i) % AUDIT_PER_DOMAIN];
    pthread_mutex_unlock(&t->lock);
    return n;
}

static uint64_t trail_written(struct audit_trail *t)
{
    pthread_mutex_lock(&t->lock);
    uint64_t w = t->written;
    pthread_mutex_unlock(&t->lock);
    return w;
}

static int by_seq(const void *x, const void *y)
{
    uint64_t a = ((const struct moat_audit_rec *)x)->seq, b = ((const struct moat_audit_rec *)y)->seq;
    return (a > b) - (a < b);
}

uint32_t audit_read(struct audit *a, const char *name, struct moat_audit_rec *out, uint32_t max)
{
    if (name && name[0]) {
        for (uint32_t i = 0; i < AUDIT_TRAILS; i++) {
            struct audit_trail *t = &a->trail[i];
            pthread_mutex_lock(&t->lock);
            bool match = strcmp(t->name, name) == 0;
            pthread_mutex_unlock(&t->lock);
            if (match)
                return trail_copy(t, out, max);
        }
        return 0;
    }
    /* Fair shares: each trail with records gets max / (trails with
     * records); what a trail with fewer leaves goes round again. */
    uint32_t want[AUDIT_TRAILS] = { 0 }, active = 0, left = max;
    uint64_t have[AUDIT_TRAILS];
    for (uint32_t i = 0; i < AUDIT_TRAILS; i++) {
        uint64_t w = trail_written(&a->trail[i]);
        have[i] = w < AUDIT_PER_DOMAIN ? w : AUDIT_PER_DOMAIN;
        active += have[i] > 0;
    }
    while (left > 0 && active > 0) {
        uint32_t share = left / active ? left / active : 1, progressed = 0;
        for (uint32_t i = 0; i < AUDIT_TRAILS && left > 0; i++) {
            uint64_t more = have[i] - want[i];
            if (more == 0)
                continue;
            uint32_t take = more < share ? (uint32_t)more : share;
            if (take > left)
                take = left;
            want[i] += take;
            left -= take;
            progressed += take;
            if (want[i] == have[i])
                active--;
        }
        if (!progressed)
            break;
    }
    uint32_t n = 0;
    for (uint32_t i = 0; i < AUDIT_TRAILS; i++)
        if (want[i])
            n += trail_copy(&a->trail[i], out + n, want[i]);
    qsort(out, n, sizeof *out, by_seq);
    return n;
}

uint32_t audit_summary(struct audit *a, struct moat_audit_sum *out, uint32_t max)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < AUDIT_TRAILS && n < max; i++) {
        struct audit_trail *t = &a->trail[i];
        pthread_mutex_lock(&t->lock);
        if (t->name[0] || t->written) {
            struct moat_audit_sum *s = &out[n++];
            memset(s, 0, sizeof *s);
            snprintf(s->domain, sizeof s->domain, "%s", i == AUDIT_MOAT ? "" : t->name);
            s->written = t->written;
            s->dropped = t->written > AUDIT_PER_DOMAIN ? t->written - AUDIT_PER_DOMAIN : 0;
            memcpy(s->by_kind, t->by_kind, sizeof s->by_kind);
        }
        pthread_mutex_unlock(&t->lock);
    }
    return n;
}
