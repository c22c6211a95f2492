/* Driver API: DMA memory from the platform's windows (contract in dd.h).
 * Ring 3. First-fit page allocator with one bitmap per window, kept in
 * private RAM (a device can write window memory, never these bitmaps).
 * Windows arrive zeroed (moat/boot_info.h): a page is cleared when it is
 * handed out again, not the first time, so a driver that reserves large
 * pools does not touch (and, on shadow-paging hosts, fault in) every page
 * of them at start. */
#include "dd.h"
#include "gk/kstring.h"
#include "gk/platform.h"
#include "moat/boot_info.h"

#define PAGE 4096ull
#define WIN_PAGES_MAX (MOAT_WINDOW_SIZE_MAX / PAGE)

static uint64_t used[MOAT_WINDOWS_MAX][WIN_PAGES_MAX / 64];
static uint64_t handed[MOAT_WINDOWS_MAX][WIN_PAGES_MAX / 64];   /* ever allocated */

static const struct moat_window_info *window(unsigned i)
{
    const struct moat_boot_info *bi = platform_boot_info();
    return i < bi->n_windows && i < MOAT_WINDOWS_MAX ? &bi->window[i] : NULL;
}

static uint64_t pages_of(const struct moat_window_info *w)
{
    uint64_t n = w->size / PAGE;
    return n < WIN_PAGES_MAX ? n : WIN_PAGES_MAX;
}

static bool bit(unsigned w, uint64_t p) { return used[w][p / 64] >> (p % 64) & 1; }
static void set_bits(unsigned w, uint64_t p, uint64_t n, bool on)
{
    for (uint64_t i = p; i < p + n; i++) {
        if (on)
            used[w][i / 64] |= 1ull << (i % 64);
        else
            used[w][i / 64] &= ~(1ull << (i % 64));
    }
}

bool dd_dma_alloc(uint64_t size, uint64_t align, struct dd_dma *out)
{
    if (align == 0)
        align = PAGE;
    if (size == 0 || align < PAGE || align & (align - 1))
        dd_panic("driver bug: dd_dma_alloc(%lu, align %lu)", size, align);
    uint64_t n = (size + PAGE - 1) / PAGE, step = align / PAGE;
    for (unsigned w = 0; window(w); w++) {
        const struct moat_window_info *win = window(w);
        uint64_t total = pages_of(win);
        /* IOVAs are 2 MiB aligned, so page index alignment is IOVA alignment
         * for any align up to 2 MiB; larger aligns are checked below. */
        for (uint64_t p = 0; p + n <= total; p += step) {
            if ((win->iova + p * PAGE) % align)
                continue;
            uint64_t i = 0;
            while (i < n && !bit(w, p + i))
                i++;
            if (i < n)
                continue;
            set_bits(w, p, n, true);
            out->iova = win->iova + p * PAGE;
            out->va = (void *)(uintptr_t)out->iova;
            out->size = n * PAGE;
            for (uint64_t k = p; k < p + n; k++) {
                uint64_t m = 1ull << (k % 64);
                if (handed[w][k / 64] & m)
                    memset((uint8_t *)out->va + (k - p) * PAGE, 0, PAGE);
                handed[w][k / 64] |= m;
            }
            return true;
        }
    }
    return false;
}

void dd_dma_free(struct dd_dma *m)
{
    for (unsigned w = 0; window(w); w++) {
        const struct moat_window_info *win = window(w);
        if (m->iova < win->iova || m->iova - win->iova >= pages_of(win) * PAGE)
            continue;
        uint64_t p = (m->iova - win->iova) / PAGE, n = m->size / PAGE;
        if (m->iova % PAGE || n == 0 || p + n > pages_of(win))
            break;
        for (uint64_t i = 0; i < n; i++)
            if (!bit(w, p + i))
                dd_panic("driver bug: dd_dma_free of IOVA 0x%lx: page %lu was not allocated",
                         m->iova, i);
        set_bits(w, p, n, false);
        m->va = 0;
        m->size = 0;
        return;
    }
    dd_panic("driver bug: dd_dma_free of IOVA 0x%lx+0x%lx: not an allocation", m->iova, m->size);
}

uint64_t dd_dma_iova(const void *p)
{
    uint64_t a = (uint64_t)(uintptr_t)p;
    for (unsigned w = 0; window(w); w++)
        if (a >= window(w)->iova && a - window(w)->iova < window(w)->size)
            return a;
    dd_panic("driver bug: %p is not in a DMA window", p);
}

unsigned dd_dma_window_count(void)
{
    unsigned n = 0;
    while (window(n))
        n++;
    return n;
}

bool dd_dma_window(unsigned i, uint64_t *iova, uint64_t *size)
{
    const struct moat_window_info *w = window(i);
    if (!w)
        return false;
    *iova = w->iova;
    *size = w->size;
    return true;
}
