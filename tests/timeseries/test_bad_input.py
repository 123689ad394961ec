"""Bad input to the timeseries CLI and Python API: one clear error naming the argument and what was expected.

The models are tiny untrained CSDINets saved once per module (no training): every case here is refused before
or instead of sampling, except the controls, which check that the valid neighbours of the refused values still
run (None still means the checkpoint's setting, 1 is still a valid count). Sampler values are `--set sampler.*`
on the command line (the stored run config + --set), never flags of their own.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from omnidiffusion.core.io import save_pretrained, save_run_config
from omnidiffusion.timeseries.cli import cli as timeseries_cli
from omnidiffusion.timeseries.data import Scaler
from omnidiffusion.timeseries.estimator import CSDIEstimator, CSDIPredictor
from omnidiffusion.timeseries.evaluation import evaluate_forecast, evaluate_imputation
from omnidiffusion.timeseries.pipeline import Imputer
from omnidiffusion.timeseries.settings import load_timeseries_config

K, T, H = 3, 24, 2  # features, rows of the test table, forecast horizon (tiny config: window 8)


def _table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    index = pd.period_range("2000-01", periods=T, freq="M")
    values = np.cumsum(rng.normal(size=(T, K)), axis=0) + np.arange(K) * 10.0
    return pd.DataFrame(values, index=index, columns=["a", "b", "c"])


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Saved tiny imputer and forecaster checkpoints plus CSV files, good and bad."""
    root = tmp_path_factory.mktemp("bad_input")
    frame = _table()
    values = frame.to_numpy()
    scaler = Scaler.fit(values, np.ones_like(values, dtype=bool))
    torch.manual_seed(0)
    imp_config = load_timeseries_config("tiny")
    meta = {"kind": "csdi-imputer", "scaler": scaler.to_dict()}
    save_pretrained(imp_config.build_net(K), root / "imp", metadata=meta)
    save_run_config(root / "imp", imp_config)
    fc_config = load_timeseries_config("tiny", ["task.task=forecast", f"task.horizon={H}"])
    CSDIPredictor(fc_config.build_net(K), scaler, H, 8 - H, fc_config).save_pretrained(root / "fc")
    csv = {"good": frame}
    csv["allnan"] = frame.assign(b=np.nan)
    csv["inf"] = frame.assign(a=frame["a"].where(frame.index != frame.index[3], np.inf))
    csv["twocols"] = frame[["a", "b"]]
    csv["short"] = frame.iloc[:5]
    for name, table in csv.items():
        table.to_csv(root / f"{name}.csv")
    (root / "empty.csv").write_text("")
    (root / "text.csv").write_text("t,a,b,c\n2000-01,1,x,3\n2000-02,2,y,4\n")
    (root / "noweights").mkdir()
    (root / "noweights" / "config.json").write_bytes((root / "imp" / "config.json").read_bytes())
    return root


@pytest.fixture(scope="module")
def cli():
    return timeseries_cli


def _evaluate(env, *extra):
    return ["evaluate", "--checkpoint", env / "imp", "--csv", env / "good.csv", *extra]


def _evaluate_forecast(env, *extra):
    return ["evaluate", "--checkpoint", env / "fc", "--csv", env / "good.csv", *extra]


