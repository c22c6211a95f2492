/* TCP/IP over a Nic cap: lwIP netif, pump thread, address (contract in
 * moatnet.h). Lock order: lwIP's core lock, then mn.lock (link_out runs
 * under the core lock, and so does received-frame input in the pump);
 * never the other way round. */
#include "moatnet.h"
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>
#include "dhcp.h"
#include "frameq.h"
#include "lwip/etharp.h"
#include "lwip/ethip6.h"
#include "lwip/netif.h"
#include "lwip/pbuf.h"
#include "lwip/tcpip.h"
#include "moat/libmoat.h"
#include "netif/ethernet.h"
#include "moat/netpkt.h"
#include "cliutil/cli.h"

#define BATCH           32u
#define LOOK_NS         1000000000ull   /* link state and recoveries: once a second */
#define RENEW_RETRY_NS  (60ull * 1000000000ull)
#define TXQ_DEFAULT     512u
#define SESSION_ENTRIES 1024u

static struct {
    struct moat_client *c;
    struct moat_cap *cap;
    struct moat_session *s;
    struct moat_nic_info info;
    char cap_name[64];
    struct moatnet_link link;   /* the session's, or the caller's */
    struct netif nif;
    pthread_t pump;
    bool started;
    atomic_bool stop;
    int evfd;
    pthread_mutex_t lock;       /* txq and st */
    struct frameq txq;
    struct moatnet_stats st;
    bool dhcp, link_up;
    struct dhcp_lease lease;
    uint64_t renew_at_ns, renew_xid, recoveries_seen;
} mn = { .lock = PTHREAD_MUTEX_INITIALIZER, .evfd = -1 };

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "moatnet: [%s] ", mn.cap_name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static ip4_addr_t ip4(uint32_t host_order)
{
    ip4_addr_t a;
    ip4_addr_set_u32(&a, lwip_htonl(host_order));
    return a;
}

/* ---- the netif (lwIP's thread, core lock held) ---------------------------------------- */

static err_t link_out(struct netif *n, struct pbuf *p)
{
    (void)n;
    pthread_mutex_lock(&mn.lock);
    uint8_t *dst = frameq_reserve(&mn.txq, p->tot_len);
    if (dst) {
        pbuf_copy_partial(p, dst, p->tot_len, 0);
        frameq_commit(&mn.txq);
    } else {
        mn.st.tx_queue_full++;
    }
    /* Only the first frame of a backlog wakes the pump: it sleeps only
     * after seeing the queue empty (under this lock), and sends everything
     * queued before it looks again. */
    bool wake = dst && mn.txq.n == 1;
    pthread_mutex_unlock(&mn.lock);
    if (wake) {
        uint64_t one = 1;
        if (write(mn.evfd, &one, sizeof one) < 0 && errno != EAGAIN)
            say("cannot wake the pump: %s", strerror(errno));
    }
    return ERR_OK;      /* a frame dropped here is a frame lost on the wire */
}

static err_t nif_init(struct netif *n)
{
    n->name[0] = 'm';
    n->name[1] = 'n';
    n->hwaddr_len = 6;
    memcpy(n->hwaddr, mn.info.mac, 6);
    n->mtu = mn.info.mtu;
    n->flags = NETIF_FLAG_BROADCAST | NETIF_FLAG_ETHARP | NETIF_FLAG_ETHERNET;
    n->output = etharp_output;
    n->output_ip6 = ethip6_output;
    n->linkoutput = link_out;
    return ERR_OK;
}

/* ---- the pump (its own thread: the only user of the session) ------------------------------ */

static void set_link(bool up)
{
    if (up == mn.link_up)
        return;
    mn.link_up = up;
    LOCK_TCPIP_CORE();
    if (up)
        netif_set_link_up(&mn.nif);
    else
        netif_set_link_down(&mn.nif);
    UNLOCK_TCPIP_CORE();
    pthread_mutex_lock(&mn.lock);
    mn.st.link_changes++;
    pthread_mutex_unlock(&mn.lock);
    say("link %s", up ? "up" : "down");
}

