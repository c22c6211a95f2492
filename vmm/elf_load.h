/*
 * elf_load.h — load an ELF64 x86-64 executable into a domain's RAM.
 *
 * The image is untrusted input (a file named on the command line): every
 * header field is bounds-checked with overflow-safe arithmetic, each PT_LOAD
 * must land inside [min_gpa, ram_size), filesz <= memsz, and the entry point
 * must lie in an executable loaded segment, and the layout must be one the
 * W^X kernel map can express (struct elf_layout). On failure nothing is promised
 * about RAM contents (the caller discards the VM) and err says why.
 */
#ifndef MOAT_ELF_LOAD_H
#define MOAT_ELF_LOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Where the loaded image lies (what the kernel's page tables need): one
 * executable segment (text), at most one read-only one (rodata), both
 * page-aligned; no segment both writable and executable. Bounds are
 * guest-physical, rounded out to whole pages; rodata may be empty. */
struct elf_layout {
    uint64_t entry;
    uint64_t text_start, text_end;
    uint64_t rodata_start, rodata_end;
    uint64_t end;                       /* end of the highest segment */
};

bool elf_load(const uint8_t *img, size_t img_len, uint8_t *ram, uint64_t ram_size,
              uint64_t min_gpa, struct elf_layout *out, char *err, size_t errlen);

#endif /* MOAT_ELF_LOAD_H */
