"""Embeddings of a per-sample scalar (diffusion time, noise level): sinusoidal, Gaussian Fourier, MLP.

Every network in omnidiffusion receives the continuous diffusion time t in [0, 1] (or, for a few apps,
another float noise input such as sqrt(alpha_bar) or log sigma), one entry per leading element of x. These
layers turn that (N,) tensor into an (N, dim) feature vector that the network mixes in (usually by FiLM).

Conventions (fixed here, once, for every app):
- sinusoidal: [sin(s*t*w_0), ..., sin(s*t*w_{h-1}), cos(s*t*w_0), ..., cos(s*t*w_{h-1})] with h = dim // 2
  and w_k = max_period ** (-k / h): the Transformer position encoding (Vaswani et al. 2017, sec. 3.5)
  applied to a real input. `scale` s maps t in [0, 1] to the range the frequencies were designed for:
  1000 for DDPM-style networks (Ho et al. 2020 feed the step index 0..999), 5000 for WaveGrad
  (Chen et al. 2021 encode 5000 * sqrt(abar)).
- Gaussian Fourier features: [sin(2 pi t W), cos(2 pi t W)] with W ~ N(0, scale^2) drawn once and frozen
  (Tancik et al. 2020; Song et al. 2021, score_sde `GaussianFourierProjection`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def _check_time(t: Tensor, name: str = "t") -> None:
    if not isinstance(t, Tensor):
        raise ValueError(f"{name}: expected a tensor of shape (N,), got {type(t).__name__}")
    if t.ndim != 1:
        raise ValueError(
            f"{name}: expected a tensor of shape (N,) (one entry per sample), got shape {tuple(t.shape)}"
        )


def _feature_dtype(t: Tensor) -> torch.dtype:
    # float64 inputs keep their precision; everything else (ints, halves) is embedded in float32 so that
    # large arguments such as 5000 * t stay accurate, and the caller casts to the network dtype afterwards.
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def sinusoidal_embedding(
    t: Tensor, dim: int, *, scale: float = 1000.0, max_period: float = 10000.0
) -> Tensor:
    """Sinusoidal embedding of a real input: (N,) -> (N, dim), sin half first, then cos half.

    Feature k < dim // 2 is sin(scale * t * max_period ** (-k / (dim // 2))); feature dim // 2 + k is the
    cosine of the same argument; an odd `dim` gets one trailing zero column. Vaswani et al. 2017 sec. 3.5,
    applied to a continuous time as in DDPM (scale 1000) or WaveGrad (scale 5000, Chen et al. 2021).
    """
    _check_time(t)
    if dim < 2:
        raise ValueError(f"dim: expected an integer >= 2, got {dim}")
    half = dim // 2
    dtype = _feature_dtype(t)
    k = torch.arange(half, device=t.device, dtype=dtype)
    freqs = torch.exp(-math.log(max_period) * k / half)  # (h,)
    args = (scale * t.to(dtype))[:, None] * freqs[None, :]  # (N, h)
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)  # (N, 2h)
    if dim % 2:
        emb = torch.nn.functional.pad(emb, (0, 1))
    return emb


class SinusoidalEmbedding(nn.Module):
    """Module form of `sinusoidal_embedding` (no parameters): (N,) -> (N, dim)."""

    def __init__(self, dim: int, scale: float = 1000.0, max_period: float = 10000.0) -> None:
        super().__init__()
        if dim < 2:
            raise ValueError(f"dim: expected an integer >= 2, got {dim}")
        self.dim = dim
        self.scale = float(scale)
        self.max_period = float(max_period)

    def forward(self, t: Tensor) -> Tensor:
        return sinusoidal_embedding(t, self.dim, scale=self.scale, max_period=self.max_period)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, scale={self.scale:g}, max_period={self.max_period:g}"


class GaussianFourierFeatures(nn.Module):
    """Random Fourier features of a real input: (N,) -> (N, dim) = [sin(2 pi t W), cos(2 pi t W)].

    W (dim // 2 frequencies) is drawn once from N(0, scale^2) and kept as a buffer, so it is saved with the
    weights and never trained (Tancik et al. 2020; Song et al. 2021, score_sde uses scale 16 on log sigma).
    `seed` makes the draw reproducible without touching the global RNG. `dim` must be even.
    """

    W: Tensor

    def __init__(self, dim: int, scale: float = 16.0, seed: int = 0) -> None:
        super().__init__()
        if dim < 2 or dim % 2:
            raise ValueError(f"dim: expected an even integer >= 2, got {dim}")
        if scale <= 0:
            raise ValueError(f"scale: expected a positive float, got {scale}")
        self.dim = dim
        self.scale = float(scale)
        generator = torch.Generator().manual_seed(seed)
        self.register_buffer("W", torch.randn(dim // 2, generator=generator) * scale)

    def forward(self, t: Tensor) -> Tensor:
        _check_time(t)
        dtype = _feature_dtype(t)
        args = 2 * math.pi * t.to(dtype)[:, None] * self.W.to(dtype)[None, :]  # (N, dim/2)
        return torch.cat([torch.sin(args), torch.cos(args)], dim=1)  # (N, dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, scale={self.scale:g}"


class TimeEmbedding(nn.Module):
    """The MLP applied to time features: Linear(in_dim, hidden) -> SiLU -> Linear(hidden, out_dim).

    (N, in_dim) -> (N, out_dim); hidden defaults to out_dim. DDPM/ADM use in_dim = base channels and
    out_dim = 4 * base channels (Ho et al. 2020 code; Dhariwal & Nichol 2021); DiffWave uses 128 -> 512.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int | None = None) -> None:
        super().__init__()
        hidden_dim = out_dim if hidden_dim is None else hidden_dim
        self.net = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.SiLU(), nn.Linear(hidden_dim, out_dim))
        self.in_dim = in_dim

    def forward(self, features: Tensor) -> Tensor:
        if features.ndim != 2 or features.shape[1] != self.in_dim:
            raise ValueError(
                f"features: expected shape (N, {self.in_dim}), got shape {tuple(features.shape)}"
            )
        weight = self.net[0].weight
        return self.net(features.to(weight.dtype))
