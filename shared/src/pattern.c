/* A reproducible byte stream (contract in moat/pattern.h): each 8-byte
 * word is SplitMix64's finaliser of (seed, word index), little endian.
 * Whole words are stored at once (a server makes megabytes of it). */
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
    size_t k = 0;
    for (; k < len && (off + k) % 8; k++)       /* up to a word boundary */
        dst[k] = (uint8_t)(word(seed, (off + k) / 8) >> ((off + k) % 8 * 8));
    for (; len - k >= 8; k += 8) {
        uint64_t w = word(seed, (off + k) / 8);
        for (unsigned b = 0; b < 8; b++)        /* little endian on every host */
            dst[k + b] = (uint8_t)(w >> (b * 8));
    }
    for (; k < len; k++)
        dst[k] = (uint8_t)(word(seed, (off + k) / 8) >> ((off + k) % 8 * 8));
}
