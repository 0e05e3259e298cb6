#!/usr/bin/env bash
# A/B of the SSL encoder's fast path: the packed-kernel encoder of BASE (a git revision) against
# this working tree, alternating in one run on one machine so that a change of load reaches both.
#   tools/bench/ssl_ab.sh MODEL_DIR [BASE] [THREADS] [ROUNDS] [SECONDS]
# MODEL_DIR: a checkpoint folder, e.g. the random base-size wav2vec2 that
#   tools/fixtures/ssl_bench_torch.py writes (see BENCHMARKS.md, "SSL encoders").
# BASE: default 05ed0ba, the last commit before the encoder was rebuilt on candle's VarBuilder
#   (de7ce5f: SimpleBackend weight source, one Linear type). Any revision with
#   crates/emobridge-ssl/examples/bench.rs works.
# SECONDS: audio length per forward pass (default 10).
#
# The old side is built from BASE's sources in its own target folder (AB_OLD_TARGET, default
# target/ab-old), seeded once from target/release so that only the workspace crates compile; its
# bench binary is kept there as bench-<commit>, so a second run with the same BASE builds nothing
# on that side. The script prints both binaries' SHA-256 and refuses to compare a binary with
# itself. Each round runs the old and the new binary for f32 and bf16 (one warm-up + 5 timed
# runs each) and prints their JSON lines; the last lines give the median of the per-round
# medians and the new/old ratio. Run it alone on a quiet machine.
set -euo pipefail
USAGE="usage: tools/bench/ssl_ab.sh MODEL_DIR [BASE=05ed0ba] [THREADS=2] [ROUNDS=5] [SECONDS=10]"
MODEL=${1:?$USAGE}
BASE=${2:-05ed0ba}
THREADS=${3:-2}
ROUNDS=${4:-5}
SECS=${5:-10}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
OLD_TARGET=${AB_OLD_TARGET:-$TARGET/ab-old}
SHA=$(git -C "$ROOT" rev-parse --verify "$BASE^{commit}")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# --- The old side, in its own target folder. ---
OLD_BIN="$OLD_TARGET/bench-$SHA"
if [ ! -x "$OLD_BIN" ]; then
  mkdir -p "$OLD_TARGET"
  if [ ! -d "$OLD_TARGET/release" ] && [ -d "$TARGET/release" ]; then
    # Seed with the dependencies already built: their files hard-linked (cargo never rewrites a
    # fresh unit's files), build-script outputs and fingerprints copied. The workspace crates'
    # artifacts are left out: cargo names them by their path inside the workspace, the same in
    # both trees, so they must be compiled here into files of their own.
    echo "seeding $OLD_TARGET/release from $TARGET/release" >&2
    mkdir -p "$OLD_TARGET/release/deps"
    cp -a "$TARGET/release/build" "$TARGET/release/.fingerprint" "$OLD_TARGET/release/"
    rm -rf "$OLD_TARGET"/release/build/emobridge* "$OLD_TARGET"/release/.fingerprint/emobridge*
    find "$TARGET/release/deps" -maxdepth 1 -type f ! -name '*emobridge*' \
      -exec ln -f {} "$OLD_TARGET/release/deps/" \;
  fi
  SRC="$OLD_TARGET/src-$SHA"
  rm -rf "$SRC"
  mkdir -p "$SRC"
  git -C "$ROOT" archive "$SHA" | tar -x -C "$SRC"
  (cd "$SRC" && CARGO_TARGET_DIR="$OLD_TARGET" cargo build --release --locked -p emobridge-ssl --example bench)
  cp "$OLD_TARGET/release/examples/bench" "$OLD_BIN.tmp"
  mv "$OLD_BIN.tmp" "$OLD_BIN"
  rm -rf "$SRC"
fi
cp "$OLD_BIN" "$WORK/bench-old"

# --- The new side: this working tree in the usual target folder. ---
(cd "$ROOT" && CARGO_TARGET_DIR=$TARGET cargo build --release -p emobridge-ssl --example bench)
cp "$TARGET/release/examples/bench" "$WORK/bench-new"

OLD_SUM=$(sha256sum "$WORK/bench-old" | cut -d' ' -f1)
NEW_SUM=$(sha256sum "$WORK/bench-new" | cut -d' ' -f1)
echo "old ($BASE = $SHA): bench sha256 $OLD_SUM"
echo "new (working tree of $(git -C "$ROOT" rev-parse --short HEAD)): bench sha256 $NEW_SUM"
if [ "$OLD_SUM" = "$NEW_SUM" ]; then
  echo "the old and new bench binaries are identical: nothing to compare" >&2
  exit 1
fi

LOG="$WORK/log"
for round in $(seq 1 "$ROUNDS"); do
  for precision in f32 bf16; do
    for side in old new; do
      line=$(RAYON_NUM_THREADS=$THREADS "$WORK/bench-$side" --model "$MODEL" --runs 5 \
        --seconds "$SECS" --precision "$precision")
      echo "round=$round side=$side $line" | tee -a "$LOG"
    done
  done
done

# Median over rounds of each side's median time, and new/old.
for precision in F32 Bf16; do
  for side in old new; do
    grep "side=$side " "$LOG" | grep "\"precision\":\"$precision\"" |
      sed -E 's/.*"median_s":([0-9.eE+-]+).*/\1/' | sort -g |
      awk -v s="$side" -v p="$precision" '{v[NR]=$1} END {printf "%s %s median of medians %.4f s\n", p, s, v[int((NR+1)/2)]}'
  done
done | tee "$WORK/summary"
awk '{t[$1" "$2]=$6} END {split("F32 Bf16", ps, " "); for (i = 1; i <= 2; i++) {q=ps[i]; if ((q" old") in t && t[q" old"] > 0) printf "%s new/old time ratio %.3f\n", q, t[q" new"]/t[q" old"]}}' "$WORK/summary"
