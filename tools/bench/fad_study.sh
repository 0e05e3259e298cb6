#!/usr/bin/env bash
# The per-emotion FAD study (`emobridge fad --manifest ... --bootstrap B`), the CLI built at BASE
# (a git revision, default 621ce2f: before groups and bootstrap replicates were assembled from
# per-clip statistics) against this working tree, whole process, alternating in one run on a
# synthetic base-size cache. Run it alone on a quiet machine:
#
#     tools/bench/fad_study.sh [BASE] [WORK_DIR] [ROUNDS] [CLIPS] [STATES] [BOOTSTRAP]
#     # defaults: 621ce2f, target/fad-study, 3, 240, 13, 100 (the full demo's bootstrap)
#
# The cache (crates/emobridge-studies/examples/fad_study_cache.rs, written once into WORK_DIR):
# CLIPS clips of 120–180 frames × STATES hidden states × 768, speech in 6 emotions, music in 4.
# Prints each round's wall and CPU (user + system, /usr/bin/time) seconds and peak RSS (GB), the
# medians of each side and old/new, the larger peak RSS of each side, and the largest relative
# difference between the two sides' distances and interval bounds (speech_vs_music.csv,
# pairs.csv). PYTHON (default `python3`) is used for the summary only (standard library).
set -euo pipefail
BASE=${1:-621ce2f}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${2:-$ROOT/target/fad-study}
ROUNDS=${3:-3}
CLIPS=${4:-240}
STATES=${5:-13}
BOOT=${6:-100}
PY=${PYTHON:-python3}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
mkdir -p "$WORK"

# The old side: BASE's sources (extracted once into WORK_DIR/src-<commit>) built in their own
# target folder, WORK_DIR/target-old, which starts as a copy of this tree's target/release so that
# only the workspace crates compile. Sharing the main target folder, as tools/bench/ssl_ab.sh
# does, left cargo taking the new tree for up to date with the old build's artifacts (identical
# binaries), so the sides are kept apart. The old binary is kept as WORK_DIR/emobridge-old with
# the commit it was built from (WORK_DIR/emobridge-old.commit): a later run with the same BASE
# and WORK_DIR builds nothing on the old side.
BASE_SHA=$(git -C "$ROOT" rev-parse --verify "$BASE^{commit}")
if [ "$(cat "$WORK/emobridge-old.commit" 2>/dev/null)" != "$BASE_SHA" ] || [ ! -x "$WORK/emobridge-old" ]; then
  OLD_SRC=$WORK/src-$BASE_SHA
  if [ ! -f "$OLD_SRC/Cargo.toml" ]; then
    rm -rf "$OLD_SRC"
    mkdir -p "$OLD_SRC"
    git -C "$ROOT" archive "$BASE_SHA" | tar -x -C "$OLD_SRC"
  fi
  if [ ! -d "$WORK/target-old/release" ]; then
    mkdir -p "$WORK/target-old"
    cp -a "$TARGET/release" "$WORK/target-old/"
  fi
  (cd "$OLD_SRC" && EMOBRIDGE_GIT_COMMIT=$BASE_SHA CARGO_TARGET_DIR=$WORK/target-old \
    cargo build --release -q -p emobridge-cli)
  cp "$WORK/target-old/release/emobridge" "$WORK/emobridge-old"
  echo "$BASE_SHA" >"$WORK/emobridge-old.commit"
fi
(cd "$ROOT" && CARGO_TARGET_DIR=$TARGET cargo build --release -q -p emobridge-cli \
  -p emobridge-studies --example fad_study_cache)
cp "$TARGET/release/emobridge" "$WORK/emobridge-new"
OLD_SUM=$(sha256sum "$WORK/emobridge-old" | cut -d' ' -f1)
NEW_SUM=$(sha256sum "$WORK/emobridge-new" | cut -d' ' -f1)
echo "old ($BASE_SHA): sha256 $OLD_SUM"
echo "new (working tree): sha256 $NEW_SUM"
if [ "$OLD_SUM" = "$NEW_SUM" ]; then
  echo "the old and new binaries are identical: nothing to compare" >&2
  exit 1
fi
if [ "$(cat "$WORK/shape" 2>/dev/null)" != "$CLIPS $STATES" ]; then
  rm -rf "$WORK/cache" "$WORK/manifest.csv"
  "$TARGET/release/examples/fad_study_cache" "$WORK" "$CLIPS" "$STATES" 768 >/dev/null
  echo "$CLIPS $STATES" >"$WORK/shape"
fi
study() {
  rm -rf "$WORK/run-$1"
  /usr/bin/time -f "%e %U %S %M" -o "$WORK/$1.time" \
    "$WORK/emobridge-$1" fad --manifest "$WORK/manifest.csv" --cache "$WORK/cache" --model bench \
    --bootstrap "$BOOT" --no-plots --out "$WORK/run-$1" >/dev/null 2>"$WORK/$1.log"
}
LOG="$WORK/times"
: >"$LOG"
for round in $(seq 1 "$ROUNDS"); do
  for side in old new; do
    study "$side"
    read -r wall user sys rss <"$WORK/$side.time"
    awk -v s="$side" -v r="$round" -v w="$wall" -v u="$user" -v y="$sys" -v m="$rss" \
      'BEGIN { printf "round %d %s %.2f %.2f %.2f\n", r, s, w, u + y, m / 1e6 }' | tee -a "$LOG"
  done
done
"$PY" - "$WORK" <<'PY'
import csv, statistics, sys
w = sys.argv[1]
t, c, m = {}, {}, {}
for line in open(f"{w}/times"):
    _, _, side, s, cpu, rss = line.split()
    t.setdefault(side, []).append(float(s))
    c.setdefault(side, []).append(float(cpu))
    m.setdefault(side, []).append(float(rss))
old, new = statistics.median(t["old"]), statistics.median(t["new"])
print(f"median wall: old {old:.2f} s, new {new:.2f} s, old/new {old / new:.1f}x")
old, new = statistics.median(c["old"]), statistics.median(c["new"])
print(f"median CPU (user + system): old {old:.2f} s, new {new:.2f} s, old/new {old / new:.2f}x")
old, new = max(m["old"]), max(m["new"])
print(f"peak RSS (largest of the rounds): old {old:.2f} GB, new {new:.2f} GB")
worst = 0.0
for name, cols in (("speech_vs_music.csv", ("fad", "ci_lower", "ci_upper")), ("pairs.csv", ("fad",))):
    a = list(csv.DictReader(open(f"{w}/run-old/{name}")))
    b = list(csv.DictReader(open(f"{w}/run-new/{name}")))
    assert len(a) == len(b), name
    for x, y in zip(a, b):
        for c in cols:
            if x[c] == "":
                continue
            u, v = float(x[c]), float(y[c])
            worst = max(worst, abs(u - v) / max(abs(u), 1e-300) if u else abs(v))
print(f"largest relative difference old vs new (distances and interval bounds): {worst:.1e}")
PY
