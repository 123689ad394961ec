"""CSDI's CRPS against gluonts' Evaluator, and hand-worked cases for every metric."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from gluonts.evaluation import Evaluator, MultivariateEvaluator
from gluonts.model.forecast import SampleForecast

from omnidiffusion.timeseries import metrics

Q19 = [round(0.05 * i, 2) for i in range(1, 20)]


def _gluonts_crps(samples: np.ndarray, target: np.ndarray) -> float:
    """mean_wQuantileLoss of gluonts' Evaluator over several univariate series (samples (S, N, H))."""
    start = pd.Period("2020-01-01", freq="D")
    forecasts, tss = [], []
    for i in range(target.shape[0]):
        forecasts.append(SampleForecast(samples=samples[:, i], start_date=start + 10))
        index = pd.period_range(start, periods=10 + target.shape[1], freq="D")
        tss.append(pd.DataFrame(np.concatenate([np.zeros(10), target[i]]), index=index))
    agg, _ = Evaluator(quantiles=Q19, num_workers=None)(tss, forecasts, num_series=len(forecasts))
    return float(agg["mean_wQuantileLoss"])


@pytest.mark.parametrize("n_samples", [7, 50, 100])
def test_crps_equals_gluonts_mean_wquantileloss(n_samples):
    rng = np.random.default_rng(n_samples)
    target = rng.normal(2.0, 1.0, (5, 6))
    samples = target[None] + rng.normal(0.3, 0.8, (n_samples, 5, 6))
    ours = metrics.crps(samples, target, method="nearest")
    assert ours == pytest.approx(_gluonts_crps(samples, target), rel=1e-6)


def test_linear_quantiles_agree_with_gluonts_at_101_samples():
    # (n - 1) q is an integer for every q in 0.05 .. 0.95: CSDI's interpolated quantiles are order statistics.
    rng = np.random.default_rng(1)
    target = rng.normal(0.0, 2.0, (4, 5))
    samples = rng.normal(0.0, 2.0, (101, 4, 5))
    assert metrics.crps(samples, target, method="linear") == pytest.approx(_gluonts_crps(samples, target), rel=1e-6)


def test_crps_sum_equals_gluonts_multivariate():
    rng = np.random.default_rng(2)
    S, H, K = 40, 4, 3
    start = pd.Period("2021-01", freq="M")
    forecasts, tss, all_s, all_y = [], [], [], []
    for _ in range(3):
        y = rng.normal(1.0, 1.0, (H, K))
        s = y[None] + rng.normal(0, 0.5, (S, H, K))
        forecasts.append(SampleForecast(samples=s, start_date=start + 6))
        index = pd.period_range(start, periods=6 + H, freq="M")
        tss.append(pd.DataFrame(np.concatenate([np.zeros((6, K)), y]), index=index))
        all_s.append(s)
        all_y.append(y)
    evaluator = MultivariateEvaluator(quantiles=Q19, target_agg_funcs={"sum": np.sum}, num_workers=None)
    agg, _ = evaluator(tss, forecasts, num_series=3)
    samples = np.concatenate(all_s, axis=1)  # (S, 3H, K)
    target = np.concatenate(all_y, axis=0)  # (3H, K)
    ours = metrics.crps_sum(samples, target, method="nearest")
    assert ours == pytest.approx(agg["m_sum_mean_wQuantileLoss"], rel=1e-6)


def test_point_forecast_crps_is_normalised_absolute_error():
    # Every quantile of a point forecast is the point: mean_q 2|e|(q or 1-q) = |e| (the q's are symmetric).
    target = np.array([[1.0, -2.0, 4.0]])
    point = np.array([[1.5, -2.0, 3.0]])
    expected = (0.5 + 0.0 + 1.0) / (1.0 + 2.0 + 4.0)
    assert metrics.crps(point[None], target) == pytest.approx(expected)


def test_quantile_loss_hand_case():
    # y = 1, q_hat = 3, q = 0.1: 2 * |(1 - 3) * (1 - 0.1)| = 3.6
    assert metrics.quantile_loss(np.array([1.0]), np.array([3.0]), 0.1, np.array([True])) == pytest.approx(3.6)


def test_mae_rmse_coverage_and_mask():
    target = np.array([0.0, 1.0, 2.0, 10.0])
    samples = np.stack([target + d for d in (-1.0, 0.0, 1.0)])  # median = target
    mask = np.array([True, True, False, True])
    assert metrics.mae(samples + 1.0, target, mask) == pytest.approx(1.0)
    assert metrics.rmse(samples + 2.0, target, mask) == pytest.approx(2.0)
    assert metrics.coverage(samples, target, mask) == 1.0
    assert metrics.coverage(samples + 5.0, target, mask) == 0.0
    with pytest.raises(ValueError, match="mask"):
        metrics.crps(samples, target, np.zeros(4, bool))
    with pytest.raises(ValueError, match="samples"):
        metrics.crps(samples[:, :3], target)
