/* AMD SVM with nested paging: the entry probe (contract in svm.h). VMCB
 * layout, intercept bits, segment attributes and the nested-paging rules
 * from the AMD64 Architecture Programmer's Manual, volume 2, chapter 15
 * and appendix B. */
#include "gk/cpu.h"
#include "gk/kstring.h"
#include "palloc.h"
#include "svm.h"

#define MSR_VM_CR       0xC0010114u
#define VM_CR_SVMDIS    (1ull << 4)
#define MSR_VM_HSAVE_PA 0xC0010117u
#define EFER_SVME       (1ull << 12)

#define EXIT_VMMCALL SVM_EXIT_VMMCALL
#define PROBE_ASID 1u                       /* domains have theirs: 2 + their id */

#define PAGE 4096ull
#define NPT_FLAGS 0x87ull               /* present, writable, user (guest accesses are user), 2 MiB */

static uint64_t vmcb, nested, guest_code, guest_stack, iopm, msrpm;
static bool enabled;

static void w32(uint32_t off, uint32_t v) { vmcb_w32(vmcb, off, v); }
static void w64(uint32_t off, uint64_t v) { vmcb_w64(vmcb, off, v); }
static uint64_t r64(uint32_t off) { return vmcb_r64(vmcb, off); }
static void seg(uint32_t off, uint16_t sel, uint16_t attr, uint32_t limit, uint64_t base)
{
    svm_seg(vmcb, off, sel, attr, limit, base);
}

void svm_seg(uint64_t v, uint32_t off, uint16_t sel, uint16_t attr, uint32_t limit,
             uint64_t base)
{
    vmcb_w16(v, off, sel);
    vmcb_w16(v, off + 2, attr);
    vmcb_w32(v, off + 4, limit);
    vmcb_w64(v, off + 8, base);
}

bool svm_offered(const char **why)
{
    uint32_t a, b, c, d, max_ext;
    cpuid(0x80000000u, 0, &max_ext, &b, &c, &d);
    if (max_ext < 0x8000000Au) {
        *why = "no SVM";
        return false;
    }
    cpuid(0x80000001u, 0, &a, &b, &c, &d);
    if (!(c & (1u << 2))) {
        *why = "no SVM";
        return false;
    }
    cpuid(0x8000000Au, 0, &a, &b, &c, &d);
    if (!(d & 1u)) {
        *why = "SVM without nested paging";
        return false;
    }
    if (rdmsr(MSR_VM_CR) & VM_CR_SVMDIS) {
        *why = "SVM disabled by firmware (VM_CR.SVMDIS)";
        return false;
    }
    return true;
}

bool svm_enable(const char **why)
{
    if (enabled)
        return true;
    if (!svm_offered(why))
        return false;
    uint64_t hsave = palloc(1, 0);
    iopm = palloc(3, 0);
    msrpm = palloc(2, 0);
    if (!hsave || !iopm || !msrpm) {
        *why = "no memory for the host save area and permission maps";
        return false;
    }
    memset((void *)(uintptr_t)iopm, 0xFF, 3 * PAGE);
    memset((void *)(uintptr_t)msrpm, 0xFF, 2 * PAGE);
    wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_SVME);
    wrmsr(MSR_VM_HSAVE_PA, hsave);
    enabled = true;
    return true;
}

uint64_t svm_iopm_all(void) { return iopm; }
uint64_t svm_msrpm_all(void) { return msrpm; }

/* Nested tables: the first 4 GiB one to one in 2 MiB pages. */
static uint64_t build_nested(void)
{
    uint64_t pml4 = palloc(1, 0), pdpt = palloc(1, 0), pd = palloc(4, 0);
    if (!pml4 || !pdpt || !pd)
        return 0;
    uint64_t *t = (uint64_t *)(uintptr_t)pd;
    for (uint64_t i = 0; i < 4 * 512; i++)
        t[i] = i << 21 | NPT_FLAGS;
    for (uint64_t g = 0; g < 4; g++)
        ((uint64_t *)(uintptr_t)pdpt)[g] = (pd + g * PAGE) | 0x7ull;
    ((uint64_t *)(uintptr_t)pml4)[0] = pdpt | 0x7ull;
    return pml4;
}

