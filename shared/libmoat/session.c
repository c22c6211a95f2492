/* libmoat: sessions and the block protocol over them (contract in
 * moat/libmoat.h). Every completion the domain writes is checked before
 * anything is done with it. Over 600 lines: attach, recovery after a
 * restart and the block protocol share the session's slots. */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "libmoat_internal.h"

#define PAGE 4096ull
#define DEFAULT_ENTRIES 64u
#define DEFAULT_SLOT_BYTES (128u << 10)
#define SPIN_NS 20000u          /* poll this long (yielding the CPU) before sleeping */

uint64_t moat__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static bool is_pow2(uint64_t v) { return v && !(v & (v - 1)); }

/* ---- building a session --------------------------------------------------------- */

static void session_release_mem(struct moat_session *s)
{
    moat__nic_free(s);
    free(s->slot);
    free(s->free_idx);
    free(s->local);
    s->slot = NULL;
    s->free_idx = NULL;
    s->local = NULL;
}

/* Fill s (memory already mapped) from the layout the VMM gave, for a cap
 * of kind described by info (a moat_blk_geometry or a moat_nic_info). */
static int session_build(struct moat_session *s, void *mem, const struct moat_session_reply *l,
                         int kick_fd, int notify_fd, uint32_t kind, const void *info,
                         uint32_t rights)
{
    /* A Nic session moves frames: its "blocks" are bytes, one per frame slot. */
    struct moat_blk_geometry nic_geo = { .block_size = 1, .max_blocks = UINT32_MAX, .blocks = 1 };
    const struct moat_blk_geometry *geo = kind == MOAT_CAP_NIC ? &nic_geo : info;
    uint32_t e = l->entries;
    /* Every offset is bounded by size first, so no sum below can wrap. */
    if (!is_pow2(e) || e < MOAT_SESSION_ENTRIES_MIN || e > MOAT_SESSION_ENTRIES_MAX ||
        l->size > MOAT_SESSION_SPAN || l->sq_off > l->size || l->cq_off > l->size ||
        l->data_off > l->size || l->data_size > l->size - l->data_off ||
        l->sq_off % PAGE || l->cq_off % PAGE || l->data_off % PAGE ||
        l->cq_off < l->sq_off + moat_ring_bytes(e, sizeof(struct moat_sqe)) ||
        l->data_off < l->cq_off + moat_ring_bytes(e, sizeof(struct moat_cqe)) ||
        l->data_size > MOAT_SESSION_DATA_MAX || !geo->block_size || !is_pow2(geo->block_size))
        return -MOAT_EPROTO;
    s->mem = mem;
    s->layout = *l;
    s->kick_fd = kick_fd;
    s->notify_fd = notify_fd;
    s->geo = *geo;
    s->kind = kind;
    s->rights = rights;
    s->id = l->session_id;
    s->err = 0;
    uint8_t *m = mem;
    if (moat_ring_attach(&s->sq, m + l->sq_off, l->cq_off - l->sq_off, e,
                         sizeof(struct moat_sqe), MOAT_RING_PRODUCER) != MOAT_RING_OK ||
        moat_ring_attach(&s->cq, m + l->cq_off, l->data_off - l->cq_off, e,
                         sizeof(struct moat_cqe), MOAT_RING_CONSUMER) != MOAT_RING_OK)
        return -MOAT_EPROTO;
    s->slot_bytes = (l->data_size / e) & ~(uint64_t)(geo->block_size - 1);
    if (kind == MOAT_CAP_NIC) {
        s->nic = (struct moat_nic_state){ .info = *(const struct moat_nic_info *)info };
        s->slot_bytes &= ~(uint64_t)63;     /* cache-line aligned frame slots */
        if (s->slot_bytes < s->nic.info.max_frame)
            return -MOAT_EINVAL;            /* a slot cannot hold one frame */
    }
    uint64_t mb = s->slot_bytes / geo->block_size;
    s->max_blocks = (uint32_t)(mb < geo->max_blocks ? mb : geo->max_blocks);
    if (s->max_blocks == 0)
        return -MOAT_EINVAL;    /* the data area cannot hold one block per entry */
    s->slot = calloc(e, sizeof *s->slot);
    s->free_idx = calloc(e, sizeof *s->free_idx);
    s->local = calloc(e, sizeof *s->local);
    if (!s->slot || !s->free_idx || !s->local) {
        session_release_mem(s);
        return -MOAT_ENOMEM;
    }
    for (uint32_t i = 0; i < e; i++)
        s->free_idx[i] = e - 1 - i;
    s->n_free = e;
    s->n_local = 0;
    if (kind == MOAT_CAP_NIC) {
        int rc = moat__nic_init(s);
        if (rc < 0) {
            session_release_mem(s);
            return rc;
        }
    }
    return 0;
}

