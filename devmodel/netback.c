/* The network backend's L2 switch (contract in netback.h; the gateway is
 * net_gateway.c, capture net_pcap.c, the host TAP port net_tap.c). Over
 * 600 lines: the switch (ports, MAC learning, flooding, deferred delivery)
 * and its configuration parsers; the parsers are candidates to move out.
 *
 * Locking. nb->lock guards the port array, the MAC table and every port's
 * busy count; it is held only to decide where a frame goes, never across
 * an rx callback. A sender takes a busy reference on itself and on each
 * target port under nb->lock, drops the lock, delivers to each target under
 * that target's own delivery mutex (one rx at a time per port), then drops
 * the references. netback_port_remove unlinks the port and waits on
 * nb->idle until its busy count is zero, so after it returns no rx of that
 * port runs and no send from it is in flight. A thread never holds two
 * delivery mutexes: sends made from inside an rx callback (the gateway's
 * replies, or a device that answers at once) are copied to a thread-local
 * queue and sent when the outermost netback_send has finished delivering.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "log.h"
#include "net_gateway.h"
#include "net_hostfwd.h"
#include "net_pcap.h"
#include "net_tap.h"
#include "netback.h"
#include "clock.h"

#define NB_LOG          "net"
#define ETH_HLEN        14u
#define MAC_SETS        256u        /* MAC table: MAC_SETS x MAC_WAYS entries */
#define MAC_WAYS        4u
#define DEFER_MAX       64u         /* frames queued from rx callbacks per outermost send */

_Static_assert((MAC_SETS & (MAC_SETS - 1)) == 0, "MAC_SETS is a power of two");
_Static_assert(NET_ETH_FRAME_MAX == NETBACK_FRAME_MAX, "one frame limit");

#define NB_STATS_FIELDS(X)                                                    \
    X(forwarded) X(flooded) X(unknown_dropped)                                \
    X(arp_replies) X(dhcp_offers) X(dhcp_acks) X(dhcp_naks) X(icmp_replies)   \
    X(gateway_ignored) X(pcap_records) X(pcap_errors)                         \
    X(mac_learned) X(mac_moves) X(deferred_dropped)

#define PORT_STATS_FIELDS(X)                                                  \
    X(sent_frames) X(sent_bytes) X(recv_frames) X(recv_bytes)                 \
    X(dropped_link) X(bad_frames)

#define COUNT(st, f)        atomic_fetch_add_explicit(&(st).f, 1, memory_order_relaxed)
#define COUNT_N(st, f, n)   atomic_fetch_add_explicit(&(st).f, (uint64_t)(n), memory_order_relaxed)

struct netback_port {
    struct netback *nb;
    char name[NETBACK_PORT_NAME_MAX];
    netback_rx_fn rx;
    void *ctx;
    atomic_bool up;
    atomic_bool removed;        /* set under nb->lock once unlinked */
    unsigned busy;              /* nb->lock: sends from it + deliveries to it in flight */
    pthread_mutex_t deliver;    /* held around rx: never concurrent with itself */
    struct net_pcap *pcap;      /* capture of this port's traffic, or NULL */
    struct {
#define X(f) _Atomic uint64_t f;
        PORT_STATS_FIELDS(X)
#undef X
    } st;
};

struct mac_entry {
    struct netback_port *port;  /* NULL = free */
    uint64_t seen_ns;           /* last frame from this MAC */
    uint8_t mac[6];
};

struct netback {
    pthread_mutex_t lock;
    pthread_cond_t idle;        /* some removed port's busy count reached zero */
    struct netback_config cfg;
    uint64_t mac_age_ns;
    struct netback_port *ports[NETBACK_PORTS_MAX];
    unsigned n_ports;
    struct mac_entry macs[MAC_SETS][MAC_WAYS];
    struct net_gateway *gw;
    struct netback_port *gw_port;
    struct net_tap *tap;
    struct net_hostfwd *hostfwd;
    struct net_pcap *pcaps[NETBACK_PCAPS_MAX];  /* cfg.pcap[i] */
    struct {
#define X(f) _Atomic uint64_t f;
        NB_STATS_FIELDS(X)
#undef X
    } st;
};

