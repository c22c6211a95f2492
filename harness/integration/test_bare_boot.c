/*
 * The kernel booted bare under QEMU (TCG; this host's KVM cannot run a
 * firmware or a bare kernel usefully, ../shared/BARE-FACTS.md), by every
 * path the image supports: QEMU's -kernel (multiboot1, SeaBIOS), the disk
 * image build/images/disk.raw through GRUB (multiboot2) under SeaBIOS and
 * under OVMF, and iPXE over QEMU's user network (multiboot1, SeaBIOS).
 * By -kernel, in detail:
 * the COM1 console prompt answers, the memory map and the command line
 * came through, PCI enumeration finds the devices QEMU was given (an NVMe
 * controller and a virtio-net NIC nobody here wrote), an unknown command
 * is answered, and reboot resets the machine; an exception is reported
 * with its registers. Without QEMU every test says SKIPPED.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "bare_console.h"

Test(bare_boot, multiboot1_under_seabios_console_pci_reboot, .timeout = 120)
{
    char qemu[PATH_MAX], kernel[PATH_MAX], img[PATH_MAX], drive[PATH_MAX + 64], err[256];
    need_qemu(qemu, sizeof qemu);
    snprintf(kernel, sizeof kernel, "%s/bare/moat-bare.elf32", MOAT_BUILD_DIR);
    cr_assert_eq(access(kernel, R_OK), 0, "%s is not built (make builds it)", kernel);
    snprintf(img, sizeof img, "/tmp/moat-bare-nvme.%d.img", (int)getpid());
    int fd = open(img, O_RDWR | O_CREAT | O_TRUNC, 0600);
    cr_assert(fd >= 0 && ftruncate(fd, 16 << 20) == 0, "cannot create %s", img);
    close(fd);
    snprintf(drive, sizeof drive, "if=none,id=nv0,format=raw,file=%s", img);
    char *argv[] = { qemu, "-accel", "tcg", "-M", "pc", "-m", "256M", "-display", "none",
                     "-no-reboot", "-serial", "stdio", "-monitor", "none", "-net", "none",
                     "-kernel", kernel, "-append", "moat.test=1",
                     "-drive", drive, "-device", "nvme,serial=moat0,drive=nv0",
                     "-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0", NULL };
    cr_assert(qc_start(&qc, argv, err, sizeof err), "cannot start QEMU: %s", err);
    cr_assert(qc_expect(&qc, "moat> ", PROMPT_MS), "no console prompt within %u ms:\n%s",
              PROMPT_MS, qc.text);
    cr_assert(strstr(qc.text, "loaded by multiboot1"), "the banner names no loader:\n%s", qc.text);

    char out[8192];
    run_cmd("status", out, sizeof out);
    cr_assert(strstr(out, "loaded by multiboot1"), "status: %s", out);
    cr_assert(strstr(out, "MiB usable RAM"), "status has no memory: %s", out);
    cr_assert(strstr(out, "command line: ") && strstr(out, "moat.test=1"),
              "the loader's command line did not come through: %s", out);

    run_cmd("mem", out, sizeof out);
    cr_assert(strstr(out, "0x0000000000100000-") && strstr(out, "usable"),
              "no usable RAM at 1 MiB in the memory map: %s", out);

    run_cmd("pci", out, sizeof out);
    cr_assert(strstr(out, "8086:1237 class 060000 host bridge"), "no i440FX host bridge: %s", out);
    cr_assert(strstr(out, "1b36:0010 class 010802 NVMe controller"), "QEMU's NVMe not found: %s",
              out);
    cr_assert(strstr(out, "1af4:1000 class 020000 Ethernet controller"),
              "QEMU's virtio-net not found: %s", out);

    run_cmd("frobnicate", out, sizeof out);
    cr_assert(strstr(out, "unknown command 'frobnicate': try help"), "unknown command: %s", out);

    cr_assert(qc_send(&qc, "reboot"));
    int status;
    cr_assert(qc_wait_exit(&qc, REPLY_MS, &status), "reboot did not reset the machine:\n%s",
              qc.text);
    cr_assert_eq(status, 0, "QEMU exited %d after the reset", status);
    qc_close(&qc);
    unlink(img);
}

Test(bare_boot, an_exception_is_reported_with_the_registers, .timeout = 120)
{
    boot_kernel_to_prompt("pc", NULL);
    cr_assert(qc_send(&qc, "trap-test"));
    cr_assert(qc_expect(&qc, "PANIC: #UD invalid opcode (vector 6, error 0x0) at RIP 0x", REPLY_MS),
              "no panic report for the #UD:\n%s", qc.text);
    cr_assert(qc_expect(&qc, "RFLAGS", REPLY_MS) && qc_expect(&qc, "moat bare: halted", REPLY_MS),
              "the register dump is incomplete:\n%s", qc.text);
    cr_assert(strstr(qc.text, "RAX ") && strstr(qc.text, "R15 ") && strstr(qc.text, "CR2 "),
              "registers missing:\n%s", qc.text);
    qc_close(&qc);
}

/* With nested paging offered (EPYC) domains run as SVM guests (an app
 * domain's int3 system calls are exits), and the monitor's minimal probe
 * guest takes its VMMCALL exits; the console says what each costs;
 * without nested paging (qemu64) domains run in ring 3 and it says why. */
