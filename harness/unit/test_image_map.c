/* image_map: reads through the mapping match the file, stay inside it,
 * see writes made through the fd, and survive the file shrinking under
 * them (SIGBUS caught and counted); a SIGBUS that is not ours still
 * reaches the handler installed before. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "image_map.h"

#define SIZE (1u << 20)

static char path[] = "/tmp/moat-image-map-XXXXXX";
static int fd = -1;

static void make_image(void)
{
    fd = mkstemp(path);
    cr_assert(fd >= 0, "cannot create a temp image");
    uint8_t *b = malloc(SIZE);
    cr_assert(b);
    for (uint32_t i = 0; i < SIZE; i++)
        b[i] = (uint8_t)(i * 31u + (i >> 12));
    cr_assert_eq(pwrite(fd, b, SIZE, 0), (ssize_t)SIZE, "cannot fill the image");
    free(b);
}

static void cleanup(void)
{
    if (fd >= 0)
        close(fd);
    unlink(path);
}

TestSuite(image_map, .init = make_image, .fini = cleanup);

static void expect_file(const uint8_t *got, uint64_t off, size_t len, const char *what)
{
    uint8_t *want = malloc(len);
    cr_assert(want && pread(fd, want, len, (off_t)off) == (ssize_t)len);
    cr_assert(memcmp(got, want, len) == 0, "%s: the mapped read differs from pread", what);
    free(want);
}

Test(image_map, readv_matches_pread_across_buffers)
{
    struct image_map m;
    cr_assert(image_map_open(&m, fd, SIZE), "cannot map a 1 MiB image");
    uint8_t a[100], b[4096], c[7];
    struct iovec iov[3] = { { a, sizeof a }, { b, sizeof b }, { c, sizeof c } };
    uint64_t off = SIZE - sizeof a - sizeof b - sizeof c;   /* ends exactly at the end */
    cr_assert(image_map_readv(&m, iov, 3, off), "a read ending at the last byte was refused");
    expect_file(a, off, sizeof a, "first buffer");
    expect_file(b, off + sizeof a, sizeof b, "second buffer");
    expect_file(c, off + sizeof a + sizeof b, sizeof c, "third buffer");
    image_map_close(&m);
    cr_assert_null(m.base, "close must forget the mapping");
}

Test(image_map, reads_outside_the_mapping_are_refused)
{
    struct image_map m;
    cr_assert(image_map_open(&m, fd, SIZE));
    uint8_t b[16];
    struct iovec iov = { b, sizeof b };
    cr_assert_not(image_map_readv(&m, &iov, 1, SIZE - 8), "a read past the end was accepted");
    cr_assert_not(image_map_readv(&m, &iov, 1, UINT64_MAX - 4), "an overflowing offset was accepted");
    struct image_map none = { 0 };
    cr_assert_not(image_map_readv(&none, &iov, 1, 0), "a read of an unmapped image was accepted");
    image_map_close(&m);
}

Test(image_map, writes_through_the_fd_are_seen_at_once)
{
    struct image_map m;
    cr_assert(image_map_open(&m, fd, SIZE));
    const char msg[] = "written with pwrite";
    cr_assert_eq(pwrite(fd, msg, sizeof msg, 12345), (ssize_t)sizeof msg);
    char got[sizeof msg];
    struct iovec iov = { got, sizeof got };
    cr_assert(image_map_readv(&m, &iov, 1, 12345));
    cr_assert_str_eq(got, msg, "the mapping must share the page cache with the fd");
    image_map_close(&m);
}

Test(image_map, a_shrunk_file_gives_an_error_not_a_crash)
{
    struct image_map m;
    cr_assert(image_map_open(&m, fd, SIZE));
    uint64_t before = image_map_faults();
    cr_assert_eq(ftruncate(fd, SIZE / 2), 0, "cannot shrink the image");
    uint8_t b[4096];
    struct iovec iov = { b, sizeof b };
    cr_assert_not(image_map_readv(&m, &iov, 1, SIZE - sizeof b),
                  "a read of the range the file lost must fail");
    cr_assert_eq(image_map_faults(), before + 1, "the SIGBUS must be counted once");
    cr_assert(image_map_readv(&m, &iov, 1, 0), "the range still in the file must stay readable");
    expect_file(b, 0, sizeof b, "after a caught SIGBUS");
    cr_assert_not(image_map_readv(&m, &iov, 1, SIZE - sizeof b), "a second read of the lost range");
    cr_assert_eq(image_map_faults(), before + 2, "SIGBUS must stay catchable after the first");
    image_map_close(&m);
}

static volatile sig_atomic_t prior_handler_ran;
static void prior_handler(int sig)
{
    (void)sig;
    prior_handler_ran = 1;
}

Test(image_map, a_sigbus_that_is_not_ours_reaches_the_prior_handler)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = prior_handler;
    sigemptyset(&sa.sa_mask);
    cr_assert_eq(sigaction(SIGBUS, &sa, NULL), 0);
    struct image_map m;
    cr_assert(image_map_open(&m, fd, SIZE));    /* installs ours over it */
    raise(SIGBUS);
    cr_assert(prior_handler_ran, "a SIGBUS outside image_map_readv was swallowed");
    image_map_close(&m);
}
