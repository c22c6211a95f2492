/*
 * The crash-injection suite (DESIGN §6): random faults of every kind into
 * every driver domain - ramblk, NVMe, virtio-net modern and legacy - while
 * clients keep them busy:
 *   - verified NVMe writes and flushes through libmoat (every acknowledged
 *     write must read back, through libmoat and in the image file);
 *   - verified qemu-io pattern writes and reads through moat-nbd on NVMe;
 *   - verified writes and reads on ramblk (whose blocks live in its RAM:
 *     a restart may zero them, nothing else may change them);
 *   - frames between the two NIC domains (each one that arrives intact).
 * Afterwards: every write is where it belongs, the canary domain's window
 * and kernel text are unchanged, no session ever took a completion it did
 * not expect beyond the corrupt-session faults aimed at it, every client
 * call returned, and moat (under ASan) is clean. Finally crash-loop trips
 * a domain's breaker and its client gets MOAT_EFAILED at once.
 * MOAT_CRASH_FAULTS overrides the number of faults (default 200).
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "control.h"
#include "moat/layout.h"
#include "netback.h"
#include "testutil.h"

#define BOOT_MS 15000u
#define NV_MIB 16u
#define BLK_SLOTS 256u          /* libmoat writer: 256 slots of 8 blocks at LBA 0.. */
#define QIO_BASE (8ull << 20)   /* qemu-io: the upper half of the NVMe disk */
#define NDOM 4

static struct supervisor sup;
static struct control ctl;
static char err[512], sock[PATH_MAX], dir[256], img[PATH_MAX + 16], nbd_sock[PATH_MAX + 16];
static pid_t nbd_pid;
static atomic_bool stop_load;

/* The first thing a load thread got wrong, reported by the main thread. */
static pthread_mutex_t fail_lock = PTHREAD_MUTEX_INITIALIZER;
static char fail_msg[512];

/* What each load thread is doing, and since when: a thread that never
 * comes back from a call is named with its call instead of hanging the
 * suite until Criterion's timeout. */
struct load_mon {
    const char *name;
    _Atomic(const char *) op;
    atomic_uint arg;
    atomic_uint_fast64_t since_ns;
};
enum { MON_BLK, MON_RAM, MON_NIC, MON_QIO, MON_N };
static struct load_mon mon[MON_N] = {
    [MON_BLK] = { .name = "NVMe libmoat" }, [MON_RAM] = { .name = "ramblk" },
    [MON_NIC] = { .name = "NIC" }, [MON_QIO] = { .name = "qemu-io through moat-nbd" },
};
#define JOIN_MS 30000u          /* > recover_ms (10 s) with room to spare */

static void mon_enter(int t, const char *op, unsigned arg)
{
    atomic_store(&mon[t].arg, arg);
    atomic_store(&mon[t].since_ns, clock_mono_ns());
    atomic_store(&mon[t].op, op);
}

