/* The control socket (contract in control.h). Over 600 lines: one job,
 * the protocol's every request type, with the framing, the per-client
 * output queue and the event fan-out it needs. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include "control.h"
#include "log.h"
#include "moat/layout.h"
#include "supervisor.h"

/* ---- socket setup ------------------------------------------------------------ */

static bool make_parent_dir(const char *path, char *err, size_t errlen)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return true;
    *slash = '\0';
    struct stat st;
    if (stat(dir, &st) == 0)
        return true;
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s for the control socket: %s", dir, strerror(errno));
        return false;
    }
    return true;
}

/* Is something listening at path? (A dead moat leaves a stale socket.) */
static bool socket_alive(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    bool alive = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return alive;
}

static void *control_thread(void *arg);

bool control_start(struct control *c, struct supervisor *sup, const char *path,
                   char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    c->sup = sup;
    c->listen_fd = c->stop_fd = -1;
    for (uint32_t i = 0; i < CONTROL_CLIENTS_MAX; i++)
        c->cl[i].fd = -1;
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof a.sun_path) {
        snprintf(err, errlen, "control socket path %s is longer than %zu bytes; choose a shorter --control",
                 path, sizeof a.sun_path - 1);
        return false;
    }
    snprintf(c->path, sizeof c->path, "%s", path);
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    if (!make_parent_dir(path, err, errlen))
        return false;
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(err, errlen, "%s exists and is not a socket; remove it or choose another --control",
                     path);
            return false;
        }
        if (socket_alive(path)) {
            snprintf(err, errlen, "another moat is serving %s; stop it or choose another --control",
                     path);
            return false;
        }
        unlink(path);
    }
    c->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    mode_t old = umask(0077);
    bool bound = c->listen_fd >= 0 && bind(c->listen_fd, (struct sockaddr *)&a, sizeof a) == 0;
    umask(old);
    if (!bound || listen(c->listen_fd, 16) < 0) {
        snprintf(err, errlen, "cannot serve the control socket %s: %s", path, strerror(errno));
        if (c->listen_fd >= 0)
            close(c->listen_fd);
        return false;
    }
    c->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    int rc = c->stop_fd < 0 ? errno : pthread_create(&c->thread, NULL, control_thread, c);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the control thread: %s", strerror(rc));
        close(c->listen_fd);
        unlink(path);
        if (c->stop_fd >= 0)
            close(c->stop_fd);
        return false;
    }
    c->running = true;
    log_info(NULL, "control socket %s (moatctl --socket %s status)", path, path);
    return true;
}

void control_stop(struct control *c)
{
    if (!c->running)
        return;
    uint64_t one = 1;
    if (write(c->stop_fd, &one, sizeof one) < 0)
        log_error(NULL, "control: cannot signal the control thread: %s", strerror(errno));
    pthread_join(c->thread, NULL);
    c->running = false;
    close(c->stop_fd);
    close(c->listen_fd);
    unlink(c->path);
}

/* ---- messages ------------------------------------------------------------------ */

/* Queue a message the socket could not take (with duplicates of its fds). */
static bool queue_out(struct control_client *cl, const struct msghdr *m, size_t len,
                      const int *fds, unsigned n_fds)
{
    if (cl->out_n >= CONTROL_OUTQ_MAX) {
        cl->doomed = "it does not read what moat sends (1024 messages waiting)";
        return false;
    }
    struct control_out *o = malloc(sizeof *o + len);
    if (!o) {
        cl->doomed = "out of memory for its messages";
        return false;
    }
    o->next = NULL;
    o->len = (uint32_t)len;
    o->n_fds = 0;
    size_t at = 0;
    for (size_t i = 0; i < m->msg_iovlen; i++) {
        memcpy(o->bytes + at, m->msg_iov[i].iov_base, m->msg_iov[i].iov_len);
        at += m->msg_iov[i].iov_len;
    }
    for (unsigned i = 0; i < n_fds; i++) {
        int d = fcntl(fds[i], F_DUPFD_CLOEXEC, 0);
        if (d < 0) {
            for (unsigned k = 0; k < o->n_fds; k++)
                close(o->fds[k]);
            free(o);
            cl->doomed = "out of descriptors for its messages";
            return false;
        }
        o->fds[o->n_fds++] = d;
    }
    if (cl->out_tail)
        cl->out_tail->next = o;
    else
        cl->out_head = o;
    cl->out_tail = o;
    cl->out_n++;
    cl->out_queued++;
    return true;
}

