#!/usr/bin/env bash
# `emobridge fad A.npy B.npy` end to end (whole process: start-up, reading the .npy files, the
# moments, the distance) against the 10-line numpy `eigh` script (fad_numpy_eigh.py) and the
# scipy `sqrtm` script (fad_scipy_sqrtm.py) on the same f32 inputs, alternating the three sides
# in every round so that a change of load reaches all of them. Run it alone on a quiet machine:
#
#     tools/bench/fad_e2e.sh [WORK_DIR] [ROUNDS] [N]      # defaults: target/fad-e2e, 7, 6000
#
# Inputs (tools/bench/fad_make_inputs.py, written once into WORK_DIR): N × 768 and N × 1,024
# pairs, "plain" (correlated, well conditioned) and "hard" (near-singular covariances far from
# the origin). PYTHON (default `python3`) needs numpy and scipy. Thread counts are left at each
# library's default (all cores). Prints per-round seconds, then per input the median seconds of
# each side, the ratios numpy/emobridge and scipy/emobridge, and each peer's relative difference.
# With hyperfine installed, it also runs hyperfine on the same commands (its own, non-alternating
# order) and stores the JSON next to the inputs.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${1:-$ROOT/target/fad-e2e}
ROUNDS=${2:-7}
N=${3:-6000}
PY=${PYTHON:-python3}
(cd "$ROOT" && cargo build --release -q -p emobridge-cli)
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/emobridge
mkdir -p "$WORK"
if [ ! -f "$WORK/hard_1024_b.npy" ] || [ "$(cat "$WORK/n" 2>/dev/null)" != "$N" ]; then
  "$PY" "$ROOT/tools/bench/fad_make_inputs.py" "$WORK" "$N" 768 1024
  echo "$N" >"$WORK/n"
fi
rust() { "$BIN" fad "$1" "$2" --json 2>/dev/null; }
numpy() { "$PY" "$ROOT/tools/bench/fad_numpy_eigh.py" "$1" "$2"; }
scipy() { "$PY" "$ROOT/tools/bench/fad_scipy_sqrtm.py" "$1" "$2"; }
now() { date +%s.%N; }
LOG="$WORK/times"
: >"$LOG"
for input in plain_768 hard_768 plain_1024 hard_1024; do
  A="$WORK/${input}_a.npy"
  B="$WORK/${input}_b.npy"
  # Values (and a warm page cache) first.
  r=$(rust "$A" "$B" | "$PY" -c 'import json, sys; print(repr(json.load(sys.stdin)["fad"]))')
  n=$(numpy "$A" "$B")
  s=$(scipy "$A" "$B")
  echo "$input values emobridge=$r numpy=$n scipy=$s" | tee -a "$LOG"
  for round in $(seq 1 "$ROUNDS"); do
    t0=$(now); rust "$A" "$B" >/dev/null; t1=$(now)
    numpy "$A" "$B" >/dev/null; t2=$(now)
    scipy "$A" "$B" >/dev/null; t3=$(now)
    awk -v i="$input" -v r="$round" -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" \
      'BEGIN { printf "%s round %d emobridge %.3f numpy %.3f scipy %.3f\n", i, r, b - a, c - b, d - c }' | tee -a "$LOG"
  done
  if command -v hyperfine >/dev/null; then
    hyperfine -N --warmup 1 --runs "$ROUNDS" --export-json "$WORK/hyperfine_$input.json" \
      "$BIN fad $A $B --json" "$PY $ROOT/tools/bench/fad_numpy_eigh.py $A $B" \
      "$PY $ROOT/tools/bench/fad_scipy_sqrtm.py $A $B" >/dev/null
  fi
done
"$PY" - "$LOG" <<'PY'
import statistics, sys
rows, values = {}, {}
for line in open(sys.argv[1]):
    f = line.split()
    if f[1] == "values":
        values[f[0]] = {k: float(v) for k, v in (x.split("=") for x in f[2:])}
    else:
        rows.setdefault(f[0], []).append((float(f[4]), float(f[6]), float(f[8])))
print("input       emobridge_s  numpy_eigh_s  scipy_sqrtm_s  numpy/emobridge  scipy/emobridge  rel_diff_numpy  rel_diff_scipy")
for i, t in rows.items():
    e, n, s = (statistics.median(x[k] for x in t) for k in range(3))
    v = values[i]
    dn = abs(v["emobridge"] - v["numpy"]) / abs(v["numpy"])
    ds = abs(v["emobridge"] - v["scipy"]) / abs(v["scipy"])
    print(f"{i:11s} {e:11.3f} {n:13.3f} {s:14.3f} {n / e:16.2f} {s / e:16.2f} {dn:15.1e} {ds:15.1e}")
PY
