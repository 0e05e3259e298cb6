#!/usr/bin/env bash
# Fine-tuning cost per method on a base-size (wav2vec2-base shape) randomly initialised encoder,
# batch 4 × 4 s: trainable parameters, training steps/s and peak RSS, emobridge vs PyTorch + peft
# on the same shapes and thread count, alternating per method, one process per measurement.
# Run alone on a quiet machine:
#   PY=path/to/python THREADS=8 STEPS=5 tools/bench/finetune_cost.sh > finetune_cost.jsonl
# (the python needs torch, transformers and peft). The cuda path: build with
# `--features cuda` and pass a CUDA device in LoadOptions (not measured here).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-python3}
THREADS=${THREADS:-$(nproc)}
STEPS=${STEPS:-5}
BATCH=${BATCH:-4}
SECONDS_PER_CLIP=${SECONDS_PER_CLIP:-4}
METHODS=${METHODS:-"frozen weighted-sum bitfit lora adapter full"}
export RAYON_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# transformers' Wav2Vec2Config() defaults are the base model's shapes.
"$PY" -c "from transformers import Wav2Vec2Config; Wav2Vec2Config().save_pretrained('$tmp')"
cargo build --release -q -p emobridge-ssl --example finetune_cost
BIN=target/release/examples/finetune_cost
for m in $METHODS; do
  "$BIN" "$tmp/config.json" "$m" "$STEPS" "$BATCH" "$SECONDS_PER_CLIP"
  "$PY" tools/bench/finetune_cost_torch.py "$tmp/config.json" "$m" "$STEPS" "$BATCH" "$SECONDS_PER_CLIP"
done