CLI_CASES = [
    # (id, argv builder, fragments the one error line must hold)
    *[
        (f"missing-rate {r}", lambda e, r=r: _evaluate(e, "--missing-rate", r), ("--missing-rate", "(0, 1)"))
        for r in ("0", "1", "1.5", "-0.1", "nan")
    ],
    *[(f"stride {s}", lambda e, s=s: _evaluate(e, "--stride", s), ("--stride", "integer >= 1")) for s in ("0", "-1")],
    ("seed -1", lambda e: _evaluate(e, "--set", "sampler.seed=-1"), ("sampler.seed", "integer >= 0")),
    ("seed flag", lambda e: _evaluate(e, "--seed", "1"), ("unrecognized arguments: --seed",)),
    ("steps flag", lambda e: _evaluate(e, "--steps", "1"), ("unrecognized arguments: --steps",)),
    ("no csv", lambda e: ["evaluate", "--checkpoint", e / "imp"], ("--csv", "required")),
    ("physionet no root", lambda e: ["train", "--config", "tiny", "--out", e / "p0", "--set", "data.format=physionet"],
     ("data.root", "set-a")),  # fmt: skip
    ("pm25 bad month", lambda e: ["train", "--config", "tiny", "--out", e / "p1", "--set", "data.valid_month=3"],
     ("data.valid_month", "training month")),  # fmt: skip
    ("jsonl for impute", lambda e: ["train", "--config", "tiny", "--out", e / "p2", "--set", "data.format=jsonl",
     "--set", f"data.root={e / 'good.csv'}"], ("data.format", "forecast")),  # fmt: skip
    *[
        (f"windows {w}", lambda e, w=w: _evaluate_forecast(e, "--windows", w), ("--windows", "integer >= 1"))
        for w in ("0", "-1")
    ],
    ("windows too many", lambda e: _evaluate_forecast(e, "--windows", "50"), ("--windows", f"more than {50 * H} rows")),
    ("season 0", lambda e: _evaluate_forecast(e, "--season", "0"), ("--season", "integer >= 1")),
    (
        "horizon mismatch",
        lambda e: _evaluate_forecast(e, "--set", "task.horizon=3"),
        ("task.horizon", f"prediction length {H}"),
    ),
    (
        "config beside checkpoint",
        lambda e: _evaluate(e, "--config", "tiny"),
        ("--config", "not used with --checkpoint"),
    ),
    ("device gpu", lambda e: _evaluate(e, "--device", "gpu"), ("--device", "auto, cpu, cuda or cuda:N", "'gpu'")),
    *[
        (f"sampler.{k}=0", lambda e, k=k: _evaluate(e, "--set", f"sampler.{k}=0"), (f"sampler.{k}", "integer >= 1"))
        for k in ("steps", "samples", "batch_size")
    ],
    ("sampler.method", lambda e: _evaluate(e, "--set", "sampler.method=bogus"), ("sampler.method", "ddpm", "bogus")),
    ("csv missing", lambda e: _evaluate(e)[:3] + ["--csv", e / "nope.csv"], ("--csv", "no such file", "nope.csv")),
    ("csv empty", lambda e: _evaluate(e)[:3] + ["--csv", e / "empty.csv"], ("--csv", "cannot read")),
    ("csv text", lambda e: _evaluate(e)[:3] + ["--csv", e / "text.csv"], ("--csv", "non-numeric", "'b'")),
    ("csv all-NaN", lambda e: _evaluate(e)[:3] + ["--csv", e / "allnan.csv"], ("--csv", "no observed value", "'b'")),
    ("csv inf", lambda e: _evaluate(e)[:3] + ["--csv", e / "inf.csv"], ("--csv", "inf")),
    ("csv directory", lambda e: _evaluate(e)[:3] + ["--csv", e], ("--csv", "is a directory")),
    ("csv columns", lambda e: _evaluate(e)[:3] + ["--csv", e / "twocols.csv"], ("--csv", f"trained on {K}", "got 2")),
    ("csv short", lambda e: _evaluate(e)[:3] + ["--csv", e / "short.csv"], ("--csv", "window of 8 rows", "got 5")),
    (
        "forecast csv columns",
        lambda e: ["forecast", "--checkpoint", e / "fc", "--csv", e / "twocols.csv", "--out", e / "o.csv"],
        ("--csv", f"trained on {K} columns"),
    ),
    (
        "checkpoint missing",
        lambda e: ["evaluate", "--checkpoint", e / "nope", "--csv", e / "good.csv"],
        ("--checkpoint",),
    ),
    (
        "checkpoint without weights",
        lambda e: ["evaluate", "--checkpoint", e / "noweights", "--csv", e / "good.csv"],
        ("--checkpoint", "model.safetensors"),
    ),
    (
        "impute a forecaster",
        lambda e: ["impute", "--checkpoint", e / "fc", "--csv", e / "good.csv", "--out", e / "o.csv"],
        ("--checkpoint", "forecaster", "use `forecast`"),
    ),
    (
        "forecast with an imputer",
        lambda e: ["forecast", "--checkpoint", e / "imp", "--csv", e / "good.csv", "--out", e / "o.csv"],
        ("--checkpoint", "imputer", "use `impute`"),
    ),
    (
        "out folder missing",
        lambda e: ["impute", "--checkpoint", e / "imp", "--csv", e / "good.csv", "--out", e / "no" / "o.csv"],
        ("--out", "existing folder"),
    ),
    (
        "plot folder missing",
        lambda e: [
            "forecast",
            "--checkpoint",
            e / "fc",
            "--csv",
            e / "good.csv",
            "--out",
            e / "o.csv",
            "--plot",
            e / "no" / "p.png",
        ],
        ("--plot", "existing folder"),
    ),
    (
        "train data.source missing",
        lambda e: ["train", "--config", "tiny", "--out", e / "run", "--set", f"data.source={e / 'gone.csv'}"],
        ("data.source", "no such file", "gone.csv"),
    ),
    (
        "train data.train_fraction",
        lambda e: ["train", "--config", "tiny", "--out", e / "run", "--set", "data.train_fraction=1.5"],
        ("data.train_fraction", "(0, 1]", "1.5"),
    ),
    (
        "train horizon = window",
        lambda e: [
            "train",
            "--config",
            "tiny",
            "--out",
            e / "run",
            "--set",
            "task.task=forecast",
            "--set",
            "task.horizon=8",
        ],
        ("task.horizon", "data.window = 8"),
    ),
    (
        "train window_scale 0",
        lambda e: ["train", "--config", "tiny", "--out", e / "run", "--set", "task.window_scale=0"],
        ("task.window_scale", "(0, inf)"),
    ),
]


