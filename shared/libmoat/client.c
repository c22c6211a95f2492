/* libmoat: the control connection, caps, Control calls, errors
 * (contract in moat/libmoat.h). */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include "libmoat_internal.h"

const char *moat_strerror(int err)
{
    static const char *const text[MOAT_ERR_MAX + 1] = {
        [MOAT_OK] = "success",
        [MOAT_EINVAL] = "invalid argument or malformed message",
        [MOAT_ENOENT] = "no such cap, domain or session",
        [MOAT_EPERM] = "not permitted: the handle lacks the right, or this user may not",
        [MOAT_ESTALE] = "stale: the serving domain was restarted or the cap revoked; reopen it",
        [MOAT_EBADCAP] = "not a handle of this connection",
        [MOAT_EDOWN] = "the serving domain is not running and is not restarting",
        [MOAT_ELIMIT] = "a per-client or per-domain limit was reached",
        [MOAT_EPROTO] = "the serving domain broke the session protocol (reported to moat)",
        [MOAT_EIO] = "the device reported an I/O error",
        [MOAT_ENOTSUP] = "the cap does not offer this operation",
        [MOAT_ECONN] = "cannot reach moat, or the connection to it is gone",
        [MOAT_ETIMEDOUT] = "timed out",
        [MOAT_ENOMEM] = "out of memory",
        [MOAT_EBUSY] = "too many requests outstanding",
        [MOAT_ERANGE] = "beyond the end of the device",
        [MOAT_EROFS] = "the device is read-only",
        [MOAT_ESYS] = "a system call failed",
        [MOAT_EFAILED] = "the serving domain crashed again and again and is held down (its "
                         "restart breaker is open); an operator must restart it "
                         "(moatctl restart DOMAIN)",
        [MOAT_ERESTARTING] = "the serving domain is restarting; it serves again shortly",
    };
    if (err < 0)
        err = -err;
    return err <= MOAT_ERR_MAX ? text[err] : "unknown moat error";
}

/* ---- messages ---------------------------------------------------------------- */

/* Sessions whose cap the domain named in ev serves. */
static void mark_domain(struct moat_client *c, const struct moat_event_msg *ev, uint32_t down)
{
    for (uint32_t i = 0; i < MOAT_CLIENT_SESSIONS_MAX; i++) {
        struct moat_session *s = c->sessions[i];
        if (s && s->cap && !strncmp(s->cap->desc.domain, ev->domain, sizeof ev->domain))
            s->domain_down = down;
    }
}

static void handle_event(struct moat_client *c, const struct moat_event_msg *ev)
{
    if (ev->event == MOAT_EVT_CAP_UP) {
        c->caps_up++;
        mark_domain(c, ev, 0);      /* it is back (an operator restarted it) */
        return;
    }
    if (ev->event == MOAT_EVT_DOMAIN_DOWN) {
        c->domains_down++;
        mark_domain(c, ev, ev->session_id == MOAT_DOWN_BREAKER ? MOAT_DOWN_BREAKER
                                                                : MOAT_DOWN_STAYS);
        return;
    }
    if (ev->event != MOAT_EVT_SESSION_REVOKED)
        return;
    for (uint32_t i = 0; i < MOAT_CLIENT_SESSIONS_MAX; i++)
        if (c->sessions[i] && c->sessions[i]->id == ev->session_id)
            moat__session_fail(c->sessions[i], -MOAT_ESTALE);
}

/* Receive one message (blocking when block). Returns its payload length,
 * 0 with *hdr.type == 0 when nothing was there, or -MOAT_E*. fds receives
 * up to n_fds descriptors (others are closed). */
