/* System call dispatch (ABI in gk/sys.h). Runs in ring 0 on the TSS.RSP0
 * stack with interrupts off; every pointer from ring 3 is range-checked
 * against private RAM before use. */
#include "gk/console.h"
#include "gk/cpu.h"
#include "gk/intx.h"
#include "gk/panic.h"
#include "gk/platform.h"
#include "gk/sys.h"
#include "moat/session_abi.h"
#include "gk/trap.h"

static bool user_range_ok(uint64_t p, uint64_t len)
{
    const struct moat_boot_info *bi = platform_boot_info();
    return p >= 0x1000 && len <= bi->ram_size && p <= bi->ram_size - len;
}

/* Is [port, port+size) inside an I/O BAR of an assigned device? */
static bool io_port_assigned(uint64_t port, uint64_t size)
{
    const struct moat_boot_info *bi = platform_boot_info();
    for (uint32_t i = 0; i < bi->n_devices && i < MOAT_DEVICES_MAX; i++)
        for (unsigned n = 0; n < 6; n++) {
            const struct moat_bar_info *b = &bi->device[i].bar[n];
            if (b->kind == MOAT_BAR_IO && port >= b->base && port - b->base < b->size &&
                size <= b->size - (port - b->base))
                return true;
        }
    return false;
}

static int64_t sys_pio_kernel(uint64_t port, uint64_t flags, uint64_t value)
{
    uint64_t size = flags & ~(uint64_t)SYS_PIO_WRITE;
    if ((size != 1 && size != 2 && size != 4) || port % size || port > 0xFFFF)
        return -SYS_EINVAL;
    if (!io_port_assigned(port, size))
        return -SYS_EFAULT;
    uint16_t p = (uint16_t)port;
    if (flags & SYS_PIO_WRITE) {
        if (size == 1)
            outb(p, (uint8_t)value);
        else if (size == 2)
            outw(p, (uint16_t)value);
        else
            outl(p, (uint32_t)value);
        return 0;
    }
    return size == 1 ? inb(p) : size == 2 ? inw(p) : (int64_t)inl(p);
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
    case SYS_PIO:
        ret = sys_pio_kernel(f->rdi, f->rsi, f->rdx);
        break;
    case SYS_INTX_BIND:
        ret = f->rdi > 0xFF || f->rsi > 0xFF ? -SYS_EINVAL
                                              : intx_bind((uint32_t)f->rdi, (uint32_t)f->rsi);
        break;
    case SYS_INTX_ACK:
        ret = f->rdi > 0xFF ? -SYS_EINVAL : intx_ack((uint32_t)f->rdi);
        break;
    case SYS_CAP_REGISTER:
        if (!user_range_ok(f->rdi, sizeof(struct moat_cap_register)) || f->rdi > UINT32_MAX)
            ret = -SYS_EFAULT;
        else
            ret = platform_call(MOAT_PLAT_PORT_CAP_REGISTER, (uint32_t)f->rdi);
        break;
    case SYS_SESSION_RELEASE:
        ret = f->rdi >= MOAT_SESSION_SLOTS ? -SYS_EINVAL
                                            : platform_call(MOAT_PLAT_PORT_SESSION_RELEASE,
                                                            (uint32_t)f->rdi);
        break;
    default:
        ret = -SYS_ENOSYS;
        break;
    }
    f->rax = (uint64_t)ret;
}
