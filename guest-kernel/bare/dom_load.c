/* A domain's address space and image (contract in dom_internal.h; the
 * layout is dom/bare_dom.h's). Page tables: PML4[0] -> a PDPT of the
 * domain's own whose entry 0 is the monitor's first GiB (supervisor-only:
 * the trap path runs there before switching CR3) and whose entry 1 maps
 * the domain's GiB, 4 KiB pages for its image, stack, heap and shared
 * pages and 2 MiB pages for its windows. Accessed and dirty bits are set
 * from the start: the CPU never needs to write the tables. Under svm every
 * mapping here is told to the domain's nested map (dom_svm.h). */
#include "dom_internal.h"
#include "dom_svm.h"
#include "gk/kstring.h"
#include "palloc.h"

#define PAGE 4096ull
#define MIB2 (2ull << 20)
#define PTE_P   0x1ull
#define PTE_W   0x2ull
#define PTE_U   0x4ull
#define PTE_A   0x20ull
#define PTE_D   0x40ull
#define PTE_PS  0x80ull
#define PTE_TABLE (PTE_P | PTE_W | PTE_U | PTE_A)
#define PTE_NX  (1ull << 63)
#define PTE_ADDR 0x000FFFFFFFFFF000ull

static uint64_t *table(uint64_t pa) { return (uint64_t *)(uintptr_t)pa; }

/* The PD of the domain's GiB, created with the PML4 and PDPT. */
static uint64_t dom_pd(struct dom *d)
{
    uint64_t pdpt = table(d->pml4)[0] & PTE_ADDR;
    return table(pdpt)[1] & PTE_ADDR;
}

static bool build_tables(struct dom *d)
{
    uint64_t pml4 = palloc(1, 0), pdpt = palloc(1, 0), pd = palloc(1, 0);
    if (!pml4 || !pdpt || !pd)
        return false;
    uint64_t master_pdpt = table(bare_master_cr3 & PTE_ADDR)[0] & PTE_ADDR;
    table(pdpt)[0] = (table(master_pdpt)[0] & ~PTE_U) | PTE_A;     /* the monitor's GiB */
    table(pdpt)[1] = pd | PTE_TABLE;
    table(pml4)[0] = pdpt | PTE_TABLE;
    d->pml4 = pml4;
    return dom_svm_map_table(d, pml4) && dom_svm_map_table(d, pdpt) && dom_svm_map_table(d, pd);
}

static bool map_4k(struct dom *d, uint64_t va, uint64_t pa, uint64_t flags)
{
    uint64_t *pd = table(dom_pd(d));
    unsigned i = (unsigned)((va >> 21) & 511), j = (unsigned)((va >> 12) & 511);
    if (!(pd[i] & PTE_P)) {
        uint64_t pt = palloc(1, 0);
        if (!pt || !dom_svm_map_table(d, pt))
            return false;
        pd[i] = pt | PTE_TABLE;
    }
    table(pd[i] & PTE_ADDR)[j] = pa | flags | PTE_P | PTE_U | PTE_A | (flags & PTE_W ? PTE_D : 0);
    return dom_svm_map(d, pa, PAGE, flags);
}

static bool map_run(struct dom *d, uint64_t va, uint64_t pa, uint64_t bytes, uint64_t flags)
{
    for (uint64_t o = 0; o < bytes; o += PAGE)
        if (!map_4k(d, va + o, pa + o, flags))
            return false;
    return true;
}

/* ---- the image ------------------------------------------------------------------- */

struct elf_hdr {
    uint8_t ident[16];
    uint16_t type, machine;
    uint32_t version;
    uint64_t entry, phoff, shoff;
    uint32_t flags;
    uint16_t ehsize, phentsize, phnum, shentsize, shnum, shstrndx;
};
struct elf_phdr {
    uint32_t type, flags;
    uint64_t offset, vaddr, paddr, filesz, memsz, align;
};
#define PT_LOAD 1u
#define PF_X 1u
#define PF_W 2u