/* ---- configuration ----------------------------------------------------- */

#define DEFAULT_NET     0x0a000200u     /* 10.0.2.0 */
#define DEFAULT_PREFIX  24u
#define PREFIX_MIN      8u
#define PREFIX_MAX      25u     /* a /25 still leaves .15-.126: 112 leases */

void netback_config_default(struct netback_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->net = DEFAULT_NET;
    cfg->prefix = DEFAULT_PREFIX;
    cfg->mac_age_ms = NETBACK_MAC_AGE_MS;
}

/* A decimal number 0..max of at most 3 digits at *p (no sign, no spaces). */
static bool parse_dec(const char **p, unsigned max, unsigned *out)
{
    const char *s = *p;
    unsigned v = 0, n = 0;
    while (*s >= '0' && *s <= '9' && n < 3) {
        v = v * 10u + (unsigned)(*s - '0');
        s++;
        n++;
    }
    if (n == 0 || v > max || (*s >= '0' && *s <= '9'))
        return false;
    *p = s;
    *out = v;
    return true;
}

bool netback_parse_subnet(const char *s, struct netback_config *cfg, char *err, size_t errlen)
{
    const char *p = s;
    uint32_t net = 0;
    unsigned v, prefix;
    for (int i = 0; i < 4; i++) {
        if ((i && *p++ != '.') || !parse_dec(&p, 255, &v)) {
            snprintf(err, errlen, "'%s' is not a subnet: give A.B.C.D/N, e.g. 10.0.2.0/24", s);
            return false;
        }
        net = net << 8 | v;
    }
    if (*p++ != '/' || !parse_dec(&p, 99, &prefix) || *p) {
        snprintf(err, errlen, "'%s' is not a subnet: give A.B.C.D/N with a prefix length, "
                 "e.g. 10.0.2.0/24", s);
        return false;
    }
    if (prefix < PREFIX_MIN || prefix > PREFIX_MAX) {
        snprintf(err, errlen, "'%s': the prefix length must be %u..%u (the gateway takes .2 and "
                 "DHCP leases at least %u addresses from .%u)", s, PREFIX_MIN, PREFIX_MAX,
                 NET_GW_POOL_MIN, NET_GW_HOST_DHCP);
        return false;
    }
    uint32_t mask = ~0u << (32u - prefix);
    if (net & ~mask) {
        uint32_t n = net & mask;
        snprintf(err, errlen, "'%s' has host bits set: give the network address, %u.%u.%u.%u/%u",
                 s, n >> 24, n >> 16 & 255u, n >> 8 & 255u, n & 255u, prefix);
        return false;
    }
    cfg->net = net;
    cfg->prefix = prefix;
    return true;
}

/* "[A.B.C.D]:PORT" from s[0..len); *given says whether the address was. */
static bool parse_endpoint(const char *s, size_t len, uint32_t *ip, bool *given, uint16_t *port)
{
    const char *colon = memchr(s, ':', len);
    if (!colon)
        return false;
    char a[16];
    size_t al = (size_t)(colon - s);
    *ip = 0;
    *given = al != 0;
    if (al) {
        struct in_addr in;
        if (al >= sizeof a)
            return false;
        memcpy(a, s, al);
        a[al] = '\0';
        if (inet_pton(AF_INET, a, &in) != 1)
            return false;
        *ip = ntohl(in.s_addr);
    }
    unsigned long v = 0;
    size_t pl = len - al - 1;
    if (pl == 0 || pl > 5)
        return false;
    for (size_t i = 0; i < pl; i++) {
        char c = colon[1 + i];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (unsigned long)(c - '0');
    }
    if (v == 0 || v > 65535)
        return false;
    *port = (uint16_t)v;
    return true;
}

