/* kprintf (contract in gk/console.h): formats in the caller's ring; from
 * ring 3 the line is handed to the kernel (or the bare monitor) with one
 * SYS_CONSOLE_WRITE, from ring 0 to console_write. */
#include "gk/console.h"
#include "gk/sys.h"
#include "gk/trap.h"

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
