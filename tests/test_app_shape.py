"""Issue 18's acceptance: the same file names, class names, config keys and common flags in every app.

A person who learns one app should find everything at the same place in the next; this reads every installed
app and fails on the first one that drifts (see docs/ARCHITECTURE.md)."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from pathlib import Path
from typing import get_type_hints

import pytest

from omnidiffusion.core.cli import AppCLI
from omnidiffusion.core.settings import SamplerConfig, ScheduleConfig

ROOT = Path(__file__).resolve().parents[1]
APPS = ("vision", "text", "audio", "molecules", "timeseries", "purification", "multimodal")
INSTALLED = [a for a in APPS if (ROOT / "apps" / a / "src" / "omnidiffusion" / a / "__init__.py").exists()]
FILES = ("settings.py", "training.py", "pipeline.py", "cli.py", "data.py", "metrics.py", "evaluation.py")
# Purification purifies with a DDPM that vision trains (its `[diffusion]` table names a vision config): it has no
# diffusion table of its own.
NO_SCHEDULE = {"purification"}


def _root_config(app: str) -> type:
    settings = importlib.import_module(f"omnidiffusion.{app}.settings")
    name = f"{app.capitalize()}Config"
    assert hasattr(settings, name), f"omnidiffusion.{app}.settings has no root class {name}"
    return getattr(settings, name)


def _config_classes(cls: type, seen: dict[str, type] | None = None) -> dict[str, type]:
    """Every dataclass reachable from `cls` through its fields (lists and unions included)."""
    seen = {} if seen is None else seen
    seen[cls.__qualname__] = cls
    stack = list(get_type_hints(cls).values())
    while stack:
        tp = stack.pop()
        stack.extend(getattr(tp, "__args__", ()))
        if dataclasses.is_dataclass(tp) and tp.__qualname__ not in seen:
            _config_classes(tp, seen)
    return seen


@pytest.mark.parametrize("app", INSTALLED)
def test_same_files(app):
    folder = ROOT / "apps" / app / "src" / "omnidiffusion" / app
    missing = [f for f in FILES if not (folder / f).is_file()]
    assert not missing, f"omnidiffusion.{app} lacks {missing}"
    assert not (folder / "config.py").exists() and not (folder / "train.py").exists()


# Vision's trained tasks nest the app shape in a subpackage each; `inverse` holds zero-shot solvers that run on any
# trained image model, so it has no settings, training or data of its own (its [inverse] table is in vision's).
VISION_TASKS = {"segmentation": FILES, "points": FILES, "anomaly": FILES, "inverse": ("cli.py", "evaluation.py")}


@pytest.mark.parametrize("task", sorted(VISION_TASKS))
def test_vision_tasks_nest_the_same_files(task):
    folder = ROOT / "apps" / "vision" / "src" / "omnidiffusion" / "vision" / task
    missing = [f for f in VISION_TASKS[task] if not (folder / f).is_file()]
    assert not missing, f"omnidiffusion.vision.{task} lacks {missing}"
    cli = importlib.import_module(f"omnidiffusion.vision.{task}.cli")
    for name in ("register", "evaluate") + (("TRAINS", "train") if "training.py" in VISION_TASKS[task] else ()):
        assert hasattr(cli, name), f"omnidiffusion.vision.{task}.cli has no {name} (the EXTRA_TASKS seam)"


@pytest.mark.parametrize("app", INSTALLED)
def test_config_class_names_and_shared_tables(app):
    root = _root_config(app)
    own = {n: c for n, c in _config_classes(root).items() if c.__module__.startswith(f"omnidiffusion.{app}")}
    bad = sorted(n for n in own if not n.endswith("Config"))
    assert not bad, f"omnidiffusion.{app}: config classes not named *Config: {bad}"
    fields = get_type_hints(root)
    assert issubclass(fields.get("sampler", object), SamplerConfig), f"{root.__name__}.sampler: not a SamplerConfig"
    if app not in NO_SCHEDULE:
        assert issubclass(fields.get("schedule", object), ScheduleConfig), f"{root.__name__}.schedule"
    assert "out" not in fields, f"{root.__name__}.out: the output location is the --out flag"


@pytest.mark.parametrize("app", INSTALLED)
def test_train_signature(app):
    train = importlib.import_module(f"omnidiffusion.{app}.training").train
    params = inspect.signature(train).parameters
    assert list(params)[:2] == ["config", "out_dir"], list(params)
    assert params["resume"].kind is inspect.Parameter.KEYWORD_ONLY and params["resume"].default is None


def _options(parser) -> dict[str, str]:
    return {opt: action.dest for action in parser._actions for opt in action.option_strings}


@pytest.mark.parametrize("app", INSTALLED)
def test_common_flags_and_no_flag_shadows_a_config_key(app):
    cli = importlib.import_module(f"omnidiffusion.{app}.cli").cli
    assert isinstance(cli, AppCLI)
    root = _root_config(app)
    sampler_keys = {f.name for f in dataclasses.fields(get_type_hints(root)["sampler"])}
    for name, (config_cls, parser) in cli.commands.items():
        opts = _options(parser)
        where = f"omnidiffusion-{app} {name}"
        assert config_cls is root, f"{where}: runs on {config_cls.__name__}, expected the root {root.__name__}"
        for flag in ("--config", "--set", "--print-config"):
            assert flag in opts, f"{where} lacks {flag}"
        if "--device" in opts:
            assert "--threads" in opts and parser.get_default("device") == "auto", where
        if name.startswith("train"):
            assert "--out" in opts and "--resume" in opts and "--device" in opts, f"{where}: --out/--resume/--device"
        shadow = sorted(f for f, dest in opts.items() if dest in sampler_keys)
        assert not shadow, f"{where}: flags {shadow} stand for sampler keys; use --set sampler.<key>"


@pytest.mark.parametrize("app", INSTALLED)
def test_inference_commands_take_a_checkpoint(app):
    """Every command that runs a trained model starts from its checkpoint (the run-config contract)."""
    cli = importlib.import_module(f"omnidiffusion.{app}.cli").cli
    verbs = [n for n in cli.commands if not n.startswith("train") and "--device" in _options(cli.commands[n][1])]
    assert verbs, f"omnidiffusion-{app}: no inference command found"
    lacking = [n for n in verbs if "--checkpoint" not in _options(cli.commands[n][1])]
    assert not lacking, f"omnidiffusion-{app}: {lacking} run a model without --checkpoint"


@pytest.mark.parametrize("app", INSTALLED)
def test_data_location_is_data_root(app):
    """Where a user's dataset lives is `data.root` in every app (issue 24's `--set data.root=DIR`)."""
    table = get_type_hints(_root_config(app))["data"]
    names = {f.name for f in dataclasses.fields(table)}
    assert "root" in names, f"omnidiffusion.{app}: [data] has no root key ({sorted(names)})"
    assert not names & {"folder", "path", "data_dir", "dir"}, f"omnidiffusion.{app}: [data] names its location twice"
