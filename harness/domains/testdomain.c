/*
 * testdomain — a domain for the integration tests and the boot benchmark.
 *
 * Arguments (all optional):
 *   fault=NAME   misbehave (ring 3 unless noted): divzero pagefault gp ud
 *                wprotect nx panic spin (interrupts on, no heartbeat);
 *                mmio (read the PCI MMIO hole outside every BAR);
 *                triple (empty IDT, then #UD), hang (ring 0: interrupts off)
 *                badsys (a system call with a pointer outside RAM must be
 *                refused with -EFAULT; panics if it is not)
 *   when=boot    fault before announcing ready (default: after ready)
 *   msi=N        after ready, take N MSI round trips from the VMM and
 *                verify each arrives exactly once (panics otherwise)
 *   exit_ms=N    stop with code 0 after serving N ms (default: serve forever)
 */
#include "gk/cmdline.h"
#include "gk/console.h"
#include "gk/cpu.h"
#include "gk/domain.h"
#include "gk/event.h"
#include "gk/kstring.h"
#include "gk/panic.h"
#include "gk/runtime.h"
#include "gk/timer.h"
#include "gk/sys.h"

/* Far above any private RAM, canonical, never mapped. */
#define UNMAPPED_ADDR 0x0000040000000000ull

static volatile uint32_t msi_count;

static void on_msi(void *ctx, uint32_t vector)
{
    (void)ctx;
    (void)vector;
    msi_count++;
}

static void do_fault(const char *f)
{
    kprintf("testdomain: injecting fault '%s'\n", f);
    if (!strcmp(f, "divzero")) {
        __asm__ volatile("xorl %%edx, %%edx\n\txorl %%ecx, %%ecx\n\t"
                         "movl $1, %%eax\n\tdivl %%ecx" ::: "eax", "ecx", "edx");
    } else if (!strcmp(f, "pagefault")) {
        uint64_t addr = UNMAPPED_ADDR, v;
        __asm__ volatile("movq (%1), %0" : "=r"(v) : "r"(addr) : "memory");
        (void)v;
    } else if (!strcmp(f, "gp")) {
        uint64_t addr = 0x8000000000000000ull, v;   /* non-canonical */
        __asm__ volatile("movq (%1), %0" : "=r"(v) : "r"(addr) : "memory");
        (void)v;
    } else if (!strcmp(f, "ud")) {
        __asm__ volatile("ud2");
    } else if (!strcmp(f, "wprotect")) {
        /* Kernel text is read-only: a write must page-fault. */
        volatile uint8_t *text = (volatile uint8_t *)(uintptr_t)&do_fault;
        *text = 0xCC;
    } else if (!strcmp(f, "nx")) {
        /* Data is no-execute: jumping into it must page-fault. */
        static uint8_t data_ret[16] = { 0xC3 };
        void (*fn)(void) = (void (*)(void))(uintptr_t)data_ret;
        fn();
    } else if (!strcmp(f, "triple")) {
        sys_test_fault(SYS_FAULT_EMPTY_IDT);
        __asm__ volatile("ud2");    /* undeliverable: triple fault */
    } else if (!strcmp(f, "hang")) {
        sys_test_fault(SYS_FAULT_HANG_IRQS_OFF);
    } else if (!strcmp(f, "badsys")) {
        int64_t r = sys_console_write((const char *)(uintptr_t)UNMAPPED_ADDR, 8);
        if (r != -SYS_EFAULT)
            panic("SYS_CONSOLE_WRITE outside RAM returned %ld, want %d", r, -SYS_EFAULT);
        r = sys_msi_test(7);
        if (r != -SYS_EINVAL)
            panic("SYS_MSI_TEST vector 7 returned %ld, want %d", r, -SYS_EINVAL);
        r = sys_pio(0x3F8, 1, 0);       /* COM1 is no assigned device's I/O BAR */
        if (r != -SYS_EFAULT)
            panic("SYS_PIO to port 0x3f8 returned %ld, want %d", r, -SYS_EFAULT);
        r = sys_pio(0xC000, 3, 0);
        if (r != -SYS_EINVAL)
            panic("SYS_PIO of width 3 returned %ld, want %d", r, -SYS_EINVAL);
        r = sys_intx_bind(17, 60);      /* no device assigned: no INTx to bind */
        if (r != -SYS_EINVAL)
            panic("SYS_INTX_BIND without a device returned %ld, want %d", r, -SYS_EINVAL);
        r = sys_intx_ack(17);
        if (r != -SYS_EINVAL)
            panic("SYS_INTX_ACK of an unbound GSI returned %ld, want %d", r, -SYS_EINVAL);
        kprintf("testdomain: bad system calls refused\n");
        sys_exit(0);
    } else if (!strcmp(f, "mmio")) {
        /* Inside the PCI MMIO hole but in no BAR: a policy violation. */
        volatile uint32_t *hole = (volatile uint32_t *)(uintptr_t)0xC8000000ull;
        (void)*hole;
    } else if (!strcmp(f, "spin")) {
        for (;;)
            cpu_relax();
    } else if (!strcmp(f, "panic")) {
        panic("injected panic (testdomain fault=panic)");
    } else {
        panic("unknown fault '%s'", f);
    }
    panic("fault '%s' did not fault", f);
}

static void msi_round_trips(unsigned long n)
{
    uint32_t vec = gk_event_alloc(on_msi, 0);
    if (!vec)
        panic("no free interrupt vector");
    for (unsigned long i = 0; i < n; i++) {
        uint32_t before = msi_count;
        sys_msi_test(vec);
        /* Delivery is synchronous with re-entry; allow a generous bound. */
        uint64_t deadline = timer_now_ns() + 1000000000ull;
        while (msi_count == before) {
            if (timer_now_ns() > deadline)
                panic("MSI %lu of %lu on vector %u never arrived", i + 1, n, vec);
            gk_run_once();
        }
        if (msi_count != before + 1)
            panic("MSI %lu delivered %u times", i + 1, msi_count - before);
    }
    kprintf("testdomain: %lu MSIs on vector %u delivered exactly once each\n", n, vec);
}

void domain_main(const char *cmdline)
{
    char fault[32] = "", when[16] = "ready";
    cmdline_get(cmdline, "fault", fault, sizeof fault);
    cmdline_get(cmdline, "when", when, sizeof when);
    if (fault[0] && !strcmp(when, "boot"))
        do_fault(fault);
    sys_ready();
    if (fault[0])
        do_fault(fault);
    unsigned long n = cmdline_get_ulong(cmdline, "msi", 0);
    if (n)
        msi_round_trips(n);
    char exit_arg[24];
    if (!cmdline_get(cmdline, "exit_ms", exit_arg, sizeof exit_arg))
        gk_run();
    unsigned long exit_ms = cmdline_get_ulong(cmdline, "exit_ms", 0);
    uint64_t until = timer_now_ns() + exit_ms * 1000000ull;
    while (timer_now_ns() < until)
        gk_run_once();
}
