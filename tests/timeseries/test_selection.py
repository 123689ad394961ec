"""Model selection inside `train`, the recalibration around the interpolation, and gluonts serde after a reload."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from omnidiffusion.timeseries import masks, metrics
from omnidiffusion.timeseries.pipeline import Imputer
from omnidiffusion.timeseries.selection import RATES, choose, validation_starts
from omnidiffusion.timeseries.settings import load_timeseries_config
from omnidiffusion.timeseries.task import calibrate
from omnidiffusion.timeseries.training import train, validation_message

TINY = ["train.steps=12", "train.ckpt_every=6", "train.log_every=6", "data.window=8", "data.stride=1"]


def test_calibrate_against_numpy_median():
    rng = np.random.default_rng(0)
    for S in (7, 8):  # odd and even sample counts: numpy's median (mean of the two middle values)
        r = rng.normal(size=(S, 2, 3, 5))
        med = np.median(r, axis=0)
        out = calibrate(torch.from_numpy(r), 0.0, 1.0).numpy()
        np.testing.assert_allclose(np.median(out, axis=0), 0.0, atol=1e-12)  # median on the interpolation
        np.testing.assert_allclose(out, r - med, atol=1e-12)  # the spread is untouched
        out = calibrate(torch.from_numpy(r), 0.5, 2.0).numpy()
        np.testing.assert_allclose(out, 0.5 * med + 2.0 * (r - med), atol=1e-12)
    r = torch.randn(5, 3)
    assert calibrate(r, 1.0, 1.0) is r


def test_validation_windows_stay_inside_the_training_range():
    for end, start, L in ((38, 30, 16), (100, 80, 16), (20, 18, 16), (40, 32, 8)):
        s = validation_starts(end, start, L)
        assert s.size >= 1 and s.min() >= 0 and s.max() + L <= end  # never a test row
        assert (s + L > start).all()  # every window reaches the validation part


def _entry(step, crps, maes, share=1.0, spread=1.0):
    per_rate = {r: {"crps": crps, "mae": m} for r, m in zip(RATES, maes, strict=True)}
    return {
        "step": step,
        "scores": {(share, spread): {"crps": crps, "mae": float(np.mean(maes)), "per_rate": per_rate}},
    }


def test_choose_prefers_lowest_crps_among_medians_not_worse_than_linear():
    linear = {r: {"crps": 0.2, "mae": 0.3} for r in RATES}
    history = [
        _entry(100, 0.10, (0.4, 0.3, 0.3)),  # best CRPS, but its median loses to linear at 10%
        _entry(200, 0.15, (0.3, 0.2, 0.3), share=0.5),
        _entry(300, 0.12, (0.29, 0.29, 0.5), share=0.0, spread=0.5),  # MAE above at 90% too: not allowed
    ]
    best = choose(history, linear)
    assert (best["step"], best["median_share"], best["spread"]) == (200, 0.5, 1.0)


def _lines(T=60, K=3, seed=0):
    """Each feature a straight line: linear interpolation is exact between two known entries."""
    rng = np.random.default_rng(seed)
    t = np.arange(T)[:, None]
    return pd.DataFrame(rng.normal(size=K) + rng.normal(size=K) * t / T * 3, columns=[f"f{k}" for k in range(K)])


@pytest.fixture(scope="module")
def selected(tmp_path_factory):
    out = tmp_path_factory.mktemp("sel")
    config = load_timeseries_config("tiny", [*TINY, "data.val_fraction=0.25", "sampler.samples=8"])
    result = train(config, out, table=_lines())
    return out, result


def test_train_selects_on_validation_and_reports_it(selected):
    out, result = selected
    v = result.validation
    assert v is not None and v["step"] in (6, 12)
    # the validation rows come after every trained window and before the test part
    assert v["rows"] == [round(42 * 0.75), 42]
    history = (out / "validation.json").read_text()
    assert '"step": 6' in history and '"step": 12' in history
    imputer = Imputer.from_pretrained(out)
    assert (imputer.config.sampler.median_share, imputer.config.sampler.spread) == (v["median_share"], v["spread"])
    message = validation_message(v)
    assert ("beats linear interpolation" in message) == v["beats_linear"]
    if not v["beats_linear"]:
        assert "does NOT beat linear interpolation" in message
    assert "no validation part" in validation_message(None)


def test_median_is_exact_where_linear_interpolation_is(selected):
    out, _ = selected
    imputer = Imputer.from_pretrained(out)
    frame = _lines(T=40, seed=1)
    gaps = frame.copy()
    hide = np.random.default_rng(2).random(gaps.shape) < 0.5
    # Interior gaps only: impute cuts the table into windows of 8 rows and holds the value flat beyond the known
    # ends of a window, which is not exact on a line; the first and last row of every window stay known.
    hide[::8], hide[7::8] = False, False
    gaps[hide] = np.nan
    result = imputer.impute(gaps, n_samples=8)
    err = np.abs(result.median.to_numpy() - frame.to_numpy())[hide]
    scale = frame.to_numpy().std(0).mean()
    assert err.mean() / scale < 1e-2


def test_cli_train_prints_the_validation_summary(tmp_path, capsys):
    from omnidiffusion.timeseries.cli import cli

    csv = tmp_path / "lines.csv"
    _lines().to_csv(csv, index=False)
    args = ["train", "--config", "tiny", "--out", str(tmp_path / "run"), "--set", f"data.source={csv}"]
    for s in [*TINY, "data.val_fraction=0.25", "sampler.samples=4"]:
        args += ["--set", s]
    assert cli.main(args) == 0
    text = capsys.readouterr().out
    assert "validation rows 32-41: selected step" in text and "CRPS ours vs linear interpolation" in text


def test_gluonts_serde_round_trip_and_backtest(tmp_path):
    from gluonts.dataset.common import ListDataset
    from gluonts.evaluation import Evaluator, MultivariateEvaluator, backtest_metrics, make_evaluation_predictions
    from gluonts.model.predictor import Predictor

    from omnidiffusion.timeseries.estimator import CSDIEstimator, CSDIPredictor

    rng = np.random.default_rng(0)
    t = np.arange(40)
    uni = ListDataset([{"start": "2020-01-01", "target": np.sin(t / 3) + 0.1 * rng.normal(size=40) + 2.0}], freq="D")
    config = load_timeseries_config("tiny", ["train.steps=4", "sampler.samples=6"])
    predictor = CSDIEstimator(prediction_length=3, context_length=5, config=config).train(uni)
    path = tmp_path / "serde"
    path.mkdir()
    predictor.serialize(path)
    loaded = Predictor.deserialize(path)  # gluonts' entry point: finds the class from gluonts-config.json
    assert isinstance(loaded, CSDIPredictor)
    fa, _ = make_evaluation_predictions(uni, predictor, num_samples=6)
    fb, tss = make_evaluation_predictions(uni, loaded, num_samples=6)
    a, b = next(iter(fa)), next(iter(fb))
    np.testing.assert_array_equal(a.samples, b.samples)
    q19 = metrics.QUANTILES
    agg, _ = backtest_metrics(uni, loaded, evaluator=Evaluator(quantiles=q19, num_workers=None), num_samples=6)
    truth = next(iter(tss)).to_numpy().ravel()[-3:]
    assert agg["mean_wQuantileLoss"] == pytest.approx(metrics.crps(b.samples, truth, method="nearest"), rel=1e-5)

    multi = ListDataset(
        [{"start": "2020-01-01", "target": np.stack([np.sin(t / 3), np.cos(t / 3) + 3.0])}],
        freq="D",
        one_dim_target=False,
    )
    mp = CSDIEstimator(prediction_length=3, context_length=5, config=config).train(multi)
    (tmp_path / "m").mkdir()
    mp.serialize(tmp_path / "m")
    reloaded = Predictor.deserialize(tmp_path / "m", device="cpu")
    forecasts, series = make_evaluation_predictions(multi, reloaded, num_samples=6)
    forecasts, series = list(forecasts), list(series)
    assert forecasts[0].samples.shape == (6, 3, 2)
    agg, _ = MultivariateEvaluator(quantiles=q19, num_workers=None)(series, forecasts, num_series=1)
    assert agg["mean_wQuantileLoss"] == pytest.approx(
        metrics.crps(forecasts[0].samples, series[0].to_numpy()[-3:], method="nearest"), rel=1e-5
    )


def test_prediction_parameterisations_train_and_impute():
    from omnidiffusion.timeseries.models import CSDINet
    from omnidiffusion.timeseries.task import CSDITask

    values = torch.randn(2, 3, 8)
    observed = torch.ones_like(values, dtype=torch.bool)
    cond = masks.fixed_rate_mask(observed, 0.5, torch.Generator().manual_seed(0))
    for prediction in ("eps", "x0", "v"):
        torch.manual_seed(0)
        net = CSDINet(3, channels=8, layers=1, heads=2, ffn=8, time_dim=8, feature_dim=4, step_dim=8)
        task = CSDITask(prediction=prediction)
        assert torch.isfinite(task.loss(net, {"values": values, "observed": observed}))
        out = task.impute(net.eval(), values, cond, n_samples=3, method="dpm++2m", steps=4)
        assert torch.equal(out[:, cond], values[cond].expand(3, -1))
        if prediction == "x0":  # zero-initialised head: x0_hat = 0, the samples are the interpolation itself
            from omnidiffusion.timeseries.task import linear_interpolation

            lin = linear_interpolation(torch.where(cond, values, 0.0), cond)
            torch.testing.assert_close(out, lin.expand_as(out), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="task.prediction"):
        CSDITask(prediction="score")


def test_interp_input_observed_hides_the_interpolation_at_hidden_entries():
    from omnidiffusion.timeseries.task import CSDITask

    seen = []

    class Spy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))

        def forward(self, x_t, t, *, cond_mask, interp, timepoints=None):
            seen.append((cond_mask.clone(), interp.clone()))
            return x_t * self.w

    values = torch.randn(2, 3, 8)
    cond = masks.fixed_rate_mask(torch.ones_like(values, dtype=torch.bool), 0.5, torch.Generator().manual_seed(0))
    for mode in ("interpolation", "observed"):
        seen.clear()
        CSDITask(interp_input=mode).impute(Spy(), values, cond, n_samples=1, method="ddim", steps=2)
        c, interp = seen[0]
        hidden = ~c.bool()
        assert (interp[hidden] == 0).all() == (mode == "observed")
        assert (interp[~hidden] != 0).any()  # the known entries are always seen
    with pytest.raises(ValueError, match="task.interp_input"):
        CSDITask(interp_input="both")


def test_train_is_reproducible_from_its_seed(tmp_path):
    """train.seed fixes the initial weights too: two runs of one config give the same model."""
    from omnidiffusion.timeseries.settings import load_timeseries_config
    from omnidiffusion.timeseries.training import train

    runs = []
    for name in ("a", "b"):
        config = load_timeseries_config("tiny", [*TINY, "data.val_fraction=0.25", "sampler.samples=4"])
        runs.append(train(config, tmp_path / name, table=_lines(), resume=False))
    a, b = (r.final_model.state_dict() for r in runs)
    assert runs[0].loss == runs[1].loss and all(torch.equal(a[k], b[k]) for k in a)
