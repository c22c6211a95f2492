/* COM1 console (contract in com1.h). */
#include <stdarg.h>
#include <stdint.h>
#include "com1.h"
#include "gk/console.h"
#include "gk/cpu.h"

#define COM1      0x3F8
#define REG_DATA  0
#define REG_IER   1
#define REG_FCR   2
#define REG_LCR   3
#define REG_MCR   4
#define REG_LSR   5
#define LSR_READY 0x01u                 /* a byte waits */
#define LSR_THRE  0x20u                 /* room to send */

void com1_init(void)
{
    outb(COM1 + REG_IER, 0x00);         /* no interrupts: polled */
    outb(COM1 + REG_LCR, 0x80);         /* divisor latch */
    outb(COM1 + REG_DATA, 0x01);        /* 115200 baud */
    outb(COM1 + REG_IER, 0x00);
    outb(COM1 + REG_LCR, 0x03);         /* 8N1 */
    outb(COM1 + REG_FCR, 0xC7);         /* FIFOs on, cleared */
    outb(COM1 + REG_MCR, 0x03);         /* DTR, RTS */
}

static void put(char c)
{
    while (!(inb(COM1 + REG_LSR) & LSR_THRE))
        ;
    outb(COM1 + REG_DATA, (uint8_t)c);
}

void com1_write(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\n')
            put('\r');
        put(s[i]);
    }
}

void com1_printf(const char *fmt, ...)
{
    char buf[GK_CONSOLE_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = kvsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > 0)
        com1_write(buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

bool com1_ready(void) { return inb(COM1 + REG_LSR) & LSR_READY; }

bool com1_poll_line(char *buf, size_t len, size_t *n)
{
    while (com1_ready()) {
        char c = (char)inb(COM1 + REG_DATA);
        if (c == '\r' || c == '\n') {
            com1_write("\n", 1);
            buf[*n] = '\0';
            *n = 0;
            return true;
        }
        if ((c == 0x7F || c == '\b') && *n > 0) {
            (*n)--;
            com1_write("\b \b", 3);
        } else if (c >= ' ' && c < 0x7F && *n + 1 < len) {
            buf[(*n)++] = c;
            com1_write(&c, 1);
        }
    }
    return false;
}
