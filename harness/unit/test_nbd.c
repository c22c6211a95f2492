/* moat-nbd's NBD engine (nbd_server.c) on a Unix socket in a temp dir, over
 * an in-memory disk of 512-byte blocks taking at most 64 blocks per call (so
 * splitting and read-modify-write are exercised). Real clients first —
 * qemu-img, qemu-io, nbdinfo: sizes, pattern writes and reads aligned and
 * not, a 4 MiB random image converted in and out — checked through the
 * tools and against the disk's bytes. Then a hostile client written here:
 * bad magics, unknown flags, oversized options and payloads, ranges past
 * the end or wrapping, read-only writes, unknown commands and flags,
 * backend errors; each refused as the spec says without touching the disk,
 * and the connection kept in step or closed as documented. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include "moat-nbd/nbd_server.h"
#include "moat/control_abi.h"

#define BS        512u
#define BLOCKS    8192u                 /* 4 MiB */
#define SIZE      ((uint64_t)BLOCKS * BS)
#define MAXB      64u
#define EXPORT    "mem0"
#define DESC      "in-memory test disk"

/* Wire values, spelled out from the spec, not taken from the engine. */
#include "nbd_wire.h"
#define TRIM_MARK        0xd1           /* what the disk writes on discard */

/* ---- the in-memory disk --------------------------------------------------------- */

struct mem {
    uint8_t *data;
    _Atomic uint64_t reads, writes, flushes, trims, zeroes, violations;
    _Atomic uint32_t max_seen;
    _Atomic int fail_rc;            /* nonzero: every call returns it */
};

/* The engine promises never to pass an empty, oversized or out-of-range
 * call; count any that slips through instead of trusting it. */
static bool mem_ok(struct mem *m, uint64_t lba, uint32_t n)
{
    uint32_t seen = atomic_load(&m->max_seen);
    while (n > seen && !atomic_compare_exchange_weak(&m->max_seen, &seen, n))
        ;
    if (n == 0 || n > MAXB || lba > BLOCKS || n > BLOCKS - lba) {
        atomic_fetch_add(&m->violations, 1);
        return false;
    }
    return true;
}

/* One call carried out on the disk (at completion time). */
static int mem_do(struct mem *m, const struct nbd_io *io)
{
    if (io->op != NBD_IO_FLUSH && !mem_ok(m, io->lba, io->blocks))
        return -MOAT_EINVAL;
    if (atomic_load(&m->fail_rc))
        return atomic_load(&m->fail_rc);
    uint8_t *at = m->data + io->lba * BS;
    size_t bytes = (size_t)io->blocks * BS;
    switch (io->op) {
    case NBD_IO_READ:   memcpy(io->buf, at, bytes); break;
    case NBD_IO_WRITE:  memcpy(at, io->buf, bytes); break;
    case NBD_IO_TRIM:   memset(at, TRIM_MARK, bytes); break;
    case NBD_IO_ZEROES: memset(at, 0, bytes); break;
    default:            break;
    }
    return 0;
}

/* The disk as each connection sees it: calls queue up (at most DEPTH) and
 * are carried out when reaped, newest first, so replies come back in
 * another order than the requests went out. */
#define DEPTH 16u
#define HOLD_MS 5
struct memq {
    struct mem *m;
    struct nbd_io q[DEPTH];
    uint32_t n, most;
    uint64_t reaps_empty;           /* waits with nothing queued and no fd */
};

static int mem_submit(void *ctx, const struct nbd_io *io)
{
    struct memq *mq = ctx;
    if (mq->n == DEPTH)
        return -MOAT_EBUSY;
    _Atomic uint64_t *counter[] = {
        [NBD_IO_READ] = &mq->m->reads, [NBD_IO_WRITE] = &mq->m->writes,
        [NBD_IO_FLUSH] = &mq->m->flushes, [NBD_IO_TRIM] = &mq->m->trims,
        [NBD_IO_ZEROES] = &mq->m->zeroes,
    };
    if (io->op > NBD_IO_ZEROES) {
        atomic_fetch_add(&mq->m->violations, 1);
        return -MOAT_EINVAL;
    }
    atomic_fetch_add(counter[io->op], 1);
    mq->q[mq->n++] = *io;
    mq->most = mq->n > mq->most ? mq->n : mq->most;
    return 0;
}

static int mem_reap(void *ctx, int fd, bool wait, struct nbd_done *out, size_t max)
{
    struct memq *mq = ctx;
    /* Calls complete only when the engine waits, and while the client is
     * still sending (fd readable within HOLD_MS) they wait for more: a
     * slow client cannot make the engine look one-at-a-time. */
    if (!wait)
        return 0;
    if (mq->n == 0 && fd < 0) {
        mq->reaps_empty++;          /* the engine promised never to */
        return 0;
    }
    if (fd >= 0) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, mq->n ? HOLD_MS : -1) > 0)
            return 0;
    }
    size_t k = 0;
    while (k < max && mq->n) {
        const struct nbd_io *io = &mq->q[--mq->n];
        out[k++] = (struct nbd_done){ .tag = io->tag, .status = mem_do(mq->m, io) };
    }
    return (int)k;
}

static uint64_t mem_calls(struct mem *m)
{
    return atomic_load(&m->reads) + atomic_load(&m->writes) + atomic_load(&m->flushes) +
           atomic_load(&m->trims) + atomic_load(&m->zeroes);
}

/* ---- the server: one thread per connection, on a Unix socket ------------------------ */

#define CONNS_MAX 16

struct srv {
    bool up;
    char dir[64], path[100], uri[256];
    int lfd;
    pthread_t acceptor;
    atomic_bool stop;
    struct nbd_backend be;
    struct mem mem;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    pthread_t conn_th[CONNS_MAX];
    int conn_fd[CONNS_MAX];         /* -1 once the connection has ended */
    int nthreads;
    int done;                       /* connections finished */
    int last_rc;
    char last_err[256];
    struct nbd_stats last_st, total;
    uint32_t most_queued;           /* backend calls queued at once, any connection */
};
static struct srv S;

static void *conn_main(void *arg)
{
    int slot = (int)(intptr_t)arg;
    pthread_mutex_lock(&S.lock);
    int fd = S.conn_fd[slot];
    pthread_mutex_unlock(&S.lock);
    struct nbd_stats st;
    char err[256];
    struct memq mq = { .m = &S.mem };
    struct nbd_backend be = S.be;
    be.ctx = &mq;
    int rc = nbd_serve_connection(fd, EXPORT, &be, &st, err, sizeof err);
    if (mq.reaps_empty)
        atomic_fetch_add(&S.mem.violations, 1);
    pthread_mutex_lock(&S.lock);
    close(fd);
    S.conn_fd[slot] = -1;
    S.last_rc = rc;
    snprintf(S.last_err, sizeof S.last_err, "%s", err);
    S.last_st = st;
    S.total.reads += st.reads;
    S.total.writes += st.writes;
    S.total.flushes += st.flushes;
    S.total.trims += st.trims;
    S.total.zeroes += st.zeroes;
    S.total.other += st.other;
    S.total.bytes_read += st.bytes_read;
    S.total.bytes_written += st.bytes_written;
    S.total.errors += st.errors;
    S.total.backend_calls += st.backend_calls;
    S.total.serialized += st.serialized;
    S.most_queued = mq.most > S.most_queued ? mq.most : S.most_queued;
    S.done++;
    pthread_cond_broadcast(&S.cond);
    pthread_mutex_unlock(&S.lock);
    return NULL;
}

static void *acceptor_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&S.stop)) {
        struct pollfd p = { .fd = S.lfd, .events = POLLIN };
        if (poll(&p, 1, 20) <= 0)
            continue;
        int fd = accept(S.lfd, NULL, NULL);
        if (fd < 0)
            continue;
        pthread_mutex_lock(&S.lock);
        int slot = S.nthreads;
        if (slot < CONNS_MAX) {
            S.conn_fd[slot] = fd;
            if (pthread_create(&S.conn_th[slot], NULL, conn_main, (void *)(intptr_t)slot) == 0)
                S.nthreads++;
            else
                close(fd);
        } else {
            close(fd);
        }
        pthread_mutex_unlock(&S.lock);
    }
    return NULL;
}

struct disk_opts {
    bool read_only, no_flush, no_trim, no_zeroes;
};

