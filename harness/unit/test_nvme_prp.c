/* NVMe PRP walker (devmodel/nvme_prp.c), pure: PRP1 offsets, PRP2 as data
 * or list pointer, list chaining across pages, merging, and every error
 * kind (bad offsets, unreadable lists, too many segments, wrapping
 * addresses). PRP list pages live in a small fake memory. */
#include <criterion/criterion.h>
#include <string.h>
#include "nvme_prp.h"

#define PG     4096u
#define LISTS  0x100000ull      /* fake memory: 4 list pages from here */
#define NSEG   64u

static uint64_t lists[4][PG / 8];
static int reads;               /* callback calls */
static uint64_t refuse_at = ~0ull;  /* a list page the "broker" refuses */

static bool fake_read(void *ctx, uint64_t iova, uint64_t *out, uint32_t n)
{
    (void)ctx;
    reads++;
    uint64_t page = (iova - LISTS) / PG, off = iova % PG;
    cr_assert(iova >= LISTS && page < 4, "walker read outside the list pages: %#lx",
              (unsigned long)iova);
    cr_assert(n >= 1 && off + (uint64_t)n * 8 <= PG, "read of %u entries at %#lx crosses a page",
              n, (unsigned long)iova);
    if (iova - off == refuse_at)
        return false;
    memcpy(out, &lists[page][off / 8], (size_t)n * 8);
    return true;
}

static struct nvme_prp_seg seg[600];
static unsigned nseg;

static enum nvme_prp_result walk(uint64_t prp1, uint64_t prp2, uint64_t len, unsigned max)
{
    struct nvme_prp_req r = { .prp1 = prp1, .prp2 = prp2, .len = len, .page = PG };
    memset(seg, 0, sizeof seg);
    return nvme_prp_walk(&r, fake_read, NULL, seg, max, &nseg);
}

static void expect(enum nvme_prp_result got, enum nvme_prp_result want, const char *what)
{
    cr_assert_eq(got, want, "%s: walker said '%s', want '%s'", what, nvme_prp_result_name(got),
                 nvme_prp_result_name(want));
}

static void expect_seg(unsigned i, uint64_t iova, uint64_t len)
{
    cr_assert_gt(nseg, i, "only %u segments, want segment %u", nseg, i);
    cr_assert(seg[i].iova == iova && seg[i].len == len, "segment %u is %#lx+%#lx, want %#lx+%#lx",
              i, (unsigned long)seg[i].iova, (unsigned long)seg[i].len, (unsigned long)iova,
              (unsigned long)len);
}

static void setup(void)
{
    memset(lists, 0, sizeof lists);
    reads = 0;
    refuse_at = ~0ull;
}

TestSuite(nvme_prp, .init = setup);

Test(nvme_prp, prp1_with_offset_inside_one_page)
{
    expect(walk(0x10200, 0xDEAD, 0xE00, NSEG), NVME_PRP_OK, "0xE00 bytes from offset 0x200");
    cr_assert_eq(nseg, 1, "%u segments, want 1", nseg);
    expect_seg(0, 0x10200, 0xE00);
    cr_assert_eq(reads, 0, "no list may be read when PRP2 is unused");
}

Test(nvme_prp, prp1_offset_spills_into_prp2)
{
    expect(walk(0x10800, 0x30000, PG, NSEG), NVME_PRP_OK, "one page from offset 0x800");
    cr_assert_eq(nseg, 2, "%u segments, want 2", nseg);
    expect_seg(0, 0x10800, 0x800);
    expect_seg(1, 0x30000, 0x800);
}

Test(nvme_prp, two_pages_via_prp2_and_merging)
{
    expect(walk(0x10000, 0x30000, 2 * PG, NSEG), NVME_PRP_OK, "two separate pages");
    cr_assert_eq(nseg, 2, "%u segments, want 2", nseg);
    expect_seg(1, 0x30000, PG);
    expect(walk(0x10000, 0x11000, 2 * PG, NSEG), NVME_PRP_OK, "two adjacent pages");
    cr_assert_eq(nseg, 1, "adjacent pages must merge: %u segments", nseg);
    expect_seg(0, 0x10000, 2 * PG);
}

Test(nvme_prp, bad_offsets_are_refused)
{
    expect(walk(0x10002, 0, 512, NSEG), NVME_PRP_BAD_OFFSET, "PRP1 not dword aligned");
    expect(walk(0x10000, 0x30010, 2 * PG, NSEG), NVME_PRP_BAD_OFFSET, "PRP2 data with offset");
    expect(walk(0x10000, LISTS + 4, 3 * PG, NSEG), NVME_PRP_BAD_OFFSET,
           "list pointer not qword aligned");
    lists[0][0] = 0x30000;
    lists[0][1] = 0x40100;
    expect(walk(0x10000, LISTS, 3 * PG, NSEG), NVME_PRP_BAD_OFFSET, "list entry with offset");
    expect(walk(0x10004, 0, 8, NSEG), NVME_PRP_OK, "a dword-aligned PRP1 is fine");
}

