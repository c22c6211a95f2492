/*
 * BlockDevice conformance under KVM: the same checks against every driver
 * that serves the cap — the RAM disk (ramblk) and the NVMe driver on moat's
 * NVMe controller model (512-byte and 4 KiB LBA formats, with and without
 * shadow doorbells). Random reads, writes, flushes, write-zeroes and
 * discards over the whole device verified against a shadow copy (for NVMe
 * also against the image file itself after a flush); malformed requests
 * get specific errors; several clients at once; NVMe data survives a
 * domain restart; a command the device swallows is recovered by the
 * driver's timeout path; a busy NVMe driver takes far fewer than one MMIO
 * exit per request; the NVMe controller reads and writes session buffers
 * in place (zero copy) through data windows that live exactly as long as
 * their sessions, and with zero_copy=0 through the driver's own buffers.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "control.h"
#include "moat/layout.h"
#include "libmoat_internal.h"
#include "nvme.h"
#include "testutil.h"

#define BOOT_MS 15000u
#define READY   DOMAIN_STATE_BIT(DOMAIN_READY)

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

/* ---- targets ------------------------------------------------------------------------ */

struct target {
    const char *what;
    const char *image;          /* guest image */
    uint64_t disk_bytes;        /* NVMe: size of the backing file; 0 = ramblk */
    uint32_t lba;               /* NVMe LBA size */
    const char *args;           /* driver args */
    const char *dev_extra;      /* extra NVMe model options */
};

static const struct target RAMBLK = { "ramblk", "ramblk", 0, 0, "size=16M max=64", "" };
/* Not a round size: the geometry must come from IDENTIFY. */
static const struct target NVME512 = { "nvme 512", "nvme", (24ull << 20) + 7 * 512, 512, "", "" };
static const struct target NVME4K = { "nvme 4K", "nvme", 16ull << 20, 4096, "", "" };
static const struct target NVME_NODB = { "nvme no dbbuf", "nvme", 8ull << 20, 512, "dbbuf=0", "" };
static const struct target NVME_BOUNCE = { "nvme bounce buffers", "nvme", 8ull << 20, 512,
                                           "zero_copy=0", "" };

struct dut {
    const struct target *t;
    struct domain *d;
    char name[32], cap[48], image_path[PATH_MAX];
};

static void make_image(const char *path, uint64_t bytes)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    cr_assert_geq(fd, 0, "create %s", path);
    cr_assert_eq(ftruncate(fd, (off_t)bytes), 0, "size %s", path);
    close(fd);
}

static struct dut bring_up(const struct target *t, const char *name, const char *dev_extra)
{
    struct dut u = { .t = t };
    snprintf(u.name, sizeof u.name, "%s", name);
    snprintf(u.cap, sizeof u.cap, "%s.blk0", name);
    char spec[PATH_MAX * 2 + 512];
    if (t->disk_bytes == 0) {
        snprintf(spec, sizeof spec, "name=%s kernel=%s mem=48M args=\"%s\"", name,
                 tu_guest(t->image), t->args);
    } else {
        snprintf(u.image_path, sizeof u.image_path, "%s/%s.img", tu_tmpdir(), name);
        make_image(u.image_path, t->disk_bytes);
        const char *extra = dev_extra ? dev_extra : t->dev_extra;
        snprintf(spec, sizeof spec, "name=%s kernel=%s mem=64M dma=32M "
                 "dev=nvme:image=%s:lba=%u%s%s args=\"%s\"", name, tu_guest(t->image),
                 u.image_path, t->lba, extra[0] ? ":" : "", extra, t->args);
    }
    u.d = tu_boot(&sup, spec, BOOT_MS, err, sizeof err);
    cr_assert_not_null(u.d, "boot %s: %s", name, err);
    return u;
}

struct conn {
    struct moat_client *c;
    struct moat_cap *cap;
    struct moat_session *s;
    struct moat_blk_geometry geo;
};

static int open_conn(const char *cap_name, uint32_t entries, struct conn *k)
{
    memset(k, 0, sizeof *k);
    int rc = moat_connect(sock, &k->c);
    if (!rc)
        rc = moat_open(k->c, cap_name, MOAT_RIGHT_READ | MOAT_RIGHT_WRITE, &k->cap);
    struct moat_session_params p = { .entries = entries };
    if (!rc)
        rc = moat_session_open(k->cap, &p, &k->s);
    if (!rc)
        rc = moat_blk_geometry(k->cap, &k->geo);
    return rc;
}

static struct conn must_open(const char *cap_name, uint32_t entries)
{
    struct conn k;
    int rc = open_conn(cap_name, entries, &k);
    cr_assert_eq(rc, 0, "open a session on %s: %s", cap_name, moat_strerror(rc));
    return k;
}

