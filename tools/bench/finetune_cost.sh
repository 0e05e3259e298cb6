#!/usr/bin/env bash
# Fine-tuning cost per method on a base-size (wav2vec2-base shape) randomly initialised encoder,
# batch 4 × 4 s: trainable parameters, training steps/s and peak RSS, emobridge vs PyTorch + peft
# on the same shapes and thread count, one whole process per measurement, the two sides
# alternating per method (and which goes first alternating per repeat); prints the raw JSON
# lines to $RAW and a table of medians with the emobridge / PyTorch ratio of steps/s.
# Run alone on a quiet machine:
#   PY=path/to/python THREADS=8 STEPS=5 REPEATS=3 tools/bench/finetune_cost.sh
# (the python needs torch, transformers and peft). A quick check that both sides run, on a tiny
# encoder (the figures mean nothing):
#   SIZE=tiny STEPS=2 REPEATS=1 SECONDS_PER_CLIP=1 tools/bench/finetune_cost.sh
# DEVICE=cuda (or cuda:N) runs both sides on a GPU (the emobridge side built with `--features
# cuda`, see docs/cuda.md); tools/bench/cuda_check.sh runs the same comparison inside its GPU check.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-python3}
THREADS=${THREADS:-$(nproc)}
STEPS=${STEPS:-5}
REPEATS=${REPEATS:-3}
BATCH=${BATCH:-4}
SECONDS_PER_CLIP=${SECONDS_PER_CLIP:-4}
SIZE=${SIZE:-base}
DEVICE=${DEVICE:-cpu}
FEATURES=()
[ "$DEVICE" = cpu ] || FEATURES=(--features cuda)
METHODS=${METHODS:-"frozen weighted-sum bitfit lora adapter full"}
RAW=${RAW:-finetune_cost.jsonl}
export RAYON_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# transformers' Wav2Vec2Config() defaults are the base model's shapes.
"$PY" - "$tmp" "$SIZE" <<'PYEOF'
import sys
from transformers import Wav2Vec2Config
out, size = sys.argv[1], sys.argv[2]
kw = {}
if size == "tiny":
    kw = dict(num_hidden_layers=2, hidden_size=64, num_attention_heads=4, intermediate_size=128,
              conv_dim=(32,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)
elif size != "base":
    sys.exit(f"SIZE is base or tiny, got {size}")
Wav2Vec2Config(**kw).save_pretrained(out)
PYEOF
cargo build --release -q -p emobridge-ssl "${FEATURES[@]}" --example finetune_cost
BIN=${CARGO_TARGET_DIR:-target}/release/examples/finetune_cost
: > "$RAW"
for r in $(seq 1 "$REPEATS"); do
  for m in $METHODS; do
    rust=("$BIN" "$tmp/config.json" "$m" "$STEPS" "$BATCH" "$SECONDS_PER_CLIP" "$DEVICE")
    torch=("$PY" tools/bench/finetune_cost_torch.py "$tmp/config.json" "$m" "$STEPS" "$BATCH" "$SECONDS_PER_CLIP" "$DEVICE")
    if (( r % 2 )); then "${rust[@]}" >> "$RAW"; "${torch[@]}" >> "$RAW"
    else "${torch[@]}" >> "$RAW"; "${rust[@]}" >> "$RAW"; fi
  done
done
"$PY" - "$RAW" "$THREADS" "$BATCH" "$SECONDS_PER_CLIP" "$SIZE" <<'PYEOF'
import json, statistics, sys
raw, threads, batch, secs, size = sys.argv[1:6]
rows = [json.loads(l) for l in open(raw) if l.strip()]
methods = list(dict.fromkeys(r["method"] for r in rows))
def pick(m, impl, key):
    v = [r[key] for r in rows if r["method"] == m and r["impl"] == impl]
    return statistics.median(v) if v else float("nan")
print(f"{size} encoder, batch {batch} × {secs} s, {threads} threads, medians of "
      f"{len(rows) // max(1, 2 * len(methods))} runs")
print("| method | trainable (emobridge) | trainable (PyTorch+peft) | steps/s emobridge | steps/s PyTorch | ratio | peak RSS MiB emobridge | peak RSS MiB PyTorch |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for m in methods:
    e, t = pick(m, "emobridge", "steps_per_s"), pick(m, "pytorch+peft", "steps_per_s")
    print(f"| {m} | {pick(m, 'emobridge', 'trainable'):.0f} | {pick(m, 'pytorch+peft', 'trainable'):.0f} "
          f"| {e:.3f} | {t:.3f} | {e / t:.2f}× | {pick(m, 'emobridge', 'peak_rss_mib'):.0f} "
          f"| {pick(m, 'pytorch+peft', 'peak_rss_mib'):.0f} |")
PYEOF
