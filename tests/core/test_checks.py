"""Shared argument checks (core.checks) and the CLI layer's one-line errors (core.cli)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from omnidiffusion.core.checks import non_negative_int, positive_int, real_number, resolve_device
from omnidiffusion.core.cli import AppCLI, count_arg, number_arg


@pytest.mark.parametrize("good", [1, 7, np.int64(3), torch.tensor(5)])
def test_positive_int_accepts_integers(good):
    assert positive_int(good, "n") == int(good) and type(positive_int(good, "n")) is int


@pytest.mark.parametrize("bad", [0, -3, 2.5, 2.0, True, "4", None, torch.tensor(2.0), float("nan")])
def test_positive_int_refuses_with_the_name(bad):
    with pytest.raises(ValueError, match=r"^n: expected an integer >= 1, got "):
        positive_int(bad, "n")


def test_int_bounds():
    assert non_negative_int(0, "limit") == 0
    with pytest.raises(ValueError, match=r"limit: expected an integer >= 0, got -1"):
        non_negative_int(-1, "limit")
    with pytest.raises(ValueError, match=r"k: expected an integer in \[1, 4\], got 5"):
        positive_int(5, "k", maximum=4)


def test_real_number():
    assert real_number(1, "x") == 1.0
    assert real_number(0.5, "p", low=0, high=1, low_open=True) == 0.5
    for bad in (0.0, 1.5, float("nan"), float("inf"), "0.3", None, True):
        with pytest.raises(ValueError, match=r"^p: expected "):
            real_number(bad, "p", low=0, high=1, low_open=True)
    with pytest.raises(ValueError, match=r"p: expected a finite number in \(0, 1\], got 0.0"):
        real_number(0.0, "p", low=0, high=1, low_open=True)


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device(None) == resolve_device("auto")
    with pytest.raises(ValueError, match=r"device: expected auto, cpu, cuda or cuda:N, got 'gpu'"):
        resolve_device("gpu")
    with pytest.raises(ValueError, match=r"^where: "):
        resolve_device("meta", name="where")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_resolve_device_without_gpu():
    for name in ("cuda", "cuda:1"):
        with pytest.raises(ValueError, match=r"device: 'cuda(:1)?' asked for, but no CUDA GPU is usable here"):
            resolve_device(name)


@dataclass
class _Cfg:
    steps: int = 3


def _cli(handler):
    cli = AppCLI("omnidiffusion-test", "Test app.")
    sub = cli.add_command("run", handler, _Cfg, help="run")
    sub.add_argument("--n", type=count_arg(), default=2)
    sub.add_argument("--limit", type=count_arg(minimum=0), default=0)
    sub.add_argument("--rate", type=number_arg(0, 1), default=0.5)  # --device comes with every command
    return cli


def _one_line_error(capsys, *fragments):
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("omnidiffusion-test") and ": error: " in lines[0], lines[0]
    assert "Traceback" not in captured.err
    for f in fragments:
        assert f in lines[0], (f, lines[0])


@pytest.mark.parametrize(
    "argv, fragments",
    [
        (["--n", "-3"], ("--n", "expected an integer >= 1, got -3")),
        (["--n", "2.5"], ("--n", "expected an integer >= 1, got '2.5'")),
        (["--n", "0"], ("--n", "got 0")),
        (["--limit", "-1"], ("--limit", "expected an integer >= 0")),
        (["--rate", "1.5"], ("--rate", "expected a finite number in [0, 1]")),
        (["--rate", "nan"], ("--rate", "got nan")),
        (["--device", "gpu"], ("--device", "expected auto, cpu, cuda or cuda:N")),
        (["--set", "steps=x"], ("steps", "expected int")),
        (["--bogus"], ("unrecognized arguments: --bogus",)),
    ],
)
def test_cli_usage_errors_are_one_line(capsys, argv, fragments):
    called = []
    assert _cli(lambda a, c: called.append(1)).main(["run", *argv]) == 2
    assert not called
    _one_line_error(capsys, *fragments)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cli_device_without_gpu(capsys):
    assert _cli(lambda a, c: None).main(["run", "--device", "cuda"]) == 2
    _one_line_error(capsys, "--device", "no CUDA GPU is usable here")


def test_cli_handler_errors_are_one_line(capsys, tmp_path):
    def value_error(args, config):
        raise ValueError("--input: expected an RGB image,\n got mode 'CMYK'")

    assert _cli(value_error).main(["run"]) == 2
    _one_line_error(capsys, "--input: expected an RGB image, got mode 'CMYK'")

    def missing(args, config):
        open(tmp_path / "nope.png", "rb")

    assert _cli(missing).main(["run"]) == 2
    _one_line_error(capsys, "nope.png", "No such file or directory")


def test_cli_parsed_values_and_bugs():
    seen = {}

    def ok(args, config):
        seen.update(n=args.n, device=args.device, steps=config.steps)

    assert _cli(ok).main(["run", "--n", "4", "--device", "cpu", "--set", "steps=9"]) == 0
    assert seen == {"n": 4, "device": torch.device("cpu"), "steps": 9}

    def bug(args, config):
        raise KeyError("internal")

    with pytest.raises(KeyError):  # a bug is not dressed up as a usage error
        _cli(bug).main(["run"])


def test_as_flags_renames_only_the_named_parameters():
    from omnidiffusion.core.cli import as_flags

    with pytest.raises(ValueError, match=r"^--n: expected an integer >= 1, got 0$"):
        with as_flags(n="--n"):
            positive_int(0, "n")
    with pytest.raises(ValueError, match=r"^steps: expected"):  # not named: unchanged
        with as_flags(n="--n"):
            positive_int(0, "steps")


def test_output_file(tmp_path):
    from omnidiffusion.core.cli import output_file

    assert output_file(tmp_path / "a.csv", "--out") == tmp_path / "a.csv"
    assert output_file(None, "--out") is None
    with pytest.raises(ValueError, match=r"^--out: .* is a directory, expected a file path"):
        output_file(tmp_path, "--out")
    with pytest.raises(ValueError, match=r"^--plot: expected a file in an existing folder"):
        output_file(tmp_path / "missing" / "a.png", "--plot")
