#!/usr/bin/env bash
# Training throughput of emobridge's LSTM (hand-written BPTT) against PyTorch's nn.LSTM on the same
# shapes and threads: batch of 260-dim sequences through the paper's 150/10 network, forward +
# backward, sequence-steps per second. The two sides run alternately, ROUNDS times each.
#
#   tools/lstm_bench.sh [PYTHON] [BATCH] [STEPS] [THREADS] [ITERS] [ROUNDS]
#
# Defaults: python3, batch 16, 200 steps (100 s at 2 Hz), 1 thread, 10 iterations, 3 rounds.
# Run it alone on a quiet machine.
set -euo pipefail
PY=${1:-python3}
BATCH=${2:-16}
STEPS=${3:-200}
THREADS=${4:-1}
ITERS=${5:-10}
ROUNDS=${6:-3}
cd "$(dirname "$0")/.."
cargo build --release -q -p emobridge-learn --example lstm_bench
BIN=target/release/examples/lstm_bench
export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS RAYON_NUM_THREADS=$THREADS
for r in $(seq "$ROUNDS"); do
  "$BIN" "$BATCH" "$STEPS" "$THREADS" "$ITERS"
  "$PY" tools/lstm_bench_torch.py "$BATCH" "$STEPS" "$THREADS" "$ITERS"
done | tee /dev/stderr | "$PY" -c '
import statistics, sys
v = {}
for line in sys.stdin:
    f = line.split()
    v.setdefault(f[0], []).append(float(f[-1].split("=")[1]))
r, t = statistics.median(v["rust"]), statistics.median(v["torch"])
print(f"median sequence-steps/s: rust {r:.0f}, torch {t:.0f}, ratio rust/torch {r / t:.2f}")
'
