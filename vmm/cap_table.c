/* Capability table (contract in cap_table.h).
 *
 * Token layout: bits 63..32 are the slot's generation, bits 31..0 are the
 * slot index + 1, so 0 is never a token. A slot's generation starts at 1 and
 * moves on every time the slot is freed, so a closed or dropped token never
 * matches again even when the slot is reused. */
#include <stdio.h>
#include <string.h>
#include "cap_table.h"
#include "enum_name.h"

#define VECTOR_MIN 32u
#define VECTOR_MAX 254u

static const char *const refusal_names[] = {
    [CAP_REFUSED_BADCAP] = "bad handle",
    [CAP_REFUSED_STALE] = "stale",
    [CAP_REFUSED_RIGHTS] = "rights",
    [CAP_REFUSED_LIMIT] = "limit",
    [CAP_REFUSED_NOENT] = "no such cap",
    [CAP_REFUSED_DOWN] = "down",
    [CAP_REFUSED_REGISTER] = "register",
};

const char *cap_refusal_name(enum cap_refusal r)
{
    return ENUM_NAME(refusal_names, r);
}

/* Count the refusal and hand back the error, so callers can `return refuse()`. */
static int refuse(struct cap_table *t, enum cap_refusal why, int err)
{
    t->refused[why]++;
    return err;
}

static uint64_t token(uint32_t slot, uint32_t gen)
{
    return (uint64_t)gen << 32 | (uint64_t)(slot + 1u);
}

/* Free a slot; its generation moves on (never 0) so the old token is dead. */
static void free_slot(struct cap_handle *h)
{
    uint32_t gen = h->gen + 1u;
    memset(h, 0, sizeof *h);
    h->gen = gen ? gen : 1u;
}

void cap_table_init(struct cap_table *t)
{
    memset(t, 0, sizeof *t);
    for (unsigned i = 0; i < CAP_HANDLES_MAX; i++)
        t->h[i].gen = 1;

    struct cap_object *c = &t->obj[0];
    c->used = true;
    c->up = true;
    c->kind = MOAT_CAP_CONTROL;
    snprintf(c->name, sizeof c->name, "control");
    c->domain_id = CAP_NO_DOMAIN;
    c->rights = MOAT_RIGHT_READ | MOAT_RIGHT_ADMIN;
    c->generation = 1;
}

bool cap_geometry_valid(const struct moat_blk_geometry *g)
{
    if (!g)
        return false;
    uint32_t bs = g->block_size;
    if (bs < MOAT_BLK_BLOCK_MIN || bs > MOAT_BLK_BLOCK_MAX || (bs & (bs - 1u)))
        return false;
    if (g->blocks == 0 || g->blocks > UINT64_MAX / bs)
        return false;
    if (g->max_blocks < 1 || (g->flags & ~MOAT_BLK_F_ALL))
        return false;
    return g->queues >= 1 && g->queues <= MOAT_SESSION_SLOTS;
}

bool cap_nic_info_valid(const struct moat_nic_info *n)
{
    if (!n)
        return false;
    static const uint8_t zero[6];
    if ((n->mac[0] & 1u) || !memcmp(n->mac, zero, sizeof zero))
        return false;               /* multicast/broadcast or all-zero */
    if (n->mtu < MOAT_NIC_MTU_MIN || n->mtu > MOAT_NIC_MTU_MAX ||
        n->max_frame != (uint32_t)n->mtu + MOAT_NIC_ETH_HDR)
        return false;
    if (n->flags & ~MOAT_NIC_F_ALL || n->reserved)
        return false;
    return n->queues >= 1 && n->queues <= MOAT_SESSION_SLOTS;
}

/* Length of s if it is 1..max-1 characters, all passing ok(); else 0. Never
 * reads past s[max-1], so an unterminated buffer is refused, not overrun. */
static size_t name_len(const char *s, size_t max, bool (*ok)(char))
{
    if (!s)
        return 0;
    for (size_t i = 0; i < max; i++) {
        if (s[i] == '\0')
            return i;
        if (!ok(s[i]))
            return 0;
    }
    return 0;
}

static bool suffix_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

/* Domain names follow the config rules (letters, digits, '-', '_'); no '.',
 * so "<domain>.<suffix>" splits one way only. */
static bool domain_char(char c)
{
    return suffix_char(c) || (c >= 'A' && c <= 'Z');
}

static unsigned domain_caps(const struct cap_table *t, uint32_t domain_id, bool up_only)
{
    unsigned n = 0;
    for (unsigned i = 0; i < CAP_OBJECTS_MAX; i++)
        if (t->obj[i].used && t->obj[i].domain_id == domain_id && (!up_only || t->obj[i].up))
            n++;
    return n;
}

/* The id <-> name binding of domains: a name used by one domain id may not
 * be claimed by another id, and an id keeps its name. */
static bool domain_conflict(const struct cap_table *t, uint32_t domain_id, const char *domain)
{
    for (unsigned i = 0; i < CAP_OBJECTS_MAX; i++) {
        const struct cap_object *o = &t->obj[i];
        if (!o->used || o->domain_id == CAP_NO_DOMAIN)
            continue;
        bool same_name = !strcmp(o->domain, domain);
        if (same_name != (o->domain_id == domain_id))
            return true;
    }
    return false;
}