static int recv_msg(struct moat_client *c, bool block, struct moat_msg_hdr *hdr, void *payload,
                    uint32_t max, int *fds, unsigned n_fds, unsigned *got_fds)
{
    static _Thread_local union { struct moat_msg_hdr h; char buf[MOAT_CTL_MSG_MAX]; } in;
    union { struct cmsghdr align; char buf[CMSG_SPACE(8 * sizeof(int))]; } cbuf;
    struct iovec iov = { in.buf, sizeof in.buf };
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf.buf,
                        .msg_controllen = sizeof cbuf.buf };
    hdr->type = 0;
    if (got_fds)
        *got_fds = 0;
    ssize_t n;
    do {
        n = recvmsg(c->fd, &m, MSG_CMSG_CLOEXEC | (block ? 0 : MSG_DONTWAIT));
    } while (n < 0 && errno == EINTR);
    if (n < 0 && !block && (errno == EAGAIN || errno == EWOULDBLOCK))
        return 0;
    if (n <= 0)
        return -MOAT_ECONN;
    unsigned nf = 0;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        for (size_t i = 0; i < (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof fd);
            if (nf < n_fds)
                fds[nf++] = fd;
            else
                close(fd);
        }
    }
    if (got_fds)
        *got_fds = nf;
    if ((size_t)n < sizeof in.h || in.h.magic != MOAT_CTL_MAGIC ||
        in.h.len != (size_t)n - sizeof in.h || (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
        for (unsigned i = 0; i < nf; i++)
            close(fds[i]);
        return -MOAT_EPROTO;
    }
    *hdr = in.h;
    if (in.h.type == MOAT_MSG_EVENT) {
        if (in.h.len >= sizeof(struct moat_event_msg)) {
            struct moat_event_msg ev;
            memcpy(&ev, in.buf + sizeof in.h, sizeof ev);
            ev.domain[sizeof ev.domain - 1] = ev.cap[sizeof ev.cap - 1] = '\0';
            handle_event(c, &ev);
        }
        return 0;
    }
    if (in.h.len > max) {
        for (unsigned i = 0; i < nf; i++)
            close(fds[i]);
        return -MOAT_EPROTO;
    }
    if (in.h.len)
        memcpy(payload, in.buf + sizeof in.h, in.h.len);
    return (int)in.h.len;
}

int moat__drain_events(struct moat_client *c)
{
    struct moat_msg_hdr h;
    for (;;) {
        int rc = recv_msg(c, false, &h, NULL, 0, NULL, 0, NULL);
        if (rc < 0)
            return rc;
        if (h.type == 0 || h.type == MOAT_MSG_EVENT) {
            if (h.type == 0)
                return 0;
            continue;
        }
        return -MOAT_EPROTO;    /* a reply nobody asked for */
    }
}

int moat__rpc(struct moat_client *c, uint16_t type, const void *req, uint32_t req_len,
              void *reply, uint32_t reply_max, uint32_t *reply_len, int *fds, unsigned n_fds)
{
    if (c->fd < 0)
        return -MOAT_ECONN;
    if (++c->seq == 0)
        c->seq = 1;
    struct moat_msg_hdr h = { .magic = MOAT_CTL_MAGIC, .type = type, .seq = c->seq,
                              .len = req_len };
    struct iovec iov[2] = { { &h, sizeof h }, { (void *)req, req_len } };
    struct msghdr m = { .msg_iov = iov, .msg_iovlen = req_len ? 2 : 1 };
    ssize_t n;
    do {
        n = sendmsg(c->fd, &m, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n != (ssize_t)(sizeof h + req_len))
        return -MOAT_ECONN;
    for (;;) {
        struct moat_msg_hdr rh;
        unsigned got = 0;
        int len = recv_msg(c, true, &rh, reply, reply_max, fds, n_fds, &got);
        if (len < 0)
            return len;
        if (rh.type == MOAT_MSG_EVENT || rh.type == 0)
            continue;
        if (rh.seq != c->seq || rh.type != type) {
            for (unsigned i = 0; i < got; i++)
                close(fds[i]);
            return -MOAT_EPROTO;
        }
        if (rh.status < 0 || rh.status > 0) {
            for (unsigned i = 0; i < got; i++)
                close(fds[i]);
            return rh.status < 0 && -rh.status <= MOAT_ERR_MAX ? rh.status : -MOAT_EPROTO;
        }
        if (got != n_fds) {
            for (unsigned i = 0; i < got; i++)
                close(fds[i]);
            return -MOAT_EPROTO;
        }
        if (reply_len)
            *reply_len = (uint32_t)len;
        else if ((uint32_t)len != reply_max)
            return -MOAT_EPROTO;
        return 0;
    }
}

/* ---- connection ---------------------------------------------------------------- */

int moat_connect(const char *path, struct moat_client **out)
{
    *out = NULL;
    if (!path)
        path = moat_default_socket();
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof a.sun_path)
        return -MOAT_EINVAL;
    struct moat_client *c = calloc(1, sizeof *c);
    if (!c)
        return -MOAT_ENOMEM;
    snprintf(c->path, sizeof c->path, "%s", path);
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    c->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&a, sizeof a) < 0) {
        if (c->fd >= 0)
            close(c->fd);
        free(c);
        return -MOAT_ECONN;
    }
    struct moat_hello_req q = { .version = MOAT_CTL_VERSION };
    struct moat_hello_reply r;
    int rc = moat__rpc(c, MOAT_MSG_HELLO, &q, sizeof q, &r, sizeof r, NULL, NULL, 0);
    if (rc < 0) {
        close(c->fd);
        free(c);
        return rc;
    }
    c->client_id = r.client_id;
    c->admin = r.admin != 0;
    *out = c;
    return 0;
}

