/*
 * Capabilities end to end under KVM: moat's control socket, libmoat, and a
 * RAM-backed BlockDevice domain (ramblk). One million verified requests
 * over one session; domains that write malformed completions are refused
 * by the client, reported and audited while nothing crashes; a client that
 * writes malformed requests gets a specific error for each; restarts make
 * sessions stale and reattach works; Control operations.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "control.h"
#include "libmoat_internal.h"
#include "testutil.h"

#define BOOT_MS 10000u
#define READY   DOMAIN_STATE_BIT(DOMAIN_READY)
#define ENDED   DOMAIN_TERMINAL

static struct supervisor sup;
static struct control ctl;
static char err[512];
static char sock[PATH_MAX];

static void start(void)
{
    TU_REQUIRE_KVM();
    cr_assert(tu_moat_start(&sup, &ctl, NULL, sock, sizeof sock, err, sizeof err), "%s", err);
}

static void finish(void) { tu_moat_stop(&sup, &ctl); }

static struct domain *add_ramblk(const char *name, const char *mem, const char *args)
{
    char spec[512];
    /* restart=never: these tests look at the end of an incarnation (the
     * restart policy has its own suite, test_restart). */
    snprintf(spec, sizeof spec, "name=%s kernel=%s mem=%s restart=never args=\"%s\"", name,
             tu_guest("ramblk"), mem, args);
    struct domain *d = tu_boot(&sup, spec, BOOT_MS, err, sizeof err);
    cr_assert_not_null(d, "boot %s: %s", name, err);
    return d;
}


struct conn {
    struct moat_client *c;
    struct moat_cap *cap;
    struct moat_session *s;
};

static struct conn open_blk_with(const char *cap_name, uint32_t rights,
                                 struct moat_session_params p)
{
    struct conn k = { 0 };
    int rc = moat_connect(sock, &k.c);
    cr_assert_eq(rc, 0, "connect %s: %s", sock, moat_strerror(rc));
    rc = moat_open(k.c, cap_name, rights, &k.cap);
    cr_assert_eq(rc, 0, "open %s: %s", cap_name, moat_strerror(rc));
    rc = moat_session_open(k.cap, &p, &k.s);
    cr_assert_eq(rc, 0, "session on %s: %s", cap_name, moat_strerror(rc));
    return k;
}

static struct conn open_blk(const char *cap_name, uint32_t rights, uint32_t entries)
{
    return open_blk_with(cap_name, rights, (struct moat_session_params){ .entries = entries });
}