Test(bare_boot, svm_guest_entries_with_nested_paging_and_why_not_without, .timeout = 120)
{
    boot_kernel_to_prompt("q35", bare_domain_args("entrycheck.dom.elf", "domain=app2 mem=1M dma=2M",
                                                  (char *[]){ "-cpu", "EPYC", NULL }));
    cr_assert(qc_seen("entrycheck app2: 20000 system calls (int3 round trips) in ", REPLY_MS),
              "no ring-3 figure:\n%s", qc.text);
    char out[4096];
    run_cmd("svm-probe", out, sizeof out);
    cr_assert(strstr(out, "svm: 20000 guest entries (VMRUN, VMMCALL exit) in ") &&
              strstr(out, " per second"), "no guest entries: %s", out);
    reboot_and_close();

    /* The operator's choice: ring 3 on a CPU that could do svm; a word
     * that is no choice is said, and auto taken. */
    boot_kernel_to_prompt("q35", (char *[]){ "-cpu", "EPYC", "-append", "moat.isolation=ring3",
                                             NULL });
    cr_assert(strstr(qc.text, "(ring3; not svm: moat.isolation=ring3)"),
              "moat.isolation=ring3 was not taken:\n%s", qc.text);
    reboot_and_close();
    boot_kernel_to_prompt("q35", (char *[]){ "-cpu", "EPYC", "-append", "moat.isolation=bogus",
                                             NULL });
    cr_assert(strstr(qc.text, "moat.isolation=bogus is none of auto, svm, ring3: auto"),
              "a bad moat.isolation= was not said:\n%s", qc.text);
    reboot_and_close();

    boot_kernel_to_prompt("q35", (char *[]){ "-cpu", "qemu64", NULL });
    cr_assert(strstr(qc.text, "(ring3; not svm: SVM without nested paging)"),
              "the console does not say why not svm:\n%s", qc.text);
    run_cmd("svm-probe", out, sizeof out);
    cr_assert(strstr(out, "svm: no probe: SVM without nested paging"), "svm-probe: %s", out);
    reboot_and_close();
}

/* Boot argv to the prompt; status must name the loader and the command
 * line the boot path gave. */
static void boot_and_check(char *const argv[], const char *loader, const char *cmdline)
{
    char err[256], out[8192];
    cr_assert(qc_start(&qc, argv, err, sizeof err), "cannot start QEMU: %s", err);
    cr_assert(qc_expect(&qc, "moat> ", PROMPT_MS), "no console prompt within %u ms:\n%s",
              PROMPT_MS, qc.text);
    run_cmd("status", out, sizeof out);
    cr_assert(strstr(out, loader), "status does not say '%s':\n%s", loader, out);
    cr_assert(strstr(out, cmdline), "the boot path's command line '%s' is missing:\n%s", cmdline,
              out);
}

static void need_image(char *path, size_t len, const char *name)
{
    snprintf(path, len, "%s/images/%s", MOAT_BUILD_DIR, name);
    cr_assert_eq(access(path, R_OK), 0, "%s is not built (make images builds it)", path);
}

