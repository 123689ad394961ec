"""Forward processes around a schedule: q(x_t | x0), the prior, and the SDE view (Song et al. 2021).

Forward SDE dx = f(t) x dt + g(t) dw with f, g^2 from the schedule; reverse-time SDE drift f x - g^2 score and
probability-flow ODE drift f x - g^2 score / 2 (Song et al. 2021, eqs. 6 and 13). VP, sub-VP and VE are the
same class around LinearVP, SubVP and VE schedules.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from .denoiser import check_state
from .schedules import VE, LinearVP, NoiseSchedule, SubVP
from .tensors import append_dims, per_sample, randn, sum_flat


def prior_std(schedule: NoiseSchedule, t: float = 1.0) -> float:
    """Standard deviation of the Gaussian prior at time t: 1 on VP schedules, sigma(t) otherwise."""
    return 1.0 if schedule.variance_preserving else schedule.sigma(t).item()


class ForwardProcess:
    """The diffusion x_t = alpha(t) x0 + sigma(t) eps around `schedule`, with its SDE and its prior."""

    def __init__(self, schedule: NoiseSchedule):
        if not isinstance(schedule, NoiseSchedule):
            raise ValueError(f"schedule: expected a NoiseSchedule, got {type(schedule).__name__}")
        self.schedule = schedule

    def _coef(self, t: float | Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        tt = per_sample(t, x)
        if tt.min() < 0 or tt.max() > 1:
            raise ValueError(f"t: expected values in [0, 1], got range [{tt.min().item()}, {tt.max().item()}]")
        a = append_dims(self.schedule.alpha(tt), x.ndim).to(x.dtype)
        s = append_dims(self.schedule.sigma(tt), x.ndim).to(x.dtype)
        return a, s

    def q_sample(
        self, x0: Tensor, t: float | Tensor, noise: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """x_t = alpha(t) x0 + sigma(t) noise; `t` is a float or one entry per leading element of x0."""
        check_state(x0, "x0")
        if noise is None:
            noise = randn(x0.shape, generator, device=x0.device, dtype=x0.dtype)
        elif noise.shape != x0.shape:
            raise ValueError(f"noise: expected shape {tuple(x0.shape)}, got {tuple(noise.shape)}")
        a, s = self._coef(t, x0)
        return a * x0 + s * noise

    def renoise(
        self, x_s: Tensor, s: float, t: float, generator: torch.Generator | None = None
    ) -> Tensor:
        """Sample q(x_t | x_s) for s < t: (alpha_t/alpha_s) x_s + sigma_{t|s} z (RePaint's jump back)."""
        if not 0.0 <= s < t <= 1.0:
            raise ValueError(f"s, t: expected 0 <= s < t <= 1, got {s}, {t}")
        a_t, a_s = self.schedule.alpha(t).item(), self.schedule.alpha(s).item()
        s_t, s_s = self.schedule.sigma(t).item(), self.schedule.sigma(s).item()
        var = s_t**2 - (a_t / a_s) ** 2 * s_s**2
        z = randn(x_s.shape, generator, device=x_s.device, dtype=x_s.dtype)
        return (a_t / a_s) * x_s + math.sqrt(max(var, 0.0)) * z

    def prior_sample(
        self,
        shape: Sequence[int],
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> Tensor:
        std = prior_std(self.schedule)
        return std * randn(tuple(shape), generator, device=device, dtype=dtype)

    def prior_logp(self, x: Tensor) -> Tensor:
        """log N(x; 0, std^2 I) summed over every non-batch dimension: (B, ...) -> (B,)."""
        std = prior_std(self.schedule)
        d = x[0].numel()
        return -0.5 * sum_flat(x**2) / std**2 - d * (math.log(std) + 0.5 * math.log(2 * math.pi))

    def sde(self, x: Tensor, t: float | Tensor) -> tuple[Tensor, Tensor]:
        """Forward drift f(t) x and diffusion g(t), the latter per sample broadcast to x's rank."""
        tt = per_sample(t, x)
        f, g2 = self.schedule.sde_coefficients(tt)
        return append_dims(f, x.ndim).to(x.dtype) * x, append_dims(torch.sqrt(g2), x.ndim).to(x.dtype)

    def reverse_drift(self, x: Tensor, t: float | Tensor, score: Tensor) -> Tensor:
        """Drift of the reverse-time SDE, f x - g^2 score (to be integrated backwards in time)."""
        drift, g = self.sde(x, t)
        return drift - g**2 * score

    def probability_flow_drift(self, x: Tensor, t: float | Tensor, score: Tensor) -> Tensor:
        """Drift of the probability-flow ODE, f x - g^2 score / 2."""
        drift, g = self.sde(x, t)
        return drift - 0.5 * g**2 * score


def VPSDE(beta_min: float = 0.1, beta_max: float = 20.0) -> ForwardProcess:
    """Song et al. 2021 VP SDE: dx = -beta(t)/2 x dt + sqrt(beta(t)) dw."""
    return ForwardProcess(LinearVP(beta_min, beta_max))


def SubVPSDE(beta_min: float = 0.1, beta_max: float = 20.0) -> ForwardProcess:
    """Song et al. 2021 sub-VP SDE: the VP drift with diffusion sqrt(beta(t) (1 - alpha(t)^4))."""
    return ForwardProcess(SubVP(beta_min, beta_max))


def VESDE(sigma_min: float = 0.01, sigma_max: float = 50.0) -> ForwardProcess:
    """Song et al. 2021 VE SDE: dx = sqrt(d sigma^2/dt) dw."""
    return ForwardProcess(VE(sigma_min, sigma_max))