static void close_conn(struct conn *k)
{
    moat_session_close(k->s);
    moat_close(k->cap);
    moat_disconnect(k->c);
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* ---- one million requests ------------------------------------------------------- */

#define BS        512u
#define DISK_BLKS 32768u        /* 16 MiB */
#define BUCKETS   32u           /* in-flight requests never overlap: one per bucket */
#define MAXB      8u

Test(caps, million_requests_verified, .init = start, .fini = finish, .timeout = 600)
{
    add_ramblk("ram0", "48M", "size=16M max=64");
    struct conn k = open_blk("ram0.blk0", MOAT_RIGHT_READ | MOAT_RIGHT_WRITE, 64);
    uint8_t *shadow = calloc(DISK_BLKS, BS);
    uint8_t (*bufs)[MAXB * BS] = calloc(BUCKETS, sizeof *bufs);
    cr_assert(shadow && bufs);
    const uint64_t total = 1000000;
    uint64_t done = 0, reads = 0, writes = 0, bytes_checked = 0;
    struct moat_blk_req r[BUCKETS];
    struct moat_completion cpl[BUCKETS];
    while (done < total) {
        uint32_t n = total - done < BUCKETS ? (uint32_t)(total - done) : BUCKETS;
        for (uint32_t i = 0; i < n; i++) {
            uint32_t blocks = 1 + (uint32_t)(next_rand() % MAXB);
            uint64_t span = DISK_BLKS / BUCKETS;
            uint64_t lba = i * span + next_rand() % (span - blocks);
            bool wr = next_rand() % 2 == 0;
            r[i] = (struct moat_blk_req){ .op = wr ? MOAT_BLK_WRITE : MOAT_BLK_READ, .lba = lba,
                                          .blocks = blocks, .buf = bufs[i], .user_data = i };
            if (wr) {
                for (uint32_t b = 0; b < blocks * BS; b += 8) {
                    uint64_t v = next_rand();
                    memcpy(bufs[i] + b, &v, 8);
                }
                memcpy(shadow + lba * BS, bufs[i], (size_t)blocks * BS);
                writes++;
            } else {
                memset(bufs[i], 0xEE, (size_t)blocks * BS);
                reads++;
            }
        }
        int q = moat_blk_submit(k.s, r, n);
        cr_assert_eq(q, (int)n, "submit of %u requests queued %d (%s)", n, q,
                     q < 0 ? moat_strerror(q) : "partial");
        for (uint32_t got = 0; got < n;) {
            int m = moat_wait(k.s, cpl, BUCKETS, 10000);
            cr_assert_gt(m, 0, "wait after %llu requests: %s", (unsigned long long)done,
                         moat_strerror(m));
            for (int j = 0; j < m; j++) {
                const struct moat_blk_req *q2 = &r[cpl[j].user_data];
                cr_assert_eq(cpl[j].status, 0, "request %llu failed: %s",
                             (unsigned long long)(done + cpl[j].user_data),
                             moat_strerror(cpl[j].status));
                cr_assert_eq(cpl[j].blocks, q2->blocks, "short completion");
                if (q2->op == MOAT_BLK_READ) {
                    cr_assert(memcmp(q2->buf, shadow + q2->lba * BS, (size_t)q2->blocks * BS) == 0,
                              "read of %u blocks at LBA %llu after %llu requests differs from what was written",
                              q2->blocks, (unsigned long long)q2->lba, (unsigned long long)done);
                    bytes_checked += (uint64_t)q2->blocks * BS;
                }
            }
            got += (uint32_t)m;
        }
        done += n;
    }
    struct moat_session_stats st;
    moat_session_stats(k.s, &st);
    cr_assert_eq(st.completed, total, "session counted %llu completions",
                 (unsigned long long)st.completed);
    cr_assert_eq(st.malformed, 0);
    cr_log_info("1M requests (%llu reads, %llu writes, %llu MiB verified): %llu kicks, %llu waits",
                (unsigned long long)reads, (unsigned long long)writes,
                (unsigned long long)(bytes_checked >> 20), (unsigned long long)st.kicks_sent,
                (unsigned long long)st.waits);
    /* Whole-disk check through the synchronous path. */
    uint8_t *all = malloc((size_t)DISK_BLKS * BS);
    for (uint32_t lba = 0; lba < DISK_BLKS; lba += 1024) {
        int rc = moat_blk_read(k.s, lba, 1024, all + (size_t)lba * BS);
        cr_assert_eq(rc, 0, "sync read at %u: %s", lba, moat_strerror(rc));
    }
    cr_assert(memcmp(all, shadow, (size_t)DISK_BLKS * BS) == 0, "the disk differs from the shadow copy");
    free(all);
    free(shadow);
    free(bufs);
    close_conn(&k);
}

/* ---- hostile server --------------------------------------------------------------- */

static struct moat_cap *open_control(struct moat_client *c)
{
    struct moat_cap *ctl_cap;
    int rc = moat_open(c, "control", MOAT_RIGHT_READ | MOAT_RIGHT_ADMIN, &ctl_cap);
    cr_assert_eq(rc, 0, "open control: %s", moat_strerror(rc));
    return ctl_cap;
}

static void hostile_case(const char *mode, const char *needle)
{
    struct domain *good = add_ramblk("good", "16M", "size=4M");
    char args[64];
    snprintf(args, sizeof args, "size=4M hostile=%s after=10", mode);
    struct domain *evil = add_ramblk("evil", "16M", args);
    /* Recovery off: the first malformed completion fails the session (the
     * bounded recovery has its own test below). */
    struct conn k = open_blk_with("evil.blk0", MOAT_RIGHT_READ | MOAT_RIGHT_WRITE,
                                  (struct moat_session_params){ .entries = 16, .recover_ms = -1 });
    uint8_t buf[BS], sentinel[BS];
    memset(sentinel, 0xC3, sizeof sentinel);
    for (int i = 0; i < 10; i++)
        cr_assert_eq(moat_blk_read(k.s, (uint64_t)i, 1, buf), 0, "honest request %d failed", i);
    /* The next request is answered malformed (a duplicate shows up one
     * request later, when the real completion follows the forged one). */
    int rc = 0;
    for (int i = 0; i < 2 && rc == 0; i++) {
        memcpy(buf, sentinel, sizeof buf);
        rc = moat_blk_read(k.s, 20 + (uint64_t)i, 1, buf);
    }
    cr_assert_eq(rc, -MOAT_EPROTO, "hostile '%s': expected EPROTO, got %s", mode, moat_strerror(rc));
    cr_assert(memcmp(buf, sentinel, sizeof buf) == 0, "a malformed completion wrote the user's buffer");
    rc = moat_blk_read(k.s, 0, 1, buf);
    cr_assert_eq(rc, -MOAT_EPROTO, "the session must stay failed, got %s", moat_strerror(rc));
    struct moat_session_stats st;
    moat_session_stats(k.s, &st);
    cr_assert_eq(st.malformed, 1, "malformed completions counted: %llu", (unsigned long long)st.malformed);

    /* Reported: counted against the domain and audited; nothing crashed. */
    struct moat_cap *cc = open_control(k.c);
    struct moat_domain_stats ds;
    rc = moat_domain_stats(cc, "evil", &ds);
    cr_assert_eq(rc, 0, "stats: %s", moat_strerror(rc));
    cr_assert_eq(ds.client_reports, 1, "client reports against evil: %llu",
                 (unsigned long long)ds.client_reports);
    static struct moat_audit_rec rec[MOAT_AUDIT_MAX];
    int n = moat_audit(cc, rec, MOAT_AUDIT_MAX);
    cr_assert_gt(n, 0, "audit: %s", moat_strerror(n));
    bool found = false;
    for (int i = 0; i < n; i++)
        found |= strcmp(rec[i].domain, "evil") == 0 && strcmp(rec[i].source, "client") == 0 &&
                 strstr(rec[i].text, needle) != NULL;
    cr_assert(found, "no client audit record for evil mentioning '%s'", needle);
    cr_assert_eq(tu_state(&sup, evil), DOMAIN_READY, "the hostile domain is still served (reports never kill)");
    cr_assert_eq(tu_state(&sup, good), DOMAIN_READY, "the neighbour is unaffected");
    moat_close(cc);
    close_conn(&k);

    /* The same client process carries on with the healthy domain. */
    struct conn g = open_blk("good.blk0", MOAT_RIGHT_READ | MOAT_RIGHT_WRITE, 16);
    memset(buf, 0x5A, sizeof buf);
    cr_assert_eq(moat_blk_write(g.s, 3, 1, buf), 0);
    uint8_t back[BS];
    cr_assert_eq(moat_blk_read(g.s, 3, 1, back), 0);
    cr_assert(memcmp(buf, back, BS) == 0, "healthy domain returned other data");
    close_conn(&g);
}

Test(caps, hostile_domain_bad_tag, .init = start, .fini = finish, .timeout = 120)
{ hostile_case("badtag", "not outstanding"); }
/* With recovery on, a session that meets a malformed completion reports
 * it and moves to a fresh session; a domain that keeps doing it gets
 * MOAT_EPROTO after MOAT_PROTO_RECOVERIES fresh sessions, each reported. */
Test(caps, hostile_domain_recovery_is_bounded, .init = start, .fini = finish, .timeout = 60)
{
    add_ramblk("evil", "16M", "size=4M hostile=badstatus after=10");
    struct conn k = open_blk("evil.blk0", MOAT_RIGHT_READ | MOAT_RIGHT_WRITE, 16);
    uint8_t buf[BS], sentinel[BS];
    memset(sentinel, 0xC3, sizeof sentinel);
    for (int i = 0; i < 10; i++)
        cr_assert_eq(moat_blk_read(k.s, (uint64_t)i, 1, buf), 0, "honest request %d failed", i);
    memcpy(buf, sentinel, sizeof buf);
    int rc = moat_blk_read(k.s, 20, 1, buf);
    cr_assert_eq(rc, -MOAT_EPROTO, "a persistently hostile domain: %s", moat_strerror(rc));
    cr_assert(memcmp(buf, sentinel, sizeof buf) == 0, "a malformed completion wrote the buffer");
    struct moat_session_stats st;
    moat_session_stats(k.s, &st);
    cr_assert_eq(st.malformed, MOAT_PROTO_RECOVERIES + 1, "malformed completions: %llu",
                 (unsigned long long)st.malformed);
    cr_assert_eq(st.recoveries, MOAT_PROTO_RECOVERIES, "fresh sessions: %llu",
                 (unsigned long long)st.recoveries);
    struct moat_cap *cc = open_control(k.c);
    struct moat_domain_stats ds;
    cr_assert_eq(moat_domain_stats(cc, "evil", &ds), 0);
    cr_assert_eq(ds.client_reports, MOAT_PROTO_RECOVERIES + 1, "reports: %llu",
                 (unsigned long long)ds.client_reports);
    moat_close(cc);
    close_conn(&k);
}

Test(caps, hostile_domain_bad_status, .init = start, .fini = finish, .timeout = 120)
{ hostile_case("badstatus", "unknown status"); }
Test(caps, hostile_domain_overlong, .init = start, .fini = finish, .timeout = 120)
{ hostile_case("overlong", "claims 2 blocks for a request of 1"); }
Test(caps, hostile_domain_duplicate, .init = start, .fini = finish, .timeout = 120)
{ hostile_case("dup", "not outstanding"); }
Test(caps, hostile_domain_corrupt_index, .init = start, .fini = finish, .timeout = 120)
{ hostile_case("corrupt", "impossible"); }

/* ---- hostile client ---------------------------------------------------------------- */

/* Publish one raw request, bypassing libmoat's own checks, and return the
 * status the domain answered with. */
static uint32_t raw_request(struct moat_session *s, const struct moat_sqe *e)
{
    memcpy(moat_ring_slot(&s->sq, 0), e, sizeof *e);
    bool kick = false;
    cr_assert_eq(moat_ring_publish(&s->sq, 1, &kick), MOAT_RING_OK);
    uint64_t one = 1;
    cr_assert_eq(write(s->kick_fd, &one, sizeof one), 8);
    for (;;) {
        uint32_t avail = 0;
        cr_assert_eq(moat_ring_avail(&s->cq, &avail), MOAT_RING_OK);
        if (avail) {
            struct moat_cqe c;
            memcpy(&c, moat_ring_peek(&s->cq, 0), sizeof c);
            moat_ring_consume(&s->cq, 1, &kick);
            cr_assert_eq(c.tag, e->tag, "completion tag");
            return c.status;
        }
        if (moat_ring_arm(&s->cq)) {
            struct pollfd p = { .fd = s->notify_fd, .events = POLLIN };
            cr_assert_eq(poll(&p, 1, 5000), 1, "the domain did not answer a malformed request");
            uint64_t v;
            cr_assert_eq(read(s->notify_fd, &v, sizeof v), 8);
        }
    }
}

Test(caps, hostile_client_requests_refused, .init = start, .fini = finish, .timeout = 120)
{
    struct domain *d = add_ramblk("ram0", "16M", "size=4M max=16");
    struct conn k = open_blk("ram0.blk0", MOAT_RIGHT_READ, 16);     /* read-only handle */
    uint64_t data = k.s->layout.data_size;
    struct { const char *what; struct moat_sqe e; uint32_t want; } cases[] = {
        { "unknown op", { .tag = 1, .op = 77, .blocks = 1 }, MOAT_ST_EINVAL },
        { "nonzero flags", { .tag = 2, .op = MOAT_BLK_READ, .flags = 1, .blocks = 1 }, MOAT_ST_EINVAL },
        { "zero blocks", { .tag = 3, .op = MOAT_BLK_READ, .blocks = 0 }, MOAT_ST_EINVAL },
        { "more blocks than max", { .tag = 4, .op = MOAT_BLK_READ, .blocks = 17 }, MOAT_ST_EINVAL },
        { "beyond the end", { .tag = 5, .op = MOAT_BLK_READ, .lba = 8192, .blocks = 1 }, MOAT_ST_ERANGE },
        { "lba wraps", { .tag = 6, .op = MOAT_BLK_READ, .lba = UINT64_MAX, .blocks = 2 }, MOAT_ST_ERANGE },
        { "buffer past the data area", { .tag = 7, .op = MOAT_BLK_READ, .blocks = 1, .buf_off = data - 256 }, MOAT_ST_EINVAL },
        { "buffer offset wraps", { .tag = 8, .op = MOAT_BLK_READ, .blocks = 1, .buf_off = UINT64_MAX - 10 }, MOAT_ST_EINVAL },
        { "write without the right", { .tag = 9, .op = MOAT_BLK_WRITE, .blocks = 1 }, MOAT_ST_EPERM },
        { "flush with blocks", { .tag = 10, .op = MOAT_BLK_FLUSH, .blocks = 3 }, MOAT_ST_EINVAL },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint32_t st = raw_request(k.s, &cases[i].e);
        cr_assert_eq(st, cases[i].want, "%s: status %u, expected %u", cases[i].what, st, cases[i].want);
    }
    /* Still served, and a well-formed request still works. */
    struct moat_sqe ok = { .tag = 99, .op = MOAT_BLK_READ, .blocks = 1 };
    cr_assert_eq(raw_request(k.s, &ok), MOAT_ST_OK, "a valid request after the hostile ones");
    cr_assert_eq(tu_state(&sup, d), DOMAIN_READY, "malformed requests must not hurt the domain");
    close_conn(&k);
}

/* ---- restart, stale handles, reattach ------------------------------------------------- */

/* A session that opted out of recovery (recover_ms = -1) sees ESTALE and
 * reattaches by hand. */
Test(caps, restart_makes_sessions_stale_and_reattach_works, .init = start, .fini = finish,
     .timeout = 120)
{
    struct domain *d = add_ramblk("ram0", "16M", "size=4M");
    struct conn k = open_blk_with("ram0.blk0", MOAT_RIGHT_READ | MOAT_RIGHT_WRITE,
                                  (struct moat_session_params){ .entries = 16, .recover_ms = -1 });
    uint64_t gen0 = moat_cap_desc(k.cap)->generation;
    uint8_t buf[BS];
    memset(buf, 0x42, sizeof buf);
    cr_assert_eq(moat_blk_write(k.s, 1, 1, buf), 0);
    struct moat_cap *cc = open_control(k.c);
    int rc = moat_restart(cc, "ram0");
    cr_assert_eq(rc, 0, "restart: %s", moat_strerror(rc));
    cr_assert(supervisor_wait(&sup, d, READY, BOOT_MS), "ram0 did not come back");
    rc = moat_blk_read(k.s, 1, 1, buf);
    cr_assert_eq(rc, -MOAT_ESTALE, "a session of the old incarnation must be stale, got %s",
                 moat_strerror(rc));
    /* The old handle is stale too: a new session on it is refused (with
     * recovery off; a recovering open takes a fresh handle). */
    struct moat_session *s2;
    rc = moat_session_open(k.cap, &(struct moat_session_params){ .recover_ms = -1 }, &s2);
    cr_assert_eq(rc, -MOAT_ESTALE, "session on a stale handle: %s", moat_strerror(rc));
    rc = moat_session_reattach(k.s, 5000);
    cr_assert_eq(rc, 0, "reattach: %s", moat_strerror(rc));
    cr_assert_gt(moat_cap_desc(k.cap)->generation, gen0, "the cap generation must move on");
    memset(buf, 0xFF, sizeof buf);
    cr_assert_eq(moat_blk_read(k.s, 1, 1, buf), 0);
    uint8_t zero[BS] = { 0 };
    cr_assert(memcmp(buf, zero, BS) == 0, "a new ramblk incarnation starts zeroed");
    struct moat_domain_status ds[4];
    int n = moat_domains(cc, ds, 4);
    cr_assert_eq(n, 1);
    cr_assert_eq(ds[0].incarnation, 2, "incarnation %u", ds[0].incarnation);
    cr_assert_str_eq(ds[0].state_name, "ready");
    moat_close(cc);
    close_conn(&k);
}

Test(caps, control_inject_stop_and_limits, .init = start, .fini = finish, .timeout = 120)
{
    struct domain *a = add_ramblk("a", "16M", "size=4M queues=2");
    struct domain *b = add_ramblk("b", "16M", "size=4M");
    struct moat_client *c;
    cr_assert_eq(moat_connect(sock, &c), 0);
    struct moat_cap *blk, *cc = open_control(c);
    cr_assert_eq(moat_open(c, "a.blk0", MOAT_RIGHT_READ, &blk), 0);
    cr_assert_eq(moat_open(c, "nosuch.blk0", MOAT_RIGHT_READ, &(struct moat_cap *){ NULL }),
                 -MOAT_ENOENT);
    struct moat_session *s1, *s2, *s3;
    cr_assert_eq(moat_session_open(blk, NULL, &s1), 0);
    cr_assert_eq(moat_session_open(blk, NULL, &s2), 0);
    int rc = moat_session_open(blk, NULL, &s3);
    cr_assert_eq(rc, -MOAT_ELIMIT, "a third session on a 2-queue cap: %s", moat_strerror(rc));
    moat_session_close(s2);
    rc = moat_inject(cc, "a", MOAT_FAULT_KILL);
    cr_assert_eq(rc, 0, "inject: %s", moat_strerror(rc));
    cr_assert(supervisor_wait(&sup, a, ENDED, BOOT_MS));
    cr_assert_eq(a->crash.cause, CRASH_INJECTED);
    uint8_t buf[BS];
    rc = moat_blk_read(s1, 0, 1, buf);
    cr_assert_eq(rc, -MOAT_EDOWN, "after the kill of a restart=never domain: %s",
                 moat_strerror(rc));
    rc = moat_stop(cc, "b");
    cr_assert_eq(rc, 0, "stop: %s", moat_strerror(rc));
    cr_assert(supervisor_wait(&sup, b, ENDED, BOOT_MS));
    cr_assert_eq(tu_state(&sup, b), DOMAIN_STOPPED);
    struct moat_domain_status ds[4];
    cr_assert_eq(moat_domains(cc, ds, 4), 2);
    cr_assert_str_eq(ds[0].crash_cause, "injected fault");
    cr_assert_eq(moat_stop(cc, "nosuch"), -MOAT_ENOENT);
    moat_session_close(s1);
    moat_close(blk);
    moat_close(cc);
    moat_disconnect(c);
}

/* ---- a client that does not read ------------------------------------------------ */

static int raw_connect(void)
{
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0);
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    cr_assert_lt(strlen(sock), sizeof a.sun_path, "socket path too long");
    memcpy(a.sun_path, sock, strlen(sock) + 1);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0, "connect: %s", strerror(errno));
    return fd;
}