@pytest.mark.parametrize("argv, fragments", [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES])
def test_cli_refuses_bad_input_in_one_line(cli, cli_error, env, argv, fragments):
    cli_error(cli, argv(env), *fragments)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cli_refuses_cuda_without_a_gpu(cli, cli_error, env):
    cli_error(cli, _evaluate(env, "--device", "cuda"), "--device", "no CUDA GPU")


def test_cli_good_neighbours_still_run(cli, env, capsys):
    """The smallest valid values next to the refused ones, on --device cpu."""
    assert (
        cli.main(
            [
                str(a)
                for a in _evaluate(
                    env,
                    "--missing-rate",
                    "0.1",
                    "--stride",
                    "1",
                    "--set",
                    "sampler.seed=0",
                    "--set",
                    "sampler.samples=1",
                    "--device",
                    "cpu",
                )
            ]
        )
        == 0
    )
    sets = ["--set", f"task.horizon={H}", "--set", "sampler.steps=1"]
    argv = _evaluate_forecast(env, "--windows", "1", "--season", "1", *sets)
    assert cli.main([str(a) for a in argv]) == 0
    out = env / "filled.csv"
    argv = ["impute", "--checkpoint", env / "imp", "--csv", env / "allnan.csv", "--out", out, "--device", "cpu"]
    assert cli.main([str(a) for a in argv]) == 2  # refused, and nothing written
    assert not out.exists()
    capsys.readouterr()


# ---- Python API


@pytest.fixture(scope="module")
def imputer(env):
    return Imputer.from_pretrained(env / "imp")


@pytest.fixture(scope="module")
def predictor(env):
    return CSDIPredictor.from_pretrained(env / "fc")


def _gappy() -> pd.DataFrame:
    frame = _table()
    return frame.mask(np.random.default_rng(1).random(frame.shape) < 0.3)


