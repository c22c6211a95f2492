/* libmoat: a session follows its cap to the domain's next incarnation
 * (contract in moat/libmoat.h, "Restarts").
 *
 * When moat revokes a session (the serving domain ended), the requests it
 * had outstanding are held here in submission order instead of failing.
 * The next call that needs the session reattaches (a fresh session on the
 * new incarnation) and submits them again: reads and writes first, each
 * flush only once every request submitted before it has completed, so a
 * flush still follows the writes it covers. Nothing from the old rings is
 * read again: the old incarnation's completions are never delivered. If
 * the domain's breaker opens, it stays down (restart=never, an operator
 * stop), or it is not back within recover_ms, every held request completes
 * with MOAT_EFAILED (breaker) or MOAT_EDOWN. */
#include <stdlib.h>
#include <string.h>
#include "libmoat_internal.h"

static bool owe(struct moat_session *s, uint64_t user_data, int status)
{
    if (s->n_owed == s->cap_owed) {
        uint32_t cap = s->cap_owed ? 2 * s->cap_owed : 64;
        struct moat_completion *o = realloc(s->owed, cap * sizeof *o);
        if (!o)
            return false;
        s->owed = o;
        s->cap_owed = cap;
    }
    s->owed[s->n_owed++] = (struct moat_completion){ .user_data = user_data, .status = status };
    return true;
}

static bool hold(struct moat_session *s, const struct moat_held *h)
{
    if (s->n_held == s->cap_held) {
        uint32_t cap = s->cap_held ? 2 * s->cap_held : 64;
        struct moat_held *n = realloc(s->held, cap * sizeof *n);
        if (!n)
            return false;
        s->held = n;
        s->cap_held = cap;
    }
    s->held[s->n_held++] = *h;
    return true;
}

static int by_seq(const void *a, const void *b)
{
    const struct moat_held *x = a, *y = b;
    return (x->seq > y->seq) - (x->seq < y->seq);
}

void moat__recover_begin(struct moat_session *s)
{
    if (s->recovering)
        return;
    s->recovering = true;
    s->err = -MOAT_ESTALE;      /* the old rings are never read again */
    int32_t ms = s->params.recover_ms ? s->params.recover_ms : MOAT_RECOVER_MS_DEFAULT;
    s->recover_deadline = moat__now_ns() + (uint64_t)ms * 1000000ull;
    s->looked_ns = 0;           /* the first look goes at once */
    /* Completions already made here (errors) are still owed. */
    for (uint32_t i = 0; i < s->n_local; i++)
        if (!owe(s, s->local[i].user_data, s->local[i].status))
            break;
    s->n_local = 0;
    if (s->kind == MOAT_CAP_NIC) {
        s->st.frames_dropped += s->nic.tx_inflight + s->nic.ready_n;
        return;
    }
    for (uint32_t i = 0; i < s->layout.entries; i++) {
        struct moat_slot *sl = &s->slot[i];
        if (!sl->busy)
            continue;
        struct moat_held h = { .op = sl->op, .blocks = sl->op == MOAT_BLK_FLUSH ? 1 : sl->blocks,
                               .lba = sl->lba, .buf = sl->user_buf, .user_data = sl->user_data,
                               .seq = sl->seq };
        if (!hold(s, &h))
            owe(s, sl->user_data, -MOAT_ENOMEM);
        sl->busy = false;
    }
    if (s->n_held)
        qsort(s->held, s->n_held, sizeof *s->held, by_seq);
}

/* Recovery gave up: every held request completes with err, which stays. */
static int give_up(struct moat_session *s, int err)
{
    for (uint32_t i = 0; i < s->n_held; i++)
        owe(s, s->held[i].user_data, err);
    s->n_held = 0;
    s->recovering = false;
    s->err = err;
    return err;
}

