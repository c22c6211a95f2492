/* moat-nbd: export a moat BlockDevice cap to standard NBD clients. The
 * protocol is nbd_server.c; this file is libmoat, sockets and threads
 * (over 600 lines: options, listening, the per-connection backend).
 *
 * At start one moat connection checks the cap; each NBD client then gets
 * its own thread with its own moat connection, handle and session
 * (libmoat is not thread-safe, and a session's waits read its connection's
 * events), so threads share nothing of libmoat's. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include "moat-nbd/nbd_server.h"
#include "moat/libmoat.h"

#define RECOVER_MS    10000     /* wait for a restarted domain's cap */
#define CLIENTS_MAX   64u       /* NBD connections served at once */
#define SESSION_ENTRIES 128u    /* requests in flight per NBD connection */

static const char usage_text[] =
    "usage: moat-nbd [--socket PATH] --cap NAME (--unix PATH | --port N [--bind ADDR])\n"
    "                [--read-only] [--once] [--wait SECONDS]\n"
    "       moat-nbd --help\n"
    "\n"
    "Serve a moat BlockDevice capability as an NBD export, so standard NBD\n"
    "clients (qemu-img, qemu-io, qemu -drive, nbdinfo, nbd-client) can use it.\n"
    "The export is named after the cap; the default export (\"\") is the same one.\n"
    "\n"
    "  --socket PATH   moat's control socket (default: $MOAT_SOCKET, else\n"
    "                  $XDG_RUNTIME_DIR/moat.sock, else /tmp/moat-$UID/moat.sock)\n"
    "  --cap NAME      the BlockDevice cap to export, e.g. ram0.blk0\n"
    "  --unix PATH     listen on a Unix socket at PATH (a stale socket left\n"
    "                  there is replaced; it is removed on exit)\n"
    "  --port N        listen on TCP port N (10809 is NBD's registered port)\n"
    "  --bind ADDR     address to listen on with --port (default 127.0.0.1;\n"
    "                  NBD has no authentication: anyone who can connect can\n"
    "                  read and write the device)\n"
    "  --read-only     open the cap with READ rights only and export it\n"
    "                  read-only (writes fail with EPERM)\n"
    "  --once          serve one client and exit when it disconnects; the exit\n"
    "                  status says whether it ended cleanly\n"
    "  --wait SECONDS  wait up to SECONDS for moat's socket and the cap to\n"
    "                  come up (for starting beside moat; default 0: fail\n"
    "                  at once)\n"
    "  --help          print this text and exit\n"
    "\n"
    "Each client gets its own session with the serving domain, so its requests\n"
    "do not pass through moat. Up to 128 requests per client are in flight at\n"
    "once and are answered as they complete (out of order, as NBD allows);\n"
    "clients may open several connections to one export (multi-conn: a flush\n"
    "on any covers writes done on all). Requests of any size and alignment are\n"
    "accepted:\n"
    "large ones are split, unaligned ones use read-modify-write of the edge\n"
    "blocks. If the serving domain restarts, requests wait up to 10 s for it to\n"
    "come back and are submitted again to the new incarnation (the NBD client\n"
    "sees no error); if it crash-loops (breaker open) or stays down, they fail\n"
    "with EIO.\n"
    "\n"
    "Examples:\n"
    "  moat-nbd --cap ram0.blk0 --unix /tmp/ram0.sock &\n"
    "  qemu-img info 'nbd+unix:///ram0.blk0?socket=/tmp/ram0.sock'\n"
    "  qemu-io -f raw -c 'read -v 0 512' 'nbd+unix:///ram0.blk0?socket=/tmp/ram0.sock'\n"
    "  moat-nbd --cap ram0.blk0 --port 10809 --read-only &\n"
    "  nbdinfo nbd://127.0.0.1/ram0.blk0\n"
    "\n"
    "Events go to stderr, one line each, prefixed \"moat-nbd: \".\n"
    "Exit status: 0 when stopped by SIGINT/SIGTERM (or, with --once, when the\n"
    "client ended cleanly); 1 on an error; 2 on a usage error.\n";

struct options {
    const char *socket;         /* NULL = libmoat's default */
    const char *cap;
    const char *unix_path;
    const char *bind;
    int port;                   /* 0 = none */
    bool read_only;
    bool once;
    unsigned wait_s;
};

