/*
 * Peer check with tools nobody here wrote: a BlockDevice cap (under KVM)
 * exported by moat-nbd, driven by qemu-img, qemu-io and nbdinfo — once
 * served by ramblk, once by the NVMe driver on moat's NVMe controller
 * model. A 64 MiB random file converted into the export and back is
 * byte-identical, qemu-io pattern writes (unaligned ones included) read
 * back and are seen through libmoat too, and the tools report the size.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "control.h"
#include "moat/libmoat.h"
#include "testutil.h"

#define DISK (64ull << 20)

static struct supervisor sup;
static struct control ctl;
static char err[512], sock[PATH_MAX], nbd_sock[PATH_MAX], uri[PATH_MAX + 64], dir[256];
static char cap_name[48];
static pid_t nbd_pid;

static void need_tool(const char *tool)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", tool);
    if (system(cmd) != 0) {
        fprintf(stderr, "SKIPPED: %s not installed (scripts/install-deps.sh installs it)\n", tool);
        cr_skip_test("SKIPPED: %s not installed", tool);
    }
}

/* Run a shell command; its stdout+stderr land in a heap string. */
static char *run(const char *cmd, int *status)
{
    char full[8192], out[PATH_MAX];
    snprintf(out, sizeof out, "%s/cmd.out", dir);
    snprintf(full, sizeof full, "(%s) >%s 2>&1", cmd, out);
    int rc = system(full);
    *status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
    char *s = tu_slurp(out);
    cr_assert_not_null(s, "cannot read the output of %s", cmd);
    return s;
}

static void prepare(void)
{
    TU_REQUIRE_KVM();
    need_tool("qemu-img");
    need_tool("qemu-io");
    need_tool("nbdinfo");
    snprintf(dir, sizeof dir, "%s", tu_tmpdir());
}

/* Boot the domain of spec, serving cap, and export it with moat-nbd. */
static void start_with(const char *spec, const char *cap)
{
    snprintf(cap_name, sizeof cap_name, "%s", cap);
    cr_assert(tu_moat_start(&sup, &ctl, dir, sock, sizeof sock, err, sizeof err), "%s", err);
    cr_assert_not_null(tu_boot(&sup, spec, 15000, err, sizeof err), "the domain serving %s: %s",
                       cap, err);

    /* moat-nbd as a separate process; it says when it serves. */
    snprintf(nbd_sock, sizeof nbd_sock, "%s/nbd.sock", dir);
    snprintf(uri, sizeof uri, "nbd+unix:///%s?socket=%s", cap, nbd_sock);
    nbd_pid = tu_start_nbd(sock, cap, nbd_sock, err, sizeof err);
    cr_assert_gt(nbd_pid, 0, "%s", err);
}

static void finish(void)
{
    if (nbd_pid > 0) {
        kill(nbd_pid, SIGTERM);
        waitpid(nbd_pid, NULL, 0);
    }
    tu_moat_stop(&sup, &ctl);
}

static void start_ramblk(void)
{
    prepare();
    char spec[512];
    snprintf(spec, sizeof spec, "name=ram0 kernel=%s mem=96M args=\"size=64M max=256\"",
             tu_guest("ramblk"));
    start_with(spec, "ram0.blk0");
}

static void start_nvme(void)
{
    prepare();
    char img[PATH_MAX], spec[2 * PATH_MAX];
    snprintf(img, sizeof img, "%s/nvme.img", dir);
    FILE *f = fopen(img, "w");
    cr_assert(f && ftruncate(fileno(f), (off_t)DISK) == 0, "cannot create %s", img);
    fclose(f);
    snprintf(spec, sizeof spec, "name=nv0 kernel=%s mem=64M dma=32M dev=nvme:image=%s",
             tu_guest("nvme"), img);
    start_with(spec, "nv0.blk0");
}

static void check_size(void)
{
    int st;
    char cmd[PATH_MAX + 128];
    snprintf(cmd, sizeof cmd, "nbdinfo --size '%s'", uri);
    char *out = run(cmd, &st);
    cr_assert_eq(st, 0, "nbdinfo failed: %s", out);
    cr_assert_eq(strtoull(out, NULL, 10), DISK, "nbdinfo says %s bytes, the cap has %llu", out,
                 (unsigned long long)DISK);
    free(out);
    snprintf(cmd, sizeof cmd, "qemu-img info --output=json '%s'", uri);
    out = run(cmd, &st);
    cr_assert_eq(st, 0, "qemu-img info failed: %s", out);
    cr_assert_not_null(strstr(out, "\"virtual-size\": 67108864"), "qemu-img info: %s", out);
    free(out);
}

