/* The isolation backends: ring3, and svm with nested paging (contract in
 * dom_svm.h). VMCB fields and exit codes: svm.h. */
#include "com1.h"
#include "dom.h"
#include "dom_internal.h"
#include "dom_svm.h"
#include "gk/cmdline.h"
#include "gk/console.h"
#include "gk/cpu.h"
#include "gk/kstring.h"
#include "gk/trap.h"
#include "npt.h"
#include "palloc.h"
#include "svm.h"

#define PTE_W  0x2ull
#define PTE_NX (1ull << 63)
#define ASID_BASE 2u                    /* 1 is svm-probe's */
#define NPF_WALK (1ull << 33)           /* EXITINFO1: the fault was the guest's page-table walk */

static bool use_svm;
static uint8_t tlb_flush_asid = 1;      /* TLB_CONTROL: 3 (this ASID) with FlushByAsid, else 1 (all) */
static const char *why_not = "";

/* Code and data segments of ring 3 in long mode (attributes: P, DPL 3,
 * S, type; then G and L for code, G and D/B for data). */
#define ATTR_UCODE 0xAFBu
#define ATTR_UDATA 0xCF3u

void dom_isolation_choose(const char *cmdline)
{
    char opt[8] = "auto";
    cmdline_get(cmdline, "moat.isolation", opt, sizeof opt);
    const char *why = NULL;
    if (strcmp(opt, "ring3") && strcmp(opt, "svm") && strcmp(opt, "auto"))
        com1_printf("moat bare: moat.isolation=%s is none of auto, svm, ring3: auto\n", opt);
    if (strcmp(opt, "ring3") == 0) {
        why_not = "moat.isolation=ring3";
    } else if (svm_enable(&why)) {
        use_svm = true;
        uint32_t a, b, c, d;
        cpuid(0x8000000Au, 0, &a, &b, &c, &d);
        if (d & (1u << 6))              /* FlushByAsid */
            tlb_flush_asid = 3;
    } else {
        why_not = why;
    }
    if (!use_svm && strcmp(opt, "svm") == 0)
        com1_printf("moat bare: moat.isolation=svm, but this CPU cannot: %s\n", why);
    dom_isolation_line();
}

void dom_isolation_line(void)
{
    if (use_svm)
        com1_printf("moat bare: domains run as SVM guests with nested paging (svm): each guest "
                    "maps its own pages and nothing else\n");
    else
        com1_printf("moat bare: domains run in ring 3 with page tables of their own (ring3; "
                    "not svm: %s)\n", why_not);
}

bool dom_isolation_svm(void) { return use_svm; }

bool dom_svm_map(struct dom *d, uint64_t pa, uint64_t bytes, uint64_t pte_flags)
{
    if (!use_svm)
        return true;
    if (!d->npt && !(d->npt = npt_new()))
        return false;
    uint64_t flags = (pte_flags & PTE_W ? NPT_W : 0) | (pte_flags & PTE_NX ? NPT_NX : 0);
    d->tlb_flush = true;
    return npt_map(d->npt, pa, bytes, flags);
}

/* Writable in the nested map, though nothing writes them: QEMU 7.2's TCG
 * walker probes every guest page-table entry it reads for writing (to
 * set accessed bits it finds set already), so a read-only table faults
 * the first fetch (measured: a nested page fault on the page-table walk,
 * error 0x200000007). No virtual address of the guest reaches a table,
 * so the right is one no instruction of the domain can use. */
bool dom_svm_map_table(struct dom *d, uint64_t pa) { return dom_svm_map(d, pa, 4096, PTE_W | PTE_NX); }

void dom_svm_unmap(struct dom *d, uint64_t pa, uint64_t bytes)
{
    if (!use_svm || !d->npt)
        return;
    npt_unmap(d->npt, pa, bytes);
    d->tlb_flush = true;
}

