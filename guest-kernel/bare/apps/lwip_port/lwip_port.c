/* lwIP's platform for the bare app domains (arch/cc.h, lwip_hooks.h):
 * time, randomness, diagnostics, assertions, atoi. */
#include <stdarg.h>
#include <stdlib.h>
#include "arch/cc.h"
#include "dd.h"
#include "gk/console.h"
#include "lwip/sys.h"
#include "lwip_hooks.h"

static uint64_t rng_state, isn_key[2];
static bool rng_seeded;

static uint64_t mix64(uint64_t z)
{
    z = (z ^ z >> 30) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ z >> 27) * 0x94d049bb133111ebull;
    return z ^ z >> 31;
}

/* RDRAND where the CPU offers it (CPUID 1 ECX bit 30), else 0. */
static uint64_t hw_random(void)
{
    uint32_t a = 1, b, c = 0, d;
    __asm__ volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d));
    if (!(c & 1u << 30))
        return 0;
    uint64_t v;
    for (int i = 0; i < 10; i++) {
        uint8_t ok;
        __asm__ volatile("rdrand %0; setc %1" : "=r"(v), "=qm"(ok));
        if (ok)
            return v;
    }
    return 0;
}

/* Seeded from RDRAND where offered, and from the clock (the time the
 * domain took to get here varies with everything the machine did). */
static void seed(void)
{
    rng_state = hw_random() ^ mix64(dd_now_ns());
    isn_key[0] = mix64(rng_state ^ hw_random());
    isn_key[1] = mix64(isn_key[0] ^ dd_now_ns());
    rng_seeded = true;
}

static uint64_t next64(void)
{
    if (!rng_seeded)
        seed();
    rng_state += 0x9e3779b97f4a7c15ull;
    return mix64(rng_state ^ dd_now_ns() << 20);
}

uint32_t moat_lwip_rand(void) { return (uint32_t)next64(); }

u32_t moat_lwip_tcp_isn(const ip_addr_t *local_ip, u16_t local_port,
                        const ip_addr_t *remote_ip, u16_t remote_port)
{
    if (!rng_seeded)
        seed();
    uint64_t h = mix64(isn_key[0] ^ ip4_addr_get_u32(ip_2_ip4(local_ip)));
    h = mix64(h ^ ((uint64_t)ip4_addr_get_u32(ip_2_ip4(remote_ip)) << 32 |
                   (uint64_t)local_port << 16 | remote_port));
    h = mix64(h ^ isn_key[1]);
    return (u32_t)(h + dd_now_ns() / 4000);
}

u32_t sys_now(void) { return (u32_t)(dd_now_ns() / 1000000); }

void moat_lwip_diag(const char *fmt, ...)
{
    char line[160];
    va_list ap;
    va_start(ap, fmt);
    int n = kvsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n > 0)
        dd_log("lwIP: %s", line);
}

_Noreturn void moat_lwip_assert(const char *what, const char *file, int line)
{
    dd_panic("lwIP assertion failed: %s (%s:%d)", what, file, line);
}

int atoi(const char *s)
{
    int v = 0;
    while (*s >= '0' && *s <= '9' && v < 100000000)
        v = v * 10 + (*s++ - '0');
    return v;
}
