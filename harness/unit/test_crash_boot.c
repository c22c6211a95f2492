/* Crash records (guest reports are hostile), fatal-exit classification,
 * domain state edges, and what the VMM writes before the first instruction. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include "boot_setup.h"
#include "crash.h"
#include "domain.h"
#include "moat/layout.h"

Test(crash, exception_record)
{
    struct moat_crash_record rec;
    memset(&rec, 0, sizeof rec);
    rec.kind = MOAT_CRASH_EXCEPTION;
    rec.vector = 14;
    rec.error_code = 0x6;
    rec.regs.rip = 0x101234;
    rec.regs.cr2 = 0xdead000;
    struct crash_info ci;
    crash_from_guest_record(&rec, &ci);
    cr_assert_eq(ci.cause, CRASH_EXCEPTION);
    cr_assert_eq(ci.vector, 14);
    cr_assert_eq(ci.error_code, 6);
    cr_assert(ci.have_regs);
    cr_assert(strstr(ci.detail, "#PF") && strstr(ci.detail, "0x101234") &&
              strstr(ci.detail, "CR2 0xdead000"), "detail: %s", ci.detail);
}

Test(crash, hostile_records_cannot_lie_or_overflow)
{
    struct moat_crash_record rec;
    struct crash_info ci;
    memset(&rec, 'A', sizeof rec);          /* no terminator anywhere */
    rec.kind = MOAT_CRASH_PANIC;
    rec.message[3] = '\x1b';
    crash_from_guest_record(&rec, &ci);
    cr_assert_eq(ci.cause, CRASH_PANIC);
    cr_assert_lt(strlen(ci.detail), sizeof ci.detail);
    cr_assert_null(strchr(ci.detail, '\x1b'), "escape byte survived: %s", ci.detail);

    memset(&rec, 0, sizeof rec);
    rec.kind = MOAT_CRASH_EXCEPTION;
    rec.vector = 200;                       /* not an exception vector */
    crash_from_guest_record(&rec, &ci);
    cr_assert_eq(ci.cause, CRASH_PANIC, "an invalid record is still a crash");
    cr_assert_not(ci.have_regs, "registers of an invalid record are not trusted");
    cr_assert(strstr(ci.detail, "invalid record"), "detail: %s", ci.detail);

    rec.kind = 77;
    crash_from_guest_record(&rec, &ci);
    cr_assert(strstr(ci.detail, "invalid record"), "detail: %s", ci.detail);
}

Test(crash, fatal_exits_are_classified)
{
    struct kvm_run run;
    struct crash_info ci;
    memset(&run, 0, sizeof run);
    run.exit_reason = KVM_EXIT_SHUTDOWN;
    cr_assert(crash_from_exit(&run, &ci));
    cr_assert_eq(ci.cause, CRASH_TRIPLE_FAULT);
    run.exit_reason = KVM_EXIT_INTERNAL_ERROR;
    run.internal.suberror = KVM_INTERNAL_ERROR_EMULATION;
    cr_assert(crash_from_exit(&run, &ci));
    cr_assert_eq(ci.cause, CRASH_INTERNAL_ERROR);
    cr_assert(strstr(ci.detail, "emulation"), "detail: %s", ci.detail);
    run.exit_reason = KVM_EXIT_FAIL_ENTRY;
    run.fail_entry.hardware_entry_failure_reason = 0x21;
    cr_assert(crash_from_exit(&run, &ci));
    cr_assert_eq(ci.cause, CRASH_FAILED_ENTRY);
    cr_assert(strstr(ci.detail, "0x21"), "detail: %s", ci.detail);
    run.exit_reason = KVM_EXIT_HYPERCALL;
    cr_assert(crash_from_exit(&run, &ci));
    cr_assert_eq(ci.cause, CRASH_UNHANDLED_EXIT);
    run.exit_reason = KVM_EXIT_IO;
    cr_assert_not(crash_from_exit(&run, &ci), "I/O exits are served, not fatal");
    run.exit_reason = KVM_EXIT_MMIO;
    cr_assert_not(crash_from_exit(&run, &ci));
    run.exit_reason = KVM_EXIT_INTR;
    cr_assert_not(crash_from_exit(&run, &ci));
}