/* sendmsg of len bytes with fds, never blocking: 1 sent, 0 no room, -1 error. */
static int send_now(int fd, struct msghdr *m, size_t len, const int *fds, unsigned n_fds)
{
    union { struct cmsghdr align; char buf[CMSG_SPACE(3 * sizeof(int))]; } cbuf;
    if (n_fds) {
        memset(&cbuf, 0, sizeof cbuf);
        m->msg_control = cbuf.buf;
        m->msg_controllen = CMSG_SPACE(n_fds * sizeof(int));
        struct cmsghdr *cm = CMSG_FIRSTHDR(m);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(n_fds * sizeof(int));
        memcpy(CMSG_DATA(cm), fds, n_fds * sizeof(int));
    }
    ssize_t n;
    do {
        n = sendmsg(fd, m, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    m->msg_control = NULL;
    m->msg_controllen = 0;
    if (n == (ssize_t)len)
        return 1;
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
}

/* Send a reply or an event, or queue it behind the ones still waiting:
 * moat never blocks on a client, and never loses what it owes one. False
 * when the client is gone or doomed (the control loop closes it). */
static bool send_msg(struct control_client *cl, uint16_t type, uint32_t seq, int status,
                     const void *payload, uint32_t len, const int *fds, unsigned n_fds)
{
    struct moat_msg_hdr h = { .magic = MOAT_CTL_MAGIC, .type = type, .seq = seq,
                              .status = status, .len = len };
    struct iovec iov[2] = { { &h, sizeof h }, { (void *)payload, len } };
    struct msghdr m = { .msg_iov = iov, .msg_iovlen = len ? 2 : 1 };
    if (cl->doomed)
        return false;
    if (!cl->out_head) {
        int r = send_now(cl->fd, &m, sizeof h + len, fds, n_fds);
        if (r != 0)
            return r > 0;
    }
    return queue_out(cl, &m, sizeof h + len, fds, n_fds);
}

/* Send what waits, in order, while the socket takes it. */
static void flush_out(struct control_client *cl)
{
    while (cl->out_head && !cl->doomed) {
        struct control_out *o = cl->out_head;
        struct iovec iov = { o->bytes, o->len };
        struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
        int r = send_now(cl->fd, &m, o->len, o->fds, o->n_fds);
        if (r == 0)
            return;
        if (r < 0) {
            cl->doomed = "its socket failed";
            return;
        }
        cl->out_head = o->next;
        if (!cl->out_head)
            cl->out_tail = NULL;
        cl->out_n--;
        for (unsigned k = 0; k < o->n_fds; k++)
            close(o->fds[k]);
        free(o);
    }
}

static void free_out(struct control_client *cl)
{
    while (cl->out_head) {
        struct control_out *o = cl->out_head;
        cl->out_head = o->next;
        for (unsigned k = 0; k < o->n_fds; k++)
            close(o->fds[k]);
        free(o);
    }
    cl->out_tail = NULL;
    cl->out_n = 0;
}

static bool reply(struct control_client *cl, const struct moat_msg_hdr *req, int status,
                  const void *payload, uint32_t len)
{
    if (status < 0)
        cl->refused++;
    return send_msg(cl, req->type, req->seq, status, status < 0 ? NULL : payload,
                    status < 0 ? 0 : len, NULL, 0);
}

/* A fixed-size string field from the client: must hold a NUL. */
static bool str_ok(const char *s, size_t n) { return memchr(s, '\0', n) != NULL; }

static struct domain *find_domain(struct supervisor *sup, const char *name)
{
    for (size_t i = 0; i < sup->n_domains; i++)
        if (strcmp(sup->domains[i]->cfg.name, name) == 0)
            return sup->domains[i];
    return NULL;
}

static void describe_domain(struct supervisor *sup, struct domain *d, uint64_t now,
                            struct moat_domain_status *o)
{
    memset(o, 0, sizeof *o);
    snprintf(o->name, sizeof o->name, "%s", d->cfg.name);
    o->id = d->id;
    o->state = d->state;
    snprintf(o->state_name, sizeof o->state_name, "%s",
             d->restarting ? "restarting" : domain_state_name(d->state));
    bool live = d->state == DOMAIN_BOOTING || d->state == DOMAIN_READY;
    o->uptime_ns = d->t_start_ns ? (live ? now : d->t_end_ns) - d->t_start_ns : 0;
    o->heartbeat = live && d->vm_live ? *(volatile uint64_t *)(d->vm.ram + MOAT_GPA_PLATFORM_PAGE +
                                                              offsetof(struct moat_platform_page,
                                                                       heartbeat)) : 0;
    o->incarnation = d->incarnation;
    o->sessions = capsvc_domain_sessions(&sup->caps, d);
    if (d->state == DOMAIN_CRASHED) {
        snprintf(o->crash_cause, sizeof o->crash_cause, "%s", crash_cause_name(d->crash.cause));
        snprintf(o->crash_detail, sizeof o->crash_detail, "%.159s", d->crash.detail);
    }
    if (d->breaker_open)
        snprintf(o->state_name, sizeof o->state_name, "breaker open");
    snprintf(o->restart_policy, sizeof o->restart_policy, "%s",
             restart_policy_name(domain_restart_policy(d)));
    o->restarts = (uint32_t)d->restarts;
    o->auto_restarts = (uint32_t)d->auto_restarts;
    o->budget_used = restart_budget_used(&d->budget, now);
    o->budget_max = d->budget.max;
    o->budget_window_ms = d->budget.window_ms;
    o->breaker_open = d->breaker_open;
    snprintf(o->breaker_reason, sizeof o->breaker_reason, "%s", d->breaker_reason);
    uint32_t kept = d->n_causes < DOMAIN_CAUSES ? d->n_causes : DOMAIN_CAUSES;
    for (uint32_t i = 0; i < kept && i < MOAT_DOMAIN_ENDS; i++) {
        const struct domain_cause *c = &d->causes[(d->n_causes - 1 - i) % DOMAIN_CAUSES];
        struct moat_domain_end *e = &o->ends[o->n_ends++];
        e->ago_ns = now > c->t_ns ? now - c->t_ns : 0;
        e->incarnation = c->incarnation;
        e->crashed = c->state == DOMAIN_CRASHED;
        e->exit_code = c->exit_code;
        if (e->crashed) {
            snprintf(e->cause, sizeof e->cause, "%s", crash_cause_name(c->crash.cause));
            snprintf(e->detail, sizeof e->detail, "%.159s", c->crash.detail);
        }
    }
}

static void domain_stats_of(struct supervisor *sup, struct domain *d, struct moat_domain_stats *o)
{
    memset(o, 0, sizeof *o);
    snprintf(o->name, sizeof o->name, "%s", d->cfg.name);
    o->exits_io = DSTAT_GET(d, exits_io);
    o->exits_mmio = DSTAT_GET(d, exits_mmio);
    o->exits_intr = DSTAT_GET(d, exits_intr);
    o->msi_sent = DSTAT_GET(d, msi_sent);
    o->platform_refused = DSTAT_GET(d, platform_refused);
    o->pci_refused = DSTAT_GET(d, pci_refused);
    o->dma_refused = DSTAT_GET(d, dma_refused);
    o->cfg_refused = PCI_STAT(&d->pci, cfg_refused);
    o->cfg_bad_access = PCI_STAT(&d->pci, cfg_bad_access);
    o->msix_bad_access = PCI_STAT(&d->pci, msix_bad_access);
    o->msi_bad_message = PCI_STAT(&d->pci, msi_bad_message);
    o->bar_decode_off = PCI_STAT(&d->pci, bar_decode_off);
    o->dma_master_off = PCI_STAT(&d->pci, dma_master_off);
    o->bad_doorbells = DSTAT_GET(d, bad_doorbells);
    o->bad_commands = DSTAT_GET(d, bad_commands);
    o->device_fatal = DSTAT_GET(d, device_fatal);
    struct moat_audit_sum sum[MOAT_AUDIT_SUM_MAX];
    uint32_t ns = audit_summary(&sup->audit, sum, MOAT_AUDIT_SUM_MAX);
    for (uint32_t i = 0; i < ns; i++)
        if (strcmp(sum[i].domain, d->cfg.name) == 0) {
            o->audit_records = sum[i].written;
            o->audit_dropped = sum[i].dropped;
        }
    struct broker_account acct = broker_account(&sup->broker, d->id);
    o->dma_bytes = acct.bytes;
    o->dma_windows = acct.windows;
    o->sessions_open = capsvc_domain_sessions(&sup->caps, d);
    o->sessions_total = DSTAT_GET(d, sessions_total);
    o->client_reports = DSTAT_GET(d, client_reports);
    o->restarts = d->restarts;
}

static void handle_control(struct control *c, struct control_client *cl,
                           const struct moat_msg_hdr *h, const struct moat_ctl_req *q)
{
    struct supervisor *sup = c->sup;
    bool admin_op = h->type == MOAT_MSG_RESTART || h->type == MOAT_MSG_STOP ||
                    h->type == MOAT_MSG_INJECT;
    int rc = capsvc_check(&sup->caps, cl->id, q->handle,
                          MOAT_RIGHT_READ | (admin_op ? MOAT_RIGHT_ADMIN : 0), MOAT_CAP_CONTROL);
    if (rc < 0) {
        reply(cl, h, rc, NULL, 0);
        return;
    }
    if (h->type == MOAT_MSG_DOMAINS) {
        _Static_assert(sizeof(struct moat_domains_reply) +
                       MOAT_DOMAINS_MAX * sizeof(struct moat_domain_status) <= MOAT_CTL_MSG_MAX,
                       "every domain's status fits one reply");
        static union {
            struct moat_domains_reply r;
            char buf[sizeof(struct moat_domains_reply) + MOAT_DOMAINS_MAX * sizeof(struct moat_domain_status)];
        } out;
        memset(&out, 0, sizeof out);
        uint64_t now = clock_mono_ns();
        pthread_mutex_lock(&sup->lock);
        out.r.n = (uint32_t)sup->n_domains;
        for (size_t i = 0; i < sup->n_domains; i++)
            describe_domain(sup, sup->domains[i], now, &out.r.dom[i]);
        pthread_mutex_unlock(&sup->lock);
        reply(cl, h, 0, &out, (uint32_t)(sizeof out.r + out.r.n * sizeof out.r.dom[0]));
        return;
    }
    if (h->type == MOAT_MSG_AUDIT) {
        static union {
            struct moat_audit_reply r;
            char buf[sizeof(struct moat_audit_reply) + MOAT_AUDIT_MAX * sizeof(struct moat_audit_rec)];
        } out;
        uint32_t max = q->arg == 0 || q->arg > MOAT_AUDIT_MAX ? MOAT_AUDIT_MAX : q->arg;
        memset(&out, 0, sizeof out);
        if (!str_ok(q->name, sizeof q->name)) {
            reply(cl, h, -MOAT_EINVAL, NULL, 0);
            return;
        }
        out.r.n = audit_read(&sup->audit, q->name, out.r.rec, max);
        reply(cl, h, 0, &out, (uint32_t)(sizeof out.r + out.r.n * sizeof out.r.rec[0]));
        return;
    }
    if (h->type == MOAT_MSG_AUDIT_SUM) {
        static union {
            struct moat_audit_sum_reply r;
            char buf[sizeof(struct moat_audit_sum_reply) +
                     MOAT_AUDIT_SUM_MAX * sizeof(struct moat_audit_sum)];
        } out;
        _Static_assert(sizeof out <= MOAT_CTL_MSG_MAX, "every trail's counts fit one reply");
        memset(&out, 0, sizeof out);
        out.r.n = audit_summary(&sup->audit, out.r.sum, MOAT_AUDIT_SUM_MAX);
        reply(cl, h, 0, &out, (uint32_t)(sizeof out.r + out.r.n * sizeof out.r.sum[0]));
        return;
    }
    if (!str_ok(q->name, sizeof q->name)) {
        reply(cl, h, -MOAT_EINVAL, NULL, 0);
        return;
    }
    pthread_mutex_lock(&sup->lock);
    struct domain *d = find_domain(sup, q->name);
    if (!d) {
        pthread_mutex_unlock(&sup->lock);
        reply(cl, h, -MOAT_ENOENT, NULL, 0);
        return;
    }
    if (h->type == MOAT_MSG_STATS) {
        struct moat_domain_stats st;
        domain_stats_of(sup, d, &st);
        pthread_mutex_unlock(&sup->lock);
        reply(cl, h, 0, &st, sizeof st);
        return;
    }
    pthread_mutex_unlock(&sup->lock);
    char who[64];
    snprintf(who, sizeof who, "pid %u uid %u", cl->pid, cl->uid);
    char err[256] = "";
    switch (h->type) {
    case MOAT_MSG_RESTART:
        log_info(d->cfg.name, "restart requested by client %u (%s)", cl->id, who);
        audit_record(&sup->audit, d->id, MOAT_AUDIT_CONTROL, "restart by %s", who);
        rc = domain_restart(d, err, sizeof err) ? 0 : -MOAT_EIO;
        if (rc < 0)
            log_error(d->cfg.name, "restart failed: %s", err);
        break;
    case MOAT_MSG_STOP:
        log_info(d->cfg.name, "stop requested by client %u (%s)", cl->id, who);
        audit_record(&sup->audit, d->id, MOAT_AUDIT_CONTROL, "stop by %s", who);
        domain_request_stop(d);
        break;
    case MOAT_MSG_INJECT: {
        char why[200];
        rc = domain_inject(d, q->arg, who, why, sizeof why);
        if (rc == 0)
            audit_record(&sup->audit, d->id, MOAT_AUDIT_CONTROL, "fault '%s' injected by %s",
                         moat_fault_name(q->arg), who);
        else
            log_error(d->cfg.name, "fault injection by %s refused: %s", who, why);
        break;
    }
    default:
        rc = -MOAT_EINVAL;
        break;
    }
    reply(cl, h, rc, NULL, 0);
}

/* Payload size each request type must have. */
size_t control_request_len(uint16_t type)
{
    switch (type) {
    case MOAT_MSG_HELLO:         return sizeof(struct moat_hello_req);
    case MOAT_MSG_LIST_CAPS:     return 0;
    case MOAT_MSG_OPEN:          return sizeof(struct moat_open_req);
    case MOAT_MSG_CLOSE:         return sizeof(struct moat_close_req);
    case MOAT_MSG_OPEN_SESSION:  return sizeof(struct moat_session_req);
    case MOAT_MSG_CLOSE_SESSION: return sizeof(struct moat_session_close_req);
    case MOAT_MSG_REPORT:        return sizeof(struct moat_report_req);
    case MOAT_MSG_DOMAINS:
    case MOAT_MSG_STATS:
    case MOAT_MSG_AUDIT:
    case MOAT_MSG_AUDIT_SUM:
    case MOAT_MSG_RESTART:
    case MOAT_MSG_STOP:
    case MOAT_MSG_INJECT:        return sizeof(struct moat_ctl_req);
    default:                     return SIZE_MAX;
    }
}

static void handle_request(struct control *c, struct control_client *cl,
                           const struct moat_msg_hdr *h, const void *p)
{
    struct capsvc *cs = &c->sup->caps;
    cl->requests++;
    switch (h->type) {
    case MOAT_MSG_HELLO: {
        const struct moat_hello_req *q = p;
        struct moat_hello_reply r = { .version = MOAT_CTL_VERSION, .client_id = cl->id,
                                      .uid = cl->uid, .admin = cl->admin };
        reply(cl, h, q->version == MOAT_CTL_VERSION ? 0 : -MOAT_ENOTSUP, &r, sizeof r);
        return;
    }
    case MOAT_MSG_LIST_CAPS: {
        static union {
            struct moat_list_reply r;
            char buf[sizeof(struct moat_list_reply) + MOAT_LIST_MAX * sizeof(struct moat_cap_desc)];
        } out;
        memset(&out, 0, sizeof out);
        size_t n = capsvc_list(cs, out.r.cap, MOAT_LIST_MAX);
        out.r.n = (uint32_t)(n < MOAT_LIST_MAX ? n : MOAT_LIST_MAX);
        reply(cl, h, 0, &out, (uint32_t)(sizeof out.r + out.r.n * sizeof out.r.cap[0]));
        return;
    }
    case MOAT_MSG_OPEN: {
        const struct moat_open_req *q = p;
        struct moat_open_reply r;
        uint32_t allowed = MOAT_RIGHT_READ | MOAT_RIGHT_WRITE | (cl->admin ? MOAT_RIGHT_ADMIN : 0);
        int rc = str_ok(q->name, sizeof q->name)
                     ? capsvc_open(cs, cl->id, q->name, q->rights, allowed, &r) : -MOAT_EINVAL;
        reply(cl, h, rc, &r, sizeof r);
        return;
    }
    case MOAT_MSG_CLOSE: {
        const struct moat_close_req *q = p;
        reply(cl, h, capsvc_close(cs, cl->id, q->handle), NULL, 0);
        return;
    }
    case MOAT_MSG_OPEN_SESSION: {
        struct moat_session_reply r;
        int fds[3];
        int rc = capsvc_session_open(cs, cl->id, p, &r, fds);
        if (rc < 0) {
            reply(cl, h, rc, NULL, 0);
            return;
        }
        if (!send_msg(cl, h->type, h->seq, 0, &r, sizeof r, fds, 3))
            capsvc_session_close(cs, cl->id, r.session_id);     /* the client is gone */
        for (int i = 0; i < 3; i++)
            close(fds[i]);
        return;
    }
    case MOAT_MSG_CLOSE_SESSION: {
        const struct moat_session_close_req *q = p;
        reply(cl, h, capsvc_session_close(cs, cl->id, q->session_id), NULL, 0);
        return;
    }
    case MOAT_MSG_REPORT: {
        struct moat_report_req q;
        memcpy(&q, p, sizeof q);
        q.reason[sizeof q.reason - 1] = '\0';
        crash_sanitize(q.reason, sizeof q.reason);
        char who[64];
        snprintf(who, sizeof who, "client %u (pid %u uid %u)", cl->id, cl->pid, cl->uid);
        reply(cl, h, capsvc_report(cs, cl->id, who, q.session_id, q.reason), NULL, 0);
        return;
    }
    default:
        handle_control(c, cl, h, p);
        return;
    }
}

/* ---- connections ------------------------------------------------------------- */

static void client_close(struct control *c, struct control_client *cl, const char *why)
{
    capsvc_client_gone(&c->sup->caps, cl->id);
    log_info(NULL, "control: client %u (pid %u) disconnected: %s; %llu requests, %llu refused",
             cl->id, cl->pid, why, (unsigned long long)cl->requests,
             (unsigned long long)cl->refused);
    free_out(cl);
    close(cl->fd);
    cl->fd = -1;
}

static void client_accept(struct control *c)
{
    int fd = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0)
        return;
    struct control_client *cl = NULL;
    for (uint32_t i = 0; i < CONTROL_CLIENTS_MAX && !cl; i++)
        if (c->cl[i].fd < 0)
            cl = &c->cl[i];
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (!cl || getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
        log_error(NULL, "control: connection refused: %s",
                  cl ? "no peer credentials" : "too many clients (64)");
        close(fd);
        return;
    }
    *cl = (struct control_client){ .fd = fd, .id = ++c->next_client, .pid = (uint32_t)cred.pid,
                                   .uid = cred.uid, .gid = cred.gid,
                                   .admin = cred.uid == geteuid() || cred.uid == 0 };
    log_info(NULL, "control: client %u connected (pid %u, uid %u, gid %u%s)", cl->id, cl->pid,
             cl->uid, cl->gid, cl->admin ? ", admin" : "");
}

static void client_readable(struct control *c, struct control_client *cl)
{
    static union { struct moat_msg_hdr h; char buf[MOAT_CTL_MSG_MAX]; } in;
    union { struct cmsghdr align; char buf[CMSG_SPACE(16 * sizeof(int))]; } cbuf;
    struct iovec iov = { in.buf, sizeof in.buf };
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf.buf,
                        .msg_controllen = sizeof cbuf.buf };
    ssize_t n = recvmsg(cl->fd, &m, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        client_close(c, cl, n == 0 ? "closed" : strerror(errno));
        return;
    }
    /* Clients have no business sending descriptors: close them all. */
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm))
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
            for (size_t i = 0; i < (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
                int fd;
                memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof fd);
                close(fd);
            }
    if ((size_t)n < sizeof in.h || (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) ||
        in.h.magic != MOAT_CTL_MAGIC || in.h.len != (size_t)n - sizeof in.h ||
        in.h.seq == 0 || control_request_len(in.h.type) != in.h.len) {
        cl->refused++;
        log_error("control", "client %u sent a malformed message (%zd bytes, type %u); refused",
                  cl->id, n, (size_t)n >= sizeof in.h ? in.h.type : 0u);
        /* A reply needs the request's sequence number: without one it
         * would read as an event (seq 0), so such a client is dropped. */
        if ((size_t)n >= sizeof in.h && in.h.magic == MOAT_CTL_MAGIC && in.h.seq != 0)
            send_msg(cl, in.h.type, in.h.seq, -MOAT_EINVAL, NULL, 0, NULL, 0);
        else
            client_close(c, cl, "not speaking the moat control protocol");
        return;
    }
    handle_request(c, cl, &in.h, in.buf + sizeof in.h);
}

