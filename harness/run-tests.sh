#!/usr/bin/env bash
# Run the Criterion suites and print one closing line:
#   N passed, N failed, N skipped
# usage: run-tests.sh UNIT_BIN... -- KVM_BIN...
# Unit suites run in parallel; KVM suites one test at a time (they boot real
# domains and time heartbeats on a 2-core machine). A skipped test (no
# /dev/kvm) says SKIPPED in its output and is counted, never hidden.
set -u
tapdir=$(mktemp -d /tmp/moat-tap.XXXXXX)
trap 'rm -rf "$tapdir"' EXIT
jobs=2
suites_failed=0
for bin in "$@"; do
    if [ "$bin" = "--" ]; then jobs=1; continue; fi
    # build/asan/test/test_x and build/tsan/test/test_x: one report each.
    name=$(basename "$(dirname "$(dirname "$bin")")")-$(basename "$bin")
    echo "== $name"
    if ! "$bin" --jobs="$jobs" --tap="$tapdir/$name.tap" 2>"$tapdir/$name.log"; then
        suites_failed=$((suites_failed + 1))
        # Show the full log of a failing suite, and the domain events in it.
        cat "$tapdir/$name.log"
    else
        grep -E '^\[====\]|SKIPPED' "$tapdir/$name.log" || true
    fi
    [ -s "$tapdir/$name.tap" ] || { echo "$name: produced no TAP report" >&2; suites_failed=$((suites_failed + 1)); }
done
cat "$tapdir"/*.tap > "$tapdir/all" 2>/dev/null || true
passed=$(grep -E '^ok ' "$tapdir/all" | grep -vc '# SKIP' || true)
skipped=$(grep -E '^ok .*# SKIP' "$tapdir/all" | wc -l)
failed=$(grep -cE '^not ok ' "$tapdir/all" || true)
if [ "$skipped" -gt 0 ]; then
    echo "SKIPPED tests:"
    grep -E '^ok .*# SKIP' "$tapdir/all" | sed 's/^ok - /  /'
fi
if [ "$suites_failed" -gt 0 ] && [ "$failed" -eq 0 ]; then
    failed=$suites_failed   # a suite crashed before reporting its tests
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
