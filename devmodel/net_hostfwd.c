/* Host port forwards into the switch's subnet (contract in net_hostfwd.h). */
#include "net_hostfwd.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "log.h"
#include "lwip/etharp.h"
#include "lwip/netif.h"
#include "lwip/pbuf.h"
#include "lwip/sockets.h"
#include "lwip/tcpip.h"
#include "net_gateway.h"
#include "netif/ethernet.h"
#include "clock.h"

#define HF_LOG "net"
#define REFUSAL_LOG_NS (60ull * 1000000000ull)

struct fwd {
    struct netback_hostfwd r;
    int lfd;
    uint64_t refused_logged_ns;
};

struct hconn {
    struct net_hostfwd *h;
    const struct fwd *f;
    int hfd, gfd;               /* host socket, lwIP socket */
    pthread_t thread;
    bool used;
};

struct net_hostfwd {
    struct netback_port *port;
    struct netif nif;
    bool nif_added;
    uint32_t ip;
    uint8_t mac[6];
    struct fwd fwd[NETBACK_FWDS_MAX];
    unsigned n_fwd;
    int wake;                   /* eventfd: the listener thread stops */
    pthread_t listener;
    bool listening;
    pthread_mutex_t lock;       /* leaf: conns, active, stopping */
    pthread_cond_t idle;        /* active dropped */
    struct hconn conns[NET_HOSTFWD_CONNS];
    unsigned active;
    bool stopping;
    struct {
        _Atomic uint64_t accepted, connected, refused, over_limit, bytes_to_guest,
            bytes_to_host, no_pbuf;
    } st;
};

#define COUNT_N(f, n) atomic_fetch_add_explicit(&h->st.f, (uint64_t)(n), memory_order_relaxed)

static char *ip_str(uint32_t ip, char buf[16])
{
    snprintf(buf, 16, "%u.%u.%u.%u", ip >> 24, ip >> 16 & 255u, ip >> 8 & 255u, ip & 255u);
    return buf;
}

/* ---- lwIP: once per process --------------------------------------------------------- */

static pthread_once_t lwip_once = PTHREAD_ONCE_INIT;
static sem_t lwip_ready;

static void lwip_up(void *arg) { sem_post(arg); }

static void lwip_start(void)
{
    sem_init(&lwip_ready, 0, 0);
    tcpip_init(lwip_up, &lwip_ready);
    sem_wait(&lwip_ready);
    sem_destroy(&lwip_ready);
}

/* ---- the interface on the switch ---------------------------------------------------- */

static err_t link_out(struct netif *n, struct pbuf *p)
{
    struct net_hostfwd *h = n->state;
    uint8_t f[NETBACK_FRAME_MAX];
    if (p->tot_len > sizeof f)
        return ERR_IF;
    pbuf_copy_partial(p, f, p->tot_len, 0);
    netback_send(h->port, f, p->tot_len);      /* a drop here is a loss on the wire */
    return ERR_OK;
}

static err_t nif_init(struct netif *n)
{
    struct net_hostfwd *h = n->state;
    n->name[0] = 'h';
    n->name[1] = 'f';
    n->hwaddr_len = 6;
    memcpy(n->hwaddr, h->mac, 6);
    n->mtu = 1500;
    n->flags = NETIF_FLAG_BROADCAST | NETIF_FLAG_ETHARP | NETIF_FLAG_ETHERNET |
               NETIF_FLAG_LINK_UP;
    n->output = etharp_output;
    n->linkoutput = link_out;
    return ERR_OK;
}

/* The switch delivers a frame (under the port's delivery mutex). */
static void port_rx(void *ctx, const void *frame, size_t len)
{
    struct net_hostfwd *h = ctx;
    struct pbuf *p = pbuf_alloc(PBUF_RAW, (u16_t)len, PBUF_RAM);   /* not PBUF_POOL: see moatnet.h */
    if (!p) {
        COUNT_N(no_pbuf, 1);
        return;
    }
    pbuf_take(p, frame, (u16_t)len);
    LOCK_TCPIP_CORE();
    if (h->nif.input(p, &h->nif) != ERR_OK)
        pbuf_free(p);
    UNLOCK_TCPIP_CORE();
}

/* ---- connections --------------------------------------------------------------------- */

static int guest_connect(const struct fwd *f)
{
    int g = lwip_socket(AF_INET, SOCK_STREAM, 0);
    if (g < 0)
        return -1;
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(f->r.guest_port),
                             .sin_addr.s_addr = htonl(f->r.guest_ip) };
    int fl = lwip_fcntl(g, F_GETFL, 0);
    lwip_fcntl(g, F_SETFL, fl | O_NONBLOCK);
    int rc = lwip_connect(g, (struct sockaddr *)&a, sizeof a);
    if (rc != 0 && errno == EINPROGRESS) {
        struct pollfd p = { .fd = g, .events = POLLOUT };
        int soerr = ETIMEDOUT;
        socklen_t sl = sizeof soerr;
        if (lwip_poll(&p, 1, NET_HOSTFWD_CONNECT_MS) == 1)
            lwip_getsockopt(g, SOL_SOCKET, SO_ERROR, &soerr, &sl);
        rc = soerr ? -1 : 0;
    }
    if (rc != 0) {
        lwip_close(g);
        return -1;
    }
    lwip_fcntl(g, F_SETFL, fl);
    return g;
}