static void close_conn(struct conn *k) { tu_client_close(k->s, k->cap, k->c); }

static uint64_t xorshift(uint64_t *r)
{
    *r ^= *r << 13;
    *r ^= *r >> 7;
    *r ^= *r << 17;
    return *r;
}

/* ---- geometry ------------------------------------------------------------------------ */

static void check_geometry(const struct target *t)
{
    struct dut u = bring_up(t, "dut", NULL);
    struct conn k = must_open(u.cap, 16);
    if (t->disk_bytes) {
        cr_assert_eq(k.geo.block_size, t->lba, "%s: block size %u, the namespace has %u", t->what,
                     k.geo.block_size, t->lba);
        cr_assert_eq(k.geo.blocks, t->disk_bytes / t->lba,
                     "%s: %llu blocks, the image holds %llu (geometry must come from IDENTIFY)",
                     t->what, (unsigned long long)k.geo.blocks,
                     (unsigned long long)(t->disk_bytes / t->lba));
        uint32_t want = MOAT_BLK_F_FLUSH | MOAT_BLK_F_WRITE_ZEROES | MOAT_BLK_F_DISCARD;
        cr_assert_eq(k.geo.flags & want, want, "%s: features %#x, want flush, zeroes, discard",
                     t->what, k.geo.flags);
        cr_assert_not(k.geo.flags & MOAT_BLK_F_READONLY, "%s: read-only", t->what);
    }
    cr_assert_geq(k.geo.max_blocks * k.geo.block_size, 4096u, "max transfer %u blocks",
                  k.geo.max_blocks);
    close_conn(&k);
}

Test(blk_conformance, ramblk_geometry, .init = start, .fini = finish, .timeout = 60)
{ check_geometry(&RAMBLK); }
Test(blk_conformance, nvme512_geometry_from_identify, .init = start, .fini = finish, .timeout = 60)
{ check_geometry(&NVME512); }
Test(blk_conformance, nvme4k_geometry_from_identify, .init = start, .fini = finish, .timeout = 60)
{ check_geometry(&NVME4K); }

/* ---- random I/O over the whole device, verified ------------------------------------- */

#define QD 32u

struct slot {
    struct moat_blk_req r;
    uint8_t *buf;
};

/* n requests at QD over [0, blocks): reads verified against shadow at
 * completion (no two in-flight requests overlap), writes applied to
 * shadow at submit, write-zeroes/discard zero the shadow, some flushes. */
static void random_io(struct conn *k, uint8_t *shadow, uint64_t n, uint64_t seed,
                      uint64_t *reads, uint64_t *writes)
{
    const uint32_t bs = k->geo.block_size;
    const uint64_t blocks = k->geo.blocks;
    uint32_t maxb = moat_session_max_blocks(k->s);
    if (maxb > 64)
        maxb = 64;
    const uint64_t span = blocks / QD;      /* in-flight requests use distinct spans */
    cr_assert_geq(span, maxb, "device too small for the test");
    struct slot sl[QD];
    for (uint32_t i = 0; i < QD; i++)
        sl[i].buf = malloc((size_t)maxb * bs);
    bool busy[QD] = { false };
    uint64_t r = seed, submitted = 0, done = 0;
    while (done < n) {
        for (uint32_t i = 0; i < QD && submitted < n; i++) {
            if (busy[i])
                continue;
            uint32_t nb = 1 + (uint32_t)(xorshift(&r) % maxb);
            /* The last span runs to the end: the last block gets traffic. */
            uint64_t lo = i * span, hi = i == QD - 1 ? blocks : lo + span;
            uint64_t lba = lo + xorshift(&r) % (hi - lo - nb + 1);
            unsigned kind = (unsigned)(xorshift(&r) % 100);
            struct moat_blk_req *q = &sl[i].r;
            *q = (struct moat_blk_req){ .lba = lba, .blocks = nb, .buf = sl[i].buf, .user_data = i };
            if (kind < 45) {
                q->op = MOAT_BLK_READ;
                memset(sl[i].buf, 0xEE, (size_t)nb * bs);
                ++*reads;
            } else if (kind < 90) {
                q->op = MOAT_BLK_WRITE;
                for (size_t b = 0; b < (size_t)nb * bs; b += 8) {
                    uint64_t v = xorshift(&r);
                    memcpy(sl[i].buf + b, &v, 8);
                }
                memcpy(shadow + lba * bs, sl[i].buf, (size_t)nb * bs);
                ++*writes;
            } else if (kind < 94) {
                q->op = MOAT_BLK_WRITE_ZEROES;
                memset(shadow + lba * bs, 0, (size_t)nb * bs);
            } else if (kind < 97) {
                q->op = MOAT_BLK_DISCARD;       /* reads back as zeroes here */
                memset(shadow + lba * bs, 0, (size_t)nb * bs);
            } else {
                *q = (struct moat_blk_req){ .op = MOAT_BLK_FLUSH, .user_data = i };
            }
            int rc = moat_blk_submit(k->s, q, 1);
            cr_assert_eq(rc, 1, "submit op %u of %u blocks at %llu: %s", q->op, nb,
                         (unsigned long long)lba, rc < 0 ? moat_strerror(rc) : "ring full");
            busy[i] = true;
            submitted++;
        }
        struct moat_completion c[QD];
        int m = moat_wait(k->s, c, QD, 10000);
        cr_assert_gt(m, 0, "no completion after %llu of %llu requests: %s",
                     (unsigned long long)done, (unsigned long long)n, moat_strerror(m));
        for (int j = 0; j < m; j++) {
            uint32_t i = (uint32_t)c[j].user_data;
            const struct moat_blk_req *q = &sl[i].r;
            cr_assert_eq(c[j].status, 0, "op %u of %u blocks at LBA %llu failed: %s", q->op,
                         q->blocks, (unsigned long long)q->lba, moat_strerror(c[j].status));
            if (q->op == MOAT_BLK_READ)
                cr_assert(memcmp(q->buf, shadow + q->lba * bs, (size_t)q->blocks * bs) == 0,
                          "read of %u blocks at LBA %llu differs from what was written",
                          q->blocks, (unsigned long long)q->lba);
            busy[i] = false;
            done++;
        }
    }
    for (uint32_t i = 0; i < QD; i++)
        free(sl[i].buf);
}

