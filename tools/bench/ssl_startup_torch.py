#!/usr/bin/env python3
"""PyTorch + transformers side of the SSL start-up benchmark (see BENCHMARKS.md, "SSL encoder start-up").

Two commands:
  make --out DIR --size base|large
      writes a checkpoint with seeded random weights and no hub access: `base` is the
      wav2vec2-base shape (group norm, post-LN, 12 x 768, about 360 MB of f32 safetensors),
      `large` the HuBERT-large shape (layer norm, pre-LN, 24 x 1024, about 1.26 GB).
  run --model-dir DIR [--seconds 1] [--threads 2]
      the whole user path in one process: import, `from_pretrained`, one forward pass with every
      hidden state on a synthetic clip; prints one JSON line (seconds to load, to first output,
      since the interpreter started).
"""

import argparse
import json
import time

T0 = time.perf_counter()

import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import (  # noqa: E402
    AutoModel,
    HubertConfig,
    HubertModel,
    Wav2Vec2Config,
    Wav2Vec2FeatureExtractor,
    Wav2Vec2Model,
)


def make(out: str, size: str) -> None:
    torch.manual_seed(0)
    if size == "base":
        model = Wav2Vec2Model(Wav2Vec2Config()).eval()
    else:
        cfg = HubertConfig(
            hidden_size=1024,
            num_hidden_layers=24,
            num_attention_heads=16,
            intermediate_size=4096,
            feat_extract_norm="layer",
            do_stable_layer_norm=True,
            conv_bias=True,
        )
        model = HubertModel(cfg).eval()
    model.save_pretrained(out, safe_serialization=True)
    Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True).save_pretrained(out)


def run(model_dir: str, seconds: float, threads: int) -> None:
    torch.set_num_threads(threads)
    imported = time.perf_counter()
    model = AutoModel.from_pretrained(model_dir).eval()
    loaded = time.perf_counter()
    n = int(16000 * seconds)
    t = np.arange(n) / 16000
    x = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
    with torch.inference_mode():
        states = model(torch.from_numpy(x)[None], output_hidden_states=True).hidden_states
    done = time.perf_counter()
    print(
        json.dumps(
            {
                "impl": "pytorch+transformers",
                "states": len(states),
                "import_s": round(imported - T0, 4),
                "load_s": round(loaded - imported, 4),
                "first_output_s": round(done - imported, 4),
                "since_start_s": round(done - T0, 4),
            }
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("--out", required=True)
    m.add_argument("--size", choices=["base", "large"], required=True)
    r = sub.add_parser("run")
    r.add_argument("--model-dir", required=True)
    r.add_argument("--seconds", type=float, default=1.0)
    r.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if args.cmd == "make":
        make(args.out, args.size)
    else:
        run(args.model_dir, args.seconds, args.threads)


if __name__ == "__main__":
    main()
