/*
 * Fail-stop reporting (contract in gk/panic.h): fill the crash record in the
 * platform page, print a register dump and a frame-pointer backtrace, tell
 * the platform, stop. A fault while reporting goes straight to the platform.
 */
#include "gk/console.h"
#include "gk/cpu.h"
#include "gk/kstring.h"
#include "gk/panic.h"
#include "gk/platform.h"
#include "gk/sys.h"

static volatile int reporting;

const char *exception_name(uint32_t vector)
{
    static const char *const names[32] = {
        [0] = "divide error (#DE)", [1] = "debug (#DB)", [2] = "NMI",
        [3] = "breakpoint (#BP)", [4] = "overflow (#OF)",
        [5] = "bound range (#BR)", [6] = "invalid opcode (#UD)",
        [7] = "device not available (#NM)", [8] = "double fault (#DF)",
        [10] = "invalid TSS (#TS)", [11] = "segment not present (#NP)",
        [12] = "stack fault (#SS)", [13] = "general protection (#GP)",
        [14] = "page fault (#PF)", [16] = "x87 error (#MF)",
        [17] = "alignment check (#AC)", [18] = "machine check (#MC)",
        [19] = "SIMD error (#XM)", [20] = "virtualization (#VE)",
        [21] = "control protection (#CP)",
    };
    if (vector < 32 && names[vector])
        return names[vector];
    return "reserved exception";
}

static void dump_and_report(struct moat_crash_record *rec)
{
    const struct moat_regs *r = &rec->regs;
    if (rec->kind == MOAT_CRASH_EXCEPTION)
        kprintf("FATAL: %s, vector %u, error code 0x%lx\n",
                exception_name(rec->vector), rec->vector, rec->error_code);
    else
        kprintf("PANIC: %s\n", rec->message);
    kprintf("  RIP %016lx  CS %04lx  RFLAGS %016lx\n", r->rip, r->cs, r->rflags);
    kprintf("  RSP %016lx  SS %04lx  CR2 %016lx\n", r->rsp, r->ss, r->cr2);
    kprintf("  RAX %016lx  RBX %016lx  RCX %016lx  RDX %016lx\n",
            r->rax, r->rbx, r->rcx, r->rdx);
    kprintf("  RSI %016lx  RDI %016lx  RBP %016lx\n", r->rsi, r->rdi, r->rbp);
    kprintf("  R8  %016lx  R9  %016lx  R10 %016lx  R11 %016lx\n",
            r->r8, r->r9, r->r10, r->r11);
    kprintf("  R12 %016lx  R13 %016lx  R14 %016lx  R15 %016lx\n",
            r->r12, r->r13, r->r14, r->r15);
    kprintf("  CR0 %016lx  CR3 %016lx  CR4 %016lx\n", r->cr0, r->cr3, r->cr4);
    /* Frame-pointer backtrace, bounded and only through mapped RAM. */
    uint64_t fp = r->rbp;
    uint64_t ram = platform_boot_info() ? platform_boot_info()->ram_size : 0;
    for (int depth = 0; depth < 16; depth++) {
        if (fp < 0x1000 || fp + 16 > ram || (fp & 7))
            break;
        const uint64_t *frame = (const uint64_t *)(uintptr_t)fp;
        kprintf("  #%d %016lx\n", depth, frame[1]);
        fp = frame[0];
    }
    platform_crash();
}

static void fill_control_regs(struct moat_regs *r)
{
    r->cr0 = read_cr0();
    r->cr2 = read_cr2();
    r->cr3 = read_cr3();
    r->cr4 = read_cr4();
}

static struct moat_crash_record *begin_record(uint32_t kind)
{
    cli();
    struct moat_platform_page *pp = platform_page();
    if (reporting++ || !pp)
        platform_crash();
    struct moat_crash_record *rec = &pp->crash;
    memset(rec, 0, sizeof *rec);
    rec->kind = kind;
    return rec;
}

static void regs_from_frame(struct moat_regs *r, const struct trap_frame *f)
{
    *r = (struct moat_regs){
        .rax = f->rax, .rbx = f->rbx, .rcx = f->rcx, .rdx = f->rdx,
        .rsi = f->rsi, .rdi = f->rdi, .rbp = f->rbp,
        .r8 = f->r8, .r9 = f->r9, .r10 = f->r10, .r11 = f->r11,
        .r12 = f->r12, .r13 = f->r13, .r14 = f->r14, .r15 = f->r15,
        .rip = f->rip, .cs = f->cs, .rflags = f->rflags,
        .rsp = f->rsp, .ss = f->ss,
    };
    fill_control_regs(r);
}

_Noreturn void crash_from_trap(const struct trap_frame *f)
{
    struct moat_crash_record *rec = begin_record(MOAT_CRASH_EXCEPTION);
    rec->vector = (uint32_t)f->vector;
    rec->error_code = f->error_code;
    regs_from_frame(&rec->regs, f);
    ksnprintf(rec->message, sizeof rec->message, "%s in ring %lu",
              exception_name(rec->vector), f->cs & 3);
    dump_and_report(rec);
    __builtin_unreachable();
}

_Noreturn void crash_from_user_panic(const struct trap_frame *f, const char *msg,
                                     size_t max_len)
{
    struct moat_crash_record *rec = begin_record(MOAT_CRASH_PANIC);
    regs_from_frame(&rec->regs, f);
    if (!msg)
        msg = "(panic message pointer outside RAM)";
    /* Bounded copy; the record was zeroed, so it stays terminated. */
    size_t lim = max_len < sizeof rec->message - 1 ? max_len : sizeof rec->message - 1;
    memcpy(rec->message, msg, strnlen(msg, lim));
    dump_and_report(rec);
    __builtin_unreachable();
}

_Noreturn void panic(const char *fmt, ...)
{
    if (cpu_in_user()) {
        va_list ap;
        va_start(ap, fmt);
        panic_user_v(fmt, ap);
    }
    struct moat_crash_record *rec = begin_record(MOAT_CRASH_PANIC);
    struct moat_regs *r = &rec->regs;
    __asm__ volatile("movq %%rbx, %0\n\tmovq %%rbp, %1\n\tmovq %%rsp, %2\n\t"
                     "movq %%r12, %3\n\tmovq %%r13, %4\n\tmovq %%r14, %5\n\t"
                     "movq %%r15, %6"
                     : "=m"(r->rbx), "=m"(r->rbp), "=m"(r->rsp), "=m"(r->r12),
                       "=m"(r->r13), "=m"(r->r14), "=m"(r->r15));
    r->rip = (uint64_t)(uintptr_t)__builtin_return_address(0);
    r->rflags = read_rflags();
    fill_control_regs(r);
    va_list ap;
    va_start(ap, fmt);
    kvsnprintf(rec->message, sizeof rec->message, fmt, ap);
    va_end(ap);
    dump_and_report(rec);
    __builtin_unreachable();
}