static void srv_start(struct disk_opts o)
{
    memset(&S, 0, sizeof S);
    pthread_mutex_init(&S.lock, NULL);
    pthread_cond_init(&S.cond, NULL);
    S.mem.data = calloc(1, SIZE);
    cr_assert_not_null(S.mem.data);
    S.be = (struct nbd_backend){
        .blocks = BLOCKS, .block_size = BS, .max_blocks = MAXB,
        .read_only = o.read_only, .can_flush = !o.no_flush, .can_trim = !o.no_trim,
        .can_zeroes = !o.no_zeroes, .depth = DEPTH,
        .submit = mem_submit, .reap = mem_reap, .description = DESC,
    };
    snprintf(S.dir, sizeof S.dir, "/tmp/moat-nbd-test-XXXXXX");
    cr_assert_not_null(mkdtemp(S.dir), "mkdtemp: %s", strerror(errno));
    snprintf(S.path, sizeof S.path, "%s/nbd.sock", S.dir);
    snprintf(S.uri, sizeof S.uri, "nbd+unix:///%s?socket=%s", EXPORT, S.path);
    S.lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(S.lfd, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", S.path);
    cr_assert_eq(bind(S.lfd, (struct sockaddr *)&sa, sizeof sa), 0, "bind: %s", strerror(errno));
    cr_assert_eq(listen(S.lfd, 8), 0);
    cr_assert_eq(pthread_create(&S.acceptor, NULL, acceptor_main, NULL), 0);
    S.up = true;
}

/* Stop accepting and end every connection still open (a test that failed
 * half-way leaves its client connected): shutting the server's side down
 * makes its blocked read see EOF. Under the lock, so an fd already closed
 * (and perhaps reused) is never touched. */
static void srv_stop(void)
{
    if (!S.up)
        return;
    S.up = false;
    atomic_store(&S.stop, true);
    pthread_join(S.acceptor, NULL);
    pthread_mutex_lock(&S.lock);
    for (int i = 0; i < S.nthreads; i++)
        if (S.conn_fd[i] >= 0)
            shutdown(S.conn_fd[i], SHUT_RDWR);
    pthread_mutex_unlock(&S.lock);
    for (int i = 0; i < S.nthreads; i++)
        pthread_join(S.conn_th[i], NULL);
    close(S.lfd);
    unlink(S.path);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", S.dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", S.dir);
}

static void teardown(void)
{
    srv_stop();
    free(S.mem.data);
    S.mem.data = NULL;
}

TestSuite(nbd, .fini = teardown, .timeout = 20);

/* Wait (5 s at most) until n connections have ended. */
static void srv_wait_done(int n)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 5;
    pthread_mutex_lock(&S.lock);
    while (S.done < n)
        if (pthread_cond_timedwait(&S.cond, &S.lock, &ts) != 0)
            break;
    int done = S.done;
    pthread_mutex_unlock(&S.lock);
    cr_assert_geq(done, n, "server finished %d connections, expected %d", done, n);
}

/* ---- external tools ------------------------------------------------------------------ */

static bool have_tool(const char *t)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", t);
    return system(cmd) == 0;
}

#define NEED_TOOL(t)                                                            \
    do {                                                                        \
        if (!have_tool(t)) {                                                    \
            fprintf(stderr, "SKIPPED: %s not installed\n", t);                  \
            cr_skip_test("SKIPPED: %s not installed", t);                       \
        }                                                                       \
    } while (0)

static char out[65536];

/* Run a shell command (under a 15 s timeout), its stdout and stderr into
 * out; returns its exit status. */
__attribute__((format(printf, 1, 2)))
static int run(const char *fmt, ...)
{
    char cmd[2048], full[2100];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    snprintf(full, sizeof full, "timeout 15 %s 2>&1", cmd);
    FILE *p = popen(full, "r");
    cr_assert_not_null(p, "popen %s", cmd);
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void expect_out(const char *needle, const char *what)
{
    cr_assert_not_null(strstr(out, needle), "%s: \"%s\" not in output:\n%s", what, needle, out);
}

/* ---- a raw client ------------------------------------------------------------------------ */

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v) { put16(p, (uint16_t)(v >> 16)); put16(p + 2, (uint16_t)v); }
static void put64(uint8_t *p, uint64_t v) { put32(p, (uint32_t)(v >> 32)); put32(p + 4, (uint32_t)v); }
static uint16_t get16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static uint32_t get32(const uint8_t *p) { return ((uint32_t)get16(p) << 16) | get16(p + 2); }
static uint64_t get64(const uint8_t *p) { return ((uint64_t)get32(p) << 32) | get32(p + 4); }

static void xsend(int fd, const void *p, size_t n)
{
    size_t done = 0;
    while (done < n) {
        ssize_t w = send(fd, (const uint8_t *)p + done, n - done, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        cr_assert_gt(w, 0, "send: %s", strerror(errno));
        done += (size_t)w;
    }
}

static void xrecv(int fd, void *p, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = recv(fd, (uint8_t *)p + got, n - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        cr_assert_gt(r, 0, "recv: %s after %zu of %zu bytes", r == 0 ? "EOF" : strerror(errno),
                     got, n);
        got += (size_t)r;
    }
}

/* True when the server closed the connection (EOF or reset) within 5 s,
 * after anything it still had to send. */
static bool server_closed(int fd)
{
    uint8_t b[256];
    for (;;) {
        ssize_t r = recv(fd, b, sizeof b, 0);
        if (r == 0 || (r < 0 && errno == ECONNRESET))
            return true;
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return false;   /* timeout: still open */
    }
}

static int cl_connect(void)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", S.path);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0, "connect: %s", strerror(errno));
    struct timeval tv = { .tv_sec = 5 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

/* Connect, check the greeting, send the client flags. */
static int cl_hello(uint32_t cflags)
{
    int fd = cl_connect();
    uint8_t g[18];
    xrecv(fd, g, sizeof g);
    cr_assert_eq(get64(g), MAGIC_INIT, "greeting magic");
    cr_assert_eq(get64(g + 8), MAGIC_OPT, "IHAVEOPT");
    cr_assert_eq(get16(g + 16), 0x3, "handshake flags: FIXED_NEWSTYLE|NO_ZEROES");
    uint8_t f[4];
    put32(f, cflags);
    xsend(fd, f, sizeof f);
    return fd;
}

static void cl_opt(int fd, uint32_t opt, const void *data, uint32_t len)
{
    uint8_t h[16];
    put64(h, MAGIC_OPT);
    put32(h + 8, opt);
    put32(h + 12, len);
    xsend(fd, h, sizeof h);
    if (len)
        xsend(fd, data, len);
}

struct rep {
    uint32_t opt, type, len;
    uint8_t data[8192];
};

static void cl_rep(int fd, uint32_t opt, struct rep *r)
{
    uint8_t h[20];
    xrecv(fd, h, sizeof h);
    cr_assert_eq(get64(h), MAGIC_OPT_REPLY, "option reply magic");
    r->opt = get32(h + 8);
    r->type = get32(h + 12);
    r->len = get32(h + 16);
    cr_assert_eq(r->opt, opt, "reply for option %u, expected %u", r->opt, opt);
    cr_assert_leq(r->len, sizeof r->data, "reply of %u bytes", r->len);
    if (r->len)
        xrecv(fd, r->data, r->len);
}

/* INFO/GO data: name, then the listed info requests. */
static uint32_t go_data(uint8_t *d, const char *name, const uint16_t *req, uint16_t nreq)
{
    uint32_t nl = (uint32_t)strlen(name);
    put32(d, nl);
    memcpy(d + 4, name, nl);
    put16(d + 4 + nl, nreq);
    for (uint16_t i = 0; i < nreq; i++)
        put16(d + 6 + nl + 2 * i, req[i]);
    return 6 + nl + 2u * nreq;
}

struct info {
    uint64_t size;
    uint16_t tflags;
    bool have_bs;
    uint32_t bs_min, bs_pref, bs_max;
    char name[64], desc[64];
};

/* Send INFO or GO for name; collect the infos; returns the final reply type. */
static uint32_t cl_info(int fd, uint32_t opt, const char *name, const uint16_t *req, uint16_t nreq,
                        struct info *in)
{
    uint8_t d[512];
    cl_opt(fd, opt, d, go_data(d, name, req, nreq));
    memset(in, 0, sizeof *in);
    bool have_export = false;
    struct rep r;
    for (;;) {
        cl_rep(fd, opt, &r);
        if (r.type != REP_INFO)
            break;
        cr_assert_geq(r.len, 2);
        uint16_t t = get16(r.data);
        if (t == INFO_EXPORT) {
            cr_assert_eq(r.len, 12, "INFO_EXPORT length");
            in->size = get64(r.data + 2);
            in->tflags = get16(r.data + 10);
            have_export = true;
        } else if (t == INFO_BLOCK_SIZE) {
            cr_assert_eq(r.len, 14, "INFO_BLOCK_SIZE length");
            in->have_bs = true;
            in->bs_min = get32(r.data + 2);
            in->bs_pref = get32(r.data + 6);
            in->bs_max = get32(r.data + 10);
        } else if (t == INFO_NAME) {
            snprintf(in->name, sizeof in->name, "%.*s", (int)(r.len - 2), r.data + 2);
        } else if (t == INFO_DESCRIPTION) {
            snprintf(in->desc, sizeof in->desc, "%.*s", (int)(r.len - 2), r.data + 2);
        }
    }
    if (r.type == REP_ACK)
        cr_assert(have_export, "ACK without NBD_INFO_EXPORT");
    return r.type;
}

/* Connected and in transmission (NBD_OPT_GO on the export). */
static int cl_open(struct info *in)
{
    int fd = cl_hello(0x3);
    struct info local;
    cr_assert_eq(cl_info(fd, OPT_GO, EXPORT, NULL, 0, in ? in : &local), REP_ACK, "GO refused");
    return fd;
}

static void cl_req(int fd, uint16_t flags, uint16_t type, uint64_t cookie, uint64_t off,
                   uint32_t len)
{
    uint8_t h[28];
    put32(h, MAGIC_REQ);
    put16(h + 4, flags);
    put16(h + 6, type);
    put64(h + 8, cookie);
    put64(h + 16, off);
    put32(h + 24, len);
    xsend(fd, h, sizeof h);
}

/* Reads a simple reply for cookie; returns its error. */
static uint32_t cl_reply(int fd, uint64_t cookie)
{
    uint8_t r[16];
    xrecv(fd, r, sizeof r);
    cr_assert_eq(get32(r), MAGIC_REPLY, "reply magic 0x%08x", get32(r));
    cr_assert_eq(get64(r + 8), cookie, "reply cookie");
    return get32(r + 4);
}

static uint32_t cl_write(int fd, uint16_t flags, uint64_t off, const void *p, uint32_t len)
{
    static uint64_t cookie = 1000;
    cookie++;
    cl_req(fd, flags, CMD_WRITE, cookie, off, len);
    if (len)
        xsend(fd, p, len);
    return cl_reply(fd, cookie);
}

/* Reads into p on success; nothing follows an error reply. */
static uint32_t cl_read(int fd, uint64_t off, void *p, uint32_t len)
{
    static uint64_t cookie = 2000;
    cookie++;
    cl_req(fd, 0, CMD_READ, cookie, off, len);
    uint32_t e = cl_reply(fd, cookie);
    if (e == 0 && len)
        xrecv(fd, p, len);
    return e;
}

static uint32_t cl_cmd(int fd, uint16_t flags, uint16_t type, uint64_t off, uint32_t len)
{
    static uint64_t cookie = 3000;
    cookie++;
    cl_req(fd, flags, type, cookie, off, len);
    return cl_reply(fd, cookie);
}

/* A READ that must succeed and match the disk. */
static void check_read_matches(int fd, uint64_t off, uint32_t len)
{
    uint8_t *b = malloc(len);
    cr_assert_eq(cl_read(fd, off, b, len), 0, "read %u at %llu", len, (unsigned long long)off);
    cr_assert_eq(memcmp(b, S.mem.data + off, len), 0, "read %u at %llu differs from the disk", len,
                 (unsigned long long)off);
    free(b);
}

static void cl_disc(int fd)
{
    cl_req(fd, 0, CMD_DISC, 1, 0, 0);
    cr_assert(server_closed(fd), "server did not close after NBD_CMD_DISC");
    close(fd);
}

static bool all_bytes(const uint8_t *p, size_t n, uint8_t v)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != v)
            return false;
    return true;
}