/* Send n LIST_CAPS requests, seq first..first+n-1, reading nothing; stops
 * early (returns how many went) when moat closed the connection. */
static uint32_t send_lists(int fd, uint32_t first, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        struct moat_msg_hdr h = { .magic = MOAT_CTL_MAGIC, .type = MOAT_MSG_LIST_CAPS,
                                  .seq = first + i };
        if (send(fd, &h, sizeof h, MSG_NOSIGNAL) != (ssize_t)sizeof h) {
            cr_assert(errno == EPIPE || errno == ECONNRESET, "send: %s", strerror(errno));
            return i;
        }
    }
    return n;
}

/* Read replies until n arrived or moat closed; each must be the next seq. */
static uint32_t read_replies(int fd, uint32_t first, uint32_t n)
{
    static uint8_t buf[64 << 10];
    for (uint32_t i = 0; i < n; i++) {
        ssize_t got = recv(fd, buf, sizeof buf, 0);
        if (got <= 0)
            return i;
        struct moat_msg_hdr h;
        cr_assert((size_t)got >= sizeof h, "a reply of %zd bytes", got);
        memcpy(&h, buf, sizeof h);
        cr_assert_eq(h.seq, first + i, "reply %u carries seq %u: replies lost or reordered",
                     first + i, h.seq);
        cr_assert_eq(h.status, 0, "reply %u failed: %d", h.seq, h.status);
        cr_assert_eq(h.type, MOAT_MSG_LIST_CAPS);
    }
    return n;
}

Test(caps, control_queues_for_a_slow_reader_in_order_and_drops_one_that_never_reads,
     .init = start, .fini = finish, .timeout = 120)
{
    /* 900 replies are more than a socket holds (~200 of this size), fewer
     * than the 1024 moat queues: every one arrives, in order. */
    int fd = raw_connect();
    cr_assert_eq(send_lists(fd, 1, 900), 900u);
    cr_assert_eq(read_replies(fd, 1, 900), 900u, "replies lost for a client that read late");
    close(fd);

    /* One that never reads: moat drops it once 1024 wait, and goes on. */
    fd = raw_connect();
    uint32_t sent = send_lists(fd, 1, 6000);
    uint32_t got = read_replies(fd, 1, sent);
    cr_assert_lt(got, sent, "all %u replies arrived: the client was never dropped", sent);
    /* What reached the socket arrives; what waited in moat's queue is
     * dropped with the client, which moat closes once 1024 wait. */
    cr_assert_geq(sent, got + 1024u, "dropped with %u replies owed, before 1024 waited",
                  sent - got);
    close(fd);
    struct moat_client *c;
    cr_assert_eq(moat_connect(sock, &c), 0, "moat no longer serves clients");
    moat_disconnect(c);
}
