#!/usr/bin/env bash
# A/B of the SSL encoder's fast path: the packed-kernel encoder of BASE (a git revision, default
# the commit before the VarBuilder rebuild of the encoder) against this working tree, alternating
# in one run on one machine so that a change of load reaches both sides.
#   tools/bench/ssl_ab.sh MODEL_DIR [BASE] [THREADS] [ROUNDS]
# MODEL_DIR: a checkpoint folder, e.g. the random base-size wav2vec2 that
#   tools/fixtures/ssl_bench_torch.py writes (see BENCHMARKS.md, "SSL encoders").
# Each round runs the old and the new bench binary for f32 and bf16 (one warm-up + 5 timed runs
# each) and prints their JSON lines; the last lines give the median of the per-round medians.
set -euo pipefail
MODEL=${1:?usage: tools/bench/ssl_ab.sh MODEL_DIR [BASE] [THREADS] [ROUNDS]}
BASE=${2:-05ed0ba}
THREADS=${3:-2}
ROUNDS=${4:-5}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# The old side: BASE's sources built against the same target folder (dependencies are reused).
git -C "$ROOT" archive "$BASE" | tar -x -C "$WORK" --one-top-level=base
(cd "$WORK/base" && CARGO_TARGET_DIR=$TARGET cargo build --release --locked -p emobridge-ssl --example bench)
cp "$TARGET/release/examples/bench" "$WORK/bench-old"
(cd "$ROOT" && CARGO_TARGET_DIR=$TARGET cargo build --release -p emobridge-ssl --example bench)
cp "$TARGET/release/examples/bench" "$WORK/bench-new"

LOG="$WORK/log"
for round in $(seq 1 "$ROUNDS"); do
  for precision in f32 bf16; do
    for side in old new; do
      line=$(RAYON_NUM_THREADS=$THREADS "$WORK/bench-$side" --model "$MODEL" --runs 5 --precision "$precision")
      echo "round=$round side=$side $line" | tee -a "$LOG"
    done
  done
done

# Median over rounds of each side's median time, and new/old.
for precision in F32 Bf16; do
  for side in old new; do
    grep "side=$side " "$LOG" | grep "\"precision\":\"$precision\"" |
      sed -E 's/.*"median_s":([0-9.]+).*/\1/' | sort -g |
      awk -v s="$side" -v p="$precision" '{v[NR]=$1} END {printf "%s %s median of medians %.4f s\n", p, s, v[int((NR+1)/2)]}'
  done
done | tee "$WORK/summary"
awk '{t[$1" "$2]=$6} END {for (p in t) {}; split("F32 Bf16", ps, " "); for (i in ps) {q=ps[i]; if ((q" old") in t) printf "%s new/old time ratio %.3f\n", q, t[q" new"]/t[q" old"]}}' "$WORK/summary"