static void whole_device_equals(struct conn *k, const uint8_t *shadow, const char *what)
{
    const uint32_t bs = k->geo.block_size;
    uint32_t chunk = moat_session_max_blocks(k->s);
    uint8_t *buf = malloc((size_t)chunk * bs);
    for (uint64_t lba = 0; lba < k->geo.blocks; lba += chunk) {
        uint32_t n = k->geo.blocks - lba < chunk ? (uint32_t)(k->geo.blocks - lba) : chunk;
        int rc = moat_blk_read(k->s, lba, n, buf);
        cr_assert_eq(rc, 0, "%s: read at %llu: %s", what, (unsigned long long)lba, moat_strerror(rc));
        cr_assert(memcmp(buf, shadow + lba * bs, (size_t)n * bs) == 0,
                  "%s: blocks %llu..%llu differ from the shadow copy", what,
                  (unsigned long long)lba, (unsigned long long)(lba + n - 1));
    }
    free(buf);
}

/* After a flush the bytes are in the image file itself. */
static void image_equals(const char *path, const uint8_t *shadow, uint64_t bytes)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    cr_assert_geq(fd, 0, "open %s", path);
    uint8_t *buf = malloc(bytes);
    cr_assert_eq(pread(fd, buf, bytes, 0), (ssize_t)bytes, "read the image back");
    close(fd);
    for (uint64_t off = 0; off < bytes; off += 4096) {
        uint64_t n = bytes - off < 4096 ? bytes - off : 4096;
        cr_assert(memcmp(buf + off, shadow + off, n) == 0,
                  "image file bytes %llu..%llu differ from what the client wrote and flushed",
                  (unsigned long long)off, (unsigned long long)(off + n - 1));
    }
    free(buf);
}

/* I/O doorbell writes that reached the NVMe model (0 without one). */
static uint64_t doorbells(const struct dut *u)
{
    struct nvme_stats st;
    for (unsigned i = 0; i < PCI_SLOTS_MAX; i++)
        if (u->d->pci.slot[i] && nvme_stats_get(u->d->pci.slot[i], &st))
            return st.mmio_doorbells;
    return 0;
}

static void check_random_io(const struct target *t, uint64_t n)
{
    struct dut u = bring_up(t, "dut", NULL);
    struct conn k = must_open(u.cap, 64);
    uint64_t bytes = k.geo.blocks * k.geo.block_size;
    uint8_t *shadow = calloc(1, bytes);
    uint64_t reads = 0, writes = 0, dbs0 = doorbells(&u), exits0 = DSTAT_GET(u.d, exits_mmio);
    random_io(&k, shadow, n, 0x1234567 + n, &reads, &writes);
    uint64_t exits = DSTAT_GET(u.d, exits_mmio) - exits0;
    uint64_t dbs = doorbells(&u) - dbs0;
    cr_assert_eq(moat_blk_flush(k.s), 0, "final flush");
    whole_device_equals(&k, shadow, t->what);
    if (t->disk_bytes)
        image_equals(u.image_path, shadow, bytes);
    cr_log_info("%s: %llu requests (%llu reads, %llu writes): %llu MMIO exits (%.3f per "
                "request), %llu of them I/O doorbells", t->what, (unsigned long long)n,
                (unsigned long long)reads, (unsigned long long)writes, (unsigned long long)exits,
                (double)exits / (double)n, (unsigned long long)dbs);
    /* Shadow doorbells: a busy driver rings the MMIO doorbell only when the
     * controller went to sleep, far less than once per request. (Other
     * MMIO exits are the driver masking its vectors around sleeps.) */
    if (t->disk_bytes && !strstr(t->args, "dbbuf=0"))
        cr_assert_lt((double)dbs / (double)n, 0.5,
                     "%s: %llu MMIO doorbells for %llu requests: shadow doorbells are not working",
                     t->what, (unsigned long long)dbs, (unsigned long long)n);
    cr_assert_eq(tu_state(&sup, u.d), DOMAIN_READY, "%s: the domain ended", t->what);
    free(shadow);
    close_conn(&k);
}

