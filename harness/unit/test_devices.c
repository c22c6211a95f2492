/* The 16550 console model and the platform ports: hostile guest input is
 * sanitised or refused and counted. */
#include <criterion/criterion.h>
#include <string.h>
#include "moat/platform_abi.h"
#include "platform_dev.h"
#include "uart_8250.h"

static char lines[8][UART_LINE_MAX + 1];
static int n_lines;

static void sink(void *ctx, const char *line, size_t len)
{
    (void)ctx;
    cr_assert_lt(n_lines, 8);
    memcpy(lines[n_lines], line, len);
    lines[n_lines][len] = '\0';
    n_lines++;
}

static void out8(struct uart_8250 *u, uint64_t off, uint8_t v)
{
    struct bus_access a = { .offset = off, .size = 1, .is_write = true, .value = v };
    cr_assert_eq(uart_io(u, &a), BUS_OK);
}

static uint64_t in8(struct uart_8250 *u, uint64_t off)
{
    struct bus_access a = { .offset = off, .size = 1 };
    cr_assert_eq(uart_io(u, &a), BUS_OK);
    return a.value;
}

Test(uart, assembles_lines_and_strips_control_bytes)
{
    struct uart_8250 u;
    n_lines = 0;
    uart_init(&u, sink, NULL);
    const char *msg = "hi\x1b[2J\tthere\r\n";
    for (const char *p = msg; *p; p++)
        out8(&u, 0, (uint8_t)*p);
    cr_assert_eq(n_lines, 1);
    cr_assert_str_eq(lines[0], "hi?[2J\tthere", "escape must be neutralised, CR dropped");
    out8(&u, 0, 0xFF);
    out8(&u, 0, 'x');
    uart_flush(&u);
    cr_assert_eq(n_lines, 2);
    cr_assert_str_eq(lines[1], "?x");
    cr_assert_eq(u.bytes, strlen(msg) + 2);
}

Test(uart, long_lines_are_split_not_overflowed)
{
    struct uart_8250 u;
    n_lines = 0;
    uart_init(&u, sink, NULL);
    for (unsigned i = 0; i < UART_LINE_MAX + 10; i++)
        out8(&u, 0, 'a');
    out8(&u, 0, '\n');
    cr_assert_eq(n_lines, 2);
    cr_assert_eq(strlen(lines[0]), UART_LINE_MAX);
    cr_assert_eq(strlen(lines[1]), 10);
}

Test(uart, registers)
{
    struct uart_8250 u;
    n_lines = 0;
    uart_init(&u, sink, NULL);
    cr_assert_eq(in8(&u, 5) & 0x60, 0x60, "LSR must report THR empty");
    out8(&u, 3, 0x80);                  /* DLAB */
    out8(&u, 0, 0x01);                  /* divisor latch, not a byte */
    out8(&u, 1, 0x00);
    cr_assert_eq(in8(&u, 0), 0x01);
    out8(&u, 3, 0x03);                  /* 8N1, DLAB off */
    out8(&u, 7, 0x5A);
    cr_assert_eq(in8(&u, 7), 0x5A, "scratch register");
    cr_assert_eq(in8(&u, 2) & 1, 1, "IIR: no interrupt pending");
    cr_assert_eq(n_lines, 0);
    cr_assert_eq(u.bytes, 0, "a divisor write is not output");
}

struct plat_log { int ready, crash, exit, msi, refused, reg, rel, yield; uint32_t code, vector, gpa, slot; };

static void p_ready(void *c) { ((struct plat_log *)c)->ready++; }
static void p_crash(void *c) { ((struct plat_log *)c)->crash++; }
static void p_exit(void *c, uint32_t code) { ((struct plat_log *)c)->exit++; ((struct plat_log *)c)->code = code; }
static void p_msi(void *c, uint32_t v) { ((struct plat_log *)c)->msi++; ((struct plat_log *)c)->vector = v; }
static void p_refused(void *c, const char *why, uint64_t port, uint64_t value)
{
    (void)why; (void)port; (void)value;
    ((struct plat_log *)c)->refused++;
}

static void p_reg(void *c, uint32_t gpa) { ((struct plat_log *)c)->reg++; ((struct plat_log *)c)->gpa = gpa; }
static void p_rel(void *c, uint32_t slot) { ((struct plat_log *)c)->rel++; ((struct plat_log *)c)->slot = slot; }
static void p_yield(void *c) { ((struct plat_log *)c)->yield++; }

static const struct platform_dev_ops ops = {
    .ready = p_ready, .crash = p_crash, .exit = p_exit, .msi = p_msi, .refused = p_refused,
    .cap_register = p_reg, .session_release = p_rel, .yield = p_yield,
};

