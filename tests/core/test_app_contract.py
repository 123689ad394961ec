"""The pieces of core every app builds on: shared config tables, the stored run config, open_pretrained, the
common CLI flags and the run-config contract, and the model/process helpers."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from omnidiffusion.core import (
    DiscreteVP,
    SamplerConfig,
    ScheduleConfig,
    TrainConfig,
    fit,
    is_main_process,
    load_run_config,
    open_pretrained,
    save_pretrained,
    save_run_config,
    unwrap_model,
)
from omnidiffusion.core.cli import AppCLI
from omnidiffusion.core.config import from_dict, load_config
from omnidiffusion.core.io import RUN_CONFIG_NAME, ConfigurableModule
from omnidiffusion.core.schedules import NAMED_BETAS


@dataclass
class QuadSchedule(ScheduleConfig):
    name: str = "quadratic"
    timesteps: int = 50
    beta_end: float = 0.5


@dataclass
class DrawSampler(SamplerConfig):
    samples: int = 4


@dataclass
class AppConfig:
    schedule: QuadSchedule = field(default_factory=QuadSchedule)
    sampler: DrawSampler = field(default_factory=DrawSampler)
    width: int = 8


class Net(ConfigurableModule):
    def __init__(self, width: int = 3) -> None:
        super().__init__()
        self.lin = nn.Linear(width, width)

    def forward(self, x, t=None):
        return self.lin(x)


class Other(ConfigurableModule):
    def __init__(self) -> None:
        super().__init__()


# ---- shared tables ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(NAMED_BETAS))
def test_schedule_config_builds_the_named_core_table(name):
    cfg = ScheduleConfig(name=name, timesteps=40, beta_start=2e-4, beta_end=0.03)
    kwargs = {"beta_start": 2e-4, "beta_end": 0.03} if name in ("linear", "sigmoid", "quadratic") else {}
    expected = DiscreteVP.named(name, 40, **kwargs)
    assert cfg.build().T == 40
    assert np.array_equal(np.asarray(cfg.build().betas), np.asarray(expected.betas))


def test_schedule_config_linear_default_is_ddpm():
    betas = np.asarray(ScheduleConfig().build().betas)
    np.testing.assert_allclose(betas, np.linspace(1e-4, 0.02, 1000), rtol=0, atol=1e-15)


def test_subclass_defaults_survive_a_partial_table():
    """A TOML/stored table that sets one key keeps the app's other defaults (why apps subclass)."""
    cfg = from_dict(AppConfig, {"schedule": {"timesteps": 100}, "sampler": {"steps": 7}})
    assert (cfg.schedule.name, cfg.schedule.timesteps, cfg.schedule.beta_end) == ("quadratic", 100, 0.5)
    assert (cfg.sampler.steps, cfg.sampler.samples, cfg.sampler.method) == (7, 4, "dpm++2m")
    betas = np.asarray(cfg.schedule.build().betas)
    np.testing.assert_allclose(betas, np.linspace(1e-2, 0.5**0.5, 100) ** 2, rtol=1e-12)


