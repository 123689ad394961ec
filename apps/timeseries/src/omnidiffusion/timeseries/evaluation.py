"""Model against baselines on a user's table: the `evaluate` command and the benchmark share these.

Imputation protocol: the table is z-scored with the checkpoint's (training) statistics and cut into windows of
the model's length; in each window round(rate * #observed) observed entries are hidden at random (seeded);
the model draws n samples per window; CRPS (19 quantiles, normalised by sum |y|), MAE and RMSE of the median
and 90% coverage are computed in z-units over the hidden entries, beside mean imputation and linear
interpolation on the same masks.

Forecast protocol: rolling origins at the end of the table, `prediction_length` steps each; scores from
gluonts' (Multivariate)Evaluator with CSDI's 19 quantiles, beside gluonts' seasonal naive.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from gluonts.evaluation import make_evaluation_predictions

from . import baselines, metrics
from .data import as_array, make_windows
from .estimator import CSDIPredictor
from .forecasting import gluonts_scores, rolling_dataset, seasonal_naive, start_and_freq
from .forecasting import season_length as default_season
from .masks import fixed_rate_mask
from .pipeline import Imputer


def score_imputation(
    imputer: Imputer,
    windows: dict[str, torch.Tensor],
    rate: float,
    seed: int,
    *,
    samplers: tuple[tuple[str, int], ...] | None = None,
    n_samples: int | None = None,
) -> dict[str, dict[str, float]]:
    """Metrics of the model (one entry per (method, steps)) and of the baselines on z-scored windows."""
    s = imputer.settings.sampler
    samplers = samplers or ((s.method, s.steps),)
    cond = fixed_rate_mask(windows["observed"], rate, torch.Generator().manual_seed(seed))
    target = (windows["observed"] & ~cond).numpy()
    y = windows["values"].numpy().astype(np.float64)
    out: dict[str, dict[str, float]] = {}
    for method, steps in samplers:
        z = imputer.sample_windows(
            windows["values"], cond, n_samples=n_samples or s.n_samples, method=method, steps=steps, seed=seed + 1
        ).numpy()
        out[f"csdi {method} {steps}"] = metrics.all_metrics(z, y, target)
    c = cond.numpy()
    out["linear interpolation"] = metrics.all_metrics(baselines.linear_imputation(y, c), y, target)
    out["mean imputation"] = metrics.all_metrics(baselines.mean_imputation(y, c), y, target)
    return out


def evaluate_imputation(
    imputer: Imputer, frame: pd.DataFrame, *, missing_rate: float, seed: int = 0, stride: int | None = None
) -> dict:
    """The `evaluate` report for imputation: {"model": ..., "baselines": ..., "protocol": ...}."""
    if not isinstance(imputer, Imputer):
        raise ValueError("--checkpoint: a forecaster; imputation needs an imputer checkpoint (or --task forecast)")
    values, observed = as_array(frame)
    if values.shape[1] != imputer.scaler.mean.size:
        raise ValueError(f"--csv: the model was trained on {imputer.scaler.mean.size} columns, got {values.shape[1]}")
    L = imputer.window
    windows = make_windows(imputer.scaler.transform(values, observed), observed, L, stride or L)
    scores = score_imputation(imputer, windows, missing_rate, seed)
    s = imputer.settings.sampler
    model = scores.pop(f"csdi {s.method} {s.steps}")
    return {
        "model": model,
        "baselines": scores,
        "protocol": {
            "task": "imputation",
            "rows": int(values.shape[0]),
            "features": int(values.shape[1]),
            "windows": int(windows["values"].shape[0]),
            "window": L,
            "stride": stride or L,
            "missing_rate": missing_rate,
            "seed": seed,
            "units": "z-scores with the checkpoint's training statistics",
            "sampler": s.method,
            "steps": s.steps,
            "n_samples": s.n_samples,
            "metrics": "CRPS over 19 quantiles / sum|y| (CSDI), MAE and RMSE of the median, 5-95% coverage",
        },
    }


def evaluate_forecast(
    predictor: CSDIPredictor,
    frame: pd.DataFrame,
    *,
    horizon: int | None = None,
    season_length: int | None = None,
    windows: int = 8,
    seed: int = 0,
) -> dict:
    """The `evaluate` report for forecasting over `windows` rolling origins at the end of the table."""
    if not isinstance(predictor, CSDIPredictor):
        raise ValueError("--checkpoint: an imputer; --task forecast needs a forecaster checkpoint")
    H = predictor.prediction_length
    if horizon is not None and horizon != H:
        raise ValueError(f"--horizon: the checkpoint forecasts {H} steps, got --horizon {horizon}")
    T = frame.shape[0]
    ends = [T - i * H for i in range(windows)][::-1]
    if ends[0] <= H:
        raise ValueError(
            f"--windows: {windows} origins of {H} steps need more than {windows * H + H} rows, the table has {T}"
        )
    predictor.settings.sampler.seed = seed
    dataset = rolling_dataset(frame, ends)
    multivariate = frame.shape[1] > 1
    forecasts, tss = make_evaluation_predictions(dataset, predictor, num_samples=predictor.settings.sampler.n_samples)
    model = gluonts_scores(list(forecasts), list(tss), multivariate)
    _, freq = start_and_freq(frame)
    season = season_length or default_season(freq)
    naive_fc, naive_ts = make_evaluation_predictions(dataset, _Naive(H, season), num_samples=1)
    naive = gluonts_scores(list(naive_fc), list(naive_ts), multivariate)
    s = predictor.settings.sampler
    return {
        "model": model,
        "baselines": {f"seasonal naive ({season})": naive},
        "protocol": {
            "task": "forecast",
            "horizon": H,
            "context": predictor.context_length,
            "origins": ends,
            "seed": seed,
            "sampler": s.method,
            "steps": s.steps,
            "n_samples": s.n_samples,
            "units": "the table's own",
            "metrics": "gluonts (Multivariate)Evaluator, quantiles 0.05..0.95: crps = mean_wQuantileLoss, "
            "crps_sum = m_sum_mean_wQuantileLoss",
        },
    }


class _Naive:
    """Seasonal naive with the Predictor interface make_evaluation_predictions uses (multivariate stacked)."""

    def __init__(self, prediction_length: int, season: int) -> None:
        self.prediction_length, self.lead_time, self.season = prediction_length, 0, season

    def predict(self, dataset, **kwargs):
        return iter(seasonal_naive(dataset, self.prediction_length, self.season))