Test(bare_boot, disk_image_through_grub_under_seabios, .timeout = 240)
{
    char qemu[PATH_MAX], disk[PATH_MAX], drive[PATH_MAX + 64];
    need_qemu(qemu, sizeof qemu);
    need_image(disk, sizeof disk, "disk.raw");
    snprintf(drive, sizeof drive, "file=%s,format=raw,if=virtio,snapshot=on", disk);
    char *argv[] = { qemu, "-accel", "tcg", "-M", "pc", "-m", "256M", "-display", "none",
                     "-no-reboot", "-serial", "stdio", "-monitor", "none", "-net", "none",
                     "-drive", drive, NULL };
    boot_and_check(argv, "loaded by multiboot2", "moat.boot=disk-pc");
    reboot_and_close();
    cr_assert(strstr(qc.text, "ACPI RSDP from the loader"), "GRUB gave no RSDP:\n%s", qc.text);
}

Test(bare_boot, disk_image_through_grub_under_ovmf, .timeout = 240)
{
    char qemu[PATH_MAX], disk[PATH_MAX], drive[PATH_MAX + 64], vars[PATH_MAX], code[PATH_MAX + 64],
        vars_drive[PATH_MAX + 64];
    need_qemu(qemu, sizeof qemu);
    need_image(disk, sizeof disk, "disk.raw");
    const char *ovmf_code = "/usr/share/OVMF/OVMF_CODE_4M.fd", *ovmf_vars = "/usr/share/OVMF/OVMF_VARS_4M.fd";
    if (access(ovmf_code, R_OK) != 0 || access(ovmf_vars, R_OK) != 0) {
        fprintf(stderr, "SKIPPED: OVMF is not installed (scripts/install-deps.sh installs ovmf)\n");
        cr_skip_test("SKIPPED: OVMF is not installed");
    }
    /* A fresh variable store each run: a used one may carry stale boot entries. */
    snprintf(vars, sizeof vars, "/tmp/moat-ovmf-vars.%d.fd", (int)getpid());
    char cmd[2 * PATH_MAX];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", ovmf_vars, vars);
    cr_assert_eq(system(cmd), 0, "cannot copy %s", ovmf_vars);
    snprintf(code, sizeof code, "if=pflash,format=raw,unit=0,readonly=on,file=%s", ovmf_code);
    snprintf(vars_drive, sizeof vars_drive, "if=pflash,format=raw,unit=1,file=%s", vars);
    snprintf(drive, sizeof drive, "file=%s,format=raw,if=virtio,snapshot=on", disk);
    char img[PATH_MAX], nvme[PATH_MAX + 64];
    snprintf(img, sizeof img, "/tmp/moat-bare-ovmf-nvme.%d.img", (int)getpid());
    snprintf(cmd, sizeof cmd, "truncate -s 16M '%s'", img);
    cr_assert_eq(system(cmd), 0, "cannot create %s", img);
    snprintf(nvme, sizeof nvme, "if=none,id=nv0,format=raw,file=%s", img);
    char *argv[] = { qemu, "-accel", "tcg", "-M", "q35", "-m", "256M", "-display", "none",
                     "-no-reboot", "-serial", "stdio", "-monitor", "none", "-net", "none",
                     "-drive", code, "-drive", vars_drive, "-drive", drive,
                     "-drive", nvme, "-device", "nvme,serial=moat0,drive=nv0", NULL };
    boot_and_check(argv, "loaded by multiboot2", "moat.boot=disk-efi");
    /* OVMF puts 64-bit BARs above 4 GiB: the NVMe registers are read there. */
    char out[8192];
    run_cmd("pci", out, sizeof out);
    cr_assert(strstr(out, "configuration through ECAM at 0xb0000000"), "q35's ECAM unused: %s", out);
    cr_assert(strstr(out, "1b36:0010 class 010802 NVMe controller"), "no NVMe: %s", out);
    cr_assert(strstr(out, "BAR0 mem64 0xe0"), "the NVMe BAR0 is not above 4 GiB: %s", out);
    cr_assert(strstr(out, "NVMe 1.4, CAP.MQES "), "NVMe registers not read through BAR0: %s", out);
    /* grub.cfg's NVMe domain (a module) binds the controller up there. */
    cr_assert(qc_seen("nvme0: ready in", PROMPT_MS), "the NVMe domain did not come up:\n%s",
              qc.text);
    run_cmd("domains", out, sizeof out);
    cr_assert(strstr(out, "nvme0: running, incarnation 1, ring 3") && strstr(out, "BAR0 memory 0xe0"),
              "the domain does not hold the controller above 4 GiB: %s", out);
    reboot_and_close();
    unlink(vars);
    unlink(img);
}

