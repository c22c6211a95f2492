/* Driver domains of the bare monitor: creation, the run loop's scheduling,
 * system calls, faults and the console's view (contract in dom.h). */
#include <stdarg.h>
#include "com1.h"
#include "dom.h"
#include "dom_internal.h"
#include "dom_pci.h"
#include "dom_svm.h"
#include "gk/cmdline.h"
#include "gk/console.h"
#include "gk/cpu.h"
#include "gk/kstring.h"
#include "gk/sys.h"
#include "gk/trap.h"
#include "moat/platform_abi.h"
#include "palloc.h"
#include "vtd.h"

#define TRAP_STACK (16u << 10)

static struct dom doms[DOMS_MAX];
static uint32_t n_doms, rr_next;
static struct dom *cur;
static struct bare_ctx loop_ctx;
static uint64_t tsc_khz;
static uint32_t apic_id;
static uint64_t handover;
static bool all_ready_said;
static uint8_t trap_stack[TRAP_STACK] __attribute__((aligned(16)));

uint64_t dom_tsc_khz(void) { return tsc_khz; }

/* ---- log and audit --------------------------------------------------------------------- */

static void vline(const struct dom *d, const char *fmt, va_list ap, char *out, size_t len)
{
    int n = ksnprintf(out, len, "moat bare: %s: ", d->name);
    if (n < 0 || (size_t)n >= len)
        n = 0;
    kvsnprintf(out + n, len - (size_t)n, fmt, ap);
}