@pytest.mark.parametrize(
    "override, message",
    [
        ("schedule.name=zigzag", "schedule.name: expected one of"),
        ("schedule.timesteps=0", "schedule.timesteps: expected an integer >= 1, got 0"),
        ("schedule.beta_end=1.5", "schedule.beta_end"),
        ("sampler.steps=0", "sampler.steps: expected an integer >= 1, got 0"),
        ("sampler.batch_size=-2", "sampler.batch_size"),
        ("sampler.seed=-1", "sampler.seed: expected an integer >= 0"),
        ("sampler.method= ", "sampler.method: expected a name"),
    ],
)
def test_shared_tables_name_the_bad_key(override, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        load_config(AppConfig, None, [override])


def test_beta_order_is_checked_when_built_not_halfway_through_overrides():
    cfg = load_config(AppConfig, None, ["schedule.beta_start=0.6", "schedule.beta_end=0.7"])  # 0.6 > 0.5 between
    assert cfg.schedule.build().T == 50
    bad = load_config(AppConfig, None, ["schedule.beta_start=0.6"])
    with pytest.raises(ValueError, match=r"schedule.beta_end: expected >= schedule.beta_start = 0.6, got 0.5"):
        bad.schedule.build()


def test_sampler_kwargs_feed_core_sample():
    assert DrawSampler(method="ddim", steps=9, grid="logsnr").sample_kwargs() == {
        "method": "ddim", "steps": 9, "grid": "logsnr"}


# ---- the stored run config ------------------------------------------------------------------------------------------


def test_run_config_round_trips_and_takes_overrides(tmp_path):
    cfg = load_config(AppConfig, None, ["schedule.timesteps=77", "sampler.samples=2", "width=5"])
    save_run_config(tmp_path, cfg)
    record = json.loads((tmp_path / RUN_CONFIG_NAME).read_text())
    assert record["class"].endswith(":AppConfig") and record["config"]["schedule"]["timesteps"] == 77
    assert load_run_config(tmp_path, AppConfig) == cfg
    again = load_run_config(tmp_path, AppConfig, ["sampler.steps=3"])
    assert again.sampler.steps == 3 and again.schedule.timesteps == 77 and again.width == 5


def test_run_config_refuses_another_class_and_bad_files(tmp_path):
    save_run_config(tmp_path, AppConfig())
    with pytest.raises(ValueError, match="holds a AppConfig, expected a TrainConfig"):
        load_run_config(tmp_path, TrainConfig)
    (tmp_path / RUN_CONFIG_NAME).write_text('{"format": "x"}')
    with pytest.raises(ValueError, match="not an omnidiffusion run config"):
        load_run_config(tmp_path, AppConfig)
    (tmp_path / RUN_CONFIG_NAME).write_text("{nope")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_run_config(tmp_path, AppConfig)
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_run_config(tmp_path / "missing", AppConfig)
    with pytest.raises(ValueError, match="must be a dataclass instance, got dict"):
        save_run_config(tmp_path, {"width": 3})


def test_run_config_checks_every_stored_key(tmp_path):
    save_run_config(tmp_path, AppConfig())
    record = json.loads((tmp_path / RUN_CONFIG_NAME).read_text())
    record["config"]["sampler"]["stepz"] = 3
    (tmp_path / RUN_CONFIG_NAME).write_text(json.dumps(record))
    with pytest.raises(ValueError, match=r"run_config.json: unknown config key 'stepz' in \[sampler\]"):
        load_run_config(tmp_path, AppConfig)


def test_open_pretrained_loads_model_config_and_metadata(tmp_path):
    net = Net(width=4)
    save_pretrained(net, tmp_path, metadata={"kind": "net"})
    save_run_config(tmp_path, AppConfig(width=4))
    p = open_pretrained(tmp_path, Net, config_cls=AppConfig, device="cpu")
    assert isinstance(p.model, Net) and not p.model.training and p.device == torch.device("cpu")
    assert p.metadata == {"kind": "net"} and p.config == AppConfig(width=4)
    assert torch.equal(p.model.lin.weight, net.lin.weight)
    assert open_pretrained(tmp_path, Net).config is None  # no config_cls: the model alone
    with pytest.raises(ValueError, match="refusing to import"):  # a class outside omnidiffusion, not asked for
        open_pretrained(tmp_path)


def test_open_pretrained_errors_name_what_was_expected(tmp_path):
    save_pretrained(Net(), tmp_path / "m")
    what = "a checkpoint written by `omnidiffusion-test train`"
    with pytest.raises(FileNotFoundError, match=r"no such directory \(expected a checkpoint written by"):
        open_pretrained(tmp_path / "nope", Net, what=what)
    (tmp_path / "f").write_text("x")
    with pytest.raises(FileNotFoundError, match="is a file"):
        open_pretrained(tmp_path / "f", Net, what=what)
    with pytest.raises(FileNotFoundError, match="holds no config.json"):
        open_pretrained(tmp_path, Net, what=what)
    with pytest.raises(ValueError, match="holds a Net, expected a Other"):
        open_pretrained(tmp_path / "m", Other, what=what)
    with pytest.raises(FileNotFoundError, match="run_config.json: no such file"):
        open_pretrained(tmp_path / "m", Net, config_cls=AppConfig)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="^device: "):
            open_pretrained(tmp_path / "m", Net, device="cuda")


# ---- the CLI contract -----------------------------------------------------------------------------------------------


def _cli(calls: list) -> AppCLI:
    cli = AppCLI("omnidiffusion-test", "Test app.")
    cli.add_command("train", lambda a, c: calls.append((a, c)), AppConfig, help="train",
                    out=("runs/test", "checkpoint directory"), resume=True)
    cli.add_command("sample", lambda a, c: calls.append((a, c)), AppConfig, help="sample", checkpoint="required",
                    out=("grid.png", "image file"))
    cli.add_command("convert", lambda a, c: calls.append((a, c)), AppConfig, help="convert files", device=False)
    return cli


