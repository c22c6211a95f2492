/* Device options (contract in devopts.h). */
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
