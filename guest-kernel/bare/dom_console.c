/* The bare monitor's console view of its domains (contract in dom.h):
 * domains, windows, audit, canary, inject, restart. */
#include "com1.h"
#include "dom.h"
#include "dom_internal.h"
#include "dom_svm.h"
#include "dom_pci.h"
#include "gk/kstring.h"
#include "moat/platform_abi.h"
#include "palloc.h"
#include "trap.h"
#include "vtd.h"

static const char *state_name(enum dom_state s)
{
    switch (s) {
    case DOM_RUNNABLE:
    case DOM_WAITING: return "running";   /* sleeping until an interrupt is still running */
    case DOM_DEAD: return "stopped";
    case DOM_FREE: break;
    }
    return "free";
}

void dom_cmd_domains(void)
{
    uint32_t n_doms;
    struct dom *doms = dom_table(&n_doms);
    if (!n_doms)
        com1_printf("no domains (give the kernel modules: domain=NAME dev=nvme ...)\n");
    for (uint32_t i = 0; i < n_doms; i++) {
        const struct dom *d = &doms[i];
        char iso[160];
        dom_isolation_describe(d, iso, sizeof iso);
        com1_printf("%s: %s, incarnation %u, %s, %llu system calls, %llu interrupts, "
                    "%llu refused%s%s%s\n", d->name, state_name(d->state), d->incarnation, iso,
                    (unsigned long long)d->syscalls, (unsigned long long)d->irqs,
                    (unsigned long long)d->refused, d->end_reason[0] ? " (" : "",
                    d->end_reason, d->end_reason[0] ? ")" : "");
        char sup[128];
        dom_supervise_describe(d, sup, sizeof sup);
        com1_printf("  %s%s\n", sup, d->restart_pending ? ", restart due" : "");
        if (d->has_cap) {
            char what[96];
            dom_cap_describe(d, what, sizeof what);
            com1_printf("  %s\n", what);
        }
        dom_pci_describe(d);
    }
    com1_printf("monitor: %llu interrupts on vectors no device holds, %llu NMIs\n",
                (unsigned long long)dom_pci_stray(), (unsigned long long)trap_nmis());
}

void dom_cmd_windows(void)
{
    uint32_t n_doms;
    struct dom *doms = dom_table(&n_doms);
    for (uint32_t i = 0; i < n_doms; i++)
        for (uint32_t w = 0; w < doms[i].n_win; w++)
            com1_printf("%s: window %u: IOVA 0x%llx-0x%llx -> physical 0x%llx (%llu MiB), "
                        "translated %s\n", doms[i].name, w,
                        (unsigned long long)doms[i].win[w].iova,
                        (unsigned long long)(doms[i].win[w].iova + doms[i].win[w].size - 1),
                        (unsigned long long)doms[i].win[w].pa,
                        (unsigned long long)(doms[i].win[w].size >> 20), dom_pci_dma_mode(&doms[i]));
}

void dom_cmd_audit(void)
{
    uint32_t n_doms;
    struct dom *doms = dom_table(&n_doms);
    for (uint32_t i = 0; i < n_doms; i++) {
        const struct dom *d = &doms[i];
        uint32_t n = d->n_audit < DOM_AUDIT_MAX ? d->n_audit : DOM_AUDIT_MAX;
        com1_printf("%s: %u audit record%s (%u kept)\n", d->name, d->n_audit,
                    d->n_audit == 1 ? "" : "s", n);
        for (uint32_t k = d->n_audit - n; k < d->n_audit; k++)
            com1_printf("  %s\n", d->audit[k % DOM_AUDIT_MAX]);
    }
}

/* A page of the monitor's no domain may reach, filled with a pattern:
 * the target a hostile build aims its device at (inject wild-dma-other). */
#define CANARY_BYTE 0xA5u
static uint64_t canary_pa;

static uint64_t canary(void)
{
    if (!canary_pa && (canary_pa = palloc(1, 0)))
        memset((void *)(uintptr_t)canary_pa, CANARY_BYTE, 4096);
    return canary_pa;
}