static void fill_pattern(uint8_t *p, size_t n, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (uint8_t)x;
    }
}

/* =====================================================================================
 * Real clients
 * ===================================================================================== */

Test(nbd, qemu_img_info_reports_the_size)
{
    NEED_TOOL("qemu-img");
    srv_start((struct disk_opts){ 0 });
    int st = run("qemu-img info '%s'", S.uri);
    cr_assert_eq(st, 0, "qemu-img info failed:\n%s", out);
    expect_out("virtual size: 4 MiB (4194304 bytes)", "qemu-img info");
    srv_wait_done(1);
    cr_assert_eq(S.last_rc, 0, "server: %s", S.last_err);
}

Test(nbd, nbdinfo_reports_size_flags_and_block_sizes)
{
    NEED_TOOL("nbdinfo");
    srv_start((struct disk_opts){ 0 });
    int st = run("nbdinfo '%s'", S.uri);
    cr_assert_eq(st, 0, "nbdinfo failed:\n%s", out);
    expect_out("export-size: 4194304", "nbdinfo");
    expect_out("block_size_minimum: 1", "nbdinfo");
    expect_out("block_size_preferred: 512", "nbdinfo");
    expect_out("block_size_maximum: 33554432", "nbdinfo");
    expect_out("is_read_only: false", "nbdinfo");
    expect_out("can_flush: true", "nbdinfo");
    expect_out("can_fua: true", "nbdinfo");
    expect_out("can_trim: true", "nbdinfo");
    expect_out("can_zero: true", "nbdinfo");
    expect_out("can_multi_conn: false", "nbdinfo");
    expect_out(DESC, "nbdinfo description");

    st = run("nbdinfo --size '%s'", S.uri);
    cr_assert_eq(st, 0, "nbdinfo --size failed:\n%s", out);
    cr_assert_eq(strtoull(out, NULL, 10), SIZE, "nbdinfo --size said %s", out);

    st = run("nbdinfo --list 'nbd+unix://?socket=%s'", S.path);
    cr_assert_eq(st, 0, "nbdinfo --list failed:\n%s", out);
    expect_out("export=\"" EXPORT "\"", "nbdinfo --list");
    srv_wait_done(3);
    cr_assert_eq(S.last_rc, 0, "server: %s", S.last_err);
}

Test(nbd, nbdinfo_sees_a_read_only_export)
{
    NEED_TOOL("nbdinfo");
    srv_start((struct disk_opts){ .read_only = true });
    int st = run("nbdinfo '%s'", S.uri);
    cr_assert_eq(st, 0, "nbdinfo failed:\n%s", out);
    expect_out("is_read_only: true", "nbdinfo");
    expect_out("can_trim: false", "nbdinfo");
    expect_out("can_zero: false", "nbdinfo");
    expect_out("can_flush: false", "nbdinfo");
}

Test(nbd, qemu_io_pattern_writes_and_reads)
{
    NEED_TOOL("qemu-io");
    srv_start((struct disk_opts){ 0 });
    memset(S.mem.data, 0x11, SIZE);
    int st = run("qemu-io -f raw -c 'write -P 0xab 0 64k' -c 'read -P 0xab 0 64k' "
                 "-c 'write -P 0x5a 1000 3000' -c 'read -P 0x5a 1000 3000' "
                 "-c 'read -P 0xab 0 1000' -c 'read -P 0xab 4000 61536' '%s'", S.uri);
    cr_assert_eq(st, 0, "qemu-io failed:\n%s", out);
    expect_out("wrote 65536/65536 bytes at offset 0", "qemu-io");
    expect_out("read 65536/65536 bytes at offset 0", "qemu-io");
    expect_out("wrote 3000/3000 bytes at offset 1000", "qemu-io");
    expect_out("read 3000/3000 bytes at offset 1000", "qemu-io");
    cr_assert_null(strstr(out, "fail"), "qemu-io reported a failure:\n%s", out);
    srv_wait_done(1);
    cr_assert_eq(S.last_rc, 0, "server: %s", S.last_err);

    /* The disk itself: 0xab, then 0x5a over [1000, 4000), then 0xab up to
     * 64 KiB, then the old 0x11 untouched. */
    const uint8_t *d = S.mem.data;
    cr_assert(all_bytes(d, 1000, 0xab), "bytes 0..999");
    cr_assert(all_bytes(d + 1000, 3000, 0x5a), "bytes 1000..3999");
    cr_assert(all_bytes(d + 4000, 65536 - 4000, 0xab), "bytes 4000..65535");
    cr_assert(all_bytes(d + 65536, SIZE - 65536, 0x11), "beyond 64 KiB was touched");
    cr_assert_eq(atomic_load(&S.mem.violations), 0, "backend got an invalid call");
    cr_assert_leq(atomic_load(&S.mem.max_seen), MAXB, "a call exceeded max_blocks");
    /* 64 KiB = 128 blocks: split into calls of 64 blocks at most. */
    cr_assert_geq(atomic_load(&S.mem.writes), 3, "64 KiB write + RMW should take >= 3 calls");
    cr_assert_geq(S.total.bytes_written, 65536u + 3000u);
}

Test(nbd, qemu_io_write_zeroes_and_discard)
{
    NEED_TOOL("qemu-io");
    srv_start((struct disk_opts){ .no_zeroes = true });
    memset(S.mem.data, 0x77, SIZE);
    int st = run("qemu-io -f raw -c 'write -z 100 70000' -c 'read -P 0 100 70000' "
                 "-c 'discard 131072 65536' '%s'", S.uri);
    cr_assert_eq(st, 0, "qemu-io failed:\n%s", out);
    cr_assert_null(strstr(out, "fail"), "qemu-io reported a failure:\n%s", out);
    srv_wait_done(1);
    const uint8_t *d = S.mem.data;
    cr_assert(all_bytes(d, 100, 0x77), "before the zeroed range");
    cr_assert(all_bytes(d + 100, 70000, 0), "zeroed range");
    cr_assert(all_bytes(d + 70100, 131072 - 70100, 0x77), "after the zeroed range");
    cr_assert(all_bytes(d + 131072, 65536, TRIM_MARK), "discarded range");
    cr_assert(all_bytes(d + 196608, SIZE - 196608, 0x77), "after the discarded range");
    cr_assert_eq(atomic_load(&S.mem.zeroes), 0, "zeroes() used although the disk lacks it");
    cr_assert_geq(S.total.zeroes, 1);
    cr_assert_geq(S.total.trims, 1);
    cr_assert_eq(atomic_load(&S.mem.violations), 0);
}

