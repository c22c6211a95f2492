/* Capability service: caps, sessions, client reports (contract in capsvc.h).
 * Over 600 lines: a session's life (open, attach to a domain slot,
 * revoke, release) crosses caps, domains and clients under one lock. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>
#include "capsvc.h"
#include "domain.h"
#include "log.h"
#include "moat/layout.h"
#include "moat/ring.h"
#include "supervisor.h"

#define PAGE 4096ull

static uint64_t page_up(uint64_t v) { return (v + PAGE - 1) & ~(PAGE - 1); }

void capsvc_layout(uint32_t entries, uint64_t data_size, struct moat_session_reply *out)
{
    memset(out, 0, sizeof *out);
    out->entries = entries;
    out->sq_off = 0;
    out->cq_off = page_up(moat_ring_bytes(entries, sizeof(struct moat_sqe)));
    out->data_off = out->cq_off + page_up(moat_ring_bytes(entries, sizeof(struct moat_cqe)));
    out->data_size = data_size;
    out->size = out->data_off + data_size;
}

bool capsvc_init(struct capsvc *cs, struct supervisor *sup, char *err, size_t errlen)
{
    memset(cs, 0, sizeof *cs);
    cs->sup = sup;
    cs->next_session_id = 1;
    cap_table_init(&cs->caps);
    for (uint32_t i = 0; i < CAPSVC_SESSIONS_MAX; i++)
        cs->ses[i].memfd = cs->ses[i].kick_fd = cs->ses[i].notify_fd = -1;
    cs->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (cs->wake_fd < 0) {
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        return false;
    }
    pthread_mutex_init(&cs->lock, NULL);
    return true;
}

void capsvc_session_free(struct session *s)
{
    char err[160];
    if (s->broker)              /* false only when teardown revoked it already */
        (void)broker_revoke(s->broker, s->data_win, err, sizeof err);
    if (s->host)
        munmap(s->host, s->layout.size);
    if (s->memfd >= 0)
        close(s->memfd);
    if (s->kick_fd >= 0)
        close(s->kick_fd);
    if (s->notify_fd >= 0)
        close(s->notify_fd);
    memset(s, 0, sizeof *s);
    s->memfd = s->kick_fd = s->notify_fd = -1;
}

void capsvc_fini(struct capsvc *cs)
{
    for (uint32_t i = 0; i < CAPSVC_SESSIONS_MAX; i++)
        if (cs->ses[i].state != SES_FREE)
            capsvc_session_free(&cs->ses[i]);
    if (cs->wake_fd >= 0)
        close(cs->wake_fd);
    cs->wake_fd = -1;
    pthread_mutex_destroy(&cs->lock);
}

/* ---- events (capsvc.lock held unless said) -------------------------------- */

static void queue_event(struct capsvc *cs, uint32_t client, const struct moat_event_msg *m)
{
    if (cs->ev_count == CAPSVC_EVENTS_MAX) {
        cs->ev_dropped++;       /* the client still sees ESTALE on its next call */
        return;
    }
    cs->ev[(cs->ev_head + cs->ev_count) % CAPSVC_EVENTS_MAX] =
        (struct capsvc_event){ .client = client, .msg = *m };
    cs->ev_count++;
    uint64_t one = 1;
    if (write(cs->wake_fd, &one, sizeof one) < 0) {
        /* Counter saturated: the control thread is already due to wake. */
    }
}

uint32_t capsvc_take_events(struct capsvc *cs, struct capsvc_event *out, uint32_t max)
{
    pthread_mutex_lock(&cs->lock);
    uint32_t n = 0;
    while (n < max && cs->ev_count) {
        out[n++] = cs->ev[cs->ev_head];
        cs->ev_head = (cs->ev_head + 1) % CAPSVC_EVENTS_MAX;
        cs->ev_count--;
    }
    pthread_mutex_unlock(&cs->lock);
    return n;
}

/* ---- the domain's session table (sup->lock held, VM alive) ------------------ */

static struct moat_session_table *table_of(struct domain *d)
{
    return (struct moat_session_table *)(d->vm.ram + MOAT_GPA_SESSION_TABLE);
}

