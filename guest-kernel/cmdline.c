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

unsigned long cmdline_get_ulong(const char *cmdline, const char *key,
                                unsigned long fallback)
{
    char buf[24];
    if (!cmdline_get(cmdline, key, buf, sizeof buf) || !buf[0])
        return fallback;
    unsigned long v = 0;
    for (const char *p = buf; *p; p++) {
        if (*p < '0' || *p > '9')
            return fallback;
        unsigned long d = (unsigned long)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return fallback;
        v = v * 10 + d;
    }
    return v;
}