/* Guest to host, on its own thread. */
static void *to_host(void *arg)
{
    struct hconn *c = arg;
    struct net_hostfwd *h = c->h;
    char buf[16384];
    for (;;) {
        ssize_t n = lwip_recv(c->gfd, buf, sizeof buf, 0);
        if (n <= 0)
            break;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = send(c->hfd, buf + off, (size_t)(n - off), MSG_NOSIGNAL);
            if (w <= 0)
                goto out;
            off += w;
        }
        COUNT_N(bytes_to_host, n);
    }
out:
    shutdown(c->hfd, SHUT_WR);
    return NULL;
}

static void *conn_main(void *arg)
{
    struct hconn *c = arg;
    struct net_hostfwd *h = c->h;
    int g = guest_connect(c->f);
    pthread_mutex_lock(&h->lock);
    if (g >= 0 && h->stopping) {        /* stop's shutdown pass missed it */
        lwip_close(g);
        g = -1;
    }
    c->gfd = g;
    pthread_mutex_unlock(&h->lock);
    if (c->gfd < 0) {
        COUNT_N(refused, 1);
        uint64_t now = clock_mono_ns();
        pthread_mutex_lock(&h->lock);
        struct fwd *f = (struct fwd *)c->f;
        bool say = now - f->refused_logged_ns >= REFUSAL_LOG_NS || !f->refused_logged_ns;
        if (say)
            f->refused_logged_ns = now;
        pthread_mutex_unlock(&h->lock);
        char a[16], b[16];
        if (say)
            log_error(HF_LOG, "hostfwd %s:%u -> %s:%u: the guest refused the connection or did "
                      "not answer in %d ms (is the app listening? this message at most once a "
                      "minute)", ip_str(c->f->r.host_ip, a), c->f->r.host_port,
                      ip_str(c->f->r.guest_ip, b), c->f->r.guest_port, NET_HOSTFWD_CONNECT_MS);
    } else {
        COUNT_N(connected, 1);
        pthread_t back;
        bool two = pthread_create(&back, NULL, to_host, c) == 0;
        char buf[16384];
        for (;;) {
            ssize_t n = recv(c->hfd, buf, sizeof buf, 0);
            if (n <= 0)
                break;
            bool ok = true;
            for (ssize_t off = 0; ok && off < n;) {
                ssize_t w = lwip_send(c->gfd, buf + off, (size_t)(n - off), 0);
                ok = w > 0;
                off += ok ? w : 0;
            }
            if (!ok)
                break;
            COUNT_N(bytes_to_guest, n);
        }
        lwip_shutdown(c->gfd, SHUT_WR);
        if (two)
            pthread_join(back, NULL);
        lwip_close(c->gfd);
    }
    close(c->hfd);
    pthread_mutex_lock(&h->lock);
    c->used = false;
    h->active--;
    pthread_cond_broadcast(&h->idle);
    pthread_mutex_unlock(&h->lock);
    return NULL;
}

static void accept_one(struct net_hostfwd *h, const struct fwd *f)
{
    int fd = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return;
    COUNT_N(accepted, 1);
    pthread_mutex_lock(&h->lock);
    struct hconn *c = NULL;
    for (unsigned i = 0; i < NET_HOSTFWD_CONNS && !c && !h->stopping; i++)
        if (!h->conns[i].used)
            c = &h->conns[i];
    if (c) {
        *c = (struct hconn){ .h = h, .f = f, .hfd = fd, .gfd = -1, .used = true };
        h->active++;
    }
    pthread_mutex_unlock(&h->lock);
    if (!c) {
        COUNT_N(over_limit, 1);
        close(fd);
        return;
    }
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&c->thread, &at, conn_main, c) != 0) {
        close(fd);
        pthread_mutex_lock(&h->lock);
        c->used = false;
        h->active--;
        pthread_cond_broadcast(&h->idle);
        pthread_mutex_unlock(&h->lock);
    }
    pthread_attr_destroy(&at);
}

static void *listener_main(void *arg)
{
    struct net_hostfwd *h = arg;
    struct pollfd p[NETBACK_FWDS_MAX + 1];
    for (;;) {
        for (unsigned i = 0; i < h->n_fwd; i++)
            p[i] = (struct pollfd){ .fd = h->fwd[i].lfd, .events = POLLIN };
        p[h->n_fwd] = (struct pollfd){ .fd = h->wake, .events = POLLIN };
        if (poll(p, h->n_fwd + 1, -1) < 0 && errno != EINTR)
            break;
        if (p[h->n_fwd].revents)
            break;
        for (unsigned i = 0; i < h->n_fwd; i++)
            if (p[i].revents & POLLIN)
                accept_one(h, &h->fwd[i]);
    }
    return NULL;
}

