"""CLI smoke test on the tiny config: train (classifier + DDPM through vision), resume, purify, evaluate (JSON), and
the run-config contract: inference commands start from the run's stored config, and Python loads the same."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from omnidiffusion.core.io import has_run_config, load_pretrained, load_run_config
from omnidiffusion.purification import PurificationConfig, PurificationPipeline, evaluate
from omnidiffusion.purification.cli import cli


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("purification_cli") / "run"
    assert cli.main(["train", "--config", "tiny", "--out", str(out)]) == 0
    return out


def test_cli_train_writes_both_models_and_the_run_config(run):
    assert (run / "classifier" / "model.safetensors").is_file()
    assert (run / "diffusion" / "model.safetensors").is_file()
    assert hasattr(load_pretrained(run / "diffusion"), "denoiser")
    assert has_run_config(run)
    stored = load_run_config(run, PurificationConfig)
    assert stored.sampler.steps == 2 and stored.evaluate.n == 4  # tiny.toml's [sampler] and [evaluate]


def test_cli_train_classifier_resumes_and_trains_further(run):
    argv = ["train-classifier", "--config", "tiny", "--out", str(run), "--set", "train.steps=6"]
    assert cli.main(argv) == 0
    latest = json.loads((run / "classifier" / "checkpoint" / "latest.json").read_text())
    assert latest
    assert load_run_config(run, PurificationConfig).train.steps == 6


def test_cli_purify_starts_from_the_stored_config(run, tmp_path, capsys):
    pure = tmp_path / "pure"
    argv = ["purify", "--checkpoint", run, "--input", "digits", "--out", pure, "--n", "3"]
    assert cli.main([str(a) for a in argv]) == 0
    assert sorted(p.name for p in pure.iterdir()) == ["00000.png", "00001.png", "00002.png"]
    assert "t* = 0.1, sde, 2 steps" in capsys.readouterr().out  # tiny.toml's sampler.steps = 2, from the run
    argv += ["--set", "sampler.steps=3", "--set", "sampler.t_star=0.05"]
    assert cli.main([str(a) for a in argv]) == 0
    assert "t* = 0.05, sde, 3 steps" in capsys.readouterr().out


def test_cli_evaluate_reports_json(run, tmp_path, capsys):
    plot = tmp_path / "robust.png"
    argv = ["evaluate", "--checkpoint", run, "--quiet", "--plot", plot]
    argv += ["--set", "evaluate.attacks=pgd,bpda-eot", "--set", "evaluate.eps=0.1", "--set", "evaluate.t_stars=0.05"]
    capsys.readouterr()
    assert cli.main([str(a) for a in argv]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"model", "baselines", "protocol"}
    assert "clean_accuracy" in report["model"] and "clean_accuracy" in report["baselines"]["classifier alone"]
    assert "robust_accuracy[eot-pgd, eps=0.1, bpda]" in report["model"]
    assert "robust_accuracy[pgd, eps=0.1, transfer]" in report["model"]
    assert report["protocol"]["n"] == 4 and plot.is_file()
    assert report["protocol"]["diffusion"] == {"path": str(run), "format": "omnidiffusion"}


def test_python_evaluate_equals_the_cli(run, capsys):
    """from_pretrained reads the same stored config as the CLI, so `evaluate(pipe)` prints the same report."""
    capsys.readouterr()
    assert cli.main(["evaluate", "--checkpoint", str(run), "--quiet", "--device", "cpu"]) == 0
    from_cli = json.loads(capsys.readouterr().out)
    pipe = PurificationPipeline.from_pretrained(run)
    assert pipe.purifier.steps == 2 and pipe.classifier is not None
    report = json.loads(json.dumps(evaluate(pipe, progress=False)))
    assert report == from_cli


def test_from_pretrained_config_and_classifier_arguments(run):
    config = PurificationConfig()
    config.sampler.steps, config.sampler.seed = 4, 3
    pipe = PurificationPipeline.from_pretrained(run, config=config, classifier=False)
    assert pipe.purifier.steps == 4 and pipe.purifier.seed == 3 and pipe.classifier is None
    alone = PurificationPipeline.from_pretrained(run / "diffusion", classifier=run / "classifier")
    x = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    pipe = PurificationPipeline.from_pretrained(run, config=PurificationConfig())  # same sampler as `alone`
    assert torch.equal(alone.purify(x), pipe.purify(x))


def test_a_run_without_run_config_still_loads(run, tmp_path, capsys):
    """Runs of older versions hold classifier/ and diffusion/ only: they start from --config / the default."""
    old = tmp_path / "old"
    shutil.copytree(run, old)
    (old / "run_config.json").unlink()
    pipe = PurificationPipeline.from_pretrained(old)
    assert pipe.classifier is not None and pipe.purifier.steps == 100  # PurificationConfig(): the paper's dt
    argv = ["purify", "--checkpoint", old, "--config", "tiny", "--input", "digits", "--n", "1", "--out", tmp_path / "p"]
    assert cli.main([str(a) for a in argv]) == 0
    assert "2 steps" in capsys.readouterr().out


def test_cli_rejects_unknown_config_keys_and_attacks(tmp_path, run, cli_error):
    cli_error(cli, ["train", "--config", "tiny", "--out", tmp_path, "--set", "sampler.no_such_key=1"], "no_such_key")
    argv = ["evaluate", "--checkpoint", run, "--set", "evaluate.attacks=cw"]
    cli_error(cli, argv, "evaluate.attacks", "'cw'")
    cli_error(cli, ["evaluate", "--checkpoint", run, "--config", "tiny"], "--config", "--checkpoint")


def test_cli_help_lists_every_command(capsys):
    assert cli.main(["--help"]) == 0
    text = capsys.readouterr().out
    for name in ("train", "train-classifier", "train-diffusion", "purify", "evaluate"):
        assert name in text
