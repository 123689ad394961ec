"""AnoDDPM (Wyatt et al., CVPRW 2022): a DDPM trained on normal images, partial diffusion, reconstruction.

Training (`AnoDDPMLoss`): L_simple on the noise (Ho et al. 2020, eq. 14) where the noise is simplex noise
(or Gaussian), and the step is drawn uniformly from the first `train_max_index` steps of the table only (AnoDDPM
trains on [0, 800) of T = 1000: detection never starts from the heavily noised end).

Detection (`reconstruct`): noise the input to step t* (1-based count, AnoDDPM's lambda) with the same noise type,
x_{t*} = sqrt(abar) x + sqrt(1 - abar) eps (eq. 4), then run the reverse chain back to 0.
- method "ddpm" is the paper's chain: ancestral steps with the fixed-large variance beta_t (AnoDDPM's model
  variance). With Gaussian noise it runs through core's `sample` on the explicit discrete grid; with simplex noise
  the step injects simplex noise instead of N(0, I) (AnoDDPM's reverse step, eq. 6 with eps ~ simplex), which
  core's samplers do not offer, so that chain is written here on core's step coefficients and Denoiser.
- "ddim" / "dpm++2m" etc. are deterministic solvers from x_{t*} (core `sample(..., t_start=t)`), the few-step
  option; only the initial noising then uses the simplex field.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from omnidiffusion.core import Denoiser, denoising_loss, sample
from omnidiffusion.core.samplers import posterior_terms
from omnidiffusion.core.samplers.common import grid_coeffs

from .settings import AnomalyConfig
from .simplex import simplex_like

NOISES = ("gaussian", "simplex")


def noise_like(
    x: Tensor, t_index: Tensor, settings: AnomalyConfig, generator: torch.Generator | None = None
) -> Tensor:
    """The configured noise shaped like x (B, C, H, W): N(0, I) or standardised simplex noise at depth t_index (B,)."""
    if settings.noise == "gaussian":
        return torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    if settings.noise == "simplex":
        return simplex_like(
            x,
            t_index,
            octaves=settings.octaves,
            persistence=settings.persistence,
            frequency=settings.frequency,
            dims=settings.simplex_dims,
            generator=generator,
        )
    raise ValueError(f"anomaly.noise: expected one of {NOISES}, got {settings.noise!r}")


class AnoDDPMLoss:
    """loss_fn(model, batch) for core `fit`: eps-MSE with the configured noise at steps n ~ U{0..train_max_index-1}."""

    def __init__(self, settings: AnomalyConfig, hflip: bool = True) -> None:
        if settings.noise not in NOISES:
            raise ValueError(f"anomaly.noise: expected one of {NOISES}, got {settings.noise!r}")
        self.settings, self.hflip = settings, hflip

    def __call__(self, model: nn.Module, batch) -> Tensor:
        x0 = batch[0] if isinstance(batch, list | tuple) else batch  # (B, C, H, W) in [-1, 1]
        inner = model.module if hasattr(model, "module") else model  # DDP wraps the ImageDDPM
        sched = inner.schedule
        top = min(int(self.settings.train_max_index), sched.T)
        if top < 1:
            raise ValueError(f"anomaly.train_max_index: expected >= 1, got {self.settings.train_max_index}")
        if self.hflip:
            flip = torch.rand(x0.shape[0]) < 0.5
            x0 = torch.where(flip[:, None, None, None].to(x0.device), x0.flip(-1), x0)
        n = torch.randint(0, top, (x0.shape[0],))  # 0-based table steps, torch's global RNG (checkpointed)
        t = sched.t_of_index(n).to(torch.float64).to(x0.device)
        noise = noise_like(x0, n, self.settings)
        return denoising_loss(Denoiser(model, sched, inner.prediction), x0, t=t, noise=noise)


def _check_t_star(t_star: int, T: int) -> int:
    if not isinstance(t_star, int) or not 1 <= t_star <= T:
        raise ValueError(f"t_star: expected an int in [1, {T}] (steps of the training table), got {t_star!r}")
    return t_star


def step_grid(schedule, t_star: int, steps: int | None = None) -> Tensor:
    """Decreasing times of table steps t*-1, ..., 0 (0-based; `steps` evenly spaced ones when `steps` < t*), then 0."""
    t_star = _check_t_star(t_star, schedule.T)
    if steps is None or steps >= t_star:
        idx = torch.arange(t_star - 1, -1, -1)
    else:
        if steps < 1:
            raise ValueError(f"steps: expected >= 1, got {steps}")
        idx = torch.unique(torch.linspace(t_star - 1, 0, steps).round().long()).flip(0)
    return torch.cat([schedule.t_of_index(idx).to(torch.float64), torch.zeros(1, dtype=torch.float64)])


def partial_diffusion(
    denoiser: Denoiser, x: Tensor, t_star: int, settings: AnomalyConfig, generator: torch.Generator | None = None
) -> Tensor:
    """x_{t*} = alpha x + sigma eps at table step t* (1-based, AnoDDPM's lambda) with the configured noise (eq. 4)."""
    sched = denoiser.schedule
    n = torch.full((x.shape[0],), _check_t_star(t_star, sched.T) - 1)
    t = sched.t_of_index(n[:1]).to(torch.float64)
    a, s = float(sched.alpha(t)), float(sched.sigma(t))
    return a * x + s * noise_like(x, n, settings, generator)


@torch.no_grad()
def simplex_ancestral(
    denoiser: Denoiser,
    x: Tensor,
    grid: Tensor,
    settings: AnomalyConfig,
    generator: torch.Generator | None = None,
) -> Tensor:
    """AnoDDPM's reverse chain with simplex noise: x_s = mu(x_t, x0_hat) + sqrt(sigma_{t|s}^2) eps_simplex.

    mu is the posterior mean of q(x_s | x_t, x0_hat) (Ho et al. 2020, eq. 7) and the variance is the forward
    transition variance (beta_t between consecutive table steps, AnoDDPM's fixed-large choice); the last step
    returns x0_hat. x (B, C, H, W) at grid[0] -> (B, C, H, W).
    """
    sched = denoiser.schedule
    cs = grid_coeffs(sched, grid)
    for i in range(len(grid) - 1):
        c_t, c_s = cs[i], cs[i + 1]
        out = denoiser.predict(x, torch.full((x.shape[0],), c_t.t, dtype=torch.float64, device=x.device))
        if c_s.t == 0.0:
            return out.x0
        trans, _ = posterior_terms(c_t, c_s)
        mean = c_s.alpha * out.x0 + (c_t.alpha / c_s.alpha) * c_s.sigma**2 / c_t.sigma * out.eps
        n_s = round(float(sched.index_of_t(torch.tensor(c_s.t, dtype=torch.float64))))
        z = noise_like(x, torch.full((x.shape[0],), n_s), settings, generator)
        x = mean + math.sqrt(trans) * z
    return x


@torch.no_grad()
def reconstruct(
    model: nn.Module,
    x: Tensor,
    settings: AnomalyConfig,
    *,
    method: str = "ddpm",
    steps: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Partial diffusion to settings.t_star and the reverse chain back: (B, C, H, W) in [-1, 1] -> same shape.

    method "ddpm" = the paper's ancestral chain over the table steps (every step when `steps` is None);
    any other core method ("ddim", "dpm++2m", ...) runs `steps` deterministic solver steps from t*.
    """
    denoiser = model.denoiser() if hasattr(model, "denoiser") else Denoiser(model, model.schedule, model.prediction)
    sched = denoiser.schedule
    x_t = partial_diffusion(denoiser, x, settings.t_star, settings, generator)
    if method == "ddpm":
        grid = step_grid(sched, settings.t_star, steps)
        if settings.noise == "simplex":
            out = simplex_ancestral(denoiser, x_t, grid, settings, generator)
        else:
            out = sample(denoiser, x_t, "ddpm", grid=grid, variance="fixed-large", generator=generator)
    else:
        t_start = float(sched.t_of_index(settings.t_star - 1))
        out = sample(denoiser, x_t, method, steps or 20, "time-uniform", t_start=t_start, generator=generator)
    return out.clamp(-1.0, 1.0)
