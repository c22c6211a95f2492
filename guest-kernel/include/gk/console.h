/*
 * gk/console.h — kernel console (COM1) and formatting.
 *
 * kprintf formats one message into a bounded buffer and writes it with a
 * single string OUT, so a log line costs one VM exit, not one per byte.
 * Output longer than GK_CONSOLE_LINE_MAX is truncated, never overflowed.
 * kvsnprintf/ksnprintf are pure (also unit-tested on the host) and support
 * %% %c %s %d %i %u %x %X %p with l/ll/z modifiers, '0' flag and a width;
 * they always NUL-terminate when size > 0 and return the would-be length.
 */
#ifndef GK_CONSOLE_H
#define GK_CONSOLE_H

#include <stdarg.h>
#include <stddef.h>

#define GK_CONSOLE_LINE_MAX 512

int kvsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int ksnprintf(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#ifndef GK_HOST_TEST
void console_write(const char *s, size_t len);
void kprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#endif

#endif /* GK_CONSOLE_H */
