/*
 * The NVMe driver, unchanged, in a domain of the kernel booted bare (ring 3,
 * or with BARE_CPU "EPYC" — test_bare_nvme_svm — an SVM guest)
 * under QEMU (TCG), bound to QEMU's own NVMe controller through the
 * monitor's doorbell-time interposition (no IOMMU: shadow submission
 * queues, translated PRPs), serving its BlockDevice to blkcheck, an app
 * domain holding the cap over a session the monitor brokers. Each test
 * boots by -kernel with the domains as multiboot modules and asserts:
 *   - the app writes, flushes, reads and verifies a pattern through the
 *     session, and the host finds that pattern in QEMU's disk image after
 *     QEMU exits (512-byte blocks; 4096-byte blocks with a 16 KiB MDTS);
 *   - a hostile build (the driver's fault hooks) that puts a raw physical
 *     address into a PRP is refused at the doorbell and audited, and the
 *     target (a canary page of the monitor's) is unchanged; the domain's
 *     private memory and the page after its window likewise; a domain
 *     that reads the canary page itself ends (a page fault in ring 3, a
 *     nested page fault as an SVM guest), audited, and is restarted;
 *   - the NVMe domain panicking under a verifying app, mid-run: it is
 *     stopped, its controller reset (CC.EN = 0, then a function-level
 *     reset) and restarted at once by the default policy; the session
 *     gets fresh rings, the app publishes again what was in flight, and
 *     every round it flushed reads back (and the last one is in the image);
 *     an exception in the domain is reported with its registers and
 *     restarted likewise; a domain spinning without its run loop is
 *     stopped by the watchdog and restarted;
 *   - a server that breaks a session's rings (corrupt-session): the app
 *     opens a fresh session, carries its data over and passes; the server
 *     drains and releases the broken one and keeps running;
 *   - a crash loop under the app spends the restart budget and opens the
 *     breaker: the app's requests fail with a clear error instead of
 *     hanging; the console's restart closes the breaker and the app,
 *     restarted by its own policy, passes; restart=never keeps a crashed
 *     domain down; a malformed restarts= is refused with why;
 *   - a controller below a PCIe root port (bus 1) is served, reset and
 *     restarted after a crash;
 *   - a module whose mem= is malformed is not started, and says why.
 * Without QEMU every test says SKIPPED.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>
#include "bare_console.h"

#define APP_MS 120000u
#define SEED 0x5eed1234u
#define APP_LBA 64u
#define APP_KIB 192u

static char img[PATH_MAX], app_words[256], drive[PATH_MAX + 64], device[160];

/* A fresh raw image, and QEMU's arguments for it, the NVMe domain and the
 * app checking its cap (rounds of write, flush, read, verify); the
 * controller below a PCIe root port (bus 1) when root_port. */
static char **nvme_app_args_on(const char *nvme_props, unsigned rounds, bool root_port)
{
    snprintf(img, sizeof img, "/tmp/moat-bare-nvme-dom.%d.img", (int)getpid());
    int fd = open(img, O_RDWR | O_CREAT | O_TRUNC, 0600);
    cr_assert(fd >= 0 && ftruncate(fd, 32 << 20) == 0, "cannot create %s", img);
    close(fd);
    snprintf(app_words, sizeof app_words, "domain=app0 mem=4M dma=2M cap=nvme0.blk0 kib=%u "
             "lba=%u seed=%u rounds=%u", APP_KIB, APP_LBA, SEED, rounds);
    snprintf(drive, sizeof drive, "if=none,id=nv0,format=raw,file=%s", img);
    snprintf(device, sizeof device, "nvme,serial=moatbare,drive=nv0%s%s", nvme_props,
             root_port ? ",bus=rp1" : "");
    static char *more[8];
    size_t n = 0;
    if (root_port) {
        more[n++] = "-device";
        more[n++] = "pcie-root-port,id=rp1,chassis=1";
    }
    more[n++] = "-drive";
    more[n++] = drive;
    more[n++] = "-device";
    more[n++] = device;
    more[n] = NULL;
    return bare_modules_args("nvme.dom.elf", "domain=nvme0 dev=nvme mem=16M dma=32M", "blkcheck.dom.elf",
                             app_words, more);
}

static char **nvme_app_args(const char *nvme_props, unsigned rounds)
{
    return nvme_app_args_on(nvme_props, rounds, false);
}