bool netback_parse_hostfwd(const char *s, struct netback_config *cfg, char *err, size_t errlen)
{
    struct netback_hostfwd r;
    bool host_given, guest_given;
    const char *dash = strncmp(s, "tcp:", 4) ? NULL : strchr(s + 4, '-');
    if (!dash ||
        !parse_endpoint(s + 4, (size_t)(dash - s - 4), &r.host_ip, &host_given, &r.host_port) ||
        !parse_endpoint(dash + 1, strlen(dash + 1), &r.guest_ip, &guest_given, &r.guest_port) ||
        (guest_given && !r.guest_ip)) {
        snprintf(err, errlen, "'%s': give tcp:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT, e.g. "
                 "tcp:127.0.0.1:8080-:80 (an empty host address is 127.0.0.1, an empty guest "
                 "address the first DHCP lease; ports 1..65535)", s);
        return false;
    }
    if (!host_given)
        r.host_ip = 0x7f000001u;
    for (unsigned i = 0; i < cfg->n_fwd; i++)
        if (cfg->fwd[i].host_ip == r.host_ip && cfg->fwd[i].host_port == r.host_port) {
            snprintf(err, errlen, "'%s': host port %u is already forwarded", s, r.host_port);
            return false;
        }
    if (cfg->n_fwd >= NETBACK_FWDS_MAX) {
        snprintf(err, errlen, "'%s': at most %u host forwards", s, NETBACK_FWDS_MAX);
        return false;
    }
    cfg->fwd[cfg->n_fwd++] = r;
    return true;
}

bool netback_parse_pcap(const char *s, struct netback_config *cfg, char *err, size_t errlen)
{
    const char *eq = strchr(s, '=');
    if (!eq || eq == s || !eq[1]) {
        snprintf(err, errlen, "'%s': give PORT=FILE, e.g. vnet0.virtio-net0=vnet0.pcap or "
                 "gateway=gw.pcap", s);
        return false;
    }
    size_t plen = (size_t)(eq - s);
    if (plen >= NETBACK_PORT_NAME_MAX) {
        snprintf(err, errlen, "'%s': the port name is longer than %u characters", s,
                 NETBACK_PORT_NAME_MAX - 1);
        return false;
    }
    if (strlen(eq + 1) >= sizeof cfg->pcap[0].file) {
        snprintf(err, errlen, "'%s': the file name is longer than %zu characters", s,
                 sizeof cfg->pcap[0].file - 1);
        return false;
    }
    for (unsigned i = 0; i < cfg->n_pcap; i++) {
        if (strlen(cfg->pcap[i].port) == plen && !memcmp(cfg->pcap[i].port, s, plen)) {
            snprintf(err, errlen, "'%s': port %s is already captured (to %s)", s,
                     cfg->pcap[i].port, cfg->pcap[i].file);
            return false;
        }
        if (!strcmp(cfg->pcap[i].file, eq + 1)) {
            snprintf(err, errlen, "'%s': file %s already captures port %s; give each port its "
                     "own file", s, eq + 1, cfg->pcap[i].port);
            return false;
        }
    }
    if (cfg->n_pcap >= NETBACK_PCAPS_MAX) {
        snprintf(err, errlen, "'%s': at most %u ports can be captured", s, NETBACK_PCAPS_MAX);
        return false;
    }
    memcpy(cfg->pcap[cfg->n_pcap].port, s, plen);
    cfg->pcap[cfg->n_pcap].port[plen] = '\0';
    snprintf(cfg->pcap[cfg->n_pcap].file, sizeof cfg->pcap[0].file, "%s", eq + 1);
    cfg->n_pcap++;
    return true;
}

/* ---- MAC table ---------------------------------------------------------- */

static bool mac_is_group(const uint8_t *mac)
{
    return mac[0] & 1u;     /* I/G bit: multicast, broadcast included */
}

static bool mac_is_zero(const uint8_t *mac)
{
    return !(mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5]);
}

static struct mac_entry *mac_set(struct netback *nb, const uint8_t *mac)
{
    uint32_t h = 2166136261u;   /* FNV-1a */
    for (int i = 0; i < 6; i++)
        h = (h ^ mac[i]) * 16777619u;
    return nb->macs[(h ^ h >> 16) & (MAC_SETS - 1)];
}

static bool mac_live(const struct netback *nb, const struct mac_entry *e, uint64_t now)
{
    /* seen_ns may be later than now: another thread stamped it after our
     * clock read. */
    return e->port && (now <= e->seen_ns || now - e->seen_ns <= nb->mac_age_ns);
}

