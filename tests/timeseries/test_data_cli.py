"""Data loading errors, the Imputer pipeline, and the CLI on a tiny config (train, impute, evaluate, forecast)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from omnidiffusion.core.io import load_run_config
from omnidiffusion.timeseries.cli import cli
from omnidiffusion.timeseries.data import as_array, load_bundled, make_windows, read_csv
from omnidiffusion.timeseries.pipeline import Imputer
from omnidiffusion.timeseries.settings import TimeseriesConfig, load_timeseries_config
from omnidiffusion.timeseries.training import train

main = cli.main


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
    stored, tiny = load_run_config(imputer_dir, TimeseriesConfig), load_timeseries_config("tiny")
    assert stored == imputer.config and stored.train.device == "cpu"  # --device auto, resolved on this machine
    assert (stored.schedule, stored.sampler, stored.model, stored.data) == (tiny.schedule, tiny.sampler, tiny.model,
                                                                             tiny.data)  # fmt: skip
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
                "--set",
                "sampler.seed=3",
                "--set",
                "sampler.samples=4",
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"model", "baselines", "protocol"}
    assert {"linear interpolation", "mean imputation"} <= set(report["baselines"])
    assert report["baselines"]["mean imputation"]["crps"] == pytest.approx(1.0, abs=0.6)
    assert report["protocol"]["missing_rate"] == 0.5 and report["protocol"]["samples"] == 4
    assert report["protocol"]["seed"] == 3
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
                "--windows",
                "3",
                "--set",
                "sampler.samples=4",
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert "crps_sum" in report["model"] and "seasonal naive (4)" in report["baselines"]


def test_config_rejects_unknown_keys():
    with pytest.raises(ValueError, match="bogus"):
        load_timeseries_config("tiny", ["model.bogus=1"])
    with pytest.raises(FileNotFoundError):
        load_timeseries_config("no-such-config")
    assert train is not None


def test_a_checkpoint_from_before_run_config_still_loads(imputer_dir, tmp_path, capsys):
    """Older checkpoints kept their settings in config.json's metadata, under the old key names."""
    import shutil

    from omnidiffusion.core.config import to_dict
    from omnidiffusion.core.io import load_pretrained, read_pretrained_config, save_pretrained

    old = tmp_path / "old"
    shutil.copytree(imputer_dir, old)
    (old / "run_config.json").unlink()
    config = load_run_config(imputer_dir, TimeseriesConfig)
    settings = to_dict(config)
    schedule = settings.pop("schedule")
    settings["diffusion"] = {"n_steps": schedule["timesteps"], "beta_start": schedule["beta_start"],
                             "beta_end": schedule["beta_end"]}  # fmt: skip
    settings["sampler"]["n_samples"] = settings["sampler"].pop("samples")
    meta = {**read_pretrained_config(imputer_dir)["metadata"], "settings": settings}
    save_pretrained(load_pretrained(imputer_dir), old, metadata=meta)
    assert Imputer.from_pretrained(old).config == config
    frame = load_bundled("macrodata").iloc[:16]
    gappy = frame.mask(np.random.default_rng(0).random(frame.shape) < 0.3)
    a = Imputer.from_pretrained(old).impute(gappy, n_samples=2).samples
    np.testing.assert_array_equal(a, Imputer.from_pretrained(imputer_dir).impute(gappy, n_samples=2).samples)
    csv = tmp_path / "gappy.csv"
    gappy.to_csv(csv)
    for ckpt in (old, imputer_dir):  # the CLI starts from the stored settings, then --set
        argv = ["impute", "--checkpoint", str(ckpt), "--csv", str(csv), "--out", str(tmp_path / f"{ckpt.name}.csv"),
                "--set", "sampler.samples=2"]  # fmt: skip
        assert main(argv) == 0
    assert (tmp_path / "old.csv").read_text() == (tmp_path / f"{imputer_dir.name}.csv").read_text()


def test_cli_distil_then_impute_with_the_student(imputer_dir, tmp_path, capsys):
    cd = tmp_path / "cd"
    assert main(["distil", "--checkpoint", str(imputer_dir), "--out", str(cd), "--distil-steps", "3"]) == 0
    student = Imputer.from_pretrained(cd)
    assert student.task.consistency is not None and student.config.sampler.method == "consistency"
    frame = load_bundled("macrodata").iloc[150:]
    gappy = frame.mask(np.random.default_rng(2).random(frame.shape) < 0.3)
    gappy.to_csv(tmp_path / "gaps.csv")
    argv = ["impute", "--checkpoint", str(cd), "--csv", str(tmp_path / "gaps.csv"), "--out", str(tmp_path / "f.csv")]
    assert main(argv) == 0
    filled = pd.read_csv(tmp_path / "f.csv", index_col=0)
    known = gappy.notna().to_numpy()
    assert np.array_equal(filled.to_numpy()[known], gappy.to_numpy()[known]) and filled.notna().all().all()
    capsys.readouterr()
    assert main(["distil", "--checkpoint", str(cd), "--out", str(tmp_path / "again")]) == 2
    assert "distilled" in capsys.readouterr().err


@pytest.mark.parametrize("command", sorted(cli.commands))
def test_every_command_has_help(command, capsys):
    assert cli.main([command, "--help"]) == 0
    assert "--set" in capsys.readouterr().out
