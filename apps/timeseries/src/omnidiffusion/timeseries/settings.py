"""Configs as dataclasses (TOML files under configs/, `--set a.b=value` overrides through core.config).

`default` is the small CPU config (trains on macrodata in minutes); `paper` has CSDI's hyper-parameters
(Tashiro et al. 2021, appendix E: 4 layers, 64 channels, 8 heads, 50 steps, quadratic 1e-4 to 0.5, Adam 1e-3,
batch 16, 100 samples); `forecast` trains with the forecasting mask; `tiny` is the smoke-test config.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

from omnidiffusion.core.training import TrainConfig

from .models import CSDINet
from .task import CSDITask


@dataclass
class ModelConfig:
    """CSDINet sizes (paper: channels 64, layers 4, heads 8, ffn 64, time 128, feature 16, step 128)."""

    channels: int = 64
    layers: int = 4
    heads: int = 8
    ffn: int = 64
    time_dim: int = 128
    feature_dim: int = 16
    step_dim: int = 128


@dataclass
class DiffusionConfig:
    """The quadratic DiscreteVP schedule: T steps, beta from beta_start to beta_end (CSDI: 50, 1e-4, 0.5)."""

    n_steps: int = 50
    beta_start: float = 1e-4
    beta_end: float = 0.5


@dataclass
class SamplerConfig:
    """How samples are drawn: the paper chain is ddpm over all 50 steps; dpm++2m is the few-step option."""

    n_samples: int = 100
    method: str = "ddpm"
    steps: int = 50
    grid: str = "auto"  # time-uniform for ddpm, logsnr for the others (see CSDITask.impute)
    batch_size: int = 2048  # (window, sample) pairs per network call
    seed: int = 0


@dataclass
class DataConfig:
    """Where the training table comes from and how it is cut into windows."""

    source: str = "macrodata"  # a bundled name (macrodata, co2, elnino) or a wide CSV path
    window: int = 16  # L, time points per window
    stride: int = 1
    train_fraction: float = 1.0  # share of the time range used for training (1.0 = all of it)


@dataclass
class TaskConfig:
    """What is trained: imputation (a mask strategy) or forecasting (the last `horizon` steps hidden)."""

    task: Literal["impute", "forecast"] = "impute"
    strategy: Literal["random", "historical", "mix", "forecast"] = "random"
    horizon: int = 4
    forecast_share: float = 0.8  # forecast task: share of batches with the forecast mask (the rest random)
    window_scale: float | None = None  # instance normalisation floor (see task.conditioning); None = off
    scale_min_known: int = 2  # features with fewer known entries in the window stay in z-units


@dataclass
class Settings:
    """Everything one `train` run needs."""

    model: ModelConfig = field(default_factory=ModelConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    data: DataConfig = field(default_factory=DataConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=3000, batch_size=16, lr=1e-3))

    def build_net(self, n_features: int) -> CSDINet:
        return CSDINet(n_features, n_steps=self.diffusion.n_steps, **asdict(self.model))

    def build_task(self) -> CSDITask:
        forecast = self.task.task == "forecast"
        return CSDITask(
            n_steps=self.diffusion.n_steps,
            beta_start=self.diffusion.beta_start,
            beta_end=self.diffusion.beta_end,
            strategy="forecast" if forecast else self.task.strategy,
            horizon=self.task.horizon if forecast else 0,
            forecast_share=self.task.forecast_share,
            window_scale=self.task.window_scale,
            scale_min_known=self.task.scale_min_known,
        )
