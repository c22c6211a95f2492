#!/usr/bin/env bash
# Run every benchmark binary, merge their parts into
# harness/results/bench.json and print the figures as a table.
# usage: run-bench.sh BENCH_BIN...
set -euo pipefail
results=harness/results
mkdir -p "$results/parts"
rm -f "$results"/parts/*.json
for bin in "$@"; do
    name=$(basename "$bin")
    echo "== $name"
    "$bin" "$results/parts/$name.json"
done
jq -s 'add' "$results"/parts/*.json > "$results/bench.json"
echo
jq -r '["figure","value","unit","baseline","baseline value","ratio"],
       (.[] | [.name, (.value|tostring), .unit, (.baseline_name // "-"),
               ((.baseline_value // "-")|tostring), ((.ratio // "-")|tostring)])
       | @tsv' "$results/bench.json" |
    awk -F'\t' '{ printf "%-40s %12s %-6s %-28s %14s %8s\n", $1, $2, $3, $4, $5, $6 }'
echo
echo "written: $results/bench.json"