const char *dom_svm_start(struct dom *d)
{
    if (!use_svm)
        return NULL;
    if (!d->vmcb && !(d->vmcb = palloc(1, 0)))
        return "no memory for its VMCB";
    if (!d->npt)
        return "no nested map (its tables were built before svm was on)";
    uint64_t v = d->vmcb, cr0, cr4;
    memset((void *)(uintptr_t)v, 0, 4096);
    __asm__ volatile("mov %%cr0, %0; mov %%cr4, %1" : "=r"(cr0), "=r"(cr4));
    vmcb_w32(v, VMCB_INTERCEPT_EXC, 0xFFFFFFFFu);
    vmcb_w32(v, VMCB_INTERCEPT_MISC1, SVM_INTERCEPT_INTR | SVM_INTERCEPT_NMI | SVM_INTERCEPT_SMI |
             SVM_INTERCEPT_INIT | SVM_INTERCEPT_INTN | SVM_INTERCEPT_HLT | SVM_INTERCEPT_IOIO |
             SVM_INTERCEPT_MSR | SVM_INTERCEPT_SHUTDOWN);
    vmcb_w32(v, VMCB_INTERCEPT_MISC2, SVM_INTERCEPT_ALL_SVM & ~0x80u);    /* RDTSCP runs */
    vmcb_w64(v, VMCB_IOPM_BASE, svm_iopm_all());
    vmcb_w64(v, VMCB_MSRPM_BASE, svm_msrpm_all());
    vmcb_w32(v, VMCB_ASID, ASID_BASE + d->id);
    vmcb_w64(v, VMCB_VINTR, SVM_V_INTR_MASKING);    /* physical interrupts stay the host's */
    vmcb_w64(v, VMCB_NP_ENABLE, 1);
    vmcb_w64(v, VMCB_NCR3, d->npt);
    svm_seg(v, VMCB_CS, SEL_UCODE, ATTR_UCODE, 0xFFFFFFFFu, 0);
    svm_seg(v, VMCB_SS, SEL_UDATA, ATTR_UDATA, 0xFFFFFFFFu, 0);
    svm_seg(v, VMCB_DS, SEL_UDATA, ATTR_UDATA, 0xFFFFFFFFu, 0);
    svm_seg(v, VMCB_ES, SEL_UDATA, ATTR_UDATA, 0xFFFFFFFFu, 0);
    vmcb_w8(v, VMCB_CPL, 3);
    /* No IDT and no GDT in the guest's map: every exception exits first,
     * and a segment load reads nothing it may see. */
    vmcb_w64(v, VMCB_EFER, rdmsr(MSR_EFER));
    vmcb_w64(v, VMCB_CR0, cr0);
    vmcb_w64(v, VMCB_CR4, cr4);
    vmcb_w64(v, VMCB_CR3, d->pml4);
    vmcb_w64(v, VMCB_GPAT, 0x0007040600070406ull);    /* the reset value */
    d->tlb_flush = true;
    return NULL;
}

static const char *access_of(uint64_t err)
{
    return err & 0x10 ? "an instruction fetch" : err & 0x2 ? "a write" : "a read";
}

/* INT3 (or INT n) at the guest's RIP: the system call gate, or what
 * ring 3 would get (#GP) for a vector it may not raise. */
static void int_n(struct dom *d, struct trap_frame *f)
{
    uint8_t op[2] = { 0, 0 };
    if (!dom_copy_in(d, op, f->rip, 1) || (op[0] == 0xCD && !dom_copy_in(d, op, f->rip, 2))) {
        f->vector = 14;                 /* its code page went away: as ring 3 would fault */
        f->error_code = 0x15;
        dom_fault(f);
    }
    if (op[0] == 0xCC || (op[0] == 0xCD && op[1] == VEC_SYSCALL)) {
        f->rip += op[0] == 0xCC ? 1 : 2;
        f->vector = VEC_SYSCALL;
        dom_syscall(f);
        return;
    }
    f->vector = 13;
    f->error_code = op[0] == 0xCD ? (uint64_t)op[1] * 8 + 2 : 0;
    dom_fault(f);
}