Test(blk_conformance, ramblk_random_io_verified, .init = start, .fini = finish, .timeout = 300)
{ check_random_io(&RAMBLK, 40000); }
Test(blk_conformance, nvme512_random_io_verified, .init = start, .fini = finish, .timeout = 300)
{ check_random_io(&NVME512, 40000); }
Test(blk_conformance, nvme4k_random_io_verified, .init = start, .fini = finish, .timeout = 300)
{ check_random_io(&NVME4K, 20000); }
Test(blk_conformance, nvme_without_shadow_doorbells_verified, .init = start, .fini = finish,
     .timeout = 300)
{ check_random_io(&NVME_NODB, 5000); }
Test(blk_conformance, nvme_through_bounce_buffers_verified, .init = start, .fini = finish,
     .timeout = 300)
{ check_random_io(&NVME_BOUNCE, 5000); }

/* ---- zero copy: session data areas as DMA windows ------------------------------------ */

struct session_windows {
    unsigned n;
    uint32_t dirs[MOAT_SESSION_SLOTS];
    uint64_t maps;              /* device accesses, all of them */
};

/* The adopted (session) windows of d that are live now. */
static struct session_windows session_windows(const struct domain *d)
{
    struct session_windows w = { 0 };
    for (unsigned i = 0; i < BROKER_WINDOWS_MAX; i++) {
        struct dma_window copy;
        cr_assert(broker_window_peek(&sup.broker, i, &copy));
        const struct dma_window *x = &copy;
        if (x->reserved && x->state == WIN_LIVE && x->adopted && x->domain == d->id) {
            cr_assert_geq(x->iova, MOAT_GPA_SESSION_BASE, "adopted window outside the session range");
            if (w.n < MOAT_SESSION_SLOTS)
                w.dirs[w.n] = x->dirs;
            w.n++;
            w.maps += x->maps;
        }
    }
    return w;
}

/* 64 4 KiB writes then reads of a pattern, verified; how many device
 * accesses the session windows of d saw meanwhile. */
static uint64_t pattern_io(struct dut *u, struct conn *k)
{
    uint64_t before = session_windows(u->d).maps;
    uint8_t w[4096], back[4096];
    const uint32_t nb = sizeof w / k->geo.block_size;
    for (unsigned i = 0; i < 64; i++) {
        memset(w, (int)(i + 1), sizeof w);
        cr_assert_eq(moat_blk_write(k->s, (uint64_t)i * nb, nb, w), 0, "write %u", i);
    }
    for (unsigned i = 0; i < 64; i++) {
        memset(back, 0, sizeof back);
        cr_assert_eq(moat_blk_read(k->s, (uint64_t)i * nb, nb, back), 0, "read %u", i);
        cr_assert(back[0] == i + 1 && back[sizeof back - 1] == i + 1,
                  "block %u read back 0x%x..0x%x", i, back[0], back[sizeof back - 1]);
    }
    return session_windows(u->d).maps - before;
}

