/*
 * gk/cmdline.h — domain arguments: space-separated key=value words.
 * Pure (unit-tested on the host).
 */
#ifndef GK_CMDLINE_H
#define GK_CMDLINE_H

#include <stdbool.h>
#include <stddef.h>

/* Copy the value of key into out (NUL-terminated, truncated to out_len-1).
 * Returns false when key is absent or out_len is 0. A bare word "key"
 * yields the empty string. */
bool cmdline_get(const char *cmdline, const char *key, char *out, size_t out_len);
/* Parse a decimal or 0x-hex unsigned value of key; returns fallback if
 * absent, malformed or above 64 bits. */
unsigned long cmdline_get_ulong(const char *cmdline, const char *key,
                                unsigned long fallback);
/* Like cmdline_get_ulong, with an optional K, M or G suffix (powers of
 * 1024): "64M" -> 67108864. */
unsigned long cmdline_get_size(const char *cmdline, const char *key, unsigned long fallback);

#endif /* GK_CMDLINE_H */
