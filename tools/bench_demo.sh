#!/usr/bin/env bash
# Wall and CPU time of the README's main job with its report, as a user sees it (whole process:
# corpus synthesis, descriptors, probes, FAD, plots, report.html), and of `emobridge report` alone.
# Usage: tools/bench_demo.sh [REPEATS] [--model DIR]   (run alone on a quiet machine)
# Goals (issue 13): `demo --quick` < 2 min and `demo` < 15 min on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
repeats="${1:-3}"
shift || true
extra=("$@")
cargo build --release --locked -p emobridge-cli >/dev/null
bin=target/release/emobridge
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
TIMEFORMAT='%R %U %S'
timed() { { time "$@" >/dev/null 2>&1; } 2>"$work/t"; }
echo "| run | job | wall s | CPU s (user+sys) |"
echo "|---|---|---|---|"
for i in $(seq 1 "$repeats"); do
  for job in quick full; do
    out="$work/$job-$i"
    flag=(); [ "$job" = quick ] && flag=(--quick)
    timed "$bin" demo "${flag[@]}" --out "$out" "${extra[@]}"
    read -r wall user sys <"$work/t"
    test -f "$out/report.html"
    echo "| $i | demo ${flag[*]} ${extra[*]} | $wall | $(awk "BEGIN{print $user + $sys}") |"
    timed "$bin" report "$out" --out "$work/r-$job-$i.html"
    read -r wall user sys <"$work/t"
    echo "| $i | report of that folder | $wall | $(awk "BEGIN{print $user + $sys}") |"
    rm -rf "$out"
  done
done
