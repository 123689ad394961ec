"""The app's config: one dataclass tree read from TOML (configs/*.toml) with `--set a.b=value` overrides.

[mel]    MelConfig: the log-mel the vocoder is conditioned on (default 22,050 Hz / hop 256 / 80 mels)
[model]  WaveGrad network sizes; factors must multiply to mel.hop_length
[data]   training clips: "bundled" (espeak-ng sentences, or synthetic signals without espeak-ng), a folder, or
         the LJSpeech layout at data.root (format "ljspeech", with HiFi-GAN's training/validation split files)
[train]  core's TrainConfig (steps, batch size, lr, EMA, AMP, checkpoints)
[sample] method "ddpm" (WaveGrad Algorithm 2 over a beta schedule) or "dpm++2m", iterations, seed
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Literal

from omnidiffusion.core.checks import non_negative_int, positive_int
from omnidiffusion.core.training import TrainConfig

from .mel import MelConfig
from .noise import check_betas

MAX_SEED = 2**63 - 1  # torch seeds are 64-bit; evaluate adds the clip index to the seed


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
class SampleConfig:
    """Vocoding: "ddpm" walks a beta schedule (iterations 1000/50/25/6, or explicit betas); "dpm++2m" steps."""

    method: Literal["ddpm", "dpm++2m"] = "ddpm"
    iterations: int = 6
    betas: list[float] | None = None
    seed: int = 0
    clip: bool = True

    def __post_init__(self) -> None:
        positive_int(self.iterations, "sample.iterations")
        if self.betas is not None:
            check_betas(self.betas, "sample.betas")
        non_negative_int(self.seed, "sample.seed", maximum=MAX_SEED)


@dataclass
class AudioConfig:
    mel: MelConfig = field(default_factory=MelConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(steps=1500, batch_size=8, lr=1e-3, ema_decay=0.999, ckpt_every=250)
    )
    sample: SampleConfig = field(default_factory=SampleConfig)

    def check(self) -> AudioConfig:
        """Cross-field checks (here rather than in __post_init__, so that --set can change hop and factors)."""
        hop = math.prod(self.model.factors)
        if hop != self.mel.hop_length:
            raise ValueError(
                f"model.factors: their product {hop} must equal mel.hop_length = {self.mel.hop_length} "
                f"(got factors {self.model.factors})"
            )
        return self

    def model_kwargs(self) -> dict:
        """Constructor kwargs of WaveGradNet for this config."""
        self.check()
        return {"n_mels": self.mel.n_mels, **asdict(self.model)}
