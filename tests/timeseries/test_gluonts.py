"""CSDIEstimator / CSDIPredictor inside gluonts: make_evaluation_predictions, Evaluator, save/load round trip."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from gluonts.dataset.common import ListDataset
from gluonts.evaluation import Evaluator, MultivariateEvaluator, make_evaluation_predictions
from gluonts.model.forecast import SampleForecast

from omnidiffusion.timeseries import metrics
from omnidiffusion.timeseries.estimator import CSDIEstimator, CSDIPredictor
from omnidiffusion.timeseries.settings import load_timeseries_config

Q19 = metrics.QUANTILES


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    rng = np.random.default_rng(0)
    t = np.arange(60)
    target = np.stack([np.sin(t / 3) + 0.1 * rng.normal(size=60), np.cos(t / 3) + 5.0])  # (K=2, T)
    ds = ListDataset([{"start": "2020-01-01", "target": target}], freq="D", one_dim_target=False)
    config = load_timeseries_config("tiny", ["train.steps=6", "sampler.samples=8"])
    out = tmp_path_factory.mktemp("csdi")
    predictor = CSDIEstimator(prediction_length=3, context_length=6, config=config, out_dir=out).train(ds)
    return predictor, ds, out


def test_predictor_through_make_evaluation_predictions_and_evaluators(trained):
    predictor, ds, _ = trained
    forecasts, tss = make_evaluation_predictions(ds, predictor, num_samples=8)
    forecasts, tss = list(forecasts), list(tss)
    assert len(forecasts) == 1 and isinstance(forecasts[0], SampleForecast)
    fc = forecasts[0]
    assert fc.samples.shape == (8, 3, 2)
    assert fc.start_date == tss[0].index[-3]  # the forecast covers the held-out last 3 steps
    agg, _ = MultivariateEvaluator(quantiles=Q19, target_agg_funcs={"sum": np.sum}, num_workers=None)(
        tss, forecasts, num_series=1
    )
    truth = tss[0].to_numpy()[-3:]  # (H, K)
    ours = metrics.crps(fc.samples, truth, method="nearest")
    assert agg["mean_wQuantileLoss"] == pytest.approx(ours, rel=1e-5)
    ours_sum = metrics.crps_sum(fc.samples, truth, method="nearest")
    assert agg["m_sum_mean_wQuantileLoss"] == pytest.approx(ours_sum, rel=1e-5)


def test_univariate_gluonts_artificial_dataset_and_evaluator():
    from omnidiffusion.timeseries.forecasting import artificial

    train, ds = artificial(num_series=3, prediction_length=2, length=(30, 40))
    config = load_timeseries_config("tiny", ["train.steps=3", "sampler.samples=5"])
    predictor = CSDIEstimator(prediction_length=2, context_length=4, config=config).train(train)
    forecasts, tss = make_evaluation_predictions(ds, predictor, num_samples=5)
    forecasts = list(forecasts)
    assert [f.samples.shape for f in forecasts] == [(5, 2)] * 3
    agg, _ = Evaluator(quantiles=Q19, num_workers=None)(list(tss), forecasts, num_series=3)
    assert np.isfinite(agg["mean_wQuantileLoss"])


def test_pandas_dataset_input(trained):
    from gluonts.dataset.pandas import PandasDataset

    predictor, ds, _ = trained
    entry = next(iter(ds))
    index = pd.period_range(entry["start"], periods=entry["target"].shape[1], freq="D")
    frame = pd.DataFrame(entry["target"].T, index=index, columns=["a", "b"])
    fc = next(iter(predictor.predict(PandasDataset(frame, target=["a", "b"]), num_samples=4)))
    assert fc.samples.shape == (4, 3, 2) and fc.start_date == index[-1] + 1


def test_save_load_round_trip_gives_identical_forecasts(trained, tmp_path):
    predictor, ds, out = trained
    predictor.save_pretrained(tmp_path / "saved")
    assert (tmp_path / "saved" / "model.safetensors").is_file()
    for loaded in (CSDIPredictor.from_pretrained(tmp_path / "saved"), CSDIPredictor.deserialize(out)):
        a = next(iter(predictor.predict(ds, num_samples=4))).samples
        b = next(iter(loaded.predict(ds, num_samples=4))).samples
        np.testing.assert_array_equal(a, b)


def test_estimator_rejects_bad_input():
    with pytest.raises(ValueError, match="prediction_length"):
        CSDIEstimator(prediction_length=0)
    est = CSDIEstimator(prediction_length=2, config=load_timeseries_config("tiny"))
    with pytest.raises(ValueError, match="same number of features"):
        est.train([{"start": "2020", "target": np.zeros((2, 30))}, {"start": "2020", "target": np.zeros((3, 30))}])
