"""What every sampler shares: scalar schedule coefficients at grid times, noise draws and the callback type.

Grid times are float64 scalars, so step coefficients are Python floats computed in float64; the state x keeps
its own dtype and the network runs in its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ..schedules import NoiseSchedule

# callback(i, t, x, x0_hat): step index, time at the start of the step, state, the model's x0 estimate.
Callback = Callable[[int, float, Tensor, Tensor], None]


@dataclass(frozen=True)
class Coeffs:
    """alpha, sigma and half log-SNR at one time, as float64 Python floats (lam = +inf at the data end)."""

    t: float
    alpha: float
    sigma: float
    lam: float

    @property
    def sigma_ve(self) -> float:
        return self.sigma / self.alpha


def coeffs(schedule: NoiseSchedule, t: float) -> Coeffs:
    t = float(t)
    if t == 0.0:
        return Coeffs(0.0, 1.0, 0.0, math.inf)
    la, ls = schedule.log_alpha_sigma(t)
    la, ls = la.item(), ls.item()
    return Coeffs(t, math.exp(la), math.exp(ls), la - ls)


def grid_coeffs(schedule: NoiseSchedule, grid: Tensor) -> list[Coeffs]:
    """Coefficients at every grid time, from one vectorised schedule evaluation (the data end is exact)."""
    times = grid.detach().to(torch.float64).cpu()
    la, ls = schedule.log_alpha_sigma(times)
    out = []
    for t, a, s in zip(times.tolist(), la.detach().tolist(), ls.detach().tolist(), strict=True):
        out.append(Coeffs(0.0, 1.0, 0.0, math.inf) if t == 0.0 else Coeffs(t, math.exp(a), math.exp(s), a - s))
    return out


def posterior_terms(c_t: Coeffs, c_s: Coeffs) -> tuple[float, float]:
    """(sigma_{t|s}^2, beta_tilde) for a step from t to s < t.

    sigma_{t|s}^2 = sigma_t^2 - (alpha_t/alpha_s)^2 sigma_s^2 is the forward transition variance ("fixed-large",
    beta_t for consecutive discrete VP steps) and beta_tilde = sigma_s^2 sigma_{t|s}^2 / sigma_t^2 is the variance
    of q(x_s | x_t, x0) ("fixed-small"; Ho et al. 2020, eq. 7).
    """
    a_ts = c_t.alpha / c_s.alpha
    trans = c_t.sigma**2 - a_ts**2 * c_s.sigma**2
    # alpha_s^2 sigma_t^2 - alpha_t^2 sigma_s^2 written with the log-SNR gap to avoid cancellation.
    if c_s.sigma > 0 and math.isfinite(c_s.lam):
        trans = c_t.sigma**2 * -math.expm1(2.0 * (c_t.lam - c_s.lam))
    beta_tilde = c_s.sigma**2 * trans / c_t.sigma**2
    return trans, beta_tilde
