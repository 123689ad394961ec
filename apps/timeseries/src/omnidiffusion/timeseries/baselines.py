"""Imputation and forecasting baselines, returned as (degenerate) samples so every metric applies unchanged.

- mean imputation: each hidden entry gets its feature's training mean (0 in z-units); CRPS = 1 in z-units.
- linear interpolation along time between the known entries of the window, flat beyond the ends, the
  training mean for a feature with no known entry in the window.
- seasonal naive forecast (the value one season earlier, gluonts' `SeasonalNaivePredictor`): see gluonts.py.
"""

from __future__ import annotations

import numpy as np
import torch

from .task import linear_interpolation


def _check(values: np.ndarray, cond: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    values, cond = np.asarray(values, dtype=np.float64), np.asarray(cond, dtype=bool)
    if values.shape != cond.shape or values.ndim != 3:
        raise ValueError(f"values, cond: expected equal shapes (B, K, L), got {values.shape}, {cond.shape}")
    return values, cond


def mean_imputation(values: np.ndarray, cond: np.ndarray, mean: np.ndarray | float = 0.0) -> np.ndarray:
    """Hidden entries -> the per-feature mean (K,) (default 0, the training mean in z-units); (1, B, K, L)."""
    values, cond = _check(values, cond)
    fill = np.broadcast_to(np.asarray(mean, dtype=np.float64).reshape(1, -1, 1), values.shape)
    return np.where(cond, values, fill)[None]


def linear_imputation(values: np.ndarray, cond: np.ndarray, fill: float = 0.0) -> np.ndarray:
    """Linear interpolation along time of the known entries of each window; (1, B, K, L)."""
    values, cond = _check(values, cond)
    out = linear_interpolation(torch.from_numpy(np.where(cond, values, 0.0)), torch.from_numpy(cond), fill)
    return out.numpy()[None]