@pytest.mark.parametrize(
    "kwargs, fragments",
    [
        ({"n_samples": 0}, ("n_samples", "integer >= 1", "0")),
        ({"n_samples": -1}, ("n_samples", "integer >= 1")),
        ({"n_samples": 2.5}, ("n_samples", "integer >= 1", "2.5")),
        ({"n_samples": True}, ("n_samples", "True")),
        ({"steps": 0}, ("steps", "integer >= 1")),
        ({"seed": -1}, ("seed", "integer >= 0")),
        ({"seed": 1.5}, ("seed", "1.5")),
        ({"quantiles": [0.5, 1.5]}, ("quantiles", "[0, 1]", "1.5")),
        ({"quantiles": [math.nan]}, ("quantiles", "nan")),
        ({"method": "bogus"}, ("method", "bogus")),
    ],
    ids=lambda v: str(v),
)
def test_impute_refuses_bad_sampler_arguments(imputer, kwargs, fragments):
    with pytest.raises(ValueError) as e:
        imputer.impute(_gappy(), **kwargs)
    assert all(f in str(e.value) for f in fragments), str(e.value)


@pytest.mark.parametrize(
    "data, fragments",
    [
        (np.zeros((10, K + 1)), ("data", f"trained on {K} features", f"got {K + 1}")),
        (np.zeros((2, 10, K)), ("data", "2-D array", "(2, 10, 3)")),
        (np.zeros((0, K)), ("data", "shape (0, 3)")),
        (np.full((10, K), np.nan), ("data", "no observed value")),
        (np.where(np.eye(10, K, dtype=bool), np.inf, 1.0), ("data", "inf")),
        (np.full((10, K), "a"), ("data", "numeric")),
        (None, ("data", "numeric")),
        (pd.DataFrame(), ("data", "at least one row")),
    ],
    ids=["columns", "3-D", "empty", "all-NaN", "inf", "strings", "None", "empty frame"],
)
def test_impute_refuses_bad_tables(imputer, data, fragments):
    with pytest.raises(ValueError) as e:
        imputer.impute(data, n_samples=1)
    assert all(f in str(e.value) for f in fragments), str(e.value)


def test_impute_none_means_the_checkpoint_setting(imputer):
    frame = _gappy()
    s = imputer.config.sampler
    result = imputer.impute(frame)
    assert result.samples.shape == (s.samples, T, K)
    again = imputer.impute(frame, n_samples=s.samples, steps=s.steps, seed=s.seed, method=s.method)
    np.testing.assert_array_equal(result.samples, again.samples)
    assert imputer.impute(frame, n_samples=1, steps=1, seed=0).samples.shape == (1, T, K)


def test_sample_windows_refuses_nan_at_known_entries(imputer):
    z = torch.zeros(1, K, 8)
    z[0, 1, 2] = math.nan
    cond = torch.ones(1, K, 8, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"values: expected finite values at the known"):
        imputer.sample_windows(z, cond, n_samples=1, method="dpm++2m", steps=2, seed=0)
    cond[0, 1, 2] = False  # a hidden entry may hold anything: it is never read
    out = imputer.sample_windows(z, cond, n_samples=1, method="dpm++2m", steps=2, seed=0)
    assert torch.isfinite(out).all()


def _entry(target) -> dict:
    return {"start": pd.Period("2000-01", freq="M"), "target": target}


@pytest.mark.parametrize(
    "call, fragments",
    [
        (lambda p: p.predict([_entry(_table().to_numpy().T)], num_samples=0), ("num_samples", "integer >= 1")),
        (lambda p: p.predict([_entry(_table().to_numpy().T)], num_samples=2.5), ("num_samples", "2.5")),
        (lambda p: p.predict([_entry(np.full((K, 12), np.nan))]), ("dataset", "no observed value")),
        (lambda p: p.predict([_entry(np.where(np.eye(K, 12, dtype=bool), np.inf, 1.0))]), ("dataset", "inf")),
        (lambda p: p.predict([_entry(np.full((K, 12), "x"))]), ("dataset", "numeric target")),
        (lambda p: p.predict([_entry(np.zeros((K + 1, 12)))]), ("dataset", f"trained on {K} features")),
        (lambda p: p.predict([_entry(np.zeros((1, K, 12)))]), ("dataset", "(T,) or (K, T)")),
        (lambda p: p.predict([{"target": np.zeros((K, 12))}]), ("dataset", "'start'")),
        (lambda p: CSDIPredictor(p.net, p.scaler, H, 6, p.config, batch_entries=0), ("batch_entries",)),
        (lambda p: CSDIPredictor(p.net, p.scaler, 0, 6, p.config), ("prediction_length", "integer >= 1")),
        (lambda p: CSDIEstimator(True), ("prediction_length", "True")),
        (lambda p: CSDIEstimator(2, context_length=2.5), ("context_length", "2.5")),
        (lambda p: CSDIEstimator(2, stride=0), ("stride", "integer >= 1")),
        (lambda p: evaluate_forecast(p, _table(), windows=0), ("windows", "integer >= 1")),
        (lambda p: evaluate_forecast(p, _table(), windows=2, season_length=0), ("season_length", "integer >= 1")),
        (lambda p: evaluate_forecast(p, _table()[["a"]], windows=2), ("frame", f"trained on {K} columns")),
    ],
    ids=[
        "num_samples 0",
        "num_samples 2.5",
        "all-NaN",
        "inf",
        "strings",
        "features",
        "3-D",
        "no start",
        "batch_entries",
        "prediction_length",
        "estimator bool",
        "estimator float",
        "estimator stride",
        "windows 0",
        "season 0",
        "frame columns",
    ],
)
def test_forecaster_api_refuses_bad_input(predictor, call, fragments):
    with pytest.raises(ValueError) as e:
        list(call(predictor) or [])
    assert all(f in str(e.value) for f in fragments), str(e.value)


