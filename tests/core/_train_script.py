"""A tiny training run that tests/core/test_training.py starts as a subprocess (and under torchrun).

    python _train_script.py OUT_DIR [--steps N] [--batch-size B] [--mode noisy|regression] [--hang-after K]

--mode noisy draws from torch's, python's and numpy's global RNGs inside the loss, uses EMA (with the step-dependent
warm-up decay, still warming up at the kill), warmup+cosine, accumulation and clipping, so an exact resume has to
restore all of that state. --mode regression is a deterministic MSE fit without EMA (for the DDP equivalence
check). --hang-after K blocks forever inside the loss of step K+1, so the test can kill the process at a known
point.
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

from omnidiffusion.core.training import TrainConfig, fit


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out_dir")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--mode", choices=["noisy", "regression"], default="noisy")
    parser.add_argument("--hang-after", type=int, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)

    gen = torch.Generator().manual_seed(1234)
    x = torch.randn(42, 6, generator=gen)
    y = torch.sin(x.sum(dim=1, keepdim=True))
    dataset = TensorDataset(x, y)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 1))

    if args.mode == "noisy":
        config = TrainConfig(
            steps=args.steps, batch_size=args.batch_size, lr=1e-2, min_lr=1e-3, warmup_steps=5, weight_decay=0.01,
            grad_clip=0.5, grad_accum=2, ema_decay=0.9, log_every=1, ckpt_every=7, seed=3, progress=False,
        )
    else:
        config = TrainConfig(
            steps=args.steps, batch_size=args.batch_size, lr=1e-2, grad_clip=1.0, ema_decay=None, log_every=1,
            ckpt_every=1000, seed=3, progress=False,
        )
    calls = 0

    def loss_fn(net: nn.Module, batch) -> torch.Tensor:
        nonlocal calls
        calls += 1
        if args.hang_after is not None and calls > args.hang_after * config.grad_accum:
            time.sleep(3600)
        xb, yb = batch
        if args.mode == "noisy":
            shift = random.gauss(0.0, 0.01) + float(np.random.normal(0.0, 0.01))
            xb = xb + 0.1 * torch.randn_like(xb) + shift
        return ((net(xb) - yb) ** 2).mean()

    fit(model, loss_fn, dataset, config, args.out_dir)


if __name__ == "__main__":
    main()
