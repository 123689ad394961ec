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

from omnidiffusion.core.checks import non_negative_int, positive_int, real_number

from . import baselines, metrics
from .data import Scaler, as_array, make_windows, validate_frame
from .datasets import (
    PM25_TRAIN_MONTHS,
    physionet_protocol,
    physionet_windows,
    pm25_protocol,
    pm25_windows,
    read_physionet,
    read_pm25,
)
from .estimator import CSDIPredictor
from .forecasting import SeasonalNaive, gluonts_scores, rolling_dataset, start_and_freq
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
    rate = real_number(rate, "missing_rate", low=0.0, high=1.0, low_open=True, high_open=True)
    seed = non_negative_int(seed, "seed")
    cond = fixed_rate_mask(windows["observed"], rate, torch.Generator().manual_seed(seed))
    return score_masks(imputer, windows, cond, seed, samplers=samplers, n_samples=n_samples)


def score_masks(
    imputer: Imputer,
    windows: dict[str, torch.Tensor],
    cond: torch.Tensor,
    seed: int,
    *,
    samplers: tuple[tuple[str, int], ...] | None = None,
    n_samples: int | None = None,
    scored: torch.Tensor | None = None,
    scaler: Scaler | None = None,
) -> dict[str, dict[str, float]]:
    """Metrics of the model and the baselines on windows whose entries observed and not in `cond` are hidden
    (a given protocol's targets; score_imputation draws them at a rate). `scored` (bool, like the windows)
    limits the scored entries (CSDI's cut_length); with `scaler` the metrics are in the data's own units."""
    s = imputer.config.sampler
    n_samples = s.samples if n_samples is None else positive_int(n_samples, "n_samples")
    samplers = samplers or ((s.method, s.steps),)
    target = windows["observed"] & ~cond
    target = (target if scored is None else target & scored).numpy()
    if not target.any():
        raise ValueError("cond: no observed entry is hidden; there is nothing to score")
    y = windows["values"].numpy().astype(np.float64)

    def units(a: np.ndarray) -> np.ndarray:  # z-units -> the data's units, per feature (axis -2)
        return a if scaler is None else a * scaler.std[:, None] + scaler.mean[:, None]

    out: dict[str, dict[str, float]] = {}
    for method, steps in samplers:
        z = imputer.sample_windows(
            windows["values"], cond, n_samples=n_samples, method=method, steps=steps, seed=seed + 1
        ).numpy()
        out[f"csdi {method} {steps}"] = metrics.all_metrics(units(z), units(y), target)
    c = cond.numpy()
    out["linear interpolation"] = metrics.all_metrics(units(baselines.linear_imputation(y, c)), units(y), target)
    out["mean imputation"] = metrics.all_metrics(units(baselines.mean_imputation(y, c)), units(y), target)
    return out


def evaluate_physionet(imputer: Imputer, root: str | None = None) -> dict:
    """CSDI's PhysioNet test: the checkpoint's fold of the stays at `root` (default data.root), the protocol's
    targets hidden (data.missing_ratio, data.split_seed), scores in z-units as CSDI reports them."""
    d = imputer.config.data
    root = d.root if root is None else root
    if root is None:
        raise ValueError("data.root: expected the PhysioNet 2012 set-a folder the model was trained on")
    stays = read_physionet(root)
    p = physionet_protocol(stays.values, d.missing_ratio, seed=d.split_seed, fold=d.fold)
    windows = physionet_windows(p, p["test"])
    cond = torch.as_tensor(p["cond"][p["test"]].transpose(0, 2, 1))
    scores = score_masks(imputer, windows, cond, imputer.config.sampler.seed)
    protocol = {
        "data": f"PhysioNet 2012 at {root}: {len(stays.ids)} stays, fold {d.fold} of 5 ({len(p['test'])} stays)",
        "missing_ratio": d.missing_ratio,
        "split_seed": d.split_seed,
        "targets": int(p["target"][p["test"]].sum()),
        "units": "z-scores with the statistics of every stay's observed values (CSDI's; scaler 1)",
    }
    return _report(imputer, scores, protocol)


