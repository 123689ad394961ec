"""EDM's Heun sampler with optional stochastic churn (Karras et al. 2022, Algorithm 2).

Works in VE coordinates x~ = x/alpha, sigma~ = sigma/alpha, where the ODE slope dx~/dsigma~ is eps_hat; the
step to the data end (sigma~ = 0) is a plain Euler step, so N steps cost 2N - 1 evaluations.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..denoiser import DenoiserBase
from ..tensors import randn_like
from .common import Callback, coeffs, grid_coeffs


def heun(
    denoiser: DenoiserBase,
    x: Tensor,
    grid: Tensor,
    *,
    s_churn: float = 0.0,
    s_tmin: float = 0.0,
    s_tmax: float = math.inf,
    s_noise: float = 1.0,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    **cond,
) -> Tensor:
    """Heun's 2nd-order method on the probability-flow ODE; churn adds noise to raise sigma~ by a factor 1 + gamma,
    gamma = min(s_churn / N, sqrt(2) - 1) while s_tmin <= sigma~ <= s_tmax."""
    sched = denoiser.schedule
    n = len(grid) - 1
    cs = grid_coeffs(sched, grid)
    for i in range(n):
        c_t, c_s = cs[i], cs[i + 1]
        t, s = c_t.t, c_s.t
        xt = x / c_t.alpha
        sig = c_t.sigma_ve
        gamma = min(s_churn / n, math.sqrt(2.0) - 1.0) if s_tmin <= sig <= s_tmax else 0.0
        if gamma > 0:
            sig_hat = min(sig * (1.0 + gamma), coeffs(sched, 1.0).sigma_ve)
            xt = xt + math.sqrt(max(sig_hat**2 - sig**2, 0.0)) * s_noise * randn_like(x, generator)
            t = sched.t_from_sigma_ve(sig_hat).clamp(0.0, 1.0).item()
            c_t = coeffs(sched, t)
            sig = c_t.sigma_ve
        out = denoiser.predict(xt * c_t.alpha, t, **cond)
        if callback is not None:
            callback(i, t, x, out.x0)
        sig_s = c_s.sigma_ve if s > 0 else 0.0
        x_next = xt + (sig_s - sig) * out.eps
        if s > 0:
            eps_s = denoiser.eps(x_next * c_s.alpha, s, **cond)
            x_next = xt + (sig_s - sig) * 0.5 * (out.eps + eps_s)
        x = x_next * c_s.alpha
    return x
