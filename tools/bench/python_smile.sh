#!/usr/bin/env bash
# emobridge.opensmile.Smile.process_files against opensmile.Smile.process_files (PyPI opensmile
# 2.6.0) on the same clips, in the same run, alternating sides; whole process (interpreter
# start, imports, decoding, extraction) and in-process (the process_files call alone).
#
#   PY=/path/to/venv/bin/python tools/bench/python_smile.sh [CLIPS] [SECONDS] [ROUNDS]
#
# PY must have both `emobridge` (pip install ./crates/emobridge-py) and `opensmile==2.6.0`.
# Defaults: 24 clips of 10 s (half speech-like at 16 kHz, half music-like at 44.1 kHz), 5 rounds,
# eGeMAPSv02 functionals then ComParE_2016 LLDs. Prints medians and the opensmile/emobridge
# ratios (> 1: emobridge faster).
set -euo pipefail
PY=${PY:-python3}
CLIPS=${1:-24}
SECONDS_PER_CLIP=${2:-10}
ROUNDS=${3:-5}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

"$PY" - "$WORK" "$CLIPS" "$SECONDS_PER_CLIP" <<'PYEOF'
import sys, wave
import numpy as np
out, n, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
rng = np.random.default_rng(0)
for i in range(n):
    sr = 16000 if i % 2 == 0 else 44100
    t = np.arange(int(secs * sr)) / sr
    f0 = 120 + 80 * rng.random()
    f = f0 * (1 + 0.05 * np.sin(2 * np.pi * (0.5 + rng.random()) * t))
    ph = 2 * np.pi * np.cumsum(f) / sr
    x = sum(0.25 / k * np.sin(k * ph) for k in range(1, 8))
    x *= 0.5 + 0.5 * np.sin(2 * np.pi * 2.5 * t) ** 2
    x += 0.02 * rng.standard_normal(len(t))
    pcm = np.round(np.clip(x, -1, 1) * 32767).astype("<i2")
    with wave.open(f"{out}/clip{i:03d}.wav", "wb") as w:
        w.setnchannels(1); w.setsampwidth(2); w.setframerate(sr); w.writeframes(pcm.tobytes())
PYEOF

cat > "$WORK/run.py" <<'PYEOF'
import glob, sys, time
side, fs, fl, folder = sys.argv[1:5]
if side == "emobridge":
    from emobridge import opensmile
else:
    import opensmile
files = sorted(glob.glob(folder + "/*.wav"))
smile = opensmile.Smile(feature_set=getattr(opensmile.FeatureSet, fs),
                        feature_level=getattr(opensmile.FeatureLevel, fl))
t = time.perf_counter()
df = smile.process_files(files)
print(f"{time.perf_counter() - t:.4f} {df.shape[0]} {df.shape[1]}")
PYEOF

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo "clips: $CLIPS × ${SECONDS_PER_CLIP} s (16 kHz and 44.1 kHz), $ROUNDS rounds, alternating"
for config in "eGeMAPSv02 Functionals" "ComParE_2016 LowLevelDescriptors"; do
  set -- $config
  : > "$WORK/e.whole"; : > "$WORK/e.in"; : > "$WORK/o.whole"; : > "$WORK/o.in"
  for r in $(seq "$ROUNDS"); do
    for side in emobridge opensmile; do
      t0=$(date +%s.%N)
      read -r inproc rows cols < <("$PY" "$WORK/run.py" "$side" "$1" "$2" "$WORK")
      t1=$(date +%s.%N)
      echo "$t1 - $t0" | bc -l >> "$WORK/${side:0:1}.whole"
      echo "$inproc" >> "$WORK/${side:0:1}.in"
    done
  done
  ew=$(median < "$WORK/e.whole"); ow=$(median < "$WORK/o.whole")
  ei=$(median < "$WORK/e.in"); oi=$(median < "$WORK/o.in")
  printf '%s %s (%s rows × %s columns)\n' "$1" "$2" "$rows" "$cols"
  printf '  whole process: emobridge %.3f s, opensmile %.3f s, ratio %.2fx\n' "$ew" "$ow" "$(echo "$ow / $ew" | bc -l)"
  printf '  process_files: emobridge %.3f s, opensmile %.3f s, ratio %.2fx\n' "$ei" "$oi" "$(echo "$oi / $ei" | bc -l)"
done