static void exit_of(struct dom *d, struct trap_frame *f, uint64_t code)
{
    uint64_t info1 = vmcb_r64(d->vmcb, VMCB_EXITINFO1), info2 = vmcb_r64(d->vmcb, VMCB_EXITINFO2);
    if (code == SVM_EXIT_INTR || code == SVM_EXIT_NMI || code == SVM_EXIT_SMI ||
        code == SVM_EXIT_INIT)
        return;                         /* the host took it at STGI */
    if (code == SVM_EXIT_SWINT || code == SVM_EXIT_EXCP_BASE + VEC_SYSCALL) {
        int_n(d, f);
        return;
    }
    if (code >= SVM_EXIT_EXCP_BASE && code < SVM_EXIT_EXCP_BASE + 32) {
        f->vector = code - SVM_EXIT_EXCP_BASE;
        f->error_code = info1;
        if (f->vector == 14)            /* dom_fault reports CR2: the guest's */
            __asm__ volatile("mov %0, %%cr2" : : "r"(info2));
        dom_fault(f);
    }
    if (code == SVM_EXIT_NPF) {
        d->npf++;
        if (info1 & NPF_WALK)           /* (the access of a walk says little: TCG's are writes) */
            dom_kill(d, "nested page fault: its page-table walk reached guest-physical 0x%llx "
                     "at RIP 0x%llx, outside the domain's nested map (error 0x%llx)",
                     (unsigned long long)info2, (unsigned long long)f->rip,
                     (unsigned long long)info1);
        else
            dom_kill(d, "nested page fault: %s of guest-physical 0x%llx at RIP 0x%llx, outside "
                     "the domain's nested map (error 0x%llx)", access_of(info1),
                     (unsigned long long)info2, (unsigned long long)f->rip,
                     (unsigned long long)info1);
    } else if (code == SVM_EXIT_SHUTDOWN) {
        dom_kill(d, "its SVM guest shut down (a triple fault) at RIP 0x%llx",
                 (unsigned long long)f->rip);
    } else if (code == SVM_EXIT_INVALID) {
        dom_kill(d, "VMRUN refused its guest state (a monitor bug): RIP 0x%llx",
                 (unsigned long long)f->rip);
    } else {
        dom_kill(d, "left its SVM guest by an intercepted instruction or event (exit code "
                 "0x%llx, info 0x%llx) at RIP 0x%llx", (unsigned long long)code,
                 (unsigned long long)info1, (unsigned long long)f->rip);
    }
}

_Noreturn void dom_svm_run(struct dom *d)
{
    struct trap_frame f = d->frame;
    uint64_t v = d->vmcb;
    for (;;) {
        vmcb_w64(v, VMCB_RIP, f.rip);
        vmcb_w64(v, VMCB_RSP, f.rsp);
        vmcb_w64(v, VMCB_RFLAGS, f.rflags);
        vmcb_w64(v, VMCB_RAX, f.rax);
        vmcb_w8(v, VMCB_TLB_CONTROL, d->tlb_flush ? tlb_flush_asid : 0);
        d->tlb_flush = false;
        svm_enter(v, &f);
        d->exits++;
        f.rip = vmcb_r64(v, VMCB_RIP);
        f.rsp = vmcb_r64(v, VMCB_RSP);
        f.rflags = vmcb_r64(v, VMCB_RFLAGS);
        f.rax = vmcb_r64(v, VMCB_RAX);
        f.cs = SEL_UCODE;
        f.ss = SEL_UDATA;
        f.vector = f.error_code = 0;
        if (d->state == DOM_DEAD)   /* killed by what the host took at STGI (the watchdog) */
            dom_return(&f);
        exit_of(d, &f, vmcb_r64(v, VMCB_EXITCODE));
        dom_return(&f);             /* leaves when preempted, waiting or ended */
    }
}

void dom_isolation_describe(const struct dom *d, char *out, size_t len)
{
    if (!use_svm || !d->vmcb) {
        ksnprintf(out, len, "ring 3");
        return;
    }
    ksnprintf(out, len, "svm guest (ASID %u, %llu pages in its nested map, %llu exits, %llu "
              "nested page faults)", ASID_BASE + d->id,
              (unsigned long long)(d->npt ? npt_pages(d->npt) : 0),
              (unsigned long long)d->exits, (unsigned long long)d->npf);
}