/* Submit held[from..] entries that may go now, keep the rest in order. */
static void submit_held(struct moat_session *s, bool flushes_too)
{
    uint32_t keep = 0, q = 0;
    for (uint32_t i = 0; i < s->n_held; i++) {
        const struct moat_held *h = &s->held[i];
        bool go = h->op != MOAT_BLK_FLUSH;
        if (!go && flushes_too) {
            /* A flush waits for every request submitted before it. */
            go = true;
            for (uint32_t k = 0; k < s->layout.entries && go; k++)
                go = !(s->slot[k].busy && s->slot[k].op != MOAT_BLK_FLUSH &&
                       s->slot[k].seq < h->seq);
            for (uint32_t k = 0; k < keep && go; k++)
                go = s->held[k].seq > h->seq;
        }
        if (!go || !s->n_free) {
            s->held[keep++] = *h;
            continue;
        }
        struct moat_blk_req r = { .op = h->op, .lba = h->lba, .blocks = h->blocks,
                                  .buf = h->buf, .user_data = h->user_data };
        moat__submit_one(s, q++, &r, h->seq);
    }
    s->n_held = keep;
    if (q) {
        s->st.resubmitted += q;
        moat__publish(s, q);
    }
}

/* The domain will not come back by itself: why, as the error to give. */
static int down_err(const struct moat_session *s)
{
    return s->domain_down == MOAT_DOWN_BREAKER ? -MOAT_EFAILED : -MOAT_EDOWN;
}

int moat__recover(struct moat_session *s, uint64_t deadline)
{
    if (!s->recovering)
        return 0;
    if (s->domain_down)
        return give_up(s, down_err(s));
    uint64_t dl = deadline < s->recover_deadline ? deadline : s->recover_deadline;
    int rc = moat__reattach(s, dl);
    if (rc == 0) {
        s->recovering = false;
        s->st.recoveries++;
        submit_held(s, false);
        submit_held(s, true);
        return 0;
    }
    if (s->domain_down)
        return give_up(s, down_err(s));
    if (rc == -MOAT_EFAILED)
        return give_up(s, rc);
    if (rc == -MOAT_ETIMEDOUT && moat__now_ns() < s->recover_deadline)
        return rc;          /* the caller's deadline came first: still recovering */
    return give_up(s, rc == -MOAT_ETIMEDOUT ? -MOAT_EDOWN : rc);
}

int moat__session_ready(struct moat_session *s)
{
    if (s->recovering) {
        int rc = moat__recover(s, s->recover_deadline);
        if (rc < 0)
            return rc;
    }
    if (!s->mem)
        return s->err ? s->err : -MOAT_ESTALE;     /* detached */
    return 0;
}

void moat__recover_release_flushes(struct moat_session *s)
{
    if (s->n_held && !s->recovering && s->mem)
        submit_held(s, true);
}

void moat__idle_check(struct moat_session *s)
{
    uint64_t now = moat__now_ns();
    if (!s->c || s->recovering || now - s->events_checked_ns < 1000000u)
        return;
    s->events_checked_ns = now;
    int rc = moat__drain_events(s->c);
    if (rc < 0)
        moat__session_fail(s, rc);
}

void moat__recover_free(struct moat_session *s)
{
    free(s->held);
    free(s->owed);
    s->held = NULL;
    s->owed = NULL;
    s->n_held = s->cap_held = s->n_owed = s->cap_owed = 0;
}

bool moat__recover_due(struct moat_session *s)
{
    uint64_t now = moat__now_ns();
    if (!s->recovering || now - s->events_checked_ns < 1000000u)
        return false;
    s->events_checked_ns = now;
    if (s->c)
        moat__drain_events(s->c);   /* learn of CAP_UP / DOMAIN_DOWN; errors show in the look */
    uint64_t up = s->c ? s->c->caps_up : 0;
    if (s->looked_ns && up == s->caps_seen && !s->domain_down && now < s->recover_deadline &&
        now - s->looked_ns < RECOVER_LOOK_NS)
        return false;
    s->caps_seen = up;
    s->looked_ns = now;
    return true;
}