void dom_log(const struct dom *d, const char *fmt, ...)
{
    char line[GK_CONSOLE_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vline(d, fmt, ap, line, sizeof line);
    va_end(ap);
    com1_printf("%s\n", line);
}

void dom_audit(struct dom *d, const char *fmt, ...)
{
    char *rec = d->audit[d->n_audit % DOM_AUDIT_MAX];
    va_list ap;
    va_start(ap, fmt);
    kvsnprintf(rec, DOM_AUDIT_LEN, fmt, ap);
    va_end(ap);
    d->n_audit++;
    d->refused++;
    com1_printf("moat bare: %s: audit: %s\n", d->name, rec);
}

/* ---- time ---------------------------------------------------------------------------------- */

/* The TSC against the PIT's channel 2 over 50 ms (CPUID often does not say). */
static uint64_t calibrate_tsc_khz(void)
{
    outb(0x61, (uint8_t)((inb(0x61) & ~0x02u) | 0x01u));   /* gate on, speaker off */
    outb(0x43, 0xB0);                                         /* ch 2, lo/hi, mode 0 */
    uint32_t count = 1193182u / 20u;
    outb(0x42, (uint8_t)count);
    outb(0x42, (uint8_t)(count >> 8));
    uint64_t t0 = rdtsc();
    while (!(inb(0x61) & 0x20))
        cpu_relax();
    return (rdtsc() - t0) / 50u;
}

/* ---- creation ------------------------------------------------------------------------------ */

/* A size the module gives for key: fallback when absent, 0 when malformed
 * (dom_load refuses 0 and says why). */
static uint64_t module_size(const char *cmd, const char *key, uint64_t fallback)
{
    char v[24];
    return cmdline_get(cmd, key, v, sizeof v) ? cmdline_get_size(cmd, key, 0) : fallback;
}

static bool monitor_word(const char *w, size_t len)
{
    static const char *const keys[] = { "domain=", "dev=", "mem=", "dma=", "restart=",
                                        "restarts=" };
    for (unsigned i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (len >= strlen(keys[i]) && strncmp(w, keys[i], strlen(keys[i])) == 0)
            return true;
    return false;
}

/* The module's words: the monitor's into d, the rest (but the loader's
 * path of the image, a first word without '=') into args. */
static const char *parse_words(struct dom *d, const char *cmd, char *args, size_t args_len)
{
    cmdline_get(cmd, "domain", d->name, sizeof d->name);
    cmdline_get(cmd, "dev", d->dev_sel, sizeof d->dev_sel);
    d->mem_size = module_size(cmd, "mem", 8u << 20);
    d->dma_size = module_size(cmd, "dma", 8u << 20);
    const char *why = dom_supervise_words(d, cmd);
    if (why)
        return why;
    size_t used = 0;
    for (bool first = true; *cmd; first = false) {
        while (*cmd == ' ')
            cmd++;
        const char *w = cmd;
        while (*cmd && *cmd != ' ')
            cmd++;
        size_t len = (size_t)(cmd - w);
        bool has_eq = false;
        for (size_t i = 0; i < len; i++)
            has_eq |= w[i] == '=';
        if (!len || (first && !has_eq) || monitor_word(w, len) || used + len + 2 >= args_len)
            continue;
        memcpy(args + used, w, len);
        used += len;
        args[used++] = ' ';
    }
    args[used ? used - 1 : 0] = '\0';
    return d->name[0] ? NULL : "the module has no domain=NAME";
}

const char *dom_start(struct dom *d)
{
    char args[MOAT_CMDLINE_MAX];
    const char *why = parse_words(d, d->module->cmdline, args, sizeof args);
    if (!why)
        why = dom_load(d, tsc_khz);
    if (!why)
        why = dom_svm_start(d);
    if (why)
        return why;
    memcpy(d->bi->cmdline, args, sizeof args);
    if (d->incarnation == 0 && d->dev_sel[0]) {    /* a restart keeps its devices */
        why = dom_pci_assign(d, d->dev_sel, apic_id, tsc_khz);
        if (why)
            return why;
    }
    dom_pci_reset_done(d);
    dom_pci_boot_info(d);
    d->frame = (struct trap_frame){ .rip = d->entry, .cs = SEL_UCODE, .rflags = 0x202,
                                    .rsp = BARE_DOM_VA_STACK_TOP, .ss = SEL_UDATA };
    d->irq_count = 0;
    d->has_cap = false;
    d->end_reason[0] = '\0';
    d->started_tsc = rdtsc();
    d->hb_seen = 0;
    d->hb_tsc = d->started_tsc;
    d->ready_tsc = 0;
    d->incarnation++;
    d->state = DOM_RUNNABLE;
    return NULL;
}

void dom_boot_all(const struct boot_desc *b, const struct acpi_info *acpi, uint32_t apic,
                  uint64_t handover_tsc)
{
    apic_id = apic;
    handover = handover_tsc;
    uint64_t efer = rdmsr(MSR_EFER);
    wrmsr(MSR_EFER, efer | EFER_NXE);
    gdt_set_kernel_stack((uint64_t)(uintptr_t)(trap_stack + sizeof trap_stack));
    tsc_khz = calibrate_tsc_khz();
    uint64_t t0 = rdtsc();
    palloc_init(b);
    dom_isolation_choose(b->cmdline);
    com1_printf("moat bare: TSC %llu kHz, %llu MiB free for domains, %u module%s\n",
                (unsigned long long)tsc_khz, (unsigned long long)(palloc_free_bytes() >> 20),
                b->n_modules, b->n_modules == 1 ? "" : "s");
    for (uint32_t i = 0; i < b->n_modules && i < BOOT_MODULES_MAX && n_doms < DOMS_MAX; i++) {
        struct dom *d = &doms[n_doms];
        *d = (struct dom){ .module = &b->module[i], .id = n_doms + 1 };
        const char *why = dom_start(d);
        if (why) {
            com1_printf("moat bare: module %u (%s): not started: %s\n", i, b->module[i].cmdline,
                        why);
            if (d->pml4)        /* its memory is spent; keep the slot, dead */
                ksnprintf(d->end_reason, sizeof d->end_reason, "not started: %s", why),
                    d->state = DOM_DEAD, n_doms++;
            continue;
        }
        n_doms++;
        dom_log(d, "started: image %llu KiB, heap %llu MiB, DMA window %llu MiB at IOVA 0x%llx, "
                "%u device%s", (unsigned long long)(d->image_pages * 4),
                (unsigned long long)(d->mem_size >> 20), (unsigned long long)(d->dma_size >> 20),
                (unsigned long long)d->win[0].iova, d->n_dev, d->n_dev == 1 ? "" : "s");
    }
    /* The devices are probed (that DMA was the monitor's): now confine them.
     * VT-d replaces the interposition where the unit also remaps
     * interrupts (without that, a device it translates could write the
     * MSI range and raise any vector in the monitor, which the
     * interposition rules out); moat.vtd=on uses a unit without it,
     * moat.vtd=off none. */
    const char *why;
    char vtd_opt[8] = "";
    cmdline_get(b->cmdline, "moat.vtd", vtd_opt, sizeof vtd_opt);
    bool forced = strcmp(vtd_opt, "on") == 0;
    if (!acpi->dmar) {
        if (forced)
            com1_printf("moat bare: moat.vtd=on, but the firmware has no DMAR: DMA is "
                        "interposed at the doorbell\n");
    } else if (strcmp(vtd_opt, "off") == 0) {
        com1_printf("moat bare: VT-d present, not used (moat.vtd=off): DMA is interposed at "
                    "the doorbell\n");
    } else if (vtd_init(acpi, !forced, &why)) {
        com1_printf("moat bare: VT-d on, interrupt remapping %s: devices no domain holds are "
                    "blocked\n", vtd_ir_active() ? "on (compatibility format blocked)"
                                                : "not offered (used anyway: moat.vtd=on)");
        for (uint32_t i = 0; i < n_doms; i++)
            if (doms[i].state != DOM_DEAD)
                dom_pci_use_vtd(&doms[i], acpi);
    } else {
        com1_printf("moat bare: VT-d not used (%s): DMA is interposed at the doorbell\n", why);
    }
    if (n_doms)     /* mostly zeroing their memory, and the NVMe probe */
        com1_printf("moat bare: %u domain%s created in %llu ms (%llu ms after the hand-over, "
                    "50 of them calibrating the TSC)\n", n_doms, n_doms == 1 ? "" : "s",
                    (unsigned long long)((rdtsc() - t0) / tsc_khz),
                    (unsigned long long)((rdtsc() - handover) / tsc_khz));
}

/* ---- running --------------------------------------------------------------------------------- */

bool dom_run_next(void)
{
    dom_supervise_poll();
    for (uint32_t k = 0; k < n_doms; k++) {
        struct dom *d = &doms[(rr_next + k) % n_doms];
        if (d->state != DOM_RUNNABLE)
            continue;
        rr_next = (uint32_t)(d - doms + 1) % n_doms;
        cur = d;
        d->preempt = false;
        bare_user_cr3 = d->pml4;
        if (bare_ctx_save(&loop_ctx) == 0) {
            if (dom_isolation_svm())
                dom_svm_run(d);     /* leaves through dom_return or dom_fault */
            struct trap_frame *f = (struct trap_frame *)(uintptr_t)(trap_stack + sizeof trap_stack -
                                                                    sizeof *f);
            *f = d->frame;
            bare_resume(f);
        }
        cur = NULL;
        return true;
    }
    return false;
}

static _Noreturn void leave(struct trap_frame *f)
{
    cur->frame = *f;
    bare_ctx_jump(&loop_ctx);
}

void dom_end(struct dom *d, const char *what, enum dom_end_kind kind)
{
    ksnprintf(d->end_reason, sizeof d->end_reason, "%s", what);
    d->state = DOM_DEAD;
    dom_pci_quiesce(d);
    dom_session_ended(d);
    dom_supervise_ended(d, kind);
}

void dom_kill(struct dom *d, const char *fmt, ...)
{
    if (d->state == DOM_DEAD)
        return;
    char why[DOM_AUDIT_LEN];
    va_list ap;
    va_start(ap, fmt);
    kvsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    dom_audit(d, "%s: domain stopped", why);
    dom_end(d, why, DOM_END_CRASH);
}

void dom_event(struct dom *d, uint32_t vector)
{
    if (d->state == DOM_DEAD || d->state == DOM_FREE)
        return;
    if (vector < 256)
        __atomic_fetch_or(&d->ev->pending[vector / 64], 1ull << (vector % 64), __ATOMIC_RELEASE);
    d->irq_count++;
    __atomic_store_n(&d->ev->irq_count, d->irq_count, __ATOMIC_RELEASE);
    if (d->state == DOM_WAITING) {
        d->state = DOM_RUNNABLE;
        if (cur && cur != d && vector < 256)
            cur->preempt = true;    /* a device interrupt: let its domain run now */
    }
}

/* A domain that can run but has not passed its run loop for a while is
 * hung (spinning in ring 3, or starved of nothing: it is runnable). One
 * asleep waiting for an interrupt is not. */
static void watchdog(struct dom *d, uint64_t now)
{
    uint64_t hb = __atomic_load_n(&d->pp->heartbeat, __ATOMIC_RELAXED);
    if (hb != d->hb_seen || d->state == DOM_WAITING) {
        d->hb_seen = hb;
        d->hb_tsc = now;
    } else if (now - d->hb_tsc > DOM_WATCHDOG_MS * tsc_khz) {
        dom_kill(d, "no heartbeat for %u ms while runnable (watchdog)", DOM_WATCHDOG_MS);
    }
}

void dom_tick(void)
{
    bool others = false;
    uint64_t now = rdtsc();
    vtd_poll_faults(dom_pci_vtd_fault);
    for (uint32_t i = 0; i < n_doms; i++) {
        struct dom *d = &doms[i];
        if (d->state == DOM_DEAD || d->state == DOM_FREE)
            continue;
        watchdog(d, now);
        if (d->state == DOM_DEAD)
            continue;
        dom_session_doorbells(d);
        d->ev->ticks++;
        dom_pci_sync(d);
        dom_event(d, 256);
        others |= d != cur && d->state == DOM_RUNNABLE;
    }
    if (cur && (others || com1_ready()))
        cur->preempt = true;
}

void dom_irq(uint32_t vector) { dom_pci_irq(vector); }

void dom_return(struct trap_frame *f)
{
    if (cur && (cur->preempt || cur->state != DOM_RUNNABLE))
        leave(f);
}

_Noreturn void dom_fault(struct trap_frame *f)
{
    struct dom *d = cur;
    uint64_t cr2;
    __asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
    char what[DOM_AUDIT_LEN];
    ksnprintf(what, sizeof what, "%s (vector %llu, error 0x%llx) at RIP 0x%llx, CR2 0x%llx",
              trap_name(f->vector), (unsigned long long)f->vector, (unsigned long long)f->error_code,
              (unsigned long long)f->rip, (unsigned long long)cr2);
    dom_log(d, "crashed: %s", what);
    dom_log(d, "registers: RAX %llx RBX %llx RCX %llx RDX %llx RSI %llx RDI %llx RBP %llx "
            "RSP %llx", (unsigned long long)f->rax, (unsigned long long)f->rbx,
            (unsigned long long)f->rcx, (unsigned long long)f->rdx, (unsigned long long)f->rsi,
            (unsigned long long)f->rdi, (unsigned long long)f->rbp, (unsigned long long)f->rsp);
    dom_end(d, what, DOM_END_CRASH);
    leave(f);
}

/* ---- system calls ----------------------------------------------------------------------------- */

/* Where bring-up went, from the domain's boot marks (hostile: shown only
 * when they are in order between its start and its READY). */
static void boot_phases(const struct dom *d, char *out, size_t len)
{
    static const char *const names[MOAT_BOOT_MARKS] = { "", "runtime", "device", "queues", "caps" };
    uint64_t prev = d->started_tsc;
    size_t n = 0;
    out[0] = '\0';
    for (unsigned m = MOAT_BOOT_USER; m < MOAT_BOOT_MARKS; m++) {
        uint64_t t = d->pp->boot_tsc[m];
        if (t < prev || t > d->ready_tsc) {
            out[0] = '\0';
            return;
        }
        int k = ksnprintf(out + n, len - n, "%s%s %llu us", n ? ", " : " (", names[m],
                          (unsigned long long)((t - prev) * 1000 / tsc_khz));
        if (k < 0 || (size_t)k >= len - n)
            return;
        n += (size_t)k;
        prev = t;
    }
    if (n + 2 <= len)
        out[n] = ')', out[n + 1] = '\0';
}

/* Once, at boot: every domain that started is ready (make bench reads it). */
static void all_ready_check(void)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < n_doms; i++) {
        if (doms[i].incarnation == 0 || doms[i].state == DOM_DEAD)
            continue;
        if (!doms[i].ready_tsc)
            return;
        n++;
    }
    if (all_ready_said || !n)
        return;
    all_ready_said = true;
    com1_printf("moat bare: all %u domains ready, %llu us after the loader handed over\n", n,
                (unsigned long long)((rdtsc() - handover) * 1000 / tsc_khz));
}

