/*
 * grub_bios_embed — make a GPT disk image boot GRUB under a PC BIOS, on
 * an image file, without grub-bios-setup (which insists on probing the
 * device that holds its own directory, and so cannot work on a file on
 * these machines):
 *   grub_bios_embed DISK BOOT_IMG CORE_IMG CORE_LBA
 * writes GRUB's boot.img into the MBR's boot code (keeping the disk
 * signature and the protective partition table) and core.img at sector
 * CORE_LBA (the start of the "BIOS boot" partition), then points each at
 * the next: boot.img's kernel sector at CORE_LBA, its drive check off (a
 * hard disk, never a floppy), and core.img's first-sector block list at
 * the rest of core.img (CORE_LBA + 1, its length, segment 0x820).
 * Offsets: GRUB's i386-pc boot.S and diskboot.S (2.06). GRUB's
 * Reed-Solomon redundancy for core.img is not added (it only repairs a
 * damaged core.img).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SECTOR            512u
#define MBR_CODE_END      0x1B8u     /* disk signature and partition table follow */
#define BOOT_KERNEL_LBA   0x5Cu      /* boot.img: 8-byte LBA of core.img's first sector */
#define BOOT_DRIVE_CHECK  0x66u      /* boot.img: a 2-byte jump taken for floppies */
#define DISKBOOT_LIST     (SECTOR - 12u)  /* core.img sector 0: start(8) len(2) segment(2) */
#define CORE_SEGMENT      0x820u

static void die(const char *what, const char *path)
{
    fprintf(stderr, "grub_bios_embed: %s %s: %s\n", what, path, errno ? strerror(errno) : "");
    exit(1);
}

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        die("cannot open", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (n <= 0)
        die("empty file", path);
    uint8_t *b = calloc(1, (size_t)n + SECTOR);
    if (!b || fread(b, 1, (size_t)n, f) != (size_t)n)
        die("cannot read", path);
    fclose(f);
    *len = (size_t)n;
    return b;
}

static void put_le(uint8_t *p, uint64_t v, unsigned bytes)
{
    for (unsigned i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: grub_bios_embed DISK BOOT_IMG CORE_IMG CORE_LBA\n");
        return 2;
    }
    size_t boot_len, core_len;
    uint8_t *boot = slurp(argv[2], &boot_len), *core = slurp(argv[3], &core_len);
    uint64_t core_lba = strtoull(argv[4], NULL, 0);
    if (boot_len != SECTOR) {
        errno = 0;
        die("boot.img is not one sector:", argv[2]);
    }
    size_t core_sectors = (core_len + SECTOR - 1) / SECTOR;
    if (core_sectors < 2 || core_sectors > 0xFFFF) {
        errno = 0;
        die("core.img has an impossible size:", argv[3]);
    }
    int fd = open(argv[1], O_RDWR);
    if (fd < 0)
        die("cannot open", argv[1]);
    uint8_t mbr[SECTOR];
    if (pread(fd, mbr, SECTOR, 0) != SECTOR)
        die("cannot read the MBR of", argv[1]);
    if (mbr[510] != 0x55 || mbr[511] != 0xAA) {
        errno = 0;
        die("no protective MBR (run sgdisk first):", argv[1]);
    }
    put_le(boot + BOOT_KERNEL_LBA, core_lba, 8);
    boot[BOOT_DRIVE_CHECK] = 0x90;
    boot[BOOT_DRIVE_CHECK + 1] = 0x90;
    memcpy(mbr, boot, MBR_CODE_END);
    put_le(core + DISKBOOT_LIST, core_lba + 1, 8);
    put_le(core + DISKBOOT_LIST + 8, core_sectors - 1, 2);
    put_le(core + DISKBOOT_LIST + 10, CORE_SEGMENT, 2);
    if (pwrite(fd, mbr, SECTOR, 0) != SECTOR ||
        pwrite(fd, core, core_sectors * SECTOR, (off_t)(core_lba * SECTOR)) !=
            (ssize_t)(core_sectors * SECTOR))
        die("cannot write", argv[1]);
    close(fd);
    printf("grub_bios_embed: boot.img in the MBR, core.img (%zu sectors) at LBA %llu\n",
           core_sectors, (unsigned long long)core_lba);
    return 0;
}
