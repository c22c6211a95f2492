/*
 * com1.h — the bare kernel's serial console: COM1 (port 0x3F8; GCE's
 * serial port 1), 115200 8N1, polled. Lines end in CRLF on the wire.
 */
#ifndef BARE_COM1_H
#define BARE_COM1_H

#include <stdbool.h>
#include <stddef.h>

void com1_init(void);
void com1_write(const char *s, size_t len);
/* printf to COM1 (gk/console.h formats: %s %d %u %x %llx ...). */
void com1_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A byte is waiting. */
bool com1_ready(void);
/* Take the bytes waiting into a line being edited (echoed, backspace
 * edits; *n characters so far, start at 0): true when a line ended, then
 * buf holds it NUL-terminated (at most len - 1 characters) and *n is 0. */
bool com1_poll_line(char *buf, size_t len, size_t *n);

#endif /* BARE_COM1_H */
