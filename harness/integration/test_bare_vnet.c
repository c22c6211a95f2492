/*
 * The virtio-net driver, unchanged, in a domain of the kernel booted bare
 * under QEMU (TCG) — in ring 3, or an SVM guest in test_bare_vnet_svm
 * (BARE_CPU "EPYC") — bound to QEMU's virtio-net-pci through the
 * monitor's notify-time interposition (no IOMMU: shadow descriptor tables
 * and avail rings; legacy used rings copied back), serving its Nic to
 * netcheck, an app domain holding the cap over a session the monitor
 * brokers. Each test boots by -kernel with the domains as multiboot
 * modules and asserts:
 *   - over the modern transport (MSI-X) the app takes a DHCP lease from
 *     QEMU's user network and pings its gateway;
 *   - so it does on the shape GCE gives (legacy transport, no MSI-X
 *     vectors: INTx through the I/O APIC, a 1024-entry receive ring) on an
 *     i440FX;
 *   - the virtio-net domain panicking while the app pings: it is reset and
 *     restarted, the session gets fresh rings, the app's receive buffers
 *     are posted again and the pings go on to the last;
 *   - a hostile build (the driver's fault hooks) that puts a raw physical
 *     address into a descriptor is refused at the notify and audited, the
 *     target (a canary page of the monitor's) unchanged; an avail index
 *     past the ring stops the domain, and it is restarted (the legacy
 *     function offers no function-level reset: status 0 resets it);
 *   - a crash loop of the virtio-net domain opens its breaker: the app's
 *     pings fail clearly, and it does not crash;
 *   - two domains whose devices share one INTx line both serve leases.
 * Without QEMU every test says SKIPPED.
 */
#include "bare_console.h"

#define SELFTEST_MS 120000u

static char device[160], app_words[128];

/* The virtio-net domain and netcheck, an app pinging through its cap. */
static char **vnet_app_args(const char *device_props, unsigned pings)
{
    snprintf(device, sizeof device, "virtio-net-pci,netdev=n0%s", device_props);
    snprintf(app_words, sizeof app_words, "domain=app1 mem=4M dma=2M cap=vnet0.nic0 pings=%u",
             pings);
    return bare_modules_args("vnet.dom.elf", "domain=vnet0 dev=virtio-net mem=16M dma=32M",
                             "netcheck.dom.elf", app_words,
                             (char *[]){ "-netdev", "user,id=n0", "-device", device, NULL });
}

static char **vnet_args(const char *device_props) { return vnet_app_args(device_props, 3); }

static void expect_lease_and_pings(unsigned pings)
{
    char want[160];
    snprintf(want, sizeof want, "netcheck app1: PASS: DHCP lease 10.0.2.15 (mask 255.255.255.0) "
             "from 10.0.2.2, gateway answered %u pings", pings);
    cr_assert(qc_expect(&qc, want, SELFTEST_MS), "no lease and pings within %u ms:\n%s",
              SELFTEST_MS, qc.text);
    cr_assert(qc_expect(&qc, "through vnet0.nic0", REPLY_MS), "another cap:\n%s", qc.text);
}

Test(bare_vnet, modern_transport_takes_a_lease_and_pings, .timeout = 300)
{
    boot_kernel_to_prompt("q35", vnet_args(""));
    expect_lease_and_pings(3);
    cr_assert(strstr(qc.text, "virtio-net 1af4:1000 modern") &&
              strstr(qc.text, "interrupts MSI-X"), "not the modern transport with MSI-X:\n%s",
              qc.text);
    char out[8192];
    run_cmd("domains", out, sizeof out);
    cr_assert(strstr(out, "vnet0: running, incarnation 1, " BARE_ISOLATION) &&
              strstr(out, "cap vnet0.nic0: Nic, MAC 52:54:00:12:34:56, MTU 1500") &&
              strstr(out, "virtio-net (modern): 2 queues shadowed"), "domains: %s", out);
    reboot_and_close();
}

Test(bare_vnet, gce_shape_legacy_intx_1024_rx_takes_a_lease_and_pings, .timeout = 300)
{
    boot_kernel_to_prompt("pc", vnet_args(",disable-modern=on,vectors=0,rx_queue_size=1024"));
    expect_lease_and_pings(3);
    cr_assert(strstr(qc.text, "virtio-net 1af4:1000 legacy") && strstr(qc.text, "interrupts INTx") &&
              strstr(qc.text, "queues rx 1024"), "not the GCE shape:\n%s", qc.text);
    char out[8192];
    run_cmd("domains", out, sizeof out);
    cr_assert(strstr(out, "INTx GSI ") && strstr(out, " bound") &&
              strstr(out, "virtio-net (legacy): 2 queues shadowed"),
              "domains: %s", out);
    reboot_and_close();
}

