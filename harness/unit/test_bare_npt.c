/* The svm backend's nested page tables (guest-kernel/bare/npt.c), with
 * host memory for "physical" (bare_fake.h's palloc): one-to-one leaves
 * with exactly the rights asked and the user bit nested walks need, at
 * addresses that take every level (above 4 GiB too), unmapping that
 * clears only what it names, and a clean refusal when table memory runs
 * out. */
#include <criterion/criterion.h>
#include "bare_fake.h"
#include "../../guest-kernel/bare/npt.h"

#define P 0x1ull
#define W 0x2ull
#define U 0x4ull
#define ADDR 0x000FFFFFFFFFF000ull

Test(bare_npt, leaves_map_one_to_one_with_the_rights_asked)
{
    uint64_t root = npt_new();
    cr_assert_neq(root, 0);
    cr_assert(npt_map(root, 0x200000, 3 * 4096, NPT_W | NPT_NX));
    cr_assert(npt_map(root, 0x400000, 4096, 0));
    for (uint64_t pa = 0x200000; pa < 0x203000; pa += 4096) {
        uint64_t e = npt_entry(root, pa);
        cr_assert_eq(e & ADDR, pa, "GPA 0x%lx maps 0x%lx, not itself", pa, e & ADDR);
        cr_assert_eq(e & (P | W | U | NPT_NX), P | W | U | NPT_NX, "rights of 0x%lx: 0x%lx", pa, e);
    }
    uint64_t ro = npt_entry(root, 0x400000);
    cr_assert_eq(ro & (P | W | U | NPT_NX), P | U, "a read-only executable page: 0x%lx", ro);
    cr_assert_eq(npt_entry(root, 0x203000), 0, "the page after a run is not mapped");
    cr_assert_eq(npt_entry(root, 0x1ff000), 0, "the page before a run is not mapped");
    cr_assert_eq(npt_pages(root), 4);
}

Test(bare_npt, every_level_and_high_addresses)
{
    uint64_t root = npt_new();
    /* Across a 1 GiB boundary, and past 4 GiB and 512 GiB (other PML4 and
     * PDPT slots). */
    cr_assert(npt_map(root, (1ull << 30) - 4096, 2 * 4096, NPT_W));
    cr_assert(npt_map(root, 5ull << 30, 4096, NPT_W));
    cr_assert(npt_map(root, (513ull << 30) + 0x5000, 4096, 0));
    cr_assert_eq(npt_entry(root, (1ull << 30) - 4096) & ADDR, (1ull << 30) - 4096);
    cr_assert_eq(npt_entry(root, 1ull << 30) & ADDR, 1ull << 30);
    cr_assert_eq(npt_entry(root, 5ull << 30) & ADDR, 5ull << 30);
    cr_assert_eq(npt_entry(root, (513ull << 30) + 0x5000) & ADDR, (513ull << 30) + 0x5000);
    cr_assert_eq(npt_entry(root, 513ull << 30), 0);
    cr_assert_eq(npt_pages(root), 4);
    /* A 2 MiB window is 512 leaves. */
    cr_assert(npt_map(root, 0x60000000, 2ull << 20, NPT_W | NPT_NX));
    cr_assert_eq(npt_pages(root), 4 + 512);
}

Test(bare_npt, unmapping_clears_only_what_it_names)
{
    uint64_t root = npt_new();
    cr_assert(npt_map(root, 0x800000, 4 * 4096, NPT_W));
    npt_unmap(root, 0x801000, 2 * 4096);
    cr_assert_neq(npt_entry(root, 0x800000), 0);
    cr_assert_eq(npt_entry(root, 0x801000), 0);
    cr_assert_eq(npt_entry(root, 0x802000), 0);
    cr_assert_neq(npt_entry(root, 0x803000), 0);
    npt_unmap(root, 0x7000000000ull, 4096);     /* never mapped, no tables there: harmless */
    cr_assert_eq(npt_pages(root), 2);
    cr_assert(npt_map(root, 0x801000, 4096, 0), "a page unmapped can be mapped again");
    cr_assert_eq(npt_entry(root, 0x801000) & (P | W), P);
}

Test(bare_npt, out_of_table_memory_is_a_refusal_not_a_crash)
{
    uint64_t root = npt_new();
    bool refused = false;
    /* Each page in another 2 MiB region needs a table of its own: the
     * fake palloc runs out after FAKE_ALLOCS_MAX allocations. */
    for (uint64_t i = 0; i < 2 * FAKE_ALLOCS_MAX && !refused; i++)
        refused = !npt_map(root, i << 21, 4096, NPT_W);
    cr_assert(refused, "npt_map never said it ran out");
    cr_assert_gt(npt_pages(root), 0, "what was mapped before stays mapped");
}