static void check_convert_round_trip(void)
{
    int st;
    char cmd[3 * PATH_MAX];
    snprintf(cmd, sizeof cmd, "head -c 67108864 /dev/urandom > %s/in.raw", dir);
    char *out = run(cmd, &st);
    cr_assert_eq(st, 0, "%s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "qemu-img convert -n -f raw -O raw %s/in.raw '%s'", dir, uri);
    out = run(cmd, &st);
    cr_assert_eq(st, 0, "qemu-img convert into the export failed: %s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "qemu-img convert -f raw -O raw '%s' %s/out.raw", uri, dir);
    out = run(cmd, &st);
    cr_assert_eq(st, 0, "qemu-img convert out of the export failed: %s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "cmp %s/in.raw %s/out.raw", dir, dir);
    out = run(cmd, &st);
    cr_assert_eq(st, 0, "the round trip differs: %s", out);
    free(out);
}

static void check_qemu_io_patterns(void)
{
    int st;
    char cmd[PATH_MAX + 512];
    snprintf(cmd, sizeof cmd,
             "qemu-io -f raw -c 'write -P 0xab 0 64k' -c 'read -P 0xab 0 64k' "
             "-c 'write -P 0x5a 1000 3000' -c 'read -P 0x5a 1000 3000' "
             "-c 'write -P 0x11 67043328 65536' -c 'read -P 0x11 67043328 65536' "
             "-c 'write -z 131072 4096' -c 'read -P 0 131072 4096' '%s'", uri);
    char *out = run(cmd, &st);
    cr_assert_eq(st, 0, "qemu-io failed: %s", out);
    cr_assert_null(strstr(out, "failed"), "qemu-io reported a failure: %s", out);
    cr_assert_null(strstr(out, "Pattern verification"), "pattern mismatch: %s", out);
    free(out);

    /* The same bytes, seen by a client of the cap itself. */
    struct moat_client *c;
    struct moat_cap *cap;
    struct moat_session *s;
    cr_assert_eq(moat_connect(sock, &c), 0);
    cr_assert_eq(moat_open(c, cap_name, MOAT_RIGHT_READ, &cap), 0);
    cr_assert_eq(moat_session_open(cap, NULL, &s), 0);
    static uint8_t buf[8192];
    cr_assert_eq(moat_blk_read(s, 0, 16, buf), 0);
    for (size_t i = 0; i < 1000; i++)
        cr_assert_eq(buf[i], 0xab, "byte %zu is 0x%02x, qemu-io wrote 0xab", i, buf[i]);
    for (size_t i = 1000; i < 4000; i++)
        cr_assert_eq(buf[i], 0x5a, "byte %zu is 0x%02x, qemu-io wrote 0x5a", i, buf[i]);
    for (size_t i = 4000; i < 8192; i++)
        cr_assert_eq(buf[i], 0xab, "byte %zu is 0x%02x, qemu-io wrote 0xab", i, buf[i]);
    moat_session_close(s);
    moat_close(cap);
    moat_disconnect(c);
}

TestSuite(nbd_peer, .init = start_ramblk, .fini = finish, .timeout = 300);
Test(nbd_peer, tools_report_the_size) { check_size(); }
Test(nbd_peer, qemu_img_convert_64MiB_round_trip_is_identical) { check_convert_round_trip(); }
Test(nbd_peer, qemu_io_patterns_and_libmoat_agree) { check_qemu_io_patterns(); }

TestSuite(nbd_peer_nvme, .init = start_nvme, .fini = finish, .timeout = 300);
Test(nbd_peer_nvme, tools_report_the_size) { check_size(); }
Test(nbd_peer_nvme, qemu_img_convert_64MiB_round_trip_is_identical) { check_convert_round_trip(); }
Test(nbd_peer_nvme, qemu_io_patterns_and_libmoat_agree) { check_qemu_io_patterns(); }

/* moat-nbd started before moat (as a service manager may): with --wait it
 * waits for the control socket and the cap, then serves. */
static void prepare_only(void) { prepare(); }

Test(nbd_peer_start, waits_for_moat_with_wait, .init = prepare_only, .fini = finish,
     .timeout = 120)
{
    snprintf(sock, sizeof sock, "%s/ctl.sock", dir);
    snprintf(nbd_sock, sizeof nbd_sock, "%s/nbd.sock", dir);
    FILE *f;
    nbd_pid = tu_spawn_nbd(sock, "ram0.blk0", nbd_sock, 30, &f, err, sizeof err);
    cr_assert_gt(nbd_pid, 0, "%s", err);
    char spec[512];
    snprintf(spec, sizeof spec, "name=ram0 kernel=%s mem=32M args=\"size=4M\"",
             tu_guest("ramblk"));
    cr_assert(tu_moat_start(&sup, &ctl, dir, sock, sizeof sock, err, sizeof err), "%s", err);
    cr_assert_not_null(tu_boot(&sup, spec, 15000, err, sizeof err), "%s", err);
    cr_assert(tu_nbd_wait_serving(f, "ram0.blk0", err, sizeof err), "%s", err);
    snprintf(uri, sizeof uri, "nbd+unix:///ram0.blk0?socket=%s", nbd_sock);
    int st;
    char cmd[PATH_MAX + 128];
    snprintf(cmd, sizeof cmd, "nbdinfo --size '%s'", uri);
    char *out = run(cmd, &st);
    cr_assert_eq(st, 0, "nbdinfo: %s", out);
    cr_assert(strstr(out, "4194304"), "size: %s", out);
    free(out);
}
