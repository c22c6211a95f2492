/* Pure guest-kernel code compiled for the host: formatting and arguments. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>
#include "gk/cmdline.h"
#include "gk/console.h"

Test(kvsnprintf, conversions)
{
    char b[128];
    ksnprintf(b, sizeof b, "%d|%i|%u|%x|%X|%s|%c|%%", -42, 7, 42u, 0xbeefu, 0xbeefu, "str", 'z');
    cr_assert_str_eq(b, "-42|7|42|beef|BEEF|str|z|%");
    ksnprintf(b, sizeof b, "%lu %lx %ld %zu", (unsigned long)UINT64_MAX, 0x1234567890abcdefUL,
              (long)INT64_MIN, (size_t)9);
    cr_assert_str_eq(b, "18446744073709551615 1234567890abcdef -9223372036854775808 9");
    ksnprintf(b, sizeof b, "[%08lx] [%4d] [%04d] [%5s]", 0xabcUL, 42, -5, "ab");
    cr_assert_str_eq(b, "[00000abc] [  42] [-005] [   ab]", "got %s", b);
    ksnprintf(b, sizeof b, "%p", (void *)0x1000);
    cr_assert_str_eq(b, "0x0000000000001000");
    const char *volatile none = NULL;   /* hidden from -Wformat-overflow */
    ksnprintf(b, sizeof b, "%s", none);
    cr_assert_str_eq(b, "(null)");
}

Test(kvsnprintf, truncates_and_reports_length)
{
    char b[8];
    memset(b, 'X', sizeof b);
    int n = ksnprintf(b, sizeof b, "hello world %d", 123);
    cr_assert_eq(n, 15, "return value is the untruncated length");
    cr_assert_str_eq(b, "hello w");
    cr_assert_eq(ksnprintf(b, 0, "abc"), 3, "size 0 writes nothing");
    cr_assert_eq(b[0], 'h');
}

Test(cmdline, lookups)
{
    char v[16];
    const char *cl = "fault=divzero  when=boot flag msi=12 x=";
    cr_assert(cmdline_get(cl, "fault", v, sizeof v));
    cr_assert_str_eq(v, "divzero");
    cr_assert(cmdline_get(cl, "when", v, sizeof v));
    cr_assert_str_eq(v, "boot");
    cr_assert(cmdline_get(cl, "flag", v, sizeof v));
    cr_assert_str_eq(v, "", "a bare word has an empty value");
    cr_assert(cmdline_get(cl, "x", v, sizeof v));
    cr_assert_str_eq(v, "");
    cr_assert_not(cmdline_get(cl, "fa", v, sizeof v), "a prefix is not a key");
    cr_assert_not(cmdline_get(cl, "missing", v, sizeof v));
    cr_assert_not(cmdline_get(cl, "fault", v, 0));
    char small[4];
    cr_assert(cmdline_get(cl, "fault", small, sizeof small));
    cr_assert_str_eq(small, "div", "values truncate to the buffer");
}

Test(cmdline, numbers)
{
    cr_assert_eq(cmdline_get_ulong("msi=12", "msi", 5), 12);
    cr_assert_eq(cmdline_get_ulong("msi=", "msi", 5), 5);
    cr_assert_eq(cmdline_get_ulong("msi=1x", "msi", 5), 5);
    cr_assert_eq(cmdline_get_ulong("msi=99999999999999999999999", "msi", 5), 5, "overflow");
    cr_assert_eq(cmdline_get_ulong("", "msi", 5), 5);
    cr_assert_eq(cmdline_get_ulong("iova=0x1F0000000", "iova", 5), 0x1F0000000ul, "hex");
    cr_assert_eq(cmdline_get_ulong("iova=0x", "iova", 5), 5, "bare 0x");
    cr_assert_eq(cmdline_get_ulong("iova=0xg", "iova", 5), 5, "bad hex digit");
    cr_assert_eq(cmdline_get_size("size=64M", "size", 5), 64ul << 20, "M suffix");
    cr_assert_eq(cmdline_get_size("size=4k", "size", 5), 4096ul, "k suffix");
    cr_assert_eq(cmdline_get_size("size=1G", "size", 5), 1ul << 30, "G suffix");
    cr_assert_eq(cmdline_get_size("size=512", "size", 5), 512ul, "no suffix");
    cr_assert_eq(cmdline_get_size("size=M", "size", 5), 5ul, "suffix without digits");
    cr_assert_eq(cmdline_get_size("size=99999999999999G", "size", 5), 5ul, "overflow by suffix");
    cr_assert_eq(cmdline_get_size("size=4T", "size", 5), 5ul, "unknown suffix");
    cr_assert_eq(cmdline_get_ulong("iova=0x10000000000000000", "iova", 5), 5, "hex overflow");
}
