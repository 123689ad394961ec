"""Timestep grids are data: a float64 tensor of times, strictly decreasing from the noise end to the data end.

A grid for `steps` = N has N + 1 entries: it starts at `t_start` (1 unless a sampler starts from a partially
noised input) and ends explicitly at `t_end` (0, the data end, unless given). Grids whose spacing is defined
in log-SNR or in sigma (which are infinite/zero at t = 0) visit the schedule's `t_min` at position N - 1 and
then jump to 0, as EDM and DPM-Solver do.

  time-uniform  t_i = linspace(t_start, t_end)                         (DDPM / score_sde)
  quadratic     t_i = t_end + (t_start - t_end) u_i^2, u = linspace(1, 0) (Song et al. 2021, DDIM)
  logsnr        lambda uniform between lambda(t_start) and lambda(t_min) (Lu et al. 2022, DPM-Solver)
  karras        sigma~^(1/rho) uniform, rho = 7                        (Karras et al. 2022, eq. 5)
  trailing      discrete steps round(T - i T/N), ties to even (Lin et al. 2023, Table 2; diffusers' spacing);
                equals time-uniform when N | T
"""

from __future__ import annotations

import torch
from torch import Tensor

from .schedules import DiscreteVP, NoiseSchedule

GRIDS = ("time-uniform", "quadratic", "logsnr", "karras", "trailing")

_F64 = torch.float64


def _check_steps(steps) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps: expected an integer >= 1, got {steps!r}")
    return steps


def make_grid(
    schedule: NoiseSchedule,
    name: str,
    steps: int,
    *,
    t_start: float = 1.0,
    t_end: float = 0.0,
    t_min: float | None = None,
    rho: float = 7.0,
) -> Tensor:
    """Build a named grid of `steps` + 1 times from `t_start` down to `t_end` (float64, strictly decreasing)."""
    steps = _check_steps(steps)
    if name not in GRIDS:
        raise ValueError(f"grid: expected one of {GRIDS}, got {name!r}")
    if not 0.0 <= t_end < t_start <= 1.0:
        raise ValueError(f"t_start, t_end: expected 0 <= t_end < t_start <= 1, got {t_start}, {t_end}")

    if name == "time-uniform":
        grid = torch.linspace(t_start, t_end, steps + 1, dtype=_F64)
    elif name == "quadratic":
        u = torch.linspace(1.0, 0.0, steps + 1, dtype=_F64)
        grid = t_end + (t_start - t_end) * u**2
    elif name == "trailing":
        grid = _trailing(schedule, steps, t_start, t_end)
    else:
        lo = t_end if t_end > 0 else (schedule.t_min if t_min is None else float(t_min))
        if not lo < t_start:
            raise ValueError(f"t_start: expected a value above t_min = {lo}, got {t_start}")
        # With t_end = 0 the last interval is the jump from t_min to the data end.
        n = steps + 1 if t_end > 0 else steps
        if n == 1:
            inner = torch.tensor([t_start], dtype=_F64)
        elif name == "logsnr":
            lam = torch.linspace(
                schedule.log_snr(t_start).item(), schedule.log_snr(lo).item(), n, dtype=_F64
            )
            inner = schedule.t_from_log_snr(lam)
        else:  # karras
            s_hi = schedule.sigma_ve(t_start).item() ** (1.0 / rho)
            s_lo = schedule.sigma_ve(lo).item() ** (1.0 / rho)
            sig = torch.linspace(s_hi, s_lo, n, dtype=_F64) ** rho
            inner = schedule.t_from_sigma_ve(sig)
        # Pin the ends exactly; inversion through log-SNR may leave rounding error there.
        inner[0] = t_start
        if n > 1:
            inner[-1] = lo
        grid = inner if t_end > 0 else torch.cat([inner, torch.zeros(1, dtype=_F64)])
    check_grid(grid)
    return grid


def _trailing(schedule: NoiseSchedule, steps: int, t_start: float, t_end: float) -> Tensor:
    if not isinstance(schedule, DiscreteVP):
        return torch.linspace(t_start, t_end, steps + 1, dtype=_F64)
    T = schedule.T
    n_start = round(t_start * T)  # number of table steps covered from the data end
    n_end = round(t_end * T)
    span = n_start - n_end
    if abs(n_start - t_start * T) > 1e-9 or abs(n_end - t_end * T) > 1e-9:
        raise ValueError(f"t_start, t_end: 'trailing' needs multiples of 1/T = 1/{T}, got {t_start}, {t_end}")
    if steps > span:
        raise ValueError(f"steps: 'trailing' allows at most {span} steps between t_start and t_end, got {steps}")
    i = torch.arange(steps + 1, dtype=torch.int64)
    # round(span - i span/N) in exact integer arithmetic, ties to even as numpy's round (so "trailing" matches
    # diffusers' timesteps), offset by n_end.
    num = span * (steps - i)
    q, rem = num // steps, num % steps
    up = (2 * rem > steps) | ((2 * rem == steps) & (q % 2 == 1))
    k = n_end + q + up.long()
    return k.to(_F64) / T


def check_grid(grid: Tensor) -> Tensor:
    """Raise ValueError unless `grid` is a 1-D float tensor in [0, 1], strictly decreasing, with >= 2 entries."""
    if not isinstance(grid, Tensor) or grid.ndim != 1 or grid.numel() < 2:
        shape = tuple(grid.shape) if isinstance(grid, Tensor) else type(grid).__name__
        raise ValueError(f"grid: expected a 1-D tensor of at least 2 times, got {shape}")
    if torch.isnan(grid).any() or grid.min() < 0 or grid.max() > 1:
        raise ValueError(f"grid: expected times in [0, 1], got range [{grid.min().item()}, {grid.max().item()}]")
    if not bool((grid[1:] < grid[:-1]).all()):
        raise ValueError("grid: expected strictly decreasing times (noise end first, data end last)")
    return grid
