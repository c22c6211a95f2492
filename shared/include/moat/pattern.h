/*
 * moat/pattern.h — a reproducible stream of bytes, any part of it made
 * on its own: byte o of the stream of seed is a function of (seed, o)
 * alone. The bare httpd app domain serves it; the tests make the same
 * bytes to check what a client received. Freestanding.
 */
#ifndef MOAT_PATTERN_H
#define MOAT_PATTERN_H

#include <stddef.h>
#include <stdint.h>

/* Bytes [off, off + len) of the stream of seed, into dst. */
void moat_pattern_fill(uint8_t *dst, uint64_t off, size_t len, uint64_t seed);

#endif /* MOAT_PATTERN_H */
