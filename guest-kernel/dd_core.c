/* Driver API: time, run loop, logging (contract in dd.h). Ring 3. */
#include <stdarg.h>
#include "dd.h"
#include "gk/cmdline.h"
#include "gk/console.h"
#include "gk/mem.h"
#include "gk/panic.h"
#include "gk/platform.h"
#include "gk/runtime.h"
#include "gk/stop.h"
#include "gk/sys.h"
#include "gk/timer.h"

_Static_assert(DD_SPIN_US_DEFAULT * 1000ull == GK_SPIN_NS_DEFAULT,
               "dd.h and gk/runtime.h disagree on the default spin time");

uint64_t dd_now_ns(void) { return timer_now_ns(); }
void *dd_mem_alloc(uint64_t size) { return mem_alloc_pages((size_t)((size + 4095) / 4096)); }
bool dd_poll_add(bool (*fn)(void *ctx), void *ctx) { return gk_poller_add(fn, ctx); }
bool dd_idle_add(bool (*fn)(void *ctx), void *ctx) { return gk_idle_add(fn, ctx); }
void dd_spin_set(uint64_t ns) { gk_spin_set(ns); }
void dd_run_once(void) { gk_run_once(); }
_Noreturn void dd_run(void) { gk_run(); }
void dd_boot_mark(enum moat_boot_mark step) { platform_boot_mark(step); }

void dd_ready(void)
{
    platform_boot_mark(MOAT_BOOT_CAPS);
    gk_stop_watch();            /* bring-up is over: a stop may come now */
    sys_ready();
}

void dd_log(const char *fmt, ...)
{
    char line[GK_CONSOLE_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = kvsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof line - 2 ? (size_t)n : sizeof line - 2;
    if (len == 0 || line[len - 1] != '\n')
        line[len++] = '\n';
    sys_console_write(line, len);
}

_Noreturn void dd_panic(const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    kvsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    panic("%s", msg);
}

bool dd_arg(const char *args, const char *key, char *out, size_t len)
{
    return cmdline_get(args, key, out, len);
}

uint64_t dd_arg_u64(const char *args, const char *key, uint64_t fallback)
{
    return cmdline_get_ulong(args, key, fallback);
}

uint32_t dd_arg_u32(const char *args, const char *key, uint32_t fallback, uint32_t lo,
                    uint32_t hi)
{
    uint64_t v = dd_arg_u64(args, key, fallback);
    if (v < lo || v > hi)
        dd_panic("driver argument %s=%lu is outside %u..%u", key, v, lo, hi);
    return (uint32_t)v;
}

uint64_t dd_arg_size(const char *args, const char *key, uint64_t fallback)
{
    return cmdline_get_size(args, key, fallback);
}

_Noreturn void dd_exit(uint32_t code)
{
    sys_exit(code);
}
