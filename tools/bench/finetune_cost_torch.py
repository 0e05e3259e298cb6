#!/usr/bin/env python3
"""PyTorch (+ HF peft) twin of crates/emobridge-ssl/examples/finetune_cost.rs: one method on a
randomly initialised encoder of CONFIG.json, a batch of BATCH clips × SECONDS s, mean pooling
and a linear head, CE loss, AdamW (lr 5e-5 encoder / 1e-3 head, weight decay 0.01), global-norm
clipping at 1; one warm-up step, then STEPS timed steps. Prints one JSON line.

Usage: finetune_cost_torch.py CONFIG.json METHOD [STEPS] [BATCH] [SECONDS] [DEVICE]

DEVICE: cpu (default) or cuda[:N]; on a GPU the step is timed after torch.cuda.synchronize()
and the GPU's peak allocation is reported too.
"""
import json
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import AutoConfig, AutoModel


class Houlsby(nn.Module):
    def __init__(self, target, bottleneck):
        super().__init__()
        self.pretrained_linear = target
        out = target.weight.shape[0]
        self.down = nn.Linear(out, bottleneck)
        self.up = nn.Linear(bottleneck, out)

    def forward(self, x):
        y = self.pretrained_linear(x)
        return y + self.up(F.silu(self.down(y)))


def main():
    cfg_path, method = sys.argv[1], sys.argv[2]
    steps = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    batch = int(sys.argv[4]) if len(sys.argv) > 4 else 4
    seconds = float(sys.argv[5]) if len(sys.argv) > 5 else 4.0
    device = torch.device(sys.argv[6] if len(sys.argv) > 6 else "cpu")
    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(cfg_path)
    for k in ("hidden_dropout", "attention_dropout", "activation_dropout", "feat_proj_dropout", "layerdrop"):
        if hasattr(config, k):
            setattr(config, k, 0.0)
    config.apply_spec_augment = False
    model = AutoModel.from_config(config)
    for p in model.parameters():
        p.requires_grad_(False)
    if method == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.1, target_modules=["q_proj", "v_proj"]))
    elif method == "adapter":
        for layer in model.encoder.layers:
            layer.attention.out_proj = Houlsby(layer.attention.out_proj, 64)
            layer.feed_forward.output_dense = Houlsby(layer.feed_forward.output_dense, 64)
    elif method == "bitfit":
        for n, p in model.named_parameters():
            if n.endswith(".bias") and not n.startswith("feature_extractor."):
                p.requires_grad_(True)
    elif method == "full":
        for n, p in model.named_parameters():
            if not n.startswith("feature_extractor."):
                p.requires_grad_(True)
    elif method not in ("frozen", "weighted-sum"):
        raise SystemExit(f"unknown method {method}")
    model.to(device)
    model.train()
    enc_params = [p for p in model.parameters() if p.requires_grad]
    head = nn.Linear(config.hidden_size, 4).to(device)
    layer_w = nn.Parameter(torch.zeros(config.num_hidden_layers + 1, device=device))
    head_params = list(head.parameters()) + ([layer_w] if method == "weighted-sum" else [])
    groups = [{"params": head_params, "lr": 1e-3}]
    if enc_params:
        groups.append({"params": enc_params, "lr": 5e-5})
    opt = torch.optim.AdamW(groups, weight_decay=0.01)
    n = int(seconds * 16000)
    x = torch.stack([torch.sin(torch.arange(n, dtype=torch.float32) * (i + 3) * 0.01) * 0.3 for i in range(batch)])
    y = torch.arange(batch) % 4
    x, y = x.to(device), y.to(device)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def step():
        opt.zero_grad()
        with torch.set_grad_enabled(bool(enc_params)):
            out = model(input_values=x, output_hidden_states=method == "weighted-sum")
        if method == "weighted-sum":
            h = (torch.stack(out.hidden_states, 0) * torch.softmax(layer_w, 0)[:, None, None, None]).sum(0)
        else:
            h = out.last_hidden_state
        loss = F.cross_entropy(head(h.mean(1)), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(enc_params + head_params, 1.0)
        opt.step()

    step()
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    secs = time.perf_counter() - t0
    trainable = sum(p.numel() for p in enc_params + head_params)
    extra = {}
    if device.type == "cuda":
        extra["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20)
    print(json.dumps({"impl": "pytorch+peft", "device": str(device), "method": method, "trainable": trainable, "steps": steps,
                      "steps_per_s": round(steps / secs, 4),
                      "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                      **extra}))


if __name__ == "__main__":
    main()