/* ---- start and stop ------------------------------------------------------------------- */

static int listen_on(const struct netback_hostfwd *r, char *err, size_t errlen)
{
    char a[16];
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(r->host_port),
                              .sin_addr.s_addr = htonl(r->host_ip) };
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
        bind(fd, (struct sockaddr *)&sa, sizeof sa) || listen(fd, 64)) {
        snprintf(err, errlen, "hostfwd: cannot listen on %s:%u: %s (choose another host port)",
                 ip_str(r->host_ip, a), r->host_port, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

struct net_hostfwd *net_hostfwd_start(struct netback *nb, uint32_t net, uint32_t mask,
                                      const struct netback_hostfwd *rules, unsigned n,
                                      uint32_t first_lease, char *err, size_t errlen)
{
    struct net_hostfwd *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "hostfwd: out of memory");
        return NULL;
    }
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->idle, NULL);
    h->wake = -1;
    h->ip = net + NET_HOSTFWD_HOST_OFFSET;
    net_gateway_mac_of(h->ip, h->mac);
    for (unsigned i = 0; i < n && i < NETBACK_FWDS_MAX; i++) {
        h->fwd[i].r = rules[i];
        if (!h->fwd[i].r.guest_ip)
            h->fwd[i].r.guest_ip = first_lease;
        h->fwd[i].lfd = listen_on(&rules[i], err, errlen);
        h->n_fwd = i + 1;
        if (h->fwd[i].lfd < 0)
            goto fail;
    }
    pthread_once(&lwip_once, lwip_start);
    ip4_addr_t ip, nm, gw;
    ip4_addr_set_u32(&ip, htonl(h->ip));
    ip4_addr_set_u32(&nm, htonl(mask));
    ip4_addr_set_zero(&gw);
    h->port = netback_port_add(nb, "hostfwd", h->mac, port_rx, h, err, errlen);
    if (!h->port)
        goto fail;
    LOCK_TCPIP_CORE();
    h->nif_added = netif_add(&h->nif, &ip, &nm, &gw, h, nif_init, ethernet_input) != NULL;
    if (h->nif_added)
        netif_set_up(&h->nif);
    UNLOCK_TCPIP_CORE();
    if (!h->nif_added) {
        snprintf(err, errlen, "hostfwd: lwIP refused the interface");
        goto fail;
    }
    h->wake = eventfd(0, EFD_CLOEXEC);
    if (h->wake < 0 || pthread_create(&h->listener, NULL, listener_main, h) != 0) {
        snprintf(err, errlen, "hostfwd: cannot start the listener thread");
        goto fail;
    }
    h->listening = true;
    for (unsigned i = 0; i < h->n_fwd; i++) {
        char a[16], b[16], c[16];
        log_info(HF_LOG, "hostfwd tcp %s:%u -> %s:%u (from %s)", ip_str(h->fwd[i].r.host_ip, a),
                 h->fwd[i].r.host_port, ip_str(h->fwd[i].r.guest_ip, b), h->fwd[i].r.guest_port,
                 ip_str(h->ip, c));
    }
    return h;
fail:
    net_hostfwd_stop(h);
    return NULL;
}

void net_hostfwd_stop(struct net_hostfwd *h)
{
    if (!h)
        return;
    if (h->listening) {
        uint64_t one = 1;
        if (write(h->wake, &one, sizeof one) < 0)
            log_error(HF_LOG, "hostfwd: cannot wake the listener: %s", strerror(errno));
        pthread_join(h->listener, NULL);
    }
    for (unsigned i = 0; i < h->n_fwd; i++)
        if (h->fwd[i].lfd >= 0)
            close(h->fwd[i].lfd);
    /* Unblock every connection's threads, then wait for them to finish. */
    pthread_mutex_lock(&h->lock);
    h->stopping = true;
    for (unsigned i = 0; i < NET_HOSTFWD_CONNS; i++)
        if (h->conns[i].used) {
            shutdown(h->conns[i].hfd, SHUT_RDWR);
            if (h->conns[i].gfd >= 0)
                lwip_shutdown(h->conns[i].gfd, SHUT_RDWR);
        }
    while (h->active)
        pthread_cond_wait(&h->idle, &h->lock);
    pthread_mutex_unlock(&h->lock);
    netback_port_remove(h->port);
    if (h->nif_added) {
        LOCK_TCPIP_CORE();
        netif_remove(&h->nif);
        UNLOCK_TCPIP_CORE();
    }
    if (h->wake >= 0)
        close(h->wake);
    pthread_cond_destroy(&h->idle);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

void net_hostfwd_counters(const struct net_hostfwd *h, struct net_hostfwd_counters *out)
{
    struct net_hostfwd *m = (struct net_hostfwd *)h;
#define LOAD(f) out->f = atomic_load_explicit(&m->st.f, memory_order_relaxed)
    LOAD(accepted);
    LOAD(connected);
    LOAD(refused);
    LOAD(over_limit);
    LOAD(bytes_to_guest);
    LOAD(bytes_to_host);
    LOAD(no_pbuf);
#undef LOAD
}
