"""Configs as dataclasses (TOML files under configs/, `--set a.b=value` overrides through core.config).

`tiny` is the smoke-test config, `default` trains on the bundled scenes on a 2-core CPU in minutes, `paper` has
LDM-style hyper-parameters at 32x32 (Rombach et al. 2022: KL-f4 autoencoder, 4 latent channels, scaled-linear
1000-step schedule, lr 1e-4 ... ; GLIDE's 10% caption dropout), documented and not run in CI.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omnidiffusion.core import GRIDS, METHODS, DiscreteVP
from omnidiffusion.core.checks import non_negative_int, positive_int, real_number
from omnidiffusion.core.config import apply_override, from_dict
from omnidiffusion.core.io import read_json
from omnidiffusion.core.latent import BETAS, latent_schedule
from omnidiffusion.core.settings import SamplerConfig, ScheduleConfig
from omnidiffusion.core.training import TrainConfig

SPACES = ("latent", "pixel")


def _one_of(value: Any, name: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name}: expected one of {', '.join(choices)}, got {value!r}")
    return value


def _ints(values: Any, name: str, minimum: int = 1) -> list[int]:
    if not isinstance(values, list | tuple) or not values:
        raise ValueError(f"{name}: expected a non-empty list of integers, got {values!r}")
    return [positive_int(v, f"{name}[{i}]", minimum=minimum) for i, v in enumerate(values)]


@dataclass
class DataConfig:
    """The bundled scenes: `train_size` training images drawn once with `seed` (held-out pairs excluded)."""

    RENAMED = {"folder": "root"}  # the name before every app called its data location data.root
    train_size: int = 12000
    seed: int = 0
    root: str | None = None  # a folder with captions.csv (file,caption) to train on instead

    def __post_init__(self) -> None:
        positive_int(self.train_size, "data.train_size", minimum=2)
        non_negative_int(self.seed, "data.seed")
        if self.root is not None and (not isinstance(self.root, str) or not self.root.strip()):
            raise ValueError(f"data.root: expected a folder path or none, got {self.root!r}")


@dataclass
class TextConfig:
    """The text encoder: a BERT built from these sizes, or a local transformers folder (`pretrained`)."""

    hidden: int = 64
    layers: int = 2
    heads: int = 4
    max_length: int = 16
    caption_dropout: float = 0.1  # share of captions replaced by "" in training (classifier-free guidance)
    pretrained: str | None = None
    train_encoder: bool = True
    canonical: bool = True  # rewrite captions of the bundled grammar to one order (left object first) before encoding

    def __post_init__(self) -> None:
        if not isinstance(self.canonical, bool):
            raise ValueError(f"text.canonical: expected bool (true/false), got {self.canonical!r}")
        positive_int(self.hidden, "text.hidden")
        positive_int(self.layers, "text.layers")
        positive_int(self.heads, "text.heads")
        positive_int(self.max_length, "text.max_length", minimum=3)
        real_number(self.caption_dropout, "text.caption_dropout", low=0.0, high=1.0, high_open=True)
        if self.hidden % self.heads:
            raise ValueError(f"text.heads: expected a divisor of text.hidden = {self.hidden}, got {self.heads}")


@dataclass
class AutoencoderConfig:
    """The KL autoencoder (latent space only): 32x32x3 -> latent_channels x 8 x 8 with three levels."""

    latent_channels: int = 4
    channels: list[int] = field(default_factory=lambda: [16, 32, 64])
    num_res_blocks: int = 1
    norm_groups: int = 8
    kl_weight: float = 1e-4
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=800, batch_size=32, lr=1e-3, min_lr=1e-4,
                                                                   ema_decay=None, log_every=50, ckpt_every=200))

    def __post_init__(self) -> None:
        positive_int(self.latent_channels, "autoencoder.latent_channels")
        _ints(self.channels, "autoencoder.channels")
        positive_int(self.num_res_blocks, "autoencoder.num_res_blocks")
        positive_int(self.norm_groups, "autoencoder.norm_groups")
        real_number(self.kl_weight, "autoencoder.kl_weight", low=0.0)


@dataclass
class UNetConfig:
    """The denoiser (CrossAttnUNet): where it runs (`space`: the autoencoder's latents or pixels) and its sizes;
    attention_resolutions are feature-map sides."""

    space: str = "latent"
    base_channels: int = 32
    channel_mults: list[int] = field(default_factory=lambda: [1, 2])
    num_res_blocks: int = 1
    attention_resolutions: list[int] = field(default_factory=lambda: [8, 4])
    num_heads: int = 4
    dropout: float = 0.0
    norm_groups: int = 8

    def __post_init__(self) -> None:
        _one_of(self.space, "unet.space", SPACES)
        positive_int(self.base_channels, "unet.base_channels")
        _ints(self.channel_mults, "unet.channel_mults")
        positive_int(self.num_res_blocks, "unet.num_res_blocks")
        _ints(self.attention_resolutions, "unet.attention_resolutions")
        positive_int(self.num_heads, "unet.num_heads")
        positive_int(self.norm_groups, "unet.norm_groups")
        real_number(self.dropout, "unet.dropout", low=0.0, high=1.0, high_open=True)
        for m in self.channel_mults:
            if (self.base_channels * m) % self.norm_groups or (self.base_channels * m) % self.num_heads:
                raise ValueError(f"unet.norm_groups, unet.num_heads: expected divisors of every width "
                                 f"{self.base_channels * m}, got {self.norm_groups}, {self.num_heads}")


@dataclass
class LatentScheduleConfig(ScheduleConfig):
    """The discrete VP table (LDM: "scaled-linear", sqrt-beta linear from 0.00085 to 0.012, T = 1000).

    Names: the tables of `core.latent.latent_schedule` (scaled-linear, linear, cosine), which latent.json
    records; beta_start and beta_end apply to "linear" only (scaled-linear is LDM's fixed table)."""

    name: str = "scaled-linear"

    def __post_init__(self) -> None:
        _one_of(self.name, "schedule.name", BETAS)
        if self.name != "scaled-linear":
            super().__post_init__()
        positive_int(self.timesteps, "schedule.timesteps", minimum=2)

    def build(self) -> DiscreteVP:
        if self.name == "scaled-linear":
            return latent_schedule(self.name, self.timesteps)
        return super().build()


@dataclass
class GuidedSamplerConfig(SamplerConfig):
    """How images are drawn: dpm++2m 20 steps with guidance w (core convention: w = 0 unconditional, 1 plain
    conditional, > 1 guided), `samples` images per prompt; DDPM with 250 steps is the paper-style chain."""

    steps: int = 20
    grid: str = "time-uniform"
    batch_size: int = 256
    guidance_scale: float = 3.0
    samples: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        _one_of(self.method, "sampler.method", tuple(sorted(METHODS)))
        _one_of(self.grid, "sampler.grid", GRIDS)
        real_number(self.guidance_scale, "sampler.guidance_scale", low=0.0)
        positive_int(self.samples, "sampler.samples")


@dataclass
class MultimodalConfig:
    """Everything one `train` run needs (the root of the config tree)."""

    data: DataConfig = field(default_factory=DataConfig)
    text: TextConfig = field(default_factory=TextConfig)
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    unet: UNetConfig = field(default_factory=UNetConfig)
    schedule: LatentScheduleConfig = field(default_factory=LatentScheduleConfig)
    sampler: GuidedSamplerConfig = field(default_factory=GuidedSamplerConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=1500, batch_size=32, lr=1e-3, min_lr=1e-4,
                                                                   ema_decay=0.999, log_every=50, ckpt_every=250))


LEGACY_CONFIG = "multimodal.json"  # where `train` kept the config before run_config.json


def legacy_config(directory: str | Path, overrides: Sequence[str] = ()) -> MultimodalConfig:
    """The config of a run written before run_config.json existed: DIR/multimodal.json, whose [diffusion] table
    (space, betas, T) is now unet.space and [schedule] name, timesteps; then `overrides` ('a.b=value')."""
    stored = read_json(Path(directory) / LEGACY_CONFIG, "the config of a multimodal run (or a run_config.json)")
    if not isinstance(stored, dict):
        raise ValueError(f"{Path(directory) / LEGACY_CONFIG}: expected a JSON object")
    tables = dict(stored)
    diffusion = dict(tables.pop("diffusion", None) or {})
    unet = dict(tables.get("unet") or {})
    if "space" in diffusion:
        unet["space"] = diffusion["space"]
    tables["unet"] = unet
    schedule = {"betas": "name", "T": "timesteps"}
    tables["schedule"] = {schedule.get(k, k): v for k, v in diffusion.items() if k != "space"}
    config = from_dict(MultimodalConfig, tables)
    for override in overrides:
        config = apply_override(config, override)
    return config
