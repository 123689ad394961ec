"""The app's config: one dataclass tree read from TOML (configs/*.toml) with `--set a.b=value` overrides.

[mel]       MelConfig: the log-mel the vocoder is conditioned on (default 22,050 Hz / hop 256 / 80 mels)
[model]     WaveGrad network sizes; factors must multiply to mel.hop_length
[data]      training clips: "bundled" (espeak-ng sentences, or synthetic signals without espeak-ng), a folder, or
            the LJSpeech layout at data.root (format "ljspeech", with HiFi-GAN's training/validation split files)
[schedule]  the training table the continuous noise level is drawn from (WaveGrad: Linear(1e-6, 0.01), 1000)
[train]     core's TrainConfig (steps, batch size, lr, EMA, AMP, checkpoints)
[sampler]   method "ddpm" (WaveGrad Algorithm 2 over a beta schedule of `steps` betas) or "dpm++2m", steps, seed
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Literal

import torch
from torch import Tensor

from omnidiffusion.core import GRIDS, DiscreteVP
from omnidiffusion.core.checks import non_negative_int, positive_int
from omnidiffusion.core.settings import SamplerConfig, ScheduleConfig
from omnidiffusion.core.training import TrainConfig

from .mel import MelConfig
from .noise import TRAIN_BETA_END, TRAIN_BETA_START, TRAIN_STEPS, check_betas, training_betas

MAX_SEED = 2**63 - 1  # torch seeds are 64-bit; evaluate adds the clip index to the seed
SAMPLER_GRIDS = ("auto", *GRIDS)


@dataclass
class ModelConfig:
    """WaveGradNet sizes (defaults: a CPU-sized WaveGrad with hop 256; see configs/paper.toml for Base)."""

    factors: list[int] = field(default_factory=lambda: [4, 4, 4, 2, 2])
    mel_channels: int = 128
    up_channels: list[int] = field(default_factory=lambda: [96, 96, 48, 24, 24])
    up_dilations: list[list[int]] = field(
        default_factory=lambda: [[1, 2, 1, 2], [1, 2, 1, 2], [1, 2, 4, 8], [1, 2, 4, 8], [1, 2, 4, 8]]
    )
    down_channels: list[int] = field(default_factory=lambda: [8, 24, 24, 48, 96])


@dataclass
class DataConfig:
    """Training data.

    format "auto": `root` when set, else `source` ("bundled", or a folder: LJSpeech-style or any wav/flac files).
    format "ljspeech": the LJSpeech layout at `root` (metadata.csv + wavs/); `split` is trained on and
    `eval_split` is what `evaluate` scores, read from training.txt / validation.txt in `split_dir` (default root).
    load "memory" reads every clip and its mel once; "disk" reads one random segment per item (large corpora).
    cache_dir: where the bundled espeak-ng clips are written (train, evaluate and search-schedule).
    """

    source: str = "bundled"
    format: Literal["auto", "ljspeech"] = "auto"
    root: str | None = None
    split: Literal["train", "validation", "all"] = "train"
    eval_split: Literal["train", "validation", "all"] = "validation"
    split_dir: str | None = None
    load: Literal["memory", "disk"] = "memory"
    bundled: Literal["auto", "espeak", "synthetic"] = "auto"
    cache_dir: str = "runs/audio/data"
    segment_frames: int = 24
    repeats: int = 1
    limit: int | None = None

    def __post_init__(self) -> None:
        if self.root is not None and not self.root.strip():
            raise ValueError("data.root: expected a folder, got an empty string")
        positive_int(self.segment_frames, "data.segment_frames")
        positive_int(self.repeats, "data.repeats")
        if self.limit is not None:
            positive_int(self.limit, "data.limit")  # None means every clip; 0 or -1 would drop clips silently


@dataclass
class WaveGradScheduleConfig(ScheduleConfig):
    """The training table (Chen et al. 2021, sec. 3.2): the network is conditioned on a continuous noise level
    drawn between adjacent levels l_s = sqrt(prod_{i<=s}(1 - beta_i)) of this table, so one model samples with
    any beta schedule. WaveGrad's is Linear(1e-6, 0.01) with timesteps = 1000; "dpm++2m" samples on it too.
    """

    name: str = "linear"
    timesteps: int = TRAIN_STEPS
    beta_start: float = TRAIN_BETA_START
    beta_end: float = TRAIN_BETA_END

    def betas(self) -> Tensor:
        """The table's (timesteps,) float64 betas; "linear" is torch.linspace(beta_start, beta_end, timesteps)."""
        if self.name == "linear":
            if self.beta_end < self.beta_start:
                super().build()  # the one error message for the order of the bounds
            return training_betas(self.timesteps, self.beta_start, self.beta_end)
        return torch.from_numpy(super().build().betas.copy())

    def build(self) -> DiscreteVP:
        """The table as the core schedule `DiscreteVP.from_betas(betas())`."""
        return DiscreteVP.from_betas(self.betas(), name=f"wavegrad-{self.name}-{self.timesteps}")