Test(blk_conformance, nvme_session_buffers_are_dma_windows_only_while_open, .init = start,
     .fini = finish, .timeout = 120)
{
    struct dut u = bring_up(&NVME4K, "dut", NULL);
    struct conn k = must_open(u.cap, 16);
    struct session_windows w = session_windows(u.d);
    cr_assert_eq(w.n, 1, "a read-write session should give the domain one data window, not %u",
                 w.n);
    cr_assert_eq(w.dirs[0], DMA_BIDIR, "read-write session: directions 0x%x", w.dirs[0]);
    uint64_t maps = pattern_io(&u, &k);
    cr_assert_geq(maps, 128, "the controller reached the session buffers %llu times for 128 "
                  "transfers: the driver did not point its PRPs at them (zero copy)",
                  (unsigned long long)maps);

    /* A read-only session: devices may only write its buffers. */
    struct moat_cap *ro;
    struct moat_session *rs;
    int rc = moat_open(k.c, u.cap, MOAT_RIGHT_READ, &ro);
    cr_assert_eq(rc, 0, "open read-only: %s", moat_strerror(rc));
    rc = moat_session_open(ro, &(struct moat_session_params){ .entries = 8 }, &rs);
    cr_assert_eq(rc, 0, "read-only session: %s", moat_strerror(rc));
    w = session_windows(u.d);
    cr_assert_eq(w.n, 2, "two sessions, %u data windows", w.n);
    cr_assert(w.dirs[1] == DMA_FROM_DEVICE || w.dirs[0] == DMA_FROM_DEVICE,
              "a read-only session's data window lets the device read it (0x%x, 0x%x)",
              w.dirs[0], w.dirs[1]);
    uint8_t back[4096];
    cr_assert_eq(moat_blk_read(rs, 0, 1, back), 0, "read on the read-only session");

    /* Closed sessions: once the domain releases them, no window is left. */
    moat_session_close(rs);
    moat_close(ro);
    moat_session_close(k.s);
    k.s = NULL;
    for (int i = 0; i < 5000 && session_windows(u.d).n; i++)
        usleep(1000);           /* the domain releases a closed slot on its next pass */
    cr_assert_eq(session_windows(u.d).n, 0, "a data window outlived its session (released slot)");
    cr_assert_eq(tu_state(&sup, u.d), DOMAIN_READY);
    close_conn(&k);
}

/* ---- placement: cpu= ---------------------------------------------------------------- */

/* The affinity of this process's thread called comm; false if none. */
static bool thread_cpus(const char *comm, cpu_set_t *out)
{
    DIR *dir = opendir("/proc/self/task");
    cr_assert_not_null(dir, "cannot list /proc/self/task");
    bool found = false;
    for (struct dirent *e; !found && (e = readdir(dir));) {
        char path[PATH_MAX], name[32] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = e->d_name[0] != '.' ? fopen(path, "r") : NULL;
        if (!f)
            continue;
        found = fgets(name, sizeof name, f) && strncmp(name, comm, strlen(comm)) == 0 &&
                name[strlen(comm)] == '\n' &&
                sched_getaffinity(atoi(e->d_name), sizeof *out, out) == 0;
        fclose(f);
    }
    closedir(dir);
    return found;
}

Test(blk_conformance, nvme_cpu_pins_the_vcpu_and_keeps_device_workers_off_it, .init = start,
     .fini = finish, .timeout = 60)
{
    cpu_set_t allowed, vcpu, worker;
    cr_assert_eq(sched_getaffinity(0, sizeof allowed, &allowed), 0);
    int cpu = -1;
    for (int i = CPU_SETSIZE - 1; i >= 0 && cpu < 0; i--)
        if (CPU_ISSET(i, &allowed))
            cpu = i;                /* the last CPU we may use: not always 0 */
    char img[PATH_MAX], spec[PATH_MAX * 2];
    snprintf(img, sizeof img, "%s/pin.img", tu_tmpdir());
    make_image(img, 8ull << 20);
    snprintf(spec, sizeof spec, "name=pin kernel=%s mem=64M dma=32M dev=nvme:image=%s cpu=%d",
             tu_guest("nvme"), img, cpu);
    struct domain *d = tu_boot(&sup, spec, BOOT_MS, err, sizeof err);
    cr_assert_not_null(d, "boot with cpu=%d: %s", cpu, err);
    cr_assert(thread_cpus("vcpu-pin", &vcpu), "no thread called vcpu-pin");
    cr_assert(CPU_COUNT(&vcpu) == 1 && CPU_ISSET(cpu, &vcpu),
              "cpu=%d: the vCPU may run on %d CPU(s)", cpu, CPU_COUNT(&vcpu));
    cr_assert(thread_cpus("nvme-nvme0", &worker), "no NVMe worker thread (nvme-nvme0)");
    if (CPU_COUNT(&allowed) > 1) {
        cr_assert_not(CPU_ISSET(cpu, &worker), "the NVMe worker may run on the vCPU's CPU %d",
                      cpu);
        cr_assert_eq(CPU_COUNT(&worker), CPU_COUNT(&allowed) - 1,
                     "the worker should have every other CPU");
    }
    /* It still serves. */
    char cap[] = "pin.blk0";
    struct conn k = must_open(cap, 8);
    uint8_t b[512];
    cr_assert_eq(moat_blk_read(k.s, 0, 1, b), 0, "read on the pinned domain");
    close_conn(&k);

    /* A CPU moat may not use is refused before anything starts. */
    snprintf(spec, sizeof spec, "name=nopin kernel=%s cpu=%d", tu_guest("nvme"),
             CPU_SETSIZE - 1);
    cr_assert_null(tu_boot(&sup, spec, BOOT_MS, err, sizeof err), "cpu=%d accepted",
                   CPU_SETSIZE - 1);
    cr_assert(strstr(err, "is not one of them"), "unclear refusal: %s", err);
}

