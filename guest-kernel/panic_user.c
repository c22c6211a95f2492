/* panic() from ring 3 (contract in gk/panic.h): format the message and
 * hand it to the kernel, or the bare monitor, which records the caller's
 * registers. Shared by the hosted kernel and bare domains. */
#include "gk/console.h"
#include "gk/panic.h"
#include "gk/sys.h"
#include "moat/platform_abi.h"

_Noreturn void panic_user_v(const char *fmt, va_list ap)
{
    char msg[MOAT_CRASH_MSG_MAX];
    kvsnprintf(msg, sizeof msg, fmt, ap);
    sys_panic(msg);
}