static char **nvme_args(const char *nvme_props) { return nvme_app_args(nvme_props, 1); }

/* The app's PASS line (after its last round), on block_size blocks. */
static void expect_app_pass(unsigned block_size)
{
    char want[160];
    snprintf(want, sizeof want, "blkcheck app0: PASS: ");
    cr_assert(qc_expect(&qc, want, APP_MS), "the app did not pass within %u ms:\n%s",
              APP_MS, qc.text);
    snprintf(want, sizeof want, "of %u KiB written, flushed, read and verified at LBA %u through "
             "nvme0.blk0 (seed 0x%x, %u blocks of %u bytes)", APP_KIB, APP_LBA, SEED,
             (APP_KIB << 10) / block_size, block_size);
    cr_assert(qc_expect(&qc, want, REPLY_MS), "the app checked something else:\n%s", qc.text);
}

/* Boot with the app on a long run (150 rounds), and wait until it is
 * under way: a fault injected now lands mid-run. */
static void boot_app_mid_run(void)
{
    boot_kernel_to_prompt("q35", nvme_app_args("", 150));
    cr_assert(qc_seen("blkcheck app0: round 2 of 150 verified", APP_MS),
              "the app made no progress:\n%s", qc.text);
}

/* The supervisor restarted the NVMe domain, and it is serving again. */
static void expect_nvme_restarted(unsigned incarnation)
{
    char want[96];
    snprintf(want, sizeof want, "nvme0: restarted after its end: memory scrubbed, image "
             "reloaded, devices reset, incarnation %u", incarnation);
    cr_assert(qc_expect(&qc, want, APP_MS) && qc_expect(&qc, "nvme0: ready in", APP_MS),
              "no automatic restart (incarnation %u):\n%s", incarnation, qc.text);
}

/* After an NVMe restart: run the app again (it exited after passing). */
static void app_again(unsigned incarnation)
{
    char out[4096], want[96];
    run_cmd("restart app0", out, sizeof out);
    snprintf(want, sizeof want, "app0: restarted: memory scrubbed, image reloaded, devices "
             "reset, incarnation %u", incarnation);
    cr_assert(qc_seen(want, APP_MS), "the app was not restarted:\n%s", qc.text);
    expect_app_pass(512);
}

/* After QEMU exited: the pattern is where the app wrote it last. */
static void check_image(unsigned block_size)
{
    FILE *f = fopen(img, "rb");
    cr_assert(f, "cannot open %s", img);
    uint64_t blocks = (APP_KIB << 10) / block_size, lba0 = APP_LBA, bad = 0, first = 0;
    uint64_t words = block_size / 8;
    uint64_t *buf = malloc(block_size);
    for (uint64_t b = 0; b < blocks; b++) {
        uint64_t lba = lba0 + b;
        cr_assert_eq(fseek(f, (long)(lba * block_size), SEEK_SET), 0);
        cr_assert_eq(fread(buf, 1, block_size, f), block_size, "short read of LBA %lu", lba);
        for (uint64_t i = 0; i < words; i++)
            if (buf[i] != ((uint64_t)SEED ^ lba << 32 ^ i) && bad++ == 0)
                first = lba;
    }
    free(buf);
    fclose(f);
    unlink(img);
    cr_assert_eq(bad, 0, "%lu words of the pattern are not in the image (first bad LBA %lu)", bad,
                 first);
}

Test(bare_nvme, the_apps_pattern_reaches_the_disk_image, .timeout = 300)
{
    boot_kernel_to_prompt("q35", nvme_args(""));
    expect_app_pass(512);
    cr_assert(strstr(qc.text, "2032 KiB data, zero copy)") &&
              strstr(qc.text, "2032 KiB data DMA-reachable, read-write)"),
              "the session's data area is not a window of the NVMe domain:\n%s", qc.text);
    cr_assert(qc_seen("app0: stays down (restart=on-failure)", REPLY_MS) &&
              qc_seen("nvme0: session 1 released", REPLY_MS),
              "the app's exit did not close its session:\n%s", qc.text);
    char out[8192];
    run_cmd("domains", out, sizeof out);
    cr_assert(strstr(out, "nvme0: running, incarnation 1, " BARE_ISOLATION), "domains: %s", out);
    cr_assert(strstr(out, "cap nvme0.blk0: BlockDevice, 65536 blocks of 512 bytes"),
              "the cap is not listed: %s", out);
    cr_assert(strstr(out, "1b36:0010 NVMe controller") && strstr(out, "1 namespace probed"),
              "the device and the monitor's probe are not listed: %s", out);
    run_cmd("windows", out, sizeof out);
    cr_assert(strstr(out, "nvme0: window 0: IOVA 0x60000000-0x61ffffff -> physical 0x") &&
              strstr(out, "translated at the doorbell"), "windows: %s", out);
    reboot_and_close();
    check_image(512);
}

