/* Host TAP port (contract in net_tap.h). */
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include "log.h"
#include "net_tap.h"
#include "netback.h"

#define TAP_LOG      "net"
#define TAP_READ_MAX 65536u     /* a tap read returns one frame, at most this */

struct net_tap {
    struct netback_port *port;
    char name[IFNAMSIZ];
    int fd;
    int wake;                   /* eventfd: the reader thread must stop */
    pthread_t reader;
    bool started;
    atomic_flag logged;         /* the first I/O error was logged */
    atomic_flag down_logged;    /* the first write to a down interface was */
    _Atomic uint64_t in, out, errors, down;
};

static void tap_error(struct net_tap *t, const char *what, int e)
{
    atomic_fetch_add_explicit(&t->errors, 1, memory_order_relaxed);
    if (!atomic_flag_test_and_set(&t->logged))
        log_error(TAP_LOG, "TAP %s: %s failed: %s; further errors are only counted (tap_errors)",
                  t->name, what, strerror(e));
}

int net_tap_open_fd(const char *ifname, char *err, size_t errlen)
{
    size_t n = strlen(ifname);
    if (n == 0 || n >= IFNAMSIZ) {
        snprintf(err, errlen, "TAP interface name '%s' must be 1..%d characters", ifname,
                 IFNAMSIZ - 1);
        return -1;
    }
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open /dev/net/tun for TAP interface %s: %s; load the tun "
                 "module and run moat as a user who may open the device (root or CAP_NET_ADMIN), "
                 "or drop --tap", ifname, strerror(errno));
        return -1;
    }
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
    memcpy(ifr.ifr_name, ifname, n);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        int e = errno;
        close(fd);
        snprintf(err, errlen, "cannot attach TAP interface %s (TUNSETIFF: %s): moat needs "
                 "CAP_NET_ADMIN to create it, or an existing persistent tap device owned by this "
                 "user; create one with `ip tuntap add dev %s mode tap user $USER` and "
                 "`ip link set %s up`", ifname, strerror(e), ifname, ifname);
        return -1;
    }
    return fd;
}

/* Switch -> host: one write per frame. A full queue drops the frame. */
static void tap_rx(void *ctx, const void *frame, size_t len)
{
    struct net_tap *t = ctx;
    ssize_t w = write(t->fd, frame, len);
    if (w == (ssize_t)len) {
        atomic_fetch_add_explicit(&t->out, 1, memory_order_relaxed);
    } else if (w < 0 && errno == EIO) {
        /* The interface is down (not up yet, or moved to a namespace and
         * not brought up there): a dropped frame, not a fault. */
        atomic_fetch_add_explicit(&t->down, 1, memory_order_relaxed);
        if (!atomic_flag_test_and_set(&t->down_logged))
            log_info(TAP_LOG, "TAP %s is down: frames for the host are dropped (counted as "
                     "tap_down) until `ip link set %s up`", t->name, t->name);
    } else {
        tap_error(t, "write", w < 0 ? errno : EIO);
    }
}

/* Host -> switch, until the wake eventfd fires. */
static void *tap_reader(void *arg)
{
    struct net_tap *t = arg;
    uint8_t *buf = malloc(TAP_READ_MAX);
    if (!buf) {
        tap_error(t, "allocating the read buffer", ENOMEM);
        return NULL;
    }
    for (;;) {
        struct pollfd pfd[2] = { { .fd = t->fd, .events = POLLIN }, { .fd = t->wake, .events = POLLIN } };
        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            tap_error(t, "poll", errno);
            break;
        }
        if (pfd[1].revents)
            break;
        if (pfd[0].revents & (POLLERR | POLLHUP | POLLNVAL)) {
            tap_error(t, "poll (device error; host frames are no longer read)", EIO);
            break;
        }
        if (!(pfd[0].revents & POLLIN))
            continue;
        ssize_t n = read(t->fd, buf, TAP_READ_MAX);
        if (n < 0) {
            if (errno != EAGAIN && errno != EINTR)
                tap_error(t, "read", errno);
            continue;
        }
        /* Counted before the switch delivers it (whoever receives it sees
         * the count); over-long or runt frames are refused and counted by
         * the switch. */
        atomic_fetch_add_explicit(&t->in, 1, memory_order_relaxed);
        (void)netback_send(t->port, buf, (size_t)n);
    }
    free(buf);
    return NULL;
}

struct net_tap *net_tap_open(struct netback *nb, const char *ifname, char *err, size_t errlen)
{
    struct net_tap *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, errlen, "TAP %s: out of memory", ifname);
        return NULL;
    }
    atomic_flag_clear(&t->logged);
    t->wake = -1;
    t->fd = net_tap_open_fd(ifname, err, errlen);
    if (t->fd < 0)
        goto fail;
    snprintf(t->name, sizeof t->name, "%s", ifname);
    t->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (t->wake < 0) {
        snprintf(err, errlen, "TAP %s: eventfd: %s", ifname, strerror(errno));
        goto fail;
    }
    t->port = netback_port_add(nb, "tap", NULL, tap_rx, t, err, errlen);
    if (!t->port)
        goto fail;
    /* The reader takes no signals: they belong to the thread that waits
     * for them (moat's signal thread), whatever mask our caller has. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int e = pthread_create(&t->reader, NULL, tap_reader, t);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e) {
        snprintf(err, errlen, "TAP %s: cannot start the reader thread: %s", ifname, strerror(e));
        goto fail;
    }
    t->started = true;      /* the switch's own log line names the interface */
    return t;
fail:
    net_tap_close(t);
    return NULL;
}

void net_tap_close(struct net_tap *t)
{
    if (!t)
        return;
    if (t->started) {
        uint64_t one = 1;
        if (write(t->wake, &one, sizeof one) != (ssize_t)sizeof one)
            log_error(TAP_LOG, "TAP %s: cannot wake the reader thread: %s", t->name,
                      strerror(errno));
        pthread_join(t->reader, NULL);
    }
    netback_port_remove(t->port);
    if (t->wake >= 0)
        close(t->wake);
    if (t->fd >= 0)
        close(t->fd);
    free(t);
}

void net_tap_counters(const struct net_tap *t, struct net_tap_counters *out)
{
    out->in = atomic_load_explicit(&t->in, memory_order_relaxed);
    out->out = atomic_load_explicit(&t->out, memory_order_relaxed);
    out->errors = atomic_load_explicit(&t->errors, memory_order_relaxed);
    out->down = atomic_load_explicit(&t->down, memory_order_relaxed);
}