void dom_cap_describe(const struct dom *d, char *out, size_t len)
{
    const struct moat_cap_register *r = &d->cap;
    if (r->kind == MOAT_CAP_BLOCK)
        ksnprintf(out, len, "cap %s.%s: BlockDevice, %llu blocks of %u bytes", d->name, r->name,
                  (unsigned long long)r->blk.blocks, r->blk.block_size);
    else
        ksnprintf(out, len, "cap %s.%s: Nic, MAC %02x:%02x:%02x:%02x:%02x:%02x, MTU %u", d->name,
                  r->name, r->nic.mac[0], r->nic.mac[1], r->nic.mac[2], r->nic.mac[3],
                  r->nic.mac[4], r->nic.mac[5], r->nic.mtu);
}

static int64_t sys_console(struct dom *d, uint64_t va, uint64_t len)
{
    char buf[GK_CONSOLE_LINE_MAX + 1];
    if (len > GK_CONSOLE_LINE_MAX)
        return -SYS_EINVAL;
    if (!dom_copy_in(d, buf, va, len))
        return -SYS_EFAULT;
    while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        len--;
    for (uint64_t i = 0; i < len; i++)
        if ((uint8_t)buf[i] < 0x20 || (uint8_t)buf[i] > 0x7E)
            buf[i] = '?';               /* one line per event, nothing for the terminal */
    buf[len] = '\0';
    dom_log(d, "%s", buf);
    return 0;
}

