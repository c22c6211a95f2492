#!/usr/bin/env bash
# Fetch lwIP's source, as Debian ships it (the source package of the
# liblwip-dev installed: same version, Debian's patches applied), for the
# bare app domains, which build lwIP's core freestanding (Debian's binary
# is a glibc, pthread and SSE build a domain cannot link). Unpacked to
# LWIP_SRC (default /usr/local/src/moat/lwip), the Makefile's default.
# apt checks the files against the archive's signed index. Idempotent: a
# second run fetches nothing and prints one line.
set -euo pipefail

DEST=${LWIP_SRC:-/usr/local/src/moat/lwip}
version=$(dpkg-query -W -f='${source:Version}' liblwip-dev 2>/dev/null || true)
if [ -z "$version" ]; then
    echo "deps: liblwip-dev is not installed: run scripts/install-deps.sh first" >&2
    exit 1
fi
if [ -f "$DEST/src/core/tcp.c" ] && [ "$(cat "$DEST/.moat-version" 2>/dev/null)" = "$version" ]; then
    echo "deps: lwIP source $version present in $DEST"
    exit 0
fi
if [ "$(id -u)" -ne 0 ] && ! mkdir -p "$DEST" 2>/dev/null; then
    echo "deps: cannot write $DEST: run as root, or set LWIP_SRC to a directory of yours" >&2
    exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/get"
# The archive the system's own sources name, as deb-src, in a private list
# directory: the system's apt configuration is left as it was.
uri=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -1)
suite=$(. /etc/os-release && echo "$VERSION_CODENAME")
cat > "$work/src.sources" <<SRC
Types: deb-src
URIs: ${uri:-http://deb.debian.org/debian}
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
apt_opts=(-o "Dir::Etc::sourcelist=$work/src.sources" -o Dir::Etc::sourceparts=-
          -o "Dir::State::Lists=$work/lists" -o APT::Sandbox::User=root)
echo "deps: fetching the lwip $version source package"
apt-get "${apt_opts[@]}" update -qq
(cd "$work/get" && apt-get "${apt_opts[@]}" source -qq --download-only "lwip=$version" >/dev/null)
# The .dsc's own signature is the uploader's, whose key is not on the
# machine: apt has checked every file against the archive's signed index.
if ! dpkg-source -x "$work"/get/lwip_*.dsc "$work/lwip" >"$work/unpack.log" 2>&1; then
    cat "$work/unpack.log" >&2
    exit 1
fi
rm -rf "$DEST"
mkdir -p "$(dirname "$DEST")"
mv "$work/lwip" "$DEST"
echo "$version" > "$DEST/.moat-version"
echo "deps: lwIP source $version unpacked in $DEST"
