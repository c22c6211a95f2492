/* ELF loader: valid images load; every malformed header is refused with a
 * reason and never writes outside RAM. */
#include <criterion/criterion.h>
#include <elf.h>
#include <string.h>
#include "elf_load.h"

#define RAM_SIZE (4u << 20)
#define BASE 0x100000u

struct img {
    Elf64_Ehdr eh;
    Elf64_Phdr ph[2];
    uint8_t payload[64];
};

static void make_image(struct img *im)
{
    memset(im, 0, sizeof *im);
    memcpy(im->eh.e_ident, ELFMAG, SELFMAG);
    im->eh.e_ident[EI_CLASS] = ELFCLASS64;
    im->eh.e_ident[EI_DATA] = ELFDATA2LSB;
    im->eh.e_type = ET_EXEC;
    im->eh.e_machine = EM_X86_64;
    im->eh.e_entry = BASE + 4;
    im->eh.e_phoff = offsetof(struct img, ph);
    im->eh.e_phentsize = sizeof(Elf64_Phdr);
    im->eh.e_phnum = 2;
    im->ph[0] = (Elf64_Phdr){ .p_type = PT_LOAD, .p_flags = PF_R | PF_X,
                              .p_offset = offsetof(struct img, payload), .p_paddr = BASE,
                              .p_filesz = 32, .p_memsz = 32 };
    im->ph[1] = (Elf64_Phdr){ .p_type = PT_LOAD, .p_flags = PF_R | PF_W,
                              .p_offset = offsetof(struct img, payload) + 32,
                              .p_paddr = BASE + 0x1000, .p_filesz = 16, .p_memsz = 0x2000 };
    for (unsigned i = 0; i < sizeof im->payload; i++)
        im->payload[i] = (uint8_t)(i + 1);
}

static uint8_t ram[RAM_SIZE];
static char err[256];

static struct elf_layout lay;

static bool load(struct img *im, size_t len, uint64_t *entry)
{
    memset(ram, 0xAA, sizeof ram);
    err[0] = '\0';
    memset(&lay, 0, sizeof lay);
    bool ok = elf_load((const uint8_t *)im, len, ram, RAM_SIZE, BASE, &lay, err, sizeof err);
    *entry = lay.entry;
    return ok;
}

Test(elf_load, loads_segments_and_zeroes_bss)
{
    struct img im;
    make_image(&im);
    uint64_t entry = 0;
    cr_assert(load(&im, sizeof im, &entry), "valid image refused: %s", err);
    cr_assert_eq(entry, BASE + 4);
    cr_assert_eq(ram[BASE], 1, "text byte 0 not copied");
    cr_assert_eq(ram[BASE + 31], 32);
    cr_assert_eq(ram[BASE + 0x1000], 33, "data not copied");
    cr_assert_eq(ram[BASE + 0x1000 + 16], 0, "bss byte after filesz not zeroed");
    cr_assert_eq(ram[BASE + 0x1000 + 0x1FFF], 0, "last bss byte not zeroed");
    cr_assert_eq(ram[BASE + 0x3000], 0xAA, "loader wrote past the segment");
    cr_assert_eq(lay.text_start, BASE, "text starts at the executable segment");
    cr_assert_eq(lay.text_end, BASE + 0x1000, "text rounded up to a page");
    cr_assert_eq(lay.rodata_end, lay.rodata_start, "no read-only segment, empty rodata");
    cr_assert_eq(lay.end, BASE + 0x3000, "end covers the bss, page-rounded");
}