Test(blk_conformance, nvme_zero_copy_off_uses_bounce_buffers, .init = start, .fini = finish,
     .timeout = 120)
{
    struct dut u = bring_up(&NVME_BOUNCE, "dut", NULL);
    struct conn k = must_open(u.cap, 16);
    cr_assert_eq(session_windows(u.d).n, 1, "the session's data window is offered anyway");
    uint64_t maps = pattern_io(&u, &k);
    cr_assert_eq(maps, 0, "zero_copy=0, yet the controller reached the session buffers %llu "
                 "times", (unsigned long long)maps);
    close_conn(&k);
}

/* ---- malformed requests -------------------------------------------------------------- */

static void check_bad_requests(const struct target *t)
{
    struct dut u = bring_up(t, "dut", NULL);
    struct conn k = must_open(u.cap, 16);
    const uint64_t end = k.geo.blocks;
    uint32_t maxb = moat_session_max_blocks(k.s);
    uint8_t *buf = calloc(maxb + 1u, k.geo.block_size);
    int rc = moat_blk_read(k.s, end, 1, buf);
    cr_assert_eq(rc, -MOAT_ERANGE, "%s: read at the first block past the end: %s", t->what,
                 moat_strerror(rc));
    rc = moat_blk_write(k.s, end - 1, 2, buf);
    cr_assert_eq(rc, -MOAT_ERANGE, "%s: write running past the end: %s", t->what, moat_strerror(rc));
    rc = moat_blk_read(k.s, UINT64_MAX, 2, buf);
    cr_assert_eq(rc, -MOAT_ERANGE, "%s: LBA range that wraps: %s", t->what, moat_strerror(rc));
    rc = moat_blk_write_zeroes(k.s, end, 1);
    cr_assert_eq(rc, -MOAT_ERANGE, "%s: write-zeroes past the end: %s", t->what, moat_strerror(rc));
    rc = moat_blk_read(k.s, 0, 0, buf);
    cr_assert_eq(rc, -MOAT_EINVAL, "%s: zero blocks: %s", t->what, moat_strerror(rc));
    struct moat_blk_req big = { .op = MOAT_BLK_READ, .lba = 0, .blocks = maxb + 1, .buf = buf };
    rc = moat_blk_submit(k.s, &big, 1);
    cr_assert_eq(rc, -MOAT_EINVAL, "%s: one request larger than the cap's maximum: %s", t->what,
                 moat_strerror(rc));
    /* The last block itself is fine, and the session still works. */
    memset(buf, 0xA5, k.geo.block_size);
    cr_assert_eq(moat_blk_write(k.s, end - 1, 1, buf), 0, "%s: write of the last block", t->what);
    memset(buf, 0, k.geo.block_size);
    cr_assert_eq(moat_blk_read(k.s, end - 1, 1, buf), 0, "%s: read of the last block", t->what);
    cr_assert_eq(buf[0], 0xA5, "%s: the last block did not keep its data", t->what);
    cr_assert_eq(tu_state(&sup, u.d), DOMAIN_READY, "%s: malformed requests hurt the domain", t->what);
    free(buf);
    close_conn(&k);
}

Test(blk_conformance, ramblk_bad_requests_get_clear_errors, .init = start, .fini = finish,
     .timeout = 60)
{ check_bad_requests(&RAMBLK); }
Test(blk_conformance, nvme_bad_requests_get_clear_errors, .init = start, .fini = finish,
     .timeout = 60)
{ check_bad_requests(&NVME512); }

/* ---- concurrent clients -------------------------------------------------------------- */

#define CLIENTS 4

struct client_job {
    const char *cap;
    unsigned index;
    uint64_t requests;
    char failure[256];
};

/* Each client works in its own quarter of the device with its own shadow;
 * failures are reported to the test thread, which asserts. */