Test(nbd, qemu_img_convert_in_and_out_is_byte_exact)
{
    NEED_TOOL("qemu-img");
    srv_start((struct disk_opts){ 0 });
    uint8_t *img = malloc(SIZE);
    fill_pattern(img, SIZE, 42);
    char src[160], dst[160];
    snprintf(src, sizeof src, "%s/src.img", S.dir);
    snprintf(dst, sizeof dst, "%s/out.img", S.dir);
    FILE *f = fopen(src, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(img, 1, SIZE, f), SIZE);
    fclose(f);

    int st = run("qemu-img convert -n -f raw -O raw '%s' '%s'", src, S.uri);
    cr_assert_eq(st, 0, "convert into the export failed:\n%s", out);
    srv_wait_done(1);
    cr_assert_eq(memcmp(S.mem.data, img, SIZE), 0, "the disk differs from the source image");

    st = run("qemu-img convert -f raw -O raw '%s' '%s'", S.uri, dst);
    cr_assert_eq(st, 0, "convert out of the export failed:\n%s", out);
    f = fopen(dst, "rb");
    cr_assert_not_null(f);
    uint8_t *back = malloc(SIZE + 1);
    size_t n = fread(back, 1, SIZE + 1, f);
    fclose(f);
    cr_assert_eq(n, SIZE, "output image is %zu bytes", n);
    cr_assert_eq(memcmp(back, img, SIZE), 0, "the image read back differs from the source");
    cr_assert_eq(atomic_load(&S.mem.violations), 0);
    cr_assert_leq(atomic_load(&S.mem.max_seen), MAXB);
    free(img);
    free(back);
}

/* =====================================================================================
 * Handshake, from a raw client
 * ===================================================================================== */

Test(nbd, export_name_sends_124_zeroes_unless_no_zeroes)
{
    srv_start((struct disk_opts){ 0 });
    /* FIXED_NEWSTYLE only: the reply carries the 124 reserved zeroes. */
    int fd = cl_hello(0x1);
    cl_opt(fd, OPT_EXPORT_NAME, EXPORT, 4);
    uint8_t r[10 + 124];
    xrecv(fd, r, sizeof r);
    cr_assert_eq(get64(r), SIZE);
    cr_assert_eq(get16(r + 8), TF_HAS_FLAGS | TF_SEND_FLUSH | TF_SEND_FUA | TF_SEND_TRIM | TF_SEND_WZ);
    cr_assert(all_bytes(r + 10, 124, 0), "reserved bytes not zero");
    check_read_matches(fd, 0, 512);
    cl_disc(fd);

    /* NO_ZEROES: exactly 10 bytes, the next thing is the reply. */
    fd = cl_hello(0x3);
    cl_opt(fd, OPT_EXPORT_NAME, "", 0);     /* the default export */
    xrecv(fd, r, 10);
    cr_assert_eq(get64(r), SIZE);
    check_read_matches(fd, 512, 512);
    cl_disc(fd);
    srv_wait_done(2);
    cr_assert_eq(S.last_rc, 0, "server: %s", S.last_err);
    cr_assert(S.last_st.transmission);
}

Test(nbd, export_name_of_an_unknown_export_closes)
{
    srv_start((struct disk_opts){ 0 });
    int fd = cl_hello(0x3);
    cl_opt(fd, OPT_EXPORT_NAME, "nope\x1b", 5);
    cr_assert(server_closed(fd), "connection stayed open");
    close(fd);
    srv_wait_done(1);
    cr_assert_eq(S.last_rc, -MOAT_EPROTO);
    cr_assert_not_null(strstr(S.last_err, "\"nope?\""), "err: %s", S.last_err);
}

Test(nbd, unknown_client_flags_close)
{
    srv_start((struct disk_opts){ 0 });
    int fd = cl_hello(0x3 | 0x100);
    cr_assert(server_closed(fd), "connection stayed open");
    close(fd);
    srv_wait_done(1);
    cr_assert_eq(S.last_rc, -MOAT_EPROTO);
    cr_assert_not_null(strstr(S.last_err, "flags"), "err: %s", S.last_err);
}

Test(nbd, bad_option_magic_closes)
{
    srv_start((struct disk_opts){ 0 });
    int fd = cl_hello(0x3);
    uint8_t h[16];
    put64(h, 0x1122334455667788ull);
    put32(h + 8, OPT_LIST);
    put32(h + 12, 0);
    xsend(fd, h, sizeof h);
    cr_assert(server_closed(fd), "connection stayed open");
    close(fd);
    srv_wait_done(1);
    cr_assert_eq(S.last_rc, -MOAT_EPROTO);
    cr_assert_not_null(strstr(S.last_err, "magic"), "err: %s", S.last_err);
}

Test(nbd, unknown_options_are_unsupported_and_the_handshake_goes_on)
{
    srv_start((struct disk_opts){ 0 });
    int fd = cl_hello(0x3);
    struct rep r;
    cl_opt(fd, OPT_STRUCTURED, NULL, 0);
    cl_rep(fd, OPT_STRUCTURED, &r);
    cr_assert_eq(r.type, REP_ERR_UNSUP, "STRUCTURED_REPLY: 0x%x", r.type);
    uint8_t q[32] = { 0 };
    put32(q, 4);
    memcpy(q + 4, EXPORT, 4);
    cl_opt(fd, OPT_SET_META, q, 16);
    cl_rep(fd, OPT_SET_META, &r);
    cr_assert_eq(r.type, REP_ERR_UNSUP, "SET_META_CONTEXT: 0x%x", r.type);
    cl_opt(fd, 0xdeadbeefu, "junk", 4);
    cl_rep(fd, 0xdeadbeefu, &r);
    cr_assert_eq(r.type, REP_ERR_UNSUP);
    cr_assert_gt(r.len, 0, "error replies carry a message");
    struct info in;
    cr_assert_eq(cl_info(fd, OPT_GO, EXPORT, NULL, 0, &in), REP_ACK);
    cr_assert_eq(in.size, SIZE);
    check_read_matches(fd, 4096, 1024);
    cl_disc(fd);
    srv_wait_done(1);
    cr_assert_eq(S.last_rc, 0, "server: %s", S.last_err);
}

Test(nbd, list_returns_the_one_export)
{
    srv_start((struct disk_opts){ 0 });
    int fd = cl_hello(0x3);
    struct rep r;
    cl_opt(fd, OPT_LIST, NULL, 0);
    cl_rep(fd, OPT_LIST, &r);
    cr_assert_eq(r.type, REP_SERVER);
    cr_assert_geq(r.len, 4 + 4);
    cr_assert_eq(get32(r.data), 4, "name length");
    cr_assert_eq(memcmp(r.data + 4, EXPORT, 4), 0);
    cr_assert_eq(r.len - 8, strlen(DESC));
    cr_assert_eq(memcmp(r.data + 8, DESC, strlen(DESC)), 0, "details = description");
    cl_rep(fd, OPT_LIST, &r);
    cr_assert_eq(r.type, REP_ACK);
    /* LIST takes no data. */
    cl_opt(fd, OPT_LIST, "x", 1);
    cl_rep(fd, OPT_LIST, &r);
    cr_assert_eq(r.type, REP_ERR_INVALID);
    /* ABORT: acknowledged, then the server hangs up; a clean end. */
    cl_opt(fd, OPT_ABORT, NULL, 0);
    cl_rep(fd, OPT_ABORT, &r);
    cr_assert_eq(r.type, REP_ACK);
    cr_assert(server_closed(fd));
    close(fd);
    srv_wait_done(1);
    cr_assert_eq(S.last_rc, 0, "server: %s", S.last_err);
    cr_assert(!S.last_st.transmission);
}

Test(nbd, info_reports_export_block_sizes_name_and_description)
{
    srv_start((struct disk_opts){ 0 });
    int fd = cl_hello(0x3);
    uint16_t req[] = { INFO_NAME, INFO_BLOCK_SIZE, INFO_DESCRIPTION, 0x7777 };
    struct info in;
    cr_assert_eq(cl_info(fd, OPT_INFO, "", req, 4, &in), REP_ACK);
    cr_assert_eq(in.size, SIZE);
    cr_assert_eq(in.tflags, TF_HAS_FLAGS | TF_SEND_FLUSH | TF_SEND_FUA | TF_SEND_TRIM | TF_SEND_WZ);
    cr_assert_eq(in.tflags & TF_MULTI_CONN, 0, "CAN_MULTI_CONN must stay off");
    cr_assert(in.have_bs);
    cr_assert_eq(in.bs_min, 1);
    cr_assert_eq(in.bs_pref, BS);
    cr_assert_eq(in.bs_max, 32u << 20);
    cr_assert_str_eq(in.name, EXPORT);
    cr_assert_str_eq(in.desc, DESC);
    /* INFO leaves us in the handshake: GO still works. */
    cr_assert_eq(cl_info(fd, OPT_GO, EXPORT, NULL, 0, &in), REP_ACK);
    cr_assert(in.have_bs, "block sizes are sent even unasked");
    check_read_matches(fd, 0, 100);
    cl_disc(fd);
}

