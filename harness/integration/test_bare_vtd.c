/*
 * The kernel booted bare on a q35 with QEMU's intel-iommu (TCG). Asked to
 * (moat.vtd=on: without interrupt remapping yet, a translated device
 * could still write the MSI range, so by default the monitor interposes
 * even where there is a unit), VT-d is
 * turned on, devices no domain holds are blocked, and each assigned device
 * gets its own VT-d domain mapping exactly its domain's windows, so the
 * monitor stops interposing on it:
 *   - the NVMe domain's self-test passes through the unit, and its hostile
 *     build's DMA at a canary page of the monitor's is blocked by the unit,
 *     recorded and audited, the canary unchanged;
 *   - a modern virtio-net with iommu_platform=on likewise (lease, pings,
 *     blocked DMA, canary);
 *   - a virtio-net without VIRTIO_F_ACCESS_PLATFORM (QEMU routes its DMA
 *     around the IOMMU) stays interposed at the notify and still works;
 *   - without moat.vtd=on the unit stays off and the NVMe domain is
 *     interposed at the doorbell.
 * Without QEMU every test says SKIPPED.
 */
#include "bare_console.h"

#define SELFTEST_MS 120000u

static char drive[PATH_MAX + 64], img[PATH_MAX];

/* A fresh 32 MiB image for the NVMe controller, as drive. */
static void make_image(void)
{
    snprintf(img, sizeof img, "/tmp/moat-bare-vtd.%d.img", (int)getpid());
    FILE *f = fopen(img, "w");
    cr_assert(f && ftruncate(fileno(f), 32 << 20) == 0, "cannot create %s", img);
    fclose(f);
    snprintf(drive, sizeof drive, "if=none,id=nv0,format=raw,file=%s", img);
}

static void expect_blocked_and_canary(const char *dom, const char *access)
{
    char cmd[64], out[8192], want[96];
    snprintf(cmd, sizeof cmd, "inject %s wild-dma-other", dom);
    run_cmd(cmd, out, sizeof out);
    snprintf(want, sizeof want, "%s: audit: VT-d blocked a DMA %s at 0x", dom, access);
    cr_assert(qc_expect(&qc, want, REPLY_MS), "the unit did not block and record the DMA:\n%s",
              qc.text);
    run_cmd("canary", out, sizeof out);
    cr_assert(strstr(out, ": intact (0 of 4096 bytes changed)"), "canary: %s", out);
    run_cmd("domains", out, sizeof out);
    cr_assert(strstr(out, "DMA: vtd, 1 blocked by the unit"), "domains: %s", out);
}

Test(bare_vtd, nvme_through_the_unit_and_a_wild_dma_blocked, .timeout = 300)
{
    make_image();
    boot_kernel_to_prompt("q35", bare_domain_args("nvme.dom.elf",
        "domain=nvme0 dev=nvme mem=16M dma=32M selftest_kib=128",
        (char *[]){ "-append", "moat.vtd=on", "-device", "intel-iommu", "-drive", drive, "-device",
                    "nvme,serial=vtd,drive=nv0", NULL }));
    /* Said before the prompt: the devices are confined before any domain runs. */
    cr_assert(strstr(qc.text, "DMA confined by VT-d to the domain's windows"),
              "VT-d did not take the controller:\n%s", qc.text);
    cr_assert(qc_expect(&qc, "selftest nvme0.blk0: PASS", SELFTEST_MS),
              "no self-test through the unit:\n%s", qc.text);
    char out[8192];
    run_cmd("windows", out, sizeof out);
    cr_assert(strstr(out, "translated by VT-d"), "windows: %s", out);
    expect_blocked_and_canary("nvme0", "write");
    reboot_and_close();
    unlink(img);
}

Test(bare_vtd, virtio_net_with_access_platform_through_the_unit, .timeout = 300)
{
    boot_kernel_to_prompt("q35", bare_domain_args("vnet.dom.elf",
        "domain=vnet0 dev=virtio-net mem=16M dma=16M selftest_net=1",
        (char *[]){ "-append", "moat.vtd=on", "-device", "intel-iommu", "-netdev", "user,id=n0",
                    "-device", "virtio-net-pci,netdev=n0,iommu_platform=on,disable-legacy=on", NULL }));
    cr_assert(strstr(qc.text, "DMA confined by VT-d to the domain's windows"),
              "VT-d did not take the NIC:\n%s", qc.text);
    cr_assert(qc_expect(&qc, "selftest vnet0.nic0: PASS: DHCP lease", SELFTEST_MS),
              "no lease through the unit:\n%s", qc.text);
    expect_blocked_and_canary("vnet0", "read");
    reboot_and_close();
}

Test(bare_vtd, virtio_net_around_the_iommu_stays_interposed, .timeout = 300)
{
    boot_kernel_to_prompt("q35", bare_domain_args("vnet.dom.elf",
        "domain=vnet0 dev=virtio-net mem=16M dma=16M selftest_net=1",
        (char *[]){ "-append", "moat.vtd=on", "-device", "intel-iommu", "-netdev", "user,id=n0",
                    "-device", "virtio-net-pci,netdev=n0", NULL }));
    cr_assert(strstr(qc.text, "no VIRTIO_F_ACCESS_PLATFORM, its DMA goes around the IOMMU: "
                              "interposed at the notify instead"),
              "the bypassing NIC was not kept interposed:\n%s", qc.text);
    cr_assert(qc_expect(&qc, "selftest vnet0.nic0: PASS: DHCP lease", SELFTEST_MS),
              "no lease:\n%s", qc.text);
    char out[8192];
    run_cmd("domains", out, sizeof out);
    cr_assert(strstr(out, "DMA: shadow"), "domains: %s", out);
    reboot_and_close();
}

Test(bare_vtd, without_the_option_the_unit_stays_off, .timeout = 300)
{
    make_image();
    boot_kernel_to_prompt("q35", bare_domain_args("nvme.dom.elf",
        "domain=nvme0 dev=nvme mem=16M dma=32M selftest_kib=128",
        (char *[]){ "-device", "intel-iommu", "-drive", drive, "-device", "nvme,serial=novtd,drive=nv0",
                    NULL }));
    cr_assert(strstr(qc.text, "VT-d present, not used (moat.vtd=on turns it on"),
              "the unit was used without being asked:\n%s", qc.text);
    cr_assert(qc_seen("selftest nvme0.blk0: PASS", SELFTEST_MS), "no self-test:\n%s", qc.text);
    char out[8192];
    run_cmd("domains", out, sizeof out);
    cr_assert(strstr(out, "DMA: shadow"), "domains: %s", out);
    reboot_and_close();
    unlink(img);
}