/* Caller holds nb->lock. Note that mac was last seen on port p. */
static void mac_learn(struct netback *nb, const uint8_t *mac, struct netback_port *p, uint64_t now)
{
    if (mac_is_group(mac) || mac_is_zero(mac))
        return;
    struct mac_entry *set = mac_set(nb, mac), *victim = NULL;
    for (unsigned w = 0; w < MAC_WAYS; w++) {
        struct mac_entry *e = &set[w];
        if (e->port && !memcmp(e->mac, mac, 6)) {
            if (e->port != p && mac_live(nb, e, now))
                COUNT(nb->st, mac_moves);
            e->port = p;
            e->seen_ns = now;
            return;
        }
        /* Replace a free or expired way first, else the least recently seen. */
        if (!victim || (mac_live(nb, victim, now) &&
                        (!mac_live(nb, e, now) || e->seen_ns < victim->seen_ns)))
            victim = e;
    }
    memcpy(victim->mac, mac, 6);
    victim->port = p;
    victim->seen_ns = now;
    COUNT(nb->st, mac_learned);
}

/* Caller holds nb->lock. The live port that owns mac, or NULL. */
static struct netback_port *mac_lookup(struct netback *nb, const uint8_t *mac, uint64_t now)
{
    struct mac_entry *set = mac_set(nb, mac);
    for (unsigned w = 0; w < MAC_WAYS; w++) {
        if (set[w].port && !memcmp(set[w].mac, mac, 6)) {
            if (mac_live(nb, &set[w], now))
                return set[w].port;
            set[w].port = NULL;     /* aged out */
            return NULL;
        }
    }
    return NULL;
}

/* Caller holds nb->lock. Forget every MAC learned on p. */
static void mac_forget_port(struct netback *nb, const struct netback_port *p)
{
    for (unsigned s = 0; s < MAC_SETS; s++)
        for (unsigned w = 0; w < MAC_WAYS; w++)
            if (nb->macs[s][w].port == p)
                nb->macs[s][w].port = NULL;
}

/* ---- forwarding ---------------------------------------------------------- */

/* Caller holds nb->lock. Drop one busy reference of p. */
static void port_put_locked(struct netback *nb, struct netback_port *p)
{
    if (--p->busy == 0 && atomic_load(&p->removed))
        pthread_cond_broadcast(&nb->idle);
}

static void capture(struct netback *nb, struct netback_port *p, const void *frame, size_t len)
{
    if (!p->pcap)
        return;
    if (net_pcap_write(p->pcap, frame, len))
        COUNT(nb->st, pcap_records);
    else
        COUNT(nb->st, pcap_errors);
}

/* Deliver one frame to t (a busy reference is held). True when its rx ran. */
static bool deliver(struct netback *nb, struct netback_port *t, const void *frame, size_t len)
{
    bool done = false;
    pthread_mutex_lock(&t->deliver);
    if (!atomic_load(&t->removed)) {
        if (!atomic_load(&t->up)) {
            COUNT(t->st, dropped_link);
        } else {
            COUNT(t->st, recv_frames);
            COUNT_N(t->st, recv_bytes, len);
            capture(nb, t, frame, len);
            t->rx(t->ctx, frame, len);
            done = true;
        }
    }
    pthread_mutex_unlock(&t->deliver);
    return done;
}

