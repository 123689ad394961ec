"""Multistep consistency sampling (Song et al. 2023, arXiv 2303.01469, Algorithm 1).

Each step maps the state straight to the data end with the model's x0_hat (for a consistency model, its
one-step generator f(x_t, t)); between steps the estimate is noised afresh to the next grid time:
x_s = alpha_s x0_hat + sqrt(sigma_s^2 - alpha_s^2 sigma~_min^2) z, where sigma~_min (VE units) is the noise
level the model's outputs already carry (a consistency model's boundary time; 0 for any other Denoiser).
One NFE per step; 1 step is one-step generation. Works with any Denoiser, but only a consistency model makes
few steps good.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..denoiser import DenoiserBase
from ..tensors import randn_like
from .common import Callback, grid_coeffs
from .noise import Noise


def consistency(
    denoiser: DenoiserBase,
    x: Tensor,
    grid: Tensor,
    *,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    noise: Noise | None = None,
    **cond,
) -> Tensor:
    """x0 = f(x_{t_0}, t_0); for each later grid time t_i > 0: x = f(alpha x0 + sigma' z, t_i); returns x0.

    noise: the re-noising draw as `noise(x, t, s)` (samplers.noise; default i.i.d. from `generator`).
    """
    cs = grid_coeffs(denoiser.schedule, grid)
    sig_min = float(getattr(denoiser, "sigma_min_ve", 0.0))
    x0 = x
    for i in range(len(grid) - 1):
        c_t, c_s = cs[i], cs[i + 1]
        x0 = denoiser.predict(x, c_t.t, **cond).x0
        if callback is not None:
            callback(i, c_t.t, x, x0)
        if c_s.t == 0.0:
            break
        std = math.sqrt(max(c_s.sigma**2 - (c_s.alpha * sig_min) ** 2, 0.0))
        z = randn_like(x0, generator) if noise is None else noise(x0, c_t.t, c_s.t)
        x = x0.mul(c_s.alpha).add_(z, alpha=std)
    return x0 if cs[-1].t == 0.0 else x


__all__ = ["consistency"]
