#!/usr/bin/env bash
# Run libFuzzer targets and print, per target: executions, coverage
# (edges, features), corpus size and crashes; the table is also saved as
# build/fuzz/summary.json.
#   run-fuzz.sh SECONDS BIN...      each target for SECONDS (make fuzz)
# Env: FUZZ_JOBS (targets run at once, default 1).
# Each target starts from its seed corpus (harness/fuzz/corpus/TARGET/) and
# the corpus earlier runs grew (build/fuzz/corpus/TARGET/, not committed),
# first replays its regression inputs (harness/fuzz/regress/TARGET/: inputs
# that once crashed it), and stops at its first crash, saved under
# build/fuzz/crashes/TARGET/. The exit status is non-zero when any target
# crashed.
set -u
cd "$(dirname "$0")/../.."
if [ "${1:-}" = "--one" ]; then
    secs=$2 bin=$3 resdir=$4
    t=$(basename "$bin")
    out=$resdir/$t
    seeds=harness/fuzz/corpus/$t work=build/fuzz/corpus/$t crashes=build/fuzz/crashes/$t
    mkdir -p "$seeds" "$work" "$crashes"
    log=build/fuzz/logs/$t.log
    mkdir -p build/fuzz/logs
    status=ok
    if [ -d "harness/fuzz/regress/$t" ] && [ -n "$(ls -A "harness/fuzz/regress/$t")" ]; then
        "$bin" -runs=1 harness/fuzz/regress/"$t"/* >"$log.regress" 2>&1 || status=regress-crash
    fi
    if [ "$status" = ok ]; then
        "$bin" -max_total_time="$secs" -print_final_stats=1 -timeout=10 -rss_limit_mb=4096 \
            -artifact_prefix="$crashes/" "$work" "$seeds" >"$log" 2>&1 || status=crash
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" 2>/dev/null | tail -1)
    line=$(grep -E '^#[0-9]+.*cov: ' "$log" 2>/dev/null | tail -1)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$line")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$line")
    corp=$(sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p' <<<"$line")
    crashes_n=$(find "$crashes" -type f | wc -l)
    echo "$t ${execs:-0} ${cov:-0} ${ft:-0} ${corp:-0} $crashes_n $status" >"$out"
    if [ "$status" != ok ]; then
        echo "== $t: $status; the log follows (build/fuzz/logs/$t.log*)" >&2
        if [ "$status" = regress-crash ]; then tail -40 "$log.regress" >&2; else grep -A30 -E '^==[0-9]+==ERROR|runtime error|deadly signal|ERROR: libFuzzer' "$log" | head -60 >&2; fi
    fi
    exit 0
fi

secs=${1:?usage: run-fuzz.sh SECONDS BIN...}
shift
[ $# -gt 0 ] || { echo "run-fuzz.sh: no fuzz targets given" >&2; exit 2; }
jobs=${FUZZ_JOBS:-1}
res=$(mktemp -d /tmp/moat-fuzz.XXXXXX)
trap 'rm -rf "$res"' EXIT
echo "fuzz: $# targets, ${secs} s each, $jobs at a time"
for bin in "$@"; do echo "$bin"; done |
    xargs -P "$jobs" -I{} "$0" --one "$secs" {} "$res"
printf '%-22s %14s %8s %8s %8s %8s  %s\n' target executions edges features corpus crashes status
failed=0 json="["
for bin in "$@"; do
    t=$(basename "$bin")
    read -r name execs cov ft corp crashes status <"$res/$t" || { name=$t execs=0 cov=0 ft=0 corp=0 crashes=0 status=no-result; }
    printf '%-22s %14s %8s %8s %8s %8s  %s\n' "$name" "$execs" "$cov" "$ft" "$corp" "$crashes" "$status"
    [ "$status" = ok ] || failed=$((failed + 1))
    json+=$(printf '%s{"target":"%s","seconds":%s,"executions":%s,"edges":%s,"features":%s,"corpus":%s,"crash_files":%s,"status":"%s"}' \
        "$([ "$json" = "[" ] || echo ,)" "$name" "$secs" "$execs" "$cov" "$ft" "$corp" "$crashes" "$status")
done
mkdir -p build/fuzz
echo "$json]" >build/fuzz/summary.json
echo "fuzz: $# targets, $failed crashed (table saved as build/fuzz/summary.json)"
[ "$failed" -eq 0 ]
