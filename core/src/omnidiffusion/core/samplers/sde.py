"""Reverse-SDE samplers: Euler-Maruyama and predictor-corrector with a Langevin corrector (Song et al. 2021).

The forward SDE dx = f(t) x dt + g(t) dw comes from the schedule (`NoiseSchedule.sde_coefficients`), so the
same code serves VP, sub-VP, VE and discrete schedules. A step that lands on t = 0 returns x0_hat (score_sde's
`noise_removal`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..denoiser import DenoiserBase
from ..tensors import randn_like
from .common import Callback, coeffs, grid_coeffs, posterior_terms
from .noise import Noise

PREDICTORS = ("euler-maruyama", "ddpm")


def _em_step(x, c_t, s, f, g2, out, generator, noise=None):
    score = -out.eps / c_t.sigma
    dt = c_t.t - s
    z = randn_like(x, generator) if noise is None else noise(x, c_t.t, s)
    return x - (f * x - g2 * score) * dt + math.sqrt(g2 * dt) * z


def _sde_table(schedule, grid) -> tuple[list[float], list[float]]:
    f, g2 = schedule.sde_coefficients(grid.detach().to(torch.float64).cpu())
    return f.tolist(), g2.tolist()


def euler_maruyama(
    denoiser: DenoiserBase,
    x: Tensor,
    grid: Tensor,
    *,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    noise: Noise | None = None,
    **cond,
) -> Tensor:
    """Euler-Maruyama on the reverse SDE dx = [f x - g^2 score] dt + g dw_bar (Song et al. 2021, eq. 6).

    noise: the step's N(0, I) draw as `noise(x, t, s)`; a `BrownianTree` makes the result for one seed
    converge as the grid is refined (default: i.i.d. draws from `generator`).
    """
    cs = grid_coeffs(denoiser.schedule, grid)
    f, g2 = _sde_table(denoiser.schedule, grid)
    for i in range(len(grid) - 1):
        c_t, c_s = cs[i], cs[i + 1]
        t, s = c_t.t, c_s.t
        out = denoiser.predict(x, t, **cond)
        if callback is not None:
            callback(i, t, x, out.x0)
        x = out.x0 if s == 0.0 else _em_step(x, c_t, s, f[i], g2[i], out, generator, noise)
    return x


def langevin_correct(
    denoiser: DenoiserBase,
    x: Tensor,
    t: float,
    *,
    snr: float,
    step_scale: float = 1.0,
    generator: torch.Generator | None = None,
    **cond,
) -> Tensor:
    """One Langevin MCMC step targeting p_t (Song et al. 2021, Algorithm 5).

    step = 2 a (snr ||z|| / ||score||)^2 with norms averaged over the batch, x <- x + step score + sqrt(2 step) z.
    """
    sigma_t = coeffs(denoiser.schedule, t).sigma
    score = -denoiser.eps(x, t, **cond) / sigma_t
    z = randn_like(x, generator)
    # score_sde averages the norms over the batch: per-sample ratios are heavy-tailed in low dimension.
    z_norm = z.reshape(x.shape[0], -1).norm(dim=1).mean()
    s_norm = score.reshape(x.shape[0], -1).norm(dim=1).mean()
    step = 2.0 * step_scale * (snr * z_norm / s_norm.clamp_min(1e-12)) ** 2
    return x + step * score + torch.sqrt(2.0 * step) * z


def predictor_corrector(
    denoiser: DenoiserBase,
    x: Tensor,
    grid: Tensor,
    *,
    snr: float = 0.16,
    n_corrector: int = 1,
    predictor: str = "euler-maruyama",
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    noise: Noise | None = None,
    **cond,
) -> Tensor:
    """Predictor-corrector sampling (Song et al. 2021, Algorithm 1): Langevin corrector steps at t, then a
    predictor step t -> s ("euler-maruyama", or "ddpm": the ancestral step with fixed-large variance).

    The Langevin step size uses a = (alpha_t/alpha_s)^2, score_sde's per-step alpha (1 - beta_i on VP, 1 on VE).
    noise: the predictor's N(0, I) draw as `noise(x, t, s)` (the corrector always draws from `generator`).
    """
    if predictor not in PREDICTORS:
        raise ValueError(f"predictor: expected one of {PREDICTORS}, got {predictor!r}")
    if not snr > 0:
        raise ValueError(f"snr: expected a value > 0, got {snr}")
    sched = denoiser.schedule
    cs = grid_coeffs(sched, grid)
    f, g2 = _sde_table(sched, grid)
    for i in range(len(grid) - 1):
        c_t, c_s = cs[i], cs[i + 1]
        t, s = c_t.t, c_s.t
        for _ in range(n_corrector):
            x = langevin_correct(
                denoiser, x, t, snr=snr, step_scale=(c_t.alpha / c_s.alpha) ** 2, generator=generator, **cond
            )
        out = denoiser.predict(x, t, **cond)
        if callback is not None:
            callback(i, t, x, out.x0)
        if s == 0.0:
            x = out.x0
        elif predictor == "euler-maruyama":
            x = _em_step(x, c_t, s, f[i], g2[i], out, generator, noise)
        else:
            trans, _ = posterior_terms(c_t, c_s)
            mean = c_s.alpha * out.x0 + (c_t.alpha / c_s.alpha) * c_s.sigma**2 / c_t.sigma * out.eps
            x = mean + math.sqrt(trans) * (randn_like(x, generator) if noise is None else noise(x, t, s))
    return x