static void send_events(struct control *c)
{
    uint64_t v;
    if (read(c->sup->caps.wake_fd, &v, sizeof v) < 0 && errno != EAGAIN)
        return;
    struct capsvc_event ev[32];
    uint32_t n;
    while ((n = capsvc_take_events(&c->sup->caps, ev, 32)) > 0)
        for (uint32_t i = 0; i < n; i++)
            for (uint32_t k = 0; k < CONTROL_CLIENTS_MAX; k++)
                if (c->cl[k].fd >= 0 &&
                    (ev[i].client == CAPSVC_ALL_CLIENTS || c->cl[k].id == ev[i].client))
                    send_msg(&c->cl[k], MOAT_MSG_EVENT, 0, 0, &ev[i].msg, sizeof ev[i].msg,
                             NULL, 0);
}

static void *control_thread(void *arg)
{
    struct control *c = arg;
    struct pollfd pfd[3 + CONTROL_CLIENTS_MAX];
    struct control_client *who[CONTROL_CLIENTS_MAX];
    for (;;) {
        pfd[0] = (struct pollfd){ .fd = c->stop_fd, .events = POLLIN };
        pfd[1] = (struct pollfd){ .fd = c->listen_fd, .events = POLLIN };
        pfd[2] = (struct pollfd){ .fd = c->sup->caps.wake_fd, .events = POLLIN };
        nfds_t n = 3;
        for (uint32_t i = 0; i < CONTROL_CLIENTS_MAX; i++)
            if (c->cl[i].fd >= 0) {
                who[n - 3] = &c->cl[i];
                pfd[n++] = (struct pollfd){ .fd = c->cl[i].fd,
                                            .events = POLLIN | (c->cl[i].out_head ? POLLOUT : 0) };
            }
        if (poll(pfd, n, -1) < 0) {
            if (errno == EINTR)
                continue;
            log_error(NULL, "control: poll failed: %s; control socket closed", strerror(errno));
            break;
        }
        if (pfd[0].revents)
            break;
        if (pfd[2].revents)
            send_events(c);
        for (nfds_t i = 3; i < n; i++) {
            struct control_client *cl = who[i - 3];
            if (!pfd[i].revents || cl->fd != pfd[i].fd)
                continue;
            if (pfd[i].revents & POLLOUT)
                flush_out(cl);
            if (pfd[i].revents & ~POLLOUT)
                client_readable(c, cl);
        }
        for (uint32_t i = 0; i < CONTROL_CLIENTS_MAX; i++)
            if (c->cl[i].fd >= 0 && c->cl[i].doomed)
                client_close(c, &c->cl[i], c->cl[i].doomed);
        if (pfd[1].revents)
            client_accept(c);
    }
    for (uint32_t i = 0; i < CONTROL_CLIENTS_MAX; i++)
        if (c->cl[i].fd >= 0)
            client_close(c, &c->cl[i], "moat is stopping");
    return NULL;
}