static const char *image_check(const struct boot_module *m, uint64_t *lo, uint64_t *hi)
{
    uint64_t size = m->end - m->start;
    const struct elf_hdr *h = (const void *)(uintptr_t)m->start;
    if (size < sizeof *h || memcmp(h->ident, "\177ELF\2\1", 6) || h->type != 2 || h->machine != 62)
        return "the module is not an x86-64 executable ELF";
    if (h->phentsize != sizeof(struct elf_phdr) || h->phnum == 0 || h->phnum > 16 ||
        h->phoff > size || (uint64_t)h->phnum * sizeof(struct elf_phdr) > size - h->phoff)
        return "the ELF's program headers are missing or out of the module";
    *lo = UINT64_MAX;
    *hi = 0;
    const struct elf_phdr *ph = (const void *)(uintptr_t)(m->start + h->phoff);
    for (unsigned i = 0; i < h->phnum; i++) {
        if (ph[i].type != PT_LOAD)
            continue;
        if (ph[i].filesz > ph[i].memsz || ph[i].offset > size || ph[i].filesz > size - ph[i].offset ||
            ph[i].vaddr < BARE_DOM_VA_IMAGE || ph[i].memsz > BARE_DOM_VA_HEAP - ph[i].vaddr)
            return "an ELF segment lies outside the module or the domain's image range";
        if (ph[i].vaddr < *lo)
            *lo = ph[i].vaddr & ~(PAGE - 1);
        if (ph[i].vaddr + ph[i].memsz > *hi)
            *hi = (ph[i].vaddr + ph[i].memsz + PAGE - 1) & ~(PAGE - 1);
    }
    if (*hi <= *lo || h->entry < *lo || h->entry >= *hi)
        return "the ELF loads nothing, or its entry is outside what it loads";
    return NULL;
}

static const char *image_load(struct dom *d)
{
    uint64_t lo, hi;
    const char *why = image_check(d->module, &lo, &hi);
    if (why)
        return why;
    uint64_t pages = (hi - lo) / PAGE;
    if (!d->image_pa) {
        d->image_pa = palloc(pages, 0);
        d->image_pages = pages;
        if (!d->image_pa)
            return "no memory for the image";
    } else if (pages != d->image_pages) {
        return "the image changed size";
    }
    memset((void *)(uintptr_t)d->image_pa, 0, pages * PAGE);
    const struct elf_hdr *h = (const void *)(uintptr_t)d->module->start;
    const struct elf_phdr *ph = (const void *)(uintptr_t)(d->module->start + h->phoff);
    for (unsigned i = 0; i < h->phnum; i++)
        if (ph[i].type == PT_LOAD)
            memcpy((void *)(uintptr_t)(d->image_pa + ph[i].vaddr - lo),
                   (const void *)(uintptr_t)(d->module->start + ph[i].offset), ph[i].filesz);
    /* Rights per page: writable or executable if any segment on it is. */
    for (uint64_t p = 0; p < pages; p++) {
        uint64_t va = lo + p * PAGE, flags = PTE_NX;
        for (unsigned i = 0; i < h->phnum; i++) {
            if (ph[i].type != PT_LOAD || va + PAGE <= ph[i].vaddr ||
                va >= ph[i].vaddr + ph[i].memsz)
                continue;
            if (ph[i].flags & PF_W)
                flags |= PTE_W;
            if (ph[i].flags & PF_X)
                flags &= ~PTE_NX;
        }
        if (!map_4k(d, va, d->image_pa + p * PAGE, flags))
            return "no memory for page tables";
    }
    d->entry = h->entry;
    return NULL;
}

/* ---- the whole space ---------------------------------------------------------------- */