Test(bare_vnet, raw_physical_descriptors_are_refused_and_a_broken_ring_stops_the_domain,
     .timeout = 300)
{
    boot_kernel_to_prompt("pc", vnet_args(",disable-modern=on,vectors=0"));
    expect_lease_and_pings(3);
    char out[8192];
    run_cmd("inject vnet0 wild-dma-other", out, sizeof out);
    cr_assert(qc_expect(&qc, "refused at the notify: a buffer outside the domain's DMA windows; "
                             "the device gets a scratch page", REPLY_MS),
              "the descriptor at the canary was not refused:\n%s", qc.text);
    run_cmd("inject vnet0 wild-dma-end", out, sizeof out);
    cr_assert(qc_expect(&qc, "(address 0x61ffffc0, 128 bytes) refused at the notify", REPLY_MS),
              "the descriptor past the window was not refused:\n%s", qc.text);
    run_cmd("canary", out, sizeof out);
    cr_assert(strstr(out, ": intact (0 of 4096 bytes changed)"), "canary: %s", out);
    run_cmd("inject vnet0 corrupt-device", out, sizeof out);
    cr_assert(qc_expect(&qc, "avail index moved by 259 on a 256-entry ring: domain stopped",
                        REPLY_MS), "the broken ring did not stop the domain:\n%s", qc.text);
    cr_assert(qc_expect(&qc, "vnet0: restarted after its end: memory scrubbed, image reloaded, "
                             "devices reset, incarnation 2", SELFTEST_MS),
              "no automatic restart:\n%s", qc.text);
    run_cmd("restart app1", out, sizeof out);   /* it exited after passing: once more */
    expect_lease_and_pings(3);
    run_cmd("domains", out, sizeof out);
    cr_assert(strstr(out, "reset: its own (no function-level reset), 1 so far"), "domains: %s",
              out);
    reboot_and_close();
}

Test(bare_vnet, a_crash_under_pings_is_restarted_and_the_pings_go_on, .timeout = 300)
{
    boot_kernel_to_prompt("q35", vnet_app_args("", 10000));
    cr_assert(qc_seen("netcheck app1: 200 of 10000 pings answered", SELFTEST_MS),
              "the app made no progress:\n%s", qc.text);
    panic_and_restart("vnet0", SELFTEST_MS);
    cr_assert(qc_expect(&qc, "app1: session 0: fresh rings (generation 2): 8 requests in flight "
                             "published again", REPLY_MS),
              "the receive buffers were not posted again:\n%s", qc.text);
    expect_lease_and_pings(10000);
    cr_assert(qc_expect(&qc, "after 1 server restart", REPLY_MS), "the app saw no restart:\n%s",
              qc.text);
    reboot_and_close();
}

/* A crash loop of the virtio-net domain opens its breaker: netcheck's
 * session is down and its pings fail clearly, without a crash (its
 * receive buffers once went back into the failing session from the
 * failure itself, recursing until its stack ran out). */
Test(bare_vnet, a_crash_loop_fails_the_pings_clearly_without_a_crash, .timeout = 300)
{
    boot_kernel_to_prompt("q35", vnet_app_args("", 10000));
    cr_assert(qc_seen("netcheck app1: 200 of 10000 pings answered", SELFTEST_MS),
              "the app made no progress:\n%s", qc.text);
    crash_loop_to_breaker("vnet0", "app1", SELFTEST_MS);
    cr_assert(qc_expect(&qc, "netcheck app1: FAIL: no echo reply after 10 tries", SELFTEST_MS),
              "the pings did not fail clearly:\n%s", qc.text);
    cr_assert(!strstr(qc.text, "app1: crashed"), "the app crashed:\n%s", qc.text);
    reboot_and_close();
}

Test(bare_vnet, two_domains_share_one_intx_line, .timeout = 300)
{
    /* On an i440FX, slots 3 and 7 both route INTA# to the same PIRQ. */
    static char words[4 * PATH_MAX + 400];
    snprintf(words, sizeof words, "domain=vnetA dev=virtio-net mem=8M dma=16M,"
             "%s/bare/netcheck.dom.elf domain=appA mem=4M dma=2M cap=vnetA.nic0,"
             "%s/bare/vnet.dom.elf domain=vnetB dev=virtio-net mem=8M dma=16M,"
             "%s/bare/netcheck.dom.elf domain=appB mem=4M dma=2M cap=vnetB.nic0",
             MOAT_BUILD_DIR, MOAT_BUILD_DIR, MOAT_BUILD_DIR);
    boot_kernel_to_prompt("pc", bare_domain_args("vnet.dom.elf", words, (char *[]){ "-m", "256M",
        "-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0,disable-modern=on,vectors=0,addr=3",
        "-netdev", "user,id=n1", "-device", "virtio-net-pci,netdev=n1,disable-modern=on,vectors=0,addr=7",
        NULL }));
    for (int i = 0; i < 2; i++)
        cr_assert(qc_expect(&qc, ": PASS: DHCP lease 10.0.2.15", SELFTEST_MS),
                  "both domains must take a lease:\n%s", qc.text);
    char out[8192];
    run_cmd("domains", out, sizeof out);
    const char *a = strstr(out, "INTx GSI "), *b = a ? strstr(a + 1, "INTx GSI ") : NULL;
    cr_assert(a && b && strncmp(a, b, 13) == 0 && strstr(b, "bound"),
              "the two devices are not on one bound line: %s", out);
    reboot_and_close();
}