static void pw(struct platform_dev *p, uint32_t port, uint32_t size, uint64_t v)
{
    struct bus_access a = { .addr = port, .offset = port - MOAT_PLAT_PORT_BASE, .size = size,
                            .is_write = true, .value = v };
    cr_assert_eq(platform_dev_io(p, &a), BUS_OK);
}

Test(platform_dev, valid_writes_reach_the_owner)
{
    struct plat_log log = {0};
    struct platform_dev p = { &ops, &log, 0 };
    pw(&p, MOAT_PLAT_PORT_READY, 4, 1);
    pw(&p, MOAT_PLAT_PORT_MSI_TEST, 4, 48);
    pw(&p, MOAT_PLAT_PORT_EXIT, 4, 3);
    pw(&p, MOAT_PLAT_PORT_CRASH, 4, 1);
    pw(&p, MOAT_PLAT_PORT_CAP_REGISTER, 4, 0x5000);
    pw(&p, MOAT_PLAT_PORT_SESSION_RELEASE, 4, 3);
    cr_assert_eq(log.reg, 1, "CAP_REGISTER must reach the owner");
    cr_assert_eq(log.gpa, 0x5000, "with the structure's address");
    cr_assert_eq(log.rel, 1, "SESSION_RELEASE must reach the owner");
    cr_assert_eq(log.slot, 3, "with the slot");
    cr_assert_eq(log.ready, 1);
    cr_assert_eq(log.msi, 1);
    cr_assert_eq(log.vector, 48);
    cr_assert_eq(log.exit, 1);
    cr_assert_eq(log.code, 3);
    cr_assert_eq(log.crash, 1);
    cr_assert_eq(p.bad_accesses, 0);
}

Test(platform_dev, hostile_accesses_are_refused_and_counted)
{
    struct plat_log log = {0};
    struct platform_dev p = { &ops, &log, 0 };
    pw(&p, MOAT_PLAT_PORT_MSI_TEST, 4, 2);       /* exception vector */
    pw(&p, MOAT_PLAT_PORT_MSI_TEST, 4, 255);     /* spurious vector */
    pw(&p, MOAT_PLAT_PORT_READY, 1, 1);          /* wrong width */
    pw(&p, MOAT_PLAT_PORT_BASE + 2, 4, 1);       /* between ports */
    struct bus_access rd = { .offset = 0, .size = 4, .value = 99 };
    cr_assert_eq(platform_dev_io(&p, &rd), BUS_OK);
    cr_assert_eq(rd.value, 0, "reads return zero");
    pw(&p, MOAT_PLAT_PORT_CAP_REGISTER, 2, 0x5000);  /* wrong width */
    cr_assert_eq(log.msi + log.ready + log.exit + log.crash + log.reg + log.rel, 0, "no op may run");
    cr_assert_eq(p.bad_accesses, 6);
    cr_assert_eq(log.refused, 6);
}

static enum bus_result mmio(struct platform_dev *p, uint64_t off, uint32_t size, bool write)
{
    struct bus_access a = { .addr = MOAT_GPA_PLATFORM_MMIO + off, .offset = off, .size = size,
                            .is_write = write, .value = 7 };
    enum bus_result r = platform_dev_mmio(p, &a);
    if (!write)
        cr_assert_eq(a.value, 0, "a read of the platform MMIO register returns zero");
    return r;
}

Test(platform_dev, yield_register_reaches_the_owner_and_nothing_else_does)
{
    struct plat_log log = {0};
    struct platform_dev p = { &ops, &log, 0 };
    cr_assert_eq(mmio(&p, MOAT_PLAT_MMIO_YIELD, 4, true), BUS_OK);
    cr_assert_eq(log.yield, 1, "a 32-bit store to YIELD must reach the owner");
    cr_assert_eq(p.bad_accesses, 0);
    cr_assert_eq(mmio(&p, MOAT_PLAT_MMIO_YIELD, 4, false), BUS_OK);     /* read */
    cr_assert_eq(mmio(&p, MOAT_PLAT_MMIO_YIELD, 1, true), BUS_OK);      /* byte */
    cr_assert_eq(mmio(&p, MOAT_PLAT_MMIO_YIELD, 8, true), BUS_OK);      /* qword */
    cr_assert_eq(mmio(&p, 2, 4, true), BUS_OK);                         /* misplaced */
    cr_assert_eq(log.yield, 1, "only a 32-bit store at offset 0 yields");
    cr_assert_eq(p.bad_accesses, 4, "each hostile access is counted");
    cr_assert_eq(log.refused, 4, "and reported");
}