Test(nbd, info_and_go_refuse_unknown_and_malformed)
{
    srv_start((struct disk_opts){ 0 });
    int fd = cl_hello(0x3);
    struct info in;
    cr_assert_eq(cl_info(fd, OPT_INFO, "nope", NULL, 0, &in), REP_ERR_UNKNOWN);
    cr_assert_eq(cl_info(fd, OPT_GO, "mem", NULL, 0, &in), REP_ERR_UNKNOWN);
    cr_assert_eq(cl_info(fd, OPT_GO, "mem00", NULL, 0, &in), REP_ERR_UNKNOWN);

    struct rep r;
    uint8_t d[64];
    /* Name length beyond the option. */
    uint32_t n = go_data(d, EXPORT, NULL, 0);
    put32(d, 0xffffffffu);
    cl_opt(fd, OPT_GO, d, n);
    cl_rep(fd, OPT_GO, &r);
    cr_assert_eq(r.type, REP_ERR_INVALID, "huge name length: 0x%x", r.type);
    /* Request count that does not fill the option. */
    n = go_data(d, EXPORT, NULL, 0);
    put16(d + 8, 3);
    cl_opt(fd, OPT_GO, d, n);
    cl_rep(fd, OPT_GO, &r);
    cr_assert_eq(r.type, REP_ERR_INVALID, "bad count: 0x%x", r.type);
    /* Too short to hold the fields. */
    cl_opt(fd, OPT_INFO, d, 5);
    cl_rep(fd, OPT_INFO, &r);
    cr_assert_eq(r.type, REP_ERR_INVALID, "short: 0x%x", r.type);
    /* Still usable. */
    cr_assert_eq(cl_info(fd, OPT_GO, EXPORT, NULL, 0, &in), REP_ACK);
    check_read_matches(fd, 0, 512);
    cl_disc(fd);
    srv_wait_done(1);
    cr_assert_eq(S.last_rc, 0, "server: %s", S.last_err);
}

Test(nbd, oversized_options_are_refused_or_close)
{
    srv_start((struct disk_opts){ 0 });
    int fd = cl_hello(0x3);
    /* 100 000 bytes: read, thrown away, answered TOO_BIG. */
    uint8_t *junk = calloc(1, 100000);
    cl_opt(fd, OPT_GO, junk, 100000);
    free(junk);
    struct rep r;
    cl_rep(fd, OPT_GO, &r);
    cr_assert_eq(r.type, REP_ERR_TOO_BIG, "0x%x", r.type);
    struct info in;
    cr_assert_eq(cl_info(fd, OPT_INFO, EXPORT, NULL, 0, &in), REP_ACK, "handshake goes on");
    /* 16 MiB announced: a denial of service, hang up without reading it. */
    uint8_t h[16];
    put64(h, MAGIC_OPT);
    put32(h + 8, OPT_LIST);
    put32(h + 12, 16u << 20);
    xsend(fd, h, sizeof h);
    cr_assert(server_closed(fd));
    close(fd);
    srv_wait_done(1);
    cr_assert_eq(S.last_rc, -MOAT_EPROTO);
    /* An export name over 4096 bytes cannot be refused politely either. */
    fd = cl_hello(0x3);
    junk = calloc(1, 5000);
    memset(junk, 'a', 5000);
    cl_opt(fd, OPT_EXPORT_NAME, junk, 5000);
    free(junk);
    cr_assert(server_closed(fd));
    close(fd);
    srv_wait_done(2);
    cr_assert_eq(S.last_rc, -MOAT_EPROTO);
}

Test(nbd, eof_in_the_middle_of_a_message_is_an_error)
{
    srv_start((struct disk_opts){ 0 });
    int fd = cl_hello(0x3);
    uint8_t h[10] = { 0 };
    put64(h, MAGIC_OPT);
    xsend(fd, h, sizeof h);      /* 10 of 16 header bytes */
    close(fd);
    srv_wait_done(1);
    cr_assert_eq(S.last_rc, -MOAT_EPROTO);
    cr_assert_not_null(strstr(S.last_err, "middle"), "err: %s", S.last_err);

    fd = cl_open(NULL);
    cl_req(fd, 0, CMD_WRITE, 9, 0, 4096);
    xsend(fd, h, sizeof h);      /* 10 of 4096 payload bytes */
    close(fd);
    srv_wait_done(2);
    cr_assert_eq(S.last_rc, -MOAT_EPROTO);
    cr_assert(all_bytes(S.mem.data, 4096, 0), "a truncated write reached the disk");

    /* EOF between requests is a clean end. */
    fd = cl_open(NULL);
    check_read_matches(fd, 0, 512);
    close(fd);
    srv_wait_done(3);
    cr_assert_eq(S.last_rc, 0, "server: %s", S.last_err);
}

/* =====================================================================================
 * Transmission, from a raw client
 * ===================================================================================== */

Test(nbd, bad_request_magic_closes)
{
    srv_start((struct disk_opts){ 0 });
    int fd = cl_open(NULL);
    uint8_t h[28] = { 0 };
    put32(h, 0x25609514u);
    put16(h + 6, CMD_READ);
    put32(h + 24, 512);
    xsend(fd, h, sizeof h);
    cr_assert(server_closed(fd), "connection stayed open");
    close(fd);
    srv_wait_done(1);
    cr_assert_eq(S.last_rc, -MOAT_EPROTO);
    cr_assert_not_null(strstr(S.last_err, "magic"), "err: %s", S.last_err);
    cr_assert_eq(mem_calls(&S.mem), 0);
}

Test(nbd, ranges_beyond_the_end_are_refused_untouched)
{
    srv_start((struct disk_opts){ 0 });
    memset(S.mem.data, 0x33, SIZE);
    int fd = cl_open(NULL);
    uint8_t buf[4096];
    memset(buf, 0xee, sizeof buf);
    cr_assert_eq(cl_read(fd, SIZE - 512, buf, 1024), E_INVAL, "read across the end");
    cr_assert_eq(cl_read(fd, SIZE, buf, 1), E_INVAL, "read at the end");
    cr_assert_eq(cl_read(fd, UINT64_MAX, buf, 1), E_INVAL, "read at 2^64-1");
    cr_assert_eq(cl_write(fd, 0, SIZE - 100, buf, 4096), E_NOSPC, "write across the end");
    cr_assert_eq(cl_write(fd, 0, SIZE + 4096, buf, 512), E_NOSPC, "write past the end");
    cr_assert_eq(cl_cmd(fd, 0, CMD_TRIM, SIZE - 512, 1024), E_INVAL, "trim across the end");
    cr_assert_eq(cl_cmd(fd, 0, CMD_WRITE_ZEROES, SIZE, 512), E_NOSPC, "zeroes past the end");
    cr_assert_eq(mem_calls(&S.mem), 0, "the backend was called");
    cr_assert(all_bytes(S.mem.data, SIZE, 0x33), "the disk changed");
    /* Up to the last byte is fine, and zero length at the end too. */
    check_read_matches(fd, SIZE - 1000, 1000);
    cr_assert_eq(cl_read(fd, SIZE, buf, 0), 0);
    cl_disc(fd);
    srv_wait_done(1);
    cr_assert_eq(S.last_st.errors, 7);
    cr_assert_eq(S.last_st.reads, 5);
}

Test(nbd, offset_plus_length_overflow_is_refused)
{
    srv_start((struct disk_opts){ 0 });
    int fd = cl_open(NULL);
    uint8_t buf[4096];
    memset(buf, 0xee, sizeof buf);
    uint64_t evil = UINT64_MAX - 100;   /* evil + len wraps to a small number */
    cr_assert_eq(cl_read(fd, evil, buf, 4096), E_INVAL);
    cr_assert_eq(cl_write(fd, 0, evil, buf, 4096), E_NOSPC);
    cr_assert_eq(cl_cmd(fd, 0, CMD_TRIM, evil, 4096), E_INVAL);
    cr_assert_eq(cl_cmd(fd, 0, CMD_WRITE_ZEROES, evil, 4096), E_NOSPC);
    cr_assert_eq(cl_cmd(fd, 0, CMD_WRITE_ZEROES, 1, 0xffffffffu), E_NOSPC);
    cr_assert_eq(mem_calls(&S.mem), 0, "the backend was called");
    cr_assert(all_bytes(S.mem.data, SIZE, 0), "the disk changed");
    /* The write's payload was consumed: the stream is still in step. */
    check_read_matches(fd, 0, 4096);
    cl_disc(fd);
}

Test(nbd, read_only_export_refuses_every_write)
{
    srv_start((struct disk_opts){ .read_only = true });
    memset(S.mem.data, 0x44, SIZE);
    int fd = cl_hello(0x3);
    struct info in;
    cr_assert_eq(cl_info(fd, OPT_GO, EXPORT, NULL, 0, &in), REP_ACK);
    cr_assert_eq(in.tflags, TF_HAS_FLAGS | TF_READ_ONLY, "flags 0x%x", in.tflags);
    uint8_t buf[1024] = { 0 };
    cr_assert_eq(cl_write(fd, 0, 0, buf, sizeof buf), E_PERM);
    cr_assert_eq(cl_write(fd, 0, 100, buf, 10), E_PERM);
    cr_assert_eq(cl_cmd(fd, 0, CMD_TRIM, 0, 4096), E_PERM);
    cr_assert_eq(cl_cmd(fd, 0, CMD_WRITE_ZEROES, 0, 4096), E_PERM);
    cr_assert_eq(cl_cmd(fd, 0, CMD_FLUSH, 0, 0), E_INVAL, "FLUSH was not offered");
    cr_assert_eq(atomic_load(&S.mem.writes) + atomic_load(&S.mem.trims) +
                 atomic_load(&S.mem.zeroes) + atomic_load(&S.mem.flushes), 0);
    cr_assert(all_bytes(S.mem.data, SIZE, 0x44), "the disk changed");
    check_read_matches(fd, 1000, 3000);
    cl_disc(fd);
}