Test(crash, every_cause_has_a_name)
{
    for (int c = CRASH_NONE; c <= CRASH_INJECTED; c++)
        cr_assert_str_neq(crash_cause_name((enum crash_cause)c), "unknown", "cause %d", c);
    cr_assert_str_eq(crash_cause_name((enum crash_cause)999), "unknown");
}

Test(domain_state, lifecycle_edges)
{
    cr_assert(domain_transition_ok(DOMAIN_CREATED, DOMAIN_BOOTING));
    cr_assert(domain_transition_ok(DOMAIN_BOOTING, DOMAIN_READY));
    cr_assert(domain_transition_ok(DOMAIN_BOOTING, DOMAIN_CRASHED));
    cr_assert(domain_transition_ok(DOMAIN_READY, DOMAIN_CRASHED));
    cr_assert(domain_transition_ok(DOMAIN_READY, DOMAIN_STOPPED));
    cr_assert_not(domain_transition_ok(DOMAIN_CREATED, DOMAIN_READY), "ready without booting");
    cr_assert_not(domain_transition_ok(DOMAIN_READY, DOMAIN_BOOTING));
    /* An ended incarnation leads only to a new one, which starts CREATED. */
    for (int to = DOMAIN_BOOTING; to <= DOMAIN_STOPPED; to++) {
        cr_assert_not(domain_transition_ok(DOMAIN_CRASHED, (enum domain_state)to),
                      "crashed ends the incarnation");
        cr_assert_not(domain_transition_ok(DOMAIN_STOPPED, (enum domain_state)to),
                      "stopped ends the incarnation");
    }
    cr_assert(domain_transition_ok(DOMAIN_CRASHED, DOMAIN_CREATED), "a restart after a crash");
    cr_assert(domain_transition_ok(DOMAIN_STOPPED, DOMAIN_CREATED), "a restart after a stop");
}

static uint64_t get64(const uint8_t *ram, uint64_t gpa)
{
    uint64_t v;
    memcpy(&v, ram + gpa, 8);
    return v;
}

Test(boot_setup, gdt_and_kernel_map_after_the_image)
{
    uint64_t size = 16u << 20;
    uint8_t *ram = calloc(1, size);
    boot_write_gdt(ram);
    cr_assert_eq(get64(ram, MOAT_GPA_BOOT_GDT + 8), 0x00AF9A000000FFFFull, "64-bit code");
    const struct kmap_image im = { .text_start = 0x100000, .text_end = 0x104000,
                                   .rodata_start = 0x104000, .rodata_end = 0x105000,
                                   .end = 0x110000 };
    uint64_t cr3 = 0, ram_free = 0;
    char err[160];
    cr_assert(boot_write_kernel_map(ram, size, &im, NULL, 0, true, &cr3, &ram_free, err,
                                    sizeof err), "refused: %s", err);
    cr_assert_eq(cr3, im.end, "the PML4 is the first page after the image");
    cr_assert(ram_free > cr3 && ram_free % 4096 == 0 && ram_free - cr3 <= KMAP_PAGES_MAX * 4096,
              "free RAM 0x%lx does not follow the tables", ram_free);
    const struct kmap_image past = { .text_start = 0x100000, .text_end = 0x104000,
                                     .end = size };
    cr_assert_not(boot_write_kernel_map(ram, size, &past, NULL, 0, true, &cr3, &ram_free, err,
                                        sizeof err), "an image filling RAM left room for tables");
    free(ram);
}

Test(boot_setup, long_mode_registers)
{
    struct kvm_sregs s;
    memset(&s, 0, sizeof s);
    boot_long_mode_sregs(&s, 0x123000);
    cr_assert(s.cr0 & (1u << 31) && s.cr0 & 1, "paging and protection on");
    cr_assert(s.cr4 & (1u << 5), "PAE on");
    cr_assert_eq(s.efer & 0x500, 0x500, "LME and LMA set");
    cr_assert_eq(s.cs.l, 1);
    cr_assert_eq(s.cs.db, 0, "a 64-bit code segment has D=0");
    cr_assert_eq(s.cs.selector, 0x08);
    cr_assert_eq(s.cr3, 0x123000, "CR3 is the kernel map given");
    cr_assert(s.cr0 & (1u << 16), "CR0.WP set (the map's read-only pages bind ring 0)");
    cr_assert(s.efer & (1u << 11), "EFER.NXE set (the map's NX bits count)");
}

