"""WaveGrad noise levels: the continuous training draw, the inference schedules and the few-step schedule search.

Training (Chen et al. 2021, sec. 3.2 and Algorithm 1): levels l_0 = 1, l_s = sqrt(prod_{i<=s}(1 - beta_i)) of a
1000-step Linear(1e-6, 0.01) table; draw s uniformly in 1..S, then sqrt(alpha_bar) ~ U(l_s, l_{s-1}). The network
is conditioned on that continuous level, so one model can be sampled with any beta schedule.

Inference: a schedule is a table of N betas, sampled with WaveGrad's Algorithm 2, which is core's ancestral DDPM
(fixed-small variance) on `DiscreteVP.from_betas(betas)` visiting every table step (see task.py).
  1000 iterations: the training table.
  50 iterations:   Linear(1e-4, 0.05, 50) (paper, sec. 4).
  25 iterations:   Fibonacci betas from 1e-6, 2e-6 (as used by public WaveGrad reproductions).
  6 iterations:    one beta per decade 10^-6 .. 10^-1 (mantissas m_i: the paper's grid, App. B), ending near
                   full noise; `search_schedule` tunes the mantissas on validation clips.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from omnidiffusion.core.checks import positive_int

TRAIN_STEPS = 1000
TRAIN_BETA_START = 1e-6
TRAIN_BETA_END = 0.01
# Default 6-step mantissas per decade 1e-6 .. 1e-1: the last beta 0.8 starts the chain near full noise
# (sqrt(alpha_bar_6) about 0.43); search_schedule refines them.
DEFAULT_6_MANTISSAS = (5.0, 5.0, 5.0, 5.0, 5.0, 8.0)


def training_betas(steps: int = TRAIN_STEPS, start: float = TRAIN_BETA_START, end: float = TRAIN_BETA_END) -> Tensor:
    """The training table Linear(start, end, steps) in float64: (steps,)."""
    return torch.linspace(start, end, steps, dtype=torch.float64)


def levels_from_betas(betas: Tensor | Sequence[float]) -> Tensor:
    """Noise levels l_0 = 1, l_s = sqrt(prod_{i<=s} (1 - beta_i)): (S,) betas -> (S + 1,) float64, decreasing."""
    b = torch.as_tensor(betas, dtype=torch.float64)
    return torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1.0 - b, 0).sqrt()])


def training_levels() -> Tensor:
    """l_0 .. l_1000 of the training table: (1001,) float64, from 1 down to about 0.081."""
    return levels_from_betas(training_betas())


def draw_noise_levels(
    batch: int, levels: Tensor, *, generator: torch.Generator | None = None, device: torch.device | str = "cpu"
) -> tuple[Tensor, Tensor]:
    """Continuous noise levels for a batch (Chen et al. 2021, Algorithm 1).

    Draws s ~ U{1..S} and sqrt(alpha_bar) ~ U(l_s, l_{s-1}); returns (noise_level (B,) float32, s (B,) int64).
    """
    S = levels.numel() - 1
    s = torch.randint(1, S + 1, (batch,), generator=generator)
    u = torch.rand(batch, generator=generator, dtype=torch.float64)
    lo, hi = levels[s], levels[s - 1]
    level = lo + u * (hi - lo)
    return level.float().to(device), s.to(device)


def fibonacci_betas(n: int = 25, first: float = 1e-6, second: float = 2e-6) -> Tensor:
    """Betas b_1 = first, b_2 = second, b_k = b_{k-1} + b_{k-2}: (n,) float64."""
    out = [first, second]
    while len(out) < n:
        out.append(out[-1] + out[-2])
    return torch.tensor(out[:n], dtype=torch.float64)


def decade_betas(mantissas: Sequence[float], low: int = -6, high: int = -1) -> Tensor:
    """beta_i = m_i * 10^(e_i), exponents spread evenly from 10^low to 10^high (rounded): (n,) float64."""
    n = len(mantissas)
    exps = np.round(np.linspace(low, high, n)) if n > 1 else np.array([high])
    b = torch.tensor([float(m) * 10.0 ** float(e) for m, e in zip(mantissas, exps, strict=True)], dtype=torch.float64)
    if not bool(((b > 0) & (b < 1)).all()):
        raise ValueError(f"mantissas: betas must lie in (0, 1), got {b.tolist()}")
    return b


_NAMED: dict[int, Callable[[], Tensor]] = {
    1000: training_betas,
    50: lambda: torch.linspace(1e-4, 0.05, 50, dtype=torch.float64),
    25: fibonacci_betas,
    6: lambda: decade_betas(DEFAULT_6_MANTISSAS),
}
NAMED_ITERATIONS = tuple(sorted(_NAMED))  # (6, 25, 50, 1000)


def inference_betas(iterations: int, name: str = "iterations") -> Tensor:
    """The named inference schedule for 1000, 50, 25 or 6 iterations: (N,) float64 betas."""
    n = positive_int(iterations, name)
    if n not in _NAMED:
        raise ValueError(
            f"{name}: expected one of {list(NAMED_ITERATIONS)} (the named schedules; or pass explicit betas), got {n}"
        )
    return _NAMED[n]()


def check_betas(betas: Tensor | Sequence[float], name: str = "betas") -> Tensor:
    """Validate a beta table: 1-D, finite, every entry in (0, 1). Returns float64."""
    try:
        b = torch.as_tensor(betas, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"{name}: expected a 1-D sequence of betas in (0, 1), got {betas!r}") from None
    if b.ndim != 1 or b.numel() < 1:
        raise ValueError(f"{name}: expected a 1-D sequence of at least one beta, got shape {tuple(b.shape)}")
    if not bool(torch.isfinite(b).all()):
        raise ValueError(f"{name}: expected finite betas in (0, 1), got NaN or inf in {b.tolist()}")
    if b.min() <= 0 or b.max() >= 1:
        raise ValueError(
            f"{name}: expected every beta in (0, 1), got range [{b.min().item():.3g}, {b.max().item():.3g}]"
        )
    return b


def search_schedule(
    score: Callable[[Tensor], float],
    steps: int = 6,
    *,
    start: Sequence[float] | None = None,
    mantissas: Sequence[float] = (1, 2, 3, 4, 5, 6, 7, 8, 9),
    sweeps: int = 1,
    progress: bool = True,
) -> tuple[Tensor, float, list[dict]]:
    """Grid search of a few-step schedule beta_i = m_i 10^(e_i) (Chen et al. 2021, App. B), one step at a time.

    The paper scores every point of the grid {1..9}^N x decades; at 9^6 = 531,441 vocoder runs that is out of
    reach on a CPU, so this searches the same grid by coordinate descent: each sweep tries every mantissa at
    each step (last step first, the one that sets the starting noise) with the others held, keeping any that
    lowers `score(betas)` (the log-mel distance on validation clips). Returns (best betas, best score, trials).
    """
    steps = positive_int(steps, "steps")
    sweeps = positive_int(sweeps, "sweeps")
    current = list(DEFAULT_6_MANTISSAS if start is None and steps == 6 else (start or [5.0] * steps))
    if len(current) != steps:
        raise ValueError(f"start: expected {steps} mantissas, got {len(current)}")
    trials: list[dict] = []
    best = float(score(decade_betas(current)))
    trials.append({"mantissas": list(current), "score": best})
    total = sweeps * steps * len(mantissas)
    bar = tqdm(total=total, desc="schedule search", disable=not progress, leave=False)
    for _ in range(sweeps):
        for i in reversed(range(steps)):
            for m in mantissas:
                bar.update(1)
                if m == current[i]:
                    continue
                candidate = current.copy()
                candidate[i] = float(m)
                try:
                    betas = decade_betas(candidate)
                except ValueError:
                    continue
                value = float(score(betas))
                trials.append({"mantissas": candidate, "score": value})
                if value < best:
                    best, current = value, candidate
    bar.close()
    return decade_betas(current), best, trials
