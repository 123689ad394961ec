"""The config of `omnidiffusion-purification`, read from TOML by core's `load_config` (`--set a.b=value`).

Sections: `data` (what to classify and purify), `classifier` (architecture), `train` (core TrainConfig for the
classifier), `diffusion` (the vision DDPM config used by `train`), `purify` (DiffPure), `attack` (attack
hyper-parameters) and `evaluate` (what `evaluate` runs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from omnidiffusion.core.config import load_config
from omnidiffusion.core.training import TrainConfig

from .attacks import AttackConfig

PACKAGE = "omnidiffusion.purification"


@dataclass
class DataSettings:
    """source: "digits" (bundled), an ImageFolder path, or "torchvision:NAME:ROOT" (already on disk)."""

    source: str = "digits"
    image_size: int = 16
    channels: int = 1


@dataclass
class ClassifierSettings:
    """arch: "small-cnn" (SmallCNN) or a torchvision.models builder name ("resnet18", ...)."""

    arch: str = "small-cnn"
    width: int = 16
    num_classes: int = 10


@dataclass
class DiffusionSettings:
    """The unconditional DDPM `train` fits through omnidiffusion.vision (a vision config name plus overrides)."""

    vision_config: str = "ddpm-digits"
    overrides: list[str] = field(default_factory=list)


@dataclass
class PurifySettings:
    """DiffPure: t* in [0, 1), solver, steps (0 = the paper's dt = 1e-3), time grid, noise seed."""

    t_star: float = 0.1
    method: Literal["sde", "ddpm", "ode", "dpm++2m"] = "sde"
    steps: int = 0
    grid: str = "time-uniform"
    checkpointing: bool = False
    seed: int = 0
    batch_size: int = 128


@dataclass
class EvaluateSettings:
    """Attacks (pgd, eot-pgd, bpda-eot, apgd, autoattack), budgets, test size, repeated purifications, seed."""

    attacks: list[str] = field(default_factory=lambda: ["pgd"])
    eps: list[float] = field(default_factory=lambda: [0.1])
    norm: Literal["linf", "l2"] = "linf"
    n: int = 100
    eval_runs: int = 1
    batch_size: int = 64
    seed: int = 0
    t_stars: list[float] = field(default_factory=list)  # extra t* values for the sweep plot (transfer attack)


@dataclass
class PurificationConfig:
    """Everything `omnidiffusion-purification` reads."""

    out: str = "runs/purification/digits"
    data: DataSettings = field(default_factory=DataSettings)
    classifier: ClassifierSettings = field(default_factory=ClassifierSettings)
    train: TrainConfig = field(default_factory=TrainConfig)
    diffusion: DiffusionSettings = field(default_factory=DiffusionSettings)
    purify: PurifySettings = field(default_factory=PurifySettings)
    attack: AttackConfig = field(default_factory=AttackConfig)
    evaluate: EvaluateSettings = field(default_factory=EvaluateSettings)


def load_purification_config(name_or_path: str | None = "digits", overrides: list[str] | tuple[str, ...] = ()):
    """A bundled config by name ("digits", "cifar10-paper") or a TOML file, plus 'a.b=value' overrides."""
    return load_config(PurificationConfig, name_or_path, list(overrides), package=PACKAGE)


__all__ = [
    "ClassifierSettings",
    "DataSettings",
    "DiffusionSettings",
    "EvaluateSettings",
    "PurificationConfig",
    "PurifySettings",
    "load_purification_config",
]
