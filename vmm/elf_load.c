/* ELF64 loader (contract in elf_load.h). Field layout: System V ABI,
 * ELF-64 Object File Format 1.5 (Elf64_Ehdr, Elf64_Phdr). */
#include <elf.h>
#include <stdio.h>
#include <string.h>
#include "elf_load.h"

static bool range_ok(uint64_t off, uint64_t len, uint64_t limit)
{
    return len <= limit && off <= limit - len;
}

bool elf_load(const uint8_t *img, size_t img_len, uint8_t *ram, uint64_t ram_size,
              uint64_t min_gpa, struct elf_layout *out, char *err, size_t errlen)
{
    const uint64_t page = 4096;
    struct elf_layout lay = { 0 };
    unsigned n_text = 0, n_ro = 0;
    Elf64_Ehdr eh;
    if (img_len < sizeof eh) {
        snprintf(err, errlen, "file too short for an ELF header (%zu bytes)", img_len);
        return false;
    }
    memcpy(&eh, img, sizeof eh);
    if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) {
        snprintf(err, errlen, "not an ELF file (bad magic)");
        return false;
    }
    if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB ||
        eh.e_machine != EM_X86_64) {
        snprintf(err, errlen, "not a little-endian ELF64 x86-64 image");
        return false;
    }
    if (eh.e_type != ET_EXEC) {
        snprintf(err, errlen, "ELF type %u is not an executable (ET_EXEC)", eh.e_type);
        return false;
    }
    if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 ||
        !range_ok(eh.e_phoff, (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr), img_len)) {
        snprintf(err, errlen, "program headers missing or outside the file");
        return false;
    }
    bool entry_ok = false;
    unsigned loaded = 0;
    for (unsigned i = 0; i < eh.e_phnum; i++) {
        Elf64_Phdr ph;
        memcpy(&ph, img + eh.e_phoff + (uint64_t)i * sizeof ph, sizeof ph);
        if (ph.p_type != PT_LOAD)
            continue;
        if (ph.p_filesz > ph.p_memsz) {
            snprintf(err, errlen, "segment %u: file size 0x%lx exceeds memory size 0x%lx",
                     i, (unsigned long)ph.p_filesz, (unsigned long)ph.p_memsz);
            return false;
        }
        if (!range_ok(ph.p_offset, ph.p_filesz, img_len)) {
            snprintf(err, errlen, "segment %u: file range 0x%lx+0x%lx outside the file",
                     i, (unsigned long)ph.p_offset, (unsigned long)ph.p_filesz);
            return false;
        }
        if (ph.p_paddr < min_gpa || !range_ok(ph.p_paddr, ph.p_memsz, ram_size)) {
            snprintf(err, errlen,
                     "segment %u: 0x%lx+0x%lx outside loadable RAM [0x%lx, 0x%lx)",
                     i, (unsigned long)ph.p_paddr, (unsigned long)ph.p_memsz,
                     (unsigned long)min_gpa, (unsigned long)ram_size);
            return false;
        }
        uint64_t start = ph.p_paddr & ~(page - 1);
        uint64_t end = (ph.p_paddr + ph.p_memsz + page - 1) & ~(page - 1);
        if ((ph.p_flags & PF_X) && (ph.p_flags & PF_W)) {
            snprintf(err, errlen, "segment %u is writable and executable (W^X)", i);
            return false;
        }
        if ((ph.p_flags & (PF_X | PF_W)) != PF_W && ph.p_paddr % page) {
            snprintf(err, errlen, "segment %u: text or read-only data at 0x%lx is not "
                     "page-aligned", i, (unsigned long)ph.p_paddr);
            return false;
        }
        if (ph.p_flags & PF_X) {
            lay.text_start = start;
            lay.text_end = end;
            n_text++;
        } else if (!(ph.p_flags & PF_W)) {
            lay.rodata_start = start;
            lay.rodata_end = end;
            n_ro++;
        }
        if (n_text > 1 || n_ro > 1) {
            snprintf(err, errlen, "more than one %s segment (the kernel map has one range "
                     "of each)", n_text > 1 ? "executable" : "read-only");
            return false;
        }
        if (end > lay.end)
            lay.end = end;
        memcpy(ram + ph.p_paddr, img + ph.p_offset, ph.p_filesz);
        memset(ram + ph.p_paddr + ph.p_filesz, 0, ph.p_memsz - ph.p_filesz);
        if ((ph.p_flags & PF_X) && eh.e_entry >= ph.p_paddr &&
            eh.e_entry - ph.p_paddr < ph.p_memsz)
            entry_ok = true;
        loaded++;
    }
    if (!loaded) {
        snprintf(err, errlen, "no loadable segment");
        return false;
    }
    if (!entry_ok) {
        snprintf(err, errlen, "entry point 0x%lx is not in an executable segment",
                 (unsigned long)eh.e_entry);
        return false;
    }
    lay.entry = eh.e_entry;
    *out = lay;
    return true;
}