Test(nvme_prp, list_with_offset_reads_only_what_is_needed)
{
    lists[0][32] = 0x30000;
    lists[0][33] = 0x50000;
    expect(walk(0x10000, LISTS + 256, 2 * PG + 100, NSEG), NVME_PRP_OK, "list at offset 256");
    cr_assert_eq(nseg, 3, "%u segments, want 3", nseg);
    expect_seg(0, 0x10000, PG);
    expect_seg(1, 0x30000, PG);
    expect_seg(2, 0x50000, 100);
    cr_assert_eq(reads, 1, "%d list reads, want 1", reads);
}

Test(nvme_prp, list_chains_across_two_list_pages)
{
    /* The first list starts 16 bytes before its page end: one data entry,
     * then a pointer to the second list page, which holds three more. */
    lists[0][510] = 0x30000;
    lists[0][511] = LISTS + PG;
    lists[1][0] = 0x50000;
    lists[1][1] = 0x51000;
    lists[1][2] = 0x70000;
    expect(walk(0x10000, LISTS + PG - 16, 5 * PG, NSEG), NVME_PRP_OK, "chained list");
    cr_assert_eq(nseg, 4, "%u segments, want 4 (two pages merge)", nseg);
    expect_seg(1, 0x30000, PG);
    expect_seg(2, 0x50000, 2 * PG);
    expect_seg(3, 0x70000, PG);
    cr_assert_eq(reads, 2, "%d list reads, want 2", reads);

    /* Exactly as many entries as slots: the last slot is data, no chain. */
    lists[0][511] = 0x90000;
    expect(walk(0x10000, LISTS + PG - 16, 3 * PG, NSEG), NVME_PRP_OK, "list that just fits");
    expect_seg(2, 0x90000, PG);

    lists[0][511] = LISTS + PG + 8;
    expect(walk(0x10000, LISTS + PG - 16, 5 * PG, NSEG), NVME_PRP_BAD_OFFSET,
           "chain pointer with an offset");
}

Test(nvme_prp, full_list_page_then_chain)
{
    for (unsigned i = 0; i < 511; i++)
        lists[2][i] = 0x1000000 + (uint64_t)i * 2 * PG;     /* never adjacent */
    lists[2][511] = LISTS + 3 * PG;
    lists[3][0] = 0x5000000;
    lists[3][1] = 0x5001000;
    expect(walk(0x10000, LISTS + 2 * PG, 514 * PG, 600), NVME_PRP_OK, "511 entries + chain + 2");
    cr_assert_eq(nseg, 513, "%u segments, want 513", nseg);
    expect_seg(511, 0x1000000 + 510ull * 2 * PG, PG);
    expect_seg(512, 0x5000000, 2 * PG);
    cr_assert_eq(reads, 2, "%d list reads, want 2", reads);
}

Test(nvme_prp, unreadable_list_is_reported)
{
    refuse_at = LISTS;
    expect(walk(0x10000, LISTS + 64, 3 * PG, NSEG), NVME_PRP_LIST_REFUSED, "list page refused");
    lists[0][511] = LISTS + PG;
    refuse_at = LISTS + PG;
    lists[0][510] = 0x30000;
    expect(walk(0x10000, LISTS + PG - 16, 4 * PG, NSEG), NVME_PRP_LIST_REFUSED,
           "chained list page refused");
    struct nvme_prp_req r = { .prp1 = 0x10000, .prp2 = LISTS, .len = 3 * PG, .page = PG };
    expect(nvme_prp_walk(&r, NULL, NULL, seg, NSEG, &nseg), NVME_PRP_LIST_REFUSED,
           "a list needed but no reader");
}

Test(nvme_prp, wrapping_addresses_overflow)
{
    expect(walk(0xFFFFFFFFFFFFF000ull, 0, PG, NSEG), NVME_PRP_OVERFLOW,
           "PRP1 page ending at 2^64");
    expect(walk(0x10000, 0xFFFFFFFFFFFFF000ull, 2 * PG, NSEG), NVME_PRP_OVERFLOW,
           "PRP2 page ending at 2^64");
    lists[0][0] = 0xFFFFFFFFFFFFF000ull;
    lists[0][1] = 0x30000;
    expect(walk(0x10000, LISTS, 3 * PG, NSEG), NVME_PRP_OVERFLOW, "list entry ending at 2^64");
    expect(walk(0xFFFFFFFFFFFFE000ull, 0, 100, NSEG), NVME_PRP_OK, "high but not wrapping");
}

Test(nvme_prp, too_many_segments_and_edge_arguments)
{
    lists[0][0] = 0x30000;
    lists[0][1] = 0x50000;
    expect(walk(0x10000, LISTS, 3 * PG, 2), NVME_PRP_TOO_MANY, "3 scattered pages into 2 slots");
    lists[0][1] = 0x31000;
    expect(walk(0x10000, LISTS, 3 * PG, 2), NVME_PRP_OK, "3 pages merging into 2 segments");
    expect(walk(0x10000, 0, 0, NSEG), NVME_PRP_OK, "zero-length transfer");
    cr_assert_eq(nseg, 0, "zero length gave %u segments", nseg);
    struct nvme_prp_req r = { .prp1 = 0x10000, .len = 512, .page = 3000 };
    expect(nvme_prp_walk(&r, fake_read, NULL, seg, NSEG, &nseg), NVME_PRP_BAD_ARGS,
           "page size 3000");
}
