/*
 * bench_nbd — moat-nbd against qemu-nbd, the export a user would pick
 * instead, both driven by `qemu-img bench` (4 KiB requests, the QEMU NBD
 * client, one connection) in the same run:
 *   - NVMe: moat-nbd over the NVMe driver domain serving an image file,
 *     beside qemu-nbd serving the same file;
 *   - ramblk: moat-nbd over a ramblk domain (its blocks in its RAM), beside
 *     qemu-nbd serving a file of the same size on tmpfs (/dev/shm);
 * each at depth 32 and 1, reads and writes. Every figure is the median of
 * ROUNDS rounds, each a qemu-nbd run then a moat-nbd run, so drift in the
 * machine hits both sides; the range of the per-round ratios is printed.
 * What limits moat-nbd is shown from its own counters (its "client done"
 * lines): requests in flight at most, replies per send, sleeps per
 * request. The images hold random data, so no side reads holes.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "control.h"
#include "moat/libmoat.h"
#include "report.h"
#include "supervisor.h"

#define DIR_      "/tmp/moat-bench-logs"
#define SOCK      DIR_ "/nbd-ctl.sock"
#define NV_IMG    DIR_ "/nbd-nvme.img"
#define SHM_IMG   "/dev/shm/moat-bench-nbd-ram.img"
#define NV_BYTES  (256ull << 20)
#define RAM_BYTES (64ull << 20)
#define ROUNDS    5u
#define COUNT32   40000u        /* requests per qemu-img bench run at depth 32 */
#define COUNT1    8000u         /* ... at depth 1 */

extern char **environ;
static struct supervisor sup;
static struct control ctl;

__attribute__((format(printf, 1, 2), noreturn))
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bench_nbd: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

/* A file of random bytes (no holes), so both sides read real data. */
static void make_image(const char *path, uint64_t bytes)
{
    int fd = bench_random_file(path, bytes);
    if (fd < 0)
        die("cannot create %s: %s", path, strerror(errno));
    close(fd);
}

static struct domain *boot(const char *spec) { return bench_boot_domain(&sup, spec); }

/* ramblk starts zeroed: give it the same random bytes as its peer's file. */
static void fill_ramblk(void)
{
    struct moat_client *c;
    struct moat_cap *cap;
    struct moat_session *s;
    int rc = moat_connect(SOCK, &c);
    if (rc || (rc = moat_open(c, "ram.blk0", MOAT_RIGHT_READ | MOAT_RIGHT_WRITE, &cap)) ||
        (rc = moat_session_open(cap, NULL, &s)))
        die("cannot open ram.blk0: %s", moat_strerror(rc));
    struct moat_blk_geometry g;
    moat_blk_geometry(cap, &g);
    int fd = open(SHM_IMG, O_RDONLY | O_CLOEXEC);
    static uint8_t buf[64 << 10];
    uint32_t per = (uint32_t)(sizeof buf / g.block_size);
    if (per > moat_session_max_blocks(s))
        per = moat_session_max_blocks(s);
    for (uint64_t lba = 0; fd >= 0 && lba * g.block_size < RAM_BYTES; lba += per) {
        if (pread(fd, buf, (size_t)per * g.block_size, (off_t)(lba * g.block_size)) < 0 ||
            (rc = moat_blk_write(s, lba, per, buf)) != 0)
            die("cannot fill ram.blk0: %s", rc ? moat_strerror(rc) : strerror(errno));
    }
    if (fd < 0)
        die("cannot read %s", SHM_IMG);
    close(fd);
    moat_session_close(s);
    moat_disconnect(c);
}

/* Start argv with stderr (and stdout) into log; returns its pid. */
static pid_t spawn(char *const argv[], const char *log)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        die("cannot start %s", argv[0]);
    return pid;
}

/* Wait (10 s at most) until something accepts connections at path. */
static void wait_listening(const char *path, pid_t pid)
{
    for (int i = 0; i < 2000; i++) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
        int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
        close(fd);
        if (ok)
            return;
        if (waitpid(pid, NULL, WNOHANG) == pid)
            die("the server for %s exited at start; see " DIR_ "/nbd-*.log", path);
        nanosleep(&(struct timespec){ .tv_nsec = 5000000 }, NULL);
    }
    die("nothing listens at %s after 10 s", path);
}