void moat_disconnect(struct moat_client *c)
{
    if (!c)
        return;
    for (uint32_t i = 0; i < MOAT_CLIENT_SESSIONS_MAX; i++)
        if (c->sessions[i])
            moat_session_close(c->sessions[i]);
    if (c->fd >= 0)
        close(c->fd);   /* moat drops the connection's handles */
    for (uint32_t i = 0; i < MOAT_CLIENT_CAPS_MAX; i++)
        free(c->caps[i]);
    free(c);
}

int moat_client_fd(const struct moat_client *c) { return c->fd; }

/* ---- caps ------------------------------------------------------------------------ */

/* Copy a counted reply array (n entries of size each, after an 8-byte
 * header) into out; returns the count or -MOAT_E*. */
static int counted_reply(struct moat_client *c, uint16_t type, const void *req, uint32_t req_len,
                         size_t each, void *out, size_t max)
{
    static _Thread_local char buf[MOAT_CTL_MSG_MAX];
    uint32_t len;
    int rc = moat__rpc(c, type, req, req_len, buf, sizeof buf, &len, NULL, 0);
    if (rc < 0)
        return rc;
    uint32_t n;
    if (len < 8)
        return -MOAT_EPROTO;
    memcpy(&n, buf, sizeof n);
    if ((uint64_t)n * each != len - 8)
        return -MOAT_EPROTO;
    memcpy(out, buf + 8, (n < max ? n : max) * each);
    return (int)n;
}

int moat_list(struct moat_client *c, struct moat_cap_desc *out, size_t max)
{
    int n = counted_reply(c, MOAT_MSG_LIST_CAPS, NULL, 0, sizeof *out, out, max);
    for (int i = 0; i < n && (size_t)i < max; i++) {
        out[i].name[MOAT_NAME_LEN - 1] = '\0';
        out[i].domain[MOAT_NAME_LEN - 1] = '\0';
    }
    return n;
}

int moat_open(struct moat_client *c, const char *name, uint32_t rights, struct moat_cap **out)
{
    *out = NULL;
    struct moat_open_req q = { .rights = rights };
    if (!name || strlen(name) >= sizeof q.name)
        return -MOAT_EINVAL;
    snprintf(q.name, sizeof q.name, "%s", name);
    uint32_t slot = 0;
    while (slot < MOAT_CLIENT_CAPS_MAX && c->caps[slot])
        slot++;
    if (slot == MOAT_CLIENT_CAPS_MAX)
        return -MOAT_ELIMIT;
    struct moat_cap *cap = calloc(1, sizeof *cap);
    if (!cap)
        return -MOAT_ENOMEM;
    struct moat_open_reply r;
    int rc = moat__rpc(c, MOAT_MSG_OPEN, &q, sizeof q, &r, sizeof r, NULL, NULL, 0);
    if (rc < 0) {
        free(cap);
        return rc;
    }
    c->caps[slot] = cap;
    cap->c = c;
    cap->handle = r.handle;
    cap->rights = r.rights;
    cap->desc = r.cap;
    cap->desc.name[MOAT_NAME_LEN - 1] = cap->desc.domain[MOAT_NAME_LEN - 1] = '\0';
    *out = cap;
    return 0;
}

void moat_close(struct moat_cap *cap)
{
    if (!cap)
        return;
    struct moat_client *c = cap->c;
    struct moat_close_req q = { .handle = cap->handle };
    moat__rpc(c, MOAT_MSG_CLOSE, &q, sizeof q, NULL, 0, NULL, NULL, 0);
    for (uint32_t i = 0; i < MOAT_CLIENT_CAPS_MAX; i++)
        if (c->caps[i] == cap)
            c->caps[i] = NULL;
    free(cap);
}

const struct moat_cap_desc *moat_cap_desc(const struct moat_cap *cap) { return &cap->desc; }

int moat_blk_geometry(const struct moat_cap *cap, struct moat_blk_geometry *out)
{
    if (cap->desc.kind != MOAT_CAP_BLOCK)
        return -MOAT_EINVAL;
    *out = cap->desc.blk;
    return 0;
}

/* ---- Control ----------------------------------------------------------------------- */

static int ctl_req(struct moat_cap *ctl, const char *domain, uint32_t arg, struct moat_ctl_req *q)
{
    memset(q, 0, sizeof *q);
    q->handle = ctl->handle;
    q->arg = arg;
    if (domain) {
        if (strlen(domain) >= sizeof q->name)
            return -MOAT_EINVAL;
        snprintf(q->name, sizeof q->name, "%s", domain);
    }
    return 0;
}