Test(elf_load, reports_rodata_and_refuses_layouts_the_kernel_map_cannot_express)
{
    struct img im;
    make_image(&im);
    uint64_t entry;
    im.ph[1].p_flags = PF_R;                    /* read-only data */
    cr_assert(load(&im, sizeof im, &entry), "R-only segment refused: %s", err);
    cr_assert_eq(lay.rodata_start, BASE + 0x1000);
    cr_assert_eq(lay.rodata_end, BASE + 0x3000);

    im.ph[1].p_flags = PF_R | PF_W | PF_X;
    cr_assert_not(load(&im, sizeof im, &entry), "a W+X segment was accepted");
    cr_assert(strstr(err, "W^X"), "error does not say why: %s", err);

    im.ph[1].p_flags = PF_R | PF_X;             /* two text segments */
    cr_assert_not(load(&im, sizeof im, &entry), "two executable segments accepted");
    cr_assert(strstr(err, "more than one executable"), "error does not say why: %s", err);

    make_image(&im);
    im.ph[0].p_paddr = BASE + 0x10;             /* misaligned text */
    im.eh.e_entry = BASE + 0x14;
    cr_assert_not(load(&im, sizeof im, &entry), "misaligned text accepted");
    cr_assert(strstr(err, "page-aligned"), "error does not say why: %s", err);
}

Test(elf_load, refuses_bad_magic_class_machine_type)
{
    struct img im;
    uint64_t e;
    make_image(&im);
    im.eh.e_ident[1] = 'X';
    cr_assert_not(load(&im, sizeof im, &e));
    cr_assert(strstr(err, "not an ELF"), "reason: %s", err);
    make_image(&im);
    im.eh.e_ident[EI_CLASS] = ELFCLASS32;
    cr_assert_not(load(&im, sizeof im, &e));
    make_image(&im);
    im.eh.e_machine = EM_AARCH64;
    cr_assert_not(load(&im, sizeof im, &e));
    make_image(&im);
    im.eh.e_type = ET_DYN;
    cr_assert_not(load(&im, sizeof im, &e));
    cr_assert(strstr(err, "ET_EXEC"), "reason: %s", err);
}

Test(elf_load, refuses_truncated_file_and_headers)
{
    struct img im;
    uint64_t e;
    make_image(&im);
    cr_assert_not(load(&im, 10, &e));
    cr_assert(strstr(err, "too short"), "reason: %s", err);
    make_image(&im);
    im.eh.e_phoff = sizeof im - 8;      /* program headers run off the end */
    cr_assert_not(load(&im, sizeof im, &e));
    make_image(&im);
    im.eh.e_phoff = UINT64_MAX - 8;     /* offset + size wraps */
    cr_assert_not(load(&im, sizeof im, &e));
    make_image(&im);
    im.eh.e_phnum = 0;
    cr_assert_not(load(&im, sizeof im, &e));
}

Test(elf_load, refuses_segments_outside_file_or_ram)
{
    struct img im;
    uint64_t e;
    make_image(&im);
    im.ph[0].p_offset = sizeof im;      /* data beyond the file */
    cr_assert_not(load(&im, sizeof im, &e));
    cr_assert(strstr(err, "outside the file"), "reason: %s", err);

    make_image(&im);
    im.ph[1].p_memsz = RAM_SIZE;        /* runs past RAM end */
    cr_assert_not(load(&im, sizeof im, &e));
    cr_assert(strstr(err, "outside loadable RAM"), "reason: %s", err);

    make_image(&im);
    im.ph[1].p_paddr = UINT64_MAX - 4;  /* address + size wraps */
    cr_assert_not(load(&im, sizeof im, &e));

    make_image(&im);
    im.ph[0].p_paddr = 0x1000;          /* below the kernel base: boot area */
    cr_assert_not(load(&im, sizeof im, &e));

    make_image(&im);
    im.ph[1].p_filesz = im.ph[1].p_memsz + 1;
    cr_assert_not(load(&im, sizeof im, &e));
    cr_assert(strstr(err, "exceeds memory size"), "reason: %s", err);
}

Test(elf_load, refuses_entry_outside_executable_segment)
{
    struct img im;
    uint64_t e;
    make_image(&im);
    im.eh.e_entry = BASE + 0x1000;      /* inside the non-executable data */
    cr_assert_not(load(&im, sizeof im, &e));
    cr_assert(strstr(err, "entry point"), "reason: %s", err);
}
