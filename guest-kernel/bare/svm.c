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

/* Control area. */
#define VMCB_INTERCEPT_MISC1 0x00Cu
#define VMCB_INTERCEPT_MISC2 0x010u
#define VMCB_IOPM_BASE   0x040u
#define VMCB_MSRPM_BASE  0x048u
#define VMCB_ASID        0x058u
#define VMCB_VINTR       0x060u
#define VMCB_EXITCODE    0x070u
#define VMCB_NP_ENABLE   0x090u
#define VMCB_NCR3        0x0B0u
/* State save area (0x400 on). */
#define VMCB_ES     0x400u
#define VMCB_CS     0x410u
#define VMCB_SS     0x420u
#define VMCB_DS     0x430u
#define VMCB_GDTR   0x460u
#define VMCB_IDTR   0x480u
#define VMCB_TR     0x490u
#define VMCB_EFER   0x4D0u
#define VMCB_CR4    0x548u
#define VMCB_CR3    0x550u
#define VMCB_CR0    0x558u
#define VMCB_RFLAGS 0x570u
#define VMCB_RIP    0x578u
#define VMCB_RSP    0x5D8u
#define VMCB_RAX    0x5F8u
#define VMCB_GPAT   0x668u

#define INTERCEPT_INTR    (1u << 0)     /* misc1 */
#define INTERCEPT_SHUTDOWN (1u << 31)
#define INTERCEPT_VMRUN   (1u << 0)     /* misc2: required */
#define INTERCEPT_VMMCALL (1u << 1)
#define V_INTR_MASKING    (1ull << 24)
#define EXIT_VMMCALL      0x81u

#define PAGE 4096ull
#define NPT_FLAGS 0x87ull               /* present, writable, user (guest accesses are user), 2 MiB */

void svm_run(uint64_t vmcb_pa);

static uint64_t vmcb, nested, guest_code, guest_stack;

static void w16(uint32_t off, uint16_t v) { *(volatile uint16_t *)(uintptr_t)(vmcb + off) = v; }
static void w32(uint32_t off, uint32_t v) { *(volatile uint32_t *)(uintptr_t)(vmcb + off) = v; }
static void w64(uint32_t off, uint64_t v) { *(volatile uint64_t *)(uintptr_t)(vmcb + off) = v; }
static uint64_t r64(uint32_t off) { return *(volatile uint64_t *)(uintptr_t)(vmcb + off); }

/* A segment: selector, attributes (descriptor bits 40-47, then 52-55), limit, base. */
static void seg(uint32_t off, uint16_t sel, uint16_t attr, uint32_t limit, uint64_t base)
{
    w16(off, sel);
    w16(off + 2, attr);
    w32(off + 4, limit);
    w64(off + 8, base);
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
    uint64_t hsave = palloc(1, 0);
    vmcb = palloc(1, 0);
    guest_code = palloc(1, 0);
    guest_stack = palloc(1, 0);
    uint64_t iopm = palloc(3, 0), msrpm = palloc(2, 0);
    nested = build_nested();
    if (!hsave || !vmcb || !guest_code || !guest_stack || !iopm || !msrpm || !nested) {
        *why = "no memory for the VMCB and nested tables";
        vmcb = 0;
        return false;
    }
    wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_SVME);
    wrmsr(MSR_VM_HSAVE_PA, hsave);
    /* The guest: vmmcall; jmp back to it. */
    static const uint8_t code[] = { 0x0F, 0x01, 0xD9, 0xEB, 0xFB };
    memcpy((void *)(uintptr_t)guest_code, code, sizeof code);

    w32(VMCB_INTERCEPT_MISC1, INTERCEPT_INTR | INTERCEPT_SHUTDOWN);
    w32(VMCB_INTERCEPT_MISC2, INTERCEPT_VMRUN | INTERCEPT_VMMCALL);
    w64(VMCB_IOPM_BASE, iopm);
    w64(VMCB_MSRPM_BASE, msrpm);
    w32(VMCB_ASID, 1);
    w64(VMCB_VINTR, V_INTR_MASKING);    /* physical interrupts stay the host's */
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
    uint64_t t0 = rdtsc();
    for (uint32_t i = 0; i < n; i++) {
        svm_run(vmcb);
        uint64_t code = r64(VMCB_EXITCODE);
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
