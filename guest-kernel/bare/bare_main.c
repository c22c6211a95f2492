/* The kernel booted bare (QEMU, GCE): from mb_entry.S in long mode with
 * the first 4 GiB identity mapped; brings up the console, reads what the
 * loader gave, starts a driver domain for each module and runs the
 * diagnostics console beside them. */
#include <stdint.h>
#include "acpi.h"
#include "apic.h"
#include "com1.h"
#include "gk/cpu.h"
#include "dom.h"
#include "monitor.h"
#include "multiboot.h"
#include "pci_enum.h"
#include "trap.h"

void bare_main(uint32_t magic, uint32_t info);

void bare_main(uint32_t magic, uint32_t info)
{
    uint64_t handover_tsc = rdtsc();    /* the loader just jumped here */
    static struct boot_desc boot;
    com1_init();
    trap_init();
    com1_printf("\nmoat bare kernel\n");
    if (!boot_desc_parse(magic, info, &boot))
        com1_printf("not started by a multiboot loader (magic 0x%x): no memory map\n", magic);
    com1_printf("loaded by %s, %llu MiB usable RAM; type help\n", boot.loader,
                (unsigned long long)(boot.usable_bytes >> 20));
    static struct acpi_info acpi;
    acpi_read(boot.acpi_rsdp, &acpi);
    if (acpi.n_ecam && acpi.ecam[0].segment == 0 &&
        !pci_use_ecam(acpi.ecam[0].base, acpi.ecam[0].bus_start, acpi.ecam[0].bus_end))
        com1_printf("ECAM at 0x%llx cannot be mapped: PCI through the legacy ports\n",
                    (unsigned long long)acpi.ecam[0].base);
    static struct apic_state apic;
    apic_init(&acpi, &apic);
    dom_boot_all(&boot, &acpi, apic.id, handover_tsc);
    monitor_run(&boot, &apic);
}
