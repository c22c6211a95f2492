/* The guest kernel's page tables (contract in moat/kernel_map.h). */
#include "moat/kernel_map.h"
#include "moat/layout.h"
#include "moat/session_abi.h"

#define PAGE  4096ull
#define LARGE (2ull << 20)
#define GIB   (1ull << 30)
#define TABLE (KMAP_PTE_P | KMAP_PTE_W | KMAP_PTE_U)
#define DATA  (KMAP_PTE_P | KMAP_PTE_W | KMAP_PTE_U | KMAP_PTE_NX)
#define RO    (KMAP_PTE_P | KMAP_PTE_U | KMAP_PTE_NX)
#define TEXT  (KMAP_PTE_P | KMAP_PTE_U)

/* Each table entry holds a physical address; the builder writes through
 * the pointer the allocator gave (the same for a kernel building its own
 * map, different for a host loader), so it remembers both per table. */
struct table_ref {
    uint64_t pa;
    uint64_t *w;
};

struct builder {
    const struct kmap_params *p;
    uint64_t *pml4;
    const char *err;
    struct table_ref made[KMAP_PAGES_MAX];
    unsigned n_made;
};

static uint64_t *writer_of(const struct builder *b, uint64_t pa)
{
    for (unsigned i = 0; i < b->n_made; i++)
        if (b->made[i].pa == pa)
            return b->made[i].w;
    return 0;
}

static uint64_t *new_table(struct builder *b, uint64_t *pa)
{
    if (b->n_made == KMAP_PAGES_MAX) {
        b->err = "more page-table pages than KMAP_PAGES_MAX";
        return 0;
    }
    uint64_t *w = b->p->page(b->p->ctx, pa);
    if (!w || *pa % PAGE) {
        b->err = "no page left for a page table";
        return 0;
    }
    b->made[b->n_made++] = (struct table_ref){ *pa, w };
    return w;
}

/* The table below entry idx of table t, made if absent. */
static uint64_t *next_level(struct builder *b, uint64_t *t, unsigned idx)
{
    if (!(t[idx] & KMAP_PTE_P)) {
        uint64_t pa;
        uint64_t *w = new_table(b, &pa);
        if (!w)
            return 0;
        t[idx] = pa | TABLE;
        return w;
    }
    if (t[idx] & KMAP_PTE_PS) {
        b->err = "a mapping overlaps a large page";
        return 0;
    }
    uint64_t *w = writer_of(b, t[idx] & KMAP_ADDR_MASK);
    if (!w)
        b->err = "a table entry points at a table this build did not make";
    return w;
}

static uint64_t *pd_for(struct builder *b, uint64_t a)
{
    uint64_t *pdpt = next_level(b, b->pml4, (unsigned)(a >> 39) & 511);
    return pdpt ? next_level(b, pdpt, (unsigned)(a >> 30) & 511) : 0;
}

/* 4 KiB flags of one page in the image's 2 MiB regions. */
static uint64_t fine_flags(const struct kmap_image *im, uint64_t a)
{
    if (a >= im->text_start && a < im->text_end)
        return TEXT;
    if ((a >= im->rodata_start && a < im->rodata_end) || a == MOAT_GPA_BOOT_INFO ||
        a == MOAT_GPA_SESSION_TABLE)
        return RO;
    return DATA;
}

static bool map_ram(struct builder *b)
{
    const struct kmap_image *im = &b->p->image;
    uint64_t *pd0 = pd_for(b, 0);
    if (!pd0)
        return false;
    const uint64_t fine_end = (im->end + LARGE - 1) & ~(LARGE - 1);
    for (uint64_t region = 0; region < fine_end; region += LARGE) {
        uint64_t pa;
        uint64_t *pt = new_table(b, &pa);
        if (!pt)
            return false;
        pd0[region >> 21] = pa | TABLE;
        for (uint64_t a = region ? region : PAGE; a < region + LARGE; a += PAGE)
            pt[a >> 12 & 511] = a | fine_flags(im, a);
    }
    for (uint64_t a = fine_end; a < b->p->ram_size; a += LARGE)
        pd0[a >> 21] = a | DATA | KMAP_PTE_PS;
    return true;
}

