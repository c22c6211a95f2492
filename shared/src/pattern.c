/* A reproducible byte stream (contract in moat/pattern.h): each 8-byte
 * word is SplitMix64's finaliser of (seed, word index), little endian. */
#include "moat/pattern.h"

static uint64_t word(uint64_t seed, uint64_t i)
{
    uint64_t z = seed * 0x9e3779b97f4a7c15ull + i * 0xd1b54a32d192ed03ull + 1;
    z = (z ^ z >> 30) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ z >> 27) * 0x94d049bb133111ebull;
    return z ^ z >> 31;
}

void moat_pattern_fill(uint8_t *dst, uint64_t off, size_t len, uint64_t seed)
{
    uint64_t i = off / 8, w = word(seed, i);
    for (size_t k = 0; k < len; k++) {
        uint64_t o = off + k;
        if (o / 8 != i)
            w = word(seed, i = o / 8);
        dst[k] = (uint8_t)(w >> (o % 8 * 8));
    }
}
