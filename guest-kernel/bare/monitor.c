/* Serial diagnostics console (contract in monitor.h). */
#include <stdint.h>
#include "acpi.h"
#include "apic.h"
#include "com1.h"
#include "dom.h"
#include "gk/cpu.h"
#include "gk/kstring.h"
#include "monitor.h"
#include "mmio_map.h"
#include "pci_enum.h"
#include "dom_svm.h"
#include "svm.h"

#define PCI_LIST_MAX 64u

static void cpu_vendor(char out[13])
{
    uint32_t a = 0, b, c, d;
    __asm__ volatile("cpuid" : "+a"(a), "=b"(b), "=c"(c), "=d"(d));
    memcpy(out, &b, 4);
    memcpy(out + 4, &d, 4);
    memcpy(out + 8, &c, 4);
    out[12] = '\0';
}

static void cmd_help(void)
{
    com1_printf("commands:\n"
                "  status   loader, memory, CPU, PCI functions found\n"
                "  mem      the memory map the loader gave\n"
                "  acpi     the firmware's ACPI tables: CPUs, I/O APICs, ECAM, DMAR\n"
                "  pci      every PCI function (legacy configuration ports)\n"
                "  domains  each driver domain: state, devices, caps, counters\n"
                "  windows  each domain's DMA windows: IOVA and physical range\n"
                "  audit    what each domain was refused\n"
                "  sessions caps held by app domains: client, server, rings, kicks\n"
                "  restart NAME  stop a domain, scrub its memory, start it again\n"
                "  inject NAME KIND  make a domain raise a fault (wild-dma-other aims its\n"
                "           device at the monitor's canary page; wild-msi at the interrupt\n"
                "           address range, forging MSIs; wild-read has the domain read\n"
                "           the canary page itself)\n"
                "  canary   is the canary page as the monitor filled it? has the interrupt\n"
                "           canary (a remapping entry no device may use) fired?\n"
                "  reboot   reset the machine\n"
                "  svm-probe  enter a minimal SVM guest (nested paging) 20000 times: the\n"
                "           cost of a guest entry and exit on this CPU\n"
                "  trap-test  raise an invalid-opcode exception (checks the panic report)\n");
}

/* SVM guest entries: VMRUN, a VMMCALL #VMEXIT, resume (svm.h). */
static void cmd_svm_probe(void)
{
    enum { N = 20000 };
    uint64_t tsc, code;
    const char *why;
    if (!svm_probe(N, &tsc, &code, &why)) {
        com1_printf("svm: no probe: %s (exit code 0x%llx)\n", why, (unsigned long long)code);
        return;
    }
    uint64_t khz = dom_tsc_khz();
    com1_printf("svm: %u guest entries (VMRUN, VMMCALL exit) in %llu us: %llu per second\n", N,
                (unsigned long long)(tsc * 1000 / khz),
                (unsigned long long)(khz * 1000ull * N / (tsc ? tsc : 1)));
}

static void cmd_status(const struct boot_desc *b, const struct apic_state *apic)
{
    char vendor[13];
    cpu_vendor(vendor);
    struct pci_fn_id fns[PCI_LIST_MAX];
    uint32_t n = pci_scan(fns, PCI_LIST_MAX);
    com1_printf("moat bare: loaded by %s; %llu MiB usable RAM in %u ranges; CPU %s; "
                "%u PCI functions; ACPI RSDP %s\n", b->loader,
                (unsigned long long)(b->usable_bytes >> 20), b->n_ram, vendor, n,
                b->acpi_rsdp ? "from the loader" : "not given by the loader");
    if (b->cmdline[0])
        com1_printf("command line: %s\n", b->cmdline);
    if (apic->x2apic)
        com1_printf("local APIC: x2APIC, id %u, version 0x%x, %u LVT entries; ", apic->id,
                    apic->version, apic->max_lvt);
    else
        com1_printf("local APIC: xAPIC at 0x%llx, id %u, version 0x%x, %u LVT entries; ",
                    (unsigned long long)apic->base, apic->id, apic->version, apic->max_lvt);
    com1_printf("timer ticks %llu\n", (unsigned long long)apic_ticks());
    for (uint32_t i = 0; i < ACPI_IOAPICS_MAX && apic->ioapic_inputs[i]; i++)
        com1_printf("I/O APIC %u: %u inputs, all masked\n", i, apic->ioapic_inputs[i]);
    dom_isolation_line();
}