static bool map_device_space(struct builder *b)
{
    const uint64_t dev = DATA | KMAP_PTE_PCD | KMAP_PTE_PWT;
    uint64_t *pdpt = next_level(b, b->pml4, 0);
    if (!pdpt)
        return false;
    if (b->p->gb_pages) {
        pdpt[3] = 0xC0000000ull | dev | KMAP_PTE_PS;
        return true;
    }
    uint64_t *pd = next_level(b, pdpt, 3);
    if (!pd)
        return false;
    for (uint64_t i = 0; i < 512; i++)
        pd[i] = (0xC0000000ull + i * LARGE) | dev | KMAP_PTE_PS;
    return true;
}

static bool map_windows(struct builder *b)
{
    for (uint32_t w = 0; w < b->p->n_windows; w++) {
        const struct moat_window_info *win = &b->p->windows[w];
        if (win->iova % LARGE || win->size % LARGE || win->iova < MOAT_GPA_DMA_BASE ||
            win->iova > MOAT_GPA_SESSION_BASE || win->size > MOAT_GPA_SESSION_BASE - win->iova) {
            b->err = "a DMA window is not 2 MiB aligned inside the DMA range";
            return false;
        }
        for (uint64_t a = win->iova; a < win->iova + win->size; a += LARGE) {
            uint64_t *pd = pd_for(b, a);
            if (!pd)
                return false;
            pd[a >> 21 & 511] = a | DATA | KMAP_PTE_PS;
        }
    }
    return true;
}

static bool map_sessions(struct builder *b)
{
    const uint64_t span = MOAT_SESSION_SLOTS * MOAT_SESSION_SPAN;
    for (uint64_t gb = MOAT_GPA_SESSION_BASE; gb < MOAT_GPA_SESSION_BASE + span; gb += GIB) {
        if (b->p->gb_pages) {
            uint64_t *pdpt = next_level(b, b->pml4, (unsigned)(gb >> 39) & 511);
            if (!pdpt)
                return false;
            pdpt[gb >> 30 & 511] = gb | DATA | KMAP_PTE_PS;
            continue;
        }
        uint64_t *pd = pd_for(b, gb);
        if (!pd)
            return false;
        for (uint64_t i = 0; i < 512; i++)
            pd[i] = (gb + i * LARGE) | DATA | KMAP_PTE_PS;
    }
    return true;
}

const char *kmap_build(const struct kmap_params *p, uint64_t *cr3)
{
    const struct kmap_image *im = &p->image;
    if (p->ram_size % LARGE || p->ram_size < MOAT_RAM_MIN || p->ram_size > MOAT_RAM_MAX)
        return "RAM is not a multiple of 2 MiB between MOAT_RAM_MIN and MOAT_RAM_MAX";
    if ((im->text_start | im->text_end | im->rodata_start | im->rodata_end | im->end) % PAGE ||
        im->text_start < PAGE || im->text_end < im->text_start ||
        im->rodata_end < im->rodata_start || im->end < im->text_end ||
        im->end < im->rodata_end || im->end > p->ram_size)
        return "the kernel image bounds are not page-aligned ranges inside RAM";
    if (p->n_windows > MOAT_WINDOWS_MAX)
        return "more DMA windows than MOAT_WINDOWS_MAX";
    struct builder b = { .p = p };
    uint64_t pa;
    b.pml4 = new_table(&b, &pa);
    if (b.pml4 && map_ram(&b) && map_device_space(&b) && map_windows(&b) && map_sessions(&b)) {
        *cr3 = pa;
        return 0;
    }
    return b.err;
}
