#!/usr/bin/env bash
# GPU check of a `--features cuda` build (docs/cuda.md), in one process tree:
#  1. nvidia-smi;
#  2. `emobridge embed --device cuda` against `--device cpu`, every hidden state (max |Δ| per
#     layer, f32 and bf16; on a GPU `--precision bf16` still runs in f32, the bf16 kernels are
#     the CPU's), on the tiny parity fixtures (every family) and a base-size random wav2vec2
#     (made here with transformers), plus transformers itself on the GPU (f32, TF32 off) for the
#     base model; whole-process wall time of each embed;
#  3. `emobridge finetune --device cuda` (every method, both directions) on a tiny synthetic
#     corpus with a tiny fixture encoder, and the same on the CPU by the plain route (`[train]
#     ops = "plain"`, the GPU's code, tested against the fused route on the CPU) and the fused
#     one: completes, finite losses, the largest loss difference against each CPU run;
#  4. training steps/s per method on a base-size encoder (batch 4 × 4 s) on the GPU: the
#     `finetune_cost` example against its PyTorch (+ peft) twin on the same GPU, alternating.
# Outputs (at most 8 files) in $OUT: summary.txt, embed.jsonl, finetune.jsonl, cost.jsonl, log.txt.
#
#   BIN=target/release/emobridge COST=target/release/examples/finetune_cost OUT=out \
#     tools/bench/cuda_check.sh
# Knobs: DEV (cuda), PY (python3 with torch, transformers, peft, safetensors, numpy),
# FIX (the tiny fixture models), TWIN (tools/bench/finetune_cost_torch.py), BASE=0 skips the base-size parts, TORCH=0 the PyTorch twin,
# STEPS (5) timed training steps, REPEATS (1), AUDIO_S (30) length of the base embed's clip,
# CLIP_S (4) seconds per training clip, FT=0 skips the finetune runs.
# On the CPU (DEV=cpu) it checks that the script itself runs: the comparisons are then CPU vs CPU.
set -uo pipefail
BIN=${BIN:-target/release/emobridge}
COST=${COST:-target/release/examples/finetune_cost}
PY=${PY:-python3}
DEV=${DEV:-cuda}
OUT=${OUT:-cuda-check}
FIX=${FIX:-crates/emobridge-ssl/tests/fixtures}
BASE=${BASE:-1}
TORCH=${TORCH:-1}
STEPS=${STEPS:-5}
REPEATS=${REPEATS:-1}
AUDIO_S=${AUDIO_S:-30}
CLIP_S=${CLIP_S:-4}
FT=${FT:-1}
METHODS=${METHODS:-"frozen weighted-sum bitfit lora adapter full"}
TWIN=${TWIN:-tools/bench/finetune_cost_torch.py}
mkdir -p "$OUT"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
S="$OUT/summary.txt"
say() { echo "$*" | tee -a "$S"; }
now() { date +%s.%N; }
exec 3>>"$OUT/log.txt"

# The CUDA 13 libraries the binary links (cuBLAS, cuRAND, NVRTC): where the loader does not find
# them, take those of the PyTorch install (its nvidia-* wheels) or a toolkit.
SP=$("$PY" -c 'import torch, os; print(os.path.dirname(os.path.dirname(torch.__file__)))' 2>/dev/null)
for lib in $(ldd "$BIN" | awk '/not found/ {print $1}'); do
  f=$(find $SP /usr/local/nvidia /usr/local/cuda* -name "$lib" -not -path "*/stubs/*" -not -path "*/compat/*" 2>/dev/null | head -n 1)
  [ -n "$f" ] && export LD_LIBRARY_PATH=$(dirname "$f")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
done
say "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
ldd "$BIN" | grep -E "cuda|cublas|curand|nvrtc|not found" | tee -a "$S"
say "== nvidia-smi"
nvidia-smi 2>&1 | tee -a "$S" || say "(no nvidia-smi)"
"$BIN" --version >&3 2>&1 || { say "cannot run $BIN"; ldd "$BIN" | tee -a "$S"; exit 1; }

# Inputs: clips (16 kHz and 24 kHz), the base-size random wav2vec2, transformers' reference.
"$PY" - "$W" "$BASE" "$AUDIO_S" "$DEV" <<'PYEOF' >&3 2>&1 || say "input generation failed (see log.txt)"
import sys, wave, numpy as np
w, base, audio_s, dev = sys.argv[1], sys.argv[2] == "1", float(sys.argv[3]), sys.argv[4]
def clip(path, sr, seconds, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    x = 0.3 * np.sin(2 * np.pi * (180 + 40 * np.sin(2 * np.pi * 0.7 * t)) * t) + 0.05 * rng.standard_normal(t.size)
    with wave.open(path, "wb") as f:
        f.setnchannels(1); f.setsampwidth(2); f.setframerate(sr)
        f.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())
