/* Domain boot state (contract in boot_setup.h). Register values: Intel SDM
 * Vol. 3A §9.8.5 (initializing IA-32e mode) and §3.4.5 (descriptors). */
#include <stdio.h>
#include <string.h>
#include "boot_setup.h"
#include "moat/layout.h"
#include "moat/platform_abi.h"

#define CR0_PE (1ull << 0)
#define CR0_MP (1ull << 1)
#define CR0_ET (1ull << 4)
#define CR0_NE (1ull << 5)
#define CR0_WP (1ull << 16)
#define CR0_PG (1ull << 31)
#define CR4_PAE (1ull << 5)
#define CR4_OSFXSR (1ull << 9)
#define CR4_OSXMMEXCPT (1ull << 10)
#define EFER_LME (1ull << 8)
#define EFER_LMA (1ull << 10)
#define EFER_NXE (1ull << 11)

static void put64(uint8_t *ram, uint64_t gpa, uint64_t v) { memcpy(ram + gpa, &v, 8); }

void boot_write_gdt(uint8_t *ram)
{
    put64(ram, MOAT_GPA_BOOT_GDT + 0, 0);
    put64(ram, MOAT_GPA_BOOT_GDT + 8, 0x00AF9A000000FFFFull);   /* code64 */
    put64(ram, MOAT_GPA_BOOT_GDT + 16, 0x00CF92000000FFFFull);  /* data */
}

/* Table pages for kmap_build: the pages right after the image. */
struct table_pages {
    uint8_t *ram;
    uint64_t next, limit;
};

static uint64_t *next_table_page(void *ctx, uint64_t *pa)
{
    struct table_pages *t = ctx;
    if (t->limit - t->next < MOAT_PAGE_SIZE)
        return NULL;
    *pa = t->next;
    t->next += MOAT_PAGE_SIZE;
    memset(t->ram + *pa, 0, MOAT_PAGE_SIZE);
    return (uint64_t *)(void *)(t->ram + *pa);
}

bool boot_write_kernel_map(uint8_t *ram, uint64_t ram_size, const struct kmap_image *image,
                           const struct moat_window_info *windows, uint32_t n_windows,
                           bool gb_pages, uint64_t *cr3, uint64_t *ram_free,
                           char *err, size_t errlen)
{
    if (image->end % MOAT_PAGE_SIZE || image->end >= ram_size) {
        snprintf(err, errlen, "the kernel image ends at 0x%llx, past RAM (0x%llx)",
                 (unsigned long long)image->end, (unsigned long long)ram_size);
        return false;
    }
    struct table_pages t = { ram, image->end, image->end + KMAP_PAGES_MAX * MOAT_PAGE_SIZE };
    if (t.limit > ram_size)
        t.limit = ram_size;
    struct kmap_params p = { .image = *image, .ram_size = ram_size, .windows = windows,
                             .n_windows = n_windows, .gb_pages = gb_pages,
                             .page = next_table_page, .ctx = &t };
    const char *why = kmap_build(&p, cr3);
    if (why) {
        snprintf(err, errlen, "kernel page tables: %s", why);
        return false;
    }
    *ram_free = t.next;
    return true;
}

static struct kvm_segment flat_segment(uint16_t sel, uint8_t type, bool code)
{
    return (struct kvm_segment){
        .base = 0, .limit = 0xFFFFFFFF, .selector = sel, .type = type,
        .present = 1, .dpl = 0, .db = code ? 0 : 1, .s = 1, .l = code ? 1 : 0,
        .g = 1,
    };
}

void boot_long_mode_sregs(struct kvm_sregs *s, uint64_t cr3)
{
    s->cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
    s->cr3 = cr3;
    s->cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT;
    s->efer = EFER_LME | EFER_LMA | EFER_NXE;
    s->cs = flat_segment(0x08, 0xB, true);   /* execute/read, accessed */
    s->ds = s->es = s->fs = s->gs = s->ss = flat_segment(0x10, 0x3, false);
    s->gdt.base = MOAT_GPA_BOOT_GDT;
    s->gdt.limit = 3 * 8 - 1;
}

bool boot_write_info(uint8_t *ram, uint64_t ram_size, const struct boot_params *p)
{
    struct moat_boot_info bi;
    memset(&bi, 0, sizeof bi);
    if (strlen(p->name) >= sizeof bi.name || strlen(p->cmdline) >= sizeof bi.cmdline ||
        p->n_windows > MOAT_WINDOWS_MAX || p->n_devices > MOAT_DEVICES_MAX)
        return false;
    bi.magic = MOAT_BOOT_MAGIC;
    bi.version = MOAT_BOOT_VERSION;
    bi.size = sizeof bi;
    bi.platform = MOAT_PLATFORM_HOSTED;
    /* RAM is a fresh anonymous mapping: zero everywhere but the image. */
    bi.flags = p->flags | MOAT_BOOT_F_RAM_ZEROED;
    if (p->kernel_map) {
        bi.flags |= MOAT_BOOT_F_KERNEL_MAP;
        bi.kernel_map = p->kernel_map;
        bi.ram_free = p->ram_free;
    }
    bi.tsc_khz = p->tsc_khz;
    bi.ram_size = ram_size;
    bi.platform_page = MOAT_GPA_PLATFORM_PAGE;
    bi.ecam_base = p->ecam_base;
    bi.n_windows = p->n_windows;
    if (p->n_windows)
        memcpy(bi.window, p->windows, p->n_windows * sizeof bi.window[0]);
    bi.n_devices = p->n_devices;
    if (p->n_devices)
        memcpy(bi.device, p->devices, p->n_devices * sizeof bi.device[0]);
    bi.domain_id = p->domain_id;
    bi.mem[0] = (struct moat_mem_region){ 0, MOAT_GPA_KERNEL_BASE, MOAT_MEM_RESERVED, 0 };
    bi.mem[1] = (struct moat_mem_region){ MOAT_GPA_KERNEL_BASE,
                                          ram_size - MOAT_GPA_KERNEL_BASE, MOAT_MEM_RAM, 0 };
    bi.n_mem = 2;
    memcpy(bi.name, p->name, strlen(p->name) + 1);
    memcpy(bi.cmdline, p->cmdline, strlen(p->cmdline) + 1);
    memcpy(ram + MOAT_GPA_BOOT_INFO, &bi, sizeof bi);

    struct moat_platform_page pp;
    memset(&pp, 0, sizeof pp);
    pp.magic = MOAT_PLATFORM_MAGIC;
    memcpy(ram + MOAT_GPA_PLATFORM_PAGE, &pp, sizeof pp);
    return true;
}