/* Send what lwIP queued, as far as the session takes it. */
static void send_queued(void)
{
    struct moat_frame fr[BATCH];
    pthread_mutex_lock(&mn.lock);
    uint32_t k = 0, len;
    const uint8_t *f;
    while (k < BATCH && (f = frameq_peek(&mn.txq, k, &len)) != NULL) {
        fr[k] = (struct moat_frame){ .data = (void *)(uintptr_t)f, .len = len };
        k++;
    }
    pthread_mutex_unlock(&mn.lock);
    if (!k)
        return;
    /* The slots stay ours until popped: lwIP only writes free ones. */
    int rc = mn.link.send(mn.link.ctx, fr, k);
    if (rc < 0) {
        say("send: %s (%u frames dropped)", moat_strerror(rc), k);
        rc = (int)k;
    }
    pthread_mutex_lock(&mn.lock);
    frameq_pop(&mn.txq, (uint32_t)rc);
    mn.st.tx_frames += (uint32_t)rc;
    pthread_mutex_unlock(&mn.lock);
}

static bool renewal_answer(const uint8_t *f, uint32_t len)
{
    struct netpkt_dhcp_reply r;
    if (!mn.renew_xid || !netpkt_dhcp_reply(f, len, mn.info.mac, (uint32_t)mn.renew_xid, &r))
        return false;
    mn.renew_xid = 0;
    if (r.type == NETPKT_DHCP_ACK && r.yiaddr == mn.lease.ip) {
        mn.lease.lease_s = r.lease_s;
        mn.renew_at_ns = cli_now_ns() + (uint64_t)r.lease_s * 500000000ull;
        pthread_mutex_lock(&mn.lock);
        mn.st.dhcp_renewals++;
        pthread_mutex_unlock(&mn.lock);
    } else {
        say("error: the gateway refused to renew the lease of %u.%u.%u.%u; keeping it and "
            "asking again in 60 s", mn.lease.ip >> 24, mn.lease.ip >> 16 & 255,
            mn.lease.ip >> 8 & 255, mn.lease.ip & 255);
        mn.renew_at_ns = cli_now_ns() + RENEW_RETRY_NS;
    }
    return true;
}

static void renew_if_due(uint64_t now)
{
    if (!mn.dhcp || !mn.lease.lease_s || now < mn.renew_at_ns)
        return;
    uint8_t f[NETPKT_FRAME_MAX];
    mn.renew_xid = (uint32_t)now | 1u;
    size_t len = netpkt_dhcp_client(f, sizeof f, NETPKT_DHCP_REQUEST, mn.info.mac,
                                    (uint32_t)mn.renew_xid, mn.lease.ip, mn.lease.server);
    struct moat_frame fr = { .data = f, .len = (uint32_t)len };
    if (moat_nic_send(mn.s, &fr, 1) != 1)
        say("could not send the lease renewal; trying again in 60 s");
    mn.renew_at_ns = now + RENEW_RETRY_NS;      /* moved on by the ACK */
}

static void look_around(void)
{
    struct moat_nic_status ns;
    int rc = moat_nic_status(mn.s, &ns);
    if (rc == 0)
        set_link(ns.link_up != 0);
    struct moat_session_stats ss;
    moat_session_stats(mn.s, &ss);
    if (ss.recoveries != mn.recoveries_seen) {
        say("followed %s to a new incarnation of its domain (%llu so far)", mn.cap_name,
            (unsigned long long)ss.recoveries);
        mn.recoveries_seen = ss.recoveries;
        pthread_mutex_lock(&mn.lock);
        mn.st.session_recoveries = ss.recoveries;
        pthread_mutex_unlock(&mn.lock);
    }
}

static void deliver(const uint8_t *f, uint32_t len)
{
    if (renewal_answer(f, len))
        return;
    struct pbuf *p = pbuf_alloc(PBUF_RAW, (u16_t)len, PBUF_RAM);   /* not PBUF_POOL: see moatnet.h */
    pthread_mutex_lock(&mn.lock);
    if (p)
        mn.st.rx_frames++;
    else
        mn.st.rx_no_pbuf++;
    pthread_mutex_unlock(&mn.lock);
    if (!p)
        return;
    pbuf_take(p, f, (u16_t)len);
    if (mn.nif.input(p, &mn.nif) != ERR_OK)     /* core lock held: no queue between */
        pbuf_free(p);
}

