#!/usr/bin/env bash
# Peak memory of `emobridge extract` against clip length (issue 17 item 9): a 1 h and a 30 s
# synthetic file through a random-init base-size wav2vec2 (12 × 768, built from
# transformers' default Wav2Vec2Config, as the SSL benches do), whole process, peak RSS from
# `/usr/bin/time -v`. Run it alone on a quiet machine.
#   tools/bench/extract_memory.sh [PYTHON] [ROUNDS] [FRAMES] [LONG_S]
# PYTHON: an interpreter with torch + transformers + numpy (default: python3).
# FRAMES: what entries keep, none|f16|f32 (default f16; the 1 h entry then takes ~3.6 GB on disk).
# LONG_S: length of the long file in seconds (default 3600).
# MODEL_DIR=DIR (environment) uses that model folder instead of the random base-size one, e.g.
# crates/emobridge-ssl/tests/fixtures/mert_like_24k for a quick check that the script works.
# The sides alternate for ROUNDS rounds (default 3); the last lines give each side's median peak
# RSS and the long/short ratio (the acceptance bound is 1.5).
set -euo pipefail
PY=${1:-python3}
ROUNDS=${2:-3}
FRAMES=${3:-f16}
LONG_S=${4:-3600}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$ROOT"
cargo build --release -p emobridge-cli
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/emobridge
MODEL=${MODEL_DIR:-$WORK/model}

HF_HUB_OFFLINE=1 "$PY" - "$WORK" "$LONG_S" "${MODEL_DIR:-}" <<'PYEOF'
import sys, wave
import numpy as np
work, long_s, given = sys.argv[1], float(sys.argv[2]), sys.argv[3]
if not given:
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model
    torch.manual_seed(0)
    model = Wav2Vec2Model(Wav2Vec2Config())  # wav2vec2-base shape, random weights
    model.save_pretrained(f"{work}/model")
    Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True).save_pretrained(f"{work}/model")
rng = np.random.default_rng(0)
for name, seconds in (("short", 30.0), ("long", long_s)):
    with wave.open(f"{work}/{name}.wav", "wb") as w:
        w.setnchannels(1); w.setsampwidth(2); w.setframerate(16000)
        left = int(seconds * 16000)
        while left > 0:  # a tone plus noise, written a minute at a time
            n = min(left, 16000 * 60)
            t = np.arange(n) / 16000.0
            x = 0.2 * np.sin(2 * np.pi * 220.0 * t) + 0.05 * rng.standard_normal(n)
            w.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())
            left -= n
    with open(f"{work}/{name}.csv", "w") as f:
        f.write("id,path,domain,corpus,speaker,emotion,arousal,valence,split,annotation\n")
        f.write(f"{name},{name}.wav,speech,bench,a,neutral,,,,\n")
PYEOF

LOG="$WORK/log"
for round in $(seq 1 "$ROUNDS"); do
  for side in short long; do
    rm -rf "$WORK/cache"
    /usr/bin/time -v "$BIN" extract --manifest "$WORK/$side.csv" --model "$MODEL" \
      --cache "$WORK/cache" --tag base --frames "$FRAMES" 2> "$WORK/err"
    rss=$(sed -nE 's/.*Maximum resident set size \(kbytes\): ([0-9]+).*/\1/p' "$WORK/err")
    wall=$(sed -nE 's/.*Elapsed \(wall clock\) time.*: (.*)$/\1/p' "$WORK/err")
    size=$(du -k "$WORK/cache/base/$side.safetensors" | cut -f1)
    echo "round=$round side=$side frames=$FRAMES peak_rss_kb=$rss wall=$wall entry_kb=$size" | tee -a "$LOG"
  done
done
for side in short long; do
  grep "side=$side " "$LOG" | sed -E 's/.*peak_rss_kb=([0-9]+).*/\1/' | sort -n |
    awk -v s="$side" '{v[NR]=$1} END {printf "%s median peak RSS %d kB\n", s, v[int((NR+1)/2)]}'
done | tee "$WORK/summary"
awk '{m[$1]=$5} END {printf "long/short peak RSS ratio %.3f (bound 1.5)\n", m["long"]/m["short"]}' "$WORK/summary"
