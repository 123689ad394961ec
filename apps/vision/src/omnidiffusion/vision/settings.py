"""The config tree of the vision app, read from TOML by core's `load_config` (`--set a.b=value`).

    [model]      the core UNet's width/depth (in/out channels and resolution follow the data)
    [schedule]   the discrete VP table the model is trained with (core ScheduleConfig: name, timesteps, betas)
    [data]       which images to train on and how they are cropped / degraded
    [train]      core's TrainConfig (steps, batch size, lr, EMA, AMP, checkpoints, device)
    [sampler]    the sampler of upscale / sample / segment / points-* / evaluate (core SamplerConfig + samples, tile)
    [repaint]    RePaint's resampling schedule (steps, jump_length, jump_n_sample)
    [inverse]    zero-shot restoration: solver, steps, sigma_y and the solvers' options (inverse/)
    [seg]        segmentation: mask diffusion, its UNet baseline, DDPM-Seg (segmentation/settings.py)
    [points]     the point-cloud DDPM (points/settings.py)
    [anomaly]    AnoDDPM anomaly detection (anomaly/settings.py)

`task` picks what `train` builds: "ddpm" (unconditional image DDPM), "sr3" (Saharia et al. 2021) or
"regression" (the same UNet trained with L2 to map the upsampled low-resolution image to the high-resolution one,
SR3's regression baseline), "segdiff" / "seg-unet" / "ddpm-seg" (segmentation), "points" (point clouds) or
"anomaly" (AnoDDPM's DDPM on anomaly-free images). Where a run is written is the `--out` flag, not a key.

`train` stores the resolved config beside the weights (run_config.json); checkpoints written before that kept
it, with older key names, in the metadata of config.json: `legacy_config` reads those.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Literal

from omnidiffusion.core.checks import non_negative_int, positive_int, real_number
from omnidiffusion.core.settings import SamplerConfig, ScheduleConfig
from omnidiffusion.core.training import TrainConfig

from .anomaly.settings import AnomalyConfig
from .points.settings import PointsConfig
from .segmentation.settings import SegConfig

PACKAGE = "omnidiffusion.vision"


@dataclass
class ModelConfig:
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
class VisionScheduleConfig(ScheduleConfig):
    """A DiscreteVP beta table: name in linear | cosine | sqrt | sigmoid | quadratic, `timesteps` steps (DDPM's
    linear 1e-4 .. 0.02 over 1000 by default)."""

    def to_dict(self) -> dict:
        """The `schedule` argument of the vision models (ImageDDPM, SR3, SegDiff, PointDiffusionModel)."""
        return {"name": self.name, "timesteps": self.timesteps, "beta_start": self.beta_start,
                "beta_end": self.beta_end}  # fmt: skip


@dataclass
class DataConfig:
    """Training images. source: digits | faces | lfw (the training faces and lfw_subset's non-face patches) |
    photos | folder (PNG/JPEG files under `root`) | cifar10 (the training batches of the binary CIFAR-10,
    `root`/cifar-10-batches-bin, never the pickled python version)."""

    RENAMED = {"folder": "root"}  # the name before every app called its data location data.root

    source: Literal["digits", "faces", "lfw", "photos", "folder", "cifar10"] = "digits"
    root: str = ""
    image_size: int = 16  # training crop side (HR side for SR)
    channels: int = 1  # 1 = grayscale, 3 = RGB
    scale: int = 4  # SR factor: LR side = image_size / scale
    hflip: bool = True  # random horizontal flips
    photo_crops: int = 512  # crops drawn from the sample photographs when source = "photos"
    resize: bool = False  # source = "folder": resize each image to image_size (shorter side) before cropping


@dataclass
class VisionSamplerConfig(SamplerConfig):
    """The sampler of upscale / sample / segment / points-* / evaluate: core `sample(method, steps, grid)` from
    a generator seeded with `seed`, `batch_size` items per network call; `samples` draws averaged (SR).

    `tile` (SR3 only): "auto" runs the network on overlapping tiles when the output is too large for one call
    (announced on stderr), 0 never tiles, a positive multiple of the UNet's factor is the tile side in HR pixels.
    """

    samples: int = 1
    tile: int | Literal["auto"] = "auto"

    def __post_init__(self) -> None:
        super().__post_init__()
        positive_int(self.samples, "sampler.samples")
        if self.tile != "auto":
            non_negative_int(self.tile, "sampler.tile")


@dataclass
class RepaintConfig:
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
class InverseConfig:
    """Zero-shot restoration (`restore`, `evaluate --task inverse`): solver ddnm | ddnm+ | dps | repaint | sdedit.

    sigma_y is the measurement noise std in pixel units ([0, 1] images); eta: DDNM's DDIM eta; zeta: DPS's step
    (zeta'); t0: SDEdit's start time; jump_length / jump_n_sample: RePaint's j and r; blur_sigma: deblur's
    Gaussian std (px); downsample: sr4's operator, "box" (4x4 mean) or "bicubic" (anti-aliased); grey_lift:
    colorize's lift, "copy" (the grey copy: corrections keep the prior's colour differences) or "pinv"; samples:
    `evaluate --task inverse` draws per image, scored on the first draw and on their mean (`restore` draws one).
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
    grey_lift: Literal["copy", "pinv"] = "copy"
    samples: int = 1
    seed: int = 0
    batch_size: int = 64

    def __post_init__(self) -> None:
        for name in ("steps", "jump_length", "jump_n_sample", "samples", "batch_size"):
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
    model: ModelConfig = field(default_factory=ModelConfig)
    schedule: VisionScheduleConfig = field(default_factory=VisionScheduleConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sampler: VisionSamplerConfig = field(default_factory=VisionSamplerConfig)
    repaint: RepaintConfig = field(default_factory=RepaintConfig)
    inverse: InverseConfig = field(default_factory=InverseConfig)
    seg: SegConfig = field(default_factory=SegConfig)
    points: PointsConfig = field(default_factory=PointsConfig)
    anomaly: AnomalyConfig = field(default_factory=AnomalyConfig)


def load_vision_config(
    name_or_path: str | None = "ddpm-digits", overrides: tuple[str, ...] | list[str] = ()
) -> VisionConfig:
    """A bundled config by name (ddpm-digits, ddpm-faces, sr3-faces, ...) or a TOML file, plus `a.b=value` overrides."""
    from omnidiffusion.core.config import load_config

    return load_config(VisionConfig, name_or_path, list(overrides), package=PACKAGE)


def upgrade_config_dict(stored: dict[str, Any]) -> dict[str, Any]:
    """A config dict with the key names of before run_config.json ([sample], schedule.T, out) in today's names."""
    data = copy.deepcopy(dict(stored))
    data.pop("out", None)
    if "sample" in data:
        data["sampler"] = data.pop("sample")
    schedule = data.get("schedule")
    if isinstance(schedule, dict) and "T" in schedule:
        schedule["timesteps"] = schedule.pop("T")
    return data


def legacy_config(metadata: dict[str, Any] | None) -> VisionConfig | None:
    """The VisionConfig an older checkpoint kept in its config.json metadata ("vision_config"), or None.

    Checkpoints written since `train` stores run_config.json have none there; for those, `open_pretrained` (or the
    command line's --checkpoint) reads run_config.json instead.
    """
    from omnidiffusion.core.config import from_dict

    stored = (metadata or {}).get("vision_config")
    if not isinstance(stored, dict):
        return None
    try:
        return from_dict(VisionConfig, upgrade_config_dict(stored))
    except ValueError:
        return None
