#!/usr/bin/env python3
"""Writes the f32 `.npy` pairs that tools/bench/fad_e2e.sh times `emobridge fad` on.

    python tools/bench/fad_make_inputs.py OUT_DIR [N] [DIMS...]      # defaults: 6000, 768 1024

For every D two pairs are written (A is the baseline, B the evaluation set):
  plain_D_{a,b}.npy  rows x = W z + m with z ~ N(0, I), a random mixing W per set and a small
                     mean shift: well-conditioned, correlated covariances;
  hard_D_{a,b}.npy   near-singular covariances: rank D/8 signal plus noise 100x weaker (covariance condition number ~1e5), the
                     two sets sharing most of their subspace, and data far from the origin
                     (mean 50), which punishes one-pass moments.
Seeded, so every run writes the same bytes.
"""
import sys
from pathlib import Path

import numpy as np

out = Path(sys.argv[1])
n = int(sys.argv[2]) if len(sys.argv) > 2 else 6000
dims = [int(d) for d in sys.argv[3:]] or [768, 1024]
out.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(20251129)
for d in dims:
    for side, shift in (("a", 0.0), ("b", 0.3)):
        w = rng.standard_normal((d, d)) / np.sqrt(d)
        z = rng.standard_normal((n, d))
        x = z @ w.T + shift + 0.1 * rng.standard_normal(d)
        np.save(out / f"plain_{d}_{side}.npy", x.astype(np.float32))
    r = max(d // 8, 2)
    basis = np.linalg.qr(rng.standard_normal((d, r)))[0]
    for side, tilt in (("a", 0.0), ("b", 0.2)):
        b = basis + tilt * np.linalg.qr(rng.standard_normal((d, r)))[0]
        z = rng.standard_normal((n, r)) * np.linspace(3.0, 0.5, r)
        x = z @ b.T + 1e-2 * rng.standard_normal((n, d)) + 50.0 + tilt
        np.save(out / f"hard_{d}_{side}.npy", x.astype(np.float32))