int cap_register(struct cap_table *t, uint32_t domain_id, const char *domain,
                 uint32_t kind, const char *suffix, const void *info, uint32_t vector)
{
    size_t slen = name_len(suffix, MOAT_CAP_NAME_MAX, suffix_char);
    size_t dlen = name_len(domain, MOAT_NAME_LEN, domain_char);
    if (!slen || !dlen || dlen + 1u + slen > MOAT_NAME_LEN - 1u || domain_id == CAP_NO_DOMAIN)
        return refuse(t, CAP_REFUSED_REGISTER, -MOAT_EINVAL);
    if (kind != MOAT_CAP_BLOCK && kind != MOAT_CAP_NIC)
        return refuse(t, CAP_REFUSED_REGISTER, -MOAT_EINVAL);
    if (vector < VECTOR_MIN || vector > VECTOR_MAX)
        return refuse(t, CAP_REFUSED_REGISTER, -MOAT_EINVAL);
    /* Copy the description once: it comes from the domain. */
    struct moat_blk_geometry g;
    struct moat_nic_info nic;
    memset(&g, 0, sizeof g);
    memset(&nic, 0, sizeof nic);
    if (!info)
        return refuse(t, CAP_REFUSED_REGISTER, -MOAT_EINVAL);
    if (kind == MOAT_CAP_BLOCK) {
        memcpy(&g, info, sizeof g);
        if (!cap_geometry_valid(&g))
            return refuse(t, CAP_REFUSED_REGISTER, -MOAT_EINVAL);
    } else {
        memcpy(&nic, info, sizeof nic);
        if (!cap_nic_info_valid(&nic))
            return refuse(t, CAP_REFUSED_REGISTER, -MOAT_EINVAL);
    }
    uint32_t rights = MOAT_RIGHT_READ | MOAT_RIGHT_WRITE;
    if (kind == MOAT_CAP_BLOCK && (g.flags & MOAT_BLK_F_READONLY))
        rights = MOAT_RIGHT_READ;

    char name[MOAT_NAME_LEN];
    snprintf(name, sizeof name, "%s.%s", domain, suffix);
    if (domain_conflict(t, domain_id, domain))
        return refuse(t, CAP_REFUSED_REGISTER, -MOAT_EPERM);

    int found = cap_find(t, name);
    struct cap_object *o;
    if (found >= 0) {
        o = &t->obj[found];
        if (o->kind != kind)
            return refuse(t, CAP_REFUSED_REGISTER, -MOAT_EPERM);
        /* A new incarnation: its caps are numbered in the order it registers
         * them, so the index is how many of the domain's caps are up now. An
         * already-up cap registered again keeps its index. */
        if (!o->up)
            o->index = domain_caps(t, domain_id, true);
        /* The generation stays: it moved when the domain went down. */
    } else {
        if (domain_caps(t, domain_id, false) >= CAP_PER_DOMAIN_MAX)
            return refuse(t, CAP_REFUSED_REGISTER, -MOAT_ELIMIT);
        for (unsigned i = 0; i < CAP_OBJECTS_MAX && found < 0; i++)
            if (!t->obj[i].used)
                found = (int)i;
        if (found < 0)
            return refuse(t, CAP_REFUSED_REGISTER, -MOAT_ELIMIT);
        o = &t->obj[found];
        memset(o, 0, sizeof *o);
        o->used = true;
        o->kind = kind;
        memcpy(o->name, name, sizeof o->name);
        snprintf(o->domain, sizeof o->domain, "%s", domain);
        o->domain_id = domain_id;
        o->generation = 1;
        o->index = domain_caps(t, domain_id, true);
    }
    o->up = true;
    o->rights = rights;
    if (kind == MOAT_CAP_BLOCK)
        o->blk = g;
    else
        o->nic = nic;
    o->vector = vector;
    return found;
}

unsigned cap_domain_down(struct cap_table *t, uint32_t domain_id)
{
    if (domain_id == CAP_NO_DOMAIN)
        return 0;
    unsigned n = 0;
    for (unsigned i = 0; i < CAP_OBJECTS_MAX; i++) {
        struct cap_object *o = &t->obj[i];
        if (o->used && o->domain_id == domain_id) {
            o->up = false;
            o->generation++;
            n++;
        }
    }
    return n;
}

bool cap_revoke(struct cap_table *t, uint32_t object)
{
    if (object >= CAP_OBJECTS_MAX || !t->obj[object].used)
        return false;
    t->obj[object].generation++;
    return true;
}

int cap_find(const struct cap_table *t, const char *name)
{
    if (!name)
        return -MOAT_ENOENT;
    /* Object names are shorter than MOAT_NAME_LEN, so comparing that many
     * bytes includes their NUL: a longer or unterminated name never matches. */
    for (unsigned i = 0; i < CAP_OBJECTS_MAX; i++)
        if (t->obj[i].used && !strncmp(t->obj[i].name, name, MOAT_NAME_LEN))
            return (int)i;
    return -MOAT_ENOENT;
}