static void cmd_mem(const struct boot_desc *b)
{
    if (b->n_ram == 0)
        com1_printf("the loader gave no memory map\n");
    for (uint32_t i = 0; i < b->n_ram; i++)
        com1_printf("  0x%016llx-0x%016llx %s\n", (unsigned long long)b->ram[i].base,
                    (unsigned long long)(b->ram[i].base + b->ram[i].len - 1),
                    b->ram[i].type == 1 ? "usable" : "reserved");
}

static void cmd_acpi(const struct boot_desc *b)
{
    struct acpi_info a;
    acpi_read(b->acpi_rsdp, &a);
    if (!a.found) {
        com1_printf("no ACPI RSDP (none from the loader, none in the BIOS areas)\n");
        return;
    }
    com1_printf("RSDP (revision %u) from %s; tables:", a.revision, a.rsdp_from);
    for (uint32_t i = 0; i < a.n_tables; i++)
        com1_printf(" %s", a.tables[i]);
    com1_printf("\n");
    if (a.bad_tables)
        com1_printf("  %u tables refused (bad checksum or length)\n", a.bad_tables);
    com1_printf("  MADT: %u CPUs, local APIC at 0x%llx\n", a.cpus,
                (unsigned long long)a.lapic_base);
    for (uint32_t i = 0; i < a.n_ioapics; i++)
        com1_printf("  I/O APIC %u at 0x%x, GSIs from %u\n", a.ioapic[i].id, a.ioapic[i].addr,
                    a.ioapic[i].gsi_base);
    for (uint32_t i = 0; i < a.n_ecam; i++)
        com1_printf("  ECAM segment %u buses %u-%u at 0x%llx\n", a.ecam[i].segment,
                    a.ecam[i].bus_start, a.ecam[i].bus_end, (unsigned long long)a.ecam[i].base);
    if (a.n_ecam == 0)
        com1_printf("  no MCFG: PCI through the legacy ports only\n");
    com1_printf("  DMAR (VT-d): %s", a.dmar ? "present" : "absent");
    if (a.drhd_base) {
        com1_printf(", %u remapping unit%s, the first at 0x%llx covering ", a.dmar_units,
                    a.dmar_units == 1 ? "" : "s", (unsigned long long)a.drhd_base);
        if (a.drhd_all)
            com1_printf("every device");
        else
            com1_printf("%u device%s and the hierarchies below %u bridge%s", a.n_drhd_dev,
                        a.n_drhd_dev == 1 ? "" : "s", a.n_drhd_bridge,
                        a.n_drhd_bridge == 1 ? "" : "s");
        com1_printf(", host address width %u", a.dmar_haw + 1u);
    }
    com1_printf("\n");
}

/* An NVMe controller's CAP and VS through BAR0 (which may be above 4 GiB). */
static void nvme_regs(const struct pci_fn_id *f, const struct pci_bar_info *bar0)
{
    if (bar0->io || !bar0->present || !mmio_map(bar0->addr, 0x1000)) {
        com1_printf("      (BAR0 not mappable)\n");
        return;
    }
    uint32_t cmd = pci_read32(f->bus, f->dev, f->fn, 0x04);
    pci_write32(f->bus, f->dev, f->fn, 0x04, cmd | 0x2u);         /* memory decode on */
    volatile uint32_t *r = (volatile uint32_t *)(uintptr_t)bar0->addr;
    uint64_t cap = (uint64_t)r[0] | (uint64_t)r[1] << 32;
    uint32_t vs = r[2];
    com1_printf("      NVMe %u.%u, CAP.MQES %llu, CAP.DSTRD %llu\n", vs >> 16, (vs >> 8) & 0xFFu,
                (unsigned long long)(cap & 0xFFFFu) + 1, (unsigned long long)(cap >> 32) & 0xFu);
}