Test(bare_nvme, an_app_on_4k_blocks_and_a_16k_mdts, .timeout = 300)
{
    boot_kernel_to_prompt("q35", nvme_args(",logical_block_size=4096,physical_block_size=4096,"
                                           "mdts=2"));
    expect_app_pass(4096);
    char out[8192];
    run_cmd("domains", out, sizeof out);
    cr_assert(strstr(out, "largest transfer 16 KiB"), "the monitor did not take MDTS: %s", out);
    reboot_and_close();
    check_image(4096);
}

/* Below a PCIe root port (bus 1, as on most servers): found, interposed,
 * and after a crash reset (its own reset, then a function-level reset)
 * and restarted; the app passes before and after. */
Test(bare_nvme, a_controller_below_a_root_port_is_served_and_restarted, .timeout = 300)
{
    boot_kernel_to_prompt("q35", nvme_app_args_on("", 1, true));
    cr_assert(qc_seen("nvme0: nvme: controller nvme at 01:00.0", APP_MS),
              "the controller on bus 1 was not bound:\n%s", qc.text);
    expect_app_pass(512);
    panic_and_restart("nvme0", APP_MS);
    cr_assert(qc_seen("nvme0: device 01:00.0: function-level reset, back in 100 ms", REPLY_MS),
              "the controller on bus 1 was not reset:\n%s", qc.text);
    app_again(2);
    reboot_and_close();
    check_image(512);
}

Test(bare_nvme, raw_physical_addresses_are_refused_at_the_doorbell, .timeout = 300)
{
    boot_kernel_to_prompt("q35", nvme_args(""));
    expect_app_pass(512);
    char out[8192];
    run_cmd("inject nvme0 wild-dma-other", out, sizeof out);
    cr_assert(strstr(out, "aimed at the monitor's canary page"), "inject: %s", out);
    cr_assert(qc_expect(&qc, "refused at the doorbell: PRP1 is outside the domain's DMA windows",
                        REPLY_MS), "the PRP at the canary was not refused:\n%s", qc.text);
    run_cmd("inject nvme0 wild-dma-private", out, sizeof out);
    cr_assert(qc_expect(&qc, "(opcode 0x02, PRP1 0x200000, PRP2 0x0) refused at the doorbell",
                        REPLY_MS), "the PRP at private memory was not refused:\n%s", qc.text);
    run_cmd("inject nvme0 wild-dma-end", out, sizeof out);
    cr_assert(qc_expect(&qc, "PRP2 0x62000000) refused at the doorbell", REPLY_MS),
              "the PRP past the window was not refused:\n%s", qc.text);
    run_cmd("canary", out, sizeof out);
    cr_assert(strstr(out, ": intact (0 of 4096 bytes changed)"), "canary: %s", out);
    run_cmd("audit", out, sizeof out);
    cr_assert(strstr(out, "PRP1 is outside the domain's DMA windows"), "audit: %s", out);
    run_cmd("domains", out, sizeof out);
    cr_assert(strstr(out, "nvme0: running"), "a refused command must not stop the domain: %s",
              out);
    /* A read of the monitor's own memory (its canary page): in ring 3 a
     * page fault (the page is supervisor-only); in an SVM guest its
     * page-table walk leaves the nested map. Either ends the domain,
     * audited, and it is restarted; the canary is still intact. */
    run_cmd("inject nvme0 wild-read", out, sizeof out);
    cr_assert(strstr(out, "(a read of the monitor's canary page)"), "inject: %s", out);
    if (!strcmp(BARE_CPU, "EPYC"))
        cr_assert(qc_expect(&qc, "nvme0: audit: nested page fault: its page-table walk reached "
                                 "guest-physical 0x", REPLY_MS) &&
                  qc_expect(&qc, "outside the domain's nested map", REPLY_MS),
                  "no nested page fault:\n%s", qc.text);
    else
        cr_assert(qc_expect(&qc, "nvme0: crashed: #PF page fault (vector 14, error 0x5) at RIP 0x",
                            REPLY_MS), "no page fault:\n%s", qc.text);
    expect_nvme_restarted(2);
    run_cmd("canary", out, sizeof out);
    cr_assert(strstr(out, ": intact (0 of 4096 bytes changed)"), "canary: %s", out);
    reboot_and_close();
    check_image(512);
}