Test(bare_boot, ipxe_under_seabios_loads_the_kernel_by_multiboot, .timeout = 240)
{
    char qemu[PATH_MAX], script[PATH_MAX], netdev[PATH_MAX + 64];
    need_qemu(qemu, sizeof qemu);
    need_image(script, sizeof script, "tftp/boot.ipxe");
    snprintf(netdev, sizeof netdev, "user,id=n0,tftp=%s/images/tftp,bootfile=boot.ipxe",
             MOAT_BUILD_DIR);
    char *argv[] = { qemu, "-accel", "tcg", "-M", "pc", "-m", "256M", "-display", "none",
                     "-no-reboot", "-serial", "stdio", "-monitor", "none", "-boot", "n",
                     "-netdev", netdev, "-device", "virtio-net-pci,netdev=n0", NULL };
    /* iPXE names the kernel by its URL on the command line it hands over. */
    boot_and_check(argv, "loaded by multiboot1", "tftp://10.0.2.2/moat-bare.elf32 moat.boot=ipxe-pcbios");
    /* boot.ipxe's domains came as modules: no NVMe here, so that one is
     * reported; the virtio-net domain takes the NIC iPXE booted from. */
    cr_assert(strstr(qc.text, "nvme.dom.elf domain=nvme0 dev=nvme mem=16M dma=32M): not started: "
                              "no unassigned PCI function matches dev="),
              "the module did not come through iPXE, or was not reported:\n%s", qc.text);
    cr_assert(qc_seen("vnet0: ready in", PROMPT_MS),
              "the virtio-net domain did not take iPXE's NIC:\n%s", qc.text);
    reboot_and_close();
}

Test(bare_boot, acpi_tables_on_q35_with_an_iommu, .timeout = 120)
{
    char out[8192];
    boot_kernel_to_prompt("q35", (char *[]){ "-smp", "2", "-m", "256M", "-device", "intel-iommu",
                                             NULL });
    run_cmd("acpi", out, sizeof out);
    cr_assert(strstr(out, "from a BIOS area scan"), "multiboot1 gives no RSDP: %s", out);
    cr_assert(strstr(out, "MADT: 2 CPUs, local APIC at 0xfee00000"), "MADT: %s", out);
    cr_assert(strstr(out, "I/O APIC 0 at 0xfec00000, GSIs from 0"), "I/O APIC: %s", out);
    cr_assert(strstr(out, "ECAM segment 0 buses 0-255 at 0xb0000000"), "q35's MCFG: %s", out);
    cr_assert(strstr(out, "DMAR (VT-d): present"), "intel-iommu's DMAR: %s", out);
    cr_assert_null(strstr(out, "refused"), "a firmware table was refused: %s", out);
    qc_close(&qc);
}

/* The ticks the status line reports (or -1). */
static long long ticks_in(const char *out)
{
    const char *p = strstr(out, "timer ticks ");
    return p ? strtoll(p + strlen("timer ticks "), NULL, 10) : -1;
}

Test(bare_boot, local_apic_timer_ticks_and_ioapic_inputs_are_masked, .timeout = 120)
{
    char out[8192];
    boot_kernel_to_prompt("pc", NULL);
    run_cmd("status", out, sizeof out);
    /* QEMU 7.2's TCG offers no x2APIC: the MMIO path. */
    cr_assert(strstr(out, "local APIC: xAPIC at 0xfee00000, id 0"), "local APIC: %s", out);
    cr_assert(strstr(out, "I/O APIC 0: 24 inputs, all masked"), "I/O APIC: %s", out);
    long long first = ticks_in(out);
    cr_assert_geq(first, 0, "no timer ticks in: %s", out);
    /* Ask again until the count moves (a tick is ~16 ms of the machine's
     * time; 500 round trips are far more than that even under TCG). */
    long long second = first;
    for (int i = 0; i < 500 && second <= first; i++) {
        run_cmd("status", out, sizeof out);
        second = ticks_in(out);
    }
    cr_assert_gt(second, first, "the timer did not tick over 500 status commands (%lld, %lld)",
                 first, second);
    cr_assert(strstr(qc.text, "PANIC") == NULL, "an interrupt faulted:\n%s", qc.text);
    qc_close(&qc);
}