/* Rewrite one slot (seqlock-style for the reader) and interrupt the domain. */
static void table_write(struct domain *d, uint32_t slot, const struct moat_session_slot *v)
{
    if (!d->vm_live || d->vm.ram_size < MOAT_GPA_SESSION_TABLE + PAGE)
        return;
    struct moat_session_table *t = table_of(d);
    struct moat_session_slot *e = &t->slot[slot];
    uint32_t seq = e->seq | 1u;
    __atomic_store_n(&e->seq, seq, __ATOMIC_RELEASE);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    struct moat_session_slot copy = *v;
    copy.seq = seq;
    memcpy(e, &copy, sizeof copy);
    __atomic_store_n(&e->seq, seq + 1, __ATOMIC_RELEASE);
    __atomic_store_n(&t->changes, t->changes + 1, __ATOMIC_RELEASE);
    if (d->session_vector && !vm_signal_msi(&d->vm, d->session_vector))
        log_error(d->cfg.name, "session table changed but the interrupt was not delivered");
    __atomic_fetch_add(&d->stats.msi_sent, 1, __ATOMIC_RELAXED);
}

/* ---- registration ------------------------------------------------------------ */

int capsvc_register(struct capsvc *cs, struct domain *d, uint64_t gpa)
{
    struct moat_cap_register reg;
    if (gpa < PAGE || gpa > d->vm.ram_size || d->vm.ram_size - gpa < sizeof reg) {
        log_error(d->cfg.name, "cap registration refused: structure at GPA 0x%llx is not in private RAM",
                  (unsigned long long)gpa);
        return -MOAT_EINVAL;
    }
    memcpy(&reg, d->vm.ram + gpa, sizeof reg);     /* one copy, then validate */
    char suffix[MOAT_CAP_NAME_MAX];
    memcpy(suffix, reg.name, sizeof suffix);
    suffix[sizeof suffix - 1] = '\0';
    crash_sanitize(suffix, sizeof suffix);
    if (d->session_vector && reg.vector != d->session_vector) {
        log_error(d->cfg.name, "cap registration refused: vector %u differs from the session vector %u",
                  reg.vector, d->session_vector);
        return -MOAT_EINVAL;
    }
    pthread_mutex_lock(&cs->lock);
    int rc = cap_register(&cs->caps, d->id, d->cfg.name, reg.kind, suffix,
                          reg.kind == MOAT_CAP_NIC ? (const void *)&reg.nic : (const void *)&reg.blk,
                          reg.vector);
    if (rc < 0) {
        audit_record(&cs->sup->audit, d->id, MOAT_AUDIT_CONTROL,
                     "cap registration of '%s' refused: %s", suffix, moat_err_name(-rc));
    }
    pthread_mutex_unlock(&cs->lock);
    if (rc < 0) {
        log_error(d->cfg.name, "cap registration of '%s' refused: %s", suffix, moat_err_name(-rc));
        return rc;
    }
    if (!d->session_vector) {
        if (!vm_route_msi_gsi(&d->vm, CAPSVC_SESSION_GSI, reg.vector)) {
            log_error(d->cfg.name, "cannot route session kicks to vector %u: %s", reg.vector,
                      strerror(errno));
            return -MOAT_ESYS;
        }
        d->session_vector = reg.vector;
    }
    if (reg.kind == MOAT_CAP_BLOCK)
        log_info(d->cfg.name, "serves %s.%s: BlockDevice, %llu blocks of %u bytes, flags 0x%x",
                 d->cfg.name, suffix, (unsigned long long)reg.blk.blocks, reg.blk.block_size,
                 reg.blk.flags);
    else
        log_info(d->cfg.name, "serves %s.%s: Nic, MAC %02x:%02x:%02x:%02x:%02x:%02x, MTU %u, %u sessions",
                 d->cfg.name, suffix, reg.nic.mac[0], reg.nic.mac[1], reg.nic.mac[2],
                 reg.nic.mac[3], reg.nic.mac[4], reg.nic.mac[5], reg.nic.mtu, reg.nic.queues);
    return 0;
}