Test(nbd, payload_limit)
{
    srv_start((struct disk_opts){ 0 });
    int fd = cl_open(NULL);
    /* A READ over 32 MiB is refused and the connection goes on. */
    uint8_t b[16];
    cr_assert_eq(cl_read(fd, 0, b, (32u << 20) + 1), E_INVAL);
    check_read_matches(fd, 0, 512);
    /* A WRITE over 32 MiB: hang up without reading its payload. */
    cl_req(fd, 0, CMD_WRITE, 77, 0, (32u << 20) + 1);
    cr_assert(server_closed(fd), "connection stayed open");
    close(fd);
    srv_wait_done(1);
    cr_assert_eq(S.last_rc, -MOAT_EPROTO);
    cr_assert_not_null(strstr(S.last_err, "limit"), "err: %s", S.last_err);
    cr_assert_eq(atomic_load(&S.mem.writes), 0);
}

Test(nbd, large_requests_are_split_and_exact)
{
    srv_start((struct disk_opts){ 0 });
    int fd = cl_open(NULL);
    /* 1 MiB + 7 bytes at byte 300: unaligned head, 2048 whole blocks in
     * calls of 64, unaligned tail. */
    uint32_t len = (1u << 20) + 7;
    uint8_t *p = malloc(len);
    fill_pattern(p, len, 7);
    cr_assert_eq(cl_write(fd, 0, 300, p, len), 0);
    cr_assert_eq(memcmp(S.mem.data + 300, p, len), 0, "disk differs");
    cr_assert(all_bytes(S.mem.data, 300, 0), "head neighbour touched");
    cr_assert(all_bytes(S.mem.data + 300 + len, SIZE - 300 - len, 0), "tail neighbour touched");
    cr_assert_leq(atomic_load(&S.mem.max_seen), MAXB);
    cr_assert_eq(atomic_load(&S.mem.violations), 0);
    cr_assert_geq(atomic_load(&S.mem.writes), (1u << 20) / (MAXB * BS));
    /* Read it back through the protocol, unaligned too. */
    uint8_t *q = malloc(len);
    cr_assert_eq(cl_read(fd, 300, q, len), 0);
    cr_assert_eq(memcmp(q, p, len), 0, "read back differs");
    check_read_matches(fd, 511, 2);
    check_read_matches(fd, 1, 1);
    free(p);
    free(q);
    cl_disc(fd);
    srv_wait_done(1);
    cr_assert_eq(S.last_st.bytes_written, len);
    cr_assert_eq(S.last_st.bytes_read, (uint64_t)len + 3);
}

Test(nbd, small_unaligned_writes_modify_only_their_bytes)
{
    srv_start((struct disk_opts){ 0 });
    memset(S.mem.data, 0x99, SIZE);
    int fd = cl_open(NULL);
    uint8_t p[100];
    memset(p, 0x01, sizeof p);
    cr_assert_eq(cl_write(fd, 0, 510, p, 100), 0, "across a block boundary");
    cr_assert_eq(cl_write(fd, 0, SIZE - 1, p, 1), 0, "the very last byte");
    cr_assert_eq(cl_write(fd, 0, 4097, p, 0), 0, "zero length");
    cr_assert(all_bytes(S.mem.data, 510, 0x99));
    cr_assert(all_bytes(S.mem.data + 510, 100, 0x01));
    cr_assert(all_bytes(S.mem.data + 610, SIZE - 611, 0x99));
    cr_assert_eq(S.mem.data[SIZE - 1], 0x01);
    check_read_matches(fd, 505, 110);
    cl_disc(fd);
}

static void zeroes_case(bool native)
{
    srv_start((struct disk_opts){ .no_zeroes = !native });
    memset(S.mem.data, 0x55, SIZE);
    int fd = cl_open(NULL);
    /* [1000, 1000 + 200000): partial head and tail, whole blocks between. */
    cr_assert_eq(cl_cmd(fd, CMDF_NO_HOLE, CMD_WRITE_ZEROES, 1000, 200000), 0);
    cr_assert(all_bytes(S.mem.data, 1000, 0x55), "head neighbour");
    cr_assert(all_bytes(S.mem.data + 1000, 200000, 0), "range not zeroed");
    cr_assert(all_bytes(S.mem.data + 201000, SIZE - 201000, 0x55), "tail neighbour");
    if (native)
        cr_assert_gt(atomic_load(&S.mem.zeroes), 0, "zeroes() not used");
    else
        cr_assert_eq(atomic_load(&S.mem.zeroes), 0, "zeroes() used though not offered");
    cr_assert_leq(atomic_load(&S.mem.max_seen), MAXB);
    cr_assert_eq(atomic_load(&S.mem.violations), 0);
    cr_assert_eq(cl_cmd(fd, CMDF_FAST_ZERO, CMD_WRITE_ZEROES, 0, 512), E_INVAL,
                 "FAST_ZERO was not offered");
    cl_disc(fd);
}

Test(nbd, write_zeroes_native) { zeroes_case(true); }
Test(nbd, write_zeroes_emulated_by_writes) { zeroes_case(false); }

Test(nbd, trim_discards_only_whole_blocks)
{
    srv_start((struct disk_opts){ 0 });
    memset(S.mem.data, 0x66, SIZE);
    int fd = cl_open(NULL);
    /* [100, 2100): whole blocks 1..3 = bytes [512, 2048). */
    cr_assert_eq(cl_cmd(fd, 0, CMD_TRIM, 100, 2000), 0);
    cr_assert(all_bytes(S.mem.data, 512, 0x66));
    cr_assert(all_bytes(S.mem.data + 512, 1536, TRIM_MARK));
    cr_assert(all_bytes(S.mem.data + 2048, SIZE - 2048, 0x66));
    /* Less than a block: nothing to discard, still a success. */
    cr_assert_eq(cl_cmd(fd, 0, CMD_TRIM, 4100, 300), 0);
    cr_assert_eq(atomic_load(&S.mem.trims), 1);
    cl_disc(fd);

    /* A disk without discard: TRIM is not offered and is refused. */
    teardown();
    srv_start((struct disk_opts){ .no_trim = true });
    struct info in;
    fd = cl_hello(0x3);
    cr_assert_eq(cl_info(fd, OPT_GO, EXPORT, NULL, 0, &in), REP_ACK);
    cr_assert_eq(in.tflags & TF_SEND_TRIM, 0);
    cr_assert_eq(cl_cmd(fd, 0, CMD_TRIM, 0, 4096), E_INVAL);
    cr_assert_eq(atomic_load(&S.mem.trims), 0);
    cl_disc(fd);
}

Test(nbd, fua_and_flush)
{
    srv_start((struct disk_opts){ 0 });
    int fd = cl_open(NULL);
    uint8_t p[512] = { 1 };
    cr_assert_eq(cl_write(fd, 0, 0, p, 512), 0);
    cr_assert_eq(atomic_load(&S.mem.flushes), 0);
    cr_assert_eq(cl_write(fd, CMDF_FUA, 0, p, 512), 0);
    cr_assert_eq(atomic_load(&S.mem.flushes), 1, "FUA write did not flush");
    cr_assert_eq(cl_cmd(fd, CMDF_FUA, CMD_WRITE_ZEROES, 0, 512), 0);
    cr_assert_eq(atomic_load(&S.mem.flushes), 2, "FUA write-zeroes did not flush");
    cr_assert_eq(cl_cmd(fd, 0, CMD_FLUSH, 0, 0), 0);
    cr_assert_eq(atomic_load(&S.mem.flushes), 3);
    cr_assert_eq(cl_cmd(fd, 0, CMD_FLUSH, 512, 0), E_INVAL, "FLUSH with an offset");
    cr_assert_eq(cl_cmd(fd, 0, CMD_FLUSH, 0, 512), E_INVAL, "FLUSH with a length");
    cr_assert_eq(atomic_load(&S.mem.flushes), 3);
    cl_disc(fd);

    /* No flush on the disk: neither FLUSH nor FUA is offered or accepted. */
    teardown();
    srv_start((struct disk_opts){ .no_flush = true });
    struct info in;
    fd = cl_hello(0x3);
    cr_assert_eq(cl_info(fd, OPT_GO, EXPORT, NULL, 0, &in), REP_ACK);
    cr_assert_eq(in.tflags & (TF_SEND_FLUSH | TF_SEND_FUA), 0);
    cr_assert_eq(cl_cmd(fd, 0, CMD_FLUSH, 0, 0), E_INVAL);
    cr_assert_eq(cl_write(fd, CMDF_FUA, 0, p, 512), E_INVAL);
    cr_assert_eq(atomic_load(&S.mem.flushes) + atomic_load(&S.mem.writes), 0);
    check_read_matches(fd, 0, 512);
    cl_disc(fd);
}