Test(bare_nvme, a_crash_under_a_verifying_app_loses_no_flushed_write, .timeout = 300)
{
    boot_app_mid_run();
    char out[8192];
    run_cmd("inject nvme0 panic", out, sizeof out);
    cr_assert(qc_expect(&qc, "nvme0: panic: injected fault: panic", REPLY_MS),
              "no panic report:\n%s", qc.text);
    cr_assert(qc_expect(&qc, ": function-level reset, back in 100 ms", REPLY_MS),
              "the controller was not reset:\n%s", qc.text);
    cr_assert(qc_expect(&qc, "nvme0: restarted after its end: memory scrubbed, image reloaded, "
                             "devices reset, incarnation 2", APP_MS),
              "no automatic restart:\n%s", qc.text);   /* then the session, before it is ready */
    cr_assert(qc_expect(&qc, "app0: session 1: fresh rings from nvme0's incarnation 2", REPLY_MS)
              && qc_expect(&qc, "in flight published again", REPLY_MS),
              "the session was not handed to the new incarnation:\n%s", qc.text);
    expect_app_pass(512);
    cr_assert(qc_expect(&qc, "published again after 1 server restart", REPLY_MS),
              "the app did not see the restart:\n%s", qc.text);
    cr_assert(!strstr(qc.text, "FAIL"), "a check failed:\n%s", qc.text);
    run_cmd("domains", out, sizeof out);
    cr_assert(strstr(out, "nvme0: running, incarnation 2") &&
              strstr(out, "restart=on-failure, 1 of 5 restarts used in 30 s") &&
              strstr(out, "reset: its own, then a function-level reset, 1 so far"),
              "domains: %s", out);
    /* An exception in ring 3 (the kernel kind of fault: ud2 where hosted
     * mode would triple-fault) is caught, reported with registers, and
     * restarted too; the app then passes again. */
    run_cmd("inject nvme0 triple-fault", out, sizeof out);
    cr_assert(qc_expect(&qc, "nvme0: crashed: #UD invalid opcode (vector 6, error 0x0) at RIP 0x",
                        REPLY_MS) && qc_expect(&qc, "nvme0: registers: RAX ", REPLY_MS),
              "no crash report:\n%s", qc.text);
    expect_nvme_restarted(3);
    app_again(2);
    reboot_and_close();
    check_image(512);
}

Test(bare_nvme, a_server_that_breaks_the_rings_loses_the_session_not_the_data, .timeout = 300)
{
    boot_app_mid_run();
    char out[8192];
    run_cmd("inject nvme0 corrupt-session", out, sizeof out);
    cr_assert(qc_expect(&qc, "nvme0: fault: session 1's completion index corrupted", REPLY_MS),
              "not injected:\n%s", qc.text);
    cr_assert(qc_expect(&qc, "app0: session 0: the server broke its completion ring: opening a "
                             "fresh session", REPLY_MS) &&
              qc_expect(&qc, "app0: session 1: opened in place of session 0:", REPLY_MS),
              "the app did not move to a fresh session:\n%s", qc.text);
    expect_app_pass(512);
    cr_assert(qc_expect(&qc, "after 0 server restarts and 1 broken session", REPLY_MS),
              "the app's count is wrong:\n%s", qc.text);
    cr_assert(qc_seen("nvme0: session 1 released", APP_MS),
              "the server did not drain and release the broken session:\n%s", qc.text);
    run_cmd("domains", out, sizeof out);
    cr_assert(strstr(out, "nvme0: running, incarnation 1"),
              "a broken ring is the session's end, not the server's: %s", out);
    reboot_and_close();
    check_image(512);
}

