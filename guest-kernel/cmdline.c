/* Domain argument parsing (contract in gk/cmdline.h). Pure. */
#include <stdint.h>
#include "gk/cmdline.h"

static bool is_space(char c) { return c == ' ' || c == '\t'; }

bool cmdline_get(const char *cmdline, const char *key, char *out, size_t out_len)
{
    if (!cmdline || !key || !out || out_len == 0)
        return false;
    size_t klen = 0;
    while (key[klen])
        klen++;
    const char *p = cmdline;
    while (*p) {
        while (is_space(*p))
            p++;
        const char *w = p;
        while (*p && !is_space(*p))
            p++;
        size_t wlen = (size_t)(p - w);
        if (wlen < klen)
            continue;
        size_t i = 0;
        while (i < klen && w[i] == key[i])
            i++;
        if (i != klen || (wlen > klen && w[klen] != '='))
            continue;
        const char *v = wlen > klen ? w + klen + 1 : w + klen;
        size_t n = 0;
        while (v + n < p && n + 1 < out_len) {
            out[n] = v[n];
            n++;
        }
        out[n] = '\0';
        return true;
    }
    return false;
}

/* Decimal or 0x-hex digits only; false on anything else or overflow. */
static bool parse_ulong(const char *p, unsigned long *out)
{
    unsigned long base = 10;
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X') && p[2]) {
        base = 16;
        p += 2;
    }
    if (!*p)
        return false;
    unsigned long v = 0;
    for (; *p; p++) {
        unsigned long d;
        if (*p >= '0' && *p <= '9')
            d = (unsigned long)(*p - '0');
        else if (base == 16 && *p >= 'a' && *p <= 'f')
            d = (unsigned long)(*p - 'a' + 10);
        else if (base == 16 && *p >= 'A' && *p <= 'F')
            d = (unsigned long)(*p - 'A' + 10);
        else
            return false;
        if (v > (UINT64_MAX - d) / base)
            return false;
        v = v * base + d;
    }
    *out = v;
    return true;
}

unsigned long cmdline_get_ulong(const char *cmdline, const char *key,
                                unsigned long fallback)
{
    char buf[24];
    unsigned long v;
    if (!cmdline_get(cmdline, key, buf, sizeof buf) || !parse_ulong(buf, &v))
        return fallback;
    return v;
}

unsigned long cmdline_get_size(const char *cmdline, const char *key, unsigned long fallback)
{
    char buf[24];
    unsigned long v;
    if (!cmdline_get(cmdline, key, buf, sizeof buf) || !buf[0])
        return fallback;
    size_t n = 0;
    while (buf[n])
        n++;
    unsigned shift = 0;
    switch (buf[n - 1]) {
    case 'K': case 'k': shift = 10; break;
    case 'M': case 'm': shift = 20; break;
    case 'G': case 'g': shift = 30; break;
    default: break;
    }
    if (shift)
        buf[n - 1] = '\0';
    if (!parse_ulong(buf, &v) || v > (UINT64_MAX >> shift))
        return fallback;
    return v << shift;
}
