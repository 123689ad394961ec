"""Ancestral DDPM and DDIM steps over any grid (Ho et al. 2020; Song et al. 2021 DDIM; Bao et al. 2022).

Both use the same posterior q(x_s | x_t, x0_hat); a step that lands on t = 0 returns x0_hat.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ..denoiser import DenoiserBase
from ..tensors import randn_like
from .common import Callback, grid_coeffs, posterior_terms
from .noise import Noise

VARIANCES = ("fixed-small", "fixed-large", "learned", "analytic")


def analytic_variance(
    c_t, c_s, eps_sq_mean: float, x0_var_max: float | None = None
) -> float:
    """Analytic-DPM optimal reverse variance for a step t -> s (Bao et al. 2022, Theorem 1, DDPM case).

    sigma*^2 = beta_tilde + (alpha_s sigma_{t|s}^2 / sigma_t^2)^2 Var[x0 | x_t], with the per-dimension
    Var[x0 | x_t] = (sigma_t/alpha_t)^2 (1 - E||eps_hat||^2 / d) clipped to [0, x0_var_max]. For N(0, I) data
    (E||eps_hat||^2/d = sigma_t^2 on VP) it equals the forward beta of the step.
    """
    trans, beta_tilde = posterior_terms(c_t, c_s)
    var_x0 = (c_t.sigma / c_t.alpha) ** 2 * (1.0 - eps_sq_mean)
    var_x0 = max(var_x0, 0.0) if x0_var_max is None else min(max(var_x0, 0.0), x0_var_max)
    c_x0 = c_s.alpha * trans / c_t.sigma**2
    return beta_tilde + c_x0**2 * var_x0


def _eps_moment(eps_sq_mean, i: int, t: float) -> float:
    if eps_sq_mean is None:
        raise ValueError("eps_sq_mean: the 'analytic' variance needs E||eps_hat||^2/d per step (callable of t)")
    if callable(eps_sq_mean):
        return float(eps_sq_mean(t))
    return float(eps_sq_mean[i])


def ddpm(
    denoiser: DenoiserBase,
    x: Tensor,
    grid: Tensor,
    *,
    variance: str = "fixed-small",
    eps_sq_mean: Callable[[float], float] | Sequence[float] | None = None,
    x0_var_max: float | None = None,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    noise: Noise | None = None,
    **cond,
) -> Tensor:
    """Ancestral sampling x_s ~ N(mu(x_t, x0_hat), var) along `grid` (Ho et al. 2020, Algorithm 2).

    variance: "fixed-small" (posterior beta_tilde), "fixed-large" (sigma_{t|s}^2, beta_t), "learned" (iDDPM
    interpolation log var = f log beta + (1-f) log beta_tilde, f = (v+1)/2, Nichol & Dhariwal 2021 eq. 15) or
    "analytic" (Bao et al. 2022; needs `eps_sq_mean`, E||eps_hat(x_t)||^2/d as a callable of t or per step).
    noise: the step's N(0, I) draw as `noise(x, t, s)` (samplers.noise; default i.i.d. from `generator`).
    """
    if variance not in VARIANCES:
        raise ValueError(f"variance: expected one of {VARIANCES}, got {variance!r}")
    sched = denoiser.schedule
    cs = grid_coeffs(sched, grid)
    for i in range(len(grid) - 1):
        c_t, c_s = cs[i], cs[i + 1]
        t, s = c_t.t, c_s.t
        out = denoiser.predict(x, t, **cond)
        if callback is not None:
            callback(i, t, x, out.x0)
        if s == 0.0:
            x = out.x0
            continue
        trans, beta_tilde = posterior_terms(c_t, c_s)
        # Posterior mean alpha_s x0 + (alpha_{t|s} sigma_s^2 / sigma_t) eps, i.e. DDIM with eta = 1.
        mean = c_s.alpha * out.x0 + (c_t.alpha / c_s.alpha) * c_s.sigma**2 / c_t.sigma * out.eps
        if variance == "fixed-small":
            std: float | Tensor = math.sqrt(beta_tilde)
        elif variance == "fixed-large":
            std = math.sqrt(trans)
        elif variance == "analytic":
            std = math.sqrt(analytic_variance(c_t, c_s, _eps_moment(eps_sq_mean, i, t), x0_var_max))
        else:
            if out.variance is None:
                raise ValueError("variance: 'learned' needs a Denoiser built with learned_variance=True")
            frac = (out.variance.to(x.dtype) + 1.0) / 2.0
            log_var = frac * math.log(trans) + (1.0 - frac) * math.log(beta_tilde)
            std = torch.exp(0.5 * log_var)
        x = mean + std * (randn_like(x, generator) if noise is None else noise(x, t, s))
    return x


def ddim(
    denoiser: DenoiserBase,
    x: Tensor,
    grid: Tensor,
    *,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    noise: Noise | None = None,
    **cond,
) -> Tensor:
    """DDIM (Song et al. 2021, eq. 12): x_s = alpha_s x0 + sqrt(sigma_s^2 - c^2) eps + c z, c^2 = eta^2 beta_tilde.

    eta = 0 is deterministic (Euler on the probability-flow ODE in VE coordinates); eta = 1 on consecutive
    discrete steps is DDPM with fixed-small variance. noise: as in `ddpm`.
    """
    if not eta >= 0:
        raise ValueError(f"eta: expected a value >= 0, got {eta}")
    sched = denoiser.schedule
    cs = grid_coeffs(sched, grid)
    for i in range(len(grid) - 1):
        c_t, c_s = cs[i], cs[i + 1]
        t, s = c_t.t, c_s.t
        out = denoiser.predict(x, t, **cond)
        if callback is not None:
            callback(i, t, x, out.x0)
        if s == 0.0:
            x = out.x0
            continue
        _, beta_tilde = posterior_terms(c_t, c_s)
        c2 = eta**2 * beta_tilde
        if c2 > c_s.sigma**2:
            raise ValueError(f"eta: {eta} gives a noise variance above sigma_s^2 at t={t:.4g}; use eta <= 1")
        x = out.x0.mul(c_s.alpha).add_(out.eps, alpha=math.sqrt(c_s.sigma**2 - c2))
        if c2 > 0:
            x = x + math.sqrt(c2) * (randn_like(x, generator) if noise is None else noise(x, t, s))
    return x