/* Learn, capture and forward a frame of valid length from p, now. */
static bool send_now(struct netback_port *p, const uint8_t *frame, size_t len)
{
    struct netback *nb = p->nb;
    if (!atomic_load(&p->up)) {
        COUNT(p->st, dropped_link);
        return false;
    }
    struct netback_port *targets[NETBACK_PORTS_MAX];
    unsigned n = 0;
    bool unicast = !mac_is_group(frame);
    bool flood = !unicast;

    pthread_mutex_lock(&nb->lock);
    uint64_t now = clock_mono_ns();
    if (atomic_load(&p->removed)) {
        pthread_mutex_unlock(&nb->lock);
        return false;
    }
    mac_learn(nb, frame + 6, p, now);
    if (unicast) {
        struct netback_port *q = mac_lookup(nb, frame, now);
        if (q && q != p)
            targets[n++] = q;
        else if (!q)
            flood = true;
        /* q == p: addressed to the sender itself; it never comes back. */
    }
    if (flood)
        for (unsigned i = 0; i < nb->n_ports; i++)
            if (nb->ports[i] != p)
                targets[n++] = nb->ports[i];
    p->busy++;
    for (unsigned i = 0; i < n; i++)
        targets[i]->busy++;
    pthread_mutex_unlock(&nb->lock);

    COUNT(p->st, sent_frames);
    COUNT_N(p->st, sent_bytes, len);
    capture(nb, p, frame, len);
    unsigned delivered = 0;
    for (unsigned i = 0; i < n; i++)
        delivered += deliver(nb, targets[i], frame, len);
    if (unicast && n == 0)
        COUNT(nb->st, unknown_dropped);
    else if (flood)
        COUNT_N(nb->st, flooded, delivered);
    else
        COUNT_N(nb->st, forwarded, delivered);

    pthread_mutex_lock(&nb->lock);
    for (unsigned i = 0; i < n; i++)
        port_put_locked(nb, targets[i]);
    port_put_locked(nb, p);
    pthread_mutex_unlock(&nb->lock);
    return true;
}

/* Frames sent from inside an rx callback, in order, per thread. */
struct deferred {
    struct deferred *next;
    struct netback_port *from;  /* holds a busy reference */
    size_t len;
    uint8_t frame[];
};

static _Thread_local struct {
    unsigned depth;             /* netback_send calls on this thread's stack */
    unsigned queued;            /* deferred since the outermost send began */
    struct deferred *head, *tail;
} tl;

static bool defer_send(struct netback_port *p, const void *frame, size_t len)
{
    struct netback *nb = p->nb;
    struct deferred *d = tl.queued < DEFER_MAX ? malloc(sizeof *d + len) : NULL;
    if (!d) {
        COUNT(nb->st, deferred_dropped);
        return false;
    }
    pthread_mutex_lock(&nb->lock);
    bool gone = atomic_load(&p->removed);
    if (!gone)
        p->busy++;
    pthread_mutex_unlock(&nb->lock);
    if (gone) {
        free(d);
        return false;
    }
    d->next = NULL;
    d->from = p;
    d->len = len;
    memcpy(d->frame, frame, len);
    if (tl.tail)
        tl.tail->next = d;
    else
        tl.head = d;
    tl.tail = d;
    tl.queued++;
    return true;
}

/* Send what rx callbacks queued on this thread, including what those
 * sends queue in turn (bounded by DEFER_MAX). */
static void drain_deferred(void)
{
    struct deferred *d;
    while ((d = tl.head)) {
        tl.head = d->next;
        if (!tl.head)
            tl.tail = NULL;
        struct netback_port *p = d->from;
        send_now(p, d->frame, d->len);
        pthread_mutex_lock(&p->nb->lock);
        port_put_locked(p->nb, p);
        pthread_mutex_unlock(&p->nb->lock);
        free(d);
    }
    tl.queued = 0;
}

bool netback_send(struct netback_port *p, const void *frame, size_t len)
{
    if (!frame || len < ETH_HLEN || len > NETBACK_FRAME_MAX) {
        COUNT(p->st, bad_frames);
        return false;
    }
    if (tl.depth > 0) {
        if (!atomic_load(&p->up)) {
            COUNT(p->st, dropped_link);
            return false;
        }
        return defer_send(p, frame, len);
    }
    tl.depth = 1;
    bool ok = send_now(p, frame, len);
    drain_deferred();
    tl.depth = 0;
    return ok;
}

/* ---- ports --------------------------------------------------------------- */

static bool port_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n >= NETBACK_PORT_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (name[i] <= ' ' || name[i] == '=' || name[i] > '~')
            return false;
    return true;
}

/* netback_port_add; quiet: no log line unless the port is captured (the
 * gateway, which the switch's own line announces). */
