/*
 * Console on COM1 for hosted domains (ring 0). The VMM's UART model
 * accepts bytes whenever written, so a whole line goes out as one string
 * OUT (one exit). kprintf.c formats; bare domains write through the
 * monitor instead (bare/dom/dom_rt.c).
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
