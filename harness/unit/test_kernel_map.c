/* The guest kernel's page tables (moat/kernel_map.h), walked as the MMU
 * would, and the boot phase breakdown (boot_phases.h) from hostile marks. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include "boot_phases.h"
#include "moat/kernel_map.h"
#include "moat/layout.h"
#include "moat/session_abi.h"

#define RAM   (16ull << 20)
#define PAGE  4096ull

/* Tables live in a fake physical memory: page i at PA TABLE_BASE + i*4K. */
#define TABLE_BASE 0x200000ull
static uint64_t tables[KMAP_PAGES_MAX][512];
static unsigned used, limit = KMAP_PAGES_MAX;

static uint64_t *page(void *ctx, uint64_t *pa)
{
    (void)ctx;
    if (used == limit)
        return NULL;
    memset(tables[used], 0, sizeof tables[used]);
    *pa = TABLE_BASE + used * PAGE;
    return tables[used++];
}

static const uint64_t *table_at(uint64_t pa)
{
    cr_assert(pa >= TABLE_BASE && (pa - TABLE_BASE) / PAGE < used,
              "entry points at 0x%lx, not a table this build made", pa);
    return tables[(pa - TABLE_BASE) / PAGE];
}

/* The leaf entry mapping va (0 when not present) and its page size. */
static uint64_t walk(uint64_t cr3, uint64_t va, uint64_t *size)
{
    const uint64_t *t = table_at(cr3);
    static const unsigned shift[] = { 39, 30, 21, 12 };
    for (unsigned level = 0; level < 4; level++) {
        uint64_t e = t[va >> shift[level] & 511];
        if (!(e & KMAP_PTE_P))
            return 0;
        if (level == 3 || (level > 0 && (e & KMAP_PTE_PS))) {
            *size = 1ull << shift[level];
            cr_assert_eq(e & KMAP_ADDR_MASK & ~(*size - 1), va & ~(*size - 1) & KMAP_ADDR_MASK,
                         "0x%lx is not identity-mapped", va);
            return e;
        }
        t = table_at(e & KMAP_ADDR_MASK);
    }
    return 0;
}

static const struct moat_window_info win[2] = {
    { .iova = MOAT_GPA_DMA_BASE, .size = 4ull << 20 },
    { .iova = MOAT_GPA_DMA_BASE + (1ull << 30), .size = 2ull << 20 },
};

static struct kmap_params params(bool gb)
{
    used = 0;
    limit = KMAP_PAGES_MAX;
    return (struct kmap_params){
        .image = { .text_start = 0x100000, .text_end = 0x108000, .rodata_start = 0x108000,
                   .rodata_end = 0x10a000, .end = 0x160000 },
        .ram_size = RAM, .windows = win, .n_windows = 2, .gb_pages = gb, .page = page,
    };
}

static void check_map(bool gb)
{
    struct kmap_params p = params(gb);
    uint64_t cr3 = 0, sz = 0;
    const char *why = kmap_build(&p, &cr3);
    cr_assert_null(why, "refused: %s", why);
    cr_assert_eq(walk(cr3, 0, &sz), 0, "page 0 is mapped: NULL would not fault");
    uint64_t e = walk(cr3, 0x100000, &sz);
    cr_assert(e && sz == PAGE && !(e & KMAP_PTE_W) && !(e & KMAP_PTE_NX),
              "text is not read+execute in 4 KiB pages (0x%lx)", e);
    e = walk(cr3, 0x109000, &sz);
    cr_assert(e && !(e & KMAP_PTE_W) && (e & KMAP_PTE_NX), "rodata not read-only NX (0x%lx)", e);
    e = walk(cr3, MOAT_GPA_BOOT_INFO, &sz);
    cr_assert(e && !(e & KMAP_PTE_W), "boot info is writable");
    e = walk(cr3, MOAT_GPA_SESSION_TABLE, &sz);
    cr_assert(e && !(e & KMAP_PTE_W), "the session table is writable");
    e = walk(cr3, 0x150000, &sz);
    cr_assert(e && (e & KMAP_PTE_W) && (e & KMAP_PTE_NX) && (e & KMAP_PTE_U),
              "data/bss not RW NX user (0x%lx)", e);
    e = walk(cr3, RAM - PAGE, &sz);
    cr_assert(e && sz == (2ull << 20) && (e & KMAP_PTE_NX), "RAM past the image not 2 MiB NX");
    cr_assert_eq(walk(cr3, RAM, &sz), 0, "memory past RAM is mapped");
    e = walk(cr3, MOAT_GPA_ECAM, &sz);
    cr_assert(e && (e & KMAP_PTE_PCD) && (e & KMAP_PTE_NX), "device space not uncached NX");
    cr_assert_eq(sz, gb ? 1ull << 30 : 2ull << 20);
    for (unsigned w = 0; w < 2; w++) {
        e = walk(cr3, win[w].iova + win[w].size - PAGE, &sz);
        cr_assert(e && (e & KMAP_PTE_W) && (e & KMAP_PTE_NX), "window %u not RW NX", w);
        cr_assert_eq(walk(cr3, win[w].iova + win[w].size, &sz), 0, "past window %u mapped", w);
    }
    uint64_t last = MOAT_GPA_SESSION_BASE + MOAT_SESSION_SLOTS * MOAT_SESSION_SPAN - PAGE;
    e = walk(cr3, last, &sz);
    cr_assert(e && (e & KMAP_PTE_W) && (e & KMAP_PTE_NX), "the last session slot not mapped");
}

