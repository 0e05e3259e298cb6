#!/usr/bin/env python3
"""PyTorch side of tools/lstm_bench.sh: forward + backward of a batch of equally long 260-dim
sequences through nn.LSTM(260, 150) -> nn.LSTM(150, 10) -> nn.Linear(10, 2) with an MSE loss,
float32 on the CPU, with the given number of threads.

    python tools/lstm_bench_torch.py BATCH STEPS THREADS ITERS

Prints one line: `torch batch=.. steps=.. threads=.. seq_steps_per_s=..` (median iteration).
"""
import sys
import time

import torch


def main():
    batch, steps, threads, iters = (int(a) for a in sys.argv[1:5])
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    l1 = torch.nn.LSTM(260, 150, batch_first=True)
    l2 = torch.nn.LSTM(150, 10, batch_first=True)
    head = torch.nn.Linear(10, 2)
    params = list(l1.parameters()) + list(l2.parameters()) + list(head.parameters())
    x = torch.rand(batch, steps, 260) * 2 - 1
    y = torch.rand(batch, steps, 2) * 2 - 1

    def step():
        for p in params:
            p.grad = None
        h, _ = l1(x)
        h, _ = l2(h)
        loss = torch.nn.functional.mse_loss(head(h), y)
        loss.backward()
        return loss.item()

    step()
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    times.sort()
    median = times[len(times) // 2]
    print(f"torch batch={batch} steps={steps} threads={threads} "
          f"seq_steps_per_s={batch * steps / median:.0f}")


if __name__ == "__main__":
    main()
