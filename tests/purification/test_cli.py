"""CLI smoke test on the tiny config: train (classifier + DDPM through vision), resume, purify, evaluate (JSON)."""

from __future__ import annotations

import json

from omnidiffusion.core.io import load_pretrained
from omnidiffusion.purification.cli import cli


def test_cli_train_purify_evaluate(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "--config", "tiny", "--out", str(out)]) == 0
    assert (out / "classifier" / "model.safetensors").is_file()
    assert (out / "diffusion" / "model.safetensors").is_file()
    assert hasattr(load_pretrained(out / "diffusion"), "denoiser")
    # a finished run resumes from its checkpoint and trains further when asked
    assert cli.main(["train-classifier", "--config", "tiny", "--out", str(out), "--set", "train.steps=6"]) == 0
    assert json.loads((out / "classifier" / "checkpoint" / "latest.json").read_text())
    capsys.readouterr()

    pure = tmp_path / "pure"
    assert (
        cli.main(
            [
                "purify",
                "--config",
                "tiny",
                "--diffusion",
                str(out / "diffusion"),
                "--input",
                "digits",
                "--output",
                str(pure),
                "--n",
                "3",
            ]
        )
        == 0
    )
    assert sorted(p.name for p in pure.iterdir()) == ["00000.png", "00001.png", "00002.png"]
    capsys.readouterr()

    plot = tmp_path / "robust.png"
    assert (
        cli.main(
            [
                "evaluate",
                "--config",
                "tiny",
                "--diffusion",
                str(out / "diffusion"),
                "--classifier",
                str(out / "classifier"),
                "--data",
                "digits",
                "--attack",
                "pgd,bpda-eot",
                "--eps",
                "0.1",
                "--norm",
                "linf",
                "--n",
                "4",
                "--seed",
                "0",
                "--quiet",
                "--plot",
                str(plot),
                "--set",
                "evaluate.t_stars=0.05",
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"model", "baselines", "protocol"}
    assert "clean_accuracy" in report["model"] and "clean_accuracy" in report["baselines"]["classifier alone"]
    assert "robust_accuracy[eot-pgd, eps=0.1, bpda]" in report["model"]
    assert "robust_accuracy[pgd, eps=0.1, transfer]" in report["model"]
    assert report["protocol"]["n"] == 4 and plot.is_file()


def test_cli_rejects_unknown_config_keys_and_attacks(tmp_path, cli_error):
    cli_error(cli, ["train", "--config", "tiny", "--set", "purify.no_such_key=1"], "no_such_key")
    argv = ["evaluate", "--config", "tiny", "--diffusion", tmp_path, "--classifier", tmp_path, "--attack", "cw"]
    cli_error(cli, argv, "--attack", "'cw'")


def test_cli_help_lists_every_command(capsys):
    assert cli.main(["--help"]) == 0
    text = capsys.readouterr().out
    for name in ("train", "train-classifier", "train-diffusion", "purify", "evaluate"):
        assert name in text
