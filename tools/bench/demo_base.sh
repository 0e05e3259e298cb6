#!/usr/bin/env bash
# `emobridge demo --model <random base-size wav2vec2>` as a user runs it (whole process: corpus,
# descriptors, probes, continuous study, extraction of every layer, the per-layer probe and FAD
# studies, the short fine-tuning run, report.html), with its wall and CPU time and peak memory,
# and the wall time of each stage read off the demo's own log. Run it alone on a quiet machine:
#
#     PYTHON=python3 tools/bench/demo_base.sh [WORK_DIR] [RUNS] [-- DEMO_ARGS...]
#     # defaults: target/demo-base, 1; e.g. `-- --quick` for the quick corpus
#     SECTION=finetune PYTHON=python3 tools/bench/demo_base.sh [WORK_DIR] [RUNS] [-- --quick]
#     # the fine-tuning section alone (the demo's corpus from `emobridge synth --seed 7`, then
#     # the demo's own section through the `demo_finetune` example), with its sizing sentence
#     # and the CPU time, encoder passes and seconds of audio of each training run
#
# The model (wav2vec2-base shape, 12 × 768, seeded random weights, no hub) is written once into
# WORK_DIR/w2v2-base-random by tools/fixtures/ssl_bench_torch.py (PYTHON needs torch and
# transformers). Goal (issue 14): the full demo with a base-size encoder within 15 minutes on
# 2 cores. Prints one line per stage (seconds from the previous stage's start), then the
# process's wall, user and system seconds and peak RSS from /usr/bin/time.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${1:-$ROOT/target/demo-base}
RUNS=${2:-1}
shift $(( $# < 2 ? $# : 2 ))
[ "${1:-}" = "--" ] && shift
PY=${PYTHON:-python3}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
(cd "$ROOT" && cargo build --release -q -p emobridge-cli)
BIN=$TARGET/release/emobridge
SECTION=${SECTION:-all}
MODEL=$WORK/w2v2-base-random
mkdir -p "$WORK"
if [ ! -f "$MODEL/config.json" ]; then
  HF_HUB_OFFLINE=1 "$PY" "$ROOT/tools/fixtures/ssl_bench_torch.py" --model-dir "$MODEL" \
    --seconds 1 --threads 2 --runs 1 >/dev/null
fi
TIME=/usr/bin/time
[ -x "$TIME" ] || { echo "needs /usr/bin/time (Debian package time)" >&2; exit 1; }
if [ "$SECTION" = finetune ]; then
  (cd "$ROOT" && cargo build --release -q -p emobridge-studies --example demo_finetune)
  QUICK=()
  for a in "$@"; do [ "$a" = --quick ] && QUICK=(--quick); done
  CORPUS=$WORK/corpus${QUICK:+-quick}
  if [ ! -f "$CORPUS/manifest.csv" ]; then
    if [ ${#QUICK[@]} -gt 0 ]; then
      "$BIN" synth --out "$CORPUS" --seed 7 --clips-per-cell 2 --people 4 --continuous 4 >/dev/null 2>&1
    else
      "$BIN" synth --out "$CORPUS" --seed 7 >/dev/null 2>&1
    fi
  fi
  for run in $(seq 1 "$RUNS"); do
    OUT=$WORK/finetune-$run
    rm -rf "$OUT"
    NO_COLOR=1 RUST_LOG=info "$TIME" -v -o "$WORK/time-finetune-$run.txt" \
      "$TARGET/release/examples/demo_finetune" "$CORPUS/manifest.csv" "$MODEL" "$OUT" "${QUICK[@]}" \
      >"$WORK/finetune-$run.out" 2>"$WORK/finetune-$run.log"
    echo "# fine-tuning section, run $run"
    head -1 "$WORK/finetune-$run.out"
    sed -n 's/.*finetune cost \([^:]*\): \([0-9.]* s wall, [0-9.]* s CPU\).*/  \1: \2/p' "$WORK/finetune-$run.log"
    tail -1 "$WORK/finetune-$run.out"
    grep -E "Elapsed|User time|System time|Maximum resident" "$WORK/time-finetune-$run.txt"
  done
  exit 0
fi
for run in $(seq 1 "$RUNS"); do
  OUT=$WORK/run-$run
  rm -rf "$OUT"
  NO_COLOR=1 RUST_LOG=info "$TIME" -v -o "$WORK/time-$run.txt" \
    "$BIN" demo --model "$MODEL" --out "$OUT" "$@" >/dev/null 2>"$WORK/demo-$run.log"
  test -f "$OUT/report.html"
  echo "# run $run"
  # Stage boundaries: the demo's step lines and the FAD study's per-layer lines.
  "$PY" - "$WORK/demo-$run.log" "$WORK/time-$run.txt" <<'PY'
import re, sys
from datetime import datetime
marks = []
strip = re.compile(r"\x1b\[[0-9;]*m")
for line in open(sys.argv[1], errors="replace"):
    line = strip.sub("", line)
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z\s+\w+\s+(.*)", line)
    if not m:
        continue
    msg = m.group(2)
    if re.match(r"(step \d/\d|extra step|continuous arousal|FAD study: reading)", msg):
        t = datetime.fromisoformat(m.group(1)[:26])
        marks.append((t, msg[:90]))
    last = datetime.fromisoformat(m.group(1)[:26])
marks.append((last, "end of log"))
for (t0, name), (t1, _) in zip(marks, marks[1:]):
    print(f"{(t1 - t0).total_seconds():8.1f} s  {name}")
fields = {}
for line in open(sys.argv[2]):
    k, _, v = line.strip().rpartition(": ")
    fields[k] = v
wall = fields.get("Elapsed (wall clock) time (h:mm:ss or m:ss)", "?")
print(f"whole process: wall {wall}, user {fields.get('User time (seconds)')} s, "
      f"system {fields.get('System time (seconds)')} s, "
      f"peak RSS {int(fields.get('Maximum resident set size (kbytes)', 0)) / 1024:.0f} MB")
PY
done
