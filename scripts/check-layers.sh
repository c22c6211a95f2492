#!/usr/bin/env bash
# Check on the objects that no layer calls a layer above it (the include
# paths in GNUmakefile already keep each layer from including one above).
#   check-layers.sh LIBDIR [GUESTDIR]
# LIBDIR holds the host layer archives (libmoatbase.a, libmoatiommu.a,
# libmoatdev.a, libmoatvmm.a: bottom up) and the client side's (libmoat.a,
# libmoatclients.a), e.g. build/asan. Each archive may use symbols defined
# in itself, in layers below it, or outside the project (libc, lwIP);
# libmoat.a and libmoatclients.a none of the host layers'. GUESTDIR (e.g.
# build/guest) adds the drivers: a driver's objects may use only the
# driver API (dd_*) and the string functions of dd_kstring.h.
# Prints every violation, "layers: ok" when there is none; exit 1 if any.
set -euo pipefail
lib=${1:?usage: check-layers.sh LIBDIR [GUESTDIR]}
guest=${2:-}
tmp=$(mktemp -d /tmp/moat-layers.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

defs() { nm -g --defined-only "$1" 2>/dev/null | awk 'NF == 3 && $2 ~ /^[TDBRVWGS]$/ { print $3 }' | sort -u; }
# "object: symbol" for every undefined symbol of the archive.
undefs() {
    nm -g -u -A "$1" 2>/dev/null | awk '{ n = split($1, p, ":"); print p[n - 1] " " $NF }' | sort -u
}

bad=0
layers=(base iommu dev vmm)
: >"$tmp/below"
for i in "${!layers[@]}"; do
    l=${layers[$i]}
    a=$lib/libmoat$l.a
    [ -f "$a" ] || { echo "layers: $a is missing (build it first)" >&2; exit 2; }
    defs "$a" >"$tmp/own"
    : >"$tmp/above"
    for j in "${!layers[@]}"; do
        [ "$j" -gt "$i" ] && defs "$lib/libmoat${layers[$j]}.a" >>"$tmp/above"
    done
    sort -u "$tmp/own" "$tmp/below" >"$tmp/allowed"
    sort -u "$tmp/above" | comm -23 - "$tmp/allowed" >"$tmp/forbidden"
    while read -r obj sym; do
        if grep -qxF "$sym" "$tmp/forbidden"; then
            echo "layers: $l ($obj) uses $sym, defined in a layer above it"
            bad=$((bad + 1))
        fi
    done < <(undefs "$a")
    cat "$tmp/own" >>"$tmp/below"
done

# The client side shares only shared/src (ABI code, in both archives).
for a in libmoat.a libmoatclients.a; do
    [ -f "$lib/$a" ] || continue
    sort -u "$tmp/below" | comm -23 - <(defs "$lib/libmoat.a") >"$tmp/forbidden"
    while read -r obj sym; do
        if grep -qxF "$sym" "$tmp/forbidden"; then
            echo "layers: client side $a ($obj) uses $sym of the host layers"
            bad=$((bad + 1))
        fi
    done < <(undefs "$lib/$a")
done

if [ -n "$guest" ]; then
    for d in "$guest"/driver-domains/*/; do
        [ -d "$d" ] || continue
        objs=("$d"*.o)
        [ -e "${objs[0]}" ] || continue
        for o in "${objs[@]}"; do defs "$o"; done | sort -u >"$tmp/own"
        for o in "${objs[@]}"; do
            nm -u "$o" | awk '{ print $NF }' | while read -r sym; do
                grep -qxF "$sym" "$tmp/own" && continue
                case $sym in
                    dd_*|memset|memcpy|memmove|memcmp|strlen|strnlen|strcmp|strncmp|domain_main) ;;
                    *) echo "layers: driver $(basename "$d") ($(basename "$o")) uses $sym, not the driver API" ;;
                esac
            done
        done
    done >"$tmp/drivers"
    if [ -s "$tmp/drivers" ]; then
        cat "$tmp/drivers"
        bad=$((bad + $(wc -l <"$tmp/drivers")))
    fi
fi

if [ "$bad" -gt 0 ]; then
    echo "layers: $bad forbidden dependencies (see the layer list in GNUmakefile)"
    exit 1
fi
echo "layers: ok"