int cap_open(struct cap_table *t, uint32_t client, const char *name, uint32_t rights,
             uint32_t allowed, uint64_t *handle)
{
    if (handle)
        *handle = 0;
    if (!handle || !rights || (rights & ~MOAT_RIGHTS_ALL))
        return refuse(t, CAP_REFUSED_RIGHTS, -MOAT_EINVAL);
    int i = cap_find(t, name);
    if (i < 0)
        return refuse(t, CAP_REFUSED_NOENT, -MOAT_ENOENT);
    const struct cap_object *o = &t->obj[i];
    if (rights & ~(o->rights & allowed))
        return refuse(t, CAP_REFUSED_RIGHTS, -MOAT_EPERM);
    if (!o->up)
        return refuse(t, CAP_REFUSED_DOWN, -MOAT_EDOWN);
    if (cap_client_handles(t, client) >= CAP_HANDLES_PER_CLIENT)
        return refuse(t, CAP_REFUSED_LIMIT, -MOAT_ELIMIT);
    for (uint32_t s = 0; s < CAP_HANDLES_MAX; s++) {
        struct cap_handle *h = &t->h[s];
        if (h->used)
            continue;
        h->used = true;
        h->client = client;
        h->object = (uint32_t)i;
        h->object_gen = o->generation;
        h->rights = rights;
        *handle = token(s, h->gen);
        return 0;
    }
    return refuse(t, CAP_REFUSED_LIMIT, -MOAT_ELIMIT);
}

/* The live slot of client's handle, or NULL (not counted: callers do). */
static struct cap_handle *lookup(struct cap_table *t, uint32_t client, uint64_t handle)
{
    uint32_t low = (uint32_t)handle;
    uint32_t gen = (uint32_t)(handle >> 32);
    if (low == 0 || low > CAP_HANDLES_MAX || gen == 0)
        return NULL;
    struct cap_handle *h = &t->h[low - 1u];
    if (!h->used || h->gen != gen || h->client != client)
        return NULL;
    return h;
}

int cap_check(struct cap_table *t, uint32_t client, uint64_t handle, uint32_t need,
              uint32_t *object)
{
    const struct cap_handle *h = lookup(t, client, handle);
    if (!h || h->object >= CAP_OBJECTS_MAX)
        return refuse(t, CAP_REFUSED_BADCAP, -MOAT_EBADCAP);
    const struct cap_object *o = &t->obj[h->object];
    if (!o->used || !o->up || o->generation != h->object_gen)
        return refuse(t, CAP_REFUSED_STALE, -MOAT_ESTALE);
    /* Also against the object's rights now: a cap re-registered read-only
     * while up keeps its generation, and must not keep honouring WRITE. */
    if (need & ~(h->rights & o->rights))
        return refuse(t, CAP_REFUSED_RIGHTS, -MOAT_EPERM);
    if (object)
        *object = h->object;
    return 0;
}

int cap_close(struct cap_table *t, uint32_t client, uint64_t handle)
{
    struct cap_handle *h = lookup(t, client, handle);
    if (!h)
        return refuse(t, CAP_REFUSED_BADCAP, -MOAT_EBADCAP);
    free_slot(h);
    return 0;
}

unsigned cap_drop_client(struct cap_table *t, uint32_t client)
{
    unsigned n = 0;
    for (unsigned i = 0; i < CAP_HANDLES_MAX; i++)
        if (t->h[i].used && t->h[i].client == client) {
            free_slot(&t->h[i]);
            n++;
        }
    return n;
}

unsigned cap_client_handles(const struct cap_table *t, uint32_t client)
{
    unsigned n = 0;
    for (unsigned i = 0; i < CAP_HANDLES_MAX; i++)
        if (t->h[i].used && t->h[i].client == client)
            n++;
    return n;
}

void cap_describe(const struct cap_table *t, uint32_t i, struct moat_cap_desc *d)
{
    memset(d, 0, sizeof *d);
    if (i >= CAP_OBJECTS_MAX || !t->obj[i].used)
        return;
    const struct cap_object *o = &t->obj[i];
    snprintf(d->name, sizeof d->name, "%s", o->name);
    snprintf(d->domain, sizeof d->domain, "%s", o->domain);
    d->kind = o->kind;
    d->state = o->up ? MOAT_CAP_UP : MOAT_CAP_DOWN;
    d->generation = o->generation;
    if (o->kind == MOAT_CAP_BLOCK)
        d->blk = o->blk;
    else if (o->kind == MOAT_CAP_NIC)
        d->nic = o->nic;
}

size_t cap_list(const struct cap_table *t, struct moat_cap_desc *out, size_t max)
{
    size_t n = 0;
    for (uint32_t i = 0; i < CAP_OBJECTS_MAX; i++) {
        if (!t->obj[i].used)
            continue;
        if (out && n < max)
            cap_describe(t, i, &out[n]);
        n++;
    }
    return n;
}
