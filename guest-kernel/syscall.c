/* System call dispatch (ABI in gk/sys.h). Runs in ring 0 on the TSS.RSP0
 * stack with interrupts off; every pointer from ring 3 is range-checked
 * against private RAM before use. */
#include "gk/console.h"
#include "gk/cpu.h"
#include "gk/panic.h"
#include "gk/platform.h"
#include "gk/sys.h"
#include "gk/trap.h"

static bool user_range_ok(uint64_t p, uint64_t len)
{
    const struct moat_boot_info *bi = platform_boot_info();
    return p >= 0x1000 && len <= bi->ram_size && p <= bi->ram_size - len;
}

static int64_t sys_test_fault_kernel(uint64_t kind)
{
    switch (kind) {
    case SYS_FAULT_HANG_IRQS_OFF:
        cli();
        for (;;)
            cpu_relax();
    case SYS_FAULT_EMPTY_IDT:
        /* Return to ring 3 with no IDT: the next exception or interrupt
         * cannot be delivered (#GP, then #DF, then shutdown). */
        idt_load_empty();
        return 0;
    default:
        return -SYS_EINVAL;
    }
}

void syscall_dispatch(struct trap_frame *f)
{
    int64_t ret = 0;
    switch (f->rax) {
    case SYS_CONSOLE_WRITE:
        if (f->rsi > GK_CONSOLE_LINE_MAX)
            ret = -SYS_EINVAL;
        else if (!user_range_ok(f->rdi, f->rsi))
            ret = -SYS_EFAULT;
        else
            console_write((const char *)(uintptr_t)f->rdi, f->rsi);
        break;
    case SYS_WAIT:
        /* Interrupts are off here: the comparison and the sleep are atomic
         * with respect to interrupt delivery ("sti; hlt"). */
        if (trap_irq_count() == f->rdi) {
            sti_hlt();
            cli();
        }
        break;
    case SYS_READY:
        platform_ready();
        break;
    case SYS_EXIT:
        platform_exit((uint32_t)f->rdi);
    case SYS_PANIC:
        crash_from_user_panic(f, user_range_ok(f->rdi, 1)
                                     ? (const char *)(uintptr_t)f->rdi : NULL,
                              platform_boot_info()->ram_size - f->rdi);
    case SYS_MSI_TEST:
        if (f->rdi < VEC_FIRST_IRQ || f->rdi >= VEC_SPURIOUS)
            ret = -SYS_EINVAL;
        else
            platform_request_msi((uint32_t)f->rdi);
        break;
    case SYS_TEST_FAULT:
        ret = sys_test_fault_kernel(f->rdi);
        break;
    default:
        ret = -SYS_ENOSYS;
        break;
    }
    f->rax = (uint64_t)ret;
}