Test(bare_nvme, a_spinning_domain_is_stopped_by_the_watchdog_and_restarted, .timeout = 300)
{
    boot_kernel_to_prompt("q35", nvme_args(""));
    expect_app_pass(512);
    char out[8192];
    run_cmd("inject nvme0 spin", out, sizeof out);
    cr_assert(qc_expect(&qc, "nvme0: audit: no heartbeat for 5000 ms while runnable (watchdog): "
                             "domain stopped", APP_MS), "the watchdog did not fire:\n%s",
              qc.text);
    expect_nvme_restarted(2);
    /* The console stayed responsive while it spun (the tick preempts). */
    run_cmd("domains", out, sizeof out);
    cr_assert(strstr(out, "nvme0: running, incarnation 2"), "domains: %s", out);
    app_again(2);
    reboot_and_close();
    check_image(512);
}

Test(bare_nvme, a_crash_loop_opens_the_breaker_and_its_clients_fail_clearly, .timeout = 300)
{
    boot_app_mid_run();
    crash_loop_to_breaker("nvme0", "app0", APP_MS);
    /* The app's requests do not hang: they fail, and it says so. */
    cr_assert(qc_expect(&qc, "blkcheck app0: FAIL: ", REPLY_MS) &&
              qc_expect(&qc, "a request failed", REPLY_MS),
              "the app was not told its server is gone:\n%s", qc.text);
    char out[8192];
    run_cmd("domains", out, sizeof out);
    cr_assert(strstr(out, "nvme0: stopped, incarnation 6") && strstr(out, "breaker open"),
              "domains: %s", out);
    /* The console's restart closes the breaker; the app (restarted by its
     * own policy, waiting for the cap) is served again and passes. */
    run_cmd("restart nvme0", out, sizeof out);
    cr_assert(qc_seen("nvme0: restarted: memory scrubbed, image reloaded, devices reset, "
                      "incarnation 7", APP_MS), "the console did not restart it:\n%s", qc.text);
    expect_app_pass(512);
    run_cmd("domains", out, sizeof out);
    cr_assert(strstr(out, "nvme0: running, incarnation 7") &&
              strstr(out, "0 of 5 restarts used in 30 s") && !strstr(out, "breaker open"),
              "domains: %s", out);
    reboot_and_close();
    check_image(512);
}

Test(bare_nvme, restart_never_keeps_a_crashed_domain_down, .timeout = 300)
{
    nvme_args("");                      /* the image and the drive */
    boot_kernel_to_prompt("q35", bare_domain_args("nvme.dom.elf",
        "domain=nvme0 dev=nvme mem=16M dma=32M restart=never restarts=2/10s", (char *[]){ "-drive",
        drive, "-device", "nvme,serial=never,drive=nv0", NULL }));
    cr_assert(qc_seen("nvme0: ready in", APP_MS), "no domain:\n%s", qc.text);
    char out[8192];
    run_cmd("inject nvme0 kill", out, sizeof out);
    cr_assert(qc_seen("nvme0: stays down (restart=never)", REPLY_MS), "it was restarted:\n%s",
              qc.text);
    run_cmd("domains", out, sizeof out);
    cr_assert(strstr(out, "nvme0: stopped, incarnation 1") &&
              strstr(out, "restart=never, 0 of 2 restarts used in 10 s"), "domains: %s", out);
    reboot_and_close();

    boot_kernel_to_prompt("q35", bare_domain_args("nvme.dom.elf",
        "domain=nvme0 dev=nvme restarts=often", (char *[]){ NULL }));
    cr_assert(strstr(qc.text, "not started: restarts= must be N/SECONDSs or N/MSms"),
              "a malformed restarts= was not refused with why:\n%s", qc.text);
    reboot_and_close();
    unlink(img);
}

Test(bare_nvme, a_malformed_size_is_refused_with_why, .timeout = 120)
{
    boot_kernel_to_prompt("q35", bare_domain_args("nvme.dom.elf", "domain=nvme0 dev=nvme mem=lots",
                                                  (char *[]){ NULL }));
    cr_assert(strstr(qc.text, "mem=lots): not started: mem= must be whole pages up to 384 MiB"),
              "a malformed mem= was not refused with why:\n%s", qc.text);
    char out[8192];
    run_cmd("domains", out, sizeof out);
    cr_assert(strstr(out, "no domains"), "a refused module left a domain: %s", out);
    reboot_and_close();
}
