#!/usr/bin/env python3
"""scikit-learn's side of the probe benchmark: the same sweep `emobridge probe` runs.

    python tools/probe_bench_sklearn.py MANIFEST CACHE_ROOT TAG FOLDS_DIR OUT.csv

Reads every clip's pooled `mean` [states, dim] from the safetensors cache, z-scores each domain
with its own moments (per-domain normalisation), and for every hidden state fits
LogisticRegression(C=1, tol=1e-4, max_iter=1000) on emobridge's speaker-independent folds
(FOLDS_DIR/{speech,music}_seed0.csv, written by `emobridge probe`): within speech, within music
(4 folds each), speech → music and music → speech (trained on each source fold's training part,
tested on every target clip). Writes state,setting,ua (mean over folds) to OUT.csv.
"""
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from safetensors.numpy import load_file
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score


def main(manifest, cache_root, tag, folds_dir, out):
    m = pd.read_csv(manifest, keep_default_na=False)
    m = m[m["emotion"] != ""].reset_index(drop=True)
    x = np.stack([load_file(str(Path(cache_root) / tag / f"{i}.safetensors"))["mean"] for i in m["id"]])
    x = x.astype(np.float64)  # [clips, states, dim]
    domain = m["domain"].to_numpy()
    for d in ("speech", "music"):
        sel = domain == d
        x[sel] = (x[sel] - x[sel].mean(axis=0)) / x[sel].std(axis=0)
    y = m["emotion"].to_numpy()
    fold = {}
    for d in ("speech", "music"):
        f = pd.read_csv(Path(folds_dir) / f"{d}_seed0.csv").set_index("id")["fold"]
        fold[d] = f.loc[m["id"][domain == d]].to_numpy()
    rows = []
    for state in range(x.shape[1]):
        for src, dst in (("speech", "speech"), ("music", "music"), ("speech", "music"), ("music", "speech")):
            xs, ys = x[domain == src, state], y[domain == src]
            xt, yt = x[domain == dst, state], y[domain == dst]
            uas = []
            for k in sorted(set(fold[src])):
                train = fold[src] != k
                test = fold[dst] == k if src == dst else np.ones(len(yt), bool)
                clf = LogisticRegression(C=1.0, tol=1e-4, max_iter=1000).fit(xs[train], ys[train])
                uas.append(balanced_accuracy_score(yt[test], clf.predict(xt[test])))
            key = f"within_{src}" if src == dst else f"{src}_to_{dst}"
            rows.append((state, key, float(np.mean(uas))))
    pd.DataFrame(rows, columns=["state", "setting", "ua"]).to_csv(out, index=False)


if __name__ == "__main__":
    main(*sys.argv[1:6])