@dataclass
class WaveGradSamplerConfig(SamplerConfig):
    """Vocoding. "ddpm" walks a table of `steps` betas (WaveGrad Algorithm 2): `betas` when given, else the
    schedule named for that count (1000, 50, 25, 6) or one `search-schedule` wrote into the checkpoint.
    "dpm++2m" takes `steps` DPM-Solver++(2M) steps on the training table ([schedule]).

    grid "auto": "trailing" for ddpm (every table step) and "logsnr" for dpm++2m; dpm++2m takes any core grid,
    ddpm only "trailing". clip: clamp x0_hat to [-1, 1] at every step. batch_size is unused: `vocode` runs the
    mels it is given as one batch, `evaluate` one clip at a time.
    """

    method: Literal["ddpm", "dpm++2m"] = "ddpm"
    steps: int = 6
    grid: str = "auto"
    betas: list[float] | None = None
    clip: bool = True

    def __post_init__(self) -> None:
        non_negative_int(self.seed, "sampler.seed", maximum=MAX_SEED)
        super().__post_init__()
        if self.grid not in SAMPLER_GRIDS:
            raise ValueError(f"sampler.grid: expected one of {list(SAMPLER_GRIDS)}, got {self.grid!r}")
        if self.betas is not None:
            check_betas(self.betas, "sampler.betas")

    def check(self) -> WaveGradSamplerConfig:
        """Cross-key checks (here rather than in __post_init__, so that --set can change method and betas in
        either order)."""
        if self.method == "dpm++2m" and self.betas is not None:
            raise ValueError("sampler.betas: only sampler.method 'ddpm' walks a beta table ('dpm++2m' takes steps)")
        if self.method == "ddpm" and self.grid not in ("auto", "trailing"):
            raise ValueError(
                f"sampler.grid: method 'ddpm' walks every beta of its table (grid 'auto' or 'trailing'), "
                f"got {self.grid!r}"
            )
        return self


@dataclass
class AudioConfig:
    mel: MelConfig = field(default_factory=MelConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    schedule: WaveGradScheduleConfig = field(default_factory=WaveGradScheduleConfig)
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(steps=1500, batch_size=8, lr=1e-3, ema_decay=0.999, ckpt_every=250)
    )
    sampler: WaveGradSamplerConfig = field(default_factory=WaveGradSamplerConfig)

    def check(self) -> AudioConfig:
        """Cross-field checks (here rather than in __post_init__, so that --set can change hop and factors)."""
        hop = math.prod(self.model.factors)
        if hop != self.mel.hop_length:
            raise ValueError(
                f"model.factors: their product {hop} must equal mel.hop_length = {self.mel.hop_length} "
                f"(got factors {self.model.factors})"
            )
        self.schedule.build()
        self.sampler.check()
        return self

    def model_kwargs(self) -> dict:
        """Constructor kwargs of WaveGradNet for this config."""
        self.check()
        return {"n_mels": self.mel.n_mels, **asdict(self.model)}