static const char *first_time(struct dom *d)
{
    if (!build_tables(d))
        return "no memory for page tables";
    d->pages_pa = palloc(BARE_DOM_SHARED_PAGES, 0);
    d->stack_pa = palloc(BARE_DOM_STACK / PAGE, 0);
    d->heap_pa = palloc(d->mem_size / PAGE, 0);
    uint64_t win_pa = palloc(d->dma_size / PAGE, MIB2);
    if (!d->pages_pa || !d->stack_pa || !d->heap_pa || !win_pa)
        return "not enough physical memory for the domain (lower mem= or dma=)";
    d->win[0] = (struct dom_window){ .iova = BARE_DOM_VA_WINDOWS, .size = d->dma_size, .pa = win_pa };
    d->n_win = 1;
    if (!map_4k(d, BARE_DOM_VA_BOOTINFO, d->pages_pa, PTE_NX) ||
        !map_4k(d, BARE_DOM_VA_PLATFORM, d->pages_pa + PAGE, PTE_W | PTE_NX) ||
        !map_4k(d, BARE_DOM_VA_EVENTS, d->pages_pa + 2 * PAGE, PTE_W | PTE_NX) ||
        !map_4k(d, BARE_DOM_VA_SESSION_TABLE, d->pages_pa + 3 * PAGE, PTE_NX) ||
        !map_4k(d, BARE_DOM_VA_DOORBELLS, d->pages_pa + 4 * PAGE, PTE_W | PTE_NX) ||
        !map_run(d, BARE_DOM_VA_STACK_TOP - BARE_DOM_STACK, d->stack_pa, BARE_DOM_STACK,
                 PTE_W | PTE_NX) ||
        !map_run(d, BARE_DOM_VA_HEAP, d->heap_pa, d->mem_size, PTE_W | PTE_NX))
        return "no memory for page tables";
    uint64_t *pd = table(dom_pd(d));
    for (uint64_t o = 0; o < d->dma_size; o += MIB2)
        pd[((BARE_DOM_VA_WINDOWS + o) >> 21) & 511] =
            (win_pa + o) | PTE_P | PTE_W | PTE_U | PTE_A | PTE_D | PTE_PS | PTE_NX;
    if (!dom_svm_map(d, win_pa, d->dma_size, PTE_W | PTE_NX))
        return "no memory for nested tables";
    return NULL;
}

const char *dom_load(struct dom *d, uint64_t tsc_khz)
{
    if (d->mem_size % PAGE || d->dma_size % MIB2 || !d->mem_size || !d->dma_size ||
        d->mem_size > BARE_DOM_VA_WINDOWS - BARE_DOM_VA_HEAP ||
        d->dma_size > MOAT_WINDOW_SIZE_MAX)
        return "mem= must be whole pages up to 384 MiB and dma= whole 2 MiB up to 256 MiB";
    if (!d->pml4) {
        const char *why = first_time(d);
        if (why)
            return why;
    } else {                    /* a restart: scrub everything it could write */
        memset((void *)(uintptr_t)d->pages_pa, 0, BARE_DOM_SHARED_PAGES * PAGE);
        memset((void *)(uintptr_t)d->stack_pa, 0, BARE_DOM_STACK);
        memset((void *)(uintptr_t)d->heap_pa, 0, d->mem_size);
        for (uint32_t i = 0; i < d->n_win; i++)
            memset((void *)(uintptr_t)d->win[i].pa, 0, d->win[i].size);
    }
    const char *why = image_load(d);
    if (why)
        return why;
    d->bi = (struct moat_boot_info *)(uintptr_t)d->pages_pa;
    d->pp = (struct moat_platform_page *)(uintptr_t)(d->pages_pa + PAGE);
    d->ev = (struct bare_dom_events *)(uintptr_t)(d->pages_pa + 2 * PAGE);
    d->table = (struct moat_session_table *)(uintptr_t)(d->pages_pa + 3 * PAGE);
    d->doorbells = (uint32_t *)(uintptr_t)(d->pages_pa + 4 * PAGE);
    struct moat_boot_info *bi = d->bi;
    bi->magic = MOAT_BOOT_MAGIC;
    bi->version = MOAT_BOOT_VERSION;
    bi->size = sizeof *bi;
    bi->platform = MOAT_PLATFORM_BARE;
    bi->flags = MOAT_BOOT_F_RAM_ZEROED;
    bi->tsc_khz = tsc_khz;
    bi->ram_size = d->mem_size;
    bi->platform_page = BARE_DOM_VA_PLATFORM;
    bi->n_mem = 1;
    bi->mem[0] = (struct moat_mem_region){ .base = BARE_DOM_VA_HEAP, .size = d->mem_size,
                                           .kind = MOAT_MEM_RAM };
    bi->domain_id = d->id;
    memcpy(bi->name, d->name, sizeof bi->name);
    bi->n_windows = d->n_win;
    for (uint32_t i = 0; i < d->n_win; i++)
        bi->window[i] = (struct moat_window_info){ .iova = d->win[i].iova, .size = d->win[i].size,
                                                   .dirs = 3 };
    d->pp->magic = MOAT_PLATFORM_MAGIC;
    return NULL;
}