static struct netback_port *port_join(struct netback *nb, const char *name, const uint8_t mac[6],
                                      netback_rx_fn rx, void *ctx, bool quiet, char *err,
                                      size_t errlen)
{
    if (!nb) {
        snprintf(err, errlen, "network port %s: the network backend is not available", name);
        return NULL;
    }
    if (!port_name_ok(name) || !rx) {
        snprintf(err, errlen, "network port '%s': a port needs a name of 1..%u printable "
                 "characters without spaces or '=' and an rx callback", name,
                 NETBACK_PORT_NAME_MAX - 1);
        return NULL;
    }
    struct netback_port *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "network port %s: out of memory", name);
        return NULL;
    }
    p->nb = nb;
    snprintf(p->name, sizeof p->name, "%s", name);
    p->rx = rx;
    p->ctx = ctx;
    atomic_init(&p->up, true);
    atomic_init(&p->removed, false);
    pthread_mutex_init(&p->deliver, NULL);

    pthread_mutex_lock(&nb->lock);
    const char *why = NULL;
    for (unsigned i = 0; i < nb->n_ports && !why; i++)
        if (!strcmp(nb->ports[i]->name, name))
            why = "the name is taken by another port";
    if (!why && nb->n_ports >= NETBACK_PORTS_MAX)
        why = "the switch is full";
    if (why) {
        pthread_mutex_unlock(&nb->lock);
        snprintf(err, errlen, "network port %s cannot join the switch: %s (at most %u ports)",
                 name, why, NETBACK_PORTS_MAX);
        pthread_mutex_destroy(&p->deliver);
        free(p);
        return NULL;
    }
    for (unsigned i = 0; i < nb->cfg.n_pcap; i++)
        if (nb->pcaps[i] && !strcmp(nb->cfg.pcap[i].port, name))
            p->pcap = nb->pcaps[i];
    if (mac)
        mac_learn(nb, mac, p, clock_mono_ns());
    nb->ports[nb->n_ports++] = p;
    pthread_mutex_unlock(&nb->lock);

    if (quiet && !p->pcap)
        return p;
    if (mac)
        log_info(NB_LOG, "port %s joined the switch, MAC %02x:%02x:%02x:%02x:%02x:%02x%s%s", name,
                 mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], p->pcap ? ", captured to " : "",
                 p->pcap ? net_pcap_path(p->pcap) : "");
    else
        log_info(NB_LOG, "port %s joined the switch%s%s", name, p->pcap ? ", captured to " : "",
                 p->pcap ? net_pcap_path(p->pcap) : "");
    return p;
}

struct netback_port *netback_port_add(struct netback *nb, const char *name, const uint8_t mac[6],
                                      netback_rx_fn rx, void *ctx, char *err, size_t errlen)
{
    return port_join(nb, name, mac, rx, ctx, false, err, errlen);
}

void netback_port_remove(struct netback_port *p)
{
    if (!p)
        return;
    struct netback *nb = p->nb;
    pthread_mutex_lock(&nb->lock);
    for (unsigned i = 0; i < nb->n_ports; i++) {
        if (nb->ports[i] == p) {
            memmove(&nb->ports[i], &nb->ports[i + 1], (nb->n_ports - i - 1) * sizeof nb->ports[0]);
            nb->n_ports--;
            break;
        }
    }
    mac_forget_port(nb, p);
    atomic_store(&p->removed, true);
    while (p->busy)
        pthread_cond_wait(&nb->idle, &nb->lock);
    pthread_mutex_unlock(&nb->lock);
    log_info(NB_LOG, "port %s left the switch (sent %llu, received %llu frames)", p->name,
             (unsigned long long)atomic_load(&p->st.sent_frames),
             (unsigned long long)atomic_load(&p->st.recv_frames));
    pthread_mutex_destroy(&p->deliver);
    free(p);
}

void netback_port_link(struct netback_port *p, bool up)
{
    if (atomic_exchange(&p->up, up) != up)
        log_info(NB_LOG, "port %s link %s", p->name, up ? "up" : "down");
}

void netback_port_stats(const struct netback_port *p, struct netback_port_stats *out)
{
    memset(out, 0, sizeof *out);
#define X(f) out->f = atomic_load_explicit(&p->st.f, memory_order_relaxed);
    PORT_STATS_FIELDS(X)
#undef X
}