Test(kernel_map, wx_map_with_1g_pages) { check_map(true); }
Test(kernel_map, wx_map_with_2m_pages_only) { check_map(false); }

Test(kernel_map, refuses_bad_layouts_and_running_out_of_pages)
{
    uint64_t cr3;
    struct kmap_params p = params(true);
    p.ram_size = RAM + PAGE;
    cr_assert_not_null(kmap_build(&p, &cr3), "RAM not a multiple of 2 MiB accepted");
    p = params(true);
    p.image.text_end = 0x108800;
    cr_assert_not_null(kmap_build(&p, &cr3), "unaligned text accepted");
    p = params(true);
    p.image.end = RAM + (2ull << 20);
    cr_assert_not_null(kmap_build(&p, &cr3), "an image past RAM accepted");
    p = params(true);
    struct moat_window_info bad = { .iova = MOAT_GPA_DMA_BASE + PAGE, .size = 2ull << 20 };
    p.windows = &bad;
    p.n_windows = 1;
    const char *why = kmap_build(&p, &cr3);
    cr_assert(why && strstr(why, "window"), "a misaligned window accepted (%s)", why);
    p = params(false);
    limit = 3;
    why = kmap_build(&p, &cr3);
    cr_assert(why && strstr(why, "no page left"), "ran out of pages silently (%s)", why);
}

/* ---- boot phases ---------------------------------------------------------- */

static struct boot_stamps stamps(void)
{
    /* 1 GHz TSC: 1 tick = 1 ns, so marks read as ns after kernel entry. */
    struct boot_stamps s = { .start_ns = 1000000, .vm_ns = 1100000, .windows_ns = 1200000,
                             .image_ns = 1300000, .vcpu_ns = 1400000, .first_run_ns = 1500000,
                             .ready_ns = 9500000, .tsc_khz = 1000000 };
    s.guest_tsc[MOAT_BOOT_KERNEL] = 50000000;
    s.guest_tsc[MOAT_BOOT_USER] = 50000000 + 1000000;      /* kernel 1 ms */
    s.guest_tsc[MOAT_BOOT_DEVICE] = 50000000 + 3000000;    /* device 2 ms */
    s.guest_tsc[MOAT_BOOT_QUEUES] = 50000000 + 6000000;    /* queues 3 ms */
    s.guest_tsc[MOAT_BOOT_CAPS] = 50000000 + 7500000;      /* caps 1.5 ms */
    return s;
}

Test(boot_phases, every_phase_from_stamps_and_marks)
{
    struct boot_stamps s = stamps();
    struct boot_phases ph;
    boot_phases_compute(&s, &ph);
    cr_assert_eq(ph.total_ns, 8500000);
    const uint64_t want[BOOT_PHASES] = { 100000, 100000, 100000, 100000, 100000,
                                         1000000, 2000000, 3000000, 1500000, 500000 };
    uint64_t sum = 0;
    for (int i = 0; i < BOOT_PHASES; i++) {
        cr_assert(ph.known[i], "phase %s unknown", boot_phase_name(i));
        cr_assert_eq(ph.ns[i], want[i], "phase %s: %lu ns, want %lu", boot_phase_name(i),
                     ph.ns[i], want[i]);
        sum += ph.ns[i];
    }
    cr_assert_eq(sum, ph.total_ns, "phases do not add up to the total");
    char line[256];
    boot_phases_format(&ph, line, sizeof line);
    cr_assert(strstr(line, "vm 0.10") && strstr(line, "queues 3.00") &&
              strstr(line, "announce 0.50"), "format: %s", line);
}

Test(boot_phases, missing_and_hostile_marks_fold_into_the_next_known_phase)
{
    struct boot_stamps s = stamps();
    struct boot_phases ph;
    s.guest_tsc[MOAT_BOOT_DEVICE] = 0;                       /* a driver without it */
    s.guest_tsc[MOAT_BOOT_QUEUES] = 1;                       /* before kernel entry */
    s.guest_tsc[MOAT_BOOT_CAPS] = UINT64_MAX;                /* far past READY */
    boot_phases_compute(&s, &ph);
    cr_assert_eq(ph.marks_refused, 2, "refused %u marks, want 2", ph.marks_refused);
    cr_assert(ph.known[BOOT_PH_KERNEL] && ph.ns[BOOT_PH_KERNEL] == 1000000);
    cr_assert(!ph.known[BOOT_PH_DEVICE] && !ph.known[BOOT_PH_QUEUES] && !ph.known[BOOT_PH_CAPS],
              "a missing or refused mark made its phase known");
    cr_assert_eq(ph.ns[BOOT_PH_ANNOUNCE], 8000000 - 1000000,
                 "the unknown phases' time is not in the next known one");
    char line[256];
    boot_phases_format(&ph, line, sizeof line);
    cr_assert(strstr(line, "device -"), "unknown phase not shown as '-': %s", line);

    memset(s.guest_tsc, 0, sizeof s.guest_tsc);              /* no kernel entry mark */
    s.guest_tsc[MOAT_BOOT_USER] = 5;
    boot_phases_compute(&s, &ph);
    cr_assert_eq(ph.marks_refused, 1);
    cr_assert_eq(ph.ns[BOOT_PH_ANNOUNCE], 8000000, "all guest time should be in announce");
}
