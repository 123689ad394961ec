"""The config of `omnidiffusion-purification`, read from TOML by core's `load_config` (`--set a.b=value`).

Sections: `data` (what to classify and purify), `classifier` (architecture, or weights to load), `train` (core
TrainConfig for the classifier), `diffusion` (the vision DDPM config used by `train`), `sampler` (DiffPure: t*,
solver, steps, noise seed), `attack` (attack hyper-parameters) and `evaluate` (what `evaluate` runs). Purification
has no `[schedule]`: the diffusion model's table comes with it (a vision config, or a diffusers folder).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from omnidiffusion.core import GRIDS
from omnidiffusion.core.checks import non_negative_int, positive_int, real_number
from omnidiffusion.core.config import load_config
from omnidiffusion.core.settings import SamplerConfig
from omnidiffusion.core.training import TrainConfig

from .attacks import ATTACK_PLANS, AttackConfig
from .wideresnet import parse_wrn

PACKAGE = "omnidiffusion.purification"


@dataclass
class DataConfig:
    """source: "digits" (bundled), "cifar10" (the binary version under `root`), an ImageFolder path, or
    "torchvision:NAME:ROOT" (already on disk). root: the folder holding cifar-10-batches-bin."""

    source: str = "digits"
    image_size: int = 16
    channels: int = 1
    root: str | None = None

    def __post_init__(self) -> None:
        if not self.source:
            raise ValueError(
                "data.source: expected 'digits', 'cifar10', a folder path or 'torchvision:NAME:ROOT', got ''"
            )
        low = 8 if self.source == "digits" else 1  # the digits are 8x8, upsampled
        positive_int(self.image_size, "data.image_size" + (" (the digits are 8x8)" if low == 8 else ""), minimum=low)
        if self.channels not in (1, 3) or isinstance(self.channels, bool):
            raise ValueError(f"data.channels: expected 1 (grey) or 3 (RGB), got {self.channels!r}")


@dataclass
class ClassifierConfig:
    """arch: "small-cnn" (SmallCNN), "wrn-D-K" (WideResNet-D-K, e.g. "wrn-28-10") or a torchvision.models builder
    name ("resnet18", ...). weights: the classifier `evaluate` defends: a train-classifier directory or a weight
    file for `arch` (.safetensors, or .pt/.pth read weights-only); none = the checkpoint's own classifier/."""

    arch: str = "small-cnn"
    width: int = 16
    num_classes: int = 10
    weights: str | None = None

    def __post_init__(self) -> None:
        positive_int(self.width, "classifier.width")
        positive_int(self.num_classes, "classifier.num_classes", minimum=2)
        if not isinstance(self.arch, str) or not self.arch:
            raise ValueError(
                f"classifier.arch: expected 'small-cnn', 'wrn-D-K' or a torchvision name, got {self.arch!r}"
            )
        if self.arch.startswith("wrn"):
            wrn = parse_wrn(self.arch)
            if wrn is None or wrn[0] < 10 or (wrn[0] - 4) % 6 or wrn[1] < 1:
                raise ValueError(
                    f"classifier.arch: expected 'wrn-D-K' with depth D = 6n + 4 >= 10 and width K >= 1 "
                    f"(e.g. 'wrn-28-10'), got {self.arch!r}"
                )


@dataclass
class DiffusionConfig:
    """The unconditional DDPM `train` fits through omnidiffusion.vision (a vision config name plus overrides)."""

    vision_config: str = "ddpm-digits"
    overrides: list[str] = field(default_factory=list)


@dataclass
class PurifyConfig(SamplerConfig):
    """DiffPure's `[sampler]`: t* in [0, 1), solver, steps (none = the paper's dt = 1e-3), time grid, noise seed,
    images per purifier call, gradient checkpointing for the full-gradient attacks."""

    method: Literal["sde", "ddpm", "ode", "dpm++2m"] = "sde"
    steps: int | None = None
    grid: str = "time-uniform"
    seed: int = 0
    batch_size: int = 128
    t_star: float = 0.1
    checkpointing: bool = False

    def __post_init__(self) -> None:
        # Not SamplerConfig's checks: steps may be none here, and the methods are DiffPure's, not core.sample's.
        real_number(self.t_star, "sampler.t_star", low=0.0, high=1.0, high_open=True)
        if self.steps is not None:
            positive_int(self.steps, "sampler.steps (none = the paper's dt = 1e-3)")
        if self.grid not in GRIDS:
            raise ValueError(f"sampler.grid: expected one of {sorted(GRIDS)}, got {self.grid!r}")
        non_negative_int(self.seed, "sampler.seed")
        positive_int(self.batch_size, "sampler.batch_size")


@dataclass
class EvaluateConfig:
    """Attacks (pgd, eot-pgd, bpda-eot, apgd, autoattack), budgets, test size, repeated purifications, seed."""

    attacks: list[str] = field(default_factory=lambda: ["pgd"])
    eps: list[float] = field(default_factory=lambda: [0.1])
    norm: Literal["linf", "l2"] = "linf"
    n: int = 100
    eval_runs: int = 1
    batch_size: int = 64
    seed: int = 0
    t_stars: list[float] = field(default_factory=list)  # extra t* values for the sweep plot (transfer attack)
    subset_seed: int | None = None  # none: the first n test images; a seed: n drawn at random without replacement

    def __post_init__(self) -> None:
        for a in self.attacks:
            if a not in ATTACK_PLANS:
                raise ValueError(f"evaluate.attacks: expected names from {sorted(ATTACK_PLANS)}, got {a!r}")
        if not self.attacks:
            raise ValueError("evaluate.attacks: expected at least one attack name, got []")
        if not self.eps:
            raise ValueError("evaluate.eps: expected at least one perturbation budget, got []")
        for e in self.eps:
            real_number(e, "evaluate.eps", low=0.0, low_open=True)
        positive_int(self.n, "evaluate.n")
        positive_int(self.eval_runs, "evaluate.eval_runs")
        positive_int(self.batch_size, "evaluate.batch_size")
        non_negative_int(self.seed, "evaluate.seed")
        for t in self.t_stars:
            real_number(t, "evaluate.t_stars", low=0.0, high=1.0, high_open=True)
        if self.subset_seed is not None:
            non_negative_int(self.subset_seed, "evaluate.subset_seed (none = the first n test images)")


@dataclass
class PurificationConfig:
    """Everything `omnidiffusion-purification` reads."""

    data: DataConfig = field(default_factory=DataConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    sampler: PurifyConfig = field(default_factory=PurifyConfig)
    attack: AttackConfig = field(default_factory=AttackConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)


def load_purification_config(name_or_path: str | None = "digits", overrides: list[str] | tuple[str, ...] = ()):
    """A bundled config by name ("digits", "cifar10-paper") or a TOML file, plus 'a.b=value' overrides."""
    return load_config(PurificationConfig, name_or_path, list(overrides), package=PACKAGE)


__all__ = [
    "ClassifierConfig",
    "DataConfig",
    "DiffusionConfig",
    "EvaluateConfig",
    "PurificationConfig",
    "PurifyConfig",
    "load_purification_config",
]