static void stop(pid_t pid)
{
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
}

/* One qemu-img bench run: requests per second. */
static double qemu_img_bench(const char *uri, unsigned depth, bool write)
{
    unsigned count = depth > 1 ? COUNT32 : COUNT1;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "qemu-img bench -f raw -c %u -d %u -s 4096 %s '%s' 2>&1", count,
             depth, write ? "-w" : "", uri);
    FILE *p = popen(cmd, "r");
    if (!p)
        die("cannot run %s", cmd);
    char line[512];
    double secs = 0;
    while (fgets(line, sizeof line, p))
        if (sscanf(line, "Run completed in %lf seconds", &secs) == 1)
            break;
    while (fgets(line, sizeof line, p))
        ;
    int st = pclose(p);
    if (st != 0 || secs <= 0)
        die("qemu-img bench failed: %s", cmd);
    return count / secs;
}

struct figure {
    const char *name;
    double moat, peer;
};

/* ROUNDS alternating rounds of one configuration. */
static struct figure measure(const char *name, const char *peer_uri, const char *moat_uri,
                             unsigned depth, bool write)
{
    double p[ROUNDS], m[ROUNDS], r[ROUNDS];
    for (unsigned i = 0; i < ROUNDS; i++) {
        p[i] = qemu_img_bench(peer_uri, depth, write);
        m[i] = qemu_img_bench(moat_uri, depth, write);
        r[i] = m[i] / p[i];
    }
    struct figure f = { .name = name, .moat = bench_spread(m, ROUNDS).median,
                        .peer = bench_spread(p, ROUNDS).median };
    const struct bench_spread rs = bench_spread(r, ROUNDS);
    fprintf(stderr, "bench_nbd: %-28s qemu-nbd %7.0f  moat-nbd %7.0f req/s  ratio %.2f "
            "(rounds %.2f-%.2f)\n", name, f.peer, f.moat, rs.median, rs.lo, rs.hi);
    return f;
}

/* moat-nbd's own account of its last connection (its "client done" line). */
static void show_counters(const char *log)
{
    FILE *f = fopen(log, "r");
    char line[1024], last[1024] = "";
    while (f && fgets(line, sizeof line, f))
        if (strstr(line, " done: "))
            snprintf(last, sizeof last, "%s", line);
    if (f)
        fclose(f);
    if (last[0])
        fprintf(stderr, "bench_nbd:   last connection: %s", strstr(last, "client"));
}

