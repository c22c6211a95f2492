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
/* One byte, waiting for it. */
char com1_getc(void);
/* Read a line (echoed, backspace edits) into buf (NUL-terminated, at
 * most len - 1 characters). */
void com1_readline(char *buf, size_t len);

#endif /* BARE_COM1_H */