Test(nbd, unknown_commands_and_flags_are_einval)
{
    srv_start((struct disk_opts){ 0 });
    int fd = cl_open(NULL);
    cr_assert_eq(cl_cmd(fd, 0, 99, 0, 512), E_INVAL, "unknown command");
    cr_assert_eq(cl_cmd(fd, 0, CMD_CACHE, 0, 512), E_INVAL, "CACHE not offered");
    cr_assert_eq(cl_cmd(fd, 0, CMD_BLOCK_STATUS, 0, 512), E_INVAL, "no metadata contexts");
    cr_assert_eq(cl_cmd(fd, 0x8000, CMD_READ, 0, 512), E_INVAL, "unknown flag");
    cr_assert_eq(cl_cmd(fd, CMDF_NO_HOLE, CMD_READ, 0, 512), E_INVAL, "NO_HOLE on READ");
    uint8_t p[512];
    memset(p, 0xcc, sizeof p);
    cr_assert_eq(cl_write(fd, CMDF_NO_HOLE, 0, p, 512), E_INVAL, "NO_HOLE on WRITE");
    cr_assert(all_bytes(S.mem.data, 512, 0), "refused write reached the disk");
    check_read_matches(fd, 0, 512);
    cl_disc(fd);
    srv_wait_done(1);
    cr_assert_eq(S.last_st.other, 3);
    cr_assert_eq(S.last_st.errors, 6);
    cr_assert_eq(S.last_rc, 0, "server: %s", S.last_err);
}

Test(nbd, backend_errors_map_to_nbd_errors)
{
    srv_start((struct disk_opts){ 0 });
    int fd = cl_open(NULL);
    uint8_t p[1024] = { 0 };
    static const struct { int rc; uint32_t rd, wr; } map[] = {
        { -MOAT_EIO, E_IO, E_IO },
        { -MOAT_EROFS, E_PERM, E_PERM },
        { -MOAT_EPERM, E_PERM, E_PERM },
        { -MOAT_ERANGE, E_INVAL, E_NOSPC },
        { -MOAT_EINVAL, E_INVAL, E_INVAL },
        { -MOAT_ENOTSUP, E_NOTSUP, E_NOTSUP },
        { -MOAT_ESTALE, E_IO, E_IO },
        { -MOAT_ECONN, E_IO, E_IO },
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        atomic_store(&S.mem.fail_rc, map[i].rc);
        cr_assert_eq(cl_read(fd, 0, p, 1024), map[i].rd, "read with backend %d", map[i].rc);
        cr_assert_eq(cl_write(fd, 0, 0, p, 1024), map[i].wr, "write with backend %d", map[i].rc);
        cr_assert_eq(cl_write(fd, 0, 7, p, 10), map[i].wr, "RMW with backend %d", map[i].rc);
        cr_assert_eq(cl_cmd(fd, 0, CMD_FLUSH, 0, 0), map[i].wr, "flush with backend %d", map[i].rc);
    }
    atomic_store(&S.mem.fail_rc, 0);
    /* A failed READ sent no data: the stream is in step. */
    check_read_matches(fd, 0, 1024);
    cl_disc(fd);
    srv_wait_done(1);
    cr_assert_eq(S.last_rc, 0, "server: %s", S.last_err);
    cr_assert_eq(S.last_st.errors, 8 * 4);
}

/* fuzz_nbd regression (harness/fuzz/regress/fuzz_nbd/write-zero-length-null-
 * memcpy): a 0-byte WRITE as a fresh slot's first request has no payload
 * buffer; copying its 0 payload bytes out of the read-ahead passed NULL to
 * memcpy (undefined behaviour, caught by UBSan). It must simply succeed,
 * touch nothing, and keep the connection in step. */
Test(nbd, write_zero_length_null_memcpy)
{
    srv_start((struct disk_opts){ 0 });
    int fd = cl_open(NULL);
    cr_assert_eq(cl_write(fd, 0, 0, NULL, 0), 0);
    cr_assert_eq(cl_write(fd, 0, 3, NULL, 0), 0);
    cr_assert_eq(cl_write(fd, 0, SIZE, NULL, 0), 0);
    cr_assert_eq(atomic_load(&S.mem.writes), 0);
    uint8_t p[700];
    fill_pattern(p, sizeof p, 9);
    cr_assert_eq(cl_write(fd, 0, 100, p, sizeof p), 0);
    check_read_matches(fd, 0, 1024);
    cl_disc(fd);
    srv_wait_done(1);
    cr_assert_eq(S.last_rc, 0, "server: %s", S.last_err);
    cr_assert_eq(S.last_st.writes, 4);
    cr_assert_eq(S.last_st.errors, 0);
    cr_assert_eq(S.last_st.bytes_written, sizeof p);
}

Test(nbd, disc_ends_cleanly_with_stats)
{
    srv_start((struct disk_opts){ 0 });
    int fd = cl_open(NULL);
    uint8_t p[2048];
    fill_pattern(p, sizeof p, 3);
    cr_assert_eq(cl_write(fd, 0, 0, p, 2048), 0);
    check_read_matches(fd, 0, 2048);
    cr_assert_eq(cl_cmd(fd, 0, CMD_FLUSH, 0, 0), 0);
    cr_assert_eq(cl_cmd(fd, 0, CMD_TRIM, 8192, 512), 0);
    cr_assert_eq(cl_cmd(fd, 0, CMD_WRITE_ZEROES, 16384, 512), 0);
    cl_disc(fd);
    srv_wait_done(1);
    cr_assert_eq(S.last_rc, 0, "server: %s", S.last_err);
    struct nbd_stats *st = &S.last_st;
    cr_assert(st->transmission);
    cr_assert_eq(st->reads, 1);
    cr_assert_eq(st->writes, 1);
    cr_assert_eq(st->flushes, 1);
    cr_assert_eq(st->trims, 1);
    cr_assert_eq(st->zeroes, 1);
    cr_assert_eq(st->bytes_read, 2048);
    cr_assert_eq(st->bytes_written, 2048);
    cr_assert_eq(st->errors, 0);
    cr_assert_eq(st->backend_calls, mem_calls(&S.mem));
}

Test(nbd, unusable_backends_are_refused_before_any_byte)
{
    struct memq mq = { .m = NULL };
    struct nbd_backend good = {
        .blocks = 8, .block_size = 512, .max_blocks = 1, .depth = 1, .submit = mem_submit,
        .reap = mem_reap, .ctx = &mq,
    };
    struct { const char *what; struct nbd_backend be; const char *name; } bad[] = {
        { "block size 1000", good, EXPORT },
        { "block size 256", good, EXPORT },
        { "zero blocks", good, EXPORT },
        { "capacity overflow", good, EXPORT },
        { "max_blocks 0", good, EXPORT },
        { "no submit", good, EXPORT },
        { "no reap", good, EXPORT },
        { "depth 0", good, EXPORT },
        { "empty name", good, "" },
    };
    bad[0].be.block_size = 1000;
    bad[1].be.block_size = 256;
    bad[2].be.blocks = 0;
    bad[3].be.blocks = UINT64_MAX / 256;
    bad[4].be.max_blocks = 0;
    bad[5].be.submit = NULL;
    bad[6].be.reap = NULL;
    bad[7].be.depth = 0;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int sv[2];
        cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        char err[128] = "";
        int rc = nbd_serve_connection(sv[0], bad[i].name, &bad[i].be, NULL, err, sizeof err);
        cr_assert_eq(rc, -MOAT_EINVAL, "%s: rc %d", bad[i].what, rc);
        cr_assert_neq(err[0], '\0', "%s: no message", bad[i].what);
        close(sv[0]);
        uint8_t b;
        cr_assert_eq(read(sv[1], &b, 1), 0, "%s: bytes were sent", bad[i].what);
        close(sv[1]);
    }
}

/* ---- pipelining ------------------------------------------------------------------------- */

/* Read one simple reply of any cookie; a READ's data follows when ok. */
static uint64_t cl_any_reply(int fd, uint32_t *error)
{
    uint8_t r[16];
    xrecv(fd, r, sizeof r);
    cr_assert_eq(get32(r), MAGIC_REPLY, "reply magic 0x%08x", get32(r));
    *error = get32(r + 4);
    return get64(r + 8);
}

