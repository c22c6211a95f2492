/* Nested page tables, one to one (contract in npt.h). */
#include <stddef.h>
#include "npt.h"
#include "palloc.h"

#define PAGE 4096ull
#define E_P 0x1ull
#define E_U 0x4ull
#define E_ADDR 0x000FFFFFFFFFF000ull
#define TABLE_FLAGS (E_P | NPT_W | E_U)

static uint64_t *table(uint64_t pa) { return (uint64_t *)(uintptr_t)pa; }

uint64_t npt_new(void) { return palloc(1, 0); }

/* The leaf slot for gpa, creating the tables on the way when create. */
static uint64_t *leaf(uint64_t root, uint64_t gpa, bool create)
{
    uint64_t t = root;
    for (int shift = 39; shift > 12; shift -= 9) {
        uint64_t *e = &table(t)[(gpa >> shift) & 511];
        if (!(*e & E_P)) {
            if (!create)
                return NULL;
            uint64_t n = palloc(1, 0);
            if (!n)
                return NULL;
            *e = n | TABLE_FLAGS;
        }
        t = *e & E_ADDR;
    }
    return &table(t)[(gpa >> 12) & 511];
}

bool npt_map(uint64_t root, uint64_t pa, uint64_t bytes, uint64_t flags)
{
    for (uint64_t o = 0; o < bytes; o += PAGE) {
        uint64_t *e = leaf(root, pa + o, true);
        if (!e)
            return false;
        *e = (pa + o) | E_P | E_U | (flags & (NPT_W | NPT_NX));
    }
    return true;
}

void npt_unmap(uint64_t root, uint64_t pa, uint64_t bytes)
{
    for (uint64_t o = 0; o < bytes; o += PAGE) {
        uint64_t *e = leaf(root, pa + o, false);
        if (e)
            *e = 0;
    }
}

uint64_t npt_entry(uint64_t root, uint64_t gpa)
{
    uint64_t *e = leaf(root, gpa, false);
    return e ? *e : 0;
}

static uint64_t count(uint64_t t, int level)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < 512; i++) {
        uint64_t e = table(t)[i];
        if (!(e & E_P))
            continue;
        n += level == 1 ? 1 : count(e & E_ADDR, level - 1);
    }
    return n;
}

uint64_t npt_pages(uint64_t root) { return count(root, 4); }
