"""Wide tables as gluonts datasets, rolling forecast origins, the seasonal-naive baseline and gluonts scoring.

A table with K > 1 columns becomes one multivariate entry (target (K, T), `one_dim_target=False`); K = 1 a
univariate one. The time index gives `start` and `freq` (a PeriodIndex or a regular DatetimeIndex); otherwise
steps are numbered as days from 2000-01-01.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from gluonts.dataset.common import ListDataset
from gluonts.evaluation import Evaluator, MultivariateEvaluator
from gluonts.model.forecast import SampleForecast
from gluonts.model.seasonal_naive import SeasonalNaivePredictor

from .data import time_split, validate_frame
from .metrics import QUANTILES

SEASONS = {"Q": 4, "M": 12, "W": 52, "D": 7, "H": 24, "h": 24}


def start_and_freq(frame: pd.DataFrame) -> tuple[pd.Period, str]:
    """The first period and the frequency string of a table's index (days from 2000-01-01 when it has none)."""
    index = frame.index
    if isinstance(index, pd.PeriodIndex):
        return index[0], index.freqstr
    if isinstance(index, pd.DatetimeIndex) and len(index) > 2:
        freq = pd.infer_freq(index)
        if freq is not None:
            return pd.Period(index[0], freq=freq), freq
    return pd.Period("2000-01-01", freq="D"), "D"


def season_length(freq: str) -> int:
    """A default season for seasonal naive: 4 quarterly, 12 monthly, 52 weekly, 7 daily, 24 hourly, else 1."""
    base = "".join(c for c in freq if c.isalpha())[:1]
    return SEASONS.get(base, 1)


def table_entry(values: np.ndarray, start: pd.Period) -> dict:
    target = values.T if values.shape[1] > 1 else values[:, 0]  # (K, T) or (T,)
    return {"start": start, "target": target}


def table_to_dataset(frame: pd.DataFrame, train_fraction: float = 1.0) -> tuple[ListDataset, str]:
    """The first `train_fraction` of the table as a one-entry gluonts ListDataset; returns (dataset, freq)."""
    frame = validate_frame(frame)
    values = frame.to_numpy(dtype=np.float64)
    end = values.shape[0] if train_fraction >= 1.0 else time_split(values.shape[0], train_fraction)
    start, freq = start_and_freq(frame)
    dataset = ListDataset([table_entry(values[:end], start)], freq=freq, one_dim_target=values.shape[1] == 1)
    return dataset, freq


def rolling_dataset(frame: pd.DataFrame, ends: Sequence[int]) -> ListDataset:
    """One entry per end index e (exclusive): the table's first e rows (make_evaluation_predictions then holds
    out the last prediction_length of each as the forecast target)."""
    frame = validate_frame(frame)
    values = frame.to_numpy(dtype=np.float64)
    start, freq = start_and_freq(frame)
    return ListDataset([table_entry(values[:e], start) for e in ends], freq=freq, one_dim_target=values.shape[1] == 1)


def seasonal_naive(dataset, prediction_length: int, season: int) -> list[SampleForecast]:
    """gluonts' SeasonalNaivePredictor applied per feature; multivariate forecasts are stacked to (1, H, K)."""
    naive = SeasonalNaivePredictor(prediction_length=prediction_length, season_length=season)
    out = []
    for entry in dataset:
        target = np.asarray(entry["target"])
        if target.ndim == 1:
            out.append(naive.predict_item(entry))
            continue
        parts = [naive.predict_item({"start": entry["start"], "target": row}).samples for row in target]
        start = entry["start"] + target.shape[1]
        out.append(SampleForecast(samples=np.stack(parts, axis=-1), start_date=start, item_id=entry.get("item_id")))
    return out


class SeasonalNaive:
    """`seasonal_naive` with the Predictor interface make_evaluation_predictions uses (multivariate stacked)."""

    def __init__(self, prediction_length: int, season: int) -> None:
        self.prediction_length, self.lead_time, self.season = prediction_length, 0, season

    def predict(self, dataset, **kwargs):
        return iter(seasonal_naive(dataset, self.prediction_length, self.season))


def gluonts_scores(
    forecasts: Sequence[SampleForecast], tss: Sequence[pd.DataFrame], multivariate: bool
) -> dict[str, float]:
    """gluonts' own scores with CSDI's 19 quantiles: CRPS (mean_wQuantileLoss), and for multivariate data
    CRPS-sum (m_sum_mean_wQuantileLoss), plus MASE-free basics (ND, NRMSE, 90% coverage error)."""
    if multivariate:
        evaluator = MultivariateEvaluator(quantiles=QUANTILES, target_agg_funcs={"sum": np.sum}, num_workers=None)
        agg, _ = evaluator(tss, forecasts, num_series=len(forecasts))
        return {
            "crps": float(agg["mean_wQuantileLoss"]),
            "crps_sum": float(agg["m_sum_mean_wQuantileLoss"]),
            "nd": float(agg["ND"]),
            "nrmse": float(agg["NRMSE"]),
        }
    evaluator = Evaluator(quantiles=QUANTILES, num_workers=None)
    agg, _ = evaluator(tss, forecasts, num_series=len(forecasts))
    return {"crps": float(agg["mean_wQuantileLoss"]), "nd": float(agg["ND"]), "nrmse": float(agg["NRMSE"])}


def artificial(
    num_series: int = 10, prediction_length: int = 4, length: tuple[int, int] = (60, 120), freq: str = "D"
) -> tuple[ListDataset, ListDataset]:
    """gluonts' ComplexSeasonalTimeSeries (ramping sinusoids with weekly spikes), generated offline:
    (train, test) ListDatasets; test series extend the train ones by `prediction_length`."""
    from gluonts.dataset.artificial import ComplexSeasonalTimeSeries

    data = ComplexSeasonalTimeSeries(
        num_series=num_series,
        prediction_length=prediction_length,
        freq_str=freq,
        length_low=length[0],
        length_high=length[1],
        is_noise=True,
    ).generate()
    strip = lambda entries: [{"start": e["start"], "target": e["target"]} for e in entries]  # noqa: E731
    return ListDataset(strip(data.train), freq=freq), ListDataset(strip(data.test), freq=freq)
