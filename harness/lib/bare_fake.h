/*
 * bare_fake.h — the bare monitor around its interposition code
 * (guest-kernel/bare/nvme_shadow.c, virtio_shadow.c, dom_load.c's window
 * lookup), for host unit tests and fuzz targets: "physical" memory is
 * host memory (the monitor's identity map), palloc is the heap and
 * remembers what it handed out, audits and kills are counted. A domain
 * gets one window at BARE_DOM_VA_WINDOWS backed by a host buffer.
 * Defines the monitor's functions: include it in exactly one file.
 */
#ifndef MOAT_BARE_FAKE_H
#define MOAT_BARE_FAKE_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../../guest-kernel/bare/com1.h"
#include "../../guest-kernel/bare/dom_internal.h"
#include "../../guest-kernel/bare/dom_svm.h"
#include "../../guest-kernel/bare/palloc.h"

#define FAKE_ALLOCS_MAX 256u

uint64_t bare_master_cr3;

static struct { uint64_t pa, bytes; } fake_alloc[FAKE_ALLOCS_MAX];
static unsigned fake_n_alloc, fake_audits, fake_kills;
static bool fake_window_kept;       /* the caller owns the window (fake_dom_on) */
static char fake_last_audit[512];

uint64_t palloc(uint64_t pages, uint64_t align)
{
    if (fake_n_alloc == FAKE_ALLOCS_MAX || pages == 0 || pages > 4096)
        return 0;
    uint64_t bytes = pages * 4096, a = align < 4096 ? 4096 : align;
    void *p = aligned_alloc(a, (bytes + a - 1) / a * a);
    if (!p)
        return 0;
    memset(p, 0, bytes);
    fake_alloc[fake_n_alloc].pa = (uint64_t)(uintptr_t)p;
    fake_alloc[fake_n_alloc++].bytes = bytes;
    return (uint64_t)(uintptr_t)p;
}

uint64_t palloc_free_bytes(void) { return 0; }

/* The isolation backend is ring3 here: no nested map to keep in step
 * (npt.c has its own test). */
bool dom_svm_map(struct dom *d, uint64_t pa, uint64_t bytes, uint64_t pte_flags)
{
    (void)d, (void)pa, (void)bytes, (void)pte_flags;
    return true;
}
bool dom_svm_map_table(struct dom *d, uint64_t pa) { return dom_svm_map(d, pa, 4096, 0); }
void dom_svm_unmap(struct dom *d, uint64_t pa, uint64_t bytes) { (void)d, (void)pa, (void)bytes; }

void com1_printf(const char *fmt, ...)
{
    (void)fmt;
}

void dom_log(const struct dom *d, const char *fmt, ...)
{
    (void)d;
    (void)fmt;
}

void dom_audit(struct dom *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fake_last_audit, sizeof fake_last_audit, fmt, ap);
    va_end(ap);
    fake_audits++;
    d->refused++;
}

void dom_kill(struct dom *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fake_last_audit, sizeof fake_last_audit, fmt, ap);
    va_end(ap);
    fake_kills++;
    d->state = DOM_DEAD;
}

void dom_event(struct dom *d, uint32_t vector)
{
    (void)d;
    (void)vector;
}

/* No sessions here: a domain's windows are all it has. */
uint64_t dom_session_dma_pa(const struct dom *d, uint64_t iova, uint64_t len)
{
    (void)d;
    (void)iova;
    (void)len;
    return 0;
}

/* Is [pa, pa + len) inside one allocation palloc made? */
static inline bool fake_is_monitor(uint64_t pa, uint64_t len)
{
    for (unsigned i = 0; i < fake_n_alloc; i++)
        if (pa >= fake_alloc[i].pa && pa - fake_alloc[i].pa < fake_alloc[i].bytes &&
            len <= fake_alloc[i].bytes - (pa - fake_alloc[i].pa))
            return true;
    return false;
}

/* Is [pa, pa + len) inside d's window (its host buffer)? */
static inline bool fake_in_window(const struct dom *d, uint64_t pa, uint64_t len)
{
    const struct dom_window *w = &d->win[0];
    return pa >= w->pa && pa - w->pa < w->size && len <= w->size - (pa - w->pa);
}

/* d with one window of size bytes: w (zeroed here), or fresh 2 MiB-aligned
 * host memory when w is NULL (fake_reset frees it then). */
static inline void fake_dom_on(struct dom *d, void *w, uint64_t size)
{
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "fake0");
    d->state = DOM_RUNNABLE;
    fake_window_kept = w != NULL;
    if (!w)
        w = aligned_alloc(2u << 20, size);
    memset(w, 0, size);
    d->win[0] = (struct dom_window){ .iova = BARE_DOM_VA_WINDOWS, .size = size,
                                     .pa = (uint64_t)(uintptr_t)w };
    d->n_win = 1;
}

static inline void fake_dom(struct dom *d, uint64_t size) { fake_dom_on(d, NULL, size); }

/* The host address of IOVA iova in d's window. */
static inline void *fake_iova(const struct dom *d, uint64_t iova)
{
    return (void *)(uintptr_t)(d->win[0].pa + (iova - d->win[0].iova));
}

static inline void fake_reset(struct dom *d)
{
    if (!fake_window_kept)
        free((void *)(uintptr_t)d->win[0].pa);
    for (unsigned i = 0; i < fake_n_alloc; i++)
        free((void *)(uintptr_t)fake_alloc[i].pa);
    fake_n_alloc = fake_audits = fake_kills = 0;
    fake_last_audit[0] = '\0';
}

#endif /* MOAT_BARE_FAKE_H */
