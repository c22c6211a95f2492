#!/usr/bin/env bash
# Run every benchmark binary, merge their parts into
# harness/results/bench.json and print the figures as a table.
# usage: run-bench.sh BENCH_BIN...
set -euo pipefail
results=harness/results
mkdir -p "$results/parts"
rm -f "$results"/parts/*.json
# Without /dev/kvm only the benchmarks that need none run (bench_bare_*:
# QEMU under TCG); the other figures in bench.json stay those of the last
# run that had KVM, and this says so.
kvm=1
[ -r /dev/kvm ] && [ -w /dev/kvm ] || kvm=0
for bin in "$@"; do
    name=$(basename "$bin")
    if [ "$kvm" = 0 ] && [[ "$name" != bench_bare_* ]]; then
        echo "== $name: SKIPPED (no usable /dev/kvm): its figures in bench.json are from the last run with KVM"
        continue
    fi
    echo "== $name"
    "$bin" "$results/parts/$name.json"
done
new=$(jq -s 'add // []' "$results"/parts/*.json)
if [ "$kvm" = 1 ] || [ ! -f "$results/bench.json" ]; then
    echo "$new" > "$results/bench.json"
else
    # Every bare_* figure comes from the bench_bare_* that just ran: drop the
    # old ones, so a renamed figure does not linger beside its new name.
    jq --argjson new "$new" '[.[] | select((.name | startswith("bare_") | not) and
                                          (.name as $n | ($new | map(.name) | index($n)) == null))] + $new' \
        "$results/bench.json" > "$results/bench.json.tmp"
    mv "$results/bench.json.tmp" "$results/bench.json"
fi
echo
jq -r '["figure","value","unit","baseline","baseline value","ratio"],
       (.[] | [.name, (.value|tostring), .unit, (.baseline_name // "-"),
               ((.baseline_value // "-")|tostring), ((.ratio // "-")|tostring)])
       | @tsv' "$results/bench.json" |
    awk -F'\t' '{ printf "%-40s %12s %-6s %-28s %14s %8s\n", $1, $2, $3, $4, $5, $6 }'
echo
echo "written: $results/bench.json"
