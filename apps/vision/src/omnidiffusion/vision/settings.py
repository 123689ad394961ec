"""The one config dataclass of the vision app, read from TOML by core's `load_config` (`--set a.b=value`).

    [model]      the core UNet's width/depth (in/out channels and resolution follow the data)
    [schedule]   the discrete VP schedule the model is trained with (DiscreteVP.named(name, T, ...))
    [data]       which images to train on and how they are cropped / degraded
    [train]      core's TrainConfig (steps, batch size, lr, EMA, AMP, checkpoints, device)
    [sample]     sampler used by upscale / sample / evaluate (method, steps, grid)
    [repaint]    RePaint's resampling schedule (steps, jump_length, jump_n_sample)
    [inverse]    zero-shot restoration: solver, steps, sigma_y and the solvers' options (inverse/)
    [seg]        segmentation: mask diffusion, its UNet baseline, DDPM-Seg (segmentation/settings.py)
    [points]     the point-cloud DDPM (points/settings.py)
    [anomaly]    AnoDDPM anomaly detection (anomaly/settings.py)

`task` picks what `train` builds: "ddpm" (unconditional image DDPM), "sr3" (Saharia et al. 2021) or
"regression" (the same UNet trained with L2 to map the upsampled low-resolution image to the high-resolution one,
SR3's regression baseline), "segdiff" / "seg-unet" / "ddpm-seg" (segmentation), "points" (point clouds) or
"anomaly" (AnoDDPM's DDPM on anomaly-free images).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from omnidiffusion.core.checks import non_negative_int, positive_int, real_number
from omnidiffusion.core.training import TrainConfig

from .anomaly.settings import AnomalySettings
from .points.settings import PointsSettings
from .segmentation.settings import SegSettings

PACKAGE = "omnidiffusion.vision"


@dataclass
class ModelSettings:
    """Core `nn.UNet` hyper-parameters (see omnidiffusion.core.nn.UNet)."""

    base_channels: int = 32
    channel_mults: list[int] = field(default_factory=lambda: [1, 2, 2])
    num_res_blocks: int = 1
    attention_resolutions: list[int] = field(default_factory=list)
    dropout: float = 0.0
    norm_groups: int = 8
    num_heads: int = 1
    gradient_checkpointing: bool = False

    def unet_kwargs(self) -> dict:
        return {
            "base_channels": self.base_channels,
            "channel_mults": list(self.channel_mults),
            "num_res_blocks": self.num_res_blocks,
            "attention_resolutions": list(self.attention_resolutions),
            "dropout": self.dropout,
            "norm_groups": self.norm_groups,
            "num_heads": self.num_heads,
            "gradient_checkpointing": self.gradient_checkpointing,
        }


@dataclass
class ScheduleSettings:
    """A DiscreteVP beta table: name in linear | cosine | sqrt | sigmoid | quadratic, T steps."""

    name: str = "linear"
    T: int = 1000
    beta_start: float = 1e-4  # linear / sigmoid / quadratic only
    beta_end: float = 0.02

    def to_dict(self) -> dict:
        return {"name": self.name, "T": self.T, "beta_start": self.beta_start, "beta_end": self.beta_end}


@dataclass
class DataSettings:
    """Training images. source: digits | faces | lfw (the training faces and lfw_subset's non-face patches) |
    photos | folder (PNG/JPEG files under `folder`)."""

    source: Literal["digits", "faces", "lfw", "photos", "folder"] = "digits"
    folder: str = ""
    image_size: int = 16  # training crop side (HR side for SR)
    channels: int = 1  # 1 = grayscale, 3 = RGB
    scale: int = 4  # SR factor: LR side = image_size / scale
    hflip: bool = True  # random horizontal flips
    photo_crops: int = 512  # crops drawn from the sample photographs when source = "photos"


@dataclass
class SampleSettings:
    """The sampler of upscale / sample / evaluate: core `sample(method, steps, grid)`; `samples` averaged (SR).

    `tile` (SR3 only): "auto" runs the network on overlapping tiles when the output is too large for one call
    (announced on stderr), 0 never tiles, a positive multiple of the UNet's factor is the tile side in HR pixels.
    """

    method: str = "dpm++2m"
    steps: int = 25
    grid: str = "trailing"
    samples: int = 1
    seed: int = 0
    batch_size: int = 64
    tile: int | Literal["auto"] = "auto"

    def __post_init__(self) -> None:
        for name in ("steps", "samples", "batch_size"):
            positive_int(getattr(self, name), f"sample.{name}")
        non_negative_int(self.seed, "sample.seed")
        if self.tile != "auto":
            non_negative_int(self.tile, "sample.tile")


@dataclass
class RepaintSettings:
    """RePaint (Lugmayr et al. 2022): `steps` reverse steps, jump back `jump_length`, `jump_n_sample` rounds."""

    steps: int = 100
    jump_length: int = 5
    jump_n_sample: int = 5
    samples: int = 1  # inpaintings averaged per image (the mean estimates the posterior mean)
    seed: int = 0
    batch_size: int = 64

    def __post_init__(self) -> None:
        for name in ("steps", "jump_length", "jump_n_sample", "samples", "batch_size"):
            positive_int(getattr(self, name), f"repaint.{name}")
        non_negative_int(self.seed, "repaint.seed")


@dataclass
class InverseSettings:
    """Zero-shot restoration (`restore`, `evaluate --task inverse`): solver ddnm | ddnm+ | dps | repaint | sdedit.

    sigma_y is the measurement noise std in pixel units ([0, 1] images); eta: DDNM's DDIM eta; zeta: DPS's step
    (zeta'); t0: SDEdit's start time; jump_length / jump_n_sample: RePaint's j and r; blur_sigma: deblur's
    Gaussian std (px); downsample: sr4's operator, "box" (4x4 mean) or "bicubic" (anti-aliased).
    """

    solver: Literal["ddnm", "ddnm+", "dps", "repaint", "sdedit"] = "ddnm"
    steps: int = 50
    sigma_y: float = 0.0
    eta: float = 0.85
    zeta: float = 0.5
    t0: float = 0.5
    jump_length: int = 5
    jump_n_sample: int = 2
    blur_sigma: float = 2.0
    downsample: Literal["box", "bicubic"] = "box"
    seed: int = 0
    batch_size: int = 64

    def __post_init__(self) -> None:
        for name in ("steps", "jump_length", "jump_n_sample", "batch_size"):
            positive_int(getattr(self, name), f"inverse.{name}")
        non_negative_int(self.seed, "inverse.seed")
        real_number(self.sigma_y, "inverse.sigma_y", low=0.0)
        real_number(self.eta, "inverse.eta", low=0.0, high=1.0)
        real_number(self.zeta, "inverse.zeta", low=0.0)
        real_number(self.t0, "inverse.t0", low=0.0, high=1.0, low_open=True)
        real_number(self.blur_sigma, "inverse.blur_sigma", low=0.0, low_open=True)

    def solver_options(self, solver: str) -> dict:
        """The options of `solver` among these settings."""
        return {
            "ddnm": {"eta": self.eta},
            "ddnm+": {"eta": self.eta},
            "dps": {"zeta": self.zeta},
            "repaint": {"jump_length": self.jump_length, "jump_n_sample": self.jump_n_sample},
            "sdedit": {"t0": self.t0},
        }[solver]


@dataclass
class VisionConfig:
    """Everything `omnidiffusion-vision` reads; see the module docstring for the sections."""

    task: Literal["ddpm", "sr3", "regression", "segdiff", "seg-unet", "ddpm-seg", "points", "anomaly"] = "ddpm"
    prediction: Literal["eps", "x0", "v"] = "eps"
    loss: Literal["l1", "l2"] = "l2"
    out: str = "runs/vision/ddpm-digits"
    model: ModelSettings = field(default_factory=ModelSettings)
    schedule: ScheduleSettings = field(default_factory=ScheduleSettings)
    data: DataSettings = field(default_factory=DataSettings)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleSettings = field(default_factory=SampleSettings)
    repaint: RepaintSettings = field(default_factory=RepaintSettings)
    inverse: InverseSettings = field(default_factory=InverseSettings)
    seg: SegSettings = field(default_factory=SegSettings)
    points: PointsSettings = field(default_factory=PointsSettings)
    anomaly: AnomalySettings = field(default_factory=AnomalySettings)


def load_vision_config(
    name_or_path: str | None = "ddpm-digits", overrides: tuple[str, ...] | list[str] = ()
) -> VisionConfig:
    """A bundled config by name (ddpm-digits, ddpm-faces, sr3-faces, ...) or a TOML file, plus `a.b=value` overrides."""
    from omnidiffusion.core.config import load_config

    return load_config(VisionConfig, name_or_path, list(overrides), package=PACKAGE)