static int64_t sys_cap(struct dom *d, uint64_t va)
{
    struct moat_cap_register r;
    if (!dom_copy_in(d, &r, va, sizeof r))
        return -SYS_EFAULT;
    r.name[sizeof r.name - 1] = '\0';
    bool blk_ok = r.kind == MOAT_CAP_BLOCK && r.blk.block_size >= MOAT_BLK_BLOCK_MIN &&
                  r.blk.block_size <= MOAT_BLK_BLOCK_MAX &&
                  !(r.blk.block_size & (r.blk.block_size - 1)) && r.blk.blocks;
    bool nic_ok = r.kind == MOAT_CAP_NIC && r.nic.mtu >= MOAT_NIC_MTU_MIN &&
                  r.nic.mtu <= MOAT_NIC_MTU_MAX;
    if (!blk_ok && !nic_ok) {
        dom_audit(d, "cap registration refused: kind %u with impossible geometry", r.kind);
        return -SYS_EINVAL;
    }
    if (r.vector >= 256) {
        dom_audit(d, "cap registration refused: session vector %u", r.vector);
        return -SYS_EINVAL;
    }
    d->cap = r;
    d->has_cap = true;
    char what[96];
    dom_cap_describe(d, what, sizeof what);
    dom_log(d, "%s", what);
    dom_session_server_ready(d);
    return 0;
}