static void load_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void load_fail(const char *fmt, ...)
{
    pthread_mutex_lock(&fail_lock);
    if (!fail_msg[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(fail_msg, sizeof fail_msg, fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&fail_lock);
    atomic_store(&stop_load, true);
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void fill(uint8_t *b, size_t n, uint32_t key, uint32_t gen)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(key * 29u + gen * 131u + i * 7u + 3u);
}

static struct moat_session *open_session(struct moat_client **c, struct moat_cap **cap,
                                         const char *name, uint32_t entries)
{
    cr_assert_eq(moat_connect(sock, c), 0);
    int rc = moat_open(*c, name, MOAT_RIGHT_READ | MOAT_RIGHT_WRITE, cap);
    cr_assert_eq(rc, 0, "open %s: %s", name, moat_strerror(rc));
    struct moat_session *s;
    rc = moat_session_open(*cap, &(struct moat_session_params){ .entries = entries }, &s);
    cr_assert_eq(rc, 0, "session on %s: %s", name, moat_strerror(rc));
    return s;
}

/* ---- NVMe through libmoat: writes, flushes, reads, all verified ----------------------- */

static uint32_t blk_gen[BLK_SLOTS];     /* last generation written (acknowledged) per slot */
static struct moat_session *blk_s;
static atomic_uint_fast64_t blk_ops;

static void *blk_thread(void *arg)
{
    (void)arg;
    uint64_t seed = 0x1234567;
    uint8_t w[8 * 512], r[8 * 512];
    uint32_t since_flush = 0;
    while (!atomic_load(&stop_load)) {
        uint32_t slot = (uint32_t)(rng_next(&seed) % BLK_SLOTS);
        if (rng_next(&seed) % 3 == 0 && blk_gen[slot]) {
            mon_enter(MON_BLK, "moat_blk_read of slot", slot);
            int rc = moat_blk_read(blk_s, slot * 8ull, 8, r);
            fill(w, sizeof w, slot, blk_gen[slot]);
            if (rc != 0)
                load_fail("NVMe read of slot %u: %s", slot, moat_strerror(rc));
            else if (memcmp(w, r, sizeof w))
                load_fail("NVMe slot %u read back wrong (generation %u)", slot, blk_gen[slot]);
        } else {
            uint32_t gen = blk_gen[slot] + 1;
            fill(w, sizeof w, slot, gen);
            mon_enter(MON_BLK, "moat_blk_write of slot", slot);
            int rc = moat_blk_write(blk_s, slot * 8ull, 8, w);
            if (rc != 0)
                load_fail("NVMe write of slot %u: %s", slot, moat_strerror(rc));
            else
                blk_gen[slot] = gen;
            if (++since_flush == 8) {
                since_flush = 0;
                mon_enter(MON_BLK, "moat_blk_flush after slot", slot);
                if ((rc = moat_blk_flush(blk_s)) != 0)
                    load_fail("NVMe flush: %s", moat_strerror(rc));
            }
        }
        atomic_fetch_add(&blk_ops, 1);
    }
    return NULL;
}

/* ---- ramblk: what a restart may zero, nothing else may change -------------------------- */

static struct moat_session *ram_s;
static atomic_uint_fast64_t ram_ops;

static void *ram_thread(void *arg)
{
    (void)arg;
    uint8_t w[4096], r[4096], zero[4096] = { 0 };
    for (uint32_t gen = 1; !atomic_load(&stop_load); gen++) {
        uint32_t slot = gen % 64;
        fill(w, sizeof w, slot, gen);
        struct moat_session_stats a, b;
        moat_session_stats(ram_s, &a);
        mon_enter(MON_RAM, "moat_blk_write then read of slot", slot);
        int rc = moat_blk_write(ram_s, slot * 8ull, 8, w);
        if (rc == 0)
            rc = moat_blk_read(ram_s, slot * 8ull, 8, r);
        moat_session_stats(ram_s, &b);
        if (rc != 0)
            load_fail("ramblk: %s", moat_strerror(rc));
        else if (memcmp(w, r, sizeof w) &&
                 !(b.recoveries != a.recoveries && !memcmp(r, zero, sizeof r)))
            load_fail("ramblk slot %u (generation %u) read back neither what was written nor "
                      "a restart's zeros: %02x %02x %02x %02x, want %02x %02x %02x %02x "
                      "(recoveries %llu -> %llu, malformed %llu)", slot, gen, r[0], r[1], r[2],
                      r[3], w[0], w[1], w[2], w[3], (unsigned long long)a.recoveries,
                      (unsigned long long)b.recoveries, (unsigned long long)b.malformed);
        atomic_fetch_add(&ram_ops, 1);
    }
    return NULL;
}

/* ---- frames between the NIC domains --------------------------------------------------- */

static struct moat_session *nic_a, *nic_b;
static atomic_uint_fast64_t frames_sent, frames_ok;
static const uint8_t MAC_A[6] = { 0x52, 0x54, 0, 0xca, 0, 1 }, MAC_B[6] = { 0x52, 0x54, 0, 0xcb, 0, 2 };

static size_t make_frame(uint8_t *f, const uint8_t dst[6], const uint8_t src[6], uint32_t seq)
{
    memcpy(f, dst, 6);
    memcpy(f + 6, src, 6);
    f[12] = 0x88, f[13] = 0xb5;
    memcpy(f + 14, &seq, 4);
    for (size_t i = 18; i < 128; i++)
        f[i] = (uint8_t)(seq + i);
    return 128;
}

/* 1: one of ours, intact; 0: not ours (the gateway's, a fault's own
 * broadcast); -1: ours and damaged. */
static int frame_check(const uint8_t *f, uint32_t len, const uint8_t dst[6])
{
    if (len < 14 || memcmp(f, dst, 6) || f[12] != 0x88 || f[13] != 0xb5)
        return 0;
    if (len != 128)
        return -1;
    uint32_t seq;
    memcpy(&seq, f + 14, 4);
    for (size_t i = 18; i < 128; i++)
        if (f[i] != (uint8_t)(seq + i))
            return -1;
    return 1;
}

static void nic_step(struct moat_session *tx, struct moat_session *rx, const uint8_t *dst,
                     const uint8_t *src, uint32_t *seq)
{
    static _Thread_local uint8_t out[8][128], in[16][1514];
    struct moat_frame fr[8];
    for (int i = 0; i < 8; i++)
        fr[i] = (struct moat_frame){ .data = out[i], .len = (uint32_t)make_frame(out[i], dst, src,
                                                                                 (*seq)++) };
    mon_enter(MON_NIC, "moat_nic_send, frame", *seq);
    int rc = moat_nic_send(tx, fr, 8);
    if (rc < 0)
        load_fail("NIC send: %s", moat_strerror(rc));
    else
        atomic_fetch_add(&frames_sent, (uint64_t)rc);
    struct moat_frame rf[16];
    for (int i = 0; i < 16; i++)
        rf[i] = (struct moat_frame){ .data = in[i], .len = sizeof in[i] };
    mon_enter(MON_NIC, "moat_nic_recv after frame", *seq);
    rc = moat_nic_recv(rx, rf, 16, 1);
    if (rc == -MOAT_ETIMEDOUT)
        return;
    if (rc < 0) {
        load_fail("NIC receive: %s", moat_strerror(rc));
        return;
    }
    for (int i = 0; i < rc; i++) {
        int v = frame_check(in[i], rf[i].len, dst);
        if (v < 0)
            load_fail("a frame arrived damaged (%u bytes)", rf[i].len);
        else if (v > 0)
            atomic_fetch_add(&frames_ok, 1);
    }
}

static void *nic_thread(void *arg)
{
    (void)arg;
    uint32_t sa = 0, sb = 1u << 31;
    while (!atomic_load(&stop_load)) {
        nic_step(nic_a, nic_b, MAC_B, MAC_A, &sa);
        nic_step(nic_b, nic_a, MAC_A, MAC_B, &sb);
    }
    return NULL;
}

/* ---- qemu-io through moat-nbd ---------------------------------------------------------- */

static atomic_uint_fast64_t qio_runs;

static void *qio_thread(void *arg)
{
    (void)arg;
    char cmd[PATH_MAX * 3], out[PATH_MAX];
    snprintf(out, sizeof out, "%s/qio.out", dir);
    for (uint32_t i = 0; !atomic_load(&stop_load); i++) {
        uint64_t off = QIO_BASE + (uint64_t)(i % 64) * 65536u;
        unsigned pat = 1 + i % 250;
        /* timeout: a stuck export fails the run with a reason, not the suite's timeout */
        snprintf(cmd, sizeof cmd, "timeout -k 5 60 qemu-io -f raw -c 'write -P %u %llu 64k' -c 'read -P %u %llu 64k' "
                 "'nbd+unix:///nv.blk0?socket=%s' >%s 2>&1", pat, (unsigned long long)off, pat,
                 (unsigned long long)off, nbd_sock, out);
        mon_enter(MON_QIO, "qemu-io write+read run", i);
        int rc = system(cmd);
        char *text = tu_slurp(out);
        if (WIFEXITED(rc) && WEXITSTATUS(rc) == 124)
            load_fail("qemu-io through moat-nbd (run %u) got no answer in 60 s: %.300s", i,
                      text ? text : "?");
        else if (rc != 0 || !text || strstr(text, "Pattern verification failed") || strstr(text, "error"))
            load_fail("qemu-io through moat-nbd (run %u) failed: %.300s", i, text ? text : "?");
        free(text);
        atomic_fetch_add(&qio_runs, 1);
    }
    return NULL;
}

static void start_nbd(void)
{
    snprintf(nbd_sock, sizeof nbd_sock, "%s/nbd.sock", dir);
    nbd_pid = tu_start_nbd(sock, "nv.blk0", nbd_sock, err, sizeof err);
    cr_assert_gt(nbd_pid, 0, "%s", err);
}

/* ---- the suite --------------------------------------------------------------------------- */

static void setup(void)
{
    TU_REQUIRE_KVM();
    if (system("command -v qemu-io >/dev/null 2>&1") != 0) {
        fprintf(stderr, "SKIPPED: qemu-io not installed (scripts/install-deps.sh installs it)\n");
        cr_skip_test("SKIPPED: qemu-io not installed");
    }
    snprintf(dir, sizeof dir, "%s", tu_tmpdir());
    cr_assert(tu_moat_start(&sup, &ctl, dir, sock, sizeof sock, err, sizeof err), "%s", err);
}

static void teardown(void)
{
    atomic_store(&stop_load, true);
    if (nbd_pid > 0) {
        kill(nbd_pid, SIGTERM);
        waitpid(nbd_pid, NULL, 0);
    }
    tu_moat_stop(&sup, &ctl);
    netback_shutdown();
}

static struct domain *boot(const char *spec)
{
    struct domain *d = tu_boot(&sup, spec, BOOT_MS, err, sizeof err);
    cr_assert_not_null(d, "boot %s: %s", spec, err);
    return d;
}

static uint32_t want_inc;
static bool ready_past(const struct domain *d)
{
    return d->state == DOMAIN_READY && !atomic_load(&d->stop) && d->incarnation >= want_inc;
}
static uint32_t want_ends;
static bool ended_past(const struct domain *d) { return d->n_causes >= want_ends; }
static bool breaker_open(const struct domain *d) { return d->breaker_open; }

/* The kinds each domain gets, weighted by repetition. */
static const uint32_t ram_kinds[] = {
    MOAT_FAULT_KILL, MOAT_FAULT_TRIPLE_FAULT, MOAT_FAULT_HANG, MOAT_FAULT_SPIN, MOAT_FAULT_PANIC,
    MOAT_FAULT_WILD_MMIO, MOAT_FAULT_CORRUPT_SESSION,
};
static const uint32_t dev_kinds[] = {
    MOAT_FAULT_KILL, MOAT_FAULT_TRIPLE_FAULT, MOAT_FAULT_HANG, MOAT_FAULT_SPIN, MOAT_FAULT_PANIC,
    MOAT_FAULT_WILD_MMIO, MOAT_FAULT_CORRUPT_SESSION, MOAT_FAULT_WILD_DMA_PRIVATE,
    MOAT_FAULT_WILD_DMA_OTHER, MOAT_FAULT_WILD_DMA_END, MOAT_FAULT_CORRUPT_DEVICE,
    MOAT_FAULT_EXIT_DMA,
};

Test(crash_suite, random_faults_under_mixed_load, .init = setup, .fini = teardown,
     .timeout = 900)
{
    unsigned n_faults = 200;
    const char *env = getenv("MOAT_CRASH_FAULTS");
    if (env && atoi(env) > 0)
        n_faults = (unsigned)atoi(env);

    /* The canary first: its window is the one wild-dma-other aims at. */
    char spec[PATH_MAX + 512];
    snprintf(spec, sizeof spec, "name=canary kernel=%s dev=testdev dma=2M "
             "args=\"copies=0 serve=1\"", tu_guest("testdrv"));
    struct domain *canary = boot(spec);
#define COMMON "watchdog-ms=100 restarts=64/1s"
    snprintf(spec, sizeof spec, "name=ram0 kernel=%s mem=32M " COMMON " args=\"size=4M\"",
             tu_guest("ramblk"));
    struct domain *ram = boot(spec);
    snprintf(img, sizeof img, "%s/nv.img", dir);
    int fd = open(img, O_RDWR | O_CREAT | O_TRUNC, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(ftruncate(fd, (off_t)NV_MIB << 20), 0);
    snprintf(spec, sizeof spec, "name=nv kernel=%s mem=64M dma=32M " COMMON " dev=nvme:image=%s",
             tu_guest("nvme"), img);
    struct domain *nv = boot(spec);
    snprintf(spec, sizeof spec, "name=na kernel=%s mem=64M dma=16M " COMMON
             " dev=virtio-net:mac=52-54-00-ca-00-01 args=\"name=nic0\"", tu_guest("vnet"));
    struct domain *na = boot(spec);
    snprintf(spec, sizeof spec, "name=nb kernel=%s mem=64M dma=16M " COMMON
             " dev=virtio-net:mac=52-54-00-cb-00-02:legacy=1 args=\"name=nic0\"", tu_guest("vnet"));
    struct domain *nb = boot(spec);
    struct domain *doms[NDOM] = { ram, nv, na, nb };
    const char *names[NDOM] = { "ram0", "nv", "na", "nb" };

    /* Canaries: the canary's window, and its kernel text. */
    struct dma_window cw;
    cr_assert(broker_window_peek(&sup.broker, canary->win[0].window, &cw));
    uint8_t *cwin = cw.host;
    uint64_t cwin_len = cw.len;
    for (uint64_t i = 0; i < cwin_len; i++)
        cwin[i] = (uint8_t)(i * 13 + 5);
    static uint8_t text[65536];
    memcpy(text, canary->vm.ram + MOAT_GPA_KERNEL_BASE, sizeof text);

    struct moat_client *c[4];
    struct moat_cap *cap[4];
    blk_s = open_session(&c[0], &cap[0], "nv.blk0", 32);
    ram_s = open_session(&c[1], &cap[1], "ram0.blk0", 16);
    nic_a = open_session(&c[2], &cap[2], "na.nic0", 128);
    nic_b = open_session(&c[3], &cap[3], "nb.nic0", 128);
    start_nbd();
    pthread_t th[MON_N];
    cr_assert_eq(pthread_create(&th[0], NULL, blk_thread, NULL), 0);
    cr_assert_eq(pthread_create(&th[1], NULL, ram_thread, NULL), 0);
    cr_assert_eq(pthread_create(&th[2], NULL, nic_thread, NULL), 0);
    cr_assert_eq(pthread_create(&th[3], NULL, qio_thread, NULL), 0);

    struct moat_client *cc_c;
    cr_assert_eq(moat_connect(sock, &cc_c), 0);
    struct moat_cap *cc;
    cr_assert_eq(moat_open(cc_c, "control", MOAT_RIGHT_READ | MOAT_RIGHT_ADMIN, &cc), 0);
    uint64_t seed = 0xC0FFEE;
    unsigned per_kind[MOAT_FAULT_MAX + 1] = { 0 }, per_dom[NDOM] = { 0 };
    unsigned corrupt_session[NDOM] = { 0 };
    for (unsigned i = 0; i < n_faults && !atomic_load(&stop_load); i++) {
        unsigned k = (unsigned)(rng_next(&seed) % NDOM);
        struct domain *d = doms[k];
        uint32_t kind = k == 0 ? ram_kinds[rng_next(&seed) % (sizeof ram_kinds / 4)]
                               : dev_kinds[rng_next(&seed) % (sizeof dev_kinds / 4)];
        pthread_mutex_lock(&sup.lock);
        want_inc = d->incarnation;
        pthread_mutex_unlock(&sup.lock);
        cr_assert(tu_wait_until(&sup, d, ready_past, BOOT_MS), "fault %u: %s is not ready "
                  "(state %s, breaker %d)", i, names[k], domain_state_name(tu_state(&sup, d)),
                  d->breaker_open);
        pthread_mutex_lock(&sup.lock);
        uint32_t inc = d->incarnation, ends = d->n_causes;
        pthread_mutex_unlock(&sup.lock);
        int rc = moat_inject(cc, names[k], kind);
        if (rc == -MOAT_EDOWN) {
            i--;        /* it ended on its own meanwhile (a fault's aftermath): pick again */
            continue;
        }
        cr_assert_eq(rc, 0, "fault %u: %s into %s: %s", i, moat_fault_name(kind), names[k],
                     moat_strerror(rc));
        per_kind[kind]++;
        per_dom[k]++;
        if (kind == MOAT_FAULT_CORRUPT_SESSION)
            corrupt_session[k]++;
        bool survivable = kind == MOAT_FAULT_CORRUPT_SESSION ||
                          (kind == MOAT_FAULT_CORRUPT_DEVICE && d == nv);
        if (survivable)
            continue;
        want_ends = ends + 1;
        cr_assert(tu_wait_until(&sup, d, ended_past, BOOT_MS), "fault %u: %s did not end %s", i,
                  moat_fault_name(kind), names[k]);
        want_inc = inc + 1;
        cr_assert(tu_wait_until(&sup, d, ready_past, BOOT_MS), "fault %u (%s): %s did not come "
                  "back", i, moat_fault_name(kind), names[k]);
    }
    atomic_store(&stop_load, true);
    for (int t = 0; t < MON_N; t++) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += JOIN_MS / 1000;
        int jr = pthread_timedjoin_np(th[t], NULL, &until);
        if (jr != 0 && system("command -v gdb >/dev/null 2>&1") == 0) {
            /* Where it is stuck, for the report: every thread's stack. */
            char cmd[160];
            snprintf(cmd, sizeof cmd, "gdb -p %d -batch -ex 'thread apply all bt' 2>/dev/null | "
                     "grep -E '^Thread|^#' | grep -v 'in ?? ()' >&2", (int)getpid());
            if (system(cmd) != 0)
                fprintf(stderr, "crash_suite: could not take the stacks\n");
        }
        const char *op = atomic_load(&mon[t].op);
        cr_assert_eq(jr, 0, "the %s load thread is stuck in %s %u for %llu ms (fail_msg: %s)",
                     mon[t].name, op ? op : "?", atomic_load(&mon[t].arg),
                     (unsigned long long)((clock_mono_ns() - atomic_load(&mon[t].since_ns)) /
                                          1000000u), fail_msg[0] ? fail_msg : "none");
    }
    cr_assert(!fail_msg[0], "a client got a wrong answer or an error: %s", fail_msg);

    fprintf(stderr, "crash_suite: %u faults:", n_faults);
    for (uint32_t kind = 1; kind <= MOAT_FAULT_MAX; kind++)
        if (per_kind[kind])
            fprintf(stderr, " %s %u", moat_fault_name(kind), per_kind[kind]);
    fprintf(stderr, "; per domain ram0 %u nv %u na %u nb %u; load: %llu NVMe ops, %llu ramblk "
            "ops, %llu qemu-io runs, %llu/%llu frames intact/sent\n", per_dom[0], per_dom[1],
            per_dom[2], per_dom[3], (unsigned long long)blk_ops, (unsigned long long)ram_ops,
            (unsigned long long)qio_runs, (unsigned long long)frames_ok,
            (unsigned long long)frames_sent);
    for (int k = 0; k < NDOM; k++)
        cr_assert_gt(per_dom[k], 0, "no fault hit %s", names[k]);
    cr_assert_gt(blk_ops, 0);
    cr_assert_gt(qio_runs, 0);
    cr_assert_gt(frames_ok, 0, "no frame crossed between the NIC domains");

    /* Every acknowledged NVMe write is there: through libmoat and in the file. */
    uint8_t w[8 * 512], r[8 * 512];
    for (uint32_t slot = 0; slot < BLK_SLOTS; slot++) {
        if (!blk_gen[slot])
            continue;
        fill(w, sizeof w, slot, blk_gen[slot]);
        cr_assert_eq(moat_blk_read(blk_s, slot * 8ull, 8, r), 0);
        cr_assert(!memcmp(w, r, sizeof w), "NVMe slot %u lost its last write", slot);
    }
    cr_assert_eq(moat_blk_flush(blk_s), 0);
    for (uint32_t slot = 0; slot < BLK_SLOTS; slot++) {
        if (!blk_gen[slot])
            continue;
        fill(w, sizeof w, slot, blk_gen[slot]);
        cr_assert_eq(pread(fd, r, sizeof r, (off_t)slot * 8 * 512), (ssize_t)sizeof r);
        cr_assert(!memcmp(w, r, sizeof w), "the image file lacks slot %u's last write", slot);
    }
    /* Canaries untouched. */
    for (uint64_t i = 0; i < cwin_len; i++)
        cr_assert_eq(cwin[i], (uint8_t)(i * 13 + 5), "the canary's window changed at +0x%llx",
                     (unsigned long long)i);
    cr_assert(!memcmp(text, canary->vm.ram + MOAT_GPA_KERNEL_BASE, sizeof text),
              "the canary's kernel text changed");
    cr_assert_eq(tu_state(&sup, canary), DOMAIN_READY, "the canary was hurt");
    /* Only corrupt-session faults may have shown a session a bad completion. */
    struct moat_session *ss[2] = { ram_s, blk_s };
    unsigned cs[2] = { corrupt_session[0], corrupt_session[1] };
    for (int k = 0; k < 2; k++) {
        struct moat_session_stats st;
        moat_session_stats(ss[k], &st);
        cr_assert_leq(st.malformed, cs[k], "%s's session took %llu bad completions, %u "
                      "corrupt-session faults", names[k], (unsigned long long)st.malformed, cs[k]);
    }

    /* crash-loop: the breaker of a domain with a tight budget opens, and
     * its client gets EFAILED at once. (The domains above allow 64
     * restarts a second, so that 200 faults run quickly: no loop of theirs
     * could ever spend that.) */
    snprintf(spec, sizeof spec, "name=loop0 kernel=%s mem=32M restarts=3/30s args=\"size=4M\"",
             tu_guest("ramblk"));
    struct domain *loop0 = boot(spec);
    struct moat_client *lc;
    struct moat_cap *lcap;
    struct moat_session *ls = open_session(&lc, &lcap, "loop0.blk0", 16);
    cr_assert_eq(moat_inject(cc, "loop0", MOAT_FAULT_CRASH_LOOP), 0);
    cr_assert(tu_wait_until(&sup, loop0, breaker_open, 30000),
              "crash-loop did not open loop0's breaker");
    uint64_t t0 = clock_mono_ns();
    int rc = moat_blk_read(ls, 0, 8, r);
    cr_assert_eq(rc, -MOAT_EFAILED, "a read behind an open breaker: %s", moat_strerror(rc));
    cr_assert_lt(clock_mono_ns() - t0, 5000000000ull, "EFAILED took more than 5 s");
    moat_session_close(ls);
    tu_client_close(NULL, lcap, lc);
    close(fd);
    for (int k = 0; k < 4; k++)
        moat_session_close(k == 0 ? blk_s : k == 1 ? ram_s : k == 2 ? nic_a : nic_b);
    for (int k = 0; k < 4; k++)
        tu_client_close(NULL, cap[k], c[k]);
    tu_client_close(NULL, cc, cc_c);
}