int main(int argc, char **argv)
{
    static struct moat_config cfg;
    if (!bench_start(argc, argv, &cfg))
        return 2;
    mkdir(DIR_, 0700);
    if (system("command -v qemu-nbd >/dev/null && command -v qemu-img >/dev/null") != 0) {
        fprintf(stderr, "bench_nbd: SKIPPED: qemu-nbd or qemu-img is not installed "
                "(scripts/install-deps.sh installs qemu-utils)\n");
        return bench_write(argv[1], NULL, 0) ? 0 : 1;
    }
    make_image(NV_IMG, NV_BYTES);
    make_image(SHM_IMG, RAM_BYTES);
    char err[512], spec[1024];
    unlink(SOCK);
    if (!supervisor_init(&sup, &cfg, err, sizeof err) ||
        !control_start(&ctl, &sup, SOCK, err, sizeof err))
        die("%s", err);
    snprintf(spec, sizeof spec, "name=nv kernel=%s/guest/nvme.elf mem=64M dma=32M "
             "dev=nvme:image=" NV_IMG, MOAT_BUILD_DIR);
    boot(spec);
    snprintf(spec, sizeof spec, "name=ram kernel=%s/guest/ramblk.elf mem=96M args=\"size=64M\"",
             MOAT_BUILD_DIR);
    boot(spec);
    fill_ramblk();
    char moat_nbd[512];
    snprintf(moat_nbd, sizeof moat_nbd, "%s/bin/moat-nbd", MOAT_BUILD_DIR);
    const char *log_m_nv = DIR_ "/nbd-moat-nv.log", *log_m_ram = DIR_ "/nbd-moat-ram.log";
    unlink(log_m_nv);
    unlink(log_m_ram);
    pid_t m_nv = spawn((char *[]){ moat_nbd, "--socket", SOCK, "--cap", "nv.blk0", "--unix",
                                   DIR_ "/nbd-moat-nv.sock", NULL }, log_m_nv);
    pid_t m_ram = spawn((char *[]){ moat_nbd, "--socket", SOCK, "--cap", "ram.blk0", "--unix",
                                    DIR_ "/nbd-moat-ram.sock", NULL }, log_m_ram);
    pid_t q_nv = spawn((char *[]){ "qemu-nbd", "-f", "raw", "-x", "nv", "-t", "-k",
                                   DIR_ "/nbd-qemu-nv.sock", NV_IMG, NULL },
                       DIR_ "/nbd-qemu-nv.log");
    pid_t q_ram = spawn((char *[]){ "qemu-nbd", "-f", "raw", "-x", "ram", "-t", "-k",
                                    DIR_ "/nbd-qemu-ram.sock", SHM_IMG, NULL },
                        DIR_ "/nbd-qemu-ram.log");
    wait_listening(DIR_ "/nbd-moat-nv.sock", m_nv);
    wait_listening(DIR_ "/nbd-moat-ram.sock", m_ram);
    wait_listening(DIR_ "/nbd-qemu-nv.sock", q_nv);
    wait_listening(DIR_ "/nbd-qemu-ram.sock", q_ram);

    const char *qnv = "nbd+unix:///nv?socket=" DIR_ "/nbd-qemu-nv.sock";
    const char *mnv = "nbd+unix:///nv.blk0?socket=" DIR_ "/nbd-moat-nv.sock";
    const char *qram = "nbd+unix:///ram?socket=" DIR_ "/nbd-qemu-ram.sock";
    const char *mram = "nbd+unix:///ram.blk0?socket=" DIR_ "/nbd-moat-ram.sock";
    /* Warm both sides (page cache, domains, workers). */
    qemu_img_bench(qnv, 32, false);
    qemu_img_bench(mnv, 32, false);
    struct figure f[8];
    f[0] = measure("nvme 4K read depth 32", qnv, mnv, 32, false);
    show_counters(log_m_nv);
    f[1] = measure("nvme 4K write depth 32", qnv, mnv, 32, true);
    f[2] = measure("nvme 4K read depth 1", qnv, mnv, 1, false);
    f[3] = measure("nvme 4K write depth 1", qnv, mnv, 1, true);
    show_counters(log_m_nv);
    f[4] = measure("ramblk 4K read depth 32", qram, mram, 32, false);
    show_counters(log_m_ram);
    f[5] = measure("ramblk 4K write depth 32", qram, mram, 32, true);
    f[6] = measure("ramblk 4K read depth 1", qram, mram, 1, false);
    f[7] = measure("ramblk 4K write depth 1", qram, mram, 1, true);
    show_counters(log_m_ram);

    stop(m_nv);
    stop(m_ram);
    stop(q_nv);
    stop(q_ram);
    control_stop(&ctl);
    supervisor_fini(&sup);
    unlink(NV_IMG);
    unlink(SHM_IMG);
    static const char *names[8] = {
        "nbd_nvme_4K_read_qd32", "nbd_nvme_4K_write_qd32", "nbd_nvme_4K_read_qd1",
        "nbd_nvme_4K_write_qd1", "nbd_ramblk_4K_read_qd32", "nbd_ramblk_4K_write_qd32",
        "nbd_ramblk_4K_read_qd1", "nbd_ramblk_4K_write_qd1",
    };
    static const char *peers[8] = {
        "qemu-nbd_file_4K_read_qd32", "qemu-nbd_file_4K_write_qd32", "qemu-nbd_file_4K_read_qd1",
        "qemu-nbd_file_4K_write_qd1", "qemu-nbd_tmpfs_4K_read_qd32",
        "qemu-nbd_tmpfs_4K_write_qd32", "qemu-nbd_tmpfs_4K_read_qd1",
        "qemu-nbd_tmpfs_4K_write_qd1",
    };
    struct bench_record rec[8];
    for (int i = 0; i < 8; i++)
        rec[i] = (struct bench_record){ names[i], f[i].moat, "req/s", peers[i], f[i].peer };
    return bench_write(argv[1], rec, 8) ? 0 : 1;
}