clip(f"{w}/tiny16.wav", 16000, 2.5, 1)
clip(f"{w}/tiny24.wav", 24000, 2.5, 2)
clip(f"{w}/base.wav", 16000, audio_s, 3)
if base:
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2Model
    torch.manual_seed(0)
    cfg = Wav2Vec2Config()  # wav2vec2-base shapes
    m = Wav2Vec2Model(cfg).eval()
    m.save_pretrained(f"{w}/base", safe_serialization=True)
    from transformers import Wav2Vec2FeatureExtractor
    Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=False).save_pretrained(f"{w}/base")
    if dev.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    with wave.open(f"{w}/base.wav") as f:
        x = np.frombuffer(f.readframes(f.getnframes()), "<i2").astype(np.float32) / 32768.0
    x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
    m = m.to(dev)
    with torch.no_grad():
        hs = m(torch.from_numpy(x)[None].to(dev), output_hidden_states=True).hidden_states
    np.save(f"{w}/base_torch.npy", torch.stack(hs)[:, 0].float().cpu().numpy())
print("inputs ready")
PYEOF

# 2. embed on both devices, both precisions; every layer compared.
compare() { # NAME A.safetensors B.safetensors LABEL
  "$PY" - "$@" <<'PYEOF'
import json, sys, numpy as np
from safetensors.numpy import load_file
name, a, b, label = sys.argv[1:5]
def states(p):
    return np.load(p) if p.endswith(".npy") else load_file(p)["hidden_states"].astype(np.float32)
x, y = states(a), states(b)
if x.shape != y.shape:
    print(json.dumps({"model": name, "compare": label, "error": f"shapes {x.shape} vs {y.shape}"})); sys.exit()
d = np.abs(x - y).reshape(x.shape[0], -1).max(1)
s = np.abs(y).reshape(y.shape[0], -1).max(1)
print(json.dumps({"model": name, "compare": label, "shape": list(x.shape),
                  "max_abs_diff": float(d.max()), "max_abs_ref": float(s.max()),
                  "finite": bool(np.isfinite(x).all()),
                  "per_layer": [float(v) for v in d]}))
PYEOF
}
embed() { # MODEL_DIR WAV DEVICE PRECISION OUTFILE → prints the wall seconds
  local t0 t1
  t0=$(now)
  if "$BIN" embed --model "$1" --device "$3" --precision "$4" --out "$5" "$2" >&3 2>&1; then
    t1=$(now); awk "BEGIN{printf \"%.2f\", $t1 - $t0}"
  else echo "failed"; fi
}
say "== embed: $DEV vs cpu, every hidden state"
: > "$OUT/embed.jsonl"
models=""
for m in "$FIX"/*/; do [ -f "$m/config.json" ] && models="$models ${m%/}"; done
[ "$BASE" = 1 ] && [ -f "$W/base/config.json" ] && models="$models $W/base"
for m in $models; do
  name=$(basename "$m")
  wav="$W/tiny16.wav"; grep -q '"sampling_rate": 24000' "$m/preprocessor_config.json" 2>/dev/null && wav="$W/tiny24.wav"
  [ "$name" = base ] && wav="$W/base.wav"
  for p in f32 bf16; do
    tg=$(embed "$m" "$wav" "$DEV" $p "$W/$name-$p-gpu.st")
    tc=$(embed "$m" "$wav" cpu $p "$W/$name-$p-cpu.st")
    say "$name $p: wall $DEV ${tg} s, cpu ${tc} s"
    if [ "$tg" != failed ] && [ "$tc" != failed ]; then
      compare "$name" "$W/$name-$p-gpu.st" "$W/$name-$p-cpu.st" "$DEV-$p vs cpu-$p" | tee -a "$OUT/embed.jsonl" | cut -c1-220 | tee -a "$S"
    fi
  done
  if [ -f "$W/$name-f32-gpu.st" ] && [ -f "$W/$name-bf16-gpu.st" ]; then
    compare "$name" "$W/$name-bf16-gpu.st" "$W/$name-f32-cpu.st" "$DEV-bf16 vs cpu-f32" | tee -a "$OUT/embed.jsonl" | cut -c1-220 | tee -a "$S"
  fi
  if [ "$name" = base ] && [ -f "$W/base_torch.npy" ] && [ -f "$W/base-f32-gpu.st" ]; then
    compare base "$W/base-f32-gpu.st" "$W/base_torch.npy" "$DEV-f32 vs transformers-$DEV-f32" | tee -a "$OUT/embed.jsonl" | cut -c1-220 | tee -a "$S"
    compare base "$W/base-f32-cpu.st" "$W/base_torch.npy" "cpu-f32 vs transformers-$DEV-f32" | tee -a "$OUT/embed.jsonl" | cut -c1-220 | tee -a "$S"
  fi
done
say "devices the embeds ran on (their log lines):"
grep -ho "device: [a-z]*[:0-9]*" "$OUT/log.txt" | sort | uniq -c | tee -a "$S"

# 3. finetune on the device, every method, both directions; and on the CPU.
if [ "$FT" = 1 ]; then
say "== finetune --device $DEV (every method, both directions, tiny encoder, synthetic corpus)"
"$BIN" synth --clips-per-cell 1 --people 4 --continuous 0 --out "$W/corpus" >&3 2>&1
for ops in fused plain; do
  printf 'folds = 2\nmax_seconds = 0.5\n[train]\nops = "%s"\nepochs = 2\nbatch_size = 8\nlr_encoder = 1e-3\n[peft.adapter]\nbottleneck = 4\n' "$ops" > "$W/ft-$ops.toml"
done
for run in "dev|$DEV|plain" "cpu-plain|cpu|plain" "cpu-fused|cpu|fused"; do
  IFS='|' read -r name d ops <<< "$run"
  t0=$(now)
  if "$BIN" finetune --method all --direction both --manifest "$W/corpus/manifest.csv" \
      --model "$FIX/wav2vec2_layer_preln" --config "$W/ft-$ops.toml" --device "$d" --out "$W/ft-$name" >&3 2>&1; then
    say "finetune --device $d ($ops route): ok in $(awk "BEGIN{printf \"%.1f\", $(now) - $t0}") s"
  else
    say "finetune --device $d ($ops route): FAILED (see log.txt)"
  fi
done
: > "$OUT/finetune.jsonl"
for cpu in cpu-plain cpu-fused; do
"$PY" - "$W/ft-dev" "$W/ft-$cpu" "$DEV vs $cpu" <<'PYEOF' >> "$OUT/finetune.jsonl"
import csv, json, math, os, sys
a, b, dev = sys.argv[1:4]
def losses(d):
    out = {}
    p = os.path.join(d, "curves.json")
    if not os.path.exists(p):
        return out
    def walk(v, path):
        if isinstance(v, dict):
            for k, x in v.items():
                if k in ("train_loss", "dev_loss") and isinstance(x, (int, float)):
                    out[path + "/" + k] = float(x)
                else:
                    walk(x, path + "/" + str(k))
        elif isinstance(v, list):
            for i, x in enumerate(v):
                walk(x, f"{path}[{i}]")
    walk(json.load(open(p)), "")
    return out
la, lb = losses(a), losses(b)
finite = all(math.isfinite(v) for v in la.values())
common = sorted(set(la) & set(lb))
diff = max((abs(la[k] - lb[k]) for k in common), default=float("nan"))
rows = lambda d: list(csv.DictReader(open(os.path.join(d, "comparison.csv")))) if os.path.exists(os.path.join(d, "comparison.csv")) else []
print(json.dumps({"compare": dev, "losses": len(la), "all_finite": finite, "cpu_losses": len(lb),
                  "max_abs_loss_diff": diff, "rows": len(rows(a))}))
for ra, rb in zip(rows(a), rows(b)):
    keep = ("method", "direction", "setting", "UA", "WA", "macro_F1", "trainable_encoder")
    print(json.dumps({"device": {k: ra.get(k) for k in keep}, "cpu": {k: rb.get(k) for k in keep}}))
PYEOF
done
grep '"compare"' "$OUT/finetune.jsonl" | tee -a "$S"
grep -h '"device"' "$W/ft-dev/run.json" >> "$S" 2>/dev/null
fi

# 4. training steps/s per method, base-size encoder, batch 4 × 4 s, on the device.
if [ "$BASE" = 1 ] && [ -f "$W/base/config.json" ]; then
  say "== training steps/s, base-size random wav2vec2, batch 4 × $CLIP_S s, $STEPS steps, on $DEV"
  : > "$OUT/cost.jsonl"
  for r in $(seq 1 "$REPEATS"); do
    for m in $METHODS; do
      rust=("$COST" "$W/base/config.json" "$m" "$STEPS" 4 "$CLIP_S" "$DEV")
      torch=("$PY" "$TWIN" "$W/base/config.json" "$m" "$STEPS" 4 "$CLIP_S" "$DEV")
      [ -x "$COST" ] || rust=(false)
      [ "$TORCH" = 1 ] || torch=(true)
      if (( r % 2 )); then "${rust[@]}" >> "$OUT/cost.jsonl" 2>&3; "${torch[@]}" >> "$OUT/cost.jsonl" 2>&3
      else "${torch[@]}" >> "$OUT/cost.jsonl" 2>&3; "${rust[@]}" >> "$OUT/cost.jsonl" 2>&3; fi
      tail -n 2 "$OUT/cost.jsonl" | tee -a "$S"
    done
  done
fi
say "== done"