static void *client_main(void *arg)
{
    struct client_job *j = arg;
    struct conn k;
    int rc = open_conn(j->cap, 32, &k);
    if (rc) {
        snprintf(j->failure, sizeof j->failure, "client %u: open: %s", j->index, moat_strerror(rc));
        return NULL;
    }
    const uint32_t bs = k.geo.block_size;
    const uint64_t part = k.geo.blocks / CLIENTS, base = j->index * part;
    uint8_t *shadow = calloc(part, bs), *buf = malloc(16u * bs);
    uint64_t r = 0xC0FFEE + j->index;
    for (uint64_t n = 0; n < j->requests && !j->failure[0]; n++) {
        uint32_t nb = 1 + (uint32_t)(xorshift(&r) % 16);
        uint64_t off = xorshift(&r) % (part - nb);
        if (xorshift(&r) & 1) {
            for (size_t b = 0; b < (size_t)nb * bs; b++)
                buf[b] = (uint8_t)(xorshift(&r) ^ j->index);
            rc = moat_blk_write(k.s, base + off, nb, buf);
            if (!rc)
                memcpy(shadow + off * bs, buf, (size_t)nb * bs);
        } else {
            rc = moat_blk_read(k.s, base + off, nb, buf);
            if (!rc && memcmp(buf, shadow + off * bs, (size_t)nb * bs))
                snprintf(j->failure, sizeof j->failure, "client %u: read at %llu differs",
                         j->index, (unsigned long long)(base + off));
        }
        if (rc)
            snprintf(j->failure, sizeof j->failure, "client %u: request %llu: %s", j->index,
                     (unsigned long long)n, moat_strerror(rc));
    }
    free(shadow);
    free(buf);
    close_conn(&k);
    return NULL;
}

static void check_concurrent(const struct target *t)
{
    struct dut u = bring_up(t, "dut", NULL);
    struct client_job jobs[CLIENTS];
    pthread_t th[CLIENTS];
    for (unsigned i = 0; i < CLIENTS; i++) {
        jobs[i] = (struct client_job){ .cap = u.cap, .index = i, .requests = 3000 };
        cr_assert_eq(pthread_create(&th[i], NULL, client_main, &jobs[i]), 0);
    }
    for (unsigned i = 0; i < CLIENTS; i++)
        pthread_join(th[i], NULL);
    for (unsigned i = 0; i < CLIENTS; i++)
        cr_assert_str_empty(jobs[i].failure, "%s: %s", t->what, jobs[i].failure);
    cr_assert_eq(tu_state(&sup, u.d), DOMAIN_READY, "%s: the domain ended", t->what);
}

Test(blk_conformance, ramblk_concurrent_clients, .init = start, .fini = finish, .timeout = 300)
{ check_concurrent(&RAMBLK); }
Test(blk_conformance, nvme_concurrent_clients, .init = start, .fini = finish, .timeout = 300)
{ check_concurrent(&NVME512); }

/* ---- NVMe only ---------------------------------------------------------------------- */

static struct moat_cap *open_control(struct moat_client *c)
{
    struct moat_cap *cc;
    int rc = moat_open(c, "control", MOAT_RIGHT_READ | MOAT_RIGHT_ADMIN, &cc);
    cr_assert_eq(rc, 0, "open control: %s", moat_strerror(rc));
    return cc;
}

Test(blk_conformance, nvme_data_survives_a_domain_restart, .init = start, .fini = finish,
     .timeout = 120)
{
    struct dut u = bring_up(&NVME512, "dut", NULL);
    struct conn k = must_open(u.cap, 16);
    uint8_t w[8 * 512], back[8 * 512];
    for (size_t i = 0; i < sizeof w; i++)
        w[i] = (uint8_t)(i * 7 + 3);
    cr_assert_eq(moat_blk_write(k.s, 1000, 8, w), 0);
    cr_assert_eq(moat_blk_flush(k.s), 0);
    struct moat_cap *cc = open_control(k.c);
    int rc = moat_restart(cc, "dut");
    cr_assert_eq(rc, 0, "restart: %s", moat_strerror(rc));
    cr_assert(supervisor_wait(&sup, u.d, READY, BOOT_MS), "the NVMe domain did not come back");
    /* The session follows the cap to the new incarnation by itself. */
    rc = moat_blk_read(k.s, 1000, 8, back);
    cr_assert_eq(rc, 0, "read after the restart: %s", moat_strerror(rc));
    struct moat_session_stats st;
    moat_session_stats(k.s, &st);
    cr_assert_eq(st.recoveries, 1, "the session moved to %llu new incarnations, want 1",
                 (unsigned long long)st.recoveries);
    cr_assert(memcmp(w, back, sizeof w) == 0,
              "data flushed before the restart did not survive it (the controller was reset and "
              "re-initialised by a fresh driver)");
    moat_close(cc);
    close_conn(&k);
}

static struct nvme_stats nvme_of(const struct dut *u)
{
    struct nvme_stats st;
    for (unsigned i = 0; i < PCI_SLOTS_MAX; i++)
        if (u->d->pci.slot[i] && nvme_stats_get(u->d->pci.slot[i], &st))
            return st;
    cr_assert_fail("%s has no NVMe controller", u->name);
    return st;
}

/* moatctl stop on a busy NVMe domain: every request the client queued
 * before the stop is answered (not failed), then the driver deletes its
 * queues and shuts the controller down (CC.SHN), which flushes the image;
 * the domain ends by itself, and later requests get EDOWN. */
