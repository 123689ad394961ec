"""Shared pieces of the core benchmarks (not a benchmark itself: `make bench` skips files starting with _)."""

from __future__ import annotations

import math

import torch
from torch import nn


class MLP(nn.Module):
    """eps(x_t, t) for 2-D data: Fourier features of t, three SiLU layers of `width`."""

    def __init__(self, width: int = 128, dim: int = 2, n_freq: int = 16):
        super().__init__()
        self.register_buffer("freq", torch.arange(1, n_freq + 1, dtype=torch.float32) * math.pi)
        self.body = nn.Sequential(
            nn.Linear(dim + 2 * n_freq, width), nn.SiLU(),
            nn.Linear(width, width), nn.SiLU(),
            nn.Linear(width, width), nn.SiLU(),
            nn.Linear(width, dim),
        )

    def forward(self, x, t):
        ft = t.to(x.dtype)[:, None] * self.freq  # (B, n_freq)
        return self.body(torch.cat([x, ft.sin(), ft.cos()], 1))