static void *pump(void *arg)
{
    (void)arg;
    static uint8_t rx[BATCH][NETPKT_FRAME_MAX];
    struct moat_frame fr[BATCH];
    uint64_t next_look = 0;
    int last_err = 0;
    while (!atomic_load(&mn.stop)) {
        send_queued();
        for (unsigned i = 0; i < BATCH; i++)
            fr[i] = (struct moat_frame){ .data = rx[i], .len = sizeof rx[i] };
        pthread_mutex_lock(&mn.lock);
        bool backlog = mn.txq.n != 0;
        pthread_mutex_unlock(&mn.lock);
        int n = mn.link.recv(mn.link.ctx, mn.evfd, fr, BATCH, backlog ? 0 : 100);
        if (n < 0 && n != -MOAT_ETIMEDOUT) {
            if (n != last_err)
                say("error: receive: %s; retrying", moat_strerror(n));
            last_err = n;
            set_link(false);
            usleep(100000);     /* the cap is down for now; nothing to wait on */
            continue;
        }
        last_err = 0;
        if (n == 0) {
            uint64_t v;
            if (read(mn.evfd, &v, sizeof v) < 0 && errno != EAGAIN)
                say("cannot read the wake-up: %s", strerror(errno));
        }
        if (n > 0) {
            /* Straight into lwIP under its core lock, the batch at once:
             * posting each frame to the tcpip thread's mailbox instead
             * loses frames to a full mailbox under load. */
            LOCK_TCPIP_CORE();
            for (int i = 0; i < n; i++)
                if (fr[i].len <= sizeof rx[i])
                    deliver(rx[i], fr[i].len);
            UNLOCK_TCPIP_CORE();
        }
        uint64_t now = cli_now_ns();
        if (mn.s && now >= next_look) {
            next_look = now + LOOK_NS;
            look_around();
            renew_if_due(now);
        }
    }
    return NULL;
}

/* ---- the session as a link ----------------------------------------------------------------- */

static int session_send(void *ctx, const struct moat_frame *f, size_t n)
{
    return moat_nic_send(ctx, f, n);
}

static int session_recv(void *ctx, int wake_fd, struct moat_frame *f, size_t max,
                        int timeout_ms)
{
    return timeout_ms ? moat_nic_recv_fd(ctx, wake_fd, f, max, timeout_ms)
                      : moat_nic_recv(ctx, f, max, 0);
}

/* ---- start and stop ------------------------------------------------------------------------ */

static void tcpip_ready(void *arg) { sem_post(arg); }