int moat_domains(struct moat_cap *ctl, struct moat_domain_status *out, size_t max)
{
    struct moat_ctl_req q;
    ctl_req(ctl, NULL, 0, &q);
    return counted_reply(ctl->c, MOAT_MSG_DOMAINS, &q, sizeof q, sizeof *out, out, max);
}

int moat_domain_stats(struct moat_cap *ctl, const char *domain, struct moat_domain_stats *out)
{
    struct moat_ctl_req q;
    int rc = ctl_req(ctl, domain, 0, &q);
    return rc < 0 ? rc : moat__rpc(ctl->c, MOAT_MSG_STATS, &q, sizeof q, out, sizeof *out, NULL,
                                   NULL, 0);
}

int moat_audit_of(struct moat_cap *ctl, const char *domain, struct moat_audit_rec *out,
                  size_t max)
{
    struct moat_ctl_req q;
    int rc = ctl_req(ctl, domain, max > MOAT_AUDIT_MAX ? MOAT_AUDIT_MAX : (uint32_t)max, &q);
    return rc < 0 ? rc : counted_reply(ctl->c, MOAT_MSG_AUDIT, &q, sizeof q, sizeof *out, out, max);
}

int moat_audit(struct moat_cap *ctl, struct moat_audit_rec *out, size_t max)
{
    return moat_audit_of(ctl, NULL, out, max);
}

int moat_audit_summary(struct moat_cap *ctl, struct moat_audit_sum *out, size_t max)
{
    struct moat_ctl_req q;
    ctl_req(ctl, NULL, 0, &q);
    return counted_reply(ctl->c, MOAT_MSG_AUDIT_SUM, &q, sizeof q, sizeof *out, out, max);
}

static int ctl_action(struct moat_cap *ctl, uint16_t type, const char *domain, uint32_t arg)
{
    struct moat_ctl_req q;
    int rc = ctl_req(ctl, domain, arg, &q);
    return rc < 0 ? rc : moat__rpc(ctl->c, type, &q, sizeof q, NULL, 0, NULL, NULL, 0);
}

int moat_restart(struct moat_cap *ctl, const char *domain)
{
    return ctl_action(ctl, MOAT_MSG_RESTART, domain, 0);
}

int moat_stop(struct moat_cap *ctl, const char *domain)
{
    return ctl_action(ctl, MOAT_MSG_STOP, domain, 0);
}

int moat_inject(struct moat_cap *ctl, const char *domain, uint32_t fault)
{
    return ctl_action(ctl, MOAT_MSG_INJECT, domain, fault);
}

int moat__wait_caps(struct moat_client *c, uint64_t seen_up, uint64_t seen_down,
                    uint64_t deadline)
{
    while (c->caps_up == seen_up && c->domains_down == seen_down) {
        uint64_t t = moat__now_ns();
        if (t >= deadline)
            return -MOAT_ETIMEDOUT;
        struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
        int ms = (int)((deadline - t + 999999) / 1000000);
        int rc;
        if (poll(&pfd, 1, ms) > 0 && (rc = moat__drain_events(c)) < 0)
            return rc;
    }
    return 0;
}

int moat_open_ready(struct moat_client *c, const char *name, uint32_t rights, int timeout_ms,
                    struct moat_cap **out)
{
    uint64_t deadline = moat__now_ns() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms) * 1000000ull;
    for (;;) {
        uint64_t up = c->caps_up, down = c->domains_down;
        int rc = moat_open(c, name, rights, out);
        if (rc != -MOAT_ERESTARTING)
            return rc;
        rc = moat__wait_caps(c, up, down, deadline);
        if (rc == -MOAT_ETIMEDOUT)
            return -MOAT_ERESTARTING;
        if (rc < 0)
            return rc;
    }
}

int moat_open_wait(const char *path, const char *name, uint32_t rights, unsigned wait_s,
                   struct moat_client **c, struct moat_cap **cap)
{
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    *c = NULL;
    int rc;
    for (;;) {
        rc = *c ? 0 : moat_connect(path, c);
        if (rc == 0)
            rc = moat_open(*c, name, rights, cap);
        if (rc == 0)
            return 0;
        if (rc != -MOAT_ENOENT && rc != -MOAT_EDOWN && rc != -MOAT_ERESTARTING && *c) {
            moat_disconnect(*c);        /* moat went away: connect afresh */
            *c = NULL;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - t0.tv_sec >= (time_t)wait_s)
            break;
        /* Nothing to wait on before moat exists: a user tool retrying. */
        struct timespec pause = { 0, 100 * 1000000 };
        nanosleep(&pause, NULL);
    }
    if (*c)
        moat_disconnect(*c);
    *c = NULL;
    return rc;
}