Test(nbd, pipelined_requests_are_answered_out_of_order_each_once)
{
    srv_start((struct disk_opts){ 0 });
    int fd = cl_open(NULL);
    enum { N = 32, LEN = 4096 };
    static uint8_t pat[N][LEN], got[N][LEN];
    /* 32 writes to distinct 4 KiB areas, all sent before any reply is read. */
    for (uint32_t i = 0; i < N; i++) {
        fill_pattern(pat[i], LEN, 100 + i);
        cl_req(fd, 0, CMD_WRITE, 500 + i, (uint64_t)i * 2 * LEN, LEN);
        xsend(fd, pat[i], LEN);
    }
    bool seen[N] = { 0 };
    bool out_of_order = false;
    for (uint32_t k = 0; k < N; k++) {
        uint32_t e;
        uint64_t ck = cl_any_reply(fd, &e);
        cr_assert(ck >= 500 && ck < 500 + N, "reply for cookie %llu, never sent",
                  (unsigned long long)ck);
        cr_assert(!seen[ck - 500], "cookie %llu answered twice", (unsigned long long)ck);
        cr_assert_eq(e, 0, "write %llu failed: %u", (unsigned long long)ck - 500, e);
        seen[ck - 500] = true;
        out_of_order |= ck != 500 + k;
    }
    cr_assert(out_of_order, "32 pipelined writes were answered strictly in order: the engine "
              "serves one at a time");
    for (uint32_t i = 0; i < N; i++)
        cr_assert_eq(memcmp(S.mem.data + (uint64_t)i * 2 * LEN, pat[i], LEN), 0,
                     "write %u did not land", i);
    /* 32 reads back, with one unaligned read (read-modify-write path) in
     * the middle: it waits for the pipeline, then runs alone. */
    for (uint32_t i = 0; i < N; i++)
        cl_req(fd, 0, CMD_READ, 900 + i, (uint64_t)i * 2 * LEN + (i == N / 2 ? 7 : 0),
               i == N / 2 ? LEN - 7 : LEN);
    memset(seen, 0, sizeof seen);
    for (uint32_t k = 0; k < N; k++) {
        uint32_t e;
        uint64_t ck = cl_any_reply(fd, &e);
        cr_assert(ck >= 900 && ck < 900 + N, "reply for cookie %llu", (unsigned long long)ck);
        uint32_t i = (uint32_t)(ck - 900);
        cr_assert(!seen[i], "cookie %llu answered twice", (unsigned long long)ck);
        cr_assert_eq(e, 0);
        seen[i] = true;
        xrecv(fd, got[i], i == N / 2 ? LEN - 7 : LEN);
        cr_assert_eq(memcmp(got[i], pat[i] + (i == N / 2 ? 7 : 0), i == N / 2 ? LEN - 7 : LEN), 0,
                     "read %u returned other bytes", i);
    }
    cl_disc(fd);
    srv_wait_done(1);
    cr_assert_eq(S.last_rc, 0, "server: %s", S.last_err);
    cr_assert_gt(S.last_st.inflight_max, 8, "at most %llu requests were in flight",
                 (unsigned long long)S.last_st.inflight_max);
    cr_assert_eq(S.last_st.serialized, 1, "%llu requests took the serialized path, want 1",
                 (unsigned long long)S.last_st.serialized);
    cr_assert(S.most_queued >= 8 && S.most_queued <= DEPTH, "the backend had at most %u calls "
              "queued (want 8..%u)", S.most_queued, DEPTH);
    cr_assert_lt(S.last_st.reply_sends, 64, "64 replies took %llu sends: none were batched",
                 (unsigned long long)S.last_st.reply_sends);
    cr_assert_eq(atomic_load(&S.mem.violations), 0, "the backend got an invalid call");
}

Test(nbd, disconnect_answers_what_is_in_flight_first)
{
    srv_start((struct disk_opts){ 0 });
    int fd = cl_open(NULL);
    uint8_t p[4096];
    fill_pattern(p, sizeof p, 9);
    for (uint32_t i = 0; i < 8; i++) {
        cl_req(fd, CMDF_FUA, CMD_WRITE, 70 + i, (uint64_t)i * 4096, 4096);
        xsend(fd, p, sizeof p);
    }
    cl_req(fd, 0, CMD_DISC, 99, 0, 0);
    bool seen[8] = { 0 };
    for (int k = 0; k < 8; k++) {
        uint32_t e;
        uint64_t ck = cl_any_reply(fd, &e);
        cr_assert(ck >= 70 && ck < 78 && !seen[ck - 70], "cookie %llu", (unsigned long long)ck);
        cr_assert_eq(e, 0);
        seen[ck - 70] = true;
    }
    cr_assert(server_closed(fd), "the server kept the connection after DISC");
    close(fd);
    srv_wait_done(1);
    cr_assert_eq(S.last_rc, 0, "server: %s", S.last_err);
    cr_assert_eq(S.last_st.writes, 8);
    /* FUA: each write was followed by a flush before its reply. */
    cr_assert_eq(atomic_load(&S.mem.flushes), 8, "%llu flushes for 8 FUA writes",
                 (unsigned long long)atomic_load(&S.mem.flushes));
    for (uint32_t i = 0; i < 8; i++)
        cr_assert_eq(memcmp(S.mem.data + i * 4096, p, sizeof p), 0, "write %u lost", i);
}

Test(nbd, a_failing_call_fails_its_request_alone)
{
    srv_start((struct disk_opts){ 0 });
    int fd = cl_open(NULL);
    atomic_store(&S.mem.fail_rc, -MOAT_EIO);
    for (uint32_t i = 0; i < 4; i++)
        cl_req(fd, 0, CMD_READ, 40 + i, (uint64_t)i * 512 * MAXB * 2, 512 * MAXB * 2);
    for (int k = 0; k < 4; k++) {
        uint32_t e;
        uint64_t ck = cl_any_reply(fd, &e);
        cr_assert(ck >= 40 && ck < 44, "cookie %llu", (unsigned long long)ck);
        cr_assert_eq(e, E_IO, "a read whose calls failed answered %u, want EIO", e);
    }
    atomic_store(&S.mem.fail_rc, 0);
    check_read_matches(fd, 0, 4096);    /* and the connection goes on */
    cl_disc(fd);
    srv_wait_done(1);
    cr_assert_eq(S.last_rc, 0, "server: %s", S.last_err);
    cr_assert_eq(S.last_st.errors, 4);
}

Test(nbd, multi_conn_is_offered_only_with_a_shared_flush_and_edge_lock)
{
    pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    struct { bool multi; pthread_mutex_t *lock; bool want; } cases[] = {
        { false, NULL, false }, { true, NULL, false }, { false, &lock, false },
        { true, &lock, true },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        srv_start((struct disk_opts){ 0 });
        S.be.multi_conn = cases[i].multi;
        S.be.edge_lock = cases[i].lock;
        struct info in;
        int fd = cl_open(&in);
        cr_assert_eq(!!(in.tflags & TF_MULTI_CONN), cases[i].want,
                     "multi_conn %d, edge lock %s: CAN_MULTI_CONN %s", cases[i].multi,
                     cases[i].lock ? "given" : "none", cases[i].want ? "missing" : "offered");
        cl_disc(fd);
        srv_wait_done(1);
        srv_stop();
        free(S.mem.data);
        S.mem.data = NULL;
    }
}

/* Two connections write different bytes of the same blocks at once: each
 * write is a read-modify-write of the block, and the shared edge lock keeps
 * one from undoing the other. */
struct edge_writer {
    int fd;                 /* connected by the main thread (asserts stay there) */
    uint32_t off;           /* byte offset inside each block */
    uint8_t last[64];       /* the last value written to each block */
    uint32_t failures;
};

/* Whole-buffer socket I/O without asserting (this runs off the main thread). */
static bool io_all(int fd, void *p, size_t n, bool sending)
{
    for (size_t done = 0; done < n;) {
        ssize_t r = sending ? send(fd, (uint8_t *)p + done, n - done, MSG_NOSIGNAL)
                        : recv(fd, (uint8_t *)p + done, n - done, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        done += (size_t)r;
    }
    return true;
}

static void *edge_writer_main(void *arg)
{
    struct edge_writer *w = arg;
    for (uint32_t round = 0; round < 200; round++) {
        uint32_t blk = round % 64;
        uint8_t req[28 + 100], rep[16];
        put32(req, MAGIC_REQ);
        put16(req + 4, 0);
        put16(req + 6, CMD_WRITE);
        put64(req + 8, round);
        put64(req + 16, (uint64_t)blk * BS + w->off);
        put32(req + 24, 100);
        memset(req + 28, (int)(round * 7 + w->off), 100);
        if (!io_all(w->fd, req, sizeof req, true) || !io_all(w->fd, rep, sizeof rep, false) ||
            get32(rep) != MAGIC_REPLY || get32(rep + 4) != 0 || get64(rep + 8) != round) {
            w->failures++;
            break;
        }
        w->last[blk] = req[28];
    }
    return NULL;
}

Test(nbd, edge_blocks_of_two_connections_do_not_undo_each_other)
{
    pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    srv_start((struct disk_opts){ 0 });
    S.be.multi_conn = true;
    S.be.edge_lock = &lock;
    struct edge_writer w[2] = { { .fd = cl_open(NULL), .off = 10 },
                                { .fd = cl_open(NULL), .off = 300 } };
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, edge_writer_main, &w[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 2; i++)
        cl_disc(w[i].fd);
    srv_wait_done(2);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(w[i].failures, 0, "connection %d: a write failed or was answered wrong", i);
        for (uint32_t blk = 0; blk < 64; blk++)
            cr_assert(all_bytes(S.mem.data + blk * BS + w[i].off, 100, w[i].last[blk]),
                      "block %u: the write at +%u was undone by the other connection's", blk,
                      w[i].off);
    }
    cr_assert_eq(S.total.serialized, 400, "%llu of 400 unaligned writes were serialized",
                 (unsigned long long)S.total.serialized);
}
