#!/usr/bin/env bash
# SSL encoder start-up, whole processes, both sides alternating in one run (BENCHMARKS.md,
# "SSL encoder start-up"):
#   tools/bench/ssl_startup.sh [PYTHON] [WORKDIR] [ROUNDS] [THREADS]
# PYTHON: an interpreter with torch + transformers (default python3). WORKDIR (default
# ${TMPDIR:-/tmp}/emobridge-ssl-startup) receives two random checkpoints made by
# tools/bench/ssl_startup_torch.py: `base` (wav2vec2-base shape, ~360 MB f32 safetensors) and
# `large` (HuBERT-large shape, 24 x 1024, ~1.26 GB). Each round runs, per model: PyTorch
# (`from_pretrained` + one forward pass on a 1 s clip), emobridge f32 and emobridge bf16 (load +
# the same forward pass, every hidden state), each under GNU time for whole-process wall time and
# peak RSS. The files are read once first so that every side finds them in the page cache.
# The summary gives medians over rounds and PyTorch / emobridge ratios.
set -euo pipefail
PY=${1:-python3}
WORK=${2:-${TMPDIR:-/tmp}/emobridge-ssl-startup}
ROUNDS=${3:-5}
THREADS=${4:-2}
cd "$(dirname "$0")/../.."
cargo build --release -p emobridge-ssl --example startup
BIN=${CARGO_TARGET_DIR:-target}/release/examples/startup
mkdir -p "$WORK"
for size in base large; do
  if [ ! -f "$WORK/$size/model.safetensors" ]; then
    "$PY" tools/bench/ssl_startup_torch.py make --out "$WORK/$size" --size "$size"
  fi
  cat "$WORK/$size/model.safetensors" > /dev/null
done
LOG="$WORK/startup.log"
: > "$LOG"
run() { # label, command...
  local label=$1
  shift
  local line
  line=$(/usr/bin/time -f 'TIME wall_s=%e maxrss_kb=%M' -o "$WORK/time.txt" "$@" | tail -n 1)
  echo "$label $(cat "$WORK/time.txt") $line" | tee -a "$LOG"
}
for round in $(seq 1 "$ROUNDS"); do
  for size in base large; do
    run "round=$round model=$size side=pytorch" env OMP_NUM_THREADS="$THREADS" HF_HUB_OFFLINE=1 \
      "$PY" tools/bench/ssl_startup_torch.py run --model-dir "$WORK/$size" --seconds 1 --threads "$THREADS"
    for precision in f32 bf16; do
      run "round=$round model=$size side=emobridge-$precision" env RAYON_NUM_THREADS="$THREADS" \
        "$BIN" --model "$WORK/$size" --seconds 1 --precision "$precision"
    done
  done
done
"$PY" - "$LOG" <<'PYEOF'
import json, re, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    head, _, js = line.partition(" {")
    lab = dict(kv.split("=") for kv in re.findall(r"\w+=[\w.-]+", head))
    d = json.loads("{" + js)
    key = (lab["model"], lab["side"])
    r = rows.setdefault(key, {"wall_s": [], "rss_mb": [], "load_s": [], "first_output_s": []})
    r["wall_s"].append(float(lab["wall_s"]))
    r["rss_mb"].append(float(lab["maxrss_kb"]) / 1024)
    r["load_s"].append(d["load_s"])
    r["first_output_s"].append(d["first_output_s"])
med = lambda xs: statistics.median(xs)
print("\nmodel side: median load_s, first_output_s (in-process), whole-process wall_s, peak RSS MB")
for (model, side), r in sorted(rows.items()):
    print(f"{model} {side}: {med(r['load_s']):.3f} {med(r['first_output_s']):.3f} "
          f"{med(r['wall_s']):.2f} {med(r['rss_mb']):.0f}")
for model in sorted({m for m, _ in rows}):
    torch = rows.get((model, "pytorch"))
    for side in ("emobridge-f32", "emobridge-bf16"):
        ours = rows.get((model, side))
        if torch and ours:
            print(f"{model} {side} vs pytorch: load {med(torch['load_s']) / med(ours['load_s']):.1f}x, "
                  f"first output {med(torch['first_output_s']) / med(ours['first_output_s']):.1f}x, "
                  f"whole process {med(torch['wall_s']) / med(ours['wall_s']):.1f}x, "
                  f"peak RSS {med(ours['rss_mb']):.0f} vs {med(torch['rss_mb']):.0f} MB")
PYEOF