void dom_cmd_canary(void)
{
    vtd_ir_canary_describe();
    if (!canary_pa) {
        com1_printf("no canary page yet (inject NAME wild-dma-other makes one)\n");
        return;
    }
    const uint8_t *p = (const uint8_t *)(uintptr_t)canary_pa;
    uint32_t changed = 0;
    for (uint32_t i = 0; i < 4096; i++)
        changed += p[i] != CANARY_BYTE;
    com1_printf("canary page 0x%llx: %s (%u of 4096 bytes changed)\n",
                (unsigned long long)canary_pa, changed ? "CHANGED" : "intact", changed);
}

static struct dom *find(const char *name)
{
    uint32_t n_doms;
    struct dom *doms = dom_table(&n_doms);
    for (uint32_t i = 0; i < n_doms; i++)
        if (strcmp(doms[i].name, name) == 0)
            return &doms[i];
    return NULL;
}

/* The interrupt address range: a DMA write there is an interrupt request
 * (a forged MSI), not a memory write. */
#define MSI_RANGE 0xFEE00000ull

void dom_cmd_inject(const char *name, const char *kind_name)
{
    struct dom *d = find(name);
    bool msi = strcmp(kind_name, "wild-msi") == 0;     /* wild-dma-other at MSI_RANGE */
    bool rd = strcmp(kind_name, "wild-read") == 0;     /* wild-mmio at the canary page */
    uint32_t kind = msi ? MOAT_FAULT_WILD_DMA_OTHER
                    : rd ? MOAT_FAULT_WILD_MMIO : moat_fault_parse(kind_name);
    if (!d || d->state == DOM_DEAD) {
        com1_printf("no running domain named '%s': try domains\n", name);
        return;
    }
    if (kind == MOAT_FAULT_KILL || kind == MOAT_FAULT_CRASH_LOOP) {     /* the monitor's own */
        d->crash_loop = kind == MOAT_FAULT_CRASH_LOOP;
        com1_printf("injected %s into %s\n", moat_fault_name(kind), name);
        dom_kill(d, "%s (injected)", kind == MOAT_FAULT_KILL ? "killed" : "crash-loop: killed");
        return;
    }
    if (!kind || !(MOAT_FAULT_BIT(kind) & (MOAT_FAULTS_KERNEL | MOAT_FAULTS_DRIVER))) {
        com1_printf("unknown fault '%s' (kinds: kill, crash-loop, panic, spin, wild-read, "
                    "wild-dma-private, wild-dma-other, wild-msi, wild-dma-end, corrupt-device, "
                    "...)\n", kind_name);
        return;
    }
    if (!(MOAT_FAULT_BIT(kind) & __atomic_load_n(&d->pp->faults, __ATOMIC_ACQUIRE))) {
        com1_printf("%s cannot raise %s (its driver registered no hook for it)\n", name,
                    kind_name);
        return;
    }
    d->pp->fault_kind = kind;
    d->pp->fault_arg = msi ? MSI_RANGE : rd || kind == MOAT_FAULT_WILD_DMA_OTHER ? canary() : 0;
    __atomic_store_n(&d->pp->fault_seq, d->pp->fault_seq + 1, __ATOMIC_RELEASE);
    dom_event(d, 256);
    com1_printf("injected %s into %s%s\n", moat_fault_name(kind), name,
                msi ? " (aimed at the interrupt address range: forged MSIs)"
                : rd ? " (a read of the monitor's canary page)"
                : kind == MOAT_FAULT_WILD_DMA_OTHER ? " (aimed at the monitor's canary page)" : "");
}

bool dom_cmd_restart(const char *name)
{
    struct dom *d = find(name);
    if (!d)
        return false;
    dom_supervise_restart(d);
    dom_supervise_poll();       /* now, unless its devices are still settling from a reset */
    if (d->restart_pending)
        com1_printf("%s restarts once its devices have settled from their reset\n", name);
    return true;
}