static bool setup(const char **why)
{
    if (vmcb)
        return true;
    if (!svm_enable(why))
        return false;
    vmcb = palloc(1, 0);
    guest_code = palloc(1, 0);
    guest_stack = palloc(1, 0);
    nested = build_nested();
    if (!vmcb || !guest_code || !guest_stack || !nested) {
        *why = "no memory for the VMCB and nested tables";
        vmcb = 0;
        return false;
    }
    /* The guest: vmmcall; jmp back to it. */
    static const uint8_t code[] = { 0x0F, 0x01, 0xD9, 0xEB, 0xFB };
    memcpy((void *)(uintptr_t)guest_code, code, sizeof code);

    w32(VMCB_INTERCEPT_MISC1, SVM_INTERCEPT_INTR | SVM_INTERCEPT_SHUTDOWN);
    w32(VMCB_INTERCEPT_MISC2, SVM_INTERCEPT_VMRUN | SVM_INTERCEPT_VMMCALL);
    w64(VMCB_IOPM_BASE, iopm);
    w64(VMCB_MSRPM_BASE, msrpm);
    w32(VMCB_ASID, PROBE_ASID);
    w64(VMCB_VINTR, SVM_V_INTR_MASKING);    /* physical interrupts stay the host's */
    w64(VMCB_NP_ENABLE, 1);
    w64(VMCB_NCR3, nested);

    /* Long mode on the monitor's own tables (mapped one to one by the
     * nested ones), flat segments, interrupts off. */
    uint64_t cr0, cr3, cr4;
    __asm__ volatile("mov %%cr0, %0; mov %%cr3, %1; mov %%cr4, %2"
                     : "=r"(cr0), "=r"(cr3), "=r"(cr4));
    struct __attribute__((packed)) { uint16_t limit; uint64_t base; } gdtr, idtr;
    __asm__ volatile("sgdt %0; sidt %1" : "=m"(gdtr), "=m"(idtr));
    seg(VMCB_CS, 0x08, 0xA9B, 0xFFFFFFFFu, 0);      /* code, 64-bit, present */
    seg(VMCB_DS, 0x10, 0xC93, 0xFFFFFFFFu, 0);
    seg(VMCB_ES, 0x10, 0xC93, 0xFFFFFFFFu, 0);
    seg(VMCB_SS, 0x10, 0xC93, 0xFFFFFFFFu, 0);
    seg(VMCB_TR, 0, 0x08B, 0xFFFF, 0);              /* a busy TSS: VMRUN wants one */
    w32(VMCB_GDTR + 4, gdtr.limit);
    w64(VMCB_GDTR + 8, gdtr.base);
    w32(VMCB_IDTR + 4, idtr.limit);
    w64(VMCB_IDTR + 8, idtr.base);
    w64(VMCB_EFER, rdmsr(MSR_EFER));
    w64(VMCB_CR0, cr0);
    w64(VMCB_CR3, cr3);
    w64(VMCB_CR4, cr4);
    w64(VMCB_RFLAGS, 0x2);
    w64(VMCB_RIP, guest_code);
    w64(VMCB_RSP, guest_stack + PAGE);
    w64(VMCB_GPAT, 0x0007040600070406ull);         /* the reset value */
    return true;
}

bool svm_probe(uint32_t n, uint64_t *tsc, uint64_t *exit_code, const char **why)
{
    *exit_code = 0;
    if (!svm_offered(why) || !setup(why))
        return false;
    struct trap_frame regs = { 0 };
    uint64_t t0 = rdtsc();
    for (uint32_t i = 0; i < n; i++) {
        svm_enter(vmcb, &regs);
        uint64_t code = r64(VMCB_EXITCODE);
        if (code == SVM_EXIT_INTR) {            /* taken by the monitor: not an entry counted */
            i--;
            continue;
        }
        if (code != EXIT_VMMCALL) {
            *exit_code = code;
            *why = "the guest left for another reason than VMMCALL";
            return false;
        }
        w64(VMCB_RIP, r64(VMCB_RIP) + 3);           /* past the vmmcall */
    }
    *tsc = rdtsc() - t0;
    return true;
}
