/*
 * uart_8250.h — a COM1-style 16550 UART, transmit side only.
 *
 * Bytes the guest writes to THR are assembled into lines and handed to the
 * sink one line at a time (without the newline). Guest output is hostile:
 * every byte outside printable ASCII (other than tab) becomes '?', so a
 * domain can never put terminal escape sequences on an operator's console.
 * LSR always reports the transmitter empty; there is no receive path yet
 * (RBR reads 0). Registers per the PC16550D datasheet, Table 2.
 */
#ifndef MOAT_UART_8250_H
#define MOAT_UART_8250_H

#include <stddef.h>
#include <stdint.h>
#include "exit_bus.h"

#define UART_COM1_BASE   0x3F8u
#define UART_PORTS       8u
#define UART_LINE_MAX    512u

typedef void (*uart_sink_fn)(void *ctx, const char *line, size_t len);

struct uart_8250 {
    uint8_t ier, lcr, mcr, scr, dll, dlm;
    char line[UART_LINE_MAX];
    size_t len;
    uint64_t bytes;             /* bytes received from the guest */
    uart_sink_fn sink;
    void *sink_ctx;
};

void uart_init(struct uart_8250 *u, uart_sink_fn sink, void *ctx);
/* Bus handler for the 8 ports at UART_COM1_BASE (ctx = struct uart_8250). */
enum bus_result uart_io(void *ctx, struct bus_access *a);
/* Hand a partial line to the sink (at domain end). */
void uart_flush(struct uart_8250 *u);

#endif /* MOAT_UART_8250_H */
