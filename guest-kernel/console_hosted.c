/*
 * Console on COM1 for hosted domains. The VMM's UART model accepts bytes
 * whenever written, so a whole line goes out as one string OUT (one exit).
 * kprintf formats in the caller's ring; from ring 3 the line is handed to
 * the kernel with one SYS_CONSOLE_WRITE. Bare boot will bring its own
 * console that polls LSR on real UARTs.
 */
#include "gk/console.h"
#include "gk/cpu.h"
#include "gk/sys.h"
#include "gk/trap.h"

#define COM1_THR 0x3F8

void console_write(const char *s, size_t len)
{
    /* Ring 0 only. One string OUT per call: lines never interleave. */
    uint64_t flags = read_rflags();
    cli();
    outsb(COM1_THR, s, len);
    if (flags & RFLAGS_IF)
        sti();
}

void kprintf(const char *fmt, ...)
{
    char line[GK_CONSOLE_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = kvsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
    if (cpu_in_user())
        sys_console_write(line, len);
    else
        console_write(line, len);
}
