"""Dataclass configs from TOML, typed --set overrides, bundled config names, and the CLI base."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pytest

from omnidiffusion.core.cli import AppCLI, print_json
from omnidiffusion.core.config import from_dict, load_config, to_dict


@dataclass
class ModelCfg:
    channels: tuple[int, ...] = (32, 64)
    kernel: tuple[int, int] = (3, 3)
    dropout: float = 0.0
    attention: bool = False


@dataclass
class RunCfg:
    name: str = "run"
    steps: int = 100
    lr: float = 1e-3
    seed: int | None = None
    sampler: Literal["ddpm", "ddim"] = "ddpm"
    tags: list[str] = field(default_factory=list)
    out: Path = Path("runs")
    model: ModelCfg = field(default_factory=ModelCfg)


TOML = """
name = "tiny"
steps = 7
lr = 1          # an int is a valid float
tags = ["a", "b"]

[model]
channels = [8, 16, 32]
attention = true
"""


def _write(tmp_path: Path, text: str = TOML) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(text)
    return path


def test_toml_file_fills_nested_dataclasses(tmp_path: Path) -> None:
    cfg = load_config(RunCfg, _write(tmp_path))
    expected = RunCfg(name="tiny", steps=7, lr=1.0, tags=["a", "b"],
                      model=ModelCfg(channels=(8, 16, 32), attention=True))
    assert cfg == expected
    assert isinstance(cfg.lr, float) and isinstance(cfg.model.channels, tuple)
    assert load_config(RunCfg) == RunCfg()


def test_overrides_are_parsed_by_field_type(tmp_path: Path) -> None:
    cfg = load_config(RunCfg, _write(tmp_path), [
        "steps=50", "lr=3e-4", "seed=11", "sampler=ddim", "model.dropout=0.1", "model.attention=false",
        "model.channels=4,8", "model.kernel=[5, 1]", "tags=x", "out=/tmp/o", "name=with = sign",
    ])
    assert (cfg.steps, cfg.lr, cfg.seed, cfg.sampler) == (50, 3e-4, 11, "ddim")
    assert cfg.model == ModelCfg(channels=(4, 8), kernel=(5, 1), dropout=0.1, attention=False)
    assert cfg.tags == ["x"] and cfg.out == Path("/tmp/o") and cfg.name == "with = sign"
    assert load_config(RunCfg, None, ["seed=11", "seed=none"]).seed is None


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("steps=1.5", "steps: expected int"),
        ("lr=fast", "lr: expected float"),
        ("model.attention=maybe", "model.attention: expected bool"),
        ("sampler=euler", r"sampler: expected one of \['ddpm', 'ddim'\]"),
        ("model.kernel=3", "model.kernel: expected 2"),
        ("seed=abc", "seed: expected"),
        ("model=1", "model: is a table"),
        ("steps", "expected key=value"),
    ],
)
def test_override_type_errors(override: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_config(RunCfg, None, [override])


def test_unknown_keys_list_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown config key 'stepz'; valid keys: lr, model, name, out, sampler, "
                                         r"seed, steps, tags"):
        load_config(RunCfg, None, ["stepz=3"])
    with pytest.raises(ValueError, match=r"'chanels' in \[model\]; valid keys: attention, channels, dropout, kernel"):
        load_config(RunCfg, None, ["model.chanels=3"])
    with pytest.raises(ValueError, match=r"tiny\.toml: unknown config key 'width' in \[model\]"):
        load_config(RunCfg, _write(tmp_path, "[model]\nwidth = 3\n"))
    with pytest.raises(ValueError, match=r"tiny\.toml: steps: expected int"):
        load_config(RunCfg, _write(tmp_path, 'steps = "7"\n'))
    with pytest.raises(ValueError, match="not valid TOML"):
        load_config(RunCfg, _write(tmp_path, "steps = = 7\n"))


def test_bundled_names_come_from_the_package(tmp_path: Path, monkeypatch) -> None:
    package = tmp_path / "odtest_cfgpkg"
    (package / "configs").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "configs" / "small.toml").write_text("steps = 3\n[model]\ndropout = 0.5\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = load_config(RunCfg, "small", ["steps=4"], package="odtest_cfgpkg")
    assert cfg.steps == 4 and cfg.model.dropout == 0.5
    with pytest.raises(FileNotFoundError, match="bundled configs: small"):
        load_config(RunCfg, "large", package="odtest_cfgpkg")
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_config(RunCfg, "missing.toml")


def test_train_config_takes_overrides() -> None:
    from omnidiffusion.core.training import TrainConfig

    cfg = load_config(TrainConfig, None, ["ema_decay=none", "betas=0.9,0.99", "amp=bf16", "grad_clip=0.5"])
    assert (cfg.ema_decay, cfg.betas, cfg.amp, cfg.grad_clip) == (None, (0.9, 0.99), "bf16", 0.5)
    with pytest.raises(ValueError, match="grad_accum: expected an int >= 1"):
        load_config(TrainConfig, None, ["grad_accum=0"])


def test_to_dict_round_trips_through_from_dict() -> None:
    cfg = RunCfg(seed=2, tags=["t"], model=ModelCfg(channels=(1, 2, 3)))
    data = json.loads(json.dumps(to_dict(cfg)))
    assert from_dict(RunCfg, data) == cfg


# ----------------------------------------------------------------------------------------------------------------
# CLI base


def _cli(calls: list) -> AppCLI:
    cli = AppCLI("omnidiffusion-test", "Test app.")
    train = cli.add_command("train", lambda args, cfg: calls.append((args, cfg)), RunCfg, help="train a model")
    train.add_argument("--out", default="runs/x")
    cli.add_command("evaluate", lambda args, cfg: 3, RunCfg, help="evaluate a model")
    return cli


def test_cli_loads_config_and_overrides(tmp_path: Path) -> None:
    calls: list = []
    code = _cli(calls).main(["train", "--config", str(_write(tmp_path)), "--set", "steps=9", "--set",
                             "model.attention=false", "--out", "o"])
    assert code == 0
    args, cfg = calls[0]
    assert args.out == "o" and cfg.steps == 9 and cfg.name == "tiny" and cfg.model.attention is False
    assert _cli([]).main(["evaluate"]) == 3


def test_cli_help_and_errors(capsys) -> None:
    cli = _cli([])
    assert cli.main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--config NAME_OR_FILE" in out and "--set KEY=VALUE" in out and "--out" in out
    assert cli.main(["train", "--set", "nope=1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown config key 'nope'" in err[0]
    assert err[0].startswith("omnidiffusion-test train: error:")
    assert cli.main([]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_print_config_and_print_json(capsys) -> None:
    assert _cli([]).main(["train", "--set", "lr=0.5", "--print-config"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["lr"] == 0.5 and printed["model"]["channels"] == [32, 64]

    print_json({"model": {"fid": np.float32(1.5), "nll": float("nan")}, "baselines": {}, "protocol": {"n": 3}})
    assert json.loads(capsys.readouterr().out) == {
        "model": {"fid": 1.5, "nll": None}, "baselines": {}, "protocol": {"n": 3}}


@dataclass
class _RenamedData:
    RENAMED = {"folder": "root"}  # a class attribute, not a field: keys this table renamed
    root: str = ""
    size: int = 8


@dataclass
class _RenamedRun:
    data: _RenamedData = field(default_factory=_RenamedData)


def test_renamed_keys_still_load_under_their_old_name(tmp_path: Path) -> None:
    from omnidiffusion.core.config import apply_override

    assert from_dict(_RenamedRun, {"data": {"folder": "/x", "size": 4}}).data.root == "/x"
    assert to_dict(from_dict(_RenamedRun, {"data": {"folder": "/x"}})) == {"data": {"root": "/x", "size": 8}}
    assert apply_override(_RenamedRun(), "data.folder=/y").data.root == "/y"
    assert apply_override(_RenamedRun(), "data.root=/z").data.root == "/z"
    with pytest.raises(ValueError, match="given twice"):
        from_dict(_RenamedRun, {"data": {"folder": "/x", "root": "/y"}})
    with pytest.raises(ValueError, match="unknown config key 'path'"):
        from_dict(_RenamedRun, {"data": {"path": "/x"}})