void netback_stats(const struct netback *nb, struct netback_stats *out)
{
    memset(out, 0, sizeof *out);
#define X(f) out->f = atomic_load_explicit(&nb->st.f, memory_order_relaxed);
    NB_STATS_FIELDS(X)
#undef X
    if (nb->tap) {
        struct net_tap_counters c;
        net_tap_counters(nb->tap, &c);
        out->tap_in = c.in;
        out->tap_out = c.out;
        out->tap_errors = c.errors;
        out->tap_down = c.down;
    }
}

/* ---- the gateway port ---------------------------------------------------- */

static void gateway_rx(void *ctx, const void *frame, size_t len)
{
    struct netback *nb = ctx;
    uint8_t reply[NETBACK_FRAME_MAX];
    size_t rlen = 0;
    enum net_gw_verdict v = net_gateway_input(nb->gw, frame, len, reply, sizeof reply, &rlen);
    switch (v) {
    case NET_GW_IGNORED:    COUNT(nb->st, gateway_ignored); return;
    case NET_GW_ARP_REPLY:  COUNT(nb->st, arp_replies); break;
    case NET_GW_DHCP_OFFER: COUNT(nb->st, dhcp_offers); break;
    case NET_GW_DHCP_ACK:   COUNT(nb->st, dhcp_acks); break;
    case NET_GW_DHCP_NAK:   COUNT(nb->st, dhcp_naks); break;
    case NET_GW_ICMP_REPLY: COUNT(nb->st, icmp_replies); break;
    }
    /* We run inside a delivery: netback_send queues the reply and the
     * outermost send transmits it once this delivery has finished. */
    netback_send(nb->gw_port, reply, rlen);
}

uint32_t netback_gateway_ip(const struct netback *nb)
{
    return nb->cfg.net + NET_GW_HOST_GATEWAY;
}

void netback_gateway_mac(const struct netback *nb, uint8_t mac[6])
{
    net_gateway_mac_of(netback_gateway_ip(nb), mac);
}

uint32_t netback_dhcp_first(const struct netback *nb)
{
    return nb->cfg.net + NET_GW_HOST_DHCP;
}

/* ---- the process-wide switch --------------------------------------------- */

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static struct netback *g_nb;

static void nb_destroy(struct netback *nb)
{
    if (!nb)
        return;
    net_hostfwd_stop(nb->hostfwd);
    nb->hostfwd = NULL;
    net_tap_close(nb->tap);
    nb->tap = NULL;
    netback_port_remove(nb->gw_port);
    nb->gw_port = NULL;
    /* Ports left behind are forgotten: their owners promised they are idle. */
    while (nb->n_ports) {
        log_info(NB_LOG, "port %s still joined at shutdown; forgotten", nb->ports[0]->name);
        netback_port_remove(nb->ports[0]);
    }
    net_gateway_free(nb->gw);
    for (unsigned i = 0; i < NETBACK_PCAPS_MAX; i++)
        net_pcap_close(nb->pcaps[i]);
    pthread_cond_destroy(&nb->idle);
    pthread_mutex_destroy(&nb->lock);
    free(nb);
}

