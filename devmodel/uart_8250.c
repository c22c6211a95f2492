/* 16550 UART transmit model (contract in uart_8250.h). */
#include <string.h>
#include "uart_8250.h"

enum {
    REG_THR_RBR_DLL = 0, REG_IER_DLM = 1, REG_IIR_FCR = 2, REG_LCR = 3,
    REG_MCR = 4, REG_LSR = 5, REG_MSR = 6, REG_SCR = 7,
};
#define LCR_DLAB    0x80u
#define LSR_THRE    0x20u
#define LSR_TEMT    0x40u
#define IIR_NO_INT  0x01u
#define IIR_FIFO_ON 0xC0u

void uart_init(struct uart_8250 *u, uart_sink_fn sink, void *ctx)
{
    memset(u, 0, sizeof *u);
    u->sink = sink;
    u->sink_ctx = ctx;
}

void uart_flush(struct uart_8250 *u)
{
    if (u->len && u->sink)
        u->sink(u->sink_ctx, u->line, u->len);
    u->len = 0;
}

static void tx_byte(struct uart_8250 *u, uint8_t c)
{
    u->bytes++;
    if (c == '\n') {
        if (u->sink)
            u->sink(u->sink_ctx, u->line, u->len);
        u->len = 0;
        return;
    }
    if (c == '\r')
        return;
    if (c != '\t' && (c < 0x20 || c > 0x7E))
        c = '?';
    u->line[u->len++] = (char)c;
    if (u->len == sizeof u->line)
        uart_flush(u);
}

enum bus_result uart_io(void *ctx, struct bus_access *a)
{
    struct uart_8250 *u = ctx;
    bool dlab = u->lcr & LCR_DLAB;
    uint8_t v = (uint8_t)a->value;
    if (a->is_write) {
        switch (a->offset) {
        case REG_THR_RBR_DLL: if (dlab) u->dll = v; else tx_byte(u, v); break;
        case REG_IER_DLM:     if (dlab) u->dlm = v; else u->ier = v & 0x0F; break;
        case REG_LCR:         u->lcr = v; break;
        case REG_MCR:         u->mcr = v & 0x1F; break;
        case REG_SCR:         u->scr = v; break;
        default:              break;   /* FCR, LSR, MSR: ignored */
        }
        return BUS_OK;
    }
    switch (a->offset) {
    case REG_THR_RBR_DLL: a->value = dlab ? u->dll : 0; break;
    case REG_IER_DLM:     a->value = dlab ? u->dlm : u->ier; break;
    case REG_IIR_FCR:     a->value = IIR_NO_INT | IIR_FIFO_ON; break;
    case REG_LCR:         a->value = u->lcr; break;
    case REG_MCR:         a->value = u->mcr; break;
    case REG_LSR:         a->value = LSR_THRE | LSR_TEMT; break;
    case REG_SCR:         a->value = u->scr; break;
    default:              a->value = 0; break;
    }
    return BUS_OK;
}