Test(blk_conformance, nvme_orderly_stop_answers_queued_requests_and_shuts_down, .init = start,
     .fini = finish, .timeout = 120)
{
    struct dut u = bring_up(&NVME4K, "dut", NULL);
    struct conn k = must_open(u.cap, 64);
    enum { N = 32, NB = 4 };
    static uint8_t buf[N][NB * 4096];
    struct moat_blk_req q[N];
    for (int i = 0; i < N; i++) {
        memset(buf[i], 0x40 + i, sizeof buf[i]);
        q[i] = (struct moat_blk_req){ .op = MOAT_BLK_WRITE, .lba = (uint64_t)i * NB * 3,
                                      .blocks = NB, .buf = buf[i], .user_data = (uint64_t)i };
    }
    struct nvme_stats before = nvme_of(&u);
    int rc = moat_blk_submit(k.s, q, N);
    cr_assert_eq(rc, N, "submit %d writes: %s", N, rc < 0 ? moat_strerror(rc) : "ring full");
    struct moat_cap *cc = open_control(k.c);
    rc = moat_stop(cc, "dut");
    cr_assert_eq(rc, 0, "stop: %s", moat_strerror(rc));
    int answered = 0;
    while (answered < N) {
        struct moat_completion c[N];
        int m = moat_wait(k.s, c, N, 10000);
        cr_assert_gt(m, 0, "%d of %d writes queued before the stop were answered: %s", answered,
                     N, moat_strerror(m));
        for (int j = 0; j < m; j++)
            cr_assert_eq(c[j].status, 0, "write %llu queued before the stop failed: %s",
                         (unsigned long long)c[j].user_data, moat_strerror(c[j].status));
        answered += m;
    }
    cr_assert(supervisor_wait(&sup, u.d, DOMAIN_TERMINAL, BOOT_MS), "dut did not stop");
    cr_assert_eq(tu_state(&sup, u.d), DOMAIN_STOPPED);
    cr_assert_eq(DSTAT_GET(u.d, orderly_stops), 1, "the stop was forced");
    struct nvme_stats after = nvme_of(&u);
    cr_assert_eq(after.shutdowns - before.shutdowns, 1, "the controller was not shut down");
    cr_assert_eq(after.err_queue, before.err_queue, "a queue deletion failed");
    cr_assert_eq(after.io_writes - before.io_writes, N, "%llu writes reached the controller",
                 (unsigned long long)(after.io_writes - before.io_writes));
    int fd = open(u.image_path, O_RDONLY | O_CLOEXEC);
    cr_assert_geq(fd, 0, "open %s", u.image_path);
    static uint8_t back[NB * 4096];
    for (int i = 0; i < N; i++) {
        cr_assert_eq(pread(fd, back, sizeof back, (off_t)q[i].lba * 4096), (ssize_t)sizeof back);
        cr_assert(memcmp(back, buf[i], sizeof back) == 0, "write %d is not in the image", i);
    }
    close(fd);
    rc = moat_blk_read(k.s, 0, 1, back);
    cr_assert_eq(rc, -MOAT_EDOWN, "a read after the stop: %s", moat_strerror(rc));
    moat_close(cc);
    close_conn(&k);
}

Test(blk_conformance, nvme_swallowed_command_recovered_by_timeout, .init = start,
     .fini = finish, .timeout = 120)
{
    /* The controller swallows the 20th I/O command; the driver times out
     * (300 ms), aborts, and the request still completes correctly. */
    static const struct target stall = { "nvme stall", "nvme", 8ull << 20, 512,
                                         "timeout_ms=300", "stall=20" };
    struct dut u = bring_up(&stall, "dut", NULL);
    struct conn k = must_open(u.cap, 16);
    uint8_t w[512], back[512];
    for (unsigned i = 0; i < 40; i++) {
        memset(w, (int)(i + 1), sizeof w);
        int rc = moat_blk_write(k.s, i, 1, w);
        cr_assert_eq(rc, 0, "write %u (the 20th command is swallowed by the device): %s", i,
                     moat_strerror(rc));
    }
    for (unsigned i = 0; i < 40; i++) {
        cr_assert_eq(moat_blk_read(k.s, i, 1, back), 0, "read %u", i);
        cr_assert_eq(back[0], i + 1, "block %u holds %u", i, back[0]);
    }
    cr_assert_eq(tu_state(&sup, u.d), DOMAIN_READY, "the driver must recover without a restart");
    char *log = NULL;
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/dut.log", sup.log_dir);
    log = tu_slurp(path);
    cr_assert_not_null(log, "read %s", path);
    cr_assert(strstr(log, "timed out") || strstr(log, "timeout"),
              "the domain log does not mention the timeout:\n%s", log);
    free(log);
    close_conn(&k);
}
