/*
 * gk/panic.h — fail-stop reporting. Every path fills the platform page's
 * crash record (kind, vector, error code, all registers, message), prints a
 * register dump on the console, notifies the platform and never returns.
 * panic() works in both rings: in ring 3 it formats the message and makes
 * the SYS_PANIC call, so the record holds the caller's ring-3 registers.
 */
#ifndef GK_PANIC_H
#define GK_PANIC_H

#include <stdarg.h>
#include <stddef.h>
#include "gk/trap.h"

_Noreturn void panic(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Ring 3's panic: SYS_PANIC with the formatted message. */
_Noreturn void panic_user_v(const char *fmt, va_list ap);
_Noreturn void crash_from_trap(const struct trap_frame *f);
/* SYS_PANIC: msg is a ring-3 pointer checked readable for max_len bytes,
 * or NULL; at most 127 bytes of it are copied. */
_Noreturn void crash_from_user_panic(const struct trap_frame *f, const char *msg,
                                     size_t max_len);
const char *exception_name(uint32_t vector);

#endif /* GK_PANIC_H */
