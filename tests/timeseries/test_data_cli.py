"""Data loading errors, the Imputer pipeline, and the CLI on a tiny config (train, impute, evaluate, forecast)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from omnidiffusion.timeseries.cli import main
from omnidiffusion.timeseries.data import as_array, load_bundled, make_windows, read_csv
from omnidiffusion.timeseries.pipeline import Imputer, load_settings, train_imputer


def test_bundled_tables():
    macro = load_bundled("macrodata")
    assert macro.shape == (203, 12) and not macro.isna().any().any()
    co2 = load_bundled("co2")
    assert co2.isna().sum().sum() == 59  # genuine gaps
    assert load_bundled("elnino").shape[1] == 1


def test_bad_input_gives_clear_errors(tmp_path):
    frame = pd.DataFrame({"a": [1.0, 2.0, np.nan], "b": [np.nan] * 3})
    with pytest.raises(ValueError, match=r"all NaN.*\['b'\]"):
        as_array(frame)
    with pytest.raises(ValueError, match=r"non-numeric: \['c'\]"):
        as_array(pd.DataFrame({"a": [1.0, 2.0], "c": ["x", "y"]}))
    with pytest.raises(ValueError, match="window length 10 is longer than the series"):
        make_windows(np.zeros((5, 2)), np.ones((5, 2), bool), 10)
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_csv(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("t,a,b\n0,1,x\n1,2,y\n")
    with pytest.raises(ValueError, match="non-numeric"):
        read_csv(bad)


@pytest.fixture(scope="module")
def imputer_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("imp")
    assert main(["train", "--config", "tiny", "--out", str(out)]) == 0
    return out


def test_cli_train_writes_a_loadable_checkpoint_and_resumes(imputer_dir, capsys):
    assert (imputer_dir / "checkpoint" / "latest.json").is_file()
    imputer = Imputer.from_pretrained(imputer_dir)
    assert imputer.window == 8
    # A second call with more steps resumes from the checkpoint instead of starting over.
    assert main(["train", "--config", "tiny", "--set", "train.steps=6", "--out", str(imputer_dir)]) == 0
    log = (imputer_dir / "log.csv").read_text().splitlines()
    assert log[-1].startswith("6,")


def test_imputer_keeps_observed_entries_exactly(imputer_dir):
    frame = load_bundled("macrodata").iloc[:21].copy()  # not a multiple of the window: the last one overlaps
    rng = np.random.default_rng(0)
    holes = rng.random(frame.shape) < 0.3
    gappy = frame.mask(holes)
    result = Imputer.from_pretrained(imputer_dir).impute(gappy, n_samples=3)
    assert result.samples.shape == (3, 21, 12)
    known = ~holes
    assert np.array_equal(result.samples[:, known], np.broadcast_to(frame.to_numpy()[known], (3, known.sum())))
    assert np.array_equal(result.median.to_numpy()[known], frame.to_numpy()[known])
    assert list(result.median.columns) == list(frame.columns)
    assert np.isfinite(result.samples).all()
    with pytest.raises(ValueError, match="12 features"):
        Imputer.from_pretrained(imputer_dir).impute(np.zeros((10, 3)))


def test_cli_impute_and_evaluate(imputer_dir, tmp_path, capsys):
    frame = load_bundled("macrodata").iloc[150:]
    csv = tmp_path / "table.csv"
    frame.mask(np.random.default_rng(1).random(frame.shape) < 0.2).to_csv(csv)
    out = tmp_path / "filled.csv"
    assert (
        main(
            [
                "impute",
                "--checkpoint",
                str(imputer_dir),
                "--csv",
                str(csv),
                "--out",
                str(out),
                "--plot",
                str(tmp_path / "fan.png"),
            ]
        )
        == 0
    )
    filled = pd.read_csv(out, index_col=0)
    assert filled.shape == frame.shape and not filled.isna().any().any()
    assert (tmp_path / "fan.png").read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()
    frame.to_csv(csv)
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                str(imputer_dir),
                "--csv",
                str(csv),
                "--missing-rate",
                "0.5",
                "--seed",
                "3",
                "--set",
                "sampler.n_samples=4",
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"model", "baselines", "protocol"}
    assert {"linear interpolation", "mean imputation"} <= set(report["baselines"])
    assert report["baselines"]["mean imputation"]["crps"] == pytest.approx(1.0, abs=0.6)
    assert report["protocol"]["missing_rate"] == 0.5 and report["protocol"]["n_samples"] == 4
    assert main(["evaluate", "--checkpoint", str(imputer_dir), "--csv", str(tmp_path / "nope.csv")]) == 2


def test_cli_forecast_train_forecast_and_evaluate(tmp_path, capsys):
    out = tmp_path / "fc"
    assert (
        main(["train", "--config", "tiny", "--set", "task.task=forecast", "--set", "task.horizon=2", "--out", str(out)])
        == 0
    )
    frame = load_bundled("macrodata")
    csv = tmp_path / "hist.csv"
    frame.to_csv(csv)
    assert main(["forecast", "--checkpoint", str(out), "--csv", str(csv), "--out", str(tmp_path / "next.csv")]) == 0
    nxt = pd.read_csv(tmp_path / "next.csv", index_col=0)
    assert nxt.shape == (2, 36) and str(nxt.index[0]) == "2009Q4"
    capsys.readouterr()
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                str(out),
                "--csv",
                str(csv),
                "--task",
                "forecast",
                "--horizon",
                "2",
                "--windows",
                "3",
                "--set",
                "sampler.n_samples=4",
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert "crps_sum" in report["model"] and "seasonal naive (4)" in report["baselines"]


def test_settings_reject_unknown_keys():
    with pytest.raises(ValueError, match="bogus"):
        load_settings("tiny", ["model.bogus=1"])
    with pytest.raises(FileNotFoundError):
        load_settings("no-such-config")
    assert train_imputer is not None
