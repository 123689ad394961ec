"""Probabilistic metrics as CSDI computes them (Tashiro et al. 2021, sec. 6.1; CSDI utils.py).

    QL_q  = 2 * sum over eval points of |(y - q_hat) * (1{y <= q_hat} - q)|
    CRPS  = mean over q in {0.05, 0.10, ..., 0.95} of QL_q / sum |y|          (normalised quantile loss)
    CRPS-sum: the same on the sum over features (per time point) of targets and of samples

CRPS equals gluonts' `mean_wQuantileLoss` with those 19 quantiles when both read the quantiles of the samples
the same way: gluonts takes the sorted sample at index round((n - 1) q) ("nearest"); CSDI interpolates
linearly (torch.quantile, "linear"). The two agree whenever (n - 1) q is an integer, e.g. n = 101 samples.
MAE and RMSE are those of the sample median; coverage is the share of targets inside the [5%, 95%] interval.
All functions take samples (S, ...), target (...) and a bool eval mask (...), in any units.
"""

from __future__ import annotations

import numpy as np

QUANTILES = tuple(round(0.05 * i, 2) for i in range(1, 20))  # 0.05 .. 0.95, CSDI's 19 levels


def _check(samples: np.ndarray, target: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, ...]:
    samples, target = np.asarray(samples, dtype=np.float64), np.asarray(target, dtype=np.float64)
    if samples.shape[1:] != target.shape:
        raise ValueError(f"samples: expected shape (S, *{target.shape}), got {samples.shape}")
    mask = np.ones(target.shape, bool) if mask is None else np.asarray(mask, dtype=bool)
    if mask.shape != target.shape:
        raise ValueError(f"mask: expected shape {target.shape}, got {mask.shape}")
    if not mask.any():
        raise ValueError("mask: no evaluation point (all False)")
    return samples, target, mask


def sample_quantiles(samples: np.ndarray, quantiles=QUANTILES, method: str = "linear") -> np.ndarray:
    """Quantiles over axis 0: "linear" (CSDI, torch.quantile) or "nearest" (gluonts SampleForecast)."""
    samples = np.asarray(samples, dtype=np.float64)
    if method == "linear":
        return np.quantile(samples, np.asarray(quantiles), axis=0)
    if method == "nearest":
        ordered = np.sort(samples, axis=0)
        idx = [int(np.round((samples.shape[0] - 1) * q)) for q in quantiles]
        return ordered[idx]
    raise ValueError(f"method: expected 'linear' or 'nearest', got {method!r}")


def quantile_loss(target: np.ndarray, q_hat: np.ndarray, q: float, mask: np.ndarray) -> float:
    """2 * sum |(y - q_hat) (1{y <= q_hat} - q)| over the masked points (Koenker's pinball loss, doubled)."""
    err = (target - q_hat) * ((target <= q_hat).astype(np.float64) - q)
    return float(2.0 * np.abs(err)[mask].sum())


def crps(
    samples: np.ndarray,
    target: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    quantiles=QUANTILES,
    method: str = "linear",
) -> float:
    """CSDI's CRPS: mean over quantiles of QL_q / sum |y| (`calc_quantile_CRPS`)."""
    samples, target, mask = _check(samples, target, mask)
    denom = np.abs(target[mask]).sum()
    if denom == 0:
        raise ValueError("target: sum of |target| over the evaluation points is 0; the CRPS is undefined")
    qs = sample_quantiles(samples, quantiles, method)
    return float(np.mean([quantile_loss(target, qs[i], q, mask) / denom for i, q in enumerate(quantiles)]))


def crps_sum(
    samples: np.ndarray,
    target: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    feature_axis: int = -1,
    quantiles=QUANTILES,
    method: str = "linear",
) -> float:
    """CRPS of the sum over features (CSDI `calc_quantile_CRPS_sum`, gluonts `m_sum_mean_wQuantileLoss`).

    samples (S, ..., K, ...), target (..., K, ...); a point is evaluated where any feature is in `mask`.
    """
    samples, target, mask = _check(samples, target, mask)
    axis = feature_axis % target.ndim
    return crps(samples.sum(axis + 1), target.sum(axis), mask.any(axis), quantiles=quantiles, method=method)


def mae(samples: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean absolute error of the sample median over the masked points."""
    samples, target, mask = _check(samples, target, mask)
    return float(np.abs(np.median(samples, axis=0) - target)[mask].mean())


def rmse(samples: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Root mean squared error of the sample median over the masked points."""
    samples, target, mask = _check(samples, target, mask)
    return float(np.sqrt(((np.median(samples, axis=0) - target)[mask] ** 2).mean()))


def coverage(
    samples: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None, low: float = 0.05, high: float = 0.95
) -> float:
    """Share of the masked targets inside the [low, high] sample-quantile interval (0.90 when calibrated)."""
    samples, target, mask = _check(samples, target, mask)
    lo, hi = np.quantile(samples, [low, high], axis=0)
    return float(((target >= lo) & (target <= hi))[mask].mean())


def all_metrics(samples: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> dict[str, float]:
    """CRPS, MAE, RMSE and 90% coverage in one dict."""
    return {
        "crps": crps(samples, target, mask),
        "mae": mae(samples, target, mask),
        "rmse": rmse(samples, target, mask),
        "coverage_90": coverage(samples, target, mask),
    }
