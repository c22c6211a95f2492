/*
 * audit.h — the audit trail operators read with `moatctl audit`: one
 * bounded record ring per domain, so no domain can flood another out of
 * it, plus a trail for moat itself (records naming no domain).
 *
 * Every refusal of hostile input lands here, whatever refused it: the DMA
 * broker (out-of-window DMA), the PCI model (config/BAR/MSI-X policy),
 * the platform ports, device models (invalid doorbells, malformed
 * commands, fatal device states), clients' reports, policy kills and
 * operator actions. Each record has a kind; per domain the trail counts
 * records of each kind ever written and how many the ring no longer holds
 * (dropped), and audit_summary gives those counts for every trail.
 *
 * Threads: any thread may record (device workers, the vCPU thread, the
 * control thread). Each trail has its own lock, a leaf lock (nothing else
 * is taken while it is held): callers may hold any lock of the written
 * order (supervisor.h) when they record.
 */
#ifndef MOAT_AUDIT_H
#define MOAT_AUDIT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include "config.h"            /* MOAT_DOMAINS_MAX */
#include "moat/control_abi.h"

#define AUDIT_PER_DOMAIN 64u          /* records kept per trail */
#define AUDIT_TRAILS     (MOAT_DOMAINS_MAX + 1u)   /* domains, then moat */
#define AUDIT_MOAT       MOAT_DOMAINS_MAX          /* the trail of no domain */

struct audit_trail {
    pthread_mutex_t lock;
    char name[MOAT_NAME_LEN];       /* "" until the domain is named */
    struct moat_audit_rec rec[AUDIT_PER_DOMAIN];    /* ring, by written */
    uint64_t written;
    uint64_t by_kind[MOAT_AUDIT_KINDS];
};

struct audit {
    struct audit_trail trail[AUDIT_TRAILS];
    _Atomic uint64_t seq;           /* records ever written, all trails */
};

void audit_init(struct audit *a);
void audit_fini(struct audit *a);
/* Name the trail of domain id (before anything records into it). */
void audit_name(struct audit *a, uint32_t domain, const char *name);
/* Record one event of domain (id; an id without a trail records into
 * moat's). The text is printf-formatted and cut at MOAT_DETAIL_MAX. */
void audit_record(struct audit *a, uint32_t domain, enum moat_audit_kind kind,
                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Name of a kind ("dma", "pci", ...), as records and summaries print it. */
const char *audit_kind_name(enum moat_audit_kind kind);
/* Up to max records, newest last: of the trail named name (NULL or "":
 * every trail), each trail giving at most its fair share of max, so a
 * flooding domain cannot push the others out of the reply. */
uint32_t audit_read(struct audit *a, const char *name, struct moat_audit_rec *out, uint32_t max);
/* Per-trail counts of every trail that has a name or a record; returns
 * how many were written to out (at most max). */
uint32_t audit_summary(struct audit *a, struct moat_audit_sum *out, uint32_t max);

#endif /* MOAT_AUDIT_H */