def test_common_flags_are_declared_once_in_core(capsys):
    cli = _cli([])
    helps = {}
    for cmd in ("train", "sample", "convert"):
        assert cli.main([cmd, "--help"]) == 0
        helps[cmd] = capsys.readouterr().out
    for flag in ("--config", "--set", "--print-config"):
        assert all(flag in h for h in helps.values())
    assert "--device" in helps["train"] and "--threads" in helps["sample"] and "--device" not in helps["convert"]
    assert "--resume" in helps["train"] and "--checkpoint" not in helps["train"]
    assert "--checkpoint" in helps["sample"] and "--resume" not in helps["sample"]


def test_defaults_of_the_common_flags():
    calls: list = []
    assert _cli(calls).main(["train"]) == 0
    args, cfg = calls[0]
    assert args.out == "runs/test" and args.resume is None and args.device.type in ("cpu", "cuda")
    assert cfg == AppConfig()
    assert _cli(calls).main(["train", "--no-resume", "--threads", "1"]) == 0
    assert calls[1][0].resume is False and torch.get_num_threads() == 1


def test_checkpoint_commands_start_from_the_stored_config(tmp_path, capsys):
    save_run_config(tmp_path, load_config(AppConfig, None, ["sampler.steps=11", "width=6"]))
    calls: list = []
    assert _cli(calls).main(["sample", "--checkpoint", str(tmp_path), "--set", "sampler.samples=9"]) == 0
    cfg = calls[0][1]
    assert (cfg.sampler.steps, cfg.sampler.samples, cfg.width) == (11, 9, 6)
    assert _cli(calls).main(["sample", "--checkpoint", str(tmp_path), "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out)["sampler"]["steps"] == 11


def test_checkpoint_without_a_stored_config_uses_the_config_file(tmp_path):
    """A folder without run_config.json (e.g. a diffusers export) starts from --config / the defaults."""
    calls: list = []
    assert _cli(calls).main(["sample", "--checkpoint", str(tmp_path), "--set", "width=2"]) == 0
    assert calls[0][1] == AppConfig(width=2)


def test_checkpoint_contract_errors(tmp_path, cli_error):
    save_run_config(tmp_path, AppConfig())
    toml = tmp_path / "c.toml"
    toml.write_text("width = 3\n")
    cli = _cli([])
    cli_error(cli, ["sample", "--checkpoint", tmp_path, "--config", toml], "--config: not used with --checkpoint")
    cli_error(cli, ["sample", "--checkpoint", tmp_path / "nope"], "--checkpoint:", "no such directory")
    cli_error(cli, ["sample", "--checkpoint", tmp_path, "--set", "sampler.steps=0"], "sampler.steps")
    cli_error(cli, ["sample"], "--checkpoint")  # required
    cli_error(cli, ["train", "--threads", "0"], "--threads")


# ---- model and process helpers ------------------------------------------------------------------------------------


def test_unwrap_model_sees_through_wrappers_only():
    net = Net()
    assert unwrap_model(net) is net
    assert unwrap_model(nn.DataParallel(net)) is net
    assert unwrap_model(AveragedModel(net)).lin.weight.shape == net.lin.weight.shape
    holder = nn.Module()
    holder.module = net  # an ordinary attribute named `module` is not a wrapper
    assert unwrap_model(holder) is holder


def test_is_main_process_without_torchrun(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    assert is_main_process() is True


def test_is_main_process_reads_the_launcher_rank_outside_a_process_group(monkeypatch):
    """After fit has torn down the group it made, rank 1 of a torchrun job must still not print the summary."""
    monkeypatch.setenv("RANK", "1")
    assert is_main_process() is False
    monkeypatch.setenv("RANK", "0")
    assert is_main_process() is True


def test_fit_stores_the_run_config_beside_the_final_weights(tmp_path):
    data = torch.randn(16, 3)
    cfg = AppConfig(width=3)
    result = fit(Net(), lambda m, x: m(x).pow(2).mean(), data, TrainConfig(steps=2, batch_size=8, progress=False),
                 tmp_path, run_config=cfg)
    assert load_run_config(tmp_path, AppConfig) == cfg
    p = open_pretrained(tmp_path, Net, config_cls=AppConfig)
    assert torch.equal(p.model.lin.weight, result.final_model.lin.weight)
    assert result.final_model is unwrap_model(result.ema_model or result.model)


def test_saved_run_config_path_is_returned(tmp_path):
    assert save_run_config(tmp_path / "new", AppConfig()) == Path(tmp_path / "new" / RUN_CONFIG_NAME)