int moat__session_attach(void *mem, const struct moat_session_reply *layout, int kick_fd,
                         int notify_fd, const struct moat_blk_geometry *geo, uint32_t rights,
                         struct moat_session **out)
{
    struct moat_session *s = calloc(1, sizeof *s);
    if (!s)
        return -MOAT_ENOMEM;
    int rc = session_build(s, mem, layout, kick_fd, notify_fd, MOAT_CAP_BLOCK, geo, rights);
    if (rc < 0) {
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

int moat__session_attach_nic(void *mem, const struct moat_session_reply *layout, int kick_fd,
                             int notify_fd, const struct moat_nic_info *info, uint32_t rights,
                             struct moat_session **out)
{
    struct moat_session *s = calloc(1, sizeof *s);
    if (!s)
        return -MOAT_ENOMEM;
    int rc = session_build(s, mem, layout, kick_fd, notify_fd, MOAT_CAP_NIC, info, rights);
    if (rc < 0) {
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void moat__session_detach(struct moat_session *s)
{
    if (!s)
        return;
    session_release_mem(s);
    free(s);
}

/* Ask moat for a session on cap and build s over it (s->params set). */
static int session_connect(struct moat_session *s, struct moat_cap *cap)
{
    struct moat_client *c = cap->c;
    if (cap->desc.kind != MOAT_CAP_BLOCK && cap->desc.kind != MOAT_CAP_NIC)
        return -MOAT_EINVAL;
    uint32_t slot_i = MOAT_CLIENT_SESSIONS_MAX;
    for (uint32_t i = 0; i < MOAT_CLIENT_SESSIONS_MAX; i++)
        if (!c->sessions[i] || c->sessions[i] == s) {
            slot_i = i;
            break;
        }
    if (slot_i == MOAT_CLIENT_SESSIONS_MAX)
        return -MOAT_ELIMIT;
    struct moat_session_req q = { .handle = cap->handle, .entries = s->params.entries,
                                  .data_size = s->params.data_size };
    struct moat_session_reply r;
    int fds[3];
    int rc = moat__rpc(c, MOAT_MSG_OPEN_SESSION, &q, sizeof q, &r, sizeof r, NULL, fds, 3);
    if (rc < 0)
        return rc;
    struct stat st;
    void *mem = MAP_FAILED;
    /* Map only what the memfd really holds: a short file would SIGBUS. */
    if (r.size && r.size <= MOAT_SESSION_SPAN && fstat(fds[0], &st) == 0 &&
        (uint64_t)st.st_size >= r.size)
        mem = mmap(NULL, r.size, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0], 0);
    close(fds[0]);
    if (mem == MAP_FAILED) {
        close(fds[1]);
        close(fds[2]);
        return -MOAT_EPROTO;
    }
    rc = session_build(s, mem, &r, fds[1], fds[2], cap->desc.kind,
                       cap->desc.kind == MOAT_CAP_NIC ? (const void *)&cap->desc.nic
                                                      : (const void *)&cap->desc.blk,
                       cap->rights);
    if (rc < 0) {
        munmap(mem, r.size);
        close(fds[1]);
        close(fds[2]);
        return rc;
    }
    s->c = c;
    s->cap = cap;
    c->sessions[slot_i] = s;
    return 0;
}

/* Undo session_connect (tell moat, unmap, close), keeping s itself. */
static void session_disconnect(struct moat_session *s)
{
    struct moat_client *c = s->c;
    if (c) {
        for (uint32_t i = 0; i < MOAT_CLIENT_SESSIONS_MAX; i++)
            if (c->sessions[i] == s)
                c->sessions[i] = NULL;
        if (s->mem) {           /* detached already: moat forgot it then */
            struct moat_session_close_req q = { .session_id = s->id };
            moat__rpc(c, MOAT_MSG_CLOSE_SESSION, &q, sizeof q, NULL, 0, NULL, NULL, 0);
        }
    }
    if (s->mem)
        munmap(s->mem, s->layout.size);
    if (s->kick_fd >= 0)
        close(s->kick_fd);
    if (s->notify_fd >= 0)
        close(s->notify_fd);
    s->mem = NULL;
    s->kick_fd = s->notify_fd = -1;
    session_release_mem(s);
}

int moat_session_open(struct moat_cap *cap, const struct moat_session_params *p,
                      struct moat_session **out)
{
    *out = NULL;
    struct moat_session *s = calloc(1, sizeof *s);
    if (!s)
        return -MOAT_ENOMEM;
    s->kick_fd = s->notify_fd = -1;
    s->params.entries = p && p->entries ? p->entries : DEFAULT_ENTRIES;
    s->params.recover_ms = p ? p->recover_ms : 0;
    uint64_t slot_bytes = DEFAULT_SLOT_BYTES;
    if (cap->desc.kind == MOAT_CAP_NIC)     /* one frame per slot, cache-line rounded */
        slot_bytes = ((uint64_t)cap->desc.nic.max_frame + 63) & ~63ull;
    uint64_t data = p && p->data_size ? p->data_size : (uint64_t)s->params.entries * slot_bytes;
    if (data > MOAT_SESSION_DATA_MAX)
        data = MOAT_SESSION_DATA_MAX;
    s->params.data_size = (data + PAGE - 1) & ~(PAGE - 1);
    int rc = session_connect(s, cap);
    if ((rc == -MOAT_ERESTARTING || rc == -MOAT_ESTALE) && s->params.recover_ms >= 0) {
        /* The domain is restarting (or restarted under this handle): wait
         * for it as a recovering session would. */
        s->c = cap->c;
        s->cap = cap;
        int32_t ms = s->params.recover_ms ? s->params.recover_ms : MOAT_RECOVER_MS_DEFAULT;
        rc = moat__reattach(s, moat__now_ns() + (uint64_t)ms * 1000000ull);
        if (rc == -MOAT_ETIMEDOUT)
            rc = -MOAT_EDOWN;
    }
    if (rc < 0) {
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void moat_session_close(struct moat_session *s)
{
    if (!s)
        return;
    session_disconnect(s);
    moat__recover_free(s);
    free(s);
}

int moat__reattach(struct moat_session *s, uint64_t deadline)
{
    struct moat_client *c = s->c;
    struct moat_cap *cap = s->cap;
    if (!c || !cap)
        return -MOAT_EINVAL;
    session_disconnect(s);
    s->c = c;
    char name[MOAT_NAME_LEN];
    snprintf(name, sizeof name, "%s", cap->desc.name);
    for (;;) {
        /* A new handle on the cap's new incarnation, then a new session. */
        uint64_t seen = c->caps_up, down = c->domains_down;
        if (s->domain_down)
            return s->domain_down == MOAT_DOWN_BREAKER ? -MOAT_EFAILED : -MOAT_EDOWN;
        struct moat_cap *fresh;
        int rc = moat_open(c, name, cap->rights, &fresh);
        if (rc == 0) {
            /* Keep the caller's cap object: give it the fresh handle and
             * close the stale one with the fresh object. */
            uint64_t stale = cap->handle;
            cap->handle = fresh->handle;
            cap->desc = fresh->desc;
            fresh->handle = stale;
            moat_close(fresh);
            rc = session_connect(s, cap);
            /* ESTALE: it restarted again between the two calls: a fresh
             * handle once more. ERESTARTING: on its way back; its CAP_UP
             * comes at ready. */
            if (rc == -MOAT_ESTALE) {
                if (moat__now_ns() < deadline)
                    continue;
                return -MOAT_ETIMEDOUT;     /* a look, or out of time: not final */
            }
            if (rc != -MOAT_ERESTARTING)
                return rc;
        }
        if (rc != -MOAT_ERESTARTING && rc != -MOAT_ENOENT)
            return rc;
        /* Down: sleep on the control socket until a cap comes up (or a
         * domain stays down). */
        if ((rc = moat__wait_caps(c, seen, down, deadline)) < 0)
            return rc;
    }
}

int moat_session_reattach(struct moat_session *s, int timeout_ms)
{
    uint64_t deadline = moat__now_ns() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms) * 1000000ull;
    /* Requests held for recovery go to the new incarnation too. */
    if (s->recovering)
        return moat__recover(s, deadline);
    return moat__reattach(s, deadline);
}

uint32_t moat_session_max_blocks(const struct moat_session *s) { return s->max_blocks; }

void moat_session_stats(const struct moat_session *s, struct moat_session_stats *out)
{
    *out = s->st;
}

uint32_t moat_inflight(const struct moat_session *s)
{
    uint32_t n = s->n_held + s->n_owed;
    if (s->mem && !s->recovering)
        n += s->layout.entries - s->n_free + s->n_local;
    return n;
}

/* ---- failure --------------------------------------------------------------------- */

void moat__session_fail(struct moat_session *s, int err)
{
    if (err == -MOAT_ESTALE && s->c && s->params.recover_ms >= 0 && !s->err) {
        moat__recover_begin(s);     /* held for the next incarnation */
        return;
    }
    if (s->err)
        return;
    s->err = err;
    for (uint32_t i = 0; i < s->layout.entries; i++) {
        struct moat_slot *sl = &s->slot[i];
        if (!sl->busy)
            continue;
        s->local[s->n_local++] = (struct moat_completion){ .user_data = sl->user_data,
                                                           .status = err };
        sl->busy = false;
        s->free_idx[s->n_free++] = i;
    }
}

/* The domain broke the protocol: fail the session and tell moat. */
void moat__malformed(struct moat_session *s, const char *fmt, ...)
{
    struct moat_report_req q = { .session_id = s->id };
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(q.reason, sizeof q.reason, fmt, ap);
    va_end(ap);
    s->st.malformed++;
    if (s->c)
        moat__rpc(s->c, MOAT_MSG_REPORT, &q, sizeof q, NULL, 0, NULL, NULL, 0);
    /* Recover on a fresh session, a bounded number of times: a domain
     * that keeps breaking the protocol gets MOAT_EPROTO for good. */
    if (s->c && s->params.recover_ms >= 0 && !s->err && s->st.malformed <= MOAT_PROTO_RECOVERIES)
        moat__recover_begin(s);
    else
        moat__session_fail(s, -MOAT_EPROTO);
}

void moat__kick(struct moat_session *s)
{
    uint64_t one = 1;
    if (write(s->kick_fd, &one, sizeof one) == sizeof one)
        s->st.kicks_sent++;
}

/* ---- submit ---------------------------------------------------------------------- */

static int check_req(const struct moat_session *s, const struct moat_blk_req *r)
{
    const struct moat_blk_geometry *g = &s->geo;
    bool data = r->op == MOAT_BLK_READ || r->op == MOAT_BLK_WRITE;
    bool writes = r->op != MOAT_BLK_READ;
    switch (r->op) {
    case MOAT_BLK_READ:
    case MOAT_BLK_WRITE:
        break;
    case MOAT_BLK_FLUSH:
        if (!(g->flags & MOAT_BLK_F_FLUSH))
            return -MOAT_ENOTSUP;
        return (s->rights & MOAT_RIGHT_WRITE) ? 0 : -MOAT_EPERM;
    case MOAT_BLK_WRITE_ZEROES:
        if (!(g->flags & MOAT_BLK_F_WRITE_ZEROES))
            return -MOAT_ENOTSUP;
        break;
    case MOAT_BLK_DISCARD:
        if (!(g->flags & MOAT_BLK_F_DISCARD))
            return -MOAT_ENOTSUP;
        break;
    default:
        return -MOAT_EINVAL;
    }
    if (writes && !(s->rights & MOAT_RIGHT_WRITE))
        return -MOAT_EPERM;
    if (writes && (g->flags & MOAT_BLK_F_READONLY))
        return -MOAT_EROFS;
    if (r->blocks == 0 || (data && r->blocks > s->max_blocks) || (data && !r->buf))
        return -MOAT_EINVAL;
    if (r->lba > g->blocks || r->blocks > g->blocks - r->lba)
        return -MOAT_ERANGE;
    return 0;
}

void moat__submit_one(struct moat_session *s, uint32_t pos, const struct moat_blk_req *r,
                      uint64_t seq)
{
    uint8_t *data = s->mem + s->layout.data_off;
    uint32_t idx = s->free_idx[--s->n_free];
    struct moat_slot *sl = &s->slot[idx];
    sl->busy = true;
    sl->op = r->op;
    sl->blocks = r->op == MOAT_BLK_FLUSH ? 0 : r->blocks;
    sl->gen = sl->gen + 1 ? sl->gen + 1 : 1;
    sl->user_buf = r->buf;
    sl->user_data = r->user_data;
    sl->lba = r->op == MOAT_BLK_FLUSH ? 0 : r->lba;
    sl->seq = seq;
    if (r->op == MOAT_BLK_WRITE)
        memcpy(data + idx * s->slot_bytes, r->buf, (size_t)r->blocks * s->geo.block_size);
    struct moat_sqe e = { .tag = (uint64_t)sl->gen << 32 | idx, .op = r->op,
                          .blocks = sl->blocks, .lba = sl->lba,
                          .buf_off = idx * s->slot_bytes };
    memcpy(moat_ring_slot(&s->sq, pos), &e, sizeof e);
}

int moat__publish(struct moat_session *s, uint32_t n)
{
    if (!n)
        return 0;
    bool need_kick = false;
    if (moat_ring_publish(&s->sq, n, &need_kick) != MOAT_RING_OK) {
        moat__malformed(s, "request ring: publish refused");
        return s->err;
    }
    s->st.submitted += n;
    if (need_kick)
        moat__kick(s);
    return 0;
}

int moat_blk_submit(struct moat_session *s, const struct moat_blk_req *reqs, size_t n)
{
    if (s->kind != MOAT_CAP_BLOCK)
        return -MOAT_EINVAL;
    int ready = moat__session_ready(s);
    if (ready < 0)
        return ready;
    if (s->err)
        return s->err;
    for (size_t i = 0; i < n; i++) {
        int rc = check_req(s, &reqs[i]);
        if (rc < 0)
            return rc;
    }
    uint32_t space;
    if (moat_ring_space(&s->sq, &space) != MOAT_RING_OK) {
        moat__malformed(s, "request ring: the domain's consumer index is impossible");
        return s->err;
    }
    size_t q = n;
    if (q > space)
        q = space;
    if (q > s->n_free)
        q = s->n_free;
    if (q == 0)
        return n ? -MOAT_EBUSY : 0;
    for (uint32_t i = 0; i < q; i++)
        moat__submit_one(s, i, &reqs[i], s->seq_next++);
    int rc = moat__publish(s, (uint32_t)q);
    return rc < 0 ? rc : (int)q;
}

/* ---- completions ----------------------------------------------------------------- */

static int status_err(uint32_t st)
{
    switch (st) {
    case MOAT_ST_OK:      return 0;
    case MOAT_ST_EINVAL:  return -MOAT_EINVAL;
    case MOAT_ST_EIO:     return -MOAT_EIO;
    case MOAT_ST_ENOTSUP: return -MOAT_ENOTSUP;
    case MOAT_ST_EROFS:   return -MOAT_EROFS;
    case MOAT_ST_ERANGE:  return -MOAT_ERANGE;
    case MOAT_ST_EPERM:   return -MOAT_EPERM;
    default:              return -MOAT_EPROTO;
    }
}

int moat_poll(struct moat_session *s, struct moat_completion *out, size_t max)
{
    if (s->kind != MOAT_CAP_BLOCK)
        return -MOAT_EINVAL;    /* Nic completions are taken by moat_nic_* */
    if (moat__recover_due(s))
        moat__recover(s, 0);    /* a look: is it back? */
    size_t n = 0;
    while (n < max && s->n_owed)
        out[n++] = s->owed[--s->n_owed];
    if (!s->mem || s->recovering)
        return n || !s->err || s->recovering ? (int)n : s->err;
    while (n < max && s->n_local)
        out[n++] = s->local[--s->n_local];
    if (s->err || n == max)
        return (int)n;
    uint32_t avail;
    if (moat_ring_avail(&s->cq, &avail) != MOAT_RING_OK) {
        moat__malformed(s, "completion ring: the domain's producer index is impossible");
        while (n < max && s->n_local)
            out[n++] = s->local[--s->n_local];
        return (int)n;
    }
    uint32_t used = 0;
    const uint8_t *data = s->mem + s->layout.data_off;
    for (; used < avail && n < max; used++) {
        struct moat_cqe e;
        memcpy(&e, moat_ring_peek(&s->cq, used), sizeof e);    /* one copy, then check */
        uint32_t idx = (uint32_t)e.tag, gen = (uint32_t)(e.tag >> 32);
        struct moat_slot *sl = idx < s->layout.entries ? &s->slot[idx] : NULL;
        if (!sl || !sl->busy || sl->gen != gen) {
            moat__malformed(s, "completion for tag 0x%llx, which is not outstanding",
                      (unsigned long long)e.tag);
            break;
        }
        if (e.status > MOAT_ST_MAX) {
            moat__malformed(s, "completion with unknown status %u", e.status);
            break;
        }
        if (e.status == MOAT_ST_OK ? e.blocks != sl->blocks : e.blocks > sl->blocks) {
            moat__malformed(s, "completion claims %u blocks for a request of %u", e.blocks, sl->blocks);
            break;
        }
        if (sl->op == MOAT_BLK_READ && e.status == MOAT_ST_OK)
            memcpy(sl->user_buf, data + idx * s->slot_bytes, (size_t)e.blocks * s->geo.block_size);
        out[n++] = (struct moat_completion){ .user_data = sl->user_data,
                                             .status = status_err(e.status), .blocks = e.blocks };
        sl->busy = false;
        s->free_idx[s->n_free++] = idx;
        s->st.completed++;
    }
    if (!s->err && used) {
        bool need_kick = false;
        if (moat_ring_consume(&s->cq, used, &need_kick) == MOAT_RING_OK && need_kick)
            moat__kick(s);
        moat__recover_release_flushes(s);
    }
    while (n < max && s->n_local)
        out[n++] = s->local[--s->n_local];
    if (n == 0 && max)
        moat__idle_check(s);
    return (int)n;
}

static bool cq_ready(struct moat_session *s)
{
    uint32_t avail = 0;
    return s->n_local || s->err || moat_ring_avail(&s->cq, &avail) != MOAT_RING_OK || avail;
}

int moat__session_block(struct moat_session *s, uint64_t deadline)
{
    return moat__session_block_fd(s, -1, deadline);
}

int moat__session_block_fd(struct moat_session *s, int fd, uint64_t deadline)
{
    /* Brief spin: the domain often answers within microseconds. */
    uint64_t spin_end = moat__now_ns() + SPIN_NS;
    while (!cq_ready(s) && moat__now_ns() < spin_end)
        sched_yield();
    if (cq_ready(s) || !moat_ring_arm(&s->cq))
        return 0;
    uint64_t t = moat__now_ns();
    if (t >= deadline)
        return -MOAT_ETIMEDOUT;
    struct pollfd pfd[3] = { { .fd = s->notify_fd, .events = POLLIN },
                             { .fd = s->c ? s->c->fd : -1, .events = POLLIN },
                             { .fd = fd, .events = POLLIN } };
    int ms = deadline == UINT64_MAX ? -1 : (int)((deadline - t + 999999) / 1000000);
    s->st.waits++;
    int pr = poll(pfd, 3, ms);
    if (pr < 0 && errno != EINTR)
        return -MOAT_ESYS;
    if (pr > 0 && (pfd[0].revents & POLLIN)) {
        uint64_t v;
        if (read(s->notify_fd, &v, sizeof v) < 0 && errno != EAGAIN)
            return -MOAT_ESYS;
    }
    if (pr > 0 && pfd[1].revents) {
        int rc = moat__drain_events(s->c);
        if (rc < 0)
            moat__session_fail(s, rc);
    }
    return pr > 0 && pfd[2].revents ? 1 : 0;
}

/* moat_wait and moat_wait_fd: fd < 0 waits for completions only. */
static int wait_either(struct moat_session *s, int fd, struct moat_completion *out, size_t max,
                       int timeout_ms)
{
    uint64_t deadline = timeout_ms < 0 ? UINT64_MAX : moat__now_ns() + (uint64_t)timeout_ms * 1000000ull;
    for (;;) {
        int n = moat_poll(s, out, max);
        if (n != 0 || max == 0)
            return n;
        if (s->recovering) {
            /* Looks at the new incarnation at most once a ms (moat_poll)
             * while the caller's fd is watched, else waits for it here. */
            if (fd >= 0) {
                /* Sleep on the caller's fd and moat's events (a CAP_UP
                 * makes moat_poll look for the new incarnation). */
                struct pollfd p[2] = { { .fd = fd, .events = POLLIN },
                                       { .fd = s->c ? s->c->fd : -1, .events = POLLIN } };
                uint64_t now = moat__now_ns();
                if (now >= deadline)
                    return -MOAT_ETIMEDOUT;
                uint64_t left = deadline - now;
                int ms = left < RECOVER_LOOK_NS ? (int)(left / 1000000u) + 1
                                                : (int)(RECOVER_LOOK_NS / 1000000u);
                if (poll(p, 2, ms) > 0 && (p[0].revents & POLLIN))
                    return 0;
                s->events_checked_ns = 0;   /* let moat_poll read the events now */
                continue;
            }
            int rc = moat__recover(s, deadline);
            if (rc == -MOAT_ETIMEDOUT)
                return rc;
            continue;           /* recovered, or gave up: completions are owed */
        }
        if (s->err)
            return s->err;
        if (moat_inflight(s) == 0 && fd < 0)
            return 0;
        int rc = moat__session_block_fd(s, fd, deadline);
        if (rc < 0)
            return rc;
        if (rc == 1)
            return 0;           /* fd is readable */
    }
}

int moat_wait(struct moat_session *s, struct moat_completion *out, size_t max, int timeout_ms)
{
    return wait_either(s, -1, out, max, timeout_ms);
}

int moat_wait_fd(struct moat_session *s, int fd, struct moat_completion *out, size_t max,
                 int timeout_ms)
{
    if (fd < 0)
        return -MOAT_EINVAL;
    return wait_either(s, fd, out, max, timeout_ms);
}

/* ---- synchronous calls -------------------------------------------------------------- */

static int sync_one(struct moat_session *s, uint16_t op, uint64_t lba, uint32_t blocks, void *buf)
{
    if (moat_inflight(s))
        return -MOAT_EBUSY;
    /* Split what one request cannot carry; stop at the first error. */
    uint32_t done = 0;
    do {
        uint32_t chunk = blocks - done;
        bool data = op == MOAT_BLK_READ || op == MOAT_BLK_WRITE;
        if (data && chunk > s->max_blocks)
            chunk = s->max_blocks;
        struct moat_blk_req r = { .op = op, .lba = lba + done, .blocks = chunk,
                                  .buf = data ? (uint8_t *)buf + (size_t)done * s->geo.block_size
                                              : NULL };
        int rc = moat_blk_submit(s, &r, 1);
        if (rc < 0)
            return rc;
        struct moat_completion c;
        rc = moat_wait(s, &c, 1, -1);
        if (rc < 0)
            return rc;
        if (c.status < 0)
            return c.status;
        done += chunk;
    } while (done < blocks);
    return 0;
}

int moat_blk_read(struct moat_session *s, uint64_t lba, uint32_t blocks, void *buf)
{
    return sync_one(s, MOAT_BLK_READ, lba, blocks, buf);
}

int moat_blk_write(struct moat_session *s, uint64_t lba, uint32_t blocks, const void *buf)
{
    return sync_one(s, MOAT_BLK_WRITE, lba, blocks, (void *)(uintptr_t)buf);
}

int moat_blk_flush(struct moat_session *s)
{
    if (moat_inflight(s))
        return -MOAT_EBUSY;
    struct moat_blk_req r = { .op = MOAT_BLK_FLUSH, .blocks = 1 };
    int rc = moat_blk_submit(s, &r, 1);
    if (rc < 0)
        return rc;
    struct moat_completion c;
    rc = moat_wait(s, &c, 1, -1);
    return rc < 0 ? rc : c.status;
}

int moat_blk_write_zeroes(struct moat_session *s, uint64_t lba, uint32_t blocks)
{
    return sync_one(s, MOAT_BLK_WRITE_ZEROES, lba, blocks, NULL);
}

int moat_blk_discard(struct moat_session *s, uint64_t lba, uint32_t blocks)
{
    return sync_one(s, MOAT_BLK_DISCARD, lba, blocks, NULL);
}