static void sys_panic_of(struct dom *d, struct trap_frame *f)
{
    char msg[MOAT_CRASH_MSG_MAX];
    uint64_t n = 0;
    while (n + 1 < sizeof msg && dom_copy_in(d, &msg[n], f->rdi + n, 1) && msg[n])
        n++;
    msg[n] = '\0';
    dom_log(d, "panic: %s (RIP 0x%llx)", msg, (unsigned long long)f->rip);
    dom_end(d, "panic", DOM_END_CRASH);
    leave(f);
}

void dom_syscall(struct trap_frame *f)
{
    struct dom *d = cur;
    int64_t r = 0;
    d->syscalls++;
    switch (f->rax) {
    case SYS_CONSOLE_WRITE:
        r = sys_console(d, f->rdi, f->rsi);
        break;
    case SYS_WAIT:
        dom_pci_sync(d);        /* kicks the driver skipped, used entries to copy back */
        dom_session_doorbells(d);
        if (d->irq_count == f->rdi)
            d->state = DOM_WAITING;
        break;
    case SYS_READY:
        if (!d->ready_tsc) {
            d->ready_tsc = rdtsc();
            char phases[96];
            boot_phases(d, phases, sizeof phases);
            dom_log(d, "ready in %llu ms%s", (unsigned long long)((d->ready_tsc - d->started_tsc) /
                                                                  tsc_khz), phases);
            all_ready_check();
            dom_supervise_ready(d);
        }
        break;
    case SYS_EXIT:
        dom_log(d, "exited with code %llu", (unsigned long long)f->rdi);
        d->exit_code = (uint32_t)f->rdi;
        dom_end(d, "exited", f->rdi ? DOM_END_CRASH : DOM_END_EXIT);
        leave(f);
    case SYS_PANIC:
        sys_panic_of(d, f);
        break;
    case SYS_CFG:
        r = (int64_t)dom_pci_cfg(d, f->rdi, f->rsi, f->rdx);
        break;
    case SYS_MMIO:
        r = (int64_t)dom_pci_mmio(d, f->rdi, f->rsi, f->rdx);
        break;
    case SYS_CAP_REGISTER:
        r = sys_cap(d, f->rdi);
        break;
    case SYS_PIO:
        r = (int64_t)dom_pci_pio(d, f->rdi, f->rsi, f->rdx);
        break;
    case SYS_INTX_BIND:
        r = dom_pci_intx_bind(d, f->rdi, f->rsi);
        break;
    case SYS_INTX_ACK:
        r = dom_pci_intx_ack(d, f->rdi);
        break;
    case SYS_SESSION_OPEN:
        r = dom_session_open(d, f->rdi, f->rsi, f->rdx);
        break;
    case SYS_SESSION_KICK:
        r = dom_session_kick(d, f->rdi);
        break;
    case SYS_SESSION_CLOSE:
        r = dom_session_close(d, f->rdi);
        break;
    case SYS_SESSION_RELEASE:
        r = dom_session_release(d, f->rdi);
        break;
    default:
        r = -SYS_ENOSYS;
    }
    f->rax = (uint64_t)r;
}

struct dom *dom_table(uint32_t *n)
{
    *n = n_doms;
    return doms;
}
