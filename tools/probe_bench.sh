#!/usr/bin/env bash
# The probe benchmark: `emobridge probe` against scikit-learn on the same 13-state × 768-dim cache
# of 2,520 clips (6 emotions), whole process each (start-up, reading the cache, every fit,
# writing), alternating sides. Run it alone on a quiet machine:
#
#     tools/probe_bench.sh [WORK_DIR] [ROUNDS]        # defaults: target/probe-bench, 3
#
# PYTHON (default `python3`) must have numpy, pandas, scikit-learn and safetensors.
# Prints each round's seconds, the median ratio, and the largest per-state UA difference.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-target/probe-bench}
ROUNDS=${2:-3}
PY=${PYTHON:-python3}
cargo build --release -q -p emobridge-cli && cargo build --release -q -p emobridge-studies --example probe_bench_cache
BIN=target/release/emobridge
if [ ! -f "$WORK/manifest.csv" ]; then
  target/release/examples/probe_bench_cache "$WORK" >/dev/null
fi
probe() { "$BIN" probe --manifest "$WORK/manifest.csv" --cache "$WORK/cache" --model bench \
  --seeds 1 --normalize per-domain --head logreg --out "$WORK/rust" >/dev/null 2>"$WORK/rust.log"; }
sk() { "$PY" tools/probe_bench_sklearn.py "$WORK/manifest.csv" "$WORK/cache" bench "$WORK/rust/folds" \
  "$WORK/sklearn.csv" 2>"$WORK/sklearn.log"; }
now() { date +%s.%N; }
probe   # warm the page cache and write the folds both sides use
echo "round rust_s sklearn_s"
: >"$WORK/times"
for r in $(seq 1 "$ROUNDS"); do
  t0=$(now); probe; t1=$(now); sk; t2=$(now)
  awk -v r="$r" -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN { printf "%d %.2f %.2f\n", r, b - a, c - b }' | tee -a "$WORK/times"
done
"$PY" - "$WORK" <<'PY'
import sys, statistics, pandas as pd
w = sys.argv[1]
t = [l.split() for l in open(f"{w}/times")]
rust = statistics.median(float(x[1]) for x in t); sk = statistics.median(float(x[2]) for x in t)
print(f"median: emobridge {rust:.2f} s, scikit-learn {sk:.2f} s, ratio {sk / rust:.1f}x")
a = pd.read_csv(f"{w}/rust/scores.csv")[["state", "setting", "ua"]]
b = pd.read_csv(f"{w}/sklearn.csv")
j = a.merge(b, on=["state", "setting"], suffixes=("_emobridge", "_sklearn"))
d = (j.ua_emobridge - j.ua_sklearn).abs()
print(f"{len(j)} state x setting UAs compared; largest difference {100 * d.max():.2f} points "
      f"(state {j.state[d.idxmax()]}, {j.setting[d.idxmax()]})")
PY