static void cmd_pci(void)
{
    struct pci_fn_id fns[PCI_LIST_MAX];
    uint32_t n = pci_scan(fns, PCI_LIST_MAX);
    com1_printf("configuration through %s\n", pci_access_name());
    for (uint32_t i = 0; i < n && i < PCI_LIST_MAX; i++) {
        com1_printf("  %02x:%02x.%u %04x:%04x class %06x %s\n", fns[i].bus, fns[i].dev,
                    fns[i].fn, fns[i].vendor, fns[i].device, fns[i].class_code,
                    pci_class_name(fns[i].class_code));
        for (unsigned b = 0; b < 6; b++) {
            struct pci_bar_info bar = pci_bar(&fns[i], b);
            if (bar.present)
                com1_printf("      BAR%u %s 0x%llx\n", b, bar.io ? "io" : bar.is64 ? "mem64" : "mem32",
                            (unsigned long long)bar.addr);
        }
        if ((fns[i].class_code >> 8) == 0x0108) {
            struct pci_bar_info bar0 = pci_bar(&fns[i], 0);
            nvme_regs(&fns[i], &bar0);
        }
    }
    if (n > PCI_LIST_MAX)
        com1_printf("  ... and %u more\n", n - PCI_LIST_MAX);
}

static void __attribute__((noreturn)) cmd_reboot(void)
{
    com1_printf("rebooting\n");
    outb(0xCF9, 0x02);                  /* PIIX/ICH reset control: hard reset */
    outb(0xCF9, 0x06);
    outb(0x64, 0xFE);                   /* the keyboard controller's reset line */
    for (;;)
        __asm__ volatile("cli; hlt");
}

static void run_command(const char *line, const struct boot_desc *boot,
                        const struct apic_state *apic)
{
    if (strcmp(line, "") == 0)
        return;
    if (strcmp(line, "help") == 0)
        cmd_help();
    else if (strcmp(line, "status") == 0)
        cmd_status(boot, apic);
    else if (strcmp(line, "mem") == 0)
        cmd_mem(boot);
    else if (strcmp(line, "pci") == 0)
        cmd_pci();
    else if (strcmp(line, "acpi") == 0)
        cmd_acpi(boot);
    else if (strcmp(line, "domains") == 0)
        dom_cmd_domains();
    else if (strcmp(line, "windows") == 0)
        dom_cmd_windows();
    else if (strcmp(line, "audit") == 0)
        dom_cmd_audit();
    else if (strcmp(line, "sessions") == 0)
        dom_session_describe();
    else if (strcmp(line, "canary") == 0)
        dom_cmd_canary();
    else if (strncmp(line, "inject ", 7) == 0) {
        char name[40];
        const char *sp = line + 7;
        size_t n = 0;
        while (sp[n] && sp[n] != ' ' && n + 1 < sizeof name)
            n++;
        memcpy(name, sp, n);
        name[n] = '\0';
        dom_cmd_inject(name, sp[n] == ' ' ? sp + n + 1 : "");
    } else if (strncmp(line, "restart ", 8) == 0) {
        if (!dom_cmd_restart(line + 8))
            com1_printf("no domain named '%s': try domains\n", line + 8);
    } else if (strcmp(line, "reboot") == 0)
        cmd_reboot();
    else if (strcmp(line, "svm-probe") == 0)
        cmd_svm_probe();
    else if (strcmp(line, "trap-test") == 0)
        __asm__ volatile("ud2");
    else
        com1_printf("unknown command '%s': try help\n", line);
}

void monitor_run(const struct boot_desc *boot, const struct apic_state *apic)
{
    char line[128];
    size_t n = 0;
    com1_printf("moat> ");
    for (;;) {
        __asm__ volatile("cli");
        if (com1_poll_line(line, sizeof line, &n)) {
            run_command(line, boot, apic);
            com1_printf("moat> ");
            continue;
        }
        /* Interrupts stay off while a domain is entered (the iret turns
         * them on in ring 3); with nothing to run, sleep until one comes. */
        if (!dom_run_next())
            __asm__ volatile("sti; hlt");
    }
}
