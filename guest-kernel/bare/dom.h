/*
 * dom.h — driver domains of the bare monitor: each in ring 3 with its own
 * page tables (dom/bare_dom.h gives the layout), its device's registers
 * reached only through system calls the monitor mediates (dom_pci.h), its
 * DMA windows physically contiguous and translated at the doorbell.
 *
 * A domain is described by a multiboot module: the image, then words.
 * Monitor words: domain=NAME (required), dev=nvme|virtio-net|BB:DD.F (the
 * first unassigned function of that kind, or that address), mem=SIZE
 * (private heap, default 8M), dma=SIZE (one window, default 8M),
 * restart=never|on-failure|always and restarts=N/Ts (moat/restart_policy.h:
 * default on-failure, 5 in 30 s). Every other word is the domain's
 * argument (dd_arg). A domain without dev= is an app domain: it holds
 * caps other domains serve (sessions, the monitor as broker).
 *
 * One CPU: the monitor loop (monitor.c) runs one domain at a time until it
 * sleeps, ends or is preempted by the tick; interrupts for a domain mark
 * its event page and wake it. A domain's fault, panic or refused access
 * ends it: its devices are quiesced and reset, its sessions closed (as a
 * client) or kept for its next incarnation (as a server), and the
 * supervisor restarts it per its policy; `restart NAME` scrubs its memory
 * and starts it again whatever the policy, closing an open breaker.
 */
#ifndef BARE_DOM_H
#define BARE_DOM_H

#include <stdbool.h>
#include <stdint.h>
#include "acpi.h"
#include "multiboot.h"
#include "trap.h"

/* Calibrate time, create a domain for each module, log one line each,
 * turn VT-d on where ACPI offers it (and confine the devices with it);
 * when the last of them is ready, log how long after handover_tsc (the
 * TSC when the loader handed over). */
void dom_boot_all(const struct boot_desc *b, const struct acpi_info *acpi, uint32_t apic_id,
                  uint64_t handover_tsc);
/* Run the next runnable domain until it leaves the CPU; false when none
 * could run (the loop then sleeps until an interrupt). */
bool dom_run_next(void);
/* Console commands. */
void dom_cmd_domains(void);
void dom_cmd_windows(void);
void dom_cmd_audit(void);
bool dom_cmd_restart(const char *name);
/* Console: one line per session between domains. */
void dom_session_describe(void);
/* Ask a domain to raise a fault (moat_fault_parse names); wild-dma-other
 * aims it at a canary page of the monitor's, which dom_cmd_canary checks. */
void dom_cmd_inject(const char *name, const char *kind);
void dom_cmd_canary(void);
/* The TSC rate the monitor measured (kHz). */
uint64_t dom_tsc_khz(void);

/* From trap.c (interrupts off). */
void dom_syscall(struct trap_frame *f);
_Noreturn void dom_fault(struct trap_frame *f);
void dom_tick(void);
void dom_irq(uint32_t vector);
/* About to return to ring 3: leaves for the monitor loop instead when the
 * domain must stop running (it sleeps, ended, or is preempted). */
void dom_return(struct trap_frame *f);

#endif /* BARE_DOM_H */