struct server {
    const struct options *o;
    const char *cap_name;
    struct moat_blk_geometry geo;
    bool read_only;
    char description[160];
    atomic_uint active;
    pthread_mutex_t edge_lock;  /* read-modify-write of edge blocks, all clients */
};

struct client {
    struct server *srv;
    int fd;
    unsigned id;
    char peer[96];
    struct moat_client *mc;     /* its own moat connection: libmoat is per-thread */
    struct moat_cap *cap;
    struct moat_session *s;
    int last_error;             /* said once until it changes */
    int rc;
};

/* ---- events ------------------------------------------------------------------ */

/* One line to stderr in a single write, so threads never interleave. */
__attribute__((format(printf, 1, 2)))
static void say(const char *fmt, ...)
{
    char line[512];
    int n = snprintf(line, sizeof line, "moat-nbd: ");
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

/* ---- the backend: libmoat's asynchronous block calls ------------------------------ */

/* A restart of the serving domain is absorbed by libmoat (the session
 * follows the cap to its new incarnation and submits again what had not
 * completed); it is only logged here. */
static void note_recovery(struct client *cl, const struct moat_session_stats *before)
{
    struct moat_session_stats after;
    moat_session_stats(cl->s, &after);
    if (after.recoveries != before->recoveries)
        say("client %u: %s restarted; the session moved to its new incarnation (%llu "
            "request(s) submitted again)", cl->id, cl->srv->cap_name,
            (unsigned long long)(after.resubmitted - before->resubmitted));
}

static int be_submit(void *ctx, const struct nbd_io *io)
{
    static const uint16_t op_of[] = {
        [NBD_IO_READ] = MOAT_BLK_READ, [NBD_IO_WRITE] = MOAT_BLK_WRITE,
        [NBD_IO_FLUSH] = MOAT_BLK_FLUSH, [NBD_IO_TRIM] = MOAT_BLK_DISCARD,
        [NBD_IO_ZEROES] = MOAT_BLK_WRITE_ZEROES,
    };
    struct client *cl = ctx;
    if (io->op >= sizeof op_of / sizeof op_of[0])
        return -MOAT_EINVAL;
    struct moat_blk_req r = { .op = op_of[io->op], .lba = io->lba, .blocks = io->blocks,
                              .buf = io->buf, .user_data = io->tag };
    int rc = moat_blk_submit(cl->s, &r, 1);
    if (rc == 0)
        return -MOAT_EBUSY;     /* ring or buffer full: the engine reaps first */
    if (rc < 0 && rc != -MOAT_EBUSY)
        cl->last_error = rc;
    return rc < 0 ? rc : 0;
}

static int be_reap(void *ctx, int fd, bool wait, struct nbd_done *out, size_t max)
{
    struct client *cl = ctx;
    struct moat_completion c[64];
    if (max > 64)
        max = 64;
    struct moat_session_stats before;
    moat_session_stats(cl->s, &before);
    int n = moat_poll(cl->s, c, max);
    if (n == 0 && wait)
        n = fd >= 0 ? moat_wait_fd(cl->s, fd, c, max, -1) : moat_wait(cl->s, c, max, -1);
    note_recovery(cl, &before);
    if (n < 0)
        return n;
    for (int i = 0; i < n; i++) {
        out[i] = (struct nbd_done){ .tag = c[i].user_data, .status = c[i].status };
        if ((c[i].status == -MOAT_EFAILED || c[i].status == -MOAT_EDOWN) &&
            c[i].status != cl->last_error) {
            say("client %u: %s: %s; requests fail with EIO until it is back", cl->id,
                cl->srv->cap_name, moat_strerror(c[i].status));
            cl->last_error = c[i].status;
        }
    }
    return n;
}

/* ---- one client ---------------------------------------------------------------- */

static double per(uint64_t a, uint64_t b) { return b ? (double)a / (double)b : 0.0; }

static void serve_client(struct client *cl)
{
    struct server *srv = cl->srv;
    say("client %u connected (%s)", cl->id, cl->peer);

    uint32_t rights = MOAT_RIGHT_READ | (srv->read_only ? 0 : MOAT_RIGHT_WRITE);
    int rc = moat_connect(srv->o->socket, &cl->mc);
    if (rc == 0)
        rc = moat_open_ready(cl->mc, srv->cap_name, rights, RECOVER_MS, &cl->cap);
    if (rc == 0)
        rc = moat_session_open(cl->cap, &(struct moat_session_params){
                                   .entries = SESSION_ENTRIES, .recover_ms = RECOVER_MS },
                               &cl->s);
    if (rc < 0) {
        if (cl->mc)
            moat_disconnect(cl->mc);
        cl->mc = NULL;
        say("client %u refused: cannot open a session on %s: %s%s", cl->id, srv->cap_name,
            moat_strerror(rc),
            rc == -MOAT_ELIMIT ? "; the domain serves a limited number of sessions at once, "
                                 "retry when another client has disconnected" :
            rc == -MOAT_EDOWN ? "; its domain is not running, restart it and retry" : "");
        cl->rc = rc;
        return;
    }
    uint32_t max_blocks = moat_session_max_blocks(cl->s);
    const struct moat_blk_geometry *g = &srv->geo;
    struct nbd_backend be = {
        .blocks = g->blocks,
        .block_size = g->block_size,
        .max_blocks = max_blocks,
        .read_only = srv->read_only,
        .can_flush = !srv->read_only && (g->flags & MOAT_BLK_F_FLUSH),
        .can_trim = !srv->read_only && (g->flags & MOAT_BLK_F_DISCARD),
        .can_zeroes = !srv->read_only && (g->flags & MOAT_BLK_F_WRITE_ZEROES),
        /* A moat flush makes every completed write durable, whichever
         * session made it (session_abi.h), so connections may share. */
        .multi_conn = true,
        .depth = SESSION_ENTRIES,
        .submit = be_submit,
        .reap = be_reap,
        .ctx = cl,
        .edge_lock = &srv->edge_lock,
        .description = srv->description,
    };
    struct nbd_stats st;
    char err[256];
    rc = nbd_serve_connection(cl->fd, srv->cap_name, &be, &st, err, sizeof err);

    moat_session_close(cl->s);
    moat_close(cl->cap);
    moat_disconnect(cl->mc);
    cl->s = NULL;
    cl->cap = NULL;
    cl->mc = NULL;

    uint64_t nreq = st.reads + st.writes + st.flushes + st.trims + st.zeroes + st.other;
    if (rc == 0)
        say("client %u done: %llu reads, %llu writes, %llu flushes, %llu trims, %llu write-zeroes; "
            "%llu bytes read, %llu bytes written; %llu errors; at most %llu in flight, %.2f "
            "replies per send, %.2f sleeps per request, %llu serialized", cl->id,
            (unsigned long long)st.reads, (unsigned long long)st.writes,
            (unsigned long long)st.flushes, (unsigned long long)st.trims,
            (unsigned long long)st.zeroes, (unsigned long long)st.bytes_read,
            (unsigned long long)st.bytes_written, (unsigned long long)st.errors,
            (unsigned long long)st.inflight_max, per(nreq, st.reply_sends),
            per(st.waits, nreq), (unsigned long long)st.serialized);
    else
        say("client %u dropped: %s (after %llu reads, %llu writes, %llu errors)", cl->id, err,
            (unsigned long long)st.reads, (unsigned long long)st.writes,
            (unsigned long long)st.errors);
    cl->rc = rc;
}

static void *client_thread(void *arg)
{
    struct client *cl = arg;
    serve_client(cl);
    close(cl->fd);
    atomic_fetch_sub(&cl->srv->active, 1);
    free(cl);
    return NULL;
}

/* ---- listening ------------------------------------------------------------------ */

static int listen_unix(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof sa.sun_path) {
        say("--unix %s: path is %zu bytes, sockets allow %zu; choose a shorter path", path,
            strlen(path), sizeof sa.sun_path - 1);
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        say("socket: %s", strerror(errno));
        return -1;
    }
    struct stat sb;
    if (lstat(path, &sb) == 0) {
        if (!S_ISSOCK(sb.st_mode)) {
            say("--unix %s: exists and is not a socket; choose another path", path);
            close(fd);
            return -1;
        }
        /* A socket someone still answers on is in use; else it is stale. */
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
            say("--unix %s: another server is listening there; stop it or choose another path",
                path);
            close(fd);
            return -1;
        }
        unlink(path);
    }
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 16) < 0) {
        say("cannot listen on unix:%s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static int listen_tcp(const char *addr, int port)
{
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
    struct addrinfo *ai = NULL;
    int gr = getaddrinfo(addr, ps, &hints, &ai);
    if (gr != 0) {
        say("--bind %s: %s; give a numeric address or a resolvable name", addr, gai_strerror(gr));
        return -1;
    }
    int fd = -1, saved = 0;
    for (struct addrinfo *p = ai; p && fd < 0; p = p->ai_next) {
        fd = socket(p->ai_family, p->ai_socktype | SOCK_CLOEXEC, p->ai_protocol);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, p->ai_addr, p->ai_addrlen) < 0 || listen(fd, 16) < 0) {
            saved = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(ai);
    if (fd < 0)
        say("cannot listen on %s port %d: %s%s", addr, port, strerror(saved),
            saved == EADDRINUSE ? "; another program uses the port, pick another --port" :
            saved == EACCES ? "; ports below 1024 need privileges, pick another --port" : "");
    return fd;
}

static void describe_peer(int fd, const struct sockaddr_storage *ss, socklen_t len, char *out,
                          size_t outlen)
{
    if (ss->ss_family == AF_UNIX) {
        snprintf(out, outlen, "unix socket");
        return;
    }
    char host[INET6_ADDRSTRLEN + 8], serv[16];
    if (getnameinfo((const struct sockaddr *)ss, len, host, sizeof host, serv, sizeof serv,
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        snprintf(out, outlen, "tcp peer");
        return;
    }
    snprintf(out, outlen, strchr(host, ':') ? "[%s]:%s" : "%s:%s", host, serv);
    /* Replies are small and latency-bound: do not let Nagle hold them. */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* ---- set-up ---------------------------------------------------------------------- */

__attribute__((format(printf, 1, 2)))
static int usage_error(const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    say("%s; see moat-nbd --help", msg);
    return 2;
}

/* Returns 0, or the exit status for a usage error (or -1 after --help). */
/* A whole decimal number in [lo, hi]. */
static bool decimal_in(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static int parse(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        { "socket", required_argument, NULL, 's' },
        { "cap", required_argument, NULL, 'c' },
        { "unix", required_argument, NULL, 'u' },
        { "port", required_argument, NULL, 'p' },
        { "bind", required_argument, NULL, 'b' },
        { "read-only", no_argument, NULL, 'r' },
        { "once", no_argument, NULL, '1' },
        { "wait", required_argument, NULL, 'w' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    memset(o, 0, sizeof *o);
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        switch (ch) {
        case 's': o->socket = optarg; break;
        case 'c': o->cap = optarg; break;
        case 'u': o->unix_path = optarg; break;
        case 'b': o->bind = optarg; break;
        case 'r': o->read_only = true; break;
        case '1': o->once = true; break;
        case 'h':
            fputs(usage_text, stdout);
            return -1;
        case 'p': {
            long v;
            if (!decimal_in(optarg, 1, 65535, &v))
                return usage_error("--port %s: want a TCP port number, 1..65535", optarg);
            o->port = (int)v;
            break;
        }
        case 'w': {
            long v;
            if (!decimal_in(optarg, 0, 86400, &v))
                return usage_error("--wait %s: want seconds, 0..86400", optarg);
            o->wait_s = (unsigned)v;
            break;
        }
        case ':':
            return usage_error("%s needs a value", argv[optind - 1]);
        default:
            return usage_error("unknown option %s", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return usage_error("unexpected argument %s", argv[optind]);
    if (!o->cap || !o->cap[0])
        return usage_error("--cap NAME is required (the BlockDevice cap to export, "
                           "e.g. ram0.blk0)");
    if (strlen(o->cap) >= MOAT_NAME_LEN)
        return usage_error("--cap %s: cap names are shorter than 48 bytes", o->cap);
    if (!o->unix_path == !o->port)
        return usage_error("give exactly one of --unix PATH or --port N");
    if (o->bind && !o->port)
        return usage_error("--bind goes with --port");
    if (!o->bind)
        o->bind = "127.0.0.1";
    return 0;
}

static void list_block_caps(struct moat_client *mc, char *out, size_t outlen)
{
    struct moat_cap_desc caps[MOAT_LIST_MAX];
    int n = moat_list(mc, caps, MOAT_LIST_MAX);
    size_t o = 0;
    out[0] = '\0';
    for (int i = 0; i < n && i < (int)MOAT_LIST_MAX; i++) {
        if (caps[i].kind != MOAT_CAP_BLOCK)
            continue;
        int w = snprintf(out + o, outlen - o, "%s%.*s", o ? ", " : "", (int)MOAT_NAME_LEN,
                         caps[i].name);
        if (w < 0 || (size_t)w >= outlen - o)
            break;
        o += (size_t)w;
    }
    if (o == 0)
        snprintf(out, outlen, n < 0 ? "(cannot list them: %s)" : "none", moat_strerror(n));
}

/* Open the cap; on failure say why and what to do. */
static int open_cap(struct moat_client *mc, const struct options *o, struct moat_cap **cap)
{
    uint32_t rights = MOAT_RIGHT_READ | (o->read_only ? 0 : MOAT_RIGHT_WRITE);
    int rc = moat_open(mc, o->cap, rights, cap);
    if (rc == 0)
        return 0;
    char caps[512];
    switch (-rc) {
    case MOAT_ENOENT:
        list_block_caps(mc, caps, sizeof caps);
        say("no cap called %s; block caps on this moat: %s", o->cap, caps);
        break;
    case MOAT_EPERM:
        if (o->read_only)
            say("moat refuses to open %s for reading: %s; it may belong to another user", o->cap,
                moat_strerror(rc));
        else
            say("moat refuses to open %s for writing: %s; add --read-only to export it read-only",
                o->cap, moat_strerror(rc));
        break;
    case MOAT_EDOWN:
        say("cap %s is down (its domain is not running); restart the domain and try again", o->cap);
        break;
    case MOAT_EFAILED:
        say("cap %s is down: %s", o->cap, moat_strerror(rc));
        break;
    default:
        say("cannot open cap %s: %s", o->cap, moat_strerror(rc));
        break;
    }
    return rc;
}

static bool geometry_ok(const struct moat_blk_geometry *g)
{
    return g->block_size >= MOAT_BLK_BLOCK_MIN && g->block_size <= MOAT_BLK_BLOCK_MAX &&
           !(g->block_size & (g->block_size - 1)) && g->blocks > 0 &&
           g->blocks <= UINT64_MAX / g->block_size;
}

static volatile sig_atomic_t stop_signal;
static void on_signal(int sig) { stop_signal = sig; }

int main(int argc, char **argv)
{
    struct options o;
    int prc = parse(argc, argv, &o);
    if (prc)
        return prc < 0 ? 0 : prc;

    struct moat_client *mc = NULL;
    int rc;
    if (o.wait_s) {
        /* Started beside moat: wait for its socket and the cap, then check
         * the cap again below on this connection. */
        struct moat_cap *early;
        uint32_t rights = MOAT_RIGHT_READ | (o.read_only ? 0 : MOAT_RIGHT_WRITE);
        rc = moat_open_wait(o.socket, o.cap, rights, o.wait_s, &mc, &early);
        if (rc == 0)
            moat_disconnect(mc);    /* closes early too */
        mc = NULL;
        if (rc < 0)
            say("waited %u s for moat and cap %s: %s", o.wait_s, o.cap, moat_strerror(rc));
    }
    rc = moat_connect(o.socket, &mc);
    if (rc < 0) {
        const char *path = o.socket ? o.socket : moat_default_socket();
        say("cannot reach moat at %s: %s; is moat running with --control %s?", path,
            moat_strerror(rc), path);
        return 1;
    }
    struct server srv = { .o = &o, .cap_name = o.cap, .read_only = o.read_only,
                          .edge_lock = PTHREAD_MUTEX_INITIALIZER };
    /* This connection checks the cap up front; each NBD client then gets a
     * connection, handle and session of its own. */
    struct moat_cap *cap;
    if (open_cap(mc, &o, &cap) < 0) {
        moat_disconnect(mc);
        return 1;
    }
    const struct moat_cap_desc *desc = moat_cap_desc(cap);
    if (desc->kind != MOAT_CAP_BLOCK) {
        say("cap %s is not a BlockDevice (kind %u); moat-nbd exports block caps only", o.cap,
            desc->kind);
        moat_disconnect(mc);
        return 1;
    }
    rc = moat_blk_geometry(cap, &srv.geo);
    if (rc < 0 || !geometry_ok(&srv.geo)) {
        say("cannot use the geometry of %s: %s", o.cap,
            rc < 0 ? moat_strerror(rc) : "the domain registered an impossible block size or count");
        moat_disconnect(mc);
        return 1;
    }
    if ((srv.geo.flags & MOAT_BLK_F_READONLY) && !srv.read_only) {
        say("cap %s is a read-only device; exporting it read-only", o.cap);
        srv.read_only = true;
    }
    snprintf(srv.description, sizeof srv.description, "moat BlockDevice %.*s served by domain %.*s",
             (int)MOAT_NAME_LEN, desc->name, (int)MOAT_NAME_LEN, desc->domain);

    /* Checked: each NBD client gets a connection of its own, so this one
     * goes (an idle connection would only pile up moat's events). */
    moat_disconnect(mc);
    int lfd = o.unix_path ? listen_unix(o.unix_path) : listen_tcp(o.bind, o.port);
    if (lfd < 0)
        return 1;
    char where[PATH_MAX + 32];
    if (o.unix_path)
        snprintf(where, sizeof where, "unix:%s", o.unix_path);
    else
        snprintf(where, sizeof where, strchr(o.bind, ':') ? "tcp:[%s]:%d" : "tcp:%s:%d", o.bind,
                 o.port);
    say("serving cap %s (%llu bytes, %u-byte blocks%s) on %s", o.cap,
        (unsigned long long)(srv.geo.blocks * srv.geo.block_size), srv.geo.block_size,
        srv.read_only ? ", read-only" : "", where);

    /* SIGINT/SIGTERM are blocked except inside ppoll, so a signal can never
     * slip in between the check of stop_signal and the wait. Client threads
     * inherit the mask and never see them. */
    struct sigaction sa = { .sa_handler = on_signal };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    sigset_t block, waitmask;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &waitmask);
    sigdelset(&waitmask, SIGINT);
    sigdelset(&waitmask, SIGTERM);

    int status = 0;
    unsigned next_id = 1;
    for (;;) {
        struct pollfd pfd = { .fd = lfd, .events = POLLIN };
        int pr = stop_signal ? -1 : ppoll(&pfd, 1, NULL, &waitmask);
        if (stop_signal) {
            unsigned left = atomic_load(&srv.active);
            if (left)
                say("stopping on signal %d; dropping %u connected client(s)", (int)stop_signal,
                    left);
            else
                say("stopping on signal %d", (int)stop_signal);
            break;
        }
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr < 0) {
            say("poll: %s", strerror(errno));
            status = 1;
            break;
        }
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int cfd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED)
                continue;
            say("accept: %s", strerror(errno));
            if (errno == EMFILE || errno == ENFILE) {
                sleep(1);   /* out of descriptors: let clients finish */
                continue;
            }
            status = 1;
            break;
        }
        struct client *cl = calloc(1, sizeof *cl);
        if (!cl) {
            say("out of memory for a client; refusing it");
            close(cfd);
            continue;
        }
        cl->srv = &srv;
        cl->fd = cfd;
        cl->id = next_id++;
        describe_peer(cfd, &ss, sl, cl->peer, sizeof cl->peer);

        if (o.once) {
            /* No second client: stop listening now, and let a signal end
             * the process the default way while this one is served. */
            close(lfd);
            lfd = -1;
            if (o.unix_path)
                unlink(o.unix_path);
            signal(SIGINT, SIG_DFL);
            signal(SIGTERM, SIG_DFL);
            pthread_sigmask(SIG_UNBLOCK, &block, NULL);
            atomic_fetch_add(&srv.active, 1);
            serve_client(cl);
            status = cl->rc == 0 ? 0 : 1;
            close(cfd);
            free(cl);
            break;
        }
        if (atomic_load(&srv.active) >= CLIENTS_MAX) {
            say("client %u refused: %u clients are connected already (the limit)", cl->id,
                CLIENTS_MAX);
            close(cfd);
            free(cl);
            continue;
        }
        atomic_fetch_add(&srv.active, 1);
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int tr = pthread_create(&t, &attr, client_thread, cl);
        pthread_attr_destroy(&attr);
        if (tr != 0) {
            say("client %u refused: cannot start a thread: %s", cl->id, strerror(tr));
            atomic_fetch_sub(&srv.active, 1);
            close(cfd);
            free(cl);
        }
    }

    if (lfd >= 0) {
        close(lfd);
        if (o.unix_path)
            unlink(o.unix_path);
    }
    return status;
}