static struct netback *nb_create(const struct netback_config *cfg, char *err, size_t errlen)
{
    uint32_t mask = cfg->prefix >= PREFIX_MIN && cfg->prefix <= PREFIX_MAX
                    ? ~0u << (32u - cfg->prefix) : 0;
    if (!mask || (cfg->net & ~mask) || cfg->n_pcap > NETBACK_PCAPS_MAX) {
        snprintf(err, errlen, "network backend: invalid configuration (subnet %u.%u.%u.%u/%u, "
                 "%u pcap files); parse it with netback_parse_subnet/netback_parse_pcap",
                 cfg->net >> 24, cfg->net >> 16 & 255u, cfg->net >> 8 & 255u, cfg->net & 255u,
                 cfg->prefix, cfg->n_pcap);
        return NULL;
    }
    struct netback *nb = calloc(1, sizeof *nb);
    if (!nb) {
        snprintf(err, errlen, "network backend: out of memory");
        return NULL;
    }
    pthread_mutex_init(&nb->lock, NULL);
    pthread_cond_init(&nb->idle, NULL);
    nb->cfg = *cfg;
    nb->mac_age_ns = (uint64_t)(cfg->mac_age_ms ? cfg->mac_age_ms : NETBACK_MAC_AGE_MS) * 1000000ull;
    for (unsigned i = 0; i < cfg->n_pcap; i++) {
        nb->pcaps[i] = net_pcap_open(cfg->pcap[i].file, cfg->pcap[i].port, err, errlen);
        if (!nb->pcaps[i])
            goto fail;
    }
    if (!cfg->no_gateway) {
        nb->gw = net_gateway_new(cfg->net, cfg->prefix);
        uint8_t mac[6];
        net_gateway_mac_of(netback_gateway_ip(nb), mac);
        if (!nb->gw) {
            snprintf(err, errlen, "network backend: cannot create the gateway (out of memory)");
            goto fail;
        }
        nb->gw_port = port_join(nb, "gateway", mac, gateway_rx, nb, true, err, errlen);
        if (!nb->gw_port)
            goto fail;
    }
    if (cfg->tap[0]) {
        nb->tap = net_tap_open(nb, cfg->tap, err, errlen);
        if (!nb->tap)
            goto fail;
    }
    if (cfg->n_fwd) {
        nb->hostfwd = net_hostfwd_start(nb, cfg->net, mask, cfg->fwd, cfg->n_fwd,
                                        netback_dhcp_first(nb), err, errlen);
        if (!nb->hostfwd)
            goto fail;
    }
    uint32_t gw = netback_gateway_ip(nb);
    if (cfg->no_gateway)
        log_info(NB_LOG, "switch on %u.%u.%u.%u/%u, no gateway%s%s", cfg->net >> 24,
                 cfg->net >> 16 & 255u, cfg->net >> 8 & 255u, cfg->net & 255u, cfg->prefix,
                 cfg->tap[0] ? ", TAP " : "", cfg->tap);
    else
        log_info(NB_LOG, "switch on %u.%u.%u.%u/%u, gateway %u.%u.%u.%u (ARP, DHCP from .%u, "
                 "ping)%s%s", cfg->net >> 24, cfg->net >> 16 & 255u, cfg->net >> 8 & 255u,
                 cfg->net & 255u, cfg->prefix, gw >> 24, gw >> 16 & 255u, gw >> 8 & 255u,
                 gw & 255u, NET_GW_HOST_DHCP, cfg->tap[0] ? ", TAP " : "", cfg->tap);
    return nb;
fail:
    nb_destroy(nb);
    return NULL;
}

bool netback_setup(const struct netback_config *cfg, char *err, size_t errlen)
{
    pthread_mutex_lock(&g_lock);
    if (g_nb) {
        unsigned own = (g_nb->gw_port != NULL) + (g_nb->tap != NULL);
        pthread_mutex_lock(&g_nb->lock);
        unsigned n = g_nb->n_ports;
        pthread_mutex_unlock(&g_nb->lock);
        if (n > own) {
            pthread_mutex_unlock(&g_lock);
            snprintf(err, errlen, "network backend: cannot reconfigure the switch while %u "
                     "device port(s) are joined; set it up before any domain starts", n - own);
            return false;
        }
        nb_destroy(g_nb);
        g_nb = NULL;
    }
    g_nb = nb_create(cfg, err, errlen);
    bool ok = g_nb != NULL;
    pthread_mutex_unlock(&g_lock);
    return ok;
}

struct netback *netback_get(void)
{
    pthread_mutex_lock(&g_lock);
    if (!g_nb) {
        struct netback_config cfg;
        char err[256];
        netback_config_default(&cfg);
        g_nb = nb_create(&cfg, err, sizeof err);
        if (!g_nb)
            log_error(NB_LOG, "%s", err);
    }
    struct netback *nb = g_nb;
    pthread_mutex_unlock(&g_lock);
    return nb;
}

void netback_shutdown(void)
{
    pthread_mutex_lock(&g_lock);
    struct netback *nb = g_nb;
    g_nb = NULL;
    pthread_mutex_unlock(&g_lock);
    nb_destroy(nb);
}