def evaluate_imputation(
    imputer: Imputer, frame: pd.DataFrame, *, missing_rate: float, seed: int = 0, stride: int | None = None
) -> dict:
    """The `evaluate` report for imputation: {"model": ..., "baselines": ..., "protocol": ...}.

    missing_rate in (0, 1): the share of each window's observed entries hidden and scored; stride: between
    windows (None = the window length, no overlap).
    """
    if not isinstance(imputer, Imputer):
        raise ValueError(
            f"imputer: expected an Imputer (an imputer checkpoint), got {type(imputer).__name__}; "
            "a forecaster is scored by evaluate_forecast"
        )
    missing_rate = real_number(missing_rate, "missing_rate", low=0.0, high=1.0, low_open=True, high_open=True)
    seed = non_negative_int(seed, "seed")
    L = imputer.window
    stride = L if stride is None else positive_int(stride, "stride")
    values, observed = as_array(frame, "frame")
    if values.shape[1] != imputer.scaler.mean.size:
        raise ValueError(f"frame: the model was trained on {imputer.scaler.mean.size} columns, got {values.shape[1]}")
    if values.shape[0] < L:
        raise ValueError(f"frame: expected at least the model's window of {L} rows, got {values.shape[0]}")
    windows = make_windows(imputer.scaler.transform(values, observed), observed, L, stride)
    scores = score_imputation(imputer, windows, missing_rate, seed)
    s = imputer.config.sampler
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
            "stride": stride,
            "missing_rate": missing_rate,
            "seed": seed,
            "units": "z-scores with the checkpoint's training statistics",
            "sampler": s.method,
            "steps": s.steps,
            "samples": s.samples,
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
    """The `evaluate` report for forecasting over `windows` rolling origins at the end of the table.

    horizon: None or the checkpoint's prediction length (a check); season_length: of the seasonal-naive
    baseline (None = from the index frequency).
    """
    if not isinstance(predictor, CSDIPredictor):
        raise ValueError(
            f"predictor: expected a CSDIPredictor (a forecaster checkpoint), got {type(predictor).__name__}; "
            "an imputer is scored by evaluate_imputation"
        )
    H = predictor.prediction_length
    if horizon is not None and positive_int(horizon, "horizon") != H:
        raise ValueError(f"horizon: expected the checkpoint's prediction length {H}, got {horizon}")
    windows = positive_int(windows, "windows")
    if season_length is not None:
        season_length = positive_int(season_length, "season_length")
    seed = non_negative_int(seed, "seed")
    frame = validate_frame(frame, "frame")
    K = predictor.scaler.mean.size
    if frame.shape[1] != K:
        raise ValueError(f"frame: the model was trained on {K} columns, got {frame.shape[1]}")
    T = frame.shape[0]
    ends = [T - i * H for i in range(windows)][::-1]
    if ends[0] <= H:  # every origin needs at least one step of history before its H held-out steps
        raise ValueError(
            f"windows: {windows} origins of {H} steps need more than {windows * H} rows, the table has {T}"
        )
    predictor.config.sampler.seed = seed
    dataset = rolling_dataset(frame, ends)
    multivariate = frame.shape[1] > 1
    forecasts, tss = make_evaluation_predictions(dataset, predictor, num_samples=predictor.config.sampler.samples)
    model = gluonts_scores(list(forecasts), list(tss), multivariate)
    _, freq = start_and_freq(frame)
    season = default_season(freq) if season_length is None else season_length
    naive_fc, naive_ts = make_evaluation_predictions(dataset, SeasonalNaive(H, season), num_samples=1)
    naive = gluonts_scores(list(naive_fc), list(naive_ts), multivariate)
    s = predictor.config.sampler
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
            "samples": s.samples,
            "units": "the table's own",
            "metrics": "gluonts (Multivariate)Evaluator, quantiles 0.05..0.95: crps = mean_wQuantileLoss, "
            "crps_sum = m_sum_mean_wQuantileLoss",
        },
    }


def evaluate_pm25(imputer: Imputer, root: str | None = None) -> dict:
    """CSDI's PM2.5 test: months 3, 6, 9, 12 of the tables at `root` (default data.root) in windows of the model's
    length (the last window of a month ends at the month's end; the steps it shares with the one before are not
    scored twice), the entries the missing file hides as targets, metrics in the data's units (ug/m3)."""
    d = imputer.config.data
    root = d.root if root is None else root
    if root is None:
        raise ValueError("data.root: expected the STMVL SampleData folder the model was trained on")
    ground, missing = read_pm25(root)
    p = pm25_protocol(ground, missing, valid_index=PM25_TRAIN_MONTHS.index(d.valid_month))
    windows = pm25_windows(p, p["test_months"], imputer.window, test=True)
    cond = windows["observed"] & ~windows["target"]
    scaler = Scaler(mean=p["mean"], std=p["std"])
    scores = score_masks(imputer, windows, cond, imputer.config.sampler.seed, scored=windows["scored"], scaler=scaler)
    protocol = {
        "data": f"Beijing PM2.5 (STMVL) at {root}: {ground.shape[1]} stations",
        "test_months": list(p["test_months"]),
        "windows": int(windows["values"].shape[0]),
        "targets": int((windows["target"] & windows["scored"]).sum()),
        "units": "the data's own (ug/m3), de-normalised with the non-test months' mean and std (CSDI's)",
    }
    return _report(imputer, scores, protocol)


def _report(imputer: Imputer, scores: dict, protocol: dict) -> dict:
    """`evaluate`'s JSON for a protocol-defined imputation test: the model's row, the baselines, the protocol."""
    s = imputer.config.sampler
    return {
        "model": scores.pop(f"csdi {s.method} {s.steps}"),
        "baselines": scores,
        "protocol": {
            "task": "imputation",
            **protocol,
            "sampler": s.method,
            "steps": s.steps,
            "samples": s.samples,
            "metrics": "CRPS over 19 quantiles / sum|y| (CSDI), MAE and RMSE of the median, 5-95% coverage",
        },
    }