Test(boot_setup, boot_info_and_platform_page)
{
    uint64_t size = 8u << 20;
    uint8_t *ram = calloc(1, size);
    struct boot_params bp = { .name = "nvme0", .cmdline = "a=1 b", .domain_id = 3,
                              .tsc_khz = 2300000 };
    cr_assert(boot_write_info(ram, size, &bp));
    struct moat_boot_info bi;
    memcpy(&bi, ram + MOAT_GPA_BOOT_INFO, sizeof bi);
    cr_assert_eq(bi.magic, MOAT_BOOT_MAGIC);
    cr_assert_eq(bi.version, MOAT_BOOT_VERSION);
    cr_assert_eq(bi.size, sizeof bi);
    cr_assert_eq(bi.ram_size, size);
    cr_assert_eq(bi.tsc_khz, 2300000);
    cr_assert_eq(bi.domain_id, 3);
    cr_assert(bi.flags & MOAT_BOOT_F_RAM_ZEROED);
    cr_assert_str_eq(bi.name, "nvme0");
    cr_assert_str_eq(bi.cmdline, "a=1 b");
    cr_assert_eq(bi.n_mem, 2);
    cr_assert_eq(bi.mem[1].kind, MOAT_MEM_RAM);
    cr_assert_eq(bi.mem[1].base + bi.mem[1].size, size, "RAM region must end at RAM end");
    struct moat_platform_page pp;
    memcpy(&pp, ram + MOAT_GPA_PLATFORM_PAGE, sizeof pp);
    cr_assert_eq(pp.magic, MOAT_PLATFORM_MAGIC);
    cr_assert_eq(pp.heartbeat, 0);

    cr_assert_eq(bi.ecam_base, 0, "no PCI unless asked");
    cr_assert_eq(bi.n_windows, 0);
    cr_assert_eq(bi.n_devices, 0);

    char longname[64];
    memset(longname, 'n', sizeof longname - 1);
    longname[63] = '\0';
    bp.name = longname;
    cr_assert_not(boot_write_info(ram, size, &bp), "an overlong name must be refused");
    free(ram);
}

Test(boot_setup, windows_and_devices_reach_boot_info)
{
    uint64_t size = 8u << 20;
    uint8_t *ram = calloc(1, size);
    struct moat_window_info w[2] = {
        { .iova = MOAT_GPA_DMA_BASE, .size = 2u << 20, .dirs = 3 },
        { .iova = MOAT_GPA_DMA_BASE + (4u << 20), .size = 4u << 20, .dirs = 1 },
    };
    struct moat_device_info dev = { .dev = 1, .vendor = 0x1234, .device = 0x7e57,
                                    .intx_gsi = 17, .name = "testdev0" };
    dev.bar[4] = (struct moat_bar_info){ .base = 0xC000, .size = 32, .kind = MOAT_BAR_IO };
    struct boot_params bp = { .name = "d", .cmdline = "", .ecam_base = MOAT_GPA_ECAM,
                              .windows = w, .n_windows = 2, .devices = &dev, .n_devices = 1 };
    cr_assert(boot_write_info(ram, size, &bp));
    const struct moat_boot_info *bi = (const void *)(ram + MOAT_GPA_BOOT_INFO);
    cr_assert_eq(bi->ecam_base, MOAT_GPA_ECAM);
    cr_assert_eq(bi->n_windows, 2);
    cr_assert_eq(bi->window[1].iova, w[1].iova);
    cr_assert_eq(bi->window[1].size, w[1].size);
    cr_assert_eq(bi->window[1].dirs, 1);
    cr_assert_eq(bi->n_devices, 1);
    cr_assert_eq(bi->device[0].intx_gsi, 17);
    cr_assert_eq(bi->device[0].bar[4].kind, MOAT_BAR_IO);
    cr_assert_str_eq(bi->device[0].name, "testdev0");
    bp.n_windows = MOAT_WINDOWS_MAX + 1;
    cr_assert_not(boot_write_info(ram, size, &bp), "too many windows accepted");
    bp.n_windows = 0;
    bp.n_devices = MOAT_DEVICES_MAX + 1;
    cr_assert_not(boot_write_info(ram, size, &bp), "too many devices accepted");
    free(ram);
}
