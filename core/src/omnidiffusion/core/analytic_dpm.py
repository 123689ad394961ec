"""Analytic-DPM (Bao et al. 2022, arXiv 2201.06503): the optimal reverse variance of a trained model, estimated
once by Monte Carlo on training data.

The optimal variance of the ancestral step t -> s (Theorem 1, DDPM case; `samplers.analytic_variance`) needs only
the per-time moment

    Gamma_t = E_{x0 ~ data, eps} ||eps_hat(alpha_t x0 + sigma_t eps, t)||^2 / d

through Var[x0 | x_t] ~ (sigma_t/alpha_t)^2 (1 - Gamma_t) (clipped to [0, x0_var_max], e.g. 1 for data in
[-1, 1]). `estimate_eps_sq_mean` returns these moments at the grid times as an `EpsSqTable`, which the "ddpm"
sampler and `likelihood.vlb` take as `eps_sq_mean=` (it is callable of t and indexable per step):

    table = estimate_eps_sq_mean(denoiser, train_x, "time-uniform", steps=10)
    x = sample(denoiser, shape, "ddpm", steps=10, variance="analytic", options={"eps_sq_mean": table})
    vlb(denoiser, x0, steps=10, variance="analytic", eps_sq_mean=table)

For data N(0, I) on a VP schedule the exact noise predictor gives Gamma_t = sigma_t^2 and the analytic variance
of every step is its forward variance (beta_t for consecutive discrete steps).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .denoiser import DenoiserBase, check_state
from .samplers.common import coeffs
from .samplers.ddpm import analytic_variance
from .tensors import mean_flat
from .timesteps import check_grid, make_grid

_F64 = torch.float64


@dataclass
class EpsSqTable:
    """Gamma_t = E||eps_hat(x_t)||^2 / d at grid times (decreasing, all > 0), with Monte-Carlo standard errors.

    `table[i]` is the value for step i of the grid it was estimated on; `table(t)` looks up the time t
    (linear interpolation in t between stored times, ValueError outside their range).
    """

    times: Tensor  # (N,) float64
    values: Tensor  # (N,) float64
    stderr: Tensor  # (N,) float64
    n_samples: int

    def __len__(self) -> int:
        return int(self.times.numel())

    def __getitem__(self, i: int) -> float:
        return float(self.values[i])

    def __call__(self, t: float) -> float:
        t = float(t)
        ts, vs = self.times.flip(0).numpy(), self.values.flip(0).numpy()  # increasing times
        if not ts[0] - 1e-9 <= t <= ts[-1] + 1e-9:
            raise ValueError(f"t: the table holds times in [{ts[0]:.6g}, {ts[-1]:.6g}], got {t:.6g}")
        return float(np.interp(t, ts, vs))


def _batches(data: Tensor | Iterable, batch_size: int) -> Iterable[Tensor]:
    if isinstance(data, Tensor):
        for i in range(0, data.shape[0], batch_size):
            yield data[i : i + batch_size]
        return
    for batch in data:
        x = batch[0] if isinstance(batch, list | tuple) else batch
        if not isinstance(x, Tensor):
            raise ValueError(f"data: expected batches that are a Tensor or start with one, got {type(x).__name__}")
        yield x


@torch.no_grad()
def estimate_eps_sq_mean(
    denoiser: DenoiserBase,
    data: Tensor | Iterable,
    grid: str | Tensor = "time-uniform",
    steps: int | None = None,
    *,
    batch_size: int = 1024,
    generator: torch.Generator | None = None,
    **cond,
) -> EpsSqTable:
    """Monte-Carlo Gamma_t = E||eps_hat(x_t)||^2 / d at every grid time but the data end (Bao et al. 2022, eq. 8
    and their `reverse_ddpm_ms_eps`): one noise draw per data row and time.

    data: a (N, ...) tensor of training samples, or an iterable of batches (tensors or tuples starting with one).
    grid: a name from timesteps.GRIDS (with `steps`) or an explicit decreasing tensor of times; build the sampler's
    grid the same way so that table[i] is step i's moment.
    """
    sched = denoiser.schedule
    if isinstance(grid, Tensor):
        times = check_grid(grid.to(_F64).cpu())
    else:
        if steps is None:
            raise ValueError("steps: needed with a named grid")
        times = make_grid(sched, grid, steps)
    times = times[times > 0]
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected an integer >= 1, got {batch_size!r}")
    total = torch.zeros(len(times), dtype=_F64)
    total_sq = torch.zeros(len(times), dtype=_F64)
    n = 0
    for x0 in _batches(data, batch_size):
        check_state(x0, "data")
        for i, t in enumerate(times.tolist()):
            c = coeffs(sched, t)
            noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
            x_t = c.alpha * x0 + c.sigma * noise
            m = mean_flat(denoiser.predict(x_t, t, **cond).eps.to(_F64) ** 2).cpu()  # (B,)
            total[i] += m.sum()
            total_sq[i] += (m**2).sum()
        n += x0.shape[0]
    if n < 2:
        raise ValueError(f"data: expected at least 2 samples, got {n}")
    mean = total / n
    var = (total_sq / n - mean**2).clamp_min(0.0) * n / (n - 1)
    return EpsSqTable(times, mean, torch.sqrt(var / n), n)


def analytic_variances(
    denoiser_or_schedule, grid: Tensor, table: EpsSqTable, x0_var_max: float | None = None
) -> Tensor:
    """The Analytic-DPM variance of every step of `grid` (N + 1 times -> (N,)), the last step (to t = 0) being
    Var[x0 | x_t] itself; what the "ddpm" sampler and `likelihood.vlb` use with variance="analytic"."""
    sched = getattr(denoiser_or_schedule, "schedule", denoiser_or_schedule)
    times = check_grid(grid.to(_F64).cpu()).tolist()
    out = []
    for i in range(len(times) - 1):
        c_t, c_s = coeffs(sched, times[i]), coeffs(sched, times[i + 1])
        out.append(analytic_variance(c_t, c_s, table(times[i]), x0_var_max))
    return torch.tensor(out, dtype=_F64)


def x0_var_bound(low: float, high: float) -> float:
    """Largest Var[x0 | x_t] per dimension for data in [low, high]: ((high - low)/2)^2 (Bao et al. 2022, sec. 4)."""
    if not low < high:
        raise ValueError(f"low, high: expected low < high, got {low}, {high}")
    return ((high - low) / 2.0) ** 2


__all__ = ["EpsSqTable", "analytic_variances", "estimate_eps_sq_mean", "x0_var_bound"]
