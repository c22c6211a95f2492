/* Device options (contract in devopts.h). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "devopts.h"

/* The next word of opts at *p: key [key_len], value [val, val_len]. */
static bool next_word(const char **p, const char **key, size_t *key_len, const char **val,
                      size_t *val_len)
{
    const char *s = *p;
    while (*s == ':')
        s++;
    if (!*s)
        return false;
    size_t n = strcspn(s, ":");
    const char *eq = memchr(s, '=', n);
    *key = s;
    *key_len = eq ? (size_t)(eq - s) : n;
    *val = eq ? eq + 1 : s + n;
    *val_len = eq ? n - *key_len - 1 : 0;
    *p = s + n;
    return true;
}

bool devopts_check(const char *kind, const char *opts, const char *const *known,
                   char *err, size_t errlen)
{
    const char *p = opts ? opts : "", *key, *val;
    size_t kl, vl;
    while (next_word(&p, &key, &kl, &val, &vl)) {
        bool ok = false;
        for (size_t i = 0; known && known[i] && !ok; i++)
            ok = strlen(known[i]) == kl && !memcmp(known[i], key, kl);
        if (!ok) {
            char list[160] = "";
            for (size_t i = 0, n = 0; known && known[i] && n < sizeof list; i++)
                n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", i ? " " : "", known[i]);
            snprintf(err, errlen, "dev=%s: unknown option '%.*s' (known: %s)", kind, (int)kl, key,
                     list[0] ? list : "none");
            return false;
        }
    }
    return true;
}

bool devopts_get(const char *opts, const char *key, char *out, size_t len, char *err,
                 size_t errlen)
{
    const char *p = opts ? opts : "", *k, *val;
    size_t kl, vl;
    if (err && errlen)
        err[0] = '\0';
    while (next_word(&p, &k, &kl, &val, &vl)) {
        if (kl != strlen(key) || memcmp(k, key, kl))
            continue;
        if (vl >= len) {
            snprintf(err, errlen, "option %s: value longer than %zu bytes", key, len - 1);
            return false;
        }
        memcpy(out, val, vl);
        out[vl] = '\0';
        return true;
    }
    return false;
}

bool devopts_u64(const char *kind, const char *opts, const char *key, uint64_t fallback,
                 uint64_t min, uint64_t max, uint64_t *out, char *err, size_t errlen)
{
    char v[32];
    if (!devopts_get(opts, key, v, sizeof v, err, errlen)) {
        if (err[0])
            return false;
        *out = fallback;
        return true;
    }
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 0);
    unsigned shift = 0;
    if (*end == 'K' || *end == 'k')
        shift = 10;
    else if (*end == 'M' || *end == 'm')
        shift = 20;
    else if (*end == 'G' || *end == 'g')
        shift = 30;
    if (shift)
        end++;
    if (errno || end == v || *end || v[0] == '-' || (shift && n > (~0ull >> shift)) ||
        (n << shift) < min || (n << shift) > max) {
        snprintf(err, errlen, "dev=%s: option %s=%s: give a number from %llu to %llu "
                 "(K/M/G suffixes allowed)", kind, key, v, (unsigned long long)min,
                 (unsigned long long)max);
        return false;
    }
    *out = (uint64_t)n << shift;
    return true;
}

static int hexval(char c)
{
    return isdigit((unsigned char)c) ? c - '0'
           : isxdigit((unsigned char)c) ? tolower((unsigned char)c) - 'a' + 10 : -1;
}

/* "52-54-00-12-34-56" or "525400123456". */
static bool parse_mac(const char *s, uint8_t mac[6])
{
    size_t len = strlen(s);
    bool dashed = len == 17;
    if (len != 12 && !dashed)
        return false;
    for (unsigned i = 0; i < 6; i++) {
        const char *p = s + (dashed ? 3u * i : 2u * i);
        int hi = hexval(p[0]), lo = hexval(p[1]);
        if (hi < 0 || lo < 0 || (dashed && i < 5 && p[2] != '-'))
            return false;
        mac[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

bool devopts_mac(const char *kind, const char *opts, uint8_t mac[6], bool *set,
                 char *err, size_t errlen)
{
    char val[32];
    uint8_t m[6];
    *set = false;
    if (!devopts_get(opts, "mac", val, sizeof val, err, errlen))
        return !err[0];
    if (!parse_mac(val, m) || (m[0] & 1u) || !(m[0] | m[1] | m[2] | m[3] | m[4] | m[5])) {
        snprintf(err, errlen, "dev=%s: option mac=%s: give a unicast MAC as "
                 "52-54-00-12-34-56 or 525400123456 (':' separates options)", kind, val);
        return false;
    }
    memcpy(mac, m, sizeof m);
    *set = true;
    return true;
}

bool devopts_link(const char *kind, const char *opts, bool fallback, bool *up,
                  char *err, size_t errlen)
{
    char val[32];
    *up = fallback;
    if (!devopts_get(opts, "link", val, sizeof val, err, errlen))
        return !err[0];
    if (strcmp(val, "up") && strcmp(val, "down")) {
        snprintf(err, errlen, "dev=%s: option link=%s: give up or down", kind, val);
        return false;
    }
    *up = !strcmp(val, "up");
    return true;
}

void devopts_default_mac(const char *port, uint8_t mac[6])
{
    uint32_t h = 2166136261u;
    for (const char *p = port; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    mac[0] = 0x52;
    mac[1] = 0x54;
    mac[2] = 0x00;
    mac[3] = (uint8_t)(h >> 16);
    mac[4] = (uint8_t)(h >> 8);
    mac[5] = (uint8_t)h;
}
