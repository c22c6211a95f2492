/*
 * gk/panic.h — fail-stop reporting. Both paths fill the platform page's
 * crash record (kind, vector, error code, all registers, message), print a
 * register dump on the console, notify the platform and never return.
 */
#ifndef GK_PANIC_H
#define GK_PANIC_H

#include "gk/trap.h"

_Noreturn void panic(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void crash_from_trap(const struct trap_frame *f);
const char *exception_name(uint32_t vector);

#define GK_ASSERT(c) do { if (!(c)) panic("assertion failed: %s (%s:%d)", \
                                          #c, __FILE__, __LINE__); } while (0)

#endif /* GK_PANIC_H */