void capsvc_domain_ready(struct capsvc *cs, struct domain *d)
{
    pthread_mutex_lock(&cs->lock);
    for (uint32_t i = 0; i < CAP_OBJECTS_MAX; i++) {
        const struct cap_object *o = &cs->caps.obj[i];
        if (!o->used || !o->up || o->domain_id != d->id)
            continue;
        struct moat_event_msg m = { .event = MOAT_EVT_CAP_UP };
        snprintf(m.domain, sizeof m.domain, "%s", d->cfg.name);
        snprintf(m.cap, sizeof m.cap, "%s", o->name);
        queue_event(cs, CAPSVC_ALL_CLIENTS, &m);
    }
    pthread_mutex_unlock(&cs->lock);
}

void capsvc_domain_stays_down(struct capsvc *cs, struct domain *d, enum moat_down_reason why)
{
    struct moat_event_msg m = { .event = MOAT_EVT_DOMAIN_DOWN, .session_id = why };
    snprintf(m.domain, sizeof m.domain, "%s", d->cfg.name);
    pthread_mutex_lock(&cs->lock);
    queue_event(cs, CAPSVC_ALL_CLIENTS, &m);
    pthread_mutex_unlock(&cs->lock);
}

/* ---- sessions ----------------------------------------------------------------- */

static struct session *session_by_id(struct capsvc *cs, uint32_t id)
{
    for (uint32_t i = 0; i < CAPSVC_SESSIONS_MAX; i++)
        if (cs->ses[i].state != SES_FREE && cs->ses[i].id == id)
            return &cs->ses[i];
    return NULL;
}

static struct session *session_by_slot(struct capsvc *cs, const struct domain *d, uint32_t slot)
{
    for (uint32_t i = 0; i < CAPSVC_SESSIONS_MAX; i++)
        if (cs->ses[i].state != SES_FREE && cs->ses[i].d == d && cs->ses[i].slot == slot)
            return &cs->ses[i];
    return NULL;
}

uint32_t capsvc_domain_sessions(struct capsvc *cs, const struct domain *d)
{
    uint32_t n = 0;
    pthread_mutex_lock(&cs->lock);
    for (uint32_t i = 0; i < CAPSVC_SESSIONS_MAX; i++)
        n += cs->ses[i].state == SES_OPEN && cs->ses[i].d == d;
    pthread_mutex_unlock(&cs->lock);
    return n;
}

static uint64_t session_gpa(uint32_t slot)
{
    return MOAT_GPA_SESSION_BASE + (uint64_t)slot * MOAT_SESSION_SPAN;
}

static uint64_t doorbell_gpa(uint32_t slot) { return MOAT_GPA_SESSION_DOORBELL + 4ull * slot; }

/* Remove the session from its (live) domain: the inverse of install. */
static void uninstall(struct session *s)
{
    struct domain *d = s->d;
    if (d && d->vm_live) {
        vm_ioeventfd(&d->vm, s->notify_fd, false, doorbell_gpa(s->slot), 4, false);
        vm_irqfd(&d->vm, s->kick_fd, CAPSVC_SESSION_GSI, false);
        vm_unmap_memory(&d->vm, CAPSVC_VM_SLOT_FIRST + s->slot);
        table_write(d, s->slot, &(struct moat_session_slot){ .state = MOAT_SLOT_FREE });
    }
}

static struct domain *domain_by_id(struct supervisor *sup, uint32_t id)
{
    for (size_t i = 0; i < sup->n_domains; i++)
        if (sup->domains[i]->id == id)
            return sup->domains[i];
    return NULL;
}

