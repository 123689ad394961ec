"""Exact oracles for tests and benchmarks: Gaussian and Gaussian-mixture data in any event shape.

With data N(mu, diag(s^2)) (or a mixture of such), everything a diffusion model estimates is known in closed form:
E[x0 | x_t], the score, log p_t, and for a Gaussian the probability-flow ODE solution, along which the
standardised coordinate (x_t - alpha mu) / sqrt(alpha^2 s^2 + sigma^2) is constant.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .denoiser import Denoiser
from .schedules import NoiseSchedule
from .tensors import append_dims, per_sample, sum_flat

_F64 = torch.float64


def _as64(v) -> Tensor:
    return torch.as_tensor(v, dtype=_F64)


class _Oracle:
    event_shape: tuple[int, ...]

    def _check(self, x: Tensor) -> None:
        if tuple(x.shape[1:]) != self.event_shape:
            raise ValueError(f"x: expected shape (B, {', '.join(map(str, self.event_shape))}), got {tuple(x.shape)}")

    def denoiser(self, schedule: NoiseSchedule, prediction: str = "x0") -> Denoiser:
        """A Denoiser whose network returns the exact `prediction` (x0, eps, v or score) for this data."""
        if prediction not in ("x0", "eps", "v", "score"):
            raise ValueError(f"prediction: expected one of x0, eps, v, score, got {prediction!r}")

        def net(x_t: Tensor, t: Tensor, **_) -> Tensor:
            self._check(x_t)
            x64 = x_t.to(_F64)
            x0 = self.posterior_mean(x64, t.to(_F64), schedule)
            a = append_dims(schedule.alpha(t), x64.ndim)
            s = append_dims(schedule.sigma(t), x64.ndim)
            if prediction == "x0":
                out = x0
            else:
                eps = (x64 - a * x0) / s
                out = {"eps": eps, "v": a * eps - s * x0, "score": -eps / s}[prediction]
            return out.to(x_t.dtype)

        return Denoiser(net, schedule, prediction=prediction)

    def posterior_mean(self, x_t: Tensor, t: Tensor, schedule: NoiseSchedule) -> Tensor:
        raise NotImplementedError

    def log_prob(self, x: Tensor, t: float | Tensor = 0.0, schedule: NoiseSchedule | None = None) -> Tensor:
        raise NotImplementedError

    def score(self, x_t: Tensor, t: float | Tensor, schedule: NoiseSchedule) -> Tensor:
        """grad log p_t(x_t) = (alpha E[x0|x_t] - x_t) / sigma^2 (Tweedie)."""
        x64 = x_t.to(_F64)
        tt = per_sample(t, x64)
        a = append_dims(schedule.alpha(tt), x64.ndim)
        s = append_dims(schedule.sigma(tt), x64.ndim)
        return ((a * self.posterior_mean(x64, tt, schedule) - x64) / s**2).to(x_t.dtype)


def _marginal(schedule: NoiseSchedule | None, t: Tensor, ndim: int) -> tuple[Tensor, Tensor]:
    if schedule is None:
        if t.abs().max() > 0:
            raise ValueError("schedule: needed for log_prob at t > 0")
        ones = torch.ones_like(t)
        return append_dims(ones, ndim), append_dims(torch.zeros_like(t), ndim)
    a = torch.where(t == 0, torch.ones_like(t), schedule.alpha(t))
    s = torch.where(t == 0, torch.zeros_like(t), schedule.sigma(t))
    return append_dims(a, ndim), append_dims(s, ndim)


class Gaussian(_Oracle):
    """Data x0 ~ N(mean, diag(std^2)); `mean` and `std` broadcast to one event shape (e.g. (2,) or (3, 8, 8))."""

    def __init__(self, mean, std):
        mean, std = torch.broadcast_tensors(_as64(mean), _as64(std))
        if (std <= 0).any():
            raise ValueError("std: expected positive values")
        if mean.ndim == 0:
            mean, std = mean.reshape(1), std.reshape(1)
        self.mean, self.std = mean.clone(), std.clone()
        self.event_shape = tuple(mean.shape)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        z = torch.randn((n, *self.event_shape), generator=generator, dtype=_F64)
        return self.mean + self.std * z

    def posterior_mean(self, x_t, t, schedule):
        tt = per_sample(t, x_t)
        a = append_dims(schedule.alpha(tt), x_t.ndim)
        s = append_dims(schedule.sigma(tt), x_t.ndim)
        v = self.std**2
        return self.mean + a * v / (a**2 * v + s**2) * (x_t - a * self.mean)

    def marginal_std(self, t: float, schedule: NoiseSchedule) -> Tensor:
        a, s = schedule.alpha(t), schedule.sigma(t)
        return torch.sqrt(a**2 * self.std**2 + s**2)

    def log_prob(self, x, t=0.0, schedule=None):
        self._check(x)
        x64 = x.to(_F64)
        tt = per_sample(t, x64)
        a, s = _marginal(schedule, tt, x64.ndim)
        var = a**2 * self.std**2 + s**2
        lp = -0.5 * (x64 - a * self.mean) ** 2 / var - 0.5 * torch.log(2 * math.pi * var)
        return sum_flat(lp)

    def ode_endpoint(
        self, x_T: Tensor, schedule: NoiseSchedule, t_start: float = 1.0, t_end: float = 0.0
    ) -> Tensor:
        """Exact probability-flow ODE solution from x at t_start to t_end (the standardised coordinate is constant)."""
        self._check(x_T)
        x64 = x_T.to(_F64)

        def ab(t):
            if t == 0.0:
                return torch.ones((), dtype=_F64), torch.zeros((), dtype=_F64)
            return schedule.alpha(t), schedule.sigma(t)

        a0, s0 = ab(float(t_start))
        a1, s1 = ab(float(t_end))
        z = (x64 - a0 * self.mean) / torch.sqrt(a0**2 * self.std**2 + s0**2)
        return (a1 * self.mean + torch.sqrt(a1**2 * self.std**2 + s1**2) * z).to(x_T.dtype)


class GaussianMixture(_Oracle):
    """Data from sum_k w_k N(mean_k, diag(std_k^2)); means (K, *event), stds (K, *event) or (K,) isotropic."""

    def __init__(self, weights, means, stds):
        w = _as64(weights)
        means = _as64(means)
        stds = _as64(stds)
        if w.ndim != 1 or (w <= 0).any():
            raise ValueError(f"weights: expected a 1-D tensor of positive weights, got {tuple(w.shape)}")
        if means.shape[0] != w.shape[0]:
            raise ValueError(f"means: expected {w.shape[0]} components on dim 0, got shape {tuple(means.shape)}")
        if means.ndim == 1:
            means = means[:, None]
        if stds.ndim == 1:
            stds = append_dims(stds, means.ndim)
        stds = stds.expand_as(means).clone()
        if (stds <= 0).any():
            raise ValueError("stds: expected positive values")
        self.weights = w / w.sum()
        self.means, self.stds = means.clone(), stds
        self.event_shape = tuple(means.shape[1:])
        self.K = int(w.shape[0])

    def sample(self, n: int, generator: torch.Generator | None = None, return_labels: bool = False):
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn((n, *self.event_shape), generator=generator, dtype=_F64)
        x = self.means[k] + self.stds[k] * z
        return (x, k) if return_labels else x

    def _component_terms(self, x64: Tensor, a: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
        # a, s: (B, 1, ..., 1). Returns per-component log-densities (B, K) and variances (B, K, *event).
        xe = x64[:, None]
        ae, se = a[:, None], s[:, None]
        var = ae**2 * self.stds[None] ** 2 + se**2
        lp = -0.5 * (xe - ae * self.means[None]) ** 2 / var - 0.5 * torch.log(2 * math.pi * var)
        return lp.reshape(*lp.shape[:2], -1).sum(-1) + torch.log(self.weights), var

    def responsibilities(self, x_t: Tensor, t: float | Tensor, schedule: NoiseSchedule) -> Tensor:
        """log p(k | x_t) for every component: (B, K)."""
        x64 = x_t.to(_F64)
        tt = per_sample(t, x64)
        a, s = _marginal(schedule, tt, x64.ndim)
        lp, _ = self._component_terms(x64, a, s)
        return lp - torch.logsumexp(lp, dim=1, keepdim=True)

    def posterior_mean(self, x_t, t, schedule):
        tt = per_sample(t, x_t)
        a, s = _marginal(schedule, tt, x_t.ndim)
        lp, var = self._component_terms(x_t, a, s)
        r = torch.softmax(lp, dim=1)
        ae = a[:, None]
        m = self.means[None] + ae * self.stds[None] ** 2 / var * (x_t[:, None] - ae * self.means[None])
        return (append_dims(r, m.ndim) * m).sum(1)

    def log_prob(self, x, t=0.0, schedule=None):
        self._check(x)
        x64 = x.to(_F64)
        tt = per_sample(t, x64)
        a, s = _marginal(schedule, tt, x64.ndim)
        lp, _ = self._component_terms(x64, a, s)
        return torch.logsumexp(lp, dim=1)

    def mean_cov(self) -> tuple[Tensor, Tensor]:
        """Mean and covariance of the flattened data distribution (for moment checks)."""
        m = self.means.reshape(self.K, -1)
        v = self.stds.reshape(self.K, -1) ** 2
        mu = (self.weights[:, None] * m).sum(0)
        cov = sum(self.weights[k] * (torch.diag(v[k]) + torch.outer(m[k], m[k])) for k in range(self.K))
        return mu, cov - torch.outer(mu, mu)