@pytest.mark.parametrize(
    "kwargs, fragments",
    [
        ({"missing_rate": 0.0}, ("missing_rate", "(0, 1)")),
        ({"missing_rate": 1.0}, ("missing_rate", "(0, 1)")),
        ({"missing_rate": math.nan}, ("missing_rate", "nan")),
        ({"missing_rate": 0.5, "stride": 0}, ("stride", "integer >= 1")),
        ({"missing_rate": 0.5, "seed": -2}, ("seed", "integer >= 0")),
    ],
    ids=lambda v: str(v),
)
def test_evaluate_imputation_refuses_bad_arguments(imputer, kwargs, fragments):
    with pytest.raises(ValueError) as e:
        evaluate_imputation(imputer, _table(), **kwargs)
    assert all(f in str(e.value) for f in fragments), str(e.value)


@pytest.mark.parametrize("cls", [Imputer, CSDIPredictor])
def test_from_pretrained_on_a_missing_or_empty_folder(cls, tmp_path):
    with pytest.raises(FileNotFoundError, match="nope: no such directory"):
        cls.from_pretrained(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="holds no config.json"):
        cls.from_pretrained(tmp_path)


@pytest.mark.parametrize(
    "override, fragments",
    [
        ("sampler.steps=0", ("sampler.steps", "integer >= 1")),
        ("sampler.seed=-1", ("sampler.seed", "integer >= 0")),
        ("sampler.grid=bogus", ("sampler.grid", "auto", "logsnr")),
        ("data.window=1", ("data.window", "integer >= 2")),
        ("data.train_fraction=0", ("data.train_fraction", "(0, 1]")),
        ("task.forecast_share=1.5", ("task.forecast_share", "[0, 1]")),
        ("schedule.beta_end=2", ("schedule.beta_end", "(0, 1]")),
        ("schedule.timesteps=0", ("schedule.timesteps", "integer >= 1")),
        ("sampler.samples=0", ("sampler.samples", "integer >= 1")),
        ("diffusion.n_steps=5", ("diffusion",)),
        ("sampler.n_samples=5", ("n_samples",)),
        ("model.time_dim=1", ("model.time_dim", "integer >= 2")),
    ],
)
def test_config_refuses_bad_values(override, fragments):
    with pytest.raises(ValueError) as e:
        load_timeseries_config("tiny", [override])
    assert all(f in str(e.value) for f in fragments), str(e.value)


def test_config_checks_heads_against_channels_at_build_time_not_per_override():
    config = load_timeseries_config("tiny", ["model.heads=3", "model.channels=6"])  # 8 % 3 != 0 only halfway
    assert config.build_net(K).n_features == K
    with pytest.raises(ValueError, match=r"model.heads: expected a divisor of model.channels = 8, got 3"):
        load_timeseries_config("tiny", ["model.heads=3"]).build_net(K)
