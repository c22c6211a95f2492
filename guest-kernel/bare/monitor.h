/*
 * monitor.h — the serial diagnostics console of the kernel booted bare:
 * a "moat> " prompt on COM1 that reads one command per line. Commands
 * (help lists them): the machine (status, mem, acpi, pci), the domains
 * (domains, windows, audit, sessions, canary, restart, inject), reboot,
 * trap-test (a deliberate #UD, to check the panic report).
 */
#ifndef BARE_MONITOR_H
#define BARE_MONITOR_H

#include "apic.h"
#include "multiboot.h"

/* Run commands until reboot (does not return). */
void monitor_run(const struct boot_desc *boot, const struct apic_state *apic)
    __attribute__((noreturn));

#endif /* BARE_MONITOR_H */
