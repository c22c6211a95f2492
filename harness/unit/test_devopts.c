/* devopts: a device's key=value options (devmodel/devopts.h). */
#include <criterion/criterion.h>
#include <string.h>
#include "devopts.h"

static char err[256];
static const char *const known[] = { "image", "lba", "ro", NULL };

Test(devopts, known_keys_pass_and_unknown_ones_are_named)
{
    cr_assert(devopts_check("nvme", "image=/x.img:lba=4096:ro", known, err, sizeof err), "%s", err);
    cr_assert(devopts_check("nvme", "", known, err, sizeof err), "empty options refused: %s", err);
    cr_assert_not(devopts_check("nvme", "image=a:color=red", known, err, sizeof err),
                  "an unknown key passed");
    cr_assert(strstr(err, "unknown option 'color'") && strstr(err, "image lba ro"),
              "error does not name the key and the known ones: %s", err);
}

Test(devopts, values_are_found_bare_keys_are_empty)
{
    char v[64];
    cr_assert(devopts_get("image=/a/b.img:ro", "image", v, sizeof v, err, sizeof err));
    cr_assert_str_eq(v, "/a/b.img");
    cr_assert(devopts_get("image=/a/b.img:ro", "ro", v, sizeof v, err, sizeof err));
    cr_assert_str_eq(v, "", "a bare key reads as empty");
    cr_assert_not(devopts_get("image=/a/b.img:ro", "lba", v, sizeof v, err, sizeof err));
    cr_assert_str_eq(err, "", "an absent key is not an error");
    cr_assert_not(devopts_get("lbax=1", "lba", v, sizeof v, err, sizeof err),
                  "a key prefix matched another key");
    char small[4];
    cr_assert_not(devopts_get("image=/long/path", "image", small, sizeof small, err, sizeof err));
    cr_assert(strstr(err, "longer than 3 bytes"), "too-long value: %s", err);
}

Test(devopts, numbers_with_suffixes_and_ranges)
{
    uint64_t n;
    cr_assert(devopts_u64("nvme", "lba=4096", "lba", 512, 512, 4096, &n, err, sizeof err), "%s", err);
    cr_assert_eq(n, 4096);
    cr_assert(devopts_u64("nvme", "", "lba", 512, 512, 4096, &n, err, sizeof err), "%s", err);
    cr_assert_eq(n, 512, "fallback not used for an absent key");
    cr_assert(devopts_u64("nvme", "size=2M", "size", 0, 0, ~0ull, &n, err, sizeof err), "%s", err);
    cr_assert_eq(n, 2ull << 20);
    cr_assert(devopts_u64("nvme", "q=0x10", "q", 0, 0, 64, &n, err, sizeof err), "%s", err);
    cr_assert_eq(n, 16);
    const char *bad[] = { "lba=8192", "lba=256", "lba=abc", "lba=", "lba=-1", "lba=4k1",
                          "lba=99999999999999999999" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_not(devopts_u64("nvme", bad[i], "lba", 512, 512, 4096, &n, err, sizeof err),
                      "%s accepted", bad[i]);
        cr_assert(strstr(err, "dev=nvme: option lba="), "error for %s: %s", bad[i], err);
    }
    cr_assert_not(devopts_u64("nvme", "s=17179869184G", "s", 0, 0, ~0ull, &n, err, sizeof err),
                  "a suffix overflow was accepted");
}
