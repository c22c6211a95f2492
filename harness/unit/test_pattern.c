/* moat/pattern.h, the reproducible stream the bare httpd serves and the
 * tests check downloads against: any piece, at any offset and length, is
 * those bytes of the whole stream; seeds give different streams; and the
 * stream itself does not change (a known answer: a server and a test
 * built from different versions would disagree). */
#include <criterion/criterion.h>
#include <string.h>
#include "moat/pattern.h"

Test(pattern, any_piece_is_those_bytes_of_the_whole)
{
    static uint8_t whole[4096], piece[4096];
    moat_pattern_fill(whole, 0, sizeof whole, 7);
    for (unsigned off = 0; off < 72; off++)
        for (unsigned len = 0; len < 200; len++) {
            memset(piece, 0xA5, sizeof piece);
            moat_pattern_fill(piece, off, len, 7);
            cr_assert(memcmp(piece, whole + off, len) == 0, "bytes [%u, +%u) differ", off, len);
            cr_assert_eq(piece[len], 0xA5, "[%u, +%u) wrote past its end", off, len);
        }
}

Test(pattern, seeds_differ_and_the_stream_is_stable)
{
    uint8_t a[16], b[16];
    moat_pattern_fill(a, 0, sizeof a, 1);
    moat_pattern_fill(b, 0, sizeof b, 2);
    cr_assert(memcmp(a, b, sizeof a) != 0, "seeds 1 and 2 gave the same bytes");
    /* The first 16 bytes of seed 1, as the stream has always been. */
    static const uint8_t known[16] = { 0xc1, 0x5c, 0x02, 0x89, 0xec, 0x2d, 0x0a, 0x91,
                                       0x2f, 0x63, 0xf8, 0x0f, 0x18, 0xbf, 0x78, 0x60 };
    cr_assert(memcmp(a, known, sizeof known) == 0,
              "seed 1 starts %02x %02x %02x %02x...: the stream changed", a[0], a[1], a[2], a[3]);
}