/* Build the memory and eventfds of s (no domain involved yet). */
static int session_create(struct session *s, uint32_t entries, uint64_t data_size)
{
    capsvc_layout(entries, data_size, &s->layout);
    s->memfd = memfd_create("moat-session", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (s->memfd < 0 || ftruncate(s->memfd, (off_t)s->layout.size) < 0 ||
        /* A client that could shrink the memfd would make the VMM and KVM
         * fault on its pages: size is sealed before anyone else sees it. */
        fcntl(s->memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
        return -MOAT_ESYS;
    s->host = mmap(NULL, s->layout.size, PROT_READ | PROT_WRITE, MAP_SHARED, s->memfd, 0);
    if (s->host == MAP_FAILED) {
        s->host = NULL;
        return -MOAT_ENOMEM;
    }
    if (moat_ring_format(s->host + s->layout.sq_off, s->layout.cq_off - s->layout.sq_off,
                         entries, sizeof(struct moat_sqe)) != MOAT_RING_OK ||
        moat_ring_format(s->host + s->layout.cq_off, s->layout.data_off - s->layout.cq_off,
                         entries, sizeof(struct moat_cqe)) != MOAT_RING_OK)
        return -MOAT_EINVAL;
    s->kick_fd = eventfd(0, EFD_CLOEXEC);
    s->notify_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->kick_fd < 0 || s->notify_fd < 0)
        return -MOAT_ESYS;
    return 0;
}

static int install(struct session *s, struct domain *d, uint32_t slot, uint32_t cap_index)
{
    s->d = d;
    s->slot = slot;
    if (!vm_map_memory(&d->vm, CAPSVC_VM_SLOT_FIRST + slot, session_gpa(slot), s->layout.size,
                       s->host))
        return -MOAT_ESYS;
    if (!vm_irqfd(&d->vm, s->kick_fd, CAPSVC_SESSION_GSI, true)) {
        vm_unmap_memory(&d->vm, CAPSVC_VM_SLOT_FIRST + slot);
        return -MOAT_ESYS;
    }
    if (!vm_ioeventfd(&d->vm, s->notify_fd, false, doorbell_gpa(slot), 4, true)) {
        vm_irqfd(&d->vm, s->kick_fd, CAPSVC_SESSION_GSI, false);
        vm_unmap_memory(&d->vm, CAPSVC_VM_SLOT_FIRST + slot);
        return -MOAT_ESYS;
    }
    /* The data area as a DMA window: devices may write it for reads
     * (READ) and read it for writes (WRITE), and nothing else. */
    uint32_t dirs = ((s->rights & MOAT_RIGHT_READ) ? DMA_FROM_DEVICE : 0u) |
                    ((s->rights & MOAT_RIGHT_WRITE) ? DMA_TO_DEVICE : 0u);
    char err[160];
    struct broker *b = &d->sup->broker;
    if (dirs && s->layout.data_size &&
        broker_adopt(b, d->id, session_gpa(slot) + s->layout.data_off, s->layout.data_size,
                     s->host + s->layout.data_off, dirs, &s->data_win, err, sizeof err))
        s->broker = b;
    else if (dirs && s->layout.data_size)
        log_error(d->cfg.name, "session %u: data area not DMA-reachable (%s); the driver "
                 "copies through its own buffers", s->id, err);
    struct moat_session_slot v = {
        .state = MOAT_SLOT_OPEN, .cap_index = cap_index, .session_id = s->id,
        .rights = s->rights, .flags = s->broker ? MOAT_SLOT_DATA_DMA : 0u,
        .gpa = session_gpa(slot), .size = s->layout.size,
        .sq_entries = s->layout.entries, .cq_entries = s->layout.entries,
        .sq_off = s->layout.sq_off, .cq_off = s->layout.cq_off,
        .data_off = s->layout.data_off, .data_size = s->layout.data_size,
        .doorbell_gpa = doorbell_gpa(slot),
    };
    table_write(d, slot, &v);
    return 0;
}

static bool is_pow2(uint32_t v) { return v && !(v & (v - 1)); }

/* Copies of a session's memfd, kick and notify fds for its reply. */
static bool dup_fds(const struct session *s, int fds[3])
{
    const int own[3] = { s->memfd, s->kick_fd, s->notify_fd };
    for (int i = 0; i < 3; i++) {
        fds[i] = fcntl(own[i], F_DUPFD_CLOEXEC, 0);
        if (fds[i] < 0) {
            while (i-- > 0)
                close(fds[i]);
            return false;
        }
    }
    return true;
}

int capsvc_session_open(struct capsvc *cs, uint32_t client, const struct moat_session_req *req,
                        struct moat_session_reply *out, int fds[3])
{
    if (!is_pow2(req->entries) || req->entries < MOAT_SESSION_ENTRIES_MIN ||
        req->entries > MOAT_SESSION_ENTRIES_MAX || req->data_size == 0 ||
        req->data_size % PAGE || req->data_size > MOAT_SESSION_DATA_MAX)
        return -MOAT_EINVAL;
    struct supervisor *sup = cs->sup;
    pthread_mutex_lock(&sup->lock);
    pthread_mutex_lock(&cs->lock);
    uint32_t object;
    int rc = cap_check(&cs->caps, client, req->handle, MOAT_RIGHT_READ, &object);
    const struct cap_object *o = rc == 0 ? &cs->caps.obj[object] : NULL;
    struct domain *d = o ? domain_by_id(sup, o->domain_id) : NULL;
    struct session *s = NULL;
    uint32_t slot = MOAT_SESSION_SLOTS;
    if (rc == 0 && (o->kind == MOAT_CAP_CONTROL || !d))
        rc = -MOAT_EINVAL;
    else if (rc == 0 && d->breaker_open)
        rc = -MOAT_EFAILED;     /* held down until an operator restarts it */
    else if (rc == 0 && (d->state != DOMAIN_READY || !d->vm_live || atomic_load(&d->stop) || !o->up))
        rc = domain_coming_back(d) ? -MOAT_ERESTARTING : -MOAT_EDOWN;
    if (rc == 0) {
        uint32_t mine = 0, in_cap = 0;
        uint64_t mem = 0;
        bool used[MOAT_SESSION_SLOTS] = { false };
        for (uint32_t i = 0; i < CAPSVC_SESSIONS_MAX; i++) {
            struct session *x = &cs->ses[i];
            if (x->state == SES_FREE) {
                if (!s)
                    s = x;
                continue;
            }
            if (x->client == client) {
                mine++;
                mem += x->layout.size;
            }
            if (x->d == d) {
                used[x->slot] = true;
                in_cap += x->object == object && x->state == SES_OPEN;
            }
        }
        for (uint32_t i = 0; i < MOAT_SESSION_SLOTS && slot == MOAT_SESSION_SLOTS; i++)
            if (!used[i] && !(d->slots_draining & (1u << i)))
                slot = i;
        struct moat_session_reply probe;
        capsvc_layout(req->entries, req->data_size, &probe);
        if (!s || slot == MOAT_SESSION_SLOTS || mine >= CAPSVC_SESSIONS_PER_CLIENT ||
            mem + probe.size > CAPSVC_MEM_PER_CLIENT ||
            (o->kind == MOAT_CAP_BLOCK && in_cap >= o->blk.queues) ||
            (o->kind == MOAT_CAP_NIC && in_cap >= o->nic.queues))
            rc = -MOAT_ELIMIT;
    }
    if (rc == 0) {
        /* cap_check passed: the token's low half is slot index + 1. */
        uint32_t h_rights = cs->caps.h[(uint32_t)req->handle - 1].rights & o->rights;
        memset(s, 0, sizeof *s);
        s->memfd = s->kick_fd = s->notify_fd = -1;
        s->state = SES_OPEN;
        s->id = cs->next_session_id++;
        if (cs->next_session_id == 0)
            cs->next_session_id = 1;
        s->client = client;
        s->object = object;
        s->rights = h_rights;
        rc = session_create(s, req->entries, req->data_size);
        if (rc == 0)
            rc = install(s, d, slot, o->index);
        if (rc != 0) {
            log_error(d->cfg.name, "cannot open a session for client %u: %s (%s)", client,
                      moat_err_name(-rc), strerror(errno));
            capsvc_session_free(s);
        } else if (!dup_fds(s, fds)) {
            /* The caller gets copies: the session may be revoked (its own
             * fds closed) before the reply carrying them is sent. */
            log_error(d->cfg.name, "cannot open a session for client %u: out of descriptors "
                      "(%s)", client, strerror(errno));
            uninstall(s);
            capsvc_session_free(s);
            memset(s, 0, sizeof *s);
            s->memfd = s->kick_fd = s->notify_fd = -1;
            rc = -MOAT_ESYS;
        } else {
            *out = s->layout;
            out->session_id = s->id;
            DSTAT_INC(d, sessions_total);
            log_info(d->cfg.name, "session %u open on %s for client %u (slot %u, %u entries, %llu KiB data)",
                     s->id, o->name, client, slot, req->entries,
                     (unsigned long long)(req->data_size >> 10));
        }
    }
    pthread_mutex_unlock(&cs->lock);
    pthread_mutex_unlock(&sup->lock);
    return rc;
}

/* Caller holds sup->lock and cs->lock. */
static void close_locked(struct session *s)
{
    if (s->state != SES_OPEN)
        return;
    s->state = SES_CLOSING;
    struct domain *d = s->d;
    if (d->vm_live && !atomic_load(&d->stop)) {
        struct moat_session_slot v = { .state = MOAT_SLOT_CLOSING, .session_id = s->id };
        table_write(d, s->slot, &v);
    }
    log_info(d->cfg.name, "session %u closing (slot %u)", s->id, s->slot);
}

int capsvc_session_close(struct capsvc *cs, uint32_t client, uint32_t session_id)
{
    pthread_mutex_lock(&cs->sup->lock);
    pthread_mutex_lock(&cs->lock);
    struct session *s = session_by_id(cs, session_id);
    int rc = 0;
    if (!s || s->client != client)
        rc = -MOAT_ENOENT;
    else
        close_locked(s);
    pthread_mutex_unlock(&cs->lock);
    pthread_mutex_unlock(&cs->sup->lock);
    return rc;
}

int capsvc_release(struct capsvc *cs, struct domain *d, uint32_t slot, struct session *gone)
{
    pthread_mutex_lock(&cs->lock);
    struct session *s = slot < MOAT_SESSION_SLOTS ? session_by_slot(cs, d, slot) : NULL;
    int rc = 0;
    memset(gone, 0, sizeof *gone);
    gone->memfd = gone->kick_fd = gone->notify_fd = -1;
    if (!s || s->state != SES_CLOSING) {
        rc = -MOAT_EINVAL;
    } else {
        uninstall(s);
        d->slots_draining |= 1u << slot;    /* until the caller revoked its window */
        log_info(d->cfg.name, "session %u released (slot %u)", s->id, slot);
        *gone = *s;             /* its memory and fds, freed by the caller */
        memset(s, 0, sizeof *s);
        s->memfd = s->kick_fd = s->notify_fd = -1;
    }
    pthread_mutex_unlock(&cs->lock);
    return rc;
}

void capsvc_domain_down(struct capsvc *cs, struct domain *d)
{
    /* Sessions leave the table under the lock and are freed (their data
     * windows scrubbed) after it is dropped, so one domain's teardown never
     * holds every other session operation up. */
    struct session gone[CAPSVC_SESSIONS_MAX];
    pthread_mutex_lock(&cs->lock);
    unsigned n = cap_domain_down(&cs->caps, d->id);
    uint32_t revoked = 0;
    for (uint32_t i = 0; i < CAPSVC_SESSIONS_MAX; i++) {
        struct session *s = &cs->ses[i];
        if (s->state == SES_FREE || s->d != d)
            continue;
        struct moat_event_msg m = { .event = MOAT_EVT_SESSION_REVOKED, .session_id = s->id };
        snprintf(m.domain, sizeof m.domain, "%s", d->cfg.name);
        if (s->state == SES_OPEN)
            queue_event(cs, s->client, &m);
        uint64_t one = 1;
        if (write(s->notify_fd, &one, sizeof one) < 0) {
            /* Only fails when the counter is saturated: the client is awake. */
        }
        gone[revoked++] = *s;   /* the VM is gone: no memslot, irqfd or ioeventfd left */
        memset(s, 0, sizeof *s);
        s->memfd = s->kick_fd = s->notify_fd = -1;
    }
    pthread_mutex_unlock(&cs->lock);
    for (uint32_t i = 0; i < revoked; i++)
        capsvc_session_free(&gone[i]);
    if (n || revoked)
        log_info(d->cfg.name, "%u cap(s) down, %u session(s) revoked", n, revoked);
}

/* ---- handles ---------------------------------------------------------------- */

int capsvc_open(struct capsvc *cs, uint32_t client, const char *name, uint32_t rights,
                uint32_t allowed, struct moat_open_reply *out)
{
    pthread_mutex_lock(&cs->sup->lock);     /* to tell "restarting" from "down" */
    pthread_mutex_lock(&cs->lock);
    uint64_t h = 0;
    int rc = cap_open(&cs->caps, client, name, rights, allowed, &h);
    int idx = cap_find(&cs->caps, name);
    if (rc == 0) {
        memset(out, 0, sizeof *out);
        out->handle = h;
        out->rights = rights;
        cap_describe(&cs->caps, (uint32_t)idx, &out->cap);
    } else if (rc == -MOAT_EDOWN && idx >= 0) {
        struct domain *d = domain_by_id(cs->sup, cs->caps.obj[idx].domain_id);
        if (d && d->breaker_open)
            rc = -MOAT_EFAILED;
        else if (d && domain_coming_back(d))
            rc = -MOAT_ERESTARTING;
    }
    pthread_mutex_unlock(&cs->lock);
    pthread_mutex_unlock(&cs->sup->lock);
    return rc;
}

int capsvc_close(struct capsvc *cs, uint32_t client, uint64_t handle)
{
    pthread_mutex_lock(&cs->lock);
    int rc = cap_close(&cs->caps, client, handle);
    pthread_mutex_unlock(&cs->lock);
    return rc;
}

int capsvc_check(struct capsvc *cs, uint32_t client, uint64_t handle, uint32_t need,
                 uint32_t kind)
{
    pthread_mutex_lock(&cs->lock);
    uint32_t object;
    int rc = cap_check(&cs->caps, client, handle, need, &object);
    if (rc == 0 && cs->caps.obj[object].kind != kind)
        rc = -MOAT_EINVAL;
    pthread_mutex_unlock(&cs->lock);
    return rc;
}

size_t capsvc_list(struct capsvc *cs, struct moat_cap_desc *out, size_t max)
{
    pthread_mutex_lock(&cs->lock);
    size_t n = cap_list(&cs->caps, out, max);
    pthread_mutex_unlock(&cs->lock);
    return n;
}

int capsvc_report(struct capsvc *cs, uint32_t client, const char *who, uint32_t session_id,
                  const char *reason)
{
    pthread_mutex_lock(&cs->sup->lock);
    pthread_mutex_lock(&cs->lock);
    struct session *s = session_by_id(cs, session_id);
    int rc = 0;
    if (!s || s->client != client) {
        rc = -MOAT_ENOENT;
    } else {
        /* Clients are not trusted either: a report is counted and audited
         * against the domain, never acted on by itself. */
        DSTAT_INC(s->d, client_reports);
        audit_record(&cs->sup->audit, s->d->id, MOAT_AUDIT_CLIENT, "%s reports session %u: %s",
                     who, session_id, reason);
        log_error(s->d->cfg.name, "client report (%s, session %u): %s", who, session_id, reason);
    }
    pthread_mutex_unlock(&cs->lock);
    pthread_mutex_unlock(&cs->sup->lock);
    return rc;
}

void capsvc_client_gone(struct capsvc *cs, uint32_t client)
{
    pthread_mutex_lock(&cs->sup->lock);
    pthread_mutex_lock(&cs->lock);
    for (uint32_t i = 0; i < CAPSVC_SESSIONS_MAX; i++)
        if (cs->ses[i].state == SES_OPEN && cs->ses[i].client == client)
            close_locked(&cs->ses[i]);
    cap_drop_client(&cs->caps, client);
    pthread_mutex_unlock(&cs->lock);
    pthread_mutex_unlock(&cs->sup->lock);
}