static int fail(int rc, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(int rc, char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    moatnet_stop();
    return rc;
}

static int bring_up(const struct moatnet_config *cfg, struct moatnet_info *out, char *err,
                    size_t errlen);

int moatnet_start(const struct moatnet_config *cfg, struct moatnet_info *out, char *err,
                  size_t errlen)
{
    if (mn.started || mn.c)
        return fail(-MOAT_EBUSY, err, errlen, "moatnet runs once per process (one lwIP)");
    snprintf(mn.cap_name, sizeof mn.cap_name, "%s", cfg->cap);
    int rc = moat_open_wait(cfg->socket, cfg->cap, MOAT_RIGHT_READ | MOAT_RIGHT_WRITE,
                            cfg->wait_s, &mn.c, &mn.cap);
    if (rc)
        return fail(rc, err, errlen, "cannot open %s: %s (is moat running with that cap? "
                    "try moatctl list)", cfg->cap, moat_strerror(rc));
    /* Deep rings: half the entries are receive buffers, and a burst of
     * ACKs and requests from many connections must find one posted. */
    struct moat_session_params sp = { .entries = SESSION_ENTRIES };
    if ((rc = moat_nic_info(mn.cap, &mn.info)) || (rc = moat_session_open(mn.cap, &sp, &mn.s)))
        return fail(rc, err, errlen, "cannot open a session on %s: %s", cfg->cap,
                    moat_strerror(rc));
    mn.link = (struct moatnet_link){ .ctx = mn.s, .send = session_send, .recv = session_recv,
                                     .mtu = mn.info.mtu };
    memcpy(mn.link.mac, mn.info.mac, 6);
    if (cfg->static_ip) {
        mn.lease = (struct dhcp_lease){ .ip = cfg->ip, .mask = cfg->mask, .router = cfg->gw };
    } else {
        rc = dhcp_obtain(mn.s, mn.info.mac, 1000, 4, NULL, NULL, &mn.lease);
        if (rc)
            return fail(rc, err, errlen, "no DHCP lease on %s: %s", cfg->cap,
                        rc == -MOAT_EPROTO ? "the server answered with a NAK or an unexpected "
                                             "message" : moat_strerror(rc));
        mn.dhcp = true;
        mn.renew_at_ns = cli_now_ns() + (uint64_t)mn.lease.lease_s * 500000000ull;
    }
    return bring_up(cfg, out, err, errlen);
}

int moatnet_start_link(const struct moatnet_config *cfg, const struct moatnet_link *link,
                       struct moatnet_info *out, char *err, size_t errlen)
{
    if (mn.started || mn.c)
        return fail(-MOAT_EBUSY, err, errlen, "moatnet runs once per process (one lwIP)");
    if (!cfg->static_ip)
        return fail(-MOAT_EINVAL, err, errlen, "a link of your own needs a static address");
    snprintf(mn.cap_name, sizeof mn.cap_name, "%s", cfg->cap ? cfg->cap : "link");
    mn.link = *link;
    mn.info.mtu = link->mtu;
    memcpy(mn.info.mac, link->mac, 6);
    mn.lease = (struct dhcp_lease){ .ip = cfg->ip, .mask = cfg->mask, .router = cfg->gw };
    mn.link_up = true;
    return bring_up(cfg, out, err, errlen);
}

/* lwIP on the link: the queue, the tcpip thread, the interface, the pump. */
static int bring_up(const struct moatnet_config *cfg, struct moatnet_info *out, char *err,
                    size_t errlen)
{
    int rc;
    if (!frameq_init(&mn.txq, cfg->txq_frames ? cfg->txq_frames : TXQ_DEFAULT) ||
        (mn.evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
        return fail(-MOAT_ENOMEM, err, errlen, "out of memory or file descriptors");

    sem_t ready;
    sem_init(&ready, 0, 0);
    tcpip_init(tcpip_ready, &ready);
    sem_wait(&ready);
    sem_destroy(&ready);
    ip4_addr_t ip = ip4(mn.lease.ip), mask = ip4(mn.lease.mask), gw = ip4(mn.lease.router);
    LOCK_TCPIP_CORE();
    bool added = netif_add(&mn.nif, &ip, &mask, &gw, NULL, nif_init, ethernet_input) != NULL;
    if (added) {
        netif_set_default(&mn.nif);
        netif_set_up(&mn.nif);
        if (mn.link_up)
            netif_set_link_up(&mn.nif);
    }
    UNLOCK_TCPIP_CORE();
    if (!added)
        return fail(-MOAT_EIO, err, errlen, "lwIP refused the interface");
    if (mn.s)
        look_around();          /* the link state, before the pump takes the session */
    atomic_store(&mn.stop, false);
    if ((rc = pthread_create(&mn.pump, NULL, pump, NULL)) != 0)
        return fail(-MOAT_ENOMEM, err, errlen, "cannot start the pump thread: %s", strerror(rc));
    mn.started = true;
    *out = (struct moatnet_info){ .mtu = mn.info.mtu, .ip = mn.lease.ip, .mask = mn.lease.mask,
                                  .gw = mn.lease.router, .lease_s = mn.lease.lease_s };
    memcpy(out->mac, mn.info.mac, 6);
    return 0;
}

void moatnet_stats(struct moatnet_stats *out)
{
    pthread_mutex_lock(&mn.lock);
    *out = mn.st;
    pthread_mutex_unlock(&mn.lock);
}

void moatnet_stop(void)
{
    if (mn.started) {
        atomic_store(&mn.stop, true);
        uint64_t one = 1;
        if (write(mn.evfd, &one, sizeof one) < 0)
            say("cannot wake the pump: %s", strerror(errno));
        pthread_join(mn.pump, NULL);
        mn.started = false;
        set_link(false);
    }
    if (mn.s)
        moat_session_close(mn.s);
    if (mn.cap)
        moat_close(mn.cap);
    if (mn.c)
        moat_disconnect(mn.c);
    mn.s = NULL;
    mn.cap = NULL;
    mn.c = NULL;
    if (mn.evfd >= 0)
        close(mn.evfd);
    mn.evfd = -1;
    pthread_mutex_lock(&mn.lock);
    frameq_fini(&mn.txq);
    pthread_mutex_unlock(&mn.lock);
}
