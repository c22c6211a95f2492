#!/usr/bin/env bash
# Install the Debian 12 packages moat needs, only those missing, then
# lwIP's source for the bare app domains (fetch-lwip-source.sh). Idempotent:
# a second run installs nothing and prints two lines.
set -euo pipefail

PACKAGES=(gcc make libc6-dev dpkg-dev libcriterion-dev jq qemu-utils libnbd-bin tcpdump liblwip-dev curl iproute2 iputils-ping clang libclang-rt-14-dev qemu-system-x86 ovmf ipxe-qemu grub-pc-bin grub-efi-amd64-bin grub-common mtools gdisk dosfstools)

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "deps: all ${#PACKAGES[@]} packages present"
    exec "$(dirname "$0")/fetch-lwip-source.sh"
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing packages: ${missing[*]}" >&2
    echo "deps: run as root, or: sudo apt-get install ${missing[*]}" >&2
    exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps: installed ${missing[*]}"
exec "$(dirname "$0")/fetch-lwip-source.sh"
