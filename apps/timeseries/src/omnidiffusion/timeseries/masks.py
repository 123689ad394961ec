"""Conditioning masks: which observed entries the model sees (CSDI "target choice strategies", sec. 4.3).

All masks are bool tensors (B, K, L), True = given to the model as conditioning. The hidden targets are
`observed & ~cond`. Strategies (Tashiro et al. 2021, appendix B; CSDI main_model.py):

  random      per sample a ratio r ~ U(0, 1); hide round(r * #observed) observed entries chosen at random
  historical  keep only the entries observed in another sample of the batch (its missing pattern, index i - 1);
              where the data bring their own patterns (PM2.5: windows of other months), sample i - 1's pattern
  mix         a fair coin per sample between random and historical
  forecast    hide the last `horizon` time points (every feature)

`fixed_rate_mask` hides an exact share of the observed entries; evaluation uses it (10%, 50%, 90% hidden).
"""

from __future__ import annotations

import torch
from torch import Tensor

from omnidiffusion.core.tensors import rand

STRATEGIES = ("random", "historical", "mix", "forecast")


def _check_observed(observed: Tensor) -> Tensor:
    if not isinstance(observed, Tensor) or observed.ndim != 3:
        raise ValueError(f"observed: expected a bool tensor (B, K, L), got {getattr(observed, 'shape', observed)}")
    return observed.bool()


def hide_count(observed: Tensor, counts: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Hide exactly counts[b] of sample b's observed entries, uniformly at random; returns the cond mask."""
    observed = _check_observed(observed)
    B = observed.shape[0]
    scores = rand(observed.shape, generator, device=observed.device)
    scores = scores.masked_fill(~observed, 2.0).reshape(B, -1)  # unobserved entries sort last, never hidden
    ranks = scores.argsort(dim=1).argsort(dim=1)  # rank of each entry in its sample, (B, KL)
    hidden = ranks < counts.reshape(B, 1).to(ranks.device)
    return observed & ~hidden.reshape(observed.shape)


def random_mask(observed: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """CSDI `get_randmask`: ratio r ~ U(0, 1) per sample, hide round(r * #observed) observed entries."""
    observed = _check_observed(observed)
    n_obs = observed.flatten(1).sum(1).double()
    ratio = rand(observed.shape[0], generator, device=observed.device, dtype=torch.float64)
    return hide_count(observed, torch.round(ratio * n_obs).long(), generator)


def fixed_rate_mask(observed: Tensor, rate: float, generator: torch.Generator | None = None) -> Tensor:
    """Hide round(rate * #observed) observed entries of every sample (the evaluation pattern)."""
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"rate: expected a missing rate in [0, 1), got {rate}")
    observed = _check_observed(observed)
    n_obs = observed.flatten(1).sum(1).double()
    return hide_count(observed, torch.round(rate * n_obs).long(), generator)


def historical_mask(observed: Tensor, patterns: Tensor | None = None) -> Tensor:
    """CSDI `get_hist_mask`: cond = observed & pattern, the pattern of sample i - 1 (or the given patterns)."""
    observed = _check_observed(observed)
    if patterns is None:
        patterns = observed.roll(1, dims=0)
    if patterns.shape != observed.shape:
        raise ValueError(f"patterns: expected shape {tuple(observed.shape)}, got {tuple(patterns.shape)}")
    return observed & patterns.bool()


def forecast_mask(observed: Tensor, horizon: int) -> Tensor:
    """Hide the last `horizon` time points: cond = observed with the forecast range zeroed."""
    observed = _check_observed(observed)
    L = observed.shape[-1]
    if not 1 <= horizon < L:
        raise ValueError(f"horizon: expected 1 <= horizon < window length {L}, got {horizon}")
    cond = observed.clone()
    cond[..., L - horizon :] = False
    return cond


def training_mask(
    observed: Tensor,
    strategy: str,
    *,
    horizon: int = 0,
    forecast_share: float = 1.0,
    patterns: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """The conditioning mask of one training batch for `strategy` (one of STRATEGIES).

    With "forecast", a share `1 - forecast_share` of the samples gets a random mask instead, which keeps the
    model useful for imputation inside the history too. `patterns` (B, K, L): each sample's historical missing
    pattern where the data define one (CSDI's `hist_mask`); sample i then takes the pattern of sample i - 1, as
    CSDI's get_hist_mask does. Without it, sample i takes the observed mask of sample i - 1.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy: expected one of {STRATEGIES}, got {strategy!r}")
    observed = _check_observed(observed)
    rnd = random_mask(observed, generator)
    if strategy == "random":
        return rnd
    if strategy == "forecast":
        fc = forecast_mask(observed, horizon)
        pick = rand(observed.shape[0], generator, device=observed.device) < forecast_share
        return torch.where(pick[:, None, None], fc, rnd)
    hist = historical_mask(observed, None if patterns is None else patterns.roll(1, dims=0))
    if strategy == "historical":
        return hist
    coin = rand(observed.shape[0], generator, device=observed.device) < 0.5
    return torch.where(coin[:, None, None], rnd, hist)
