#!/usr/bin/env bash
# Build the moat disk image, without loop devices or mounts:
#   build-disk.sh OUT_DIR KERNEL_ELF32 GRUB_BIOS_EMBED [DOMAIN_ELF...]
# OUT_DIR/disk.raw: 1 GiB, GPT: 1 MiB "BIOS boot" (GRUB's core.img for a
# PC BIOS), a 200 MiB EFI system partition (FAT32, written with mtools:
# GRUB's BOOTX64.EFI, the kernel, the driver domain images grub.cfg
# loads as modules, grub.cfg), the rest a root partition
# for later. Both firmware kinds run GRUB, which loads the kernel by
# multiboot2. OUT_DIR/image.tar.gz: disk.raw alone as GCE imports it
# (oldgnu tar, sparse, gzip).
set -euo pipefail
out=${1:?usage: build-disk.sh OUT_DIR KERNEL_ELF32 GRUB_BIOS_EMBED}
kernel=${2:?kernel}
embed=${3:?grub_bios_embed}
shift 3
here=$(cd "$(dirname "$0")" && pwd)
for t in sgdisk mkfs.vfat mmd mcopy grub-mkimage; do
    command -v "$t" >/dev/null || { echo "build-disk: $t is missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
done
tmp=$out/disk.tmp
rm -rf "$tmp"
mkdir -p "$tmp"
disk=$tmp/disk.raw
truncate -s 1G "$disk"
sgdisk -n 1:2048:+1M -t 1:EF02 -c 1:"BIOS boot" -n 2:0:+200M -t 2:EF00 -c 2:"EFI system" \
    -n 3:0:0 -t 3:8300 -c 3:root "$disk" >/dev/null
# The ESP starts at sector 4096 and is 200 MiB (mkfs.vfat counts KiB); two
# sectors a cluster keep FAT32 above its minimum cluster count.
# (mkfs.vfat then warns that the file is larger than the count: it is.)
mkfs.vfat -F 32 -s 2 -h 4096 -n ESP --offset 4096 "$disk" 204800 2>&1 |
    { grep -v -e '^mkfs.fat' -e 'block count mismatch' || true; } >&2
esp="$disk@@$((4096 * 512))"
mods="part_gpt fat normal configfile multiboot multiboot2 serial terminal echo test boot"
grub-mkimage -O x86_64-efi -o "$tmp/BOOTX64.EFI" -p /boot/grub $mods
grub-mkimage -O i386-pc -o "$tmp/core.img" -p '(hd0,gpt2)/boot/grub' biosdisk $mods
mmd -i "$esp" ::/EFI ::/EFI/BOOT ::/boot ::/boot/grub
mcopy -i "$esp" "$tmp/BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI
mcopy -i "$esp" "$kernel" ::/boot/moat-bare.elf32
for dom in "$@"; do
    mcopy -i "$esp" "$dom" "::/boot/$(basename "$dom")"
done
mcopy -i "$esp" "$here/grub.cfg" ::/boot/grub/grub.cfg
"$embed" "$disk" /usr/lib/grub/i386-pc/boot.img "$tmp/core.img" 2048
sgdisk -v "$disk" | grep -q "No problems found" || { echo "build-disk: sgdisk finds the GPT damaged" >&2; exit 1; }
mv "$disk" "$out/disk.raw"
(cd "$out" && tar --format=oldgnu -Sczf image.tar.gz disk.raw)
rm -rf "$tmp"
echo "images: $out/disk.raw ($(du -h --apparent-size "$out/disk.raw" | cut -f1) apparent, $(du -h "$out/disk.raw" | cut -f1) allocated), $out/image.tar.gz ($(du -h "$out/image.tar.gz" | cut -f1))"