bool dom_map_session(struct dom *d, uint32_t k, uint64_t pa)
{
    uint64_t *e = &table(dom_pd(d))[((BARE_DOM_VA_SESSIONS + k * BARE_DOM_SESSION_SIZE) >> 21) &
                                    511];
    if (*e & PTE_P)
        dom_svm_unmap(d, *e & PTE_ADDR & ~(MIB2 - 1), MIB2);
    *e = 0;
    if (!pa)
        return true;
    if (!dom_svm_map(d, pa, MIB2, PTE_W | PTE_NX))
        return false;
    *e = pa | PTE_P | PTE_W | PTE_U | PTE_A | PTE_D | PTE_PS | PTE_NX;
    return true;
}

uint64_t dom_window_pa(const struct dom *d, uint64_t iova, uint64_t len)
{
    for (uint32_t i = 0; i < d->n_win; i++) {
        const struct dom_window *w = &d->win[i];
        if (iova >= w->iova && iova - w->iova < w->size && len <= w->size - (iova - w->iova))
            return w->pa + (iova - w->iova);
    }
    return dom_session_dma_pa(d, iova, len);
}

/* Walk d's tables for the byte at va: its physical address when ring 3
 * may touch it (and write it, with PTE_W in need), else 0. */
static uint64_t user_pa(const struct dom *d, uint64_t va, uint64_t need)
{
    need |= PTE_P | PTE_U;
    if (va < BARE_DOM_VA_BASE || va >= BARE_DOM_VA_END)
        return 0;
    uint64_t e = table(dom_pd((struct dom *)d))[(va >> 21) & 511];
    if ((e & need) != need)
        return 0;
    if (e & PTE_PS)
        return (e & PTE_ADDR & ~(MIB2 - 1)) + (va & (MIB2 - 1));
    e = table(e & PTE_ADDR)[(va >> 12) & 511];
    if ((e & need) != need)
        return 0;
    return (e & PTE_ADDR) + (va & (PAGE - 1));
}

/* len bytes between the monitor's buf and d's va, page by page. */
static bool copy_user(const struct dom *d, void *buf, uint64_t va, uint64_t len, bool out)
{
    uint8_t *b = buf;
    while (len) {
        uint64_t pa = user_pa(d, va, out ? PTE_W : 0);
        if (!pa)
            return false;
        uint64_t n = PAGE - (va & (PAGE - 1));
        if (n > len)
            n = len;
        if (out)
            memcpy((void *)(uintptr_t)pa, b, n);
        else
            memcpy(b, (const void *)(uintptr_t)pa, n);
        b += n;
        va += n;
        len -= n;
    }
    return true;
}

bool dom_copy_in(const struct dom *d, void *dst, uint64_t va, uint64_t len)
{
    return copy_user(d, dst, va, len, false);
}

bool dom_copy_out(const struct dom *d, uint64_t va, const void *src, uint64_t len)
{
    return copy_user(d, (void *)(uintptr_t)src, va, len, true);
}
